//! The hidden `outpost probe` command end to end: the real binary (through
//! the qemu runner prefix when set) against the fault server, with the CA
//! given by --cacert and the system bundle looked up under an empty --root.

mod common;
use common::fault::{FaultServer, Scratch};
use common::tls::Ca;
use common::{outpost, run};

#[test]
fn probe_reports_status_and_exit_codes() {
    let scratch = Scratch::new("probe");
    let ca = Ca::new(&scratch, "main");
    let other = Ca::new(&scratch, "other");
    let server = FaultServer::tls(&ca.good());
    let empty_root = scratch.path().join("root");
    std::fs::create_dir_all(&empty_root).expect("root");
    let body = scratch.path().join("body.json");
    std::fs::write(&body, r#"{"probe":true}"#).expect("body");

    // (url path, CA, POST body?, exit code, stdout starts with, stderr)
    let u = |p: &str| server.url(p);
    let cases: Vec<(&str, &Ca, bool, i32, &str, String)> = vec![
        ("/ok", &ca, false, 0, "HTTP 200\n{\"method\": \"GET\"", String::new()),
        ("/ok", &ca, true, 0, "HTTP 200\n{\"method\": \"POST\"", String::new()),
        ("/status/404", &ca, false, 12, "HTTP 404\n", format!("outpost: GET {}: HTTP 404\n", u("/status/404"))),
        ("/status/503", &ca, true, 11, "", format!("outpost: POST {}: server busy: HTTP 503\n", u("/status/503"))),
        ("/oversized", &ca, false, 12, "", format!("outpost: GET {}: response body larger than 65536 bytes\n", u("/oversized"))),
        ("/ok", &other, false, 16, "", format!("outpost: GET {}: server certificate not trusted: unknown issuer (not signed by a trusted CA)\n", u("/ok"))),
    ];
    for (path, trust, post, code, out_start, err) in cases {
        let mut cmd = outpost();
        cmd.args(["probe", &u(path), "--cacert"])
            .arg(&trust.cert)
            .arg("--root")
            .arg(&empty_root);
        if post {
            cmd.arg("--data").arg(&body);
        }
        cmd.env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy");
        let (got_code, out, got_err) = run(&mut cmd);
        assert_eq!(
            (got_code, got_err.as_str()),
            (code, err.as_str()),
            "probe {path} post={post}"
        );
        assert!(out.starts_with(out_start), "probe {path}: stdout {out:?}");
    }
}

#[test]
fn probe_without_any_trust_root_says_so() {
    let scratch = Scratch::new("probe-noroot");
    let ca = Ca::new(&scratch, "main");
    let server = FaultServer::tls(&ca.good());
    let empty_root = scratch.path().join("root");
    std::fs::create_dir_all(&empty_root).expect("root");
    let (code, _, err) = run(outpost()
        .args(["probe", &server.url("/ok"), "--root"])
        .arg(&empty_root));
    assert_eq!(code, 16, "{err}");
    assert_eq!(
        err,
        "outpost: no trusted CA certificates: no system CA bundle found (/etc/ssl/certs/ca-certificates.crt, \
         /etc/pki/tls/certs/ca-bundle.crt, /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem, \
         /var/lib/ca-certificates/ca-bundle.pem, /etc/ssl/cert.pem) and no caCerts configured\n"
    );
    assert!(
        server.requests().is_empty(),
        "nothing sent without trust roots"
    );
}

#[test]
fn trace_logging_never_dumps_request_bytes() {
    let scratch = Scratch::new("probe-trace");
    let ca = Ca::new(&scratch, "main");
    let server = FaultServer::tls(&ca.good());
    let body = scratch.path().join("body.json");
    std::fs::write(&body, r#"{"token":"tok-s3cret"}"#).expect("body");
    let (code, _, err) = run(outpost()
        .args(["-vvv", "probe", &server.url("/ok"), "--cacert"])
        .arg(&ca.cert)
        .arg("--data")
        .arg(&body));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("DEBUG [outpost::http] POST "),
        "debug log present: {err}"
    );
    // ureq-proto's trace hex dump would show the request line and headers
    // (an Authorization header among them) 16 bytes a row.
    assert!(
        !err.contains("[ureq_proto::util]"),
        "request bytes dumped: {err}"
    );
    assert!(
        !err.contains("POST./ok.HTTP"),
        "request bytes dumped: {err}"
    );
    assert!(!err.contains("s3cret"), "body logged: {err}");
}
