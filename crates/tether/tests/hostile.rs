//! Hostile scripts. Each case must end with a clear error (or the script's
//! real outcome) within a bounded time; and after all of them the host's
//! descriptors, threads and children are back where they started, and its
//! peak memory grew by less than the frame limit plus a small constant.
//!
//! One test runs every case in turn, so that the resource checks see only
//! this test's effects.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tether::{Error, Host, Script, Stdio};

const FRAME_LIMIT: u32 = 8 * 1024 * 1024;

fn hostile_host() -> Host {
    host()
        .max_frame_size(FRAME_LIMIT)
        .exit_grace(Duration::from_millis(500))
        .capture_limit(1024 * 1024)
        .max_in_flight(64)
        .function("record(i)", |i: i64| i)
}

/// Runs one case: the script must end within `bound`; `check` looks at the result.
fn case(
    name: &str,
    host: &Host,
    code: &str,
    bound: Duration,
    check: impl FnOnce(Result<tether::Outcome, Error>),
) {
    let started = Instant::now();
    let result = host.run(
        Script::new(script(code))
            .stdout(Stdio::Null)
            .stderr(Stdio::Capture),
    );
    let took = started.elapsed();
    assert!(
        took < bound,
        "{name}: took {took:?} (bound {bound:?}); result {result:?}"
    );
    check(result);
    eprintln!("hostile case ok: {name} ({took:?})");
}

fn protocol_error<'a>(
    name: &'a str,
    want: &'a str,
) -> impl FnOnce(Result<tether::Outcome, Error>) + 'a {
    let want = want.to_owned();
    move |result| match result {
        Err(Error::Protocol { detail, .. }) => assert!(detail.contains(&want), "{name}: {detail}"),
        other => panic!("{name}: expected a protocol error with {want:?}, got {other:?}"),
    }
}

fn answered_and_served_on(name: &str) -> impl FnOnce(Result<tether::Outcome, Error>) + '_ {
    move |result| {
        let outcome = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(outcome.success(), "{name}: {}", stderr(&outcome));
        assert!(
            stderr(&outcome).contains("the host could not read a message of this script's"),
            "{name}: {}",
            stderr(&outcome)
        );
    }
}

const HANDSHAKE: &str = "import os, struct, sys, time\nfrom tether import _connection, _framing\nconn = _connection.connection()\nw = int(os.environ['TETHER_WRITE_FD'])\n";

#[test]
fn hostile_scripts_end_cleanly_and_leave_nothing_behind() {
    let host = hostile_host();
    // Warm up once so that the pool and the bundled client exist before the
    // baseline is taken.
    host.run(Script::new(script(
        "from tether import host\nhost.add(1, 2)",
    )))
    .unwrap();
    let (fds0, threads0, peak0) = (fds(), status_field("Threads:"), status_field("VmHWM:"));
    let quick = Duration::from_secs(10);

    // Random bytes end the run at once unless their prefix happens to
    // announce a frame within the limit that never completes (1 time in
    // 512); the idle timeout bounds that case too.
    case("random garbage", &hostile_host().idle_timeout(Duration::from_secs(2)), "import os\nos.write(int(os.environ['TETHER_WRITE_FD']), os.urandom(65536))\nimport time\ntime.sleep(60)", quick, |r| {
        assert!(matches!(r, Err(Error::Protocol { .. } | Error::Limit { .. })), "{r:?}");
    });
    case("a 4 GiB length prefix and nothing after it", &host, "import os, time\nos.write(int(os.environ['TETHER_WRITE_FD']), b'\\xff\\xff\\xff\\xff')\ntime.sleep(60)", quick, protocol_error("4 GiB", "exceeds the limit"));
    case("a claimed 2 GiB frame with a short body, then exit", &host, "import os, struct\nos.write(int(os.environ['TETHER_WRITE_FD']), struct.pack('<I', 2**31) + b'x' * 100)", quick, protocol_error("2 GiB", "exceeds the limit"));
    case(
        "half a frame, then sleeping forever (idle timeout)",
        &hostile_host().idle_timeout(Duration::from_secs(1)),
        &format!("{HANDSHAKE}os.write(w, struct.pack('<I', 100) + b'half')\ntime.sleep(600)"),
        quick,
        |r| match r {
            Err(Error::Limit { detail: what, .. }) => {
                assert!(what.contains("idle timeout"), "{what}")
            }
            other => panic!("{other:?}"),
        },
    );
    case(
        "a script past its deadline",
        &hostile_host().deadline(Duration::from_secs(1)),
        "import time\nwhile True:\n    time.sleep(0.01)",
        quick,
        |r| match r {
            Err(Error::Limit { detail: what, .. }) => assert!(what.contains("deadline"), "{what}"),
            other => panic!("{other:?}"),
        },
    );
    // A sound frame whose message cannot be read is answered (-32700, a null
    // id), and the script is served on (docs/protocol.md §7.1).
    case(
        "valid framing around invalid UTF-8",
        &host,
        &format!(
            "{HANDSHAKE}os.write(w, struct.pack('<II', 8, 4) + b'\\xff\\xfe{{}}')\nassert conn.call('add', (1, 2), {{}}) == 3"
        ),
        quick,
        answered_and_served_on("utf-8"),
    );
    case(
        "valid framing around invalid JSON",
        &host,
        &format!("{HANDSHAKE}os.write(w, struct.pack('<II', 9, 5) + b'{{\"a\":')\nassert conn.call('add', (1, 2), {{}}) == 3"),
        quick,
        answered_and_served_on("json"),
    );
    case(
        "100,000 tiny frames as fast as the script can write them",
        &host,
        &format!(
            "{HANDSHAKE}frame = b''.join(bytes(p) for p in _framing.encode({{'jsonrpc': '2.0', 'method': 'record', 'params': [1]}}))\nbatch = frame * 1000\nfor _ in range(100):\n    os.write(w, batch)\n# The host may still be working through the flood: a refused call is retried.\nfor attempt in range(600):\n    try:\n        print(conn.call('add', (1, 2), {{}}))\n        break\n    except Exception as e:\n        if getattr(e, 'kind', None) != 'Limit':\n            raise\n        time.sleep(0.05)\n"
        ),
        Duration::from_secs(60),
        |r| {
            let outcome = r.unwrap();
            assert!(outcome.success(), "{}", stderr(&outcome));
            assert!(outcome.calls() >= 100_000, "{}", outcome.calls());
        },
    );
    case("a reply to a call the host never made", &host, &format!("{HANDSHAKE}os.write(w, b''.join(bytes(p) for p in _framing.encode({{'jsonrpc': '2.0', 'id': 999, 'result': 1}})))\ntime.sleep(60)"), quick, protocol_error("stray reply", "never made (id 999)"));
    // Closing the channel is a clean end; the host waits for the exit, up to the deadline.
    case("closing both pipes, then sleeping forever", &hostile_host().deadline(Duration::from_secs(1)), "import os, time\nos.close(int(os.environ['TETHER_WRITE_FD']))\nos.close(int(os.environ['TETHER_READ_FD']))\ntime.sleep(600)", quick, |r| match r {
        Err(Error::Limit { detail: what, .. }) => assert!(what.contains("deadline"), "{what}"),
        other => panic!("{other:?}"),
    });
    case(
        "exiting with a code mid-frame",
        &host,
        &format!("{HANDSHAKE}os.write(w, struct.pack('<I', 50) + b'partial')\nos._exit(7)"),
        quick,
        |r| match r {
            Err(Error::Protocol { detail, status, .. }) => {
                assert!(detail.contains("inside a frame"), "{detail}");
                assert_eq!(status.and_then(|s| s.code()), Some(7));
            }
            other => panic!("{other:?}"),
        },
    );
    case(
        "SIGKILL mid-frame",
        &host,
        &format!(
            "{HANDSHAKE}os.write(w, struct.pack('<I', 50) + b'partial')\nos.kill(os.getpid(), 9)"
        ),
        quick,
        |r| {
            let err = r.unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("SIGKILL") && text.contains("out-of-memory"),
                "{text}"
            );
        },
    );
    case("SIGSEGV mid-frame", &host, &format!("{HANDSHAKE}os.write(w, struct.pack('<I', 50) + b'partial')\nimport ctypes\nctypes.string_at(0)"), quick, |r| {
        let err = r.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("SIGSEGV") && text.contains("C extension"), "{text}");
    });
    for (stdio, label) in [(Stdio::Capture, "captured"), (Stdio::Null, "null")] {
        let started = Instant::now();
        let outcome = host
            .run(
                Script::new(script(
                    "import sys\nfrom tether import host\nline = 'x' * 1023 + '\\n'\nchunk = line * 1024\nfor i in range(200):\n    sys.stdout.write(chunk)\n    sys.stderr.write(chunk)\n    assert host.add(i, 1) == i + 1\n",
                ))
                .stdout(stdio)
                .stderr(stdio),
            )
            .unwrap();
        assert!(outcome.success(), "{label}");
        assert_eq!(outcome.calls(), 200);
        if stdio == Stdio::Capture {
            // 200 MB written; only the last MiB kept.
            assert_eq!(outcome.stdout().unwrap().len(), 1024 * 1024);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "200 MB {label}: {:?}",
            started.elapsed()
        );
        eprintln!(
            "hostile case ok: 200 MB on stdout and stderr, {label} ({:?})",
            started.elapsed()
        );
    }
    let mut grandchild = 0u32;
    case(
        "a grandchild that keeps the pipes open after the script exits",
        &host,
        "import os, subprocess, sys\nfds = [int(os.environ[k]) for k in ('TETHER_READ_FD', 'TETHER_WRITE_FD')]\np = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], pass_fds=fds)\nsys.stderr.write('grandchild %d\\n' % p.pid)\n",
        quick,
        |r| {
            let outcome = r.unwrap();
            assert!(outcome.success());
            grandchild = stderr(&outcome).trim().trim_start_matches("grandchild ").parse().unwrap();
        },
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !std::path::Path::new(&format!("/proc/{grandchild}")).exists()
            || std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .map_or(true, |s| s.contains(") Z ")),
        "grandchild {grandchild} survived"
    );
    case(
        "a fork bomb bounded by the test (200 processes), past its deadline",
        &hostile_host().deadline(Duration::from_secs(3)),
        "import os, time\nfor i in range(200):\n    if os.fork() == 0:\n        time.sleep(600)\n        os._exit(0)\ntime.sleep(600)\n",
        quick,
        |r| assert!(matches!(r, Err(Error::Limit { .. })), "{r:?}"),
    );

    // Nothing left: no children, no descriptors, no threads; bounded memory.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (fds() > fds0 || status_field("Threads:") > threads0 || !children().is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(children(), Vec::<String>::new());
    assert!(
        fds() <= fds0,
        "descriptors: {} before, {} after",
        fds0,
        fds()
    );
    assert!(
        status_field("Threads:") <= threads0,
        "threads: {threads0} before, {} after",
        status_field("Threads:")
    );
    let grown_kib = status_field("VmHWM:").saturating_sub(peak0);
    assert!(
        grown_kib < u64::from(FRAME_LIMIT) / 1024 + 64 * 1024,
        "peak RSS grew by {grown_kib} KiB (frame limit {} KiB)",
        FRAME_LIMIT / 1024
    );
    eprintln!("peak RSS grew by {grown_kib} KiB over all hostile cases");
}

#[test]
fn limits_refuse_calls_without_stopping_the_script() {
    // Too many calls in flight: the extra ones are refused with a Limit error.
    let host = hostile_host()
        .max_in_flight(2)
        .function("hold(s)", |s: f64| {
            std::thread::sleep(Duration::from_secs_f64(s))
        });
    run_ok_with(
        &host,
        r#"
import asyncio, tether
async def main():
    results = await asyncio.gather(*(tether.aio.host.hold(0.3) for _ in range(6)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, tether.RemoteError) and r.kind == "Limit"]
    assert len(refused) >= 1, results
    assert "limit" in str(refused[0]), refused[0]
    assert tether.host.add(1, 2) == 3
asyncio.run(main())
"#,
    );
    // Nesting deeper than the limit fails in the host function, not the host.
    let host =
        hostile_host()
            .max_depth(5)
            .try_function("down(n)", |n: i64| -> Result<i64, Error> {
                if n == 0 {
                    return Ok(0);
                }
                Ok(tether::Peer::current()
                    .unwrap()
                    .call::<i64>("up", (n - 1,))?
                    + 1)
            });
    run_ok_with(
        &host,
        r#"
import tether
from tether import host
@tether.export
def up(n):
    return 0 if n == 0 else host.down(n - 1) + 1
assert host.down(8) == 8
try:
    host.down(40)
except tether.RemoteError as e:
    assert "nested deeper than 5 levels" in str(e), str(e)
else:
    raise SystemExit("no limit")
assert host.add(2, 2) == 4
"#,
    );
}

#[test]
fn failures_explain_themselves() {
    let err = hostile_host()
        .run(Script::new(script(
            "import sys, threading\nfrom tether import host\nsys.stderr.write('about to crash\\n')\nimport os\nthreading.Timer(0.3, lambda: os.kill(os.getpid(), 11)).start()\nhost.sleep(5)\n",
        )).stderr(Stdio::Capture))
        .unwrap()
        .check()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("SIGSEGV"), "{text}");
    assert!(text.contains("calls in flight: sleep"), "{text}");
    assert!(text.contains("about to crash"), "{text}");
}

#[test]
fn two_hundred_megabytes_on_inherited_stdout_and_stderr() {
    if std::env::var_os("TETHER_TEST_INHERIT_MODE").is_some() {
        return; // handled by inherited_output_helper
    }
    // The script inherits the host's stdout and stderr: run the host as a
    // child of this test with both sent to /dev/null, and give it a minute.
    let started = Instant::now();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "inherited_output_helper", "--nocapture"])
        .env("TETHER_TEST_INHERIT_MODE", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the host with inherited output failed: {status}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn inherited_output_helper() {
    if std::env::var_os("TETHER_TEST_INHERIT_MODE").is_none() {
        return; // only does something when run by the test above
    }
    let outcome = hostile_host()
        .run(Script::new(script(
            "import sys\nfrom tether import host\nchunk = ('x' * 1023 + '\\n') * 1024\nfor i in range(200):\n    sys.stdout.write(chunk)\n    sys.stderr.write(chunk)\n    assert host.add(i, 1) == i + 1\n",
        )))
        .unwrap();
    assert!(outcome.success());
    assert_eq!(outcome.calls(), 200);
}
