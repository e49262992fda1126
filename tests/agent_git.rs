//! Git as an agent uses it, inside its real container (mounted mode): every everyday
//! command runs clean (exit 0, no error or warning on stderr), on a private view of the
//! rig's refs that the host reads only as data; and the host takes the work back after
//! rebases, stashes and a `git gc`.

mod support;

use support::*;

/// Shell run inside the agent: `run NAME CMD…` appends `== NAME rc=N` and CMD's stderr
/// to `/gt/outbox/survey` (a file the host never reads as a request).
const RUN: &str = r#"
S=${SURVEY:-/gt/outbox/survey}
run() { n=$1; shift; "$@" >/tmp/out 2>/tmp/err; rc=$?; { echo "== $n rc=$rc"; cat /tmp/err; } >> $S; }
"#;

/// The everyday git of an agent, in order (then `gt done`, or `DONE` in clone mode).
const SURVEY: &str = r#"
set +e
gt prime > /dev/null
B=$(git rev-parse --abbrev-ref HEAD)
echo one > one.txt; run commit-1 sh -c 'git add one.txt && git commit -q -m one'
echo two > two.txt; run commit-2 sh -c 'git add two.txt && git commit -q -m two'
echo three > three.txt; run commit-3 sh -c 'git add three.txt && git commit -q -m three'
run rebase-main git rebase main
run rebase-force-main git rebase -f main
run rebase-origin-main git rebase -f origin/main
run rebase-interactive env GIT_SEQUENCE_EDITOR=true git rebase -i HEAD~2
echo dirty >> one.txt
run stash git stash
run stash-list git stash list
run stash-pop git stash pop
run stash-commit git commit -q -am 'one, amended content'
run amend git commit -q --amend -m 'one, amended'
run reset-hard git reset -q --hard HEAD~1
run log-range git log --oneline main..HEAD
run diff-range git diff main...HEAD
run branch-list git branch
run branch-create git branch tmp
run checkout-new git checkout -q -b tmp2
run checkout-back git checkout -q "$B"
run branch-delete git branch -q -D tmp tmp2
run tag git tag agent-mark
run tag-list git tag -l
run tag-delete git tag -d agent-mark
run worktree-list git worktree list
mkdir many; i=0; while [ $i -lt 300 ]; do echo "file $i" > many/f$i; i=$((i+1)); done
run commit-many sh -c 'git add many && git commit -q -m many && git rm -rq many && git commit -q -m "many, gone"'
run gc-auto git gc --auto
run gc-auto-forced git -c gc.auto=50 -c gc.autoDetach=false gc --auto
run gc git gc -q
run fsck git fsck --no-progress --no-dangling
echo after-gc > after.txt; run commit-after-gc sh -c 'git add after.txt && git commit -q -m after-gc'
run head sh -c 'git rev-parse HEAD >&2'
"#;

/// Clone mode: the survey comes back committed in the agent's work (its outbox is no
/// host directory), one commit after the one the survey's `head` names.
const CLONE_DONE: &str = r#"
cp "$S" survey.txt && git add survey.txt && git commit -q -m survey
gt done -m surveyed
"#;

/// The survey's lines: (command, exit code, stderr).
fn survey(t: &TestTown, polecat: &str) -> Vec<(String, i32, String)> {
    let text = std::fs::read_to_string(
        t.root()
            .join("agents/api")
            .join(polecat)
            .join("outbox/survey"),
    )
    .unwrap_or_default();
    parse_survey(&text)
}

fn parse_survey(text: &str) -> Vec<(String, i32, String)> {
    let mut out: Vec<(String, i32, String)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("== ")
            && let Some((name, rc)) = rest.rsplit_once(" rc=")
        {
            out.push((name.to_string(), rc.parse().unwrap_or(-1), String::new()));
        } else if let Some(last) = out.last_mut() {
            last.2.push_str(line);
            last.2.push('\n');
        }
    }
    out
}

fn looks_bad(stderr: &str) -> bool {
    stderr.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("fatal:")
            || l.starts_with("error:")
            || l.starts_with("warning:")
            || l.contains("Unable to")
            || l.contains("Read-only file system")
    })
}

#[test]
fn everyday_git_runs_clean_inside_an_agent_and_the_host_takes_the_work_back() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(&format!("{RUN}\n{SURVEY}\ngt done -m surveyed\n"), &[]);
    let id = t.bead("survey git");
    t.ok(&["sling", &id, "--polecat", "surveyor"]);
    t.patrol_until("the survey's bead done", 120, |t| {
        t.bead_status(&id) == "done"
    });
    let lines = survey(&t, "surveyor");
    let names: Vec<&str> = lines.iter().map(|(n, _, _)| n.as_str()).collect();
    assert!(
        names.contains(&"head"),
        "the survey ran to its end: {lines:#?}"
    );
    let bad: Vec<_> = lines
        .iter()
        .filter(|(_, rc, err)| *rc != 0 || looks_bad(err))
        .collect();
    assert!(bad.is_empty(), "git misbehaved in the agent: {bad:#?}");
    // What each command did: the rebases kept the three commits, the amend and the reset
    // took one away again, the stash came back, gc kept every object the host needs.
    let head = lines
        .iter()
        .find(|(n, _, _)| n == "head")
        .unwrap()
        .2
        .trim()
        .to_string();
    let repo = t.root().join("rigs/api/repo");
    let branch = t.json(&["bead", "show", &id])["branch"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        git(&repo, &["rev-parse", &format!("refs/heads/{branch}")]).trim(),
        head,
        "the host's branch is the agent's last commit"
    );
    let subjects = git(&repo, &["log", "--format=%s", &format!("main..{head}")]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        ["after-gc", "many, gone", "many", "three", "two", "one"],
        "{subjects}"
    );
    assert_eq!(
        git(&repo, &["show", &format!("{head}:one.txt")]),
        "one\n",
        "the amend and reset undid the stashed change's commit"
    );
    // Every object of the branch is the host's: a full check of the rig repository.
    git(&repo, &["fsck", "--no-dangling", "--no-progress"]);
    for f in ["one.txt", "two.txt", "after.txt"] {
        git(&repo, &["cat-file", "-e", &format!("{head}:{f}")]);
    }
    // Nothing the agent did to its own refs reached the host's.
    assert_eq!(
        git(&repo, &["tag", "-l"]).trim(),
        "",
        "a tag reached the rig"
    );
    assert_eq!(
        git(&repo, &["branch", "--list", "tmp*"]).trim(),
        "",
        "a scratch branch reached the rig"
    );
    t.doctor_clean();
}

/// The agent of the send-back test: its first attempt adds `shared.txt`; sent back, it
/// rebases onto the target `gt prime` names, recording that rebase's stderr.
const SEND_BACK: &str = r#"
set -eu
target=""
if gt prime | grep -q "sent back from the merge queue"; then
  target=$(gt prime | sed -n 's/.*, to land on \([^ :]*\).*/\1/p')
  rc=0; git rebase -X theirs "$target" > /dev/null 2> /tmp/err || rc=$?
  { echo "== rebase-$target rc=$rc"; cat /tmp/err; } >> /gt/outbox/survey
fi
echo "work by $GT_AGENT, generation $GT_GENERATION" >> shared.txt
git add shared.txt
git commit -q -m "$GT_BEAD: work by $GT_AGENT"
gt done -m "finished $GT_BEAD"
"#;

#[test]
fn work_sent_back_is_rebased_by_the_agent_as_prime_says_and_lands() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(
        &t,
        SEND_BACK,
        &["--merge", "auto", "--merge-style", "rebase"],
    );
    let a = t.bead("one side");
    let b = t.bead("other side");
    // Both start from the same main and add the same file: the second to land conflicts.
    t.ok(&["sling", &a, "--polecat", "left"]);
    t.ok(&["sling", &b, "--polecat", "right"]);
    let merged = |t: &TestTown, id: &str| {
        t.json(&["mq", "list", "--all"])
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["bead"] == id && m["state"] == "merged")
    };
    t.patrol_until("both merged", 180, |t| merged(t, &a) && merged(t, &b));
    let rebases: Vec<_> = ["left", "right"]
        .iter()
        .flat_map(|p| survey(&t, p))
        .collect();
    assert_eq!(
        rebases.len(),
        1,
        "exactly one side was sent back and rebased: {rebases:#?}"
    );
    let (name, rc, err) = &rebases[0];
    assert_eq!(name, "rebase-main", "prime named the target: {rebases:#?}");
    assert!(
        *rc == 0 && !looks_bad(err),
        "the rebase in the agent misbehaved: {rebases:#?}"
    );
    // main is linear and holds the rebased side's work.
    let sent_back = if survey(&t, "left").is_empty() {
        "right"
    } else {
        "left"
    };
    let content = git(&remote, &["show", "main:shared.txt"]);
    assert!(
        content.contains(&format!("work by api/{sent_back}")),
        "{content}"
    );
    assert_eq!(
        git(&remote, &["rev-list", "--merges", "--count", "main"]).trim(),
        "0"
    );
    t.doctor_clean();
}

/// A hostile agent moves, in its private view, the rig's `main`, another agent's branch,
/// a remote-tracking ref and a tag, then packs every ref (its own branch is then only in
/// its `packed-refs`) and keeps working until nuked.
const PACKER: &str = r#"
set -eu
C=$(git commit-tree -p HEAD -m evil "HEAD^{tree}")
git update-ref refs/heads/main $C
git update-ref refs/heads/honest-work $C
git update-ref refs/remotes/origin/main $C
git tag evil $C
echo packer > packer.txt; git add packer.txt; git commit -q -m packer
git pack-refs --all
R=$(git rev-parse --path-format=absolute --git-common-dir)
if [ -e "$R/refs/heads/$GT_BRANCH" ]; then where=loose; else where=packed-only; fi
echo "$where $(git rev-parse HEAD)" > /gt/outbox/results
while [ ! -e /gt/release ]; do sleep 0.1; done
"#;

#[test]
fn an_agents_private_refs_reach_the_host_only_as_its_own_branch_loose_or_packed() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let command = format!(
        "if [ \"$GT_AGENT\" != api/honest ]; then\n{PACKER}\nexit 0\nfi\n{}",
        scripted_agent("")
    );
    let remote = t.rig_with_remote(&command, &["--max-polecats", "2"]);
    let repo = t.root().join("rigs/api/repo");
    let honest = t.bead("honest work");
    t.ok(&[
        "sling",
        &honest,
        "--polecat",
        "honest",
        "--branch",
        "honest-work",
    ]);
    t.patrol_until("the honest bead done", 90, |t| {
        t.bead_status(&honest) == "done"
    });
    let before = |r: &str| git(&repo, &["rev-parse", r]).trim().to_string();
    let (main, honest_head, origin_main) = (
        before("refs/heads/main"),
        before("refs/heads/honest-work"),
        before("refs/remotes/origin/main"),
    );
    assert_ne!(main, honest_head, "the honest work is on its branch");
    let remote_main = git(&remote, &["for-each-ref", "refs/heads/main"]);
    let packer = t.bead("pack refs");
    t.ok(&["sling", &packer, "--polecat", "packer"]);
    let results = t.root().join("agents/api/packer/outbox/results");
    let line = wait_for("the packer's refs packed", 60, || {
        std::fs::read_to_string(&results)
            .ok()
            .filter(|s| s.ends_with('\n'))
    });
    let (where_, head) = line.trim().split_once(' ').unwrap();
    assert_eq!(
        where_, "packed-only",
        "its branch is only in its packed-refs"
    );
    // Nuked while it works: its commits are taken from its packed branch, as data.
    t.ok(&["polecat", "nuke", "api/packer"]);
    let branch = t.json(&["bead", "show", &packer])["branch"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        before(&format!("refs/heads/{branch}")),
        head,
        "the packed branch's work was kept"
    );
    assert_eq!(
        git(&repo, &["ls-tree", "--name-only", head])
            .lines()
            .collect::<Vec<_>>(),
        ["README", "packer.txt"]
    );
    // Everything else it moved is its own view only.
    assert_eq!(before("refs/heads/main"), main, "the rig's main moved");
    assert_eq!(
        before("refs/heads/honest-work"),
        honest_head,
        "the honest branch moved"
    );
    assert_eq!(
        before("refs/remotes/origin/main"),
        origin_main,
        "origin/main moved"
    );
    assert_eq!(
        git(&repo, &["tag", "-l"]).trim(),
        "",
        "a tag reached the rig"
    );
    assert_eq!(
        git(&remote, &["for-each-ref", "refs/heads/main"]),
        remote_main,
        "the remote's main moved"
    );
    t.doctor_clean();
}

#[test]
fn everyday_git_runs_clean_inside_an_agent_working_in_a_clone() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    support::clone::configure_clone(&t, 0);
    let remote = support::clone::clone_rig(
        &t,
        &format!("SURVEY=/tmp/survey\n{RUN}\n{SURVEY}\n{CLONE_DONE}"),
        &[],
    );
    let _serve = support::clone::Serve::start(&t);
    let id = t.bead("survey git in a clone");
    t.ok(&["sling", &id]);
    t.patrol_until("the survey's bead done", 120, |t| {
        t.bead_status(&id) == "done"
    });
    let branch = t.json(&["bead", "show", &id])["branch"]
        .as_str()
        .unwrap()
        .to_string();
    let text = git(&remote, &["show", &format!("{branch}:survey.txt")]);
    let lines = parse_survey(&text);
    assert!(
        lines.iter().any(|(n, _, _)| n == "head"),
        "the survey ran to its end: {lines:#?}"
    );
    let bad: Vec<_> = lines
        .iter()
        .filter(|(_, rc, err)| *rc != 0 || looks_bad(err))
        .collect();
    assert!(bad.is_empty(), "git misbehaved in the clone: {bad:#?}");
    let repo = t.root().join("rigs/api/repo");
    let subjects = git(&repo, &["log", "--format=%s", &format!("main..{branch}")]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        [
            "survey",
            "after-gc",
            "many, gone",
            "many",
            "three",
            "two",
            "one"
        ],
        "{subjects}"
    );
}

/// Generation 1 commits, stashes more work, packs its refs and dies; generation 2, in the
/// same worktree, finds its branch and its stash where it left them.
const RESTARTED: &str = r#"
set -eu
if [ "$GT_GENERATION" = 1 ]; then
  echo one > one.txt; git add one.txt; git commit -q -m one
  echo stashed > stashed.txt; git add stashed.txt; git stash -q
  git pack-refs --all
  exit 1
fi
git stash list > /tmp/list
git stash pop -q
git add -A
git commit -q -m "from the stash"
cp /tmp/list /gt/outbox/stash-list
gt done -m "after a restart"
"#;

#[test]
fn a_restarted_agent_finds_its_packed_branch_and_its_stash() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(RESTARTED, &[]);
    let id = t.bead("restart");
    t.ok(&["sling", &id, "--polecat", "phoenix"]);
    t.patrol_until("the restarted bead done", 120, |t| {
        t.bead_status(&id) == "done"
    });
    let list = std::fs::read_to_string(t.root().join("agents/api/phoenix/outbox/stash-list"))
        .unwrap_or_default();
    assert_eq!(
        list.lines().count(),
        1,
        "one stash entry came back: {list:?}"
    );
    let repo = t.root().join("rigs/api/repo");
    let branch = t.json(&["bead", "show", &id])["branch"]
        .as_str()
        .unwrap()
        .to_string();
    let subjects = git(&repo, &["log", "--format=%s", &format!("main..{branch}")]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        ["from the stash", "one"],
        "{subjects}"
    );
    assert_eq!(
        git(&repo, &["show", &format!("{branch}:stashed.txt")]),
        "stashed\n"
    );
}
