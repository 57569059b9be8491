//! Listening, accepting and driving connections. SKELETON: the driver work fills this in.
//!
//! [`Server::bind`] binds every listener synchronously (so a bad address fails before any
//! thread starts) and logs `Listening at: http://ADDR (PID)` for each. [`Server::run`] blocks the
//! calling thread running the tokio runtime until SIGINT/SIGTERM or [`ShutdownHandle::shutdown`],
//! then stops accepting, lets in-flight requests finish (bounded by `graceful_timeout`) and
//! returns; the [`crate::exchange::JobSender`] it was given is dropped by then, so application
//! threads see the end of the queue.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::ServerConfig;
use crate::exchange::JobSender;

/// Starting or running the server failed.
#[derive(Debug)]
pub struct ServeError {
    pub message: String,
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServeError {}

/// Asks a running server to stop gracefully. Cheap to clone; callable from any thread.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        unimplemented!()
    }
}

/// Bound listeners plus configuration, ready to run.
#[derive(Debug)]
pub struct Server {
    config: Arc<ServerConfig>,
}

impl Server {
    pub fn bind(config: ServerConfig) -> Result<Server, ServeError> {
        let _ = config;
        unimplemented!()
    }

    /// The bound addresses, in `bind` order (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        unimplemented!()
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        unimplemented!()
    }

    /// Serves until shutdown (see the module docs). Blocks; call with the GIL released.
    pub fn run(&self, jobs: JobSender) -> Result<(), ServeError> {
        let _ = jobs;
        unimplemented!()
    }
}
