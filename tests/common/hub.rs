//! Test support for the reference hub: find the `outpost-hub` binary
//! (`OUTPOST_TEST_HUB` when set, so an aarch64 test run under qemu can use a
//! natively built hub; else the one cargo built), start it on a free
//! loopback port with a fresh database and test certificates, run its
//! operator commands, read its request log, and talk to it with ureq set up
//! the way the agent does (rustls with ring, only the test CA trusted, no
//! proxy from the environment).
#![allow(dead_code)]

use super::tls::TestPki;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Path of the hub binary, or a clear panic saying how to get one: the hub is
/// its own crate (hub/), so the agent's tests find the one cargo built into
/// the same target directory (`cargo build -p outpost-hub`).
pub fn hub_bin() -> PathBuf {
    if let Ok(p) = std::env::var("OUTPOST_TEST_HUB") {
        if !p.trim().is_empty() {
            return PathBuf::from(p);
        }
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_outpost-hub") {
        return PathBuf::from(p);
    }
    // target/<triple>/debug/deps/<test> -> target/<triple>/debug/outpost-hub
    let beside = std::env::current_exe()
        .ok()
        .and_then(|t| Some(t.parent()?.parent()?.join("outpost-hub")));
    match beside {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "no outpost-hub: build it (cargo build -p outpost-hub) or set OUTPOST_TEST_HUB to a native build"
        ),
    }
}

/// A hub command with `--db DB` and a clean environment.
pub fn hub_cmd(db: &Path) -> Command {
    hub_cmd_env(db, &[])
}

/// The same with `env` added: what a `--db` other than an SQLite file
/// needs (a PostgreSQL URL: the password file, the state directory; the
/// hub's own tests set these up, hub/tests/common/backend.rs).
pub fn hub_cmd_env(db: &Path, env: &[(String, OsString)]) -> Command {
    let mut c = Command::new(hub_bin());
    c.arg("--db").arg(db);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OUTPOST_") {
            c.env_remove(&k);
        }
    }
    c.envs(env.iter().map(|(k, v)| (k, v)));
    c
}

/// Run a hub operator command: (exit code, stdout, stderr).
pub fn hub_run(db: &Path, args: &[&str]) -> (i32, String, String) {
    let out = hub_cmd(db)
        .args(args)
        .output()
        .expect("running outpost-hub");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running hub; killed on drop.
pub struct Hub {
    child: Option<Child>,
    /// `https://127.0.0.1:PORT` (or `http://` with `--insecure-http`).
    pub url: String,
    /// The SQLite file, or a `postgres://` URL (then `env` holds what its
    /// commands need).
    pub db: PathBuf,
    pub env: Vec<(String, OsString)>,
    pub log: PathBuf,
    pub stderr: PathBuf,
}

impl Hub {
    /// Start `outpost-hub serve` on 127.0.0.1:0 with the database and
    /// request log in `dir`; TLS from `pki`, or plain HTTP when `None`.
    pub fn start(dir: &Path, pki: Option<&TestPki>, extra: &[&str]) -> Hub {
        Hub::start_on(dir, "127.0.0.1:0", pki, extra)
    }

    pub fn start_on(dir: &Path, listen: &str, pki: Option<&TestPki>, extra: &[&str]) -> Hub {
        Hub::start_db(dir, dir.join("hub.db"), Vec::new(), listen, pki, extra)
    }

    /// Start on database `db` (a file or a URL) with `env` for it; the
    /// request log and stderr in `dir`.
    pub fn start_db(
        dir: &Path,
        db: PathBuf,
        env: Vec<(String, OsString)>,
        listen: &str,
        pki: Option<&TestPki>,
        extra: &[&str],
    ) -> Hub {
        let log = dir.join("requests.jsonl");
        let stderr = dir.join("hub.stderr");
        let mut cmd = hub_cmd_env(&db, &env);
        cmd.args(["serve", "--listen", listen, "--request-log"])
            .arg(&log);
        match pki {
            Some(p) => {
                cmd.arg("--tls-cert")
                    .arg(&p.server_cert)
                    .arg("--tls-key")
                    .arg(&p.server_key);
            }
            None => {
                cmd.arg("--insecure-http");
            }
        }
        cmd.args(extra);
        let err = std::fs::File::create(&stderr).expect("hub stderr file");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning outpost-hub");
        let out = child.stdout.take().expect("hub stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the hub never writes into a closed pipe.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        // Hang guard only: the hub prints this line as soon as it is bound.
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .map(str::to_string);
        let Some(url) = url else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "hub did not start: stdout {line:?}, stderr {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        Hub {
            child: Some(child),
            url,
            db,
            env,
            log,
            stderr,
        }
    }

    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in hub URL")
    }

    /// Run an operator command against this hub's database.
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = hub_cmd_env(&self.db, &self.env)
            .args(args)
            .output()
            .expect("running outpost-hub");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Create a registration token and return it.
    pub fn token(&self, args: &[&str]) -> String {
        let mut a = vec!["token", "create"];
        a.extend_from_slice(args);
        let (code, out, err) = self.cli(&a);
        assert_eq!(code, 0, "token create: {err}");
        out.trim().to_string()
    }

    /// The request log, one parsed line per request.
    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Kill the hub and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A ureq agent as the agent will build it: rustls with ring, only `ca`
/// trusted (or no TLS at all for http:// URLs), no environment proxy, HTTP
/// errors returned as responses, a generous global timeout (hang guard).
pub fn client(ca: Option<&Path>) -> ureq::Agent {
    use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
    // ureq is built without a bundled provider (as in the agent): install
    // ring, the only one compiled in; a second call finds it set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut tls = TlsConfig::builder().provider(TlsProvider::Rustls);
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).expect("reading test CA");
        let cert = Certificate::from_pem(&pem).expect("test CA is PEM");
        tls = tls.root_certs(RootCerts::new_with_certs(&[cert]));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .max_idle_connections(0)
        .build()
        .into()
}

/// One answer: status, `Retry-After` header, body text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Reply, String> {
    let mut r = r.map_err(|e| e.to_string())?;
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = r.status().as_u16();
    let body = r
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok(Reply {
        status,
        retry_after,
        body,
    })
}

/// POST a JSON body to `url` + `path`, with a bearer credential if given.
pub fn try_post(
    agent: &ureq::Agent,
    url: &str,
    path: &str,
    body: &str,
    bearer: Option<&str>,
) -> Result<Reply, String> {
    let mut req = agent
        .post(format!("{url}{path}"))
        .header("Content-Type", "application/json");
    if let Some(b) = bearer {
        req = req.header("Authorization", format!("Bearer {b}"));
    }
    reply(req.send(body))
}

pub fn post(agent: &ureq::Agent, url: &str, path: &str, body: &str, bearer: Option<&str>) -> Reply {
    try_post(agent, url, path, body, bearer).unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

pub fn get(agent: &ureq::Agent, url: &str, path: &str) -> Reply {
    reply(agent.get(format!("{url}{path}")).call()).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}
