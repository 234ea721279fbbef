//! The outer shape of a `Serialize` value, without converting it: whether a
//! call's arguments were a tuple (positional arguments by intent) or a
//! sequence or struct that got spread into arguments, perhaps by mistake.

use serde::ser::{self, Impossible, Serialize};

/// What kind of value stands at the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `()`, a unit struct or `None`.
    Unit,
    /// A tuple or tuple struct.
    Tuple,
    /// A sequence (`Vec`, slice, set, `Value::List`).
    Seq,
    /// A struct (its fields become keyword arguments).
    Struct(&'static str),
    /// A map (`HashMap`, `Value::Map`).
    Map,
    /// Anything else: one value.
    Single,
}

/// The shape of `value`'s outermost layer (newtypes and `Some` are looked
/// through).
pub(crate) fn shape<T: Serialize + ?Sized>(value: &T) -> Shape {
    match value.serialize(Probe) {
        Ok(()) => Shape::Single,
        Err(Found(shape)) => shape,
    }
}

struct Probe;

/// The probe stops at the first thing the value serializes, with its shape.
#[derive(Debug)]
struct Found(Shape);

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for Found {}

impl ser::Error for Found {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Found(Shape::Single)
    }
}

macro_rules! single {
    ($($name:ident($($t:ty),*)),* $(,)?) => {
        $(fn $name(self, $(_: $t),*) -> Result<(), Found> { Ok(()) })*
    };
}

impl ser::Serializer for Probe {
    type Ok = ();
    type Error = Found;
    type SerializeSeq = Impossible<(), Found>;
    type SerializeTuple = Impossible<(), Found>;
    type SerializeTupleStruct = Impossible<(), Found>;
    type SerializeTupleVariant = Impossible<(), Found>;
    type SerializeMap = Impossible<(), Found>;
    type SerializeStruct = Impossible<(), Found>;
    type SerializeStructVariant = Impossible<(), Found>;

    single!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_none(self) -> Result<(), Found> {
        Err(Found(Shape::Unit))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Found> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Found> {
        Err(Found(Shape::Unit))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Found> {
        Err(Found(Shape::Unit))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Found> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Found> {
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Found> {
        Err(Found(Shape::Seq))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Found> {
        Err(Found(Shape::Tuple))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Found> {
        Err(Found(Shape::Tuple))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Found> {
        Err(Found(Shape::Single))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Found> {
        Err(Found(Shape::Map))
    }
    fn serialize_struct(
        self,
        name: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Found> {
        Err(Found(Shape::Struct(name)))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Found> {
        Err(Found(Shape::Single))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Map, Value};

    #[derive(serde::Serialize)]
    struct Row {
        id: i64,
    }

    #[derive(serde::Serialize)]
    struct Wrapped(Vec<i64>);

    #[test]
    fn tells_tuples_from_spread_values() {
        assert_eq!(shape(&()), Shape::Unit);
        assert_eq!(shape(&(1, "a")), Shape::Tuple);
        assert_eq!(shape(&(vec![1, 2],)), Shape::Tuple);
        assert_eq!(
            shape(&[1, 2, 3]),
            Shape::Tuple,
            "serde writes arrays as tuples"
        );
        assert_eq!(shape(&vec![1, 2, 3]), Shape::Seq);
        assert_eq!(shape(&[1, 2][..]), Shape::Seq);
        assert_eq!(shape(&Wrapped(vec![1])), Shape::Seq);
        assert_eq!(shape(&Row { id: 1 }), Shape::Struct("Row"));
        assert_eq!(shape(&Map::new()), Shape::Map);
        assert_eq!(shape(&Value::List(vec![])), Shape::Seq);
        assert_eq!(shape(&7), Shape::Single);
        assert_eq!(shape(&Some("x")), Shape::Single);
        assert_eq!(shape(&None::<i64>), Shape::Unit);
    }
}
