//! `parse_head` on arbitrary bytes fed in arbitrary fragments: never panics, never consumes on
//! Partial, and gives the same answer as parsing the same bytes at once.
#![no_main]

use bytes::BytesMut;
use ferrule_core::http1::{parse_head, HeadLimits, Parsed};
use libfuzzer_sys::fuzz_target;

const LIMITS: HeadLimits = HeadLimits {
    request_line: 512,
    fields: 16,
    field_size: 256,
    head: 2048,
};

/// The outcome of feeding `payload` as `pieces`: (head bytes, rest) or an error status.
fn feed(payload: &[u8], pieces: &[usize]) -> Option<Result<(Vec<u8>, Vec<u8>), u16>> {
    let mut buf = BytesMut::new();
    let mut at = 0;
    for &n in pieces {
        buf.extend_from_slice(&payload[at..at + n]);
        at += n;
        let before = buf.len();
        match parse_head(&mut buf, &LIMITS) {
            Ok(Parsed::Partial) => assert_eq!(buf.len(), before, "Partial must not consume"),
            Ok(Parsed::Complete(head)) => {
                // Exercise every accessor.
                let _ = (
                    head.method(),
                    head.target(),
                    head.path(),
                    head.query(),
                    head.host(),
                );
                let _ = (
                    head.framing(),
                    head.wants_keep_alive(),
                    head.expects_continue(),
                );
                assert!(head.headers().count() <= LIMITS.fields);
                assert!(head.as_bytes().len() <= LIMITS.head);
                let mut rest = buf.to_vec();
                rest.extend_from_slice(&payload[at..]);
                return Some(Ok((head.as_bytes().to_vec(), rest)));
            }
            Err(e) => return Some(Err(e.status())),
        }
    }
    None
}

fuzz_target!(|data: &[u8]| {
    let (seed, payload) = ferrule_fuzz::seed_and_payload(data);
    let split = feed(payload, &ferrule_fuzz::fragments(seed, payload.len()));
    let whole = feed(payload, &ferrule_fuzz::fragments(0, payload.len()));
    // The answer must not depend on how the bytes were split into reads.
    assert_eq!(split, whole);
});
