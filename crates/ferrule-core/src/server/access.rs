//! The access log line, gunicorn's default format:
//! `%(h)s - - [%(t)s] "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"`: peer address, time
//! (`21/Nov/2026:06:33:00 +0000`), request line, status, body bytes sent (`-` for none),
//! Referer, User-Agent. Bytes from the client are escaped (`"`, `\`, control and non-ASCII
//! bytes as `\xHH`) so a request cannot forge or break a log line.

use std::fmt::Write;
use std::net::IpAddr;

use crate::http1::RequestHead;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One access log line (without the newline).
pub(crate) fn line(
    peer: IpAddr,
    head: &RequestHead,
    status: u16,
    body_bytes: u64,
    unix_secs: u64,
) -> String {
    let mut out = String::with_capacity(160);
    let _ = write!(out, "{peer} - - [");
    push_time(&mut out, unix_secs);
    out.push_str("] \"");
    push_escaped(&mut out, head.method());
    out.push(' ');
    push_escaped(&mut out, head.target());
    out.push(' ');
    out.push_str(head.version().as_str());
    let _ = write!(out, "\" {status} ");
    if body_bytes == 0 {
        out.push('-');
    } else {
        let _ = write!(out, "{body_bytes}");
    }
    out.push_str(" \"");
    push_escaped(&mut out, header(head, b"referer"));
    out.push_str("\" \"");
    push_escaped(&mut out, header(head, b"user-agent"));
    out.push('"');
    out
}

fn header<'a>(head: &'a RequestHead, name: &[u8]) -> &'a [u8] {
    head.headers()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map_or(b"-", |(_, v)| v)
}

fn push_time(out: &mut String, unix_secs: u64) {
    let (days, secs) = (unix_secs / 86_400, unix_secs % 86_400);
    let (y, m, d) = crate::log::civil_from_days(days as i64);
    let month = MONTHS[(m as usize).saturating_sub(1) % 12];
    let _ = write!(
        out,
        "{d:02}/{month}/{y:04}:{:02}:{:02}:{:02} +0000",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
}

fn push_escaped(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        let mut s = String::new();
        // 2026-11-21 06:33:00 UTC
        push_time(&mut s, 1_795_242_780);
        assert_eq!(s, "21/Nov/2026:06:33:00 +0000");
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        push_escaped(&mut s, b"a\"b\\c\n\x7f\xe9");
        assert_eq!(s, "a\\\"b\\\\c\\x0a\\x7f\\xe9");
    }
}
