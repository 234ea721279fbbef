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
//! - the start-up of `python3 -c pass` beside a whole demo run;
//! - the async section: an awaited call beside a blocking one, 1,000 tasks
//!   on one script, an async host function beside a sync one, and the time
//!   from a call's timeout to the interrupted export's `finally`.
//!
//! `cargo bench --bench roundtrip`; `TETHER_BENCH_CALLS` sets the number of
//! calls (default 100000).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as StdStdio};
use std::time::Instant;

use tether::{Host, Script, Stdio, Value};

#[path = "roundtrip/asynchronous.rs"]
mod asynchronous;
#[path = "roundtrip/pools.rs"]
mod pools;
#[path = "roundtrip/report.rs"]
mod report;
use report::Table;

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
        data = read(12 - got)
        if not data:
            sys.exit("the bench went away")
        got += len(data)
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
        })
        // Ten levels: host.deep(x, 10) -> down(x, 10) -> host.deep(x, 9) ...
        .try_function(
            "deep(x, depth)",
            |x: Value, depth: i64| -> Result<Value, tether::Error> {
                if depth == 0 {
                    return Ok(x);
                }
                tether::Peer::current()
                    .expect("called by the script")
                    .call("down", (x, depth))
            },
        )
        .function("sleep_ms()", || {
            std::thread::sleep(std::time::Duration::from_millis(1))
        });
    let out = host
        .run(Script::new(write_script("measure.py", code)).stdout(Stdio::Capture))
        .unwrap();
    let text = String::from_utf8_lossy(out.stdout().unwrap()).into_owned();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("script said: {text}"))
}

fn nested_and_plain(n: usize) -> (f64, f64, f64) {
    let code = |call: &str, n: usize| {
        format!(
            r#"
import time, tether
from tether import host
@tether.export
def ident(x):
    return x
@tether.export
def down(x, depth):
    return host.deep(x, depth - 1)
f = {call}
f(0)
t = time.perf_counter()
for i in range({n}):
    f(i)
print((time.perf_counter() - t) / {n} * 1e6)
"#
        )
    };
    (
        measure(&code("host.nest", n)),
        measure(&code("host.echo", n)),
        measure(&code("lambda i: host.deep(i, 10)", (n / 10).max(10))),
    )
}

/// Calls/s of a host function that sleeps 1 ms: one thread, and 8 threads.
fn sleeping(n: usize) -> (f64, f64) {
    let n = n.clamp(80, 2000);
    let one = format!(
        r#"
import time
from tether import host
host.sleep_ms()
t = time.perf_counter()
for i in range({n}):
    host.sleep_ms()
print({n} / (time.perf_counter() - t))
"#
    );
    let per_thread = n / 8;
    let eight = format!(
        r#"
import threading, time
from tether import host
host.sleep_ms()
def work():
    for i in range({per_thread}):
        host.sleep_ms()
ts = [threading.Thread(target=work) for _ in range(8)]
t = time.perf_counter()
for th in ts: th.start()
for th in ts: th.join()
print({per_thread} * 8 / (time.perf_counter() - t))
"#
    );
    (measure(&one), measure(&eight))
}

/// µs per round trip of a small message between two Python processes over
/// `multiprocessing.Pipe`, the standard library's tool for it.
fn multiprocessing_pipe(n: usize) -> f64 {
    let code = format!(
        r#"
import multiprocessing as mp, time
def echo(conn):
    while True:
        x = conn.recv()
        if x is None:
            return
        conn.send(x)
if __name__ == "__main__":
    a, b = mp.Pipe()
    p = mp.Process(target=echo, args=(b,))
    p.start()
    a.send(0); a.recv()
    t = time.perf_counter()
    for i in range({n}):
        a.send(i)
        a.recv()
    print((time.perf_counter() - t) / {n} * 1e6)
    a.send(None)
    p.join()
"#
    );
    let out = Command::new(python())
        .arg(write_script("mp_pipe.py", &code))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.trim().parse().unwrap_or_else(|_| {
        panic!(
            "multiprocessing said: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
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
/// directions. With `fresh`, each side reads into a buffer mapped once the
/// clock runs (large pages asked for), as a receiver of a new value must: the
/// first touch of fresh memory is part of the figure, as it is for tether.
fn bare_bulk(size: usize, fresh: bool) -> f64 {
    let buffer = if fresh {
        "def buffer():\n    import mmap\n    m = mmap.mmap(-1, n)\n    m.madvise(getattr(mmap, 'MADV_HUGEPAGE', 14))\n    return memoryview(m)\n"
    } else {
        "touched = memoryview(bytearray(b'\\1') * n)  # no page faults while timed\ndef buffer():\n    return touched\n"
    };
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
{buffer}
os.write(1, b"r")
view = buffer()
got = 0
while got < n:
    k = os.readv(0, [view[got:]])
    if not k:
        raise SystemExit("the bench went away")
    got += k
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
    let mut touched = (!fresh).then(|| vec![1u8; size]);
    // The clock starts once Python is up and its buffer is ready.
    let mut ready = [0u8; 1];
    from.read_exact(&mut ready).unwrap();
    let t = Instant::now();
    to.write_all(&data).unwrap();
    let mut mapped;
    let back: &mut [u8] = match touched.as_mut() {
        Some(buf) => buf,
        None => {
            mapped = memmap2::MmapMut::map_anon(size).unwrap();
            let _ = mapped.advise(memmap2::Advice::HugePage);
            &mut mapped
        }
    };
    from.read_exact(back).unwrap();
    let secs = t.elapsed().as_secs_f64();
    drop(to);
    child.wait().unwrap();
    assert!(*back == data[..]);
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
        small.rows.push((
            "multiprocessing.Pipe, Python <-> Python".into(),
            each(&|| multiprocessing_pipe(n / 4)),
        ));

        tables.push(small);
    }
    if wanted("nesting") {
        let (mut nested, mut plain, mut deep) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (a, b, c) = nested_and_plain(n / 4);
            nested.push(a);
            plain.push(b);
            deep.push(c);
        }
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
                ("10 levels deep".into(), median(deep)),
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
        let (one, eight): (Vec<f64>, Vec<f64>) = (0..runs).map(|_| sleeping(n / 50)).unzip();
        tables.push(Table {
            title: "threads calling a host function that sleeps 1 ms",
            ratios: true,
            unit: "calls/s",
            rows: vec![
                ("one thread".into(), median(one)),
                ("8 threads".into(), median(eight)),
            ],
        });
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
        let bare = median((0..bulk_runs).map(|_| bare_bulk(size, false)).collect());
        let bare_fresh = median((0..bulk_runs).map(|_| bare_bulk(size, true)).collect());
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
                (
                    format!("(bare pipes into fresh buffers, {} MiB)", size / MIB),
                    bare_fresh,
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
    if wanted("async") {
        tables.extend(asynchronous::tables(n, runs));
    }
    if wanted("pool") {
        tables.extend(pools::pool_tables(n, runs));
    }
    if wanted("warm") {
        tables.extend(pools::warm_tables(runs));
    }
    if wanted("sandbox") {
        tables.extend(pools::sandbox_tables(n, runs));
    }
    report::finish(&tables, n, runs);
}
