//! Preparing a [`Sandbox`] in the host: everything that allocates, opens
//! files or asks the kernel what it supports happens here, before the fork;
//! what is left for the child (`unix::Confinement`) is a handful of system calls
//! on descriptors and buffers made here, applied by `unix::confine` between
//! fork and exec.
//!
//! The parts, in the order the child applies them: join the pids cgroup,
//! lower the rlimits, drop every capability, `no_new_privs`, Landlock
//! (paths, TCP ports, scoping of signals and abstract sockets), and last the
//! seccomp filters (so nothing after them needs a denied call).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use landlock::{
    path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset,
    RulesetAttr, RulesetCreatedAttr, Scope, ABI,
};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
    SeccompFilter, SeccompRule,
};

use super::unix::{self, Confinement};
use crate::error::Error;
use crate::sandbox::{Enforcement, Sandbox};
use crate::sync::lock;

/// What the host keeps while the script runs: its private temporary
/// directory and its cgroup, both removed when it has ended.
pub(crate) struct Jail {
    pub policy: Sandbox,
    tmp: PathBuf,
    cgroup: Option<PathBuf>,
}

impl Drop for Jail {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
        if let Some(cgroup) = &self.cgroup {
            // Empty once the group was killed and reaped; its last members
            // may take a moment to be gone.
            for _ in 0..50 {
                if std::fs::remove_dir(cgroup).is_ok() || !cgroup.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// A sandbox ready to apply.
pub(crate) struct Prepared {
    pub confinement: Confinement,
    pub jail: Jail,
    pub enforcement: Enforcement,
    /// Set in the script's environment (`TMPDIR` and friends).
    pub env: Vec<(OsString, Option<OsString>)>,
    /// The interpreter itself (`sys.executable`): what is run, rather than
    /// a wrapper the sandbox would not let start (a pyenv shim is a shell
    /// script).
    pub python: PathBuf,
}

/// The Landlock ABI the policy needs in full: scoping is ABI 6.
const NEEDED_ABI: ABI = ABI::V6;

/// Prepares `policy` for a script run by `python` with `pythonpath`, from
/// `script_dir`, with the bundled client in `client_dir`.
pub(crate) fn prepare(
    policy: &Sandbox,
    python: &Path,
    pythonpath: &OsStr,
    script_dir: &Path,
    client_dir: &Path,
    venv: Option<&Path>,
) -> Result<Prepared, Error> {
    let abi = unix::landlock_abi();
    let seccomp = unix::seccomp_available();
    let mut missing = admit(gaps(abi, seccomp), policy.best_effort)?;

    let tmp = private_tmp().map_err(|source| Error::Io {
        context: "creating the sandbox's temporary directory".into(),
        source,
    })?;
    let mut jail = Jail {
        policy: policy.clone(),
        tmp: tmp.clone(),
        cgroup: None,
    };

    // Paths.
    let (executable, interpreter) = interpreter_paths(python, pythonpath)?;
    let mut read: Vec<PathBuf> = policy.read_only.clone();
    let mut write: Vec<PathBuf> = policy.read_write.clone();
    if policy.defaults {
        read.extend(interpreter);
        read.extend(SYSTEM_READ.iter().map(PathBuf::from));
        read.push(client_dir.to_owned());
        read.push(script_dir.to_owned());
        read.extend(venv.map(Path::to_owned));
        write.extend(DEVICES_WRITE.iter().map(PathBuf::from));
        write.push(tmp.clone());
    }
    let landlock = if abi >= 1 {
        Some(
            ruleset(policy, &read, &write)
                .map_err(|e| Error::Sandbox(format!("cannot build the Landlock ruleset: {e}")))?,
        )
    } else {
        None
    };

    // Resource limits: soft and hard alike, so that lifting one needs a
    // capability the script no longer has (CPU: SIGXCPU at the soft limit,
    // SIGKILL a second later at the hard one).
    let mut rlimits = vec![(libc::RLIMIT_CORE, 0, 0)];
    if let Some(bytes) = policy.memory {
        rlimits.push((libc::RLIMIT_DATA, bytes, bytes));
    }
    if let Some(cpu) = policy.cpu {
        let secs = cpu.as_secs() + u64::from(cpu.subsec_nanos() > 0);
        rlimits.push((libc::RLIMIT_CPU, secs.max(1), secs.max(1) + 1));
    }
    if let Some(bytes) = policy.file_size {
        rlimits.push((libc::RLIMIT_FSIZE, bytes, bytes));
    }
    if let Some(n) = policy.open_files {
        rlimits.push((libc::RLIMIT_NOFILE, n, n));
    }

    // The process limit: the pids cgroup where the host may make one, else
    // RLIMIT_NPROC (which counts the whole user's processes, and which root
    // ignores).
    let mut process_limit = "none";
    let mut cgroup_procs = None;
    if let Some(n) = policy.processes {
        match pids_cgroup(n) {
            Ok(Some((dir, procs))) => {
                jail.cgroup = Some(dir);
                cgroup_procs = Some(procs);
                process_limit = "cgroup";
            }
            Ok(None) | Err(_) if !rustix::process::getuid().is_root() => {
                let mine = user_tasks();
                rlimits.push((libc::RLIMIT_NPROC, mine + n, mine + n));
                process_limit = "rlimit";
            }
            Ok(None) | Err(_) => {
                missing.extend(admit(
                    vec![format!(
                        "the process limit of {n} needs a pids cgroup the host can write (the \
                         host runs as root, which RLIMIT_NPROC does not limit)"
                    )],
                    policy.best_effort,
                )?);
            }
        }
    }

    let filters = if seccomp {
        filters().map_err(|e| Error::Sandbox(format!("cannot build the seccomp filter: {e}")))?
    } else {
        Vec::new()
    };

    let enforcement = Enforcement {
        landlock_abi: abi,
        filesystem: abi >= 1,
        tcp: abi >= 4,
        scoped: abi >= 6,
        seccomp,
        capabilities_dropped: true,
        process_limit,
        rlimits: true,
        missing,
    };
    let mut env = Vec::new();
    for var in ["TMPDIR", "TMP", "TEMP"] {
        env.push((OsString::from(var), Some(tmp.clone().into_os_string())));
    }
    Ok(Prepared {
        confinement: Confinement {
            landlock,
            seccomp: filters,
            rlimits,
            cgroup_procs,
        },
        jail,
        enforcement,
        env,
        python: executable,
    })
}

/// Strict enforcement refuses to start a script when any part of its
/// policy is missing; best effort runs it and reports the gaps.
fn admit(gaps: Vec<String>, best_effort: bool) -> Result<Vec<String>, Error> {
    match gaps.first() {
        Some(first) if !best_effort => Err(Error::Sandbox(format!(
            "{first}; this kernel cannot enforce the policy (use Sandbox::best_effort to run the \
             script with what it can, and Child::sandbox to see what that is)"
        ))),
        _ => Ok(gaps),
    }
}

/// What a kernel with Landlock ABI `abi` (0: none) and, or without,
/// seccomp cannot enforce of a policy, in words.
fn gaps(abi: u32, seccomp: bool) -> Vec<String> {
    let mut gaps = Vec::new();
    if abi < 1 {
        gaps.push(
            "Landlock is not available (Linux 5.13 or later, with landlock in the lsm= list), so \
             neither paths nor TCP ports are restricted"
                .to_owned(),
        );
    } else if abi < 4 {
        gaps.push(format!(
            "Landlock ABI {abi} cannot restrict TCP ports (ABI 4, Linux 6.7)"
        ));
    }
    if abi < 6 {
        gaps.push(format!(
            "Landlock ABI {abi} cannot keep signals and abstract Unix sockets inside the script \
             (ABI 6, Linux 6.12)"
        ));
    }
    if !seccomp {
        gaps.push("seccomp filters are not available (CONFIG_SECCOMP_FILTER)".to_owned());
    }
    gaps
}

/// What every interpreter reads besides its own tree: the dynamic loader's
/// files and the system libraries, time zones, certificates, and the
/// devices that read.
const SYSTEM_READ: &[&str] = &[
    "/lib",
    "/lib64",
    "/lib32",
    "/usr/lib",
    "/usr/lib64",
    "/usr/lib32",
    "/usr/local/lib",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/usr/share/zoneinfo",
    "/etc/ssl",
    "/dev/urandom",
    "/dev/random",
];

/// Devices a script may write (writing to them stores nothing).
const DEVICES_WRITE: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];

fn ruleset(policy: &Sandbox, read: &[PathBuf], write: &[PathBuf]) -> Result<OwnedFd, String> {
    let level = if policy.best_effort {
        CompatLevel::BestEffort
    } else {
        CompatLevel::HardRequirement
    };
    let existing = |paths: &[PathBuf]| -> Vec<PathBuf> {
        let mut seen = Vec::new();
        for p in paths {
            if p.exists() && !seen.contains(p) {
                seen.push(p.clone());
            }
        }
        seen
    };
    let created = Ruleset::default()
        .set_compatibility(level)
        .handle_access(AccessFs::from_all(NEEDED_ABI))
        .map_err(|e| e.to_string())?
        .handle_access(AccessNet::from_all(NEEDED_ABI))
        .map_err(|e| e.to_string())?
        .scope(Scope::Signal | Scope::AbstractUnixSocket)
        .map_err(|e| e.to_string())?
        .create()
        .map_err(|e| e.to_string())?
        .add_rules(path_beneath_rules(
            existing(read),
            AccessFs::from_read(NEEDED_ABI),
        ))
        .map_err(|e| e.to_string())?
        .add_rules(path_beneath_rules(
            existing(write),
            AccessFs::from_all(NEEDED_ABI),
        ))
        .map_err(|e| e.to_string())?
        .add_rules(
            policy
                .connect
                .iter()
                .map(|&p| Ok::<_, landlock::RulesetError>(NetPort::new(p, AccessNet::ConnectTcp))),
        )
        .map_err(|e| e.to_string())?
        .add_rules(
            policy
                .bind
                .iter()
                .map(|&p| Ok::<_, landlock::RulesetError>(NetPort::new(p, AccessNet::BindTcp))),
        )
        .map_err(|e| e.to_string())?;
    let fd: Option<OwnedFd> = created.into();
    fd.ok_or_else(|| "the kernel made no ruleset".to_owned())
}

/// The seccomp programs: the first answers `EPERM` to what a sandboxed
/// script may not do; the second answers `ENOSYS` to `clone3`, whose flags
/// a filter cannot read, so that the C library falls back to `clone`, whose
/// flags the first one checks.
fn filters() -> Result<Vec<Vec<seccompiler::sock_filter>>, seccompiler::Error> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(seccompiler::Error::Backend)?;
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for call in [
        libc::SYS_setsid,
        libc::SYS_setpgid,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
    ] {
        deny.insert(call, Vec::new());
    }
    let arg = |index, op, value| Cond::new(index, Len::Dword, op, value);
    // Sockets: TCP over IPv4 or IPv6 only (Landlock restricts its ports);
    // no Unix sockets (named ones are outside Landlock's reach here; pairs
    // come from socketpair, which stays allowed), UDP, raw, netlink, packet.
    let mut socket = vec![SeccompRule::new(vec![
        arg(0, Op::Ne, libc::AF_INET as u64)?,
        arg(0, Op::Ne, libc::AF_INET6 as u64)?,
    ])?];
    for family in [libc::AF_INET, libc::AF_INET6] {
        for kind in [
            libc::SOCK_DGRAM,
            libc::SOCK_RAW,
            libc::SOCK_RDM,
            libc::SOCK_SEQPACKET,
            6,  // SOCK_DCCP
            10, // SOCK_PACKET
        ] {
            socket.push(SeccompRule::new(vec![
                arg(0, Op::Eq, family as u64)?,
                arg(1, Op::MaskedEq(0xf), kind as u64)?,
            ])?);
        }
        socket.push(SeccompRule::new(vec![
            arg(0, Op::Eq, family as u64)?,
            arg(2, Op::Ne, 0)?,
            arg(2, Op::Ne, libc::IPPROTO_TCP as u64)?,
        ])?);
    }
    deny.insert(libc::SYS_socket, socket);
    // No new namespaces through clone's flags.
    let mut clone = Vec::new();
    for flag in [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWCGROUP,
    ] {
        clone.push(SeccompRule::new(vec![Cond::new(
            0,
            Len::Qword,
            Op::MaskedEq(flag as u64),
            flag as u64,
        )?])?);
    }
    deny.insert(libc::SYS_clone, clone);
    let eperm = SeccompFilter::new(
        deny,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, Vec::new());
    let enosys = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    Ok(vec![eperm.try_into()?, enosys.try_into()?])
}

/// The directories the interpreter reads: its prefixes, `sys.path` (with
/// `pythonpath`), the standard library and site-packages, asked of the
/// interpreter itself once per interpreter and path.
fn interpreter_paths(python: &Path, pythonpath: &OsStr) -> Result<(PathBuf, Vec<PathBuf>), Error> {
    type Found = (PathBuf, Vec<PathBuf>);
    static CACHE: OnceLock<Mutex<HashMap<(PathBuf, OsString), Found>>> = OnceLock::new();
    let key = (python.to_owned(), pythonpath.to_owned());
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(paths) = lock(cache).get(&key) {
        return Ok(paths.clone());
    }
    const ASK: &str = "import json, os, site, sys, sysconfig\n\
        p = [sys.executable, os.path.realpath(sys.executable), sys.prefix, sys.base_prefix, sys.exec_prefix,\n\
             getattr(sys, 'base_exec_prefix', sys.exec_prefix)]\n\
        p += sys.path\n\
        p += [v for k, v in sysconfig.get_paths().items()\n\
              if k in ('stdlib', 'platstdlib', 'purelib', 'platlib')]\n\
        p += getattr(site, 'getsitepackages', lambda: [])()\n\
        u = getattr(site, 'getusersitepackages', lambda: None)()\n\
        p += [u] if u else []\n\
        print(json.dumps([x for x in p if x]))\n";
    let out = Command::new(python)
        .args(["-c", ASK])
        .env("PYTHONPATH", pythonpath)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|source| Error::Spawn {
            program: python.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Sandbox(format!(
            "cannot ask {} where its libraries are: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let listed: Vec<String> = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::Sandbox(format!(
            "{} answered no list of its paths: {e}",
            python.display()
        ))
    })?;
    let paths: Vec<PathBuf> = listed
        .into_iter()
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .collect();
    let Some(executable) = paths.first().cloned() else {
        return Err(Error::Sandbox(format!(
            "{} did not say where its executable is",
            python.display()
        )));
    };
    let found = (executable, paths);
    lock(cache).insert(key, found.clone());
    Ok(found)
}

/// A fresh directory only the host's user can enter, under the host's
/// temporary directory.
fn private_tmp() -> io::Result<PathBuf> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tether-sandbox-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// A new pids cgroup allowing `n` tasks, below the host's own: its
/// directory and its `cgroup.procs`, opened for the child to join. `None`
/// where there is no pids controller the host may write.
fn pids_cgroup(n: u64) -> io::Result<Option<(PathBuf, OwnedFd)>> {
    static N: AtomicU64 = AtomicU64::new(0);
    let Some(base) = pids_base()? else {
        return Ok(None);
    };
    let dir = base.join(format!(
        "tether-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir)?;
    let made = (|| {
        std::fs::write(dir.join("pids.max"), n.to_string())?;
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))?;
        Ok::<_, io::Error>(OwnedFd::from(procs))
    })();
    match made {
        Ok(procs) => Ok(Some((dir, procs))),
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            Err(e)
        }
    }
}

/// The host's own pids cgroup directory: cgroup v1's pids hierarchy, or a
/// v2 cgroup whose children get the pids controller.
fn pids_base() -> io::Result<Option<PathBuf>> {
    let groups = std::fs::read_to_string("/proc/self/cgroup")?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mount_of = |v2: bool| -> Option<PathBuf> {
        mounts.lines().find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let point = left.split_whitespace().nth(4)?;
            let mut right = right.split_whitespace();
            let kind = right.next()?;
            let options = right.nth(1).unwrap_or("");
            let fits = if v2 {
                kind == "cgroup2"
            } else {
                kind == "cgroup" && options.split(',').any(|o| o == "pids")
            };
            fits.then(|| PathBuf::from(point))
        })
    };
    for line in groups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "pids") {
            if let Some(mount) = mount_of(false) {
                let dir = mount.join(relative);
                if dir.join("cgroup.procs").exists() {
                    return Ok(Some(dir));
                }
            }
        } else if controllers.is_empty() {
            if let Some(mount) = mount_of(true) {
                let dir = mount.join(relative);
                let delegated = std::fs::read_to_string(dir.join("cgroup.subtree_control"))
                    .is_ok_and(|c| c.split_whitespace().any(|c| c == "pids"));
                if delegated {
                    return Ok(Some(dir));
                }
            }
        }
    }
    Ok(None)
}

/// How many tasks the host's user runs now (what `RLIMIT_NPROC` counts).
fn user_tasks() -> u64 {
    let uid = rustix::process::getuid().as_raw();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok())
                == Some(uid)
        })
        .map(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Threads:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
        })
        .sum()
}

/// The CPU time a process has used (user and system), read from `/proc`
/// while it is an unreaped zombie.
pub(crate) fn cpu_used(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line; 12 and 13
    // after the command name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Some(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_missing_kernel_feature_is_named() {
        assert!(gaps(7, true).is_empty());
        assert!(gaps(6, true).is_empty());
        let five = gaps(5, true);
        assert_eq!(five.len(), 1, "{five:?}");
        assert!(five[0].contains("signals") && five[0].contains("ABI 6"));
        let three = gaps(3, true);
        assert_eq!(three.len(), 2, "{three:?}");
        assert!(three[0].contains("TCP ports"));
        let none = gaps(0, false);
        assert_eq!(none.len(), 3, "{none:?}");
        assert!(none[0].contains("Landlock is not available"));
        assert!(none[2].contains("seccomp"));
    }

    #[test]
    fn a_strict_policy_refuses_what_the_kernel_lacks_and_best_effort_reports_it() {
        let missing = gaps(5, true);
        let err = admit(missing.clone(), false).unwrap_err();
        assert!(
            matches!(&err, Error::Sandbox(m) if m.contains("ABI 6")),
            "{err}"
        );
        assert!(err.to_string().contains("Sandbox::best_effort"), "{err}");
        assert_eq!(admit(missing.clone(), true).unwrap(), missing);
        assert!(admit(gaps(7, true), false).unwrap().is_empty());
    }

    #[test]
    fn limits_explain_themselves_with_their_values() {
        let policy = Sandbox::new()
            .cpu_time(Duration::from_secs(3))
            .memory(512 << 20)
            .max_processes(64)
            .file_size(1 << 20);
        assert_eq!(
            policy
                .explain(Some(libc::SIGXCPU), None, None, "")
                .as_deref(),
            Some("CPU time limit of 3 s")
        );
        assert_eq!(
            policy
                .explain(Some(libc::SIGKILL), None, Some(Duration::from_secs(4)), "")
                .as_deref(),
            Some("CPU time limit of 3 s")
        );
        // A SIGKILL with little CPU used is someone else's.
        assert_eq!(
            policy.explain(
                Some(libc::SIGKILL),
                None,
                Some(Duration::from_millis(10)),
                ""
            ),
            None
        );
        assert_eq!(
            policy
                .explain(None, Some(1), None, "Traceback\nMemoryError")
                .as_deref(),
            Some("memory limit of 512 MiB")
        );
        assert_eq!(
            policy
                .explain(
                    None,
                    Some(1),
                    None,
                    "BlockingIOError: [Errno 11] Resource temporarily unavailable"
                )
                .as_deref(),
            Some("process limit of 64")
        );
        assert_eq!(
            policy
                .explain(None, Some(1), None, "OSError: [Errno 27] File too large")
                .as_deref(),
            Some("file size limit of 1 MiB")
        );
        assert_eq!(policy.explain(None, Some(0), None, "MemoryError"), None);
        assert_eq!(
            Sandbox::new().explain(None, Some(1), None, "MemoryError"),
            None
        );
    }
}
