//! The master's metrics: its workers' snapshots summed, restarts counted by reason, and the
//! `--metrics-bind` pages served from the master's own poll loop (docs/architecture.md,
//! "Processes").
//!
//! Each worker sends its [`Snapshot`] with every heartbeat ([`super::wire`]). The master keeps
//! the last one of each live worker; when a worker exits, the counters of its last snapshot are
//! folded into a *retired* total ([`Snapshot::counters_only`]), so a counter never goes
//! backwards when a worker dies or is replaced (Prometheus reads a drop as a counter reset).
//! What a killed worker counted after its last heartbeat (at most one heartbeat interval) is
//! lost; a worker that stops gracefully sends a last snapshot once it has drained.
//!
//! The listener is served without threads and without an async runtime: the master forks, and
//! `fork()` copies only the calling thread, so any other thread's locks would be left held in
//! the child. The master `poll(2)`s the listener and these connections with its worker pipes
//! ([`Hub::poll_fds`]) and advances them without blocking ([`Hub::serve`]): at most
//! [`MAX_CONNS`] at a time, each with [`IO_TIMEOUT`] to send its head and read the answer
//! (the same pages and rules as the single-process listener, [`super::serve::respond`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::serve::{respond, Page, IO_TIMEOUT, LIMITS, MAX_HEAD};
use super::Snapshot;
use crate::config::ServerConfig;
use crate::http1::{parse_head, Parsed};

/// Metrics connections served at once; more wait in the listen backlog.
pub const MAX_CONNS: usize = 16;
/// How often a master that could not bind the metrics address yet (a new master started by
/// USR2 whose `--metrics-bind` changed, while the old one still holds it; an unchanged address
/// is handed over instead, [`Hub::handover`]) tries again.
const REBIND_INTERVAL: Duration = Duration::from_secs(1);

/// Why the master replaced a worker (`ferrule_worker_restarts_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// It exited by itself (any exit code but the boot failure's).
    Exited,
    /// A signal the master did not send killed it (`kill -9`, a crash).
    Signaled,
    /// Its event loop sent no heartbeat for too long: the master killed it.
    HeartbeatTimeout,
    /// It was not ready `boot_timeout` after its fork (a hung import): the master killed it.
    BootTimeout,
    /// An application thread stayed stuck past `timeout` (the worker asked to be replaced).
    Timeout,
    /// It served `max_requests`.
    MaxRequests,
    /// Its memory passed `max_worker_memory` (seen by the worker or by the master).
    MaxMemory,
    /// It lived past `max_worker_lifetime`.
    MaxLifetime,
    /// It asked to be replaced for another reason (`Worker.retire` from Python).
    Retired,
    /// A HUP reload replaced it.
    Reload,
    /// A replacement could not load the app (`--reload` keeps the old workers serving).
    BootFailure,
}

impl RestartReason {
    /// Every reason, in the order they are rendered.
    pub const ALL: [RestartReason; 11] = [
        RestartReason::Exited,
        RestartReason::Signaled,
        RestartReason::HeartbeatTimeout,
        RestartReason::BootTimeout,
        RestartReason::Timeout,
        RestartReason::MaxRequests,
        RestartReason::MaxMemory,
        RestartReason::MaxLifetime,
        RestartReason::Retired,
        RestartReason::Reload,
        RestartReason::BootFailure,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            RestartReason::Exited => "exited",
            RestartReason::Signaled => "signal",
            RestartReason::HeartbeatTimeout => "heartbeat_timeout",
            RestartReason::BootTimeout => "boot_timeout",
            RestartReason::Timeout => "timeout",
            RestartReason::MaxRequests => "max_requests",
            RestartReason::MaxMemory => "max_memory",
            RestartReason::MaxLifetime => "max_lifetime",
            RestartReason::Retired => "retired",
            RestartReason::Reload => "reload",
            RestartReason::BootFailure => "boot_failure",
        }
    }

    /// The reason behind a worker's `RETIRING` text (written by `supervise::recycle` and the
    /// request watchdog, which name the setting that was reached).
    pub fn of_retiring(text: &str) -> RestartReason {
        if text.contains("(max_requests)") {
            RestartReason::MaxRequests
        } else if text.contains("max_worker_memory") {
            RestartReason::MaxMemory
        } else if text.contains("stuck application thread") {
            RestartReason::Timeout
        } else {
            RestartReason::Retired
        }
    }

    /// The reason for a worker that ended on its own with wait status `status`.
    pub fn of_status(status: libc::c_int) -> RestartReason {
        if libc::WIFSIGNALED(status) {
            RestartReason::Signaled
        } else {
            RestartReason::Exited
        }
    }

    fn index(self) -> usize {
        RestartReason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(0)
    }
}

/// One live worker as `/metrics` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStat {
    pub id: u32,
    pub pid: libc::pid_t,
    /// Resident set size, read from `/proc/PID/statm` at scrape time (0: unreadable).
    pub rss_bytes: u64,
}

/// What only a master knows, rendered after the summed snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Supervision {
    pub workers: Vec<WorkerStat>,
    /// Restarts by reason label, every reason listed (zeros included).
    pub restarts: Vec<(&'static str, u64)>,
}

/// One metrics client being served.
#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    /// The answer and how much of it went out; `None` while the head is being read.
    out: Option<(BytesMut, usize)>,
    deadline: Instant,
}

/// The master's metrics state and listener; see the module docs.
#[derive(Debug)]
pub struct Hub {
    listener: Option<TcpListener>,
    /// The address to bind again (`rebind_at` set: not bound yet).
    spec: String,
    backlog: u32,
    rebind_at: Option<Instant>,
    conns: Vec<Conn>,
    /// The last snapshot of each live worker, by pid.
    live: BTreeMap<libc::pid_t, Snapshot>,
    /// Counters of the workers that exited.
    retired: Snapshot,
    restarts: [u64; RestartReason::ALL.len()],
}

impl Hub {
    /// Binds `config.metrics_bind` (`Ok(None)`: metrics are off). With `wait_for_address` (a
    /// master started by USR2, whose old master still serves the address) a bind failure is
    /// logged and retried every second instead.
    pub fn bind(config: &ServerConfig, wait_for_address: bool) -> Result<Option<Hub>, String> {
        let Some(spec) = config.metrics_bind.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let mut hub = Hub {
            listener: None,
            spec: spec.to_owned(),
            backlog: config.backlog,
            rebind_at: None,
            conns: Vec::new(),
            live: BTreeMap::new(),
            retired: Snapshot::default(),
            restarts: [0; RestartReason::ALL.len()],
        };
        match hub.try_bind() {
            Ok(()) => {}
            Err(e) if wait_for_address => {
                log::info!("{e}; trying again every second (the old master still has it)");
                hub.rebind_at = Some(Instant::now() + REBIND_INTERVAL);
            }
            Err(e) => return Err(e),
        }
        Ok(Some(hub))
    }

    /// The listening socket and its address (`IP:PORT`, as `--metrics-bind` names it), for a
    /// USR2 re-exec to hand over (`None` while the address is not bound yet).
    pub fn handover(&self) -> Option<(std::os::fd::RawFd, String)> {
        let listener = self.listener.as_ref()?;
        let addr = listener.local_addr().ok()?;
        Some((listener.as_raw_fd(), addr.to_string()))
    }

    fn try_bind(&mut self) -> Result<(), String> {
        let listener = crate::server::listen::bind(&self.spec, self.backlog)
            .map_err(|e| format!("metrics_bind: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("metrics_bind: {e}"))?;
        if let Ok(addr) = listener.local_addr() {
            log::info!("Metrics at: http://{addr}/metrics ({})", std::process::id());
        }
        self.listener = Some(listener);
        self.rebind_at = None;
        Ok(())
    }

    /// Worker `pid` sent an encoded snapshot; an unreadable one is an error for the caller to
    /// log (the previous snapshot stays).
    pub fn worker_snapshot(
        &mut self,
        pid: libc::pid_t,
        bytes: &[u8],
    ) -> Result<(), super::wire::WireError> {
        let snapshot = super::wire::decode(bytes)?;
        self.live.insert(pid, snapshot);
        Ok(())
    }

    /// Worker `pid` was reaped: its counters join the retired total; `restart` says why the
    /// master replaces it (`None`: not a restart, e.g. a shutdown or fewer workers).
    pub fn worker_exited(&mut self, pid: libc::pid_t, restart: Option<RestartReason>) {
        if let Some(last) = self.live.remove(&pid) {
            self.retired.add(&last.counters_only());
        }
        if let Some(reason) = restart {
            self.restarts[reason.index()] += 1;
        }
    }

    /// The workers' metrics summed: the retired counters plus each live worker's last snapshot.
    pub fn total(&self) -> Snapshot {
        let mut total = self.retired.clone();
        self.live.values().for_each(|s| total.add(s));
        total
    }

    /// The master's own numbers for `workers` (`(id, pid)` of each live worker).
    pub fn supervision(&self, workers: &[(u32, libc::pid_t)]) -> Supervision {
        Supervision {
            workers: workers
                .iter()
                .map(|&(id, pid)| WorkerStat {
                    id,
                    pid,
                    rss_bytes: crate::supervise::recycle::rss_of(pid).unwrap_or(0),
                })
                .collect(),
            restarts: RestartReason::ALL
                .iter()
                .map(|r| (r.label(), self.restarts[r.index()]))
                .collect(),
        }
    }

    /// Appends what the master's `poll` should watch for the metrics: the listener (unless
    /// [`MAX_CONNS`] are being served) and each connection (readable, or writable once its
    /// answer is ready).
    pub fn poll_fds(&self, fds: &mut Vec<libc::pollfd>) {
        if let Some(l) = self
            .listener
            .as_ref()
            .filter(|_| self.conns.len() < MAX_CONNS)
        {
            fds.push(libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for c in &self.conns {
            fds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: if c.out.is_some() {
                    libc::POLLOUT
                } else {
                    libc::POLLIN
                },
                revents: 0,
            });
        }
    }

    /// The earliest instant the master must wake for the metrics (a connection's deadline, a
    /// rebind attempt).
    pub fn deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .map(|c| c.deadline)
            .chain(self.rebind_at)
            .min()
    }

    /// Accepts, reads and answers what it can without blocking; drops connections past their
    /// deadline. `workers`: `(id, pid)` of each live worker, for the pages.
    pub fn serve(&mut self, workers: &[(u32, libc::pid_t)]) {
        let now = Instant::now();
        if self.rebind_at.is_some_and(|at| now >= at) {
            if let Err(e) = self.try_bind() {
                log::debug!("{e}");
                self.rebind_at = Some(now + REBIND_INTERVAL);
            }
        }
        self.accept(now);
        let mut conns = std::mem::take(&mut self.conns);
        conns.retain_mut(|c| now < c.deadline && self.advance(c, workers));
        self.conns = conns;
    }

    fn accept(&mut self, now: Instant) {
        let Some(listener) = &self.listener else {
            return;
        };
        while self.conns.len() < MAX_CONNS {
            match listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    self.conns.push(Conn {
                        stream,
                        buf: BytesMut::with_capacity(1024),
                        out: None,
                        deadline: now + IO_TIMEOUT,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // E.g. EMFILE: the listener stays readable; the next loop tries again.
                    log::warn!("metrics listener: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Moves one connection on; false when it is done (answered, closed or failed).
    fn advance(&self, c: &mut Conn, workers: &[(u32, libc::pid_t)]) -> bool {
        if c.out.is_none() {
            let mut chunk = [0u8; 2048];
            loop {
                match parse_head(&mut c.buf, &LIMITS) {
                    Ok(Parsed::Complete(head)) => {
                        c.out = Some((self.page(Some(&head), workers), 0));
                        break;
                    }
                    Err(_) => {
                        c.out = Some((self.page(None, workers), 0));
                        break;
                    }
                    Ok(Parsed::Partial) if c.buf.len() > MAX_HEAD => return false,
                    Ok(Parsed::Partial) => {}
                }
                match c.stream.read(&mut chunk) {
                    Ok(0) => return false,
                    Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
        }
        let Some((out, sent)) = &mut c.out else {
            return false;
        };
        while *sent < out.len() {
            match c.stream.write(&out[*sent..]) {
                Ok(0) => return false,
                Ok(n) => *sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        // One request per connection: done (dropping the stream closes it).
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        false
    }

    fn page(
        &self,
        head: Option<&crate::http1::RequestHead>,
        workers: &[(u32, libc::pid_t)],
    ) -> BytesMut {
        respond(head, &|page| {
            let total = self.total();
            let supervision = self.supervision(workers);
            match page {
                Page::Metrics => super::render::prometheus_with(&total, Some(&supervision)),
                Page::Json => super::render::json_with(&total, Some(&supervision)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{method_index, wire, Metrics};

    fn hub() -> Hub {
        let config = ServerConfig {
            metrics_bind: Some("127.0.0.1:0".into()),
            ..ServerConfig::default()
        };
        Hub::bind(&config, false).unwrap().unwrap()
    }

    fn snapshot(requests: u32, in_flight: bool) -> Vec<u8> {
        let m = Metrics::new();
        for _ in 0..requests {
            m.request_done(method_index(b"GET"), 200, Duration::from_millis(1));
        }
        if in_flight {
            m.in_flight_add(1);
        }
        wire::encode(&m.snapshot(1))
    }

    #[test]
    fn totals_sum_live_workers_and_never_go_backwards() {
        let mut hub = hub();
        hub.worker_snapshot(10, &snapshot(3, true)).unwrap();
        hub.worker_snapshot(11, &snapshot(4, false)).unwrap();
        let t = hub.total();
        assert_eq!((t.requests_total(), t.in_flight, t.queue_depth), (7, 1, 2));
        // A newer snapshot replaces the older one.
        hub.worker_snapshot(10, &snapshot(5, true)).unwrap();
        assert_eq!(hub.total().requests_total(), 9);
        // Worker 10 dies: its requests stay, its gauges go.
        hub.worker_exited(10, Some(RestartReason::Signaled));
        let t = hub.total();
        assert_eq!((t.requests_total(), t.in_flight, t.queue_depth), (9, 0, 1));
        // Its replacement starts from zero; the total keeps growing.
        hub.worker_snapshot(12, &snapshot(1, false)).unwrap();
        assert_eq!(hub.total().requests_total(), 10);
        let sup = hub.supervision(&[]);
        assert!(sup.restarts.contains(&("signal", 1)));
        assert_eq!(sup.restarts.len(), RestartReason::ALL.len());
    }

    #[test]
    fn a_bad_snapshot_is_an_error_and_keeps_the_previous_one() {
        let mut hub = hub();
        hub.worker_snapshot(10, &snapshot(2, false)).unwrap();
        assert!(hub.worker_snapshot(10, b"\x01garbage").is_err());
        assert_eq!(hub.total().requests_total(), 2);
        // A worker that exits without ever sending one is no trouble either.
        hub.worker_exited(99, None);
        assert_eq!(hub.total().requests_total(), 2);
    }

    #[test]
    fn reasons_from_retiring_texts() {
        let r = RestartReason::of_retiring;
        assert_eq!(
            r("served 12 requests (max_requests)"),
            RestartReason::MaxRequests
        );
        assert_eq!(
            r("uses 300 MiB of memory (max_worker_memory 200 MiB)"),
            RestartReason::MaxMemory
        );
        assert_eq!(
            r("has a stuck application thread (ferrule-app-1 in GET /)"),
            RestartReason::Timeout
        );
        assert_eq!(r("asked by the app"), RestartReason::Retired);
        assert_eq!(
            RestartReason::of_status(libc::SIGKILL),
            RestartReason::Signaled
        );
        assert_eq!(RestartReason::of_status(1 << 8), RestartReason::Exited);
        let labels: std::collections::HashSet<_> =
            RestartReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), RestartReason::ALL.len());
    }

    #[test]
    fn serves_metrics_without_blocking() {
        let mut hub = hub();
        hub.worker_snapshot(10, &snapshot(3, false)).unwrap();
        let addr = hub.listener.as_ref().unwrap().local_addr().unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        // Half a head: served as far as it goes, the master never waits.
        client.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        let me = std::process::id() as libc::pid_t;
        let until = Instant::now() + Duration::from_secs(5);
        while hub.conns.is_empty() && Instant::now() < until {
            hub.serve(&[(1, me)]);
        }
        assert_eq!(hub.conns.len(), 1);
        hub.serve(&[(1, me)]);
        assert_eq!(hub.conns.len(), 1, "waiting for the rest of the head");
        client.write_all(b"Host: x\r\n\r\n").unwrap();
        while !hub.conns.is_empty() && Instant::now() < until {
            hub.serve(&[(1, me)]);
        }
        let mut text = String::new();
        client.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("ferrule_request_duration_seconds_count 3\n"));
        assert!(text.contains(&format!("worker=\"1\",pid=\"{me}\"")));
        let mut fds = Vec::new();
        hub.poll_fds(&mut fds);
        assert_eq!(
            fds.len(),
            1,
            "only the listener once the client is answered"
        );
    }
}
