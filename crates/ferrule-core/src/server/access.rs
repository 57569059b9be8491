//! The access log line: gunicorn's `access_log_format` directives, or one JSON object per request
//! (`access_log_json`).
//!
//! The format is compiled once, when the server starts ([`AccessFormat::compile`]), into a list
//! of [`Piece`]s; writing a line walks that list and never parses the format again.
//!
//! Text format: Python `%`-mapping syntax as gunicorn uses it, `%(NAME)s` (`d` is accepted as
//! the conversion too) and `%%` for a literal `%`. gunicorn's default is
//! `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"` (Apache's combined format).
//! Directives (gunicorn's set, same meanings):
//!
//! - `h` the client's IP address ([`client`]: `-` over a Unix socket); `l` `-`; `u` user name
//!   of HTTP Basic auth, else `-`;
//! - `t` `[21/Nov/2026:06:33:00 +0000]` (log time, UTC; brackets included, as in gunicorn);
//! - `r` request line `METHOD TARGET PROTOCOL`; `m` method; `U` path (still percent-encoded);
//!   `q` query string; `H` protocol; `s` status;
//! - `B` body bytes sent; `b` the same, `-` for none (CLF); `f` Referer; `a` User-Agent;
//! - `T` duration in whole seconds, `M` in milliseconds, `D` in microseconds, `L` in decimal
//!   seconds (`0.001234`); `p` `<PID>`;
//! - `{name}i` request header, `{name}o` response header, `{var}e` environ variable.
//!
//! The client ([`client`]) is the connection's peer (the PROXY header's source when one was
//! read; forwarding headers are the app's business, not the log's), or with `--protocol uwsgi`
//! the packet's `REMOTE_ADDR`/`REMOTE_PORT`. A Unix socket peer has no address: the environ
//! says so with an empty `REMOTE_ADDR` and no `REMOTE_PORT` (as gunicorn), the text format
//! with `-` (CLF's "no value"), JSON with `null`; never the `0.0.0.0` placeholder.
//!
//! With `--protocol uwsgi` the packet has the last word (`ConnInfo::uwsgi`): `H`, `r`, the
//! JSON `protocol` and `{SERVER_PROTOCOL}e` show its `SERVER_PROTOCOL` (the client's protocol,
//! e.g. `HTTP/2.0`: the server-side head is HTTP/1.0 only to frame the reply, see
//! `uwsgi_conn`), and the client is its `REMOTE_ADDR`/`REMOTE_PORT`, as in the app's environ.
//! Other `{var}e` variables come from the server-side head (its fields are the packet's
//! `HTTP_*` variables).
//!
//! Duration: from the moment the request head was parsed to the end of the response.
//! `{var}e` is answered in Rust, without Python: the CGI variables of the request as the app
//! sees them (`REQUEST_METHOD`, `SCRIPT_NAME`, `PATH_INFO`, `QUERY_STRING`, `SERVER_PROTOCOL`,
//! `SERVER_NAME`, `SERVER_PORT`, `REMOTE_ADDR`, `REMOTE_PORT`, `RAW_URI`, `REQUEST_URI`,
//! `CONTENT_TYPE`, `CONTENT_LENGTH`, `HTTP_*`; built by [`crate::environ`], the same rules) and
//! `wsgi.url_scheme`; anything else (keys the app or middleware add) is `-`. Names are
//! case-insensitive, as in gunicorn. A missing header or variable is `-`. An unknown directive
//! is a configuration error.
//!
//! Bytes from the client or the app are escaped (`"`, `\`, control and non-ASCII bytes as
//! `\xHH`) so a request cannot forge or break a log line.
//!
//! JSON (`access_log_json`): one object per line, fixed keys in this order: `time` (RFC 3339,
//! UTC, milliseconds), `remote_addr`, `remote_port` (`null` when unknown, see above), `method`,
//! `path`, `query`, `protocol`,
//! `status`, `bytes`, `duration_ms` (float), `referer`, `user_agent` (`null` when absent),
//! `request_id` (only with `--request-id`), `pid`.
//! Strings are RFC 8259 strings: `"`, `\` and control characters escaped, bytes that are valid
//! UTF-8 kept as such, other bytes read as latin-1 (one character per byte, as WSGI does).

use std::borrow::Cow;
use std::fmt::Write;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::environ::{cgi_variables, request_parts, CgiKey, EnvKey, EnvVar};
use crate::exchange::ConnInfo;
use crate::head_bytes::HeadBytes;
use crate::http1::RequestHead;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Longest `{name}` accepted in a directive: header and variable names are short; a longer one
/// is a mistake in the format.
const MAX_NAME: usize = 256;

/// What one finished request tells the access log.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub(crate) conn: &'a ConnInfo,
    pub(crate) head: &'a RequestHead,
    pub(crate) status: u16,
    pub(crate) body_bytes: u64,
    /// From the parsed head to the end of the response.
    pub(crate) duration: Duration,
    /// The app's response headers; empty unless [`AccessFormat::needs_response_headers`].
    pub(crate) response_headers: &'a [(HeadBytes, HeadBytes)],
}

/// One compiled piece of the text format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    RemoteAddr,
    Dash,
    User,
    Time,
    RequestLine,
    Method,
    Path,
    Query,
    Protocol,
    Status,
    BytesClf,
    Bytes,
    Referer,
    UserAgent,
    Seconds,
    Millis,
    Micros,
    DecimalSeconds,
    Pid,
    /// Lower-cased header name.
    RequestHeader(Vec<u8>),
    ResponseHeader(Vec<u8>),
    /// Upper-cased variable name (`wsgi.url_scheme` stays as it is).
    Environ(String),
}

/// A format that cannot be compiled, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormatError(pub(crate) String);

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid setting access_log_format: {}", self.0)
    }
}

impl std::error::Error for FormatError {}

/// The access log format, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AccessFormat(Kind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Text(Vec<Piece>),
    Json {
        /// Add the `request_id` key (`--request-id`).
        request_id: bool,
    },
}

impl AccessFormat {
    /// Compiles the text format, or selects JSON.
    pub(crate) fn compile(format: &str, json: bool) -> Result<AccessFormat, FormatError> {
        if json {
            return Ok(AccessFormat(Kind::Json { request_id: false }));
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = format;
        while let Some(i) = rest.find('%') {
            literal.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(r) = rest.strip_prefix('%') {
                literal.push('%');
                rest = r;
                continue;
            }
            let Some(r) = rest.strip_prefix('(') else {
                return Err(FormatError(format!(
                    "a '%' must start %(NAME)s or be doubled as %%, at {:?}",
                    head_of(rest)
                )));
            };
            let (name, after) = split_name(r)?;
            rest = match after.chars().next() {
                Some('s' | 'd') => &after[1..],
                _ => {
                    return Err(FormatError(format!(
                        "%({name}) must be followed by 's', at {:?}",
                        head_of(after)
                    )))
                }
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(directive(name)?);
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(AccessFormat(Kind::Text(pieces)))
    }

    /// With `on` (`--request-id`), a JSON line gets the `request_id` key (before `pid`); the
    /// text format names it with `%({x-request-id}i)s`.
    pub(crate) fn with_request_id(self, on: bool) -> AccessFormat {
        match self.0 {
            Kind::Json { .. } => AccessFormat(Kind::Json { request_id: on }),
            text => AccessFormat(text),
        }
    }

    /// True when a line uses the response headers (`%({name}o)s`): only then are they kept.
    pub(crate) fn needs_response_headers(&self) -> bool {
        match &self.0 {
            Kind::Text(p) => p.iter().any(|p| matches!(p, Piece::ResponseHeader(_))),
            Kind::Json { .. } => false,
        }
    }

    /// One line, without the newline.
    pub(crate) fn render(&self, rec: &Record<'_>, now: SystemTime) -> String {
        match &self.0 {
            Kind::Text(pieces) => render_text(pieces, rec, now),
            Kind::Json { request_id } => render_json(rec, now, *request_id),
        }
    }
}

fn head_of(s: &str) -> &str {
    match s.char_indices().nth(12) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Splits `NAME)rest` (NAME may contain `{...}` holding `)`).
fn split_name(s: &str) -> Result<(&str, &str), FormatError> {
    let start = if s.starts_with('{') {
        match s.find('}') {
            Some(i) => i,
            None => return Err(FormatError(format!("unclosed '{{' in %({}", head_of(s)))),
        }
    } else {
        0
    };
    match s[start..].find(')') {
        Some(i) => Ok((&s[..start + i], &s[start + i + 1..])),
        None => Err(FormatError(format!("unclosed %( at %({}", head_of(s)))),
    }
}

fn directive(name: &str) -> Result<Piece, FormatError> {
    Ok(match name {
        "h" => Piece::RemoteAddr,
        "l" => Piece::Dash,
        "u" => Piece::User,
        "t" => Piece::Time,
        "r" => Piece::RequestLine,
        "m" => Piece::Method,
        "U" => Piece::Path,
        "q" => Piece::Query,
        "H" => Piece::Protocol,
        "s" => Piece::Status,
        "b" => Piece::BytesClf,
        "B" => Piece::Bytes,
        "f" => Piece::Referer,
        "a" => Piece::UserAgent,
        "T" => Piece::Seconds,
        "M" => Piece::Millis,
        "D" => Piece::Micros,
        "L" => Piece::DecimalSeconds,
        "p" => Piece::Pid,
        _ => {
            let braced = name
                .strip_prefix('{')
                .and_then(|n| n.rsplit_once('}'))
                .filter(|(n, _)| !n.is_empty() && n.len() <= MAX_NAME);
            match braced {
                Some((n, "i")) => Piece::RequestHeader(n.to_ascii_lowercase().into_bytes()),
                Some((n, "o")) => Piece::ResponseHeader(n.to_ascii_lowercase().into_bytes()),
                Some((n, "e")) if n == "wsgi.url_scheme" => Piece::Environ(n.to_owned()),
                Some((n, "e")) => Piece::Environ(n.to_ascii_uppercase()),
                _ => {
                    return Err(FormatError(format!(
                        "unknown directive %({name})s (known: h l u t r m U q H s b B f a T M D \
                         L p, {{header}}i, {{header}}o, {{variable}}e)"
                    )))
                }
            }
        }
    })
}

fn request_header<'a>(head: &'a RequestHead, name: &[u8]) -> Option<&'a [u8]> {
    head.headers()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The client the log names (see the module docs): its address and, when known, its port;
/// `None` for a Unix socket peer (and a uwsgi packet over one without `REMOTE_ADDR`). The same
/// rules as the environ's `REMOTE_ADDR`/`REMOTE_PORT` ([`crate::environ::cgi_variables`],
/// [`crate::uwsgi::UwsgiRequest::cgi_variables`]).
pub(crate) fn client(conn: &ConnInfo) -> Option<(IpAddr, Option<u16>)> {
    let (ip, port) = (conn.peer.ip(), conn.peer.port());
    match conn.uwsgi {
        // `serve_uwsgi` put the packet's client in `peer`.
        Some(facts) if facts.remote_addr => Some((ip, facts.remote_port.then_some(port))),
        _ if conn.unix => None,
        _ => Some((ip, Some(port))),
    }
}

/// The protocol as the log shows it: `HTTP/1.1`, or a uwsgi packet's `HTTP/2.0`.
enum Protocol {
    Head(&'static str),
    /// `HTTP/` and one or two digits.
    Uwsgi([u8; 8], usize),
}

impl Protocol {
    fn of(conn: &ConnInfo, head: &RequestHead) -> Protocol {
        match conn.uwsgi {
            Some(facts) => {
                let mut text = *b"HTTP/0.0";
                let (major, minor) = facts.version;
                text[5] = b'0' + major % 10;
                let len = match minor {
                    Some(minor) => {
                        text[7] = b'0' + minor % 10;
                        8
                    }
                    None => 6,
                };
                Protocol::Uwsgi(text, len)
            }
            None => Protocol::Head(head.version().as_str()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Protocol::Head(s) => s.as_bytes(),
            Protocol::Uwsgi(text, len) => &text[..*len],
        }
    }
}

/// How error-log lines name a connection's client: `IP:PORT` (`[V6]:PORT`), or `unix socket`
/// for a Unix socket peer (whose `peer` is the `0.0.0.0:0` placeholder). A borrow: nothing is
/// computed until a line is formatted (`log::debug!` formats nothing when debug is off).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerLabel<'a>(pub(crate) &'a ConnInfo);

impl PeerLabel<'_> {
    /// The same label without the borrow, for what outlives the connection's [`ConnInfo`]
    /// borrow (an HTTP/2 stream's response body, its body feeder task).
    pub(crate) fn owned(self) -> OwnedPeerLabel {
        OwnedPeerLabel(client(self.0))
    }
}

impl std::fmt::Display for PeerLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.owned().fmt(f)
    }
}

/// [`PeerLabel`] copied out of its connection ([`PeerLabel::owned`]): `Copy`, the same text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OwnedPeerLabel(Option<(IpAddr, Option<u16>)>);

impl std::fmt::Display for OwnedPeerLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("unix socket"),
            Some((ip, Some(port))) => write!(f, "{}", std::net::SocketAddr::new(ip, port)),
            Some((ip, None)) => write!(f, "{ip}"),
        }
    }
}

fn render_text(pieces: &[Piece], rec: &Record<'_>, now: SystemTime) -> String {
    let head = rec.head;
    let mut out = String::with_capacity(160);
    // Computed once, only when a `{var}e` asks for it.
    let mut environ: Option<Vec<EnvVar<'_>>> = None;
    let micros = rec.duration.as_micros();
    for piece in pieces {
        match piece {
            Piece::Literal(s) => out.push_str(s),
            // A Unix socket peer has no address: `-`, as for any unknown field.
            Piece::RemoteAddr => match client(rec.conn) {
                Some((ip, _)) => {
                    let _ = write!(out, "{ip}");
                }
                None => out.push('-'),
            },
            Piece::Dash => out.push('-'),
            Piece::User => match basic_user(request_header(head, b"authorization")) {
                Some(user) => push_escaped(&mut out, &user),
                None => out.push('-'),
            },
            Piece::Time => {
                out.push('[');
                push_clf_time(&mut out, unix_secs(now));
                out.push(']');
            }
            Piece::RequestLine => {
                push_escaped(&mut out, head.method());
                out.push(' ');
                push_escaped(&mut out, head.target());
                out.push(' ');
                push_escaped(&mut out, Protocol::of(rec.conn, head).as_bytes());
            }
            Piece::Method => push_escaped(&mut out, head.method()),
            Piece::Path => push_escaped(&mut out, head.path()),
            Piece::Query => push_escaped(&mut out, head.query()),
            Piece::Protocol => push_escaped(&mut out, Protocol::of(rec.conn, head).as_bytes()),
            Piece::Status => {
                let _ = write!(out, "{}", rec.status);
            }
            Piece::BytesClf if rec.body_bytes == 0 => out.push('-'),
            Piece::BytesClf | Piece::Bytes => {
                let _ = write!(out, "{}", rec.body_bytes);
            }
            Piece::Referer => push_or_dash(&mut out, request_header(head, b"referer")),
            Piece::UserAgent => push_or_dash(&mut out, request_header(head, b"user-agent")),
            Piece::Seconds => {
                let _ = write!(out, "{}", rec.duration.as_secs());
            }
            Piece::Millis => {
                let _ = write!(out, "{}", rec.duration.as_millis());
            }
            Piece::Micros => {
                let _ = write!(out, "{micros}");
            }
            Piece::DecimalSeconds => {
                let _ = write!(out, "{}.{:06}", micros / 1_000_000, micros % 1_000_000);
            }
            Piece::Pid => {
                let _ = write!(out, "<{}>", std::process::id());
            }
            Piece::RequestHeader(name) => push_or_dash(&mut out, request_header(head, name)),
            Piece::ResponseHeader(name) => {
                let value = rec
                    .response_headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_ref());
                push_or_dash(&mut out, value);
            }
            Piece::Environ(name) if name == "wsgi.url_scheme" => out.push_str(rec.conn.scheme),
            Piece::Environ(name) => {
                let vars = environ.get_or_insert_with(|| log_variables(head, rec.conn));
                let value = vars.iter().find_map(|(k, v)| {
                    let key: &[u8] = match k {
                        EnvKey::Cgi(c) => c.as_str().as_bytes(),
                        EnvKey::Http(h) => h,
                        EnvKey::Other(o) => o.as_bytes(),
                    };
                    (key == name.as_bytes()).then_some(v.as_ref())
                });
                push_or_dash(&mut out, value);
            }
        }
    }
    out
}

/// The CGI variables `{var}e` answers from: the request's, with a uwsgi packet's protocol and
/// client (see the module docs).
fn log_variables<'a>(head: &'a RequestHead, conn: &'a ConnInfo) -> Vec<EnvVar<'a>> {
    let mut vars = cgi_variables(request_parts(head, conn));
    if conn.uwsgi.is_some() {
        let protocol = Protocol::of(conn, head).as_bytes().to_vec();
        let client = client(conn);
        vars.retain(|(k, _)| {
            !matches!(
                k,
                EnvKey::Cgi(CgiKey::ServerProtocol | CgiKey::RemoteAddr | CgiKey::RemotePort)
            )
        });
        vars.push((EnvKey::Cgi(CgiKey::ServerProtocol), Cow::Owned(protocol)));
        // As `UwsgiRequest::cgi_variables`: both always present, empty when unknown.
        let (addr, port) = match client {
            Some((ip, port)) => (ip.to_string().into_bytes(), port),
            None => (Vec::new(), None),
        };
        let port = port.map_or_else(Vec::new, |p| p.to_string().into_bytes());
        vars.push((EnvKey::Cgi(CgiKey::RemoteAddr), Cow::Owned(addr)));
        vars.push((EnvKey::Cgi(CgiKey::RemotePort), Cow::Owned(port)));
    }
    vars
}

fn push_or_dash(out: &mut String, value: Option<&[u8]>) {
    match value {
        Some(v) => push_escaped(out, v),
        None => out.push('-'),
    }
}

fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The user name of `Authorization: Basic BASE64(user:password)` (RFC 7617), if it decodes.
fn basic_user(value: Option<&[u8]>) -> Option<Vec<u8>> {
    let value = value?;
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => return None,
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64_decode(rest.trim_ascii())?;
    let user = match decoded.iter().position(|&b| b == b':') {
        Some(i) => decoded[..i].to_vec(),
        None => decoded,
    };
    Some(user)
}

/// Standard base64 (RFC 4648 §4), padding optional; `None` on any other byte.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    fn value(b: u8) -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let text = match text.iter().position(|&b| b == b'=') {
        Some(i) if text[i..].iter().all(|&b| b == b'=') && text.len() - i <= 2 => &text[..i],
        Some(_) => return None,
        None => text,
    };
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut acc = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            acc |= value(b)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

fn push_clf_time(out: &mut String, unix_secs: u64) {
    let (days, secs) = (unix_secs / 86_400, unix_secs % 86_400);
    let (y, m, d) = crate::log::civil_from_days(days as i64);
    let month = MONTHS[(m as usize).saturating_sub(1) % 12];
    let _ = write!(
        out,
        "{d:02}/{month}/{y:04}:{:02}:{:02}:{:02} +0000",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
}

fn push_escaped(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

// --- JSON ------------------------------------------------------------------------------------

fn render_json(rec: &Record<'_>, now: SystemTime, request_id: bool) -> String {
    let head = rec.head;
    let mut out = String::with_capacity(320);
    out.push_str("{\"time\":\"");
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = crate::log::civil_from_days((secs / 86_400) as i64);
    let day = secs % 86_400;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z\"",
        day / 3600,
        (day / 60) % 60,
        day % 60,
        since.subsec_millis()
    );
    let (addr, port) = match client(rec.conn) {
        Some((ip, port)) => (Some(ip), port),
        None => (None, None),
    };
    match addr {
        Some(ip) => {
            let _ = write!(out, ",\"remote_addr\":\"{ip}\"");
        }
        None => out.push_str(",\"remote_addr\":null"),
    }
    match port {
        Some(p) => {
            let _ = write!(out, ",\"remote_port\":{p}");
        }
        None => out.push_str(",\"remote_port\":null"),
    }
    for (key, value) in [
        ("method", head.method()),
        ("path", head.path()),
        ("query", head.query()),
        ("protocol", Protocol::of(rec.conn, head).as_bytes()),
    ] {
        let _ = write!(out, ",\"{key}\":");
        push_json_string(&mut out, value);
    }
    let _ = write!(
        out,
        ",\"status\":{},\"bytes\":{},\"duration_ms\":{:.3}",
        rec.status,
        rec.body_bytes,
        rec.duration.as_secs_f64() * 1000.0
    );
    for (key, name) in [("referer", &b"referer"[..]), ("user_agent", b"user-agent")] {
        let _ = write!(out, ",\"{key}\":");
        match request_header(head, name) {
            Some(v) => push_json_string(&mut out, v),
            None => out.push_str("null"),
        }
    }
    if request_id {
        out.push_str(",\"request_id\":");
        match request_header(head, b"x-request-id") {
            Some(v) => push_json_string(&mut out, v),
            None => out.push_str("null"),
        }
    }
    let _ = write!(out, ",\"pid\":{}}}", std::process::id());
    out
}

/// A JSON string (RFC 8259 §7) of `bytes`: UTF-8 when valid, else latin-1.
fn push_json_string(out: &mut String, bytes: &[u8]) {
    out.push('"');
    match std::str::from_utf8(bytes) {
        Ok(s) => s.chars().for_each(|c| push_json_char(out, c)),
        Err(_) => bytes
            .iter()
            .for_each(|&b| push_json_char(out, char::from(b))),
    }
    out.push('"');
}

fn push_json_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        // Control characters must be escaped; DEL and the JavaScript line separators are, too,
        // so a line is safe to paste into a terminal or a script.
        '\u{0}'..='\u{1f}' | '\u{7f}' | '\u{2028}' | '\u{2029}' => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        _ => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn head(raw: &[u8]) -> RequestHead {
        let mut buf = BytesMut::from(raw);
        let limits = crate::http1::HeadLimits {
            request_line: 8190,
            fields: 100,
            field_size: 8190,
            head: 65536,
        };
        match crate::http1::parse_head(&mut buf, &limits) {
            Ok(crate::http1::Parsed::Complete(h)) => h,
            other => panic!("test request did not parse: {other:?}"),
        }
    }

    fn conn() -> ConnInfo {
        ConnInfo::new(
            "10.1.2.3:5555".parse().unwrap(),
            "127.0.0.1:8000".parse().unwrap(),
            "http",
        )
    }

    fn render(format: &str, raw: &[u8], resp: &[(HeadBytes, HeadBytes)]) -> String {
        let f = AccessFormat::compile(format, false).unwrap();
        let (c, h) = (conn(), head(raw));
        let rec = Record {
            conn: &c,
            head: &h,
            status: 200,
            body_bytes: 5,
            duration: Duration::from_micros(1_234_567),
            response_headers: resp,
        };
        f.render(&rec, UNIX_EPOCH + Duration::from_secs(1_795_242_780))
    }

    const REQ: &[u8] = b"GET /a%20b?x=1 HTTP/1.1\r\nHost: ex.org\r\nReferer: http://r/\r\n\
User-Agent: t/1\r\nAuthorization: Basic dXNlcjpwYXNz\r\nX-Q: a\"b\r\n\r\n";

    #[test]
    fn default_format_is_gunicorn_combined() {
        let line = render(
            r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#,
            REQ,
            &[],
        );
        assert_eq!(
            line,
            "10.1.2.3 - user [21/Nov/2026:06:33:00 +0000] \"GET /a%20b?x=1 HTTP/1.1\" 200 5 \
             \"http://r/\" \"t/1\""
        );
    }

    #[test]
    fn every_directive() {
        let resp = [(
            HeadBytes::from_static(b"X-Out"),
            HeadBytes::from_static(b"o1"),
        )];
        let line = render(
            "%(m)s|%(U)s|%(q)s|%(H)s|%(B)s|%(T)s|%(M)s|%(D)s|%(L)s|%({x-q}i)s|%({X-OUT}o)s|\
             %({path_info}e)s|%({HTTP_HOST}e)s|%({server_port}e)s|%({wsgi.url_scheme}e)s|\
             %({nope}e)s|%({none}i)s|100%%",
            REQ,
            &resp,
        );
        assert_eq!(
            line,
            "GET|/a%20b|x=1|HTTP/1.1|5|1|1234|1234567|1.234567|a\\\"b|o1|/a b|ex.org|80|http|-|-|100%"
        );
        assert!(render("%(p)s", REQ, &[]).starts_with('<'));
    }

    #[test]
    fn compile_errors() {
        for bad in ["%(z)s", "%(h)x", "%(h", "50%", "%({a}x)s", "%({a)s"] {
            assert!(AccessFormat::compile(bad, false).is_err(), "{bad}");
        }
        let f = AccessFormat::compile("a %({x)y}i)s b", false).unwrap();
        assert_eq!(
            f,
            AccessFormat(Kind::Text(vec![
                Piece::Literal("a ".into()),
                Piece::RequestHeader(b"x)y".to_vec()),
                Piece::Literal(" b".into())
            ]))
        );
        assert!(!f.needs_response_headers());
        assert!(AccessFormat::compile("%({a}o)s", false)
            .unwrap()
            .needs_response_headers());
    }

    #[test]
    fn json_is_escaped() {
        let raw = "GET /p?q=%22x HTTP/1.1\r\nHost: h\r\nUser-Agent: a\"b\\c\u{e9}\u{2028}\r\n\r\n";
        let mut bytes = raw.as_bytes().to_vec();
        // A latin-1 byte in the Referer (not UTF-8).
        bytes.truncate(bytes.len() - 2);
        bytes.extend_from_slice(b"Referer: \xff\xfe\r\n\r\n");
        let (c, h) = (conn(), head(&bytes));
        let rec = Record {
            conn: &c,
            head: &h,
            status: 404,
            body_bytes: 0,
            duration: Duration::from_millis(2),
            response_headers: &[],
        };
        let line = AccessFormat(Kind::Json { request_id: false })
            .render(&rec, UNIX_EPOCH + Duration::from_millis(1_795_242_780_042));
        assert_eq!(
            line,
            "{\"time\":\"2026-11-21T06:33:00.042Z\",\"remote_addr\":\"10.1.2.3\",\"remote_port\":5555,\
             \"method\":\"GET\",\"path\":\"/p\",\"query\":\"q=%22x\",\"protocol\":\"HTTP/1.1\",\
             \"status\":404,\"bytes\":0,\"duration_ms\":2.000,\"referer\":\"\u{ff}\u{fe}\",\
             \"user_agent\":\"a\\\"b\\\\c\u{e9}\\u2028\",\"pid\":"
                .to_owned()
                + &std::process::id().to_string()
                + "}"
        );
    }

    /// A 200 with a 1-byte body that took 1 ms.
    fn ok_record<'a>(conn: &'a ConnInfo, head: &'a RequestHead) -> Record<'a> {
        Record {
            conn,
            head,
            status: 200,
            body_bytes: 1,
            duration: Duration::from_millis(1),
            response_headers: &[],
        }
    }

    fn json_line(conn: &ConnInfo, h: &RequestHead) -> serde_json::Value {
        let rec = ok_record(conn, h);
        let line = AccessFormat(Kind::Json { request_id: false }).render(&rec, UNIX_EPOCH);
        serde_json::from_str(&line).unwrap()
    }

    fn text_line(format: &str, conn: &ConnInfo, h: &RequestHead) -> String {
        let rec = ok_record(conn, h);
        AccessFormat::compile(format, false)
            .unwrap()
            .render(&rec, UNIX_EPOCH)
    }

    #[test]
    fn a_unix_socket_peer_has_no_address() {
        let mut c = ConnInfo::new(
            "0.0.0.0:0".parse().unwrap(),
            "0.0.0.0:0".parse().unwrap(),
            "http",
        );
        c.unix = true;
        let h = head(REQ);
        let json = json_line(&c, &h);
        assert!(json["remote_addr"].is_null(), "{json}");
        assert!(json["remote_port"].is_null(), "{json}");
        // The environ's REMOTE_ADDR is empty and REMOTE_PORT absent: `-` for the latter.
        assert_eq!(
            text_line("%(h)s|%({remote_addr}e)s|%({remote_port}e)s", &c, &h),
            "-||-"
        );
        assert_eq!(PeerLabel(&c).to_string(), "unix socket");
        // A TCP peer is named as it is.
        let json = json_line(&conn(), &h);
        assert_eq!(
            (&json["remote_addr"], &json["remote_port"]),
            (&"10.1.2.3".into(), &5555.into())
        );
        assert_eq!(PeerLabel(&conn()).to_string(), "10.1.2.3:5555");
        assert_eq!(PeerLabel(&c).owned().to_string(), "unix socket");
        assert_eq!(PeerLabel(&conn()).owned().to_string(), "10.1.2.3:5555");
    }

    /// A uwsgi connection as `serve_uwsgi` leaves it: `peer` is the packet's client when it
    /// named one.
    fn uwsgi_conn(client: Option<&str>, port: bool, unix: bool) -> ConnInfo {
        let front = if unix { "0.0.0.0:0" } else { "127.0.0.1:40000" };
        let mut c = ConnInfo::new(front.parse().unwrap(), front.parse().unwrap(), "http");
        c.unix = unix;
        if let Some(ip) = client {
            c.peer = std::net::SocketAddr::new(ip.parse().unwrap(), if port { 51234 } else { 0 });
        }
        c.uwsgi = Some(crate::exchange::UwsgiFacts {
            version: (2, Some(0)),
            remote_addr: client.is_some(),
            remote_port: client.is_some() && port,
        });
        c
    }

    #[test]
    fn uwsgi_requests_are_logged_as_the_packet_says() {
        // The server-side head of a uwsgi request is HTTP/1.0 (close-delimited framing).
        let h = head(b"GET /p?q=1 HTTP/1.0\r\nUser-Agent: ua\r\n\r\n");
        for unix in [false, true] {
            let c = uwsgi_conn(Some("203.0.113.9"), true, unix);
            assert_eq!(
                text_line(
                    "%(h)s|%(H)s|%(r)s|%({server_protocol}e)s|%({remote_port}e)s",
                    &c,
                    &h
                ),
                "203.0.113.9|HTTP/2.0|GET /p?q=1 HTTP/2.0|HTTP/2.0|51234"
            );
            let json = json_line(&c, &h);
            assert_eq!(json["protocol"], "HTTP/2.0");
            assert_eq!(
                (&json["remote_addr"], &json["remote_port"]),
                (&"203.0.113.9".into(), &51234.into())
            );
            assert_eq!(PeerLabel(&c).to_string(), "203.0.113.9:51234");
        }
        // Without REMOTE_ADDR: the connection's peer over TCP, nobody over a Unix socket.
        let c = uwsgi_conn(None, false, false);
        assert_eq!(text_line("%(h)s %(H)s", &c, &h), "127.0.0.1 HTTP/2.0");
        let mut c = uwsgi_conn(None, false, true);
        assert_eq!(
            text_line("%(h)s|%({remote_addr}e)s|%({remote_port}e)s", &c, &h),
            "-||"
        );
        assert!(json_line(&c, &h)["remote_addr"].is_null());
        c.uwsgi = Some(crate::exchange::UwsgiFacts {
            version: (3, None),
            remote_addr: false,
            remote_port: false,
        });
        assert_eq!(text_line("%(H)s", &c, &h), "HTTP/3");
        // An address without a port: no port.
        let c = uwsgi_conn(Some("203.0.113.9"), false, false);
        assert_eq!(text_line("%({remote_port}e)s", &c, &h), "");
        let json = json_line(&c, &h);
        assert_eq!(
            (&json["remote_addr"], &json["remote_port"]),
            (&"203.0.113.9".into(), &serde_json::Value::Null)
        );
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode(b"dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode(b"YQ==").unwrap(), b"a");
        assert_eq!(base64_decode(b"YWI").unwrap(), b"ab");
        assert!(base64_decode(b"Y").is_none());
        assert!(base64_decode(b"a$==").is_none());
        assert_eq!(basic_user(Some(b"Bearer x")), None);
    }

    #[test]
    fn time_format() {
        let mut s = String::new();
        // 2026-11-21 06:33:00 UTC
        push_clf_time(&mut s, 1_795_242_780);
        assert_eq!(s, "21/Nov/2026:06:33:00 +0000");
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        push_escaped(&mut s, b"a\"b\\c\n\x7f\xe9");
        assert_eq!(s, "a\\\"b\\\\c\\x0a\\x7f\\xe9");
    }
}
