//! `outpost checkin` against every mode of the fault server (and bad TLS
//! certificates, a refused port, a connect that hangs): each gives its exit
//! code and its exact one-line error, records the failure in status.json,
//! and leaves the credential, the install secret, host-id and state.json
//! byte-identical. The server is native Python; the agent runs through the
//! qemu runner when set.

mod common;
use common::agent::{Device, Setup};
use common::fault::{refused_port, Blackhole, FaultServer, Scratch};
use common::tls::{Ca, Leaf, FUTURE, LOOPBACK_SAN, PAST};
use std::time::{Duration, Instant};

const HOST: &str = "edge-faults";
const TIMEOUTS: &str = "outpost:\n  timeouts:\n    connect: 2\n    request: 3\n";
/// Hang guard per run: every request is bounded by 3 s.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn device(dir: &std::path::Path, endpoint: &str, ca: &Ca) -> Device {
    std::fs::create_dir_all(dir).expect("mkdir");
    let d = Device::new(
        dir,
        &Setup {
            endpoint,
            token: Some("opt_faults"),
            host_id: HOST,
            ca_pem: &ca.cert,
            site: "",
            top: TIMEOUTS,
        },
    );
    d.seed(HOST);
    d
}

/// Run one check-in; assert code, exact error, untouched state; return status.json.
fn expect_fault(d: &Device, code: i32, error: &str, label: &str) -> String {
    let before = d.snapshot();
    assert!(before.len() >= 4, "{label}: seeded state: {before:?}");
    let t0 = Instant::now();
    let (got, out, err) = d.run(&["checkin"]);
    assert!(t0.elapsed() < HANG_GUARD, "{label}: hang guard");
    assert_eq!(got, code, "{label}: exit code; stderr {err}");
    assert_eq!(err, format!("outpost: {error}\n"), "{label}: error line");
    assert_eq!(out, "", "{label}: nothing on stdout");
    assert_eq!(d.snapshot(), before, "{label}: state files byte-identical");
    let status = std::fs::read_to_string(d.file("status.json")).expect("status.json");
    assert!(
        status.contains(&format!("\"last_error\":{{\"code\":{code},")),
        "{label}: status.json records the error: {status}"
    );
    status
}

#[test]
fn every_fault_mode_keeps_state_and_says_what_went_wrong() {
    let scratch = Scratch::new("checkin-faults");
    let ca = Ca::new(&scratch, "main");
    let server = FaultServer::tls(&ca.good());
    let p = server.port;
    let url = |mode: &str| format!("POST https://127.0.0.1:{p}{mode}/outpost/v1/checkin");
    let cases: Vec<(&str, i32, String)> = vec![
        ("/reset", 10, format!("{}: connection closed or reset before the answer was complete", url("/reset"))),
        ("/stall", 10, format!("{}: no complete answer within 3 s (timeout)", url("/stall"))),
        ("/trickle", 10, format!("{}: no complete answer within 3 s (timeout)", url("/trickle"))),
        ("/oversized", 12, format!("{}: response body larger than 65536 bytes", url("/oversized"))),
        ("/oversized-chunked", 12, format!("{}: response body larger than 65536 bytes", url("/oversized-chunked"))),
        ("/invalid-utf8", 12, format!("{}: response body is not valid UTF-8", url("/invalid-utf8"))),
        ("/invalid-json", 12, format!("{}: check-in answer: malformed JSON", url("/invalid-json"))),
        ("/wrong-types", 12, format!("{}: check-in answer: missing field `v`", url("/wrong-types"))),
        ("/missing-fields", 12, format!("{}: check-in answer: missing field `v`", url("/missing-fields"))),
        ("/ok", 12, format!("{}: check-in answer: missing field `v`", url("/ok"))),
        ("/status/500", 11, format!("{}: server error: HTTP 500", url("/status/500"))),
        ("/status/502", 11, format!("{}: server error: HTTP 502", url("/status/502"))),
        ("/status/503", 11, format!("{}: server busy: HTTP 503", url("/status/503"))),
        ("/status/404", 12, format!("{}: unexpected answer (HTTP 404)", url("/status/404"))),
        ("/status/400", 12, format!("{}: unexpected answer (HTTP 400)", url("/status/400"))),
        ("/status/409", 14, format!("{}: duplicate host ID (HTTP 409)", url("/status/409"))),
        ("/redirect/302", 12, format!("{}: unexpected redirect (HTTP 302 to https://127.0.0.1:{p}/ok); redirects are not followed", url("/redirect/302"))),
        ("/redirect/308", 12, format!("{}: unexpected redirect (HTTP 308 to https://127.0.0.1:{p}/ok); redirects are not followed", url("/redirect/308"))),
    ];
    for (mode, code, error) in cases {
        let d = device(
            &scratch.path().join(mode.replace('/', "_")),
            &format!("https://127.0.0.1:{p}{mode}"),
            &ca,
        );
        expect_fault(&d, code, &error, mode);
    }
}

/// Unix seconds of an RFC 3339 `next_due` in status.json.
fn next_due(status: &str) -> u64 {
    let v = status
        .split("\"next_due\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("next_due");
    outpost::timefmt::parse_rfc3339(v).expect("RFC 3339")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[test]
fn retry_after_in_both_forms_becomes_next_due() {
    let scratch = Scratch::new("checkin-retry-after");
    let ca = Ca::new(&scratch, "main");
    let server = FaultServer::tls(&ca.good());
    let p = server.port;
    let d = device(
        &scratch.path().join("a"),
        &format!("https://127.0.0.1:{p}/429-delta"),
        &ca,
    );
    let t = now();
    let status = expect_fault(&d, 11, &format!("POST https://127.0.0.1:{p}/429-delta/outpost/v1/checkin: server busy: HTTP 429 (Retry-After: 7)"), "429");
    let due = next_due(&status);
    // Retry-After is a floor under the backoff (schedule.rs): the later of
    // 7 s plus up to max(1 s, 7/4 s) of jitter and the first failure's
    // full-jitter draw within 10 s (the seeded device knows its 60 s
    // interval), so 7 to 10 s; next_due is rounded up to the second.
    assert!(
        due >= t + 7 && due <= now() + 11,
        "429: next_due {due} vs now {t}"
    );

    let d = device(
        &scratch.path().join("b"),
        &format!("https://127.0.0.1:{p}/503-date"),
        &ca,
    );
    let t = now();
    let (code, _, err) = d.run(&["checkin"]);
    assert_eq!(code, 11, "{err}");
    assert!(err.starts_with(&format!("outpost: POST https://127.0.0.1:{p}/503-date/outpost/v1/checkin: server busy: HTTP 503 (Retry-After: ")), "{err}");
    let status = std::fs::read_to_string(d.file("status.json")).expect("status");
    let due = next_due(&status);
    // 120 s ahead (date to the second) plus up to 30 s jitter.
    assert!(
        due >= t + 118 && due <= now() + 152,
        "503: next_due {due} vs now {t}"
    );
    assert!(status.contains("\"consecutive_failures\":1"), "{status}");
}

/// A device that has failed for long (here 12 times in a row) and knows its
/// schedule (the seeded state: 60 s interval, phase 0) retries at its own
/// slot, the next whole minute, not at a random point of a 15-minute
/// backoff (docs/checkin.md, "As a service").
#[test]
fn a_long_failure_retries_at_the_slot_within_the_interval() {
    let scratch = Scratch::new("checkin-slot-retry");
    let ca = Ca::new(&scratch, "main");
    let port = refused_port();
    let base = format!("https://127.0.0.1:{port}");
    let d = device(&scratch.path().join("dev"), &base, &ca);
    std::fs::write(
        d.file("status.json"),
        format!(
            "{{\"schema\":\"outpost.status/v1\",\"host_id\":\"{HOST}\",\"agent_version\":\"0.1.0\",\"last_attempt\":null,\"last_success\":null,\"last_error\":null,\"consecutive_failures\":12,\"interval_s\":60,\"next_due\":null}}\n"
        ),
    )
    .expect("status.json");
    let t = now();
    let (code, _, err) = d.run(&["checkin"]);
    assert_eq!(code, 10, "{err}");
    let status = std::fs::read_to_string(d.file("status.json")).expect("status");
    assert!(status.contains("\"consecutive_failures\":13"), "{status}");
    let due = next_due(&status);
    assert_eq!(due % 60, 0, "at the slot (phase 0 of 60 s): {status}");
    assert!(
        due > t && due <= now() + 60,
        "within the interval: {due} vs {t}"
    );
}

#[test]
fn bad_certificates_refused_ports_and_hanging_connects() {
    let scratch = Scratch::new("checkin-tls");
    let ca = Ca::new(&scratch, "main");
    let other = Ca::new(&scratch, "other");
    let leaves: Vec<(&str, Leaf, i32, &str)> = vec![
        (
            "wrong CA",
            other.good(),
            16,
            "server certificate not trusted: unknown issuer (not signed by a trusted CA)",
        ),
        (
            "expired",
            ca.leaf("expired", LOOPBACK_SAN, PAST, "20210101000000Z"),
            16,
            "server certificate not trusted: certificate expired",
        ),
        (
            "not yet valid",
            ca.leaf("future", LOOPBACK_SAN, "20980101000000Z", FUTURE),
            16,
            "server certificate not trusted: certificate not yet valid",
        ),
        (
            "wrong name",
            ca.leaf("othername", "DNS:hub.example.com", PAST, FUTURE),
            16,
            "server certificate not trusted: name mismatch (certificate not valid for this host)",
        ),
    ];
    for (label, leaf, code, cause) in leaves {
        let server = FaultServer::tls(&leaf);
        let base = format!("https://127.0.0.1:{}", server.port);
        let d = device(&scratch.path().join(label.replace(' ', "-")), &base, &ca);
        expect_fault(
            &d,
            code,
            &format!("POST {base}/outpost/v1/checkin: {cause}"),
            label,
        );
    }
    let port = refused_port();
    let base = format!("https://127.0.0.1:{port}");
    let d = device(&scratch.path().join("refused"), &base, &ca);
    expect_fault(
        &d,
        10,
        &format!("POST {base}/outpost/v1/checkin: connection refused"),
        "refused",
    );
    let hole = Blackhole::start();
    let base = format!("https://127.0.0.1:{}", hole.port);
    let d = device(&scratch.path().join("blackhole"), &base, &ca);
    expect_fault(
        &d,
        10,
        &format!("POST {base}/outpost/v1/checkin: connect timed out after 2 s"),
        "blackhole",
    );
}

#[test]
fn a_second_concurrent_checkin_exits_5_at_once() {
    let scratch = Scratch::new("checkin-lock");
    let ca = Ca::new(&scratch, "main");
    let server = FaultServer::tls(&ca.good());
    let d = device(
        &scratch.path().join("dev"),
        &format!("https://127.0.0.1:{}/stall", server.port),
        &ca,
    );
    let mut first = d
        .cmd(&["checkin"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("first checkin");
    // Wait until the first holds the lock: the fault server logs its request.
    let t0 = Instant::now();
    while !server.requests().iter().any(|r| r.contains("/stall")) {
        assert!(
            t0.elapsed() < HANG_GUARD,
            "first checkin never reached the server"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, out, err) = d.run(&["checkin"]);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(code, 5, "second run: {out}{err}");
    assert!(
        err.starts_with("outpost: another outpost is checking in (lock ")
            && err.ends_with("/var/lib/outpost/lock is held); nothing to do\n"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1, "the second run sent nothing");
}
