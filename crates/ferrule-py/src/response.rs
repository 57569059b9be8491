//! Turning the application's return value into `ResponsePart`s (PEP 3333 "Buffering and
//! Streaming", "Specification Details").
//!
//! Rules enforced here:
//! - Body items must be bytes ("the application must return an iterable yielding zero or more
//!   bytestrings"); anything else ends the response with a 500 (head not sent yet) or an abort,
//!   and a log line naming the type.
//! - Empty items are skipped; the head goes out with the first non-empty item or at the end.
//! - "If the iterable returned by the application has a close() method, the server or gateway
//!   must call that method upon completion of the current request, whether the request was
//!   completed normally, or terminated early due to an application error during iteration or an
//!   early disconnect of the browser." `close()` is called exactly once, before the final part
//!   goes out (so a client that sees the end of the response also sees the effects of close()).
//! - A list or tuple is answered item by item with its last item marked as the end, so a
//!   one-element list becomes one `Start { end: true }` and the connection sends it with a
//!   Content-Length, unchunked. Other iterables are streamed as they yield (no look-ahead: a
//!   generator that sleeps between items still gets each item to the client at once).
//! - Body chunks cross to the I/O thread without a copy: the Python `bytes` object itself backs
//!   the [`Bytes`] ([`PyBackedBytes`]); only tiny chunks are copied, which is cheaper.
//! - An exact `FileWrapper` over a regular file becomes `StartFile` (see `file_wrapper`).

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::file_wrapper::FileWrapper;
use crate::sender::{Phase, SendError, Sender};
use crate::start_response::type_name;

/// Chunks up to this size are copied: cheaper than keeping the Python object alive and
/// releasing it later from the I/O thread.
const COPY_MAX: usize = 256;

/// A body chunk from a Python `bytes`, zero-copy unless tiny.
pub(crate) fn chunk_of(bytes: &Bound<'_, PyBytes>) -> Bytes {
    let data = bytes.as_bytes();
    if data.len() <= COPY_MAX {
        Bytes::copy_from_slice(data)
    } else {
        Bytes::from_owner(PyBackedBytes::from(bytes.clone()))
    }
}

/// How iterating the body stopped.
enum Stop {
    /// All items sent but possibly the last one, held back until `close()` ran.
    Complete(Option<Bytes>),
    /// The iterable raised.
    Raised(PyErr),
    /// An item was not bytes (its type name).
    NotBytes(String),
    /// Data came before `start_response` was called.
    NoHead,
    ClientGone,
}

/// Sends the application's answer `result` and closes it. `before_final` runs after `close()`
/// and before the final part (the worker releases the request body there). `request` describes
/// the request for log lines.
pub(crate) fn send_result(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    sender: &Sender,
    request: &dyn Fn() -> String,
    before_final: impl FnOnce(),
) {
    if let Ok(wrapper) = result.cast_exact::<FileWrapper>() {
        if sender.phase() == Phase::HeadPending {
            if let Some(file) = wrapper.get().file_body(py) {
                close_iterable(py, result, request);
                before_final();
                if sender.send_file(py, file).is_err() {
                    log::error!("response to {} changed while sending a file", request());
                    sender.fail(py);
                }
                return;
            }
        }
    }

    let stop =
        if result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>() {
            send_sequence(py, result, sender)
        } else {
            send_iterable(py, result, sender)
        };
    let is_builtin = result.is_exact_instance_of::<PyList>()
        || result.is_exact_instance_of::<PyTuple>()
        || result.is_exact_instance_of::<PyBytes>();
    if !is_builtin {
        close_iterable(py, result, request);
    }
    before_final();

    let failed = match stop {
        Stop::Complete(last) => {
            let sent = match last {
                Some(chunk) => sender.send_chunk(py, chunk, true),
                None => sender.finish(py),
            };
            match sent {
                Ok(()) | Err(SendError::ClientGone) | Err(SendError::Finished) => return,
                Err(SendError::NoHead) => {
                    log::error!(
                        "error handling {}: the application returned without calling \
                         start_response()",
                        request()
                    );
                    true
                }
            }
        }
        Stop::Raised(err) => {
            log_app_error(
                py,
                &err,
                sender,
                &format!("error iterating the response to {}", request()),
            );
            true
        }
        Stop::NotBytes(ty)
            if result.is_instance_of::<PyBytes>() || result.is_instance_of::<PyString>() =>
        {
            log::error!(
                "error handling {}: the application returned {ty} items, i.e. a bare {} instead \
                 of an iterable of bytes such as [body] (PEP 3333)",
                request(),
                type_name(result)
            );
            true
        }
        Stop::NotBytes(ty) => {
            log::error!(
                "error handling {}: the response iterable yielded {ty}, but body items must be \
                 bytes (PEP 3333)",
                request()
            );
            true
        }
        Stop::NoHead => {
            log::error!(
                "error handling {}: the application yielded body data before calling \
                 start_response()",
                request()
            );
            true
        }
        Stop::ClientGone => {
            log::info!(
                "client went away before the response to {} was complete",
                request()
            );
            false
        }
    };
    if failed {
        sender.fail(py);
    }
}

/// A list or tuple: items by index, the last non-empty one held back as the end.
fn send_sequence(py: Python<'_>, seq: &Bound<'_, PyAny>, sender: &Sender) -> Stop {
    // Iterated in place (no copy of the items): a list changed while a full channel has the
    // GIL released is read as Python's own list iterator reads it.
    let items = match seq.try_iter() {
        Ok(iter) => iter,
        Err(e) => return Stop::Raised(e),
    };
    let mut held: Option<Bytes> = None;
    for item in items {
        let item = match item {
            Ok(item) => item,
            Err(e) => return Stop::Raised(e),
        };
        let Ok(bytes) = item.cast::<PyBytes>() else {
            return Stop::NotBytes(type_name(&item));
        };
        if bytes.as_bytes().is_empty() {
            continue;
        }
        if let Some(prev) = held.replace(chunk_of(bytes)) {
            if let Err(stop) = send(py, sender, prev) {
                return stop;
            }
        }
    }
    Stop::Complete(held)
}

/// Any other iterable: each non-empty item is sent as it comes.
fn send_iterable(py: Python<'_>, result: &Bound<'_, PyAny>, sender: &Sender) -> Stop {
    let iter = match result.try_iter() {
        Ok(iter) => iter,
        Err(e) => return Stop::Raised(e),
    };
    for item in iter {
        let item = match item {
            Ok(item) => item,
            Err(e) => return Stop::Raised(e),
        };
        let Ok(bytes) = item.cast::<PyBytes>() else {
            return Stop::NotBytes(type_name(&item));
        };
        if bytes.as_bytes().is_empty() {
            continue;
        }
        if let Err(stop) = send(py, sender, chunk_of(bytes)) {
            return stop;
        }
    }
    Stop::Complete(None)
}

fn send(py: Python<'_>, sender: &Sender, chunk: Bytes) -> Result<(), Stop> {
    match sender.send_chunk(py, chunk, false) {
        Ok(()) => Ok(()),
        Err(SendError::NoHead) => Err(Stop::NoHead),
        Err(SendError::ClientGone | SendError::Finished) => Err(Stop::ClientGone),
    }
}

/// Calls `result.close()` if it has one; an exception there is logged (the response itself
/// is complete by then, so it still ends normally).
pub(crate) fn close_iterable(
    py: Python<'_>,
    result: &Bound<'_, PyAny>,
    request: &dyn Fn() -> String,
) {
    let closed = match result.getattr_opt("close") {
        Ok(Some(close)) => close.call0().map(drop),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = closed {
        log_exception(
            py,
            &e,
            &format!("error closing the response iterable of {}", request()),
        );
    }
}

/// Logs an exception the application raised while serving a request. If the client had already
/// gone (the response is over), that is most likely why, e.g. `write()` raised: one info line.
/// Otherwise the traceback, at error level, saying whether the head had gone out.
pub(crate) fn log_app_error(py: Python<'_>, err: &PyErr, sender: &Sender, context: &str) {
    if sender.client_gone() {
        log::info!("{context}: client went away ({err})");
        return;
    }
    match sender.phase() {
        Phase::Done => log::info!("{context}: client went away ({err})"),
        Phase::HeadSent => log_exception(
            py,
            err,
            &format!("{context} after the response headers were sent (connection aborted)"),
        ),
        Phase::NoHead | Phase::HeadPending => log_exception(
            py,
            err,
            &format!("{context} before the response headers were sent (500 sent)"),
        ),
    }
}

/// Logs `context` and the exception's traceback (formatted by Python's `traceback` module) as
/// one error-log entry.
pub(crate) fn log_exception(py: Python<'_>, err: &PyErr, context: &str) {
    let formatted = py
        .import("traceback")
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (err.get_type(py), err.value(py), err.traceback(py)),
            )
        })
        .and_then(|lines| lines.extract::<Vec<String>>())
        .map(|lines| lines.concat());
    match formatted {
        Ok(text) => log::error!("{context}\n{}", text.trim_end()),
        Err(_) => log::error!("{context}: {err}"),
    }
}
