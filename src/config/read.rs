//! How the key table (`keys::KEYS`) turns raw values into `Config`: the
//! readers a table row names (one per kind of value: text, flag, number,
//! choice, secret, proxy URL, lists), the few rules that join two keys, the
//! defaults (the table's own default text, read like any other value), the
//! one loop over the table, and how `config show` renders a value. Pure: no
//! I/O. Never echoes a secret value.

use super::keys::{Read, Ty, KEYS};
use super::node::Node;
use super::values::{check_no_proxy, parse_ca, redact_url, Mode, Secret, TagsFromFile, UidPath};
use super::{pick, Config, Layers, Raw, Source, Val};
use crate::noproxy::NoProxy;
use crate::proxy::ProxyUrl;
use std::collections::HashMap;

/// The file's values by table path: (path as written, node).
pub(crate) type FileValues = HashMap<&'static str, (String, Node)>;

/// Where readers put what they find: problems ("AT: problem"), warnings,
/// and the file's name for messages that blame it.
pub(crate) struct Ctx<'a> {
    pub problems: &'a mut Vec<String>,
    pub warnings: &'a mut Vec<String>,
    pub file: &'a str,
}

impl Ctx<'_> {
    fn bad(&mut self, at: &str, what: String) {
        self.problems.push(format!("{at}: {what}"));
    }
}

/// Fill `cfg` from the layers: each table row, in table order, reads its
/// value (or its group from the file), then runs its rule.
pub(super) fn resolve(
    cfg: &mut Config,
    fv: &FileValues,
    layers: &Layers,
    file: &str,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    let mut ctx = Ctx {
        problems,
        warnings,
        file,
    };
    for key in KEYS {
        match key.read {
            Read::Value(read) => {
                if let Some(raw) = pick(key.path, fv, layers, file) {
                    read(cfg, &raw, &mut ctx);
                }
            }
            Read::File(read) => read(cfg, fv, &mut ctx),
            Read::Not => {}
        }
        if let Some(rule) = key.then {
            rule(cfg, &mut ctx);
        }
    }
}

/// The defaults: every value empty, then each row's default text read as
/// a value from `Source::Default` (what the docs show is what is used).
pub(super) fn defaults(mut cfg: Config) -> Config {
    let (mut problems, mut warnings) = (Vec::new(), Vec::new());
    let mut ctx = Ctx {
        problems: &mut problems,
        warnings: &mut warnings,
        file: "defaults",
    };
    for key in KEYS {
        if let (Read::Value(read), false) = (key.read, key.default.is_empty()) {
            let raw = Raw {
                node: Node::Str(key.default.to_string()),
                source: Source::Default,
                at: format!("default of {}", key.path),
            };
            read(&mut cfg, &raw, &mut ctx);
        }
    }
    // A unit test reads the table's defaults and wants no problem.
    debug_assert!(problems.is_empty(), "{problems:?}");
    cfg
}

fn put<T>(v: &mut Val<T>, value: T, raw: &Raw) {
    *v = Val {
        value,
        source: raw.source.clone(),
    };
}

fn scalar(raw: &Raw, ctx: &mut Ctx<'_>) -> Option<String> {
    let s = raw.node.scalar_text();
    if s.is_none() {
        ctx.bad(
            &raw.at,
            format!("expected a string, found {}", raw.node.kind()),
        );
    }
    s
}

/// A check of a text value: `Err` is the problem.
pub(crate) type Check = fn(&str) -> Result<(), String>;

/// Any text.
pub(super) fn any(_: &str) -> Result<(), String> {
    Ok(())
}

/// "expected a, b or c, found "x"".
pub(super) fn one_of(s: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&s) {
        return Ok(());
    }
    let list = match allowed.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    Err(format!("expected {list}, found {s:?}"))
}

/// Optional text, trimmed; empty means unset.
pub(super) fn opt_text(v: &mut Val<Option<String>>, raw: &Raw, ctx: &mut Ctx<'_>, check: Check) {
    let Some(s) = scalar(raw, ctx) else { return };
    let s = s.trim().to_string();
    match check(&s) {
        Ok(()) if s.is_empty() => {}
        Ok(()) => put(v, Some(s), raw),
        Err(e) => ctx.bad(&raw.at, e),
    }
}

/// Text with a default, as written (`trim`: white space around it dropped).
pub(super) fn text(v: &mut Val<String>, raw: &Raw, ctx: &mut Ctx<'_>, trim: bool, check: Check) {
    let Some(s) = scalar(raw, ctx) else { return };
    let s = if trim { s.trim().to_string() } else { s };
    match check(&s) {
        Ok(()) => put(v, s, raw),
        Err(e) => ctx.bad(&raw.at, e),
    }
}

/// One of a few words, each standing for a value.
pub(super) fn choice<T: Copy>(v: &mut Val<T>, raw: &Raw, ctx: &mut Ctx<'_>, words: &[(&str, T)]) {
    let Some(s) = scalar(raw, ctx) else { return };
    match words.iter().find(|(w, _)| *w == s) {
        Some((_, t)) => put(v, *t, raw),
        None => {
            let names: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
            if let Err(e) = one_of(&s, &names) {
                ctx.bad(&raw.at, e);
            }
        }
    }
}

/// A token: trimmed, empty means unset, no spaces or control characters;
/// its value never reaches a message.
pub(super) fn secret(v: &mut Val<Option<Secret>>, raw: &Raw, ctx: &mut Ctx<'_>) {
    let Some(s) = scalar(raw, ctx) else { return };
    let s = s.trim();
    if s.is_empty() {
    } else if s.chars().any(|c| c.is_control() || c == ' ') {
        ctx.bad(
            &raw.at,
            "the token contains spaces or control characters".into(),
        );
    } else {
        put(v, Some(Secret::new(s.to_string())), raw);
    }
}

/// `true` or `false` (a YAML boolean, or the words in any case).
pub(super) fn flag(v: &mut Val<bool>, raw: &Raw, ctx: &mut Ctx<'_>) {
    let b = match &raw.node {
        Node::Bool(b) => *b,
        Node::Str(s) if s.eq_ignore_ascii_case("true") => true,
        Node::Str(s) if s.eq_ignore_ascii_case("false") => false,
        Node::Str(s) => {
            return ctx.bad(&raw.at, format!("expected true or false, found {s:?}"));
        }
        other => {
            return ctx.bad(
                &raw.at,
                format!("expected true or false, found {}", other.kind()),
            );
        }
    };
    put(v, b, raw);
}

/// A whole number of seconds in `lo..=hi`.
pub(super) fn number(v: &mut Val<u64>, raw: &Raw, ctx: &mut Ctx<'_>, lo: u64, hi: u64) {
    let n = match &raw.node {
        Node::Int(i) => u64::try_from(*i).ok(),
        Node::Str(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (lo..=hi).contains(&n) => put(v, n, raw),
        Some(n) => ctx.bad(&raw.at, format!("{n} is out of range ({lo}..={hi})")),
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
        }
    }
}

/// A proxy URL, parsed here once by the transport's own parser: what
/// validates is what `checkin` speaks (a socks5:// proxy is exit 3 here).
pub(super) fn proxy(v: &mut Val<Option<ProxyUrl>>, raw: &Raw, ctx: &mut Ctx<'_>) {
    let Some(s) = scalar(raw, ctx) else { return };
    if s.trim().is_empty() {
        return;
    }
    match ProxyUrl::parse(&s) {
        Ok(p) => put(v, Some(p), raw),
        Err(e) => ctx.bad(&raw.at, e),
    }
}

/// A list of strings, or a comma-separated string; empty entries dropped.
fn list(raw: &Raw, ctx: &mut Ctx<'_>, split_commas: bool) -> Option<Vec<String>> {
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

/// A list whose every entry passes `check` (else nothing is taken);
/// problems name the entry ("entry 2: ...").
pub(super) fn checked_list(v: &mut Val<Vec<String>>, raw: &Raw, ctx: &mut Ctx<'_>, check: Check) {
    let Some(items) = list(raw, ctx, false) else {
        return;
    };
    let mut ok = true;
    for (i, e) in items.iter().enumerate() {
        if let Err(why) = check(e) {
            ctx.bad(&raw.at, format!("entry {}: {why}", i + 1));
            ok = false;
        }
    }
    if ok {
        put(v, items, raw);
    }
}

/// `noProxy`: a list (or comma-separated string) of bypass entries, parsed
/// once by the transport's own parser; every bad entry is a problem, and
/// then none is taken.
pub(super) fn no_proxy(cfg: &mut Config, raw: &Raw, ctx: &mut Ctx<'_>) {
    let Some(items) = list(raw, ctx, true) else {
        return;
    };
    let mut all = Some(NoProxy::default());
    for e in &items {
        match check_no_proxy(e).and_then(|()| NoProxy::parse(e).map_err(|e| e.to_string())) {
            Ok(one) => all = all.map(|a| a.merged(&one)),
            Err(why) => {
                ctx.bad(&raw.at, why);
                all = None;
            }
        }
    }
    if let Some(all) = all {
        put(&mut cfg.no_proxy, all, raw);
    }
}

/// `caCerts`: every certificate of every entry; a bad entry is a problem
/// naming its index.
pub(super) fn ca_certs(cfg: &mut Config, raw: &Raw, ctx: &mut Ctx<'_>) {
    let Some(items) = list(raw, ctx, false) else {
        return;
    };
    let mut certs = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse_ca(item) {
            Ok(mut c) => certs.append(&mut c),
            Err(e) => ctx.bad(&format!("{}[{i}]", raw.at), e),
        }
    }
    put(&mut cfg.ca_certs, certs, raw);
}

/// `tags`: a map of plain values (an empty value is "").
pub(super) fn tags(cfg: &mut Config, raw: &Raw, ctx: &mut Ctx<'_>) {
    let Node::Map(entries) = &raw.node else {
        return ctx.bad(
            &raw.at,
            format!("expected a map of tags, found {}", raw.node.kind()),
        );
    };
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
    put(&mut cfg.tags, tags, raw);
}

/// `tagsFromFile`: its three sub-keys, from the file only.
pub(super) fn tags_from_file(cfg: &mut Config, fv: &FileValues, ctx: &mut Ctx<'_>) {
    let Some((_, fname)) = fv.get("stylus.site.tagsFromFile.fileName") else {
        return;
    };
    let file = ctx.file.to_string();
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
    let delim = text("stylus.site.tagsFromFile.delimiter", "\n", ctx);
    let sep = text("stylus.site.tagsFromFile.separator", ":", ctx);
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

/// `deviceUIDPaths`: a list of {name, regex}, from the file only; each
/// regex must compile.
pub(super) fn device_uid_paths(cfg: &mut Config, fv: &FileValues, ctx: &mut Ctx<'_>) {
    let Some((shown, Node::Seq(items))) = fv.get("stylus.site.deviceUIDPaths") else {
        return;
    };
    let file = ctx.file.to_string();
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

// -- rules: what one key means for another, run right after its row --

/// insecureSkipVerify: a loud warning whenever it is on.
pub(super) fn warn_insecure(cfg: &mut Config, ctx: &mut Ctx<'_>) {
    if cfg.insecure_skip_verify.value {
        ctx.warnings.push(format!(
            "WARNING: stylus.site.insecureSkipVerify is true ({}): the server's certificate will NOT be verified, so anyone on the network path can impersonate the management server and take the registration token",
            cfg.insecure_skip_verify.source.text()
        ));
    }
}

/// The deprecated `installationMode: airgap` means managementMode local,
/// unless managementMode itself is set.
pub(super) fn airgap_is_local(cfg: &mut Config, _: &mut Ctx<'_>) {
    if cfg.management_mode.source == Source::Default
        && cfg.installation_mode.value.as_deref() == Some("airgap")
    {
        cfg.management_mode = Val {
            value: Mode::Local,
            source: cfg.installation_mode.source.clone(),
        };
    }
}

/// The interval's bounds in order.
pub(super) fn interval_in_order(cfg: &mut Config, ctx: &mut Ctx<'_>) {
    if cfg.interval_min.value > cfg.interval_max.value {
        ctx.problems.push(format!(
            "{}: outpost.interval: min ({}, {}) is greater than max ({}, {})",
            ctx.file,
            cfg.interval_min.value,
            cfg.interval_min.source.text(),
            cfg.interval_max.value,
            cfg.interval_max.source.text()
        ));
    }
}

/// `stylus.trace` / `stylus.debug` set the log level when logLevel is left
/// at its default.
pub(super) fn level_from_debug(cfg: &mut Config, _: &mut Ctx<'_>) {
    if cfg.log_level.source != Source::Default {
        return;
    }
    for (on, level) in [(&cfg.trace, "trace"), (&cfg.debug, "debug")] {
        if on.value {
            cfg.log_level = Val {
                value: level.into(),
                source: on.source.clone(),
            };
            return;
        }
    }
}

// -- `config show` --

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

/// A value as `config show` prints it: secrets redacted, passwords in
/// proxy URLs masked.
pub trait Show {
    fn shown(&self) -> Shown;
}

impl Show for bool {
    fn shown(&self) -> Shown {
        Shown::Bool(*self)
    }
}

impl Show for u64 {
    fn shown(&self) -> Shown {
        Shown::Num(*self)
    }
}

impl Show for String {
    fn shown(&self) -> Shown {
        Shown::Text(self.clone())
    }
}

impl Show for Vec<String> {
    fn shown(&self) -> Shown {
        Shown::List(self.clone())
    }
}

impl Show for Secret {
    fn shown(&self) -> Shown {
        Shown::Text(self.redacted())
    }
}

impl Show for ProxyUrl {
    fn shown(&self) -> Shown {
        Shown::Text(redact_url(self.as_given()))
    }
}

impl Show for NoProxy {
    fn shown(&self) -> Shown {
        Shown::List(self.given().to_vec())
    }
}

impl Show for Mode {
    fn shown(&self) -> Shown {
        Shown::Text(self.as_str().into())
    }
}

impl Show for super::Scheduler {
    fn shown(&self) -> Shown {
        Shown::Text(self.as_str().into())
    }
}

impl<T: Show> Show for Option<T> {
    fn shown(&self) -> Shown {
        self.as_ref().map_or(Shown::Unset, T::shown)
    }
}

impl<T: Show> Val<T> {
    /// The value as shown, and its source.
    pub(crate) fn show(&self) -> (Shown, &Source) {
        (self.value.shown(), &self.source)
    }
}

impl<T> Val<T> {
    /// The value through `f`, and its source.
    pub(crate) fn show_as(&self, f: impl Fn(&T) -> Shown) -> (Shown, &Source) {
        (f(&self.value), &self.source)
    }
}

/// A URL with any password masked (or unset).
pub(super) fn url(v: &Option<String>) -> Shown {
    v.as_deref()
        .map_or(Shown::Unset, |s| Shown::Text(redact_url(s)))
}

impl Config {
    /// Every key outpost reads, in table order, with value and source;
    /// secrets redacted, proxy passwords masked.
    pub fn entries(&self) -> Vec<Entry> {
        KEYS.iter()
            .filter_map(|k| {
                let (value, source) = (k.show?)(self);
                Some(Entry {
                    key: k.path,
                    value,
                    source: source.clone(),
                })
            })
            .collect()
    }
}

/// Every table key that `entries` must list (leaf keys outpost reads).
pub fn shown_keys() -> Vec<&'static str> {
    KEYS.iter()
        .filter(|k| !matches!(k.ty, Ty::Object | Ty::Ignored) && !k.path.contains("[]"))
        .map(|k| k.path)
        .collect()
}

/// `deviceUIDPaths` as shown: the built-in path when none is configured.
pub(super) fn show_uid_paths(v: &[UidPath]) -> Shown {
    Shown::List(if v.is_empty() {
        vec![crate::identity::DEFAULT_UID_PATH.to_string()]
    } else {
        v.iter()
            .map(|p| match &p.regex {
                Some(r) => format!("{} =~ {r}", p.name),
                None => p.name.clone(),
            })
            .collect()
    })
}

/// Release keys as shown: their key IDs.
pub(super) fn show_public_keys(v: &[String]) -> Shown {
    Shown::Text(
        v.iter()
            .filter_map(|k| crate::upgrade::sig::PublicKey::parse(k).ok())
            .map(|k| format!("key {}", k.id()))
            .collect::<Vec<_>>()
            .join(", "),
    )
}
