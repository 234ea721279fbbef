//! What a new user tripped over while writing a plugin host against the
//! docs (issue 15, part 6), one test each; each failed before its fix.

mod common;

use std::time::Duration;

use common::*;
use serde::{Deserialize, Serialize};
use tether::{Error, FunctionError, Script, Stdio, Value};

const PROCESSOR: &str = r#"
import tether

@tether.export
def process(rows):
    return len(rows)

@tether.export
def give_dict():
    return {"a": 1}

tether.serve()
"#;

#[derive(Serialize)]
struct Query {
    table: String,
    limit: u32,
}

#[test]
fn a_vec_or_struct_spread_into_arguments_says_so_and_how_to_pass_it_whole() {
    let child = host().spawn(script(PROCESSOR)).unwrap();
    let rows = vec![1, 2, 3];

    let err = child.call::<usize>("process", &rows).unwrap_err();
    let Error::Remote(remote) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(remote.kind(), "InvalidParams");
    let message = remote.message();
    assert!(message.starts_with("process(rows)"), "{message}");
    assert!(
        message.contains("spread into positional arguments"),
        "{message}"
    );
    assert!(
        message.contains(r#"call("process", (items,))"#),
        "{message}"
    );

    let query = Query {
        table: "users".into(),
        limit: 5,
    };
    let err = child
        .call::<usize>("process", &query)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("struct Query, whose fields are spread into keyword arguments"),
        "{err}"
    );

    // The hinted way works; a tuple of the wrong length gets no hint.
    assert_eq!(child.call::<usize>("process", (&rows,)).unwrap(), 3);
    assert_eq!(child.call::<usize>("process", (&query,)).unwrap(), 2);
    let err = child
        .call::<usize>("process", (1, 2))
        .unwrap_err()
        .to_string();
    assert!(!err.contains("spread"), "{err}");
    child.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_result_that_does_not_fit_names_the_export_and_what_it_returned() {
    let child = host().spawn(script(PROCESSOR)).unwrap();
    let err = child.call::<i64>("give_dict", ()).unwrap_err();
    assert!(matches!(err, Error::Value(_)), "{err:?}");
    let err = err.to_string();
    assert!(
        err.starts_with("the script's give_dict() returned a dict, which does not fit i64"),
        "{err}"
    );
    child.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn python_is_told_about_arguments_in_python_types() {
    let host = host().function("kv_set(key, value)", |_key: String, _value: Value| {});
    run_ok_with(
        &host,
        r#"
import tether
from tether import host
try:
    host.kv_set(5, {"a": 1})
except tether.InvalidParams as e:
    assert str(e) == 'kv_set() argument "key": expected str, got int 5; expects kv_set(key: str, value: Any) -> None', str(e)
else:
    raise SystemExit("no InvalidParams")
"#,
    );
}

#[test]
fn function_error_data_reaches_the_script_where_the_docs_say() {
    let host = host().try_function(
        "get_user(name)",
        |name: String| -> Result<(), FunctionError> {
            Err(FunctionError::new("NotFound", format!("no user named {name}")).with_data(404))
        },
    );
    run_ok_with(
        &host,
        r#"
import tether
from tether import host
try:
    host.get_user("bob")
except tether.RemoteError as err:
    assert err.kind == "NotFound", err.kind
    assert err.data == {"kind": "NotFound", "function": "get_user", "data": 404}, err.data
    assert err.data["data"] == 404
else:
    raise SystemExit("no error")
"#,
    );
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Row {
    id: i64,
    name: String,
}

#[test]
fn the_struct_types_the_stubs_declare_can_be_imported_at_run_time() {
    let host = host().function("store(row)", |row: Row| row.id);
    run_ok_with(
        &host,
        r#"
import tether
from tether import Row, host
row = Row(id=7, name="seven")
assert row == {"id": 7, "name": "seven"}, row
assert host.store(row) == 7
assert list(Row.__annotations__) == ["id", "name"], Row.__annotations__
try:
    from tether import Nope
except ImportError:
    pass
else:
    raise SystemExit("Nope imported")
try:
    tether.Nope
except AttributeError as e:
    assert "these types: Row" in str(e), str(e)
"#,
    );
    // Outside a host, the message says what to do instead.
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg("import tether\ntry:\n    tether.Row\nexcept AttributeError as e:\n    print(e)\n")
        .env("PYTHONPATH", python_dir())
        .env_remove("TETHER_READ_FD")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("TYPE_CHECKING"), "{said}");
}

#[test]
fn an_int_too_large_for_the_host_is_a_tether_error() {
    run_ok(
        r#"
import tether
from tether import host
try:
    host.add(2 ** 70, 1)
except tether.CannotSend as e:
    assert isinstance(e, OverflowError)
    assert "does not fit in 64 bits" in str(e), str(e)
else:
    raise SystemExit("no CannotSend")
try:
    host.echo(object())
except tether.Error as e:
    assert isinstance(e, TypeError)
try:
    host.echo(float("nan"))
except tether.Error as e:
    assert isinstance(e, ValueError)
"#,
    );
}

#[test]
fn the_traceback_of_a_host_error_ends_at_the_scripts_call() {
    run_ok(
        r#"
import os, traceback
import tether
from tether import host
try:
    host.fail("no")
except tether.RemoteError as e:
    frames = traceback.extract_tb(e.__traceback__)
    files = [os.path.basename(f.filename) for f in frames]
    assert files[0] == "script.py", files
    # One line of the client at most: the call itself.
    assert len([f for f in files if f != "script.py"]) <= 1, files
    assert not any(f.startswith("_") and f.endswith(".py") for f in files), files
    assert e.__suppress_context__
"#,
    );
}

/// Set when this test binary runs again as a host with a panicking function.
const PANIC_ROLE: &str = "TETHER_TEST_PANIC_HOST";

#[test]
fn a_panicking_host_function_prints_nothing_on_the_hosts_stderr() {
    if let Some(path) = std::env::var_os(PANIC_ROLE) {
        // The host: its stderr is the test's evidence.
        let outcome = host()
            .run(Script::new(path).stderr(Stdio::Capture))
            .unwrap();
        std::process::exit(if outcome.success() { 0 } else { 1 });
    }
    let code = r#"
import tether
from tether import host
try:
    host.boom()
except tether.RemoteError as e:
    assert e.kind == "panic", e.kind
    assert "kaboom" in str(e), str(e)
else:
    raise SystemExit("no panic error")
"#;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_panicking_host_function_prints_nothing_on_the_hosts_stderr",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PANIC_ROLE, script(code))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("kaboom"), "{stderr}");
}
