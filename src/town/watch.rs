//! What wakes `gt patrol --watch` before its interval: a request file appearing in an
//! agent's outbox (inotify) and the engine's events of this town's containers that end
//! one (`die`, `oom`: agents and merge-queue gates). A burst is one wake-up; the
//! interval stays the safety net (an event lost is a pass later, never a pass missed).

use super::Town;
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// After the first event, more of the same burst are gathered for this long (quiet).
const DEBOUNCE: Duration = Duration::from_millis(30);
/// A burst that never goes quiet still wakes the loop after this.
const MAX_GATHER: Duration = Duration::from_millis(200);
/// Event-driven passes start at least this far apart: an agent writing files without
/// end costs a pass every so often, never a busy loop.
const MIN_GAP: Duration = Duration::from_millis(250);
/// Reconnecting to an engine that went away: from 1 s, doubling, up to 30 s.
const RECONNECT_MAX: Duration = Duration::from_secs(30);

enum Wake {
    /// A file appeared or changed in an agent's outbox (`RIG/NAME`).
    Request(String),
    /// A directory the watches hang on changed: an agent's mailbox was made.
    Layout,
    /// A container of the town ended: `die` or `oom`, and its name.
    Container(String, String),
    /// A person did something a pass acts on (`gt mq approve`, `gt bead reopen`, …).
    Person,
}

/// Where person commands leave a mark for a watching patrol: a directory of its own,
/// so the database's own writes (every pass makes some) never wake it.
fn wake_dir(town: &Town) -> PathBuf {
    town.root.join(".gt").join("wake")
}

/// Tell a watching `gt patrol --watch` that a person acted (approved, rejected,
/// reopened, resumed): it runs a pass now instead of at its interval. Best effort: no
/// watcher, or a read-only town, changes nothing (the interval still comes).
pub fn poke(town: &Town) {
    let d = wake_dir(town);
    if std::fs::create_dir_all(&d).is_ok() {
        let _ = std::fs::write(d.join("poke"), b"");
    }
}

/// The event sources of one `gt patrol --watch`.
pub struct Waker {
    rx: mpsc::Receiver<Wake>,
    /// None when inotify could not be set up (the interval alone then).
    watcher: Option<notify::RecommendedWatcher>,
    agents_dir: PathBuf,
    watched: HashSet<PathBuf>,
    last_wake: Option<Instant>,
}

impl Waker {
    /// Start watching the town's outboxes and following the engine's events.
    pub fn start(town: &Town) -> Waker {
        let (tx, rx) = mpsc::channel();
        let agents_dir = town.root.join("agents");
        let root = agents_dir.clone();
        let wake = wake_dir(town);
        let _ = std::fs::create_dir_all(&wake);
        let wake_root = wake.clone();
        let files = tx.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            if matches!(ev.kind, EventKind::Access(_)) {
                return;
            }
            for p in &ev.paths {
                let w = match p.parent() {
                    Some(d) if d == wake_root => Wake::Person,
                    _ => classify(&root, p),
                };
                let _ = files.send(w);
            }
        })
        .inspect_err(|e| {
            tracing::warn!("watching outboxes (inotify): {e}; the interval alone wakes patrol")
        })
        .ok();
        follow_engine(town.id.clone(), tx);
        let mut watcher = watcher;
        if let Some(w) = watcher.as_mut()
            && let Err(e) = w.watch(&wake, RecursiveMode::NonRecursive)
        {
            tracing::warn!("watching {}: {e}", wake.display());
        }
        let mut w = Waker {
            rx,
            watcher,
            agents_dir,
            watched: HashSet::new(),
            last_wake: None,
        };
        w.refresh();
        w
    }

    /// Watch every agent outbox there is (and the directories new ones appear in); after
    /// each pass, which may have made new mailboxes.
    pub fn refresh(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let _ = std::fs::create_dir_all(&self.agents_dir);
        let mut dirs = vec![self.agents_dir.clone()];
        for rig in subdirs(&self.agents_dir) {
            dirs.push(rig.clone());
            for agent in subdirs(&rig) {
                dirs.push(agent.clone());
                let outbox = agent.join("outbox");
                if outbox.is_dir() {
                    dirs.push(outbox);
                }
            }
        }
        for d in dirs {
            if self.watched.contains(&d) {
                continue;
            }
            match watcher.watch(&d, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.watched.insert(d);
                }
                Err(e) => tracing::warn!("watching {}: {e}", d.display()),
            }
        }
        // Directories removed (a rig removed) drop their watches themselves.
        self.watched.retain(|d| d.is_dir());
    }

    /// Wait up to `interval` for something to do: returns why it woke (None: the
    /// interval passed). A burst of events is gathered into one wake-up.
    pub fn wait(&mut self, interval: Duration) -> Option<String> {
        let deadline = Instant::now() + interval;
        let first = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Wake::Layout) => self.refresh(),
                Ok(w) => break w,
                Err(_) => {
                    self.last_wake = None;
                    return None;
                }
            }
        };
        // The rest of the burst.
        let started = Instant::now();
        while started.elapsed() < MAX_GATHER {
            match self.rx.recv_timeout(DEBOUNCE) {
                Ok(Wake::Layout) => self.refresh(),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if let Some(last) = self.last_wake {
            let since = last.elapsed();
            if since < MIN_GAP {
                std::thread::sleep(MIN_GAP - since);
            }
        }
        self.last_wake = Some(Instant::now());
        Some(match first {
            Wake::Request(agent) => format!("a request from {agent}"),
            Wake::Container(action, name) => format!("container {name}: {action}"),
            Wake::Layout => "a new mailbox".into(),
            Wake::Person => "a person's command".into(),
        })
    }
}

/// What an event on `path` under `root` (`<town>/agents`) means.
fn classify(root: &Path, path: &Path) -> Wake {
    let rel: Vec<String> = path
        .strip_prefix(root)
        .map(|r| {
            r.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    match rel.as_slice() {
        // `<rig>/<name>/outbox/<file>`; temp files (`.name.tmp-…`) are not requests yet.
        [rig, name, outbox, file] if outbox == "outbox" && !file.starts_with('.') => {
            Wake::Request(format!("{rig}/{name}"))
        }
        _ => Wake::Layout,
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Follow the engine's container events in a thread, reconnecting with backoff while
/// the engine is away; ends when the loop that reads them is gone.
fn follow_engine(town_id: String, tx: mpsc::Sender<Wake>) {
    let spawned = std::thread::Builder::new()
        .name("engine-events".into())
        .spawn(move || {
            let mut backoff = Duration::from_secs(1);
            loop {
                let mut gone = false;
                match crate::runtime::docker::DockerRuntime::connect() {
                    Ok(rt) => {
                        backoff = Duration::from_secs(1);
                        let r = rt.container_events(&town_id, |e| {
                            if e.action == "kill" {
                                // The `die` that follows wakes the loop.
                                signalled_now(&e.id);
                                return true;
                            }
                            gone = tx.send(Wake::Container(e.action, e.name)).is_err();
                            !gone
                        });
                        if let Err(e) = r {
                            tracing::debug!("engine events: {e}");
                        }
                    }
                    Err(e) => tracing::debug!("engine events: {e}"),
                }
                if gone {
                    return;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(RECONNECT_MAX);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("following the engine's events: {e}; the interval alone wakes patrol");
    }
}

/// Containers signalled through the engine (a `kill` event: `docker kill`, `docker
/// stop`) lately, as this process saw them: id → when.
static SIGNALLED: std::sync::Mutex<Option<std::collections::HashMap<String, Instant>>> =
    std::sync::Mutex::new(None);
/// How long a `kill` event is remembered.
const SIGNALLED_FOR: Duration = Duration::from_secs(120);

fn signalled_now(id: &str) {
    if let Ok(mut m) = SIGNALLED.lock() {
        let m = m.get_or_insert_with(Default::default);
        m.retain(|_, at| at.elapsed() < SIGNALLED_FOR);
        m.insert(id.to_string(), Instant::now());
    }
}

/// Whether container `id` was signalled through the engine lately (seen by a watching
/// patrol): its SIGKILL came from someone's `docker kill` or `docker stop`, not from
/// the kernel's OOM killer, so patrol need not wait for a late OOM flag.
pub fn signalled_by_engine(id: &str) -> bool {
    SIGNALLED
        .lock()
        .ok()
        .and_then(|m| m.as_ref().and_then(|m| m.get(id).copied()))
        .is_some_and(|at| at.elapsed() < SIGNALLED_FOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_files_in_an_outbox_are_requests() {
        let root = Path::new("/town/agents");
        let is_request = |p: &str| match classify(root, Path::new(p)) {
            Wake::Request(agent) => Some(agent),
            _ => None,
        };
        assert_eq!(
            is_request("/town/agents/api/nux/outbox/0a1b.json").as_deref(),
            Some("api/nux")
        );
        assert_eq!(
            is_request("/town/agents/api/nux/outbox/ending").as_deref(),
            Some("api/nux")
        );
        // A temp file before its rename, a read mark, the host's own directories.
        assert!(is_request("/town/agents/api/nux/outbox/.0a1b.json.tmp-abc").is_none());
        assert!(is_request("/town/agents/api/nux/outbox/read/m-1").is_none());
        assert!(is_request("/town/agents/api/nux/box/inbox/m-1.json").is_none());
        assert!(is_request("/town/agents/api/nux").is_none());
        assert!(is_request("/elsewhere/api/nux/outbox/x.json").is_none());
    }
}
