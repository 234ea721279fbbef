//! Helpers shared by the integration tests: scripts in temporary
//! directories, and a host with the functions most tests need.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use tether::{FunctionError, Host, Outcome, Script, Stdio, Value};

/// A fresh directory for one test's files, under `target/tmp/tether-tests/`
/// (never the system temporary directory). The first call of a test binary
/// removes what runs of it that have ended left there.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    static PRUNED: std::sync::Once = std::sync::Once::new();
    let root = test_root();
    PRUNED.call_once(|| prune(&root));
    let dir = root.join(format!(
        "{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Where the tests' files go.
pub fn test_root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("tether-tests")
}

/// Removes the directories of test processes that no longer run.
fn prune(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_string_lossy().split('-').next().map(str::to_owned);
        let alive = pid.is_some_and(|pid| Path::new("/proc").join(pid).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes `code` to a script file named `name` in a fresh directory.
pub fn script_named(name: &str, code: &str) -> PathBuf {
    let path = temp_dir("script").join(name);
    std::fs::write(&path, code).unwrap();
    path
}

/// Writes `code` to a fresh script file.
pub fn script(code: &str) -> PathBuf {
    script_named("script.py", code)
}

/// The repository's `python/` directory (the client's sources).
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python")
}

/// The interpreter the tests use; fails with a clear message when missing.
pub fn python() -> PathBuf {
    let python =
        std::env::var_os("TETHER_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    match std::process::Command::new(&python).arg("-c").arg("pass").status() {
        Ok(s) if s.success() => python,
        other => panic!(
            "these tests need Python 3.8+ as {} (set TETHER_PYTHON to another interpreter): {other:?}",
            python.display()
        ),
    }
}

/// A two-thread tokio runtime, as a small service has.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The host most tests use.
pub fn host() -> Host {
    Host::new()
        .python(python())
        .function("foo(arg)", |arg: Value| {
            format!("Foo was called with arg {arg}")
        })
        .function("bar(arg)", |arg: Value| {
            format!("Bar was called with arg {arg}")
        })
        .function("echo(value)", |value: Value| value)
        .function("add(a, b)", |a: i64, b: i64| a + b)
        .function("concat(a, b)", |a: String, b: String| a + &b)
        .function("make(n)", |n: usize| tether::Bytes::from(vec![b'x'; n]))
        .function("sleep(seconds)", |s: f64| {
            std::thread::sleep(Duration::from_secs_f64(s))
        })
        .try_function("fail(message)", |m: String| -> Result<(), FunctionError> {
            Err(FunctionError::new("DemoFailure", m))
        })
        .try_function("parse(text)", |t: String| t.trim().parse::<i64>())
        .function("boom()", || -> i64 { panic!("kaboom") })
        .try_function(
            "map_with(name, values)",
            |name: String, values: Vec<Value>| -> Result<Vec<Value>, tether::Error> {
                let script = tether::Peer::current().expect("called by a script");
                values
                    .into_iter()
                    .map(|v| script.call(&name, (v,)))
                    .collect()
            },
        )
}

/// Runs Python code under `host`, with output captured, and returns the outcome.
pub fn run_with(host: &Host, code: &str) -> Result<Outcome, tether::Error> {
    host.run(
        Script::new(script(code))
            .stdout(Stdio::Capture)
            .stderr(Stdio::Capture),
    )
}

/// Runs Python code under the default test host and asserts it exited 0,
/// printing its output when it did not.
pub fn run_ok(code: &str) -> Outcome {
    let outcome = run_with(&host(), code).expect("run");
    assert_ok(&outcome);
    outcome
}

/// Runs Python code under `host` and asserts it exited 0.
pub fn run_ok_with(host: &Host, code: &str) -> Outcome {
    let outcome = run_with(host, code).expect("run");
    assert_ok(&outcome);
    outcome
}

pub fn assert_ok(outcome: &Outcome) {
    assert!(
        outcome.success(),
        "script failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        outcome.status(),
        stdout(outcome),
        String::from_utf8_lossy(outcome.stderr().unwrap_or_default())
    );
}

pub fn stdout(outcome: &Outcome) -> String {
    String::from_utf8_lossy(outcome.stdout().unwrap_or_default()).into_owned()
}

pub fn stderr(outcome: &Outcome) -> String {
    String::from_utf8_lossy(outcome.stderr().unwrap_or_default()).into_owned()
}

/// A number from this process's `/proc/self/status` (`"Threads:"`, `"VmRSS:"`…).
pub fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// How many descriptors this process has open.
pub fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// This process's children (pid and state), zombies included.
pub fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let after = stat.rsplit_once(')')?.1.to_owned();
            let fields: Vec<&str> = after.split_whitespace().collect();
            (fields.get(1) == Some(&me.as_str()))
                .then(|| format!("{} state {}", e.file_name().to_string_lossy(), fields[0]))
        })
        .collect()
}

/// Runs `f` on a thread and fails the test when it takes longer than
/// `limit` (a hang would otherwise hang the whole test run).
pub fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
}
