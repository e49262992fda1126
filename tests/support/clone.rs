//! The clone workspace (`[runtime] workspace = "clone"`) and `gt serve` as the tests of
//! tests/remote.rs and tests/attack_remote.rs drive them: the town's configuration, a rig
//! with a bare remote, the endpoint as a child process, and a dispatch's credentials.

use super::{TestTown, deadline_secs, scripted_agent, test_image, wait_for};
use gt::agent::remote::CallError;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Point the town's agents at a clone workspace served by `gt serve` on the host's
/// loopback at `port` (the whole gt.toml is written anew).
pub fn configure_clone(t: &TestTown, port: u16) {
    let text = format!(
        "[defaults]\nimage = \"{}\"\n[runtime]\nworkspace = \"clone\"\n\
         [serve]\nlisten = \"127.0.0.1:{port}\"\nurl = \"https://127.0.0.1:{port}\"\n",
        test_image()
    );
    std::fs::write(t.root().join("gt.toml"), text).unwrap();
}

/// Rig `api` with a bare remote, on the host's network, no merge queue; `extra` are more
/// `gt rig add` flags (such as `--max-polecats 2`).
pub fn clone_rig(t: &TestTown, command: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec!["--network", "host", "--merge", "off"];
    args.extend_from_slice(extra);
    t.rig_with_remote(command, &args)
}

/// `gt --json serve` as a child process on a port of the kernel's choice, killed (and
/// reaped) when dropped, also when the test panics. Its stderr is kept for failure
/// messages.
pub struct Serve {
    child: std::process::Child,
    pub url: String,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    /// Write the clone configuration (port 0 until it listens), start it on a port of
    /// the kernel's choice (no race with another test for a port picked beforehand),
    /// return once it says it listens, and point the town's agents (`serve.url`) at that
    /// port.
    pub fn start(t: &TestTown) -> Serve {
        configure_clone(t, 0);
        let mut child = t.spawn(&["--json", "serve", "--listen", "127.0.0.1:0"], &[]);
        let stderr = Arc::new(Mutex::new(String::new()));
        let (err, keep) = (child.stderr.take().unwrap(), stderr.clone());
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let mut k = keep.lock().unwrap();
                k.push_str(&l);
                k.push('\n');
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut serve = Serve {
            child,
            url: String::new(),
            stderr,
        };
        let secs = deadline_secs(30);
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(secs))
            .unwrap_or_else(|_| {
                panic!(
                    "gt serve did not say it listens within {secs}s; stderr: {}",
                    serve.stderr()
                )
            });
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let listen: std::net::SocketAddr = v["listen"].as_str().unwrap().parse().unwrap();
        configure_clone(t, listen.port());
        serve.url = format!("https://127.0.0.1:{}", listen.port());
        serve
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The gt serve process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the gt serve process, in bytes.
    pub fn peak_rss(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = s
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kb * 1024
    }

    /// The CA certificate (PEM) the town's endpoint is signed with.
    pub fn ca(t: &TestTown) -> String {
        std::fs::read_to_string(t.root().join(".gt/serve/ca.pem")).unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rig's repository on the host, the one agents push to through `gt serve`.
pub fn repo(t: &TestTown) -> PathBuf {
    t.root().join("rigs/api/repo")
}

/// The commit `rev` names in `repo`, or None.
pub fn rev(repo: &Path, rev: &str) -> Option<String> {
    let out = std::process::Command::new("git")
        .current_dir(repo)
        .args(["-c", "safe.directory=*", "rev-parse", "--verify", "-q"])
        .arg(format!("{rev}^{{commit}}"))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A dispatch's credentials, as the town's database holds them.
#[derive(Clone)]
pub struct Dispatch {
    pub agent: String,
    pub generation: i64,
    pub token: String,
    pub branch: String,
}

impl Dispatch {
    /// The headers of an authenticated call.
    pub fn headers(&self) -> Vec<String> {
        vec![
            format!("Authorization: Bearer {}", self.token),
            format!("x-gt-agent: {}", self.agent),
            format!("x-gt-generation: {}", self.generation),
        ]
    }
}

/// The open dispatch of `bead`, read from the database read-only.
pub fn open_dispatch(t: &TestTown, bead: &str) -> Dispatch {
    let db = rusqlite::Connection::open_with_flags(
        t.root().join(".gt/town.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.query_row(
        "SELECT agent, generation, token, branch FROM dispatches \
         WHERE bead = ?1 AND ended_at IS NULL",
        [bead],
        |r| {
            Ok(Dispatch {
                agent: r.get(0)?,
                generation: r.get(1)?,
                token: r.get(2)?,
                branch: r.get(3)?,
            })
        },
    )
    .unwrap()
}

/// Two agents at work in a clone town, and the `gt serve` they reach.
pub struct AtWork {
    pub serve: Serve,
    /// The two beads, the first slung to `a`, the second to `b`.
    pub ids: [String; 2],
    pub a: Dispatch,
    pub b: Dispatch,
    /// Each agent's branch head on the host after its first push.
    pub heads: (String, String),
    /// `main` of the rig's repository before either pushed.
    pub main: String,
}

/// In `t` (a new town): the clone configuration, `clone_rig` with two polecats running
/// `scripted_agent(knobs)`, `gt serve`, and beads `titles` slung to the two agents.
/// Returns once each agent's commit has reached gt (with its checkpoint, while it
/// sleeps; see `a_checkpoint_hands_the_agents_commit_to_gt_while_it_still_works` in
/// tests/remote.rs) and no patrol has run: both dispatches are current, both agents
/// "running" for the endpoint.
pub fn two_agents_at_work(t: &TestTown, knobs: &str, titles: [&str; 2]) -> AtWork {
    configure_clone(t, 0);
    clone_rig(t, &scripted_agent(knobs), &["--max-polecats", "2"]);
    let serve = Serve::start(t);
    let ids = [t.bead(titles[0]), t.bead(titles[1])];
    t.ok(&["sling", &ids[0], &ids[1]]);
    let (a, b) = (open_dispatch(t, &ids[0]), open_dispatch(t, &ids[1]));
    let main = rev(&repo(t), "main").unwrap();
    let heads = wait_for("both agents' first push", 60, || {
        let ha = rev(&repo(t), &a.branch).filter(|h| *h != main)?;
        let hb = rev(&repo(t), &b.branch).filter(|h| *h != main)?;
        Some((ha, hb))
    });
    AtWork {
        serve,
        ids,
        a,
        b,
        heads,
        main,
    }
}

/// The HTTP status of an answer (any 2xx is reported as 200), 0 when the endpoint could
/// not be reached at all (refused, reset, timed out: what an attack may cause).
pub fn status_or_0(r: &Result<gt::agent::remote::Answer, CallError>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(CallError::Status(s, _)) => s.as_u16(),
        Err(CallError::Unreachable(_)) => 0,
    }
}

/// The HTTP status of an answer (any 2xx is reported as 200); panics when the endpoint
/// could not be reached at all, for calls that must reach it.
pub fn status(r: &Result<gt::agent::remote::Answer, CallError>) -> u16 {
    match r {
        Err(e @ CallError::Unreachable(_)) => panic!("the endpoint did not answer: {e}"),
        _ => status_or_0(r),
    }
}

/// A bare copy of the rig repository, for making objects (such as commits the endpoint
/// must refuse) without writing anything into the rig's own repository.
pub fn scratch_copy(t: &TestTown) -> PathBuf {
    let scratch = t.dir.path().join("scratch.git");
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "safe.directory=*",
            "clone",
            "-q",
            "--bare",
            "--no-local",
        ])
        .arg(repo(t))
        .arg(&scratch)
        .output()
        .unwrap();
    assert!(out.status.success(), "git clone: {out:?}");
    scratch
}

/// `scratch_copy`, opened.
pub fn scratch_repo(t: &TestTown) -> git2::Repository {
    git2::Repository::open_bare(scratch_copy(t)).unwrap()
}
