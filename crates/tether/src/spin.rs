//! Adaptive spinning: how long a reader keeps looking at an empty pipe
//! before it sleeps, and the one place that knows how many cores tether may
//! use and how many scripts this host process serves.
//!
//! Waking a process that sleeps in `poll` on another core costs tens of
//! microseconds, most of a small call's round trip; an answer that comes
//! back within a few microseconds is caught far sooner by a reader that
//! keeps looking. But spinning burns a core, so it is bounded, adapts to
//! what it observes (see [`Spin`]), is off with one usable core, and pauses
//! while this host serves more scripts than half the cores it may use (each
//! call keeps two threads busy, the script's and the host's). The Python
//! client follows the same rule with the bound it gets in `TETHER_SPIN_US`,
//! and also pauses when its own process keeps being preempted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The spin bound in force for a configured `max`: `TETHER_SPIN_US` (of the
/// host process) over it, and zero with one usable core.
pub(crate) fn bound(max: Duration) -> Duration {
    let max = std::env::var("TETHER_SPIN_US")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(max, Duration::from_micros);
    if usable_cores() < 2 {
        Duration::ZERO
    } else {
        max
    }
}

/// How many cores this process may use (affinity and cgroup quota included),
/// looked up once: on Linux it reads files.
pub(crate) fn usable_cores() -> usize {
    static USABLE: OnceLock<usize> = OnceLock::new();
    *USABLE.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// One reader's spinning: bounded by `max`, adapting to what it observes:
///
/// - a wait that spinning caught keeps the budget (or raises it to twice
///   that wait, up to `max`);
/// - a wait that spinning missed halves the budget: answers are slow, or
///   too many processes compete for the cores and the one we wait for is
///   not even running;
/// - a missed wait that turned out short (under half of `max`) raises the
///   budget to twice its length: the next one would have been caught;
/// - a budget that fell to zero is tried again at `max` every
///   [`LOOK_EVERY`]: once at zero it would learn nothing more.
#[derive(Debug, Clone)]
pub(crate) struct Spin {
    max: Duration,
    budget: Duration,
    /// When the machine's load was last looked at.
    looked: Option<Instant>,
    crowded: bool,
}

/// How often a spinning reader looks at how crowded the cores are.
const LOOK_EVERY: Duration = Duration::from_millis(10);

impl Spin {
    /// Budgets below this are not worth a poll: spinning stops.
    const FLOOR: Duration = Duration::from_nanos(500);

    pub fn new(max: Duration) -> Spin {
        Spin {
            max,
            budget: max,
            looked: None,
            crowded: false,
        }
    }

    /// How long to spin before the next sleep; `now` is the time.
    pub fn budget(&mut self, now: Instant) -> Duration {
        if self.max.is_zero() {
            return Duration::ZERO;
        }
        if self
            .looked
            .is_none_or(|at| now.duration_since(at) >= LOOK_EVERY)
        {
            self.looked = Some(now);
            self.crowded = machine_is_crowded();
            if self.budget.is_zero() {
                // Try again: the waits that collapsed the budget may have
                // been a passing slowness, and a budget of zero learns
                // nothing (a blocking wait includes the wake-up, which
                // alone may be longer than half the bound). At most a few
                // wasted spins every LOOK_EVERY.
                self.budget = self.max;
            }
        }
        if self.crowded {
            Duration::ZERO
        } else {
            self.learned()
        }
    }

    /// The budget learned from past waits, whatever the machine's load.
    pub fn learned(&self) -> Duration {
        self.budget
    }

    /// Learns from one wait that took `waited`, caught by spinning or not.
    pub fn record(&mut self, waited: Duration, caught: bool) {
        if self.max.is_zero() {
            return;
        }
        let twice = waited.saturating_mul(2).min(self.max);
        self.budget = if caught {
            self.budget.max(twice)
        } else if waited <= self.max / 2 {
            twice
        } else {
            self.budget / 2
        };
        if self.budget < Self::FLOOR {
            self.budget = Duration::ZERO;
        }
    }
}

/// Scripts this host process serves now.
static SERVING: AtomicUsize = AtomicUsize::new(0);

/// Counts one script as served while it lives.
pub(crate) struct Serving(());

impl Serving {
    pub fn start() -> Serving {
        SERVING.fetch_add(1, Ordering::Relaxed);
        Serving(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        SERVING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether spinning would take time from others: this host serves more
/// scripts than half the cores it may use (each call keeps two threads
/// busy, the script's and the host's).
fn machine_is_crowded() -> bool {
    SERVING.load(Ordering::Relaxed) * 2 > usable_cores()
}

#[cfg(test)]
mod tests {
    use super::Spin;
    use std::time::Duration;

    const MAX: Duration = Duration::from_micros(50);

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn spinning_backs_off_when_answers_are_slow_and_returns_when_they_are_quick() {
        let mut spin = Spin::new(MAX);
        assert_eq!(spin.learned(), MAX);
        // Answers slower than the bound: each miss halves the budget, down
        // to nothing.
        for _ in 0..20 {
            spin.record(us(800), false);
        }
        assert_eq!(spin.learned(), Duration::ZERO);
        // A blocking wait that turned out short: the next would be caught.
        spin.record(us(4), false);
        assert_eq!(spin.learned(), us(8));
        // Caught waits keep the budget, or raise it to twice the wait.
        spin.record(us(2), true);
        assert_eq!(spin.learned(), us(8));
        spin.record(us(7), true);
        assert_eq!(spin.learned(), us(14));
        // Never past the bound.
        spin.record(us(40), true);
        assert_eq!(spin.learned(), MAX);
    }

    #[test]
    fn a_collapsed_budget_is_tried_again_at_the_next_look() {
        let mut spin = Spin::new(MAX);
        let start = std::time::Instant::now();
        assert_eq!(spin.budget(start), MAX);
        for _ in 0..20 {
            spin.record(us(800), false);
        }
        assert_eq!(spin.budget(start + us(10)), Duration::ZERO);
        // Within the same look it stays off; at the next one it tries again.
        assert_eq!(spin.budget(start + us(9_000)), Duration::ZERO);
        assert_eq!(spin.budget(start + super::LOOK_EVERY), MAX);
    }

    #[test]
    fn a_zero_bound_never_spins() {
        let mut spin = Spin::new(Duration::ZERO);
        spin.record(us(1), false);
        spin.record(us(1), true);
        assert_eq!(spin.learned(), Duration::ZERO);
    }
}
