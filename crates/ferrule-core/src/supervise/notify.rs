//! systemd's readiness protocol, `sd_notify(3)`: one datagram to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace) for each state change.
//!
//! - `READY=1` with `MAINPID=` once the server serves: a lone process when its listeners and
//!   signal handlers are in place, a master once every initial worker said `READY` (so
//!   `Type=notify` units and `systemctl start` wait for a server that can answer);
//! - `RELOADING=1` on SIGHUP, then `READY=1` when the new workers have replaced the old ones
//!   (`Type=notify-reload` and `ExecReload=kill -HUP $MAINPID` both work);
//! - `STOPPING=1` when a stop begins.
//!
//! Without `$NOTIFY_SOCKET` (not under systemd) every call does nothing. Failures are logged at
//! debug level only: readiness notification is advisory, the server serves either way.

use std::os::unix::net::UnixDatagram;

/// The socket systemd listens on, if any. Read where it is used, like `sd_notify(3)` does: it
/// is part of the service manager's protocol, not a configuration option.
fn socket_name() -> Option<std::ffi::OsString> {
    std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty())
}

/// Sends `state` (newline-separated `KEY=VALUE` lines) to systemd, if it listens.
pub fn notify(state: &str) {
    let Some(name) = socket_name() else { return };
    if let Err(e) = send(&name, state) {
        log::debug!("sd_notify {state:?} to {name:?} failed: {e}");
    }
}

/// `READY=1` with this process as the main pid.
pub fn ready() {
    notify(&format!("READY=1\nMAINPID={}", std::process::id()));
}

fn send(name: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let sock = UnixDatagram::unbound()?;
    let bytes = name.as_bytes();
    if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_one_datagram_to_a_path() {
        let dir = std::env::temp_dir().join(format!("ferrule-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1\nMAINPID=7").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nMAINPID=7");
    }
}
