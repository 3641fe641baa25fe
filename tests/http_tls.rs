//! Certificate verification of `outpost::http` against the fault server with
//! certificates made at test time: a good chain is trusted (from settings or
//! from a system bundle under the root), every bad one is exit 16 naming the
//! cause, and "not yet valid" on a clock earlier than the build is exit 10.

mod common;
use common::fault::{FaultServer, Scratch};
use common::tls::{Ca, FUTURE, LOOPBACK_SAN, PAST};
use outpost::error::Code;
use outpost::http::{read_system_ca, Client, HttpSettings, ProxyEnv};
use outpost::sys::Root;
use std::time::{Duration, UNIX_EPOCH};

fn settings(extra: Vec<Vec<u8>>) -> HttpSettings {
    HttpSettings {
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(3),
        extra_ca: extra
            .iter()
            .flat_map(|pem| outpost::config::CaCert::from_bytes(pem).expect("test CA"))
            .collect(),
        proxy_env: ProxyEnv::default(),
        ..HttpSettings::default()
    }
}

#[test]
fn bad_certificates_are_untrusted_with_the_cause() {
    let scratch = Scratch::new("tls");
    let ca = Ca::new(&scratch, "main");
    let other = Ca::new(&scratch, "other");
    // (leaf, exit code, cause)
    let cases = [
        (ca.good(), Code::Ok, ""),
        (
            other.good(),
            Code::Untrusted,
            "server certificate not trusted: unknown issuer (not signed by a trusted CA)",
        ),
        (
            ca.leaf("expired", LOOPBACK_SAN, PAST, "20210101000000Z"),
            Code::Untrusted,
            "server certificate not trusted: certificate expired",
        ),
        (
            ca.leaf("future", LOOPBACK_SAN, "20980101000000Z", FUTURE),
            Code::Untrusted,
            "server certificate not trusted: certificate not yet valid",
        ),
        (
            ca.leaf("othername", "DNS:hub.example.com", PAST, FUTURE),
            Code::Untrusted,
            "server certificate not trusted: name mismatch (certificate not valid for this host)",
        ),
    ];
    let c = Client::new(settings(vec![ca.pem()]), None).expect("client");
    for (leaf, code, cause) in cases {
        let label = leaf
            .cert
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let server = FaultServer::tls(&leaf);
        let url = server.url("/v1/checkin");
        match c.post_json(&url, b"{}", &[]) {
            Ok(r) => assert_eq!((code, r.status), (Code::Ok, 200), "{label}"),
            Err(e) => {
                let want = format!("POST {url}: {cause}");
                assert_eq!((e.code(), e.message()), (code, want.as_str()), "{label}");
            }
        }
    }
}

#[test]
fn not_yet_valid_on_a_clock_before_the_build_blames_the_clock() {
    let scratch = Scratch::new("clock");
    let ca = Ca::new(&scratch, "main");
    let server = FaultServer::tls(&ca.leaf("future", LOOPBACK_SAN, "20980101000000Z", FUTURE));
    let s = HttpSettings {
        now: UNIX_EPOCH + Duration::from_secs(1_577_836_800), // 2020-01-01
        ..settings(vec![ca.pem()])
    };
    let c = Client::new(s, None).expect("client");
    let url = server.url("/v1/checkin");
    let err = c.post_json(&url, b"{}", &[]).expect_err("future cert");
    assert_eq!(err.code(), Code::Network, "{}", err.message());
    let want = format!(
        "POST {url}: server certificate not yet valid and the system clock (2020-01-01T00:00:00Z) \
         is earlier than this agent's build ({}): clock not yet valid, set the clock (NTP) and retry",
        outpost::version::build_date()
    );
    assert_eq!(err.message(), want);
}

#[test]
fn trust_is_system_bundle_plus_extra_cas() {
    let scratch = Scratch::new("trust");
    let sys_ca = Ca::new(&scratch, "system");
    let extra_ca = Ca::new(&scratch, "extra");
    let unrelated = Ca::new(&scratch, "unrelated");
    let sys_server = FaultServer::tls(&sys_ca.good());
    let extra_server = FaultServer::tls(&extra_ca.good());

    // A RHEL-style root: only the second path in the list exists.
    let root = Root::new(scratch.path().join("root"));
    let bundle_path = root.path("/etc/pki/tls/certs/ca-bundle.crt");
    std::fs::create_dir_all(bundle_path.parent().expect("parent")).expect("mkdir");
    let mut bundle = unrelated.pem();
    bundle.extend_from_slice(&sys_ca.pem());
    std::fs::write(&bundle_path, bundle).expect("bundle");
    let found = read_system_ca(&root).expect("read").expect("bundle found");
    assert_eq!(found.path, bundle_path);

    let both = Client::new(settings(vec![extra_ca.pem()]), Some(&found)).expect("client");
    for server in [&sys_server, &extra_server] {
        let r = both
            .post_json(&server.url("/ok"), b"{}", &[])
            .expect("trusted by system+extra");
        assert_eq!(r.status, 200);
    }
    let sys_only = Client::new(settings(vec![]), Some(&found)).expect("client");
    sys_only
        .post_json(&sys_server.url("/ok"), b"{}", &[])
        .expect("system bundle CA trusted");
    let err = sys_only
        .post_json(&extra_server.url("/ok"), b"{}", &[])
        .expect_err("extra CA not configured");
    assert_eq!(err.code(), Code::Untrusted);

    // DER form of an extra CA works too.
    let der = std::process::Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&extra_ca.cert)
        .output()
        .expect("openssl x509 -outform DER");
    assert!(der.status.success(), "openssl DER conversion");
    let c = Client::new(settings(vec![der.stdout]), None).expect("client with DER CA");
    c.post_json(&extra_server.url("/ok"), b"{}", &[])
        .expect("DER extra CA trusted");
}

#[test]
fn insecure_switch_skips_verification() {
    let scratch = Scratch::new("insecure");
    let ca = Ca::new(&scratch, "main");
    let other = Ca::new(&scratch, "other");
    let server =
        FaultServer::tls(&other.leaf("expired", "DNS:wrong.example", PAST, "20210101000000Z"));
    let c = Client::new(
        HttpSettings {
            insecure_skip_verify: true,
            ..settings(vec![ca.pem()])
        },
        None,
    )
    .expect("client");
    let r = c
        .post_json(&server.url("/ok"), b"{}", &[])
        .expect("insecure accepts anything");
    assert_eq!(r.status, 200);
}
