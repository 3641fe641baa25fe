//! `outpost check --network`: the way to the management endpoint, one step
//! at a time, each step a check line (observed / required / hint).
//!
//! Steps, in order: `net.endpoint` (configured?), `net.route` (direct or the
//! proxy, and whether `noProxy` applies), `net.dns` (the name this host must
//! resolve: the server's, or the proxy's when proxied; which resolver, how
//! long), `net.tcp` (connect), `net.proxy` (CONNECT through the proxy, when
//! proxied), `net.tls` (handshake: protocol, cipher, trust verdict against
//! the configured roots), `net.cert` (the chain the server sent: subject,
//! issuer, expiry), `net.probe` (the protocol probe through the real
//! transport, as a check-in connects) and `net.clock` (our clock against the
//! server's `Date` header). After the first failed step the rest are
//! skipped, each naming that step.
//!
//! Only the configured endpoint and proxy are contacted. The outpost probe
//! carries no credential; in DDI mode the probe is the controller's base
//! resource and carries the configured DDI token, to the configured
//! endpoint only. The proxy's credentials go only to the proxy. No
//! credential is ever printed.

use super::certinfo::cert_info;
use super::*;
use crate::checks::{Check, Outcome, Status};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::time::Instant;

/// A certificate expiring within this many days is a warning.
pub const EXPIRY_WARN_DAYS: u64 = 14;
/// A clock further than this from the server's is a warning (a check-in
/// still works; certificate checks and schedules drift).
pub const CLOCK_WARN_SECS: u64 = 60;
/// ... and further than this a failure (certificates may look expired).
pub const CLOCK_FAIL_SECS: u64 = 600;

/// What the probe said (and the server's clock from its body), or why it is
/// not the expected protocol.
pub type ProbeVerdict = std::result::Result<(String, Option<u64>), String>;

/// What `network` is given besides the transport settings.
pub struct Target<'a> {
    /// The base URL (`checkin::base_url`), or None when none is configured.
    pub base: Option<&'a str>,
    /// The path of the protocol probe (`/outpost/v1/probe`, or the DDI root).
    pub probe_path: &'a str,
    /// Parses the probe answer: Ok(what it says, the server's clock if the
    /// body tells it) or why it is not the expected protocol.
    pub judge_probe: &'a dyn Fn(&Reply) -> ProbeVerdict,
    /// Headers of the probe (the DDI token in DDI mode; none for outpost).
    pub probe_headers: &'a [(&'a str, &'a str)],
    /// The resolver the host uses, for the report ("10.0.0.2 (/etc/resolv.conf)").
    pub resolver: String,
}

fn check(id: &'static str, title: &'static str, outcome: Outcome) -> Check {
    Check { id, title, outcome }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// Run the steps; stops contacting anything after the first failure.
pub fn network(settings: &HttpSettings, system: Option<&CaBundle>, t: &Target<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    let steps: [(&'static str, &'static str); 9] = [
        ("net.endpoint", "Management endpoint"),
        ("net.route", "Route (direct or proxy)"),
        ("net.dns", "Name resolution"),
        ("net.tcp", "TCP connect"),
        ("net.proxy", "Proxy tunnel (CONNECT)"),
        ("net.tls", "TLS handshake and trust"),
        ("net.cert", "Server certificate chain"),
        ("net.probe", "Protocol probe"),
        ("net.clock", "Clock against the server"),
    ];
    let push = |out: &mut Vec<Check>, i: usize, o: Outcome| {
        let (id, title) = steps[i];
        out.push(check(id, title, o));
    };
    // ---- endpoint
    let Some(base) = t.base else {
        push(
            &mut out,
            0,
            Outcome::new(Status::Fail, "none configured", "an https:// endpoint")
                .hint("set stylus.site.paletteEndpoint (or outpost.server.url) in the config file"),
        );
        skip_rest(&mut out, &steps, 1, "net.endpoint");
        return out;
    };
    let url = format!("{base}{}", t.probe_path);
    let target = match client::Target::parse(&url) {
        Ok(tg) => tg,
        Err(e) => {
            push(
                &mut out,
                0,
                Outcome::new(Status::Fail, e, "an https:// URL").hint("fix the endpoint setting"),
            );
            skip_rest(&mut out, &steps, 1, "net.endpoint");
            return out;
        }
    };
    let plain_ok = settings.allow_plain_loopback && target.is_loopback();
    if !target.https && !plain_ok {
        push(
            &mut out,
            0,
            Outcome::new(Status::Fail, target.safe.clone(), "https://")
                .hint("plain http:// is refused; use https://"),
        );
        skip_rest(&mut out, &steps, 1, "net.endpoint");
        return out;
    }
    push(
        &mut out,
        0,
        Outcome::new(Status::Pass, target.safe.clone(), "an https:// endpoint"),
    );
    // ---- route
    let route = match route(settings, target.https, &target.host, target.port) {
        Ok(r) => r,
        Err(e) => {
            push(
                &mut out,
                1,
                Outcome::new(
                    Status::Fail,
                    e.message().to_string(),
                    "a usable proxy setting",
                )
                .hint("fix the proxy variable or stylus.site.network.httpsProxy"),
            );
            skip_rest(&mut out, &steps, 2, "net.route");
            return out;
        }
    };
    let proxy_source = if settings.proxy.is_some() {
        "stylus.site.network.httpsProxy"
    } else {
        settings
            .proxy_env
            .proxy_for(target.https)
            .map(|v| v.name)
            .unwrap_or("")
    };
    let any_proxy =
        settings.proxy.is_some() || settings.proxy_env.proxy_for(target.https).is_some();
    let route_text = match &route {
        Route::Proxy(p) => format!("proxy {p} (from {proxy_source})"),
        Route::Direct if any_proxy => format!(
            "direct: noProxy matches {} (proxy from {proxy_source} not used)",
            target.host
        ),
        Route::Direct => "direct (no proxy configured)".to_string(),
    };
    push(
        &mut out,
        1,
        Outcome::new(Status::Pass, route_text, "direct or the configured proxy"),
    );
    // ---- dns: the name this host resolves
    let (name, port) = match &route {
        Route::Direct => (target.host.clone(), target.port),
        Route::Proxy(p) => (p.host().to_string(), p.port()),
    };
    let bare = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addrs: Vec<SocketAddr> = if let Ok(ip) = bare.parse::<IpAddr>() {
        push(
            &mut out,
            2,
            Outcome::new(
                Status::Pass,
                format!("{bare} is an IP address: no lookup"),
                "the name resolves",
            ),
        );
        vec![SocketAddr::new(ip, port)]
    } else {
        let started = Instant::now();
        match resolve(&bare, port, settings.connect_timeout) {
            Ok(a) => {
                let list: Vec<String> = a.iter().map(|s| s.ip().to_string()).collect();
                let via = if matches!(route, Route::Proxy(_)) {
                    "; the proxy resolves the server's name"
                } else {
                    ""
                };
                push(
                    &mut out,
                    2,
                    Outcome::new(
                        Status::Pass,
                        format!(
                            "{bare} -> {} in {} via {}{via}",
                            list.join(", "),
                            ms(started.elapsed()),
                            t.resolver
                        ),
                        "the name resolves",
                    ),
                );
                a
            }
            Err(why) => {
                push(
                    &mut out,
                    2,
                    Outcome::new(
                        Status::Fail,
                        format!("{bare}: {why} after {} via {}", ms(started.elapsed()), t.resolver),
                        "the name resolves",
                    )
                    .hint("check /etc/resolv.conf and the DNS server; or the name in the endpoint/proxy setting"),
                );
                skip_rest(&mut out, &steps, 3, "net.dns");
                return out;
            }
        }
    };
    // ---- tcp
    let started = Instant::now();
    let mut last_err = String::new();
    let mut stream = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, settings.connect_timeout) {
            Ok(s) => {
                stream = Some((s, *a));
                break;
            }
            Err(e) => last_err = format!("{a}: {}", io_cause(&e)),
        }
    }
    let what = match &route {
        Route::Direct => "the server",
        Route::Proxy(_) => "the proxy",
    };
    let Some((stream, addr)) = stream else {
        push(
            &mut out,
            3,
            Outcome::new(
                Status::Fail,
                format!("{last_err} after {}", ms(started.elapsed())),
                format!("a TCP connection to {what}"),
            )
            .hint(format!("is {what} up and port {port} open (firewall)?")),
        );
        skip_rest(&mut out, &steps, 4, "net.tcp");
        return out;
    };
    push(
        &mut out,
        3,
        Outcome::new(
            Status::Pass,
            format!("{addr} ({what}) in {}", ms(started.elapsed())),
            format!("a TCP connection to {what}"),
        ),
    );
    let _ = stream.set_read_timeout(Some(settings.timeout));
    let _ = stream.set_write_timeout(Some(settings.timeout));
    let mut stream = stream;
    // ---- proxy CONNECT
    if let Route::Proxy(p) = &route {
        let started = Instant::now();
        match connect_tunnel(&mut stream, p, &target.host, target.port) {
            Ok(line) => push(
                &mut out,
                4,
                Outcome::new(
                    Status::Pass,
                    format!(
                        "CONNECT {}:{} -> {line} in {}",
                        target.host,
                        target.port,
                        ms(started.elapsed())
                    ),
                    "HTTP 200 from the proxy",
                ),
            ),
            Err((line, hint)) => {
                push(
                    &mut out,
                    4,
                    Outcome::new(
                        Status::Fail,
                        format!("CONNECT {}:{} -> {line}", target.host, target.port),
                        "HTTP 200 from the proxy",
                    )
                    .hint(hint),
                );
                skip_rest(&mut out, &steps, 5, "net.proxy");
                return out;
            }
        }
    } else {
        push(
            &mut out,
            4,
            Outcome::new(Status::Skip, "no proxy on this route", "-"),
        );
    }
    // ---- tls
    if !target.https {
        push(
            &mut out,
            5,
            Outcome::new(Status::Skip, "plain http (loopback test switch)", "-"),
        );
        push(&mut out, 6, Outcome::new(Status::Skip, "plain http", "-"));
    } else {
        let seen = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let (tls_out, chain_ok) = handshake(settings, system, &target.host, &mut stream, &seen);
        let failed_tls = tls_out.status == Status::Fail;
        push(&mut out, 5, tls_out);
        let chain = seen.lock().map(|c| c.clone()).unwrap_or_default();
        let cert_out = describe_chain(&chain, settings.now, chain_ok);
        push(&mut out, 6, cert_out);
        if failed_tls {
            skip_rest(&mut out, &steps, 7, "net.tls");
            return out;
        }
    }
    drop(stream);
    // ---- probe through the real transport
    let client = match Client::new(settings.clone(), system) {
        Ok(c) => c,
        Err(e) => {
            push(
                &mut out,
                7,
                Outcome::new(Status::Fail, e.message().to_string(), "a usable transport"),
            );
            skip_rest(&mut out, &steps, 8, "net.probe");
            return out;
        }
    };
    let started = Instant::now();
    let reply = match client.get(&url, t.probe_headers) {
        Ok(r) => r,
        Err(e) => {
            push(
                &mut out,
                7,
                Outcome::new(
                    Status::Fail,
                    e.message().to_string(),
                    format!("HTTP 200 from GET {}", target.safe),
                ),
            );
            skip_rest(&mut out, &steps, 8, "net.probe");
            return out;
        }
    };
    let took = started.elapsed();
    let mut body_time = None;
    match (t.judge_probe)(&reply) {
        Ok((said, server_time)) => {
            body_time = server_time;
            push(
                &mut out,
                7,
                Outcome::new(
                    Status::Pass,
                    format!("HTTP {} in {}: {said}", reply.status, ms(took)),
                    format!("HTTP 200 from GET {}", target.safe),
                ),
            )
        }
        Err(why) => push(
            &mut out,
            7,
            Outcome::new(
                Status::Fail,
                format!("HTTP {}: {why}", reply.status),
                format!("HTTP 200 from GET {}", target.safe),
            )
            .hint("is the endpoint the management server (and not a portal or another service)?"),
        ),
    }
    // ---- clock
    let ours = settings
        .now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = reply
        .date
        .as_deref()
        .and_then(crate::timefmt::parse_http_date);
    let (theirs, from) = match (header, body_time) {
        (Some(h), _) => (Some(h), "Date header"),
        (None, Some(b)) => (Some(b), "probe server_time; no Date header"),
        (None, None) => (None, ""),
    };
    let clock = match theirs {
        None => Outcome::new(
            Status::Warn,
            "the server sent no (valid) Date header",
            format!("within {CLOCK_WARN_SECS} s of the server"),
        ),
        Some(theirs) => {
            let off = ours as i64 - theirs as i64;
            let abs = off.unsigned_abs();
            let status = if abs > CLOCK_FAIL_SECS {
                Status::Fail
            } else if abs > CLOCK_WARN_SECS {
                Status::Warn
            } else {
                Status::Pass
            };
            let o = Outcome::new(
                status,
                format!(
                    "ours {} vs server {} ({off:+} s, from its {from})",
                    crate::timefmt::rfc3339(ours),
                    crate::timefmt::rfc3339(theirs)
                ),
                format!("within {CLOCK_WARN_SECS} s of the server"),
            );
            if status == Status::Pass {
                o
            } else {
                o.hint("set the clock (NTP: systemd-timesyncd, chrony)")
            }
        }
    };
    push(&mut out, 8, clock);
    out
}

/// The first failed step's ID, for the one-line summary.
pub fn first_failure(checks: &[Check]) -> Option<&'static str> {
    checks
        .iter()
        .find(|c| c.id.starts_with("net.") && c.outcome.status == Status::Fail)
        .map(|c| c.id)
}

fn skip_rest(out: &mut Vec<Check>, steps: &[(&'static str, &'static str)], from: usize, why: &str) {
    for (id, title) in &steps[from..] {
        out.push(check(
            id,
            title,
            Outcome::new(Status::Skip, format!("not tried: {why} failed"), "-"),
        ));
    }
}

fn io_cause(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timed out".to_string(),
        _ => e.to_string(),
    }
}

/// Resolve through the system resolver, bounded by `limit` (the lookup runs
/// on a helper thread that is left behind when it overruns).
fn resolve(name: &str, port: u16, limit: Duration) -> std::result::Result<Vec<SocketAddr>, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let q = format!("{name}:{port}");
    std::thread::spawn(move || {
        let r = q.to_socket_addrs().map(|a| a.collect::<Vec<_>>());
        let _ = tx.send(r.map_err(|e| e.to_string()));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(a)) if !a.is_empty() => Ok(a),
        Ok(Ok(_)) => Err("no addresses".to_string()),
        Ok(Err(e)) => Err(format!("lookup failed ({e})")),
        Err(_) => Err(format!("no answer within {} s", limit.as_secs())),
    }
}

/// CONNECT through an http proxy; Ok(status line) on 200, or (what was
/// seen, hint). Reads the answer head byte by byte (bounded) so nothing of
/// the TLS stream that follows is consumed.
fn connect_tunnel(
    s: &mut TcpStream,
    p: &ProxyUrl,
    host: &str,
    port: u16,
) -> std::result::Result<String, (String, String)> {
    use base64::Engine;
    let mut req = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n");
    if let Some(u) = p.userinfo() {
        let dec = percent_decode(u);
        req.push_str(&format!(
            "Proxy-Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(dec)
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| (io_cause(&e), "the proxy closed the connection".to_string()))?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err((
                "answer head longer than 8 KiB".into(),
                "is this an HTTP proxy?".into(),
            ));
        }
        match s.read(&mut b) {
            Ok(0) => {
                return Err((
                    "connection closed before an answer".into(),
                    "is this an HTTP proxy?".into(),
                ))
            }
            Ok(_) => head.push(b[0]),
            Err(e) => return Err((io_cause(&e), "the proxy did not answer in time".into())),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next().unwrap_or("").trim().to_string();
    let code = line.split_whitespace().nth(1).unwrap_or("");
    match code {
        "200" => Ok(line),
        "407" | "401" if p.has_credentials() => Err((
            line,
            "the proxy refused the user:password in the proxy URL".into(),
        )),
        "407" | "401" => Err((
            line,
            "the proxy wants credentials: put user:password in the proxy URL".into(),
        )),
        "403" => Err((
            line,
            "the proxy refuses this destination (its allow list / ConnectPort)".into(),
        )),
        _ => Err((
            line,
            "the proxy could not open a tunnel to the server".into(),
        )),
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Records the chain the server sent, then lets the real verifier judge it
/// (or, with verification off, accepts it: reported as a warning).
#[derive(Debug)]
struct Recorder {
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    inner: Option<Arc<dyn ServerCertVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut s) = self.seen.lock() {
            s.push(end_entity.to_vec());
            s.extend(intermediates.iter().map(|c| c.to_vec()));
        }
        match &self.inner {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS handshake over `stream` with the roots a check-in trusts; the
/// outcome line and whether the chain verified.
fn handshake(
    settings: &HttpSettings,
    system: Option<&CaBundle>,
    host: &str,
    stream: &mut TcpStream,
    seen: &Arc<Mutex<Vec<Vec<u8>>>>,
) -> (Outcome, bool) {
    // The same provider as every request (http/provider.rs).
    let provider = super::provider::provider();
    let mut store = rustls::RootCertStore::empty();
    let mut from = Vec::new();
    if let Some(b) = system {
        let (ders, _) = pem_certificates(&b.pem);
        let (added, _) =
            store.add_parsable_certificates(ders.into_iter().map(CertificateDer::from));
        from.push(format!("{added} from {}", b.path.display()));
    }
    if !settings.extra_ca.is_empty() {
        let (added, _) = store.add_parsable_certificates(
            settings
                .extra_ca
                .iter()
                .map(|c| CertificateDer::from(c.der.clone())),
        );
        from.push(format!("{added} from caCerts"));
    }
    let required = "a TLS 1.2+ handshake with a chain trusted by the configured roots";
    let inner: Option<Arc<dyn ServerCertVerifier>> = if settings.insecure_skip_verify {
        None
    } else if store.is_empty() {
        return (
            Outcome::new(Status::Fail, "no trusted CA certificates", required).hint(format!(
                "install the distribution's CA bundle ({}) or set caCerts",
                SYSTEM_CA_PATHS[0]
            )),
            false,
        );
    } else {
        match rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(store),
            provider.clone(),
        )
        .build()
        {
            Ok(v) => Some(v),
            Err(e) => {
                return (
                    Outcome::new(Status::Fail, format!("trust roots unusable: {e}"), required),
                    false,
                )
            }
        }
    };
    let verifier = Arc::new(Recorder {
        seen: seen.clone(),
        inner,
        provider: provider.clone(),
    });
    let config = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
        Err(e) => return (Outcome::new(Status::Fail, e.to_string(), required), false),
    };
    let name = match ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    ) {
        Ok(n) => n,
        Err(_) => {
            return (
                Outcome::new(
                    Status::Fail,
                    format!("{host}: not a valid TLS server name"),
                    required,
                ),
                false,
            )
        }
    };
    let mut conn = match rustls::ClientConnection::new(Arc::new(config), name) {
        Ok(c) => c,
        Err(e) => return (Outcome::new(Status::Fail, e.to_string(), required), false),
    };
    let started = Instant::now();
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(stream) {
            let text = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                Some(te) => tls_cause(te, settings.now, crate::version::build_epoch()).1,
                None => io_cause(&e),
            };
            return (
                Outcome::new(Status::Fail, text, required).hint(
                    "the server's certificate must chain to the system CA bundle or a caCerts entry, name this host and be in date",
                ),
                false,
            );
        }
    }
    let proto = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        _ => "TLS",
    };
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let trust = if settings.insecure_skip_verify {
        "certificate NOT verified (insecureSkipVerify)".to_string()
    } else {
        format!("chain trusted (roots: {})", from.join(", "))
    };
    let o = Outcome::new(
        if settings.insecure_skip_verify {
            Status::Warn
        } else {
            Status::Pass
        },
        format!("{proto} {suite} in {}; {trust}", ms(started.elapsed())),
        required,
    );
    let o = if settings.insecure_skip_verify {
        o.hint("turn insecureSkipVerify off and configure caCerts")
    } else {
        o
    };
    // Close politely; the probe opens its own connection.
    conn.send_close_notify();
    let _ = conn.complete_io(stream);
    (o, !settings.insecure_skip_verify)
}

fn describe_chain(chain: &[Vec<u8>], now: SystemTime, verified: bool) -> Outcome {
    let required = format!("in date, not expiring within {EXPIRY_WARN_DAYS} days");
    if chain.is_empty() {
        return Outcome::new(Status::Skip, "no certificate received", "-");
    }
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut parts = Vec::new();
    let mut status = Status::Pass;
    let mut hint = String::new();
    for (i, der) in chain.iter().enumerate() {
        let Some(ci) = cert_info(der) else {
            parts.push(format!("[{i}] unparsable certificate"));
            status = crate::checks::worst(status, Status::Warn);
            continue;
        };
        let left = ci.not_after as i64 - now_s as i64;
        let when = if left < 0 {
            status = Status::Fail;
            hint = "renew the server certificate (or check this host's clock)".into();
            "EXPIRED"
        } else if (left as u64) < EXPIRY_WARN_DAYS * 86_400 {
            status = crate::checks::worst(status, Status::Warn);
            hint = "renew the server certificate soon".into();
            "expires soon"
        } else {
            "expires"
        };
        parts.push(format!(
            "[{i}] subject {}; issuer {}; {when} {}",
            ci.subject,
            ci.issuer,
            crate::timefmt::rfc3339(ci.not_after)
        ));
    }
    if !verified && status == Status::Pass {
        status = Status::Warn;
    }
    let mut o = Outcome::new(status, parts.join(" | "), required);
    if !hint.is_empty() {
        o = o.hint(hint);
    }
    o
}

#[cfg(test)]
mod diag_tests {
    use super::*;

    #[test]
    fn percent_decoding_of_proxy_userinfo() {
        assert_eq!(percent_decode("u%40x:p%3Aw"), b"u@x:p:w".to_vec());
        assert_eq!(percent_decode("plain:pw%"), b"plain:pw%".to_vec());
        assert_eq!(percent_decode("a%zz"), b"a%zz".to_vec());
    }

    #[test]
    fn first_failure_names_the_first_failed_step() {
        let c = |id, s| check(id, "t", Outcome::new(s, "", ""));
        let list = vec![
            c("arch", Status::Fail),
            c("net.dns", Status::Pass),
            c("net.tcp", Status::Fail),
            c("net.tls", Status::Skip),
        ];
        assert_eq!(first_failure(&list), Some("net.tcp"));
    }
}
