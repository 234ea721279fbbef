//! Classic mode: the seed's protocol, byte for byte, in both directions.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use tether::{Script, Stdio};

fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seed")
}

/// The seed's own script, ported to Python 3 bytes and nothing else; it lives
/// beside the seed's C++ host rebuilt on the C ABI, which runs it by default.
fn seed_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tether-capi/examples/cpp/seed_main.py")
}

fn expected_rounds(fmt: impl Fn(usize, &str, String) -> String) -> String {
    let mut want = String::new();
    for i in 0..10 {
        want += &fmt(i, "foo", format!("Foo was called with arg {}", 100 - i));
        want += &fmt(i, "bar", format!("Bar was called with arg something {i}"));
    }
    want
}

#[test]
fn the_seeds_own_script_runs_unchanged_on_a_classic_host() {
    let out = host()
        .classic()
        .run(
            Script::new(seed_script())
                .stdout(Stdio::Capture)
                .stderr(Stdio::Capture),
        )
        .unwrap();
    assert_ok(&out);
    let want = format!(
        "Script Starting\n{}",
        expected_rounds(|i, name, res| format!("{i}  {name}:  b'{res}'\n"))
    );
    assert_eq!(stdout(&out), want);
    assert_eq!(out.calls(), 20);
}

#[test]
fn tether_classic_talks_to_a_classic_host() {
    let out = run_with(
        &host().classic(),
        r#"
import tether
from tether import classic
assert classic.call("foo", 100) == "Foo was called with arg 100"
assert classic.call("bar", "something 0") == "Bar was called with arg something 0"
assert classic.call("echo", "ünïcode") == "ünïcode"
try:
    classic.call("boo", 1)
except classic.BadApi as e:
    assert "boo" in str(e)
else:
    raise SystemExit("no BadApi")
try:
    classic.call("fail", "oops")
except tether.RemoteError as e:
    assert str(e) == "oops", str(e)
else:
    raise SystemExit("no RemoteError")
try:
    classic.call("add", "1")
except tether.RemoteError as e:
    assert "expected int, got str" in str(e), str(e)
print("ok")
"#,
    )
    .unwrap();
    assert_ok(&out);
}

#[test]
fn the_demo_scripts_print_what_the_seed_printed() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let rounds = expected_rounds(|i, name, res| format!("{i}  {name}:  {res}\n"));
    let out = host()
        .classic()
        .run(Script::new(examples.join("demo_classic.py")).stdout(Stdio::Capture))
        .unwrap();
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        format!("Script Starting\n{rounds}boo:  BadApi: the host has no function named 'boo' (it answered __BAD API__)\n")
    );
    let out = host()
        .run(Script::new(examples.join("demo.py")).stdout(Stdio::Capture))
        .unwrap();
    assert_ok(&out);
    assert!(stdout(&out).starts_with(&format!(
        "Script Starting\n{rounds}boo:  MethodNotFound: no host function named \"boo\""
    )));
}

#[test]
fn tether_classic_talks_to_the_seeds_cpp_host() {
    let dir = temp_dir("seed-cpp");
    let exe = dir.join("seed_host");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let built = Command::new(&cxx)
        .args(["-std=c++11", "-O1", "-o"])
        .arg(&exe)
        .arg(seed_dir().join("seed_host.cpp"))
        .status()
        .unwrap_or_else(|e| panic!("this test needs a C++ compiler ({cxx}): {e}"));
    assert!(built.success());
    let script = script(
        r#"
from tether import classic
print("Script Starting")
# One write per line: the seed's host prints to the same stdout, and an
# unbuffered print() of several arguments is several writes that its output
# can land between.
for i in range(3):
    print("%d  foo:  %s" % (i, classic.call("foo", 100 - i)))
    print("%d  bar:  %s" % (i, classic.call("bar", "something " + str(i))))
try:
    classic.call("boo", 5)
except classic.BadApi:
    print("boo: BadApi")
"#,
    );
    // The seed's host is not ours: on a heavily loaded machine its output was
    // seen cut short twice in many runs (after an "apiName:" line, exit 0).
    // Some of those were lines of both processes interleaved on the shared
    // stdout (fixed above); keep three tries for the rest: a tether.classic
    // bug would fail all of them.
    let mut out = None;
    for _ in 0..3 {
        let attempt = Command::new(&exe)
            .arg(&script)
            .env("PYTHONPATH", python_dir())
            .output()
            .unwrap();
        let done = String::from_utf8_lossy(&attempt.stdout)
            .contains("EOF waiting for message, script ended");
        out = Some(attempt);
        if done {
            break;
        }
    }
    let out = out.expect("at least one attempt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "0  foo:  Foo was called with arg 100",
        "2  bar:  Bar was called with arg something 2",
        "apiName: boo",
        "boo: BadApi",
        "EOF waiting for message, script ended",
    ] {
        assert!(
            text.contains(line),
            "missing {line:?} in:\n{text}\n--- stderr ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
