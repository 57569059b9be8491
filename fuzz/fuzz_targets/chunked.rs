//! `ChunkedDecoder` on arbitrary bytes fed in arbitrary fragments: never panics, counts what it
//! decodes, and decodes the same body (or fails with the same status) as when the bytes arrive at
//! once. And on valid encodings: the payload, chunked by a reference encoder (random chunk sizes,
//! hex case, leading zeros, extensions, trailers) and followed by a pipelined request, decodes
//! back to exactly the payload, leaves exactly the pipelined bytes, in any fragments.
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

    // Round trip: decoding a valid encoding gives back the payload and stops at the body's end.
    const NEXT: &[u8] = b"GET /next HTTP/1.1\r\n";
    let mut encoded = ferrule_fuzz::encode_chunked(payload, seed);
    encoded.extend_from_slice(NEXT);
    let decoded = feed(&encoded, &ferrule_fuzz::fragments(seed, encoded.len()));
    assert_eq!(
        decoded,
        Outcome::Body(payload.to_vec(), true, NEXT.to_vec())
    );
});
