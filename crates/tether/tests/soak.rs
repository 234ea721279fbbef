//! Soak: 50 scripts in turn and 8 at once, each making 1,500 calls with
//! random sizes up to 1 MiB, some killed at random points. Every answered
//! call must be correct (the script checks each echo), every failure must be
//! reported, and the host's descriptors, threads and memory must come back.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tether::{Host, Script, Stdio, Value};

const CALLS: u32 = 1500;

const SCRIPT: &str = r#"
import random, sys
from tether import host
rng = random.Random(int(sys.argv[1]))
for i in range(int(sys.argv[2])):
    size = rng.randrange(1 << 20) if i % 50 == 0 else rng.randrange(1024)
    value = rng.randbytes(size) if hasattr(rng, "randbytes") else bytes(rng.getrandbits(8) for _ in range(size))
    back = host.echo(value)
    if back != value:
        sys.exit("call %d: wrong answer (%d bytes sent, %d back)" % (i, len(value), len(back)))
"#;

/// A tiny deterministic generator (no dependency needed for test noise).
fn next(seed: &AtomicU64) -> u64 {
    let x = seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Default, Debug)]
struct Tally {
    scripts: u64,
    calls: u64,
    killed: u64,
}

fn run_one(
    host: &Host,
    path: &std::path::Path,
    seed: &AtomicU64,
    kill: bool,
    tally: &std::sync::Mutex<Tally>,
) {
    let child = host
        .spawn(
            Script::new(path)
                .arg(next(seed).to_string())
                .arg(CALLS.to_string())
                .stderr(Stdio::Capture),
        )
        .unwrap();
    if kill {
        std::thread::sleep(Duration::from_millis(20 + next(seed) % 200));
        child.kill().unwrap();
    }
    let outcome = child.wait().unwrap();
    let mut t = tally.lock().unwrap();
    t.scripts += 1;
    t.calls += outcome.calls();
    match outcome.signal() {
        Some(9) if kill => t.killed += 1,
        _ if kill && outcome.success() => {} // it finished before the kill
        _ => assert!(
            outcome.success(),
            "{}",
            String::from_utf8_lossy(outcome.stderr().unwrap_or_default())
        ),
    }
}

#[test]
fn fifty_in_turn_and_eight_at_once_with_random_kills() {
    let host = Host::new()
        .python(python())
        .function("echo(value)", |v: Value| v);
    let path = script(SCRIPT);
    let seed = AtomicU64::new(0x5eed);
    let tally = std::sync::Mutex::new(Tally::default());
    run_one(&host, &path, &seed, false, &tally); // warm-up: pool, client cache
    let (fds0, threads0, rss0) = (fds(), status_field("Threads:"), status_field("VmRSS:"));
    let started = Instant::now();

    for i in 0..50 {
        run_one(&host, &path, &seed, i % 5 == 3, &tally);
    }
    std::thread::scope(|s| {
        for i in 0..8 {
            let (host, path, seed, tally) = (&host, &path, &seed, &tally);
            s.spawn(move || run_one(host, path, seed, i % 4 == 1, tally));
        }
    });

    let deadline = Instant::now() + Duration::from_secs(5);
    while (fds() > fds0 || status_field("Threads:") > threads0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (fds1, threads1, rss1) = (fds(), status_field("Threads:"), status_field("VmRSS:"));
    let t = tally.lock().unwrap();
    eprintln!(
        "soak: {} scripts, {} calls answered and checked, {} killed at random points, in {:?}; \
         fds {fds0} -> {fds1}, threads {threads0} -> {threads1}, RSS {rss0} KiB -> {rss1} KiB",
        t.scripts,
        t.calls,
        t.killed,
        started.elapsed()
    );
    assert_eq!(t.scripts, 59);
    assert!(t.killed >= 6, "{t:?}");
    assert!(fds1 <= fds0, "descriptors {fds0} -> {fds1}");
    assert!(threads1 <= threads0, "threads {threads0} -> {threads1}");
    // The allocator may keep some freed memory; a leak of the data moved
    // (gigabytes over the run) would show far above this.
    assert!(rss1 < rss0 + 64 * 1024, "RSS {rss0} KiB -> {rss1} KiB");
}
