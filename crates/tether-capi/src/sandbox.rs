//! `tether_sandbox`: the policy for a script the host does not trust.

use std::ffi::c_char;
use std::time::Duration;

use tether::Sandbox;

use crate::error::tether_result;
use crate::ffi::{boundary, free_boundary, obj_mut, ok, str_arg, write_out};

/// A sandbox policy (see `tether::Sandbox` and docs/guarantees.md). Opaque.
pub struct tether_sandbox {
    pub(crate) policy: Sandbox,
}

/// The default policy: the interpreter, its libraries, the client and the
/// script's directory read-only, a private `TMPDIR`, no network, no signals
/// or ptrace outside, no new session, at most 128 processes. Strict: a
/// kernel that cannot enforce it all refuses to start the script. On
/// success `*out` owns it; free it with `tether_sandbox_free`.
#[no_mangle]
pub extern "C" fn tether_sandbox_new(out: *mut *mut tether_sandbox) -> tether_result {
    boundary(|| {
        let sandbox = Box::new(tether_sandbox {
            policy: Sandbox::new(),
        });
        // SAFETY: `out` is checked for NULL and written once.
        match unsafe { write_out(out, Box::into_raw(sandbox), "out") } {
            Ok(()) => ok(),
            Err(code) => code,
        }
    })
}

/// Frees a policy. NULL is ignored. Scripts and hosts given it keep a copy.
#[no_mangle]
pub extern "C" fn tether_sandbox_free(sandbox: *mut tether_sandbox) {
    if !sandbox.is_null() {
        free_boundary((), || {
            // SAFETY: the caller gives back a pointer from tether_sandbox_new, once.
            drop(unsafe { Box::from_raw(sandbox) });
        });
    }
}

fn change(sandbox: *mut tether_sandbox, f: impl FnOnce(Sandbox) -> Sandbox) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes a live policy, used by one thread at a time.
        let s = try_ffi!(unsafe { obj_mut(sandbox, "sandbox") });
        s.policy = f(std::mem::take(&mut s.policy));
        ok()
    })
}

fn path_change(
    sandbox: *mut tether_sandbox,
    path: *const c_char,
    f: impl FnOnce(Sandbox, String) -> Sandbox,
) -> tether_result {
    // SAFETY: the caller passes NULL or a NUL-terminated string.
    match unsafe { str_arg(path, "path") } {
        Ok(p) => {
            let p = p.to_owned();
            change(sandbox, |s| f(s, p))
        }
        Err(code) => code,
    }
}

/// Lets the script read what is under `path` (copied).
#[no_mangle]
pub extern "C" fn tether_sandbox_add_read_only(
    sandbox: *mut tether_sandbox,
    path: *const c_char,
) -> tether_result {
    path_change(sandbox, path, Sandbox::read_only)
}

/// Lets the script read and write what is under `path` (copied).
#[no_mangle]
pub extern "C" fn tether_sandbox_add_read_write(
    sandbox: *mut tether_sandbox,
    path: *const c_char,
) -> tether_result {
    path_change(sandbox, path, Sandbox::read_write)
}

/// Lets the script connect to TCP `port`.
#[no_mangle]
pub extern "C" fn tether_sandbox_allow_connect(
    sandbox: *mut tether_sandbox,
    port: u16,
) -> tether_result {
    change(sandbox, |s| s.connect_tcp(port))
}

/// Lets the script bind TCP `port`.
#[no_mangle]
pub extern "C" fn tether_sandbox_allow_bind(
    sandbox: *mut tether_sandbox,
    port: u16,
) -> tether_result {
    change(sandbox, |s| s.bind_tcp(port))
}

/// Limits the script's memory (data) to `bytes`.
#[no_mangle]
pub extern "C" fn tether_sandbox_set_memory(
    sandbox: *mut tether_sandbox,
    bytes: u64,
) -> tether_result {
    change(sandbox, |s| s.memory(bytes))
}

/// Limits each of the script's processes to `seconds` of CPU time.
#[no_mangle]
pub extern "C" fn tether_sandbox_set_cpu_seconds(
    sandbox: *mut tether_sandbox,
    seconds: u32,
) -> tether_result {
    change(sandbox, |s| {
        s.cpu_time(Duration::from_secs(u64::from(seconds)))
    })
}

/// At most `n` processes and threads in the script's tree.
#[no_mangle]
pub extern "C" fn tether_sandbox_set_max_processes(
    sandbox: *mut tether_sandbox,
    n: u64,
) -> tether_result {
    change(sandbox, |s| s.max_processes(n))
}

/// No file larger than `bytes` may be written.
#[no_mangle]
pub extern "C" fn tether_sandbox_set_file_size(
    sandbox: *mut tether_sandbox,
    bytes: u64,
) -> tether_result {
    change(sandbox, |s| s.file_size(bytes))
}

/// At most `n` open descriptors per process.
#[no_mangle]
pub extern "C" fn tether_sandbox_set_open_files(
    sandbox: *mut tether_sandbox,
    n: u64,
) -> tether_result {
    change(sandbox, |s| s.open_files(n))
}

/// Runs scripts even where the kernel cannot enforce the whole policy.
#[no_mangle]
pub extern "C" fn tether_sandbox_set_best_effort(sandbox: *mut tether_sandbox) -> tether_result {
    change(sandbox, Sandbox::best_effort)
}
