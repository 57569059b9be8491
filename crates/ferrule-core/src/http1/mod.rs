//! HTTP/1.0 and HTTP/1.1 wire format (RFC 9112), our own strict codec.
//!
//! Public API (the connection driver in `server/` and the environ builder use only this):
//! - [`parse_head`]: request line + header section from the front of the read buffer.
//! - [`RequestHead`]: the parsed head; zero-copy views into the frozen head bytes.
//! - [`ChunkedDecoder`]: `Transfer-Encoding: chunked` request bodies.
//! - [`encode`]: response head, chunk framing, the framing decision.
//! - [`RequestError`]: every way a request can be refused, each with one declared outcome.
//!
//! INTERFACE SKELETON: bodies are filled in by the codec work; signatures are the contract.

pub mod chunked;
pub mod date;
pub mod encode;
pub mod error;
pub mod head;

pub use chunked::ChunkedDecoder;
pub use error::{Outcome, RequestError};
pub use head::{parse_head, BodyFraming, HeadLimits, Parsed, RequestHead, Version};
