//! Mounts from `/proc/self/mountinfo` (proc(5)): which filesystem, from which
//! device (`major:minor` and the mount source) holds a given path.
//!
//! Must not touch the devices themselves; `block.rs` walks sysfs from here.
//! Damaged lines are counted and skipped, never guessed at.

use crate::sys::Root;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub major: u32,
    pub minor: u32,
    /// The path inside the filesystem that is mounted (btrfs subvolume, bind).
    pub fs_root: String,
    pub mount_point: String,
    pub fstype: String,
    /// The mount source (`/dev/nvme0n1p2`, `overlay`, `tmpfs`).
    pub source: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MountInfo {
    pub mounts: Vec<Mount>,
    /// Lines that could not be parsed (truncated, missing the ` - ` separator).
    pub bad_lines: usize,
}

/// Undo the kernel's octal escapes (`\040` space, `\011` tab, `\012`
/// newline, `\134` backslash). Anything else stays as written.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    // id parent maj:min root mount_point options [optional fields...]
    if l.len() < 6 {
        return None;
    }
    let (maj, min) = l[2].split_once(':')?;
    let mut r = right.split(' ');
    let fstype = r.next().filter(|s| !s.is_empty())?;
    let source = r.next()?;
    // The super options must follow; without them the line was cut short.
    r.next()?;
    let mount_point = unescape(l[4]);
    if !mount_point.starts_with('/') {
        return None;
    }
    Some(Mount {
        major: maj.parse().ok()?,
        minor: min.parse().ok()?,
        fs_root: unescape(l[3]),
        mount_point,
        fstype: fstype.to_string(),
        source: unescape(source),
    })
}

pub fn parse_mountinfo(text: &str) -> MountInfo {
    let mut mi = MountInfo::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(m) => mi.mounts.push(m),
            None => mi.bad_lines += 1,
        }
    }
    mi
}

/// True when `mount_point` is `path` or one of its ancestors (whole components).
fn covers(mount_point: &str, path: &str) -> bool {
    if mount_point == "/" {
        return true;
    }
    let mp = mount_point.trim_end_matches('/');
    path == mp
        || path
            .strip_prefix(mp)
            .is_some_and(|rest| rest.starts_with('/'))
}

impl MountInfo {
    /// The mount that holds `path`: the longest covering mount point, and of
    /// several at the same point the last (it is mounted over the others).
    pub fn find(&self, path: &str) -> Option<&Mount> {
        let mut best: Option<&Mount> = None;
        for m in &self.mounts {
            if covers(&m.mount_point, path)
                && best.is_none_or(|b| m.mount_point.len() >= b.mount_point.len())
            {
                best = Some(m);
            }
        }
        best
    }

    /// The filesystem type mounted exactly at `point` (last one wins).
    pub fn fstype_at(&self, point: &str) -> Option<&str> {
        self.mounts
            .iter()
            .rev()
            .find(|m| m.mount_point == point)
            .map(|m| m.fstype.as_str())
    }
}

pub fn read(root: &Root) -> Result<MountInfo, String> {
    let text = root
        .read("/proc/self/mountinfo")
        .map_err(|e| format!("/proc/self/mountinfo: {}", crate::error::io_text(&e)))?;
    let mi = parse_mountinfo(&text);
    if mi.mounts.is_empty() {
        return Err(format!(
            "/proc/self/mountinfo: no usable line ({} damaged)",
            mi.bad_lines
        ));
    }
    Ok(mi)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NVME: &str = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid - proc proc rw
40 22 259:1 / /boot/efi rw,relatime shared:30 - vfat /dev/nvme0n1p1 rw,fmask=0077
41 23 0:38 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
50 22 0:45 / /mnt/my\\040disk rw - ext4 /dev/sdb1 rw
";

    #[test]
    fn finds_the_mount_of_a_path() {
        let mi = parse_mountinfo(NVME);
        assert_eq!(mi.bad_lines, 0);
        let cases: &[(&str, &str, (u32, u32))] = &[
            ("/", "/", (259, 2)),
            ("/var/lib/outpost", "/", (259, 2)),
            ("/boot/efi", "/boot/efi", (259, 1)),
            ("/boot/efi/EFI", "/boot/efi", (259, 1)),
            ("/boot/efiX", "/", (259, 2)),
            ("/mnt/my disk/x", "/mnt/my disk", (0, 45)),
        ];
        for (path, point, dev) in cases {
            let m = mi.find(path).expect("mount");
            assert_eq!(
                (m.mount_point.as_str(), (m.major, m.minor)),
                (*point, *dev),
                "path {path}"
            );
        }
        assert_eq!(mi.fstype_at("/sys/fs/cgroup"), Some("cgroup2"));
    }

    #[test]
    fn overmount_wins() {
        let mi = parse_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 0:30 / / rw - overlay overlay rw,lowerdir=/a\n");
        assert_eq!(mi.find("/etc").map(|m| m.fstype.as_str()), Some("overlay"));
    }

    #[test]
    fn damaged_lines_are_skipped_and_counted() {
        let cases: &[(&str, usize, usize)] = &[
            (
                "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n",
                1,
                0,
            ),
            (
                "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2",
                0,
                1,
            ),
            ("22 1 259:2 / / rw,relatime shared:1 - ext4", 0, 1),
            ("22 1 259:2 / / rw,relat", 0, 1),
            ("22 1 25x:2 / / rw - ext4 /dev/x rw", 0, 1),
            ("22 1 259 / / rw - ext4 /dev/x rw", 0, 1),
            ("22 1 8:1 / relative rw - ext4 /dev/x rw", 0, 1),
            ("\0\0\0", 0, 1),
            ("", 0, 0),
        ];
        for (text, good, bad) in cases {
            let mi = parse_mountinfo(text);
            assert_eq!(
                (mi.mounts.len(), mi.bad_lines),
                (*good, *bad),
                "input {text:?}"
            );
        }
    }

    #[test]
    fn unescapes_octal() {
        let cases = [
            ("/mnt/a\\040b", "/mnt/a b"),
            ("a\\134b", "a\\b"),
            ("trailing\\04", "trailing\\04"),
            ("bad\\089", "bad\\089"),
            ("\\777", "\\777"),
        ];
        for (input, want) in cases {
            assert_eq!(unescape(input), want, "input {input}");
        }
    }
}
