//! The C ABI of tether: host Python scripts from C and C++.
//!
//! The header `include/tether.h` is generated from this file by cbindgen.
//! Conventions (after rustls-ffi): opaque objects made by `tether_X_new` and
//! released by `tether_X_free`; every fallible function returns a
//! `tether_result` and writes its outputs through trailing pointers only on
//! success; the message of the last failure on the calling thread is read
//! with `tether_last_error`; byte buffers are a pointer plus a `size_t`; no
//! Rust panic or unwinding ever crosses the boundary.
//!
//! One file per object, as in rustls-ffi: [`host`], [`script`], [`child`],
//! [`report`] (how a run ended), [`call`] (with the reply and the callback
//! types), [`value`], [`sandbox`], [`pool`], [`zygote`] (warm start), [`stop`]
//! (the graceful stop on signals) and [`error`] (result codes, the last
//! error); `ffi` holds the panic boundary, the early-return macro and the
//! pointer helpers every function uses.
#![allow(non_camel_case_types, unsafe_code)]
// Every exported function takes raw pointers from C, where `unsafe` means
// nothing; what each pointer must be is documented in the header instead.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

#[macro_use]
mod ffi;
pub mod call;
pub mod child;
pub mod error;
pub mod host;
pub mod pool;
pub mod report;
pub mod sandbox;
pub mod script;
pub mod stop;
pub mod value;
pub mod zygote;

pub use call::*;
pub use child::*;
pub use error::*;
pub use host::*;
pub use pool::*;
pub use report::*;
pub use sandbox::*;
pub use script::*;
pub use stop::*;
pub use value::*;
