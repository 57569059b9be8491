//! Request line and header section (RFC 9112 §2-§6), parsed strictly.
//!
//! Rules enforced here (each rejection closes the connection, see [`RequestError::outcome`]):
//! - RFC 9112 §2.2: lines end in CRLF only. A bare LF or a bare CR anywhere in the head is a 400
//!   (we never take the "MAY recognize a single LF" leniency: a proxy that reads it differently
//!   is how requests get smuggled). "a server that is expecting to receive and parse a
//!   request-line SHOULD ignore at least one empty line (CRLF) received prior to the
//!   request-line": we skip up to [`MAX_LEADING_EMPTY_LINES`].
//! - RFC 9112 §3: `request-line = method SP request-target SP HTTP-version`, single SP; the
//!   method is a token (case-sensitive); the target is visible ASCII without `#`; the version is
//!   exactly `HTTP/1.0` or `HTTP/1.1` (any other well-formed `HTTP/x.y` is a 505, garbage a 400).
//! - RFC 9112 §3.2: origin-form (`/path?query`); absolute-form for `http`/`https` ("the server
//!   MUST ignore the received Host header field (if any) and instead use the host information of
//!   the request-target"); authority-form belongs to CONNECT, which we do not implement (501: a
//!   WSGI app cannot serve a tunnel); asterisk-form only with OPTIONS. "A server MUST respond with
//!   a 400 (Bad Request) status code to any HTTP/1.1 request message that lacks a Host header
//!   field and to any request message that contains more than one Host header field line or a
//!   Host header field with an invalid field value."
//! - RFC 9112 §5: no whitespace between a field name and the colon; obs-fold rejected; names are
//!   tokens; values contain no CTL (NUL, CR, LF, DEL...) and are trimmed of SP/HTAB only.
//! - RFC 9112 §6.1-§6.3: exactly one framing. Transfer-Encoding with Content-Length is a 400
//!   ("ought to be handled as an error"); Transfer-Encoding on HTTP/1.0 is a 400 ("MUST treat the
//!   message as if the framing is faulty"); "If a Transfer-Encoding header field is present in a
//!   request and the chunked transfer coding is not the final encoding ... the server MUST respond
//!   with the 400 (Bad Request) status code"; a coding we do not know before `chunked` is a 501;
//!   Content-Length must be `1*DIGIT`, once ("a recipient MUST treat" an invalid value "as an
//!   unrecoverable error"; we also refuse the `5, 5` list form and a repeated field).
//! - RFC 9110 §10.1.1: `Expect: 100-continue` on HTTP/1.1 is honoured, any other expectation is
//!   a 417; on HTTP/1.0 the field is ignored.
//! - Limits ([`HeadLimits`]) are checked on every call, also while the head is incomplete, so a
//!   client never makes us buffer more than a limit allows. The answer (head or error status)
//!   never depends on how the bytes were split into reads (tested on every split size and on
//!   thousands of mutated heads; fuzzed by `fuzz/fuzz_targets/parse_head.rs`).

use bytes::{Buf, Bytes, BytesMut};

use super::find::{find_byte, find_cr_or_lf};
use super::syntax::{
    is_ows, is_token, is_valid_authority, list_contains, parse_decimal, parse_field_line,
    pct_encoding_valid, trim_ows,
};
use super::RequestError;

/// How many empty lines (CRLF) may precede a request line before the request is refused
/// (RFC 9112 §2.2 asks to ignore "at least one"; clients that add a CRLF after a POST body
/// send one or two).
pub const MAX_LEADING_EMPTY_LINES: usize = 8;

/// Limits applied while parsing a head (from `ServerConfig`).
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Request line length, without its CRLF. → 414.
    pub request_line: usize,
    /// Number of header field lines. → 431.
    pub fields: usize,
    /// One header field line, without its CRLF. → 431.
    pub field_size: usize,
    /// The whole head: request line through the blank line (leading empty lines not counted).
    /// → 431.
    pub head: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
    /// An HTTP/2 stream (`server/h2`): never parsed from a request line, set by
    /// [`RequestHead::into_h2`] on a head rebuilt from the stream's header block.
    Http2,
}

impl Version {
    /// `"HTTP/1.0"`, `"HTTP/1.1"` or `"HTTP/2"` (`SERVER_PROTOCOL`).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
            Version::Http2 => "HTTP/2",
        }
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// Result of [`parse_head`].
pub type Parsed = crate::parsed::Parsed<RequestHead>;

/// A byte range inside the head's bytes (heads are far below 4 GiB: offsets fit in u32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // parse_head caps the head at u32::MAX bytes, so these never truncate.
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    fn get(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..self.end as usize]
    }
}

/// A parsed request head. Holds the head's bytes (frozen, shared) and offsets into them.
#[derive(Debug, Clone)]
pub struct RequestHead {
    buf: Bytes,
    method: Span,
    target: Span,
    /// Empty for an absolute-form target without a path (reported as `/`).
    path: Span,
    query: Span,
    version: Version,
    headers: Vec<(Span, Span)>,
    /// The absolute-form authority, else the Host header value when non-empty.
    host: Option<Span>,
    framing: BodyFraming,
    keep_alive: bool,
    expects_continue: bool,
}

/// The request line of a [`RequestHead`] ([`RequestHead::line`]), kept for log lines:
/// displays as `"GET /path HTTP/1.1"`.
#[derive(Debug, Clone)]
pub struct RequestSummary {
    buf: Bytes,
    method: Span,
    target: Span,
    version: Version,
}

impl std::fmt::Display for RequestSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            String::from_utf8_lossy(self.method.get(&self.buf)),
            String::from_utf8_lossy(self.target.get(&self.buf)),
            self.version.as_str()
        )
    }
}

/// Parses a request head from the front of `buf`. On `Complete`, the head's bytes (through the
/// blank line) are split off `buf` (zero-copy) and `buf` starts at the body or the next
/// pipelined request. Leading empty lines before a request line (RFC 9112 §2.2) are skipped.
pub fn parse_head(buf: &mut BytesMut, limits: &HeadLimits) -> Result<Parsed, RequestError> {
    let lead = leading_empty_lines(buf)?;
    let Some((head_len, request_line)) = scan(&buf[lead..], limits)? else {
        return Ok(Parsed::Partial);
    };
    let mut head = parse_fields(&buf[lead..lead + head_len], request_line)?;
    buf.advance(lead);
    head.buf = buf.split_to(head_len).freeze();
    Ok(Parsed::Complete(head))
}

/// Bytes of empty lines (CRLF) at the front of `buf`, bounded by [`MAX_LEADING_EMPTY_LINES`].
fn leading_empty_lines(buf: &[u8]) -> Result<usize, RequestError> {
    let mut at = 0;
    while buf.get(at..at + 2) == Some(b"\r\n") {
        at += 2;
        if at / 2 > MAX_LEADING_EMPTY_LINES {
            return Err(RequestError::Malformed(
                "too many empty lines before the request line",
            ));
        }
    }
    Ok(at)
}

/// The structural pass, run on every call (complete or not): finds the lines, applies the limits
/// and the line-ending rules, and parses the request line. Returns the head's length and its
/// request line once the blank line is there, `None` while the head is incomplete.
///
/// Each line is checked in one fixed order (obs-fold, length, head size, bare LF, bare CR, then
/// its own rules), and an incomplete last line only by the checks its missing bytes cannot
/// change. So a prefix of a head fails only with the status the whole head fails with: the
/// answer does not depend on how the bytes were split into reads. Cheap (one pass per line):
/// field lines are fully validated once, by [`parse_fields`], when the head is complete.
fn scan(data: &[u8], limits: &HeadLimits) -> Result<Option<(usize, RequestLine)>, RequestError> {
    // Offsets are stored as u32.
    let head_limit = limits.head.min(u32::MAX as usize);
    // A request line that cannot fit in the head is too long (414), whatever the split.
    let request_line_limit = limits.request_line.min(head_limit.saturating_sub(4));
    let mut request_line = None;
    let mut fields = 0;
    let mut pos = 0;
    loop {
        let first = pos == 0;
        let (limit, too_long) = if first {
            (request_line_limit, RequestError::RequestLineTooLong)
        } else {
            (limits.field_size, RequestError::FieldTooLarge)
        };
        let rest = &data[pos..];
        if !first && rest.first().is_some_and(|&b| is_ows(b)) {
            return Err(RequestError::Malformed(
                "obs-fold or whitespace before a field name",
            ));
        }
        // A line's LF is within its limit plus CRLF: never scan further than that.
        let window = &rest[..rest.len().min(limit.saturating_add(2))];
        let Some(LineEnd {
            lf,
            has_cr,
            cr_inside,
        }) = line_end(window)
        else {
            // Incomplete line: a final CR may be the start of its CRLF.
            if rest.len() > window.len() || rest.len() - usize::from(rest.ends_with(b"\r")) > limit
            {
                return Err(too_long);
            }
            if data.len() > head_limit {
                return Err(RequestError::HeadTooLarge);
            }
            return Ok(None);
        };
        let content = &rest[..lf - usize::from(has_cr)];
        if content.len() > limit {
            return Err(too_long);
        }
        let end = pos + lf + 1;
        if end > head_limit {
            return Err(RequestError::HeadTooLarge);
        }
        if !has_cr {
            return Err(RequestError::Malformed("bare LF"));
        }
        if cr_inside {
            return Err(RequestError::Malformed("bare CR"));
        }
        if first {
            request_line = Some(parse_request_line(content)?);
        } else if content.is_empty() {
            return match request_line {
                Some(rl) => Ok(Some((end, rl))),
                None => Err(RequestError::Malformed("missing request line")),
            };
        } else {
            fields += 1;
            if fields > limits.fields {
                return Err(RequestError::TooManyFields);
            }
        }
        pos = end;
    }
}

/// Where a complete line ends, as [`scan`] checks it.
struct LineEnd {
    /// Index of the line's LF.
    lf: usize,
    /// A CR right before the LF (the line ends in CRLF).
    has_cr: bool,
    /// A CR anywhere before that (a bare CR in the line's content).
    cr_inside: bool,
}

/// The first line of `window`, `None` when it has no LF yet. Well-formed lines take one pass:
/// the first CR or LF is a CR followed by LF. Anything else is answered by the full rules.
#[inline]
fn line_end(window: &[u8]) -> Option<LineEnd> {
    match find_cr_or_lf(window) {
        Some(cr) if window[cr] == b'\r' && window.get(cr + 1) == Some(&b'\n') => {
            return Some(LineEnd {
                lf: cr + 1,
                has_cr: true,
                cr_inside: false,
            })
        }
        None => return None,
        Some(_) => {}
    }
    let lf = memchr::memchr(b'\n', window)?;
    let has_cr = lf > 0 && window[lf - 1] == b'\r';
    let content = &window[..lf - usize::from(has_cr)];
    Some(LineEnd {
        lf,
        has_cr,
        cr_inside: memchr::memchr(b'\r', content).is_some(),
    })
}

/// The request line's parts, as offsets into the line.
#[derive(Debug)]
struct RequestLine {
    method: Span,
    target: Span,
    path: Span,
    query: Span,
    authority: Option<Span>,
    version: Version,
}

fn parse_version(v: &[u8]) -> Result<Version, RequestError> {
    match v {
        b"HTTP/1.1" => Ok(Version::Http11),
        b"HTTP/1.0" => Ok(Version::Http10),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(RequestError::UnsupportedVersion)
        }
        _ => Err(RequestError::Malformed("invalid HTTP version")),
    }
}

/// `request-line = method SP request-target SP HTTP-version` (`line` without CRLF).
fn parse_request_line(line: &[u8]) -> Result<RequestLine, RequestError> {
    let Some(sp1) = find_byte(line, b' ') else {
        return Err(RequestError::Malformed("request line without a target"));
    };
    let method = &line[..sp1];
    if !is_token(method) {
        return Err(RequestError::Malformed("invalid method"));
    }
    let t0 = sp1 + 1;
    let Some(sp2) = find_byte(&line[t0..], b' ').map(|i| t0 + i) else {
        return Err(RequestError::Malformed("request line without a version"));
    };
    let version = parse_version(&line[sp2 + 1..])?;
    let target = &line[t0..sp2];
    if target.is_empty() {
        return Err(RequestError::Malformed("empty request-target"));
    }
    if !target
        .iter()
        .all(|&b| (0x21..0x7f).contains(&b) && b != b'#')
    {
        return Err(RequestError::Malformed("invalid byte in request-target"));
    }
    let mut authority = None;
    // Where the path starts inside `target`.
    let path_start = if target[0] == b'/' {
        0
    } else if target == b"*" {
        if method != b"OPTIONS" {
            return Err(RequestError::Malformed(
                "asterisk-form target without OPTIONS",
            ));
        }
        0
    } else if method == b"CONNECT" {
        return Err(RequestError::MethodNotImplemented);
    } else if let Some(rest) = strip_scheme(target) {
        let auth_start = target.len() - rest.len();
        let auth_len = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        if !is_valid_authority(&rest[..auth_len], false) {
            return Err(RequestError::InvalidHost(
                "invalid authority in absolute-form target",
            ));
        }
        authority = Some(Span::new(t0 + auth_start, t0 + auth_start + auth_len));
        auth_start + auth_len
    } else {
        return Err(RequestError::Malformed("invalid request-target form"));
    };
    if method == b"CONNECT" {
        return Err(RequestError::MethodNotImplemented);
    }
    let q = find_byte(&target[path_start..], b'?').map(|i| path_start + i);
    let path_end = q.unwrap_or(target.len());
    if !pct_encoding_valid(&target[path_start..path_end]) {
        return Err(RequestError::Malformed("invalid percent-encoding in path"));
    }
    let query = match q {
        Some(q) => Span::new(t0 + q + 1, sp2),
        None => Span::new(sp2, sp2),
    };
    Ok(RequestLine {
        method: Span::new(0, sp1),
        target: Span::new(t0, sp2),
        path: Span::new(t0 + path_start, t0 + path_end),
        query,
        authority,
        version,
    })
}

/// The target after `http://` or `https://` (scheme case-insensitive), if it is absolute-form.
fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

/// `transfer-coding` list of a request: `Ok(())` only for exactly `chunked`.
fn check_transfer_encoding(value: &[u8]) -> Result<(), RequestError> {
    let mut codings = 0usize;
    let mut chunked_before_last = false;
    let mut last_is_chunked = false;
    for element in value.split(|&b| b == b',') {
        let (a, b) = trim_ows(element, 0, element.len());
        let coding = &element[a..b];
        if !is_token(coding) {
            return Err(RequestError::InvalidFraming("malformed Transfer-Encoding"));
        }
        chunked_before_last |= last_is_chunked;
        last_is_chunked = coding.eq_ignore_ascii_case(b"chunked");
        codings += 1;
    }
    if !last_is_chunked {
        return Err(RequestError::InvalidFraming(
            "chunked is not the final transfer coding",
        ));
    }
    if chunked_before_last {
        return Err(RequestError::InvalidFraming(
            "chunked applied more than once",
        ));
    }
    if codings > 1 {
        return Err(RequestError::UnsupportedTransferCoding);
    }
    Ok(())
}

/// The field pass over a complete head that [`scan`] accepted (every line ends in CRLF, no bare
/// CR, limits respected): field syntax and the fields with a meaning for framing and routing.
/// Returns a `RequestHead` whose `buf` is still empty: the caller splits the bytes off.
fn parse_fields(head: &[u8], rl: RequestLine) -> Result<RequestHead, RequestError> {
    let version = rl.version;
    let mut headers = Vec::with_capacity(16);
    let mut host: Option<Span> = None;
    let mut hosts = 0;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<Span> = None;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expects_continue = false;
    let mut bad_expect = false;

    // Skip the request line.
    let mut pos = find_byte(head, b'\n').map_or(head.len(), |lf| lf + 1);
    while let Some(lf) = find_byte(&head[pos..], b'\n').map(|i| pos + i) {
        // scan() guarantees a CR before every LF.
        let line = &head[pos..lf.saturating_sub(1).max(pos)];
        if line.is_empty() {
            break;
        }
        let f = parse_field_line(line).map_err(RequestError::Malformed)?;
        let name_span = Span::new(pos, pos + f.name_end);
        let value_span = Span::new(pos + f.value_start, pos + f.value_end);
        let name = &line[..f.name_end];
        let value = &line[f.value_start..f.value_end];
        headers.push((name_span, value_span));

        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            if hosts > 1 {
                return Err(RequestError::InvalidHost("more than one Host field"));
            }
            if !is_valid_authority(value, true) {
                return Err(RequestError::InvalidHost("invalid Host value"));
            }
            if !value.is_empty() {
                host = Some(value_span);
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return Err(RequestError::InvalidFraming("more than one Content-Length"));
            }
            match parse_decimal(value) {
                Some(n) => content_length = Some(n),
                None => return Err(RequestError::InvalidFraming("invalid Content-Length")),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if transfer_encoding.is_some() {
                return Err(RequestError::InvalidFraming(
                    "more than one Transfer-Encoding",
                ));
            }
            transfer_encoding = Some(value_span);
        } else if name.eq_ignore_ascii_case(b"connection") {
            conn_close |= list_contains(value, b"close");
            conn_keep_alive |= list_contains(value, b"keep-alive");
        } else if name.eq_ignore_ascii_case(b"expect") && version == Version::Http11 {
            if value.eq_ignore_ascii_case(b"100-continue") {
                expects_continue = true;
            } else {
                bad_expect = true;
            }
        }
        pos = lf + 1;
    }

    let framing = match (transfer_encoding, content_length) {
        (Some(_), Some(_)) => {
            return Err(RequestError::InvalidFraming(
                "both Transfer-Encoding and Content-Length",
            ))
        }
        (Some(te), None) => {
            if version == Version::Http10 {
                return Err(RequestError::InvalidFraming(
                    "Transfer-Encoding on HTTP/1.0",
                ));
            }
            check_transfer_encoding(te.get(head))?;
            BodyFraming::Chunked
        }
        (None, Some(n)) => BodyFraming::Length(n),
        (None, None) => BodyFraming::None,
    };
    if version == Version::Http11 && hosts == 0 {
        return Err(RequestError::InvalidHost("missing Host on HTTP/1.1"));
    }
    if bad_expect {
        return Err(RequestError::ExpectationFailed);
    }
    let keep_alive = match version {
        // (HTTP/2 is never parsed from a request line: see `into_h2`.)
        Version::Http11 | Version::Http2 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };
    Ok(RequestHead {
        buf: Bytes::new(),
        method: rl.method,
        target: rl.target,
        path: rl.path,
        query: rl.query,
        version,
        headers,
        host: rl.authority.or(host),
        framing,
        keep_alive,
        expects_continue,
    })
}

impl RequestHead {
    /// The method token as sent, e.g. `b"GET"`.
    pub fn method(&self) -> &[u8] {
        self.method.get(&self.buf)
    }
    /// The raw request-target as sent (`RAW_URI`/`REQUEST_URI`).
    pub fn target(&self) -> &[u8] {
        self.target.get(&self.buf)
    }
    /// The path part of the target, still percent-encoded (for absolute-form, the path after
    /// the authority, `/` when it has none; for `*`, `*`). Its `%XX` escapes are valid.
    pub fn path(&self) -> &[u8] {
        if self.path.start == self.path.end {
            b"/"
        } else {
            self.path.get(&self.buf)
        }
    }
    /// The query after `?`, without it; empty when there is none.
    pub fn query(&self) -> &[u8] {
        self.query.get(&self.buf)
    }
    pub fn version(&self) -> Version {
        self.version
    }
    /// Header fields in order: the name as sent (case kept), the value without surrounding
    /// SP/HTAB.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.headers
            .iter()
            .map(|(n, v)| (n.get(&self.buf), v.get(&self.buf)))
    }
    /// The first field named `name` (ASCII case-insensitive), if any.
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
    /// Number of header fields.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }
    /// The authority: the absolute-form target's authority if any, else the Host header (`None`
    /// when absent or empty).
    pub fn host(&self) -> Option<&[u8]> {
        self.host.map(|s| s.get(&self.buf))
    }
    pub fn framing(&self) -> BodyFraming {
        self.framing
    }
    /// What the client asked for: HTTP/1.1 without `Connection: close`, or HTTP/1.0 with
    /// `Connection: keep-alive`.
    pub fn wants_keep_alive(&self) -> bool {
        self.keep_alive
    }
    /// `Expect: 100-continue` was sent (HTTP/1.1 only).
    pub fn expects_continue(&self) -> bool {
        self.expects_continue
    }
    /// The method is HEAD (the response carries no body).
    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }
    /// `"GET /path HTTP/1.1"`: the request as log lines name it (method and target as sent,
    /// the protocol as reported to the app).
    pub fn summary(&self) -> String {
        format!(
            "{} {} {}",
            String::from_utf8_lossy(self.method()),
            String::from_utf8_lossy(self.target()),
            self.version().as_str()
        )
    }

    /// A cheap handle on the request line for log lines written later or on another thread
    /// (the watchdog, a panic report): it shares the head's bytes (no allocation, no copy) and
    /// formats as [`RequestHead::summary`] does.
    pub fn line(&self) -> RequestSummary {
        RequestSummary {
            buf: self.buf.clone(),
            method: self.method,
            target: self.target,
            version: self.version,
        }
    }

    /// The whole head as received (request line through the blank line).
    pub fn as_bytes(&self) -> &Bytes {
        &self.buf
    }

    /// Marks a head rebuilt from an HTTP/2 header block (serialised as HTTP/1.1 and parsed by
    /// [`parse_head`], so the same rules apply) as an HTTP/2 stream: version `HTTP/2`, no
    /// connection-level keep-alive decision (streams do not close their connection), and no
    /// `100 Continue` to send (hyper's HTTP/2 server has no interim responses; a client that
    /// waits for one sends its body after its own timeout).
    pub(crate) fn into_h2(mut self) -> RequestHead {
        self.version = Version::Http2;
        self.keep_alive = true;
        self.expects_continue = false;
        self
    }

    /// The same head with every `name` field dropped and one `name: value` field appended (the
    /// server's own `X-Request-ID`, `middleware::request_id`). For fields the parser does not
    /// interpret: framing, `Host`, `Connection` and `Expect` were decided when the head was
    /// parsed and are not revisited. `value` must be a valid field value (no CR, LF or NUL).
    /// The bytes are re-serialised (`name: value` CRLF per field), so [`RequestHead::as_bytes`]
    /// shows the head the app sees.
    pub fn with_field(&self, name: &[u8], value: &[u8]) -> RequestHead {
        let blank = if self.buf.ends_with(b"\r\n") { 2 } else { 1 };
        let line_end = self
            .headers
            .first()
            .map_or(self.buf.len().saturating_sub(blank), |(n, _)| {
                n.start as usize
            });
        let mut buf = Vec::with_capacity(self.buf.len() + name.len() + value.len() + 6);
        buf.extend_from_slice(&self.buf[..line_end]);
        let mut head = self.clone();
        head.headers.clear();
        let fields = self
            .headers
            .iter()
            .map(|&(n, v)| (n.get(&self.buf), v.get(&self.buf), Some(v)))
            .filter(|(n, _, _)| !n.eq_ignore_ascii_case(name))
            .chain(std::iter::once((name, value, None)));
        for (n, v, old_value) in fields {
            let n_start = buf.len();
            buf.extend_from_slice(n);
            let n_span = Span::new(n_start, buf.len());
            buf.extend_from_slice(b": ");
            let v_start = buf.len();
            buf.extend_from_slice(v);
            let v_span = Span::new(v_start, buf.len());
            buf.extend_from_slice(b"\r\n");
            if old_value.is_some() && old_value == self.host {
                head.host = Some(v_span);
            }
            head.headers.push((n_span, v_span));
        }
        buf.extend_from_slice(b"\r\n");
        head.buf = Bytes::from(buf);
        head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        request_line: 8190,
        fields: 100,
        field_size: 8190,
        head: 64 * 1024,
    };

    /// Parses `input` given whole; returns the head and what is left in the buffer.
    fn parse_whole(
        input: &[u8],
        limits: &HeadLimits,
    ) -> Result<(RequestHead, Vec<u8>), RequestError> {
        let mut buf = BytesMut::from(input);
        match parse_head(&mut buf, limits)? {
            Parsed::Complete(head) => Ok((head, buf.to_vec())),
            Parsed::Partial => panic!("partial: {:?}", String::from_utf8_lossy(input)),
        }
    }

    /// Feeds `input` one byte at a time; every prefix before the end must be Partial (or fail).
    fn parse_bytewise(
        input: &[u8],
        limits: &HeadLimits,
    ) -> Result<(RequestHead, Vec<u8>), RequestError> {
        parse_split(input, limits, 1)
            .unwrap_or_else(|| panic!("never complete: {:?}", String::from_utf8_lossy(input)))
    }

    type Answer = Option<Result<(RequestHead, Vec<u8>), RequestError>>;

    /// Feeds `input` in pieces of `step` bytes: `None` if it never completes.
    fn parse_split(input: &[u8], limits: &HeadLimits, step: usize) -> Answer {
        crate::parsed::feed_in_pieces(input, step, |buf| parse_head(buf, limits))
    }

    /// Head bytes and the rest of the buffer, or the error status.
    type Comparable = Option<Result<(Vec<u8>, Vec<u8>), u16>>;

    /// An answer in comparable form.
    fn comparable(answer: Answer) -> Comparable {
        answer.map(|r| {
            r.map(|(h, rest)| (h.as_bytes().to_vec(), rest))
                .map_err(|e| e.status())
        })
    }

    /// Every split of `input` gets the same answer as `input` given whole.
    fn assert_split_independent(input: &[u8], limits: &HeadLimits) {
        let whole = comparable(parse_split(input, limits, usize::MAX));
        for step in [1, 2, 3, 5, 7, 13, 64] {
            let split = comparable(parse_split(input, limits, step));
            assert_eq!(
                split,
                whole,
                "step {step}: {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    fn parse(input: &[u8]) -> RequestHead {
        let (a, rest_a) = parse_whole(input, &LIMITS).unwrap();
        let (b, rest_b) = parse_bytewise(input, &LIMITS).unwrap();
        assert_eq!(rest_a, rest_b);
        assert_eq!(a.as_bytes(), b.as_bytes());
        assert_split_independent(input, &LIMITS);
        a
    }

    /// The status of the error `input` gets, whole and in every split (must agree).
    fn reject(input: &[u8], limits: &HeadLimits) -> u16 {
        let whole = match parse_whole(input, limits) {
            Err(e) => e.status(),
            Ok(_) => panic!("accepted: {:?}", String::from_utf8_lossy(input)),
        };
        assert_split_independent(input, limits);
        whole
    }

    #[test]
    fn simple_get() {
        let h = parse(
            b"GET /a/b%20c?x=1&y HTTP/1.1\r\nHost: example.com:8080\r\nX-Thing:  v a l \r\n\r\n",
        );
        assert_eq!(h.method(), b"GET");
        assert_eq!(h.target(), b"/a/b%20c?x=1&y");
        assert_eq!(h.path(), b"/a/b%20c");
        assert_eq!(h.query(), b"x=1&y");
        assert_eq!(h.version(), Version::Http11);
        assert_eq!(h.host(), Some(&b"example.com:8080"[..]));
        assert_eq!(h.framing(), BodyFraming::None);
        assert!(h.wants_keep_alive());
        assert!(!h.expects_continue());
        assert!(!h.is_head());
        let headers: Vec<_> = h.headers().collect();
        assert_eq!(
            headers,
            vec![
                (&b"Host"[..], &b"example.com:8080"[..]),
                (&b"X-Thing"[..], &b"v a l"[..])
            ]
        );
        assert_eq!(h.header(b"x-thing"), Some(&b"v a l"[..]));
        assert_eq!(h.header_count(), 2);
        assert_eq!(h.summary(), "GET /a/b%20c?x=1&y HTTP/1.1");
        assert_eq!(h.line().to_string(), h.summary());
    }

    #[test]
    fn accessors_table() {
        // (input, path, query, host, framing, keep_alive, continue, head)
        type Row = (
            &'static [u8],
            &'static [u8],
            &'static [u8],
            Option<&'static [u8]>,
            BodyFraming,
            bool,
            bool,
            bool,
        );
        let rows: &[Row] = &[
            (
                b"GET / HTTP/1.0\r\n\r\n",
                b"/",
                b"",
                None,
                BodyFraming::None,
                false,
                false,
                false,
            ),
            (
                b"GET /? HTTP/1.0\r\n\r\n",
                b"/",
                b"",
                None,
                BodyFraming::None,
                false,
                false,
                false,
            ),
            (
                b"GET /?a?b HTTP/1.0\r\n\r\n",
                b"/",
                b"a?b",
                None,
                BodyFraming::None,
                false,
                false,
                false,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                b"/",
                b"",
                None,
                BodyFraming::None,
                true,
                false,
                false,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                b"/",
                b"",
                None,
                BodyFraming::None,
                false,
                false,
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, CLOSE\r\n\r\n",
                b"/",
                b"",
                Some(b"h"),
                BodyFraming::None,
                false,
                false,
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                b"/",
                b"",
                Some(b"h"),
                BodyFraming::None,
                false,
                false,
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
                b"/",
                b"",
                None,
                BodyFraming::None,
                true,
                false,
                false,
            ),
            (
                b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n",
                b"/x",
                b"",
                Some(b"h"),
                BodyFraming::None,
                true,
                false,
                true,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
                b"/",
                b"",
                Some(b"h"),
                BodyFraming::Length(0),
                true,
                false,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\ncontent-length: 0012\r\n\r\n",
                b"/",
                b"",
                Some(b"h"),
                BodyFraming::Length(12),
                true,
                false,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n",
                b"/",
                b"",
                Some(b"h"),
                BodyFraming::Chunked,
                true,
                false,
                false,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
                b"/",
                b"",
                Some(b"h"),
                BodyFraming::Length(3),
                true,
                true,
                false,
            ),
            // HTTP/1.0: Expect is ignored (RFC 9110 §10.1.1), whatever its value.
            (
                b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
                b"/",
                b"",
                None,
                BodyFraming::None,
                false,
                false,
                false,
            ),
            (
                b"POST / HTTP/1.0\r\nExpect: teapot\r\n\r\n",
                b"/",
                b"",
                None,
                BodyFraming::None,
                false,
                false,
                false,
            ),
            // absolute-form: the authority wins over Host.
            (
                b"GET http://Example.org:81/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
                b"/p",
                b"q",
                Some(b"Example.org:81"),
                BodyFraming::None,
                true,
                false,
                false,
            ),
            (
                b"GET HTTPS://example.org HTTP/1.1\r\nHost: other\r\n\r\n",
                b"/",
                b"",
                Some(b"example.org"),
                BodyFraming::None,
                true,
                false,
                false,
            ),
            (
                b"GET http://example.org?x=1 HTTP/1.1\r\nHost: example.org\r\n\r\n",
                b"/",
                b"x=1",
                Some(b"example.org"),
                BodyFraming::None,
                true,
                false,
                false,
            ),
            (
                b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
                b"*",
                b"",
                Some(b"h"),
                BodyFraming::None,
                true,
                false,
                false,
            ),
            (
                b"GET /[::1]/x HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n",
                b"/[::1]/x",
                b"",
                Some(b"[::1]:8000"),
                BodyFraming::None,
                true,
                false,
                false,
            ),
            // leading empty lines are skipped
            (
                b"\r\n\r\nGET /e HTTP/1.0\r\n\r\n",
                b"/e",
                b"",
                None,
                BodyFraming::None,
                false,
                false,
                false,
            ),
        ];
        for (input, path, query, host, framing, keep_alive, cont, is_head) in rows {
            let h = parse(input);
            let what = String::from_utf8_lossy(input);
            assert_eq!(h.path(), *path, "{what}");
            assert_eq!(h.query(), *query, "{what}");
            assert_eq!(h.host(), *host, "{what}");
            assert_eq!(h.framing(), *framing, "{what}");
            assert_eq!(h.wants_keep_alive(), *keep_alive, "{what}");
            assert_eq!(h.expects_continue(), *cont, "{what}");
            assert_eq!(h.is_head(), *is_head, "{what}");
        }
    }

    #[test]
    fn values_keep_obs_text_and_untrimmed_non_rfc_whitespace() {
        let h = parse(b"GET / HTTP/1.1\r\nHost: h\r\nX: \xa0\x85v\xe9\xa0 \t\r\nY:\t\r\n\r\n");
        assert_eq!(h.header(b"x"), Some(&b"\xa0\x85v\xe9\xa0"[..]));
        assert_eq!(h.header(b"y"), Some(&b""[..]));
        let h = parse(b"GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 1\r\n\r\n");
        assert_eq!(
            h.headers().nth(1),
            Some((&b"X_Forwarded_For"[..], &b"1"[..]))
        );
    }

    #[test]
    fn pipelined_heads_in_one_buffer() {
        let input = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\r\nGET /c HTTP/1.0\r\n\r\nGET /d";
        let mut buf = BytesMut::from(&input[..]);
        let Parsed::Complete(a) = parse_head(&mut buf, &LIMITS).unwrap() else {
            panic!()
        };
        assert_eq!(a.target(), b"/a");
        let Parsed::Complete(b) = parse_head(&mut buf, &LIMITS).unwrap() else {
            panic!()
        };
        assert_eq!(b.target(), b"/b");
        assert_eq!(b.framing(), BodyFraming::Length(5));
        assert!(buf.starts_with(b"hello"));
        buf.advance(5);
        // A stray CRLF after a body is an allowed empty line.
        let Parsed::Complete(c) = parse_head(&mut buf, &LIMITS).unwrap() else {
            panic!()
        };
        assert_eq!(c.target(), b"/c");
        assert!(matches!(
            parse_head(&mut buf, &LIMITS).unwrap(),
            Parsed::Partial
        ));
        assert_eq!(&buf[..], b"GET /d");
        // The heads stay valid after the buffer moved on.
        assert_eq!(a.method(), b"GET");
        assert_eq!(b.header(b"content-length"), Some(&b"5"[..]));
    }

    #[test]
    fn partial_until_blank_line() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r";
        let mut buf = BytesMut::from(&input[..]);
        assert!(matches!(
            parse_head(&mut buf, &LIMITS).unwrap(),
            Parsed::Partial
        ));
        assert_eq!(buf.len(), input.len(), "nothing consumed on Partial");
        buf.extend_from_slice(b"\n");
        assert!(matches!(
            parse_head(&mut buf, &LIMITS).unwrap(),
            Parsed::Complete(_)
        ));
        assert!(buf.is_empty());
        let mut empty = BytesMut::new();
        assert!(matches!(
            parse_head(&mut empty, &LIMITS).unwrap(),
            Parsed::Partial
        ));
        let mut crlf = BytesMut::from(&b"\r\n\r\n"[..]);
        assert!(matches!(
            parse_head(&mut crlf, &LIMITS).unwrap(),
            Parsed::Partial
        ));
    }

    #[test]
    fn rejections() {
        let rows: &[(&[u8], u16)] = &[
            // line endings
            (b"GET / HTTP/1.1\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\n\n", 400),
            (b"GET / HTTP/1.1\rHost: h\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", 400),
            (b"GET /\r HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n", 400),
            // request line
            (b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400),
            (b" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"G\x00T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET /\xe9 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET /a%2 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"OPTIONS *? HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            (b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 501),
            (b"GET /\r\n\r\n", 400),
            (b"GET / \r\n\r\n", 400),
            (b"GET / http/1.1\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/1\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/2\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
            (b"GET / HTTP/0.9\r\n\r\n", 505),
            (b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505),
            // field lines
            (b"GET / HTTP/1.1\r\nHost: h\r\nX : y\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX\t: y\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: y\r\n z\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: y\r\n\tz\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX\x00: y\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fb\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX: \x0bb\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX\xe9: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nX-\"q\": b\r\n\r\n", 400),
            // Host
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET http://h/ HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: user@h\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h/x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h:x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: h\xe9\r\n\r\n", 400),
            // framing
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\xa0\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent_Length: 5\r\nContent-Length: 1\r\n\r\n", 0),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;x=1\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\x0b\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
            // expectations
            (b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, foo\r\n\r\n", 417),
            (b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n", 417),
        ];
        for (input, status) in rows {
            if *status == 0 {
                // `Content_Length` is an ordinary (non-framing) field.
                assert_eq!(parse(input).framing(), BodyFraming::Length(1));
                continue;
            }
            assert_eq!(
                reject(input, &LIMITS),
                *status,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn request_line_limit() {
        let limits = HeadLimits {
            request_line: 20,
            ..LIMITS
        };
        // "GET /" + 11 x + " HTTP/1.0" = 25? build exactly at the limit instead.
        let at_limit = format!("GET /{} HTTP/1.0", "x".repeat(20 - 14));
        assert_eq!(at_limit.len(), 20);
        parse_whole(format!("{at_limit}\r\n\r\n").as_bytes(), &limits).unwrap();
        parse_bytewise(format!("{at_limit}\r\n\r\n").as_bytes(), &limits).unwrap();
        let over = format!("GET /{} HTTP/1.0\r\n\r\n", "x".repeat(7));
        assert_eq!(reject(over.as_bytes(), &limits), 414);
        // No CRLF at all: refused as soon as the limit is passed, not at the end of the line.
        let mut buf = BytesMut::from(&b"GET /"[..]);
        buf.extend_from_slice(&[b'a'; 15]);
        assert!(matches!(parse_head(&mut buf, &limits), Ok(Parsed::Partial)));
        let mut with_cr = buf.clone();
        with_cr.extend_from_slice(b"\r");
        assert!(matches!(
            parse_head(&mut with_cr, &limits),
            Ok(Parsed::Partial)
        ));
        buf.extend_from_slice(b"a");
        assert_eq!(
            parse_head(&mut buf, &limits).unwrap_err(),
            RequestError::RequestLineTooLong
        );
        // A 10 MB line with the default limits.
        let mut big = BytesMut::from(&b"GET /"[..]);
        big.extend_from_slice(&vec![b'a'; 10 * 1024 * 1024]);
        assert_eq!(
            parse_head(&mut big, &LIMITS).unwrap_err(),
            RequestError::RequestLineTooLong
        );
    }

    #[test]
    fn field_limits() {
        let limits = HeadLimits {
            fields: 3,
            field_size: 10,
            head: 200,
            ..LIMITS
        };
        // 3 fields OK, 4 too many.
        parse_whole(b"GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", &limits).unwrap();
        assert_eq!(
            reject(
                b"GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
                &limits
            ),
            431
        );
        // field line of exactly 10 bytes OK, 11 too large.
        parse_whole(b"GET / HTTP/1.0\r\nA: 3456789\r\n\r\n", &limits).unwrap();
        assert_eq!(
            reject(b"GET / HTTP/1.0\r\nA: 34567890\r\n\r\n", &limits),
            431
        );
        // An unterminated field line past the limit fails while partial.
        let mut buf = BytesMut::from(&b"GET / HTTP/1.0\r\nA: 34567890"[..]);
        assert_eq!(
            parse_head(&mut buf, &limits).unwrap_err(),
            RequestError::FieldTooLarge
        );
        // Too many complete field lines fail while partial.
        let mut buf = BytesMut::from(&b"GET / HTTP/1.0\r\nA: 1\r\nA: 1\r\nA: 1\r\nA: 1\r\n"[..]);
        assert_eq!(
            parse_head(&mut buf, &limits).unwrap_err(),
            RequestError::TooManyFields
        );
    }

    #[test]
    fn head_limit() {
        let limits = HeadLimits { head: 40, ..LIMITS };
        let ok = b"GET / HTTP/1.0\r\nA: 12345678901234567\r\n\r\n";
        assert_eq!(ok.len(), 40);
        parse_whole(ok, &limits).unwrap();
        parse_bytewise(ok, &limits).unwrap();
        let over = b"GET / HTTP/1.0\r\nA: 123456789012345678\r\n\r\n";
        assert_eq!(reject(over, &limits), 431);
        // Leading empty lines do not count against the head.
        let mut lead = b"\r\n\r\n".to_vec();
        lead.extend_from_slice(ok);
        parse_whole(&lead, &limits).unwrap();
        // Partial: many small fields, no end in sight.
        let mut buf = BytesMut::from(&b"GET / HTTP/1.0\r\n"[..]);
        for _ in 0..5 {
            buf.extend_from_slice(b"A: 1\r\n");
        }
        assert_eq!(
            parse_head(&mut buf, &limits).unwrap_err(),
            RequestError::HeadTooLarge
        );
    }

    #[test]
    fn early_rejection_while_partial() {
        // Errors in the request line or line endings do not wait for the end of the head.
        for prefix in [
            &b"GET / HTTP/1.1\n"[..],
            b"GET / HTTP/1.1\r\nHost: h\n",
            b"BAD LINE\r\n",
            b"GET / HTTP/3.0\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n folded",
        ] {
            let mut buf = BytesMut::from(prefix);
            assert!(
                parse_head(&mut buf, &LIMITS).is_err(),
                "{:?}",
                String::from_utf8_lossy(prefix)
            );
        }
    }

    #[test]
    fn error_kinds() {
        let kind = |input: &[u8]| parse_whole(input, &LIMITS).unwrap_err();
        assert_eq!(
            kind(b"GET / HTTP/1.1\r\n\r\n"),
            RequestError::InvalidHost("missing Host on HTTP/1.1")
        );
        assert_eq!(
            kind(b"GET / HTTP/2.0\r\n\r\n"),
            RequestError::UnsupportedVersion
        );
        assert_eq!(
            kind(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            RequestError::UnsupportedTransferCoding
        );
        assert_eq!(
            kind(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: x\r\n\r\n"),
            RequestError::ExpectationFailed
        );
        // Framing errors win over a bad expectation.
        assert_eq!(
            kind(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: x\r\nContent-Length: 1, 1\r\n\r\n"),
            RequestError::InvalidFraming("invalid Content-Length")
        );
    }

    /// Deterministic mutations of valid heads (insert, replace or drop a byte among the ones
    /// that matter to the grammar): the answer never depends on the split and never panics.
    #[test]
    fn mutations_are_split_independent() {
        let seeds: &[&[u8]] = &[
            b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
            b"POST /u HTTP/1.1\r\nHost: h:1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n0\r\n\r\n",
            b"\r\nPUT http://h/x HTTP/1.0\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc",
            b"OPTIONS * HTTP/1.1\r\nHost: [::1]\r\nX: \xa0v\r\n\r\nGET / HTTP/1.1\r\n",
            // Lines around the small limits below.
            b"GET /abcdefghijklmnop HTTP/1.1\r\nHost: h\r\nUser-Agent: Mozilla/5.0 (X11;)\r\n\r\n",
            b"GET / HTTP/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 567890123456789012345678901\r\n\r\n",
        ];
        let alphabet = b"\r\n \t:\x00\x7f\x80\xff,;a0%/?#@*HTTP/1.";
        let small = HeadLimits {
            request_line: 30,
            fields: 4,
            field_size: 30,
            head: 90,
        };
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..4000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 3 + 1) {
                let at = (next() as usize) % (input.len() + 1);
                let byte = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => input.insert(at, byte),
                    1 if at < input.len() => input[at] = byte,
                    _ if at < input.len() => {
                        input.remove(at);
                    }
                    _ => {}
                }
            }
            assert_split_independent(&input, &small);
            assert_split_independent(&input, &LIMITS);
        }
    }
}
