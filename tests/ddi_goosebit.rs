//! hawkBit DDI mode against gooseBit 0.2.12 (PyPI `goosebit`, an independent
//! Python server implementing hawkBit's DDI API; a real hawkBit cannot run
//! here), started on loopback with TLS by tests/support/goosebit_serve.py
//! from the venv scripts/deps installs (`pip` entry in scripts/deps.list).
//!
//! Verified: the first poll registers the controller (its row appears in
//! gooseBit's database), configData is sent when the server asks for it and
//! not again while unchanged, the polling sleep set on the server
//! (GOOSEBIT_POLL_TIME) is what the agent reports after configData, and
//! `check --network` probes the controller resource.
//!
//! Deployments: a signed release packed as an SWUpdate image
//! (`scripts/sign swu`: sw-description, the binary, its manifest and
//! signature) is uploaded through gooseBit's own REST API and rolled out
//! (tests/support/goosebit_rollout.py); the agent downloads it from
//! gooseBit with its target token, takes the SAME upgrade path as a hub
//! offer (signature, size, SHA-256, smoke run, swap, trial, commit) and
//! gooseBit records the feedback (rollout success count, device state,
//! software version, log). A release signed by an untrusted key is refused
//! with `closed` + `failure`, and the installed binary stays byte-identical.
//!
//! Each device is a `--root` tree whose installed binary is a copy of this
//! build; the new release is a TEST DOUBLE, a shell wrapper that runs this
//! build with `OUTPOST_TEST_VERSION` (feature test-hooks), as in
//! tests/upgrade_hub.rs.

mod common;
use common::agent::{Device, Setup};
use common::fault::Scratch;
use common::tls::make_pki;
use common::upgrade::{self, sh};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("OUTPOST_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache")
                });
            cache.join("outpost/venv")
        });
    let py = venv.join("bin/python3");
    assert!(
        py.exists(),
        "{} missing: run scripts/deps install test (pip goosebit==0.2.12)",
        py.display()
    );
    py
}

struct Goose {
    child: Child,
    port: u16,
}

impl Drop for Goose {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn goosebit(dir: &Path, cert: &Path, key: &Path) -> Goose {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/goosebit_serve.py");
    let mut child = Command::new(venv_python())
        .arg(script)
        .arg(dir)
        .arg(cert)
        .arg(key)
        .arg("00:00:42")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting gooseBit");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("gooseBit port");
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("gooseBit did not start: {line:?}"));
    // Bounded wait until uvicorn accepts.
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Goose { child, port }
}

#[test]
fn poll_registers_sends_config_data_once_and_follows_the_server_sleep() {
    let scratch = Scratch::new("ddi-goose");
    let pki = make_pki(scratch.path());
    let g = goosebit(scratch.path(), &pki.server_cert, &pki.server_key);
    let url = format!("https://127.0.0.1:{}", g.port);
    let dir = scratch.path().join("dev");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let d = Device::new(
        &dir,
        &Setup {
            endpoint: &url,
            token: None,
            host_id: "edge-ddi-1",
            ca_pem: &pki.ca_cert,
            site: "",
            top: "outpost:\n  server:\n    protocol: ddi\n    ddi:\n      tenant: DEFAULT\n      token: TestTargetToken0123456789abcdef01\n  timeouts:\n    connect: 2\n    request: 10\n",
        },
    );
    let (code, out, err) = d.run(&["-v", "checkin"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("as edge-ddi-1; configData sent (asked for)"),
        "{out}"
    );
    let db = scratch.path().join("goosebit.sqlite3");
    let q = |sql: &str| {
        let o = Command::new("sqlite3")
            .arg(&db)
            .arg(sql)
            .output()
            .expect("sqlite3");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(
        q("select id from device"),
        "edge-ddi-1",
        "registered by the first poll"
    );

    let (code, out, err) = d.run(&["-v", "checkin"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("configData unchanged; next poll in 42 s (00:00:42)"),
        "the server's sleep after configData: {out}"
    );

    let (code, out, err) = d.run(&["check", "--network", "--json", "--only", "arch"]);
    assert!(code == 0 || code == 1, "{err}");
    assert!(
        out.contains("hawkBit DDI: polling sleep 00:00:42 (42 s)"),
        "{out}"
    );
    assert!(!out.contains("TestTargetToken") && !err.contains("TestTargetToken"));
}

const REAL: &str = env!("CARGO_BIN_EXE_outpost");
const SIGN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sign");
const TOKEN: &str = "TestTargetToken0123456789abcdef01";

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).expect("read")
}

/// gooseBit, a device on it and a release key the device trusts.
struct World {
    scratch: Scratch,
    pki: common::tls::TestPki,
    goose: Goose,
    dev: Device,
    keys: PathBuf,
}

impl World {
    fn new(name: &str) -> World {
        let scratch = Scratch::new(name);
        let pki = make_pki(scratch.path());
        let goose = goosebit(scratch.path(), &pki.server_cert, &pki.server_key);
        let keys = scratch.path().join("keys");
        std::fs::create_dir_all(&keys).expect("mkdir");
        sh(Command::new(SIGN).arg("keygen").arg(keys.join("rel")));
        sh(Command::new(SIGN).arg("keygen").arg(keys.join("other")));
        let pub_line = std::fs::read_to_string(keys.join("rel.pub"))
            .expect("pub")
            .lines()
            .nth(1)
            .expect("key line")
            .to_string();
        let dir = scratch.path().join("dev");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let url = format!("https://127.0.0.1:{}", goose.port);
        let top = format!(
            "outpost:\n  server:\n    protocol: ddi\n    ddi:\n      tenant: DEFAULT\n      token: {TOKEN}\n  timeouts:\n    connect: 2\n    request: 10\n  upgrade:\n    publicKeys:\n      - \"{pub_line}\"\n"
        );
        let dev = Device::new(
            &dir,
            &Setup {
                endpoint: &url,
                token: None,
                host_id: "edge-ddi-2",
                ca_pem: &pki.ca_cert,
                site: "",
                top: &top,
            },
        );
        std::fs::create_dir_all(dev.root.join("usr/local/bin")).expect("mkdir");
        std::fs::copy(REAL, dev.root.join("usr/local/bin/outpost")).expect("install");
        World {
            scratch,
            pki,
            goose,
            dev,
            keys,
        }
    }

    fn bin(&self) -> PathBuf {
        upgrade::installed(&self.dev)
    }

    fn prev(&self) -> PathBuf {
        upgrade::previous(&self.dev)
    }

    /// One cron tick: the previous binary's guard, then `checkin`.
    fn tick(&self) -> (i32, String, String) {
        upgrade::cron_tick(&self.dev)
    }

    /// A release `version` (a wrapper running this build as that version),
    /// signed with keys/`key`, packed as an SWU image; uploaded to gooseBit
    /// and rolled out.
    fn roll_out(&self, version: &str, key: &str) {
        let runner = common::runner().unwrap_or_default();
        self.roll_out_content(
            version,
            key,
            format!("#!/bin/sh\nOUTPOST_TEST_VERSION={version} exec {runner} {REAL} \"$@\"\n"),
        );
    }

    /// The same with `content` as the release binary.
    fn roll_out_content(&self, version: &str, key: &str, content: String) {
        use std::os::unix::fs::PermissionsExt;
        let arch = std::env::consts::ARCH;
        let d = self
            .scratch
            .path()
            .join("rel")
            .join(format!("{version}-{key}"));
        std::fs::create_dir_all(&d).expect("mkdir");
        let p = d.join(format!("outpost-{version}-{arch}-linux-musl"));
        std::fs::write(&p, content).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        sh(Command::new(SIGN)
            .arg("manifest")
            .arg(self.keys.join(format!("{key}.sec")))
            .arg(&p)
            .arg(version)
            .arg(arch));
        let swu = sh(Command::new(SIGN).arg("swu").arg(&p));
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/goosebit_rollout.py");
        let out = sh(Command::new(venv_python())
            .arg(script)
            .arg(format!("https://127.0.0.1:{}", self.goose.port))
            .arg(&self.pki.ca_cert)
            .arg(swu.trim()));
        assert!(out.starts_with("software "), "{out}");
    }

    fn q(&self, sql: &str) -> String {
        let o = Command::new("sqlite3")
            .arg(self.scratch.path().join("goosebit.sqlite3"))
            .arg(sql)
            .output()
            .expect("sqlite3");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

#[test]
fn deployment_of_a_signed_release_upgrades_and_goosebit_records_success() {
    let w = World::new("ddi-deploy");
    let (code, out, err) = w.tick();
    assert_eq!(code, 0, "registers: {out}{err}");
    let old = bytes(&w.bin());
    w.roll_out("0.9.0", "rel");

    // The deployment: proceeding, download from gooseBit with the target
    // token, verification, smoke run, swap; exit 75 to be restarted.
    let (code, out, err) = w.tick();
    assert_eq!(code, 75, "swaps: {out}{err}");
    assert!(
        out.contains("0.9.0 swapped in (on trial)"),
        "summary line: {out}"
    );
    assert!(
        err.contains(&format!(
            "downloading https://127.0.0.1:{}/DEFAULT/controller/v1/edge-ddi-2/download",
            w.goose.port
        )),
        "{err}"
    );
    assert!(
        err.contains("size and SHA-256 match the signed manifest"),
        "{err}"
    );
    assert_ne!(bytes(&w.bin()), old);
    assert_eq!(bytes(&w.prev()), old, "the previous binary is kept");
    assert_eq!(
        w.q("select last_state from device"),
        "3",
        "gooseBit: RUNNING after `proceeding`"
    );

    // The new binary polls, commits (checkin: no grace) and reports.
    let (code, out, err) = w.tick();
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("committed"), "{err}");
    assert!(out.contains("closed/success"), "{out}");
    assert_eq!(
        w.q("select success_count, failure_count from rollout"),
        "1|0"
    );
    assert_eq!(
        w.q("select last_state, sw_version from device"),
        "5|0.9.0",
        "gooseBit: FINISHED, running 0.9.0"
    );
    assert!(
        w.q("select last_log from device")
            .contains("upgraded from 0.1.0 to 0.9.0 and committed"),
        "{}",
        w.q("select last_log from device")
    );
    // Nothing more to do: no deployment offered, nothing acted on twice.
    let (code, out, err) = w.tick();
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("DDI action"), "{out}");
    assert!(!w.dev.file("ddi-artifact.tmp").exists());
}

#[test]
fn release_signed_by_an_untrusted_key_is_refused_with_failure_feedback() {
    let w = World::new("ddi-badsig");
    let (code, out, err) = w.tick();
    assert_eq!(code, 0, "registers: {out}{err}");
    let old = bytes(&w.bin());
    w.roll_out("0.9.0", "other");
    let (code, out, err) = w.tick();
    assert_eq!(code, 21, "refused (exit 21): {out}{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("outpost:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("release manifest"), "{}", lines[0]);
    assert!(out.contains("closed/failure"), "{out}");
    assert_eq!(bytes(&w.bin()), old, "byte-identical binary");
    assert!(!w.prev().exists());
    assert_eq!(
        w.q("select success_count, failure_count from rollout"),
        "0|1"
    );
    assert_eq!(w.q("select last_state from device"), "4", "gooseBit: ERROR");
    let log = w.q("select last_log from device");
    assert!(log.contains("release manifest"), "{log}");
    // Not acted on again.
    let (code, out, err) = w.tick();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(bytes(&w.bin()), old);
}

#[test]
fn release_that_cannot_start_is_rolled_back_and_reported_as_failure() {
    let w = World::new("ddi-rollback");
    let (code, out, err) = w.tick();
    assert_eq!(code, 0, "registers: {out}{err}");
    let old = bytes(&w.bin());
    // Passes the smoke run (--version), fails every real start.
    let crasher = format!(
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo '{{\"schema\":\"outpost.version/v1\",\"version\":\"0.9.0\",\"git_rev\":\"x\",\"target\":\"{}-unknown-linux-musl\",\"build_date\":\"x\"}}'; exit 0; fi\necho broken >&2\nexit 1\n",
        std::env::consts::ARCH
    );
    w.roll_out_content("0.9.0", "rel", crasher);
    let (code, out, err) = w.tick();
    assert_eq!(code, 75, "{out}{err}");
    for _ in 0..3 {
        let (code, _, _) = w.tick();
        assert_eq!(code, 1, "the broken release fails");
    }
    // The previous binary's guard rolls back; the restored binary reports.
    let (code, out, err) = w.tick();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(bytes(&w.bin()), old, "byte-identical previous binary");
    assert!(out.contains("DDI action 1 closed/failure"), "{out}");
    assert_eq!(
        w.q("select success_count, failure_count from rollout"),
        "0|1"
    );
    assert_eq!(w.q("select last_state from device"), "4", "gooseBit: ERROR");
    let log = w.q("select last_log from device");
    assert!(log.contains("rolled_back"), "{log}");
    let (code, out, err) = w.tick();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(bytes(&w.bin()), old);
}
