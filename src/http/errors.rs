//! Error classes: what a ureq or rustls failure means, as one exit code and
//! one line naming the request.

use super::*;

/// What a failure is reported against.
pub(super) struct Ctx<'a> {
    pub(super) what: &'a str,
    pub(super) target: &'a Target,
    pub(super) route: &'a Route,
    pub(super) settings: &'a HttpSettings,
}

impl Ctx<'_> {
    pub(super) fn fail(&self, code: Code, cause: impl fmt::Display) -> Error {
        Error::new(code, format!("{}: {cause}", self.what))
    }

    pub(super) fn secs(d: Duration) -> String {
        let ms = d.as_millis();
        if ms % 1000 == 0 {
            format!("{} s", ms / 1000)
        } else {
            format!("{:.1} s", d.as_secs_f64())
        }
    }

    pub(super) fn classify(&self, e: &ureq::Error) -> Error {
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

    pub(super) fn tls(&self, e: &rustls::Error) -> Error {
        let (code, cause) = tls_cause(e, self.settings.now, crate::version::build_epoch());
        self.fail(code, cause)
    }
}

/// musl's getaddrinfo failures arrive as io errors of kind `Other` (or
/// `Uncategorized`) with a resolver message.
pub(super) fn is_dns_failure(e: &std::io::Error) -> bool {
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
