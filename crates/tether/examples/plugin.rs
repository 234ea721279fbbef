//! A host that drives a plugin-style script: it starts `plugin.py`, calls
//! the functions the script exports, and shuts it down.
//!
//! ```text
//! cargo run --example plugin
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn main() -> Result<(), tether::Error> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plugin.py");
    let plugin = tether::Host::new().spawn(script.as_path())?;

    let text = "the quick brown fox jumps over the lazy dog\nthe end";
    let words: usize = plugin.call("word_count", (text,))?;
    let top: Vec<(String, u32)> = plugin.call("top_words", (text, 2))?;
    let stats: BTreeMap<String, u32> = plugin.call("stats", (text,))?;
    println!("words: {words}");
    println!("top: {top:?}");
    println!("stats: {stats:?}");

    // Arguments by name, and a plugin error reaching Rust with its traceback.
    let named: Vec<(String, u32)> = plugin.call("top_words", serde_json_like(text))?;
    println!("top (by name): {named:?}");
    match plugin.call::<usize>("word_count", (42,)) {
        Err(tether::Error::Remote(e)) => println!("plugin raised {}: {}", e.kind(), e.message()),
        other => println!("unexpected: {other:?}"),
    }

    let outcome = plugin.shutdown(Duration::from_secs(2))?;
    println!("plugin ended: {}", outcome.status());
    assert_eq!(words, 11);
    Ok(())
}

/// `{"text": text, "n": 1}`: a map passes arguments by name.
fn serde_json_like(text: &str) -> BTreeMap<&'static str, tether::Value> {
    BTreeMap::from([
        ("text", tether::Value::from(text)),
        ("n", tether::Value::from(1)),
    ])
}
