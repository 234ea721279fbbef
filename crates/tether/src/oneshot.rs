//! A one-value channel that a thread can wait on and a future can await:
//! how the thread that reads a script's pipe (or a helper thread) hands a
//! result to whoever waits for it, blocking or async, with no runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::sync::lock;

struct Shared<T> {
    state: Mutex<State<T>>,
    cv: Condvar,
}

struct State<T> {
    value: Option<T>,
    /// The sender was dropped without sending.
    closed: bool,
    waker: Option<Waker>,
}

/// The sending half; dropping it unsent closes the channel.
pub(crate) struct Sender<T> {
    shared: Option<Arc<Shared<T>>>,
}

/// The receiving half.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// Why nothing was received.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecvError {
    /// The sender went away without sending.
    Closed,
    /// The time ran out.
    Timeout,
}

pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            value: None,
            closed: false,
            waker: None,
        }),
        cv: Condvar::new(),
    });
    (
        Sender {
            shared: Some(Arc::clone(&shared)),
        },
        Receiver { shared },
    )
}

impl<T> Sender<T> {
    pub fn send(mut self, value: T) {
        if let Some(shared) = self.shared.take() {
            let waker = {
                let mut state = lock(&shared.state);
                state.value = Some(value);
                state.waker.take()
            };
            shared.cv.notify_all();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let waker = {
                let mut state = lock(&shared.state);
                state.closed = true;
                state.waker.take()
            };
            shared.cv.notify_all();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl<T> Receiver<T> {
    /// Waits for the value, for at most `timeout` (`None`: for as long as
    /// it takes).
    pub fn recv_timeout(&self, timeout: Option<Duration>) -> Result<T, RecvError> {
        let deadline = timeout.and_then(crate::clock::deadline_in);
        let mut state = lock(&self.shared.state);
        loop {
            if let Some(value) = state.value.take() {
                return Ok(value);
            }
            if state.closed {
                return Err(RecvError::Closed);
            }
            state = match deadline {
                None => self
                    .shared
                    .cv
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(RecvError::Timeout);
                    }
                    self.shared
                        .cv
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// Waits for the value.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.recv_timeout(None)
    }

    /// The value, without waiting, if it is there.
    fn poll_value(&self, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        let mut state = lock(&self.shared.state);
        if let Some(value) = state.value.take() {
            return Poll::Ready(Ok(value));
        }
        if state.closed {
            return Poll::Ready(Err(RecvError::Closed));
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.poll_value(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_reaches_a_waiting_thread_and_a_dropped_sender_closes() {
        let (tx, rx) = channel();
        let t = std::thread::spawn(move || tx.send(7));
        assert_eq!(rx.recv(), Ok(7));
        t.join().unwrap();
        let (tx, rx) = channel::<i32>();
        assert_eq!(
            rx.recv_timeout(Some(Duration::from_millis(10))),
            Err(RecvError::Timeout)
        );
        drop(tx);
        assert_eq!(rx.recv(), Err(RecvError::Closed));
    }

    #[test]
    fn a_value_wakes_an_awaiting_future() {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send("late");
        });
        assert_eq!(crate::test_support::block_on(rx), Ok("late"));
    }
}
