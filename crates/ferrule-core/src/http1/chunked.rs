//! `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1). SKELETON.

use bytes::{Bytes, BytesMut};

use super::RequestError;

/// Incremental decoder; feed it the read buffer after each read.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {}
    }

    /// Takes the next piece of body data off the front of `src` (zero-copy split). `Ok(None)`:
    /// nothing more can be decoded from what is buffered (read more, unless [`Self::is_done`]).
    /// Chunk-size lines, extensions and trailers are consumed and validated here.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, RequestError> {
        let _ = src;
        unimplemented!()
    }

    /// The last chunk and the trailer section (and its final CRLF) have been consumed;
    /// `src` now starts at the next pipelined request.
    pub fn is_done(&self) -> bool {
        unimplemented!()
    }
}
