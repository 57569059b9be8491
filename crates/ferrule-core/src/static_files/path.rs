//! From a request path to a file path under a mount, as pure functions.
//!
//! Rules (the mount owns its prefix; anything refused here is a 404, never the app's):
//! - The path is percent-decoded per segment (RFC 3986 §2.1), then normalised: empty and `.`
//!   segments are dropped (RFC 3986 §5.2.4 removes `.`).
//! - A `..` segment is refused rather than resolved: RFC 3986 §5.2.4 would resolve it, but a
//!   client that sends one is either confused or probing, and resolving it is how traversal
//!   bugs start.
//! - A segment that decodes to `/` or `\` (`%2F`, `%5C`, a literal backslash) or holds a NUL is
//!   refused: an encoded slash is not a separator (RFC 3986 §2.2: "percent-encoding ... the
//!   data octet ... is not a delimiter"), so it can name no file here.
//! - Segments starting with `.` (dotfiles: `.git`, `.env`, `.htaccess`) are refused: a static
//!   directory is often a checkout or a build output, and those files are never meant to be
//!   public.
//! - A path matches a mount when its first decoded segments equal the mount prefix's; the
//!   longest prefix wins. Segments before the mount boundary are compared literally, so
//!   `/static%2Fx` is not under `/static` (it goes to the app).

use std::borrow::Cow;

/// Why a path under a mount names no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `..`
    DotDot,
    /// `%2F`, `%5C`, `\`, or NUL inside a segment.
    BadByte,
    /// A segment starting with `.`.
    Hidden,
}

/// One decoded path segment (raw bytes: file names need not be UTF-8).
pub(crate) type Segment = Vec<u8>;

/// The decoded segments of `path` (still percent-encoded, starting with `/`), empty and `.`
/// segments dropped, `..` kept (the caller decides).
pub(crate) fn segments(path: &[u8]) -> Vec<Cow<'_, [u8]>> {
    path.split(|&b| b == b'/')
        .filter(|s| !s.is_empty() && *s != b".")
        .map(crate::http1::percent_decode)
        .filter(|s| s.as_ref() != b".")
        .collect()
}

/// Checks the segments after a mount prefix; they become the file's path under the root.
pub(crate) fn check_rest<'a>(rest: &'a [Cow<'a, [u8]>]) -> Result<Vec<&'a [u8]>, Refused> {
    rest.iter()
        .map(|s| {
            let s = s.as_ref();
            if s == b".." {
                Err(Refused::DotDot)
            } else if s.iter().any(|&b| b == b'/' || b == b'\\' || b == 0) {
                Err(Refused::BadByte)
            } else if s.first() == Some(&b'.') {
                Err(Refused::Hidden)
            } else {
                Ok(s)
            }
        })
        .collect()
}

/// The decoded segments of a mount prefix (`/static`, `/` for everything); `Err` for a prefix
/// that is not an absolute path or holds `..`, a NUL or an encoded slash.
pub(crate) fn prefix_segments(prefix: &str) -> Result<Vec<Segment>, String> {
    if !prefix.starts_with('/') {
        return Err(format!("the URL prefix {prefix:?} must start with '/'"));
    }
    let segs = segments(prefix.as_bytes());
    let checked = check_rest(&segs)
        .map_err(|e| format!("the URL prefix {prefix:?} is not a plain path ({e:?})"))?;
    Ok(checked.into_iter().map(<[u8]>::to_vec).collect())
}

/// True when `path` starts with the segments of `prefix`.
pub(crate) fn has_prefix(path: &[Cow<'_, [u8]>], prefix: &[Segment]) -> bool {
    path.len() >= prefix.len() && path.iter().zip(prefix).all(|(a, b)| a.as_ref() == &b[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        segments(p.as_bytes())
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    #[test]
    fn decoding_and_normalising() {
        assert_eq!(segs("/a/b.txt"), ["a", "b.txt"]);
        assert_eq!(segs("//a/./b//"), ["a", "b"]);
        assert_eq!(segs("/a%20b/%41"), ["a b", "A"]);
        assert_eq!(segs("/a/%2e/b"), ["a", "b"]);
        assert_eq!(segs("/a/%2e%2e/b"), ["a", "..", "b"]);
        assert_eq!(segs("/a%2Fb"), ["a/b"]);
        assert_eq!(segs("/100%"), ["100%"]);
        assert_eq!(segs("/%zz%4"), ["%zz%4"]);
        assert!(segs("/").is_empty());
    }

    #[test]
    fn refusals() {
        let check = |p: &str| {
            let s = segments(p.as_bytes());
            check_rest(&s).map(|v| v.len())
        };
        assert_eq!(check("/a/b"), Ok(2));
        assert_eq!(check("/a/../b"), Err(Refused::DotDot));
        assert_eq!(check("/a/%2E%2e/b"), Err(Refused::DotDot));
        assert_eq!(check("/a%2Fb"), Err(Refused::BadByte));
        assert_eq!(check("/a%2fb"), Err(Refused::BadByte));
        assert_eq!(check("/a%5Cb"), Err(Refused::BadByte));
        assert_eq!(check("/a\\b"), Err(Refused::BadByte));
        assert_eq!(check("/a%00b"), Err(Refused::BadByte));
        assert_eq!(check("/.env"), Err(Refused::Hidden));
        assert_eq!(check("/x/.git/config"), Err(Refused::Hidden));
        assert_eq!(check("/x/%2egit"), Err(Refused::Hidden));
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix_segments("/static").unwrap(), [b"static".to_vec()]);
        assert_eq!(prefix_segments("/").unwrap(), Vec::<Segment>::new());
        assert_eq!(
            prefix_segments("/a/b/").unwrap(),
            [b"a".to_vec(), b"b".to_vec()]
        );
        assert!(prefix_segments("static").is_err());
        assert!(prefix_segments("/a/../b").is_err());
        let p = prefix_segments("/static").unwrap();
        assert!(has_prefix(&segments(b"/static/x"), &p));
        assert!(has_prefix(&segments(b"//static/"), &p));
        assert!(!has_prefix(&segments(b"/staticx/y"), &p));
        assert!(!has_prefix(&segments(b"/static%2Fx"), &p));
        assert!(!has_prefix(&segments(b"/"), &p));
        assert!(has_prefix(&segments(b"/anything"), &[]));
    }
}
