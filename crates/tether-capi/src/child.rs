//! `tether_child`: a running script: call it, notify it, wait for it, stop
//! it; `tether_outcome`, how it ended.

use std::ffi::c_char;
use std::time::Duration;

use tether::{Error, Value};

use crate::error::{from_error, tether_result};
use crate::ffi::{boundary, bytes_arg, fail, free_boundary, obj_mut, ok, str_arg, write_out};
use crate::value::{parse_json, tether_value, Wire};

/// How a script ended.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tether_outcome {
    /// The exit code, or -1 when a signal ended the script.
    pub exit_code: i32,
    /// The signal that ended the script, or 0.
    pub signal: i32,
    /// How many calls the script made to the host.
    pub calls: u64,
}

/// A script started with `tether_host_spawn`. Opaque.
pub struct tether_child {
    pub(crate) child: Option<tether::Child>,
}

fn running<'a>(child: *mut tether_child) -> Result<&'a mut tether_child, tether_result> {
    // SAFETY: the caller passes a live child, used by one thread at a time.
    let c = unsafe { obj_mut(child, "child")? };
    if c.child.is_none() {
        return Err(fail(
            tether_result::Misuse,
            "the child was already waited for or shut down",
        ));
    }
    Ok(c)
}

fn outcome_of(o: &tether::Outcome) -> tether_outcome {
    tether_outcome {
        exit_code: o.code().unwrap_or(-1),
        signal: o.signal().unwrap_or(0),
        calls: o.calls(),
    }
}

fn finish(result: Result<tether::Outcome, Error>, out: *mut tether_outcome) -> tether_result {
    match result {
        Ok(o) => {
            if !out.is_null() {
                // SAFETY: non-NULL, and the caller promises it is writable.
                unsafe { out.write(outcome_of(&o)) };
            }
            ok()
        }
        Err(e) => from_error(&e),
    }
}

/// Calls the script's export `name` with `args_json` (`args_len` bytes of
/// UTF-8 JSON: an array for positional arguments, an object for arguments by
/// name), waiting at most `timeout_ms` milliseconds (0: no limit). On success
/// `*out` owns the result; free it with `tether_value_free`.
#[no_mangle]
pub extern "C" fn tether_child_call(
    child: *mut tether_child,
    name: *const c_char,
    args_json: *const c_char,
    args_len: usize,
    timeout_ms: u32,
    out: *mut *mut tether_value,
) -> tether_result {
    boundary(|| {
        let c = try_ffi!(running(child));
        // SAFETY: the caller passes a NUL-terminated name and `args_len`
        // readable bytes.
        let (name, args) = try_ffi!(unsafe { name_and_args(name, args_json, args_len) });
        if out.is_null() {
            return fail(tether_result::NullArgument, "out is NULL");
        }
        let peer = c.child.as_ref().expect("checked by running()").peer();
        let result = call_peer(&peer, name, args, timeout_ms);
        deliver(result, out)
    })
}

/// Calls export `name` of the script behind `peer`; `timeout_ms` 0 waits
/// without a limit.
pub(crate) fn call_peer(
    peer: &tether::Peer,
    name: &str,
    args: Value,
    timeout_ms: u32,
) -> Result<Value, Error> {
    if timeout_ms == 0 {
        peer.call(name, args)
    } else {
        peer.call_timeout(name, args, Duration::from_millis(u64::from(timeout_ms)))
    }
}

/// Writes what `f` reads of a running child to `*out`.
fn read_child<T>(
    child: *mut tether_child,
    out: *mut T,
    f: impl FnOnce(&tether::Child) -> T,
) -> tether_result {
    boundary(|| {
        let c = try_ffi!(running(child));
        let value = f(c.child.as_ref().expect("checked by running()"));
        // SAFETY: `out` is checked for NULL and written once.
        match unsafe { write_out(out, value, "out") } {
            Ok(()) => ok(),
            Err(code) => code,
        }
    })
}

/// Hands a call's result to C through `out` (checked non-NULL by the caller).
pub(crate) fn deliver(result: Result<Value, Error>, out: *mut *mut tether_value) -> tether_result {
    match result.and_then(|v| encode_result(&v)) {
        Ok(wire) => {
            let value = Box::new(tether_value { wire });
            // SAFETY: every caller checked `out` for NULL.
            unsafe { out.write(Box::into_raw(value)) };
            ok()
        }
        Err(e) => from_error(&e),
    }
}

/// As `tether_child_call`, with bytes: `args_json` may hold
/// `{"$bytes":[offset,length]}` values that point into `attachments`
/// (`attachments_len` bytes, copied), as `tether_call_args_json` gives them.
#[no_mangle]
pub extern "C" fn tether_child_call_wire(
    child: *mut tether_child,
    name: *const c_char,
    args_json: *const c_char,
    args_len: usize,
    attachments: *const u8,
    attachments_len: usize,
    timeout_ms: u32,
    out: *mut *mut tether_value,
) -> tether_result {
    boundary(|| {
        let c = try_ffi!(running(child));
        // SAFETY: the caller passes a NUL-terminated name and `args_len` bytes.
        let name = try_ffi!(unsafe { str_arg(name, "name") });
        // SAFETY: as above.
        let json = try_ffi!(unsafe { bytes_arg(args_json.cast(), args_len, "args_json") });
        // SAFETY: the caller passes `attachments_len` readable bytes.
        let area = try_ffi!(unsafe { bytes_arg(attachments, attachments_len, "attachments") });
        let area = tether::Bytes::copy_from_slice(area);
        let args = match tether::protocol::decode_value(json, &area) {
            Ok(v) => v,
            Err(m) => {
                return fail(
                    tether_result::InvalidArgument,
                    format!("not valid wire JSON: {m}"),
                )
            }
        };
        if out.is_null() {
            return fail(tether_result::NullArgument, "out is NULL");
        }
        let peer = c.child.as_ref().expect("checked by running()").peer();
        let result = call_peer(&peer, name, args, timeout_ms);
        deliver(result, out)
    })
}

/// Kills the script (SIGKILL, to its process group too) without waiting;
/// `tether_child_end` or `tether_child_wait` then says how it ended.
#[no_mangle]
pub extern "C" fn tether_child_kill(child: *mut tether_child) -> tether_result {
    boundary(|| {
        let c = try_ffi!(running(child));
        match c.child.as_ref().expect("checked by running()").kill() {
            Ok(()) => ok(),
            Err(e) => from_error(&e),
        }
    })
}

/// Writes whether the script has ended to `*out`.
#[no_mangle]
pub extern "C" fn tether_child_is_finished(
    child: *mut tether_child,
    out: *mut bool,
) -> tether_result {
    read_child(child, out, tether::Child::is_finished)
}

/// Waits for the script to end (`grace_ms` 0), or stops it as
/// `tether_child_shutdown` does (`grace_ms` > 0), and hands over the whole
/// report of how it ended: on success `*out` owns it; free it with
/// `tether_report_free`. The child cannot be used afterwards except by
/// `tether_child_free`.
#[no_mangle]
pub extern "C" fn tether_child_end(
    child: *mut tether_child,
    grace_ms: u32,
    out: *mut *mut crate::report::tether_report,
) -> tether_result {
    boundary(|| {
        let c = try_ffi!(running(child));
        if out.is_null() {
            return fail(tether_result::NullArgument, "out is NULL");
        }
        let child = c.child.take().expect("checked by running()");
        let result = if grace_ms == 0 {
            child.wait()
        } else {
            child.shutdown(Duration::from_millis(u64::from(grace_ms)))
        };
        match result {
            Ok(outcome) => {
                let report = Box::new(crate::report::tether_report::new(outcome));
                // SAFETY: checked non-NULL above.
                unsafe { out.write(Box::into_raw(report)) };
                ok()
            }
            Err(e) => from_error(&e),
        }
    })
}

/// Sends the script a notification: it runs export `name` with `args_json`
/// (as for `tether_child_call`) and answers nothing.
#[no_mangle]
pub extern "C" fn tether_child_notify(
    child: *mut tether_child,
    name: *const c_char,
    args_json: *const c_char,
    args_len: usize,
) -> tether_result {
    boundary(|| {
        let c = try_ffi!(running(child));
        // SAFETY: as for tether_child_call.
        let (name, args) = try_ffi!(unsafe { name_and_args(name, args_json, args_len) });
        match c
            .child
            .as_ref()
            .expect("checked by running()")
            .notify(name, args)
        {
            Ok(()) => ok(),
            Err(e) => from_error(&e),
        }
    })
}

/// The export's name and its JSON arguments.
///
/// # Safety
///
/// `name` is NULL or NUL-terminated; `args_json` is NULL or has `args_len`
/// readable bytes.
pub(crate) unsafe fn name_and_args<'a>(
    name: *const c_char,
    args_json: *const c_char,
    args_len: usize,
) -> Result<(&'a str, Value), tether_result> {
    // SAFETY: forwarded from the caller's promise.
    let name = unsafe { str_arg(name, "name")? };
    // SAFETY: forwarded from the caller's promise.
    let args = unsafe { bytes_arg(args_json.cast(), args_len, "args_json")? };
    Ok((name, parse_json(args)?))
}

/// Writes the script's process id to `*out`.
#[no_mangle]
pub extern "C" fn tether_child_pid(child: *mut tether_child, out: *mut u32) -> tether_result {
    read_child(child, out, tether::Child::id)
}

/// Waits for the script to end and writes how it ended to `*out` (which may
/// be NULL). The child cannot be used afterwards except by
/// `tether_child_free`.
#[no_mangle]
pub extern "C" fn tether_child_wait(
    child: *mut tether_child,
    out: *mut tether_outcome,
) -> tether_result {
    boundary(|| {
        let c = try_ffi!(running(child));
        let result = c.child.take().expect("checked by running()").wait();
        finish(result, out)
    })
}

/// Stops the script: asks it to stop, sends SIGTERM after half of
/// `grace_ms`, SIGKILL when `grace_ms` has run out; writes how it ended to
/// `*out` (which may be NULL). The child cannot be used afterwards except by
/// `tether_child_free`.
#[no_mangle]
pub extern "C" fn tether_child_shutdown(
    child: *mut tether_child,
    grace_ms: u32,
    out: *mut tether_outcome,
) -> tether_result {
    boundary(|| {
        let c = try_ffi!(running(child));
        let result = c
            .child
            .take()
            .expect("checked by running()")
            .shutdown(Duration::from_millis(u64::from(grace_ms)));
        finish(result, out)
    })
}

/// Frees a child, killing and reaping the script if it still runs. NULL is
/// ignored.
#[no_mangle]
pub extern "C" fn tether_child_free(child: *mut tether_child) {
    if !child.is_null() {
        free_boundary((), || {
            // SAFETY: the caller gives back a pointer from tether_host_spawn,
            // once.
            drop(unsafe { Box::from_raw(child) });
        });
    }
}

/// A result as C gets it; one that cannot be encoded is a value error (the
/// script is still there).
fn encode_result(value: &Value) -> Result<Wire, Error> {
    Wire::encode(value).map_err(|m| {
        Error::Value(tether::ValueError::new(format!(
            "the result cannot be handed over: {m}"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_that_cannot_be_encoded_is_a_value_error_not_closed() {
        let nan = Value::Float(f64::NAN);
        let err = encode_result(&nan).err().expect("NaN cannot be encoded");
        assert!(matches!(err, Error::Value(_)), "{err}");
        assert_eq!(from_error(&err), tether_result::Value);
    }
}
