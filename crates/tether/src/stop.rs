//! Stopping every running script gracefully: on a termination signal of
//! the host process ([`stop_on_signals`]) or when the application asks
//! ([`stop_all`]).
//!
//! A host that dies of SIGTERM or SIGINT takes its scripts with it (their
//! parent-death signal is SIGKILL), in the middle of whatever they were
//! doing. With [`stop_on_signals`] the signal starts the same graceful stop
//! as [`Child::shutdown`](crate::Child::shutdown), for every script at once:
//! `rpc.stop` (so `tether.serve()` returns and the script can finish its
//! work), SIGTERM to its process group at half the grace, SIGKILL at the
//! grace. A second signal during the grace kills them at once. The host
//! process does not die of the signal: its `Host::run` calls return as their
//! scripts end, and the application exits (conventionally with 128 plus
//! [`StopSignals::signal`]).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::error::Error;
use crate::link::Link;
use crate::process::Killer;
use crate::sync::lock;

/// A running script as the stopper sees it.
pub(crate) struct Target {
    pub link: Arc<Link>,
    pub killer: Killer,
    /// The script's outcome is known.
    pub finished: Arc<AtomicBool>,
}

impl Target {
    fn ended(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

/// Every script this process runs now (weakly: a script's handle owns it).
static RUNNING: Mutex<Vec<Weak<Target>>> = Mutex::new(Vec::new());

/// Counts stops under way and wakes their waits when a second signal
/// asks for haste.
struct Stopping {
    /// A second signal came: kill at once.
    hurry: AtomicBool,
    /// Stops under way.
    under_way: Mutex<usize>,
    cv: Condvar,
}

static STOPPING: Stopping = Stopping {
    hurry: AtomicBool::new(false),
    under_way: Mutex::new(0),
    cv: Condvar::new(),
};

/// The first termination signal received, 0 before.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Registers a started script, for [`stop_all`].
pub(crate) fn register(target: Target) -> Arc<Target> {
    let target = Arc::new(target);
    let mut running = lock(&RUNNING);
    running.retain(|t| t.strong_count() > 0);
    running.push(Arc::downgrade(&target));
    target
}

/// Stops every script this process runs, gracefully and without blocking
/// the caller: each is asked to stop (`rpc.stop`), gets SIGTERM at half of
/// `grace` and SIGKILL when `grace` has run out, unless it ended before.
/// Their [`Child::wait`](crate::Child::wait) and [`Host::run`](crate::Host::run)
/// calls return as they end. For an application that handles signals
/// itself (for example with `tokio::signal`).
///
/// ```no_run
/// // In the application's own signal handling:
/// tether::stop_all(std::time::Duration::from_secs(5));
/// ```
pub fn stop_all(grace: Duration) {
    let targets: Vec<Arc<Target>> = lock(&RUNNING).iter().filter_map(Weak::upgrade).collect();
    *lock(&STOPPING.under_way) += 1;
    let started = std::thread::Builder::new()
        .name("tether-stop".into())
        .spawn(move || {
            escalate(&targets, grace);
            *lock(&STOPPING.under_way) -= 1;
            STOPPING.cv.notify_all();
        });
    if let Err(e) = started {
        *lock(&STOPPING.under_way) -= 1;
        tracing::error!("cannot start a thread to stop the scripts: {e}");
    }
}

/// Stops one script as [`stop_all`] stops them all, without blocking the
/// caller (the runtime it was spawned from shuts down).
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn stop_one(target: Arc<Target>, grace: Duration) {
    if target.ended() {
        return;
    }
    crate::blocking::detach(move || escalate(&[target], grace));
}

/// Asks, then signals, then kills `targets`, waiting between the steps
/// for as long as some of them still run.
fn escalate(targets: &[Arc<Target>], grace: Duration) {
    let start = Instant::now();
    for t in targets.iter().filter(|t| !t.ended()) {
        t.link.stop_without_waiting();
    }
    let half = grace / 2;
    let steps = [
        (
            half,
            Signal::TERM,
            format!("a graceful stop: it had not ended {half:?} after it was asked to"),
        ),
        (
            grace,
            Signal::KILL,
            format!("a graceful stop: the grace of {grace:?} ran out"),
        ),
    ];
    for (at, signal, why) in steps {
        wait_until(targets, start.checked_add(at));
        let hurry = STOPPING.hurry.load(Ordering::Acquire);
        let (signal, why) = if hurry {
            (Signal::KILL, "a second termination signal came".to_owned())
        } else {
            (signal, why)
        };
        for t in targets.iter().filter(|t| !t.ended()) {
            if let Err(e) = t.killer.signal(signal, &why) {
                tracing::warn!(pid = t.link.pid, "cannot signal a script: {e}");
            }
        }
    }
}

/// Waits until every target ended, `deadline` passed, or haste is asked.
fn wait_until(targets: &[Arc<Target>], deadline: Option<Instant>) {
    let mut guard = lock(&STOPPING.under_way);
    loop {
        if STOPPING.hurry.load(Ordering::Acquire) || targets.iter().all(|t| t.ended()) {
            return;
        }
        let left = crate::clock::left_until(deadline);
        if left.is_zero() {
            return;
        }
        // Scripts end without telling this thread: look every 10 ms.
        guard = STOPPING
            .cv
            .wait_timeout(guard, left.min(Duration::from_millis(10)))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// The handle [`stop_on_signals`] returns.
#[derive(Debug, Clone, Copy)]
pub struct StopSignals(());

impl StopSignals {
    /// The termination signal that started the stop (15 for SIGTERM, 2 for
    /// SIGINT), once one came.
    pub fn signal(&self) -> Option<i32> {
        match SIGNAL.load(Ordering::Acquire) {
            0 => None,
            n => Some(n),
        }
    }

    /// Waits until every stop that was started has done its work (each
    /// script ended, or was killed at the grace).
    pub fn wait_stopped(&self) {
        let mut under_way = lock(&STOPPING.under_way);
        while *under_way > 0 {
            under_way = STOPPING
                .cv
                .wait(under_way)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Turns SIGTERM and SIGINT of the host process into a graceful stop of
/// every running script (see [`stop_all`]) with `grace` to finish; a second
/// signal stops them at once. Installed once per process (later calls
/// return the same handle; the first `grace` holds). The process then no
/// longer dies of these signals: check [`StopSignals::signal`] when your
/// scripts have ended, and exit.
///
/// ```no_run
/// let stop = tether::stop_on_signals(std::time::Duration::from_secs(5))?;
/// let outcome = tether::Host::new().run("worker.py")?;
/// if let Some(signal) = stop.signal() {
///     stop.wait_stopped();
///     std::process::exit(128 + signal);
/// }
/// # let _ = outcome;
/// # Ok::<(), tether::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Io`] when the handlers or their thread cannot be installed.
pub fn stop_on_signals(grace: Duration) -> Result<StopSignals, Error> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| install(grace).map_err(|e| e.to_string()));
    match installed {
        Ok(()) => Ok(StopSignals(())),
        Err(e) => Err(Error::Io {
            context: "installing handlers for SIGTERM and SIGINT".into(),
            source: std::io::Error::other(e.clone()),
        }),
    }
}

fn install(grace: Duration) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("tether-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if SIGNAL
                    .compare_exchange(0, signal, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    tracing::info!(signal, "termination signal: stopping every script");
                    stop_all(grace);
                } else {
                    tracing::info!(signal, "second termination signal: killing every script");
                    STOPPING.hurry.store(true, Ordering::Release);
                    let _guard = lock(&STOPPING.under_way);
                    STOPPING.cv.notify_all();
                }
            }
        })?;
    Ok(())
}
