//! Per-process request metrics: lock-free counters updated on the hot path, read by the
//! metrics listener (`--metrics-bind`, [`serve`]).
//!
//! Every counter is a relaxed atomic in one `static` ([`global`]): a request costs a handful of
//! `fetch_add`s and no lock. A reader takes a [`Snapshot`] (plain numbers) and renders it as
//! Prometheus text or JSON ([`render`]). Counters may be read mid-update (a request counted
//! but its latency not yet): scrapes are instants, not transactions, as Prometheus expects.
//!
//! Files, one job each: this one (the counters and snapshots), [`render`] (Prometheus text
//! format 0.0.4 and JSON), [`serve`] (the tiny HTTP/1 listener with `/metrics`, `/status.json`
//! and the `/status` page), [`wire`] (a snapshot's fixed binary form, sent by a worker to its
//! master with each heartbeat) and [`hub`] (the master's side: the workers' snapshots summed,
//! restarts counted, the same pages served from the master's poll loop).

pub mod hub;
pub mod render;
pub mod serve;
pub mod wire;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upper bounds of the latency histogram's buckets, in milliseconds (Prometheus `le`; the
/// `+Inf` bucket is implicit).
pub const LATENCY_BUCKETS_MS: [f64; 13] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];
/// Histogram slots: one per bound plus `+Inf`.
const SLOTS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// Methods counted by name; anything else is `other`.
pub const METHODS: [&str; 8] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];
/// Status classes `1xx` … `5xx` (a status outside 100..=599 cannot be sent: the codec checks it).
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// Statuses of the requests refused before the application saw them (the declared outcomes of
/// `RequestError` and the overload refusal); any other is counted under the last slot, `other`.
pub const REFUSED_STATUSES: [&str; 11] = [
    "400", "408", "413", "414", "417", "431", "501", "503", "504", "505", "other",
];

/// The process's counters. See the module docs.
#[derive(Debug)]
pub struct Metrics {
    /// Finished requests by `[status class][method]`.
    requests: [[AtomicU64; METHODS.len()]; CLASSES.len()],
    /// Request latencies, one slot per bucket (not cumulative: [`Snapshot`] sums them).
    latency: [AtomicU64; SLOTS],
    /// Sum of all latencies, in microseconds.
    latency_sum_us: AtomicU64,
    in_flight: AtomicI64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    open_connections: AtomicI64,
    connections_total: AtomicU64,
    /// Connections refused past `worker_connections` (overload).
    connections_refused: AtomicU64,
    /// Requests answered with an error before the application saw them, by
    /// [`REFUSED_STATUSES`].
    refused: [AtomicU64; REFUSED_STATUSES.len()],
}

static METRICS: Metrics = Metrics::new();

/// This process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    const fn new() -> Metrics {
        Metrics {
            requests: [const { [const { AtomicU64::new(0) }; METHODS.len()] }; CLASSES.len()],
            latency: [const { AtomicU64::new(0) }; SLOTS],
            latency_sum_us: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            open_connections: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            refused: [const { AtomicU64::new(0) }; REFUSED_STATUSES.len()],
        }
    }

    /// One finished request (where its access log line is written); `method` from
    /// [`method_index`].
    pub fn request_done(&self, method: u8, status: u16, duration: Duration) {
        let class = usize::from(status / 100).clamp(1, CLASSES.len()) - 1;
        let method = usize::from(method).min(METHODS.len() - 1);
        self.requests[class][method].fetch_add(1, Relaxed);
        // Converted once, from u64 (a u128 to f64 conversion is a library call).
        let us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let ms = us as f64 / 1000.0;
        let slot = LATENCY_BUCKETS_MS
            .iter()
            .position(|&le| ms <= le)
            .unwrap_or(SLOTS - 1);
        self.latency[slot].fetch_add(1, Relaxed);
        self.latency_sum_us.fetch_add(us, Relaxed);
    }

    fn in_flight_add(&self, n: i64) {
        self.in_flight.fetch_add(n, Relaxed);
    }

    fn open_connections_add(&self, n: i64) {
        self.open_connections.fetch_add(n, Relaxed);
        if n > 0 {
            self.connections_total.fetch_add(1, Relaxed);
        }
    }

    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// A request answered with `status` before the application saw it (a malformed head, a
    /// body over the limit, a full queue, an overloaded process, …).
    pub fn request_refused(&self, status: u16) {
        let slot = REFUSED_STATUSES[..REFUSED_STATUSES.len() - 1]
            .iter()
            .position(|s| s.parse() == Ok(status))
            .unwrap_or(REFUSED_STATUSES.len() - 1);
        self.refused[slot].fetch_add(1, Relaxed);
    }

    pub fn add_bytes_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Relaxed);
    }

    pub fn add_bytes_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Relaxed);
    }

    /// The counters now, with the gauges only a reader knows (`queue_depth`, RSS).
    pub fn snapshot(&self, queue_depth: usize) -> Snapshot {
        let requests = self
            .requests
            .iter()
            .map(|row| row.iter().map(|c| c.load(Relaxed)).collect())
            .collect();
        let mut cumulative = 0;
        let latency_buckets = self
            .latency
            .iter()
            .map(|c| {
                cumulative += c.load(Relaxed);
                cumulative
            })
            .collect();
        Snapshot {
            requests,
            latency_buckets,
            latency_sum_seconds: self.latency_sum_us.load(Relaxed) as f64 / 1e6,
            in_flight: self.in_flight.load(Relaxed).max(0) as u64,
            queue_depth: queue_depth as u64,
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            open_connections: self.open_connections.load(Relaxed).max(0) as u64,
            connections_total: self.connections_total.load(Relaxed),
            connections_refused: self.connections_refused.load(Relaxed),
            rss_bytes: rss_bytes().unwrap_or(0),
            refused: self.refused.iter().map(|c| c.load(Relaxed)).collect(),
        }
    }
}

/// Index of `method` in [`METHODS`] (`other` when not named there); one byte, kept across a
/// request's life.
pub fn method_index(method: &[u8]) -> u8 {
    let i = METHODS[..METHODS.len() - 1]
        .iter()
        .position(|m| m.as_bytes() == method)
        .unwrap_or(METHODS.len() - 1);
    // METHODS has 8 entries.
    i as u8
}

/// A request started: counted in [`global`]'s in-flight gauge until the guard drops (every
/// way out of the request). Zero-sized, so it does not grow the connection's future.
pub fn request_started() -> InFlight {
    global().in_flight_add(1);
    InFlight(())
}

/// A connection was accepted: counted open in [`global`] until the guard drops. Zero-sized.
pub fn connection_opened() -> OpenConnection {
    global().open_connections_add(1);
    OpenConnection(())
}

/// Holds one request in the in-flight gauge ([`request_started`]).
#[derive(Debug)]
pub struct InFlight(());

impl Drop for InFlight {
    fn drop(&mut self) {
        global().in_flight_add(-1);
    }
}

/// Holds one connection in the open-connections gauge ([`connection_opened`]).
#[derive(Debug)]
pub struct OpenConnection(());

impl Drop for OpenConnection {
    fn drop(&mut self) {
        global().open_connections_add(-1);
    }
}

/// The metrics at one instant, as plain numbers; summable across workers ([`Snapshot::add`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Finished requests by `[status class][method]` ([`CLASSES`] × [`METHODS`]).
    pub requests: Vec<Vec<u64>>,
    /// Cumulative histogram counts, one per [`LATENCY_BUCKETS_MS`] bound then `+Inf` (= count).
    pub latency_buckets: Vec<u64>,
    pub latency_sum_seconds: f64,
    pub in_flight: u64,
    pub queue_depth: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub open_connections: u64,
    pub connections_total: u64,
    pub connections_refused: u64,
    pub rss_bytes: u64,
    /// Requests refused before the application, by [`REFUSED_STATUSES`].
    #[serde(default)]
    pub refused: Vec<u64>,
}

impl Snapshot {
    /// Finished requests, all kinds.
    pub fn requests_total(&self) -> u64 {
        self.latency_buckets.last().copied().unwrap_or(0)
    }

    /// Adds `other` (another worker's snapshot) to this one.
    pub fn add(&mut self, other: &Snapshot) {
        fn add_vec(a: &mut Vec<u64>, b: &[u64]) {
            if a.len() < b.len() {
                a.resize(b.len(), 0);
            }
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        if self.requests.len() < other.requests.len() {
            self.requests.resize(other.requests.len(), Vec::new());
        }
        self.requests
            .iter_mut()
            .zip(&other.requests)
            .for_each(|(a, b)| add_vec(a, b));
        add_vec(&mut self.latency_buckets, &other.latency_buckets);
        self.latency_sum_seconds += other.latency_sum_seconds;
        self.in_flight += other.in_flight;
        self.queue_depth += other.queue_depth;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.open_connections += other.open_connections;
        self.connections_total += other.connections_total;
        self.connections_refused += other.connections_refused;
        self.rss_bytes += other.rss_bytes;
        add_vec(&mut self.refused, &other.refused);
    }

    /// The counters only, gauges zeroed (in flight, queue depth, open connections, RSS): what
    /// an exited worker leaves behind, so totals never go backwards when it is gone.
    pub fn counters_only(&self) -> Snapshot {
        Snapshot {
            in_flight: 0,
            queue_depth: 0,
            open_connections: 0,
            rss_bytes: 0,
            ..self.clone()
        }
    }
}

/// Resident set size of this process: `/proc/self/statm` field 2 (pages) × page size.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|&p| p > 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_land_in_their_class_method_and_bucket() {
        let m = Metrics::new();
        m.request_done(method_index(b"GET"), 200, Duration::from_micros(500));
        m.request_done(method_index(b"GET"), 404, Duration::from_millis(3));
        m.request_done(method_index(b"BREW"), 503, Duration::from_secs(20));
        m.request_done(method_index(b"POST"), 101, Duration::from_millis(10));
        let s = m.snapshot(7);
        assert_eq!(s.requests[1][0], 1);
        assert_eq!(s.requests[3][0], 1);
        assert_eq!(s.requests[4][7], 1);
        assert_eq!(s.requests[0][1], 1);
        // le=1: 1; le=2.5: 1; le=5: 2; le=10: 3 (10 ms is "≤ 10"); +Inf: 4.
        assert_eq!(&s.latency_buckets[..4], &[1, 1, 2, 3]);
        assert_eq!(s.latency_buckets[12], 3);
        assert_eq!(s.requests_total(), 4);
        assert_eq!(s.queue_depth, 7);
        assert!((s.latency_sum_seconds - 20.0135).abs() < 1e-9);
    }

    #[test]
    fn gauges_go_up_and_down() {
        let m = Metrics::new();
        m.in_flight_add(1);
        m.open_connections_add(1);
        let s = m.snapshot(0);
        assert_eq!((s.in_flight, s.open_connections), (1, 1));
        m.in_flight_add(-1);
        m.open_connections_add(-1);
        let s = m.snapshot(0);
        assert_eq!(
            (s.in_flight, s.open_connections, s.connections_total),
            (0, 0, 1)
        );
        assert_eq!(std::mem::size_of::<InFlight>(), 0);
        assert_eq!(std::mem::size_of::<OpenConnection>(), 0);
    }

    #[test]
    fn snapshots_add_up() {
        let m = Metrics::new();
        m.request_done(method_index(b"GET"), 200, Duration::from_millis(1));
        m.add_bytes_in(10);
        let mut total = Snapshot::default();
        total.add(&m.snapshot(1));
        total.add(&m.snapshot(2));
        assert_eq!(total.requests_total(), 2);
        assert_eq!(total.requests[1][0], 2);
        assert_eq!((total.bytes_in, total.queue_depth), (20, 3));
    }

    #[test]
    fn refusals_are_counted_by_status() {
        let m = Metrics::new();
        m.request_refused(400);
        m.request_refused(400);
        m.request_refused(503);
        m.request_refused(418);
        let s = m.snapshot(0);
        assert_eq!(s.refused[0], 2);
        assert_eq!(s.refused[7], 1);
        assert_eq!(s.refused[REFUSED_STATUSES.len() - 1], 1);
        assert_eq!(
            s.requests_total(),
            0,
            "refusals are not application requests"
        );
    }

    #[test]
    fn counters_only_keeps_counters_and_drops_gauges() {
        let m = Metrics::new();
        m.request_done(0, 200, Duration::from_millis(1));
        m.in_flight_add(2);
        m.open_connections_add(1);
        let c = m.snapshot(4).counters_only();
        assert_eq!((c.requests_total(), c.connections_total), (1, 1));
        assert_eq!(
            (c.in_flight, c.open_connections, c.queue_depth, c.rss_bytes),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn rss_is_read() {
        assert!(rss_bytes().is_some_and(|r| r > 0));
    }
}
