//! `outpost install` / `uninstall` against temp roots, through the real
//! binary (under the qemu runner prefix in the aarch64 run): idempotence,
//! dry-run, purge restoring the tree exactly, state kept without purge,
//! foreign files, kill -9 between actions, systemd-analyze verify of the
//! unit as installed, and baking an image for another architecture.

mod common;

use common::install::{
    agent_bin, elf_machine, fake_elf, install_cmd, snapshot, uninstall_cmd, EM_AARCH64, EM_X86_64,
};
use common::{fixture, outpost, run};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh, empty directory for one test.
fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("outpost-install-{tag}-{}", std::process::id()));
    if d.exists() {
        let _ = Command::new("chmod").arg("-R").arg("u+w").arg(&d).status();
        fs::remove_dir_all(&d).expect("clean old temp dir");
    }
    fs::create_dir_all(&d).expect("mkdir");
    d
}

/// An image tree of architecture `machine` in a fresh directory
/// (`common::install::image`).
fn image(tag: &str, machine: u16) -> PathBuf {
    let r = tmp(tag);
    common::install::image(&r, machine);
    r
}

fn native_image(tag: &str) -> PathBuf {
    image(tag, elf_machine(&agent_bin()))
}

fn install(root: &Path, extra: &[&str]) -> (i32, String, String) {
    run(install_cmd(root).args(extra))
}

fn uninstall(root: &Path, purge: bool) -> (i32, String, String) {
    run(&mut uninstall_cmd(root, purge))
}

fn userdata() -> String {
    fixture("config/good/proxy-ca-tags.yaml")
        .display()
        .to_string()
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).expect("stat").permissions().mode() & 0o7777
}

#[test]
fn install_twice_dry_run_and_purge() {
    let r = native_image("twice");
    let before = snapshot(&r);
    let ud = userdata();

    // --dry-run prints the plan and changes nothing.
    let (code, out, err) = install(
        &r,
        &["--config", &ud, "--scheduler", "systemd", "--dry-run"],
    );
    assert_eq!(code, 0, "dry-run: {err}");
    assert!(
        out.contains("nothing was changed (--dry-run)"),
        "dry-run header: {out}"
    );
    assert!(
        out.contains("write       /usr/local/bin/outpost (0755"),
        "dry-run lists the binary: {out}"
    );
    assert_eq!(snapshot(&r), before, "dry-run changed the tree");

    let (code, out, err) = install(&r, &["--config", &ud, "--scheduler", "systemd"]);
    assert_eq!(code, 0, "first install: {out}{err}");
    assert!(
        err.contains("checks: image root: ran os, tools, docker; skipped arch"),
        "skipped checks named: {err}"
    );
    for (p, m) in [
        ("usr/local/bin/outpost", 0o755),
        ("etc/outpost/user-data", 0o600),
        ("etc/outpost/proxy.env", 0o600),
        ("var/lib/outpost", 0o700),
        ("var/lib/outpost/manifest.json", 0o600),
        ("etc/systemd/system/outpost.service", 0o644),
        ("etc/systemd/system/outpost-firstboot.service", 0o644),
        (
            "etc/systemd/system/outpost-firstboot.service.d/ca.conf",
            0o644,
        ),
        ("etc/systemd/system/outpost.service.d/proxy.conf", 0o644),
        ("usr/local/share/ca-certificates/outpost-1.crt", 0o644),
        ("usr/local/share/ca-certificates/outpost-2.crt", 0o644),
    ] {
        assert_eq!(mode(&r.join(p)), m, "mode of {p}");
    }
    assert_eq!(
        fs::read(r.join("usr/local/bin/outpost")).expect("installed binary"),
        fs::read(agent_bin()).expect("agent binary"),
        "installed binary is the running one"
    );
    assert_eq!(
        fs::read_to_string(r.join("etc/outpost/user-data")).expect("user-data"),
        fs::read_to_string(&ud).expect("fixture"),
        "user-data copied as given"
    );
    assert_eq!(
        fs::read_link(r.join("etc/systemd/system/multi-user.target.wants/outpost.service"))
            .expect("wants link"),
        PathBuf::from("/etc/systemd/system/outpost.service"),
        "enabled by symlink"
    );
    assert_eq!(
        fs::read_link(
            r.join("etc/systemd/system/multi-user.target.wants/outpost-firstboot.service")
        )
        .expect("firstboot link"),
        PathBuf::from("/etc/systemd/system/outpost-firstboot.service"),
        "first-boot unit enabled in an image"
    );
    let ca = fs::read_to_string(r.join("etc/systemd/system/outpost-firstboot.service.d/ca.conf"))
        .expect("ca drop-in");
    assert!(
        ca.contains("ExecStartPre=/usr/sbin/update-ca-certificates"),
        "first boot updates the trust store: {ca}"
    );
    let env = fs::read_to_string(r.join("etc/outpost/proxy.env")).expect("proxy env");
    assert!(
        env.contains("HTTPS_PROXY=http://proxy.corp.example:3128\n"),
        "proxy env: {env}"
    );
    let manifest = fs::read_to_string(r.join("var/lib/outpost/manifest.json")).expect("manifest");
    assert!(
        manifest.starts_with("{\"schema\":\"outpost.manifest/v1\""),
        "manifest schema: {manifest}"
    );
    assert!(
        !manifest.contains("9f8e7d6c5b4a"),
        "manifest holds no token"
    );
    let installed = snapshot(&r);

    // Second run: nothing to do, nothing changed.
    let (code, out, err) = install(&r, &["--config", &ud, "--scheduler", "systemd"]);
    assert_eq!(code, 0, "second install: {err}");
    assert!(
        out.starts_with("nothing to do: outpost is installed in the image under"),
        "second run: {out}"
    );
    assert_eq!(snapshot(&r), installed, "second install changed the tree");

    // --purge: exactly the tree from before.
    let (code, out, err) = uninstall(&r, true);
    assert_eq!(code, 0, "uninstall --purge: {out}{err}");
    assert_eq!(
        snapshot(&r),
        before,
        "uninstall --purge did not restore the tree"
    );
    let (code, out, _) = uninstall(&r, true);
    assert_eq!(code, 0, "uninstall twice");
    assert!(
        out.starts_with("nothing to do: no "),
        "second uninstall: {out}"
    );
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn uninstall_keeps_state_and_identity_unless_purge() {
    let r = native_image("keep");
    let before = snapshot(&r);
    let (code, _, err) = install(&r, &["--config", &userdata(), "--scheduler", "cron"]);
    assert_eq!(code, 0, "install: {err}");
    assert_eq!(
        fs::read_to_string(r.join("etc/cron.d/outpost")).expect("cron file"),
        include_str!("../dist/outpost.cron"),
        "cron file as in dist/"
    );
    // The identity, as `outpost id` stores it.
    let (code, id, err) = run(outpost()
        .arg("id")
        .arg("--root")
        .arg(&r)
        .arg("--set")
        .arg("stylus.site.name=edge-keep-1"));
    assert_eq!(code, 0, "id: {err}");
    let host_id = fs::read_to_string(r.join("var/lib/outpost/host-id")).expect("host-id written");
    fs::write(r.join("var/lib/outpost/credential"), "cred\n").expect("credential");
    fs::set_permissions(
        r.join("var/lib/outpost/credential"),
        fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");

    let (code, out, err) = uninstall(&r, false);
    assert_eq!(code, 0, "uninstall: {out}{err}");
    assert!(
        out.contains("kept the state in"),
        "says what it kept: {out}"
    );
    for gone in [
        "usr/local/bin/outpost",
        "etc/cron.d/outpost",
        "etc/outpost/user-data",
        "etc/outpost",
    ] {
        assert!(!r.join(gone).exists(), "{gone} removed");
    }
    assert_eq!(
        fs::read_to_string(r.join("var/lib/outpost/host-id")).expect("host-id kept"),
        host_id,
        "host-id kept"
    );
    assert_eq!(
        fs::read_to_string(r.join("var/lib/outpost/credential")).expect("credential kept"),
        "cred\n",
        "credential kept"
    );
    assert!(id.trim().len() > 3, "id printed: {id}");
    assert!(
        r.join("etc/cron.d/other").exists(),
        "foreign cron file untouched"
    );

    // A later --purge still restores the tree exactly.
    let (code, out, err) = uninstall(&r, true);
    assert_eq!(code, 0, "purge after uninstall: {out}{err}");
    assert_eq!(snapshot(&r), before, "purge after uninstall");
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn foreign_file_needs_force_and_is_backed_up() {
    let r = native_image("foreign");
    fs::write(r.join("etc/cron.d/outpost"), "# hand-made\n").expect("foreign cron");
    fs::set_permissions(
        r.join("etc/cron.d/outpost"),
        fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    let before = snapshot(&r);
    let (code, out, err) = install(&r, &["--config", &userdata(), "--scheduler", "cron"]);
    assert_eq!(code, 4, "foreign file refused: {out}{err}");
    assert!(
        err.contains("outpost: /etc/cron.d/outpost was not created by outpost; rerun with --force to replace it (a backup is kept in /var/lib/outpost/backup)"),
        "refusal names the file: {err}"
    );
    assert_eq!(snapshot(&r), before, "refusal changed the tree");

    let (code, out, err) = install(
        &r,
        &["--config", &userdata(), "--scheduler", "cron", "--force"],
    );
    assert_eq!(code, 0, "--force: {out}{err}");
    assert!(
        out.contains(
            "back up     /etc/cron.d/outpost -> /var/lib/outpost/backup/%2Fetc%2Fcron.d%2Foutpost"
        ),
        "backup reported: {out}"
    );
    let backup = r.join("var/lib/outpost/backup/%2Fetc%2Fcron.d%2Foutpost");
    assert_eq!(
        fs::read_to_string(&backup).expect("backup"),
        "# hand-made\n",
        "backup content"
    );
    assert_eq!(mode(&backup), 0o640, "backup mode");
    assert_eq!(
        fs::read_to_string(r.join("etc/cron.d/outpost")).expect("cron"),
        include_str!("../dist/outpost.cron"),
        "replaced"
    );
    // Rerun without --force: the file is outpost's now.
    let (code, out, _) = install(&r, &["--config", &userdata(), "--scheduler", "cron"]);
    assert_eq!(code, 0, "rerun after --force");
    assert!(
        out.starts_with("nothing to do"),
        "rerun after --force: {out}"
    );

    let (code, out, err) = uninstall(&r, true);
    assert_eq!(code, 0, "uninstall: {out}{err}");
    assert!(
        out.contains("restore     /etc/cron.d/outpost <- "),
        "restore reported: {out}"
    );
    assert_eq!(snapshot(&r), before, "foreign file restored with its mode");
    let _ = fs::remove_dir_all(&r);
}

#[test]
fn killed_between_actions_then_rerun_repairs() {
    let ud = userdata();
    let args = ["--config", ud.as_str(), "--scheduler", "systemd"];
    let reference = native_image("kill-ref");
    let (code, out, err) = install(&reference, &args);
    assert_eq!(code, 0, "reference install: {err}");
    let want = snapshot(&reference);
    let actions = out.lines().filter(|l| l.starts_with("  ")).count();
    assert!(actions >= 15, "expected a long plan, got {actions}: {out}");
    let _ = fs::remove_dir_all(&reference);

    for n in 1..actions {
        let r = native_image("kill");
        let before = snapshot(&r);
        let mut c = outpost();
        c.args(["install", "--ignore-checks"])
            .arg("--root")
            .arg(&r)
            .args(args);
        c.env("OUTPOST_TEST_ABORT_AFTER", n.to_string());
        let (code, out, _) = run(&mut c);
        assert_ne!(code, 0, "abort after action {n} did not abort: {out}");
        let (code, out, err) = install(&r, &args);
        assert_eq!(code, 0, "rerun after abort at {n}: {out}{err}");
        assert_eq!(snapshot(&r), want, "tree after abort at {n} and rerun");
        let (code, out, _) = install(&r, &args);
        assert!(
            code == 0 && out.starts_with("nothing to do"),
            "third run after abort at {n}: {out}"
        );

        // An uninstall killed half-way also completes when rerun.
        let mut c = outpost();
        c.arg("uninstall").arg("--purge").arg("--root").arg(&r);
        c.env("OUTPOST_TEST_ABORT_AFTER", (n % 12 + 1).to_string());
        let _ = run(&mut c);
        let (code, out, err) = uninstall(&r, true);
        assert_eq!(
            code,
            0,
            "uninstall rerun after abort at {}: {out}{err}",
            n % 12 + 1
        );
        assert_eq!(
            snapshot(&r),
            before,
            "purge after interrupted uninstall at {}",
            n % 12 + 1
        );
        let _ = fs::remove_dir_all(&r);
    }
}

#[test]
fn systemd_analyze_verifies_the_unit_as_installed() {
    let r = native_image("verify");
    let (code, _, err) = install(&r, &["--config", &userdata(), "--scheduler", "systemd"]);
    assert_eq!(code, 0, "install: {err}");
    // The system's own units, so verify finds multi-user.target and friends.
    fs::create_dir_all(r.join("usr/lib/systemd")).expect("mkdir");
    let st = Command::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(r.join("usr/lib/systemd/system"))
        .status()
        .expect("cp");
    assert!(
        st.success(),
        "copy /usr/lib/systemd/system (Debian package systemd)"
    );
    // The first-boot unit runs /bin/touch.
    // The commands the units run must exist in the tree (any executable).
    for cmd in ["bin/touch", "usr/sbin/update-ca-certificates"] {
        let p = r.join(cmd);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::copy("/bin/touch", &p).expect("copy an executable");
    }
    for unit in ["outpost.service", "outpost-firstboot.service"] {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", r.display()))
            .arg(format!("/etc/systemd/system/{unit}"))
            .output()
            .expect("systemd-analyze (Debian package systemd) runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "systemd-analyze verify {unit} failed: {text}"
        );
        assert_eq!(text, "", "systemd-analyze verify {unit} printed warnings");
    }
    let _ = fs::remove_dir_all(&r);
}

/// A binary of `machine`: the agent under test when it is that machine,
/// else the release build named by the env var scripts/test sets, else a
/// bare ELF header (all the architecture check reads).
fn binary_for(machine: u16, var: &str, dir: &Path) -> PathBuf {
    if elf_machine(&agent_bin()) == machine {
        return agent_bin();
    }
    if let Ok(p) = std::env::var(var) {
        if !p.is_empty() {
            let p = PathBuf::from(p);
            assert_eq!(elf_machine(&p), machine, "{var} is the wrong architecture");
            return p;
        }
    }
    eprintln!("{var} not set: using a bare ELF header for machine {machine}");
    let p = dir.join(format!("outpost-em{machine}"));
    fs::write(&p, fake_elf(machine)).expect("fake binary");
    p
}

#[test]
fn bake_an_aarch64_image_and_refuse_the_wrong_arch() {
    let r = image("bake", EM_AARCH64);
    let side = tmp("bake-bins");
    let arm = binary_for(EM_AARCH64, "OUTPOST_TEST_BIN_AARCH64", &side);
    let x86 = binary_for(EM_X86_64, "OUTPOST_TEST_BIN_X86_64", &side);
    // /usr/bin/env reached through an absolute link must resolve inside the image.
    fs::create_dir_all(r.join("bin")).expect("mkdir");
    std::os::unix::fs::symlink("/usr/bin/env", r.join("bin/sh")).expect("link");
    let before = snapshot(&r);

    let (code, out, err) = install(
        &r,
        &[
            "--config",
            &userdata(),
            "--binary",
            &x86.display().to_string(),
        ],
    );
    assert_eq!(code, 2, "x86_64 binary into an aarch64 image: {out}{err}");
    assert!(
        err.contains(&format!(
            "is an x86_64 binary but the image under {} is aarch64 (from /usr/bin/env); give --binary with an aarch64 build",
            r.display()
        )),
        "arch refusal: {err}"
    );
    assert_eq!(snapshot(&r), before, "refusal changed the tree");

    // No systemd in the tree and no --scheduler: cron is chosen; ask for systemd.
    let (code, out, err) = install(
        &r,
        &[
            "--config",
            &userdata(),
            "--binary",
            &arm.display().to_string(),
            "--scheduler",
            "systemd",
        ],
    );
    assert_eq!(code, 0, "bake: {out}{err}");
    assert_eq!(
        fs::read(r.join("usr/local/bin/outpost")).expect("binary"),
        fs::read(&arm).expect("arm"),
        "the aarch64 build installed"
    );
    assert!(
        out.contains("outpost-firstboot.service checks in when the image first boots"),
        "says nothing started: {out}"
    );
    assert!(
        r.join("etc/systemd/system/outpost-firstboot.service")
            .is_file(),
        "first-boot unit present"
    );
    assert!(
        fs::symlink_metadata(
            r.join("etc/systemd/system/multi-user.target.wants/outpost-firstboot.service")
        )
        .is_ok(),
        "first-boot unit enabled"
    );
    let _ = fs::remove_dir_all(&r);
    let _ = fs::remove_dir_all(&side);
}

#[test]
fn usage_and_permission_errors() {
    let r = native_image("errors");
    let before = snapshot(&r);
    let not_elf = r.join("not-elf");
    fs::write(&not_elf, "#!/bin/sh\necho hi there, not an ELF file\n").expect("script");
    let before_with = snapshot(&r);
    // An https config URL goes through the agent's HTTP client: a loopback
    // server whose CA this machine does not trust is refused (exit 16), and
    // the URL's password is never echoed.
    let scratch = common::fault::Scratch::new("install-https");
    let ca = common::tls::Ca::new(&scratch, "untrusted");
    let server = common::fault::FaultServer::tls(&ca.good());
    let https_url = format!("https://user:pw@127.0.0.1:{}/ud", server.port);
    let cases: Vec<(Vec<String>, i32, String)> = vec![
        (
            vec!["--config".into(), https_url],
            16,
            format!(
                "GET https://127.0.0.1:{}/ud: server certificate not trusted: unknown issuer",
                server.port
            ),
        ),
        (
            vec!["--config".into(), "ftp://x/y".into()],
            2,
            "install: --config ftp://x/y: only a file or an https:// URL".into(),
        ),
        (
            vec!["--config".into(), r.join("missing").display().to_string()],
            3,
            format!(
                "reading {}: No such file or directory",
                r.join("missing").display()
            ),
        ),
        (
            vec!["--binary".into(), not_elf.display().to_string()],
            2,
            format!("install: {} is not an ELF executable", not_elf.display()),
        ),
        (
            vec![
                "--config".into(),
                fixture("config/bad/bad-ca.yaml").display().to_string(),
            ],
            3,
            "install: the configuration has".into(),
        ),
    ];
    for (args, want_code, want_err) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = install(&r, &a);
        assert_eq!(code, want_code, "args {args:?}: {out}{err}");
        assert!(
            err.contains(&want_err),
            "args {args:?}: stderr {err:?} lacks {want_err:?}"
        );
        assert!(!err.contains("pw@"), "args {args:?}: password echoed");
    }
    assert_eq!(snapshot(&r), before_with, "errors changed the tree");
    fs::remove_file(&not_elf).expect("rm");
    assert_eq!(snapshot(&r), before, "tree");

    // A failing check refuses (exit 1) without --ignore-checks: an empty
    // image lacks the tools.
    let (code, _, err) = run(outpost()
        .arg("install")
        .arg("--root")
        .arg(&r)
        .arg("--config")
        .arg(userdata()));
    assert_eq!(code, 1, "failing check: {err}");
    assert!(
        err.contains(
            "check(s) failed; fix them or rerun with --ignore-checks; nothing was changed"
        ),
        "check refusal: {err}"
    );
    assert_eq!(snapshot(&r), before, "check refusal changed the tree");

    // The running system needs root (checked before anything is read).
    let (code, _, err) = run(outpost().env("OUTPOST_TEST_EUID", "1000").args([
        "install",
        "--config",
        "/nonexistent-outpost-test/ud",
    ]));
    assert_eq!(code, 4, "live install as non-root: {err}");
    assert!(
        err.contains("install: installing onto the running system (/) needs root"),
        "needs root: {err}"
    );
    let (code, _, err) = run(outpost()
        .env("OUTPOST_TEST_EUID", "1000")
        .args(["uninstall"]));
    assert_eq!(code, 4, "live uninstall as non-root: {err}");
    let _ = fs::remove_dir_all(&r);
}
