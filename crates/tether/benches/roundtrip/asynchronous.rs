//! The async section (`TETHER_BENCH_ONLY=async`): awaited calls beside
//! blocking ones, 1,000 tasks on one script, async host functions beside
//! sync ones, and how soon a timed-out export is interrupted.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tether::{Host, Script, Stdio, Value};

use super::{median, python, write_script, Table};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const SERVER: &str = r#"
import sys, time, tether

finally_at = []

@tether.export
def square(x):
    return x * x

@tether.export
def spin():
    try:
        while True:
            pass
    finally:
        finally_at.append(time.time())

@tether.export
def finally_times():
    return finally_at

if sys.argv[1] == "aio":
    import asyncio

    @tether.export("square")
    async def square_async(x):
        return x * x

    asyncio.run(tether.aio.serve())
else:
    tether.serve()
"#;

fn server(mode: &str) -> Script {
    Script::new(write_script("async_server.py", SERVER)).arg(mode)
}

/// µs per call: blocking `call` and awaited `call_async`, one caller each.
pub fn one_caller(n: usize) -> (f64, f64) {
    let rt = runtime();
    let host = Host::new().python(python());
    rt.block_on(async {
        let child = host.spawn_async(server("plain")).await.unwrap();
        child
            .peer()
            .wait_ready_async(Duration::from_secs(30))
            .await
            .unwrap();
        let peer = child.peer();
        let blocking = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            for i in 0..n as i64 {
                let _: i64 = peer.call("square", (i,)).unwrap();
            }
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .await
        .unwrap();
        let t = Instant::now();
        for i in 0..n as i64 {
            let _: i64 = child.call_async("square", (i,)).await.unwrap();
        }
        let awaited = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        child.shutdown_async(Duration::from_secs(5)).await.unwrap();
        (blocking, awaited)
    })
}

/// calls/s: 1,000 tasks awaiting calls on one script served by
/// `tether.aio.serve()`, and 16 threads making blocking calls on it.
pub fn many_callers(n: usize) -> (f64, f64) {
    let rt = runtime();
    let host = Host::new().python(python());
    rt.block_on(async {
        let child = Arc::new(host.spawn_async(server("aio")).await.unwrap());
        child
            .peer()
            .wait_ready_async(Duration::from_secs(30))
            .await
            .unwrap();
        let per_task = (n / 1000).max(1);
        let t = Instant::now();
        let tasks: Vec<_> = (0..1000)
            .map(|k| {
                let peer = child.peer();
                tokio::spawn(async move {
                    for i in 0..per_task as i64 {
                        let _: i64 = peer.call_async("square", (i + k,)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let tasks_rate = (per_task * 1000) as f64 / t.elapsed().as_secs_f64();
        let per_thread = (n / 16).max(1);
        let peer = child.peer();
        let threads_rate = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            std::thread::scope(|s| {
                for k in 0..16_i64 {
                    let peer = peer.clone();
                    s.spawn(move || {
                        for i in 0..per_thread as i64 {
                            let _: i64 = peer.call("square", (i + k,)).unwrap();
                        }
                    });
                }
            });
            (per_thread * 16) as f64 / t.elapsed().as_secs_f64()
        })
        .await
        .unwrap();
        let child = Arc::into_inner(child).unwrap();
        child.shutdown_async(Duration::from_secs(5)).await.unwrap();
        (threads_rate, tasks_rate)
    })
}

/// µs per call from a script: a sync host function, and an async one.
pub fn script_calls_async(n: usize) -> (f64, f64) {
    let rt = runtime();
    let host = Host::new()
        .python(python())
        .function("echo(v)", |v: Value| v)
        .async_function("echo_async(v)", |v: Value| async move { v });
    let code = |function: &str| {
        format!(
            "import time\nfrom tether import host\nhost.{function}(0)\nt = time.perf_counter()\n\
             for i in range({n}):\n    host.{function}(i)\nprint((time.perf_counter() - t) * 1e6 / {n})\n"
        )
    };
    let run = |function: &str| -> f64 {
        let script =
            Script::new(write_script("async_fn.py", &code(function))).stdout(Stdio::Capture);
        let outcome = rt.block_on(host.run_async(script)).unwrap();
        let text = String::from_utf8_lossy(outcome.stdout().unwrap()).into_owned();
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("script said: {text}"))
    };
    (run("echo"), run("echo_async"))
}

/// Milliseconds from a call's timeout to the interrupted export's
/// `finally`, over `trials` calls: the median and the 99th percentile.
pub fn interruption(trials: usize) -> (f64, f64) {
    let host = Host::new().python(python());
    let child = host.spawn(server("plain")).unwrap();
    child.peer().wait_ready(Duration::from_secs(30)).unwrap();
    let mut timed_out = Vec::with_capacity(trials);
    for _ in 0..trials {
        let err = child
            .call_timeout::<()>("spin", (), Duration::from_millis(20))
            .unwrap_err();
        assert!(matches!(err, tether::Error::Timeout { .. }), "{err:?}");
        timed_out.push(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64(),
        );
        // The next call waits behind the interrupted one.
        let _: i64 = child.call("square", (2,)).unwrap();
    }
    let finally_at: Vec<f64> = child.call("finally_times", ()).unwrap();
    child.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(finally_at.len(), trials, "every export was interrupted");
    let mut delays: Vec<f64> = timed_out
        .iter()
        .zip(&finally_at)
        .map(|(t, f)| ((f - t) * 1e3).max(0.0))
        .collect();
    delays.sort_by(f64::total_cmp);
    let p99 = delays[(delays.len() * 99).div_ceil(100) - 1];
    (median(delays), p99)
}

/// The section's tables.
pub fn tables(n: usize, runs: usize) -> Vec<Table> {
    let each = |f: &dyn Fn() -> (f64, f64)| {
        let (a, b): (Vec<f64>, Vec<f64>) = (0..runs).map(|_| f()).unzip();
        (median(a), median(b))
    };
    let (blocking, awaited) = each(&|| one_caller(n / 4));
    let (threads, tasks) = each(&|| many_callers(n));
    let (sync_fn, async_fn) = each(&|| script_calls_async(n / 4));
    let (p50, p99) = interruption(100);
    vec![
        Table {
            title: "async: one caller (mean of one call)",
            unit: "µs",
            ratios: true,
            rows: vec![
                ("blocking child.call".into(), blocking),
                ("awaited call_async, one tokio task".into(), awaited),
            ],
        },
        Table {
            title: "async: many callers on one script (aio.serve)",
            unit: "calls/s",
            ratios: true,
            rows: vec![
                ("blocking calls, 16 threads".into(), threads),
                ("call_async, 1,000 tokio tasks".into(), tasks),
            ],
        },
        Table {
            title: "async: a script calling the host (mean of one call)",
            unit: "µs",
            ratios: true,
            rows: vec![
                ("sync host function".into(), sync_fn),
                ("async host function".into(), async_fn),
            ],
        },
        Table {
            title: "async: a call's timeout to the interrupted export's finally, 100 trials",
            unit: "ms",
            ratios: false,
            rows: vec![("median".into(), p50), ("99th percentile".into(), p99)],
        },
    ]
}
