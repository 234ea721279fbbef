//! Where the host unpacks its bundled client: `TETHER_CACHE_DIR` chooses
//! it. A binary of its own: the variable is read by every spawn of the
//! process.

mod common;

use common::*;

#[test]
fn tether_cache_dir_chooses_where_the_client_is_unpacked() {
    let dir = temp_dir("cache").join("nested/cache");
    std::env::set_var("TETHER_CACHE_DIR", &dir);
    let outcome = run_ok(
        r#"
import os, tether
print(os.path.dirname(os.path.dirname(tether.__file__)))
"#,
    );
    let printed = String::from_utf8_lossy(outcome.stdout().unwrap())
        .trim()
        .to_owned();
    assert!(
        std::path::Path::new(&printed).starts_with(&dir),
        "{printed} is not under {}",
        dir.display()
    );
    assert!(std::path::Path::new(&printed)
        .join("tether/__init__.py")
        .is_file());

    // A place that cannot be written is an error that names the variable.
    let file = temp_dir("cache").join("a-file");
    std::fs::write(&file, "").unwrap();
    std::env::set_var("TETHER_CACHE_DIR", file.join("below"));
    let err = host().run(script("pass")).unwrap_err().to_string();
    assert!(err.contains("TETHER_CACHE_DIR="), "{err}");
    std::env::remove_var("TETHER_CACHE_DIR");
}
