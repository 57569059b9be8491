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
/// Default permission bits of a `unix:PATH` socket file: read and write for its owner and
/// group (a front server such as nginx connects as a member of the group), nothing for others.
/// Set exactly, whatever the umask (`server::unix`).
pub const DEFAULT_UNIX_SOCKET_MODE: u32 = 0o660;
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
/// Default `boot_timeout` in seconds: a worker under a master that has not told it `READY`
/// this long after its fork is killed and replaced; 0 = no deadline. 60 s: a large app may
/// take tens of seconds to import on a cold disk, while an import stuck for a minute (on a
/// database, a lock, a DNS lookup) is hung. Below systemd's default `TimeoutStartSec` (90 s),
/// so the stuck worker's stack is logged and it is replaced before systemd gives up.
pub const DEFAULT_BOOT_TIMEOUT_SECS: f64 = 60.0;
/// Default per-request deadline in seconds (`--timeout`, gunicorn's name and default): an app
/// that has not produced its response head 30 s after an application thread took the request
/// gets a 504 for the client and an exception in its thread. 30 s is also what most proxies
/// in front wait (and our other defaults): past that, the client has usually given up.
pub const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
/// Default access log line: gunicorn's (Apache's "combined" format). The directives are listed
/// in `server/access.rs`.
pub const DEFAULT_ACCESS_LOG_FORMAT: &str =
    r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// Default most concurrent HTTP/2 streams per connection (`SETTINGS_MAX_CONCURRENT_STREAMS`,
/// RFC 9113 §6.5.2). 100: the value RFC 9113 recommends as a floor ("It is recommended that
/// this value be no smaller than 100") and what browsers expect; each open stream is at most
/// one queued request, so `max_queued_requests` still bounds the work.
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Default `http2_max_header_list_size`: 0 = the same bound as `limit_request_head`
/// (`SETTINGS_MAX_HEADER_LIST_SIZE`, RFC 9113 §6.5.2; past it the stream gets a 431).
pub const DEFAULT_HTTP2_MAX_HEADER_LIST_SIZE: u32 = 0;
/// Default HTTP/2 stream receive window in bytes (RFC 9113 §6.9.2; the protocol's own default
/// is 65,535): 1 MiB, so a request body up to `max_buffered_body` arrives without waiting for a
/// WINDOW_UPDATE round trip. A body the app reads slowly stops at this many unread bytes.
pub const DEFAULT_HTTP2_INITIAL_STREAM_WINDOW_SIZE: u32 = 1024 * 1024;
/// Default HTTP/2 connection receive window in bytes: 2 MiB (two streams' windows), the bound
/// on unread request-body bytes one connection can hold at once.
pub const DEFAULT_HTTP2_INITIAL_CONNECTION_WINDOW_SIZE: u32 = 2 * 1024 * 1024;
/// Default interval of HTTP/2 keep-alive PINGs in seconds; 0 = none (idle connections are
/// closed by `keepalive_timeout` instead). A PING unanswered for `write_timeout` closes the
/// connection.
pub const DEFAULT_HTTP2_KEEPALIVE_INTERVAL_SECS: f64 = 0.0;

/// Default `static_max_age`: 0 = static files get no `Cache-Control` (clients revalidate with
/// the ETag/Last-Modified they got; how long a file may be cached is the operator's call).
pub const DEFAULT_STATIC_MAX_AGE: u64 = 0;
/// Default `compress_min_size`: bodies known whole and shorter than 1 KiB are sent as they are.
/// Below about one TCP segment, compression saves no round trip and gzip's 18-byte frame plus
/// the CPU are pure cost.
pub const DEFAULT_COMPRESS_MIN_SIZE: usize = 1024;
/// Default `compress_types`: text formats that compress well, comma-separated. A `type/*` entry
/// matches the whole top-level type; parameters (`; charset=...`) are ignored when matching.
pub const DEFAULT_COMPRESS_TYPES: &str = r#"text/*,application/json,application/javascript,application/xml,application/xhtml+xml,application/rss+xml,application/atom+xml,application/manifest+json,application/ld+json,application/wasm,image/svg+xml"#;

/// Default `--cert-reqs`: 0, no client certificate asked for (gunicorn's `ssl.CERT_NONE`).
pub const DEFAULT_CERT_REQS: u8 = 0;

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
    /// Addresses to listen on, `HOST:PORT` or `[V6]:PORT`, `unix:PATH` (a Unix stream socket)
    /// or `fd://N` (an inherited listening socket). Port 0 picks a free port; the bound
    /// address is logged as `Listening at: http://HOST:PORT (PID)` (`Listening at: unix:PATH`).
    pub bind: Vec<String>,
    /// Permission bits of the socket files of `unix:PATH` binds (at most `0o777`).
    pub unix_socket_mode: u32,
    /// TLS certificate chain (PEM); set = every TCP listener serves TLS.
    pub certfile: Option<String>,
    /// TLS private key (PEM); `None` = read it from `certfile`.
    pub keyfile: Option<String>,
    /// CA certificates (PEM) that client certificates are verified against.
    pub ca_certs: Option<String>,
    /// Client certificates: 0 not asked for, 1 optional, 2 required (gunicorn `ssl.CERT_*`).
    pub cert_reqs: u8,
    /// PROXY protocol header required at the start of every connection.
    pub proxy_protocol: crate::proxy_protocol::ProxyProtocolMode,
    /// Peers allowed to send a PROXY header; others are closed at accept.
    pub proxy_allow_from: crate::cidr::AddrAllowList,
    /// Peers whose forwarding headers (`Forwarded`, `X-Forwarded-*`) are believed; from anyone
    /// else they are removed.
    pub forwarded_allow_ips: crate::cidr::AddrAllowList,
    /// What every listener speaks: HTTP, or the uwsgi binary protocol (`crate::uwsgi`) for a
    /// front server's `uwsgi_pass` / `mod_proxy_uwsgi`.
    pub protocol: crate::uwsgi::Protocol,
    /// Peers allowed to speak uwsgi (a Unix socket peer always is); others are closed at once.
    pub uwsgi_allow_from: crate::cidr::AddrAllowList,
    /// Application threads in this process.
    pub threads: usize,
    /// Worker processes; more than 1 runs a master that forks and supervises them.
    pub workers: usize,
    /// On HUP, replace workers one at a time (at most one extra worker at any moment).
    pub reload_one_by_one: bool,
    /// Dev reload: workers ask to be replaced when the app's code changes; a replacement that
    /// cannot load it leaves the running workers serving instead of stopping the server.
    pub reload: bool,
    /// Recycle a worker after this many requests (plus jitter); 0 = never. Needs a master.
    pub max_requests: u64,
    /// Random extra requests, `0..=max_requests_jitter`, drawn once per worker.
    pub max_requests_jitter: u64,
    /// Recycle a worker whose resident memory exceeds this many MiB; 0 = never. Needs a master.
    pub max_worker_memory: u64,
    /// Recycle a worker after this many seconds; 0 = never. Needs a master.
    pub max_worker_lifetime: f64,
    /// Seconds a worker under a master may take from its fork to `READY` before it is killed
    /// (SIGKILL) and replaced; 0 = no deadline.
    pub boot_timeout: f64,
    /// The workers' user (`--user`, a name or a number; the Python side switches them to it
    /// after the fork). The socket files of `unix:PATH` binds are chowned to it
    /// (`crate::server::unix`).
    pub user: Option<String>,
    /// The workers' group (`--group`), likewise; with `user` alone, that user's primary group.
    pub group: Option<String>,
    /// Each worker listens on its own `SO_REUSEPORT` socket bound to the same address (the
    /// kernel spreads connections evenly); the master only holds the address.
    pub reuse_port: bool,
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
    /// Static file mounts, `"/url/prefix=path/to/dir"`, served by Rust before the app
    /// (`static_files`).
    pub static_map: Vec<String>,
    /// `Cache-Control: public, max-age=N` on static files; 0 = no `Cache-Control`.
    pub static_max_age: u64,
    /// Serve files under a static root through symlinks that lead out of it.
    pub static_follow_symlinks: bool,
    /// Compress app responses with gzip or brotli when the client accepts it.
    pub compress: bool,
    /// Bodies known whole below this many bytes are not compressed.
    pub compress_min_size: usize,
    /// Content types compressed, comma-separated (`type/subtype` or `type/*`).
    pub compress_types: String,
    /// Propagate a valid incoming `X-Request-ID` or generate one: in the environ, the response
    /// and the access log.
    pub request_id: bool,
    /// Plain-TCP connections that open with the HTTP/2 connection preface are served as
    /// HTTP/2 (h2c with prior knowledge, RFC 9113 §3.3); others stay HTTP/1.
    pub http2: bool,
    /// Most concurrent streams per HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
    /// Largest HTTP/2 header list (RFC 9113 §6.5.2 size); 0 = `limit_request_head`.
    pub http2_max_header_list_size: u32,
    pub http2_initial_stream_window_size: u32,
    pub http2_initial_connection_window_size: u32,
    /// Seconds between HTTP/2 keep-alive PINGs; 0 = none.
    pub http2_keepalive_interval: f64,
    /// `HOST:PORT` of the metrics listener (`/metrics`, `/status`, `/status.json`); `None` = off.
    pub metrics_bind: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: vec!["127.0.0.1:8000".to_owned()],
            unix_socket_mode: DEFAULT_UNIX_SOCKET_MODE,
            certfile: None,
            keyfile: None,
            ca_certs: None,
            cert_reqs: DEFAULT_CERT_REQS,
            proxy_protocol: crate::proxy_protocol::ProxyProtocolMode::Off,
            proxy_allow_from: crate::cidr::AddrAllowList::loopback(),
            forwarded_allow_ips: crate::cidr::AddrAllowList::loopback(),
            protocol: crate::uwsgi::Protocol::Http,
            uwsgi_allow_from: crate::cidr::AddrAllowList::loopback(),
            threads: DEFAULT_THREADS,
            workers: DEFAULT_WORKERS,
            reload_one_by_one: false,
            reload: false,
            reuse_port: false,
            max_requests: DEFAULT_MAX_REQUESTS,
            max_requests_jitter: DEFAULT_MAX_REQUESTS_JITTER,
            max_worker_memory: DEFAULT_MAX_WORKER_MEMORY_MIB,
            max_worker_lifetime: DEFAULT_MAX_WORKER_LIFETIME_SECS,
            boot_timeout: DEFAULT_BOOT_TIMEOUT_SECS,
            user: None,
            group: None,
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
            static_map: vec![],
            static_max_age: DEFAULT_STATIC_MAX_AGE,
            static_follow_symlinks: false,
            compress: false,
            compress_min_size: DEFAULT_COMPRESS_MIN_SIZE,
            compress_types: DEFAULT_COMPRESS_TYPES.to_owned(),
            request_id: false,
            http2: false,
            http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
            http2_max_header_list_size: DEFAULT_HTTP2_MAX_HEADER_LIST_SIZE,
            http2_initial_stream_window_size: DEFAULT_HTTP2_INITIAL_STREAM_WINDOW_SIZE,
            http2_initial_connection_window_size: DEFAULT_HTTP2_INITIAL_CONNECTION_WINDOW_SIZE,
            http2_keepalive_interval: DEFAULT_HTTP2_KEEPALIVE_INTERVAL_SECS,
            metrics_bind: None,
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
        if self.unix_socket_mode > 0o777 {
            return err("unix_socket_mode", "must be permission bits, at most 0o777");
        }
        for (name, secs) in [
            ("keepalive_timeout", self.keepalive_timeout),
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("write_timeout", self.write_timeout),
            ("graceful_timeout", self.graceful_timeout),
            ("queue_timeout", self.queue_timeout),
            ("max_worker_lifetime", self.max_worker_lifetime),
            ("boot_timeout", self.boot_timeout),
            ("timeout", self.timeout),
            ("http2_keepalive_interval", self.http2_keepalive_interval),
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
        if self.http2_max_concurrent_streams == 0 {
            return err("http2_max_concurrent_streams", "must be at least 1");
        }
        // RFC 9113 §6.5.2: window sizes above 2^31-1 are a FLOW_CONTROL_ERROR; below the
        // protocol default a client would stall on every stream.
        for (name, size) in [
            (
                "http2_initial_stream_window_size",
                self.http2_initial_stream_window_size,
            ),
            (
                "http2_initial_connection_window_size",
                self.http2_initial_connection_window_size,
            ),
        ] {
            if !(65_535..=0x7fff_ffff).contains(&size) {
                return err(name, "must be between 65535 and 2147483647 bytes");
            }
        }
        if self.limit_request_line < 16 {
            return err("limit_request_line", "must be at least 16 bytes");
        }
        if self.limit_request_field_size < 16 {
            return err("limit_request_field_size", "must be at least 16 bytes");
        }
        if self.cert_reqs > 2 {
            return err(
                "cert_reqs",
                "must be 0 (none), 1 (optional) or 2 (required)",
            );
        }
        if self.protocol == crate::uwsgi::Protocol::Uwsgi {
            // uwsgi comes from a front server that already ended TLS and knows the client: the
            // packet carries the scheme and the client address itself.
            for (setting, set) in [
                ("certfile", self.certfile.is_some()),
                ("proxy_protocol", self.proxy_protocol.expects_header()),
                ("http2", self.http2),
            ] {
                if set {
                    return err(setting, "cannot be combined with protocol uwsgi");
                }
            }
        }
        if self.certfile.is_none() && (self.keyfile.is_some() || self.ca_certs.is_some()) {
            return err("certfile", "keyfile and ca_certs need a certfile");
        }
        if self.cert_reqs > 0 && self.ca_certs.is_none() {
            return err(
                "ca_certs",
                "cert_reqs 1 or 2 needs ca_certs to verify clients",
            );
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
        if let Err(message) = crate::static_files::Mounts::parse(&self.static_map) {
            return Err(ConfigError {
                setting: "static_map",
                message,
            });
        }
        for t in self.compress_type_list() {
            if !crate::middleware::compress::valid_type_pattern(&t) {
                return Err(ConfigError {
                    setting: "compress_types",
                    message: format!("{t:?} is not a media type (type/subtype or type/*)"),
                });
            }
        }
        Ok(())
    }

    /// `compress_types` as a list (entries trimmed and lower-cased, empty ones skipped).
    pub fn compress_type_list(&self) -> Vec<String> {
        self.compress_types
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }
    pub fn keepalive(&self) -> Duration {
        seconds(self.keepalive_timeout)
    }
    pub fn header_read(&self) -> Duration {
        seconds(self.header_timeout)
    }
    pub fn body_read(&self) -> Duration {
        seconds(self.body_timeout)
    }
    pub fn write(&self) -> Duration {
        seconds(self.write_timeout)
    }
    pub fn graceful(&self) -> Duration {
        seconds(self.graceful_timeout)
    }
    /// The per-request deadline (`timeout`); `None` = none.
    pub fn request_deadline(&self) -> Option<Duration> {
        (self.timeout > 0.0).then(|| seconds(self.timeout))
    }
    /// A worker's maximum age (`max_worker_lifetime`); `None` = no limit.
    pub fn worker_lifetime(&self) -> Option<Duration> {
        (self.max_worker_lifetime > 0.0).then(|| seconds(self.max_worker_lifetime))
    }
    /// How long a worker may take from its fork to `READY` (`boot_timeout`); `None` = no
    /// deadline.
    pub fn boot_deadline(&self) -> Option<Duration> {
        (self.boot_timeout > 0.0).then(|| seconds(self.boot_timeout))
    }
    /// True when an option asks for worker recycling, which needs a master even for one worker.
    pub fn recycles(&self) -> bool {
        self.max_requests > 0 || self.max_worker_memory > 0 || self.max_worker_lifetime > 0.0
    }
    /// How long a request may wait for an application thread; `None` = no limit.
    pub fn queue_wait(&self) -> Option<Duration> {
        (self.queue_timeout > 0.0).then(|| seconds(self.queue_timeout))
    }
    /// The HTTP/2 header list bound in bytes (`http2_max_header_list_size`, 0 =
    /// `limit_request_head`).
    pub fn http2_header_list(&self) -> u32 {
        match self.http2_max_header_list_size {
            0 => u32::try_from(self.limit_request_head).unwrap_or(u32::MAX),
            n => n,
        }
    }
    /// The HTTP/2 keep-alive PING interval; `None` = no PINGs.
    pub fn http2_keepalive(&self) -> Option<Duration> {
        (self.http2_keepalive_interval > 0.0).then(|| seconds(self.http2_keepalive_interval))
    }
}

/// A timeout in seconds as a `Duration`, cheaply: these are read on every request, and
/// `Duration::from_secs_f64` (exact rounding, panics on bad input) costs several times a float
/// multiply. Negative and NaN give zero, huge values saturate (`as` casts saturate).
fn seconds(secs: f64) -> Duration {
    Duration::from_nanos((secs * 1e9) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_convert_like_from_secs_f64() {
        for s in [0.0, 0.001, 0.5, 1.0, 2.5, 30.0, 75.25, 86_400.0] {
            let ours = seconds(s);
            let std = Duration::from_secs_f64(s);
            let diff = ours.abs_diff(std);
            assert!(diff <= Duration::from_nanos(1), "{s}: {ours:?} vs {std:?}");
        }
        assert_eq!(seconds(-1.0), Duration::ZERO);
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        assert_eq!(seconds(f64::INFINITY), Duration::from_nanos(u64::MAX));
    }

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
    fn uwsgi_protocol_and_its_allow_list() {
        let c = ServerConfig::from_json(
            r#"{"protocol": "uwsgi", "uwsgi_allow_from": "10.0.0.0/8,::1"}"#,
        )
        .unwrap();
        assert_eq!(c.protocol, crate::uwsgi::Protocol::Uwsgi);
        assert!(c.uwsgi_allow_from.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.uwsgi_allow_from.contains("127.0.0.1".parse().unwrap()));
        assert_eq!(
            ServerConfig::default().uwsgi_allow_from,
            crate::cidr::AddrAllowList::parse(crate::uwsgi::DEFAULT_UWSGI_ALLOW_FROM).unwrap()
        );
        for (extra, setting) in [
            (r#""certfile": "c.pem""#, "certfile"),
            (r#""proxy_protocol": "v1""#, "proxy_protocol"),
            (r#""http2": true"#, "http2"),
        ] {
            let e = ServerConfig::from_json(&format!(r#"{{"protocol": "uwsgi", {extra}}}"#))
                .unwrap_err();
            assert_eq!(e.setting, setting);
        }
    }

    #[test]
    fn zero_threads_is_an_error() {
        let e = ServerConfig::from_json(r#"{"threads": 0}"#).unwrap_err();
        assert_eq!(e.setting, "threads");
    }
}
