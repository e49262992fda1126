# gt's scripted agent: a stand-in for an LLM agent, used by the tests and the demo.
# Runs inside the agent container (busybox sh). Reads its assignment, commits a file
# on its branch, checkpoints, and hands over with `gt done`.
# Knobs (set before it in the rig command): AGENT_SLEEP=N waits N seconds before done;
# AGENT_FAIL=1 exits 1 instead of finishing; AGENT_FAIL_GEN=N does so in generation N; AGENT_ALLOC=1 allocates memory until killed;
# AGENT_DIE_LOCKED_GEN=N in generation N dies by SIGKILL holding git's index lock, as a
# `git commit` killed by an OOM or `docker kill` does.
set -eu
gt prime
if [ "${AGENT_DIE_LOCKED_GEN:-}" = "$GT_GENERATION" ]; then
  : > "$(git rev-parse --git-dir)/index.lock"
  kill -9 $$
fi
f="work-$GT_BEAD.txt"
echo "work by $GT_AGENT, generation $GT_GENERATION" >> "$f"
git add "$f"
git commit -q -m "$GT_BEAD: work by $GT_AGENT (generation $GT_GENERATION)"
gt checkpoint -m "committed $f"
if [ "${AGENT_ALLOC:-}" = 1 ]; then
  # Grow a shell variable until the memory limit kills us.
  x=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
  while :; do x="$x$x"; done
fi
if [ -n "${AGENT_SLEEP:-}" ]; then sleep "$AGENT_SLEEP"; fi
# AGENT_HOLD=1 works until the test releases it (a file `release` in its mailbox).
if [ "${AGENT_HOLD:-}" = 1 ]; then while [ ! -e /gt/release ]; do sleep 0.1; done; fi
if [ "${AGENT_FAIL:-}" = 1 ]; then echo "agent failing on purpose" >&2; exit 1; fi
if [ "${AGENT_FAIL_GEN:-}" = "$GT_GENERATION" ]; then echo "agent failing in generation $GT_GENERATION" >&2; exit 1; fi
gt done -m "finished $GT_BEAD"
# AGENT_LINGER=1 keeps writing into the worktree after `gt done`, as an agent CLI that
# does not exit would.
if [ "${AGENT_LINGER:-}" = 1 ]; then while :; do echo late >> late.txt; sleep 0.1; done; fi
