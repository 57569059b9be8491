//! USR2: start a new master from the (possibly upgraded) program, handing it the listening
//! sockets, so a deploy replaces the code without closing the listeners for a moment.
//!
//! The old master forks a child that `execve`s the command line the old master was started
//! with (the Python side records it before anything can change it: `sys.executable` and
//! `sys.orig_argv`, and the directory it started in). The listening sockets are inherited: the
//! child clears their close-on-exec flag, and the new master learns which descriptors they are
//! from [`ENV_BINDS`] (`fd://5,fd://6`; with `reuse_port` the master's sockets only hold the
//! addresses and do not listen, so the new master binds the same addresses again, which
//! `SO_REUSEPORT` allows, and the variable holds the addresses). [`ENV_OLD_MASTER`] names the old
//! master.
//!
//! The flow (ferrule's choice; gunicorn leaves both masters running until the operator sends
//! the old one QUIT or TERM): the new master boots its workers, and once every one of them is
//! ready it tells systemd `READY=1` + `MAINPID=` (its own pid) and sends TERM to the old
//! master, which stops gracefully (its workers finish their in-flight requests). The listeners
//! always have workers accepting. If the new master fails (bad code, a worker that cannot
//! import the app), it exits and the old master, which reaps it, logs that and serves on.
//! The old master does not send `STOPPING=1` when it stops after a re-exec: the service goes
//! on under the new main pid.
//!
//! Only async-signal-safe calls happen between `fork` and `execve` (`fcntl`, `chdir`,
//! `sigprocmask`, `execve`, `_exit`); everything is allocated before the fork.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStringExt;

use super::signals;
use crate::server::Listener;

/// Environment variable holding the new master's binds (`fd://N` or addresses), comma-separated.
pub const ENV_BINDS: &str = "_FERRULE_INHERIT_BINDS";
/// Environment variable holding the old master's pid.
pub const ENV_OLD_MASTER: &str = "_FERRULE_OLD_MASTER";
/// Environment variable holding the metrics listener handed over (`--metrics-bind`): `N,ADDR`,
/// descriptor N listening on `IP:PORT` ADDR. The new master adopts it when its own
/// `metrics_bind` names ADDR (`ferrule.process`), so /metrics never stops answering.
pub const ENV_METRICS: &str = "_FERRULE_INHERIT_METRICS";
/// Exit code of the child when `execve` (or `chdir`) failed.
const EXIT_EXEC_FAILED: i32 = 127;

/// How to start a new master: the program, its full argv (argv[0] included) and the directory
/// the old master was started in.
#[derive(Debug, Clone)]
pub struct Reexec {
    pub program: OsString,
    pub argv: Vec<OsString>,
    pub cwd: OsString,
}

/// The bind list handed to the new master: `fd://N` for a listening socket, the bound address
/// for a reserved (`reuse_port`) one. (A Unix socket always listens: the new master adopts it,
/// and its socket file stays where it is.)
pub fn inherited_binds(listeners: &[Listener]) -> String {
    listeners
        .iter()
        .map(|l| {
            if l.is_listening() {
                format!("fd://{}", l.as_raw_fd())
            } else {
                l.local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| format!("fd://{}", l.as_raw_fd()))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn cstring(s: OsString) -> std::io::Result<CString> {
    CString::new(s.into_vec()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the command line or environment contains a NUL byte",
        )
    })
}

/// Forks and execs the new master, handing it `listeners` and the metrics listener (its
/// descriptor and address); returns its pid.
pub fn spawn(
    plan: &Reexec,
    listeners: &[Listener],
    metrics: Option<(RawFd, String)>,
) -> std::io::Result<libc::pid_t> {
    let program = cstring(plan.program.clone())?;
    let argv: Vec<CString> = plan
        .argv
        .iter()
        .cloned()
        .map(cstring)
        .collect::<Result<_, _>>()?;
    let cwd = cstring(plan.cwd.clone())?;
    let mut env: Vec<CString> = Vec::new();
    for (key, value) in std::env::vars_os() {
        if key == ENV_BINDS || key == ENV_OLD_MASTER || key == ENV_METRICS {
            continue;
        }
        let mut pair = key.into_vec();
        pair.push(b'=');
        pair.extend(value.into_vec());
        env.push(cstring(OsString::from_vec(pair))?);
    }
    env.push(cstring(
        format!("{ENV_BINDS}={}", inherited_binds(listeners)).into(),
    )?);
    env.push(cstring(
        format!("{ENV_OLD_MASTER}={}", std::process::id()).into(),
    )?);
    if let Some((fd, addr)) = &metrics {
        env.push(cstring(format!("{ENV_METRICS}={fd},{addr}").into())?);
    }
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let fds: Vec<libc::c_int> = listeners
        .iter()
        .map(AsRawFd::as_raw_fd)
        .chain(metrics.as_ref().map(|(fd, _)| *fd))
        .collect();

    let mask = signals::block();
    // SAFETY: the master is single-threaded; the child only makes async-signal-safe calls on
    // memory prepared above, then execs or exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: see above; every pointer is valid and NUL-terminated.
        unsafe {
            for fd in &fds {
                libc::fcntl(*fd, libc::F_SETFD, 0);
            }
            // Handled signals back to their default action before the new program runs;
            // then the mask the master had before `block`.
            for sig in signals::HANDLED {
                libc::signal(sig, libc::SIG_DFL);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut());
            if libc::chdir(cwd.as_ptr()) == 0 {
                libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr());
            }
            libc::_exit(EXIT_EXEC_FAILED);
        }
    }
    let e = std::io::Error::last_os_error();
    signals::restore(&mask);
    if pid < 0 {
        return Err(e);
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_name_descriptors_or_addresses() {
        let listening = crate::server::listen::bind("127.0.0.1:0", 8).unwrap();
        let reserved = crate::server::listen::bind_reserved("127.0.0.1:0", 8).unwrap();
        let text = inherited_binds(&[Listener::Tcp(listening), Listener::Tcp(reserved)]);
        let parts: Vec<&str> = text.split(',').collect();
        assert!(parts[0].starts_with("fd://"), "{text}");
        assert!(parts[1].starts_with("127.0.0.1:"), "{text}");
    }
}
