//! Runs the Python client's own unit tests (`python/tests`), so that
//! `cargo test` covers both languages.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Far above the suite's few seconds: a test that hangs fails the run with
/// the report so far (its last line names the test) instead of stalling it.
const SUITE_LIMIT: Duration = Duration::from_secs(300);

#[test]
fn python_client_unit_tests_pass() {
    let python = std::env::var_os("TETHER_PYTHON").unwrap_or_else(|| "python3".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python");
    let mut child = Command::new(&python)
        .args([
            "-B", "-m", "unittest", "discover", "-v", "-s", "tests", "-t", ".",
        ])
        .current_dir(&root)
        .env_remove("TETHER_READ_FD")
        .env_remove("TETHER_WRITE_FD")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python:?} (set TETHER_PYTHON): {e}"));
    let mut stderr = child.stderr.take().expect("stderr is piped");
    // Read in pieces into a shared buffer: a process the suite started may
    // outlive a killed suite and hold the pipe open, so the report is taken
    // from the buffer, not from the reader's end.
    let report = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&report);
    let reader = std::thread::spawn(move || {
        let mut piece = [0u8; 4096];
        while let Ok(n @ 1..) = stderr.read(&mut piece) {
            sink.lock()
                .expect("report lock")
                .extend_from_slice(&piece[..n]);
        }
    });
    let deadline = Instant::now() + SUITE_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the Python tests") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The suite has ended: give the reader a moment to take the last bytes.
    let settle = Instant::now() + Duration::from_secs(2);
    while !reader.is_finished() && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(10));
    }
    let report = String::from_utf8_lossy(&report.lock().expect("report lock")).into_owned();
    let Some(status) = status else {
        panic!("Python client tests did not finish within {SUITE_LIMIT:?}:\n{report}");
    };
    assert!(status.success(), "Python client tests failed:\n{report}");
    assert!(report.contains("\nOK"), "{report}");
}
