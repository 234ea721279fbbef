//! [`Value`]: what travels between host and script.
//!
//! The JSON types plus raw bytes. Any `serde` type converts to and from a
//! `Value` with [`to_value`] and [`from_value`]; that is how typed handler
//! arguments and results are built.

mod de;
mod ser;
pub(crate) mod shape;

use std::fmt::{self, Write as _};

use bytes::Bytes;
use indexmap::IndexMap;

pub use de::from_value;
pub use ser::to_value;

/// A map from string keys to values that keeps the order keys arrived in,
/// as a Python `dict` does.
pub type Map = IndexMap<String, Value>;

/// A value sent or received over the channel.
///
/// `Display` shows it as Python's `str()` would, so a string appears without
/// quotes and a list as `[1, 'a', None]`:
///
/// ```
/// use tether::Value;
/// assert_eq!(Value::from("abc").to_string(), "abc");
/// assert_eq!(Value::from(vec![Value::from(1), Value::from("a"), Value::Null]).to_string(), "[1, 'a', None]");
/// assert_eq!(Value::from(2.0).to_string(), "2.0");
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// JSON `null`, Python `None`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer above `i64::MAX`; smaller ones are always [`Value::Int`].
    UInt(u64),
    /// A float (never NaN or infinite on the wire: JSON cannot carry them).
    Float(f64),
    /// A string.
    Str(String),
    /// Raw bytes, carried beside the JSON text rather than inside it.
    Bytes(Bytes),
    /// A list (Python `list`; tuples arrive as lists).
    List(Vec<Value>),
    /// A map with string keys, in insertion order.
    Map(Map),
}

impl Value {
    /// The string inside, if this is a [`Value::Str`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer inside, if this is an integer that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The bytes inside, if this is a [`Value::Bytes`].
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The name of this value's type as a Python programmer would say it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "dict",
        }
    }

    /// Python's `repr()` of this value: like `Display`, but strings are quoted.
    pub fn repr(&self) -> String {
        let mut out = String::new();
        write_repr(&mut out, self);
        out
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            other => f.write_str(&other.repr()),
        }
    }
}

fn write_repr(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::UInt(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(x) => write_float(out, *x),
        Value::Str(s) => write_str_repr(out, s),
        Value::Bytes(b) => write_bytes_repr(out, b),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str_repr(out, k);
                out.push_str(": ");
                write_repr(out, v);
            }
            out.push('}');
        }
    }
}

/// Python's float repr: the shortest digits that round-trip, positional
/// notation for exponents from -5 to 15, scientific outside that range.
fn write_float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("nan");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "inf" } else { "-inf" });
        return;
    }
    // `{:e}` gives the shortest round-trip digits, e.g. "1.5e-7" or "1e16".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-5..16).contains(&exp) {
        let plain = format!("{x}");
        out.push_str(&plain);
        if !plain.contains('.') {
            out.push_str(".0");
        }
    } else {
        out.push_str(mantissa);
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

fn write_str_repr(out: &mut String, s: &str) {
    // Python prefers single quotes unless the string has one and no double quote.
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

fn write_bytes_repr(out: &mut String, b: &[u8]) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push('b');
    out.push(quote as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push(quote as char);
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Value {
                Value::Int(i64::from(n))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        match i64::try_from(n) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(n),
        }
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Float(x)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Value {
        Value::Bytes(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::List(items)
    }
}

impl From<Map> for Value {
    fn from(map: Map) -> Value {
        Value::Map(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_python_str() {
        let cases: Vec<(Value, &str)> = vec![
            (Value::Null, "None"),
            (Value::Bool(true), "True"),
            (Value::Int(-3), "-3"),
            (Value::UInt(u64::MAX), "18446744073709551615"),
            (Value::Float(1.0), "1.0"),
            (Value::Float(0.1), "0.1"),
            (Value::Float(1e16), "1e+16"),
            (Value::Float(1.5e-7), "1.5e-07"),
            (Value::Float(123456.789), "123456.789"),
            (Value::Float(-0.0), "-0.0"),
            (Value::from("it's"), "it's"),
            (
                Value::List(vec![
                    Value::from("it's"),
                    Value::from("a\"b'"),
                    Value::from("x\n"),
                ]),
                r#"["it's", 'a"b\'', 'x\n']"#,
            ),
            (Value::Bytes(Bytes::from_static(b"a\x00'")), r#"b"a\x00'""#),
            (
                Value::Map(Map::from_iter([("k".to_owned(), Value::Int(1))])),
                "{'k': 1}",
            ),
        ];
        for (value, want) in cases {
            assert_eq!(value.to_string(), want, "{value:?}");
        }
    }
}
