//! `parse_head` on arbitrary bytes fed in arbitrary fragments, with small limits (so every limit
//! is reachable) and with the server's default limits. Checks:
//! - never panics; never consumes on `Partial`;
//! - the same answer (head bytes and rest, or error status) whether fed whole or in fragments;
//! - on `Complete`: the input is (empty lines) + head + rest, the head ends with the blank line,
//!   starts with the method, respects the limits, and its parts agree with its bytes (the query is
//!   what follows the target's first `?`, the path's `%` escapes are valid);
//! - re-parsing what follows a complete head (pipelining) never panics either.
#![no_main]

use bytes::BytesMut;
use ferrule_core::http1::{parse_head, HeadLimits, Parsed, RequestHead};
use libfuzzer_sys::fuzz_target;

/// Small limits, so the fuzzer reaches each of them with short inputs.
const SMALL: HeadLimits = HeadLimits {
    request_line: 512,
    fields: 16,
    field_size: 256,
    head: 2048,
};

/// Most pipelined heads re-parsed after the first one (bounds the work per input).
const MAX_PIPELINED: usize = 64;

/// What the head says about itself, checked against its bytes.
fn check_head(head: &RequestHead, limits: &HeadLimits) {
    let bytes = head.as_bytes();
    assert!(bytes.len() <= limits.head);
    assert!(bytes.ends_with(b"\r\n\r\n"));
    assert!(bytes.starts_with(head.method()));
    assert!(!head.method().is_empty());
    let request_line_len = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a complete head has a request line");
    assert!(request_line_len <= limits.request_line);
    assert!(head.header_count() <= limits.fields);
    assert_eq!(head.headers().count(), head.header_count());
    for (name, value) in head.headers() {
        assert!(!name.is_empty());
        assert!(name.len() + 1 + value.len() <= limits.field_size);
        assert!(!value.starts_with(b" ") && !value.ends_with(b" "));
        assert!(!value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0));
    }
    let target = head.target();
    let query: &[u8] = match target.iter().position(|&b| b == b'?') {
        Some(q) => &target[q + 1..],
        None => b"",
    };
    assert_eq!(head.query(), query);
    let mut path = head.path();
    while let Some(i) = path.iter().position(|&b| b == b'%') {
        assert!(path.len() > i + 2 && path[i + 1].is_ascii_hexdigit());
        assert!(path[i + 2].is_ascii_hexdigit());
        path = &path[i + 3..];
    }
    let _ = (head.host(), head.framing(), head.is_head());
    let _ = (head.wants_keep_alive(), head.expects_continue());
    let _ = head.header(b"host");
}

/// A complete head's bytes and what followed it, or an error status.
type Answer = Result<(Vec<u8>, Vec<u8>), u16>;

/// The answer to feeding `payload` as `pieces`; `None` while still partial.
fn feed(payload: &[u8], pieces: &[usize], limits: &HeadLimits) -> Option<Answer> {
    let mut buf = BytesMut::new();
    let mut at = 0;
    for &n in pieces {
        buf.extend_from_slice(&payload[at..at + n]);
        at += n;
        // Nothing was consumed so far (every earlier call was Partial).
        let before = &payload[..at];
        match parse_head(&mut buf, limits) {
            Ok(Parsed::Partial) => assert_eq!(buf.len(), at, "Partial must not consume"),
            Ok(Parsed::Complete(head)) => {
                check_head(&head, limits);
                // What was consumed is empty lines and then the head, nothing else.
                let consumed = before.len() - buf.len();
                let lead = consumed - head.as_bytes().len();
                assert!(before[..lead].chunks(2).all(|c| c == b"\r\n"));
                assert_eq!(&buf[..], &before[consumed..]);
                assert_eq!(&before[lead..consumed], &head.as_bytes()[..]);
                let mut rest = buf.to_vec();
                rest.extend_from_slice(&payload[at..]);
                return Some(Ok((head.as_bytes().to_vec(), rest)));
            }
            Err(e) => {
                let status = e.status();
                assert!((400..600).contains(&status), "status {status}");
                return Some(Err(status));
            }
        }
    }
    None
}

/// Parses the heads that follow a complete one, as a keep-alive connection would.
fn pipelined(rest: &[u8], limits: &HeadLimits) {
    let mut buf = BytesMut::from(rest);
    for _ in 0..MAX_PIPELINED {
        match parse_head(&mut buf, limits) {
            Ok(Parsed::Complete(head)) => check_head(&head, limits),
            Ok(Parsed::Partial) | Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (seed, payload) = ferrule_fuzz::seed_and_payload(data);
    let limits = if seed & 0x80 != 0 {
        ferrule_fuzz::default_limits()
    } else {
        SMALL
    };
    let split = feed(
        payload,
        &ferrule_fuzz::fragments(seed, payload.len()),
        &limits,
    );
    let whole = feed(payload, &ferrule_fuzz::fragments(0, payload.len()), &limits);
    // The answer must not depend on how the bytes were split into reads.
    assert_eq!(split, whole);
    if let Some(Ok((_, rest))) = whole {
        pipelined(&rest, &limits);
    }
});
