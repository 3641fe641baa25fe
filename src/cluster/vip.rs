//! The VIP preflight a control-plane host runs before kube-vip may announce
//! the cluster's virtual IP: the interface exists and is up, the VIP lies in
//! one of its subnets (not the network or broadcast address), is no local
//! address, and nobody answers an ARP probe for it (RFC 5227: sender IP
//! 0.0.0.0, a few probes about a second apart).
//!
//! Pure parts (prefix arithmetic, ARP frames, the verdicts as check lines)
//! are functions of values; the socket lives in `sys::PacketSocket`.

use crate::checks::{Check, Outcome, Status};
use crate::sys::{IfAddr, Root};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// `addr` with the host bits cleared, as a u128 (IPv4 mapped into the low bits).
fn bits(a: IpAddr) -> (u128, u8) {
    match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    let p = u32::from(prefix.min(width));
    let w = u32::from(width);
    let all = if w == 128 {
        u128::MAX
    } else {
        (1u128 << w) - 1
    };
    if p == 0 {
        0
    } else {
        all & !((1u128 << (w - p)) - 1) & all
    }
}

/// Whether `vip` lies in the subnet `net/prefix` (same family only).
pub fn in_subnet(vip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let ((v, wv), (n, wn)) = (bits(vip), bits(net));
    if wv != wn || prefix > wv {
        return false;
    }
    let m = mask(prefix, wv);
    v & m == n & m
}

/// The network and (IPv4) broadcast address of `net/prefix`: a VIP must be
/// neither. IPv6 has no broadcast; its subnet-router anycast (all host bits
/// zero) is refused the same way.
pub fn is_network_or_broadcast(vip: IpAddr, prefix: u8) -> bool {
    let (v, w) = bits(vip);
    if prefix >= w.saturating_sub(1) {
        // /31 and /32 (RFC 3021), /127 and /128: every address is a host.
        return false;
    }
    let m = mask(prefix, w);
    let host = v
        & !m
        & if w == 128 {
            u128::MAX
        } else {
            (1u128 << w) - 1
        };
    host == 0 || (w == 32 && host == !m & ((1u128 << 32) - 1))
}

/// What the interface looks like, read from `/sys/class/net/IF` under the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub up: bool,
    pub operstate: String,
    pub mac: Option<[u8; 6]>,
    pub ifindex: Option<i32>,
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut n = 0;
    for part in s.trim().split(':') {
        if n == 6 || part.len() != 2 {
            return None;
        }
        out[n] = u8::from_str_radix(part, 16).ok()?;
        n += 1;
    }
    (n == 6).then_some(out)
}

pub fn read_iface(root: &Root, name: &str) -> Option<Iface> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return None;
    }
    let dir = format!("/sys/class/net/{name}");
    if !root.exists(&dir) {
        return None;
    }
    let flags = root
        .read_trim(format!("{dir}/flags"))
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    let operstate = root
        .read_trim(format!("{dir}/operstate"))
        .unwrap_or_else(|| "unknown".into());
    // IFF_UP is administrative; operstate "down"/"lowerlayerdown" means no carrier.
    let up =
        flags & 1 == 1 && !matches!(operstate.as_str(), "down" | "lowerlayerdown" | "notpresent");
    Some(Iface {
        name: name.to_string(),
        up,
        operstate,
        mac: root
            .read_trim(format!("{dir}/address"))
            .and_then(|a| parse_mac(&a)),
        ifindex: root
            .read_trim(format!("{dir}/ifindex"))
            .and_then(|i| i.parse().ok()),
    })
}

/// ARP request payload (28 bytes, Ethernet/IPv4). A probe has sender IP 0.0.0.0.
pub fn arp_request(sender_mac: [u8; 6], sender_ip: Ipv4Addr, target: Ipv4Addr) -> [u8; 28] {
    let mut p = [0u8; 28];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // htype Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // ptype IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    p[8..14].copy_from_slice(&sender_mac);
    p[14..18].copy_from_slice(&sender_ip.octets());
    // target MAC stays zero
    p[24..28].copy_from_slice(&target.octets());
    p
}

/// Whether an ARP payload shows another host using `vip`: a reply or a
/// request whose *sender* IP is the VIP (RFC 5227 2.1.1), from a MAC other
/// than ours; or another host's probe for the same address (sender 0.0.0.0,
/// target the VIP) from another MAC. Returns the other host's MAC.
pub fn arp_conflict(payload: &[u8], vip: Ipv4Addr, our_mac: [u8; 6]) -> Option<[u8; 6]> {
    if payload.len() < 28 || payload[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let op = u16::from_be_bytes([payload[6], payload[7]]);
    let mut sha = [0u8; 6];
    sha.copy_from_slice(&payload[8..14]);
    let spa = Ipv4Addr::new(payload[14], payload[15], payload[16], payload[17]);
    let tpa = Ipv4Addr::new(payload[24], payload[25], payload[26], payload[27]);
    if sha == our_mac || !(op == 1 || op == 2) {
        return None;
    }
    if spa == vip || (op == 1 && spa.is_unspecified() && tpa == vip) {
        return Some(sha);
    }
    None
}

pub fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The result of the ARP probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Free,
    InUse([u8; 6]),
    /// Could not probe (no CAP_NET_RAW, socket error): says why.
    Failed(String),
}

/// Send `probes` RFC 5227 probes `gap` apart on `iface` and listen for
/// conflicts until `gap` after the last one (live host only).
pub fn arp_probe(iface: &Iface, vip: Ipv4Addr, probes: u32, gap: Duration) -> Probe {
    let (Some(mac), Some(ifindex)) = (iface.mac, iface.ifindex) else {
        return Probe::Failed(format!("{}: no MAC address or index", iface.name));
    };
    let sock = match crate::sys::PacketSocket::arp(ifindex) {
        Ok(s) => s,
        Err(e) => return Probe::Failed(format!("opening a raw ARP socket on {}: {e}", iface.name)),
    };
    let frame = arp_request(mac, Ipv4Addr::UNSPECIFIED, vip);
    for _ in 0..probes.max(1) {
        if let Err(e) = sock.send_broadcast(&frame) {
            return Probe::Failed(format!("sending an ARP probe on {}: {e}", iface.name));
        }
        let until = std::time::Instant::now() + gap;
        loop {
            let now = std::time::Instant::now();
            if now >= until {
                break;
            }
            match sock.recv(until - now) {
                Ok(Some(p)) => {
                    if let Some(other) = arp_conflict(&p, vip, mac) {
                        return Probe::InUse(other);
                    }
                }
                Ok(None) => break,
                Err(e) => return Probe::Failed(format!("reading ARP on {}: {e}", iface.name)),
            }
        }
    }
    Probe::Free
}

/// Inputs of the preflight, gathered by the caller.
pub struct Input<'a> {
    pub vip: IpAddr,
    pub iface_name: &'a str,
    pub iface: Option<Iface>,
    pub addrs: &'a [IfAddr],
    /// None: the probe was not run (IPv6, or interface missing/down).
    pub probe: Option<Probe>,
}

/// The default interface: the one holding the IPv4 default route
/// (`/proc/net/route`, destination 00000000).
pub fn default_route_iface(root: &Root) -> Option<String> {
    let text = root.read("/proc/net/route").ok()?;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_string())
    })
}

fn check(id: &'static str, title: &'static str, o: Outcome) -> Check {
    Check {
        id,
        title,
        outcome: o,
    }
}

/// The preflight as check lines (IDs `vip-interface`, `vip-subnet`,
/// `vip-local`, `vip-arp`).
pub fn checks(i: &Input) -> Vec<Check> {
    let mut out = Vec::new();
    let name = i.iface_name;
    let iface_ok = match &i.iface {
        None => {
            out.push(check(
                "vip-interface",
                "VIP interface exists and is up",
                Outcome::new(
                    Status::Fail,
                    format!("{name}: no such interface"),
                    "an existing interface",
                )
                .hint("give --interface IF (the NIC on the control-plane network)"),
            ));
            false
        }
        Some(f) if !f.up => {
            out.push(check(
                "vip-interface",
                "VIP interface exists and is up",
                Outcome::new(Status::Fail, format!("{name}: {}", f.operstate), "up")
                    .hint(format!("ip link set {name} up, and check the cable")),
            ));
            false
        }
        Some(f) => {
            out.push(check(
                "vip-interface",
                "VIP interface exists and is up",
                Outcome::new(Status::Pass, format!("{name}: {}", f.operstate), "up"),
            ));
            true
        }
    };
    let same_family: Vec<&IfAddr> = i
        .addrs
        .iter()
        .filter(|a| a.name == name && a.addr.is_ipv4() == i.vip.is_ipv4())
        .filter(|a| !matches!(a.addr, IpAddr::V6(v) if (v.segments()[0] & 0xffc0) == 0xfe80))
        .collect();
    let home = same_family
        .iter()
        .find(|a| in_subnet(i.vip, a.addr, a.prefix));
    let subnet = match (iface_ok, home) {
        (false, _) => Outcome::new(
            Status::Skip,
            "interface not usable",
            "VIP inside its subnet",
        ),
        (true, None) => {
            let nets: Vec<String> = same_family
                .iter()
                .map(|a| format!("{}/{}", a.addr, a.prefix))
                .collect();
            Outcome::new(
                Status::Fail,
                if nets.is_empty() {
                    format!(
                        "{name} has no {} address",
                        if i.vip.is_ipv4() { "IPv4" } else { "IPv6" }
                    )
                } else {
                    format!("{} outside {}", i.vip, nets.join(", "))
                },
                format!("VIP inside a subnet of {name}"),
            )
            .hint("pick a free address on the control-plane hosts' own subnet")
        }
        (true, Some(a)) if is_network_or_broadcast(i.vip, a.prefix) => Outcome::new(
            Status::Fail,
            format!(
                "{} is the network or broadcast address of {}/{}",
                i.vip, a.addr, a.prefix
            ),
            "a host address",
        ),
        (true, Some(a)) => Outcome::new(
            Status::Pass,
            format!("{} in {}/{}", i.vip, a.addr, a.prefix),
            format!("VIP inside a subnet of {name}"),
        ),
    };
    out.push(check(
        "vip-subnet",
        "VIP inside the interface's subnet",
        subnet,
    ));
    let local = i.addrs.iter().find(|a| a.addr == i.vip);
    out.push(check(
        "vip-local",
        "VIP is not an address of this host",
        match local {
            Some(a) => Outcome::new(
                Status::Fail,
                format!("{} is on {}", i.vip, a.name),
                "not a local address",
            )
            .hint("the VIP must be a spare address, not a host's own"),
            None => Outcome::new(Status::Pass, "not local", "not a local address"),
        },
    ));
    let arp = match (&i.probe, i.vip) {
        (_, IpAddr::V6(_)) => Outcome::new(
            Status::Skip,
            "IPv6: duplicate detection (NDP) not probed",
            "no reply to an ARP probe",
        ),
        (None, _) => Outcome::new(
            Status::Skip,
            if local.is_some() {
                "not probed: the VIP is local"
            } else {
                "interface not usable"
            },
            "no reply to an ARP probe",
        ),
        (Some(Probe::Free), _) => {
            Outcome::new(Status::Pass, "free (no reply)", "no reply to an ARP probe")
        }
        (Some(Probe::InUse(m)), _) => Outcome::new(
            Status::Fail,
            format!("in use by {}", mac_text(*m)),
            "no reply to an ARP probe",
        )
        .hint("another host holds this address; pick a free one"),
        (Some(Probe::Failed(why)), _) => {
            Outcome::new(Status::Fail, why.clone(), "no reply to an ARP probe")
                .hint("run as root (needs CAP_NET_RAW)")
        }
    };
    out.push(check("vip-arp", "nobody answers ARP for the VIP", arp));
    out
}

/// The preflight without the ARP probe (joiners: the cluster's kube-vip
/// answers for the VIP, so a reply is expected, not a conflict).
pub fn preflight_no_probe(root: &Root, vip: IpAddr, iface: Option<&str>) -> Vec<Check> {
    let mut c = preflight(root, vip, iface, 0);
    for x in c.iter_mut().filter(|x| x.id == "vip-arp") {
        x.outcome = Outcome::new(
            Status::Skip,
            "not probed for a joining server",
            "no reply to an ARP probe",
        );
    }
    c
}

/// Gather everything for the preflight on the live host (or under a root for
/// the interface files) and run it. `probes`: ARP probes, 1 s apart.
pub fn preflight(root: &Root, vip: IpAddr, iface: Option<&str>, probes: u32) -> Vec<Check> {
    let name = iface
        .map(str::to_string)
        .or_else(|| default_route_iface(root))
        .unwrap_or_default();
    let info = read_iface(root, &name);
    let addrs = crate::sys::interface_addrs().unwrap_or_default();
    let is_local = addrs.iter().any(|a| a.addr == vip);
    let probe = match (vip, &info) {
        (IpAddr::V4(v4), Some(f)) if f.up && !is_local && probes > 0 => {
            Some(arp_probe(f, v4, probes, Duration::from_secs(1)))
        }
        _ => None,
    };
    let name = if name.is_empty() {
        "(no default route)".to_string()
    } else {
        name
    };
    checks(&Input {
        vip,
        iface_name: &name,
        iface: info,
        addrs: &addrs,
        probe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("bad test address {s}"))
    }

    #[test]
    fn subnet_arithmetic_v4_and_v6() {
        let cases = [
            ("10.0.0.100", "10.0.0.11", 24, true),
            ("10.0.1.100", "10.0.0.11", 24, false),
            ("10.0.1.100", "10.0.0.11", 23, true),
            ("10.0.2.1", "10.0.0.11", 23, false),
            ("192.168.1.5", "10.0.0.1", 0, true),
            ("10.0.0.12", "10.0.0.12", 32, true),
            ("10.0.0.13", "10.0.0.12", 32, false),
            ("10.0.0.13", "10.0.0.12", 31, true),
            ("fd00:10::64", "fd00:10::11", 64, true),
            ("fd00:11::64", "fd00:10::11", 64, false),
            ("fd00:10::64", "fd00:10::11", 128, false),
            ("fd00:10:0:0:ffff::1", "fd00:10::11", 65, false),
            ("fd00:10:0:0:7fff::1", "fd00:10::11", 65, true),
            ("::1", "::", 0, true),
            ("10.0.0.1", "fd00::1", 0, false),
            ("fd00::1", "10.0.0.1", 0, false),
            ("10.0.0.1", "10.0.0.1", 33, false),
        ];
        for (vip, net, p, want) in cases {
            assert_eq!(
                in_subnet(ip(vip), ip(net), p),
                want,
                "case {vip} in {net}/{p}"
            );
        }
    }

    #[test]
    fn network_and_broadcast_refused() {
        let cases = [
            ("10.0.0.0", 24, true),
            ("10.0.0.255", 24, true),
            ("10.0.0.254", 24, false),
            ("10.0.0.0", 31, false),
            ("10.0.0.1", 32, false),
            ("10.0.1.255", 23, true),
            ("10.0.1.0", 23, false),
            ("fd00:10::", 64, true),
            ("fd00:10::ffff:ffff:ffff:ffff", 64, false),
            ("fd00:10::1", 64, false),
        ];
        for (vip, p, want) in cases {
            assert_eq!(is_network_or_broadcast(ip(vip), p), want, "case {vip}/{p}");
        }
    }

    #[test]
    fn arp_frames() {
        let ours = [2, 0, 0, 0, 0, 1];
        let theirs = [2, 0, 0, 0, 0, 2];
        let vip = Ipv4Addr::new(10, 0, 0, 100);
        let probe = arp_request(ours, Ipv4Addr::UNSPECIFIED, vip);
        assert_eq!(&probe[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(
            &probe[14..18],
            &[0, 0, 0, 0],
            "RFC 5227 probe: sender IP 0.0.0.0"
        );
        assert_eq!(
            arp_conflict(&probe, vip, ours),
            None,
            "our own probe echoed"
        );
        let mut reply = arp_request(theirs, vip, Ipv4Addr::UNSPECIFIED);
        reply[7] = 2;
        assert_eq!(
            arp_conflict(&reply, vip, ours),
            Some(theirs),
            "reply from the holder"
        );
        let other_probe = arp_request(theirs, Ipv4Addr::UNSPECIFIED, vip);
        assert_eq!(
            arp_conflict(&other_probe, vip, ours),
            Some(theirs),
            "simultaneous probe"
        );
        let unrelated = arp_request(
            theirs,
            Ipv4Addr::new(10, 0, 0, 7),
            Ipv4Addr::new(10, 0, 0, 1),
        );
        assert_eq!(
            arp_conflict(&unrelated, vip, ours),
            None,
            "unrelated traffic"
        );
        assert_eq!(arp_conflict(&reply[..20], vip, ours), None, "short frame");
        assert_eq!(parse_mac("02:00:00:00:00:0a\n"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:01"), None);
    }

    fn up(name: &str) -> Option<Iface> {
        Some(Iface {
            name: name.into(),
            up: true,
            operstate: "up".into(),
            mac: Some([2, 0, 0, 0, 0, 1]),
            ifindex: Some(2),
        })
    }

    fn statuses(i: &Input) -> Vec<(String, &'static str, String)> {
        checks(i)
            .into_iter()
            .map(|c| {
                (
                    c.id.to_string(),
                    c.outcome.status.as_str(),
                    c.outcome.observed,
                )
            })
            .collect()
    }

    #[test]
    fn preflight_verdicts() {
        let addrs = vec![
            IfAddr {
                name: "eth0".into(),
                addr: ip("10.0.0.11"),
                prefix: 24,
            },
            IfAddr {
                name: "eth0".into(),
                addr: ip("fe80::1"),
                prefix: 64,
            },
            IfAddr {
                name: "lo".into(),
                addr: ip("127.0.0.1"),
                prefix: 8,
            },
        ];
        let run = |vip: &str, name: &str, iface: Option<Iface>, probe: Option<Probe>| {
            statuses(&Input {
                vip: ip(vip),
                iface_name: name,
                iface,
                addrs: &addrs,
                probe,
            })
        };
        let s = run("10.0.0.100", "eth0", up("eth0"), Some(Probe::Free));
        assert!(s.iter().all(|c| c.1 == "pass"), "free VIP: {s:?}");
        let s = run(
            "10.0.0.100",
            "eth0",
            up("eth0"),
            Some(Probe::InUse([2, 0, 0, 0, 0, 9])),
        );
        assert_eq!(
            s[3],
            (
                "vip-arp".into(),
                "fail",
                "in use by 02:00:00:00:00:09".into()
            )
        );
        let s = run("10.0.0.11", "eth0", up("eth0"), None);
        assert_eq!(
            s[2],
            ("vip-local".into(), "fail", "10.0.0.11 is on eth0".into())
        );
        let s = run("10.1.0.100", "eth0", up("eth0"), Some(Probe::Free));
        assert_eq!(
            s[1],
            (
                "vip-subnet".into(),
                "fail",
                "10.1.0.100 outside 10.0.0.11/24".into()
            )
        );
        let s = run("10.0.0.255", "eth0", up("eth0"), Some(Probe::Free));
        assert_eq!(s[1].1, "fail", "broadcast: {s:?}");
        let s = run("10.0.0.100", "eth9", None, None);
        assert_eq!(
            s[0],
            (
                "vip-interface".into(),
                "fail",
                "eth9: no such interface".into()
            )
        );
        assert_eq!((s[1].1, s[3].1), ("skip", "skip"));
        let mut down = up("eth0");
        if let Some(d) = down.as_mut() {
            d.up = false;
            d.operstate = "down".into();
        }
        let s = run("10.0.0.100", "eth0", down, None);
        assert_eq!(s[0], ("vip-interface".into(), "fail", "eth0: down".into()));
        let s = run("fd00::64", "eth0", up("eth0"), None);
        assert_eq!(
            s[1],
            (
                "vip-subnet".into(),
                "fail",
                "eth0 has no IPv6 address".into()
            ),
            "link-local does not count"
        );
        assert_eq!(s[3].1, "skip");
    }
}
