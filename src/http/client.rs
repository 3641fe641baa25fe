//! The client: one ureq agent per request, the request, the answer (`Reply`)
//! and the URL parser for targets.

use super::*;

/// Read and write buffer size (ureq's default is 128 KiB each).
pub const IO_BUFFER: usize = 16 * 1024;
/// The longest an idle connection is kept for reuse: below outpost-hub's
/// default keep-alive (5 s), so against it a kept connection is never one
/// the hub is closing for idleness; a close for any other reason is caught
/// by the one retry in `send` (reuse.rs). ureq's default is 15 s.
pub const KEEP_IDLE: Duration = Duration::from_secs(4);
/// The longest `Retry-After` value kept (it is only echoed and parsed).
pub(super) const MAX_RETRY_AFTER_LEN: usize = 64;

/// An answer: any status but a redirect (which is not followed), for the
/// caller to interpret through the one table, `proto::outcome`.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// The raw `Retry-After` header (see `schedule::parse_retry_after`).
    pub retry_after: Option<String>,
    /// The raw `Date` header (`check --network` compares clocks).
    pub date: Option<String>,
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

/// The transport, ready to send requests.
///
/// It keeps the ureq agent of its last route: `run` makes one `Client` and
/// sends every check-in through it, so the trust store is parsed once per
/// process (not once per check-in) and rustls's session cache lets a later
/// check-in resume the TLS session (no certificate chain to verify again).
/// An idle connection is kept for reuse while the server leaves it open and
/// for at most [`KEEP_IDLE`]; a request that fails because the server closed
/// the kept connection under it is sent once more on a new one.
pub struct Client {
    pub(super) settings: HttpSettings,
    pub(super) roots: Roots,
    /// The agent of the last route used, with that route's key.
    pub(super) agent: std::sync::Mutex<Option<(String, ureq::Agent)>>,
    /// What the agents' connections report (reuse.rs).
    pub(super) watch: Arc<super::reuse::Watch>,
}

impl Client {
    /// Build the transport: trust = `system` bundle (see `read_system_ca`) +
    /// `settings.extra_ca`. Neither present is exit 16 (nothing could be
    /// trusted), unless verification is off, or the `webpki-roots` feature
    /// supplies the bundled Mozilla set.
    pub fn new(settings: HttpSettings, system: Option<&CaBundle>) -> Result<Client> {
        Client::with_anchor_cache(settings, system, None)
    }

    /// `new`, with the system bundle's decoded trust anchors kept in the
    /// file `cache` (anchors.rs): a check-in passes
    /// `<stateDir>/ca-anchors`.
    pub fn with_anchor_cache(
        settings: HttpSettings,
        system: Option<&CaBundle>,
        cache: Option<&std::path::Path>,
    ) -> Result<Client> {
        let mut store = rustls::RootCertStore::empty();
        if !settings.insecure_skip_verify {
            if let Some(bundle) = system {
                store.roots = match cache {
                    Some(c) => anchors::cached(bundle, c).0,
                    None => anchors::decode(bundle).0,
                };
                if store.roots.is_empty() {
                    log::warn!(target: LOG_TARGET, "no certificates in CA bundle {}", bundle.path.display());
                }
            }
            // caCerts were checked when the config was read; one that does
            // not decode is left out, as ureq did.
            store.roots.extend(settings.extra_ca.iter().filter_map(|c| {
                let der = rustls::pki_types::CertificateDer::from(c.der.as_slice());
                webpki::anchor_from_trusted_cert(&der)
                    .ok()
                    .map(|a| a.to_owned())
            }));
        }
        let roots = if settings.insecure_skip_verify {
            Roots::NoneNeeded
        } else if !store.roots.is_empty() {
            Roots::Specific(Arc::new(store))
        } else {
            no_roots()?
        };
        Ok(Client {
            settings,
            roots,
            agent: std::sync::Mutex::new(None),
            watch: Arc::default(),
        })
    }

    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// POST a JSON body with extra headers (e.g. Authorization; never logged).
    pub fn post_json(&self, url: &str, body: &[u8], headers: &[(&str, &str)]) -> Result<Reply> {
        self.send("POST", url, Some(body), headers)
    }

    /// PUT a JSON body (hawkBit DDI `configData`).
    pub fn put_json(&self, url: &str, body: &[u8], headers: &[(&str, &str)]) -> Result<Reply> {
        self.send("PUT", url, Some(body), headers)
    }

    /// GET (probes).
    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Reply> {
        self.send("GET", url, None, headers)
    }

    pub(super) fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Result<Reply> {
        let target = Target::parse(url).map_err(|e| Error::config(format!("{method} {e}")))?;
        let what = format!("{method} {}", target.safe);
        let plain_ok = self.settings.allow_plain_loopback && target.is_loopback();
        if !target.https && !plain_ok {
            return Err(Error::config(format!(
                "{what}: plain http:// is refused; use https://"
            )));
        }
        let route = route(&self.settings, target.https, &target.host, target.port)?;
        log::debug!(target: LOG_TARGET,
            "{what}{}",
            match &route {
                Route::Direct => String::new(),
                Route::Proxy(p) => format!(" via proxy {p}"),
            }
        );
        if self.settings.insecure_skip_verify && target.https {
            log::warn!(target: LOG_TARGET, "{what}: certificate verification is OFF (insecure)");
        }
        let agent = self.agent(&route)?;
        let ctx = Ctx {
            what: &what,
            target: &target,
            route: &route,
            settings: &self.settings,
        };
        let once = || match body {
            Some(b) if method == "PUT" => {
                let mut req = agent.put(url).header("Content-Type", "application/json");
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                req.send(b)
            }
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
        let connects = self.watch.connects();
        let mut sent = once();
        // The server closed the kept connection as we reused it (its idle
        // time or request bound ran out): nothing reached it as a request it
        // answered, so sending again on a new connection is the same request
        // once. Check-ins, registrations and probes are safe to repeat
        // anyway (docs/protocol.md, "Transport").
        if let Err(e) = &sent {
            let reused = self.watch.connects() == connects;
            if super::reuse::stale(e, reused, self.watch.answered()) {
                log::debug!(target: LOG_TARGET, "{what}: kept connection closed by the server ({e}); sending again on a new one");
                sent = once();
            }
        }
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
        let date = header("date");
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
            ));
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
            date,
            body,
            what,
        })
    }

    /// The agent for `route`: the kept one when the route is the same (a
    /// proxy URL may change between check-ins with the environment), else a
    /// new one that replaces it.
    pub(super) fn agent(&self, route: &Route) -> Result<ureq::Agent> {
        let key = match route {
            Route::Direct => String::new(),
            Route::Proxy(p) => p.secret_url(),
        };
        let mut kept = self
            .agent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((k, a)) = kept.as_ref() {
            if *k == key {
                return Ok(a.clone());
            }
        }
        let a = self.new_agent(route)?;
        *kept = Some((key, a.clone()));
        Ok(a)
    }

    fn new_agent(&self, route: &Route) -> Result<ureq::Agent> {
        let provider = super::provider::provider();
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(provider.clone());
        let tls = match &self.roots {
            // Our own TLS step (tls.rs) does the handshake; ureq's is not
            // in the chain.
            Roots::Specific(_) => tls,
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
            // Below the input buffer: headers that do not fit are then
            // "too large" (exit 12), not a stalled read ("disconnected").
            .max_response_header_size(IO_BUFFER - 1024)
            .output_buffer_size(IO_BUFFER)
            // One idle connection, kept while the server leaves it open
            // (ureq checks before reuse) and at most KEEP_IDLE.
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            .max_idle_age(KEEP_IDLE)
            .tls_config(tls.build())
            .build();
        use ureq::unversioned::transport::{
            ConnectProxyConnector, Connector, RustlsConnector, TcpConnector,
        };
        let watch = super::reuse::WatchConnector(Arc::clone(&self.watch));
        let Roots::Specific(store) = &self.roots else {
            // ureq's own TLS step (verification off, or the bundled roots),
            // in the chain ureq would build, watched.
            let connector =
                ().chain(ConnectProxyConnector::default())
                    .chain(TcpConnector::default())
                    .chain(RustlsConnector::default())
                    .chain(watch);
            return Ok(ureq::Agent::with_parts(
                config,
                connector,
                ureq::unversioned::resolver::DefaultResolver::default(),
            ));
        };
        // The rustls config ureq would build from certificates, built here
        // from the decoded anchors: every protocol version the provider
        // has, no client certificate, SNI on.
        // Its session store (rustls's default: in memory, 256 servers)
        // lives as long as this agent: in `run`, a new connection resumes.
        let mut tls_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|e| Error::new(Code::Untrusted, format!("TLS setup: {e}")))?
            .with_root_certificates(store.clone())
            .with_no_client_auth();
        if crate::sys::tls_resumption_off() {
            tls_config.resumption = rustls::client::Resumption::disabled();
        }
        let connector = ()
            .chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(super::tls::TlsConnector {
                config: Arc::new(tls_config),
            })
            .chain(watch);
        Ok(ureq::Agent::with_parts(
            config,
            connector,
            ureq::unversioned::resolver::DefaultResolver::default(),
        ))
    }
}

/// `url` as it may be logged: scheme, host, port and path; no userinfo, no
/// query (an artifact link can carry credentials in either).
pub fn safe_url(url: &str) -> String {
    Target::parse(url)
        .map(|t| t.safe)
        .unwrap_or_else(|e| format!("(a URL that does not parse: {e})"))
}

/// A parsed request URL.
pub(super) struct Target {
    pub(super) https: bool,
    pub(super) host: String,
    pub(super) port: u16,
    /// scheme://host[:port]/path, no userinfo, no query.
    pub(super) safe: String,
}

impl Target {
    pub(super) fn parse(url: &str) -> std::result::Result<Target, String> {
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

    pub(super) fn is_loopback(&self) -> bool {
        let h = self.host.trim_start_matches('[').trim_end_matches(']');
        h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}
