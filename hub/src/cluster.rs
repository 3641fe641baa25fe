//! Clusters on the hub, the pure part: the pool rules the platform documents
//! (an odd number of control-plane hosts, except the explicit two-node
//! mode the platform offers for K3s and Canonical; all members on one OS; Canonical only on Ubuntu and AMD64; each host
//! in one cluster), picking the init node, and the order in which members
//! are released (the init server first; joiners only after it is ready and
//! has sent the secure K10 join token; join-servers one at a time).
//!
//! Functions of values only; the registry and the commands use them. The
//! join token is held as `outpost::cluster::Token` (redacted in Debug).

use outpost::cluster::{Distro, Endpoint, Role, Token};
use std::net::IpAddr;

/// Which pool a host was added to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    ControlPlane,
    Worker,
}

impl Pool {
    pub fn parse(s: &str) -> Option<Pool> {
        match s {
            "control-plane" => Some(Pool::ControlPlane),
            "worker" => Some(Pool::Worker),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Pool::ControlPlane => "control-plane",
            Pool::Worker => "worker",
        }
    }
}

/// A member as the rules see it (facts from the host's last inventory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub host_id: String,
    pub pool: Pool,
    /// `os-release` ID and VERSION_ID, e.g. ("ubuntu", "22.04").
    pub os: (String, String),
    /// `x86_64` or `aarch64`.
    pub arch: String,
    /// The role state the agent last reported ("" = none yet).
    pub state: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    pub distro: Distro,
    pub version: String,
    pub endpoint: Endpoint,
    pub interface: Option<String>,
    pub pod_cidr: Option<String>,
    pub service_cidr: Option<String>,
    /// Two-node mode (K3s, Canonical): exactly two control-plane hosts allowed.
    pub two_node: bool,
    /// Members in the order they were added.
    pub members: Vec<Member>,
    /// The secure join token the init server sent, once it has.
    pub join_token: Option<Token>,
}

/// Parse `ADDR/PREFIX`.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = s.split_once('/')?;
    let ip: IpAddr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (p <= max).then_some((ip, p))
}

/// Rules on the cluster's own settings (at `cluster create`).
pub fn check_settings(c: &Cluster) -> Vec<String> {
    let mut e = Vec::new();
    let n = &c.name;
    if n.is_empty()
        || n.len() > 63
        || n.starts_with('-')
        || n.ends_with('-')
        || !n
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        e.push(format!(
            "cluster name {n:?}: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'"
        ));
    }
    if c.version.is_empty() {
        e.push("--version is empty".into());
    }
    if c.two_node && !two_node_allowed(c.distro) {
        e.push(format!(
            "--two-node is for K3s and Canonical; {} needs an odd number of control-plane hosts",
            c.distro.id()
        ));
    }
    let mut nets = Vec::new();
    for (flag, v) in [
        ("--pod-cidr", &c.pod_cidr),
        ("--service-cidr", &c.service_cidr),
    ] {
        if let Some(s) = v {
            match parse_cidr(s) {
                Some(n) => nets.push((flag, s, n)),
                None => e.push(format!("{flag} {s:?} is not ADDR/PREFIX")),
            }
        }
    }
    if let [(f1, s1, (a1, p1)), (f2, s2, (a2, p2))] = nets[..] {
        let p = p1.min(p2);
        if outpost::cluster::vip::in_subnet(a1, a2, p) {
            e.push(format!("{f1} {s1} and {f2} {s2} overlap"));
        }
    }
    if let Some(vip) = c.endpoint.vip() {
        for (flag, s, (a, p)) in &nets {
            if outpost::cluster::vip::in_subnet(vip, *a, *p) {
                e.push(format!("the VIP {vip} lies inside {flag} {s}"));
            }
        }
    }
    e
}

/// Rules on the pools (at `cluster add`, and before any role is released).
pub fn check_pools(c: &Cluster) -> Vec<String> {
    let mut e = Vec::new();
    let cps = c
        .members
        .iter()
        .filter(|m| m.pool == Pool::ControlPlane)
        .count();
    if cps == 0 {
        e.push("no control-plane host yet: add one with --role control-plane".into());
    } else if c.two_node {
        if cps != 2 {
            e.push(format!(
                "two-node mode needs exactly 2 control-plane hosts, has {cps}"
            ));
        }
    } else if cps % 2 == 0 {
        e.push(format!(
            "{cps} control-plane hosts: etcd needs an odd number (1, 3, 5, ...); add or remove one{}",
            if two_node_allowed(c.distro) && cps == 2 {
                ", or create the cluster with --two-node"
            } else {
                ""
            }
        ));
    }
    if let Some(first) = c.members.first() {
        for m in &c.members[1..] {
            if m.os != first.os {
                e.push(format!(
                    "{} runs {} {}, {} runs {} {}: all members must run the same OS",
                    m.host_id, m.os.0, m.os.1, first.host_id, first.os.0, first.os.1
                ));
            }
        }
    }
    if c.distro == Distro::Canonical {
        for m in &c.members {
            if m.os.0 != "ubuntu" || m.arch != "x86_64" {
                e.push(format!(
                    "{} runs {} on {}: Canonical Kubernetes needs Ubuntu on AMD64",
                    m.host_id, m.os.0, m.arch
                ));
            }
        }
    }
    for (i, m) in c.members.iter().enumerate() {
        if c.members[..i].iter().any(|o| o.host_id == m.host_id) {
            e.push(format!("{} is added twice", m.host_id));
        }
    }
    e
}

/// Whether the platform offers its two-node mode ("Enable Two-Node
/// Capability") for a distribution: K3s and Canonical, not PXK-E (kubeadm
/// with stacked etcd needs an odd quorum).
pub fn two_node_allowed(d: Distro) -> bool {
    match d {
        Distro::K3s | Distro::Canonical => true,
        Distro::Pxke => false,
    }
}

/// Whether a pool error only holds the cluster back until hosts are added
/// or removed (a count), rather than making a member impossible.
pub fn held_only(e: &str) -> bool {
    e.contains("etcd needs an odd number")
        || e.starts_with("two-node mode needs")
        || e.starts_with("no control-plane host yet")
}

/// The init node: the first control-plane host added.
pub fn init_node(c: &Cluster) -> Option<&Member> {
    c.members.iter().find(|m| m.pool == Pool::ControlPlane)
}

/// What a member is told in its desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instruction {
    /// Not yet: the reason is shown by `cluster show`.
    Wait(String),
    Apply {
        role: Role,
        server_url: String,
        /// None for the init server (it starts with its bootstrap token).
        join_token: Option<Token>,
    },
}

/// Who gets what now. Nothing is released while the pools break a rule.
/// The init server first; when it is `ready` and the K10 token is in,
/// workers all at once and join-servers one at a time (the next after the
/// previous reported ready), as etcd wants members added singly.
pub fn plan(c: &Cluster) -> Vec<(String, Instruction)> {
    let errors = check_pools(c);
    let url = c.endpoint.server_url();
    let Some(init) = init_node(c) else {
        return c
            .members
            .iter()
            .map(|m| {
                (
                    m.host_id.clone(),
                    Instruction::Wait("no control-plane host".into()),
                )
            })
            .collect();
    };
    if !errors.is_empty() {
        return c
            .members
            .iter()
            .map(|m| (m.host_id.clone(), Instruction::Wait(errors[0].clone())))
            .collect();
    }
    let init_ready = init.state == "ready";
    let token = c
        .join_token
        .clone()
        .filter(|t| t.is_k3s_secure() || c.distro != Distro::K3s);
    let mut out = Vec::new();
    let mut joining_server_busy = false;
    for m in &c.members {
        let ins = if m.host_id == init.host_id {
            Instruction::Apply {
                role: Role::InitServer,
                server_url: url.clone(),
                join_token: None,
            }
        } else if !init_ready {
            Instruction::Wait(format!(
                "waiting for the init server {} to be ready",
                init.host_id
            ))
        } else if token.is_none() {
            Instruction::Wait(format!("waiting for the join token from {}", init.host_id))
        } else if m.pool == Pool::Worker {
            Instruction::Apply {
                role: Role::JoinAgent,
                server_url: url.clone(),
                join_token: token.clone(),
            }
        } else if m.state == "ready" || !joining_server_busy {
            if m.state != "ready" {
                joining_server_busy = true;
            }
            Instruction::Apply {
                role: Role::JoinServer,
                server_url: url.clone(),
                join_token: token.clone(),
            }
        } else {
            Instruction::Wait("waiting for the previous control-plane host to join".into())
        };
        out.push((m.host_id.clone(), ins));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, pool: Pool, os: &str, arch: &str) -> Member {
        let (a, b) = os.split_once(' ').unwrap_or((os, ""));
        Member {
            host_id: id.into(),
            pool,
            os: (a.into(), b.into()),
            arch: arch.into(),
            state: String::new(),
        }
    }

    fn cluster(distro: Distro, members: Vec<Member>) -> Cluster {
        Cluster {
            name: "edge-1".into(),
            distro,
            version: "v1.31.4+k3s1".into(),
            endpoint: Endpoint::Vip("10.0.0.100".parse().unwrap_or_else(|_| unreachable!())),
            interface: Some("eth0".into()),
            pod_cidr: Some("10.42.0.0/16".into()),
            service_cidr: Some("10.43.0.0/16".into()),
            two_node: false,
            members,
            join_token: None,
        }
    }

    use Pool::{ControlPlane as Cp, Worker as W};
    const DEB: &str = "debian 12";

    #[test]
    fn pool_rules() {
        let cases: Vec<(&str, Cluster, Vec<&str>)> = vec![
            ("one server", cluster(Distro::K3s, vec![m("a", Cp, DEB, "x86_64")]), vec![]),
            (
                "three servers and a worker",
                cluster(Distro::K3s, vec![m("a", Cp, DEB, "x86_64"), m("b", Cp, DEB, "x86_64"), m("c", Cp, DEB, "aarch64"), m("d", W, DEB, "x86_64")]),
                vec![],
            ),
            ("workers only", cluster(Distro::K3s, vec![m("d", W, DEB, "x86_64")]), vec!["no control-plane host yet: add one with --role control-plane"]),
            (
                "two servers, K3s",
                cluster(Distro::K3s, vec![m("a", Cp, DEB, "x86_64"), m("b", Cp, DEB, "x86_64")]),
                vec!["2 control-plane hosts: etcd needs an odd number (1, 3, 5, ...); add or remove one, or create the cluster with --two-node"],
            ),
            (
                "four servers, kubeadm",
                cluster(Distro::Pxke, (0..4).map(|i| m(&format!("h{i}"), Cp, DEB, "x86_64")).collect()),
                vec!["4 control-plane hosts: etcd needs an odd number (1, 3, 5, ...); add or remove one"],
            ),
            (
                "mixed OS",
                cluster(Distro::K3s, vec![m("a", Cp, DEB, "x86_64"), m("b", W, "ubuntu 22.04", "x86_64")]),
                vec!["b runs ubuntu 22.04, a runs debian 12: all members must run the same OS"],
            ),
            (
                "canonical on arm",
                cluster(Distro::Canonical, vec![m("a", Cp, "ubuntu 24.04", "aarch64")]),
                vec!["a runs ubuntu on aarch64: Canonical Kubernetes needs Ubuntu on AMD64"],
            ),
            (
                "canonical on debian",
                cluster(Distro::Canonical, vec![m("a", Cp, DEB, "x86_64")]),
                vec!["a runs debian on x86_64: Canonical Kubernetes needs Ubuntu on AMD64"],
            ),
            ("canonical ok", cluster(Distro::Canonical, vec![m("a", Cp, "ubuntu 24.04", "x86_64")]), vec![]),
            (
                "twice",
                cluster(Distro::K3s, vec![m("a", Cp, DEB, "x86_64"), m("a", W, DEB, "x86_64")]),
                vec!["a is added twice"],
            ),
        ];
        for (label, c, want) in cases {
            assert_eq!(check_pools(&c), want, "case {label}");
        }
        let mut two = cluster(
            Distro::K3s,
            vec![m("a", Cp, DEB, "x86_64"), m("b", Cp, DEB, "x86_64")],
        );
        two.two_node = true;
        assert_eq!(check_pools(&two), Vec::<String>::new(), "K3s two-node mode");
        two.members.push(m("c", Cp, DEB, "x86_64"));
        assert_eq!(
            check_pools(&two),
            ["two-node mode needs exactly 2 control-plane hosts, has 3"]
        );
    }

    #[test]
    fn two_node_per_distribution() {
        // As the platform offers "Enable Two-Node Capability".
        for (d, want) in [
            (Distro::K3s, true),
            (Distro::Canonical, true),
            (Distro::Pxke, false),
        ] {
            assert_eq!(two_node_allowed(d), want, "{d:?}");
            let mut c = cluster(d, vec![]);
            c.two_node = true;
            let refused = check_settings(&c).iter().any(|e| e.contains("--two-node"));
            assert_eq!(refused, !want, "{d:?}");
        }
        let mut can = cluster(
            Distro::Canonical,
            vec![
                m("a", Pool::ControlPlane, "ubuntu 24.04", "x86_64"),
                m("b", Pool::ControlPlane, "ubuntu 24.04", "x86_64"),
            ],
        );
        assert_eq!(
            check_pools(&can),
            ["2 control-plane hosts: etcd needs an odd number (1, 3, 5, ...); add or remove one, or create the cluster with --two-node"]
        );
        can.two_node = true;
        assert_eq!(
            check_pools(&can),
            Vec::<String>::new(),
            "Canonical two-node mode"
        );
    }

    #[test]
    fn settings_rules() {
        let mut c = cluster(Distro::Pxke, vec![]);
        c.two_node = true;
        c.name = "Edge_1".into();
        c.pod_cidr = Some("10.0.0.0/8".into());
        c.service_cidr = Some("10.43.0.0/33".into());
        assert_eq!(
            check_settings(&c),
            [
                "cluster name \"Edge_1\": 1-63 of a-z, 0-9 and '-', not starting or ending with '-'",
                "--two-node is for K3s and Canonical; pxke needs an odd number of control-plane hosts",
                "--service-cidr \"10.43.0.0/33\" is not ADDR/PREFIX",
                "the VIP 10.0.0.100 lies inside --pod-cidr 10.0.0.0/8",
            ]
        );
        let mut c = cluster(Distro::K3s, vec![]);
        c.service_cidr = Some("10.42.128.0/17".into());
        assert_eq!(
            check_settings(&c),
            ["--pod-cidr 10.42.0.0/16 and --service-cidr 10.42.128.0/17 overlap"]
        );
        assert!(check_settings(&cluster(Distro::K3s, vec![])).is_empty());
    }

    fn roles(p: &[(String, Instruction)]) -> Vec<String> {
        p.iter()
            .map(|(h, i)| match i {
                Instruction::Wait(w) => format!("{h}: wait ({w})"),
                Instruction::Apply {
                    role, join_token, ..
                } => {
                    format!(
                        "{h}: {}{}",
                        role.as_str(),
                        if join_token.is_some() { " +token" } else { "" }
                    )
                }
            })
            .collect()
    }

    #[test]
    fn init_first_then_joiners_in_order() {
        let mut c = cluster(
            Distro::K3s,
            vec![
                m("w1", W, DEB, "x86_64"),
                m("a", Cp, DEB, "x86_64"),
                m("b", Cp, DEB, "x86_64"),
                m("c", Cp, DEB, "x86_64"),
            ],
        );
        assert_eq!(
            init_node(&c).map(|m| m.host_id.as_str()),
            Some("a"),
            "first control-plane host added"
        );
        assert_eq!(
            roles(&plan(&c)),
            [
                "w1: wait (waiting for the init server a to be ready)",
                "a: init-server",
                "b: wait (waiting for the init server a to be ready)",
                "c: wait (waiting for the init server a to be ready)",
            ]
        );
        c.members[1].state = "ready".into();
        assert_eq!(
            roles(&plan(&c))[0],
            "w1: wait (waiting for the join token from a)"
        );
        c.join_token = Some(Token::new("short-not-secure"));
        assert_eq!(
            roles(&plan(&c))[0],
            "w1: wait (waiting for the join token from a)",
            "only the K10 form is relayed"
        );
        c.join_token = Some(Token::new(format!("K10{}::server:x", "ab".repeat(32))));
        assert_eq!(
            roles(&plan(&c)),
            [
                "w1: join-agent +token",
                "a: init-server",
                "b: join-server +token",
                "c: wait (waiting for the previous control-plane host to join)",
            ]
        );
        c.members[2].state = "ready".into();
        assert_eq!(roles(&plan(&c))[3], "c: join-server +token");
        // A rule broken later (a fourth server) holds everything back.
        c.members.push(m("d", Cp, DEB, "x86_64"));
        assert!(roles(&plan(&c))
            .iter()
            .all(|r| r.contains("etcd needs an odd number")));
    }

    #[test]
    fn plan_debug_never_shows_the_token() {
        let mut c = cluster(
            Distro::K3s,
            vec![m("a", Cp, DEB, "x86_64"), m("w", W, DEB, "x86_64")],
        );
        c.members[0].state = "ready".into();
        c.join_token = Some(Token::new(format!("K10{}::server:sekrit", "ab".repeat(32))));
        let shown = format!("{:?} {:?}", plan(&c), c);
        assert!(!shown.contains("sekrit"), "{shown}");
    }
}
