//! The registration token and the device credential never appear in any
//! output or log of `checkin`, `status` or `run` (at -vvv), nor in a
//! world-readable file of the device, in plain, URL-encoded or base64
//! forms. Runs a real registration, a re-registration after a 401 (the
//! credential is rotated and sent again) and steady check-ins against the hub.

mod common;
use common::agent::{Device, Setup};
use common::fault::Scratch;
use common::hub::Hub;
use common::leak;
use common::tls::make_pki;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn token_and_credential_never_leave() {
    let scratch = Scratch::new("checkin-secrets");
    let pki = make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let token = hub.token(&[]);
    let d = Device::new(
        scratch.path(),
        &Setup {
            endpoint: &hub.url,
            token: Some(&token),
            host_id: "edge-secrets",
            ca_pem: &pki.ca_cert,
            site: "",
            top: "",
        },
    );
    let mut outputs = Vec::new();
    let mut creds = Vec::new();
    for (label, args) in [
        ("register", vec!["-vvv", "checkin"]),
        ("steady", vec!["-vvv", "checkin"]),
        ("status", vec!["-vvv", "status"]),
        ("status json", vec!["-vvv", "status", "--json"]),
    ] {
        let (code, out, err) = d.run(&args);
        assert!(code == 0, "{label}: {err}");
        outputs.push((label, out + &err));
        creds.push(
            std::fs::read_to_string(d.file("credential"))
                .expect("credential")
                .trim()
                .to_string(),
        );
    }
    // Lose the credential on the hub's side: 401, re-register, new credential.
    std::fs::write(
        d.file("credential"),
        "opc_stale0credential0of0this0device\n",
    )
    .expect("stale");
    let (code, out, err) = d.run(&["-vvv", "checkin"]);
    assert_eq!(code, 0, "re-register: {err}");
    assert!(err.contains("registering again"), "the 401 path ran: {err}");
    outputs.push(("re-register", out + &err));
    creds.push(
        std::fs::read_to_string(d.file("credential"))
            .expect("credential")
            .trim()
            .to_string(),
    );

    // run at -vvv for a few check-ins, then SIGTERM.
    assert_eq!(hub.cli(&["set-interval", "--test-mode", "0.2"]).0, 0);
    let child = d
        .cmd(&["-vvv", "run"])
        .env("OUTPOST_TEST_MIN_INTERVAL_MS", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let t0 = Instant::now();
    while hub.log_lines().len() < 10 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "run made too few check-ins"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("run output");
    assert_eq!(out.status.code(), Some(0), "run stopped cleanly");
    outputs.push((
        "run",
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    ));

    let mut secrets: Vec<(&str, &str)> = vec![("token", token.as_str())];
    for c in &creds {
        secrets.push(("credential", c.as_str()));
    }
    assert!(
        creds.iter().all(|c| c.starts_with("opc_")),
        "real credentials: {}",
        creds.len()
    );
    assert_ne!(
        creds[0], creds[4],
        "the re-registration rotated the credential"
    );
    for (label, text) in &outputs {
        assert!(
            text.contains("DEBUG") || label.starts_with("status"),
            "{label}: ran at debug level:\n{text}"
        );
        leak::assert_clean(label, "output", text, &secrets);
    }
    let mut files = leak::world_readable_files(&d.root);
    files.extend(leak::world_readable_files(scratch.path()));
    assert!(
        files.iter().any(|f| f.ends_with("status.json")),
        "status.json is checked: {files:?}"
    );
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f).expect("read")).into_owned();
        leak::assert_clean(
            "after the runs",
            &format!("world-readable {}", f.display()),
            &text,
            &secrets,
        );
    }
}
