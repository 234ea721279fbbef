//! Process hygiene: nothing of tether's leaks into other children, spawning
//! many scripts leaves no descriptor or thread behind, a script dies with its
//! host (even when the host is SIGKILLed), and a host never dies of SIGPIPE.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use tether::{Host, Script};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn a_thousand_spawns_leave_no_descriptor_or_thread_behind() {
    // `true` stands in for the interpreter: this measures tether's own
    // bookkeeping, 1,000 times, without 1,000 Python start-ups.
    let host = Host::new().python("/bin/true").function("f", || 1);
    let script = script("pass");
    host.run(script.as_path()).unwrap();
    let (fds0, threads0) = (fds(), threads());
    for _ in 0..1000 {
        let outcome = host.run(script.as_path()).unwrap();
        assert!(outcome.success());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while (fds() > fds0 || threads() > threads0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(fds() <= fds0, "descriptors: {fds0} before, {} after", fds());
    assert!(
        threads() <= threads0,
        "threads: {threads0} before, {} after",
        threads()
    );
}

/// What descriptors an unrelated child (a shell) has, and what they are.
fn unrelated_child_fds() -> Vec<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("for f in /proc/$$/fd/*; do echo \"$f $(readlink $f)\"; done")
        .output()
        .unwrap();
    let mut fds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.rsplit_once('/').map_or(l, |(_, fd)| fd).to_owned())
        .collect();
    fds.sort();
    fds
}

#[test]
fn an_unrelated_child_inherits_nothing_from_a_running_script() {
    // Whatever the test process itself leaks (cargo's jobserver pipes, say)
    // is the baseline; a running script must add nothing to it.
    let before = unrelated_child_fds();
    let child = host()
        .spawn(script(
            "from tether import host\nhost.add(1, 2)\nimport time\ntime.sleep(30)",
        ))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let during = unrelated_child_fds();
    drop(child);
    assert_eq!(
        during.len(),
        before.len(),
        "before: {before:?}\nduring: {during:?}"
    );
}

#[test]
fn a_script_dies_with_its_host_even_when_the_host_is_sigkilled() {
    if std::env::var_os("TETHER_TEST_HOST_MODE").is_some() {
        return; // handled by host_mode_helper
    }
    let pid_file = temp_dir("host-death").join("script.pid");
    // Re-run this test binary as a host that serves a long-running script.
    let mut host = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "host_mode_helper", "--nocapture"])
        .env("TETHER_TEST_HOST_MODE", &pid_file)
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid: u32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "the helper host never started its script"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    host.kill().unwrap(); // SIGKILL: no destructor, no cleanup runs in the host
    host.wait().unwrap();
    // Dead means gone, or a zombie waiting for whoever adopted it to reap it.
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
    };
    let started = Instant::now();
    while alive() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!alive(), "script {pid} outlived its host");
    eprintln!("the script died {:?} after its host", started.elapsed());
}

#[test]
fn host_mode_helper() {
    let Some(pid_file) = std::env::var_os("TETHER_TEST_HOST_MODE") else {
        return; // only does something when run by the test above
    };
    let code = format!(
        "import os, time\nopen({:?}, 'w').write(str(os.getpid()))\ntime.sleep(120)\n",
        pid_file.to_string_lossy()
    );
    let _ = host().run(Script::new(script(&code)));
}
