//! Binding listeners: `HOST:PORT` or `[V6]:PORT` (a name is resolved and its first address
//! used), with `SO_REUSEADDR` (restart without waiting for TIME_WAIT), `IPV6_V6ONLY` on IPv6
//! sockets (so `[::]:P` and `0.0.0.0:P` can both be bound), the configured backlog, and
//! non-blocking mode for the runtime.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

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

/// Binds and listens on `spec`; the listener is non-blocking.
pub fn bind(spec: &str, backlog: u32) -> Result<TcpListener, BindError> {
    let err = |source| BindError {
        address: spec.to_owned(),
        source,
    };
    let addr = resolve(spec).map_err(err)?;
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(err)?;
    }
    socket.bind(&addr.into()).map_err(err)?;
    socket
        .listen(i32::try_from(backlog).unwrap_or(i32::MAX))
        .map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
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
    fn ipv6_loopback_when_available() {
        // Some sandboxes have no IPv6; only check the address form when binding works.
        if let Ok(l) = bind("[::1]:0", 16) {
            assert!(l.local_addr().unwrap().to_string().starts_with("[::1]:"));
        }
    }
}
