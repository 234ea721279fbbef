//! Cancellation that reaches a busy script: when the host gives up on a
//! call, the export running it is interrupted with `tether.Cancelled`, even
//! in a pure-Python loop that never looks at `tether.cancelled()`, in the
//! main thread or another one, with its `finally` run; a shielded section
//! finishes first; other threads and calls go on.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use tether::{Child, Error, Script};

const BUSY: &str = r#"
import os, sys, threading, time, tether

OUT = sys.argv[1]

def mark(name):
    open(os.path.join(OUT, name), "w").close()

@tether.export
def spin(tag):
    try:
        while True:
            pass
    finally:
        mark(tag)

@tether.export
def sleepy(tag):
    try:
        time.sleep(60)
    finally:
        mark(tag)

@tether.export
def stubborn(tag):
    # A catch-all does not swallow the cancellation.
    try:
        while True:
            try:
                sum(range(1000))
            except Exception:
                pass
    finally:
        mark(tag)

@tether.export
def shielded(tag):
    try:
        with tether.shield():
            time.sleep(0.5)
            mark(tag + "-shielded-done")
        while True:
            pass
    finally:
        mark(tag)

@tether.export
def until_stopped(tag):
    # Loops on tether.stop_requested(), which reads the pipe: the cancellation
    # it reads must still interrupt the export.
    try:
        while not tether.stop_requested():
            time.sleep(0.001)
    finally:
        mark(tag)

@tether.export
def square(x):
    return x * x

if sys.argv[2] == "worker":
    # Serve from another thread while the main thread keeps calling the host.
    calls = [0]
    server = threading.Thread(target=tether.serve)
    server.start()
    while server.is_alive():
        try:
            tether.host.add(1, 2)
        except tether.ConnectionLost:
            break  # the host is shutting the script down
        calls[0] += 1
        if calls[0] % 100 == 0:
            open(os.path.join(OUT, "main-calls"), "w").write(str(calls[0]))
        time.sleep(0.001)
else:
    tether.serve()
"#;

fn busy(mode: &str) -> (Child, PathBuf) {
    let dir = temp_dir("interrupt");
    let child = host()
        .spawn(Script::new(script(BUSY)).arg(&dir).arg(mode))
        .unwrap();
    child.peer().wait_ready(Duration::from_secs(30)).unwrap();
    (child, dir)
}

/// Waits (bounded) for the script to leave the file `name`.
fn appears(dir: &Path, name: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if dir.join(name).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

fn timed_out(child: &Child, method: &str, tag: &str) {
    let err = child
        .call_timeout::<()>(method, (tag,), Duration::from_millis(200))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[test]
fn a_tight_loop_in_the_main_thread_is_interrupted_and_its_finally_runs() {
    let (child, dir) = busy("main");
    timed_out(&child, "spin", "spin");
    assert!(appears(&dir, "spin"));
    // The script goes on serving.
    assert_eq!(child.call::<i64>("square", (7,)).unwrap(), 49);
    timed_out(&child, "stubborn", "stubborn");
    assert!(appears(&dir, "stubborn"));
    timed_out(&child, "sleepy", "sleepy");
    assert!(
        appears(&dir, "sleepy"),
        "a blocking sleep in the main thread ends too"
    );
    assert_eq!(child.call::<i64>("square", (8,)).unwrap(), 64);
    assert!(child.shutdown(Duration::from_secs(5)).unwrap().success());
}

#[test]
fn an_export_in_a_worker_thread_is_interrupted_while_the_main_thread_keeps_calling() {
    let (child, dir) = busy("worker");
    timed_out(&child, "spin", "spin");
    assert!(appears(&dir, "spin"));
    assert_eq!(child.call::<i64>("square", (3,)).unwrap(), 9);
    assert!(
        appears(&dir, "main-calls"),
        "the main thread kept calling the host"
    );
    let outcome = child.shutdown(Duration::from_secs(5)).unwrap();
    assert!(outcome.success(), "{}", outcome.status());
}

#[test]
fn an_export_looping_on_stop_requested_is_interrupted_when_its_call_is_cancelled() {
    // stop_requested() used to read the cancellation and drop the interruption.
    for mode in ["main", "worker"] {
        let (child, dir) = busy(mode);
        for round in 0..3 {
            let tag = format!("until-{round}");
            timed_out(&child, "until_stopped", &tag);
            assert!(
                appears(&dir, &tag),
                "{mode}: round {round} was not interrupted"
            );
        }
        assert_eq!(child.call::<i64>("square", (5,)).unwrap(), 25);
        assert!(child.shutdown(Duration::from_secs(5)).unwrap().success());
    }
}

#[test]
fn a_shielded_section_finishes_before_the_interruption_lands() {
    let (child, dir) = busy("main");
    timed_out(&child, "shielded", "s");
    assert!(appears(&dir, "s"));
    assert!(
        dir.join("s-shielded-done").exists(),
        "the shielded section ran to its end"
    );
    assert!(child.shutdown(Duration::from_secs(5)).unwrap().success());
}

#[test]
fn shutting_down_interrupts_a_busy_export() {
    let (child, dir) = busy("main");
    let peer = child.peer();
    let call = std::thread::spawn(move || peer.call::<()>("spin", ("stop",)));
    std::thread::sleep(Duration::from_millis(200));
    let outcome = child.shutdown(Duration::from_secs(10)).unwrap();
    assert!(dir.join("stop").exists());
    assert!(
        outcome.success(),
        "ended by itself, not by a signal: {}",
        outcome.status()
    );
    assert!(call.join().unwrap().is_err());
}
