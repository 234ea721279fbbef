//! A [`Value`] as JSON text plus raw byte attachments, and back.
//!
//! A bytes value is written in the JSON text as the reference object
//! `{"$bytes":[offset,length]}`, which points into the attachment area that
//! follows the JSON text in the same frame. With shared memory on, a large
//! bytes value is instead `{"$shm":[offset,length]}`: it lies in a sealed
//! memory file passed beside the frame (see `docs/protocol.md`). Objects
//! whose only key is `$bytes` or `$shm` are therefore reserved and cannot be
//! sent as plain maps.
//!
//! Placing a value in shared memory and mapping a received one are I/O; this
//! module only calls the functions it is given for them.

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::MAX_DEPTH;
use crate::value::{Map, Value};

/// The key of a bytes reference object.
pub const BYTES_KEY: &str = "$bytes";

/// The key of a shared-memory reference object.
pub const SHARED_KEY: &str = "$shm";

/// The most bytes values one frame places in shared memory; the others go in
/// the attachment area. A receiver holds at most twice this many descriptors
/// ahead of their frames (`docs/protocol.md` §3.6).
pub const MAX_SHARED_PER_FRAME: usize = 4096;

/// Puts one bytes value in shared memory: the sealed memory file to pass
/// beside the frame, and the value's offset in it.
pub type Place = dyn FnMut(&Bytes) -> Result<(Arc<OwnedFd>, u64), String> + Send;

/// Maps the next shared-memory value that arrived beside the frame, given
/// its `[offset, length]`.
pub type Resolve<'a> = dyn FnMut(u64, u64) -> Result<Bytes, String> + 'a;

/// Sends bytes values of at least `threshold` bytes through shared memory.
pub struct Share {
    /// The smallest value, in bytes, that goes in shared memory.
    pub threshold: usize,
    /// Puts one value there.
    pub place: Box<Place>,
}

/// Attachments collected while encoding.
#[derive(Default)]
pub struct Attachments {
    pub parts: Vec<Bytes>,
    pub len: usize,
    /// Where large values go, when shared memory is on.
    pub share: Option<Share>,
    /// The memory files to pass beside the frame, in the order of their
    /// references in the JSON text.
    pub shared_files: Vec<Arc<OwnedFd>>,
    /// How many arrays and objects enclose what is being written now (the
    /// message object counts: an envelope starts at 1).
    pub depth: usize,
}

impl Attachments {
    /// Enters one more array or object, refusing to nest deeper than
    /// [`MAX_DEPTH`] (`docs/protocol.md` §3.2): the receiver would refuse it.
    fn enter<E: ser::Error>(cell: &RefCell<Attachments>) -> Result<(), E> {
        let mut att = cell.borrow_mut();
        att.depth += 1;
        if att.depth > MAX_DEPTH {
            return Err(E::custom(format!(
                "a value nests deeper than the protocol's limit of {MAX_DEPTH} levels of lists and maps"
            )));
        }
        Ok(())
    }

    fn leave(cell: &RefCell<Attachments>) {
        cell.borrow_mut().depth -= 1;
    }
}

impl std::fmt::Debug for Attachments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachments")
            .field("parts", &self.parts.len())
            .field("len", &self.len)
            .field("shared_files", &self.shared_files.len())
            .finish()
    }
}

/// Serializes a value as wire JSON, collecting its bytes into `att`.
pub struct Wire<'a> {
    pub value: &'a Value,
    pub att: &'a RefCell<Attachments>,
}

/// Serializes a list of values as a wire JSON array.
pub struct WireList<'a> {
    pub items: &'a [Value],
    pub att: &'a RefCell<Attachments>,
}

/// Serializes a map as a wire JSON object.
pub struct WireMap<'a> {
    pub map: &'a Map,
    pub att: &'a RefCell<Attachments>,
}

impl Serialize for WireList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Attachments::enter(self.att)?;
        let mut seq = s.serialize_seq(Some(self.items.len()))?;
        for value in self.items {
            seq.serialize_element(&Wire {
                value,
                att: self.att,
            })?;
        }
        Attachments::leave(self.att);
        seq.end()
    }
}

impl Serialize for WireMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.map.len() == 1 {
            if let Some(key) = [BYTES_KEY, SHARED_KEY]
                .into_iter()
                .find(|k| self.map.contains_key(*k))
            {
                return Err(ser::Error::custom(format!(
                    "a map whose only key is {key:?} cannot be sent: that shape is reserved for bytes"
                )));
            }
        }
        Attachments::enter(self.att)?;
        let mut m = s.serialize_map(Some(self.map.len()))?;
        for (k, value) in self.map {
            m.serialize_entry(
                k,
                &Wire {
                    value,
                    att: self.att,
                },
            )?;
        }
        Attachments::leave(self.att);
        m.end()
    }
}

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(n) => s.serialize_i64(*n),
            Value::UInt(n) => s.serialize_u64(*n),
            Value::Float(x) if x.is_finite() => s.serialize_f64(*x),
            Value::Float(x) => Err(ser::Error::custom(format!(
                "float {x} cannot be sent: JSON has no NaN or infinity"
            ))),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) => {
                let (key, offset) = {
                    let mut att = self.att.borrow_mut();
                    let room = att.shared_files.len() < MAX_SHARED_PER_FRAME;
                    let placed = match att.share.as_mut() {
                        Some(share) if b.len() >= share.threshold && room => {
                            Some((share.place)(b).map_err(ser::Error::custom)?)
                        }
                        _ => None,
                    };
                    match placed {
                        Some((fd, offset)) => {
                            att.shared_files.push(fd);
                            (SHARED_KEY, offset)
                        }
                        None => {
                            let offset = att.len as u64;
                            att.len += b.len();
                            att.parts.push(b.clone());
                            (BYTES_KEY, offset)
                        }
                    }
                };
                // The reference object and its array are two levels.
                if self.att.borrow().depth + 2 > MAX_DEPTH {
                    return Err(ser::Error::custom(format!(
                        "a bytes value nests deeper than the protocol's limit of {MAX_DEPTH} levels \
                         of lists and maps (its reference object takes two)"
                    )));
                }
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry(key, &[offset, b.len() as u64])?;
                m.end()
            }
            Value::List(items) => WireList {
                items,
                att: self.att,
            }
            .serialize(s),
            Value::Map(map) => WireMap { map, att: self.att }.serialize(s),
        }
    }
}

/// Deserializes wire JSON into a [`Value`], resolving bytes references
/// against the attachment area `blobs`.
#[derive(Clone, Copy)]
pub struct WireSeed<'a, 'r> {
    pub blobs: &'a Bytes,
    /// Maps shared-memory values; `None` when shared memory is off.
    pub shared: Option<&'a RefCell<&'r mut Resolve<'r>>>,
    /// How many arrays and objects enclose this value (0 at the top).
    pub depth: usize,
    /// Set when a number became a float: JSON writes an integer too large
    /// for 64 bits without a fraction, and serde_json reads it as a float,
    /// so the text is then checked for such integers ([`super::message`]).
    pub floats: &'a Cell<bool>,
}

impl WireSeed<'_, '_> {
    /// The seed of the values inside an array or object at this level,
    /// refusing one deeper than [`MAX_DEPTH`].
    fn inner<E: de::Error>(self) -> Result<Self, E> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(E::custom(format!(
                "the JSON text nests deeper than the protocol's limit of {MAX_DEPTH} levels of arrays and objects"
            )));
        }
        Ok(WireSeed { depth, ..self })
    }
}

impl<'de> DeserializeSeed<'de> for WireSeed<'_, '_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for WireSeed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        self.floats.set(true);
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let inner = self.inner()?;
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(inner)?;
            if map.insert(key, value).is_some() {
                return Err(de::Error::custom("duplicate key in object"));
            }
        }
        if map.len() == 1 {
            if let Some(reference) = map.get(BYTES_KEY) {
                return resolve(reference, self.blobs).map_err(de::Error::custom);
            }
            if let Some(reference) = map.get(SHARED_KEY) {
                return resolve_shared(reference, self.shared).map_err(de::Error::custom);
            }
        }
        Ok(Value::Map(map))
    }
}

fn resolve(reference: &Value, blobs: &Bytes) -> Result<Value, String> {
    let bad = || {
        format!(
            "bad bytes reference {}: want [offset, length] inside the {} attached bytes",
            reference.repr(),
            blobs.len()
        )
    };
    let Value::List(pair) = reference else {
        return Err(bad());
    };
    let [Value::Int(offset), Value::Int(len)] = pair.as_slice() else {
        return Err(bad());
    };
    let start = usize::try_from(*offset).map_err(|_| bad())?;
    let len = usize::try_from(*len).map_err(|_| bad())?;
    let end = start.checked_add(len).ok_or_else(bad)?;
    if end > blobs.len() {
        return Err(bad());
    }
    Ok(Value::Bytes(blobs.slice(start..end)))
}

fn resolve_shared(
    reference: &Value,
    shared: Option<&RefCell<&mut Resolve<'_>>>,
) -> Result<Value, String> {
    let Some(shared) = shared else {
        return Err("a shared-memory reference, but shared memory is off".into());
    };
    let pair = match reference {
        Value::List(pair) => match pair.as_slice() {
            [Value::Int(offset), Value::Int(len)] => {
                u64::try_from(*offset).ok().zip(u64::try_from(*len).ok())
            }
            _ => None,
        },
        _ => None,
    };
    let Some((offset, len)) = pair else {
        return Err(format!(
            "bad shared-memory reference {}: want [offset, length]",
            reference.repr()
        ));
    };
    (shared.borrow_mut())(offset, len).map(Value::Bytes)
}

/// A value as wire JSON text plus its attachment area (the `{"$bytes":[offset,
/// length]}` form of `docs/protocol.md`), outside any message: for bindings
/// that hand values to other languages.
///
/// # Errors
///
/// When the value cannot be sent (NaN, a reserved `$bytes` map).
pub fn encode_value(value: &Value) -> Result<(Vec<u8>, Vec<u8>), String> {
    let att = RefCell::new(Attachments::default());
    let json = serde_json::to_vec(&Wire { value, att: &att }).map_err(|e| e.to_string())?;
    let att = att.into_inner();
    let mut area = Vec::with_capacity(att.len);
    for part in &att.parts {
        area.extend_from_slice(part);
    }
    Ok((json, area))
}

/// The inverse of [`encode_value`]: wire JSON text and its attachment area
/// back into a value.
///
/// # Errors
///
/// When the text is not JSON, or a bytes reference points outside `area`.
pub fn decode_value(json: &[u8], area: &Bytes) -> Result<Value, String> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let floats = Cell::new(false);
    let value = DeserializeSeed::deserialize(
        WireSeed {
            blobs: area,
            shared: None,
            depth: 0,
            floats: &floats,
        },
        &mut de,
    )
    .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    if floats.get() {
        super::number::check_integers(json)?;
    }
    Ok(value)
}
