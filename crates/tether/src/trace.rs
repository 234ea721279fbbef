//! The `tracing` span of one call, in either direction.
//!
//! Every call is an INFO span named `tether.call` (target `tether::call`,
//! the level `#[tracing::instrument]` uses), with the fields
//!
//! - `direction`: `"to_script"` (the host calls an export) or `"to_host"`
//!   (the script calls a host function),
//! - `method`, `pid` and `script` (the script's file name),
//! - `outcome`, recorded when the call ends: `"ok"`, `"error"`,
//!   `"timeout"`, `"gone"` (the script ended first) or `"cancelled"` (an
//!   async call whose future was dropped), with `error` the
//!   message of a failure,
//! - `micros`, recorded when the call ends: how long it took.
//!
//! A host function runs inside its span, so what it logs, and the calls it
//! makes back into the script, are children of it. The script's forwarded
//! log records appear inside the span of the host's call they happened in.

use std::time::Instant;

use tracing::field::Empty;
use tracing::Span;

/// Which way a call goes.
#[derive(Clone, Copy)]
pub(crate) enum Direction {
    /// The host calls one of the script's exports.
    ToScript,
    /// The script calls one of the host's functions.
    ToHost,
}

/// How a call ended, for its span.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Ended {
    Ok,
    Error,
    Timeout,
    Gone,
    /// The caller dropped the call's future before the answer came.
    Cancelled,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::Ok => "ok",
            Ended::Error => "error",
            Ended::Timeout => "timeout",
            Ended::Gone => "gone",
            Ended::Cancelled => "cancelled",
        }
    }
}

/// The span of one call, started now.
pub(crate) struct CallSpan {
    pub span: Span,
    started: Instant,
}

impl CallSpan {
    pub fn new(direction: Direction, method: &str, pid: u32, script: &str) -> CallSpan {
        let direction = match direction {
            Direction::ToScript => "to_script",
            Direction::ToHost => "to_host",
        };
        let span = tracing::info_span!(
            target: "tether::call",
            "tether.call",
            direction,
            method,
            pid,
            script,
            outcome = Empty,
            error = Empty,
            micros = Empty,
        );
        CallSpan {
            span,
            started: Instant::now(),
        }
    }

    /// Records how the call ended and how long it took.
    pub fn finish(&self, ended: Ended, error: Option<&str>) {
        if self.span.is_disabled() {
            return;
        }
        let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.span.record("outcome", ended.as_str());
        if let Some(error) = error {
            self.span.record("error", error);
        }
        self.span.record("micros", micros);
    }
}
