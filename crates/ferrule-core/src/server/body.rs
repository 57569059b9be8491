//! Reading request bodies (RFC 9112 §6.3, §7.1): a `Content-Length` body or a chunked one,
//! either read whole before the application runs (up to `max_buffered_body`) or fed to the
//! application piece by piece while it reads.
//!
//! Limits enforced here: `limit_request_body` for chunked bodies as they grow (a Content-Length
//! body over the limit is refused by the connection before any byte is read), and
//! `body_timeout` for each read that must make progress. Body bytes are never copied, except
//! when a chunked body of several chunks is buffered whole (the app gets one contiguous buffer).

use std::time::Duration;

use super::stream::Stream;
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::io::{read_some_timeout, IoFail};
use crate::exchange::{BodyError, BodyStream};
use crate::http1::{ChunkedDecoder, RequestError};

/// Spare room reserved before each body read: one read moves at most this much.
pub(crate) const BODY_READ: usize = 64 * 1024;

/// Room offered past the end of a Content-Length body when reading it whole: a read that
/// returns the body's last bytes then returns less than it was offered, which tells
/// `Stream::try_read_buf` that the socket is drained (no `recv` that would only say `EAGAIN`
/// before the next request). Whatever the client sent after the body (a pipelined request)
/// lands there and is served next, as from any read.
const BODY_TAIL_ROOM: usize = 512;

/// Unread body bytes the connection will read and discard after the response so it can be kept
/// alive; a longer remainder closes the connection instead (cheaper than reading it).
pub(crate) const DRAIN_LIMIT: u64 = 256 * 1024;

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyFail {
    /// The client closed the connection or the socket failed.
    Gone,
    /// No body bytes arrived within `body_timeout`.
    Timeout,
    /// The framing is broken or a limit was passed: answer with this status.
    Invalid { status: u16, reason: &'static str },
}

impl BodyFail {
    fn from_io(e: IoFail) -> BodyFail {
        match e {
            IoFail::Timeout => BodyFail::Timeout,
            IoFail::Error(_) => BodyFail::Gone,
        }
    }

    /// What the application's `wsgi.input` reports.
    pub(crate) fn to_body_error(&self) -> BodyError {
        match self {
            BodyFail::Gone | BodyFail::Timeout => BodyError::Incomplete,
            BodyFail::Invalid { status, reason } => BodyError::Invalid {
                status: *status,
                reason,
            },
        }
    }
}

impl From<RequestError> for BodyFail {
    fn from(e: RequestError) -> BodyFail {
        let o = e.outcome();
        BodyFail::Invalid {
            status: o.status,
            reason: o.reason,
        }
    }
}

impl std::fmt::Display for BodyFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyFail::Gone => f.write_str("the client went away during the request body"),
            BodyFail::Timeout => f.write_str("request body timeout"),
            BodyFail::Invalid { status, reason } => {
                write!(f, "request body rejected ({status} {reason})")
            }
        }
    }
}

#[derive(Debug)]
enum Kind {
    Length { remaining: u64 },
    Chunked { decoder: ChunkedDecoder, total: u64 },
}

/// The body of one request, read off the connection's read buffer and socket.
#[derive(Debug)]
pub(crate) struct BodyReader {
    kind: Kind,
    /// `limit_request_body`; 0 = unlimited.
    limit: u64,
    timeout: Duration,
}

/// Result of [`BodyReader::read_buffered`].
#[derive(Debug)]
pub(crate) enum Buffered {
    /// The whole body (possibly empty).
    Whole(Bytes),
    /// More than the bound arrived before the end: these bytes come first, the rest streams.
    Partial(Bytes),
}

/// How feeding a streamed body ended.
#[derive(Debug)]
pub(crate) enum FeedEnd {
    /// Every body byte was read and handed over.
    Complete,
    /// The application dropped its end of the stream before the end of the body.
    Abandoned,
    /// The body could not be read; the application was told.
    Failed(BodyFail),
}

impl BodyReader {
    pub(crate) fn length(len: u64, limit: u64, timeout: Duration) -> BodyReader {
        BodyReader {
            kind: Kind::Length { remaining: len },
            limit,
            timeout,
        }
    }

    pub(crate) fn chunked(limit: u64, timeout: Duration) -> BodyReader {
        BodyReader {
            kind: Kind::Chunked {
                decoder: ChunkedDecoder::new(),
                total: 0,
            },
            limit,
            timeout,
        }
    }

    /// Every body byte (and for chunked, the trailer section) has been consumed.
    pub(crate) fn is_done(&self) -> bool {
        match &self.kind {
            Kind::Length { remaining } => *remaining == 0,
            Kind::Chunked { decoder, .. } => decoder.is_done(),
        }
    }

    /// The next piece of the body, `None` at its end.
    pub(crate) async fn next_chunk(
        &mut self,
        stream: &Stream,
        buf: &mut BytesMut,
    ) -> Result<Option<Bytes>, BodyFail> {
        loop {
            match &mut self.kind {
                Kind::Length { remaining } => {
                    if *remaining == 0 {
                        return Ok(None);
                    }
                    if !buf.is_empty() {
                        let take = usize::try_from(*remaining)
                            .unwrap_or(usize::MAX)
                            .min(buf.len());
                        *remaining -= take as u64;
                        return Ok(Some(buf.split_to(take).freeze()));
                    }
                    let want = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(BODY_READ);
                    self.read(stream, buf, want).await?;
                }
                Kind::Chunked { decoder, total } => {
                    let decoded = decoder.decode(buf).map_err(BodyFail::from)?;
                    match decoded {
                        Some(piece) if piece.is_empty() => continue,
                        Some(piece) => {
                            *total += piece.len() as u64;
                            if self.limit != 0 && *total > self.limit {
                                return Err(BodyFail::from(RequestError::BodyTooLarge));
                            }
                            return Ok(Some(piece));
                        }
                        None if decoder.is_done() => return Ok(None),
                        None => self.read(stream, buf, BODY_READ).await?,
                    }
                }
            }
        }
    }

    async fn read(&self, stream: &Stream, buf: &mut BytesMut, want: usize) -> Result<(), BodyFail> {
        match read_some_timeout(stream, buf, want, self.timeout).await {
            Ok(0) => Err(BodyFail::Gone),
            Ok(_) => Ok(()),
            Err(e) => Err(BodyFail::from_io(e)),
        }
    }

    /// Reads the body whole if it ends within `max` bytes. A Content-Length body gets one
    /// reservation (the body and [`BODY_TAIL_ROOM`]) and is split off the read buffer without a
    /// copy.
    pub(crate) async fn read_buffered(
        &mut self,
        stream: &Stream,
        buf: &mut BytesMut,
        max: usize,
    ) -> Result<Buffered, BodyFail> {
        if let Kind::Length { remaining } = self.kind {
            if remaining <= max as u64 {
                let len = remaining as usize;
                while buf.len() < len {
                    let missing = len - buf.len();
                    self.read(stream, buf, missing + BODY_TAIL_ROOM).await?;
                }
                self.kind = Kind::Length { remaining: 0 };
                return Ok(Buffered::Whole(buf.split_to(len).freeze()));
            }
        }
        // Pieces are kept as they come; they are joined (copied) only when there are several.
        let mut first: Option<Bytes> = None;
        let mut joined = BytesMut::new();
        let mut len = 0usize;
        while let Some(piece) = self.next_chunk(stream, buf).await? {
            len += piece.len();
            match first.take() {
                None if joined.is_empty() => first = Some(piece),
                None => joined.extend_from_slice(&piece),
                Some(f) => {
                    joined.reserve(len.min(max.saturating_add(BODY_READ)));
                    joined.extend_from_slice(&f);
                    joined.extend_from_slice(&piece);
                }
            }
            if len > max {
                return Ok(Buffered::Partial(take(first, joined)));
            }
        }
        Ok(Buffered::Whole(take(first, joined)))
    }

    /// Feeds the rest of the body to the application, `first` before anything else.
    pub(crate) async fn feed(
        &mut self,
        stream: &Stream,
        buf: &mut BytesMut,
        tx: mpsc::Sender<Result<Bytes, BodyError>>,
        first: Option<Bytes>,
    ) -> FeedEnd {
        if let Some(piece) = first {
            if tx.send(Ok(piece)).await.is_err() {
                return FeedEnd::Abandoned;
            }
        }
        loop {
            match self.next_chunk(stream, buf).await {
                Ok(Some(piece)) => {
                    if tx.send(Ok(piece)).await.is_err() {
                        return FeedEnd::Abandoned;
                    }
                }
                Ok(None) => {
                    // The end marker: without it the app would see the body as cut off.
                    return match tx.send(Ok(BodyStream::END)).await {
                        Ok(()) => FeedEnd::Complete,
                        Err(_) => FeedEnd::Abandoned,
                    };
                }
                Err(fail) => {
                    // Waits for room: the app must see the failure, not a silently short body.
                    // If the app never reads again, the response's end cancels this wait.
                    let _ = tx.send(Err(fail.to_body_error())).await;
                    return FeedEnd::Failed(fail);
                }
            }
        }
    }

    /// Reads and discards what is left of the body, if that is at most [`DRAIN_LIMIT`] bytes.
    /// True when the body was consumed to its end (the connection can be reused).
    pub(crate) async fn drain(&mut self, stream: &Stream, buf: &mut BytesMut) -> bool {
        if let Kind::Length { remaining } = self.kind {
            if remaining.saturating_sub(buf.len() as u64) > DRAIN_LIMIT {
                return false;
            }
        }
        let mut drained = 0u64;
        loop {
            match self.next_chunk(stream, buf).await {
                Ok(Some(piece)) => {
                    drained += piece.len() as u64;
                    if drained > DRAIN_LIMIT {
                        return false;
                    }
                }
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }
}

fn take(first: Option<Bytes>, joined: BytesMut) -> Bytes {
    match first {
        Some(f) => f,
        None => joined.freeze(),
    }
}
