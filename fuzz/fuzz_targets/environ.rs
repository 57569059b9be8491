//! The environ builder (`ferrule_core::environ`) on every head `parse_head` accepts from
//! arbitrary bytes (server default limits, pipelined heads included), with a fixed connection.
//! Checks, besides never panicking:
//! - every `HTTP_*` key is `HTTP_` + `[A-Z0-9_]+` (what a CGI variable name may hold), and no
//!   key appears twice;
//! - no `HTTP_CONTENT_TYPE` / `HTTP_CONTENT_LENGTH`; `CONTENT_LENGTH` exactly when the body has a
//!   length, equal to it; `QUERY_STRING` always present;
//! - the values are what the head says: `REQUEST_METHOD`, `RAW_URI`/`REQUEST_URI`,
//!   `QUERY_STRING`, `SERVER_PROTOCOL`, `PATH_INFO` (the path percent-decoded), `SCRIPT_NAME`
//!   empty, `REMOTE_*` the peer, `SERVER_NAME`/`SERVER_PORT` taken from the authority or the
//!   local address;
//! - the `HTTP_*` and `CONTENT_TYPE` entries equal a reference model of the rules in the module
//!   docs (names upper-cased, `-` to `_`, names with `_` dropped, repeats joined with `,`,
//!   cookies with `; `, `HTTP_HOST` the absolute-form target's authority when there is one);
//! - percent-decoding never grows the input and leaves input without a valid escape unchanged.
#![no_main]

use std::borrow::Cow;

use bytes::{Buf, BytesMut};
use ferrule_core::environ::{cgi_variables, percent_decode, request_parts, CgiKey, EnvKey};
use ferrule_core::exchange::ConnInfo;
use ferrule_core::http1::{self, parse_head, BodyFraming, Parsed, RequestHead};
use libfuzzer_sys::fuzz_target;

/// Most pipelined heads checked per input (bounds the work per input).
const MAX_HEADS: usize = 32;

/// The key as bytes (`REQUEST_METHOD`, `HTTP_USER_AGENT`...).
fn key_bytes(key: &EnvKey) -> &[u8] {
    match key {
        EnvKey::Cgi(c) => c.as_str().as_bytes(),
        EnvKey::Http(h) => h,
        EnvKey::Other(o) => o.as_bytes(),
    }
}

/// The reference model of the header-derived entries: (key, joined value) in first-seen order.
fn expected_header_vars(head: &RequestHead) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (name, value) in head.headers() {
        // Only names of letters, digits and `-` map one-to-one onto CGI names (RFC 3875 §4.1.18);
        // the rest (`_`, `.`, `~`, ...) are dropped.
        let maps_to_cgi = name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-');
        if name.eq_ignore_ascii_case(b"content-length") || !maps_to_cgi {
            continue;
        }
        // The fuzz connection (10.1.2.3) is not a trusted proxy: forwarding headers (Forwarded,
        // X-Forwarded-*, X-Real-IP, ...) are removed before the app sees them.
        if ferrule_core::forwarded::is_forwarding_header(name) {
            continue;
        }
        let key = if name.eq_ignore_ascii_case(b"content-type") {
            b"CONTENT_TYPE".to_vec()
        } else {
            let mut k = b"HTTP_".to_vec();
            k.extend(name.iter().map(|&b| match b {
                b'-' => b'_',
                b => b.to_ascii_uppercase(),
            }));
            k
        };
        // RFC 9112 §3.2.2: an absolute-form target's authority replaces the Host field.
        let value = if name.eq_ignore_ascii_case(b"host") {
            head.host().unwrap_or(value)
        } else {
            value
        };
        let sep: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
            b"; "
        } else {
            b","
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                v.extend_from_slice(sep);
                v.extend_from_slice(value);
            }
            None => out.push((key, value.to_vec())),
        }
    }
    out
}

fn check_environ(head: &RequestHead, conn: &ConnInfo) {
    let vars = cgi_variables(request_parts(head, conn));
    let get = |key: CgiKey| -> Option<&[u8]> {
        vars.iter()
            .find(|(k, _)| *k == EnvKey::Cgi(key))
            .map(|(_, v)| v.as_ref())
    };

    for (i, (key, _)) in vars.iter().enumerate() {
        let k = key_bytes(key);
        assert!(
            !vars[..i].iter().any(|(other, _)| key_bytes(other) == k),
            "duplicate key {:?}",
            String::from_utf8_lossy(k)
        );
        if let Some(rest) = k.strip_prefix(b"HTTP_") {
            assert!(
                !rest.is_empty()
                    && rest
                        .iter()
                        .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "invalid CGI variable name {:?}",
                String::from_utf8_lossy(k)
            );
            assert!(k != b"HTTP_CONTENT_TYPE" && k != b"HTTP_CONTENT_LENGTH");
        }
    }

    assert_eq!(get(CgiKey::RequestMethod), Some(head.method()));
    assert_eq!(get(CgiKey::ScriptName), Some(&b""[..]));
    assert_eq!(get(CgiKey::QueryString), Some(head.query()));
    assert_eq!(get(CgiKey::RawUri), Some(head.target()));
    assert_eq!(get(CgiKey::RequestUri), Some(head.target()));
    assert_eq!(
        get(CgiKey::ServerProtocol),
        Some(head.version().as_str().as_bytes())
    );
    let path_info = http1::percent_decode(head.path());
    assert_eq!(get(CgiKey::PathInfo), Some(&path_info[..]));
    let peer_ip = conn.peer.ip().to_string();
    let peer_port = conn.peer.port().to_string();
    assert_eq!(get(CgiKey::RemoteAddr), Some(peer_ip.as_bytes()));
    assert_eq!(get(CgiKey::RemotePort), Some(peer_port.as_bytes()));

    match head.framing() {
        BodyFraming::Length(n) => {
            let v = get(CgiKey::ContentLength).expect("CONTENT_LENGTH for a sized body");
            assert_eq!(Some(v), head.header(b"content-length"));
            let parsed = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            assert_eq!(parsed, Some(n));
        }
        BodyFraming::Chunked | BodyFraming::None => {
            assert_eq!(get(CgiKey::ContentLength), None);
        }
    }

    check_server_name(
        head.host(),
        get(CgiKey::ServerName),
        get(CgiKey::ServerPort),
        conn,
    );

    let model = expected_header_vars(head);
    let built: Vec<(&[u8], &[u8])> = vars
        .iter()
        .filter(|(k, _)| matches!(k, EnvKey::Http(_)) || *k == EnvKey::Cgi(CgiKey::ContentType))
        .map(|(k, v)| (key_bytes(k), v.as_ref()))
        .collect();
    let model: Vec<(&[u8], &[u8])> = model
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    assert_eq!(built, model);
}

/// `SERVER_NAME`/`SERVER_PORT`: the authority's host and port (the scheme's default port when it
/// has none), or the local address when there is no usable authority.
fn check_server_name(
    host: Option<&[u8]>,
    name: Option<&[u8]>,
    port: Option<&[u8]>,
    conn: &ConnInfo,
) {
    let (Some(name), Some(port)) = (name, port) else {
        panic!("SERVER_NAME and SERVER_PORT are always set");
    };
    assert!(!name.is_empty());
    assert!(!port.is_empty() && port.iter().all(u8::is_ascii_digit));
    let local_ip = conn.local.ip().to_string();
    let local_port = conn.local.port().to_string();
    let is_local = name == local_ip.as_bytes() && port == local_port.as_bytes();
    let Some(host) = host else {
        assert!(is_local, "no authority: the local address");
        return;
    };
    let default_port: &[u8] = if conn.scheme == "https" {
        b"443"
    } else {
        b"80"
    };
    let from_host = match host.strip_prefix(name) {
        Some(b"") | Some(b":") => port == default_port,
        Some(rest) => rest.strip_prefix(b":") == Some(port),
        None => false,
    };
    assert!(from_host || is_local, "SERVER_NAME/PORT not from {host:?}");
}

fuzz_target!(|data: &[u8]| {
    let (seed, payload) = ferrule_fuzz::seed_and_payload(data);

    // Percent-decoding (one implementation, shared by PATH_INFO, uwsgi and static files): each
    // valid escape shrinks the input by two bytes, nothing else changes its length, and input
    // without `%` comes back borrowed and unchanged.
    let decoded: Cow<'_, [u8]> = percent_decode(payload);
    let escapes = payload
        .windows(3)
        .enumerate()
        .filter(|(_, w)| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
        .count();
    assert!(decoded.len() <= payload.len());
    if !payload.contains(&b'%') {
        assert!(matches!(decoded, Cow::Borrowed(d) if d == payload));
    }
    if escapes == 0 {
        assert_eq!(&*decoded, payload);
    }

    let conn = ferrule_fuzz::conn_info(seed & 1 != 0);
    let limits = ferrule_fuzz::default_limits();
    let mut buf = BytesMut::from(payload);
    for _ in 0..MAX_HEADS {
        match parse_head(&mut buf, &limits) {
            Ok(Parsed::Complete(head)) => {
                check_environ(&head, &conn);
                // Skip a sized body, as the connection would, to reach the next head.
                if let BodyFraming::Length(n) = head.framing() {
                    let n = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                    buf.advance(n);
                }
            }
            Ok(Parsed::Partial) | Err(_) => break,
        }
    }
});
