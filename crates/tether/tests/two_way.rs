//! Calls in both directions: exports, nesting, timeouts and cancellation,
//! threads, asyncio, shutdown, notifications, logs, output lines.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use tether::{Error, Peer, Script, Stdio};

const PLUGIN: &str = r#"
import asyncio, time
import tether
from tether import host

calls = []

@tether.export
def square(x):
    return x * x

@tether.export("cube")
def third_power(x):
    return x ** 3

@tether.export
def fails(msg):
    raise ValueError("bad value: " + msg)

@tether.export
def up(n):
    return 0 if n == 0 else host.down(n - 1) + 1

@tether.export
def slow(seconds):
    # Stops when the host gives up: it sees tether.cancelled(), or is
    # interrupted with tether.Cancelled.
    deadline = time.time() + seconds
    try:
        while time.time() < deadline:
            if tether.cancelled():
                return "cancelled"
            time.sleep(0.01)
        return "finished"
    finally:
        if time.time() < deadline:
            calls.append("slow cancelled")

@tether.export
def on_event(name):
    calls.append(name)

@tether.export
def seen():
    return calls

tether.serve()
"#;

/// Asks `get` until `done` holds (at most 5 s): for effects that take a
/// moment to reach the script on a loaded machine.
fn eventually<T>(get: impl Fn() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let value = get();
        if done(&value) || Instant::now() > deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn plugin() -> Script {
    Script::new(script(PLUGIN))
        .stdout(Stdio::Capture)
        .stderr(Stdio::Capture)
}

fn down_host() -> tether::Host {
    host().try_function("down(n)", |n: i64| -> Result<i64, Error> {
        if n == 0 {
            return Ok(0);
        }
        let script = Peer::current().expect("called by a script");
        Ok(script.call::<i64>("up", (n - 1,))? + 1)
    })
}

#[test]
fn the_host_calls_script_exports() {
    let child = host().spawn(plugin()).unwrap();
    assert_eq!(child.call::<i64>("square", (7,)).unwrap(), 49);
    assert_eq!(child.call::<i64>("cube", (3,)).unwrap(), 27);
    assert_eq!(child.call::<f64>("square", (1.5,)).unwrap(), 2.25);
    match child.call::<i64>("nope", ()) {
        Err(Error::Remote(e)) => {
            assert_eq!(e.kind(), "MethodNotFound");
            assert!(e.message().contains("cube, fails"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    match child.call::<i64>("square", (1, 2)) {
        Err(Error::Remote(e)) => assert_eq!(e.kind(), "InvalidParams", "{e}"),
        other => panic!("{other:?}"),
    }
    let outcome = child.shutdown(Duration::from_secs(5)).unwrap();
    assert!(outcome.success(), "{}", stderr(&outcome));
}

#[test]
fn a_python_exception_reaches_rust_with_its_traceback() {
    let child = host().spawn(plugin()).unwrap();
    match child.call::<()>("fails", ("x",)) {
        Err(Error::Remote(e)) => {
            assert_eq!(e.kind(), "ValueError");
            assert_eq!(e.message(), "bad value: x");
            let tb = e.traceback().expect("traceback");
            assert!(tb.contains("Traceback (most recent call last)"), "{tb}");
            assert!(
                tb.contains("raise ValueError(\"bad value: \" + msg)"),
                "{tb}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(child.call::<i64>("square", (2,)).unwrap(), 4);
}

#[test]
fn nesting_fifty_deep_both_ways() {
    // Script -> host -> script -> ... 100 calls deep, 50 each way, started
    // from either side, with a pool of 2 workers and in serial mode.
    for host in [down_host().workers(2), down_host().serial()] {
        let out = run_with(&host, "from tether import host\nimport tether\n@tether.export\ndef up(n):\n    return 0 if n == 0 else host.down(n - 1) + 1\nassert host.down(100) == 100\nprint('ok')").unwrap();
        assert_ok(&out);
        let child = host.spawn(plugin()).unwrap();
        assert_eq!(child.call::<i64>("up", (100,)).unwrap(), 100);
    }
}

/// A host whose `down(n)` records the thread it runs on at every level.
fn recording_down_host(threads: &Arc<Mutex<Vec<String>>>) -> tether::Host {
    let threads = Arc::clone(threads);
    host().try_function("down(n)", move |n: i64| -> Result<i64, Error> {
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        threads.lock().unwrap().push(name);
        if n == 0 {
            return Ok(0);
        }
        let script = Peer::current().expect("called by a script");
        Ok(script.call::<i64>("up", (n - 1,))? + 1)
    })
}

const UP_AND_DOWN: &str = "from tether import host\nimport tether\n@tether.export\ndef up(n):\n    return 0 if n == 0 else host.down(n - 1) + 1\n";

#[test]
fn a_nested_chain_runs_on_the_reader_thread_at_every_level() {
    // The reader thread reads for itself while a host function it runs
    // waits for the script, and runs the script's calls made within that
    // call right there: no level of the chain goes to another thread (it
    // used to hand reading to the standby reader, and every later level ran
    // on the pool). A level preempted for longer than a watchdog tick on a
    // loaded machine is taken for one that blocks and moves its function to
    // the pool for a while: so up to five tries, each with a fresh host, and
    // one chain of two runs entirely on the reader thread.
    let mut seen = Vec::new();
    for _ in 0..5 {
        let threads = Arc::new(Mutex::new(Vec::new()));
        let host = recording_down_host(&threads);
        let code = format!("{UP_AND_DOWN}assert host.down(20) == 20\nassert host.down(20) == 20\n");
        assert_ok(&run_with(&host, &code).unwrap());
        let threads = threads.lock().unwrap().clone();
        assert_eq!(threads.len(), 22, "{threads:?}");
        if threads
            .iter()
            .all(|t| t.starts_with("tether-reader-") && *t == threads[0])
        {
            return;
        }
        seen.push(threads);
    }
    panic!("no chain ran on the reader thread alone: {seen:?}");
}

#[test]
fn a_function_that_blocked_once_comes_back_to_the_reader_thread() {
    // Its first call blocks (longer than a watchdog tick): it moves to the
    // pool. The calls after it are quick: after two of them on the pool it
    // runs on the reader thread again. It used to stay on the pool for good,
    // paying a hand-off between threads on every call. (A preemption of a
    // loaded machine may move it again for a while: the script calls until
    // three calls in a row ran on the reader thread.)
    let threads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&threads);
    let host = host().function("flaky()", move || {
        let mut seen = seen.lock().unwrap();
        if seen.is_empty() {
            std::thread::sleep(Duration::from_millis(30));
        }
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        let on_reader = name.starts_with("tether-reader-");
        seen.push(name);
        on_reader
    });
    let code = "from tether import host\nstreak = 0\nfor i in range(200):\n    streak = streak + 1 if host.flaky() else 0\n    if streak == 3:\n        break\nelse:\n    raise SystemExit('it never came back to the reader thread')\n";
    assert_ok(&run_with(&host, code).unwrap());
    let threads = threads.lock().unwrap().clone();
    assert!(threads[0].starts_with("tether-reader-"), "{threads:?}");
    assert!(
        !threads[1].starts_with("tether-reader-"),
        "the blocking call moved it to the pool: {threads:?}"
    );
}

#[test]
fn nesting_as_deep_as_the_default_limit_on_the_reader_thread() {
    // 128 calls into the script pending at once (the default max_depth),
    // each level run on the reader thread's own stack; one more is refused
    // with the limit's message, and the script goes on.
    let threads = Arc::new(Mutex::new(Vec::new()));
    let host = recording_down_host(&threads);
    let code = format!(
        "{UP_AND_DOWN}import sys\nsys.setrecursionlimit(10000)\nassert host.down(256) == 256\ntry:\n    host.down(258)\nexcept tether.RemoteError as e:\n    assert 'nested deeper than 128 levels' in str(e), str(e)\nelse:\n    raise SystemExit('no limit')\nassert host.down(2) == 2\n"
    );
    assert_ok(&run_with(&host, &code).unwrap());
}

#[test]
fn a_call_from_another_script_thread_does_not_run_on_top_of_a_waiting_function() {
    // hold() keeps a lock while it calls the script; meanwhile another of
    // the script's threads calls take(), which needs that lock. Run on the
    // thread that waits inside hold(), take() would wait for itself
    // forever; it runs on the pool, and both answer once hold() returns.
    let lock = Arc::new(Mutex::new(0_i64));
    let (held, taken) = (Arc::clone(&lock), Arc::clone(&lock));
    let host = host()
        .try_function("hold()", move || -> Result<i64, Error> {
            let mut guard = held.lock().unwrap();
            *guard += 1;
            let script = Peer::current().expect("called by a script");
            script.call::<i64>("meanwhile", ())
        })
        .function("take()", move || -> i64 {
            let mut guard = taken.lock().unwrap();
            *guard += 10;
            *guard
        });
    let code = r#"
import threading, time
import tether
from tether import host
got = []
@tether.export
def meanwhile():
    t = threading.Thread(target=lambda: got.append(host.take()))
    t.start()
    time.sleep(0.3)  # take() reaches the host while hold() waits for this
    return 7
assert host.hold() == 7
deadline = time.monotonic() + 10
while not got and time.monotonic() < deadline:
    time.sleep(0.01)
assert got == [11], got
"#;
    let out = within(Duration::from_secs(30), "hold() and take()", move || {
        run_with(&host, code).unwrap()
    });
    assert_ok(&out);
}

#[test]
fn a_protocol_3_client_is_served_in_its_own_version() {
    // Protocol 4 added "within"; a client that speaks 3 (an older pip
    // install) is still served, nested calls included.
    let threads = Arc::new(Mutex::new(Vec::new()));
    let host = recording_down_host(&threads);
    let code = format!(
        "import tether._connection as c\nc.PROTOCOL_VERSION = 3\n{UP_AND_DOWN}assert host.down(6) == 6\nassert tether.host.add(2, 3) == 5\n"
    );
    assert_ok(&run_with(&host, &code).unwrap());
    assert_eq!(threads.lock().unwrap().len(), 4);
}

#[test]
fn map_with_calls_back_into_the_script() {
    run_ok(
        r#"
import tether
from tether import host
@tether.export
def square(x):
    return x * x
assert host.map_with("square", [1, 2, 3]) == [1, 4, 9]
assert host.map_with("square", []) == []
"#,
    );
}

#[test]
fn a_timed_out_call_is_cancelled_in_the_script_and_the_next_call_works() {
    let child = host().spawn(plugin()).unwrap();
    // Once this answers, the script is serving: slow() starts at once below
    // (a call cancelled before it starts is not run at all).
    assert_eq!(child.call::<i64>("square", (2,)).unwrap(), 4);
    let started = Instant::now();
    match child.call_timeout::<String>("slow", (5.0,), Duration::from_millis(200)) {
        Err(Error::Timeout { method, .. }) => assert_eq!(method, "slow"),
        other => panic!("{other:?}"),
    }
    // The late "cancelled" answer to slow() must not reach this call.
    assert_eq!(child.call::<i64>("square", (9,)).unwrap(), 81);
    // slow() notices the cancellation (it would otherwise run for 5 s).
    let seen = eventually(
        || child.call::<Vec<String>>("seen", ()).unwrap(),
        |s| !s.is_empty(),
    );
    assert_eq!(seen, vec!["slow cancelled"]);
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_async_export_is_cancelled_when_the_host_gives_up() {
    let code = r#"
import asyncio, tether
log = []
@tether.export
async def wait_long():
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        log.append("cancelled")
        raise
@tether.export
async def history():
    return log
asyncio.run(tether.aio.serve())
"#;
    let child = host()
        .spawn(Script::new(script(code)).stderr(Stdio::Capture))
        .unwrap();
    // Once this answers, the script's loop is serving: wait_long() starts at
    // once below (a call cancelled before it starts is not run at all).
    assert_eq!(
        child.call::<Vec<String>>("history", ()).unwrap(),
        Vec::<String>::new()
    );
    assert!(matches!(
        child.call_timeout::<()>("wait_long", (), Duration::from_millis(200)),
        Err(Error::Timeout { .. })
    ));
    assert_eq!(
        eventually(
            || child.call::<Vec<String>>("history", ()).unwrap(),
            |h| !h.is_empty()
        ),
        vec!["cancelled"]
    );
    let outcome = child.shutdown(Duration::from_secs(5)).unwrap();
    assert!(outcome.success(), "{outcome:?}");
}

#[test]
fn cancelling_an_asyncio_task_mid_call_leaves_the_channel_usable() {
    run_ok(
        r#"
import asyncio, tether
async def main():
    task = asyncio.ensure_future(tether.aio.host.sleep(1.0))
    await asyncio.sleep(0.1)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise SystemExit("not cancelled")
    assert await tether.aio.host.add(1, 2) == 3
    assert tether.host.add(2, 2) == 4
asyncio.run(main())
"#,
    );
}

#[test]
fn a_thousand_concurrent_asyncio_calls() {
    let out = run_ok(
        r#"
import asyncio, time, tether
async def main():
    n = 1000
    t = time.perf_counter()
    got = await asyncio.gather(*(tether.aio.host.add(i, 1) for i in range(n)))
    elapsed = time.perf_counter() - t
    assert got == [i + 1 for i in range(n)]
    print("asyncio %d calls/s" % (n / elapsed))
asyncio.run(main())
"#,
    );
    eprintln!("{}", stdout(&out).trim());
}

#[test]
fn eight_threads_times_ten_thousand_calls_get_their_own_answers() {
    let out = run_ok(
        r#"
import threading, time
from tether import host
errors = []
def work(k):
    for i in range(10000):
        if host.add(k * 100000, i) != k * 100000 + i:
            errors.append((k, i))
t = time.perf_counter()
threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
for th in threads: th.start()
for th in threads: th.join()
elapsed = time.perf_counter() - t
assert not errors, errors[:5]
print("threads %d calls/s" % (80000 / elapsed))
"#,
    );
    assert_eq!(out.calls(), 80_000);
    eprintln!("{}", stdout(&out).trim());
}

#[test]
fn shutdown_stops_a_script_stuck_in_a_busy_loop_within_the_grace_period() {
    // Each script says it is ready right before its loop: a shutdown that
    // came while it still started would end it otherwise (a loaded machine
    // can take longer than any fixed sleep).
    let child = host()
        .spawn(script(
            "import tether\nfrom tether import host\nhost.add(1, 2)\ntether.ready()\nwhile True:\n    pass\n",
        ))
        .unwrap();
    child.peer().wait_ready(Duration::from_secs(30)).unwrap();
    let started = Instant::now();
    let outcome = child.shutdown(Duration::from_secs(1)).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome.signal(), Some(15));

    // A script that ignores SIGTERM gets SIGKILL when the grace runs out.
    let child = host()
        .spawn(script(
            "import signal, tether\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntether.ready()\nwhile True:\n    pass\n",
        ))
        .unwrap();
    child.peer().wait_ready(Duration::from_secs(30)).unwrap();
    let started = Instant::now();
    let outcome = child.shutdown(Duration::from_millis(600)).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome.signal(), Some(9));
}

#[test]
fn two_children_at_once_one_crashes_the_other_keeps_working() {
    let host = host();
    let steady = host
        .spawn(script(
            "from tether import host\nfor i in range(3000):\n    assert host.add(i, 1) == i + 1\n",
        ))
        .unwrap();
    let crashing = host
        .spawn(script("import os\nfrom tether import host\nfor i in range(50):\n    host.add(i, 1)\nos.kill(os.getpid(), 9)\n"))
        .unwrap();
    let crashed = crashing.wait().unwrap();
    assert_eq!(crashed.signal(), Some(9));
    let outcome = steady.wait().unwrap();
    assert!(outcome.success());
    assert_eq!(outcome.calls(), 3000);
}

#[test]
fn notifications_both_ways_and_serial_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let host = host()
        .serial()
        .function("record(x)", move |x: i64| sink.lock().unwrap().push(x));
    let child = host
        .spawn(Script::new(script(
            r#"
import tether
events = []
@tether.export
def on_event(name):
    events.append(name)
@tether.export
def seen():
    return events
for i in range(200):
    tether.notify("record", i)
tether.serve()
"#,
        )))
        .unwrap();
    child.notify("on_event", ("first",)).unwrap();
    child.notify("on_event", ("second",)).unwrap();
    assert_eq!(
        child.call::<Vec<String>>("seen", ()).unwrap(),
        vec!["first", "second"]
    );
    let outcome = child.shutdown(Duration::from_secs(5)).unwrap();
    assert!(outcome.success());
    assert_eq!(*seen.lock().unwrap(), (0..200).collect::<Vec<i64>>());
}

#[test]
fn a_call_to_a_script_that_ended_fails_at_once() {
    let child = host().spawn(script("pass")).unwrap();
    let peer = child.peer();
    let outcome = child.wait().unwrap();
    assert!(outcome.success());
    let started = Instant::now();
    assert!(matches!(
        peer.call::<i64>("square", (1,)),
        Err(Error::Closed { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn stdout_and_stderr_lines_reach_callbacks() {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (out, err) = (Arc::clone(&lines), Arc::clone(&lines));
    let outcome = host()
        .run(
            Script::new(script(
                "import sys\nprint('one')\nprint('two')\nsys.stderr.write('E' * 1000000 + '\\n')\nsys.stdout.write('tail')\n",
            ))
            .on_stdout_line(move |l| out.lock().unwrap().push(format!("out:{l}")))
            .on_stderr_line(move |l| err.lock().unwrap().push(format!("err:{}", l.len()))),
        )
        .unwrap();
    assert!(outcome.success());
    let mut got = lines.lock().unwrap().clone();
    got.sort();
    // A line over 64 KiB comes in pieces of 64 KiB (the host holds no more of it).
    let mut want = vec!["err:16960".to_owned()];
    want.extend(std::iter::repeat_n("err:65536".to_owned(), 15));
    want.extend(["out:one", "out:tail", "out:two"].map(str::to_owned));
    assert_eq!(got, want);
}

#[test]
fn python_logging_and_warnings_become_tracing_events() {
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Events(Arc<Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if event.metadata().target() != "tether::script" {
                return;
            }
            struct Fields(String);
            impl tracing::field::Visit for Fields {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    if field.name() != "pid" {
                        self.0 += &format!("{}={:?} ", field.name(), value);
                    }
                }
                fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                    self.0 += &format!("{}={} ", field.name(), value);
                }
            }
            let mut fields = Fields(format!("{} ", event.metadata().level()));
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0.trim().to_owned());
        }
    }
    // Events come from the thread that reads the script's pipe, so the
    // subscriber must be global (this is the only test that sets one).
    let events = Events::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(events.clone()))
        .expect("no other global subscriber");
    {
        run_ok_with(
            &host().forward_logs(),
            r#"
import logging, warnings
from tether import host
logging.getLogger("plugin").warning("disk %s", "full")
logging.getLogger("plugin.db").error("lost")
logging.getLogger("quiet").info("not shown: the root logger's level is WARNING")
warnings.warn("old api")
host.add(1, 2)
"#,
        );
    }
    let got = events.0.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(got[0], "WARN message=disk full logger=plugin");
    assert_eq!(got[1], "ERROR message=lost logger=plugin.db");
    assert!(got[2].starts_with("WARN message="), "{}", got[2]);
    assert!(got[2].ends_with("logger=py.warnings"), "{}", got[2]);
    assert!(got[2].contains("UserWarning: old api"), "{}", got[2]);
}

#[test]
fn shutdown_is_not_held_up_by_a_writer_blocked_on_a_script_that_does_not_read() {
    let child = host()
        .spawn(script(
            r#"
import time
from tether import _connection, _framing
conn = _connection.connection()
# Ask for 10 MB and never read it: the host's answer fills the pipe and blocks.
conn._send(_framing.encode(_framing.request(99, "make", [10_000_000])))
time.sleep(60)
"#,
        ))
        .unwrap();
    // Wait until the host has the request (a loaded machine may take longer
    // than half a second to start Python: a stop that arrived before the
    // script connected made it exit with ConnectionLost instead), then until
    // the answer has filled the pipe.
    let asked = eventually(|| child.stats().calls_from_script, |n| *n >= 1);
    assert_eq!(asked, 1, "the script never sent its request");
    eventually(|| child.stats().bytes_to_script, |n| *n > 1 << 20);
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let outcome = child.shutdown(Duration::from_secs(1)).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome.signal(), Some(15));
}
