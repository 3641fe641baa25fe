//! Kernel modules: loaded (`/proc/modules`), built in
//! (`/lib/modules/<release>/modules.builtin`) and installed
//! (`/lib/modules/<release>/modules.dep`), plus the kernel's own traces of a
//! feature (`/proc/filesystems` lists a built-in `overlay`;
//! `/proc/sys/net/bridge` exists once `br_netfilter` is active;
//! `/proc/sys/net/netfilter/nf_conntrack_max` once `nf_conntrack` is).
//!
//! Must not load modules or run `modprobe`; it only reads.

use crate::sys::Root;

/// Where a module was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    Loaded,
    BuiltIn,
    /// Installed under /lib/modules, loadable with modprobe.
    Available,
    /// Every source was readable and none lists it.
    Missing,
    /// Not found, and some source could not be read: cannot tell.
    Unknown,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Modules {
    pub loaded: Option<Vec<String>>,
    pub builtin: Option<Vec<String>>,
    pub installed: Option<Vec<String>>,
    pub filesystems: Option<Vec<String>>,
    /// Module names whose kernel trace (a /proc/sys entry) is present.
    pub traces: Vec<String>,
}

/// Module names use `_` where file names may use `-`.
fn norm(name: &str) -> String {
    name.replace('-', "_")
}

/// `overlay 151552 0 - Live 0x0000000000000000` -> `overlay`.
pub fn parse_proc_modules(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(norm)
        .collect()
}

/// `kernel/fs/overlayfs/overlay.ko.zst: kernel/...` or a modules.builtin
/// line `kernel/net/bridge/br_netfilter.ko` -> `overlay`, `br_netfilter`.
pub fn parse_module_paths(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let path = l.split(':').next()?.trim();
            let file = path.rsplit('/').next()?;
            let stem = file.split(".ko").next()?;
            (!stem.is_empty() && file.contains(".ko")).then(|| norm(stem))
        })
        .collect()
}

/// `nodev\toverlay` -> `overlay`.
pub fn parse_filesystems(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(String::from)
        .collect()
}

pub fn read(root: &Root, release: Option<&str>) -> Modules {
    let lib = |f: &str| {
        release.and_then(|r| {
            (!r.contains('/'))
                .then(|| root.read(format!("/lib/modules/{r}/{f}")).ok())
                .flatten()
        })
    };
    let mut traces = Vec::new();
    for (module, trace) in [
        (
            "br_netfilter",
            "/proc/sys/net/bridge/bridge-nf-call-iptables",
        ),
        ("nf_conntrack", "/proc/sys/net/netfilter/nf_conntrack_max"),
    ] {
        if root.exists(trace) {
            traces.push(module.to_string());
        }
    }
    Modules {
        loaded: root
            .read("/proc/modules")
            .ok()
            .map(|t| parse_proc_modules(&t)),
        builtin: lib("modules.builtin").map(|t| parse_module_paths(&t)),
        installed: lib("modules.dep").map(|t| parse_module_paths(&t)),
        filesystems: root
            .read("/proc/filesystems")
            .ok()
            .map(|t| parse_filesystems(&t)),
        traces,
    }
}

impl Modules {
    pub fn find(&self, module: &str) -> Availability {
        let has =
            |l: &Option<Vec<String>>| l.as_ref().is_some_and(|v| v.iter().any(|m| m == module));
        if has(&self.loaded) || self.traces.iter().any(|t| t == module) {
            return Availability::Loaded;
        }
        if has(&self.builtin) || (module == "overlay" && has(&self.filesystems)) {
            return Availability::BuiltIn;
        }
        if has(&self.installed) {
            return Availability::Available;
        }
        if self.loaded.is_some() && self.builtin.is_some() && self.installed.is_some() {
            Availability::Missing
        } else {
            Availability::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(
            parse_proc_modules(
                "overlay 151552 0 - Live 0x0\nbr_netfilter 32768 0 - Live 0x0\nnf-x 1 0\n\n"
            ),
            ["overlay", "br_netfilter", "nf_x"]
        );
        assert_eq!(
            parse_module_paths("kernel/fs/overlayfs/overlay.ko.zst: kernel/x.ko\nkernel/net/bridge/br_netfilter.ko\ngarbage\n:\nkernel/net/netfilter/nf_conntrack.ko.xz:\n"),
            ["overlay", "br_netfilter", "nf_conntrack"]
        );
        assert_eq!(
            parse_filesystems("nodev\tsysfs\n\text4\nnodev\toverlay\n"),
            ["sysfs", "ext4", "overlay"]
        );
    }

    #[test]
    fn availability() {
        let v = |s: &[&str]| Some(s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        let m = Modules {
            loaded: v(&["overlay"]),
            builtin: v(&["nf_conntrack"]),
            installed: v(&["br_netfilter"]),
            filesystems: None,
            traces: vec![],
        };
        let cases = [
            ("overlay", Availability::Loaded),
            ("nf_conntrack", Availability::BuiltIn),
            ("br_netfilter", Availability::Available),
            ("zfs", Availability::Missing),
        ];
        for (name, want) in cases {
            assert_eq!(m.find(name), want, "module {name}");
        }
        let partial = Modules {
            loaded: v(&[]),
            ..Modules::default()
        };
        assert_eq!(
            partial.find("zfs"),
            Availability::Unknown,
            "unreadable sources cannot say missing"
        );
        let fs = Modules {
            filesystems: v(&["overlay"]),
            traces: vec!["br_netfilter".into()],
            ..Modules::default()
        };
        assert_eq!(
            fs.find("overlay"),
            Availability::BuiltIn,
            "overlay in /proc/filesystems"
        );
        assert_eq!(
            fs.find("br_netfilter"),
            Availability::Loaded,
            "bridge sysctl present"
        );
    }
}
