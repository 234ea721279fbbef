//! `tether_script`: which script to run, with which arguments, environment
//! and working directory.

use std::ffi::{c_char, c_void};

use crate::call::{tether_free_function, UserData};

use tether::Script;

use crate::error::tether_result;
use crate::ffi::{boundary, free_boundary, obj_mut, ok, str_arg, write_out};

/// Which script to run and how. Opaque.
pub struct tether_script {
    pub(crate) script: Script,
}

/// Describes the script at `path` (copied; relative to the working
/// directory). On success `*out` owns it; free it with `tether_script_free`.
#[no_mangle]
pub extern "C" fn tether_script_new(
    path: *const c_char,
    out: *mut *mut tether_script,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let path = try_ffi!(unsafe { str_arg(path, "path") });
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
        free_boundary((), || {
            // SAFETY: the caller gives back a pointer from tether_script_new,
            // once.
            drop(unsafe { Box::from_raw(script) });
        });
    }
}

pub(crate) fn update_script(
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
    with_string(script, arg, "arg", |s, v| s.arg(v))
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
    with_string(script, dir, "dir", |s, v| s.current_dir(v))
}

/// Changes the script with one string argument (copied).
fn with_string(
    script: *mut tether_script,
    arg: *const c_char,
    what: &str,
    change: impl FnOnce(Script, String) -> Script,
) -> tether_result {
    // SAFETY: the caller passes NULL or a NUL-terminated string.
    match unsafe { str_arg(arg, what) } {
        Ok(v) => {
            let v = v.to_owned();
            update_script(script, |s| change(s, v))
        }
        Err(code) => code,
    }
}

/// Where one of a script's standard streams goes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_stdio {
    /// Shared with the host (the default).
    Inherit = 0,
    /// `/dev/null`.
    Null = 1,
    /// Collected for `tether_report_stdout` / `tether_report_stderr` (not
    /// for stdin).
    Capture = 2,
}

fn stdio(mode: tether_stdio) -> tether::Stdio {
    match mode {
        tether_stdio::Inherit => tether::Stdio::Inherit,
        tether_stdio::Null => tether::Stdio::Null,
        tether_stdio::Capture => tether::Stdio::Capture,
    }
}

/// Where the script's stdin comes from (`TETHER_STDIO_CAPTURE` is refused
/// when the script starts).
#[no_mangle]
pub extern "C" fn tether_script_set_stdin(
    script: *mut tether_script,
    mode: tether_stdio,
) -> tether_result {
    update_script(script, |s| s.stdin(stdio(mode)))
}

/// Where the script's stdout goes.
#[no_mangle]
pub extern "C" fn tether_script_set_stdout(
    script: *mut tether_script,
    mode: tether_stdio,
) -> tether_result {
    update_script(script, |s| s.stdout(stdio(mode)))
}

/// Where the script's stderr goes.
#[no_mangle]
pub extern "C" fn tether_script_set_stderr(
    script: *mut tether_script,
    mode: tether_stdio,
) -> tether_result {
    update_script(script, |s| s.stderr(stdio(mode)))
}

/// A line callback: `line` is `len` bytes of the line without its ending,
/// NUL-terminated, valid during the call. A thread of tether's runs it, one
/// line at a time per stream. It must not unwind.
pub type tether_line_function =
    Option<unsafe extern "C" fn(user_data: *mut c_void, line: *const c_char, len: usize)>;

/// A stream's line callback, as `attach` gives it to the script.
type LineFn = Box<dyn Fn(&str) + Send + Sync + 'static>;

/// Gives the script `callback` for one of its streams (`attach` says which).
fn set_line_callback(
    script: *mut tether_script,
    callback: tether_line_function,
    user_data: *mut c_void,
    free: tether_free_function,
    attach: impl FnOnce(Script, LineFn) -> Script,
) -> tether_result {
    let data = std::sync::Arc::new(UserData::owned(user_data, free));
    let Some(callback) = callback else {
        return crate::error::fail(tether_result::NullArgument, "callback is NULL");
    };
    let line: LineFn = Box::new(move |line: &str| {
        let text = crate::ffi::c_string(line);
        // SAFETY: the caller's callback, with its pointer and a
        // NUL-terminated line that outlives the call.
        unsafe { callback(data.ptr(), text.as_ptr(), text.as_bytes().len()) };
    });
    update_script(script, |s| attach(s, line))
}

/// Hands the script's stdout to `callback` line by line as it is written
/// (instead of `tether_script_set_stdout`). `free`, when not NULL, is called
/// once with `user_data` when the script description and every script run
/// from it are gone.
#[no_mangle]
pub extern "C" fn tether_script_on_stdout_line(
    script: *mut tether_script,
    callback: tether_line_function,
    user_data: *mut c_void,
    free: tether_free_function,
) -> tether_result {
    set_line_callback(script, callback, user_data, free, |s, f| {
        s.on_stdout_line(f)
    })
}

/// Hands the script's stderr to `callback` line by line, as
/// `tether_script_on_stdout_line` does for stdout.
#[no_mangle]
pub extern "C" fn tether_script_on_stderr_line(
    script: *mut tether_script,
    callback: tether_line_function,
    user_data: *mut c_void,
    free: tether_free_function,
) -> tether_result {
    set_line_callback(script, callback, user_data, free, |s, f| {
        s.on_stderr_line(f)
    })
}

/// Removes an environment variable the script would inherit.
#[no_mangle]
pub extern "C" fn tether_script_remove_env(
    script: *mut tether_script,
    key: *const c_char,
) -> tether_result {
    with_string(script, key, "key", |s, v| s.env_remove(v))
}

/// Runs the script in the virtual environment `dir` (copied).
#[no_mangle]
pub extern "C" fn tether_script_set_venv(
    script: *mut tether_script,
    dir: *const c_char,
) -> tether_result {
    with_string(script, dir, "dir", |s, v| s.venv(v))
}

/// Runs the script in `sandbox`'s policy (copied; see `tether_sandbox_new`).
#[no_mangle]
pub extern "C" fn tether_script_set_sandbox(
    script: *mut tether_script,
    sandbox: *const crate::sandbox::tether_sandbox,
) -> tether_result {
    // SAFETY: the caller passes a live sandbox or NULL.
    match unsafe { crate::ffi::obj(sandbox, "sandbox") } {
        Ok(policy) => {
            let policy = policy.policy.clone();
            update_script(script, |s| s.sandbox(policy))
        }
        Err(code) => code,
    }
}
