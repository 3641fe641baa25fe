//! The K3s bundle from the hub: `scripts/make-k3s-bundle` packs "the K3s
//! binary" (here the K3s TEST DOUBLE, tests/support/fake-k3s: K3s cannot
//! be had on the build machines) and a stand-in airgap images archive,
//! signed with a release key (scripts/sign); `outpost-hub cluster bundle
//! add` verifies and stores it; the member of a K3s cluster of that
//! version downloads it from the real hub over TLS, verifies it with its
//! own trusted keys and installs it before it applies its role.
//!
//! Checked: a bundle signed by a key the agent does not trust is refused
//! before any download (exit 21, nothing installed) and not tried again
//! until the hub's desired state changes; a file whose bytes on the hub do
//! not match the signed hash is refused with nothing installed and tried
//! again after a backoff (5 min, doubling); the good bundle installs the double's exact
//! bytes and the role reaches ready; a steady check-in downloads nothing.

mod common;

use common::agent::{requests, Device, Setup};
use common::fault::Scratch;
use common::hub::Hub;
use common::tls::make_pki;
use std::path::{Path, PathBuf};
use std::process::Command;

const OS: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";
const SIGN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sign");
const MAKE_BUNDLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-k3s-bundle");
const VERSION: &str = "v1.31.4+k3s1";

fn sh(cmd: &mut Command) -> String {
    let o = cmd.output().expect("spawning");
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn bundle(dir: &Path, key: &Path, out: &str) -> PathBuf {
    let img = dir.join("k3s-airgap-images-amd64.tar.zst");
    if !img.exists() {
        std::fs::write(&img, b"stand-in airgap images, not a real archive\n").expect("img");
    }
    let fake = common::fixture("../support/fake-k3s");
    let p = sh(Command::new(MAKE_BUNDLE)
        .arg(key.with_extension("sec"))
        .arg(dir.join(out))
        .arg(VERSION)
        .arg(std::env::consts::ARCH)
        .arg(&fake)
        .arg(&img));
    PathBuf::from(p.trim())
}

struct Kill(PathBuf);

impl Drop for Kill {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.0.join("run/outpost/k3s.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn checkin(d: &Device) -> (i32, String) {
    checkin_at(d, None)
}

/// With `at`, the agent's clock (test hook OUTPOST_TEST_NOW) reads that
/// Unix second: a backoff can run out without the test waiting for it.
fn checkin_at(d: &Device, at: Option<u64>) -> (i32, String) {
    let mut cmd = d.cmd(&["-v", "checkin"]);
    if let Some(t) = at {
        cmd.env("OUTPOST_TEST_NOW", t.to_string());
    }
    let (code, out, err) = common::run(&mut cmd);
    eprintln!("$ outpost -v checkin\n{out}{err}(exit {code})");
    (code, format!("{out}{err}"))
}

fn artifact_gets(hub: &Hub) -> usize {
    requests(&hub.log_lines())
        .iter()
        .filter(|(p, ..)| p.starts_with("/outpost/v1/artifacts/"))
        .count()
}

fn nothing_installed(root: &Path) {
    for d in ["usr/local/bin", "var/lib/rancher/k3s/agent/images"] {
        let n = std::fs::read_dir(root.join(d))
            .map(|r| r.count())
            .unwrap_or(0);
        assert_eq!(n, 0, "{d} not empty");
    }
    assert!(!root.join("etc/rancher").exists(), "config written");
}

#[test]
fn a_member_installs_the_k3s_bundle_from_the_hub() {
    std::env::set_var("RUST_LOG", "info");
    let scratch = Scratch::new("cluster-bundle");
    let dir = scratch.path();
    let pki = make_pki(dir);
    let hub = Hub::start(dir, Some(&pki), &[]);
    let token = hub.token(&[]);
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).expect("keys");
    sh(Command::new(SIGN).arg("keygen").arg(keys.join("rel")));
    sh(Command::new(SIGN).arg("keygen").arg(keys.join("other")));
    let pubkey = std::fs::read_to_string(keys.join("rel.pub")).expect("pub");
    let line = pubkey.lines().nth(1).expect("key line");

    let ddir = dir.join("cp-a");
    std::fs::create_dir_all(&ddir).expect("dir");
    let top = format!("outpost:\n  upgrade:\n    publicKeys:\n      - \"{line}\"\n");
    let d = Device::new(
        &ddir,
        &Setup {
            endpoint: &hub.url,
            token: Some(&token),
            host_id: "cp-a",
            ca_pem: &pki.ca_cert,
            site: "",
            top: &top,
        },
    );
    // The node name K3s registers is the host name; the double reports the
    // real host's name ready, so the tree carries the same. No K3s binary:
    // it comes from the hub.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    std::fs::create_dir_all(d.root.join("proc/sys/kernel")).expect("proc");
    std::fs::write(d.root.join("proc/sys/kernel/hostname"), host).expect("hostname");
    // The architecture the inventory reports, which picks the bundle.
    std::fs::write(d.root.join("proc/sys/kernel/arch"), std::env::consts::ARCH).expect("arch");
    std::fs::create_dir_all(d.root.join("etc")).expect("etc");
    std::fs::write(d.root.join("etc/os-release"), OS).expect("os-release");
    let _kill = Kill(d.root.clone());
    assert_eq!(checkin(&d).0, 0);

    // A bundle signed by a key the hub was told to trust but the agent
    // does not: the agent refuses it before downloading anything.
    let other = bundle(dir, &keys.join("other"), "other");
    let add = |b: &Path, key: &str| {
        let m = b.join("k3s-bundle.json").display().to_string();
        let k = keys.join(key).display().to_string();
        let (code, o, e) = hub.cli(&["cluster", "bundle", "add", &m, "--key", &k]);
        eprintln!("$ outpost-hub cluster bundle add {m} --key {key}\n{o}{e}");
        assert_eq!(code, 0, "{e}");
        o
    };
    let o = add(&other, "other.pub");
    assert!(
        o.starts_with(&format!(
            "K3s bundle {VERSION} {} added (2 files, ",
            std::env::consts::ARCH
        )),
        "{o}"
    );
    // The hub checks the signature against the keys it is given.
    let m = other.join("k3s-bundle.json").display().to_string();
    let k = keys.join("rel.pub").display().to_string();
    let (code, _, e) = hub.cli(&["cluster", "bundle", "add", &m, "--key", &k]);
    assert_eq!(code, 21, "{e}");
    assert!(e.contains("signed by unknown key"), "{e}");

    for args in [
        &[
            "cluster",
            "create",
            "edge-1",
            "--distro",
            "k3s",
            "--version",
            VERSION,
            "--endpoint",
            "vip:10.0.0.100",
        ][..],
        &[
            "cluster",
            "add",
            "edge-1",
            "cp-a",
            "--role",
            "control-plane",
        ],
    ] {
        let (code, o, e) = hub.cli(args);
        eprintln!("$ outpost-hub {}\n{o}{e}", args.join(" "));
        assert_eq!(code, 0, "{e}");
    }
    let (code, out) = checkin(&d);
    assert_eq!(code, 21, "{out}");
    assert!(
        out.contains("K3s bundle from the hub: signed by unknown key"),
        "{out}"
    );
    assert_eq!(artifact_gets(&hub), 0, "downloaded before verifying");
    nothing_installed(&d.root);
    // Reported, and not tried again for the same desired state.
    let (code, out) = checkin(&d);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("not tried again until the hub changes it"),
        "{out}"
    );
    let (_, show, _) = hub.cli(&["cluster", "show", "edge-1", "--json"]);
    eprintln!("$ outpost-hub cluster show edge-1 --json\n{show}");
    assert!(show.contains("\"state\":\"failed\""), "{show}");

    // The operator adds the bundle signed with the fleet's key (it
    // replaces the other one: same version and arch). Its images archive
    // on the hub is damaged first: refused, nothing installed.
    let good = bundle(dir, &keys.join("rel"), "good");
    let o = add(&good, "rel.pub");
    let rows = hub.cli(&["cluster", "bundle", "list"]).1;
    eprintln!("$ outpost-hub cluster bundle list\n{rows}");
    assert!(rows.contains(VERSION), "{rows}");
    assert!(o.contains("signed by key "), "{o}");
    let img_sha = sh(Command::new("sha256sum").arg(good.join("k3s-airgap-images-amd64.tar.zst")));
    let img_sha = img_sha.split_whitespace().next().expect("sha");
    let stored = hub
        .db
        .parent()
        .expect("dir")
        .join("artifacts")
        .join(img_sha);
    let orig = std::fs::read(&stored).expect("stored artifact");
    let mut bad = orig.clone();
    bad[0] ^= 1;
    std::fs::write(&stored, &bad).expect("damage");
    let (code, out) = checkin(&d);
    assert_eq!(code, 21, "{out}");
    assert!(
        out.contains("does not match the signed manifest's"),
        "{out}"
    );
    assert!(artifact_gets(&hub) >= 1);
    nothing_installed(&d.root);

    // Repaired on the hub. The agent backs off first (5 min): the next
    // check-in downloads nothing; once the backoff ran out it installs.
    std::fs::write(&stored, &orig).expect("repair");
    let gets = artifact_gets(&hub);
    let (code, out) = checkin(&d);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the K3s bundle failed its signed hash 1 time(s); next download in "),
        "{out}"
    );
    assert_eq!(artifact_gets(&hub), gets, "downloaded during the backoff");
    nothing_installed(&d.root);
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 301;
    let (code, out) = checkin_at(&d, Some(later));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("installed /usr/local/bin/k3s (")
            && out.contains("cluster edge-1 role init-server: ready"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(d.root.join("usr/local/bin/k3s")).expect("k3s"),
        std::fs::read(common::fixture("../support/fake-k3s")).expect("double")
    );
    assert_eq!(
        std::fs::read(
            d.root
                .join("var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst")
        )
        .expect("images"),
        orig
    );
    // Steady: the ready state reaches the hub, nothing more is downloaded.
    let gets = artifact_gets(&hub);
    for _ in 0..2 {
        assert_eq!(checkin(&d).0, 0);
    }
    assert_eq!(artifact_gets(&hub), gets);
    let (_, show, _) = hub.cli(&["cluster", "show", "edge-1", "--json"]);
    eprintln!("$ outpost-hub cluster show edge-1 --json\n{show}");
    assert!(show.contains("\"state\":\"ready\""), "{show}");
}
