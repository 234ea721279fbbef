//! Warm start: scripts forked by a zygote run as `__main__` with their own
//! arguments, environment, directory, streams and process group, see only
//! their own descriptors, report their exit code or signal exactly, die with
//! the host, and preloading really happens once; a dead zygote is restarted.

mod common;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use tether::{Error, Script, Stdio, Zygote};

fn zygote() -> Zygote {
    host().zygote().start().unwrap()
}

fn eventually(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < until, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn a_warm_script_runs_as_main_with_its_own_arguments_environment_and_directory() {
    let zygote = zygote();
    let dir = temp_dir("warm-cwd");
    let code = r#"
import os, sys
from tether import host
print(__name__)
print(sys.argv[1:])
print(os.environ.get("WARM_MODE"), "REMOVED" in os.environ)
print(os.getcwd())
print(sys.path[0] == os.path.dirname(os.path.realpath(__file__)))
print(os.getpgid(0) == os.getpid())
print(host.add(2, 3))
"#;
    let path = script(code);
    let outcome = host()
        .run(
            Script::new(&path)
                .args(["one", "two words"])
                .env("WARM_MODE", "fast")
                .env_remove("REMOVED")
                .current_dir(&dir)
                .stdout(Stdio::Capture)
                .warm(&zygote),
        )
        .unwrap();
    assert_ok(&outcome);
    let lines: Vec<String> = stdout(&outcome).lines().map(str::to_owned).collect();
    assert_eq!(lines[0], "__main__");
    assert_eq!(lines[1], "['one', 'two words']");
    assert_eq!(lines[2], "fast False");
    assert_eq!(
        std::fs::canonicalize(&lines[3]).unwrap(),
        std::fs::canonicalize(&dir).unwrap()
    );
    assert_eq!(lines[4], "True", "sys.path[0] is the script's directory");
    assert_eq!(lines[5], "True", "a process group of its own");
    assert_eq!(lines[6], "5");
    assert_eq!(zygote.forked(), 1);
}

#[test]
fn a_warm_scripts_exit_code_and_signal_are_reported_exactly() {
    let zygote = zygote();
    let run = |code: &str| {
        host()
            .run(
                Script::new(script(code))
                    .stderr(Stdio::Capture)
                    .warm(&zygote),
            )
            .unwrap()
    };
    let outcome = run("import sys\nsys.exit(7)");
    assert_eq!(outcome.status().code(), Some(7));
    let outcome =
        run("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nimport time\ntime.sleep(10)");
    assert_eq!(outcome.status().signal(), Some(libc::SIGTERM));
    let outcome = run("def broken():\n    raise ValueError('no good')\nbroken()\n");
    assert_eq!(outcome.status().code(), Some(1));
    let err = stderr(&outcome);
    assert!(
        err.starts_with("Traceback (most recent call last):"),
        "{err}"
    );
    assert!(err.contains("ValueError: no good"), "{err}");
    assert!(err.contains("in broken"), "{err}");
    assert!(
        !err.contains("_zygote"),
        "the zygote's own frames show: {err}"
    );
    let outcome = run("def broken(:\n");
    assert_eq!(outcome.status().code(), Some(1));
    assert!(
        stderr(&outcome).contains("SyntaxError"),
        "{}",
        stderr(&outcome)
    );
    // The same scripts, cold, end the same way.
    let cold = host()
        .run(Script::new(script("import sys\nsys.exit(7)")))
        .unwrap();
    assert_eq!(cold.status().code(), Some(7));
}

#[test]
fn a_warm_script_sees_only_its_standard_streams_and_its_channel() {
    let code = r#"
import os
from tether import host
fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
# The listing's own descriptor was closed by the time it returned.
fds = [fd for fd in fds if os.path.exists("/proc/self/fd/%d" % fd)]
print(" ".join(map(str, fds)))
print(" ".join(os.readlink("/proc/self/fd/%d" % fd).split(":")[0] for fd in fds[3:]))
"#;
    let path = script(code);
    let zygote = zygote();
    let warm = host()
        .run(Script::new(&path).stdout(Stdio::Capture).warm(&zygote))
        .unwrap();
    let cold = host()
        .run(Script::new(&path).stdout(Stdio::Capture))
        .unwrap();
    assert_ok(&warm);
    assert_ok(&cold);
    let warm = stdout(&warm);
    let cold = stdout(&cold);
    let warm: Vec<&str> = warm.lines().collect();
    let cold: Vec<&str> = cold.lines().collect();
    assert_eq!(warm[0], "0 1 2 3 4", "warm descriptors");
    assert_eq!(
        warm[0].split(' ').count(),
        cold[0].split(' ').count(),
        "warm {warm:?}, cold {cold:?}"
    );
    assert_eq!(warm[1], "pipe pipe");
    assert_eq!(warm[1], cold[1]);
}

#[test]
fn preloading_happens_once_in_the_zygote_and_not_in_each_script() {
    let dir = temp_dir("preload");
    let log = dir.join("imports.log");
    std::fs::write(
        dir.join("slow_import.py"),
        format!(
            "import os, time\nwith open({:?}, 'a') as f:\n    f.write('%d\\n' % os.getpid())\ntime.sleep(0.5)\nVALUE = 42\n",
            log.to_string_lossy()
        ),
    )
    .unwrap();
    let zygote = host()
        .zygote()
        .env("PYTHONPATH", &dir)
        .preload(["slow_import"])
        .start()
        .unwrap();
    assert_eq!(zygote.preloaded(), ["slow_import"]);
    let code = "import sys\nprint('slow_import' in sys.modules)\nimport slow_import\nprint(slow_import.VALUE)\n";
    let path = script(code);
    for _ in 0..3 {
        let started = Instant::now();
        let outcome = host()
            .run(
                Script::new(&path)
                    .env("PYTHONPATH", &dir)
                    .stdout(Stdio::Capture)
                    .warm(&zygote),
            )
            .unwrap();
        assert_ok(&outcome);
        assert_eq!(stdout(&outcome), "True\n42\n");
        assert!(
            started.elapsed() < Duration::from_millis(500) || cfg!(debug_assertions),
            "slower than the import it skips"
        );
    }
    let imports = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        imports.trim(),
        zygote.id().unwrap().to_string(),
        "imported only by the zygote"
    );
}

#[test]
fn a_module_that_cannot_be_preloaded_is_a_clear_error() {
    let err = host()
        .zygote()
        .preload(["no_such_module_for_tether"])
        .start()
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    assert!(
        text.contains("cannot preload no_such_module_for_tether")
            && text.contains("ModuleNotFoundError"),
        "{text}"
    );
}

#[test]
fn a_missing_working_directory_is_a_spawn_error() {
    let zygote = zygote();
    let err = host()
        .spawn(
            Script::new(script("pass"))
                .current_dir("/no/such/dir/for/tether")
                .warm(&zygote),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("/no/such/dir/for/tether"), "{err}");
    // The zygote still serves.
    assert!(host()
        .run(Script::new(script("pass")).warm(&zygote))
        .unwrap()
        .success());
}

#[test]
fn warm_output_is_captured_and_delivered_line_by_line() {
    let zygote = zygote();
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let outcome = host()
        .run(
            Script::new(script(
                "import sys\nprint('out one')\nprint('out two')\nsys.stderr.write('err line\\n')\n",
            ))
            .on_stdout_line(move |line| {
                let _ = tx.lock().unwrap().send(line.to_owned());
            })
            .stderr(Stdio::Capture)
            .warm(&zygote),
        )
        .unwrap();
    assert_ok(&outcome);
    assert_eq!(stderr(&outcome), "err line\n");
    let lines: Vec<String> = rx.try_iter().collect();
    assert_eq!(lines, ["out one", "out two"]);
}

#[test]
fn a_killed_zygote_takes_its_workers_and_is_started_again() {
    let zygote = zygote();
    let first = zygote.id().unwrap();
    let child = host()
        .spawn(Script::new(script("import time\ntime.sleep(60)")).warm(&zygote))
        .unwrap();
    let worker = child.id();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(first as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let outcome = within(
        Duration::from_secs(20),
        "the worker ends with its zygote",
        move || child.wait(),
    )
    .unwrap();
    assert_eq!(outcome.status().signal(), Some(libc::SIGKILL));
    assert!(!alive(worker));
    eventually("the zygote restarts", || zygote.restarts() == 1);
    eventually("the new zygote is up", || zygote.id().is_some());
    assert_ne!(zygote.id(), Some(first));
    let outcome = host()
        .run(Script::new(script("import sys\nsys.exit(3)")).warm(&zygote))
        .unwrap();
    assert_eq!(outcome.status().code(), Some(3));
}

#[test]
fn a_killed_warm_script_is_reported_as_killed_by_the_host() {
    let zygote = zygote();
    let child = host()
        .spawn(Script::new(script("import time\ntime.sleep(60)")).warm(&zygote))
        .unwrap();
    child.kill().unwrap();
    let outcome = child.wait().unwrap();
    assert_eq!(outcome.status().signal(), Some(libc::SIGKILL));
    // Dropping the zygote with nothing running stops it.
    let pid = zygote.id().unwrap();
    drop(zygote);
    eventually("the zygote stops", || !alive(pid));
}

#[test]
fn warm_scripts_die_with_their_host_even_when_the_host_is_sigkilled() {
    if std::env::var_os("TETHER_TEST_WARM_HOST").is_some() {
        return; // handled by warm_host_helper
    }
    let pid_file = temp_dir("warm-host-death").join("pids");
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "warm_host_helper", "--nocapture"])
        .env("TETHER_TEST_WARM_HOST", &pid_file)
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let pids: Vec<u32> = loop {
        let pids: Vec<u32> = std::fs::read_to_string(&pid_file)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.len() == 3 {
            break pids;
        }
        assert!(
            Instant::now() < deadline,
            "the helper never started its scripts"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    helper.kill().unwrap();
    helper.wait().unwrap();
    let started = Instant::now();
    while pids.iter().any(|&p| alive(p)) && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived its host");
    }
}

#[test]
fn warm_host_helper() {
    let Some(pid_file) = std::env::var_os("TETHER_TEST_WARM_HOST") else {
        return; // only does something when run by the test above
    };
    let zygote = host().zygote().start().unwrap();
    let code = format!(
        "import os, time\nopen({:?}, 'a').write('%d ' % os.getpid())\ntime.sleep(120)\n",
        pid_file.to_string_lossy()
    );
    std::fs::write(&pid_file, format!("{} ", zygote.id().unwrap())).unwrap();
    let path = script(&code);
    let a = host().spawn(Script::new(&path).warm(&zygote)).unwrap();
    let b = host().spawn(Script::new(&path).warm(&zygote)).unwrap();
    let _ = (a.wait(), b.wait());
}
