//! HTTP/1.0 and HTTP/1.1 wire format (RFC 9112), our own strict codec.
//!
//! Public API (the connection driver in `server/` and the environ builder use only this):
//! - [`parse_head`]: request line + header section from the front of the read buffer.
//! - [`RequestHead`]: the parsed head; zero-copy views into the frozen head bytes.
//! - [`ChunkedDecoder`]: `Transfer-Encoding: chunked` request bodies.
//! - [`encode`]: response head, chunk framing, the framing decision.
//! - [`RequestError`]: every way a request can be refused, each with one declared outcome.
//! - [`uri::percent_decode`]: `PATH_INFO` decoding.
//!
//! Strictness is the point: RFC 9112 §11.2 ("Request Smuggling") is avoided by accepting only one
//! reading of every message. Each module's docs quote the rules it enforces.

pub mod chunked;
pub mod date;
pub mod encode;
pub mod error;
mod find;
pub mod head;
mod syntax;
pub mod uri;

pub use chunked::ChunkedDecoder;
pub use error::{Outcome, RequestError};
pub use head::{parse_head, BodyFraming, HeadLimits, Parsed, RequestHead, RequestSummary, Version};
pub use syntax::is_token;
pub use uri::percent_decode;
