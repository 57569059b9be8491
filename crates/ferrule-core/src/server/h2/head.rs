//! An HTTP/2 request's header block turned into the [`RequestHead`] every request has, so the
//! environ and every hostile-input rule are the HTTP/1 ones: the block is written out as an
//! HTTP/1.1 head (`METHOD :path HTTP/1.1`, `Host: :authority`, the regular fields) and parsed
//! by [`parse_head`] with the server's limits, then marked HTTP/2 ([`RequestHead::into_h2`]).
//!
//! Rules owned here (the `h2` crate already enforces the framing-level ones: pseudo-header
//! order and repeats, lowercase names, connection-specific fields, `TE` other than `trailers`):
//! - RFC 9113 §8.2.1: "A field name MUST NOT contain characters in the ranges 0x00-0x20,
//!   0x41-0x5a, or 0x7f-0xff"; "A field value MUST NOT contain the zero value (ASCII NUL;
//!   0x00), line feed (ASCII LF; 0x0a), or carriage return (ASCII CR; 0x0d) at any
//!   position"; "A field value MUST NOT start or end with an ASCII whitespace character".
//!   Checked again here, before any byte is written into the HTTP/1 form, so no value can
//!   ever add a line to it.
//! - RFC 9113 §8.2.2: "An endpoint MUST NOT generate an HTTP/2 message containing
//!   connection-specific header fields ... Connection, Keep-Alive, Proxy-Connection,
//!   Transfer-Encoding, Upgrade": such a request is malformed (400).
//! - RFC 9113 §8.2.3: a client may split `Cookie` into several fields; they are joined with
//!   `"; "` into one (as the environ would), so they count as one field against the limits.
//! - RFC 9113 §8.3.1: ":authority ... Clients that generate HTTP/2 requests directly MUST use
//!   the :authority pseudo-header field to convey authority information"; "A server SHOULD
//!   treat a request as malformed if it contains a Host header field that identifies an entity
//!   that differs from the entity in the :authority pseudo-header field": `:authority` becomes
//!   `Host`; a differing `Host` is a 400. Without either, the request is refused like an
//!   HTTP/1.1 request without `Host` (400).
//! - Malformed requests: RFC 9113 §8.1.1 "a server MAY send an HTTP response prior to closing
//!   or resetting the stream": the caller answers with the error's declared outcome.

use bytes::{BufMut, BytesMut};
use hyper::http::request::Parts;

use crate::http1::{parse_head, HeadLimits, Parsed, RequestError, RequestHead};

/// Fields that only mean something for one HTTP/1 connection (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// The request head of an HTTP/2 stream, checked by the HTTP/1 rules and limits.
pub(crate) fn request_head(
    parts: &Parts,
    limits: &HeadLimits,
) -> Result<RequestHead, RequestError> {
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(parts.method.as_str().as_bytes());
    out.put_u8(b' ');
    match (parts.uri.path_and_query(), parts.uri.authority()) {
        (Some(pq), _) if !pq.as_str().is_empty() => out.put_slice(pq.as_str().as_bytes()),
        // CONNECT has no :path, only the authority (refused later: 501).
        (_, Some(authority)) => out.put_slice(authority.as_str().as_bytes()),
        _ => return Err(RequestError::Malformed("request without :path")),
    }
    out.put_slice(b" HTTP/1.1\r\n");

    let authority = parts.uri.authority().map(|a| a.as_str());
    if let Some(authority) = authority {
        check_value(authority.as_bytes())?;
        out.put_slice(b"host: ");
        out.put_slice(authority.as_bytes());
        out.put_slice(b"\r\n");
    }
    let mut cookies: Option<BytesMut> = None;
    for (name, value) in &parts.headers {
        let name = name.as_str();
        let value = value.as_bytes();
        check_name(name.as_bytes())?;
        check_value(value)?;
        if CONNECTION_SPECIFIC.contains(&name) {
            return Err(RequestError::Malformed(
                "connection-specific field in an HTTP/2 request",
            ));
        }
        if name == "te" && value != b"trailers" {
            return Err(RequestError::Malformed("TE other than trailers in HTTP/2"));
        }
        if name == "host" {
            if let Some(authority) = authority {
                if !value.eq_ignore_ascii_case(authority.as_bytes()) {
                    return Err(RequestError::InvalidHost("Host differs from :authority"));
                }
                continue;
            }
        }
        if name == "cookie" {
            match &mut cookies {
                Some(c) => {
                    c.put_slice(b"; ");
                    c.put_slice(value);
                }
                None => cookies = Some(BytesMut::from(value)),
            }
            continue;
        }
        put_field(&mut out, name.as_bytes(), value);
    }
    if let Some(c) = cookies {
        put_field(&mut out, b"cookie", &c);
    }
    out.put_slice(b"\r\n");
    match parse_head(&mut out, limits)? {
        Parsed::Complete(head) => Ok(head.into_h2()),
        // Unreachable: the head written above is complete.
        Parsed::Partial => Err(RequestError::Malformed("incomplete request head")),
    }
}

fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

/// RFC 9113 §8.2.1 field-name rule (the token rule is [`parse_head`]'s).
fn check_name(name: &[u8]) -> Result<(), RequestError> {
    if name
        .iter()
        .any(|&b| b <= 0x20 || b.is_ascii_uppercase() || b >= 0x7f)
    {
        return Err(RequestError::Malformed("invalid HTTP/2 field name"));
    }
    Ok(())
}

/// RFC 9113 §8.2.1 field-value rules.
fn check_value(value: &[u8]) -> Result<(), RequestError> {
    if value.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')) {
        return Err(RequestError::Malformed("NUL, CR or LF in an HTTP/2 field"));
    }
    let ws = |b: Option<&u8>| b.is_some_and(|&b| b == b' ' || b == b'\t');
    if ws(value.first()) || ws(value.last()) {
        return Err(RequestError::Malformed(
            "HTTP/2 field value with surrounding whitespace",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{BodyFraming, Version};
    use hyper::http::{HeaderValue, Request};

    const LIMITS: HeadLimits = HeadLimits {
        request_line: 8190,
        fields: 100,
        field_size: 8190,
        head: 64 * 1024,
    };

    fn parts(method: &str, uri: &str, headers: &[(&str, &[u8])]) -> Parts {
        let mut req = Request::builder().method(method).uri(uri);
        for (n, v) in headers {
            req = req.header(*n, HeaderValue::from_bytes(v).unwrap());
        }
        req.body(()).unwrap().into_parts().0
    }

    fn status(p: &Parts) -> u16 {
        request_head(p, &LIMITS).unwrap_err().status()
    }

    #[test]
    fn a_simple_stream_becomes_an_http2_head() {
        let p = parts(
            "POST",
            "http://example.com:8443/a/b%20c?x=1",
            &[
                ("content-type", b"text/plain"),
                ("content-length", b"5"),
                ("cookie", b"a=1"),
                ("x-thing", b"v"),
                ("cookie", b"b=2"),
            ],
        );
        let h = request_head(&p, &LIMITS).unwrap();
        assert_eq!(h.version(), Version::Http2);
        assert_eq!(h.version().as_str(), "HTTP/2");
        assert_eq!(h.method(), b"POST");
        assert_eq!(h.target(), b"/a/b%20c?x=1");
        assert_eq!(h.path(), b"/a/b%20c");
        assert_eq!(h.query(), b"x=1");
        assert_eq!(h.host(), Some(&b"example.com:8443"[..]));
        assert_eq!(h.framing(), BodyFraming::Length(5));
        assert_eq!(h.header(b"cookie"), Some(&b"a=1; b=2"[..]));
        assert_eq!(h.header(b"x-thing"), Some(&b"v"[..]));
        assert!(h.wants_keep_alive());
        assert!(!h.expects_continue());
    }

    #[test]
    fn host_without_authority_is_used_and_a_matching_one_kept_once() {
        let h = request_head(&parts("GET", "/", &[("host", b"h:1")]), &LIMITS).unwrap();
        assert_eq!(h.host(), Some(&b"h:1"[..]));
        let h = request_head(&parts("GET", "http://h/", &[("host", b"H")]), &LIMITS).unwrap();
        assert_eq!(h.header_count(), 1);
        assert_eq!(h.host(), Some(&b"h"[..]));
    }

    #[test]
    fn hostile_streams_get_the_http1_answers() {
        // :authority and Host disagree (RFC 9113 §8.3.1).
        assert_eq!(status(&parts("GET", "http://a/", &[("host", b"b")])), 400);
        // No authority at all.
        assert_eq!(status(&parts("GET", "/", &[])), 400);
        // Connection-specific fields (RFC 9113 §8.2.2).
        for name in CONNECTION_SPECIFIC {
            assert_eq!(
                status(&parts("GET", "http://a/", &[(name, b"x")])),
                400,
                "{name}"
            );
        }
        assert_eq!(status(&parts("GET", "http://a/", &[("te", b"gzip")])), 400);
        assert!(request_head(&parts("GET", "http://a/", &[("te", b"trailers")]), &LIMITS).is_ok());
        // Surrounding whitespace; obs-text is allowed (latin-1 values).
        assert_eq!(status(&parts("GET", "http://a/", &[("x", b" v")])), 400);
        assert_eq!(status(&parts("GET", "http://a/", &[("x", b"v\t")])), 400);
        assert!(request_head(&parts("GET", "http://a/", &[("x", b"caf\xe9")]), &LIMITS).is_ok());
        // The HTTP/1 rules: framing, methods, expectations.
        assert_eq!(
            status(&parts("POST", "http://a/", &[("content-length", b"x")])),
            400
        );
        assert_eq!(status(&parts("CONNECT", "a:443", &[])), 501);
        assert_eq!(
            status(&parts("GET", "http://a/", &[("expect", b"magic")])),
            417
        );
    }

    #[test]
    fn the_limits_apply() {
        let small = HeadLimits {
            request_line: 32,
            fields: 2,
            field_size: 32,
            head: 256,
        };
        let long_path = format!("http://a/{}", "x".repeat(40));
        assert_eq!(
            request_head(&parts("GET", &long_path, &[]), &small)
                .unwrap_err()
                .status(),
            414
        );
        let p = parts("GET", "http://a/", &[("x", b"1"), ("y", b"2")]);
        assert_eq!(request_head(&p, &small).unwrap_err().status(), 431);
        let big = [b'v'; 40];
        let p = parts("GET", "http://a/", &[("x", &big[..])]);
        assert_eq!(request_head(&p, &small).unwrap_err().status(), 431);
        // Split cookies count as one field.
        let p = parts(
            "GET",
            "http://a/",
            &[("cookie", b"a=1"), ("cookie", b"b=2")],
        );
        assert!(request_head(&p, &small).is_ok());
    }

    #[test]
    fn names_and_values_are_checked_before_serialising() {
        assert!(check_name(b"x-ok").is_ok());
        assert!(check_name(b"X-Up").is_err());
        assert!(check_name(b"a b").is_err());
        assert!(check_name(b"caf\xe9").is_err());
        assert!(check_value(b"a\r\nx: y").is_err());
        assert!(check_value(b"a\0").is_err());
        assert!(check_value(b"").is_ok());
    }
}
