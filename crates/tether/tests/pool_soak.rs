//! A pool under fire: 8 threads call for 10 s while workers are SIGKILLed
//! at random (then the same, warm, with the zygote killed too). Every call
//! is answered correctly or fails naming the worker's death, none hangs,
//! the restarts are counted, and the host's descriptors, threads and
//! children come back to where they were.
//!
//! One test in a binary of its own: the counts are the whole process's.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use tether::{Pool, Script};

const WORKER: &str = r#"
import os, sys, tether
open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()

@tether.export
def work(i):
    total = 0
    for k in range(2000):
        total += k * i % 7
    return [i, total]

tether.serve()
"#;

fn expected(i: u64) -> u64 {
    (0..2000u64).map(|k| k * i % 7).sum()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// A tiny deterministic generator (test noise needs no dependency).
fn next(seed: &AtomicU64) -> u64 {
    let x = seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn kill(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

struct Totals {
    ok: u64,
    failed: u64,
    killed: u64,
}

/// Calls from 8 threads for `length` while a ninth kills a random worker
/// (and, with `zygote`, now and then the zygote) every 20 to 120 ms.
fn soak(
    pool: &Pool,
    pids: &std::path::Path,
    length: Duration,
    zygote: Option<&tether::Zygote>,
) -> Totals {
    let stop = AtomicBool::new(false);
    let seed = AtomicU64::new(7);
    let next_i = AtomicU64::new(0);
    let killed = AtomicU64::new(0);
    let (ok, failed) = std::thread::scope(|s| {
        let callers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let (mut ok, mut failed) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let i = next_i.fetch_add(1, Ordering::Relaxed);
                        let started = Instant::now();
                        match pool.call::<(u64, u64)>("work", (i,)) {
                            Ok(answer) => {
                                assert_eq!(answer, (i, expected(i)), "a wrong answer");
                                ok += 1;
                            }
                            Err(e) => {
                                let text = e.to_string();
                                assert!(
                                    text.contains("work() failed: worker ")
                                        && (text.contains("SIGKILL") || text.contains("is gone")),
                                    "a failure that does not name the worker's death: {text}"
                                );
                                failed += 1;
                            }
                        }
                        assert!(
                            started.elapsed() < Duration::from_secs(20),
                            "a call took {:?}",
                            started.elapsed()
                        );
                    }
                    (ok, failed)
                })
            })
            .collect();
        s.spawn(|| {
            let until = Instant::now() + length;
            let mut round = 0u64;
            while Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20 + next(&seed) % 100));
                round += 1;
                if let (Some(zygote), 0) = (zygote, round % 25) {
                    if let Some(pid) = zygote.id() {
                        kill(pid);
                        killed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
                let live: Vec<u32> = std::fs::read_dir(pids)
                    .unwrap()
                    .flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    // Running, not a zombie waiting to be reaped.
                    .filter(|pid| {
                        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                            !stat
                                .rsplit_once(')')
                                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
                        })
                    })
                    .collect();
                if live.is_empty() {
                    continue;
                }
                let victim = live[(next(&seed) % live.len() as u64) as usize];
                kill(victim);
                killed.fetch_add(1, Ordering::Relaxed);
            }
            stop.store(true, Ordering::Relaxed);
        });
        callers
            .into_iter()
            .map(|c| c.join().unwrap())
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    });
    Totals {
        ok,
        failed,
        killed: killed.load(Ordering::Relaxed),
    }
}

fn settle(what: &str, fds0: usize, threads0: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while (fds() > fds0 || threads() > threads0 || !children().is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let open: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .map(|e| {
            let link = std::fs::read_link(e.path()).unwrap_or_default();
            format!("{}->{}", e.file_name().to_string_lossy(), link.display())
        })
        .collect();
    assert!(
        fds() <= fds0,
        "{what}: descriptors {fds0} before, {} after: {open:?}",
        fds()
    );
    assert!(
        threads() <= threads0,
        "{what}: threads {threads0} before, {} after",
        threads()
    );
    assert!(
        children().is_empty(),
        "{what}: children left: {:?}",
        children()
    );
}

#[test]
fn eight_threads_call_while_workers_are_killed_at_random() {
    let host = host();
    let pids = temp_dir("soak-pids");
    let script = Script::new(script(WORKER)).arg(&pids);
    // The lazily started parts (the spawner, the host's thread pool) are
    // the baseline.
    let warmup = host.pool(script.clone()).workers(1).start().unwrap();
    let _: (u64, u64) = warmup.call("work", (1,)).unwrap();
    warmup.shutdown(Duration::from_secs(5));
    drop(warmup);
    settle("the warm-up", usize::MAX, usize::MAX);
    let (fds0, threads0) = (fds(), threads());

    let pool = host
        .pool(script.clone())
        .workers(4)
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
        .give_up_after(100_000, Duration::from_secs(1))
        .start()
        .unwrap();
    let totals = soak(&pool, &pids, Duration::from_secs(10), None);
    let stats = pool.stats();
    eprintln!(
        "cold: {} answered, {} failed, {} killed, {} restarts",
        totals.ok, totals.failed, totals.killed, stats.restarts
    );
    assert!(totals.ok > 0 && totals.killed > 20, "too quiet a soak");
    // Two kills may land on one worker before it is gone; most replace one.
    assert!(stats.restarts >= totals.killed / 2, "{stats:?}");
    assert!(stats.restarts <= totals.killed, "{stats:?}");
    assert_eq!(stats.failed, totals.failed, "{stats:?}");
    assert!(stats.gave_up.is_none(), "{stats:?}");
    pool.shutdown(Duration::from_secs(5));
    drop(pool);
    settle("the cold pool", fds0, threads0);

    let zygote = host.zygote().start().unwrap();
    let pool = host
        .pool(script)
        .workers(4)
        .warm(&zygote)
        .backoff(Duration::from_millis(5), Duration::from_millis(50))
        .give_up_after(100_000, Duration::from_secs(1))
        .start()
        .unwrap();
    let totals = soak(&pool, &pids, Duration::from_secs(5), Some(&zygote));
    let stats = pool.stats();
    eprintln!(
        "warm: {} answered, {} failed, {} killed, {} restarts, zygote restarts {}",
        totals.ok, totals.failed, totals.killed, stats.restarts, stats.zygote_restarts
    );
    assert!(totals.ok > 0 && totals.killed > 10, "too quiet a soak");
    assert!(stats.zygote_restarts >= 1, "{stats:?}");
    assert!(stats.gave_up.is_none(), "{stats:?}");
    // Still serving after all that (the last kill may have hit the worker
    // this lands on: the call is safe to repeat).
    let answer: (u64, u64) = pool.call_retrying("work", (5,)).unwrap();
    assert_eq!(answer, (5, expected(5)));
    pool.shutdown(Duration::from_secs(5));
    drop(pool);
    drop(zygote);
    settle("the warm pool", fds0, threads0);
}
