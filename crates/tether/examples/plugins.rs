//! A plugin host: every `*.py` in a directory is a plugin. Each is started,
//! asked to describe itself and to handle one text, and stopped; one
//! raises, one hangs, one crashes, and the host reports each and goes on.
//!
//! ```text
//! cargo run --example plugins [DIR]
//! ```
//!
//! Every plugin gets a [`Script::context`] (its name and a running total
//! the host keeps for it), which the host function `add_to_total` reads
//! through `Peer::current()`: one function serves every plugin and knows
//! which one calls. The plugins' log records and every call are `tracing`
//! output on stderr.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tether::{Child, Error, Host, Peer, Script, Stdio};

/// What the host attaches to each plugin it starts.
struct Plugin {
    file: String,
    total: Mutex<i64>,
}

/// What a plugin says about itself.
#[derive(Deserialize)]
struct Description {
    name: String,
    version: String,
    about: String,
}

const CALL_LIMIT: Duration = Duration::from_secs(2);
const GRACE: Duration = Duration::from_secs(2);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let dir = std::env::args_os().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plugins"),
        PathBuf::from,
    );
    let host = Host::new()
        .forward_logs()
        .function("add_to_total(n)", |n: i64| -> i64 {
            let caller = Peer::current().expect("called by a plugin");
            let plugin = caller.context::<Plugin>().expect("every plugin has one");
            let mut total = plugin.total.lock().unwrap();
            *total += n;
            *total
        })
        .doc("Adds n to the calling plugin's total and returns the total.");

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read the plugin directory {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    files.sort();
    println!("{} plugins in {}", files.len(), dir.display());

    // All of them run at once: one host serves many scripts.
    let mut running: Vec<(String, Result<Child, Error>)> = Vec::new();
    for path in &files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let script = Script::new(path).stderr(Stdio::Capture).context(Plugin {
            file: file.clone(),
            total: Mutex::new(0),
        });
        running.push((file, host.spawn(script)));
    }

    let mut worked = Vec::new();
    for (file, child) in running {
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                println!("  {file:<12} did not start: {e}");
                continue;
            }
        };
        match child.call_timeout::<Description>("describe", (), CALL_LIMIT) {
            Ok(d) => println!("  {file:<12} {} {}: {}", d.name, d.version, d.about),
            Err(e) => println!("  {file:<12} cannot describe itself: {e}"),
        }
        match child.call_timeout::<tether::Value>("handle", ("hello plugin world",), CALL_LIMIT) {
            Ok(answer) => {
                println!("  {file:<12} handled: {answer}");
                worked.push(file.clone());
            }
            Err(Error::Timeout { after, .. }) => {
                println!("  {file:<12} gave no answer within {after:?}")
            }
            Err(Error::Remote(e)) => println!("  {file:<12} raised {}: {}", e.kind(), e.message()),
            Err(e) => println!("  {file:<12} failed: {e}"),
        }
        let stats = child.stats();
        let name = child
            .peer()
            .context::<Plugin>()
            .map_or_else(|| file.clone(), |p| p.file.clone());
        match child.shutdown(GRACE).map(tether::Outcome::check) {
            Ok(Ok(outcome)) => println!(
                "  {name:<12} ended well ({}); {} calls to it, {} from it, {} bytes each way",
                outcome.status(),
                stats.calls_to_script,
                stats.calls_from_script,
                stats.bytes_to_script + stats.bytes_from_script,
            ),
            Ok(Err(failed)) | Err(failed) => println!("  {name:<12} ended badly: {failed}"),
        }
    }

    println!(
        "the host goes on: {} of {} plugins worked",
        worked.len(),
        files.len()
    );
    if worked != ["counter.py", "upper.py"] {
        return Err(format!("expected counter.py and upper.py to work, got {worked:?}").into());
    }
    Ok(())
}
