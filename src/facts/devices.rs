//! Inventory facts read under a `Root`: whole disks from `/sys/block`,
//! network interfaces and MACs from `/sys/class/net`, the default route's
//! interface from `/proc/net/route`, uptime from `/proc/uptime`.
//!
//! Parsers are pure and unit-tested; readers are thin. It must not open
//! sockets or ask the kernel anything but files (addresses come from
//! `sys::interface_addrs`, live host only, called by the inventory builder).

use crate::sys::Root;

/// Kernel block devices that are not disks of the host.
const NOT_DISKS: [&str; 8] = ["loop", "ram", "zram", "sr", "fd", "nbd", "dm-", "md"];
/// Most disks and interfaces reported (a device with more is unusual).
pub const MAX_ITEMS: usize = 32;

/// One whole disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskInfo {
    pub name: String,
    pub size_bytes: u64,
    pub rotational: Option<bool>,
    pub model: String,
}

/// Whole disks under `/sys/block`, sorted by name; virtual devices skipped.
pub fn disks(root: &Root) -> Vec<DiskInfo> {
    let mut names = list_dir(root, "/sys/block");
    names.retain(|n| !NOT_DISKS.iter().any(|p| n.starts_with(p)));
    names.truncate(MAX_ITEMS);
    names
        .into_iter()
        .map(|name| {
            let base = format!("/sys/block/{name}");
            let size_bytes = root
                .read_trim(format!("{base}/size"))
                .and_then(|s| crate::facts::block::parse_sectors(&s))
                .unwrap_or(0);
            let rotational = root
                .read_trim(format!("{base}/queue/rotational"))
                .and_then(|s| crate::facts::block::parse_rotational(&s));
            let model = root
                .read_trim(format!("{base}/device/model"))
                .map(|m| clean(&m, 128))
                .unwrap_or_default();
            DiskInfo {
                name: clean(&name, 64),
                size_bytes,
                rotational,
                model,
            }
        })
        .collect()
}

/// Interfaces under `/sys/class/net` with their MAC (`""` when none), `lo`
/// left out, sorted by name.
pub fn interfaces(root: &Root) -> Vec<(String, String)> {
    let mut names = list_dir(root, "/sys/class/net");
    names.retain(|n| n != "lo" && n != "bonding_masters");
    names.truncate(MAX_ITEMS);
    names
        .into_iter()
        .map(|n| {
            let mac = root
                .read_trim(format!("/sys/class/net/{n}/address"))
                .map(|m| parse_mac(&m))
                .unwrap_or_default();
            (clean(&n, 64), mac)
        })
        .collect()
}

/// A MAC as the kernel prints it, lower case; `""` for anything else and
/// for the all-zero address of tunnels.
pub fn parse_mac(s: &str) -> String {
    let s = s.trim().to_ascii_lowercase();
    let parts: Vec<&str> = s.split(':').collect();
    let ok = parts.len() >= 6
        && parts.len() <= 20
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok || parts.iter().all(|p| *p == "00") {
        return String::new();
    }
    s
}

/// The interface of the IPv4 default route in `/proc/net/route` text
/// (the one with the lowest metric).
pub fn parse_default_route(text: &str) -> Option<String> {
    let mut best: Option<(u64, String)> = None;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[1] != "00000000" || f[7] != "00000000" {
            continue;
        }
        let metric = f[6].parse::<u64>().unwrap_or(u64::MAX);
        if best.as_ref().is_none_or(|(m, _)| metric < *m) {
            best = Some((metric, f[0].to_string()));
        }
    }
    best.map(|(_, i)| i)
}

pub fn default_route_iface(root: &Root) -> Option<String> {
    root.read("/proc/net/route")
        .ok()
        .and_then(|t| parse_default_route(&t))
}

/// Whole seconds since boot from `/proc/uptime` text.
pub fn parse_uptime(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let secs = first.split('.').next()?;
    secs.parse().ok()
}

pub fn uptime(root: &Root) -> Option<u64> {
    root.read("/proc/uptime")
        .ok()
        .and_then(|t| parse_uptime(&t))
}

fn list_dir(root: &Root, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(root.path(dir)) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Printable text of at most `max` bytes (control characters dropped).
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        let cases = [
            ("52:54:00:12:34:56\n", "52:54:00:12:34:56"),
            ("DC:A6:32:01:02:03", "dc:a6:32:01:02:03"),
            ("00:00:00:00:00:00", ""),
            ("", ""),
            ("zz:54:00:12:34:56", ""),
            ("52:54:00", ""),
        ];
        for (input, want) in cases {
            assert_eq!(parse_mac(input), want, "input {input:?}");
        }
    }

    #[test]
    fn default_route() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
wlan0\t00000000\t0102000A\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0102000A\t0003\t0\t0\t100\t00000000\t0\t0\t0
";
        assert_eq!(
            parse_default_route(text).as_deref(),
            Some("eth0"),
            "lowest metric"
        );
        assert_eq!(parse_default_route("Iface\n"), None, "no routes");
        assert_eq!(parse_default_route(""), None, "empty");
    }

    #[test]
    fn uptimes() {
        let cases = [
            ("12345.67 2345.00\n", Some(12345)),
            ("7 1", Some(7)),
            ("", None),
            ("x.5 1", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_uptime(input), want, "input {input:?}");
        }
    }

    #[test]
    fn disks_and_interfaces_from_a_tree() {
        let d = std::env::temp_dir().join(format!("outpost-devices-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let w = |p: &str, t: &str| {
            let f = d.join(p);
            std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
            std::fs::write(f, t).expect("write");
        };
        w("sys/block/sda/size", "62914560\n");
        w("sys/block/sda/queue/rotational", "0\n");
        w("sys/block/sda/device/model", "Samsung SSD 870 \n");
        w("sys/block/loop0/size", "100\n");
        w("sys/block/mmcblk0/size", "1000\n");
        w("sys/class/net/eth0/address", "52:54:00:12:34:56\n");
        w("sys/class/net/lo/address", "00:00:00:00:00:00\n");
        w("sys/class/net/wg0/address", "\n");
        let root = Root::new(&d);
        let got = disks(&root);
        assert_eq!(
            got,
            vec![
                DiskInfo {
                    name: "mmcblk0".into(),
                    size_bytes: 512_000,
                    rotational: None,
                    model: String::new(),
                },
                DiskInfo {
                    name: "sda".into(),
                    size_bytes: 62914560 * 512,
                    rotational: Some(false),
                    model: "Samsung SSD 870".into(),
                },
            ],
            "loop0 skipped, sizes in bytes"
        );
        assert_eq!(
            interfaces(&root),
            vec![
                ("eth0".to_string(), "52:54:00:12:34:56".to_string()),
                ("wg0".to_string(), String::new())
            ],
            "lo skipped"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
