//! Golden frames shared with the Python client's tests (`tests/vectors/`):
//! the Rust side must decode each frame and encode it back to the same bytes.

use std::path::Path;

use tether::protocol::classic;
use tether::protocol::frame::FrameReader;
use tether::protocol::message::Message;
use tether::{Bytes, Value};

fn load(name: &str) -> Vec<serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn native_vectors_decode_and_encode_to_the_same_bytes() {
    for v in load("native.json") {
        let name = v["name"].as_str().unwrap();
        let frame = hex(v["frame_hex"].as_str().unwrap());
        let mut reader = FrameReader::new(1 << 20);
        reader.feed(&frame);
        let body = reader.next_frame().unwrap().expect("one whole frame");
        assert_eq!(reader.buffered(), 0, "{name}");
        let msg = Message::decode(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(msg.encode(1 << 20).unwrap().to_vec(), frame, "{name}");
        if name == "result-with-bytes" {
            let Message::Reply {
                outcome: Ok(Value::List(items)),
                ..
            } = msg
            else {
                panic!("{msg:?}")
            };
            assert_eq!(items[0], Value::Bytes(Bytes::from_static(b"ab")));
            assert_eq!(items[2], Value::Bytes(Bytes::new()));
        }
    }
}

#[test]
fn classic_vectors_match_the_encoder() {
    for v in load("classic.json") {
        let frame = hex(v["frame_hex"].as_str().unwrap());
        let bytes = match (v.get("name_field"), v.get("result")) {
            (Some(name), _) => classic::encode_request(
                name.as_str().unwrap().as_bytes(),
                v["arg"].as_str().unwrap().as_bytes(),
                1024,
            ),
            (None, Some(result)) => {
                classic::encode_response(result.as_str().unwrap().as_bytes(), 1024)
            }
            _ => panic!("bad vector {v}"),
        }
        .unwrap();
        assert_eq!(bytes, frame);
    }
}
