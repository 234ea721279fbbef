//! [`Stats`]: what one script's channel has carried so far, counted as it
//! happens ([`Counters`]) and readable at any time from the script's handle.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// What one script's channel has carried so far: calls in both directions,
/// how many failed, bytes, and what is in flight now.
///
/// Read it at any time with [`Peer::stats`](crate::Peer::stats) or
/// [`Child::stats`](crate::Child::stats); [`Outcome::stats`](crate::Outcome::stats)
/// is the final count.
///
/// ```no_run
/// let child = tether::Host::new().spawn("plugin.py")?;
/// let _: i64 = child.call("square", (7,))?;
/// let stats = child.stats();
/// assert_eq!(stats.calls_to_script, 1);
/// println!("{} bytes sent, {} read", stats.bytes_to_script, stats.bytes_from_script);
/// # Ok::<(), tether::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls and notifications the script made to the host's functions.
    pub calls_from_script: u64,
    /// Of those, the ones that failed: the function returned an error or
    /// panicked, did not exist, or the call was refused by a limit.
    pub failed_from_script: u64,
    /// The script's calls running on the host now.
    pub running_on_host: usize,
    /// Calls and notifications the host made into the script.
    pub calls_to_script: u64,
    /// Of those, the calls that failed: the export raised or did not exist,
    /// the call timed out, or the script ended first.
    pub failed_to_script: u64,
    /// The host's calls waiting for the script's answer now.
    pub waiting_on_script: usize,
    /// Bytes read from the script: its frames, and the values it passed in
    /// shared memory.
    pub bytes_from_script: u64,
    /// Bytes sent to the script, counted the same way.
    pub bytes_to_script: u64,
}

/// The live counts behind [`Stats`], shared by whoever reads, writes and
/// runs calls for one script.
#[derive(Default)]
pub(crate) struct Counters {
    pub calls_from_script: AtomicU64,
    pub failed_from_script: AtomicU64,
    pub running_on_host: AtomicUsize,
    pub calls_to_script: AtomicU64,
    pub failed_to_script: AtomicU64,
    pub waiting_on_script: AtomicUsize,
    pub bytes_from_script: AtomicU64,
    pub bytes_to_script: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            calls_from_script: get(&self.calls_from_script),
            failed_from_script: get(&self.failed_from_script),
            running_on_host: self.running_on_host.load(Ordering::Relaxed),
            calls_to_script: get(&self.calls_to_script),
            failed_to_script: get(&self.failed_to_script),
            waiting_on_script: self.waiting_on_script.load(Ordering::Relaxed),
            bytes_from_script: get(&self.bytes_from_script),
            bytes_to_script: get(&self.bytes_to_script),
        }
    }
}
