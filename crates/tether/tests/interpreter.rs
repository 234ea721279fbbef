//! `TETHER_PYTHON` and the builder choose the interpreter. Alone in its own
//! binary because it changes the process environment.

mod common;

use common::*;
use tether::Error;

#[test]
fn tether_python_overrides_the_default_and_the_builder_overrides_both() {
    let real = python();
    let code = "import sys; print(sys.executable)";
    let plain = || tether::Host::new().function("f", || 1);
    std::env::set_var("TETHER_PYTHON", "/nonexistent/from-env");
    let err = run_with(&plain(), code).unwrap_err();
    assert!(
        matches!(&err, Error::Spawn { program, .. } if program.ends_with("from-env")),
        "{err}"
    );
    // The message names the variable that chose it.
    assert!(
        err.to_string()
            .contains("TETHER_PYTHON environment variable"),
        "{err}"
    );
    let out = run_with(&plain().python(&real), code).unwrap();
    assert_ok(&out);
    std::env::set_var("TETHER_PYTHON", &real);
    let out = run_with(&plain(), code).unwrap();
    assert_ok(&out);
    std::env::remove_var("TETHER_PYTHON");
    // No python3 on PATH: the message says how to choose one.
    let path = std::env::var_os("PATH");
    std::env::set_var("PATH", "/nonexistent");
    let err = run_with(&plain(), code).unwrap_err();
    if let Some(path) = path {
        std::env::set_var("PATH", path);
    }
    let text = err.to_string();
    assert!(text.contains("python3 from PATH"), "{text}");
    assert!(text.contains("Host::python or the TETHER_PYTHON"), "{text}");
}
