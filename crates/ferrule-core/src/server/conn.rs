//! One connection's life: read a head, read or stream its body, hand the request to an
//! application thread, write the response, and go round again while keep-alive holds.
//!
//! Rules owned here:
//! - RFC 9112 §9.3: a connection persists unless the request or response says `close`, the
//!   response is close-delimited, or the request body was not fully read. Pipelined requests
//!   (§9.3.2) are answered one after the other, in order; bytes after a request stay in the
//!   read buffer for the next round.
//! - RFC 9112 §9.6: after a framing error the server answers once and closes; bytes after the
//!   broken request are never parsed.
//! - RFC 9110 §10.1.1: `Expect: 100-continue` gets `100 Continue` before the body is read,
//!   except when the body is refused (413) outright.
//! - Timeouts: header read (from the first byte of a head; from accept for the first request),
//!   keep-alive idle between requests, body read progress, write progress. An idle connection
//!   holds no read buffer.
//! - Before the first request ([`Conn::start`], under the header timeout): the PROXY protocol
//!   header when the listener requires one (HAProxy `proxy-protocol.txt`: "The receiver MUST
//!   NOT start processing the connection before it receives a complete and valid PROXY
//!   protocol header"; any error closes without a response), then the TLS handshake.
//! - Trusted forwarding (`--forwarded-allow-ips`): a request from a trusted peer that carries
//!   forwarding headers gets [`crate::forwarded::forwarded_view`]; headers that cannot be
//!   believed (conflicting, invalid) are a 400 through the outcome table.

use std::future::Future;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::access::PeerLabel;
use super::body::{BodyFail, BodyReader, Buffered, FeedEnd};
use super::idle::{Expiry, IdleSlot, Wait};
use super::io::{make_room, read_some, write_all};
use super::respond::{error_response_retry, Respond, Written};
use super::stream::Stream;
use super::Shared;
use crate::exchange::{BodyStream, ConnInfo, Request, RequestBody};
use crate::http1::{
    encode::CONTINUE_100, parse_head, BodyFraming, Parsed, RequestError, RequestHead,
};
use crate::metrics::OpenConnection;

/// `--protocol uwsgi` (a child module: it drives a [`Conn`] through the same exchange).
#[path = "uwsgi_conn.rs"]
mod uwsgi_conn;

/// Idle connections out of their task (a child module: it holds a [`Conn`]).
#[path = "park.rs"]
mod park;
use park::Parked;

/// Spare room reserved before a read while a head is incomplete.
const HEAD_READ: usize = 4 * 1024;
/// On shutdown, a connection accepted but still without its first request gets this long for
/// it instead of being closed at once: the client connected to send one, and closing now would
/// fail a request it may already have sent (seen as "connection closed before a response"
/// during reloads, when a worker stops while its listener queue is shared with new workers).
/// Idle keep-alive connections, which have been answered, still close at once.
pub(crate) const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// After an error response, how long and how much the connection keeps reading (and
/// discarding) before closing, so that unread request bytes do not make the kernel reset the
/// connection before the client has read the answer.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// What a connection holds for as long as it lives, dropped when it ends.
#[derive(Debug)]
#[allow(dead_code)] // the fields are never read: they matter by being dropped
pub(crate) struct ConnGuard {
    /// The server counts live connections by these senders.
    pub(crate) done: mpsc::Sender<()>,
    /// The connection's slot under `worker_connections`, if capped.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

/// Serves one accepted connection until it closes; `guard` is dropped at the end. Spawn the
/// returned future itself: wrapping it in another `async` block would store it twice in the
/// task (a captured future is kept apart from the one being awaited). (A plain fn returning
/// the future, so the arguments are not stored twice either.)
pub(crate) fn serve(
    shared: Arc<Shared>,
    stream: Stream,
    info: ConnInfo,
    guard: ConnGuard,
) -> impl Future<Output = ()> + Send {
    let conn = Conn::new(shared, stream, info);
    run(conn, guard, crate::metrics::connection_opened(), None)
}

/// The task of a connection: new (`resume` is `None`), or parked and now resumed (`park`).
#[allow(clippy::manual_async_fn)] // an `async fn` would store its by-value arguments twice
fn run(
    mut conn: Conn,
    guard: ConnGuard,
    open: OpenConnection,
    resume: Option<Resume>,
) -> impl Future<Output = ()> + Send {
    // `conn` and `guard` stay where the block captured them: moving them into an `async fn`'s
    // by-value arguments would store them twice in the task.
    async move {
        if conn.shared.config.protocol == crate::uwsgi::Protocol::Uwsgi {
            // Boxed like a request; one request, then the connection ends. Dispatched here, not
            // in `Conn::serve`, so the idle HTTP task does not grow by another await state.
            Box::pin(conn.serve_uwsgi()).await;
            return;
        }
        match conn.serve(resume).await {
            Served::Done => {}
            Served::H2 => {
                // Boxed: only an HTTP/2 connection holds hyper's state.
                let Conn {
                    shared,
                    stream,
                    info,
                    buf,
                    ..
                } = conn;
                Box::pin(super::h2::serve_stream(stream, buf, info, shared)).await;
                drop((guard, open));
            }
            Served::Park(at) => park::park(Parked::new(conn, guard, open, at)),
        }
    }
}

/// A connection's state between requests: all that an idle connection keeps, besides the
/// idle wait's timer and shutdown watch (see [`idle_wait`]).
pub(super) struct Conn {
    shared: Arc<Shared>,
    stream: Stream,
    info: ConnInfo,
    /// Read buffer: request heads and bodies are split off its front without copies.
    buf: BytesMut,
    /// Response heads and chunk-size lines; released while the connection is idle.
    wbuf: BytesMut,
}

/// A head (or uwsgi packet) did not arrive whole within the header timeout.
struct HeadTimedOut;

/// What happens after a request.
enum Next {
    KeepAlive,
    /// Close now: nothing was sent, or the close already lingered (`refuse`).
    Close,
    /// A response went out and the connection ends: half-close and drain first (`linger`), so
    /// pipelined bytes the client is still sending cannot turn the close into a reset that
    /// destroys the response in flight.
    Linger,
    /// Like `Linger`, for a client that said it will send nothing more (`Connection: close`, or
    /// HTTP/1.0 without keep-alive) and whose request was read to its end: the close lingers
    /// only when the client sent more anyway (see [`Conn::sent_more`]); otherwise it is
    /// immediate, as a well-behaved client's close is the common case.
    LingerIfSentMore,
}

/// How [`Conn::serve`] ended.
enum Served {
    /// The connection is done (closed, or to be closed by dropping it).
    Done,
    /// It goes to `h2` with the bytes read so far, having opened with the HTTP/2 preface
    /// (`http2`, h2c with prior knowledge) or negotiated `h2` by ALPN over TLS.
    H2,
    /// It has waited for a request long enough to be parked (`park`).
    Park(Resume),
}

/// Where a parked connection's wait resumes: its slot in the idle set (which keeps its
/// deadline) and whether it waits for its first request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resume {
    slot: u32,
    first: bool,
}

/// How a wait for the next request ended.
enum Idle {
    /// The request's first bytes are in the buffer.
    Request,
    /// The connection is done: idle timeout, EOF, shutdown, error (logged).
    Close,
    /// It is to be parked (only a wait started with `parkable`).
    Park(Resume),
}

/// Where a wait for the next request starts.
#[derive(Debug, Clone, Copy)]
enum WaitFrom {
    /// Afresh; `parkable`: the sweeper may ask to park the connection (not for uwsgi, whose
    /// connection ends after one request).
    Fresh { parkable: bool },
    /// In the idle-set slot it was parked in, which keeps its deadline.
    Parked(u32),
}

/// How an idle wait ended.
enum IdleEnd {
    /// The socket has bytes (or EOF, or an error) to read.
    Readable,
    TimedOut,
    ShuttingDown,
    /// The sweeper asked the connection to park.
    Park,
    Failed(io::Error),
}

/// Waits until `stream` is readable, `deadline` passes or the server shuts down, whichever
/// comes first; on shutdown a connection still waiting for its `first` request gets
/// [`FIRST_REQUEST_GRACE`] more. This is what every idle connection's task holds while it
/// waits, so it holds almost nothing: readiness goes through `poll_read_ready` (the waker is
/// kept in the socket's registration), the deadline and the shutdown through a slot in the
/// process's [`super::idle::IdleSet`], and no buffer is held.
///
/// A plain fn returning the future: an `async fn` would store its arguments twice (as
/// arguments, and as the captures of the polled closure) in every waiting connection's task.
fn idle_wait<'a, 's>(
    stream: &'a Stream,
    shared: &'a Shared,
    slot: &'a mut IdleSlot<'s>,
    deadline: Instant,
    first: bool,
) -> impl Future<Output = IdleEnd> + use<'a, 's> {
    std::future::poll_fn(move |cx| {
        match stream.poll_read_ready(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(IdleEnd::Readable),
            Poll::Ready(Err(e)) => return Poll::Ready(IdleEnd::Failed(e)),
            Poll::Pending => {}
        }
        let wait = if first {
            Wait::FirstRequest
        } else {
            Wait::NextRequest
        };
        shared
            .idle
            .poll_expiry(slot, deadline, wait, cx)
            .map(|end| match end {
                Expiry::TimedOut => IdleEnd::TimedOut,
                Expiry::ShuttingDown => IdleEnd::ShuttingDown,
                Expiry::Park => IdleEnd::Park,
            })
    })
}

impl Conn {
    /// A connection with no bytes read yet and no buffers.
    fn new(shared: Arc<Shared>, stream: Stream, info: ConnInfo) -> Conn {
        Conn {
            shared,
            stream,
            info,
            buf: BytesMut::new(),
            wbuf: BytesMut::new(),
        }
    }

    /// Serves requests until the connection is done, goes to HTTP/2 or parks; `resume`: it
    /// was parked, and waits on where it left off.
    async fn serve(&mut self, mut resume: Option<Resume>) -> Served {
        let mut first = match resume {
            Some(at) => at.first,
            None => {
                // Boxed like a request: only a connection being set up holds this state; and
                // only built when the listener has a PROXY header or TLS to go through first.
                let proxy_header = self.shared.config.proxy_protocol.expects_header()
                    && matches!(self.stream, Stream::Tcp(_) | Stream::Tls(_));
                if (proxy_header || matches!(self.stream, Stream::Tls(_)))
                    && !Box::pin(self.start(proxy_header)).await
                {
                    return Served::Done;
                }
                // ALPN chose `h2` (offered with `http2`, see `tls::alpn_protocols`).
                if matches!(&self.stream, Stream::Tls(tls) if tls.alpn_is_h2()) {
                    return Served::H2;
                }
                true
            }
        };
        loop {
            if self.buf.is_empty() {
                let from = match resume.take() {
                    Some(at) => WaitFrom::Parked(at.slot),
                    None => WaitFrom::Fresh { parkable: true },
                };
                match self.wait_idle(first, from).await {
                    Idle::Request => {}
                    Idle::Close => return Served::Done,
                    Idle::Park(at) => return Served::Park(at),
                }
            }
            if first && self.shared.config.http2 && super::h2::is_preface(&self.buf) {
                return Served::H2;
            }
            first = false;
            // Boxed: reading the head and the exchange (response batch, body feeder, timers)
            // take several KiB that exist only while a request is in flight; unboxed they
            // would be part of every connection's task, idle ones included. The task itself
            // is the idle state: this struct plus the idle wait.
            // Written into its allocation (`Box::write`) rather than moved there: `Box::pin`
            // copied the whole future, a few KiB, per request.
            let request = Box::into_pin(Box::write(Box::new_uninit(), self.request()));
            match request.await {
                Next::KeepAlive => {}
                Next::Close => return Served::Done,
                Next::LingerIfSentMore if !self.sent_more() => return Served::Done,
                Next::Linger | Next::LingerIfSentMore => {
                    // Boxed: lingering is rare next to idling, so its timers stay out of
                    // every connection's task.
                    Box::pin(self.linger()).await;
                    return Served::Done;
                }
            }
        }
    }

    /// What comes before the first request (see the module docs): the PROXY header, the TLS
    /// handshake. False: the connection is done (the reason was logged).
    async fn start(&mut self, proxy_header: bool) -> bool {
        let deadline = Instant::now() + self.shared.config.header_read();
        let mode = self.shared.config.proxy_protocol;
        if proxy_header {
            match tokio::time::timeout_at(deadline.into(), self.read_proxy_header(mode)).await {
                Ok(true) => {}
                Ok(false) => return false,
                Err(_) => {
                    log::debug!(
                        "{}: no PROXY header within the header timeout",
                        PeerLabel(&self.info)
                    );
                    return false;
                }
            }
        }
        if let Stream::Tls(tls) = &self.stream {
            // Bytes after the PROXY header are the start of the TLS handshake.
            if !self.buf.is_empty() {
                if let Err(e) = tls.feed(&self.buf) {
                    log::debug!("{}: TLS handshake failed: {e}", PeerLabel(&self.info));
                    return false;
                }
                self.buf = BytesMut::new();
            }
            match tokio::time::timeout_at(deadline.into(), tls.handshake()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    log::debug!("{}: TLS handshake failed: {e}", PeerLabel(&self.info));
                    return false;
                }
                Err(_) => {
                    log::debug!("{}: TLS handshake timeout", PeerLabel(&self.info));
                    return false;
                }
            }
            self.info.client_cert = tls.client_cert().map(Arc::new);
        }
        true
    }

    /// Reads and applies the PROXY header (`proxy_protocol`): REMOTE_ADDR/REMOTE_PORT and the
    /// local address become the header's. Bytes after it stay in the read buffer. False: the
    /// connection is closed, without a response.
    async fn read_proxy_header(&mut self, mode: crate::proxy_protocol::ProxyProtocolMode) -> bool {
        use crate::proxy_protocol::{parse, Parsed};
        loop {
            match parse(&mut self.buf, mode) {
                Ok(Parsed::Complete(header)) => {
                    let (client, local) = header.effective(self.info.peer, self.info.local);
                    self.info.peer = client;
                    self.info.local = local;
                    self.info.forwarding_trusted =
                        self.shared.config.forwarded_allow_ips.contains(client.ip());
                    return true;
                }
                Ok(Parsed::Partial) => {}
                Err(e) => {
                    log::debug!("{}: closing: {e}", PeerLabel(&self.info));
                    return false;
                }
            }
            // Raw bytes: the header precedes TLS.
            match self.stream.read_raw(&mut self.buf, HEAD_READ).await {
                Ok(0) => {
                    log::debug!(
                        "{}: the client closed the connection before a PROXY header",
                        PeerLabel(&self.info)
                    );
                    return false;
                }
                Ok(_) => {}
                Err(e) => {
                    log::debug!("{}: closing: {e}", PeerLabel(&self.info));
                    return false;
                }
            }
        }
    }

    /// One request whose first bytes are buffered: its head, body, hand-off and response.
    async fn request(&mut self) -> Next {
        match self.read_head().await {
            Some(head) => self.exchange(head, None).await,
            None => Next::Close,
        }
    }

    /// Parses the request head whose first bytes are buffered, reading more as needed. `None`:
    /// the connection is done (the reason was logged and, when the client must hear it,
    /// answered).
    async fn read_head(&mut self) -> Option<RequestHead> {
        // The header timeout runs from the first byte of this request (bytes are buffered now);
        // read only once a read is needed: a head that came whole needs no deadline.
        let mut deadline = None;
        loop {
            match parse_head(&mut self.buf, &self.shared.limits) {
                Ok(Parsed::Complete(head)) => return Some(head),
                Ok(Parsed::Partial) => {}
                Err(e) => {
                    log::debug!("{}: refused ({}): {e}", PeerLabel(&self.info), e.status());
                    self.refuse_with(e).await;
                    return None;
                }
            }
            let deadline = *deadline.get_or_insert_with(|| {
                crate::clock::coarse_now() + self.shared.config.header_read()
            });
            match self
                .read_more(deadline, "the client closed the connection mid-head")
                .await
            {
                Ok(true) => {}
                Ok(false) => return None,
                Err(HeadTimedOut) => {
                    log::debug!("{}: header timeout", PeerLabel(&self.info));
                    self.refuse_with(RequestError::HeaderTimeout).await;
                    return None;
                }
            }
        }
    }

    /// One read of more head (or uwsgi packet) bytes, before `deadline`. `Ok(false)`: the
    /// connection is done, logged as `closed` when the peer closed it.
    async fn read_more(&mut self, deadline: Instant, closed: &str) -> Result<bool, HeadTimedOut> {
        let read = read_some(&self.stream, &mut self.buf, HEAD_READ);
        match tokio::time::timeout_at(deadline.into(), read).await {
            Ok(Ok(0)) => {
                log::debug!("{}: {closed}", PeerLabel(&self.info));
                Ok(false)
            }
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => {
                log::debug!("{}: closing: {e}", PeerLabel(&self.info));
                Ok(false)
            }
            Err(_) => Err(HeadTimedOut),
        }
    }

    /// Between requests (buffer empty): waits for the first bytes of the next request, holding
    /// no buffer while it waits. False: the connection is done (idle timeout, EOF, shutdown,
    /// error).
    /// How long a connection may wait for its next request: the header timeout for the first,
    /// the keep-alive timeout after that.
    fn idle_limit(&self, first: bool) -> Duration {
        let config = &self.shared.config;
        if first {
            config.header_read()
        } else {
            config.keepalive()
        }
    }

    async fn wait_idle(&mut self, first: bool, from: WaitFrom) -> Idle {
        if self.wbuf.capacity() > 0 {
            self.wbuf = BytesMut::new();
        }
        let idle = &self.shared.idle;
        // One slot for the whole wait, spurious wake-ups included: its deadline stands.
        let (mut slot, deadline) = match from {
            WaitFrom::Fresh { parkable } => {
                let slot = if parkable {
                    idle.parkable_slot()
                } else {
                    idle.slot()
                };
                (slot, crate::clock::coarse_now() + self.idle_limit(first))
            }
            WaitFrom::Parked(n) => {
                let (slot, deadline, _) = idle.adopt(n);
                (slot, deadline)
            }
        };
        loop {
            // The buffer left by the previous request (if any) takes the first attempt; else a
            // buffer is only allocated once the socket is readable.
            if self.buf.capacity() == 0 {
                match idle_wait(&self.stream, &self.shared, &mut slot, deadline, first).await {
                    IdleEnd::Readable => {}
                    IdleEnd::Park => {
                        return match slot.detach() {
                            Some(slot) => Idle::Park(Resume { slot, first }),
                            // Unreachable: only a registered slot is asked to park.
                            None => Idle::Close,
                        };
                    }
                    IdleEnd::Failed(e) => {
                        log::debug!("{}: closing: {e}", PeerLabel(&self.info));
                        return Idle::Close;
                    }
                    IdleEnd::TimedOut => {
                        let limit = self.idle_limit(first);
                        log::debug!(
                            "{}: closing idle connection: no request within {limit:?}",
                            PeerLabel(&self.info)
                        );
                        return Idle::Close;
                    }
                    IdleEnd::ShuttingDown => {
                        log::debug!(
                            "{}: closing idle connection: shutting down",
                            PeerLabel(&self.info)
                        );
                        return Idle::Close;
                    }
                }
            }
            make_room(&mut self.buf, HEAD_READ);
            match self.stream.try_read_buf(&mut self.buf) {
                Ok(0) => return Idle::Close,
                Ok(_) => return Idle::Request,
                // Nothing yet: release the buffer and wait.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.buf = BytesMut::new(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("{}: closing: {e}", PeerLabel(&self.info));
                    return Idle::Close;
                }
            }
        }
    }

    /// Answers with the declared outcome of `e` and closes.
    async fn refuse_with(&mut self, e: RequestError) {
        let o = e.outcome();
        // Boxed: a rare path whose state (write, linger timers) should not enlarge every
        // connection's task.
        Box::pin(self.refuse_retry(o.status, o.reason, o.retry_after)).await;
    }

    /// Answers with a plain-text error and `Connection: close`, then lingers briefly.
    async fn refuse(&mut self, status: u16, reason: &str) {
        self.refuse_retry(status, reason, None).await;
    }

    /// [`Conn::refuse`] with an optional `Retry-After` (overload refusals).
    async fn refuse_retry(&mut self, status: u16, reason: &str, retry_after: Option<u32>) {
        crate::metrics::global().request_refused(status);
        self.wbuf.clear();
        error_response_retry(
            &mut self.wbuf,
            status,
            reason,
            &self.shared.server_header,
            retry_after,
        );
        let mut iov = [IoSlice::new(&self.wbuf)];
        let written = write_all(&self.stream, &mut iov, self.shared.config.write()).await;
        self.wbuf.clear();
        match written {
            Ok(()) => self.linger().await,
            Err(e) => log::debug!(
                "{}: writing the {status} response failed: {e}",
                PeerLabel(&self.info)
            ),
        }
    }

    /// Whether a client that said it sends no more requests sent more bytes anyway: bytes past
    /// its request already read, or bytes waiting in the socket now (asked of the kernel, not of
    /// the runtime's readiness, which may not have seen them yet). Closing with unread bytes
    /// makes the kernel send a reset that can destroy the response in flight (RFC 9112 §9.6),
    /// so those close in stages ([`Conn::linger`]); a client that sent nothing more is closed at
    /// once, sparing two reads and a wake-up per connection (nginx's `lingering_close on` makes
    /// the same call). Bytes sent after this check would meet a closed socket: RFC 9112 §9.6
    /// forbids that ("A client that sends a "close" connection option MUST NOT send further
    /// requests on that connection"). TLS always lingers (its close is a `close_notify`).
    fn sent_more(&self) -> bool {
        !self.buf.is_empty() || self.stream.bytes_may_wait()
    }

    /// Half-closes, then reads and drops what the client still sends (bounded), so the kernel
    /// does not answer unread bytes with a reset that could destroy the response in flight
    /// (RFC 9112 §9.6: close in stages, "to avoid the TCP reset problem").
    async fn linger(&mut self) {
        self.stream.shutdown_write();
        let (stream, buf) = (&self.stream, &mut self.buf);
        let drain = async {
            let mut seen = 0;
            loop {
                buf.clear();
                match read_some(stream, buf, HEAD_READ).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen += n,
                }
                if seen > LINGER_BYTES {
                    return;
                }
            }
        };
        // A stopping server does not wait for lingering clients.
        let mut stop = self.shared.shutdown.watch();
        tokio::select! {
            _ = tokio::time::timeout(LINGER_TIME, drain) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }

    /// One request: body, hand-off, response. Decides whether the connection goes on.
    /// `preset`: what the request's front server said, decided before the head (uwsgi).
    async fn exchange(
        &mut self,
        head: RequestHead,
        preset: Option<Box<crate::forwarded::ForwardedView>>,
    ) -> Next {
        let shared = Arc::clone(&self.shared);
        // Built-in middleware: X-Request-ID now; compression filters the response below.
        let (head, filter) = shared.middleware.prepare(head);
        let config = &shared.config;
        let version = head.version();
        let is_head = head.is_head();
        let wants_keep_alive = head.wants_keep_alive();
        let log_head = shared.access.as_ref().map(|_| head.clone());
        let started = std::time::Instant::now();
        let limit = config.limit_request_body;
        // Metrics: in flight until this function returns, whichever way.
        let _in_flight = crate::metrics::request_started();
        let method = crate::metrics::method_index(head.method());

        // Forwarding headers from a trusted peer: believed, or a 400 when they cannot be.
        let forwarded = if preset.is_some() {
            preset
        } else if self.info.forwarding_trusted && has_forwarding_header(&head) {
            match crate::forwarded::forwarded_view_trusted(
                &config.forwarded_allow_ips,
                head.headers(),
            ) {
                Ok(view) => Some(Box::new(view)),
                Err(e) => {
                    log::debug!("{}: refused (400): {e}", PeerLabel(&self.info));
                    self.refuse_with(e.into()).await;
                    return Next::Close;
                }
            }
        } else {
            None
        };

        // The body: read whole when small, else streamed while the app reads.
        let mut reader = None;
        let mut stream_first = None;
        let body = match head.framing() {
            BodyFraming::None | BodyFraming::Length(0) => RequestBody::Empty,
            BodyFraming::Length(n) => {
                if limit != 0 && n > limit {
                    log::debug!(
                        "{}: refused (413): Content-Length {n} over limit_request_body {limit}",
                        PeerLabel(&self.info)
                    );
                    self.refuse_with(RequestError::BodyTooLarge).await;
                    return Next::Close;
                }
                if !self.send_continue(&head).await {
                    return Next::Close;
                }
                let mut r = BodyReader::length(n, limit, config.body_read());
                if n <= config.max_buffered_body as u64 {
                    match r
                        .read_buffered(&self.stream, &mut self.buf, config.max_buffered_body)
                        .await
                    {
                        Ok(Buffered::Whole(b)) => RequestBody::Full(b),
                        // Unreachable for a length at most the bound; stream it if it ever is.
                        Ok(Buffered::Partial(b)) => {
                            stream_first = Some(b);
                            reader = Some(r);
                            RequestBody::Empty
                        }
                        Err(fail) => return self.body_failed(fail).await,
                    }
                } else {
                    reader = Some(r);
                    RequestBody::Empty
                }
            }
            BodyFraming::Chunked => {
                if !self.send_continue(&head).await {
                    return Next::Close;
                }
                let mut r = BodyReader::chunked(limit, config.body_read());
                match r
                    .read_buffered(&self.stream, &mut self.buf, config.max_buffered_body)
                    .await
                {
                    Ok(Buffered::Whole(b)) if b.is_empty() => RequestBody::Empty,
                    Ok(Buffered::Whole(b)) => RequestBody::Full(b),
                    Ok(Buffered::Partial(b)) => {
                        stream_first = Some(b);
                        reader = Some(r);
                        RequestBody::Empty
                    }
                    Err(fail) => return self.body_failed(fail).await,
                }
            }
        };
        let (body, feed_tx) = match &reader {
            Some(_) => {
                let hint = match head.framing() {
                    BodyFraming::Length(n) => {
                        Some(n - stream_first.as_ref().map_or(0, |b| b.len() as u64))
                    }
                    BodyFraming::None | BodyFraming::Chunked => None,
                };
                let (tx, stream) = BodyStream::channel(hint);
                (RequestBody::Stream(stream), Some(tx))
            }
            None => (body, None),
        };

        // Static files (`--static`): answered here, the app never sees the request.
        let static_part = match &shared.middleware.statics {
            Some(files) => files.answer(&head).await,
            None => None,
        };
        // Hand-off, unless too many requests already wait for an application thread.
        if static_part.is_none() && shared.queue_full(&self.info) {
            self.refuse_with(RequestError::QueueFull).await;
            return Next::Close;
        }
        let request = Box::new(Request {
            head,
            body,
            conn: self.info.clone(),
            forwarded,
        });
        // With a queue timeout, the job can be withdrawn while no thread has taken it.
        let Ok((mut rx, claim)) = shared.hand_off(request, filter, static_part) else {
            self.refuse(503, "Service Unavailable").await;
            return Next::Close;
        };

        // The response, while the body (if streamed) keeps flowing to the app.
        let mut respond = Respond {
            stream: &self.stream,
            wbuf: &mut self.wbuf,
            peer: PeerLabel(&self.info),
            version,
            is_head,
            keep_alive: wants_keep_alive,
            shutdown: &shared.shutdown,
            server: &shared.server_header,
            timeout: config.write(),
            log_headers: shared
                .access
                .as_ref()
                .filter(|a| a.needs_response_headers())
                .map(|_| Vec::new()),
        };
        // One `select!` for both cases (no streamed body: the feed side never completes), so
        // the response future exists once in this state machine.
        let mut feed_end = None;
        // `None`: the request waited `queue_timeout` for a thread and was withdrawn.
        let written: Option<Written> = {
            let (stream, buf, first) = (&self.stream, &mut self.buf, stream_first.take());
            // Pinned where they are built (`pin!` of the call), not built and then moved into
            // a pinned slot (`tokio::pin!` of a binding), which copied the response future
            // per request.
            let mut feed = std::pin::pin!(async {
                match (&mut reader, feed_tx) {
                    (Some(r), Some(tx)) => r.feed(stream, buf, tx, first).await,
                    _ => std::future::pending().await,
                }
            });
            let mut write = std::pin::pin!(respond.write(&mut rx));
            let mut queue_timer =
                std::pin::pin!(shared.queue_timed_out(&self.info, claim.as_ref()));
            loop {
                tokio::select! {
                    biased;
                    w = &mut write => break Some(w),
                    end = &mut feed, if feed_end.is_none() => feed_end = Some(end),
                    () = &mut queue_timer => break None,
                }
            }
        };
        let written = match written {
            Some(w) => w,
            None => respond.refused(&RequestError::QueueTimeout).await,
        };
        // From here on the app's `send` fails: nobody writes for this request any more.
        drop(rx);

        let mut reuse = written.reuse && !shared.shutting_down();
        if let Some(r) = &mut reader {
            match feed_end {
                Some(FeedEnd::Complete) => {}
                Some(FeedEnd::Failed(fail)) => {
                    log::debug!(
                        "{}: closing after the response: {fail}",
                        PeerLabel(&self.info)
                    );
                    reuse = false;
                }
                Some(FeedEnd::Abandoned) | None => {
                    if reuse && !r.is_done() {
                        reuse = r.drain(&self.stream, &mut self.buf).await;
                        if !reuse {
                            log::debug!(
                                "{}: closing: the application left the request body unread",
                                PeerLabel(&self.info)
                            );
                        }
                    }
                }
            }
        }

        let duration = started.elapsed();
        crate::metrics::global().request_done(method, written.status, duration);
        if let (Some(access), Some(h)) = (&shared.access, &log_head) {
            access.log(&super::access::Record {
                conn: &self.info,
                head: h,
                status: written.status,
                body_bytes: written.body_bytes,
                duration,
                response_headers: respond.log_headers.as_deref().unwrap_or_default(),
            });
        }
        if reuse {
            Next::KeepAlive
        } else if !wants_keep_alive && reader.as_ref().is_none_or(|r| r.is_done()) {
            Next::LingerIfSentMore
        } else {
            Next::Linger
        }
    }

    /// Sends `100 Continue` when the client waits for it. False: the connection failed.
    async fn send_continue(&mut self, head: &RequestHead) -> bool {
        if !head.expects_continue() {
            return true;
        }
        let mut iov = [IoSlice::new(CONTINUE_100)];
        match write_all(&self.stream, &mut iov, self.shared.config.write()).await {
            Ok(()) => true,
            Err(e) => {
                log::debug!(
                    "{}: writing 100 Continue failed: {e}",
                    PeerLabel(&self.info)
                );
                false
            }
        }
    }

    /// A buffered body could not be read (the app was not called): answer when it makes sense.
    async fn body_failed(&mut self, fail: BodyFail) -> Next {
        log::debug!("{}: closing: {fail}", PeerLabel(&self.info));
        match fail {
            BodyFail::Gone => {}
            BodyFail::Timeout => self.refuse_with(RequestError::BodyTimeout).await,
            BodyFail::Invalid { status, reason } => self.refuse(status, reason).await,
        }
        Next::Close
    }
}
/// The request carries a header [`crate::forwarded::forwarded_view`] reads (a first-byte test
/// keeps this to one comparison for most fields).
fn has_forwarding_header(head: &RequestHead) -> bool {
    head.headers().any(|(name, _)| {
        matches!(name.first(), Some(b'f' | b'F' | b'x' | b'X'))
            && crate::forwarded::is_forwarding_header(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's task is as big as its future, idle or not (the per-request state
    /// is boxed): keep it small, the idle-connection memory budget depends on it.
    #[test]
    fn connection_task_stays_small() {
        fn size<F: std::future::Future>(_: &F) -> usize {
            std::mem::size_of::<F>()
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (jobs, _rx) = crate::exchange::job_queue();
            let (_stop, shutdown) = crate::server::Stopping::for_test();
            let limits = crate::http1::HeadLimits {
                request_line: 100,
                fields: 10,
                field_size: 100,
                head: 1000,
            };
            let shared = Arc::new(Shared {
                config: Arc::default(),
                limits,
                access: None,
                jobs,
                shutdown,
                server_header: Vec::new(),
                queue_full_warn: crate::log::RateLimited::new(Duration::from_secs(1)),
                queue_timeout_warn: crate::log::RateLimited::new(Duration::from_secs(1)),
                middleware: Default::default(),
                idle: Default::default(),
                runtime: tokio::runtime::Handle::current(),
            });
            let (done, _) = mpsc::channel(1);
            let mut conn = Conn {
                shared: Arc::clone(&shared),
                stream: Stream::Tcp(tokio::net::TcpStream::connect(addr).await.unwrap()),
                info: ConnInfo::new(addr, addr, "http"),
                buf: BytesMut::new(),
                wbuf: BytesMut::new(),
            };
            // The per-request state is boxed once per request; keep that allocation modest.
            let request = conn.request();
            assert!(
                size(&request) <= 6144,
                "request future is {} bytes",
                size(&request)
            );
            drop(request);
            let guard = ConnGuard { done, permit: None };
            let task = serve(
                shared,
                Stream::Tcp(stream),
                ConnInfo::new(addr, addr, "http"),
                guard,
            );
            // 416 bytes in a release build: with tokio's task header and trailer, a 512-byte
            // task (tokio aligns tasks to 128 bytes), which with the socket's registration
            // (256) is 896 bytes per idle connection. Past 416 the task becomes 640 bytes and
            // mimalloc serves a 128-aligned 640 from a larger class. The idle wait's deadline
            // and shutdown live in `idle::IdleSet`, not here.
            // A debug build lays the future out a little larger (424 bytes).
            let budget = if cfg!(debug_assertions) { 448 } else { 416 };
            assert!(
                size(&task) <= budget,
                "connection future is {} bytes",
                size(&task)
            );
        });
    }
}
