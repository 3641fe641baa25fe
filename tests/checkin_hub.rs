//! `outpost checkin` and `outpost status` against the real hub over TLS:
//! registration, steady check-ins, the inventory sent only when it changed
//! (read from the hub's request log), 401 then one re-registration with the
//! same install secret, 409 for another machine's host ID, deregistration
//! (exit 15, remembered so later runs contact nothing), a refused token,
//! disableAutoRegister, local management mode, status exit codes, two
//! concurrent runs. The agent runs through the qemu runner when set.

mod common;
use common::agent::{requests, Device, Setup};
use common::fault::Scratch;
use common::hub::Hub;
use common::tls::{make_pki, TestPki};

struct World {
    scratch: Scratch,
    pki: TestPki,
    hub: Hub,
    token: String,
}

fn world(name: &str) -> World {
    let scratch = Scratch::new(name);
    let pki = make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let token = hub.token(&["--project", "shops"]);
    World {
        scratch,
        pki,
        hub,
        token,
    }
}

impl World {
    fn device(&self, name: &str, host_id: &str, site: &str, top: &str) -> Device {
        let dir = self.scratch.path().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir device");
        Device::new(
            &dir,
            &Setup {
                endpoint: &self.hub.url,
                token: Some(&self.token),
                host_id,
                ca_pem: &self.pki.ca_cert,
                site,
                top,
            },
        )
    }

    fn log(&self) -> Vec<(String, u64, u64)> {
        requests(&self.hub.log_lines())
    }
}

const REG: &str = "/outpost/v1/register";
const CHK: &str = "/outpost/v1/checkin";

#[test]
fn registers_then_checks_in_with_inventory_only_on_change() {
    let w = world("hub-steady");
    let d = w.device("dev", "edge-steady-1", "", "");
    let (code, out, err) = d.run(&["checkin"]);
    assert_eq!(code, 0, "first checkin: {out}{err}");
    let log = w.log();
    assert_eq!(
        log.iter()
            .map(|(p, s, _)| (p.as_str(), *s))
            .collect::<Vec<_>>(),
        [(REG, 200), (CHK, 200)],
        "register, then check in"
    );
    assert!(
        log[1].2 <= 512,
        "check-in after register carries no inventory: {} bytes",
        log[1].2
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |n: &str| std::fs::metadata(d.file(n)).expect(n).permissions().mode() & 0o777;
    assert_eq!(mode("credential"), 0o600, "credential mode");
    assert_eq!(mode("install-secret"), 0o600, "install secret mode");
    assert_eq!(
        std::fs::metadata(d.state_dir())
            .expect("dir")
            .permissions()
            .mode()
            & 0o777,
        0o700,
        "state dir mode"
    );
    let state = std::fs::read_to_string(d.file("state.json")).expect("state.json");
    assert!(
        state.starts_with("{\"schema\":\"outpost.state/v1\""),
        "{state}"
    );
    let status = std::fs::read_to_string(d.file("status.json")).expect("status.json");
    for key in [
        "\"schema\":\"outpost.status/v1\"",
        "\"host_id\":\"edge-steady-1\"",
        "\"last_error\":null",
        "\"consecutive_failures\":0",
        "\"interval_s\":300",
    ] {
        assert!(status.contains(key), "status.json lacks {key}: {status}");
    }

    // Steady state: one small check-in, no inventory.
    let (code, out, err) = d.run(&["checkin"]);
    assert_eq!(code, 0, "second checkin: {out}{err}");
    let log = w.log();
    assert_eq!(log.len(), 3, "one more request: {log:?}");
    assert_eq!((log[2].0.as_str(), log[2].1), (CHK, 200));
    assert!(
        log[2].2 <= 512,
        "steady check-in request (head + body) is {} bytes (> 512)",
        log[2].2
    );

    // The inventory changes (another OS release): sent in full once.
    std::fs::create_dir_all(d.root.join("etc")).expect("etc");
    std::fs::write(
        d.root.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    )
    .expect("os-release");
    let (code, _, err) = d.run(&["checkin"]);
    assert_eq!(code, 0, "checkin after change: {err}");
    let (code, _, err) = d.run(&["checkin"]);
    assert_eq!(code, 0, "checkin after that: {err}");
    let log = w.log();
    assert_eq!(log.len(), 5, "{log:?}");
    assert!(
        log[3].2 > 512,
        "changed inventory sent in full: {} bytes",
        log[3].2
    );
    assert!(log[4].2 <= 512, "then steady again: {} bytes", log[4].2);

    let (code, out, _) = w.hub.cli(&["devices", "--json"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("\"host_id\":\"edge-steady-1\""),
        "device listed: {out}"
    );
    assert!(
        out.contains("Debian GNU/Linux 12 (bookworm)"),
        "inventory reached the hub: {out}"
    );
    let (code, out, _) = w.hub.cli(&["devices"]);
    assert_eq!(code, 0);
    assert!(out.contains("edge-steady-1"), "devices table: {out}");

    let (code, out, _) = d.run(&["status"]);
    assert_eq!(code, 0, "status after success: {out}");
    assert!(out.starts_with("state              ok\n"), "{out}");
}

#[test]
fn unknown_credential_reregisters_once_with_the_same_install_secret() {
    let w = world("hub-401");
    let d = w.device("dev", "edge-401", "", "");
    assert_eq!(d.run(&["checkin"]).0, 0, "registered");
    let secret = std::fs::read(d.file("install-secret")).expect("secret");
    std::fs::write(d.file("credential"), "opc_not0the0right0one\n").expect("corrupt");
    let (code, out, err) = d.run(&["checkin"]);
    assert_eq!(code, 0, "re-registered: {out}{err}");
    let log = w.log();
    let tail: Vec<(&str, u64)> = log[2..].iter().map(|(p, s, _)| (p.as_str(), *s)).collect();
    assert_eq!(
        tail,
        [(CHK, 401), (REG, 200), (CHK, 200)],
        "401, register, check-in"
    );
    assert_eq!(
        std::fs::read(d.file("install-secret")).expect("secret"),
        secret,
        "same install secret"
    );
    let cred = std::fs::read_to_string(d.file("credential")).expect("credential");
    assert!(
        cred.starts_with("opc_") && !cred.contains("not0the0right"),
        "new credential stored"
    );
    let (_, out, _) = w.hub.cli(&["devices", "--json"]);
    assert_eq!(
        out.matches("\"host_id\":").count(),
        1,
        "still one device: {out}"
    );
}

#[test]
fn another_machine_with_the_same_host_id_is_exit_14() {
    let w = world("hub-409");
    let a = w.device("a", "edge-twin", "", "");
    assert_eq!(a.run(&["checkin"]).0, 0, "first machine registered");
    let b = w.device("b", "edge-twin", "", "");
    let (code, out, err) = b.run(&["checkin"]);
    assert_eq!(code, 14, "duplicate: {out}{err}");
    let want = format!("outpost: POST {}/outpost/v1/register: duplicate host ID (HTTP 409): host ID edge-twin is registered by another machine; delete the old record first (outpost-hub delete edge-twin)\n", w.hub.url);
    assert_eq!(err, want, "one-line error");
    assert!(!b.file("credential").exists(), "no credential for the twin");
}

#[test]
fn deregistration_is_exit_15_and_remembered() {
    let w = world("hub-410");
    let d = w.device("dev", "edge-gone", "", "");
    assert_eq!(d.run(&["checkin"]).0, 0, "registered");
    let (code, _, err) = w.hub.cli(&["deregister", "edge-gone"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = d.run(&["checkin"]);
    assert_eq!(code, 15, "deregister answer: {err}");
    assert_eq!(
        err,
        format!(
            "outpost: POST {}/outpost/v1/checkin: the operator deregistered this device\n",
            w.hub.url
        )
    );
    let n = w.log().len();
    let (code, _, err) = d.run(&["checkin"]);
    assert_eq!(code, 15, "remembered: {err}");
    assert!(
        err.contains("this device was deregistered by the server (recorded in "),
        "{err}"
    );
    assert_eq!(w.log().len(), n, "the hub was not contacted again");
    assert!(
        d.file("credential").exists(),
        "credential kept for the operator to inspect"
    );
    let (code, out, _) = d.run(&["status"]);
    assert_eq!(code, 1, "status after exit 15: {out}");
    assert!(out.contains("last error         exit 15: "), "{out}");
}

#[test]
fn hub_410_is_exit_15() {
    let w = world("hub-410b");
    let d = w.device("dev", "edge-gone2", "", "");
    assert_eq!(d.run(&["checkin"]).0, 0, "registered");
    assert_eq!(w.hub.cli(&["deregister", "edge-gone2"]).0, 0);
    // Another agent with the credential sees the deregister answer first;
    // this one then gets the 410 the hub sends to every later check-in.
    let before = std::fs::read(d.file("state.json")).expect("state");
    let other = w.device("other", "edge-gone2", "", "");
    std::fs::create_dir_all(other.state_dir()).expect("mkdir");
    for f in ["credential", "install-secret", "state.json", "host-id"] {
        std::fs::copy(d.file(f), other.file(f)).expect("copy state");
    }
    assert_eq!(other.run(&["checkin"]).0, 15, "first: deregister answer");
    let (code, _, err) = d.run(&["checkin"]);
    assert_eq!(code, 15, "410: {err}");
    assert_eq!(err, format!("outpost: POST {}/outpost/v1/checkin: deregistered by the server (HTTP 410): this device was deregistered by the operator\n", w.hub.url));
    let after = std::fs::read_to_string(d.file("state.json")).expect("state");
    assert_ne!(after.as_bytes(), before.as_slice(), "410 recorded");
    assert!(after.contains("\"deregistered\":true"), "{after}");
}

#[test]
fn refused_token_and_disabled_auto_register_are_exit_13() {
    let w = world("hub-401reg");
    let dir = w.scratch.path().join("bad");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let d = Device::new(
        &dir,
        &Setup {
            endpoint: &w.hub.url,
            token: Some("opt_0000000000000000000000000000000000000000000000000000000000000000"),
            host_id: "edge-badtoken",
            ca_pem: &w.pki.ca_cert,
            site: "",
            top: "",
        },
    );
    let (code, _, err) = d.run(&["checkin"]);
    assert_eq!(code, 13, "{err}");
    assert_eq!(err, format!("outpost: POST {}/outpost/v1/register: registration refused (HTTP 401): registration token unknown or revoked\n", w.hub.url));
    assert!(!d.file("credential").exists(), "no credential");

    let n = w.log().len();
    let m = w.device(
        "manual",
        "edge-manual",
        "    disableAutoRegister: true\n",
        "",
    );
    let (code, _, err) = m.run(&["checkin"]);
    assert_eq!(code, 13, "{err}");
    assert_eq!(err, "outpost: no device credential and stylus.site.disableAutoRegister is true: register this host by hand\n");
    assert_eq!(w.log().len(), n, "nothing sent: {:?}", w.log());
}

#[test]
fn local_mode_is_exit_6_and_contacts_nothing() {
    let w = world("hub-local");
    let d = w.device("dev", "edge-local", "", "  managementMode: local\n");
    for cmd in ["checkin", "run"] {
        let (code, out, err) = d.run(&[cmd]);
        assert_eq!(code, 6, "{cmd}: {out}{err}");
        assert_eq!(err, "outpost: stylus.managementMode is local (file): this host is managed locally and contacts no server; nothing to do\n", "{cmd}");
    }
    assert!(w.log().is_empty(), "nothing sent");
    assert!(!d.state_dir().exists(), "no state written");
}

#[test]
fn status_exit_codes() {
    let w = world("hub-status");
    let d = w.device(
        "dev",
        "edge-status",
        "",
        "outpost:\n  timeouts:\n    connect: 2\n    request: 5\n",
    );
    let (code, out, _) = d.run(&["status"]);
    assert_eq!(code, 7, "never checked in: {out}");
    assert!(out.starts_with("state        never checked in\n"), "{out}");
    let (code, out, _) = d.run(&["status", "--json"]);
    assert_eq!(
        (code, out.as_str()),
        (7, "null\n"),
        "json before any check-in"
    );
    assert_eq!(d.run(&["checkin"]).0, 0);
    assert_eq!(d.run(&["status"]).0, 0, "ok");
    // Two intervals (2 x 300 s) later without success: overdue.
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 601)
        .to_string();
    let (code, out, _) = super_run(d.cmd(&["status"]).env("OUTPOST_TEST_NOW", &later));
    assert_eq!(code, 7, "overdue: {out}");
    assert!(
        out.starts_with(
            "state              overdue: no successful check-in for 10 min (interval 5 min)\n"
        ),
        "{out}"
    );
    // The hub goes away: the check-in fails, status says so.
    let mut w = w;
    w.hub.stop();
    let (code, _, err) = d.run(&["checkin"]);
    assert_eq!(code, 10, "hub down: {err}");
    let (code, out, _) = d.run(&["status"]);
    assert_eq!(code, 1, "last failed: {out}");
    assert!(out.contains("failures in a row  1\n"), "{out}");
    let (code, out, _) = d.run(&["status", "--json"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("\"last_error\":{\"code\":10,\"message\":\"POST "),
        "{out}"
    );
    assert!(out.contains("\"consecutive_failures\":1"), "{out}");
}

fn super_run(c: &mut std::process::Command) -> (i32, String, String) {
    common::run(c)
}

#[test]
fn splay_sleeps_through_the_host_and_bad_values_are_usage_errors() {
    let w = world("hub-splay");
    let d = w.device("dev", "edge-splay", "", "");
    let (code, _, err) = super_run(
        d.cmd(&["checkin", "--splay", "30"])
            .env("OUTPOST_TEST_SKIP_SLEEP", "1"),
    );
    assert_eq!(code, 0, "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("outpost: test: sleep of "))
        .unwrap_or_else(|| panic!("splay sleep reported: {err}"));
    let ms: u64 = line
        .trim_start_matches("outpost: test: sleep of ")
        .trim_end_matches(" ms skipped")
        .parse()
        .expect("milliseconds");
    assert!(ms <= 30_000, "splay within 0..=30 s: {ms}");
    let (code, _, err) = d.run(&["checkin", "--splay", "-1"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn log_level_comes_from_the_config_and_v_q_adjust_it() {
    let w = world("hub-loglevel");
    let d = w.device("dev", "edge-log", "", "outpost:\n  logLevel: info\n");
    let (code, out, err) = d.run(&["checkin"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("INFO  [outpost::checkin] registering edge-log with "),
        "logLevel info: {err}"
    );
    assert!(
        out.starts_with("checked in to "),
        "info level prints the summary: {out}"
    );
    let (code, out, err) = d.run(&["-q", "checkin"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("", ""),
        "-q takes info back to warn"
    );
    let t = w.device("trace", "edge-trace", "", "  debug: true\n");
    let (code, _, err) = t.run(&["checkin"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("DEBUG "), "stylus.debug: {err}");
}
