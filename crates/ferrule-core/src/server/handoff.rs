//! Handing a request to an application thread, shared by the HTTP/1 driver (`conn.rs`, uwsgi
//! included) and the HTTP/2 streams (`h2.rs`): the queue bound, the push (claimable when a
//! queue timeout applies), a static file answered in the app's place, and the log lines of the
//! refusals, so both protocols refuse and log alike. Each caller answers a refusal in its own
//! framing through the outcome table ([`crate::http1::RequestError`]).
//!
//! - `max_queued_requests`: with that many jobs already waiting, the request is refused (503
//!   with `Retry-After`, `RequestError::QueueFull`) before it is queued.
//! - `queue_timeout`: a job no thread took within it is withdrawn and answered 503
//!   (`RequestError::QueueTimeout`); the app never runs it.

use super::access::PeerLabel;
use super::Shared;
use crate::exchange::{ConnInfo, Job, PartReceiver, QueueClaim, Request, Responder, ResponsePart};
use crate::middleware::Filter;

/// No application thread is left to take jobs (the server is stopping or they all died):
/// the caller answers 503.
#[derive(Debug)]
pub(crate) struct NoAppThreads;

impl Shared {
    /// True when `max_queued_requests` jobs already wait: the request must be refused. Logs
    /// it (debug, and a rate-limited warning), naming `conn`'s client.
    pub(crate) fn queue_full(&self, conn: &ConnInfo) -> bool {
        let max_queued = self.config.max_queued_requests;
        if max_queued == 0 || self.jobs.len() < max_queued {
            return false;
        }
        log::debug!(
            "{}: refused (503): {max_queued} requests already queued",
            PeerLabel(conn)
        );
        if let Some(held_back) = self.queue_full_warn.check() {
            log::warn!(
                "Request queue full ({max_queued} waiting for an application thread): \
                 answering 503 ({held_back} more since the last warning)"
            );
        }
        true
    }

    /// Queues `request` for an application thread and returns the receiver its response
    /// arrives on (through the middleware's `filter`), with the claim that withdraws it once a
    /// queue timeout passes (see [`Shared::queue_timed_out`]). With `static_part` (a `--static`
    /// file), that part is sent through the request's own channel instead (as its first part,
    /// it always fits) and the request is dropped. A refusal names the request's client.
    pub(crate) fn hand_off(
        &self,
        request: Box<Request>,
        filter: Filter,
        static_part: Option<ResponsePart>,
    ) -> Result<(PartReceiver, Option<QueueClaim>), NoAppThreads> {
        let (responder, rx) = Responder::channel();
        let rx = filter.wrap(rx);
        let job = Job { request, responder };
        let pushed = match (static_part, self.config.queue_wait()) {
            (Some(part), _) => {
                let _ = job.responder.try_send(part);
                Ok(None)
            }
            (None, Some(_)) => self.jobs.push_claimable(job).map(Some),
            (None, None) => self.jobs.push(job).map(|()| None),
        };
        match pushed {
            Ok(claim) => Ok((rx, claim)),
            Err(job) => {
                log::error!(
                    "{}: no application thread is taking requests",
                    PeerLabel(&job.request.conn)
                );
                drop(job);
                Err(NoAppThreads)
            }
        }
    }

    /// Completes once the request behind `claim` has waited `queue_timeout` for an application
    /// thread and was withdrawn (the app never runs it; logged): the caller answers it 503.
    /// Never completes without a queue timeout, or once a thread took the request first.
    /// `conn`: the request's connection, whose client the log line names.
    pub(crate) async fn queue_timed_out(&self, conn: &ConnInfo, claim: Option<&QueueClaim>) {
        if let (Some(claim), Some(wait)) = (claim, self.config.queue_wait()) {
            self.idle.queued(wait).await;
            if claim.withdraw() {
                self.log_queue_timeout(conn);
                return;
            }
        }
        std::future::pending().await
    }

    /// Logs a request withdrawn after waiting `queue_timeout` for a thread (debug, and a
    /// rate-limited warning).
    fn log_queue_timeout(&self, conn: &ConnInfo) {
        let wait = self.config.queue_wait();
        log::debug!(
            "{}: refused (503): no application thread within {wait:?}",
            PeerLabel(conn)
        );
        if let Some(held_back) = self.queue_timeout_warn.check() {
            log::warn!(
                "Queue timeout: a request waited {:.1}s for an application thread and was \
                 answered 503 ({held_back} more since the last warning)",
                wait.map_or(0.0, |d| d.as_secs_f64())
            );
        }
    }
}
