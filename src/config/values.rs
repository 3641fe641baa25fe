//! Typed values of the configuration: conversion of raw nodes into the
//! fields of `Config` (with the checks each key needs: endpoint, proxy URLs,
//! noProxy entries, CA certificates, regexes, ranges), and the listing of
//! every key for `config show`. Pure: no I/O. Never echoes a secret value.

use super::keys::{self, Ty};
use super::node::Node;
use super::{pick, Config, Layers, Source, Val};
use crate::proxy::ProxyUrl;
use crate::sys::Root;
use std::collections::HashMap;
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduler {
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

/// Problem text for a raw value: "AT: problem".
struct Ctx<'a> {
    problems: &'a mut Vec<String>,
}

impl Ctx<'_> {
    fn bad(&mut self, at: &str, what: String) {
        self.problems.push(format!("{at}: {what}"));
    }
}

fn scalar(raw: &super::Raw, ctx: &mut Ctx<'_>, secret: bool) -> Option<String> {
    match raw.node.scalar_text() {
        Some(s) => Some(s),
        None => {
            let _ = secret;
            ctx.bad(
                &raw.at,
                format!("expected a string, found {}", raw.node.kind()),
            );
            None
        }
    }
}

fn boolean(raw: &super::Raw, ctx: &mut Ctx<'_>) -> Option<bool> {
    match &raw.node {
        Node::Bool(b) => Some(*b),
        Node::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Node::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
        Node::Str(s) => {
            ctx.bad(&raw.at, format!("expected true or false, found {s:?}"));
            None
        }
        other => {
            ctx.bad(
                &raw.at,
                format!("expected true or false, found {}", other.kind()),
            );
            None
        }
    }
}

fn integer(raw: &super::Raw, ctx: &mut Ctx<'_>, lo: u64, hi: u64) -> Option<u64> {
    let n = match &raw.node {
        Node::Int(i) => u64::try_from(*i).ok(),
        Node::Str(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (lo..=hi).contains(&n) => Some(n),
        Some(n) => {
            ctx.bad(&raw.at, format!("{n} is out of range ({lo}..={hi})"));
            None
        }
        None => {
            let found = match &raw.node {
                Node::Str(s) => format!("{s:?}"),
                other => other
                    .scalar_text()
                    .unwrap_or_else(|| other.kind().to_string()),
            };
            ctx.bad(
                &raw.at,
                format!("expected a whole number of seconds, found {found}"),
            );
            None
        }
    }
}

/// A list of strings, or a comma-separated string; empty entries dropped.
fn list(raw: &super::Raw, ctx: &mut Ctx<'_>, split_commas: bool) -> Option<Vec<String>> {
    match &raw.node {
        Node::Seq(items) => {
            let mut out = Vec::new();
            for (i, it) in items.iter().enumerate() {
                match it.scalar_text() {
                    Some(s) if !s.trim().is_empty() => out.push(s.trim().to_string()),
                    Some(_) => {}
                    None => {
                        ctx.bad(
                            &format!("{}[{i}]", raw.at),
                            format!("expected a string, found {}", it.kind()),
                        );
                        return None;
                    }
                }
            }
            Some(out)
        }
        Node::Str(s) if split_commas => Some(
            s.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(String::from)
                .collect(),
        ),
        Node::Str(s) => Some(vec![s.clone()]),
        other => {
            ctx.bad(&raw.at, format!("expected a list, found {}", other.kind()));
            None
        }
    }
}

/// Fill `cfg` from the layers, checking each value.
pub(super) fn resolve(
    cfg: &mut Config,
    fv: &HashMap<&'static str, (String, Node)>,
    layers: &Layers,
    _root: &Root,
    file: &str,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let mut ctx = Ctx { problems };
    let get = |p: &'static str| pick(p, fv, layers, file);

    macro_rules! set_opt_str {
        ($field:ident, $path:expr, $check:expr) => {
            if let Some(raw) = get($path) {
                if let Some(s) = scalar(&raw, &mut ctx, false) {
                    let s = s.trim().to_string();
                    let check: fn(&str) -> Result<(), String> = $check;
                    match check(&s) {
                        Ok(()) if s.is_empty() => {}
                        Ok(()) => {
                            cfg.$field = Val {
                                value: Some(s),
                                source: raw.source,
                            }
                        }
                        Err(e) => ctx.bad(&raw.at, e),
                    }
                }
            }
        };
    }
    macro_rules! set_bool {
        ($field:ident, $path:expr) => {
            if let Some(raw) = get($path) {
                if let Some(b) = boolean(&raw, &mut ctx) {
                    cfg.$field = Val {
                        value: b,
                        source: raw.source,
                    };
                }
            }
        };
    }
    macro_rules! set_int {
        ($field:ident, $path:expr, $lo:expr, $hi:expr) => {
            if let Some(raw) = get($path) {
                if let Some(n) = integer(&raw, &mut ctx, $lo, $hi) {
                    cfg.$field = Val {
                        value: n,
                        source: raw.source,
                    };
                }
            }
        };
    }

    set_opt_str!(endpoint, "stylus.site.paletteEndpoint", check_endpoint);
    if let Some(raw) = get("stylus.site.edgeHostToken") {
        match raw.node.scalar_text() {
            Some(s) if s.trim().is_empty() => {}
            Some(s) if s.trim().chars().any(|c| c.is_control() || c == ' ') => ctx.bad(
                &raw.at,
                "the token contains spaces or control characters".into(),
            ),
            Some(s) => {
                cfg.token = Val {
                    value: Some(Secret::new(s.trim().to_string())),
                    source: raw.source,
                }
            }
            None => ctx.bad(
                &raw.at,
                format!("expected a string, found {}", raw.node.kind()),
            ),
        }
    }
    set_opt_str!(project_name, "stylus.site.projectName", |_| Ok(()));
    set_opt_str!(project_uid, "stylus.site.projectUid", |_| Ok(()));
    set_opt_str!(name, "stylus.site.name", |_| Ok(()));
    set_opt_str!(host_name, "stylus.site.hostName", check_hostname);
    if let Some(raw) = get("stylus.site.prefix") {
        if let Some(s) = scalar(&raw, &mut ctx, false) {
            if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                cfg.prefix = Val {
                    value: s,
                    source: raw.source,
                };
            } else {
                ctx.bad(
                    &raw.at,
                    format!("prefix {s:?} may hold only letters, digits and \"-\""),
                );
            }
        }
    }
    if let Some(raw) = get("stylus.site.tags") {
        match &raw.node {
            Node::Map(entries) => {
                let mut tags = Vec::new();
                for (k, v) in entries {
                    match v.scalar_text() {
                        Some(s) => tags.push((k.clone(), s)),
                        None if *v == Node::Null => tags.push((k.clone(), String::new())),
                        None => ctx.bad(
                            &format!("{}.{k}", raw.at),
                            format!("expected a plain value, found {}", v.kind()),
                        ),
                    }
                }
                cfg.tags = Val {
                    value: tags,
                    source: raw.source,
                };
            }
            other => ctx.bad(
                &raw.at,
                format!("expected a map of tags, found {}", other.kind()),
            ),
        }
    }
    // tagsFromFile: three sub-keys from the file only.
    if let Some((_, fname)) = fv.get("stylus.site.tagsFromFile.fileName") {
        let at = |k: &str| format!("{file}: stylus.site.tagsFromFile.{k}");
        let text = |k: &'static str, d: &str, ctx: &mut Ctx<'_>| match fv.get(k).map(|(_, n)| n) {
            None | Some(Node::Null) => Some(d.to_string()),
            Some(n) => match n.scalar_text() {
                Some(s) if !s.is_empty() => Some(s),
                _ => {
                    ctx.bad(
                        &at(k.rsplit('.').next().unwrap_or(k)),
                        format!("expected a non-empty string, found {}", n.kind()),
                    );
                    None
                }
            },
        };
        let name = match fname.scalar_text() {
            Some(s) if s.starts_with('/') => Some(s),
            Some(s) => {
                ctx.bad(&at("fileName"), format!("{s:?} is not an absolute path"));
                None
            }
            None => {
                ctx.bad(
                    &at("fileName"),
                    format!("expected a path, found {}", fname.kind()),
                );
                None
            }
        };
        let delim = text("stylus.site.tagsFromFile.delimiter", "\n", &mut ctx);
        let sep = text("stylus.site.tagsFromFile.separator", ":", &mut ctx);
        if let (Some(file_name), Some(delimiter), Some(separator)) = (name, delim, sep) {
            cfg.tags_from_file = Val {
                value: Some(TagsFromFile {
                    file_name,
                    delimiter,
                    separator,
                }),
                source: Source::File,
            };
        }
    }
    if let Some((shown, Node::Seq(items))) = fv.get("stylus.site.deviceUIDPaths") {
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let Node::Map(entries) = it else { continue };
            let field = |k: &str| entries.iter().find(|(n, _)| n == k).map(|(_, v)| v);
            let at = |k: &str| format!("{file}: {shown}[{i}].{k}");
            let name = match field("name") {
                Some(Node::Str(s)) if s.starts_with('/') => Some(s.clone()),
                Some(Node::Str(s)) => {
                    ctx.bad(&at("name"), format!("{s:?} is not an absolute path"));
                    None
                }
                Some(other) => {
                    ctx.bad(
                        &at("name"),
                        format!("expected a path, found {}", other.kind()),
                    );
                    None
                }
                None => {
                    ctx.bad(
                        &format!("{file}: {shown}[{i}]"),
                        "needs a name (the path of the file)".into(),
                    );
                    None
                }
            };
            let regex = match field("regex") {
                None | Some(Node::Null) => Some(None),
                Some(n) => match n.scalar_text() {
                    Some(r) => match regex_lite::Regex::new(&r) {
                        Ok(_) => Some(Some(r)),
                        Err(e) => {
                            let first = e
                                .to_string()
                                .lines()
                                .last()
                                .unwrap_or("")
                                .trim()
                                .to_string();
                            ctx.bad(
                                &at("regex"),
                                format!("invalid regular expression {r:?}: {first}"),
                            );
                            None
                        }
                    },
                    None => {
                        ctx.bad(
                            &at("regex"),
                            format!("expected a string, found {}", n.kind()),
                        );
                        None
                    }
                },
            };
            if let (Some(name), Some(regex)) = (name, regex) {
                out.push(UidPath { name, regex });
            }
        }
        cfg.device_uid_paths = Val {
            value: out,
            source: Source::File,
        };
    }
    if let Some(raw) = get("stylus.site.caCerts") {
        if let Some(items) = list(&raw, &mut ctx, false) {
            let mut certs = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match parse_ca(item) {
                    Ok(mut c) => certs.append(&mut c),
                    Err(e) => ctx.bad(&format!("{}[{i}]", raw.at), e),
                }
            }
            cfg.ca_certs = Val {
                value: certs,
                source: raw.source,
            };
        }
    }
    set_bool!(insecure_skip_verify, "stylus.site.insecureSkipVerify");
    if cfg.insecure_skip_verify.value {
        warnings.push(format!(
            "WARNING: stylus.site.insecureSkipVerify is true ({}): the server's certificate will NOT be verified, so anyone on the network path can impersonate the management server and take the registration token",
            cfg.insecure_skip_verify.source.text()
        ));
    }
    set_bool!(disable_auto_register, "stylus.site.disableAutoRegister");
    set_opt_str!(
        registration_url,
        "stylus.site.registrationURL",
        check_https_url
    );
    // Parsed here, once, by the transport's own parser: what validates is
    // what `checkin` speaks (a socks5:// proxy is refused here, exit 3).
    for (field, path) in [
        (&mut cfg.http_proxy, "stylus.site.network.httpProxy"),
        (&mut cfg.https_proxy, "stylus.site.network.httpsProxy"),
    ] {
        if let Some(raw) = get(path) {
            if let Some(s) = scalar(&raw, &mut ctx, false) {
                if !s.trim().is_empty() {
                    match ProxyUrl::parse(&s) {
                        Ok(p) => {
                            *field = Val {
                                value: Some(p),
                                source: raw.source,
                            }
                        }
                        Err(e) => ctx.bad(&raw.at, e),
                    }
                }
            }
        }
    }
    if let Some(raw) = get("stylus.site.network.noProxy") {
        if let Some(items) = list(&raw, &mut ctx, true) {
            let mut ok = true;
            for e in &items {
                if let Err(why) = check_no_proxy(e) {
                    ctx.bad(&raw.at, why);
                    ok = false;
                }
            }
            if ok {
                cfg.no_proxy = Val {
                    value: items,
                    source: raw.source,
                };
            }
        }
    }
    set_opt_str!(nameserver, "stylus.site.network.nameserver", |s| s
        .parse::<std::net::IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("{s:?} is not an IP address")));
    set_bool!(debug, "stylus.debug");
    set_bool!(trace, "stylus.trace");
    if let Some(raw) = get("stylus.path") {
        if let Some(s) = scalar(&raw, &mut ctx, false) {
            if s.starts_with('/') {
                cfg.path = Val {
                    value: s,
                    source: raw.source,
                };
            } else {
                ctx.bad(&raw.at, format!("{s:?} is not an absolute path"));
            }
        }
    }
    set_opt_str!(installation_mode, "stylus.installationMode", |s| match s {
        "connected" | "airgap" => Ok(()),
        other => Err(format!("expected connected or airgap, found {other:?}")),
    });
    let mut mode_set = false;
    if let Some(raw) = get("stylus.managementMode") {
        if let Some(s) = scalar(&raw, &mut ctx, false) {
            match s.as_str() {
                "central" => {
                    cfg.management_mode = Val {
                        value: Mode::Central,
                        source: raw.source,
                    }
                }
                "local" => {
                    cfg.management_mode = Val {
                        value: Mode::Local,
                        source: raw.source,
                    }
                }
                other => ctx.bad(
                    &raw.at,
                    format!("expected central or local, found {other:?}"),
                ),
            }
            mode_set = true;
        }
    }
    if !mode_set && cfg.installation_mode.value.as_deref() == Some("airgap") {
        cfg.management_mode = Val {
            value: Mode::Local,
            source: cfg.installation_mode.source.clone(),
        };
    }
    set_bool!(vip_skip, "stylus.vip.skip");
    set_bool!(install_reboot, "install.reboot");
    set_bool!(install_poweroff, "install.poweroff");
    set_bool!(boot_checkin, "outpost.boot.checkin");
    set_int!(interval_min, "outpost.interval.min", 10, 86_400);
    set_int!(interval_max, "outpost.interval.max", 10, 86_400);
    if cfg.interval_min.value > cfg.interval_max.value {
        ctx.problems.push(format!(
            "{file}: outpost.interval: min ({}, {}) is greater than max ({}, {})",
            cfg.interval_min.value,
            cfg.interval_min.source.text(),
            cfg.interval_max.value,
            cfg.interval_max.source.text()
        ));
    }
    for (path, allowed) in [
        ("outpost.server.protocol", &["outpost", "ddi"][..]),
        ("outpost.server.ddi.tokenType", &["target", "gateway"][..]),
        ("outpost.server.ddi.tenant", &[][..]),
    ] {
        let Some(raw) = get(path) else { continue };
        let Some(v) = scalar(&raw, &mut ctx, false) else {
            continue;
        };
        let v = v.trim().to_string();
        let ok = if allowed.is_empty() {
            !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        } else {
            allowed.contains(&v.as_str())
        };
        if !ok {
            let want = if allowed.is_empty() {
                "letters, digits, - _ . only".to_string()
            } else {
                format!("expected {}", allowed.join(" or "))
            };
            ctx.bad(&raw.at, format!("{want}, found {v:?}"));
            continue;
        }
        let val = Val {
            value: v,
            source: raw.source,
        };
        match path {
            "outpost.server.protocol" => cfg.server_protocol = val,
            "outpost.server.ddi.tokenType" => cfg.ddi_token_type = val,
            _ => cfg.ddi_tenant = val,
        }
    }
    if let Some(raw) = get("outpost.server.ddi.token") {
        match raw.node.scalar_text() {
            Some(s) if s.trim().is_empty() => {}
            Some(s) if s.trim().chars().any(|c| c.is_control() || c == ' ') => ctx.bad(
                &raw.at,
                "the token contains spaces or control characters".into(),
            ),
            Some(s) => {
                cfg.ddi_token = Val {
                    value: Some(Secret::new(s.trim().to_string())),
                    source: raw.source,
                }
            }
            None => ctx.bad(
                &raw.at,
                format!("expected a string, found {}", raw.node.kind()),
            ),
        }
    }
    if let Some(raw) = get("outpost.stateDir") {
        if let Some(s) = scalar(&raw, &mut ctx, false) {
            if s.starts_with('/') && !s.trim_end_matches('/').is_empty() {
                cfg.state_dir = Val {
                    value: s,
                    source: raw.source,
                };
            } else {
                ctx.bad(
                    &raw.at,
                    format!("{s:?} is not an absolute directory path below /"),
                );
            }
        }
    }
    if let Some(raw) = get("outpost.scheduler") {
        if let Some(s) = scalar(&raw, &mut ctx, false) {
            let v = match s.as_str() {
                "auto" => Some(Scheduler::Auto),
                "systemd" => Some(Scheduler::Systemd),
                "cron" => Some(Scheduler::Cron),
                other => {
                    ctx.bad(
                        &raw.at,
                        format!("expected auto, systemd or cron, found {other:?}"),
                    );
                    None
                }
            };
            if let Some(v) = v {
                cfg.scheduler = Val {
                    value: v,
                    source: raw.source,
                };
            }
        }
    }
    let mut level_set = false;
    if let Some(raw) = get("outpost.logLevel") {
        if let Some(s) = scalar(&raw, &mut ctx, false) {
            match s.as_str() {
                "error" | "warn" | "info" | "debug" | "trace" => {
                    cfg.log_level = Val {
                        value: s,
                        source: raw.source,
                    };
                    level_set = true;
                }
                other => ctx.bad(
                    &raw.at,
                    format!("expected error, warn, info, debug or trace, found {other:?}"),
                ),
            }
        }
    }
    if !level_set {
        if cfg.trace.value {
            cfg.log_level = Val {
                value: "trace".into(),
                source: cfg.trace.source.clone(),
            };
        } else if cfg.debug.value {
            cfg.log_level = Val {
                value: "debug".into(),
                source: cfg.debug.source.clone(),
            };
        }
    }
    set_int!(connect_timeout, "outpost.timeouts.connect", 1, 300);
    set_int!(request_timeout, "outpost.timeouts.request", 1, 3600);
    if let Some(raw) = get("outpost.upgrade.publicKeys") {
        if let Some(items) = list(&raw, &mut ctx, false) {
            let mut ok = true;
            for (i, e) in items.iter().enumerate() {
                if let Err(why) = crate::upgrade::sig::PublicKey::parse(e) {
                    ctx.bad(&raw.at, format!("entry {}: {why}", i + 1));
                    ok = false;
                }
            }
            if ok {
                cfg.upgrade_keys = Val {
                    value: items,
                    source: raw.source,
                };
            }
        }
    }
    set_opt_str!(ddns_server, "outpost.ddns.server", |s| {
        crate::cluster::ddns::parse_server(s).map(|_| ())
    });
    set_opt_str!(ddns_zone, "outpost.ddns.zone", |s| {
        if crate::cluster::valid_dns_name(s) {
            Ok(())
        } else {
            Err(format!("{s:?} is not a DNS name"))
        }
    });
    set_opt_str!(ddns_key_name, "outpost.ddns.keyName", |_| Ok(()));
    set_opt_str!(ddns_key_file, "outpost.ddns.keyFile", |_| Ok(()));
    if let Some(raw) = get("outpost.ddns.algorithm") {
        if let Some(s) = scalar(&raw, &mut ctx, false) {
            match s.as_str() {
                "hmac-sha256" | "hmac-sha384" | "hmac-sha512" => {
                    cfg.ddns_algorithm = Val {
                        value: s,
                        source: raw.source,
                    }
                }
                other => ctx.bad(
                    &raw.at,
                    format!("expected hmac-sha256, hmac-sha384 or hmac-sha512, found {other:?}"),
                ),
            }
        }
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

fn check_hostname(s: &str) -> Result<(), String> {
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
fn check_https_url(s: &str) -> Result<(), String> {
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

/// How `config show` renders a value.
#[derive(Clone, Debug, PartialEq)]
pub enum Shown {
    Unset,
    Text(String),
    Bool(bool),
    Num(u64),
    List(Vec<String>),
}

impl Shown {
    pub fn text(&self) -> String {
        match self {
            Shown::Unset => "(unset)".into(),
            Shown::Text(s) => s.clone(),
            Shown::Bool(b) => b.to_string(),
            Shown::Num(n) => n.to_string(),
            Shown::List(v) if v.is_empty() => "[]".into(),
            Shown::List(v) => format!("[{}]", v.join(", ")),
        }
    }
}

/// One line of `config show`.
pub struct Entry {
    pub key: &'static str,
    pub value: Shown,
    pub source: Source,
}

impl Config {
    /// Every key outpost reads, in table order, with value and source;
    /// secrets redacted, proxy passwords masked.
    pub fn entries(&self) -> Vec<Entry> {
        let opt = |o: &Option<String>| o.clone().map_or(Shown::Unset, Shown::Text);
        let e = |key: &'static str, value: Shown, source: &Source| Entry {
            key,
            value,
            source: source.clone(),
        };
        let proxy = |o: &Option<String>| {
            o.as_deref()
                .map_or(Shown::Unset, |s| Shown::Text(redact_url(s)))
        };
        let typed_proxy = |o: &Option<ProxyUrl>| {
            o.as_ref()
                .map_or(Shown::Unset, |p| Shown::Text(redact_url(p.as_given())))
        };
        let tff = self.tags_from_file.value.as_ref();
        let s = &self.tags_from_file.source;
        vec![
            e(
                "stylus.site.paletteEndpoint",
                proxy(&self.endpoint.value),
                &self.endpoint.source,
            ),
            e(
                "stylus.site.edgeHostToken",
                self.token
                    .value
                    .as_ref()
                    .map_or(Shown::Unset, |t| Shown::Text(t.redacted())),
                &self.token.source,
            ),
            e(
                "stylus.site.projectName",
                opt(&self.project_name.value),
                &self.project_name.source,
            ),
            e(
                "stylus.site.projectUid",
                opt(&self.project_uid.value),
                &self.project_uid.source,
            ),
            e("stylus.site.name", opt(&self.name.value), &self.name.source),
            e(
                "stylus.site.hostName",
                opt(&self.host_name.value),
                &self.host_name.source,
            ),
            e(
                "stylus.site.prefix",
                Shown::Text(self.prefix.value.clone()),
                &self.prefix.source,
            ),
            e(
                "stylus.site.tags",
                Shown::List(
                    self.tags
                        .value
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect(),
                ),
                &self.tags.source,
            ),
            e(
                "stylus.site.tagsFromFile.fileName",
                tff.map_or(Shown::Unset, |t| Shown::Text(t.file_name.clone())),
                s,
            ),
            e(
                "stylus.site.tagsFromFile.delimiter",
                Shown::Text(format!("{:?}", tff.map_or("\n", |t| t.delimiter.as_str()))),
                s,
            ),
            e(
                "stylus.site.tagsFromFile.separator",
                Shown::Text(format!("{:?}", tff.map_or(":", |t| t.separator.as_str()))),
                s,
            ),
            e(
                "stylus.site.deviceUIDPaths",
                Shown::List(if self.device_uid_paths.value.is_empty() {
                    vec![crate::identity::DEFAULT_UID_PATH.to_string()]
                } else {
                    self.device_uid_paths
                        .value
                        .iter()
                        .map(|p| match &p.regex {
                            Some(r) => format!("{} =~ {r}", p.name),
                            None => p.name.clone(),
                        })
                        .collect()
                }),
                &self.device_uid_paths.source,
            ),
            e(
                "stylus.site.caCerts",
                Shown::Text(format!("{} certificate(s)", self.ca_certs.value.len())),
                &self.ca_certs.source,
            ),
            e(
                "stylus.site.insecureSkipVerify",
                Shown::Bool(self.insecure_skip_verify.value),
                &self.insecure_skip_verify.source,
            ),
            e(
                "stylus.site.disableAutoRegister",
                Shown::Bool(self.disable_auto_register.value),
                &self.disable_auto_register.source,
            ),
            e(
                "stylus.site.registrationURL",
                proxy(&self.registration_url.value),
                &self.registration_url.source,
            ),
            e(
                "stylus.site.network.httpProxy",
                typed_proxy(&self.http_proxy.value),
                &self.http_proxy.source,
            ),
            e(
                "stylus.site.network.httpsProxy",
                typed_proxy(&self.https_proxy.value),
                &self.https_proxy.source,
            ),
            e(
                "stylus.site.network.noProxy",
                Shown::List(self.no_proxy.value.clone()),
                &self.no_proxy.source,
            ),
            e(
                "stylus.site.network.nameserver",
                opt(&self.nameserver.value),
                &self.nameserver.source,
            ),
            e(
                "stylus.debug",
                Shown::Bool(self.debug.value),
                &self.debug.source,
            ),
            e(
                "stylus.trace",
                Shown::Bool(self.trace.value),
                &self.trace.source,
            ),
            e(
                "stylus.path",
                Shown::Text(self.path.value.clone()),
                &self.path.source,
            ),
            e(
                "stylus.managementMode",
                Shown::Text(self.management_mode.value.as_str().into()),
                &self.management_mode.source,
            ),
            e(
                "stylus.installationMode",
                Shown::Text(
                    self.installation_mode
                        .value
                        .clone()
                        .unwrap_or_else(|| "connected".into()),
                ),
                &self.installation_mode.source,
            ),
            e(
                "stylus.vip.skip",
                Shown::Bool(self.vip_skip.value),
                &self.vip_skip.source,
            ),
            e(
                "install.reboot",
                Shown::Bool(self.install_reboot.value),
                &self.install_reboot.source,
            ),
            e(
                "install.poweroff",
                Shown::Bool(self.install_poweroff.value),
                &self.install_poweroff.source,
            ),
            e(
                "outpost.server.protocol",
                Shown::Text(self.server_protocol.value.clone()),
                &self.server_protocol.source,
            ),
            e(
                "outpost.server.ddi.tenant",
                Shown::Text(self.ddi_tenant.value.clone()),
                &self.ddi_tenant.source,
            ),
            e(
                "outpost.server.ddi.tokenType",
                Shown::Text(self.ddi_token_type.value.clone()),
                &self.ddi_token_type.source,
            ),
            e(
                "outpost.server.ddi.token",
                self.ddi_token
                    .value
                    .as_ref()
                    .map_or(Shown::Unset, |t| Shown::Text(t.redacted())),
                &self.ddi_token.source,
            ),
            e(
                "outpost.interval.min",
                Shown::Num(self.interval_min.value),
                &self.interval_min.source,
            ),
            e(
                "outpost.interval.max",
                Shown::Num(self.interval_max.value),
                &self.interval_max.source,
            ),
            e(
                "outpost.stateDir",
                Shown::Text(self.state_dir.value.clone()),
                &self.state_dir.source,
            ),
            e(
                "outpost.scheduler",
                Shown::Text(self.scheduler.value.as_str().into()),
                &self.scheduler.source,
            ),
            e(
                "outpost.logLevel",
                Shown::Text(self.log_level.value.clone()),
                &self.log_level.source,
            ),
            e(
                "outpost.timeouts.connect",
                Shown::Num(self.connect_timeout.value),
                &self.connect_timeout.source,
            ),
            e(
                "outpost.timeouts.request",
                Shown::Num(self.request_timeout.value),
                &self.request_timeout.source,
            ),
            e(
                "outpost.upgrade.publicKeys",
                Shown::Text(
                    self.upgrade_keys
                        .value
                        .iter()
                        .filter_map(|k| crate::upgrade::sig::PublicKey::parse(k).ok())
                        .map(|k| format!("key {}", k.id()))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                &self.upgrade_keys.source,
            ),
            e(
                "outpost.boot.checkin",
                Shown::Bool(self.boot_checkin.value),
                &self.boot_checkin.source,
            ),
            e(
                "outpost.ddns.server",
                opt(&self.ddns_server.value),
                &self.ddns_server.source,
            ),
            e(
                "outpost.ddns.zone",
                opt(&self.ddns_zone.value),
                &self.ddns_zone.source,
            ),
            e(
                "outpost.ddns.keyName",
                opt(&self.ddns_key_name.value),
                &self.ddns_key_name.source,
            ),
            e(
                "outpost.ddns.keyFile",
                opt(&self.ddns_key_file.value),
                &self.ddns_key_file.source,
            ),
            e(
                "outpost.ddns.algorithm",
                Shown::Text(self.ddns_algorithm.value.clone()),
                &self.ddns_algorithm.source,
            ),
        ]
    }
}

/// Every table key that `entries` must list (leaf keys outpost reads).
pub fn shown_keys() -> Vec<&'static str> {
    keys::KEYS
        .iter()
        .filter(|k| !matches!(k.ty, Ty::Object | Ty::Ignored) && !k.path.contains("[]"))
        .map(|k| k.path)
        .collect()
}
