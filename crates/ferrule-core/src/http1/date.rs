//! The `Date` header value (RFC 9110 §6.6.1), formatted once per second.
//!
//! RFC 9110 §6.6.1: "An origin server with a clock ... MUST generate a Date header field in
//! all 2xx (Successful), 3xx (Redirection), and 4xx (Client Error) responses, and MAY generate a
//! Date header field in 1xx (Informational) and 5xx (Server Error) responses." We send it on every
//! response, as an IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
//! Each thread keeps the formatted value of the current second, so formatting costs one coarse
//! clock read per response and one format per second per thread.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate.
pub const DATE_LEN: usize = 29;

thread_local! {
    /// (unix second, its IMF-fixdate); second `u64::MAX` means "not formatted yet".
    static CACHE: Cell<(u64, [u8; DATE_LEN])> = const { Cell::new((u64::MAX, [0; DATE_LEN])) };
}

/// The current IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (29 bytes), cached per second.
pub fn now() -> [u8; DATE_LEN] {
    // The second as of the kernel's last tick (see `crate::clock`): a few ms late at most.
    let secs = crate::clock::coarse_unix_secs();
    CACHE.with(|cache| {
        let (cached_secs, value) = cache.get();
        if cached_secs == secs {
            return value;
        }
        let value = format(UNIX_EPOCH + Duration::from_secs(secs));
        cache.set((secs, value));
        value
    })
}

/// Formats `t` as an IMF-fixdate.
pub fn format(t: SystemTime) -> [u8; DATE_LEN] {
    let text = httpdate::fmt_http_date(t);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    // httpdate always produces 29 bytes for years 1970-9999; keep the epoch otherwise.
    if text.len() == DATE_LEN {
        out.copy_from_slice(text.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_imf_fixdate() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(&format(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format(UNIX_EPOCH), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn now_is_cached_and_well_formed() {
        let a = now();
        let b = now();
        assert!(a.ends_with(b" GMT"));
        assert_eq!(a[3], b',');
        // Both calls are within the same second or one apart; both parse back.
        for d in [a, b] {
            let s = std::str::from_utf8(&d).unwrap();
            assert!(httpdate::parse_http_date(s).is_ok(), "{s}");
        }
    }
}
