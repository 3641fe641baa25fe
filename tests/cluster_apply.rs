//! `outpost cluster apply` under a --root tree with the K3s TEST DOUBLE
//! (tests/support/fake-k3s): K3s itself cannot be had on the build
//! machines, so these tests check the agent against the K3s command-line
//! and config contract that the double enforces, not against a running K3s.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const K10: &str =
    "K103f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f::server:5e3f1c0a9b7d4e21";

struct Tree {
    dir: PathBuf,
    root: PathBuf,
    cfg: PathBuf,
}

impl Tree {
    fn new(name: &str) -> Tree {
        let dir = std::env::temp_dir().join(format!("outpost-apply-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("proc/sys/kernel")).expect("root");
        // The node name K3s registers is the host name; the double reports
        // the real host's name ready, so the tree carries the same.
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
        std::fs::write(root.join("proc/sys/kernel/hostname"), host).expect("hostname");
        let cfg = dir.join("user-data");
        std::fs::write(&cfg, "#cloud-config\nstylus:\n  managementMode: local\n").expect("cfg");
        Tree { dir, root, cfg }
    }

    fn spec(&self, role: &str, distro: &str, endpoint: &str, token: &str) -> PathBuf {
        let p = self.dir.join(format!("spec-{role}-{distro}.json"));
        std::fs::write(
            &p,
            format!(
                r#"{{"schema":"outpost.cluster-spec/v1","cluster":"edge-1","distro":"{distro}","version":"v1.31.4+k3s1","endpoint":"{endpoint}","role":"{role}","hostId":"edge-0a1b2c","nodeIp":"10.0.0.11","interface":"eth0","podCidr":"10.42.0.0/16","serviceCidr":"10.43.0.0/16","token":"{token}","caHash":null}}"#
            ),
        )
        .expect("spec");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    }

    fn apply(&self, spec: &Path, extra: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut cmd = common::outpost();
        cmd.args(["cluster", "apply", "--root"])
            .arg(&self.root)
            .arg("--config")
            .arg(&self.cfg)
            .arg("--spec")
            .arg(spec)
            .args(["--timeout", "60"])
            .args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (code, out, err) = common::run(&mut cmd);
        eprintln!(
            "$ outpost cluster apply {}\n{out}{err}(exit {code})",
            extra.join(" ")
        );
        assert!(
            !out.contains("5e3f1c0a9b7d4e21") && !err.contains("5e3f1c0a9b7d4e21"),
            "token leaked"
        );
        (code, out, err)
    }

    fn mode(&self, host_path: &str) -> u32 {
        std::fs::metadata(self.root.join(host_path.trim_start_matches('/')))
            .unwrap_or_else(|e| panic!("{host_path}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    }

    fn pid(&self) -> Option<String> {
        std::fs::read_to_string(self.root.join("run/outpost/k3s.pid")).ok()
    }
}

/// Stops the test double's process, then removes the scratch tree (pass or
/// panic).
impl Drop for Tree {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fake_k3s() -> String {
    common::fixture("../support/fake-k3s").display().to_string()
}

#[test]
fn init_server_applies_and_a_second_apply_changes_nothing() {
    let t = Tree::new("init");
    let spec = t.spec("init-server", "k3s", "vip:10.0.0.100", "bootstrap-4c2f9a");
    let img = t.dir.join("k3s-airgap-images-amd64.tar.zst");
    std::fs::write(&img, b"not really images").expect("img");
    let fake = fake_k3s();
    let img_s = img.display().to_string();
    let (code, out, _) = t.apply(&spec, &["--k3s-bin", &fake, "--images", &img_s], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("installing\nrunning\nready\nchanged: "),
        "{out}"
    );
    for p in [
        "/etc/rancher/k3s/config.yaml.d/10-outpost.yaml",
        "/var/lib/rancher/k3s/server/manifests/outpost-kube-vip.yaml",
        "/usr/local/bin/k3s",
        "/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst",
        "/etc/systemd/system/k3s.service",
    ] {
        assert!(out.contains(p), "{p} not in changed: {out}");
    }
    assert_eq!(
        t.mode("/etc/rancher/k3s/config.yaml.d/10-outpost.yaml"),
        0o600
    );
    assert_eq!(t.mode("/usr/local/bin/k3s"), 0o755);
    let cfg = std::fs::read_to_string(t.root.join("etc/rancher/k3s/config.yaml.d/10-outpost.yaml"))
        .expect("cfg");
    assert!(
        cfg.contains("cluster-init: true\n") && cfg.contains("  - \"10.0.0.100\"\n"),
        "{cfg}"
    );
    // The double saw `k3s server --config ROOT/... --data-dir ROOT/...`.
    let calls = std::fs::read_to_string(t.root.join("var/lib/rancher/k3s/fake-k3s/calls.log"))
        .expect("calls");
    assert!(calls.starts_with("server --config "), "{calls}");
    // Recorded state, no token in it.
    let rec = std::fs::read_to_string(t.root.join("var/lib/outpost/cluster.json")).expect("record");
    assert!(
        rec.contains("\"state\":\"ready\"") && !rec.contains("bootstrap-4c2f9a"),
        "{rec}"
    );

    let pid = t.pid();
    let (code, out, _) = t.apply(&spec, &["--k3s-bin", &fake, "--images", &img_s], &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "installing\nrunning\nready\nchanged: nothing\n");
    assert_eq!(t.pid(), pid, "nothing changed: K3s not restarted");

    let mut st = common::outpost();
    st.args(["cluster", "status", "--root"])
        .arg(&t.root)
        .arg("--config")
        .arg(&t.cfg);
    let (code, out, _) = common::run(&mut st);
    assert_eq!(
        (code, out.as_str()),
        (0, "cluster edge-1 role init-server (k3s): ready\n")
    );

    // Leaving: K3s stopped first, then outpost's files; data kept without --purge.
    let pid_now = t.pid().unwrap_or_default();
    let pid_now = pid_now.trim().to_string();
    let mut lv = common::outpost();
    lv.args(["cluster", "leave", "--root"])
        .arg(&t.root)
        .arg("--config")
        .arg(&t.cfg);
    let (code, out, err) = common::run(&mut lv);
    eprintln!("$ outpost cluster leave\n{out}{err}");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "stopped k3s (pid {pid_now})\nremoved /run/outpost/k3s.pid\nremoved /var/lib/rancher/k3s/server/manifests/outpost-kube-vip.yaml\nremoved /etc/rancher/k3s/config.yaml.d/10-outpost.yaml\nremoved /etc/systemd/system/k3s.service\nremoved /usr/local/bin/k3s\nremoved /var/lib/outpost/cluster.json\nleft the cluster\n"
        )
    );
    let stat = std::fs::read_to_string(format!("/proc/{pid_now}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "K3s still running: {stat}"
    );
    assert!(
        t.root.join("var/lib/rancher/k3s/server/token").exists(),
        "data kept without --purge"
    );
    let (code, out, _) = common::run(&mut lv);
    assert_eq!(
        (code, out.as_str()),
        (0, "nothing to do: no cluster role applied here\n")
    );
}

#[test]
fn join_agent_with_secure_token_gets_ready() {
    let t = Tree::new("agent");
    let spec = t.spec("join-agent", "k3s", "dns:api.edge-1.example.test", K10);
    let (code, out, _) = t.apply(&spec, &["--k3s-bin", &fake_k3s()], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("/etc/systemd/system/k3s-agent.service"),
        "{out}"
    );
    assert!(!out.contains("kube-vip"), "workers get no kube-vip: {out}");
    let cfg = std::fs::read_to_string(t.root.join("etc/rancher/k3s/config.yaml.d/10-outpost.yaml"))
        .expect("cfg");
    assert!(
        cfg.contains("server: \"https://api.edge-1.example.test:6443\"\n"),
        "{cfg}"
    );
    // `outpost uninstall --cluster --purge` leaves the cluster first.
    let mut un = common::outpost();
    un.args(["uninstall", "--cluster", "--purge", "--root"])
        .arg(&t.root);
    let (code, out, err) = common::run(&mut un);
    eprintln!("$ outpost uninstall --cluster --purge\n{out}{err}");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("  cluster: stopped k3s (pid "), "{out}");
    assert!(
        out.contains("  cluster: removed /etc/systemd/system/k3s-agent.service\n"),
        "{out}"
    );
    assert!(
        out.contains("  cluster: removed /var/lib/rancher/k3s\n"),
        "--purge removes the data: {out}"
    );
    assert!(!t.root.join("var/lib/rancher/k3s").exists());
}

#[test]
fn failures_are_reported_with_reason_and_log_tail() {
    let t = Tree::new("fail");
    let spec = t.spec("init-server", "k3s", "vip:10.0.0.100", "bootstrap-4c2f9a");
    let (code, out, err) = t.apply(
        &spec,
        &["--k3s-bin", &fake_k3s()],
        &[("FAKE_K3S_FAIL", "1")],
    );
    assert_eq!(code, 1);
    // Exited within the first second (failed from installing), or later
    // on a loaded machine (failed from running): both name the exit.
    assert!(
        out.starts_with("installing\nfailed: k3s server exited at start (exit status: 1)\n")
            || out.starts_with("installing\nrunning\nfailed: k3s server exited while starting\n"),
        "{out}"
    );
    assert!(
        err.contains("log tail:\n") && err.contains("level=fatal"),
        "{err}"
    );
    let rec = std::fs::read_to_string(t.root.join("var/lib/outpost/cluster.json")).expect("record");
    assert!(
        rec.contains("\"state\":\"failed\"") && rec.contains("level=fatal"),
        "{rec}"
    );
    // A retry after the fault is fixed goes through (failed -> installing).
    let (code, out, _) = t.apply(&spec, &["--k3s-bin", &fake_k3s()], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("installing\nrunning\nready\n"), "{out}");

    // No binary at all.
    let t2 = Tree::new("nobin");
    let spec2 = t2.spec("init-server", "k3s", "vip:10.0.0.100", "bootstrap-4c2f9a");
    let (code, out, _) = t2.apply(&spec2, &[], &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains(
            "failed: no K3s binary at /usr/local/bin/k3s: add a signed K3s bundle on the hub (cluster bundle add) or give --bundle DIR"
        ),
        "{out}"
    );
}

#[test]
fn bad_specs_are_refused_with_one_line() {
    let t = Tree::new("bad");
    let spec = t.spec("join-server", "k3s", "vip:10.0.0.100", "short-token");
    let (code, _, err) = t.apply(&spec, &[], &[]);
    assert_eq!(code, 3);
    assert!(
        err.contains(
            "token: joiners need the secure K10<ca-hash>::... form (it pins the cluster CA)"
        ),
        "{err}"
    );
    assert!(!err.contains("short-token"), "token echoed: {err}");
    let spec = t.spec("init-server", "k3s", "vip:10.0.0.100", "bootstrap-4c2f9a");
    std::fs::set_permissions(&spec, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, _, err) = t.apply(&spec, &[], &[]);
    assert_eq!(code, 4);
    assert!(
        err.contains("mode 0644, must be 0600 (it holds the join token)"),
        "{err}"
    );
    let spec = t.spec("boss", "k3s", "vip:10.0.0.100", "x");
    let (code, _, err) = t.apply(&spec, &[], &[]);
    assert_eq!(code, 3);
    assert!(
        err.contains("role \"boss\" is not init-server, join-server or join-agent"),
        "{err}"
    );
}

#[test]
fn pxke_is_rendered_only() {
    let t = Tree::new("pxke");
    let spec = t.spec(
        "init-server",
        "pxke",
        "vip:10.0.0.100",
        "abcdef.0123456789abcdef",
    );
    let (code, out, _) = t.apply(&spec, &[], &[]);
    assert_eq!(code, 1);
    assert!(out.contains("failed: applying pxke is not implemented: configuration rendered to /etc/outpost/cluster/kubeadm.yaml, /etc/kubernetes/manifests/kube-vip.yaml"), "{out}");
    let k =
        std::fs::read_to_string(t.root.join("etc/outpost/cluster/kubeadm.yaml")).expect("kubeadm");
    assert!(
        k.contains("kind: InitConfiguration")
            && k.contains("controlPlaneEndpoint: \"10.0.0.100:6443\""),
        "{k}"
    );
}

const MAKE_BUNDLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-k3s-bundle");
const SIGN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sign");

fn sh(cmd: &mut std::process::Command) -> (i32, String, String) {
    let o = cmd.output().expect("spawning");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

impl Tree {
    /// Trust the release key `PREFIX.pub` (outpost.upgrade.publicKeys).
    fn trust(&self, prefix: &Path) {
        let pubkey = std::fs::read_to_string(prefix.with_extension("pub")).expect("pub");
        let line = pubkey.lines().nth(1).expect("key line");
        std::fs::write(
            &self.cfg,
            format!("#cloud-config\nstylus:\n  managementMode: local\noutpost:\n  upgrade:\n    publicKeys:\n      - \"{line}\"\n"),
        )
        .expect("cfg");
    }

    fn keygen(&self, name: &str) -> PathBuf {
        let prefix = self.dir.join(name);
        let (code, _, err) = sh(std::process::Command::new(SIGN).arg("keygen").arg(&prefix));
        assert_eq!(code, 0, "{err}");
        prefix
    }

    /// `scripts/make-k3s-bundle` with the K3s TEST DOUBLE as "the K3s
    /// binary" and a stand-in images archive; returns the bundle folder.
    fn bundle(&self, key: &Path, out: &str, version: &str) -> PathBuf {
        let img = self.dir.join("k3s-airgap-images-amd64.tar.zst");
        if !img.exists() {
            std::fs::write(&img, b"stand-in airgap images, not a real archive\n").expect("img");
        }
        let (code, stdout, err) = sh(std::process::Command::new(MAKE_BUNDLE)
            .arg(key.with_extension("sec"))
            .arg(self.dir.join(out))
            .arg(version)
            .arg(std::env::consts::ARCH)
            .arg(fake_k3s())
            .arg(&img));
        eprintln!("$ scripts/make-k3s-bundle ... {version}\n{stdout}{err}(exit {code})");
        assert_eq!(code, 0, "{err}");
        PathBuf::from(stdout.trim())
    }

    /// Nothing of a bundle under the root: no binary, no images, no
    /// staging file left behind.
    fn assert_nothing_installed(&self) {
        for d in ["usr/local/bin", "var/lib/rancher/k3s/agent/images"] {
            let entries: Vec<String> = std::fs::read_dir(self.root.join(d))
                .map(|r| {
                    r.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            assert!(entries.is_empty(), "{d}: {entries:?}");
        }
    }
}

#[test]
fn a_signed_bundle_is_verified_installed_and_left_alone_the_second_time() {
    let t = Tree::new("bundle");
    let key = t.keygen("rel");
    t.trust(&key);
    let dir = t.bundle(&key, "out", "v1.31.4+k3s1");
    let manifest = std::fs::read_to_string(dir.join("k3s-bundle.json")).expect("manifest");
    eprintln!("$ cat k3s-bundle.json\n{manifest}");
    assert!(
        manifest.starts_with(&format!(
            "{{\"schema\":\"outpost.k3s-bundle/v1\",\"distro\":\"k3s\",\"version\":\"v1.31.4+k3s1\",\"arch\":\"{}\",\"files\":[{{\"kind\":\"binary\",\"name\":\"k3s\",",
            std::env::consts::ARCH
        )),
        "{manifest}"
    );
    let spec = t.spec("init-server", "k3s", "vip:10.0.0.100", "bootstrap-4c2f9a");
    let d = dir.display().to_string();
    let (code, out, err) = t.apply(&spec, &["-v", "--bundle", &d], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("installing\nrunning\nready\nchanged: "),
        "{out}"
    );
    assert!(
        err.contains("K3s bundle v1.31.4+k3s1") && err.contains(", signed by key "),
        "{err}"
    );
    for p in [
        "/usr/local/bin/k3s",
        "/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst",
    ] {
        assert!(out.contains(p), "{p} not in changed: {out}");
    }
    assert_eq!(
        std::fs::read(t.root.join("usr/local/bin/k3s")).expect("k3s"),
        std::fs::read(fake_k3s()).expect("double"),
        "the installed binary is the bundle's"
    );
    assert_eq!(t.mode("/usr/local/bin/k3s"), 0o755);
    assert_eq!(
        t.mode("/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst"),
        0o644
    );
    let (code, out, _) = t.apply(&spec, &["--bundle", &d], &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "installing\nrunning\nready\nchanged: nothing\n");
    let left: Vec<_> = std::fs::read_dir(t.root.join("usr/local/bin"))
        .expect("bin")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("k3s")],
        "no staging file left"
    );
}

#[test]
fn a_bad_bundle_is_one_line_exit_21_and_nothing_installed() {
    let t = Tree::new("badbundle");
    let key = t.keygen("rel");
    let other = t.keygen("other");
    t.trust(&key);
    let spec = t.spec("init-server", "k3s", "vip:10.0.0.100", "bootstrap-4c2f9a");
    let good = t.bundle(&key, "good", "v1.31.4+k3s1");
    let rec = t.root.join("var/lib/outpost/cluster.json");

    // Refused at the manifest: nothing recorded either.
    let untrusted = t.bundle(&other, "untrusted", "v1.31.4+k3s1");
    let newer = t.bundle(&key, "newer", "v1.31.5+k3s1");
    for (dir, want) in [
        (
            &untrusted,
            "k3s-bundle.json: signed by unknown key ".to_string(),
        ),
        (
            &newer,
            "K3s bundle v1.31.5+k3s1: the cluster runs v1.31.4+k3s1".to_string(),
        ),
    ] {
        let (code, out, err) = t.apply(&spec, &["--bundle", &dir.display().to_string()], &[]);
        assert_eq!(code, 21, "{out}{err}");
        assert_eq!(out, "");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&want), "{err} lacks {want}");
        t.assert_nothing_installed();
        assert!(!rec.exists());
    }

    // Refused at a file: the role fails with the reason, nothing of the
    // bundle (nor the config) is installed.
    let img = good.join("k3s-airgap-images-amd64.tar.zst");
    let mut bytes = std::fs::read(&img).expect("img");
    bytes[0] ^= 1;
    std::fs::write(&img, &bytes).expect("flip");
    let (code, out, err) = t.apply(&spec, &["--bundle", &good.display().to_string()], &[]);
    assert_eq!(code, 21, "{out}{err}");
    assert!(out.starts_with("installing\nfailed: "), "{out}");
    assert!(
        err.lines().count() == 1
            && err.contains("k3s-airgap-images-amd64.tar.zst: SHA-256 ")
            && err.contains("does not match the signed manifest's"),
        "{err}"
    );
    t.assert_nothing_installed();
    assert!(!t.root.join("etc/rancher").exists(), "config written");
    let r = std::fs::read_to_string(&rec).expect("record");
    assert!(r.contains("\"state\":\"failed\""), "{r}");

    // A truncated binary: larger/smaller than signed.
    bytes[0] ^= 1;
    std::fs::write(&img, &bytes).expect("unflip");
    let bin = good.join("k3s");
    let b = std::fs::read(&bin).expect("k3s");
    std::fs::write(&bin, &b[..b.len() / 2]).expect("truncate");
    let (code, _, err) = t.apply(&spec, &["--bundle", &good.display().to_string()], &[]);
    assert_eq!(code, 21, "{err}");
    assert!(err.contains("bytes, the signed manifest says"), "{err}");
    t.assert_nothing_installed();

    // Fixed: it goes through.
    std::fs::write(&bin, &b).expect("restore");
    let (code, out, _) = t.apply(&spec, &["--bundle", &good.display().to_string()], &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn the_bundle_builder_refuses_bad_input_with_one_line() {
    let t = Tree::new("builder");
    let key = t.keygen("rel");
    let img = t.dir.join("k3s-airgap-images-amd64.tar.zst");
    std::fs::write(&img, b"x").expect("img");
    let fake = fake_k3s();
    let img_s = img.display().to_string();
    let sec = key.with_extension("sec").display().to_string();
    let out = t.dir.join("o").display().to_string();
    for (args, want) in [
        (
            vec![&sec[..], &out, "1.31.4", "x86_64", &fake, &img_s],
            "version 1.31.4 is not a K3s release",
        ),
        (
            vec![&sec[..], &out, "v1.31.4+k3s1", "amd64", &fake, &img_s],
            "arch amd64 is not x86_64 or aarch64",
        ),
        (
            vec![
                &sec[..],
                &out,
                "v1.31.4+k3s1",
                "x86_64",
                "/nonexistent",
                &img_s,
            ],
            "/nonexistent: no such file",
        ),
        (
            vec![&sec[..], &out, "v1.31.4+k3s1", "x86_64", &fake],
            "usage:",
        ),
    ] {
        let (code, _, err) = sh(std::process::Command::new(MAKE_BUNDLE).args(&args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.lines().count() == 1 && err.contains(want),
            "{args:?}: {err}"
        );
    }
}

/// `cluster apply` runs the host checks that stop a role before it touches
/// anything (facts read under the root, as `outpost check --root` does).
#[test]
fn failed_host_checks_stop_the_role_before_anything_is_written() {
    let t = Tree::new("hostchecks");
    let spec = t.spec("init-server", "k3s", "vip:10.0.0.100", "bootstrap-4c2f9a");
    let fake = fake_k3s();
    let put = |rel: &str, text: &str| {
        let p = t.root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    // An architecture K3s is not built for here.
    put("proc/sys/kernel/arch", "riscv64\n");
    // Another Kubernetes API server listening on 6443 (0x192B).
    let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:192B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n";
    put("proc/net/tcp", tcp);
    let (code, out, _) = t.apply(&spec, &["--k3s-bin", &fake], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("installing\nfailed: preflight arch: riscv64"),
        "{out}"
    );
    assert!(out.contains("; preflight ports: in use: 6443\n"), "{out}");
    assert!(!t.root.join("etc/rancher").exists(), "config written");
    assert!(
        !t.root.join("usr/local/bin/k3s").exists(),
        "binary installed"
    );
    // The right architecture: the port is still taken by someone else.
    put(
        "proc/sys/kernel/arch",
        &format!("{}\n", std::env::consts::ARCH),
    );
    let (code, out, _) = t.apply(&spec, &["--k3s-bin", &fake], &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.lines().nth(1),
        Some("failed: preflight ports: in use: 6443"),
        "{out}"
    );
    assert!(!t.root.join("etc/rancher").exists(), "config written");
    // Free: the role is applied; afterwards K3s holds the port itself, so
    // a re-apply does not count it against the role.
    std::fs::remove_file(t.root.join("proc/net/tcp")).expect("rm");
    let (code, out, _) = t.apply(&spec, &["--k3s-bin", &fake], &[]);
    assert_eq!(code, 0, "{out}");
    put("proc/net/tcp", tcp);
    let (code, out, _) = t.apply(&spec, &["--k3s-bin", &fake], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.ends_with("ready\nchanged: nothing\n"), "{out}");
}

/// A DNS endpoint's name must resolve before a joiner goes on, and before
/// an init server goes on when nobody publishes it (no outpost.ddns.*).
/// The check uses the host's resolver, so it runs on live hosts only; the
/// test hook OUTPOST_TEST_DNS_PREFLIGHT makes it run under this --root
/// tree, against this machine's real resolver (`.test` never resolves,
/// RFC 6761).
#[test]
fn a_dns_endpoint_must_resolve_unless_the_init_server_publishes_it() {
    let t = Tree::new("dnsprefl");
    let fake = fake_k3s();
    let hook = [("OUTPOST_TEST_DNS_PREFLIGHT", "1")];
    let ep = "dns:api.edge-1.example.test";
    let spec = t.spec("join-agent", "k3s", ep, K10);
    let (code, out, _) = t.apply(&spec, &["--k3s-bin", &fake], &hook);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("installing\nfailed: preflight endpoint-dns: "),
        "{out}"
    );
    assert!(!t.root.join("etc/rancher").exists(), "config written");

    let t = Tree::new("dnsprefl-init");
    let spec = t.spec("init-server", "k3s", ep, "bootstrap-4c2f9a");
    let (code, out, _) = t.apply(&spec, &["--k3s-bin", &fake], &hook);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("failed: preflight endpoint-dns: "), "{out}");
    let (code, out, _) = t.apply(
        &spec,
        &["--k3s-bin", &fake, "--set", "outpost.ddns.server=127.0.0.1"],
        &hook,
    );
    assert_eq!(
        code, 0,
        "with outpost.ddns.* the init server publishes the name: {out}"
    );
}
