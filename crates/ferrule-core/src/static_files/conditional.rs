//! Validators, conditional requests and ranges for static files, as pure functions.
//!
//! - ETag (RFC 9110 §8.8.3): strong, `"<mtime secs>-<mtime ns>-<size>"` in hex, plus `-br`/`-gz`
//!   for a precompressed variant (each representation has its own tag). Strong, not weak,
//!   because `If-Range` only works with a strong validator (RFC 9110 §13.1.5: "A server MUST NOT
//!   use a weak entity tag in If-Range"); a file is the same bytes while its size and
//!   nanosecond mtime are unchanged, which is what a strong tag promises (nginx does the same).
//! - Precedence (RFC 9110 §13.2.2): `If-Match` (412), else `If-Unmodified-Since` (412); then
//!   `If-None-Match` (304 for GET/HEAD), else `If-Modified-Since` (304); then `Range`, when
//!   `If-Range` (if any) matches.
//! - `If-None-Match` uses the weak comparison (§13.1.2: "A recipient MUST use the weak
//!   comparison function when comparing entity tags for If-None-Match"); `If-Match` and
//!   `If-Range` the strong one.
//! - Dates compare at one-second resolution (HTTP-date has no finer one, §5.6.7); an unparsable
//!   date makes the condition absent (§13.1.3: "A recipient MUST ignore the If-Modified-Since
//!   header field if the received field value is not a valid HTTP-date").
//! - `Range` (RFC 9110 §14.2): `bytes=` with one range is served as 206 with `Content-Range`;
//!   an unsatisfiable one is 416 with `Content-Range: bytes */SIZE` (§15.5.17). Several ranges
//!   are answered with the whole file (200): §14.2 lets a server ignore a Range, and
//!   multipart/byteranges is rarely wanted by the clients that send several (it also costs a
//!   copy through user space instead of `sendfile`). A syntactically invalid Range is ignored.
//!   Range applies to GET only (§14.2: "A server MUST ignore a Range header field received
//!   with a request method that is unrecognized or for which range handling is not defined").

use std::time::{SystemTime, UNIX_EPOCH};

/// What a request's preconditions decide before the body is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Go on (200 or 206).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// A file's validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Validators {
    /// With its quotes.
    pub(crate) etag: String,
    /// Seconds since the epoch (what `Last-Modified` says).
    pub(crate) modified: u64,
}

impl Validators {
    pub(crate) fn new(size: u64, mtime: SystemTime, variant: &str) -> Validators {
        let since = mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
        Validators {
            etag: format!(
                "\"{:x}-{:x}-{size:x}{variant}\"",
                since.as_secs(),
                since.subsec_nanos()
            ),
            modified: since.as_secs(),
        }
    }

    pub(crate) fn last_modified(&self) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(self.modified))
    }
}

/// The request fields the decision reads (values as sent).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Conditions<'a> {
    pub(crate) if_match: Option<&'a [u8]>,
    pub(crate) if_unmodified_since: Option<&'a [u8]>,
    pub(crate) if_none_match: Option<&'a [u8]>,
    pub(crate) if_modified_since: Option<&'a [u8]>,
}

/// RFC 9110 §13.2.2, steps 1-4, for a GET or HEAD of an existing file.
pub(crate) fn evaluate(c: &Conditions<'_>, v: &Validators) -> Precondition {
    if let Some(list) = c.if_match {
        if !tag_list_matches(list, &v.etag, true) {
            return Precondition::Failed;
        }
    } else if let Some(date) = c.if_unmodified_since.and_then(parse_date) {
        if v.modified > date {
            return Precondition::Failed;
        }
    }
    if let Some(list) = c.if_none_match {
        if tag_list_matches(list, &v.etag, false) {
            return Precondition::NotModified;
        }
    } else if let Some(date) = c.if_modified_since.and_then(parse_date) {
        if v.modified <= date {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

fn parse_date(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    let t = httpdate::parse_http_date(text.trim()).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// `*` or a comma-separated list of entity tags containing `etag` (strong or weak comparison).
fn tag_list_matches(list: &[u8], etag: &str, strong: bool) -> bool {
    let list = list.trim_ascii();
    if list == b"*" {
        return true;
    }
    list.split(|&b| b == b',').any(|tag| {
        let tag = tag.trim_ascii();
        match tag.strip_prefix(b"W/") {
            Some(weak) => !strong && weak == etag.as_bytes(),
            None => tag == etag.as_bytes(),
        }
    })
}

/// What `Range` asks of a file of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// No usable Range: the whole file (200).
    Full,
    /// Bytes `start..=end` (206).
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// Parses `Range` against a file of `size` bytes (see the module docs for the choices).
pub(crate) fn range(value: &[u8], size: u64) -> RangeAnswer {
    let Some(spec) = strip_prefix_ci(value.trim_ascii(), b"bytes=") else {
        return RangeAnswer::Full;
    };
    let mut parts = spec.split(|&b| b == b',').map(<[u8]>::trim_ascii);
    let (Some(one), None) = (parts.next(), parts.next()) else {
        return RangeAnswer::Full;
    };
    let Some(dash) = one.iter().position(|&b| b == b'-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (&one[..dash], &one[dash + 1..]);
    match (number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || size == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial {
                    start: size.saturating_sub(n),
                    end: size - 1,
                }
            }
        }
        (Some(start), None) if last.is_empty() => partial(start, u64::MAX, size),
        (Some(start), Some(end)) if start <= end => partial(start, end, size),
        _ => RangeAnswer::Full,
    }
}

fn partial(start: u64, end: u64, size: u64) -> RangeAnswer {
    if start >= size {
        RangeAnswer::Unsatisfiable
    } else {
        RangeAnswer::Partial {
            start,
            end: end.min(size - 1),
        }
    }
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn strip_prefix_ci<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &value[prefix.len()..])
}

/// `If-Range` (RFC 9110 §13.1.5): the Range is honoured only when this validator matches: a
/// strong entity tag equal to ours, or a date equal to our Last-Modified.
pub(crate) fn if_range_holds(value: &[u8], v: &Validators) -> bool {
    let value = value.trim_ascii();
    if value.starts_with(b"\"") {
        return value == v.etag.as_bytes();
    }
    if value.starts_with(b"W/") {
        return false;
    }
    parse_date(value) == Some(v.modified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn v() -> Validators {
        Validators::new(1234, UNIX_EPOCH + Duration::new(1_700_000_000, 5), "")
    }

    #[test]
    fn validators() {
        let v = v();
        assert_eq!(v.etag, "\"6553f100-5-4d2\"");
        assert_eq!(v.last_modified(), "Tue, 14 Nov 2023 22:13:20 GMT");
        let gz = Validators::new(10, UNIX_EPOCH, "-gz");
        assert_eq!(gz.etag, "\"0-0-a-gz\"");
    }

    #[test]
    fn preconditions() {
        use Precondition::*;
        let v = v();
        let tag = v.etag.clone();
        let weak = format!("W/{tag}");
        let lm = v.last_modified();
        let older = "Tue, 14 Nov 2023 22:13:19 GMT";
        let c = |f: fn(&mut Conditions<'static>, &'static [u8]), s: String| {
            let s: &'static [u8] = Box::leak(s.into_bytes().into_boxed_slice());
            let mut c = Conditions::default();
            f(&mut c, s);
            evaluate(&c, &v)
        };
        let inm = |c: &mut Conditions<'static>, s| c.if_none_match = Some(s);
        let ims = |c: &mut Conditions<'static>, s| c.if_modified_since = Some(s);
        let im = |c: &mut Conditions<'static>, s| c.if_match = Some(s);
        let ius = |c: &mut Conditions<'static>, s| c.if_unmodified_since = Some(s);
        assert_eq!(evaluate(&Conditions::default(), &v), Proceed);
        assert_eq!(c(inm, tag.clone()), NotModified);
        assert_eq!(c(inm, weak.clone()), NotModified);
        assert_eq!(c(inm, format!("\"x\", {tag}")), NotModified);
        assert_eq!(c(inm, "*".into()), NotModified);
        assert_eq!(c(inm, "\"other\"".into()), Proceed);
        assert_eq!(c(ims, lm.clone()), NotModified);
        assert_eq!(c(ims, older.into()), Proceed);
        assert_eq!(c(ims, "yesterday".into()), Proceed);
        assert_eq!(c(im, tag.clone()), Proceed);
        assert_eq!(c(im, weak), Failed);
        assert_eq!(c(im, "*".into()), Proceed);
        assert_eq!(c(ius, older.into()), Failed);
        assert_eq!(c(ius, lm), Proceed);
        // If-None-Match wins over If-Modified-Since.
        let both = Conditions {
            if_none_match: Some(b"\"other\""),
            if_modified_since: Some(b"Tue, 14 Nov 2030 22:13:20 GMT"),
            ..Conditions::default()
        };
        assert_eq!(evaluate(&both, &v), Proceed);
    }

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        let r = |s: &str| range(s.as_bytes(), 100);
        assert_eq!(r("bytes=0-9"), Partial { start: 0, end: 9 });
        assert_eq!(r("bytes=90-"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=90-500"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-10"), Partial { start: 90, end: 99 });
        assert_eq!(r("bytes=-1000"), Partial { start: 0, end: 99 });
        assert_eq!(r("BYTES= 5-5 "), Partial { start: 5, end: 5 });
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(range(b"bytes=0-", 0), Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6"), Full);
        assert_eq!(r("bytes=5-1"), Full);
        assert_eq!(r("bytes=a-b"), Full);
        assert_eq!(r("items=0-1"), Full);
        assert_eq!(r("bytes=-"), Full);
        assert_eq!(r("bytes=99999999999999999999-"), Full);
    }

    #[test]
    fn if_range() {
        let v = v();
        assert!(if_range_holds(v.etag.as_bytes(), &v));
        assert!(!if_range_holds(format!("W/{}", v.etag).as_bytes(), &v));
        assert!(!if_range_holds(b"\"x\"", &v));
        assert!(if_range_holds(v.last_modified().as_bytes(), &v));
        assert!(!if_range_holds(b"Tue, 14 Nov 2023 22:13:19 GMT", &v));
    }
}
