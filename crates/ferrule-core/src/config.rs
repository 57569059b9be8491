//! The server's configuration: one typed struct, filled by the Python side (`python/ferrule/
//! config.py`, the single source of truth for option names, defaults and help) and handed to
//! Rust as JSON. Unknown keys are an error, so the two sides cannot drift silently.
//!
//! Every limit is a named constant here with its documented default.

use std::time::Duration;

use serde::Deserialize;

/// Default application threads per process. See docs/architecture.md ("Threads") for why.
pub const DEFAULT_THREADS: usize = 4;
/// Default bound on a request body read completely before the app is called (1 MiB).
/// Larger bodies stream to the app while it reads.
pub const DEFAULT_MAX_BUFFERED_BODY: usize = 1024 * 1024;
/// Default maximum request-line length in bytes (gunicorn `--limit-request-line`: 4094). → 414.
pub const DEFAULT_LIMIT_REQUEST_LINE: usize = 8190;
/// Default maximum number of header fields (gunicorn `--limit-request-fields`: 100). → 431.
pub const DEFAULT_LIMIT_REQUEST_FIELDS: usize = 100;
/// Default maximum size of one header field line in bytes (gunicorn `--limit-request-field_size`). → 431.
pub const DEFAULT_LIMIT_REQUEST_FIELD_SIZE: usize = 8190;
/// Default maximum size of the whole request head (request line + headers) in bytes. → 431.
pub const DEFAULT_LIMIT_REQUEST_HEAD: usize = 64 * 1024;
/// Default maximum request body in bytes (1 GiB); 0 = unlimited. → 413.
pub const DEFAULT_LIMIT_REQUEST_BODY: u64 = 1024 * 1024 * 1024;
/// Default idle time allowed between keep-alive requests, in seconds (gunicorn `--keep-alive`: 2;
/// ours is longer because an idle connection costs us no thread).
pub const DEFAULT_KEEPALIVE_SECS: f64 = 5.0;
/// Default time allowed to receive a complete request head, in seconds (slowloris bound).
pub const DEFAULT_HEADER_TIMEOUT_SECS: f64 = 30.0;
/// Default time allowed between two reads of a request body making progress, in seconds.
pub const DEFAULT_BODY_TIMEOUT_SECS: f64 = 30.0;
/// Default time allowed for one write to the client to make progress, in seconds.
pub const DEFAULT_WRITE_TIMEOUT_SECS: f64 = 30.0;
/// Default time in-flight requests get to finish on shutdown, in seconds (gunicorn: 30).
pub const DEFAULT_GRACEFUL_TIMEOUT_SECS: f64 = 30.0;
/// Default listen backlog (gunicorn: 2048).
pub const DEFAULT_BACKLOG: u32 = 2048;
/// Default number of worker processes (the CLI reads `WEB_CONCURRENCY` first). One worker is
/// served by the `ferrule` process itself, without a master (docs/architecture.md, "Processes").
pub const DEFAULT_WORKERS: usize = 1;
/// Default maximum of concurrent connections per process (gunicorn `--worker-connections`: 1000).
/// Higher than gunicorn's because an idle connection costs us no thread, only its socket and a
/// small task (about 3 KiB measured): 10,000 of them are ~30 MiB. Past it, new connections wait
/// in the listen backlog (or get a fast 503 with `overload_503`).
pub const DEFAULT_WORKER_CONNECTIONS: usize = 10_000;
/// Default maximum of requests waiting for an application thread; past it a request gets an
/// immediate `503` with `Retry-After` (the app never runs). 1000: with 4 threads at ~10 ms per
/// request a full queue is already ~2.5 s of waiting, so a longer queue only adds latency that
/// ends in client timeouts; a shorter one would refuse ordinary bursts from many keep-alive
/// clients. Each queued request holds at most its buffered body (`max_buffered_body`).
pub const DEFAULT_MAX_QUEUED_REQUESTS: usize = 1000;
/// Default time a request may wait for an application thread before it is answered `503` with
/// `Retry-After` without running the app, in seconds; 0 = no limit. 30: the usual patience of a
/// client or proxy in front (gunicorn's worker timeout, most proxies' read timeouts are 30-60 s);
/// a request older than that is most likely abandoned, and running it is wasted work.
pub const DEFAULT_QUEUE_TIMEOUT_SECS: f64 = 30.0;
/// Default `max_requests`: 0 = a worker is never recycled for the number of requests it served
/// (gunicorn's default too). Recycling is a workaround for leaks, asked for by the operator.
pub const DEFAULT_MAX_REQUESTS: u64 = 0;
/// Default `max_requests_jitter`: 0 = no random extra.
pub const DEFAULT_MAX_REQUESTS_JITTER: u64 = 0;
/// Default `max_worker_memory` in MiB: 0 = no memory limit (the right limit depends on the app).
pub const DEFAULT_MAX_WORKER_MEMORY_MIB: u64 = 0;
/// Default `max_worker_lifetime` in seconds: 0 = workers are not recycled by age.
pub const DEFAULT_MAX_WORKER_LIFETIME_SECS: f64 = 0.0;
/// Default per-request deadline in seconds (`--timeout`, gunicorn's name and default): an app
/// that has not produced its response head 30 s after an application thread took the request
/// gets a 504 for the client and an exception in its thread. 30 s is also what most proxies
/// in front wait (and our other defaults): past that, the client has usually given up.
pub const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
/// Default access log line: gunicorn's (Apache's "combined" format). The directives are listed
/// in `server/access.rs`.
pub const DEFAULT_ACCESS_LOG_FORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// Error log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

/// The whole configuration of one serving process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Addresses to listen on, `HOST:PORT` or `[V6]:PORT`. Port 0 picks a free port; the bound
    /// address is logged as `Listening at: http://HOST:PORT (PID)`.
    pub bind: Vec<String>,
    /// Application threads in this process.
    pub threads: usize,
    /// Worker processes; more than 1 runs a master that forks and supervises them.
    pub workers: usize,
    /// On HUP, replace workers one at a time (at most one extra worker at any moment).
    pub reload_one_by_one: bool,
    /// Each worker listens on its own `SO_REUSEPORT` socket bound to the same address (the
    /// kernel spreads connections evenly); the master only holds the address.
    pub reuse_port: bool,
    /// Recycle a worker after this many requests (plus jitter); 0 = never. Needs a master.
    pub max_requests: u64,
    /// Random extra requests, `0..=max_requests_jitter`, drawn once per worker.
    pub max_requests_jitter: u64,
    /// Recycle a worker whose resident memory exceeds this many MiB; 0 = never. Needs a master.
    pub max_worker_memory: u64,
    /// Recycle a worker after this many seconds; 0 = never. Needs a master.
    pub max_worker_lifetime: f64,
    /// Listen backlog.
    pub backlog: u32,
    /// Bodies up to this size are read completely before the app runs; larger ones stream.
    pub max_buffered_body: usize,
    pub limit_request_line: usize,
    pub limit_request_fields: usize,
    pub limit_request_field_size: usize,
    pub limit_request_head: usize,
    /// 0 = unlimited.
    pub limit_request_body: u64,
    /// Maximum concurrent connections in this process (at least 1).
    pub worker_connections: usize,
    /// Past `worker_connections`, accept and answer `503` + `Retry-After` instead of leaving new
    /// connections in the backlog.
    pub overload_503: bool,
    /// Maximum requests waiting for an application thread; 0 = unlimited.
    pub max_queued_requests: usize,
    /// Seconds a request may wait for an application thread; 0 = no limit.
    pub queue_timeout: f64,
    pub keepalive_timeout: f64,
    pub header_timeout: f64,
    pub body_timeout: f64,
    pub write_timeout: f64,
    pub graceful_timeout: f64,
    /// Per-request deadline for the app to produce its response head; 0 = none.
    pub timeout: f64,
    pub log_level: LogLevel,
    /// Access log destination: `None` = off, `"-"` = stdout, else a file path (appended).
    pub access_log: Option<String>,
    /// The access log line, gunicorn `access_log_format` directives (compiled once at start).
    pub access_log_format: String,
    /// Write one JSON object per request instead of `access_log_format`.
    pub access_log_json: bool,
    /// Error log destination: `"-"` = stderr, else a file path (appended).
    pub error_log: String,
    /// Value of the `Server` response header; empty = send none.
    pub server_header: String,
    /// Reported as `wsgi.multiprocess`.
    pub multiprocess: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: vec!["127.0.0.1:8000".to_owned()],
            threads: DEFAULT_THREADS,
            workers: DEFAULT_WORKERS,
            reload_one_by_one: false,
            reuse_port: false,
            max_requests: DEFAULT_MAX_REQUESTS,
            max_requests_jitter: DEFAULT_MAX_REQUESTS_JITTER,
            max_worker_memory: DEFAULT_MAX_WORKER_MEMORY_MIB,
            max_worker_lifetime: DEFAULT_MAX_WORKER_LIFETIME_SECS,
            backlog: DEFAULT_BACKLOG,
            max_buffered_body: DEFAULT_MAX_BUFFERED_BODY,
            limit_request_line: DEFAULT_LIMIT_REQUEST_LINE,
            limit_request_fields: DEFAULT_LIMIT_REQUEST_FIELDS,
            limit_request_field_size: DEFAULT_LIMIT_REQUEST_FIELD_SIZE,
            limit_request_head: DEFAULT_LIMIT_REQUEST_HEAD,
            limit_request_body: DEFAULT_LIMIT_REQUEST_BODY,
            worker_connections: DEFAULT_WORKER_CONNECTIONS,
            overload_503: false,
            max_queued_requests: DEFAULT_MAX_QUEUED_REQUESTS,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT_SECS,
            keepalive_timeout: DEFAULT_KEEPALIVE_SECS,
            header_timeout: DEFAULT_HEADER_TIMEOUT_SECS,
            body_timeout: DEFAULT_BODY_TIMEOUT_SECS,
            write_timeout: DEFAULT_WRITE_TIMEOUT_SECS,
            graceful_timeout: DEFAULT_GRACEFUL_TIMEOUT_SECS,
            timeout: DEFAULT_TIMEOUT_SECS,
            log_level: LogLevel::Info,
            access_log: None,
            access_log_format: DEFAULT_ACCESS_LOG_FORMAT.to_owned(),
            access_log_json: false,
            error_log: "-".to_owned(),
            server_header: "ferrule".to_owned(),
            multiprocess: false,
        }
    }
}

/// A configuration that cannot be used, with the setting it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: &'static str,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid setting {}: {}", self.setting, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ServerConfig {
    /// Parses the JSON the Python side sends, then checks value ranges.
    pub fn from_json(text: &str) -> Result<ServerConfig, ConfigError> {
        let config: ServerConfig = serde_json::from_str(text).map_err(|e| ConfigError {
            setting: "config",
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |setting, message: &str| {
            Err(ConfigError {
                setting,
                message: message.to_owned(),
            })
        };
        if self.bind.is_empty() {
            return err("bind", "at least one address is needed");
        }
        if self.threads == 0 {
            return err("threads", "must be at least 1");
        }
        for (name, secs) in [
            ("keepalive_timeout", self.keepalive_timeout),
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("write_timeout", self.write_timeout),
            ("graceful_timeout", self.graceful_timeout),
            ("queue_timeout", self.queue_timeout),
            ("max_worker_lifetime", self.max_worker_lifetime),
            ("timeout", self.timeout),
        ] {
            if !(secs.is_finite() && secs >= 0.0) {
                return err(name, "must be a non-negative number of seconds");
            }
        }
        if self.workers == 0 {
            return err("workers", "must be at least 1");
        }
        if self.worker_connections == 0 {
            return err("worker_connections", "must be at least 1");
        }
        if self.limit_request_line < 16 {
            return err("limit_request_line", "must be at least 16 bytes");
        }
        if self.limit_request_field_size < 16 {
            return err("limit_request_field_size", "must be at least 16 bytes");
        }
        if let Err(e) = crate::server::access::AccessFormat::compile(
            &self.access_log_format,
            self.access_log_json,
        ) {
            return Err(ConfigError {
                setting: "access_log_format",
                message: e.0,
            });
        }
        Ok(())
    }

    pub fn keepalive(&self) -> Duration {
        Duration::from_secs_f64(self.keepalive_timeout)
    }
    pub fn header_read(&self) -> Duration {
        Duration::from_secs_f64(self.header_timeout)
    }
    pub fn body_read(&self) -> Duration {
        Duration::from_secs_f64(self.body_timeout)
    }
    pub fn write(&self) -> Duration {
        Duration::from_secs_f64(self.write_timeout)
    }
    pub fn graceful(&self) -> Duration {
        Duration::from_secs_f64(self.graceful_timeout)
    }
    /// The per-request deadline (`timeout`); `None` = none.
    pub fn request_deadline(&self) -> Option<Duration> {
        (self.timeout > 0.0).then(|| Duration::from_secs_f64(self.timeout))
    }
    /// A worker's maximum age (`max_worker_lifetime`); `None` = no limit.
    pub fn worker_lifetime(&self) -> Option<Duration> {
        (self.max_worker_lifetime > 0.0).then(|| Duration::from_secs_f64(self.max_worker_lifetime))
    }
    /// True when an option asks for worker recycling, which needs a master even for one worker.
    pub fn recycles(&self) -> bool {
        self.max_requests > 0 || self.max_worker_memory > 0 || self.max_worker_lifetime > 0.0
    }
    /// How long a request may wait for an application thread; `None` = no limit.
    pub fn queue_wait(&self) -> Option<Duration> {
        (self.queue_timeout > 0.0).then(|| Duration::from_secs_f64(self.queue_timeout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_gives_defaults() {
        let c = ServerConfig::from_json("{}").unwrap();
        assert_eq!(c.threads, DEFAULT_THREADS);
        assert_eq!(c.max_buffered_body, DEFAULT_MAX_BUFFERED_BODY);
    }

    #[test]
    fn unknown_key_is_an_error() {
        let e = ServerConfig::from_json(r#"{"thread": 3}"#).unwrap_err();
        assert!(e.message.contains("thread"), "{e}");
    }

    #[test]
    fn zero_threads_is_an_error() {
        let e = ServerConfig::from_json(r#"{"threads": 0}"#).unwrap_err();
        assert_eq!(e.setting, "threads");
    }
}
