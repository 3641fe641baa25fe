//! Configuration: read the operator's `#cloud-config` user-data (the
//! platform's `stylus:` block plus outpost's `outpost:` block), layer it as
//! defaults < standard proxy variables < file < `OUTPOST_*` variables <
//! `--set` flags, validate every key, and hand out one `Config` whose every
//! value carries its source.
//!
//! All problems are collected and reported together, each naming the file
//! (or variable, or flag), the key path and the problem; YAML syntax errors
//! carry the parser's line and column. This module never logs, and never puts
//! a secret into a message: values of secret keys are not echoed.

pub mod keys;
pub mod node;
mod read;
mod values;
/// Types of `config show` (for commands).
pub mod values_api {
    pub use super::read::{shown_keys, Entry, Shown};
    pub use super::values::{check_endpoint, check_no_proxy, parse_ca, redact_url};
}

use crate::error::{Code, Error, Result};
use crate::noproxy::NoProxy;
use crate::proxy::{ProxyEnv, ProxyUrl};
use crate::sys::Root;
use keys::{Key, Ty};
use node::Node;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use values::{CaCert, Mode, Scheduler, Secret, TagsFromFile, UidPath};

/// Default config path (under `--root`).
pub const DEFAULT_CONFIG: &str = crate::paths::CONFIG_PATH;
/// Largest config file read, bytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    /// An environment variable (standard proxy variable or `OUTPOST_*`).
    Env(String),
    File,
    /// `--set KEY=VALUE` on the command line.
    Flag,
}

impl Source {
    pub fn text(&self) -> String {
        match self {
            Source::Default => "default".into(),
            Source::Env(v) => format!("env {v}"),
            Source::File => "file".into(),
            Source::Flag => "flag --set".into(),
        }
    }
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Val<T> {
    pub value: T,
    pub source: Source,
}

/// Declares `Config` and its blank value from one list of fields.
macro_rules! config_struct {
    ($($(#[$doc:meta])* $field:ident: $ty:ty,)*) => {
        /// The effective configuration other code consumes: one `Val` per
        /// value, each bound to its key(s) in `keys::KEYS`, which read,
        /// default and show it.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Config {
            /// The config file (resolved path) and whether it was read.
            pub file: PathBuf,
            pub file_read: bool,
            $($(#[$doc])* pub $field: Val<$ty>,)*
            /// Ignored platform keys present in the file, as written (`stages`, ...).
            pub ignored: Vec<String>,
        }

        impl Config {
            /// Every value empty (none, zero, false, the first variant), from
            /// `Source::Default`; the table's defaults are laid over it.
            fn blank() -> Config {
                Config {
                    file: PathBuf::from(DEFAULT_CONFIG),
                    file_read: false,
                    $($field: Val { value: <$ty>::default(), source: Source::Default },)*
                    ignored: Vec::new(),
                }
            }
        }
    };
}

config_struct! {
    endpoint: Option<String>,
    token: Option<Secret>,
    project_name: Option<String>,
    project_uid: Option<String>,
    name: Option<String>,
    host_name: Option<String>,
    prefix: String,
    tags: Vec<(String, String)>,
    tags_from_file: Option<TagsFromFile>,
    device_uid_paths: Vec<UidPath>,
    ca_certs: Vec<CaCert>,
    insecure_skip_verify: bool,
    disable_auto_register: bool,
    registration_url: Option<String>,
    /// Proxy URLs may hold `user:password@`: never log them as they are;
    /// `values_api::redact_url` masks the credentials.
    http_proxy: Option<ProxyUrl>,
    https_proxy: Option<ProxyUrl>,
    /// Parsed once here; the transport takes it as it is.
    no_proxy: NoProxy,
    nameserver: Option<String>,
    debug: bool,
    trace: bool,
    path: String,
    management_mode: Mode,
    installation_mode: Option<String>,
    vip_skip: bool,
    install_reboot: bool,
    install_poweroff: bool,
    /// `outpost.server.protocol`: "outpost" or "ddi".
    server_protocol: String,
    ddi_tenant: String,
    /// "target" or "gateway".
    ddi_token_type: String,
    ddi_token: Option<Secret>,
    interval_min: u64,
    interval_max: u64,
    /// Host path (resolve under the root with `Root::path`).
    state_dir: String,
    scheduler: Scheduler,
    log_level: String,
    connect_timeout: u64,
    request_timeout: u64,
    /// `outpost.upgrade.publicKeys`: signify public keys, each checked.
    upgrade_keys: Vec<String>,
    /// `outpost.boot.checkin` (docs/boot.md).
    boot_checkin: bool,
    ddns_server: Option<String>,
    ddns_zone: Option<String>,
    ddns_key_name: Option<String>,
    ddns_key_file: Option<String>,
    ddns_algorithm: String,
}

impl Default for Config {
    /// The defaults of the key table (`keys::KEYS`), read from its text.
    fn default() -> Config {
        read::defaults(Config::blank())
    }
}

/// What to load: the root, an explicit file, the environment, `--set` pairs.
pub struct Options<'a> {
    pub root: &'a Root,
    /// `--config FILE` (a path as given, not under the root).
    pub file: Option<PathBuf>,
    /// Environment snapshot (name, value).
    pub env: Vec<(String, String)>,
    /// `--set KEY=VALUE` pairs in command-line order.
    pub sets: Vec<(String, String)>,
}

impl<'a> Options<'a> {
    pub fn new(root: &'a Root, file: Option<PathBuf>, sets: Vec<(String, String)>) -> Options<'a> {
        Options {
            root,
            file,
            env: std::env::vars().collect(),
            sets,
        }
    }
}

/// The result of loading: the config plus everything worth telling.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// Invalid values, unknown keys, syntax errors: each one line.
    pub problems: Vec<String>,
    /// Ignored keys, insecureSkipVerify: each one line.
    pub warnings: Vec<String>,
    /// What central management still lacks (endpoint, token): each one line.
    pub incomplete: Vec<String>,
}

impl Loaded {
    /// The config when there is no problem, else one error naming the first
    /// problem (exit 3).
    pub fn into_valid(self) -> Result<Config> {
        match self.problems.len() {
            0 => Ok(self.config),
            1 => Err(Error::config(self.problems[0].clone())),
            n => Err(Error::config(format!(
                "{} (and {} more; run 'outpost config validate')",
                self.problems[0],
                n - 1 + self.problems_dropped()
            ))),
        }
    }
}

/// Read and layer the configuration. `Err` only when the file cannot be
/// read at all: an explicit file that is missing (exit 3), permission denied
/// (exit 4). A missing default file means "all defaults".
pub fn load(opts: &Options<'_>) -> Result<Loaded> {
    let (path, explicit) = match &opts.file {
        Some(p) => (p.clone(), true),
        None => (opts.root.path(DEFAULT_CONFIG), false),
    };
    let text = match read_file(&path) {
        Ok(t) => Some(t),
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(read_error(&path, &e)),
    };
    let mut loaded = load_text(&path, text.as_deref(), opts);
    if loaded.config.token.source == Source::File {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(&path) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o044 != 0 {
                loaded.warnings.push(format!(
                    "{}: holds the registration token but is readable by group or others (mode {mode:04o}); run: chmod 600 {}",
                    path.display(),
                    path.display()
                ));
            }
        }
    }
    Ok(loaded)
}

/// The error for a user-data file that cannot be read: permission denied is
/// exit 4, anything else (missing, a directory) exit 3.
pub fn read_error(path: &Path, e: &std::io::Error) -> Error {
    let code = match e.kind() {
        std::io::ErrorKind::PermissionDenied => Code::NotPermitted,
        _ => Code::Config,
    };
    Error::new(
        code,
        format!("reading {}: {}", path.display(), crate::error::io_text(e)),
    )
}

/// Read at most MAX_FILE_BYTES + 1 bytes (so "too large" can be told);
/// a directory is an error.
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    if f.metadata()?.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is a directory",
        ));
    }
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Layer and validate, given the file's bytes (None: no file).
pub fn load_text(path: &Path, bytes: Option<&[u8]>, opts: &Options<'_>) -> Loaded {
    let mut st = State {
        file: path.display().to_string(),
        problems: Vec::new(),
        warnings: Vec::new(),
        file_values: HashMap::new(),
        ignored: Vec::new(),
    };
    let mut parsed = true;
    if let Some(bytes) = bytes {
        match parse_document(&st.file, bytes, &mut st.problems) {
            Some(root) => st.walk(&root, "", ""),
            None => parsed = false,
        }
    }
    let mut cfg = Config {
        file: path.to_path_buf(),
        file_read: bytes.is_some(),
        ignored: st.ignored.clone(),
        ..Config::default()
    };
    let layers = Layers::new(opts, &mut st.problems);
    read::resolve(
        &mut cfg,
        &st.file_values,
        &layers,
        &st.file,
        &mut st.problems,
        &mut st.warnings,
    );
    // After a syntax error nothing is known about the file's keys.
    let incomplete = if parsed {
        values::central_needs(&cfg, &st.file)
    } else {
        Vec::new()
    };
    cap_problems(&mut st.problems);
    cap_warnings(&mut st.warnings);
    Loaded {
        config: cfg,
        problems: st.problems,
        warnings: st.warnings,
        incomplete,
    }
}

/// Size, encoding, header and YAML syntax; `None` when the file is unusable.
fn parse_document(file: &str, bytes: &[u8], problems: &mut Vec<String>) -> Option<Node> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        problems.push(format!(
            "{file}: file is larger than {MAX_FILE_BYTES} bytes; is this the right file?"
        ));
        return None;
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            problems.push(format!(
                "{file}: line {line}: not UTF-8 text (invalid byte at offset {at}); is this a binary file?"
            ));
            return None;
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.lines().next().unwrap_or("").trim_end();
    if first != "#cloud-config" {
        problems.push(format!(
            "{file}: line 1: the first line must be \"#cloud-config\" (found {})",
            quote_start(first)
        ));
        return None;
    }
    if let Some(problem) = check_shape(text) {
        problems.push(format!("{file}: {problem}"));
        return None;
    }
    match serde_norway::from_str::<Node>(text) {
        Ok(Node::Null) => Some(Node::Map(Vec::new())),
        Ok(n @ Node::Map(_)) => Some(n),
        Ok(other) => {
            problems.push(format!(
                "{file}: the document must be a map of keys, found {}",
                other.kind()
            ));
            None
        }
        Err(e) => {
            problems.push(format!("{file}: {}", yaml_error(text, &e)));
            None
        }
    }
}

/// Deepest nesting a user-data file may have (block indentation levels,
/// `- ` list markers on one line and flow brackets together); real files
/// nest 4-6 levels.
pub const MAX_DEPTH: usize = 64;
/// Most `key:` pairs a user-data file may hold; real files hold tens.
pub const MAX_KEYS: usize = 10_000;
/// Most problems reported for one configuration (the rest are counted).
pub const MAX_PROBLEMS: usize = 50;

/// Bound nesting depth and key count on the raw text, in one linear pass,
/// before the YAML library sees it: deep nesting is slow inside the
/// library and a huge map costs time and memory for nothing. An estimate
/// that never undercounts a real file's depth: it may count a `[` inside a
/// plain scalar, which only matters past MAX_DEPTH. `None`: within bounds.
pub fn check_shape(text: &str) -> Option<String> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut keys = 0usize;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let indent = line.len() - body.len();
        if flow == 0 {
            while indents.last().is_some_and(|&i| i > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
        }
        let mut dashes = 0usize;
        let mut rest = body;
        while let Some(r) = rest.strip_prefix("- ") {
            dashes += 1;
            rest = r.trim_start_matches(' ');
        }
        let (mut quote, mut prev) = (None::<char>, ' ');
        let mut deepest = flow;
        for c in rest.chars() {
            match quote {
                Some(q) => {
                    if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    '#' if prev == ' ' => break,
                    '"' | '\'' if matches!(prev, ' ' | '[' | '{' | ',' | ':') => quote = Some(c),
                    '[' | '{' => {
                        flow += 1;
                        deepest = deepest.max(flow);
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    ':' => keys += 1,
                    _ => {}
                },
            }
            prev = c;
        }
        let depth = indents.len() + dashes + deepest;
        if depth > MAX_DEPTH {
            return Some(format!(
                "line {}: nested more than {MAX_DEPTH} levels deep; user-data is a shallow map",
                n + 1
            ));
        }
        if keys > MAX_KEYS {
            return Some(format!(
                "line {}: more than {MAX_KEYS} keys; user-data holds a few tens",
                n + 1
            ));
        }
    }
    None
}

impl Loaded {
    /// Problems beyond MAX_PROBLEMS, counted in the list's last line.
    fn problems_dropped(&self) -> usize {
        self.problems
            .last()
            .and_then(|l| l.strip_prefix("... and "))
            .and_then(|r| r.strip_suffix(" more problems not shown"))
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(0, |n| n - 1)
    }
}

/// Keep the first MAX_PROBLEMS problems and count the rest in one line.
fn cap_problems(problems: &mut Vec<String>) {
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS;
        problems.truncate(MAX_PROBLEMS);
        problems.push(format!("... and {more} more problems not shown"));
    }
}

/// The same cap for warnings (thousands of unknown `stylus:` keys must not
/// print thousands of lines on every run).
fn cap_warnings(warnings: &mut Vec<String>) {
    if warnings.len() > MAX_PROBLEMS {
        let more = warnings.len() - MAX_PROBLEMS;
        warnings.truncate(MAX_PROBLEMS);
        warnings.push(format!("... and {more} more warnings not shown"));
    }
}

/// The first 40 characters of a line, quoted, for messages.
fn quote_start(s: &str) -> String {
    if s.is_empty() {
        return "an empty line".into();
    }
    let cut: String = s.chars().take(40).collect();
    if cut.len() < s.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

/// The parser's message, led by "line L column C:", and a plain reason for
/// a tab in indentation (YAML allows only spaces there).
fn yaml_error(text: &str, e: &serde_norway::Error) -> String {
    let msg = e.to_string();
    let msg = match msg.as_str() {
        "repetition limit exceeded" => {
            "aliases (*name) expand to too many values (repetition limit exceeded)".to_string()
        }
        m if m.starts_with("deserializing from YAML containing more than one document") => {
            "more than one YAML document (a second \"---\"); user-data is one document".to_string()
        }
        _ => msg.replacen(
            "recursion limit exceeded",
            "nested too deeply (recursion limit exceeded)",
            1,
        ),
    };
    let Some(loc) = e.location() else {
        return msg;
    };
    let (line, col) = (loc.line(), loc.column());
    let src = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    let indent: String = src
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect();
    if indent.contains('\t') {
        let tcol = indent.find('\t').map_or(col, |i| i + 1);
        return format!(
            "line {line} column {tcol}: a tab in the indentation; YAML indents with spaces only"
        );
    }
    // The parser reports a duplicate at the map's first key; find the repeat.
    let mut line = line;
    if let Some(k) = msg
        .split("duplicate key \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
    {
        let indent = " ".repeat(col.saturating_sub(1));
        let is_key = |l: &str| {
            l.strip_prefix(&indent)
                .and_then(|r| r.strip_prefix(k))
                .is_some_and(|r| {
                    r.trim_start().starts_with(':') && !l[indent.len()..].starts_with(' ')
                })
        };
        if let Some((n, _)) = text
            .lines()
            .enumerate()
            .skip(line.saturating_sub(1))
            .filter(|(_, l)| is_key(l))
            .nth(1)
        {
            line = n + 1;
        }
    }
    let at = format!(" at line {} column {col}", loc.line());
    let plain = msg.replacen(&at, "", 1);
    format!("line {line} column {col}: {plain}")
}

/// The walk over the file's keys.
struct State {
    file: String,
    problems: Vec<String>,
    warnings: Vec<String>,
    /// Table path -> (path as written, node), for keys outpost reads.
    file_values: HashMap<&'static str, (String, Node)>,
    ignored: Vec<String>,
}

impl State {
    fn walk(&mut self, map: &Node, tpath: &str, shown: &str) {
        let Node::Map(entries) = map else { return };
        for (k, v) in entries {
            let t = join(tpath, k);
            let s = join(shown, k);
            if let Some(canonical) = keys::legacy_alias(&t) {
                self.warnings.push(format!(
                    "{}: {s}: older spelling of {}; read as that",
                    self.file, canonical.path
                ));
                self.visit(canonical, v, &s);
                continue;
            }
            let Some(key) = keys::lookup(&t) else {
                let hint = match keys::suggest(tpath, k) {
                    Some(c) => format!("; did you mean {c}?"),
                    None => format!("; known keys here: {}", keys::children(tpath).join(", ")),
                };
                // The platform does not reject keys it does not know under
                // `stylus:`, so neither does outpost (a warning; `config
                // validate --strict` makes it an error); `outpost:` is ours.
                if t == "stylus" || t.starts_with("stylus.") {
                    self.warnings.push(format!(
                        "{}: {s}: unknown key, ignored (the platform may define it; outpost does not){hint}",
                        self.file
                    ));
                } else {
                    self.problems.push(format!(
                        "{}: {s}: unknown key (neither outpost nor the platform defines it){hint}",
                        self.file
                    ));
                }
                continue;
            };
            self.visit(key, v, &s);
        }
    }

    fn visit(&mut self, key: &'static Key, v: &Node, shown: &str) {
        match key.ty {
            Ty::Ignored => {
                if !self.ignored.iter().any(|i| i == shown) {
                    self.ignored.push(shown.to_string());
                    self.warnings.push(format!(
                        "{}: {shown}: ignored by outpost (a platform key outpost does not act on)",
                        self.file
                    ));
                }
            }
            Ty::Object => match v {
                Node::Null => {}
                Node::Map(_) => self.walk(v, key.path, shown),
                other => self.problems.push(format!(
                    "{}: {shown}: expected a map of keys, found {}",
                    self.file,
                    other.kind()
                )),
            },
            Ty::ObjList => match v {
                Node::Null => {}
                Node::Seq(items) => {
                    let item_path = format!("{}[]", key.path);
                    for (i, item) in items.iter().enumerate() {
                        let s = format!("{shown}[{i}]");
                        match item {
                            Node::Map(_) => self.walk(item, &item_path, &s),
                            other => self.problems.push(format!(
                                "{}: {s}: expected a map of keys, found {}",
                                self.file,
                                other.kind()
                            )),
                        }
                    }
                    self.file_values
                        .insert(key.path, (shown.to_string(), v.clone()));
                }
                other => self.problems.push(format!(
                    "{}: {shown}: expected a list, found {}",
                    self.file,
                    other.kind()
                )),
            },
            _ => {
                // Items of a list of maps are read through their list.
                if !key.path.contains("[]") {
                    self.file_values
                        .insert(key.path, (shown.to_string(), v.clone()));
                }
            }
        }
    }
}

fn join(parent: &str, k: &str) -> String {
    if parent.is_empty() {
        k.to_string()
    } else {
        format!("{parent}.{k}")
    }
}

/// Values from the environment and the command line.
pub(crate) struct Layers {
    /// Table path -> (variable name, value) for OUTPOST_* variables.
    env: HashMap<&'static str, (String, String)>,
    /// Table path -> (variable name, value) from the standard proxy variables.
    proxy_env: HashMap<&'static str, (String, String)>,
    /// Table path -> value from --set.
    sets: HashMap<&'static str, String>,
}

impl Layers {
    fn new(opts: &Options<'_>, problems: &mut Vec<String>) -> Layers {
        let get = |name: &str| {
            opts.env
                .iter()
                .find(|(k, _)| k == name)
                .map(|(k, v)| (k.clone(), v.clone()))
        };
        // The standard proxy variables, through their one reader: each
        // fills its key where the file leaves it unset.
        let std_env = ProxyEnv::from_lookup(&|name: &str| get(name).map(|(_, v)| v));
        let mut proxy_env = HashMap::new();
        for (path, var) in [
            ("stylus.site.network.httpProxy", std_env.proxy_for(false)),
            ("stylus.site.network.httpsProxy", std_env.proxy_for(true)),
            ("stylus.site.network.noProxy", std_env.no_proxy.as_ref()),
        ] {
            if let Some(v) = var {
                proxy_env.insert(path, (v.name.to_string(), v.value.clone()));
            }
        }
        let mut env = HashMap::new();
        for (name, value) in &opts.env {
            if !name.starts_with("OUTPOST_") || name.starts_with("OUTPOST_TEST_") {
                continue;
            }
            match keys::by_env(name) {
                Some(k) => {
                    env.insert(k.path, (name.clone(), value.clone()));
                }
                None => log::debug!("ignoring unknown variable {name}"),
            }
        }
        let mut sets = HashMap::new();
        for (k, v) in &opts.sets {
            match keys::lookup(k) {
                Some(key) if key.secret => problems.push(format!(
                    "--set {k}: a secret is never taken from the command line; use {} or the config file",
                    key.env.unwrap_or(keys::TOKEN_ENV)
                )),
                Some(key) if matches!(key.read, keys::Read::Value(_)) => {
                    sets.insert(key.path, v.clone());
                }
                Some(key) if matches!(key.ty, Ty::Str | Ty::Bool | Ty::Int | Ty::List) => problems.push(format!("--set {k}: read from the config file only")),
                Some(_) => problems.push(format!("--set {k}: only single values can be set on the command line")),
                None => {
                    let (parent, last) = k.rsplit_once('.').unwrap_or(("", k));
                    let hint = keys::suggest(parent, last)
                        .map(|c| format!("; did you mean {}?", join(parent, c)))
                        .unwrap_or_default();
                    problems.push(format!("--set {k}: unknown key{hint}"));
                }
            }
        }
        Layers {
            env,
            proxy_env,
            sets,
        }
    }
}

/// One raw value chosen by precedence, with its source and where to blame.
pub(crate) struct Raw {
    pub node: Node,
    pub source: Source,
    /// "FILE: stylus.site.x", "OUTPOST_X", "--set stylus.site.x".
    pub at: String,
}

/// The highest-precedence raw value of a key.
pub(crate) fn pick(
    path: &'static str,
    file_values: &HashMap<&'static str, (String, Node)>,
    layers: &Layers,
    file: &str,
) -> Option<Raw> {
    if let Some(v) = layers.sets.get(path) {
        return Some(Raw {
            node: Node::Str(v.clone()),
            source: Source::Flag,
            at: format!("--set {path}"),
        });
    }
    if let Some((name, v)) = layers.env.get(path) {
        return Some(Raw {
            node: Node::Str(v.clone()),
            source: Source::Env(name.clone()),
            at: name.clone(),
        });
    }
    if let Some((shown, n)) = file_values.get(path) {
        if *n != Node::Null {
            return Some(Raw {
                node: n.clone(),
                source: Source::File,
                at: format!("{file}: {shown}"),
            });
        }
    }
    layers.proxy_env.get(path).map(|(name, v)| Raw {
        node: Node::Str(v.clone()),
        source: Source::Env(name.clone()),
        at: name.clone(),
    })
}

#[cfg(test)]
mod tests;
