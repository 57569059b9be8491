//! The master's loop: keep `workers` workers alive, act on signals, stop cleanly.
//!
//! One iteration: fork what is missing (after the respawn backoff), `poll(2)` the self-pipe
//! and every worker pipe until something happens or the next deadline, act on signals, read
//! worker messages, reap exited workers with `waitpid(WNOHANG)`, SIGKILL workers past their
//! stop deadline. Signals (gunicorn's meanings):
//!
//! | signal | action |
//! |---|---|
//! | TERM | graceful stop: TERM to every worker, SIGKILL past `graceful_timeout`, exit 0 |
//! | INT, QUIT | fast stop: SIGKILL every worker, exit 0 |
//! | HUP | reload: fork a new set of workers; once all are ready, TERM the old ones |
//! | TTIN / TTOU | one worker more / less (the newest leaves, gracefully) |
//! | USR1 | reopen the error log; forwarded to the workers, which reopen both logs |
//! | USR2 | re-exec: start a new master over the same sockets; it stops this one once ready |
//!
//! Recycling reuses the reload path: a worker that asks to be replaced (`RETIRING`: max
//! requests, memory), has lived past `max_worker_lifetime`, or whose RSS the master finds over
//! `max_worker_memory` becomes *outgoing*: it keeps serving, no longer counts toward the
//! target, so a replacement is forked; once that one is `READY` the outgoing worker gets TERM
//! (in-flight requests finish), SIGKILL past `graceful_timeout`.
//!
//! With `reuse_port` the master's sockets only hold the addresses; each worker, right after
//! the fork, binds its own listening `SO_REUSEPORT` socket to the same address (and closes the
//! master's), so the kernel spreads connections evenly over the workers' accept queues.
//!
//! Liveness: a ready worker's event loop sends a heartbeat every second; one silent for
//! [`HEARTBEAT_TIMEOUT`] (stopped, deadlocked, stuck in a blocking call) is killed with SIGKILL
//! and replaced. A worker still booting gets `--boot-timeout` instead: one not `READY` that
//! long (plus [`BOOT_GRACE`]) after its fork (an import hung on a database, a lock, a DNS
//! lookup) is killed with SIGKILL and replaced through the respawn backoff, like a worker that
//! died. It is not a boot failure (an app that raises at import stops the master): the server
//! keeps trying, and during a HUP reload the old workers keep serving meanwhile. The worker
//! itself dumps its Python stacks to the error log at `--boot-timeout` (`faulthandler`, armed
//! around loading the app), so the grace lets that dump finish before the kill.
//!
//! Metrics (`--metrics-bind`): the heartbeats carry each worker's metrics snapshot, and the
//! master serves their sum, its restarts by reason and each worker's RSS from this same loop
//! (`crate::metrics::hub`: the listener is one more descriptor in the `poll`, no thread).

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::pipe::{self, decode, MasterLink, Message};
use super::signals::{self, SignalPipe};
use super::{
    ForkHooks, MasterEvent, MasterOptions, Role, SuperviseError, WorkerContext, EXIT_BOOT_FAILED,
    EXIT_MASTER_BOOT_FAILED,
};
use crate::config::ServerConfig;
use crate::metrics::hub::{Hub, RestartReason};
use crate::server::Listener;

/// Respawn delay after a first unexpected worker death.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest respawn delay: a worker that keeps crashing is retried this often.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A death this long after the previous one starts the backoff again from `BACKOFF_MIN`.
const BACKOFF_RESET: Duration = Duration::from_secs(10);
/// Longest `poll` wait: the loop rechecks its deadlines at least this often.
const POLL_MAX: Duration = Duration::from_secs(1);
/// How often the master checks its workers' age, memory and heartbeats.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// A ready worker whose event loop sent nothing for this long is killed and replaced. The event
/// loop never runs application code (that is `timeout`'s business) and beats every second, so
/// 10 s of silence means a stopped or wedged process, not a slow request; shorter would risk
/// killing a worker that a loaded machine merely did not schedule for a few seconds.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// A booting worker is killed this long after its `boot_timeout` passed: the worker's own
/// stack dump fires at `boot_timeout` (module docs), and the operator needs it whole.
pub const BOOT_GRACE: Duration = Duration::from_secs(1);
/// `max_worker_lifetime` gets a random extra of up to this fraction, so workers started
/// together do not all recycle at the same moment.
const LIFETIME_JITTER_FRACTION: u32 = 10;

/// One forked worker, as the master sees it.
#[derive(Debug)]
struct Slot {
    id: u32,
    pid: libc::pid_t,
    /// Reload generation it was forked in (HUP starts a new one).
    generation: u64,
    /// Read end of its pipe; `None` once the worker closed it.
    pipe: Option<OwnedFd>,
    buf: Vec<u8>,
    ready: bool,
    /// Set when the master asked it to stop: SIGKILL at this instant.
    kill_at: Option<Instant>,
    killed: bool,
    /// Being recycled: still serving, but replaced (like an old generation in a reload).
    outgoing: bool,
    started: Instant,
    /// Its `max_worker_lifetime` with jitter; `None` = no limit.
    lifetime: Option<Duration>,
    /// When it last sent anything (heartbeats included).
    last_seen: Instant,
    /// Why the master replaces it, once it decided to (`ferrule_worker_restarts_total`).
    restart: Option<RestartReason>,
}

impl Slot {
    fn active(&self) -> bool {
        self.kill_at.is_none()
    }
}

/// How the master is stopping.
#[derive(Debug, Clone, Copy)]
struct Stopping {
    code: i32,
}

pub(super) struct Master<'a> {
    config: &'a ServerConfig,
    listeners: Vec<Listener>,
    hooks: &'a mut dyn ForkHooks,
    signals: Option<SignalPipe>,
    slots: Vec<Slot>,
    target: usize,
    next_id: u32,
    generation: u64,
    stopping: Option<Stopping>,
    respawn_at: Instant,
    backoff: Duration,
    last_death: Option<Instant>,
    /// A HUP reload (or a recycle) is under way: old or outgoing workers are still active.
    reloading: bool,
    /// When the workers' age, memory and heartbeats were last checked.
    last_check: Instant,
    /// systemd was told `READY=1` (once every initial worker was ready).
    announced: bool,
    /// A HUP reload was announced (`RELOADING=1`); `READY=1` follows when it is done.
    hup_announced: bool,
    /// USR2: how to start a new master, and the one started (until it is reaped).
    options: MasterOptions,
    new_master: Option<libc::pid_t>,
    /// `--metrics-bind`: the workers' metrics, served from this loop.
    metrics: Option<Hub>,
}

fn signal_pid(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we forked and have not reaped yet (so it cannot be reused).
    // ESRCH (already exiting) is fine: the reap will follow.
    unsafe { libc::kill(pid, sig) };
}

/// `CLOCK_MONOTONIC` in microseconds (systemd's `MONOTONIC_USEC=` with `RELOADING=1`).
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1000
}

/// True when a worker forked at `started` and still not ready at `now` is past its boot
/// deadline: `timeout` (`None` = no deadline) plus [`BOOT_GRACE`].
fn boot_overdue(started: Instant, now: Instant, timeout: Option<Duration>) -> bool {
    timeout.is_some_and(|t| now.saturating_duration_since(started) > t + BOOT_GRACE)
}

/// `exited with code 0`, `killed by SIGKILL`, for log lines.
fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("was killed by {}", signals::name(libc::WTERMSIG(status)))
    } else {
        format!("ended with status {status:#x}")
    }
}

impl<'a> Master<'a> {
    pub(super) fn new(
        config: &'a ServerConfig,
        listeners: Vec<Listener>,
        hooks: &'a mut dyn ForkHooks,
        options: MasterOptions,
    ) -> Result<Master<'a>, SuperviseError> {
        let signals = SignalPipe::install()
            .map_err(|e| SuperviseError::io("cannot install the master's signal handlers", e))?;
        log::info!("Master started, {} workers", config.workers);
        let metrics = Hub::bind(config, options.old_master.is_some())
            .map_err(|message| SuperviseError { message })?;
        Ok(Master {
            config,
            listeners,
            hooks,
            signals: Some(signals),
            slots: Vec::new(),
            target: config.workers.max(1),
            next_id: 1,
            generation: 0,
            stopping: None,
            respawn_at: Instant::now(),
            backoff: Duration::ZERO,
            last_death: None,
            reloading: false,
            last_check: Instant::now(),
            announced: false,
            hup_announced: false,
            options,
            new_master: None,
            metrics,
        })
    }

    pub(super) fn run(mut self) -> Result<Role, SuperviseError> {
        self.hooks.event(&MasterEvent::Ready);
        loop {
            if let Some(ctx) = self.fill()? {
                return Ok(Role::Worker(ctx));
            }
            if let Some(stop) = self.stopping {
                if self.slots.is_empty() {
                    if let Some(signals) = self.signals.take() {
                        signals.uninstall();
                    }
                    log::info!("Master exiting");
                    if self.new_master.is_some() {
                        // USR2: the new master serves on these sockets; their files stay.
                        self.listeners.iter_mut().for_each(Listener::keep_file);
                    }
                    // Dropping the listeners removes the socket files this master created.
                    return Ok(Role::Exit(stop.code));
                }
            }
            self.wait()?;
            let received = self.signals.as_ref().map(SignalPipe::drain);
            for sig in received.unwrap_or_default() {
                self.on_signal(sig);
            }
            self.read_pipes();
            self.serve_metrics();
            self.reap();
            self.enforce_deadlines();
            self.check_workers();
            self.announce();
        }
    }

    // -- keeping the right workers ----------------------------------------------------------

    /// Forks missing workers, retires extra or outdated ones. Returns in a forked child.
    fn fill(&mut self) -> Result<Option<WorkerContext>, SuperviseError> {
        if self.stopping.is_some() {
            return Ok(None);
        }
        let generation = self.generation;
        let current = |s: &&Slot| s.active() && s.generation == generation && !s.outgoing;
        // One by one: while old workers remain, at most one new worker boots at a time.
        let booting = |slots: &[Slot]| slots.iter().filter(current).any(|s| !s.ready);
        while self.slots.iter().filter(current).count() < self.target
            && Instant::now() >= self.respawn_at
            && !(self.config.reload_one_by_one && self.reloading && booting(&self.slots))
        {
            if let Some(ctx) = self.spawn()? {
                return Ok(Some(ctx));
            }
        }
        // TTOU: the newest current workers beyond the target leave.
        let extra = self
            .slots
            .iter()
            .filter(current)
            .count()
            .saturating_sub(self.target);
        for _ in 0..extra {
            if let Some(i) = self
                .slots
                .iter()
                .rposition(|s| s.active() && s.generation == generation && !s.outgoing)
            {
                self.retire(i, "fewer workers asked for");
            }
        }
        // HUP: old workers leave as new ones are ready (all at once, or one per new one).
        let ready = self
            .slots
            .iter()
            .filter(current)
            .filter(|s| s.ready)
            .count();
        let old = |s: &Slot| s.active() && (s.generation != generation || s.outgoing);
        let mut old_active = self.slots.iter().filter(|s| old(s)).count();
        let leave = if self.config.reload_one_by_one {
            (old_active + ready).saturating_sub(self.target)
        } else if ready >= self.target {
            old_active
        } else {
            0
        };
        for _ in 0..leave {
            if let Some(i) = self.slots.iter().position(old) {
                let why = if self.slots[i].outgoing {
                    "recycled, its replacement is ready"
                } else {
                    "replaced by a reload"
                };
                self.slots[i].restart.get_or_insert(RestartReason::Reload);
                self.retire(i, why);
                old_active -= 1;
            }
        }
        self.reloading = old_active > 0;
        Ok(None)
    }

    fn spawn(&mut self) -> Result<Option<WorkerContext>, SuperviseError> {
        let (read, write) =
            pipe::pipe().map_err(|e| SuperviseError::io("cannot create a worker pipe", e))?;
        let id = self.next_id;
        self.next_id += 1;
        // Before `before_fork`: the embedder may run code here (gunicorn's `pre_fork`).
        self.hooks.event(&MasterEvent::PreFork { id });
        let mask = signals::block();
        self.hooks.before_fork();
        // SAFETY: the master is single-threaded (module docs), so the child inherits no lock
        // held by another thread; the hooks prepared the embedding runtime.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            let e = std::io::Error::last_os_error();
            self.hooks.after_fork_parent();
            signals::restore(&mask);
            return Err(SuperviseError::io("cannot fork a worker", e));
        }
        if pid == 0 {
            self.hooks.after_fork_child();
            drop(read);
            // The other workers' pipes, the self-pipe and the metrics listener are the
            // master's business.
            self.slots.clear();
            self.metrics = None;
            if let Some(signals) = self.signals.take() {
                signals.reset_in_child();
            }
            signals::restore(&mask);
            let listeners = std::mem::take(&mut self.listeners);
            let listeners = if self.config.reuse_port {
                own_listeners(listeners, self.config.backlog)
            } else {
                listeners
            };
            return Ok(Some(WorkerContext {
                id,
                listeners,
                link: MasterLink::new(write),
            }));
        }
        self.hooks.after_fork_parent();
        signals::restore(&mask);
        drop(write);
        self.hooks.event(&MasterEvent::Forked { id, pid });
        if let Err(e) = pipe::set_nonblocking(&read) {
            log::warn!("worker {id} pipe: cannot make it non-blocking: {e}");
        }
        log::info!("Booting worker {id} with pid: {pid}");
        let lifetime = self.config.worker_lifetime().map(|l| {
            let spread = u64::try_from((l / LIFETIME_JITTER_FRACTION).as_millis()).unwrap_or(0);
            l + Duration::from_millis(super::recycle::random_up_to(spread))
        });
        let now = Instant::now();
        self.slots.push(Slot {
            id,
            pid,
            generation: self.generation,
            pipe: Some(read),
            buf: Vec::new(),
            ready: false,
            kill_at: None,
            killed: false,
            outgoing: false,
            started: now,
            lifetime,
            last_seen: now,
            restart: None,
        });
        Ok(None)
    }

    /// Asks slot `i` to stop gracefully (TERM), SIGKILL past the graceful timeout.
    fn retire(&mut self, i: usize, why: &str) {
        let graceful = self.config.graceful();
        let slot = &mut self.slots[i];
        if !slot.active() {
            return;
        }
        log::info!("Stopping worker {} (pid {}): {why}", slot.id, slot.pid);
        signal_pid(slot.pid, libc::SIGTERM);
        slot.kill_at = Some(Instant::now() + graceful);
    }

    fn begin_stop(&mut self, code: i32, fast: bool) {
        if self.stopping.is_none() {
            self.stopping = Some(Stopping { code });
            // After a USR2 the service goes on under the new master: not a stop for systemd.
            if self.new_master.is_none() {
                super::notify::notify("STOPPING=1");
            }
        }
        for i in 0..self.slots.len() {
            if fast {
                let slot = &mut self.slots[i];
                if !slot.killed {
                    signal_pid(slot.pid, libc::SIGKILL);
                    slot.killed = true;
                    slot.kill_at.get_or_insert_with(Instant::now);
                }
            } else {
                self.retire(i, "shutting down");
            }
        }
    }

    // -- events ----------------------------------------------------------------------------

    fn on_signal(&mut self, sig: libc::c_int) {
        match sig {
            libc::SIGTERM => {
                match self.new_master {
                    Some(pid) => log::info!("Handling signal: term (new master pid {pid} serves)"),
                    None => log::info!("Handling signal: term"),
                }
                self.begin_stop(0, false);
            }
            libc::SIGINT | libc::SIGQUIT => {
                log::info!("Handling signal: {}", signals::name(sig).to_lowercase());
                self.begin_stop(0, true);
            }
            libc::SIGHUP if self.stopping.is_none() => {
                self.generation += 1;
                self.reloading = true;
                self.hup_announced = true;
                super::notify::notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
                log::info!(
                    "Handling signal: hup (reload: starting {} new workers)",
                    self.target
                );
                self.hooks.event(&MasterEvent::Reload);
            }
            libc::SIGTTIN if self.stopping.is_none() => {
                let old = self.target;
                self.target += 1;
                log::info!("Handling signal: ttin ({} workers)", self.target);
                self.hooks.event(&MasterEvent::WorkersChanged {
                    new: self.target,
                    old,
                });
            }
            libc::SIGTTOU if self.stopping.is_none() => {
                let old = self.target;
                self.target = self.target.saturating_sub(1).max(1);
                log::info!("Handling signal: ttou ({} workers)", self.target);
                if self.target != old {
                    self.hooks.event(&MasterEvent::WorkersChanged {
                        new: self.target,
                        old,
                    });
                }
            }
            libc::SIGUSR1 => {
                let reopened = crate::log::reopen_error_log();
                log::info!("Handling signal: usr1 (reopening log files)");
                if let Err(e) = reopened {
                    log::error!("{e}");
                }
                // Only ready workers have their handler: SIGUSR1's default action is to
                // terminate. A worker still booting opened nothing of its own yet.
                for slot in self.slots.iter().filter(|s| s.ready && !s.killed) {
                    signal_pid(slot.pid, libc::SIGUSR1);
                }
            }
            libc::SIGUSR2 if self.stopping.is_none() => self.reexec(),
            _ => {} // SIGCHLD: the reap follows; others while stopping: ignored.
        }
    }

    /// USR2: starts a new master over the same sockets (see `reexec`).
    fn reexec(&mut self) {
        if let Some(pid) = self.new_master {
            log::warn!("Handling signal: usr2: a new master (pid {pid}) is already starting");
            return;
        }
        let Some(plan) = &self.options.reexec else {
            log::warn!("Handling signal: usr2: this master cannot re-execute itself; ignored");
            return;
        };
        let plan = plan.clone();
        self.hooks.event(&MasterEvent::PreExec);
        let metrics = self.metrics.as_ref().and_then(Hub::handover);
        match super::reexec::spawn(&plan, &self.listeners, metrics) {
            Ok(pid) => {
                log::info!(
                    "Handling signal: usr2 (re-executing: new master pid {pid}; this master \
                     stops once the new one is ready)"
                );
                self.new_master = Some(pid);
            }
            Err(e) => log::error!("Handling signal: usr2: cannot start a new master: {e}"),
        }
    }

    /// Waits until a signal, a worker message, or the next deadline.
    fn wait(&mut self) -> Result<(), SuperviseError> {
        let now = Instant::now();
        let mut deadline = now + POLL_MAX;
        for slot in &self.slots {
            if let Some(at) = slot.kill_at.filter(|_| !slot.killed) {
                deadline = deadline.min(at);
            }
        }
        if self.stopping.is_none() && self.respawn_at > now {
            deadline = deadline.min(self.respawn_at);
        }
        if let Some(at) = self.metrics.as_ref().and_then(Hub::deadline) {
            deadline = deadline.min(at.max(now));
        }
        let timeout = deadline.saturating_duration_since(now);
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.slots.len() + 1);
        if let Some(signals) = &self.signals {
            fds.push(libc::pollfd {
                fd: signals.fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for slot in &self.slots {
            if let Some(pipe) = &slot.pipe {
                fds.push(libc::pollfd {
                    fd: pipe.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        if let Some(hub) = &self.metrics {
            hub.poll_fds(&mut fds);
        }
        // Round up so a deadline 0.4 ms away does not spin.
        let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(SuperviseError::io("poll failed in the master", e));
            }
        }
        Ok(())
    }

    fn read_pipes(&mut self) {
        let mut boot_failure: Option<(u32, libc::pid_t, String)> = None;
        for slot in &mut self.slots {
            let Some(pipe) = &slot.pipe else { continue };
            let mut chunk = [0u8; 4096];
            let mut closed = false;
            loop {
                // SAFETY: reading into a valid local buffer from a descriptor we own.
                let n =
                    unsafe { libc::read(pipe.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
                match n {
                    0 => {
                        closed = true;
                        break;
                    }
                    n if n > 0 => {
                        slot.buf.extend_from_slice(&chunk[..n as usize]);
                        slot.last_seen = Instant::now();
                    }
                    _ => break, // EAGAIN (or EINTR): nothing more now
                }
            }
            loop {
                match decode(&mut slot.buf) {
                    Ok(Some(Message::Ready)) => {
                        slot.ready = true;
                        log::info!("Worker {} (pid {}) ready", slot.id, slot.pid);
                    }
                    Ok(Some(Message::BootFailed(text))) => {
                        boot_failure.get_or_insert((slot.id, slot.pid, text));
                    }
                    Ok(Some(Message::Heartbeat)) => {}
                    Ok(Some(Message::Metrics(bytes))) => {
                        if let Some(Err(e)) = self
                            .metrics
                            .as_mut()
                            .map(|hub| hub.worker_snapshot(slot.pid, &bytes))
                        {
                            log::warn!("Worker {} (pid {}) sent a {e}: ignored", slot.id, slot.pid);
                        }
                    }
                    Ok(Some(Message::Retiring(why))) => {
                        if slot.active() && !slot.outgoing {
                            log::info!(
                                "Worker {} (pid {}) {why}: recycling it (its replacement starts \
                                 first)",
                                slot.id,
                                slot.pid
                            );
                            slot.outgoing = true;
                            slot.restart = Some(RestartReason::of_retiring(&why));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        log::error!(
                            "Worker {} (pid {}) sent a bad message ({}): killing it",
                            slot.id,
                            slot.pid,
                            e.0
                        );
                        signal_pid(slot.pid, libc::SIGKILL);
                        slot.buf.clear();
                        closed = true;
                        break;
                    }
                }
            }
            if closed {
                slot.pipe = None;
            }
        }
        if let Some((id, pid, text)) = boot_failure {
            self.boot_failed(id, pid, text.trim_end());
        }
    }

    /// A worker could not load the app: say so once, stop everything, exit non-zero.
    fn boot_failed(&mut self, id: u32, pid: libc::pid_t, text: &str) {
        if self.stopping.is_some() {
            return; // only the first failure is reported
        }
        if self.config.reload && self.keep_serving_after_boot_failure(pid) {
            log::error!(
                "Worker {id} (pid {pid}) failed to boot; the running workers keep serving the \
                 previous code until a change fixes it (--reload)\n{text}"
            );
            return;
        }
        log::error!("Worker {id} (pid {pid}) failed to boot; stopping\n{text}");
        self.stopping = Some(Stopping {
            code: EXIT_MASTER_BOOT_FAILED,
        });
        self.begin_stop(EXIT_MASTER_BOOT_FAILED, false);
    }

    /// `--reload`: a replacement that cannot load the new code must not stop the server. When
    /// other workers serve, they are kept as they are (no longer outgoing, adopted into the
    /// current generation, so nothing is respawned until the next change) and true is
    /// returned; the failed worker is exiting by itself. False when nobody serves.
    fn keep_serving_after_boot_failure(&mut self, failed: libc::pid_t) -> bool {
        let serving = |s: &Slot| s.active() && s.ready && s.pid != failed;
        if !self.slots.iter().any(serving) {
            return false;
        }
        let graceful = self.config.graceful();
        let generation = self.generation;
        for slot in &mut self.slots {
            if slot.pid == failed {
                // Exiting on its own; counted as retired so its exit is no new failure.
                slot.kill_at
                    .get_or_insert_with(|| Instant::now() + graceful);
                slot.restart = Some(RestartReason::BootFailure);
            } else if serving(slot) {
                slot.outgoing = false;
                slot.generation = generation;
            }
        }
        true
    }

    fn reap(&mut self) {
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: waitpid with a valid status pointer; WNOHANG never blocks.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                return;
            }
            if Some(pid) == self.new_master {
                self.new_master = None;
                let how = describe_status(status);
                if self.stopping.is_none() {
                    log::error!("The new master (pid {pid}) {how}: this master serves on");
                } else {
                    log::info!("The new master (pid {pid}) {how}");
                }
                continue;
            }
            let Some(i) = self.slots.iter().position(|s| s.pid == pid) else {
                continue; // not a worker (e.g. a process the preloaded app started)
            };
            let slot = self.slots.remove(i);
            let restart = self.restart_reason(&slot, status);
            if let Some(hub) = self.metrics.as_mut() {
                hub.worker_exited(pid, restart);
            }
            self.hooks.event(&MasterEvent::ChildExit {
                id: slot.id,
                pid,
                status,
            });
            let how = describe_status(status);
            if !slot.active() || self.stopping.is_some() || slot.outgoing {
                log::info!("Worker {} (pid {pid}) {how}", slot.id);
            } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == EXIT_BOOT_FAILED {
                self.boot_failed(slot.id, pid, &format!("the worker {how}"));
            } else {
                log::error!("Worker {} (pid {pid}) {how}: replacing it", slot.id);
                self.schedule_respawn();
            }
        }
    }

    /// Why reaped worker `slot` (wait status `status`) is being replaced; `None` when it is not
    /// (the master is stopping, or wants fewer workers).
    fn restart_reason(&self, slot: &Slot, status: libc::c_int) -> Option<RestartReason> {
        if self.stopping.is_some() {
            None
        } else if slot.restart.is_some() {
            slot.restart
        } else if !slot.active() {
            None
        } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == EXIT_BOOT_FAILED {
            Some(RestartReason::BootFailure)
        } else {
            Some(RestartReason::of_status(status))
        }
    }

    /// `--metrics-bind`: accepts and answers metrics clients without blocking.
    fn serve_metrics(&mut self) {
        if let Some(hub) = self.metrics.as_mut() {
            let workers: Vec<(u32, libc::pid_t)> =
                self.slots.iter().map(|s| (s.id, s.pid)).collect();
            hub.serve(&workers);
        }
    }

    fn schedule_respawn(&mut self) {
        let now = Instant::now();
        self.backoff = match self.last_death {
            Some(t) if now.duration_since(t) < BACKOFF_RESET => {
                (self.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX)
            }
            _ => BACKOFF_MIN,
        };
        self.last_death = Some(now);
        self.respawn_at = now + self.backoff;
    }

    /// Tells systemd `READY=1` when the initial workers are all ready, and again when a HUP
    /// reload has finished (see `notify`).
    fn announce(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let generation = self.generation;
        let ready = self
            .slots
            .iter()
            .filter(|s| s.active() && s.generation == generation && !s.outgoing && s.ready)
            .count();
        if !self.announced && ready >= self.target {
            self.announced = true;
            super::notify::ready();
            if let Some(old) = self.options.old_master.take() {
                log::info!("Workers ready: telling the old master (pid {old}) to stop");
                // SAFETY: kill(2) with integer arguments. The old master is our parent, alive
                // until it gets this signal and stops (so its pid is not reused meanwhile).
                unsafe { libc::kill(old, libc::SIGTERM) };
            }
        } else if self.hup_announced && !self.reloading && ready >= self.target {
            self.hup_announced = false;
            super::notify::ready();
        }
    }

    /// Once per [`CHECK_INTERVAL`]: recycles workers past their lifetime or memory limit, kills
    /// ready workers whose event loop went silent and booting ones past `boot_timeout`.
    fn check_workers(&mut self) {
        let now = Instant::now();
        if self.stopping.is_some() || now.duration_since(self.last_check) < CHECK_INTERVAL {
            return;
        }
        self.last_check = now;
        let max_rss = self
            .config
            .max_worker_memory
            .saturating_mul(super::recycle::MIB);
        let boot_timeout = self.config.boot_deadline();
        let mut boot_killed = false;
        for slot in &mut self.slots {
            if !slot.active() {
                continue;
            }
            if !slot.ready && boot_overdue(slot.started, now, boot_timeout) {
                log::error!(
                    "Worker {} (pid {}) did not finish booting within {}s (--boot-timeout): \
                     SIGKILL, replacing it",
                    slot.id,
                    slot.pid,
                    self.config.boot_timeout
                );
                signal_pid(slot.pid, libc::SIGKILL);
                slot.killed = true;
                slot.kill_at = Some(now);
                slot.restart = Some(RestartReason::BootTimeout);
                boot_killed = true;
                continue;
            }
            let silent = now.duration_since(slot.last_seen);
            if slot.ready && silent > HEARTBEAT_TIMEOUT {
                log::error!(
                    "Worker {} (pid {}) sent no heartbeat for {:.0}s: SIGKILL, replacing it",
                    slot.id,
                    slot.pid,
                    silent.as_secs_f64()
                );
                signal_pid(slot.pid, libc::SIGKILL);
                slot.killed = true;
                slot.kill_at = Some(now);
                slot.restart = Some(RestartReason::HeartbeatTimeout);
                continue;
            }
            if slot.outgoing || !slot.ready {
                continue;
            }
            let age = now.duration_since(slot.started);
            if let Some(lifetime) = slot.lifetime.filter(|l| age >= *l) {
                log::info!(
                    "Worker {} (pid {}) has run {:.0}s (max_worker_lifetime {:.0}s): recycling \
                     it (its replacement starts first)",
                    slot.id,
                    slot.pid,
                    age.as_secs_f64(),
                    lifetime.as_secs_f64()
                );
                slot.outgoing = true;
                slot.restart = Some(RestartReason::MaxLifetime);
                continue;
            }
            if max_rss > 0 {
                if let Some(rss) = super::recycle::rss_of(slot.pid).filter(|r| *r > max_rss) {
                    log::info!(
                        "Worker {} (pid {}) uses {} MiB of memory (max_worker_memory {} MiB): \
                         recycling it (its replacement starts first)",
                        slot.id,
                        slot.pid,
                        rss / super::recycle::MIB,
                        self.config.max_worker_memory
                    );
                    slot.outgoing = true;
                    slot.restart = Some(RestartReason::MaxMemory);
                }
            }
        }
        if boot_killed {
            // Replaced like a worker that died: an app that hangs at every import is retried
            // after the backoff, not forked again at once.
            self.schedule_respawn();
        }
    }

    fn enforce_deadlines(&mut self) {
        let now = Instant::now();
        let graceful = self.config.graceful_timeout;
        for slot in &mut self.slots {
            if slot.killed {
                continue;
            }
            if let Some(at) = slot.kill_at {
                if now >= at {
                    log::warn!(
                        "Worker {} (pid {}) still running {graceful:.1}s after TERM: SIGKILL",
                        slot.id,
                        slot.pid
                    );
                    signal_pid(slot.pid, libc::SIGKILL);
                    slot.killed = true;
                }
            }
        }
    }
}

/// A worker's own `SO_REUSEPORT` listeners (`reuse_port`), in place of the master's sockets,
/// which only hold the addresses (a listener adopted with `fd://N` is shared as is). A worker
/// that cannot bind exits with [`EXIT_BOOT_FAILED`]: the master reports it and stops, as for
/// an app that does not load.
fn own_listeners(inherited: Vec<Listener>, backlog: u32) -> Vec<Listener> {
    let mut own = Vec::with_capacity(inherited.len());
    for listener in inherited {
        let listener = match listener {
            Listener::Tcp(l) if !crate::server::listen::is_listening(&l) => l,
            // Listening already: adopted with `fd://N`, or a Unix socket.
            shared => {
                own.push(shared);
                continue;
            }
        };
        match crate::server::listen::rebind_reuse_port(&listener, backlog) {
            Ok(l) => own.push(Listener::Tcp(l)),
            Err(e) => {
                let addr = listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_default();
                log::error!("cannot bind {addr} with SO_REUSEPORT in this worker: {e}");
                // SAFETY: _exit ends this freshly forked worker at once; it owns nothing that
                // needs cleaning up yet.
                unsafe { libc::_exit(EXIT_BOOT_FAILED) };
            }
        }
    }
    own
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_deadline_counts_from_the_fork_with_a_grace() {
        let started = Instant::now();
        let timeout = Some(Duration::from_secs(60));
        let at = |secs: f64| started + Duration::from_secs_f64(secs);
        assert!(!boot_overdue(started, at(30.0), timeout));
        // The worker's stack dump fires at 60 s; the kill waits for the grace after it.
        assert!(!boot_overdue(started, at(60.5), timeout));
        assert!(!boot_overdue(started, at(61.0), timeout));
        assert!(boot_overdue(started, at(61.1), timeout));
        // 0 (`None`): no deadline, however long it takes.
        assert!(!boot_overdue(started, at(1e6), None));
        // A clock reading before the fork (never in practice) is not overdue.
        assert!(!boot_overdue(at(5.0), started, timeout));
    }

    #[test]
    fn status_descriptions() {
        // Encodings as waitpid reports them on Linux.
        assert_eq!(describe_status(3 << 8), "exited with code 3");
        assert_eq!(describe_status(libc::SIGKILL), "was killed by SIGKILL");
    }
}
