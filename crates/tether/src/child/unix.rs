//! The Linux specifics of spawning: which descriptors the child keeps, and
//! how the host learns that the child exited. The only module with `unsafe`.
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
pub(super) fn keep_only(cmd: &mut Command, keep: [RawFd; 2]) {
    let mut keep = keep;
    keep.sort_unstable();
    // SAFETY: the closure runs in the child between fork and exec. It calls
    // only fcntl, close_range and getrlimit, which are async-signal-safe, and
    // it neither allocates nor takes locks.
    unsafe {
        cmd.pre_exec(move || {
            for fd in keep {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            let mut low: RawFd = 3;
            for fd in keep {
                if fd > low {
                    cloexec_range(low, fd - 1);
                }
                low = low.max(fd + 1);
            }
            cloexec_range(low, RawFd::MAX);
            Ok(())
        });
    }
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

/// A descriptor that becomes readable when the child exits (a pidfd), or
/// `None` on kernels without pidfd, where callers poll `try_wait` instead.
pub(super) fn exit_fd(child: &Child) -> Option<OwnedFd> {
    let pid = Pid::from_child(child);
    pidfd_open(pid, PidfdFlags::empty()).ok()
}

/// Which of the polled descriptors are ready.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Ready {
    pub exited: bool,
}

/// Waits until `fd` is ready for `write` (or reading), or `exit` is readable,
/// for at most `timeout` (forever when `None`).
pub(crate) fn wait(
    fd: BorrowedFd<'_>,
    write: bool,
    exit: Option<BorrowedFd<'_>>,
    timeout: Option<Duration>,
) -> io::Result<Ready> {
    let flags = if write { PollFlags::OUT } else { PollFlags::IN };
    let mut fds = [
        PollFd::new(&fd, flags),
        PollFd::new(&fd, PollFlags::empty()),
    ];
    let n = match exit.as_ref() {
        Some(e) => {
            fds[1] = PollFd::new(e, PollFlags::IN);
            2
        }
        None => 1,
    };
    let ts = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    match poll(&mut fds[..n], ts.as_ref()) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(Ready::default()),
        Err(e) => return Err(e.into()),
    }
    // Errors and hang-ups on `fd` count as ready: the next read or write
    // reports them.
    Ok(Ready {
        exited: n == 2 && !fds[1].revents().is_empty(),
    })
}

/// Puts a descriptor in non-blocking mode.
pub(crate) fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// Sends SIGKILL to a child that may run on another thread's watch, without
/// the risk of hitting a recycled pid: through a pidfd when there is one.
#[derive(Debug)]
pub(crate) struct Killer {
    pidfd: Option<OwnedFd>,
    pid: u32,
}

impl Killer {
    pub(super) fn new(child: &Child, pidfd: Option<&OwnedFd>) -> Killer {
        Killer {
            pidfd: pidfd.and_then(|fd| rustix::io::fcntl_dupfd_cloexec(fd, 3).ok()),
            pid: child.id(),
        }
    }

    /// Sends `signal` to the child. A child that already exited is not an error.
    pub(crate) fn signal(&self, signal: rustix::process::Signal) -> io::Result<()> {
        let sent = match &self.pidfd {
            Some(fd) => rustix::process::pidfd_send_signal(fd, signal),
            // Without pidfds (Linux < 5.3) the pid may in theory be reused
            // once the child is reaped; callers check that it is not first.
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
