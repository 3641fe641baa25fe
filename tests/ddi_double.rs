//! hawkBit DDI mode against a TEST DOUBLE (tests/support/ddi_double.py, a
//! small scripted server that follows hawkBit's DDI documentation; it is
//! not hawkBit) for what gooseBit 0.2.12 cannot express (tests/ddi_goosebit.rs
//! covers what it can):
//!
//! * a deployment whose chunk carries the release as three artifacts
//!   (`X`, `X.manifest`, `X.manifest.sig`: a hawkBit software module),
//!   downloaded with the target token, swapped, committed and reported;
//! * `maintenanceWindow: unavailable` and `download: skip` (not acted on);
//! * `cancelAction`: `closed` + `success` before anything started (and the
//!   cancelled action is never acted on), `rejected` once the swap happened;
//! * a closing feedback the server refused (503) is kept and sent at the
//!   next poll; an action offered again after it closed is not acted on twice;
//! * the `GatewayToken`, and the `run` loop: the server's sleep is followed,
//!   503s are backed off and the loop goes on, SIGTERM ends it with 0.
//!
//! The new release is a TEST DOUBLE too: a shell wrapper running this
//! build with `OUTPOST_TEST_VERSION` (feature test-hooks).

mod common;
use common::agent::{Device, Setup};
use common::fault::Scratch;
use common::tls::{make_pki, TestPki};
use common::upgrade::{cron_tick as tick, sh};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REAL: &str = env!("CARGO_BIN_EXE_outpost");
const SIGN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sign");

struct Double {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Double {
    fn start(dir: &Path, pki: &TestPki, scenario: &str) -> Double {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join("scenario.json"), scenario).expect("scenario");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/ddi_double.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir)
            .arg(&pki.server_cert)
            .arg(&pki.server_key)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 tests/support/ddi_double.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port line");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("ddi_double did not start: {line:?}"));
        Double {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    fn set(&self, scenario: &str) {
        std::fs::write(self.dir.join("scenario.json"), scenario).expect("scenario");
    }

    /// (method, path, auth ok, status, body) of every request so far.
    fn requests(&self) -> Vec<(String, String, bool, u64, String, f64)> {
        use miniserde::json::{Number, Value};
        let text = std::fs::read_to_string(self.dir.join("requests.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let Ok(Value::Object(o)) = miniserde::json::from_str::<Value>(l) else {
                    panic!("bad log line {l}");
                };
                let s = |k: &str| match o.get(k) {
                    Some(Value::String(s)) => s.clone(),
                    _ => String::new(),
                };
                let status = match o.get("status") {
                    Some(Value::Number(Number::U64(n))) => *n,
                    _ => 0,
                };
                let t = match o.get("t") {
                    Some(Value::Number(Number::F64(f))) => *f,
                    _ => 0.0,
                };
                (
                    s("method"),
                    s("path"),
                    matches!(o.get("auth"), Some(Value::Bool(true))),
                    status,
                    s("body"),
                    t,
                )
            })
            .collect()
    }
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).expect("read")
}

fn scenario(auth: &str, sleep: &str, fail: u32, deployment: &str, cancel: &str) -> String {
    format!(
        r#"{{"tenant":"DEFAULT","controller":"edge-dd","sleep":"{sleep}","auth":"{auth}","fail":{fail},"deployment":{deployment},"cancel":{cancel}}}"#
    )
}

fn device(scratch: &Scratch, pki: &TestPki, port: u16, ddi: &str, extra: &str) -> Device {
    let dir = scratch.path().join("dev");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let top = format!(
        "outpost:\n  server:\n    protocol: ddi\n    ddi:\n{ddi}  timeouts:\n    connect: 2\n    request: 10\n{extra}"
    );
    let d = Device::new(
        &dir,
        &Setup {
            endpoint: &format!("https://127.0.0.1:{port}"),
            token: None,
            host_id: "edge-dd",
            ca_pem: &pki.ca_cert,
            site: "",
            top: &top,
        },
    );
    std::fs::create_dir_all(d.root.join("usr/local/bin")).expect("mkdir");
    std::fs::copy(REAL, d.root.join("usr/local/bin/outpost")).expect("install");
    d
}

#[test]
fn split_release_with_maintenance_window_skip_and_cancel() {
    let scratch = Scratch::new("ddi-double");
    let pki = make_pki(scratch.path());
    let auth = "TargetToken tok-0123456789abcdef0123456789abcd";
    let dbl = Double::start(
        &scratch.path().join("double"),
        &pki,
        &scenario(auth, "00:00:10", 0, "null", "null"),
    );
    // A signed release, three files.
    let keys = scratch.path().join("keys");
    std::fs::create_dir_all(&keys).expect("mkdir");
    sh(Command::new(SIGN).arg("keygen").arg(keys.join("rel")));
    let pub_line = std::fs::read_to_string(keys.join("rel.pub"))
        .expect("pub")
        .lines()
        .nth(1)
        .expect("key")
        .to_string();
    let d = device(
        &scratch,
        &pki,
        dbl.port,
        "      tenant: DEFAULT\n      token: tok-0123456789abcdef0123456789abcd\n",
        &format!("  upgrade:\n    publicKeys:\n      - \"{pub_line}\"\n"),
    );
    let arch = std::env::consts::ARCH;
    let rel = scratch.path().join("rel");
    std::fs::create_dir_all(&rel).expect("mkdir");
    let p = rel.join(format!("outpost-0.9.0-{arch}-linux-musl"));
    let runner = common::runner().unwrap_or_default();
    std::fs::write(
        &p,
        format!("#!/bin/sh\nOUTPOST_TEST_VERSION=0.9.0 exec {runner} {REAL} \"$@\"\n"),
    )
    .expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    sh(Command::new(SIGN)
        .arg("manifest")
        .arg(keys.join("rel.sec"))
        .arg(&p)
        .arg("0.9.0")
        .arg(arch));
    let arts = format!(r#"["{0}","{0}.manifest","{0}.manifest.sig"]"#, p.display());
    let dep = |id: &str, download: &str, window: &str| {
        format!(
            r#"{{"id":"{id}","download":"{download}","update":"{download}","maintenanceWindow":{window},"artifacts":{arts}}}"#
        )
    };
    let bin = d.root.join("usr/local/bin/outpost");
    let old = bytes(&bin);
    let (code, out, err) = tick(&d);
    assert_eq!(code, 0, "{out}{err}");

    // Outside the maintenance window: nothing happens.
    dbl.set(&scenario(
        auth,
        "00:00:10",
        0,
        &dep("7", "forced", r#""unavailable""#),
        "null",
    ));
    let (code, out, err) = tick(&d);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("DDI action 7: outside its maintenance window (waiting)"),
        "{out}"
    );
    // download: skip: nothing happens.
    dbl.set(&scenario(
        auth,
        "00:00:10",
        0,
        &dep("7", "skip", "null"),
        "null",
    ));
    let (code, out, err) = tick(&d);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("DDI action 7: download skip"), "{out}");
    assert!(
        !dbl.requests().iter().any(|r| r.0 == "POST"),
        "no feedback yet: {:?}",
        dbl.requests()
    );
    // Cancelled before it started: closed/success, and never acted on.
    dbl.set(&scenario(
        auth,
        "00:00:10",
        0,
        "null",
        r#"{"id":"c1","stopId":"7"}"#,
    ));
    let (code, out, err) = tick(&d);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("DDI cancel of action 7: closed"), "{out}");
    let fb: Vec<_> = dbl
        .requests()
        .into_iter()
        .filter(|r| r.0 == "POST")
        .collect();
    assert_eq!(fb.len(), 1, "{fb:?}");
    assert!(fb[0].1.ends_with("/cancelAction/c1/feedback"), "{fb:?}");
    assert!(
        fb[0].4.contains(r#""execution":"closed""#) && fb[0].4.contains(r#""finished":"success""#),
        "{fb:?}"
    );
    dbl.set(&scenario(
        auth,
        "00:00:10",
        0,
        &dep("7", "attempt", "null"),
        "null",
    ));
    let (code, out, err) = tick(&d);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("DDI action 7 was cancelled: not acted on"),
        "{out}"
    );
    assert_eq!(bytes(&bin), old);

    // A new action: proceeding, the three artifacts with the token, swap.
    dbl.set(&scenario(
        auth,
        "00:00:10",
        0,
        &dep("8", "attempt", "null"),
        "null",
    ));
    let (code, out, err) = tick(&d);
    assert_eq!(code, 75, "{out}{err}");
    assert!(
        out.contains("DDI action 8: 0.9.0 swapped in (on trial)"),
        "{out}"
    );
    assert_ne!(bytes(&bin), old);
    let reqs = dbl.requests();
    assert!(
        reqs.iter().all(|r| r.2),
        "every request carried the token: {reqs:?}"
    );
    let names: Vec<String> = reqs
        .iter()
        .filter(|r| r.1.contains("/artifacts/"))
        .map(|r| r.1.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    let base = format!("outpost-0.9.0-{arch}-linux-musl");
    assert_eq!(
        names,
        vec![
            format!("{base}.manifest"),
            format!("{base}.manifest.sig"),
            base.clone()
        ],
        "manifest and signature first, then the binary"
    );
    let proceeding = reqs
        .iter()
        .find(|r| r.1.ends_with("/deploymentBase/8/feedback"))
        .expect("feedback for action 8");
    assert!(
        proceeding.4.contains(r#""execution":"proceeding""#),
        "{proceeding:?}"
    );

    // The new binary commits, but the server refuses feedback for now
    // (503): the closing feedback is kept and sent at the next poll.
    let mut failing = scenario(auth, "00:00:10", 0, &dep("8", "attempt", "null"), "null");
    failing.pop();
    failing.push_str(r#","feedback_fail":true}"#);
    dbl.set(&failing);
    let (code, out, err) = tick(&d);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("committed"), "{err}");
    assert!(err.contains("not sent"), "{err}");
    let rec = std::fs::read_to_string(d.root.join("var/lib/outpost/ddi-action.json"))
        .expect("ddi-action.json");
    assert!(
        rec.contains(r#""state":"closed""#) && rec.contains(r#""sent":false"#),
        "{rec}"
    );

    // The cancel arrives after the swap: rejected; the pending closing
    // feedback goes out first.
    dbl.set(&scenario(
        auth,
        "00:00:10",
        0,
        "null",
        r#"{"id":"c2","stopId":"8"}"#,
    ));
    let (code, out, err) = tick(&d);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("feedback closed/success sent"), "{err}");
    assert!(out.contains("DDI cancel of action 8: rejected"), "{out}");
    let reqs = dbl.requests();
    let closed = reqs
        .iter()
        .rfind(|r| r.1.ends_with("/deploymentBase/8/feedback"))
        .expect("closing feedback");
    assert_eq!(closed.3, 200, "{closed:?}");
    assert!(
        closed.4.contains(r#""execution":"closed""#)
            && closed.4.contains(r#""finished":"success""#)
            && closed
                .4
                .contains("upgraded from 0.1.0 to 0.9.0 and committed"),
        "{closed:?}"
    );
    let rej = reqs
        .iter()
        .find(|r| r.1.ends_with("/cancelAction/c2/feedback"))
        .expect("cancel feedback");
    assert!(rej.4.contains(r#""execution":"rejected""#), "{rej:?}");

    // Offered again: not acted on twice.
    dbl.set(&scenario(
        auth,
        "00:00:10",
        0,
        &dep("8", "forced", "null"),
        "null",
    ));
    let n = dbl.requests().len();
    let (code, out, err) = tick(&d);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("DDI action 8 already acted on (closed/success)"),
        "{out}"
    );
    assert!(
        !dbl.requests()[n..]
            .iter()
            .any(|r| r.0 == "POST" || r.1.contains("/artifacts/")),
        "{:?}",
        &dbl.requests()[n..]
    );
}

#[test]
fn gateway_token_and_the_run_loop_follow_the_sleep_and_back_off() {
    let scratch = Scratch::new("ddi-run");
    let pki = make_pki(scratch.path());
    let auth = "GatewayToken gw-0123456789abcdef";
    // The first three polls answer 503, then the server asks for 1 s.
    let dbl = Double::start(
        &scratch.path().join("double"),
        &pki,
        &scenario(auth, "00:00:01", 3, "null", "null"),
    );
    let d = device(
        &scratch,
        &pki,
        dbl.port,
        "      tenant: DEFAULT\n      tokenType: gateway\n      token: gw-0123456789abcdef\n",
        "",
    );
    let mut child = d
        .cmd(&["-v", "run"])
        .env("OUTPOST_TEST_MIN_INTERVAL_MS", "200")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("outpost run");
    // Hang guard 60 s: wait for three successful polls.
    let t0 = Instant::now();
    loop {
        let ok = dbl
            .requests()
            .iter()
            .filter(|r| r.0 == "GET" && r.3 == 200)
            .count();
        if ok >= 3 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("only {ok} successful polls: {:?}", dbl.requests());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let t1 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t1.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("outpost run did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(0), "{err}");
    let polls: Vec<_> = dbl
        .requests()
        .into_iter()
        .filter(|r| r.0 == "GET")
        .collect();
    assert!(
        polls.iter().all(|r| r.2),
        "GatewayToken on every poll: {polls:?}"
    );
    let statuses: Vec<u64> = polls.iter().map(|r| r.3).collect();
    assert_eq!(&statuses[..4], &[503, 503, 503, 200], "{statuses:?}");
    assert_eq!(err.matches("polling again later").count(), 3, "{err}");
    // Backoff: never sooner than the (test) floor of 200 ms after a 503.
    for w in polls[..4].windows(2) {
        assert!(w[1].5 - w[0].5 >= 0.19, "backoff too short: {polls:?}");
    }
    // The server's sleep (1 s) is followed between successful polls.
    let ok: Vec<f64> = polls.iter().filter(|r| r.3 == 200).map(|r| r.5).collect();
    for w in ok.windows(2) {
        assert!(
            w[1] - w[0] >= 0.95,
            "polled before the server's sleep: {ok:?}"
        );
    }
    assert!(err.contains("next poll in 1 s (00:00:01)"), "{err}");

    // The same token sent as a target token is refused: exit 13, one line.
    let (code, _, err) = d.run(&["checkin", "--set", "outpost.server.ddi.tokenType=target"]);
    assert_eq!(code, 13, "{err}");
    assert!(
        err.contains("the DDI server refused the target token"),
        "{err}"
    );
    assert!(
        !err.contains("gw-0123456789abcdef"),
        "token not printed: {err}"
    );
}
