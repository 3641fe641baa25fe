//! The host inventory a check-in reports: pure builders from host facts
//! (`checks::Facts`, `facts::devices`, interface addresses) into
//! `proto::Inventory`, its stable digest (`inventory_hash`), the health
//! summary, and the operator's tags (static plus `tagsFromFile`).
//!
//! Builders are pure and unit-tested; `gather` is the thin reader. It must
//! not send anything or write state, and the digest must not cover values
//! that change on every run (uptime), or every check-in would carry the
//! whole inventory.

use crate::checks::{Check, Facts, Status, Summary};
use crate::config::Config;
use crate::facts::devices::{self, DiskInfo};
use crate::proto::{CheckCounts, Disk, Health, Interface, Inventory};
use crate::sys::{IfAddr, Root};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Largest tags file read, bytes.
pub const MAX_TAGS_FILE: u64 = 64 * 1024;
/// Most tags sent (the protocol's limit).
pub const MAX_TAGS: usize = 64;

/// Everything the inventory is built from, already read.
#[derive(Clone, Debug, Default)]
pub struct Input {
    pub host_id: String,
    pub hostname: String,
    pub arch: String,
    pub cpus: u32,
    pub cpu_model: Option<String>,
    pub memory_bytes: u64,
    pub os: String,
    pub kernel: String,
    pub disks: Vec<DiskInfo>,
    /// (name, MAC) from /sys/class/net.
    pub interfaces: Vec<(String, String)>,
    /// Addresses from getifaddrs (empty under a non-live root).
    pub addrs: Vec<IfAddr>,
    pub default_iface: Option<String>,
    pub uptime_s: Option<u64>,
    pub agent: String,
    pub tags: BTreeMap<String, String>,
    pub checks: Summary,
}

/// The inventory document.
pub fn build(i: &Input) -> Inventory {
    let addrs_of = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = i
            .addrs
            .iter()
            .filter(|a| a.name == name)
            .map(|a| format!("{}/{}", a.addr, a.prefix))
            .collect();
        v.truncate(16);
        v
    };
    let interfaces = i
        .interfaces
        .iter()
        .map(|(name, mac)| Interface {
            name: name.clone(),
            mac: mac.clone(),
            addrs: addrs_of(name),
        })
        .collect();
    Inventory {
        arch: i.arch.clone(),
        cpus: i.cpus,
        memory_bytes: i.memory_bytes,
        os: i.os.clone(),
        kernel: i.kernel.clone(),
        interfaces,
        host_id: Some(i.host_id.clone()),
        hostname: Some(i.hostname.clone()),
        cpu_model: i.cpu_model.clone(),
        disks: Some(
            i.disks
                .iter()
                .map(|d| Disk {
                    name: d.name.clone(),
                    size_bytes: d.size_bytes,
                    rotational: d.rotational,
                    model: d.model.clone(),
                })
                .collect(),
        ),
        primary_ip: primary_ip(&i.addrs, i.default_iface.as_deref()).map(|a| a.to_string()),
        uptime_s: i.uptime_s,
        agent: Some(i.agent.clone()),
        tags: Some(i.tags.clone()),
        checks: Some(CheckCounts {
            pass: i.checks.pass,
            warn: i.checks.warn,
            fail: i.checks.fail,
            skip: i.checks.skip,
        }),
    }
}

/// The primary address: the first global IPv4 address of the default
/// route's interface, else the first global IPv4, else the first global
/// IPv6 address.
pub fn primary_ip(addrs: &[IfAddr], default_iface: Option<&str>) -> Option<IpAddr> {
    let global = |a: &&IfAddr| match a.addr {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    };
    let v4 = |a: &&IfAddr| a.addr.is_ipv4();
    addrs
        .iter()
        .filter(global)
        .filter(v4)
        .find(|a| Some(a.name.as_str()) == default_iface)
        .or_else(|| addrs.iter().filter(global).find(v4))
        .or_else(|| addrs.iter().find(global))
        .map(|a| a.addr)
}

/// `sha256:` + hex digest of the inventory JSON with the volatile fields
/// (uptime) left out.
pub fn hash(inv: &Inventory) -> String {
    let mut stable = inv.clone();
    stable.uptime_s = None;
    let json = crate::proto::encode(&stable);
    let d = ring::digest::digest(&ring::digest::SHA256, json.as_bytes());
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256:");
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The health a check-in reports: ok when no check failed; the failing IDs.
pub fn health(checks: &[Check]) -> Health {
    let mut failing: Vec<String> = checks
        .iter()
        .filter(|c| c.outcome.status == Status::Fail)
        .map(|c| c.id.to_string())
        .collect();
    failing.truncate(64);
    Health {
        ok: failing.is_empty(),
        failing,
    }
}

/// Static tags, then the tags file's (a file tag does not replace a static
/// one); at most `MAX_TAGS`, keys and values at most 256 bytes.
pub fn merge_tags(
    static_tags: &[(String, String)],
    file_tags: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in static_tags.iter().chain(file_tags) {
        if out.len() >= MAX_TAGS {
            break;
        }
        let (k, v) = (devices::clean(k, 256), devices::clean(v, 256));
        if !k.is_empty() {
            out.entry(k).or_insert(v);
        }
    }
    out
}

/// The tags of the config, with `tagsFromFile` read under the root. A
/// missing or unreadable tags file is a warning, not a failed check-in.
pub fn tags(cfg: &Config, root: &Root) -> BTreeMap<String, String> {
    let mut file_tags = Vec::new();
    if let Some(t) = &cfg.tags_from_file.value {
        let path = root.path(&t.file_name);
        match read_capped(&path) {
            Ok(text) => file_tags = t.parse(&text),
            Err(e) => log::warn!("tagsFromFile {}: {e}", path.display()),
        }
    }
    merge_tags(&cfg.tags.value, &file_tags)
}

fn read_capped(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| crate::error::io_text(&e))?;
    let mut buf = Vec::new();
    f.take(MAX_TAGS_FILE)
        .read_to_end(&mut buf)
        .map_err(|e| crate::error::io_text(&e))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Read what `build` needs (thin: files under the root, and interface
/// addresses from the kernel on the live root only).
pub fn gather(root: &Root, cfg: &Config, facts: &Facts, checks: &[Check], host_id: &str) -> Input {
    let addrs = if root.is_live() {
        crate::sys::interface_addrs().unwrap_or_else(|e| {
            log::warn!("reading interface addresses: {e}");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    Input {
        host_id: host_id.to_string(),
        hostname: hostname(cfg, facts, host_id),
        arch: facts.kernel.arch.clone().unwrap_or_default(),
        cpus: facts.cpus.as_ref().map(|c| c.count).unwrap_or(0),
        cpu_model: facts.cpu_model.as_ref().map(|m| devices::clean(m, 256)),
        memory_bytes: facts.mem.as_ref().map(|m| m.total_bytes).unwrap_or(0),
        os: facts
            .os
            .as_ref()
            .map(|o| devices::clean(&o.pretty_name, 256))
            .unwrap_or_default(),
        kernel: devices::clean(facts.kernel.release.as_deref().unwrap_or(""), 256),
        disks: devices::disks(root),
        interfaces: devices::interfaces(root),
        addrs,
        default_iface: devices::default_route_iface(root),
        uptime_s: devices::uptime(root),
        agent: crate::version::VERSION.to_string(),
        tags: tags(cfg, root),
        checks: Summary::of(checks),
    }
}

/// The host name reported: `stylus.site.hostName`, else the kernel's, else
/// the host ID.
pub fn hostname(cfg: &Config, facts: &Facts, host_id: &str) -> String {
    let name = cfg
        .host_name
        .value
        .clone()
        .or_else(|| facts.kernel.hostname.clone())
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| host_id.to_string());
    devices::clean(&name, 256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn a(name: &str, addr: IpAddr, prefix: u8) -> IfAddr {
        IfAddr {
            name: name.into(),
            addr,
            prefix,
        }
    }

    fn input() -> Input {
        Input {
            host_id: "edge-1".into(),
            hostname: "edge-1".into(),
            arch: "x86_64".into(),
            cpus: 4,
            memory_bytes: 8_000_000_000,
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0".into(),
            interfaces: vec![("eth0".into(), "52:54:00:12:34:56".into())],
            addrs: vec![
                a("lo", IpAddr::V4(Ipv4Addr::LOCALHOST), 8),
                a("eth0", IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 24),
                a("eth0", IpAddr::V6("2001:db8::10".parse().expect("v6")), 64),
            ],
            default_iface: Some("eth0".into()),
            uptime_s: Some(100),
            agent: "0.1.0".into(),
            ..Input::default()
        }
    }

    #[test]
    fn builds_interfaces_with_their_addresses() {
        let inv = build(&input());
        assert_eq!(inv.interfaces.len(), 1, "lo has no /sys entry here");
        assert_eq!(
            inv.interfaces[0].addrs,
            vec!["192.0.2.10/24", "2001:db8::10/64"],
            "addresses in CIDR form"
        );
        assert_eq!(inv.primary_ip.as_deref(), Some("192.0.2.10"));
    }

    #[test]
    fn primary_ip_choice() {
        let v4 = |x: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, x));
        let ll6 = IpAddr::V6("fe80::1".parse::<Ipv6Addr>().expect("v6"));
        let g6 = IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().expect("v6"));
        type Case<'a> = (&'a str, Vec<IfAddr>, Option<&'a str>, Option<IpAddr>);
        let cases: Vec<Case> = vec![
            (
                "default route interface wins",
                vec![a("wlan0", v4(2), 24), a("eth0", v4(1), 24)],
                Some("eth0"),
                Some(v4(1)),
            ),
            (
                "no default route: first IPv4",
                vec![a("wlan0", v4(2), 24), a("eth0", v4(1), 24)],
                None,
                Some(v4(2)),
            ),
            (
                "IPv6 only, link-local skipped",
                vec![a("eth0", ll6, 64), a("eth0", g6, 64)],
                Some("eth0"),
                Some(g6),
            ),
            (
                "loopback only",
                vec![a("lo", IpAddr::V4(Ipv4Addr::LOCALHOST), 8)],
                None,
                None,
            ),
        ];
        for (name, addrs, dflt, want) in cases {
            assert_eq!(primary_ip(&addrs, dflt), want, "case {name}");
        }
    }

    #[test]
    fn hash_ignores_uptime_but_not_the_rest() {
        let base = build(&input());
        let h = hash(&base);
        assert!(h.starts_with("sha256:") && h.len() == 71, "format: {h}");
        let mut later = base.clone();
        later.uptime_s = Some(999_999);
        assert_eq!(hash(&later), h, "uptime is volatile");
        let mut changed = base.clone();
        changed.memory_bytes += 1;
        assert_ne!(hash(&changed), h, "memory change changes the hash");
        assert_eq!(hash(&build(&input())), h, "stable across builds");
    }

    #[test]
    fn tags_merge() {
        let s = |k: &str, v: &str| (k.to_string(), v.to_string());
        let got = merge_tags(
            &[s("site", "berlin"), s("", "x")],
            &[s("site", "paris"), s("rack", "r2\u{7}")],
        );
        let want: BTreeMap<String, String> = [s("rack", "r2"), s("site", "berlin")].into();
        assert_eq!(
            got, want,
            "static wins, empty key dropped, control chars cleaned"
        );
        let many: Vec<(String, String)> = (0..100).map(|i| s(&format!("k{i:03}"), "v")).collect();
        assert_eq!(merge_tags(&many, &[]).len(), MAX_TAGS, "capped");
    }

    #[test]
    fn full_inventory_decodes_as_the_protocol_message() {
        let mut i = input();
        i.disks = vec![DiskInfo {
            name: "sda".into(),
            size_bytes: 1,
            rotational: Some(false),
            model: "m".into(),
        }];
        i.tags.insert("site".into(), "x".into());
        let inv = build(&i);
        let req = crate::proto::CheckinRequest {
            v: 1,
            host_id: "edge-1".into(),
            agent: "0.1.0".into(),
            health: Health {
                ok: true,
                failing: vec![],
            },
            inventory_hash: hash(&inv),
            desired_tag: String::new(),
            inventory: Some(inv.clone()),
            upgrade: None,
            config: None,
            boot: None,
            cluster: None,
        };
        let back: crate::proto::CheckinRequest =
            crate::proto::decode(&crate::proto::encode(&req)).expect("schema accepts it");
        assert_eq!(back.inventory, Some(inv), "round trip");
    }
}
