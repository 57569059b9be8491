//! The transports a connection runs over: TCP, a Unix stream socket, or TLS over TCP — one enum
//! ([`Stream`]), so the connection driver (`conn`, `body`, `respond`) exists once and never
//! knows which it drives.
//!
//! The driver's I/O is readiness-based (`io`): it tries a non-blocking read or write and only
//! waits for readiness when the socket would block, so the body feeder and the response writer
//! of one connection share `&Stream` in one task without splitting it. Every variant offers
//! that: TCP and Unix sockets directly (tokio's `try_*` + `readable`/`writable`), TLS through
//! [`super::tls::TlsStream`], whose rustls state sits behind a lock taken only inside the
//! non-blocking calls (never across an `.await`).
//!
//! Plain TCP stays the fast path: a `match` per call, `send`/`writev` straight to the socket
//! (as raw system calls, [`super::sys`]), and
//! `sendfile(2)` for file bodies ([`Stream::sendfile_fd`]; Unix sockets too). TLS must encrypt
//! in user space, so its file bodies are read and written through the TLS layer instead.
//! The TLS variant is boxed: its state (rustls buffers, keys) is large, and an idle plain
//! connection must not pay for it.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

use super::sys;
use super::tls::TlsStream;

/// One accepted connection's byte stream.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    /// From a `unix:PATH` listener.
    Unix(UnixStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// Reads what is available into `buf`'s spare capacity; `WouldBlock` when nothing is.
    /// Counted in the metrics' bytes in.
    ///
    /// A read that returns fewer bytes than the space offered has drained the socket: its
    /// readiness is then cleared, so the next attempt (the keep-alive wait after the response)
    /// costs no `recv` that would only say `EAGAIN`. Bytes arriving later raise a new
    /// edge-triggered event, which sets the readiness again (tokio clears only the readiness
    /// it has seen, never an event it has not processed yet), so no wake-up is lost.
    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let spare = buf.capacity() - buf.len();
        let n = match self {
            Stream::Tcp(s) => {
                let n = s.try_io(Interest::READABLE, || sys::recv(s.as_raw_fd(), buf))?;
                if 0 < n && n < spare {
                    let _ = s.try_io(Interest::READABLE, would_block);
                }
                n
            }
            Stream::Unix(s) => {
                let n = s.try_io(Interest::READABLE, || sys::recv(s.as_raw_fd(), buf))?;
                if 0 < n && n < spare {
                    let _ = s.try_io(Interest::READABLE, would_block);
                }
                n
            }
            Stream::Tls(s) => s.try_read_buf(buf)?,
        };
        crate::metrics::global().add_bytes_in(n);
        Ok(n)
    }

    /// Waits until a read may make progress (bytes, end of stream or an error).
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.readable().await,
            Stream::Unix(s) => s.readable().await,
            Stream::Tls(s) => s.readable().await,
        }
    }

    /// [`Stream::readable`] as a poll, for the idle wait (the waker is kept by the socket's
    /// registration).
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_read_ready(cx),
            Stream::Unix(s) => s.poll_read_ready(cx),
            Stream::Tls(s) => s.poll_read_ready(cx),
        }
    }

    /// Writes from `bufs` what the transport takes now; `WouldBlock` when it takes nothing.
    /// For TLS, "taken" may mean encrypted and queued: [`Stream::flush_pending`] sends the rest.
    /// Counted in the metrics' bytes out.
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = match self {
            Stream::Tcp(s) => s.try_io(Interest::WRITABLE, || sys::writev(s.as_raw_fd(), bufs)),
            Stream::Unix(s) => s.try_io(Interest::WRITABLE, || sys::writev(s.as_raw_fd(), bufs)),
            Stream::Tls(s) => s.try_write_vectored(bufs),
        }?;
        crate::metrics::global().add_bytes_out(n);
        Ok(n)
    }

    /// [`Stream::try_write_vectored`] for one buffer: `send(2)` on a plain socket, which the
    /// kernel takes in fewer steps than a `writev` of one or more pieces (no iovec array to copy
    /// in and check; ~5-8% of a small response's system call on loopback here, see
    /// `respond::COALESCE_MAX`).
    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let n = match self {
            Stream::Tcp(s) => s.try_io(Interest::WRITABLE, || sys::send(s.as_raw_fd(), buf)),
            Stream::Unix(s) => s.try_io(Interest::WRITABLE, || sys::send(s.as_raw_fd(), buf)),
            Stream::Tls(s) => s.try_write_vectored(&[IoSlice::new(buf)]),
        }?;
        crate::metrics::global().add_bytes_out(n);
        Ok(n)
    }

    /// Reads bytes from the socket itself, under TLS if any (the PROXY header precedes the TLS
    /// handshake); like `io::read_some`, reserving `reserve` spare bytes first.
    pub(crate) async fn read_raw(&self, buf: &mut BytesMut, reserve: usize) -> io::Result<usize> {
        let tcp = match self {
            Stream::Tls(s) => s.tcp(),
            Stream::Tcp(s) => s,
            // No PROXY header on Unix sockets (it needs a peer address to admit): plain reads.
            Stream::Unix(_) => return super::io::read_some(self, buf, reserve).await,
        };
        loop {
            super::io::make_room(buf, reserve);
            match tcp.try_read_buf(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => tcp.readable().await?,
                r => return r,
            }
        }
    }

    /// Waits until the socket can take more bytes.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.writable().await,
            Stream::Unix(s) => s.writable().await,
            Stream::Tls(s) => s.tcp().writable().await,
        }
    }

    /// Sends bytes the transport has queued (TLS records); `Ok(true)` once none are left.
    /// Always `Ok(true)` for plain sockets, which queue nothing.
    pub(crate) fn flush_pending(&self) -> io::Result<bool> {
        match self {
            Stream::Tcp(_) | Stream::Unix(_) => Ok(true),
            Stream::Tls(s) => s.flush_pending(),
        }
    }

    /// Whether bytes from the peer may be waiting to be read: for a plain socket, asked of the
    /// kernel now (a peek that takes nothing and never blocks), not of the runtime's readiness,
    /// which may not have seen them yet; false at end of stream or when nothing has arrived.
    /// Always true under TLS, whose records may hold bytes of their own.
    pub(crate) fn bytes_may_wait(&self) -> bool {
        let fd = match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tls(_) => return true,
        };
        match sys::peek(fd) {
            Ok(n) => n > 0,
            // An error other than "nothing yet" (a reset): what lingering would meet; say yes
            // and let the drain find out.
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        }
    }

    /// Half-closes: no more bytes from us (for TLS, after a `close_notify` alert).
    pub(crate) fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => socket2::SockRef::from(s).shutdown(std::net::Shutdown::Write),
            Stream::Tls(s) => s.shutdown_write(),
        };
    }

    /// The socket `sendfile(2)` may write to, `None` when bytes must pass through user space
    /// (TLS).
    pub(crate) fn sendfile_fd(&self) -> Option<RawFd> {
        match self {
            Stream::Tcp(s) => Some(s.as_raw_fd()),
            Stream::Unix(s) => Some(s.as_raw_fd()),
            Stream::Tls(_) => None,
        }
    }

    /// Runs a non-blocking write-side syscall `f` with readiness tracking (tokio clears the
    /// socket's write readiness when `f` says `WouldBlock`). Plain sockets only.
    pub(crate) fn try_io_write<R>(&self, f: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            Stream::Tcp(s) => s.try_io(Interest::WRITABLE, f),
            Stream::Unix(s) => s.try_io(Interest::WRITABLE, f),
            Stream::Tls(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }
}

/// Given to tokio's `try_io`, clears a socket's cached read readiness without a system call:
/// `try_io` runs it only while the socket is marked readable, and its `WouldBlock` clears the
/// mark.
fn would_block() -> io::Result<()> {
    Err(io::ErrorKind::WouldBlock.into())
}
