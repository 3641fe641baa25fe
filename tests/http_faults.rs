//! `outpost::http` against the fault server over TLS (and plain HTTP to
//! loopback with the test switch): every fault gives its exit code and its
//! exact one-line message. Runs in the test binary itself, so under qemu the
//! aarch64 rustls/ring code does the work; the server is native Python.

mod common;
use common::fault::{refused_port, tls_fixture, Blackhole, FaultServer, Scratch};
use common::tls::Ca;
use outpost::error::Code;
use outpost::http::{Client, HttpSettings, ProxyEnv};
use std::time::{Duration, Instant};

/// Generous hang guard: every request here is bounded by a 3 s timeout.
const HANG_GUARD: Duration = Duration::from_secs(30);

fn settings(ca: &Ca) -> HttpSettings {
    HttpSettings {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(3),
        extra_ca: outpost::config::CaCert::from_bytes(&ca.pem()).expect("test CA"),
        proxy_env: ProxyEnv::default(),
        ..HttpSettings::default()
    }
}

#[test]
fn echo_post_and_get_succeed_with_user_agent() {
    let f = tls_fixture("faults");
    let c = Client::new(settings(&f.ca), None).expect("client");
    let reply = c
        .post_json(
            &f.server.url("/ok"),
            br#"{"hello":"hub"}"#,
            &[("Authorization", "Bearer t0ken")],
        )
        .expect("POST /ok");
    assert_eq!(reply.status, 200);
    let want_ua = format!("\"user_agent\": \"outpost/{}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        reply.body.contains(&want_ua),
        "user agent echoed: {}",
        reply.body
    );
    assert!(
        reply.body.contains(r#""content_type": "application/json""#),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains(r#""body": "{\"hello\":\"hub\"}""#),
        "{}",
        reply.body
    );
    let reply = c.get(&f.server.url("/probe"), &[]).expect("GET /probe");
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains(r#""method": "GET""#), "{}", reply.body);
    let reply = c
        .get(&f.server.url("/status/404"), &[])
        .expect("404 is the protocol's business");
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (404, r#"{"error":"injected"}"#)
    );
}

#[test]
fn every_fault_has_its_code_and_message() {
    let f = tls_fixture("faults");
    let c = Client::new(settings(&f.ca), None).expect("client");
    let p = f.server.port;
    // (path, exit code, message after "POST https://127.0.0.1:PORT<path-without-query>: ")
    let cases: &[(&str, Code, String)] = &[
        ("/reset", Code::Network, "connection closed or reset before the answer was complete".into()),
        ("/stall", Code::Network, "no complete answer within 3 s (timeout)".into()),
        ("/trickle", Code::Network, "no complete answer within 3 s (timeout)".into()),
        ("/oversized", Code::BadAnswer, "response body larger than 65536 bytes".into()),
        ("/oversized?n=65537", Code::BadAnswer, "response body larger than 65536 bytes".into()),
        ("/oversized-chunked", Code::BadAnswer, "response body larger than 65536 bytes".into()),
        ("/invalid-utf8", Code::BadAnswer, "response body is not valid UTF-8".into()),
        ("/redirect/301", Code::BadAnswer, format!("unexpected redirect (HTTP 301 to https://127.0.0.1:{p}/ok); redirects are not followed")),
        ("/redirect/302", Code::BadAnswer, format!("unexpected redirect (HTTP 302 to https://127.0.0.1:{p}/ok); redirects are not followed")),
        ("/redirect/307", Code::BadAnswer, format!("unexpected redirect (HTTP 307 to https://127.0.0.1:{p}/ok); redirects are not followed")),
        ("/redirect/308", Code::BadAnswer, format!("unexpected redirect (HTTP 308 to https://127.0.0.1:{p}/ok); redirects are not followed")),
    ];
    for (path, code, msg) in cases {
        let t0 = Instant::now();
        let err = c
            .post_json(&f.server.url(path), b"{}", &[])
            .expect_err(path);
        assert!(t0.elapsed() < HANG_GUARD, "{path}: hang guard");
        let shown = path.split('?').next().unwrap_or(path);
        let want = format!("POST https://127.0.0.1:{p}{shown}: {msg}");
        assert_eq!(
            (err.code(), err.message()),
            (*code, want.as_str()),
            "fault {path}"
        );
    }
    // Any status but a redirect is an answer: what it means is decided by
    // the protocol's one table (proto::outcome), not by the transport.
    for (path, status) in [
        ("/status/500", 500),
        ("/status/502", 502),
        ("/status/503", 503),
        ("/429-delta", 429),
    ] {
        let reply = c
            .post_json(&f.server.url(path), b"{}", &[])
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(reply.status, status, "{path}");
    }
}

#[test]
fn retry_after_in_both_forms_reaches_the_caller() {
    let f = tls_fixture("faults");
    let c = Client::new(settings(&f.ca), None).expect("client");
    let reply = c
        .post_json(&f.server.url("/429-delta"), b"{}", &[])
        .expect("429 is an answer");
    assert_eq!(reply.status, 429);
    assert_eq!(reply.retry_after.as_deref(), Some("7"));
    let now = std::time::SystemTime::now();
    let d = outpost::schedule::parse_retry_after("7", now).expect("delta form");
    assert_eq!(d.as_secs(), 7);

    let reply = c
        .post_json(&f.server.url("/503-date"), b"{}", &[])
        .expect("503 is an answer");
    assert_eq!(reply.status, 503);
    let ra = reply.retry_after.clone().expect("503 carries Retry-After");
    assert!(ra.ends_with(" GMT"), "HTTP-date form: {ra}");
    // The server said now + 120 s; allow for slow machines (hang-guard scale).
    let d = outpost::schedule::parse_retry_after(&ra, now).expect("date form parses");
    assert!(
        (60..=121).contains(&d.as_secs()),
        "date form gives ~120 s: {d:?}"
    );
}

#[derive(miniserde::Deserialize, Debug)]
#[allow(dead_code)] // only the shape matters here
struct Answer {
    interval: u64,
    phase: String,
}

#[test]
fn json_bodies_are_checked_for_syntax_and_shape() {
    let f = tls_fixture("faults");
    let c = Client::new(settings(&f.ca), None).expect("client");
    let p = f.server.port;
    let cases: &[(&str, &str)] = &[
        ("/invalid-json", "response body is not valid JSON"),
        (
            "/wrong-types",
            "response JSON is not a valid check-in answer (wrong type or missing field)",
        ),
        (
            "/missing-fields",
            "response JSON is not a valid check-in answer (wrong type or missing field)",
        ),
    ];
    for (path, msg) in cases {
        let reply = c.post_json(&f.server.url(path), b"{}", &[]).expect(path);
        let err = reply.json::<Answer>("check-in answer").expect_err(path);
        assert_eq!(err.code(), Code::BadAnswer, "{path}");
        assert_eq!(
            err.message(),
            format!("POST https://127.0.0.1:{p}{path}: {msg}"),
            "{path}"
        );
    }
}

#[test]
fn refused_port_is_a_network_error() {
    let scratch = Scratch::new("refuse");
    let ca = Ca::new(&scratch, "main");
    let c = Client::new(settings(&ca), None).expect("client");
    let port = refused_port();
    let url = format!("https://127.0.0.1:{port}/v1/checkin");
    let err = c.post_json(&url, b"{}", &[]).expect_err("refused");
    assert_eq!(err.code(), Code::Network);
    assert_eq!(err.message(), format!("POST {url}: connection refused"));
}

#[test]
fn hanging_connect_hits_the_connect_timeout() {
    let scratch = Scratch::new("blackhole");
    let ca = Ca::new(&scratch, "main");
    let hole = Blackhole::start();
    let s = HttpSettings {
        connect_timeout: Duration::from_secs(1),
        ..settings(&ca)
    };
    let c = Client::new(s, None).expect("client");
    let url = format!("https://127.0.0.1:{}/v1/checkin", hole.port);
    let t0 = Instant::now();
    let err = c.post_json(&url, b"{}", &[]).expect_err("connect hangs");
    assert!(t0.elapsed() < HANG_GUARD, "hang guard");
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::Network,
            format!("POST {url}: connect timed out after 1 s").as_str()
        )
    );
}

#[test]
fn plain_http_only_to_loopback_with_the_switch() {
    let scratch = Scratch::new("plain");
    let ca = Ca::new(&scratch, "main");
    let server = FaultServer::plain();
    let url = server.url("/ok");
    let c = Client::new(settings(&ca), None).expect("client");
    let err = c
        .post_json(&url, b"{}", &[])
        .expect_err("plain http without switch");
    assert_eq!(err.code(), Code::Config);
    assert_eq!(
        err.message(),
        format!("POST {url}: plain http:// is refused; use https://")
    );
    assert!(
        server.requests().is_empty(),
        "nothing was sent: {:?}",
        server.requests()
    );

    let c = Client::new(
        HttpSettings {
            allow_plain_loopback: true,
            ..settings(&ca)
        },
        None,
    )
    .expect("client");
    let reply = c
        .post_json(&url, b"{}", &[])
        .expect("plain loopback with switch");
    assert_eq!(reply.status, 200);
    // The same faults without TLS in between.
    let cases: &[(&str, Code, &str)] = &[
        (
            "/oversized",
            Code::BadAnswer,
            "response body larger than 65536 bytes",
        ),
        (
            "/reset",
            Code::Network,
            "connection closed or reset before the answer was complete",
        ),
        (
            "/stall",
            Code::Network,
            "no complete answer within 3 s (timeout)",
        ),
    ];
    for (path, code, msg) in cases {
        let err = c.post_json(&server.url(path), b"{}", &[]).expect_err(path);
        let want = format!("POST {}: {msg}", server.url(path));
        assert_eq!(
            (err.code(), err.message()),
            (*code, want.as_str()),
            "plain {path}"
        );
    }
}

#[test]
fn credentials_never_appear_in_messages() {
    let f = tls_fixture("faults");
    let c = Client::new(settings(&f.ca), None).expect("client");
    let url = format!(
        "https://admin:hunter2@127.0.0.1:{}/status/500?token=s3cr3t",
        f.server.port
    );
    let reply = c
        .post_json(&url, b"{}", &[("Authorization", "Bearer sup3rs3cret")])
        .expect("500 is an answer");
    assert_eq!(reply.status, 500);
    assert_eq!(
        reply.what,
        format!("POST https://127.0.0.1:{}/status/500", f.server.port),
        "named without credentials or query"
    );
    // A header value that would split the request is refused, not sent.
    let url_ok = f.server.url("/ok");
    let err = c
        .post_json(
            &url_ok,
            b"{}",
            &[("Authorization", "Bearer x\r\nX-Injected: 1")],
        )
        .expect_err("header injection");
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::Config,
            format!("POST {url_ok}: request cannot be built (invalid URL or header value)")
                .as_str()
        )
    );
    assert!(
        f.server.requests().len() == 1,
        "only the 500 request reached the server"
    );
    for secret in ["admin", "hunter2", "s3cr3t", "sup3rs3cret"] {
        assert!(
            !reply.what.contains(secret),
            "{secret} leaked: {}",
            reply.what
        );
    }
}
