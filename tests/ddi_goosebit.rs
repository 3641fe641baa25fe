//! hawkBit DDI mode against gooseBit 0.2.12 (PyPI `goosebit`, an independent
//! Python server implementing hawkBit's DDI API; a real hawkBit cannot run
//! here), started on loopback with TLS by tests/support/goosebit_serve.py
//! from the venv scripts/deps installs (`pip` entry in scripts/deps.list).
//!
//! Verified: the first poll registers the controller (its row appears in
//! gooseBit's database), configData is sent when the server asks for it and
//! not again while unchanged, the polling sleep set on the server
//! (GOOSEBIT_POLL_TIME) is what the agent reports after configData, and
//! `check --network` probes the controller resource. Not verified (not
//! implemented): deployments.

mod common;
use common::agent::{Device, Setup};
use common::fault::Scratch;
use common::tls::make_pki;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("OUTPOST_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache")
                });
            cache.join("outpost/venv")
        });
    let py = venv.join("bin/python3");
    assert!(
        py.exists(),
        "{} missing: run scripts/deps install test (pip goosebit==0.2.12)",
        py.display()
    );
    py
}

struct Goose {
    child: Child,
    port: u16,
}

impl Drop for Goose {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn goosebit(dir: &std::path::Path, cert: &std::path::Path, key: &std::path::Path) -> Goose {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/goosebit_serve.py");
    let mut child = Command::new(venv_python())
        .arg(script)
        .arg(dir)
        .arg(cert)
        .arg(key)
        .arg("00:00:42")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting gooseBit");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("gooseBit port");
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("gooseBit did not start: {line:?}"));
    // Bounded wait until uvicorn accepts.
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Goose { child, port }
}

#[test]
fn poll_registers_sends_config_data_once_and_follows_the_server_sleep() {
    let scratch = Scratch::new("ddi-goose");
    let pki = make_pki(scratch.path());
    let g = goosebit(scratch.path(), &pki.server_cert, &pki.server_key);
    let url = format!("https://127.0.0.1:{}", g.port);
    let dir = scratch.path().join("dev");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let d = Device::new(
        &dir,
        &Setup {
            endpoint: &url,
            token: None,
            host_id: "edge-ddi-1",
            ca_pem: &pki.ca_cert,
            site: "",
            top: "outpost:\n  server:\n    protocol: ddi\n    ddi:\n      tenant: DEFAULT\n      token: TestTargetToken0123456789abcdef01\n  timeouts:\n    connect: 2\n    request: 10\n",
        },
    );
    let (code, out, err) = d.run(&["-v", "checkin"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("as edge-ddi-1; configData sent (asked for)"),
        "{out}"
    );
    let db = scratch.path().join("goosebit.sqlite3");
    let q = |sql: &str| {
        let o = Command::new("sqlite3")
            .arg(&db)
            .arg(sql)
            .output()
            .expect("sqlite3");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(
        q("select id from device"),
        "edge-ddi-1",
        "registered by the first poll"
    );

    let (code, out, err) = d.run(&["-v", "checkin"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("configData unchanged; next poll in 42 s (00:00:42)"),
        "the server's sleep after configData: {out}"
    );

    let (code, out, err) = d.run(&["check", "--network", "--json", "--only", "arch"]);
    assert!(code == 0 || code == 1, "{err}");
    assert!(
        out.contains("hawkBit DDI: polling sleep 00:00:42 (42 s)"),
        "{out}"
    );
    assert!(!out.contains("TestTargetToken") && !err.contains("TestTargetToken"));
}
