//! `tether_child`: a running script: call it, notify it, wait for it, stop
//! it; `tether_outcome`, how it ended.

use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tether::{Error, Value};

use crate::call::parse_json;
use crate::error::{from_error, tether_result};
use crate::ffi::{boundary, bytes_arg, fail, free_boundary, obj_mut, ok, str_arg, write_out};
use crate::value::{tether_value, Wire};

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
    pub(crate) busy: Arc<AtomicBool>,
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

fn finish(
    c: &mut tether_child,
    result: Result<tether::Outcome, Error>,
    out: *mut tether_outcome,
) -> tether_result {
    c.busy.store(false, Ordering::Release);
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
        let child = c.child.as_ref().expect("checked by running()");
        let result: Result<Value, Error> = if timeout_ms == 0 {
            child.call(name, args)
        } else {
            child.call_timeout(name, args, Duration::from_millis(u64::from(timeout_ms)))
        };
        match result.and_then(|v| encode_result(&v)) {
            Ok(wire) => {
                let value = Box::new(tether_value { wire });
                // SAFETY: checked non-NULL above.
                unsafe { out.write(Box::into_raw(value)) };
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
unsafe fn name_and_args<'a>(
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
    boundary(|| {
        let c = try_ffi!(running(child));
        let pid = c.child.as_ref().expect("checked by running()").id();
        // SAFETY: `out` is checked for NULL and written once.
        match unsafe { write_out(out, pid, "out") } {
            Ok(()) => ok(),
            Err(code) => code,
        }
    })
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
        finish(c, result, out)
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
        finish(c, result, out)
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
            let c = unsafe { Box::from_raw(child) };
            drop(c.child);
            c.busy.store(false, Ordering::Release);
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
