//! The hand-off between the I/O side (tokio threads, never the GIL) and the application threads.
//!
//! A connection task parses a request, reads its body (fully, up to
//! [`crate::config::ServerConfig::max_buffered_body`]; past that the body streams), and pushes a
//! [`Job`] into the [`JobQueue`]. An application thread takes the job with
//! [`JobReceiver::recv`] (blocking; the Python side calls it with the GIL released), runs the app,
//! and sends the response back as [`ResponsePart`]s through the job's [`Responder`]. The
//! connection task writes them while the application thread moves on; the channel is bounded
//! ([`RESPONSE_CHANNEL_PARTS`]), so a slow reader pushes back on the app instead of growing memory.
//!
//! Nothing here takes the GIL or knows about Python: the binding crate (`ferrule-py`) builds the
//! environ from [`Request`] and turns the app's answer into [`ResponsePart`]s.

use std::fs::File;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::http1::{RequestError, RequestHead};

/// How many response parts may wait between an application thread and its connection before the
/// application thread blocks in [`Responder::send`]. Default 16: with typical 1-64 KiB chunks that
/// bounds the buffered response to about 1 MiB per in-flight request.
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
    pub status: Bytes,
    /// Header names and values in the app's order and case, validated by the binding (latin-1,
    /// no CR/LF/NUL, no hop-by-hop names).
    pub headers: Vec<(Bytes, Bytes)>,
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

/// The application thread's handle to answer one request.
#[derive(Debug)]
pub struct Responder {
    pub(crate) tx: tokio::sync::mpsc::Sender<ResponsePart>,
}

impl Responder {
    /// Builds a responder and the receiver its connection task reads.
    pub fn channel() -> (Responder, tokio::sync::mpsc::Receiver<ResponsePart>) {
        let (tx, rx) = tokio::sync::mpsc::channel(RESPONSE_CHANNEL_PARTS);
        (Responder { tx }, rx)
    }

    /// Sends one part; blocks while the connection's buffer is full (call with the GIL released).
    /// Must not be called from an async context.
    pub fn send(&self, part: ResponsePart) -> Result<(), ClientGone> {
        self.tx.blocking_send(part).map_err(|_| ClientGone)
    }

    /// Sends without blocking when there is room; gives the part back when the buffer is full so
    /// the caller can release the GIL and call [`Responder::send`].
    pub fn try_send(&self, part: ResponsePart) -> Result<(), TrySendError> {
        use tokio::sync::mpsc::error::TrySendError as E;
        self.tx.try_send(part).map_err(|e| match e {
            E::Full(part) => TrySendError::Full(part),
            E::Closed(_) => TrySendError::Gone,
        })
    }

    /// True once the connection has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Why [`Responder::try_send`] did not send.
#[derive(Debug)]
pub enum TrySendError {
    Full(ResponsePart),
    Gone,
}

/// One request for an application thread.
#[derive(Debug)]
pub struct Job {
    pub request: Request,
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
/// Jobs travel boxed: a queue slot then holds a pointer, not a whole `Queued` (a few hundred
/// bytes), and the channel's blocks of 31 slots, which it allocates and zeroes as the queue
/// turns over, stay small (unboxed, zeroing them cost more per request than the box).
pub fn job_queue() -> (JobSender, JobReceiver) {
    let (tx, rx) = crossbeam_channel::unbounded();
    (JobSender { tx }, JobReceiver { rx })
}

/// The connection side of the job queue.
#[derive(Debug, Clone)]
pub struct JobSender {
    tx: crossbeam_channel::Sender<Box<Queued>>,
}

impl JobSender {
    /// Queues a job; gives it back if every receiver is gone.
    // The job is given back whole on purpose (the caller answers its request); the error path
    // is rare (no application thread left), so its size does not matter.
    #[allow(clippy::result_large_err)]
    pub fn push(&self, job: Job) -> Result<(), Job> {
        self.tx
            .send(Box::new(Queued { job, claim: None }))
            .map_err(|e| e.0.job)
    }

    /// Like [`JobSender::push`], returning a claim with which the connection can take the job
    /// back while no application thread has taken it yet (queue timeout).
    #[allow(clippy::result_large_err)]
    pub fn push_claimable(&self, job: Job) -> Result<QueueClaim, Job> {
        let claim = Arc::new(AtomicBool::new(false));
        self.tx
            .send(Box::new(Queued {
                job,
                claim: Some(Arc::clone(&claim)),
            }))
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
    rx: crossbeam_channel::Receiver<Box<Queued>>,
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
fn take(queued: Box<Queued>) -> Option<Job> {
    let queued = *queued;
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

    fn job() -> (Job, tokio::sync::mpsc::Receiver<ResponsePart>) {
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
        (Job { request, responder }, rx)
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
