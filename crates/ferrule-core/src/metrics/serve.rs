//! The metrics listener (`--metrics-bind`): a tiny HTTP/1 server on the serving runtime, apart
//! from the application's listeners, so a scrape never waits behind application requests.
//!
//! - `GET /metrics`: Prometheus text format 0.0.4 ([`super::render::prometheus`]).
//! - `GET /status.json`: the same numbers as JSON.
//! - `GET /status`: a self-contained HTML page (inline script and SVG, no external resources)
//!   that polls `/status.json` every second and charts requests per second, latency p50/p99
//!   (estimated from the histogram), in-flight requests and open connections.
//!
//! One request per connection (`Connection: close`): scrapes are rare, and it keeps the
//! listener free of keep-alive state. Heads are parsed by our own strict codec; other methods
//! get 405, other paths 404 (RFC 9110 §15.5.5, §15.5.6). The answer is built by [`respond`],
//! which the master's listener (`super::hub`, no async runtime) shares.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use super::Snapshot;
use crate::exchange::ResponseHead;
use crate::head_bytes::HeadBytes;
use crate::http1::encode::{head_size_bound, write_head, ResponseFraming};
use crate::http1::{parse_head, HeadLimits, Parsed, RequestHead, Version};

/// The `/status` page.
const STATUS_PAGE: &str = include_str!("status.html");
/// Largest request head accepted by the metrics listener.
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// Time a metrics client has to send its request head, and to read the answer.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits a metrics request head is parsed with.
pub(crate) const LIMITS: HeadLimits = HeadLimits {
    request_line: MAX_HEAD,
    fields: 100,
    field_size: MAX_HEAD,
    head: MAX_HEAD,
};

/// A generated page [`respond`] asks its caller for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// `/metrics`, Prometheus text.
    Metrics,
    /// `/status.json`.
    Json,
}

/// Takes a snapshot of the metrics to serve (this process's, or the sum of the workers').
pub type SnapshotFn = Arc<dyn Fn() -> Snapshot + Send + Sync>;

/// Serves the metrics listener until `stop` turns true.
pub async fn run(
    listener: tokio::net::TcpListener,
    snapshot: SnapshotFn,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, _)) => {
                let snapshot = Arc::clone(&snapshot);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(IO_TIMEOUT, answer(stream, snapshot)).await;
                });
            }
            Err(e) => {
                log::warn!("metrics listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads one request head and answers it.
async fn answer(mut stream: tokio::net::TcpStream, snapshot: SnapshotFn) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(1024);
    let head = loop {
        match parse_head(&mut buf, &LIMITS) {
            Ok(Parsed::Complete(head)) => break Some(head),
            Ok(Parsed::Partial) => {}
            Err(_) => break None,
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    };
    let out = respond(head.as_ref(), &|page| match page {
        Page::Metrics => super::render::prometheus(&snapshot()),
        Page::Json => super::render::json(&snapshot()),
    });
    stream.write_all(&out).await?;
    stream.shutdown().await
}

/// The whole answer (head and body) to `head` (`None`: it did not parse); `page` renders the
/// generated pages, only when asked for.
pub(crate) fn respond(head: Option<&RequestHead>, page: &dyn Fn(Page) -> String) -> BytesMut {
    let (status, content_type, body): (&str, &str, Bytes) = match head {
        None => (
            "400 Bad Request",
            "text/plain",
            Bytes::from_static(b"bad request\n"),
        ),
        Some(h) if h.method() != b"GET" && h.method() != b"HEAD" => (
            "405 Method Not Allowed",
            "text/plain",
            Bytes::from_static(b"method not allowed\n"),
        ),
        Some(h) => match h.path() {
            b"/metrics" => (
                "200 OK",
                super::render::PROMETHEUS_CONTENT_TYPE,
                Bytes::from(page(Page::Metrics)),
            ),
            b"/status.json" => ("200 OK", "application/json", Bytes::from(page(Page::Json))),
            b"/status" | b"/" => (
                "200 OK",
                "text/html; charset=utf-8",
                Bytes::from_static(STATUS_PAGE.as_bytes()),
            ),
            _ => (
                "404 Not Found",
                "text/plain",
                Bytes::from_static(b"not found\n"),
            ),
        },
    };
    let mut headers = vec![
        (
            HeadBytes::from_static(b"Content-Type"),
            HeadBytes::copy_from_slice(content_type.as_bytes()),
        ),
        (
            HeadBytes::from_static(b"Cache-Control"),
            HeadBytes::from_static(b"no-store"),
        ),
    ];
    if status.starts_with("405") {
        headers.push((
            HeadBytes::from_static(b"Allow"),
            HeadBytes::from_static(b"GET, HEAD"),
        ));
    }
    let response = ResponseHead {
        code: status[..3].parse().unwrap_or(500),
        status: HeadBytes::copy_from_slice(status.as_bytes()),
        headers,
    };
    let is_head = head.is_some_and(|h| h.is_head());
    let framing = if is_head {
        ResponseFraming::NoBodyLength(body.len() as u64)
    } else {
        ResponseFraming::Length(body.len() as u64)
    };
    let mut out = BytesMut::with_capacity(head_size_bound(&response, b"ferrule") + body.len());
    write_head(
        &mut out,
        Version::Http11,
        &response,
        framing,
        b"ferrule",
        false,
    );
    if !is_head {
        out.extend_from_slice(&body);
    }
    out
}
