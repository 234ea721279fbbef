//! `Host::spawn`: a script served on its own thread, waited for, killed, or
//! dropped (which kills and reaps it).

mod common;

use std::time::{Duration, Instant};

use common::*;
use tether::Script;

fn alive(pid: u32) -> bool {
    // A reaped process has no /proc entry (or one that belongs to a new process
    // whose parent is not us); a zombie still has one, with state Z.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let after = stat
                .rsplit_once(')')
                .map(|(_, r)| r.to_owned())
                .unwrap_or_default();
            let fields: Vec<&str> = after.split_whitespace().collect();
            fields.get(1) == Some(&std::process::id().to_string().as_str())
        }
        Err(_) => false,
    }
}

#[test]
fn dropping_a_running_script_kills_and_reaps_it() {
    let running = host().spawn(script("import time\ntime.sleep(60)")).unwrap();
    let pid = running.id();
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(pid));
    let started = Instant::now();
    drop(running);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!alive(pid), "script {pid} still there after drop");
}

#[test]
fn wait_reports_the_outcome_and_kill_ends_the_script() {
    let running = host()
        .spawn(Script::new(script(
            "from tether import host\nimport sys\nsys.exit(host.add(2, 3))",
        )))
        .unwrap();
    let outcome = running.wait().unwrap();
    assert_eq!((outcome.code(), outcome.calls()), (Some(5), 1));

    let running = host().spawn(script("import time\ntime.sleep(60)")).unwrap();
    running.kill().unwrap();
    let outcome = running.wait().unwrap();
    assert_eq!(outcome.signal(), Some(9));
}

#[test]
fn one_host_serves_several_scripts_at_once() {
    let host = host();
    let code =
        "from tether import host\nfor i in range(200):\n    assert host.add(i, 1) == i + 1\n";
    let running: Vec<_> = (0..4).map(|_| host.spawn(script(code)).unwrap()).collect();
    for r in running {
        let outcome = r.wait().unwrap();
        assert!(outcome.success());
        assert_eq!(outcome.calls(), 200);
    }
}
