//! The async forms of calls, notifications, spawning, waiting and
//! shutting down: awaited from tokio tasks and from a hand-made executor,
//! many at once, and a dropped future cancels its call in the script.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tether::{Error, Script};

const SERVER: &str = r#"
import os, sys, time, tether

@tether.export
def square(x):
    return x * x

@tether.export
def slow(tag):
    # Runs until the host gives up on it (it is interrupted, or sees it), and
    # leaves a file saying so.
    deadline = time.monotonic() + 30
    try:
        while not tether.cancelled():
            if time.monotonic() > deadline:
                return "never cancelled"
            time.sleep(0.005)
        return "cancelled"
    finally:
        if time.monotonic() < deadline:
            open(os.path.join(sys.argv[1], tag), "w").close()

tether.serve()
"#;

/// The server, with a directory for the files it leaves.
fn server() -> (Script, std::path::PathBuf) {
    let dir = temp_dir("async");
    (Script::new(script(SERVER)).arg(&dir), dir)
}

/// The server, started and serving, and its directory.
async fn serving() -> (tether::Child, std::path::PathBuf) {
    let (script, dir) = server();
    let child = host().spawn_async(script).await.unwrap();
    child
        .peer()
        .wait_ready_async(Duration::from_secs(30))
        .await
        .unwrap();
    (child, dir)
}

/// Waits (bounded) until the script left the file saying it saw the
/// cancellation of `tag`.
async fn script_saw_cancel(dir: &std::path::Path, tag: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if dir.join(tag).exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[test]
fn many_tasks_await_calls_on_one_script() {
    runtime().block_on(async {
        let child = Arc::new(host().spawn_async(server().0).await.unwrap());
        let tasks: Vec<_> = (0..200_i64)
            .map(|i| {
                let child = Arc::clone(&child);
                tokio::spawn(async move { child.call_async::<i64>("square", (i,)).await })
            })
            .collect();
        for (i, task) in tasks.into_iter().enumerate() {
            let i = i as i64;
            assert_eq!(task.await.unwrap().unwrap(), i * i);
        }
        let stats = child.stats();
        assert_eq!(stats.calls_to_script, 200);
        assert_eq!(stats.waiting_on_script, 0);
        let child = Arc::into_inner(child).unwrap();
        let outcome = child.shutdown_async(Duration::from_secs(5)).await.unwrap();
        assert!(outcome.success(), "{}", outcome.status());
    });
}

#[test]
fn a_dropped_call_future_cancels_the_call_in_the_script() {
    runtime().block_on(async {
        let (child, dir) = serving().await;

        // tokio::time::timeout drops the call's future.
        let timed = tokio::time::timeout(
            Duration::from_millis(100),
            child.call_async::<String>("slow", ("timeout",)),
        )
        .await;
        assert!(timed.is_err(), "{timed:?}");
        assert!(script_saw_cancel(&dir, "timeout").await);

        // A lost select! branch.
        tokio::select! {
            r = child.call_async::<String>("slow", ("select",)) => panic!("slow won: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        assert!(script_saw_cancel(&dir, "select").await);

        // An aborted task.
        let peer = child.peer();
        let task = tokio::spawn(async move { peer.call_async::<String>("slow", ("abort",)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert!(script_saw_cancel(&dir, "abort").await);

        // The channel stays usable, and nothing is left waiting.
        assert_eq!(child.call_async::<i64>("square", (9,)).await.unwrap(), 81);
        assert_eq!(child.stats().waiting_on_script, 0);
        child.shutdown_async(Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn an_async_time_limit_fails_with_timeout_and_tells_the_script() {
    runtime().block_on(async {
        let (child, dir) = serving().await;
        let started = Instant::now();
        let err = child
            .call_timeout_async::<String>("slow", ("limit",), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(script_saw_cancel(&dir, "limit").await);
        child.notify_async("square", (2,)).await.unwrap();
        child.shutdown_async(Duration::from_secs(5)).await.unwrap();
    });
}

#[test]
fn a_script_that_dies_fails_the_awaiting_future_at_once() {
    runtime().block_on(async {
        let child = host().spawn_async(server().0).await.unwrap();
        child
            .peer()
            .wait_ready_async(Duration::from_secs(30))
            .await
            .unwrap();
        let peer = child.peer();
        let waiting = tokio::spawn(async move { peer.call_async::<String>("slow", ("x",)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        child.kill().unwrap();
        let err = waiting.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Closed { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let outcome = child.wait_async().await.unwrap();
        assert_eq!(outcome.signal(), Some(9));
    });
}

#[test]
fn the_futures_need_no_runtime() {
    // A hand-made executor: park until woken.
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Arc::new(Unpark(std::thread::current())).into();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }
    let child = block_on(host().spawn_async(server().0)).unwrap();
    block_on(child.peer().wait_ready_async(Duration::from_secs(30))).unwrap();
    assert_eq!(
        block_on(child.call_async::<i64>("square", (12,))).unwrap(),
        144
    );
    let err =
        block_on(child.call_timeout_async::<String>("slow", ("bare",), Duration::from_millis(50)))
            .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let outcome = block_on(child.shutdown_async(Duration::from_secs(5))).unwrap();
    assert!(outcome.success());
    let outcome = block_on(host().run_async(script("print('done')"))).unwrap();
    assert!(outcome.success());
}
