//! Alone in its own test binary, so no other test's children are around:
//! after many runs, the host has no child left, running or zombie.

mod common;

use common::*;

fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest.to_owned()) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.get(1) == Some(&me.as_str()) {
            found.push(format!(
                "{} state {}",
                entry.file_name().to_string_lossy(),
                fields[0]
            ));
        }
    }
    found
}

#[test]
fn no_child_or_zombie_is_left_after_many_runs() {
    let host = host().exit_grace(std::time::Duration::from_millis(200));
    for i in 0..30 {
        let code = match i % 3 {
            0 => "pass",
            1 => "import os; os._exit(1)",
            _ => "import os, time; os.write(int(os.environ['TETHER_WRITE_FD']), b'garbage!'); time.sleep(30)",
        };
        let _ = run_with(&host, code);
    }
    assert_eq!(children(), Vec::<String>::new());
}
