//! The outpost protocol through a running `outpost-hub` over TLS (test CA
//! made with openssl), with a ureq client set up as the agent's will be:
//! register, check in, inventory, re-registration, duplicates,
//! deregistration, load shedding, restart, and bad input of every kind.

mod common;

use common::backend;
use common::hub::{client, get, hub_run, post, try_post, Hub, Reply};
use common::tls::{make_pki, TempDir, TestPki};
use outpost::proto::{
    self, CheckinRequest, CheckinResponse, ErrorBody, Health, Interface, Inventory, Probe,
    RegisterRequest, RegisterResponse, PATH_CHECKIN, PATH_PROBE, PATH_REGISTER,
};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Env {
    _dir: TempDir,
    pki: TestPki,
    hub: Hub,
    agent: ureq::Agent,
}

fn start(name: &str, extra: &[&str]) -> Env {
    let dir = TempDir::new(name);
    let pki = make_pki(dir.path());
    let hub = backend::start(dir.path(), Some(&pki), extra);
    let agent = client(Some(&pki.ca_cert));
    Env {
        _dir: dir,
        pki,
        hub,
        agent,
    }
}

fn inventory(cpus: u32) -> Inventory {
    Inventory {
        arch: "aarch64".into(),
        cpus,
        memory_bytes: 8_000_000_000,
        os: "Debian GNU/Linux 12 (bookworm)".into(),
        kernel: "6.1.0-40-arm64".into(),
        interfaces: vec![Interface {
            name: "eth0".into(),
            mac: "52:54:00:12:34:56".into(),
            addrs: vec!["192.0.2.10/24".into()],
        }],
        ..Default::default()
    }
}

fn register_req(token: &str, host: &str, secret: &str) -> RegisterRequest {
    let mut tags = BTreeMap::new();
    tags.insert("site".to_string(), "berlin-3".to_string());
    RegisterRequest {
        v: 1,
        token: token.into(),
        host_id: host.into(),
        install_secret: secret.into(),
        project: None,
        hostname: "edge-01".into(),
        tags,
        agent: "0.1.0".into(),
        inventory: inventory(4),
        inventory_hash: "sha256:inv-1".into(),
    }
}

fn checkin_req(host: &str, hash: &str, tag: &str) -> CheckinRequest {
    CheckinRequest {
        v: 1,
        host_id: host.into(),
        agent: "0.1.0".into(),
        health: Health {
            ok: true,
            failing: vec![],
        },
        inventory_hash: hash.into(),
        desired_tag: tag.into(),
        inventory: None,
        upgrade: None,
        config: None,
        boot: None,
        cluster: None,
    }
}

const SECRET_A: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const SECRET_B: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

impl Env {
    fn register(&self, req: &RegisterRequest) -> Reply {
        post(
            &self.agent,
            &self.hub.url,
            PATH_REGISTER,
            &proto::encode(req),
            None,
        )
    }

    fn register_ok(&self, req: &RegisterRequest) -> RegisterResponse {
        let r = self.register(req);
        assert_eq!(r.status, 200, "register: {}", r.body);
        proto::decode(&r.body).expect("register answer")
    }

    fn checkin(&self, cred: &str, req: &CheckinRequest) -> Reply {
        post(
            &self.agent,
            &self.hub.url,
            PATH_CHECKIN,
            &proto::encode(req),
            Some(cred),
        )
    }

    fn checkin_ok(&self, cred: &str, req: &CheckinRequest) -> CheckinResponse {
        let r = self.checkin(cred, req);
        assert_eq!(r.status, 200, "check-in: {}", r.body);
        proto::decode(&r.body).expect("check-in answer")
    }
}

fn error_of(r: &Reply) -> ErrorBody {
    proto::decode(&r.body).unwrap_or_else(|e| panic!("error body {}: {e}", r.body))
}

fn devices_json(hub: &Hub) -> miniserde::json::Value {
    let (code, out, err) = hub.cli(&["devices", "--json"]);
    assert_eq!(code, 0, "devices --json: {err}");
    miniserde::json::from_str(&out).expect("devices --json is JSON")
}

fn device_field(hub: &Hub, host: &str, field: &str) -> String {
    use miniserde::json::Value;
    let Value::Object(top) = devices_json(hub) else {
        panic!("devices: object")
    };
    let Some(Value::Array(list)) = top.get("devices") else {
        panic!("devices: list")
    };
    for d in list.iter() {
        let Value::Object(o) = d else { continue };
        if matches!(o.get("host_id"), Some(Value::String(h)) if h == host) {
            return match o.get(field) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => miniserde::json::to_string(v),
                None => panic!("device {host} has no field {field}"),
            };
        }
    }
    panic!("device {host} not listed")
}

#[test]
fn probe_register_checkin_and_inventory() {
    let env = start("roundtrip", &[]);
    let r = get(&env.agent, &env.hub.url, PATH_PROBE);
    assert_eq!(r.status, 200, "probe");
    let p: Probe = proto::decode(&r.body).expect("probe answer");
    assert_eq!(
        (p.protocol.as_str(), p.majors.as_slice()),
        ("outpost", &[1u32][..])
    );

    let token = env.hub.token(&["--project", "shops"]);
    let reg = env.register_ok(&register_req(&token, "edge-1", SECRET_A));
    assert!(!reg.rotated, "first registration is not a rotation");
    assert_eq!(reg.interval_ms, 300_000, "default interval");
    assert!(reg.phase_ms < reg.interval_ms, "phase within interval");
    assert!(reg.credential.starts_with("opc_"), "credential form");

    // Same inventory hash: nothing wanted; the desired state comes once.
    let a = env.checkin_ok(&reg.credential, &checkin_req("edge-1", "sha256:inv-1", ""));
    assert!(!a.inventory_wanted, "unchanged inventory not wanted");
    let desired = a.desired.expect("first check-in carries the desired state");
    assert!(
        !desired.deregister && desired.upgrade.is_none(),
        "{desired:?}"
    );
    let b = env.checkin_ok(
        &reg.credential,
        &checkin_req("edge-1", "sha256:inv-1", &a.desired_tag),
    );
    assert!(b.desired.is_none(), "unchanged desired state not resent");
    assert_eq!(b.desired_tag, a.desired_tag, "stable tag");

    // Hash changed without inventory: the hub asks for it; then it is sent.
    let c = env.checkin_ok(
        &reg.credential,
        &checkin_req("edge-1", "sha256:inv-2", &a.desired_tag),
    );
    assert!(c.inventory_wanted, "changed hash: inventory wanted");
    let mut with = checkin_req("edge-1", "sha256:inv-2", &a.desired_tag);
    with.inventory = Some(inventory(8));
    let d = env.checkin_ok(&reg.credential, &with);
    assert!(!d.inventory_wanted, "inventory received");
    assert_eq!(
        device_field(&env.hub, "edge-1", "cpus"),
        "8",
        "inventory stored"
    );
    assert_eq!(
        device_field(&env.hub, "edge-1", "project"),
        "shops",
        "token project"
    );
    assert_eq!(device_field(&env.hub, "edge-1", "mac"), "52:54:00:12:34:56");
    assert_eq!(device_field(&env.hub, "edge-1", "ip"), "192.0.2.10");
    assert_eq!(device_field(&env.hub, "edge-1", "status"), "Ready");
    assert_eq!(device_field(&env.hub, "edge-1", "health"), "Healthy");
    assert_eq!(device_field(&env.hub, "edge-1", "checkins"), "4");

    // Unhealthy report with failing check IDs.
    let mut sick = checkin_req("edge-1", "sha256:inv-2", &a.desired_tag);
    sick.health = Health {
        ok: false,
        failing: vec!["memory".into()],
    };
    env.checkin_ok(&reg.credential, &sick);
    assert_eq!(device_field(&env.hub, "edge-1", "health"), "Unhealthy");
    assert_eq!(device_field(&env.hub, "edge-1", "failing"), r#"["memory"]"#);

    // The steady-state request on the wire stays within 512 bytes.
    let steady = proto::encode(&checkin_req("edge-1", "sha256:inv-2", &a.desired_tag));
    assert!(
        steady.len() <= proto::STEADY_CHECKIN_MAX,
        "{} bytes",
        steady.len()
    );

    // Every request is in the log with method, path, status and sizes.
    let lines = env.hub.log_lines();
    assert_eq!(lines.len(), 7, "one log line per request: {lines:#?}");
    assert!(
        lines[0].contains(r#""method":"GET","path":"/outpost/v1/probe","status":200"#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#""path":"/outpost/v1/register","status":200"#),
        "{}",
        lines[1]
    );
    assert!(lines.iter().all(|l| l.contains(r#""bytes_in":"#)
        && l.contains(r#""bytes_out":"#)
        && l.contains(r#""ms":"#)));
    if !backend::is_pg() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&env.hub.db)
            .expect("db")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "database holds digests of secrets: 0600"
        );
    }
    let all = lines.join("\n");
    assert!(
        !all.contains(&token) && !all.contains(&reg.credential) && !all.contains(SECRET_A),
        "no secret in the log"
    );
}

#[test]
fn desired_state_labels_upgrade_config_interval() {
    let env = start("desired", &[]);
    let token = env.hub.token(&[]);
    let reg = env.register_ok(&register_req(&token, "edge-2", SECRET_A));
    let a = env.checkin_ok(&reg.credential, &checkin_req("edge-2", "sha256:inv-1", ""));
    let sha = "c".repeat(64);
    let cmds: Vec<Vec<String>> = vec![
        vec!["label".into(), "edge-2".into(), "cluster=shop-7".into()],
        vec![
            "offer-upgrade".into(),
            "--version".into(),
            "0.2.0".into(),
            "--min-version".into(),
            "0.1.5".into(),
            "--artifact".into(),
            format!("aarch64=https://hub.example/outpost-0.2.0-aarch64,{sha},812345"),
            "--artifact".into(),
            format!("x86_64=https://hub.example/outpost-0.2.0-x86_64,{sha},912345"),
        ],
        vec!["set-config".into(), "logLevel=debug".into()],
        vec![
            "set-interval".into(),
            "--device".into(),
            "edge-2".into(),
            "60".into(),
        ],
    ];
    for c in &cmds {
        let args: Vec<&str> = c.iter().map(String::as_str).collect();
        let (code, _, err) = env.hub.cli(&args);
        assert_eq!(code, 0, "{c:?}: {err}");
    }
    let b = env.checkin_ok(
        &reg.credential,
        &checkin_req("edge-2", "sha256:inv-1", &a.desired_tag),
    );
    assert_ne!(b.desired_tag, a.desired_tag, "tag changed");
    let d = b.desired.expect("changed desired state is sent");
    assert_eq!(d.labels.get("cluster").map(String::as_str), Some("shop-7"));
    let up = d.upgrade.expect("upgrade offer");
    assert_eq!(
        (up.version.as_str(), up.min_version.as_str()),
        ("0.2.0", "0.1.5")
    );
    assert_eq!(up.artifacts.len(), 2, "per-arch artifacts");
    assert_eq!(up.artifacts[0].size, 812_345);
    assert_eq!(d.config.get("logLevel").map(String::as_str), Some("debug"));
    assert_eq!(b.interval_ms, 60_000, "per-device interval");
    assert_eq!(device_field(&env.hub, "edge-2", "status"), "In-Use");

    // Sub-second intervals only in test mode; then three missed intervals
    // make the device Unhealthy.
    let (code, _, err) = env.hub.cli(&["set-interval", "0.1"]);
    assert_eq!((code, err.trim()), (2, "outpost-hub: set-interval 0.1: expected 1 (below only with --test-mode), to 604800 seconds"));
    let (code, _, err) = env.hub.cli(&["set-interval", "--test-mode", "0.1"]);
    assert_eq!(code, 0, "{err}");
    let c = env.checkin_ok(
        &reg.credential,
        &checkin_req("edge-2", "sha256:inv-1", &b.desired_tag),
    );
    assert_eq!(c.interval_ms, 100, "default now applies to all devices");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        device_field(&env.hub, "edge-2", "health"),
        "Unhealthy",
        "missed intervals"
    );
}

#[test]
fn reregistration_duplicate_and_deregistration() {
    let env = start("rereg", &[]);
    let token = env.hub.token(&[]);
    let first = env.register_ok(&register_req(&token, "edge-3", SECRET_A));

    // Lost credential, same machine: the credential rotates.
    let again = env.register_ok(&register_req(&token, "edge-3", SECRET_A));
    assert!(again.rotated, "same install secret rotates");
    assert_ne!(again.credential, first.credential, "new credential");
    let old = env.checkin(
        &first.credential,
        &checkin_req("edge-3", "sha256:inv-1", ""),
    );
    assert_eq!(
        (old.status, error_of(&old).error.as_str()),
        (401, "unknown_credential"),
        "old credential"
    );
    env.checkin_ok(
        &again.credential,
        &checkin_req("edge-3", "sha256:inv-1", ""),
    );

    // Another machine with the same host ID: 409, terminal.
    let dup = env.register(&register_req(&token, "edge-3", SECRET_B));
    assert_eq!(dup.status, 409, "duplicate: {}", dup.body);
    let e = error_of(&dup);
    assert_eq!(e.error, "duplicate_host");
    assert!(
        e.message.contains("delete the old record first"),
        "{}",
        e.message
    );
    assert_eq!(
        proto::outcome(proto::Endpoint::Register, dup.status),
        proto::Outcome::Exit(outpost::error::Code::DuplicateHost)
    );

    // Deregistration: delivered once in the desired state, then 410.
    let (code, _, err) = env.hub.cli(&["deregister", "edge-3"]);
    assert_eq!(code, 0, "{err}");
    let a = env.checkin_ok(
        &again.credential,
        &checkin_req("edge-3", "sha256:inv-1", "old-tag"),
    );
    assert!(
        a.desired.expect("desired").deregister,
        "deregister delivered"
    );
    let gone = env.checkin(
        &again.credential,
        &checkin_req("edge-3", "sha256:inv-1", &a.desired_tag),
    );
    assert_eq!(
        (gone.status, error_of(&gone).error.as_str()),
        (410, "deregistered")
    );
    assert_eq!(device_field(&env.hub, "edge-3", "status"), "Unpaired");

    // After `delete` the other machine may take the host ID.
    let (code, _, err) = env.hub.cli(&["delete", "edge-3"]);
    assert_eq!(code, 0, "{err}");
    let other = env.register_ok(&register_req(&token, "edge-3", SECRET_B));
    assert!(!other.rotated, "fresh record");
}

#[test]
fn tokens_expired_revoked_and_wrong_project() {
    let env = start("tokens", &[]);
    let short = env.hub.token(&["--expires", "1s"]);
    let good = env.hub.token(&["--project", "farms", "--expires", "never"]);
    let (code, list, _) = env.hub.cli(&["token", "list"]);
    assert_eq!(code, 0);
    assert_eq!(list.lines().count(), 3, "header and two tokens: {list}");
    assert!(
        !list.contains(&short) && !list.contains(&good),
        "list shows IDs, not tokens"
    );
    std::thread::sleep(Duration::from_millis(2100));
    let cases = [
        ("expired", short.clone(), None, 401, "token_expired"),
        (
            "unknown",
            "opt_nope".to_string(),
            None,
            401,
            "token_invalid",
        ),
        (
            "project mismatch",
            good.clone(),
            Some("shops"),
            401,
            "token_project_mismatch",
        ),
    ];
    for (name, tok, project, status, code) in cases {
        let mut r = register_req(&tok, "edge-4", SECRET_A);
        r.project = project.map(str::to_string);
        let rep = env.register(&r);
        assert_eq!(
            (rep.status, error_of(&rep).error.as_str()),
            (status, code),
            "case {name}"
        );
    }
    let id = list
        .lines()
        .find(|l| l.contains("farms"))
        .and_then(|l| l.split_whitespace().next())
        .expect("farms token ID")
        .to_string();
    let (code, _, err) = env.hub.cli(&["token", "revoke", &id]);
    assert_eq!(code, 0, "{err}");
    let rep = env.register(&register_req(&good, "edge-4", SECRET_A));
    assert_eq!(
        (rep.status, error_of(&rep).error.as_str()),
        (401, "token_invalid"),
        "revoked"
    );
    let (code, _, err) = env.hub.cli(&["token", "revoke", "000000000000"]);
    assert_eq!(
        (code, err.trim()),
        (
            2,
            "outpost-hub: token revoke: no token with ID 000000000000"
        )
    );
}

#[test]
fn over_max_rate_answers_429_with_retry_after() {
    let env = start("rate", &["--max-rate", "1"]);
    let t0 = Instant::now();
    let replies: Vec<Reply> = (0..12)
        .map(|_| env.register(&register_req("opt_nope", "h-rate", SECRET_A)))
        .collect();
    let secs = t0.elapsed().as_secs_f64();
    let served = replies.iter().filter(|r| r.status != 429).count();
    for r in replies.iter().filter(|r| r.status == 429) {
        let s: u64 = r
            .retry_after
            .as_deref()
            .and_then(|v| v.parse().ok())
            .expect("Retry-After seconds");
        assert!((1..=5).contains(&s), "Retry-After {s}");
        assert_eq!(error_of(r).error, "rate_limited");
    }
    // A burst of 1, then 1 per second: never more than that got through
    // (so some were turned away unless 12 requests took over 11 s).
    assert!(
        served >= 1 && served as f64 <= 1.0 + secs,
        "{served} served in {secs:.2} s"
    );
    // The probe is not limited.
    assert_eq!(get(&env.agent, &env.hub.url, PATH_PROBE).status, 200);
}

#[test]
fn shed_load_answers_retry_after() {
    let env = start("shed", &[]);
    let token = env.hub.token(&[]);
    let reg = env.register_ok(&register_req(&token, "edge-5", SECRET_A));
    let (code, _, err) = env.hub.cli(&["shed", "429", "--retry-after", "7"]);
    assert_eq!(code, 0, "{err}");
    let r = env.checkin(&reg.credential, &checkin_req("edge-5", "sha256:inv-1", ""));
    assert_eq!(
        (r.status, r.retry_after.as_deref()),
        (429, Some("7")),
        "429 with seconds"
    );
    assert_eq!(error_of(&r).error, "rate_limited");
    let r = env.register(&register_req(&token, "edge-6", SECRET_B));
    assert_eq!(r.status, 429, "register shed too");
    let p = get(&env.agent, &env.hub.url, PATH_PROBE);
    assert_eq!(p.status, 200, "probe is never shed");

    let (code, _, err) = env
        .hub
        .cli(&["shed", "503", "--retry-after", "30", "--http-date"]);
    assert_eq!(code, 0, "{err}");
    let r = env.checkin(&reg.credential, &checkin_req("edge-5", "sha256:inv-1", ""));
    assert_eq!(r.status, 503, "503");
    let ra = r.retry_after.expect("Retry-After on 503");
    let wait = outpost::schedule::parse_retry_after(&ra, std::time::SystemTime::now())
        .expect("HTTP-date Retry-After parses")
        .as_secs();
    assert!((25..=31).contains(&wait), "Retry-After {ra} is {wait} s");

    let (code, _, _) = env.hub.cli(&["shed", "off"]);
    assert_eq!(code, 0);
    env.checkin_ok(&reg.credential, &checkin_req("edge-5", "sha256:inv-1", ""));
}

#[test]
fn restart_keeps_the_registry() {
    let mut env = start("restart", &[]);
    let token = env.hub.token(&[]);
    let reg = env.register_ok(&register_req(&token, "edge-7", SECRET_A));
    env.checkin_ok(&reg.credential, &checkin_req("edge-7", "sha256:inv-1", ""));
    env.hub.stop();
    let dir = env._dir.path().to_path_buf();
    env.hub = backend::restart(&env.hub, &dir, Some(&env.pki), &[]);
    let a = env.checkin_ok(&reg.credential, &checkin_req("edge-7", "sha256:inv-1", ""));
    assert!(!a.inventory_wanted, "inventory hash survived");
    assert_eq!(
        device_field(&env.hub, "edge-7", "checkins"),
        "2",
        "counts survived"
    );
    let again = env.register_ok(&register_req(&token, "edge-7", SECRET_A));
    assert!(again.rotated, "install secret survived");
}

#[test]
fn bad_input_gets_clear_errors() {
    let env = start("badinput", &[]);
    let token = env.hub.token(&[]);
    let reg = env.register_ok(&register_req(&token, "edge-8", SECRET_A));
    let good_checkin = proto::encode(&checkin_req("edge-8", "sha256:inv-1", ""));
    let big = format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(proto::MAX_REQUEST_BODY + 1)
    );
    let short_secret = proto::encode(&register_req(&token, "edge-9", "short"));
    // (case, path, body, credential, status, message)
    type Case<'a> = (&'a str, &'a str, String, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "malformed JSON",
            PATH_CHECKIN,
            "{\"v\":1,".into(),
            Some(&reg.credential),
            400,
            "check-in request: malformed JSON",
        ),
        (
            "missing field",
            PATH_CHECKIN,
            good_checkin.replace(r#""agent":"0.1.0","#, ""),
            Some(&reg.credential),
            400,
            "check-in request: missing field `agent`",
        ),
        (
            "wrong type",
            PATH_CHECKIN,
            good_checkin.replace(r#""ok":true"#, r#""ok":1"#),
            Some(&reg.credential),
            400,
            "check-in request: field `health.ok` must be true or false, got a number",
        ),
        (
            "not an object",
            PATH_REGISTER,
            "[]".into(),
            None,
            400,
            "register request: expected a JSON object, got an array",
        ),
        (
            "short install secret",
            PATH_REGISTER,
            short_secret,
            None,
            400,
            "register request: field `install_secret` is shorter than 32 bytes",
        ),
        (
            "oversized body",
            PATH_CHECKIN,
            big,
            Some(&reg.credential),
            413,
            "request body too large",
        ),
        (
            "unknown credential",
            PATH_CHECKIN,
            good_checkin.clone(),
            Some("opc_unknown"),
            401,
            "credential unknown for this host ID; register again",
        ),
        (
            "no credential",
            PATH_CHECKIN,
            good_checkin.clone(),
            None,
            401,
            "missing Authorization: Bearer credential",
        ),
        (
            "wrong host for credential",
            PATH_CHECKIN,
            good_checkin.replace("edge-8", "edge-x"),
            Some(&reg.credential),
            401,
            "credential unknown for this host ID; register again",
        ),
        (
            "unknown path",
            "/outpost/v9/checkin",
            "{}".into(),
            None,
            404,
            "no such endpoint: /outpost/v9/checkin",
        ),
    ];
    for (name, path, body, bearer, status, message) in &cases {
        let r = try_post(&env.agent, &env.hub.url, path, body, *bearer)
            .unwrap_or_else(|e| panic!("case {name}: {e}"));
        assert_eq!(r.status, *status, "case {name}: {}", r.body);
        assert_eq!(error_of(&r).message, *message, "case {name}");
    }
    let r = get(&env.agent, &env.hub.url, PATH_CHECKIN);
    assert_eq!(r.status, 405, "GET on check-in");

    // Raw garbage over TLS gets 400, not a hang or a crash.
    let raw = raw_tls(&env, b"BLAH\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 400 "), "garbage: {raw}");
    let raw = raw_tls(
        &env,
        b"POST /outpost/v1/checkin HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 501 "), "chunked: {raw}");
    let raw = raw_tls(
        &env,
        b"POST /outpost/v1/checkin HTTP/1.1\r\nContent-Length: 9999999999\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 413 "), "huge length: {raw}");

    // Plain text to the TLS port: the handshake fails, the hub lives on.
    let mut s = TcpStream::connect(("127.0.0.1", env.hub.port())).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let _ = s.write_all(b"GET /outpost/v1/probe HTTP/1.1\r\n\r\n");
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);

    // Still serving, and the registry is intact.
    env.checkin_ok(&reg.credential, &checkin_req("edge-8", "sha256:inv-1", ""));
    assert_eq!(
        device_field(&env.hub, "edge-8", "checkins"),
        "1",
        "only the good check-in counted"
    );
    assert_integrity(&env.hub);
    let log = std::fs::read_to_string(&env.hub.stderr).unwrap_or_default();
    assert!(!log.contains("panicked"), "hub stderr: {log}");
}

/// Send raw bytes over TLS (ureq would refuse to send them) and return the
/// answer text.
fn raw_tls(env: &Env, bytes: &[u8]) -> String {
    let cfg = common::tls::client_config(&env.pki.ca_cert);
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(cfg, name).expect("tls client");
    let tcp = TcpStream::connect(("127.0.0.1", env.hub.port())).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(bytes).expect("send raw");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn assert_integrity(hub: &Hub) {
    backend::assert_integrity(hub);
}

#[test]
fn slow_clients_cannot_pin_the_workers() {
    // Two workers, a 1 s deadline; four clients that connect and dribble.
    let env = start("slowloris", &["--workers", "2", "--deadline", "1"]);
    let t0 = Instant::now();
    let mut slow: Vec<TcpStream> = (0..4)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", env.hub.port())).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            s
        })
        .collect();
    for s in &mut slow {
        let _ = s.write_all(&[0x16]); // first byte of a TLS record, then nothing
    }
    // A real client still gets through once the deadline frees a worker.
    let r = get(&env.agent, &env.hub.url, PATH_PROBE);
    assert_eq!(r.status, 200, "probe behind slow clients");
    for (i, s) in slow.iter_mut().enumerate() {
        let mut buf = Vec::new();
        let res = s.read_to_end(&mut buf);
        // Closed by the hub (EOF or reset), not by our 30 s hang guard.
        let hung = matches!(&res, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut);
        assert!(!hung, "slow client {i} was not cut off: {res:?}");
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "hang guard");
    let log = env.hub.log_lines();
    assert!(
        log.iter()
            .filter(|l| l.contains(r#""error":"closed""#) || l.contains(r#""status":408"#))
            .count()
            >= 4,
        "{log:#?}"
    );
}

#[test]
fn a_thousand_concurrent_connections() {
    let env = start("flood", &[]);
    let token = env.hub.token(&[]);
    let reg = env.register_ok(&register_req(&token, "edge-10", SECRET_A));
    let body = proto::encode(&checkin_req("edge-10", "sha256:inv-1", ""));
    let n = 1000;
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let agent = env.agent.clone();
            let url = env.hub.url.clone();
            let cred = reg.credential.clone();
            let body = body.clone();
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    if i % 2 == 0 {
                        try_post(&agent, &url, PATH_CHECKIN, &body, Some(&cred))
                            .map(|r| (true, r.status))
                    } else {
                        let r = agent.get(format!("{url}{PATH_PROBE}")).call();
                        r.map(|r| (false, r.status().as_u16()))
                            .map_err(|e| e.to_string())
                    }
                })
                .expect("spawn client thread")
        })
        .collect();
    let mut ok_checkins = 0;
    let mut other = Vec::new();
    for h in handles {
        match h.join().expect("client thread") {
            Ok((true, 200)) => ok_checkins += 1,
            Ok((false, 200)) => {}
            x => other.push(x),
        }
    }
    assert!(
        other.is_empty(),
        "{} requests failed: {:?}",
        other.len(),
        &other[..other.len().min(5)]
    );
    assert_eq!(ok_checkins, n / 2, "every check-in answered");
    assert_eq!(
        device_field(&env.hub, "edge-10", "checkins"),
        (n / 2).to_string(),
        "every check-in recorded once"
    );
    assert_integrity(&env.hub);
    assert_eq!(env.hub.log_lines().len(), n + 1, "every request logged");
}

#[test]
fn serve_refuses_unsafe_or_broken_setups() {
    let dir = TempDir::new("serve-args");
    let pki = make_pki(dir.path());
    let db = dir.path().join("hub.db");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let (cert, key, g) = (
        pki.server_cert.to_str().expect("utf8"),
        pki.server_key.to_str().expect("utf8"),
        garbage.to_str().expect("utf8"),
    );
    let cases: Vec<(&str, Vec<&str>, i32, String)> = vec![
        ("plain HTTP off loopback", vec!["serve", "--listen", "0.0.0.0:0", "--insecure-http"], 2,
         "outpost-hub: --insecure-http is allowed only on a loopback address, not 0.0.0.0".into()),
        ("no TLS, no flag", vec!["serve", "--listen", "127.0.0.1:0"], 2,
         "outpost-hub: serve: --tls-cert FILE and --tls-key FILE are required (or --insecure-http on loopback)".into()),
        ("bad listen", vec!["serve", "--listen", "localhost", "--insecure-http"], 2,
         "outpost-hub: --listen localhost: expected IP:PORT (e.g. 0.0.0.0:8443)".into()),
        ("garbage cert", vec!["serve", "--listen", "127.0.0.1:0", "--tls-cert", g, "--tls-key", key], 3,
         format!("outpost-hub: reading TLS certificate {g}: no PEM certificate found")),
        ("cert as key", vec!["serve", "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", cert], 3,
         format!("outpost-hub: reading TLS key {cert}: no PEM key found")),
        ("unknown command", vec!["serv"], 2, "outpost-hub: unknown command 'serv'; try 'outpost-hub --help'".into()),
    ];
    for (name, args, code, msg) in cases {
        let (got, _, err) = hub_run(&db, &args);
        assert_eq!((got, err.trim()), (code, msg.as_str()), "case {name}");
    }
}

/// `outpost-hub devices | head -1` must not panic: the hub's printing ends
/// quietly on a closed pipe. The pipe's read end is closed before the hub
/// starts (python3 sets it up), so every write of the hub meets EPIPE, and
/// a panicking `print!` would exit 101.
#[test]
fn printing_survives_a_closed_pipe() {
    let env = start("pipe", &[]);
    let token = env.hub.token(&[]);
    env.register_ok(&register_req(&token, "edge-pipe", SECRET_A));
    let hub = common::hub::hub_bin();
    let script = "import os, subprocess, sys\n\
                  r, w = os.pipe()\n\
                  os.close(r)\n\
                  p = subprocess.run(sys.argv[1:], stdout=w, stderr=subprocess.PIPE)\n\
                  sys.stderr.write(p.stderr.decode(errors='replace'))\n\
                  print(p.returncode)\n";
    for args in [
        &["devices"][..],
        &["devices", "--json"],
        &["--help"],
        &["token", "list"],
    ] {
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&hub)
            .arg("--db")
            .arg(&env.hub.db)
            .args(args)
            .envs(env.hub.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("python3");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "0",
            "{args:?}: exit status; stderr: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
