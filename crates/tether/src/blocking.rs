//! Work that may block, taken off async callers: helper threads (started
//! when needed, gone after idling a while) run it and hand the result back
//! through a [`oneshot`] channel a future can await. Used for the rare
//! writes that cannot finish at once (a full pipe, a contended writer),
//! for spawning a script, and for joining what ends.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::oneshot::{self, Receiver};
use crate::sync::lock;

type Job = Box<dyn FnOnce() + Send>;

struct Helpers {
    queue: VecDeque<Job>,
    idle: usize,
    threads: usize,
}

static HELPERS: Mutex<Helpers> = Mutex::new(Helpers {
    queue: VecDeque::new(),
    idle: 0,
    threads: 0,
});
static WORK: Condvar = Condvar::new();

/// More helpers than this queue their work instead of starting threads.
const MAX_THREADS: usize = 64;
/// A helper with nothing to do for this long ends.
const IDLE: Duration = Duration::from_secs(10);

/// Runs `f` on a helper thread; its result arrives on the receiver.
pub(crate) fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Receiver<T> {
    let (tx, rx) = oneshot::channel();
    submit(Box::new(move || tx.send(f())));
    rx
}

/// Runs `f` on a helper thread, for its effect only.
pub(crate) fn detach(f: impl FnOnce() + Send + 'static) {
    submit(Box::new(f));
}

fn submit(job: Job) {
    let mut helpers = lock(&HELPERS);
    helpers.queue.push_back(job);
    if helpers.idle > 0 || helpers.threads >= MAX_THREADS {
        drop(helpers);
        WORK.notify_one();
        return;
    }
    helpers.threads += 1;
    drop(helpers);
    let started = std::thread::Builder::new()
        .name("tether-helper".into())
        .spawn(helper);
    if let Err(e) = started {
        tracing::warn!("cannot start a helper thread: {e}; running the work here");
        let job = {
            let mut helpers = lock(&HELPERS);
            helpers.threads -= 1;
            helpers.queue.pop_back()
        };
        if let Some(job) = job {
            job();
        }
    }
}

fn helper() {
    let mut helpers = lock(&HELPERS);
    loop {
        if let Some(job) = helpers.queue.pop_front() {
            drop(helpers);
            job();
            helpers = lock(&HELPERS);
            continue;
        }
        helpers.idle += 1;
        let (next, timeout) = WORK
            .wait_timeout(helpers, IDLE)
            .unwrap_or_else(|e| e.into_inner());
        helpers = next;
        helpers.idle -= 1;
        if timeout.timed_out() && helpers.queue.is_empty() {
            helpers.threads -= 1;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_runs_on_helpers_and_results_come_back() {
        let results: Vec<_> = (0..100).map(|i| run(move || i * 2)).collect();
        let got: Vec<i32> = results.into_iter().map(|r| r.recv().unwrap()).collect();
        assert_eq!(got, (0..100).map(|i| i * 2).collect::<Vec<_>>());
    }
}
