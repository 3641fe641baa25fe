//! What the transport is built from: `HttpSettings` and its defaults.

use super::*;

/// Default response-body cap: 64 KiB.
pub const DEFAULT_BODY_LIMIT: u64 = 64 * 1024;
/// Default connect timeout (TCP + proxy connect).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default global timeout of one request, from DNS to the last body byte.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Extra trusted CAs (`caCerts`, `probe --cacert`), parsed and checked
    /// once where they were read (`CaCert::parse`, `CaCert::from_bytes`).
    pub extra_ca: Vec<CaCert>,
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
            extra_ca: Vec::new(),
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
