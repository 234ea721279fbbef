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
/// With `spin`, both sides poll non-blocking reads instead of sleeping in
/// them: the floor a pipe allows when no process ever sleeps.
fn bare_round_trip(n: usize, spin: bool) -> f64 {
    let read = if spin {
        "os.set_blocking(0, False)\ndef read(k):\n    while True:\n        try:\n            return os.read(0, k)\n        except BlockingIOError:\n            pass\n"
    } else {
        "def read(k):\n    return os.read(0, k)\n"
    };
    let code = format!(
        r#"
import os, struct, sys, time
{read}
msg = struct.pack("<I", 8) + b"12345678"
n = {n}
t = time.perf_counter()
for _ in range(n):
    os.write(1, msg)
    got = 0
    while got < 12:
        got += len(read(12 - got))
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
    let from = child.stdout.take().unwrap();
    if spin {
        let flags = rustix::fs::fcntl_getfl(&from).unwrap();
        rustix::fs::fcntl_setfl(&from, flags | rustix::fs::OFlags::NONBLOCK).unwrap();
    }
    let mut buf = [0u8; 12];
    for _ in 0..n {
        let mut got = 0;
        while got < 12 {
            match rustix::io::read(&from, &mut buf[got..]) {
                Ok(k) => got += k,
                Err(rustix::io::Errno::AGAIN) => std::hint::spin_loop(),
                Err(e) => panic!("{e}"),
            }
        }
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
        .unwrap_or_else(|_| panic!("bare round-trip script said: {err}"))
}

/// The seed's own program: its C++ host (built here with `c++`) and its
/// Python client ported to Python 3, timing `foo` calls. `None` without a
/// C++ compiler.
fn seed_program(n: usize) -> Option<f64> {
    let dir = std::env::temp_dir().join(format!("tether-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let exe = dir.join("seed_host");
    if !exe.exists() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/seed/seed_host.cpp");
        let built = Command::new("c++")
            .args(["-O2", "-o"])
            .arg(&exe)
            .arg(source)
            .status()
            .ok()?;
        if !built.success() {
            return None;
        }
    }
    let result = dir.join("seed_result.txt");
    let client = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tether-capi/examples/cpp/seed_main.py"),
    )
    .ok()?;
    // The seed's client as it is, with a timing loop instead of its demo main.
    let client = client.split("\ndef main():").next()?.to_owned()
        + &format!(
            "\nimport time\nt = time.perf_counter()\nfor i in range({n}):\n    foo(i)\nopen({:?}, 'w').write(str((time.perf_counter() - t) / {n} * 1e6))\n",
            result.to_string_lossy()
        );
    let script = write_script("seed_client.py", &client);
    let status = Command::new(&exe)
        .arg(&script)
        .stdout(StdStdio::null())
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    std::fs::read_to_string(&result).ok()?.trim().parse().ok()
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

/// One printed table.
struct Table {
    title: &'static str,
    unit: &'static str,
    rows: Vec<(String, f64)>,
}

impl Table {
    fn print(&self) {
        let base = self.rows[0].1;
        println!("\n{:<44} {:>10} {:>8}", self.title, self.unit, "ratio");
        for (label, value) in &self.rows {
            let decimals = if self.unit == "µs" {
                2
            } else if self.unit == "ms" {
                1
            } else {
                0
            };
            println!("{label:<44} {value:>10.decimals$} {:>8.2}", value / base);
        }
    }

    fn markdown(&self, out: &mut String) {
        let base = self.rows[0].1;
        out.push_str(&format!(
            "\n| {} | {} | ratio |\n|---|---:|---:|\n",
            self.title, self.unit
        ));
        for (label, value) in &self.rows {
            out.push_str(&format!("| {label} | {value:.2} | {:.2} |\n", value / base));
        }
    }
}

/// Horizontal bars for the small-call table: one look instead of reading.
fn svg(table: &Table) -> String {
    let max = table.rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1e-9);
    let (width, bar_left, row) = (760.0, 330.0, 28.0);
    let height = 40.0 + row * table.rows.len() as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n<text x=\"10\" y=\"20\" font-weight=\"bold\">{} ({}, shorter is better)</text>\n",
        table.title, table.unit
    );
    for (i, (label, value)) in table.rows.iter().enumerate() {
        let y = 34.0 + row * i as f64;
        let w = (width - bar_left - 80.0) * value / max;
        out += &format!(
            "<text x=\"10\" y=\"{:.0}\">{}</text><rect x=\"{bar_left}\" y=\"{y:.0}\" width=\"{w:.1}\" height=\"18\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.0}\">{value:.2}</text>\n",
            y + 14.0,
            label.replace('<', "&lt;").replace('>', "&gt;"),
            if label.starts_with("tether") { "#3572a5" } else { "#999999" },
            bar_left + w + 6.0,
            y + 14.0
        );
    }
    out + "</svg>\n"
}

/// Whether `TETHER_BENCH_ONLY` (a comma-separated list of sections) asks
/// for `section`; all sections when it is unset.
fn wanted(section: &str) -> bool {
    std::env::var("TETHER_BENCH_ONLY")
        .map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

fn main() {
    let n = calls();
    let runs = 5;
    println!("tether round-trip benchmark: {n} calls per run, median of {runs} runs");
    let each = |f: &dyn Fn() -> f64| median((0..runs).map(|_| f()).collect());
    let mut tables = Vec::new();
    if wanted("small") {
        let mut small = Table {
            title: "small call (mean of one round trip)",
            unit: "µs",
            rows: vec![
                (
                    "bare pipe round trip, Rust <-> Python".into(),
                    each(&|| bare_round_trip(n, false)),
                ),
                (
                    "bare pipe round trip, both sides spinning".into(),
                    each(&|| bare_round_trip(n, true)),
                ),
            ],
        };
        let seed: Vec<f64> = (0..runs).filter_map(|_| seed_program(n / 4)).collect();
        if !seed.is_empty() {
            small.rows.push((
                "the seed's program (C++ host, its client)".into(),
                median(seed),
            ));
        }
        small.rows.push((
            "tether host.echo(i), native".into(),
            each(&|| tether_echo(n, false)),
        ));
        small.rows.push((
            "tether classic.call('echo', i)".into(),
            each(&|| tether_echo(n, true)),
        ));

        tables.push(small);
    }
    if wanted("nesting") {
        let (nested, plain): (Vec<f64>, Vec<f64>) =
            (0..runs).map(|_| nested_and_plain(n / 4)).unzip();
        let nesting = Table {
            title: "nesting (mean of one call)",
            unit: "µs",
            rows: vec![
                ("plain call host.echo(i)".into(), median(plain)),
                (
                    "nested: Python -> host -> Python -> back".into(),
                    median(nested),
                ),
            ],
        };

        tables.push(nesting);
    }
    if wanted("throughput") {
        let (mut seq, mut thr, mut aio) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (s, t, a) = throughput(n / 2);
            seq.push(s);
            thr.push(t);
            aio.push(a);
        }
        let throughput = Table {
            title: "throughput",
            unit: "calls/s",
            rows: vec![
                ("one thread, sequential host.add".into(), median(seq)),
                ("8 threads".into(), median(thr)),
                ("asyncio, 1000 concurrent calls".into(), median(aio)),
            ],
        };

        tables.push(throughput);
    }
    if wanted("startup") {
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
        let startup = Table {
            title: "start-up (wall time)",
            unit: "ms",
            rows: vec![
                ("python3 -c pass".into(), py),
                ("demo script served by a tether host".into(), run),
            ],
        };

        tables.push(startup);
    }

    for t in &tables {
        t.print();
    }
    // `TETHER_BENCH_REPORT=docs/performance.md` writes the tables there and
    // the small-call chart beside it (`performance.svg`).
    if let Some(report) = std::env::var_os("TETHER_BENCH_REPORT") {
        // Relative to the workspace root (cargo runs benches in the package's directory).
        let report = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(report);
        let mut md = format!(
            "# Performance\n\nWritten by `TETHER_BENCH_REPORT=docs/performance.md cargo bench --bench roundtrip` \
             ({n} calls per run, median of {runs} runs, ratios against the first row of each table, \
             all measured in the same run on a 2-vCPU machine; shared and noisy, so compare ratios, not \
             absolute figures).\n\n![small calls](performance.svg)\n"
        );
        for t in &tables {
            t.markdown(&mut md);
        }
        let svg_path = report.with_file_name("performance.svg");
        std::fs::write(&report, md)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", report.display()));
        std::fs::write(&svg_path, svg(&tables[0]))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", svg_path.display()));
        println!("\nwrote {}", report.display());
    }
}
