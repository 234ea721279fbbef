//! `tether_report`: the whole of how a script ended, as `Outcome` has it.

use std::ffi::{c_char, CString};

use crate::error::tether_result;
use crate::ffi::{free_boundary, with, write_parts};

/// How a script ended, in full (from `tether_child_end`). Opaque.
pub struct tether_report {
    outcome: tether::Outcome,
    in_flight: CString,
    check: CString,
    killed_by: Option<CString>,
    limit: Option<CString>,
}

/// The report behind a pointer from C.
fn get<'a>(report: *const tether_report) -> Option<&'a tether_report> {
    // SAFETY: every C caller passes a live report from tether_child_end, or NULL.
    unsafe { report.as_ref() }
}

impl tether_report {
    pub(crate) fn new(outcome: tether::Outcome) -> tether_report {
        let in_flight =
            serde_json::to_string(outcome.calls_in_flight()).unwrap_or_else(|_| "[]".into());
        // `check` takes the outcome: only a failed run needs the copy.
        let check = if outcome.success() {
            String::new()
        } else {
            outcome
                .clone()
                .check()
                .err()
                .map_or_else(String::new, |e| e.to_string())
        };
        tether_report {
            in_flight: crate::ffi::c_string(&in_flight),
            check: crate::ffi::c_string(&check),
            killed_by: outcome.killed_by_host().map(crate::ffi::c_string),
            limit: outcome.limit().map(crate::ffi::c_string),
            outcome,
        }
    }
}

/// The exit code, or -1 when a signal ended the script.
#[no_mangle]
pub extern "C" fn tether_report_exit_code(report: *const tether_report) -> i32 {
    free_boundary(-1, || {
        get(report).map_or(-1, |r| r.outcome.code().unwrap_or(-1))
    })
}

/// The signal that ended the script, or 0.
#[no_mangle]
pub extern "C" fn tether_report_signal(report: *const tether_report) -> i32 {
    free_boundary(0, || {
        get(report).map_or(0, |r| r.outcome.signal().unwrap_or(0))
    })
}

/// How many calls the script made to the host.
#[no_mangle]
pub extern "C" fn tether_report_calls(report: *const tether_report) -> u64 {
    free_boundary(0, || get(report).map_or(0, |r| r.outcome.calls()))
}

fn stream(
    report: *const tether_report,
    data: *mut *const u8,
    len: *mut usize,
    pick: fn(&tether::Outcome) -> Option<&[u8]>,
) -> tether_result {
    with(report, "report", |r| {
        match pick(&r.outcome) {
        // SAFETY: output pointers are checked for NULL by write_parts.
        Some(bytes) => unsafe { write_parts(data, len, bytes.as_ptr(), bytes.len()) },
        None => Err(crate::error::fail(
            tether_result::Misuse,
            "that stream was not captured (tether_script_set_stdout / _stderr with TETHER_STDIO_CAPTURE)",
        )),
    }
    })
}

/// What the script wrote to stdout, when it was captured: `*data` points to
/// `*len` bytes, valid until `tether_report_free`.
#[no_mangle]
pub extern "C" fn tether_report_stdout(
    report: *const tether_report,
    data: *mut *const u8,
    len: *mut usize,
) -> tether_result {
    stream(report, data, len, tether::Outcome::stdout)
}

/// What the script wrote to stderr, when it was captured.
#[no_mangle]
pub extern "C" fn tether_report_stderr(
    report: *const tether_report,
    data: *mut *const u8,
    len: *mut usize,
) -> tether_result {
    stream(report, data, len, tether::Outcome::stderr)
}

fn text(ptr: Option<&CString>) -> *const c_char {
    ptr.map_or(std::ptr::null(), |s| s.as_ptr())
}

/// The names of the script's calls still running on the host when it ended,
/// as a NUL-terminated JSON array, valid until `tether_report_free`.
#[no_mangle]
pub extern "C" fn tether_report_calls_in_flight(report: *const tether_report) -> *const c_char {
    free_boundary(std::ptr::null(), || text(get(report).map(|r| &r.in_flight)))
}

/// What `Outcome::check` says of the run: an empty string when the script
/// exited with code 0, else how it ended, the limit it reached, the calls in
/// flight and its last lines of stderr. Valid until `tether_report_free`.
#[no_mangle]
pub extern "C" fn tether_report_check(report: *const tether_report) -> *const c_char {
    free_boundary(std::ptr::null(), || text(get(report).map(|r| &r.check)))
}

/// Why tether itself signalled the script, or NULL when it did not.
#[no_mangle]
pub extern "C" fn tether_report_killed_by(report: *const tether_report) -> *const c_char {
    free_boundary(std::ptr::null(), || {
        text(get(report).and_then(|r| r.killed_by.as_ref()))
    })
}

/// The sandbox limit that ended the script ("CPU time limit of 3 s"), or NULL.
#[no_mangle]
pub extern "C" fn tether_report_limit(report: *const tether_report) -> *const c_char {
    free_boundary(std::ptr::null(), || {
        text(get(report).and_then(|r| r.limit.as_ref()))
    })
}

/// Frees a report. NULL is ignored.
#[no_mangle]
pub extern "C" fn tether_report_free(report: *mut tether_report) {
    if !report.is_null() {
        free_boundary((), || {
            // SAFETY: the caller gives back a pointer from tether_child_end, once.
            drop(unsafe { Box::from_raw(report) });
        });
    }
}
