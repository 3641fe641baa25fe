//! Self-upgrade driven by the real hub over TLS on loopback: a rollout of
//! three agents with one canary (offers, download from the hub's artifact
//! store, swap, trial, commit, rollout done); a broken release rolled back
//! by the previous binary's guard pauses the rollout with the reason the
//! agent reported; bad offers (stalled server mid-artifact, plain http URL,
//! unsigned offer) fail with one line and a documented exit code, leave the
//! binary byte-identical and are reported at the next check-in; the cluster
//! gate holds a Kubernetes upgrade until every member's agent is new
//! enough, then releases it.
//!
//! Each device is a `--root` tree whose installed binary is a copy of this
//! build; the new release is a TEST DOUBLE, a shell wrapper that runs this
//! build with `OUTPOST_TEST_VERSION` (feature test-hooks). Scheduling is
//! done by hand the way the cron line does it: the previous binary's guard
//! first, then the installed binary's `checkin`.

mod common;
use common::agent::{Device, Setup};
use common::fault::Scratch;
use common::hub::Hub;
use common::tls::{make_pki, TestPki};
use common::upgrade::{self, sh};
use std::path::{Path, PathBuf};
use std::process::Command;

const REAL: &str = env!("CARGO_BIN_EXE_outpost");
const SIGN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sign");

fn arch() -> &'static str {
    std::env::consts::ARCH
}

fn wrapper(version: &str) -> Vec<u8> {
    let runner = common::runner().unwrap_or_default();
    format!("#!/bin/sh\nOUTPOST_TEST_VERSION={version} exec {runner} {REAL} \"$@\"\n").into_bytes()
}

fn crasher(version: &str) -> Vec<u8> {
    format!(
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo '{{\"schema\":\"outpost.version/v1\",\"version\":\"{version}\",\"git_rev\":\"x\",\"target\":\"{}-unknown-linux-musl\",\"build_date\":\"x\"}}'; exit 0; fi\necho broken >&2\nexit 1\n",
        arch()
    )
    .into_bytes()
}

struct World {
    scratch: Scratch,
    pki: TestPki,
    hub: Hub,
    token: String,
    key: PathBuf,
    pubkey: PathBuf,
    pub_line: String,
}

fn world(name: &str) -> World {
    let scratch = Scratch::new(name);
    let pki = make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let token = hub.token(&[]);
    let keys = scratch.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    sh(Command::new(SIGN).arg("keygen").arg(keys.join("rel")));
    let pubkey = keys.join("rel.pub");
    let pub_line = std::fs::read_to_string(&pubkey)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    World {
        scratch,
        pki,
        hub,
        token,
        key: keys.join("rel.sec"),
        pubkey,
        pub_line,
    }
}

struct Host {
    dev: Device,
    id: String,
}

impl World {
    fn host(&self, id: &str, labels_cluster: bool) -> Host {
        let dir = self.scratch.path().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let top = format!(
            "outpost:\n  timeouts:\n    request: 3\n  upgrade:\n    publicKeys:\n      - \"{}\"\n",
            self.pub_line
        );
        let dev = Device::new(
            &dir,
            &Setup {
                endpoint: &self.hub.url,
                token: Some(&self.token),
                host_id: id,
                ca_pem: &self.pki.ca_cert,
                site: "",
                top: &top,
            },
        );
        std::fs::create_dir_all(dev.root.join("usr/local/bin")).unwrap();
        std::fs::copy(REAL, dev.root.join("usr/local/bin/outpost")).unwrap();
        let h = Host { dev, id: id.into() };
        let (code, out, err) = h.tick();
        assert_eq!(code, 0, "{id} registers: {out}{err}");
        if labels_cluster {
            let (c, _, e) = self.hub.cli(&["label", id, "cluster=shop"]);
            assert_eq!(c, 0, "{e}");
        }
        h
    }

    /// Sign `content` as release `version` and add it to the hub.
    fn release(&self, content: &[u8], version: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let d = self.scratch.path().join("rel").join(version);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(format!("outpost-{version}-{}-linux-musl", arch()));
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        sh(Command::new(SIGN)
            .arg("manifest")
            .arg(&self.key)
            .arg(&p)
            .arg(version)
            .arg(arch()));
        let m = format!("{}.manifest", p.display());
        let (code, out, err) =
            self.hub
                .cli(&["release", "add", &m, "--key", self.pubkey.to_str().unwrap()]);
        assert_eq!(code, 0, "release add: {out}{err}");
        assert!(
            out.contains(&format!("release {version} {}", arch())),
            "{out}"
        );
        p
    }

    fn hub_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.hub.cli(args);
        assert_eq!(code, 0, "outpost-hub {args:?}: {out}{err}");
        out
    }

    fn report(&self, host: &str) -> String {
        let out = Command::new("sqlite3")
            .arg(&self.hub.db)
            .arg(format!("SELECT value FROM meta WHERE key='report:{host}'"))
            .output()
            .expect("sqlite3 (Debian package sqlite3)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Host {
    fn bin(&self) -> PathBuf {
        upgrade::installed(&self.dev)
    }
    fn prev(&self) -> PathBuf {
        upgrade::previous(&self.dev)
    }
    fn run_exe(&self, exe: &Path, args: &[&str]) -> (i32, String, String) {
        upgrade::run_exe(&self.dev, exe, args)
    }
    /// One cron tick: the previous binary's guard, then `checkin`.
    fn tick(&self) -> (i32, String, String) {
        upgrade::cron_tick(&self.dev)
    }
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn rollout_of_three_agents_with_a_canary() {
    let w = world("hub-rollout");
    let hosts: Vec<Host> = ["edge-a", "edge-b", "edge-c"]
        .iter()
        .map(|h| w.host(h, false))
        .collect();
    let old = bytes(&hosts[0].bin());
    let new = wrapper("0.9.0");
    w.release(&new, "0.9.0");
    let out = w.hub_ok(&["rollout", "start", "--version", "0.9.0", "--canary", "1"]);
    assert!(out.contains("rollout of 0.9.0 started"), "{out}");

    // The canary (first by host ID) gets the offer, downloads it from the
    // hub, swaps and asks to be restarted (75).
    let (code, out, err) = hosts[0].tick();
    assert_eq!(code, 75, "canary upgrades: {out}{err}");
    assert!(err.contains("downloading https://127.0.0.1:"), "{err}");
    assert_eq!(bytes(&hosts[0].bin()), new);
    assert_eq!(bytes(&hosts[0].prev()), old);
    // The others wait for the canary.
    for h in &hosts[1..] {
        let (code, out, err) = h.tick();
        assert_eq!(code, 0, "{}: {out}{err}", h.id);
        assert_eq!(
            bytes(&h.bin()),
            old,
            "{} not offered before the canary committed",
            h.id
        );
    }
    let st = w.hub_ok(&["rollout", "status"]);
    assert!(st.contains("edge-a") && st.contains("offered"), "{st}");
    assert!(st.contains("edge-b") && st.contains("waiting"), "{st}");

    // The canary runs as 0.9.0, checks in, commits.
    let (code, out, err) = hosts[0].tick();
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("committed"), "{err}");
    let (_, sout, _) = hosts[0].run_exe(&hosts[0].bin(), &["status"]);
    assert!(
        sout.contains("agent        0.9.0") || sout.contains("0.1.0 -> 0.9.0 committed"),
        "{sout}"
    );

    // The hub learns of the commit at the canary's next check-in (until
    // then the canary reported "on trial", which is not a commit).
    let st = w.hub_ok(&["rollout", "status"]);
    assert!(st.contains("on trial"), "{st}");
    let (code, out, err) = hosts[0].tick();
    assert_eq!(code, 0, "{out}{err}");

    // Now the rest.
    for h in &hosts[1..] {
        let (code, out, err) = h.tick();
        assert_eq!(code, 75, "{}: {out}{err}", h.id);
    }
    for h in &hosts[1..] {
        let (code, out, err) = h.tick();
        assert_eq!(code, 0, "{}: {out}{err}", h.id);
        assert!(err.contains("committed"), "{err}");
    }
    // Outcomes reach the hub on the next check-in.
    for h in &hosts {
        let (code, _, _) = h.tick();
        assert_eq!(code, 0);
        assert!(
            w.report(&h.id).contains("\"state\":\"committed\""),
            "{}",
            w.report(&h.id)
        );
    }
    let st = w.hub_ok(&["rollout", "status"]);
    assert!(st.starts_with("rollout of 0.9.0: done"), "{st}");
    assert_eq!(st.matches("committed").count(), 3, "{st}");
    let devs = w.hub_ok(&["devices", "--json"]);
    assert_eq!(devs.matches("\"agent\":\"0.9.0\"").count(), 3, "{devs}");
}

#[test]
fn broken_canary_is_rolled_back_and_pauses_the_rollout() {
    let w = world("hub-broken");
    let a = w.host("edge-a", false);
    let b = w.host("edge-b", false);
    let old = bytes(&a.bin());
    w.release(&crasher("0.9.0"), "0.9.0");
    w.hub_ok(&["rollout", "start", "--version", "0.9.0", "--canary", "1"]);
    let (code, out, err) = a.tick();
    assert_eq!(code, 75, "{out}{err}");
    // Three failing starts, then the guard of the previous binary rolls back.
    for _ in 0..3 {
        let (code, _, _) = a.tick();
        assert_eq!(code, 1, "the broken release fails");
    }
    let (code, out, err) = a.tick();
    assert_eq!(code, 0, "the restored binary checks in: {out}{err}");
    assert_eq!(bytes(&a.bin()), old, "byte-identical previous binary");
    assert!(
        w.report("edge-a").contains("rolled_back"),
        "{}",
        w.report("edge-a")
    );
    let st = w.hub_ok(&["rollout", "status"]);
    assert!(
        st.contains("paused (edge-a rolled back: 0.9.0 started 3 times without committing)"),
        "{st}"
    );
    // b is never offered; a does not retry the rolled-back version.
    let (code, _, _) = b.tick();
    assert_eq!(code, 0);
    assert_eq!(bytes(&b.bin()), old);
    let (code, _, err) = a.tick();
    assert_eq!(code, 0, "{err}");
    assert_eq!(bytes(&a.bin()), old);
}

#[test]
fn bad_offers_fail_with_one_line_and_are_reported() {
    let w = world("hub-badoffer");
    let a = w.host("edge-a", false);
    let old = bytes(&a.bin());
    let p = w.release(&wrapper("0.9.0"), "0.9.0");
    let manifest = format!("{}.manifest", p.display());
    let size = bytes(&p).len();
    let sha = {
        let out = sh(Command::new("sha256sum").arg(&p));
        out.split_whitespace().next().unwrap().to_string()
    };
    // A fault server with the hub's certificate (the agent trusts its CA).
    let fs = common::fault::FaultServer::tls(&common::tls::Leaf {
        cert: w.pki.server_cert.clone(),
        key: w.pki.server_key.clone(),
    });
    let stall = fs.url("/stall");
    let cases: Vec<(&str, Vec<String>, i32, &str)> = vec![
        (
            "stalled server mid-artifact",
            vec![
                format!("--artifact={}={stall},{sha},{size}", arch()),
                format!("--manifest={manifest}"),
            ],
            10,
            "artifact download stalled",
        ),
        (
            "plain http artifact URL",
            vec![
                format!("--artifact={}=http://127.0.0.1:9/x,{sha},{size}", arch()),
                format!("--manifest={manifest}"),
                "--test-mode".into(),
            ],
            21,
            "not https://",
        ),
        (
            "unsigned offer",
            vec![format!("--artifact={}={stall},{sha},{size}", arch())],
            21,
            "no signed manifest",
        ),
        (
            "offer does not match its manifest",
            vec![
                format!("--artifact={}={stall},{sha},{}", arch(), size + 1),
                format!("--manifest={manifest}"),
            ],
            21,
            "does not match its signed manifest",
        ),
    ];
    for (name, args, want, phrase) in cases {
        let mut v = vec![
            "offer-upgrade".to_string(),
            "--version".into(),
            "0.9.0".into(),
        ];
        v.extend(args);
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        w.hub_ok(&v);
        let (code, out, err) = a.tick();
        assert_eq!(code, want, "{name}: {out}{err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("outpost:")).collect();
        assert_eq!(lines.len(), 1, "{name}: {err}");
        assert!(lines[0].contains(phrase), "{name}: {}", lines[0]);
        assert_eq!(bytes(&a.bin()), old, "{name}: binary changed");
        assert!(!a.prev().exists(), "{name}");
        // Reported at the next check-in.
        w.hub_ok(&["offer-upgrade", "--withdraw"]);
        let (code, out, err) = a.tick();
        assert_eq!(code, 0, "{name}: {out}{err}");
        let r = w.report("edge-a");
        assert!(
            r.contains("\"state\":\"failed\"") && r.contains(phrase),
            "{name}: {r}"
        );
    }
}

#[test]
fn gate_holds_the_cluster_upgrade_until_every_agent_is_new_enough() {
    let w = world("hub-gate");
    let a = w.host("edge-a", true);
    let b = w.host("edge-b", true);
    let other = w.host("edge-x", false);
    let old = bytes(&other.bin());
    w.release(&wrapper("0.9.0"), "0.9.0");
    let out = w.hub_ok(&[
        "cluster-upgrade",
        "shop",
        "--kubernetes",
        "1.30.2",
        "--min-agent",
        "0.9.0",
    ]);
    assert!(out.contains("holding"), "{out}");
    assert!(
        out.contains("edge-a: agent 0.1.0 is older than the required 0.9.0"),
        "{out}"
    );
    assert!(out.contains("edge-b: agent 0.1.0 is older"), "{out}");
    // Members get the agent upgrade; the non-member does not.
    let (code, _, err) = other.tick();
    assert_eq!(code, 0, "{err}");
    assert_eq!(bytes(&other.bin()), old);
    let (code, _, err) = a.tick();
    assert_eq!(code, 75, "{err}");
    let (code, _, err) = a.tick();
    assert_eq!(code, 0, "{err}");
    let cl = w.hub_ok(&["clusters"]);
    assert!(
        cl.contains("shop: Kubernetes 1.30.2 (agents >= 0.9.0): holding"),
        "{cl}"
    );
    assert!(
        !cl.contains("edge-a:") && cl.contains("edge-b: agent 0.1.0"),
        "only b holds it now: {cl}"
    );
    let (code, _, err) = b.tick();
    assert_eq!(code, 75, "{err}");
    let (code, _, err) = b.tick();
    assert_eq!(code, 0, "{err}");
    let cl = w.hub_ok(&["clusters"]);
    assert!(
        cl.contains("shop: Kubernetes 1.30.2 (agents >= 0.9.0): released at "),
        "{cl}"
    );
    // The members get the instruction and accept it.
    let (code, _, err) = a.tick();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("Kubernetes upgrade to 1.30.2 released for this host"),
        "{err}"
    );
}

#[test]
fn set_config_applies_safe_keys_and_reports_the_refused_ones() {
    let w = world("hub-setconfig");
    let a = w.host("edge-a", false);
    let file_before = bytes(&a.dev.config);
    w.hub_ok(&[
        "set-config",
        "outpost.interval.min=120",
        "outpost.logLevel=info",
        "outpost.timeouts.request=0",
        "stylus.site.paletteEndpoint=evil.example",
        "stylus.site.edgeHostToken=stolen",
        "outpost.upgrade.publicKeys=RWQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ]);
    let (code, out, err) = a.tick();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("remote configuration: outpost.interval.min = 120"),
        "{err}"
    );
    assert!(
        err.contains("stylus.site.paletteEndpoint refused: the endpoint is never changed remotely"),
        "{err}"
    );
    assert!(
        !err.contains("stolen") && !err.contains("evil.example"),
        "values of refused keys are not logged: {err}"
    );
    let rec = std::fs::read_to_string(a.dev.file("remote-config.json")).unwrap();
    assert!(
        rec.contains(
            "\"applied\":{\"outpost.interval.min\":\"120\",\"outpost.logLevel\":\"info\"}"
        ),
        "{rec}"
    );
    assert_eq!(
        bytes(&a.dev.config),
        file_before,
        "the operator's file is never rewritten"
    );
    // The next check-in reports what was applied and refused.
    let (code, _, err) = a.tick();
    assert_eq!(code, 0, "{err}");
    let out = Command::new("sqlite3")
        .arg(&w.hub.db)
        .arg("SELECT value FROM meta WHERE key='config-report:edge-a'")
        .output()
        .expect("sqlite3");
    let r = String::from_utf8_lossy(&out.stdout);
    for want in [
        "\"applied\":[\"outpost.interval.min\",\"outpost.logLevel\"]",
        "\"stylus.site.edgeHostToken\":\"a secret is never changed remotely\"",
        "\"outpost.upgrade.publicKeys\":\"trust",
        "\"outpost.timeouts.request\":\"invalid:",
    ] {
        assert!(r.contains(want), "{want} in {r}");
    }
    // Applied: the logLevel from the server makes info lines appear without -v.
    let (code, out, err) = a.run_exe(&a.bin(), &["checkin"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("checked in to"),
        "logLevel info from the server is in force: {out}{err}"
    );
    let (_, _, err) = a.run_exe(&a.bin(), &["checkin"]);
    assert!(
        !err.contains("refused"),
        "a handled change is not acted on again: {err}"
    );
}

#[test]
fn run_exits_75_after_the_swap() {
    // `outpost run` (the systemd service): the offer is acted on after the
    // first check-in and the loop ends with 75 (systemd restarts it into
    // the new binary at once: SuccessExitStatus/RestartForceExitStatus=75).
    let w = world("hub-run");
    let a = w.host("edge-a", false);
    let new = wrapper("0.9.0");
    w.release(&new, "0.9.0");
    w.hub_ok(&["rollout", "start", "--version", "0.9.0"]);
    let (code, out, err) = a.run_exe(&a.bin(), &["-v", "run"]);
    assert_eq!(code, 75, "{out}{err}");
    assert!(err.contains("exiting with 75"), "{err}");
    assert_eq!(bytes(&a.bin()), new);
    let st = std::fs::read_to_string(a.dev.file("trial.json")).unwrap();
    assert!(st.contains("\"to\":\"0.9.0\""), "{st}");
}

#[test]
fn a_stale_trial_left_by_a_cut_swap_is_dropped_and_the_offer_acted_on() {
    // A power cut after trial.json was written but before the new binary
    // was renamed in (and before any outpost.prev existed to run a guard):
    // the running agent drops the trial that is not its binary and
    // upgrades, instead of waiting forever for a commit (found by the
    // lab's upgrade-power-cut scenario).
    let w = world("hub-stale");
    let a = w.host("edge-a", false);
    let new = wrapper("0.9.0");
    w.release(&new, "0.9.0");
    w.hub_ok(&["rollout", "start", "--version", "0.9.0"]);
    std::fs::write(
        a.dev.file("trial.json"),
        r#"{"schema":"outpost.trial/v1","from":"0.1.0","to":"0.9.0","sha256":"00","starts":0,"first_start":0,"max_starts":3,"window_s":900,"rollback_reason":null}"#,
    )
    .unwrap();
    assert!(!a.prev().exists());
    let (code, out, err) = a.tick();
    assert_eq!(code, 75, "{out}{err}");
    assert!(err.contains("trial of 0.9.0 dropped"), "{err}");
    assert_eq!(bytes(&a.bin()), new);
    let st = std::fs::read_to_string(a.dev.file("trial.json")).unwrap();
    assert!(
        st.contains("\"to\":\"0.9.0\"") && !st.contains("\"00\""),
        "{st}"
    );
}
