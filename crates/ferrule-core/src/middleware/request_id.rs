//! `X-Request-ID` (`--request-id`): one identifier per request, shared by the client, the
//! proxies, the app and the logs.
//!
//! - A valid incoming `X-Request-ID` (one field, 1 to [`MAX_LEN`] visible ASCII bytes, RFC 9110
//!   §5.5 `VCHAR`) is kept, so an ID set by a proxy in front follows the request through.
//! - Otherwise (absent, repeated, too long, spaces or other bytes) a new one replaces it: 32
//!   lowercase hex digits of 128 random bits from `getrandom(2)` (no crate; one syscall, well
//!   under a microsecond, and fork-safe with no per-process state to reseed).
//! - The app sees it as `HTTP_X_REQUEST_ID` (the request head is rewritten, so the environ
//!   rules apply unchanged), the response carries it (unless the app set its own
//!   `X-Request-ID`), and the access log has it: `%({x-request-id}i)s` in the text format, the
//!   `request_id` key in JSON.

use bytes::Bytes;

use crate::http1::RequestHead;

/// Longest incoming ID kept; longer ones are replaced (a log field, not a payload).
pub const MAX_LEN: usize = 200;

/// The header name as written in requests and responses.
pub(crate) const HEADER: &[u8] = b"X-Request-ID";

/// True for an ID worth propagating.
pub fn valid(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(|&b| (0x21..=0x7e).contains(&b))
}

/// The request's ID, and the head the app will see (rewritten when the ID was generated).
pub(crate) fn assign(head: RequestHead) -> (RequestHead, Bytes) {
    let kept = {
        let mut found = head
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case(HEADER))
            .map(|(_, v)| v);
        match (found.next(), found.next()) {
            (Some(id), None) if valid(id) => Some(Bytes::copy_from_slice(id)),
            _ => None,
        }
    };
    if let Some(id) = kept {
        return (head, id);
    }
    let id = Bytes::copy_from_slice(&generate());
    (head.with_field(HEADER, &id), id)
}

/// 32 hex digits of 128 random bits.
pub fn generate() -> [u8; 32] {
    let mut raw = [0u8; 16];
    fill_random(&mut raw);
    let mut out = [0u8; 32];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in raw.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

/// `getrandom(2)`; should it ever fail (seccomp, very old kernel), the clock and a counter
/// still make IDs unique within the process, which is what a request ID needs.
fn fill_random(buf: &mut [u8; 16]) {
    // SAFETY: `buf` is a valid, exclusively borrowed buffer of `buf.len()` bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == buf.len() as isize {
        return;
    }
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id()) << 40;
    buf[..8].copy_from_slice(&nanos.to_le_bytes());
    buf[8..].copy_from_slice(&count.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> RequestHead {
        let mut buf = bytes::BytesMut::from(raw.as_bytes());
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

    #[test]
    fn validity() {
        assert!(valid(b"abc-123_X.y:z"));
        assert!(valid(&[b'a'; MAX_LEN]));
        assert!(!valid(&[b'a'; MAX_LEN + 1]));
        assert!(!valid(b""));
        assert!(!valid(b"a b"));
        assert!(!valid(b"caf\xc3\xa9"));
        assert!(!valid(b"a\tb"));
    }

    #[test]
    fn generated_ids_are_hex_and_distinct() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn kept_or_replaced() {
        let (h, id) = assign(head(
            "GET / HTTP/1.1\r\nHost: a\r\nx-request-id: abc\r\n\r\n",
        ));
        assert_eq!(&id[..], b"abc");
        assert_eq!(h.header(b"x-request-id"), Some(&b"abc"[..]));

        for raw in [
            "GET /p?q HTTP/1.1\r\nHost: a\r\nX-Request-Id: bad id\r\nAccept: */*\r\n\r\n",
            "GET /p?q HTTP/1.1\r\nHost: a\r\nX-Request-Id: a\r\nX-Request-Id: b\r\nAccept: */*\r\n\r\n",
            "GET /p?q HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
        ] {
            let (h, id) = assign(head(raw));
            assert_eq!(id.len(), 32, "{raw}");
            let ids: Vec<&[u8]> = h
                .headers()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"x-request-id"))
                .map(|(_, v)| v)
                .collect();
            assert_eq!(ids, [&id[..]], "{raw}");
            // Everything else is as it was.
            assert_eq!(h.path(), b"/p");
            assert_eq!(h.query(), b"q");
            assert_eq!(h.host(), Some(&b"a"[..]));
            assert_eq!(h.header(b"accept"), Some(&b"*/*"[..]));
            assert!(h.as_bytes().ends_with(b"\r\n\r\n"));
            // The rewritten head parses back to the same fields.
            let again = head(std::str::from_utf8(h.as_bytes()).unwrap());
            assert_eq!(again.header(b"x-request-id"), Some(&id[..]));
        }
    }
}
