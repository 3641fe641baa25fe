//! `outpost check --network` end to end: the real binary against the real
//! hub on loopback (test CA), through Debian's tinyproxy, against a server
//! whose CA is not trusted, and against a refused port. Asserts each step's
//! status and that a failure names the first broken step.

mod common;
use common::agent::{Device, Setup};
use common::fault::{refused_port, Scratch};
use common::hub::Hub;
use common::proxy::Tinyproxy;
use common::tls::{make_pki, TestPki};
use miniserde::json::Value;

fn device(dir: &std::path::Path, endpoint: &str, ca: &std::path::Path, site: &str) -> Device {
    std::fs::create_dir_all(dir).expect("mkdir");
    Device::new(
        dir,
        &Setup {
            endpoint,
            token: Some("tok-not-sent-by-check"),
            host_id: "edge-net",
            ca_pem: ca,
            site,
            top: "outpost:\n  timeouts:\n    connect: 2\n    request: 5\n",
        },
    )
}

/// (id, status, observed, hint) of the net.* lines of a JSON report.
fn net_steps(json: &str) -> Vec<(String, String, String, String)> {
    let v: Value = miniserde::json::from_str(json).expect("valid JSON");
    let Value::Object(obj) = v else {
        panic!("not an object")
    };
    let Some(Value::Array(checks)) = obj.get("checks") else {
        panic!("no checks")
    };
    checks
        .iter()
        .filter_map(|c| {
            let Value::Object(c) = c else { return None };
            let s = |k: &str| match c.get(k) {
                Some(Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            s("id")
                .starts_with("net.")
                .then(|| (s("id"), s("status"), s("observed"), s("hint")))
        })
        .collect()
}

fn statuses(steps: &[(String, String, String, String)]) -> Vec<(&str, &str)> {
    steps
        .iter()
        .map(|(i, s, _, _)| (i.as_str(), s.as_str()))
        .collect()
}

fn pki(s: &Scratch) -> TestPki {
    make_pki(s.path())
}

#[test]
fn direct_to_the_hub_every_step_passes() {
    let scratch = Scratch::new("net-direct");
    let pki = pki(&scratch);
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let d = device(&scratch.path().join("d"), &hub.url, &pki.ca_cert, "");
    let (code, out, err) = d.run(&["check", "--network", "--json", "--only", "arch"]);
    let steps = net_steps(&out);
    assert_eq!(
        statuses(&steps),
        vec![
            ("net.endpoint", "pass"),
            ("net.route", "pass"),
            ("net.dns", "pass"),
            ("net.tcp", "pass"),
            ("net.proxy", "skip"),
            ("net.tls", "pass"),
            ("net.cert", "pass"),
            ("net.probe", "pass"),
            ("net.clock", "pass"),
        ],
        "{out}\n{err}"
    );
    // arch may fail on an odd build host; the network part decides nothing else.
    assert!(code == 0 || code == 1, "{err}");
    let obs = |id: &str| {
        steps
            .iter()
            .find(|s| s.0 == id)
            .map(|s| s.2.clone())
            .unwrap_or_default()
    };
    assert!(
        obs("net.route").starts_with("direct (no proxy configured)"),
        "{}",
        obs("net.route")
    );
    assert!(
        obs("net.dns").contains("127.0.0.1 is an IP address"),
        "{}",
        obs("net.dns")
    );
    assert!(obs("net.tls").starts_with("TLS 1.3"), "{}", obs("net.tls"));
    assert!(
        obs("net.tls").contains("from caCerts"),
        "{}",
        obs("net.tls")
    );
    assert!(
        obs("net.cert").contains("[0] subject"),
        "{}",
        obs("net.cert")
    );
    assert!(
        obs("net.probe").contains("protocol outpost"),
        "{}",
        obs("net.probe")
    );
    // The probe carries no credential and nothing but the probe was asked.
    let log = std::fs::read_to_string(&hub.log).unwrap_or_default();
    assert!(
        !log.contains("/register") && !log.contains("/checkin"),
        "{log}"
    );

    let clock = obs("net.clock");
    // The hub sends a Date header on every answer; the clock step uses it.
    assert!(clock.contains("from its Date header"), "{clock}");

    // Our clock an hour ahead of the server's: net.clock fails and says so.
    let ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let (code, out, err) = common::run(
        d.cmd(&["check", "--network", "--json", "--only", "arch"])
            .env("OUTPOST_TEST_NOW", ahead.to_string()),
    );
    let steps = net_steps(&out);
    let c = steps.iter().find(|s| s.0 == "net.clock").expect("clock");
    assert_eq!(c.1, "fail", "{out}\n{err}");
    assert!(
        c.2.contains("(+3600 s") || c.2.contains("(+3599 s") || c.2.contains("(+3601 s"),
        "{}",
        c.2
    );
    assert!(c.3.contains("NTP"), "{}", c.3);
    assert!(err.contains("first broken step: net.clock"), "{err}");
    assert_eq!(code, 1);

    // A name (localhost) is resolved and timed; text output has the lines.
    let d = device(
        &scratch.path().join("name"),
        &hub.url.replace("127.0.0.1", "localhost"),
        &pki.ca_cert,
        "",
    );
    let (_, out, err) = d.run(&["check", "--network", "--only", "arch"]);
    assert!(
        out.contains("net.dns") && out.contains("localhost ->"),
        "{out}\n{err}"
    );
}

#[test]
fn through_tinyproxy_and_bypassed_by_no_proxy() {
    let scratch = Scratch::new("net-proxy");
    let pki = pki(&scratch);
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let proxy = Tinyproxy::start(hub.port(), Some(("agent", "pr0xy-s3cret")));
    let with_auth = format!("http://agent:pr0xy-s3cret@127.0.0.1:{}", proxy.port);
    let site = format!("    network:\n      httpsProxy: {with_auth}\n");
    let d = device(&scratch.path().join("via"), &hub.url, &pki.ca_cert, &site);
    let (_, out, err) = d.run(&["-vvv", "check", "--network", "--json", "--only", "arch"]);
    let steps = net_steps(&out);
    let st = statuses(&steps);
    assert!(st.contains(&("net.proxy", "pass")), "{st:?}");
    assert!(st.contains(&("net.probe", "pass")), "{st:?}");
    let route = &steps.iter().find(|s| s.0 == "net.route").expect("route").2;
    assert!(
        route.starts_with(&format!("proxy http://127.0.0.1:{}", proxy.port)),
        "{route}"
    );
    assert!(
        !out.contains("pr0xy-s3cret") && !err.contains("pr0xy-s3cret"),
        "password leaked"
    );
    // CONNECT of the tunnel step and of the probe.
    assert_eq!(proxy.connects_to(hub.port()), 2);

    // Wrong proxy password: net.proxy fails (407) and names itself.
    let bad = format!(
        "    network:\n      httpsProxy: http://agent:wrong@127.0.0.1:{}\n",
        proxy.port
    );
    let b = device(&scratch.path().join("bad"), &hub.url, &pki.ca_cert, &bad);
    let (code, out, err) = b.run(&["check", "--network", "--json", "--only", "arch"]);
    assert_eq!(code, 1, "{err}");
    let steps = net_steps(&out);
    let p = steps
        .iter()
        .find(|s| s.0 == "net.proxy")
        .expect("proxy step");
    assert_eq!(p.1, "fail", "{steps:?}");
    assert!(p.2.contains(" 401 ") || p.2.contains(" 407 "), "{}", p.2);
    assert!(p.3.contains("refused the user:password"), "{}", p.3);
    assert!(err.contains("first broken step: net.proxy"), "{err}");
    assert!(
        steps
            .iter()
            .skip_while(|s| s.0 != "net.tls")
            .all(|s| s.1 == "skip"),
        "{steps:?}"
    );

    // noProxy covering the server: direct, the proxy sees nothing more.
    let before = proxy.connects_to(hub.port());
    let site =
        format!("    network:\n      httpsProxy: {with_auth}\n      noProxy: [127.0.0.0/8]\n");
    let n = device(
        &scratch.path().join("bypass"),
        &hub.url,
        &pki.ca_cert,
        &site,
    );
    let (_, out, _) = n.run(&["check", "--network", "--json", "--only", "arch"]);
    let steps = net_steps(&out);
    let route = &steps.iter().find(|s| s.0 == "net.route").expect("route").2;
    assert!(
        route.starts_with("direct: noProxy matches 127.0.0.1"),
        "{route}"
    );
    assert_eq!(proxy.connects_to(hub.port()), before);
}

#[test]
fn untrusted_server_and_refused_port_name_the_broken_step() {
    let scratch = Scratch::new("net-fail");
    let pki = pki(&scratch);
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    // Trusting only a CA that signed nothing the hub presents.
    let d = device(
        &scratch.path().join("untrusted"),
        &hub.url,
        &pki.other_ca_cert,
        "",
    );
    let (code, out, err) = d.run(&["check", "--network", "--json", "--only", "arch"]);
    assert_eq!(code, 1, "{err}");
    let steps = net_steps(&out);
    let tls = steps.iter().find(|s| s.0 == "net.tls").expect("tls");
    assert_eq!(tls.1, "fail");
    assert!(tls.2.contains("unknown issuer"), "{}", tls.2);
    // The chain is still shown (what the server sent).
    let cert = steps.iter().find(|s| s.0 == "net.cert").expect("cert");
    assert!(cert.2.contains("[0] subject"), "{}", cert.2);
    assert!(err.contains("first broken step: net.tls"), "{err}");
    let probe = steps.iter().find(|s| s.0 == "net.probe").expect("probe");
    assert_eq!(
        (probe.1.as_str(), probe.2.as_str()),
        ("skip", "not tried: net.tls failed")
    );

    let url = format!("https://127.0.0.1:{}", refused_port());
    let r = device(&scratch.path().join("refused"), &url, &pki.ca_cert, "");
    let (code, out, err) = r.run(&["check", "--network", "--json", "--only", "arch"]);
    assert_eq!(code, 1, "{err}");
    let steps = net_steps(&out);
    let tcp = steps.iter().find(|s| s.0 == "net.tcp").expect("tcp");
    assert_eq!(tcp.1, "fail");
    assert!(tcp.2.contains("connection refused"), "{}", tcp.2);
    assert!(err.contains("first broken step: net.tcp"), "{err}");

    // No endpoint at all.
    let n = device(&scratch.path().join("none"), "", &pki.ca_cert, "");
    let (_, out, _) = n.run(&["check", "--network", "--json", "--only", "arch"]);
    let steps = net_steps(&out);
    assert_eq!(steps[0].1, "fail", "{steps:?}");
}

#[test]
fn config_flags_need_network() {
    let (code, _, err) = common::run(common::outpost().args(["check", "--set", "a=b"]));
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "outpost: check: --config and --set only apply with --network\n"
    );
}
