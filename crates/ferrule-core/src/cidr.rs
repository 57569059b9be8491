//! Address allow-lists for the options that decide whom to believe: `--forwarded-allow-ips`,
//! `--proxy-allow-from` and `--uwsgi-allow-from` (ISSUE5). One syntax for all three:
//!
//! - a comma-separated list; spaces around an item are ignored, an empty item is an error;
//! - an item is an address (`127.0.0.1`, `::1`), a network in CIDR notation (`10.0.0.0/8`,
//!   `fd00::/8`, RFC 4632 §3.1 "the prefix length ... a decimal value between 0 and 32"; 0-128
//!   for IPv6, RFC 4291 §2.3), or `*` (every address);
//! - strict: a prefix is plain decimal digits without a sign or a leading zero, and a network
//!   with host bits set (`10.0.0.1/8`) is refused rather than silently widened, so a typo cannot
//!   trust more than the operator wrote;
//! - an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, RFC 4291 §2.5.5.2) is the IPv4 address it
//!   carries, both in the list and in [`AddrAllowList::contains`]: a dual-stack listener reports
//!   IPv4 clients in that form, and `127.0.0.1` must still match them.
//!
//! A Unix-socket peer has no IP address: whether it is trusted is the caller's decision (the
//! socket's file permissions already decide who may connect).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// One network: an address with its prefix length; host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length (32 or 128 for a single address).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside this network (an IPv4-mapped IPv6 `ip` counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask32(self.prefix);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask128(self.prefix);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries; anything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Why an allow-list did not parse. The text names the offending item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// The list or one of its comma-separated items is empty.
    EmptyItem,
    /// Not an IPv4 or IPv6 address.
    BadAddress(String),
    /// The prefix is not a decimal number within the address family's width.
    BadPrefix(String),
    /// The network has bits set after the prefix (`10.0.0.1/8`): write `10.0.0.0/8`.
    HostBitsSet(String),
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::EmptyItem => f.write_str("empty item in an address list"),
            CidrError::BadAddress(item) => write!(f, "{item:?} is not an IP address"),
            CidrError::BadPrefix(item) => write!(f, "{item:?} has an invalid prefix length"),
            CidrError::HostBitsSet(item) => {
                write!(f, "{item:?} has host bits set after the prefix")
            }
        }
    }
}

impl std::error::Error for CidrError {}

impl FromStr for IpNet {
    type Err = CidrError;

    fn from_str(item: &str) -> Result<IpNet, CidrError> {
        let (addr_text, prefix_text) = match item.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (item, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| CidrError::BadAddress(item.to_owned()))?;
        let width: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => width,
            Some(p) => {
                parse_prefix(p, width).ok_or_else(|| CidrError::BadPrefix(item.to_owned()))?
            }
        };
        let net = match addr {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                if bits & !mask32(prefix) != 0 {
                    return Err(CidrError::HostBitsSet(item.to_owned()));
                }
                IpNet { addr, prefix }
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                if bits & !mask128(prefix) != 0 {
                    return Err(CidrError::HostBitsSet(item.to_owned()));
                }
                match v6.to_ipv4_mapped() {
                    // `::ffff:a.b.c.d/p` with p >= 96 is an IPv4 network.
                    Some(v4) if prefix >= 96 => IpNet {
                        addr: IpAddr::V4(v4),
                        prefix: prefix - 96,
                    },
                    _ => IpNet { addr, prefix },
                }
            }
        };
        Ok(net)
    }
}

/// `0` or a decimal number without a leading zero, at most `width`.
fn parse_prefix(text: &str, width: u8) -> Option<u8> {
    let bytes = text.as_bytes();
    if bytes.is_empty()
        || bytes.len() > 3
        || !bytes.iter().all(u8::is_ascii_digit)
        || (bytes.len() > 1 && bytes[0] == b'0')
    {
        return None;
    }
    let value: u8 = text.parse().ok()?;
    (value <= width).then_some(value)
}

/// A set of addresses and networks, or every address (`*`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddrAllowList {
    any: bool,
    nets: Vec<IpNet>,
}

impl AddrAllowList {
    /// Allows nobody.
    pub fn none() -> AddrAllowList {
        AddrAllowList::default()
    }

    /// Allows every address (`*`).
    pub fn any() -> AddrAllowList {
        AddrAllowList {
            any: true,
            nets: Vec::new(),
        }
    }

    /// Parses a comma-separated list (see the module docs).
    pub fn parse(list: &str) -> Result<AddrAllowList, CidrError> {
        let mut out = AddrAllowList::none();
        for item in list.split(',') {
            out.push_item(item)?;
        }
        Ok(out)
    }

    fn push_item(&mut self, item: &str) -> Result<(), CidrError> {
        let item = item.trim_matches(' ');
        match item {
            "" => Err(CidrError::EmptyItem),
            "*" => {
                self.any = true;
                Ok(())
            }
            _ => {
                let net: IpNet = item.parse()?;
                if !self.nets.contains(&net) {
                    self.nets.push(net);
                }
                Ok(())
            }
        }
    }

    /// Whether `ip` is allowed (an IPv4-mapped IPv6 address is matched as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.any || self.nets.iter().any(|net| net.contains(ip))
    }

    /// `*` was given: every address is allowed.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Nobody is allowed.
    pub fn is_empty(&self) -> bool {
        !self.any && self.nets.is_empty()
    }

    /// The networks listed (without `*`).
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// The loopback addresses, `127.0.0.1,::1`: the default of `--forwarded-allow-ips` and
    /// `--proxy-allow-from` (a proxy on the same host).
    pub fn loopback() -> AddrAllowList {
        AddrAllowList {
            any: false,
            nets: vec![
                IpNet {
                    addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                    prefix: 32,
                },
                IpNet {
                    addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                    prefix: 128,
                },
            ],
        }
    }
}

impl FromStr for AddrAllowList {
    type Err = CidrError;

    fn from_str(list: &str) -> Result<AddrAllowList, CidrError> {
        AddrAllowList::parse(list)
    }
}

impl fmt::Display for AddrAllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        if self.any {
            f.write_str("*")?;
            first = false;
        }
        for net in &self.nets {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            let width = if net.addr.is_ipv4() { 32 } else { 128 };
            if net.prefix == width {
                write!(f, "{}", net.addr)?;
            } else {
                write!(f, "{net}")?;
            }
        }
        Ok(())
    }
}

/// In the JSON config an allow-list is either one comma-separated string (`"10.0.0.0/8,::1"`)
/// or a list of items (`["10.0.0.0/8", "::1"]`); each item as in [`AddrAllowList::parse`].
impl<'de> Deserialize<'de> for AddrAllowList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        match Raw::deserialize(deserializer)? {
            Raw::One(list) => AddrAllowList::parse(&list).map_err(de::Error::custom),
            Raw::Many(items) => {
                let mut out = AddrAllowList::none();
                for item in &items {
                    out.push_item(item).map_err(de::Error::custom)?;
                }
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn membership_table() {
        // (list, address, allowed)
        let rows: &[(&str, &str, bool)] = &[
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("127.0.0.1", "::ffff:127.0.0.1", true),
            ("127.0.0.1,::1", "::1", true),
            ("127.0.0.1,::1", "::2", false),
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.0.0.0/8", "::ffff:10.9.9.9", true),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "203.0.113.9", false),
            ("fd00::/8", "fd12:3456::1", true),
            ("fd00::/8", "fe80::1", false),
            ("192.168.1.128/25", "192.168.1.200", true),
            ("192.168.1.128/25", "192.168.1.100", false),
            ("::ffff:10.0.0.0/104", "10.1.2.3", true),
            ("::ffff:10.0.0.0/104", "::ffff:10.1.2.3", true),
            ("::ffff:10.0.0.0/104", "11.1.2.3", false),
            ("*", "203.0.113.9", true),
            ("*", "::1", true),
            (" 10.0.0.1 , 10.0.0.2 ", "10.0.0.2", true),
        ];
        for (list, addr, allowed) in rows {
            let parsed = AddrAllowList::parse(list).unwrap();
            assert_eq!(parsed.contains(ip(addr)), *allowed, "{list} ∋ {addr}");
        }
    }

    #[test]
    fn invalid_lists() {
        let rows: &[(&str, CidrError)] = &[
            ("", CidrError::EmptyItem),
            ("10.0.0.1,", CidrError::EmptyItem),
            (",10.0.0.1", CidrError::EmptyItem),
            ("10.0.0.1,,::1", CidrError::EmptyItem),
            ("localhost", CidrError::BadAddress("localhost".into())),
            ("10.0.0", CidrError::BadAddress("10.0.0".into())),
            ("010.0.0.1", CidrError::BadAddress("010.0.0.1".into())),
            ("[::1]", CidrError::BadAddress("[::1]".into())),
            ("10.0.0.0/", CidrError::BadPrefix("10.0.0.0/".into())),
            ("10.0.0.0/33", CidrError::BadPrefix("10.0.0.0/33".into())),
            ("10.0.0.0/08", CidrError::BadPrefix("10.0.0.0/08".into())),
            ("10.0.0.0/+8", CidrError::BadPrefix("10.0.0.0/+8".into())),
            ("::/129", CidrError::BadPrefix("::/129".into())),
            ("10.0.0.0/8/8", CidrError::BadPrefix("10.0.0.0/8/8".into())),
            ("10.0.0.1/8", CidrError::HostBitsSet("10.0.0.1/8".into())),
            ("fd00::1/8", CidrError::HostBitsSet("fd00::1/8".into())),
        ];
        for (list, err) in rows {
            assert_eq!(AddrAllowList::parse(list).as_ref(), Err(err), "{list:?}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn helpers_and_display() {
        assert!(AddrAllowList::none().is_empty());
        assert!(!AddrAllowList::none().contains(ip("127.0.0.1")));
        assert!(AddrAllowList::any().allows_any());
        assert_eq!(AddrAllowList::loopback(), "127.0.0.1,::1".parse().unwrap());
        let list = AddrAllowList::parse("*,10.0.0.0/8,::1,10.0.0.0/8").unwrap();
        assert_eq!(list.nets().len(), 2);
        assert_eq!(list.to_string(), "*,10.0.0.0/8,::1");
        assert_eq!(
            AddrAllowList::parse("::ffff:1.2.3.4").unwrap().to_string(),
            "1.2.3.4"
        );
    }

    #[test]
    fn prefix_zero_and_full() {
        let all4: IpNet = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all4.prefix(), 0);
        assert!(all4.contains(ip("255.255.255.255")));
        let one6: IpNet = "2001:db8::1/128".parse().unwrap();
        assert!(one6.contains(ip("2001:db8::1")));
        assert!(!one6.contains(ip("2001:db8::2")));
        assert_eq!(canonical(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
    }

    #[test]
    fn deserializes_from_string_or_list() {
        let a: AddrAllowList = serde_json::from_str(r#""10.0.0.0/8, ::1""#).unwrap();
        let b: AddrAllowList = serde_json::from_str(r#"["10.0.0.0/8", "::1"]"#).unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<AddrAllowList>(r#""10.0.0.1/8""#).is_err());
        assert!(serde_json::from_str::<AddrAllowList>(r#"[""]"#).is_err());
        assert!(serde_json::from_str::<AddrAllowList>("3").is_err());
    }
}
