//! Subject, issuer and end of validity of one certificate, for `check
//! --network` (the `net.cert` line). The DER is decoded by the `der` crate
//! through the few structures below (derived, or read with der's reader);
//! nothing here parses DER by hand. Names print as RFC 4514 strings, as
//! `openssl x509 -nameopt RFC2253` does: the last RDN first, `,` between
//! RDNs, `+` inside one, known attribute types by openssl's short name, any
//! other as `dotted.oid=#hex-of-its-DER`; UTF-8 text is printed as is.
//! Checked against `openssl x509 -nameopt RFC2253` on Debian's 144-certificate
//! bundle: the same names and dates, except that openssl escapes non-ASCII.
//!
//! This replaced `x509-cert`, whose full certificate model and OID name
//! database cost ~200 KB of binary to print these three fields
//! (docs/BENCHMARKS.md, "Levers").

use der::asn1::{AnyRef, GeneralizedTime, ObjectIdentifier, UtcTime};
use der::{Choice, Decode, Encode, Reader, Sequence, SliceReader, Tag, TagNumber, Tagged};
use std::fmt::Write;

/// One certificate's subject, issuer and end of validity.
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Seconds since the Unix epoch.
    pub not_after: u64,
}

/// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
#[derive(Sequence)]
struct Certificate<'a> {
    tbs: AnyRef<'a>,
    algorithm: AnyRef<'a>,
    signature: AnyRef<'a>,
}

/// AttributeTypeAndValue ::= SEQUENCE { type OBJECT IDENTIFIER, value ANY }
#[derive(Sequence)]
struct Atv<'a> {
    oid: ObjectIdentifier,
    value: AnyRef<'a>,
}

/// Validity ::= SEQUENCE { notBefore Time, notAfter Time }
#[derive(Sequence)]
struct Validity {
    _not_before: Time,
    not_after: Time,
}

/// Time ::= CHOICE { utcTime UTCTime, generalTime GeneralizedTime }
#[derive(Choice)]
enum Time {
    #[asn1(type = "UTCTime")]
    Utc(UtcTime),
    #[asn1(type = "GeneralizedTime")]
    General(GeneralizedTime),
}

/// Decodes one DER certificate; `None` when der rejects it.
pub fn cert_info(der: &[u8]) -> Option<CertInfo> {
    let cert = Certificate::from_der(der).ok()?;
    if cert.tbs.tag() != Tag::Sequence {
        return None;
    }
    // TBSCertificate ::= SEQUENCE { [0] EXPLICIT version OPTIONAL, serial,
    // signature, issuer, validity, subject, ... }: read up to the subject.
    let mut r = SliceReader::new(cert.tbs.value()).ok()?;
    let _version =
        der::asn1::ContextSpecific::<AnyRef>::decode_explicit(&mut r, TagNumber::N0).ok()?;
    let _serial: AnyRef = r.decode().ok()?;
    let _signature: AnyRef = r.decode().ok()?;
    let issuer: AnyRef = r.decode().ok()?;
    let validity: Validity = r.decode().ok()?;
    let subject: AnyRef = r.decode().ok()?;
    let not_after = match validity.not_after {
        Time::Utc(t) => t.to_unix_duration(),
        Time::General(t) => t.to_unix_duration(),
    };
    Some(CertInfo {
        subject: name(subject)?,
        issuer: name(issuer)?,
        not_after: not_after.as_secs(),
    })
}

/// Name ::= SEQUENCE OF RelativeDistinguishedName (a SET OF
/// AttributeTypeAndValue), printed as RFC 4514 does (last RDN first).
fn name(n: AnyRef) -> Option<String> {
    if n.tag() != Tag::Sequence {
        return None;
    }
    let mut rdns = Vec::new();
    let mut r = SliceReader::new(n.value()).ok()?;
    while !r.is_finished() {
        let set: AnyRef = r.decode().ok()?;
        if set.tag() != Tag::Set {
            return None;
        }
        let mut s = SliceReader::new(set.value()).ok()?;
        let mut rdn = String::new();
        while !s.is_finished() {
            let atv: Atv = s.decode().ok()?;
            if !rdn.is_empty() {
                rdn.push('+');
            }
            atv_string(&atv, &mut rdn)?;
        }
        rdns.push(rdn);
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// Short names of the attribute types that appear in certificate names
/// (RFC 4514 section 3, plus the ones public CAs use).
fn short_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    const NAMES: &[(&str, &str)] = &[
        ("2.5.4.3", "CN"),
        ("2.5.4.4", "SN"),
        ("2.5.4.5", "serialNumber"),
        ("2.5.4.6", "C"),
        ("2.5.4.7", "L"),
        ("2.5.4.8", "ST"),
        ("2.5.4.9", "STREET"),
        ("2.5.4.10", "O"),
        ("2.5.4.11", "OU"),
        ("2.5.4.12", "title"),
        ("2.5.4.42", "GN"),
        ("2.5.4.97", "organizationIdentifier"),
        ("0.9.2342.19200300.100.1.1", "UID"),
        ("0.9.2342.19200300.100.1.25", "DC"),
        ("1.2.840.113549.1.9.1", "emailAddress"),
    ];
    NAMES
        .iter()
        .find(|(o, _)| ObjectIdentifier::new(o).is_ok_and(|known| known == *oid))
        .map(|(_, n)| *n)
}

fn atv_string(atv: &Atv, out: &mut String) -> Option<()> {
    let text = match atv.value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            std::str::from_utf8(atv.value.value()).ok()
        }
        _ => None,
    };
    match (short_name(&atv.oid), text) {
        (Some(key), Some(val)) => {
            out.push_str(key);
            out.push('=');
            let last = val.chars().count().saturating_sub(1);
            for (i, c) in val.chars().enumerate() {
                match c {
                    '#' if i == 0 => out.push_str("\\#"),
                    ' ' if i == 0 || i == last => out.push_str("\\ "),
                    '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                        out.push('\\');
                        out.push(c);
                    }
                    '\x00'..='\x1f' | '\x7f' => {
                        let _ = write!(out, "\\{:02x}", c as u8);
                    }
                    _ => out.push(c),
                }
            }
        }
        _ => {
            // RFC 4514 2.4: the dotted type and '#' with the value's DER in hex.
            let _ = write!(out, "{}=#", atv.oid);
            for b in atv.value.to_der().ok()? {
                let _ = write!(out, "{b:02x}");
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The private test CA of tests/fixtures/config/good/proxy-ca-tags.yaml
    /// (`openssl x509 -noout -subject -issuer -enddate -nameopt RFC2253`:
    /// O=outpost fixtures,CN=Example Palette Test CA; Nov 22 11:08:47 2036 GMT).
    const CA_B64: &str = "MIIBzzCCAXWgAwIBAgIUaaEZKTo5SYh62etWGDMkQNo575kwCgYIKoZIzj0EAwIw\
PTEgMB4GA1UEAwwXRXhhbXBsZSBQYWxldHRlIFRlc3QgQ0ExGTAXBgNVBAoMEG91\
dHBvc3QgZml4dHVyZXMwHhcNMjYxMTI1MTEwODQ3WhcNMzYxMTIyMTEwODQ3WjA9\
MSAwHgYDVQQDDBdFeGFtcGxlIFBhbGV0dGUgVGVzdCBDQTEZMBcGA1UECgwQb3V0\
cG9zdCBmaXh0dXJlczBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEeauWa+gwx/\
LO0CVg+z+C56va3tIrRqTafcoA/mnnjLTu6KOFBY/nd0ubrOfO76Z93Lck5t8IAi\
XE4wMpuVrT6jUzBRMB0GA1UdDgQWBBT1WbtY4peblX9u7i6iIAY8RAk3FjAfBgNV\
HSMEGDAWgBT1WbtY4peblX9u7i6iIAY8RAk3FjAPBgNVHRMBAf8EBTADAQH/MAoG\
CCqGSM49BAMCA0gAMEUCIQCHf4GrJNIgZUX83CqU89I0qLoVxGVVIQBAw+00mjn5\
owIgNU3RcQeWiv2IoEjRWorZvJZNjg680cqAcGnDKmEPjrI=";

    fn ca_der() -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(CA_B64)
            .expect("fixture")
    }

    #[test]
    fn fields_of_the_fixture_ca() {
        let ci = cert_info(&ca_der()).expect("parses");
        assert_eq!(ci.subject, "O=outpost fixtures,CN=Example Palette Test CA");
        assert_eq!(ci.issuer, ci.subject);
        // date -u -d '2036-11-22 11:08:47' +%s
        assert_eq!(ci.not_after, 2_110_964_927);
    }

    #[test]
    fn truncated_or_garbage_input_is_none() {
        let der = ca_der();
        for cut in [0, 1, 10, der.len() / 2, der.len() - 1] {
            assert!(cert_info(&der[..cut]).is_none(), "cut at {cut}");
        }
        assert!(cert_info(b"not a certificate").is_none());
    }

    #[test]
    fn special_characters_and_unknown_types_are_escaped() {
        let cn = Atv {
            oid: ObjectIdentifier::new_unwrap("2.5.4.3"),
            value: AnyRef::new(Tag::Utf8String, b" a,b+c#").expect("any"),
        };
        let mut s = String::new();
        atv_string(&cn, &mut s).expect("prints");
        assert_eq!(s, "CN=\\ a\\,b\\+c#");
        let other = Atv {
            oid: ObjectIdentifier::new_unwrap("1.2.3.4"),
            value: AnyRef::new(Tag::Utf8String, b"x").expect("any"),
        };
        let mut s = String::new();
        atv_string(&other, &mut s).expect("prints");
        assert_eq!(s, "1.2.3.4=#0c0178");
    }
}
