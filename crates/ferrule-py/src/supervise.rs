//! `ferrule._ferrule.supervise` and `Worker`: the master (crates/ferrule-core/src/supervise/)
//! as Python sees it.
//!
//! `supervise(config_json)` binds the listeners (logging `Listening at`), then runs the master
//! with the GIL held (the master runs no other Python thread, and CPython's fork calls need the
//! GIL). It returns twice, like `os.fork()`: the master's exit code (an `int`) in the master, a
//! `Worker` in each forked worker. Around every `fork()` the hooks call `PyOS_BeforeFork`,
//! `PyOS_AfterFork_Parent` and `PyOS_AfterFork_Child`, which run `os.register_at_fork`
//! callbacks and reset the interpreter's locks and threads in the child.

use std::sync::{Arc, Mutex, MutexGuard};

use ferrule_core::config::ServerConfig;
use ferrule_core::log::init_error_log;
use ferrule_core::server::{announce_listening, bind_listeners, Listener};
use ferrule_core::supervise::reexec::Reexec;
use ferrule_core::supervise::{
    supervise_with as run_master, ForkHooks, MasterEvent, MasterLink, MasterOptions, Message, Role,
    EXIT_BOOT_FAILED,
};
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;

use crate::error::CoreError;

/// CPython's fork protocol (the GIL is held throughout, see the module docs), and the
/// master's events for the server hooks: `events(name, data)` is called with the event's
/// gunicorn name and a dict of its fields (see `MasterEvent`).
#[derive(Debug)]
struct PythonForkHooks {
    events: Option<Py<PyAny>>,
}

/// The fields of `event` as `(key, value)` pairs for the Python dict.
fn event_fields(event: &MasterEvent) -> Vec<(&'static str, i64)> {
    let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
    match *event {
        MasterEvent::Ready | MasterEvent::Reload | MasterEvent::PreExec => Vec::new(),
        MasterEvent::PreFork { id } => vec![("id", id.into())],
        MasterEvent::Forked { id, pid } => vec![("id", id.into()), ("pid", pid.into())],
        MasterEvent::ChildExit { id, pid, status } => vec![
            ("id", id.into()),
            ("pid", pid.into()),
            ("status", status.into()),
        ],
        MasterEvent::WorkersChanged { new, old } => vec![("new", n(new)), ("old", n(old))],
    }
}

impl ForkHooks for PythonForkHooks {
    fn before_fork(&mut self) {
        // SAFETY: called with the GIL held, from the thread that forks.
        unsafe { pyo3::ffi::PyOS_BeforeFork() }
    }
    fn after_fork_parent(&mut self) {
        // SAFETY: as above, after a PyOS_BeforeFork.
        unsafe { pyo3::ffi::PyOS_AfterFork_Parent() }
    }
    fn after_fork_child(&mut self) {
        // SAFETY: as above, in the child, before any other Python code runs.
        unsafe { pyo3::ffi::PyOS_AfterFork_Child() }
        // The child returns to Python with a `Worker`; the master's callback is not its own.
        self.events = None;
    }
    fn event(&mut self, event: &MasterEvent) {
        let Some(events) = &self.events else { return };
        // The master holds the GIL (module docs): attaching is immediate.
        Python::attach(|py| {
            let data = pyo3::types::PyDict::new(py);
            let called = event_fields(event)
                .into_iter()
                .try_for_each(|(k, v)| data.set_item(k, v))
                .and_then(|()| events.call1(py, (event.name(), data)));
            // The callback logs a hook's own exceptions; anything else is reported here.
            if let Err(e) = called {
                e.print(py);
            }
        });
    }
}

/// A forked worker's handle on what its master gave it.
#[pyclass(frozen, module = "ferrule._ferrule")]
#[derive(Debug)]
pub struct Worker {
    id: u32,
    /// Taken by the `Server` built for this worker.
    listeners: Mutex<Option<Vec<Listener>>>,
    /// Shared with the worker's server (READY, heartbeats) and recycler (RETIRING).
    link: Arc<MasterLink>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Worker {
    /// The inherited listeners, once.
    pub(crate) fn take_listeners(&self) -> PyResult<Vec<Listener>> {
        lock(&self.listeners)
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this worker's listeners are already in use"))
    }

    /// The pipe to the master.
    pub(crate) fn link(&self) -> Arc<MasterLink> {
        Arc::clone(&self.link)
    }
}

#[pymethods]
impl Worker {
    /// The exit code of a worker whose app failed to load (after `boot_failed`).
    #[classattr]
    const EXIT_BOOT_FAILED: i32 = EXIT_BOOT_FAILED;

    /// 1, 2, 3, … in fork order.
    #[getter]
    fn id(&self) -> u32 {
        self.id
    }

    /// Asks the master for a replacement (`RETIRING`, like a recycle): this worker keeps
    /// serving until the replacement is ready, then gets TERM. `reason` goes in the log.
    fn retire(&self, reason: &str) -> PyResult<()> {
        self.link
            .send(&Message::Retiring(reason.to_owned()))
            .map_err(|e| PyOSError::new_err(format!("cannot reach the master: {e}")))
    }

    /// Tells the master the app could not be loaded; `text` is logged by the master, once.
    fn boot_failed(&self, text: &str) -> PyResult<()> {
        self.link
            .send(&Message::BootFailed(text.to_owned()))
            .map_err(|e| PyOSError::new_err(format!("cannot reach the master: {e}")))
    }
}

/// Runs the master; see the module docs. `argv` (the full command line, the program first)
/// and `cwd` tell it how to start a new master on USR2; `old_master` is the master this one
/// replaces (told to stop once this one's workers are ready). `events(name, data)`, when
/// given, is called in the master for each `MasterEvent` (the server hooks).
#[pyfunction]
#[pyo3(signature = (config_json, argv=None, cwd=None, old_master=None, events=None))]
pub(crate) fn supervise(
    py: Python<'_>,
    config_json: &str,
    argv: Option<Vec<std::ffi::OsString>>,
    cwd: Option<std::ffi::OsString>,
    old_master: Option<i32>,
    events: Option<Py<PyAny>>,
) -> PyResult<Py<PyAny>> {
    let config = ServerConfig::from_json(config_json).map_err(CoreError::from)?;
    init_error_log(config.log_level, &config.error_log).map_err(CoreError::from)?;
    // With reuse_port the master only holds the addresses; each worker listens on its own.
    let (listeners, addrs) = py
        .detach(|| bind_listeners(&config, config.reuse_port))
        .map_err(CoreError::from)?;
    // A master announces its addresses as soon as they are bound (its workers log nothing).
    announce_listening(&addrs);
    let reexec = match (argv, cwd) {
        (Some(argv), Some(cwd)) if !argv.is_empty() => Some(Reexec {
            program: argv[0].clone(),
            argv,
            cwd,
        }),
        _ => None,
    };
    let options = MasterOptions { reexec, old_master };
    // The GIL stays held: see the module docs.
    let mut hooks = PythonForkHooks { events };
    match run_master(&config, listeners, &mut hooks, options).map_err(CoreError::from)? {
        Role::Exit(code) => code.into_py_any(py),
        Role::Worker(ctx) => Worker {
            id: ctx.id,
            listeners: Mutex::new(Some(ctx.listeners)),
            link: Arc::new(ctx.link),
        }
        .into_py_any(py),
    }
}

/// Sets what `ps` shows for this process (`title`, cut to the original command line's length)
/// and its short `comm` name (`comm`, at most 15 bytes); see `ferrule_core::supervise::title`.
/// Returns False when the title could not be set.
#[pyfunction]
pub(crate) fn set_process_title(title: &str, comm: &str) -> bool {
    ferrule_core::supervise::title::set(title, comm)
}
