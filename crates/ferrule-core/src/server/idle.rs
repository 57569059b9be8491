//! The deadlines of idle connections: one set per process, swept by one task.
//!
//! A connection waiting for a request (keep-alive, or its first request under the header
//! timeout) must close when its deadline passes or the server shuts down. A timer and a
//! shutdown watch in every waiting connection's task would cost each idle connection about
//! 250 bytes (tokio's `Sleep` is 112, a watch `Changed` 120) and every request an insertion into
//! and removal from tokio's timer wheel, whose insertions may also wake the I/O driver with a
//! system call. Here a waiting connection holds a slot number; [`IdleSet`] keeps its deadline and
//! waker, and [`IdleSet::sweep`], run by one task every [`SWEEP_TICK`], wakes those whose deadline
//! passed. Shutdown wakes them all at once (or, for a connection still waiting for its first
//! request, moves its deadline to [`FIRST_REQUEST_GRACE`] from then, see `conn`).
//!
//! A request waiting in the job queue for an application thread (`queue_timeout`) waits here
//! the same way ([`Wait::Queued`]): its deadline is not moved by the shutdown, which lets the
//! queued requests run.
//!
//! The price is precision: an idle connection closes up to [`SWEEP_TICK`] after its deadline,
//! which no client can tell from network delay (gunicorn's own keep-alive checks run once a
//! second).
//!
//! Parking: an HTTP/1 connection still waiting at its second sweep (so idle for 100-200 ms) is
//! asked to park ([`Expiry::Park`]): its task ends and the connection waits outside any task
//! (`conn::park`), its slot then holding the parked connection's waker. A client between two
//! quick requests never parks; one that stays idle costs its socket's registration, its slot
//! and the parked state, not a task.

use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often the sweeper looks for expired idle connections while any wait: the latest an
/// idle connection closes after its deadline. 100 ms: far below any sensible keep-alive or
/// header timeout (seconds), and ten wake-ups a second only while connections are idle.
pub(crate) const SWEEP_TICK: Duration = Duration::from_millis(100);

use super::conn::FIRST_REQUEST_GRACE;

/// What a connection waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Its first request, under the header timeout: on shutdown it gets [`FIRST_REQUEST_GRACE`].
    FirstRequest,
    /// Its next request (keep-alive): ends at once on shutdown.
    NextRequest,
    /// An application thread for its queued request (`queue_timeout`): the shutdown changes
    /// nothing.
    Queued,
}

impl Wait {
    fn flags(self) -> u64 {
        match self {
            Wait::FirstRequest => FIRST,
            Wait::NextRequest => 0,
            Wait::Queued => QUEUED,
        }
    }
}

/// How an idle wait ended, if it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// The deadline passed.
    TimedOut,
    /// The server is shutting down.
    ShuttingDown,
    /// Not an end: a parkable wait has lasted past a sweep tick, and its task should park the
    /// connection ([`IdleSet::park`]) and end. Returned once per slot.
    Park,
}

/// Every idle connection's deadline and waker (see the module docs).
#[derive(Debug)]
pub(crate) struct IdleSet {
    /// What deadlines are counted from (milliseconds since).
    base: Instant,
    inner: Mutex<Inner>,
}

impl Default for IdleSet {
    fn default() -> IdleSet {
        IdleSet {
            base: Instant::now(),
            inner: Mutex::default(),
        }
    }
}

/// Slots per chunk of the table. The table grows by whole chunks, never by reallocating (and
/// copying) what it holds: a connection's share of the table stays its slot's 24 bytes.
const CHUNK: usize = 256;

#[derive(Debug, Default)]
struct Inner {
    chunks: Vec<Box<[Slot; CHUNK]>>,
    /// Numbers of free slots, reused first so the table stays as large as the busiest moment.
    free: Vec<u32>,
    /// Slots handed out so far (the first `used` slots exist; those not in `free` are in use).
    used: u32,
    /// Waiting connections (slots in use).
    waiting: usize,
    /// The server is shutting down: new waits end at once (or get the first-request grace).
    stopping: bool,
    /// The sweeper, parked while no connection waits.
    sweeper: Option<Waker>,
}

impl Inner {
    fn slot(&mut self, n: u32) -> &mut Slot {
        let n = n as usize;
        &mut self.chunks[n / CHUNK][n % CHUNK]
    }
}

/// One waiting connection: 24 bytes.
#[derive(Debug, Default)]
struct Slot {
    /// The deadline in milliseconds since [`IdleSet::base`], shifted left by [`FLAG_BITS`],
    /// with the `FLAG_*` bits below it.
    word: u64,
    waker: Option<Waker>,
}

const FLAG_BITS: u32 = 9;
/// The slot is in use.
const IN_USE: u64 = 1;
/// Waiting for its first request (the shutdown grace applies).
const FIRST: u64 = 2;
/// Ended: the deadline passed.
const TIMED_OUT: u64 = 4;
/// Ended: the server is shutting down.
const SHUT_DOWN: u64 = 8;
/// A queued request's wait ([`Wait::Queued`]).
const QUEUED: u64 = 16;
/// A sweep has seen the wait: the next one asks it to park, if it may.
const SEEN: u64 = 32;
/// The wait may be parked ([`IdleSet::parkable_slot`]).
const PARKABLE: u64 = 64;
/// The sweeper asked the wait to park ([`Expiry::Park`]).
const PARK_ASKED: u64 = 128;
/// The connection is parked: the waker is the parked connection's.
const PARKED: u64 = 256;

impl Slot {
    fn deadline_ms(&self) -> u64 {
        self.word >> FLAG_BITS
    }

    fn set_deadline_ms(&mut self, ms: u64) {
        self.word = (ms << FLAG_BITS) | (self.word & ((1 << FLAG_BITS) - 1));
    }

    fn ended(&self) -> Option<Expiry> {
        if self.word & TIMED_OUT != 0 {
            Some(Expiry::TimedOut)
        } else if self.word & SHUT_DOWN != 0 {
            Some(Expiry::ShuttingDown)
        } else {
            None
        }
    }

    fn end(&mut self, why: Expiry) -> Option<Waker> {
        self.word |= match why {
            Expiry::TimedOut => TIMED_OUT,
            Expiry::ShuttingDown => SHUT_DOWN,
            Expiry::Park => 0,
        };
        self.waker.take()
    }

    /// Called by each sweep that leaves the wait running: the first marks it seen, the second
    /// asks a parkable wait to park (returning its task's waker to wake).
    fn age(&mut self) -> Option<Waker> {
        if self.word & (PARKABLE | PARK_ASKED) != PARKABLE {
            return None;
        }
        if self.word & SEEN == 0 {
            self.word |= SEEN;
            return None;
        }
        self.word |= PARK_ASKED;
        self.waker.take()
    }
}

/// A connection's place in the [`IdleSet`] while it waits; freed on drop.
#[derive(Debug)]
pub(crate) struct IdleSlot<'a> {
    set: &'a IdleSet,
    slot: Option<u32>,
    /// Registered [`PARKABLE`].
    parkable: bool,
}

impl IdleSlot<'_> {
    /// The slot's number, which stays in use (for a parked connection): hand it back with
    /// [`IdleSet::adopt`] or free it with [`IdleSet::release`]. `None` if never registered.
    pub(crate) fn detach(mut self) -> Option<u32> {
        self.slot.take()
    }
}

impl Drop for IdleSlot<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.slot.take() {
            self.set.release(n);
        }
    }
}

impl IdleSet {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change to the set is complete before its lock is released, so a poisoned lock
        // (a panic elsewhere while holding it) still guards a consistent set.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Milliseconds from [`IdleSet::base`] to `t` (0 for earlier instants).
    fn ms(&self, t: Instant) -> u64 {
        // No server runs for the 584 million years that would overflow this.
        t.saturating_duration_since(self.base).as_millis() as u64
    }

    /// A wait that is not registered yet: registration happens on the first pending poll, so a
    /// connection whose next request is already there never touches the set.
    pub(crate) fn slot(&self) -> IdleSlot<'_> {
        IdleSlot {
            set: self,
            slot: None,
            parkable: false,
        }
    }

    /// Like [`IdleSet::slot`], for a wait that may be asked to park ([`Expiry::Park`]).
    pub(crate) fn parkable_slot(&self) -> IdleSlot<'_> {
        IdleSlot {
            set: self,
            slot: None,
            parkable: true,
        }
    }

    /// Frees slot `n` (from [`IdleSlot::detach`]).
    pub(crate) fn release(&self, n: u32) {
        let mut inner = self.lock();
        *inner.slot(n) = Slot::default();
        inner.free.push(n);
        inner.waiting -= 1;
    }

    /// Parks the connection of slot `n` (which returned [`Expiry::Park`]): `waker` is woken
    /// when its wait ends. False if it already has (the caller then resumes it at once).
    pub(crate) fn park(&self, n: u32, waker: &Waker) -> bool {
        let mut inner = self.lock();
        let entry = inner.slot(n);
        if entry.ended().is_some() {
            return false;
        }
        entry.word |= PARKED;
        entry.waker = Some(waker.clone());
        true
    }

    /// Slot `n` (from [`IdleSlot::detach`]) back as a wait, with its deadline (for waits
    /// after this one) and whether it waits for the connection's first request.
    pub(crate) fn adopt(&self, n: u32) -> (IdleSlot<'_>, Instant, bool) {
        let mut inner = self.lock();
        let entry = inner.slot(n);
        let deadline = self.base + Duration::from_millis(entry.deadline_ms());
        let first = entry.word & FIRST != 0;
        let slot = IdleSlot {
            set: self,
            slot: Some(n),
            parkable: entry.word & PARKABLE != 0,
        };
        (slot, deadline, first)
    }

    /// Polls one connection's wait: `Ready` once its deadline passed or the server is shutting
    /// down. `deadline` is read on the first call only.
    pub(crate) fn poll_expiry(
        &self,
        slot: &mut IdleSlot<'_>,
        deadline: Instant,
        wait: Wait,
        cx: &mut Context<'_>,
    ) -> Poll<Expiry> {
        let mut inner = self.lock();
        let Some(n) = slot.slot else {
            let mut deadline = deadline;
            if inner.stopping {
                match wait {
                    Wait::NextRequest => return Poll::Ready(Expiry::ShuttingDown),
                    Wait::FirstRequest => {
                        deadline = deadline.min(Instant::now() + FIRST_REQUEST_GRACE)
                    }
                    Wait::Queued => {}
                }
            }
            let parkable = if slot.parkable { PARKABLE } else { 0 };
            let entry = Slot {
                word: (self.ms(deadline) << FLAG_BITS) | IN_USE | wait.flags() | parkable,
                waker: Some(cx.waker().clone()),
            };
            let n = match inner.free.pop() {
                Some(n) => n,
                None => {
                    let n = inner.used;
                    if n as usize == inner.chunks.len() * CHUNK {
                        inner
                            .chunks
                            .push(Box::new(std::array::from_fn(|_| Slot::default())));
                    }
                    inner.used += 1;
                    n
                }
            };
            *inner.slot(n) = entry;
            inner.waiting += 1;
            if inner.waiting == 1 {
                if let Some(sweeper) = inner.sweeper.take() {
                    sweeper.wake();
                }
            }
            slot.slot = Some(n);
            return Poll::Pending;
        };
        let entry = inner.slot(n);
        if let Some(end) = entry.ended() {
            return Poll::Ready(end);
        }
        if entry.word & (PARK_ASKED | PARKED) == PARK_ASKED {
            return Poll::Ready(Expiry::Park);
        }
        match &entry.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => entry.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Ends the waits whose deadline is past `now`; with `stopping`, starts the shutdown (once).
    /// Returns how many connections still wait.
    pub(crate) fn sweep(&self, now: Instant, stopping: bool) -> usize {
        let now_ms = self.ms(now);
        let grace_ms = self.ms(now + FIRST_REQUEST_GRACE);
        let mut wake = Vec::new();
        let mut inner = self.lock();
        let starts_stopping = stopping && !inner.stopping;
        inner.stopping |= stopping;
        // A wait that ends past its deadline during shutdown ended because of the shutdown.
        let why = if inner.stopping {
            Expiry::ShuttingDown
        } else {
            Expiry::TimedOut
        };
        // Nothing parks once the server stops: every wait is about to end.
        let stopping_now = inner.stopping;
        let used = inner.used as usize;
        for entry in inner
            .chunks
            .iter_mut()
            .flat_map(|c| c.iter_mut())
            .take(used)
        {
            if entry.word & IN_USE == 0 || entry.ended().is_some() {
                continue;
            }
            let queued = entry.word & QUEUED != 0;
            if starts_stopping && !queued {
                if entry.word & FIRST == 0 {
                    wake.extend(entry.end(Expiry::ShuttingDown));
                    continue;
                }
                entry.set_deadline_ms(entry.deadline_ms().min(grace_ms));
            }
            if entry.deadline_ms() <= now_ms {
                wake.extend(entry.end(if queued { Expiry::TimedOut } else { why }));
            } else if !stopping_now {
                wake.extend(entry.age());
            }
        }
        let waiting = inner.waiting;
        drop(inner);
        for w in wake {
            w.wake();
        }
        waiting
    }

    /// Waits `wait` (a request's `queue_timeout`), to within [`SWEEP_TICK`].
    pub(crate) async fn queued(&self, wait: Duration) {
        let deadline = crate::clock::coarse_now() + wait;
        let mut slot = self.slot();
        std::future::poll_fn(|cx| self.poll_expiry(&mut slot, deadline, Wait::Queued, cx)).await;
    }

    /// The sweeper's wait while no connection is idle: `Ready` once one is.
    pub(crate) fn poll_someone_waits(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.lock();
        if inner.waiting > 0 {
            return Poll::Ready(());
        }
        inner.sweeper = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The sweeper: runs for as long as the server, on its I/O thread. Parked while no connection
/// waits; once the server stops it sweeps every tick for the first-request graces.
pub(crate) async fn sweeper(shared: std::sync::Arc<super::Shared>) {
    let idle = &shared.idle;
    let mut stop = shared.shutdown.watch();
    // `shutdown` only ever goes from false to true, so any change (or the sender gone with the
    // server) means the server is stopping.
    let mut stopping = *stop.borrow_and_update();
    loop {
        if stopping {
            tokio::time::sleep(SWEEP_TICK).await;
        } else {
            tokio::select! {
                _ = std::future::poll_fn(|cx| idle.poll_someone_waits(cx)) => {}
                _ = stop.changed() => stopping = true,
            }
            if !stopping {
                tokio::select! {
                    _ = tokio::time::sleep(SWEEP_TICK) => {}
                    _ = stop.changed() => stopping = true,
                }
            }
        }
        idle.sweep(Instant::now(), stopping);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A waker that counts its wakes.
    fn counting_waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (Arc::clone(&count), Waker::from(count))
    }

    /// Polls `slot`'s wait and asserts it is still pending.
    fn assert_pending(
        set: &IdleSet,
        slot: &mut IdleSlot<'_>,
        deadline: Instant,
        wait: Wait,
        cx: &mut Context<'_>,
    ) {
        assert!(set.poll_expiry(slot, deadline, wait, cx).is_pending());
    }

    #[test]
    fn a_wait_ends_once_its_deadline_is_swept() {
        let set = IdleSet::default();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let now = Instant::now();
        let mut slot = set.slot();
        let deadline = now + Duration::from_secs(5);
        assert_pending(&set, &mut slot, deadline, Wait::NextRequest, &mut cx);
        assert_eq!(set.sweep(now + Duration::from_secs(4), false), 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert_pending(&set, &mut slot, deadline, Wait::NextRequest, &mut cx);
        set.sweep(now + Duration::from_secs(5), false);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            set.poll_expiry(&mut slot, deadline, Wait::NextRequest, &mut cx),
            Poll::Ready(Expiry::TimedOut)
        );
        drop(slot);
        assert_eq!(set.sweep(now, false), 0);
    }

    #[test]
    fn shutdown_ends_keepalive_waits_and_shortens_first_request_waits() {
        let set = IdleSet::default();
        let (_count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        let mut keepalive = set.slot();
        let mut first = set.slot();
        assert_pending(&set, &mut keepalive, far, Wait::NextRequest, &mut cx);
        assert_pending(&set, &mut first, far, Wait::FirstRequest, &mut cx);
        set.sweep(now, true);
        assert_eq!(
            set.poll_expiry(&mut keepalive, far, Wait::NextRequest, &mut cx),
            Poll::Ready(Expiry::ShuttingDown)
        );
        assert_pending(&set, &mut first, far, Wait::FirstRequest, &mut cx);
        set.sweep(now + FIRST_REQUEST_GRACE, true);
        assert_eq!(
            set.poll_expiry(&mut first, far, Wait::FirstRequest, &mut cx),
            Poll::Ready(Expiry::ShuttingDown)
        );
        // A wait that starts during the shutdown: at once, or with the grace.
        let mut late = set.slot();
        assert_eq!(
            set.poll_expiry(&mut late, far, Wait::NextRequest, &mut cx),
            Poll::Ready(Expiry::ShuttingDown)
        );
        // A queued request's wait is not ended by the shutdown, only by its deadline.
        let mut queued = set.slot();
        assert_pending(&set, &mut queued, far, Wait::Queued, &mut cx);
        set.sweep(now + Duration::from_secs(2), true);
        assert_pending(&set, &mut queued, far, Wait::Queued, &mut cx);
        set.sweep(far, true);
        assert_eq!(
            set.poll_expiry(&mut queued, far, Wait::Queued, &mut cx),
            Poll::Ready(Expiry::TimedOut)
        );
        let mut late_first = set.slot();
        assert_pending(&set, &mut late_first, far, Wait::FirstRequest, &mut cx);
    }

    #[test]
    fn freed_slots_are_reused() {
        let set = IdleSet::default();
        let (_count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let far = Instant::now() + Duration::from_secs(60);
        for _ in 0..3 {
            let mut slot = set.slot();
            assert_pending(&set, &mut slot, far, Wait::NextRequest, &mut cx);
        }
        assert_eq!(set.lock().used, 1);
        assert_eq!(set.lock().waiting, 0);
    }

    #[test]
    fn a_slot_is_24_bytes_and_the_table_grows_by_chunks() {
        assert_eq!(std::mem::size_of::<Slot>(), 24);
        let set = IdleSet::default();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let far = Instant::now() + Duration::from_secs(60);
        let mut slots: Vec<_> = (0..CHUNK + 1).map(|_| set.slot()).collect();
        for slot in &mut slots {
            assert_pending(&set, slot, far, Wait::NextRequest, &mut cx);
        }
        assert_eq!(set.lock().chunks.len(), 2);
        assert_eq!(set.sweep(far, false), CHUNK + 1);
        assert_eq!(count.0.load(Ordering::SeqCst), CHUNK + 1);
        drop(slots);
        assert_eq!(set.sweep(far, false), 0);
    }

    #[test]
    fn the_sweeper_is_woken_when_the_first_connection_waits() {
        let set = IdleSet::default();
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(set.poll_someone_waits(&mut cx).is_pending());
        let mut slot = set.slot();
        let far = Instant::now() + Duration::from_secs(60);
        assert_pending(&set, &mut slot, far, Wait::NextRequest, &mut cx);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(set.poll_someone_waits(&mut cx).is_ready());
    }

    #[test]
    fn a_parkable_wait_is_asked_to_park_at_its_second_sweep_then_parks() {
        let set = IdleSet::default();
        let (task, task_waker) = counting_waker();
        let (parked, parked_waker) = counting_waker();
        let mut cx = Context::from_waker(&task_waker);
        let now = Instant::now();
        let deadline = now + Duration::from_secs(5);
        let mut slot = set.parkable_slot();
        assert_pending(&set, &mut slot, deadline, Wait::FirstRequest, &mut cx);
        // First sweep: seen, nothing asked.
        set.sweep(now + Duration::from_millis(100), false);
        assert_eq!(task.0.load(Ordering::SeqCst), 0);
        // Second sweep: the task is woken and told to park, once.
        set.sweep(now + Duration::from_millis(200), false);
        assert_eq!(task.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            set.poll_expiry(&mut slot, deadline, Wait::FirstRequest, &mut cx),
            Poll::Ready(Expiry::Park)
        );
        let n = slot.detach().expect("registered");
        assert!(set.park(n, &parked_waker));
        set.sweep(now + Duration::from_millis(300), false);
        assert_eq!(parked.0.load(Ordering::SeqCst), 0, "not asked twice");
        // Resumed: the same deadline and kind, and no second request to park.
        let (mut slot, resumed_deadline, first) = set.adopt(n);
        assert!(first);
        assert!(deadline.saturating_duration_since(resumed_deadline) < Duration::from_millis(1));
        assert!(resumed_deadline <= deadline);
        assert_pending(&set, &mut slot, deadline, Wait::FirstRequest, &mut cx);
        drop(slot);
        assert_eq!(set.sweep(now + Duration::from_secs(6), false), 0);
    }

    #[test]
    fn a_parked_wait_is_woken_by_its_deadline_and_by_the_shutdown() {
        for stopping in [false, true] {
            let set = IdleSet::default();
            let (_, task_waker) = counting_waker();
            let (parked, parked_waker) = counting_waker();
            let mut cx = Context::from_waker(&task_waker);
            let now = Instant::now();
            let deadline = now + Duration::from_secs(5);
            let mut slot = set.parkable_slot();
            assert_pending(&set, &mut slot, deadline, Wait::NextRequest, &mut cx);
            set.sweep(now, false);
            set.sweep(now, false);
            assert!(set
                .poll_expiry(&mut slot, deadline, Wait::NextRequest, &mut cx)
                .is_ready());
            let n = slot.detach().expect("registered");
            assert!(set.park(n, &parked_waker));
            let at = if stopping { now } else { deadline };
            set.sweep(at, stopping);
            assert_eq!(parked.0.load(Ordering::SeqCst), 1);
            let (mut slot, _, first) = set.adopt(n);
            assert!(!first);
            let why = if stopping {
                Expiry::ShuttingDown
            } else {
                Expiry::TimedOut
            };
            assert_eq!(
                set.poll_expiry(&mut slot, deadline, Wait::NextRequest, &mut cx),
                Poll::Ready(why)
            );
            // Parking a wait that has already ended fails: the caller resumes it at once.
            let n = slot.detach().expect("registered");
            assert!(!set.park(n, &parked_waker));
            set.release(n);
            assert_eq!(set.sweep(deadline, false), 0);
        }
    }

    #[test]
    fn waits_that_may_not_park_are_never_asked() {
        let set = IdleSet::default();
        let (task, task_waker) = counting_waker();
        let mut cx = Context::from_waker(&task_waker);
        let now = Instant::now();
        let deadline = now + Duration::from_secs(5);
        let mut slot = set.slot();
        assert_pending(&set, &mut slot, deadline, Wait::NextRequest, &mut cx);
        for tick in 1..5 {
            set.sweep(now + SWEEP_TICK * tick, false);
        }
        assert_eq!(task.0.load(Ordering::SeqCst), 0);
        assert_pending(&set, &mut slot, deadline, Wait::NextRequest, &mut cx);
    }
}
