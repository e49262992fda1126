# gt's scripted agent: a stand-in for an LLM agent, used by the tests and the demo.
# Runs inside the agent container (busybox sh). Reads its assignment, commits a file
# on its branch, checkpoints, and hands over with `gt done`.
# Knobs (set before it in the rig command): AGENT_SLEEP=N waits N seconds before done;
# AGENT_FAIL=1 exits 1 instead of finishing; AGENT_FAIL_GEN=N does so in generation N; AGENT_ALLOC=1 allocates memory until killed (AGENT_ALLOC_GEN=N: in generation N);
# AGENT_DIE_LOCKED_GEN=N in generation N dies by SIGKILL holding git's index lock, as a
# `git commit` killed by an OOM or `docker kill` does.
# AGENT_FILE=NAME writes its work into NAME (default work-BEAD.txt); AGENT_REBASE=1, when
# its work was sent back from the merge queue, first rebases onto the target keeping its
# own side of conflicts; AGENT_BREAK_ATTEMPT=N adds broken.txt in attempt N of its bead
# and removes it in later attempts.
set -eu
gt prime
attempt=$(gt prime | sed -n 's/.* Attempt \([0-9]*\),.*/\1/p')
if [ "${AGENT_REBASE:-}" = 1 ] && gt prime | grep -q "sent back from the merge queue"; then
  target=$(gt prime | sed -n 's/.*, to land on \([^ :]*\).*/\1/p')
  git rebase -q -X theirs "$target"
fi
if [ -n "${AGENT_BREAK_ATTEMPT:-}" ]; then
  if [ "$AGENT_BREAK_ATTEMPT" = "$attempt" ]; then
    echo broken > broken.txt && git add broken.txt && git commit -q -m "$GT_BEAD: break the gate"
  elif [ -e broken.txt ]; then
    git rm -q broken.txt && git commit -q -m "$GT_BEAD: fix the gate"
  fi
fi
if [ "${AGENT_DIE_LOCKED_GEN:-}" = "$GT_GENERATION" ]; then
  : > "$(git rev-parse --git-dir)/index.lock"
  kill -9 $$
fi
f="${AGENT_FILE:-work-$GT_BEAD.txt}"
echo "work by $GT_AGENT, generation $GT_GENERATION" >> "$f"
git add "$f"
git commit -q -m "$GT_BEAD: work by $GT_AGENT (generation $GT_GENERATION)"
gt checkpoint -m "committed $f"
if [ "${AGENT_ALLOC:-}" = 1 ] || [ "${AGENT_ALLOC_GEN:-}" = "$GT_GENERATION" ]; then
  # Grow a shell variable until the memory limit kills us.
  x=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
  while :; do x="$x$x"; done
fi
if [ -n "${AGENT_SLEEP:-}" ]; then sleep "$AGENT_SLEEP"; fi
# AGENT_HOLD=1 works until the test releases it (a file `release` in its mailbox);
# AGENT_HOLD=mail until a message reaches its inbox (a mailbox that is no host path).
if [ "${AGENT_HOLD:-}" = 1 ]; then while [ ! -e /gt/release ]; do sleep 0.1; done; fi
if [ "${AGENT_HOLD:-}" = mail ]; then
  while [ -z "$(ls "$GT_MAILBOX/inbox" 2>/dev/null)" ]; do sleep 0.1; done
fi
if [ "${AGENT_FAIL:-}" = 1 ]; then echo "agent failing on purpose" >&2; exit 1; fi
if [ "${AGENT_FAIL_GEN:-}" = "$GT_GENERATION" ]; then echo "agent failing in generation $GT_GENERATION" >&2; exit 1; fi
gt done -m "finished $GT_BEAD"
# AGENT_LINGER=1 keeps writing into the worktree after `gt done`, as an agent CLI that
# does not exit would.
if [ "${AGENT_LINGER:-}" = 1 ]; then while :; do echo late >> late.txt; sleep 0.1; done; fi
