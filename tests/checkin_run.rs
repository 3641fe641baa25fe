//! `outpost run` against the hub with a sub-second test interval: several
//! check-ins in the hub's request log, READY=1 (and STATUS=) on a fake
//! NOTIFY_SOCKET (and WATCHDOG=1 with WATCHDOG_USEC set), then SIGTERM ends it with exit 0 (hang guard 10 s). A
//! permanent failure ends the loop with its code. The agent runs through the
//! qemu runner when set (qemu passes SIGTERM on to it). Kept connections:
//! check-ins share connections (the hub's request log numbers them), and a
//! hub that closes kept connections at a short idle time causes no failed
//! check-in.

mod common;
use common::agent::{requests, Device, HubAndDevice, Setup};
use common::fault::Scratch;
use common::hub::Hub;
use common::tls::make_pki;
use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn run_checks_in_repeatedly_notifies_systemd_and_stops_on_sigterm() {
    let scratch = Scratch::new("run");
    let HubAndDevice { hub, device: d, .. } =
        HubAndDevice::start(scratch.path(), "edge-run", "0.3");
    let sock_path = scratch.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("fake NOTIFY_SOCKET");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut child = d
        .cmd(&["run"])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("OUTPOST_TEST_MIN_INTERVAL_MS", "100")
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning outpost run");
    let mut buf = [0u8; 512];
    let mut got = Vec::new();
    while !got.iter().any(|m: &String| m == "READY=1") {
        let n = sock.recv(&mut buf).expect("a notification within 30 s");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // Several check-ins (hang guard: 60 s).
    let t0 = Instant::now();
    loop {
        let n = requests(&hub.log_lines())
            .iter()
            .filter(|(p, s, _)| p == "/outpost/v1/checkin" && *s == 200)
            .count();
        if n >= 4 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "only {n} check-ins");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Drain what arrived meanwhile: STATUS= lines and watchdog pings.
    sock.set_nonblocking(true).expect("nonblocking");
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        got.iter().any(|m| m == "WATCHDOG=1"),
        "watchdog pinged: {got:?}"
    );
    let pid = child.id().to_string();
    let t1 = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success(), "kill -TERM");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t1.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("outpost run did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    assert_eq!(
        status.code(),
        Some(0),
        "exit 0 after SIGTERM: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        got.iter()
            .any(|m| m.starts_with("STATUS=checked in; next at ")),
        "STATUS sent: {got:?}"
    );
    let status_json = std::fs::read_to_string(d.file("status.json")).expect("status.json");
    assert!(
        status_json.contains("\"consecutive_failures\":0"),
        "{status_json}"
    );
}

#[test]
fn run_ends_with_a_permanent_code() {
    let scratch = Scratch::new("run-perm");
    let pki = make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let d = Device::new(
        scratch.path(),
        &Setup {
            endpoint: &hub.url,
            token: Some("opt_0000000000000000000000000000000000000000000000000000000000000000"),
            host_id: "edge-run-perm",
            ca_pem: &pki.ca_cert,
            site: "",
            top: "",
        },
    );
    let (code, _, err) = d.run(&["run"]);
    assert_eq!(code, 13, "refused token ends run: {err}");
    assert!(
        err.ends_with("registration refused (HTTP 401): registration token unknown or revoked\n"),
        "{err}"
    );
}

/// `outpost run` at a 0.3 s interval until `n` check-ins are logged (hang
/// guard 120 s), then SIGTERM; returns the request log's (path, status,
/// conn) and the agent's stderr.
fn run_until(hub_args: &[&str], name: &str, n: usize) -> (Vec<(String, u64, u64)>, String, String) {
    let scratch = Scratch::new(name);
    let HubAndDevice { hub, device: d, .. } =
        HubAndDevice::start_with(scratch.path(), name, "0.3", hub_args);
    let mut child = d
        .cmd(&["run"])
        .env("OUTPOST_TEST_MIN_INTERVAL_MS", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning outpost run");
    let t0 = Instant::now();
    let checkins = |lines: &[String]| {
        requests(lines)
            .iter()
            .filter(|(p, _, _)| p == "/outpost/v1/checkin")
            .count()
    };
    while checkins(&hub.log_lines()) < n {
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("only {} check-ins in 120 s", checkins(&hub.log_lines()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let log: Vec<(String, u64, u64)> = hub
        .log_lines()
        .iter()
        .zip(requests(&hub.log_lines()))
        .map(|(l, (p, s, _))| {
            let conn = l
                .split("\"conn\":")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            (p, s, conn)
        })
        .collect();
    let status = std::fs::read_to_string(d.file("status.json")).unwrap_or_default();
    (log, err, status)
}

#[test]
fn run_reuses_its_connection_across_checkins() {
    let (log, err, _) = run_until(&[], "edge-keep", 8);
    let checkins: Vec<_> = log
        .iter()
        .filter(|(p, _, _)| p == "/outpost/v1/checkin")
        .collect();
    assert!(checkins.iter().all(|(_, s, _)| *s == 200), "{log:?}\n{err}");
    let mut conns: Vec<u64> = checkins.iter().map(|(_, _, c)| *c).collect();
    conns.dedup();
    // Every 0.3 s, well inside both idle bounds (agent 4 s, hub 5 s): the
    // check-ins share connections (one, unless a 4 s stall on a loaded
    // machine made the agent let one go).
    assert!(
        conns.len() * 2 <= checkins.len(),
        "{} check-ins over {} connections: {log:?}",
        checkins.len(),
        conns.len()
    );
}

#[test]
fn the_hub_closing_kept_connections_fails_no_checkin() {
    // The hub lets a kept connection go after 0.3 s idle, about when the
    // next check-in comes: some are reused, some closed just before or as
    // the agent sends on them. None may fail. (Most closes are seen by
    // ureq's probe before reuse; the close *under* a request, which needs
    // the retry, is rare here: src/http/tests.rs provokes it every time.)
    let (log, err, status) = run_until(&["--keep-alive", "0.3"], "edge-idle", 20);
    let checkins: Vec<_> = log
        .iter()
        .filter(|(p, _, _)| p == "/outpost/v1/checkin")
        .collect();
    assert!(checkins.iter().all(|(_, s, _)| *s == 200), "{log:?}\n{err}");
    assert!(!err.contains("WARN"), "a check-in failed:\n{err}");
    assert!(status.contains("\"consecutive_failures\":0"), "{status}");
}
