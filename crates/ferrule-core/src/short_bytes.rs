//! Short owned byte strings (environ keys) kept inline, the inline storage itself
//! ([`InlineBytes`], also behind `head_bytes::HeadBytes`), and an inline compare for short slices.
//!
//! A request's `HTTP_*` keys are built per header (`HTTP_` + the transformed field name), and
//! each used to be its own heap allocation, freed once the environ was built: a dozen per
//! request from a browser. [`ShortBytes`] keeps up to [`SHORT_BYTES_INLINE`] bytes in place
//! (every common field name fits) and boxes only longer ones.
//!
//! [`same_bytes`] compares without calling libc's `memcmp`: for the 4-40 byte values of an
//! environ the call and its masked vector loads cost more than the compare (2.6-2.9% of a
//! hello request's CPU samples in `perf`, before the environ's remembered values used it).

use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Bytes kept in place; a longer string is boxed. 46 makes a [`ShortBytes`] 48 bytes.
pub const SHORT_BYTES_INLINE: usize = 46;

/// An owned byte string, inline up to [`SHORT_BYTES_INLINE`] bytes.
#[derive(Clone)]
pub struct ShortBytes(Repr);

#[derive(Clone)]
enum Repr {
    Inline(InlineBytes<SHORT_BYTES_INLINE>),
    Heap(Box<[u8]>),
}

impl ShortBytes {
    /// A copy of `s`.
    pub fn new(s: &[u8]) -> ShortBytes {
        ShortBytes::filled(s.len(), |out| out.copy_from_slice(s))
    }

    /// A string of `len` bytes written by `fill` (which gets exactly `len` bytes, zeroed).
    pub fn filled(len: usize, fill: impl FnOnce(&mut [u8])) -> ShortBytes {
        if InlineBytes::<SHORT_BYTES_INLINE>::fits(len) {
            return ShortBytes(Repr::Inline(InlineBytes::filled(len, fill)));
        }
        let mut heap = vec![0u8; len].into_boxed_slice();
        fill(&mut heap);
        ShortBytes(Repr::Heap(heap))
    }
}

impl Deref for ShortBytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(inline) => inline,
            Repr::Heap(heap) => heap,
        }
    }
}

/// Up to `N` bytes (at most 255) kept in place: the short form of [`ShortBytes`] and of
/// `head_bytes::HeadBytes`.
#[derive(Clone)]
pub struct InlineBytes<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> InlineBytes<N> {
    /// Whether `len` bytes fit in place.
    #[inline]
    pub fn fits(len: usize) -> bool {
        len <= N && len <= usize::from(u8::MAX)
    }

    /// `len` bytes written by `fill` (which gets exactly `len` bytes, zeroed). `len` must
    /// [`fit`](InlineBytes::fits); a longer one is cut to what fits.
    #[inline]
    pub fn filled(len: usize, fill: impl FnOnce(&mut [u8])) -> InlineBytes<N> {
        debug_assert!(InlineBytes::<N>::fits(len));
        let len = len.min(N).min(usize::from(u8::MAX));
        let mut bytes = [0u8; N];
        fill(&mut bytes[..len]);
        // At most u8::MAX (above).
        InlineBytes {
            len: len as u8,
            bytes,
        }
    }
}

impl<const N: usize> std::fmt::Debug for InlineBytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

impl<const N: usize> Deref for InlineBytes<N> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl PartialEq for ShortBytes {
    #[inline]
    fn eq(&self, other: &ShortBytes) -> bool {
        same_bytes(self, other)
    }
}

impl Eq for ShortBytes {}

impl Hash for ShortBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        <[u8] as Hash>::hash(self, state);
    }
}

impl std::fmt::Debug for ShortBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// `a == b`, compared inline a word at a time (see the module docs).
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 4 {
        return (0..n).all(|i| a[i] == b[i]);
    }
    if n < 8 {
        // Two overlapping 4-byte words cover 4..=7 bytes.
        return word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4);
    }
    let mut at = 0;
    while at + 8 < n {
        if word8(a, at) != word8(b, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping the words already compared.
    word8(a, n - 8) == word8(b, n - 8)
}

#[inline(always)]
fn word4(s: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_ne_bytes(w)
}

#[inline(always)]
fn word8(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_ne_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_agrees_with_slice_equality() {
        for len in 0..40 {
            let a: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert!(same_bytes(&a, &a.clone()));
            for flip in 0..len {
                let mut b = a.clone();
                b[flip] ^= 0x20;
                assert!(!same_bytes(&a, &b), "{len} {flip}");
            }
            if len > 0 {
                assert!(!same_bytes(&a, &a[..len - 1]));
            }
        }
    }

    #[test]
    fn inline_and_boxed_hold_their_bytes() {
        for len in [0, 1, 9, SHORT_BYTES_INLINE, SHORT_BYTES_INLINE + 1, 300] {
            let text: Vec<u8> = (0..len).map(|i| b'A' + (i % 26) as u8).collect();
            let s = ShortBytes::new(&text);
            assert_eq!(&*s, &text[..]);
            assert_eq!(s, ShortBytes::new(&text));
            assert_eq!(s.clone(), s);
            if len > 0 {
                assert_ne!(s, ShortBytes::new(&text[1..]));
            }
        }
        assert!(matches!(
            ShortBytes::new(&[7; SHORT_BYTES_INLINE]).0,
            Repr::Inline { .. }
        ));
        assert!(matches!(
            ShortBytes::new(&[7; SHORT_BYTES_INLINE + 1]).0,
            Repr::Heap(_)
        ));
        assert_eq!(std::mem::size_of::<ShortBytes>(), 48);
    }

    #[test]
    fn filled_gets_exactly_its_length() {
        let s = ShortBytes::filled(5, |out| {
            assert_eq!(out.len(), 5);
            out.copy_from_slice(b"HTTP_");
        });
        assert_eq!(&*s, b"HTTP_");
        assert_eq!(format!("{s:?}"), "\"HTTP_\"");
    }

    #[test]
    fn equal_strings_hash_alike() {
        use std::collections::hash_map::DefaultHasher;
        let hash = |s: &ShortBytes| {
            let mut h = DefaultHasher::new();
            s.hash(&mut h);
            h.finish()
        };
        let long = vec![b'x'; 100];
        assert_eq!(hash(&ShortBytes::new(&long)), hash(&ShortBytes::new(&long)));
        assert_eq!(
            hash(&ShortBytes::new(b"HTTP_HOST")),
            hash(&ShortBytes::new(b"HTTP_HOST"))
        );
    }
}
