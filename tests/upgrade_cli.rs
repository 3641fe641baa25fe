//! `outpost upgrade --bundle`, `outpost rollback` and `outpost upgrade-guard`
//! on `--root` trees: every bad artifact is refused with one line and its
//! exit code, the installed binary byte-identical and the failure recorded
//! for the next check-in; a good one is swapped in with `outpost.prev`
//! kept, and a new binary that keeps failing is rolled back by the
//! previous binary's guard.
//!
//! Keys and signatures are made by `scripts/sign` (OpenBSD signify, Debian
//! package signify-openbsd), so the agent is checked against an independent
//! implementation of the format. The "new release" is a TEST DOUBLE: a
//! shell wrapper that runs this build with `OUTPOST_TEST_VERSION` set
//! (feature test-hooks), so one build can stand for two versions.

mod common;
use common::fault::Scratch;
use common::upgrade::sh;
use std::path::{Path, PathBuf};
use std::process::Command;

const REAL: &str = env!("CARGO_BIN_EXE_outpost");
const SIGN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sign");

fn arch() -> &'static str {
    std::env::consts::ARCH
}

fn other_arch() -> &'static str {
    if arch() == "x86_64" {
        "aarch64"
    } else {
        "x86_64"
    }
}

/// A shell script standing in for release `version` of this build.
pub fn wrapper(version: &str) -> Vec<u8> {
    let runner = common::runner().unwrap_or_default();
    format!("#!/bin/sh\nOUTPOST_TEST_VERSION={version} exec {runner} {REAL} \"$@\"\n").into_bytes()
}

/// A release that answers the smoke run correctly and then fails every
/// real start (exit 1), as a broken release would.
pub fn crasher(version: &str) -> Vec<u8> {
    format!(
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo '{{\"schema\":\"outpost.version/v1\",\"version\":\"{version}\",\"git_rev\":\"x\",\"target\":\"{}-unknown-linux-musl\",\"build_date\":\"x\"}}'; exit 0; fi\necho broken >&2\nexit 1\n",
        arch()
    )
    .into_bytes()
}

struct Site {
    _scratch: Scratch,
    dir: PathBuf,
    root: PathBuf,
    config: PathBuf,
    key: PathBuf,
    other_key: PathBuf,
}

fn site(name: &str) -> Site {
    let scratch = Scratch::new(name);
    let dir = scratch.path().to_path_buf();
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("usr/local/bin")).expect("mkdir");
    std::fs::create_dir_all(root.join("var/lib/outpost")).expect("mkdir");
    std::fs::copy(REAL, root.join("usr/local/bin/outpost")).expect("copy agent");
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).expect("mkdir keys");
    sh(Command::new(SIGN).arg("keygen").arg(keys.join("k1")));
    sh(Command::new(SIGN).arg("keygen").arg(keys.join("k2")));
    let pubkey = std::fs::read_to_string(keys.join("k1.pub")).expect("k1.pub");
    let line = pubkey.lines().nth(1).expect("key line");
    let config = dir.join("user-data");
    std::fs::write(
        &config,
        format!(
            "#cloud-config\nstylus:\n  managementMode: local\noutpost:\n  upgrade:\n    publicKeys:\n      - \"{line}\"\n"
        ),
    )
    .expect("config");
    Site {
        _scratch: scratch,
        dir,
        root,
        config,
        key: keys.join("k1.sec"),
        other_key: keys.join("k2.sec"),
    }
}

impl Site {
    fn bin(&self) -> PathBuf {
        self.root.join("usr/local/bin/outpost")
    }
    fn prev(&self) -> PathBuf {
        self.root.join("usr/local/bin/outpost.prev")
    }
    fn state(&self, name: &str) -> PathBuf {
        self.root.join("var/lib/outpost").join(name)
    }

    /// Write `content` as `name` and sign a manifest for it.
    fn artifact(
        &self,
        name: &str,
        content: &[u8],
        version: &str,
        arch: &str,
        key: &Path,
    ) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let d = self.dir.join("art").join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        let p = d.join(format!("outpost-{version}-{arch}-linux-musl"));
        std::fs::write(&p, content).expect("artifact");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        sh(Command::new(SIGN)
            .arg("manifest")
            .arg(key)
            .arg(&p)
            .arg(version)
            .arg(arch));
        p
    }

    fn cmd(&self, exe: &Path, args: &[&str]) -> Command {
        let mut c = common::upgrade::exe_command(exe);
        c.args(args)
            .arg("--root")
            .arg(&self.root)
            .arg("--config")
            .arg(&self.config)
            .env_remove("OUTPOST_TEST_VERSION");
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        common::run(&mut self.cmd(Path::new(REAL), args))
    }

    fn upgrade(&self, file: &Path, extra: &[&str]) -> (i32, String, String) {
        let mut a = vec!["upgrade", "--bundle", file.to_str().expect("utf-8")];
        a.extend_from_slice(extra);
        self.run(&a)
    }

    fn status(&self) -> String {
        let (_, out, err) = self.run(&["status"]);
        format!("{out}{err}")
    }
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn every_bad_artifact_is_refused_and_leaves_the_binary_alone() {
    let s = site("upg-bad");
    let before = bytes(&s.bin());
    let good = wrapper("0.9.0");
    let a = arch();
    let mut cases: Vec<(&str, PathBuf, Vec<&str>, i32, &str)> = Vec::new();

    // Corrupt: one byte flipped after signing.
    let p = s.artifact("corrupt", &good, "0.9.0", a, &s.key);
    let mut b = good.clone();
    b[20] ^= 0x20;
    std::fs::write(&p, &b).unwrap();
    cases.push((
        "corrupt (flipped byte)",
        p,
        vec![],
        21,
        "does not match the manifest",
    ));

    // Wrong size: bytes appended, and bytes missing.
    let p = s.artifact("longer", &good, "0.9.0", a, &s.key);
    let mut b = good.clone();
    b.extend_from_slice(b"# extra\n");
    std::fs::write(&p, &b).unwrap();
    cases.push(("wrong size (longer)", p, vec![], 21, "larger than the"));
    let p = s.artifact("shorter", &good, "0.9.0", a, &s.key);
    std::fs::write(&p, &good[..good.len() - 5]).unwrap();
    cases.push(("wrong size (truncated)", p, vec![], 21, "the manifest says"));

    // Wrong sha256: another file of the same size.
    let p = s.artifact("othersha", &good, "0.9.0", a, &s.key);
    let same_len = wrapper("0.9.1");
    assert_eq!(same_len.len(), good.len());
    std::fs::write(&p, &same_len).unwrap();
    cases.push(("wrong sha256", p, vec![], 21, "SHA-256"));

    // Bad signature: the manifest edited after signing.
    let p = s.artifact("badsig", &good, "0.9.0", a, &s.key);
    let m = PathBuf::from(format!("{}.manifest", p.display()));
    let t = std::fs::read_to_string(&m)
        .unwrap()
        .replace("0.9.0", "0.9.9");
    std::fs::write(&m, t).unwrap();
    cases.push(("bad signature", p, vec![], 21, "bad signature"));

    // Unknown key.
    let p = s.artifact("otherkey", &good, "0.9.0", a, &s.other_key);
    cases.push(("unknown key", p, vec![], 21, "unknown key"));

    // Wrong architecture.
    let p = s.artifact("arch", &good, "0.9.0", other_arch(), &s.key);
    cases.push(("wrong arch", p, vec![], 21, "built for"));

    // A binary that does not run.
    let p = s.artifact(
        "norun",
        b"\x7fELF this is not a program",
        "0.9.0",
        a,
        &s.key,
    );
    cases.push(("does not run", p, vec![], 21, "smoke run"));

    // A binary that runs but reports another version.
    let p = s.artifact("liar", &wrapper("0.8.0"), "0.9.0", a, &s.key);
    cases.push((
        "reports another version",
        p,
        vec![],
        21,
        "reports version 0.8.0",
    ));

    // Downgrade and same version.
    let p = s.artifact("down", &wrapper("0.0.9"), "0.0.9", a, &s.key);
    cases.push(("downgrade", p, vec![], 21, "older than the running"));
    let p = s.artifact(
        "same",
        &wrapper("0.1.0"),
        env!("CARGO_PKG_VERSION"),
        a,
        &s.key,
    );
    cases.push(("same version", p, vec![], 21, "the same as the running"));

    for (name, file, extra, want, phrase) in cases {
        let (code, out, err) = s.upgrade(&file, &extra);
        assert_eq!(code, want, "{name}: exit code; {out}{err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("outpost:")).collect();
        assert_eq!(lines.len(), 1, "{name}: one error line: {err}");
        assert!(
            lines[0].contains(phrase),
            "{name}: {:?} lacks {phrase:?}",
            lines[0]
        );
        assert_eq!(bytes(&s.bin()), before, "{name}: installed binary changed");
        assert!(!s.prev().exists(), "{name}: outpost.prev appeared");
        assert!(
            !s.root.join("usr/local/bin/.outpost.new").exists(),
            "{name}: staging file left"
        );
        assert!(!s.state("trial.json").exists(), "{name}: trial started");
        let st = s.status();
        assert!(
            st.contains("failed") && st.contains("(exit 21)"),
            "{name}: status shows the failure: {st}"
        );
    }
}

#[test]
fn good_bundle_swaps_keeps_prev_and_starts_a_trial_then_rollback_restores() {
    let s = site("upg-good");
    let before = bytes(&s.bin());
    let new = wrapper("0.9.0");
    let p = s.artifact("good", &new, "0.9.0", arch(), &s.key);
    // The folder form (an unpacked bundle) finds the artifact itself.
    let (code, out, err) = s.upgrade(p.parent().unwrap(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("to 0.9.0"), "{out}");
    assert_eq!(bytes(&s.bin()), new, "new binary installed");
    assert_eq!(bytes(&s.prev()), before, "previous kept as outpost.prev");
    assert!(s.state("trial.json").exists());
    let st = s.status();
    assert!(st.contains("on trial"), "{st}");
    // A second upgrade while on trial is refused.
    let (code, _, err) = s.upgrade(&p, &[]);
    assert_eq!(code, 21, "{err}");
    assert!(err.contains("still on trial"), "{err}");
    // The operator rolls back.
    let (code, out, err) = s.run(&["rollback"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(bytes(&s.bin()), before, "old binary back");
    assert!(!s.state("trial.json").exists(), "trial ended");
    let st = s.status();
    assert!(
        st.contains("rolled back") && st.contains("by the operator"),
        "{st}"
    );
}

#[test]
fn downgrade_only_with_allow_downgrade() {
    let s = site("upg-down");
    let p = s.artifact("down", &wrapper("0.0.9"), "0.0.9", arch(), &s.key);
    let (code, _, err) = s.upgrade(&p, &[]);
    assert_eq!(code, 21, "{err}");
    let (code, out, err) = s.upgrade(&p, &["--allow-downgrade"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(bytes(&s.bin()), wrapper("0.0.9"));
}

#[test]
fn guard_of_the_previous_binary_rolls_back_a_release_that_keeps_failing() {
    let s = site("upg-crash");
    let before = bytes(&s.bin());
    let p = s.artifact("crash", &crasher("0.9.0"), "0.9.0", arch(), &s.key);
    let (code, out, err) = s.upgrade(&p, &[]);
    assert_eq!(code, 0, "{out}{err}");
    // What systemd does: ExecStartPre= the previous binary's guard, then
    // ExecStart= the installed binary; it fails, systemd starts again.
    let mut starts = 0;
    for _ in 0..6 {
        let (gc, gout, gerr) = common::run(&mut s.cmd(&s.prev(), &["-v", "upgrade-guard"]));
        assert_eq!(gc, 0, "the guard always exits 0: {gout}{gerr}");
        if bytes(&s.bin()) == before {
            assert!(gerr.contains("rolled back"), "{gerr}");
            break;
        }
        let (code, _, _) = common::run(&mut s.cmd(&s.bin(), &["checkin"]));
        assert_eq!(code, 1, "the broken release fails");
        starts += 1;
    }
    assert_eq!(starts, 3, "rolled back after exactly 3 failed starts");
    assert_eq!(
        bytes(&s.bin()),
        before,
        "previous binary restored byte for byte"
    );
    assert!(!s.state("trial.json").exists());
    let st = s.status();
    assert!(
        st.contains("rolled back") && st.contains("started 3 times without committing"),
        "{st}"
    );
}

#[test]
fn guard_drops_a_trial_whose_swap_never_happened() {
    // A power cut after trial.json was written but before the rename: the
    // installed binary is still the old one; the guard must not roll
    // anything back, only drop the stale trial.
    let s = site("upg-stale");
    let before = bytes(&s.bin());
    std::fs::copy(s.bin(), s.prev()).unwrap();
    std::fs::write(
        s.state("trial.json"),
        r#"{"schema":"outpost.trial/v1","from":"0.1.0","to":"0.9.0","sha256":"00","starts":0,"first_start":0,"max_starts":3,"window_s":900,"rollback_reason":null}"#,
    )
    .unwrap();
    let (gc, _, gerr) = common::run(&mut s.cmd(&s.prev(), &["-v", "upgrade-guard"]));
    assert_eq!(gc, 0, "{gerr}");
    assert!(gerr.contains("dropped"), "{gerr}");
    assert!(!s.state("trial.json").exists());
    assert_eq!(bytes(&s.bin()), before);
}

#[test]
fn full_disk_during_staging_is_exit_20_and_changes_nothing() {
    // A real ENOSPC: a 256 KiB tmpfs as the binary's folder, in a private
    // mount namespace (needs root; the test says so and fails otherwise).
    if unsafe_euid() != 0 {
        panic!("this test needs root for unshare -m and a tmpfs mount");
    }
    let s = site("upg-full");
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let p = s.artifact("big", &big, "0.9.0", arch(), &s.key);
    let bin_dir = s.root.join("usr/local/bin");
    let old = s.dir.join("old-agent");
    std::fs::write(&old, b"#!/bin/sh\necho old\n").unwrap();
    let script = format!(
        "set -e; mount -t tmpfs -o size=256k tmpfs '{d}'; cp '{old}' '{d}/outpost'; \
         set +e; \"$@\"; rc=$?; cmp '{old}' '{d}/outpost' || rc=99; \
         ls -A '{d}' >&2; exit $rc",
        d = bin_dir.display(),
        old = old.display()
    );
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"]);
    if let Some(r) = common::runner() {
        c.args(r.split_whitespace());
    }
    // statvfs reports plenty (test hook), so the write itself meets ENOSPC:
    // a disk that fills up during the download, after the free-space check.
    c.env("OUTPOST_TEST_FREE_BYTES", "1000000000");
    c.arg(REAL)
        .args(["upgrade", "--bundle"])
        .arg(&p)
        .arg("--root")
        .arg(&s.root)
        .arg("--config")
        .arg(&s.config);
    let (code, out, err) = common::run(&mut c);
    assert_eq!(
        code, 20,
        "disk full is exit 20 and the old binary is intact: {out}{err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    let listing: Vec<&str> = err.lines().filter(|l| !l.starts_with("outpost:")).collect();
    assert_eq!(
        listing,
        ["outpost"],
        "only the old binary is left in the folder"
    );
}

#[test]
fn too_little_free_space_is_refused_before_staging_and_status_shows_it() {
    let s = site("upg-space");
    let before = bytes(&s.bin());
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let p = s.artifact("big", &big, "0.9.0", arch(), &s.key);
    // A status file as a check-in leaves it, so `status --json` has an object.
    std::fs::write(
        s.state("status.json"),
        r#"{"schema":"outpost.status/v1","host_id":"edge-1","agent_version":"0.1.0","last_attempt":null,"last_success":null,"last_error":null,"consecutive_failures":0,"interval_s":300,"next_due":null}"#,
    )
    .unwrap();
    let (_, out, _) = s.run(&["status", "--json"]);
    assert!(!out.contains("\"upgrade\""), "no upgrade yet: {out}");
    let mut c = s.cmd(
        Path::new(REAL),
        &["upgrade", "--bundle", p.to_str().unwrap()],
    );
    c.env("OUTPOST_TEST_FREE_BYTES", "4096");
    let (code, out, err) = common::run(&mut c);
    assert_eq!(code, 20, "{out}{err}");
    let dir = s.root.join("usr/local/bin");
    assert_eq!(
        err.trim_end(),
        format!(
            "outpost: {}: 1000000 bytes needed to stage the new binary, 4096 available",
            dir.display()
        ),
        "one line naming the folder and the bytes"
    );
    assert_eq!(bytes(&s.bin()), before, "the installed binary is untouched");
    assert!(!dir.join(".outpost.new").exists(), "nothing staged");
    // Recorded, and shown by status (text and JSON).
    assert!(
        s.status().contains("upgrade to 0.9.0 failed at"),
        "{}",
        s.status()
    );
    let (_, out, _) = s.run(&["status", "--json"]);
    assert!(
        out.contains(r#""upgrade":{"state":"failed","from":"0.1.0","to":"0.9.0","reason":""#)
            && out.contains(r#""code":20,"#)
            && out.contains(r#""trial_starts":null"#),
        "{out}"
    );
    assert!(
        out.starts_with(r#"{"schema":"outpost.status/v1","host_id":"edge-1""#),
        "{out}"
    );
    // With room, the same bundle goes in; status shows the trial.
    let good = s.artifact("good", &wrapper("0.9.0"), "0.9.0", arch(), &s.key);
    let (code, out, err) = s.upgrade(&good, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = s.run(&["status", "--json"]);
    assert!(
        out.contains(r#""upgrade":{"state":"on_trial","from":"0.1.0","to":"0.9.0","reason":"","code":0,"at":"20"#)
            && out.contains(r#""trial_starts":0,"trial_max_starts":3}}"#),
        "{out}"
    );
}

fn unsafe_euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc_geteuid() }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
