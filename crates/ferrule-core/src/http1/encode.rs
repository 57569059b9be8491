//! Response heads and body framing (RFC 9112 §4, §6, §7). SKELETON.

use bytes::BytesMut;

use super::Version;
use crate::exchange::ResponseHead;

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body may be sent (HEAD, 1xx, 204, 304): headers kept as the app gave them.
    NoBody,
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

/// Chooses the framing of a response.
pub fn response_framing(input: &FramingInput) -> ResponseFraming {
    let _ = input;
    unimplemented!()
}

/// Writes the status line and headers: the app's headers in their case and order, then
/// `Date`, `Server` (if non-empty, and if the app sent none), the framing header when the app did
/// not give one, and `Connection: close` / `Connection: keep-alive` as needed; ends with CRLF CRLF.
pub fn write_head(
    dst: &mut BytesMut,
    version: Version,
    head: &ResponseHead,
    framing: ResponseFraming,
    server: &[u8],
    keep_alive: bool,
) {
    let _ = (dst, version, head, framing, server, keep_alive);
    unimplemented!()
}

/// Writes a chunk-size line for `len` bytes (`len > 0`).
pub fn write_chunk_header(dst: &mut BytesMut, len: usize) {
    let _ = (dst, len);
    unimplemented!()
}

/// CRLF after each chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// The interim response to `Expect: 100-continue`.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
