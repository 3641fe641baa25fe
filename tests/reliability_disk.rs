//! Full, inode-less and read-only disks, for real: a size-limited tmpfs
//! mounted (as root) over the state directory or over the install target.
//! `checkin` against a server that answers well must end with exit 20 and
//! one line naming the file, the old state byte-identical; `install` into
//! a full `/usr/local/bin` likewise, and uninstall then restores the tree.
//! Skipped, saying so, when not root or mounting is not allowed.

mod common;
use common::agent::{Device, Setup};
use common::fault::{FaultServer, Scratch};
use common::tls::Ca;
use common::{fixture, outpost, run};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const HOST: &str = "edge-disk";

/// A tmpfs mounted at a path for the test's length.
struct Mount(PathBuf);

impl Mount {
    fn new(at: &Path, opts: &str) -> Option<Mount> {
        fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(at)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Mount(at.to_path_buf()))
    }
    fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .expect("mount");
        assert!(st.success(), "remount {opts}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn usable(label: &str, probe: &Path) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("{label}: SKIPPED: needs root to mount a tmpfs");
        return false;
    }
    if Mount::new(probe, "size=64k").is_none() {
        eprintln!("{label}: SKIPPED: mounting a tmpfs is not allowed here");
        return false;
    }
    true
}

/// Fill a filesystem until writes fail (ENOSPC), or its inodes.
fn fill(dir: &Path, inodes: bool) {
    if inodes {
        for i in 0.. {
            if fs::write(dir.join(format!("inode-filler-{i}")), b"").is_err() {
                break;
            }
        }
    } else {
        use std::io::Write;
        let mut f = fs::File::create(dir.join("space-filler")).expect("filler");
        let block = vec![0u8; 4096];
        while f.write_all(&block).and_then(|_| f.sync_all()).is_ok() {}
    }
}

/// A registered device whose state dir is a tmpfs with the seeded files.
fn device_on_tmpfs(dir: &Path, endpoint: &str, ca: &Ca, opts: &str) -> (Device, Mount) {
    fs::create_dir_all(dir).expect("mkdir");
    let d = Device::new(
        dir,
        &Setup {
            endpoint,
            token: Some("opt_disk"),
            host_id: HOST,
            ca_pem: &ca.cert,
            site: "",
            top: "outpost:\n  timeouts:\n    connect: 2\n    request: 3\n",
        },
    );
    d.seed(HOST);
    let saved = dir.join("saved-state");
    let st = Command::new("cp")
        .arg("-a")
        .arg(d.state_dir())
        .arg(&saved)
        .status()
        .expect("cp");
    assert!(st.success());
    let m = Mount::new(&d.state_dir(), opts).expect("mount tmpfs on the state dir");
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", saved.display()))
        .arg(d.state_dir())
        .status()
        .expect("cp");
    assert!(st.success());
    (d, m)
}

fn snapshot_all(d: &Device) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(d.state_dir())
        .expect("readdir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains("filler") && n != "lock")
        .map(|n| (n.clone(), fs::read(d.file(&n)).expect("read")))
        .collect();
    v.sort();
    v
}

#[test]
fn state_dir_full_no_inodes_read_only() {
    let scratch = Scratch::new("disk-state");
    if !usable(
        "state_dir_full_no_inodes_read_only",
        &scratch.path().join("probe"),
    ) {
        return;
    }
    let ca = Ca::new(&scratch, "main");
    let server = FaultServer::tls(&ca.good());
    // A well-formed check-in answer: the agent wants to write its state.
    let endpoint = format!("https://127.0.0.1:{}/absurd-interval", server.port);
    for (label, opts, how) in [
        ("full", "size=64k", "space"),
        ("no inodes", "size=1m,nr_inodes=16", "inodes"),
        ("read-only", "size=1m", "ro"),
    ] {
        let (d, m) = device_on_tmpfs(
            &scratch.path().join(label.replace(' ', "-")),
            &endpoint,
            &ca,
            opts,
        );
        // One good check-in first: status.json says ok.
        let (code, _, err) = d.run(&["checkin"]);
        assert_eq!(code, 0, "{label}: first check-in: {err}");
        match how {
            "space" => fill(&d.state_dir(), false),
            "inodes" => fill(&d.state_dir(), true),
            _ => m.remount("ro"),
        }
        let before = snapshot_all(&d);
        let (code, out, err) = d.run(&["checkin"]);
        eprintln!("RESULT state dir {label}: exit {code}: {}", err.trim_end());
        assert_eq!(code, 20, "{label}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{label}: one line: {err}");
        assert!(
            err.contains(&d.state_dir().display().to_string()),
            "{label}: names a file in the state dir: {err}"
        );
        assert_eq!(snapshot_all(&d), before, "{label}: state byte-identical");
        // A server failure (HTTP 500) while the disk is full: the failure
        // cannot be recorded in status.json.
        let ud = fs::read_to_string(&d.config).expect("user-data");
        fs::write(&d.config, ud.replace("/absurd-interval", "/status/500")).expect("user-data");
        // Times in status.json are seconds: let the clock move on.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let (code, out, err) = d.run(&["checkin"]);
        eprintln!(
            "RESULT state dir {label}, server 500: exit {code}: {}",
            err.trim_end()
        );
        if how == "ro" {
            assert_eq!(code, 20, "{label}: {out}{err}");
        } else {
            assert_eq!(
                code, 11,
                "{label}: the server's failure is the exit code: {out}{err}"
            );
        }
        assert_eq!(err.lines().count(), 1, "{label}: one line: {err}");
        assert_eq!(snapshot_all(&d), before, "{label}: state byte-identical");
        // What status says when the failure itself could not be recorded.
        let (scode, sout, serr) = d.run(&["status"]);
        eprintln!(
            "RESULT status after unrecorded failure ({label}): exit {scode}: {}{}",
            sout.lines().next().unwrap_or(""),
            serr.trim_end()
        );
        if how != "ro" {
            // The unrecorded failure shows: not "ok".
            assert_eq!(
                scode, 1,
                "{label}: status after an unrecorded failure: {sout}"
            );
            assert!(sout.contains("could not be recorded"), "{label}: {sout}");
        }
        drop(m);
    }
}

#[test]
fn install_target_full() {
    let scratch = Scratch::new("disk-install");
    if !usable("install_target_full", &scratch.path().join("probe")) {
        return;
    }
    let r = scratch.path().join("img");
    for dir in ["etc/cron.d", "usr/bin", "var/lib", "etc/ssl/certs"] {
        fs::create_dir_all(r.join(dir)).expect("mkdir");
    }
    fs::write(r.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").expect("os-release");
    let me = fs::read(env!("CARGO_BIN_EXE_outpost")).expect("agent");
    let mut b = me[..64].to_vec();
    b.resize(512 * 1024, 0x5a);
    let bin = scratch.path().join("outpost-small");
    fs::write(&bin, b).expect("write");
    let m = Mount::new(&r.join("usr/local/bin"), "size=128k").expect("mount");
    let snap = || {
        let o = Command::new("find")
            .arg(&r)
            .arg("-printf")
            .arg("%P %m %s\n")
            .output()
            .expect("find");
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let before = snap();
    let ud = fixture("config/good/proxy-ca-tags.yaml");
    let mut c = outpost();
    c.args([
        "install",
        "--ignore-checks",
        "--scheduler",
        "cron",
        "--config",
    ])
    .arg(&ud)
    .arg("--binary")
    .arg(&bin)
    .arg("--root")
    .arg(&r);
    let (code, out, err) = run(&mut c);
    eprintln!(
        "RESULT install into full /usr/local/bin: exit {code}: {}",
        err.trim_end()
    );
    assert_eq!(code, 20, "{out}{err}");
    // Check results and warnings come first; the error is one line, last.
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("outpost:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert_eq!(err.lines().last(), errors.first().copied(), "{err}");
    assert!(
        errors[0].contains("usr/local/bin/outpost"),
        "names the file: {err}"
    );
    let mut c = outpost();
    c.args(["uninstall", "--purge", "--root"]).arg(&r);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "uninstall after the failed install: {out}{err}");
    assert_eq!(snap(), before, "uninstall restores the tree");
    drop(m);
}
