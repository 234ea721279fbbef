//! One thread for the whole host that notices a script's reader thread stuck
//! in a call it runs itself, so that another thread reads for the script
//! meanwhile (see [`Core`](crate::session::Core)).
//!
//! It ticks every millisecond while calls are being run, and sleeps when
//! none has run for a while: an idle host costs no wake-ups.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, Weak};
use std::time::Duration;

use crate::sync::lock;

/// How often the watchdog looks; a call that blocks is noticed after one to
/// two ticks.
const TICK: Duration = Duration::from_millis(1);

/// Ticks without any call running after which the watchdog sleeps.
const QUIET_TICKS: u32 = 100;

/// What the watchdog watches.
pub(crate) trait Watched: Send + Sync {
    /// Looks once; `true` while a call runs (the watchdog stays awake).
    fn tick(self: std::sync::Arc<Self>) -> bool;
}

struct Watchdog {
    watched: Mutex<Vec<Weak<dyn Watched>>>,
    /// The watchdog sleeps until poked.
    asleep: AtomicBool,
    cv: Condvar,
}

static WATCHDOG: OnceLock<Watchdog> = OnceLock::new();

/// Watches `item` until it is dropped.
pub(crate) fn watch(item: Weak<dyn Watched>) {
    let mut started = false;
    let dog = WATCHDOG.get_or_init(|| {
        started = true;
        Watchdog {
            watched: Mutex::new(Vec::new()),
            asleep: AtomicBool::new(false),
            cv: Condvar::new(),
        }
    });
    lock(&dog.watched).push(item);
    if started {
        if let Err(e) = std::thread::Builder::new()
            .name("tether-watchdog".into())
            .spawn(move || run(dog))
        {
            // Calls still run; one that blocks delays the others until it
            // returns, instead of a millisecond.
            tracing::warn!("cannot start the tether watchdog thread: {e}");
        }
    }
}

/// A call has started: wakes the watchdog if it sleeps.
pub(crate) fn poke() {
    if let Some(dog) = WATCHDOG.get() {
        if dog.asleep.load(Ordering::SeqCst) {
            let _guard = lock(&dog.watched);
            dog.asleep.store(false, Ordering::SeqCst);
            dog.cv.notify_all();
        }
    }
}

fn run(dog: &'static Watchdog) {
    let mut quiet = 0;
    loop {
        std::thread::sleep(TICK);
        if tick_all(dog) {
            quiet = 0;
            continue;
        }
        quiet += 1;
        if quiet < QUIET_TICKS {
            continue;
        }
        // Go to sleep. `poke` sets `asleep` back under the same lock, and a
        // call that started before `asleep` was set is seen by the last look.
        let mut watched = lock(&dog.watched);
        dog.asleep.store(true, Ordering::SeqCst);
        drop(watched);
        if tick_all(dog) {
            dog.asleep.store(false, Ordering::SeqCst);
            quiet = 0;
            continue;
        }
        watched = lock(&dog.watched);
        while dog.asleep.load(Ordering::SeqCst) {
            watched = dog.cv.wait(watched).unwrap_or_else(|e| e.into_inner());
        }
        drop(watched);
        quiet = 0;
    }
}

/// Ticks everything watched (dropping what is gone); whether a call runs.
fn tick_all(dog: &Watchdog) -> bool {
    let items: Vec<_> = {
        let mut watched = lock(&dog.watched);
        watched.retain(|w| w.strong_count() > 0);
        watched.iter().filter_map(Weak::upgrade).collect()
    };
    let mut busy = false;
    for item in items {
        busy |= item.tick();
    }
    busy
}
