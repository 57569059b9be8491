//! The response side of one request, shared by `start_response`, `write()` and the loop over the
//! app's iterable: the pending head, whether it went out, and delivery of [`ResponsePart`]s.
//!
//! PEP 3333 ("The start_response() Callable"): "the start_response callable must not actually
//! transmit the response headers. Instead, it must store them for the server or gateway to
//! transmit only after the first iteration of the application return value that yields a
//! non-empty bytestring, or upon the application's first invocation of the write() callable."
//! So the head waits here until [`Sender::send_chunk`] or [`Sender::finish`] carries it.
//!
//! Delivery tries [`Responder::try_send_mut`] with the GIL and the state lock held (the common
//! case: room in the channel; the responder lives in the state, so this takes no lock of its
//! own) and only when the channel is full lets go of both to block on the channel
//! ([`ferrule_core::exchange::PartSender::send`]). The state lock is never held while the GIL is
//! released, so another Python thread touching the same response cannot deadlock with us.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use ferrule_core::exchange::{
    ClientGone, FileBody, Responder, ResponseHead, ResponsePart, TrySendError,
};
use ferrule_core::head_bytes::HeadBytes;
use ferrule_core::http1::RequestError;
use pyo3::Python;

/// Body of the 500 answer sent when the application fails before its head went out.
const ERROR_BODY: &[u8] = b"Internal Server Error";

/// Where the response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `start_response` has not been called (successfully) yet.
    NoHead,
    /// A head is stored, not sent.
    HeadPending,
    /// The head went out; body parts may follow.
    HeadSent,
    /// The response is complete, aborted, or the client went away.
    Done,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    head: Option<ResponseHead>,
    /// Dropped once the response is over, so the connection sees its channel close promptly even
    /// if the app keeps `write` or `start_response` alive. Used under the lock (parts go out
    /// with `try_send_mut`, no atomic operation of its own); a wait for room in a full channel
    /// happens outside it, on a [`ferrule_core::exchange::PartSender`].
    responder: Option<Responder>,
}

impl State {
    /// The client went away: nothing more will be sent.
    fn end_gone(&mut self) {
        self.phase = Phase::Done;
        self.head = None;
        self.responder = None;
    }

    /// A response not started yet, answered through `responder`.
    fn answering(responder: Responder) -> State {
        State {
            phase: Phase::NoHead,
            head: None,
            responder: Some(responder),
        }
    }
}

/// Why a chunk could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// No head yet: `start_response` was not called.
    NoHead,
    /// The response is already complete.
    Finished,
    ClientGone,
}

#[derive(Debug)]
pub(crate) struct Sender {
    state: Mutex<State>,
}

impl Sender {
    pub(crate) fn new(responder: Responder) -> Arc<Sender> {
        Arc::new(Sender {
            state: Mutex::new(State::answering(responder)),
        })
    }

    /// Makes this sender answer a new request through `responder`, as [`Sender::new`] would.
    /// The caller holds the only other reference (its `start_response`), so no `write` callable
    /// of the previous request can reach the new one.
    pub(crate) fn renew(&self, responder: Responder) {
        *self.lock() = State::answering(responder);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked (every update is one assignment).
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// Stores (or, with `exc_info` and the head not sent yet, replaces) the head.
    /// Returns the phase found when the head cannot be stored.
    pub(crate) fn store_head(&self, head: ResponseHead, replace: bool) -> Result<(), Phase> {
        let mut st = self.lock();
        match st.phase {
            Phase::NoHead => {}
            Phase::HeadPending if replace => {}
            other => return Err(other),
        }
        st.head = Some(head);
        st.phase = Phase::HeadPending;
        Ok(())
    }

    /// Sends a body chunk, carrying the head if it is still pending. `last` marks the final
    /// chunk (the response ends with it). An empty chunk still carries a pending head (the
    /// iterable loop skips empty items itself; `write(b"")` sends the head, as PEP 3333 says).
    pub(crate) fn send_chunk(
        &self,
        py: Python<'_>,
        chunk: Bytes,
        last: bool,
    ) -> Result<(), SendError> {
        let mut st = self.lock();
        let parts = match st.phase {
            Phase::NoHead => return Err(SendError::NoHead),
            Phase::Done => return Err(SendError::Finished),
            Phase::HeadPending => {
                let Some(head) = st.head.take() else {
                    return Err(SendError::NoHead);
                };
                st.phase = if last { Phase::Done } else { Phase::HeadSent };
                [
                    Some(ResponsePart::Start {
                        head,
                        first: chunk,
                        end: last,
                    }),
                    None,
                ]
            }
            Phase::HeadSent => {
                if last {
                    st.phase = Phase::Done;
                }
                let body = (!chunk.is_empty()).then_some(ResponsePart::Body(chunk));
                [body, last.then_some(ResponsePart::End)]
            }
        };
        for part in parts.into_iter().flatten() {
            let Some(responder) = st.responder.as_mut() else {
                return Err(SendError::Finished);
            };
            let waiting = match responder.try_send_mut(part) {
                Ok(()) => continue,
                Err(TrySendError::Gone) => None,
                Err(TrySendError::Full(part)) => responder.part_sender().map(|tx| (tx, part)),
            };
            // The channel is full: wait for room with neither the lock nor the GIL held.
            let mut sent = false;
            if let Some((tx, part)) = waiting {
                drop(st);
                sent = py.detach(|| tx.send(part)).is_ok();
                st = self.lock();
            }
            if !sent {
                st.end_gone();
                return Err(SendError::ClientGone);
            }
        }
        if last {
            st.responder = None;
        }
        Ok(())
    }

    /// Ends the response normally: the pending head with an empty body, or `End`.
    pub(crate) fn finish(&self, py: Python<'_>) -> Result<(), SendError> {
        self.send_chunk(py, Bytes::new(), true)
    }

    /// Sends the pending head followed by a file (`wsgi.file_wrapper`); the response ends there.
    /// Gives the file back when the head is not pending (the caller then iterates instead).
    pub(crate) fn send_file(&self, py: Python<'_>, file: FileBody) -> Result<(), FileBody> {
        let (responder, part) = {
            let mut st = self.lock();
            if st.phase != Phase::HeadPending {
                return Err(file);
            }
            let Some(head) = st.head.take() else {
                return Err(file);
            };
            st.phase = Phase::Done;
            (st.responder.take(), ResponsePart::StartFile { head, file })
        };
        if let Some(responder) = responder {
            // A client that went away needs nothing more; the file is closed with the part.
            let _ = deliver(py, &responder, part);
        }
        Ok(())
    }

    /// Ends a failed response: a plain 500 if the head has not gone out, else `Abort` so the
    /// client sees a truncated response rather than a wrong one (PEP 3333: "the server or
    /// gateway ... should close the connection" once headers were sent).
    pub(crate) fn fail(&self, py: Python<'_>) {
        let (responder, part) = {
            let mut st = self.lock();
            let part = match st.phase {
                Phase::Done => return,
                Phase::HeadSent => ResponsePart::Abort,
                Phase::NoHead | Phase::HeadPending => ResponsePart::Start {
                    head: error_head(),
                    first: Bytes::from_static(ERROR_BODY),
                    end: true,
                },
            };
            st.phase = Phase::Done;
            st.head = None;
            (st.responder.take(), part)
        };
        if let Some(responder) = responder {
            let _ = deliver(py, &responder, part);
        }
    }

    /// The request timeout passed (the watchdog, any thread, no GIL needed): if the head has
    /// not gone out, the connection answers `504` in the app's place and the response is over
    /// (the app's later parts are dropped). False when the head was already sent: the response
    /// is then the app's to finish.
    pub(crate) fn time_out(&self) -> bool {
        let responder = {
            let mut st = self.lock();
            match st.phase {
                Phase::NoHead | Phase::HeadPending => {}
                Phase::HeadSent | Phase::Done => return false,
            }
            st.phase = Phase::Done;
            st.head = None;
            st.responder.take()
        };
        if let Some(responder) = responder {
            // The head is the first part, so the channel is empty and has room; a connection
            // already gone needs no answer.
            let _ = responder.try_send(ResponsePart::Refused(RequestError::AppTimeout));
        }
        true
    }

    /// True when the client is gone: the response ended that way, or the connection closed.
    pub(crate) fn client_gone(&self) -> bool {
        let st = self.lock();
        match &st.responder {
            Some(responder) => responder.is_closed(),
            None => st.phase == Phase::Done,
        }
    }
}

/// `500 Internal Server Error`, `text/plain` (the connection adds the length).
fn error_head() -> ResponseHead {
    ResponseHead {
        code: 500,
        status: HeadBytes::from_static(b"500 Internal Server Error"),
        headers: vec![(
            HeadBytes::from_static(b"Content-Type"),
            HeadBytes::from_static(b"text/plain; charset=utf-8"),
        )],
    }
}

/// Sends one part: without releasing the GIL when the channel has room, else blocking with the
/// GIL released.
fn deliver(py: Python<'_>, responder: &Responder, part: ResponsePart) -> Result<(), ClientGone> {
    match responder.try_send(part) {
        Ok(()) => Ok(()),
        Err(TrySendError::Gone) => Err(ClientGone),
        Err(TrySendError::Full(part)) => py.detach(|| responder.send(part)),
    }
}
