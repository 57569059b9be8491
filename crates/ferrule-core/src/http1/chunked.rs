//! `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1), decoded strictly and
//! incrementally (any split of the input, down to one byte at a time, gives the same result).
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! chunk-ext-val  = token / quoted-string
//! trailer-section = *( field-line CRLF )
//! ```
//! Rules enforced: chunk sizes are hex digits only (no `0x`, sign or whitespace) and must fit in
//! a u64 ("Recipients MUST anticipate potentially large hexadecimal numerals and prevent
//! parsing errors due to integer conversion overflows"); every line ends in CRLF (a bare CR or
//! LF is an error); the CRLF after each chunk's data and the final CRLF are required; extensions
//! are parsed by the grammar above and ignored ("A recipient MUST ignore unrecognized chunk
//! extensions"), bounded per line by [`MAX_CHUNK_LINE`] and per body by [`MAX_CHUNK_EXT_TOTAL`]
//! so tiny chunks with large extensions cannot make us burn CPU; trailer fields (RFC 9112 §7.1.2)
//! are validated like header fields, bounded by [`MAX_TRAILER_BYTES`] and [`MAX_TRAILER_FIELDS`],
//! and discarded (PEP 3333 has no place for them).
//!
//! Zero-copy: chunk data is split off the read buffer; control lines stay in the buffer until
//! complete (at most [`MAX_CHUNK_LINE`] bytes), then are consumed.

use bytes::{Buf, Bytes, BytesMut};

use super::syntax::{is_ows, is_tchar, parse_field_line};
use super::RequestError;

/// Longest chunk-size line (size digits and extensions, without CRLF). Longer → 400.
pub const MAX_CHUNK_LINE: usize = 4096;
/// Most chunk-extension bytes accepted over one body. More → 400.
pub const MAX_CHUNK_EXT_TOTAL: usize = 16 * 1024;
/// Largest trailer section (field lines with their CRLFs). Larger → 431.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Most trailer fields. More → 431.
pub const MAX_TRAILER_FIELDS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside chunk data, with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer field lines until an empty line.
    Trailer,
    /// The body is complete.
    Done,
}

/// Incremental decoder; feed it the read buffer after each read.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: State,
    ext_total: usize,
    trailer_bytes: usize,
    trailer_fields: usize,
    decoded: u64,
}

fn framing(what: &'static str) -> RequestError {
    RequestError::InvalidFraming(what)
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder::default()
    }

    /// Takes the next piece of body data off the front of `src` (zero-copy split). `Ok(None)`:
    /// nothing more can be decoded from what is buffered (read more, unless [`Self::is_done`]).
    /// Chunk-size lines, extensions and trailers are consumed and validated here.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, RequestError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(nl) = find_line(src, MAX_CHUNK_LINE).map_err(|e| {
                        e.into_error(RequestError::InvalidFraming("chunk-size line too long"))
                    })?
                    else {
                        return Ok(None);
                    };
                    let (size, ext_len) = parse_chunk_line(&src[..nl - 1])?;
                    self.ext_total += ext_len;
                    if self.ext_total > MAX_CHUNK_EXT_TOTAL {
                        return Err(framing("too many chunk-extension bytes"));
                    }
                    src.advance(nl + 1);
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if src.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(left).map_or(src.len(), |left| left.min(src.len()));
                    let data = src.split_to(n).freeze();
                    let left = left - n as u64;
                    self.decoded += n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Some(data));
                }
                State::DataEnd => match src.get(..2) {
                    Some(b"\r\n") => {
                        src.advance(2);
                        self.state = State::Size;
                    }
                    Some(_) => return Err(framing("chunk data not followed by CRLF")),
                    None => {
                        if src.first().is_some_and(|&b| b != b'\r') {
                            return Err(framing("chunk data not followed by CRLF"));
                        }
                        return Ok(None);
                    }
                },
                State::Trailer => {
                    // Room for one more field line without its CRLF.
                    let room = MAX_TRAILER_BYTES
                        .saturating_sub(self.trailer_bytes)
                        .saturating_sub(2);
                    let Some(nl) = find_line(src, room)
                        .map_err(|e| e.into_error(RequestError::HeadTooLarge))?
                    else {
                        return Ok(None);
                    };
                    if nl == 1 {
                        src.advance(2);
                        self.state = State::Done;
                        continue;
                    }
                    self.trailer_fields += 1;
                    if self.trailer_fields > MAX_TRAILER_FIELDS {
                        return Err(RequestError::TooManyFields);
                    }
                    parse_field_line(&src[..nl - 1]).map_err(RequestError::Malformed)?;
                    self.trailer_bytes += nl + 1;
                    src.advance(nl + 1);
                }
                State::Done => return Ok(None),
            }
        }
    }

    /// The last chunk and the trailer section (and its final CRLF) have been consumed;
    /// `src` now starts at the next pipelined request.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Body bytes decoded so far (chunk data only).
    pub fn decoded_len(&self) -> u64 {
        self.decoded
    }
}

/// Why [`find_line`] gave up.
enum LineError {
    BareCr,
    BareLf,
    TooLong,
}

impl LineError {
    fn into_error(self, too_long: RequestError) -> RequestError {
        match self {
            LineError::BareCr => framing("bare CR in chunked body"),
            LineError::BareLf => framing("bare LF in chunked body"),
            LineError::TooLong => too_long,
        }
    }
}

/// The index of the LF ending the first line of `src` (preceded by CR), or `None` when the line
/// is incomplete. `limit` bounds the line without its CRLF.
fn find_line(src: &[u8], limit: usize) -> Result<Option<usize>, LineError> {
    let window = &src[..src.len().min(limit.saturating_add(2))];
    match memchr::memchr(b'\n', window) {
        Some(nl) => {
            if nl == 0 || window[nl - 1] != b'\r' {
                return Err(LineError::BareLf);
            }
            if memchr::memchr(b'\r', &window[..nl - 1]).is_some() {
                return Err(LineError::BareCr);
            }
            Ok(Some(nl))
        }
        None => {
            if let Some(cr) = memchr::memchr(b'\r', window) {
                if cr + 1 < window.len() {
                    return Err(LineError::BareCr);
                }
            }
            if window.len() - usize::from(window.ends_with(b"\r")) > limit {
                return Err(LineError::TooLong);
            }
            Ok(None)
        }
    }
}

/// Parses `chunk-size [ chunk-ext ]` (no CRLF): the size and the extension length.
fn parse_chunk_line(line: &[u8]) -> Result<(u64, usize), RequestError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(framing("chunk size is not a hex number"));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        };
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(d)))
            .ok_or(framing("chunk size overflows"))?;
    }
    let ext = &line[digits..];
    check_extensions(ext)?;
    Ok((size, ext.len()))
}

fn skip_ows(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_ows(s[i]) {
        i += 1;
    }
    i
}

fn token_end(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_tchar(s[i]) {
        i += 1;
    }
    i
}

/// `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`.
fn check_extensions(ext: &[u8]) -> Result<(), RequestError> {
    const BAD: &str = "invalid chunk extension";
    let mut i = 0;
    while i < ext.len() {
        i = skip_ows(ext, i);
        if ext.get(i) != Some(&b';') {
            return Err(framing(BAD));
        }
        i = skip_ows(ext, i + 1);
        let name_end = token_end(ext, i);
        if name_end == i {
            return Err(framing(BAD));
        }
        i = name_end;
        let eq = skip_ows(ext, i);
        if ext.get(eq) == Some(&b'=') {
            i = skip_ows(ext, eq + 1);
            if ext.get(i) == Some(&b'"') {
                i = quoted_string_end(ext, i).ok_or(framing(BAD))?;
            } else {
                let val_end = token_end(ext, i);
                if val_end == i {
                    return Err(framing(BAD));
                }
                i = val_end;
            }
        }
    }
    Ok(())
}

/// `quoted-string` starting at `s[start] == '"'`: the index after the closing quote.
fn quoted_string_end(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                let &next = s.get(i + 1)?;
                if !(next == b'\t' || (next >= 0x20 && next != 0x7f)) {
                    return None;
                }
                i += 2;
            }
            b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => i += 1,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the body, what follows it, and whether
    /// the decoder finished.
    fn run(input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>, bool), RequestError> {
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            while let Some(data) = dec.decode(&mut buf)? {
                assert!(!data.is_empty());
                body.extend_from_slice(&data);
            }
            if dec.is_done() || fed == input.len() {
                break;
            }
            let n = step.min(input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + n]);
            fed += n;
        }
        assert_eq!(dec.decoded_len(), body.len() as u64);
        let mut rest = buf.to_vec();
        rest.extend_from_slice(&input[fed..]);
        Ok((body, rest, dec.is_done()))
    }

    /// Same result for every split size.
    fn decode(input: &[u8]) -> Result<(Vec<u8>, Vec<u8>, bool), RequestError> {
        let whole = run(input, usize::MAX);
        for step in [1, 2, 3, 7, 64] {
            let split = run(input, step);
            match (&whole, &split) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "step {step}"),
                (Err(a), Err(b)) => assert_eq!(a.status(), b.status(), "step {step}"),
                _ => panic!("step {step}: {whole:?} vs {split:?}"),
            }
        }
        whole
    }

    #[test]
    fn valid_bodies() {
        let rows: &[(&[u8], &[u8], &[u8])] = &[
            (b"0\r\n\r\n", b"", b""),
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello", b""),
            (
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
                b"hello world",
                b"GET / HTTP/1.1\r\n",
            ),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", b""),
            (b"a\r\n0123456789\r\n000\r\n\r\n", b"0123456789", b""),
            (b"0000000000000000001\r\nx\r\n0\r\n\r\n", b"x", b""),
            (b"1;ext\r\nx\r\n0\r\n\r\n", b"x", b""),
            (
                b"1 ; a = b ;c\t;d=\"q \\\" \xe9\"\r\nx\r\n0;last\r\n\r\n",
                b"x",
                b"",
            ),
            (b"1\r\n\r\r\n0\r\n\r\n", b"\r", b""),
            (b"2\r\n\r\n\r\n0\r\n\r\n", b"\r\n", b""),
            (
                b"1\r\nx\r\n0\r\nX-Trailer: v\r\nChecksum: \xe9abc\r\n\r\nnext",
                b"x",
                b"next",
            ),
        ];
        for (input, body, rest) in rows {
            let (b, r, done) = decode(input).unwrap_or_else(|e| panic!("{e}: {input:?}"));
            assert!(done, "{input:?}");
            assert_eq!(&b, body, "{input:?}");
            assert_eq!(&r, rest, "{input:?}");
        }
    }

    #[test]
    fn incomplete_bodies_wait() {
        for input in [
            &b""[..],
            b"5",
            b"5\r",
            b"5\r\nhel",
            b"5\r\nhello",
            b"5\r\nhello\r",
            b"5\r\nhello\r\n0\r\n",
            b"5\r\nhello\r\n0\r\n\r",
            b"0\r\nX: y\r\n",
            b"1;a=\"unfinished",
        ] {
            let (_, _, done) = decode(input).unwrap_or_else(|e| panic!("{e}: {input:?}"));
            assert!(!done, "{input:?}");
        }
    }

    #[test]
    fn invalid_bodies() {
        let rows: &[(&[u8], u16)] = &[
            (b"0x5\r\nhello\r\n0\r\n\r\n", 400),
            (b"-1\r\nx\r\n0\r\n\r\n", 400),
            (b"+1\r\nx\r\n0\r\n\r\n", 400),
            (b" 1\r\nx\r\n0\r\n\r\n", 400),
            (b"1 \r\nx\r\n0\r\n\r\n", 400),
            (b"\r\nx\r\n0\r\n\r\n", 400),
            (b"g\r\nx\r\n0\r\n\r\n", 400),
            (b"10000000000000000\r\n", 400),
            (b"ffffffffffffffff0\r\n", 400),
            (b"1\nx\r\n0\r\n\r\n", 400),
            (b"1\rx\r\n0\r\n\r\n", 400),
            (b"1\r\nx\n0\r\n\r\n", 400),
            (b"1\r\nxy\r\n0\r\n\r\n", 400),
            (b"1\r\nx\r\r\n0\r\n\r\n", 400),
            (b"1\r\nx\r\n0\n\r\n", 400),
            (b"1\r\nx\r\n0\r\n\n", 400),
            (b"1\r\nx\r\n0\r\nX: y\n\r\n", 400),
            (b"1\r\nx\r\n0\r\n\rX", 400),
            (b"1\r\nx\r\n0\r\nX : y\r\n\r\n", 400),
            (b"1\r\nx\r\n0\r\n folded\r\n\r\n", 400),
            (b"1\r\nx\r\n0\r\nX: a\x00b\r\n\r\n", 400),
            (b"1\r\nx\r\n0\r\nnocolon\r\n\r\n", 400),
            (b"1;\r\nx\r\n0\r\n\r\n", 400),
            (b"1;=v\r\nx\r\n0\r\n\r\n", 400),
            (b"1;a=\r\nx\r\n0\r\n\r\n", 400),
            (b"1;a=b c\r\nx\r\n0\r\n\r\n", 400),
            (b"1;a=\"x\r\nx\r\n0\r\n\r\n", 400),
            (b"1;a=\"x\x00\"\r\nx\r\n0\r\n\r\n", 400),
            (b"1;a\x7f\r\nx\r\n0\r\n\r\n", 400),
            (b"1 x\r\nx\r\n0\r\n\r\n", 400),
        ];
        for (input, status) in rows {
            match decode(input) {
                Err(e) => assert_eq!(e.status(), *status, "{input:?}: {e}"),
                Ok(r) => panic!("accepted {input:?}: {r:?}"),
            }
        }
    }

    #[test]
    fn missing_final_crlf_never_completes() {
        // Without the CRLF that ends the trailer section the body is not done, and the next
        // request's bytes are not taken for it.
        let (_, _, done) = decode(b"1\r\nx\r\n0\r\n").unwrap();
        assert!(!done);
        assert!(decode(b"1\r\nx\r\n0\r\nGET / HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn extension_limits() {
        let mut line = b"1;a=".to_vec();
        line.extend(std::iter::repeat_n(b'v', MAX_CHUNK_LINE - 4));
        assert_eq!(line.len(), MAX_CHUNK_LINE);
        let mut ok = line.clone();
        ok.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert!(decode(&ok).unwrap().2);
        let mut long = line.clone();
        long.push(b'v');
        // Refused as soon as the line is too long, before its CRLF arrives.
        assert_eq!(decode(&long).unwrap_err().status(), 400);
        // Many chunks with medium extensions: the per-body total trips.
        let mut many = Vec::new();
        for _ in 0..(MAX_CHUNK_EXT_TOTAL / 1000 + 1) {
            many.extend_from_slice(b"1;e=");
            many.extend(std::iter::repeat_n(b'v', 996));
            many.extend_from_slice(b"\r\nx\r\n");
        }
        assert_eq!(
            decode(&many).unwrap_err(),
            RequestError::InvalidFraming("too many chunk-extension bytes")
        );
    }

    #[test]
    fn trailer_limits() {
        let mut many = b"0\r\n".to_vec();
        for _ in 0..MAX_TRAILER_FIELDS {
            many.extend_from_slice(b"T: v\r\n");
        }
        let mut ok = many.clone();
        ok.extend_from_slice(b"\r\n");
        assert!(decode(&ok).unwrap().2);
        many.extend_from_slice(b"T: v\r\n\r\n");
        assert_eq!(decode(&many).unwrap_err(), RequestError::TooManyFields);

        let mut big = b"0\r\nT: ".to_vec();
        big.extend(std::iter::repeat_n(b'v', MAX_TRAILER_BYTES));
        assert_eq!(decode(&big).unwrap_err(), RequestError::HeadTooLarge);
    }

    #[test]
    fn large_chunk_is_split_zero_copy() {
        let mut input = b"10000\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'z', 0x10000));
        input.extend_from_slice(b"\r\n0\r\n\r\n");
        let mut buf = BytesMut::from(&input[..]);
        let mut dec = ChunkedDecoder::new();
        let data = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(data.len(), 0x10000);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert!(dec.is_done());
        assert!(buf.is_empty());
    }

    #[test]
    fn huge_declared_chunk_streams() {
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nabc"[..]);
        assert_eq!(&dec.decode(&mut buf).unwrap().unwrap()[..], b"abc");
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert!(!dec.is_done());
    }

    #[test]
    fn done_decoder_leaves_the_rest() {
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"0\r\n\r\nGET"[..]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert!(dec.is_done());
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert_eq!(&buf[..], b"GET");
    }
}
