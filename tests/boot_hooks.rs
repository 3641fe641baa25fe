//! The initramfs hooks in dist/: shellcheck; the initramfs-tools hook run
//! with DESTDIR into a temp dir (with Debian's real hook-functions), and
//! its refusals; the dracut module-setup.sh sourced with stub inst_*
//! functions; and REAL images (mkinitramfs, dracut --no-kernel) built in a
//! private mount namespace on a host where outpost is installed with a
//! token, a credential and an install secret, unpacked (unmkinitramfs,
//! lsinitrd --unpack) and scanned for every form of those secrets the way
//! tests/common/leak.rs scans, with a control image that must be caught.
//!
//! Needs the Debian packages initramfs-tools, dracut-core, cpio, zstd and
//! shellcheck (scripts/test installs them); the real images need root.

mod common;
use common::fault::Scratch;
use common::leak;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

const HOOK: &str = "dist/initramfs-tools/hooks/outpost";
const SCRIPT: &str = "dist/initramfs-tools/scripts/local-bottom/outpost";
const MODULE: &str = "dist/dracut/95outpost/module-setup.sh";
const DRACUT_HOOK: &str = "dist/dracut/95outpost/outpost-boot.sh";

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("spawn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn need(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} missing: install the Debian package {package} (scripts/test does)"
    );
}

#[test]
fn hooks_pass_shellcheck() {
    for (shell, f) in [
        ("sh", HOOK),
        ("sh", SCRIPT),
        ("sh", DRACUT_HOOK),
        ("bash", MODULE),
    ] {
        let (code, out, err) = run(Command::new("shellcheck").args(["-s", shell]).arg(repo(f)));
        assert_eq!(code, 0, "shellcheck {f}: {out}{err}");
    }
}

/// Run the initramfs-tools hook as mkinitramfs would, into `dest`.
fn itools_hook(dir: &Path, conf: &str, umask: &str) -> (i32, String, String, PathBuf) {
    need(
        "/usr/share/initramfs-tools/hook-functions",
        "initramfs-tools",
    );
    let dest = dir.join("dest");
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).expect("mkdir");
    let conf_file = dir.join("initramfs.conf");
    std::fs::write(&conf_file, conf).expect("conf");
    let (code, out, err) = run(Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec sh \"$0\"",))
        .arg(repo(HOOK))
        .env("DESTDIR", &dest)
        .env("verbose", "n")
        .env("OUTPOST_INITRAMFS_CONF", &conf_file));
    (code, out, err, dest)
}

#[test]
fn itools_hook_copies_only_the_binary_and_the_cap() {
    let s = Scratch::new("hook-itools");
    let bin = env!("CARGO_BIN_EXE_outpost");
    let (code, out, err, dest) = itools_hook(
        s.path(),
        &format!("OUTPOST_BIN={bin}\nOUTPOST_BOOT_CAP=7\n"),
        "077",
    );
    assert_eq!(code, 0, "hook: {out}{err}");
    assert_eq!(err, "", "no warning with umask 077");
    assert_eq!(
        std::fs::read(dest.join("usr/sbin/outpost")).expect("binary copied"),
        std::fs::read(bin).expect("binary"),
        "the binary, unchanged"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("etc/outpost/initramfs-boot.conf")).expect("conf"),
        "OUTPOST_BOOT_CAP=7\n"
    );
    let mut files: Vec<String> = walk(&dest)
        .into_iter()
        .map(|p| {
            p.strip_prefix(&dest)
                .expect("under dest")
                .display()
                .to_string()
        })
        .filter(|p| !p.contains("/lib") || !p.contains(".so"))
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["etc/outpost/initramfs-boot.conf", "usr/sbin/outpost"],
        "nothing else (shared libraries of a non-static test build aside)"
    );

    // The image's mode: without UMASK=0077 the hook warns.
    let (code, _, err, _) = itools_hook(s.path(), &format!("OUTPOST_BIN={bin}\n"), "022");
    assert_eq!(code, 0);
    assert_eq!(
        err.trim(),
        "outpost hook: warning: the image is written with umask 0022 (readable by all); set UMASK=0077 in /etc/initramfs-tools/initramfs.conf or conf.d"
    );

    // No binary: the hook adds nothing and does not fail the build.
    let (code, _, err, dest) = itools_hook(s.path(), "OUTPOST_BIN=/nonexistent/outpost\n", "077");
    assert_eq!(code, 0);
    assert_eq!(
        err.trim(),
        "outpost hook: /nonexistent/outpost is missing or not executable; outpost is not in this initramfs"
    );
    assert!(walk(&dest).is_empty(), "nothing copied");
}

#[test]
fn itools_hook_refuses_secret_bearing_files() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new("hook-refuse");
    let bin = env!("CARGO_BIN_EXE_outpost");
    let f = |name: &str, text: &str, mode: u32| {
        let p = s.path().join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p.display().to_string()
    };
    let ca = f(
        "site-ca.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        0o644,
    );
    let key = f(
        "tls.pem",
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
        0o644,
    );
    let tok = f(
        "site.yaml",
        "stylus:\n  site:\n    edgeHostToken: abc\n",
        0o644,
    );
    let private = f("private.txt", "nothing to see\n", 0o600);
    let cases = [
        (
            key.clone(),
            "its text names a token, credential, password or private key",
        ),
        (
            tok.clone(),
            "its text names a token, credential, password or private key",
        ),
        (
            private.clone(),
            "not readable by others (secrets are kept 0600)",
        ),
        (
            "/etc/outpost/user-data".to_string(),
            "outpost's config or state",
        ),
        (
            "/var/lib/outpost/credential".to_string(),
            "outpost's config or state",
        ),
        (
            s.path().join("missing").display().to_string(),
            "not a regular file",
        ),
    ];
    for (file, why) in &cases {
        let (code, out, err, dest) = itools_hook(
            s.path(),
            &format!("OUTPOST_BIN={bin}\nOUTPOST_INITRAMFS_FILES=\"{ca} {file}\"\n"),
            "077",
        );
        assert_eq!(code, 1, "{file}: the hook fails the build: {out}{err}");
        assert_eq!(
            err.trim(),
            format!("outpost hook: refusing to copy {file} into the initramfs: {why}"),
            "{file}"
        );
        assert!(
            walk(&dest).is_empty(),
            "{file}: nothing copied before the refusal"
        );
    }
    // A plain CA certificate is fine.
    let (code, out, err, dest) = itools_hook(
        s.path(),
        &format!("OUTPOST_BIN={bin}\nOUTPOST_INITRAMFS_FILES=\"{ca}\"\n"),
        "077",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(dest.join(ca.trim_start_matches('/')).exists(), "CA copied");
    // A bad cap is refused with the file named.
    let (code, _, err, _) = itools_hook(
        s.path(),
        &format!("OUTPOST_BIN={bin}\nOUTPOST_BOOT_CAP=soon\n"),
        "077",
    );
    assert_eq!(code, 1);
    assert!(
        err.trim()
            .starts_with("outpost hook: OUTPOST_BOOT_CAP=soon in ")
            && err
                .trim()
                .ends_with("initramfs.conf is not a whole number of seconds"),
        "{err}"
    );
}

#[test]
fn dracut_module_setup_with_stub_inst_functions() {
    let s = Scratch::new("hook-dracut");
    let log = s.path().join("calls");
    let script = r#"
set -eu
log=$1; bin=$2; setup=$3
inst_simple() { echo "inst_simple $*" >>"$log"; }
inst_hook() { echo "inst_hook $*" >>"$log"; }
inst_multiple() { echo "inst_multiple $*" >>"$log"; }
moddir=/usr/lib/dracut/modules.d/95outpost
. "$setup"
OUTPOST_BIN=/nonexistent; rc=0; check || rc=$?; echo "check without binary: $rc" >>"$log"
OUTPOST_BIN=$bin; rc=0; check || rc=$?; echo "check: $rc" >>"$log"
rc=0; depends || rc=$?; echo "depends: $rc" >>"$log"
install
"#;
    let bin = env!("CARGO_BIN_EXE_outpost");
    let (code, out, err) = run(Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg(&log)
        .arg(&log)
        .arg(bin)
        .arg(repo(MODULE)));
    assert_eq!(code, 0, "{out}{err}");
    let calls = std::fs::read_to_string(&log).expect("calls");
    assert_eq!(
        calls,
        format!(
            "check without binary: 1\ncheck: 255\ndepends: 0\ninst_simple {bin} /usr/sbin/outpost\ninst_hook pre-pivot 90 /usr/lib/dracut/modules.d/95outpost/outpost-boot.sh\n"
        ),
        "only the binary and the hook go in; included only when asked for"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                out.push(p);
            }
        }
    }
    out
}

/// Files under `dir` that hold any form of any secret.
fn holders(dir: &Path, secrets: &[(&str, &str)]) -> Vec<String> {
    let mut found = Vec::new();
    for f in walk(dir) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for (name, secret) in secrets {
            for (form, needle) in leak::forms(secret) {
                if text.contains(&needle) {
                    found.push(format!("{} ({form} of the {name})", f.display()));
                }
            }
        }
    }
    found
}

#[test]
fn real_images_hold_no_secret() {
    if common::runner().is_some() {
        // The images do not depend on the agent's architecture; the native
        // run builds them (about a minute).
        eprintln!("real_images_hold_no_secret: run natively only");
        return;
    }
    // SAFETY-free check of root: the namespace and mounts need it.
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "building real images needs root (mount namespace, overlays)"
    );
    need("/usr/sbin/mkinitramfs", "initramfs-tools");
    need("/usr/bin/dracut", "dracut-core");
    need("/usr/bin/cpio", "cpio");
    let s = Scratch::new("real-images");
    let token = "opt_T0kenRealImage5ecretAbCdEf0123456789";
    let cred = "opc_Cr3dRealImage5ecretAbCdEf0123456789";
    let isecret = "1n5ta11realimage5ecret0123456789abcdef0123456789abcdef01234567";
    let secrets_file = s.path().join("secrets");
    std::fs::write(&secrets_file, format!("{token}\n{cred}\n{isecret}\n")).expect("secrets");
    let work = s.path().join("work");
    let (code, out, err) = run(Command::new(repo("tests/boot/real-images.sh"))
        .arg(&work)
        .arg(env!("CARGO_BIN_EXE_outpost"))
        .arg(repo("dist"))
        .arg(&secrets_file));
    assert_eq!(code, 0, "real-images.sh: {out}{err}");
    let secrets = [
        ("token", token),
        ("credential", cred),
        ("install secret", isecret),
    ];

    // The control: an image a rogue hook put the user-data into is caught.
    let rogue = holders(&work.join("itools.rogue"), &secrets);
    assert!(
        rogue
            .iter()
            .any(|h| h.contains("rogue/user-data") && h.contains("plain of the token")),
        "the scan must find the planted token: {rogue:?}"
    );
    // outpost's images: no form of any secret anywhere.
    for dir in ["itools", "dracut"] {
        let found = holders(&work.join(dir), &secrets);
        assert!(found.is_empty(), "{dir} image holds secrets: {found:?}");
    }
    let itools = std::fs::read_to_string(work.join("itools.list")).expect("list");
    for want in [
        "usr/sbin/outpost",
        "scripts/local-bottom/outpost",
        "etc/outpost/initramfs-boot.conf",
    ] {
        assert!(
            itools.lines().any(|l| l == want),
            "itools image lacks {want}"
        );
    }
    assert!(
        !itools.contains("user-data") && !itools.contains("var/lib/outpost"),
        "{itools}"
    );
    let dracut = std::fs::read_to_string(work.join("dracut.list")).expect("list");
    for want in [
        "usr/sbin/outpost",
        "usr/lib/dracut/hooks/pre-pivot/90-outpost-boot.sh",
    ] {
        assert!(dracut.contains(want), "dracut image lacks {want}");
    }
    assert!(
        !dracut.contains("user-data") && !dracut.contains("var/lib/outpost"),
        "{dracut}"
    );
    // Asked to copy the user-data, the hook failed the mkinitramfs run.
    let refused = std::fs::read_to_string(work.join("itools.refused.log")).expect("log");
    assert!(
        refused.contains("outpost hook: refusing to copy /etc/outpost/user-data into the initramfs: outpost's config or state"),
        "{refused}"
    );
    // Both images 0600: initramfs-tools through UMASK=0077, dracut by itself.
    let modes = std::fs::read_to_string(work.join("modes.txt")).expect("modes");
    for line in modes.lines() {
        assert!(line.starts_with("600 "), "image mode: {line}");
    }
    // The boot script inside the initramfs-tools image is ours, unchanged.
    assert_eq!(
        std::fs::read(work.join("itools/scripts/local-bottom/outpost")).expect("script in image"),
        std::fs::read(repo(SCRIPT)).expect("script")
    );
}
