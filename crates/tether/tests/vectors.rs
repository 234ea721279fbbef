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

#[test]
fn the_hello_answer_and_the_ready_notice_are_the_golden_frames() {
    use tether::protocol::handshake::{self, Described, Welcome};
    use tether::protocol::message::{Id, Params};
    let vectors = load("native.json");
    let find = |name: &str| {
        let v = vectors
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("vector {name}"));
        hex(v["frame_hex"].as_str().unwrap())
    };
    let welcome = Welcome {
        protocol: tether::PROTOCOL_VERSION,
        version: "0.1.0".into(),
        max_frame: 64 * 1024 * 1024,
        logs: false,
        shared_memory: None,
        functions: vec![
            Described {
                name: "add".into(),
                params: Some(vec!["a".into(), "b".into()]),
                signature: "add(a: int, b: int) -> int".into(),
                annotations: vec!["int".into(), "int".into()],
                returns: "int".into(),
                doc: Some("Adds.".into()),
            },
            Described {
                name: "count".into(),
                params: None,
                signature: "count(*args)".into(),
                annotations: vec![],
                returns: "Any".into(),
                doc: None,
            },
        ],
        types: vec![(
            "Point".into(),
            vec![("x".into(), "float".into()), ("y".into(), "float".into())],
        )],
        max_call_depth: 128,
    };
    let encoded = handshake::welcome(Id::Int(0), &welcome)
        .encode(1 << 20)
        .unwrap();
    assert_eq!(encoded.to_vec(), find("welcome"));

    let ready = find("ready");
    let mut reader = FrameReader::new(1 << 20);
    reader.feed(&ready);
    let Message::Call {
        id: None,
        method,
        params,
        ..
    } = Message::decode(&reader.next_frame().unwrap().unwrap()).unwrap()
    else {
        panic!("rpc.ready is a notification")
    };
    assert_eq!(method, tether::protocol::method::READY);

    // A client that handles SIGURG says so in its hello (§5.4); one with a
    // smaller frame limit than the host's announces it (§4.1, protocol 5).
    for (name, interrupt, max_frame) in [
        ("hello", false, None),
        ("hello-interrupt", true, None),
        ("hello-max-frame", false, Some(1 << 20)),
    ] {
        let mut reader = FrameReader::new(1 << 20);
        reader.feed(&find(name));
        let msg = Message::decode(&reader.next_frame().unwrap().unwrap()).unwrap();
        let hello = handshake::hello(msg).unwrap();
        assert_eq!(hello.protocol, i64::from(tether::PROTOCOL_VERSION));
        assert_eq!(hello.interrupt, interrupt, "{name}");
        assert_eq!(hello.max_frame, max_frame, "{name}");
    }
    assert_eq!(handshake::ready(&params).unwrap(), ["describe", "square"]);
    // rpc.ready without params says the script serves, naming no exports (§4.2).
    assert!(handshake::ready(&Params::Positional(vec![]))
        .unwrap()
        .is_empty());
    assert!(handshake::ready(&Params::Positional(vec![Value::Int(1)])).is_err());
}

#[test]
fn the_client_reserves_the_same_method_names() {
    use tether::protocol::method;
    let client = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python/tether/_framing.py"),
    )
    .unwrap();
    for name in method::ALL {
        assert!(
            client.contains(&format!("\"{name}\"")),
            "_framing.py lacks {name}"
        );
        assert!(method::is_reserved(name));
    }
    assert_eq!(client.matches("\"rpc.").count(), method::ALL.len());
    assert!(!method::is_reserved("add"));
}
