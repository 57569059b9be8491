//! [`HeadBytes`]: the strings of a response head (status, header names and values) as they
//! travel from the application thread that made them to the I/O thread that writes them.
//!
//! An application's header strings are nearly always the same objects on every call, so the
//! binding remembers their encoded bytes and hands the same bytes to each response. Shared as
//! `Bytes`, each hand-out was a reference count taken on the application thread and given
//! back on the I/O thread: two atomic read-modify-write instructions per string (about 5 ns
//! each on the machine of `benchmarks/`), ten per hello response. Most such strings are short
//! (`Content-Type`, `text/plain`, `200 OK`), and a copy of a few dozen bytes costs less than
//! the two atomics, so a string of up to [`HEAD_BYTES_INLINE`] bytes is kept in place and
//! copied; a longer one stays shared.

use std::ops::Deref;

use bytes::Bytes;

use crate::short_bytes::InlineBytes;

/// Bytes kept in place; a longer string is shared. 30 covers the common header names (the
/// longest common one, `Access-Control-Allow-Origin`, has 27 bytes) and most short values.
pub const HEAD_BYTES_INLINE: usize = 30;

/// One string of a response head: inline up to [`HEAD_BYTES_INLINE`] bytes, else shared.
#[derive(Clone)]
pub struct HeadBytes(Repr);

#[derive(Clone)]
enum Repr {
    Inline(InlineBytes<HEAD_BYTES_INLINE>),
    Shared(Bytes),
}

impl HeadBytes {
    /// A string of the program's own (no copy, no reference count).
    pub const fn from_static(s: &'static [u8]) -> HeadBytes {
        HeadBytes(Repr::Shared(Bytes::from_static(s)))
    }

    /// A copy of `s`: in place when short, else in a new shared buffer.
    pub fn copy_from_slice(s: &[u8]) -> HeadBytes {
        match HeadBytes::inline(s) {
            Some(inline) => inline,
            None => HeadBytes(Repr::Shared(Bytes::copy_from_slice(s))),
        }
    }

    /// `v` in place when short; a longer one in a buffer whose clones are reference counts from
    /// the start (for strings handed out many times, where `From<Vec<u8>>` would make the first
    /// clone move it).
    pub fn shareable(v: Vec<u8>) -> HeadBytes {
        HeadBytes::inline(&v).unwrap_or_else(|| HeadBytes(Repr::Shared(Bytes::from_owner(v))))
    }

    /// `s` in place, if it fits.
    fn inline(s: &[u8]) -> Option<HeadBytes> {
        InlineBytes::<HEAD_BYTES_INLINE>::fits(s.len()).then(|| {
            HeadBytes(Repr::Inline(InlineBytes::filled(s.len(), |out| {
                out.copy_from_slice(s)
            })))
        })
    }

    /// True when clones of this string are copies (no shared buffer behind it).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline(_))
    }
}

impl From<Bytes> for HeadBytes {
    /// `b` in place when short (its buffer is then let go), else shared.
    fn from(b: Bytes) -> HeadBytes {
        HeadBytes::inline(&b).unwrap_or(HeadBytes(Repr::Shared(b)))
    }
}

impl From<Vec<u8>> for HeadBytes {
    fn from(v: Vec<u8>) -> HeadBytes {
        HeadBytes::inline(&v).unwrap_or_else(|| HeadBytes(Repr::Shared(Bytes::from(v))))
    }
}

impl From<String> for HeadBytes {
    fn from(s: String) -> HeadBytes {
        HeadBytes::from(s.into_bytes())
    }
}

impl Deref for HeadBytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(inline) => inline,
            Repr::Shared(b) => b,
        }
    }
}

impl PartialEq for HeadBytes {
    fn eq(&self, other: &HeadBytes) -> bool {
        **self == **other
    }
}

impl Eq for HeadBytes {}

impl std::fmt::Debug for HeadBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As `Bytes` shows itself: a byte string literal.
        write!(f, "b\"{}\"", self.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_inline_and_long_ones_shared() {
        let short = HeadBytes::copy_from_slice(b"Content-Type");
        assert!(short.is_inline());
        assert_eq!(&*short, b"Content-Type");
        let edge = vec![b'x'; HEAD_BYTES_INLINE];
        assert!(HeadBytes::from(edge.clone()).is_inline());
        assert_eq!(&*HeadBytes::from(edge.clone()), &edge[..]);
        let long = vec![b'y'; HEAD_BYTES_INLINE + 1];
        let shared = HeadBytes::from(long.clone());
        assert!(!shared.is_inline());
        assert_eq!(&*shared.clone(), &long[..]);
        assert!(HeadBytes::from(Bytes::from_static(b"")).is_inline());
        assert!(!HeadBytes::from_static(b"200 OK").is_inline());
        assert_eq!(
            HeadBytes::from_static(b"200 OK"),
            HeadBytes::copy_from_slice(b"200 OK")
        );
        assert_eq!(
            format!("{:?}", HeadBytes::from_static(b"a\"b")),
            "b\"a\\\"b\""
        );
    }
}
