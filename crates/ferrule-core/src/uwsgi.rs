//! The uwsgi protocol's request packet (uWSGI docs, "The uwsgi Protocol"), as nginx
//! `uwsgi_pass` and Apache `mod_proxy_uwsgi` send it: `--protocol uwsgi` (ISSUE5).
//!
//! A packet is a 4-byte header, `modifier1 (u8) | datasize (u16, little-endian) | modifier2
//! (u8)`, then `datasize` bytes of variables, each `keylen (u16 LE) | key | vallen (u16 LE) |
//! value`; the request body follows, `CONTENT_LENGTH` bytes. Rules this module owns:
//!
//! - Only the WSGI request packet: modifier1 `0` ("Standard WSGI request followed by the HTTP
//!   request body") and modifier2 `0`; any other packet type is refused.
//! - Limits ([`UwsgiLimits`], from the HTTP head limits so both protocols accept the same
//!   requests): the variables block (`datasize`, checked as soon as its two bytes are there,
//!   → 431), the number of variables (→ 431) and one value (→ 431). uWSGI's own default
//!   `buffer-size` (4096) is famous for refusing requests with large cookies; ours follows
//!   `limit_request_head` (64 KiB by default, the protocol maximum being 65535).
//! - Every variable lies wholly inside the block and the block is exactly tiled by them; keys
//!   are non-empty token characters (RFC 9110 §5.6.2 tchar, as the env names Apache and nginx
//!   produce); an `HTTP_` key is `HTTP_[A-Z0-9_]+` (RFC 3875 §4.1.18 meta-variable names).
//! - A variable given twice is refused, except `HTTP_*`: nginx before 1.23 sends one variable
//!   per header line, so a repeated header arrives twice; those are combined as the HTTP path
//!   does (RFC 3875 §4.1.18: "If multiple header fields with the same field-name are received
//!   then the server MUST rewrite them as a single value having the same semantics"; `,`, or
//!   `; ` for cookies).
//! - `REQUEST_METHOD` (a token), `REQUEST_URI` (the raw target: no control character or space)
//!   and `SERVER_PROTOCOL` (`HTTP/d` or `HTTP/d.d`) are required; `CONTENT_LENGTH` is empty
//!   (nginx's `uwsgi_params` send it empty when there is no body) or `1*DIGIT` (→ 400
//!   otherwise): it alone frames the body, which front servers send de-chunked.
//!   `HTTP_*`, `CONTENT_TYPE`, `QUERY_STRING` and `SERVER_NAME` values hold no control
//!   character but HTAB (RFC 9110 §5.5, as on the HTTP path); `REMOTE_ADDR` is an IP address,
//!   `REMOTE_PORT`/`SERVER_PORT` decimal ports.
//! - The scheme: `UWSGI_SCHEME` or `REQUEST_SCHEME` (`http`/`https`), or `HTTPS` (`on`/`1` →
//!   https, `off`/`0`/empty → http); when several are sent they must agree (→ 400 otherwise).
//! - The environ ([`UwsgiRequest::cgi_variables`]) has the same keys as on the HTTP path:
//!   `PATH_INFO` and `SCRIPT_NAME` as the front server computed them (already decoded; when
//!   `PATH_INFO` is missing, the decoded path of `REQUEST_URI`), `QUERY_STRING` (else what
//!   follows `?` in `REQUEST_URI`), `RAW_URI`/`REQUEST_URI`, `REMOTE_*` and `SERVER_*` (else
//!   the connection's; an empty `SERVER_NAME`, nginx's `$server_name` in a server block
//!   without `server_name`, counts as none), `CONTENT_TYPE`/`CONTENT_LENGTH` when not empty, `HTTP_*` without
//!   `HTTP_CONTENT_TYPE`/`HTTP_CONTENT_LENGTH` (PEP 3333 / CGI: not `HTTP_` variables) and
//!   without `HTTP_TRANSFER_ENCODING` (the body we receive is no longer chunked). Other
//!   variables (`DOCUMENT_ROOT`, `UWSGI_*` magic variables...) are never put in the environ
//!   and never act on the server (no `UWSGI_FILE`-style code loading).
//! - The answer never depends on how the bytes were split into reads (tested on every split;
//!   fuzzed by `fuzz/fuzz_targets/uwsgi.rs`).

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

use crate::config::ServerConfig;
use crate::environ::{percent_decode, CgiKey, EnvKey, EnvVar};
use crate::exchange::ConnInfo;
use crate::http1::{BodyFraming, RequestError};
use crate::short_bytes::ShortBytes;

/// The packet header: modifier1, datasize (2 bytes), modifier2.
pub const HEADER_LEN: usize = 4;
/// The protocol's own bound on the variables block (`datasize` is a u16).
pub const MAX_VARS_SIZE: usize = u16::MAX as usize;
/// Variables a front server sends besides one per header (nginx's `uwsgi_params` has 15,
/// Apache's CGI and common variables about 30): added to `limit_request_fields`.
pub const EXTRA_CGI_VARS: usize = 64;
/// The default `--uwsgi-allow-from`: a front server on the same host.
pub const DEFAULT_UWSGI_ALLOW_FROM: &str = "127.0.0.1,::1";

/// `--protocol`: what a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.x (the codec in `http1`).
    #[default]
    Http,
    /// The uwsgi binary protocol (this module), for nginx `uwsgi_pass` / Apache
    /// `mod_proxy_uwsgi`.
    Uwsgi,
}

/// Limits applied while parsing a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UwsgiLimits {
    /// The variables block (`datasize`), at most [`MAX_VARS_SIZE`]. → 431.
    pub vars_size: usize,
    /// The number of variables. → 431.
    pub vars: usize,
    /// One value. → 431.
    pub value_size: usize,
}

impl UwsgiLimits {
    /// The limits matching the HTTP path's: the block as large as a head
    /// (`limit_request_head`), as many variables as header fields plus
    /// [`EXTRA_CGI_VARS`], a value as long as a request line or a field line.
    pub fn from_config(config: &ServerConfig) -> UwsgiLimits {
        UwsgiLimits {
            vars_size: config.limit_request_head.min(MAX_VARS_SIZE),
            vars: config.limit_request_fields.saturating_add(EXTRA_CGI_VARS),
            value_size: config
                .limit_request_line
                .max(config.limit_request_field_size),
        }
    }
}

impl Default for UwsgiLimits {
    fn default() -> UwsgiLimits {
        UwsgiLimits::from_config(&ServerConfig::default())
    }
}

/// Result of [`parse_packet`]: `Complete` once a packet header and its variables block were
/// split off the front of the buffer.
pub type Parsed = crate::parsed::Parsed<UwsgiRequest>;

/// A byte range inside the variables block (at most 65535 bytes: u16 offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u16,
    end: u16,
}

impl Span {
    fn get(self, buf: &[u8]) -> &[u8] {
        &buf[usize::from(self.start)..usize::from(self.end)]
    }
}

/// A parsed uwsgi request: the variables block (shared bytes) and where things are in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UwsgiRequest {
    /// The variables block, without the 4-byte header.
    buf: Bytes,
    vars: Vec<(Span, Span)>,
    method: Span,
    uri: Span,
    protocol: Span,
    path_info: Option<Span>,
    script_name: Option<Span>,
    query: Option<Span>,
    content_type: Option<Span>,
    content_length: Option<u64>,
    remote_addr: Option<IpAddr>,
    remote_port: Option<Span>,
    server_name: Option<Span>,
    server_port: Option<Span>,
    https: bool,
}

/// Parses one request packet's header and variables from the front of `buf`. On `Complete`
/// they are split off; `buf` then starts with the body (`CONTENT_LENGTH` bytes).
pub fn parse_packet(buf: &mut BytesMut, limits: &UwsgiLimits) -> Result<Parsed, RequestError> {
    if buf.first().is_some_and(|&m| m != 0) {
        return Err(RequestError::Malformed(
            "uwsgi modifier1 is not 0 (WSGI request)",
        ));
    }
    let Some(size) = buf.get(1..3) else {
        return Ok(Parsed::Partial);
    };
    let size = usize::from(u16::from_le_bytes([size[0], size[1]]));
    if size > limits.vars_size.min(MAX_VARS_SIZE) {
        return Err(RequestError::HeadTooLarge);
    }
    if buf.get(3).is_some_and(|&m| m != 0) {
        return Err(RequestError::Malformed("uwsgi modifier2 is not 0"));
    }
    if buf.len() < HEADER_LEN + size {
        return Ok(Parsed::Partial);
    }
    let mut request = parse_vars(&buf[HEADER_LEN..HEADER_LEN + size], limits)?;
    let packet = buf.split_to(HEADER_LEN + size).freeze();
    request.buf = packet.slice(HEADER_LEN..);
    Ok(Parsed::Complete(request))
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// No control character but HTAB (a field value's rule, RFC 9110 §5.5).
fn no_ctl(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Visible ASCII or obs-text: no control character and no space.
fn is_visible(value: &[u8]) -> bool {
    value.iter().all(|&b| b > 0x20 && b != 0x7f)
}

/// `1*5DIGIT` in `0..=65535`.
fn is_port(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= 5
        && value.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
            .is_some()
}

/// `HTTP/d` or `HTTP/d.d`.
fn is_protocol(value: &[u8]) -> bool {
    match value.strip_prefix(b"HTTP/") {
        Some([major]) => major.is_ascii_digit(),
        Some([major, b'.', minor]) => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

/// A scheme from `UWSGI_SCHEME`/`REQUEST_SCHEME`/`HTTPS`: `Some(true)` for https.
fn scheme_of(key: &[u8], value: &[u8]) -> Result<bool, RequestError> {
    let bad = RequestError::Malformed("uwsgi scheme variable is not http or https");
    if key == b"HTTPS" {
        return match value.to_ascii_lowercase().as_slice() {
            b"on" | b"1" => Ok(true),
            b"off" | b"0" | b"" => Ok(false),
            _ => Err(bad),
        };
    }
    match value.to_ascii_lowercase().as_slice() {
        b"https" => Ok(true),
        b"http" => Ok(false),
        _ => Err(bad),
    }
}

/// Reads the `(key, value)` spans of the block, checking bounds and limits.
fn split_vars(block: &[u8], limits: &UwsgiLimits) -> Result<Vec<(Span, Span)>, RequestError> {
    let overrun = RequestError::Malformed("uwsgi variable overruns the packet");
    let mut vars = Vec::new();
    let mut at = 0;
    let take = |at: &mut usize| -> Result<Span, RequestError> {
        let len = block.get(*at..*at + 2).ok_or(overrun.clone())?;
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        let start = *at + 2;
        let end = start + len;
        if end > block.len() {
            return Err(overrun.clone());
        }
        *at = end;
        // The block is at most 65535 bytes (checked by the caller), so offsets fit in u16.
        Ok(Span {
            start: u16::try_from(start).map_err(|_| overrun.clone())?,
            end: u16::try_from(end).map_err(|_| overrun.clone())?,
        })
    };
    while at < block.len() {
        let key = take(&mut at)?;
        let value = take(&mut at)?;
        if vars.len() == limits.vars {
            return Err(RequestError::TooManyFields);
        }
        if usize::from(value.end - value.start) > limits.value_size {
            return Err(RequestError::FieldTooLarge);
        }
        vars.push((key, value));
    }
    Ok(vars)
}

fn parse_vars(block: &[u8], limits: &UwsgiLimits) -> Result<UwsgiRequest, RequestError> {
    let vars = split_vars(block, limits)?;
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let mut method = None;
    let mut uri = None;
    let mut protocol = None;
    let mut req = UwsgiRequest {
        buf: Bytes::new(),
        vars: Vec::new(),
        method: Span { start: 0, end: 0 },
        uri: Span { start: 0, end: 0 },
        protocol: Span { start: 0, end: 0 },
        path_info: None,
        script_name: None,
        query: None,
        content_type: None,
        content_length: None,
        remote_addr: None,
        remote_port: None,
        server_name: None,
        server_port: None,
        https: false,
    };
    let mut scheme: Option<bool> = None;
    for &(key_span, value_span) in &vars {
        let key = key_span.get(block);
        let value = value_span.get(block);
        if key.is_empty() || !key.iter().all(|&b| is_tchar(b)) {
            return Err(RequestError::Malformed(
                "uwsgi variable name is not a token",
            ));
        }
        if let Some(name) = key.strip_prefix(b"HTTP_") {
            if name.is_empty()
                || !name
                    .iter()
                    .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(RequestError::Malformed(
                    "uwsgi HTTP_ variable name is not [A-Z0-9_]",
                ));
            }
            if !no_ctl(value) {
                return Err(RequestError::Malformed(
                    "uwsgi HTTP_ variable holds a control character",
                ));
            }
            continue;
        }
        if !seen.insert(key) {
            return Err(RequestError::Malformed("uwsgi variable given twice"));
        }
        let bad = |what: &'static str| Err(RequestError::Malformed(what));
        match key {
            b"REQUEST_METHOD" => {
                if value.is_empty() || !value.iter().all(|&b| is_tchar(b)) {
                    return bad("uwsgi REQUEST_METHOD is not a token");
                }
                method = Some(value_span);
            }
            b"REQUEST_URI" => {
                if value.is_empty() || !is_visible(value) {
                    return bad("uwsgi REQUEST_URI is empty or holds a space or control");
                }
                uri = Some(value_span);
            }
            b"SERVER_PROTOCOL" => {
                if !is_protocol(value) {
                    return bad("uwsgi SERVER_PROTOCOL is not HTTP/x.y");
                }
                protocol = Some(value_span);
            }
            b"PATH_INFO" => req.path_info = Some(value_span),
            b"SCRIPT_NAME" => req.script_name = Some(value_span),
            b"QUERY_STRING" => {
                if !is_visible(value) {
                    return bad("uwsgi QUERY_STRING holds a space or control");
                }
                req.query = Some(value_span);
            }
            b"CONTENT_TYPE" => {
                if !no_ctl(value) {
                    return bad("uwsgi CONTENT_TYPE holds a control character");
                }
                req.content_type = Some(value_span);
            }
            // nginx's `uwsgi_params` send an empty CONTENT_LENGTH when there is no body.
            b"CONTENT_LENGTH" if value.is_empty() => {}
            b"CONTENT_LENGTH" => {
                if !value.iter().all(u8::is_ascii_digit) {
                    return Err(RequestError::InvalidFraming(
                        "uwsgi CONTENT_LENGTH is not digits",
                    ));
                }
                let n = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(RequestError::InvalidFraming(
                        "uwsgi CONTENT_LENGTH out of range",
                    ))?;
                req.content_length = Some(n);
            }
            b"REMOTE_ADDR" => {
                let ip = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse::<IpAddr>().ok());
                match ip {
                    Some(ip) => req.remote_addr = Some(ip),
                    None => return bad("uwsgi REMOTE_ADDR is not an IP address"),
                }
            }
            // Empty when the front server's own client came over a Unix socket.
            b"REMOTE_PORT" if value.is_empty() => {}
            b"REMOTE_PORT" => {
                if !is_port(value) {
                    return bad("uwsgi REMOTE_PORT is not a port");
                }
                req.remote_port = Some(value_span);
            }
            // nginx's `$server_name` is empty in a server block without `server_name`.
            b"SERVER_NAME" if value.is_empty() => {}
            b"SERVER_NAME" => {
                if !is_visible(value) {
                    return bad("uwsgi SERVER_NAME holds a space or control");
                }
                req.server_name = Some(value_span);
            }
            b"SERVER_PORT" => {
                if !is_port(value) {
                    return bad("uwsgi SERVER_PORT is not a port");
                }
                req.server_port = Some(value_span);
            }
            b"UWSGI_SCHEME" | b"REQUEST_SCHEME" | b"HTTPS" => {
                let https = scheme_of(key, value)?;
                if scheme.is_some_and(|s| s != https) {
                    return bad("uwsgi scheme variables disagree");
                }
                scheme = Some(https);
            }
            _ => {}
        }
    }
    req.method = method.ok_or(RequestError::Malformed("uwsgi REQUEST_METHOD missing"))?;
    req.uri = uri.ok_or(RequestError::Malformed("uwsgi REQUEST_URI missing"))?;
    req.protocol = protocol.ok_or(RequestError::Malformed("uwsgi SERVER_PROTOCOL missing"))?;
    req.https = scheme.unwrap_or(false);
    req.vars = vars;
    Ok(req)
}

impl UwsgiRequest {
    /// Every variable as sent, in order (duplicated `HTTP_*` included).
    pub fn vars(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.vars
            .iter()
            .map(|&(k, v)| (k.get(&self.buf), v.get(&self.buf)))
    }

    /// The first value of variable `key`.
    pub fn var(&self, key: &[u8]) -> Option<&[u8]> {
        self.vars().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn method(&self) -> &[u8] {
        self.method.get(&self.buf)
    }

    /// The raw request target (`REQUEST_URI`).
    pub fn request_uri(&self) -> &[u8] {
        self.uri.get(&self.buf)
    }

    /// `SERVER_PROTOCOL`, e.g. `HTTP/1.1` or `HTTP/2.0`.
    pub fn protocol(&self) -> &[u8] {
        self.protocol.get(&self.buf)
    }

    /// `"https"` or `"http"` (`wsgi.url_scheme`).
    pub fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// The client's address as the front server reports it (`REMOTE_ADDR`).
    pub fn remote_addr(&self) -> Option<IpAddr> {
        self.remote_addr
    }

    /// The client's port as the front server reports it (`REMOTE_PORT`), when it sent one.
    pub fn remote_port(&self) -> Option<u16> {
        let port = self.remote_port?.get(&self.buf);
        std::str::from_utf8(port).ok()?.parse().ok()
    }

    /// `CONTENT_TYPE` when the packet has a non-empty one.
    pub fn content_type(&self) -> Option<&[u8]> {
        self.content_type
            .map(|s| s.get(&self.buf))
            .filter(|ct| !ct.is_empty())
    }

    /// How the body that follows is delimited: `CONTENT_LENGTH` bytes, or none.
    pub fn framing(&self) -> BodyFraming {
        match self.content_length {
            Some(0) | None => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        }
    }

    /// `HEAD` requests get no body in the response.
    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// The target's path (before `?`), still percent-encoded.
    fn uri_path(&self) -> &[u8] {
        let uri = self.request_uri();
        let end = memchr::memchr(b'?', uri).unwrap_or(uri.len());
        &uri[..end]
    }

    /// The CGI variables for the environ (everything but `wsgi.*`), with the same keys as the
    /// HTTP path's `environ::cgi_variables` (see the module docs). `conn` supplies `REMOTE_*`
    /// and `SERVER_*` when the packet has none.
    pub fn cgi_variables<'a>(&'a self, conn: &ConnInfo) -> Vec<EnvVar<'a>> {
        let buf = &self.buf;
        let mut vars: Vec<EnvVar<'a>> = Vec::with_capacity(24);
        let mut push = |k: CgiKey, v: Cow<'a, [u8]>| vars.push((EnvKey::Cgi(k), v));
        push(CgiKey::RequestMethod, Cow::Borrowed(self.method()));
        push(
            CgiKey::ScriptName,
            Cow::Borrowed(self.script_name.map_or(&b""[..], |s| s.get(buf))),
        );
        let path_info = match self.path_info {
            Some(p) => Cow::Borrowed(p.get(buf)),
            None => percent_decode(self.uri_path()),
        };
        push(CgiKey::PathInfo, path_info);
        let query = match self.query {
            Some(q) => q.get(buf),
            None => {
                let uri = self.request_uri();
                memchr::memchr(b'?', uri).map_or(&b""[..], |at| &uri[at + 1..])
            }
        };
        push(CgiKey::QueryString, Cow::Borrowed(query));
        push(CgiKey::ServerProtocol, Cow::Borrowed(self.protocol()));
        push(CgiKey::RawUri, Cow::Borrowed(self.request_uri()));
        push(CgiKey::RequestUri, Cow::Borrowed(self.request_uri()));
        // A front server on a Unix socket has no address to fall back on (`peer` is a
        // placeholder): empty, as on the HTTP path.
        let remote_addr = match (self.remote_addr, conn.unix) {
            (Some(ip), _) => Cow::Owned(ip.to_string().into_bytes()),
            (None, true) => Cow::Borrowed(&b""[..]),
            (None, false) => Cow::Owned(conn.peer.ip().to_string().into_bytes()),
        };
        push(CgiKey::RemoteAddr, remote_addr);
        let remote_port = match (self.remote_port, self.remote_addr) {
            (Some(p), _) => Cow::Borrowed(p.get(buf)),
            // An address without a port: the connection's port would be the front server's.
            (None, Some(_)) => Cow::Borrowed(&b""[..]),
            (None, None) if conn.unix => Cow::Borrowed(&b""[..]),
            (None, None) => Cow::Owned(conn.peer.port().to_string().into_bytes()),
        };
        push(CgiKey::RemotePort, remote_port);
        push(
            CgiKey::ServerName,
            match self.server_name {
                Some(s) => Cow::Borrowed(s.get(buf)),
                None => Cow::Owned(conn.local.ip().to_string().into_bytes()),
            },
        );
        push(
            CgiKey::ServerPort,
            match self.server_port {
                Some(s) => Cow::Borrowed(s.get(buf)),
                None => Cow::Owned(conn.local.port().to_string().into_bytes()),
            },
        );
        if let Some(ct) = self.content_type.map(|s| s.get(buf)) {
            if !ct.is_empty() {
                push(CgiKey::ContentType, Cow::Borrowed(ct));
            }
        }
        if self.content_length.is_some() {
            if let Some(cl) = self.var(b"CONTENT_LENGTH") {
                push(CgiKey::ContentLength, Cow::Borrowed(cl));
            }
        }
        // As on the HTTP path (`environ` module docs): what Django, Flask and CGI code read.
        if self.https {
            vars.push((EnvKey::Other("HTTPS"), Cow::Borrowed(b"on")));
        }
        for (key, value) in self.vars() {
            if !key.starts_with(b"HTTP_")
                || matches!(
                    key,
                    b"HTTP_CONTENT_TYPE" | b"HTTP_CONTENT_LENGTH" | b"HTTP_TRANSFER_ENCODING"
                )
            {
                continue;
            }
            let separator: &[u8] = if key == b"HTTP_COOKIE" { b"; " } else { b"," };
            match vars
                .iter_mut()
                .find(|(k, _)| matches!(k, EnvKey::Http(h) if **h == *key))
            {
                Some((_, joined)) => {
                    let joined = joined.to_mut();
                    joined.extend_from_slice(separator);
                    joined.extend_from_slice(value);
                }
                None => vars.push((EnvKey::Http(ShortBytes::new(key)), Cow::Borrowed(value))),
            }
        }
        vars
    }
}

/// Test and fuzz helper: a WSGI request packet (modifier1 0, modifier2 0) carrying `vars` in
/// order. Keys and values longer than 65535 bytes, or a block over 65535, are cut to fit
/// the u16 fields (the result is then not a faithful encoding).
pub fn encode_packet(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    for (key, value) in vars {
        for part in [key, value] {
            let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
            block.extend_from_slice(&len.to_le_bytes());
            block.extend_from_slice(&part[..usize::from(len)]);
        }
    }
    let size = u16::try_from(block.len()).unwrap_or(u16::MAX);
    let mut out = vec![0];
    out.extend_from_slice(&size.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&block);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    type Answer = Option<Result<(Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>), u16>>;

    /// Feeds `input` in pieces of `step` bytes: the variables and the rest of the buffer, the
    /// error status, or `None` if it never completes.
    fn feed(input: &[u8], limits: &UwsgiLimits, step: usize) -> Answer {
        let fed = crate::parsed::feed_in_pieces(input, step, |buf| parse_packet(buf, limits))?;
        Some(fed.map_err(|e| e.status()).map(|(req, rest)| {
            let vars = req.vars().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            (vars, rest)
        }))
    }

    /// The answer for `input` whole, checked equal for every split size.
    fn answer(input: &[u8], limits: &UwsgiLimits) -> Answer {
        let whole = feed(input, limits, usize::MAX);
        for step in [1, 2, 3, 5, 7, 64] {
            assert_eq!(feed(input, limits, step), whole, "step {step}");
        }
        whole
    }

    fn parse(input: &[u8]) -> UwsgiRequest {
        answer(input, &UwsgiLimits::default())
            .expect("complete")
            .expect("accepted");
        let mut buf = BytesMut::from(input);
        match parse_packet(&mut buf, &UwsgiLimits::default()) {
            Ok(Parsed::Complete(req)) => req,
            other => panic!("{other:?}"),
        }
    }

    fn reject(input: &[u8]) -> u16 {
        match answer(input, &UwsgiLimits::default()) {
            Some(Err(status)) => status,
            other => panic!("not rejected: {other:?}"),
        }
    }

    /// What nginx sends with the stock `uwsgi_params` for `GET /a%20b?x=1` (HTTP/1.1).
    fn nginx_vars() -> Vec<(&'static [u8], &'static [u8])> {
        vec![
            (b"QUERY_STRING", b"x=1"),
            (b"REQUEST_METHOD", b"GET"),
            (b"CONTENT_TYPE", b""),
            (b"CONTENT_LENGTH", b""),
            (b"REQUEST_URI", b"/a%20b?x=1"),
            (b"PATH_INFO", b"/a b"),
            (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"REQUEST_SCHEME", b"http"),
            (b"REMOTE_ADDR", b"203.0.113.5"),
            (b"REMOTE_PORT", b"51000"),
            (b"SERVER_PORT", b"80"),
            (b"SERVER_NAME", b"example.com"),
            (b"HTTP_HOST", b"example.com"),
            (b"HTTP_USER_AGENT", b"curl/8"),
            (b"HTTP_ACCEPT", b"*/*"),
        ]
    }

    fn conn() -> ConnInfo {
        ConnInfo::new(
            SocketAddr::from(([127, 0, 0, 1], 40000)),
            SocketAddr::from(([127, 0, 0, 1], 3031)),
            "http",
        )
    }

    fn env(req: &UwsgiRequest) -> Vec<(String, String)> {
        req.cgi_variables(&conn())
            .into_iter()
            .map(|(k, v)| {
                let k = match k {
                    EnvKey::Cgi(c) => c.as_str().to_owned(),
                    EnvKey::Http(h) => String::from_utf8(h.to_vec()).unwrap(),
                    EnvKey::Other(o) => o.to_owned(),
                };
                (k, String::from_utf8_lossy(&v).into_owned())
            })
            .collect()
    }

    fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn nginx_packet_gives_the_http_environ() {
        let mut input = encode_packet(&nginx_vars());
        input.extend_from_slice(b"BODY?");
        let (vars, rest) = answer(&input, &UwsgiLimits::default()).unwrap().unwrap();
        assert_eq!(vars.len(), nginx_vars().len());
        assert_eq!(rest, b"BODY?");
        let req = parse(&input[..input.len() - 5]);
        assert_eq!(req.framing(), BodyFraming::None);
        assert_eq!(req.scheme(), "http");
        assert_eq!(req.method(), b"GET");
        assert!(!req.is_head());
        let e = env(&req);
        let expected = [
            ("REQUEST_METHOD", "GET"),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", "/a b"),
            ("QUERY_STRING", "x=1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("RAW_URI", "/a%20b?x=1"),
            ("REQUEST_URI", "/a%20b?x=1"),
            ("REMOTE_ADDR", "203.0.113.5"),
            ("REMOTE_PORT", "51000"),
            ("SERVER_NAME", "example.com"),
            ("SERVER_PORT", "80"),
            ("HTTP_HOST", "example.com"),
            ("HTTP_USER_AGENT", "curl/8"),
            ("HTTP_ACCEPT", "*/*"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(e, expected);
    }

    #[test]
    fn apache_style_packet_with_body_and_https() {
        let vars: Vec<(&[u8], &[u8])> = vec![
            (b"HTTP_HOST", b"example.com"),
            (b"CONTENT_TYPE", b"application/json"),
            (b"CONTENT_LENGTH", b"12"),
            (b"HTTP_CONTENT_LENGTH", b"12"),
            (b"HTTP_CONTENT_TYPE", b"application/json"),
            (b"PATH", b"/usr/bin"),
            (b"SERVER_SIGNATURE", b""),
            (b"SERVER_SOFTWARE", b"Apache"),
            (b"SERVER_NAME", b"example.com"),
            (b"SERVER_PORT", b"443"),
            (b"REMOTE_ADDR", b"2001:db8::7"),
            (b"HTTPS", b"on"),
            (b"REQUEST_SCHEME", b"https"),
            (b"REMOTE_PORT", b"6000"),
            (b"GATEWAY_INTERFACE", b"CGI/1.1"),
            (b"SERVER_PROTOCOL", b"HTTP/2.0"),
            (b"REQUEST_METHOD", b"POST"),
            (b"QUERY_STRING", b""),
            (b"REQUEST_URI", b"/app/items"),
            (b"SCRIPT_NAME", b"/app"),
            (b"PATH_INFO", b"/items"),
            (b"nokeepalive", b"1"),
        ];
        let mut input = encode_packet(&vars);
        input.extend_from_slice(b"{\"a\": [1,2]}");
        let (_, rest) = answer(&input, &UwsgiLimits::default()).unwrap().unwrap();
        assert_eq!(rest, b"{\"a\": [1,2]}");
        let req = parse(&input[..input.len() - 12]);
        assert_eq!(req.framing(), BodyFraming::Length(12));
        assert_eq!(req.scheme(), "https");
        assert_eq!(req.protocol(), b"HTTP/2.0");
        assert_eq!(req.remote_addr(), Some("2001:db8::7".parse().unwrap()));
        assert_eq!(req.var(b"nokeepalive"), Some(&b"1"[..]));
        let e = env(&req);
        assert_eq!(get(&e, "SCRIPT_NAME"), Some("/app"));
        assert_eq!(get(&e, "PATH_INFO"), Some("/items"));
        assert_eq!(get(&e, "CONTENT_TYPE"), Some("application/json"));
        assert_eq!(get(&e, "CONTENT_LENGTH"), Some("12"));
        assert_eq!(get(&e, "REMOTE_ADDR"), Some("2001:db8::7"));
        assert_eq!(get(&e, "HTTP_CONTENT_LENGTH"), None);
        assert_eq!(get(&e, "HTTP_CONTENT_TYPE"), None);
        assert_eq!(get(&e, "PATH"), None);
        assert_eq!(get(&e, "GATEWAY_INTERFACE"), None);
        assert_eq!(get(&e, "HTTP_HOST"), Some("example.com"));
        assert_eq!(get(&e, "HTTPS"), Some("on"));
        assert_eq!(req.remote_port(), Some(6000));
        assert_eq!(req.content_type(), Some(&b"application/json"[..]));
    }

    #[test]
    fn fallbacks_from_the_uri_and_the_connection() {
        let req = parse(&encode_packet(&[
            (b"REQUEST_METHOD", b"HEAD"),
            (b"REQUEST_URI", b"/x%2Fy?q=%20"),
            (b"SERVER_PROTOCOL", b"HTTP/1.0"),
            (b"HTTP_TRANSFER_ENCODING", b"chunked"),
            (b"CONTENT_LENGTH", b"0"),
        ]));
        assert!(req.is_head());
        assert_eq!(req.framing(), BodyFraming::None);
        let e = env(&req);
        assert_eq!(get(&e, "PATH_INFO"), Some("/x/y"));
        assert_eq!(get(&e, "QUERY_STRING"), Some("q=%20"));
        assert_eq!(get(&e, "REMOTE_ADDR"), Some("127.0.0.1"));
        assert_eq!(get(&e, "REMOTE_PORT"), Some("40000"));
        assert_eq!(get(&e, "SERVER_NAME"), Some("127.0.0.1"));
        assert_eq!(get(&e, "SERVER_PORT"), Some("3031"));
        assert_eq!(get(&e, "CONTENT_LENGTH"), Some("0"));
        assert_eq!(get(&e, "HTTP_TRANSFER_ENCODING"), None);
        // An address without a port does not borrow the front server's port.
        let req = parse(&encode_packet(&[
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", b"/"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"REMOTE_ADDR", b"10.0.0.1"),
        ]));
        let e = env(&req);
        assert_eq!(get(&e, "REMOTE_ADDR"), Some("10.0.0.1"));
        assert_eq!(get(&e, "REMOTE_PORT"), Some(""));
        assert_eq!(get(&e, "QUERY_STRING"), Some(""));
        // nginx's `$server_name` without a `server_name` directive.
        let req = parse(&encode_packet(&[
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", b"/"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"SERVER_NAME", b""),
        ]));
        assert_eq!(get(&env(&req), "SERVER_NAME"), Some("127.0.0.1"));
        // Over a Unix socket, nothing to fall back on.
        let req = parse(&encode_packet(&[
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", b"/"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        ]));
        let mut unix = conn();
        unix.unix = true;
        let e: Vec<(String, String)> = req
            .cgi_variables(&unix)
            .into_iter()
            .filter_map(|(k, v)| match k {
                EnvKey::Cgi(c) => Some((
                    c.as_str().to_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(get(&e, "REMOTE_ADDR"), Some(""));
        assert_eq!(get(&e, "REMOTE_PORT"), Some(""));
    }

    #[test]
    fn repeated_http_vars_are_joined() {
        let req = parse(&encode_packet(&[
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", b"/"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"HTTP_ACCEPT", b"text/html"),
            (b"HTTP_COOKIE", b"a=1"),
            (b"HTTP_ACCEPT", b"*/*"),
            (b"HTTP_COOKIE", b"b=2"),
        ]));
        let e = env(&req);
        assert_eq!(get(&e, "HTTP_ACCEPT"), Some("text/html,*/*"));
        assert_eq!(get(&e, "HTTP_COOKIE"), Some("a=1; b=2"));
        assert_eq!(e.iter().filter(|(k, _)| k == "HTTP_ACCEPT").count(), 1);
    }

    #[test]
    fn rejections() {
        let base: Vec<(&[u8], &[u8])> = vec![
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", b"/"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        ];
        let with = |extra: &[(&'static [u8], &'static [u8])]| {
            let mut v = base.clone();
            v.extend_from_slice(extra);
            encode_packet(&v)
        };
        let without = |key: &[u8]| {
            let v: Vec<_> = base.iter().copied().filter(|(k, _)| *k != key).collect();
            encode_packet(&v)
        };
        let rows: Vec<(Vec<u8>, u16)> = vec![
            (without(b"REQUEST_METHOD"), 400),
            (without(b"REQUEST_URI"), 400),
            (without(b"SERVER_PROTOCOL"), 400),
            (encode_packet(&[]), 400),
            (with(&[(b"REQUEST_METHOD", b"POST")]), 400),
            (
                with(&[(b"REMOTE_ADDR", b"1.2.3.4"), (b"REMOTE_ADDR", b"1.2.3.4")]),
                400,
            ),
            (with(&[(b"", b"x")]), 400),
            (with(&[(b"A B", b"x")]), 400),
            (with(&[(b"HTTP_", b"x")]), 400),
            (with(&[(b"HTTP_user_agent", b"x")]), 400),
            (with(&[(b"HTTP_X-Y", b"x")]), 400),
            (with(&[(b"HTTP_X", b"a\r\nb")]), 400),
            (with(&[(b"HTTP_X", b"a\x00b")]), 400),
            (with(&[(b"CONTENT_LENGTH", b"-1")]), 400),
            (with(&[(b"CONTENT_LENGTH", b"+1")]), 400),
            (with(&[(b"CONTENT_LENGTH", b"1 ")]), 400),
            (
                with(&[(b"CONTENT_LENGTH", b"99999999999999999999999")]),
                400,
            ),
            (with(&[(b"CONTENT_TYPE", b"a\nb")]), 400),
            (with(&[(b"QUERY_STRING", b"a b")]), 400),
            (with(&[(b"REMOTE_ADDR", b"localhost")]), 400),
            (with(&[(b"REMOTE_ADDR", b"unix:")]), 400),
            (with(&[(b"REMOTE_PORT", b"65536")]), 400),
            (with(&[(b"SERVER_PORT", b"")]), 400),
            (with(&[(b"HTTPS", b"yes")]), 400),
            (with(&[(b"UWSGI_SCHEME", b"ftp")]), 400),
            (
                with(&[(b"HTTPS", b"on"), (b"REQUEST_SCHEME", b"http")]),
                400,
            ),
            (with(&[(b"UWSGI_SCHEME", b"http"), (b"HTTPS", b"1")]), 400),
            (
                encode_packet(&[
                    (b"REQUEST_METHOD", b"G(T"),
                    (b"REQUEST_URI", b"/"),
                    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
                ]),
                400,
            ),
            (
                encode_packet(&[
                    (b"REQUEST_METHOD", b"GET"),
                    (b"REQUEST_URI", b"/a b"),
                    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
                ]),
                400,
            ),
            (
                encode_packet(&[
                    (b"REQUEST_METHOD", b"GET"),
                    (b"REQUEST_URI", b"/"),
                    (b"SERVER_PROTOCOL", b"HTTP/1.10"),
                ]),
                400,
            ),
        ];
        for (input, status) in rows {
            assert_eq!(reject(&input), status, "{input:?}");
        }
    }

    #[test]
    fn header_and_framing_rejections() {
        let good = encode_packet(&[
            (b"REQUEST_METHOD", b"GET"),
            (b"REQUEST_URI", b"/"),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        ]);
        let mut m1 = good.clone();
        m1[0] = 30;
        assert_eq!(reject(&m1), 400);
        // modifier1 is refused from its first byte on.
        let mut buf = BytesMut::from(&[5u8][..]);
        assert!(parse_packet(&mut buf, &UwsgiLimits::default()).is_err());
        let mut m2 = good.clone();
        m2[3] = 1;
        assert_eq!(reject(&m2), 400);
        // datasize one short: the last value overruns the block.
        let mut short = good.clone();
        let size = u16::from_le_bytes([good[1], good[2]]) - 1;
        short[1..3].copy_from_slice(&size.to_le_bytes());
        assert_eq!(reject(&short), 400);
        // datasize one long: a dangling byte that is no length.
        let mut long = good.clone();
        long.push(0);
        let size = u16::from_le_bytes([good[1], good[2]]) + 1;
        long[1..3].copy_from_slice(&size.to_le_bytes());
        assert_eq!(reject(&long), 400);
        // A key length pointing past the block.
        let mut overrun = good.clone();
        overrun.extend_from_slice(&[0xff, 0xff]);
        let size = u16::from_le_bytes([good[1], good[2]]) + 2;
        overrun[1..3].copy_from_slice(&size.to_le_bytes());
        assert_eq!(reject(&overrun), 400);
    }

    #[test]
    fn truncated_is_partial() {
        let input = encode_packet(&nginx_vars());
        for n in 0..input.len() {
            assert_eq!(answer(&input[..n], &UwsgiLimits::default()), None, "{n}");
        }
    }

    #[test]
    fn limits() {
        let input = encode_packet(&nginx_vars());
        let size = input.len() - HEADER_LEN;
        let tight = UwsgiLimits {
            vars_size: size,
            vars: nginx_vars().len(),
            value_size: 21,
        };
        assert!(matches!(answer(&input, &tight), Some(Ok(_))));
        let small_block = UwsgiLimits {
            vars_size: size - 1,
            ..tight
        };
        assert_eq!(answer(&input, &small_block), Some(Err(431)));
        // The size is refused as soon as its two bytes are there.
        assert_eq!(answer(&input[..3], &small_block), Some(Err(431)));
        let few_vars = UwsgiLimits {
            vars: nginx_vars().len() - 1,
            ..tight
        };
        assert_eq!(answer(&input, &few_vars), Some(Err(431)));
        let short_values = UwsgiLimits {
            value_size: 20,
            ..tight
        };
        assert_eq!(answer(&input, &short_values), Some(Err(431)));
        let d = UwsgiLimits::default();
        assert_eq!(d.vars_size, MAX_VARS_SIZE);
        assert_eq!(
            d.vars,
            ServerConfig::default().limit_request_fields + EXTRA_CGI_VARS
        );
    }

    #[test]
    fn protocol_deserializes_lowercase() {
        assert_eq!(
            serde_json::from_str::<Protocol>("\"http\"").unwrap(),
            Protocol::Http
        );
        assert_eq!(
            serde_json::from_str::<Protocol>("\"uwsgi\"").unwrap(),
            Protocol::Uwsgi
        );
        assert!(serde_json::from_str::<Protocol>("\"scgi\"").is_err());
        assert_eq!(Protocol::default(), Protocol::Http);
    }
}
