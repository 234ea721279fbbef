//! Scripts the host does not trust: under the default policy a script is
//! denied everything outside it (files, the network, other processes, its
//! own limits), each denial an ordinary Python error; legitimate work still
//! works; and a limit that ends a script explains itself.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use tether::{Host, Sandbox, Script, Stdio};

const PROBES: &str = r#"
import json, os, resource, signal, socket, sys
outside_file, outside_dir, port, bind_port, abstract = sys.argv[1:6]
port, bind_port = int(port), int(bind_port)
here = os.path.dirname(os.path.abspath(__file__))
tmp = os.environ["TMPDIR"]
results = {}

def probe(name, fn):
    try:
        fn()
        results[name] = "ALLOWED"
    except (OSError, ValueError) as e:
        results[name] = type(e).__name__

def symlink_then_read():
    link = os.path.join(tmp, "link")
    os.symlink(outside_file, link)
    results["symlink made"] = os.path.islink(link)
    open(link).read()

def raise_rlimit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard + 1, hard + 1))

def raise_data():
    resource.setrlimit(resource.RLIMIT_DATA, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

probe("read outside", lambda: open(outside_file).read())
probe("/etc/shadow", lambda: open("/etc/shadow").read())
probe("list home", lambda: os.listdir(os.path.expanduser("~")))
probe("list /", lambda: os.listdir("/"))
probe("write outside", lambda: open(os.path.join(outside_dir, "written"), "w").write("x"))
probe("write beside the script", lambda: open(os.path.join(here, "written"), "w").write("x"))
probe("read through a symlink", symlink_then_read)
probe("connect tcp", lambda: socket.create_connection(("127.0.0.1", port), timeout=5))
probe("bind tcp", lambda: socket.socket().bind(("127.0.0.1", bind_port)))
probe("send udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", port)))
probe("raw socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
probe("netlink socket", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
probe("abstract unix socket", lambda: socket.socket(socket.AF_UNIX).connect("\0" + abstract))
probe("signal the host", lambda: os.kill(os.getppid(), signal.SIGURG))
probe("host's environment", lambda: open("/proc/%d/environ" % os.getppid(), "rb").read())
probe("host's memory", lambda: open("/proc/%d/mem" % os.getppid(), "rb").read(1))
probe("raise an rlimit", raise_rlimit)
probe("lift the memory limit", raise_data)
def ptrace_host():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, os.getppid(), None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), "ptrace refused")
    libc.ptrace(17, os.getppid(), None, None)  # PTRACE_DETACH

probe("ptrace the host", ptrace_host)
probe("setsid", os.setsid)
probe("setpgid", lambda: os.setpgid(0, 0))
probe("unshare", lambda: os.unshare(os.CLONE_NEWUSER) if hasattr(os, "unshare") else (_ for _ in ()).throw(PermissionError()))
print(json.dumps(results))
"#;

fn policy_host() -> Host {
    host()
}

#[test]
fn a_sandboxed_script_is_denied_everything_outside_its_policy() {
    let outside = temp_dir("sandbox-outside");
    let secret = outside.join("secret.txt");
    std::fs::write(&secret, "secret").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind_port = free.local_addr().unwrap().port();
    drop(free);
    let name = format!("tether-test-{}", std::process::id());
    let addr = {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
    };
    let _abstract = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let outcome = policy_host()
        .run(
            Script::new(script(PROBES))
                .arg(&secret)
                .arg(&outside)
                .arg(port.to_string())
                .arg(bind_port.to_string())
                .arg(&name)
                .stdout(Stdio::Capture)
                .stderr(Stdio::Capture)
                .sandbox(Sandbox::new().memory(2 << 30)),
        )
        .unwrap();
    assert_ok(&outcome);
    let results: HashMap<String, serde_json::Value> =
        serde_json::from_str(stdout(&outcome).trim()).unwrap();
    assert_eq!(
        results["symlink made"],
        serde_json::Value::Bool(true),
        "{results:?}"
    );
    for (probe, result) in &results {
        if probe == "symlink made" {
            continue;
        }
        let result = result.as_str().unwrap();
        assert!(
            result == "PermissionError" || result == "OSError" || result == "ValueError",
            "{probe}: {result} (all: {results:?})"
        );
    }
    assert!(results.len() >= 22, "{results:?}");
    assert!(!outside.join("written").exists());
    // The host and its listener saw nothing.
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "a connection got through");
}

const LEGITIMATE: &str = r#"
import asyncio, decimal, hashlib, json, os, sqlite3, ssl, subprocess, sys, zlib
import tether
from tether import host
here = os.path.dirname(os.path.abspath(__file__))
out = {}
out["data"] = open(os.path.join(here, "data.txt")).read()
out["listing"] = sorted(os.listdir(here))
path = os.path.join(os.environ["TMPDIR"], "scratch.db")
db = sqlite3.connect(path)
db.execute("create table t (x)")
db.execute("insert into t values (42)")
out["sqlite"] = db.execute("select x from t").fetchone()[0]
db.close()
out["decimal"] = str(decimal.Decimal("1.1") + decimal.Decimal("2.2"))
out["ssl"] = ssl.OPENSSL_VERSION.split()[0]
out["hash"] = hashlib.sha256(b"x").hexdigest()[:8]
out["zlib"] = len(zlib.compress(b"a" * 1000)) < 100
out["add"] = host.add(2, 3)
big = bytes(range(256)) * 8192
out["shared"] = host.echo(big) == big
out["asyncio"] = asyncio.run(asyncio.sleep(0.01, result="slept"))
# Threads calling at once: the client's calls that keep the GIL (ctypes)
# load under the sandbox too.
import threading
barrier = threading.Barrier(8)
wrong = []
def work(k):
    barrier.wait()
    for i in range(300):
        if host.add(k, i) != k + i:
            wrong.append((k, i))
threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
out["threads"] = wrong == []
out["threaded"] = tether._connection.connection()._calls is not None
out["subprocess"] = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True).stdout.strip()
try:
    import numpy
    out["numpy"] = int(numpy.arange(10).sum())
except ImportError:
    out["numpy"] = "not installed"
print(json.dumps(out))

@tether.export
def double(x):
    return 2 * x

tether.serve()
"#;

#[test]
fn legitimate_work_still_works_in_the_default_sandbox() {
    let path = script(LEGITIMATE);
    std::fs::write(path.with_file_name("data.txt"), "beside the script").unwrap();
    let child = policy_host()
        .shared_memory(64 * 1024)
        .spawn(
            Script::new(&path)
                .stdout(Stdio::Capture)
                .stderr(Stdio::Capture)
                .sandbox(Sandbox::new()),
        )
        .unwrap();
    let enforced = child.sandbox().unwrap().clone();
    assert!(enforced.complete(), "{enforced:?}");
    assert_eq!(child.call::<i64>("double", (21,)).unwrap(), 42);
    let outcome = child.shutdown(Duration::from_secs(5)).unwrap();
    assert_ok(&outcome);
    let out: HashMap<String, serde_json::Value> = serde_json::from_str(stdout(&outcome).trim())
        .unwrap_or_else(|e| panic!("{e}: {}", stderr(&outcome)));
    assert_eq!(out["data"], "beside the script");
    assert_eq!(out["sqlite"], 42);
    assert_eq!(out["decimal"], "3.3");
    assert_eq!(out["ssl"], "OpenSSL");
    assert_eq!(out["zlib"], true);
    assert_eq!(out["add"], 5);
    assert_eq!(out["shared"], true);
    assert_eq!(out["asyncio"], "slept");
    assert_eq!(out["threads"], true);
    assert_eq!(out["threaded"], true);
    assert_eq!(out["subprocess"], "42");
    if python_has_numpy() {
        assert_eq!(out["numpy"], 45);
    }
}

fn python_has_numpy() -> bool {
    std::process::Command::new(python())
        .args(["-c", "import numpy"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_private_temporary_directory_is_removed_when_the_script_ends() {
    let outcome = policy_host()
        .run(
            Script::new(script(
                "import os\nopen(os.path.join(os.environ['TMPDIR'], 'f'), 'w').write('x')\nprint(os.environ['TMPDIR'])",
            ))
            .stdout(Stdio::Capture)
            .sandbox(Sandbox::new()),
        )
        .unwrap();
    assert_ok(&outcome);
    let tmp = stdout(&outcome).trim().to_owned();
    assert!(tmp.contains("tether-sandbox-"), "{tmp}");
    assert!(!std::path::Path::new(&tmp).exists(), "{tmp} is still there");
}

fn limited(code: &str, policy: Sandbox) -> tether::Outcome {
    policy_host()
        .run(
            Script::new(script(code))
                .stdout(Stdio::Capture)
                .stderr(Stdio::Capture)
                .sandbox(policy),
        )
        .unwrap()
}

#[test]
fn four_gibibytes_do_not_fit_a_memory_limit_of_512_mib() {
    let outcome = limited(
        "import sys\nprint('before')\nsys.stdout.flush()\nblob = bytearray(4 << 30)\nprint('after')",
        Sandbox::new().memory(512 << 20),
    );
    assert_eq!(stdout(&outcome), "before\n");
    assert!(
        stderr(&outcome).contains("MemoryError"),
        "{}",
        stderr(&outcome)
    );
    assert_eq!(outcome.limit(), Some("memory limit of 512 MiB"));
    let err = outcome.check().unwrap_err().to_string();
    assert!(err.contains("memory limit of 512 MiB"), "{err}");
}

#[test]
fn five_hundred_forks_do_not_fit_a_process_limit_of_64() {
    let code = r#"
import os, sys, time
started = 0
try:
    for _ in range(500):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        started += 1
finally:
    print(started)
    sys.stdout.flush()
"#;
    let outcome = limited(code, Sandbox::new().max_processes(64));
    let started: u32 = stdout(&outcome).trim().parse().unwrap();
    assert!(started < 64, "{started} processes started");
    assert!(!outcome.success());
    assert_eq!(
        outcome.limit(),
        Some("process limit of 64"),
        "{}",
        stderr(&outcome)
    );
    // What it started went with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !children().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_spinning_script_is_stopped_by_a_cpu_limit_of_3_s() {
    let started = Instant::now();
    let outcome = limited(
        "while True:\n    pass\n",
        Sandbox::new().cpu_time(Duration::from_secs(3)),
    );
    assert_eq!(outcome.signal(), Some(libc::SIGXCPU));
    assert_eq!(outcome.limit(), Some("CPU time limit of 3 s"));
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = outcome.check().unwrap_err().to_string();
    assert!(err.contains("CPU time limit of 3 s"), "{err}");
    // Catching SIGXCPU does not help: SIGKILL a second later.
    let outcome = limited(
        "import signal\nsignal.signal(signal.SIGXCPU, lambda *a: None)\nwhile True:\n    pass\n",
        Sandbox::new().cpu_time(Duration::from_secs(1)),
    );
    assert_eq!(outcome.signal(), Some(libc::SIGKILL));
    assert_eq!(outcome.limit(), Some("CPU time limit of 1 s"));
}

#[test]
fn nothing_a_sandboxed_script_starts_outlives_it() {
    let code = r#"
import os, subprocess, sys, time
try:
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    print("new session ALLOWED")
except (OSError, subprocess.SubprocessError) as e:
    print("new session denied", type(e).__name__)
pid = os.fork()
if pid == 0:
    try:
        os.setsid()
    except OSError:
        pass
    time.sleep(60)
    os._exit(0)
print(pid)
"#;
    let outcome = limited(code, Sandbox::new());
    assert_ok(&outcome);
    let out = stdout(&outcome);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("new session denied"), "{out}");
    let pid = lines[1].trim();
    let deadline = Instant::now() + Duration::from_secs(10);
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    };
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(), "process {pid} outlived its sandboxed script");
}

#[test]
fn the_host_keeps_serving_after_a_limit_ended_a_script() {
    let host = policy_host();
    let first = host
        .run(
            Script::new(script("while True:\n    pass\n"))
                .sandbox(Sandbox::new().cpu_time(Duration::from_secs(1))),
        )
        .unwrap();
    assert_eq!(first.limit(), Some("CPU time limit of 1 s"));
    let second = host
        .run(
            Script::new(script(
                "from tether import host\nassert host.add(1, 2) == 3",
            ))
            .sandbox(Sandbox::new()),
        )
        .unwrap();
    assert_ok(&second);
}

#[test]
fn the_policy_opens_what_it_names() {
    let open = temp_dir("sandbox-open");
    std::fs::write(open.join("in.txt"), "readable").unwrap();
    let out_dir = temp_dir("sandbox-out");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        "import os, socket\nprint(open({:?}).read())\nopen({:?}, 'w').write('written')\nsocket.create_connection(('127.0.0.1', {port}), timeout=5).close()\nprint('connected')\n",
        open.join("in.txt").to_string_lossy(),
        out_dir.join("out.txt").to_string_lossy()
    );
    let outcome = limited(
        &code,
        Sandbox::new()
            .read_only(&open)
            .read_write(&out_dir)
            .connect_tcp(port),
    );
    assert_ok(&outcome);
    assert_eq!(stdout(&outcome), "readable\nconnected\n");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("out.txt")).unwrap(),
        "written"
    );
}

#[test]
fn a_sandboxed_script_cannot_start_warm() {
    let zygote = host().zygote().start().unwrap();
    let err = host()
        .spawn(
            Script::new(script("pass"))
                .warm(&zygote)
                .sandbox(Sandbox::new()),
        )
        .unwrap_err();
    assert!(matches!(err, tether::Error::Config(_)), "{err:?}");
}

#[test]
fn file_size_and_open_files_limits_explain_themselves() {
    let outcome = limited(
        "import os\nwith open(os.path.join(os.environ['TMPDIR'], 'big'), 'wb') as f:\n    f.write(b'x' * (2 << 20))\n",
        Sandbox::new().file_size(1 << 20),
    );
    assert!(!outcome.success());
    assert!(
        stderr(&outcome).contains("File too large"),
        "{}",
        stderr(&outcome)
    );
    assert_eq!(outcome.limit(), Some("file size limit of 1 MiB"));
    let outcome = limited(
        "import os\nfiles = [open(os.devnull) for _ in range(1000)]\n",
        Sandbox::new().open_files(64),
    );
    assert!(
        stderr(&outcome).contains("Too many open files"),
        "{}",
        stderr(&outcome)
    );
    assert_eq!(outcome.limit(), Some("open files limit of 64"));
}
