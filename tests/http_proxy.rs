//! Proxies in `outpost::http` with a real `tinyproxy` on loopback: HTTPS
//! through CONNECT (settings proxy and HTTPS_PROXY), the settings proxy
//! winning over the variables, `noProxy` bypass (CIDR, host, NO_PROXY) proven
//! by tinyproxy's log and by a dead proxy, dead proxy = exit 10, and proxy
//! credentials used but never shown.

mod common;
use common::fault::{refused_port, tls_fixture};
use common::proxy::Tinyproxy;
use common::tls::Ca;
use outpost::error::Code;
use outpost::http::{Client, HttpSettings, ProxyEnv, ProxyUrl};
use outpost::noproxy::NoProxy;
use std::time::Duration;

fn settings(ca: &Ca, proxy: Option<&str>, no_proxy: &str, env: ProxyEnv) -> HttpSettings {
    HttpSettings {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(3),
        extra_ca: outpost::config::CaCert::from_bytes(&ca.pem()).expect("test CA"),
        proxy: proxy.map(|p| ProxyUrl::parse(p).expect("proxy URL")),
        no_proxy: NoProxy::parse(no_proxy).expect("noProxy"),
        proxy_env: env,
        ..HttpSettings::default()
    }
}

fn env_https(proxy: &str, no_proxy: Option<&str>) -> ProxyEnv {
    vars(&[("HTTPS_PROXY", Some(proxy)), ("NO_PROXY", no_proxy)])
}

/// The standard variables as the one reader of them finds them.
fn vars(set: &[(&str, Option<&str>)]) -> ProxyEnv {
    ProxyEnv::from_lookup(&|k: &str| {
        set.iter()
            .find(|(n, _)| *n == k)
            .and_then(|(_, v)| v.map(String::from))
    })
}

#[test]
fn https_goes_through_tinyproxy_with_connect() {
    let f = tls_fixture("proxy");
    let tp = Tinyproxy::start(f.server.port, None);
    let url = f.server.url("/ok");
    // From the settings, and from HTTPS_PROXY when the settings have none.
    let cases = [
        (
            "settings proxy",
            settings(&f.ca, Some(&tp.url()), "", ProxyEnv::default()),
        ),
        (
            "HTTPS_PROXY",
            settings(&f.ca, None, "", env_https(&tp.url(), None)),
        ),
        (
            "ALL_PROXY",
            settings(&f.ca, None, "", vars(&[("ALL_PROXY", Some(&tp.url()))])),
        ),
    ];
    for (n, (label, s)) in cases.into_iter().enumerate() {
        let c = Client::new(s, None).expect("client");
        let r = c.post_json(&url, b"{}", &[]).expect(label);
        assert_eq!(r.status, 200, "{label}");
        assert_eq!(
            tp.connects_to(f.server.port),
            n + 1,
            "{label}: one more CONNECT in tinyproxy's log"
        );
    }
}

#[test]
fn settings_proxy_wins_over_the_variables() {
    let f = tls_fixture("proxy");
    let tp = Tinyproxy::start(f.server.port, None);
    let dead = format!("http://127.0.0.1:{}", refused_port());
    // The environment names a working proxy and even NO_PROXY=*; the dead
    // settings proxy is still the one used.
    let s = settings(&f.ca, Some(&dead), "", env_https(&tp.url(), Some("*")));
    let c = Client::new(s, None).expect("client");
    let url = f.server.url("/ok");
    let err = c
        .post_json(&url, b"{}", &[])
        .expect_err("dead settings proxy");
    assert_eq!(err.code(), Code::Network);
    assert_eq!(
        err.message(),
        format!("POST {url}: cannot connect to proxy {dead}: connection refused")
    );
    assert_eq!(
        tp.connects_to(f.server.port),
        0,
        "the env proxy was not used"
    );
}

#[test]
fn no_proxy_bypasses_by_cidr_host_and_variable() {
    let f = tls_fixture("proxy");
    let tp = Tinyproxy::start(f.server.port, None);
    let dead = format!("http://127.0.0.1:{}", refused_port());
    let url = f.server.url("/ok");
    // Each case would fail through the dead proxy, or leave a CONNECT in
    // tinyproxy's log, had the request not gone direct.
    let cases = [
        (
            "CIDR via dead proxy",
            settings(
                &f.ca,
                Some(&dead),
                "10.0.0.0/8, 127.0.0.0/8",
                ProxyEnv::default(),
            ),
        ),
        (
            "exact IP via dead proxy",
            settings(&f.ca, Some(&dead), "127.0.0.1", ProxyEnv::default()),
        ),
        (
            "CIDR with port via dead proxy",
            settings(
                &f.ca,
                Some(&dead),
                &format!("127.0.0.0/8:{}", f.server.port),
                ProxyEnv::default(),
            ),
        ),
        (
            "CIDR via tinyproxy",
            settings(&f.ca, Some(&tp.url()), "127.0.0.0/8", ProxyEnv::default()),
        ),
        (
            "NO_PROXY CIDR via HTTPS_PROXY",
            settings(
                &f.ca,
                None,
                "",
                env_https(&tp.url(), Some("192.168.0.0/16,127.0.0.0/8")),
            ),
        ),
        (
            "NO_PROXY via dead HTTPS_PROXY",
            settings(&f.ca, None, "", env_https(&dead, Some("127.0.0.0/8"))),
        ),
        (
            "settings noProxy with HTTPS_PROXY",
            settings(&f.ca, None, "127.0.0.0/8", env_https(&dead, None)),
        ),
    ];
    for (label, s) in cases {
        let c = Client::new(s, None).expect("client");
        let r = c
            .post_json(&url, b"{}", &[])
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(r.status, 200, "{label}");
        assert_eq!(
            tp.connects_to(f.server.port),
            0,
            "{label}: tinyproxy saw no CONNECT"
        );
    }
    // A port-specific entry for another port does not bypass.
    let s = settings(&f.ca, Some(&dead), "127.0.0.0/8:1", ProxyEnv::default());
    let err = Client::new(s, None)
        .expect("client")
        .post_json(&url, b"{}", &[])
        .expect_err("other port");
    assert_eq!(err.code(), Code::Network);
}

#[test]
fn dead_proxy_is_a_network_error() {
    let f = tls_fixture("proxy");
    let dead = format!("http://127.0.0.1:{}", refused_port());
    let c =
        Client::new(settings(&f.ca, Some(&dead), "", ProxyEnv::default()), None).expect("client");
    let url = f.server.url("/v1/checkin");
    let err = c.post_json(&url, b"{}", &[]).expect_err("dead proxy");
    assert_eq!(err.code(), Code::Network);
    assert_eq!(
        err.message(),
        format!("POST {url}: cannot connect to proxy {dead}: connection refused")
    );
}

#[test]
fn proxy_credentials_are_used_but_never_shown() {
    let f = tls_fixture("proxy");
    let tp = Tinyproxy::start(f.server.port, Some(("outpost", "pr0xyS3cret")));
    let url = f.server.url("/ok");
    let good = format!("http://outpost:pr0xyS3cret@127.0.0.1:{}", tp.port);
    let c =
        Client::new(settings(&f.ca, Some(&good), "", ProxyEnv::default()), None).expect("client");
    let r = c
        .post_json(&url, b"{}", &[])
        .expect("authenticated CONNECT");
    assert_eq!(r.status, 200);

    let wrong = format!("http://outpost:wr0ngS3cret@127.0.0.1:{}", tp.port);
    for (label, s) in [
        (
            "settings",
            settings(&f.ca, Some(&wrong), "", ProxyEnv::default()),
        ),
        (
            "HTTPS_PROXY",
            settings(&f.ca, None, "", env_https(&wrong, None)),
        ),
    ] {
        let c = Client::new(s, None).expect("client");
        let err = c
            .post_json(&url, b"{}", &[])
            .expect_err("wrong proxy password");
        assert_eq!(err.code(), Code::Network, "{label}");
        let m = &err.message();
        assert_eq!(
            m,
            &format!(
                "POST {url}: proxy http://127.0.0.1:{} refused CONNECT: HTTP 401 (proxy authentication failed)",
                tp.port
            ),
            "{label}"
        );
        assert!(
            !m.contains("wr0ngS3cret") && !m.contains("outpost:"),
            "{label}: credentials leaked: {m}"
        );
        assert!(
            !format!("{:?}", c.settings()).contains("wr0ngS3cret"),
            "{label}: Debug leaks"
        );
    }
}
