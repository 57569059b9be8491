//! The error log and the access log.
//!
//! The error log is a [`log`] facade backend writing gunicorn-style lines,
//! `[2026-11-21 06:33:00 +0000] [PID] [LEVEL] message`, to stderr or a file. Everything in the
//! process (core, binding, `wsgi.errors`) logs through it. The access log is a separate sink
//! written once per request by the connection driver.
//!
//! Log files can be reopened ([`reopen_error_log`], [`AccessLog::reopen`]; SIGUSR1, as gunicorn
//! and nginx do), so logrotate can rename a file and have the server write to a fresh one at the
//! same path without a restart.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use crate::config::LogLevel;

/// Where lines go.
#[derive(Debug)]
enum Sink {
    Stderr,
    Stdout,
    File { path: String, file: Mutex<File> },
}

impl Sink {
    fn open(dest: &str, dash_is_stdout: bool) -> std::io::Result<Sink> {
        if dest == "-" {
            return Ok(if dash_is_stdout {
                Sink::Stdout
            } else {
                Sink::Stderr
            });
        }
        let file = OpenOptions::new().create(true).append(true).open(dest)?;
        Ok(Sink::File {
            path: dest.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// Opens the file's path again and writes there from now on (the old file, renamed by
    /// logrotate, is closed). Streams have nothing to reopen.
    fn reopen(&self) -> Result<(), LogOpenError> {
        let Sink::File { path, file } = self else {
            return Ok(());
        };
        let fresh = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| LogOpenError {
                path: path.clone(),
                source,
            })?;
        *file.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// Writes one whole line in a single write so lines from threads never interleave.
    fn write_line(&self, line: &[u8]) {
        // A failing log write has nowhere better to be reported; dropping it is the only option.
        let _ = match self {
            Sink::Stderr => std::io::stderr().lock().write_all(line),
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(line).and_then(|()| out.flush())
            }
            Sink::File { file: f, .. } => match f.lock() {
                Ok(mut f) => f.write_all(line),
                Err(poisoned) => poisoned.into_inner().write_all(line),
            },
        };
    }
}

fn to_filter(level: LogLevel) -> log::LevelFilter {
    match level {
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Warning => log::LevelFilter::Warn,
        LogLevel::Error | LogLevel::Critical => log::LevelFilter::Error,
    }
}

/// Current time as `2026-11-21 06:33:00 +0000` (UTC).
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, secs) = (now / 86_400, now % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[derive(Debug)]
struct ErrorLog {
    sink: Sink,
}

impl log::Log for ErrorLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => "ERROR",
            log::Level::Warn => "WARNING",
            log::Level::Info => "INFO",
            log::Level::Debug | log::Level::Trace => "DEBUG",
        };
        let line = format!(
            "[{}] [{}] [{}] {}\n",
            timestamp(),
            // Read per line, not cached: a forked worker logs under its own pid.
            std::process::id(),
            level,
            record.args()
        );
        self.sink.write_line(line.as_bytes());
    }

    fn flush(&self) {}
}

/// A log destination could not be opened.
#[derive(Debug)]
pub struct LogOpenError {
    pub path: String,
    pub source: std::io::Error,
}

impl std::fmt::Display for LogOpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot open log file {}: {}", self.path, self.source)
    }
}

impl std::error::Error for LogOpenError {}

/// Installs the error log (once per process; later calls only change the level).
pub fn init_error_log(level: LogLevel, dest: &str) -> Result<(), LogOpenError> {
    log::set_max_level(to_filter(level));
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let sink = Sink::open(dest, false).map_err(|source| LogOpenError {
        path: dest.to_owned(),
        source,
    })?;
    let logger: &'static ErrorLog = Box::leak(Box::new(ErrorLog { sink }));
    if log::set_logger(logger).is_ok() {
        let _ = INSTALLED.set(());
        let _ = ERROR_LOG.set(logger);
    }
    Ok(())
}

/// The installed error log, for [`reopen_error_log`].
static ERROR_LOG: OnceLock<&'static ErrorLog> = OnceLock::new();

/// Reopens the error log file (see the module docs); nothing to do for stderr.
pub fn reopen_error_log() -> Result<(), LogOpenError> {
    match ERROR_LOG.get() {
        Some(logger) => logger.sink.reopen(),
        None => Ok(()),
    }
}

/// The access log: one line per request, in its compiled format.
#[derive(Debug)]
pub struct AccessLog {
    sink: Sink,
    format: crate::server::access::AccessFormat,
}

impl AccessLog {
    /// Opens `config.access_log` (`-` = stdout; `None` = no access log) with the format
    /// compiled from `access_log_format`/`access_log_json`.
    pub fn open(config: &crate::config::ServerConfig) -> Result<Option<AccessLog>, LogOpenError> {
        let Some(dest) = &config.access_log else {
            return Ok(None);
        };
        let format = crate::server::access::AccessFormat::compile(
            &config.access_log_format,
            config.access_log_json,
        )
        .map(|f| f.with_request_id(config.request_id))
        .map_err(|e| LogOpenError {
            path: dest.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
        })?;
        let sink = Sink::open(dest, true).map_err(|source| LogOpenError {
            path: dest.clone(),
            source,
        })?;
        Ok(Some(AccessLog { sink, format }))
    }

    /// True when the format uses the response headers (`%({name}o)s`).
    pub(crate) fn needs_response_headers(&self) -> bool {
        self.format.needs_response_headers()
    }

    /// Writes the line of one finished request.
    pub(crate) fn log(&self, record: &crate::server::access::Record<'_>) {
        self.write(&self.format.render(record, std::time::SystemTime::now()));
    }

    /// Reopens the access log file (see the module docs); nothing to do for stdout.
    pub fn reopen(&self) -> Result<(), LogOpenError> {
        self.sink.reopen()
    }

    /// Writes one line (a trailing newline is added).
    pub fn write(&self, line: &str) {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.sink.write_line(&buf);
    }
}

/// Lets a repeated warning (overload: connection limit, full queue) through at most once per
/// interval, counting the ones held back, so a flood produces a few lines instead of one per
/// connection. Lock-free; shared by reference between tasks and threads.
#[derive(Debug)]
pub struct RateLimited {
    interval_ms: u64,
    origin: std::time::Instant,
    /// Milliseconds since `origin` before which nothing is logged.
    next_ms: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl RateLimited {
    pub fn new(interval: std::time::Duration) -> RateLimited {
        RateLimited {
            interval_ms: interval.as_millis().try_into().unwrap_or(u64::MAX),
            origin: std::time::Instant::now(),
            next_ms: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(n)`: log now; `n` occurrences were held back since the last line. `None`: held back.
    pub fn check(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(next, now.saturating_add(self.interval_ms), Relaxed, Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_683), (2023, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn reopen_follows_a_renamed_file() {
        let dir = std::env::temp_dir().join(format!("ferrule-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("access.log");
        let config = crate::config::ServerConfig {
            access_log: Some(path.to_str().unwrap().to_owned()),
            ..Default::default()
        };
        let log = AccessLog::open(&config).unwrap().unwrap();
        log.write("one");
        std::fs::rename(&path, dir.join("access.log.1")).unwrap();
        log.write("two"); // still the renamed file, as with any open descriptor
        log.reopen().unwrap();
        log.write("three");
        let old = std::fs::read_to_string(dir.join("access.log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((old.as_str(), new.as_str()), ("one\ntwo\n", "three\n"));
    }

    #[test]
    fn rate_limited_lets_one_through_per_interval() {
        let r = RateLimited::new(std::time::Duration::from_secs(3600));
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), None);
        assert_eq!(r.check(), None);
        let r = RateLimited::new(std::time::Duration::ZERO);
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), Some(0));
    }
}
