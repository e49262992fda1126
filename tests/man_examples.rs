//! Every man page's EXAMPLES are real: each example runs against a scratch town (a rig
//! `api` from a real git repository, the real engine and test image, beads, polecats,
//! mail) through the real binary, and must exit as the page says (0, or the code its
//! comment gives as "(exits N)"). The house ids of the pages (api-3k9, api-7fq, hq-c12,
//! done-7, merge request 12, image gt-agent:latest) are mapped to the ids the scratch
//! town really has; `~` is the scratch town's own home (town ~/town, rig sources
//! ~/src/api, ~/src/web, ~/src/docs). The few examples that cannot run here are listed,
//! with the reason.

mod support;
use gt::cli::docs::{Example, examples};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Examples not run, by their command as written, and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "gt serve",
        "binds serve.listen (0.0.0.0:7420) until stopped; tests/remote.rs runs gt serve",
    ),
    (
        "gt serve --listen 10.0.0.5:7420",
        "an address this machine does not have; tests/remote.rs runs gt serve",
    ),
    (
        "gt image build claude",
        "needs Claude Code from the npm registry; tests/images.rs builds it",
    ),
    (
        "gt image build codex --version 0.169.0",
        "needs Codex from the npm registry; tests/images.rs builds it",
    ),
    (
        "gt image build",
        "tags gt-agent:latest, the test image, on the shared engine; tests/images.rs builds it",
    ),
    (
        "gt image build base --tag my-agent:1",
        "writes an image into the shared engine; tests/images.rs builds it",
    ),
    (
        "claude -p \"$(gt prime)\"",
        "needs Claude Code in the image (gt image build claude); agents_e2e runs it",
    ),
    (
        "gt agent run -- sh -c 'my-agent \"$(gt prime)\"'",
        "the container entrypoint: every agent container of these tests runs it",
    ),
];

/// How much of a town a page's examples need.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fixture {
    /// A home with ~/src/api, no town.
    Fresh,
    /// A town, no rig.
    Town,
    /// Rig api, open beads api-3k9, api-7fq, api-2mx and convoy hq-c12 (api-2mx).
    Rig,
    /// Rig, with api-3k9 cancelled.
    Ended,
    /// Rig, with api-3k9 held by api/furiosa (its agent waits for mail).
    Running,
    /// Rig, with api-3k9 (by api/furiosa) and api-7fq done: merge requests waiting
    /// for review, the mayor's done notices.
    Worked,
    /// Running, and the examples run inside api/furiosa's container.
    InAgent,
}

fn fixture(page: &str) -> Fixture {
    use Fixture::*;
    match page {
        "gt" | "gt-init" => Fresh,
        "gt-rig" | "gt-rig-add" | "gt-image" => Town,
        "gt-bead-reopen" => Ended,
        "gt-prime" | "gt-hook" | "gt-checkpoint" | "gt-done" | "gt-escalate" | "gt-agent"
        | "gt-agent-run" => InAgent,
        "gt-peek" | "gt-polecat" | "gt-polecat-list" | "gt-polecat-nuke" | "gt-polecat-revive"
        | "gt-drain" | "gt-stop" | "gt-top" | "gt-status" | "gt-rig-remove" | "gt-resume"
        | "gt-mail-send" => Running,
        "gt-diff" | "gt-mq" | "gt-mq-list" | "gt-mq-show" | "gt-mq-approve" | "gt-mq-reject"
        | "gt-mq-run" | "gt-mq-diff" | "gt-mail" | "gt-mail-read" | "gt-mail-ack"
        | "gt-mail-inbox" | "gt-rig-prune" | "gt-log" | "gt-costs" => Worked,
        _ => Rig,
    }
}

/// A scratch home: ~/src/api (a git repository), ~/src/api.git (its remote), ~/town.
struct World {
    home: tempfile::TempDir,
    map: BTreeMap<String, String>,
    town_id: Option<String>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(id) = &self.town_id {
            remove_town_containers(id);
        }
    }
}

impl World {
    fn new(f: Fixture) -> World {
        let home = tempfile::Builder::new()
            .prefix(".tmp-man")
            .tempdir()
            .unwrap();
        let mut w = World {
            home,
            map: BTreeMap::new(),
            town_id: None,
        };
        let h = w.home();
        for repo in ["api", "web", "docs"] {
            make_repo(&h.join("src").join(repo));
        }
        std::fs::write(h.join("src/api/spec.md"), "# The migration\n").unwrap();
        std::fs::write(h.join("spec.md"), "# The migration\n").unwrap();
        let fakes = h.join("fakes");
        std::fs::create_dir_all(&fakes).unwrap();
        let table = fakes.join("crontab.txt");
        write_exe(
            &fakes.join("crontab"),
            &format!(
                "#!/bin/sh\nf='{}'\ncase \"$1\" in\n  -l) [ -f \"$f\" ] || {{ echo \"no crontab for $(id -un)\" >&2; exit 1; }}; cat \"$f\" ;;\n  -) cat > \"$f\" ;;\n  *) exit 2 ;;\nesac\n",
                table.display()
            ),
        );
        write_exe(&fakes.join("systemctl"), "#!/bin/sh\nexit 0\n");
        std::fs::create_dir_all(h.join(".config/openai")).unwrap();
        std::fs::write(h.join(".config/openai/key"), "sk-openai-file-key").unwrap();
        std::fs::write(h.join("token.txt"), "ghp_filetoken").unwrap();
        for d in [
            ".local/share/bash-completion/completions",
            ".zfunc",
            ".config/fish/completions",
        ] {
            std::fs::create_dir_all(h.join(d)).unwrap();
        }
        w.map.insert("gt-agent:latest".into(), test_image());
        if f == Fixture::Fresh {
            return w;
        }
        w.gt(&["init", h.join("town").to_str().unwrap()]);
        let status = w.gt(&["--json", "status"]);
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        w.town_id = Some(v["town_id"].as_str().unwrap().to_string());
        // Files the examples name, relative to the town (their working directory).
        std::fs::write(h.join("town/spec.md"), "# The migration\n").unwrap();
        std::fs::write(h.join("town/token.txt"), "ghp_filetoken").unwrap();
        if f == Fixture::Town {
            return w;
        }
        let key = h.join(".config/openai/key");
        w.gt(&[
            "secret",
            "set",
            "OPENAI_API_KEY",
            "--file",
            key.to_str().unwrap(),
        ]);
        let remote = h.join("src/api.git");
        git(&h.join("src"), &["clone", "-q", "--bare", "api", "api.git"]);
        let knobs = match f {
            Fixture::Worked => "",
            _ => "AGENT_HOLD=mail",
        };
        let image = test_image();
        w.gt(&[
            "rig",
            "add",
            "api",
            h.join("src/api").to_str().unwrap(),
            "--image",
            &image,
            "--command",
            &scripted_agent(knobs),
            "--memory",
            "256m",
            "--max-polecats",
            "4",
            "--remote",
            remote.to_str().unwrap(),
        ]);
        for (house, title) in [
            ("api-3k9", "Fix the login form"),
            ("api-7fq", "Write the migration"),
            ("api-2mx", "Tidy the README"),
        ] {
            let id = w.gt(&["bead", "create", "--rig", "api", title]);
            w.map.insert(house.into(), id.trim().to_string());
        }
        let convoy = w.gt(&["convoy", "create", "readme", &w.map["api-2mx"].clone()]);
        w.map.insert("hq-c12".into(), convoy.trim().to_string());
        match f {
            Fixture::Ended => {
                w.gt(&["bead", "close", &w.map["api-3k9"].clone()]);
            }
            Fixture::Running | Fixture::InAgent => {
                let b = w.map["api-3k9"].clone();
                w.gt(&["sling", &b, "--polecat", "furiosa"]);
                w.wait_for_checkpoint(&b);
            }
            Fixture::Worked => {
                let (a, b) = (w.map["api-3k9"].clone(), w.map["api-7fq"].clone());
                w.gt(&["sling", &a, "--polecat", "furiosa"]);
                w.gt(&["sling", &b]);
                w.patrol_until_done(&[&a, &b]);
                let mail: serde_json::Value =
                    serde_json::from_str(&w.gt(&["--json", "mail", "inbox"])).unwrap();
                let done = mail
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| {
                        m["id"].as_str().unwrap().starts_with("done-")
                            && m["subject"].as_str().unwrap_or("").contains(&a)
                    })
                    .unwrap_or_else(|| panic!("no done notice of {a}: {mail}"));
                w.map
                    .insert("done-7".into(), done["id"].as_str().unwrap().to_string());
                let mr: serde_json::Value =
                    serde_json::from_str(&w.gt(&["--json", "mq", "show", &a])).unwrap();
                w.map.insert("12".into(), mr["id"].to_string());
            }
            _ => {}
        }
        w
    }

    fn home(&self) -> PathBuf {
        self.home.path().to_path_buf()
    }

    fn env(&self, c: &mut Command) {
        let h = self.home();
        let bin = gt_bin();
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("HOME", &h)
            .env("PATH", path)
            .env_remove("GT_TOWN")
            .env_remove("GT_AGENT")
            .env("NO_COLOR", "1")
            .env("GT_PAGER", "cat")
            .env("GT_CRONTAB", h.join("fakes/crontab"))
            .env("GT_SYSTEMCTL", h.join("fakes/systemctl"))
            .env("XDG_CONFIG_HOME", h.join(".config"))
            .env("ANTHROPIC_API_KEY", "sk-ant-example-key")
            .env("OPENAI_API_KEY", "sk-openai-example-key");
        let town = h.join("town");
        c.current_dir(if town.is_dir() { town } else { h });
    }

    /// gt on the host, required to succeed; its stdout.
    fn gt(&self, args: &[&str]) -> String {
        let mut c = Command::new(gt_bin());
        self.env(&mut c);
        let out = c.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "gt {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn bead(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.gt(&["--json", "bead", "show", id])).unwrap()
    }

    /// The held agent has committed and checkpointed: it is at work.
    fn wait_for_checkpoint(&self, bead: &str) {
        wait_for(&format!("a checkpoint of {bead}"), 60, || {
            let _ = self.gt(&["patrol"]);
            let log = self.gt(&["--json", "log", "--subject", bead]);
            log.contains("checkpoint").then_some(())
        });
    }

    fn patrol_until_done(&self, beads: &[&str]) {
        wait_for(&format!("{beads:?} done"), 90, || {
            let _ = self.gt(&["patrol"]);
            beads
                .iter()
                .all(|b| self.bead(b)["status"] == "done")
                .then_some(())
        });
    }

    /// The example with the house ids replaced by this town's.
    fn real(&self, command: &str) -> String {
        let mut words: Vec<String> = Vec::new();
        for w in command.split(' ') {
            // A bare merge request number is a word of its own.
            match self.map.get(w) {
                Some(real) if w.chars().all(|c| c.is_ascii_digit()) => words.push(real.clone()),
                _ => words.push(w.to_string()),
            }
        }
        let mut s = words.join(" ");
        for (house, real) in &self.map {
            if !house.chars().all(|c| c.is_ascii_digit()) {
                s = s.replace(house.as_str(), real);
            }
        }
        s
    }

    /// The container of polecat api/furiosa.
    fn furiosa_container(&self) -> String {
        let id = self.town_id.as_deref().unwrap();
        let out = docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=gt.town={id}"),
            "--filter",
            "status=running",
        ]);
        let ids = String::from_utf8_lossy(&out.stdout);
        ids.split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("no running container of api/furiosa"))
            .to_string()
    }
}

fn write_exe(p: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs until interrupted (a follow, a watch, the live view).
fn long_running(command: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    words.contains(&"-f")
        || words.contains(&"--follow")
        || words.contains(&"--watch")
        || (words.get(1) == Some(&"top") && !words.contains(&"--once"))
}

fn expected_exit(e: &Example) -> i32 {
    let c = &e.comment;
    match c.find("(exits ") {
        Some(i) => c[i + 7..]
            .split(')')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad (exits N) in {c:?}")),
        None => 0,
    }
}

/// Run one example; Err says how it went wrong.
fn run_example(w: &mut World, page: &str, e: &Example) -> Result<(), String> {
    let command = w.real(&e.command);
    let mut c = if fixture(page) == Fixture::InAgent {
        let mut c = Command::new("docker");
        c.args(["exec", "-i", &w.furiosa_container(), "sh", "-c", &command]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &command]);
        c
    };
    w.env(&mut c);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // What `gt secret set NAME` reads when nothing is piped in: a pasted key.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"sk-pasted-example-key\n");
    }
    let long = long_running(&e.command);
    let limit = Duration::from_secs(if long { 3 } else { deadline_secs(60) });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = match status {
        None if long => {
            // Still running, as it should: stop it.
            let _ = child.kill();
            let _ = child.wait();
            return Ok(());
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("`{command}` did not end within {limit:?}"));
        }
        Some(s) => s,
    };
    let out = child.wait_with_output().unwrap();
    let code = status.code().unwrap_or(-1);
    let want = if long { 0 } else { expected_exit(e) };
    if code != want {
        return Err(format!(
            "`{command}` exited {code}, the page says {want}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // A bead or convoy an example makes is the next house id of its kind.
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let kinds: &[(&str, &[&str])] = &[
        ("gt bead create", &["api-3k9", "api-7fq"]),
        ("gt convoy create", &["hq-c12"]),
    ];
    for (prefix, houses) in kinds {
        if e.command.starts_with(prefix)
            && let Some(h) = houses.iter().find(|h| !w.map.contains_key(**h))
        {
            w.map.insert(h.to_string(), printed.clone());
        }
    }
    Ok(())
}

#[test]
fn every_example_of_every_man_page_runs_and_exits_as_the_page_says() {
    if !require_docker() {
        return;
    }
    let pages = examples().expect("every command has examples");
    let listed: Vec<&str> = NOT_RUN.iter().map(|(c, _)| *c).collect();
    // A listed example that no page has any more is a stale list.
    for c in &listed {
        assert!(
            pages
                .iter()
                .any(|(_, ex)| ex.iter().any(|e| e.command == *c)),
            "NOT_RUN lists `{c}`, which no page shows"
        );
    }
    let queue = std::sync::Mutex::new(pages.clone());
    let failures = std::sync::Mutex::new(Vec::new());
    let ran = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let Some((page, list)) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    let mut w = World::new(fixture(&page));
                    for e in &list {
                        if listed.contains(&e.command.as_str()) {
                            continue;
                        }
                        ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if let Err(why) = run_example(&mut w, &page, e) {
                            failures.lock().unwrap().push(format!("{page}: {why}"));
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} examples failed:\n{}",
        failures.len(),
        ran.into_inner(),
        failures.join("\n\n")
    );
    let total: usize = pages.iter().map(|(_, e)| e.len()).sum();
    assert!(
        total >= 2 * pages.len(),
        "{total} examples on {} pages",
        pages.len()
    );
}

/// `gt CMD --help` of the real binary.
fn help(args: &[&str]) -> String {
    let out = Command::new(gt_bin())
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} --help: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn global_options_have_their_own_heading_in_help_and_man_pages() {
    for cmd in [&["sling"][..], &["bead", "create"], &["mq", "approve"], &[]] {
        let text = help(cmd);
        let (own, global) = text
            .split_once("\nGlobal options:\n")
            .unwrap_or_else(|| panic!("gt {cmd:?} --help has no Global options:\n{text}"));
        for flag in ["--town <DIR>", "--json", "--quiet", "--verbose"] {
            assert!(
                !own.contains(flag),
                "gt {cmd:?}: {flag} among the command's own options"
            );
            assert!(
                global.contains(flag),
                "gt {cmd:?}: {flag} not under Global options"
            );
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("man/gt-sling.1")).unwrap();
    let options = page.split_once(".SH OPTIONS").unwrap().1;
    let (own, global) = options.split_once(".SH \"GLOBAL OPTIONS\"").unwrap();
    assert!(
        !own.contains("\\-\\-town") && global.contains("\\-\\-town"),
        "{page}"
    );
}

#[test]
fn the_top_page_has_exit_status_environment_files_and_only_pages_that_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("man/gt.1")).unwrap();
    for section in ["EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES"] {
        assert!(
            page.contains(&format!(".SH \"{section}\""))
                || page.contains(&format!(".SH {section}\n")),
            "gt.1 lacks {section}"
        );
    }
    // Every page gt(1) names exists.
    for line in page.lines().filter(|l| l.ends_with("(1)")) {
        let name = line.trim_end_matches("(1)").replace("\\-", "-");
        assert!(
            root.join(format!("man/{name}.1")).is_file(),
            "gt.1 lists {name}(1), which does not exist"
        );
    }
    // Every exit code of the README's table, and every variable gt reads.
    for code in ["0", "1", "2", "3", "4", "5", "130, 143", "69, 75"] {
        assert!(
            page.contains(&format!("\\fB{code}\\fR")),
            "EXIT STATUS lacks {code}"
        );
    }
    let env = page.split(".SH \"ENVIRONMENT\"").nth(1).unwrap();
    let env = env.split(".SH").next().unwrap();
    let mut read = std::collections::BTreeSet::new();
    for f in walk(&root.join("src")) {
        let text = std::fs::read_to_string(&f).unwrap();
        for pat in [
            "env::var(\"",
            "env::var_os(\"",
            "env = \"",
            "try_from_env(\"",
        ] {
            for part in text.split(pat).skip(1) {
                let name: String = part.chars().take_while(|c| *c != '"').collect();
                read.insert(name);
            }
        }
    }
    for var in read {
        // The fault injector's switches are for tests, not for users.
        if var.starts_with("GT_TEST_") || var == "HOME" || var == "PATH" {
            continue;
        }
        assert!(
            env.contains(&var),
            "gt reads {var}; ENVIRONMENT does not say what it does"
        );
    }
    // gt --help says what the words mean.
    let top = help(&[]).to_lowercase();
    for word in [
        "a town is",
        "a rig is",
        "a bead is",
        "a polecat is",
        "the mayor is",
        "exit codes:",
    ] {
        assert!(
            top.contains(word),
            "gt --help does not define {word:?}\n{top}"
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn peek_raw_help_says_secrets_stay_hidden() {
    let text = help(&["peek"])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        text.contains("control characters pass through")
            && text.contains("known secret values are still shown as [secret NAME]"),
        "{text}"
    );
}

#[test]
fn gt_mq_diff_is_gt_diff() {
    if !require_docker() {
        return;
    }
    let w = World::new(Fixture::Worked);
    let bead = w.map["api-3k9"].clone();
    let mr = w.map["12"].clone();
    for args in [
        vec![bead.as_str()],
        vec![bead.as_str(), "--stat"],
        vec![mr.as_str(), "--no-pager"],
    ] {
        let plain = w.gt(&[&["diff"][..], &args].concat());
        let mq = w.gt(&[&["mq", "diff"][..], &args].concat());
        assert_eq!(plain, mq, "gt mq diff {args:?} differs from gt diff");
        assert!(plain.contains("work-"), "{plain}");
    }
    let text = help(&["mq"]);
    assert!(
        text.contains("diff") && text.contains("the same command as `gt diff`"),
        "{text}"
    );
}
