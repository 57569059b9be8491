//! `wsgi.input` (PEP 3333 "Input and Error Streams"): `read(size)`, `readline(size)`,
//! `readlines(hint)` and iteration over lines, over a body that is either complete in memory or
//! still arriving.
//!
//! Rules enforced here:
//! - "The server is not required to read past the client's specified Content-Length" — we never
//!   can: the body handed over is exactly the request body (the connection de-chunks and stops at
//!   its end), and reading at its end returns `b""`.
//! - `wsgi.input_terminated` is `True`: reading until `b""` is safe even without Content-Length.
//! - `read()`, `read(None)` and `read(-1)` read to the end; `readline(size)` stops after `size`
//!   bytes or a newline, whichever comes first, across chunk boundaries.
//! - A streamed body waits for chunks with the GIL released. A body that cannot be read to its
//!   end (client gone, framing error) raises `OSError` naming why, every time it is read again:
//!   it never turns into a silent end of file.

use bytes::Bytes;
use ferrule_core::exchange::{BodyError, BodyStream, RequestBody};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::error::CoreError;

/// Upper bound on what `read(n)`/`read()` preallocates from a size the client controls; the
/// buffer grows past it as data actually arrives.
const MAX_PREALLOC: usize = 1024 * 1024;

/// The request body stream of one request.
#[pyclass(module = "ferrule._ferrule")]
#[derive(Debug)]
pub(crate) struct Input {
    /// Data received and not yet read by the application.
    pending: Bytes,
    /// The rest of a streamed body; `None` once it ended (or for a body already in memory).
    stream: Option<BodyStream>,
    /// Why the body broke off, repeated to every later read.
    failed: Option<BodyError>,
}

impl Input {
    pub(crate) fn new(body: RequestBody) -> Input {
        let (pending, stream) = match body {
            RequestBody::Empty => (Bytes::new(), None),
            RequestBody::Full(bytes) => (bytes, None),
            RequestBody::Stream(stream) => (Bytes::new(), Some(stream)),
        };
        Input {
            pending,
            stream,
            failed: None,
        }
    }

    /// Drops the rest of a streamed body (the request is over); later reads see its end.
    pub(crate) fn release(&mut self) {
        self.stream = None;
    }

    /// True when reading the body failed because the client went away (not the app's fault).
    pub(crate) fn client_went_away(&self) -> bool {
        self.failed == Some(BodyError::Incomplete)
    }

    /// Gets the next non-empty chunk into `pending` (which must be empty). `false` at the end.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        if let Some(e) = &self.failed {
            return Err(CoreError::Body(e.clone()).into());
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(false);
        };
        loop {
            match py.detach(|| stream.blocking_next()) {
                Ok(Some(chunk)) if chunk.is_empty() => continue,
                Ok(Some(chunk)) => {
                    self.pending = chunk;
                    return Ok(true);
                }
                Ok(None) => {
                    self.stream = None;
                    return Ok(false);
                }
                Err(e) => {
                    self.stream = None;
                    self.failed = Some(e.clone());
                    return Err(CoreError::Body(e).into());
                }
            }
        }
    }

    /// Up to `limit` bytes (all when `None`).
    fn read_bytes(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let hint = self
            .stream
            .as_ref()
            .and_then(|s| s.remaining_hint)
            .unwrap_or(0);
        let want = limit.unwrap_or(usize::MAX);
        let cap = want
            .min(self.pending.len().saturating_add(hint as usize))
            .min(MAX_PREALLOC);
        let mut out = Vec::with_capacity(cap);
        while out.len() < want {
            if self.pending.is_empty() && !self.fill(py)? {
                break;
            }
            let take = (want - out.len()).min(self.pending.len());
            out.extend_from_slice(&self.pending.split_to(take));
        }
        Ok(out)
    }

    /// One line (through `\n`), or up to `limit` bytes.
    fn line_bytes(&mut self, py: Python<'_>, limit: Option<usize>) -> PyResult<Vec<u8>> {
        let want = limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while out.len() < want {
            if self.pending.is_empty() && !self.fill(py)? {
                break;
            }
            let room = (want - out.len()).min(self.pending.len());
            let (take, done) = match memchr::memchr(b'\n', &self.pending[..room]) {
                Some(i) => (i + 1, true),
                None => (room, false),
            };
            out.extend_from_slice(&self.pending.split_to(take));
            if done {
                break;
            }
        }
        Ok(out)
    }
}

/// A Python size argument: `None` or negative means "no limit".
fn limit_of(size: Option<isize>) -> Option<usize> {
    size.and_then(|n| usize::try_from(n).ok())
}

#[pymethods]
impl Input {
    /// `read(size=-1)`: up to `size` bytes; everything left when `size` is negative or `None`.
    #[pyo3(signature = (size=None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let limit = limit_of(size);
        // Fast path: the whole answer is one slice of what is already here.
        if let Some(n) = limit {
            if n <= self.pending.len() {
                return Ok(PyBytes::new(py, &self.pending.split_to(n)));
            }
        }
        let data = self.read_bytes(py, limit)?;
        Ok(PyBytes::new(py, &data))
    }

    /// `readline(size=-1)`: through the next `\n`, at most `size` bytes.
    #[pyo3(signature = (size=None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.line_bytes(py, limit_of(size))?;
        Ok(PyBytes::new(py, &line))
    }

    /// `readlines(hint=-1)`: lines until the end, or until their total size reaches `hint`.
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let limit = limit_of(hint).filter(|&n| n > 0);
        let lines = PyList::empty(py);
        let mut total = 0usize;
        loop {
            let line = self.line_bytes(py, None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new(py, &line))?;
            if limit.is_some_and(|n| total >= n) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.line_bytes(py, None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }
}
