//! The per-request Python objects an application thread reuses: the previous request's
//! `wsgi.input`, `start_response` and response sender, refilled for the next request when this
//! thread holds the only reference to them. An app that kept one gets new ones next time, and
//! what it kept stays bound to its own, ended request. Refilling an object costs less than
//! allocating, setting up and tearing down a new one (docs/architecture.md, "Session 6").

use std::sync::Arc;

use ferrule_core::exchange::{RequestBody, Responder};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::input::Input;
use crate::sender::Sender;
use crate::start_response::StartResponse;

/// One application thread's objects kept from its previous request.
#[derive(Debug, Default)]
pub(crate) struct Spares {
    /// Emptied when kept: an idle thread does not hold on to the last request's body.
    input: Option<Py<Input>>,
    /// A `start_response` (with its sender and `write` callable).
    start_response: Option<Py<StartResponse>>,
}

impl Spares {
    /// A `wsgi.input` holding `input`: the kept one refilled if still nobody else's, else new.
    pub(crate) fn input<'py>(
        &mut self,
        py: Python<'py>,
        input: Input,
    ) -> PyResult<Bound<'py, Input>> {
        if let Some(spare) = self.input.take() {
            let spare = spare.into_bound(py);
            if sole_reference(&spare) {
                if let Ok(mut slot) = spare.try_borrow_mut() {
                    *slot = input;
                    drop(slot);
                    return Ok(spare);
                }
            }
        }
        Bound::new(py, input)
    }

    /// Keeps a request's `wsgi.input`, emptied, if nothing else holds it. `empty`: it was made
    /// for a request without a body, so there is nothing to empty.
    pub(crate) fn keep_input(&mut self, input: Bound<'_, Input>, empty: bool) {
        if !sole_reference(&input) {
            return;
        }
        if !empty {
            let Ok(mut slot) = input.try_borrow_mut() else {
                return;
            };
            *slot = Input::new(RequestBody::Empty);
        }
        self.input = Some(input.unbind());
    }

    /// The `start_response` for a request answered through `responder`: the kept one, its sender
    /// renewed, when the app kept neither it nor its `write` callable (which hold the sender
    /// too); otherwise a new one with a new sender. `Err`: a new one could not be made; the
    /// sender comes back with the error so the request can still be answered.
    pub(crate) fn start_response<'py>(
        &mut self,
        py: Python<'py>,
        responder: Responder,
    ) -> Result<Bound<'py, StartResponse>, (PyErr, Arc<Sender>)> {
        if let Some(start_response) = self.start_response.take() {
            let start = start_response.into_bound(py);
            let kept = start.get();
            // The sender is held by `start_response` and its `write` only: nobody else's.
            if sole_reference(&start)
                && sole_reference(kept.write().bind(py))
                && Arc::strong_count(kept.sender()) == 2
            {
                kept.sender().renew(responder);
                return Ok(start);
            }
        }
        let sender = Sender::new(responder);
        StartResponse::new(py, Arc::clone(&sender))
            .and_then(|s| Bound::new(py, s))
            .map_err(|e| (e, sender))
    }

    /// Keeps a request's `start_response` for [`Spares::start_response`].
    pub(crate) fn keep_start_response(&mut self, start_response: Bound<'_, StartResponse>) {
        self.start_response = Some(start_response.unbind());
    }
}

/// True when `obj` is referenced once: by the caller's handle, nobody else.
fn sole_reference<T>(obj: &Bound<'_, T>) -> bool {
    // SAFETY: `obj` is a live object and the GIL is held (it is `Bound`).
    unsafe { ffi::Py_REFCNT(obj.as_ptr()) == 1 }
}
