//! Symlink resolution that never leaves the root. sysfs and `/dev` are webs of
//! symlinks (`/sys/dev/block/259:2 -> ../../devices/.../nvme0n1p2`,
//! `/dev/mapper/root -> ../dm-0`); following them with the OS would jump out
//! of a `--root` tree whenever a link is absolute. Here every link target is
//! read with `readlink` and applied to a host path we keep ourselves: an
//! absolute target restarts at the root, `..` stops at the root, and a link
//! budget catches loops.
//!
//! Must not call `canonicalize` or open a path the OS would resolve through a
//! symlink out of the root (only the final `lstat`/`read_link` of a component
//! whose parents were already resolved here).

use crate::sys::Root;
use std::io;

/// Links followed before giving up, as the kernel's ELOOP limit.
const MAX_LINKS: u32 = 40;

/// Resolve `host_path` under `root`, following symlinks inside the root only.
/// Returns the resolved absolute host path (`/sys/devices/...`), or an error
/// naming the path: a dangling link, a missing component, or a link loop.
pub fn resolve(root: &Root, host_path: &str) -> Result<String, String> {
    let mut done: Vec<String> = Vec::new();
    let mut pending: Vec<String> = split_rev(host_path);
    let mut links = 0u32;
    while let Some(comp) = pending.pop() {
        match comp.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(comp);
        let here = join(&done);
        let meta = std::fs::symlink_metadata(root.path(&here)).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                format!("{host_path}: {here} does not exist")
            } else {
                format!("{host_path}: {here}: {}", crate::error::io_text(&e))
            }
        })?;
        if !meta.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(format!("{host_path}: too many levels of symbolic links"));
        }
        let target = std::fs::read_link(root.path(&here)).map_err(|e| {
            format!(
                "{host_path}: reading link {here}: {}",
                crate::error::io_text(&e)
            )
        })?;
        let target = target.to_string_lossy().into_owned();
        done.pop();
        if target.starts_with('/') {
            done.clear();
        }
        pending.extend(split_rev(&target));
    }
    Ok(join(&done))
}

/// Read a file at `host_path` with every link on the way resolved inside
/// the root (sysfs attributes sit behind links such as `device/`).
pub fn read(root: &Root, host_path: &str) -> Result<String, String> {
    let real = resolve(root, host_path)?;
    std::fs::read_to_string(root.path(&real))
        .map_err(|e| format!("{host_path}: {}", crate::error::io_text(&e)))
}

/// True when `host_path` resolves (inside the root) to something that exists.
pub fn exists(root: &Root, host_path: &str) -> bool {
    resolve(root, host_path).is_ok()
}

/// Path components in reverse, so `pop` yields them in order.
fn split_rev(p: &str) -> Vec<String> {
    p.split('/').rev().map(String::from).collect()
}

fn join(comps: &[String]) -> String {
    let mut s = String::new();
    for c in comps {
        s.push('/');
        s.push_str(c);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// The last component of a host path.
pub fn basename(p: &str) -> &str {
    p.rsplit('/').find(|s| !s.is_empty()).unwrap_or("")
}

/// The host path without its last component (`/` for a top-level entry).
pub fn dirname(p: &str) -> String {
    let t = p.trim_end_matches('/');
    match t.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => t[..i].to_string(),
    }
}

#[cfg(test)]
pub(crate) mod test_tree {
    //! Temporary trees for unit tests.
    use std::path::PathBuf;

    pub struct Tree(pub PathBuf);

    impl Tree {
        pub fn new(name: &str) -> Tree {
            let dir = std::env::temp_dir().join(format!(
                "outpost-unit-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("mkdir tree");
            Tree(dir)
        }
        pub fn root(&self) -> crate::sys::Root {
            crate::sys::Root::new(&self.0)
        }
        pub fn file(&self, p: &str, text: &str) -> &Self {
            let path = self.0.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
            self
        }
        pub fn dir(&self, p: &str) -> &Self {
            std::fs::create_dir_all(self.0.join(p.trim_start_matches('/'))).expect("mkdir");
            self
        }
        pub fn link(&self, p: &str, target: &str) -> &Self {
            let path = self.0.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::os::unix::fs::symlink(target, path).expect("symlink");
            self
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_tree::Tree;
    use super::*;

    #[test]
    fn links_resolve_inside_the_root() {
        let t = Tree::new("rootpath");
        t.dir("/sys/devices/pci0/nvme0n1/nvme0n1p2")
            .link(
                "/sys/dev/block/259:2",
                "../../devices/pci0/nvme0n1/nvme0n1p2",
            )
            .link("/dev/mapper/root", "../dm-0")
            .file("/dev/dm-0", "")
            .link("/abs", "/sys/devices/pci0")
            .link("/escape", "../../../../../../etc")
            .dir("/etc")
            .link("/loop-a", "loop-b")
            .link("/loop-b", "loop-a")
            .link("/dangling", "nowhere");
        let r = t.root();
        let cases: &[(&str, Result<&str, &str>)] = &[
            (
                "/sys/dev/block/259:2",
                Ok("/sys/devices/pci0/nvme0n1/nvme0n1p2"),
            ),
            ("/dev/mapper/root", Ok("/dev/dm-0")),
            ("/abs/nvme0n1", Ok("/sys/devices/pci0/nvme0n1")),
            ("/escape", Ok("/etc")),
            ("/sys/dev/block/259:2/../..", Ok("/sys/devices/pci0")),
            ("/", Ok("/")),
            ("/loop-a", Err("/loop-a: too many levels of symbolic links")),
            ("/dangling", Err("/dangling: /nowhere does not exist")),
            (
                "/sys/dev/block/8:0",
                Err("/sys/dev/block/8:0: /sys/dev/block/8:0 does not exist"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                resolve(&r, input).as_deref(),
                want.map_err(String::from).as_deref(),
                "input {input}"
            );
        }
    }

    #[test]
    fn reads_through_links_inside_the_root_only() {
        let t = Tree::new("rootpath-read");
        t.file("/sys/devices/pci0/virtio1/vendor", "0x1af4\n")
            .link(
                "/sys/devices/pci0/virtio1/block/vda/device",
                "../../../virtio1",
            )
            .link("/sys/block/vda/size", "/sys/devices/pci0/virtio1/vendor");
        let r = t.root();
        assert_eq!(
            read(&r, "/sys/devices/pci0/virtio1/block/vda/device/vendor").as_deref(),
            Ok("0x1af4\n")
        );
        // An absolute link is taken relative to the root, not to this machine.
        assert_eq!(read(&r, "/sys/block/vda/size").as_deref(), Ok("0x1af4\n"));
        assert!(exists(&r, "/sys/devices/pci0/virtio1/block/vda/device"));
        assert!(!exists(&r, "/sys/devices/pci0/virtio1/block/vda/partition"));
        assert_eq!(
            read(&r, "/sys/devices/pci0").map_err(|e| e.starts_with("/sys/devices/pci0: ")),
            Err(true),
            "reading a directory is an error naming the path"
        );
    }

    #[test]
    fn names() {
        assert_eq!(basename("/sys/block/sda/"), "sda");
        assert_eq!(basename("/"), "");
        assert_eq!(dirname("/sys/block/sda"), "/sys/block");
        assert_eq!(dirname("/sys"), "/");
        assert_eq!(dirname("/"), "/");
    }
}
