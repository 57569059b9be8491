//! Binding listeners: `HOST:PORT` or `[V6]:PORT` (a name is resolved and its first address
//! used), with `SO_REUSEADDR` (restart without waiting for TIME_WAIT), `IPV6_V6ONLY` on IPv6
//! sockets (so `[::]:P` and `0.0.0.0:P` can both be bound), the configured backlog, and
//! non-blocking mode for the runtime.
//!
//! `fd://N` adopts descriptor N, already bound and listening, from whoever started us: systemd
//! socket activation (`sd_listen_fds(3)`: the sockets are descriptors 3, 4, …; the Python CLI
//! turns `LISTEN_FDS` into `fd://` binds) or an old master handing its sockets to the new one
//! on USR2. The descriptor must be a listening stream socket (`SO_TYPE` = `SOCK_STREAM`,
//! `SO_ACCEPTCONN` = 1) of the IPv4, IPv6 or Unix family (the Unix family only where a
//! [`Listener`] is wanted: [`bind`] is TCP only); anything else is refused with an error
//! saying what it is. It becomes close-on-exec like every socket we create.
//!
//! `reuse_port` (`--reuse-port`) sets `SO_REUSEPORT`, so several sockets can be bound to the
//! same address and the kernel spreads new connections over them (each worker gets its own:
//! see [`bind_reserved`] and [`rebind_reuse_port`]).
//!
//! `unix:PATH` binds a Unix stream socket (`super::unix`: the socket file, its mode, stale
//! files). A server's listeners are [`Listener`]s, TCP or Unix; `fd://N` may name either
//! (systemd's `ListenStream=/run/app.sock`), told apart by the socket's family.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use socket2::{Domain, Protocol, Socket, Type};

use super::unix::{self, SocketFile};

/// One bound listener of the server.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    /// `file`: the socket file this process created (removed when dropped, see
    /// `super::unix`); `None` for an adopted `fd://N` socket.
    Unix {
        listener: UnixListener,
        file: Option<SocketFile>,
    },
}

/// Where a [`Listener`] listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    /// The socket's path (`@NAME` for an abstract socket, empty for an unnamed one).
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    /// `HOST:PORT` (`[V6]:PORT`), or `unix:PATH`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "{}{}", unix::UNIX_PREFIX, p.display()),
        }
    }
}

impl ListenAddr {
    /// What the `Listening at:` line shows: `http://HOST:PORT` or `unix:PATH`.
    pub fn url(&self) -> String {
        match self {
            ListenAddr::Tcp(a) => format!("http://{a}"),
            ListenAddr::Unix(_) => self.to_string(),
        }
    }
}

impl Listener {
    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> std::io::Result<ListenAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().map(ListenAddr::Tcp),
            Listener::Unix { listener, .. } => {
                use std::os::linux::net::SocketAddrExt;
                let addr = listener.local_addr()?;
                let path = match (addr.as_pathname(), addr.as_abstract_name()) {
                    (Some(p), _) => p.to_owned(),
                    (None, Some(name)) => {
                        PathBuf::from(format!("@{}", String::from_utf8_lossy(name)))
                    }
                    (None, None) => PathBuf::new(),
                };
                Ok(ListenAddr::Unix(path))
            }
        }
    }

    /// True for a socket that listens (`SO_ACCEPTCONN`): false for [`bind_reserved`]'s TCP
    /// sockets.
    pub fn is_listening(&self) -> bool {
        match self {
            Listener::Tcp(l) => is_listening(l),
            Listener::Unix { listener, .. } => socket2::SockRef::from(listener)
                .is_listener()
                .unwrap_or(false),
        }
    }

    /// Leaves the socket file in place when this listener is dropped (a new master took the
    /// socket over on USR2).
    pub fn keep_file(&mut self) {
        if let Listener::Unix {
            file: Some(file), ..
        } = self
        {
            file.keep();
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix { listener, .. } => listener.as_raw_fd(),
        }
    }
}

/// A [`Listener`] registered with the runtime, in an accept loop.
#[derive(Debug)]
pub(crate) enum Accepting {
    Tcp(tokio::net::TcpListener),
    /// The socket file's guard rides along: the file is removed when accepting stops.
    Unix {
        listener: tokio::net::UnixListener,
        _file: Option<SocketFile>,
    },
}

/// A connection [`Accepting::accept`] took.
#[derive(Debug)]
pub(crate) enum Incoming {
    Tcp(tokio::net::TcpStream, SocketAddr),
    /// A Unix socket peer has no address (`ConnInfo::unix`).
    Unix(tokio::net::UnixStream),
}

impl Accepting {
    /// Registers `listener` (non-blocking already) with the current runtime.
    pub(crate) fn new(listener: Listener) -> std::io::Result<Accepting> {
        Ok(match listener {
            Listener::Tcp(l) => Accepting::Tcp(tokio::net::TcpListener::from_std(l)?),
            Listener::Unix { listener, file } => Accepting::Unix {
                listener: tokio::net::UnixListener::from_std(listener)?,
                _file: file,
            },
        })
    }

    pub(crate) async fn accept(&self) -> std::io::Result<Incoming> {
        match self {
            Accepting::Tcp(l) => l.accept().await.map(|(s, peer)| Incoming::Tcp(s, peer)),
            Accepting::Unix { listener, .. } => {
                listener.accept().await.map(|(s, _)| Incoming::Unix(s))
            }
        }
    }

    /// The local address every connection of a TCP listener has, when it is a specific one
    /// (not 0.0.0.0 or ::): then no connection needs a `getsockname`.
    pub(crate) fn fixed_local_addr(&self) -> Option<SocketAddr> {
        match self {
            Accepting::Tcp(l) => l.local_addr().ok().filter(|a| !a.ip().is_unspecified()),
            Accepting::Unix { .. } => None,
        }
    }
}

impl Incoming {
    /// The plain transport (no TLS).
    pub(crate) fn into_stream(self) -> super::stream::Stream {
        match self {
            Incoming::Tcp(s, _) => super::stream::Stream::Tcp(s),
            Incoming::Unix(s) => super::stream::Stream::Unix(s),
        }
    }
}

/// Binds one address of `bind` (see the module docs): `HOST:PORT` (with `reserve`, bound with
/// `SO_REUSEPORT` but not listening, see [`bind_reserved`]), `unix:PATH` (socket file mode
/// `unix_mode`; always listening: `SO_REUSEPORT` means nothing for Unix sockets) or `fd://N`.
pub fn bind_listener(
    spec: &str,
    backlog: u32,
    reserve: bool,
    unix_mode: u32,
) -> Result<Listener, BindError> {
    bind_listener_with(
        spec,
        backlog,
        reserve,
        &unix::SocketOptions::mode(unix_mode),
    )
}

/// [`bind_listener`] with every option of a `unix:PATH` socket file (its mode and its owner,
/// `--user`/`--group`: see `super::unix`).
pub fn bind_listener_with(
    spec: &str,
    backlog: u32,
    reserve: bool,
    unix_options: &unix::SocketOptions<'_>,
) -> Result<Listener, BindError> {
    let err = |source| BindError {
        address: spec.to_owned(),
        source,
    };
    if let Some(path) = unix::unix_spec(spec) {
        if path.as_os_str().is_empty() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "expected unix:PATH",
            )));
        }
        let (listener, file) = unix::bind_with(path, backlog, unix_options).map_err(err)?;
        return Ok(Listener::Unix {
            listener,
            file: Some(file),
        });
    }
    if let Some(fd) = fd_spec(spec) {
        let socket = adopt_socket(fd?).map_err(err)?;
        return Ok(if socket.domain().map_err(err)? == Domain::UNIX {
            Listener::Unix {
                listener: socket.into(),
                file: None,
            }
        } else {
            Listener::Tcp(socket.into())
        });
    }
    bind_with(spec, backlog, reserve, !reserve).map(Listener::Tcp)
}

/// Binding one address failed; the message names the address.
#[derive(Debug)]
pub struct BindError {
    pub address: String,
    pub source: std::io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot bind {}: {}", self.address, self.source)
    }
}

impl std::error::Error for BindError {}

/// Resolves `spec` to one socket address.
pub fn resolve(spec: &str) -> std::io::Result<SocketAddr> {
    if let Ok(addr) = spec.parse::<SocketAddr>() {
        return Ok(addr);
    }
    spec.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the name resolves to no address",
        )
    })
}

/// The descriptor number of an `fd://N` bind, `None` for an address.
pub fn fd_spec(spec: &str) -> Option<Result<i32, BindError>> {
    let digits = spec.strip_prefix("fd://")?;
    Some(
        digits
            .parse::<i32>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| BindError {
                address: spec.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "expected fd://N with N a descriptor number",
                ),
            }),
    )
}

/// Binds and listens on `spec` (or adopts `fd://N`); the listener is non-blocking.
pub fn bind(spec: &str, backlog: u32) -> Result<TcpListener, BindError> {
    bind_with(spec, backlog, false, true)
}

/// Binds `spec` with `SO_REUSEPORT` but does not listen: the address (port 0 resolved) is
/// held, yet no connection is queued on this socket. A master with `--reuse-port` keeps these,
/// and each worker binds its own listening socket to the same address
/// ([`rebind_reuse_port`]). `fd://N` is adopted as is (it listens already).
pub fn bind_reserved(spec: &str, backlog: u32) -> Result<TcpListener, BindError> {
    bind_with(spec, backlog, true, false)
}

fn bind_with(
    spec: &str,
    backlog: u32,
    reuse_port: bool,
    listen: bool,
) -> Result<TcpListener, BindError> {
    let err = |source| BindError {
        address: spec.to_owned(),
        source,
    };
    if let Some(fd) = fd_spec(spec) {
        return adopt(fd?).map_err(err);
    }
    let addr = resolve(spec).map_err(err)?;
    let socket = new_socket(addr, reuse_port).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    if listen {
        socket
            .listen(i32::try_from(backlog).unwrap_or(i32::MAX))
            .map_err(err)?;
    }
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
}

fn new_socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(socket)
}

/// A worker's own listening socket, with `SO_REUSEPORT`, bound to the address of `reserved`
/// (a socket from [`bind_reserved`], which its master keeps).
pub fn rebind_reuse_port(reserved: &TcpListener, backlog: u32) -> std::io::Result<TcpListener> {
    let addr = reserved.local_addr()?;
    let socket = new_socket(addr, true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// True for a socket that listens (`SO_ACCEPTCONN`): false for [`bind_reserved`]'s sockets.
pub fn is_listening(listener: &TcpListener) -> bool {
    socket2::SockRef::from(listener)
        .is_listener()
        .unwrap_or(false)
}

/// Takes descriptor `fd` as a TCP listener, after checking it is one (module docs).
fn adopt(fd: i32) -> std::io::Result<TcpListener> {
    let socket = adopt_socket(fd)?;
    if socket.domain()? == Domain::UNIX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is a Unix socket; only TCP is supported here"),
        ));
    }
    Ok(socket.into())
}

/// Takes descriptor `fd` as a listening stream socket of the IPv4, IPv6 or Unix family (module
/// docs), close-on-exec and non-blocking.
fn adopt_socket(fd: i32) -> std::io::Result<Socket> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF when `fd` is not
    // open, which we check before taking ownership.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        let e = std::io::Error::last_os_error();
        return Err(invalid(format!("descriptor {fd} is not open ({e})")));
    }
    // SAFETY: `fd` is open (checked above) and, by the caller's contract (fd://N names a
    // descriptor handed to this process for it), owned by nobody else in this process.
    let socket = Socket::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let not_socket = |e: std::io::Error| {
        if e.raw_os_error() == Some(libc::ENOTSOCK) {
            invalid(format!("descriptor {fd} is not a socket"))
        } else {
            e
        }
    };
    let kind = socket.r#type().map_err(not_socket)?;
    if kind != Type::STREAM {
        return Err(invalid(format!(
            "descriptor {fd} is not a stream socket (SO_TYPE {kind:?})"
        )));
    }
    let domain = socket.domain()?;
    if domain != Domain::IPV4 && domain != Domain::IPV6 && domain != Domain::UNIX {
        return Err(invalid(format!(
            "descriptor {fd} is neither a TCP nor a Unix socket ({domain:?})"
        )));
    }
    if !socket.is_listener()? {
        return Err(invalid(format!(
            "descriptor {fd} is a socket that does not listen (SO_ACCEPTCONN is 0)"
        )));
    }
    socket.set_cloexec(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_port_zero_v4() {
        let l = bind("127.0.0.1:0", 16).unwrap();
        assert_ne!(l.local_addr().unwrap().port(), 0);
    }

    #[test]
    fn error_names_the_address() {
        let e = bind("256.1.1.1:80", 16).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot bind 256.1.1.1:80: "),
            "{e}"
        );
        let e = bind("127.0.0.1", 16).unwrap_err();
        assert!(e.to_string().contains("127.0.0.1"), "{e}");
    }

    #[test]
    fn address_in_use_is_reported() {
        let l = bind("127.0.0.1:0", 16).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let e = bind(&addr, 16).unwrap_err();
        assert_eq!(e.source.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    }

    #[test]
    fn fd_specs() {
        assert!(fd_spec("127.0.0.1:80").is_none());
        assert_eq!(fd_spec("fd://3").unwrap().unwrap(), 3);
        assert!(fd_spec("fd://x").unwrap().is_err());
        assert!(fd_spec("fd://-1").unwrap().is_err());
    }

    #[test]
    fn adopts_a_listening_socket_and_refuses_others() {
        use std::os::fd::{AsRawFd, IntoRawFd};
        let l = bind("127.0.0.1:0", 16).unwrap();
        let addr = l.local_addr().unwrap();
        let fd = l.into_raw_fd();
        let adopted = bind(&format!("fd://{fd}"), 16).unwrap();
        assert_eq!(adopted.local_addr().unwrap(), addr);
        assert!(is_listening(&adopted));

        let reserved = bind_reserved("127.0.0.1:0", 16).unwrap();
        assert!(!is_listening(&reserved));
        let e = bind(&format!("fd://{}", reserved.as_raw_fd()), 16).unwrap_err();
        assert!(e.to_string().contains("does not listen"), "{e}");
        std::mem::forget(reserved); // adopt's refusal closed it already

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = bind(&format!("fd://{}", udp.into_raw_fd()), 16).unwrap_err();
        assert!(e.to_string().contains("not a stream socket"), "{e}");

        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let e = bind(&format!("fd://{}", file.into_raw_fd()), 16).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
    }

    #[test]
    fn unix_listeners_bound_or_adopted() {
        use std::os::fd::IntoRawFd;
        let dir = std::env::temp_dir().join(format!("ferrule-listen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.sock");
        let spec = format!("unix:{}", path.display());
        let l = bind_listener(&spec, 8, true, 0o600).unwrap();
        assert!(l.is_listening(), "reserve does not apply to Unix sockets");
        let addr = l.local_addr().unwrap();
        assert_eq!(addr, ListenAddr::Unix(path.clone()));
        assert_eq!(addr.to_string(), spec);
        assert_eq!(addr.url(), spec);
        assert!(matches!(l, Listener::Unix { file: Some(_), .. }));

        // Adopted: a Unix listener again, which does not own the file.
        let raw = std::os::unix::net::UnixListener::bind(dir.join("b.sock")).unwrap();
        let fd = raw.into_raw_fd();
        let adopted = bind_listener(&format!("fd://{fd}"), 8, false, 0o600).unwrap();
        assert!(matches!(adopted, Listener::Unix { file: None, .. }));
        assert_eq!(
            adopted.local_addr().unwrap(),
            ListenAddr::Unix(dir.join("b.sock"))
        );
        drop(adopted);
        assert!(dir.join("b.sock").exists());

        // The TCP-only `bind` names what it got.
        let raw = std::os::unix::net::UnixListener::bind(dir.join("c.sock")).unwrap();
        let e = bind(&format!("fd://{}", raw.into_raw_fd()), 8).unwrap_err();
        assert!(e.to_string().contains("Unix socket"), "{e}");

        drop(l);
        assert!(!path.exists());
        let e = bind_listener("unix:", 8, false, 0o600).unwrap_err();
        assert!(e.to_string().starts_with("cannot bind unix:: "), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reuse_port_sockets_share_the_reserved_address() {
        let reserved = bind_reserved("127.0.0.1:0", 16).unwrap();
        let a = rebind_reuse_port(&reserved, 16).unwrap();
        let b = rebind_reuse_port(&reserved, 16).unwrap();
        assert_eq!(a.local_addr().unwrap(), reserved.local_addr().unwrap());
        assert_eq!(b.local_addr().unwrap(), reserved.local_addr().unwrap());
        assert!(is_listening(&a) && is_listening(&b));
    }

    #[test]
    fn ipv6_loopback_when_available() {
        // Some sandboxes have no IPv6; only check the address form when binding works.
        if let Ok(l) = bind("[::1]:0", 16) {
            assert!(l.local_addr().unwrap().to_string().starts_with("[::1]:"));
        }
    }
}
