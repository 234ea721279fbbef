//! [`Child`]: a running script, served by threads of its own: call it,
//! wait for it, stop it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::process::Signal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::oneshot::{Receiver, RecvError};
use crate::outcome::Outcome;
use crate::peer::Peer;
use crate::stats::Stats;
use crate::stop::Target;

/// A script started with [`Host::spawn`](crate::Host::spawn), served by threads of its own.
///
/// Call its exports with [`call`](Child::call), wait for it, or stop it.
/// Dropping it kills the script (if it still runs) and reaps it: no script
/// outlives its handle. Dropped inside a tokio runtime, it sends SIGKILL at
/// once and leaves the reaping to a helper thread, so the runtime's thread
/// does not wait.
pub struct Child {
    peer: Peer,
    /// The script as a graceful stop of the whole process sees it: its
    /// killer and whether its outcome has been sent.
    target: Arc<Target>,
    done: Receiver<Result<Outcome, Error>>,
    thread: Option<JoinHandle<()>>,
    /// Odd while the serving thread runs one of the script's calls.
    busy: Arc<AtomicU64>,
    enforcement: Option<crate::sandbox::Enforcement>,
}

impl Child {
    pub(crate) fn new(
        peer: Peer,
        target: Arc<Target>,
        done: Receiver<Result<Outcome, Error>>,
        thread: JoinHandle<()>,
        busy: Arc<AtomicU64>,
        enforcement: Option<crate::sandbox::Enforcement>,
    ) -> Child {
        Child {
            peer,
            target,
            done,
            thread: Some(thread),
            busy,
            enforcement,
        }
    }

    /// What the kernel enforces of the script's [`Sandbox`](crate::Sandbox),
    /// when it runs in one (with strict enforcement, all of it).
    pub fn sandbox(&self) -> Option<&crate::sandbox::Enforcement> {
        self.enforcement.as_ref()
    }

    /// The script's process id.
    pub fn id(&self) -> u32 {
        self.peer.id()
    }

    /// What the script's channel has carried so far; see [`Peer::stats`].
    pub fn stats(&self) -> Stats {
        self.peer.stats()
    }

    /// A handle for calling the script from other threads.
    pub fn peer(&self) -> Peer {
        self.peer.clone()
    }

    /// Calls the script's export `method`; see [`Peer::call`].
    ///
    /// # Errors
    ///
    /// As for [`Peer::call`].
    pub fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> Result<R, Error> {
        self.peer.call(method, args)
    }

    /// Calls the script's export `method` with a time limit; see
    /// [`Peer::call_timeout`].
    ///
    /// # Errors
    ///
    /// As for [`Peer::call_timeout`].
    pub fn call_timeout<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
        timeout: Duration,
    ) -> Result<R, Error> {
        self.peer.call_timeout(method, args, timeout)
    }

    /// The async form of [`call`](Child::call); see [`Peer::call_async`].
    pub fn call_async<R: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> impl Future<Output = Result<R, Error>> + Send + 'static {
        self.peer.call_async(method, args)
    }

    /// The async form of [`call_timeout`](Child::call_timeout); see
    /// [`Peer::call_timeout_async`].
    pub fn call_timeout_async<R: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        args: impl Serialize,
        timeout: Duration,
    ) -> impl Future<Output = Result<R, Error>> + Send + 'static {
        self.peer.call_timeout_async(method, args, timeout)
    }

    /// The async form of [`notify`](Child::notify); see [`Peer::notify_async`].
    pub fn notify_async(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        self.peer.notify_async(method, args)
    }

    /// Sends the script a notification; see [`Peer::notify`].
    ///
    /// # Errors
    ///
    /// As for [`Peer::notify`].
    pub fn notify(&self, method: &str, args: impl Serialize) -> Result<(), Error> {
        self.peer.notify(method, args)
    }

    /// Whether the script has ended and its outcome is ready.
    pub fn is_finished(&self) -> bool {
        self.thread.is_none() || self.target.finished.load(Ordering::Acquire)
    }

    /// Kills the script with SIGKILL; [`wait`](Child::wait) then reports it
    /// as killed by signal 9. Killing a script that already ended does
    /// nothing.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent for a reason other than the script
    /// being gone.
    pub fn kill(&self) -> Result<(), Error> {
        self.signal(Signal::KILL, "Child::kill")
    }

    fn signal(&self, signal: Signal, why: &str) -> Result<(), Error> {
        if self.is_finished() {
            return Ok(());
        }
        self.target
            .killer
            .signal(signal, why)
            .map_err(|source| Error::Io {
                context: format!("signalling script {}", self.id()),
                source,
            })
    }

    /// Waits for the script to end and says how it ended, as
    /// [`Host::run`](crate::Host::run) does.
    ///
    /// # Errors
    ///
    /// As for [`Host::run`](crate::Host::run).
    pub fn wait(mut self) -> Result<Outcome, Error> {
        self.peer.link.may_block(|| "Child::wait".into())?;
        self.join()
    }

    /// Stops the script: asks it to stop (`tether.serve()` returns and the
    /// channel closes), sends SIGTERM when it has not ended after half of
    /// `grace`, and SIGKILL when `grace` has run out. Returns how it ended.
    ///
    /// # Errors
    ///
    /// As for [`Host::run`](crate::Host::run).
    pub fn shutdown(mut self, grace: Duration) -> Result<Outcome, Error> {
        self.peer.link.may_block(|| "Child::shutdown".into())?;
        self.peer.link.stop_without_waiting();
        let half = grace / 2;
        if let Some(result) = self.try_join(half) {
            return result;
        }
        let _ = self.signal(
            Signal::TERM,
            &format!("Child::shutdown: it had not ended {half:?} after it was asked to stop"),
        );
        if let Some(result) = self.try_join(grace - half) {
            return result;
        }
        let _ = self.signal(
            Signal::KILL,
            &format!("Child::shutdown: the grace of {grace:?} ran out"),
        );
        self.join()
    }

    /// The outcome, if the script ends within `timeout`.
    pub(crate) fn try_join(&mut self, timeout: Duration) -> Option<Result<Outcome, Error>> {
        match self.done.recv_timeout(Some(timeout)) {
            Ok(result) => {
                self.join_thread();
                Some(result)
            }
            Err(RecvError::Timeout) => None,
            Err(RecvError::Closed) => Some(self.join()),
        }
    }

    fn join(&mut self) -> Result<Outcome, Error> {
        let result = self.done.recv().unwrap_or_else(|_| no_outcome());
        self.join_thread();
        result
    }

    /// The async form of [`wait`](Child::wait): never blocks the thread
    /// that polls it (the serving thread, which ends right after it sends
    /// the outcome, is left to end on its own).
    // The signature promises `Send + 'static`, which `async fn` would not show.
    #[allow(clippy::manual_async_fn)]
    pub fn wait_async(mut self) -> impl Future<Output = Result<Outcome, Error>> + Send + 'static {
        async move { self.outcome_async(None).await.unwrap_or_else(no_outcome) }
    }

    /// The async form of [`shutdown`](Child::shutdown), with the same
    /// escalation (ask, SIGTERM at half of `grace`, SIGKILL at `grace`),
    /// never blocking the thread that polls it.
    #[allow(clippy::manual_async_fn)]
    pub fn shutdown_async(
        mut self,
        grace: Duration,
    ) -> impl Future<Output = Result<Outcome, Error>> + Send + 'static {
        async move {
            self.peer.link.stop_without_waiting();
            let half = grace / 2;
            if let Some(result) = self.outcome_async(Some(half)).await {
                return result;
            }
            let _ = self.signal(
                Signal::TERM,
                &format!("Child::shutdown: it had not ended {half:?} after it was asked to stop"),
            );
            if let Some(result) = self.outcome_async(Some(grace - half)).await {
                return result;
            }
            let _ = self.signal(
                Signal::KILL,
                &format!("Child::shutdown: the grace of {grace:?} ran out"),
            );
            self.outcome_async(None).await.unwrap_or_else(no_outcome)
        }
    }

    /// Awaits the outcome for at most `timeout`; `None` when it did not
    /// come in time.
    async fn outcome_async(&mut self, timeout: Option<Duration>) -> Option<Result<Outcome, Error>> {
        let deadline = timeout.and_then(crate::clock::deadline_in);
        let received = crate::timer::or_deadline(&mut self.done, deadline).await;
        let result = match received? {
            Ok(result) => result,
            Err(_) => no_outcome(),
        };
        // The serving thread ends right after sending the outcome: join it
        // when it has, else let it end on its own (never wait here).
        if let Some(thread) = self.thread.take() {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        Some(result)
    }

    /// Joins the serving thread, unless it is inside a host function that
    /// has not returned (it then ends on its own when the function returns:
    /// host functions cannot be interrupted, and the outcome is already
    /// known).
    fn join_thread(&mut self) {
        if let Some(thread) = self.thread.take() {
            if self.busy.load(Ordering::SeqCst).is_multiple_of(2) || thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

fn no_outcome() -> Result<Outcome, Error> {
    Err(Error::Io {
        context: "serving the script".into(),
        source: std::io::Error::other("the serving thread ended without an outcome"),
    })
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child").field("pid", &self.id()).finish()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.signal(Signal::KILL, "its handle (Child) was dropped");
            if crate::runtime::current().is_some() {
                // Dropped in async code: the reaping finishes on a helper
                // thread, never on the runtime's.
                let (_, closed) = crate::oneshot::channel();
                let done = std::mem::replace(&mut self.done, closed);
                let thread = self.thread.take();
                let busy = Arc::clone(&self.busy);
                crate::blocking::detach(move || {
                    let _ = done.recv();
                    if let Some(thread) = thread {
                        if busy.load(Ordering::SeqCst).is_multiple_of(2) || thread.is_finished() {
                            let _ = thread.join();
                        }
                    }
                });
                return;
            }
            let _ = self.join();
        }
    }
}
