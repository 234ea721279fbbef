//! Scripts in a virtual environment the host names (`Script::venv`): the
//! venv's interpreter and packages, and activation's environment, so the
//! script's own subprocesses use the venv too.

mod common;

use std::process::Command;

use common::*;
use tether::{Error, Script, Stdio};

/// Writes a wheel of a one-module package by hand (no network, no build
/// backend): `demo_pkg` with `VALUE = 42`.
const MAKE_WHEEL: &str = r#"
import base64, hashlib, sys, zipfile
out = sys.argv[1] + "/demo_pkg-1.0-py3-none-any.whl"
files = {
    "demo_pkg/__init__.py": b"VALUE = 42\n",
    "demo_pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n",
    "demo_pkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for name, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append("%s,sha256=%s,%d" % (name, digest, len(data)))
record.append("demo_pkg-1.0.dist-info/RECORD,,")
with zipfile.ZipFile(out, "w") as z:
    for name, data in files.items():
        z.writestr(name, data)
    z.writestr("demo_pkg-1.0.dist-info/RECORD", "\n".join(record) + "\n")
print(out)
"#;

#[test]
fn a_script_runs_in_a_real_venv_with_a_package_installed_there() {
    let dir = temp_dir("venv");
    let venv = dir.join("env");
    let made = Command::new(python())
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(made.success(), "python3 -m venv failed");
    let maker = dir.join("make_wheel.py");
    std::fs::write(&maker, MAKE_WHEEL).unwrap();
    let wheel = Command::new(python())
        .arg(&maker)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(wheel.status.success(), "{wheel:?}");
    let wheel = String::from_utf8(wheel.stdout).unwrap();
    let installed = Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--disable-pip-version-check",
        ])
        .arg(wheel.trim())
        .status()
        .unwrap();
    assert!(installed.success(), "pip install of the local wheel failed");

    // The host's own interpreter setting does not win over the venv.
    let outcome = host()
        .run(
            Script::new(script(
                r#"
import os, subprocess, sys
import demo_pkg
from tether import host
print(demo_pkg.VALUE, host.add(1, 2))
print(sys.prefix == os.environ["VIRTUAL_ENV"])
child = subprocess.run(["python", "-c", "import demo_pkg, sys; print(sys.prefix)"],
                       capture_output=True, text=True)
print(child.stdout.strip() == sys.prefix, child.returncode)
"#,
            ))
            .venv(&venv)
            .stdout(Stdio::Capture)
            .stderr(Stdio::Capture),
        )
        .unwrap();
    assert_ok(&outcome);
    assert_eq!(stdout(&outcome), "42 3\nTrue\nTrue 0\n");
}

#[test]
fn a_directory_that_is_not_a_venv_is_a_clear_error() {
    let dir = temp_dir("not-a-venv");
    let err = host()
        .run(Script::new(script("pass")).venv(&dir))
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    assert!(text.contains("not a virtual environment"), "{text}");
    assert!(text.contains("pyvenv.cfg"), "{text}");
    assert!(text.contains("python3 -m venv"), "{text}");
}
