//! Character classes and field-line syntax shared by the head parser and the chunked decoder.
//!
//! RFC 9110 §5.6.2: `token = 1*tchar`, `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
//! "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA`.
//! RFC 9110 §5.5: `field-value = *field-content`, `field-vchar = VCHAR / obs-text`; only SP and
//! HTAB are whitespace (`OWS = *( SP / HTAB )`), so bytes like `\x0b`, `\x85` or `\xa0` are never
//! trimmed. RFC 9112 §5.1: "No whitespace is allowed between the field name and colon. ... A server
//! MUST reject, with a response status code of 400 (Bad Request), any received request message that
//! contains whitespace between a header field name and colon."
//! RFC 9112 §5.2: obs-fold is rejected ("A server that receives an obs-fold in a request message
//! ... MUST either reject the message by sending a 400 (Bad Request) ..."; we always reject).

use super::find::{find_byte, find_non_field_byte};

/// `tchar` lookup table.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// `1*tchar` (RFC 9110 §5.6.2 `token`).
#[inline]
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// SP or HTAB: the only whitespace HTTP knows.
#[inline]
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A byte allowed inside a field value: VCHAR, obs-text, SP, HTAB (no CTL, no DEL).
#[inline]
pub(crate) fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b != 0x7f)
}

/// Removes leading and trailing SP/HTAB (and nothing else) from `s[start..end]`.
pub(crate) fn trim_ows(s: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && is_ows(s[start]) {
        start += 1;
    }
    while end > start && is_ows(s[end - 1]) {
        end -= 1;
    }
    (start, end)
}

/// A field line (without its CRLF) split into name and trimmed value, as offsets into the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldSpans {
    pub name_end: usize,
    pub value_start: usize,
    pub value_end: usize,
}

/// Parses `field-name ":" OWS field-value OWS` (RFC 9112 §5). `line` excludes the CRLF.
pub(crate) fn parse_field_line(line: &[u8]) -> Result<FieldSpans, &'static str> {
    if line.first().is_some_and(|&b| is_ows(b)) {
        return Err("obs-fold or whitespace before a field name");
    }
    let Some(colon) = find_byte(line, b':') else {
        return Err("header field without a colon");
    };
    let name = &line[..colon];
    if name.is_empty() {
        return Err("empty header field name");
    }
    if name.last().is_some_and(|&b| is_ows(b)) {
        return Err("whitespace between header field name and colon");
    }
    if !is_token(name) {
        return Err("invalid character in header field name");
    }
    let value = &line[colon + 1..];
    if let Some(bad) = find_non_field_byte(value).map(|i| value[i]) {
        return Err(if bad == b'\r' {
            "bare CR in header field value"
        } else {
            "control character in header field value"
        });
    }
    let (value_start, value_end) = trim_ows(line, colon + 1, line.len());
    Ok(FieldSpans {
        name_end: colon,
        value_start,
        value_end,
    })
}

/// True when `s` is a comma-separated list whose elements (trimmed of OWS) include `token`,
/// compared case-insensitively (RFC 9110 §5.6.1 lists; used for `Connection`).
pub(crate) fn list_contains(s: &[u8], token: &[u8]) -> bool {
    s.split(|&b| b == b',').any(|el| {
        let (a, b) = trim_ows(el, 0, el.len());
        el[a..b].eq_ignore_ascii_case(token)
    })
}

/// Parses `1*DIGIT` into a u64; `None` on anything else (sign, space, list, overflow).
pub(crate) fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP-literal in brackets, or a
/// reg-name / IPv4 made of unreserved, pct-encoded and sub-delims; then an optional all-digit
/// port. Rejects userinfo (`@`), whitespace, `/`, `?`, `#`, `\`, and every non-ASCII byte.
/// `allow_empty`: the Host header may be empty (RFC 9112 §3.2), an absolute-form authority not.
pub(crate) fn is_valid_authority(s: &[u8], allow_empty: bool) -> bool {
    if s.is_empty() {
        return allow_empty;
    }
    let (host, port) = if s[0] == b'[' {
        let Some(close) = memchr::memchr(b']', s) else {
            return false;
        };
        let inner = &s[1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        let rest = &s[close + 1..];
        match rest.split_first() {
            None => return true,
            Some((b':', port)) => (&s[..=close], port),
            Some(_) => return false,
        }
    } else {
        match find_byte(s, b':') {
            Some(colon) => (&s[..colon], &s[colon + 1..]),
            None => (s, &[][..]),
        }
    };
    if host.is_empty() || !port.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if host[0] == b'[' {
        return true;
    }
    let mut i = 0;
    while i < host.len() {
        let b = host[i];
        if b == b'%' {
            match host.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
            continue;
        }
        let ok = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// True when every `%` in `s` starts a `%XX` hex escape (RFC 3986 §2.1 pct-encoded).
pub(crate) fn pct_encoding_valid(s: &[u8]) -> bool {
    let mut rest = s;
    while let Some(i) = find_byte(rest, b'%') {
        match rest.get(i + 1..i + 3) {
            Some([a, b]) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => rest = &rest[i + 3..],
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token(b"GET"));
        assert!(is_token(b"X-Foo_bar~!"));
        for bad in [
            &b""[..],
            b"a b",
            b"a:b",
            b"a\x00",
            b"a\x7f",
            b"caf\xe9",
            b"a(b",
            b"a\"b",
        ] {
            assert!(!is_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn field_lines() {
        let f = parse_field_line(b"Name: \t value \t").unwrap();
        assert_eq!(
            f,
            FieldSpans {
                name_end: 4,
                value_start: 8,
                value_end: 13
            }
        );
        let f = parse_field_line(b"A:").unwrap();
        assert_eq!((f.value_start, f.value_end), (2, 2));
        // obs-text kept, never trimmed; \x0b, \x85 and \xa0 are not whitespace.
        let line = b"X: \xa0v\x85\xa0";
        let f = parse_field_line(line).unwrap();
        assert_eq!(&line[f.value_start..f.value_end], b"\xa0v\x85\xa0");
        for bad in [
            &b" X: v"[..],
            b"\tX: v",
            b"X : v",
            b"X\t: v",
            b": v",
            b"X v",
            b"X: a\x00b",
            b"X: a\rb",
            b"X: a\x7fb",
            b"X: \x0bv",
            b"X\x00: v",
            b"X\xe9: v",
        ] {
            assert!(parse_field_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lists_and_numbers() {
        assert!(list_contains(b"Keep-Alive, CLOSE", b"close"));
        assert!(list_contains(b" close ", b"close"));
        assert!(!list_contains(b"closed", b"close"));
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"007"), Some(7));
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b" 1",
            b"1 ",
            b"1,1",
            b"0x1",
            b"18446744073709551616",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn authorities() {
        for ok in [
            &b"example.com"[..],
            b"example.com:8080",
            b"localhost:",
            b"127.0.0.1",
            b"[::1]",
            b"[::1]:80",
            b"a%41b",
            b"xn--d1a.example",
        ] {
            assert!(is_valid_authority(ok, false), "{ok:?}");
        }
        assert!(is_valid_authority(b"", true));
        for bad in [
            &b""[..],
            b"user@host",
            b"a b",
            b"host:80a",
            b"host:80:90",
            b"host/path",
            b"host?q",
            b"host#f",
            b"a\\b",
            b"caf\xe9",
            b"[::1",
            b"[]",
            b"[::1]x",
            b":80",
            b"a%4",
            b"a%zz",
            b"a%",
        ] {
            assert!(!is_valid_authority(bad, false), "{bad:?}");
        }
    }

    #[test]
    fn pct() {
        assert!(pct_encoding_valid(b"/a%20b%2F"));
        assert!(!pct_encoding_valid(b"/a%2"));
        assert!(!pct_encoding_valid(b"/a%zz"));
        assert!(!pct_encoding_valid(b"%"));
    }
}
