//! Pools of workers: calls spread over live workers, broadcasts, resizing,
//! and supervision: a dead worker's calls fail with its death named, it is
//! replaced, a crash loop ends in a give-up, safe calls are retried.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use tether::{Error, Peer, Script};

const WORKER: &str = r#"
import os, sys, time, tether
from tether import host

@tether.export
def whoami():
    return os.getpid()

@tether.export
def caller():
    return [os.getpid(), host.caller_pid()]

@tether.export
def hang():
    sys.stderr.write("worker %d: about to hang\n" % os.getpid())
    sys.stderr.flush()
    time.sleep(60)

@tether.export
def stuck():
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        pass

@tether.export
def grow(mib):
    global ballast
    ballast = bytearray(mib * 1024 * 1024)
    return len(ballast)

@tether.export
def die_once(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return "survived"

tether.serve()
"#;

fn pool_host() -> tether::Host {
    host().function("caller_pid()", || {
        Peer::current().expect("a worker calls").id()
    })
}

fn eventually(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < until, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn calls_spread_over_the_workers_and_a_broadcast_reaches_each() {
    let pool = pool_host().pool(script(WORKER)).workers(3).start().unwrap();
    let pids: HashSet<u32> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    (0..30)
                        .map(|_| pool.call::<u32>("whoami", ()).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    assert!(
        pids.len() >= 2,
        "calls went to more than one worker: {pids:?}"
    );
    let answers = pool.broadcast("whoami", ());
    assert_eq!(answers.len(), 3);
    let everyone: HashSet<u32> = answers
        .into_iter()
        .map(|(_, a)| tether::from_value(a.unwrap()).unwrap())
        .collect();
    assert_eq!(everyone.len(), 3, "each worker answered once");
    // Inside a host function, Peer::current() is the calling worker.
    let [worker, seen]: [u32; 2] = pool.call("caller", ()).unwrap();
    assert_eq!(worker, seen);
    let stats = pool.stats();
    assert_eq!(
        (stats.live, stats.calls, stats.failed, stats.restarts),
        (3, 181, 0, 0)
    );
    pool.shutdown(Duration::from_secs(5));
    assert!(matches!(
        pool.call::<u32>("whoami", ()),
        Err(Error::Closed { .. })
    ));
}

#[test]
fn a_worker_that_dies_fails_its_call_with_its_death_named_and_is_replaced() {
    let pool = pool_host()
        .pool(script(WORKER))
        .workers(2)
        .backoff(Duration::from_millis(10), Duration::from_millis(100))
        .start()
        .unwrap();
    let victim: u32 = pool.call("whoami", ()).unwrap();
    std::thread::scope(|s| {
        // Both workers get one call that hangs; one of them is the victim.
        let calls = [
            s.spawn(|| pool.call::<()>("hang", ())),
            s.spawn(|| pool.call::<()>("hang", ())),
        ];
        std::thread::sleep(Duration::from_millis(500));
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(victim as i32).unwrap(),
            rustix::process::Signal::KILL,
        )
        .unwrap();
        eventually("the victim is replaced", || pool.stats().restarts == 1);
        // The other worker still hangs: stopping the pool interrupts it.
        pool.shutdown(Duration::from_millis(500));
        let results = calls.map(|c| c.join().unwrap());
        let died: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().err().map(ToString::to_string))
            .filter(|e| e.contains(&format!("(pid {victim})")))
            .collect();
        assert_eq!(died.len(), 1, "{results:?}");
        let err = &died[0];
        assert!(err.contains("hang() failed: worker"), "{err}");
        assert!(err.contains("signal: 9"), "{err}");
        assert!(
            err.contains(&format!("worker {victim}: about to hang")),
            "{err}"
        );
    });
    let stats = pool.stats();
    assert_eq!(stats.restarts, 1, "{stats:?}");
}

#[test]
fn a_crash_loop_ends_in_a_give_up_that_says_why() {
    let crashing = "import sys\nsys.stderr.write('cannot load the model\\n')\nsys.exit(3)\n";
    let started = Instant::now();
    let pool = host()
        .pool(script(crashing))
        .workers(1)
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
        .give_up_after(3, Duration::from_secs(60))
        .start()
        .unwrap();
    eventually("the pool gives up", || pool.stats().gave_up.is_some());
    let err = pool.call::<()>("anything", ()).unwrap_err().to_string();
    assert!(err.contains("gave up: 3 workers died"), "{err}");
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(err.contains("cannot load the model"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let stats = pool.stats();
    assert_eq!(stats.restarts, 2, "{stats:?}");
}

#[test]
fn a_call_marked_safe_to_retry_moves_to_another_worker() {
    let marker = temp_dir("retry").join("died");
    let pool = pool_host()
        .pool(Script::new(script(WORKER)))
        .workers(2)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .start()
        .unwrap();
    let answer: String = pool
        .call_retrying("die_once", (marker.display().to_string(),))
        .unwrap();
    assert_eq!(answer, "survived");
    // Without the mark, the same death is the caller's error.
    std::fs::remove_file(&marker).unwrap();
    eventually("both workers serve again", || pool.stats().live == 2);
    let err = pool
        .call::<String>("die_once", (marker.display().to_string(),))
        .unwrap_err();
    assert!(
        err.to_string().contains("die_once() failed: worker"),
        "{err}"
    );
    assert!(err.to_string().contains("exit status: 1"), "{err}");
}

#[test]
fn a_pool_grows_and_shrinks_while_it_runs() {
    let pool = pool_host().pool(script(WORKER)).workers(1).start().unwrap();
    pool.resize(3).unwrap();
    assert_eq!(pool.stats().live, 3);
    assert_eq!(pool.broadcast("whoami", ()).len(), 3);
    pool.resize(1).unwrap();
    eventually("two workers retire", || pool.stats().live == 1);
    assert_eq!(pool.stats().restarts, 0, "retired workers are not deaths");
    let _: u32 = pool.call("whoami", ()).unwrap();
}

#[test]
fn workers_are_recycled_after_some_calls_without_a_failed_call() {
    let pool = pool_host()
        .pool(script(WORKER))
        .workers(2)
        .recycle_after(5)
        .start()
        .unwrap();
    let pids: HashSet<u32> = (0..40)
        .map(|_| pool.call::<u32>("whoami", ()).unwrap())
        .collect();
    assert!(pids.len() > 2, "recycled workers answered too: {pids:?}");
    let stats = pool.stats();
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert!(stats.recycled >= 4, "{stats:?}");
    assert_eq!(stats.restarts, 0, "recycling is not a death: {stats:?}");
}

#[test]
fn a_worker_past_its_memory_limit_is_recycled() {
    let pool = pool_host()
        .pool(script(WORKER))
        .workers(1)
        .recycle_above(200 * 1024 * 1024)
        .start()
        .unwrap();
    let first: u32 = pool.call("whoami", ()).unwrap();
    assert_eq!(
        pool.call::<usize>("grow", (300,)).unwrap(),
        300 * 1024 * 1024
    );
    eventually("the big worker is replaced", || pool.stats().recycled == 1);
    eventually("its replacement serves", || {
        pool.call::<u32>("whoami", ()).is_ok_and(|pid| pid != first)
    });
    assert_eq!(pool.stats().failed, 0);
}

#[test]
fn a_worker_that_does_not_answer_the_health_check_is_killed_and_replaced() {
    let pool = pool_host()
        .pool(script(WORKER))
        .workers(1)
        .health_check(Duration::from_millis(200), Duration::from_millis(300))
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .start()
        .unwrap();
    let err = pool.call::<()>("stuck", ()).unwrap_err().to_string();
    assert!(err.contains("did not answer the health check"), "{err}");
    assert!(err.contains("signal: 9"), "{err}");
    let stats = pool.stats();
    assert_eq!(stats.health_kills, 1, "{stats:?}");
    eventually("a replacement serves", || {
        pool.call::<u32>("whoami", ()).is_ok()
    });
}

#[test]
fn a_pool_call_can_be_awaited() {
    let pool = pool_host().pool(script(WORKER)).workers(2).start().unwrap();
    runtime().block_on(async {
        let calls: Vec<_> = (0..20)
            .map(|_| pool.call_async::<u32>("whoami", ()))
            .collect();
        for call in calls {
            call.await.unwrap();
        }
    });
    assert_eq!(pool.stats().calls, 20);
}

#[test]
fn a_dropped_async_pool_call_leaves_its_worker_free() {
    let pool = pool_host().pool(script(WORKER)).workers(2).start().unwrap();
    // With nothing in flight, calls go to the first worker.
    let first: u32 = pool.call("whoami", ()).unwrap();
    runtime().block_on(async {
        let hang = tokio::time::timeout(
            Duration::from_millis(200),
            pool.call_async::<()>("hang", ()),
        );
        assert!(hang.await.is_err(), "the call was dropped");
    });
    // The dropped call's worker counts as free again (its export was
    // interrupted): the next call goes to it, not around it.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(pool.call::<u32>("whoami", ()).unwrap(), first);
}
