//! Unit tests of the transport (pure parts: routes, targets, PEM, TLS causes).

use super::*;

fn env(https: Option<&str>, all: Option<&str>, no: Option<&str>) -> ProxyEnv {
    let var = |name, v: Option<&str>| {
        v.map(|v| EnvVar {
            name,
            value: v.to_string(),
        })
    };
    ProxyEnv {
        https_proxy: var("HTTPS_PROXY", https),
        http_proxy: None,
        all_proxy: var("ALL_PROXY", all),
        no_proxy: var("NO_PROXY", no),
    }
}

#[test]
fn routes() {
    let p = |s: &str| Route::Proxy(ProxyUrl::parse(s).expect("proxy"));
    let settings_proxy = ProxyUrl::parse("http://cfg:3128").ok();
    // (settings proxy, settings noProxy, env, host, want)
    let cases: Vec<(Option<ProxyUrl>, &str, ProxyEnv, &str, Route)> = vec![
        (None, "", ProxyEnv::default(), "hub.example", Route::Direct),
        (
            None,
            "",
            env(Some("http://envp:1"), None, None),
            "hub.example",
            p("http://envp:1"),
        ),
        (
            None,
            "",
            env(None, Some("http://allp:2"), None),
            "hub.example",
            p("http://allp:2"),
        ),
        (
            None,
            "",
            env(Some("http://envp:1"), Some("http://allp:2"), None),
            "hub.example",
            p("http://envp:1"),
        ),
        (
            None,
            "",
            env(Some("http://envp:1"), None, Some("10.0.0.0/8")),
            "10.2.3.4",
            Route::Direct,
        ),
        (
            None,
            "hub.example",
            env(Some("http://envp:1"), None, Some("x.example")),
            "hub.example",
            Route::Direct,
        ),
        (
            None,
            "",
            env(Some("http://envp:1"), None, Some("x.example")),
            "hub.example",
            p("http://envp:1"),
        ),
        // The settings proxy wins, and only the settings noProxy counts then.
        (
            settings_proxy.clone(),
            "",
            env(Some("http://envp:1"), None, None),
            "hub.example",
            p("http://cfg:3128"),
        ),
        (
            settings_proxy.clone(),
            "",
            env(Some("http://envp:1"), None, Some("*")),
            "hub.example",
            p("http://cfg:3128"),
        ),
        (
            settings_proxy.clone(),
            "127.0.0.0/8",
            ProxyEnv::default(),
            "127.0.0.1",
            Route::Direct,
        ),
        (
            settings_proxy.clone(),
            ".example",
            ProxyEnv::default(),
            "hub.example",
            Route::Direct,
        ),
    ];
    for (i, (proxy, no, env, host, want)) in cases.into_iter().enumerate() {
        let s = HttpSettings {
            proxy,
            no_proxy: NoProxy::parse(no).expect("noProxy"),
            proxy_env: env,
            ..HttpSettings::default()
        };
        assert_eq!(
            route(&s, true, host, 443).expect("route"),
            want,
            "case {i} host {host}"
        );
    }
    let bad = HttpSettings {
        proxy_env: env(Some("socks5://u:pw@h:1"), None, None),
        ..HttpSettings::default()
    };
    let err = route(&bad, true, "h", 443).expect_err("bad env proxy");
    assert_eq!(err.code(), Code::Config);
    assert_eq!(
        err.message(),
        "HTTPS_PROXY: proxy URL socks5://****@h:1: scheme socks5:// is not supported; use http:// (outpost speaks to proxies over http with CONNECT)"
    );
}

#[test]
fn targets_are_named_without_secrets() {
    // (url, safe form or error)
    let cases: &[(&str, std::result::Result<&str, &str>)] = &[
        (
            "https://hub.example/v1/checkin",
            Ok("https://hub.example/v1/checkin"),
        ),
        (
            "https://user:pw@hub.example:8443/x?token=abc",
            Ok("https://hub.example:8443/x"),
        ),
        ("https://HUB.example", Ok("https://hub.example/")),
        ("https://[::1]:9/p", Ok("https://[::1]:9/p")),
        ("http://127.0.0.1:80/p", Ok("http://127.0.0.1:80/p")),
        ("ftp://hub.example/", Err("URL must start with https://")),
        ("hub.example/x", Err("URL must start with https://")),
        ("https://", Err("URL cannot be parsed")),
    ];
    for (url, want) in cases {
        let got = Target::parse(url).map(|t| t.safe);
        let got = got.as_ref().map(|s| s.as_str()).map_err(|e| e.as_str());
        assert_eq!(got, *want, "url {url:?}");
    }
    let loop_cases = [
        ("http://127.0.0.1:1/", true),
        ("http://127.9.9.9:1/", true),
        ("http://[::1]:1/", true),
        ("http://localhost:1/", true),
        ("http://10.0.0.1:1/", false),
        ("http://localhost.example:1/", false),
    ];
    for (url, want) in loop_cases {
        let t = Target::parse(url).expect(url);
        assert_eq!(t.is_loopback(), want, "loopback {url}");
    }
}

#[test]
fn plain_http_is_refused_unless_loopback_switch() {
    let s = HttpSettings {
        insecure_skip_verify: true,
        ..HttpSettings::default()
    };
    // (url, test switch on?) -- refused before any connection is made.
    let cases = [
        ("http://127.0.0.1:9/x", false),
        ("http://localhost:9/x", false),
        ("http://10.0.0.1:9/x", false),
        ("http://10.0.0.1:9/x", true),
        ("http://hub.example:9/x", true),
    ];
    for (url, switch) in cases {
        let settings = HttpSettings {
            allow_plain_loopback: switch,
            ..s.clone()
        };
        let c = Client::new(settings, None).expect("client");
        let err = c.get(url, &[]).expect_err(url);
        assert_eq!(err.code(), Code::Config, "{url} switch {switch}");
        assert_eq!(
            err.message(),
            format!("GET {url}: plain http:// is refused; use https://"),
            "{url} switch {switch}"
        );
    }
}

#[test]
fn tls_causes() {
    use rustls::CertificateError as C;
    let build = 1_790_000_000;
    let later = UNIX_EPOCH + Duration::from_secs(build + 86_400);
    let earlier = UNIX_EPOCH + Duration::from_secs(1_577_836_800); // 2020-01-01
    let cases: Vec<(C, SystemTime, Code, &str)> = vec![
        (C::UnknownIssuer, later, Code::Untrusted, "server certificate not trusted: unknown issuer (not signed by a trusted CA)"),
        (C::Expired, later, Code::Untrusted, "server certificate not trusted: certificate expired"),
        (C::NotValidYet, later, Code::Untrusted, "server certificate not trusted: certificate not yet valid"),
        (C::NotValidForName, later, Code::Untrusted, "server certificate not trusted: name mismatch (certificate not valid for this host)"),
        (C::NotValidYet, earlier, Code::Network, "server certificate not yet valid and the system clock (2020-01-01T00:00:00Z) is earlier than this agent's build (2026-09-21T14:13:20Z): clock not yet valid, set the clock (NTP) and retry"),
        // An expired certificate is not excused by a slow clock.
        (C::Expired, earlier, Code::Untrusted, "server certificate not trusted: certificate expired"),
    ];
    for (cause, now, code, msg) in cases {
        let label = format!("{cause:?}");
        let got = tls_cause(&rustls::Error::InvalidCertificate(cause), now, build);
        assert_eq!(got, (code, msg.to_string()), "{label}");
    }
    let other = tls_cause(&rustls::Error::HandshakeNotComplete, later, build);
    assert_eq!(
        other.0,
        Code::Network,
        "handshake failure is a network error"
    );
}

#[cfg(not(feature = "webpki-roots"))]
#[test]
fn no_roots_at_all_is_untrusted() {
    let err = Client::new(HttpSettings::default(), None)
        .err()
        .expect("no roots must fail");
    assert_eq!(err.code(), Code::Untrusted);
    assert!(
        err.message().starts_with("no trusted CA certificates: no system CA bundle found (/etc/ssl/certs/ca-certificates.crt, "),
        "{}",
        err.message()
    );
}

#[test]
fn system_bundle_is_found_under_the_root() {
    let dir = std::env::temp_dir().join(format!("outpost-http-ca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = Root::new(&dir);
    assert!(
        read_system_ca(&root).expect("empty root").is_none(),
        "empty root"
    );
    // Later paths are found; earlier ones win.
    for (i, p) in SYSTEM_CA_PATHS.iter().enumerate().rev() {
        let path = root.path(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, format!("bundle {i}")).expect("write");
        let got = read_system_ca(&root).expect("read").expect("found");
        assert_eq!(got.path, path, "{p}");
        assert_eq!(got.pem, format!("bundle {i}").as_bytes(), "{p}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pem_bundle_decoding() {
    // (PEM text, DER blocks, skipped blocks)
    let b = |s: &str| s.as_bytes().to_vec();
    let cases: Vec<(&str, Vec<Vec<u8>>, usize)> = vec![
        ("", vec![], 0),
        ("junk\nmore junk\n", vec![], 0),
        (
            "-----BEGIN CERTIFICATE-----\nTWFu\n-----END CERTIFICATE-----\n",
            vec![b("Man")],
            0,
        ),
        (
            "# comment\r\n-----BEGIN CERTIFICATE-----\r\nTW\r\nFuTW\r\nE=\r\n-----END CERTIFICATE-----\r\n",
            vec![b("ManMa")],
            0,
        ),
        (
            "-----BEGIN CERTIFICATE-----\nTQ==\n-----END CERTIFICATE-----\n\
             -----BEGIN PRIVATE KEY-----\nTWFu\n-----END PRIVATE KEY-----\n\
             -----BEGIN CERTIFICATE-----\nTWE\n-----END CERTIFICATE-----",
            vec![b("M"), b("Ma")],
            0,
        ),
        ("-----BEGIN CERTIFICATE-----\nTW!u\n-----END CERTIFICATE-----\n", vec![], 1),
        ("-----BEGIN CERTIFICATE-----\nTQ==TQ\n-----END CERTIFICATE-----\n", vec![], 1),
        ("-----BEGIN CERTIFICATE-----\nTR\n-----END CERTIFICATE-----\n", vec![], 1),
        ("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", vec![], 1),
        ("-----BEGIN CERTIFICATE-----\nTWFu\n", vec![], 1),
    ];
    for (pem, want, want_bad) in cases {
        let got = pem_certificates(pem.as_bytes());
        assert_eq!(got, (want, want_bad), "PEM {pem:?}");
    }
}

#[test]
fn pem_decoding_agrees_with_ureq_on_the_system_bundle() {
    // The reference decoder on real data, when this machine has a bundle.
    let Some(bundle) = read_system_ca(&Root::system()).expect("reading bundle") else {
        return;
    };
    let reference: Vec<Vec<u8>> = ureq::tls::parse_pem(&bundle.pem)
        .filter_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c.der().to_vec()),
            _ => None,
        })
        .collect();
    let (ours, bad) = pem_certificates(&bundle.pem);
    assert_eq!(bad, 0, "{}", bundle.path.display());
    assert!(
        ours == reference,
        "{}: decoders disagree",
        bundle.path.display()
    );
}

/// A test double of a server that keeps connections: on its first
/// connection it answers one request with keep-alive, then reads the next
/// request and closes without a byte of answer (as a server whose idle
/// timeout fires just as the request arrives); every later connection gets
/// an answer per request. Returns its port and the requests seen per
/// connection, in order.
fn closing_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<usize>>>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for (i, conn) in l.incoming().take(3).enumerate() {
            let Ok(mut c) = conn else { return };
            let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
            seen2.lock().expect("lock").push(0);
            loop {
                // One whole request: the head, then its 2-byte body
                // (every request here is POST "{}").
                let mut buf = vec![0u8; 4096];
                let mut got = 0;
                let complete = |b: &[u8]| {
                    b.windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .is_some_and(|i| b.len() >= i + 4 + 2)
                };
                while !complete(&buf[..got]) {
                    match c.read(&mut buf[got..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                if !complete(&buf[..got]) {
                    break;
                }
                let n = {
                    let mut s = seen2.lock().expect("lock");
                    let last = s.len() - 1;
                    s[last] += 1;
                    s[last]
                };
                if i == 0 && n == 2 {
                    break; // closed under the second request
                }
                let body = "{}";
                let _ = c.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        }
    });
    (port, seen)
}

#[test]
fn a_kept_connection_closed_under_a_request_is_retried_once_on_a_new_one() {
    let (port, seen) = closing_server();
    let c = Client::new(
        HttpSettings {
            allow_plain_loopback: true,
            insecure_skip_verify: true,
            ..HttpSettings::default()
        },
        None,
    )
    .expect("client");
    let url = format!("http://127.0.0.1:{port}/outpost/v1/checkin");
    for i in 0..3 {
        let r = c
            .post_json(&url, b"{}", &[])
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status, 200, "request {i}");
    }
    // First connection: one answered request and the one it dropped; the
    // retry and the next request on the second, kept, connection.
    assert_eq!(*seen.lock().expect("lock"), vec![2, 2]);
}

#[test]
fn a_new_connection_closed_under_a_request_is_not_retried() {
    use std::io::Read;
    // A server that reads the request and closes: the request failed on a
    // connection made for it, so the failure is the server's, reported.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let t = std::thread::spawn(move || {
        let mut n = 0;
        l.set_nonblocking(false).expect("blocking");
        if let Ok((mut c, _)) = l.accept() {
            n += 1;
            let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
        }
        // A second connection within 2 s would be a retry.
        l.set_nonblocking(true).expect("nonblocking");
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_secs(2) {
            if l.accept().is_ok() {
                n += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    });
    let c = Client::new(
        HttpSettings {
            allow_plain_loopback: true,
            insecure_skip_verify: true,
            ..HttpSettings::default()
        },
        None,
    )
    .expect("client");
    let err = c
        .post_json(&format!("http://127.0.0.1:{port}/x"), b"{}", &[])
        .expect_err("closed without an answer");
    assert_eq!(err.code(), Code::Network, "{err}");
    assert_eq!(t.join().expect("server"), 1, "no second connection");
}
