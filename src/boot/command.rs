//! `outpost boot`: run from the initramfs (docs/boot.md). Writes the boot
//! beacon to `/run/outpost/boot.json`, then, when `outpost.boot.checkin` is
//! true, runs the early check-in as a child process and kills it at the cap,
//! then writes the beacon again with the outcome.
//!
//! It always exits 0 after parsing (a boot must never stop here), writes
//! nothing to the real root, and never upgrades anything.

use super::{Beacon, Cmdline, EarlyCheckin, BEACON, COUNT_FILE, SCHEMA};
use crate::checks::Facts;
use crate::cli::ConfigSource;
use crate::error::{Code, Error, Result};
use crate::sys::{Host, Root};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, PartialEq)]
pub struct BootArgs {
    /// The running system (`/` in the initramfs): /proc, /sys, /dev, /run.
    pub root: Root,
    /// The real root, mounted (`${rootmnt}`, `/sysroot`): config, state.
    pub sysroot: Option<Root>,
    pub generator: String,
    pub stage: String,
    /// The whole run ends within this many seconds.
    pub cap_s: u64,
    pub json: bool,
    /// Internal: be the early check-in child (see early.rs).
    pub early_child: bool,
}

pub const HELP: &str = "\
outpost boot: write the boot beacon from the initramfs (docs/boot.md)

Usage: outpost boot [--root DIR] [--sysroot DIR] [--generator NAME]
                    [--stage NAME] [--cap SECONDS] [--json]

Records this boot (boot ID, boot counter, kernel command line facts,
uptime, the cpu, memory and rootdev checks, the real root, the network)
in /run/outpost/boot.json (schema outpost.boot/v1). When the real root's
config sets outpost.boot.checkin: true, also checks in once, read-only
(no state written, no registration, no upgrade), killed at the cap.
Writes nothing to the real root. The initramfs hooks run it.

Options:
  --root DIR        The running system (default /)
  --sysroot DIR     Where the real root is mounted (config and state are
                    read there)
  --generator NAME  initramfs-tools, dracut, ... (recorded as given)
  --stage NAME      The phase it runs in (recorded as given)
  --cap SECONDS     End everything within this (default 10, 1..=60)
  --json            Also print the beacon on standard output
  -h, --help        Show this help

Exit status: 0 always once the arguments parse (the boot goes on);
2 usage.
";

/// Parse the arguments after `boot`.
pub fn parse(args: Vec<OsString>) -> Result<crate::cli::Command> {
    use lexopt::prelude::*;
    const CMD: &str = "boot";
    let mut p = lexopt::Parser::from_args(args);
    let mut a = BootArgs {
        root: Root::system(),
        sysroot: None,
        generator: String::new(),
        stage: String::new(),
        cap_s: super::DEFAULT_CAP_S,
        json: false,
        early_child: false,
    };
    let val = |p: &mut lexopt::Parser, flag: &str| -> Result<String> {
        p.value()
            .map_err(|_| Error::usage(format!("{CMD}: {flag} needs a value")))?
            .into_string()
            .map_err(|_| Error::usage(format!("{CMD}: {flag} value is not valid UTF-8")))
    };
    while let Some(arg) = p.next().map_err(|e| Error::usage(format!("{CMD}: {e}")))? {
        match arg {
            Short('h') | Long("help") => return Ok(crate::cli::Command::Help(HELP.to_string())),
            Long("root") => a.root = Root::new(PathBuf::from(val(&mut p, "--root")?)),
            Long("sysroot") => {
                a.sysroot = Some(Root::new(PathBuf::from(val(&mut p, "--sysroot")?)))
            }
            Long("generator") => a.generator = val(&mut p, "--generator")?,
            Long("stage") => a.stage = val(&mut p, "--stage")?,
            Long("cap") => {
                let v = val(&mut p, "--cap")?;
                a.cap_s = match v.parse::<u64>() {
                    Ok(n) if (1..=60).contains(&n) => n,
                    _ => {
                        return Err(Error::usage(format!(
                            "{CMD}: --cap {v:?} is not a whole number of seconds from 1 to 60"
                        )))
                    }
                }
            }
            Long("json") => a.json = true,
            Long("early-checkin") => a.early_child = true,
            Short(c) => return Err(Error::usage(format!("{CMD}: unknown flag -{c}"))),
            Long(l) => return Err(Error::usage(format!("{CMD}: unknown flag --{l}"))),
            Value(v) => {
                return Err(Error::usage(format!(
                    "{CMD}: unexpected argument {:?}",
                    v.to_string_lossy()
                )))
            }
        }
    }
    for (name, v) in [("--generator", &a.generator), ("--stage", &a.stage)] {
        if v.len() > 64 || v.chars().any(|c| c.is_control()) {
            return Err(Error::usage(format!(
                "{CMD}: {name} must be at most 64 printable characters"
            )));
        }
    }
    Ok(crate::cli::Command::Boot(a))
}

/// What the real root says about outpost.
struct RealRoot {
    installed: bool,
    registered: bool,
    wanted: bool,
    state_dir: String,
    config_error: Option<String>,
    read_only: Option<bool>,
    mounted: bool,
}

fn look_at_sysroot(root: &Root, sysroot: &Root, cmd: &Cmdline) -> RealRoot {
    let mountinfo = root.read("/proc/self/mountinfo").unwrap_or_default();
    let point = sysroot.base().to_string_lossy().into_owned();
    let read_only = super::mount_read_only(&mountinfo, &point);
    let mut rr = RealRoot {
        installed: false,
        registered: false,
        wanted: false,
        state_dir: crate::checks::STATE_DIR.to_string(),
        config_error: None,
        read_only,
        mounted: read_only.is_some(),
    };
    let file = sysroot.path(crate::config::DEFAULT_CONFIG);
    rr.installed = file.exists();
    let src = ConfigSource {
        root: sysroot.clone(),
        file: None,
        sets: Vec::new(),
    };
    match crate::commands::config::load(&src, false).and_then(|l| l.into_valid()) {
        Ok(cfg) => {
            rr.wanted = cfg.boot_checkin.value;
            rr.state_dir = cfg.state_dir.value.clone();
        }
        Err(e) if rr.installed => rr.config_error = Some(e.message().to_string()),
        Err(_) => {}
    }
    if let Some(w) = super::cmdline_checkin(cmd) {
        rr.wanted = w;
    }
    let paths = crate::state::Paths::new(sysroot.path(&rr.state_dir));
    rr.registered = paths.credential().exists();
    rr
}

/// Gather the beacon (no writes).
pub fn gather(a: &BootArgs, host: &dyn Host) -> (Beacon, Option<RealRootFacts>) {
    let root = &a.root;
    let facts = Facts::gather(root, host);
    let cmd = super::parse_cmdline(&root.read("/proc/cmdline").unwrap_or_default());
    let rr = a.sysroot.as_ref().map(|s| look_at_sysroot(root, s, &cmd));
    let mounted = rr.as_ref().is_some_and(|r| r.mounted);
    let (checks, mut dev) = super::checks(root, &facts, mounted);
    let now = facts.now;
    let clock_valid = now >= facts.build_epoch;
    let boot_id = super::clip(
        &root
            .read_trim("/proc/sys/kernel/random/boot_id")
            .unwrap_or_default(),
        64,
    );
    let count_root = a.sysroot.as_ref().unwrap_or(root);
    let state_dir = rr
        .as_ref()
        .map(|r| r.state_dir.clone())
        .unwrap_or_else(|| crate::checks::STATE_DIR.to_string());
    let count_path = count_root.path(&state_dir).join(COUNT_FILE);
    let stored = super::read_small(&count_path).and_then(|t| super::parse_count(&t));
    if let (Some(s), Some(r)) = (&a.sysroot, &rr) {
        dev.mounted_at = r
            .mounted
            .then(|| super::clip(&s.base().to_string_lossy(), 256));
        dev.read_only = r.read_only;
    }
    let mut b = Beacon {
        schema: SCHEMA.into(),
        agent_version: crate::version::VERSION.into(),
        boot_count: super::next_count(stored.as_ref(), &boot_id),
        boot_id,
        generator: a.generator.clone(),
        stage: a.stage.clone(),
        uptime_ms: root
            .read("/proc/uptime")
            .ok()
            .and_then(|t| super::parse_uptime_ms(&t))
            .unwrap_or(0),
        written_at: clock_valid.then(|| crate::timefmt::rfc3339(now)),
        clock_valid,
        cpus: facts.cpus.as_ref().ok().map(|c| c.count),
        memory_bytes: facts.mem.as_ref().ok().map(|m| m.total_bytes),
        root: dev,
        network: root
            .read("/proc/net/route")
            .map(|t| super::has_default_route(&t))
            .unwrap_or(false),
        installed: rr.as_ref().is_some_and(|r| r.installed),
        registered: rr.as_ref().is_some_and(|r| r.registered),
        checks: super::boot_checks_json(&checks),
        checkin: EarlyCheckin {
            wanted: rr.as_ref().is_some_and(|r| r.wanted),
            result: "off".into(),
            ..<EarlyCheckin as Default>::default()
        },
        cmdline: cmd,
        reasons: Vec::new(),
        reported_by: String::new(),
    };
    if b.boot_id.is_empty() {
        b.reason(
            "no-boot-id",
            "/proc/sys/kernel/random/boot_id is not readable",
        );
    }
    if !clock_valid {
        b.reason(
            "clock-before-build",
            format!(
                "the clock ({}) is earlier than this agent's build ({}): no RTC or a flat battery",
                crate::timefmt::rfc3339(now),
                crate::version::build_date()
            ),
        );
    }
    if !b.root.present && b.cmdline.root.is_some() && b.root.device.is_some() {
        b.reason(
            "root-missing",
            format!(
                "{} is not there",
                b.root.device.as_deref().unwrap_or_default()
            ),
        );
    }
    match &rr {
        Some(r) if !r.installed => b.reason(
            "never-installed",
            format!(
                "no {} on the real root: outpost was never installed there",
                crate::config::DEFAULT_CONFIG
            ),
        ),
        Some(r) => {
            if let Some(e) = &r.config_error {
                b.reason("config-invalid", e.clone());
            }
            if r.read_only == Some(true) {
                b.reason(
                    "read-only-root",
                    "the real root is mounted read-only here; outpost writes nothing to it in the initramfs (the agent saves the boot counter after boot)",
                );
            }
        }
        None => {}
    }
    if !b.network && (b.checkin.wanted || b.cmdline.ip.is_some() || b.cmdline.neednet) {
        b.reason(
            "no-network",
            "no default route in the initramfs (ip= / rd.neednet=1 brought no interface up)",
        );
    }
    let rf = rr.map(|r| RealRootFacts {
        registered: r.registered,
        installed: r.installed,
    });
    (b, rf)
}

pub struct RealRootFacts {
    pub registered: bool,
    pub installed: bool,
}

/// Write the beacon (0644: it holds no secret) under `/run/outpost`.
fn save(root: &Root, b: &Beacon) -> Result<()> {
    let path = root.path(BEACON);
    if let Some(dir) = path.parent() {
        crate::fsutil::ensure_dir(dir, 0o755)?;
    }
    crate::fsutil::write_atomic(&path, b.to_json().as_bytes(), 0o644)
}

pub fn run(a: BootArgs) -> Result<Code> {
    if a.early_child {
        return super::early::child(&a);
    }
    let start = Instant::now();
    let host = crate::sys::host();
    let (mut b, rf) = gather(&a, host.as_ref());
    if b.checkin.wanted {
        // What the hub sees in the early check-in's own copy.
        b.checkin.result = "pending".into();
    }
    if let Err(e) = save(&a.root, &b) {
        log::error!("boot beacon: {}", e.message());
    }
    if b.checkin.wanted {
        early(&a, &mut b, rf.as_ref(), start);
        if let Err(e) = save(&a.root, &b) {
            log::error!("boot beacon: {}", e.message());
        }
    }
    if a.json {
        let _ = crate::commands::print(&b.to_json());
    }
    let failing: Vec<&str> = b
        .checks
        .iter()
        .filter(|c| c.status == "fail")
        .map(|c| c.id.as_str())
        .collect();
    let why: Vec<&str> = b.reasons.iter().map(|r| r.id.as_str()).collect();
    // One line on the console: the boot log is where an operator looks.
    eprintln!(
        "outpost: boot {} recorded in {} ({}ms){}{}{}",
        b.boot_count,
        BEACON,
        start.elapsed().as_millis(),
        if failing.is_empty() {
            String::new()
        } else {
            format!("; failing: {}", failing.join(","))
        },
        if b.checkin.wanted {
            format!("; early check-in: {}", b.checkin.result)
        } else {
            String::new()
        },
        if why.is_empty() {
            String::new()
        } else {
            format!("; reasons: {}", why.join(","))
        }
    );
    Ok(Code::Ok)
}

/// The early check-in: skip it when it cannot work, else run the child
/// and kill it at the cap.
fn early(a: &BootArgs, b: &mut Beacon, rf: Option<&RealRootFacts>, start: Instant) {
    let skip = |b: &mut Beacon, msg: &str| {
        b.checkin.result = "skipped".into();
        b.checkin.message = msg.into();
    };
    let Some(sysroot) = &a.sysroot else {
        return skip(b, "no --sysroot: the real root is not mounted");
    };
    match rf {
        Some(r) if !r.installed => return skip(b, "outpost is not installed on the real root"),
        Some(r) if !r.registered => {
            b.reason(
                "never-registered",
                "no device credential on the real root: the first check-in registers after boot",
            );
            return skip(b, "not registered yet (the initramfs never registers)");
        }
        _ => {}
    }
    if !b.clock_valid {
        return skip(
            b,
            "the clock is earlier than this agent's build: TLS cannot be judged",
        );
    }
    if !b.network {
        return skip(b, "no network in the initramfs (no default route)");
    }
    let cap = Duration::from_secs(a.cap_s);
    let left = cap.saturating_sub(start.elapsed());
    let mut cmd = match crate::sys::self_command() {
        Ok(c) => c,
        Err(e) => return skip(b, &format!("cannot find this binary: {e}")),
    };
    // The child's stderr goes to a file in /run (its error line is the
    // reason); no pipe, so a chatty child can never block on it.
    let log_path = a.root.path(super::EARLY_LOG);
    let log = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&log_path)
    };
    let log = match log {
        Ok(f) => f,
        Err(e) => return skip(b, &format!("cannot create {}: {e}", log_path.display())),
    };
    let t0 = Instant::now();
    let child = cmd
        .arg("boot")
        .arg("--early-checkin")
        .arg("--root")
        .arg(a.root.base())
        .arg("--sysroot")
        .arg(sysroot.base())
        .arg("--cap")
        .arg(left.as_secs().max(1).to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return skip(b, &format!("cannot start the check-in: {e}")),
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if t0.elapsed() >= left => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    b.checkin.elapsed_ms = t0.elapsed().as_millis() as u64;
    let text = super::read_small(&log_path).unwrap_or_default();
    let last = super::clip(
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim_start_matches("outpost: "),
        1000,
    );
    match status.and_then(|s| s.code()) {
        Some(0) => {
            b.checkin.result = "ok".into();
            b.checkin.code = Some(0);
        }
        Some(c) => {
            b.checkin.result = "failed".into();
            b.checkin.code = Some(c);
            b.checkin.message = last.clone();
            let id = super::checkin_reason(c, &last, b.network);
            b.reason(id, last);
        }
        None => {
            b.checkin.result = "timeout".into();
            b.checkin.message = format!("no answer within the {} s cap", a.cap_s);
            b.reason(
                "checkin-timeout",
                format!("the early check-in was stopped at the {} s cap", a.cap_s),
            );
        }
    }
}
