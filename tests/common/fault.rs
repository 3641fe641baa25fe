//! Test support: start and stop `tests/support/faultserver.py` (a native
//! Python process, also when the tests run under qemu) on 127.0.0.1, and
//! give each test its own scratch directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::tls::Leaf;

pub const FAULTSERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/faultserver.py");

/// A fresh, empty directory under the system temp dir, unique per process
/// and call; removed again by `Scratch`'s drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("outpost-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating scratch dir");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running fault server; killed when dropped.
pub struct FaultServer {
    pub port: u16,
    pub tls: bool,
    child: Child,
    pub log: PathBuf,
    _scratch: Scratch,
}

impl FaultServer {
    /// Plain HTTP on 127.0.0.1.
    pub fn plain() -> FaultServer {
        FaultServer::start(None)
    }

    /// HTTPS on 127.0.0.1 with this certificate.
    pub fn tls(leaf: &Leaf) -> FaultServer {
        FaultServer::start(Some(leaf))
    }

    fn start(leaf: Option<&Leaf>) -> FaultServer {
        let scratch = Scratch::new("fault");
        let log = scratch.path().join("requests.log");
        let mut cmd = Command::new("python3");
        cmd.arg(FAULTSERVER)
            .arg("--log")
            .arg(&log)
            .arg("--max-seconds")
            .arg("120");
        if let Some(l) = leaf {
            cmd.arg("--tls-cert")
                .arg(&l.cert)
                .arg("--tls-key")
                .arg(&l.key);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning python3 tests/support/faultserver.py (is python3 installed?)");
        let port = read_port(&mut child);
        FaultServer {
            port,
            tls: leaf.is_some(),
            child,
            log,
            _scratch: scratch,
        }
    }

    /// `https://127.0.0.1:PORT/path` (or http).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    /// The request lines the server saw so far.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_port(child: &mut Child) -> u16 {
    let out = child.stdout.take().expect("fault server stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("reading fault server port");
    line.trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("fault server did not print its port: {line:?}"))
}

/// A loopback port whose TCP connect hangs (the server's blackhole mode:
/// a full backlog that is never accepted). Killed when dropped.
pub struct Blackhole {
    pub port: u16,
    child: Child,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        let mut child = Command::new("python3")
            .arg(FAULTSERVER)
            .args(["--blackhole", "--max-seconds", "60"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning python3 faultserver --blackhole");
        let port = read_port(&mut child);
        Blackhole { port, child }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port on which nothing listens (the server's refuse mode).
pub fn refused_port() -> u16 {
    let mut child = Command::new("python3")
        .arg(FAULTSERVER)
        .arg("--refuse")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning python3 faultserver --refuse");
    let port = read_port(&mut child);
    let _ = child.wait();
    port
}

/// A TLS fault server with a certificate from its own test CA, and the
/// scratch directory both live in (removed on drop).
pub struct TlsFixture {
    pub ca: super::tls::Ca,
    pub server: FaultServer,
    _scratch: Scratch,
}

/// Start a TLS fault server on 127.0.0.1 whose certificate a new CA signed.
pub fn tls_fixture(name: &str) -> TlsFixture {
    let scratch = Scratch::new(name);
    let ca = super::tls::Ca::new(&scratch, "main");
    let server = FaultServer::tls(&ca.good());
    TlsFixture {
        ca,
        server,
        _scratch: scratch,
    }
}
