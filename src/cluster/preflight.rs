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
}
