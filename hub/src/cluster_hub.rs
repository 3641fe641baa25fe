//! Clusters in the check-in (protocol v3): take a member's role report
//! (`cluster` in the request) into `cluster_members.state`, keep the init
//! server's secure K10 join token sealed (`seal.rs`), and answer with the
//! member's role instruction (`desired.cluster`) as `cluster::plan`
//! releases it: the init server first, joiners only once it is ready and
//! its token is in. A host removed by the operator is told to leave until
//! it reports `left`.
//!
//! Tokens go only to members of their cluster, and are never logged: the
//! log lines here name hosts, roles and states only.

use super::cluster::{self, Instruction};
use super::cluster_cmd;
use super::seal;
use crate::store::{self, params, OptionalExtension, Tx};
use outpost::cluster::{Distro, Role, Token};
use outpost::proto::{ClusterReport, ClusterRole};
use std::path::Path;

const BOOTSTRAP: &str = "bootstrap";
const JOIN: &str = "join";

fn aad(cluster: &str, kind: &str) -> String {
    format!("outpost-hub cluster secret/{cluster}/{kind}")
}

fn secret(
    c: &Tx,
    key: &ring::aead::LessSafeKey,
    cluster: &str,
    kind: &str,
) -> store::Result<Option<String>> {
    let sealed: Option<String> = c
        .query_row(
            "SELECT sealed FROM cluster_secrets WHERE cluster=?1 AND kind=?2",
            params![cluster, kind],
            |r| r.get(0),
        )
        .optional()?;
    Ok(sealed.and_then(|s| {
        let v = seal::open(key, &aad(cluster, kind), &s);
        if v.is_none() {
            log::error!(
                "cluster {cluster}: the stored {kind} token does not open with the key file (replaced key?)"
            );
        }
        v
    }))
}

fn store(c: &Tx, cluster: &str, kind: &str, sealed: &str) -> store::Result<()> {
    c.execute(
        "INSERT INTO cluster_secrets (cluster, kind, sealed) VALUES (?1, ?2, ?3)
         ON CONFLICT(cluster, kind) DO UPDATE SET sealed=excluded.sealed",
        params![cluster, kind, sealed],
    )?;
    Ok(())
}

fn wrap(e: outpost::error::Error) -> store::Error {
    store::Error::Other(e.to_string())
}

/// The init server's join token as stored (for `cluster show`).
pub fn join_token(c: &Tx, db: &Path, cluster: &str) -> outpost::error::Result<Option<Token>> {
    let key = seal::key(db)?;
    secret(c, &key, cluster, JOIN)
        .map(|t| t.map(Token::new))
        .map_err(|e| {
            outpost::error::Error::new(
                outpost::error::Code::LocalIo,
                format!("cluster secrets in {}: {e}", db.display()),
            )
        })
}

/// One member's check-in: record its report and return its instruction.
/// `db` is the database path (its key file is `<db>.key`).
pub fn on_checkin(
    tx: &Tx,
    db: &Path,
    host_id: &str,
    agent: &str,
    report: Option<&ClusterReport>,
    base: &str,
) -> store::Result<Option<ClusterRole>> {
    // Removed by the operator: leave, until the agent says it has.
    let leaving: Option<(String, String)> = tx
        .query_row(
            "SELECT cluster, distro FROM cluster_leaving WHERE host_id=?1",
            [host_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((cl, distro)) = leaving {
        if report.is_some_and(|r| r.cluster == cl && r.state == "left") {
            tx.execute("DELETE FROM cluster_leaving WHERE host_id=?1", [host_id])?;
            log::info!("cluster {cl}: {host_id} left");
        } else {
            return Ok(Some(ClusterRole {
                cluster: cl,
                distro,
                version: String::new(),
                endpoint: String::new(),
                role: report.map(|r| r.role.clone()).unwrap_or_default(),
                server_url: String::new(),
                token: String::new(),
                interface: None,
                pod_cidr: None,
                service_cidr: None,
                min_version: String::new(),
                leave: true,
                node_ip: None,
                bundle: None,
            }));
        }
    }
    let member: Option<(String, String)> = tx
        .query_row(
            "SELECT cluster, state FROM cluster_members WHERE host_id=?1",
            [host_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((name, old_state)) = member else {
        return Ok(None);
    };
    let key = seal::key(db).map_err(wrap)?;
    if let Some(r) = report.filter(|r| r.cluster == name) {
        if r.state != old_state {
            tx.execute(
                "UPDATE cluster_members SET state=?2 WHERE host_id=?1",
                params![host_id, r.state],
            )?;
            if r.state == "failed" {
                log::warn!(
                    "cluster {name}: {host_id} ({}) failed: {}",
                    r.role,
                    r.reason
                );
            } else {
                log::info!("cluster {name}: {host_id} ({}) is {}", r.role, r.state);
            }
        }
    }
    let Some(mut cl) = cluster_cmd::load_tx(tx, &name)? else {
        return Ok(None);
    };
    // The init server's token, taken only from the init server, once ready,
    // in the secure form (it pins the cluster CA).
    if let Some(t) = report
        .filter(|r| r.cluster == name && r.state == "ready")
        .and_then(|r| r.token.as_deref())
    {
        let is_init = cluster::init_node(&cl).is_some_and(|m| m.host_id == host_id);
        let tok = Token::new(t);
        if !is_init {
            log::warn!(
                "cluster {name}: {host_id} sent a join token but is not the init server; ignored"
            );
        } else if cl.distro == Distro::K3s && !tok.is_k3s_secure() {
            log::warn!("cluster {name}: the join token from {host_id} is not in the secure K10 form; ignored");
        } else if secret(tx, &key, &name, JOIN)?.as_deref() != Some(t) {
            let sealed = seal::seal(&key, &aad(&name, JOIN), t).map_err(wrap)?;
            store(tx, &name, JOIN, &sealed)?;
            log::info!("cluster {name}: join token from the init server {host_id} stored (sealed)");
        }
    }
    cl.join_token = secret(tx, &key, &name, JOIN)?.map(Token::new);
    let plan = cluster::plan(&cl);
    let Some((_, ins)) = plan.into_iter().find(|(h, _)| h == host_id) else {
        return Ok(None);
    };
    let (role, join_token) = match ins {
        Instruction::Wait(_) => return Ok(None),
        Instruction::Apply {
            role, join_token, ..
        } => (role, join_token),
    };
    let token = match (role, join_token) {
        (Role::InitServer, _) => match secret(tx, &key, &name, BOOTSTRAP)? {
            Some(t) => t,
            None => {
                let t = super::secret::generate("").map_err(wrap)?;
                let sealed = seal::seal(&key, &aad(&name, BOOTSTRAP), &t).map_err(wrap)?;
                store(tx, &name, BOOTSTRAP, &sealed)?;
                t
            }
        },
        (_, Some(t)) => t.expose().to_string(),
        (_, None) => return Ok(None),
    };
    if old_state.is_empty() && report.is_none_or(|r| r.cluster != name) {
        tx.execute(
            "UPDATE cluster_members SET state='released' WHERE host_id=?1 AND state=''",
            [host_id],
        )?;
        log::info!("cluster {name}: {host_id} released as {}", role.as_str());
    }
    let min_version = cluster_cmd::min_agent(tx, &name)?;
    if !min_version.is_empty()
        && outpost::upgrade::release::compare(agent, &min_version)
            .is_ok_and(|o| o == std::cmp::Ordering::Less)
    {
        // The agent refuses it too (defense in depth); say why here.
        log::warn!(
            "cluster {name}: {host_id} runs agent {agent}, the cluster needs >= {min_version}"
        );
    }
    let inventory: Option<String> = tx
        .query_row(
            "SELECT inventory FROM devices WHERE host_id=?1",
            [host_id],
            |r| r.get(0),
        )
        .optional()?;
    let inv =
        inventory.and_then(|t| miniserde::json::from_str::<outpost::proto::Inventory>(&t).ok());
    let node_ip = inv
        .as_ref()
        .and_then(|inv| node_ip(inv, cl.interface.as_deref(), &cl.endpoint));
    // The K3s bundle for this version and the member's architecture.
    let bundle = match (cl.distro, inv.as_ref().map(|i| i.arch.as_str())) {
        (Distro::K3s, Some(arch)) if !arch.is_empty() => {
            super::cluster_bundle::for_member(tx, &cl.version, arch, base)?
        }
        _ => None,
    };
    Ok(Some(ClusterRole {
        cluster: name,
        distro: cl.distro.id().into(),
        version: cl.version.clone(),
        endpoint: match &cl.endpoint {
            outpost::cluster::Endpoint::Vip(a) => format!("vip:{a}"),
            outpost::cluster::Endpoint::Dns(n) => format!("dns:{n}"),
        },
        role: role.as_str().into(),
        server_url: cl.endpoint.server_url(),
        token,
        interface: cl.interface.clone(),
        pod_cidr: cl.pod_cidr.clone(),
        service_cidr: cl.service_cidr.clone(),
        min_version,
        leave: false,
        node_ip,
        bundle,
    }))
}

/// The member's address for Kubernetes (K3s `node-ip`), from the
/// inventory it sent: an address on the cluster's interface when one is
/// set, else the first one of the endpoint's family (IPv4 for a DNS
/// endpoint) that is not loopback or link-local. None: K3s picks one.
pub fn node_ip(
    inv: &outpost::proto::Inventory,
    interface: Option<&str>,
    endpoint: &outpost::cluster::Endpoint,
) -> Option<String> {
    let want_v6 = endpoint.vip().is_some_and(|a| a.is_ipv6());
    inv.interfaces
        .iter()
        .filter(|i| interface.is_none_or(|n| i.name == n))
        .flat_map(|i| i.addrs.iter())
        .filter_map(|a| a.split('/').next()?.parse::<std::net::IpAddr>().ok())
        .find(|a| {
            a.is_ipv6() == want_v6
                && !a.is_loopback()
                && !a.is_unspecified()
                && match a {
                    std::net::IpAddr::V4(v) => !v.is_link_local(),
                    std::net::IpAddr::V6(v) => (v.segments()[0] & 0xffc0) != 0xfe80,
                }
        })
        .map(|a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost::cluster::Endpoint;
    use outpost::proto::{Interface, Inventory};

    fn inv() -> Inventory {
        let nic = |name: &str, addrs: &[&str]| Interface {
            name: name.into(),
            mac: String::new(),
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
        };
        Inventory {
            interfaces: vec![
                nic("lo", &["127.0.0.1/8", "::1/128"]),
                nic(
                    "eth0",
                    &[
                        "fe80::1/64",
                        "169.254.3.4/16",
                        "10.0.2.15/24",
                        "2001:db8::15/64",
                    ],
                ),
                nic("eth1", &["192.168.7.9/24"]),
            ],
            ..Inventory::default()
        }
    }

    #[test]
    fn node_ip_from_the_inventory() {
        let v4 = Endpoint::Vip("10.0.2.100".parse().expect("ip"));
        let v6 = Endpoint::Vip("2001:db8::100".parse().expect("ip"));
        let dns = Endpoint::Dns("api.example.test".into());
        let cases = [
            (None, &v4, Some("10.0.2.15")),
            (Some("eth1"), &v4, Some("192.168.7.9")),
            (None, &v6, Some("2001:db8::15")),
            (Some("eth1"), &v6, None),
            (None, &dns, Some("10.0.2.15")),
            (Some("nosuch0"), &v4, None),
        ];
        for (ifname, ep, want) in cases {
            assert_eq!(
                node_ip(&inv(), ifname, ep).as_deref(),
                want,
                "{ifname:?} {ep:?}"
            );
        }
        assert_eq!(node_ip(&Inventory::default(), None, &v4), None);
    }
}
