//! Faults of the world against the first hour's new surfaces: landing into the user's
//! own repository (gt killed at each step of a delivery, the user's git holding its
//! locks, the repository moved away, its disk full, the user committing or switching
//! branches in the middle of a delivery). Each test asserts: nothing of the user's is
//! lost or overwritten, no duplicate landing, the mayor told once per cause, and the
//! delivery converges once the fault is gone.

mod support;

use std::path::{Path, PathBuf};
use support::*;

fn local_rig(t: &TestTown) -> PathBuf {
    let src = t.source_repo("api");
    local_rig_at(t, &src, &scripted_agent(""), &[]);
    src
}

fn mr_of(t: &TestTown, bead: &str) -> serde_json::Value {
    t.json(&["mq", "show", bead])
}

/// Sling `title` and wait until its work is done (not yet approved).
fn done_one(t: &TestTown, title: &str) -> String {
    let id = t.bead(title);
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done", 90, |t| t.bead_status(&id) == "done");
    id
}

fn head(dir: &Path, rev: &str) -> String {
    git(dir, &["rev-parse", rev]).trim().to_string()
}

fn clone_head(t: &TestTown) -> String {
    head(&t.root().join("rigs/api/repo"), "refs/heads/main")
}

fn is_ancestor(dir: &Path, a: &str, b: &str) -> bool {
    std::process::Command::new("git")
        .current_dir(dir)
        .args(["merge-base", "--is-ancestor", a, b])
        .status()
        .unwrap()
        .success()
}

fn events_of(t: &TestTown, kind: &str) -> usize {
    t.json(&["log", "-n", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .count()
}

fn not_delivered(t: &TestTown, id: &str) -> bool {
    mr_of(t, id)["reason"]
        .as_str()
        .is_some_and(|r| r.starts_with("not in your repository yet"))
}

/// A file the user's own git holds while it runs (`index.lock`, `refs/heads/main.lock`):
/// gt's delivery waits, never takes or removes it, says so once, and delivers once the
/// user's git is done.
fn a_held_lock_waits(lock: &str) {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = local_rig(&t);
    let before = head(&src, "main");
    let lock = src.join(".git").join(lock);
    std::fs::write(&lock, "the user's git\n").unwrap();
    let id = land_one(&t, "a change");
    t.ok(&["patrol"]);
    t.ok(&["patrol"]);
    assert_eq!(head(&src, "main"), before, "the user's main did not move");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        "the user's git\n",
        "the user's lock is theirs"
    );
    assert!(!src.join(format!("work-{id}.txt")).exists());
    assert!(not_delivered(&t, &id), "{}", mr_of(&t, &id));
    let mails = t.mayor_mail_id("land-source-api-");
    assert_eq!(mails.len(), 1, "told once: {mails:?}");
    std::fs::remove_file(&lock).unwrap();
    t.patrol_until("delivered once the lock is gone", 30, |t| {
        head(&src, "main") == clone_head(t)
    });
    assert!(src.join(format!("work-{id}.txt")).exists());
    assert_eq!(git(&src, &["status", "--porcelain"]).trim(), "");
    t.ok(&["patrol"]);
    assert!(!not_delivered(&t, &id), "{}", mr_of(&t, &id));
    assert_eq!(t.mayor_mail_id("land-source-api-").len(), 1);
    t.doctor_clean();
}

#[test]
fn the_users_index_lock_held_delivery_waits_says_once_and_delivers_once_released() {
    a_held_lock_waits("index.lock");
}

#[test]
fn the_users_main_ref_lock_held_delivery_waits_says_once_and_delivers_once_released() {
    a_held_lock_waits("refs/heads/main.lock");
}

/// The first landing is kept out of the source by a held `index.lock`, so that a later
/// pass does nothing but deliver it.
fn landed_not_delivered(t: &TestTown, src: &Path) -> String {
    let lock = src.join(".git/index.lock");
    std::fs::write(&lock, "").unwrap();
    let id = land_one(t, "a change");
    assert!(not_delivered(t, &id), "{}", mr_of(t, &id));
    std::fs::remove_file(&lock).unwrap();
    id
}

#[test]
fn gt_killed_right_after_the_push_into_the_users_repository_converges_without_delivering_twice() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = local_rig(&t);
    let id = landed_not_delivered(&t, &src);
    let mut p = t.paused_at(&["patrol"], "mq.source.after_push", None);
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    // The push happened: the user's main and work tree have the work, nothing else.
    assert_eq!(head(&src, "main"), clone_head(&t));
    assert!(src.join(format!("work-{id}.txt")).exists());
    assert_eq!(git(&src, &["status", "--porcelain"]).trim(), "");
    // The next pass sees both sides in step: the reason is lifted, nothing pushed again.
    t.ok(&["patrol"]);
    assert!(!not_delivered(&t, &id), "{}", mr_of(&t, &id));
    assert_eq!(events_of(&t, "mq.delivered"), 0, "no second delivery");
    assert_eq!(t.mayor_mail_id("land-source-api-").len(), 1);
    // The queue keeps landing, and delivering.
    let next = land_one(&t, "another change");
    t.patrol_until("the next landing delivered", 30, |t| {
        head(&src, "main") == clone_head(t)
    });
    assert!(src.join(format!("work-{next}.txt")).exists());
    // Every commit once on the user's main.
    let log = git(&src, &["log", "--format=%s", "main"]);
    let subjects: std::collections::HashSet<&str> = log.lines().collect();
    assert_eq!(subjects.len(), log.lines().count(), "{log}");
    t.doctor_clean();
}

#[test]
fn gt_killed_right_before_the_push_leaves_the_users_repository_alone_and_the_next_pass_delivers() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = local_rig(&t);
    let before = head(&src, "main");
    let id = landed_not_delivered(&t, &src);
    let mut p = t.paused_at(&["patrol"], "mq.source.before_push", None);
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    assert_eq!(head(&src, "main"), before);
    t.patrol_until("delivered", 30, |t| head(&src, "main") == clone_head(t));
    assert!(src.join(format!("work-{id}.txt")).exists());
    assert_eq!(events_of(&t, "mq.delivered"), 1);
    t.doctor_clean();
}

#[test]
fn the_user_switching_branches_with_an_edit_in_the_middle_of_a_delivery_keeps_both() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = local_rig(&t);
    let id = landed_not_delivered(&t, &src);
    let release = t.root().join("release");
    let p = t.paused_at(&["patrol"], "mq.source.before_push", Some(&release));
    git(&src, &["checkout", "-q", "-b", "topic"]);
    std::fs::write(src.join("README"), "my edit on topic\n").unwrap();
    std::fs::write(&release, "").unwrap();
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    // main moved (it is not checked out any more); the user's branch and edit stayed.
    assert_eq!(head(&src, "main"), clone_head(&t));
    assert_eq!(git(&src, &["branch", "--show-current"]).trim(), "topic");
    assert_eq!(
        std::fs::read_to_string(src.join("README")).unwrap(),
        "my edit on topic\n"
    );
    assert!(!src.join(format!("work-{id}.txt")).exists());
    t.ok(&["patrol"]);
    assert!(!not_delivered(&t, &id), "{}", mr_of(&t, &id));
    t.doctor_clean();
}

#[test]
fn the_user_committing_in_the_middle_of_a_delivery_keeps_the_commit_and_is_told_once() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = local_rig(&t);
    let id = landed_not_delivered(&t, &src);
    let release = t.root().join("release");
    let p = t.paused_at(&["patrol"], "mq.source.before_push", Some(&release));
    std::fs::write(src.join("mine.txt"), "the user's own\n").unwrap();
    git(&src, &["add", "mine.txt"]);
    git(&src, &["commit", "-q", "-m", "the user's own commit"]);
    let mine = head(&src, "main");
    std::fs::write(&release, "").unwrap();
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        head(&src, "main"),
        mine,
        "the user's commit is never overwritten"
    );
    t.ok(&["patrol"]);
    t.ok(&["patrol"]);
    assert_eq!(head(&src, "main"), mine);
    assert!(not_delivered(&t, &id), "{}", mr_of(&t, &id));
    // One mail for the first cause (the lock), one for the separate ways.
    let mails = t.mayor_mail_id("land-source-api-");
    assert_eq!(mails.len(), 2, "{mails:?}");
    // The queue keeps landing in gt's clone meanwhile, without another mail.
    let next = land_one(&t, "another change");
    t.ok(&["patrol"]);
    assert_eq!(head(&src, "main"), mine);
    assert_eq!(t.mayor_mail_id("land-source-api-").len(), 2);
    // The user takes the work as told: both sides' commits are on their main, and gt's
    // target follows it.
    let clone = t.root().join("rigs/api/repo");
    git(
        &src,
        &[
            "pull",
            "-q",
            "--no-rebase",
            "--no-edit",
            clone.to_str().unwrap(),
            "main",
        ],
    );
    t.patrol_until("in step", 30, |t| head(&src, "main") == clone_head(t));
    assert!(is_ancestor(&src, &mine, "main"));
    assert!(src.join(format!("work-{id}.txt")).exists());
    assert!(src.join(format!("work-{next}.txt")).exists());
    assert!(!not_delivered(&t, &id) && !not_delivered(&t, &next));
    t.doctor_clean();
}

#[test]
fn the_users_repository_moved_away_is_said_once_and_delivered_once_it_is_back() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = local_rig(&t);
    let before = head(&src, "main");
    let away = src.with_file_name("api-moved");
    std::fs::rename(&src, &away).unwrap();
    let id = land_one(&t, "a change");
    t.ok(&["patrol"]);
    t.ok(&["patrol"]);
    assert!(!src.exists(), "gt creates nothing where the repository was");
    assert_eq!(head(&away, "main"), before);
    assert!(not_delivered(&t, &id), "{}", mr_of(&t, &id));
    let mails = t.mayor_mail_id("land-source-api-");
    assert_eq!(mails.len(), 1, "{mails:?}");
    // The doctor names what is wrong, or stays clean; it never fails on it.
    let out = t.run(&["doctor"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() || said.contains(src.to_str().unwrap()),
        "{said}"
    );
    std::fs::rename(&away, &src).unwrap();
    t.patrol_until("delivered once it is back", 30, |t| {
        head(&src, "main") == clone_head(t)
    });
    assert!(src.join(format!("work-{id}.txt")).exists());
    t.ok(&["patrol"]);
    assert!(!not_delivered(&t, &id));
    assert_eq!(t.mayor_mail_id("land-source-api-").len(), 1);
}

#[test]
fn the_users_repository_on_a_full_disk_keeps_everything_and_gets_the_work_once_there_is_room() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let Some(disk) = SmallDisk::mount(&t.root().parent().unwrap().join("small"), "4m") else {
        return;
    };
    let src = disk.0.join("api");
    make_repo(&src);
    local_rig_at(&t, &src, &scripted_agent(""), &[]);
    let before = head(&src, "main");
    // Fill the disk to the last byte.
    let filler = disk.0.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&[0u8]).is_ok() {}
        let _ = f.sync_all();
    }
    let id = land_one(&t, "a change");
    t.ok(&["patrol"]);
    assert_eq!(head(&src, "main"), before);
    assert_eq!(
        git(&src, &["--no-optional-locks", "status", "--porcelain"]).trim(),
        ""
    );
    assert!(not_delivered(&t, &id), "{}", mr_of(&t, &id));
    git(&src, &["fsck", "--no-progress"]);
    std::fs::remove_file(&filler).unwrap();
    t.patrol_until("delivered once there is room", 30, |t| {
        head(&src, "main") == clone_head(t)
    });
    assert!(src.join(format!("work-{id}.txt")).exists());
    assert_eq!(git(&src, &["status", "--porcelain"]).trim(), "");
    git(&src, &["fsck", "--no-progress"]);
    t.ok(&["patrol"]);
    assert!(!not_delivered(&t, &id));
    assert_eq!(t.mayor_mail_id("land-source-api-").len(), 1);
}

/// The remote's `polecat/*` branches.
fn remote_polecat_branches(remote: &Path) -> Vec<String> {
    git(
        remote,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/polecat/",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn gt_killed_between_the_merge_and_the_remote_branch_delete_deletes_it_on_a_later_pass() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(&t, &scripted_agent(""), &[]);
    let id = done_one(&t, "a change");
    assert_eq!(remote_polecat_branches(&remote).len(), 1, "pushed at done");
    t.ok(&["mq", "approve", &id]);
    let mut p = t.paused_at(&["patrol"], "mq.merged.after", None);
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    assert_eq!(mr_state(&t, &id), "merged");
    t.patrol_until("the merged branch deleted from the remote", 20, |_| {
        remote_polecat_branches(&remote).is_empty()
    });
    assert_eq!(events_of(&t, "branch.remote_pruned"), 1);
    // Its local branch too (the same pattern: pruned only in the pass that merged).
    let clone = t.root().join("rigs/api/repo");
    assert_eq!(git(&clone, &["branch", "--list", "polecat/*"]).trim(), "");
    // Nothing pending: later passes do not ask the remote again.
    t.ok(&["patrol"]);
    assert_eq!(events_of(&t, "branch.remote_pruned"), 1);
    t.doctor_clean();
}

#[test]
fn gt_killed_between_the_merge_and_the_local_prune_prunes_the_merged_branch_on_a_later_pass() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let _src = local_rig(&t);
    let id = done_one(&t, "a change");
    let clone = t.root().join("rigs/api/repo");
    assert_ne!(git(&clone, &["branch", "--list", "polecat/*"]).trim(), "");
    t.ok(&["mq", "approve", &id]);
    let mut p = t.paused_at(&["patrol"], "mq.merged.after", None);
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    assert_eq!(mr_state(&t, &id), "merged");
    t.ok(&["patrol"]);
    assert_eq!(git(&clone, &["branch", "--list", "polecat/*"]).trim(), "");
    assert_eq!(events_of(&t, "mq.local_pruned"), 1);
    t.ok(&["patrol"]);
    assert_eq!(
        events_of(&t, "mq.local_pruned"),
        1,
        "nothing pending any more"
    );
    t.doctor_clean();
}

/// `gt patrol --watch` with its stderr collected line by line.
struct Watching {
    child: std::process::Child,
    err: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Watching {
    fn start(t: &TestTown) -> Watching {
        let mut child = t.spawn(
            &["patrol", "--watch", "--interval", "200ms"],
            &[("NO_COLOR", "1")],
        );
        let stderr = child.stderr.take().unwrap();
        let err = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = err.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(l);
            }
        });
        Watching { child, err }
    }

    fn lines_with(&self, text: &str) -> usize {
        self.err
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    fn said(&self) -> String {
        self.err.lock().unwrap().join("\n")
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn patrol_watch_says_once_that_docker_is_down_and_once_that_it_is_back() {
    if !require_docker() {
        return;
    }
    let mut engine = PrivateEngine::start();
    let t = TestTown::new().on_engine(&engine.host());
    let passes = |t: &TestTown| events_of(t, "patrol.started");
    let w = Watching::start(&t);
    wait_for("a first pass", 30, || (passes(&t) >= 1).then_some(()));
    assert_eq!(w.lines_with("patrol:"), 0, "{}", w.said());
    engine.stop();
    wait_for("the outage said", 60, || {
        (w.lines_with("patrol:") >= 1).then_some(())
    });
    // Several more passes while Docker stays down: no line more.
    let at = passes(&t);
    wait_for("three more passes", 60, || {
        (passes(&t) >= at + 3).then_some(())
    });
    assert_eq!(w.lines_with("patrol:"), 1, "said once: {}", w.said());
    engine.restart();
    wait_for("the recovery said", 60, || {
        (w.lines_with("answers again") >= 1).then_some(())
    });
    let at = passes(&t);
    wait_for("three more passes", 60, || {
        (passes(&t) >= at + 3).then_some(())
    });
    assert_eq!(w.lines_with("answers again"), 1, "{}", w.said());
    assert_eq!(w.lines_with("patrol:"), 2, "{}", w.said());
    // A second outage is said again.
    engine.stop();
    wait_for("the second outage said", 60, || {
        (w.lines_with("patrol:") >= 3).then_some(())
    });
}

/// A repository whose every read of its refs hangs: its `packed-refs` is a fifo nobody
/// writes (`main` kept as a loose ref). Dropped: blocked readers are let go.
struct Hung(PathBuf);

impl Hung {
    fn hang(git_dir: &Path) -> Hung {
        let main = std::fs::read_to_string(git_dir.join("refs/heads/main"))
            .ok()
            .unwrap_or_else(|| {
                let out = std::process::Command::new("git")
                    .arg("--git-dir")
                    .arg(git_dir)
                    .args(["rev-parse", "main"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            });
        let packed = git_dir.join("packed-refs");
        let _ = std::fs::remove_file(&packed);
        std::fs::write(
            git_dir.join("refs/heads/main"),
            format!("{}\n", main.trim()),
        )
        .unwrap();
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&packed)
                .status()
                .unwrap()
                .success()
        );
        Hung(packed)
    }
}

impl Drop for Hung {
    fn drop(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        // O_RDWR on a fifo does not block: readers blocked in open() go on and see EOF.
        if let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(0o4000)
            .open(&self.0)
        {
            let _ = std::fs::remove_file(&self.0);
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(f);
        }
    }
}

#[test]
fn a_users_repository_that_hangs_is_tried_then_backed_off_and_the_queue_keeps_landing() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("retry_backoff = [\"0s\"]", "push_timeout = \"3s\"");
    let src = local_rig(&t);
    let before = head(&src, "main");
    let hung = Hung::hang(&src.join(".git"));
    let id = land_one(&t, "a change");
    let mut slow = Vec::new();
    for _ in 0..3 {
        let started = std::time::Instant::now();
        t.ok(&["patrol"]);
        let took = started.elapsed();
        if took >= std::time::Duration::from_secs(3) {
            slow.push(took);
        }
    }
    assert!(
        slow.len() <= 1,
        "passes kept waiting push_timeout for the hung repository: {slow:?}"
    );
    // The queue keeps landing meanwhile.
    let next = land_one(&t, "another change");
    assert!(not_delivered(&t, &id) && not_delivered(&t, &next));
    assert_eq!(t.mayor_mail_id("land-source-api-").len(), 1);
    drop(hung);
    assert_eq!(head(&src, "main"), before);
    t.patrol_until("delivered once it answers", 90, |t| {
        head(&src, "main") == clone_head(t)
    });
    assert!(src.join(format!("work-{next}.txt")).exists());
    t.ok(&["patrol"]);
    assert!(!not_delivered(&t, &id) && !not_delivered(&t, &next));
}

/// `dir` bind-mounted over itself read-only; unmounted when dropped.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(dir: &Path) -> Option<ReadOnly> {
        let run = |args: &[&str]| {
            std::process::Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !run(&["--bind"]) {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "CI=true but a bind mount cannot be made (tests run as root in CI)"
            );
            return None;
        }
        let ro = ReadOnly(dir.to_path_buf());
        let ok = std::process::Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount read-only");
        Some(ro)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_read_only_users_repository_is_said_once_and_gets_the_work_once_writable() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let src = local_rig(&t);
    let before = head(&src, "main");
    let Some(ro) = ReadOnly::mount(&src) else {
        return;
    };
    let id = land_one(&t, "a change");
    t.ok(&["patrol"]);
    t.ok(&["patrol"]);
    assert_eq!(head(&src, "main"), before);
    assert!(!src.join(format!("work-{id}.txt")).exists());
    assert!(not_delivered(&t, &id), "{}", mr_of(&t, &id));
    assert_eq!(t.mayor_mail_id("land-source-api-").len(), 1);
    drop(ro);
    t.patrol_until("delivered once writable", 30, |t| {
        head(&src, "main") == clone_head(t)
    });
    assert!(src.join(format!("work-{id}.txt")).exists());
    assert_eq!(git(&src, &["status", "--porcelain"]).trim(), "");
    t.ok(&["patrol"]);
    assert!(!not_delivered(&t, &id));
    assert_eq!(t.mayor_mail_id("land-source-api-").len(), 1);
}

#[test]
fn a_persons_push_between_rig_prune_remotes_look_and_its_delete_is_kept() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(&t, &scripted_agent(""), &[]);
    let id = land_one(&t, "a change");
    t.patrol_until("its remote branch deleted", 30, |_| {
        remote_polecat_branches(&remote).is_empty()
    });
    // The merged branch back on the remote (as a gt before remote pruning left it).
    let mr = mr_of(&t, &id);
    let branch = mr["branch"].as_str().unwrap().to_string();
    let commit = mr["commit"].as_str().unwrap().to_string();
    git(
        &t.root().join("rigs/api/repo"),
        &[
            "push",
            "-q",
            remote.to_str().unwrap(),
            &format!("{commit}:refs/heads/{branch}"),
        ],
    );
    let release = t.root().join("release");
    let p = t.paused_at(
        &["rig", "prune", "--remote"],
        "prune.remote.before_delete",
        Some(&release),
    );
    // A person pushes onto it meanwhile.
    let person = t.root().parent().unwrap().join("person");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "-b", &branch])
        .arg(&remote)
        .arg(&person)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::write(person.join("extra.txt"), "a person's work\n").unwrap();
    git(&person, &["add", "extra.txt"]);
    git(&person, &["commit", "-q", "-m", "mine"]);
    git(&person, &["push", "-q", "origin", &branch]);
    let theirs = head(&person, "HEAD");
    std::fs::write(&release, "").unwrap();
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        head(&remote, &format!("refs/heads/{branch}")),
        theirs,
        "a person's push is never deleted"
    );
    // A later prune and patrol keep it too.
    t.ok(&["rig", "prune", "--remote"]);
    t.ok(&["patrol"]);
    assert_eq!(head(&remote, &format!("refs/heads/{branch}")), theirs);
    assert_eq!(
        events_of(&t, "branch.remote_pruned"),
        1,
        "only the first deletion"
    );
}

#[test]
fn gt_top_streaming_says_docker_down_while_it_is_and_recovers_after_an_engine_restart() {
    if !require_docker() {
        return;
    }
    let mut engine = PrivateEngine::start();
    let t = TestTown::new().on_engine(&engine.host());
    let mut child = t.spawn(&["--json", "top", "--interval", "200ms"], &[]);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(v) = serde_json::from_str(&l)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let next_with = |what: &str, f: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(v) if f(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("no snapshot with {what} within 60s"),
            }
        }
    };
    let docker_problem = |v: &serde_json::Value| {
        v["problems"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["kind"] == "docker"))
    };
    next_with("the engine up", &|v| {
        v["engine_up"] == true && !docker_problem(v)
    });
    engine.stop();
    next_with("the engine down, said", &|v| {
        v["engine_up"] == false && docker_problem(v)
    });
    engine.restart();
    next_with("the engine up again, the problem gone", &|v| {
        v["engine_up"] == true && !docker_problem(v)
    });
    let _ = child.kill();
    let _ = child.wait();
}

/// An agent whose first attempt stops in the middle of an interactive rebase with a
/// stash kept, and leaves what a `git gc` and a `git add` killed -9 leave (`gc.pid`,
/// `index.lock`), then is killed with its container; its next attempt runs everyday git
/// (each command's exit code and stderr in `outbox/survey`) and is done.
const KILLED_MID_GIT: &str = r#"
set -eu
S=/gt/outbox/survey
run() { n=$1; shift; "$@" >/tmp/out 2>/tmp/err; rc=$?; { echo "== $n rc=$rc"; cat /tmp/err; } >> $S; }
if [ "$GT_GENERATION" = 1 ]; then
  echo one > one.txt; git add one.txt; git commit -q -m one
  echo two > two.txt; git add two.txt; git commit -q -m two
  echo stashed > stashed.txt; git add stashed.txt; git stash -q
  GIT_SEQUENCE_EDITOR="sed -i s/^pick/edit/" git rebase -q -i HEAD~1 >/dev/null 2>&1
  echo "4242 $(hostname)" > "$(git rev-parse --git-common-dir)/gc.pid"
  touch "$(git rev-parse --git-path index.lock)"
  echo ready > /gt/outbox/ready
  sleep 600
fi
set +e
run status git status
run commit sh -c 'echo three > three.txt && git add three.txt && git commit -q -m three'
run rebase env GIT_SEQUENCE_EDITOR=true git rebase -q -i HEAD~2
run stash-pop git stash pop -q
run commit-stash sh -c 'git add -A && git commit -q -m "from the stash"'
run gc git gc -q
run fsck git fsck --no-progress --no-dangling
set -e
gt done -m "after a kill"
"#;

#[test]
fn an_agent_killed_mid_rebase_gc_and_stash_starts_clean_next_time_and_its_work_is_imported() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(KILLED_MID_GIT, &[]);
    let id = t.bead("killed mid-git");
    t.ok(&["sling", &id, "--polecat", "phoenix"]);
    let outbox = t.root().join("agents/api/phoenix/outbox");
    wait_for("the first attempt in the middle of its rebase", 60, || {
        outbox.join("ready").exists().then_some(())
    });
    let running = t.running_containers();
    assert_eq!(running.len(), 1, "{running:?}");
    let out = docker(&["kill", &running[0]]);
    assert!(out.status.success(), "{out:?}");
    t.patrol_until("the bead done on its next attempt", 120, |t| {
        t.bead_status(&id) == "done"
    });
    let text = std::fs::read_to_string(outbox.join("survey")).unwrap_or_default();
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("== ") && !l.ends_with(" rc=0"))
        .collect();
    assert!(
        text.contains("== fsck") && failed.is_empty(),
        "git in the next attempt: {text}"
    );
    let repo = t.root().join("rigs/api/repo");
    let branch = t.json(&["bead", "show", &id])["branch"]
        .as_str()
        .unwrap()
        .to_string();
    let subjects = git(&repo, &["log", "--format=%s", &format!("main..{branch}")]);
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        ["from the stash", "three", "two", "one"],
        "{subjects}"
    );
    assert_eq!(
        git(&repo, &["show", &format!("{branch}:stashed.txt")]),
        "stashed\n"
    );
    git(&repo, &["fsck", "--no-dangling", "--no-progress"]);
}
