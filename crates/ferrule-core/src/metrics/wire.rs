//! A [`Snapshot`] in a small fixed binary form: what a worker sends its master with each
//! heartbeat (`Message::Metrics`, see `supervise::pipe`), so the master can serve the sum.
//!
//! Layout (all integers big-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | [`VERSION`] |
//! | 1 each | dimensions: status classes, methods, histogram slots, refused statuses |
//! | 8 × classes × methods | `requests`, row by row |
//! | 8 × slots | `latency_buckets` (cumulative) |
//! | 8 | `latency_sum_seconds`, IEEE 754 bits |
//! | 8 × 8 | in flight, queue depth, bytes in, bytes out, open connections, connections total, connections refused, RSS |
//! | 8 × refused | `refused` |
//!
//! The dimensions travel with the numbers, so a worker and a master built with different tables
//! still agree on what each number is. The whole form is at most [`MAX_ENCODED`] bytes, below
//! `PIPE_BUF`, so a heartbeat carrying it is written to the pipe atomically. [`decode`] checks
//! the version, the dimensions and the exact length: anything else is a [`WireError`], which
//! the master logs and ignores (a bad snapshot never stops it).

use super::Snapshot;

/// Version of the layout above.
pub const VERSION: u8 = 1;
/// Largest encoded snapshot accepted (and produced): `PIPE_BUF` on Linux, so the frame that
/// carries it stays small.
pub const MAX_ENCODED: usize = 4096;
/// Largest dimension accepted in a snapshot (the tables are far smaller).
const MAX_DIM: usize = 32;
/// Fixed scalars after the latency sum.
const SCALARS: usize = 8;
/// Version byte and the four dimensions.
const PREFIX: usize = 5;

/// An encoded snapshot that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad metrics snapshot: {}", self.0)
    }
}

impl std::error::Error for WireError {}

/// `s` in the form above. Tables longer than [`MAX_DIM`] are cut (never the case for the
/// snapshots this crate takes).
pub fn encode(s: &Snapshot) -> Vec<u8> {
    let classes = s.requests.len().min(MAX_DIM);
    let methods = s
        .requests
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .min(MAX_DIM);
    let slots = s.latency_buckets.len().min(MAX_DIM);
    let refused = s.refused.len().min(MAX_DIM);
    let numbers = classes * methods + slots + 1 + SCALARS + refused;
    let mut out = Vec::with_capacity(PREFIX + 8 * numbers);
    // Each dimension is at most MAX_DIM (32): one byte.
    out.extend_from_slice(&[
        VERSION,
        classes as u8,
        methods as u8,
        slots as u8,
        refused as u8,
    ]);
    let mut put = |v: u64| out.extend_from_slice(&v.to_be_bytes());
    for row in s.requests.iter().take(classes) {
        (0..methods).for_each(|m| put(row.get(m).copied().unwrap_or(0)));
    }
    s.latency_buckets.iter().take(slots).for_each(|&v| put(v));
    put(s.latency_sum_seconds.to_bits());
    for v in [
        s.in_flight,
        s.queue_depth,
        s.bytes_in,
        s.bytes_out,
        s.open_connections,
        s.connections_total,
        s.connections_refused,
        s.rss_bytes,
    ] {
        put(v);
    }
    s.refused.iter().take(refused).for_each(|&v| put(v));
    out
}

/// Reads what [`encode`] wrote; see the module docs for what is checked.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, WireError> {
    if bytes.len() > MAX_ENCODED {
        return Err(WireError(format!("{} bytes", bytes.len())));
    }
    let Some((&[version, classes, methods, slots, refused], rest)) = bytes.split_first_chunk()
    else {
        return Err(WireError("truncated".into()));
    };
    if version != VERSION {
        return Err(WireError(format!("version {version}")));
    }
    let [classes, methods, slots, refused] = [classes, methods, slots, refused].map(usize::from);
    if [classes, methods, slots, refused]
        .iter()
        .any(|&d| d > MAX_DIM)
    {
        return Err(WireError("dimension out of range".into()));
    }
    let numbers = classes * methods + slots + 1 + SCALARS + refused;
    if rest.len() != 8 * numbers {
        return Err(WireError(format!(
            "{} bytes of numbers, {} expected",
            rest.len(),
            8 * numbers
        )));
    }
    let mut values = rest.chunks_exact(8).map(|c| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        u64::from_be_bytes(b)
    });
    let mut take = |n: usize| -> Vec<u64> { values.by_ref().take(n).collect() };
    let requests = (0..classes).map(|_| take(methods)).collect();
    let latency_buckets = take(slots);
    let [sum] = take(1)[..] else {
        return Err(WireError("truncated".into()));
    };
    let latency_sum_seconds = f64::from_bits(sum);
    if !latency_sum_seconds.is_finite() || latency_sum_seconds < 0.0 {
        return Err(WireError(
            "latency sum is not a finite positive number".into(),
        ));
    }
    let [in_flight, queue_depth, bytes_in, bytes_out, open_connections, connections_total, connections_refused, rss_bytes] =
        take(SCALARS)[..]
    else {
        return Err(WireError("truncated".into()));
    };
    Ok(Snapshot {
        requests,
        latency_buckets,
        latency_sum_seconds,
        in_flight,
        queue_depth,
        bytes_in,
        bytes_out,
        open_connections,
        connections_total,
        connections_refused,
        rss_bytes,
        refused: take(refused),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{method_index, Metrics};
    use std::time::Duration;

    fn sample() -> Snapshot {
        let m = Metrics::new();
        m.request_done(method_index(b"GET"), 200, Duration::from_millis(3));
        m.request_done(method_index(b"POST"), 503, Duration::from_secs(2));
        m.add_bytes_in(123);
        m.add_bytes_out(4567);
        m.request_refused(431);
        m.connection_refused();
        m.snapshot(9)
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let bytes = encode(&s);
        assert!(bytes.len() <= MAX_ENCODED && bytes.len() <= libc::PIPE_BUF);
        assert_eq!(decode(&bytes), Ok(s));
        assert_eq!(
            decode(&encode(&Snapshot::default())),
            Ok(Snapshot::default())
        );
    }

    #[test]
    fn malformed_snapshots_are_errors_not_panics() {
        let good = encode(&sample());
        // Every truncation, and one byte too many.
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "{n} bytes");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        // Wrong version, absurd dimensions, huge input.
        let mut bad = good.clone();
        bad[0] = 99;
        assert!(decode(&bad).is_err());
        let mut bad = good.clone();
        bad[2] = 200;
        assert!(decode(&bad).is_err());
        assert!(decode(&vec![VERSION; MAX_ENCODED + 1]).is_err());
        // A NaN latency sum.
        let mut nan = sample();
        nan.latency_sum_seconds = f64::NAN;
        assert!(decode(&encode(&nan)).is_err());
        // Arbitrary bytes never panic.
        let mut x: u32 = 12345;
        for len in 0..600 {
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = decode(&junk);
        }
    }
}
