//! The request timeout (`timeout`): a watchdog that knows which Python thread runs which request
//! since when.
//!
//! An application thread registers each request when it takes it ([`Watchdog::begin`]) and
//! removes it when done ([`Watchdog::end`]). The watchdog thread (plain Rust, never the GIL)
//! looks every [`TICK`]; a request whose app has not produced its response head `timeout` after
//! its thread took it:
//!
//! 1. is answered `504 Gateway Timeout` in the app's place (`Sender::time_out`: the declared
//!    outcome of `RequestError::AppTimeout`, `Connection: close`, an access-log line); the
//!    app's later output is dropped. This needs no GIL, so it happens even when the stuck
//!    thread holds the GIL;
//! 2. gets the thread's Python stack logged (`sys._current_frames()`, formatted by
//!    `traceback`) and `ferrule.RequestTimeout` injected into it with
//!    `PyThreadState_SetAsyncExc`, by a second thread that takes the GIL (so a GIL-holding app
//!    delays only this step). `RequestTimeout` derives from `BaseException`, like
//!    `KeyboardInterrupt`, so an app's `except Exception:` does not swallow it. Between the two,
//!    that thread calls the `on_timeout` callback, if one was given (`Server(...,
//!    on_timeout=f)`: `f(thread_ident, request_line)`; the Python side runs gunicorn's
//!    `worker_abort(worker)` hook from it). It runs with the GIL held while the timed-out
//!    request is still on its thread's stack (`sys._current_frames()` shows it), once per
//!    timed-out request; an exception from it is logged with its traceback and the injection
//!    goes on. A callback that blocks holds up the injections (and every Python thread, while
//!    it keeps the GIL); the 504s and the `GRACE` check below are the watchdog thread's, which
//!    takes no GIL, so they go on;
//! 3. if the thread is still on that request [`GRACE`] later (an injected exception is only
//!    raised when the thread runs Python bytecode: a thread blocked in one C call, e.g. a lock
//!    wait or a socket read without timeout, never sees it), the worker asks its master for a
//!    replacement (`RETIRING`): the replacement starts, then this worker finishes its other
//!    requests and leaves, SIGKILLed past `graceful_timeout`. A single process has no master:
//!    it logs the stuck thread at error level and serves on with its other threads.
//!
//! Once the head went out the response is the app's to finish (a long streamed download is not
//! a timeout); `write_timeout` still bounds a client that stops reading.
//!
//! Races: the app thread registers and unregisters with the GIL held, and the injector checks
//! that the same request is still running and injects with the GIL held, so an exception meant
//! for one request is never raised in the next; a pending one left when the request ends anyway
//! is cleared in [`Watchdog::end`].

use std::collections::HashMap;
use std::os::raw::{c_long, c_ulong};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use ferrule_core::http1::RequestSummary;
use ferrule_core::supervise::Recycler;
use pyo3::prelude::*;

use crate::response::log_exception;
use crate::sender::Sender;

pyo3::create_exception!(
    ferrule,
    RequestTimeout,
    pyo3::exceptions::PyBaseException,
    "Raised by ferrule in an application thread whose request ran past --timeout (the client \
     already got 504 Gateway Timeout). A BaseException, so `except Exception:` does not \
     swallow it."
);

/// How often the watchdog looks at the running requests (the deadline's precision).
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// How long a timed-out thread has to unwind before its worker is replaced. 5 s: an injected
/// exception is raised at the thread's next bytecode, so a thread running Python unwinds in
/// milliseconds; one still stuck after 5 s is blocked in C code and will not unwind at all.
pub(crate) const GRACE: Duration = Duration::from_secs(5);

/// An application thread, as the watchdog knows it from its first request on.
#[derive(Debug)]
struct Slot {
    /// The thread's name, for log lines (kept here once, not copied with each request).
    thread: Arc<str>,
    request: Option<InFlight>,
    /// Requests the thread has begun: the number of the one in `request` (`InFlight::seq`).
    begun: u64,
}

/// One request an application thread is running.
#[derive(Debug)]
struct InFlight {
    /// Which of its thread's requests this is: an injection meant for it is dropped once the
    /// thread has moved on.
    seq: u64,
    started: Instant,
    sender: Arc<Sender>,
    head: RequestSummary,
    /// The deadline passed (looked at once).
    timed_out: bool,
    /// ... and the head had not gone out: answered 504, the thread must unwind.
    expired: bool,
    injected: bool,
    stuck: bool,
}

/// Shared by the application threads, the watchdog thread and the injector thread.
#[derive(Debug)]
pub(crate) struct Watchdog {
    deadline: Duration,
    /// Keyed by the Python thread id (`threading.get_ident()`).
    running: Mutex<HashMap<c_ulong, Slot>>,
    /// In a forked worker: asks the master for a replacement.
    recycler: Option<Arc<Recycler>>,
    /// Called by the injector (GIL held) for each timed-out request, before the injection.
    on_timeout: Option<Py<PyAny>>,
}

/// What the watchdog thread found on one tick.
enum Action {
    TimedOut {
        ident: c_ulong,
        seq: u64,
        thread: Arc<str>,
        head: RequestSummary,
    },
    Stuck {
        thread: Arc<str>,
        head: RequestSummary,
    },
}

impl Watchdog {
    /// Starts the watchdog and injector threads; they end when the returned `Arc` is dropped.
    /// `on_timeout(thread_ident, request_line)` runs in the injector thread for each request
    /// answered 504 (see the module docs).
    pub(crate) fn start(
        deadline: Duration,
        recycler: Option<Arc<Recycler>>,
        on_timeout: Option<Py<PyAny>>,
    ) -> std::io::Result<Arc<Watchdog>> {
        let dog = Arc::new(Watchdog {
            deadline,
            running: Mutex::new(HashMap::new()),
            recycler,
            on_timeout,
        });
        let (inject_tx, inject_rx) = mpsc::channel::<(c_ulong, u64)>();
        let weak = Arc::downgrade(&dog);
        std::thread::Builder::new()
            .name("ferrule-watchdog".into())
            .spawn(move || watch(&weak, &inject_tx))?;
        let weak = Arc::downgrade(&dog);
        std::thread::Builder::new()
            .name("ferrule-timeout".into())
            .spawn(move || {
                // Ends when the watchdog thread (the only sender) ends.
                while let Ok((ident, seq)) = inject_rx.recv() {
                    let Some(dog) = weak.upgrade() else { return };
                    Python::attach(|py| dog.inject(py, ident, seq));
                }
            })?;
        Ok(dog)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<c_ulong, Slot>> {
        // Every update is a whole insert, remove or flag: consistent after a panic.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An application thread took a request (call with the GIL held).
    pub(crate) fn begin(
        &self,
        ident: c_ulong,
        thread: &Arc<str>,
        sender: &Arc<Sender>,
        head: RequestSummary,
    ) {
        let sender = Arc::clone(sender);
        // Coarse (a tick behind at most): it only measures a timeout of seconds.
        let started = ferrule_core::clock::coarse_now();
        let mut running = self.lock();
        let slot = running.entry(ident).or_insert_with(|| Slot {
            thread: Arc::clone(thread),
            request: None,
            begun: 0,
        });
        slot.begun += 1;
        slot.request = Some(InFlight {
            seq: slot.begun,
            started,
            sender,
            head,
            timed_out: false,
            expired: false,
            injected: false,
            stuck: false,
        });
    }

    /// The thread is done with its request (call with the GIL held, on that thread).
    pub(crate) fn end(&self, ident: c_ulong) {
        let (done, thread) = {
            let mut running = self.lock();
            let Some(slot) = running.get_mut(&ident) else {
                return;
            };
            let Some(done) = slot.request.take() else {
                return;
            };
            // The name only for the log line below.
            let thread = done.stuck.then(|| Arc::clone(&slot.thread));
            (done, thread)
        };
        if done.injected {
            // SAFETY: the GIL is held (caller); a NULL exception clears this thread's pending
            // asynchronous exception, if it was never raised.
            unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(ident as c_long, std::ptr::null_mut()) };
        }
        if let Some(thread) = thread {
            log::warn!(
                "{}: thread {} finally let go of {} after {:.1}s",
                "Request timeout",
                thread,
                done.head,
                done.started.elapsed().as_secs_f64()
            );
        }
    }

    /// One look at the running requests (the watchdog thread, no GIL).
    fn tick(&self) -> Vec<Action> {
        let now = Instant::now();
        let mut actions = Vec::new();
        for (ident, slot) in self.lock().iter_mut() {
            let Some(r) = slot.request.as_mut() else {
                continue;
            };
            let ran = now.duration_since(r.started);
            if !r.timed_out && ran >= self.deadline {
                r.timed_out = true;
                // Lock order running → sender: app threads never hold a sender's lock while
                // taking `running`. Once the head went out the response is the app's to finish.
                r.expired = r.sender.time_out();
                if r.expired {
                    actions.push(Action::TimedOut {
                        ident: *ident,
                        seq: r.seq,
                        thread: slot.thread.clone(),
                        head: r.head.clone(),
                    });
                }
            } else if r.expired && !r.stuck && ran >= self.deadline + GRACE {
                r.stuck = true;
                actions.push(Action::Stuck {
                    thread: slot.thread.clone(),
                    head: r.head.clone(),
                });
            }
        }
        actions
    }

    fn act(&self, action: Action, inject: &mpsc::Sender<(c_ulong, u64)>) {
        let secs = self.deadline.as_secs_f64();
        match action {
            Action::TimedOut {
                ident,
                seq,
                thread,
                head,
            } => {
                log::error!(
                    "Request timeout: {} ran {secs:.1}s on thread {thread} without a response \
                     (answered 504); raising ferrule.RequestTimeout in the thread",
                    head
                );
                let _ = inject.send((ident, seq));
            }
            Action::Stuck { thread, head } => {
                let what = format!(
                    "{thread} in {}, {:.0}s after the request timeout: blocked in a call that \
                     ferrule.RequestTimeout cannot interrupt",
                    head,
                    GRACE.as_secs_f64()
                );
                match &self.recycler {
                    Some(recycler) => {
                        log::error!(
                            "Request timeout: application thread still stuck ({what}); asking \
                             the master to replace this worker"
                        );
                        recycler.retire(&format!("has a stuck application thread ({what})"));
                    }
                    None => log::error!(
                        "Request timeout: application thread still stuck ({what}); a single \
                         process has no master to replace it (run with -w/--workers for that): \
                         serving on with the other application threads"
                    ),
                }
            }
        }
    }

    /// Logs the stack of thread `ident`, calls `on_timeout` and raises `RequestTimeout` in the
    /// thread, if it still runs request `seq` (the injector thread, GIL held).
    fn inject(&self, py: Python<'_>, ident: c_ulong, seq: u64) {
        let current = |g: &HashMap<c_ulong, Slot>| {
            g.get(&ident)
                .and_then(|s| s.request.as_ref())
                .is_some_and(|r| r.seq == seq)
        };
        // The guard is dropped before any Python code runs: Python code may release the GIL,
        // and an application thread takes `running` with the GIL held.
        let head = match self
            .lock()
            .get(&ident)
            .and_then(|s| s.request.as_ref())
            .filter(|r| r.seq == seq)
        {
            Some(r) => r.head.clone(),
            None => return,
        };
        // May release the GIL (reading source lines): checked again below.
        match stack_of(py, ident) {
            Ok(Some(stack)) => log::error!(
                "Request timeout: stack of the application thread (id {ident}):\n{}",
                stack.trim_end()
            ),
            Ok(None) => {}
            Err(e) => log::error!("Request timeout: cannot format the thread's stack: {e}"),
        }
        if let Some(callback) = &self.on_timeout {
            // The request is still on the thread's stack for the callback to look at; it may
            // release the GIL too: checked again below.
            if let Err(e) = callback.call1(py, (ident, head.to_string())) {
                log_exception(
                    py,
                    &e,
                    &format!("Request timeout: the on_timeout callback raised (for {head}):"),
                );
            }
        }
        let mut running = self.lock();
        if !current(&running) {
            return;
        }
        let exc = py.get_type::<RequestTimeout>();
        // SAFETY: the GIL is held; `exc` is a live type object (SetAsyncExc takes its own
        // reference). The thread id comes from PyThread_get_thread_ident on that thread.
        let n = unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(ident as c_long, exc.as_ptr()) };
        if let Some(r) = running.get_mut(&ident).and_then(|s| s.request.as_mut()) {
            r.injected = n == 1;
        }
    }
}

/// The watchdog thread's loop: ends when the watchdog is dropped.
fn watch(dog: &Weak<Watchdog>, inject: &mpsc::Sender<(c_ulong, u64)>) {
    loop {
        std::thread::park_timeout(TICK);
        let Some(dog) = dog.upgrade() else { return };
        for action in dog.tick() {
            dog.act(action, inject);
        }
    }
}

/// The formatted Python stack of thread `ident`, if it runs Python code.
fn stack_of(py: Python<'_>, ident: c_ulong) -> PyResult<Option<String>> {
    let frames = py.import("sys")?.call_method0("_current_frames")?;
    let Some(frame) = frames.call_method1("get", (ident,))?.into_pyobject(py).ok() else {
        return Ok(None);
    };
    if frame.is_none() {
        return Ok(None);
    }
    let lines = py
        .import("traceback")?
        .call_method1("format_stack", (frame,))?;
    let text: String = pyo3::types::PyString::new(py, "")
        .call_method1("join", (lines,))?
        .extract()?;
    Ok(Some(text))
}
