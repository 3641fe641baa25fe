//! The block devices behind a mount, from sysfs under the root: the mounted
//! device (via `/sys/dev/block/<maj:min>`, or via the mount source for
//! filesystems with an anonymous `0:NN` device such as btrfs), its parent
//! disk when it is a partition, and through device-mapper (LVM, LUKS) and md
//! RAID `slaves/` down to every physical disk, with size, `queue/rotational`
//! and what kind of medium it is.
//!
//! Must not follow a symlink with the OS (every link goes through
//! `rootpath::resolve`) and must not decide fitness: unknown values stay
//! `None` and problems on the way are reported, so `checks/disk.rs` can
//! refuse to pass what it could not see.

use super::mountinfo::Mount;
use super::rootpath::{basename, dirname, exists, read, resolve};
use crate::sys::Root;

/// Stacked devices deeper than this are treated as a loop.
const MAX_DEPTH: usize = 16;

/// What kind of medium a physical disk is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Media {
    /// NVMe namespace.
    Nvme,
    /// Non-rotational SATA/SAS/USB disk.
    Ssd,
    /// Rotational disk.
    Hdd,
    /// eMMC or SD card (`mmcblk`): flash, but not SSD endurance.
    Mmc,
    /// A hypervisor's disk (virtio, Xen, VMware, Hyper-V, QEMU): its
    /// rotational flag is whatever the hypervisor set.
    Virtual(&'static str),
    /// A loop device (a file on another filesystem) or a RAM disk.
    Loop,
    /// `queue/rotational` missing or unreadable.
    Unknown,
}

impl Media {
    /// The `kind` string of `outpost.check/v1` `host.root_disk`.
    pub fn kind(&self) -> &'static str {
        match self {
            Media::Nvme => "nvme",
            Media::Ssd => "ssd",
            Media::Hdd => "hdd",
            Media::Mmc => "mmc",
            Media::Virtual(_) => "virtual",
            Media::Loop => "loop",
            Media::Unknown => "unknown",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Media::Nvme => "NVMe".into(),
            Media::Ssd => "SSD".into(),
            Media::Hdd => "HDD".into(),
            Media::Mmc => "eMMC/SD".into(),
            Media::Virtual(h) => format!("{h} virtual disk"),
            Media::Loop => "loop/RAM device".into(),
            Media::Unknown => "unknown medium".into(),
        }
    }
}

/// One physical disk at the bottom of the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// Kernel name (`nvme0n1`, `sda`, `mmcblk0`).
    pub name: String,
    pub size_bytes: Option<u64>,
    pub rotational: Option<bool>,
    pub media: Media,
}

/// The devices behind one mounted block filesystem.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stack {
    /// The mounted device's kernel name (`nvme0n1p2`, `dm-1`, `md0`).
    pub top: String,
    /// The whole device it belongs to (`nvme0n1`, `dm-1`, `md0`).
    pub whole: String,
    /// Size of the mounted device or, for a partition, of its parent disk
    /// or array: the capacity the filesystem's drive offers.
    pub top_size: Option<u64>,
    /// Layers between the mount and the disks, top first (`dm-1 LVM`, `md0 raid1`).
    pub layers: Vec<String>,
    pub disks: Vec<Disk>,
    /// What could not be followed (dangling link, loop, unreadable attribute).
    pub problems: Vec<String>,
}

/// What holds a mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// A block device, resolved as far as sysfs allowed.
    Block(Stack),
    /// No block device of its own: overlay, tmpfs, squashfs (live systems,
    /// containers, initramfs) or a network filesystem.
    NoBlock { fstype: String, source: String },
}

/// Filesystems that are not backed by a disk of this host.
const NO_BLOCK: &[&str] = &[
    "overlay", "tmpfs", "ramfs", "rootfs", "squashfs", "aufs", "nfs", "nfs4", "cifs", "smb3", "9p",
    "virtiofs", "fuse", "erofs",
];

/// Parse a sysfs `size` attribute (512-byte sectors) into bytes.
pub fn parse_sectors(text: &str) -> Option<u64> {
    text.trim().parse::<u64>().ok()?.checked_mul(512)
}

/// Parse `queue/rotational` (`0` or `1`).
pub fn parse_rotational(text: &str) -> Option<bool> {
    match text.trim() {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// Classify a leaf disk from its name, its resolved sysfs path, the
/// `device/vendor` attribute and its rotational flag.
pub fn classify(name: &str, sys_path: &str, vendor: &str, rotational: Option<bool>) -> Media {
    let vendor = vendor.trim();
    if name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram") {
        return Media::Loop;
    }
    if name.starts_with("mmcblk") {
        return Media::Mmc;
    }
    if name.starts_with("vd") || sys_path.contains("/virtio") {
        return Media::Virtual("virtio");
    }
    if name.starts_with("xvd") || sys_path.contains("/vbd-") {
        return Media::Virtual("Xen");
    }
    if vendor.eq_ignore_ascii_case("VMware") || vendor.starts_with("VMware") {
        return Media::Virtual("VMware");
    }
    if vendor == "Msft" || sys_path.contains("/VMBUS") || sys_path.contains("/vmbus") {
        return Media::Virtual("Hyper-V");
    }
    if vendor == "QEMU" {
        return Media::Virtual("QEMU");
    }
    match (name.starts_with("nvme"), rotational) {
        (_, None) => Media::Unknown,
        (true, Some(false)) => Media::Nvme,
        (false, Some(false)) => Media::Ssd,
        (_, Some(true)) => Media::Hdd,
    }
}

/// The sysfs directory (resolved host path) of the device a mount sits on.
fn mounted_device(root: &Root, m: &Mount) -> Result<String, String> {
    let mut why = Vec::new();
    if m.major != 0 {
        match resolve(root, &format!("/sys/dev/block/{}:{}", m.major, m.minor)) {
            Ok(p) => return Ok(p),
            Err(e) => why.push(e),
        }
    }
    // Anonymous device (btrfs, some stacked filesystems): the mount source
    // names the device node; resolve it (e.g. /dev/mapper/x -> ../dm-0) and
    // look its kernel name up in /sys/class/block.
    if m.source.starts_with("/dev/") {
        let node = resolve(root, &m.source).unwrap_or_else(|_| m.source.clone());
        let name = basename(&node);
        if !name.is_empty() {
            match resolve(root, &format!("/sys/class/block/{name}")) {
                Ok(p) => return Ok(p),
                Err(e) => why.push(e),
            }
        }
    } else {
        why.push(format!(
            "device {}:{} has no sysfs entry and the source {:?} is not a /dev path",
            m.major, m.minor, m.source
        ));
    }
    Err(why.join("; "))
}

/// Resolve the devices behind a mount.
pub fn backing(root: &Root, m: &Mount) -> Result<Backing, String> {
    let fs = m.fstype.as_str();
    if NO_BLOCK.contains(&fs) || fs.starts_with("fuse.") {
        return Ok(Backing::NoBlock {
            fstype: m.fstype.clone(),
            source: m.source.clone(),
        });
    }
    let dev = mounted_device(root, m)?;
    let mut st = Stack {
        top: basename(&dev).to_string(),
        ..Stack::default()
    };
    let whole = if exists(root, &format!("{dev}/partition")) {
        dirname(&dev)
    } else {
        dev.clone()
    };
    st.top_size = read(root, &format!("{whole}/size"))
        .ok()
        .and_then(|t| parse_sectors(&t));
    st.whole = basename(&whole).to_string();
    let mut visited = Vec::new();
    walk(root, &dev, 0, &mut visited, &mut st);
    if st.disks.is_empty() && st.problems.is_empty() {
        st.problems
            .push(format!("no physical disk found below {}", st.top));
    }
    Ok(Backing::Block(st))
}

fn walk(root: &Root, dev: &str, depth: usize, visited: &mut Vec<String>, st: &mut Stack) {
    let name = basename(dev).to_string();
    if depth > MAX_DEPTH || visited.iter().any(|v| v == dev) {
        st.problems.push(format!("loop in slaves/ at {name}"));
        return;
    }
    visited.push(dev.to_string());
    // A partition's parent directory is its disk (or array, or dm device).
    if exists(root, &format!("{dev}/partition")) {
        let parent = dirname(dev);
        walk(root, &parent, depth + 1, visited, st);
        return;
    }
    // No slaves/ directory (or one that does not resolve) means a leaf.
    let mut slaves: Vec<String> = resolve(root, &format!("{dev}/slaves"))
        .ok()
        .and_then(|d| std::fs::read_dir(root.path(&d)).ok())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    slaves.sort();
    if !slaves.is_empty() {
        st.layers.push(layer_label(root, dev, &name));
        for s in slaves {
            match resolve(root, &format!("{dev}/slaves/{s}")) {
                Ok(p) => walk(root, &p, depth + 1, visited, st),
                Err(e) => st.problems.push(format!("dangling slave link: {e}")),
            }
        }
        return;
    }
    if name.starts_with("dm-") || name.starts_with("md") && exists(root, &format!("{dev}/md")) {
        st.problems.push(format!("{name} has no slaves/ entries"));
        return;
    }
    let size_bytes = match read(root, &format!("{dev}/size")) {
        Ok(t) => {
            let v = parse_sectors(&t);
            if v.is_none() {
                st.problems
                    .push(format!("{name}: size {:?} is not a number", t.trim()));
            }
            v
        }
        Err(_) => {
            st.problems.push(format!("{name}: size unreadable"));
            None
        }
    };
    let rotational = read(root, &format!("{dev}/queue/rotational"))
        .ok()
        .and_then(|t| parse_rotational(&t));
    let vendor = read(root, &format!("{dev}/device/vendor")).unwrap_or_default();
    let media = classify(&name, dev, &vendor, rotational);
    if !st.disks.iter().any(|d| d.name == name) {
        st.disks.push(Disk {
            name,
            size_bytes,
            rotational,
            media,
        });
    }
}

/// `dm-1 (LVM)`, `dm-0 (LUKS)`, `md0 (raid1)`.
fn layer_label(root: &Root, dev: &str, name: &str) -> String {
    if let Some(uuid) = read(root, &format!("{dev}/dm/uuid"))
        .ok()
        .map(|t| t.trim().to_string())
    {
        let what = if uuid.starts_with("CRYPT-") {
            "LUKS"
        } else if uuid.starts_with("LVM-") {
            "LVM"
        } else if uuid.starts_with("mpath-") {
            "multipath"
        } else {
            "device-mapper"
        };
        return format!("{name} ({what})");
    }
    if let Some(level) = read(root, &format!("{dev}/md/level"))
        .ok()
        .map(|t| t.trim().to_string())
    {
        return format!("{name} ({level})");
    }
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::super::rootpath::test_tree::Tree;
    use super::*;

    fn mount(maj: u32, min: u32, fstype: &str, source: &str) -> Mount {
        Mount {
            major: maj,
            minor: min,
            fs_root: "/".into(),
            mount_point: "/".into(),
            fstype: fstype.into(),
            source: source.into(),
        }
    }

    fn disk(t: &Tree, path: &str, sectors: &str, rot: Option<&str>) {
        t.file(&format!("{path}/size"), sectors);
        if let Some(r) = rot {
            t.file(&format!("{path}/queue/rotational"), r);
        }
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_sectors("1000215216\n"), Some(1000215216 * 512));
        assert_eq!(parse_sectors("lots"), None, "non-numeric size");
        assert_eq!(parse_sectors("-1"), None, "negative size");
        assert_eq!(parse_sectors("99999999999999999999"), None, "overflow");
        assert_eq!(parse_sectors(""), None, "empty size");
        assert_eq!(parse_rotational("0\n"), Some(false));
        assert_eq!(parse_rotational("1"), Some(true));
        assert_eq!(parse_rotational("yes"), None, "odd rotational");
        assert_eq!(parse_rotational(""), None, "empty rotational");
    }

    #[test]
    fn classify_cases() {
        let cases: &[(&str, &str, &str, Option<bool>, Media)] = &[
            ("nvme0n1", "/sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1", "", Some(false), Media::Nvme),
            ("sda", "/sys/devices/pci0000:00/ata1/host0/target0:0:0/0:0:0:0/block/sda", "ATA     ", Some(false), Media::Ssd),
            ("sda", "/sys/devices/.../block/sda", "ATA", Some(true), Media::Hdd),
            ("sda", "/sys/devices/.../block/sda", "ATA", None, Media::Unknown),
            ("mmcblk0", "/sys/devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa/block/mmcblk0", "", Some(false), Media::Mmc),
            ("vda", "/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", "0x1af4", Some(true), Media::Virtual("virtio")),
            ("sda", "/sys/devices/pci0000:00/0000:00:10.0/host2/target2:0:0/2:0:0:0/block/sda", "VMware  ", Some(true), Media::Virtual("VMware")),
            ("sda", "/sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0004:00/VMBUS:00/d34b2567/host0/block/sda", "Msft    ", Some(true), Media::Virtual("Hyper-V")),
            ("xvda", "/sys/devices/vbd-768/block/xvda", "", Some(false), Media::Virtual("Xen")),
            ("sda", "/sys/devices/pci0000:00/0000:00:05.0/virtio2/host0/target0:0:0/0:0:0:0/block/sda", "QEMU    ", Some(true), Media::Virtual("virtio")),
            ("loop0", "/sys/devices/virtual/block/loop0", "", Some(false), Media::Loop),
        ];
        for (name, path, vendor, rot, want) in cases {
            assert_eq!(
                classify(name, path, vendor, *rot),
                *want,
                "case {name} {path}"
            );
        }
    }

    #[test]
    fn lvm_on_luks_walks_to_the_disk_and_ignores_dm_flags() {
        let t = Tree::new("block-lvm");
        let sda = "/sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda";
        disk(&t, sda, "937703088", Some("0"));
        t.file(&format!("{sda}/sda3/partition"), "3")
            .file(&format!("{sda}/sda3/size"), "935000000")
            .file(
                "/sys/devices/virtual/block/dm-0/dm/uuid",
                "CRYPT-LUKS2-abc-sda3_crypt",
            )
            .file("/sys/devices/virtual/block/dm-0/queue/rotational", "1")
            .link(
                "/sys/devices/virtual/block/dm-0/slaves/sda3",
                &format!("../../../..{}/sda3", &sda["/sys/devices".len()..]),
            )
            .file("/sys/devices/virtual/block/dm-1/dm/uuid", "LVM-xyz")
            .file("/sys/devices/virtual/block/dm-1/size", "900000000")
            .file("/sys/devices/virtual/block/dm-1/queue/rotational", "1")
            .link("/sys/devices/virtual/block/dm-1/slaves/dm-0", "../../dm-0")
            .link("/sys/dev/block/253:1", "../../devices/virtual/block/dm-1");
        let b =
            backing(&t.root(), &mount(253, 1, "ext4", "/dev/mapper/vg0-root")).expect("backing");
        let Backing::Block(st) = b else {
            panic!("not block: {b:?}")
        };
        assert_eq!(st.problems, Vec::<String>::new());
        assert_eq!(st.layers, ["dm-1 (LVM)", "dm-0 (LUKS)"]);
        assert_eq!(st.top_size, Some(900000000 * 512));
        assert_eq!(
            st.disks,
            [Disk {
                name: "sda".into(),
                size_bytes: Some(937703088 * 512),
                rotational: Some(false),
                media: Media::Ssd
            }]
        );
    }

    #[test]
    fn bad_sysfs_is_reported_not_guessed() {
        let t = Tree::new("block-bad");
        // A loop: dm-0 -> dm-1 -> dm-0.
        t.file("/sys/devices/virtual/block/dm-0/size", "10")
            .link("/sys/devices/virtual/block/dm-0/slaves/dm-1", "../../dm-1")
            .link("/sys/devices/virtual/block/dm-1/slaves/dm-0", "../../dm-0")
            .link("/sys/dev/block/253:0", "../../devices/virtual/block/dm-0")
            // A dangling slave.
            .dir("/sys/devices/virtual/block/dm-5")
            .link(
                "/sys/devices/virtual/block/dm-5/slaves/sdz1",
                "../../../../nowhere/sdz1",
            )
            .link("/sys/dev/block/253:5", "../../devices/virtual/block/dm-5")
            // A disk without queue/rotational and with a garbled size.
            .file("/sys/devices/x/block/sdq/size", "12ab")
            .link("/sys/dev/block/8:16", "../../devices/x/block/sdq")
            // A dangling /sys/dev/block link.
            .link("/sys/dev/block/8:32", "../../devices/gone/sdc");
        let r = t.root();
        let cases: &[(u32, u32, &str)] = &[
            (253, 0, "loop in slaves/ at dm-0"),
            (253, 5, "dangling slave link: /sys/devices/virtual/block/dm-5/slaves/sdz1: /sys/devices/nowhere does not exist"),
            (8, 16, "sdq: size \"12ab\" is not a number"),
        ];
        for (maj, min, want) in cases {
            match backing(&r, &mount(*maj, *min, "ext4", "/dev/x")) {
                Ok(Backing::Block(st)) => {
                    assert!(st.problems.iter().any(|p| p == want), "{maj}:{min}: {st:?}")
                }
                other => panic!("{maj}:{min}: {other:?}"),
            }
        }
        let Ok(Backing::Block(st)) = backing(&r, &mount(8, 16, "ext4", "/dev/sdq")) else {
            panic!("sdq")
        };
        assert_eq!(
            (st.disks[0].rotational, &st.disks[0].media),
            (None, &Media::Unknown),
            "missing rotational"
        );
        let e = backing(&r, &mount(8, 32, "ext4", "UUID=1234")).expect_err("dangling dev link");
        assert!(
            e.contains("/sys/dev/block/8:32: /sys/devices/gone does not exist"),
            "{e}"
        );
    }

    #[test]
    fn anonymous_device_resolves_through_the_source() {
        let t = Tree::new("block-btrfs");
        let nvme = "/sys/devices/pci0000:00/0000:00:06.0/0000:01:00.0/nvme/nvme0/nvme0n1";
        disk(&t, nvme, "1000215216", Some("0"));
        t.file(&format!("{nvme}/nvme0n1p2/partition"), "2")
            .link(
                "/sys/class/block/nvme0n1p2",
                &format!("../..{}/nvme0n1p2", &nvme["/sys".len()..]),
            )
            .file("/dev/nvme0n1p2", "");
        let b = backing(&t.root(), &mount(0, 35, "btrfs", "/dev/nvme0n1p2")).expect("btrfs");
        let Backing::Block(st) = b else {
            panic!("{b:?}")
        };
        assert_eq!(
            (st.top.as_str(), st.disks.len(), st.disks[0].media.clone()),
            ("nvme0n1p2", 1, Media::Nvme)
        );
        let b = backing(&t.root(), &mount(0, 30, "overlay", "overlay")).expect("overlay");
        assert_eq!(
            b,
            Backing::NoBlock {
                fstype: "overlay".into(),
                source: "overlay".into()
            }
        );
        let e =
            backing(&t.root(), &mount(0, 36, "btrfs", "/dev/sdx9")).expect_err("unknown source");
        assert!(e.contains("/sys/class/block/sdx9"), "{e}");
    }
}
