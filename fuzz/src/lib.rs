//! Shared pieces of the fuzz targets: cutting an input into arbitrary fragments, the server's
//! default head limits, a fixed connection, and a reference chunked encoder.
//!
//! The first byte of a fuzz input seeds how the rest is cut, so libFuzzer explores the splits
//! (one byte at a time, a few large pieces, everything at once) as well as the bytes.

use std::fmt::Write as _;

use ferrule_core::config::ServerConfig;
use ferrule_core::exchange::ConnInfo;
use ferrule_core::http1::HeadLimits;

/// Splits `data` into `(fragments_source, payload)`: `data[0]` seeds the cutting, the rest is
/// the payload.
pub fn seed_and_payload(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&seed, rest)) => (seed, rest),
        None => (0, &[]),
    }
}

/// A tiny deterministic generator (xorshift32) seeded by one input byte.
#[derive(Debug, Clone)]
pub struct Rng(u32);

impl Rng {
    pub fn new(seed: u8) -> Rng {
        Rng(u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1))
    }

    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// A value in `1..=max`.
    pub fn size(&mut self, max: u32) -> usize {
        (self.next_u32() % max) as usize + 1
    }
}

/// The lengths of the fragments `payload` is fed in: seed 0 gives the whole payload at once,
/// seed 1 one byte at a time, other seeds pseudo-random sizes from 1 to 64.
pub fn fragments(seed: u8, len: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = len;
    let mut rng = Rng::new(seed);
    while left > 0 {
        let n = match seed {
            0 => left,
            1 => 1,
            _ => rng.size(64),
        };
        let n = n.min(left);
        out.push(n);
        left -= n;
    }
    out
}

/// The head limits the server runs with by default (`ServerConfig::default()`), as the
/// connection driver builds them.
pub fn default_limits() -> HeadLimits {
    let c = ServerConfig::default();
    HeadLimits {
        request_line: c.limit_request_line,
        fields: c.limit_request_fields,
        field_size: c.limit_request_field_size,
        head: c.limit_request_head,
    }
}

/// A fixed connection: a peer on 10.1.2.3:45678 that reached the listener at 127.0.0.1:8000,
/// over `https` when `https` is set (the scheme only changes the default `SERVER_PORT`).
pub fn conn_info(https: bool) -> ConnInfo {
    ConnInfo::new(
        std::net::SocketAddr::from(([10, 1, 2, 3], 45678)),
        std::net::SocketAddr::from(([127, 0, 0, 1], 8000)),
        if https { "https" } else { "http" },
    )
}

/// Chunk-extension bytes the encoder may add per body: well under the decoder's per-body bound
/// (`ferrule_core::http1::chunked::MAX_CHUNK_EXT_TOTAL`), so every encoding it makes is valid.
const ENCODER_EXT_BUDGET: usize = 4 * 1024;

/// Encodes `body` with `Transfer-Encoding: chunked` (RFC 9112 §7.1), choosing chunk sizes, hex
/// case, leading zeros, chunk extensions and trailer fields from `seed`. Every output is a valid
/// chunked body that decodes to `body`.
pub fn encode_chunked(body: &[u8], seed: u8) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ 0x5a);
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut ext_left = ENCODER_EXT_BUDGET;
    let mut line = String::new();
    let mut at = 0;
    let size_max = if seed & 0x80 != 0 { 4096 } else { 64 };
    let mut chunk_line = |size: usize, rng: &mut Rng, out: &mut Vec<u8>| {
        let style = rng.next_u32();
        line.clear();
        let zeros = if style & 0x3 == 0 {
            (style >> 2) % 4
        } else {
            0
        };
        for _ in 0..zeros {
            line.push('0');
        }
        // Formatting into a String cannot fail.
        let _ = if style & 0x10 != 0 {
            write!(line, "{size:X}")
        } else {
            write!(line, "{size:x}")
        };
        let ext: &str = match (style >> 5) % 8 {
            1 => ";a",
            2 => "; name=value",
            3 => " ;q=\"quoted \\\" string\"",
            4 => ";a=1;b=2",
            _ => "",
        };
        if ext.len() <= ext_left {
            ext_left -= ext.len();
            line.push_str(ext);
        }
        line.push_str("\r\n");
        out.extend_from_slice(line.as_bytes());
    };
    while at < body.len() {
        let n = rng.size(size_max).min(body.len() - at);
        chunk_line(n, &mut rng, &mut out);
        out.extend_from_slice(&body[at..at + n]);
        out.extend_from_slice(b"\r\n");
        at += n;
    }
    chunk_line(0, &mut rng, &mut out);
    for _ in 0..rng.next_u32() % 3 {
        out.extend_from_slice(b"X-Trailer: t\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_cover_the_payload() {
        for seed in 0..=255u8 {
            let f = fragments(seed, 1000);
            assert_eq!(f.iter().sum::<usize>(), 1000);
            assert!(f.iter().all(|&n| n > 0));
        }
        assert_eq!(fragments(0, 10), vec![10]);
        assert_eq!(fragments(1, 3), vec![1, 1, 1]);
    }

    #[test]
    fn encoder_output_decodes_to_the_body() {
        let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        for seed in 0..=255u8 {
            let mut src = bytes::BytesMut::from(&encode_chunked(&body, seed)[..]);
            let mut dec = ferrule_core::http1::ChunkedDecoder::new();
            let mut got = Vec::new();
            while let Some(data) = dec.decode(&mut src).expect("valid encoding") {
                got.extend_from_slice(&data);
            }
            assert!(dec.is_done(), "seed {seed}");
            assert!(src.is_empty(), "seed {seed}");
            assert_eq!(got, body, "seed {seed}");
        }
    }
}
