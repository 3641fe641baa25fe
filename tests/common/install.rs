//! Test support for `install` / `uninstall` (install_cli, reliability_kill):
//! an image tree to install into, the agent's ELF machine, the commands with
//! a clean proxy environment, and a snapshot of a tree (kind, mode, content
//! hash of every path) to prove what changed and what did not.
#![allow(dead_code)]

use super::agent::PROXY_VARS;
use super::outpost;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;

/// The agent binary under test.
pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outpost"))
}

/// The ELF machine of a binary (asserting it is ELF).
pub fn elf_machine(path: &Path) -> u16 {
    let b = fs::read(path).expect("read binary");
    assert_eq!(&b[..4], b"\x7fELF", "{} is ELF", path.display());
    u16::from_le_bytes([b[18], b[19]])
}

/// A 64-byte ELF header for `machine` (what the architecture probe reads).
pub fn fake_elf(machine: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2;
    h[5] = 1;
    h[6] = 1;
    h[16] = 2;
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h
}

/// An image tree at `r` of architecture `machine`: os-release (Debian), an
/// ELF /usr/bin/env, some foreign files and directories install must not
/// touch.
pub fn image(r: &Path, machine: u16) {
    for d in ["etc/cron.d", "usr/bin", "var/lib/other", "etc/ssl/certs"] {
        fs::create_dir_all(r.join(d)).expect("mkdir");
    }
    fs::write(
        r.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    )
    .expect("os-release");
    fs::write(r.join("usr/bin/env"), fake_elf(machine)).expect("env");
    fs::set_permissions(r.join("usr/bin/env"), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(r.join("etc/cron.d/other"), "# someone else's\n").expect("cron");
    fs::write(r.join("var/lib/other/data"), "keep me\n").expect("data");
    fs::set_permissions(
        r.join("var/lib/other/data"),
        fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
}

/// `outpost install --root ROOT --ignore-checks`, without the caller's
/// proxy variables; the test adds its flags.
pub fn install_cmd(root: &Path) -> Command {
    let mut c = outpost();
    c.arg("install")
        .arg("--root")
        .arg(root)
        .arg("--ignore-checks");
    for k in PROXY_VARS {
        c.env_remove(k);
    }
    c
}

/// `outpost uninstall --root ROOT [--purge]`.
pub fn uninstall_cmd(root: &Path, purge: bool) -> Command {
    let mut c = outpost();
    c.arg("uninstall").arg("--root").arg(root);
    if purge {
        c.arg("--purge");
    }
    c
}

/// Every path under `root` with its kind, mode and content hash (or link
/// target); directory mtimes are not part of it.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let entries = fs::read_dir(dir)
            .expect("readdir")
            .map(|e| e.expect("entry").path());
        for p in entries {
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            let m = fs::symlink_metadata(&p).expect("lstat");
            let mode = m.permissions().mode() & 0o7777;
            let v = if m.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&p).expect("readlink").display())
            } else if m.is_dir() {
                walk(root, &p, out);
                format!("dir {mode:04o}")
            } else {
                let data = fs::read(&p).expect("read");
                format!("file {mode:04o} {} bytes {:016x}", data.len(), fnv(&data))
            };
            out.insert(rel, v);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// FNV-1a: enough to tell file contents apart in a test.
pub fn fnv(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
