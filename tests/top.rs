//! `gt top`, the live view (issue 13 point 1), driven in a real terminal: tmux runs the
//! real binary in an 80×24 pane, the test types keys (`send-keys`) and reads the screen
//! (`capture-pane`), always polling with a deadline. Plus the plain output when stdout is
//! not a terminal. Real Docker engine, git and SQLite.

mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use support::*;

/// A tmux server of the test's own (its socket in the test's temp dir), killed on drop.
struct Tmux {
    sock: PathBuf,
}

/// Whether tmux can be run. CI (CI=true) must run these tests: there a missing tmux
/// fails loudly; elsewhere the test is skipped with a message.
fn require_tmux() -> bool {
    let ok = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("CI=true but tmux cannot be found (`bash dev.sh test` installs it)");
    }
    eprintln!("skipping: tmux not found (apt-get install tmux, or run `bash dev.sh test`)");
    false
}

impl Tmux {
    /// An 80×24 terminal running `sh`, with the town and NO_COLOR in its environment.
    fn start(t: &TestTown) -> Tmux {
        let sock = t.dir.path().join("tmux.sock");
        let tmux = Tmux { sock };
        let town = format!("GT_TOWN={}", t.root().display());
        let mut args = vec![
            "new-session",
            "-d",
            "-x",
            "80",
            "-y",
            "24",
            "-e",
            &town,
            "-e",
            "NO_COLOR=1",
            "-e",
            "PS1=$ ",
        ];
        let docker_host = std::env::var("DOCKER_HOST").map(|h| format!("DOCKER_HOST={h}"));
        if let Ok(h) = &docker_host {
            args.extend(["-e", h.as_str()]);
        }
        args.push("sh");
        tmux.run(&args);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Type keys (tmux key names: `Enter`, `Escape`, `j`, or literal text).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Type `text` literally, then Enter.
    fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "0", "-l", text]);
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "0"])
    }

    /// Poll the screen until `ok` holds; on a timeout, panic showing the last screen.
    fn wait(&self, what: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let secs = deadline_secs(secs);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {secs}s waiting for {what}; the screen:\n{s}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Start `gt top` from the shell; after it ends the shell prints its exit code and
    /// whether the terminal's settings are those it had before.
    fn start_top(&self, dir: &Path) {
        let before = dir.join("stty.before");
        self.type_line(&format!(
            "stty -g > '{b}'; '{gt}' top --interval 500ms; echo \"top-exit-$?\"; \
             stty -g | cmp -s - '{b}' && echo tty-re''stored",
            b = before.display(),
            gt = gt_bin().display()
        ));
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .arg("kill-server")
            .output();
    }
}

/// A secret value the agent prints: the view shows its name instead.
const SECRET: &str = "sk-top-9f8e7d6c5b4a";

/// A town whose rig's agent prints a hostile first line, its secret, then a tick every 500 ms, and
/// never checkpoints: quiet after 2 s. Returns (agent, bead).
fn town_with_quiet_agent(t: &TestTown) -> (String, String) {
    t.configure("", "quiet_after = \"2s\"");
    let out = t
        .cmd()
        .args(["secret", "set", "API_TOKEN"])
        .write_stdin(format!("{SECRET}\n"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    t.rig(
        r#"printf 'first-line \033]0;pwned\007 \033[2J end\n'; echo "token $API_TOKEN"; i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.5; done"#,
        &["--secret", "API_TOKEN"],
    );
    let bead = t.bead("Fix the login form");
    t.ok(&["sling", &bead]);
    let agent = t.json(&["bead", "show", &bead])["dispatches"][0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    (agent, bead)
}

/// The highest `tick-N` on a screen.
fn last_tick(screen: &str) -> Option<u64> {
    screen
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter_map(|w| w.strip_prefix("tick-")?.parse().ok())
        .max()
}

#[test]
fn a_quiet_agent_is_a_problem_enter_follows_its_output_and_q_restores_the_terminal() {
    if !require_docker() || !require_tmux() {
        return;
    }
    let t = TestTown::new();
    let (agent, bead) = town_with_quiet_agent(&t);
    let tmux = Tmux::start(&t);
    tmux.start_top(t.dir.path());

    // The problems panel comes first and names the quiet agent.
    let quiet = format!("{agent} on {bead}: quiet for");
    let screen = tmux.wait("the quiet agent under Problems", 30, |s| s.contains(&quiet));
    let lines: Vec<&str> = screen.lines().collect();
    let problems = lines.iter().position(|l| l.contains("Problems (")).unwrap();
    let agents = lines.iter().position(|l| l.contains(" Agents ")).unwrap();
    let at = lines.iter().position(|l| l.contains(&quiet)).unwrap();
    assert!(problems < at && at < agents, "{screen}");
    // Its row: bead, state, attempt; the last output line is live.
    let row = lines
        .iter()
        .find(|l| l.contains(&bead) && l.contains("1/3"));
    assert!(
        row.is_some_and(|l| l.contains("quiet")),
        "no agent row with its bead, state and attempt:\n{screen}"
    );
    tmux.wait("its last output line on the agent's row", 30, |s| {
        s.contains("» tick-")
    });
    assert_eq!(screen.lines().count(), 24, "an 80×24 screen:\n{screen}");

    // Enter follows its output: the whole of it (the first line too, escaped), live.
    tmux.keys(&["Enter"]);
    let screen = tmux.wait("the followed output", 30, |s| {
        s.contains("following") && s.contains("first-line") && s.contains("token ")
    });
    assert!(
        screen.contains(r"first-line \x1b]0;pwned\x07 \x1b[2J end"),
        "agent output reaches the screen escaped:\n{screen}"
    );
    assert!(
        screen.contains("token [secret API_TOKEN]") && !screen.contains(SECRET),
        "a secret is shown by name:\n{screen}"
    );
    let seen = last_tick(&screen).unwrap_or(0);
    tmux.wait("newer output while following", 30, |s| {
        last_tick(s).is_some_and(|n| n > seen + 2)
    });
    // Esc goes back to the town.
    tmux.keys(&["Escape"]);
    tmux.wait("the town view again", 30, |s| s.contains("Problems ("));

    // q quits: the shell's screen is back (the alternate screen left) and the terminal
    // has the settings it had before.
    tmux.keys(&["q"]);
    let screen = tmux.wait("gt top to exit", 30, |s| s.contains("tty-restored"));
    assert!(screen.contains("top-exit-0"), "{screen}");
    assert!(
        !screen.contains("Problems (") && screen.contains("stty -g"),
        "the shell's screen is not back:\n{screen}"
    );
    // Raw mode is off: a typed command runs and echoes.
    tmux.type_line(r#"echo still-""cooked"#);
    tmux.wait("the shell to run a command", 30, |s| {
        s.lines().any(|l| l.trim_end() == "still-cooked")
    });
}

#[test]
fn n_asks_first_then_nukes_the_selected_agent() {
    if !require_docker() || !require_tmux() {
        return;
    }
    let t = TestTown::new();
    let (agent, bead) = town_with_quiet_agent(&t);
    let tmux = Tmux::start(&t);
    tmux.start_top(t.dir.path());
    tmux.wait("the agent's row", 30, |s| s.contains(&bead));

    tmux.keys(&["n"]);
    tmux.wait("the question", 30, |s| {
        s.contains(&format!("nuke {agent}? "))
    });
    tmux.keys(&["x"]);
    tmux.wait("the answer no", 30, |s| s.contains("left alone"));
    assert_eq!(t.running_containers().len(), 1, "no means no");

    tmux.keys(&["n"]);
    tmux.wait("the question", 30, |s| {
        s.contains(&format!("nuke {agent}? "))
    });
    tmux.keys(&["y"]);
    let screen = tmux.wait("the nuke's report", 60, |s| {
        s.contains(&format!("nuked {agent}"))
    });
    assert!(
        screen.contains(&format!("bead {bead} is open again")),
        "{screen}"
    );
    // The whole report is on the screen, wrapped at 80 columns, not cut off.
    tmux.wait("the nuke's report to its end", 30, |s| {
        words(s).contains("kept; worktree removed")
    });
    assert_eq!(t.bead_status(&bead), "open");
    assert!(t.running_containers().is_empty());
    // The view refreshed: no polecat holds a bead any more.
    tmux.wait("the agent gone from the view", 30, |s| {
        s.contains("0 working") && !s.contains("1/3")
    });
    tmux.keys(&["q"]);
    tmux.wait("gt top to exit", 30, |s| s.contains("tty-restored"));
}

#[test]
fn m_opens_the_mayors_mail_and_reading_a_message_marks_it_read() {
    if !require_tmux() {
        return;
    }
    let t = TestTown::new();
    t.ok(&[
        "mail",
        "send",
        "mayor",
        "-s",
        "status of the release",
        "-m",
        "line one\nline \x1b[2J two",
    ]);
    let tmux = Tmux::start(&t);
    tmux.start_top(t.dir.path());
    tmux.wait("the unread count", 30, |s| s.contains("mayor: 1 unread"));
    tmux.keys(&["m"]);
    tmux.wait("the mayor's inbox", 30, |s| {
        s.contains("Mayor's mail (1 messages, 1 unread)") && s.contains("status of the release")
    });
    tmux.keys(&["Enter"]);
    let screen = tmux.wait("the message", 30, |s| s.contains("line one"));
    assert!(screen.contains(r"line \x1b[2J two"), "{screen}");
    tmux.keys(&["Escape"]);
    tmux.wait("the inbox, read", 30, |s| {
        s.contains("(1 messages, 0 unread)")
    });
    tmux.keys(&["Escape"]);
    tmux.wait("the town view", 30, |s| s.contains("mayor: 0 unread"));
    assert!(
        t.json(&["mail", "inbox"])[0]["read"].is_i64(),
        "read in the database too"
    );
    tmux.keys(&["q"]);
    tmux.wait("gt top to exit", 30, |s| s.contains("tty-restored"));
}

#[test]
fn not_on_a_terminal_top_prints_plain_tables_and_refreshes() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let (agent, bead) = town_with_quiet_agent(&t);
    // --once: one snapshot, plain, escaped.
    let out = wait_for("the quiet agent in a plain snapshot", 30, || {
        let out = t.ok(&["top", "--once"]);
        out.contains(&format!("{agent} on {bead}: quiet for"))
            .then_some(out)
    });
    assert!(
        !out.contains('\x1b'),
        "no escape sequence reaches a pipe:\n{out}"
    );
    assert!(out.contains("PROBLEMS ("), "{out}");
    let header = out.lines().find(|l| l.starts_with("AGENT ")).unwrap();
    for col in [
        "BEAD",
        "STATE",
        "TRY",
        "UP",
        "HEARD",
        "CHECKPOINT",
        "OUTPUT",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = out.lines().find(|l| l.starts_with(&agent)).unwrap();
    assert!(row.contains(&bead) && row.contains("1/3"), "{row}");
    // --json: the snapshot.
    let s = t.json(&["top", "--once"]);
    assert_eq!(s["engine_up"], true);
    assert!(
        s["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "quiet" && p["subject"] == agent.as_str()),
        "{s}"
    );
    // Work waits on a patrol that never ran: a problem too.
    assert!(
        s["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "patrol"),
        "{s}"
    );
    assert_eq!(s["rigs"][0]["agents"][0]["bead"], bead.as_str());

    // Without --once it prints a new table every interval until stopped.
    let mut child = t.spawn(&["top", "--interval", "200ms"], &[("NO_COLOR", "1")]);
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut snapshots = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(deadline_secs(30));
    while snapshots < 3 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with("gt top: ") => snapshots += 1,
            Ok(_) => {}
            Err(e) => panic!("{snapshots} snapshot(s) only: {e}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();

    // A stopped crew says so on its rig's row, until `gt resume`.
    t.ok(&["stop"]);
    let s = t.json(&["top", "--once"]);
    assert!(s["rigs"][0]["drained_since"].is_i64(), "{s}");
    let out = t.ok(&["top", "--once"]);
    let rigs = out.split("\nRIGS\n").nth(1).unwrap();
    assert!(rigs.lines().next().unwrap().ends_with("DRAINED"), "{out}");
    assert!(rigs.lines().nth(1).unwrap().ends_with(" ago"), "{out}");
    t.ok(&["resume"]);
    assert!(t.json(&["top", "--once"])["rigs"][0]["drained_since"].is_null());
}

#[test]
fn an_engine_that_does_not_answer_is_the_first_problem() {
    let t = TestTown::new();
    let sock = t.dir.path().join("no-engine.sock");
    let out = t
        .cmd()
        .args(["top", "--once", "--json"])
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["engine_up"], false, "{s}");
    assert_eq!(s["problems"][0]["kind"], "docker", "{s}");
    let plain = t
        .cmd()
        .args(["top", "--once"])
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .output()
        .unwrap();
    let plain = String::from_utf8(plain.stdout).unwrap();
    assert!(
        plain.contains("engine: DOWN") && plain.contains("the container engine does not answer"),
        "{plain}"
    );
}

#[test]
fn the_terminal_is_given_back_after_a_panic_and_after_sigterm() {
    if !require_tmux() {
        return;
    }
    let t = TestTown::new();
    let tmux = Tmux::start(&t);
    // A panic at the first key (fail point `top.key`).
    let before = t.dir.path().join("stty.before");
    tmux.type_line(&format!(
        "stty -g > '{b}'; RUST_BACKTRACE=0 FAILPOINTS=top.key=panic '{gt}' top; echo \"top-exit-$?\"; \
         stty -g | cmp -s - '{b}' && echo tty-re''stored",
        b = before.display(),
        gt = gt_bin().display()
    ));
    tmux.wait("the live view", 30, |s| s.contains("Problems ("));
    tmux.keys(&["j"]);
    let screen = tmux.wait("gt top to crash", 30, |s| s.contains("tty-restored"));
    assert!(screen.contains("top-exit-101"), "{screen}");
    assert!(
        screen.contains("top.key"),
        "the panic message is readable:\n{screen}"
    );

    // SIGTERM: it ends as q does.
    tmux.type_line("clear");
    tmux.wait("a clear screen", 30, |s| !s.contains("tty-restored"));
    tmux.start_top(t.dir.path());
    tmux.wait("the live view", 30, |s| s.contains("Problems ("));
    // The shell of this test's terminal runs one command at a time: its child is gt.
    let shell = tmux.run(&["display-message", "-p", "-t", "0", "#{pane_pid}"]);
    let child = std::process::Command::new("pgrep")
        .args(["-P", shell.trim()])
        .output()
        .unwrap();
    let child = String::from_utf8_lossy(&child.stdout).into_owned();
    let ours: Vec<&str> = child.split_whitespace().collect();
    assert_eq!(ours.len(), 1, "children of the shell {shell}: {child}");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", ours[0]])
        .status()
        .unwrap();
    assert!(killed.success());
    let screen = tmux.wait("gt top to end on SIGTERM", 30, |s| {
        s.contains("tty-restored")
    });
    assert!(screen.contains("top-exit-0"), "{screen}");
}

/// Whether `screen` (captured with its attributes) sets a colour: an SGR sequence with
/// a foreground or background colour (39 and 49, "the default colour", are none).
fn sets_colour(screen: &str) -> bool {
    screen.split("\x1b[").skip(1).any(|seq| {
        let Some(end) = seq.find('m') else {
            return false;
        };
        let params = &seq[..end];
        params.chars().all(|c| c.is_ascii_digit() || c == ';')
            && params.split(';').any(|p| {
                matches!(
                    p.parse::<u32>(),
                    Ok(30..=38 | 40..=48 | 90..=97 | 100..=107)
                )
            })
    })
}

#[test]
fn colours_only_without_no_color() {
    if !require_tmux() {
        return;
    }
    let t = TestTown::new();
    let tmux = Tmux::start(&t);
    let gt = gt_bin().display().to_string();
    // The pane's shell has NO_COLOR=1.
    tmux.type_line(&format!("'{gt}' top"));
    tmux.wait("the live view", 30, |s| s.contains("Problems ("));
    let plain = tmux.run(&["capture-pane", "-p", "-e", "-t", "0"]);
    assert!(!sets_colour(&plain), "a colour under NO_COLOR:\n{plain:?}");
    tmux.keys(&["q"]);
    tmux.wait("gt top to exit", 30, |s| !s.contains("Problems ("));
    tmux.type_line(&format!("env -u NO_COLOR '{gt}' top"));
    tmux.wait("the live view", 30, |s| s.contains("Problems ("));
    let coloured = tmux.run(&["capture-pane", "-p", "-e", "-t", "0"]);
    assert!(
        sets_colour(&coloured),
        "no colour without NO_COLOR:\n{coloured:?}"
    );
    tmux.keys(&["q"]);
    tmux.wait("gt top to exit", 30, |s| !s.contains("Problems ("));
}

/// A rig whose beads finish at once (the scripted agent) under review (the default), and
/// `n` beads done: their merge requests wait for review. Returns the beads.
fn town_with_reviews(t: &TestTown, n: usize) -> Vec<String> {
    t.rig(&scripted_agent(""), &[]);
    let beads: Vec<String> = (0..n).map(|i| t.bead(&format!("change {i}"))).collect();
    let mut args = vec!["sling"];
    args.extend(beads.iter().map(String::as_str));
    t.ok(&args);
    t.patrol_until("the merge requests to wait for review", 60, |t| {
        let mrs = t.json(&["mq", "list", "--all"]);
        mrs.as_array()
            .is_some_and(|a| a.len() == n && a.iter().all(|m| m["state"] == "needs-review"))
    });
    beads
}

#[test]
fn merge_requests_waiting_for_review_are_problems_and_r_rejects_and_a_approves_them() {
    if !require_docker() || !require_tmux() {
        return;
    }
    let t = TestTown::new();
    let beads = town_with_reviews(&t, 2);
    let tmux = Tmux::start(&t);
    tmux.start_top(t.dir.path());
    let screen = tmux.wait("the merge queue", 30, |s| s.contains("Merge queue (2)"));
    for b in &beads {
        assert!(
            screen.contains(&format!("({b}) waits for review")),
            "{b} under problems:\n{screen}"
        );
    }
    assert_eq!(screen.matches("needs-review").count(), 2, "{screen}");
    // No agent works: the first merge request is picked; r asks why, Esc cancels.
    tmux.keys(&["r"]);
    tmux.wait("the reason prompt", 30, |s| s.contains("reject 1, why"));
    tmux.run(&["send-keys", "-t", "0", "-l", "needs a test"]);
    tmux.wait("the reason typed", 30, |s| s.contains("needs a test_"));
    tmux.keys(&["Escape"]);
    tmux.wait("the cancel", 30, |s| {
        s.contains("merge request 1 left as it was")
    });
    // a asks first; no leaves it.
    tmux.keys(&["a"]);
    tmux.wait("the question", 30, |s| {
        s.contains("approve merge request 1? it joins the queue and lands (y/n)")
    });
    tmux.keys(&["n"]);
    tmux.wait("the answer no", 30, |s| {
        s.contains("merge request 1 left as it was")
    });
    let mrs = t.json(&["mq", "list", "--all"]);
    assert!(
        mrs.as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "needs-review"),
        "{mrs}"
    );

    // Merge request ids follow the order the beads finished in.
    let bead_of = |id: i64| {
        t.json(&["mq", "list", "--all"])
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .map(|m| m["bead"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (first, second) = (bead_of(1), bead_of(2));
    assert!(beads.contains(&first) && beads.contains(&second) && first != second);

    // r, a reason, Enter: sent back as `gt mq reject -m` does.
    tmux.keys(&["r"]);
    tmux.wait("the reason prompt", 30, |s| s.contains("reject 1, why"));
    tmux.run(&["send-keys", "-t", "0", "-l", "needs a test"]);
    tmux.keys(&["Enter"]);
    tmux.wait("the rejection, whole", 30, |s| {
        let w = words(s);
        w.contains(&format!("rejected merge request 1: bead {first}"))
            && w.contains("with your reason")
    });
    let state = |id: i64| {
        t.json(&["mq", "list", "--all"])
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .map(|m| m["state"].as_str().unwrap().to_string())
    };
    assert_eq!(state(1).as_deref(), Some("rejected"));
    assert_eq!(t.bead_status(&first), "open", "reopened for rework");
    // The rejected one leaves the queue; the other is picked. a, y: approved.
    tmux.wait("one merge request left", 30, |s| {
        s.contains("Merge queue (1)")
    });
    tmux.keys(&["a"]);
    tmux.wait("the question", 30, |s| {
        s.contains("approve merge request 2?")
    });
    tmux.keys(&["y"]);
    tmux.wait("the approval, whole", 30, |s| {
        let w = words(s);
        w.contains(&format!("approved merge request 2 ({second})"))
            && w.contains("(or `gt mq run`)")
    });
    assert_eq!(state(2).as_deref(), Some("queued"));
    let screen = tmux.wait("no review left among the problems", 30, |s| {
        !s.contains("waits for review") && s.contains("queued")
    });
    assert!(screen.contains("Merge queue (1)"), "{screen}");
    tmux.keys(&["q"]);
    tmux.wait("gt top to exit", 30, |s| s.contains("tty-restored"));
}

#[test]
fn stalled_agents_and_failed_beads_are_problems() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_attempts = 1", "stall_timeout = \"2s\"");
    t.rig(
        "case \"$(gt hook)\" in *doomed*) echo giving up; exit 1;; esac; echo once; sleep 300",
        &[],
    );
    let (silent, doomed) = (t.bead("silent"), t.bead("doomed"));
    t.ok(&["sling", &silent, &doomed]);
    let problems = |t: &TestTown| -> Vec<serde_json::Value> {
        t.json(&["top", "--once"])["problems"]
            .as_array()
            .unwrap()
            .clone()
    };
    // No output and no request for stall_timeout: stalled (patrol has not acted yet).
    let stalled = wait_for("the silent agent to be stalled", 30, || {
        problems(&t).into_iter().find(|p| p["kind"] == "stalled")
    });
    assert!(
        stalled["text"].as_str().unwrap().contains(&format!(
            "on {silent}: stalled, no output and no checkpoint for"
        )),
        "{stalled}"
    );
    // Its one attempt used, the doomed bead fails: a problem naming it.
    t.patrol_until("the doomed bead to fail", 60, |t| {
        t.bead_status(&doomed) == "failed"
    });
    let failed = problems(&t)
        .into_iter()
        .find(|p| p["kind"] == "bead" && p["subject"] == doomed.as_str());
    let failed = failed.expect("a failed bead is a problem");
    assert!(
        failed["text"]
            .as_str()
            .unwrap()
            .contains(&format!("bead {doomed} failed after 1 attempt(s)")),
        "{failed}"
    );
    let plain = t.ok(&["top", "--once"]);
    assert!(plain.contains(&format!("bead {doomed} failed")), "{plain}");
}

/// A screen's words, one space between them: text wrapped over lines reads as one.
fn words(screen: &str) -> String {
    screen
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_mayors_mail_in_top_is_in_the_order_of_gt_mail_inbox() {
    if !require_tmux() {
        return;
    }
    let t = TestTown::new();
    for subject in ["older message", "newer message"] {
        t.ok(&["mail", "send", "mayor", "-s", subject, "-m", "body"]);
    }
    let inbox = t.ok(&["mail", "inbox"]);
    let at = |s: &str, what: &str| s.find(what).unwrap_or_else(|| panic!("{what}:\n{s}"));
    assert!(
        at(&inbox, "older message") < at(&inbox, "newer message"),
        "{inbox}"
    );
    let tmux = Tmux::start(&t);
    tmux.start_top(t.dir.path());
    tmux.wait("the unread count", 30, |s| s.contains("mayor: 2 unread"));
    tmux.keys(&["m"]);
    let screen = tmux.wait("the mayor's inbox", 30, |s| {
        s.contains("Mayor's mail (2 messages, 2 unread)") && s.contains("newer message")
    });
    assert!(
        at(&screen, "older message") < at(&screen, "newer message"),
        "oldest first, as `gt mail inbox`:\n{screen}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait("the town view", 30, |s| s.contains("Problems ("));
    tmux.keys(&["q"]);
    tmux.wait("gt top to exit", 30, |s| s.contains("tty-restored"));
}

#[test]
fn a_failed_merge_requests_reason_is_one_escaped_line_in_the_live_view() {
    if !require_docker() || !require_tmux() {
        return;
    }
    let t = TestTown::new();
    t.configure("max_attempts = 1", "");
    // Both beads write one file with a hostile name: the second conflicts with the first.
    landing_rig(
        &t,
        &scripted_agent("AGENT_FILE=\"$(printf 'c\\033]0;pwn\\007.txt')\""),
        &["--merge", "auto"],
    );
    let (a, b) = (t.bead("first"), t.bead("second"));
    t.ok(&["sling", &a, &b]);
    t.patrol_until("one bead failed", 90, |t| {
        [t.bead_status(&a), t.bead_status(&b)].contains(&"failed".to_string())
    });
    let tmux = Tmux::start(&t);
    tmux.start_top(t.dir.path());
    let screen = tmux.wait("the failed merge request", 30, |s| {
        s.contains("Merge queue (1)") && s.contains("conflicts with main")
    });
    assert!(!screen.contains("\\n"), "no literal \\n:\n{screen}");
    assert!(
        words(&screen).contains(r"c\x1b]0;pwn\x07.txt; its bead is out of attempts (1);"),
        "the first line, escaped, then what to run:\n{screen}"
    );
    tmux.keys(&["q"]);
    tmux.wait("gt top to exit", 30, |s| s.contains("tty-restored"));
}
