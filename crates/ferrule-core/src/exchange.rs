//! The hand-off between the I/O side (tokio threads, never the GIL) and the application threads.
//!
//! A connection task parses a request, reads its body (fully, up to
//! [`crate::config::ServerConfig::max_buffered_body`]; past that the body streams), and pushes a
//! [`Job`] into the job queue ([`job_queue`]). An application thread takes the job with
//! [`JobReceiver::recv`] (blocking; the Python side calls it with the GIL released), runs the app,
//! and sends the response back as [`ResponsePart`]s through the job's [`Responder`]. The
//! connection task reads them from its [`PartReceiver`] and writes them while the application
//! thread moves on; the channel is bounded ([`RESPONSE_CHANNEL_PARTS`]), so a slow reader pushes
//! back on the app instead of growing memory.
//!
//! Almost every response is one part (`Start { end: true }` for a list body, `StartFile`,
//! `Refused`), so the response channel is built lazily: the first part travels through a
//! one-shot slot (`tokio::sync::oneshot`, one allocation), and only a first part that does not
//! end the response brings a bounded mpsc channel into being, whose receiver travels with that
//! part and carries the rest. A one-part response thus never pays for the mpsc (its creation,
//! its block allocation, its receiver's polling and teardown).
//!
//! Nothing here takes the GIL or knows about Python: the binding crate (`ferrule-py`) builds the
//! environ from [`Request`] and turns the app's answer into [`ResponsePart`]s.

use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::head_bytes::HeadBytes;
use crate::http1::{RequestError, RequestHead};

/// How many response parts may wait between an application thread and its connection before the
/// application thread blocks in [`Responder::send`] (besides the first part, which travels on its
/// own). Default 16: with typical 1-64 KiB chunks that bounds the buffered response to about
/// 1 MiB per in-flight request.
pub const RESPONSE_CHANNEL_PARTS: usize = 16;

/// How many body chunks may wait between a connection task and an application thread reading a
/// streamed request body (each chunk is at most one socket read, 64 KiB).
pub const BODY_CHANNEL_CHUNKS: usize = 8;

/// Where a request came from and which listener took it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address (`REMOTE_ADDR`/`REMOTE_PORT`).
    pub peer: SocketAddr,
    /// The local address the connection was accepted on (`SERVER_NAME` fallback, `SERVER_PORT`).
    pub local: SocketAddr,
    /// `"http"` or `"https"` (`wsgi.url_scheme`).
    pub scheme: &'static str,
    /// The connection came over a Unix socket: `peer` and `local` are placeholders
    /// (`0.0.0.0:0`); `REMOTE_ADDR` is empty and `REMOTE_PORT` absent (as in gunicorn).
    pub unix: bool,
    /// The peer may set forwarding headers (`--forwarded-allow-ips`; a Unix socket peer always
    /// may): when false, [`crate::forwarded::FORWARDING_HEADERS`] are removed before the app
    /// sees the request.
    pub forwarding_trusted: bool,
    /// Over TLS, the client's verified certificate (mutual TLS), `None` when it sent none.
    pub client_cert: Option<Arc<ClientCert>>,
    /// `--protocol uwsgi`: what the front server's packet says that the server-side head
    /// cannot (for the access log; the app's environ comes from the packet itself).
    pub uwsgi: Option<UwsgiFacts>,
}

/// What a uwsgi packet says about its request beyond the server-side HTTP/1.0 head (which only
/// frames the reply): the client's protocol and which client variables it had. Small and
/// `Copy`, since it travels in every [`ConnInfo`] (it fits in the struct's padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UwsgiFacts {
    /// `SERVER_PROTOCOL` (`HTTP/d` or `HTTP/d.d`) as its two digits (`None`: no minor).
    pub version: (u8, Option<u8>),
    /// The packet had `REMOTE_ADDR` (then [`ConnInfo::peer`] holds it) and `REMOTE_PORT`.
    pub remote_addr: bool,
    pub remote_port: bool,
}

impl ConnInfo {
    /// A TCP connection's info: not Unix, forwarding headers not trusted, no client
    /// certificate.
    pub fn new(peer: SocketAddr, local: SocketAddr, scheme: &'static str) -> ConnInfo {
        ConnInfo {
            peer,
            local,
            scheme,
            unix: false,
            forwarding_trusted: false,
            client_cert: None,
            uwsgi: None,
        }
    }
}

/// The client certificate of a mutual-TLS connection, as the environ shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// `SSL_CLIENT_S_DN`: the subject as an RFC 4514 string.
    pub subject: String,
}

/// A request ready for the application.
#[derive(Debug)]
pub struct Request {
    /// The parsed head; its byte slices point into the connection's read buffer (zero-copy).
    pub head: RequestHead,
    pub body: RequestBody,
    pub conn: ConnInfo,
    /// What a trusted proxy's forwarding headers say (`--forwarded-allow-ips`), when it sent
    /// any; `None` otherwise.
    pub forwarded: Option<Box<crate::forwarded::ForwardedView>>,
}

/// The request body as the application will read it through `wsgi.input`.
#[derive(Debug)]
pub enum RequestBody {
    /// No body (no Content-Length, or `Content-Length: 0`).
    Empty,
    /// The whole body, read before the application was called (de-chunked when it was chunked).
    Full(Bytes),
    /// A body larger than `max_buffered_body`: chunks arrive while the application reads.
    Stream(BodyStream),
}

/// Why a streamed body could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The client closed the connection or the read timed out before the body was complete.
    Incomplete,
    /// The body broke the framing rules or a limit (the connection answers with this status).
    Invalid { status: u16, reason: &'static str },
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Incomplete => f.write_str("request body incomplete: the client went away"),
            BodyError::Invalid { status, reason } => {
                write!(f, "request body rejected ({status}): {reason}")
            }
        }
    }
}

impl std::error::Error for BodyError {}

/// The receiving end of a streamed request body. Owned by the application thread.
///
/// The connection marks the end of the body with an empty chunk ([`BodyStream::END`]); a channel
/// that closes without it was cut off (the connection went away), which
/// [`BodyStream::blocking_next`] reports as [`BodyError::Incomplete`], never as a short body.
#[derive(Debug)]
pub struct BodyStream {
    pub(crate) rx: tokio::sync::mpsc::Receiver<Result<Bytes, BodyError>>,
    /// Bytes still expected when the length is known (Content-Length), `None` for chunked.
    pub remaining_hint: Option<u64>,
    /// The end marker arrived.
    finished: bool,
}

impl BodyStream {
    /// Builds a stream and the sender the connection task feeds it with.
    pub fn channel(
        remaining_hint: Option<u64>,
    ) -> (
        tokio::sync::mpsc::Sender<Result<Bytes, BodyError>>,
        BodyStream,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(BODY_CHANNEL_CHUNKS);
        (
            tx,
            BodyStream {
                rx,
                remaining_hint,
                finished: false,
            },
        )
    }

    /// What the connection sends after the last body chunk.
    pub const END: Bytes = Bytes::new();

    /// Blocks until the next chunk arrives. `Ok(None)` is the end of the body.
    /// Must not be called from an async context (it blocks the thread).
    pub fn blocking_next(&mut self) -> Result<Option<Bytes>, BodyError> {
        if self.finished {
            return Ok(None);
        }
        match self.rx.blocking_recv() {
            Some(Ok(chunk)) if chunk.is_empty() => {
                self.finished = true;
                Ok(None)
            }
            Some(Ok(chunk)) => Ok(Some(chunk)),
            Some(Err(e)) => Err(e),
            None => Err(BodyError::Incomplete),
        }
    }
}

/// The status line and headers of a response, as the application gave them.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    /// The status code, parsed from `status`.
    pub code: u16,
    /// The full status as the app gave it, e.g. `b"200 OK"` (validated by the binding: three
    /// digits, a space, a reason without CR/LF).
    pub status: HeadBytes,
    /// Header names and values in the app's order and case, validated by the binding (latin-1,
    /// no CR/LF/NUL, no hop-by-hop names).
    pub headers: Vec<(HeadBytes, HeadBytes)>,
}

/// A file the application handed back through `wsgi.file_wrapper`, streamed by Rust.
#[derive(Debug)]
pub struct FileBody {
    pub file: File,
    /// Where to start reading (the file's position when it was wrapped).
    pub offset: u64,
    /// How many bytes to send; `None` = to the end of the file.
    pub len: Option<u64>,
}

/// One step of a response, from the application thread to the connection.
#[derive(Debug)]
pub enum ResponsePart {
    /// The head with the first non-empty body chunk (PEP 3333: headers go out with the first
    /// non-empty chunk or at the end). `end: true` means `first` is the whole body: the connection
    /// then frames it with a Content-Length if the app gave none (no chunking for one-element lists).
    Start {
        head: ResponseHead,
        first: Bytes,
        end: bool,
    },
    /// A head followed by a file body; the response ends after it.
    StartFile { head: ResponseHead, file: FileBody },
    /// More body.
    Body(Bytes),
    /// The response is complete.
    End,
    /// The application failed after the head was sent: close the connection without finishing
    /// the body, so the client sees a truncated response rather than a wrong one.
    Abort,
    /// The request was refused before the application ran (e.g. a binding that cannot run it):
    /// the connection answers with the error's declared outcome and closes. Sent instead of
    /// `Start`, never after it.
    Refused(RequestError),
}

/// The client closed the connection (or it was torn down); further parts are pointless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientGone;

impl std::fmt::Display for ClientGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("client disconnected")
    }
}

impl std::error::Error for ClientGone {}

impl ResponsePart {
    /// True for a part after which the response has nothing more: it then travels alone
    /// through the one-shot slot when it is the first one.
    fn ends_response(&self) -> bool {
        match self {
            ResponsePart::Start { end, .. } => *end,
            ResponsePart::Body(_) => false,
            ResponsePart::StartFile { .. }
            | ResponsePart::End
            | ResponsePart::Abort
            | ResponsePart::Refused(_) => true,
        }
    }
}

/// What travels through the one-shot slot: the first part and, when more parts follow, the
/// receiver of the channel that carries them.
#[derive(Debug)]
struct FirstPart {
    part: ResponsePart,
    rest: Option<mpsc::Receiver<ResponsePart>>,
}

/// The application thread's handle to answer one request.
///
/// Used through `&self` (the binding shares it behind an `Arc`): the first part goes through
/// the one-shot slot, under a lock that is never contended in practice (one thread answers a
/// request) and never held while blocking; later parts go through the bounded channel the first
/// one created. A part sent after a part that ended the response is refused as
/// [`ClientGone`] (there is nobody left to read it; the binding never sends one).
#[derive(Debug)]
pub struct Responder {
    /// The one-shot slot, until the first part took it.
    first: Mutex<Option<oneshot::Sender<FirstPart>>>,
    /// The channel for the parts after the first, once a first part that does not end the
    /// response created it. Set under the `first` lock, before the lock is released.
    rest: OnceLock<mpsc::Sender<ResponsePart>>,
}

/// Where a part goes, as decided by [`Responder::send_first`].
enum Route {
    /// It was the first part and went through the one-shot slot.
    Sent,
    /// The receiver is gone (or the response already ended through the slot).
    Gone,
    /// The slot was used already: the part goes through the channel, if there is one.
    Rest(ResponsePart),
}

impl Responder {
    /// Builds a responder and the receiver its connection task reads.
    pub fn channel() -> (Responder, PartReceiver) {
        let (tx, rx) = oneshot::channel();
        let responder = Responder {
            first: Mutex::new(Some(tx)),
            rest: OnceLock::new(),
        };
        (
            responder,
            PartReceiver {
                stage: Stage::First(rx),
            },
        )
    }

    /// The one-shot slot's lock; a holder that panicked left it consistent (every update is
    /// one `take`), so a poisoned lock is recovered.
    fn slot(&self) -> MutexGuard<'_, Option<oneshot::Sender<FirstPart>>> {
        self.first
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `part` through the one-shot slot if it is the first (see [`Responder::through_slot`]).
    fn send_first(&self, part: ResponsePart) -> Route {
        if self.rest.get().is_some() {
            return Route::Rest(part);
        }
        Responder::through_slot(&mut self.slot(), &self.rest, part)
    }

    /// Sends `part` through the one-shot `slot` if it is still there; a first part that does
    /// not end the response creates the channel for the rest, hands its receiver over with it
    /// and sets `rest`. Another call that took the slot first set `rest` (if the response goes
    /// on) before letting go of the slot: the part then goes there.
    fn through_slot(
        slot: &mut Option<oneshot::Sender<FirstPart>>,
        rest: &OnceLock<mpsc::Sender<ResponsePart>>,
        part: ResponsePart,
    ) -> Route {
        let Some(tx) = slot.take() else {
            return Route::Rest(part);
        };
        if part.ends_response() {
            return match tx.send(FirstPart { part, rest: None }) {
                Ok(()) => Route::Sent,
                Err(_) => Route::Gone,
            };
        }
        let (rest_tx, rest_rx) = mpsc::channel(RESPONSE_CHANNEL_PARTS);
        if tx
            .send(FirstPart {
                part,
                rest: Some(rest_rx),
            })
            .is_err()
        {
            return Route::Gone;
        }
        // Whoever holds the slot (its lock, or `&mut`) is the only one setting it.
        let _ = rest.set(rest_tx);
        Route::Sent
    }

    /// [`Responder::try_send`] through `&mut self`: the one-shot slot is reached without its
    /// lock (no atomic operation; the binding calls this under its own response lock).
    pub fn try_send_mut(&mut self, part: ResponsePart) -> Result<(), TrySendError> {
        let route = if self.rest.get().is_some() {
            Route::Rest(part)
        } else {
            let slot = self
                .first
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Responder::through_slot(slot, &self.rest, part)
        };
        self.routed(route)
    }

    /// A handle on the channel of the parts after the first, to block on while the
    /// responder's owner lets go of it ([`PartSender::send`]); `None` before the first part
    /// went out or once the response ended through the slot.
    pub fn part_sender(&self) -> Option<PartSender> {
        self.rest.get().cloned().map(PartSender)
    }

    /// Sends one part; blocks while the connection's buffer is full (call with the GIL released).
    /// Must not be called from an async context.
    pub fn send(&self, part: ResponsePart) -> Result<(), ClientGone> {
        match self.send_first(part) {
            Route::Sent => Ok(()),
            Route::Gone => Err(ClientGone),
            Route::Rest(part) => match self.rest.get() {
                Some(tx) => tx.blocking_send(part).map_err(|_| ClientGone),
                None => Err(ClientGone),
            },
        }
    }

    /// Sends without blocking when there is room; gives the part back when the buffer is full so
    /// the caller can release the GIL and call [`Responder::send`]. The first part always has
    /// room.
    pub fn try_send(&self, part: ResponsePart) -> Result<(), TrySendError> {
        self.routed(self.send_first(part))
    }

    /// Where a part [`Responder::through_slot`] did not send goes: into the channel if it has
    /// room.
    fn routed(&self, route: Route) -> Result<(), TrySendError> {
        use tokio::sync::mpsc::error::TrySendError as E;
        match route {
            Route::Sent => Ok(()),
            Route::Gone => Err(TrySendError::Gone),
            Route::Rest(part) => match self.rest.get() {
                Some(tx) => tx.try_send(part).map_err(|e| match e {
                    E::Full(part) => TrySendError::Full(part),
                    E::Closed(_) => TrySendError::Gone,
                }),
                None => Err(TrySendError::Gone),
            },
        }
    }

    /// True once the connection has gone away (its [`PartReceiver`] was dropped), and once a
    /// part that ended the response went out (nothing more can be delivered).
    pub fn is_closed(&self) -> bool {
        if let Some(tx) = self.rest.get() {
            return tx.is_closed();
        }
        match &*self.slot() {
            Some(tx) => tx.is_closed(),
            // The slot was used: `rest` is set now if the response went on.
            None => self.rest.get().is_none_or(mpsc::Sender::is_closed),
        }
    }
}

/// The connection's end of a response: the first part from the one-shot slot, then (when the
/// first part did not end the response) the rest from the bounded channel that came with it.
///
/// Dropping it closes both, so the application's next [`Responder::send`] or
/// [`Responder::try_send`] fails and a `send` blocked on a full channel wakes with
/// [`ClientGone`].
#[derive(Debug)]
pub struct PartReceiver {
    stage: Stage,
}

#[derive(Debug)]
enum Stage {
    /// Waiting for the first part.
    First(oneshot::Receiver<FirstPart>),
    /// The parts after the first.
    Rest(mpsc::Receiver<ResponsePart>),
    /// The response ended through the slot, or the responder went away without a part.
    Done,
}

impl PartReceiver {
    /// A receiver reading a plain channel (the response filter's output, tests).
    pub fn from_channel(rx: mpsc::Receiver<ResponsePart>) -> PartReceiver {
        PartReceiver {
            stage: Stage::Rest(rx),
        }
    }

    /// Moves on from the one-shot slot once it produced `first`.
    fn took(&mut self, first: FirstPart) -> ResponsePart {
        self.stage = match first.rest {
            Some(rx) => Stage::Rest(rx),
            None => Stage::Done,
        };
        first.part
    }

    /// The next part; `None` once the response is over or the responder is gone without
    /// ending it (the application thread died, the job was dropped).
    pub async fn recv(&mut self) -> Option<ResponsePart> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// [`PartReceiver::recv`] as a poll, for hand-written futures and bodies.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<ResponsePart>> {
        match &mut self.stage {
            Stage::First(rx) => match std::pin::Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(first)) => Poll::Ready(Some(self.took(first))),
                Poll::Ready(Err(_)) => {
                    self.stage = Stage::Done;
                    Poll::Ready(None)
                }
                Poll::Pending => Poll::Pending,
            },
            Stage::Rest(rx) => rx.poll_recv(cx),
            Stage::Done => Poll::Ready(None),
        }
    }

    /// The next part if one is there now, without waiting (tokio's mpsc semantics:
    /// `Disconnected` once nothing more can come).
    pub fn try_recv(&mut self) -> Result<ResponsePart, mpsc::error::TryRecvError> {
        use mpsc::error::TryRecvError;
        match &mut self.stage {
            Stage::First(rx) => match rx.try_recv() {
                Ok(first) => Ok(self.took(first)),
                Err(oneshot::error::TryRecvError::Empty) => Err(TryRecvError::Empty),
                Err(oneshot::error::TryRecvError::Closed) => {
                    self.stage = Stage::Done;
                    Err(TryRecvError::Disconnected)
                }
            },
            Stage::Rest(rx) => rx.try_recv(),
            Stage::Done => Err(TryRecvError::Disconnected),
        }
    }
}

/// The channel of a response's parts after the first, held apart from its [`Responder`] so a
/// full channel can be waited on without the lock the responder is kept under.
#[derive(Debug)]
pub struct PartSender(mpsc::Sender<ResponsePart>);

impl PartSender {
    /// Sends one part, blocking while the channel is full (call with the GIL released; not
    /// from an async context).
    pub fn send(&self, part: ResponsePart) -> Result<(), ClientGone> {
        self.0.blocking_send(part).map_err(|_| ClientGone)
    }
}

/// Why [`Responder::try_send`] did not send.
#[derive(Debug)]
pub enum TrySendError {
    Full(ResponsePart),
    Gone,
}

/// One request for an application thread. The request is boxed where it is built, so the job
/// moves through the queue and into the application thread as a pointer, never copied whole
/// (a `Request` is a few hundred bytes: moving it by value cost ~460 instructions of copies per
/// request on its way).
#[derive(Debug)]
pub struct Job {
    pub request: Box<Request>,
    pub responder: Responder,
}

/// A job in the queue, with the claim its connection may use to withdraw it.
#[derive(Debug)]
struct Queued {
    job: Job,
    /// Set by whichever side comes first: the application thread taking the job, or the
    /// connection withdrawing it ([`QueueClaim::withdraw`]). `None`: cannot be withdrawn.
    claim: Option<Arc<AtomicBool>>,
}

/// Creates the queue between connection tasks and application threads. Unbounded in slots, but
/// the jobs in it are bounded by the open connections (one job per connection at a time:
/// pipelined requests are handed over one after the other) and by the driver's
/// `max_queued_requests` check. When every [`JobSender`] is dropped (the server stopped),
/// receivers drain what is left and then get `None`.
///
/// A slot holds a [`Job`] (its request boxed, so a few words), and the channel's blocks of 31
/// slots, which it allocates and zeroes as the queue turns over, stay small (with the request
/// in the slot, zeroing them cost more per request than a box).
pub fn job_queue() -> (JobSender, JobReceiver) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (JobSender { tx }, JobReceiver { rx })
}

/// The connection side of the job queue.
#[derive(Debug, Clone)]
pub struct JobSender {
    tx: crossbeam_channel::Sender<Queued>,
}

impl JobSender {
    /// Queues a job; gives it back if every receiver is gone.
    // The job is given back whole on purpose (the caller answers its request); the error path
    // is rare (no application thread left), so its size does not matter.
    #[allow(clippy::result_large_err)]
    pub fn push(&self, job: Job) -> Result<(), Job> {
        self.tx
            .send(Queued { job, claim: None })
            .map_err(|e| e.0.job)
    }

    /// Like [`JobSender::push`], returning a claim with which the connection can take the job
    /// back while no application thread has taken it yet (queue timeout).
    #[allow(clippy::result_large_err)]
    pub fn push_claimable(&self, job: Job) -> Result<QueueClaim, Job> {
        let claim = Arc::new(AtomicBool::new(false));
        self.tx
            .send(Queued {
                job,
                claim: Some(Arc::clone(&claim)),
            })
            .map_err(|e| e.0.job)?;
        Ok(QueueClaim { claim })
    }

    /// How many jobs wait for an application thread.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }
}

/// A connection's hold on a job it queued (see [`JobSender::push_claimable`]).
#[derive(Debug)]
pub struct QueueClaim {
    claim: Arc<AtomicBool>,
}

impl QueueClaim {
    /// Takes the job back if no application thread has taken it: true = the app will never
    /// run it (the thread that dequeues it drops it) and the connection answers for it.
    pub fn withdraw(&self) -> bool {
        !self.claim.swap(true, Ordering::AcqRel)
    }
}

/// An application thread's end of the job queue. Jobs their connection withdrew (queue
/// timeout, answered 503 by the connection) are dropped here without reaching the caller.
#[derive(Debug, Clone)]
pub struct JobReceiver {
    rx: crossbeam_channel::Receiver<Queued>,
}

impl JobReceiver {
    /// Blocks until a job arrives; `None` once the server has stopped and the queue is drained.
    /// Call with the GIL released.
    pub fn recv(&self) -> Option<Job> {
        loop {
            if let Some(job) = take(self.rx.recv().ok()?) {
                return Some(job);
            }
        }
    }

    /// A job if one is queued now, without blocking, so a thread that just finished a request
    /// takes the next one without releasing and re-taking the GIL. `None`: the queue is empty
    /// (or the server stopped; [`JobReceiver::recv`] tells which).
    pub fn try_recv(&self) -> Option<Job> {
        while let Ok(queued) = self.rx.try_recv() {
            if let Some(job) = take(queued) {
                return Some(job);
            }
        }
        None
    }

    /// Like [`JobReceiver::recv`], giving up after `timeout`: `Err(RecvTimedOut)` on timeout,
    /// `Ok(None)` once the server has stopped.
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Result<Option<Job>, RecvTimedOut> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.rx.recv_deadline(deadline) {
                Ok(queued) => {
                    if let Some(job) = take(queued) {
                        return Ok(Some(job));
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => return Err(RecvTimedOut),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
    }
}

/// The job, unless its connection withdrew it first.
fn take(queued: Queued) -> Option<Job> {
    match queued.claim {
        Some(claim) if claim.swap(true, Ordering::AcqRel) => None,
        _ => Some(queued.job),
    }
}

/// [`JobReceiver::recv_timeout`] waited its whole timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvTimedOut;

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> (Job, PartReceiver) {
        let mut bytes = bytes::BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..]);
        let limits = crate::http1::HeadLimits {
            request_line: 100,
            fields: 10,
            field_size: 100,
            head: 1000,
        };
        let Ok(crate::http1::Parsed::Complete(head)) =
            crate::http1::parse_head(&mut bytes, &limits)
        else {
            panic!("test request did not parse");
        };
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (responder, rx) = Responder::channel();
        let request = Request {
            head,
            body: RequestBody::Empty,
            conn: ConnInfo::new(addr, addr, "http"),
            forwarded: None,
        };
        (
            Job {
                request: Box::new(request),
                responder,
            },
            rx,
        )
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn head() -> ResponseHead {
        ResponseHead {
            code: 200,
            status: HeadBytes::from_static(b"200 OK"),
            headers: Vec::new(),
        }
    }

    fn start(end: bool) -> ResponsePart {
        ResponsePart::Start {
            head: head(),
            first: Bytes::from_static(b"first"),
            end,
        }
    }

    fn body(i: usize) -> ResponsePart {
        ResponsePart::Body(Bytes::from(i.to_string()))
    }

    /// The body chunk's text, or what the part was.
    fn show(part: Option<ResponsePart>) -> String {
        match part {
            Some(ResponsePart::Start { end, .. }) => format!("start end={end}"),
            Some(ResponsePart::Body(b)) => String::from_utf8_lossy(&b).into_owned(),
            Some(ResponsePart::End) => "end".into(),
            Some(other) => format!("{other:?}"),
            None => "none".into(),
        }
    }

    /// Fills the channel behind a first part that does not end the response.
    fn filled() -> (Arc<Responder>, PartReceiver) {
        let (responder, rx) = Responder::channel();
        responder.try_send(start(false)).unwrap();
        for i in 0..RESPONSE_CHANNEL_PARTS {
            responder.try_send(body(i)).unwrap();
        }
        (Arc::new(responder), rx)
    }

    /// Runs `send` of `part` on a thread, which reports through `done` when it returned.
    // The sleeping thread is the test's own, standing in for an application thread.
    #[allow(clippy::disallowed_methods)]
    fn blocked_send(
        responder: &Arc<Responder>,
        part: ResponsePart,
    ) -> (
        std::thread::JoinHandle<Result<(), ClientGone>>,
        Arc<AtomicBool>,
    ) {
        let done = Arc::new(AtomicBool::new(false));
        let handle = {
            let (responder, done) = (Arc::clone(responder), Arc::clone(&done));
            std::thread::spawn(move || {
                let r = responder.send(part);
                done.store(true, Ordering::SeqCst);
                r
            })
        };
        // The channel is full: the send must still be waiting a while later.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!done.load(Ordering::SeqCst), "send did not wait for room");
        (handle, done)
    }

    #[test]
    fn a_one_part_response_goes_through_the_slot_alone() {
        let (responder, mut rx) = Responder::channel();
        assert!(matches!(
            rx.try_recv(),
            Err(mpsc::error::TryRecvError::Empty)
        ));
        assert!(!responder.is_closed());
        responder.try_send(start(true)).unwrap();
        assert!(responder.rest.get().is_none(), "no channel for one part");
        let rt = rt();
        assert_eq!(show(rt.block_on(rx.recv())), "start end=true");
        // Nothing can follow a part that ended the response.
        assert_eq!(show(rt.block_on(rx.recv())), "none");
        assert!(responder.is_closed());
        assert_eq!(responder.send(ResponsePart::End), Err(ClientGone));
    }

    #[test]
    fn each_final_kind_ends_the_response_in_the_slot() {
        let rt = rt();
        for part in [ResponsePart::End, ResponsePart::Abort] {
            let (responder, mut rx) = Responder::channel();
            responder.send(part).unwrap();
            assert!(responder.rest.get().is_none());
            assert!(rt.block_on(rx.recv()).is_some());
            assert!(rt.block_on(rx.recv()).is_none());
        }
        let (responder, mut rx) = Responder::channel();
        responder
            .try_send(ResponsePart::Refused(RequestError::AppTimeout))
            .unwrap();
        assert!(matches!(rx.try_recv(), Ok(ResponsePart::Refused(_))));
        assert!(matches!(
            rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    #[test]
    fn many_parts_push_back_once_the_channel_is_full() {
        let (responder, mut rx) = filled();
        assert!(!responder.is_closed());
        // Full: `try_send` gives the part back.
        match responder.try_send(body(99)) {
            Err(TrySendError::Full(part)) => assert_eq!(show(Some(part)), "99"),
            other => panic!("expected Full, got {other:?}"),
        }
        // A blocked `send` completes once the connection reads.
        let (handle, _) = blocked_send(&responder, ResponsePart::End);
        let rt = rt();
        assert_eq!(show(rt.block_on(rx.recv())), "start end=false");
        for i in 0..RESPONSE_CHANNEL_PARTS {
            assert_eq!(show(rt.block_on(rx.recv())), i.to_string());
        }
        assert_eq!(handle.join().unwrap(), Ok(()));
        assert_eq!(show(rt.block_on(rx.recv())), "end");
        drop(responder);
        assert_eq!(show(rt.block_on(rx.recv())), "none");
    }

    #[test]
    fn the_lock_free_path_sends_alike_and_waits_on_a_part_sender() {
        let rt = rt();
        // One part: through the slot, nothing after it.
        let (mut responder, mut rx) = Responder::channel();
        assert!(responder.part_sender().is_none());
        responder.try_send_mut(start(true)).unwrap();
        assert!(responder.part_sender().is_none(), "no channel for one part");
        assert_eq!(show(rt.block_on(rx.recv())), "start end=true");
        assert_eq!(show(rt.block_on(rx.recv())), "none");
        assert!(matches!(
            responder.try_send_mut(ResponsePart::End),
            Err(TrySendError::Gone)
        ));

        // Many parts: the channel fills, then a part sender waits for room apart from it.
        let (mut responder, mut rx) = Responder::channel();
        responder.try_send_mut(start(false)).unwrap();
        for i in 0..RESPONSE_CHANNEL_PARTS {
            responder.try_send_mut(body(i)).unwrap();
        }
        let Err(TrySendError::Full(part)) = responder.try_send_mut(body(99)) else {
            panic!("a full channel must give the part back");
        };
        let waiter = responder.part_sender().unwrap();
        let blocked = std::thread::spawn(move || waiter.send(part));
        assert_eq!(show(rt.block_on(rx.recv())), "start end=false");
        for i in 0..RESPONSE_CHANNEL_PARTS {
            assert_eq!(show(rt.block_on(rx.recv())), i.to_string());
        }
        assert_eq!(blocked.join().unwrap(), Ok(()));
        assert_eq!(show(rt.block_on(rx.recv())), "99");
        responder.try_send_mut(ResponsePart::End).unwrap();
        assert_eq!(show(rt.block_on(rx.recv())), "end");

        // The connection gone: refused.
        let (mut responder, rx) = Responder::channel();
        drop(rx);
        assert!(matches!(
            responder.try_send_mut(start(false)),
            Err(TrySendError::Gone)
        ));
    }

    #[test]
    fn parts_can_be_polled_without_waiting() {
        let (responder, mut rx) = Responder::channel();
        responder.send(start(false)).unwrap();
        responder.send(body(1)).unwrap();
        assert_eq!(show(rx.try_recv().ok()), "start end=false");
        assert_eq!(show(rx.try_recv().ok()), "1");
        assert!(matches!(
            rx.try_recv(),
            Err(mpsc::error::TryRecvError::Empty)
        ));
        drop(responder);
        assert!(matches!(
            rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        ));
    }

    #[test]
    fn a_receiver_dropped_before_the_first_part_refuses_it() {
        let (responder, rx) = Responder::channel();
        drop(rx);
        assert!(responder.is_closed());
        assert_eq!(responder.send(start(true)), Err(ClientGone));
        let (responder, rx) = Responder::channel();
        drop(rx);
        assert!(matches!(
            responder.try_send(start(false)),
            Err(TrySendError::Gone)
        ));
        assert_eq!(responder.send(body(1)), Err(ClientGone));
        assert!(responder.is_closed());
    }

    #[test]
    fn a_receiver_dropped_mid_response_closes_the_channel() {
        let (responder, mut rx) = Responder::channel();
        responder.send(start(false)).unwrap();
        assert_eq!(show(rt().block_on(rx.recv())), "start end=false");
        assert!(!responder.is_closed());
        drop(rx);
        assert!(responder.is_closed());
        assert_eq!(responder.send(body(1)), Err(ClientGone));
        assert!(matches!(
            responder.try_send(body(2)),
            Err(TrySendError::Gone)
        ));
    }

    #[test]
    fn dropping_the_receiver_wakes_a_send_blocked_on_a_full_channel() {
        // Once the connection read the first part (the channel's receiver is its own)...
        let (responder, mut rx) = filled();
        assert_eq!(show(rx.try_recv().ok()), "start end=false");
        let (handle, _) = blocked_send(&responder, body(99));
        drop(rx);
        assert_eq!(handle.join().unwrap(), Err(ClientGone));
        assert!(responder.is_closed());
        // ...and before it read anything (the channel's receiver still in the slot).
        let (responder, rx) = filled();
        let (handle, _) = blocked_send(&responder, body(99));
        drop(rx);
        assert_eq!(handle.join().unwrap(), Err(ClientGone));
        assert!(responder.is_closed());
    }

    #[test]
    fn a_responder_dropped_without_a_part_ends_the_receiver() {
        let (responder, mut rx) = Responder::channel();
        let rt = rt();
        let app = std::thread::spawn(move || drop(responder));
        assert!(rt.block_on(rx.recv()).is_none());
        app.join().unwrap();
        assert!(rt.block_on(rx.recv()).is_none());
    }

    #[test]
    fn a_responder_dropped_mid_response_leaves_its_parts_then_ends() {
        let (responder, mut rx) = Responder::channel();
        responder.send(start(false)).unwrap();
        responder.send(body(1)).unwrap();
        responder.send(body(2)).unwrap();
        drop(responder);
        let rt = rt();
        for want in ["start end=false", "1", "2", "none", "none"] {
            assert_eq!(show(rt.block_on(rx.recv())), want);
        }
    }

    #[test]
    fn a_receiver_over_a_plain_channel_reads_it() {
        let (tx, rx) = mpsc::channel(2);
        let mut rx = PartReceiver::from_channel(rx);
        tx.try_send(start(false)).unwrap();
        tx.try_send(ResponsePart::End).unwrap();
        drop(tx);
        let rt = rt();
        for want in ["start end=false", "end", "none"] {
            assert_eq!(show(rt.block_on(rx.recv())), want);
        }
    }

    #[test]
    // The sleeping thread stands in for an application thread, so the receiver waits first.
    #[allow(clippy::disallowed_methods)]
    fn a_waiting_receiver_wakes_for_the_first_part() {
        let (responder, mut rx) = Responder::channel();
        let app = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            responder.send(start(false)).unwrap();
            responder.send(ResponsePart::End).unwrap();
        });
        let rt = rt();
        assert_eq!(show(rt.block_on(rx.recv())), "start end=false");
        assert_eq!(show(rt.block_on(rx.recv())), "end");
        app.join().unwrap();
        assert_eq!(show(rt.block_on(rx.recv())), "none");
    }

    #[test]
    fn a_withdrawn_job_never_reaches_a_thread() {
        let (tx, rx) = job_queue();
        let (j1, _r1) = job();
        let (j2, _r2) = job();
        let claim = tx.push_claimable(j1).unwrap();
        tx.push(j2).unwrap();
        assert!(claim.withdraw());
        assert!(
            !claim.withdraw(),
            "withdrawing twice must not succeed twice"
        );
        // The first job is skipped; the second arrives.
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(100))
            .unwrap()
            .is_some());
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(10))
            .is_err());
    }

    #[test]
    fn try_recv_takes_only_what_is_queued() {
        let (tx, rx) = job_queue();
        assert!(rx.try_recv().is_none());
        let (j, _r) = job();
        tx.push(j).unwrap();
        assert_eq!(tx.len(), 1);
        assert!(rx.try_recv().is_some());
        assert!(rx.try_recv().is_none());
        assert!(tx.is_empty());
    }

    #[test]
    fn the_queue_drains_then_ends_when_every_sender_is_gone() {
        let (tx, rx) = job_queue();
        let tx2 = tx.clone();
        let (j, _r) = job();
        tx.push(j).unwrap();
        drop(tx);
        let waiter = {
            let rx = rx.clone();
            std::thread::spawn(move || (rx.recv().is_some(), rx.recv().is_none()))
        };
        drop(tx2);
        assert_eq!(waiter.join().unwrap(), (true, true));
        assert!(rx.recv().is_none());
    }

    #[test]
    fn a_push_fails_once_every_receiver_is_gone() {
        let (tx, rx) = job_queue();
        drop(rx);
        let (j, _r) = job();
        assert!(tx.push(j).is_err());
    }

    #[test]
    fn a_blocked_receiver_wakes_for_a_push() {
        let (tx, rx) = job_queue();
        let waiter = std::thread::spawn(move || rx.recv().is_some());
        std::thread::yield_now();
        let (j, _r) = job();
        tx.push(j).unwrap();
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn a_taken_job_cannot_be_withdrawn() {
        let (tx, rx) = job_queue();
        let (j, _r) = job();
        let claim = tx.push_claimable(j).unwrap();
        assert!(rx.recv().is_some());
        assert!(!claim.withdraw());
    }
}
