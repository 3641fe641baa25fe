//! The registration token and the device credential never appear in any
//! output or log of `checkin`, `status` or `run` (at -vvv), nor in a
//! world-readable file of the device, in plain, URL-encoded or base64
//! forms. Runs a real registration, a re-registration after a 401 (the
//! credential is rotated and sent again) and steady check-ins against the hub.

mod common;
use common::agent::{Device, Setup};
use common::fault::Scratch;
use common::hub::Hub;
use common::tls::make_pki;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn b64(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Plain, halves, hex digits without the prefix, base64 / base64url at
/// three alignments (edges trimmed).
fn forms(secret: &str) -> Vec<(String, String)> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let body = secret.split_once('_').map(|(_, b)| b).unwrap_or(secret);
    let mut v = vec![
        ("plain".to_string(), secret.to_string()),
        ("without prefix".to_string(), body.to_string()),
        ("first half".to_string(), body[..body.len() / 2].to_string()),
        (
            "second half".to_string(),
            body[body.len() / 2..].to_string(),
        ),
    ];
    for (name, alpha) in [("base64", STD), ("base64url", URL)] {
        for shift in 0..3 {
            let data = [&b"xyz"[..shift], secret.as_bytes()].concat();
            let enc = b64(&data, alpha);
            v.push((
                format!("{name} (offset {shift})"),
                enc[4..enc.len() - 4].to_string(),
            ));
        }
    }
    v
}

fn assert_clean(label: &str, text: &str, secrets: &[(&str, &str)]) {
    for (what, s) in secrets {
        for (form, needle) in forms(s) {
            assert!(
                !text.contains(&needle),
                "{label}: {form} of the {what}:\n{text}"
            );
        }
    }
}

fn world_readable(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            world_readable(&p, out);
        } else if m.is_file() && m.permissions().mode() & 0o004 != 0 {
            out.push(p);
        }
    }
}

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
        assert_clean(label, text, &secrets);
    }
    let mut files = Vec::new();
    world_readable(&d.root, &mut files);
    world_readable(scratch.path(), &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("status.json")),
        "status.json is checked: {files:?}"
    );
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f).expect("read")).into_owned();
        assert_clean(&format!("world-readable {}", f.display()), &text, &secrets);
    }
}
