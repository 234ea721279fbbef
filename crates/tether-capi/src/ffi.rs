//! The helpers every exported function uses: the panic boundary, the
//! early-return macro, pointer checks and C strings.

use std::ffi::{c_char, CStr};

use crate::error::tether_result;
pub(crate) use crate::error::{fail, ok};

/// Unwraps a `Result<T, tether_result>` inside an exported function: the
/// error code (already recorded with [`fail`]) is returned at once.
macro_rules! try_ffi {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(code) => return code,
        }
    };
}

/// Runs `body`, turning a panic into `TETHER_RESULT_PANIC`: no unwinding
/// crosses into C.
pub(crate) fn boundary(body: impl FnOnce() -> tether_result) -> tether_result {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(code) => code,
        Err(_) => fail(
            tether_result::Panic,
            "tether panicked (a bug in tether; please report it)",
        ),
    }
}

/// Runs `body` for a function that returns no result code (the `_free`
/// functions and plain getters): a panic gives `fallback`.
pub(crate) fn free_boundary<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, tether_result> {
    if ptr.is_null() {
        return Err(fail(tether_result::NullArgument, format!("{what} is NULL")));
    }
    // SAFETY: checked non-NULL above; the caller promises NUL termination.
    unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| {
        fail(
            tether_result::InvalidArgument,
            format!("{what} is not valid UTF-8"),
        )
    })
}

/// A byte buffer argument: pointer and length (NULL is fine for length 0).
///
/// # Safety
///
/// `ptr` is NULL or points to `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn bytes_arg<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], tether_result> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(fail(tether_result::NullArgument, format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Writes `value` through an output pointer, or fails when it is NULL.
///
/// # Safety
///
/// `out` is NULL or valid for writing a `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T, what: &str) -> Result<(), tether_result> {
    if out.is_null() {
        return Err(fail(tether_result::NullArgument, format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller promises it is writable.
    unsafe { out.write(value) };
    Ok(())
}

/// Borrows an opaque object from its pointer.
///
/// # Safety
///
/// `ptr` is NULL or a live pointer returned by this library.
pub(crate) unsafe fn obj<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, tether_result> {
    // SAFETY: the caller promises a live object or NULL, which as_ref checks.
    unsafe { ptr.as_ref() }
        .ok_or_else(|| fail(tether_result::NullArgument, format!("{what} is NULL")))
}

/// Mutably borrows an opaque object from its pointer.
///
/// # Safety
///
/// `ptr` is NULL or a live pointer returned by this library, not used
/// elsewhere at the same time.
pub(crate) unsafe fn obj_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, tether_result> {
    // SAFETY: the caller promises a live, unaliased object or NULL.
    unsafe { ptr.as_mut() }
        .ok_or_else(|| fail(tether_result::NullArgument, format!("{what} is NULL")))
}

/// Runs `body` on the object behind `ptr` inside the panic boundary; an
/// `Err(code)` from it (already recorded with `fail`) is the result.
pub(crate) fn with<T>(
    ptr: *const T,
    what: &str,
    body: impl FnOnce(&T) -> Result<(), tether_result>,
) -> tether_result {
    boundary(|| {
        // SAFETY: every caller passes a pointer its C caller got from this
        // library (or NULL, which obj rejects).
        match unsafe { obj(ptr, what) }.and_then(body) {
            Ok(()) => ok(),
            Err(code) => code,
        }
    })
}

/// Writes a pointer and a length through two output pointers, both or
/// neither.
///
/// # Safety
///
/// Each output pointer is NULL or valid for writing.
pub(crate) unsafe fn write_parts<T>(
    ptr_out: *mut *const T,
    len_out: *mut usize,
    ptr: *const T,
    len: usize,
) -> Result<(), tether_result> {
    if ptr_out.is_null() || len_out.is_null() {
        return Err(fail(
            tether_result::NullArgument,
            "an output pointer is NULL",
        ));
    }
    // SAFETY: both checked non-NULL; the caller promises they are writable.
    unsafe {
        ptr_out.write(ptr);
        len_out.write(len);
    }
    Ok(())
}

/// A NUL-terminated copy of `text` (an inner NUL ends it early).
pub(crate) fn c_string(text: &str) -> std::ffi::CString {
    let end = text.find('\0').unwrap_or(text.len());
    std::ffi::CString::new(&text[..end]).unwrap_or_default()
}
