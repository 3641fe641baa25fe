//! Commands on the PATH under the root: is `name` an executable file in one
//! of the standard directories? Symlinks (`/usr/sbin/iptables ->
//! /etc/alternatives/iptables -> ...`) are followed inside the root only.
//!
//! Must not run anything it finds.

use super::rootpath::resolve;
use crate::sys::Root;
use std::os::unix::fs::PermissionsExt;

/// The PATH a root shell or a systemd unit gets on common distributions.
pub const PATH_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The first `dir/name` that resolves to an executable regular file.
pub fn find(root: &Root, name: &str, dirs: &[&str]) -> Option<String> {
    if name.contains('/') || name.is_empty() {
        return None;
    }
    dirs.iter().find_map(|d| {
        let p = format!("{d}/{name}");
        let real = resolve(root, &p).ok()?;
        let meta = std::fs::metadata(root.path(&real)).ok()?;
        (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(p)
    })
}

#[cfg(test)]
mod tests {
    use super::super::rootpath::test_tree::Tree;
    use super::*;

    #[test]
    fn finds_executables_only() {
        let t = Tree::new("tools");
        t.file("/usr/bin/jq", "")
            .file("/usr/bin/notexec", "")
            .file("/usr/sbin/xtables-nft-multi", "")
            .link("/etc/alternatives/iptables", "/usr/sbin/xtables-nft-multi")
            .link("/usr/sbin/iptables", "/etc/alternatives/iptables")
            .link("/usr/bin/dangling", "/usr/bin/gone")
            .dir("/usr/bin/adir");
        for p in [
            "/usr/bin/jq",
            "/usr/sbin/xtables-nft-multi",
            "/usr/bin/adir",
        ] {
            let path = t.0.join(p.trim_start_matches('/'));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let r = t.root();
        let cases: &[(&str, Option<&str>)] = &[
            ("jq", Some("/usr/bin/jq")),
            ("iptables", Some("/usr/sbin/iptables")),
            ("notexec", None),
            ("dangling", None),
            ("adir", None),
            ("bash", None),
            ("../bin/jq", None),
        ];
        for (name, want) in cases {
            assert_eq!(find(&r, name, PATH_DIRS).as_deref(), *want, "tool {name}");
        }
    }
}
