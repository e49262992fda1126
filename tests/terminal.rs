//! Issue 10 item 7: terminal-safe output. What an agent writes (mail, escalations,
//! checkpoint notes and heads, done notes, container output) reaches a person's terminal
//! with its control characters escaped; `gt peek --raw` prints the bytes; `--json` keeps
//! the exact strings. Real binary, real Docker engine and git.

mod support;

use support::*;

/// A subject as an agent might write it: a window-title OSC ending in BEL, a clear
/// screen, a carriage return, a C1 CSI (U+009B) and a right-to-left override.
const SUBJECT: &str = "subj \x1b]0;pwned\x07 \x1b[2J x\ry \u{9b}31m z \u{202e}gnp.exe end";
/// The same as `printf` writes it inside the container.
const SUBJECT_PRINTF: &str =
    r"subj \033]0;pwned\007 \033[2J x\ry \302\23331m z \342\200\256gnp.exe end";
/// A body: multi-line, with a tab, and the same hostile characters.
const BODY: &str = "body \x1b]0;pwned\x07\nline two \x1b[2J\r\u{9b}\u{202e} end\tTAB";
const BODY_PRINTF: &str = r"body \033]0;pwned\007\nline two \033[2J\r\302\233\342\200\256 end\tTAB";
/// A line of container output.
const OUTPUT: &str = "out \x1b]0;pwned\x07 \x1b[2J x\ry \u{9b} \u{202e} fin";
const OUTPUT_PRINTF: &str = r"out \033]0;pwned\007 \033[2J x\ry \302\233 \342\200\256 fin\n";

/// The escaped forms a person sees.
const ESCAPED: [&str; 5] = [
    r"\x1b]0;pwned\x07",
    r"\x1b[2J",
    r"\r",
    r"\u{9b}",
    r"\u{202e}",
];

/// The first character a terminal would act on (any C0 control but line feed and tab,
/// DEL, C1, a bidi embedding/override/isolate), if any.
fn raw_control(s: &str) -> Option<(usize, char)> {
    s.char_indices().find(|(_, c)| {
        matches!(c,
            '\0'..='\x08' | '\x0b'..='\x1f' | '\x7f'..='\u{9f}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

fn assert_terminal_safe(what: &str, out: &str) {
    if let Some((i, c)) = raw_control(out) {
        panic!("{what}: a raw {c:?} at byte {i} reached the terminal:\n{out:?}");
    }
}

fn assert_escaped(what: &str, out: &str, forms: &[&str]) {
    assert_terminal_safe(what, out);
    for f in forms {
        assert!(out.contains(f), "{what}: no {f} in\n{out}");
    }
}

/// Run `gt ARGS` for a person; it must exit 0 and print only terminal-safe text.
fn person(t: &TestTown, args: &[&str]) -> String {
    let out = t.ok(args);
    assert_terminal_safe(&format!("gt {}", args.join(" ")), &out);
    out
}

fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Write a checkpoint request into `agent`'s outbox with its own token, as the agent
/// can (it controls the whole request file, `head` included).
fn forge_checkpoint(t: &TestTown, agent: &str, id: &str, note: &str, head: &str) {
    let mbox = t.root().join("agents/api").join(polecat_name(agent));
    let a: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mbox.join("box/assignment.json")).unwrap()).unwrap();
    let req = serde_json::json!({
        "id": id, "agent": a["agent"], "generation": a["generation"], "token": a["token"],
        "created_at": 1, "kind": "checkpoint", "note": note, "head": head
    });
    std::fs::write(
        mbox.join("outbox").join(format!("{id}.json")),
        serde_json::to_vec(&req).unwrap(),
    )
    .unwrap();
}

#[test]
fn hostile_agent_text_reaches_people_escaped_and_programs_exact() {
    if !require_docker() {
        return;
    }
    let t = TestTown::new();
    let cmd = format!(
        "s=$(printf '{SUBJECT_PRINTF}')
        b=$(printf '{BODY_PRINTF}')
        gt mail send mayor -s \"$s\" -m \"$b\" --id evil-1
        gt escalate -s \"$s\" -m \"$b\"
        gt checkpoint -m \"$s\"
        printf '{OUTPUT_PRINTF}'
        echo hostile-output-written
        echo work > work.txt
        while [ ! -e /gt/release ]; do sleep 0.1; done
        gt done -m \"$b\""
    );
    t.rig_with_remote(&cmd, &[]);
    let id = t.bead("a plain title");
    let agent = t.json(&["sling", &id])[0]["agent"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for("the agent's output", 60, || {
        let out = t.json(&["peek", &agent]);
        out["output"]
            .as_str()
            .unwrap()
            .contains("hostile-output-written")
            .then_some(())
    });
    // A head is whatever the agent says: two-byte characters with byte 12 inside one
    // (cut at 12 bytes, it panicked), and one with escapes as well.
    let long_head = format!("x{}", "é".repeat(13));
    let odd_head = format!("é\x1b[2J\u{9b}x{}", "é".repeat(11));
    forge_checkpoint(&t, &agent, "cp-multibyte", "multibyte head", &long_head);
    forge_checkpoint(&t, &agent, "cp-odd", SUBJECT, &odd_head);
    // The id the agent chose, in its own namespace.
    let evil = format!("{}.evil-1", agent.replace('/', "."));
    wait_for("the agent's mail", 60, || {
        t.mayor_mail()
            .into_iter()
            .find(|m| m["id"] == evil.as_str())
    });

    // Mail: the inbox table and the message, escaped; the body keeps its lines and tab.
    let inbox = person(&t, &["mail", "inbox"]);
    assert_escaped("gt mail inbox", &inbox, &ESCAPED);
    assert!(inbox.contains("[escalation]"), "{inbox}");
    assert_eq!(
        inbox.lines().count(),
        3,
        "one line per message plus the header:\n{inbox}"
    );
    let read = person(&t, &["mail", "read", &evil]);
    assert_escaped("gt mail read", &read, &ESCAPED);
    assert!(
        read.contains("\nline two \\x1b[2J\\r\\u{9b}\\u{202e} end\tTAB"),
        "{read}"
    );
    let esc = t.mayor_mail_subject("[escalation]");
    assert_eq!(esc.len(), 1, "{esc:?}");
    let esc_id = esc[0]["id"].as_str().unwrap();
    assert_escaped(
        "gt mail read (escalation)",
        &person(&t, &["mail", "read", esc_id]),
        &ESCAPED,
    );
    // JSON is exact.
    let m = t.json(&["mail", "read", &evil]);
    assert_eq!(m["subject"], SUBJECT);
    assert_eq!(m["body"], BODY);
    assert!(esc[0]["subject"].as_str().unwrap().ends_with(SUBJECT));
    assert!(esc[0]["body"].as_str().unwrap().ends_with(BODY));

    // Checkpoints: notes escaped on one line, heads shortened by characters (no panic).
    let show = person(&t, &["bead", "show", &id]);
    assert_escaped("gt bead show", &show, &ESCAPED);
    // A head that is not a commit id is refused at ingestion (and would be shortened by
    // characters, never panicking, if it were shown).
    assert!(!show.contains("multibyte head"), "{show}");
    let cps = t.json(&["bead", "show", &id])["dispatches"][0]["checkpoints"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        !cps.iter()
            .any(|c| c["head"] == long_head.as_str() || c["head"] == odd_head.as_str()),
        "{cps:?}"
    );
    assert_eq!(
        cps.iter().filter(|c| c["note"] == SUBJECT).count(),
        1,
        "the agent's own checkpoint, not the forged one: {cps:?}"
    );
    let log = t.json(&["log"]).to_string();
    assert!(
        log.contains("head is not a 40-digit hex commit id"),
        "{log}"
    );

    // The event log: a table of escaped cells (serde's \u001b for C0, ours for the rest).
    let log = person(&t, &["log"]);
    assert_escaped(
        "gt log",
        &log,
        &[r"\u001b]0;pwned\u0007", r"\u{9b}", r"\u{202e}"],
    );
    let events = t.json(&["log", "--subject", &id]);
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "checkpoint" && e["data"]["note"] == SUBJECT),
        "{events}"
    );
    follow_is_escaped(&t, &id);

    // Container output: escaped by default, the bytes with --raw, exact in JSON.
    let peek = person(&t, &["peek", &agent]);
    assert_escaped("gt peek", &peek, &ESCAPED);
    assert!(
        peek.contains(r"out \x1b]0;pwned\x07 \x1b[2J x\ry \u{9b} \u{202e} fin"),
        "{peek}"
    );
    let raw = t.run(&["peek", "--raw", &agent]);
    assert!(raw.status.success(), "{raw:?}");
    assert!(
        contains_bytes(&raw.stdout, OUTPUT.as_bytes()),
        "gt peek --raw changed the bytes: {:?}",
        String::from_utf8_lossy(&raw.stdout)
    );
    let peek_json = t.json(&["peek", &agent]);
    assert!(
        peek_json["output"].as_str().unwrap().contains(OUTPUT),
        "{peek_json}"
    );

    for args in [&["polecat", "list"][..], &["status"], &["bead", "list"]] {
        person(&t, args);
    }
    let doctor = t.run(&["doctor"]);
    assert_terminal_safe("gt doctor", &String::from_utf8_lossy(&doctor.stdout));

    // The agent hands over with the hostile body as its done note.
    std::fs::write(
        t.root()
            .join("agents/api")
            .join(polecat_name(&agent))
            .join("box/release"),
        "",
    )
    .unwrap();
    t.patrol_until("the bead done", 90, |t| t.bead_status(&id) == "done");
    person(&t, &["mq", "list", "--all"]);
    let done = t.mayor_mail_subject(&format!("{id} done"));
    assert_eq!(done.len(), 1, "{done:?}");
    assert!(
        done[0]["body"].as_str().unwrap().ends_with(BODY),
        "{done:?}"
    );
    let done_text = person(&t, &["mail", "read", done[0]["id"].as_str().unwrap()]);
    assert_escaped("gt mail read (done notice)", &done_text, &ESCAPED);
    let show = person(&t, &["bead", "show", &id]);
    assert!(show.contains("done saga: released"), "{show}");
    assert_escaped(
        "gt log (after done)",
        &person(&t, &["log"]),
        &[r"\u{9b}", r"\u{202e}"],
    );
    for args in [
        &["polecat", "list"][..],
        &["status"],
        &["mail", "inbox"],
        &["patrol"],
    ] {
        person(&t, args);
    }
}

/// `gt log -f` prints its lines escaped too.
fn follow_is_escaped(t: &TestTown, bead: &str) {
    let mut child = t.spawn(&["log", "-f", "--subject", bead], &[("NO_COLOR", "1")]);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let secs = deadline_secs(30);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let line = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains("pwned") => break Some(l),
            Ok(_) => {}
            Err(_) => break None,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let line = line.unwrap_or_else(|| panic!("gt log -f printed no checkpoint within {secs}s"));
    assert_escaped(
        "gt log -f",
        &line,
        &[r"\u001b]0;pwned\u0007", r"\u{9b}", r"\u{202e}"],
    );
}

#[test]
fn hostile_bead_and_convoy_text_is_escaped_in_tables_and_exact_in_json() {
    let t = TestTown::new();
    t.rig("true", &[]);
    let title = "title \x1b[31mred\x1b[0m \u{202e}txt.exe\u{2066}";
    let id = t.bead(title);
    let body = "line one\n\x1b]8;;http://evil\x07link\x1b]8;;\x07\r\u{85}";
    t.ok(&["bead", "edit", &id, "-m", body]);
    let plain = t.bead("ééééééééééééééé plain");
    let cv = t
        .ok(&["convoy", "create", "cv \x1b[2Jname", &id, &plain])
        .trim()
        .to_string();

    let list = person(&t, &["bead", "list"]);
    assert_escaped(
        "gt bead list",
        &list,
        &[r"\x1b[31mred\x1b[0m", r"\u{202e}txt.exe\u{2066}"],
    );
    // Columns are padded by characters: both titles start in the same column.
    let col = |needle: &str| {
        let l = list.lines().find(|l| l.contains(needle)).unwrap();
        l[..l.find(needle).unwrap()].chars().count()
    };
    assert_eq!(col("title"), col("ééé"), "{list}");
    let show = person(&t, &["bead", "show", &id]);
    assert_escaped(
        "gt bead show",
        &show,
        &[r"\x1b]8;;http://evil\x07link", r"\r\u{85}", "\nline one\n"],
    );
    // Convoy status shows its name and its beads' titles; the list only its name.
    let name = r"cv \x1b[2Jname";
    let shown = r"\x1b[31mred\x1b[0m \u{202e}txt.exe\u{2066}";
    for (args, forms) in [
        (&["convoy", "status"][..], &[name, shown][..]),
        (&["convoy", "status", &cv], &[name, shown]),
        (&["convoy", "list"], &[name]),
        (&["log"], &[r"\u{202e}", r"\u001b[31mred"]),
    ] {
        assert_escaped(&format!("gt {}", args.join(" ")), &person(&t, args), forms);
    }
    let b = t.json(&["bead", "show", &id]);
    assert_eq!(b["title"], title);
    assert_eq!(b["body"], body);
    assert_eq!(t.json(&["convoy", "status", &cv])["name"], "cv \x1b[2Jname");
}
