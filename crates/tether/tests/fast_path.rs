//! The fast path for small calls: the reader thread runs quick calls
//! itself, hands reading over when a call blocks or calls back into the
//! script, and both sides spin (bounded, adaptive, can be switched off).

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tether::{Error, Peer};

#[test]
fn a_call_that_waits_for_another_call_of_the_script_does_not_deadlock() {
    // `wait_for` blocks until `release` runs. `wait_for` is quick-looking
    // (never seen before), so the reader thread runs it itself; only a
    // hand-over of reading lets the script's other thread reach `release`.
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    let host = host()
        .function("wait_for()", move || {
            rx.lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(20))
                .is_ok()
        })
        .function("release()", move || tx.send(()).is_ok());
    let started = Instant::now();
    let outcome = run_ok_with(
        &host,
        r#"
import threading, time
from tether import host
out = {}
t = threading.Thread(target=lambda: out.update(waited=host.wait_for()))
t.start()
time.sleep(0.2)
assert host.release() is True
t.join()
print(out["waited"])
"#,
    );
    assert_eq!(stdout(&outcome).trim(), "True");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_call_back_into_the_script_from_the_reader_thread_is_answered() {
    // The first call of `twice` runs on the reader thread and calls the
    // script back: reading is handed over at once; later calls run on the
    // pool. Nesting depth 3 both ways.
    let host = host().try_function("twice(x)", |x: i64| -> Result<i64, Error> {
        let script = Peer::current().expect("called by the script");
        script.call("double", (x,))
    });
    let outcome = run_ok_with(
        &host,
        r#"
import tether
from tether import host

@tether.export
def double(x):
    return 2 * x if x > 100 else host.twice(x * 10)

print([host.twice(i) for i in range(1, 6)])
"#,
    );
    // twice(1) -> double(1) -> twice(10) -> double(10) -> twice(100)
    // -> double(100) -> twice(1000) -> double(1000) = 2000; twice(2) ends
    // at double(200) = 400, and so on.
    assert_eq!(stdout(&outcome).trim(), "[2000, 400, 600, 800, 1000]");
}

#[test]
fn slow_calls_from_many_threads_still_run_concurrently() {
    // After the first slow call the function runs on the pool, so eight
    // threads sleeping 300 ms each take far less than 8 x 300 ms.
    let host = host().function("nap(ms)", |ms: u64| {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    });
    let outcome = run_ok_with(
        &host,
        r#"
import threading, time
from tether import host
host.nap(20)
results = []
def nap():
    try:
        results.append(host.nap(300))
    except BaseException as e:  # a failing call finishes sooner: record it
        results.append(repr(e))
t = time.perf_counter()
threads = [threading.Thread(target=nap) for _ in range(8)]
for th in threads: th.start()
for th in threads: th.join()
print(time.perf_counter() - t)
print(results)
"#,
    );
    let out = stdout(&outcome);
    let mut lines = out.lines();
    let took: f64 = lines.next().unwrap().trim().parse().unwrap();
    // Every call must have succeeded: failing calls finish sooner, and the
    // timing alone would pass.
    assert_eq!(
        lines.next(),
        Some("[300, 300, 300, 300, 300, 300, 300, 300]")
    );
    assert!(took < 1.5, "8 concurrent 300 ms calls took {took:.2} s");
}

#[test]
fn spinning_can_be_switched_off_and_the_client_is_told() {
    for (spin, expect) in [(Duration::ZERO, "0"), (Duration::from_micros(80), "80")] {
        let host = host().spin(spin).function("same(x)", |x: i64| x);
        let outcome = run_ok_with(
            &host,
            r#"
import os
from tether import host
assert [host.same(i) for i in range(2000)] == list(range(2000))
print(os.environ["TETHER_SPIN_US"])
"#,
        );
        // With one usable core the host turns spinning off on its own.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let want = if cores < 2 { "0" } else { expect };
        assert_eq!(stdout(&outcome).trim(), want);
    }
}
