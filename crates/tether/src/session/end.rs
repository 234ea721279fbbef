//! How a run ends: the script is reaped (its process group killed first),
//! its output collected, the host's pending calls failed, and the outcome
//! reported once, by whichever reader saw the end.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::read::{io_error, End, ReadSide};
use super::Core;
use crate::error::Error;
use crate::outcome::{report, Outcome};
use crate::sync::lock;

/// How long to wait for capture threads after the script exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// How long a script that must be stopped may take to finish dying on its
/// own first.
const DYING_GRACE: Duration = Duration::from_millis(20);

impl Core {
    /// Records how serving ended and sends the outcome, once.
    pub(super) fn finish(&self, rs: &mut ReadSide, end: End) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        self.tasks.abort_all();
        let result = self.outcome(rs, end);
        if let Some(tx) = lock(&self.ended_signal).take() {
            tx.send(());
        }
        if let Some(tx) = lock(&self.done).take() {
            tx.send(result);
        }
        self.finished.store(true, Ordering::Release);
    }

    /// Turns how serving ended into the run's result, reaping the script.
    fn outcome(&self, rs: &mut ReadSide, end: End) -> Result<Outcome, Error> {
        let grace = self.config.exit_grace;
        let result = match end {
            End::Ended => {
                // A clean end (docs/protocol.md §7.2): the script closed its
                // end of the channel, or exited. The script reads end of file
                // too, the host's calls it will never answer fail now, and its
                // exit is awaited as for a script that never used the channel:
                // without a time limit but its deadline.
                self.link.close_writer();
                let pid = self.link.pid;
                self.link.close(
                    format!("script {pid} closed its end of the channel"),
                    format!(
                        "script {pid} closed its end of the channel without ever becoming \
                         ready: it never entered tether.serve() (or called tether.ready())"
                    ),
                );
                let deadline = rs.reader.deadline();
                let left = deadline.map_or(Duration::MAX, |(at, _)| {
                    at.saturating_duration_since(std::time::Instant::now())
                });
                match rs.proc.wait_timeout(left) {
                    Ok(Some(status)) => {
                        let (stdout, stderr) = rs.proc.take_output(OUTPUT_GRACE);
                        let limit = rs.proc.limit(stderr.as_deref());
                        if let Some(limit) = &limit {
                            tracing::warn!(
                                pid = rs.proc.id(),
                                "the script reached its sandbox's {limit}"
                            );
                        }
                        Ok(Outcome {
                            status,
                            stdout,
                            stderr,
                            stats: self.link.stats(),
                            in_flight: self.running_names(),
                            killed_by: rs.proc.killed_by(),
                            limit,
                        })
                    }
                    Ok(None) => {
                        let d = deadline.map_or(Duration::ZERO, |(_, d)| d);
                        let what = format!(
                            "the script ran past its deadline of {d:?} (it had closed its channel)"
                        );
                        tracing::warn!(target: "tether::limits", pid, "{what}");
                        let _ = rs.proc.kill(&what);
                        let (_, stderr) = rs.proc.take_output(OUTPUT_GRACE);
                        Err(Error::limit(
                            crate::error::Limit::Deadline,
                            what + &report(&self.running_names(), stderr.as_deref()),
                        ))
                    }
                    Err(e) => Err(io_error("waiting for the script", e)),
                }
            }
            End::Fatal(err) => {
                if let Error::VersionMismatch { .. } = err {
                    // The client learns of the mismatch from our reply; give
                    // it the grace period to say so before it is killed.
                    self.link.close_writer();
                    let _ = rs.proc.wait_timeout(grace);
                }
                let why = match &err {
                    Error::Protocol { .. } => "it broke the protocol".to_owned(),
                    Error::Limit { detail, .. } => format!("a limit ran out ({detail})"),
                    other => format!("the run was stopped: {other}"),
                };
                // A script that broke the protocol by dying (a frame cut short)
                // may still be on its way out: let it end by its own hand, so
                // its status says how it ended rather than that we killed it.
                let _ = rs.proc.wait_timeout(DYING_GRACE);
                let status = rs.proc.kill(&why).ok();
                let killed_by = rs.proc.killed_by();
                let (_, stderr) = rs.proc.take_output(OUTPUT_GRACE);
                let report = report(&self.running_names(), stderr.as_deref());
                Err(match err {
                    Error::Protocol { detail, .. } => Error::Protocol {
                        detail: detail + &report,
                        status,
                        killed_by,
                    },
                    Error::Limit { limit, detail } => Error::Limit {
                        limit,
                        detail: detail + &report,
                    },
                    other => other,
                })
            }
        };
        self.link.close_writer();
        let pid = self.link.pid;
        let (why, never_ready) = match &result {
            Ok(outcome) => (
                format!("script {pid} ended ({})", outcome.status),
                format!(
                    "script {pid} ended ({}) without ever becoming ready: it never entered \
                     tether.serve() (or called tether.ready())",
                    outcome.status
                ),
            ),
            Err(e) => (
                format!("script {pid} was stopped: {e}"),
                format!("script {pid} was stopped before it became ready: {e}"),
            ),
        };
        self.link.close(why, never_ready);
        // Any reaped-but-unreported status is already in `result`; make sure
        // the process is gone in every case before reporting.
        let _ = rs.proc.kill("the run ended");
        match &result {
            Ok(o) => {
                tracing::debug!(status = %o.status, calls = o.stats.calls_from_script, "script ended")
            }
            Err(e) => tracing::debug!(error = %e, "script stopped"),
        }
        result
    }
}
