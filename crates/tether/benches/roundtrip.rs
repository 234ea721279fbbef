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

/// The interpreter: `TETHER_PYTHON`, else `python3` resolved to the real
/// executable once (a pyenv shim on PATH would add its own start-up to
/// every figure).
fn python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("TETHER_PYTHON") {
                return PathBuf::from(p);
            }
            Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .filter(|p| !p.is_empty())
                .map_or_else(|| PathBuf::from("python3"), PathBuf::from)
        })
        .clone()
}

/// Runs `f` with every thread of this process (and so the threads and
/// processes they start, tether's spawner included) pinned to CPU 0: both
/// sides of a round trip then share one core, as under `taskset -c 0`.
fn pinned<T>(f: impl FnOnce() -> T) -> T {
    use rustix::process::Pid;
    use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
    let tasks = || -> Vec<Option<Pid>> {
        std::fs::read_dir("/proc/self/task")
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                    .map(Pid::from_raw)
                    .collect()
            })
            .unwrap_or_default()
    };
    let all = sched_getaffinity(None).unwrap();
    let mut one = CpuSet::new();
    one.set(0);
    for tid in tasks() {
        let _ = sched_setaffinity(tid, &one);
    }
    let out = f();
    for tid in tasks() {
        let _ = sched_setaffinity(tid, &all);
    }
    out
}

/// Resident and peak resident memory of this process, in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts a new peak for [`rss`] (Linux: writing 5 to `clear_refs`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
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
    tether_echo_with(n, classic, true)
}

fn tether_echo_with(n: usize, classic: bool, spin: bool) -> f64 {
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
    if !spin {
        host = host.spin(std::time::Duration::ZERO);
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

const MIB: usize = 1024 * 1024;

/// 256 MiB from this process to Python and back over bare pipes raised to
/// 1 MiB, read into preallocated buffers on both sides: GB/s counting both
/// directions.
fn bare_bulk(size: usize) -> f64 {
    let code = format!(
        r#"
import os, fcntl
n = {size}
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
for fd in (0, 1):
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, 1 << 20)
    except OSError:
        pass
buf = bytearray(b"\1") * n  # touched: no page faults while timed
view = memoryview(buf)
os.write(1, b"r")
got = 0
while got < n:
    got += os.readv(0, [view[got:]])
sent = 0
while sent < n:
    sent += os.write(1, view[sent:])
"#
    );
    let mut child = Command::new(python())
        .arg("-c")
        .arg(code)
        .stdin(StdStdio::piped())
        .stdout(StdStdio::piped())
        .spawn()
        .unwrap();
    let mut to = child.stdin.take().unwrap();
    let mut from = child.stdout.take().unwrap();
    let _ = rustix::pipe::fcntl_setpipe_size(&to, MIB);
    let _ = rustix::pipe::fcntl_setpipe_size(&from, MIB);
    let data = vec![7u8; size];
    let mut back = vec![1u8; size];
    // The clock starts once Python is up and its buffer is ready.
    let mut ready = [0u8; 1];
    from.read_exact(&mut ready).unwrap();
    let t = Instant::now();
    to.write_all(&data).unwrap();
    from.read_exact(&mut back).unwrap();
    let secs = t.elapsed().as_secs_f64();
    drop(to);
    child.wait().unwrap();
    assert!(back == data);
    (2 * size) as f64 / secs / 1e9
}

/// `host.echo(data)` with `size` bytes: GB/s counting both directions, and
/// how far the host's peak resident memory rose above where it was, in
/// multiples of `size`.
fn tether_bulk(size: usize, shared_memory: bool) -> (f64, f64) {
    let code = format!(
        r#"
import time
from tether import host
data = b"x" * {size}
host.echo(b"warm")
t = time.perf_counter()
back = host.echo(data)
secs = time.perf_counter() - t
assert len(back) == len(data) and back[:1] == b"x" and back[-1:] == b"x"
print(2 * {size} / secs / 1e9)
"#
    );
    let mut host = Host::new()
        .python(python())
        .max_frame_size(u32::try_from(size + MIB).unwrap())
        .function("echo(value)", |v: Value| v);
    if shared_memory {
        host = host.shared_memory(MIB);
    }
    let (before, _) = rss();
    reset_peak();
    let out = host
        .run(Script::new(write_script("bulk.py", &code)).stdout(Stdio::Capture))
        .unwrap();
    let (_, peak) = rss();
    let text = String::from_utf8_lossy(out.stdout().unwrap()).into_owned();
    let rate = text
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("bulk script said: {text} {:?}", out.stderr()));
    (rate, peak.saturating_sub(before) as f64 / size as f64)
}

/// `children` scripts at once, each making `n` sequential calls: calls per
/// second in all, with spinning at its default bound or switched off.
fn crowd(children: usize, n: usize, spin: bool) -> f64 {
    let code = format!(
        r#"
from tether import host
echo = host.echo
for i in range({n}):
    echo(i)
"#
    );
    let script = write_script("crowd.py", &code);
    let mut host = Host::new()
        .python(python())
        .function("echo(value)", |v: Value| v);
    if !spin {
        host = host.spin(std::time::Duration::ZERO);
    }
    let t = Instant::now();
    let running: Vec<_> = (0..children)
        .map(|_| host.spawn(Script::new(&script)).unwrap())
        .collect();
    for child in running {
        assert!(child.wait().unwrap().success());
    }
    (children * n) as f64 / t.elapsed().as_secs_f64()
}

/// What an idle script costs the host, in bytes: `k` scripts that have
/// made one call and wait in `tether.serve()`.
fn idle_child_cost(k: usize) -> f64 {
    let code = "from tether import host\nimport tether\nhost.ready()\ntether.serve()\n";
    let script = write_script("idle.py", code);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let tx = std::sync::Mutex::new(tx);
    let host = Host::new().python(python()).function("ready()", move || {
        let _ = tx.lock().unwrap().send(());
    });
    // Start the pool and the watchdog before measuring.
    let warm = host.spawn(Script::new(&script)).unwrap();
    rx.recv().unwrap();
    let (before, _) = rss();
    let children: Vec<_> = (0..k)
        .map(|_| host.spawn(Script::new(&script)).unwrap())
        .collect();
    for _ in 0..k {
        rx.recv().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (after, _) = rss();
    for child in children.into_iter().chain([warm]) {
        child.shutdown(std::time::Duration::from_secs(2)).unwrap();
    }
    after.saturating_sub(before) as f64 / k as f64
}

/// How much `import tether` plus connecting and one call add to the
/// script's resident memory, in bytes.
fn import_cost() -> f64 {
    let code = r#"
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
before = rss()
import tether
from tether import host
host.echo(1)
print(rss() - before)
"#;
    measure(code)
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
    /// Whether rows compare with the first (else they are separate figures).
    ratios: bool,
}

impl Table {
    fn print(&self) {
        let base = self.rows[0].1;
        println!("\n{:<44} {:>10} {:>8}", self.title, self.unit, "ratio");
        for (label, value) in &self.rows {
            let decimals = if self.unit == "ms" {
                1
            } else if *value >= 1000.0 {
                0
            } else {
                2
            };
            if self.ratios {
                println!("{label:<44} {value:>10.decimals$} {:>8.2}", value / base);
            } else {
                println!("{label:<44} {value:>10.decimals$}");
            }
        }
    }

    fn markdown(&self, out: &mut String) {
        let base = self.rows[0].1;
        out.push_str(&format!(
            "\n| {} | {} | ratio |\n|---|---:|---:|\n",
            self.title, self.unit
        ));
        for (label, value) in &self.rows {
            let ratio = if self.ratios {
                format!("{:.2}", value / base)
            } else {
                String::new()
            };
            out.push_str(&format!("| {label} | {value:.2} | {ratio} |\n"));
        }
    }
}

/// A row's figure, by table title and the start of its label.
fn figure(tables: &[Table], title: &str, label: &str) -> Option<f64> {
    tables
        .iter()
        .find(|t| t.title.starts_with(title))?
        .rows
        .iter()
        .find(|(l, _)| l.starts_with(label))
        .map(|(_, v)| *v)
}

/// The issue's targets, each computed from this run's figures: met or not.
fn targets(tables: &[Table]) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: String, value: f64, goal: f64, higher: bool| {
        let met = if higher { value >= goal } else { value <= goal };
        let sign = if higher { ">=" } else { "<=" };
        out.push(format!(
            "{} {what}: {value:.2} (target {sign} {goal})",
            if met { "met:" } else { "NOT met:" },
        ));
    };
    let small = "small call";
    if let (Some(bare), Some(echo)) = (
        figure(tables, small, "bare pipe round trip, Rust"),
        figure(tables, small, "tether host.echo(i), native"),
    ) {
        check(
            "bare blocking round trip / host.echo".into(),
            bare / echo,
            5.0,
            true,
        );
        if let Some(seed) = figure(tables, small, "the seed's program") {
            check("seed's program / host.echo".into(), seed / echo, 10.0, true);
            if let Some(classic) = figure(tables, small, "tether classic.call") {
                check(
                    "seed's program / tether.classic".into(),
                    seed / classic,
                    1.0,
                    true,
                );
            }
        }
    }
    if let (Some(bare), Some(echo)) = (
        figure(tables, "small call, both sides pinned", "bare"),
        figure(tables, "small call, both sides pinned", "tether"),
    ) {
        check(
            "pinned host.echo / pinned bare round trip".into(),
            echo / bare,
            1.5,
            false,
        );
    }
    if let (Some(off), Some(on)) = (
        figure(tables, "8 scripts", "spinning off"),
        figure(tables, "8 scripts", "spinning on"),
    ) {
        check("8 scripts: spinning on / off".into(), on / off, 1.0, true);
    }
    if let Some(aio) = figure(tables, "throughput", "asyncio") {
        check("asyncio calls/s from one loop".into(), aio, 150_000.0, true);
    }
    let bulk = |shared: bool| {
        tables
            .iter()
            .find(|t| t.title.starts_with("bulk"))?
            .rows
            .iter()
            .find(|(l, _)| l.starts_with("tether") && l.ends_with("shared memory") == shared)
            .map(|(_, v)| *v)
    };
    if let (Some(bare), Some(pipe), Some(shm)) =
        (figure(tables, "bulk", "bare"), bulk(false), bulk(true))
    {
        check(
            "bulk echo through the pipe / bare 1 MiB pipe".into(),
            pipe / bare,
            0.9,
            true,
        );
        check(
            "bulk echo in shared memory / bare 1 MiB pipe".into(),
            shm / bare,
            3.0,
            true,
        );
    }
    if let (Some(value), Some(peak)) = (
        figure(tables, "memory while", "the value"),
        figure(tables, "memory while", "host peak RSS growth"),
    ) {
        check(
            "host peak RSS while echoing / value".into(),
            peak / value,
            2.5,
            false,
        );
    }
    if let Some(idle) = figure(tables, "memory per script", "host RSS per idle script") {
        check("host MiB per idle script".into(), idle, 2.0, false);
    }
    if let Some(import) = figure(tables, "memory per script", "script RSS added") {
        check(
            "MiB added to the script by import tether".into(),
            import,
            3.0,
            false,
        );
    }
    if let (Some(py), Some(first)) = (
        figure(tables, "start-up", "python3 -c pass"),
        figure(tables, "start-up", "spawn to first answered call"),
    ) {
        check(
            "spawn to first call / python3 -c pass".into(),
            first / py,
            1.15,
            false,
        );
    }
    out
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
    // Start-up first: a host process that has not yet run hundreds of
    // scripts, as a program starting its first script.
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
        let first = write_script("first.py", "from tether import host\nhost.foo(1)\n");
        let first_call = time_it(runs, || {
            host.run(Script::new(&first)).unwrap();
        });
        let startup = Table {
            title: "start-up (wall time)",
            ratios: true,
            unit: "ms",
            rows: vec![
                ("python3 -c pass".into(), py),
                ("spawn to first answered call, and exit".into(), first_call),
                ("demo script served by a tether host".into(), run),
            ],
        };

        tables.push(startup);
    }

    if wanted("small") {
        let mut small = Table {
            title: "small call (mean of one round trip)",
            unit: "µs",
            ratios: true,
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
            "tether host.echo(i), spinning off".into(),
            each(&|| tether_echo_with(n, false, false)),
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
            ratios: true,
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
            ratios: true,
            unit: "calls/s",
            rows: vec![
                ("one thread, sequential host.add".into(), median(seq)),
                ("8 threads".into(), median(thr)),
                ("asyncio, 1000 concurrent calls".into(), median(aio)),
            ],
        };

        tables.push(throughput);
    }
    if wanted("pinned") {
        let pinned = Table {
            title: "small call, both sides pinned to one vCPU (µs)",
            unit: "µs",
            ratios: true,
            rows: vec![
                (
                    "bare pipe round trip, pinned".into(),
                    pinned(|| each(&|| bare_round_trip(n, false))),
                ),
                (
                    "tether host.echo(i), pinned".into(),
                    pinned(|| each(&|| tether_echo(n, false))),
                ),
            ],
        };
        tables.push(pinned);
    }
    if wanted("crowd") {
        let per = (n / 8).max(100);
        // Interleaved, so that the machine's drift during the section weighs
        // on both alike.
        let (off, on): (Vec<f64>, Vec<f64>) = (0..runs)
            .map(|_| (crowd(8, per, false), crowd(8, per, true)))
            .unzip();
        let crowd_table = Table {
            title: "8 scripts at once on 2 vCPUs, calls/s in all",
            unit: "calls/s",
            ratios: true,
            rows: vec![
                ("spinning off".into(), median(off)),
                ("spinning on (adaptive, the default)".into(), median(on)),
            ],
        };
        tables.push(crowd_table);
    }
    if wanted("bulk") {
        let size: usize = std::env::var("TETHER_BENCH_BULK_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256)
            * MIB;
        let bulk_runs = 3;
        let bare = median((0..bulk_runs).map(|_| bare_bulk(size)).collect());
        let (rates, peaks): (Vec<f64>, Vec<f64>) =
            (0..bulk_runs).map(|_| tether_bulk(size, false)).unzip();
        let (shm_rates, shm_peaks): (Vec<f64>, Vec<f64>) =
            (0..bulk_runs).map(|_| tether_bulk(size, true)).unzip();
        tables.push(Table {
            title: "bulk: echo of one large bytes value, both directions",
            unit: "GB/s",
            ratios: true,
            rows: vec![
                (
                    format!("bare pipes raised to 1 MiB, {} MiB", size / MIB),
                    bare,
                ),
                (
                    format!("tether host.echo(data), {} MiB", size / MIB),
                    median(rates),
                ),
                (
                    format!("tether host.echo(data), {} MiB, shared memory", size / MIB),
                    median(shm_rates),
                ),
            ],
        });
        tables.push(Table {
            title: "memory while echoing it",
            unit: "MiB",
            ratios: true,
            rows: vec![
                ("the value".into(), (size / MIB) as f64),
                (
                    "host peak RSS growth".into(),
                    median(peaks) * (size / MIB) as f64,
                ),
                (
                    "host peak RSS growth, shared memory".into(),
                    median(shm_peaks) * (size / MIB) as f64,
                ),
            ],
        });
    }
    if wanted("memory") {
        tables.push(Table {
            title: "memory per script",
            unit: "MiB",
            ratios: false,
            rows: vec![
                (
                    "host RSS per idle script".into(),
                    idle_child_cost(10) / MIB as f64,
                ),
                (
                    "script RSS added by import tether + first call".into(),
                    median((0..runs).map(|_| import_cost()).collect()) / MIB as f64,
                ),
            ],
        });
    }
    for t in &tables {
        t.print();
    }
    let checks = targets(&tables);
    if !checks.is_empty() {
        println!("\ntargets (issue 4), from this run:");
        for line in &checks {
            println!("  {line}");
        }
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
        if !checks.is_empty() {
            md.push_str("\n## Targets, checked against this run\n\n");
            for line in &checks {
                md.push_str(&format!("- {line}\n"));
            }
        }
        md.push_str("\n## Tables\n");
        for t in &tables {
            t.markdown(&mut md);
        }
        let svg_path = report.with_file_name("performance.svg");
        std::fs::write(&report, md)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", report.display()));
        let chart = tables
            .iter()
            .find(|t| t.title.starts_with("small call ("))
            .unwrap_or(&tables[0]);
        std::fs::write(&svg_path, svg(chart))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", svg_path.display()));
        println!("\nwrote {}", report.display());
    }
}
