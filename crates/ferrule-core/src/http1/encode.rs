//! Response heads and body framing (RFC 9112 §4, §6, §7).
//!
//! Rules this module owns:
//! - RFC 9110 §6.2: "A server SHOULD send a response version equal to the highest version to
//!   which the server is conformant that has a major version less than or equal to the one
//!   received in the request": every status line says `HTTP/1.1`, also to HTTP/1.0 clients.
//! - RFC 9112 §6.3 / RFC 9110 §6.4.1: responses to HEAD, 1xx, 204 and 304 have no body
//!   ([`ResponseFraming::NoBody`]); the app's headers (e.g. its Content-Length) are kept as given.
//! - RFC 9110 §9.3.2: "The server SHOULD send the same header fields in response to a HEAD
//!   request as it would have sent if the request method had been GET": a HEAD response whose
//!   (non-empty) body is known whole gets the `Content-Length` GET would
//!   ([`ResponseFraming::NoBodyLength`]); a streamed body's length is not known, so none is sent
//!   (RFC 9110 §9.3.2 lets a server omit fields "determined only while generating the content").
//! - RFC 9112 §6.1: "A server MUST NOT send a response containing Transfer-Encoding unless the
//!   corresponding request indicates HTTP/1.1 (or later minor revisions)": an HTTP/1.0 response
//!   of unknown length is delimited by closing the connection.
//! - RFC 9112 §7.1: `chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF`,
//!   `last-chunk = 1*("0") [ chunk-ext ] CRLF`, then the (empty) trailer section and CRLF.
//! - RFC 9112 §9.3 / §9.6: `Connection: close` when we will close; an HTTP/1.0 client that asked
//!   for keep-alive is told `Connection: keep-alive`.
//! - RFC 9110 §6.6.1: `Date` on every response (unless the app sent one); `Server` when configured.

use bytes::{BufMut, BytesMut};

use super::{date, Version};
use crate::exchange::ResponseHead;

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body may be sent (HEAD, 1xx, 204, 304): headers kept as the app gave them.
    NoBody,
    /// A HEAD response: no body is sent, but `Content-Length: n` is announced, as the GET
    /// response would carry it (the body was known whole and the app gave no length).
    NoBodyLength(u64),
    /// `Content-Length: n` (from the app, or computed for a body known whole).
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1 only).
    Chunked,
    /// Body ends when the connection closes (HTTP/1.0 without a length).
    CloseDelimited,
}

/// What the framing decision needs to know.
#[derive(Debug, Clone, Copy)]
pub struct FramingInput {
    pub version: Version,
    pub is_head: bool,
    pub status: u16,
    /// The app's Content-Length header, if it sent a valid one.
    pub app_content_length: Option<u64>,
    /// The whole body's length when it is known before the head is written.
    pub known_body_len: Option<u64>,
}

/// True for statuses whose responses never carry a body (1xx, 204, 304).
pub fn status_has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// Chooses the framing of a response.
pub fn response_framing(input: &FramingInput) -> ResponseFraming {
    if status_has_no_body(input.status) {
        return ResponseFraming::NoBody;
    }
    if input.is_head {
        // RFC 9110 §9.3.2: "The server SHOULD send the same header fields in response to a
        // HEAD request as it would have sent if the request method had been GET". An empty
        // body is not announced as 0: an app may skip the body for HEAD.
        return match (input.app_content_length, input.known_body_len) {
            (None, Some(n)) if n > 0 => ResponseFraming::NoBodyLength(n),
            _ => ResponseFraming::NoBody,
        };
    }
    if let Some(n) = input.app_content_length.or(input.known_body_len) {
        return ResponseFraming::Length(n);
    }
    match input.version {
        // HTTP/2 frames the body itself (DATA frames, END_STREAM): "chunked" there only means
        // "length unknown, streamed".
        Version::Http11 | Version::Http2 => ResponseFraming::Chunked,
        Version::Http10 => ResponseFraming::CloseDelimited,
    }
}

/// Writes the status line and headers: the app's headers in their case and order, then
/// `Date`, `Server` (if non-empty, and if the app sent none), the framing header when the app did
/// not give one, and `Connection: close` / `Connection: keep-alive` as needed; ends with CRLF CRLF.
///
/// `version` is the request's version. A [`ResponseFraming::CloseDelimited`] body always gets
/// `Connection: close`, whatever `keep_alive` says. The caller sizes `dst` ([`head_size_bound`],
/// with room for what it appends after the head), so the head is sized once per response.
pub fn write_head(
    dst: &mut BytesMut,
    version: Version,
    head: &ResponseHead,
    framing: ResponseFraming,
    server: &[u8],
    keep_alive: bool,
) {
    let keep_alive = keep_alive && framing != ResponseFraming::CloseDelimited;

    dst.put_slice(b"HTTP/1.1 ");
    dst.put_slice(&head.status);
    dst.put_slice(b"\r\n");
    let (mut has_date, mut has_server, mut has_length, mut has_te) = (false, false, false, false);
    for (name, value) in &head.headers {
        match name.len() {
            4 => has_date |= name.eq_ignore_ascii_case(b"date"),
            6 => has_server |= name.eq_ignore_ascii_case(b"server"),
            14 => has_length |= name.eq_ignore_ascii_case(b"content-length"),
            17 => has_te |= name.eq_ignore_ascii_case(b"transfer-encoding"),
            _ => {}
        }
        dst.put_slice(name);
        dst.put_slice(b": ");
        dst.put_slice(value);
        dst.put_slice(b"\r\n");
    }
    if !has_date {
        dst.put_slice(b"Date: ");
        dst.put_slice(&date::now());
        dst.put_slice(b"\r\n");
    }
    if !has_server && !server.is_empty() {
        dst.put_slice(b"Server: ");
        dst.put_slice(server);
        dst.put_slice(b"\r\n");
    }
    match framing {
        ResponseFraming::Length(n) | ResponseFraming::NoBodyLength(n) if !has_length => {
            dst.put_slice(b"Content-Length: ");
            dst.put_slice(itoa::Buffer::new().format(n).as_bytes());
            dst.put_slice(b"\r\n");
        }
        ResponseFraming::Chunked if !has_te => {
            dst.put_slice(b"Transfer-Encoding: chunked\r\n");
        }
        _ => {}
    }
    if !keep_alive {
        dst.put_slice(b"Connection: close\r\n");
    } else if version == Version::Http10 {
        dst.put_slice(b"Connection: keep-alive\r\n");
    }
    dst.put_slice(b"\r\n");
}

/// At least the bytes [`write_head`] writes for `head` (status line, the app's headers, `Date`,
/// `Server`, a framing header, `Connection`, the blank line), so a caller can reserve room for
/// the head and what it appends after it in one allocation.
pub fn head_size_bound(head: &ResponseHead, server: &[u8]) -> usize {
    let mut size = 9 + head.status.len() + 2 + 37 + 2;
    for (name, value) in &head.headers {
        size += name.len() + value.len() + 4;
    }
    size + server.len() + 10 + 40 + 26
}

/// Writes a chunk-size line for `len` bytes (`len > 0`): lowercase hex, no extension, CRLF.
pub fn write_chunk_header(dst: &mut BytesMut, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 2 * std::mem::size_of::<usize>() + 2];
    let mut at = buf.len() - 2;
    buf[at..].copy_from_slice(b"\r\n");
    let mut n = len;
    loop {
        at -= 1;
        buf[at] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&buf[at..]);
}

/// CRLF after each chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// The interim response to `Expect: 100-continue`.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head_bytes::HeadBytes;

    fn input(
        version: Version,
        is_head: bool,
        status: u16,
        app: Option<u64>,
        known: Option<u64>,
    ) -> FramingInput {
        FramingInput {
            version,
            is_head,
            status,
            app_content_length: app,
            known_body_len: known,
        }
    }

    #[test]
    fn framing_table() {
        use ResponseFraming::*;
        use Version::*;
        let rows = [
            (input(Http11, true, 200, Some(5), None), NoBody),
            (input(Http11, true, 200, None, Some(5)), NoBodyLength(5)),
            (input(Http10, true, 200, None, Some(5)), NoBodyLength(5)),
            (input(Http11, true, 200, None, Some(0)), NoBody),
            (input(Http11, true, 200, None, None), NoBody),
            (input(Http11, true, 204, None, Some(5)), NoBody),
            (input(Http11, true, 304, None, Some(5)), NoBody),
            (input(Http11, false, 100, None, None), NoBody),
            (input(Http11, false, 101, None, None), NoBody),
            (input(Http11, false, 204, Some(0), None), NoBody),
            (input(Http11, false, 304, Some(10), None), NoBody),
            (input(Http10, false, 304, None, None), NoBody),
            (input(Http11, false, 200, Some(7), Some(9)), Length(7)),
            (input(Http11, false, 200, None, Some(9)), Length(9)),
            (input(Http10, false, 200, None, Some(0)), Length(0)),
            (input(Http11, false, 200, None, None), Chunked),
            (input(Http11, false, 500, None, None), Chunked),
            (input(Http10, false, 200, None, None), CloseDelimited),
            (input(Http11, false, 205, None, None), Chunked),
        ];
        for (inp, want) in rows {
            assert_eq!(response_framing(&inp), want, "{inp:?}");
        }
    }

    fn head(status: &'static str, headers: &[(&'static str, &'static str)]) -> ResponseHead {
        ResponseHead {
            code: status[..3].parse().unwrap(),
            status: HeadBytes::from_static(status.as_bytes()),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        HeadBytes::from_static(n.as_bytes()),
                        HeadBytes::from_static(v.as_bytes()),
                    )
                })
                .collect(),
        }
    }

    /// Writes a head and replaces the Date value with a fixed one.
    fn written(
        version: Version,
        h: &ResponseHead,
        framing: ResponseFraming,
        server: &[u8],
        keep_alive: bool,
    ) -> String {
        let mut dst = BytesMut::new();
        write_head(&mut dst, version, h, framing, server, keep_alive);
        let text = String::from_utf8(dst.to_vec()).unwrap();
        match text.find("Date: ") {
            Some(i)
                if !h
                    .headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case(b"date")) =>
            {
                let date = &text[i + 6..i + 6 + date::DATE_LEN];
                assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
                format!("{}Date: D{}", &text[..i], &text[i + 6 + date::DATE_LEN..])
            }
            _ => text,
        }
    }

    #[test]
    fn heads() {
        use ResponseFraming::*;
        use Version::*;
        let plain = head(
            "200 OK",
            &[("Content-Type", "text/plain"), ("X-Case", "KeepMe")],
        );
        type Row = (
            Version,
            ResponseHead,
            ResponseFraming,
            &'static [u8],
            bool,
            &'static str,
        );
        let rows: Vec<Row> = vec![
            (Http11, plain.clone(), Length(5), b"ferrule", true,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Case: KeepMe\r\nDate: D\r\nServer: ferrule\r\nContent-Length: 5\r\n\r\n"),
            (Http11, plain.clone(), Chunked, b"", true,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Case: KeepMe\r\nDate: D\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (Http11, plain.clone(), Chunked, b"s", false,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Case: KeepMe\r\nDate: D\r\nServer: s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
            (Http10, plain.clone(), Length(0), b"", true,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Case: KeepMe\r\nDate: D\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"),
            (Http10, plain.clone(), CloseDelimited, b"", true,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Case: KeepMe\r\nDate: D\r\nConnection: close\r\n\r\n"),
            (Http10, plain.clone(), CloseDelimited, b"", false,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Case: KeepMe\r\nDate: D\r\nConnection: close\r\n\r\n"),
            // The app's own Content-Length, Date and Server are kept and not repeated.
            (Http11, head("404 Not Found", &[("content-length", "3"), ("SERVER", "app"), ("date", "yesterday")]), Length(3), b"ferrule", true,
             "HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\nSERVER: app\r\ndate: yesterday\r\n\r\n"),
            // NoBody keeps the app's headers and adds no framing header.
            (Http11, head("304 Not Modified", &[("ETag", "\"x\""), ("Content-Length", "10")]), NoBody, b"", true,
             "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\nDate: D\r\n\r\n"),
            (Http11, head("204 No Content", &[]), NoBody, b"", false,
             "HTTP/1.1 204 No Content\r\nDate: D\r\nConnection: close\r\n\r\n"),
            // A HEAD response announces the length GET would send, unless the app gave one.
            (Http11, plain.clone(), NoBodyLength(11), b"", true,
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Case: KeepMe\r\nDate: D\r\nContent-Length: 11\r\n\r\n"),
            (Http11, head("200 OK", &[("Content-Length", "4")]), NoBodyLength(11), b"", true,
             "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nDate: D\r\n\r\n"),
            (Http11, head("200 OK", &[]), Length(u64::MAX), b"", true,
             "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 18446744073709551615\r\n\r\n"),
            (Http11, head("599 Custom reason text", &[]), Length(0), b"", true,
             "HTTP/1.1 599 Custom reason text\r\nDate: D\r\nContent-Length: 0\r\n\r\n"),
        ];
        for (version, h, framing, server, keep_alive, want) in rows {
            assert_eq!(written(version, &h, framing, server, keep_alive), want);
        }
    }

    #[test]
    fn chunk_headers() {
        for (len, want) in [
            (1usize, &b"1\r\n"[..]),
            (9, b"9\r\n"),
            (10, b"a\r\n"),
            (255, b"ff\r\n"),
            (4096, b"1000\r\n"),
            (65_535, b"ffff\r\n"),
            (
                usize::MAX,
                if usize::BITS == 64 {
                    b"ffffffffffffffff\r\n"
                } else {
                    b"ffffffff\r\n"
                },
            ),
        ] {
            let mut dst = BytesMut::from(&b"x"[..]);
            write_chunk_header(&mut dst, len);
            assert_eq!(&dst[1..], want, "{len}");
        }
    }

    #[test]
    fn chunked_response_decodes() {
        // What we write, our own decoder reads back.
        let mut wire = BytesMut::new();
        for piece in [&b"hello"[..], &[b'z'; 300][..]] {
            write_chunk_header(&mut wire, piece.len());
            wire.extend_from_slice(piece);
            wire.extend_from_slice(CHUNK_END);
        }
        wire.extend_from_slice(LAST_CHUNK);
        let mut dec = super::super::ChunkedDecoder::new();
        let mut body = Vec::new();
        while let Some(b) = dec.decode(&mut wire).unwrap() {
            body.extend_from_slice(&b);
        }
        assert!(dec.is_done());
        assert_eq!(body.len(), 305);
    }
}
