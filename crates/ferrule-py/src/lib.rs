//! The `ferrule._ferrule` extension module: the WSGI bridge (PEP 3333) between `ferrule-core`
//! and Python. The Python-visible API is listed here and typed in `python/ferrule/_ferrule.pyi`.
//!
//! - `server`: the `Server` class (bind, run, stop, the application threads' loop).
//! - `worker`: one application thread's loop and one request's life.
//! - `environ`, `input`, `errors`: the environ dict, `wsgi.input`, `wsgi.errors`.
//! - `start_response`, `sender`, `response`: the response side.
//! - `file_wrapper`: `wsgi.file_wrapper`.
//! - `supervise`: the master (`supervise()`) and a forked worker's handle (`Worker`).
//! - `watchdog`: the request timeout (504, stack logged, `RequestTimeout` injected).
//! - `error`: the one conversion of core errors to Python exceptions.
//! - `alloc`: the global allocator (mimalloc).

mod alloc;
mod environ;
mod error;
mod errors;
mod file_wrapper;
mod input;
mod latin1_cache;
mod response;
mod reuse;
mod sender;
mod server;
mod start_response;
mod supervise;
mod watchdog;
mod worker;

use pyo3::prelude::*;

/// Rust's allocations (request heads, environ values, response parts, tokio's per-request
/// channel and timers) go to mimalloc: glibc's malloc/free were about a sixth of the
/// instructions of a hello request (docs/architecture.md, "Where the time goes (hello)").
/// Python's own objects keep CPython's allocator. Entered through `alloc::Mimalloc`, which
/// skips mimalloc's aligned entry point when the alignment asked for is one every block has.
#[global_allocator]
static ALLOCATOR: alloc::Mimalloc = alloc::Mimalloc;

/// Writes one line on the server's error log; `level` is debug, info, warning, error or
/// critical.
#[pyfunction(name = "log")]
fn log_line(level: &str, message: &str) -> PyResult<()> {
    let level = match level {
        "debug" => log::Level::Debug,
        "info" => log::Level::Info,
        "warning" => log::Level::Warn,
        "error" | "critical" => log::Level::Error,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown log level {other:?} (expected debug, info, warning, error or critical)"
            )))
        }
    };
    log::log!(level, "{message}");
    Ok(())
}

#[pymodule]
mod _ferrule {
    #[pymodule_export]
    use super::file_wrapper::FileWrapper;
    #[pymodule_export]
    use super::log_line;
    #[pymodule_export]
    use super::server::Server;
    #[pymodule_export]
    use super::supervise::{set_process_title, supervise, Worker};

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add(
            "RequestTimeout",
            m.py().get_type::<super::watchdog::RequestTimeout>(),
        )
    }
}
