//! The byte streams hyper's HTTP/2 server runs over.
//!
//! - [`TlsIo`]: `AsyncRead`/`AsyncWrite` over the driver's readiness-based
//!   [`TlsStream`](super::super::tls::TlsStream) (the connection ALPN gave to `h2`): each poll
//!   tries the non-blocking call and, when it would block, registers for the socket's
//!   readiness (rustls's buffered plaintext counts as readable).
//! - [`Watched`]: wraps any of them to count bytes in the metrics (as `Stream` does for
//!   HTTP/1) and to record when bytes last went out, which the connection's write-stall check
//!   reads (`--write-timeout`, see `h2.rs`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::super::tls::TlsStream;
use super::Activity;

/// A TLS connection as hyper reads and writes it.
#[derive(Debug)]
pub(crate) struct TlsIo(pub(crate) Box<TlsStream>);

impl AsyncRead for TlsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let tls = &self.0;
        loop {
            ready!(tls.poll_read_ready(cx))?;
            match tls.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // The socket's readiness was cleared by the failed read: poll it again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let tls = &self.0;
        loop {
            match tls.try_write_vectored(bufs) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(tls.tcp().poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let tls = &self.0;
        loop {
            if tls.flush_pending()? {
                return Poll::Ready(Ok(()));
            }
            ready!(tls.tcp().poll_write_ready(cx))?;
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        // close_notify, then the TCP half-close.
        Poll::Ready(self.0.shutdown_write())
    }
}

/// A stream whose traffic is counted (metrics) and whose writes mark the connection's
/// [`Activity`] as making progress.
#[derive(Debug)]
pub(crate) struct Watched<I> {
    pub(crate) inner: I,
    pub(crate) activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        crate::metrics::global().add_bytes_in(buf.filled().len() - before);
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> Watched<I> {
    fn wrote(&self, n: usize) {
        if n > 0 {
            crate::metrics::global().add_bytes_out(n);
            self.activity.wrote();
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        self.wrote(n);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(flavor = "current_thread")]
    async fn watched_passes_bytes_and_marks_writes() {
        let (a, mut b) = tokio::io::duplex(64);
        let activity = Arc::new(Activity::new());
        let mut w = Watched {
            inner: a,
            activity: Arc::clone(&activity),
        };
        assert_eq!(activity.last_write_ms(), None);
        w.write_all(b"out").await.unwrap();
        assert!(activity.last_write_ms().is_some());
        b.write_all(b"in").await.unwrap();
        let mut got = [0u8; 2];
        w.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"in");
        let mut got = [0u8; 3];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"out");
    }
}
