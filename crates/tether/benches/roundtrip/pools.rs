//! The `pool`, `warm` and `sandbox` sections (`TETHER_BENCH_ONLY=pool,warm,sandbox`): how a
//! pool's throughput grows with its workers on a CPU-bound export, what a
//! call through a pool costs beside one to a `Child`, and how fast (and how
//! much smaller) warm workers are than cold ones, with and without numpy.

use std::process::Command;
use std::time::{Duration, Instant};

use tether::{Host, Script, Zygote};

use super::{median, python, time_it, write_script, Table};

const WORKER: &str = r#"
import tether

@tether.export
def burn(n):
    total = 0
    for k in range(n):
        total += k * k % 7
    return total

@tether.export
def square(x):
    return x * x

tether.serve()
"#;

const NUMPY_WORKER: &str = r#"
import numpy
import tether

@tether.export
def square(x):
    return int(numpy.int64(x) * x)

tether.serve()
"#;

fn host() -> Host {
    Host::new().python(python())
}

/// How many loop iterations of `burn` take about 2 ms here.
fn two_milliseconds(host: &Host, script: &Script) -> u64 {
    let child = host.spawn(script.clone()).unwrap();
    // The first call also waits for the script to be ready.
    let _: u64 = child.call("burn", (1,)).unwrap();
    let mut n = 10_000u64;
    loop {
        let t = Instant::now();
        let _: u64 = child.call("burn", (n,)).unwrap();
        let took = t.elapsed();
        if took >= Duration::from_millis(1) || n > 10_000_000 {
            let scaled = n as f64 * 2.0e-3 / took.as_secs_f64();
            return scaled as u64;
        }
        n *= 2;
    }
}

/// Calls per second of the 2 ms export through a pool of `workers`, from
/// 4 threads for `length`.
fn throughput(host: &Host, script: &Script, workers: usize, n: u64, length: Duration) -> f64 {
    let pool = host.pool(script.clone()).workers(workers).start().unwrap();
    for _ in 0..workers * 2 {
        let _: u64 = pool.call("burn", (n,)).unwrap();
    }
    let until = Instant::now() + length;
    let started = Instant::now();
    let calls: usize = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut calls = 0;
                    while Instant::now() < until {
                        let _: u64 = pool.call("burn", (n,)).unwrap();
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    let rate = calls as f64 / started.elapsed().as_secs_f64();
    pool.shutdown(Duration::from_secs(5));
    rate
}

/// Mean µs per small call: to a `Child` directly, and through a pool of
/// one worker.
fn call_cost(host: &Host, script: &Script, n: usize) -> (f64, f64) {
    let child = host.spawn(script.clone()).unwrap();
    let pool = host.pool(script.clone()).workers(1).start().unwrap();
    for i in 0..1000 {
        let _: i64 = child.call("square", (i,)).unwrap();
        let _: i64 = pool.call("square", (i,)).unwrap();
    }
    let mean = |f: &dyn Fn(i64) -> i64| {
        let t = Instant::now();
        for i in 0..n {
            std::hint::black_box(f(i as i64));
        }
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    };
    // Interleaved halves, so drift in the machine's speed hits both alike.
    let (mut direct, mut pooled) = (Vec::new(), Vec::new());
    for _ in 0..4 {
        direct.push(mean(&|i| child.call("square", (i,)).unwrap()));
        pooled.push(mean(&|i| pool.call("square", (i,)).unwrap()));
    }
    pool.shutdown(Duration::from_secs(5));
    (median(direct), median(pooled))
}

pub fn pool_tables(n: usize, runs: usize) -> Vec<Table> {
    let host = host();
    let script = Script::new(write_script("pool_worker.py", WORKER));
    let burn = two_milliseconds(&host, &script);
    let length = Duration::from_millis(1500);
    let (one, two): (Vec<f64>, Vec<f64>) = (0..runs.min(3))
        .map(|_| {
            (
                throughput(&host, &script, 1, burn, length),
                throughput(&host, &script, 2, burn, length),
            )
        })
        .unzip();
    let (direct, pooled) = call_cost(&host, &script, n / 20);
    vec![
        Table {
            title: "pool: a 2 ms pure-Python export, 4 calling threads",
            unit: "calls/s",
            ratios: true,
            rows: vec![
                ("1 worker".into(), median(one)),
                ("2 workers".into(), median(two)),
            ],
        },
        Table {
            title: "pool: a small call (mean of one call)",
            unit: "µs",
            ratios: true,
            rows: vec![
                ("child.call".into(), direct),
                ("pool.call, 1 worker".into(), pooled),
            ],
        },
    ]
}

/// Milliseconds from spawning `script` to its first answered call.
fn first_call(host: &Host, script: &Script) -> f64 {
    let t = Instant::now();
    let child = host.spawn(script.clone()).unwrap();
    let _: i64 = child.call("square", (3,)).unwrap();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    drop(child);
    ms
}

fn has_numpy() -> bool {
    Command::new(python())
        .args(["-c", "import numpy"])
        .status()
        .is_ok_and(|s| s.success())
}

/// MiB summed over `pids`: resident (RSS) and proportional (PSS: shared
/// pages divided among the processes sharing them).
fn memory(pids: &[u32]) -> (f64, f64) {
    let field = |text: &str, name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    pids.iter()
        .map(|pid| {
            let rollup =
                std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
            (field(&rollup, "Rss:"), field(&rollup, "Pss:"))
        })
        .fold((0.0, 0.0), |(a, b), (c, d)| (a + c, b + d))
}

/// Memory of 4 workers of `script`, cold or forked by `zygote`, each having
/// answered a call.
fn four_workers(host: &Host, script: &Script, zygote: Option<&Zygote>) -> (f64, f64) {
    let script = match zygote {
        Some(z) => script.clone().warm(z),
        None => script.clone(),
    };
    let children: Vec<_> = (0..4)
        .map(|_| {
            let child = host.spawn(script.clone()).unwrap();
            let _: i64 = child.call("square", (2,)).unwrap();
            child
        })
        .collect();
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    let mem = memory(&pids);
    drop(children);
    mem
}

pub fn warm_tables(runs: usize) -> Vec<Table> {
    let host = host();
    let script = Script::new(write_script("warm_worker.py", WORKER));
    let zygote = host.zygote().start().unwrap();
    for _ in 0..3 {
        first_call(&host, &script);
        first_call(&host, &script.clone().warm(&zygote));
    }
    let runs = runs.max(5) * 2;
    let py = time_it(runs, || {
        assert!(Command::new(python())
            .args(["-c", "pass"])
            .status()
            .unwrap()
            .success());
    });
    let cold = median((0..runs).map(|_| first_call(&host, &script)).collect());
    let warm_script = script.clone().warm(&zygote);
    let warm = median((0..runs).map(|_| first_call(&host, &warm_script)).collect());
    let mut tables = vec![Table {
        title: "warm start: spawn to first answered call",
        unit: "ms",
        ratios: true,
        rows: vec![
            ("python3 -c pass".into(), py),
            ("cold script".into(), cold),
            ("warm script (forked by a zygote)".into(), warm),
        ],
    }];
    if !has_numpy() {
        println!(
            "\n(warm start with numpy skipped: {} has no numpy)",
            python().display()
        );
        return tables;
    }
    let numpy = Script::new(write_script("numpy_worker.py", NUMPY_WORKER));
    let numpy_zygote = host.zygote().preload(["numpy"]).start().unwrap();
    let numpy_warm = numpy.clone().warm(&numpy_zygote);
    first_call(&host, &numpy);
    first_call(&host, &numpy_warm);
    let cold_numpy = median((0..runs).map(|_| first_call(&host, &numpy)).collect());
    let warm_numpy = median((0..runs).map(|_| first_call(&host, &numpy_warm)).collect());
    tables.push(Table {
        title: "warm start with numpy: spawn to first answered call",
        unit: "ms",
        ratios: true,
        rows: vec![
            ("cold script importing numpy".into(), cold_numpy),
            ("warm script, numpy preloaded".into(), warm_numpy),
        ],
    });
    let (cold_rss, cold_pss) = four_workers(&host, &numpy, None);
    let (warm_rss, warm_pss) = four_workers(&host, &numpy, Some(&numpy_zygote));
    tables.push(Table {
        title: "warm start with numpy: memory of 4 workers",
        unit: "MiB",
        ratios: true,
        rows: vec![
            ("cold, RSS summed".into(), cold_rss),
            ("warm, RSS summed".into(), warm_rss),
            ("cold, PSS summed (shared pages divided)".into(), cold_pss),
            ("warm, PSS summed (shared pages divided)".into(), warm_pss),
        ],
    });
    tables
}

const ECHO_SERVER: &str = r#"
import sys, time, tether
from tether import host

@tether.export
def echo_loop(n):
    t = time.perf_counter()
    for i in range(n):
        host.echo(i)
    return (time.perf_counter() - t) * 1e6 / n

@tether.export
def square(x):
    return x * x

tether.serve()
"#;

/// The `sandbox` section: what confinement costs at start-up and per call.
pub fn sandbox_tables(n: usize, runs: usize) -> Vec<Table> {
    let host = host().function("echo(value)", |v: tether::Value| v);
    let script = Script::new(write_script("sandbox_server.py", ECHO_SERVER));
    let sandboxed = script.clone().sandbox(tether::Sandbox::new());
    for _ in 0..3 {
        first_call(&host, &script);
        first_call(&host, &sandboxed);
    }
    let runs = runs.max(5) * 2;
    // Interleaved, so drift in the machine hits both alike.
    let (mut plain, mut confined) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        plain.push(first_call(&host, &script));
        confined.push(first_call(&host, &sandboxed));
    }
    let per_call = |s: &Script| {
        let child = host.spawn(s.clone()).unwrap();
        let _: f64 = child.call("echo_loop", (1000,)).unwrap();
        let mut means = Vec::new();
        for _ in 0..5 {
            means.push(child.call::<f64>("echo_loop", (n / 20,)).unwrap());
        }
        median(means)
    };
    let (mut echo_plain, mut echo_confined) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        echo_plain.push(per_call(&script));
        echo_confined.push(per_call(&sandboxed));
    }
    vec![
        Table {
            title: "sandbox: spawn to first answered call",
            unit: "ms",
            ratios: true,
            rows: vec![
                ("unsandboxed".into(), median(plain)),
                ("default sandbox".into(), median(confined)),
            ],
        },
        Table {
            title: "sandbox: host.echo(i) from the script (mean of one call)",
            unit: "µs",
            ratios: true,
            rows: vec![
                ("unsandboxed".into(), median(echo_plain)),
                ("default sandbox".into(), median(echo_confined)),
            ],
        },
    ]
}
