//! `wsgi.file_wrapper` (PEP 3333 "Optional Platform-Specific File Handling").
//!
//! `FileWrapper(filelike, blksize=8192)` is an iterable of `blksize` reads with a `close()` that
//! closes the file ("the object returned ... must be an iterable ... and must have a close()
//! method that invokes the original file-like object's close() method, if present"), so it works
//! wherever middleware iterates it.
//!
//! When the application returns exactly a `FileWrapper` whose file has a working `fileno()` on a
//! regular file, the server "may" use platform-specific transmission: the binding dup()s the
//! descriptor and hands it to the connection ([`FileBody`]), which streams it from the file's
//! current position (PEP: "transmission should begin at the current position within the
//! 'file'") to its end, without holding a Python thread. Anything else is iterated.

use std::fs::File;
use std::io::Seek;
use std::os::fd::{BorrowedFd, RawFd};

use ferrule_core::exchange::FileBody;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// PEP 3333's example block size, used when the application gives none.
const DEFAULT_BLKSIZE: usize = 8192;

#[pyclass(frozen, module = "ferrule._ferrule")]
#[derive(Debug)]
pub struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=DEFAULT_BLKSIZE))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> FileWrapper {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        // An empty read (b"" or "") is the end of the file.
        let empty = match block.cast::<PyBytes>() {
            Ok(b) => b.as_bytes().is_empty(),
            Err(_) => block.len().map(|n| n == 0).unwrap_or(false),
        };
        Ok((!empty).then_some(block))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(close) = self.filelike.bind(py).getattr_opt("close")? {
            close.call0()?;
        }
        Ok(())
    }
}

impl FileWrapper {
    /// A [`FileBody`] when the wrapped file is a regular file with a descriptor, else `None`
    /// (the caller then iterates). Any Python error on the way also means "iterate".
    pub(crate) fn file_body(&self, py: Python<'_>) -> Option<FileBody> {
        let filelike = self.filelike.bind(py);
        let fd: RawFd = filelike.call_method0("fileno").ok()?.extract().ok()?;
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is open for the duration of this call: the file object that owns it is
        // alive (we hold a reference) and we are holding the GIL, so no Python code closes it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut file = File::from(borrowed.try_clone_to_owned().ok()?);
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        // `tell()` accounts for data a buffered reader already pulled in; the descriptor's own
        // offset is the fallback for objects without it.
        let offset = match filelike
            .call_method0("tell")
            .and_then(|t| t.extract::<u64>())
        {
            Ok(pos) => pos,
            Err(_) => file.stream_position().ok()?,
        };
        Some(FileBody {
            file,
            offset,
            len: None,
        })
    }
}
