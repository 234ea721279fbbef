//! One call through the C ABI beside the same call served by a Rust host,
//! measured in the same run: the script times `host.echo(i)`.
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
    let (mut c, mut rust) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        c.push(through_c_abi(&path));
        rust.push(through_rust(&path));
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
}
