//! A DNS failure during `outpost checkin` is exit 10 naming the host, with
//! the state untouched. The agent runs inside a private network namespace
//! (`unshare -n`: loopback only, and down) so no query can leave the
//! machine; under qemu the runner prefix goes inside the namespace too.
//! Without `unshare` (or the right to use it) the test fails and says why.

mod common;
use common::agent::{Device, Setup, PROXY_VARS};
use common::fault::Scratch;
use common::tls::Ca;
use std::process::Command;

const HOST: &str = "hub.outpost-test.invalid";

#[test]
fn dns_failure_is_exit_10_and_leaves_state_alone() {
    let probe = Command::new("unshare").args(["-n", "true"]).output();
    match &probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "DNS-failure test NOT RUN: `unshare -n true` failed ({}): {}; it needs CAP_SYS_ADMIN (root)",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("DNS-failure test NOT RUN: cannot run `unshare` ({e}); install util-linux"),
    }
    let scratch = Scratch::new("checkin-dns");
    let ca = Ca::new(&scratch, "main");
    let d = Device::new(
        scratch.path(),
        &Setup {
            endpoint: HOST,
            token: Some("opt_dns"),
            host_id: "edge-dns",
            ca_pem: &ca.cert,
            site: "",
            top: "outpost:\n  timeouts:\n    connect: 2\n    request: 5\n",
        },
    );
    d.seed("edge-dns");
    let before = d.snapshot();
    let mut cmd = Command::new("unshare");
    cmd.arg("-n");
    if let Some(runner) = common::runner() {
        cmd.args(runner.split_whitespace());
    }
    cmd.arg(env!("CARGO_BIN_EXE_outpost"))
        .args(["checkin", "--root"])
        .arg(&d.root)
        .arg("--config")
        .arg(&d.config);
    for v in PROXY_VARS {
        cmd.env_remove(v);
    }
    let (code, out, err) = common::run(&mut cmd);
    assert_eq!(code, 10, "{out}{err}");
    let url = format!("https://{HOST}/outpost/v1/checkin");
    let slow = format!(
        "outpost: POST {url}: cannot resolve host {HOST} (DNS lookup timed out after 2 s)\n"
    );
    let fast = format!("outpost: POST {url}: cannot resolve host {HOST}\n");
    assert!(
        err == slow || err == fast,
        "unexpected DNS error text: {err}"
    );
    assert_eq!(d.snapshot(), before, "state untouched");
}
