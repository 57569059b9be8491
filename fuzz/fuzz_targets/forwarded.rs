//! `forwarded::forwarded_view` on header sections made from arbitrary bytes (lines of
//! `NAME-INDEX value`, the names drawn from the forwarding headers), from a trusted or an
//! untrusted peer. Checks, besides never panicking:
//! - an untrusted peer gets the default view (nothing believed, headers to strip);
//! - splitting a header into several field lines gives the same answer as one comma-joined
//!   line (RFC 9110 §5.3), for every list header;
//! - spoofing: when the client found is an untrusted address, adding an entry to the left of
//!   `X-Forwarded-For` (what a client can do through its proxy) changes nothing;
//! - an accepted `SCRIPT_NAME` starts with `/` (or is empty), has no `.`/`..` segment and no
//!   control character; a host holds no space, comma or control character; ports are nonzero.
#![no_main]

use std::net::IpAddr;

use ferrule_core::cidr::AddrAllowList;
use ferrule_core::forwarded::{forwarded_view, ForwardedError, ForwardedView};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = [
    "Forwarded",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Forwarded-Ssl",
    "Host",
];

fn run(
    peer: IpAddr,
    allow: &AddrAllowList,
    headers: &[(String, Vec<u8>)],
) -> Result<ForwardedView, ForwardedError> {
    forwarded_view(
        peer,
        allow,
        headers.iter().map(|(n, v)| (n.as_bytes(), &v[..])),
    )
}

fuzz_target!(|data: &[u8]| {
    let (seed, payload) = ferrule_fuzz::seed_and_payload(data);
    let allow = AddrAllowList::parse("127.0.0.1,::1,10.0.0.0/8").expect("valid list");
    let peer: IpAddr = match seed % 3 {
        0 => "127.0.0.1".parse().expect("ip"),
        1 => "::ffff:10.1.2.3".parse().expect("ip"),
        _ => "203.0.113.9".parse().expect("ip"),
    };
    let headers: Vec<(String, Vec<u8>)> = payload
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let (&i, value) = line.split_first()?;
            Some((
                NAMES[usize::from(i) % NAMES.len()].to_owned(),
                value.to_vec(),
            ))
        })
        .collect();
    let view = run(peer, &allow, &headers);
    if !allow.contains(peer) {
        assert_eq!(view, Ok(ForwardedView::default()));
        return;
    }

    // One comma-joined line per name gives the same answer as the separate lines.
    let mut joined: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, value) in &headers {
        match joined.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => {
                v.push(b',');
                v.extend_from_slice(value);
            }
            None => joined.push((name.clone(), value.clone())),
        }
    }
    assert_eq!(run(peer, &allow, &joined), view, "{headers:?}");

    let Ok(view) = view else { return };
    assert!(view.trusted);
    if let Some(s) = &view.script_name {
        assert!(s.is_empty() || s.starts_with(b"/"));
        assert!(!s.ends_with(b"/"));
        assert!(!s
            .split(|&b| b == b'/')
            .any(|seg| seg == b"." || seg == b".."));
        assert!(!s.iter().any(|&b| b < 0x20 || b == 0x7f));
    }
    if let Some(h) = &view.host {
        assert!(!h.is_empty());
        assert!(!h.iter().any(|&b| b <= 0x20 || b == b',' || b == 0x7f));
        assert!(view.host_name().is_some_and(|n| !n.is_empty()));
    }
    assert_ne!(view.port, Some(0));

    // Spoofing: an extra entry left of an untrusted client changes nothing.
    if let Some(client) = view.client {
        let has_forwarded = headers.iter().any(|(n, _)| n == "Forwarded");
        if !allow.contains(client.addr) && !has_forwarded {
            let mut spoofed = headers.clone();
            if let Some((_, v)) = spoofed.iter_mut().find(|(n, _)| n == "X-Forwarded-For") {
                let mut nv = b"6.6.6.6, ".to_vec();
                nv.extend_from_slice(v);
                *v = nv;
                assert_eq!(run(peer, &allow, &spoofed), Ok(view));
            }
        }
    }
});
