//! [`Child`]: a running script, served by threads of its own: call it,
//! wait for it, stop it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::process::Signal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::outcome::Outcome;
use crate::peer::Peer;
use crate::stats::Stats;
use crate::stop::Target;

/// A script started with [`Host::spawn`](crate::Host::spawn), served by threads of its own.
///
/// Call its exports with [`call`](Child::call), wait for it, or stop it.
/// Dropping it kills the script (if it still runs) and reaps it: no script
/// outlives its handle.
pub struct Child {
    peer: Peer,
    /// The script as a graceful stop of the whole process sees it: its
    /// killer and whether its outcome has been sent.
    target: Arc<Target>,
    done: mpsc::Receiver<Result<Outcome, Error>>,
    thread: Option<JoinHandle<()>>,
    /// Odd while the serving thread runs one of the script's calls.
    busy: Arc<AtomicU64>,
}

impl Child {
    pub(crate) fn new(
        peer: Peer,
        target: Arc<Target>,
        done: mpsc::Receiver<Result<Outcome, Error>>,
        thread: JoinHandle<()>,
        busy: Arc<AtomicU64>,
    ) -> Child {
        Child {
            peer,
            target,
            done,
            thread: Some(thread),
            busy,
        }
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

    fn try_join(&mut self, timeout: Duration) -> Option<Result<Outcome, Error>> {
        match self.done.recv_timeout(timeout) {
            Ok(result) => {
                self.join_thread();
                Some(result)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(self.join()),
        }
    }

    fn join(&mut self) -> Result<Outcome, Error> {
        let result = self.done.recv().unwrap_or_else(|_| {
            Err(Error::Io {
                context: "serving the script".into(),
                source: std::io::Error::other("the serving thread ended without an outcome"),
            })
        });
        self.join_thread();
        result
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

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child").field("pid", &self.id()).finish()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.signal(Signal::KILL, "its handle (Child) was dropped");
            let _ = self.join();
        }
    }
}
