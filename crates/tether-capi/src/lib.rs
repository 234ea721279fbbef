//! The C ABI of tether: host Python scripts from C and C++.
//!
//! The header `include/tether.h` is generated from this file by cbindgen.
//! Conventions (after rustls-ffi): opaque objects made by `tether_X_new` and
//! released by `tether_X_free`; every fallible function returns a
//! `tether_result` and writes its outputs through trailing pointers only on
//! success; the message of the last failure on the calling thread is read
//! with `tether_last_error`; byte buffers are a pointer plus a `size_t`; no
//! Rust panic or unwinding ever crosses the boundary.
#![allow(non_camel_case_types, unsafe_code)]
// Every exported function takes raw pointers from C, where `unsafe` means
// nothing; what each pointer must be is documented in the header instead.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod ffi;

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ffi::{boundary, bytes_arg, fail, obj, obj_mut, ok, str_arg, with, write_out, write_parts};
use tether::{Bytes, Error, FunctionError, Host, Script, Value};

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
}

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

/// A set of functions for scripts, and how to run them. Opaque.
pub struct tether_host {
    host: Host,
    /// A script spawned from this host is still running.
    busy: Arc<AtomicBool>,
}

/// Which script to run and how. Opaque.
pub struct tether_script {
    script: Script,
}

/// A script started with `tether_host_spawn`. Opaque.
pub struct tether_child {
    child: Option<tether::Child>,
    busy: Arc<AtomicBool>,
}

/// The arguments of one call from the script, valid during the callback
/// only. Opaque.
pub struct tether_call {
    args: Vec<Value>,
    /// The arguments as wire JSON (a JSON array), NUL-terminated.
    json: Vec<u8>,
    /// The attachment area the JSON's `{"$bytes":[offset,length]}` point into.
    area: Vec<u8>,
    /// NUL-terminated copies of the string arguments.
    strings: Vec<Option<Vec<u8>>>,
}

/// Where a callback puts its answer, valid during the callback only. Opaque.
pub struct tether_reply {
    answer: Option<Result<Value, FunctionError>>,
}

/// A value the script returned: wire JSON plus attachments. Opaque.
pub struct tether_value {
    json: Vec<u8>,
    area: Vec<u8>,
}

/// A host function: reads its arguments from `call` and answers through
/// `reply` (with `tether_reply_*`; no answer means `None`). It may run on any
/// thread, several at once unless the host is serial
/// (`tether_host_set_serial`). It must not unwind (no C++ exception may leave
/// it) and must not keep `call` or `reply` after returning.
pub type tether_function = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        call: *const tether_call,
        reply: *mut tether_reply,
    ),
>;

/// A host function of one string: `arg` is `arg_len` bytes of UTF-8 followed
/// by a NUL. It answers through `reply`, usually with `tether_reply_string`.
/// The same rules as for `tether_function` apply.
pub type tether_string_function = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        arg: *const c_char,
        arg_len: usize,
        reply: *mut tether_reply,
    ),
>;

/// The caller's pointer, handed back to its callback on whatever thread runs it.
#[derive(Clone, Copy)]
struct UserData(*mut c_void);
// SAFETY: tether never dereferences it; the header documents that callbacks
// run on any thread, so the caller makes what it points to thread-safe.
unsafe impl Send for UserData {}
// SAFETY: as above.
unsafe impl Sync for UserData {}

// ---------------------------------------------------------------- errors ----

/// Copies the message of the last failed call on this thread into `buf`
/// (NUL-terminated, truncated to `len` bytes) and returns the message's full
/// length, so a too-small buffer can be retried. `buf` may be NULL to ask for
/// the length. Returns 0 when the last call succeeded.
#[no_mangle]
pub extern "C" fn tether_last_error(buf: *mut c_char, len: usize) -> usize {
    std::panic::catch_unwind(|| ffi::last_error(buf, len)).unwrap_or(0)
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
    };
    name.as_ptr().cast()
}

fn from_error(e: &Error) -> tether_result {
    let code = match e {
        Error::Spawn { .. } => tether_result::Spawn,
        Error::Config(_) => tether_result::Config,
        Error::Io { .. } => tether_result::Io,
        Error::Protocol { .. } => tether_result::Protocol,
        Error::Remote(_) => tether_result::Remote,
        Error::Timeout { .. } => tether_result::Timeout,
        Error::Closed(_) => tether_result::Closed,
        Error::Value(_) => tether_result::Value,
        Error::VersionMismatch { .. } => tether_result::VersionMismatch,
        _ => tether_result::Io,
    };
    fail(code, e.to_string())
}

// ------------------------------------------------------------------ host ----

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
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the caller gives back a pointer from tether_host_new,
            // once.
            drop(unsafe { Box::from_raw(host) });
        }));
    }
}

/// Changes a host's configuration unless one of its scripts is running.
fn configure(
    host: *mut tether_host,
    change: impl FnOnce(Host) -> Result<Host, tether_result>,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes a live host, used by one thread at a time.
        let h = match unsafe { obj_mut(host, "host") } {
            Ok(h) => h,
            Err(code) => return code,
        };
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
    let path = match unsafe { str_arg(path, "path") } {
        Ok(p) => p.to_owned(),
        Err(code) => return code,
    };
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
    let name = match unsafe { str_arg(name, "name") } {
        Ok(n) => n.to_owned(),
        Err(code) => return code,
    };
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
    let name = match unsafe { str_arg(name, "name") } {
        Ok(n) => n.to_owned(),
        Err(code) => return code,
    };
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

// ---------------------------------------------------------------- script ----

/// Describes the script at `path` (copied; relative to the working
/// directory). On success `*out` owns it; free it with `tether_script_free`.
#[no_mangle]
pub extern "C" fn tether_script_new(
    path: *const c_char,
    out: *mut *mut tether_script,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let path = match unsafe { str_arg(path, "path") } {
            Ok(p) => p,
            Err(code) => return code,
        };
        let script = Box::new(tether_script {
            script: Script::new(path),
        });
        // SAFETY: `out` is checked for NULL and written once.
        match unsafe { write_out(out, Box::into_raw(script), "out") } {
            Ok(()) => ok(),
            Err(code) => code,
        }
    })
}

/// Frees a script description. NULL is ignored.
#[no_mangle]
pub extern "C" fn tether_script_free(script: *mut tether_script) {
    if !script.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the caller gives back a pointer from tether_script_new,
            // once.
            drop(unsafe { Box::from_raw(script) });
        }));
    }
}

fn update_script(
    script: *mut tether_script,
    change: impl FnOnce(Script) -> Script,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes a live script, used by one thread at a time.
        match unsafe { obj_mut(script, "script") } {
            Ok(s) => {
                let old = std::mem::replace(&mut s.script, Script::new(""));
                s.script = change(old);
                ok()
            }
            Err(code) => code,
        }
    })
}

/// Adds one argument (copied) for the script's `sys.argv`.
#[no_mangle]
pub extern "C" fn tether_script_add_arg(
    script: *mut tether_script,
    arg: *const c_char,
) -> tether_result {
    // SAFETY: the caller passes NULL or a NUL-terminated string.
    match unsafe { str_arg(arg, "arg") } {
        Ok(a) => {
            let a = a.to_owned();
            update_script(script, |s| s.arg(a))
        }
        Err(code) => code,
    }
}

/// Sets an environment variable (both strings copied) for the script.
#[no_mangle]
pub extern "C" fn tether_script_set_env(
    script: *mut tether_script,
    key: *const c_char,
    value: *const c_char,
) -> tether_result {
    // SAFETY: the caller passes NULL or NUL-terminated strings.
    match unsafe { (str_arg(key, "key"), str_arg(value, "value")) } {
        (Ok(k), Ok(v)) => {
            let (k, v) = (k.to_owned(), v.to_owned());
            update_script(script, |s| s.env(k, v))
        }
        (Err(code), _) | (_, Err(code)) => code,
    }
}

/// Runs the script in `dir` (copied) instead of the host's working directory.
#[no_mangle]
pub extern "C" fn tether_script_set_cwd(
    script: *mut tether_script,
    dir: *const c_char,
) -> tether_result {
    // SAFETY: the caller passes NULL or a NUL-terminated string.
    match unsafe { str_arg(dir, "dir") } {
        Ok(d) => {
            let d = d.to_owned();
            update_script(script, |s| s.current_dir(d))
        }
        Err(code) => code,
    }
}

// ----------------------------------------------------------------- child ----

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
        let c = match running(child) {
            Ok(c) => c,
            Err(code) => return code,
        };
        // SAFETY: the caller passes a NUL-terminated name and `args_len`
        // readable bytes.
        let (name, args) = match unsafe { name_and_args(name, args_json, args_len) } {
            Ok(pair) => pair,
            Err(code) => return code,
        };
        if out.is_null() {
            return fail(tether_result::NullArgument, "out is NULL");
        }
        let child = c.child.as_ref().expect("checked by running()");
        let result: Result<Value, Error> = if timeout_ms == 0 {
            child.call(name, args)
        } else {
            child.call_timeout(name, args, Duration::from_millis(u64::from(timeout_ms)))
        };
        match result.and_then(|v| {
            tether::protocol::encode_value(&v)
                .map_err(|m| Error::Closed(format!("the result cannot be handed over: {m}")))
        }) {
            Ok((mut json, area)) => {
                json.push(0);
                let value = Box::new(tether_value { json, area });
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
        let c = match running(child) {
            Ok(c) => c,
            Err(code) => return code,
        };
        // SAFETY: as for tether_child_call.
        let (name, args) = match unsafe { name_and_args(name, args_json, args_len) } {
            Ok(pair) => pair,
            Err(code) => return code,
        };
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
        let c = match running(child) {
            Ok(c) => c,
            Err(code) => return code,
        };
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
        let c = match running(child) {
            Ok(c) => c,
            Err(code) => return code,
        };
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
        let c = match running(child) {
            Ok(c) => c,
            Err(code) => return code,
        };
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
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the caller gives back a pointer from tether_host_spawn,
            // once.
            let c = unsafe { Box::from_raw(child) };
            drop(c.child);
            c.busy.store(false, Ordering::Release);
        }));
    }
}

// ------------------------------------------------------------ call / reply --

impl tether_call {
    fn new(args: Vec<Value>) -> Result<tether_call, FunctionError> {
        let (mut json, area) = tether::protocol::encode_value(&Value::List(args.clone()))
            .map_err(|m| FunctionError::new("ValueError", m))?;
        json.push(0);
        let strings = args
            .iter()
            .map(|a| {
                a.as_str().map(|s| {
                    let mut v = s.as_bytes().to_vec();
                    v.push(0);
                    v
                })
            })
            .collect();
        Ok(tether_call {
            args,
            json,
            area,
            strings,
        })
    }

    fn arg(&self, index: usize) -> Result<&Value, tether_result> {
        self.args.get(index).ok_or_else(|| {
            fail(
                tether_result::InvalidArgument,
                format!(
                    "argument {index} does not exist (the call has {})",
                    self.args.len()
                ),
            )
        })
    }
}

/// How many positional arguments the call has.
#[no_mangle]
pub extern "C" fn tether_call_arg_count(call: *const tether_call) -> usize {
    // SAFETY: the caller passes the call it was given, or NULL.
    std::panic::catch_unwind(|| unsafe { call.as_ref() }.map_or(0, |c| c.args.len())).unwrap_or(0)
}

/// All arguments as wire JSON: a NUL-terminated JSON array in which bytes
/// values are `{"$bytes":[offset,length]}` into the attachment area
/// (`tether_call_attachments`). The pointer is valid during the callback.
#[no_mangle]
pub extern "C" fn tether_call_args_json(
    call: *const tether_call,
    json: *mut *const c_char,
    len: *mut usize,
) -> tether_result {
    // SAFETY: output pointers are checked for NULL by write_parts.
    with(call, "call", |c| unsafe {
        write_parts(json, len, c.json.as_ptr().cast(), c.json.len() - 1)
    })
}

/// The attachment area that bytes values in `tether_call_args_json` point
/// into. The pointer is valid during the callback.
#[no_mangle]
pub extern "C" fn tether_call_attachments(
    call: *const tether_call,
    data: *mut *const u8,
    len: *mut usize,
) -> tether_result {
    // SAFETY: output pointers are checked for NULL by write_parts.
    with(call, "call", |c| unsafe {
        write_parts(data, len, c.area.as_ptr(), c.area.len())
    })
}

/// Argument `index` as a string: `*text` is NUL-terminated UTF-8 of `*len`
/// bytes, valid during the callback. `TETHER_RESULT_INVALID_ARGUMENT` when it
/// is not a string.
#[no_mangle]
pub extern "C" fn tether_call_arg_string(
    call: *const tether_call,
    index: usize,
    text: *mut *const c_char,
    len: *mut usize,
) -> tether_result {
    with(call, "call", |c| {
        let arg = c.arg(index)?;
        let Some(Some(s)) = c.strings.get(index) else {
            return Err(fail(
                tether_result::InvalidArgument,
                format!("argument {index} is a {}, not a str", arg.type_name()),
            ));
        };
        // SAFETY: output pointers are checked for NULL by write_parts.
        unsafe { write_parts(text, len, s.as_ptr().cast(), s.len() - 1) }
    })
}

/// Argument `index` as a 64-bit integer.
#[no_mangle]
pub extern "C" fn tether_call_arg_int(
    call: *const tether_call,
    index: usize,
    out: *mut i64,
) -> tether_result {
    with(call, "call", |c| match c.arg(index)? {
        // SAFETY: `out` is checked for NULL by write_out.
        Value::Int(n) => unsafe { write_out(out, *n, "out") },
        other => Err(fail(
            tether_result::InvalidArgument,
            format!("argument {index} is a {}, not an int", other.type_name()),
        )),
    })
}

/// Argument `index` as a double (an integer argument is converted).
#[no_mangle]
pub extern "C" fn tether_call_arg_double(
    call: *const tether_call,
    index: usize,
    out: *mut f64,
) -> tether_result {
    with(call, "call", |c| {
        let x = match c.arg(index)? {
            Value::Float(x) => *x,
            Value::Int(n) => *n as f64,
            other => {
                return Err(fail(
                    tether_result::InvalidArgument,
                    format!("argument {index} is a {}, not a float", other.type_name()),
                ))
            }
        };
        // SAFETY: `out` is checked for NULL by write_out.
        unsafe { write_out(out, x, "out") }
    })
}

/// Argument `index` as bytes: `*data` points to `*len` bytes, valid during
/// the callback.
#[no_mangle]
pub extern "C" fn tether_call_arg_bytes(
    call: *const tether_call,
    index: usize,
    data: *mut *const u8,
    len: *mut usize,
) -> tether_result {
    with(call, "call", |c| match c.arg(index)? {
        // SAFETY: output pointers are checked for NULL by write_parts.
        Value::Bytes(b) => unsafe { write_parts(data, len, b.as_ptr(), b.len()) },
        other => Err(fail(
            tether_result::InvalidArgument,
            format!("argument {index} is a {}, not bytes", other.type_name()),
        )),
    })
}

fn set_answer(reply: *mut tether_reply, answer: Result<Value, FunctionError>) -> tether_result {
    // SAFETY: the caller passes the reply it was given.
    match unsafe { obj_mut(reply, "reply") } {
        Ok(r) => {
            r.answer = Some(answer);
            ok()
        }
        Err(code) => code,
    }
}

fn parse_json(text: &[u8]) -> Result<Value, tether_result> {
    tether::protocol::decode_value(text, &Bytes::new()).map_err(|m| {
        fail(
            tether_result::InvalidArgument,
            format!("not valid JSON: {m}"),
        )
    })
}

/// Answers with the value in `json` (`len` bytes of UTF-8 JSON, copied).
/// `TETHER_RESULT_INVALID_ARGUMENT` when it is not JSON.
#[no_mangle]
pub extern "C" fn tether_reply_json(
    reply: *mut tether_reply,
    json: *const c_char,
    len: usize,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes `len` readable bytes.
        match unsafe { bytes_arg(json.cast(), len, "json") }.and_then(parse_json) {
            Ok(v) => set_answer(reply, Ok(v)),
            Err(code) => code,
        }
    })
}

/// Answers with the string `text` (`len` bytes of UTF-8, copied).
#[no_mangle]
pub extern "C" fn tether_reply_string(
    reply: *mut tether_reply,
    text: *const c_char,
    len: usize,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes `len` readable bytes.
        let bytes = match unsafe { bytes_arg(text.cast(), len, "text") } {
            Ok(b) => b,
            Err(code) => return code,
        };
        match std::str::from_utf8(bytes) {
            Ok(s) => set_answer(reply, Ok(Value::from(s))),
            Err(e) => fail(
                tether_result::InvalidArgument,
                format!("text is not UTF-8: {e}"),
            ),
        }
    })
}

/// Answers with `len` bytes from `data` (copied), which reach the script as
/// `bytes`.
#[no_mangle]
pub extern "C" fn tether_reply_bytes(
    reply: *mut tether_reply,
    data: *const u8,
    len: usize,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes `len` readable bytes.
        match unsafe { bytes_arg(data, len, "data") } {
            Ok(b) => set_answer(reply, Ok(Value::Bytes(Bytes::copy_from_slice(b)))),
            Err(code) => code,
        }
    })
}

/// Answers with an integer.
#[no_mangle]
pub extern "C" fn tether_reply_int(reply: *mut tether_reply, value: i64) -> tether_result {
    boundary(|| set_answer(reply, Ok(Value::Int(value))))
}

/// Answers with a double (NaN and infinities cannot be sent: the script then
/// gets an error instead).
#[no_mangle]
pub extern "C" fn tether_reply_double(reply: *mut tether_reply, value: f64) -> tether_result {
    boundary(|| set_answer(reply, Ok(Value::Float(value))))
}

/// Answers with an error: the script raises `tether.RemoteError` (catchable
/// as `host.errors.KIND`) with `message`. Both strings are copied.
#[no_mangle]
pub extern "C" fn tether_reply_error(
    reply: *mut tether_reply,
    kind: *const c_char,
    message: *const c_char,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes NUL-terminated strings.
        match unsafe { (str_arg(kind, "kind"), str_arg(message, "message")) } {
            (Ok(k), Ok(m)) => set_answer(reply, Err(FunctionError::new(k, m))),
            (Err(code), _) | (_, Err(code)) => code,
        }
    })
}

// ----------------------------------------------------------------- value ----

/// The value as NUL-terminated wire JSON (bytes values are
/// `{"$bytes":[offset,length]}` into `tether_value_attachments`). The pointer
/// is valid until `tether_value_free`.
#[no_mangle]
pub extern "C" fn tether_value_json(
    value: *const tether_value,
    json: *mut *const c_char,
    len: *mut usize,
) -> tether_result {
    // SAFETY: output pointers are checked for NULL by write_parts.
    with(value, "value", |v| unsafe {
        write_parts(json, len, v.json.as_ptr().cast(), v.json.len() - 1)
    })
}

/// The attachment area of a value. The pointer is valid until
/// `tether_value_free`.
#[no_mangle]
pub extern "C" fn tether_value_attachments(
    value: *const tether_value,
    data: *mut *const u8,
    len: *mut usize,
) -> tether_result {
    // SAFETY: output pointers are checked for NULL by write_parts.
    with(value, "value", |v| unsafe {
        write_parts(data, len, v.area.as_ptr(), v.area.len())
    })
}

/// Frees a value. NULL is ignored.
#[no_mangle]
pub extern "C" fn tether_value_free(value: *mut tether_value) {
    if !value.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the caller gives back a pointer from tether_child_call,
            // once.
            drop(unsafe { Box::from_raw(value) });
        }));
    }
}
