//! Byte search tuned for the short lines of a request head.
//!
//! A request head is a handful of lines of 10-60 bytes. `memchr`'s vector search pays a set-up
//! (CPU-feature dispatch, alignment, tail handling) that costs more than scanning such a line,
//! and the head parser searches each line several times (its LF, a stray CR, the spaces of the
//! request line, a field's colon). These functions scan the first [`SHORT_SCAN`] bytes eight at
//! a time in a `u64` (SWAR), and hand anything longer to `memchr`, so a long cookie or target
//! keeps the vector search. They answer exactly what `memchr` answers: the first match.

/// Bytes searched a word at a time before the rest of a haystack is handed to `memchr`.
pub(crate) const SHORT_SCAN: usize = 64;

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// The high bit of each zero byte of `word` (and possibly of bytes above a zero byte, through
/// the borrow). The lowest set bit is always exact: no borrow reaches below the first zero byte,
/// and a non-zero byte without an incoming borrow never sets its high bit (`b - 1` has it only
/// for `b >= 0x81`, and those are masked by `!word`).
#[inline(always)]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// The eight bytes of `hay` at `at`, the first of them in the lowest byte on every target.
#[inline(always)]
fn word_at(hay: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hay[at..at + 8]);
    u64::from_le_bytes(bytes)
}

/// Index of the first byte that is `needle`.
#[inline]
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    let pattern = ONES * u64::from(needle);
    let short = hay.len().min(SHORT_SCAN);
    let mut at = 0;
    while at + 8 <= short {
        let hits = zero_bytes(word_at(hay, at) ^ pattern);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    if hay.len() > SHORT_SCAN {
        return memchr::memchr(needle, &hay[at..]).map(|i| at + i);
    }
    hay[at..].iter().position(|&b| b == needle).map(|i| at + i)
}

/// Index of the first CR or LF.
#[inline]
pub(crate) fn find_cr_or_lf(hay: &[u8]) -> Option<usize> {
    const CRS: u64 = ONES * b'\r' as u64;
    const LFS: u64 = ONES * b'\n' as u64;
    let short = hay.len().min(SHORT_SCAN);
    let mut at = 0;
    while at + 8 <= short {
        let word = word_at(hay, at);
        // Each side's lowest bit is exact, so the lowest bit of either is the first of both.
        let hits = zero_bytes(word ^ CRS) | zero_bytes(word ^ LFS);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    if hay.len() > SHORT_SCAN {
        return memchr::memchr2(b'\r', b'\n', &hay[at..]).map(|i| at + i);
    }
    hay[at..]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .map(|i| at + i)
}

/// Index of the first byte a field value may not hold: anything but VCHAR, obs-text, SP and
/// HTAB (a control byte or DEL; see `syntax::is_field_byte`). Values run to hundreds of bytes
/// (user agents, cookies), so they are checked a word at a time; a word with a control byte,
/// HTAB included, or DEL is looked at byte by byte.
#[inline]
pub(crate) fn find_non_field_byte(hay: &[u8]) -> Option<usize> {
    const SPACES: u64 = ONES * 0x20;
    const DELS: u64 = ONES * 0x7f;
    let mut at = 0;
    while at + 8 <= hay.len() {
        let word = word_at(hay, at);
        // High bit of each byte below 0x20 (bytes from 0x80 are masked by `!word`), and of DEL;
        // a borrow may flag more bytes, never fewer: such a word is checked byte by byte.
        let suspects = (word.wrapping_sub(SPACES) & !word & HIGHS) | zero_bytes(word ^ DELS);
        if suspects != 0 {
            if let Some(i) = hay[at..at + 8]
                .iter()
                .position(|&b| !super::syntax::is_field_byte(b))
            {
                return Some(at + i);
            }
        }
        at += 8;
    }
    hay[at..]
        .iter()
        .position(|&b| !super::syntax::is_field_byte(b))
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value at every position of lines around the word boundaries, over fillers
    /// that include HTAB and obs-text, agrees with the byte-by-byte rule.
    #[test]
    fn non_field_bytes_agree_with_the_byte_rule() {
        for filler in [b'a', b' ', b'\t', 0x80, 0xff, 0x21, 0x7e] {
            for len in 0..27 {
                for pos in 0..len {
                    for bad in 0..=255u8 {
                        let mut hay = vec![filler; len];
                        hay[pos] = bad;
                        let want = hay
                            .iter()
                            .position(|&b| !super::super::syntax::is_field_byte(b));
                        assert_eq!(
                            find_non_field_byte(&hay),
                            want,
                            "{filler} {len} {pos} {bad}"
                        );
                    }
                }
            }
        }
    }

    /// Every needle position (and none) in every length around the word and short-scan
    /// boundaries, over fillers that stress the borrow (0x00, 0x01, needle - 1, needle + 1,
    /// 0x80, 0xff), agrees with a plain scan.
    #[test]
    fn agrees_with_a_plain_scan() {
        for needle in [b'\n', b'\r', b' ', b':', 0x00, 0x01, 0x80, 0xff] {
            for filler in [
                b'a',
                0x00,
                0x01,
                needle.wrapping_sub(1),
                needle.wrapping_add(1),
                0x80,
                0xff,
            ] {
                if filler == needle {
                    continue;
                }
                for len in 0..SHORT_SCAN + 24 {
                    for pos in (0..len).map(Some).chain([None]) {
                        let mut hay = vec![filler; len];
                        if let Some(p) = pos {
                            hay[p] = needle;
                            // A second match later must not win.
                            if p + 3 < len {
                                hay[p + 3] = needle;
                            }
                        }
                        let want = hay.iter().position(|&b| b == needle);
                        assert_eq!(
                            find_byte(&hay, needle),
                            want,
                            "{needle} {filler} {len} {pos:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn finds_the_first_of_cr_and_lf() {
        for filler in [b'a', 0x00, 0x0c, 0x0b, 0x0e, 0x09, 0x80, 0xff] {
            for len in 0..SHORT_SCAN + 24 {
                for first in (0..len).map(Some).chain([None]) {
                    for (a, b) in [
                        (b'\r', b'\n'),
                        (b'\n', b'\r'),
                        (b'\r', b'\r'),
                        (b'\n', b'\n'),
                    ] {
                        let mut hay = vec![filler; len];
                        if let Some(p) = first {
                            hay[p] = a;
                            if p + 1 < len {
                                hay[p + 1] = b;
                            }
                        }
                        let want = hay.iter().position(|&c| c == b'\r' || c == b'\n');
                        assert_eq!(find_cr_or_lf(&hay), want, "{filler} {len} {first:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn long_haystacks_go_to_memchr() {
        let mut hay = vec![b'x'; 10_000];
        hay[9_000] = b':';
        assert_eq!(find_byte(&hay, b':'), Some(9_000));
        assert_eq!(find_cr_or_lf(&hay), None);
        hay[5_000] = b'\n';
        assert_eq!(find_cr_or_lf(&hay), Some(5_000));
    }
}
