//! Overload: the per-process connection cap (`worker_connections`) and the fast `503` given to
//! connections past it when `overload_503` is set.
//!
//! Without `overload_503`, the accept loop takes a [`ConnLimit`] permit before each `accept`:
//! at the cap it stops accepting, so new connections wait in the kernel's listen backlog (and
//! the client's own connect timeout applies) until a connection closes. With it, every
//! connection is accepted; one past the cap is answered `503 Service Unavailable` with
//! `Retry-After` and `Connection: close` (RFC 9110 §15.6.4) without reading its request, then
//! closed. Both are logged as one rate-limited warning, never one line per connection.

use std::sync::Arc;
use std::time::Duration;

use super::stream::Stream;
use bytes::BytesMut;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::io::{read_some, write_all};
use super::respond::error_response_retry;
use crate::http1::RequestError;
use crate::log::RateLimited;

/// At most one "connection limit reached" warning per this interval.
pub(crate) const LIMIT_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Time a refused connection gets for its `503` to be written and for what the client still
/// sends to be drained (so unread bytes do not make the kernel reset the connection before the
/// client read the answer), in all.
const REFUSE_TIME: Duration = Duration::from_secs(1);

/// Bytes drained from a refused connection at most.
const REFUSE_DRAIN_BYTES: usize = 64 * 1024;

/// How many refused connections may be answering their `503` at once; past it, a refused
/// connection is closed at once without an answer (a flood must not buy unbounded tasks).
pub(crate) const MAX_REFUSING: usize = 1024;

/// The connection cap of one process, shared by every listener's accept loop.
#[derive(Debug)]
pub(crate) struct ConnLimit {
    /// One permit per connection that may be open; a connection task holds one until it ends.
    open: Arc<Semaphore>,
    /// Permits for refused connections still answering their `503`.
    refusing: Arc<Semaphore>,
    max: usize,
    warn: RateLimited,
}

impl ConnLimit {
    pub(crate) fn new(max: usize) -> ConnLimit {
        ConnLimit {
            open: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            max,
            warn: RateLimited::new(LIMIT_WARN_INTERVAL),
        }
    }

    /// A permit if the cap is not reached; else `None`, after logging (rate-limited).
    pub(crate) fn try_admit(&self, overload_503: bool) -> Option<OwnedSemaphorePermit> {
        match Arc::clone(&self.open).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                if let Some(held_back) = self.warn.check() {
                    let what = if overload_503 {
                        "answering new connections 503"
                    } else {
                        "new connections wait in the listen backlog"
                    };
                    log::warn!(
                        "Connection limit ({}) reached: {what} ({held_back} more times since \
                         the last warning)",
                        self.max
                    );
                }
                None
            }
        }
    }

    /// Waits for a connection to close and returns its permit.
    pub(crate) async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.open).acquire_owned().await.ok()
    }

    /// A permit to answer one refused connection, if fewer than [`MAX_REFUSING`] are.
    pub(crate) fn try_refusing(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.refusing).try_acquire_owned().ok()
    }
}

/// Answers a connection past the cap with `503` + `Retry-After` + `Connection: close`, then
/// half-closes and drains briefly, all within [`REFUSE_TIME`]. The request is never read.
pub(crate) async fn refuse(stream: Stream, server_header: Arc<[u8]>) {
    let o = RequestError::ConnectionLimit.outcome();
    crate::metrics::global().request_refused(o.status);
    let mut buf = BytesMut::new();
    error_response_retry(&mut buf, o.status, o.reason, &server_header, o.retry_after);
    let answer = async {
        let mut iov = [std::io::IoSlice::new(&buf)];
        if write_all(&stream, &mut iov, REFUSE_TIME).await.is_err() {
            return;
        }
        stream.shutdown_write();
        let mut sink = BytesMut::new();
        let mut seen = 0;
        while seen <= REFUSE_DRAIN_BYTES {
            sink.clear();
            match read_some(&stream, &mut sink, 4096).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen += n,
            }
        }
    };
    let _ = tokio::time::timeout(REFUSE_TIME, answer).await;
}
