//! Embeds the Python client (`python/tether`) into the library, so the host
//! can put it on the script's path with nothing installed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    // `client` is a symlink to `python/tether` in the repository (cargo
    // packages the files it points to), so the pip package and the host
    // bundle one source.
    let client = manifest.join("client");
    println!("cargo:rerun-if-changed={}", client.display());
    let mut files = Vec::new();
    collect(&client, &client, &mut files);
    files.sort();
    let mut out = String::from("/// The bundled client: (path inside the package, contents).\npub(crate) const CLIENT_FILES: &[(&str, &[u8])] = &[\n");
    for (rel, abs) in &files {
        println!("cargo:rerun-if-changed={}", abs.display());
        writeln!(
            out,
            "    ({rel:?}, include_bytes!({:?})),",
            abs.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("client_files.rs");
    std::fs::write(dest, out).expect("write client_files.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if path.is_dir() {
            if name != "__pycache__" {
                collect(root, &path, files);
            }
        } else if name.ends_with(".py") || name == "py.typed" {
            let rel = path
                .strip_prefix(root)
                .expect("inside root")
                .to_string_lossy()
                .replace('\\', "/");
            files.push((
                format!("tether/{rel}"),
                path.canonicalize().expect("canonical path"),
            ));
        }
    }
}
