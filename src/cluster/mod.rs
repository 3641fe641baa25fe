//! Clusters on the agent side: the role a host plays (init-server,
//! join-server, join-agent), the cluster it joins (distribution, version,
//! endpoint on a virtual IP or a DNS name), the role's state machine, and
//! the modules that render, check and apply it.
//!
//! Pure model only: no I/O here. Rendering is `render`, the VIP preflight
//! `vip`, dynamic DNS `ddns`, writing files and starting K3s `apply`.
//! Secrets (the join token) live in `Token`, whose `Debug` never shows them.

pub mod apply;
pub mod bundle;
pub mod cmd;
pub mod ddns;
pub mod hub;
pub mod preflight;
pub mod render;
pub mod vip;
pub mod worker;

use std::fmt;
use std::net::IpAddr;

/// The part a host plays in its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The first control-plane host: creates the cluster (K3s `cluster-init`).
    InitServer,
    /// A further control-plane host joining through the endpoint.
    JoinServer,
    /// A worker joining through the endpoint.
    JoinAgent,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "init-server" => Some(Role::InitServer),
            "join-server" => Some(Role::JoinServer),
            "join-agent" => Some(Role::JoinAgent),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::InitServer => "init-server",
            Role::JoinServer => "join-server",
            Role::JoinAgent => "join-agent",
        }
    }

    /// Control-plane roles carry the VIP and the API server.
    pub fn is_server(self) -> bool {
        !matches!(self, Role::JoinAgent)
    }
}

/// The Kubernetes distribution of a cluster: the one type `check --distro`
/// uses too (its parser takes `pxke` and `pxk-e`).
pub use crate::checks::support::Distro;

/// Where the cluster's Kubernetes API is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A virtual IP held by kube-vip (ARP mode) on one control-plane host.
    Vip(IpAddr),
    /// A DNS name (kept up to date by dynamic DNS, or by the site).
    Dns(String),
}

impl Endpoint {
    /// `vip:ADDR` or `dns:NAME`.
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        if let Some(a) = s.strip_prefix("vip:") {
            a.parse::<IpAddr>()
                .map(Endpoint::Vip)
                .map_err(|_| format!("endpoint {s:?}: {a:?} is not an IP address"))
        } else if let Some(n) = s.strip_prefix("dns:") {
            if valid_dns_name(n) {
                Ok(Endpoint::Dns(n.trim_end_matches('.').to_ascii_lowercase()))
            } else {
                Err(format!("endpoint {s:?}: {n:?} is not a DNS name"))
            }
        } else {
            Err(format!("endpoint {s:?}: expected vip:ADDR or dns:NAME"))
        }
    }

    /// The host part as it goes into a certificate SAN or a URL host.
    pub fn host(&self) -> String {
        match self {
            Endpoint::Vip(a) => a.to_string(),
            Endpoint::Dns(n) => n.clone(),
        }
    }

    /// `https://HOST:6443` (IPv6 in brackets).
    pub fn server_url(&self) -> String {
        match self {
            Endpoint::Vip(IpAddr::V6(a)) => format!("https://[{a}]:6443"),
            _ => format!("https://{}:6443", self.host()),
        }
    }

    pub fn vip(&self) -> Option<IpAddr> {
        match self {
            Endpoint::Vip(a) => Some(*a),
            Endpoint::Dns(_) => None,
        }
    }
}

/// RFC 1123 host name with at least two labels, each 1-63 of [a-z0-9-],
/// not starting or ending with '-'; at most 253 characters.
pub fn valid_dns_name(n: &str) -> bool {
    let n = n.strip_suffix('.').unwrap_or(n);
    if n.is_empty() || n.len() > 253 || !n.contains('.') {
        return false;
    }
    n.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}

/// A join token. `Debug` and `Display` print `<redacted>`; only the
/// renderers read it through `expose`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(s: impl Into<String>) -> Token {
        Token(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// K3s's secure form `K10<sha256 hex of the CA>::<credentials>`, which
    /// makes a joiner pin the cluster CA.
    pub fn is_k3s_secure(&self) -> bool {
        let Some(rest) = self.0.strip_prefix("K10") else {
            return false;
        };
        let Some((hash, creds)) = rest.split_once("::") else {
            return false;
        };
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && !creds.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything a host needs to render and apply its role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub cluster: String,
    pub distro: Distro,
    /// Kubernetes version, e.g. `v1.31.4+k3s1` or `1.31.4`.
    pub version: String,
    pub endpoint: Endpoint,
    pub role: Role,
    /// This host's ID (goes into a node label).
    pub host_id: String,
    /// This host's address on the cluster network (`node-ip`).
    pub node_ip: Option<IpAddr>,
    /// The interface kube-vip announces the VIP on.
    pub interface: Option<String>,
    pub pod_cidr: Option<String>,
    pub service_cidr: Option<String>,
    /// `stylus.vip.skip`: do not deploy kube-vip even with a VIP endpoint.
    pub vip_skip: bool,
    /// The join token (init-server: the bootstrap token it starts with).
    pub token: Token,
}

impl Spec {
    /// Whether this role on this cluster gets a kube-vip manifest.
    pub fn wants_kube_vip(&self) -> bool {
        self.role.is_server() && !self.vip_skip && self.endpoint.vip().is_some()
    }
}

/// Where a role stands; reported to the hub and shown by the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleState {
    /// Nothing applied yet.
    Pending,
    /// Preflight passed; files being written and the service started.
    Installing,
    /// The service is active; the node is not yet ready.
    Running,
    /// The node reports ready (init-server: and the API answers).
    Ready,
    /// Stopped with a reason and the last lines of the service's log.
    Failed { reason: String, log_tail: String },
}

impl RoleState {
    pub fn name(&self) -> &'static str {
        match self {
            RoleState::Pending => "pending",
            RoleState::Installing => "installing",
            RoleState::Running => "running",
            RoleState::Ready => "ready",
            RoleState::Failed { .. } => "failed",
        }
    }

    /// The allowed moves: pending -> installing -> running -> ready, any
    /// state -> failed, failed -> installing (retry), ready -> installing
    /// (the spec changed). Everything else is a bug in the caller.
    pub fn can_move_to(&self, next: &RoleState) -> bool {
        use RoleState as S;
        matches!(
            (self, next),
            (S::Pending, S::Installing)
                | (S::Installing, S::Running)
                | (S::Running, S::Ready)
                | (S::Failed { .. }, S::Installing)
                | (S::Ready, S::Installing)
                | (_, S::Failed { .. })
        )
    }
}

/// Keep the last `lines` lines of a log, each cut to 200 characters.
pub fn log_tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..]
        .iter()
        .map(|l| l.chars().take(200).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("vip:10.0.0.100", Ok("https://10.0.0.100:6443")),
            ("vip:fd00::64", Ok("https://[fd00::64]:6443")),
            ("dns:API.Example.test.", Ok("https://api.example.test:6443")),
            (
                "vip:10.0.0.300",
                Err("endpoint \"vip:10.0.0.300\": \"10.0.0.300\" is not an IP address"),
            ),
            (
                "dns:localhost",
                Err("endpoint \"dns:localhost\": \"localhost\" is not a DNS name"),
            ),
            (
                "dns:-a.example",
                Err("endpoint \"dns:-a.example\": \"-a.example\" is not a DNS name"),
            ),
            (
                "10.0.0.1",
                Err("endpoint \"10.0.0.1\": expected vip:ADDR or dns:NAME"),
            ),
        ];
        for (input, want) in cases {
            let got = Endpoint::parse(input).map(|e| e.server_url());
            assert_eq!(
                got.as_deref().map_err(|e| e.as_str()),
                *want,
                "case {input}"
            );
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in [Role::InitServer, Role::JoinServer, Role::JoinAgent] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("server"), None);
        assert!(Role::InitServer.is_server() && Role::JoinServer.is_server());
        assert!(!Role::JoinAgent.is_server());
    }

    #[test]
    fn token_never_prints() {
        let t = Token::new("K10abc::server:secret");
        assert_eq!(format!("{t:?} {t}"), "Token(<redacted>) <redacted>");
        let spec_dbg = format!("{:?}", t);
        assert!(!spec_dbg.contains("secret"));
    }

    #[test]
    fn k3s_secure_token_form() {
        let h = "a".repeat(64);
        let cases = [
            (format!("K10{h}::server:abc"), true),
            (format!("K10{h}::"), false),
            ("K10abc::server:abc".to_string(), false),
            ("plain-token".to_string(), false),
            (format!("K11{h}::server:abc"), false),
        ];
        for (t, want) in cases {
            assert_eq!(Token::new(t.clone()).is_k3s_secure(), want, "case {t}");
        }
    }

    #[test]
    fn state_machine() {
        use RoleState as S;
        let failed = S::Failed {
            reason: "x".into(),
            log_tail: String::new(),
        };
        let ok = [
            (S::Pending, S::Installing),
            (S::Installing, S::Running),
            (S::Running, S::Ready),
            (S::Running, failed.clone()),
            (S::Installing, failed.clone()),
            (failed.clone(), S::Installing),
            (S::Ready, S::Installing),
        ];
        for (a, b) in ok {
            assert!(a.can_move_to(&b), "{} -> {}", a.name(), b.name());
        }
        let bad = [
            (S::Pending, S::Ready),
            (S::Installing, S::Ready),
            (S::Ready, S::Running),
            (S::Pending, S::Running),
            (failed.clone(), S::Ready),
        ];
        for (a, b) in bad {
            assert!(
                !a.can_move_to(&b),
                "{} -> {} must be refused",
                a.name(),
                b.name()
            );
        }
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(log_tail("a\nb\nc\nd", 2), "c\nd");
        assert_eq!(log_tail("a", 5), "a");
        assert_eq!(log_tail(&"x".repeat(300), 1).len(), 200);
    }
}
