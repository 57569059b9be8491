//! The HAProxy PROXY protocol, versions 1 and 2 (HAProxy `doc/proxy-protocol.txt`), as a
//! receiver: `--proxy-protocol {off,v1,v2,auto}` with `--proxy-allow-from` (ISSUE5).
//!
//! A load balancer that only relays TCP prepends one header to the connection naming the
//! client's address; REMOTE_ADDR/REMOTE_PORT then come from it. Rules this module owns:
//!
//! - Who may send one: "The receiver SHOULD ensure proper access filtering so that only trusted
//!   proxies are allowed to use this protocol." [`admit`] refuses a peer outside the allow-list
//!   before a byte is read; the driver closes such a connection.
//! - No guessing: "The receiver MUST be configured to only receive the protocol described in
//!   this specification and MUST not try to guess whether the protocol header is present or
//!   not." Every mode but `off` requires a header; `auto` only tells v1 from v2 by the first
//!   byte ("PROXY" vs the v2 signature, which differ at byte 0), it never accepts a connection
//!   without a header.
//! - "The receiver MUST NOT start processing the connection before it receives a complete and
//!   valid PROXY protocol header": [`parse`] answers `Partial` until then and consumes nothing;
//!   on `Complete` exactly the header is split off, the request bytes stay in the buffer.
//! - "Any sequence which does not exactly match the protocol must be discarded and cause the
//!   receiver to abort the connection": every [`ProxyError`] closes the connection, no response.
//! - v1: `"PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF`, "exactly one
//!   space" between fields; addresses of the announced family (IPv4 dotted quads: "Heading
//!   zeroes are not permitted"); ports "a decimal integer in the range [0..65535] ... Heading
//!   zeroes are not permitted". "If the CRLF sequence is not found in the first 107 characters,
//!   the receiver should declare the line invalid" ([`V1_MAX_LEN`]); "The receiver must not
//!   tolerate a single CR or LF character to end the line". `UNKNOWN`: "the receiver must
//!   ignore anything presented before the CRLF" and "use the real connection's parameters".
//! - v2: the 12-byte signature, then version 2 ("the receiver must only accept this value"),
//!   command LOCAL or PROXY ("Receivers must drop connections presenting unexpected values"),
//!   family UNSPEC/INET/INET6/UNIX and transport UNSPEC/STREAM/DGRAM ("other values ... must be
//!   rejected as invalid by receivers"), then the big-endian length of what follows, bounded by
//!   [`V2_MAX_PAYLOAD`]. LOCAL: "The receiver must accept this connection as valid and must use
//!   the real connection endpoints and discard the protocol block including the family".
//!   PROXY over TCP4/TCP6: the addresses; the address block must be at least as long as the
//!   family needs. Families and transports we do not serve (UNSPEC, UNIX, DGRAM) "fall back to
//!   the UNSPEC mode": the real endpoints ([`ProxyHeader::Unknown`]). The TLVs after the
//!   address block are skipped, but must tile the rest of the header exactly (a TLV that
//!   overruns it is malformed).
//! - The answer never depends on how the bytes were split into reads (tested on every split;
//!   fuzzed by `fuzz/fuzz_targets/proxy_protocol.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BytesMut};
use serde::Deserialize;

use crate::cidr::AddrAllowList;

/// The longest v1 line, CRLF included: "PROXY UNKNOWN" with two full IPv6 addresses and ports
/// (the spec's worst case, "=> 107 chars").
pub const V1_MAX_LEN: usize = 107;
/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part of a v2 header: signature, version/command, family/transport, length.
pub const V2_FIXED_LEN: usize = 16;
/// The most bytes a v2 header may carry after its fixed part (addresses + TLVs). The spec's
/// field allows 65535; the largest address block is 216 bytes (UNIX) and the TLVs HAProxy and
/// cloud load balancers send (SSL, ALPN, authority up to 255, unique id up to 128, vendor
/// ids) stay well under 1 KiB, so 2048 leaves room without letting a peer park 64 KiB.
pub const V2_MAX_PAYLOAD: usize = 2048;
/// The v1 prefix, `"PROXY "`.
const V1_PREFIX: &[u8] = b"PROXY ";

/// The default `--proxy-allow-from`: a load balancer on the same host.
pub const DEFAULT_PROXY_ALLOW_FROM: &str = "127.0.0.1,::1";

/// `--proxy-protocol`: which header every connection on the listener starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocolMode {
    /// No header; the connection's own peer address is the client.
    #[default]
    Off,
    /// A v1 (text) header is required.
    V1,
    /// A v2 (binary) header is required.
    V2,
    /// A v1 or v2 header is required, told apart by its first byte.
    Auto,
}

impl ProxyProtocolMode {
    /// A header must be read before the first request.
    pub fn expects_header(self) -> bool {
        self != ProxyProtocolMode::Off
    }
}

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The connection was relayed for `source` (the client) to `destination` (the address the
    /// client connected to on the proxy).
    Proxy {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v2 LOCAL (a health check from the proxy itself), or mode `off`: use the real endpoints.
    Local,
    /// v1 `UNKNOWN`, or v2 PROXY with a family or transport we do not serve (UNSPEC, UNIX,
    /// DGRAM): use the real endpoints.
    Unknown,
}

impl ProxyHeader {
    /// `(client, local)` as the request should see them: the header's addresses, or the
    /// connection's own `peer` and `local` when the header carries none.
    pub fn effective(&self, peer: SocketAddr, local: SocketAddr) -> (SocketAddr, SocketAddr) {
        match *self {
            ProxyHeader::Proxy {
                source,
                destination,
            } => (source, destination),
            ProxyHeader::Local | ProxyHeader::Unknown => (peer, local),
        }
    }
}

/// Result of [`parse`].
pub type Parsed = crate::parsed::Parsed<ProxyHeader>;

/// Why a connection is dropped. No response is written: the peer is not speaking HTTP yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The peer is not in `--proxy-allow-from`.
    PeerNotAllowed,
    /// The first bytes are not the header the listener requires.
    NotProxyProtocol,
    /// The header breaks the grammar; the text names the rule.
    Malformed(&'static str),
    /// No CRLF in the first [`V1_MAX_LEN`] bytes, or a v2 length over [`V2_MAX_PAYLOAD`].
    TooLong,
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::PeerNotAllowed => f.write_str("PROXY header not allowed from this peer"),
            ProxyError::NotProxyProtocol => {
                f.write_str("connection does not start with a PROXY header")
            }
            ProxyError::Malformed(what) => write!(f, "malformed PROXY header: {what}"),
            ProxyError::TooLong => f.write_str("PROXY header too long"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Whether a connection from `peer` may go on to [`parse`]: always with mode `off`, else only
/// from `--proxy-allow-from`. Checked at accept, before reading.
pub fn admit(
    mode: ProxyProtocolMode,
    peer: IpAddr,
    allow: &AddrAllowList,
) -> Result<(), ProxyError> {
    if !mode.expects_header() || allow.contains(peer) {
        Ok(())
    } else {
        Err(ProxyError::PeerNotAllowed)
    }
}

/// Parses the header `mode` requires from the front of `buf` (see the module docs). With mode
/// `off` there is none: `Complete(Local)` at once, nothing consumed.
pub fn parse(buf: &mut BytesMut, mode: ProxyProtocolMode) -> Result<Parsed, ProxyError> {
    let v1 = match mode {
        ProxyProtocolMode::Off => return Ok(Parsed::Complete(ProxyHeader::Local)),
        ProxyProtocolMode::V1 => true,
        ProxyProtocolMode::V2 => false,
        ProxyProtocolMode::Auto => match buf.first() {
            None => return Ok(Parsed::Partial),
            Some(&b) => b == V1_PREFIX[0],
        },
    };
    let (header, len) = if v1 { parse_v1(buf)? } else { parse_v2(buf)? };
    match header {
        Some(header) => {
            buf.advance(len);
            Ok(Parsed::Complete(header))
        }
        None => Ok(Parsed::Partial),
    }
}

/// `buf` starts with as much of `prefix` as it holds.
fn prefix_matches(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    buf[..n] == prefix[..n]
}

/// A v1 header and its length, `None` while incomplete.
fn parse_v1(buf: &[u8]) -> Result<(Option<ProxyHeader>, usize), ProxyError> {
    if !prefix_matches(buf, V1_PREFIX) {
        return Err(ProxyError::NotProxyProtocol);
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    let Some(lf) = memchr::memchr(b'\n', window) else {
        if buf.len() >= V1_MAX_LEN {
            return Err(ProxyError::TooLong);
        }
        return Ok((None, 0));
    };
    if lf < V1_PREFIX.len() || window[lf - 1] != b'\r' {
        return Err(ProxyError::Malformed("v1 line not ended by CRLF"));
    }
    let line = &window[V1_PREFIX.len()..lf - 1];
    Ok((Some(parse_v1_fields(line)?), lf + 1))
}

/// The fields after `"PROXY "`, without the CRLF.
fn parse_v1_fields(line: &[u8]) -> Result<ProxyHeader, ProxyError> {
    if let Some(rest) = line.strip_prefix(b"UNKNOWN") {
        // "the receiver must ignore anything presented before the CRLF"; but `UNKNOWNX` is not
        // the keyword.
        if rest.is_empty() || rest[0] == b' ' {
            return Ok(ProxyHeader::Unknown);
        }
        return Err(ProxyError::Malformed(
            "v1 protocol is not TCP4, TCP6 or UNKNOWN",
        ));
    }
    let mut fields = line.split(|&b| b == b' ');
    let mut next = || {
        fields
            .next()
            .ok_or(ProxyError::Malformed("v1 line has too few fields"))
    };
    let family = next()?;
    let v4 = match family {
        b"TCP4" => true,
        b"TCP6" => false,
        _ => {
            return Err(ProxyError::Malformed(
                "v1 protocol is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    let src = next()?;
    let dst = next()?;
    let sport = next()?;
    let dport = next()?;
    if fields.next().is_some() {
        return Err(ProxyError::Malformed("v1 line has too many fields"));
    }
    let parse_addr = |text: &[u8]| {
        if v4 {
            parse_v1_ipv4(text).map(IpAddr::V4)
        } else {
            parse_v1_ipv6(text).map(IpAddr::V6)
        }
        .ok_or(ProxyError::Malformed(
            "v1 address invalid or not of the announced family",
        ))
    };
    let src = parse_addr(src)?;
    let dst = parse_addr(dst)?;
    let sport = parse_port(sport).ok_or(ProxyError::Malformed("v1 source port invalid"))?;
    let dport = parse_port(dport).ok_or(ProxyError::Malformed("v1 destination port invalid"))?;
    Ok(ProxyHeader::Proxy {
        source: SocketAddr::new(src, sport),
        destination: SocketAddr::new(dst, dport),
    })
}

/// A decimal number in `0..=max` without sign or leading zero.
fn parse_decimal(text: &[u8], max: u32) -> Option<u32> {
    if text.is_empty() || text.len() > 5 || (text.len() > 1 && text[0] == b'0') {
        return None;
    }
    let mut value: u32 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(b - b'0');
    }
    (value <= max).then_some(value)
}

fn parse_port(text: &[u8]) -> Option<u16> {
    parse_decimal(text, u32::from(u16::MAX)).and_then(|p| u16::try_from(p).ok())
}

/// "exactly 4 integers in the range [0..255] ... separated by exactly one dot ... Heading
/// zeroes are not permitted".
fn parse_v1_ipv4(text: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split(|&b| b == b'.');
    for octet in &mut octets {
        *octet = u8::try_from(parse_decimal(parts.next()?, 255)?).ok()?;
    }
    parts.next().is_none().then(|| Ipv4Addr::from(octets))
}

/// Hex groups with at most one `::` (the standard text form; the IPv4-mapped form
/// `::ffff:1.2.3.4` that `inet_ntop` writes is accepted too).
fn parse_v1_ipv6(text: &[u8]) -> Option<Ipv6Addr> {
    if text.is_empty()
        || !text
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A v2 header and its length, `None` while incomplete. The fixed fields are checked as soon
/// as they arrive, in order, so a prefix fails exactly as the whole header does.
fn parse_v2(buf: &[u8]) -> Result<(Option<ProxyHeader>, usize), ProxyError> {
    if !prefix_matches(buf, &V2_SIGNATURE) {
        return Err(ProxyError::NotProxyProtocol);
    }
    let local = match buf.get(12) {
        None => return Ok((None, 0)),
        Some(&ver_cmd) => {
            if ver_cmd >> 4 != 2 {
                return Err(ProxyError::Malformed("v2 version is not 2"));
            }
            match ver_cmd & 0x0f {
                0 => true,
                1 => false,
                _ => return Err(ProxyError::Malformed("v2 command is not LOCAL or PROXY")),
            }
        }
    };
    let (family, transport) = match buf.get(13) {
        None => return Ok((None, 0)),
        Some(&fam) => {
            let (family, transport) = (fam >> 4, fam & 0x0f);
            if family > 3 {
                return Err(ProxyError::Malformed("v2 address family unassigned"));
            }
            if transport > 2 {
                return Err(ProxyError::Malformed("v2 transport protocol unassigned"));
            }
            (family, transport)
        }
    };
    let Some(len) = buf.get(14..16) else {
        return Ok((None, 0));
    };
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    if len > V2_MAX_PAYLOAD {
        return Err(ProxyError::TooLong);
    }
    let Some(payload) = buf.get(V2_FIXED_LEN..V2_FIXED_LEN + len) else {
        return Ok((None, 0));
    };
    let total = V2_FIXED_LEN + len;
    if local {
        // "discard the protocol block including the family which is ignored".
        return Ok((Some(ProxyHeader::Local), total));
    }
    let addr_len = match family {
        0 => 0,
        1 => 12,
        2 => 36,
        _ => 216,
    };
    if payload.len() < addr_len {
        return Err(ProxyError::Malformed(
            "v2 address block shorter than its family",
        ));
    }
    check_tlvs(&payload[addr_len..])?;
    let (addrs, stream) = (&payload[..addr_len], transport == 1);
    let header = match family {
        1 if stream => {
            let ip = |at: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    addrs[at],
                    addrs[at + 1],
                    addrs[at + 2],
                    addrs[at + 3],
                ))
            };
            let port = |at: usize| u16::from_be_bytes([addrs[at], addrs[at + 1]]);
            ProxyHeader::Proxy {
                source: SocketAddr::new(ip(0), port(8)),
                destination: SocketAddr::new(ip(4), port(10)),
            }
        }
        2 if stream => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&addrs[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([addrs[at], addrs[at + 1]]);
            ProxyHeader::Proxy {
                source: SocketAddr::new(ip(0), port(32)),
                destination: SocketAddr::new(ip(16), port(34)),
            }
        }
        _ => ProxyHeader::Unknown,
    };
    Ok((Some(header), total))
}

/// The TLVs after the address block: `type (1) | length (2, big-endian) | value`, each wholly
/// inside the header. Their contents are not used.
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyError> {
    while !tlvs.is_empty() {
        let Some(head) = tlvs.get(..3) else {
            return Err(ProxyError::Malformed("v2 TLV header truncated"));
        };
        let len = usize::from(u16::from_be_bytes([head[1], head[2]]));
        let Some(rest) = tlvs.get(3 + len..) else {
            return Err(ProxyError::Malformed("v2 TLV overruns the header"));
        };
        tlvs = rest;
    }
    Ok(())
}

/// Test and fuzz helper: a v2 header for `header` (LOCAL, or PROXY over TCP with the
/// addresses; `Unknown` as PROXY + UNSPEC), followed by `tlvs` raw TLV bytes.
pub fn encode_v2(header: &ProxyHeader, tlvs: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    let mut payload = Vec::new();
    let (ver_cmd, fam) = match *header {
        ProxyHeader::Local => (0x20, 0x00),
        ProxyHeader::Unknown => (0x21, 0x00),
        ProxyHeader::Proxy {
            source,
            destination,
        } => match (source.ip(), destination.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                payload.extend_from_slice(&s.octets());
                payload.extend_from_slice(&d.octets());
                (0x21, 0x11)
            }
            (s, d) => {
                let v6 = |ip: IpAddr| match ip {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                    IpAddr::V6(v6) => v6,
                };
                payload.extend_from_slice(&v6(s).octets());
                payload.extend_from_slice(&v6(d).octets());
                (0x21, 0x21)
            }
        },
    };
    if let ProxyHeader::Proxy {
        source,
        destination,
    } = header
    {
        payload.extend_from_slice(&source.port().to_be_bytes());
        payload.extend_from_slice(&destination.port().to_be_bytes());
    }
    payload.extend_from_slice(tlvs);
    out.push(ver_cmd);
    out.push(fam);
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    type Answer = Option<Result<(ProxyHeader, Vec<u8>), ProxyError>>;

    /// Feeds `input` in pieces of `step` bytes; `None` if it never completes.
    fn feed(input: &[u8], mode: ProxyProtocolMode, step: usize) -> Answer {
        crate::parsed::feed_in_pieces(input, step, |buf| parse(buf, mode))
    }

    /// The answer for `input` whole, checked equal for every split size.
    fn answer(input: &[u8], mode: ProxyProtocolMode) -> Answer {
        let whole = feed(input, mode, usize::MAX);
        for step in [1, 2, 3, 5, 7, 16, 64] {
            assert_eq!(feed(input, mode, step), whole, "step {step}: {input:?}");
        }
        whole
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn proxied(src: &str, dst: &str) -> ProxyHeader {
        ProxyHeader::Proxy {
            source: sa(src),
            destination: sa(dst),
        }
    }

    const NEXT: &[u8] = b"GET / HTTP/1.1\r\n";

    #[test]
    fn v1_valid() {
        let rows: &[(&[u8], ProxyHeader)] = &[
            (
                b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
                proxied("192.168.0.1:56324", "192.168.0.11:443"),
            ),
            (
                b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
                proxied("0.0.0.0:0", "255.255.255.255:65535"),
            ),
            (
                b"PROXY TCP6 2001:db8::1 ::1 4711 8000\r\n",
                proxied("[2001:db8::1]:4711", "[::1]:8000"),
            ),
            (
                b"PROXY TCP6 ::ffff:10.0.0.1 ::ffff:10.0.0.2 1 2\r\n",
                proxied("[::ffff:10.0.0.1]:1", "[::ffff:10.0.0.2]:2"),
            ),
            (
                b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
                proxied(
                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                ),
            ),
            (b"PROXY UNKNOWN\r\n", ProxyHeader::Unknown),
            (
                b"PROXY UNKNOWN ffff:f...f:ffff whatever \x01 is here\r\n",
                ProxyHeader::Unknown,
            ),
        ];
        for (line, expected) in rows {
            for mode in [ProxyProtocolMode::V1, ProxyProtocolMode::Auto] {
                let mut input = line.to_vec();
                input.extend_from_slice(NEXT);
                assert_eq!(
                    answer(&input, mode),
                    Some(Ok((*expected, NEXT.to_vec()))),
                    "{}",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }

    #[test]
    fn v1_longest_line_is_accepted_one_more_byte_is_not() {
        let full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        let line = format!("PROXY UNKNOWN {full} {full} 65535 65535\r\n");
        assert_eq!(line.len(), V1_MAX_LEN);
        assert_eq!(
            answer(line.as_bytes(), ProxyProtocolMode::V1),
            Some(Ok((ProxyHeader::Unknown, vec![])))
        );
        let line = format!("PROXY UNKNOWN {full} {full} 65535 655350\r\n");
        assert_eq!(
            answer(line.as_bytes(), ProxyProtocolMode::V1),
            Some(Err(ProxyError::TooLong))
        );
    }

    #[test]
    fn v1_invalid() {
        let malformed = |s| Some(Err(ProxyError::Malformed(s)));
        let few = malformed("v1 line has too few fields");
        let addr = malformed("v1 address invalid or not of the announced family");
        let sport = malformed("v1 source port invalid");
        let dport = malformed("v1 destination port invalid");
        let proto = malformed("v1 protocol is not TCP4, TCP6 or UNKNOWN");
        let crlf = malformed("v1 line not ended by CRLF");
        let rows: &[(&[u8], Answer)] = &[
            (
                b"GET / HTTP/1.1\r\n",
                Some(Err(ProxyError::NotProxyProtocol)),
            ),
            (
                b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
                Some(Err(ProxyError::NotProxyProtocol)),
            ),
            (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", proto.clone()),
            (
                b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
                malformed("v1 line has too many fields"),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
                malformed("v1 line has too many fields"),
            ),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", few.clone()),
            (b"PROXY TCP4\r\n", few),
            (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", proto.clone()),
            (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", proto.clone()),
            (b"PROXY UNKNOWNX\r\n", proto),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", crlf),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", dport.clone()),
            (b"PROXY\n", Some(Err(ProxyError::NotProxyProtocol))),
            (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", addr.clone()),
            (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", addr.clone()),
            (b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", addr.clone()),
            (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", addr.clone()),
            (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", addr.clone()),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", addr.clone()),
            (b"PROXY TCP6 ::1 [::1] 1 2\r\n", addr.clone()),
            (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", addr.clone()),
            (b"PROXY TCP6 1::2::3 ::1 1 2\r\n", addr),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", sport.clone()),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", sport.clone()),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", sport),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", dport.clone()),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2x\r\n", dport),
        ];
        for (input, expected) in rows {
            assert_eq!(
                &answer(input, ProxyProtocolMode::V1),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn v1_truncated_is_partial_and_garbage_fails_early() {
        for line in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"[..],
            b"PROXY TCP4 1.2",
            b"PRO",
            b"",
        ] {
            assert_eq!(answer(line, ProxyProtocolMode::V1), None);
        }
        // A wrong first byte fails at once, without waiting for a line end.
        let mut buf = BytesMut::from(&b"G"[..]);
        assert_eq!(
            parse(&mut buf, ProxyProtocolMode::V1),
            Err(ProxyError::NotProxyProtocol)
        );
        // 107 bytes without LF fail without waiting for more.
        let long = vec![b'1'; V1_MAX_LEN - 6];
        let mut input = b"PROXY ".to_vec();
        input.extend_from_slice(&long);
        assert_eq!(
            answer(&input, ProxyProtocolMode::V1),
            Some(Err(ProxyError::TooLong))
        );
        assert_eq!(
            answer(&input[..V1_MAX_LEN - 1], ProxyProtocolMode::V1),
            None
        );
    }

    fn v2(ver_cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(ver_cmd);
        out.push(fam);
        out.extend_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn v2_valid() {
        let tcp4: &[u8] = &[10, 0, 0, 1, 192, 168, 1, 2, 0x1f, 0x90, 0x01, 0xbb];
        let mut tcp6 = vec![0u8; 36];
        tcp6[15] = 1; // ::1
        tcp6[16] = 0x20;
        tcp6[17] = 0x01; // 2001::
        tcp6[32..].copy_from_slice(&[0x12, 0x34, 0x00, 0x50]);
        let mut tcp4_tlvs = tcp4.to_vec();
        // NOOP with 2 bytes, AUTHORITY "ex", an empty TLV.
        tcp4_tlvs.extend_from_slice(&[0x04, 0, 2, 0, 0, 0x02, 0, 2, b'e', b'x', 0x30, 0, 0]);
        let rows: Vec<(Vec<u8>, ProxyHeader)> = vec![
            (
                v2(0x21, 0x11, tcp4),
                proxied("10.0.0.1:8080", "192.168.1.2:443"),
            ),
            (
                v2(0x21, 0x11, &tcp4_tlvs),
                proxied("10.0.0.1:8080", "192.168.1.2:443"),
            ),
            (v2(0x21, 0x21, &tcp6), proxied("[::1]:4660", "[2001::]:80")),
            (v2(0x20, 0x00, &[]), ProxyHeader::Local),
            // LOCAL: the block is skipped whatever it holds ("must not assume zero").
            (v2(0x20, 0x11, tcp4), ProxyHeader::Local),
            (v2(0x20, 0x00, &[1, 2, 3]), ProxyHeader::Local),
            (v2(0x21, 0x00, &[]), ProxyHeader::Unknown),
            (v2(0x21, 0x12, tcp4), ProxyHeader::Unknown),
            (v2(0x21, 0x10, tcp4), ProxyHeader::Unknown),
            (v2(0x21, 0x31, &[0u8; 216]), ProxyHeader::Unknown),
        ];
        for (header, expected) in rows {
            for mode in [ProxyProtocolMode::V2, ProxyProtocolMode::Auto] {
                let mut input = header.clone();
                input.extend_from_slice(NEXT);
                assert_eq!(
                    answer(&input, mode),
                    Some(Ok((expected, NEXT.to_vec()))),
                    "{header:?}"
                );
            }
        }
    }

    #[test]
    fn v2_invalid() {
        let tcp4: &[u8] = &[10, 0, 0, 1, 192, 168, 1, 2, 0x1f, 0x90, 0x01, 0xbb];
        let malformed = |s| Some(Err(ProxyError::Malformed(s)));
        let mut bad_sig = v2(0x21, 0x11, tcp4);
        bad_sig[11] = b'X';
        let with_tlv = |tlv: &[u8]| {
            let mut p = tcp4.to_vec();
            p.extend_from_slice(tlv);
            v2(0x21, 0x11, &p)
        };
        let rows: Vec<(Vec<u8>, Answer)> = vec![
            (bad_sig, Some(Err(ProxyError::NotProxyProtocol))),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
                Some(Err(ProxyError::NotProxyProtocol)),
            ),
            (v2(0x11, 0x11, tcp4), malformed("v2 version is not 2")),
            (v2(0x31, 0x11, tcp4), malformed("v2 version is not 2")),
            (
                v2(0x22, 0x11, tcp4),
                malformed("v2 command is not LOCAL or PROXY"),
            ),
            (
                v2(0x2f, 0x11, tcp4),
                malformed("v2 command is not LOCAL or PROXY"),
            ),
            (
                v2(0x21, 0x41, tcp4),
                malformed("v2 address family unassigned"),
            ),
            (
                v2(0x21, 0x13, tcp4),
                malformed("v2 transport protocol unassigned"),
            ),
            (
                v2(0x20, 0x13, &[]),
                malformed("v2 transport protocol unassigned"),
            ),
            (
                v2(0x21, 0x11, &tcp4[..11]),
                malformed("v2 address block shorter than its family"),
            ),
            (
                v2(0x21, 0x21, tcp4),
                malformed("v2 address block shorter than its family"),
            ),
            (
                v2(0x21, 0x31, &[0u8; 215]),
                malformed("v2 address block shorter than its family"),
            ),
            (with_tlv(&[0x04]), malformed("v2 TLV header truncated")),
            (with_tlv(&[0x04, 0]), malformed("v2 TLV header truncated")),
            (
                with_tlv(&[0x04, 0, 3, 1, 2]),
                malformed("v2 TLV overruns the header"),
            ),
            (
                with_tlv(&[0x04, 0, 0, 0x04, 0xff, 0xff]),
                malformed("v2 TLV overruns the header"),
            ),
        ];
        for (input, expected) in rows {
            for mode in [ProxyProtocolMode::V2, ProxyProtocolMode::Auto] {
                // A v1 line under auto is a v1 header; skip that row there.
                if mode == ProxyProtocolMode::Auto && input.starts_with(b"PROXY") {
                    continue;
                }
                assert_eq!(answer(&input, mode), expected, "{input:?}");
            }
        }
    }

    #[test]
    fn v2_oversized_fails_on_the_length_alone() {
        let mut head = V2_SIGNATURE.to_vec();
        head.extend_from_slice(&[0x21, 0x11]);
        head.extend_from_slice(&u16::try_from(V2_MAX_PAYLOAD + 1).unwrap().to_be_bytes());
        assert_eq!(
            answer(&head, ProxyProtocolMode::V2),
            Some(Err(ProxyError::TooLong))
        );
        // The largest allowed length is waited for, then accepted (NOOP padding).
        let pad = V2_MAX_PAYLOAD - 12 - 3;
        let mut payload = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 0x04];
        payload.extend_from_slice(&u16::try_from(pad).unwrap().to_be_bytes());
        payload.resize(V2_MAX_PAYLOAD, 0);
        let input = v2(0x21, 0x11, &payload);
        assert_eq!(
            answer(&input, ProxyProtocolMode::V2),
            Some(Ok((proxied("10.0.0.1:1", "10.0.0.2:2"), vec![])))
        );
        assert_eq!(
            answer(&input[..input.len() - 1], ProxyProtocolMode::V2),
            None
        );
    }

    #[test]
    fn v2_truncated_is_partial() {
        let input = v2(0x21, 0x11, &[10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2]);
        for n in 0..input.len() {
            assert_eq!(answer(&input[..n], ProxyProtocolMode::V2), None, "{n}");
            assert_eq!(answer(&input[..n], ProxyProtocolMode::Auto), None, "{n}");
        }
    }

    #[test]
    fn wrong_version_for_the_mode() {
        let v2_local = v2(0x20, 0x00, &[]);
        assert_eq!(
            answer(&v2_local, ProxyProtocolMode::V1),
            Some(Err(ProxyError::NotProxyProtocol))
        );
        assert_eq!(
            answer(b"PROXY UNKNOWN\r\n", ProxyProtocolMode::V2),
            Some(Err(ProxyError::NotProxyProtocol))
        );
        assert_eq!(
            answer(b"GET / HTTP/1.1\r\n", ProxyProtocolMode::Auto),
            Some(Err(ProxyError::NotProxyProtocol))
        );
        assert_eq!(
            answer(b"\r\n\r\n\x00X", ProxyProtocolMode::Auto),
            Some(Err(ProxyError::NotProxyProtocol))
        );
    }

    #[test]
    fn off_mode_consumes_nothing() {
        let mut buf = BytesMut::from(NEXT);
        assert_eq!(
            parse(&mut buf, ProxyProtocolMode::Off),
            Ok(Parsed::Complete(ProxyHeader::Local))
        );
        assert_eq!(&buf[..], NEXT);
        assert!(!ProxyProtocolMode::Off.expects_header());
        assert!(ProxyProtocolMode::Auto.expects_header());
    }

    #[test]
    fn admit_checks_the_allow_list_only_when_on() {
        let allow = AddrAllowList::parse("10.0.0.0/8").unwrap();
        let inside: IpAddr = "10.1.1.1".parse().unwrap();
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(admit(ProxyProtocolMode::Off, outside, &allow), Ok(()));
        assert_eq!(admit(ProxyProtocolMode::V1, inside, &allow), Ok(()));
        assert_eq!(
            admit(
                ProxyProtocolMode::Auto,
                "::ffff:10.0.0.9".parse().unwrap(),
                &allow
            ),
            Ok(())
        );
        assert_eq!(
            admit(ProxyProtocolMode::V2, outside, &allow),
            Err(ProxyError::PeerNotAllowed)
        );
        assert!(!ProxyError::PeerNotAllowed.to_string().is_empty());
    }

    #[test]
    fn effective_addresses() {
        let (peer, local) = (sa("127.0.0.1:5000"), sa("127.0.0.1:8000"));
        let h = proxied("203.0.113.7:4444", "198.51.100.1:443");
        assert_eq!(
            h.effective(peer, local),
            (sa("203.0.113.7:4444"), sa("198.51.100.1:443"))
        );
        assert_eq!(ProxyHeader::Local.effective(peer, local), (peer, local));
        assert_eq!(ProxyHeader::Unknown.effective(peer, local), (peer, local));
    }

    #[test]
    fn encoder_round_trip() {
        let headers = [
            ProxyHeader::Local,
            ProxyHeader::Unknown,
            proxied("1.2.3.4:5", "6.7.8.9:10"),
            proxied("[2001:db8::1]:5", "[::1]:10"),
        ];
        for h in headers {
            for tlvs in [&[][..], &[0x04, 0, 1, 0xff][..]] {
                let input = encode_v2(&h, tlvs);
                assert_eq!(answer(&input, ProxyProtocolMode::V2), Some(Ok((h, vec![]))));
            }
        }
    }

    #[test]
    fn mode_deserializes_lowercase() {
        for (text, mode) in [
            ("\"off\"", ProxyProtocolMode::Off),
            ("\"v1\"", ProxyProtocolMode::V1),
            ("\"v2\"", ProxyProtocolMode::V2),
            ("\"auto\"", ProxyProtocolMode::Auto),
        ] {
            assert_eq!(
                serde_json::from_str::<ProxyProtocolMode>(text).unwrap(),
                mode
            );
        }
        assert!(serde_json::from_str::<ProxyProtocolMode>("\"V1\"").is_err());
        assert_eq!(ProxyProtocolMode::default(), ProxyProtocolMode::Off);
    }
}
