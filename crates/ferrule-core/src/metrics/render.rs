//! A [`Snapshot`] as Prometheus text or JSON.
//!
//! Prometheus text exposition format 0.0.4: per family a `# HELP name text` and a
//! `# TYPE name counter|gauge|histogram` line, then `name{label="value"} number` samples. A
//! histogram has cumulative `name_bucket{le="…"}` samples ending with `le="+Inf"` (equal to
//! `name_count`) and `name_sum`. Durations are in seconds, the Prometheus base unit. Every
//! name starts with `ferrule_`.
//!
//! A master adds what only it knows ([`Supervision`]): its live workers (with the resident
//! memory of each) and the restarts by reason.

use std::fmt::Write;

use super::hub::Supervision;
use super::{Snapshot, CLASSES, LATENCY_BUCKETS_MS, METHODS, REFUSED_STATUSES};

/// The `Content-Type` of [`prometheus`]'s output.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One `# HELP` + `# TYPE` header.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP ferrule_{name} {help}");
    let _ = writeln!(out, "# TYPE ferrule_{name} {kind}");
}

/// A family with one unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "ferrule_{name} {value}");
}

/// `s` in the Prometheus text format.
pub fn prometheus(s: &Snapshot) -> String {
    prometheus_with(s, None)
}

/// `s`, and a master's [`Supervision`] when given, in the Prometheus text format.
pub fn prometheus_with(s: &Snapshot, supervision: Option<&Supervision>) -> String {
    let mut out = String::with_capacity(4096);
    family(
        &mut out,
        "requests_total",
        "counter",
        "Finished requests by status class and method.",
    );
    for (c, class) in CLASSES.iter().enumerate() {
        for (m, method) in METHODS.iter().enumerate() {
            let n = s
                .requests
                .get(c)
                .and_then(|r| r.get(m))
                .copied()
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "ferrule_requests_total{{status_class=\"{class}\",method=\"{method}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "request_duration_seconds",
        "histogram",
        "Time from the parsed request head to the end of the response.",
    );
    for (i, le) in LATENCY_BUCKETS_MS.iter().enumerate() {
        let n = s.latency_buckets.get(i).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "ferrule_request_duration_seconds_bucket{{le=\"{}\"}} {n}",
            le / 1000.0
        );
    }
    let count = s.requests_total();
    let _ = writeln!(
        out,
        "ferrule_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(
        out,
        "ferrule_request_duration_seconds_sum {}",
        s.latency_sum_seconds
    );
    let _ = writeln!(out, "ferrule_request_duration_seconds_count {count}");
    single(
        &mut out,
        "requests_in_flight",
        "gauge",
        "Requests being served now.",
        s.in_flight,
    );
    single(
        &mut out,
        "queue_depth",
        "gauge",
        "Requests waiting for an application thread.",
        s.queue_depth,
    );
    single(
        &mut out,
        "received_bytes_total",
        "counter",
        "Bytes read from clients (HTTP/1 connections).",
        s.bytes_in,
    );
    single(
        &mut out,
        "sent_bytes_total",
        "counter",
        "Bytes written to clients (HTTP/1 connections).",
        s.bytes_out,
    );
    single(
        &mut out,
        "connections_open",
        "gauge",
        "Client connections open now.",
        s.open_connections,
    );
    single(
        &mut out,
        "connections_total",
        "counter",
        "Client connections accepted.",
        s.connections_total,
    );
    single(
        &mut out,
        "connections_refused_total",
        "counter",
        "Connections refused past worker_connections (overload).",
        s.connections_refused,
    );
    single(
        &mut out,
        "resident_memory_bytes",
        "gauge",
        "Resident set size of the serving processes.",
        s.rss_bytes,
    );
    family(
        &mut out,
        "requests_refused_total",
        "counter",
        "Requests answered with an error before the application saw them, by status.",
    );
    for (i, status) in REFUSED_STATUSES.iter().enumerate() {
        let n = s.refused.get(i).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "ferrule_requests_refused_total{{status=\"{status}\"}} {n}"
        );
    }
    if let Some(sup) = supervision {
        supervision_families(&mut out, sup);
    }
    out
}

/// The master's own families: workers, their memory, restarts by reason.
fn supervision_families(out: &mut String, sup: &Supervision) {
    single(
        out,
        "workers",
        "gauge",
        "Worker processes alive now.",
        sup.workers.len() as u64,
    );
    family(
        out,
        "worker_resident_memory_bytes",
        "gauge",
        "Resident set size of each worker, read by the master from /proc/PID/statm.",
    );
    for w in &sup.workers {
        let _ = writeln!(
            out,
            "ferrule_worker_resident_memory_bytes{{worker=\"{}\",pid=\"{}\"}} {}",
            w.id, w.pid, w.rss_bytes
        );
    }
    family(
        out,
        "worker_restarts_total",
        "counter",
        "Workers replaced, by reason.",
    );
    for (reason, n) in &sup.restarts {
        let _ = writeln!(
            out,
            "ferrule_worker_restarts_total{{reason=\"{reason}\"}} {n}"
        );
    }
}

/// `s` as a JSON object (`/status.json`): the same numbers, keyed by label.
pub fn json(s: &Snapshot) -> String {
    json_with(s, None)
}

/// [`json`], with a master's [`Supervision`] (`workers`, `restarts`) when given.
pub fn json_with(s: &Snapshot, supervision: Option<&Supervision>) -> String {
    let requests: serde_json::Map<String, serde_json::Value> = CLASSES
        .iter()
        .enumerate()
        .map(|(c, class)| {
            let row: serde_json::Map<String, serde_json::Value> = METHODS
                .iter()
                .enumerate()
                .map(|(m, method)| {
                    let n = s
                        .requests
                        .get(c)
                        .and_then(|r| r.get(m))
                        .copied()
                        .unwrap_or(0);
                    ((*method).to_owned(), n.into())
                })
                .collect();
            ((*class).to_owned(), row.into())
        })
        .collect();
    let refused: serde_json::Map<String, serde_json::Value> = REFUSED_STATUSES
        .iter()
        .enumerate()
        .map(|(i, status)| {
            let n = s.refused.get(i).copied().unwrap_or(0);
            ((*status).to_owned(), n.into())
        })
        .collect();
    let mut doc = serde_json::json!({
        "pid": std::process::id(),
        // Seconds since the epoch: the page computes rates from it, not from its own clock.
        "time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        "requests_total": s.requests_total(),
        "requests": requests,
        "latency": {
            "buckets_ms": LATENCY_BUCKETS_MS,
            "cumulative_counts": s.latency_buckets,
            "sum_seconds": s.latency_sum_seconds,
            "count": s.requests_total(),
        },
        "in_flight": s.in_flight,
        "queue_depth": s.queue_depth,
        "bytes_in": s.bytes_in,
        "bytes_out": s.bytes_out,
        "connections_open": s.open_connections,
        "connections_total": s.connections_total,
        "connections_refused": s.connections_refused,
        "rss_bytes": s.rss_bytes,
        "refused": refused,
    });
    if let (Some(sup), Some(map)) = (supervision, doc.as_object_mut()) {
        let workers: Vec<serde_json::Value> = sup
            .workers
            .iter()
            .map(|w| serde_json::json!({"id": w.id, "pid": w.pid, "rss_bytes": w.rss_bytes}))
            .collect();
        let restarts: serde_json::Map<String, serde_json::Value> = sup
            .restarts
            .iter()
            .map(|(reason, n)| ((*reason).to_owned(), (*n).into()))
            .collect();
        map.insert("workers".into(), workers.into());
        map.insert("restarts".into(), restarts.into());
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::time::Duration;

    fn sample() -> Snapshot {
        let m = Metrics::new();
        m.request_done(0, 200, Duration::from_millis(2));
        m.request_done(1, 500, Duration::from_millis(30));
        m.snapshot(3)
    }

    #[test]
    fn prometheus_has_help_type_and_cumulative_buckets() {
        let text = prometheus(&sample());
        assert!(text.contains("# TYPE ferrule_requests_total counter\n"));
        assert!(text.contains("ferrule_requests_total{status_class=\"2xx\",method=\"GET\"} 1\n"));
        assert!(text.contains("ferrule_requests_total{status_class=\"5xx\",method=\"POST\"} 1\n"));
        assert!(text.contains("ferrule_request_duration_seconds_bucket{le=\"0.0025\"} 1\n"));
        assert!(text.contains("ferrule_request_duration_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("ferrule_request_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("ferrule_request_duration_seconds_count 2\n"));
        assert!(text.contains("ferrule_queue_depth 3\n"));
        for line in text.lines() {
            assert!(
                line.starts_with("# HELP ferrule_")
                    || line.starts_with("# TYPE ferrule_")
                    || line.starts_with("ferrule_"),
                "{line}"
            );
        }
    }

    fn supervision() -> Supervision {
        Supervision {
            workers: vec![super::super::hub::WorkerStat {
                id: 2,
                pid: 4321,
                rss_bytes: 5_000_000,
            }],
            restarts: vec![("signal", 1), ("exited", 0)],
        }
    }

    #[test]
    fn refusals_and_supervision_are_rendered() {
        let text = prometheus_with(&sample(), Some(&supervision()));
        assert!(text.contains("ferrule_requests_refused_total{status=\"400\"} 0\n"));
        assert!(text.contains("# TYPE ferrule_worker_restarts_total counter\n"));
        assert!(text.contains("ferrule_worker_restarts_total{reason=\"signal\"} 1\n"));
        assert!(text
            .contains("ferrule_worker_resident_memory_bytes{worker=\"2\",pid=\"4321\"} 5000000\n"));
        assert!(text.contains("ferrule_workers 1\n"));
        assert!(!prometheus(&sample()).contains("ferrule_workers"));
        let v: serde_json::Value =
            serde_json::from_str(&json_with(&sample(), Some(&supervision()))).unwrap();
        assert_eq!(v["workers"][0]["pid"], 4321);
        assert_eq!(v["restarts"]["signal"], 1);
        assert_eq!(v["refused"]["431"], 0);
    }

    #[test]
    fn json_parses_with_the_same_numbers() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample())).unwrap();
        assert_eq!(v["requests_total"], 2);
        assert_eq!(v["requests"]["2xx"]["GET"], 1);
        assert_eq!(v["latency"]["cumulative_counts"][1], 1);
        assert_eq!(v["queue_depth"], 3);
    }
}
