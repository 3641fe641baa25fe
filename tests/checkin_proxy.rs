//! `outpost checkin` through Debian's tinyproxy (started and stopped here,
//! loopback only): HTTPS via CONNECT with the proxy from the config (with
//! basic auth whose password never shows up, even at -vvv), the config's
//! proxy winning over HTTPS_PROXY, noProxy bypass by CIDR, and a dead proxy
//! (exit 10, state untouched).

mod common;
use common::agent::{Device, Setup};
use common::fault::{refused_port, Scratch};
use common::hub::Hub;
use common::proxy::Tinyproxy;
use common::tls::{make_pki, TestPki};

fn device(dir: &std::path::Path, hub: &Hub, pki: &TestPki, token: &str, site: &str) -> Device {
    std::fs::create_dir_all(dir).expect("mkdir");
    Device::new(
        dir,
        &Setup {
            endpoint: &hub.url,
            token: Some(token),
            host_id: &format!(
                "edge-{}",
                dir.file_name().and_then(|n| n.to_str()).unwrap_or("x")
            ),
            ca_pem: &pki.ca_cert,
            site,
            top: "outpost:\n  timeouts:\n    connect: 2\n    request: 5\n",
        },
    )
}

#[test]
fn https_through_the_configured_proxy_and_bypass_by_cidr() {
    let scratch = Scratch::new("checkin-proxy");
    let pki = make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let token = hub.token(&[]);
    let proxy = Tinyproxy::start(hub.port(), Some(("agent", "pr0xy-s3cret")));
    let with_auth = format!("http://agent:pr0xy-s3cret@127.0.0.1:{}", proxy.port);

    let site = format!("    network:\n      httpsProxy: {with_auth}\n");
    let d = device(&scratch.path().join("via"), &hub, &pki, &token, &site);
    let (code, out, err) = d.run(&["-vvv", "checkin"]);
    assert_eq!(code, 0, "through the proxy: {err}");
    // One tunnel: the hub keeps the connection, so the check-in that
    // follows the registration goes through the same CONNECT.
    assert_eq!(
        proxy.connects_to(hub.port()),
        1,
        "register and check-in went through the proxy, on one connection"
    );
    let log = hub.log_lines();
    assert_eq!(log.len(), 2, "{log:#?}");
    assert!(
        log.iter().all(|l| l.contains(r#""conn":1,"#)),
        "both requests over one connection: {log:#?}"
    );
    assert!(
        !out.contains("pr0xy-s3cret") && !err.contains("pr0xy-s3cret"),
        "proxy password leaked: {err}"
    );

    // The config's proxy wins over HTTPS_PROXY (pointing at nothing).
    let dead = format!("http://127.0.0.1:{}", refused_port());
    let (code, _, err) = common::run(d.cmd(&["checkin"]).env("HTTPS_PROXY", &dead));
    assert_eq!(code, 0, "config proxy over HTTPS_PROXY: {err}");
    assert_eq!(proxy.connects_to(hub.port()), 2);

    // HTTPS_PROXY alone is used when the config names none.
    let e = device(&scratch.path().join("env"), &hub, &pki, &token, "");
    let (code, _, err) = common::run(e.cmd(&["checkin"]).env("HTTPS_PROXY", &with_auth));
    assert_eq!(code, 0, "HTTPS_PROXY: {err}");
    assert_eq!(proxy.connects_to(hub.port()), 3, "env proxy used");

    // noProxy by CIDR: direct, the proxy sees nothing.
    let site = format!(
        "    network:\n      httpsProxy: {with_auth}\n      noProxy: [10.0.0.0/8, 127.0.0.0/8]\n"
    );
    let b = device(&scratch.path().join("bypass"), &hub, &pki, &token, &site);
    let (code, _, err) = b.run(&["checkin"]);
    assert_eq!(code, 0, "bypass: {err}");
    assert_eq!(
        proxy.connects_to(hub.port()),
        3,
        "no CONNECT for a noProxy CIDR"
    );
}

#[test]
fn dead_proxy_is_exit_10_and_leaves_state_alone() {
    let scratch = Scratch::new("checkin-deadproxy");
    let pki = make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let port = refused_port();
    let site = format!("    network:\n      httpsProxy: http://127.0.0.1:{port}\n");
    let d = device(&scratch.path().join("dead"), &hub, &pki, "opt_x", &site);
    d.seed("edge-dead");
    let before = d.snapshot();
    let (code, _, err) = d.run(&["checkin"]);
    assert_eq!(code, 10, "{err}");
    assert_eq!(
        err,
        format!("outpost: POST {}/outpost/v1/checkin: cannot connect to proxy http://127.0.0.1:{port}: connection refused\n", hub.url),
        "one-line error naming the proxy"
    );
    assert_eq!(d.snapshot(), before, "state untouched");
    assert!(hub.log_lines().is_empty(), "nothing reached the hub");
}
