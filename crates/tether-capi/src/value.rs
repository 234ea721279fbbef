//! `tether_value`: a value the script returned, as wire JSON plus the
//! attachment area its bytes values point into (`Wire`, which call
//! arguments use too).

use std::ffi::c_char;

use tether::{Bytes, Value};

use crate::error::tether_result;
use crate::ffi::{free_boundary, with, write_parts};

/// A value the script returned: wire JSON plus attachments. Opaque.
pub struct tether_value {
    pub(crate) wire: Wire,
}

/// A value as C sees it: NUL-terminated wire JSON in which bytes values are
/// `{"$bytes":[offset,length]}` into an attachment area. Call arguments
/// (`tether_call`) and results (`tether_value`) both hand out this pair.
pub(crate) struct Wire {
    /// The JSON text with a NUL after it.
    json: Vec<u8>,
    area: Vec<u8>,
}

impl Wire {
    /// Encodes `value`; the error says why it cannot be (a NaN, say).
    pub fn encode(value: &Value) -> Result<Wire, String> {
        let (mut json, area) = tether::protocol::encode_value(value)?;
        json.push(0);
        Ok(Wire { json, area })
    }

    /// Writes the JSON (without its NUL) through two output pointers.
    ///
    /// # Safety
    ///
    /// Each output pointer is NULL or valid for writing.
    pub unsafe fn write_json(
        &self,
        json: *mut *const c_char,
        len: *mut usize,
    ) -> Result<(), tether_result> {
        // SAFETY: forwarded from the caller's promise.
        unsafe { write_parts(json, len, self.json.as_ptr().cast(), self.json.len() - 1) }
    }

    /// Writes the attachment area through two output pointers.
    ///
    /// # Safety
    ///
    /// Each output pointer is NULL or valid for writing.
    pub unsafe fn write_area(
        &self,
        data: *mut *const u8,
        len: *mut usize,
    ) -> Result<(), tether_result> {
        // SAFETY: forwarded from the caller's promise.
        unsafe { write_parts(data, len, self.area.as_ptr(), self.area.len()) }
    }
}

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
    with(value, "value", |v| unsafe { v.wire.write_json(json, len) })
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
    with(value, "value", |v| unsafe { v.wire.write_area(data, len) })
}

/// Frees a value. NULL is ignored.
#[no_mangle]
pub extern "C" fn tether_value_free(value: *mut tether_value) {
    if !value.is_null() {
        free_boundary((), || {
            // SAFETY: the caller gives back a pointer from tether_child_call,
            // once.
            drop(unsafe { Box::from_raw(value) });
        });
    }
}

/// A value from JSON text a C caller passed (no attachments).
pub(crate) fn parse_json(text: &[u8]) -> Result<Value, tether_result> {
    tether::protocol::decode_value(text, &Bytes::new()).map_err(|m| {
        crate::error::fail(
            tether_result::InvalidArgument,
            format!("not valid JSON: {m}"),
        )
    })
}
