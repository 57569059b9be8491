//! The body of one application thread (`Server.serve_worker`): wait for a job with the GIL
//! released, build the environ, call the application, send its answer, repeat until the server
//! stops and the queue is drained.
//!
//! PEP 3333 "Error Handling": an exception from the application before its headers went out
//! becomes a `500 Internal Server Error` with a plain body and the traceback on the error log;
//! after the headers, the connection is aborted and the error logged. Nothing a request does can
//! end the loop: Python exceptions are handled per request, and a Rust panic while serving one is
//! caught, logged at error level with the request line, and answered like an application error.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use ferrule_core::exchange::{Job, JobReceiver, Request, RequestBody};
use ferrule_core::http1::RequestHead;
use ferrule_core::supervise::Recycler;

use crate::watchdog::{RequestTimeout, Watchdog};
use pyo3::prelude::*;

use crate::environ::{Concurrency, EnvironBuilder};
use crate::input::Input;
use crate::response::{log_app_error, log_exception, send_result};
use crate::reuse::Spares;
use crate::sender::Sender;
use crate::start_response::StartResponse;

/// Runs jobs from `jobs` until the queue ends.
pub(crate) fn serve(
    py: Python<'_>,
    app: &Py<PyAny>,
    jobs: &JobReceiver,
    concurrency: Concurrency,
    recycler: Option<&Recycler>,
    watchdog: Option<&Watchdog>,
) -> PyResult<()> {
    let mut env = EnvironBuilder::new(py, concurrency)?;
    let app = app.bind(py);
    // The watchdog knows this thread by its Python id (`threading.get_ident()`).
    // SAFETY: no precondition; returns the calling thread's id.
    let ident = unsafe { pyo3::ffi::PyThread_get_thread_ident() };
    let thread_name = py
        .import("threading")
        .and_then(|t| t.call_method0("current_thread"))
        .and_then(|t| t.getattr("name"))
        .and_then(|n| n.extract::<String>())
        .unwrap_or_else(|_| format!("{ident}"));
    let thread_name: Arc<str> = thread_name.into();
    let mut spares = Spares::default();
    // A job already queued is taken with the GIL held: releasing and re-taking it between two
    // requests costs more than the request's own Python work (docs/architecture.md).
    while let Some(job) = jobs.try_recv().or_else(|| py.detach(|| jobs.recv())) {
        let Job { request, responder } = job;
        let (sender, start_response) = spares.sender(py, responder);
        // For log lines about this request after `serve_one` consumed it: shares the head's
        // bytes, no copy.
        let line = request.head.line();
        if let Some(dog) = watchdog {
            dog.begin(ident, &thread_name, &sender, line.clone());
        }
        let served = catch_unwind(AssertUnwindSafe(|| {
            serve_one(
                py,
                app,
                &mut env,
                &mut spares,
                request,
                &sender,
                start_response,
            )
        }));
        if let Err(panic) = served {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            log::error!("internal error (panic) serving {line}: {what}");
            sender.fail(py);
        }
        if let Some(dog) = watchdog {
            dog.end(ident);
        }
        env.errors().get().flush_pending();
        if let Some(recycler) = recycler {
            recycler.request_done();
        }
    }
    Ok(())
}

/// One request, from environ to the final response part. `start_response`: one to reuse (made
/// for `sender`), else a new one is made. A request that got as far as the app leaves its
/// objects in `spares` for the next one.
fn serve_one(
    py: Python<'_>,
    app: &Bound<'_, PyAny>,
    env: &mut EnvironBuilder,
    spares: &mut Spares,
    mut request: Box<Request>,
    sender: &Arc<Sender>,
    start_response: Option<Py<StartResponse>>,
) {
    // Used in place: moving the fields out of the box would copy the whole request.
    let body = std::mem::replace(&mut request.body, RequestBody::Empty);
    let Request {
        head,
        conn,
        forwarded,
        ..
    } = &*request;
    let request_line = || RequestHead::summary(head);
    // A step before the app failed: logged, answered 500, the request is over.
    let give_up = |e: PyErr, what: &str| {
        log_exception(py, &e, &format!("cannot {what} for {}", request_line()));
        sender.fail(py);
    };
    let input = match spares.input(py, Input::new(body)) {
        Ok(input) => input,
        Err(e) => {
            give_up(e, "create wsgi.input");
            return;
        }
    };
    let environ = match env.build(py, head, conn, forwarded.as_deref(), &input) {
        Ok(environ) => environ,
        Err(e) => {
            give_up(e, "build the environ");
            return;
        }
    };
    let release_input = || {
        if let Ok(mut input) = input.try_borrow_mut() {
            input.release();
        }
    };
    let start_response = match start_response {
        Some(reused) => reused.into_bound(py),
        None => match StartResponse::new(py, Arc::clone(sender)).and_then(|s| Bound::new(py, s)) {
            Ok(start_response) => start_response,
            Err(e) => {
                give_up(e, "create start_response");
                return;
            }
        },
    };
    match app.call1((environ, &start_response)) {
        Ok(result) => send_result(py, &result, sender, &request_line, release_input),
        Err(e) => {
            let body_gone = input.try_borrow().is_ok_and(|i| i.client_went_away());
            if e.is_instance_of::<RequestTimeout>(py) {
                // The watchdog answered 504 and logged the stack already.
                log::warn!(
                    "Request timeout: {} unwound (ferrule.RequestTimeout)",
                    request_line()
                );
            } else if body_gone {
                log::info!(
                    "{}: client went away while sending the request body",
                    request_line()
                );
            } else {
                log_app_error(
                    py,
                    &e,
                    sender,
                    &format!("error handling {}", request_line()),
                );
            }
            release_input();
            sender.fail(py);
        }
    }
    // Nothing else holds them once the app let go of the environ: the next request reuses them.
    spares.keep_input(input);
    spares.keep_start_response(start_response);
}
