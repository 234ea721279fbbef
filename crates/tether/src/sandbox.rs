//! [`Sandbox`]: what a script the host does not trust may touch and use,
//! and [`Enforcement`], what the kernel actually enforces of it.
//!
//! The policy is applied in the child before exec, by
//! [`process`](crate::process) (`process/sandbox.rs` prepares it in the
//! host, `process/unix.rs` applies it); this module only describes it.

use std::path::PathBuf;
use std::time::Duration;

/// What a sandboxed script may touch and how much it may use.
///
/// ```no_run
/// use std::time::Duration;
/// use tether::{Host, Sandbox, Script};
///
/// let policy = Sandbox::new()
///     .read_only("/srv/models")
///     .connect_tcp(5432)
///     .memory(512 << 20)
///     .cpu_time(Duration::from_secs(3))
///     .max_processes(64);
/// let outcome = Host::new().run(Script::new("plugin.py").sandbox(policy))?;
/// println!("{:?}", outcome.limit()); // e.g. Some("CPU time limit of 3 s")
/// # Ok::<(), tether::Error>(())
/// ```
///
/// The default policy lets a script start its interpreter, import the
/// standard library (C extensions included) and its site-packages, import
/// the bundled client, read its own directory, and read and write a private
/// temporary directory (`TMPDIR`, removed when the script ends); nothing
/// else on the filesystem, no network, no signal or ptrace to anything
/// outside its own processes, no new session or process group, no
/// capabilities, no core dumps, and at most 128 processes and threads.
///
/// Enforcement is strict by default: when the kernel lacks a part of the
/// policy, starting the script fails with [`Error::Sandbox`](crate::Error::Sandbox)
/// naming it, because a policy that silently holds only in part is worse
/// than none. With [`best_effort`](Sandbox::best_effort) the script runs
/// anyway and [`Child::sandbox`](crate::Child::sandbox) says exactly what
/// is enforced.
///
/// What is used: Landlock (filesystem rules, TCP ports, and the scoping of
/// signals and abstract Unix sockets: Linux 6.12), a seccomp filter after
/// `no_new_privs` (socket families and types, `setsid`/`setpgid`, ptrace,
/// io_uring, namespaces, keyrings, bpf), rlimits, an empty capability set
/// (so a host running as root cannot hand its script the power to lift
/// them), and the pids cgroup for the process limit where the host can
/// write it (root ignores `RLIMIT_NPROC`). See `docs/guarantees.md` for the
/// threat model.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub(crate) read_only: Vec<PathBuf>,
    pub(crate) read_write: Vec<PathBuf>,
    pub(crate) connect: Vec<u16>,
    pub(crate) bind: Vec<u16>,
    pub(crate) memory: Option<u64>,
    pub(crate) cpu: Option<Duration>,
    pub(crate) processes: Option<u64>,
    pub(crate) file_size: Option<u64>,
    pub(crate) open_files: Option<u64>,
    pub(crate) best_effort: bool,
    pub(crate) defaults: bool,
}

impl Default for Sandbox {
    fn default() -> Sandbox {
        Sandbox::new()
    }
}

impl Sandbox {
    /// The default policy (see the type's documentation).
    pub fn new() -> Sandbox {
        Sandbox {
            read_only: Vec::new(),
            read_write: Vec::new(),
            connect: Vec::new(),
            bind: Vec::new(),
            memory: None,
            cpu: None,
            processes: Some(128),
            file_size: None,
            open_files: Some(1024),
            best_effort: false,
            defaults: true,
        }
    }

    /// Lets the script read (and execute) what is under `path`.
    pub fn read_only(mut self, path: impl Into<PathBuf>) -> Sandbox {
        self.read_only.push(path.into());
        self
    }

    /// Lets the script read, write, create and remove what is under `path`.
    pub fn read_write(mut self, path: impl Into<PathBuf>) -> Sandbox {
        self.read_write.push(path.into());
        self
    }

    /// Lets the script connect to TCP `port` (on any address).
    pub fn connect_tcp(mut self, port: u16) -> Sandbox {
        self.connect.push(port);
        self
    }

    /// Lets the script bind TCP `port` (to listen on it).
    pub fn bind_tcp(mut self, port: u16) -> Sandbox {
        self.bind.push(port);
        self
    }

    /// Limits the script's memory to `bytes` of data (heap and anonymous
    /// mappings, `RLIMIT_DATA`): past it Python raises `MemoryError` where
    /// it can. (The address-space limit is not used: importing numpy maps
    /// about a gigabyte of address space it never touches.)
    pub fn memory(mut self, bytes: u64) -> Sandbox {
        self.memory = Some(bytes);
        self
    }

    /// Limits the CPU time of each of the script's processes: at `limit`
    /// it is killed (SIGXCPU, and SIGKILL a second later if it catches
    /// that).
    pub fn cpu_time(mut self, limit: Duration) -> Sandbox {
        self.cpu = Some(limit);
        self
    }

    /// At most `n` processes and threads in the script's process tree
    /// (default 128).
    pub fn max_processes(mut self, n: u64) -> Sandbox {
        self.processes = Some(n.max(1));
        self
    }

    /// No file larger than `bytes` may be written (`OSError` "File too
    /// large" past it).
    pub fn file_size(mut self, bytes: u64) -> Sandbox {
        self.file_size = Some(bytes);
        self
    }

    /// At most `n` open descriptors in each process (default 1024).
    pub fn open_files(mut self, n: u64) -> Sandbox {
        self.open_files = Some(n.max(16));
        self
    }

    /// Runs the script even where the kernel cannot enforce all of the
    /// policy; [`Child::sandbox`](crate::Child::sandbox) then says what is.
    pub fn best_effort(mut self) -> Sandbox {
        self.best_effort = true;
        self
    }

    /// Starts from nothing instead of the default paths: only the paths
    /// given with [`read_only`](Sandbox::read_only) and
    /// [`read_write`](Sandbox::read_write) (the interpreter, its libraries
    /// and the bundled client must then be among them).
    pub fn without_default_paths(mut self) -> Sandbox {
        self.defaults = false;
        self
    }

    /// Which limit, if any, explains how a script ended: a status (its
    /// signal, or exit code), the CPU seconds it used, and the last lines of
    /// its stderr.
    pub(crate) fn explain(
        &self,
        signal: Option<i32>,
        code: Option<i32>,
        cpu_used: Option<Duration>,
        stderr: &str,
    ) -> Option<String> {
        let cpu_hit = |limit: Duration| {
            cpu_used.is_some_and(|used| used + Duration::from_millis(50) >= limit)
        };
        if let Some(limit) = self.cpu {
            if signal == Some(libc::SIGXCPU) || (signal == Some(libc::SIGKILL) && cpu_hit(limit)) {
                return Some(format!("CPU time limit of {}", seconds(limit)));
            }
        }
        if let Some(limit) = self.file_size {
            if signal == Some(libc::SIGXFSZ)
                || (code.is_some_and(|c| c != 0) && stderr.contains("File too large"))
            {
                return Some(format!("file size limit of {}", bytes(limit)));
            }
        }
        if code.is_none_or(|c| c == 0) {
            return None;
        }
        if let Some(limit) = self.memory {
            if stderr.contains("MemoryError") || stderr.contains("Cannot allocate memory") {
                return Some(format!("memory limit of {}", bytes(limit)));
            }
        }
        if let Some(limit) = self.processes {
            if stderr.contains("Resource temporarily unavailable")
                || stderr.contains("can't start new thread")
            {
                return Some(format!("process limit of {limit}"));
            }
        }
        if let Some(limit) = self.open_files {
            if stderr.contains("Too many open files") {
                return Some(format!("open files limit of {limit}"));
            }
        }
        None
    }
}

fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn bytes(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

/// What the kernel enforces of a script's [`Sandbox`] (from
/// [`Child::sandbox`](crate::Child::sandbox)). With a strict policy (the
/// default) everything is, or the script would not have started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Enforcement {
    /// The Landlock ABI of the running kernel (0: none).
    pub landlock_abi: u32,
    /// Filesystem paths are restricted (Landlock ABI 1; refer and truncate
    /// with 2 and 3).
    pub filesystem: bool,
    /// TCP connect and bind are restricted to the allowed ports (ABI 4).
    pub tcp: bool,
    /// Signals and abstract Unix sockets cannot reach outside the script's
    /// processes (ABI 6).
    pub scoped: bool,
    /// The seccomp filter is installed (socket families and types, no new
    /// session or group, no ptrace, io_uring, namespaces, keyrings, bpf).
    pub seccomp: bool,
    /// Capabilities were dropped (all of them, bounding set included).
    pub capabilities_dropped: bool,
    /// How the process limit is enforced: `"cgroup"` (the pids
    /// controller), `"rlimit"` (`RLIMIT_NPROC`, per user), or `"none"`.
    pub process_limit: &'static str,
    /// The rlimits set (memory, CPU, file size, open files, core dumps).
    pub rlimits: bool,
    /// What the policy asked for that is not enforced, in words (empty when
    /// all of it is).
    pub missing: Vec<String>,
}

impl Enforcement {
    /// Whether every part of the policy is enforced.
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
    }
}
