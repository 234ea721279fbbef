//! What `docs/protocol.md` promises a client author, checked against the host with a
//! client written from the spec alone: a few lines of Python over the two pipes, without
//! the tether package. Each test names the section it checks.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tether::{Error, Host, Value};

/// The raw client: framing by hand, `json` for the text, nothing of tether.
const RAW: &str = r#"
import json, os, struct, sys
r = int(os.environ["TETHER_READ_FD"])
w = int(os.environ["TETHER_WRITE_FD"])
os.set_blocking(r, True)
os.set_blocking(w, True)

def send_text(text):
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    os.write(w, struct.pack("<II", len(data) + 4, len(data)) + data)

def send(msg):
    send_text(json.dumps(msg, separators=(",", ":")))

def read_exact(n):
    out = b""
    while len(out) < n:
        chunk = os.read(r, n - len(out))
        if not chunk:
            return None
        out += chunk
    return out

def recv():
    head = read_exact(4)
    if head is None:
        return None
    body = read_exact(struct.unpack("<I", head)[0])
    (n,) = struct.unpack_from("<I", body)
    return json.loads(body[4:4 + n])

def hello(msg_id=0, **extra):
    params = {"protocol": 5, "version": "raw"}
    params.update(extra)
    send({"jsonrpc": "2.0", "id": msg_id, "method": "rpc.hello", "params": params})
    return recv()

def out(value):
    print(json.dumps(value), flush=True)
"#;

fn spec_host() -> Host {
    host()
        .function("echo_value(value)", |v: Value| v)
        .function("text(n)", |n: usize| "x".repeat(n))
        .function("nest(n)", |n: usize| {
            (0..n).fold(Value::Int(7), |inner, _| Value::List(vec![inner]))
        })
}

/// Runs the raw client's `code` and returns the JSON lines it printed.
fn raw(host: &Host, code: &str) -> Vec<serde_json::Value> {
    let outcome = run_with(host, &format!("{RAW}\n{code}")).expect("run");
    assert_ok(&outcome);
    stdout(&outcome)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn error_code(answer: &serde_json::Value) -> i64 {
    answer["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {answer}"))
}

#[test]
fn sound_frames_with_unreadable_messages_are_answered_and_serving_goes_on() {
    // §7.1: a sound frame whose message cannot be read is answered, with its id
    // when one can be read, and the session goes on.
    let answers = raw(
        &spec_host(),
        r#"
out(hello())
deep = "[" * 150 + "7" + "]" * 150
send_text('{"jsonrpc":"2.0","id":1,"method":"echo_value","params":[%s]}' % deep)
send_text('{"jsonrpc":"2.0","id":2,"method":"echo_value","params":[1e400]}')
send_text('{"jsonrpc":"2.0","id":3,"method":"echo_value","params":[18446744073709551616]}')
send_text('{"jsonrpc":"2.0","id":4,"method":"echo_value","params":["\\ud800"]}')
send_text('{"jsonrpc":"2.0","id":5,"method":"echo_value","params":[5],"extra":1}')
send_text('{"a":')
send_text(' {"jsonrpc":"2.0","id":6,"method":"echo_value","params":[18446744073709551615]}\n')
send_text('{"jsonrpc":"2.0","method":"echo_value","params":[1e400]}')
send({"jsonrpc": "2.0", "id": 7, "method": "echo_value", "params": [-9223372036854775808]})
for _ in range(8):
    out(recv())
# Had the notification been answered, its answer would come before this one.
send({"jsonrpc": "2.0", "id": 8, "method": "echo_value", "params": [8]})
out(recv())
"#,
    );
    assert_eq!(answers[0]["result"]["protocol"], 5, "{}", answers[0]);
    let by_id = |id: serde_json::Value| {
        answers[1..]
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no answer with id {id}: {answers:?}"))
    };
    let deep = by_id(1.into());
    assert_eq!(error_code(deep), -32700, "{deep}");
    assert!(
        deep["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit of 100"),
        "{deep}"
    );
    assert_eq!(deep["error"]["data"]["kind"], "ParseError");
    assert_eq!(error_code(by_id(2.into())), -32700);
    let big = by_id(3.into());
    assert_eq!(error_code(big), -32700);
    assert!(
        big["error"]["message"]
            .as_str()
            .unwrap()
            .contains("18446744073709551616"),
        "{big}"
    );
    assert_eq!(error_code(by_id(4.into())), -32700);
    let extra = by_id(5.into());
    assert_eq!(error_code(extra), -32600, "{extra}");
    assert_eq!(extra["error"]["data"]["kind"], "InvalidRequest");
    let null = by_id(serde_json::Value::Null);
    assert_eq!(error_code(null), -32700, "{null}");
    assert_eq!(null["error"]["data"]["kind"], "ParseError");
    assert_eq!(by_id(6.into())["result"], 18446744073709551615u64);
    assert_eq!(by_id(7.into())["result"], i64::MIN);
    assert_eq!(answers.len(), 10, "{answers:?}");
    assert_eq!(
        answers[9]["id"], 8,
        "the notification got an answer: {answers:?}"
    );
}

#[test]
fn the_handshake_and_the_reserved_methods_behave_as_specified() {
    // §4.1: any id; a second hello is refused and the session goes on. §4.2 and §5.1:
    // rpc.ready without params, twice, or as a request; a reserved notification sent as
    // a request is answered with null; a cancel of an unknown call does nothing; `within`
    // on a notification has no effect.
    let answers = raw(
        &spec_host().max_depth(9),
        r#"
out(hello(msg_id="first"))
send({"jsonrpc": "2.0", "id": 1, "method": "rpc.hello", "params": {"protocol": 5}})
out(recv())
send({"jsonrpc": "2.0", "method": "rpc.ready"})
send({"jsonrpc": "2.0", "id": 2, "method": "rpc.ready", "params": {"exports": []}})
out(recv())
send({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": 12345}})
send({"jsonrpc": "2.0", "id": 3, "method": "rpc.cancel", "params": {"id": 12346}})
out(recv())
send({"jsonrpc": "2.0", "method": "echo_value", "params": [1], "within": 77})
send({"jsonrpc": "2.0", "id": 4, "method": "echo_value", "params": [4], "within": 77})
out(recv())
"#,
    );
    let welcome = &answers[0];
    assert_eq!(welcome["id"], "first", "{welcome}");
    assert_eq!(welcome["result"]["max_depth"], 100, "{welcome}");
    assert_eq!(welcome["result"]["max_call_depth"], 9, "{welcome}");
    assert_eq!(answers[1]["id"], 1);
    assert_eq!(error_code(&answers[1]), -32600);
    assert!(answers[1]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("handshake is done"));
    assert_eq!(
        answers[2],
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "result": null})
    );
    assert_eq!(
        answers[3],
        serde_json::json!({"jsonrpc": "2.0", "id": 3, "result": null})
    );
    assert_eq!(answers[4]["id"], 4);
    assert_eq!(answers[4]["result"], 4);
}

#[test]
fn a_malformed_hello_is_answered_before_the_run_ends() {
    // §4.1: the error answers the hello's id; the run then ends as a violation.
    let err = run_with(
        &spec_host(),
        &format!(
            "{RAW}\nsend({{'jsonrpc': '2.0', 'id': 0, 'method': 'rpc.hello', 'params': {{'version': 'x'}}}})\nsys.stderr.write(json.dumps(recv()) + '\\n')\nrecv()\n"
        ),
    )
    .unwrap_err();
    let Error::Protocol { detail, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(detail.contains("not a handshake"), "{detail}");
    assert!(
        detail.contains("-32602"),
        "the script saw the answer: {detail}"
    );
}

#[test]
fn an_error_with_a_null_id_from_the_script_is_not_a_violation() {
    // §7.1: the script could not read a message of the host's; the host logs it.
    let answers = raw(
        &spec_host(),
        r#"
hello()
send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "bad", "data": {"kind": "ParseError"}}})
send({"jsonrpc": "2.0", "id": 1, "method": "echo_value", "params": ["still served"]})
out(recv())
"#,
    );
    assert_eq!(answers[0]["result"], "still served");
}

#[test]
fn the_host_sends_no_frame_larger_than_the_client_announced() {
    // §2 and §4.1: the hello's max_frame bounds what the host sends.
    let answers = raw(
        &spec_host(),
        r#"
hello(max_frame=4096)
send({"jsonrpc": "2.0", "id": 1, "method": "text", "params": [10000]})
out(recv())
send({"jsonrpc": "2.0", "id": 2, "method": "text", "params": [100]})
out(recv())
"#,
    );
    assert_eq!(error_code(&answers[0]), -32002, "{}", answers[0]);
    assert_eq!(answers[0]["error"]["data"]["kind"], "TooLarge");
    assert_eq!(answers[1]["result"].as_str().unwrap().len(), 100);
    let err = run_with(
        &spec_host(),
        &format!("{RAW}\nsys.stderr.write(json.dumps(hello(max_frame=100)) + '\\n')\nrecv()\n"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("at least 4096"), "{err}");
}

#[test]
fn the_host_refuses_to_send_a_value_nested_deeper_than_the_limit() {
    // §3.2: 100 levels in all, the message object being the first.
    let answers = raw(
        &spec_host(),
        r#"
hello()
send({"jsonrpc": "2.0", "id": 1, "method": "nest", "params": [99]})
out(recv())
send({"jsonrpc": "2.0", "id": 2, "method": "nest", "params": [100]})
out(recv())
"#,
    );
    let mut value = &answers[0]["result"];
    let mut levels = 1; // the message object
    while let Some(inner) = value.as_array() {
        levels += 1;
        value = &inner[0];
    }
    assert_eq!(levels, 100);
    assert_eq!(error_code(&answers[1]), -32603, "{}", answers[1]);
    assert_eq!(answers[1]["error"]["data"]["kind"], "BadResult");
}

#[test]
fn closing_the_write_end_brings_end_of_file_back_and_is_a_clean_end() {
    // §7.2: the host closes its end too and waits for the exit, past any grace.
    let started = Instant::now();
    let answers = raw(
        &spec_host().exit_grace(Duration::from_millis(200)),
        r#"
import time
hello()
os.close(w)
out(recv())
time.sleep(1)
out("exiting")
"#,
    );
    assert_eq!(answers, [serde_json::Value::Null, "exiting".into()]);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[test]
fn a_script_that_closed_its_channel_still_ends_at_its_deadline() {
    let err = run_with(
        &spec_host().deadline(Duration::from_secs(1)),
        &format!("{RAW}\nimport time\nos.close(w)\nos.close(r)\ntime.sleep(600)\n"),
    )
    .unwrap_err();
    let Error::Limit { detail: what, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(
        what.contains("deadline") && what.contains("closed its channel"),
        "{what}"
    );
}

#[test]
fn a_host_call_nested_too_deep_reaches_the_script_as_a_limit() {
    // §5 "Nesting" and §3.4: -32003, kind Limit.
    let outcome = run_ok_with(
        &host().max_depth(2),
        r#"
import tether
from tether import host

seen = []

@tether.export
def again(v):
    try:
        return host.map_with("again", [v])
    except tether.RemoteError as e:
        seen.append("%d %s" % (e.code, e.kind))

tether.ready()
host.map_with("again", [1])
print(seen[0])
"#,
    );
    assert_eq!(stdout(&outcome).trim(), "-32003 Limit");
}

#[test]
fn the_python_client_and_the_host_agree_on_the_nesting_limit() {
    // §3.2: what the client lets through, the host reads; one level more, the
    // client refuses before sending.
    let outcome = run_ok_with(
        &spec_host(),
        r#"
import tether
from tether import host

def nest(n):
    value = 7
    for _ in range(n):
        value = [value]
    return value

assert host.echo_value(nest(98)) == nest(98)
try:
    host.echo_value(nest(99))
except tether.CannotSend as e:
    print("refused:", e)
"#,
    );
    assert!(
        stdout(&outcome).contains("refused: a value nested deeper"),
        "{}",
        stdout(&outcome)
    );
}
