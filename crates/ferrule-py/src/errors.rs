//! `wsgi.errors` (PEP 3333 "Input and Error Streams": "a text mode' file-like object ... for
//! writing errors"; methods `flush()`, `write(str)`, `writelines(seq)`).
//!
//! Text goes to the server's error log at ERROR level, one log line per line of text: partial
//! lines wait in a buffer until their newline or `flush()` ("flush: used to ensure that the
//! errors written ... are not buffered" — so flush emits what is buffered). The worker flushes
//! after every request, so nothing lingers between requests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::start_response::type_name;

/// Longest partial line kept before it is logged anyway, so a stream of text without newlines
/// cannot grow memory without bound.
const MAX_PENDING_LINE: usize = 64 * 1024;

/// One per application thread (shared by its requests).
#[pyclass(frozen, module = "ferrule._ferrule")]
#[derive(Debug, Default)]
pub(crate) struct Errors {
    partial: Mutex<String>,
    /// `partial` is not empty (changed with it, under its lock): the worker's flush after each
    /// request reads this instead of taking the lock.
    pending: AtomicBool,
}

impl Errors {
    fn buffer(&self) -> MutexGuard<'_, String> {
        // The buffer is plain text; a panic elsewhere cannot leave it inconsistent.
        self.partial
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, text: &str) {
        let mut buf = self.buffer();
        buf.push_str(text);
        while let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            log::error!("{}", line.trim_end_matches(['\n', '\r']));
        }
        if buf.len() > MAX_PENDING_LINE {
            log::error!("{}", buf);
            buf.clear();
        }
        self.pending.store(!buf.is_empty(), Ordering::Release);
    }

    /// Logs a buffered partial line, if any.
    pub(crate) fn flush_pending(&self) {
        if !self.pending.load(Ordering::Acquire) {
            return;
        }
        let mut buf = self.buffer();
        if !buf.is_empty() {
            log::error!("{}", buf);
            buf.clear();
        }
        self.pending.store(false, Ordering::Release);
    }
}

#[pymethods]
impl Errors {
    fn write(&self, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let Ok(text) = data.cast::<PyString>() else {
            return Err(PyTypeError::new_err(format!(
                "wsgi.errors.write() argument must be str, not {}",
                type_name(data)
            )));
        };
        let text = text.to_string_lossy();
        self.push(&text);
        Ok(text.chars().count())
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(&line?)?;
        }
        Ok(())
    }

    fn flush(&self) {
        self.flush_pending();
    }
}
