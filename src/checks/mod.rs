//! Checks as data: each check is a pure function of gathered host facts that
//! returns a status (pass, warn, fail, skip) with what was observed, what is
//! required and a hint. This module holds the registry, the runner, and the
//! two renderings (aligned text for people, `outpost.check/v1` JSON).
//!
//! Checks must not read files themselves: facts are gathered once in
//! `Facts::gather` so each check is testable on plain values.

mod arch;
mod cpu;
mod disk;
mod docker;
mod hostname;
mod init;
mod kernel;
mod memory;
mod os;
mod ports;
mod root;
mod space;
pub mod support;
mod swap;
mod time;
mod tools;

use crate::error::{Error, Result};
use miniserde::Serialize;

/// The verdict of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// What a check function returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    pub observed: String,
    pub required: String,
    pub hint: String,
}

impl Outcome {
    pub fn new(status: Status, observed: impl Into<String>, required: impl Into<String>) -> Self {
        Outcome {
            status,
            observed: observed.into(),
            required: required.into(),
            hint: String::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }
}

/// One finished check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub id: &'static str,
    pub title: &'static str,
    pub outcome: Outcome,
}

/// A registered check: stable ID (never renamed), title, and the function.
pub struct Def {
    pub id: &'static str,
    pub title: &'static str,
    pub run: fn(&Facts) -> Outcome,
}

/// Every check, in output order.
pub const ALL: &[Def] = &[
    arch::DEF,
    cpu::DEF,
    memory::DEF,
    disk::DEF,
    os::DEF,
    init::DEF,
    kernel::DEF,
    swap::DEF,
    time::DEF,
    hostname::DEF,
    ports::DEF,
    tools::DEF,
    docker::DEF,
    space::DEF,
    root::DEF,
];

// Facts and their gathering live in `facts/` (gather.rs); re-exported for
// the checks, which judge them.
pub use crate::facts::gather::{Facts, STATE_DIR};

/// The worse of two verdicts: fail > warn > skip > pass.
pub fn worst(a: Status, b: Status) -> Status {
    let rank = |s: Status| match s {
        Status::Pass => 0,
        Status::Skip => 1,
        Status::Warn => 2,
        Status::Fail => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Which checks to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub only: Vec<String>,
    pub skip: Vec<String>,
}

impl Selection {
    /// Reject unknown IDs so a typo in `--only` cannot silently pass.
    pub fn validate(&self) -> Result<()> {
        for (flag, ids) in [("--only", &self.only), ("--skip", &self.skip)] {
            for id in ids {
                if !ALL.iter().any(|d| d.id == id) {
                    let known: Vec<&str> = ALL.iter().map(|d| d.id).collect();
                    return Err(Error::usage(format!(
                        "{flag}: unknown check ID {id:?} (known: {})",
                        known.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    fn wants(&self, id: &str) -> bool {
        (self.only.is_empty() || self.only.iter().any(|s| s == id))
            && !self.skip.iter().any(|s| s == id)
    }
}

/// Run the selected checks over gathered facts (pure).
pub fn run(facts: &Facts, sel: &Selection) -> Vec<Check> {
    ALL.iter()
        .filter(|d| sel.wants(d.id))
        .map(|d| Check {
            id: d.id,
            title: d.title,
            outcome: (d.run)(facts),
        })
        .collect()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub pass: u32,
    pub warn: u32,
    pub fail: u32,
    pub skip: u32,
}

impl Summary {
    pub fn of(checks: &[Check]) -> Summary {
        let mut s = Summary::default();
        for c in checks {
            match c.outcome.status {
                Status::Pass => s.pass += 1,
                Status::Warn => s.warn += 1,
                Status::Fail => s.fail += 1,
                Status::Skip => s.skip += 1,
            }
        }
        s
    }

    pub fn ok(&self) -> bool {
        self.fail == 0
    }
}

// ---- JSON (schema outpost.check/v1) ----

#[derive(Serialize)]
struct JsonReport<'a> {
    schema: &'static str,
    agent_version: &'static str,
    host: JsonHost,
    summary: JsonSummary,
    checks: Vec<JsonCheck<'a>>,
}

#[derive(Serialize)]
struct JsonHost {
    arch: Option<String>,
    hostname: Option<String>,
    os: Option<JsonOs>,
    kernel: Option<String>,
    cpus: Option<u32>,
    memory_bytes: Option<u64>,
    root_disk: Option<JsonDisk>,
}

#[derive(Serialize)]
struct JsonOs {
    id: String,
    version_id: String,
    pretty_name: String,
}

#[derive(Serialize)]
pub struct JsonDisk {
    pub device: String,
    pub size_bytes: u64,
    pub rotational: Option<bool>,
    pub kind: String,
}

#[derive(Serialize)]
struct JsonSummary {
    pass: u32,
    warn: u32,
    fail: u32,
    skip: u32,
    ok: bool,
}

#[derive(Serialize)]
struct JsonCheck<'a> {
    id: &'a str,
    title: &'a str,
    status: &'a str,
    observed: &'a str,
    required: &'a str,
    hint: &'a str,
}

/// The `outpost.check/v1` document.
pub fn to_json(facts: &Facts, checks: &[Check]) -> String {
    let s = Summary::of(checks);
    let report = JsonReport {
        schema: "outpost.check/v1",
        agent_version: crate::version::VERSION,
        host: JsonHost {
            arch: facts.kernel.arch.clone(),
            hostname: facts.kernel.hostname.clone(),
            os: facts.os.as_ref().ok().map(|o| JsonOs {
                id: o.id.clone(),
                version_id: o.version_id.clone(),
                pretty_name: o.pretty_name.clone(),
            }),
            kernel: facts.kernel.release.clone(),
            cpus: facts.cpus.as_ref().ok().map(|c| c.count),
            memory_bytes: facts.mem.as_ref().ok().map(|m| m.total_bytes),
            root_disk: disk::json(facts),
        },
        summary: JsonSummary {
            pass: s.pass,
            warn: s.warn,
            fail: s.fail,
            skip: s.skip,
            ok: s.ok(),
        },
        checks: checks
            .iter()
            .map(|c| JsonCheck {
                id: c.id,
                title: c.title,
                status: c.outcome.status.as_str(),
                observed: &c.outcome.observed,
                required: &c.outcome.required,
                hint: &c.outcome.hint,
            })
            .collect(),
    };
    miniserde::json::to_string(&report)
}

// ---- Text for people ----

/// Aligned text; ANSI colour only when `colour` is set (a TTY without NO_COLOR).
pub fn to_text(facts: &Facts, checks: &[Check], colour: bool) -> String {
    let mut out = String::new();
    let host = facts.kernel.hostname.as_deref().unwrap_or("(unknown host)");
    let arch = facts.kernel.arch.as_deref().unwrap_or("unknown arch");
    let os = match &facts.os {
        Ok(o) => o.pretty_name.as_str(),
        Err(_) => "unknown OS",
    };
    out.push_str(&format!("outpost check: {host} ({arch}, {os})\n\n"));
    let w_id = checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let w_obs = checks
        .iter()
        .map(|c| c.outcome.observed.chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    for c in checks {
        let (label, col) = match c.outcome.status {
            Status::Pass => ("PASS", "\x1b[32m"),
            Status::Warn => ("WARN", "\x1b[33m"),
            Status::Fail => ("FAIL", "\x1b[31m"),
            Status::Skip => ("SKIP", "\x1b[2m"),
        };
        let label = if colour {
            format!("{col}{label}\x1b[0m")
        } else {
            label.to_string()
        };
        let required = if c.outcome.required.is_empty() {
            String::new()
        } else {
            format!("  (need {})", c.outcome.required)
        };
        let line = format!(
            "  {label}  {:<w_id$}  {:<w_obs$}{required}",
            c.id, c.outcome.observed
        );
        out.push_str(line.trim_end());
        out.push('\n');
        if !c.outcome.hint.is_empty() && c.outcome.status != Status::Pass {
            out.push_str(&format!(
                "        {:<w_id$}  hint: {}\n",
                "", c.outcome.hint
            ));
        }
    }
    let s = Summary::of(checks);
    let verdict = if s.ok() {
        "host is fit"
    } else {
        "host is NOT fit"
    };
    out.push_str(&format!(
        "\n{} pass, {} warn, {} fail, {} skip: {verdict}\n",
        s.pass, s.warn, s.fail, s.skip
    ));
    out
}

/// Format a byte count as GiB with one decimal (memory) or GB (disks).
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Format a byte count in GB (10^9), as drives are sold.
pub fn gb(bytes: u64) -> String {
    let g = bytes as f64 / 1e9;
    if bytes < 1_000_000_000 {
        format!("{:.0} MB", bytes as f64 / 1e6)
    } else if g >= 100.0 {
        format!("{g:.0} GB")
    } else {
        format!("{g:.1} GB")
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::facts::gather::{BIN_DIR, TOOLS};
    use crate::facts::{
        block::Backing, cpu::OnlineCpus, kernel::Kernel, mem::MemInfo, modules::Modules,
    };
    use crate::sys::FsSpace;

    /// Facts of a plain healthy 4-core, 8 GiB x86_64 host.
    pub fn facts() -> Facts {
        Facts {
            kernel: Kernel {
                arch: Some("x86_64".into()),
                release: Some("6.1.0".into()),
                hostname: Some("edge-1".into()),
            },
            cpus: Ok(OnlineCpus {
                count: 4,
                source: "/sys/devices/system/cpu/online",
            }),
            cpu_quota: None,
            cpu_model: None,
            mem: Ok(MemInfo {
                total_bytes: 8 << 30,
                ..MemInfo::default()
            }),
            os: Ok(crate::facts::os::parse_os_release(
                "ID=ubuntu\nVERSION_ID=\"22.04\"\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n",
            )),
            mounts: Ok(crate::facts::mountinfo::parse_mountinfo(
                "22 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            )),
            disks: vec![(
                "/",
                Ok(Backing::Block(crate::facts::block::Stack {
                    top: "nvme0n1p2".into(),
                    whole: "nvme0n1".into(),
                    top_size: Some(512_110_190_592),
                    layers: vec![],
                    disks: vec![crate::facts::block::Disk {
                        name: "nvme0n1".into(),
                        size_bytes: Some(512_110_190_592),
                        rotational: Some(false),
                        media: crate::facts::block::Media::Nvme,
                    }],
                    problems: vec![],
                })),
            )],
            modules: Modules {
                loaded: Some(vec!["overlay".into(), "br_netfilter".into()]),
                builtin: Some(vec!["nf_conntrack".into()]),
                installed: Some(vec![]),
                filesystems: None,
                traces: vec![],
            },
            swaps: Ok(vec![]),
            now: 1_800_000_000,
            build_epoch: 1_700_000_000,
            clock_sync: Some((true, "timesyncd")),
            pid1: Some("systemd".into()),
            listening: Ok(vec![22]),
            tools: TOOLS
                .iter()
                .map(|t| (*t, (!t.starts_with("docker")).then(|| format!("/usr/bin/{t}"))))
                .collect(),
            has_path_dirs: true,
            space: vec![
                (STATE_DIR, Ok(FsSpace { total: 400_000_000_000, available: 300_000_000_000 })),
                (BIN_DIR, Ok(FsSpace { total: 400_000_000_000, available: 300_000_000_000 })),
            ],
            euid: 0,
            distro: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_rejects_unknown_ids() {
        let sel = Selection {
            only: vec!["cpu".into(), "cpus".into()],
            skip: vec![],
        };
        assert_eq!(
            sel.validate().map_err(|e| e.to_string()),
            Err("--only: unknown check ID \"cpus\" (known: arch, cpu, memory, disk, os, init, kernel, swap, time, hostname, ports, tools, docker, space, root)".to_string())
        );
        let sel = Selection {
            only: vec!["arch".into(), "cpu".into(), "memory".into()],
            skip: vec!["memory".into()],
        };
        assert!(sel.validate().is_ok());
        let ids: Vec<&str> = run(&test_support::facts(), &sel)
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["arch", "cpu"]);
    }

    #[test]
    fn gather_judges_the_state_dir_drive_when_it_is_another_mount() {
        use crate::facts::rootpath::test_tree::Tree;
        let t = Tree::new("gather-state");
        let sda = "/sys/devices/pci0000:00/ata1/host0/target0:0:0/0:0:0:0/block/sda";
        let sdb = "/sys/devices/pci0000:00/ata2/host1/target1:0:0/1:0:0:0/block/sdb";
        t.file(&format!("{sda}/size"), "500000000")
            .file(&format!("{sda}/queue/rotational"), "0")
            .file(&format!("{sda}/sda2/partition"), "2")
            .link("/sys/dev/block/8:2", &format!("../..{}/sda2", &sda[4..]))
            .file(&format!("{sdb}/size"), "4000000000")
            .file(&format!("{sdb}/queue/rotational"), "1")
            .file(&format!("{sdb}/sdb1/partition"), "1")
            .link("/sys/dev/block/8:17", &format!("../..{}/sdb1", &sdb[4..]));
        let cases: &[(&str, &[&str])] = &[
            ("24 1 8:2 / / rw - ext4 /dev/sda2 rw\n", &["/"]),
            (
                "24 1 8:2 / / rw - ext4 /dev/sda2 rw\n40 24 8:17 / /var/lib rw - ext4 /dev/sdb1 rw\n",
                &["/", STATE_DIR],
            ),
        ];
        for (mi, want) in cases {
            t.file("/proc/self/mountinfo", mi);
            let f = Facts::gather(&t.root(), &crate::sys::RealHost);
            let paths: Vec<&str> = f.disks.iter().map(|(p, _)| *p).collect();
            assert_eq!(paths, *want, "mountinfo {mi:?}");
        }
        let f = Facts::gather(&t.root(), &crate::sys::RealHost);
        let d = ALL.iter().find(|d| d.id == "disk").expect("disk check");
        let o = (d.run)(&f);
        assert_eq!(o.status, Status::Fail, "HDD behind /var/lib: {o:?}");
        assert_eq!(
            o.observed,
            "sda 256 GB SSD; /var/lib/outpost: sdb 2048 GB HDD"
        );
    }

    #[test]
    fn json_has_schema_and_summary() {
        let f = test_support::facts();
        let checks = run(&f, &Selection::default());
        let j = to_json(&f, &checks);
        assert!(j.starts_with("{\"schema\":\"outpost.check/v1\""), "{j}");
        assert!(
            j.contains("\"summary\":{\"pass\":15,\"warn\":0,\"fail\":0,\"skip\":0,\"ok\":true}"),
            "{j}"
        );
    }

    #[test]
    fn text_without_colour_has_no_escapes() {
        let f = test_support::facts();
        let checks = run(&f, &Selection::default());
        let t = to_text(&f, &checks, false);
        assert!(!t.contains('\x1b'), "{t}");
        assert!(
            t.ends_with("15 pass, 0 warn, 0 fail, 0 skip: host is fit\n"),
            "{t}"
        );
        let t = to_text(&f, &checks, true);
        assert!(t.contains("\x1b[32mPASS\x1b[0m"), "{t}");
    }
}
