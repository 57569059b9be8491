//! Percent-decoding of the request path (RFC 3986 §2.1), for `PATH_INFO` (PEP 3333 / CGI:
//! the path is given decoded; the environ builder then maps the bytes to latin-1).
//!
//! [`super::parse_head`] already refuses a path with a malformed `%` escape, so on a path from a
//! [`super::RequestHead`] every `%` starts a valid escape. On other input a malformed escape is
//! kept as it is.

use std::borrow::Cow;

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes; borrows when there is nothing to decode. `%2F` becomes `/` (as in
/// every WSGI server: PATH_INFO cannot tell them apart; RAW_URI keeps the original).
pub fn percent_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr::memchr(b'%', input) else {
        return Cow::Borrowed(input);
    };
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..first]);
    let mut i = first;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|&c| hex_value(c)),
                input.get(i + 2).and_then(|&c| hex_value(c)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"/plain", b"/plain"),
            (b"", b""),
            (b"/a%20b", b"/a b"),
            (b"/%2Fx%2f", b"//x/"),
            (b"/caf%C3%A9", b"/caf\xc3\xa9"),
            (b"/%e9", b"/\xe9"),
            (b"/%00", b"/\x00"),
            (b"/100%", b"/100%"),
            (b"/%zz%4", b"/%zz%4"),
            (b"%41%42", b"AB"),
        ];
        for (input, want) in cases {
            assert_eq!(&*percent_decode(input), *want, "{input:?}");
        }
        assert!(matches!(percent_decode(b"/x"), Cow::Borrowed(_)));
    }
}
