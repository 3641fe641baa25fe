//! The role preflight of `outpost check --role control-plane|worker
//! [--vip ADDR] [--interface IF] [--dns NAME]`: flag rules (pure) and the
//! extra check lines (VIP checks from `vip`, name resolution for a DNS
//! endpoint).

use crate::checks::{Check, Outcome, Status};
use crate::error::{Error, Result};
use crate::sys::Root;
use std::net::{IpAddr, ToSocketAddrs};

/// What `check --role` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleCheck {
    pub control_plane: bool,
    pub vip: Option<IpAddr>,
    pub interface: Option<String>,
    pub dns: Option<String>,
}

/// The flags as they come, checked together by `finish`.
#[derive(Default)]
pub struct RoleFlags {
    role: Option<String>,
    vip: Option<String>,
    interface: Option<String>,
    dns: Option<String>,
}

impl RoleFlags {
    pub fn set(&mut self, flag: &str, v: String) -> Result<()> {
        let slot = match flag {
            "--role" => &mut self.role,
            "--vip" => &mut self.vip,
            "--interface" => &mut self.interface,
            _ => &mut self.dns,
        };
        if slot.is_some() {
            return Err(Error::usage(format!("check: {flag} given twice")));
        }
        *slot = Some(v);
        Ok(())
    }

    pub fn finish(self) -> Result<Option<RoleCheck>> {
        let Some(role) = self.role else {
            for (f, v) in [
                ("--vip", &self.vip),
                ("--interface", &self.interface),
                ("--dns", &self.dns),
            ] {
                if v.is_some() {
                    return Err(Error::usage(format!(
                        "check: {f} needs --role control-plane"
                    )));
                }
            }
            return Ok(None);
        };
        let control_plane = match role.as_str() {
            "control-plane" => true,
            "worker" => false,
            _ => {
                return Err(Error::usage(format!(
                    "check: --role {role:?} is not one of control-plane, worker"
                )))
            }
        };
        let vip =
            match self.vip {
                None => None,
                Some(_) if !control_plane => {
                    return Err(Error::usage("check: --vip is for --role control-plane"))
                }
                Some(v) => Some(v.parse::<IpAddr>().map_err(|_| {
                    Error::usage(format!("check: --vip {v:?} is not an IP address"))
                })?),
            };
        if self.interface.is_some() && vip.is_none() {
            return Err(Error::usage("check: --interface needs --vip"));
        }
        if let Some(n) = &self.dns {
            if !super::valid_dns_name(n) {
                return Err(Error::usage(format!(
                    "check: --dns {n:?} is not a DNS name"
                )));
            }
        }
        Ok(Some(RoleCheck {
            control_plane,
            vip,
            interface: self.interface,
            dns: self.dns,
        }))
    }
}

/// The host checks of `outpost check` that stop a role from working when
/// they fail, so `cluster apply` (and the role from the hub) refuses to
/// touch anything: wrong architecture, no systemd to run the unit, a
/// kernel without cgroup v2 or the modules, active swap (the kubelet
/// refuses to start), a host name Kubernetes refuses as a node name, the
/// control-plane ports taken by another Kubernetes (first apply only: once
/// applied, K3s holds them itself), no room under /var/lib, not root.
/// The sizing and platform-tooling checks (cpu, memory, disk, os, time,
/// tools, docker) are logged as warnings and do not stop the role.
pub const BLOCKING: &[&str] = &[
    "arch", "init", "kernel", "swap", "hostname", "ports", "space", "root",
];

/// Which failed host checks stop the role; `first`: no role was applied
/// on this host yet; `systemd`: the role starts K3s with systemd.
pub fn blocks(id: &str, first: bool, systemd: bool) -> bool {
    BLOCKING.contains(&id) && (id != "ports" || first) && (id != "init" || systemd)
}

/// Run the host checks for a role (facts under `root`, the checks'
/// distribution row set to the cluster's) and the endpoint's name
/// resolution when `resolve` names it. Returns the reason the role must
/// not go on (`preflight ID: observed; ...`), logging the rest as warnings.
pub fn for_role(
    root: &Root,
    distro: super::Distro,
    first: bool,
    systemd: bool,
    resolve: Option<&str>,
) -> Option<String> {
    let host = crate::sys::host();
    let mut facts = crate::checks::Facts::gather(root, host.as_ref());
    facts.distro = Some(distro);
    let mut lines = crate::checks::run(&facts, &crate::checks::Selection::default());
    if let Some(name) = resolve {
        lines.extend(run(
            root,
            &RoleCheck {
                control_plane: false,
                vip: None,
                interface: None,
                dns: Some(name.to_string()),
            },
        ));
    }
    let mut stop = Vec::new();
    for c in lines.iter().filter(|c| c.outcome.status == Status::Fail) {
        if c.id == "endpoint-dns" || blocks(c.id, first, systemd) {
            stop.push(format!("preflight {}: {}", c.id, c.outcome.observed));
        } else if c.id == "ports" {
            // Held by the K3s outpost installed here before.
            log::debug!(
                "preflight ports: {} (K3s installed by outpost)",
                c.outcome.observed
            );
        } else {
            log::warn!(
                "preflight {}: {} (need {}); not required for the role",
                c.id,
                c.outcome.observed,
                c.outcome.required
            );
        }
    }
    (!stop.is_empty()).then(|| stop.join("; "))
}

/// Whether the role must see the cluster's DNS name resolve before it
/// goes on: joiners reach the servers through it; the init server only
/// when nobody publishes the name for it (without `outpost.ddns.*` it is
/// the site's DNS that must hold it; with it, the init server creates the
/// record once its API is up).
pub fn needs_resolution(role: super::Role, ddns_configured: bool) -> bool {
    role != super::Role::InitServer || !ddns_configured
}

/// The extra check lines for a role.
pub fn run(root: &Root, rc: &RoleCheck) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(vip) = rc.vip {
        out.extend(super::vip::preflight(root, vip, rc.interface.as_deref(), 3));
    }
    if let Some(name) = &rc.dns {
        let got = (name.as_str(), 6443)
            .to_socket_addrs()
            .map(|a| a.map(|s| s.ip().to_string()).collect::<Vec<_>>());
        let o = match got {
            Ok(a) if !a.is_empty() => Outcome::new(Status::Pass, a.join(", "), "the name resolves"),
            Ok(_) => Outcome::new(Status::Fail, "no address", "the name resolves"),
            Err(e) => Outcome::new(Status::Fail, e.to_string(), "the name resolves")
                .hint("dynamic DNS (outpost.ddns.*) or the site's DNS must hold the name"),
        };
        out.push(Check {
            id: "endpoint-dns",
            title: "cluster API name resolves",
            outcome: o,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finish(flags: &[(&str, &str)]) -> std::result::Result<Option<RoleCheck>, String> {
        let mut f = RoleFlags::default();
        for (k, v) in flags {
            f.set(k, v.to_string()).map_err(|e| e.to_string())?;
        }
        f.finish().map_err(|e| e.to_string())
    }

    #[test]
    fn flag_rules() {
        let bad = [
            (
                vec![("--vip", "10.0.0.1")],
                "check: --vip needs --role control-plane",
            ),
            (
                vec![("--role", "master")],
                "check: --role \"master\" is not one of control-plane, worker",
            ),
            (
                vec![("--role", "worker"), ("--vip", "10.0.0.1")],
                "check: --vip is for --role control-plane",
            ),
            (
                vec![("--role", "control-plane"), ("--vip", "10.0.0")],
                "check: --vip \"10.0.0\" is not an IP address",
            ),
            (
                vec![("--role", "control-plane"), ("--interface", "eth0")],
                "check: --interface needs --vip",
            ),
            (
                vec![("--role", "control-plane"), ("--dns", "bad_name")],
                "check: --dns \"bad_name\" is not a DNS name",
            ),
            (
                vec![("--role", "worker"), ("--role", "worker")],
                "check: --role given twice",
            ),
        ];
        for (flags, want) in bad {
            let got = finish(&flags);
            assert!(
                matches!(&got, Err(e) if e.contains(want)),
                "case {flags:?}: got {got:?}, want {want}"
            );
        }
        let ok = finish(&[
            ("--role", "control-plane"),
            ("--vip", "10.0.0.100"),
            ("--interface", "eth0"),
        ]);
        assert_eq!(
            ok,
            Ok(Some(RoleCheck {
                control_plane: true,
                vip: "10.0.0.100".parse().ok(),
                interface: Some("eth0".into()),
                dns: None,
            }))
        );
        assert_eq!(finish(&[]), Ok(None));
    }

    #[test]
    fn which_failed_checks_stop_the_role() {
        // (check, first apply, systemd, stops)
        let table = [
            ("arch", true, true, true),
            ("kernel", false, true, true),
            ("swap", true, false, true),
            ("hostname", true, true, true),
            ("space", false, false, true),
            ("root", true, true, true),
            ("ports", true, true, true),
            ("ports", false, true, false),
            ("init", true, true, true),
            ("init", true, false, false),
            ("cpu", true, true, false),
            ("memory", true, true, false),
            ("disk", true, true, false),
            ("os", true, true, false),
            ("time", true, true, false),
            ("tools", true, true, false),
            ("docker", true, true, false),
        ];
        for (id, first, systemd, want) in table {
            assert_eq!(blocks(id, first, systemd), want, "{id} {first} {systemd}");
        }
        for d in crate::checks::ALL {
            assert!(
                table.iter().any(|t| t.0 == d.id),
                "check {} has no row: decide whether it stops a role",
                d.id
            );
        }
    }

    #[test]
    fn who_needs_the_name_to_resolve() {
        use crate::cluster::Role::*;
        assert!(!needs_resolution(InitServer, true), "it publishes the name");
        assert!(
            needs_resolution(InitServer, false),
            "the site's DNS holds it"
        );
        for r in [JoinServer, JoinAgent] {
            assert!(needs_resolution(r, true) && needs_resolution(r, false));
        }
    }
}
