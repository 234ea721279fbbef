//! Deadlines from durations. A duration the clock cannot add (`Duration::MAX`, the
//! natural way to say "no limit") is no deadline, never an overflow panic.

use std::time::{Duration, Instant};

/// When `d` from now ends; `None` when that lies beyond what [`Instant`] can
/// hold, which is to say never.
pub(crate) fn deadline_in(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// What is left until `deadline` (`None`: no deadline, so all the time there is).
pub(crate) fn left_until(deadline: Option<Instant>) -> Duration {
    deadline.map_or(Duration::MAX, |d| {
        d.saturating_duration_since(Instant::now())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_past_the_clock_is_no_deadline() {
        assert_eq!(deadline_in(Duration::MAX), None);
        assert!(deadline_in(Duration::from_secs(1)).is_some());
        assert_eq!(left_until(None), Duration::MAX);
        assert!(left_until(deadline_in(Duration::from_secs(60))) > Duration::from_secs(59));
    }
}
