//! Async host functions: awaited on the tokio runtime the script was
//! spawned from, concurrently with other calls, dropped when the script
//! cancels the call, nesting through the calling script, and the runtime's
//! end stopping its scripts.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use tether::{Host, Peer, Script};

fn async_host() -> Host {
    host()
        .async_function("nap(seconds)", |seconds: f64| async move {
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            "rested"
        })
        .async_function("explode()", || async {
            if true {
                panic!("async kaboom");
            }
        })
        .try_async_function("down(n)", |n: i64| async move {
            // Nesting through the calling script: host (async) -> script -> host ...
            if n == 0 {
                return Ok::<i64, tether::Error>(0);
            }
            let script = Peer::current().expect("called by a script");
            let below: i64 = script.call_async("up", (n - 1,)).await?;
            Ok(below + 1)
        })
}

#[test]
fn an_async_function_awaits_while_a_thousand_other_calls_proceed() {
    let code = r#"
import asyncio, inspect, tether
from tether import aio

# Described as a sync function is: names, annotations.
assert str(inspect.signature(tether.host.nap)) == "(seconds: float) -> str", inspect.signature(tether.host.nap)

async def main():
    slow = asyncio.ensure_future(aio.host.nap(2.0))
    results = await asyncio.gather(*(aio.host.add(i, 1) for i in range(1000)))
    assert results == [i + 1 for i in range(1000)]
    # Every quick call was answered while the async function still slept.
    assert not slow.done()
    assert await slow == "rested"
    # A panic fails only its own call.
    try:
        await aio.host.explode()
    except tether.RemoteError as e:
        assert e.kind == "panic" and "async kaboom" in str(e), e
    else:
        raise SystemExit("no panic error")
    assert await aio.host.add(2, 2) == 4

asyncio.run(main())
"#;
    runtime().block_on(async {
        let outcome = async_host().run_async(script(code)).await.unwrap();
        assert!(outcome.success(), "{}", outcome.status());
    });
}

#[test]
fn a_cancelled_call_drops_the_host_functions_future() {
    let dropped = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (d, s) = (Arc::clone(&dropped), Arc::clone(&started));
    let seen = Arc::clone(&dropped);
    let host = host()
        .function("dropped()", move || seen.load(Ordering::SeqCst))
        .async_function("forever()", move || {
            let flag = Flag(Arc::clone(&d));
            s.fetch_add(1, Ordering::SeqCst);
            async move {
                let _flag = flag;
                std::future::pending::<()>().await;
            }
        });
    let code = r#"
import asyncio
from tether import aio

async def main():
    try:
        await asyncio.wait_for(aio.host.forever(), 0.2)
    except asyncio.TimeoutError:
        pass
    else:
        raise SystemExit("forever() returned")
    # The host was told: the future is dropped while the script still runs.
    for _ in range(500):
        if await aio.host.dropped():
            break
        await asyncio.sleep(0.01)
    else:
        raise SystemExit("the host function's future was not dropped")
    assert await aio.host.add(1, 2) == 3

asyncio.run(main())
"#;
    runtime().block_on(async {
        let outcome = host.run_async(script(code)).await.unwrap();
        assert!(outcome.success(), "{}", outcome.status());
    });
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert!(dropped.load(Ordering::SeqCst), "the future was dropped");
}

#[test]
fn nesting_through_an_async_function_goes_twenty_deep() {
    let code = r#"
import tether
from tether import host

@tether.export
def up(n):
    # A sync export calling the async host function, which calls back.
    return 0 if n == 0 else host.down(n - 1) + 1

assert host.down(20) == 20, host.down(20)
"#;
    runtime().block_on(async {
        let outcome = async_host().run_async(script(code)).await.unwrap();
        assert!(outcome.success(), "{}", outcome.status());
    });
}

#[test]
fn an_async_function_without_a_runtime_says_how_to_get_one() {
    // Spawned outside any runtime: the async function cannot run.
    run_ok_with(
        &async_host(),
        r#"
import tether
from tether import host
try:
    host.nap(0.01)
except tether.RemoteError as e:
    assert e.kind == "NoRuntime", e.kind
    assert "spawn_async" in str(e), str(e)
else:
    raise SystemExit("no error")
"#,
    );
}

#[test]
fn a_runtime_that_shuts_down_stops_its_scripts() {
    let rt = runtime();
    let done = temp_dir("runtime-end").join("done");
    let code = format!(
        "import tether\ntether.serve()\nopen({:?}, 'w').write('stopped')\n",
        done.display().to_string()
    );
    let child = rt
        .block_on(async {
            let child = async_host().spawn_async(Script::new(script(&code))).await?;
            child
                .peer()
                .wait_ready_async(Duration::from_secs(30))
                .await?;
            Ok::<_, tether::Error>(child)
        })
        .unwrap();
    drop(rt);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let outcome = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the script stopped")
        .unwrap();
    assert!(outcome.success(), "{}", outcome.status());
    assert_eq!(std::fs::read_to_string(done).unwrap(), "stopped");
}

#[test]
fn a_blocking_call_that_would_stall_a_current_thread_runtime_says_so() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let code = "import tether\n@tether.export\ndef nap():\n    return tether.host.nap(0.01)\ntether.serve()\n";
    rt.block_on(async {
        let child = async_host().spawn_async(script(code)).await.unwrap();
        // Blocking here would stop the only thread the runtime has, which
        // nap() needs: a clear error instead of a hang.
        let err = child.call::<String>("nap", ()).unwrap_err();
        assert!(matches!(err, tether::Error::Blocking(_)), "{err:?}");
        assert!(
            err.to_string().contains("call_async") || err.to_string().contains("async form"),
            "{err}"
        );
        // The async form works on the same runtime.
        assert_eq!(
            child.call_async::<String>("nap", ()).await.unwrap(),
            "rested"
        );
        assert!(matches!(
            child.peer().call::<String>("nap", ()),
            Err(tether::Error::Blocking(_))
        ));
        child.shutdown_async(Duration::from_secs(5)).await.unwrap();
    });
}
