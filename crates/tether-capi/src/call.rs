//! `tether_call` and `tether_reply`: the arguments of one call from the
//! script and the answer a C host function gives; the callback types.

use std::ffi::{c_char, c_void};

use tether::{Bytes, FunctionError, Value};

use crate::error::tether_result;
use crate::ffi::{
    boundary, bytes_arg, fail, free_boundary, obj_mut, ok, str_arg, with, write_out, write_parts,
};
use crate::value::{parse_json, Wire};

/// The arguments of one call from the script, valid during the callback
/// only. Opaque.
pub struct tether_call {
    args: Vec<Value>,
    /// The arguments as wire JSON (a JSON array).
    wire: Wire,
    /// NUL-terminated copies of the string arguments.
    strings: Vec<Option<Vec<u8>>>,
}

/// Where a callback puts its answer, valid during the callback only. Opaque.
pub struct tether_reply {
    pub(crate) answer: Option<Result<Value, FunctionError>>,
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

/// Frees a callback's user data (see `tether_host_add_function_owned`).
pub type tether_free_function = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// The caller's pointer, handed back to its callback on whatever thread
/// runs it, and freed with the caller's function (if any) exactly once,
/// when the last callback that could use it is gone.
pub(crate) struct UserData {
    ptr: *mut c_void,
    free: tether_free_function,
}
// SAFETY: tether never dereferences it; the header documents that callbacks
// run on any thread, so the caller makes what it points to thread-safe.
unsafe impl Send for UserData {}
// SAFETY: as above.
unsafe impl Sync for UserData {}

impl UserData {
    pub(crate) fn owned(ptr: *mut c_void, free: tether_free_function) -> UserData {
        UserData { ptr, free }
    }

    pub(crate) fn ptr(&self) -> *mut c_void {
        self.ptr
    }
}

impl Drop for UserData {
    fn drop(&mut self) {
        if let Some(free) = self.free.take() {
            // SAFETY: the caller's free function, called once with its own
            // pointer, after the last use of it.
            unsafe { free(self.ptr) };
        }
    }
}

impl tether_call {
    pub(crate) fn new(args: Vec<Value>) -> Result<tether_call, FunctionError> {
        let wire = Wire::encode(&Value::List(args.clone()))
            .map_err(|m| FunctionError::new("ValueError", m))?;
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
            wire,
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
    free_boundary(0, || unsafe { call.as_ref() }.map_or(0, |c| c.args.len()))
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
    with(call, "call", |c| unsafe { c.wire.write_json(json, len) })
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
    with(call, "call", |c| unsafe { c.wire.write_area(data, len) })
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
        let bytes = try_ffi!(unsafe { bytes_arg(text.cast(), len, "text") });
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

/// Calls export `name` of the script that made this call, from inside its
/// callback (a nested call: the script runs it while it waits for the
/// callback's answer), with `args_json` as for `tether_child_call`, waiting
/// at most `timeout_ms` (0: no limit). On success `*out` owns the result;
/// free it with `tether_value_free`.
#[no_mangle]
pub extern "C" fn tether_call_script(
    call: *const tether_call,
    name: *const c_char,
    args_json: *const c_char,
    args_len: usize,
    timeout_ms: u32,
    out: *mut *mut crate::value::tether_value,
) -> tether_result {
    boundary(|| {
        // SAFETY: the caller passes the call it was given.
        try_ffi!(unsafe { crate::ffi::obj(call, "call") });
        // SAFETY: the caller passes a NUL-terminated name and `args_len` bytes.
        let (name, args) =
            try_ffi!(unsafe { crate::child::name_and_args(name, args_json, args_len) });
        if out.is_null() {
            return fail(tether_result::NullArgument, "out is NULL");
        }
        let Some(peer) = tether::Peer::current() else {
            return fail(
                tether_result::Misuse,
                "tether_call_script works only inside a host function's callback",
            );
        };
        crate::child::deliver(crate::child::call_peer(&peer, name, args, timeout_ms), out)
    })
}
