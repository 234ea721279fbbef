//! The graceful stop of every script when the host process gets SIGTERM
//! or SIGINT (`tether::stop_on_signals`), and when the application asks
//! (`tether::stop_all`). The signal tests run this test binary again as a
//! host process and signal it; they live in a binary of their own because
//! a stop reaches every script of the process.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use tether::Script;

/// Set when this test binary runs again as a host process that handles
/// termination signals (the script to run is its value).
const SIGNAL_ROLE: &str = "TETHER_TEST_SIGNAL_HOST";
/// The grace the host process gives its scripts, in milliseconds.
const SIGNAL_GRACE: &str = "TETHER_TEST_SIGNAL_GRACE_MS";

#[test]
fn signal_helper_host() {
    let Some(script_path) = std::env::var_os(SIGNAL_ROLE) else {
        // Run as an ordinary test: the stop an application wires to its own
        // signal handling (`stop_all`) asks a serving script to stop.
        let done = temp_dir("stop-all").join("done");
        let child = host()
            .spawn(Script::new(script(&format!(
                "import tether\ntether.serve()\nopen({:?}, 'w').write('finished')\n",
                done.display().to_string()
            ))))
            .unwrap();
        child.peer().wait_ready(Duration::from_secs(20)).unwrap();
        tether::stop_all(Duration::from_secs(20));
        let outcome = child.wait().unwrap();
        assert!(outcome.success(), "{}", outcome.status());
        assert_eq!(std::fs::read_to_string(done).unwrap(), "finished");
        return;
    };
    let grace = std::env::var(SIGNAL_GRACE).unwrap().parse().unwrap();
    let stop = tether::stop_on_signals(Duration::from_millis(grace)).unwrap();
    let result = host().run(Script::new(script_path));
    let code = match stop.signal() {
        Some(signal) => {
            stop.wait_stopped();
            128 + signal
        }
        None => {
            eprintln!("the script ended without a signal: {result:?}");
            1
        }
    };
    std::process::exit(code);
}

/// Starts this test binary as a host process running `code` with `grace`,
/// and waits until the script printed "ready".
fn signal_host(code: &str, grace: Duration) -> std::process::Child {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "signal_helper_host",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SIGNAL_ROLE, script(code))
        .env(SIGNAL_GRACE, grace.as_millis().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready) = mpsc::channel();
    // Reads to the end, so the host process never writes into a closed pipe;
    // the harness prints "test ... " before the script's line.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.ends_with("ready") {
                let _ = ready_tx.send(());
            }
        }
    });
    ready
        .recv_timeout(Duration::from_secs(30))
        .expect("the script said it was ready");
    child
}

fn terminate(child: &std::process::Child) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
}

/// Waits for the host process to exit (at most `limit`): its exit code and
/// how long it took.
fn exit_of(mut child: std::process::Child, limit: Duration) -> (Option<i32>, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the host process did not exit within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_to_the_host_kills_a_script_that_ignores_it_at_the_grace_and_the_host_exits() {
    let code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
                print('ready', flush=True)\ntime.sleep(600)\n";
    let host = signal_host(code, Duration::from_millis(1500));
    terminate(&host);
    let (code, took) = exit_of(host, Duration::from_secs(20));
    assert_eq!(code, Some(128 + 15));
    assert!(
        took >= Duration::from_millis(1400),
        "killed after only {took:?}"
    );
}

#[test]
fn sigterm_to_the_host_lets_a_serving_script_finish_its_work() {
    let done = temp_dir("graceful").join("done");
    let code = format!(
        "import time, tether\ntether.ready()\nprint('ready', flush=True)\ntether.serve()\n\
         time.sleep(0.2)\nopen({:?}, 'w').write('saved')\n",
        done.display().to_string()
    );
    // Connected (tether.ready() shakes hands first) before it says "ready".
    let host = signal_host(&code, Duration::from_secs(10));
    terminate(&host);
    let (code, took) = exit_of(host, Duration::from_secs(20));
    assert_eq!(code, Some(128 + 15));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(std::fs::read_to_string(done).unwrap(), "saved");
}

#[test]
fn a_second_sigterm_during_the_grace_stops_at_once() {
    let code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n\
                print('ready', flush=True)\ntime.sleep(600)\n";
    let host = signal_host(code, Duration::from_secs(60));
    terminate(&host);
    std::thread::sleep(Duration::from_millis(300));
    terminate(&host);
    let (code, took) = exit_of(host, Duration::from_secs(20));
    assert_eq!(code, Some(128 + 15));
    assert!(took < Duration::from_secs(10), "took {took:?}");
}
