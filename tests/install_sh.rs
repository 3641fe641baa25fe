//! scripts/install.sh and scripts/make-bundle against a loopback HTTP
//! server started by the test: a good checksum installs (into a temp root),
//! a bad one refuses and changes nothing, the offline bundle installs.
//! The script, its downloads and the server run natively; the agent it runs
//! is the native build (the agent under test, or in the qemu run the native
//! one scripts/test names in OUTPOST_TEST_BIN_X86_64).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("outpost-installsh-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("mkdir");
    d
}

/// The native agent binary and its architecture name.
fn native_agent() -> (PathBuf, &'static str) {
    let p = if common::runner().is_some() {
        PathBuf::from(std::env::var("OUTPOST_TEST_BIN_X86_64").expect(
            "under a runner, install.sh needs a native agent: set OUTPOST_TEST_BIN_X86_64 (scripts/test does)",
        ))
    } else {
        PathBuf::from(env!("CARGO_BIN_EXE_outpost"))
    };
    let b = fs::read(&p).expect("read agent");
    let arch = match u16::from_le_bytes([b[18], b[19]]) {
        62 => "x86_64",
        183 => "aarch64",
        m => panic!("agent binary of unknown machine {m}"),
    };
    (p, arch)
}

/// Serve files from `dir` on 127.0.0.1 for at most `max` requests or 60 s.
fn serve(dir: PathBuf, max: usize) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = l.local_addr().expect("addr").port();
    l.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut served = 0;
        while served < max && start.elapsed() < Duration::from_secs(60) {
            let Ok((mut s, _)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            served += 1;
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16384 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&req);
            let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
            let name = path.trim_start_matches('/');
            let body = if name.contains('/') || name.contains("..") {
                None
            } else {
                fs::read(dir.join(name)).ok()
            };
            let _ = match body {
                Some(b) => s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            b.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|_| s.write_all(&b)),
                None => s.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    port
}

/// A release folder as build-release writes it, for the native agent.
fn release(dir: &Path) -> (String, Vec<u8>) {
    let (bin, arch) = native_agent();
    let name = format!("outpost-0.0.0-test-{arch}-linux-musl");
    let data = fs::read(&bin).expect("agent");
    fs::write(dir.join(&name), &data).expect("write binary");
    let out = Command::new("sha256sum")
        .arg(&name)
        .current_dir(dir)
        .output()
        .expect("sha256sum");
    assert!(out.status.success(), "sha256sum");
    fs::write(dir.join("SHA256SUMS"), &out.stdout).expect("sums");
    (name, data)
}

/// Run install.sh with a clean environment (no proxies: loopback only).
fn install_sh(args: &[&str], url: Option<&str>) -> (i32, String, String) {
    let (_, arch) = native_agent();
    let mut c = Command::new("sh");
    c.arg(repo().join("scripts/install.sh")).args(args);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OUTPOST_")
            || k.to_ascii_lowercase().ends_with("_proxy")
            || k == "USERDATA"
        {
            c.env_remove(&k);
        }
    }
    c.env("NO_PROXY", "127.0.0.1,localhost")
        .env("OUTPOST_ARCH", arch);
    if let Some(u) = url {
        c.env("OUTPOST_URL", u);
    }
    c.env(
        "USERDATA",
        repo().join("tests/fixtures/config/good/proxy-ca-tags.yaml"),
    );
    let out = c.output().expect("run install.sh");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn image(tag: &str) -> PathBuf {
    let r = tmp(tag);
    fs::create_dir_all(r.join("etc/cron.d")).expect("mkdir");
    fs::write(r.join("etc/os-release"), "ID=debian\nVERSION_ID=12\n").expect("os-release");
    r
}

#[test]
fn good_checksum_installs_bad_refuses() {
    let rel = tmp("release");
    let (name, data) = release(&rel);
    let port = serve(rel.clone(), 20);
    let url = format!("http://127.0.0.1:{port}");
    let r = image("good");
    let root = r.display().to_string();
    let (code, out, err) = install_sh(
        &[
            "--root",
            &root,
            "--",
            "--ignore-checks",
            "--scheduler",
            "cron",
        ],
        Some(&url),
    );
    assert_eq!(code, 0, "install.sh: {out}{err}");
    assert!(
        out.contains(&format!("install.sh: {name} verified (sha256 ")),
        "verified: {out}"
    );
    assert_eq!(
        fs::read(r.join("usr/local/bin/outpost")).expect("installed"),
        data,
        "installed binary"
    );
    assert!(
        r.join("etc/cron.d/outpost").is_file(),
        "cron file installed"
    );

    // A tampered SHA256SUMS: refuse, install nothing.
    let sums = fs::read_to_string(rel.join("SHA256SUMS")).expect("sums");
    let bad = format!("{}{}", "0".repeat(64), &sums[64..]);
    fs::write(rel.join("SHA256SUMS"), bad).expect("tamper");
    let r2 = image("bad");
    let (code, out, err) = install_sh(
        &["--root", &r2.display().to_string(), "--", "--ignore-checks"],
        Some(&url),
    );
    assert_eq!(code, 1, "bad checksum: {out}{err}");
    assert!(
        err.contains(&format!(
            "install.sh: checksum mismatch for {name}: SHA256SUMS says {}",
            "0".repeat(64)
        )),
        "mismatch named: {err}"
    );
    assert!(
        !r2.join("usr").exists() && !r2.join("var").exists(),
        "nothing installed after a bad checksum"
    );

    // Plain http to a non-loopback address is refused before any request.
    let (code, _, err) = install_sh(
        &["--root", &r2.display().to_string()],
        Some("http://example.invalid/x"),
    );
    assert_eq!(code, 1, "plain http refused: {err}");
    assert!(
        err.contains("OUTPOST_URL must be https:// (plain http only on loopback)"),
        "http refusal: {err}"
    );
    let (code, _, err) = install_sh(&["--bogus"], Some(&url));
    assert_eq!(code, 2, "usage: {err}");
    for d in [rel, r, r2] {
        let _ = fs::remove_dir_all(d);
    }
}

#[test]
fn offline_bundle_installs() {
    let (bin, arch) = native_agent();
    let out_dir = tmp("bundle");
    let out = Command::new("bash")
        .arg(repo().join("scripts/make-bundle"))
        .arg(&out_dir)
        .arg("0.0.0-test")
        .arg(arch)
        .arg(&bin)
        .output()
        .expect("make-bundle");
    assert!(
        out.status.success(),
        "make-bundle: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tarball = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(
        tarball,
        out_dir.join(format!("outpost-0.0.0-test-{arch}-airgap.tar.gz")),
        "bundle name"
    );
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&out_dir)
        .status()
        .expect("tar");
    assert!(st.success(), "untar");
    let b = out_dir.join(format!("outpost-0.0.0-test-{arch}-airgap"));
    for f in [
        "install.sh",
        "SHA256SUMS",
        "README",
        "dist/outpost.service",
        "dist/outpost-firstboot.service",
        "dist/outpost.cron",
    ] {
        assert!(b.join(f).is_file(), "bundle holds {f}");
    }
    let r = image("offline");
    let (code, out, err) = install_sh(
        &[
            "--offline",
            &b.display().to_string(),
            "--root",
            &r.display().to_string(),
            "--",
            "--ignore-checks",
            "--scheduler",
            "systemd",
        ],
        None,
    );
    assert_eq!(code, 0, "offline install: {out}{err}");
    assert_eq!(
        fs::read(r.join("usr/local/bin/outpost")).expect("installed"),
        fs::read(&bin).expect("bin"),
        "installed binary"
    );
    assert!(
        r.join("etc/systemd/system/outpost-firstboot.service")
            .is_file(),
        "first-boot unit"
    );
    let _ = fs::remove_dir_all(&out_dir);
    let _ = fs::remove_dir_all(&r);
}
