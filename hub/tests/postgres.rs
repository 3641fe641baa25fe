//! Several `outpost-hub serve` processes on one real PostgreSQL 15 (Debian's
//! `postgresql-15`, started here: `initdb` in a temp dir as an unprivileged
//! user, a password login (scram-sha-256), listening on 127.0.0.1 and a
//! socket in that dir only) behave as one server: migrations racing at
//! start apply once, a host ID registers exactly once under concurrent
//! registrations split across three hubs, a credential one hub issued works
//! on the others, a hub killed mid-burst loses nothing it answered, desired state set on the shared database reaches devices
//! through either hub; the password never reaches argv, a log or an error.
//!
//! Needs the PostgreSQL server binaries: `/usr/lib/postgresql/15/bin`, or
//! the directory in `OUTPOST_TEST_PG_BIN` (scripts/test installs
//! postgresql-15). Without them the test fails saying so.

mod common;
#[path = "../src/testpg.rs"]
mod testpg;

use common::hub::{client, hub_bin, post, Reply};
use common::tls::{make_pki, TempDir, TestPki};
use outpost::proto::{
    self, CheckinRequest, CheckinResponse, ErrorBody, Health, Inventory, RegisterRequest,
    RegisterResponse, PATH_CHECKIN, PATH_REGISTER,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use testpg::{Pg, PASSWORD};

/// The environment a hub on this database gets: the password in a 0600
/// file named by OUTPOST_HUB_DB_PASSWORD_FILE, never in argv.
fn hub_command(dir: &Path, url: &str) -> Command {
    let pwfile = dir.join("db-password");
    if !pwfile.exists() {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&pwfile)
            .expect("password file");
        writeln!(f, "{PASSWORD}").expect("password");
    }
    let mut c = Command::new(hub_bin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OUTPOST_") {
            c.env_remove(&k);
        }
    }
    c.env("OUTPOST_HUB_DB_PASSWORD_FILE", &pwfile)
        .env("OUTPOST_HUB_STATE_DIR", dir)
        .arg("--db")
        .arg(url);
    c
}

fn cli(dir: &Path, url: &str, args: &[&str]) -> (i32, String, String) {
    let out = hub_command(dir, url)
        .args(args)
        .output()
        .expect("running outpost-hub");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `outpost-hub serve`; killed on drop.
struct Serve {
    child: Child,
    url: String,
    stderr: PathBuf,
    log: PathBuf,
}

impl Serve {
    fn start(dir: &Path, db: &str, pki: &TestPki, n: usize) -> Serve {
        let stderr = dir.join(format!("hub{n}.stderr"));
        let log = dir.join(format!("requests{n}.jsonl"));
        let mut child = hub_command(dir, db)
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "4"])
            .arg("--tls-cert")
            .arg(&pki.server_cert)
            .arg("--tls-key")
            .arg(&pki.server_key)
            .arg("--request-log")
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawning outpost-hub");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        // Hang guard only.
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        match line.trim().strip_prefix("listening on ") {
            Some(u) => Serve {
                url: u.to_string(),
                child,
                stderr,
                log,
            },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "hub {n} did not start: {line:?} {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn register_req(token: &str, host: &str, secret: &str) -> RegisterRequest {
    RegisterRequest {
        v: 1,
        token: token.into(),
        host_id: host.into(),
        install_secret: secret.into(),
        project: None,
        hostname: "edge".into(),
        tags: BTreeMap::new(),
        agent: "0.1.0".into(),
        inventory: Inventory::default(),
        inventory_hash: "sha256:inv-1".into(),
    }
}

fn checkin_req(host: &str, tag: &str) -> CheckinRequest {
    CheckinRequest {
        v: 1,
        host_id: host.into(),
        agent: "0.1.0".into(),
        health: Health {
            ok: true,
            failing: vec![],
        },
        inventory_hash: "sha256:inv-1".into(),
        desired_tag: tag.into(),
        inventory: None,
        upgrade: None,
        config: None,
        boot: None,
        cluster: None,
    }
}

fn secret(host: usize, machine: usize) -> String {
    format!("{host:02x}{machine:02x}").repeat(16)
}

fn checkin(agent: &ureq::Agent, url: &str, cred: &str, host: &str) -> Reply {
    post(
        agent,
        url,
        PATH_CHECKIN,
        &proto::encode(&checkin_req(host, "")),
        Some(cred),
    )
}

#[test]
fn two_hubs_on_one_postgresql_behave_as_one_server() {
    let dir = TempDir::new("pg-two-hubs");
    let pg = Pg::start(dir.path());
    let url = pg.url();
    let d = dir.path();

    // Secrets stay out of argv: a URL with a password is refused, without
    // repeating it.
    let with_pw = url.replacen("outpost@", &format!("outpost:{PASSWORD}@"), 1);
    let (code, _, err) = cli(d, &with_pw, &["token", "list"]);
    assert_eq!(code, 2, "password in the URL: {err}");
    assert!(err.contains("OUTPOST_HUB_DB_PASSWORD_FILE") && !err.contains(PASSWORD));
    // TLS to the database is not there yet: asking for it is an error, not
    // a silent plain-text connection.
    let (code, _, err) = cli(
        d,
        &url.replace("sslmode=disable", "sslmode=require"),
        &["token", "list"],
    );
    assert_eq!(code, 3, "sslmode=require: {err}");
    assert!(err.contains("TLS to PostgreSQL is not supported"), "{err}");
    // A wrong password: a clear error, exit 20, no password in it.
    let wrong = d.join("wrong-password");
    std::fs::write(&wrong, "not-it\n").expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let out = hub_command(d, &url)
        .env("OUTPOST_HUB_DB_PASSWORD_FILE", &wrong)
        .args(["token", "list"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(20), "wrong password: {err}");
    assert!(err.contains("password authentication failed") && !err.contains("not-it"));
    // A password file others may read is refused.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let out = hub_command(d, &url)
        .env("OUTPOST_HUB_DB_PASSWORD_FILE", &wrong)
        .args(["token", "list"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(4), "world-readable password file");

    // Migrations racing at start: six processes at once on the empty
    // database; every one succeeds and each version is applied once.
    let racers: Vec<Child> = (0..6)
        .map(|_| {
            hub_command(d, &url)
                .args(["token", "list"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in racers {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "a racing start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut pc = pg.client();
    let applied: Vec<i64> = pc
        .query(
            "SELECT version FROM outpost_migrations ORDER BY version",
            &[],
        )
        .expect("migrations")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(applied, vec![1, 2], "each migration exactly once");

    let pki = make_pki(d);
    let a = Serve::start(d, &url, &pki, 1);
    let b = Serve::start(d, &url, &pki, 2);
    let mut c = Serve::start(d, &url, &pki, 3);
    let (code, token, err) = cli(d, &url, &["token", "create", "--expires", "1d"]);
    assert_eq!(code, 0, "token create: {err}");
    let token = token.lines().next().unwrap_or("").trim().to_string();

    // Registration races: 12 host IDs, each claimed by 6 different
    // machines at once (2 through each of three hubs): exactly one wins per host ID,
    // the other five get 409 duplicate_host.
    const HOSTS: usize = 12;
    const MACHINES: usize = 6;
    let urls = [a.url.clone(), b.url.clone()];
    let urls3 = [a.url.clone(), b.url.clone(), c.url.clone()];
    let results: Vec<(usize, usize, Reply)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..MACHINES)
            .map(|m| {
                let urls = &urls3;
                let token = &token;
                let ca = &pki.ca_cert;
                s.spawn(move || {
                    let agent = client(Some(ca));
                    (0..HOSTS)
                        .map(|h| {
                            let req = register_req(token, &format!("host-{h:02}"), &secret(h, m));
                            let r = post(
                                &agent,
                                &urls[(h + m) % 3],
                                PATH_REGISTER,
                                &proto::encode(&req),
                                None,
                            );
                            (h, m, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut winners: BTreeMap<usize, (usize, String)> = BTreeMap::new();
    for (h, m, r) in &results {
        match r.status {
            200 => {
                let resp: RegisterResponse = proto::decode(&r.body).expect("answer");
                assert!(!resp.rotated, "a first registration");
                let old = winners.insert(*h, (*m, resp.credential));
                assert!(old.is_none(), "host-{h:02} registered twice");
            }
            409 => {
                let e: ErrorBody = proto::decode(&r.body).expect("error body");
                assert_eq!(e.error, "duplicate_host");
            }
            s => panic!("host-{h:02} machine {m}: {s} {}", r.body),
        }
    }
    assert_eq!(winners.len(), HOSTS, "every host ID registered once");
    let n: i64 = pc
        .query_one("SELECT count(*) FROM devices", &[])
        .expect("count")
        .get(0);
    assert_eq!(n, HOSTS as i64);
    let uses: i64 = pc
        .query_one("SELECT uses FROM tokens", &[])
        .expect("uses")
        .get(0);
    assert_eq!(
        uses, HOSTS as i64,
        "the token counted once per registration"
    );
    // Registrations racing over three hubs took distinct slots (one
    // sequence), with no gap but the ordinals of refused attempts.
    let (slots, distinct): (i64, i64) = pc
        .query_one("SELECT count(slot), count(DISTINCT slot) FROM devices", &[])
        .map(|r| (r.get(0), r.get(1)))
        .expect("slots");
    assert_eq!(
        (slots, distinct),
        (HOSTS as i64, HOSTS as i64),
        "one slot each"
    );

    // The same machine registering through both hubs at once (a retry
    // racing its first attempt): one first registration, the rest rotate.
    let same: Vec<Reply> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let (urls, token, ca) = (&urls, &token, &pki.ca_cert);
                s.spawn(move || {
                    let req = register_req(token, "host-same", &secret(99, 0));
                    post(
                        &client(Some(ca)),
                        &urls[i % 2],
                        PATH_REGISTER,
                        &proto::encode(&req),
                        None,
                    )
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let firsts = same
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.body);
            proto::decode::<RegisterResponse>(&r.body).expect("answer")
        })
        .filter(|r| !r.rotated)
        .count();
    assert_eq!(firsts, 1, "exactly one first registration of host-same");

    // A credential issued by one hub is accepted by the other.
    let agent = client(Some(&pki.ca_cert));
    for (h, (m, cred)) in &winners {
        let host = format!("host-{h:02}");
        let other = &urls3[(h + m + 1) % 3];
        let r = checkin(&agent, other, cred, &host);
        assert_eq!(r.status, 200, "{host} on the other hub: {}", r.body);
    }
    // A hub killed mid-burst (SIGKILL): every registration it answered
    // 200 is in the registry and works on the others; at most the one in
    // flight got in without its answer; nothing half-written.
    let served = std::sync::atomic::AtomicUsize::new(0);
    let burst: Vec<(String, Result<Reply, String>)> = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let agent = client(Some(&pki.ca_cert));
            (0..40)
                .map(|i| {
                    let host = format!("kill-{i:02}");
                    let req = register_req(&token, &host, &secret(200 + i, 1));
                    let r = common::hub::try_post(
                        &agent,
                        &c.url,
                        PATH_REGISTER,
                        &proto::encode(&req),
                        None,
                    );
                    served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    (host, r)
                })
                .collect()
        });
        // Hang guard: 4 answers, or 60 s.
        let t0 = std::time::Instant::now();
        while served.load(std::sync::atomic::Ordering::SeqCst) < 4
            && t0.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = c.child.kill();
        h.join().expect("burst thread")
    });
    let _ = c.child.wait();
    let ok: Vec<(String, String)> = burst
        .iter()
        .filter_map(|(h, r)| match r {
            Ok(r) if r.status == 200 => Some((
                h.clone(),
                proto::decode::<RegisterResponse>(&r.body)
                    .expect("answer")
                    .credential,
            )),
            _ => None,
        })
        .collect();
    assert!(
        ok.len() >= 3 && ok.len() < 40,
        "killed mid-burst: {} answered",
        ok.len()
    );
    let in_db: i64 = pc
        .query_one(
            "SELECT count(*) FROM devices WHERE host_id LIKE 'kill-%'",
            &[],
        )
        .expect("count")
        .get(0);
    assert!(
        in_db as usize >= ok.len() && in_db as usize <= ok.len() + 1,
        "{in_db} in the registry, {} answered",
        ok.len()
    );
    for (host, cred) in &ok {
        assert_eq!(checkin(&agent, &urls[0], cred, host).status, 200, "{host}");
    }

    // ... and a wrong one by neither.
    for u in &urls {
        assert_eq!(checkin(&agent, u, "opc_nope", "host-00").status, 401);
    }

    // Desired state set on the shared database reaches the device through
    // either hub, and the same desired tag comes from both.
    let (h0, (_, cred0)) = winners.iter().next().expect("a winner");
    let host0 = format!("host-{h0:02}");
    let (code, _, err) = cli(
        d,
        &url,
        &["set-config", "--device", &host0, "agent.log_level=debug"],
    );
    assert_eq!(code, 0, "set-config: {err}");
    let (code, _, err) = cli(d, &url, &["label", &host0, "site=berlin"]);
    assert_eq!(code, 0, "label: {err}");
    let answers: Vec<CheckinResponse> = urls
        .iter()
        .map(|u| {
            let r = checkin(&agent, u, cred0, &host0);
            assert_eq!(r.status, 200, "{}", r.body);
            proto::decode(&r.body).expect("answer")
        })
        .collect();
    for a in &answers {
        let d = a.desired.as_ref().expect("desired state");
        assert_eq!(
            d.config.get("agent.log_level").map(String::as_str),
            Some("debug")
        );
        assert_eq!(d.labels.get("site").map(String::as_str), Some("berlin"));
    }
    assert_eq!(answers[0].desired_tag, answers[1].desired_tag);
    // Load shedding switched on once holds on both hubs.
    let (code, _, err) = cli(d, &url, &["shed", "503", "--retry-after", "7"]);
    assert_eq!(code, 0, "shed: {err}");
    for u in &urls {
        let r = checkin(&agent, u, cred0, &host0);
        assert_eq!((r.status, r.retry_after.as_deref()), (503, Some("7")));
    }
    let (code, _, _) = cli(d, &url, &["shed", "off"]);
    assert_eq!(code, 0);
    // A database outage: the hubs answer 503 with Retry-After while it is
    // down, and serve again once it is back (each connection of each hub
    // connects again on its next use).
    pg.ctl("stop");
    for u in &urls {
        let r = checkin(&agent, u, cred0, &host0);
        assert_eq!(
            (r.status, r.retry_after.as_deref()),
            (503, Some("5")),
            "database down: {}",
            r.body
        );
    }
    pg.ctl("start");
    for u in &urls {
        // More than the hub's 4 connections, so every one has reconnected.
        for _ in 0..10 {
            let r = checkin(&agent, u, cred0, &host0);
            assert_eq!(r.status, 200, "after the database restart: {}", r.body);
        }
    }
    drop(pc);
    let pc = pg.client();
    // The operator's view counts the check-ins of both hubs; through the
    // unix socket as well as over TCP.
    let (code, out, err) = cli(d, &pg.socket_url(), &["devices", "--json"]);
    assert_eq!(code, 0, "devices over the unix socket: {err}");
    assert!(out.contains(&format!("\"host_id\":\"{host0}\"")));
    let (code, out, err) = cli(d, &url, &["devices", "--json"]);
    assert_eq!(code, 0, "devices: {err}");
    assert!(out.contains(&format!("\"host_id\":\"{host0}\"")));

    // The password is in no log and no error of the hubs.
    for s in [&a, &b] {
        for f in [&s.stderr, &s.log] {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            assert!(!text.contains(PASSWORD), "password in {}", f.display());
        }
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", s.child.id())).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(PASSWORD),
            "password in argv"
        );
    }
    drop((a, b));
    drop(pc);
    drop(pg);
}
