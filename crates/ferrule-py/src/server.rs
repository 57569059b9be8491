//! `ferrule._ferrule.Server`: one serving process as Python sees it (the contract is in
//! `python/ferrule/_ferrule.pyi`).
//!
//! `__init__` parses the configuration, installs the error log and binds every listener, so a
//! bad setting or a busy address fails before any thread starts. `run()` drives the network on
//! tokio threads with the GIL released; `serve_worker()` is the loop of one application thread;
//! `stop()` asks `run()` to finish gracefully. When `run()` returns, the job sender it owned is
//! dropped, so every `serve_worker()` drains the queue and returns.

use std::sync::{Arc, Mutex, MutexGuard};

use ferrule_core::config::ServerConfig;
use ferrule_core::exchange::{job_queue, JobReceiver, JobSender};
use ferrule_core::log::init_error_log;
use ferrule_core::server::{Server as CoreServer, ShutdownHandle};
use ferrule_core::supervise::Recycler;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::environ::Concurrency;
use crate::error::CoreError;
use crate::supervise::Worker;
use crate::watchdog::Watchdog;

#[pyclass(frozen, module = "ferrule._ferrule")]
#[derive(Debug)]
pub struct Server {
    /// Taken by `run()` (it runs once).
    core: Mutex<Option<CoreServer>>,
    /// Taken by `run()` and dropped when it returns: the end of the job queue.
    jobs: Mutex<Option<JobSender>>,
    receiver: JobReceiver,
    shutdown: Mutex<ShutdownHandle>,
    app: Py<PyAny>,
    addresses: Vec<String>,
    concurrency: Concurrency,
    /// In a forked worker: counts requests, watches memory, asks the master for a replacement.
    recycler: Option<Arc<Recycler>>,
    /// The request timeout's watchdog (`timeout` > 0).
    watchdog: Option<Arc<Watchdog>>,
}

/// Locks a mutex whose data stays valid whatever a panicking holder was doing (each update is
/// one `take()`).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(signature = (config_json, app, worker=None, on_timeout=None))]
    fn new(
        py: Python<'_>,
        config_json: &str,
        app: Py<PyAny>,
        worker: Option<PyRef<'_, Worker>>,
        on_timeout: Option<Py<PyAny>>,
    ) -> PyResult<Server> {
        let config = ServerConfig::from_json(config_json).map_err(CoreError::from)?;
        init_error_log(config.log_level, &config.error_log).map_err(CoreError::from)?;
        let concurrency = Concurrency {
            multithread: config.threads > 1,
            multiprocess: config.multiprocess,
        };
        // A forked worker serves on the listeners its master bound, and talks to its master.
        let mut recycler = None;
        let core = match worker {
            Some(worker) => {
                let listeners = worker.take_listeners()?;
                recycler = Some(Arc::new(Recycler::new(&config, worker.link())));
                let mut core =
                    CoreServer::from_listeners(config, listeners).map_err(CoreError::from)?;
                core.set_master_link(worker.link());
                core
            }
            None => py
                .detach(|| CoreServer::bind(config))
                .map_err(CoreError::from)?,
        };
        let watchdog = match core.config().request_deadline() {
            // `on_timeout(thread_ident, request_line)`: the watchdog calls it for each request
            // answered 504 (the `worker_abort` hook); unused without a deadline.
            Some(deadline) => Some(
                Watchdog::start(deadline, recycler.clone(), on_timeout).map_err(|e| {
                    PyRuntimeError::new_err(format!("cannot start the request watchdog: {e}"))
                })?,
            ),
            None => None,
        };
        let addresses = core
            .listen_addrs()
            .iter()
            .map(ToString::to_string)
            .collect();
        let shutdown = core.shutdown_handle();
        let (jobs, receiver) = job_queue();
        Ok(Server {
            core: Mutex::new(Some(core)),
            jobs: Mutex::new(Some(jobs)),
            receiver,
            shutdown: Mutex::new(shutdown),
            app,
            addresses,
            concurrency,
            recycler,
            watchdog,
        })
    }

    /// The bound `HOST:PORT` addresses (`[V6]:PORT` for IPv6, `unix:PATH` for a Unix
    /// socket), port 0 resolved.
    #[getter]
    fn addresses(&self) -> Vec<String> {
        self.addresses.clone()
    }

    /// The loop of one application thread; returns once the server has stopped.
    fn serve_worker(&self, py: Python<'_>) -> PyResult<()> {
        crate::worker::serve(
            py,
            &self.app,
            &self.receiver,
            self.concurrency,
            self.recycler.as_deref(),
            self.watchdog.as_deref(),
        )
    }

    /// Serves until SIGINT/SIGTERM or `stop()`, then drains gracefully and returns.
    fn run(&self, py: Python<'_>) -> PyResult<()> {
        let core = lock(&self.core).take();
        let jobs = lock(&self.jobs).take();
        let (Some(core), Some(jobs)) = (core, jobs) else {
            return Err(PyRuntimeError::new_err(
                "Server.run() can only be called once",
            ));
        };
        // `jobs` moves into `run` and is dropped when it returns, ending the job queue.
        py.detach(move || core.run(jobs)).map_err(CoreError::from)?;
        Ok(())
    }

    /// True when a second SIGINT/SIGTERM cut the graceful drain short: the caller should not
    /// wait for busy application threads.
    #[getter]
    fn forced(&self) -> bool {
        lock(&self.shutdown).is_forced()
    }

    /// True when the stop began with SIGINT (the `worker_int` server hook runs then).
    #[getter]
    fn interrupted(&self) -> bool {
        lock(&self.shutdown).is_interrupted()
    }

    /// Asks `run()` to stop gracefully; callable from any thread.
    fn stop(&self) {
        lock(&self.shutdown).shutdown();
    }
}
