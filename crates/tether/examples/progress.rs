//! A host function that reports progress to the script that called it: the
//! call into the script's `progress` export happens while the script's own
//! call to `crunch` is still pending.
//!
//! ```text
//! cargo run --example progress
//! ```

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use tether::{Host, Peer};

fn crunch(steps: u32) -> Result<u64, tether::Error> {
    let script = Peer::current().expect("called by a script");
    let mut total = 0u64;
    for step in 1..=steps {
        std::thread::sleep(Duration::from_millis(30)); // the "work"
        total += u64::from(step) * u64::from(step);
        script.call::<()>("progress", (step, steps))?;
    }
    Ok(total)
}

fn main() -> ExitCode {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/progress.py");
    let host = Host::new()
        .try_function("crunch(steps)", crunch)
        .doc("Sums the squares up to steps, slowly, reporting progress.");
    match host.run(script.as_path()) {
        Ok(outcome) if outcome.success() => ExitCode::SUCCESS,
        Ok(outcome) => {
            eprintln!("progress: script ended with {}", outcome.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("progress: {e}");
            ExitCode::FAILURE
        }
    }
}
