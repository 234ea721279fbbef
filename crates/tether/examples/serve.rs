//! Serves one script with an `echo` function: `cargo run --release --example serve -- SCRIPT`.
//! Used for profiling the host side of a call.

fn main() -> Result<(), tether::Error> {
    let script = std::env::args()
        .nth(1)
        .expect("usage: serve SCRIPT [ARGS...]");
    let args: Vec<String> = std::env::args().skip(2).collect();
    let outcome = tether::Host::new()
        .function("echo(value)", |v: tether::Value| v)
        .run(tether::Script::new(script).args(args))?;
    std::process::exit(outcome.code().unwrap_or(1));
}
