//! The native protocol end to end: real Python scripts calling a Rust host.

mod common;

use common::*;
use tether::{Host, Script, Stdio, Value};

#[test]
fn foo_and_add_answer_like_the_seed() {
    let out = run_ok(
        r#"
from tether import host
assert host.foo(100) == "Foo was called with arg 100", host.foo(100)
assert host.foo("x") == "Foo was called with arg x"
assert host.foo([1, "a", None, 2.5]) == "Foo was called with arg [1, 'a', None, 2.5]"
assert host.add(2, 3) == 5
print("ok")
"#,
    );
    assert_eq!(stdout(&out), "ok\n");
    assert_eq!(out.calls(), 4);
}

#[test]
fn unknown_method_names_it_and_the_host_functions() {
    run_ok(
        r#"
import tether
from tether import host
try:
    host.boo(1)
except tether.MethodNotFound as e:
    assert isinstance(e, tether.RemoteError)
    assert '"boo"' in str(e), str(e)
    assert "add, bar, boom, concat, echo, fail, foo, make, map_with, parse, sleep" in str(e), str(e)
    assert e.data["available"][0] == "add"
else:
    raise SystemExit("no exception")
assert sorted(dir(host))[:3] == ["add", "bar", "boom"], dir(host)
"#,
    );
}

#[test]
fn handler_errors_carry_message_and_kind() {
    run_ok(
        r#"
import tether
from tether import host
try:
    host.fail("disk on fire")
except tether.RemoteError as e:
    assert str(e) == "disk on fire" and e.kind == "DemoFailure", repr(e)
try:
    host.parse("12x")
except tether.RemoteError as e:
    assert e.kind == "ParseIntError" and "invalid digit" in str(e), repr(e)
assert host.parse(" 42 ") == 42
"#,
    );
}

#[test]
fn a_panicking_handler_fails_only_that_call() {
    run_ok(
        r#"
import tether
from tether import host
for _ in range(3):
    try:
        host.boom()
    except tether.RemoteError as e:
        assert e.kind == "panic" and "kaboom" in str(e), repr(e)
    else:
        raise SystemExit("no exception")
assert host.add(1, 1) == 2
"#,
    );
}

#[test]
fn wrong_arguments_give_invalid_params_naming_the_function() {
    run_ok(
        r#"
import tether
from tether import host
# Types are checked by the host, which names the function and what it expects.
try:
    host.add(1, "x")
except tether.InvalidParams as e:
    assert str(e) == 'add() argument "b": expected int, got str "x"; expects add(a: int, b: int) -> int', str(e)
else:
    raise SystemExit("no exception")
# Count and names are checked in Python, with Python's own messages.
def add(a, b):
    pass
for args, kwargs in [((1,), {}), ((1, 2, 3), {}), ((), {"a": 1, "c": 2}), ((1,), {"a": 2})]:
    try:
        add(*args, **kwargs)
    except TypeError as local:
        want = str(local)
    try:
        host.add(*args, **kwargs)
    except TypeError as e:
        assert str(e) == want, (str(e), want)
    else:
        raise SystemExit("no exception for %r %r" % (args, kwargs))
assert host.add(a=1, b=2) == 3
assert host.add(1, b=2) == 3
assert host.concat(b="y", a="x") == "xy"
# The host checks the count too, for clients that do not.
try:
    tether._connection.connection().call("parse", (), {})
except tether.InvalidParams as e:
    assert "missing required argument" in str(e), str(e)
"#,
    );
}

#[test]
fn bytes_round_trip_raw() {
    run_ok(
        r#"
from tether import host
blob = bytes(range(256)) * 1000
assert host.echo(blob) == blob
assert host.echo(b"") == b""
assert host.echo(bytearray(b"abc")) == b"abc"
assert host.echo(memoryview(b"xyz")) == b"xyz"
nested = {"a": [b"1", {"b": b"\x00\xff"}], "n": 1, "s": "t", "$bytes": 2}
assert host.echo(nested) == nested, host.echo(nested)
assert type(host.echo(b"x")) is bytes
assert host.make(3) == b"xxx"
"#,
    );
}

#[test]
fn unicode_and_all_json_types_round_trip() {
    run_ok(
        r#"
from tether import host
values = ["héllo wörld ✓ 日本語 🎉", "", "\x00\n\t\"'\\", 0, -1, 2**63 - 1, -2**63, 2**64 - 1,
          1.5, -0.25, 1e300, True, False, None, [], {}, [1, [2, [3]]], {"ключ": {"x": [None]}}]
for v in values:
    got = host.echo(v)
    assert got == v and type(got) is type(v), (v, got)
assert host.echo((1, 2)) == [1, 2]
assert host.concat("日本", "語") == "日本語"
"#,
    );
}

#[test]
fn values_that_cannot_travel_are_refused_before_sending() {
    run_ok(
        r#"
from tether import host
for bad, exc in [(float("nan"), ValueError), (2**64, OverflowError), ({1: 2}, TypeError),
                 ({"$bytes": [0, 1]}, ValueError), (object(), TypeError), ("\ud800", ValueError)]:
    try:
        host.echo(bad)
    except exc:
        pass
    else:
        raise SystemExit("sent %r" % (bad,))
assert host.echo(1) == 1
"#,
    );
}

#[test]
fn frame_limit_is_enforced_on_both_sides() {
    let host = host().max_frame_size(1 << 20);
    let out = run_with(
        &host,
        r#"
import tether
from tether import host, _framing
limit = 1 << 20
# The request for echo(blob) is the larger of request and reply: size it to the limit.
def overhead(n):
    return len(_framing.encode(_framing.request(1, "echo", [b"u" * n]), 1 << 30)[0]) - 4
just_under = b"u" * (limit - overhead(limit - overhead(0)))
assert host.echo(just_under) == just_under
try:
    host.echo(just_under + b"!")
except tether.FrameTooLarge as e:
    assert "exceeds the frame limit" in str(e), str(e)
else:
    raise SystemExit("over-limit call was sent")
try:
    host.make(limit)
except tether.RemoteError as e:
    assert e.kind == "TooLarge", repr(e)
else:
    raise SystemExit("over-limit result was sent")
assert host.add(1, 2) == 3
print("ok")
"#,
    )
    .unwrap();
    assert_ok(&out);
}

#[test]
fn script_args_env_cwd_and_a_path_with_spaces_and_quotes() {
    let path = script_named(
        "my 'odd' \"script\".py",
        r#"
import os, sys
from tether import host
assert sys.argv[1:] == ["a b", "c'd"], sys.argv
assert os.environ["MODE"] == "fast"
assert "HOME_REMOVED" not in os.environ
assert os.environ["PYTHONUNBUFFERED"] == "1"
print(os.getcwd())
assert host.add(1, 2) == 3
"#,
    );
    let cwd = temp_dir("cwd").canonicalize().unwrap();
    let out = host()
        .run(
            Script::new(&path)
                .args(["a b", "c'd"])
                .env("MODE", "fast")
                .env("HOME_REMOVED", "x")
                .env_remove("HOME_REMOVED")
                .current_dir(&cwd)
                .stdout(Stdio::Capture)
                .stderr(Stdio::Capture),
        )
        .unwrap();
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), cwd.to_str().unwrap());
}

#[test]
fn the_child_sees_only_stdio_and_its_two_descriptors() {
    // A descriptor the host holds without close-on-exec, as if inherited
    // from whatever started it: it must not reach the script.
    let leaked = std::fs::File::open("/dev/null").unwrap();
    rustix::io::fcntl_setfd(&leaked, rustix::io::FdFlags::empty()).unwrap();
    let out = run_ok(
        r#"
import os
fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
want = sorted([0, 1, 2, int(os.environ["TETHER_READ_FD"]), int(os.environ["TETHER_WRITE_FD"])])
# listdir itself holds one descriptor while it runs; it is closed by now.
extra = [fd for fd in fds if fd not in want]
for fd in extra:
    try:
        os.fstat(fd)
    except OSError:
        continue
    raise SystemExit("unexpected descriptor %d -> %s" % (fd, os.readlink("/proc/self/fd/%d" % fd)))
print(len(want))
"#,
    );
    assert_eq!(stdout(&out).trim(), "5");
    drop(leaked);
}

#[test]
fn captured_output_never_deadlocks() {
    let out = run_ok(
        r#"
import sys
from tether import host
chunk = "x" * 1023 + "\n"
for i in range(4096):
    sys.stdout.write(chunk)
    sys.stderr.write(chunk)
    if i % 512 == 0:
        assert host.add(i, 1) == i + 1
"#,
    );
    assert_eq!(out.stdout().unwrap().len(), 4096 * 1024);
    assert_eq!(out.stderr().unwrap().len(), 4096 * 1024);
}

#[test]
fn null_stdio_and_threads_share_one_channel() {
    let out = host()
        .run(
            Script::new(script(
                r#"
import threading
from tether import host
errors = []
def work(k):
    for i in range(300):
        if host.add(k, i) != k + i:
            errors.append((k, i))
ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("hidden")
raise SystemExit(1 if errors else 0)
"#,
            ))
            .stdin(Stdio::Null)
            .stdout(Stdio::Null),
        )
        .unwrap();
    assert!(out.success(), "{}", out.status());
    assert_eq!(out.stdout(), None);
    assert_eq!(out.calls(), 1200);
}

#[test]
fn a_script_that_never_imports_tether_runs_normally() {
    let out = run_with(&host(), "print('plain')").unwrap();
    assert_ok(&out);
    assert_eq!(stdout(&out), "plain\n");
    assert_eq!(out.calls(), 0);
}

#[test]
fn version_mismatch_is_reported_on_both_sides() {
    let err = run_with(
        &host(),
        r#"
import tether, tether._connection as c
c.PROTOCOL_VERSION = 99
try:
    tether.host.add(1, 2)
except tether.VersionMismatch as e:
    print("client:", e)
    raise SystemExit(3)
"#,
    )
    .unwrap_err();
    match err {
        tether::Error::VersionMismatch { host, client, .. } => {
            assert_eq!((host, client), (tether::PROTOCOL_VERSION, 99))
        }
        other => panic!("{other}"),
    }
}

#[test]
fn stdin_cannot_be_captured_and_bad_signatures_are_config_errors() {
    let err = host()
        .run(Script::new(script("pass")).stdin(Stdio::Capture))
        .unwrap_err();
    assert!(matches!(err, tether::Error::Config(_)), "{err}");
    let err = Host::new()
        .function("add(a)", |a: i64, b: i64| a + b)
        .run(script("pass"))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("names 1 parameter(s) but the function takes 2"),
        "{err}"
    );
    let err = Host::new()
        .function("f", || 1)
        .function("f", || 2)
        .run(script("pass"))
        .unwrap_err();
    assert!(err.to_string().contains("registered twice"), "{err}");
}

#[test]
fn value_display_in_rust_matches_python_str() {
    let out = run_ok(
        r#"
from tether import host
for v in [100, "x y", 2.0, 1e16, 1.5e-7, [1, "a", None, True], {"k": b"\x00'"}, -0.0, 0.1]:
    assert host.foo(v) == "Foo was called with arg " + str(v), (host.foo(v), str(v))
"#,
    );
    assert!(out.success());
    assert_eq!(Value::from(vec![Value::from("a")]).to_string(), "['a']");
}
