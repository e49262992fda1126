//! Ctrl-C and SIGTERM during a command of several steps (`gt sling`): the first signal is
//! remembered and the command stops at its next step, undoing what it did; a second
//! signal exits at once and leaves the rest to patrol.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Catch SIGINT and SIGTERM from now on (returns once the handlers are in place).
pub fn install() {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("gt-signals".into())
        .spawn(move || {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                let _ = ready_tx.send(());
                return;
            };
            rt.block_on(async move {
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    let _ = ready_tx.send(());
                    return;
                };
                let _ = ready_tx.send(());
                loop {
                    use futures_util::future::{Either, select};
                    let n = match select(Box::pin(int.recv()), Box::pin(term.recv())).await {
                        Either::Left(_) => 2,
                        Either::Right(_) => 15,
                    };
                    if SIGNAL.swap(n, Ordering::SeqCst) != 0 {
                        eprintln!(
                            "gt: interrupted again: exiting now; `gt patrol` finishes or undoes what was left"
                        );
                        std::process::exit(128 + n);
                    }
                    eprintln!(
                        "gt: interrupted: undoing what this command started (again to exit at once)"
                    );
                }
            });
        });
    if spawned.is_ok() {
        let _ = ready_rx.recv();
    }
}

/// The signal received so far (2 or 15), if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        n => Some(n),
    }
}

/// Err(Interrupted) once a signal has arrived.
pub fn check() -> Result<()> {
    match received() {
        Some(signal) => Err(Error::Interrupted {
            signal,
            undone: String::new(),
        }),
        None => Ok(()),
    }
}

/// A step boundary: a named fail point (crash tests), then the interrupt check.
/// Builds with the `failpoints` feature also pause here while `GT_TEST_PAUSE_AT` names
/// the step, until a signal arrives or the file `GT_TEST_PAUSE_RELEASE` exists (tests
/// interrupt a command at an exact step, or let other processes act meanwhile).
pub fn step(name: &'static str) -> Result<()> {
    fail::fail_point!(name);
    // Without fail points compiled in, the name marks the step for readers only.
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
    #[cfg(feature = "failpoints")]
    if std::env::var("GT_TEST_PAUSE_AT").as_deref() == Ok(name) {
        eprintln!("gt: paused at {name}");
        let release = std::env::var_os("GT_TEST_PAUSE_RELEASE").map(std::path::PathBuf::from);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while received().is_none()
            && !release.as_deref().is_some_and(std::path::Path::exists)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    check()
}
