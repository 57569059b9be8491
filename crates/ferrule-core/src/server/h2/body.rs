//! The two bodies of an HTTP/2 exchange: the response body hyper sends (an [`http_body::Body`]
//! fed by the application's [`ResponsePart`]s or a [`FileBody`]), and the request body fed to
//! the application ([`feed`]).
//!
//! Rules owned here:
//! - Flow control (RFC 9113 §5.2) reaches the application thread: hyper polls the response
//!   body for one frame, then waits for send window before polling again, and this body only
//!   takes a part from the bounded response channel when polled. A client that reads slowly
//!   therefore leaves the channel full, and the app blocks in `Responder::send`: memory per
//!   stream stays bounded (channel + one frame + hyper's send buffer).
//! - A declared `Content-Length` is a promise (RFC 9113 §8.1.1: a message whose DATA does not
//!   add up to it "MUST be treated as malformed"): extra bytes are cut off (warning); a body
//!   that ends short resets the stream (the body reports an error, hyper sends RST_STREAM)
//!   rather than ending it cleanly. So does an application that aborts mid-body.
//! - File bodies (`wsgi.file_wrapper`) are read in [`FILE_CHUNK`] pieces, each when hyper asks
//!   for the next frame (no `sendfile(2)` under HTTP/2 framing). The read is a plain `pread`
//!   on the I/O thread, as `sendfile` is in HTTP/1: page-cache reads do not wait.
//! - Request bodies are read by the connection as the app consumes them; hyper returns the
//!   stream window to the client as frames are taken, so an app that reads slowly holds the
//!   client back by its window (`http2_initial_stream_window_size`), not our memory.

use std::fs::File;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::super::access::OwnedPeerLabel;
use super::super::Shared;
use crate::exchange::{BodyError, BodyStream, ConnInfo, PartReceiver, ResponsePart};
use crate::head_bytes::HeadBytes;
use crate::http1::{RequestError, RequestHead};

/// Bytes read from a response file per DATA frame handed to hyper (h2 splits it into frames of
/// the peer's `SETTINGS_MAX_FRAME_SIZE`).
pub(crate) const FILE_CHUNK: usize = 64 * 1024;

/// Why a response body stopped before its end: hyper resets the stream (RST_STREAM).
#[derive(Debug)]
pub(crate) struct BodyAbort(pub(crate) &'static str);

impl std::fmt::Display for BodyAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyAbort {}

/// The access log line of one stream, written when its response body is done (or dropped).
#[derive(Debug)]
pub(crate) struct AccessEntry {
    pub(crate) shared: Arc<Shared>,
    pub(crate) info: ConnInfo,
    pub(crate) head: RequestHead,
    pub(crate) started: std::time::Instant,
    pub(crate) response_headers: Vec<(HeadBytes, HeadBytes)>,
}

/// A stream counted in the metrics: in flight until its response body is done, then one
/// request of `method` with the response's status and duration.
#[derive(Debug)]
pub(crate) struct Counted {
    pub(crate) method: u8,
    pub(crate) started: std::time::Instant,
    pub(crate) in_flight: crate::metrics::InFlight,
}

/// A file being sent.
#[derive(Debug)]
pub(crate) struct FileOut {
    pub(crate) file: File,
    pub(crate) offset: u64,
    pub(crate) remaining: u64,
}

/// A response body: an optional first chunk, then the rest of the application's parts or a
/// file. Empty when neither is left.
#[derive(Debug)]
pub(crate) struct ResponseBody {
    first: Option<Bytes>,
    parts: Option<PartReceiver>,
    file: Option<FileOut>,
    /// The byte count the head announced (`Content-Length`), when it announced one.
    promised: Option<u64>,
    sent: u64,
    truncated: bool,
    /// The client, as log lines name it.
    peer: OwnedPeerLabel,
    status: u16,
    access: Option<Box<AccessEntry>>,
    counted: Option<Counted>,
}

impl ResponseBody {
    pub(crate) fn new(peer: OwnedPeerLabel, status: u16, promised: Option<u64>) -> ResponseBody {
        ResponseBody {
            first: None,
            parts: None,
            file: None,
            promised,
            sent: 0,
            truncated: false,
            peer,
            status,
            access: None,
            counted: None,
        }
    }

    /// A complete body (error responses, one-piece app responses).
    pub(crate) fn with_first(mut self, first: Bytes) -> ResponseBody {
        self.first = (!first.is_empty()).then_some(first);
        self
    }

    /// More parts to come from the application.
    pub(crate) fn with_parts(mut self, rx: PartReceiver) -> ResponseBody {
        self.parts = Some(rx);
        self
    }

    pub(crate) fn with_file(mut self, file: FileOut) -> ResponseBody {
        self.file = (file.remaining > 0).then_some(file);
        self
    }

    pub(crate) fn with_access(mut self, access: Option<Box<AccessEntry>>) -> ResponseBody {
        self.access = access;
        self
    }

    pub(crate) fn with_metrics(mut self, counted: Counted) -> ResponseBody {
        self.counted = Some(counted);
        self
    }

    /// Trims `piece` to what may still be sent; `None` when nothing of it goes out.
    fn admit(&mut self, mut piece: Bytes) -> Option<Bytes> {
        if piece.is_empty() {
            return None;
        }
        if let Some(n) = self.promised {
            let room = n - self.sent;
            if piece.len() as u64 > room {
                if !self.truncated {
                    log::warn!(
                        "{}: response body longer than its Content-Length ({n}): truncated",
                        self.peer
                    );
                    self.truncated = true;
                }
                if room == 0 {
                    return None;
                }
                piece.truncate(room as usize);
            }
        }
        self.sent += piece.len() as u64;
        Some(piece)
    }

    /// The body ended: short of its promise it is an error (the stream is reset).
    fn finish(&mut self) -> Poll<Option<Result<Frame<Bytes>, BodyAbort>>> {
        match self.promised {
            Some(n) if self.sent < n => {
                log::error!(
                    "{}: response body shorter than its Content-Length ({} of {n} bytes): \
                     resetting the stream",
                    self.peer,
                    self.sent
                );
                self.promised = None;
                Poll::Ready(Some(Err(BodyAbort("response body shorter than promised"))))
            }
            _ => Poll::Ready(None),
        }
    }

    fn read_file(&mut self) -> Option<Result<Bytes, BodyAbort>> {
        use std::os::unix::fs::FileExt;
        let f = self.file.as_mut()?;
        let want = f.remaining.min(FILE_CHUNK as u64) as usize;
        let mut buf = BytesMut::zeroed(want);
        let got = match f.file.read_at(&mut buf, f.offset) {
            Ok(0) => {
                log::error!("{}: the response file ended early", self.peer);
                self.file = None;
                return Some(Err(BodyAbort("the response file ended early")));
            }
            Ok(n) => n,
            Err(e) => {
                log::error!("{}: reading the response file: {e}", self.peer);
                self.file = None;
                return Some(Err(BodyAbort("reading the response file failed")));
            }
        };
        buf.truncate(got);
        f.offset += got as u64;
        f.remaining -= got as u64;
        if f.remaining == 0 {
            self.file = None;
        }
        Some(Ok(buf.freeze()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyAbort;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAbort>>> {
        let me = self.get_mut();
        loop {
            if let Some(first) = me.first.take() {
                if let Some(piece) = me.admit(first) {
                    return Poll::Ready(Some(Ok(Frame::data(piece))));
                }
                continue;
            }
            match me.read_file() {
                Some(Ok(chunk)) => match me.admit(chunk) {
                    Some(piece) => return Poll::Ready(Some(Ok(Frame::data(piece)))),
                    None => continue,
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {}
            }
            let Some(rx) = me.parts.as_mut() else {
                return me.finish();
            };
            let why = match ready!(rx.poll_recv(cx)) {
                Some(ResponsePart::Body(b)) => {
                    if let Some(piece) = me.admit(b) {
                        return Poll::Ready(Some(Ok(Frame::data(piece))));
                    }
                    continue;
                }
                Some(ResponsePart::End) => {
                    me.parts = None;
                    return me.finish();
                }
                Some(ResponsePart::Abort) => "response aborted by the application",
                None => "the application stopped mid-response",
                Some(
                    ResponsePart::Start { .. }
                    | ResponsePart::StartFile { .. }
                    | ResponsePart::Refused(_),
                ) => "a second response head (binding bug)",
            };
            log::error!("{}: {why}: resetting the stream", me.peer);
            me.parts = None;
            me.promised = None;
            return Poll::Ready(Some(Err(BodyAbort(why))));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.parts.is_none() && self.file.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.promised {
            Some(n) => SizeHint::with_exact(n - self.sent),
            None if self.parts.is_none() && self.file.is_none() => {
                SizeHint::with_exact(self.first.as_ref().map_or(0, |b| b.len() as u64))
            }
            None => SizeHint::default(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(c) = self.counted.take() {
            crate::metrics::global().request_done(c.method, self.status, c.started.elapsed());
            drop(c.in_flight);
        }
        if let Some(a) = self.access.take() {
            if let Some(log) = &a.shared.access {
                log.log(&crate::server::access::Record {
                    conn: &a.info,
                    head: &a.head,
                    status: self.status,
                    body_bytes: self.sent,
                    duration: a.started.elapsed(),
                    response_headers: &a.response_headers,
                });
            }
        }
    }
}

/// Drains what the application still sends for a response that carries no body (HEAD, 204,
/// 304), so its thread is not left blocked on a full channel.
pub(crate) async fn drain(mut rx: PartReceiver) {
    while let Some(part) = rx.recv().await {
        if matches!(part, ResponsePart::End | ResponsePart::Abort) {
            return;
        }
    }
}

/// Why reading a request body failed.
#[derive(Debug)]
pub(crate) enum ReadFail {
    /// The stream was reset or the connection went away.
    Gone,
    /// No DATA within `body_timeout`.
    Timeout,
    /// Past `limit_request_body`.
    TooLarge,
}

impl ReadFail {
    fn to_body_error(&self) -> BodyError {
        match self {
            ReadFail::Gone | ReadFail::Timeout => BodyError::Incomplete,
            ReadFail::TooLarge => {
                let o = RequestError::BodyTooLarge.outcome();
                BodyError::Invalid {
                    status: o.status,
                    reason: o.reason,
                }
            }
        }
    }
}

/// Reads a request body's DATA frames, with the body timeout and the size limit.
#[derive(Debug)]
pub(crate) struct BodyIn {
    pub(crate) body: Incoming,
    pub(crate) read: u64,
    /// `limit_request_body` (0 = none).
    pub(crate) limit: u64,
    pub(crate) timeout: Duration,
}

impl BodyIn {
    /// The next DATA payload (never empty); `Ok(None)` at the end of the body.
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, ReadFail> {
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut self.body).poll_frame(cx));
            let frame = match tokio::time::timeout(self.timeout, frame).await {
                Err(_) => return Err(ReadFail::Timeout),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => {
                    log::debug!("reading an HTTP/2 request body: {e}");
                    return Err(ReadFail::Gone);
                }
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers carry nothing WSGI can show: dropped.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            self.read += data.len() as u64;
            if self.limit != 0 && self.read > self.limit {
                return Err(ReadFail::TooLarge);
            }
            return Ok(Some(data));
        }
    }
}

/// Feeds the rest of a streamed request body to the application: `first` (the bytes read
/// before the hand-off), then each DATA payload as the app makes room, then
/// [`BodyStream::END`]. Stops when the app drops its end of the stream.
pub(crate) async fn feed(
    mut body: BodyIn,
    tx: mpsc::Sender<Result<Bytes, BodyError>>,
    first: Bytes,
    peer: OwnedPeerLabel,
) {
    if !first.is_empty() && tx.send(Ok(first)).await.is_err() {
        return;
    }
    loop {
        let next = tokio::select! {
            biased;
            // The app dropped its end: nothing more to read for it.
            () = tx.closed() => return,
            n = body.next() => n,
        };
        let item = match next {
            Ok(Some(data)) => Ok(data),
            Ok(None) => Ok(BodyStream::END),
            Err(fail) => {
                log::debug!("{peer}: HTTP/2 request body failed: {fail:?}");
                Err(fail.to_body_error())
            }
        };
        let last = !matches!(&item, Ok(d) if !d.is_empty());
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}
