//! `--protocol uwsgi`: a connection from a front server (nginx `uwsgi_pass`, Apache
//! `mod_proxy_uwsgi`) carrying one request packet ([`crate::uwsgi`]), answered the way uWSGI
//! answers it.
//!
//! Rules this module owns:
//! - The peer must be in `--uwsgi-allow-from` (a Unix socket peer always is): the packet's
//!   variables set `REMOTE_ADDR`, the scheme and the URL the app sees, so only a front server
//!   may send them. Any other peer is closed at once, before a byte is read, and logged.
//! - The packet (header and variables) is read under the header timeout and bounded by
//!   [`UwsgiLimits::from_config`]. A packet that breaks the protocol (an HTTP request sent to
//!   the uwsgi port included) closes the connection without an answer, with a warning: the
//!   app never sees it, and the front server reports its own error (nginx: 502).
//! - The body is `CONTENT_LENGTH` bytes (front servers send bodies de-chunked), read by the
//!   HTTP/1 body machinery: whole up to `max_buffered_body`, streamed above it,
//!   `limit_request_body` → 413.
//! - The response is an HTTP/1.1 status line, the headers and a close-delimited body (uWSGI
//!   writes that, and `uwsgi_pass`/`mod_proxy_uwsgi` parse it; neither decodes a chunked
//!   body), then the connection closes: one request per connection.
//!
//! The request goes through the HTTP path's exchange (body, hand-off, response, access log,
//! metrics): the packet is turned into a server-side HTTP/1.0 head ([`server_head`]; HTTP/1.0
//! so that the response is close-delimited and says `Connection: close`), used for framing,
//! static files and the built-in middleware. The environ comes from the packet itself
//! ([`ForwardedView::uwsgi`]: the front server's word on the request), so the app sees what
//! the front server said; so does the access log ([`UwsgiFacts`] in `ConnInfo::uwsgi`): the
//! request's protocol is the packet's `SERVER_PROTOCOL` (PEP 3333: the client's protocol),
//! never the head's HTTP/1.0, and the client is the packet's `REMOTE_ADDR`/`REMOTE_PORT`
//! (`crate::server::access::client`).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, BytesMut};

use super::{Conn, HeadTimedOut, Idle, Next, WaitFrom};
use crate::exchange::UwsgiFacts;
use crate::forwarded::ForwardedView;
use crate::http1::{parse_head, HeadLimits, Parsed as HeadParsed, RequestError, RequestHead};
use crate::server::access::PeerLabel;
use crate::uwsgi::{parse_packet, Parsed, UwsgiLimits, UwsgiRequest};

/// Variables left out of the server-side head: they describe the front server's own
/// connection to its client, not the request (the body's framing is `CONTENT_LENGTH`), or
/// are added from `CONTENT_*` (CGI: those are not `HTTP_` variables).
const NOT_IN_HEAD: [&[u8]; 9] = [
    b"HTTP_CONNECTION",
    b"HTTP_KEEP_ALIVE",
    b"HTTP_PROXY_CONNECTION",
    b"HTTP_TRANSFER_ENCODING",
    b"HTTP_TE",
    b"HTTP_UPGRADE",
    b"HTTP_EXPECT",
    b"HTTP_CONTENT_LENGTH",
    b"HTTP_CONTENT_TYPE",
];

/// The server-side head is parsed without the HTTP head limits: the packet already passed
/// the uwsgi limits, which follow them (`UwsgiLimits::from_config`).
const UNBOUNDED: HeadLimits = HeadLimits {
    request_line: usize::MAX,
    fields: usize::MAX,
    field_size: usize::MAX,
    head: usize::MAX,
};

impl Conn {
    /// Serves one uwsgi connection (see the module docs); it is closed on return.
    pub(super) async fn serve_uwsgi(&mut self) {
        let allowed = &self.shared.config.uwsgi_allow_from;
        if !self.info.unix && !allowed.contains(self.info.peer.ip()) {
            log::warn!(
                "{}: closing: uwsgi connection from a peer not in --uwsgi-allow-from",
                PeerLabel(&self.info)
            );
            return;
        }
        // The header timeout runs from accept, as for a first HTTP request.
        if self.buf.is_empty() {
            let fresh = WaitFrom::Fresh { parkable: false };
            if !matches!(self.wait_idle(true, fresh).await, Idle::Request) {
                return;
            }
        }
        let Some(req) = self.read_packet().await else {
            return;
        };
        let head = match server_head(&req) {
            Ok(head) => head,
            Err(e) => {
                log::warn!(
                    "{}: closing: uwsgi request {:?} cannot be served: {e}",
                    PeerLabel(&self.info),
                    String::from_utf8_lossy(req.request_uri())
                );
                return;
            }
        };
        // Logs, the access log and metrics name the front server's client from here on.
        if let Some(ip) = req.remote_addr() {
            self.info.peer = SocketAddr::new(ip, req.remote_port().unwrap_or(0));
        }
        self.info.scheme = req.scheme();
        // The packet's variables are the front server's word; its forwarding headers are
        // passed to the app as sent (as uWSGI does), never re-interpreted by the server.
        self.info.forwarding_trusted = false;
        self.info.uwsgi = Some(facts(&req));
        let view = ForwardedView {
            uwsgi: Some(Arc::new(req)),
            ..ForwardedView::default()
        };
        match self.exchange(head, Some(Box::new(view))).await {
            Next::Close => {}
            Next::KeepAlive | Next::Linger | Next::LingerIfSentMore => self.linger().await,
        }
    }

    /// Reads the packet's header and variables; the body stays in the read buffer. `None`:
    /// the connection is done (the reason was logged).
    async fn read_packet(&mut self) -> Option<UwsgiRequest> {
        let limits = UwsgiLimits::from_config(&self.shared.config);
        let deadline = Instant::now() + self.shared.config.header_read();
        loop {
            match parse_packet(&mut self.buf, &limits) {
                Ok(Parsed::Complete(req)) => return Some(req),
                Ok(Parsed::Partial) => {}
                Err(e) => {
                    let hint = if looks_like_http(&self.buf) {
                        " (an HTTP request? this port speaks --protocol uwsgi)"
                    } else {
                        ""
                    };
                    log::warn!(
                        "{}: closing: invalid uwsgi packet ({}): {e}{hint}",
                        PeerLabel(&self.info),
                        e.status()
                    );
                    return None;
                }
            }
            let closed = "the front server closed the connection mid-packet";
            match self.read_more(deadline, closed).await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(HeadTimedOut) => {
                    log::debug!(
                        "{}: closing: no complete uwsgi packet within the header timeout",
                        PeerLabel(&self.info)
                    );
                    return None;
                }
            }
        }
    }
}

/// What the access log needs from the packet beyond the server-side head (see the module
/// docs): the client's protocol and whether the packet named the client.
fn facts(req: &UwsgiRequest) -> UwsgiFacts {
    let digit = |b: &u8| b.wrapping_sub(b'0');
    // `parse_packet` accepted only `HTTP/d` and `HTTP/d.d`.
    let version = match req.protocol().strip_prefix(b"HTTP/") {
        Some([major, b'.', minor]) => (digit(major), Some(digit(minor))),
        Some([major, ..]) => (digit(major), None),
        _ => (1, Some(0)),
    };
    UwsgiFacts {
        version,
        remote_addr: req.remote_addr().is_some(),
        remote_port: req.remote_port().is_some(),
    }
}

/// The buffer starts like an HTTP request line (an upper-case method token and a space).
fn looks_like_http(buf: &[u8]) -> bool {
    let word = buf.iter().take_while(|b| b.is_ascii_uppercase()).count();
    word > 0 && buf.get(word) == Some(&b' ')
}

/// The server-side HTTP/1.0 head of a uwsgi request (see the module docs): `REQUEST_METHOD`,
/// `REQUEST_URI` (bytes the HTTP codec refuses in a target percent-encoded), the `HTTP_*`
/// variables as fields (`HTTP_USER_AGENT` → `User-Agent`), `Content-Type` and
/// `Content-Length` from `CONTENT_TYPE`/`CONTENT_LENGTH`. When a field value is one the codec
/// refuses (e.g. a `Host` that is no authority), the head keeps only the framing fields: it
/// serves logs and middleware, the app's environ never comes from it.
pub(super) fn server_head(req: &UwsgiRequest) -> Result<RequestHead, RequestError> {
    match parse(build_head(req, true)) {
        Ok(head) => Ok(head),
        Err(_) => parse(build_head(req, false)),
    }
}

fn parse(mut head: BytesMut) -> Result<RequestHead, RequestError> {
    match parse_head(&mut head, &UNBOUNDED)? {
        HeadParsed::Complete(head) => Ok(head),
        HeadParsed::Partial => Err(RequestError::Malformed("uwsgi request head incomplete")),
    }
}

fn build_head(req: &UwsgiRequest, fields: bool) -> BytesMut {
    let mut out = BytesMut::with_capacity(256);
    out.extend_from_slice(req.method());
    out.put_u8(b' ');
    out.extend_from_slice(&escaped_target(req.request_uri()));
    out.extend_from_slice(b" HTTP/1.0\r\n");
    if let crate::http1::BodyFraming::Length(n) = req.framing() {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(ct) = req.content_type() {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(ct);
        out.extend_from_slice(b"\r\n");
    }
    if fields {
        let mut host_seen = false;
        for (key, value) in req.vars() {
            let Some(name) = key.strip_prefix(b"HTTP_") else {
                continue;
            };
            if NOT_IN_HEAD.contains(&key) {
                continue;
            }
            // nginx before 1.23 sends a repeated header twice; HTTP allows one Host.
            if key == b"HTTP_HOST" {
                if host_seen {
                    continue;
                }
                host_seen = true;
            }
            push_field_name(&mut out, name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `USER_AGENT` → `User-Agent` (the CGI name mapping of RFC 3875 §4.1.18, reversed).
fn push_field_name(out: &mut BytesMut, name: &[u8]) {
    let mut word_start = true;
    for &b in name {
        if b == b'_' {
            out.put_u8(b'-');
            word_start = true;
        } else {
            out.put_u8(if word_start {
                b
            } else {
                b.to_ascii_lowercase()
            });
            word_start = false;
        }
    }
}

/// `REQUEST_URI` as a target the HTTP codec accepts: bytes outside visible ASCII, `#`, and a
/// `%` that starts no `%XX` escape are percent-encoded (the path decodes to the same bytes).
fn escaped_target(uri: &[u8]) -> Cow<'_, [u8]> {
    let escape_at = |i: usize| -> bool {
        let b = uri[i];
        if b == b'%' {
            let hex = |j: usize| uri.get(j).is_some_and(u8::is_ascii_hexdigit);
            return !(hex(i + 1) && hex(i + 2));
        }
        !(0x21..0x7f).contains(&b) || b == b'#'
    };
    if !(0..uri.len()).any(escape_at) {
        return Cow::Borrowed(uri);
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(uri.len() + 16);
    for (i, &b) in uri.iter().enumerate() {
        if escape_at(i) {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.push(b);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{BodyFraming, Version};
    use crate::uwsgi::encode_packet;

    fn request(vars: &[(&[u8], &[u8])]) -> UwsgiRequest {
        let mut buf = BytesMut::from(&encode_packet(vars)[..]);
        match parse_packet(&mut buf, &UwsgiLimits::default()) {
            Ok(Parsed::Complete(req)) => req,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn head_carries_the_request_and_its_framing() {
        let req = request(&[
            (b"REQUEST_METHOD", b"POST"),
            (b"REQUEST_URI", b"/up?x=1"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"CONTENT_LENGTH", b"12"),
            (b"CONTENT_TYPE", b"text/plain"),
            (b"HTTP_HOST", b"example.com"),
            (b"HTTP_USER_AGENT", b"curl/8"),
            (b"HTTP_CONNECTION", b"keep-alive"),
            (b"HTTP_EXPECT", b"100-continue"),
            (b"HTTP_TRANSFER_ENCODING", b"chunked"),
            (b"HTTP_CONTENT_LENGTH", b"12"),
            (b"HTTP_HOST", b"other.example"),
            (b"HTTP_ACCEPT_ENCODING", b"gzip"),
        ]);
        let head = server_head(&req).unwrap();
        assert_eq!(head.method(), b"POST");
        assert_eq!(head.target(), b"/up?x=1");
        assert_eq!(head.version(), Version::Http10);
        // HTTP/1.0 without keep-alive: the response is close-delimited, `Connection: close`.
        assert!(!head.wants_keep_alive());
        assert!(!head.expects_continue());
        assert_eq!(head.framing(), BodyFraming::Length(12));
        assert_eq!(head.header(b"content-type"), Some(&b"text/plain"[..]));
        assert_eq!(head.header(b"user-agent"), Some(&b"curl/8"[..]));
        assert_eq!(head.header(b"accept-encoding"), Some(&b"gzip"[..]));
        assert_eq!(head.host(), Some(&b"example.com"[..]));
        assert_eq!(head.headers().filter(|(n, _)| *n == b"Host").count(), 1);
        assert_eq!(head.header(b"connection"), None);
        assert_eq!(head.header(b"expect"), None);
        assert_eq!(head.header(b"transfer-encoding"), None);
    }

    #[test]
    fn a_field_the_codec_refuses_leaves_the_framing_fields() {
        let req = request(&[
            (b"REQUEST_METHOD", b"PUT"),
            (b"REQUEST_URI", b"/"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"CONTENT_LENGTH", b"3"),
            (b"HTTP_HOST", b"bad host"),
        ]);
        let head = server_head(&req).unwrap();
        assert_eq!(head.framing(), BodyFraming::Length(3));
        assert_eq!(head.host(), None);
    }

    #[test]
    fn no_body_without_content_length() {
        for cl in [&b""[..], b"0"] {
            let req = request(&[
                (b"REQUEST_METHOD", b"GET"),
                (b"REQUEST_URI", b"/"),
                (b"SERVER_PROTOCOL", b"HTTP/1.1"),
                (b"CONTENT_LENGTH", cl),
            ]);
            assert_eq!(server_head(&req).unwrap().framing(), BodyFraming::None);
        }
    }

    #[test]
    fn targets_are_escaped_only_where_needed() {
        assert!(matches!(escaped_target(b"/a%20b?x=1"), Cow::Borrowed(_)));
        assert_eq!(&*escaped_target(b"/a b#c"), b"/a%20b%23c");
        assert_eq!(&*escaped_target(b"/100%"), b"/100%25");
        assert_eq!(&*escaped_target(b"/%zz%4"), b"/%25zz%254");
        assert_eq!(&*escaped_target("/é".as_bytes()), b"/%C3%A9");
        let req = request(&[
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", "/caf\u{e9}#100%".as_bytes()),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        ]);
        assert_eq!(server_head(&req).unwrap().target(), b"/caf%C3%A9%23100%25");
    }

    #[test]
    fn field_names_from_cgi_names() {
        let mut out = BytesMut::new();
        push_field_name(&mut out, b"X_FORWARDED_FOR");
        assert_eq!(&out[..], b"X-Forwarded-For");
        out.clear();
        push_field_name(&mut out, b"DNT");
        assert_eq!(&out[..], b"Dnt");
    }

    #[test]
    fn facts_carry_the_protocol_and_the_client_variables() {
        let base: [(&[u8], &[u8]); 3] = [
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", b"/"),
            (b"SERVER_PROTOCOL", b"HTTP/2.0"),
        ];
        let f = facts(&request(&base));
        assert_eq!(
            f,
            UwsgiFacts {
                version: (2, Some(0)),
                remote_addr: false,
                remote_port: false
            }
        );
        let mut vars = base.to_vec();
        vars[2] = (b"SERVER_PROTOCOL", b"HTTP/3");
        vars.push((b"REMOTE_ADDR", b"203.0.113.9"));
        let f = facts(&request(&vars));
        assert_eq!(
            (f.version, f.remote_addr, f.remote_port),
            ((3, None), true, false)
        );
        vars.push((b"REMOTE_PORT", b"5"));
        assert!(facts(&request(&vars)).remote_port);
    }

    #[test]
    fn http_request_lines_are_recognised() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"POST "));
        assert!(!looks_like_http(b"\x00\x10\x00\x00"));
        assert!(!looks_like_http(b"get /"));
        assert!(!looks_like_http(b"GET"));
    }
}
