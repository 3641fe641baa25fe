//! The HTTPS transport: the only module that names `ureq` (and `rustls`).
//!
//! It builds one ureq agent per request from `HttpSettings`: rustls with the
//! ring provider, trust roots = the system CA bundle found under the root +
//! the configured extra CAs, connect and global timeouts, a response-body cap,
//! 16 KiB I/O buffers, user agent `outpost/<version>`, HTTPS only (plain HTTP
//! only to loopback behind an explicit test switch), no redirects followed,
//! and a proxy chosen here per request (settings proxy over the standard
//! variables; `noProxy` matched by `noproxy.rs`, CIDRs included). ureq's own
//! environment proxy reading is never used.
//!
//! Every failure becomes an `Error` with one exit code (DESIGN.md table) and a
//! one-line message "METHOD URL: cause", where URL has no userinfo and no
//! query. It must not log or print request headers or bodies (tokens), nor a
//! proxy URL's credentials, and it must not decide what a status means for
//! the protocol beyond transport classes (3xx, 408, 429, 5xx).

mod download;

use crate::error::{Code, Error, Result};
use crate::noproxy::NoProxy;
use crate::sys::Root;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use ureq::http::Uri;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};

/// Default response-body cap: 64 KiB.
pub const DEFAULT_BODY_LIMIT: u64 = 64 * 1024;
/// Default connect timeout (TCP + proxy connect).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default global timeout of one request, from DNS to the last body byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Read and write buffer size (ureq's default is 128 KiB each).
pub const IO_BUFFER: usize = 16 * 1024;
/// The longest `Retry-After` value kept (it is only echoed and parsed).
const MAX_RETRY_AFTER_LEN: usize = 64;

/// Where distributions keep their CA bundle, in the order they are tried:
/// Debian/Ubuntu, RHEL/Rocky/Fedora (two), SUSE, Alpine.
pub const SYSTEM_CA_PATHS: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/var/lib/ca-certificates/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Everything the transport needs, filled by the config loader (or a test).
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Bounds the DNS lookup and, separately, the TCP connect (to the server
    /// or the proxy).
    pub connect_timeout: Duration,
    /// Global timeout of one request (DNS, connect, TLS, send, whole answer).
    pub timeout: Duration,
    /// Largest response body accepted; more is exit 12.
    pub body_limit: u64,
    /// Extra trusted CAs (`caCerts`): each entry PEM text (one or more
    /// certificates) or one DER certificate.
    pub extra_ca_pem: Vec<Vec<u8>>,
    /// Skip certificate verification (a loud warning on every request).
    pub insecure_skip_verify: bool,
    /// The configured proxy; wins over the environment variables.
    pub proxy: Option<ProxyUrl>,
    /// The configured bypass list (merged with `NO_PROXY` when the proxy
    /// comes from the environment).
    pub no_proxy: NoProxy,
    /// The standard proxy variables, captured once (`ProxyEnv::from_process`).
    pub proxy_env: ProxyEnv,
    /// Test switch: allow plain `http://` to a loopback address.
    pub allow_plain_loopback: bool,
    pub user_agent: String,
    /// The wall clock (from `Host::now`), to tell a wrong clock from a
    /// certificate that is really not yet valid.
    pub now: SystemTime,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            body_limit: DEFAULT_BODY_LIMIT,
            extra_ca_pem: Vec::new(),
            insecure_skip_verify: false,
            proxy: None,
            no_proxy: NoProxy::default(),
            proxy_env: ProxyEnv::default(),
            allow_plain_loopback: false,
            user_agent: crate::version::user_agent(),
            now: SystemTime::now(),
        }
    }
}

/// A proxy URL: `http://[user[:password]@]host[:port]` (port 80 when
/// omitted; a bare `host:port` means http). `Display` and `Debug` never show
/// the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    host: String,
    port: u16,
    userinfo: Option<String>,
}

impl ProxyUrl {
    /// Parse a proxy URL; the error text never repeats credentials.
    pub fn parse(s: &str) -> std::result::Result<ProxyUrl, String> {
        let s = s.trim();
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "proxy URL scheme {:?} is not supported (only http://)",
                    scheme.chars().take(16).collect::<String>()
                ))
            }
            None => s,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !(path.is_empty() || path == "/") {
            return Err("proxy URL must not have a path".to_string());
        }
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(authority[..i].to_string()), &authority[i + 1..]),
            None => (None, authority),
        };
        let bad_port = || "proxy URL port is not a number 1-65535".to_string();
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| "proxy URL has no ] after the IPv6 address".to_string())?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| bad_port())?,
                None if after.is_empty() => 80,
                None => return Err("proxy URL has text after ]".to_string()),
            };
            (format!("[{h}]"), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| bad_port())?),
                None => (hostport.to_string(), 80),
            }
        };
        if port == 0 {
            return Err(bad_port());
        }
        let host_ok = |c: char| c.is_ascii_alphanumeric() || "-._[]:".contains(c);
        if host.is_empty() || !host.chars().all(host_ok) {
            return Err("proxy URL has no valid host".to_string());
        }
        Ok(ProxyUrl {
            host: host.to_ascii_lowercase(),
            port,
            userinfo,
        })
    }

    pub fn has_credentials(&self) -> bool {
        self.userinfo.is_some()
    }

    /// The full URL with credentials, for ureq only.
    fn secret_url(&self) -> String {
        match &self.userinfo {
            Some(u) => format!("http://{u}@{}:{}", self.host, self.port),
            None => self.to_string(),
        }
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let creds = if self.userinfo.is_some() {
            " (with credentials)"
        } else {
            ""
        };
        write!(f, "ProxyUrl({self}{creds})")
    }
}

/// The standard proxy variables, captured once. `Debug` shows only which are set.
#[derive(Clone, Default)]
pub struct ProxyEnv {
    /// `https_proxy`, else `HTTPS_PROXY`.
    pub https_proxy: Option<String>,
    /// `http_proxy`, else `HTTP_PROXY` (used for plain-http loopback tests only).
    pub http_proxy: Option<String>,
    /// `all_proxy`, else `ALL_PROXY`.
    pub all_proxy: Option<String>,
    /// `no_proxy`, else `NO_PROXY`.
    pub no_proxy: Option<String>,
}

impl ProxyEnv {
    /// Read the variables of this process (lower case first, as curl does).
    pub fn from_process() -> ProxyEnv {
        ProxyEnv::from_lookup(&|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> ProxyEnv {
        let pick = |lower: &str| {
            get(lower)
                .or_else(|| get(&lower.to_ascii_uppercase()))
                .filter(|v| !v.trim().is_empty())
        };
        ProxyEnv {
            https_proxy: pick("https_proxy"),
            http_proxy: pick("http_proxy"),
            all_proxy: pick("all_proxy"),
            no_proxy: pick("no_proxy"),
        }
    }
}

impl fmt::Debug for ProxyEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyEnv")
            .field("https_proxy", &self.https_proxy.is_some())
            .field("http_proxy", &self.http_proxy.is_some())
            .field("all_proxy", &self.all_proxy.is_some())
            .field("no_proxy", &self.no_proxy.is_some())
            .finish()
    }
}

/// How one request leaves the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Direct,
    Proxy(ProxyUrl),
}

/// Decide direct or proxy for `host:port` (pure). The settings proxy with the
/// settings `noProxy` wins; otherwise the variables (`https_proxy` or
/// `all_proxy` for https, `http_proxy` or `all_proxy` for http) with
/// `no_proxy` merged into the settings list.
pub fn route(settings: &HttpSettings, https: bool, host: &str, port: u16) -> Result<Route> {
    if let Some(p) = &settings.proxy {
        return Ok(if settings.no_proxy.matches(host, port) {
            Route::Direct
        } else {
            Route::Proxy(p.clone())
        });
    }
    let env = &settings.proxy_env;
    let (name, value) = match (https, &env.https_proxy, &env.http_proxy, &env.all_proxy) {
        (true, Some(v), _, _) => ("HTTPS_PROXY", v),
        (false, _, Some(v), _) => ("HTTP_PROXY", v),
        (_, _, _, Some(v)) => ("ALL_PROXY", v),
        _ => return Ok(Route::Direct),
    };
    let proxy = ProxyUrl::parse(value).map_err(|e| Error::config(format!("{name}: {e}")))?;
    let mut bypass = settings.no_proxy.clone();
    if let Some(list) = &env.no_proxy {
        let (np, bad) = NoProxy::parse_lenient(list);
        for b in bad {
            log::warn!("NO_PROXY: ignoring {b}");
        }
        bypass = bypass.merged(&np);
    }
    Ok(if bypass.matches(host, port) {
        Route::Direct
    } else {
        Route::Proxy(proxy)
    })
}

/// A CA bundle file found under the root.
#[derive(Clone, Debug)]
pub struct CaBundle {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

/// Read the first system CA bundle that exists under `root`
/// (`SYSTEM_CA_PATHS`). `Ok(None)` when none exists; an existing file that
/// cannot be read is an error.
pub fn read_system_ca(root: &Root) -> Result<Option<CaBundle>> {
    for p in SYSTEM_CA_PATHS {
        let path = root.path(p);
        match std::fs::read(&path) {
            Ok(pem) => return Ok(Some(CaBundle { path, pem })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("reading CA bundle", &path, &e)),
        }
    }
    Ok(None)
}

/// A successful exchange: any status that is not a transport failure
/// (2xx, and 4xx other than 408, for the protocol layer to interpret).
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// The raw `Retry-After` header (see `schedule::parse_retry_after`).
    pub retry_after: Option<String>,
    /// The body, valid UTF-8, at most `body_limit` bytes.
    pub body: String,
    /// "METHOD URL" without credentials or query, for error messages.
    pub what: String,
}

impl Reply {
    /// Parse the body as JSON into `T`; `describe` names the document in the
    /// error ("check-in answer"). Not JSON at all and JSON of the wrong shape
    /// are told apart; both are exit 12.
    pub fn json<T: miniserde::Deserialize>(&self, describe: &str) -> Result<T> {
        if miniserde::json::from_str::<miniserde::json::Value>(&self.body).is_err() {
            return Err(Error::new(
                Code::BadAnswer,
                format!("{}: response body is not valid JSON", self.what),
            ));
        }
        miniserde::json::from_str::<T>(&self.body).map_err(|_| {
            Error::new(
                Code::BadAnswer,
                format!(
                    "{}: response JSON is not a valid {describe} (wrong type or missing field)",
                    self.what
                ),
            )
        })
    }
}

/// A failed request: the error, plus the server's `Retry-After` when it sent one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    pub error: Error,
    pub retry_after: Option<String>,
}

impl From<Error> for HttpError {
    fn from(error: Error) -> HttpError {
        HttpError {
            error,
            retry_after: None,
        }
    }
}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Error {
        e.error
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

/// The transport, ready to send requests.
pub struct Client {
    settings: HttpSettings,
    roots: Roots,
}

#[derive(Clone)]
enum Roots {
    Specific(Arc<Vec<Certificate<'static>>>),
    #[cfg(feature = "webpki-roots")]
    Bundled,
    NoneNeeded,
}

impl Client {
    /// Build the transport: trust = `system` bundle (see `read_system_ca`) +
    /// `settings.extra_ca_pem`. Neither present is exit 16 (nothing could be
    /// trusted), unless verification is off, or the `webpki-roots` feature
    /// supplies the bundled Mozilla set.
    pub fn new(settings: HttpSettings, system: Option<&CaBundle>) -> Result<Client> {
        // ring is the only provider compiled in; a second call finds it set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut certs: Vec<Certificate<'static>> = Vec::new();
        if let Some(bundle) = system {
            let (ders, bad) = pem_certificates(&bundle.pem);
            log::debug!(
                "{} CA certificates from {} ({bad} unreadable blocks skipped)",
                ders.len(),
                bundle.path.display()
            );
            if ders.is_empty() {
                log::warn!("no certificates in CA bundle {}", bundle.path.display());
            }
            certs.extend(ders.iter().map(|d| Certificate::from_der(d).to_owned()));
        }
        for (i, data) in settings.extra_ca_pem.iter().enumerate() {
            for c in parse_extra_ca(i, data)? {
                certs.push(c);
            }
        }
        let roots = if settings.insecure_skip_verify {
            Roots::NoneNeeded
        } else if !certs.is_empty() {
            Roots::Specific(Arc::new(certs))
        } else {
            no_roots()?
        };
        Ok(Client { settings, roots })
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// POST a JSON body with extra headers (e.g. Authorization; never logged).
    pub fn post_json(
        &self,
        url: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> std::result::Result<Reply, HttpError> {
        self.send("POST", url, Some(body), headers)
    }

    /// GET (probes).
    pub fn get(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> std::result::Result<Reply, HttpError> {
        self.send("GET", url, None, headers)
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> std::result::Result<Reply, HttpError> {
        let target = Target::parse(url).map_err(|e| Error::config(format!("{method} {e}")))?;
        let what = format!("{method} {}", target.safe);
        let plain_ok = self.settings.allow_plain_loopback && target.is_loopback();
        if !target.https && !plain_ok {
            return Err(
                Error::config(format!("{what}: plain http:// is refused; use https://")).into(),
            );
        }
        let route = route(&self.settings, target.https, &target.host, target.port)?;
        log::debug!(
            "{what}{}",
            match &route {
                Route::Direct => String::new(),
                Route::Proxy(p) => format!(" via proxy {p}"),
            }
        );
        if self.settings.insecure_skip_verify && target.https {
            log::warn!("{what}: certificate verification is OFF (insecure)");
        }
        let agent = self.agent(&route)?;
        let ctx = Ctx {
            what: &what,
            target: &target,
            route: &route,
            settings: &self.settings,
        };
        let sent = match body {
            Some(b) => {
                let mut req = agent.post(url).header("Content-Type", "application/json");
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.send(b)
            }
            None => {
                let mut req = agent.get(url);
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.call()
            }
        };
        let mut resp = sent.map_err(|e| ctx.classify(&e))?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.trim()
                        .chars()
                        .take(MAX_RETRY_AFTER_LEN)
                        .collect::<String>()
                })
        };
        let retry_after = header("retry-after");
        let location = header("location");
        if (300..400).contains(&status) {
            let to = location
                .as_deref()
                .and_then(|l| Target::parse(l).ok())
                .map(|t| format!(" to {}", t.safe))
                .unwrap_or_default();
            return Err(Error::new(
                Code::BadAnswer,
                format!(
                    "{what}: unexpected redirect (HTTP {status}{to}); redirects are not followed"
                ),
            )
            .into());
        }
        if status == 408 || status == 429 || status >= 500 {
            let ra = retry_after
                .as_deref()
                .map(|r| format!(" (Retry-After: {r})"))
                .unwrap_or_default();
            let kind = if status >= 500 && status != 503 {
                "server error"
            } else {
                "server busy"
            };
            return Err(HttpError {
                error: Error::new(
                    Code::ServerBusy,
                    format!("{what}: {kind}: HTTP {status}{ra}"),
                ),
                retry_after,
            });
        }
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(self.settings.body_limit)
            .read_to_vec()
            .map_err(|e| ctx.classify(&e))?;
        let body = String::from_utf8(bytes).map_err(|_| {
            Error::new(
                Code::BadAnswer,
                format!("{what}: response body is not valid UTF-8"),
            )
        })?;
        Ok(Reply {
            status,
            retry_after,
            body,
            what,
        })
    }

    fn agent(&self, route: &Route) -> Result<ureq::Agent> {
        let tls = TlsConfig::builder().provider(TlsProvider::Rustls);
        let tls = match &self.roots {
            Roots::Specific(certs) => tls.root_certs(RootCerts::Specific(certs.clone())),
            #[cfg(feature = "webpki-roots")]
            Roots::Bundled => tls.root_certs(RootCerts::WebPki),
            Roots::NoneNeeded => tls.disable_verification(true),
        };
        let proxy = match route {
            Route::Direct => None,
            Route::Proxy(p) => Some(
                ureq::Proxy::new(&p.secret_url())
                    .map_err(|_| Error::config(format!("proxy {p}: not a usable proxy URL")))?,
            ),
        };
        let s = &self.settings;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Checked above, with the loopback exception ureq does not know.
            .https_only(false)
            .max_redirects(0)
            .proxy(proxy)
            .timeout_global(Some(s.timeout))
            // The connect timeout bounds the DNS lookup as well.
            .timeout_resolve(Some(s.connect_timeout.min(s.timeout)))
            .timeout_connect(Some(s.connect_timeout))
            .user_agent(s.user_agent.as_str())
            .input_buffer_size(IO_BUFFER)
            .output_buffer_size(IO_BUFFER)
            .max_idle_connections(0)
            .tls_config(tls.build())
            .build();
        Ok(ureq::Agent::new_with_config(config))
    }
}

#[cfg(not(feature = "webpki-roots"))]
fn no_roots() -> Result<Roots> {
    Err(Error::new(
        Code::Untrusted,
        format!(
            "no trusted CA certificates: no system CA bundle found ({}) and no caCerts configured",
            SYSTEM_CA_PATHS.join(", ")
        ),
    ))
}

#[cfg(feature = "webpki-roots")]
fn no_roots() -> Result<Roots> {
    log::info!("no system CA bundle and no caCerts: using the bundled Mozilla root set");
    Ok(Roots::Bundled)
}

/// The DER of every `CERTIFICATE` block in PEM text, and how many blocks did
/// not decode (skipped). A system CA bundle is public data, so a plain
/// table-driven base64 decoder is used: the constant-time one behind
/// `ureq::tls::parse_pem` cost about 8 M instructions for Debian's 144
/// certificates, two thirds of a whole check-in (scripts/bench.d/50-http).
fn pem_certificates(pem: &[u8]) -> (Vec<Vec<u8>>, usize) {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut bad = 0;
    let mut block: Option<Base64> = None;
    for line in pem.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line == BEGIN {
            if block.is_some() {
                bad += 1;
            }
            // A CA certificate is typically 0.8-1.5 KB of DER.
            block = Some(Base64 {
                out: Vec::with_capacity(2048),
                ..Base64::default()
            });
        } else if line == END {
            if let Some(b) = block.take() {
                match b.finish() {
                    Some(der) => out.push(der),
                    None => bad += 1,
                }
            }
        } else if let Some(b) = block.as_mut() {
            b.feed(line);
        }
    }
    if block.is_some() {
        bad += 1;
    }
    (out, bad)
}

const B64_BAD: u8 = 0xFF;
const B64_PAD: u8 = 0xFE;
/// Standard base64 alphabet: value of each byte, or `B64_BAD` / `B64_PAD`.
static B64: [u8; 256] = {
    let mut t = [B64_BAD; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t[b'=' as usize] = B64_PAD;
    t
};

/// Incremental standard-alphabet base64 decoding (padding optional).
#[derive(Default)]
struct Base64 {
    out: Vec<u8>,
    acc: u32,
    bits: u32,
    ended: bool,
    invalid: bool,
}

impl Base64 {
    /// Feed one line; a character outside base64 spoils the block.
    fn feed(&mut self, line: &[u8]) {
        if self.invalid {
            return;
        }
        let mut i = 0;
        // Fast path: whole groups of four plain characters, 3 bytes each,
        // written in place (a call per group would cost more than decoding).
        if self.bits == 0 && !self.ended {
            let start = self.out.len();
            self.out.resize(start + line.len() / 4 * 3, 0);
            let mut o = start;
            while i + 4 <= line.len() {
                let g = &line[i..i + 4];
                let (a, b, c, d) = (
                    B64[usize::from(g[0])],
                    B64[usize::from(g[1])],
                    B64[usize::from(g[2])],
                    B64[usize::from(g[3])],
                );
                if (a | b | c | d) & 0xC0 != 0 {
                    break;
                }
                let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
                self.out[o] = (n >> 16) as u8;
                self.out[o + 1] = (n >> 8) as u8;
                self.out[o + 2] = n as u8;
                o += 3;
                i += 4;
            }
            self.out.truncate(o);
        }
        for &c in &line[i..] {
            let v = B64[usize::from(c)];
            if v == B64_PAD {
                self.ended = true;
                continue;
            }
            if v == B64_BAD || self.ended {
                self.invalid = true;
                return;
            }
            self.acc = (self.acc << 6) | u32::from(v);
            self.bits += 6;
            if self.bits >= 8 {
                self.bits -= 8;
                self.out.push((self.acc >> self.bits) as u8);
            }
        }
    }

    fn finish(self) -> Option<Vec<u8>> {
        // Leftover bits must be padding zeros (fewer than a byte).
        let clean = !self.invalid && self.acc & ((1 << self.bits) - 1) == 0;
        (clean && !self.out.is_empty()).then_some(self.out)
    }
}

/// One `caCerts` entry: PEM text (every certificate in it) or one DER certificate.
fn parse_extra_ca(index: usize, data: &[u8]) -> Result<Vec<Certificate<'static>>> {
    let bad = |why: &str| Error::config(format!("caCerts entry {}: {why}", index + 1));
    let text = String::from_utf8_lossy(&data[..data.len().min(64)]);
    let certs: Vec<Certificate<'static>> = if text.trim_start().starts_with("-----BEGIN") {
        let mut v = Vec::new();
        for item in ureq::tls::parse_pem(data) {
            match item {
                Ok(PemItem::Certificate(c)) => v.push(c),
                Ok(_) => {}
                Err(_) => return Err(bad("PEM data cannot be decoded")),
            }
        }
        v
    } else {
        vec![Certificate::from_der(data).to_owned()]
    };
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block in the PEM data"));
    }
    for c in &certs {
        let der = rustls::pki_types::CertificateDer::from(c.der().to_vec());
        rustls::RootCertStore::empty()
            .add(der)
            .map_err(|_| bad("not a usable X.509 CA certificate"))?;
    }
    Ok(certs)
}

/// A parsed request URL.
struct Target {
    https: bool,
    host: String,
    port: u16,
    /// scheme://host[:port]/path, no userinfo, no query.
    safe: String,
}

impl Target {
    fn parse(url: &str) -> std::result::Result<Target, String> {
        if !url.contains("://") {
            return Err("URL must start with https://".to_string());
        }
        let uri: Uri = url
            .parse()
            .map_err(|_| "URL cannot be parsed".to_string())?;
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => return Err("URL must start with https://".to_string()),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| "URL has no host".to_string())?
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let scheme = if https { "https" } else { "http" };
        let port_text = uri
            .port()
            .map(|p| format!(":{}", p.as_str()))
            .unwrap_or_default();
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        Ok(Target {
            https,
            safe: format!("{scheme}://{host}{port_text}{path}"),
            host,
            port,
        })
    }

    fn is_loopback(&self) -> bool {
        let h = self.host.trim_start_matches('[').trim_end_matches(']');
        h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// What a failure is reported against.
struct Ctx<'a> {
    what: &'a str,
    target: &'a Target,
    route: &'a Route,
    settings: &'a HttpSettings,
}

impl Ctx<'_> {
    fn fail(&self, code: Code, cause: impl fmt::Display) -> HttpError {
        Error::new(code, format!("{}: {cause}", self.what)).into()
    }

    fn secs(d: Duration) -> String {
        let ms = d.as_millis();
        if ms % 1000 == 0 {
            format!("{} s", ms / 1000)
        } else {
            format!("{:.1} s", d.as_secs_f64())
        }
    }

    fn classify(&self, e: &ureq::Error) -> HttpError {
        use ureq::Error as E;
        let proxy = match self.route {
            Route::Proxy(p) => Some(p),
            Route::Direct => None,
        };
        match e {
            E::Timeout(t) => {
                let cause = match t {
                    ureq::Timeout::Connect => match proxy {
                        Some(p) => format!(
                            "connecting to proxy {p} timed out after {}",
                            Self::secs(self.settings.connect_timeout)
                        ),
                        None => format!(
                            "connect timed out after {}",
                            Self::secs(self.settings.connect_timeout)
                        ),
                    },
                    ureq::Timeout::Resolve => format!(
                        "cannot resolve host {} (DNS lookup timed out after {})",
                        self.target.host,
                        Self::secs(self.settings.connect_timeout.min(self.settings.timeout))
                    ),
                    _ => format!(
                        "no complete answer within {} (timeout)",
                        Self::secs(self.settings.timeout)
                    ),
                };
                self.fail(Code::Network, cause)
            }
            E::HostNotFound => match proxy {
                Some(p) => self.fail(Code::Network, format!("cannot resolve proxy host of {p}")),
                None => self.fail(
                    Code::Network,
                    format!("cannot resolve host {}", self.target.host),
                ),
            },
            E::ConnectionFailed => match proxy {
                Some(p) => self.fail(Code::Network, format!("cannot connect to proxy {p}")),
                None => self.fail(Code::Network, "cannot connect"),
            },
            E::ConnectProxyFailed(msg) => {
                let p = proxy.map(|p| p.to_string()).unwrap_or_default();
                let status = msg
                    .strip_prefix("proxy server responded ")
                    .and_then(|r| r.split('/').next())
                    .and_then(|n| n.parse::<u16>().ok());
                let cause = match status {
                    Some(n @ (401 | 407)) => format!("HTTP {n} (proxy authentication failed)"),
                    Some(n) => format!("HTTP {n}"),
                    None => msg.chars().filter(|c| !c.is_control()).take(80).collect(),
                };
                self.fail(Code::Network, format!("proxy {p} refused CONNECT: {cause}"))
            }
            E::BodyExceedsLimit(_) => self.fail(
                Code::BadAnswer,
                format!(
                    "response body larger than {} bytes",
                    self.settings.body_limit
                ),
            ),
            E::Rustls(r) => self.tls(r),
            E::Io(io) => {
                if let Some(r) = io
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                {
                    return self.tls(r);
                }
                let cause = match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => match proxy {
                        Some(p) => format!("cannot connect to proxy {p}: connection refused"),
                        None => "connection refused".to_string(),
                    },
                    // ureq reports a reset while reading as UnexpectedEof too.
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => {
                        "connection closed or reset before the answer was complete".to_string()
                    }
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => format!(
                        "no complete answer within {} (timeout)",
                        Self::secs(self.settings.timeout)
                    ),
                    _ if is_dns_failure(io) => format!("cannot resolve host {}", self.target.host),
                    _ => crate::error::io_text(io),
                };
                self.fail(Code::Network, cause)
            }
            E::Protocol(p) => self.fail(Code::BadAnswer, format!("malformed HTTP answer: {p}")),
            E::LargeResponseHeader(_, _) => {
                self.fail(Code::BadAnswer, "response headers too large")
            }
            E::BadUri(_) => self.fail(Code::Config, "URL cannot be used"),
            E::Http(_) => self.fail(
                Code::Config,
                "request cannot be built (invalid URL or header value)",
            ),
            E::InvalidProxyUrl => self.fail(Code::Config, "proxy URL cannot be used"),
            E::Tls(msg) => self.fail(Code::Untrusted, format!("TLS: {msg}")),
            E::TooManyRedirects | E::RedirectFailed => self.fail(
                Code::BadAnswer,
                "unexpected redirect; redirects are not followed",
            ),
            E::BodyStalled => self.fail(Code::Network, "response body stalled"),
            other => self.fail(Code::Network, other),
        }
    }

    fn tls(&self, e: &rustls::Error) -> HttpError {
        let (code, cause) = tls_cause(e, self.settings.now, crate::version::build_epoch());
        self.fail(code, cause)
    }
}

/// musl's getaddrinfo failures arrive as io errors of kind `Other` (or
/// `Uncategorized`) with a resolver message.
fn is_dns_failure(e: &std::io::Error) -> bool {
    let t = e.to_string().to_ascii_lowercase();
    t.contains("lookup") || t.contains("name") && t.contains("resol") || t.contains("getaddrinfo")
}

/// Classify a rustls error (pure, unit-tested): exit code and cause text.
/// "Not yet valid" with a clock earlier than the build says the clock is
/// wrong (exit 10, retryable), not the certificate.
pub fn tls_cause(e: &rustls::Error, now: SystemTime, build_epoch: u64) -> (Code, String) {
    use rustls::CertificateError as C;
    let untrusted = |s: &str| {
        (
            Code::Untrusted,
            format!("server certificate not trusted: {s}"),
        )
    };
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => untrusted("unknown issuer (not signed by a trusted CA)"),
            C::Expired | C::ExpiredContext { .. } => untrusted("certificate expired"),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                let now_s = now
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                if now_s < build_epoch {
                    (
                        Code::Network,
                        format!(
                            "server certificate not yet valid and the system clock ({}) is \
                             earlier than this agent's build ({}): clock not yet valid, set the \
                             clock (NTP) and retry",
                            crate::timefmt::rfc3339(now_s),
                            crate::timefmt::rfc3339(build_epoch)
                        ),
                    )
                } else {
                    untrusted("certificate not yet valid")
                }
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                untrusted("name mismatch (certificate not valid for this host)")
            }
            C::Revoked => untrusted("certificate revoked"),
            C::BadSignature => untrusted("bad signature"),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                untrusted("certificate not valid for TLS server use")
            }
            C::BadEncoding => untrusted("malformed certificate"),
            other => untrusted(&format!("{other:?}")),
        },
        other => (
            Code::Network,
            format!(
                "TLS handshake failed: {}",
                other.to_string().chars().take(120).collect::<String>()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        // (input, Display or error)
        let cases: &[(&str, std::result::Result<&str, &str>)] = &[
            ("http://proxy.corp:3128", Ok("http://proxy.corp:3128")),
            ("HTTP://Proxy.Corp:3128/", Ok("http://proxy.corp:3128")),
            ("proxy.corp:8080", Ok("http://proxy.corp:8080")),
            ("proxy.corp", Ok("http://proxy.corp:80")),
            (
                "http://user:s3cret@proxy.corp:3128",
                Ok("http://proxy.corp:3128"),
            ),
            (
                "http://us%40er:p%3Ass@10.0.0.1:3128",
                Ok("http://10.0.0.1:3128"),
            ),
            ("http://[fd00::1]:3128", Ok("http://[fd00::1]:3128")),
            ("http://[fd00::1]", Ok("http://[fd00::1]:80")),
            (
                "socks5://user:s3cret@h:1080",
                Err("proxy URL scheme \"socks5\" is not supported (only http://)"),
            ),
            (
                "https://h:443",
                Err("proxy URL scheme \"https\" is not supported (only http://)"),
            ),
            (
                "http://user:s3cret@h:99999",
                Err("proxy URL port is not a number 1-65535"),
            ),
            (
                "http://user:s3cret@h:0",
                Err("proxy URL port is not a number 1-65535"),
            ),
            ("http://h:3128/path", Err("proxy URL must not have a path")),
            ("http://user:s3cret@", Err("proxy URL has no valid host")),
            (
                "http://[fd00::1:3128",
                Err("proxy URL has no ] after the IPv6 address"),
            ),
        ];
        for (input, want) in cases {
            let got = ProxyUrl::parse(input).map(|p| p.to_string());
            let got = got.as_ref().map(|s| s.as_str()).map_err(|e| e.as_str());
            assert_eq!(got, *want, "proxy {input:?}");
            if let Ok(p) = ProxyUrl::parse(input) {
                let dbg = format!("{p:?}");
                assert!(
                    !dbg.contains("s3cret") && !dbg.contains("user"),
                    "{input}: {dbg}"
                );
            }
        }
        let p = ProxyUrl::parse("http://u:p%3Ass@h:1").expect("parse");
        assert!(p.has_credentials());
        assert_eq!(
            p.secret_url(),
            "http://u:p%3Ass@h:1",
            "credentials kept for ureq"
        );
    }

    fn env(https: Option<&str>, all: Option<&str>, no: Option<&str>) -> ProxyEnv {
        ProxyEnv {
            https_proxy: https.map(String::from),
            http_proxy: None,
            all_proxy: all.map(String::from),
            no_proxy: no.map(String::from),
        }
    }

    #[test]
    fn routes() {
        let p = |s: &str| Route::Proxy(ProxyUrl::parse(s).expect("proxy"));
        let settings_proxy = ProxyUrl::parse("http://cfg:3128").ok();
        // (settings proxy, settings noProxy, env, host, want)
        let cases: Vec<(Option<ProxyUrl>, &str, ProxyEnv, &str, Route)> = vec![
            (None, "", ProxyEnv::default(), "hub.example", Route::Direct),
            (
                None,
                "",
                env(Some("http://envp:1"), None, None),
                "hub.example",
                p("http://envp:1"),
            ),
            (
                None,
                "",
                env(None, Some("http://allp:2"), None),
                "hub.example",
                p("http://allp:2"),
            ),
            (
                None,
                "",
                env(Some("http://envp:1"), Some("http://allp:2"), None),
                "hub.example",
                p("http://envp:1"),
            ),
            (
                None,
                "",
                env(Some("http://envp:1"), None, Some("10.0.0.0/8")),
                "10.2.3.4",
                Route::Direct,
            ),
            (
                None,
                "hub.example",
                env(Some("http://envp:1"), None, Some("x.example")),
                "hub.example",
                Route::Direct,
            ),
            (
                None,
                "",
                env(Some("http://envp:1"), None, Some("x.example")),
                "hub.example",
                p("http://envp:1"),
            ),
            // The settings proxy wins, and only the settings noProxy counts then.
            (
                settings_proxy.clone(),
                "",
                env(Some("http://envp:1"), None, None),
                "hub.example",
                p("http://cfg:3128"),
            ),
            (
                settings_proxy.clone(),
                "",
                env(Some("http://envp:1"), None, Some("*")),
                "hub.example",
                p("http://cfg:3128"),
            ),
            (
                settings_proxy.clone(),
                "127.0.0.0/8",
                ProxyEnv::default(),
                "127.0.0.1",
                Route::Direct,
            ),
            (
                settings_proxy.clone(),
                ".example",
                ProxyEnv::default(),
                "hub.example",
                Route::Direct,
            ),
        ];
        for (i, (proxy, no, env, host, want)) in cases.into_iter().enumerate() {
            let s = HttpSettings {
                proxy,
                no_proxy: NoProxy::parse(no).expect("noProxy"),
                proxy_env: env,
                ..HttpSettings::default()
            };
            assert_eq!(
                route(&s, true, host, 443).expect("route"),
                want,
                "case {i} host {host}"
            );
        }
        let bad = HttpSettings {
            proxy_env: env(Some("socks5://u:pw@h:1"), None, None),
            ..HttpSettings::default()
        };
        let err = route(&bad, true, "h", 443).expect_err("bad env proxy");
        assert_eq!(err.code, Code::Config);
        assert_eq!(
            err.message,
            "HTTPS_PROXY: proxy URL scheme \"socks5\" is not supported (only http://)"
        );
    }

    #[test]
    fn proxy_env_lookup_prefers_lower_case() {
        let vars = [
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:1"),
            ("NO_PROXY", "a.example"),
            ("all_proxy", " "),
        ];
        let get = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let e = ProxyEnv::from_lookup(&get);
        assert_eq!(e.https_proxy.as_deref(), Some("http://lower:1"));
        assert_eq!(e.no_proxy.as_deref(), Some("a.example"));
        assert_eq!(e.all_proxy, None, "blank counts as unset");
        assert!(!format!("{e:?}").contains("lower"), "Debug hides values");
    }

    #[test]
    fn targets_are_named_without_secrets() {
        // (url, safe form or error)
        let cases: &[(&str, std::result::Result<&str, &str>)] = &[
            (
                "https://hub.example/v1/checkin",
                Ok("https://hub.example/v1/checkin"),
            ),
            (
                "https://user:pw@hub.example:8443/x?token=abc",
                Ok("https://hub.example:8443/x"),
            ),
            ("https://HUB.example", Ok("https://hub.example/")),
            ("https://[::1]:9/p", Ok("https://[::1]:9/p")),
            ("http://127.0.0.1:80/p", Ok("http://127.0.0.1:80/p")),
            ("ftp://hub.example/", Err("URL must start with https://")),
            ("hub.example/x", Err("URL must start with https://")),
            ("https://", Err("URL cannot be parsed")),
        ];
        for (url, want) in cases {
            let got = Target::parse(url).map(|t| t.safe);
            let got = got.as_ref().map(|s| s.as_str()).map_err(|e| e.as_str());
            assert_eq!(got, *want, "url {url:?}");
        }
        let loop_cases = [
            ("http://127.0.0.1:1/", true),
            ("http://127.9.9.9:1/", true),
            ("http://[::1]:1/", true),
            ("http://localhost:1/", true),
            ("http://10.0.0.1:1/", false),
            ("http://localhost.example:1/", false),
        ];
        for (url, want) in loop_cases {
            let t = Target::parse(url).expect(url);
            assert_eq!(t.is_loopback(), want, "loopback {url}");
        }
    }

    #[test]
    fn plain_http_is_refused_unless_loopback_switch() {
        let s = HttpSettings {
            insecure_skip_verify: true,
            ..HttpSettings::default()
        };
        // (url, test switch on?) -- refused before any connection is made.
        let cases = [
            ("http://127.0.0.1:9/x", false),
            ("http://localhost:9/x", false),
            ("http://10.0.0.1:9/x", false),
            ("http://10.0.0.1:9/x", true),
            ("http://hub.example:9/x", true),
        ];
        for (url, switch) in cases {
            let settings = HttpSettings {
                allow_plain_loopback: switch,
                ..s.clone()
            };
            let c = Client::new(settings, None).expect("client");
            let err = c.get(url, &[]).expect_err(url);
            assert_eq!(err.error.code, Code::Config, "{url} switch {switch}");
            assert_eq!(
                err.error.message,
                format!("GET {url}: plain http:// is refused; use https://"),
                "{url} switch {switch}"
            );
        }
    }

    #[test]
    fn tls_causes() {
        use rustls::CertificateError as C;
        let build = 1_790_000_000;
        let later = UNIX_EPOCH + Duration::from_secs(build + 86_400);
        let earlier = UNIX_EPOCH + Duration::from_secs(1_577_836_800); // 2020-01-01
        let cases: Vec<(C, SystemTime, Code, &str)> = vec![
            (C::UnknownIssuer, later, Code::Untrusted, "server certificate not trusted: unknown issuer (not signed by a trusted CA)"),
            (C::Expired, later, Code::Untrusted, "server certificate not trusted: certificate expired"),
            (C::NotValidYet, later, Code::Untrusted, "server certificate not trusted: certificate not yet valid"),
            (C::NotValidForName, later, Code::Untrusted, "server certificate not trusted: name mismatch (certificate not valid for this host)"),
            (C::NotValidYet, earlier, Code::Network, "server certificate not yet valid and the system clock (2020-01-01T00:00:00Z) is earlier than this agent's build (2026-09-21T14:13:20Z): clock not yet valid, set the clock (NTP) and retry"),
            // An expired certificate is not excused by a slow clock.
            (C::Expired, earlier, Code::Untrusted, "server certificate not trusted: certificate expired"),
        ];
        for (cause, now, code, msg) in cases {
            let label = format!("{cause:?}");
            let got = tls_cause(&rustls::Error::InvalidCertificate(cause), now, build);
            assert_eq!(got, (code, msg.to_string()), "{label}");
        }
        let other = tls_cause(&rustls::Error::HandshakeNotComplete, later, build);
        assert_eq!(
            other.0,
            Code::Network,
            "handshake failure is a network error"
        );
    }

    #[test]
    fn extra_ca_errors_name_the_entry() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "caCerts entry 1: no CERTIFICATE block in the PEM data",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                "caCerts entry 1: PEM data cannot be decoded",
            ),
            (
                b"\x30\x03\x02\x01\x00",
                "caCerts entry 1: not a usable X.509 CA certificate",
            ),
            (
                b"hello",
                "caCerts entry 1: not a usable X.509 CA certificate",
            ),
        ];
        for (data, want) in cases {
            let s = HttpSettings {
                extra_ca_pem: vec![data.to_vec()],
                ..HttpSettings::default()
            };
            let err = Client::new(s, None).err().expect("bad CA must fail");
            assert_eq!(err.code, Code::Config, "{want}");
            assert_eq!(err.message, *want);
        }
    }

    #[cfg(not(feature = "webpki-roots"))]
    #[test]
    fn no_roots_at_all_is_untrusted() {
        let err = Client::new(HttpSettings::default(), None)
            .err()
            .expect("no roots must fail");
        assert_eq!(err.code, Code::Untrusted);
        assert!(
            err.message.starts_with("no trusted CA certificates: no system CA bundle found (/etc/ssl/certs/ca-certificates.crt, "),
            "{}",
            err.message
        );
    }

    #[test]
    fn system_bundle_is_found_under_the_root() {
        let dir = std::env::temp_dir().join(format!("outpost-http-ca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = Root::new(&dir);
        assert!(
            read_system_ca(&root).expect("empty root").is_none(),
            "empty root"
        );
        // Later paths are found; earlier ones win.
        for (i, p) in SYSTEM_CA_PATHS.iter().enumerate().rev() {
            let path = root.path(p);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, format!("bundle {i}")).expect("write");
            let got = read_system_ca(&root).expect("read").expect("found");
            assert_eq!(got.path, path, "{p}");
            assert_eq!(got.pem, format!("bundle {i}").as_bytes(), "{p}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pem_bundle_decoding() {
        // (PEM text, DER blocks, skipped blocks)
        let b = |s: &str| s.as_bytes().to_vec();
        let cases: Vec<(&str, Vec<Vec<u8>>, usize)> = vec![
            ("", vec![], 0),
            ("junk\nmore junk\n", vec![], 0),
            (
                "-----BEGIN CERTIFICATE-----\nTWFu\n-----END CERTIFICATE-----\n",
                vec![b("Man")],
                0,
            ),
            (
                "# comment\r\n-----BEGIN CERTIFICATE-----\r\nTW\r\nFuTW\r\nE=\r\n-----END CERTIFICATE-----\r\n",
                vec![b("ManMa")],
                0,
            ),
            (
                "-----BEGIN CERTIFICATE-----\nTQ==\n-----END CERTIFICATE-----\n\
                 -----BEGIN PRIVATE KEY-----\nTWFu\n-----END PRIVATE KEY-----\n\
                 -----BEGIN CERTIFICATE-----\nTWE\n-----END CERTIFICATE-----",
                vec![b("M"), b("Ma")],
                0,
            ),
            ("-----BEGIN CERTIFICATE-----\nTW!u\n-----END CERTIFICATE-----\n", vec![], 1),
            ("-----BEGIN CERTIFICATE-----\nTQ==TQ\n-----END CERTIFICATE-----\n", vec![], 1),
            ("-----BEGIN CERTIFICATE-----\nTR\n-----END CERTIFICATE-----\n", vec![], 1),
            ("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", vec![], 1),
            ("-----BEGIN CERTIFICATE-----\nTWFu\n", vec![], 1),
        ];
        for (pem, want, want_bad) in cases {
            let got = pem_certificates(pem.as_bytes());
            assert_eq!(got, (want, want_bad), "PEM {pem:?}");
        }
    }

    #[test]
    fn pem_decoding_agrees_with_ureq_on_the_system_bundle() {
        // The reference decoder on real data, when this machine has a bundle.
        let Some(bundle) = read_system_ca(&Root::system()).expect("reading bundle") else {
            return;
        };
        let reference: Vec<Vec<u8>> = ureq::tls::parse_pem(&bundle.pem)
            .filter_map(|i| match i {
                Ok(PemItem::Certificate(c)) => Some(c.der().to_vec()),
                _ => None,
            })
            .collect();
        let (ours, bad) = pem_certificates(&bundle.pem);
        assert_eq!(bad, 0, "{}", bundle.path.display());
        assert!(
            ours == reference,
            "{}: decoders disagree",
            bundle.path.display()
        );
    }
}
