//! Large values through shared memory (`Host::shared_memory`): sealed
//! memory files passed beside the frames, mapped without a copy, checked
//! before they are mapped.

mod common;

use common::*;
use tether::{Error, Peer, Value};

const MIB: usize = 1 << 20;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[test]
fn large_values_travel_in_shared_memory_both_ways() {
    let host = host()
        .shared_memory(MIB)
        .function("same(data)", |v: Value| v)
        .try_function("check(data)", |data: Value| -> Result<u64, Error> {
            let Value::Bytes(b) = data else {
                return Err(Error::Config("not bytes".into()));
            };
            assert_eq!(&b[..], &pattern(b.len())[..]);
            Ok(b.len() as u64)
        })
        .function("produce(n)", |n: u64| {
            Value::Bytes(pattern(usize::try_from(n).unwrap()).into())
        })
        .try_function("ask(n)", |n: u64| -> Result<u64, Error> {
            let script = Peer::current().expect("called by the script");
            let data = Value::Bytes(pattern(usize::try_from(n).unwrap()).into());
            script.call("length", (data,))
        });
    let outcome = run_ok_with(
        &host,
        r#"
import os, tether
from tether import host

def pattern(n):
    return bytes(i % 251 for i in range(251)) * (n // 251) + bytes(i % 251 for i in range(n % 251))

@tether.export
def length(data):
    assert type(data) is memoryview and data.readonly, type(data)
    assert data == pattern(len(data))
    return len(data)

assert os.environ.get("TETHER_SHM_FD")
big = pattern(3 << 20)
back = host.same(big)
assert type(back) is memoryview and back.readonly, type(back)
assert back == big
assert host.check(big) == len(big)
made = host.produce(2 << 20)
assert type(made) is memoryview and made == pattern(2 << 20)
# Below the threshold: in the frame, as bytes.
small = host.same(b"abc")
assert type(small) is bytes and small == b"abc"
assert host.ask(5 << 20) == 5 << 20
# A bytearray and a memoryview are sent too.
assert host.same(bytearray(big)) == big
assert host.same(memoryview(big)[7:]) == big[7:]
print("ok")
"#,
    );
    assert_eq!(stdout(&outcome).trim(), "ok");
}

#[test]
fn without_the_option_the_script_gets_no_socket() {
    let outcome = run_ok(
        r#"
import os
from tether import host
assert "TETHER_SHM_FD" not in os.environ
assert type(host.echo(b"x" * (3 << 20))) in (bytes, memoryview)
print(sorted(int(f) for f in os.listdir("/proc/self/fd") if int(f) > 2))
"#,
    );
    // The two pipe ends (and the listing's own descriptor) only.
    let fds: Vec<i64> = stdout(&outcome)
        .trim()
        .trim_matches(['[', ']'])
        .split(", ")
        .map(|f| f.parse().unwrap())
        .collect();
    assert!(fds.len() <= 3, "{fds:?}");
}

/// Writes a hand-made frame that refers to a shared value, after passing
/// `fd_code` (Python code that leaves a descriptor in `fd`, or None).
fn hostile(fd_code: &str) -> Error {
    let host = host().shared_memory(MIB);
    let code = format!(
        r#"
import os, socket, array, struct, json
from tether import host
host.echo(1)
side = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=int(os.environ["TETHER_SHM_FD"]))
{fd_code}
if fd is not None:
    side.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
text = json.dumps({{"jsonrpc": "2.0", "id": 99, "method": "echo", "params": [{{"$shm": [0, 4096]}}]}}).encode()
os.write(int(os.environ["TETHER_WRITE_FD"]), struct.pack("<II", len(text) + 4, len(text)) + text)
import time
time.sleep(10)
"#
    );
    run_with(&host, &code).expect_err("the host must refuse the frame")
}

#[test]
fn a_reference_without_a_descriptor_is_a_protocol_error() {
    let err = hostile("fd = None");
    assert!(
        err.to_string().contains("descriptor was not passed"),
        "{err}"
    );
}

#[test]
fn an_unsealed_memory_file_is_refused() {
    let err = hostile("fd = os.memfd_create('x', os.MFD_ALLOW_SEALING)\nos.write(fd, b'a' * 8192)");
    assert!(err.to_string().contains("not sealed"), "{err}");
}

#[test]
fn a_descriptor_that_is_no_memory_file_is_refused() {
    let err = hostile("fd, _w = os.pipe()");
    assert!(err.to_string().contains("not a memory file"), "{err}");
}
