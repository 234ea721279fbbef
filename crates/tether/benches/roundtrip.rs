//! Round-trip latency of one small call, beside the baselines it must be
//! judged against, all measured in the same run:
//!
//! - a bare pipe round trip between this process and Python (Python writes a
//!   4-byte length and 8 bytes, Rust answers the same);
//! - `host.echo(i)` through tether's native protocol;
//! - `tether.classic.call("echo", i)` through the classic protocol;
//! - one call that nests one level (Python -> host -> Python -> back) beside a
//!   plain call;
//! - calls per second from one thread, from 8 threads, and from 1,000
//!   concurrent asyncio calls;
//! - the start-up of `python3 -c pass` beside a whole demo run.
//!
//! `cargo bench --bench roundtrip`; `TETHER_BENCH_CALLS` sets the number of
//! calls (default 100000).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as StdStdio};
use std::time::Instant;

use tether::{Host, Script, Stdio, Value};

fn python() -> PathBuf {
    std::env::var_os("TETHER_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

fn calls() -> usize {
    std::env::var("TETHER_BENCH_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

fn write_script(name: &str, code: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tether-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, code).unwrap();
    path
}

/// Python writes 12 bytes and reads 12 back; this process echoes them.
fn bare_pipe(n: usize) -> f64 {
    let code = format!(
        r#"
import os, struct, sys, time
msg = struct.pack("<I", 8) + b"12345678"
n = {n}
t = time.perf_counter()
for _ in range(n):
    os.write(1, msg)
    got = 0
    while got < 12:
        got += len(os.read(0, 12 - got))
sys.stderr.write("%f\n" % ((time.perf_counter() - t) / n * 1e6))
"#
    );
    let mut child = Command::new(python())
        .arg("-c")
        .arg(code)
        .stdin(StdStdio::piped())
        .stdout(StdStdio::piped())
        .stderr(StdStdio::piped())
        .spawn()
        .unwrap();
    let mut to = child.stdin.take().unwrap();
    let mut from = child.stdout.take().unwrap();
    let mut buf = [0u8; 12];
    for _ in 0..n {
        from.read_exact(&mut buf).unwrap();
        to.write_all(&buf).unwrap();
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    err.trim()
        .parse()
        .unwrap_or_else(|_| panic!("bare pipe script said: {err}"))
}

fn tether_echo(n: usize, classic: bool) -> f64 {
    let code = if classic {
        format!(
            r#"
import sys, time
from tether import classic
n = {n}
classic.call("echo", 0)
t = time.perf_counter()
for i in range(n):
    classic.call("echo", i)
print((time.perf_counter() - t) / n * 1e6)
"#
        )
    } else {
        format!(
            r#"
import sys, time
from tether import host
n = {n}
echo = host.echo
echo(0)
t = time.perf_counter()
for i in range(n):
    echo(i)
print((time.perf_counter() - t) / n * 1e6)
"#
        )
    };
    let mut host = Host::new()
        .python(python())
        .function("echo(value)", |v: Value| v);
    if classic {
        host = host.classic();
    }
    let out = host
        .run(Script::new(write_script("echo.py", &code)).stdout(Stdio::Capture))
        .unwrap();
    let text = String::from_utf8_lossy(out.stdout().unwrap()).into_owned();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("echo script said: {text}"))
}

/// Runs a script under a host with `echo`, `add` and `nest` (which calls the
/// script's `ident` export), and returns the number it prints.
fn measure(code: &str) -> f64 {
    let host = Host::new()
        .python(python())
        .function("echo(value)", |v: Value| v)
        .function("add(a, b)", |a: i64, b: i64| a + b)
        .try_function("nest(x)", |x: Value| -> Result<Value, tether::Error> {
            tether::Peer::current()
                .expect("called by the script")
                .call("ident", (x,))
        });
    let out = host
        .run(Script::new(write_script("measure.py", code)).stdout(Stdio::Capture))
        .unwrap();
    let text = String::from_utf8_lossy(out.stdout().unwrap()).into_owned();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("script said: {text}"))
}

fn nested_and_plain(n: usize) -> (f64, f64) {
    let code = |call: &str| {
        format!(
            r#"
import time, tether
from tether import host
@tether.export
def ident(x):
    return x
f = {call}
f(0)
t = time.perf_counter()
for i in range({n}):
    f(i)
print((time.perf_counter() - t) / {n} * 1e6)
"#
        )
    };
    (measure(&code("host.nest")), measure(&code("host.echo")))
}

fn throughput(n: usize) -> (f64, f64, f64) {
    let per_thread = n / 8;
    let threads = format!(
        r#"
import threading, time
from tether import host
host.add(0, 0)
def work(k):
    for i in range({per_thread}):
        host.add(k, i)
ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
t = time.perf_counter()
for th in ts: th.start()
for th in ts: th.join()
print({per_thread} * 8 / (time.perf_counter() - t))
"#
    );
    let sequential = format!(
        r#"
import time
from tether import host
host.add(0, 0)
t = time.perf_counter()
for i in range({n}):
    host.add(i, 1)
print({n} / (time.perf_counter() - t))
"#
    );
    let rounds = (n / 1000).max(1);
    let asyncio = format!(
        r#"
import asyncio, time, tether
async def main():
    add = tether.aio.host.add
    await add(0, 0)
    t = time.perf_counter()
    for _ in range({rounds}):
        await asyncio.gather(*(add(i, 1) for i in range(1000)))
    print({rounds} * 1000 / (time.perf_counter() - t))
asyncio.run(main())
"#
    );
    (measure(&sequential), measure(&threads), measure(&asyncio))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn time_it(runs: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn main() {
    let n = calls();
    let runs = 5;
    println!("tether round-trip benchmark: {n} calls per run, median of {runs} runs\n");
    let bare = median((0..runs).map(|_| bare_pipe(n)).collect());
    let echo = median((0..runs).map(|_| tether_echo(n, false)).collect());
    let classic = median((0..runs).map(|_| tether_echo(n, true)).collect());
    println!(
        "{:<44} {:>10} {:>8}",
        "small call (mean of one round trip)", "µs", "ratio"
    );
    println!(
        "{:<44} {:>10.2} {:>8.2}",
        "bare pipe round trip, Rust <-> Python", bare, 1.0
    );
    println!(
        "{:<44} {:>10.2} {:>8.2}",
        "tether host.echo(i), native",
        echo,
        echo / bare
    );
    println!(
        "{:<44} {:>10.2} {:>8.2}",
        "tether classic.call('echo', i)",
        classic,
        classic / bare
    );

    let (nested, plain): (Vec<f64>, Vec<f64>) = (0..runs).map(|_| nested_and_plain(n / 4)).unzip();
    let (nested, plain) = (median(nested), median(plain));
    println!(
        "\n{:<44} {:>10} {:>8}",
        "nesting (mean of one call)", "µs", "ratio"
    );
    println!(
        "{:<44} {:>10.2} {:>8.2}",
        "plain call host.echo(i)", plain, 1.0
    );
    println!(
        "{:<44} {:>10.2} {:>8.2}",
        "nested: Python -> host -> Python -> back",
        nested,
        nested / plain
    );

    let mut seq = Vec::new();
    let mut thr = Vec::new();
    let mut aio = Vec::new();
    for _ in 0..runs {
        let (s, t, a) = throughput(n / 2);
        seq.push(s);
        thr.push(t);
        aio.push(a);
    }
    let (seq, thr, aio) = (median(seq), median(thr), median(aio));
    println!("\n{:<44} {:>10} {:>8}", "throughput", "calls/s", "ratio");
    println!(
        "{:<44} {:>10.0} {:>8.2}",
        "one thread, sequential host.add", seq, 1.0
    );
    println!("{:<44} {:>10.0} {:>8.2}", "8 threads", thr, thr / seq);
    println!(
        "{:<44} {:>10.0} {:>8.2}",
        "asyncio, 1000 concurrent calls",
        aio,
        aio / seq
    );

    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo.py");
    let py = time_it(runs, || {
        assert!(Command::new(python())
            .args(["-c", "pass"])
            .status()
            .unwrap()
            .success());
    });
    let host = Host::new()
        .python(python())
        .function("foo(arg)", |arg: Value| {
            format!("Foo was called with arg {arg}")
        })
        .function("bar(arg)", |arg: Value| {
            format!("Bar was called with arg {arg}")
        })
        .try_function(
            "map_with(name, values)",
            |name: String, values: Vec<Value>| -> Result<Vec<Value>, tether::Error> {
                let script = tether::Peer::current().expect("called by the script");
                values
                    .into_iter()
                    .map(|v| script.call(&name, (v,)))
                    .collect()
            },
        );
    let run = time_it(runs, || {
        host.run(Script::new(&demo).stdout(Stdio::Null)).unwrap();
    });
    println!(
        "\n{:<44} {:>10} {:>8}",
        "start-up (wall time)", "ms", "ratio"
    );
    println!("{:<44} {:>10.1} {:>8.2}", "python3 -c pass", py, 1.0);
    println!(
        "{:<44} {:>10.1} {:>8.2}",
        "demo script served by a tether host",
        run,
        run / py
    );
}
