//! `tether_script`: which script to run, with which arguments, environment
//! and working directory.

use std::ffi::c_char;

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
