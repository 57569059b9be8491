//! `start_response(status, response_headers, exc_info=None)` and the `write(data)` callable it
//! returns (PEP 3333 "The start_response() Callable").
//!
//! Enforced here:
//! - status: "a string of the form '999 Message here'" — three digits, a space, a reason phrase
//!   (RFC 9112 §4: `reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )`, may be empty). The code
//!   must be a final status, 200-599 (RFC 9110 §15: "Values outside the range 100..599 are
//!   invalid"; a 1xx is never a final response, so an application cannot answer with one).
//! - headers: "a Python list; i.e. type(response_headers) is ListType ... each header_name must
//!   be a valid HTTP header field-name ... without a trailing colon", values native strings; both
//!   are latin-1 ("Native strings ... must be restricted to characters representable in
//!   ISO-8859-1") and carry no control characters (no CR/LF/NUL: no header injection).
//! - "applications ... must not generate 'hop-by-hop' headers": Connection, Keep-Alive,
//!   Proxy-Authenticate, Proxy-Authorization, TE, Trailer(s), Transfer-Encoding, Upgrade are
//!   refused; the connection owns framing and persistence.
//! - `Content-Length` must be digits, and repeats must agree (RFC 9110 §8.6), since the
//!   connection frames the body by it.
//! - exc_info: "if exc_info is provided, and the HTTP headers have already been sent,
//!   start_response must raise an error, and should re-raise using the exc_info tuple"; if the
//!   headers were not sent, the new status and headers replace the stored ones. Without
//!   exc_info, a second call is an error ("it is a fatal error to call start_response without the
//!   exc_info argument if start_response has already been called within the current invocation").
//!
//! A refused status or header raises (`TypeError` for a wrong type, `ValueError` for a bad
//! value); when the application lets it propagate, the request is answered with a 500 and the
//! traceback, naming the problem, goes to the error log.

use std::sync::Arc;

use ferrule_core::exchange::ResponseHead;
use ferrule_core::head_bytes::HeadBytes;
use ferrule_core::http1::is_token;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::error::CoreError;
use crate::latin1_cache;
use crate::response::chunk_of;
use crate::sender::{Phase, SendError, Sender};

/// Response header names an application must not send (RFC 2616 §13.5.1 as cited by PEP 3333,
/// plus RFC 9110's `Trailer`), compared case-insensitively.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// The `start_response` callable handed to the application for one request.
#[pyclass(frozen, module = "ferrule._ferrule")]
#[derive(Debug)]
pub(crate) struct StartResponse {
    sender: Arc<Sender>,
    /// The `write` callable every call returns: made once with this object (it writes through
    /// the same sender), so a call creates no object.
    write: Py<Write>,
}

impl StartResponse {
    pub(crate) fn new(py: Python<'_>, sender: Arc<Sender>) -> PyResult<StartResponse> {
        let write = Py::new(
            py,
            Write {
                sender: Arc::clone(&sender),
            },
        )?;
        Ok(StartResponse { sender, write })
    }

    /// The `write` callable every call returns.
    pub(crate) fn write(&self) -> &Py<Write> {
        &self.write
    }

    /// The sender this object and its `write` answer through.
    pub(crate) fn sender(&self) -> &Arc<Sender> {
        &self.sender
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Write>> {
        let exc_value = match exc_info {
            Some(info) if !info.is_none() => {
                let value = info.get_item(1)?;
                (!value.is_none()).then_some((value, info.get_item(2)?))
            }
            _ => None,
        };
        if let Some((value, traceback)) = &exc_value {
            if matches!(self.sender.phase(), Phase::HeadSent | Phase::Done) {
                let value = if traceback.is_none() {
                    value.clone()
                } else {
                    value.call_method1("with_traceback", (traceback,))?
                };
                return Err(PyErr::from_value(value));
            }
        }
        let head = response_head(status, headers)?;
        match self.sender.store_head(head, exc_value.is_some()) {
            Ok(()) => Ok(self.write.clone_ref(status.py())),
            Err(Phase::HeadSent | Phase::Done) => Err(PyRuntimeError::new_err(
                "start_response() called after the response headers were sent, without exc_info",
            )),
            Err(_) => Err(PyRuntimeError::new_err(
                "start_response() called a second time without exc_info (PEP 3333)",
            )),
        }
    }
}

/// The `write(data)` callable returned by `start_response` (PEP 3333 "The write() Callable"):
/// the data goes out before it returns (with the head if it is still pending), blocking with the
/// GIL released while the connection's buffer is full.
#[pyclass(frozen, module = "ferrule._ferrule")]
#[derive(Debug)]
pub(crate) struct Write {
    sender: Arc<Sender>,
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let Ok(bytes) = data.cast::<PyBytes>() else {
            return Err(PyTypeError::new_err(format!(
                "write() argument must be bytes, not {}",
                type_name(data)
            )));
        };
        match self.sender.send_chunk(py, chunk_of(bytes), false) {
            Ok(()) => Ok(()),
            Err(SendError::NoHead) => Err(PyRuntimeError::new_err(
                "write() called before start_response()",
            )),
            Err(SendError::Finished) => Err(PyRuntimeError::new_err(
                "write() called after the response ended",
            )),
            Err(SendError::ClientGone) => {
                Err(CoreError::ClientGone(ferrule_core::exchange::ClientGone).into())
            }
        }
    }
}

/// The qualified type name of `obj`, for messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .qualname()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// Validates the status and headers and builds the head.
fn response_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<ResponseHead> {
    let Ok(status) = status.cast::<PyString>() else {
        return Err(PyTypeError::new_err(format!(
            "status must be a str, not {}",
            type_name(status)
        )));
    };
    let status = latin1_cache::encoded(status, latin1)
        .map_err(|e| PyValueError::new_err(format!("status {e}")))?;
    let code = check_status(&status).map_err(PyValueError::new_err)?;

    let Ok(list) = headers.cast::<PyList>() else {
        return Err(PyTypeError::new_err(format!(
            "response headers must be a list, not {}",
            type_name(headers)
        )));
    };
    let mut out: Vec<(HeadBytes, HeadBytes)> = Vec::with_capacity(list.len());
    // Where the first Content-Length is in `out`.
    let mut content_length: Option<usize> = None;
    for item in list.iter() {
        let Ok(pair) = item.cast::<PyTuple>() else {
            return Err(PyTypeError::new_err(format!(
                "each response header must be a (name, value) tuple, not {}",
                type_name(&item)
            )));
        };
        let (name_b, value_b) = latin1_cache::checked_pair(pair, header_bytes)?;
        if name_b.eq_ignore_ascii_case(b"content-length") {
            if let Some(at) = content_length {
                if out[at].1 != value_b {
                    return Err(PyValueError::new_err(
                        "response headers have two different Content-Length values",
                    ));
                }
                continue;
            }
            content_length = Some(out.len());
        }
        out.push((name_b, value_b));
    }
    Ok(ResponseHead {
        code,
        status,
        headers: out,
    })
}

/// The bytes of one `(name, value)` response header, checked (types, latin-1, [`check_header`]).
fn header_bytes(pair: &Bound<'_, PyTuple>) -> PyResult<(HeadBytes, HeadBytes)> {
    if pair.len() != 2 {
        return Err(PyTypeError::new_err(format!(
            "each response header must be a (name, value) tuple, got {} items",
            pair.len()
        )));
    }
    let (name, value) = (pair.get_item(0)?, pair.get_item(1)?);
    let (Ok(name), Ok(value)) = (name.cast::<PyString>(), value.cast::<PyString>()) else {
        return Err(PyTypeError::new_err(format!(
            "response header name and value must be str, not ({}, {})",
            type_name(&name),
            type_name(&value)
        )));
    };
    let name_b = latin1_cache::encoded(name, latin1)
        .map_err(|e| PyValueError::new_err(format!("response header name {name:?} {e}")))?;
    let value_b = latin1_cache::encoded(value, latin1)
        .map_err(|e| PyValueError::new_err(format!("response header {name:?}: value {e}")))?;
    check_header(&name_b, &value_b).map_err(PyValueError::new_err)?;
    Ok((name_b, value_b))
}

/// Encodes a `str` as latin-1 (ISO-8859-1), refusing characters above U+00FF.
fn latin1(s: &Bound<'_, PyString>) -> Result<Vec<u8>, String> {
    let text = s
        .to_str()
        .map_err(|_| "is not valid text (lone surrogate)".to_owned())?;
    if text.is_ascii() {
        return Ok(text.as_bytes().to_vec());
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| format!("has non-latin-1 character {c:?}")))
        .collect()
}

/// `NNN reason`: three digits (200-599), a space, a reason without control characters.
fn check_status(status: &[u8]) -> Result<u16, String> {
    let shown = || String::from_utf8_lossy(status);
    let (digits, rest) = status.split_at(status.len().min(3));
    if digits.len() != 3 || !digits.iter().all(u8::is_ascii_digit) || rest.first() != Some(&b' ') {
        return Err(format!(
            "status {:?} is not of the form '200 OK' (three digits, a space, a reason)",
            shown()
        ));
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(200..=599).contains(&code) {
        return Err(format!(
            "status {:?}: code {code} is not a final status (200-599)",
            shown()
        ));
    }
    if rest[1..].iter().any(|&b| is_ctl(b)) {
        return Err(format!("status {:?} contains a control character", shown()));
    }
    Ok(code)
}

/// A header name is a token, not hop-by-hop; its value has no control characters but HTAB.
fn check_header(name: &[u8], value: &[u8]) -> Result<(), String> {
    let shown = || String::from_utf8_lossy(name);
    if !is_token(name) {
        return Err(format!(
            "response header name {:?} is not a valid token",
            shown()
        ));
    }
    if HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
    {
        return Err(format!(
            "response header {:?} is hop-by-hop; a WSGI application must not send it",
            shown()
        ));
    }
    if value.iter().any(|&b| is_ctl(b)) {
        return Err(format!(
            "response header {:?} has a control character (CR, LF, NUL...) in its value",
            shown()
        ));
    }
    if name.eq_ignore_ascii_case(b"content-length")
        && (value.is_empty() || !value.iter().all(u8::is_ascii_digit))
    {
        return Err(format!(
            "response header Content-Length {:?} is not a number",
            String::from_utf8_lossy(value)
        ));
    }
    Ok(())
}

/// Control characters other than HTAB (RFC 9110 §5.5: field values are VCHAR, SP, HTAB,
/// obs-text).
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(check_status(b"200 OK"), Ok(200));
        assert_eq!(check_status(b"404 "), Ok(404));
        assert_eq!(check_status(b"599 Whatever\tx"), Ok(599));
        assert_eq!(check_status(b"201 Cr\xe9\xe9"), Ok(201));
        assert!(check_status(b"200").is_err());
        assert!(check_status(b"200OK").is_err());
        assert!(check_status(b"20 OK").is_err());
        assert!(check_status(b"2000 OK").is_err());
        assert!(check_status(b"abc OK").is_err());
        assert!(check_status(b"100 Continue").is_err());
        assert!(check_status(b"600 Nope").is_err());
        assert!(check_status(b"200 OK\r\nX: y").is_err());
        assert!(check_status(b"200 O\0K").is_err());
        assert!(check_status(b"").is_err());
    }

    #[test]
    fn headers() {
        assert!(check_header(b"Content-Type", b"text/plain").is_ok());
        assert!(check_header(b"X-Tab", b"a\tb").is_ok());
        assert!(check_header(b"X-Latin", b"caf\xe9").is_ok());
        assert!(check_header(b"Content-Length", b"12").is_ok());
        assert!(check_header(b"", b"x").is_err());
        assert!(check_header(b"Bad Name", b"x").is_err());
        assert!(check_header(b"Bad:", b"x").is_err());
        assert!(check_header(b"X", b"a\r\nSet-Cookie: x").is_err());
        assert!(check_header(b"X", b"a\nb").is_err());
        assert!(check_header(b"X", b"a\0b").is_err());
        assert!(check_header(b"Content-Length", b"12a").is_err());
        assert!(check_header(b"Content-Length", b"").is_err());
        assert!(check_header(b"Content-Length", b"-1").is_err());
        for name in [
            "Connection",
            "keep-alive",
            "TE",
            "Trailer",
            "Transfer-Encoding",
            "Upgrade",
        ] {
            let e = check_header(name.as_bytes(), b"x").unwrap_err();
            assert!(e.contains(name), "{e}");
        }
    }
}
