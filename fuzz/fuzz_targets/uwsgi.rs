//! `uwsgi::parse_packet` on arbitrary bytes fed in arbitrary fragments. Checks:
//! - never panics; never consumes on `Partial`; the same answer (variables and rest, or error
//!   status) whether fed whole or in fragments; error statuses are 400 or 431;
//! - round trip: variables cut from the input, encoded by the reference encoder
//!   (`encode_packet`), either are refused or parse back to exactly themselves, in order,
//!   leaving exactly the body bytes that follow;
//! - a valid packet (the required variables plus `HTTP_*` variables derived from the input)
//!   is always accepted, and its environ has no duplicate key, `HTTP_*` keys of `[A-Z0-9_]`
//!   only, no `HTTP_CONTENT_*`, and the required values as sent.
#![no_main]

use bytes::BytesMut;
use ferrule_core::environ::{CgiKey, EnvKey};
use ferrule_core::uwsgi::{encode_packet, parse_packet, Parsed, UwsgiLimits, UwsgiRequest};
use libfuzzer_sys::fuzz_target;

type Answer = Option<Result<(Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>), u16>>;

fn feed(input: &[u8], limits: &UwsgiLimits, pieces: &[usize]) -> (Answer, Option<UwsgiRequest>) {
    let mut buf = BytesMut::new();
    let mut at = 0;
    for &n in pieces {
        buf.extend_from_slice(&input[at..at + n]);
        at += n;
        let before = buf.len();
        match parse_packet(&mut buf, limits) {
            Ok(Parsed::Partial) => assert_eq!(buf.len(), before, "Partial consumed"),
            Ok(Parsed::Complete(req)) => {
                let mut rest = buf.to_vec();
                rest.extend_from_slice(&input[at..]);
                let vars = req.vars().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
                return (Some(Ok((vars, rest))), Some(req));
            }
            Err(e) => {
                assert!(matches!(e.status(), 400 | 431), "{e:?}");
                return (Some(Err(e.status())), None);
            }
        }
    }
    (None, None)
}

fuzz_target!(|data: &[u8]| {
    let (seed, payload) = ferrule_fuzz::seed_and_payload(data);
    let limits = if seed & 0x80 != 0 {
        UwsgiLimits {
            vars_size: 256,
            vars: 8,
            value_size: 32,
        }
    } else {
        UwsgiLimits::default()
    };
    let pieces = ferrule_fuzz::fragments(seed, payload.len());
    let whole = ferrule_fuzz::fragments(0, payload.len());
    assert_eq!(
        feed(payload, &limits, &pieces).0,
        feed(payload, &limits, &whole).0
    );

    // Raw round trip: `\0`-separated key/value pairs from the input, the tail as the body.
    let mut parts = payload.split(|&b| b == 0);
    let mut vars: Vec<(&[u8], &[u8])> = Vec::new();
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        vars.push((k, v));
    }
    let body = b"body";
    let mut input = encode_packet(&vars);
    if input.len() - 4 <= usize::from(u16::MAX) {
        input.extend_from_slice(body);
        let (answer, _) = feed(&input, &limits, &ferrule_fuzz::fragments(seed, input.len()));
        if let Some(Ok((got, rest))) = answer {
            let sent: Vec<(Vec<u8>, Vec<u8>)> =
                vars.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            assert_eq!(got, sent);
            assert_eq!(rest, body);
        }
    }

    // A valid packet: required variables + HTTP_* names/values sanitized from the input.
    let mut owned: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"REQUEST_METHOD".to_vec(), b"POST".to_vec()),
        (b"REQUEST_URI".to_vec(), b"/p%20q?x=1".to_vec()),
        (b"SERVER_PROTOCOL".to_vec(), b"HTTP/1.1".to_vec()),
        (b"CONTENT_LENGTH".to_vec(), b"4".to_vec()),
    ];
    for chunk in payload.chunks(7).take(32) {
        let name: Vec<u8> = chunk[..chunk.len().min(3)]
            .iter()
            .map(|&b| b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"[usize::from(b) % 37])
            .collect();
        let mut key = b"HTTP_".to_vec();
        key.extend_from_slice(&name);
        let value: Vec<u8> = chunk
            .iter()
            .map(|&b| if b < 0x20 || b == 0x7f { b'.' } else { b })
            .collect();
        owned.push((key, value));
    }
    let vars: Vec<(&[u8], &[u8])> = owned.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    let mut input = encode_packet(&vars);
    input.extend_from_slice(body);
    let (answer, req) = feed(
        &input,
        &UwsgiLimits::default(),
        &ferrule_fuzz::fragments(seed, input.len()),
    );
    assert!(
        matches!(answer, Some(Ok((_, ref rest))) if rest == body),
        "{answer:?}"
    );
    let req = req.expect("accepted");
    let env = req.cgi_variables(&ferrule_fuzz::conn_info(false));
    for (i, (key, _)) in env.iter().enumerate() {
        assert!(!env[..i].iter().any(|(k, _)| k == key), "duplicate {key:?}");
        if let EnvKey::Http(h) = key {
            let name = h.strip_prefix(b"HTTP_").expect("HTTP_ prefix");
            assert!(!name.is_empty());
            assert!(name
                .iter()
                .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'));
            assert!(name != b"CONTENT_TYPE" && name != b"CONTENT_LENGTH");
        }
    }
    let get = |k: CgiKey| {
        env.iter()
            .find(|(x, _)| *x == EnvKey::Cgi(k))
            .map(|(_, v)| v.as_ref())
    };
    assert_eq!(get(CgiKey::RequestMethod), Some(&b"POST"[..]));
    assert_eq!(get(CgiKey::PathInfo), Some(&b"/p q"[..]));
    assert_eq!(get(CgiKey::QueryString), Some(&b"x=1"[..]));
    assert_eq!(get(CgiKey::ContentLength), Some(&b"4"[..]));
});
