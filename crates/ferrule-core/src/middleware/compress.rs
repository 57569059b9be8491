//! Response compression (`--compress`): content-coding negotiation and the encoders, as plain
//! functions (the response filter that applies them is [`super::filter`]).
//!
//! - Negotiation (RFC 9110 §12.5.3): `Accept-Encoding` is a list of codings with optional
//!   weights, `gzip;q=0.8, br`. A coding is acceptable when listed with q > 0, or when `*` is
//!   (with q > 0) and it is not listed ("The asterisk "*" symbol ... matches any available
//!   content coding not explicitly listed"); `q=0` means "not acceptable". `x-gzip` is gzip
//!   (§8.4.1.3: "A recipient SHOULD consider "x-gzip" to be equivalent to "gzip""). Among
//!   acceptable codings the highest weight wins, brotli on a tie (smaller output at the same
//!   speed at the levels used here). No header, or nothing acceptable: identity (we never
//!   answer 406; identity is always an answer a client can read).
//! - Levels: gzip 5 and brotli quality 4 with a 256 KiB window for streams: both run at
//!   tens of MB/s per core and get most of the ratio of the slow levels on text; the work
//!   happens on the I/O thread (bodies of [`BLOCKING_COMPRESS_MIN`] bytes or more go to the
//!   blocking pool), so a slow level would add latency to every connection.
//! - Streams: each flush is a gzip sync flush / brotli flush, so what the app has sent reaches
//!   the client without waiting for the next chunk (server-sent events, progress output). The
//!   cost is a few bytes per flush and a lower ratio for apps that yield many tiny chunks; the
//!   filter flushes only when the app has nothing more queued, so chunks that arrive together
//!   are compressed together.

use std::io::Write;

use bytes::Bytes;

/// gzip level (0-9).
const GZIP_LEVEL: u32 = 5;
/// brotli quality (0-11).
const BROTLI_QUALITY: u32 = 4;
/// brotli window for streams, as log2 bytes (256 KiB): bounds the encoder's memory per stream.
const BROTLI_STREAM_LGWIN: u32 = 18;
/// brotli window bounds for whole bodies (sized to the body).
const BROTLI_MIN_LGWIN: u32 = 10;
const BROTLI_MAX_LGWIN: u32 = 22;
/// brotli's internal buffer.
const BROTLI_BUFFER: usize = 4096;
/// Bodies (or stream batches) at least this large are compressed on tokio's blocking pool
/// rather than on the I/O thread: at ~30-60 MB/s, 128 KiB is 2-4 ms, the most one response
/// may hold every other connection of the process back.
pub(crate) const BLOCKING_COMPRESS_MIN: usize = 128 * 1024;

/// A content coding we produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Brotli,
}

impl Coding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
        }
    }

    /// The file name suffix of a precompressed sibling.
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Gzip => ".gz",
            Coding::Brotli => ".br",
        }
    }
}

/// The acceptable codings of an `Accept-Encoding` value, best first (see the module docs).
pub fn preferences(accept_encoding: Option<&[u8]>) -> Vec<Coding> {
    let Some(value) = accept_encoding else {
        return Vec::new();
    };
    // Weights in thousandths; `None` = not listed.
    let (mut br, mut gzip, mut star) = (None, None, None);
    for element in value.split(|&b| b == b',') {
        let mut params = element.split(|&b| b == b';');
        let coding = params.next().unwrap_or_default().trim_ascii();
        if coding.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for p in params {
            let p = p.trim_ascii();
            if p.len() >= 2 && p[..2].eq_ignore_ascii_case(b"q=") {
                q = qvalue(&p[2..]);
            }
        }
        // An unparsable weight makes the element unusable.
        let Some(q) = q else { continue };
        let slot = if coding.eq_ignore_ascii_case(b"br") {
            &mut br
        } else if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
            &mut gzip
        } else if coding == b"*" {
            &mut star
        } else {
            continue;
        };
        // Repeats: the highest weight counts.
        *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
    }
    let weight = |w: Option<u16>| w.or(star).unwrap_or(0);
    let mut out: Vec<(u16, Coding)> = [(weight(br), Coding::Brotli), (weight(gzip), Coding::Gzip)]
        .into_iter()
        .filter(|(q, _)| *q > 0)
        .collect();
    // Stable: brotli stays first on a tie.
    out.sort_by_key(|&(q, _)| std::cmp::Reverse(q));
    out.into_iter().map(|(_, c)| c).collect()
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (RFC 9110 §12.4.2), in
/// thousandths.
fn qvalue(text: &[u8]) -> Option<u16> {
    let (int, frac) = match text.iter().position(|&b| b == b'.') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// True for `type/subtype` or `type/*` (tokens, no parameters).
pub fn valid_type_pattern(pattern: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match pattern.split_once('/') {
        Some((t, "*")) => token(t),
        Some((t, s)) => token(t) && token(s),
        None => false,
    }
}

/// True when the `Content-Type` value matches one of `patterns` (case-insensitive, parameters
/// ignored).
pub(crate) fn type_matches(content_type: &[u8], patterns: &[String]) -> bool {
    let essence = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let Some(slash) = essence.iter().position(|&b| b == b'/') else {
        return false;
    };
    patterns.iter().any(|p| match p.split_once('/') {
        Some((t, "*")) => essence[..slash].eq_ignore_ascii_case(t.as_bytes()),
        _ => essence.eq_ignore_ascii_case(p.as_bytes()),
    })
}

/// A streaming encoder.
pub(crate) enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoder::Gzip(_) => "Encoder::Gzip",
            Encoder::Brotli(_) => "Encoder::Brotli",
        })
    }
}

impl Encoder {
    pub(crate) fn new(coding: Coding) -> Encoder {
        Encoder::with_window(coding, BROTLI_STREAM_LGWIN)
    }

    fn with_window(coding: Coding, lgwin: u32) -> Encoder {
        match coding {
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(GZIP_LEVEL),
            )),
            Coding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                BROTLI_QUALITY,
                lgwin,
            ))),
        }
    }

    /// Compresses `data` (output is kept until [`Encoder::flush`]).
    pub(crate) fn write(&mut self, data: &[u8]) {
        // Writing into a Vec cannot fail.
        let _ = match self {
            Encoder::Gzip(e) => e.write_all(data),
            Encoder::Brotli(e) => e.write_all(data),
        };
    }

    /// Flushes (sync flush) and takes the compressed bytes produced so far.
    pub(crate) fn flush(&mut self) -> Bytes {
        let out = match self {
            Encoder::Gzip(e) => {
                let _ = e.flush();
                e.get_mut()
            }
            Encoder::Brotli(e) => {
                let _ = e.flush();
                e.get_mut()
            }
        };
        Bytes::from(std::mem::take(out))
    }

    /// Ends the stream; the last compressed bytes.
    pub(crate) fn finish(self) -> Bytes {
        match self {
            Encoder::Gzip(e) => Bytes::from(e.finish().unwrap_or_default()),
            Encoder::Brotli(e) => Bytes::from(e.into_inner()),
        }
    }
}

/// Compresses a whole body at once.
pub(crate) fn compress_whole(coding: Coding, data: &[u8]) -> Bytes {
    let bits = usize::BITS - data.len().leading_zeros();
    let lgwin = bits.clamp(BROTLI_MIN_LGWIN, BROTLI_MAX_LGWIN);
    let mut e = Encoder::with_window(coding, lgwin);
    e.write(data);
    let mut out = e.flush().to_vec();
    out.extend_from_slice(&e.finish());
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn prefs(v: &str) -> Vec<&'static str> {
        preferences(Some(v.as_bytes()))
            .into_iter()
            .map(Coding::token)
            .collect()
    }

    #[test]
    fn negotiation() {
        assert!(preferences(None).is_empty());
        assert_eq!(prefs("gzip"), ["gzip"]);
        assert_eq!(prefs("gzip, deflate, br"), ["br", "gzip"]);
        assert_eq!(prefs("br;q=0.5, gzip"), ["gzip", "br"]);
        assert_eq!(prefs("br;q=0, gzip;q=0.1"), ["gzip"]);
        assert_eq!(prefs("gzip;q=0"), Vec::<&str>::new());
        assert_eq!(prefs("*"), ["br", "gzip"]);
        assert_eq!(prefs("*;q=0.5, gzip;q=0.9"), ["gzip", "br"]);
        assert_eq!(prefs("*, br;q=0"), ["gzip"]);
        assert_eq!(prefs("identity"), Vec::<&str>::new());
        assert_eq!(prefs(""), Vec::<&str>::new());
        assert_eq!(prefs("X-GZIP ; Q=1.000"), ["gzip"]);
        assert_eq!(prefs("gzip;q=2, br;q=abc"), Vec::<&str>::new());
        assert_eq!(prefs("gzip;q=0.001"), ["gzip"]);
        assert_eq!(prefs("gzip;q=0.0001"), Vec::<&str>::new());
    }

    #[test]
    fn qvalues() {
        assert_eq!(qvalue(b"1"), Some(1000));
        assert_eq!(qvalue(b"1.000"), Some(1000));
        assert_eq!(qvalue(b"1.5"), None);
        assert_eq!(qvalue(b"0.5"), Some(500));
        assert_eq!(qvalue(b"0"), Some(0));
        assert_eq!(qvalue(b"0."), Some(0));
        assert_eq!(qvalue(b".5"), None);
    }

    #[test]
    fn types() {
        let pats: Vec<String> = ["text/*", "application/json"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert!(type_matches(b"text/html; charset=utf-8", &pats));
        assert!(type_matches(b"TEXT/Plain", &pats));
        assert!(type_matches(b"application/json", &pats));
        assert!(!type_matches(b"application/jsonx", &pats));
        assert!(!type_matches(b"image/png", &pats));
        assert!(!type_matches(b"text", &pats));
        assert!(valid_type_pattern("text/*"));
        assert!(valid_type_pattern("image/svg+xml"));
        assert!(!valid_type_pattern("*/*"));
        assert!(!valid_type_pattern("text"));
        assert!(!valid_type_pattern("text/html; charset=utf-8"));
    }

    #[test]
    fn round_trips() {
        let text = "hello compressed world ".repeat(200);
        for coding in [Coding::Gzip, Coding::Brotli] {
            let whole = compress_whole(coding, text.as_bytes());
            assert!(whole.len() < text.len() / 5, "{coding:?}");
            assert_eq!(decode(coding, &whole), text.as_bytes());
            // Streamed: every flush is decodable as far as it goes.
            let mut e = Encoder::new(coding);
            let mut wire = Vec::new();
            for part in text.as_bytes().chunks(700) {
                e.write(part);
                let out = e.flush();
                assert!(!out.is_empty());
                wire.extend_from_slice(&out);
            }
            wire.extend_from_slice(&e.finish());
            assert_eq!(decode(coding, &wire), text.as_bytes());
        }
    }

    fn decode(coding: Coding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Coding::Gzip => flate2::read::GzDecoder::new(data).read_to_end(&mut out),
            Coding::Brotli => brotli::Decompressor::new(data, 4096).read_to_end(&mut out),
        }
        .unwrap();
        out
    }
}
