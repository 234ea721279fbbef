//! Deadlines for async callers without a runtime: one thread per process
//! (started on first use) wakes each [`Sleep`] when its time comes, so a
//! call's time limit works under tokio, async-std or a hand-made executor.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::sync::lock;

#[derive(Default)]
struct Timers {
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    wakers: HashMap<u64, Waker>,
}

struct Wheel {
    timers: Mutex<Timers>,
    cv: Condvar,
}

fn wheel() -> &'static Wheel {
    static WHEEL: OnceLock<&'static Wheel> = OnceLock::new();
    WHEEL.get_or_init(|| {
        let wheel: &'static Wheel = Box::leak(Box::new(Wheel {
            timers: Mutex::new(Timers::default()),
            cv: Condvar::new(),
        }));
        if let Err(e) = std::thread::Builder::new()
            .name("tether-timer".into())
            .spawn(move || run(wheel))
        {
            tracing::error!("cannot start the tether timer thread: {e}");
        }
        wheel
    })
}

fn run(wheel: &'static Wheel) {
    let mut timers = lock(&wheel.timers);
    loop {
        let now = Instant::now();
        let mut woken = Vec::new();
        while let Some(Reverse((at, id))) = timers.due.peek().copied() {
            if at > now {
                break;
            }
            timers.due.pop();
            if let Some(w) = timers.wakers.remove(&id) {
                woken.push(w);
            }
        }
        if !woken.is_empty() {
            drop(timers);
            woken.into_iter().for_each(Waker::wake);
            timers = lock(&wheel.timers);
            continue;
        }
        timers = match timers.due.peek() {
            Some(Reverse((at, _))) => {
                let left = at.saturating_duration_since(now);
                wheel
                    .cv
                    .wait_timeout(timers, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => wheel.cv.wait(timers).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// A future that is ready at `deadline`.
pub(crate) struct Sleep {
    deadline: Instant,
    id: u64,
    registered: bool,
}

impl Sleep {
    pub fn until(deadline: Instant) -> Sleep {
        static IDS: AtomicU64 = AtomicU64::new(0);
        Sleep {
            deadline,
            id: IDS.fetch_add(1, Ordering::Relaxed),
            registered: false,
        }
    }

    /// Whether the deadline has passed (without registering anything).
    pub fn is_due(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_due() {
            return Poll::Ready(());
        }
        let wheel = wheel();
        let mut timers = lock(&wheel.timers);
        let first = !self.registered;
        timers.wakers.insert(self.id, cx.waker().clone());
        if first {
            self.registered = true;
            let earliest = timers
                .due
                .peek()
                .is_none_or(|Reverse((at, _))| self.deadline < *at);
            timers.due.push(Reverse((self.deadline, self.id)));
            if earliest {
                wheel.cv.notify_one();
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if self.registered {
            // The heap entry is skipped when it falls due.
            lock(&wheel().timers).wakers.remove(&self.id);
        }
    }
}

/// Runs `future` until `deadline`; `None` when the deadline came first.
pub(crate) async fn or_deadline<F: Future>(
    future: F,
    deadline: Option<Instant>,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut sleep = deadline.map(Sleep::until);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if let Some(s) = &mut sleep {
            if Pin::new(s).poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sleeps_end_in_deadline_order() {
        let start = Instant::now();
        let late = Sleep::until(start + Duration::from_millis(60));
        let early = Sleep::until(start + Duration::from_millis(20));
        crate::test_support::block_on(early);
        let mid = start.elapsed();
        crate::test_support::block_on(late);
        assert!(mid >= Duration::from_millis(20), "{mid:?}");
        assert!(start.elapsed() >= Duration::from_millis(60));
    }
}
