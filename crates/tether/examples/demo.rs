//! The main demo: a Rust host serving a Python script.
//!
//! ```text
//! cargo run --example demo -- [--classic] [--venv DIR] [SCRIPT [ARGS...]]
//! cargo run --example demo -- --stubs DIR
//! ```
//!
//! The host exposes `foo(arg)` and `bar(arg)` (the seed's two functions),
//! `echo(value)`, `fail(message)`, `sleep(seconds)`, and `map_with(name,
//! values)`, which calls the script's export `name` on each value and returns
//! the results. Without a script it runs a bundled one that mirrors the
//! seed's. With `--venv DIR` the script runs in that virtual environment.
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
        .try_function(
            "sleep(seconds)",
            |seconds: f64| -> Result<(), FunctionError> {
                let d = Duration::try_from_secs_f64(seconds).map_err(|e| {
                    FunctionError::new("ValueError", format!("sleep({seconds}): {e}"))
                })?;
                std::thread::sleep(d);
                Ok(())
            },
        )
        .doc("Sleeps on the host for that many seconds.")
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

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--help" || a == "-h") {
        println!(
            "usage: demo [--classic] [--venv DIR] [SCRIPT [ARGS...]]\n       demo --stubs DIR\n\n\
             Runs SCRIPT (a bundled demo without one) and serves it foo, bar, echo, fail,\n\
             sleep and map_with. --classic speaks the seed's protocol; --venv runs the\n\
             script in that virtual environment; --stubs writes type stubs into DIR/tether."
        );
        return ExitCode::SUCCESS;
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
    let mut venv = None;
    loop {
        match args.first().map(String::as_str) {
            Some("--classic") => {
                classic = true;
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
    let host = if classic { host().classic() } else { host() };
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
    let result = host.run(script);
    if let Some(signal) = stop.signal() {
        stop.wait_stopped();
        eprintln!("demo: stopped by signal {signal}");
        return ExitCode::from(128 + u8::try_from(signal).unwrap_or(0));
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
