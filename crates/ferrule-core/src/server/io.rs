//! Reads and writes on a shared `&Stream` (TCP, Unix or TLS: see `stream`) driven by readiness (`readable()`/`writable()` +
//! `try_*`), so the body feeder and the response writer of one connection can run at the same
//! time in one task without splitting the stream. Every call first tries the syscall and only
//! waits (and only then arms a timer) when the socket is not ready.

use std::io::{self, IoSlice};
use std::time::Duration;

use super::stream::Stream;
use bytes::BytesMut;

/// Why an I/O step did not complete.
#[derive(Debug)]
pub(crate) enum IoFail {
    /// No progress within the allowed time.
    Timeout,
    /// The socket failed (reset, broken pipe, ...).
    Error(io::Error),
}

impl std::fmt::Display for IoFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IoFail::Timeout => f.write_str("timed out"),
            IoFail::Error(e) => e.fmt(f),
        }
    }
}

/// Reads once into `buf` (reserving `reserve` spare bytes first); `Ok(0)` is end of stream.
/// Cancel-safe: either bytes were appended or nothing happened.
pub(crate) async fn read_some(
    stream: &Stream,
    buf: &mut BytesMut,
    reserve: usize,
) -> io::Result<usize> {
    loop {
        make_room(buf, reserve);
        match stream.try_read_buf(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await?,
            Err(e) => return Err(e),
        }
    }
}

/// Makes room in `buf` for `n` more bytes. A buffer with no allocation (connections release
/// theirs between requests) gets one of `n` bytes at once, which costs a third of growing an
/// empty one through `reserve`.
#[inline]
pub(crate) fn make_room(buf: &mut BytesMut, n: usize) {
    if buf.capacity() == 0 {
        *buf = BytesMut::with_capacity(n);
    } else if buf.capacity() - buf.len() < n {
        buf.reserve(n);
    }
}

/// [`read_some`] bounded by `limit` (time allowed for this read to make progress).
pub(crate) async fn read_some_timeout(
    stream: &Stream,
    buf: &mut BytesMut,
    reserve: usize,
    limit: Duration,
) -> Result<usize, IoFail> {
    match tokio::time::timeout(limit, read_some(stream, buf, reserve)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(IoFail::Error(e)),
        Err(_) => Err(IoFail::Timeout),
    }
}

/// Writes every byte of `bufs` (per readiness, one `send` for one piece, one `writev` for
/// several), each wait for writability bounded by `limit`; returns once the transport has
/// nothing queued (TLS records sent).
pub(crate) async fn write_all(
    stream: &Stream,
    mut bufs: &mut [IoSlice<'_>],
    limit: Duration,
) -> Result<(), IoFail> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let written = match bufs {
            [one] => stream.try_write(one),
            _ => stream.try_write_vectored(bufs),
        };
        match written {
            Ok(0) => return Err(IoFail::Error(io::ErrorKind::WriteZero.into())),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(stream, limit).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(IoFail::Error(e)),
        }
    }
    loop {
        match stream.flush_pending() {
            Ok(true) => return Ok(()),
            Ok(false) => wait_writable(stream, limit).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(IoFail::Error(e)),
        }
    }
}

/// Waits until the socket can take more bytes, at most `limit`.
pub(crate) async fn wait_writable(stream: &Stream, limit: Duration) -> Result<(), IoFail> {
    match tokio::time::timeout(limit, stream.writable()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(IoFail::Error(e)),
        Err(_) => Err(IoFail::Timeout),
    }
}
