//! The graceful stop of every script: on SIGTERM/SIGINT, or now.

use std::time::Duration;

use crate::error::{from_error, tether_result};
use crate::ffi::{boundary, free_boundary, obj, ok, write_out};

/// Stops every running script when the process gets SIGTERM or SIGINT
/// (see `tether::stop_on_signals`). Opaque.
pub struct tether_stop {
    stop: tether::StopSignals,
}

/// From now on, SIGTERM or SIGINT stop every running script gracefully
/// (`rpc.stop`, SIGTERM at half of `grace_ms`, SIGKILL at `grace_ms`; a
/// second signal stops them at once), instead of ending the process.
/// On success `*out` owns the handle; free it with `tether_stop_free`.
#[no_mangle]
pub extern "C" fn tether_stop_on_signals(
    grace_ms: u32,
    out: *mut *mut tether_stop,
) -> tether_result {
    boundary(
        || match tether::stop_on_signals(Duration::from_millis(u64::from(grace_ms))) {
            Ok(stop) => {
                let stop = Box::new(tether_stop { stop });
                // SAFETY: `out` is checked for NULL and written once.
                match unsafe { write_out(out, Box::into_raw(stop), "out") } {
                    Ok(()) => ok(),
                    Err(code) => code,
                }
            }
            Err(e) => from_error(&e),
        },
    )
}

/// The signal that started the stop, or 0 while none came.
#[no_mangle]
pub extern "C" fn tether_stop_signal(stop: *const tether_stop) -> i32 {
    free_boundary(0, || {
        // SAFETY: the caller passes a live handle or NULL.
        let stop = unsafe { stop.as_ref() };
        stop.map_or(0, |s| s.stop.signal().unwrap_or(0))
    })
}

/// Waits until a stop that began has stopped every script.
#[no_mangle]
pub extern "C" fn tether_stop_wait(stop: *const tether_stop) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes a live handle.
        let s = try_ffi!(unsafe { obj(stop, "stop") });
        s.stop.wait_stopped();
        ok()
    })
}

/// Frees the handle (the signal handling stays). NULL is ignored.
#[no_mangle]
pub extern "C" fn tether_stop_free(stop: *mut tether_stop) {
    if !stop.is_null() {
        free_boundary((), || {
            // SAFETY: the caller gives back a pointer from tether_stop_on_signals, once.
            drop(unsafe { Box::from_raw(stop) });
        });
    }
}

/// Stops every running script of the process gracefully now, as a signal
/// would, and waits until they have stopped.
#[no_mangle]
pub extern "C" fn tether_stop_all(grace_ms: u32) -> tether_result {
    boundary(|| {
        tether::stop_all(Duration::from_millis(u64::from(grace_ms)));
        ok()
    })
}
