//! Builds the C and C++ examples against the static library with the
//! system's compilers, runs them, and runs them again under valgrind: the
//! C API must report misuse with status codes, never crash, and leak nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `target/debug` (or wherever cargo put this test), which holds libtether_c.a.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_owned()
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `libtether_c.a`. `cargo test` builds only the rlib of this crate, so the
/// static library is built here, by the same cargo, in the same profile and
/// target directory (cargo releases its build lock before running tests).
fn static_lib() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = target_dir();
            let release = target.file_name().is_some_and(|n| n == "release");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--quiet", "-p", "tether-capi", "--lib"]);
            if release {
                cmd.arg("--release");
            }
            if let Some(dir) = target.parent() {
                cmd.arg("--target-dir").arg(dir);
            }
            let status = cmd.status().expect("run cargo build for libtether_c.a");
            assert!(status.success(), "cargo build -p tether-capi failed");
            let lib = target.join("libtether_c.a");
            assert!(
                lib.is_file(),
                "{} is missing after cargo build",
                lib.display()
            );
            lib
        })
        .clone()
}

fn build(compiler: &str, source: &str, name: &str) -> PathBuf {
    let standard: &[&str] = if compiler == "c++" {
        &["-std=c++17"]
    } else {
        &[]
    };
    build_with(compiler, standard, source, name)
}

fn build_with(compiler: &str, flags: &[&str], source: &str, name: &str) -> PathBuf {
    // Under target/, not the system temporary directory: nothing is left there.
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tether-capi");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join(name);
    let lib = static_lib();
    let status = Command::new(compiler)
        .args(["-Wall", "-Wextra", "-Werror", "-g"])
        .args(flags)
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join(source))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("this test needs a C/C++ compiler ({compiler}): {e}"));
    assert!(status.success(), "{compiler} failed on {source}");
    exe
}

fn run(exe: &Path, args: &[PathBuf], valgrind: bool) -> Output {
    let mut cmd = if valgrind {
        let mut c = Command::new("valgrind");
        c.args([
            "-q",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--error-exitcode=99",
        ])
        .arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (valgrind: {valgrind}): {e}", exe.display()))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn hello_c_runs_and_reports_misuse_with_status_codes() {
    let exe = build("cc", "examples/c/hello.c", "hello");
    let args = [
        crate_dir().join("examples/c/hello.py"),
        crate_dir().join("examples/c/plugin.py"),
    ];
    for valgrind in [false, true] {
        let out = run(&exe, &args, valgrind);
        let text = text(&out);
        assert!(out.status.success(), "valgrind={valgrind}:\n{text}");
        for line in [
            "add: 42",
            "greet: Hello, world! (call 1)",
            "checksum: {'length': 3000, 'sum': 5360512}",
            "add error: TypeError add() takes two integers",
            "hello.py ended with code 0 after 5 calls (2 greetings)",
            "two at once: square(5) = 25",
            "square(12) = 144",
            "explode(): TETHER_RESULT_REMOTE: the script's RuntimeError: the plugin failed on purpose",
            "calling after shutdown: TETHER_RESULT_MISUSE",
            "NULL host: TETHER_RESULT_NULL_ARGUMENT",
        ] {
            assert!(text.contains(line), "valgrind={valgrind}: missing {line:?} in:\n{text}");
        }
    }
}

#[test]
fn the_seed_host_rebuilt_on_tether_runs_the_seeds_own_script() {
    let exe = build(
        "c++",
        "examples/cpp/seed_host_classic.cpp",
        "seed_host_classic",
    );
    // No argument: the seed's script beside the example (ported to Python 3
    // bytes and nothing else), as the seed's program ran it.
    let copy = exe.with_file_name("seed_main.py");
    std::fs::copy(crate_dir().join("examples/cpp/seed_main.py"), &copy).unwrap();
    let out = run(&exe, &[], true);
    let text = text(&out);
    assert!(out.status.success(), "{text}");
    let mut want = String::from("Waiting for message from python...\nScript Starting\n");
    for i in 0..10 {
        for (name, arg) in [
            ("foo", format!("{}", 100 - i)),
            ("bar", format!("something {i}")),
        ] {
            want +=
                &format!("apiName: {name}\napiArg:  {arg}\nWaiting for message from python...\n");
            let api = if name == "foo" { "Foo" } else { "Bar" };
            want += &format!("{i}  {name}:  b'{api} was called with arg {arg}'\n");
        }
    }
    want += "EOF waiting for message, script ended\n";
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[test]
fn a_c_host_configures_and_observes_what_a_rust_host_does() {
    let exe = build("cc", "tests/c/parity.c", "parity");
    let stubs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tether-capi-stubs");
    let _ = std::fs::remove_dir_all(&stubs);
    for valgrind in [false, true] {
        let out = run(
            &exe,
            &[crate_dir().join("tests/c/parity.py"), stubs.clone()],
            valgrind,
        );
        let text = text(&out);
        assert!(out.status.success(), "valgrind={valgrind}:\n{text}");
        for line in [
            "bad signature: TETHER_RESULT_CONFIG",
            "spin 7",
            "shm True",
            "own group True",
            "named 42",
            "exit 0, calls 1, check \"\"",
            "log: 30 parity a warning from the script",
            "lines: [line one][line two]",
            "three at once: 2 4 6",
            "bytes length: 5",
            "nested: 42",
            "finished while serving: no",
            "shutdown exit 0",
            "killed: signal 9, exit -1, killed_by set, check mentions SIGKILL: yes",
            "stubs written",
            "pool: sum 380, calls 20, live 2",
            "stopped by signal 15: exit 0",
            "user data freed 1 time(s) after 1 add call(s)",
        ] {
            assert!(
                text.contains(line),
                "valgrind={valgrind}: missing {line:?} in:\n{text}"
            );
        }
        // Valgrind does not know Landlock's system calls: the strict policy
        // is then refused, naming what is missing, and that is all it may do.
        if valgrind && text.contains("sandbox refused: ") {
            assert!(text.contains("Landlock is not available"), "{text}");
        } else {
            for line in ["sandboxed: shadow denied", "limit: CPU time limit of 1 s"] {
                assert!(
                    text.contains(line),
                    "valgrind={valgrind}: missing {line:?} in:\n{text}"
                );
            }
        }
        assert!(
            stubs.join("tether").is_dir(),
            "no stubs in {}",
            stubs.display()
        );
    }
}

#[test]
fn the_seed_host_on_tether_hpp_runs_the_seed_natively() {
    let exe = build("c++", "examples/cpp/seed_host.cpp", "seed_host");
    let copy = exe.with_file_name("seed_native.py");
    std::fs::copy(crate_dir().join("examples/cpp/seed_native.py"), &copy).unwrap();
    let out = run(&exe, &[], true);
    let text = text(&out);
    assert!(out.status.success(), "{text}");
    for i in 0..10 {
        let n = 100 - i;
        for line in [
            format!("apiName: foo\napiArg:  {n}\n"),
            format!("{i}  foo:  Foo was called with arg {n}\n"),
            format!("{i}  bar:  Bar was called with arg something {i}\n"),
        ] {
            assert!(text.contains(&line), "missing {line:?} in:\n{text}");
        }
    }
    for line in [
        "boo:  no host function named \"boo\"",
        "foo error:  TypeError argument 0 is a str, not an int",
        "script ended with code 0 after 22 calls",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn two_scripts_at_once_one_crashing_from_cpp() {
    let exe = build("c++", "examples/cpp/multi_script.cpp", "multi_script");
    let out = run(&exe, &[crate_dir().join("examples/cpp")], true);
    let text = text(&out);
    assert!(out.status.success(), "{text}");
    for line in [
        "crashing.py: work(1) = 10",
        "crashing.py: work(2) failed: TETHER_RESULT_CLOSED",
        "steady.py: work(1) = 100",
        "steady.py: work(3) = 300",
        "crashing.py ended by signal 6: the script failed: killed by signal 6 (SIGABRT)",
        "steady.py still answers: 700",
        "steady.py ended with code 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn tether_hpp_types_exceptions_nesting_and_misuse() {
    let exe = build("c++", "tests/cpp/hpp.cpp", "hpp");
    for valgrind in [false, true] {
        let out = run(&exe, &[crate_dir().join("tests/cpp/hpp.py")], valgrind);
        let text = text(&out);
        assert!(out.status.success(), "valgrind={valgrind}:\n{text}");
        for line in [
            r#"types: [5,2,"tether.hpp",6,false,1.5,{"k":[1,"two"]},{"$bytes":[0,3]},42,"RuntimeError: C++ threw boom","TypeError"]"#,
            "double: 42",
            "script error: TETHER_RESULT_REMOTE: the script's ValueError: the script failed on purpose",
            "wrong result type: TETHER_RESULT_VALUE",
            "ended: code 0, calls 12",
            "misuse: TETHER_RESULT_MISUSE",
            "bad signature: TETHER_RESULT_CONFIG",
            "pool: 90, calls 10",
        ] {
            assert!(text.contains(line), "valgrind={valgrind}: missing {line:?} in:\n{text}");
        }
    }
}
