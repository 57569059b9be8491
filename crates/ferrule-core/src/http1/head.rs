//! Request line and header section (RFC 9112 §2-§6). SKELETON: the codec work fills this in.

use bytes::{Bytes, BytesMut};

use super::RequestError;

/// Limits applied while parsing a head (from `ServerConfig`).
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    pub request_line: usize,
    pub fields: usize,
    pub field_size: usize,
    pub head: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"` (`SERVER_PROTOCOL`).
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// Result of [`parse_head`].
#[derive(Debug)]
pub enum Parsed {
    /// The head is not complete yet; read more (limits already checked on what is there).
    Partial,
    /// A complete head was split off the front of the buffer.
    Complete(RequestHead),
}

/// A parsed request head. Holds the head's bytes (frozen, shared) and offsets into them.
#[derive(Debug, Clone)]
pub struct RequestHead {
    buf: Bytes,
}

/// Parses a request head from the front of `buf`. On `Complete`, the head's bytes (through the
/// blank line) are split off `buf` (zero-copy) and `buf` starts at the body or the next
/// pipelined request. Leading empty lines before a request line (RFC 9112 §2.2) are skipped.
pub fn parse_head(buf: &mut BytesMut, limits: &HeadLimits) -> Result<Parsed, RequestError> {
    let _ = (buf, limits);
    unimplemented!()
}

impl RequestHead {
    /// The method token as sent, e.g. `b"GET"`.
    pub fn method(&self) -> &[u8] {
        unimplemented!()
    }
    /// The raw request-target as sent (`RAW_URI`/`REQUEST_URI`).
    pub fn target(&self) -> &[u8] {
        unimplemented!()
    }
    /// The path part of the target, still percent-encoded (for absolute-form, the path after
    /// the authority; for `*`, `*`).
    pub fn path(&self) -> &[u8] {
        unimplemented!()
    }
    /// The query after `?`, without it; empty when there is none.
    pub fn query(&self) -> &[u8] {
        unimplemented!()
    }
    pub fn version(&self) -> Version {
        unimplemented!()
    }
    /// Header fields in order: the name as sent (case kept), the value without surrounding
    /// SP/HTAB.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let _ = &self.buf;
        std::iter::empty()
    }
    /// The authority: the absolute-form target's authority if any, else the Host header.
    pub fn host(&self) -> Option<&[u8]> {
        unimplemented!()
    }
    pub fn framing(&self) -> BodyFraming {
        unimplemented!()
    }
    /// What the client asked for: HTTP/1.1 without `Connection: close`, or HTTP/1.0 with
    /// `Connection: keep-alive`.
    pub fn wants_keep_alive(&self) -> bool {
        unimplemented!()
    }
    /// `Expect: 100-continue` was sent (HTTP/1.1 only).
    pub fn expects_continue(&self) -> bool {
        unimplemented!()
    }
    /// The method is HEAD (the response carries no body).
    pub fn is_head(&self) -> bool {
        unimplemented!()
    }
}
