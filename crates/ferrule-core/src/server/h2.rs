//! HTTP/2 connections, served by hyper's HTTP/2 server (HTTP/1 stays our own codec). Each
//! stream becomes a WSGI request through the same job queue, [`Responder`] channel and outcome
//! table as an HTTP/1 request; only the wire differs.
//!
//! Entry points:
//! - h2c with prior knowledge (RFC 9113 §3.3, `http2 = true`): the HTTP/1 driver checks a
//!   connection's first bytes with [`is_preface`]; when they open the connection preface
//!   (RFC 9113 §3.4: "the string PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") it hands the socket and
//!   the bytes it already read to [`serve_prefaced`].
//! - TLS with ALPN `h2` (RFC 9113 §3.2; offered with `http2`, see `tls.rs`): the driver
//!   hands the connection to [`serve_stream`] once the handshake chose `h2`; the readiness-based
//!   TLS stream is read and written through `h2/transport.rs`.
//!
//! Per stream ([`handle`]): the header block becomes a [`RequestHead`] under the HTTP/1 rules
//! (`h2/head.rs`); the built-in middleware applies as for HTTP/1 (`X-Request-ID`, compression,
//! `--static` files answered without the app); the body is read whole up to
//! `max_buffered_body`, else streamed while the app reads (`h2/body.rs`); `limit_request_body` → 413, `body_timeout` → 408,
//! `max_queued_requests`/`queue_timeout` → 503 with `Retry-After`, an app that fails before
//! its head → 500, `ResponsePart::Refused` (app timeout) → its declared outcome. Malformed
//! streams get the same status an HTTP/1 request would (RFC 9113 §8.1.1 allows a response
//! before the reset). Responses: hop-by-hop fields are never sent (RFC 9113 §8.2.2), HEAD/204/
//! 304 carry no DATA, a known length is sent as `content-length`. Each stream that reaches the
//! app (or a static file) is counted in the metrics and the access log when its response ends.
//! `Expect: 100-continue` gets no interim `100` (hyper's HTTP/2 server cannot send one):
//! clients send the body after their own wait (RFC 9110 §10.1.1: a client "SHOULD NOT wait
//! for an indefinite period"); see docs/conformance.md.
//!
//! Connection limits: `http2_max_concurrent_streams`, `http2_max_header_list_size` (→ 431 from
//! h2), the initial windows, optional keep-alive PINGs (unanswered within `write_timeout`:
//! closed). A connection without open streams is closed with GOAWAY after `header_timeout`
//! (before its first stream) or `keepalive_timeout` (later). Write stall (`write_timeout`, the
//! HTTP/1 rule for a client that stops reading): while a response waits to be sent (flow
//! control or a full socket) and nothing at all went out for `write_timeout`, the connection
//! is closed, which ends its streams (the apps' next `write` fails). On server stop: GOAWAY
//! (hyper's graceful shutdown), in-flight streams finish within `graceful_timeout`.

mod body;
mod head;
mod transport;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use hyper::http::{header, HeaderName, HeaderValue, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use self::body::{AccessEntry, BodyIn, Counted, FileOut, ReadFail, ResponseBody};
use super::access::{OwnedPeerLabel, PeerLabel};
use super::respond::app_content_length;
use super::Shared;
use crate::exchange::{
    BodyStream, ConnInfo, FileBody, Request, RequestBody, ResponseHead, ResponsePart,
};
use crate::head_bytes::HeadBytes;
use crate::http1::encode::{response_framing, FramingInput, ResponseFraming};
use crate::http1::{BodyFraming, RequestError};

/// The HTTP/2 connection preface a client sends first (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Fewest preface bytes that decide h2c: `PRI *` can open no valid HTTP/1 request (an
/// asterisk-form target needs OPTIONS), so from here on the bytes are HTTP/2 or garbage.
const PREFACE_DECIDES: usize = 5;

/// Shortest period of the connection's timer (idle close, write-stall check), whatever the
/// timeouts say.
const MIN_TICK: Duration = Duration::from_millis(50);

/// Response fields that belong to one HTTP/1 connection and are never sent on a stream
/// (RFC 9113 §8.2.2).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
];

/// True when a connection's first bytes open the HTTP/2 preface (at least
/// [`PREFACE_DECIDES`] of them, all matching). A first read shorter than that is taken as
/// HTTP/1, whose parser then refuses a real preface (505).
pub(crate) fn is_preface(first: &[u8]) -> bool {
    let n = first.len().min(PREFACE.len());
    n >= PREFACE_DECIDES && first[..n] == PREFACE[..n]
}

/// Serves a connection the HTTP/1 driver hands over: a plain one that opened with the preface
/// ([`is_preface`]), `read` being the bytes it took off the stream, or a TLS one whose ALPN
/// chose `h2` (RFC 9113 §3.2; over TLS, never by prior knowledge: `read` is then empty, the
/// handshake having consumed the socket's first bytes).
pub(crate) async fn serve_stream(
    stream: super::stream::Stream,
    read: BytesMut,
    info: ConnInfo,
    shared: Arc<Shared>,
) {
    use super::stream::Stream;
    match stream {
        Stream::Tcp(s) => serve_prefaced(s, read, info, shared).await,
        Stream::Unix(s) => serve_prefaced(s, read, info, shared).await,
        Stream::Tls(s) if s.alpn_is_h2() => {
            serve_prefaced(transport::TlsIo(s), read, info, shared).await
        }
        Stream::Tls(_) => log::debug!(
            "{}: closing: HTTP/2 preface over TLS without ALPN h2",
            PeerLabel(&info)
        ),
    }
}

/// Serves an h2c connection whose first bytes (`read`, the start of the preface) the HTTP/1
/// driver already took off `io`.
pub(crate) async fn serve_prefaced<I>(io: I, read: BytesMut, info: ConnInfo, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    serve(
        Prefixed {
            prefix: read.freeze(),
            inner: io,
        },
        info,
        shared,
    )
    .await;
}

/// Serves one HTTP/2 connection until the client or the server closes it. For the TLS path:
/// call it with the decrypted stream when ALPN chose `h2` (`info.scheme = "https"`), from the
/// connection's task (which holds the connection's slot and drain guard meanwhile).
pub(crate) async fn serve<I>(io: I, info: ConnInfo, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = &shared.config;
    let peer = PeerLabel(&info).owned();
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.http2_max_concurrent_streams)
        .max_header_list_size(config.http2_header_list())
        .initial_stream_window_size(config.http2_initial_stream_window_size)
        .initial_connection_window_size(config.http2_initial_connection_window_size)
        .keep_alive_interval(config.http2_keepalive())
        .keep_alive_timeout(config.write());
    let activity = Arc::new(Activity::new());
    let stream_cx = Arc::new(StreamCx {
        shared: Arc::clone(&shared),
        info,
        activity: Arc::clone(&activity),
    });
    // Each stream's future is boxed where it is built (`Box::write`): hyper wraps it in its
    // stream future and spawns that as a task, and a future held inline (several KiB: the
    // hand-off, body read, first response part) was copied at each of those steps.
    let service = hyper::service::service_fn(move |req| {
        Box::into_pin(Box::write(
            Box::new_uninit(),
            handle(req, Arc::clone(&stream_cx)),
        ))
    });
    let io = transport::Watched {
        inner: io,
        activity: Arc::clone(&activity),
    };
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));

    let mut stop = shared.shutdown.watch();
    let mut closing = false;
    // Looked at every `tick`: a stream's end does not wake this task, so the idle close and the
    // write-stall close come at most one tick late.
    let tick = config
        .header_read()
        .min(config.keepalive())
        .min(config.write())
        .max(MIN_TICK);
    let idle_timer = tokio::time::sleep(tick);
    let mut idle_timer = pin!(idle_timer);
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    log::debug!("{peer}: HTTP/2 connection ended: {e}");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                log::debug!("{peer}: shutting down: GOAWAY");
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = idle_timer.as_mut() => {
                if activity.write_stalled(config.write()) {
                    log::debug!(
                        "{peer}: closing HTTP/2 connection: the client read nothing for {:?}",
                        config.write()
                    );
                    return;
                }
                let next = Instant::now() + tick;
                if closing {
                    idle_timer.as_mut().reset(next.into());
                    continue;
                }
                match activity.idle_until(config.header_read(), config.keepalive()) {
                    None => {
                        log::debug!("{peer}: closing idle HTTP/2 connection: GOAWAY");
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                        idle_timer.as_mut().reset(next.into());
                    }
                    Some(at) => idle_timer.as_mut().reset(at.min(next).into()),
                }
            }
        }
    }
}

/// When a connection last had no stream open, to close it once idle for too long; and whether
/// its responses still go out, to close it once stalled for too long.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    open: AtomicUsize,
    /// A stream has begun.
    began: AtomicBool,
    /// Milliseconds from `start` to the end of the last stream.
    last_end: AtomicU64,
    /// Response bodies that handed hyper a frame and were not asked for the next one yet:
    /// their data waits for flow-control window or socket room.
    waiting: AtomicUsize,
    /// Milliseconds from `start` to the last response progress (bytes written to the socket,
    /// a frame handed to hyper), plus one (0: none yet).
    last_progress: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            open: AtomicUsize::new(0),
            began: AtomicBool::new(false),
            last_end: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            last_progress: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Bytes went out on the socket (`h2/transport.rs`).
    pub(crate) fn wrote(&self) {
        self.last_progress
            .store(self.now_ms().saturating_add(1), Ordering::Release);
    }

    /// When bytes last went out, in milliseconds from the connection's start.
    #[cfg(test)]
    pub(crate) fn last_write_ms(&self) -> Option<u64> {
        match self.last_progress.load(Ordering::Acquire) {
            0 => None,
            n => Some(n - 1),
        }
    }

    /// A response body handed hyper a frame (`true`) or was asked for the next one.
    fn set_waiting(&self, waiting: bool) {
        if waiting {
            self.wrote();
            self.waiting.fetch_add(1, Ordering::AcqRel);
        } else {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Response data waits to be sent and nothing went out for `limit`.
    fn write_stalled(&self, limit: Duration) -> bool {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return false;
        }
        let last = self.last_progress.load(Ordering::Acquire).saturating_sub(1);
        let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        self.now_ms().saturating_sub(last) > limit
    }

    /// `None` when the connection has been idle too long: `first` from its start while no
    /// stream has begun (the header timeout), `idle` from the end of its last stream (the
    /// keep-alive timeout). Else when it will have been.
    fn idle_until(&self, first: Duration, idle: Duration) -> Option<Instant> {
        let now = Instant::now();
        if self.open.load(Ordering::Acquire) > 0 {
            return Some(now + idle);
        }
        let at = if self.began.load(Ordering::Acquire) {
            self.start + Duration::from_millis(self.last_end.load(Ordering::Acquire)) + idle
        } else {
            self.start + first
        };
        (at > now).then_some(at)
    }

    fn begin(self: &Arc<Self>) -> StreamGuard {
        self.began.store(true, Ordering::Release);
        self.open.fetch_add(1, Ordering::AcqRel);
        StreamGuard(Arc::clone(self))
    }
}

/// One open stream, counted in [`Activity`] until dropped (with its response body).
#[derive(Debug)]
struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_end.store(a.now_ms(), Ordering::Release);
        a.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What every stream of one connection shares.
#[derive(Debug)]
struct StreamCx {
    shared: Arc<Shared>,
    info: ConnInfo,
    activity: Arc<Activity>,
}

/// The response body and what must live as long as it.
type H2Response = Response<GuardedBody>;

/// A response body holding its stream's [`StreamGuard`], and telling the connection's
/// [`Activity`] while a frame it gave hyper waits to be sent.
#[derive(Debug)]
pub(crate) struct GuardedBody {
    body: ResponseBody,
    guard: StreamGuard,
    /// Counted in `Activity::waiting`.
    waiting: bool,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = body::BodyAbort;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, body::BodyAbort>>> {
        let me = &mut *self;
        if me.waiting {
            me.waiting = false;
            me.guard.0.set_waiting(false);
        }
        let frame = Pin::new(&mut me.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &frame {
            me.waiting = true;
            me.guard.0.set_waiting(true);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        if self.waiting {
            self.guard.0.set_waiting(false);
        }
    }
}

/// One stream: request head and body, hand-off, the response head; the body follows as
/// hyper polls it.
async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    cx: Arc<StreamCx>,
) -> Result<H2Response, Infallible> {
    let guard = cx.activity.begin();
    let response = exchange(req, &cx).await;
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(
        parts,
        GuardedBody {
            body,
            guard,
            waiting: false,
        },
    ))
}

async fn exchange(
    req: hyper::Request<hyper::body::Incoming>,
    cx: &StreamCx,
) -> Response<ResponseBody> {
    let shared = &cx.shared;
    let config = &shared.config;
    let peer = PeerLabel(&cx.info).owned();
    let (parts, incoming) = req.into_parts();
    let head = match head::request_head(&parts, &shared.limits) {
        Ok(h) => h,
        Err(e) => {
            log::debug!("{peer}: HTTP/2 stream refused ({}): {e}", e.status());
            return refused_early(shared, peer, &e);
        }
    };
    drop(parts);
    // Built-in middleware: X-Request-ID now; compression filters the response below.
    let (head, filter) = shared.middleware.prepare(head);
    let started = Instant::now();
    // Metrics: in flight until the response body is done (or this stream is refused).
    let in_flight = crate::metrics::request_started();
    let method = crate::metrics::method_index(head.method());

    // The body: read whole when small, else streamed while the app reads.
    let limit = config.limit_request_body;
    let declared = match head.framing() {
        BodyFraming::Length(n) => Some(n),
        BodyFraming::None | BodyFraming::Chunked => None,
    };
    if let Some(n) = declared.filter(|&n| limit != 0 && n > limit) {
        log::debug!("{peer}: refused (413): content-length {n} over limit_request_body {limit}");
        return refused_early(shared, peer, &RequestError::BodyTooLarge);
    }
    let mut body_in = BodyIn {
        body: incoming,
        read: 0,
        limit,
        timeout: config.body_read(),
    };
    let mut streamed = None;
    let body = if http_body::Body::is_end_stream(&body_in.body) || declared == Some(0) {
        RequestBody::Empty
    } else {
        let bound = config.max_buffered_body;
        let mut buf = BytesMut::new();
        let complete = loop {
            if buf.len() > bound || declared.is_some_and(|n| n > bound as u64) {
                break false;
            }
            match body_in.next().await {
                Ok(Some(data)) => buf.extend_from_slice(&data),
                Ok(None) => break true,
                Err(fail) => {
                    log::debug!("{peer}: HTTP/2 request body failed: {fail:?}");
                    let e = match fail {
                        ReadFail::TooLarge => RequestError::BodyTooLarge,
                        ReadFail::Timeout => RequestError::BodyTimeout,
                        // The client reset the stream: nobody reads this answer.
                        ReadFail::Gone => RequestError::Malformed("request body incomplete"),
                    };
                    return refused_early(shared, peer, &e);
                }
            }
        };
        if complete {
            if buf.is_empty() {
                RequestBody::Empty
            } else {
                RequestBody::Full(buf.freeze())
            }
        } else {
            let first = buf.freeze();
            let hint = declared.map(|n| n - first.len() as u64);
            let (tx, stream) = BodyStream::channel(hint);
            streamed = Some((tx, first));
            RequestBody::Stream(stream)
        }
    };
    if let Some((tx, first)) = streamed {
        tokio::spawn(body::feed(body_in, tx, first, peer));
    } else {
        drop(body_in);
    }

    // Static files (`--static`): answered here, the app never sees the request.
    let static_part = match &shared.middleware.statics {
        Some(files) => files.answer(&head).await,
        None => None,
    };
    // Hand-off, unless too many requests already wait for an application thread.
    if static_part.is_none() && shared.queue_full(&cx.info) {
        return refused_early(shared, peer, &RequestError::QueueFull);
    }
    // Forwarding headers from a trusted peer: believed, or a 400 when they cannot be.
    let forwarded = if cx.info.forwarding_trusted
        && head
            .headers()
            .any(|(name, _)| crate::forwarded::is_forwarding_header(name))
    {
        match crate::forwarded::forwarded_view_trusted(&config.forwarded_allow_ips, head.headers())
        {
            Ok(view) => Some(Box::new(view)),
            Err(e) => {
                log::debug!("{peer}: refused (400): {e}");
                return refused_early(shared, peer, &e.into());
            }
        }
    } else {
        None
    };
    let is_head = head.is_head();
    let log_head = shared.access.as_ref().map(|_| head.clone());
    let request = Box::new(Request {
        head,
        body,
        conn: cx.info.clone(),
        forwarded,
    });
    let Ok((mut rx, claim)) = shared.hand_off(request, filter, static_part) else {
        crate::metrics::global().request_refused(503);
        return error_response(shared, peer, 503, "Service Unavailable", None);
    };

    // The first part: the head (or why there is none).
    let first = tokio::select! {
        biased;
        part = rx.recv() => part,
        () = shared.queue_timed_out(&cx.info, claim.as_ref()) => {
            let counted = Counted { method, started, in_flight };
            return refused(shared, peer, &RequestError::QueueTimeout)
                .map(|b| b.with_metrics(counted));
        }
    };
    let access = |headers: &[(HeadBytes, HeadBytes)]| {
        log_head.map(|head| {
            Box::new(AccessEntry {
                shared: Arc::clone(shared),
                info: cx.info.clone(),
                head,
                started,
                response_headers: headers.to_vec(),
            })
        })
    };
    let counted = Counted {
        method,
        started,
        in_flight,
    };
    let response = match first {
        Some(ResponsePart::Start { head, first, end }) => {
            let known = end.then_some(first.len() as u64);
            let entry = access(&head.headers);
            let out = Out::new(shared, peer, is_head, &head, known);
            let body = out.body().with_access(entry);
            if out.has_body() {
                let body = body.with_first(first);
                let body = if end { body } else { body.with_parts(rx) };
                out.response(&head, body)
            } else {
                if !end {
                    tokio::spawn(body::drain(rx));
                }
                out.response(&head, body)
            }
        }
        Some(ResponsePart::StartFile { head, file }) => {
            let entry = access(&head.headers);
            start_file(shared, peer, is_head, head, file, entry)
        }
        Some(ResponsePart::Refused(e)) => refused(shared, peer, &e),
        Some(ResponsePart::Abort) => {
            log::error!("{peer}: the application failed before sending a response");
            internal_error(shared, peer)
        }
        Some(ResponsePart::Body(_) | ResponsePart::End) => {
            log::error!("{peer}: response body without a head (binding bug)");
            internal_error(shared, peer)
        }
        None => {
            log::error!("{peer}: the application dropped the request without a response");
            internal_error(shared, peer)
        }
    };
    response.map(|b| b.with_metrics(counted))
}

fn start_file(
    shared: &Shared,
    peer: OwnedPeerLabel,
    is_head: bool,
    head: ResponseHead,
    file: FileBody,
    entry: Option<Box<AccessEntry>>,
) -> Response<ResponseBody> {
    let available = match file.len {
        Some(len) => len,
        None => match file.file.metadata() {
            Ok(meta) => meta.len().saturating_sub(file.offset),
            Err(e) => {
                log::error!("{peer}: cannot stat the response file: {e}");
                return internal_error(shared, peer);
            }
        },
    };
    let out = Out::new(shared, peer, is_head, &head, Some(available));
    let mut body = out.body().with_access(entry);
    if out.has_body() {
        let remaining = match out.framing {
            ResponseFraming::Length(n) => n.min(available),
            _ => available,
        };
        body = body.with_file(FileOut {
            file: file.file,
            offset: file.offset,
            remaining,
        });
    }
    out.response(&head, body)
}

/// How one response head goes out.
struct Out<'a> {
    shared: &'a Shared,
    peer: OwnedPeerLabel,
    framing: ResponseFraming,
    app_len: Option<u64>,
    status: u16,
}

impl<'a> Out<'a> {
    fn new(
        shared: &'a Shared,
        peer: OwnedPeerLabel,
        is_head: bool,
        head: &ResponseHead,
        known: Option<u64>,
    ) -> Out<'a> {
        let app_len = app_content_length(head);
        let framing = response_framing(&FramingInput {
            version: crate::http1::Version::Http2,
            is_head,
            status: head.code,
            app_content_length: app_len,
            known_body_len: known,
        });
        Out {
            shared,
            peer,
            framing,
            app_len,
            status: head.code,
        }
    }

    fn has_body(&self) -> bool {
        !matches!(
            self.framing,
            ResponseFraming::NoBody | ResponseFraming::NoBodyLength(_)
        )
    }

    fn body(&self) -> ResponseBody {
        let promised = match self.framing {
            ResponseFraming::Length(n) => Some(n),
            _ => None,
        };
        ResponseBody::new(self.peer, self.status, promised)
    }

    /// The response: the app's fields (hop-by-hop ones dropped), `server`, `content-length`.
    fn response(&self, head: &ResponseHead, body: ResponseBody) -> Response<ResponseBody> {
        let mut res = Response::new(body);
        *res.status_mut() = status_code(head.code, self.peer);
        let fields = res.headers_mut();
        let mut has_server = false;
        for (name, value) in &head.headers {
            let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
            else {
                log::warn!(
                    "{}: response field {:?} cannot be sent over HTTP/2: dropped",
                    self.peer,
                    String::from_utf8_lossy(name)
                );
                continue;
            };
            if HOP_BY_HOP.contains(&n.as_str()) {
                continue;
            }
            has_server |= n == header::SERVER;
            fields.append(n, v);
        }
        if !has_server && !self.shared.server_header.is_empty() {
            if let Ok(v) = HeaderValue::from_bytes(&self.shared.server_header) {
                fields.insert(header::SERVER, v);
            }
        }
        match self.framing {
            ResponseFraming::Length(n) | ResponseFraming::NoBodyLength(n)
                if self.app_len.is_none() =>
            {
                fields.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            }
            _ => {}
        }
        res
    }
}

/// The status as hyper takes it; an app status it cannot hold (the binding checks three
/// digits) becomes 500.
fn status_code(code: u16, peer: OwnedPeerLabel) -> StatusCode {
    match StatusCode::from_u16(code) {
        Ok(s) if code >= 200 => s,
        _ => {
            log::error!("{peer}: status {code} cannot end an HTTP/2 response: sending 500");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// The declared outcome of `e`, as an HTTP/2 response (the stream ends; the connection stays).
fn refused(shared: &Shared, peer: OwnedPeerLabel, e: &RequestError) -> Response<ResponseBody> {
    let o = e.outcome();
    error_response(shared, peer, o.status, o.reason, o.retry_after)
}

/// [`refused`] for a stream answered before the app saw it: counted in the metrics' refusals,
/// as the HTTP/1 driver counts its refusals.
fn refused_early(
    shared: &Shared,
    peer: OwnedPeerLabel,
    e: &RequestError,
) -> Response<ResponseBody> {
    crate::metrics::global().request_refused(e.outcome().status);
    refused(shared, peer, e)
}

fn internal_error(shared: &Shared, peer: OwnedPeerLabel) -> Response<ResponseBody> {
    error_response(shared, peer, 500, "Internal Server Error", None)
}

/// A plain-text error response whose body is `reason`.
fn error_response(
    shared: &Shared,
    peer: OwnedPeerLabel,
    status: u16,
    reason: &'static str,
    retry_after: Option<u32>,
) -> Response<ResponseBody> {
    let body = ResponseBody::new(peer, status, Some(reason.len() as u64))
        .with_first(Bytes::from_static(reason.as_bytes()));
    let mut res = Response::new(body);
    *res.status_mut() = status_code(status, peer);
    let fields = res.headers_mut();
    fields.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    fields.insert(header::CONTENT_LENGTH, HeaderValue::from(reason.len()));
    if let Some(secs) = retry_after {
        fields.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Ok(v) = HeaderValue::from_bytes(&shared.server_header) {
        if !shared.server_header.is_empty() {
            fields.insert(header::SERVER, v);
        }
    }
    res
}

/// A stream that first yields bytes already read from it (the preface the HTTP/1 driver
/// looked at), then reads on; writes go straight through.
#[derive(Debug)]
pub(crate) struct Prefixed<I> {
    prefix: Bytes,
    inner: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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

/// Checks that [`serve`]'s future can be spawned on the (current-thread) runtime from any
/// connection task: hyper's executor spawns stream futures with `tokio::spawn`, so they must
/// be `Send` too (they are: nothing in a stream is tied to a thread).
#[allow(dead_code)]
fn assert_send() {
    fn is_send<F: Future + Send>(_: F) {}
    fn check(io: tokio::net::TcpStream, info: ConnInfo, shared: Arc<Shared>) {
        is_send(serve(io, info, shared));
    }
    let _ = check;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preface_is_recognised_from_its_first_bytes() {
        assert!(is_preface(PREFACE));
        assert!(is_preface(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04"
        ));
        assert!(is_preface(b"PRI * HT"));
        assert!(is_preface(b"PRI *"));
        // Too short to tell, or an HTTP/1 request (PRI is a valid method name).
        assert!(!is_preface(b"PRI "));
        assert!(!is_preface(b"PRI /x HTTP/1.1\r\n"));
        assert!(!is_preface(b"GET / HTTP/1.1\r\n"));
        assert!(!is_preface(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn prefixed_replays_then_reads_on() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut a, b) = tokio::io::duplex(64);
        let mut p = Prefixed {
            prefix: Bytes::from_static(b"abc"),
            inner: b,
        };
        a.write_all(b"def").await.unwrap();
        drop(a);
        let mut all = Vec::new();
        p.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"abcdef");
    }

    #[test]
    fn idle_is_measured_from_the_last_stream() {
        let a = Arc::new(Activity::new());
        let (long, zero) = (Duration::from_secs(60), Duration::ZERO);
        assert!(
            a.idle_until(long, zero).is_some(),
            "the first stream may come"
        );
        assert!(
            a.idle_until(zero, long).is_none(),
            "no first stream in time"
        );
        let g = a.begin();
        assert!(a.idle_until(zero, zero).is_some(), "a stream is open");
        drop(g);
        assert!(a.idle_until(zero, long).is_some());
        assert!(a.idle_until(long, zero).is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stall_needs_a_response_waiting_and_no_progress() {
        let a = Activity::new();
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Nothing waits to be sent: a quiet connection is not stalled.
        assert!(!a.write_stalled(Duration::ZERO));
        a.set_waiting(true);
        // Handing a frame over is progress.
        assert!(!a.write_stalled(Duration::from_secs(60)));
        let limit = Duration::from_millis(20);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(a.write_stalled(limit));
        a.wrote();
        assert!(!a.write_stalled(limit));
        a.set_waiting(false);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!a.write_stalled(Duration::ZERO));
    }
}
