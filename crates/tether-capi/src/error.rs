//! Result codes, the thread's last error message, and how a tether
//! [`Error`] becomes a code.

use std::cell::RefCell;
use std::ffi::c_char;

use tether::Error;

/// What a call returned.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument was not acceptable (not UTF-8, not JSON, wrong type).
    InvalidArgument = 2,
    /// The call does not fit the object's state (a host that already runs a
    /// script, a child that was already waited for or shut down).
    Misuse = 3,
    /// The interpreter or the script could not be started.
    Spawn = 4,
    /// The script broke the protocol and was stopped.
    Protocol = 5,
    /// The script's export raised, or does not exist.
    Remote = 6,
    /// A call into the script did not answer in time.
    Timeout = 7,
    /// The script has ended.
    Closed = 8,
    /// An operating-system call failed on the host's side.
    Io = 9,
    /// The host was configured in a way that cannot work.
    Config = 10,
    /// The script's client speaks another protocol version.
    VersionMismatch = 11,
    /// A value could not be converted.
    Value = 12,
    /// tether panicked (a bug); the object involved should not be used again.
    Panic = 13,
    /// A limit set on the host ran out (deadline, idle timeout, calls in
    /// flight, nesting depth); the message says which.
    Limit = 14,
    /// The script exited with an error code or was killed by a signal.
    ScriptFailed = 15,
    /// A sandbox could not be applied: the kernel lacks a part of the
    /// policy (the message names it), or preparing it failed.
    Sandbox = 16,
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `message` as this thread's last error and returns `code`.
pub(crate) fn fail(code: tether_result, message: impl Into<String>) -> tether_result {
    let message = message.into();
    LAST_ERROR.with(|e| *e.borrow_mut() = message);
    code
}

/// Clears the last error (a call succeeded).
pub(crate) fn ok() -> tether_result {
    LAST_ERROR.with(|e| e.borrow_mut().clear());
    tether_result::Ok
}

/// Copies the last error into `buf` (NUL-terminated, truncated to `len`) and
/// returns its full length.
///
/// It cannot panic (no allocation, no borrow that can fail, no thread-local
/// access after the thread's end), so it needs no panic boundary.
fn last_error(buf: *mut c_char, len: usize) -> usize {
    let copied = LAST_ERROR.try_with(|e| {
        let Ok(message) = e.try_borrow() else {
            return 0;
        };
        if !buf.is_null() && len > 0 {
            let n = message.len().min(len - 1);
            // SAFETY: the caller promises `buf` has room for `len` bytes, and
            // `n + 1 <= len`.
            unsafe {
                std::ptr::copy_nonoverlapping(message.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        message.len()
    });
    copied.unwrap_or(0)
}

/// Copies the message of the last failed call on this thread into `buf`
/// (NUL-terminated, truncated to `len` bytes) and returns the message's full
/// length, so a too-small buffer can be retried. `buf` may be NULL to ask for
/// the length. Returns 0 when the last call succeeded.
#[no_mangle]
pub extern "C" fn tether_last_error(buf: *mut c_char, len: usize) -> usize {
    last_error(buf, len)
}

/// The name of a result code, as a static NUL-terminated string (never freed).
#[no_mangle]
pub extern "C" fn tether_result_name(result: tether_result) -> *const c_char {
    let name: &'static [u8] = match result {
        tether_result::Ok => b"TETHER_RESULT_OK\0",
        tether_result::NullArgument => b"TETHER_RESULT_NULL_ARGUMENT\0",
        tether_result::InvalidArgument => b"TETHER_RESULT_INVALID_ARGUMENT\0",
        tether_result::Misuse => b"TETHER_RESULT_MISUSE\0",
        tether_result::Spawn => b"TETHER_RESULT_SPAWN\0",
        tether_result::Protocol => b"TETHER_RESULT_PROTOCOL\0",
        tether_result::Remote => b"TETHER_RESULT_REMOTE\0",
        tether_result::Timeout => b"TETHER_RESULT_TIMEOUT\0",
        tether_result::Closed => b"TETHER_RESULT_CLOSED\0",
        tether_result::Io => b"TETHER_RESULT_IO\0",
        tether_result::Config => b"TETHER_RESULT_CONFIG\0",
        tether_result::VersionMismatch => b"TETHER_RESULT_VERSION_MISMATCH\0",
        tether_result::Value => b"TETHER_RESULT_VALUE\0",
        tether_result::Panic => b"TETHER_RESULT_PANIC\0",
        tether_result::Limit => b"TETHER_RESULT_LIMIT\0",
        tether_result::ScriptFailed => b"TETHER_RESULT_SCRIPT_FAILED\0",
        tether_result::Sandbox => b"TETHER_RESULT_SANDBOX\0",
    };
    name.as_ptr().cast()
}

/// Records `e`'s message and returns its code.
pub(crate) fn from_error(e: &Error) -> tether_result {
    fail(code_of(e), e.to_string())
}

/// The result code for an error of tether's.
fn code_of(e: &Error) -> tether_result {
    match e {
        Error::Spawn { .. } => tether_result::Spawn,
        Error::Config(_) => tether_result::Config,
        Error::Io { .. } => tether_result::Io,
        Error::Protocol { .. } => tether_result::Protocol,
        Error::Remote(_) => tether_result::Remote,
        // A wait for readiness that ran out is a time limit to a C caller.
        Error::Timeout { .. } | Error::NotReady { .. } => tether_result::Timeout,
        Error::Closed { .. } => tether_result::Closed,
        Error::Value(_) => tether_result::Value,
        Error::VersionMismatch { .. } => tether_result::VersionMismatch,
        Error::Limit { .. } => tether_result::Limit,
        Error::ScriptFailed { .. } => tether_result::ScriptFailed,
        Error::Sandbox(_) => tether_result::Sandbox,
        // An error kind added later: the message still says what happened.
        _ => tether_result::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_kind_has_its_own_code() {
        let status = std::os::unix::process::ExitStatusExt::from_raw(256);
        let cases = [
            (
                Error::Limit {
                    limit: tether::Limit::Deadline,
                    detail: "deadline".into(),
                },
                tether_result::Limit,
            ),
            (
                Error::ScriptFailed {
                    status,
                    killed_by: None,
                    report: String::new(),
                },
                tether_result::ScriptFailed,
            ),
            (
                Error::Closed {
                    reason: tether::Closed::ScriptEnded,
                    detail: "gone".into(),
                },
                tether_result::Closed,
            ),
            (
                Error::Value(tether::ValueError::new("NaN")),
                tether_result::Value,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(code_of(&error), code, "{error}");
        }
    }
}
