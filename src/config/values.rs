//! Typed values of the configuration (`Secret`, `Mode`, `Scheduler`,
//! `TagsFromFile`, `UidPath`, `CaCert`) and the checks of text values the
//! key table names (endpoint, URLs, host names, noProxy entries, CA
//! certificates, paths). Pure: no I/O. Never echoes a secret value.

use super::keys;
use super::Config;
use std::fmt;

/// A secret string: `Debug` and `Display` show only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// `****(len N)`.
    pub fn redacted(&self) -> String {
        format!("****(len {})", self.0.chars().count())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Central,
    Local,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Central => "central",
            Mode::Local => "local",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scheduler {
    #[default]
    Auto,
    Systemd,
    Cron,
}

impl Scheduler {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheduler::Auto => "auto",
            Scheduler::Systemd => "systemd",
            Scheduler::Cron => "cron",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagsFromFile {
    pub file_name: String,
    pub delimiter: String,
    pub separator: String,
}

impl TagsFromFile {
    /// The tags in a file's text, as the platform splits them: pairs by
    /// `delimiter`, each pair at the first `separator`; white space around
    /// keys and values trimmed; pairs without a separator or key skipped.
    pub fn parse(&self, text: &str) -> Vec<(String, String)> {
        text.split(self.delimiter.as_str())
            .filter_map(|pair| {
                let (k, v) = pair.split_once(self.separator.as_str())?;
                let k = k.trim();
                (!k.is_empty()).then(|| (k.to_string(), v.trim().to_string()))
            })
            .collect()
    }
}

/// One `deviceUIDPaths` entry; the regex has been checked to compile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UidPath {
    pub name: String,
    pub regex: Option<String>,
}

/// One CA certificate, parsed far enough to be a trust anchor.
#[derive(Clone, PartialEq, Eq)]
pub struct CaCert {
    /// DER bytes of the certificate.
    pub der: Vec<u8>,
}

impl CaCert {
    /// Every certificate of one `caCerts` entry: PEM text, or base64 of PEM
    /// or DER (the one parser of CA certificates; see [`parse_ca`]).
    pub fn parse(item: &str) -> Result<Vec<CaCert>, String> {
        parse_ca(item)
    }

    /// Every certificate of a file's bytes (`probe --cacert FILE`): PEM
    /// text (one or more certificates) or one DER certificate.
    pub fn from_bytes(data: &[u8]) -> Result<Vec<CaCert>, String> {
        match std::str::from_utf8(data) {
            Ok(text) if text.contains("-----BEGIN") => parse_ca(text),
            _ => {
                let cd = rustls_pki_types::CertificateDer::from(data);
                webpki::anchor_from_trusted_cert(&cd)
                    .map_err(|_| "not PEM text and not an X.509 certificate in DER".to_string())?;
                Ok(vec![CaCert { der: data.to_vec() }])
            }
        }
    }
}

impl fmt::Debug for CaCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaCert({} bytes DER)", self.der.len())
    }
}

/// What central management needs and the config lacks.
pub(super) fn central_needs(cfg: &Config, file: &str) -> Vec<String> {
    let mut out = Vec::new();
    if cfg.management_mode.value != Mode::Central {
        return out;
    }
    let why = format!(
        "managementMode is central ({})",
        cfg.management_mode.source.text()
    );
    if cfg.endpoint.value.is_none() {
        out.push(format!(
            "{file}: stylus.site.paletteEndpoint: not set, but {why}; set it or OUTPOST_PALETTE_ENDPOINT, or use managementMode: local"
        ));
    }
    if cfg.token.value.is_none() {
        out.push(format!(
            "{file}: stylus.site.edgeHostToken: not set, but {why}; set it or {}, or use managementMode: local",
            keys::TOKEN_ENV
        ));
    }
    out
}

/// A DNS host name: labels of letters, digits, `-` and `_`, 1..=63 chars.
fn is_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

pub(super) fn check_hostname(s: &str) -> Result<(), String> {
    if is_hostname(s) {
        Ok(())
    } else {
        Err(format!("{s:?} is not a valid host name"))
    }
}

/// Split `host[:port]` (with `[v6]:port`); checks host and port.
fn check_authority(auth: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = auth.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("unclosed [ in host")?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{h:?} is not an IPv6 address"))?;
        (None, after.strip_prefix(':'))
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(auth), None),
        }
    };
    if let Some(h) = host {
        if h.parse::<std::net::Ipv4Addr>().is_err() && !is_hostname(h) {
            return Err(format!("{h:?} is not a valid host name"));
        }
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("{p:?} is not a valid port")),
        }
    }
    Ok(())
}

/// Scheme (lowercase), authority (without userinfo), rest of a URL.
fn split_url(s: &str) -> Option<(String, &str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    let (_, rest) = split_userinfo(rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(end);
    Some((scheme.to_ascii_lowercase(), auth, tail))
}

/// (userinfo, rest) split at the LAST `@`: a password may hold `/`, `?`,
/// `#` or `@` unencoded, and none of it may reach a message.
fn split_userinfo(rest: &str) -> (Option<&str>, &str) {
    match rest.rfind('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    }
}

/// The endpoint: a host name (optional `:port`) or an `https://` URL.
pub fn check_endpoint(s: &str) -> Result<(), String> {
    let shown = redact_url(s);
    if s.contains("://") {
        return check_https_url(s).map_err(|e| format!("endpoint {e}"));
    }
    if s.contains('@') {
        return Err(format!("endpoint {shown:?} must not hold user:password@"));
    }
    if s.contains(['/', '?', '#', ' ']) {
        return Err(format!(
            "{shown:?} is neither a host name nor an https:// URL"
        ));
    }
    check_authority(s).map_err(|e| format!("endpoint {e}"))
}

/// An `https://` URL without credentials; messages mask any password.
pub(super) fn check_https_url(s: &str) -> Result<(), String> {
    let shown = redact_url(s);
    let Some((scheme, auth, _)) = split_url(s) else {
        return Err(format!("{shown:?} is not a URL"));
    };
    if scheme != "https" {
        return Err(format!("{shown:?} must use https://, not {scheme}://"));
    }
    let userinfo = s
        .split_once("://")
        .is_some_and(|(_, r)| split_userinfo(r).0.is_some());
    if userinfo {
        return Err(format!("{shown:?} must not hold user:password@"));
    }
    if auth.is_empty() {
        return Err(format!("{shown:?} has no host"));
    }
    check_authority(auth)
}

/// One noProxy entry: `*`, host, `.domain`, IP, CIDR, each with optional `:port`.
pub fn check_no_proxy(e: &str) -> Result<(), String> {
    if e.contains("://") {
        return Err(format!(
            "noProxy entry {e:?} is a URL; give a host, .domain, IP address, CIDR or *"
        ));
    }
    // The transport's own parser: one set of rules for what a bypass entry is.
    crate::noproxy::NoProxy::parse(e)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A URL with any `user:password@` replaced by `****@`.
pub fn redact_url(s: &str) -> String {
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), s),
    };
    match split_userinfo(rest) {
        (Some(_), host) => format!("{scheme}****@{host}"),
        (None, _) => s.to_string(),
    }
}

/// Decode one `caCerts` entry: PEM text (one or more certificates), or
/// base64 of PEM, or base64 of DER. Each certificate must parse as an X.509
/// trust anchor.
pub fn parse_ca(item: &str) -> Result<Vec<CaCert>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let pem_certs = |bytes: &[u8]| -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::new();
        for c in CertificateDer::pem_slice_iter(bytes) {
            let c = c.map_err(|e| match e {
                rustls_pki_types::pem::Error::MissingSectionEnd { .. } => {
                    "a PEM block without its END line".to_string()
                }
                rustls_pki_types::pem::Error::Base64Decode(_) => {
                    "bad base64 inside the PEM block".to_string()
                }
                _ => "not valid PEM text".to_string(),
            })?;
            out.push(c.as_ref().to_vec());
        }
        if out.is_empty() {
            return Err("no CERTIFICATE block in the PEM text".into());
        }
        Ok(out)
    };
    let ders = if item.contains("-----BEGIN") {
        pem_certs(item.as_bytes())?
    } else {
        // Base64: decode through a PEM wrapper (rustls-pki-types does the base64).
        let b64: String = item.chars().filter(|c| !c.is_whitespace()).collect();
        if b64.is_empty()
            || !b64
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
        {
            return Err(
                "neither PEM nor base64 (expected \"-----BEGIN CERTIFICATE-----\" or base64 text)"
                    .into(),
            );
        }
        let wrapped = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        let raw = CertificateDer::from_pem_slice(wrapped.as_bytes())
            .map_err(|_| "not valid base64".to_string())?;
        let raw = raw.as_ref();
        if raw.starts_with(b"-----BEGIN") {
            pem_certs(raw)?
        } else {
            vec![raw.to_vec()]
        }
    };
    let mut out = Vec::new();
    for (n, der) in ders.into_iter().enumerate() {
        let cd = CertificateDer::from(der.as_slice());
        if let Err(e) = webpki::anchor_from_trusted_cert(&cd) {
            let which = if n == 0 {
                String::new()
            } else {
                format!(" (certificate {})", n + 1)
            };
            log::debug!("caCerts: certificate does not parse: {e:?}");
            return Err(format!("decodes, but is not an X.509 certificate{which}"));
        }
        out.push(CaCert { der });
    }
    Ok(out)
}

/// `prefix`: letters, digits and `-`.
pub(super) fn check_prefix(s: &str) -> Result<(), String> {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(())
    } else {
        Err(format!(
            "prefix {s:?} may hold only letters, digits and \"-\""
        ))
    }
}

pub(super) fn check_ip(s: &str) -> Result<(), String> {
    s.parse::<std::net::IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("{s:?} is not an IP address"))
}

pub(super) fn check_abs_path(s: &str) -> Result<(), String> {
    if s.starts_with('/') {
        Ok(())
    } else {
        Err(format!("{s:?} is not an absolute path"))
    }
}

/// The state directory: absolute, and not `/` itself.
pub(super) fn check_state_dir(s: &str) -> Result<(), String> {
    if s.starts_with('/') && !s.trim_end_matches('/').is_empty() {
        Ok(())
    } else {
        Err(format!("{s:?} is not an absolute directory path below /"))
    }
}

/// A hawkBit tenant: one path segment.
pub(super) fn check_tenant(s: &str) -> Result<(), String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        Ok(())
    } else {
        Err(format!("letters, digits, - _ . only, found {s:?}"))
    }
}

/// A release key (signify public key).
pub(super) fn check_public_key(s: &str) -> Result<(), String> {
    crate::upgrade::sig::PublicKey::parse(s).map(|_| ())
}

pub(super) fn check_dns_name(s: &str) -> Result<(), String> {
    if crate::cluster::valid_dns_name(s) {
        Ok(())
    } else {
        Err(format!("{s:?} is not a DNS name"))
    }
}
