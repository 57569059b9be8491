//! Shared pieces of the fuzz targets: cutting an input into arbitrary fragments.
//!
//! The first byte of a fuzz input seeds how the rest is cut, so libFuzzer explores the splits
//! (one byte at a time, a few large pieces, everything at once) as well as the bytes.

/// Splits `data` into `(fragments_source, payload)`: `data[0]` seeds the cutting, the rest is
/// the payload.
pub fn seed_and_payload(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&seed, rest)) => (seed, rest),
        None => (0, &[]),
    }
}

/// The lengths of the fragments `payload` is fed in: seed 0 gives the whole payload at once,
/// seed 1 one byte at a time, other seeds pseudo-random sizes from 1 to 64.
pub fn fragments(seed: u8, len: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = len;
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    while left > 0 {
        let n = match seed {
            0 => left,
            1 => 1,
            _ => {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 64) as usize + 1
            }
        };
        let n = n.min(left);
        out.push(n);
        left -= n;
    }
    out
}
