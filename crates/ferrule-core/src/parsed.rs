//! The result of an incremental parse over a connection's read buffer, shared by the parsers
//! that split a prefix off the front of that buffer: the HTTP/1 head (`http1`), the uwsgi
//! packet (`uwsgi`) and the PROXY header (`proxy_protocol`).

/// What an incremental parser found at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<T> {
    /// Not complete yet: read more. The limits are already checked on what is there, and
    /// nothing was consumed.
    Partial,
    /// A complete item was split off the front of the buffer.
    Complete(T),
}

/// Feeds `input` to `parse` in pieces of `step` bytes, as a socket might deliver it: the item
/// and the bytes left after it, the error, or `None` if it never completes. Checks that a
/// `Partial` consumed nothing.
#[cfg(test)]
pub(crate) fn feed_in_pieces<T, E>(
    input: &[u8],
    step: usize,
    mut parse: impl FnMut(&mut bytes::BytesMut) -> Result<Parsed<T>, E>,
) -> Option<Result<(T, Vec<u8>), E>> {
    let mut buf = bytes::BytesMut::new();
    let mut fed = 0;
    while fed < input.len() {
        let n = step.min(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        let before = buf.len();
        match parse(&mut buf) {
            Ok(Parsed::Partial) => assert_eq!(buf.len(), before, "Partial consumed bytes"),
            Ok(Parsed::Complete(item)) => {
                let mut rest = buf.to_vec();
                rest.extend_from_slice(&input[fed..]);
                return Some(Ok((item, rest)));
            }
            Err(e) => return Some(Err(e)),
        }
    }
    None
}
