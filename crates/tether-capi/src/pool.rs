//! `tether_pool`: many workers of one script.

use std::ffi::c_char;
use std::time::Duration;

use tether::{Error, Value};

use crate::error::{fail, from_error, tether_result};
use crate::ffi::{boundary, free_boundary, obj, ok, write_out};
use crate::host::tether_host;
use crate::script::tether_script;
use crate::value::tether_value;

/// Workers of one script, supervised (see `tether::Pool`). Opaque; may be
/// used from any number of threads at once.
pub struct tether_pool {
    pool: tether::Pool,
}

/// What a pool has done so far.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tether_pool_stats {
    /// Workers serving now.
    pub live: usize,
    /// Workers started, replacements included.
    pub started: u64,
    /// Workers that ended.
    pub exited: u64,
    /// Workers started to replace one that died.
    pub restarts: u64,
    /// Calls made through the pool.
    pub calls: u64,
    /// Of those, the failed ones.
    pub failed: u64,
    /// Whether the pool gave up restarting (its calls then fail at once).
    pub gave_up: bool,
}

/// Starts `workers` workers of `script`, served by `host`; a worker that
/// dies is replaced. On success `*out` owns the pool; free it with
/// `tether_pool_free`.
#[no_mangle]
pub extern "C" fn tether_pool_new(
    host: *const tether_host,
    script: *const tether_script,
    workers: usize,
    out: *mut *mut tether_pool,
) -> tether_result {
    boundary(|| {
        let (h, s) = try_ffi!(crate::host::host_and_script(host, script));
        if out.is_null() {
            return fail(tether_result::NullArgument, "out is NULL");
        }
        match h.current().pool(s.script.clone()).workers(workers).start() {
            Ok(pool) => {
                // SAFETY: checked non-NULL above.
                unsafe { out.write(Box::into_raw(Box::new(tether_pool { pool }))) };
                ok()
            }
            Err(e) => from_error(&e),
        }
    })
}

/// Calls export `name` on the least busy worker, with `args_json` as for
/// `tether_child_call`; `retry` true lets a call whose worker died be made
/// again on another (only for calls that are safe to repeat). On success
/// `*out` owns the result.
#[no_mangle]
pub extern "C" fn tether_pool_call(
    pool: *const tether_pool,
    name: *const c_char,
    args_json: *const c_char,
    args_len: usize,
    retry: bool,
    out: *mut *mut tether_value,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes a live pool.
        let p = try_ffi!(unsafe { obj(pool, "pool") });
        // SAFETY: the caller passes a NUL-terminated name and `args_len` bytes.
        let (name, args) =
            try_ffi!(unsafe { crate::child::name_and_args(name, args_json, args_len) });
        if out.is_null() {
            return fail(tether_result::NullArgument, "out is NULL");
        }
        let result: Result<Value, Error> = if retry {
            p.pool.call_retrying(name, args)
        } else {
            p.pool.call(name, args)
        };
        crate::child::deliver(result, out)
    })
}

/// Writes the pool's statistics to `*out`.
#[no_mangle]
pub extern "C" fn tether_pool_get_stats(
    pool: *const tether_pool,
    out: *mut tether_pool_stats,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes a live pool.
        let p = try_ffi!(unsafe { obj(pool, "pool") });
        let s = p.pool.stats();
        let stats = tether_pool_stats {
            live: s.live,
            started: s.started,
            exited: s.exited,
            restarts: s.restarts,
            calls: s.calls,
            failed: s.failed,
            gave_up: s.gave_up.is_some(),
        };
        // SAFETY: `out` is checked for NULL and written once.
        match unsafe { write_out(out, stats, "out") } {
            Ok(()) => ok(),
            Err(code) => code,
        }
    })
}

/// Takes no new calls, lets calls in flight finish within half of
/// `grace_ms`, then stops every worker.
#[no_mangle]
pub extern "C" fn tether_pool_shutdown(pool: *const tether_pool, grace_ms: u32) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes a live pool.
        let p = try_ffi!(unsafe { obj(pool, "pool") });
        p.pool.shutdown(Duration::from_millis(u64::from(grace_ms)));
        ok()
    })
}

/// Frees a pool, stopping its workers. NULL is ignored.
#[no_mangle]
pub extern "C" fn tether_pool_free(pool: *mut tether_pool) {
    if !pool.is_null() {
        free_boundary((), || {
            // SAFETY: the caller gives back a pointer from tether_pool_new, once.
            let p = unsafe { Box::from_raw(pool) };
            p.pool.shutdown(Duration::from_secs(5));
        });
    }
}
