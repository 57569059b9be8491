//! `proxy_protocol::parse` on arbitrary bytes fed in arbitrary fragments, in every mode. Checks:
//! - never panics; never consumes on `Partial`; never consumes more than the longest header;
//! - the same answer (header and rest, or error) whether fed whole or in fragments;
//! - round trips: a v2 header from the reference encoder (`encode_v2`, addresses and TLVs
//!   taken from the input) and a v1 line written with `format!` parse back to exactly the
//!   addresses they carry, in any fragments, under their mode and `auto`, leaving exactly the
//!   bytes that follow.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::BytesMut;
use ferrule_core::proxy_protocol::{
    encode_v2, parse, Parsed, ProxyError, ProxyHeader, ProxyProtocolMode, V1_MAX_LEN, V2_FIXED_LEN,
    V2_MAX_PAYLOAD,
};
use libfuzzer_sys::fuzz_target;

type Answer = Option<Result<(ProxyHeader, Vec<u8>), ProxyError>>;

fn feed(input: &[u8], mode: ProxyProtocolMode, pieces: &[usize]) -> Answer {
    let mut buf = BytesMut::new();
    let mut at = 0;
    for &n in pieces {
        buf.extend_from_slice(&input[at..at + n]);
        at += n;
        let before = buf.len();
        match parse(&mut buf, mode) {
            Ok(Parsed::Partial) => assert_eq!(buf.len(), before, "Partial consumed"),
            Ok(Parsed::Complete(h)) => {
                let consumed = before - buf.len();
                assert!(consumed <= V1_MAX_LEN.max(V2_FIXED_LEN + V2_MAX_PAYLOAD));
                let mut rest = buf.to_vec();
                rest.extend_from_slice(&input[at..]);
                return Some(Ok((h, rest)));
            }
            Err(e) => return Some(Err(e)),
        }
    }
    None
}

/// Addresses of one family built from input bytes.
fn addrs(bytes: &[u8], v6: bool) -> (SocketAddr, SocketAddr) {
    let mut b = [0u8; 36];
    for (i, x) in bytes.iter().take(36).enumerate() {
        b[i] = *x;
    }
    let port = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    if v6 {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s.copy_from_slice(&b[..16]);
        d.copy_from_slice(&b[16..32]);
        (
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(s)), port(32)),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(d)), port(34)),
        )
    } else {
        (
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])), port(8)),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])), port(10)),
        )
    }
}

/// Well-formed TLVs carrying `data` (each at most 255 bytes, type from the data).
fn tlvs(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(255) {
        out.push(chunk[0]);
        out.extend_from_slice(&u16::try_from(chunk.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (seed, payload) = ferrule_fuzz::seed_and_payload(data);
    let pieces = ferrule_fuzz::fragments(seed, payload.len());
    let whole = ferrule_fuzz::fragments(0, payload.len());
    for mode in [
        ProxyProtocolMode::V1,
        ProxyProtocolMode::V2,
        ProxyProtocolMode::Auto,
    ] {
        assert_eq!(
            feed(payload, mode, &pieces),
            feed(payload, mode, &whole),
            "{mode:?}"
        );
    }

    // Round trips.
    const NEXT: &[u8] = b"GET / HTTP/1.1\r\n";
    let v6 = seed & 0x80 != 0;
    let (source, destination) = addrs(payload, v6);
    let header = match seed % 3 {
        0 => ProxyHeader::Local,
        1 => ProxyHeader::Unknown,
        _ => ProxyHeader::Proxy {
            source,
            destination,
        },
    };
    let extra = payload.get(36..).unwrap_or(&[]);
    let extra = &extra[..extra.len().min(V2_MAX_PAYLOAD - 36 - 3 * 8)];
    let mut input = encode_v2(&header, &tlvs(extra));
    input.extend_from_slice(NEXT);
    for mode in [ProxyProtocolMode::V2, ProxyProtocolMode::Auto] {
        let got = feed(&input, mode, &ferrule_fuzz::fragments(seed, input.len()));
        assert_eq!(got, Some(Ok((header, NEXT.to_vec()))));
    }

    let line = match header {
        ProxyHeader::Proxy {
            source,
            destination,
        } => format!(
            "PROXY {} {} {} {} {}\r\n",
            if v6 { "TCP6" } else { "TCP4" },
            source.ip(),
            destination.ip(),
            source.port(),
            destination.port()
        ),
        _ => "PROXY UNKNOWN\r\n".to_owned(),
    };
    let expected = match header {
        ProxyHeader::Local => ProxyHeader::Unknown,
        h => h,
    };
    let mut input = line.into_bytes();
    input.extend_from_slice(NEXT);
    for mode in [ProxyProtocolMode::V1, ProxyProtocolMode::Auto] {
        let got = feed(&input, mode, &ferrule_fuzz::fragments(seed, input.len()));
        assert_eq!(got, Some(Ok((expected, NEXT.to_vec()))));
    }
});
