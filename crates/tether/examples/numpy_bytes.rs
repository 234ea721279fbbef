//! A host function working on a numpy array's raw bytes: the script sends
//! `memoryview(array)`, the host reads the f64 values and answers with the
//! scaled ones. Each side copies the data once (pipe to buffer), no more.
//!
//! ```text
//! cargo run --example numpy_bytes     # needs `pip install numpy`
//! ```

use std::path::Path;
use std::process::ExitCode;

use tether::{Bytes, FunctionError, Host, Value};

/// Takes `Value` rather than `Bytes` so the bytes stay a slice of the frame
/// they arrived in (no copy).
fn scale(data: Value, factor: f64) -> Result<Bytes, FunctionError> {
    let Value::Bytes(raw) = data else {
        return Err(FunctionError::new(
            "TypeError",
            format!("expected bytes, got {}", data.type_name()),
        ));
    };
    if raw.len() % 8 != 0 {
        return Err(FunctionError::new(
            "ValueError",
            "length is not a multiple of 8",
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for chunk in raw.chunks_exact(8) {
        let x = f64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        out.extend_from_slice(&(x * factor).to_le_bytes());
    }
    Ok(Bytes::from(out))
}

fn main() -> ExitCode {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/numpy_bytes.py");
    let host = Host::new()
        .try_function("scale(data, factor)", scale)
        .doc("Multiplies little-endian f64 values by factor.");
    match host.run(script.as_path()) {
        Ok(outcome) if outcome.success() => ExitCode::SUCCESS,
        Ok(outcome) => {
            eprintln!("numpy_bytes: script ended with {}", outcome.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("numpy_bytes: {e}");
            ExitCode::FAILURE
        }
    }
}
