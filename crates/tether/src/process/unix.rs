//! The Linux specifics of spawning: which descriptors the child keeps, and
//! how the host learns that the child exited. One of the two modules with
//! `unsafe` (the other is `shm.rs`, which maps sealed memory files).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{pidfd_open, Pid, PidfdFlags};

/// Makes `keep` the only descriptors above stderr that survive `exec` in the
/// child: they lose close-on-exec, every other descriptor gains it.
///
/// Close-on-exec on our own pipes is not enough: the host may itself have
/// inherited descriptors without it (from a shell, a benchmark wrapper, a C
/// library). Marking them close-on-exec instead of closing them keeps the
/// standard library's own exec-error pipe working, so a missing interpreter
/// is still reported as a spawn error.
///
/// The child also gets its own process group when `own_group` is set (so
/// stopping it can stop its children too), and a parent-death signal: when
/// the host process dies, even by SIGKILL, the kernel kills the script. The
/// signal is tied to the thread that forks, which is why every spawn happens
/// on one long-lived thread ([`spawn`]).
pub(super) fn prepare(
    cmd: &mut Command,
    keep: &[RawFd],
    own_group: bool,
    confinement: Option<std::sync::Arc<Confinement>>,
) {
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    let parent = rustix::process::getpid().as_raw_nonzero().get();
    // SAFETY: the closure runs in the child between fork and exec. It calls
    // only setpgid, prctl, getppid, fcntl, close_range and getrlimit (and,
    // for a sandbox, write, setrlimit, capset, landlock_restrict_self and
    // seccomp: see `confine`), which are async-signal-safe, and it neither
    // allocates nor takes locks.
    unsafe {
        cmd.pre_exec(move || {
            if own_group && libc::setpgid(0, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // The host may have died between fork and prctl: then nobody
            // would send the signal.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            for &fd in &keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            let mut low: RawFd = 3;
            for &fd in &keep {
                if fd > low {
                    cloexec_range(low, fd - 1);
                }
                low = low.max(fd + 1);
            }
            cloexec_range(low, RawFd::MAX);
            if let Some(confinement) = &confinement {
                confine(confinement)?;
            }
            Ok(())
        });
    }
}

/// What the child applies to itself before exec ([`confine`]), prepared by
/// `process/sandbox.rs` in the host: it lives here, with the code that
/// applies it.
pub(crate) struct Confinement {
    pub landlock: Option<OwnedFd>,
    pub seccomp: Vec<Vec<seccompiler::sock_filter>>,
    /// `(resource, soft, hard)`.
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    /// `cgroup.procs` of the script's pids cgroup, to write "0" into.
    pub cgroup_procs: Option<OwnedFd>,
}

/// Applies a sandbox to the calling (child) process: joins its pids
/// cgroup, lowers the rlimits, drops every capability, sets
/// `no_new_privs`, restricts itself with the Landlock ruleset, and installs
/// the seccomp programs, in that order (each later step needs nothing the
/// earlier ones forbid; the seccomp filters come last so that no step of
/// the sandboxing itself is filtered).
///
/// # Safety
///
/// Async-signal-safe: runs between fork and exec, and uses only system
/// calls on descriptors and buffers the host prepared before the fork.
unsafe fn confine(c: &Confinement) -> io::Result<()> {
    let check = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    if let Some(procs) = &c.cgroup_procs {
        // SAFETY: writes one byte from a static buffer to a descriptor we own.
        check(unsafe { libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) } == 1)?;
    }
    for &(resource, soft, hard) in &c.rlimits {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the struct we own.
        check(unsafe { libc::setrlimit(resource, &limit) } == 0)?;
    }
    // Every capability goes, from the bounding set too, so that a host
    // running as root does not hand the script the power to lift the
    // limits (raising a hard rlimit needs CAP_SYS_RESOURCE) or to regain
    // capabilities by exec. Dropping from the bounding set needs
    // CAP_SETPCAP: without it (an unprivileged host) there is nothing there
    // to drop that could be used.
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
    }
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let none = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads the header and two data structs we own, laid
    // out as the kernel's __user_cap_header_struct and __user_cap_data_struct.
    check(unsafe { libc::syscall(libc::SYS_capset, &header, none.as_ptr()) } == 0)?;
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0)?;
    if let Some(ruleset) = &c.landlock {
        // SAFETY: landlock_restrict_self takes a ruleset descriptor we own
        // and flags.
        let done =
            unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0) };
        check(done == 0)?;
    }
    for program in &c.seccomp {
        let fprog = libc::sock_fprog {
            len: program.len() as libc::c_ushort,
            // seccompiler's sock_filter is the kernel's struct sock_filter,
            // as libc's is.
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) reads the program, which
        // outlives the call, through the sock_fprog we own.
        let done = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        check(done == 0)?;
    }
    Ok(())
}

/// The Landlock ABI version of the running kernel; 0 without Landlock.
pub(crate) fn landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attribute, size 0 and the VERSION flag,
    // landlock_create_ruleset only returns the ABI version (or an error).
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(version).unwrap_or(0)
}

/// Whether the kernel has seccomp filters.
pub(crate) fn seccomp_available() -> bool {
    // SAFETY: prctl(PR_GET_SECCOMP) takes no pointers.
    unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 }
}

/// Sets close-on-exec on every open descriptor in `low..=high`.
///
/// # Safety
///
/// Async-signal-safe: may run between fork and exec.
unsafe fn cloexec_range(low: RawFd, high: RawFd) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor
    // flags; it takes plain integers.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            low as libc::c_uint,
            high as libc::c_uint,
            CLOSE_RANGE_CLOEXEC,
        )
    } == 0;
    if done {
        return;
    }
    // Kernels before 5.11: walk the descriptor table up to its limit.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let top = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.min(1 << 20) as RawFd
    } else {
        4096
    };
    for fd in low..=high.min(top) {
        // SAFETY: F_SETFD on a descriptor that may not exist only fails with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// Moves a descriptor above 2, so that a host started with stdin, stdout or
/// stderr closed cannot hand the child a pipe in place of a standard stream.
pub(super) fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(&fd, 3)?)
}

/// Whether the child has exited, without reaping it (`waitid` with
/// `WNOWAIT`): its pid and process group id stay its own until it is reaped.
pub(super) fn has_exited(child: &Child, pidfd: Option<&OwnedFd>) -> io::Result<bool> {
    use rustix::process::{waitid, WaitId, WaitIdOptions};
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG;
    let id = match pidfd {
        Some(fd) => WaitId::PidFd(fd.as_fd()),
        None => WaitId::Pid(Pid::from_child(child)),
    };
    loop {
        match waitid(id.clone(), options) {
            Ok(status) => return Ok(status.is_some()),
            Err(rustix::io::Errno::INTR) => {}
            // Already reaped by someone else: it has exited.
            Err(rustix::io::Errno::CHILD) => return Ok(true),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A descriptor that becomes readable when the child exits (a pidfd), or
/// `None` on kernels without pidfd, where callers poll `try_wait` instead.
pub(super) fn exit_fd(child: &Child) -> Option<OwnedFd> {
    let pid = Pid::from_child(child);
    pidfd_open(pid, PidfdFlags::empty()).ok()
}

/// Which of the polled descriptors are ready.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Ready {
    /// `fd` is ready (or in error, which the next read or write reports).
    pub ready: bool,
    pub exited: bool,
    /// The other descriptor watched for reading is readable.
    pub also: bool,
}

/// Waits until `fd` is ready for `write` (or reading), `exit` is readable,
/// or `also` is readable, for at most `timeout` (forever when `None`).
pub(crate) fn wait(
    fd: BorrowedFd<'_>,
    write: bool,
    exit: Option<BorrowedFd<'_>>,
    also: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
) -> io::Result<Ready> {
    let flags = if write { PollFlags::OUT } else { PollFlags::IN };
    let mut fds = Vec::with_capacity(3);
    fds.push(PollFd::new(&fd, flags));
    let exit_at = exit.as_ref().map(|e| {
        fds.push(PollFd::new(e, PollFlags::IN));
        fds.len() - 1
    });
    let also_at = also.as_ref().map(|a| {
        fds.push(PollFd::new(a, PollFlags::IN));
        fds.len() - 1
    });
    let ts = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    match poll(&mut fds, ts.as_ref()) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(Ready::default()),
        Err(e) => return Err(e.into()),
    }
    let set = |at: Option<usize>| at.is_some_and(|i| !fds[i].revents().is_empty());
    // Errors and hang-ups on `fd` count as ready: the next read or write
    // reports them.
    Ok(Ready {
        ready: !fds[0].revents().is_empty(),
        exited: set(exit_at),
        also: set(also_at),
    })
}

/// Puts a descriptor in non-blocking mode.
pub(crate) fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// Spawns `cmd` on the one thread that forks every script.
///
/// A parent-death signal fires when the *thread* that forked the child ends,
/// not the process; spawning from the caller's thread would kill a script as
/// soon as, say, a worker thread that started it finished. The spawner
/// thread lives as long as the process.
pub(super) fn spawn(cmd: Command) -> io::Result<Child> {
    type Job = (Command, std::sync::mpsc::Sender<io::Result<Child>>);
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("tether-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        if let Err(e) = started {
            tracing::error!("cannot start the spawner thread: {e}");
        }
        std::sync::Mutex::new(tx)
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let sent = spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx));
    match sent {
        Ok(()) => rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the spawner thread is gone"))),
        Err(_) => Err(io::Error::other("the spawner thread is gone")),
    }
}

/// Sends signals to a child that may run on another thread's watch, without
/// the risk of hitting a recycled pid: through a pidfd when there is one.
#[derive(Debug)]
pub(crate) struct Killer {
    pidfd: Option<OwnedFd>,
    pid: u32,
    group: bool,
    /// Forked by a zygote, which reaps it: the host may not have heard yet
    /// that it was reaped, so the leader is signalled first (through its
    /// pidfd, which fails once it is reaped) and the group only after.
    forked: bool,
    fate: std::sync::Arc<std::sync::Mutex<super::Fate>>,
}

impl Killer {
    pub(super) fn new(
        pid: u32,
        pidfd: Option<&OwnedFd>,
        group: bool,
        forked: bool,
        fate: std::sync::Arc<std::sync::Mutex<super::Fate>>,
    ) -> Killer {
        Killer {
            pidfd: pidfd.and_then(|fd| rustix::io::fcntl_dupfd_cloexec(fd, 3).ok()),
            pid,
            group,
            forked,
            fate,
        }
    }

    /// Sends `signal` to the child, and to its process group when it has
    /// one, recording `why` as the reason. A child that already exited, or
    /// was reaped, is not an error: once it is reaped nothing is sent (its
    /// ids may belong to someone else by then).
    pub(crate) fn signal(&self, signal: rustix::process::Signal, why: &str) -> io::Result<()> {
        let mut fate = crate::sync::lock(&self.fate);
        if fate.reaped {
            return Ok(());
        }
        fate.killed_by = Some((signal.as_raw(), why.to_owned()));
        if self.forked {
            let sent = match &self.pidfd {
                Some(fd) => rustix::process::pidfd_send_signal(fd, signal),
                None => Err(rustix::io::Errno::SRCH),
            };
            return match sent {
                Ok(()) => {
                    if self.group {
                        kill_group(self.pid, signal);
                    }
                    Ok(())
                }
                Err(rustix::io::Errno::SRCH) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        if self.group {
            kill_group(self.pid, signal);
        }
        let sent = match &self.pidfd {
            Some(fd) => rustix::process::pidfd_send_signal(fd, signal),
            // Without pidfds (Linux < 5.3) the pid is still the child's: it
            // is not reaped (checked above, under the lock reaping takes).
            None => match Pid::from_raw(self.pid as i32) {
                Some(pid) => rustix::process::kill_process(pid, signal),
                None => Ok(()),
            },
        };
        match sent {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Killer {
    /// Sends `signal` to the child alone, as a message rather than to end
    /// it (nothing is recorded); nothing once it is reaped.
    pub(crate) fn nudge(&self, signal: rustix::process::Signal) {
        let fate = crate::sync::lock(&self.fate);
        if fate.reaped {
            return;
        }
        let _ = match &self.pidfd {
            Some(fd) => rustix::process::pidfd_send_signal(fd, signal),
            None => match Pid::from_raw(self.pid as i32) {
                Some(pid) => rustix::process::kill_process(pid, signal),
                None => Ok(()),
            },
        };
    }
}

/// Sends `signal` to the process group `pgid` (the script's own); a group
/// that no longer exists is not an error.
pub(crate) fn kill_group(pgid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = Pid::from_raw(pgid as i32) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Runs `write` so that a broken pipe is an `EPIPE` error and never a
/// SIGPIPE that kills the host. Rust programs ignore SIGPIPE already; a C or
/// C++ host usually does not, so there the signal is blocked for this thread
/// around the write, and one raised by it is consumed before unblocking.
pub(crate) fn without_sigpipe<T>(write: impl FnOnce() -> T) -> T {
    static IGNORED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ignored = *IGNORED.get_or_init(|| {
        // SAFETY: sigaction with a NULL new action only reads the current
        // disposition into `old`, which we own.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
        }
    });
    if ignored {
        return write();
    }
    // SAFETY: the signal sets are ours and initialised by sigemptyset;
    // pthread_sigmask and sigtimedwait only read and write them.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut previous);
        let result = write();
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        if libc::sigismember(&pending, libc::SIGPIPE) == 1
            && libc::sigismember(&previous, libc::SIGPIPE) == 0
        {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&pipe, std::ptr::null_mut(), &zero);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        result
    }
}
