//! `disk`: the drive behind `/` (and behind the state directory when that is
//! another mount) is at least "32 GB" (>= 31 x 10^9 bytes, DESIGN.md) and an
//! SSD, meaning `queue/rotational` = 0 on every physical disk at the bottom
//! of the stack (a device-mapper node's own flag does not count).
//!
//! eMMC/SD warns (flash, not SSD endurance); a hypervisor's disk warns (its
//! rotational flag is whatever the hypervisor set); a root without a block
//! device (overlay, tmpfs, squashfs: live systems, containers) warns with the
//! reason; anything that could not be resolved warns. Only a rotational
//! physical disk or a too small drive fails.

use super::{gb, worst, Def, Facts, JsonDisk, Outcome, Status};
use crate::facts::block::{Backing, Media, Stack};

pub const DEF: Def = Def {
    id: "disk",
    title: "Main drive",
    run,
};

pub const MIN_BYTES: u64 = 31_000_000_000;
const REQUIRED: &str = "SSD, >= 32 GB";

/// The size the 32 GB rule is judged on: the one physical disk, or for a
/// stack over several disks (RAID, LVM spanning disks) the assembled device.
fn judged_size(st: &Stack) -> Option<u64> {
    match st.disks.as_slice() {
        [d] => d.size_bytes,
        _ => st.top_size,
    }
}

fn describe(st: &Stack) -> String {
    let names: Vec<&str> = st.disks.iter().map(|d| d.name.as_str()).collect();
    let mut media: Vec<String> = st.disks.iter().map(|d| d.media.describe()).collect();
    media.dedup();
    let size = judged_size(st).map(gb).unwrap_or_else(|| "size ?".into());
    let mut s = format!("{} {size} {}", names.join("+"), media.join("/"));
    if !st.layers.is_empty() {
        let via: Vec<&str> = st
            .layers
            .iter()
            .map(|l| {
                l.split_once(" (")
                    .map(|(_, k)| k.trim_end_matches(')'))
                    .unwrap_or(l)
            })
            .collect();
        s.push_str(&format!(" ({})", via.join(" on ")));
    }
    s
}

fn judge(path: &str, b: &Result<Backing, String>) -> Outcome {
    let st = match b {
        Err(e) => {
            return Outcome::new(Status::Warn, format!("{path}: device unknown"), REQUIRED)
                .hint(format!("cannot resolve the drive behind {path}: {e}"))
        }
        Ok(Backing::NoBlock { fstype, source }) => {
            return Outcome::new(Status::Warn, format!("{path} on {fstype} ({source})"), REQUIRED).hint(
                format!("{path} is not on a disk of this host (live system, container or network root); run check on the installed system to judge its drive"),
            )
        }
        Ok(Backing::Block(st)) => st,
    };
    let observed = describe(st);
    if st.disks.is_empty() {
        return Outcome::new(Status::Warn, format!("{path}: {}", st.top), REQUIRED).hint(format!(
            "cannot find the physical disk: {}",
            st.problems.join("; ")
        ));
    }
    let mut status = Status::Pass;
    let mut hints: Vec<String> = Vec::new();
    match judged_size(st) {
        Some(b) if b < MIN_BYTES => {
            status = Status::Fail;
            hints.push(format!("the drive has {}; at least 32 GB is needed", gb(b)));
        }
        Some(_) => {}
        None => {
            status = worst(status, Status::Warn);
            hints.push("the drive's size is unreadable".into());
        }
    }
    let mut seen: Vec<&Media> = Vec::new();
    for d in &st.disks {
        if seen.contains(&&d.media) {
            continue;
        }
        seen.push(&d.media);
        let (s, h) = match &d.media {
            Media::Nvme | Media::Ssd => continue,
            Media::Hdd => (Status::Fail, format!("{} is a rotational disk; use an SSD", d.name)),
            Media::Mmc => (
                Status::Warn,
                format!("{} is eMMC/SD flash: it works, but wears out far sooner than an SSD under Kubernetes writes", d.name),
            ),
            Media::Virtual(h) => (
                Status::Warn,
                format!("{} is a {h} virtual disk; its rotational flag is whatever the hypervisor set, so make sure the datastore is SSD", d.name),
            ),
            Media::Loop => (Status::Warn, format!("{} is a loop or RAM device, not a drive", d.name)),
            Media::Unknown => (Status::Warn, format!("{}: queue/rotational is missing; cannot tell SSD from HDD", d.name)),
        };
        status = worst(status, s);
        hints.push(h);
    }
    if !st.problems.is_empty() {
        status = worst(status, Status::Warn);
        hints.push(format!(
            "not every device could be followed: {}",
            st.problems.join("; ")
        ));
    }
    let observed = if path == "/" {
        observed
    } else {
        format!("{path}: {observed}")
    };
    Outcome::new(status, observed, REQUIRED).hint(hints.join("; "))
}

fn run(f: &Facts) -> Outcome {
    if let Err(e) = &f.mounts {
        return Outcome::new(Status::Skip, "unknown", REQUIRED)
            .hint(format!("cannot read the mount table: {e}"));
    }
    let mut out: Option<Outcome> = None;
    for (path, b) in &f.disks {
        let o = judge(path, b);
        out = Some(match out {
            None => o,
            Some(prev) => {
                let status = worst(prev.status, o.status);
                let hint = [prev.hint.as_str(), o.hint.as_str()]
                    .iter()
                    .filter(|h| !h.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("; ");
                Outcome::new(
                    status,
                    format!("{}; {}", prev.observed, o.observed),
                    REQUIRED,
                )
                .hint(hint)
            }
        });
    }
    out.unwrap_or_else(|| Outcome::new(Status::Skip, "unknown", REQUIRED).hint("no mount for /"))
}

/// `host.root_disk` of the JSON report: the drive behind `/`.
pub fn json(f: &Facts) -> Option<JsonDisk> {
    let (_, Ok(Backing::Block(st))) = f.disks.first()? else {
        return None;
    };
    let size_bytes = judged_size(st)?;
    let device = match st.disks.as_slice() {
        [] => return None,
        [d] => format!("/dev/{}", d.name),
        _ => format!("/dev/{}", st.whole),
    };
    let first = &st.disks[0];
    let same =
        |g: fn(&crate::facts::block::Disk) -> String| st.disks.iter().all(|d| g(d) == g(first));
    let rotational = if same(|d| format!("{:?}", d.rotational)) {
        first.rotational
    } else {
        None
    };
    let kind = if same(|d| d.media.kind().to_string()) {
        first.media.kind().to_string()
    } else {
        "mixed".to_string()
    };
    Some(JsonDisk {
        device,
        size_bytes,
        rotational,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;
    use crate::facts::block::Disk;

    fn d(name: &str, gbytes: Option<u64>, media: Media) -> Disk {
        let rotational = match media {
            Media::Hdd | Media::Virtual(_) => Some(true),
            Media::Unknown => None,
            _ => Some(false),
        };
        Disk {
            name: name.into(),
            size_bytes: gbytes.map(|g| g * 1_000_000_000),
            rotational,
            media,
        }
    }

    fn stack(disks: Vec<Disk>, layers: &[&str], problems: &[&str]) -> Result<Backing, String> {
        Ok(Backing::Block(Stack {
            top: "md0".into(),
            whole: "md0".into(),
            top_size: Some(64_000_000_000),
            layers: layers.iter().map(|s| s.to_string()).collect(),
            disks,
            problems: problems.iter().map(|s| s.to_string()).collect(),
        }))
    }

    #[test]
    fn disk_verdicts() {
        let cases: Vec<(&str, Result<Backing, String>, Status, &str)> = vec![
            (
                "nvme 512",
                stack(vec![d("nvme0n1", Some(512), Media::Nvme)], &[], &[]),
                Status::Pass,
                "nvme0n1 512 GB NVMe",
            ),
            (
                "ssd 32",
                stack(vec![d("sda", Some(32), Media::Ssd)], &[], &[]),
                Status::Pass,
                "sda 32.0 GB SSD",
            ),
            (
                "ssd 30",
                stack(vec![d("sda", Some(30), Media::Ssd)], &[], &[]),
                Status::Fail,
                "sda 30.0 GB SSD",
            ),
            (
                "hdd",
                stack(vec![d("sda", Some(2000), Media::Hdd)], &[], &[]),
                Status::Fail,
                "sda 2000 GB HDD",
            ),
            (
                "sd card",
                stack(vec![d("mmcblk0", Some(64), Media::Mmc)], &[], &[]),
                Status::Warn,
                "mmcblk0 64.0 GB eMMC/SD",
            ),
            (
                "virtio",
                stack(
                    vec![d("vda", Some(100), Media::Virtual("virtio"))],
                    &[],
                    &[],
                ),
                Status::Warn,
                "vda 100 GB virtio virtual disk",
            ),
            (
                "no rotational",
                stack(vec![d("sda", Some(500), Media::Unknown)], &[], &[]),
                Status::Warn,
                "sda 500 GB unknown medium",
            ),
            (
                "size unknown",
                stack(vec![d("sda", None, Media::Ssd)], &[], &[]),
                Status::Warn,
                "sda size ? SSD",
            ),
            (
                "raid1 of ssds",
                stack(
                    vec![
                        d("sda", Some(64), Media::Ssd),
                        d("sdb", Some(64), Media::Ssd),
                    ],
                    &["md0 (raid1)"],
                    &[],
                ),
                Status::Pass,
                "sda+sdb 64.0 GB SSD (raid1)",
            ),
            (
                "raid1 ssd + hdd",
                stack(
                    vec![
                        d("sda", Some(64), Media::Ssd),
                        d("sdb", Some(64), Media::Hdd),
                    ],
                    &["md0 (raid1)"],
                    &[],
                ),
                Status::Fail,
                "sda+sdb 64.0 GB SSD/HDD (raid1)",
            ),
            (
                "partial walk never passes",
                stack(
                    vec![d("sda", Some(64), Media::Ssd)],
                    &["dm-0 (LVM)"],
                    &["loop in slaves/ at dm-0"],
                ),
                Status::Warn,
                "sda 64.0 GB SSD (LVM)",
            ),
            (
                "nothing found",
                stack(vec![], &[], &["dangling"]),
                Status::Warn,
                "/: md0",
            ),
            (
                "overlay",
                Ok(Backing::NoBlock {
                    fstype: "overlay".into(),
                    source: "overlay".into(),
                }),
                Status::Warn,
                "/ on overlay (overlay)",
            ),
            (
                "unresolved",
                Err("no sysfs".into()),
                Status::Warn,
                "/: device unknown",
            ),
        ];
        for (name, b, want, observed) in cases {
            let mut f = facts();
            f.disks = vec![("/", b)];
            let o = run(&f);
            assert_eq!(
                (o.status, o.observed.as_str()),
                (want, observed),
                "case {name}: {}",
                o.hint
            );
        }
        let mut f = facts();
        f.mounts = Err("gone".into());
        assert_eq!(run(&f).status, Status::Skip, "no mountinfo");
    }

    #[test]
    fn state_dir_on_another_drive_is_judged_too() {
        let mut f = facts();
        f.disks.push((
            "/var/lib/outpost",
            stack(vec![d("sdb", Some(1000), Media::Hdd)], &[], &[]),
        ));
        let o = run(&f);
        assert_eq!(o.status, Status::Fail, "{o:?}");
        assert_eq!(
            o.observed,
            "nvme0n1 512 GB NVMe; /var/lib/outpost: sdb 1000 GB HDD"
        );
    }

    #[test]
    fn json_root_disk() {
        let j = json(&facts()).expect("root disk");
        assert_eq!(
            (
                j.device.as_str(),
                j.size_bytes,
                j.rotational,
                j.kind.as_str()
            ),
            ("/dev/nvme0n1", 512_110_190_592, Some(false), "nvme")
        );
        let mut f = facts();
        f.disks = vec![(
            "/",
            Ok(Backing::NoBlock {
                fstype: "tmpfs".into(),
                source: "tmpfs".into(),
            }),
        )];
        assert!(json(&f).is_none(), "no block device, no root_disk");
    }
}
