//! The boot beacon (`outpost.boot/v1`, docs/boot.md): what the initramfs
//! saw of this boot (boot ID, boot counter, kernel command line facts,
//! timestamps, the `check --boot` subset, the real root, the network, the
//! early check-in) and why something could not be done. `outpost boot`
//! writes it to `/run/outpost/boot.json` (which survives the switch to the
//! real root); the agent sends it once per boot in its next check-in.
//!
//! This file is pure apart from reading files under a `Root`: it never
//! writes to the real root (the initramfs leaves it untouched) and never
//! contacts a server (that is `early.rs`).

pub mod agent;
pub mod command;
pub mod early;

use crate::checks::{self, Check, Facts, Outcome, Selection, Status};
use crate::sys::Root;
use miniserde::{json, Deserialize, Serialize};

pub const SCHEMA: &str = "outpost.boot/v1";
pub const COUNT_SCHEMA: &str = "outpost.bootcount/v1";
/// Where the beacon lives (under the root of the running system).
pub const BEACON: &str = "/run/outpost/boot.json";
/// The boot ID of the last beacon the hub acknowledged (tmpfs: gone at
/// the next boot, which is exactly when the next beacon is due).
pub const REPORTED: &str = "/run/outpost/boot.reported";
/// The early check-in's error output (its last line is the reason).
pub const EARLY_LOG: &str = "/run/outpost/boot-checkin.log";
/// The boot counter, in the state directory of the real root.
pub const COUNT_FILE: &str = "boot-count";
/// The whole early check-in, beacon included, ends within this (seconds).
pub const DEFAULT_CAP_S: u64 = 10;
/// Largest beacon file read.
const MAX_BEACON: u64 = 16 * 1024;

/// The kernel command line facts that matter to a boot (never the whole
/// line: it may hold a password for some other tool).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Cmdline {
    /// `root=` as given (`LABEL=...`, `UUID=...`, `/dev/sda1`).
    pub root: Option<String>,
    /// `ro` / `rw` as given (the last one wins, as in the kernel).
    pub root_mode: Option<String>,
    /// `ip=` as given (`dhcp`, a static address, `off`).
    pub ip: Option<String>,
    /// `rd.neednet=1` (dracut).
    pub neednet: bool,
    /// `outpost.*` parameters, `key=value` (e.g. `outpost.boot.checkin=0`).
    pub outpost: Vec<String>,
}

/// The real root as the initramfs saw it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct RootDev {
    /// The device `root=` names, resolved to a path under /dev when it can be.
    pub device: Option<String>,
    pub present: bool,
    /// Where the real root is mounted in the initramfs (`/root`, `/sysroot`).
    pub mounted_at: Option<String>,
    /// Mounted read-only (`ro` on the command line, the Debian default).
    pub read_only: Option<bool>,
}

/// One check of the boot subset, as in `outpost.check/v1` minus title/hint.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct BootCheck {
    pub id: String,
    pub status: String,
    pub observed: String,
}

/// The early check-in from the initramfs.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct EarlyCheckin {
    /// `outpost.boot.checkin` (or the `outpost.boot.checkin=` parameter).
    pub wanted: bool,
    /// `off`, `pending` (in the copy the early check-in itself carries),
    /// `skipped`, `ok`, `failed` or `timeout`.
    pub result: String,
    /// The exit code the check-in ended with (0 ok).
    pub code: Option<i32>,
    /// One line: why it was skipped or failed (never a secret).
    pub message: String,
    pub elapsed_ms: u64,
}

/// Why something could not be done: a stable ID and one line.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Reason {
    /// `no-network`, `hub-down`, `dns-failing`, `clock-before-build`,
    /// `never-installed`, `read-only-root`, `root-missing`, `checkin-timeout`,
    /// `checkin-refused`, `tls-untrusted`, `config-invalid`, `beacon-unsaved`.
    pub id: String,
    pub detail: String,
}

/// The beacon (`outpost.boot/v1`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Beacon {
    pub schema: String,
    pub agent_version: String,
    /// `/proc/sys/kernel/random/boot_id`: the same in the initramfs and
    /// after the switch to the real root.
    pub boot_id: String,
    /// This boot's number on this device (1 = first boot seen).
    pub boot_count: u64,
    /// `initramfs-tools` or `dracut` (or what the caller named).
    pub generator: String,
    /// The phase it ran in (`local-bottom`, `pre-pivot`).
    pub stage: String,
    /// Milliseconds since the kernel started (`/proc/uptime`) when written.
    pub uptime_ms: u64,
    /// Wall clock when written, RFC 3339 UTC; `None` when the clock is
    /// earlier than this agent's build (not trustworthy).
    pub written_at: Option<String>,
    pub clock_valid: bool,
    pub cmdline: Cmdline,
    pub cpus: Option<u32>,
    pub memory_bytes: Option<u64>,
    pub root: RootDev,
    /// A default route exists (the initramfs brought the network up).
    pub network: bool,
    /// The real root holds outpost's config (`installed`) and a device
    /// credential (`registered`).
    pub installed: bool,
    pub registered: bool,
    pub checks: Vec<BootCheck>,
    pub checkin: EarlyCheckin,
    pub reasons: Vec<Reason>,
    /// Who sent this copy to the hub: `initramfs` (the early check-in) or
    /// `agent` (the first check-in after boot); empty in the file.
    pub reported_by: String,
}

impl Beacon {
    pub fn reason(&mut self, id: &str, detail: impl Into<String>) {
        if !self.reasons.iter().any(|r| r.id == id) && self.reasons.len() < 16 {
            self.reasons.push(Reason {
                id: id.into(),
                detail: clip(&detail.into(), 1024),
            });
        }
    }

    pub fn to_json(&self) -> String {
        let mut s = json::to_string(self);
        s.push('\n');
        s
    }

    pub fn parse(text: &str) -> Result<Beacon, String> {
        let b: Beacon = json::from_str(text).map_err(|_| "not an outpost.boot/v1 document")?;
        if b.schema != SCHEMA {
            return Err(format!("schema {:?}, want {SCHEMA}", b.schema));
        }
        Ok(b)
    }
}

/// The stored boot counter (`<stateDir>/boot-count`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Count {
    pub schema: String,
    pub boot_id: String,
    pub count: u64,
}

/// This boot's number: the stored one when it was stored for this very
/// boot (the hook ran twice), else one more.
pub fn next_count(stored: Option<&Count>, boot_id: &str) -> u64 {
    match stored {
        Some(c) if c.boot_id == boot_id => c.count.max(1),
        Some(c) => c.count.saturating_add(1),
        None => 1,
    }
}

pub fn parse_count(text: &str) -> Option<Count> {
    let c: Count = json::from_str(text).ok()?;
    (c.schema == COUNT_SCHEMA).then_some(c)
}

/// Read a small file whole, `None` when missing, unreadable or too big.
pub fn read_small(path: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let f = std::fs::File::open(path).ok()?;
    let mut s = String::new();
    f.take(MAX_BEACON).read_to_string(&mut s).ok()?;
    Some(s)
}

/// At most `max` bytes of `s`, cut at a character boundary (the protocol's
/// limits, docs/protocol.md).
pub fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Pick the boot facts out of `/proc/cmdline`.
pub fn parse_cmdline(text: &str) -> Cmdline {
    let mut c = <Cmdline as Default>::default();
    for word in text.split_whitespace() {
        let (k, v) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        match (k, v) {
            ("root", Some(v)) => c.root = Some(clip(v, 256)),
            ("ro", None) | ("rw", None) => c.root_mode = Some(k.to_string()),
            ("ip", Some(v)) => c.ip = Some(clip(v, 256)),
            ("rd.neednet", Some(v)) => c.neednet = v == "1",
            _ if k.starts_with("outpost.") && c.outpost.len() < 16 => {
                c.outpost.push(clip(word, 256))
            }
            _ => {}
        }
    }
    c
}

/// `outpost.boot.checkin=0|1` on the command line, when given.
pub fn cmdline_checkin(c: &Cmdline) -> Option<bool> {
    c.outpost.iter().rev().find_map(|w| match w.as_str() {
        "outpost.boot.checkin=1" | "outpost.boot.checkin=true" => Some(true),
        "outpost.boot.checkin=0" | "outpost.boot.checkin=false" => Some(false),
        _ => None,
    })
}

/// The /dev path a `root=` value names, when it names a block device.
pub fn root_device_path(root: &str) -> Option<String> {
    let by = |dir: &str, v: &str| {
        if v.is_empty() || v.contains('/') {
            None
        } else {
            Some(format!("/dev/disk/{dir}/{v}"))
        }
    };
    if let Some(v) = root.strip_prefix("LABEL=") {
        by("by-label", v)
    } else if let Some(v) = root.strip_prefix("UUID=") {
        by("by-uuid", &v.to_ascii_lowercase())
    } else if let Some(v) = root.strip_prefix("PARTUUID=") {
        by("by-partuuid", &v.to_ascii_lowercase())
    } else if let Some(v) = root.strip_prefix("PARTLABEL=") {
        by("by-partlabel", v)
    } else if root.starts_with("/dev/") {
        Some(root.to_string())
    } else {
        None
    }
}

/// `/proc/uptime` -> milliseconds.
pub fn parse_uptime_ms(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let (s, frac) = first.split_once('.').unwrap_or((first, "0"));
    let s: u64 = s.parse().ok()?;
    let mut f = frac.chars().take(3).collect::<String>();
    while f.len() < 3 {
        f.push('0');
    }
    Some(s * 1000 + f.parse::<u64>().ok()?)
}

/// A default route in `/proc/net/route` (destination 00000000, not lo).
pub fn has_default_route(text: &str) -> bool {
    text.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 2 && f[0] != "lo" && f[1] == "00000000"
    })
}

/// Mount options of the mount at `point` in `/proc/self/mountinfo`
/// (the last one mounted there wins); `Some(true)` when read-only.
pub fn mount_read_only(mountinfo: &str, point: &str) -> Option<bool> {
    let mut found = None;
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() > 5 && crate::facts::mountinfo::unescape(f[4]) == point {
            found = Some(f[5].split(',').any(|o| o == "ro"));
        }
    }
    found
}

/// The `rootdev` check: the device `root=` names is there (or the root is
/// already mounted).
pub fn rootdev_check(root: &Root, cmd: &Cmdline, mounted: bool) -> (Outcome, RootDev) {
    const REQUIRED: &str = "the root= device present";
    let mut dev = <RootDev as Default>::default();
    let Some(r) = &cmd.root else {
        return (
            Outcome::new(
                Status::Skip,
                "no root= on the kernel command line",
                REQUIRED,
            ),
            dev,
        );
    };
    let Some(path) = root_device_path(r) else {
        return (
            Outcome::new(
                Status::Skip,
                format!("root={r} is not a block device"),
                REQUIRED,
            ),
            dev,
        );
    };
    dev.present = root.exists(&path);
    dev.device = Some(clip(&path, 256));
    let o = if dev.present {
        Outcome::new(Status::Pass, format!("{path} present"), REQUIRED)
    } else if mounted {
        dev.present = true;
        Outcome::new(Status::Pass, format!("root={r} mounted"), REQUIRED)
    } else {
        Outcome::new(Status::Fail, format!("{path} missing"), REQUIRED)
            .hint("the disk holding the root file system did not appear: check cabling, the storage driver in the initramfs, and root=")
    };
    (o, dev)
}

/// The checks that make sense before the real root runs: `cpu`, `memory`
/// and `rootdev`, judged as `outpost check` judges them.
pub fn checks(root: &Root, facts: &Facts, sysroot_mounted: bool) -> (Vec<Check>, RootDev) {
    let sel = Selection {
        only: vec!["cpu".into(), "memory".into()],
        skip: Vec::new(),
    };
    let mut out = checks::run(facts, &sel);
    let cmd = parse_cmdline(&root.read("/proc/cmdline").unwrap_or_default());
    let (o, dev) = rootdev_check(root, &cmd, sysroot_mounted);
    out.push(Check {
        id: "rootdev",
        title: "Root device",
        outcome: o,
    });
    (out, dev)
}

pub fn boot_checks_json(checks: &[Check]) -> Vec<BootCheck> {
    checks
        .iter()
        .map(|c| BootCheck {
            id: c.id.to_string(),
            status: c.outcome.status.as_str().to_string(),
            observed: clip(&c.outcome.observed, 256),
        })
        .collect()
}

/// Map the exit code and message of a failed check-in to a reason ID.
pub fn checkin_reason(code: i32, message: &str, network: bool) -> &'static str {
    use crate::error::Code;
    match code {
        c if c == Code::Network.as_i32() => {
            if message.contains("cannot resolve") {
                "dns-failing"
            } else if message.contains("clock") {
                "clock-before-build"
            } else if !network {
                "no-network"
            } else {
                "hub-down"
            }
        }
        c if c == Code::ServerBusy.as_i32() || c == Code::BadAnswer.as_i32() => "hub-down",
        c if c == Code::Untrusted.as_i32() => "tls-untrusted",
        c if c == Code::Config.as_i32() => "config-invalid",
        _ => "checkin-refused",
    }
}

/// The hub's JSON for a device's last boot: the beacon plus `received`.
pub fn hub_summary(b: &Beacon, received: u64) -> json::Value {
    let mut v: json::Value = json::from_str(&json::to_string(b)).unwrap_or(json::Value::Null);
    if let json::Value::Object(o) = &mut v {
        o.insert(
            "received".into(),
            json::Value::String(crate::timefmt::rfc3339(received)),
        );
    }
    v
}

/// One cell for the hub's device table: `#3 dracut 4.2s ok`.
pub fn hub_text(b: &Beacon) -> String {
    let mut notes: Vec<String> = b
        .checks
        .iter()
        .filter(|c| c.status == "fail")
        .map(|c| format!("fail:{}", c.id))
        .collect();
    notes.extend(b.reasons.iter().map(|r| r.id.clone()));
    if b.checkin.wanted {
        notes.push(format!("early:{}", b.checkin.result));
    }
    format!(
        "#{} {} {}.{}s {}",
        b.boot_count,
        if b.generator.is_empty() {
            "-"
        } else {
            &b.generator
        },
        b.uptime_ms / 1000,
        (b.uptime_ms % 1000) / 100,
        if notes.is_empty() {
            "ok".to_string()
        } else {
            notes.join(",")
        }
    )
}

#[cfg(test)]
mod tests;
