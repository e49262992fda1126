//! Adversarial tests of the trust boundary: an agent that is hostile, in a real container
//! on real git, through the real `gt` binary. Each test runs a hostile polecat next to an
//! honest one in the same rig, and asserts that the host ran nothing the agent planted,
//! read nothing it pointed at, lost no legitimate work, and kept patrolling the others.
//!
//! The hostile agents record what each attempt did in `/gt/outbox/results` (a file the
//! host never reads as a request): `NAME=ok` or `NAME=refused`.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

/// Shell set up for every hostile script: where things are, as the agent sees them.
/// `try NAME CMD…` records whether CMD succeeded; `work TEXT` commits a file of its own.
const PRELUDE: &str = r#"
W=$PWD
T=${W%/rigs/api/polecats/*}
R=$T/rigs/api/repo/.git
OBJ=$GIT_OBJECT_DIRECTORY
ME=${GT_AGENT#*/}
REFS=$R/refs/heads/${GT_BRANCH%/*}
LEAF=${GT_BRANCH##*/}
try() { n=$1; shift; if "$@" >/dev/null 2>&1; then echo "$n=ok"; else echo "$n=refused"; fi >> /gt/outbox/results; }
work() { echo "$1" > "$ME.txt"; git add "$ME.txt"; git commit -qm "$ME: $1"; }
"#;

/// The rig command: polecats named `honest…` run the scripted agent (with `knobs`); every
/// other one runs `hostile`.
fn two_faced(hostile: &str, knobs: &str) -> String {
    format!(
        "if [ \"${{GT_AGENT#api/honest}}\" = \"$GT_AGENT\" ]; then\n{PRELUDE}\n{hostile}\nexit 0\nfi\n{}",
        scripted_agent(knobs)
    )
}

struct Arena {
    t: TestTown,
    remote: PathBuf,
    /// A host directory outside the town: anything planted that runs touches a file here.
    marks: PathBuf,
    /// `main` when the rig was made.
    main: String,
}

impl Arena {
    /// Rig `api` from a repository holding `files` (path, content, executable), with a
    /// bare remote that already has `main`. `@MARK@` and `@REMOTE@` in `hostile` name
    /// the marks directory and the remote.
    fn new(hostile: &str, max_polecats: u32, files: &[(&str, &[u8], bool)]) -> Arena {
        Arena::with_knobs(hostile, "", max_polecats, files)
    }

    /// `new`, with knobs of the honest polecat's scripted agent (`AGENT_HOLD=1`, …).
    fn with_knobs(
        hostile: &str,
        knobs: &str,
        max_polecats: u32,
        files: &[(&str, &[u8], bool)],
    ) -> Arena {
        let t = TestTown::new();
        let marks = t.dir.path().join("marks");
        std::fs::create_dir_all(&marks).unwrap();
        let src = t.dir.path().join("src/api");
        make_repo(&src);
        for (path, data, exec) in files {
            let p = src.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
            if *exec {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            git(&src, &["add", path]);
        }
        if !files.is_empty() {
            git(&src, &["commit", "-q", "-m", "fixtures"]);
        }
        let remote = t.dir.path().join("remote.git");
        git(
            t.dir.path(),
            &["init", "-q", "--bare", remote.to_str().unwrap()],
        );
        git(&src, &["push", "-q", remote.to_str().unwrap(), "main"]);
        let command = two_faced(
            &hostile
                .replace("@MARK@", marks.to_str().unwrap())
                .replace("@REMOTE@", remote.to_str().unwrap()),
            knobs,
        );
        let max = max_polecats.to_string();
        t.ok(&[
            "rig",
            "add",
            "api",
            src.to_str().unwrap(),
            "--image",
            &test_image(),
            "--command",
            &command,
            "--memory",
            "256m",
            "--remote",
            remote.to_str().unwrap(),
            "--max-polecats",
            &max,
        ]);
        let main = git(&src, &["rev-parse", "main"]).trim().to_string();
        Arena {
            t,
            remote,
            marks,
            main,
        }
    }

    fn repo(&self) -> PathBuf {
        self.t.root().join("rigs/api/repo")
    }

    /// Sling a new bead to polecat `name`; returns the bead id.
    fn sling(&self, name: &str, title: &str) -> String {
        let id = self.t.bead(title);
        self.t.ok(&["sling", &id, "--polecat", name]);
        id
    }

    fn outbox(&self, name: &str) -> PathBuf {
        self.t.root().join("agents/api").join(name).join("outbox")
    }

    /// What the hostile polecat `name` recorded of its attempts.
    fn results(&self, name: &str) -> HashMap<String, String> {
        std::fs::read_to_string(self.outbox(name).join("results"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn assert_refused(&self, name: &str, attempts: &[&str]) {
        let r = self.results(name);
        for a in attempts {
            assert_eq!(
                r.get(*a).map(String::as_str),
                Some("refused"),
                "{name}'s attempt {a} was not refused: {r:?}"
            );
        }
    }

    fn assert_no_marks(&self) {
        let marks: Vec<_> = std::fs::read_dir(&self.marks)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            marks.is_empty(),
            "something planted ran on the host: {marks:?}"
        );
    }

    /// `bead` is done; its recorded commit is its branch on the remote. Returns the
    /// commit and the files of its tree.
    fn landed(&self, bead: &str) -> (String, Vec<String>) {
        assert_eq!(self.t.bead_status(bead), "done", "bead {bead}");
        let mrs = self.t.json(&["mq", "list", "--all"]);
        let mr = mrs
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["bead"] == bead)
            .unwrap_or_else(|| panic!("no merge request for {bead}: {mrs}"))
            .clone();
        let commit = mr["commit"].as_str().unwrap().to_string();
        let branch = mr["branch"].as_str().unwrap();
        let on_remote = git(
            &self.remote,
            &["rev-parse", &format!("refs/heads/{branch}")],
        );
        assert_eq!(on_remote.trim(), commit, "the remote has {bead}'s commit");
        let files = git(&self.remote, &["ls-tree", "-r", "--name-only", &commit])
            .lines()
            .map(String::from)
            .collect();
        (commit, files)
    }

    /// The honest polecat's bead landed with its work.
    fn honest_landed(&self, bead: &str) {
        let (_, files) = self.landed(bead);
        assert!(
            files.contains(&format!("work-{bead}.txt")),
            "honest work of {bead}: {files:?}"
        );
    }

    /// Neither the rig's nor the remote's `main` moved.
    fn mains_unchanged(&self) {
        let rig = git(&self.repo(), &["rev-parse", "refs/heads/main"]);
        assert_eq!(rig.trim(), self.main, "the rig's main moved");
        let remote = git(&self.remote, &["rev-parse", "refs/heads/main"]);
        assert_eq!(remote.trim(), self.main, "the remote's main moved");
    }
}

/// Run one `gt --json patrol` that must finish within `secs` (scaled); killed and failed
/// otherwise. Returns its report and the peak resident memory of the gt process (KiB).
fn patrol_within(t: &TestTown, secs: u64) -> (serde_json::Value, u64) {
    let out = t
        .dir
        .path()
        .join(format!("patrol-{}.out", std::process::id()));
    let err = t
        .dir
        .path()
        .join(format!("patrol-{}.err", std::process::id()));
    let mut child = std::process::Command::new(gt_bin())
        .args(["--json", "patrol"])
        .env("GT_TOWN", t.root())
        .env_remove("GT_AGENT")
        .env("NO_COLOR", "1")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let secs = deadline_secs(secs);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut peak = 0u64;
    let status = loop {
        // VmHWM is the process's own peak: read it while it lives.
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(kib) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "patrol did not finish within {secs}s (peak {peak} KiB); stderr: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read(&out).unwrap();
    assert!(
        status.success(),
        "patrol: {status:?}\n{}\n{}",
        String::from_utf8_lossy(&stdout),
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    (serde_json::from_slice(&stdout).unwrap(), peak)
}

/// Events of `kind` in the town's log.
fn events(t: &TestTown, kind: &str) -> Vec<serde_json::Value> {
    t.json(&["log", "-n", "1000000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// Wait until polecat `name`'s container has exited (its `gt agent run` wrote `ending`).
fn wait_ended(a: &Arena, name: &str, secs: u64) {
    let ending = a.outbox(name).join("ending");
    wait_for(&format!("{name} to end"), secs, || {
        ending.exists().then_some(())
    });
}

#[test]
fn a_hook_or_git_config_planted_by_an_agent_never_runs_on_the_host() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
H=$T/agents/api/$ME/outbox/hooks
mkdir -p /gt/outbox/hooks
for h in pre-push post-update reference-transaction pre-commit post-commit post-checkout pre-receive update post-receive push-to-checkout fsmonitor-watchman; do
  printf '#!/bin/sh\ntouch @MARK@/%s\n' $h > /gt/outbox/hooks/$h; chmod +x /gt/outbox/hooks/$h
done
printf '[core]\n\thooksPath = %s\n\tsshCommand = touch @MARK@/ssh-include\n[url "@MARK@/evil.git"]\n\tpushInsteadOf = @REMOTE@\n' $H > /gt/outbox/hooks/evil.cfg
try rig-hook cp /gt/outbox/hooks/pre-push $R/hooks/pre-push
try rig-hook-reftx cp /gt/outbox/hooks/reference-transaction $R/hooks/reference-transaction
try rig-hooksPath git config --file $R/config core.hooksPath $H
try rig-sshCommand git config --file $R/config core.sshCommand "touch @MARK@/ssh"
try rig-insteadOf git config --file $R/config url.ext::sh.insteadOf @REMOTE@
try rig-pushInsteadOf git config --file $R/config url.@MARK@/evil.git.pushInsteadOf @REMOTE@
try rig-include git config --file $R/config include.path $H/evil.cfg
try rig-fsmonitor git config --file $R/config core.fsmonitor "touch @MARK@/fsmonitor"
try rig-config-replaced cp /gt/outbox/hooks/evil.cfg $R/config
try rig-attributes sh -c "echo '* filter=evil' > $R/info/attributes"
try rig-alternates sh -c "echo $T > $R/objects/info/alternates"
A=$(git rev-parse --absolute-git-dir)
try own-config-worktree cp /gt/outbox/hooks/evil.cfg $A/config.worktree
try own-worktree-config git config --worktree core.hooksPath $H
export GIT_CONFIG_GLOBAL=/gt/outbox/hooks/evil.cfg
work hooks
gt done -m hooks
"#,
        2,
        &[],
    );
    let config = std::fs::read(a.repo().join(".git/config")).unwrap();
    let honest = a.sling("honest", "honest work");
    let evil = a.sling("evil", "plant hooks");
    a.t.patrol_until("both beads done", 90, |t| {
        t.bead_status(&honest) == "done" && t.bead_status(&evil) == "done"
    });
    a.assert_refused("evil", &["rig-hook", "rig-hook-reftx", "rig-alternates"]);
    // The config and info/ an agent's git reads are a private copy (so `git config`,
    // `git branch -D` work in the box): it may change them; the host never reads them.
    let r = a.results("evil");
    for k in [
        "rig-hooksPath",
        "rig-sshCommand",
        "rig-insteadOf",
        "rig-pushInsteadOf",
        "rig-include",
        "rig-fsmonitor",
        "rig-config-replaced",
        "rig-attributes",
    ] {
        assert_eq!(r.get(k).map(String::as_str), Some("ok"), "{k}: {r:?}");
    }
    assert!(
        a.results("evil").contains_key("own-worktree-config"),
        "the script ran to its end: {:?}",
        a.results("evil")
    );
    a.assert_no_marks();
    assert_eq!(
        std::fs::read(a.repo().join(".git/config")).unwrap(),
        config,
        "the rig's config changed"
    );
    assert!(!a.repo().join(".git/hooks/pre-push").exists());
    // The push went to the real remote, with the agent's work only.
    let (_, files) = a.landed(&evil);
    assert_eq!(files, ["README", "evil.txt"], "{files:?}");
    a.honest_landed(&honest);
    a.mains_unchanged();
    a.t.doctor_clean();
}

#[test]
fn an_agent_cannot_move_main_another_agents_branch_or_tags_nor_rewind_its_own_branch() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
if [ "$ME" = mover ]; then
  C=$(git commit-tree -p HEAD -m evil-main "HEAD^{tree}")
  try move-main git update-ref refs/heads/main $C
  try delete-main git update-ref -d refs/heads/main
  try see-honest sh -c "git for-each-ref refs/heads/polecat/honest | grep -q ."
  try tag git tag evil-tag $C
  try branch git branch evil-branch $C
  try remote-ref git update-ref refs/remotes/origin/main $C
  try packed-refs sh -c "echo $C refs/heads/main >> $R/packed-refs"
  try rig-head sh -c "echo $C > $R/HEAD"
  work mover
  gt done -m mover
else
  work rewinder
  # Before done: its branch made to point at a commit that does not descend from it
  # (after done, a rewind is a leftover the host never reads: the done named the head).
  O=$(git commit-tree -m orphan "HEAD^{tree}")
  try rewind sh -c "echo $O > $REFS/$LEAF"
  gt done -m rewinder
fi
"#,
        3,
        &[],
    );
    let honest = a.sling("honest", "honest work");
    let mover = a.sling("mover", "move refs");
    let rewinder = a.sling("rewinder", "rewind");
    let honest_branch = a.t.json(&["bead", "show", &honest])["branch"]
        .as_str()
        .unwrap()
        .to_string();
    let rewinder_branch = a.t.json(&["bead", "show", &rewinder])["branch"]
        .as_str()
        .unwrap()
        .to_string();
    wait_ended(&a, "rewinder", 60);
    a.t.patrol_until("honest and mover done, rewinder refused", 90, |t| {
        t.bead_status(&honest) == "done"
            && t.bead_status(&mover) == "done"
            && !t.mayor_mail_id("done-refused-").is_empty()
    });
    // Its refs are a private copy: it may move them all in its own view (git works
    // there as anywhere); none of it reaches the host's. Other agents' branches are not
    // in that view at all.
    a.assert_refused("mover", &["see-honest"]);
    let r = a.results("mover");
    for k in [
        "move-main",
        "delete-main",
        "tag",
        "branch",
        "remote-ref",
        "packed-refs",
        "rig-head",
    ] {
        assert_eq!(r.get(k).map(String::as_str), Some("ok"), "{k}: {r:?}");
    }
    assert_eq!(
        a.results("rewinder")["rewind"],
        "ok",
        "its own ref is its own"
    );
    a.mains_unchanged();
    let repo = a.repo();
    assert_eq!(git(&repo, &["tag", "-l"]).trim(), "", "a tag appeared");
    assert_eq!(
        git(&repo, &["branch", "--list", "evil-branch"]).trim(),
        "",
        "a branch appeared"
    );
    assert_eq!(
        git(&repo, &["rev-parse", "HEAD"]).trim(),
        a.main,
        "the rig's HEAD moved"
    );
    let (_, files) = a.landed(&mover);
    assert_eq!(files, ["README", "mover.txt"]);
    let (honest_commit, _) = a.landed(&honest);
    a.honest_landed(&honest);
    assert_eq!(
        git(
            &repo,
            &["rev-parse", &format!("refs/heads/{honest_branch}")]
        )
        .trim(),
        honest_commit,
        "the honest branch moved"
    );
    // The rewound branch was refused, once and for good: not moved in the rig, not
    // pushed, escalated.
    assert_eq!(a.t.bead_status(&rewinder), "escalated");
    assert_eq!(
        git(
            &repo,
            &["rev-parse", &format!("refs/heads/{rewinder_branch}")]
        )
        .trim(),
        a.main,
        "the rig moved a branch backwards"
    );
    assert_eq!(
        git(&a.remote, &["branch", "--list", &rewinder_branch]).trim(),
        "",
        "a rewound branch was pushed"
    );
    let stuck = a.t.mayor_mail_id("done-refused-");
    assert!(
        stuck[0]["body"]
            .as_str()
            .unwrap()
            .contains("does not descend"),
        "{stuck:?}"
    );
}

#[test]
fn a_redirected_gitdir_or_symlinked_private_git_state_reads_nothing_of_the_host() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
if [ "$ME" = redirect ]; then
  work redirect
  gt done -m redirect
  A=$(git rev-parse --absolute-git-dir)
  try wt-gitfile sh -c "echo 'gitdir: $T/.gt' > .git"
  try admin-gitdir sh -c "echo / > $A/gitdir"
  try admin-commondir sh -c "echo $T/.gt > $A/commondir"
  try admin-head sh -c "echo 'ref: refs/heads/main' > $A/HEAD"
  [ -e $OBJ/fe ] || try objects-dir-link ln -s / $OBJ/fe
  mkdir -p $OBJ/fd $OBJ/pack $OBJ/info
  try object-link ln -s $T/.gt/town.db $OBJ/fd/00000000000000000000000000000000000000
  try pack-link ln -s $T/.gt/town.db $OBJ/pack/pack-0000000000000000000000000000000000000000.pack
  try idx-link ln -s $T/.gt/town.db $OBJ/pack/pack-0000000000000000000000000000000000000000.idx
  try alternates sh -c "echo $T/.gt > $OBJ/info/alternates"
else
  # Once the honest polecat's work is in the rig (the test releases it then), point its
  # own branch's ref, and its packed refs, at the host's (the paths it would have there).
  until [ -e /gt/release ]; do sleep 0.1; done
  gt done -m linker
  rm -f $REFS/$LEAF
  try ref-link ln -s $R/refs/heads/honest-work $REFS/$LEAF
  rm -f $R/packed-refs
  try packed-link ln -s $T/rigs/api/repo/.git/packed-refs $R/packed-refs
fi
"#,
        3,
        &[],
    );
    let db = a.t.root().join(".gt/town.db");
    // The honest polecat on a branch whose ref the linker can name by its host path.
    let honest = a.t.bead("honest work");
    a.t.ok(&[
        "sling",
        &honest,
        "--polecat",
        "honest",
        "--branch",
        "honest-work",
    ]);
    let redirect = a.sling("redirect", "redirect");
    let linker = a.sling("linker", "link");
    a.t.patrol_until("honest and redirect done", 90, |t| {
        t.bead_status(&honest) == "done" && t.bead_status(&redirect) == "done"
    });
    std::fs::write(a.t.root().join("agents/api/linker/box/release"), "").unwrap();
    wait_ended(&a, "linker", 60);
    a.t.patrol_until("linker done", 60, |t| t.bead_status(&linker) == "done");
    let r = a.results("redirect");
    for k in [
        "wt-gitfile",
        "admin-gitdir",
        "admin-commondir",
        "object-link",
    ] {
        assert_eq!(r.get(k).map(String::as_str), Some("ok"), "{k}: {r:?}");
    }
    assert_eq!(a.results("linker")["ref-link"], "ok");
    assert_eq!(a.results("linker")["packed-link"], "ok");
    // The redirect's work landed as it was committed, and nothing else came with it.
    let (_, files) = a.landed(&redirect);
    assert_eq!(files, ["README", "redirect.txt"]);
    // The symlinked ref was not followed: the linker's branch did not take the honest
    // polecat's commit.
    let (linked, files) = a.landed(&linker);
    assert_eq!(linked, a.main, "a symlinked ref was followed");
    assert_eq!(files, ["README"]);
    a.honest_landed(&honest);
    a.mains_unchanged();
    assert!(db.is_file(), "town.db is still a file");
    let all = git(&a.repo(), &["log", "--all", "--name-only", "--format="]);
    assert!(
        !all.contains("town.db") && !all.contains(".gt"),
        "host files were committed: {all}"
    );
    a.t.doctor_clean();
}

#[test]
fn a_worktree_registration_planted_by_an_agent_does_not_block_the_next_sling() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
for n in honest2 nux slit capable; do try plant-$n mkdir $R/worktrees/$n; done
try plant-file sh -c "echo gitdir: $T/.gt > $R/worktrees/honest2/gitdir"
try plant-polecat mkdir $T/rigs/api/polecats/honest2
try own-registrations sh -c "ls $R/worktrees | grep -qv '^$ME\$'"
work planted
gt done -m planted
"#,
        2,
        &[],
    );
    let honest = a.sling("honest", "honest work");
    let evil = a.sling("evil", "plant registrations");
    a.t.patrol_until("both beads done", 90, |t| {
        t.bead_status(&honest) == "done" && t.bead_status(&evil) == "done"
    });
    a.assert_refused(
        "evil",
        &[
            "plant-honest2",
            "plant-nux",
            "plant-slit",
            "plant-capable",
            "plant-file",
            "plant-polecat",
            "own-registrations",
        ],
    );
    let worktrees = a.repo().join(".git/worktrees");
    for n in ["honest2", "nux", "slit", "capable"] {
        assert!(!worktrees.join(n).exists(), "{n} was registered");
    }
    // The names the agent tried to take are free: the next sling there works and lands.
    let next = a.t.bead("after the planting");
    a.t.ok(&["sling", &next, "--polecat", "honest2"]);
    a.t.patrol_until("the next bead done", 60, |t| t.bead_status(&next) == "done");
    a.landed(&evil);
    a.honest_landed(&honest);
    a.honest_landed(&next);
    a.t.doctor_clean();
}

#[test]
fn an_agent_sees_nothing_of_another_agent_and_its_commits_hold_only_its_own_work() {
    if !require_docker() {
        return;
    }
    // The honest polecat commits, then holds (its container runs) until released.
    let a = Arena::with_knobs(
        r#"
O=honest
try see-worktree ls $T/rigs/api/polecats/$O
try see-box cat $T/agents/api/$O/box/assignment.json
try see-outbox ls $T/agents/api/$O/outbox
try see-objects ls $T/agents/api/$O/git/objects
try see-private-ref ls $T/agents/api/$O/git/common
try see-registration ls $R/worktrees/$O
try see-town-db ls $T/.gt
try see-agents ls $T/agents/api/$O
{ ls -laR $T 2>&1; ls -la $R/worktrees 2>&1; for p in /proc/[0-9]*; do tr '\0' '\n' < $p/environ 2>/dev/null; done; grep -rs . /gt 2>/dev/null; } > /tmp/loot
cp /tmp/loot /gt/outbox/loot
work mine
gt done -m mine
"#,
        "AGENT_HOLD=1",
        2,
        &[],
    );
    let honest = a.sling("honest", "honest work");
    wait_for("the honest polecat's commit", 60, || {
        agent_branch_log(&a.t.root(), "api", "honest", &branch_of(&a.t, &honest))
            .filter(|l| l.contains("work by"))
    });
    let token =
        std::fs::read_to_string(a.t.root().join("agents/api/honest/box/assignment.json")).unwrap();
    let token: serde_json::Value = serde_json::from_str(&token).unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let evil = a.sling("evil", "snoop");
    wait_ended(&a, "evil", 60);
    a.assert_refused(
        "evil",
        &[
            "see-worktree",
            "see-box",
            "see-outbox",
            "see-objects",
            "see-private-ref",
            "see-registration",
            "see-town-db",
            "see-agents",
        ],
    );
    let loot = std::fs::read_to_string(a.outbox("evil").join("loot")).unwrap();
    assert!(loot.len() > 100, "the snooping ran: {loot}");
    assert!(!loot.contains(&token), "the other agent's token leaked");
    assert!(
        !loot.contains("work by api/honest"),
        "the other agent's uncommitted work leaked"
    );
    std::fs::write(a.t.root().join("agents/api/honest/box/release"), "").unwrap();
    a.t.patrol_until("both beads done", 90, |t| {
        t.bead_status(&honest) == "done" && t.bead_status(&evil) == "done"
    });
    let (_, files) = a.landed(&evil);
    assert_eq!(files, ["README", "evil.txt"]);
    a.honest_landed(&honest);
}

fn branch_of(t: &TestTown, bead: &str) -> String {
    t.json(&["bead", "show", bead])["branch"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn symlinks_fifos_and_directories_in_an_outbox_neither_hang_nor_mislead_patrol() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
printf '{"id":"followme","agent":"%s","generation":%s,"token":"%s","created_at":1,"kind":"mail","to":"mayor","subject":"followed-a-symlink","body":"x","mail_id":null}' "$GT_AGENT" "$GT_GENERATION" "$GT_TOKEN" > $OBJ/req
try valid-request-link ln -s $OBJ/req /gt/outbox/follow.json
try pagemap-link ln -s /proc/self/pagemap /gt/outbox/pagemap.json
try secret-link ln -s @MARK@/../secret.json /gt/outbox/secret.json
try zero-link ln -s /dev/zero /gt/outbox/zero.json
try fifo mkfifo /gt/outbox/fifo.json
try dir mkdir /gt/outbox/dir.json
try hardlink ln $OBJ/req /gt/outbox/hard.json
try write-inbox sh -c 'echo x > /gt/inbox/evil.json'
try write-assignment sh -c 'echo x > /gt/assignment.json'
try replace-outbox mv /gt/outbox /gt/outbox2
try replace-box sh -c 'echo x > /gt/release'
work mailbox
gt done -m mailbox
"#,
        2,
        &[],
    );
    let secret = a.t.dir.path().join("secret.json");
    std::fs::write(&secret, b"host secret: never read by gt").unwrap();
    let honest = a.sling("honest", "honest work");
    let evil = a.sling("evil", "mailbox tricks");
    wait_ended(&a, "evil", 60);
    let assignment = std::fs::read(a.t.root().join("agents/api/evil/box/assignment.json")).unwrap();
    // One pass over the planted entries ends promptly.
    let (report, _) = patrol_within(&a.t, 30);
    assert!(report["rejected"].as_u64().unwrap() >= 5, "{report}");
    a.t.patrol_until("both beads done", 90, |t| {
        t.bead_status(&honest) == "done" && t.bead_status(&evil) == "done"
    });
    a.assert_refused(
        "evil",
        &[
            "hardlink",
            "write-inbox",
            "write-assignment",
            "replace-outbox",
            "replace-box",
        ],
    );
    for k in ["valid-request-link", "pagemap-link", "fifo", "dir"] {
        assert_eq!(a.results("evil")[k], "ok", "{k} was planted");
    }
    // Nothing pointed at was read: the valid request behind a symlink was not applied,
    // the host file is untouched and no copy of it is kept.
    assert!(
        a.t.mayor_mail_subject("followed-a-symlink").is_empty(),
        "a request behind a symlink was applied"
    );
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        b"host secret: never read by gt"
    );
    let rejected = a.t.root().join("agents/api/evil/rejected");
    for e in std::fs::read_dir(&rejected).unwrap().flatten() {
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        assert!(
            m.is_file(),
            "{:?} in rejected/ is not a plain file",
            e.path()
        );
        let data = std::fs::read(e.path()).unwrap();
        assert!(
            !String::from_utf8_lossy(&data).contains("host secret")
                && !String::from_utf8_lossy(&data).contains("followed-a-symlink"),
            "{:?} holds what a symlink pointed at",
            e.path()
        );
    }
    let reasons: Vec<String> = events(&a.t, "request.rejected")
        .iter()
        .map(|e| format!("{} {}", e["data"]["file"], e["data"]["reason"]))
        .collect();
    for f in ["follow.json", "pagemap.json", "secret.json", "fifo.json"] {
        assert!(
            reasons.iter().any(|r| r.contains(f)),
            "{f} not reported: {reasons:?}"
        );
    }
    assert_eq!(
        std::fs::read(a.t.root().join("agents/api/evil/box/assignment.json")).unwrap(),
        assignment
    );
    let (_, files) = a.landed(&evil);
    assert_eq!(files, ["README", "evil.txt"]);
    a.honest_landed(&honest);
}

#[test]
fn mail_ids_chosen_by_an_agent_cannot_squat_the_mayors_notices() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
for id in done-1 done-2 done-3 push-failed-1 push-failed-2 saga-stuck-1 saga-stuck-2 exhausted-$GT_BEAD quiet-1 quiet-2 breaker-1; do
  gt mail send mayor -s "squat $id" -m "fake $id" --id $id >/dev/null 2>&1
done
work squat
gt done -m squat
"#,
        2,
        &[],
    );
    let honest = a.sling("honest", "honest work");
    let evil = a.sling("evil", "squat ids");
    a.t.patrol_until("both beads done", 90, |t| {
        t.bead_status(&honest) == "done" && t.bead_status(&evil) == "done"
    });
    let squats = a.t.mayor_mail_subject("squat ");
    assert_eq!(squats.len(), 11, "{squats:?}");
    for m in &squats {
        let id = m["id"].as_str().unwrap();
        assert!(id.starts_with("api.evil."), "squatted id {id}");
        assert_eq!(m["from"], "api/evil");
    }
    // The real notices: one per bead, from the agent, about its bead.
    for (bead, agent) in [(&evil, "api/evil"), (&honest, "api/honest")] {
        let notices: Vec<_> =
            a.t.mayor_mail_id("done-")
                .into_iter()
                .filter(|m| {
                    m["subject"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{bead} done by {agent}"))
                })
                .collect();
        assert_eq!(notices.len(), 1, "the done notice of {bead}: {notices:?}");
        assert!(
            !notices[0]["body"].as_str().unwrap().contains("fake"),
            "{notices:?}"
        );
    }
    a.landed(&evil);
    a.honest_landed(&honest);
}

#[test]
fn oversized_and_too_many_requests_are_rejected_or_spread_over_passes() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
req() { printf '{"id":"%s","agent":"%s","generation":%s,"token":"%s","created_at":%s,' "$1" "$GT_AGENT" "$GT_GENERATION" "$GT_TOKEN" "$2"; }
{ req big 1; printf '"kind":"checkpoint","note":"'; head -c 2097152 /dev/zero | tr '\0' x; printf '","head":null}'; } > /gt/outbox/big.json
{ req note 2; printf '"kind":"checkpoint","note":"'; head -c 5120 /dev/zero | tr '\0' n; printf '","head":null}'; } > /gt/outbox/note.json
{ req subject 3; printf '"kind":"mail","to":"mayor","subject":"'; head -c 300 /dev/zero | tr '\0' s; printf '","body":"b","mail_id":null}'; } > /gt/outbox/subject.json
{ req body 4; printf '"kind":"mail","to":"mayor","subject":"big body","body":"'; head -c 70000 /dev/zero | tr '\0' b; printf '","mail_id":null}'; } > /gt/outbox/body.json
{ req head 5; printf '"kind":"checkpoint","note":"n","head":"../../../etc/passwd"}'; } > /gt/outbox/head.json
{ req esc 6; printf '"kind":"escalate","subject":"'; head -c 300 /dev/zero | tr '\0' e; printf '","body":"b"}'; } > /gt/outbox/esc.json
i=0
while [ $i -lt 3000 ]; do { req c$i $((100 + i)); printf '"kind":"checkpoint","note":"c%s","head":null}' $i; } > /gt/outbox/c$i.json; i=$((i + 1)); done
touch /gt/outbox/written
# Done only once the host has taken every request (over several passes).
while ls /gt/outbox/ | grep -q '[.]json$'; do sleep 0.2; done
work many
gt done -m many
"#,
        2,
        &[],
    );
    let honest = a.sling("honest", "honest work");
    let evil = a.sling("evil", "flood requests");
    wait_for("the requests written", 120, || {
        a.outbox("evil").join("written").exists().then_some(())
    });
    let (first, _) = patrol_within(&a.t, 60);
    let seen = first["ingested"].as_u64().unwrap() + first["rejected"].as_u64().unwrap();
    // At most 2000 of the hostile outbox, and the honest polecat's checkpoint and done.
    assert!(seen <= 2000 + 2, "one pass read {seen} requests: {first}");
    a.t.patrol_until("both beads done", 120, |t| {
        t.bead_status(&honest) == "done" && t.bead_status(&evil) == "done"
    });
    let rejected: HashMap<String, String> = events(&a.t, "request.rejected")
        .iter()
        .map(|e| {
            (
                e["data"]["file"].as_str().unwrap().to_string(),
                e["data"]["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (f, why) in [
        ("big.json", "limit"),
        ("note.json", "note of 5120 bytes"),
        ("subject.json", "subject of 300 bytes"),
        ("body.json", "over 64 KiB"),
        ("head.json", "not a 40-digit hex"),
        ("esc.json", "subject of 300 bytes"),
    ] {
        let r = rejected
            .get(f)
            .unwrap_or_else(|| panic!("{f} not rejected: {rejected:?}"));
        assert!(r.contains(why), "{f}: {r}");
    }
    // The 2 MiB request was never read whole: its kept copy is empty.
    let kept = std::fs::read(a.t.root().join("agents/api/evil/rejected/big.json")).unwrap();
    assert!(kept.is_empty(), "{} bytes of it kept", kept.len());
    assert!(a.t.mayor_mail_subject("sss").is_empty());
    assert!(a.t.mayor_mail_subject("big body").is_empty());
    // Every small checkpoint was applied, once; none left in the outbox.
    let notes = a.t.json(&["bead", "show", &evil])["dispatches"][0]["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["step"] == "note")
        .count();
    let left = std::fs::read_dir(a.outbox("evil"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(left, 0, "requests left in the outbox");
    assert_eq!(notes, 3000);
    assert_eq!(rejected.len(), 6, "{rejected:?}");
    let db = std::fs::metadata(a.t.root().join(".gt/town.db"))
        .unwrap()
        .len();
    assert!(db < 32 << 20, "town.db grew to {db} bytes");
    a.landed(&evil);
    a.honest_landed(&honest);
}

#[test]
fn sparse_files_in_a_worktree_or_object_directory_are_neither_read_nor_imported() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
work sparse
gt done -m sparse
if [ "$ME" = sparse ]; then
  try worktree-sparse truncate -s 64G big
  try objects-sparse truncate -s 64G $OBJ/big
else
  mkdir -p $OBJ/pack
  try pack-sparse truncate -s 64G $OBJ/pack/pack-0000000000000000000000000000000000000000.pack
  try idx-sparse truncate -s 64G $OBJ/pack/pack-0000000000000000000000000000000000000000.idx
fi
"#,
        3,
        &[],
    );
    let honest = a.sling("honest", "honest work");
    let sparse = a.sling("sparse", "sparse worktree");
    let bloat = a.sling("bloat", "sparse pack");
    wait_ended(&a, "sparse", 60);
    wait_ended(&a, "bloat", 60);
    assert_eq!(a.results("sparse")["worktree-sparse"], "ok");
    assert_eq!(a.results("bloat")["pack-sparse"], "ok");
    // One pass finishes promptly; the next ones too.
    patrol_within(&a.t, 30);
    a.t.patrol_until("honest and sparse done", 60, |t| {
        t.bead_status(&honest) == "done" && t.bead_status(&sparse) == "done"
    });
    patrol_within(&a.t, 30);
    // The untracked sparse file was not committed by the host; its worktree is kept.
    let (_, files) = a.landed(&sparse);
    assert_eq!(files, ["README", "sparse.txt"]);
    assert!(a.t.worktree("api/sparse").join("big").exists());
    // A 64 GiB pack is refused unread, once and for good: the bead is escalated (never
    // retried every pass), and nothing of it was copied to the host.
    assert_eq!(a.t.bead_status(&bloat), "escalated");
    let stuck = a.t.mayor_mail_id("done-refused-");
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert!(
        stuck[0]["body"].as_str().unwrap().contains("limit"),
        "{stuck:?}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(a.t.root().join("rigs/api"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".import-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let objects = du(&a.repo().join(".git/objects"));
    assert!(
        objects < 64 << 20,
        "the rig's objects grew to {objects} bytes"
    );
    a.honest_landed(&honest);
}

/// Allocated bytes under `dir` (sparse files count what they use).
fn du(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        n += if m.is_dir() {
            du(&e.path())
        } else {
            m.blocks() * 512
        };
    }
    n
}

#[test]
fn an_agent_flooding_stdout_fills_no_more_than_its_capped_log() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
exec 3>&1
head -c 31457280 /dev/zero | tr '\0' x | fold -w 200 | tee /dev/fd/3 | wc -c > /gt/outbox/flooded
work flood
gt done -m flood
"#,
        2,
        &[],
    );
    let honest = a.sling("honest", "honest work");
    let evil = a.sling("evil", "flood stdout");
    let name = format!("gt-{}-api-evil", a.t.id);
    let inspect = docker(&["inspect", &name]);
    assert!(inspect.status.success(), "{inspect:?}");
    let c: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    let log = &c[0]["HostConfig"]["LogConfig"];
    assert_eq!(log["Type"], "json-file", "{log}");
    assert_eq!(log["Config"]["max-size"], "4900k", "{log}");
    assert_eq!(log["Config"]["max-file"], "2", "{log}");
    let path = c[0]["LogPath"].as_str().unwrap().to_string();
    wait_ended(&a, "evil", 120);
    let flooded: u64 = std::fs::read_to_string(a.outbox("evil").join("flooded"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(flooded > 30 << 20, "the agent printed {flooded} bytes");
    // The current file and the rotated ones beside it.
    let size: u64 = std::fs::read_dir(std::path::Path::new(&path).parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(size <= 10_000_000, "the log grew to {size} bytes");
    a.t.patrol_until("both beads done", 90, |t| {
        t.bead_status(&honest) == "done" && t.bead_status(&evil) == "done"
    });
    a.landed(&evil);
    a.honest_landed(&honest);
}

#[test]
fn a_setuid_file_made_by_an_agent_is_out_of_reach_and_the_agent_is_never_root() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
mkdir bin; cp /bin/busybox bin/busybox
try chmod-suid chmod u+s,g+s bin/busybox
id -u > /gt/outbox/uid
bin/busybox id -u > /gt/outbox/suid-uid 2>&1
bin/busybox sh -c 'cat /proc/self/status' > /gt/outbox/suid-status 2>&1
git add bin
work setuid
gt done -m setuid
"#,
        2,
        &[],
    );
    let honest = a.sling("honest", "honest work");
    let evil = a.sling("evil", "setuid");
    wait_ended(&a, "evil", 60);
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = std::fs::metadata(a.t.root()).unwrap();
    assert_eq!(
        root.permissions().mode() & 0o777,
        0o700,
        "the town is reachable by other users"
    );
    let suid = std::fs::metadata(a.t.worktree("api/evil").join("bin/busybox")).unwrap();
    assert_ne!(suid.uid(), 0, "an agent's file is owned by root");
    assert_ne!(
        suid.mode() & 0o4000,
        0,
        "the setuid bit was set on the host"
    );
    let uid = std::fs::read_to_string(a.outbox("evil").join("uid")).unwrap();
    assert_ne!(uid.trim(), "0", "the agent ran as root");
    let suid_uid = std::fs::read_to_string(a.outbox("evil").join("suid-uid")).unwrap();
    assert_ne!(suid_uid.trim(), "0", "the setuid copy gained root");
    let status = std::fs::read_to_string(a.outbox("evil").join("suid-status")).unwrap();
    assert!(
        status.contains("NoNewPrivs:\t1"),
        "no-new-privileges is off: {status}"
    );
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    assert_eq!(caps, "0000000000000000", "capabilities left: {caps}");
    a.t.patrol_until("both beads done", 90, |t| {
        t.bead_status(&honest) == "done" && t.bead_status(&evil) == "done"
    });
    let (commit, _) = a.landed(&evil);
    let mode = git(&a.remote, &["ls-tree", &commit, "bin/busybox"]);
    assert!(mode.starts_with("100755 "), "{mode}");
    a.honest_landed(&honest);
}

// ---------------------------------------------------------------------------------
// Holes found: each test fails against the current code (see its ignore reason).

#[test]
fn an_agent_holding_the_rigs_worktree_lock_cannot_stall_patrol() {
    if !require_docker() {
        return;
    }
    // Any static or glibc binary an agent brings (here the host's flock(1)) can lock.
    let flock = std::fs::read("/usr/bin/flock").expect("flock(1) on the host");
    let a = Arena::new(
        r#"
# Every lock file it can name: the host's is beside the repository, out of its sight.
for l in $R/gt-worktrees.lock $R/../worktrees.lock $R/worktrees.lock; do
  (./tools/flock -s $l -c 'sleep 100000' &) 2>/dev/null
done
touch /gt/outbox/locked; sleep 100000
"#,
        2,
        &[("tools/flock", &flock, true)],
    );
    let honest = a.sling("honest", "honest work");
    a.sling("evil", "hold the lock");
    wait_for("the lock to be held", 60, || {
        a.outbox("evil").join("locked").exists().then_some(())
    });
    wait_ended(&a, "honest", 60);
    // The honest agent's hand-over needs the lock to retire its worktree.
    patrol_within(&a.t, 40);
    assert_eq!(a.t.bead_status(&honest), "done");
}

#[test]
fn tracked_files_grown_sparse_after_done_do_not_stall_patrol() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
mkdir big; i=0; while [ $i -lt 64 ]; do : > big/f$i; i=$((i + 1)); done
git add big
work sparse
gt done -m sparse
i=0; while [ $i -lt 64 ]; do truncate -s 4294967295 big/f$i; i=$((i + 1)); done
"#,
        2,
        &[],
    );
    let honest = a.sling("honest", "honest work");
    let evil = a.sling("evil", "grow files");
    wait_ended(&a, "evil", 60);
    wait_ended(&a, "honest", 60);
    patrol_within(&a.t, 40);
    assert_eq!(a.t.bead_status(&evil), "done");
    assert_eq!(a.t.bead_status(&honest), "done");
}

#[test]
fn an_object_too_big_to_import_is_refused_without_costing_the_host_its_size_in_memory() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
truncate -s 1G zeros
git add zeros
work bomb
gt done -m bomb
du -k $OBJ > /gt/outbox/objects-du
"#,
        2,
        &[],
    );
    let evil = a.sling("evil", "zero bomb");
    wait_ended(&a, "evil", 180);
    let (_, peak_kib) = patrol_within(&a.t, 120);
    // An object over 256 MiB is not imported: the hand-over stops and a person is told,
    // once; the work stays in the agent's private state and worktree.
    assert_ne!(a.t.bead_status(&evil), "done");
    let stuck = a.t.mayor_mail_subject("[escalation]");
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert!(
        stuck[0]["body"].as_str().unwrap().contains("over the"),
        "{stuck:?}"
    );
    patrol_within(&a.t, 120);
    assert_eq!(a.t.mayor_mail_subject("[escalation]").len(), 1);
    assert!(
        peak_kib < 512 << 10,
        "the host peaked at {} MiB importing {}",
        peak_kib >> 10,
        std::fs::read_to_string(a.outbox("evil").join("objects-du")).unwrap_or_default()
    );
}

#[test]
fn a_directory_named_like_a_request_is_reported_once() {
    if !require_docker() {
        return;
    }
    let a = Arena::new(
        r#"
i=0; while [ $i -lt 20 ]; do mkdir /gt/outbox/d$i.json; i=$((i + 1)); done
work dirs
gt done -m dirs
"#,
        2,
        &[],
    );
    let evil = a.sling("evil", "dirs");
    wait_ended(&a, "evil", 60);
    for _ in 0..3 {
        patrol_within(&a.t, 30);
    }
    assert_eq!(a.t.bead_status(&evil), "done");
    let n = events(&a.t, "request.rejected").len();
    assert!(n <= 20, "{n} rejections of 20 directories over 3 passes");
}
