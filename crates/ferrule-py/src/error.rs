//! The one place where core errors become Python exceptions (STYLE.md habit 4).
//!
//! | core error                 | Python exception |
//! |----------------------------|------------------|
//! | [`ConfigError`]            | `ValueError` naming the setting |
//! | [`LogOpenError`]           | `OSError` naming the path |
//! | [`ServeError`]             | `OSError` with the message (e.g. the address that failed) |
//! | [`BodyError`]              | `OSError` naming why the request body could not be read |
//! | [`ClientGone`]             | `OSError("client disconnected")` from `write()` |
//! | [`SuperviseError`]         | `OSError` with the message (e.g. fork failed) |

use ferrule_core::config::ConfigError;
use ferrule_core::exchange::{BodyError, ClientGone};
use ferrule_core::log::LogOpenError;
use ferrule_core::server::ServeError;
use ferrule_core::supervise::SuperviseError;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::PyErr;

/// Every core failure that can reach Python.
#[derive(Debug)]
pub(crate) enum CoreError {
    Config(ConfigError),
    LogOpen(LogOpenError),
    Serve(ServeError),
    Body(BodyError),
    ClientGone(ClientGone),
    Supervise(SuperviseError),
}

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> PyErr {
        match e {
            CoreError::Config(e) => PyValueError::new_err(e.to_string()),
            CoreError::LogOpen(e) => PyOSError::new_err(e.to_string()),
            CoreError::Serve(e) => PyOSError::new_err(e.to_string()),
            CoreError::Body(e) => PyOSError::new_err(e.to_string()),
            CoreError::ClientGone(e) => PyOSError::new_err(e.to_string()),
            CoreError::Supervise(e) => PyOSError::new_err(e.to_string()),
        }
    }
}

impl From<ConfigError> for CoreError {
    fn from(e: ConfigError) -> Self {
        CoreError::Config(e)
    }
}

impl From<LogOpenError> for CoreError {
    fn from(e: LogOpenError) -> Self {
        CoreError::LogOpen(e)
    }
}

impl From<ServeError> for CoreError {
    fn from(e: ServeError) -> Self {
        CoreError::Serve(e)
    }
}

impl From<BodyError> for CoreError {
    fn from(e: BodyError) -> Self {
        CoreError::Body(e)
    }
}

impl From<SuperviseError> for CoreError {
    fn from(e: SuperviseError) -> Self {
        CoreError::Supervise(e)
    }
}

impl From<ClientGone> for CoreError {
    fn from(e: ClientGone) -> Self {
        CoreError::ClientGone(e)
    }
}
