//! One check-in: pure request builders (`build_register`, `build_checkin`),
//! the pure answer handlers (`apply_register`, `apply_checkin` -> next
//! interval clamped to the configured bounds, phase, desired state,
//! deregistration), the schedule arithmetic, the transport settings from the
//! config (`http_settings`), and the thin `run_once` that strings them
//! together with the state directory (register when there is no
//! credential, re-register once when the credential is refused, record
//! 410). What a status means is decided by one table, `proto::outcome`; the
//! network is reached through the `Transport` trait (the test seam).
//!
//! It must not print (commands do), must not sleep (callers do), and must
//! never put the token, the credential or the install secret into a log line
//! or an error. A failed attempt leaves `state.json`, `credential` and
//! `install-secret` exactly as they were (only 410 is recorded).

use crate::checks::{self, Facts, Selection};
use crate::config::Config;
use crate::error::{Code, Error, Result};
use crate::http::{self, Client, HttpSettings, ProxyEnv, Reply};
use crate::inventory;
use crate::proto::{
    self, CheckinRequest, CheckinResponse, Endpoint, ErrorBody, Health, Inventory, Outcome,
    RegisterRequest, RegisterResponse,
};
use crate::state::{self, Paths, State};
use crate::sys::{Host, Root};
use std::time::{Duration, UNIX_EPOCH};

/// Bounds of the check-in interval (`outpost.interval.min|max`), ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl Bounds {
    pub fn from_config(cfg: &Config) -> Bounds {
        Bounds {
            min_ms: cfg.interval_min.value.saturating_mul(1000),
            max_ms: cfg.interval_max.value.saturating_mul(1000),
        }
    }

    /// The server's interval within the bounds (0 = "none given": the minimum).
    pub fn clamp(&self, ms: u64) -> u64 {
        ms.clamp(self.min_ms.min(self.max_ms), self.max_ms)
    }
}

/// The server base URL from `stylus.site.paletteEndpoint`: an `https://` URL
/// as given (trailing `/` dropped), or `https://` + host[:port].
pub fn base_url(endpoint: &str) -> String {
    let e = endpoint.trim().trim_end_matches('/');
    if e.contains("://") {
        e.to_string()
    } else {
        format!("https://{e}")
    }
}

/// The transport settings of the effective config: `caCerts`,
/// `insecureSkipVerify`, timeouts, and the proxy. The config already layered
/// the standard proxy variables under the file (`config show` tells the
/// source), so the environment is not consulted a second time here.
pub fn http_settings(cfg: &Config, host: &dyn Host) -> Result<HttpSettings> {
    // Already parsed by the config loader; the https proxy wins for the
    // https server, the http one stands in when only it is set.
    let proxy = cfg
        .https_proxy
        .value
        .clone()
        .or_else(|| cfg.http_proxy.value.clone());
    Ok(HttpSettings {
        connect_timeout: Duration::from_secs(cfg.connect_timeout.value.max(1)),
        timeout: Duration::from_secs(cfg.request_timeout.value.max(1)),
        body_limit: proto::MAX_RESPONSE_BODY as u64,
        extra_ca: cfg.ca_certs.value.clone(),
        insecure_skip_verify: cfg.insecure_skip_verify.value,
        proxy,
        no_proxy: cfg.no_proxy.value.clone(),
        proxy_env: ProxyEnv::default(),
        allow_plain_loopback: false,
        user_agent: crate::version::user_agent(),
        now: host.now(),
    })
}

// ------------------------------------------------------------ pure core

/// What a request is built from.
pub struct Ingredients<'a> {
    pub host_id: &'a str,
    pub hostname: &'a str,
    pub health: &'a Health,
    pub inventory: &'a Inventory,
    pub hash: &'a str,
}

pub fn build_register(
    cfg: &Config,
    ing: &Ingredients<'_>,
    token: &str,
    install_secret: &str,
) -> RegisterRequest {
    RegisterRequest {
        v: proto::PROTOCOL_VERSION,
        token: token.to_string(),
        host_id: ing.host_id.to_string(),
        install_secret: install_secret.to_string(),
        project: cfg.project_name.value.clone(),
        hostname: ing.hostname.to_string(),
        tags: ing.inventory.tags.clone().unwrap_or_default(),
        agent: crate::version::running(),
        inventory: ing.inventory.clone(),
        inventory_hash: ing.hash.to_string(),
    }
}

/// The full inventory rides along only when its digest differs from the
/// one the server holds, or the server asked for it.
pub fn build_checkin(state: &State, ing: &Ingredients<'_>) -> CheckinRequest {
    let send = state.inventory_wanted || state.inventory_hash != ing.hash;
    CheckinRequest {
        v: proto::PROTOCOL_VERSION,
        host_id: ing.host_id.to_string(),
        agent: crate::version::running(),
        health: ing.health.clone(),
        inventory_hash: ing.hash.to_string(),
        desired_tag: state.desired_tag.clone(),
        inventory: send.then(|| ing.inventory.clone()),
        upgrade: None,
        config: None,
        boot: None,
        cluster: None,
    }
}

/// The next slot after `now_ms` (our clock) at which, on the server's
/// clock (ours + `offset_s`), `t mod interval = phase`.
pub fn next_due_ms(now_ms: u64, offset_s: i64, interval_ms: u64, phase_ms: u64) -> u64 {
    let interval = interval_ms.max(1);
    let phase = phase_ms % interval;
    let server_now = (now_ms as i128 + i128::from(offset_s) * 1000).max(0) as u64;
    let mut t = server_now / interval * interval + phase;
    if t <= server_now {
        t += interval;
    }
    (t as i128 - i128::from(offset_s) * 1000).max(now_ms as i128 + 1) as u64
}

fn schedule(
    state: &mut State,
    interval_ms: u64,
    phase_ms: u64,
    server_time: u64,
    now_s: u64,
    b: Bounds,
) {
    state.interval_ms = b.clamp(interval_ms);
    state.phase_ms = phase_ms % state.interval_ms.max(1);
    state.clock_offset_s = if server_time == 0 {
        0
    } else {
        server_time as i64 - now_s as i64
    };
}

/// After a successful registration: the schedule, and the inventory the
/// server now holds (it came with the register request).
pub fn apply_register(
    state: &State,
    resp: &RegisterResponse,
    sent_hash: &str,
    b: Bounds,
    now_s: u64,
) -> State {
    let mut s = state.clone();
    schedule(
        &mut s,
        resp.interval_ms,
        resp.phase_ms,
        resp.server_time,
        now_s,
        b,
    );
    s.registered_at = now_s;
    s.inventory_hash = sent_hash.to_string();
    s.inventory_wanted = false;
    s.deregistered = false;
    s
}

/// What the agent does after a check-in answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub state: State,
    /// The server deregistered this device: stop with exit 15.
    pub deregister: bool,
}

pub fn apply_checkin(
    state: &State,
    req: &CheckinRequest,
    resp: &CheckinResponse,
    b: Bounds,
    now_s: u64,
) -> Decision {
    let mut s = state.clone();
    schedule(
        &mut s,
        resp.interval_ms,
        resp.phase_ms,
        resp.server_time,
        now_s,
        b,
    );
    s.last_success = now_s;
    if req.inventory.is_some() || req.inventory_hash == s.inventory_hash {
        s.inventory_hash = req.inventory_hash.clone();
    }
    s.inventory_wanted = resp.inventory_wanted;
    if let Some(d) = &resp.desired {
        s.desired = Some(d.clone());
        s.desired_tag = resp.desired_tag.clone();
    }
    let deregister = resp.desired.as_ref().is_some_and(|d| d.deregister);
    if deregister {
        s.deregistered = true;
    }
    Decision {
        state: s,
        deregister,
    }
}

/// One line from a server's error body (`message`), or "".
fn server_says(reply: &Reply) -> String {
    match proto::decode::<ErrorBody>(&reply.body) {
        Ok(b) => {
            let m: String = b
                .message
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            format!(": {m}")
        }
        Err(_) => String::new(),
    }
}

/// A non-200 answer that ends the attempt, as an error with the exit code
/// the table (`proto::outcome`) gave it, plus the server's `Retry-After`.
pub fn status_failure(code: Code, reply: &Reply, now: std::time::SystemTime) -> Error {
    let what = match code {
        Code::RegistrationRefused => "registration refused",
        Code::DuplicateHost => "duplicate host ID",
        Code::Deregistered => "deregistered by the server",
        Code::ServerBusy if reply.status >= 500 && reply.status != 503 => "server error",
        Code::ServerBusy => "server busy",
        _ => "unexpected answer",
    };
    let message = if code == Code::ServerBusy {
        // The body of a busy server (or of a proxy) says nothing useful.
        let ra = reply
            .retry_after
            .as_deref()
            .map(|r| format!(" (Retry-After: {r})"))
            .unwrap_or_default();
        format!("{}: {what}: HTTP {}{ra}", reply.what, reply.status)
    } else {
        format!(
            "{}: {what} (HTTP {}){}",
            reply.what,
            reply.status,
            server_says(reply)
        )
    };
    Error::new(code, message).with_retry_after(
        reply
            .retry_after
            .as_deref()
            .and_then(|v| crate::schedule::parse_retry_after(v, now)),
    )
}

fn decode<T: proto::Message>(reply: &Reply) -> Result<T> {
    proto::decode::<T>(&reply.body)
        .map_err(|e| Error::new(Code::BadAnswer, format!("{}: {e}", reply.what)))
}

// ------------------------------------------------------------ the shell

/// What a check-in needs of the network: one POST of a JSON body. `Client`
/// is the real one; tests substitute a fake (the seam for the status table).
pub trait Transport {
    fn post_json(&self, url: &str, body: &[u8], headers: &[(&str, &str)]) -> Result<Reply>;
}

impl Transport for Client {
    fn post_json(&self, url: &str, body: &[u8], headers: &[(&str, &str)]) -> Result<Reply> {
        Client::post_json(self, url, body, headers)
    }
}

/// What one successful attempt did.
#[derive(Clone, Debug)]
pub struct Done {
    pub state: State,
    pub registered: bool,
    pub inventory_sent: bool,
    /// Bytes of the request bodies sent (register and check-in).
    pub register_bytes: usize,
    pub checkin_bytes: usize,
}

/// Everything `run_once` needs, prepared by the command.
pub struct Agent<'a> {
    pub root: &'a Root,
    pub cfg: &'a Config,
    pub host: &'a dyn Host,
    pub paths: Paths,
    pub host_id: String,
    pub base: String,
    pub bounds: Bounds,
}

impl Agent<'_> {
    fn now_s(&self) -> u64 {
        crate::sys::unix_secs(self.host.now())
    }

    fn post(
        &self,
        client: &dyn Transport,
        path: &str,
        body: &str,
        bearer: Option<&str>,
    ) -> Result<Reply> {
        let url = format!("{}{path}", self.base);
        let auth;
        let headers: Vec<(&str, &str)> = match bearer {
            Some(c) => {
                auth = format!("Bearer {c}");
                vec![("Authorization", auth.as_str())]
            }
            None => Vec::new(),
        };
        client.post_json(&url, body.as_bytes(), &headers)
    }

    /// The install secret, made (32 random bytes, hex) and stored before
    /// the first register request so a crash cannot lose it.
    fn install_secret(&self) -> Result<String> {
        let path = self.paths.install_secret();
        if let Some(s) = state::read_secret(&path)? {
            return Ok(s);
        }
        let mut b = [0u8; 32];
        self.host
            .fill_random(&mut b)
            .map_err(|e| Error::io("reading random bytes for", &path, &e))?;
        let s: String = b.iter().map(|x| format!("{x:02x}")).collect();
        state::write_secret(&path, &s)?;
        Ok(s)
    }

    fn register(
        &self,
        client: &dyn Transport,
        st: &State,
        ing: &Ingredients<'_>,
        why: &str,
    ) -> Result<(State, String, usize)> {
        if self.cfg.disable_auto_register.value {
            return Err(Error::new(
                Code::RegistrationRefused,
                format!(
                    "{why} and stylus.site.disableAutoRegister is true: register this host by hand{}",
                    self.cfg
                        .registration_url
                        .value
                        .as_deref()
                        .map(|u| format!(" ({u})"))
                        .unwrap_or_default()
                ),
            ));
        }
        let Some(token) = &self.cfg.token.value else {
            return Err(Error::config(format!(
                "{why} and no registration token is configured: set stylus.site.edgeHostToken in {} or {}",
                self.cfg.file.display(),
                crate::config::keys::TOKEN_ENV
            )));
        };
        let secret = self.install_secret()?;
        let body = proto::encode(&build_register(self.cfg, ing, token.expose(), &secret));
        log::info!("registering {} with {}", ing.host_id, self.base);
        let reply = self.post(client, proto::PATH_REGISTER, &body, None)?;
        let outcome = proto::outcome(Endpoint::Register, reply.status);
        if outcome != Outcome::Ok {
            return Err(status_failure(outcome.code(), &reply, self.host.now()));
        }
        let resp: RegisterResponse = decode(&reply)?;
        if resp.credential.is_empty() {
            return Err(Error::new(
                Code::BadAnswer,
                format!("{}: register answer: empty credential", reply.what),
            ));
        }
        state::write_secret(&self.paths.credential(), &resp.credential)?;
        let new = apply_register(st, &resp, ing.hash, self.bounds, self.now_s());
        state::save_state(&self.paths, &new)?;
        log::info!(
            "registered{}; credential stored in {}",
            if resp.rotated {
                " again (credential rotated)"
            } else {
                ""
            },
            self.paths.credential().display()
        );
        Ok((new, resp.credential, body.len()))
    }

    /// One attempt, under the state lock (the caller holds it).
    pub fn run_once(&self, client: &dyn Transport) -> Result<Done> {
        let mut st = match state::load_state(&self.paths)? {
            Some(s) if s.host_id == self.host_id => s,
            Some(s) => {
                log::warn!(
                    "state.json belongs to host ID {}, this host is {}: starting afresh",
                    s.host_id,
                    self.host_id
                );
                State::new(&self.host_id)
            }
            None => State::new(&self.host_id),
        };
        if st.deregistered {
            return Err(Error::new(
                Code::Deregistered,
                format!(
                    "this device was deregistered by the server (recorded in {}); to register again, remove {} and {}",
                    self.paths.state().display(),
                    self.paths.state().display(),
                    self.paths.credential().display()
                ),
            ));
        }
        let facts = Facts::gather(self.root, self.host);
        let results = checks::run(&facts, &Selection::default());
        let input = inventory::gather(self.root, self.cfg, &facts, &results, &self.host_id);
        let inv = inventory::build(&input);
        let hash = inventory::hash(&inv);
        let health = inventory::health(&results);
        let ing = Ingredients {
            host_id: &self.host_id,
            hostname: &input.hostname,
            health: &health,
            inventory: &inv,
            hash: &hash,
        };
        let mut registered = false;
        let mut register_bytes = 0;
        let mut cred = match state::read_secret(&self.paths.credential())? {
            Some(c) => c,
            None => {
                let (s, c, n) = self.register(client, &st, &ing, "no device credential")?;
                st = s;
                registered = true;
                register_bytes = n;
                c
            }
        };
        // Self-upgrade state rides along until a check-in carried it.
        let upgrade_layout = crate::upgrade::layout(self.root, self.cfg);
        let upgrade_report = crate::upgrade::report(&upgrade_layout);
        let config_report = crate::remote::report(&self.paths.dir);
        let boot = crate::boot::agent::pending(self.root);
        let cluster_report = crate::cluster::hub::report(self.root, &self.cfg.state_dir.value);
        loop {
            let mut req = build_checkin(&st, &ing);
            req.upgrade = upgrade_report.clone();
            req.config = config_report.clone();
            req.boot = boot.clone();
            req.cluster = cluster_report.clone();
            let body = proto::encode_checkin(&req);
            log::debug!(
                "check-in: {} bytes{}",
                body.len(),
                if req.inventory.is_some() {
                    ", with inventory"
                } else {
                    ""
                }
            );
            let reply = self.post(client, proto::PATH_CHECKIN, &body, Some(&cred))?;
            match proto::outcome(Endpoint::Checkin, reply.status) {
                Outcome::Ok => {
                    let resp: CheckinResponse = decode(&reply)?;
                    let d = apply_checkin(&st, &req, &resp, self.bounds, self.now_s());
                    state::save_state(&self.paths, &d.state)?;
                    if let Some(r) = &upgrade_report {
                        crate::upgrade::mark_reported(&upgrade_layout, r);
                    }
                    if let Some(r) = &config_report {
                        crate::remote::mark_reported(&self.paths.dir, r);
                    }
                    if let Some(b) = &boot {
                        crate::boot::agent::reported(self.root, &self.paths.dir, b);
                    }
                    if let Some(r) = &cluster_report {
                        crate::cluster::hub::mark_reported(self.root, &self.cfg.state_dir.value, r);
                    }
                    if d.deregister {
                        return Err(Error::new(
                            Code::Deregistered,
                            format!("{}: the operator deregistered this device", reply.what),
                        ));
                    }
                    return Ok(Done {
                        state: d.state,
                        registered,
                        inventory_sent: registered || req.inventory.is_some(),
                        register_bytes,
                        checkin_bytes: body.len(),
                    });
                }
                // Once per attempt: a credential refused right after
                // registering is a refusal, not a loop.
                Outcome::Reregister if !registered => {
                    log::warn!(
                        "{}: credential refused (HTTP {}); registering again",
                        reply.what,
                        reply.status
                    );
                    let (s, c, n) = self.register(
                        client,
                        &st,
                        &ing,
                        "the server refused the device credential",
                    )?;
                    st = s;
                    cred = c;
                    registered = true;
                    register_bytes = n;
                }
                Outcome::Exit(Code::Deregistered) => {
                    let mut s = st.clone();
                    s.deregistered = true;
                    state::save_state(&self.paths, &s)?;
                    return Err(status_failure(Code::Deregistered, &reply, self.host.now()));
                }
                // Refused again right after registering, or any other stop.
                other => return Err(status_failure(other.code(), &reply, self.host.now())),
            }
        }
    }
}

/// The `Agent` and transport for this config, or why not.
pub fn prepare<'a>(
    root: &'a Root,
    cfg: &'a Config,
    host: &'a dyn Host,
) -> Result<(Agent<'a>, Client)> {
    let Some(endpoint) = &cfg.endpoint.value else {
        return Err(Error::config(format!(
            "no management endpoint configured: set stylus.site.paletteEndpoint in {} (or OUTPOST_PALETTE_ENDPOINT)",
            cfg.file.display()
        )));
    };
    let settings = http_settings(cfg, host)?;
    let paths = Paths::new(root.path(&cfg.state_dir.value));
    let system = http::read_system_ca(root)?;
    // The anchor cache is written once the state directory exists (from
    // the second run on a new device).
    let client = Client::with_anchor_cache(settings, system.as_ref(), Some(&paths.ca_anchors()))?;
    state::ensure(&paths)?;
    let id = crate::identity::host_id(root, cfg, host)?;
    Ok((
        Agent {
            root,
            cfg,
            host,
            paths,
            host_id: id.id,
            base: base_url(endpoint),
            bounds: Bounds::from_config(cfg),
        },
        client,
    ))
}

/// `status.json` after an attempt. `next_due_ms` is our clock, Unix ms.
pub fn record(
    prev: Option<state::Status>,
    host_id: &str,
    now_s: u64,
    result: std::result::Result<&State, &Error>,
    interval_ms: u64,
    next_due_ms: u64,
) -> state::Status {
    let mut s = prev.unwrap_or_else(|| state::Status::new(host_id));
    s.schema = state::STATUS_SCHEMA.into();
    s.host_id = host_id.into();
    s.agent_version = crate::version::running();
    s.last_attempt = Some(crate::timefmt::rfc3339(now_s));
    match result {
        Ok(_) => {
            s.last_success = Some(crate::timefmt::rfc3339(now_s));
            s.last_error = None;
            s.consecutive_failures = 0;
        }
        Err(e) => {
            s.last_error = Some(state::LastError {
                code: e.code().as_i32(),
                message: e.message().to_string(),
            });
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
        }
    }
    if interval_ms > 0 {
        s.interval_s = interval_ms.div_ceil(1000);
    }
    s.next_due = Some(crate::timefmt::rfc3339(next_due_ms.div_ceil(1000)));
    s
}

/// Unix milliseconds of a host clock reading.
pub fn unix_ms(host: &dyn Host) -> u64 {
    host.now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::noproxy::NoProxy;
    use crate::proto::Desired;

    const B: Bounds = Bounds {
        min_ms: 60_000,
        max_ms: 3_600_000,
    };

    fn inv() -> Inventory {
        Inventory {
            arch: "x86_64".into(),
            cpus: 2,
            ..Default::default()
        }
    }

    fn health() -> Health {
        Health {
            ok: true,
            failing: vec![],
        }
    }

    #[test]
    fn transport_settings_from_the_config() {
        use crate::config::{Source, Val};
        let host = crate::sys::RealHost;
        let v = |s: &str| Val {
            value: Some(crate::proxy::ProxyUrl::parse(s).expect("proxy URL")),
            source: Source::File,
        };
        let mut cfg = Config::default();
        cfg.connect_timeout.value = 7;
        cfg.request_timeout.value = 40;
        cfg.https_proxy = v("http://u:p@proxy.example:3128");
        cfg.http_proxy = v("http://other:8080");
        cfg.no_proxy.value = NoProxy::parse("10.0.0.0/8, .corp.example").expect("list");
        let s = http_settings(&cfg, &host).expect("valid settings");
        assert_eq!(s.connect_timeout, Duration::from_secs(7), "connect timeout");
        assert_eq!(s.timeout, Duration::from_secs(40), "request timeout");
        let p = s.proxy.as_ref().expect("proxy");
        assert_eq!(
            p.to_string(),
            "http://proxy.example:3128",
            "httpsProxy wins, no credentials shown"
        );
        assert!(p.has_credentials(), "credentials kept for the proxy");
        assert!(s.no_proxy.matches("10.1.2.3", 443), "CIDR bypass");
        assert!(s.no_proxy.matches("hub.corp.example", 443), "domain bypass");
        assert!(
            !s.no_proxy.matches("hub.example.net", 443),
            "others via proxy"
        );
        assert!(
            s.proxy_env.https_proxy.is_none(),
            "environment not read a second time"
        );

        // (A socks5:// proxy never gets here: the config loader refuses it.)
        cfg.https_proxy.value = None;
        let s = http_settings(&cfg, &host).expect("httpProxy alone");
        assert_eq!(
            s.proxy.map(|p| p.to_string()).as_deref(),
            Some("http://other:8080"),
            "httpProxy used"
        );
    }

    #[test]
    fn base_urls() {
        let cases = [
            ("hub.example.net", "https://hub.example.net"),
            ("hub.example.net:8443", "https://hub.example.net:8443"),
            (
                "https://hub.example.net:8443/",
                "https://hub.example.net:8443",
            ),
            ("https://h/prefix", "https://h/prefix"),
        ];
        for (e, want) in cases {
            assert_eq!(base_url(e), want, "endpoint {e}");
        }
    }

    #[test]
    fn interval_is_clamped() {
        let cases = [
            (0, 60_000),
            (1_000, 60_000),
            (300_000, 300_000),
            (86_400_000, 3_600_000),
        ];
        for (got, want) in cases {
            assert_eq!(B.clamp(got), want, "server interval {got}");
        }
    }

    #[test]
    fn inventory_only_when_changed_or_wanted() {
        let i = inv();
        let h = health();
        let ing = Ingredients {
            host_id: "edge-1",
            hostname: "edge-1",
            health: &h,
            inventory: &i,
            hash: "sha256:aa",
        };
        let mut st = State::new("edge-1");
        let cases = [
            ("never sent", "", false, true),
            ("same hash", "sha256:aa", false, false),
            ("hash changed", "sha256:bb", false, true),
            ("server asked", "sha256:aa", true, true),
        ];
        for (name, held, wanted, send) in cases {
            st.inventory_hash = held.into();
            st.inventory_wanted = wanted;
            let req = build_checkin(&st, &ing);
            assert_eq!(req.inventory.is_some(), send, "case {name}");
            assert_eq!(req.inventory_hash, "sha256:aa", "case {name}");
        }
    }

    #[test]
    fn steady_checkin_body_is_small() {
        let i = inv();
        let h = health();
        let hash = format!("sha256:{}", "f".repeat(64));
        let id = "edge-".to_string() + &"a".repeat(36);
        let ing = Ingredients {
            host_id: &id,
            hostname: "x",
            health: &h,
            inventory: &i,
            hash: &hash,
        };
        let mut st = State::new(&id);
        st.inventory_hash = hash.clone();
        st.desired_tag = "d-0123456789abcdef".into();
        let n = proto::encode(&build_checkin(&st, &ing)).len();
        assert!(
            n <= proto::STEADY_CHECKIN_MAX,
            "steady check-in is {n} bytes"
        );
    }

    #[test]
    fn next_due_follows_phase_on_the_server_clock() {
        let cases = [
            // (now ms, offset s, interval, phase, want)
            ("phase ahead", 1_000_000, 0, 60_000, 50_000, 1_010_000),
            ("phase just passed", 1_021_000, 0, 60_000, 0, 1_080_000),
            ("exactly on the slot", 1_020_000, 0, 60_000, 0, 1_080_000),
            // server now 1_010_000 -> slot 1_050_000 -> ours 1_040_000
            (
                "server 10 s ahead",
                1_000_000,
                10,
                60_000,
                30_000,
                1_040_000,
            ),
            ("phase beyond interval wraps", 0, 0, 1_000, 2_500, 500),
        ];
        for (name, now, off, iv, ph, want) in cases {
            assert_eq!(next_due_ms(now, off, iv, ph), want, "case {name}");
        }
    }

    #[test]
    fn apply_checkin_updates_schedule_desired_and_inventory() {
        let mut st = State::new("edge-1");
        st.inventory_hash = "sha256:old".into();
        let req = CheckinRequest {
            v: 1,
            host_id: "edge-1".into(),
            agent: "0.1.0".into(),
            health: health(),
            inventory_hash: "sha256:new".into(),
            desired_tag: String::new(),
            inventory: Some(inv()),
            upgrade: None,
            config: None,
            boot: None,
            cluster: None,
        };
        let mut desired = <Desired as Default>::default();
        desired.labels.insert("cluster".into(), "shop-7".into());
        let resp = CheckinResponse {
            v: 1,
            interval_ms: 5_000,
            phase_ms: 70_000,
            server_time: 1_000_010,
            inventory_wanted: false,
            desired_tag: "d-1".into(),
            desired: Some(desired.clone()),
        };
        let d = apply_checkin(&st, &req, &resp, B, 1_000_000);
        assert!(!d.deregister, "not deregistered");
        assert_eq!(d.state.interval_ms, 60_000, "clamped to min");
        assert_eq!(d.state.phase_ms, 10_000, "phase within the interval");
        assert_eq!(d.state.clock_offset_s, 10, "server clock offset");
        assert_eq!(
            d.state.inventory_hash, "sha256:new",
            "sent inventory recorded"
        );
        assert_eq!(d.state.desired_tag, "d-1");
        assert_eq!(d.state.desired, Some(desired.clone()), "desired stored");
        assert_eq!(d.state.last_success, 1_000_000);

        let mut no_inv = req.clone();
        no_inv.inventory = None;
        let d2 = apply_checkin(&st, &no_inv, &resp, B, 1_000_000);
        assert_eq!(
            d2.state.inventory_hash, "sha256:old",
            "unsent hash not recorded"
        );

        let mut dereg = resp.clone();
        dereg.desired = Some(Desired {
            deregister: true,
            ..desired
        });
        let d3 = apply_checkin(&st, &req, &dereg, B, 1_000_000);
        assert!(
            d3.deregister && d3.state.deregistered,
            "deregister recorded"
        );

        let mut same = resp;
        same.desired = None;
        let mut held = st.clone();
        held.desired_tag = "d-1".into();
        let d4 = apply_checkin(&held, &req, &same, B, 1_000_000);
        assert_eq!(d4.state.desired_tag, "d-1", "tag kept when nothing new");
    }

    #[test]
    fn status_record_counts_failures() {
        let st = State::new("edge-1");
        let err = Error::new(
            Code::Network,
            "POST https://h/outpost/v1/checkin: connection refused",
        );
        let s1 = record(None, "edge-1", 100, Err(&err), 0, 110_000);
        assert_eq!(s1.consecutive_failures, 1, "first failure");
        assert_eq!(s1.last_success, None);
        assert_eq!(s1.next_due.as_deref(), Some("1970-01-01T00:01:50Z"));
        let s2 = record(Some(s1), "edge-1", 200, Err(&err), 0, 210_000);
        assert_eq!(s2.consecutive_failures, 2, "second failure");
        let s3 = record(Some(s2), "edge-1", 300, Ok(&st), 60_000, 360_000);
        assert_eq!(s3.consecutive_failures, 0, "reset on success");
        assert_eq!(s3.last_error, None);
        assert_eq!(s3.interval_s, 60);
        assert_eq!(s3.last_success.as_deref(), Some("1970-01-01T00:05:00Z"));
    }

    /// A test double of the network: answers scripted per request, in
    /// order, and the paths that were asked for.
    struct FakeTransport {
        answers: std::cell::RefCell<std::collections::VecDeque<(u16, String, Option<String>)>>,
        asked: std::cell::RefCell<Vec<String>>,
    }

    impl Transport for FakeTransport {
        fn post_json(&self, url: &str, _: &[u8], _: &[(&str, &str)]) -> Result<Reply> {
            let path = url.trim_start_matches("https://hub.test").to_string();
            self.asked.borrow_mut().push(path);
            let (status, body, retry_after) = self
                .answers
                .borrow_mut()
                .pop_front()
                .expect("a request the script did not expect");
            Ok(Reply {
                status,
                retry_after,
                date: None,
                body,
                what: format!("POST {url}"),
            })
        }
    }

    /// A fixed host for the table: no syscalls, no randomness.
    struct FixedHost;

    impl Host for FixedHost {
        fn euid(&self) -> u32 {
            0
        }
        fn now(&self) -> std::time::SystemTime {
            UNIX_EPOCH + Duration::from_secs(1_764_000_000)
        }
        fn uname(&self) -> std::io::Result<crate::sys::Uname> {
            Err(std::io::Error::other("no uname in this test"))
        }
        fn statvfs(&self, _: &std::path::Path) -> std::io::Result<crate::sys::FsSpace> {
            Err(std::io::Error::other("no statvfs in this test"))
        }
        fn sleep(&self, _: Duration) {}
        fn fill_random(&self, buf: &mut [u8]) -> std::io::Result<()> {
            buf.fill(7);
            Ok(())
        }
    }

    fn register_ok() -> String {
        proto::encode(&RegisterResponse {
            v: 1,
            host_id: "edge-t".into(),
            credential: "cred-new".into(),
            rotated: false,
            interval_ms: 300_000,
            phase_ms: 0,
            server_time: 1_764_000_000,
        })
    }

    fn checkin_ok() -> String {
        proto::encode(&CheckinResponse {
            v: 1,
            interval_ms: 300_000,
            phase_ms: 0,
            server_time: 1_764_000_000,
            inventory_wanted: false,
            desired_tag: String::new(),
            desired: None,
        })
    }

    /// The check-in decision end to end through `run_once` with a fake
    /// transport: each status of the table, on register and on check-in,
    /// gives the documented action (re-register, stop, retry later) and
    /// exit code, and only 410 is recorded in the state.
    #[test]
    fn status_table_through_run_once() {
        const REG: &str = proto::PATH_REGISTER;
        const CHK: &str = proto::PATH_CHECKIN;
        let busy = |s: u16, ra: Option<&str>| (s, String::new(), ra.map(String::from));
        let err = |s: u16| {
            (
                s,
                r#"{"v":1,"error":"x","message":"said the server"}"#.to_string(),
                None,
            )
        };
        let ok_reg = || (200, register_ok(), None);
        let ok_chk = || (200, checkin_ok(), None);
        // (label, has a credential, answers, paths asked, exit code or 0,
        //  message tail, retry-after seconds, deregistered recorded)
        type Case = (
            &'static str,
            bool,
            Vec<(u16, String, Option<String>)>,
            Vec<&'static str>,
            Code,
            &'static str,
            Option<u64>,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                "register then check in",
                false,
                vec![ok_reg(), ok_chk()],
                vec![REG, CHK],
                Code::Ok,
                "",
                None,
                false,
            ),
            (
                "check in",
                true,
                vec![ok_chk()],
                vec![CHK],
                Code::Ok,
                "",
                None,
                false,
            ),
            (
                "register 401",
                false,
                vec![err(401)],
                vec![REG],
                Code::RegistrationRefused,
                "registration refused (HTTP 401): said the server",
                None,
                false,
            ),
            (
                "register 403",
                false,
                vec![err(403)],
                vec![REG],
                Code::RegistrationRefused,
                "registration refused (HTTP 403): said the server",
                None,
                false,
            ),
            (
                "register 409",
                false,
                vec![err(409)],
                vec![REG],
                Code::DuplicateHost,
                "duplicate host ID (HTTP 409): said the server",
                None,
                false,
            ),
            (
                "check-in 401 re-registers",
                true,
                vec![err(401), ok_reg(), ok_chk()],
                vec![CHK, REG, CHK],
                Code::Ok,
                "",
                None,
                false,
            ),
            (
                "check-in 403 re-registers",
                true,
                vec![err(403), ok_reg(), ok_chk()],
                vec![CHK, REG, CHK],
                Code::Ok,
                "",
                None,
                false,
            ),
            (
                "401 again after re-registering",
                true,
                vec![err(401), ok_reg(), err(401)],
                vec![CHK, REG, CHK],
                Code::RegistrationRefused,
                "registration refused (HTTP 401): said the server",
                None,
                false,
            ),
            (
                "re-register refused",
                true,
                vec![err(403), err(401)],
                vec![CHK, REG],
                Code::RegistrationRefused,
                "registration refused (HTTP 401): said the server",
                None,
                false,
            ),
            (
                "check-in 409",
                true,
                vec![err(409)],
                vec![CHK],
                Code::DuplicateHost,
                "duplicate host ID (HTTP 409): said the server",
                None,
                false,
            ),
            (
                "check-in 410",
                true,
                vec![err(410)],
                vec![CHK],
                Code::Deregistered,
                "deregistered by the server (HTTP 410): said the server",
                None,
                true,
            ),
            (
                "check-in 429",
                true,
                vec![busy(429, Some("7"))],
                vec![CHK],
                Code::ServerBusy,
                "server busy: HTTP 429 (Retry-After: 7)",
                Some(7),
                false,
            ),
            (
                "check-in 503",
                true,
                vec![busy(503, Some("30"))],
                vec![CHK],
                Code::ServerBusy,
                "server busy: HTTP 503 (Retry-After: 30)",
                Some(30),
                false,
            ),
            (
                "check-in 500",
                true,
                vec![busy(500, None)],
                vec![CHK],
                Code::ServerBusy,
                "server error: HTTP 500",
                None,
                false,
            ),
            (
                "check-in 408",
                true,
                vec![busy(408, None)],
                vec![CHK],
                Code::ServerBusy,
                "server busy: HTTP 408",
                None,
                false,
            ),
            (
                "register 502",
                false,
                vec![busy(502, None)],
                vec![REG],
                Code::ServerBusy,
                "server error: HTTP 502",
                None,
                false,
            ),
            (
                "check-in 404",
                true,
                vec![err(404)],
                vec![CHK],
                Code::BadAnswer,
                "unexpected answer (HTTP 404): said the server",
                None,
                false,
            ),
            (
                "check-in 400 html",
                true,
                vec![(400, "<html>".into(), None)],
                vec![CHK],
                Code::BadAnswer,
                "unexpected answer (HTTP 400)",
                None,
                false,
            ),
        ];
        for (label, has_cred, answers, want_asked, want_code, want_tail, want_ra, want_dereg) in
            cases
        {
            let dir = std::env::temp_dir().join(format!(
                "outpost-table-{}-{}",
                std::process::id(),
                label.replace(' ', "-")
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("state")).expect("state dir");
            let paths = Paths::new(dir.join("state"));
            if has_cred {
                state::write_secret(&paths.credential(), "cred-old").expect("credential");
            }
            let mut cfg = Config::default();
            cfg.token.value = Some(crate::config::Secret::new("tok".into()));
            let root = Root::new(dir.join("root"));
            let agent = Agent {
                root: &root,
                cfg: &cfg,
                host: &FixedHost,
                paths,
                host_id: "edge-t".into(),
                base: "https://hub.test".into(),
                bounds: Bounds::from_config(&cfg),
            };
            let fake = FakeTransport {
                answers: std::cell::RefCell::new(answers.into_iter().collect()),
                asked: std::cell::RefCell::new(Vec::new()),
            };
            let got = agent.run_once(&fake);
            assert_eq!(*fake.asked.borrow(), want_asked, "{label}: requests");
            assert!(fake.answers.borrow().is_empty(), "{label}: answers left");
            match got {
                Ok(_) => assert_eq!(want_code, Code::Ok, "{label}"),
                Err(f) => {
                    assert_eq!(f.code(), want_code, "{label}: {}", f.message());
                    assert!(f.message().ends_with(want_tail), "{label}: {}", f.message());
                    assert_eq!(
                        f.retry_after().map(|d| d.as_secs()),
                        want_ra,
                        "{label}: retry after"
                    );
                }
            }
            let st = state::load_state(&agent.paths).expect("state readable");
            assert_eq!(
                st.map(|s| s.deregistered).unwrap_or(false),
                want_dereg,
                "{label}: deregistered recorded"
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
