//! What a script's author sees: signatures and docs in `help()` and
//! `inspect`, Python-side argument checks, error classes by kind, and type
//! stubs that mypy checks a script against.

mod common;

use std::process::Command;

use common::*;
use serde::{Deserialize, Serialize};
use tether::{FunctionError, Host};

#[derive(Debug, Clone, Deserialize, Serialize)]
struct Point {
    x: f64,
    y: f64,
}

fn described_host() -> Host {
    Host::new()
        .python(python())
        .function("add(a, b)", |a: i64, b: i64| a + b)
        .doc("Adds two integers.\n\nOverflow wraps around.")
        .function("norm(p)", |p: Point| (p.x * p.x + p.y * p.y).sqrt())
        .doc("The length of vector p.")
        .function("mid(a, b)", |a: Point, b: Point| Point {
            x: (a.x + b.x) / 2.0,
            y: (a.y + b.y) / 2.0,
        })
        .function(
            "greet(name, greeting)",
            |name: String, greeting: Option<String>| {
                format!("{}, {name}!", greeting.as_deref().unwrap_or("Hello"))
            },
        )
        .function(
            "tags(counts)",
            |counts: std::collections::HashMap<String, Vec<u32>>| counts.len(),
        )
        .try_function("lookup(key)", |key: String| -> Result<i64, FunctionError> {
            Err(FunctionError::new("NotFound", format!("no entry {key:?}")).with_data(key))
        })
}

#[test]
fn help_and_inspect_show_signatures_types_and_docs() {
    let out = run_ok_with(
        &described_host(),
        r#"
import inspect, pydoc
from tether import host
assert str(inspect.signature(host.add)) == "(a: int, b: int) -> int", inspect.signature(host.add)
assert str(inspect.signature(host.greet)) == "(name: str, greeting: Optional[str] = None) -> str", inspect.signature(host.greet)
assert str(inspect.signature(host.tags)) == "(counts: Dict[str, List[int]]) -> int", inspect.signature(host.tags)
sig = inspect.signature(host.mid)
assert sig.parameters["a"].annotation.__name__ == "Point", sig
assert sig.parameters["a"].annotation.__annotations__ == {"x": float, "y": float}
assert sig.return_annotation.__name__ == "Point", sig
text = pydoc.render_doc(host.add, renderer=pydoc.plaintext)
assert "add(a: int, b: int) -> int" in text, text
assert "Adds two integers." in text and "Overflow wraps around." in text, text
assert host.norm({"x": 3.0, "y": 4.0}) == 5.0
assert host.mid({"x": 0, "y": 0}, {"x": 2, "y": 4}) == {"x": 1.0, "y": 2.0}
assert host.greet("bob") == "Hello, bob!"
assert host.greet("bob", greeting="Hi") == "Hi, bob!"
print(text)
"#,
    );
    assert!(stdout(&out).contains("Adds two integers."));
}

#[test]
fn host_errors_are_caught_by_kind() {
    run_ok_with(
        &described_host(),
        r#"
import tether
from tether import host
try:
    host.lookup("k")
except host.errors.NotFound as e:
    assert isinstance(e, tether.RemoteError)
    assert type(e).__name__ == "NotFound" and e.kind == "NotFound"
    assert str(e) == 'no entry "k"' and e.data["data"] == "k"
else:
    raise SystemExit("not raised")
assert host.errors.NotFound is host.errors.NotFound
assert not issubclass(host.errors.Other, host.errors.NotFound)
assert host.errors.MethodNotFound is tether.MethodNotFound
"#,
    );
}

fn mypy(stubs: &std::path::Path, code: &str) -> (bool, String) {
    let file = script(code);
    let out = Command::new(python())
        .args([
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
        ])
        .arg(stubs.join(".mypy_cache"))
        .arg(&file)
        .env("MYPYPATH", stubs)
        .output()
        .expect("run mypy");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("No module named mypy"),
        "this test needs mypy: pip install mypy"
    );
    (out.status.success(), text)
}

#[test]
fn mypy_checks_a_script_against_generated_stubs() {
    let dir = temp_dir("stubs");
    let package = described_host().write_stubs(&dir).unwrap();
    assert!(package.join("__init__.pyi").is_file() && package.join("aio.pyi").is_file());
    let stub = std::fs::read_to_string(package.join("__init__.pyi")).unwrap();
    assert!(
        stub.contains("Point = TypedDict(\"Point\", {\"x\": float, \"y\": float})"),
        "{stub}"
    );
    assert!(
        stub.contains("def greet(self, name: str, greeting: Optional[str] = ...) -> str: ..."),
        "{stub}"
    );

    let (ok, text) = mypy(
        &dir,
        r#"
import asyncio
import tether
from tether import host

@tether.export
def square(x: int) -> int:
    return x * x

total: int = host.add(1, 2)
length: float = host.norm({"x": 3.0, "y": 4.0})
middle = host.mid({"x": 0.0, "y": 0.0}, {"x": 2.0, "y": 2.0})
x: float = middle["x"]
hello: str = host.greet("bob")
try:
    host.lookup("k")
except host.errors.NotFound as e:
    print(e.kind)

async def main() -> int:
    return await tether.aio.host.add(1, 2)

print(asyncio.run(main()))
tether.serve()
"#,
    );
    assert!(ok, "mypy rejected a correct script:\n{text}");

    let (ok, text) = mypy(
        &dir,
        "from tether import host\nhost.add(1, \"x\")\nhost.boo(1)\nhost.norm({\"x\": 1.0})\n",
    );
    assert!(!ok);
    assert!(
        text.contains(
            r#"Argument 2 to "add" of "_Host" has incompatible type "str"; expected "int""#
        ),
        "{text}"
    );
    assert!(text.contains(r#""_Host" has no attribute "boo""#), "{text}");
    assert!(
        text.contains(r#"Missing key "y" for TypedDict "Point""#),
        "{text}"
    );
}
