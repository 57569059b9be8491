//! Trusted forwarding: `--forwarded-allow-ips` (ISSUE5). Behind a reverse proxy the connection's
//! peer is the proxy; the client, the scheme it used, the host it asked for and the path prefix
//! the proxy removed travel in headers. [`forwarded_view`] decides what the request sees.
//!
//! - Only from a trusted peer: a peer outside the allow-list gets nothing believed, and every
//!   header of [`FORWARDING_HEADERS`] is removed before the app sees it
//!   ([`ForwardedView::strip_forwarding_headers`]), so an app that reads them itself cannot be
//!   fooled either.
//! - The client is the rightmost untrusted hop. RFC 7239 §7.4: "the proxy ... appends" so the
//!   list reads client-first; only entries added by trusted proxies can be believed, so the walk
//!   starts at the right (the entry our trusted peer added) and stops at the first address not in
//!   the allow-list; when every hop is trusted, the leftmost. `unknown` and obfuscated nodes
//!   (`_hidden`, RFC 7239 §6.2-§6.3) end the walk: the client is then the last hop we know.
//!   Entries left of the client are never examined: they are the client's own claims.
//! - `Forwarded` (RFC 7239 §4): `1#forwarded-element`, `forwarded-element = [ forwarded-pair ]
//!   *( ";" [ forwarded-pair ] )`, `forwarded-pair = token "=" value`, `value = token /
//!   quoted-string`; "Each parameter MUST NOT occur more than once per forwarded-element";
//!   parameter names are case-insensitive; unknown parameters are ignored (§5.5 extensions);
//!   a syntax error anywhere makes the header unusable (→ 400). Nodes (§6): `IPv4address / "["
//!   IPv6address "]" / "unknown" / obfnode`, with an optional `":" port / obfport`; "Note that
//!   as ":" and "[]" are not valid characters in "token", IPv6 addresses are written as
//!   "quoted-string"". `proto` (§5.4) is `http` or `https` here (the only schemes a WSGI app can
//!   be reached by); `host` (§5.3) a `uri-host [ ":" port ]`. The scheme and host come from
//!   the element of the client hop (added by the outermost trusted proxy, which saw the
//!   client's request).
//! - `X-Forwarded-For`: comma-separated addresses (IPv4, IPv6, bracketed IPv6, either with a
//!   `:port`), same walk. `X-Forwarded-Proto`/`-Host`/`-Port`/`-Prefix`/`-Ssl`: one value, or a
//!   list read at the position of the client hop (the value the outermost trusted proxy
//!   appended; the rightmost when `X-Forwarded-For` is absent), like the `x_for`/`x_proto`
//!   hop counts of other WSGI proxy fixers.
//! - Agreement: when `Forwarded` and `X-Forwarded-*` both say something, they must say the same
//!   thing (client address, scheme, host, port), and `X-Forwarded-Ssl` must agree with the
//!   scheme; otherwise [`ForwardedError::Conflict`] (→ 400). A client that adds the header its
//!   proxy does not manage gets a 400 instead of a spoofed scheme or address.
//! - `X-Forwarded-Prefix` becomes `SCRIPT_NAME`: percent-decoded, it must start with `/`, hold
//!   no `.`/`..` segment and no control character; a trailing `/` is dropped.
//! - Limitation (as in every server that trusts these headers): a header the trusted proxy
//!   neither sets nor removes is passed on from the client. Configure the proxy to overwrite
//!   (or clear) every forwarding header it does not set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::cidr::{canonical, AddrAllowList};
use crate::environ::percent_decode;
use crate::http1::RequestError;

/// The default `--forwarded-allow-ips`: a proxy on the same host.
pub const DEFAULT_FORWARDED_ALLOW_IPS: &str = "127.0.0.1,::1";

/// The headers removed from requests of untrusted peers (lower case). Besides the ones this
/// module reads, the spellings other servers and frameworks trust (`X-Forwarded-Protocol`,
/// `X-Forwarded-Scheme`, `X-Scheme`, `X-Real-IP`): an app must not believe them from a client.
pub const FORWARDING_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-ssl",
    "x-forwarded-protocol",
    "x-forwarded-scheme",
    "x-scheme",
    "x-real-ip",
];

/// Whether `name` is one of [`FORWARDING_HEADERS`] (any case).
pub fn is_forwarding_header(name: &[u8]) -> bool {
    FORWARDING_HEADERS
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
}

/// `wsgi.url_scheme` as a proxy reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn parse(value: &[u8]) -> Option<Scheme> {
        if value.eq_ignore_ascii_case(b"https") {
            Some(Scheme::Https)
        } else if value.eq_ignore_ascii_case(b"http") {
            Some(Scheme::Http)
        } else {
            None
        }
    }
}

/// The client as a trusted proxy reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedClient {
    /// `REMOTE_ADDR`.
    pub addr: IpAddr,
    /// `REMOTE_PORT`, when the proxy gave one (else unknown: not the proxy's port).
    pub port: Option<u16>,
}

/// What a request should see, per [`forwarded_view`]. `None` fields keep the connection's own
/// value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForwardedView {
    /// The peer is in the allow-list: the headers were read. When false every other field is
    /// `None` and the forwarding headers must be removed.
    pub trusted: bool,
    /// `REMOTE_ADDR`/`REMOTE_PORT`.
    pub client: Option<ForwardedClient>,
    /// `wsgi.url_scheme`.
    pub scheme: Option<Scheme>,
    /// The authority the client asked for (`HTTP_HOST`; `SERVER_NAME` is its host part).
    pub host: Option<Vec<u8>>,
    /// `SERVER_PORT`: `X-Forwarded-Port`, else the port in `host`.
    pub port: Option<u16>,
    /// `SCRIPT_NAME` (decoded, no trailing `/`).
    pub script_name: Option<Vec<u8>>,
    /// `--protocol uwsgi`: the front server's packet (`server/uwsgi_conn.rs`). When set, the
    /// environ comes from its variables (`UwsgiRequest::cgi_variables`), not from the head,
    /// and the fields above are unused.
    pub uwsgi: Option<std::sync::Arc<crate::uwsgi::UwsgiRequest>>,
}

impl ForwardedView {
    /// Remove every header for which [`is_forwarding_header`] holds before the app sees them.
    pub fn strip_forwarding_headers(&self) -> bool {
        !self.trusted
    }

    /// The host part of [`ForwardedView::host`] (`SERVER_NAME`; IPv6 keeps its brackets).
    pub fn host_name(&self) -> Option<&[u8]> {
        self.host.as_deref().map(|h| split_authority(h).0)
    }
}

/// Why forwarding headers from a trusted peer cannot be believed. Both are a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardedError {
    /// Two headers disagree (e.g. `X-Forwarded-Proto: https` with `Forwarded: proto=http`).
    Conflict(&'static str),
    /// A header the walk has to read is not valid.
    Invalid(&'static str),
}

impl std::fmt::Display for ForwardedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForwardedError::Conflict(what) => write!(f, "conflicting forwarding headers: {what}"),
            ForwardedError::Invalid(what) => write!(f, "invalid forwarding header: {what}"),
        }
    }
}

impl std::error::Error for ForwardedError {}

impl From<ForwardedError> for RequestError {
    fn from(e: ForwardedError) -> RequestError {
        match e {
            ForwardedError::Conflict(what) | ForwardedError::Invalid(what) => {
                RequestError::Malformed(what)
            }
        }
    }
}

/// The forwarding headers of one request, gathered.
#[derive(Debug, Default)]
struct Gathered<'a> {
    forwarded: Vec<&'a [u8]>,
    xff: Vec<&'a [u8]>,
    proto: Vec<&'a [u8]>,
    host: Vec<&'a [u8]>,
    port: Vec<&'a [u8]>,
    prefix: Vec<&'a [u8]>,
    ssl: Vec<&'a [u8]>,
}

/// What a request from `peer` should see (see the module docs). `headers` are the request's
/// field lines (name, value), in order.
pub fn forwarded_view<'a, I>(
    peer: IpAddr,
    allow: &AddrAllowList,
    headers: I,
) -> Result<ForwardedView, ForwardedError>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    if !allow.contains(peer) {
        return Ok(ForwardedView::default());
    }
    forwarded_view_trusted(allow, headers)
}

/// [`forwarded_view`] for a peer already known to be trusted (checked once per connection by
/// the driver; a Unix socket peer, which has no address, is trusted by the socket's
/// permissions). `allow` still decides which hops of the lists are trusted proxies.
pub fn forwarded_view_trusted<'a, I>(
    allow: &AddrAllowList,
    headers: I,
) -> Result<ForwardedView, ForwardedError>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut g = Gathered::default();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if lower == b"forwarded" {
            // Parsed as a whole: a quoted string may hold commas.
            g.forwarded.push(value);
            continue;
        }
        let list = match lower.as_slice() {
            b"x-forwarded-for" => &mut g.xff,
            b"x-forwarded-proto" => &mut g.proto,
            b"x-forwarded-host" => &mut g.host,
            b"x-forwarded-port" => &mut g.port,
            b"x-forwarded-prefix" => &mut g.prefix,
            b"x-forwarded-ssl" => &mut g.ssl,
            _ => continue,
        };
        list.extend(list_items(value));
    }

    let mut view = ForwardedView {
        trusted: true,
        ..ForwardedView::default()
    };

    // RFC 7239 `Forwarded`.
    let mut fwd_scheme = None;
    let mut fwd_host = None;
    let mut fwd_client = None;
    if !g.forwarded.is_empty() {
        let elements = parse_forwarded(&g.forwarded)?;
        if !elements.is_empty() {
            let nodes: Vec<Option<&[u8]>> = elements.iter().map(|e| e.for_.as_deref()).collect();
            let walk = walk(&nodes, allow, |n| match n {
                Some(n) => parse_node(n, true).ok_or(ForwardedError::Invalid("Forwarded for")),
                None => Ok(Node::Unknown),
            })?;
            fwd_client = walk.client;
            let chosen = &elements[walk.index];
            if let Some(proto) = &chosen.proto {
                fwd_scheme =
                    Some(Scheme::parse(proto).ok_or(ForwardedError::Invalid("Forwarded proto"))?);
            }
            if let Some(host) = &chosen.host {
                if !is_authority(host) {
                    return Err(ForwardedError::Invalid("Forwarded host"));
                }
                fwd_host = Some(host.to_vec());
            }
        }
    }

    // X-Forwarded-For, and the hop count that positions the other X-Forwarded-* lists.
    let mut hops = 1;
    let mut xff_client = None;
    if !g.xff.is_empty() {
        let nodes: Vec<&[u8]> = g.xff.clone();
        let walk = walk(&nodes, allow, |n| {
            parse_node(n, false).ok_or(ForwardedError::Invalid("X-Forwarded-For"))
        })?;
        hops = nodes.len() - walk.index;
        xff_client = walk.client;
    }
    let pick = |list: &[&'a [u8]]| -> Option<&'a [u8]> {
        (!list.is_empty()).then(|| list[list.len().saturating_sub(hops)])
    };

    view.client = match (fwd_client, xff_client) {
        (Some(a), Some(b)) if canonical(a.addr) != canonical(b.addr) => {
            return Err(ForwardedError::Conflict(
                "Forwarded and X-Forwarded-For name different clients",
            ))
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    };

    // The scheme: every source present must agree.
    let mut scheme = fwd_scheme;
    let mut agree = |s: Scheme| -> Result<(), ForwardedError> {
        match scheme {
            Some(prev) if prev != s => Err(ForwardedError::Conflict("scheme")),
            _ => {
                scheme = Some(s);
                Ok(())
            }
        }
    };
    if let Some(proto) = pick(&g.proto) {
        agree(Scheme::parse(proto).ok_or(ForwardedError::Invalid("X-Forwarded-Proto"))?)?;
    }
    if let Some(ssl) = pick(&g.ssl) {
        let s = if ssl.eq_ignore_ascii_case(b"on") {
            Scheme::Https
        } else if ssl.eq_ignore_ascii_case(b"off") {
            Scheme::Http
        } else {
            return Err(ForwardedError::Invalid("X-Forwarded-Ssl"));
        };
        agree(s)?;
    }
    view.scheme = scheme;

    // The host and port.
    let xf_host = match pick(&g.host) {
        Some(h) if is_authority(h) => Some(h.to_vec()),
        Some(_) => return Err(ForwardedError::Invalid("X-Forwarded-Host")),
        None => None,
    };
    view.host = match (fwd_host, xf_host) {
        (Some(a), Some(b)) if !a.eq_ignore_ascii_case(&b) => {
            return Err(ForwardedError::Conflict("host"))
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    let host_port = view
        .host
        .as_deref()
        .and_then(|h| split_authority(h).1)
        .and_then(parse_port);
    let xf_port = match pick(&g.port) {
        Some(p) => Some(parse_port(p).ok_or(ForwardedError::Invalid("X-Forwarded-Port"))?),
        None => None,
    };
    view.port = match (host_port, xf_port) {
        (Some(a), Some(b)) if a != b => return Err(ForwardedError::Conflict("port")),
        (a, b) => b.or(a),
    };

    if let Some(prefix) = pick(&g.prefix) {
        view.script_name =
            Some(script_name(prefix).ok_or(ForwardedError::Invalid("X-Forwarded-Prefix"))?);
    }
    Ok(view)
}

/// The non-empty items of a comma-separated list, trimmed of OWS (RFC 9110 §5.6.1: "a
/// recipient MUST parse and ignore a reasonable number of empty list elements").
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A hop: an address, or a node that names nobody we can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Addr(ForwardedClient),
    /// `unknown`, an obfuscated identifier, or a `Forwarded` element without `for`.
    Unknown,
}

struct Walk {
    /// The index of the client hop.
    index: usize,
    /// The client: the hop's address, or for an unknown hop the last address walked.
    client: Option<ForwardedClient>,
}

/// Walks `nodes` from the right while the hops are trusted (see the module docs).
fn walk<T: Copy>(
    nodes: &[T],
    allow: &AddrAllowList,
    parse: impl Fn(T) -> Result<Node, ForwardedError>,
) -> Result<Walk, ForwardedError> {
    let mut client = None;
    let mut index = nodes.len().saturating_sub(1);
    for (i, &node) in nodes.iter().enumerate().rev() {
        index = i;
        match parse(node)? {
            Node::Addr(c) => {
                client = Some(c);
                if !allow.contains(c.addr) {
                    break;
                }
            }
            Node::Unknown => break,
        }
    }
    Ok(Walk { index, client })
}

/// A node: RFC 7239 §6 syntax (`rfc7239`: brackets required around IPv6, `unknown` and
/// obfuscated names allowed), or the `X-Forwarded-For` habits (bare or bracketed IPv6,
/// `unknown`). `None` when invalid.
fn parse_node(node: &[u8], rfc7239: bool) -> Option<Node> {
    let (name, port) = if let Some(rest) = node.strip_prefix(b"[") {
        let close = rest.iter().position(|&b| b == b']')?;
        let port = match &rest[close + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return None,
        };
        (&node[..close + 2], port)
    } else {
        match node.iter().filter(|&&b| b == b':').count() {
            0 => (node, None),
            1 => {
                let colon = node.iter().position(|&b| b == b':')?;
                (&node[..colon], Some(&node[colon + 1..]))
            }
            // A bare IPv6 address: only in X-Forwarded-For.
            _ if !rfc7239 => (node, None),
            _ => return None,
        }
    };
    let port = match port {
        None => None,
        Some(p) if rfc7239 && is_obfuscated(p) => None,
        Some(p) => Some(parse_port(p)?),
    };
    if name.eq_ignore_ascii_case(b"unknown") {
        return Some(Node::Unknown);
    }
    if rfc7239 && is_obfuscated(name) {
        return Some(Node::Unknown);
    }
    let text = std::str::from_utf8(name).ok()?;
    let addr = if let Some(v6) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?)
    } else if !rfc7239 && text.contains(':') {
        IpAddr::V6(text.parse::<Ipv6Addr>().ok()?)
    } else {
        IpAddr::V4(text.parse::<Ipv4Addr>().ok()?)
    };
    Some(Node::Addr(ForwardedClient { addr, port }))
}

/// `obfnode = "_" 1*( ALPHA / DIGIT / "." / "_" / "-")` (also `obfport`).
fn is_obfuscated(s: &[u8]) -> bool {
    s.len() > 1
        && s[0] == b'_'
        && s[1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `1*5DIGIT` in `1..=65535`, no sign, no leading zero.
fn parse_port(p: &[u8]) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || p[0] == b'0' || !p.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(p).ok()?.parse().ok()
}

/// Splits `host[:port]` / `[v6][:port]` (the authority was validated).
fn split_authority(a: &[u8]) -> (&[u8], Option<&[u8]>) {
    let colon = if a.first() == Some(&b'[') {
        a.iter()
            .position(|&b| b == b']')
            .and_then(|close| (a.get(close + 1) == Some(&b':')).then_some(close + 1))
    } else {
        a.iter().rposition(|&b| b == b':')
    };
    match colon {
        Some(c) => (&a[..c], Some(&a[c + 1..])),
        None => (a, None),
    }
}

/// `uri-host [ ":" port ]` (RFC 3986 §3.2.2: IP-literal, IPv4address or reg-name of
/// unreserved / pct-encoded / sub-delims, without `,` and `;` which separate our lists).
fn is_authority(a: &[u8]) -> bool {
    let (host, port) = split_authority(a);
    if let Some(p) = port {
        if parse_port(p).is_none() {
            return false;
        }
    }
    if let Some(inner) = host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) {
        return std::str::from_utf8(inner)
            .ok()
            .and_then(|t| t.parse::<Ipv6Addr>().ok())
            .is_some();
    }
    !host.is_empty()
        && host.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b'='
                )
        })
}

/// `X-Forwarded-Prefix` as `SCRIPT_NAME` (see the module docs).
fn script_name(prefix: &[u8]) -> Option<Vec<u8>> {
    if !prefix.starts_with(b"/")
        || !prefix
            .iter()
            .all(|&b| b > 0x20 && b != 0x7f && b != b'?' && b != b'#')
    {
        return None;
    }
    let decoded = percent_decode(prefix);
    if decoded.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    if decoded
        .split(|&b| b == b'/')
        .any(|seg| seg == b"." || seg == b"..")
    {
        return None;
    }
    let mut out = decoded.into_owned();
    while out.last() == Some(&b'/') {
        out.pop();
    }
    Some(out)
}

/// One `forwarded-element`: the parameters we use (values unquoted).
#[derive(Debug, Default)]
struct Element {
    for_: Option<Vec<u8>>,
    proto: Option<Vec<u8>>,
    host: Option<Vec<u8>>,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Every element of the `Forwarded` field lines (joined as one list, RFC 9110 §5.3), in
/// order; empty elements skipped.
fn parse_forwarded(lines: &[&[u8]]) -> Result<Vec<Element>, ForwardedError> {
    let joined: Vec<u8> = lines.join(&b","[..]);
    let invalid = ForwardedError::Invalid("Forwarded syntax");
    let mut out = Vec::new();
    let mut p = Parser { s: &joined, at: 0 };
    loop {
        let mut el = Element::default();
        let mut names: Vec<Vec<u8>> = Vec::new();
        loop {
            p.skip_ows();
            match p.peek() {
                None | Some(b',') => break,
                Some(b';') => {
                    p.at += 1;
                    continue;
                }
                _ => {}
            }
            let name = p.token().ok_or(invalid)?.to_ascii_lowercase();
            if p.peek() != Some(b'=') {
                return Err(invalid);
            }
            p.at += 1;
            let value = p.value().ok_or(invalid)?;
            if names.contains(&name) {
                return Err(ForwardedError::Invalid("Forwarded parameter repeated"));
            }
            match name.as_slice() {
                b"for" => el.for_ = Some(value),
                b"proto" => el.proto = Some(value),
                b"host" => el.host = Some(value),
                _ => {}
            }
            names.push(name);
            p.skip_ows();
            if !matches!(p.peek(), None | Some(b',' | b';')) {
                return Err(invalid);
            }
        }
        if !names.is_empty() {
            out.push(el);
        }
        match p.peek() {
            None => break,
            Some(b',') => p.at += 1,
            _ => return Err(invalid),
        }
    }
    Ok(out)
}

struct Parser<'s> {
    s: &'s [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn token(&mut self) -> Option<&[u8]> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        (self.at > start).then(|| &self.s[start..self.at])
    }

    /// `token / quoted-string`, unquoted.
    fn value(&mut self) -> Option<Vec<u8>> {
        if self.peek() != Some(b'"') {
            return self.token().map(<[u8]>::to_vec);
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.at += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
                    let q = self.peek()?;
                    if !(q == b'\t' || q == b' ' || (0x21..=0x7e).contains(&q) || q >= 0x80) {
                        return None;
                    }
                    self.at += 1;
                    out.push(q);
                }
                b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => out.push(b),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROXY: &str = "127.0.0.1";

    fn allow() -> AddrAllowList {
        AddrAllowList::parse("127.0.0.1,::1,10.0.0.0/8").unwrap()
    }

    fn view(peer: &str, headers: &[(&str, &str)]) -> Result<ForwardedView, ForwardedError> {
        forwarded_view(
            peer.parse().unwrap(),
            &allow(),
            headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        )
    }

    fn client(addr: &str, port: Option<u16>) -> Option<ForwardedClient> {
        Some(ForwardedClient {
            addr: addr.parse().unwrap(),
            port,
        })
    }

    fn trusted() -> ForwardedView {
        ForwardedView {
            trusted: true,
            ..ForwardedView::default()
        }
    }

    #[test]
    fn untrusted_peer_gets_nothing_believed() {
        let spoof = [
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Proto", "https"),
            ("Forwarded", "for=1.2.3.4;proto=https"),
            ("X-Forwarded-Prefix", "/admin"),
            // Even garbage or conflicts are not an error: nothing is read.
            ("X-Forwarded-Host", "a b"),
        ];
        for peer in [
            "203.0.113.9",
            "192.168.1.1",
            "::ffff:203.0.113.9",
            "2001:db8::1",
        ] {
            let v = view(peer, &spoof).unwrap();
            assert_eq!(v, ForwardedView::default(), "{peer}");
            assert!(v.strip_forwarding_headers());
        }
        assert!(!view(PROXY, &[]).unwrap().strip_forwarding_headers());
    }

    #[test]
    fn forwarding_header_names() {
        for name in FORWARDING_HEADERS {
            assert!(is_forwarding_header(name.as_bytes()));
            assert!(is_forwarding_header(name.to_ascii_uppercase().as_bytes()));
        }
        assert!(is_forwarding_header(b"X-Real-IP"));
        assert!(!is_forwarding_header(b"X-Forwarded"));
        assert!(!is_forwarding_header(b"Host"));
    }

    #[test]
    fn client_address_table() {
        // (peer, headers, expected client)
        type Row = (
            &'static str,
            Vec<(&'static str, &'static str)>,
            Option<ForwardedClient>,
        );
        let rows: Vec<Row> = vec![
            (PROXY, vec![], None),
            (
                PROXY,
                vec![("X-Forwarded-For", "203.0.113.7")],
                client("203.0.113.7", None),
            ),
            // The client spoofs a first entry; the proxy appends the real address.
            (
                PROXY,
                vec![("X-Forwarded-For", "6.6.6.6, 203.0.113.7")],
                client("203.0.113.7", None),
            ),
            // A chain of trusted proxies: skip them, stop at the first untrusted hop.
            (
                PROXY,
                vec![(
                    "X-Forwarded-For",
                    "6.6.6.6, 203.0.113.7, 10.0.0.2, 10.0.0.3",
                )],
                client("203.0.113.7", None),
            ),
            // Repeated lines form one list.
            (
                PROXY,
                vec![
                    ("x-forwarded-for", "6.6.6.6"),
                    ("X-FORWARDED-FOR", "203.0.113.7,10.0.0.2"),
                ],
                client("203.0.113.7", None),
            ),
            // Every hop trusted: the leftmost.
            (
                PROXY,
                vec![("X-Forwarded-For", "10.0.0.1, 10.0.0.2")],
                client("10.0.0.1", None),
            ),
            // Garbage left of the client is never read.
            (
                PROXY,
                vec![("X-Forwarded-For", "garbage, 203.0.113.7")],
                client("203.0.113.7", None),
            ),
            (
                PROXY,
                vec![("X-Forwarded-For", ",, 203.0.113.7 ,")],
                client("203.0.113.7", None),
            ),
            (
                PROXY,
                vec![("X-Forwarded-For", "203.0.113.7:4711")],
                client("203.0.113.7", Some(4711)),
            ),
            (
                PROXY,
                vec![("X-Forwarded-For", "2001:db8::7")],
                client("2001:db8::7", None),
            ),
            (
                PROXY,
                vec![("X-Forwarded-For", "[2001:db8::7]:80")],
                client("2001:db8::7", Some(80)),
            ),
            // `unknown` ends the walk: the last hop we know.
            (
                PROXY,
                vec![("X-Forwarded-For", "unknown, 10.0.0.2")],
                client("10.0.0.2", None),
            ),
            (PROXY, vec![("X-Forwarded-For", "unknown")], None),
            // IPv4-mapped peers and hops are matched as IPv4.
            (
                "::ffff:127.0.0.1",
                vec![("X-Forwarded-For", "203.0.113.7")],
                client("203.0.113.7", None),
            ),
            (
                PROXY,
                vec![("X-Forwarded-For", "1.1.1.1, ::ffff:10.0.0.9")],
                client("1.1.1.1", None),
            ),
            // RFC 7239.
            (
                PROXY,
                vec![("Forwarded", "for=203.0.113.7")],
                client("203.0.113.7", None),
            ),
            (
                PROXY,
                vec![("Forwarded", "For=\"203.0.113.7:47011\"")],
                client("203.0.113.7", Some(47011)),
            ),
            (
                PROXY,
                vec![("Forwarded", "for=\"[2001:db8:cafe::17]:4711\"")],
                client("2001:db8:cafe::17", Some(4711)),
            ),
            (
                PROXY,
                vec![("Forwarded", "for=\"[2001:db8:cafe::17]\"")],
                client("2001:db8:cafe::17", None),
            ),
            (PROXY, vec![("Forwarded", "for=\"_gazonk\"")], None),
            (
                PROXY,
                vec![("Forwarded", "for=_hidden, for=10.0.0.5")],
                client("10.0.0.5", None),
            ),
            (PROXY, vec![("Forwarded", "for=unknown")], None),
            (
                PROXY,
                vec![("Forwarded", "for=\"203.0.113.7:_port\"")],
                client("203.0.113.7", None),
            ),
            (
                PROXY,
                vec![(
                    "Forwarded",
                    "for=6.6.6.6, for=203.0.113.7;proto=https, for=10.0.0.2",
                )],
                client("203.0.113.7", None),
            ),
            (
                PROXY,
                vec![
                    ("Forwarded", "for=6.6.6.6"),
                    ("Forwarded", "for=203.0.113.7"),
                ],
                client("203.0.113.7", None),
            ),
            // An element without `for` names nobody.
            (PROXY, vec![("Forwarded", "proto=https")], None),
            // Both headers, agreeing.
            (
                PROXY,
                vec![
                    ("Forwarded", "for=203.0.113.7"),
                    ("X-Forwarded-For", "203.0.113.7"),
                ],
                client("203.0.113.7", None),
            ),
            // Forwarded says unknown, X-Forwarded-For knows.
            (
                PROXY,
                vec![
                    ("Forwarded", "for=unknown"),
                    ("X-Forwarded-For", "203.0.113.7"),
                ],
                client("203.0.113.7", None),
            ),
        ];
        for (peer, headers, expected) in rows {
            let v = view(peer, &headers).unwrap_or_else(|e| panic!("{headers:?}: {e}"));
            assert!(v.trusted);
            assert_eq!(v.client, expected, "{headers:?}");
        }
    }

    #[test]
    fn scheme_host_port_prefix_table() {
        type Row = (
            Vec<(&'static str, &'static str)>,
            Option<Scheme>,
            Option<&'static str>,
            Option<u16>,
            Option<&'static str>,
        );
        let rows: Vec<Row> = vec![
            (
                vec![("X-Forwarded-Proto", "https")],
                Some(Scheme::Https),
                None,
                None,
                None,
            ),
            (
                vec![("X-Forwarded-Proto", "HTTP")],
                Some(Scheme::Http),
                None,
                None,
                None,
            ),
            (
                vec![("X-Forwarded-Ssl", "on")],
                Some(Scheme::Https),
                None,
                None,
                None,
            ),
            (
                vec![("X-Forwarded-Ssl", "off")],
                Some(Scheme::Http),
                None,
                None,
                None,
            ),
            (
                vec![("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "on")],
                Some(Scheme::Https),
                None,
                None,
                None,
            ),
            (
                vec![("Forwarded", "proto=https")],
                Some(Scheme::Https),
                None,
                None,
                None,
            ),
            (
                vec![
                    ("Forwarded", "for=1.2.3.4;proto=https;host=example.com"),
                    ("X-Forwarded-Proto", "https"),
                ],
                Some(Scheme::Https),
                Some("example.com"),
                None,
                None,
            ),
            (
                vec![("X-Forwarded-Host", "example.com:8443")],
                None,
                Some("example.com:8443"),
                Some(8443),
                None,
            ),
            (
                vec![
                    ("X-Forwarded-Host", "example.com:8443"),
                    ("X-Forwarded-Port", "8443"),
                ],
                None,
                Some("example.com:8443"),
                Some(8443),
                None,
            ),
            (
                vec![("X-Forwarded-Port", "8080")],
                None,
                None,
                Some(8080),
                None,
            ),
            (
                vec![("Forwarded", "host=\"[::1]:8000\"")],
                None,
                Some("[::1]:8000"),
                Some(8000),
                None,
            ),
            (
                vec![("X-Forwarded-Prefix", "/app")],
                None,
                None,
                None,
                Some("/app"),
            ),
            (
                vec![("X-Forwarded-Prefix", "/app/")],
                None,
                None,
                None,
                Some("/app"),
            ),
            (
                vec![("X-Forwarded-Prefix", "/")],
                None,
                None,
                None,
                Some(""),
            ),
            (
                vec![("X-Forwarded-Prefix", "/my%20app")],
                None,
                None,
                None,
                Some("/my app"),
            ),
            // A list of schemes read at the client hop: two trusted hops → the first value.
            (
                vec![
                    ("X-Forwarded-For", "203.0.113.7, 10.0.0.2"),
                    ("X-Forwarded-Proto", "https, http"),
                ],
                Some(Scheme::Https),
                None,
                None,
                None,
            ),
            // Without X-Forwarded-For: the rightmost (our peer's) value.
            (
                vec![("X-Forwarded-Proto", "https, http")],
                Some(Scheme::Http),
                None,
                None,
                None,
            ),
            // The scheme in the client hop's element.
            (
                vec![(
                    "Forwarded",
                    "for=203.0.113.7;proto=https, for=10.0.0.2;proto=http",
                )],
                Some(Scheme::Https),
                None,
                None,
                None,
            ),
            // Unknown parameters and empty elements are ignored; OWS around `;` and `,`.
            (
                vec![(
                    "Forwarded",
                    " , for=1.2.3.4 ; by=_proxy;ext=\"a,b;c\" ;proto=https ,",
                )],
                Some(Scheme::Https),
                None,
                None,
                None,
            ),
        ];
        for (headers, scheme, host, port, prefix) in rows {
            let v = view(PROXY, &headers).unwrap_or_else(|e| panic!("{headers:?}: {e}"));
            assert_eq!(v.scheme, scheme, "{headers:?}");
            assert_eq!(v.host.as_deref(), host.map(str::as_bytes), "{headers:?}");
            assert_eq!(v.port, port, "{headers:?}");
            assert_eq!(
                v.script_name.as_deref(),
                prefix.map(str::as_bytes),
                "{headers:?}"
            );
        }
        let v = view(PROXY, &[("X-Forwarded-Host", "[::1]:8000")]).unwrap();
        assert_eq!(v.host_name(), Some(&b"[::1]"[..]));
        let v = view(PROXY, &[("X-Forwarded-Host", "example.com")]).unwrap();
        assert_eq!(v.host_name(), Some(&b"example.com"[..]));
        assert_eq!(view(PROXY, &[]).unwrap(), trusted());
    }

    #[test]
    fn conflicts_and_garbage_are_errors() {
        let conflict = |s| Err(ForwardedError::Conflict(s));
        let invalid = |s| Err(ForwardedError::Invalid(s));
        type Row<'a> = (
            Vec<(&'a str, &'a str)>,
            Result<ForwardedView, ForwardedError>,
        );
        let rows: Vec<Row> = vec![
            (
                vec![("X-Forwarded-Proto", "https"), ("Forwarded", "proto=http")],
                conflict("scheme"),
            ),
            (
                vec![("X-Forwarded-Proto", "http"), ("X-Forwarded-Ssl", "on")],
                conflict("scheme"),
            ),
            (
                vec![
                    ("Forwarded", "host=a.example"),
                    ("X-Forwarded-Host", "b.example"),
                ],
                conflict("host"),
            ),
            (
                vec![
                    ("X-Forwarded-Host", "a.example:1"),
                    ("X-Forwarded-Port", "2"),
                ],
                conflict("port"),
            ),
            (
                vec![("Forwarded", "for=1.1.1.1"), ("X-Forwarded-For", "2.2.2.2")],
                conflict("Forwarded and X-Forwarded-For name different clients"),
            ),
            (
                vec![("X-Forwarded-Proto", "ftp")],
                invalid("X-Forwarded-Proto"),
            ),
            (vec![("X-Forwarded-Proto", "")], Ok(trusted())),
            (vec![("X-Forwarded-Ssl", "yes")], invalid("X-Forwarded-Ssl")),
            (
                vec![("X-Forwarded-For", "1.2.3.4, garbage")],
                invalid("X-Forwarded-For"),
            ),
            (
                vec![("X-Forwarded-For", "10.0.0.2, 01.2.3.4")],
                invalid("X-Forwarded-For"),
            ),
            (
                vec![("X-Forwarded-For", "1.2.3.4:0")],
                invalid("X-Forwarded-For"),
            ),
            (
                vec![("X-Forwarded-For", "1.2.3.4:99999")],
                invalid("X-Forwarded-For"),
            ),
            (
                vec![("X-Forwarded-For", "[::1")],
                invalid("X-Forwarded-For"),
            ),
            (
                vec![("X-Forwarded-For", "_hidden")],
                invalid("X-Forwarded-For"),
            ),
            (
                vec![("Forwarded", "for=[::1]")],
                invalid("Forwarded syntax"),
            ),
            (vec![("Forwarded", "for=\"::1\"")], invalid("Forwarded for")),
            (
                vec![("Forwarded", "for=1.2.3.4;for=5.6.7.8")],
                invalid("Forwarded parameter repeated"),
            ),
            (
                vec![("Forwarded", "FOR=1.2.3.4;for=5.6.7.8")],
                invalid("Forwarded parameter repeated"),
            ),
            (
                vec![("Forwarded", "for=\"1.2.3.4")],
                invalid("Forwarded syntax"),
            ),
            (vec![("Forwarded", "for")], invalid("Forwarded syntax")),
            (
                vec![("Forwarded", "for =1.2.3.4")],
                invalid("Forwarded syntax"),
            ),
            (
                vec![("Forwarded", "for=1.2.3.4 proto=http")],
                invalid("Forwarded syntax"),
            ),
            (
                vec![("Forwarded", "for=\"a\"b")],
                invalid("Forwarded syntax"),
            ),
            // A syntax error anywhere, even left of the client, spoils the header.
            (
                vec![("Forwarded", "for=\"x, for=1.2.3.4")],
                invalid("Forwarded syntax"),
            ),
            (vec![("Forwarded", "proto=wss")], invalid("Forwarded proto")),
            (
                vec![("Forwarded", "host=\"a b\"")],
                invalid("Forwarded host"),
            ),
            (
                vec![("X-Forwarded-Host", "user@host")],
                invalid("X-Forwarded-Host"),
            ),
            (
                vec![("X-Forwarded-Host", "host:port")],
                invalid("X-Forwarded-Host"),
            ),
            (vec![("X-Forwarded-Port", "0")], invalid("X-Forwarded-Port")),
            (
                vec![("X-Forwarded-Port", "080")],
                invalid("X-Forwarded-Port"),
            ),
            (
                vec![("X-Forwarded-Port", "65536")],
                invalid("X-Forwarded-Port"),
            ),
            (
                vec![("X-Forwarded-Prefix", "app")],
                invalid("X-Forwarded-Prefix"),
            ),
            (
                vec![("X-Forwarded-Prefix", "/a/../admin")],
                invalid("X-Forwarded-Prefix"),
            ),
            (
                vec![("X-Forwarded-Prefix", "/a/%2e%2e/admin")],
                invalid("X-Forwarded-Prefix"),
            ),
            (
                vec![("X-Forwarded-Prefix", "/a/./b")],
                invalid("X-Forwarded-Prefix"),
            ),
            (
                vec![("X-Forwarded-Prefix", "/a?b")],
                invalid("X-Forwarded-Prefix"),
            ),
            (
                vec![("X-Forwarded-Prefix", "/a%00b")],
                invalid("X-Forwarded-Prefix"),
            ),
            (
                vec![("X-Forwarded-Prefix", "/a%0d%0ab")],
                invalid("X-Forwarded-Prefix"),
            ),
        ];
        for (headers, expected) in rows {
            assert_eq!(view(PROXY, &headers), expected, "{headers:?}");
        }
        let e: RequestError = ForwardedError::Conflict("scheme").into();
        assert_eq!(e.status(), 400);
        assert!(!ForwardedError::Invalid("x").to_string().is_empty());
    }

    #[test]
    fn wildcard_trusts_everyone() {
        let v = forwarded_view(
            "203.0.113.9".parse().unwrap(),
            &AddrAllowList::any(),
            [(&b"X-Forwarded-For"[..], &b"1.1.1.1, 2.2.2.2"[..])],
        )
        .unwrap();
        // Every hop is trusted: the leftmost.
        assert_eq!(v.client, client("1.1.1.1", None));
    }
}
