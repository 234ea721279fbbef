//! The Python client the host carries inside itself.
//!
//! Before a native script starts, the client's files are written once per
//! content into a private cache directory, `client-<version>-<hash>`, which
//! then goes first on the script's `PYTHONPATH`. Writing goes to a temporary
//! directory that is renamed into place: rename is atomic, so many hosts
//! starting at once either win the rename or find the finished directory, and
//! nobody ever imports a half-written client.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

include!(concat!(env!("OUT_DIR"), "/client_files.rs"));

/// The version of this crate, which is also the version of the Python client
/// it bundles.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The variable that chooses where the client is unpacked.
const CACHE_VAR: &str = "TETHER_CACHE_DIR";

/// The directory holding `tether/` for `PYTHONPATH`, written if needed.
pub(crate) fn client_dir() -> io::Result<PathBuf> {
    client_dir_in(&cache_base()?)
}

fn client_dir_in(base: &Path) -> io::Result<PathBuf> {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let dir = base.join(format!("client-{VERSION}-{:016x}", content_hash()));
    if dir.join("tether/__init__.py").is_file() {
        return Ok(dir);
    }
    let tmp = base.join(format!(
        ".client-tmp-{}-{}-{}",
        std::process::id(),
        SERIAL.fetch_add(1, Ordering::Relaxed),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    // The marker lets the client cache its bytecode here even where
    // PYTHONDONTWRITEBYTECODE is set: this directory is tether's own.
    let written = write_tree(&tmp)
        .and_then(|()| fs::write(tmp.join("tether").join(BUNDLE_MARKER), b""))
        .and_then(|()| fs::rename(&tmp, &dir));
    match written {
        Ok(()) => Ok(dir),
        // Another host renamed its copy into place first: use that one.
        Err(_) if dir.join("tether/__init__.py").is_file() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// Marks a copy of the client as the host's own cached bundle.
const BUNDLE_MARKER: &str = ".bundled";

pub(crate) fn write_tree(root: &Path) -> io::Result<()> {
    for (rel, contents) in CLIENT_FILES {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, contents)?;
    }
    Ok(())
}

/// `$XDG_CACHE_HOME/tether`, else `~/.cache/tether`, else a per-user
/// directory under the system temp dir that must belong to us and be
/// writable by nobody else (anyone who could write there could run code in
/// every script).
/// Where the client is unpacked: `$TETHER_CACHE_DIR` when set (created if
/// needed; an error when it cannot be written), else `$XDG_CACHE_HOME/tether`
/// or `~/.cache/tether`, else a private `tether-<uid>` in the system's
/// temporary directory.
fn cache_base() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_VAR).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        let made = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir);
        return match made {
            Ok(()) if writable(&dir) => Ok(dir),
            Ok(()) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{CACHE_VAR}={} is not writable", dir.display()),
            )),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!("cannot create {CACHE_VAR}={}: {e}", dir.display()),
            )),
        };
    }
    let home_cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        });
    if let Some(cache) = home_cache {
        let dir = cache.join("tether");
        if fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .is_ok()
            && writable(&dir)
        {
            return Ok(dir);
        }
    }
    let uid = rustix::process::getuid().as_raw();
    let dir = std::env::temp_dir().join(format!("tether-{uid}"));
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a private directory of this user; remove it or set XDG_CACHE_HOME",
                dir.display()
            ),
        ));
    }
    Ok(dir)
}

fn writable(dir: &Path) -> bool {
    fs::metadata(dir)
        .map(|m| m.is_dir() && !m.permissions().readonly())
        .unwrap_or(false)
}

/// FNV-1a over every path and content: stable across builds and platforms.
fn content_hash() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (rel, contents) in CLIENT_FILES {
        for &b in rel
            .as_bytes()
            .iter()
            .chain([0u8].iter())
            .chain(contents.iter())
        {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_holds_the_whole_client() {
        let names: Vec<&str> = CLIENT_FILES.iter().map(|(n, _)| *n).collect();
        for want in ["tether/__init__.py", "tether/classic.py", "tether/py.typed"] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }

    #[test]
    fn client_versions_equal_the_crates() {
        let (_, version_py) = CLIENT_FILES
            .iter()
            .find(|(n, _)| *n == "tether/_version.py")
            .expect("_version.py is bundled");
        let text = std::str::from_utf8(version_py).unwrap();
        assert!(
            text.contains(&format!("__version__ = \"{VERSION}\"")),
            "python/tether/_version.py must say __version__ = \"{VERSION}\""
        );
        assert!(text.contains(&format!(
            "PROTOCOL_VERSION = {}",
            crate::protocol::PROTOCOL_VERSION
        )));
        let pyproject = include_str!("../../../python/pyproject.toml");
        assert!(
            pyproject.contains(&format!("version = \"{VERSION}\"")),
            "python/pyproject.toml must carry version {VERSION}"
        );
    }

    #[test]
    fn concurrent_writers_agree_on_one_directory() {
        let tmp = std::env::temp_dir().join(format!("tether-bundle-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).unwrap();
        let dirs: Vec<PathBuf> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| client_dir_in(&tmp))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        assert!(dirs.windows(2).all(|w| w[0] == w[1]));
        for (rel, contents) in CLIENT_FILES {
            assert_eq!(&fs::read(dirs[0].join(rel)).unwrap(), contents);
        }
        let leftovers: Vec<_> = fs::read_dir(&tmp)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with(".client-tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        fs::remove_dir_all(&tmp).unwrap();
    }
}
