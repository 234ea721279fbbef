//! Runs the Python client's own unit tests (`python/tests`), so that
//! `cargo test` covers both languages.

use std::path::Path;
use std::process::Command;

#[test]
fn python_client_unit_tests_pass() {
    let python = std::env::var_os("TETHER_PYTHON").unwrap_or_else(|| "python3".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python");
    let out = Command::new(&python)
        .args([
            "-B", "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".",
        ])
        .current_dir(&root)
        .env_remove("TETHER_READ_FD")
        .env_remove("TETHER_WRITE_FD")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python:?} (set TETHER_PYTHON): {e}"));
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "Python client tests failed:\n{report}"
    );
    assert!(report.contains("\nOK"), "{report}");
}
