//! The main demo: a Rust host serving a Python script.
//!
//! ```text
//! cargo run --example demo -- [--classic | --async] [--venv DIR] [SCRIPT [ARGS...]]
//! cargo run --example demo -- --pool N [--warm] [--preload MOD,...] --calls M SCRIPT
//! cargo run --example demo -- --sandbox [--memory-mib N] [--cpu-seconds N] [--max-processes N] SCRIPT
//! cargo run --example demo -- --stubs DIR
//! ```
//!
//! With `--pool N --calls M` it starts a pool of N workers of SCRIPT, calls
//! their export `work(i)` for i in 0..M from 8 threads, and prints `ok K`,
//! `failed F` and `restarts R`, exiting 0 when K + F = M. With `--warm` the
//! workers are forked by a zygote, which first imports the modules named by
//! `--preload` (which implies `--warm`).
//!
//! The host exposes `foo(arg)` and `bar(arg)` (the seed's two functions),
//! `echo(value)`, `fail(message)`, `sleep(seconds)`, `map_with(name,
//! values)`, which calls the script's export `name` on each value and returns
//! the results, and `within(seconds, name, args)`, which calls the script's
//! export `name` with `args` and that time limit and returns its result (or
//! fails with kind `Timeout`). Without a script it runs a bundled one that
//! mirrors the seed's. With `--async` the same functions are served from a
//! tokio runtime, `sleep` and `within` as async host functions (tokio's
//! sleep; the awaited call). With `--venv DIR` the script runs in that
//! virtual environment. With `--sandbox` it runs SCRIPT under the default
//! sandbox policy ([`tether::Sandbox`]) with the limits given (memory in
//! MiB, CPU seconds, processes); when a limit ends the script, stderr says
//! which and its value ("demo: the script reached its sandbox's CPU time
//! limit of 3 s").
//! It exits with the script's exit code. SIGTERM or SIGINT stop the
//! script gracefully (`rpc.stop`, SIGTERM at 2.5 s, SIGKILL at 5 s; a second
//! signal stops it at once), and the demo then exits with 128 plus the
//! signal's number. With `--stubs DIR` it writes
//! type stubs for its functions into `DIR/tether/` instead (check a script
//! with `MYPYPATH=DIR mypy script.py`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tether::{FunctionError, Host, Peer, Script, Value};

fn host() -> Host {
    common()
        .try_function(
            "sleep(seconds)",
            |seconds: f64| -> Result<(), FunctionError> {
                std::thread::sleep(duration("sleep", seconds)?);
                Ok(())
            },
        )
        .doc("Sleeps on the host for that many seconds.")
        .try_function(
            "within(seconds, name, args)",
            |seconds: f64, name: String, args: Value| -> Result<Value, FunctionError> {
                let limit = duration("within", seconds)?;
                let script = Peer::current().expect("host functions run on behalf of a script");
                script.call_timeout(&name, args, limit).map_err(call_error)
            },
        )
        .doc(WITHIN_DOC)
}

/// The same host with `sleep` and `within` async, served from a runtime.
fn async_host() -> Host {
    common()
        .try_async_function("sleep(seconds)", |seconds: f64| async move {
            tokio::time::sleep(duration("sleep", seconds)?).await;
            Ok::<(), FunctionError>(())
        })
        .doc("Sleeps on the host for that many seconds (without holding a thread).")
        .try_async_function(
            "within(seconds, name, args)",
            |seconds: f64, name: String, args: Value| async move {
                let limit = duration("within", seconds)?;
                let script = Peer::current().expect("host functions run on behalf of a script");
                script
                    .call_timeout_async::<Value>(&name, args, limit)
                    .await
                    .map_err(call_error)
            },
        )
        .doc(WITHIN_DOC)
}

/// `args` is a list (positional arguments) or a dict (arguments by name).
const WITHIN_DOC: &str = "Calls the script's export `name` with `args` (a list, or a dict of \
                          arguments by name) within `seconds`; fails with kind Timeout after.";

fn duration(function: &str, seconds: f64) -> Result<Duration, FunctionError> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|e| FunctionError::new("ValueError", format!("{function}({seconds}): {e}")))
}

/// A failed call back into the script, for the script: a timeout is kind
/// `Timeout`, the export's own error keeps its kind.
fn call_error(e: tether::Error) -> FunctionError {
    match &e {
        tether::Error::Timeout { .. } => FunctionError::new("Timeout", e.to_string()),
        tether::Error::Remote(r) => FunctionError::new(r.kind(), r.message()),
        _ => FunctionError::new("Error", e.to_string()),
    }
}

/// The functions both hosts serve the same way.
fn common() -> Host {
    Host::new()
        .function("foo(arg)", |arg: Value| {
            format!("Foo was called with arg {arg}")
        })
        .doc("The seed's first function: says how it was called.")
        .function("bar(arg)", |arg: Value| {
            format!("Bar was called with arg {arg}")
        })
        .doc("The seed's second function.")
        .function("echo(value)", |value: Value| value)
        .doc("Returns its argument unchanged (bytes included).")
        .try_function(
            "fail(message)",
            |message: String| -> Result<(), FunctionError> {
                Err(FunctionError::new("DemoFailure", message))
            },
        )
        .doc("Always fails: raises host.errors.DemoFailure with the message.")
        .try_function("map_with(name, values)", map_with)
        .doc("Calls the script's export `name` on each value and returns the results.")
}

/// Calls back into the script that called us, once per value.
fn map_with(name: String, values: Vec<Value>) -> Result<Vec<Value>, tether::Error> {
    let script = Peer::current().expect("host functions run on behalf of a script");
    values
        .into_iter()
        .map(|v| script.call(&name, (v,)))
        .collect()
}

/// `--pool N [--warm] [--preload MOD,...] --calls M SCRIPT`: N workers of
/// SCRIPT, its export `work(i)` called for i in 0..M from 8 threads; prints
/// `ok K`, `failed F` and `restarts R`, and exits 0 when K + F = M.
fn pool_demo(args: &[String]) -> ExitCode {
    let usage = "usage: demo --pool N [--warm] [--preload MOD,...] --calls M SCRIPT";
    let (mut workers, mut calls, mut script) = (None, None, None);
    let (mut warm, mut preload) = (false, Vec::new());
    let mut rest = args.iter();
    if let Some(n) = rest.next() {
        workers = n.parse::<usize>().ok();
    }
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--calls" => calls = rest.next().and_then(|m| m.parse::<usize>().ok()),
            "--warm" => warm = true,
            "--preload" => {
                let Some(modules) = rest.next() else {
                    eprintln!("demo: --preload needs a list of modules\n{usage}");
                    return ExitCode::from(2);
                };
                warm = true;
                preload.extend(
                    modules
                        .split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned),
                );
            }
            other if script.is_none() => script = Some(other.to_owned()),
            other => {
                eprintln!("demo: unexpected argument {other:?}\n{usage}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(workers), Some(calls), Some(script)) = (workers.filter(|n| *n > 0), calls, script)
    else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let host = host();
    let mut builder = host.pool(script.as_str()).workers(workers);
    if warm {
        match host.zygote().preload(&preload).start() {
            Ok(zygote) => builder = builder.warm(&zygote),
            Err(e) => {
                eprintln!("demo: {e}");
                return ExitCode::from(70);
            }
        }
    }
    let pool = match builder.start() {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(70);
        }
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (ok, failed) = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let (mut ok, mut failed) = (0usize, 0usize);
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= calls {
                            return (ok, failed);
                        }
                        match pool.call::<Value>("work", (i,)) {
                            Ok(_) => ok += 1,
                            Err(e) => {
                                eprintln!("demo: work({i}) failed: {e}");
                                failed += 1;
                            }
                        }
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or((0, 0)))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    });
    let restarts = pool.stats().restarts;
    pool.shutdown(Duration::from_secs(5));
    println!("ok {ok}");
    println!("failed {failed}");
    println!("restarts {restarts}");
    if ok + failed == calls {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--help" || a == "-h") {
        println!(
            "usage: demo [--classic | --async] [--venv DIR] [SCRIPT [ARGS...]]\n       demo --sandbox [--memory-mib N] [--cpu-seconds N] [--max-processes N] SCRIPT\n       demo --pool N [--warm] [--preload MOD,...] --calls M SCRIPT\n       demo --stubs DIR\n\n\
             Runs SCRIPT (a bundled demo without one) and serves it foo, bar, echo, fail,\n\
             sleep, map_with and within. --classic speaks the seed's protocol; --async\n\
             serves from a tokio runtime (sleep and within async); --venv runs the\n\
             script in that virtual environment; --sandbox runs it under the default\n\
             sandbox policy with those limits; --stubs writes type stubs into DIR/tether."
        );
        return ExitCode::SUCCESS;
    }
    if args.first().is_some_and(|a| a == "--pool") {
        return pool_demo(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "--stubs") {
        let Some(dir) = args.get(1) else {
            eprintln!("demo: --stubs needs a directory");
            return ExitCode::from(2);
        };
        return match host().write_stubs(dir) {
            Ok(package) => {
                println!("wrote stubs to {}", package.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("demo: cannot write stubs to {dir}: {e}");
                ExitCode::from(1)
            }
        };
    }
    let mut classic = false;
    let mut asynchronous = false;
    let mut venv = None;
    let mut sandbox: Option<tether::Sandbox> = None;
    loop {
        let number = |args: &mut Vec<String>, flag: &str| -> Result<u64, ExitCode> {
            let value = (args.len() >= 2).then(|| args.remove(1));
            args.remove(0);
            match value.as_deref().map(str::parse::<u64>) {
                Some(Ok(n)) if n > 0 => Ok(n),
                _ => {
                    eprintln!("demo: {flag} needs a positive whole number");
                    Err(ExitCode::from(2))
                }
            }
        };
        match args.first().map(String::as_str) {
            Some("--sandbox") => {
                sandbox.get_or_insert_with(tether::Sandbox::new);
                args.remove(0);
            }
            Some(flag @ ("--memory-mib" | "--cpu-seconds" | "--max-processes")) => {
                let flag = flag.to_owned();
                let n = match number(&mut args, &flag) {
                    Ok(n) => n,
                    Err(code) => return code,
                };
                let policy = sandbox.take().unwrap_or_default();
                sandbox = Some(match flag.as_str() {
                    "--memory-mib" => policy.memory(n << 20),
                    "--cpu-seconds" => policy.cpu_time(Duration::from_secs(n)),
                    _ => policy.max_processes(n),
                });
            }
            Some("--classic") => {
                classic = true;
                args.remove(0);
            }
            Some("--async") => {
                asynchronous = true;
                args.remove(0);
            }
            Some("--venv") => {
                if args.len() < 2 {
                    eprintln!("demo: --venv needs a directory");
                    return ExitCode::from(2);
                }
                venv = Some(args.remove(1));
                args.remove(0);
            }
            _ => break,
        }
    }
    if classic && asynchronous {
        eprintln!("demo: --classic and --async do not go together (the seed's protocol is sync)");
        return ExitCode::from(2);
    }
    let host = if classic {
        host().classic()
    } else if asynchronous {
        async_host()
    } else {
        host()
    };
    let stop = match tether::stop_on_signals(Duration::from_secs(5)) {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(70);
        }
    };
    let script = match args.split_first() {
        Some((path, rest)) => Script::new(path).args(rest),
        None => {
            let name = if classic {
                "demo_classic.py"
            } else {
                "demo.py"
            };
            Script::new(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("examples")
                    .join(name),
            )
        }
    };
    let script = match venv {
        Some(dir) => script.venv(dir),
        None => script,
    };
    let script = match sandbox {
        Some(policy) => script.sandbox(policy),
        None => script,
    };
    let result = if asynchronous {
        match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(host.run_async(script)),
            Err(e) => {
                eprintln!("demo: cannot start a tokio runtime: {e}");
                return ExitCode::from(70);
            }
        }
    } else {
        host.run(script)
    };
    if let Some(signal) = stop.signal() {
        stop.wait_stopped();
        eprintln!("demo: stopped by signal {signal}");
        return ExitCode::from(128 + u8::try_from(signal).unwrap_or(0));
    }
    if let Ok(Some(limit)) = result.as_ref().map(tether::Outcome::limit) {
        eprintln!("demo: the script reached its sandbox's {limit}");
    }
    match result {
        Ok(outcome) => match (outcome.code(), outcome.signal()) {
            (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            (None, signal) => {
                eprintln!(
                    "demo: the script was killed by signal {}",
                    signal.unwrap_or(0)
                );
                ExitCode::from(128 + u8::try_from(signal.unwrap_or(0)).unwrap_or(0))
            }
        },
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(70)
        }
    }
}
