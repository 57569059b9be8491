//! Listening, accepting and driving connections.
//!
//! [`Server::bind`] binds every listener synchronously (so a bad address fails before any
//! thread starts). [`Server::run`] installs its SIGINT/SIGTERM handlers, then logs `Listening at:
//! http://ADDR (PID)` for each address (the readiness line), and blocks the calling thread
//! running the tokio runtime until SIGINT/SIGTERM or [`ShutdownHandle::shutdown`],
//! then stops accepting, lets in-flight requests finish (bounded by `graceful_timeout`) and
//! returns (a second SIGINT/SIGTERM during that drain closes the remaining connections at once
//! and marks the stop forced, [`ShutdownHandle::is_forced`]); the
//! [`crate::exchange::JobSender`] it was given is dropped by then, so application threads see
//! the end of the queue.
//!
//! Files, one job each: [`listen`] (binding), `conn` (one connection's request loop), `body`
//! (request bodies), `respond` (writing the app's response), `sendfile` (file bodies), `io`
//! (readiness-based reads and writes with timeouts), `access` (the access log line),
//! [`malloc_trim`] (glibc's trim threshold, set before serving),
//! `overload` (the connection cap and its fast 503), `h2` (HTTP/2 connections through hyper: h2c
//! prior knowledge from `conn`, ALPN `h2` from the TLS path).

pub(crate) mod access;
mod body;
mod conn;
mod dn;
mod h2;
mod handoff;
mod idle;
mod io;
pub mod listen;
pub mod malloc_trim;
mod overload;
mod respond;
pub(crate) use respond::app_content_length;
mod sched;
mod sendfile;
mod stream;
mod sys;
pub mod tls;
pub mod unix;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::config::ServerConfig;
use crate::exchange::JobSender;
use crate::http1::HeadLimits;
use crate::log::AccessLog;
pub use listen::{ListenAddr, Listener};

/// After a failed `accept` (e.g. EMFILE), wait this long before trying again, so a full
/// descriptor table does not turn the accept loop into a busy loop.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Threads that do a worker process's network I/O. One: a hello request costs the I/O side a
/// few microseconds, so one thread keeps up with the application threads of a process (scale
/// out with `workers`), and a single I/O thread never hands a connection's state across cores.
const IO_THREADS: usize = 1;

/// Starting or running the server failed.
#[derive(Debug)]
pub struct ServeError {
    pub message: String,
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServeError {}

/// Asks a running server to stop gracefully. Cheap to clone; callable from any thread, also
/// before [`Server::run`] starts (run then stops at once).
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    tx: Arc<watch::Sender<bool>>,
    /// The same stop as a flag, set before the watch: what each response reads (a plain load,
    /// where the watch's `borrow` takes a lock).
    stopping: Arc<AtomicBool>,
    /// Set when a second signal cut the graceful drain short.
    forced: Arc<AtomicBool>,
    /// Set when the stop began with SIGINT (gunicorn's `worker_int` hook runs then).
    interrupted: Arc<AtomicBool>,
}

impl ShutdownHandle {
    fn new() -> ShutdownHandle {
        let (tx, _) = watch::channel(false);
        ShutdownHandle {
            tx: Arc::new(tx),
            stopping: Arc::new(AtomicBool::new(false)),
            forced: Arc::new(AtomicBool::new(false)),
            interrupted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The stop as a connection reads and waits for it.
    pub(crate) fn stopping(&self) -> Stopping {
        Stopping {
            flag: Arc::clone(&self.stopping),
            watch: self.tx.subscribe(),
        }
    }

    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        self.tx.send_replace(true);
    }

    /// True once a shutdown was asked for (by this handle or a signal).
    pub fn is_shutting_down(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// True when a second SIGINT/SIGTERM arrived during the graceful drain: the operator wants
    /// the process gone, so callers should not wait for busy application threads.
    pub fn is_forced(&self) -> bool {
        self.forced.load(Ordering::SeqCst)
    }

    /// True when the stop began with SIGINT (not SIGTERM or [`ShutdownHandle::shutdown`]).
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}

/// Bound listeners plus configuration, ready to run.
#[derive(Debug)]
pub struct Server {
    config: Arc<ServerConfig>,
    /// Taken by [`Server::run`], which closes them when it stops accepting.
    listeners: Mutex<Vec<Listener>>,
    addrs: Vec<ListenAddr>,
    shutdown: ShutdownHandle,
    /// Opened at bind time, so a bad path fails before anything runs.
    access: Option<Arc<AccessLog>>,
    /// TLS settings (`certfile`), loaded at bind time so a bad file fails before serving;
    /// reloaded on SIGHUP.
    tls: Option<Arc<tls::TlsConfig>>,
    /// A forked worker's server ([`Server::from_listeners`]): a repeated SIGTERM/SIGINT does not
    /// force the stop, since its master and a process manager (systemd signals the whole
    /// cgroup) may both send one; the master enforces the graceful bound with SIGKILL.
    supervised: bool,
    /// A forked worker's pipe to its master ([`Server::set_master_link`]): `READY` once the
    /// signal handlers are installed, then a heartbeat every second.
    master: Option<Arc<crate::supervise::MasterLink>>,
    /// The `--metrics-bind` listener of a lone process, bound with the others; taken by
    /// [`Server::run`]. (A worker's master serves the metrics instead.)
    metrics: Mutex<Option<std::net::TcpListener>>,
}

/// Binds every address of `config.bind` (adopting `fd://N` descriptors, creating the socket
/// files of `unix:PATH`). The caller announces them with [`announce_listening`] once it can
/// take signals. With `reserve` (a master with `reuse_port`), TCP addresses are
/// bound with `SO_REUSEPORT` but not listened on: each worker listens on its own socket
/// ([`listen::rebind_reuse_port`]).
pub fn bind_listeners(
    config: &ServerConfig,
    reserve: bool,
) -> Result<(Vec<Listener>, Vec<ListenAddr>), ServeError> {
    let mut listeners = Vec::with_capacity(config.bind.len());
    let mut addrs = Vec::with_capacity(config.bind.len());
    let mut fds = Vec::new();
    let unix_options = unix::SocketOptions::from_config(config);
    for spec in &config.bind {
        // The same descriptor twice would have two owners (and be closed twice).
        if let Some(Ok(fd)) = listen::fd_spec(spec) {
            if fds.contains(&fd) {
                return Err(ServeError {
                    message: format!("cannot bind {spec}: the descriptor is listed twice"),
                });
            }
            fds.push(fd);
        }
        let listener = listen::bind_listener_with(spec, config.backlog, reserve, &unix_options)
            .map_err(|e| ServeError {
                message: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| ServeError {
            message: format!("cannot bind {spec}: {e}"),
        })?;
        listeners.push(listener);
        addrs.push(addr);
    }
    Ok((listeners, addrs))
}

/// Logs `Listening at: http://ADDR (PID)` (`Listening at: unix:PATH (PID)`) for each address:
/// the line that tells operators and tests the server is ready. Logged only once the process
/// handles SIGINT/SIGTERM, so a signal sent on seeing it is never met by a default disposition
/// that would kill the process.
pub fn announce_listening(addrs: &[ListenAddr]) {
    for addr in addrs {
        log::info!("Listening at: {} ({})", addr.url(), std::process::id());
    }
}

/// What every connection task shares: read-only after start, so no lock on the hot path.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) limits: HeadLimits,
    pub(crate) access: Option<Arc<AccessLog>>,
    pub(crate) jobs: JobSender,
    pub(crate) shutdown: Stopping,
    pub(crate) server_header: Vec<u8>,
    /// Rate limits of the "request queue full" and "queue timeout" warnings.
    pub(crate) queue_full_warn: crate::log::RateLimited,
    pub(crate) queue_timeout_warn: crate::log::RateLimited,
    /// Static files, compression, X-Request-ID (`crate::middleware`).
    pub(crate) middleware: crate::middleware::Middleware,
    /// The deadlines of connections waiting for a request (`idle`).
    pub(crate) idle: idle::IdleSet,
    /// The I/O runtime, where a parked connection's resumed task is spawned (`conn::park`).
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Shared {
    pub(crate) fn shutting_down(&self) -> bool {
        self.shutdown.is_set()
    }
}

/// The server's stop as connections see it: a flag to read (once per response) and a watch to
/// wait on. Both change once, from false to true, the flag first.
#[derive(Debug, Clone)]
pub(crate) struct Stopping {
    flag: Arc<AtomicBool>,
    watch: watch::Receiver<bool>,
}

impl Stopping {
    /// A stop that never comes (tests), and the handle that would give it.
    #[cfg(test)]
    pub(crate) fn for_test() -> (ShutdownHandle, Stopping) {
        let handle = ShutdownHandle::new();
        let stopping = handle.stopping();
        (handle, stopping)
    }

    /// True once the server is stopping.
    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// A receiver to wait for the stop with (`wait_for(|s| *s)`).
    pub(crate) fn watch(&self) -> watch::Receiver<bool> {
        self.watch.clone()
    }
}

impl Server {
    pub fn bind(config: ServerConfig) -> Result<Server, ServeError> {
        config.validate().map_err(|e| ServeError {
            message: e.to_string(),
        })?;
        let (listeners, addrs) = bind_listeners(&config, false)?;
        let metrics = bind_metrics(&config)?;
        Server::assemble(config, listeners, addrs, false, metrics)
    }

    /// A server over listeners bound elsewhere (a worker's, inherited from its master, see
    /// [`crate::supervise`]); logs nothing, since the master logged `Listening at`.
    pub fn from_listeners(
        config: ServerConfig,
        listeners: Vec<Listener>,
    ) -> Result<Server, ServeError> {
        config.validate().map_err(|e| ServeError {
            message: e.to_string(),
        })?;
        let addrs = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServeError {
                message: format!("cannot use an inherited listener: {e}"),
            })?;
        Server::assemble(config, listeners, addrs, true, None)
    }

    /// What both constructors share: the access log and TLS are opened here, so a bad path
    /// fails before anything serves.
    fn assemble(
        config: ServerConfig,
        listeners: Vec<Listener>,
        addrs: Vec<ListenAddr>,
        supervised: bool,
        metrics: Option<std::net::TcpListener>,
    ) -> Result<Server, ServeError> {
        let access = AccessLog::open(&config)
            .map_err(|e| ServeError {
                message: e.to_string(),
            })?
            .map(Arc::new);
        let tls = load_tls(&config)?;
        Ok(Server {
            config: Arc::new(config),
            listeners: Mutex::new(listeners),
            addrs,
            shutdown: ShutdownHandle::new(),
            access,
            tls,
            supervised,
            master: None,
            metrics: Mutex::new(metrics),
        })
    }

    /// Gives up the bound listeners (a master keeps them to hand to its workers); the server
    /// cannot run afterwards.
    pub fn into_listeners(self) -> Vec<Listener> {
        match self.listeners.into_inner() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The bound TCP addresses, in `bind` order (port 0 resolved); Unix sockets are left out
    /// (see [`Server::listen_addrs`]).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs
            .iter()
            .filter_map(|a| match a {
                ListenAddr::Tcp(a) => Some(*a),
                ListenAddr::Unix(_) => None,
            })
            .collect()
    }

    /// Every bound address, TCP and Unix, in `bind` order (port 0 resolved).
    pub fn listen_addrs(&self) -> Vec<ListenAddr> {
        self.addrs.clone()
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Makes [`Server::run`] tell the master `READY` once it can take signals and connections
    /// (a TERM arriving earlier would meet the default disposition and kill the worker), then
    /// send a heartbeat every [`crate::supervise::pipe::HEARTBEAT_INTERVAL`] from the event loop.
    /// A worker whose master is gone (the pipe is broken) stops gracefully.
    pub fn set_master_link(&mut self, link: Arc<crate::supervise::MasterLink>) {
        self.master = Some(link);
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until shutdown (see the module docs). Blocks; call with the GIL released.
    /// Runs once: a second call returns an error.
    pub fn run(&self, jobs: JobSender) -> Result<(), ServeError> {
        let listeners = match self.listeners.lock() {
            Ok(mut l) => std::mem::take(&mut *l),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        if listeners.is_empty() {
            return Err(ServeError {
                message: "the server has already run".to_owned(),
            });
        }
        // Before any thread of ours allocates: request-sized buffers stay in glibc's arenas.
        malloc_trim::tune();
        // One I/O thread, as a multi-thread runtime with a single worker rather than a
        // current-thread runtime: an application thread that finishes a response wakes its
        // connection's task from outside the runtime, and a current-thread runtime answers every
        // such wake with a `write(2)` to its eventfd, even while its thread is busy; the
        // multi-thread scheduler writes only when its worker is parked. Measured on hello
        // (docs/architecture.md): 0.98 fewer system calls and ~1 us less CPU per request. The
        // thread calling `run` only waits for signals and the drain.
        // Its threads do not preempt the application threads when they wake (`sched`).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(IO_THREADS)
            .thread_name("ferrule-io")
            .on_thread_start(sched::batch_current_thread)
            .enable_all()
            .build()
            .map_err(|e| ServeError {
                message: format!("cannot start the I/O runtime: {e}"),
            })?;
        let shared = Arc::new(Shared {
            config: Arc::clone(&self.config),
            limits: HeadLimits {
                request_line: self.config.limit_request_line,
                fields: self.config.limit_request_fields,
                field_size: self.config.limit_request_field_size,
                head: self.config.limit_request_head,
            },
            access: self.access.clone(),
            jobs,
            shutdown: self.shutdown.stopping(),
            server_header: self.config.server_header.as_bytes().to_vec(),
            queue_full_warn: crate::log::RateLimited::new(overload::LIMIT_WARN_INTERVAL),
            queue_timeout_warn: crate::log::RateLimited::new(overload::LIMIT_WARN_INTERVAL),
            middleware: crate::middleware::Middleware::from_config(&self.config),
            idle: idle::IdleSet::default(),
            runtime: rt.handle().clone(),
        });
        let result = rt.block_on(self.serve(shared, listeners));
        // Dropping the runtime drops every task still alive (past the graceful bound), and with
        // them the last `Shared`, so the job queue's sender is gone when `run` returns.
        drop(rt);
        result
    }

    async fn serve(&self, shared: Arc<Shared>, listeners: Vec<Listener>) -> Result<(), ServeError> {
        use tokio::signal::unix::{signal, SignalKind};
        let sig = |kind| {
            signal(kind).map_err(|e| ServeError {
                message: format!("cannot install signal handler: {e}"),
            })
        };
        let mut sigint = sig(SignalKind::interrupt())?;
        let mut sigterm = sig(SignalKind::terminate())?;
        if !self.supervised {
            // A lone process is ready now; a worker's master announced the addresses.
            announce_listening(&self.addrs);
        }
        // SIGUSR1: reopen the log files (logrotate); a master forwards it to its workers.
        let mut sigusr1 = sig(SignalKind::user_defined1())?;
        // SIGHUP with TLS: reload the certificate and key (a master's HUP replaces its
        // workers instead, and they load the files anew). Without TLS, HUP keeps its meaning.
        if let Some(tls) = &self.tls {
            let mut sighup = sig(SignalKind::hangup())?;
            let (tls, config) = (Arc::clone(tls), Arc::clone(&self.config));
            tokio::spawn(async move {
                while sighup.recv().await.is_some() {
                    match tls.reload(&config) {
                        Ok(()) => log::info!("Handling signal: hup (TLS certificate reloaded)"),
                        Err(e) => {
                            log::error!("TLS reload failed, keeping the old certificate: {e}")
                        }
                    }
                }
            });
        }
        let access = self.access.clone();
        tokio::spawn(async move {
            while sigusr1.recv().await.is_some() {
                reopen_logs(access.as_deref());
            }
        });
        // SIGUSR2 re-executes a master (supervise/reexec.rs). Its default action would kill a
        // worker (`kill -USR2` to a process group) or a lone process: it is caught and ignored.
        let mut sigusr2 = sig(SignalKind::user_defined2())?;
        let lone = !self.supervised;
        tokio::spawn(async move {
            while sigusr2.recv().await.is_some() {
                if lone {
                    log::warn!(
                        "Handling signal: usr2: re-exec needs a master (-w 2 or more); ignored"
                    );
                }
            }
        });

        // Every connection task holds a clone of `done_tx`; when all are dropped, `done_rx`
        // sees the end: that is "every connection finished".
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        // One cap for the whole process, whichever listener a connection arrives on.
        let limit = Arc::new(overload::ConnLimit::new(self.config.worker_connections));
        for (listener, addr) in listeners.into_iter().zip(&self.addrs) {
            let listener = listen::Accepting::new(listener).map_err(|e| ServeError {
                message: format!("cannot use listener {addr}: {e}"),
            })?;
            // TLS is served on TCP listeners; a Unix socket's peer is a local front server.
            let tls = match listener {
                listen::Accepting::Tcp(_) => self.tls.clone(),
                listen::Accepting::Unix { .. } => None,
            };
            tokio::spawn(accept_loop(
                listener,
                tls,
                Arc::clone(&shared),
                Arc::clone(&limit),
                done_tx.clone(),
            ));
        }
        drop(done_tx);
        tokio::spawn(idle::sweeper(Arc::clone(&shared)));
        self.spawn_metrics(&shared)?;

        // Signal handlers and listeners are in place: the master may now count on this worker.
        if let Some(link) = &self.master {
            use crate::supervise::Message;
            if let Err(e) = link.send(&Message::Ready) {
                log::error!("cannot tell the master this worker is ready: {e}");
            }
            tokio::spawn(heartbeat(
                Arc::clone(link),
                self.shutdown.clone(),
                self.worker_metrics(&shared),
            ));
        } else if !self.supervised {
            // A lone process is the service's main process: tell systemd it serves.
            crate::supervise::notify::ready();
        }

        let mut stop = self.shutdown.tx.subscribe();
        tokio::select! {
            _ = sigint.recv() => {
                self.shutdown.interrupted.store(true, Ordering::SeqCst);
                log::info!("Handling signal: int");
            }
            _ = sigterm.recv() => log::info!("Handling signal: term"),
            _ = stop.wait_for(|s| *s) => log::info!("Shutdown requested"),
        }
        self.shutdown.shutdown();
        if !self.supervised {
            crate::supervise::notify::notify("STOPPING=1");
        }
        let graceful = self.config.graceful();
        // A second SIGINT/SIGTERM during the drain means "stop now" (an operator pressing
        // Ctrl-C twice): the remaining connections are closed at once and the stop is marked
        // forced, so the caller does not wait for busy application threads either.
        tokio::select! {
            r = tokio::time::timeout(graceful, done_rx.recv()) => match r {
                Ok(_) => log::info!("Shutdown complete"),
                Err(_) => log::warn!(
                    "Graceful timeout ({:.1}s) reached: closing the remaining connections",
                    graceful.as_secs_f64()
                ),
            },
            _ = sigint.recv(), if !self.supervised => self.force_stop("int"),
            _ = sigterm.recv(), if !self.supervised => self.force_stop("term"),
        }
        // Drained: the master gets this worker's final counts (heartbeats stop with the loop).
        if let (Some(link), Some(snapshot)) = (&self.master, self.worker_metrics(&shared)) {
            let last =
                crate::supervise::Message::Metrics(crate::metrics::wire::encode(&snapshot()));
            let _ = link.try_send(&last);
        }
        Ok(())
    }

    /// A worker's metrics for its master's `--metrics-bind` (`None`: metrics are off).
    fn worker_metrics(&self, shared: &Arc<Shared>) -> Option<crate::metrics::serve::SnapshotFn> {
        self.config.metrics_bind.as_ref()?;
        // Weak: as for the metrics listener below.
        let weak = Arc::downgrade(shared);
        Some(Arc::new(move || {
            let queued = weak.upgrade().map_or(0, |s| s.jobs.len());
            crate::metrics::global().snapshot(queued)
        }))
    }

    /// Serves `--metrics-bind` (if bound) on this runtime until shutdown.
    fn spawn_metrics(&self, shared: &Arc<Shared>) -> Result<(), ServeError> {
        let listener = match self.metrics.lock() {
            Ok(mut l) => l.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let Some(listener) = listener else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| ServeError {
            message: format!("cannot use the metrics listener: {e}"),
        })?;
        // Weak: the metrics listener must not keep the job queue open after the server stops.
        let weak = Arc::downgrade(shared);
        let snapshot: crate::metrics::serve::SnapshotFn = Arc::new(move || {
            let queued = weak.upgrade().map_or(0, |s| s.jobs.len());
            crate::metrics::global().snapshot(queued)
        });
        tokio::spawn(crate::metrics::serve::run(
            listener,
            snapshot,
            self.shutdown.tx.subscribe(),
        ));
        Ok(())
    }

    fn force_stop(&self, name: &str) {
        self.shutdown.forced.store(true, Ordering::SeqCst);
        log::warn!("Handling signal: {name} again: closing the remaining connections now");
    }
}

/// Binds `config.metrics_bind` (`None`: metrics are off) and logs `Metrics at: http://ADDR`.
pub fn bind_metrics(config: &ServerConfig) -> Result<Option<std::net::TcpListener>, ServeError> {
    let Some(spec) = config.metrics_bind.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let listener = listen::bind(spec, config.backlog).map_err(|e| ServeError {
        message: format!("metrics_bind: {e}"),
    })?;
    if let Ok(addr) = listener.local_addr() {
        log::info!("Metrics at: http://{addr}/metrics ({})", std::process::id());
    }
    Ok(Some(listener))
}

/// Loads the TLS files `config` names (`None`: TLS is off).
fn load_tls(config: &ServerConfig) -> Result<Option<Arc<tls::TlsConfig>>, ServeError> {
    tls::TlsConfig::load(config)
        .map(|t| t.map(Arc::new))
        .map_err(|e| ServeError {
            message: e.to_string(),
        })
}

/// The edge rules applied at accept, before a byte is read: the PROXY allow-list
/// (`proxy_protocol::admit`: a peer that may not send a header is closed), whether the peer's
/// forwarding headers are believed (one allow-list check per connection), and the TLS
/// session. `None`: the connection was closed.
fn edge(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Option<&tls::TlsConfig>,
    shared: &Shared,
) -> Option<(stream::Stream, crate::exchange::ConnInfo)> {
    let config = &shared.config;
    if let Err(e) =
        crate::proxy_protocol::admit(config.proxy_protocol, peer.ip(), &config.proxy_allow_from)
    {
        log::debug!("{peer}: closing: {e}");
        return None;
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut info = crate::exchange::ConnInfo::new(peer, local, scheme);
    info.forwarding_trusted = config.forwarded_allow_ips.contains(peer.ip());
    let stream = match tls {
        None => stream::Stream::Tcp(tcp),
        Some(tls) => match tls.accept(tcp) {
            Ok(s) => stream::Stream::Tls(Box::new(s)),
            Err(e) => {
                log::error!("{peer}: cannot start a TLS session: {e}");
                return None;
            }
        },
    };
    Some((stream, info))
}

/// SIGUSR1: the error log and the access log reopen their files.
fn reopen_logs(access: Option<&AccessLog>) {
    // Reopened first, so this line is the first one in the fresh file.
    let reopened = crate::log::reopen_error_log();
    log::info!("Handling signal: usr1 (reopening log files)");
    if let Err(e) = reopened {
        log::error!("{e}");
    }
    if let Some(Err(e)) = access.map(AccessLog::reopen) {
        log::error!("{e}");
    }
}

/// A worker's heartbeat to its master, from the event loop (so it stops when the loop is
/// stuck). A broken pipe means the master is gone: an orphaned worker would serve on with no
/// one to restart or stop it, so it stops gracefully. With `metrics` (`--metrics-bind`) each
/// heartbeat carries the worker's metrics snapshot for the master to sum; the last one is sent
/// once the worker has drained (the task is then dropped with the runtime).
async fn heartbeat(
    link: Arc<crate::supervise::MasterLink>,
    shutdown: ShutdownHandle,
    metrics: Option<crate::metrics::serve::SnapshotFn>,
) {
    use crate::supervise::Message;
    let mut tick = tokio::time::interval(crate::supervise::pipe::HEARTBEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let beat = || match &metrics {
        Some(snapshot) => Message::Metrics(crate::metrics::wire::encode(&snapshot())),
        None => Message::Heartbeat,
    };
    loop {
        tick.tick().await;
        match link.try_send(&beat()) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                log::error!("The master is gone: shutting down");
                shutdown.shutdown();
                return;
            }
            Err(e) => log::warn!("cannot send a heartbeat to the master: {e}"),
        }
    }
}

/// Accepts connections on one listener until shutdown, one task per connection, at most
/// `worker_connections` at a time (see [`overload`]).
async fn accept_loop(
    listener: listen::Accepting,
    tls: Option<Arc<tls::TlsConfig>>,
    shared: Arc<Shared>,
    limit: Arc<overload::ConnLimit>,
    done: mpsc::Sender<()>,
) {
    let mut stop = shared.shutdown.watch();
    let overload_503 = shared.config.overload_503;
    let server_header: Arc<[u8]> = Arc::from(shared.server_header.as_slice());
    // A listener on a specific address knows every connection's local address; one on an
    // unspecified address (0.0.0.0, ::) asks each connection (one getsockname).
    let local = listener.fixed_local_addr();
    loop {
        // Without overload_503: at the cap, stop accepting until a connection closes (new
        // ones wait in the listen backlog).
        let mut permit = None;
        if !overload_503 {
            permit = limit.try_admit(false);
            if permit.is_none() {
                permit = tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => break,
                    p = limit.admit() => p,
                };
            }
        }
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok(incoming) => {
                if overload_503 {
                    permit = limit.try_admit(true);
                    if permit.is_none() {
                        crate::metrics::global().connection_refused();
                        // Past the cap: a fast 503, bounded in number; past that, just close.
                        // (A TLS listener closes: a plain-text answer would be garbage there.)
                        if let Some(refusing) = limit.try_refusing().filter(|_| tls.is_none()) {
                            let header = Arc::clone(&server_header);
                            tokio::spawn(async move {
                                overload::refuse(incoming.into_stream(), header).await;
                                drop(refusing);
                            });
                        }
                        continue;
                    }
                }
                let edged = match incoming {
                    listen::Incoming::Tcp(stream, peer) => {
                        tcp_edge(stream, peer, local, tls.as_deref(), &shared)
                    }
                    listen::Incoming::Unix(stream) => Some(unix_edge(stream)),
                };
                // The permit lives as long as the connection's task: its end frees the slot.
                // (Handed to `serve` rather than held by a wrapping `async` block, which would
                // store the connection's future twice in every task.)
                let Some((stream, info)) = edged else {
                    continue;
                };
                tokio::spawn(conn::serve(
                    Arc::clone(&shared),
                    stream,
                    info,
                    conn::ConnGuard {
                        done: done.clone(),
                        permit,
                    },
                ));
            }
            Err(e) => {
                log::error!("accept failed: {e}");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
    // The listener is dropped here: new connections are refused from now on (and a Unix
    // socket's file is removed, see `unix`).
}

/// A TCP connection's set-up: `TCP_NODELAY`, its local address (`local` when the listener's is
/// specific), then [`edge`]. `None`: the connection was closed.
fn tcp_edge(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    tls: Option<&tls::TlsConfig>,
    shared: &Shared,
) -> Option<(stream::Stream, crate::exchange::ConnInfo)> {
    if let Err(e) = stream.set_nodelay(true) {
        log::debug!("cannot set TCP_NODELAY for {peer}: {e}");
    }
    let local = match local {
        Some(a) => a,
        None => stream.local_addr().ok()?,
    };
    edge(stream, peer, local, tls, shared)
}

/// A Unix socket connection's info: no peer address (`REMOTE_ADDR` empty, `SERVER_NAME`
/// from the request, see `crate::environ`), plain HTTP, and forwarding headers believed: only
/// a local process that may write to the socket file connects, i.e. the front server the
/// operator put there (`--forwarded-allow-ips` names addresses, which this peer has not).
fn unix_edge(stream: tokio::net::UnixStream) -> (stream::Stream, crate::exchange::ConnInfo) {
    let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut info = crate::exchange::ConnInfo::new(nowhere, nowhere, "http");
    info.unix = true;
    info.forwarding_trusted = true;
    (stream::Stream::Unix(stream), info)
}
