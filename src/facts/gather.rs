//! `Facts`: everything the checks judge, gathered once per run from the
//! kernel and OS files under a `Root` and from the `Host` (clock, euid,
//! statvfs). Gathering only: nothing here decides pass or fail (`checks/`).

use crate::checks::support::Distro;
use crate::facts::block::Backing;
use crate::facts::modules::Modules;
use crate::facts::mountinfo::MountInfo;
use crate::facts::swap::SwapArea;
use crate::facts::{cpu::OnlineCpus, cpu::Quota, kernel::Kernel, mem::MemInfo, os::OsRelease};
use crate::sys::{FsSpace, Host, Root};

/// The state directory and binary directory (DESIGN.md default paths): the
/// `disk` check also judges the drive behind the state directory when it is
/// another mount, and `space` the free space of both.
pub const STATE_DIR: &str = crate::paths::DEFAULT_STATE_DIR;
pub const BIN_DIR: &str = crate::paths::BIN_DIR;

/// Where a command is looked for: the PATH directories, or systemd's
/// private directories for daemons that are not on the PATH.
pub fn tool_dirs(name: &str) -> &'static [&'static str] {
    match name {
        "systemd-timesyncd" => &["/lib/systemd", "/usr/lib/systemd"],
        _ => crate::facts::tools::PATH_DIRS,
    }
}

/// Every command some check looks for.
pub const TOOLS: &[&str] = &[
    "bash",
    "jq",
    "zstd",
    "rsync",
    "conntrack",
    "iptables",
    "systemd-timesyncd",
    "docker",
    "dockerd",
];

/// Facts gathered once per run, each with the reason when it is unknown.
#[derive(Clone, Debug)]
pub struct Facts {
    pub kernel: Kernel,
    pub cpus: std::result::Result<OnlineCpus, String>,
    pub cpu_quota: Option<Quota>,
    pub cpu_model: Option<String>,
    pub mem: std::result::Result<MemInfo, String>,
    pub os: std::result::Result<OsRelease, String>,
    pub mounts: std::result::Result<MountInfo, String>,
    /// The backing of `/` and, when another mount, of the state directory.
    pub disks: Vec<(&'static str, std::result::Result<Backing, String>)>,
    pub modules: Modules,
    pub swaps: std::result::Result<Vec<SwapArea>, String>,
    /// The wall clock (Unix seconds) and this binary's build time.
    pub now: u64,
    pub build_epoch: u64,
    /// Clock synchronised, and where that came from.
    pub clock_sync: Option<(bool, &'static str)>,
    /// `/proc/1/comm`.
    pub pid1: Option<String>,
    pub listening: std::result::Result<Vec<u16>, String>,
    /// Each of `TOOLS` with the path it was found at.
    pub tools: Vec<(&'static str, Option<String>)>,
    /// Whether any PATH directory exists under the root (an empty tree
    /// cannot say a command is missing).
    pub has_path_dirs: bool,
    /// Free space of the filesystems holding `STATE_DIR` and `BIN_DIR`.
    pub space: Vec<(&'static str, std::result::Result<FsSpace, String>)>,
    pub euid: u32,
    /// Not a fact but the operator's choice (`--distro`): which row of the
    /// support table the checks judge against; `None` means all rows.
    pub distro: Option<Distro>,
}

impl Facts {
    pub fn gather(root: &Root, host: &dyn Host) -> Facts {
        use crate::facts::{block, cpu, kernel, mem, modules, mountinfo, net, os, swap, tools};
        let kernel = kernel::read(root, host);
        let mounts = mountinfo::read(root);
        let mut disks = Vec::new();
        if let Ok(mi) = &mounts {
            let top = mi.find("/");
            let state = mi.find(STATE_DIR);
            for (path, m) in [("/", top), (STATE_DIR, state)] {
                if path != "/" && state.map(|s| &s.mount_point) == top.map(|t| &t.mount_point) {
                    continue;
                }
                let b = match m {
                    Some(m) => block::backing(root, m),
                    None => Err(format!("no mount holds {path}")),
                };
                disks.push((path, b));
            }
        }
        let clock_sync = if root.exists("/run/systemd/timesync/synchronized") {
            Some((true, "timesyncd"))
        } else if root.is_live() {
            host.clock_synced().map(|s| (s, "kernel NTP"))
        } else if root.exists("/run/systemd/timesync") {
            Some((false, "timesyncd"))
        } else {
            None
        };
        let space = [STATE_DIR, BIN_DIR]
            .into_iter()
            .map(|p| (p, free_space(root, host, p)))
            .collect();
        Facts {
            modules: modules::read(root, kernel.release.as_deref()),
            mounts,
            disks,
            swaps: swap::read(root),
            now: crate::sys::unix_secs(host.now()),
            build_epoch: crate::version::build_epoch(),
            clock_sync,
            pid1: root.read_trim("/proc/1/comm").filter(|s| !s.is_empty()),
            listening: net::read_listening(root),
            tools: TOOLS
                .iter()
                .map(|t| (*t, tools::find(root, t, tool_dirs(t))))
                .collect(),
            has_path_dirs: crate::facts::tools::PATH_DIRS
                .iter()
                .any(|d| root.exists(d)),
            space,
            euid: host.euid(),
            distro: None,
            kernel,
            cpus: cpu::online_cpus(root),
            cpu_quota: cpu::cgroup_quota(root),
            cpu_model: root
                .read("/proc/cpuinfo")
                .ok()
                .and_then(|t| cpu::parse_cpu_model(&t)),
            mem: mem::read(root),
            os: os::read(root),
        }
    }

    /// Where `name` was found, if anywhere.
    pub fn tool(&self, name: &str) -> Option<&str> {
        self.tools
            .iter()
            .find(|(t, _)| *t == name)
            .and_then(|(_, p)| p.as_deref())
    }
}

/// statvfs of the nearest existing ancestor of `path` under the root, with
/// symlinks resolved inside the root (an image's `/var/lib` may be a link).
fn free_space(root: &Root, host: &dyn Host, path: &str) -> std::result::Result<FsSpace, String> {
    let mut p = path.to_string();
    let real = loop {
        match crate::facts::rootpath::resolve(root, &p) {
            Ok(r) => break r,
            Err(e) if p == "/" => return Err(e),
            Err(_) => p = crate::facts::rootpath::dirname(&p),
        }
    };
    host.statvfs(&root.path(&real))
        .map_err(|e| format!("statvfs {p}: {}", crate::error::io_text(&e)))
}
