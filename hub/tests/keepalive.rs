//! Persistent connections (HTTP/1.1 keep-alive) of a running `outpost-hub`
//! over TLS, driven by a raw rustls client so every header and every close
//! is seen: requests counted per connection in the request log (`conn`),
//! `--keep-alive-max`, `--keep-alive` (idle close, 0 = off), HTTP/1.0 and
//! `Connection: close`, pipelined requests, a stalled request on a kept
//! connection, idle kept connections never starving a small pool, and TLS
//! session resumption on a new connection.

mod common;

use common::hub::Hub;
use common::tls::{make_pki, TempDir, TestPki};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

struct Env {
    _dir: TempDir,
    pki: TestPki,
    hub: Hub,
}

fn start(name: &str, extra: &[&str]) -> Env {
    let dir = TempDir::new(name);
    let pki = make_pki(dir.path());
    let hub = Hub::start(dir.path(), Some(&pki), extra);
    Env {
        _dir: dir,
        pki,
        hub,
    }
}

impl Env {
    /// A client config trusting the test CA (with rustls's in-memory
    /// session store, as the agent's).
    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        common::tls::client_config(&self.pki.ca_cert)
    }

    /// A new TLS connection to the hub (30 s read guard against hangs).
    fn connect(&self) -> Tls {
        self.connect_with(&self.client_config())
    }

    fn connect_with(&self, cfg: &Arc<rustls::ClientConfig>) -> Tls {
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let conn = rustls::ClientConnection::new(Arc::clone(cfg), name).expect("tls client");
        let tcp = TcpStream::connect(("127.0.0.1", self.hub.port())).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        rustls::StreamOwned::new(conn, tcp)
    }

    /// The request log once it has `n` lines (the hub writes a line just
    /// after its answer; hang guard 10 s).
    fn lines(&self, n: usize) -> Vec<String> {
        let t0 = Instant::now();
        loop {
            let l = self.hub.log_lines();
            if l.len() >= n || t0.elapsed() > Duration::from_secs(10) {
                return l;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `conn` numbers of the first `n` logged requests, in order.
    fn conns(&self, n: usize) -> Vec<u64> {
        self.lines(n)
            .iter()
            .filter_map(|l| {
                l.split("\"conn\":")
                    .nth(1)
                    .and_then(|r| r.split(',').next())
                    .and_then(|n| n.parse().ok())
            })
            .collect()
    }
}

const PROBE: &[u8] = b"GET /outpost/v1/probe HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// One answer read off `s`: its head (lines) and body, by Content-Length.
fn answer(s: &mut Tls) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => buf.push(b[0]),
            other => panic!(
                "answer cut after {:?}: {other:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let head = String::from_utf8(buf).expect("head is UTF-8");
    let len: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("body");
    (head, body)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// True when the hub closed `s` (EOF or reset), false when it stays open
/// until the read guard (30 s).
fn closed_by_hub(s: &mut Tls) -> bool {
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn requests_share_a_connection_up_to_the_bound() {
    let env = start("ka-max", &["--keep-alive-max", "3"]);
    let mut s = env.connect();
    let mut seen = Vec::new();
    for _ in 0..3 {
        s.write_all(PROBE).expect("send");
        let (head, _) = answer(&mut s);
        assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        seen.push((
            header(&head, "connection").map(str::to_string),
            header(&head, "keep-alive").map(str::to_string),
        ));
    }
    let keep = |max: u32| {
        (
            Some("keep-alive".to_string()),
            Some(format!("timeout=5, max={max}")),
        )
    };
    assert_eq!(
        seen,
        vec![keep(2), keep(1), (Some("close".to_string()), None)],
        "the third request is the last"
    );
    assert!(closed_by_hub(&mut s), "closed after the last one");
    assert_eq!(
        env.conns(3),
        vec![1, 1, 1],
        "three requests, one connection"
    );
}

#[test]
fn http10_and_connection_close_end_the_connection() {
    let env = start("ka-close", &[]);
    let cases: [(&str, &[u8]); 3] = [
        ("HTTP/1.0", b"GET /outpost/v1/probe HTTP/1.0\r\n\r\n"),
        (
            "HTTP/1.0 asking keep-alive",
            b"GET /outpost/v1/probe HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        ),
        (
            "Connection: close",
            b"GET /outpost/v1/probe HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n",
        ),
    ];
    for (name, req) in cases {
        let mut s = env.connect();
        s.write_all(req).expect("send");
        let (head, _) = answer(&mut s);
        assert_eq!(header(&head, "connection"), Some("close"), "{name}: {head}");
        assert!(closed_by_hub(&mut s), "{name}: closed");
    }
    assert_eq!(env.conns(3), vec![1, 2, 3]);
}

#[test]
fn keep_alive_zero_is_one_request_per_connection() {
    let env = start("ka-off", &["--keep-alive", "0"]);
    let mut s = env.connect();
    s.write_all(PROBE).expect("send");
    let (head, _) = answer(&mut s);
    assert_eq!(header(&head, "connection"), Some("close"), "{head}");
    assert_eq!(header(&head, "keep-alive"), None, "{head}");
    assert!(closed_by_hub(&mut s), "closed");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let env = start("ka-pipe", &[]);
    let mut s = env.connect();
    // A probe, a 404 and a POST with a body, in one write.
    let post = b"POST /outpost/v1/register HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
    let mut all = PROBE.to_vec();
    all.extend_from_slice(b"GET /nowhere HTTP/1.1\r\n\r\n");
    all.extend_from_slice(post);
    s.write_all(&all).expect("send");
    let statuses: Vec<String> = (0..3)
        .map(|_| answer(&mut s).0.lines().next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        statuses,
        vec![
            "HTTP/1.1 200 OK",
            "HTTP/1.1 404 Not Found",
            "HTTP/1.1 400 Bad Request"
        ]
    );
    assert_eq!(env.conns(3), vec![1, 1, 1]);
}

#[test]
fn the_idle_timeout_closes_a_kept_connection_quietly() {
    let env = start("ka-idle", &["--workers", "1", "--keep-alive", "0.3"]);
    let mut s = env.connect();
    s.write_all(PROBE).expect("send");
    let (head, _) = answer(&mut s);
    // Whole seconds, rounded down: never more than the hub keeps.
    assert_eq!(header(&head, "keep-alive"), Some("timeout=0, max=99"));
    assert!(closed_by_hub(&mut s), "idle connection closed");
    // The one worker is free again.
    let mut t = env.connect();
    t.write_all(PROBE).expect("send");
    assert!(answer(&mut t).0.starts_with("HTTP/1.1 200 "));
    // The idle close is no request: two lines, both answered.
    let log = env.lines(2);
    assert_eq!(log.len(), 2, "{log:#?}");
    assert!(
        log.iter().all(|l| l.contains(r#""status":200"#)),
        "{log:#?}"
    );
}

#[test]
fn a_stalled_request_on_a_kept_connection_gets_408() {
    let env = start("ka-stall", &["--deadline", "1", "--keep-alive", "60"]);
    let mut s = env.connect();
    s.write_all(PROBE).expect("send");
    answer(&mut s);
    // Half a head, then nothing: the request's own deadline applies.
    s.write_all(b"GET /outpost/v1/pro").expect("send");
    let (head, _) = answer(&mut s);
    assert!(head.starts_with("HTTP/1.1 408 "), "{head}");
    assert_eq!(header(&head, "connection"), Some("close"), "{head}");
    assert!(closed_by_hub(&mut s), "closed after the 408");
}

#[test]
fn idle_kept_connections_do_not_starve_a_small_pool() {
    // Two workers, connections kept for up to 60 s. Two clients take both
    // workers and sit idle on their kept connections; two more come one
    // after the other and sit idle too. Each newcomer must be served long
    // before 60 s (the read guard is 30 s): a worker lets its idle client
    // go for it. At the end the hub holds at most two (one per worker).
    let env = start("ka-starve", &["--workers", "2", "--keep-alive", "60"]);
    let t0 = Instant::now();
    let mut held: Vec<Tls> = (0..4)
        .map(|i| {
            let mut s = env.connect();
            s.write_all(PROBE).expect("send");
            let (head, _) = answer(&mut s);
            assert!(head.starts_with("HTTP/1.1 200 "), "client {i}: {head}");
            s
        })
        .collect();
    assert!(t0.elapsed() < Duration::from_secs(30), "hang guard");
    // An open connection shows as a read that times out (3 s here).
    let mut closed = 0;
    for s in &mut held {
        s.sock
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        if closed_by_hub(s) {
            closed += 1;
        }
    }
    assert_eq!(closed, 2, "two idle clients let go, two kept");
    assert_eq!(env.lines(4).len(), 4, "every request logged once");
}

#[test]
fn bad_keep_alive_flags_are_usage_errors() {
    let dir = TempDir::new("ka-flags");
    let db = dir.path().join("hub.db");
    let cases = [
        (
            "--keep-alive",
            "301",
            "outpost-hub: --keep-alive 301: expected 0 (off) or 0.01 to 300 seconds",
        ),
        (
            "--keep-alive",
            "-1",
            "outpost-hub: --keep-alive -1: expected 0 (off) or 0.01 to 300 seconds",
        ),
        (
            "--keep-alive-max",
            "0",
            "outpost-hub: --keep-alive-max 0: expected requests per connection, 1 to 1000000",
        ),
    ];
    for (flag, value, msg) in cases {
        let (code, _, err) = common::hub::hub_run(
            &db,
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--insecure-http",
                flag,
                value,
            ],
        );
        assert_eq!((code, err.trim()), (2, msg), "{flag} {value}");
    }
}

#[test]
fn a_new_connection_resumes_the_tls_session() {
    // The agent keeps one rustls ClientConfig (and its session store) for
    // the life of `run`; a connection made after the hub closed the last
    // one resumes, TLS 1.3 with a session ticket, no certificate sent.
    let env = start("ka-resume", &["--keep-alive", "0"]);
    let cfg = env.client_config();
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let mut s = env.connect_with(&cfg);
        s.write_all(PROBE).expect("send");
        assert!(answer(&mut s).0.starts_with("HTTP/1.1 200 "));
        kinds.push((s.conn.handshake_kind(), s.conn.protocol_version()));
        assert!(closed_by_hub(&mut s), "closed (keep-alive off)");
    }
    use rustls::{HandshakeKind::*, ProtocolVersion::TLSv1_3};
    assert_eq!(
        kinds,
        vec![
            (Some(Full), Some(TLSv1_3)),
            (Some(Resumed), Some(TLSv1_3)),
            (Some(Resumed), Some(TLSv1_3))
        ]
    );
}

#[test]
fn resumption_holds_for_a_fleet_larger_than_a_session_cache() {
    // 200 devices, each with its own session store, connect twice: every
    // second connection resumes. (rustls's default server-side cache holds
    // 256 sessions, two per full handshake: it would lose most of them.)
    let env = start("ka-fleet", &["--keep-alive", "0"]);
    let configs: Vec<_> = (0..200).map(|_| env.client_config()).collect();
    let mut resumed = 0;
    for round in 0..2 {
        for cfg in &configs {
            let mut s = env.connect_with(cfg);
            s.write_all(PROBE).expect("send");
            assert!(answer(&mut s).0.starts_with("HTTP/1.1 200 "));
            if round == 1 && s.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                resumed += 1;
            }
        }
    }
    assert_eq!(resumed, configs.len(), "every device resumed");
}

#[test]
fn answers_with_retry_after_close_the_connection() {
    // A shedding hub sends clients away for longer than it keeps a
    // connection: it frees the worker at once. The probe is never shed.
    let env = start("ka-shed", &[]);
    let (code, _, err) = env.hub.cli(&["shed", "503", "--retry-after", "30"]);
    assert_eq!(code, 0, "shed: {err}");
    let mut s = env.connect();
    s.write_all(PROBE).expect("send");
    let (head, _) = answer(&mut s);
    assert_eq!(header(&head, "connection"), Some("keep-alive"), "{head}");
    s.write_all(b"POST /outpost/v1/checkin HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        .expect("send");
    let (head, _) = answer(&mut s);
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert_eq!(header(&head, "retry-after"), Some("30"), "{head}");
    assert_eq!(header(&head, "connection"), Some("close"), "{head}");
    assert!(closed_by_hub(&mut s), "closed");
    assert_eq!(env.conns(2), vec![1, 1]);
}
