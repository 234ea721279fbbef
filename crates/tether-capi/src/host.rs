//! `tether_host`: the functions scripts may call and the settings they run
//! with; spawning and running scripts.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether::{Host, Value};

use crate::call::{
    tether_call, tether_free_function, tether_function, tether_reply, tether_string_function,
    UserData,
};
use crate::child::{tether_child, tether_child_free, tether_child_wait, tether_outcome};
use crate::error::{from_error, tether_result};
use crate::ffi::{boundary, fail, free_boundary, obj, ok, str_arg, write_out};
use crate::script::tether_script;

/// A set of functions for scripts, and how to run them. Opaque. One host
/// serves any number of scripts at once, from any threads; a change of its
/// settings or functions applies to the scripts spawned after it.
pub struct tether_host {
    host: Mutex<Host>,
}

impl tether_host {
    /// The host as it is now (a cheap clone: settings and functions are shared).
    pub(crate) fn current(&self) -> Host {
        self.host.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Creates a host with no functions, speaking the native protocol. On
/// success `*out` owns the host; free it with `tether_host_free`.
#[no_mangle]
pub extern "C" fn tether_host_new(out: *mut *mut tether_host) -> tether_result {
    boundary(|| {
        let host = Box::new(tether_host {
            host: Mutex::new(Host::new()),
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

/// Changes a host's settings or functions; scripts already running keep
/// what they started with.
pub(crate) fn configure(
    host: *mut tether_host,
    change: impl FnOnce(Host) -> Result<Host, tether_result>,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes a live host (shared between threads
        // behind its lock).
        let h = try_ffi!(unsafe { obj(host.cast_const(), "host") });
        let mut guard = h.host.lock().unwrap_or_else(|e| e.into_inner());
        // A clone (the settings and functions are shared until changed): a
        // change that fails leaves the host as it was.
        match change(guard.clone()) {
            Ok(new) => {
                // A mistake in a registration is reported now, not when a
                // script starts; the host keeps its earlier functions.
                if let Err(e) = new.check() {
                    if guard.check().is_ok() {
                        return from_error(&e);
                    }
                }
                *guard = new;
                ok()
            }
            Err(code) => code,
        }
    })
}

fn millis(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}

/// How long a reader may spin on an empty pipe before it sleeps, in
/// microseconds (0 switches spinning off; see `Host::spin`).
#[no_mangle]
pub extern "C" fn tether_host_set_spin_us(host: *mut tether_host, micros: u32) -> tether_result {
    configure(host, |h| {
        Ok(h.spin(Duration::from_micros(u64::from(micros))))
    })
}

/// Passes values of at least `threshold` bytes in shared memory instead of
/// through the pipe (see `Host::shared_memory`).
#[no_mangle]
pub extern "C" fn tether_host_set_shared_memory(
    host: *mut tether_host,
    threshold: usize,
) -> tether_result {
    configure(host, |h| Ok(h.shared_memory(threshold)))
}

/// The largest frame either side may send, in bytes.
#[no_mangle]
pub extern "C" fn tether_host_set_max_frame_size(
    host: *mut tether_host,
    bytes: u32,
) -> tether_result {
    configure(host, |h| Ok(h.max_frame_size(bytes)))
}

/// How many of a script's calls may run on the host at once (more are
/// refused with an error the script sees).
#[no_mangle]
pub extern "C" fn tether_host_set_max_in_flight(
    host: *mut tether_host,
    calls: usize,
) -> tether_result {
    configure(host, |h| Ok(h.max_in_flight(calls)))
}

/// How deep calls may nest (script -> host -> script ...).
#[no_mangle]
pub extern "C" fn tether_host_set_max_depth(host: *mut tether_host, depth: usize) -> tether_result {
    configure(host, |h| Ok(h.max_depth(depth)))
}

/// Stops a script that runs longer than `ms` milliseconds in all.
#[no_mangle]
pub extern "C" fn tether_host_set_deadline_ms(host: *mut tether_host, ms: u32) -> tether_result {
    configure(host, |h| Ok(h.deadline(millis(ms))))
}

/// Stops a script that sends nothing for `ms` milliseconds.
#[no_mangle]
pub extern "C" fn tether_host_set_idle_timeout_ms(
    host: *mut tether_host,
    ms: u32,
) -> tether_result {
    configure(host, |h| Ok(h.idle_timeout(millis(ms))))
}

/// How long a call waits for the script to become ready.
#[no_mangle]
pub extern "C" fn tether_host_set_ready_timeout_ms(
    host: *mut tether_host,
    ms: u32,
) -> tether_result {
    configure(host, |h| Ok(h.ready_timeout(millis(ms))))
}

/// How long a script the host stops on its own (a refused handshake, a
/// runtime shut down) may take to exit before it is killed (default 5 s).
#[no_mangle]
pub extern "C" fn tether_host_set_exit_grace_ms(host: *mut tether_host, ms: u32) -> tether_result {
    configure(host, |h| Ok(h.exit_grace(millis(ms))))
}

/// How much of each captured stream is kept (the last `bytes`).
#[no_mangle]
pub extern "C" fn tether_host_set_capture_limit(
    host: *mut tether_host,
    bytes: usize,
) -> tether_result {
    configure(host, |h| Ok(h.capture_limit(bytes)))
}

/// How many threads run the scripts' calls that block (shared by the host's
/// scripts).
#[no_mangle]
pub extern "C" fn tether_host_set_workers(host: *mut tether_host, workers: usize) -> tether_result {
    configure(host, |h| Ok(h.workers(workers)))
}

/// Runs each script in a process group of its own, killed with it (`true`,
/// the default), or in the host's.
#[no_mangle]
pub extern "C" fn tether_host_set_process_group(
    host: *mut tether_host,
    own: bool,
) -> tether_result {
    configure(host, |h| Ok(h.process_group(own)))
}

/// A log-record callback: `level` is Python's (10 DEBUG ... 50 CRITICAL),
/// `logger` and `message` NUL-terminated UTF-8, valid during the call. It
/// runs on the thread that reads the script; keep it short. It must not
/// unwind.
pub type tether_log_function = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        pid: u32,
        level: i64,
        logger: *const c_char,
        message: *const c_char,
    ),
>;

/// Forwards the scripts' `logging` records and warnings to `callback` (and
/// to `tracing`); NULL forwards them to `tracing` only. `free`, when not
/// NULL, is called once with `user_data` when nothing can call `callback`
/// any more.
#[no_mangle]
pub extern "C" fn tether_host_set_forward_logs(
    host: *mut tether_host,
    callback: tether_log_function,
    user_data: *mut c_void,
    free: tether_free_function,
) -> tether_result {
    let data = Arc::new(UserData::owned(user_data, free));
    configure(host, move |h| {
        let Some(callback) = callback else {
            return Ok(h.forward_logs());
        };
        Ok(h.on_script_log(move |record| {
            let data = &data;
            let logger = crate::ffi::c_string(record.logger);
            let message = crate::ffi::c_string(record.message);
            // SAFETY: the callback is the caller's, called with its pointer
            // and NUL-terminated strings that outlive the call.
            unsafe {
                callback(
                    data.ptr(),
                    record.pid,
                    record.level,
                    logger.as_ptr(),
                    message.as_ptr(),
                )
            };
        }))
    })
}

/// Describes the function registered last (for `help()` in the script and
/// the stubs). `text` is copied.
#[no_mangle]
pub extern "C" fn tether_host_set_doc(
    host: *mut tether_host,
    text: *const c_char,
) -> tether_result {
    // SAFETY: the caller passes NULL or a NUL-terminated string.
    let text = try_ffi!(unsafe { str_arg(text, "text") }).to_owned();
    configure(host, move |h| Ok(h.doc(&text)))
}

/// Runs every script in `sandbox`'s policy (a script's own takes its place).
#[no_mangle]
pub extern "C" fn tether_host_set_sandbox(
    host: *mut tether_host,
    sandbox: *const crate::sandbox::tether_sandbox,
) -> tether_result {
    // SAFETY: the caller passes a live sandbox.
    let policy = try_ffi!(unsafe { obj(sandbox, "sandbox") }).policy.clone();
    configure(host, move |h| Ok(h.sandbox(policy)))
}

/// Writes type stubs for the host's functions into `dir/tether/` (check a
/// script with `MYPYPATH=dir mypy script.py`).
#[no_mangle]
pub extern "C" fn tether_host_write_stubs(
    host: *const tether_host,
    dir: *const c_char,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes a live host and a NUL-terminated string.
        let h = try_ffi!(unsafe { obj(host, "host") });
        // SAFETY: as above.
        let dir = try_ffi!(unsafe { str_arg(dir, "dir") });
        match h.current().write_stubs(dir) {
            Ok(_) => ok(),
            Err(e) => fail(
                tether_result::Io,
                format!("cannot write stubs to {dir}: {e}"),
            ),
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

/// Registers `callback` as host function `signature` (copied): a name
/// (`"log"`: it receives all positional arguments, however many) or a name
/// with parameter names (`"add(a, b)"`: exactly those, each by position or
/// by keyword, handed to the callback in the order of the names).
/// `user_data` is handed back to it unchanged and must stay valid while the
/// host or any script spawned from it exists; see
/// `tether_host_add_function_owned` to have it freed.
#[no_mangle]
pub extern "C" fn tether_host_add_function(
    host: *mut tether_host,
    signature: *const c_char,
    callback: tether_function,
    user_data: *mut c_void,
) -> tether_result {
    tether_host_add_function_owned(host, signature, callback, user_data, None)
}

/// As `tether_host_add_function`, and `free` (when not NULL) is called with
/// `user_data` exactly once, when nothing can call `callback` any more: the
/// host is freed and every script spawned from it has ended (or the
/// function was replaced by another of the same name).
#[no_mangle]
pub extern "C" fn tether_host_add_function_owned(
    host: *mut tether_host,
    signature: *const c_char,
    callback: tether_function,
    user_data: *mut c_void,
    free: tether_free_function,
) -> tether_result {
    // Owned from here on: freed even when registering fails below.
    let data = Arc::new(UserData::owned(user_data, free));
    // SAFETY: the caller passes NULL or a NUL-terminated string.
    let signature = try_ffi!(unsafe { str_arg(signature, "signature") }).to_owned();
    let Some(callback) = callback else {
        return fail(tether_result::NullArgument, "callback is NULL");
    };
    configure(host, move |h| {
        Ok(h.dynamic_function(&signature, move |args| {
            let call = tether_call::new(args)?;
            let mut reply = tether_reply { answer: None };
            // SAFETY: the callback is the caller's, called with the pointer
            // it registered and objects that live until it returns.
            unsafe { callback(data.ptr(), &call, &mut reply) };
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
    let user_data = UserData::owned(user_data, None);
    configure(host, move |h| {
        Ok(h.try_function(&format!("{name}(arg)"), move |arg: String| {
            let user_data = &user_data;
            let mut text = arg.into_bytes();
            let len = text.len();
            text.push(0);
            let mut reply = tether_reply { answer: None };
            // SAFETY: the callback is the caller's; `text` is NUL-terminated
            // and outlives the call.
            unsafe { callback(user_data.ptr(), text.as_ptr().cast(), len, &mut reply) };
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
/// if it still runs). A host runs any number of scripts at once, and may
/// spawn from several threads.
#[no_mangle]
pub extern "C" fn tether_host_spawn(
    host: *const tether_host,
    script: *const tether_script,
    out: *mut *mut tether_child,
) -> tether_result {
    boundary(|| {
        let (h, s) = try_ffi!(host_and_script(host, script));
        if out.is_null() {
            return fail(tether_result::NullArgument, "out is NULL");
        }
        match h.current().spawn(s.script.clone()) {
            Ok(child) => {
                let child = Box::new(tether_child { child: Some(child) });
                // SAFETY: checked non-NULL above.
                unsafe { out.write(Box::into_raw(child)) };
                ok()
            }
            Err(e) => from_error(&e),
        }
    })
}

/// Borrows a host and a script passed together (spawning, pools).
pub(crate) fn host_and_script<'a>(
    host: *const tether_host,
    script: *const tether_script,
) -> Result<(&'a tether_host, &'a tether_script), tether_result> {
    // SAFETY: every C caller passes live objects from this library (or NULL,
    // which obj rejects).
    unsafe { Ok((obj(host, "host")?, obj(script, "script")?)) }
}
