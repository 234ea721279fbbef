//! Property tests: every value round-trips through encoding and decoding
//! unchanged, and no byte string makes a decoder panic.

use proptest::prelude::*;
use tether::protocol::frame::FrameReader;
use tether::protocol::message::{Id, Message, Params};
use tether::{Bytes, Map, Value};

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::UInt),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(Value::Float),
        ".*".prop_map(Value::Str),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| Value::Bytes(Bytes::from(b))),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            proptest::collection::vec((".*", inner), 0..8)
                .prop_map(|kv| Value::Map(kv.into_iter().collect::<Map>()))
                .prop_filter(
                    "reserved shape",
                    |v| !matches!(v, Value::Map(m) if m.len() == 1 && m.contains_key("$bytes"))
                ),
        ]
    })
}

proptest! {
    #[test]
    fn messages_round_trip(v in value(), id in any::<i64>(), method in "[a-z_]{1,12}", within in proptest::option::of(any::<i64>())) {
        for msg in [
            Message::Reply { id: Some(Id::Int(id)), outcome: Ok(v.clone()) },
            Message::Call { id: Some(Id::Str(method.clone())), method: method.clone(), params: Params::Positional(vec![v.clone()]), within },
        ] {
            let wire = Bytes::from(msg.encode(u32::MAX).unwrap().to_vec());
            let mut reader = FrameReader::new(u32::MAX);
            reader.feed(&wire);
            let body = reader.next_frame().unwrap().unwrap();
            prop_assert_eq!(Message::decode(&body).unwrap(), msg);
        }
    }

    #[test]
    fn typed_values_round_trip(v in value()) {
        let back: Value = tether::from_value(tether::to_value(&v).unwrap()).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn no_bytes_make_the_decoders_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::decode(&Bytes::from(data.clone()));
        let mut reader = FrameReader::new(256);
        reader.feed(&data);
        while let Ok(Some(body)) = reader.next_frame() {
            let _ = Message::decode(&body);
        }
        let _ = reader.finish();
    }
}
