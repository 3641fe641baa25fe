//! `outpost install --initramfs` into image roots: the early-boot files of
//! each generator placed with their modes and recorded in the manifest, the
//! image build left to make the initramfs (and told so), a rerun without
//! the flag keeping them, `none` removing them, `uninstall --purge` leaving
//! the tree as it was, and the usage errors.

mod common;

use common::{fixture, outpost, run};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn image(tag: &str, tools: &[&str]) -> PathBuf {
    let r = std::env::temp_dir().join(format!("outpost-initramfs-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&r);
    fs::create_dir_all(r.join("etc")).expect("mkdir");
    fs::write(
        r.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    )
    .expect("os-release");
    // The image's own binaries are of the agent's architecture.
    let bin = fs::read(env!("CARGO_BIN_EXE_outpost")).expect("agent");
    fs::create_dir_all(r.join("usr/bin")).expect("mkdir");
    fs::write(r.join("usr/bin/env"), &bin[..64]).expect("env");
    for t in tools {
        let p = r.join(t.trim_start_matches('/'));
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, "#!/bin/sh\n").expect("tool");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    r
}

fn snapshot(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("readdir").flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(root).expect("under").display().to_string();
            if m.is_dir() {
                stack.push(p.clone());
                out.insert(rel, (m.permissions().mode() & 0o7777, Vec::new()));
            } else {
                out.insert(
                    rel,
                    (
                        m.permissions().mode() & 0o7777,
                        fs::read(&p).unwrap_or_default(),
                    ),
                );
            }
        }
    }
    out
}

fn install(root: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut c = outpost();
    c.arg("install")
        .arg("--root")
        .arg(root)
        .arg("--ignore-checks")
        .arg("--scheduler")
        .arg("none")
        .arg("--config")
        .arg(fixture("config/good/connected.yaml"));
    c.args(extra);
    run(&mut c)
}

fn repo(rel: &str) -> Vec<u8> {
    fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).expect("dist file")
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("stat").permissions().mode() & 0o7777
}

#[test]
fn initramfs_tools_then_dracut_then_none_then_purge() {
    let r = image("cycle", &["/usr/sbin/update-initramfs", "/usr/bin/dracut"]);
    let before = snapshot(&r);
    let (code, out, err) = install(&r, &["--initramfs", "auto"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("initramfs: initramfs-tools files placed in the image; the image build makes the initramfs (/usr/sbin/update-initramfs -u)"),
        "{err}"
    );
    assert!(!out.contains("run "), "nothing is run in an image: {out}");
    for (path, dist, m) in [
        (
            "etc/initramfs-tools/hooks/outpost",
            "dist/initramfs-tools/hooks/outpost",
            0o755,
        ),
        (
            "etc/initramfs-tools/scripts/local-bottom/outpost",
            "dist/initramfs-tools/scripts/local-bottom/outpost",
            0o755,
        ),
        (
            "etc/initramfs-tools/conf.d/outpost",
            "dist/initramfs-tools/conf.d/outpost",
            0o644,
        ),
    ] {
        assert_eq!(fs::read(r.join(path)).expect(path), repo(dist), "{path}");
        assert_eq!(mode(&r.join(path)), m, "{path} mode");
    }
    let manifest = fs::read_to_string(r.join("var/lib/outpost/manifest.json")).expect("manifest");
    assert!(
        manifest.contains("/etc/initramfs-tools/hooks/outpost"),
        "{manifest}"
    );

    // A rerun without --initramfs keeps them.
    let (code, out, err) = install(&r, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("nothing to do"), "{out}");

    // dracut instead: the initramfs-tools files go, the module comes.
    let (code, out, err) = install(&r, &["--initramfs", "dracut"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !r.join("etc/initramfs-tools/hooks/outpost").exists(),
        "{out}"
    );
    assert_eq!(
        fs::read(r.join("usr/lib/dracut/modules.d/95outpost/module-setup.sh")).expect("module"),
        repo("dist/dracut/95outpost/module-setup.sh")
    );
    assert_eq!(
        fs::read_to_string(r.join("etc/dracut.conf.d/outpost.conf")).expect("conf"),
        "# Written by outpost install (docs/boot.md): put outpost's boot beacon\n# into the initramfs.\nadd_dracutmodules+=\" outpost \"\n"
    );
    assert!(
        err.contains("the image build makes the initramfs (/usr/bin/dracut -f)"),
        "{err}"
    );

    // none: removed.
    let (code, out, err) = install(&r, &["--initramfs", "none"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!r
        .join("usr/lib/dracut/modules.d/95outpost/module-setup.sh")
        .exists());

    let (code, out, err) = install(&r, &["--initramfs", "initramfs-tools"]);
    assert_eq!(code, 0, "{out}{err}");
    let mut c = outpost();
    c.arg("uninstall").arg("--root").arg(&r).arg("--purge");
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(snapshot(&r), before, "purge leaves the tree as it was");
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn initramfs_usage_errors() {
    let r = image("usage", &[]);
    let (code, _, err) = install(&r, &["--initramfs", "auto"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.lines().last().unwrap_or(""),
        format!(
            "outpost: install: --initramfs auto: neither update-initramfs nor dracut is under {}; name one, or use none",
            r.display()
        )
    );
    let (code, _, err) = install(&r, &["--initramfs", "mkinitcpio"]);
    assert_eq!(code, 2);
    assert_eq!(
        err.trim(),
        "outpost: install: --initramfs \"mkinitcpio\" is not one of auto, initramfs-tools, dracut, none"
    );
    let _ = fs::remove_dir_all(&r);
}
