//! The master's signals, delivered through a self-pipe.
//!
//! The handler only writes the signal number to a non-blocking pipe (`write(2)` is
//! async-signal-safe; a full pipe drops the byte, and the master's loop rereads its state
//! anyway), so all the work happens in the master's `poll(2)` loop, never in a handler.
//! A forked worker calls [`reset_in_child`]: default dispositions back, self-pipe closed.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use super::pipe::{pipe, set_nonblocking};

/// Signals the master handles. SIGCHLD only wakes the loop (it reaps with `waitpid`).
pub const HANDLED: [libc::c_int; 9] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGCHLD,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Write end of the self-pipe, for the handler (-1: none installed).
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signo: libc::c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signo as u8;
        let saved = errno();
        // SAFETY: write(2) is async-signal-safe; the buffer is one valid byte.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
        set_errno(saved);
    }
}

fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn set_errno(value: libc::c_int) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = value };
}

/// The installed handlers: read end of the self-pipe.
#[derive(Debug)]
pub struct SignalPipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl SignalPipe {
    /// Creates the pipe and installs the handlers for [`HANDLED`].
    pub fn install() -> std::io::Result<SignalPipe> {
        let (read, write) = pipe()?;
        set_nonblocking(&read)?;
        set_nonblocking(&write)?;
        WRITE_FD.store(write.as_raw_fd(), Ordering::Relaxed);
        for sig in HANDLED {
            set_handler(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
                libc::SA_RESTART,
            )?;
        }
        Ok(SignalPipe { read, write })
    }

    pub fn fd(&self) -> libc::c_int {
        self.read.as_raw_fd()
    }

    /// The signals received since the last call, in order.
    pub fn drain(&self) -> Vec<libc::c_int> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reading into a valid local buffer from a descriptor we own.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            out.extend(buf[..n as usize].iter().map(|b| libc::c_int::from(*b)));
        }
        out
    }

    /// In a forked worker: default dispositions back, then the pipe is closed (by drop).
    pub fn reset_in_child(self) {
        WRITE_FD.store(-1, Ordering::Relaxed);
        for sig in HANDLED {
            // Failing to reset a disposition leaves the handler writing to a closed pipe
            // (WRITE_FD is -1, so it does nothing): harmless, nothing to report.
            let _ = set_handler(sig, libc::SIG_DFL, 0);
        }
        drop(self.write);
        drop(self.read);
    }

    /// In the master when it is done: default dispositions back.
    pub fn uninstall(self) {
        self.reset_in_child();
    }
}

/// Blocks the handled signals; returns the mask to restore. Used around `fork()`, so a signal
/// for the new worker cannot run the master's handler in the child before
/// [`SignalPipe::reset_in_child`] (it would write to the master's self-pipe, shared by the
/// fork): it stays pending and meets the default disposition once the child unblocks.
pub fn block() -> libc::sigset_t {
    // SAFETY: the sets are initialised by sigemptyset/sigaddset before use, and
    // pthread_sigmask gets valid pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in HANDLED {
            libc::sigaddset(&mut set, sig);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        old
    }
}

/// Restores a mask returned by [`block`].
pub fn restore(old: &libc::sigset_t) {
    // SAFETY: `old` is a mask pthread_sigmask filled.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
}

fn set_handler(
    sig: libc::c_int,
    handler: libc::sighandler_t,
    flags: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid starting value; we set the handler, an empty mask
    // and flags, and pass valid pointers to sigaction(2).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The conventional name of a signal, for log lines.
pub fn name(sig: libc::c_int) -> String {
    let known = [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTTIN, "SIGTTIN"),
        (libc::SIGTTOU, "SIGTTOU"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
    ];
    known
        .iter()
        .find(|(n, _)| *n == sig)
        .map(|(_, s)| (*s).to_owned())
        .unwrap_or_else(|| format!("signal {sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(libc::SIGKILL), "SIGKILL");
        assert_eq!(name(200), "signal 200");
    }
}
