//! `tether_zygote`: a preloaded interpreter that forks warm scripts, and the
//! script setting that starts one warm (it lives here, beside the object it
//! takes, so that a script needs nothing of the zygote's file but this).

use std::ffi::c_char;

use crate::error::{fail, from_error, tether_result};
use crate::ffi::{boundary, free_boundary, obj, ok, str_arg};
use crate::host::tether_host;
use crate::script::tether_script;

/// A preloaded interpreter that forks warm scripts (see `tether::Zygote`).
/// Opaque.
pub struct tether_zygote {
    pub(crate) zygote: tether::Zygote,
}

/// Starts a zygote with `host`'s interpreter that first imports the modules
/// in `preload` (comma-separated, copied; NULL or "" for none). On success
/// `*out` owns it; free it with `tether_zygote_free` (it stops once no warm
/// script of it runs).
#[no_mangle]
pub extern "C" fn tether_zygote_new(
    host: *const tether_host,
    preload: *const c_char,
    out: *mut *mut tether_zygote,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes a live host.
        let h = try_ffi!(unsafe { obj(host, "host") });
        let modules: Vec<String> = if preload.is_null() {
            Vec::new()
        } else {
            // SAFETY: non-NULL and NUL-terminated by the caller's promise.
            try_ffi!(unsafe { str_arg(preload, "preload") })
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect()
        };
        if out.is_null() {
            return fail(tether_result::NullArgument, "out is NULL");
        }
        match h.current().zygote().preload(modules).start() {
            Ok(zygote) => {
                // SAFETY: checked non-NULL above.
                unsafe { out.write(Box::into_raw(Box::new(tether_zygote { zygote }))) };
                ok()
            }
            Err(e) => from_error(&e),
        }
    })
}

/// Frees a zygote handle. NULL is ignored.
#[no_mangle]
pub extern "C" fn tether_zygote_free(zygote: *mut tether_zygote) {
    if !zygote.is_null() {
        free_boundary((), || {
            // SAFETY: the caller gives back a pointer from tether_zygote_new, once.
            drop(unsafe { Box::from_raw(zygote) });
        });
    }
}

/// Starts the script warm, forked by `zygote` (see `tether_zygote_new`).
#[no_mangle]
pub extern "C" fn tether_script_set_warm(
    script: *mut tether_script,
    zygote: *const tether_zygote,
) -> tether_result {
    // SAFETY: the caller passes a live zygote or NULL.
    match unsafe { crate::ffi::obj(zygote, "zygote") } {
        Ok(z) => {
            let z = z.zygote.clone();
            crate::script::update_script(script, |s| s.warm(&z))
        }
        Err(code) => code,
    }
}
