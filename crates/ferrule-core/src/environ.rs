//! The CGI/WSGI variables of a request (PEP 3333 "environ Variables", CGI RFC 3875 §4.1), built
//! without Python so the rules can be unit-tested. `ferrule-py` only turns the pairs into Python
//! `str`s (latin-1, PEP 3333 "Unicode Issues": "the server must decode the bytes as ISO-8859-1")
//! and adds the `wsgi.*` keys.
//!
//! Rules this module owns:
//! - `REQUEST_METHOD`, `SERVER_PROTOCOL`, `QUERY_STRING` (raw, PEP 3333: "May be empty or
//!   absent" — we always send it, empty when there is no `?`), `RAW_URI`/`REQUEST_URI` (the raw
//!   request-target).
//! - `SCRIPT_NAME` is `""` (the application is mounted at the root) and `PATH_INFO` is the path
//!   percent-decoded to bytes (CGI RFC 3875 §4.1.5: "the value is derived ... after URL-decoding").
//!   A decoded `%2F` becomes `/`, as in every WSGI server; a `%` not followed by two hex digits is
//!   kept literally.
//! - `CONTENT_TYPE`/`CONTENT_LENGTH` only when the client sent them, never as `HTTP_*` (PEP 3333:
//!   "CONTENT_TYPE ... CONTENT_LENGTH ... May be empty or absent"; CGI: they are not
//!   `HTTP_` variables). `CONTENT_LENGTH` is left out for a chunked body, whose length the
//!   application does not know up front (`wsgi.input_terminated` covers it).
//! - `HTTP_*` for every other field: name upper-cased, `-` becomes `_` (RFC 3875 §4.1.18). A
//!   field whose name contains `_` is DROPPED: `X-Forwarded_For` and `X-Forwarded-For` would
//!   otherwise collide and a client could spoof the header a proxy vouches for.
//! - Repeated fields are joined with `,` (RFC 9110 §5.3: "a recipient MAY combine multiple field
//!   lines with the same field name into one ... by appending each subsequent field line value
//!   ... separated by a comma"), except `Cookie`, joined with `; ` (RFC 9113 §8.2.3 and RFC 6265
//!   §5.4: a cookie list is separated by "; ", and a comma is not a cookie separator).
//! - `SERVER_NAME`/`SERVER_PORT` (PEP 3333 "URL Reconstruction" uses them when there is no
//!   `HTTP_HOST`): from the request's authority (absolute-form target or `Host`), its port or,
//!   when it has none, the scheme's default port (the client reached us at that URL); without an
//!   authority (HTTP/1.0 without `Host`), the local address and port the connection came in on.
//!   A bracketed IPv6 literal keeps its brackets, as the URL needs them.
//! - `HTTP_HOST` for an absolute-form target is the target's authority (RFC 9112 §3.2.2: the
//!   received `Host` is ignored), so the app never sees a host the proxy did not route by.
//! - `REMOTE_ADDR`/`REMOTE_PORT`: the peer address (after a PROXY header, the header's
//!   client). Over a Unix socket `REMOTE_ADDR` is empty and `REMOTE_PORT` absent (what
//!   gunicorn reports: the socket has no peer address), and without an authority
//!   `SERVER_NAME` is `localhost` with the scheme's default port.
//! - Trusted forwarding (`crate::forwarded`): from a trusted proxy, `REMOTE_ADDR`/`REMOTE_PORT`
//!   (when the proxy gave no client port, `REMOTE_PORT` stays the connection's, as Werkzeug's
//!   `ProxyFix` leaves it: apps read the key unconditionally), the scheme
//!   (`wsgi.url_scheme`, `HTTPS`), `HTTP_HOST`/`SERVER_NAME`/`SERVER_PORT` and `SCRIPT_NAME`
//!   (`X-Forwarded-Prefix`) are the proxy's. `PATH_INFO` stays the path received: the proxy
//!   already removed the prefix it announces (that is what the header means), so the app's
//!   URL is `SCRIPT_NAME + PATH_INFO`. From an untrusted peer every header of
//!   `forwarded::FORWARDING_HEADERS` is dropped.
//! - `HTTPS=on` when the effective scheme is `https` (what Django, Flask and CGI code read);
//!   over TLS, `SSL_CLIENT_VERIFY` is `SUCCESS` with a verified client certificate (and
//!   `SSL_CLIENT_S_DN` its subject, RFC 4514), else `NONE` (mod_ssl's names and values).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use crate::exchange::{ClientCert, ConnInfo};
use crate::forwarded::{is_forwarding_header, ForwardedView};
use crate::http1::{BodyFraming, RequestHead};
use crate::short_bytes::ShortBytes;

/// The CGI keys whose names never change, so the binding can intern each once per thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgiKey {
    RequestMethod,
    ScriptName,
    PathInfo,
    QueryString,
    ContentType,
    ContentLength,
    ServerName,
    ServerPort,
    ServerProtocol,
    RemoteAddr,
    RemotePort,
    RawUri,
    RequestUri,
}

impl CgiKey {
    /// Every key, indexed by `key as usize`.
    pub const ALL: [CgiKey; 13] = [
        CgiKey::RequestMethod,
        CgiKey::ScriptName,
        CgiKey::PathInfo,
        CgiKey::QueryString,
        CgiKey::ContentType,
        CgiKey::ContentLength,
        CgiKey::ServerName,
        CgiKey::ServerPort,
        CgiKey::ServerProtocol,
        CgiKey::RemoteAddr,
        CgiKey::RemotePort,
        CgiKey::RawUri,
        CgiKey::RequestUri,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CgiKey::RequestMethod => "REQUEST_METHOD",
            CgiKey::ScriptName => "SCRIPT_NAME",
            CgiKey::PathInfo => "PATH_INFO",
            CgiKey::QueryString => "QUERY_STRING",
            CgiKey::ContentType => "CONTENT_TYPE",
            CgiKey::ContentLength => "CONTENT_LENGTH",
            CgiKey::ServerName => "SERVER_NAME",
            CgiKey::ServerPort => "SERVER_PORT",
            CgiKey::ServerProtocol => "SERVER_PROTOCOL",
            CgiKey::RemoteAddr => "REMOTE_ADDR",
            CgiKey::RemotePort => "REMOTE_PORT",
            CgiKey::RawUri => "RAW_URI",
            CgiKey::RequestUri => "REQUEST_URI",
        }
    }
}

/// An environ key: a fixed CGI name or `HTTP_` + the transformed field name (ASCII).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvKey {
    Cgi(CgiKey),
    /// The full key, `HTTP_` included, e.g. `b"HTTP_USER_AGENT"` (inline when short).
    Http(ShortBytes),
    /// A key some requests have (`HTTPS`, `SSL_CLIENT_VERIFY`, `SSL_CLIENT_S_DN`).
    Other(&'static str),
}

/// One environ entry; the value is bytes the binding decodes as latin-1.
pub type EnvVar<'a> = (EnvKey, Cow<'a, [u8]>);

/// What the environ is computed from: the parts of a request, borrowed. Built from a
/// request's head by [`request_parts`]; tests build it directly.
#[derive(Debug, Clone)]
pub struct RequestParts<'a, H> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    /// Still percent-encoded.
    pub path: &'a [u8],
    pub query: &'a [u8],
    pub protocol: &'static str,
    /// The authority (absolute-form) or the `Host` field value.
    pub host: Option<&'a [u8]>,
    /// Field lines in order (name as sent, value trimmed).
    pub headers: H,
    pub chunked: bool,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub scheme: &'a str,
    /// Over a Unix socket (see the module docs).
    pub unix: bool,
    /// The peer is not trusted: forwarding headers are dropped.
    pub strip_forwarding: bool,
    /// What a trusted proxy's forwarding headers say.
    pub forwarded: Option<&'a ForwardedView>,
    /// The connection is TLS (`SSL_CLIENT_VERIFY`).
    pub tls: bool,
    pub client_cert: Option<&'a ClientCert>,
}

/// The parts of a parsed request (the head and where the connection came from).
pub fn request_parts<'a>(
    head: &'a RequestHead,
    conn: &'a ConnInfo,
) -> RequestParts<'a, impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a> {
    request_parts_forwarded(head, conn, None)
}

/// [`request_parts`] with what a trusted proxy said ([`crate::exchange::Request::forwarded`]).
pub fn request_parts_forwarded<'a>(
    head: &'a RequestHead,
    conn: &'a ConnInfo,
    forwarded: Option<&'a ForwardedView>,
) -> RequestParts<'a, impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a> {
    RequestParts {
        method: head.method(),
        target: head.target(),
        path: head.path(),
        query: head.query(),
        protocol: head.version().as_str(),
        host: head.host(),
        headers: head.headers(),
        chunked: head.framing() == BodyFraming::Chunked,
        peer: conn.peer,
        local: conn.local,
        scheme: effective_scheme(conn, forwarded),
        unix: conn.unix,
        strip_forwarding: !conn.forwarding_trusted,
        forwarded,
        tls: conn.scheme == "https",
        client_cert: conn.client_cert.as_deref(),
    }
}

/// `wsgi.url_scheme`: a trusted proxy's, else the connection's.
pub fn effective_scheme(conn: &ConnInfo, forwarded: Option<&ForwardedView>) -> &'static str {
    match forwarded.and_then(|f| f.scheme) {
        Some(s) => s.as_str(),
        None => conn.scheme,
    }
}

/// The CGI variables of a request (everything but the `wsgi.*` keys).
pub fn cgi_variables<'a, H>(parts: RequestParts<'a, H>) -> Vec<EnvVar<'a>>
where
    H: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut vars: Vec<EnvVar<'a>> = Vec::with_capacity(24);
    let mut push = |k: CgiKey, v: Cow<'a, [u8]>| vars.push((EnvKey::Cgi(k), v));
    let fwd = parts.forwarded;
    push(CgiKey::RequestMethod, Cow::Borrowed(parts.method));
    match fwd.and_then(|f| f.script_name.as_deref()) {
        Some(prefix) => push(CgiKey::ScriptName, Cow::Borrowed(prefix)),
        None => push(CgiKey::ScriptName, Cow::Borrowed(b"")),
    }
    push(CgiKey::PathInfo, percent_decode(parts.path));
    push(CgiKey::QueryString, Cow::Borrowed(parts.query));
    push(
        CgiKey::ServerProtocol,
        Cow::Borrowed(parts.protocol.as_bytes()),
    );
    push(CgiKey::RawUri, Cow::Borrowed(parts.target));
    push(CgiKey::RequestUri, Cow::Borrowed(parts.target));
    match fwd.and_then(|f| f.client) {
        Some(client) => {
            push(CgiKey::RemoteAddr, Cow::Owned(ip_text(client.addr)));
            let port = client.port.unwrap_or(parts.peer.port());
            push(CgiKey::RemotePort, Cow::Owned(port_text(port)));
        }
        None if parts.unix => push(CgiKey::RemoteAddr, Cow::Borrowed(b"")),
        None => {
            push(CgiKey::RemoteAddr, Cow::Owned(ip_text(parts.peer.ip())));
            push(CgiKey::RemotePort, Cow::Owned(port_text(parts.peer.port())));
        }
    }
    let fwd_host = fwd.and_then(|f| f.host.as_deref());
    let host = fwd_host.or(parts.host);
    let (name, port) = if host.is_none() && parts.unix {
        (
            Cow::Borrowed(&b"localhost"[..]),
            Cow::Borrowed(default_port(parts.scheme).as_bytes()),
        )
    } else {
        server_name_port(host, parts.local, parts.scheme)
    };
    push(CgiKey::ServerName, name);
    match fwd.and_then(|f| f.port) {
        Some(p) => push(CgiKey::ServerPort, Cow::Owned(port_text(p))),
        None => push(CgiKey::ServerPort, port),
    }
    if parts.scheme == "https" {
        vars.push((EnvKey::Other("HTTPS"), Cow::Borrowed(b"on")));
    }
    if parts.tls {
        match parts.client_cert {
            Some(cert) => {
                vars.push((
                    EnvKey::Other("SSL_CLIENT_VERIFY"),
                    Cow::Borrowed(b"SUCCESS"),
                ));
                vars.push((
                    EnvKey::Other("SSL_CLIENT_S_DN"),
                    Cow::Borrowed(cert.subject.as_bytes()),
                ));
            }
            None => vars.push((EnvKey::Other("SSL_CLIENT_VERIFY"), Cow::Borrowed(b"NONE"))),
        }
    }
    let mut host_seen = false;
    // Where the `HTTP_*` entries start: a header's earlier occurrence is searched from here
    // (`CONTENT_TYPE`, a CGI key, is searched from the start).
    let first_http = vars.len();

    let mut content_length_seen = false;
    for (name, value) in parts.headers {
        if name.eq_ignore_ascii_case(b"content-length") {
            // The codec has checked the value (and that repeats agree); a chunked body has no
            // length to report.
            if !content_length_seen && !parts.chunked {
                vars.push((EnvKey::Cgi(CgiKey::ContentLength), Cow::Borrowed(value)));
            }
            content_length_seen = true;
            continue;
        }
        // RFC 9112 §3.2.2: with an absolute-form target "the server MUST ignore the received
        // Host header field (if any) and instead use the host information of the
        // request-target": `HTTP_HOST` (read first by PEP 3333 URL reconstruction) says the
        // target's authority, not what a client put in `Host`.
        let value = if name.eq_ignore_ascii_case(b"host") {
            host_seen = true;
            host.unwrap_or(value)
        } else {
            if parts.strip_forwarding
                && matches!(name.first(), Some(b'f' | b'F' | b'x' | b'X'))
                && is_forwarding_header(name)
            {
                continue;
            }
            value
        };
        let key = if name.eq_ignore_ascii_case(b"content-type") {
            EnvKey::Cgi(CgiKey::ContentType)
        } else {
            match http_key(name) {
                Some(key) => EnvKey::Http(key),
                None => continue,
            }
        };
        let separator: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
            b"; "
        } else {
            b","
        };
        let from = if matches!(key, EnvKey::Http(_)) {
            first_http
        } else {
            0
        };
        match vars[from..].iter_mut().find(|(k, _)| *k == key) {
            Some((_, joined)) => {
                let joined = joined.to_mut();
                joined.extend_from_slice(separator);
                joined.extend_from_slice(value);
            }
            None => vars.push((key, Cow::Borrowed(value))),
        }
    }
    // A proxy's host for a request that had no `Host` (HTTP/1.0).
    if let (false, Some(h)) = (host_seen, fwd_host) {
        vars.push((
            EnvKey::Http(ShortBytes::new(b"HTTP_HOST")),
            Cow::Borrowed(h),
        ));
    }
    vars
}

/// `HTTP_` + the field name upper-cased with `-` → `_`; `None` for names that cannot map to a
/// CGI meta-variable name one-to-one.
///
/// RFC 3875 §4.1.18 builds the name by upper-casing and replacing `-` with `_`, which is only
/// unambiguous for names made of letters, digits and `-`. A field name may also hold `_` and the
/// other token characters (`!#$%&'*+.^`|~`, RFC 9110 §5.6.2): `X_Forwarded_For` would collide with
/// `X-Forwarded-For` (a spoofing path behind proxies that strip only the `-` form), and `X.Y~`
/// would give a key that is no valid CGI name. Such fields are dropped, never passed on.
fn http_key(name: &[u8]) -> Option<ShortBytes> {
    let mut mappable = true;
    let key = ShortBytes::filled(5 + name.len(), |key| {
        key[..5].copy_from_slice(b"HTTP_");
        for (out, &b) in key[5..].iter_mut().zip(name) {
            *out = CGI_NAME_BYTE[usize::from(b)];
            mappable &= *out != 0;
        }
    });
    mappable.then_some(key)
}

/// A field-name byte's byte in its CGI name (ASCII letters upper-cased, digits kept, `-` → `_`),
/// or 0 for a byte with no one-to-one mapping (see [`http_key`]).
static CGI_NAME_BYTE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = if b.is_ascii_alphanumeric() {
            b.to_ascii_uppercase()
        } else if b == b'-' {
            b'_'
        } else {
            0
        };
        i += 1;
    }
    table
};

/// Percent-decoding of the path (RFC 3986 §2.1), the codec's: one implementation for
/// `PATH_INFO`, uwsgi's `PATH_INFO` and static-file paths.
pub use crate::http1::percent_decode;

/// `SERVER_NAME` and `SERVER_PORT` (see the module docs).
fn server_name_port<'a>(
    host: Option<&'a [u8]>,
    local: SocketAddr,
    scheme: &str,
) -> (Cow<'a, [u8]>, Cow<'a, [u8]>) {
    if let Some((name, port)) = host.and_then(split_authority) {
        let port = match port {
            Some(port) => Cow::Borrowed(port),
            None => Cow::Borrowed(default_port(scheme).as_bytes()),
        };
        return (Cow::Borrowed(name), port);
    }
    (
        Cow::Owned(ip_text(local.ip())),
        Cow::Owned(port_text(local.port())),
    )
}

/// An address as text (`127.0.0.1`, `::1`), as `Display` writes it. IPv4, the common case,
/// is written octet by octet into place: the formatting machinery cost more than the rest of
/// the environ's CGI variables together (docs/architecture.md, "Where the time goes").
fn ip_text(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => {
            // At most `255.255.255.255`; copied out once.
            let mut text = [0u8; 15];
            let mut len = 0;
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                let octet = digits.format(octet).as_bytes();
                text[len..len + octet.len()].copy_from_slice(octet);
                len += octet.len();
            }
            text[..len].to_vec()
        }
        IpAddr::V6(v6) => v6.to_string().into_bytes(),
    }
}

/// A port number in decimal.
fn port_text(port: u16) -> Vec<u8> {
    itoa::Buffer::new().format(port).as_bytes().to_vec()
}

fn default_port(scheme: &str) -> &'static str {
    if scheme == "https" {
        "443"
    } else {
        "80"
    }
}

/// Splits `host[:port]` / `[v6][:port]`; `None` when empty or the port is not digits.
fn split_authority(authority: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (name, rest) = if authority.first() == Some(&b'[') {
        let close = authority.iter().position(|&b| b == b']')?;
        authority.split_at(close + 1)
    } else {
        match authority.iter().rposition(|&b| b == b':') {
            Some(colon) => authority.split_at(colon),
            None => (authority, &b""[..]),
        }
    };
    if name.is_empty() {
        return None;
    }
    match rest {
        [] => Some((name, None)),
        [b':', port @ ..] if !port.is_empty() && port.iter().all(u8::is_ascii_digit) => {
            Some((name, Some(port)))
        }
        // `host:` (empty port) means the default port (RFC 3986 §3.2.3).
        [b':'] => Some((name, None)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ports_read_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "::1",
            "fe80::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string().into_bytes());
        }
        for o in 0..=255u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(o, 255 - o, o / 2, o % 10));
            assert_eq!(ip_text(ip), ip.to_string().into_bytes());
        }
        for port in [0u16, 7, 80, 443, 8000, 10000, 65535] {
            assert_eq!(port_text(port), port.to_string().into_bytes());
        }
    }

    fn parts<'a>(
        target: &'a [u8],
        path: &'a [u8],
        query: &'a [u8],
        host: Option<&'a [u8]>,
        headers: &'a [(&'a [u8], &'a [u8])],
    ) -> RequestParts<'a, impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a> {
        RequestParts {
            method: b"GET",
            target,
            path,
            query,
            protocol: "HTTP/1.1",
            host,
            headers: headers.iter().copied(),
            chunked: false,
            peer: "10.0.0.7:51234".parse().unwrap(),
            local: "127.0.0.1:8000".parse().unwrap(),
            scheme: "http",
            unix: false,
            strip_forwarding: false,
            forwarded: None,
            tls: false,
            client_cert: None,
        }
    }

    fn get<'v>(vars: &'v [EnvVar<'_>], key: &str) -> Option<&'v [u8]> {
        vars.iter()
            .find(|(k, _)| match k {
                EnvKey::Cgi(c) => c.as_str() == key,
                EnvKey::Http(h) => **h == *key.as_bytes(),
                EnvKey::Other(o) => *o == key,
            })
            .map(|(_, v)| v.as_ref())
    }

    #[test]
    fn basic_variables() {
        let headers: &[(&[u8], &[u8])] = &[(b"Host", b"example.com:8080")];
        let vars = cgi_variables(parts(
            b"/a%20b?x=1",
            b"/a%20b",
            b"x=1",
            Some(b"example.com:8080"),
            headers,
        ));
        assert_eq!(get(&vars, "REQUEST_METHOD"), Some(&b"GET"[..]));
        assert_eq!(get(&vars, "SCRIPT_NAME"), Some(&b""[..]));
        assert_eq!(get(&vars, "PATH_INFO"), Some(&b"/a b"[..]));
        assert_eq!(get(&vars, "QUERY_STRING"), Some(&b"x=1"[..]));
        assert_eq!(get(&vars, "RAW_URI"), Some(&b"/a%20b?x=1"[..]));
        assert_eq!(get(&vars, "REQUEST_URI"), Some(&b"/a%20b?x=1"[..]));
        assert_eq!(get(&vars, "SERVER_PROTOCOL"), Some(&b"HTTP/1.1"[..]));
        assert_eq!(get(&vars, "SERVER_NAME"), Some(&b"example.com"[..]));
        assert_eq!(get(&vars, "SERVER_PORT"), Some(&b"8080"[..]));
        assert_eq!(get(&vars, "REMOTE_ADDR"), Some(&b"10.0.0.7"[..]));
        assert_eq!(get(&vars, "REMOTE_PORT"), Some(&b"51234"[..]));
        assert_eq!(get(&vars, "HTTP_HOST"), Some(&b"example.com:8080"[..]));
        assert_eq!(get(&vars, "CONTENT_LENGTH"), None);
        assert_eq!(get(&vars, "CONTENT_TYPE"), None);
    }

    #[test]
    fn query_string_present_even_when_empty() {
        let vars = cgi_variables(parts(b"/", b"/", b"", None, &[]));
        assert_eq!(get(&vars, "QUERY_STRING"), Some(&b""[..]));
    }

    #[test]
    fn absolute_form_authority_replaces_the_host_field() {
        let headers: &[(&[u8], &[u8])] = &[(b"Host", b"other.example")];
        let target = b"http://example.com:8080/a";
        let vars = cgi_variables(parts(
            target,
            b"/a",
            b"",
            Some(b"example.com:8080"),
            headers,
        ));
        assert_eq!(get(&vars, "HTTP_HOST"), Some(&b"example.com:8080"[..]));
        assert_eq!(get(&vars, "SERVER_NAME"), Some(&b"example.com"[..]));
    }

    #[test]
    fn server_name_falls_back_to_local_address() {
        let vars = cgi_variables(parts(b"/", b"/", b"", None, &[]));
        assert_eq!(get(&vars, "SERVER_NAME"), Some(&b"127.0.0.1"[..]));
        assert_eq!(get(&vars, "SERVER_PORT"), Some(&b"8000"[..]));
    }

    #[test]
    fn host_without_port_uses_scheme_default() {
        let vars = cgi_variables(parts(b"/", b"/", b"", Some(b"example.com"), &[]));
        assert_eq!(get(&vars, "SERVER_NAME"), Some(&b"example.com"[..]));
        assert_eq!(get(&vars, "SERVER_PORT"), Some(&b"80"[..]));
        let mut p = parts(b"/", b"/", b"", Some(b"example.com:"), &[]);
        p.scheme = "https";
        let vars = cgi_variables(p);
        assert_eq!(get(&vars, "SERVER_PORT"), Some(&b"443"[..]));
    }

    #[test]
    fn ipv6_host_keeps_brackets() {
        let vars = cgi_variables(parts(b"/", b"/", b"", Some(b"[::1]:9000"), &[]));
        assert_eq!(get(&vars, "SERVER_NAME"), Some(&b"[::1]"[..]));
        assert_eq!(get(&vars, "SERVER_PORT"), Some(&b"9000"[..]));
        let vars = cgi_variables(parts(b"/", b"/", b"", Some(b"[::1]"), &[]));
        assert_eq!(get(&vars, "SERVER_PORT"), Some(&b"80"[..]));
    }

    #[test]
    fn bad_host_port_falls_back_to_local() {
        let vars = cgi_variables(parts(b"/", b"/", b"", Some(b"example.com:8x"), &[]));
        assert_eq!(get(&vars, "SERVER_NAME"), Some(&b"127.0.0.1"[..]));
        assert_eq!(get(&vars, "SERVER_PORT"), Some(&b"8000"[..]));
    }

    #[test]
    fn content_headers_are_not_http_vars() {
        let headers: &[(&[u8], &[u8])] =
            &[(b"content-type", b"text/plain"), (b"Content-Length", b"12")];
        let vars = cgi_variables(parts(b"/", b"/", b"", None, headers));
        assert_eq!(get(&vars, "CONTENT_TYPE"), Some(&b"text/plain"[..]));
        assert_eq!(get(&vars, "CONTENT_LENGTH"), Some(&b"12"[..]));
        assert_eq!(get(&vars, "HTTP_CONTENT_TYPE"), None);
        assert_eq!(get(&vars, "HTTP_CONTENT_LENGTH"), None);
    }

    #[test]
    fn chunked_body_has_no_content_length() {
        let headers: &[(&[u8], &[u8])] = &[(b"Content-Length", b"12")];
        let mut p = parts(b"/", b"/", b"", None, headers);
        p.chunked = true;
        let vars = cgi_variables(p);
        assert_eq!(get(&vars, "CONTENT_LENGTH"), None);
    }

    #[test]
    fn repeated_content_length_reported_once() {
        let headers: &[(&[u8], &[u8])] = &[(b"Content-Length", b"3"), (b"Content-Length", b"3")];
        let vars = cgi_variables(parts(b"/", b"/", b"", None, headers));
        assert_eq!(get(&vars, "CONTENT_LENGTH"), Some(&b"3"[..]));
        assert_eq!(
            vars.iter()
                .filter(|(k, _)| *k == EnvKey::Cgi(CgiKey::ContentLength))
                .count(),
            1
        );
    }

    #[test]
    fn header_names_transformed_and_underscores_dropped() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"X-Forwarded-For", b"1.2.3.4"),
            (b"X-Forwarded_For", b"6.6.6.6"),
            (b"user-agent", b"curl"),
        ];
        let vars = cgi_variables(parts(b"/", b"/", b"", None, headers));
        assert_eq!(get(&vars, "HTTP_X_FORWARDED_FOR"), Some(&b"1.2.3.4"[..]));
        assert_eq!(get(&vars, "HTTP_USER_AGENT"), Some(&b"curl"[..]));
        assert!(!vars.iter().any(|(_, v)| v.as_ref() == b"6.6.6.6"));
    }

    #[test]
    fn header_names_with_other_token_characters_dropped() {
        // Found by the `environ` fuzz target (fuzz/regressions/environ/http-key-token-char).
        let headers: &[(&[u8], &[u8])] = &[
            (b"~", b"tilde"),
            (b"X.Forwarded-For", b"dot"),
            (b"X-A.B~C", b"mixed"),
            (b"X-Ok-9", b"kept"),
        ];
        let vars = cgi_variables(parts(b"/", b"/", b"", None, headers));
        assert_eq!(get(&vars, "HTTP_X_OK_9"), Some(&b"kept"[..]));
        for (key, _) in &vars {
            let EnvKey::Http(key) = key else { continue };
            assert!(
                key.iter()
                    .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "invalid CGI name {:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn repeated_headers_joined_with_comma_cookies_with_semicolon() {
        let headers: &[(&[u8], &[u8])] = &[
            (b"Accept", b"text/html"),
            (b"Cookie", b"a=1"),
            (b"accept", b"application/json"),
            (b"cookie", b"b=2"),
            (b"Accept", b"*/*"),
        ];
        let vars = cgi_variables(parts(b"/", b"/", b"", None, headers));
        assert_eq!(
            get(&vars, "HTTP_ACCEPT"),
            Some(&b"text/html,application/json,*/*"[..])
        );
        assert_eq!(get(&vars, "HTTP_COOKIE"), Some(&b"a=1; b=2"[..]));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(&*percent_decode(b"/plain"), b"/plain");
        assert!(matches!(percent_decode(b"/plain"), Cow::Borrowed(_)));
        assert_eq!(&*percent_decode(b"/a%2Fb"), b"/a/b");
        assert_eq!(&*percent_decode(b"/%e2%82%AC"), b"/\xe2\x82\xac");
        assert_eq!(&*percent_decode(b"/%zz%4"), b"/%zz%4");
        assert_eq!(&*percent_decode(b"%"), b"%");
        assert_eq!(&*percent_decode(b"%4"), b"%4");
        assert_eq!(&*percent_decode(b"%41"), b"A");
        assert_eq!(&*percent_decode(b"/%ff"), b"/\xff");
    }

    #[test]
    fn cgi_key_index_matches_all() {
        for (i, key) in CgiKey::ALL.iter().enumerate() {
            assert_eq!(*key as usize, i);
        }
    }
}
