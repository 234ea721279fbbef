//! A bounded pool of threads that run host functions, and that never
//! deadlocks on nesting.
//!
//! A host function may call back into the script, whose export may call the
//! host again, to any depth. With a fixed number of workers, every worker
//! could end up waiting for an answer whose computation sits in the queue
//! behind them. So a worker that waits ([`help_until`]) runs queued tasks
//! meanwhile: nested calls always find a thread, and the pool stays bounded.
//! With one worker this is the *serial* mode: calls run one at a time in
//! arrival order, except those nested inside the running one.
//!
//! A wait with a deadline (a call with a time limit) must not run queued
//! tasks itself: one of them could take longer than the deadline, and the
//! wait would return late. Such a waiter leaves the queue to the other
//! workers, and when none is free it starts one extra thread that runs the
//! queue until it is empty (so the script's nested calls still find a
//! thread, in serial mode too, while the timed call waits).
//!
//! [`help_until`]: Pool::help_until

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::sync::lock;

/// A unit of work.
pub(crate) type Task = Box<dyn FnOnce() + Send + 'static>;

pub(crate) struct Pool {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    queue: Mutex<Queue>,
    cv: Condvar,
}

struct Queue {
    tasks: VecDeque<Task>,
    shutdown: bool,
    /// Workers waiting for a task.
    idle: usize,
    /// Extra threads started for timed waits, still running the queue.
    helpers: usize,
}

thread_local! {
    /// The pool whose worker this thread is, if any.
    static WORKER_OF: RefCell<Option<Arc<Inner>>> = const { RefCell::new(None) };
}

impl Pool {
    /// Starts `size` (at least one) worker threads.
    pub fn new(size: usize, name: &str) -> std::io::Result<Pool> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue {
                tasks: VecDeque::new(),
                shutdown: false,
                idle: 0,
                helpers: 0,
            }),
            cv: Condvar::new(),
        });
        for i in 0..size.max(1) {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || worker(inner))?;
        }
        Ok(Pool { inner })
    }

    /// Queues a task.
    pub fn submit(&self, task: Task) {
        let mut q = lock(&self.inner.queue);
        q.tasks.push_back(task);
        drop(q);
        self.inner.cv.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.inner.queue).shutdown = true;
        self.inner.cv.notify_all();
    }
}

fn worker(inner: Arc<Inner>) {
    WORKER_OF.with(|w| *w.borrow_mut() = Some(Arc::clone(&inner)));
    loop {
        let task = {
            let mut q = lock(&inner.queue);
            loop {
                if let Some(task) = q.tasks.pop_front() {
                    break task;
                }
                if q.shutdown {
                    return;
                }
                q.idle += 1;
                q = inner.cv.wait(q).unwrap_or_else(|e| e.into_inner());
                q.idle -= 1;
            }
        };
        run(task);
    }
}

/// An extra thread for a timed wait: runs queued tasks until none is left.
fn helper(inner: Arc<Inner>) {
    WORKER_OF.with(|w| *w.borrow_mut() = Some(Arc::clone(&inner)));
    loop {
        let task = {
            let mut q = lock(&inner.queue);
            match q.tasks.pop_front() {
                Some(task) => task,
                None => {
                    q.helpers -= 1;
                    return;
                }
            }
        };
        run(task);
    }
}

/// Runs a task; a panic (which tether's own tasks never raise: they catch
/// the handler's) is logged instead of killing the worker.
fn run(task: Task) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(task)).is_err() {
        tracing::error!("a tether pool task panicked");
    }
}

/// The pool the current thread works for, if it is a worker.
pub(crate) fn current() -> Option<Arc<Inner>> {
    WORKER_OF.with(|w| w.borrow().clone())
}

impl Inner {
    /// Waits until `done()` or the deadline; returns `done()`. Without a
    /// deadline it runs queued tasks meanwhile; with one it leaves them to
    /// other threads, starting one when no worker is free (see the module
    /// docs), so it returns on time.
    ///
    /// `done` is checked with the queue locked, and whoever makes it true must
    /// then call [`wake`](Inner::wake): no wake-up can be lost in between.
    pub fn help_until(
        self: &Arc<Self>,
        done: &dyn Fn() -> bool,
        deadline: Option<Instant>,
    ) -> bool {
        let mut q = lock(&self.queue);
        loop {
            if done() {
                return true;
            }
            let Some(deadline) = deadline else {
                if let Some(task) = q.tasks.pop_front() {
                    drop(q);
                    run(task);
                    q = lock(&self.queue);
                } else {
                    q = self.cv.wait(q).unwrap_or_else(|e| e.into_inner());
                }
                continue;
            };
            if !q.tasks.is_empty() && q.idle > 0 {
                // A wake-up meant for a free worker may have reached this
                // waiter instead: pass it on.
                self.cv.notify_one();
            }
            if !q.tasks.is_empty() && q.idle == 0 && q.helpers == 0 {
                let inner = Arc::clone(self);
                let started = std::thread::Builder::new()
                    .name("tether-helper".into())
                    .spawn(move || helper(inner));
                match started {
                    Ok(_) => q.helpers += 1,
                    Err(e) => tracing::warn!("cannot start a helper thread: {e}"),
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return done();
            }
            q = self
                .cv
                .wait_timeout(q, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Wakes every waiting worker (an answer one of them waits for arrived).
    pub fn wake(&self) {
        let _q = lock(&self.queue);
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    #[test]
    fn nested_waits_on_a_one_thread_pool_do_not_deadlock() {
        // Each level queues the next and waits for it: with one worker this
        // only finishes if the waiting worker runs the queued task itself.
        let pool = Arc::new(Pool::new(1, "test-pool").unwrap());
        let (tx, rx) = mpsc::channel();
        fn level(pool: Arc<Pool>, depth: usize, done: mpsc::Sender<usize>) {
            if depth == 0 {
                done.send(0).unwrap();
                return;
            }
            let flag = Arc::new(AtomicUsize::new(0));
            let inner_flag = Arc::clone(&flag);
            let p = Arc::clone(&pool);
            let d = done.clone();
            pool.submit(Box::new(move || {
                level(p, depth - 1, d);
                inner_flag.store(1, Ordering::SeqCst);
                current().unwrap().wake();
            }));
            let helped = current()
                .unwrap()
                .help_until(&|| flag.load(Ordering::SeqCst) == 1, None);
            assert!(helped);
            if depth == 50 {
                done.send(depth).unwrap();
            }
        }
        let p = Arc::clone(&pool);
        pool.submit(Box::new(move || level(p, 50, tx)));
        let mut got: Vec<usize> = vec![rx.recv().unwrap(), rx.recv().unwrap()];
        got.sort_unstable();
        assert_eq!(got, vec![0, 50]);
    }
}
