//! Proxy settings as values: [`ProxyUrl`], the one parser of a proxy URL
//! (the configuration, `probe --proxy` and the standard variables all go
//! through it, so what `config validate` accepts is what the transport
//! speaks), and [`ProxyEnv`], the one reader of the standard proxy
//! variables, with one precedence documented on it.
//!
//! Must not show a proxy's credentials in `Display`, `Debug` or an error.

use std::fmt;

/// A proxy URL: `http://[user[:password]@]host[:port]` (port 80 when
/// omitted; a bare `host:port` means http). `Display` and `Debug` never show
/// the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    host: String,
    port: u16,
    userinfo: Option<String>,
    /// The text as given (trimmed), credentials included.
    given: String,
}

impl ProxyUrl {
    /// Parse a proxy URL. The error names the URL with its credentials
    /// masked (`http://****@host:port`) and says what is wrong.
    pub fn parse(s: &str) -> std::result::Result<ProxyUrl, String> {
        let s = s.trim();
        ProxyUrl::parse_inner(s).map_err(|why| format!("proxy URL {}: {why}", masked(s)))
    }

    fn parse_inner(s: &str) -> std::result::Result<ProxyUrl, String> {
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "scheme {}:// is not supported; use http:// (outpost speaks to proxies over http with CONNECT)",
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
            return Err("must not have a path".to_string());
        }
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(authority[..i].to_string()), &authority[i + 1..]),
            None => (None, authority),
        };
        let bad_port = || "port is not a number 1-65535".to_string();
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| "no ] after the IPv6 address".to_string())?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| bad_port())?,
                None if after.is_empty() => 80,
                None => return Err("text after ]".to_string()),
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
            return Err("no valid host".to_string());
        }
        Ok(ProxyUrl {
            host: host.to_ascii_lowercase(),
            port,
            userinfo,
            given: s.to_string(),
        })
    }

    /// The proxy's host (IPv6 in brackets) and port.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `user[:password]` as given (percent-encoded): only for the
    /// `Proxy-Authorization` header of a CONNECT.
    pub(crate) fn userinfo(&self) -> Option<&str> {
        self.userinfo.as_deref()
    }

    pub fn has_credentials(&self) -> bool {
        self.userinfo.is_some()
    }

    /// The URL exactly as given, credentials included: only for the
    /// service's environment file that `install` writes (mode 0600).
    pub fn as_given(&self) -> &str {
        &self.given
    }

    /// The full URL with credentials, for ureq only.
    pub(crate) fn secret_url(&self) -> String {
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

/// `s` with everything before the last `@` after the scheme replaced by
/// `****`, for messages: a password may hold any character, `/` included.
fn masked(s: &str) -> String {
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), s),
    };
    match rest.rfind('@') {
        Some(at) => format!("{scheme}****{}", &rest[at..]),
        None => s.to_string(),
    }
}

/// One standard proxy variable as found: its exact name and its value.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: &'static str,
    pub value: String,
}

/// The standard proxy variables, read once by [`ProxyEnv::from_lookup`], the
/// only reader of them in outpost (the configuration layers them under the
/// file, `probe` and `install --config URL` route through them). `Debug`
/// shows only which are set.
///
/// Precedence, the same everywhere (curl's):
/// - for each of `https_proxy`, `http_proxy`, `all_proxy`, `no_proxy` the
///   lower-case name wins over the upper-case one; an empty or blank value
///   counts as unset;
/// - an https request uses `https_proxy`, else `all_proxy`; a plain-http
///   request (loopback tests only) uses `http_proxy`, else `all_proxy`;
/// - `no_proxy` adds to the configured `noProxy` list.
#[derive(Clone, Default)]
pub struct ProxyEnv {
    pub https_proxy: Option<EnvVar>,
    pub http_proxy: Option<EnvVar>,
    pub all_proxy: Option<EnvVar>,
    pub no_proxy: Option<EnvVar>,
}

impl ProxyEnv {
    /// Read the variables of this process.
    pub fn from_process() -> ProxyEnv {
        ProxyEnv::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Read the variables through `get` (the process environment, or the
    /// environment a configuration load was given).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> ProxyEnv {
        let pick = |names: [&'static str; 2]| {
            names.into_iter().find_map(|name| {
                get(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|value| EnvVar { name, value })
            })
        };
        ProxyEnv {
            https_proxy: pick(["https_proxy", "HTTPS_PROXY"]),
            http_proxy: pick(["http_proxy", "HTTP_PROXY"]),
            all_proxy: pick(["all_proxy", "ALL_PROXY"]),
            no_proxy: pick(["no_proxy", "NO_PROXY"]),
        }
    }

    /// The variable that names the proxy for a request (see the precedence above).
    pub fn proxy_for(&self, https: bool) -> Option<&EnvVar> {
        let own = if https {
            &self.https_proxy
        } else {
            &self.http_proxy
        };
        own.as_ref().or(self.all_proxy.as_ref())
    }
}

impl fmt::Debug for ProxyEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |v: &Option<EnvVar>| v.as_ref().map(|v| v.name);
        f.debug_struct("ProxyEnv")
            .field("https_proxy", &name(&self.https_proxy))
            .field("http_proxy", &name(&self.http_proxy))
            .field("all_proxy", &name(&self.all_proxy))
            .field("no_proxy", &name(&self.no_proxy))
            .finish()
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
                Err("proxy URL socks5://****@h:1080: scheme socks5:// is not supported; use http:// (outpost speaks to proxies over http with CONNECT)"),
            ),
            (
                "https://h:443",
                Err("proxy URL https://h:443: scheme https:// is not supported; use http:// (outpost speaks to proxies over http with CONNECT)"),
            ),
            (
                "http://user:s3cret@h:99999",
                Err("proxy URL http://****@h:99999: port is not a number 1-65535"),
            ),
            (
                "http://user:s3cret@h:0",
                Err("proxy URL http://****@h:0: port is not a number 1-65535"),
            ),
            (
                "http://h:3128/path",
                Err("proxy URL http://h:3128/path: must not have a path"),
            ),
            (
                "http://user:s3cret@",
                Err("proxy URL http://****@: no valid host"),
            ),
            (
                "ftp://user:s3/cret@proxy:1",
                Err("proxy URL ftp://****@proxy:1: scheme ftp:// is not supported; use http:// (outpost speaks to proxies over http with CONNECT)"),
            ),
            (
                "http://[fd00::1:3128",
                Err("proxy URL http://[fd00::1:3128: no ] after the IPv6 address"),
            ),
        ];
        for (input, want) in cases {
            let got = ProxyUrl::parse(input).map(|p| p.to_string());
            let got = got.as_ref().map(|s| s.as_str()).map_err(|e| e.as_str());
            assert_eq!(got, *want, "proxy {input:?}");
            if let Err(e) = ProxyUrl::parse(input) {
                assert!(!e.contains("s3cret"), "{input}: {e}");
            }
            if let Ok(p) = ProxyUrl::parse(input) {
                let dbg = format!("{p:?}");
                assert!(
                    !dbg.contains("s3cret") && !dbg.contains("user"),
                    "{input}: {dbg}"
                );
            }
        }
        let p = ProxyUrl::parse(" http://u:p%3Ass@H:1 ").expect("parse");
        assert!(p.has_credentials());
        assert_eq!(p.as_given(), "http://u:p%3Ass@H:1");
        assert_eq!(
            p.secret_url(),
            "http://u:p%3Ass@h:1",
            "credentials kept for ureq"
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
        let val = |v: &Option<EnvVar>| v.as_ref().map(|v| (v.name, v.value.clone()));
        assert_eq!(
            val(&e.https_proxy),
            Some(("https_proxy", "http://lower:1".to_string()))
        );
        assert_eq!(
            val(&e.no_proxy),
            Some(("NO_PROXY", "a.example".to_string()))
        );
        assert_eq!(val(&e.all_proxy), None, "blank counts as unset");
        assert_eq!(
            e.proxy_for(true).map(|v| v.name),
            Some("https_proxy"),
            "https_proxy before all_proxy"
        );
        let only_all = ProxyEnv::from_lookup(&|k: &str| {
            (k == "ALL_PROXY").then(|| "http://all:1".to_string())
        });
        assert_eq!(only_all.proxy_for(true).map(|v| v.name), Some("ALL_PROXY"));
        assert_eq!(only_all.proxy_for(false).map(|v| v.name), Some("ALL_PROXY"));
        assert!(!format!("{e:?}").contains("lower"), "Debug hides values");
    }
}
