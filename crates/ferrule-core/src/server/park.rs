//! Parked connections: an HTTP/1 connection that has waited for its next request for a sweep
//! tick or more waits outside any task.
//!
//! A waiting connection's task is its largest allocation: 512 bytes, as tokio aligns tasks to
//! 128 bytes and the connection's future is up to 416 (`tests::connection_task_stays_small`).
//! Once the idle set's sweeper has seen a wait twice it asks it to park
//! ([`super::super::idle::Expiry::Park`]), and the task moves the connection into a
//! [`Parked`] held by a waker of its own, registers that waker with the socket (read
//! readiness) and with the connection's idle slot (deadline, shutdown), and ends. Whichever
//! comes first wakes it: the waker spawns a new task that resumes the wait in the same slot, so
//! the keep-alive deadline, the first-request grace and the shutdown behave as if the
//! connection had never left its task. A client that sends its next request within a sweep
//! tick (any busy keep-alive client) never parks.
//!
//! What a parked connection costs: its socket's registration (tokio's, 256 bytes), the waker
//! with the parked state (one block under 256 bytes, `tests` below) and its 24-byte idle slot,
//! against 512 more for a task (counted in `crates/ferrule-core/tests/idle_memory.rs`, in RSS by
//! `benchmarks/idle_memory.py`; docs/architecture.md, "Memory").
//!
//! The parked state, the socket's registration and the waker form a cycle (the registration
//! holds the waker, which holds the connection, which holds the registration) that only the
//! wake-up breaks. Every parked connection is woken by its deadline at the latest, or by the
//! shutdown, which the server waits for (a parked connection still holds its [`ConnGuard`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Wake, Waker};

use super::{run, Conn, ConnGuard, PeerLabel, Resume, Shared, Stream};
use crate::exchange::ConnInfo;
use crate::metrics::OpenConnection;

/// A connection out of its task: what its task held while it waited, but its (empty)
/// buffers.
pub(super) struct Parked {
    shared: Arc<Shared>,
    stream: Stream,
    info: ConnInfo,
    guard: ConnGuard,
    open: OpenConnection,
    /// Where its wait resumes.
    at: Resume,
}

impl Parked {
    /// `conn` is idle, so its buffers are empty (`Conn::wait_idle` released them): they are
    /// not kept.
    pub(super) fn new(conn: Conn, guard: ConnGuard, open: OpenConnection, at: Resume) -> Parked {
        Parked {
            shared: conn.shared,
            stream: conn.stream,
            info: conn.info,
            guard,
            open,
            at,
        }
    }

    /// Spawns the task that resumes the connection's wait, detached: it owns the connection
    /// until it closes or parks again. On a runtime that has shut down the task is dropped,
    /// closing the connection.
    fn resume(self) {
        let runtime = self.shared.runtime.clone();
        let conn = Conn::new(self.shared, self.stream, self.info);
        drop(runtime.spawn(run(conn, self.guard, self.open, Some(self.at))));
    }
}

/// The waker of a parked connection: the first wake-up spawns the task that resumes it.
struct ParkedConn {
    parked: Mutex<Option<Parked>>,
}

impl Wake for ParkedConn {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let parked = self
            .parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(parked) = parked {
            parked.resume();
        }
    }
}

/// Parks `parked` (whose task returned [`super::Served::Park`]); from inside that task.
pub(super) fn park(parked: Parked) {
    let entry = Arc::new(ParkedConn {
        parked: Mutex::new(None),
    });
    let waker = Waker::from(Arc::clone(&entry));
    let mut cx = Context::from_waker(&waker);
    let mut held = entry.parked.lock().unwrap_or_else(PoisonError::into_inner);
    // Registered while the lock is held: a wake-up from another I/O thread waits for the
    // registration to finish, then takes the connection. Neither call wakes synchronously.
    let p = held.insert(parked);
    let waiting =
        p.shared.idle.park(p.at.slot, &waker) && p.stream.poll_read_ready(&mut cx).is_pending();
    if waiting {
        log::debug!("{}: idle: parked out of its task", PeerLabel(&p.info));
    }
    drop(held);
    if !waiting {
        // Ended (deadline, shutdown) or readable meanwhile: resume at once.
        entry.wake_by_ref();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_state_fits_a_256_byte_block() {
        // The block behind the waker: `Arc`'s two counts, then the state. Past 256 bytes a
        // parked connection takes mimalloc's next class (320).
        let block = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<ParkedConn>();
        assert!(block <= 256, "a parked connection's block is {block} bytes");
    }
}
