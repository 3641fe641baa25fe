//! A device's installed agent driven as its service or cron would drive it:
//! the binary under the root's `usr/local/bin`, the previous one beside it
//! after a swap, and one cron tick (the previous binary's guard, then
//! `checkin`). Shared by the self-upgrade and hawkBit DDI tests, whose
//! releases are wrappers and copies of this build.

use super::agent::{Device, PROXY_VARS};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The installed agent of a device.
pub fn installed(d: &Device) -> PathBuf {
    d.root.join("usr/local/bin/outpost")
}

/// The previous binary a swap keeps beside it.
pub fn previous(d: &Device) -> PathBuf {
    d.root.join("usr/local/bin/outpost.prev")
}

fn is_elf(exe: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(exe)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"\x7fELF"
}

/// A command for `exe` (the agent, a copy such as `outpost.prev`, a release
/// wrapper): an ELF binary goes through the runner prefix (a copy of the
/// aarch64 agent cannot be exec'd under qemu-user); a wrapper script names
/// the runner itself.
pub fn exe_command(exe: &Path) -> Command {
    match super::runner() {
        Some(r) if is_elf(exe) => {
            let mut p = r.split_whitespace();
            let mut c = Command::new(p.next().unwrap_or("qemu-aarch64-static"));
            c.args(p).arg(exe);
            c
        }
        _ => Command::new(exe),
    }
}

/// Runs `exe` against the device's root and config (`exe_command`).
pub fn run_exe(d: &Device, exe: &Path, args: &[&str]) -> (i32, String, String) {
    let mut c = exe_command(exe);
    c.args(args)
        .arg("--root")
        .arg(&d.root)
        .arg("--config")
        .arg(&d.config);
    for v in PROXY_VARS {
        c.env_remove(v);
    }
    c.env_remove("OUTPOST_TEST_VERSION");
    super::run(&mut c)
}

/// One cron tick: the previous binary's guard (asserted to pass), then
/// `checkin` of the installed agent.
pub fn cron_tick(d: &Device) -> (i32, String, String) {
    let prev = previous(d);
    if prev.exists() {
        let (c, o, e) = run_exe(d, &prev, &["upgrade-guard"]);
        assert_eq!(c, 0, "guard: {o}{e}");
    }
    run_exe(d, &installed(d), &["-v", "checkin"])
}

/// Runs a helper command (scripts/sign, sqlite3, ...) that must succeed;
/// its stdout.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
