//! [`Outcome`]: the report of how a script run ended, and the words for
//! it when it did not end well.

use std::process::ExitStatus;

use crate::error::Error;
use crate::stats::Stats;

/// How a script run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Option<Vec<u8>>,
    pub(crate) stderr: Option<Vec<u8>>,
    pub(crate) stats: Stats,
    /// The script's calls that were running on the host when it ended.
    pub(crate) in_flight: Vec<String>,
    /// Why the host signalled the script, when it did.
    pub(crate) killed_by: Option<String>,
    /// The sandbox limit that ended the script, when one did.
    pub(crate) limit: Option<String>,
}

impl Outcome {
    /// The script's exit status (`Display` says "exit status: 1" or
    /// "signal: 9 (SIGKILL)").
    pub fn status(&self) -> ExitStatus {
        self.status
    }

    /// Whether the script exited with code 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, or `None` when a signal ended the script.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that ended the script, if one did.
    pub fn signal(&self) -> Option<i32> {
        std::os::unix::process::ExitStatusExt::signal(&self.status)
    }

    /// What the script wrote to stdout, when it was captured.
    pub fn stdout(&self) -> Option<&[u8]> {
        self.stdout.as_deref()
    }

    /// What the script wrote to stderr, when it was captured.
    pub fn stderr(&self) -> Option<&[u8]> {
        self.stderr.as_deref()
    }

    /// How many calls the script made to the host.
    pub fn calls(&self) -> u64 {
        self.stats.calls_from_script
    }

    /// What the script's channel carried over the whole run.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The script's calls that were still running on the host when it ended
    /// (a script that dies mid-call leaves them behind).
    pub fn calls_in_flight(&self) -> &[String] {
        &self.in_flight
    }

    /// Why tether itself signalled the script, when it did
    /// ([`Child::kill`](crate::Child::kill), the escalation of
    /// [`Child::shutdown`](crate::Child::shutdown), a limit, a dropped
    /// handle): a script killed by signal 9 *without* this was killed by
    /// someone else, most likely the kernel's out-of-memory killer.
    pub fn killed_by_host(&self) -> Option<&str> {
        self.killed_by.as_deref()
    }

    /// The limit of the script's [`Sandbox`](crate::Sandbox) that ended it,
    /// in words with its value ("CPU time limit of 3 s", "memory limit of
    /// 512 MiB", "process limit of 64"), when one did. Limits that show in
    /// a script's stderr (memory, processes, open files, file size) are
    /// recognised when stderr was captured or inherited.
    pub fn limit(&self) -> Option<&str> {
        self.limit.as_deref()
    }

    /// `Ok(self)` when the script exited with code 0, else
    /// [`Error::ScriptFailed`] saying how it ended (with a hint for SIGKILL
    /// and SIGSEGV), which calls were in flight, and the last lines of stderr
    /// when it was captured.
    ///
    /// # Errors
    ///
    /// [`Error::ScriptFailed`] when the script did not succeed.
    pub fn check(self) -> Result<Outcome, Error> {
        if self.success() {
            return Ok(self);
        }
        let limit = self
            .limit
            .as_ref()
            .map_or_else(String::new, |l| format!(" (it reached its sandbox's {l})"));
        Err(Error::ScriptFailed {
            status: self.status,
            killed_by: self.killed_by.clone(),
            report: limit + &report(&self.in_flight, self.stderr.as_deref()),
        })
    }
}

/// What a failure report adds to how the script ended: the calls in flight
/// and the last lines of captured stderr.
pub(crate) fn report(in_flight: &[String], stderr: Option<&[u8]>) -> String {
    const LINES: usize = 20;
    let mut out = String::new();
    if !in_flight.is_empty() {
        out += &format!("; calls in flight: {}", in_flight.join(", "));
    }
    if let Some(stderr) = stderr.filter(|s| !s.is_empty()) {
        let text = String::from_utf8_lossy(stderr);
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LINES)..];
        out += &format!("; last lines of stderr:\n{}", tail.join("\n"));
    }
    out
}
