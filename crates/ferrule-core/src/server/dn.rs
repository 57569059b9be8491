//! A certificate's subject as an RFC 4514 string (`SSL_CLIENT_S_DN` for mutual TLS), read from
//! the DER certificate (RFC 5280 §4.1: `Certificate ::= SEQUENCE { tbsCertificate, ... }`,
//! `TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
//! validity, subject, ... }`, `Name ::= SEQUENCE OF RelativeDistinguishedName`, `RDN ::= SET OF
//! AttributeTypeAndValue`).
//!
//! RFC 4514 rules enforced here:
//! - §2.1: "the output consists of the string encodings of each RelativeDistinguishedName in the
//!   RDNSequence (according to Section 2.2), starting with the last element of the sequence and
//!   moving backwards toward the first", separated by `,`; §2.2: the attributes of a
//!   multi-valued RDN are joined with `+`.
//! - §2.3: a type with a short name in the RFC's table (CN, L, ST, O, OU, C, STREET, DC, UID)
//!   uses it; any other type is its dotted-decimal OID.
//! - §2.4: a string value is written as UTF-8 with `"`, `+`, `,`, `;`, `<`, `>`, `\` escaped by
//!   a backslash, a leading space or `#` and a trailing space escaped, and NUL as `\00`; a value
//!   of a dotted-OID type, or one that is not a string, is `#` + the hex of its DER encoding.
//!
//! The certificate was verified by rustls before we read it; a DER structure we cannot walk
//! still gives `None`, never a panic.

/// The subject of DER certificate `cert` (see the module docs).
pub(crate) fn subject_rfc4514(cert: &[u8]) -> Option<String> {
    let (_, cert_body, _) = tlv(cert)?;
    let (_, mut tbs, _) = tlv(cert_body)?;
    // [0] EXPLICIT version, when present.
    if tbs.first() == Some(&0xa0) {
        tbs = tlv(tbs)?.2;
    }
    // serialNumber, signature, issuer, validity: skipped.
    for _ in 0..4 {
        tbs = tlv(tbs)?.2;
    }
    let (tag, mut name, _) = tlv(tbs)?;
    if tag != 0x30 {
        return None;
    }
    let mut rdns = Vec::new();
    while !name.is_empty() {
        let (tag, mut set, rest) = tlv(name)?;
        if tag != 0x31 {
            return None;
        }
        name = rest;
        let mut parts = Vec::new();
        while !set.is_empty() {
            let (tag, atv, rest) = tlv(set)?;
            set = rest;
            if tag != 0x30 {
                return None;
            }
            let (oid_tag, oid, value_der) = tlv(atv)?;
            if oid_tag != 0x06 {
                return None;
            }
            parts.push(attribute(oid, value_der)?);
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// One `type=value`.
fn attribute(oid: &[u8], value_der: &[u8]) -> Option<String> {
    let short = match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x07] => Some("L"),
        [0x55, 0x04, 0x08] => Some("ST"),
        [0x55, 0x04, 0x0a] => Some("O"),
        [0x55, 0x04, 0x0b] => Some("OU"),
        [0x55, 0x04, 0x06] => Some("C"),
        [0x55, 0x04, 0x09] => Some("STREET"),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => Some("DC"),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => Some("UID"),
        _ => None,
    };
    let mut out = match short {
        Some(s) => s.to_owned(),
        None => dotted(oid)?,
    };
    out.push('=');
    let (tag, value, _) = tlv(value_der)?;
    let text = match (short, tag) {
        (None, _) => None,
        // UTF8String, PrintableString, IA5String, NumericString, VisibleString.
        (_, 0x0c | 0x13 | 0x16 | 0x12 | 0x1a) => std::str::from_utf8(value).ok().map(str::to_owned),
        // TeletexString: read as latin-1, as most software does.
        (_, 0x14) => Some(value.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UCS-2 big-endian.
        (_, 0x1e) => char::decode_utf16(
            value
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])),
        )
        .collect::<Result<String, _>>()
        .ok(),
        _ => None,
    };
    match text {
        Some(text) => escape(&text, &mut out),
        None => {
            out.push('#');
            let used = value_der.len() - tlv(value_der)?.2.len();
            for b in &value_der[..used] {
                out.push_str(&format!("{b:02x}"));
            }
        }
    }
    Some(out)
}

/// RFC 4514 §2.4 escaping.
fn escape(text: &str, out: &mut String) {
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '#' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
}

/// An OID's dotted-decimal form (X.690 §8.19).
fn dotted(oid: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = value.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    if arcs.is_empty() {
        return None;
    }
    Some(
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// One DER tag-length-value: `(tag, contents, rest)`. Definite lengths only (DER).
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of `tag` around `body`.
    fn t(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if body.len() < 128 {
            v.push(body.len() as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    }

    fn atv(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        t(0x30, &[t(0x06, oid), t(tag, value)].concat())
    }

    fn cert_with_subject(rdns: &[Vec<u8>]) -> Vec<u8> {
        let name = t(0x30, &rdns.concat());
        let tbs = [
            t(0xa0, &t(0x02, &[2])),
            t(0x02, &[1]),
            t(0x30, &[]),
            t(0x30, &[]),
            t(0x30, &[]),
            name,
        ]
        .concat();
        t(0x30, &[t(0x30, &tbs), t(0x30, &[]), t(0x03, &[0])].concat())
    }

    #[test]
    fn reverses_rdns_uses_short_names_and_escapes() {
        let cert = cert_with_subject(&[
            t(0x31, &atv(&[0x55, 4, 6], 0x13, b"FR")),
            t(0x31, &atv(&[0x55, 4, 10], 0x0c, b"Acme, Inc.")),
            t(
                0x31,
                &[
                    atv(&[0x55, 4, 3], 0x0c, b" client+1"),
                    atv(&[0x55, 4, 11], 0x0c, b"ops"),
                ]
                .concat(),
            ),
        ]);
        assert_eq!(
            subject_rfc4514(&cert).unwrap(),
            r"CN=\ client\+1+OU=ops,O=Acme\, Inc.,C=FR"
        );
    }

    #[test]
    fn unknown_types_are_dotted_with_hex_values() {
        // 1.2.840.113549.1.9.1 (emailAddress), IA5String "a@b".
        let oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];
        let cert = cert_with_subject(&[t(0x31, &atv(&oid, 0x16, b"a@b"))]);
        assert_eq!(
            subject_rfc4514(&cert).unwrap(),
            "1.2.840.113549.1.9.1=#1603614062"
        );
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(subject_rfc4514(b""), None);
        assert_eq!(subject_rfc4514(&[0x30, 0x05, 0x30]), None);
        assert_eq!(subject_rfc4514(&t(0x30, &t(0x30, &[]))), None);
    }
}
