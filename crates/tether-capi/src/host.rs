//! `tether_host`: the functions scripts may call and the settings they run
//! with; spawning and running scripts.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tether::{Host, Value};

use crate::call::{tether_call, tether_function, tether_reply, tether_string_function, UserData};
use crate::child::{tether_child, tether_child_free, tether_child_wait, tether_outcome};
use crate::error::{from_error, tether_result};
use crate::ffi::{boundary, fail, free_boundary, obj, obj_mut, ok, str_arg, write_out};
use crate::script::tether_script;

/// A set of functions for scripts, and how to run them. Opaque.
pub struct tether_host {
    host: Host,
    /// A script spawned from this host is still running.
    busy: Arc<AtomicBool>,
}

/// Creates a host with no functions, speaking the native protocol. On
/// success `*out` owns the host; free it with `tether_host_free`.
#[no_mangle]
pub extern "C" fn tether_host_new(out: *mut *mut tether_host) -> tether_result {
    boundary(|| {
        let host = Box::new(tether_host {
            host: Host::new(),
            busy: Arc::new(AtomicBool::new(false)),
        });
        // SAFETY: `out` is checked for NULL and written once.
        match unsafe { write_out(out, Box::into_raw(host), "out") } {
            Ok(()) => ok(),
            Err(code) => code,
        }
    })
}

/// Frees a host. NULL is ignored. Scripts spawned from it keep running until
/// their `tether_child` is waited for or freed.
#[no_mangle]
pub extern "C" fn tether_host_free(host: *mut tether_host) {
    if !host.is_null() {
        free_boundary((), || {
            // SAFETY: the caller gives back a pointer from tether_host_new,
            // once.
            drop(unsafe { Box::from_raw(host) });
        });
    }
}

/// Changes a host's configuration unless one of its scripts is running.
fn configure(
    host: *mut tether_host,
    change: impl FnOnce(Host) -> Result<Host, tether_result>,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes a live host, used by one thread at a time.
        let h = try_ffi!(unsafe { obj_mut(host, "host") });
        if h.busy.load(Ordering::Acquire) {
            return fail(
                tether_result::Misuse,
                "the host cannot change while a script it spawned is running",
            );
        }
        match change(std::mem::take(&mut h.host)) {
            Ok(new) => {
                h.host = new;
                ok()
            }
            Err(code) => code,
        }
    })
}

/// Runs `path` as the interpreter instead of `python3` (or `TETHER_PYTHON`).
/// `path` is copied.
#[no_mangle]
pub extern "C" fn tether_host_set_python(
    host: *mut tether_host,
    path: *const c_char,
) -> tether_result {
    // SAFETY: the caller passes NULL or a NUL-terminated string.
    let path = try_ffi!(unsafe { str_arg(path, "path") }).to_owned();
    configure(host, |h| Ok(h.python(path)))
}

/// Speaks the seed's classic protocol (`classic` true) or the native one.
#[no_mangle]
pub extern "C" fn tether_host_set_classic(host: *mut tether_host, classic: bool) -> tether_result {
    configure(host, |h| Ok(if classic { h.classic() } else { h }))
}

/// Runs the script's calls one at a time, in arrival order (callbacks then
/// never run concurrently for one script).
#[no_mangle]
pub extern "C" fn tether_host_set_serial(host: *mut tether_host) -> tether_result {
    configure(host, |h| Ok(h.serial()))
}

/// Registers `callback` as host function `name` (copied). It receives all
/// positional arguments; `user_data` is handed back to it unchanged and must
/// stay valid while the host or any script spawned from it exists.
#[no_mangle]
pub extern "C" fn tether_host_add_function(
    host: *mut tether_host,
    name: *const c_char,
    callback: tether_function,
    user_data: *mut c_void,
) -> tether_result {
    // SAFETY: the caller passes NULL or a NUL-terminated string.
    let name = try_ffi!(unsafe { str_arg(name, "name") }).to_owned();
    let Some(callback) = callback else {
        return fail(tether_result::NullArgument, "callback is NULL");
    };
    let user_data = UserData(user_data);
    configure(host, move |h| {
        Ok(h.dynamic_function(&name, move |args| {
            let user_data = user_data;
            let call = tether_call::new(args)?;
            let mut reply = tether_reply { answer: None };
            // SAFETY: the callback is the caller's, called with the pointer
            // it registered and objects that live until it returns.
            unsafe { callback(user_data.0, &call, &mut reply) };
            reply.answer.unwrap_or(Ok(Value::Null))
        }))
    })
}

/// Registers `callback` as host function `name` taking one string argument
/// (in classic mode: the request's argument). Otherwise as
/// `tether_host_add_function`.
#[no_mangle]
pub extern "C" fn tether_host_add_string_function(
    host: *mut tether_host,
    name: *const c_char,
    callback: tether_string_function,
    user_data: *mut c_void,
) -> tether_result {
    // SAFETY: the caller passes NULL or a NUL-terminated string.
    let name = try_ffi!(unsafe { str_arg(name, "name") }).to_owned();
    let Some(callback) = callback else {
        return fail(tether_result::NullArgument, "callback is NULL");
    };
    let user_data = UserData(user_data);
    configure(host, move |h| {
        Ok(h.try_function(&format!("{name}(arg)"), move |arg: String| {
            let user_data = user_data;
            let mut text = arg.into_bytes();
            let len = text.len();
            text.push(0);
            let mut reply = tether_reply { answer: None };
            // SAFETY: the callback is the caller's; `text` is NUL-terminated
            // and outlives the call.
            unsafe { callback(user_data.0, text.as_ptr().cast(), len, &mut reply) };
            reply.answer.unwrap_or(Ok(Value::Null))
        }))
    })
}

/// Runs `script` to its end, serving its calls, and writes how it ended to
/// `*out`. A script that exits with an error code or dies of a signal is
/// `TETHER_RESULT_OK` with that outcome; errors are for what went wrong
/// around it.
#[no_mangle]
pub extern "C" fn tether_host_run(
    host: *const tether_host,
    script: *const tether_script,
    out: *mut tether_outcome,
) -> tether_result {
    boundary(|| {
        let mut child = std::ptr::null_mut();
        let started = tether_host_spawn(host, script, &mut child);
        if started != tether_result::Ok {
            return started;
        }
        let waited = tether_child_wait(child, out);
        tether_child_free(child);
        waited
    })
}

/// Starts `script` and serves it on threads of its own. On success `*out`
/// owns the child; free it with `tether_child_free` (which kills the script
/// if it still runs). Fails with `TETHER_RESULT_MISUSE` while another script
/// of this host runs.
#[no_mangle]
pub extern "C" fn tether_host_spawn(
    host: *const tether_host,
    script: *const tether_script,
    out: *mut *mut tether_child,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes live objects from this library.
        let (h, s) = match unsafe { (obj(host, "host"), obj(script, "script")) } {
            (Ok(h), Ok(s)) => (h, s),
            (Err(code), _) | (_, Err(code)) => return code,
        };
        if out.is_null() {
            return fail(tether_result::NullArgument, "out is NULL");
        }
        if h.busy.swap(true, Ordering::AcqRel) {
            return fail(
                tether_result::Misuse,
                "the host already runs a script; wait for it or free its tether_child first",
            );
        }
        match h.host.spawn(s.script.clone()) {
            Ok(child) => {
                let child = Box::new(tether_child {
                    child: Some(child),
                    busy: Arc::clone(&h.busy),
                });
                // SAFETY: checked non-NULL above.
                unsafe { out.write(Box::into_raw(child)) };
                ok()
            }
            Err(e) => {
                h.busy.store(false, Ordering::Release);
                from_error(&e)
            }
        }
    })
}
