//! The adversary's attacks on issue 21's fixes (and their siblings), from inside an
//! agent's container: each test is a hostile agent (a rig command) against the real
//! binary and a real engine, and asserts the SAFE behaviour: it fails while the break
//! exists and passes once it is fixed. Attacks whose defence holds stay as tests too.

mod support;

use support::*;

/// A rig `api` whose remote is a bare clone of its source (so the remote has `main`),
/// with `command` and `extra` settings; returns the remote's path.
fn landing_rig(t: &TestTown, command: &str, extra: &[&str]) -> std::path::PathBuf {
    let src = t.source_repo("api");
    let remote = t.root().parent().unwrap().join("remote.git");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&src)
        .arg(&remote)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let image = test_image();
    let mut args = vec![
        "rig",
        "add",
        "api",
        src.to_str().unwrap(),
        "--image",
        &image,
        "--command",
        command,
        "--memory",
        "256m",
        "--max-polecats",
        "2",
        "--remote",
        remote.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    t.ok(&args);
    remote
}

fn on_remote(remote: &std::path::Path, args: &[&str]) -> String {
    git(remote, args).trim().to_string()
}

/// The latest merge request of `bead`, as `gt mq list --json` shows it.
fn latest_mr(t: &TestTown, bead: &str) -> serde_json::Value {
    t.json(&["mq", "list", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .rfind(|m| m["bead"] == bead)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

fn events_of(t: &TestTown, kind: &str) -> Vec<serde_json::Value> {
    t.json(&["log", "-n", "100000"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// `gt costs --json` of rig `rig` (its one row).
fn costs_of(t: &TestTown, rig: &str) -> serde_json::Value {
    let rows = t.json(&["costs", "--rig", rig]);
    rows.as_array()
        .and_then(|r| r.first())
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// A second rig, `web`, from a fresh repo, running `command`.
fn rig_web(t: &TestTown, command: &str) {
    let src = t.source_repo("web");
    t.ok(&[
        "rig",
        "add",
        "web",
        src.to_str().unwrap(),
        "--image",
        &test_image(),
        "--memory",
        "256m",
        "--command",
        command,
    ]);
}

// ATTACK (merge queue, item 19's sibling): "empty work is merged". Item 19 made a done
// whose head IS the target "no change"; an agent that commits nothing with a commit
// (`git commit --allow-empty`), or adds a file and removes it again, has a head that is
// not on the target but whose tree is the target's. The queue must not record that as
// a landing (merged, with the target's own head as "its" commit): nothing landed.
#[test]
fn an_empty_commit_or_a_change_that_undoes_itself_is_no_change_never_a_landing() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(
        &t,
        r#"if gt prime | grep -q empty-commit; then
  git commit -q --allow-empty -m "did the work (honest)"
else
  echo x > f.txt; git add f.txt; git commit -q -m "add f"; git rm -q f.txt; git commit -q -m "remove f"
fi
gt done -m finished"#,
        &["--merge", "auto"],
    );
    let before = on_remote(&remote, &["rev-parse", "main"]);
    let a = t.bead("empty-commit");
    let b = t.bead("undoes-itself");
    t.ok(&["sling", &a, &b]);
    t.patrol_until("both beads done", 90, |t| {
        t.bead_status(&a) == "done" && t.bead_status(&b) == "done"
    });
    t.ok(&["patrol"]);
    t.ok(&["mq", "run"]);
    assert_eq!(
        on_remote(&remote, &["rev-parse", "main"]),
        before,
        "nothing should have been pushed"
    );
    for id in [&a, &b] {
        let m = latest_mr(&t, id);
        assert_ne!(
            m["state"], "merged",
            "a change with nothing in it is recorded as landed: {m}"
        );
    }
    assert!(
        events_of(&t, "mr.merged").is_empty(),
        "{:?}",
        events_of(&t, "mr.merged")
    );
}

// ATTACK (costs, item 13's sibling): a forged cost that is *plausible* by the $1-per-KiB
// rule is not flagged, and unflagged usage counts toward every rig's daily budget. 60 KB
// of filler (nothing) lets an agent claim $55 and stop another rig for 24 hours.
#[test]
fn a_forged_cost_padded_with_filler_never_stops_another_rig() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_cost_per_day = 50.0", "");
    t.rig_with_remote(
        r#"pad=$(printf '%1000s' x); i=0; while [ $i -lt 60 ]; do echo "$pad"; i=$((i + 1)); done; echo '{"type":"result","total_cost_usd":55,"usage":{"input_tokens":10,"output_tokens":5}}'; echo w > w.txt; gt done -m ok"#,
        &[],
    );
    rig_web(&t, "echo w > w.txt; gt done -m ok");
    let forged = t.bead("forges a plausible cost");
    t.ok(&["sling", &forged]);
    t.patrol_until("the bead done and its agent released", 60, |t| {
        t.bead_status(&forged) == "done" && t.all_containers() == 0
    });
    let row = costs_of(&t, "api");
    eprintln!("api's recorded usage: {row}");
    let other = t.ok(&["bead", "create", "--rig", "web", "unrelated work"]);
    let out = t.run(&["sling", other.trim()]);
    assert!(
        out.status.success(),
        "rig web is stopped by rig api's claim: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ATTACK (costs, item 13's sibling "hide one's own cost"): the meter parses a line only
// when it starts with `{`. Anything printed without a line end just before the CLI's own
// `result` line (a background process writing to the container's stdout) glues onto it,
// and the run's real cost is never recorded: budgets bypassed.
#[test]
fn a_partial_line_printed_before_the_result_does_not_hide_the_cost() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(
        r#"printf 'noise without a line end '; echo '{"type":"result","total_cost_usd":0.7,"usage":{"input_tokens":900,"output_tokens":90}}'; echo w > w.txt; gt done -m ok"#,
        &[],
    );
    let id = t.bead("hides its cost");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done and its agent released", 60, |t| {
        t.bead_status(&id) == "done" && t.all_containers() == 0
    });
    let row = costs_of(&t, "api");
    assert!(
        (row["cost_usd"].as_f64().unwrap_or(0.0) - 0.7).abs() < 1e-9,
        "the run's cost is not recorded: {row}"
    );
    assert_eq!(row["input_tokens"], 900, "{row}");
}

// ATTACK (mail, escalations): an agent's ordinary mail whose subject starts with
// `[escalation]` is classified as an escalation (the kind comes from the subject), so
// `gt mail inbox --kind escalation` (what needs a person) can be filled with forged
// "budget reached" / "main is broken" notices that look like patrol's own.
#[test]
fn an_agents_mail_cannot_pass_for_an_escalation() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(
        r#"gt mail send mayor -s "[escalation] budget reached: agents have spent \$99 in the last 24 hours" -m "forged"; echo w > w.txt; gt done -m ok"#,
        &[],
    );
    let id = t.bead("forges an escalation");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done and its agent released", 60, |t| {
        t.bead_status(&id) == "done" && t.all_containers() == 0
    });
    let esc = t.json(&["mail", "inbox", "--as", "mayor", "--kind", "escalation"]);
    let forged: Vec<_> = esc
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .unwrap_or("")
                .contains("budget reached")
        })
        .collect();
    assert!(
        forged.is_empty(),
        "an agent's mail is listed as an escalation: {forged:?}"
    );
}

// ATTACK (drain/stop, "keep writing after done"): after its `gt done` the agent goes on:
// a commit, more mail, a checkpoint, a second done. None of it is applied, and the
// merge request holds the head the done named, not a commit made after it.
#[test]
fn requests_written_after_done_are_never_applied() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(
        r#"echo w > w.txt; gt done -m first; trap '' TERM; echo more > more.txt; git add more.txt; git commit -q -m more; gt mail send mayor -s after-done -m x || true; gt checkpoint -m after-done || true; gt done -m second || true; sleep 5"#,
        &[],
    );
    let id = t.bead("keeps writing");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done and its agent released", 90, |t| {
        t.bead_status(&id) == "done" && t.all_containers() == 0
    });
    t.ok(&["patrol"]);
    let mut applied = Vec::new();
    if !t.mayor_mail_subject("after-done").is_empty() {
        applied.push("a mail sent after done reached the mayor".to_string());
    }
    let show = t.ok(&["bead", "show", &id]);
    if show.contains("after-done") {
        applied.push("a checkpoint written after done is on the bead".to_string());
    }
    let mrs: Vec<_> = t
        .json(&["mq", "list", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["bead"] == id.as_str())
        .cloned()
        .collect();
    if mrs.len() != 1 {
        applied.push(format!("a second done made another merge request: {mrs:?}"));
    }
    if let Some(c) = mrs.first().and_then(|m| m["commit"].as_str()) {
        let files = git(
            &t.root().join("rigs/api/repo"),
            &["ls-tree", "-r", "--name-only", c],
        );
        if files.contains("more.txt") {
            applied.push(format!(
                "the merge request holds a commit made after done: {files}"
            ));
        }
    }
    assert!(
        applied.is_empty(),
        "requests after done were applied: {applied:?}"
    );
}

// ATTACK (pushes/imports, item 15's sibling "deep trees"): the host's import of an
// agent's work (`git::import_work`, its inner `tree` function) walks each new commit's
// tree by recursion, one Rust stack frame per level. A commit 160,000 directories deep (four
// `git fast-import` rounds of 40,000, each putting the last round's tree at its bottom,
// then removed again by a second commit so the
// worktree is clean) overflows the host's stack: the patrol pass that ingests the done
// dies (SIGABRT), every pass after it too, and every rig of the town stops.
#[test]
fn a_commit_with_a_very_deep_tree_does_not_kill_the_pass_for_everyone() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(
        r#"b=$(git symbolic-ref HEAD)
p=$(awk 'BEGIN{for(i=0;i<40000;i++) printf "a/"}')
# Four rounds of 40,000 levels: each puts the last round's tree 40,000 levels down.
{ printf 'commit %s\ncommitter a <a@b> 1 +0000\ndata 4\ndeep\nfrom %s^0\nM 100644 inline %sf\ndata 2\nx\n\n' "$b" "$b" "$p"; } | git fast-import --quiet
for r in 2 3 4; do
  tr=$(git rev-parse "$b^{tree}")
  { printf 'commit %s\ncommitter a <a@b> %s +0000\ndata 4\ndeep\nfrom %s^0\nM 040000 %s %sd\n\n' "$b" "$r" "$b" "$tr" "$p"; } | git fast-import --quiet
done
{ printf 'commit %s\ncommitter a <a@b> 9 +0000\ndata 4\nundo\nfrom %s^0\nD a\n\n' "$b" "$b"; } | git fast-import --quiet
git reset -q --hard
echo "deep=$(git rev-list --count HEAD)"
gt done -m ok"#,
        &["--max-polecats", "1"],
    );
    rig_web(&t, "echo w > w.txt; gt done -m ok");
    let deep = t.bead("a deep tree");
    t.ok(&["sling", &deep]);
    let name = t.json(&["bead", "show", &deep])["agent"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    eprintln!("hostile agent: {name}");
    // Wait for its done to be written (the fast-import takes a while).
    wait_for("the deep agent to end", 120, || {
        (t.containers_in("exited") >= 1).then_some(())
    });
    let said = t.ok(&["peek", "--bead", &deep]);
    assert!(
        said.contains("deep=6"),
        "the deep commit was not made: {said}"
    );
    let other = t.ok(&["bead", "create", "--rig", "web", "unrelated work"]);
    let other = other.trim().to_string();
    t.ok(&["sling", &other]);
    let mut failures = Vec::new();
    t.patrol_until("the other rig's bead done", 90, |t| {
        let out = t.run(&["patrol"]);
        if !out.status.success() {
            failures.push(format!(
                "{:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .chars()
                    .rev()
                    .take(400)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect::<String>()
            ));
        }
        assert!(
            failures.len() < 3,
            "patrol dies on the deep tree: {failures:?}"
        );
        t.bead_status(&other) == "done"
    });
    assert!(failures.is_empty(), "patrol died: {failures:?}");
}

fn set_secret(t: &TestTown, name: &str, value: &str) {
    let out = t
        .cmd()
        .args(["secret", "set", name])
        .write_stdin(value)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

// ATTACK (redaction / mail, "see or leak a secret"): rig api is given secret API_KEY;
// rig web is not. api's agent mails the value to web's polecat. The host writes the
// message into web's inbox as it is, so web's agent (its container, its `gt prime`, a
// model that was never given the key) reads the value in clear. Views redact; the
// delivery into another rig's container does not.
#[test]
fn a_secret_mailed_to_another_rigs_agent_does_not_reach_its_container() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let value = "sk-live-5e1f00c0ffee7a11d3adbeef";
    set_secret(&t, "API_KEY", value);
    t.rig_with_remote(
        r#"to=$(gt prime | sed -n 's/.*mailto=\([a-z0-9_/-]*\).*/\1/p' | head -1); gt mail send "$to" -s "hello" -m "the key is $API_KEY"; echo w > w.txt; gt done -m ok"#,
        &["--secret", "API_KEY"],
    );
    // web's agent waits for its mail, and shows what its prime says.
    rig_web(
        &t,
        r#"i=0; while [ $i -lt 60 ] && ! ls /gt/inbox/*.json >/dev/null 2>&1; do sleep 1; i=$((i + 1)); done; sleep 1; gt prime > /gt/outbox/prime-seen.txt; gt done -m ok"#,
    );
    let w = t.ok(&["bead", "create", "--rig", "web", "waits for mail"]);
    let w = w.trim().to_string();
    let web_agent = t.json(&["sling", &w])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    let a = t.bead(&format!("mailto={web_agent}"));
    t.ok(&["sling", &a]);
    let web_name = polecat_name(&web_agent).to_string();
    let seen = t
        .root()
        .join("agents/web")
        .join(&web_name)
        .join("outbox/prime-seen.txt");
    let inbox = t.root().join("agents/web").join(&web_name).join("inbox");
    let mut leaked = Vec::new();
    t.patrol_until("web's agent to read its mail", 90, |_| {
        for e in std::fs::read_dir(&inbox).into_iter().flatten().flatten() {
            if std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains(value)
            {
                leaked.push(e.path());
            }
        }
        seen.exists() || !leaked.is_empty()
    });
    assert!(
        leaked.is_empty(),
        "rig web's container is given rig api's secret in its inbox: {leaked:?}"
    );
    let prime = std::fs::read_to_string(&seen).unwrap_or_default();
    assert!(
        !prime.contains(value),
        "web's gt prime shows api's key: {prime}"
    );
}

// ATTACK (merge queue, item 2's sibling "never resurrect what a person removed"): a
// change leaks a secret and lands; a person rewinds the remote's main to drop it. An
// agent whose branch holds the dropped commit is sent back ("carries what a rewind
// removed"); on its next attempt it does what it is told (`git rebase --onto main
// GONE`) and then applies GONE's patch again (`git diff GONE^1 GONE | git apply`): a new
// commit with the same patch, on the
// new main. The rewind check only looks at ancestry (`land::removed_in`), so the
// removed change lands again and the secret is back on the remote's main.
#[test]
fn a_change_a_person_rewound_away_is_not_landed_again_as_a_cherry_pick() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let remote = landing_rig(
        &t,
        r#"if gt prime | grep -q LEAKY; then echo 'password=hunter2' > leak.txt; git add leak.txt; git commit -q -m leak; gt done -m ok; exit 0; fi
if gt prime | grep -q 'removed from main on purpose'; then
  gone=$(gt prime | grep -o 'on purpose (up to [0-9a-f]*' | grep -o '[0-9a-f]\{40\}' | head -1)
  git rebase -q --onto main "$gone"
  git diff "$gone^1" "$gone" | git apply --index && git commit -q -m "the same change again"
  gt done -m again; exit 0
fi
i=0; while [ $i -lt 90 ] && ! ls /gt/inbox/*.json >/dev/null 2>&1; do sleep 1; i=$((i + 1)); done
echo mine > mine.txt; git add mine.txt; git commit -q -m mine; gt done -m ok"#,
        &["--merge", "auto"],
    );
    let before = on_remote(&remote, &["rev-parse", "main"]);
    let leaky = t.bead("LEAKY change");
    t.ok(&["sling", &leaky]);
    t.patrol_until("the leaky change on the remote", 90, |t| {
        latest_mr(t, &leaky)["state"] == "merged"
    });
    let files = on_remote(&remote, &["ls-tree", "--name-only", "main"]);
    assert!(files.contains("leak.txt"), "{files}");
    // An agent starts on the main that holds the leak.
    let h = t.bead("ordinary work");
    let agent = t.json(&["sling", &h])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    // A person drops the leak from the remote's main.
    git(&remote, &["update-ref", "refs/heads/main", &before]);
    t.ok(&["patrol"]);
    // Then the agent finishes.
    t.ok(&["mail", "send", &agent, "-s", "go", "-m", "go"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(deadline_secs(120));
    loop {
        t.run(&["patrol"]);
        let files = on_remote(&remote, &["ls-tree", "--name-only", "main"]);
        assert!(
            !files.contains("leak.txt"),
            "the change the person removed is back on the remote's main: {files}\n{}",
            t.ok(&["log", "-n", "30"])
        );
        let m = latest_mr(&t, &h);
        if files.contains("mine.txt")
            || t.bead_status(&h) == "failed"
            || std::time::Instant::now() > deadline
        {
            eprintln!(
                "ended with {m}\n{}",
                String::from_utf8_lossy(&t.run(&["peek", "--bead", &h]).stdout)
            );
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

// ATTACK (costs, item 4's "usage must be read from the whole stream as it goes"): the
// usage is read when the container ends, from what the engine kept, and the engine
// keeps at most ~10 MB (two rotated files of 4.9 MB). An agent that prints 12 MB of
// noise after its (Claude) `result` line, or after its Codex turns, pushes its usage out
// of the engine's log before the host reads it: the run costs nothing.
#[test]
#[ignore = "usage read as it goes needs a log follower or the gateway (issue 24): the engine keeps only the last 2 x 4.9 MB"]
fn usage_followed_by_more_output_than_the_engine_keeps_is_still_counted() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(
        r#"echo '{"type":"result","total_cost_usd":0.6,"usage":{"input_tokens":4000,"output_tokens":400}}'; echo '{"type":"turn.completed","usage":{"input_tokens":5000,"output_tokens":50}}'; head -c 12000000 /dev/zero | tr '\0' x | fold -w 1000; echo; echo w > w.txt; gt done -m ok"#,
        &[],
    );
    let id = t.bead("reports, then floods");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done and its agent released", 120, |t| {
        t.bead_status(&id) == "done" && t.all_containers() == 0
    });
    let row = costs_of(&t, "api");
    assert!(
        (row["cost_usd"].as_f64().unwrap_or(0.0) - 0.6).abs() < 1e-9,
        "the reported cost was pushed out of the engine's log: {row}"
    );
    assert_eq!(row["input_tokens"], 9000, "{row}");
}

// ATTACK (escalations, "10,000 escalations per dispatch can bury the mayor"): the cap
// is per dispatch (10, then one notice). One polecat given bead after bead sends 10 on
// each: the mayor's inbox fills with one agent's escalations without bound, unlike mail
// (at most 50 unread from one sender in one inbox).
#[test]
fn one_agent_cannot_bury_the_mayor_in_escalations_over_many_dispatches() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(
        r#"i=0; while [ $i -lt 10 ]; do gt escalate -s "urgent $i on $GT_BEAD" -m "look at me"; i=$((i + 1)); done; echo w > "w-$GT_BEAD.txt"; gt done -m ok"#,
        &["--max-polecats", "1"],
    );
    let beads: Vec<String> = (0..7).map(|i| t.bead(&format!("bead {i}"))).collect();
    for b in &beads {
        t.ok(&["sling", b]);
        t.patrol_until("the bead done and its agent released", 60, |t| {
            t.bead_status(b) == "done" && t.all_containers() == 0
        });
    }
    let from_agent: Vec<_> = t
        .mayor_mail()
        .into_iter()
        .filter(|m| m["from"].as_str().unwrap_or("").starts_with("api/"))
        .filter(|m| m["subject"].as_str().unwrap_or("").contains("urgent"))
        .collect();
    eprintln!(
        "{} escalations from the agent; {} mails in all",
        from_agent.len(),
        t.mayor_mail().len()
    );
    assert!(
        from_agent.len() <= 50,
        "one agent has {} unread escalations in the mayor's inbox",
        from_agent.len()
    );
}

// ATTACK (pushes/imports, item 15's sibling "100k tiny objects" in worktree mode, and
// "back off what keeps failing"): the agent leaves 200,001 empty files named like loose
// objects in its object directory and says done. The host copies every one of them into
// a staging directory (`workspace::stage_objects`) before the file cap refuses the
// import; the refused saga is retried on every pass, so every pass pays the 200,000
// copies again (under the rig's git lock), before the other rigs' landings, mail and
// dispatches.
#[test]
fn an_import_refused_for_too_many_files_does_not_slow_every_pass() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.rig_with_remote(
        r#"O=$GIT_OBJECT_DIRECTORY
awk -v o="$O" 'BEGIN { for (d = 0; d < 256; d++) { dir = sprintf("%s/%02x", o, d); system("mkdir -p " dir); for (i = 0; i < 782; i++) { f = sprintf("%s/%038x", dir, d * 1000 + i + 7); printf "" > f; close(f) } } }'
echo "made=$(find "$O" -type f | wc -l)"
echo w > w.txt; gt done -m ok"#,
        &["--max-polecats", "1"],
    );
    rig_web(&t, "echo w > w.txt; gt done -m ok");
    let hostile = t.bead("many tiny files");
    t.ok(&["sling", &hostile]);
    wait_for("the hostile agent to end", 180, || {
        (t.containers_in("exited") >= 1).then_some(())
    });
    let said = t.ok(&["peek", "--bead", &hostile]);
    eprintln!("{said}");
    // The first pass finds out (and may pay for it); later ones must not pay it again.
    // Each later pass is given `limit` and killed past it (patrol is crash-safe).
    t.run(&["patrol"]);
    let other = t.ok(&["bead", "create", "--rig", "web", "unrelated work"]);
    t.ok(&["sling", other.trim()]);
    let limit = std::time::Duration::from_secs(deadline_secs(3));
    let mut took = Vec::new();
    for _ in 0..2 {
        let start = std::time::Instant::now();
        let mut p = t.spawn(&["patrol"], &[]);
        let killed = loop {
            if p.try_wait().unwrap().is_some() {
                break false;
            }
            if start.elapsed() > limit {
                let _ = p.kill();
                let _ = p.wait();
                break true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        took.push((start.elapsed().as_secs_f64(), killed));
    }
    eprintln!("later passes: {took:?}; bead {}", t.bead_status(&hostile));
    assert!(
        took.iter().all(|(_, killed)| !killed),
        "every pass pays for the refused import again (seen: passes of 96-120 s each, \
         forever): {took:?} (seconds, killed at {limit:?})"
    );
}

/// `text` as a terminal shows it: CSI sequences (ESC [ … final byte) take no room.
fn as_terminal_shows(text: &str) -> String {
    let mut out = String::new();
    let mut it = text.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' && it.peek() == Some(&'[') {
            it.next();
            for d in it.by_ref() {
                if ('\x40'..='\x7e').contains(&d) {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

// ATTACK (redaction, "make a secret appear in clear in any view"): redaction matches the
// value's exact bytes. The agent prints its key with an invisible SGR reset in the
// middle (`sk-live-5e1f` ESC[0m `00c0ffee…`): nothing matches, the transcript keeps it
// as it is, and `gt peek --raw` (bytes as they are, for a terminal) shows the whole key
// in clear on the person's screen.
#[test]
#[ignore = "`gt peek --raw` passes control sequences through by design; redaction matches bytes as written"]
fn a_secret_split_by_an_invisible_escape_is_not_shown_in_clear() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let value = "sk-live-5e1f00c0ffee7a11d3adbeef";
    set_secret(&t, "API_KEY", value);
    t.rig_with_remote(
        r#"a=$(printf %s "$API_KEY" | cut -c1-12); b=$(printf %s "$API_KEY" | cut -c13-); printf 'key: %s\033[0m%s\n' "$a" "$b"; echo w > w.txt; gt done -m ok"#,
        &["--secret", "API_KEY"],
    );
    let id = t.bead("prints its key, split");
    t.ok(&["sling", &id]);
    t.patrol_until("the bead done and its agent released", 60, |t| {
        t.bead_status(&id) == "done" && t.all_containers() == 0
    });
    let raw =
        String::from_utf8_lossy(&t.run(&["peek", "--raw", "--bead", &id]).stdout).into_owned();
    assert!(raw.contains("key: "), "{raw}");
    assert!(
        !as_terminal_shows(&raw).contains(value),
        "gt peek --raw shows the key in clear on a terminal: {raw:?}"
    );
}

// ATTACK (costs, item 4's "budgets are bypassed"): budgets are in dollars and only a
// Claude `result` carries dollars; Codex's `turn.completed` events carry tokens only, so
// a Codex agent's usage never counts toward `max_cost_per_bead`/`max_cost_per_day`: a
// dispatch that reports 20 million tokens is re-dispatched as if it had cost nothing.
#[test]
#[ignore = "dollar budgets need a price table or costs from the wire (issue 24)"]
fn a_codex_agents_tokens_count_toward_the_budgets() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure(
        "max_cost_per_bead = 0.5\nmax_attempts = 3\nretry_backoff = [\"0s\"]",
        "",
    );
    t.rig_with_remote(
        r#"echo '{"type":"turn.completed","usage":{"input_tokens":20000000,"cached_input_tokens":0,"output_tokens":200000}}'; exit 1"#,
        &[],
    );
    let id = t.bead("burns tokens");
    t.ok(&["sling", &id]);
    t.wait_exited(1);
    for _ in 0..6 {
        t.run(&["patrol"]);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let row = costs_of(&t, "api");
    eprintln!("usage: {row}");
    let n = t.dispatches(&id).len();
    assert_eq!(
        n, 1,
        "a bead whose agent reported 20M tokens was dispatched again ({n} dispatches; usage {row})"
    );
}
