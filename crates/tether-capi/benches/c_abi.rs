//! One call through the C ABI, and through the C++ face (`tether.hpp`,
//! `benches/echo_host.cpp` built with the system's C++ compiler), beside the
//! same call served by a Rust host, measured in the same run: the script
//! times `host.echo(i)`.
//!
//! `cargo bench -p tether-capi --bench c_abi` (`TETHER_BENCH_CALLS` sets the
//! number of calls per run, default 20000).

use std::ffi::{c_void, CString};
use std::path::{Path, PathBuf};

use tether_c::*;

unsafe extern "C" fn echo(_: *mut c_void, call: *const tether_call, reply: *mut tether_reply) {
    let mut n = 0i64;
    tether_call_arg_int(call, 0, &mut n);
    tether_reply_int(reply, n);
}

fn script(n: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tether-c-abi-bench-{}.py", std::process::id()));
    std::fs::write(
        &path,
        format!(
            "import os, time\nfrom tether import host\nhost.echo(0)\nt = time.perf_counter()\nfor i in range({n}):\n    host.echo(i)\nmean = (time.perf_counter() - t) / {n} * 1e6\nopen(os.environ['TETHER_BENCH_OUT'], 'w').write('%f' % mean)\n"
        ),
    )
    .unwrap();
    path
}

/// Mean µs per call with a host built through the C ABI (the script writes
/// its figure to the file named in `TETHER_BENCH_OUT`).
fn through_c_abi(path: &Path) -> f64 {
    let out = std::env::temp_dir().join(format!("tether-c-abi-bench-{}.out", std::process::id()));
    let mut host = std::ptr::null_mut();
    let mut script = std::ptr::null_mut();
    let name = CString::new("echo").unwrap();
    let file = CString::new(path.to_str().unwrap()).unwrap();
    let mut outcome = tether_outcome::default();
    assert_eq!(tether_host_new(&mut host), tether_result::Ok);
    assert_eq!(
        tether_host_add_function(host, name.as_ptr(), Some(echo), std::ptr::null_mut()),
        tether_result::Ok
    );
    assert_eq!(
        tether_script_new(file.as_ptr(), &mut script),
        tether_result::Ok
    );
    let key = CString::new("TETHER_BENCH_OUT").unwrap();
    let value = CString::new(out.to_str().unwrap()).unwrap();
    assert_eq!(
        tether_script_set_env(script, key.as_ptr(), value.as_ptr()),
        tether_result::Ok
    );
    assert_eq!(
        tether_host_run(host, script, &mut outcome),
        tether_result::Ok
    );
    tether_script_free(script);
    tether_host_free(host);
    read_figure(&out)
}

fn through_rust(path: &Path) -> f64 {
    let out = std::env::temp_dir().join(format!("tether-rust-bench-{}.out", std::process::id()));
    tether::Host::new()
        .function("echo(value)", |v: i64| v)
        .run(tether::Script::new(path).env("TETHER_BENCH_OUT", &out))
        .unwrap();
    read_figure(&out)
}

/// Builds `benches/echo_host.cpp` against the release static library.
fn cpp_host() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = dir.join("../../target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "tether-capi",
            "--lib",
        ])
        .status()
        .ok()?;
    let lib = target.join("release/libtether_c.a");
    if !built.success() || !lib.is_file() {
        return None;
    }
    let exe = std::env::temp_dir().join(format!("tether-echo-host-{}", std::process::id()));
    let status = std::process::Command::new("c++")
        .args(["-std=c++17", "-O2", "-I"])
        .arg(dir.join("include"))
        .arg(dir.join("benches/echo_host.cpp"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .status()
        .ok()?;
    status.success().then_some(exe)
}

fn through_cpp(exe: &Path, path: &Path) -> f64 {
    let out = std::env::temp_dir().join(format!("tether-cpp-bench-{}.out", std::process::id()));
    let status = std::process::Command::new(exe)
        .arg(path)
        .env("TETHER_BENCH_OUT", &out)
        .status()
        .unwrap();
    assert!(status.success(), "the C++ echo host failed");
    read_figure(&out)
}

fn read_figure(path: &Path) -> f64 {
    let text = std::fs::read_to_string(path).unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("script said: {text}"))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let n: usize = std::env::var("TETHER_BENCH_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let path = script(n);
    let cpp_exe = cpp_host();
    let (mut c, mut cpp, mut rust) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        c.push(through_c_abi(&path));
        rust.push(through_rust(&path));
        if let Some(exe) = &cpp_exe {
            cpp.push(through_cpp(exe, &path));
        }
    }
    let (c, rust) = (median(c), median(rust));
    println!("one host.echo(i) call, {n} calls per run, median of 5 runs");
    println!("{:<32} {:>10} {:>8}", "", "µs", "ratio");
    println!(
        "{:<32} {:>10.2} {:>8.2}",
        "Rust host (tether::Host)", rust, 1.0
    );
    println!(
        "{:<32} {:>10.2} {:>8.2}",
        "C host (through the C ABI)",
        c,
        c / rust
    );
    let verdict = |ratio: f64| if ratio <= 1.05 { "met" } else { "NOT met" };
    let mut targets = vec![format!(
        "  {}: C ABI / Rust host (issue 16): {:.2} (target <= 1.05)",
        verdict(c / rust),
        c / rust
    )];
    match cpp_exe {
        Some(exe) => {
            let cpp = median(cpp);
            println!(
                "{:<32} {:>10.2} {:>8.2}",
                "C++ host (tether.hpp)",
                cpp,
                cpp / rust
            );
            targets.push(format!(
                "  {}: tether.hpp / Rust host (issue 16): {:.2} (target <= 1.05)",
                verdict(cpp / rust),
                cpp / rust
            ));
            let _ = std::fs::remove_file(exe);
        }
        None => println!("(no C++ row: the C++ compiler or the release library is missing)"),
    }
    println!("\ntargets, from this run:");
    for t in targets {
        println!("{t}");
    }
}
