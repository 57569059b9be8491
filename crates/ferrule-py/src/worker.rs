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
        let Job {
            mut request,
            responder,
        } = job;
        let start_response = match spares.start_response(py, responder) {
            Ok(start_response) => start_response,
            Err((e, sender)) => {
                let line = request.head.line();
                log_exception(py, &e, &format!("cannot create start_response for {line}"));
                sender.fail(py);
                if let Some(recycler) = recycler {
                    recycler.request_done();
                }
                continue;
            }
        };
        // Borrowed from `start_response`, which holds it for the whole request.
        let sender = start_response.get().sender();
        if let Some(dog) = watchdog {
            // Shares the head's bytes, no copy.
            dog.begin(ident, &thread_name, sender, request.head.line());
        }
        let served = catch_unwind(AssertUnwindSafe(|| {
            serve_one(
                py,
                app,
                &mut env,
                &mut spares,
                &mut request,
                &start_response,
            )
        }));
        if let Err(panic) = served {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            log::error!(
                "internal error (panic) serving {}: {what}",
                request.head.line()
            );
            sender.fail(py);
        }
        if let Some(dog) = watchdog {
            dog.end(ident);
        }
        env.errors().get().flush_pending();
        // Kept whichever way the request ended: reused only if nothing else holds it.
        spares.keep_start_response(start_response);
        if let Some(recycler) = recycler {
            recycler.request_done();
        }
    }
    Ok(())
}

/// One request, from environ to the final response part, answered through `start_response`'s
/// sender. A request that got as far as the app leaves its `wsgi.input` in `spares` for the
/// next one.
fn serve_one(
    py: Python<'_>,
    app: &Bound<'_, PyAny>,
    env: &mut EnvironBuilder,
    spares: &mut Spares,
    request: &mut Request,
    start_response: &Bound<'_, StartResponse>,
) {
    let sender = start_response.get().sender();
    // Used in place (it stays boxed): moving the fields out would copy the whole request.
    let body = std::mem::replace(&mut request.body, RequestBody::Empty);
    // What `wsgi.input` will need at the end: a stream to let go of, bytes to drop, or nothing
    // (each look inside it is a borrow, an atomic operation).
    let streamed = matches!(body, RequestBody::Stream(_));
    let bodiless = matches!(body, RequestBody::Empty);
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
        if streamed {
            if let Ok(mut input) = input.try_borrow_mut() {
                input.release();
            }
        }
    };
    match app.call1((environ, start_response)) {
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
    // Nothing else holds it once the app let go of the environ: the next request reuses it.
    spares.keep_input(input, bodiless);
}
