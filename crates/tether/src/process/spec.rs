//! What spawning a script needs of it, as plain data ([`Spec`]), and the
//! kinds of its standard streams: the public `Script` builder holds a
//! `Spec`, and `process/` reads nothing else of it.

use std::ffi::OsString;
use std::path::PathBuf;

/// Where one of the script's standard streams goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Stdio {
    /// Shared with the host (the default).
    #[default]
    Inherit,
    /// Connected to `/dev/null`.
    Null,
    /// Collected into [`Outcome::stdout`](crate::Outcome::stdout) or
    /// [`Outcome::stderr`](crate::Outcome::stderr). A thread drains it while
    /// the script runs, so a script that writes a lot never blocks on it.
    /// Not available for stdin.
    Capture,
}

/// What [`spawn`](super::spawn) needs of a script; `Script` builds it.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub path: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, Option<OsString>)>,
    pub cwd: Option<PathBuf>,
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
    pub stdout_lines: Option<LineCallback>,
    pub stderr_lines: Option<LineCallback>,
    pub venv: Option<PathBuf>,
    /// Forked warm by this zygote.
    pub warm: Option<super::Forker>,
    pub sandbox: Option<crate::sandbox::Sandbox>,
}

/// A function that receives the script's output one line at a time.
#[derive(Clone)]
pub(crate) struct LineCallback(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for LineCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineCallback")
    }
}
