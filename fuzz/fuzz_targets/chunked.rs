//! `ChunkedDecoder` on arbitrary bytes fed in arbitrary fragments: never panics, and decodes the
//! same body (or fails with the same status) as when the bytes arrive at once.
#![no_main]

use bytes::BytesMut;
use ferrule_core::http1::ChunkedDecoder;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Outcome {
    /// Body, done, what was left after the body.
    Body(Vec<u8>, bool, Vec<u8>),
    Error(u16),
}

fn feed(payload: &[u8], pieces: &[usize]) -> Outcome {
    let mut dec = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut at = 0;
    for &n in pieces {
        buf.extend_from_slice(&payload[at..at + n]);
        at += n;
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(data)) => {
                    assert!(!data.is_empty());
                    body.extend_from_slice(&data);
                }
                Ok(None) => break,
                Err(e) => return Outcome::Error(e.status()),
            }
        }
        if dec.is_done() {
            break;
        }
    }
    assert_eq!(dec.decoded_len(), body.len() as u64);
    let mut rest = buf.to_vec();
    rest.extend_from_slice(&payload[at..]);
    Outcome::Body(body, dec.is_done(), rest)
}

fuzz_target!(|data: &[u8]| {
    let (seed, payload) = ferrule_fuzz::seed_and_payload(data);
    let split = feed(payload, &ferrule_fuzz::fragments(seed, payload.len()));
    let whole = feed(payload, &ferrule_fuzz::fragments(0, payload.len()));
    // The answer must not depend on how the bytes were split into reads.
    assert_eq!(split, whole);
});
