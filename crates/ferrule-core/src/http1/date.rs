//! The `Date` header value (RFC 9110 §6.6.1), formatted once per second. SKELETON.

/// The current IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (29 bytes), cached per second.
pub fn now() -> [u8; 29] {
    unimplemented!()
}
