//! Alone in its own test binary, so no other test's children are around:
//! after many runs, the host has no child left, running or zombie.

mod common;

use common::*;

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
