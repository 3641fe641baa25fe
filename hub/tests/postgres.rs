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

use common::hub::{client, hub_bin, post, Reply};
use common::tls::{make_pki, Ca, TempDir, TestPki, FUTURE, PAST};
use outpost::proto::{
    self, CheckinRequest, CheckinResponse, ClusterReport, ErrorBody, Health, Interface, Inventory,
    RegisterRequest, RegisterResponse, UpgradeReport, PATH_CHECKIN, PATH_REGISTER,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::testpg::{Pg, PASSWORD};

/// The environment a hub on this database gets: the password in a 0600
/// file named by OUTPOST_HUB_DB_PASSWORD_FILE, never in argv.
fn hub_command(dir: &Path, url: &str) -> Command {
    let pwfile = common::backend::password_file(dir);
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
    // This server has no TLS: sslmode=require is refused (exit 16, one
    // line), never a silent plain-text connection; prefer (libpq's
    // default, no sslmode) falls back to plain text as libpq does.
    let (code, _, err) = cli(
        d,
        &url.replace("sslmode=disable", "sslmode=require"),
        &["token", "list"],
    );
    assert_eq!(code, 16, "sslmode=require without TLS: {err}");
    assert!(err.contains("does not offer TLS"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let (code, _, err) = cli(d, &url.replace("?sslmode=disable", ""), &["token", "list"]);
    assert_eq!(
        code, 0,
        "no sslmode (prefer) on a server without TLS: {err}"
    );
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

/// TLS to PostgreSQL: a server with `ssl=on` and a certificate for
/// pg.outpost.test made here by a test CA; the hub reaches it on 127.0.0.1
/// (`hostaddr`) under that name. verify-full and verify-ca accept it and
/// the hub serves over it (the server's pg_stat_ssl shows the sessions
/// encrypted); another CA, another host name, a missing CA file are
/// refused, each with one line and its exit code.
#[test]
fn tls_to_postgresql_verify_full_verify_ca_require() {
    let dir = TempDir::new("pg-tls");
    let d = dir.path();
    let ca = Ca::new_in(d, "db-ca");
    let other = Ca::new_in(d, "other-db-ca");
    let leaf = ca.leaf("pg", "DNS:pg.outpost.test", PAST, FUTURE);
    let pg = Pg::start_tls(d, &leaf.cert, &leaf.key);
    let port = pg.port;
    let by_name = |mode: &str, root: &Path| {
        format!(
            "postgres://outpost@pg.outpost.test:{port}/postgres?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}",
            root.display()
        )
    };
    let by_ip = |mode: &str, root: &Path| {
        format!(
            "postgres://outpost@127.0.0.1:{port}/postgres?sslmode={mode}&sslrootcert={}",
            root.display()
        )
    };
    let one_line = |err: &str| {
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!err.contains(PASSWORD), "no password: {err}");
    };

    // verify-full: the right CA and the name in the certificate.
    let full = by_name("verify-full", &ca.cert);
    let (code, _, err) = cli(d, &full, &["token", "create", "--expires", "1d"]);
    assert_eq!(code, 0, "verify-full: {err}");

    // Another CA: refused, exit 16 (certificate not trusted), one line.
    let (code, _, err) = cli(d, &by_name("verify-full", &other.cert), &["token", "list"]);
    assert_eq!(code, 16, "wrong CA: {err}");
    assert!(err.contains("not signed by the CA in sslrootcert"), "{err}");
    one_line(&err);
    let (code, _, err) = cli(d, &by_name("verify-ca", &other.cert), &["token", "list"]);
    assert_eq!(code, 16, "wrong CA under verify-ca: {err}");
    one_line(&err);
    // require with a CA file checks the CA, as libpq does.
    let (code, _, err) = cli(d, &by_name("require", &other.cert), &["token", "list"]);
    assert_eq!(code, 16, "wrong CA under require with sslrootcert: {err}");

    // The host name in --db (127.0.0.1) is not the certificate's:
    // verify-full refuses, verify-ca (chain only) accepts.
    let (code, _, err) = cli(d, &by_ip("verify-full", &ca.cert), &["token", "list"]);
    assert_eq!(code, 16, "name mismatch: {err}");
    assert!(err.contains("does not name the host"), "{err}");
    one_line(&err);
    let (code, _, err) = cli(d, &by_ip("verify-ca", &ca.cert), &["token", "list"]);
    assert_eq!(code, 0, "verify-ca ignores the name: {err}");
    // require without a CA file: encrypted, not authenticated (libpq's
    // meaning), so it connects.
    let require = format!("postgres://outpost@127.0.0.1:{port}/postgres?sslmode=require");
    let (code, _, err) = cli(d, &require, &["token", "list"]);
    assert_eq!(code, 0, "require without a CA: {err}");
    // No sslmode: prefer, TLS as the server offers it.
    let prefer = format!("postgres://outpost@127.0.0.1:{port}/postgres");
    let (code, _, err) = cli(d, &prefer, &["token", "list"]);
    assert_eq!(code, 0, "no sslmode (prefer) on a TLS server: {err}");

    // Bad TLS settings: one line, exit 2 (usage) or 3 (configuration).
    let no_ca = format!("postgres://outpost@127.0.0.1:{port}/postgres?sslmode=verify-full");
    let (code, _, err) = cli(d, &no_ca, &["token", "list"]);
    assert_eq!(code, 2, "verify-full without sslrootcert: {err}");
    assert!(err.contains("need sslrootcert=FILE"), "{err}");
    one_line(&err);
    let (code, _, err) = cli(
        d,
        &by_name("verify-full", &d.join("missing.pem")),
        &["token", "list"],
    );
    assert_eq!(code, 3, "missing CA file: {err}");
    assert!(err.contains("missing.pem"), "{err}");
    one_line(&err);
    let (code, _, err) = cli(d, &format!("{full}&sslkey=/k"), &["token", "list"]);
    assert_eq!(code, 2, "client key: {err}");
    one_line(&err);

    // A hub serving over verify-full: a device registers and checks in,
    // and every session of the hub is encrypted on the server's side.
    let pki = make_pki(d);
    let hub = Serve::start(d, &full, &pki, 1);
    let (code, token, err) = cli(d, &full, &["token", "create", "--expires", "1d"]);
    assert_eq!(code, 0, "token create: {err}");
    let token = token.lines().next().unwrap_or("").trim().to_string();
    let agent = client(Some(&pki.ca_cert));
    let r = post(
        &agent,
        &hub.url,
        PATH_REGISTER,
        &proto::encode(&register_req(&token, "tls-host", &secret(1, 1))),
        None,
    );
    assert_eq!(r.status, 200, "register over a TLS database: {}", r.body);
    let resp: RegisterResponse = proto::decode(&r.body).expect("answer");
    let r = checkin(&agent, &hub.url, &resp.credential, "tls-host");
    assert_eq!(r.status, 200, "check-in over a TLS database: {}", r.body);
    let mut pc = pg.client();
    let rows = pc
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'outpost-hub'",
            &[],
        )
        .expect("pg_stat_ssl");
    assert!(!rows.is_empty(), "the hub has sessions open");
    assert!(
        rows.iter().all(|r| r.get::<_, bool>(0)),
        "every hub session is TLS"
    );
    drop(hub);
}

/// The race tests' set-up: one PostgreSQL, two hubs on it (stopped when
/// dropped), a registration token and a client trusting the hubs' CA.
struct TwoHubs {
    pg: Pg,
    url: String,
    hubs: [Serve; 2],
    urls: [String; 2],
    token: String,
    agent: ureq::Agent,
}

fn two_hubs(d: &Path) -> TwoHubs {
    let pg = Pg::start(d);
    let url = pg.url();
    let pki = make_pki(d);
    let a = Serve::start(d, &url, &pki, 1);
    let b = Serve::start(d, &url, &pki, 2);
    let urls = [a.url.clone(), b.url.clone()];
    let (code, token, err) = cli(d, &url, &["token", "create", "--expires", "1d"]);
    assert_eq!(code, 0, "token create: {err}");
    let token = token.lines().next().unwrap_or("").trim().to_string();
    let agent = client(Some(&pki.ca_cert));
    TwoHubs {
        pg,
        url,
        hubs: [a, b],
        urls,
        token,
        agent,
    }
}

/// A staged rollout decided by devices checking in through two hubs at
/// once: canary 2, max-parallel 3 over 12 devices, every device in its own
/// thread checking in through the two hubs in turn, upgrading when
/// offered (on trial through one hub, committed through the other) while
/// the others keep checking in. Each rollout step is decided inside some
/// check-in's transaction on either hub, so a lost or stale update would
/// offer too many devices or forget one. Checked from the devices' side
/// with one event counter, counting only what is certain (a device is
/// surely in flight from the moment it received its offer until it sent
/// its commit): never more than 3 in flight; no other device offered
/// before both canaries sent their commits; the stored rollout offered
/// every device exactly once, in host-ID order, and ends `done`.
#[test]
fn rollout_waves_hold_when_devices_race_through_two_hubs() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = TempDir::new("pg-rollout-race");
    let d = dir.path();
    let TwoHubs {
        pg,
        url,
        hubs: _hubs,
        urls,
        token,
        agent,
    } = two_hubs(d);
    const N: usize = 12;
    let hosts: Vec<String> = (0..N).map(|i| format!("dev-{i:02}")).collect();
    let mut creds = BTreeMap::new();
    for (i, h) in hosts.iter().enumerate() {
        let r = post(
            &agent,
            &urls[i % 2],
            PATH_REGISTER,
            &proto::encode(&register_req(&token, h, &secret(i, 0))),
            None,
        );
        assert_eq!(r.status, 200, "register {h}: {}", r.body);
        let resp: RegisterResponse = proto::decode(&r.body).expect("answer");
        creds.insert(h.clone(), resp.credential);
    }

    // A signed release 0.2.0 (scripts/sign, signify) and its rollout.
    let sign = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/sign");
    let run = |c: &mut Command| {
        let out = c.output().expect("scripts/sign");
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new(sign).arg("keygen").arg(d.join("rel")));
    let bin = d.join("outpost-0.2.0-x86_64-linux-musl");
    std::fs::write(&bin, b"\x7fELF not really a binary, never run here\n").expect("write");
    run(Command::new(sign)
        .arg("manifest")
        .arg(d.join("rel.sec"))
        .arg(&bin)
        .args(["0.2.0", "x86_64"]));
    let manifest = format!("{}.manifest", bin.display());
    let pubkey = d.join("rel.pub").display().to_string();
    let (code, out, err) = cli(d, &url, &["release", "add", &manifest, "--key", &pubkey]);
    assert_eq!(code, 0, "release add: {out}{err}");
    let (code, out, err) = cli(
        d,
        &url,
        &[
            "rollout",
            "start",
            "--version",
            "0.2.0",
            "--canary",
            "2",
            "--max-parallel",
            "3",
        ],
    );
    assert_eq!(code, 0, "rollout start: {out}{err}");

    let send = |url: &str, h: &str, agent_v: &str, report: Option<&str>| -> CheckinResponse {
        let mut req = checkin_req(h, "");
        req.agent = agent_v.into();
        req.upgrade = report.map(|state| UpgradeReport {
            state: state.into(),
            from: "0.1.0".into(),
            to: "0.2.0".into(),
            reason: String::new(),
            code: 0,
        });
        let r = post(
            &agent,
            url,
            PATH_CHECKIN,
            &proto::encode(&req),
            Some(&creds[h]),
        );
        assert_eq!(r.status, 200, "check-in {h}: {}", r.body);
        proto::decode(&r.body).expect("check-in answer")
    };
    // (offer received, commit sent) on one counter, per device.
    let clock = AtomicU64::new(0);
    let events: Vec<(String, u64, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let (urls, send, clock) = (&urls, &send, &clock);
                s.spawn(move || {
                    // Bounded: a waiting device checks in at most 400
                    // times, 10 ms apart.
                    for k in 0..400 {
                        let a = send(&urls[(i + k) % 2], h, "0.1.0", None);
                        let offered = a
                            .desired
                            .and_then(|d| d.upgrade)
                            .is_some_and(|u| u.version == "0.2.0");
                        if offered {
                            let got = clock.fetch_add(1, Ordering::SeqCst);
                            send(&urls[(i + k + 1) % 2], h, "0.2.0", Some("on_trial"));
                            let sent = clock.fetch_add(1, Ordering::SeqCst);
                            send(&urls[(i + k) % 2], h, "0.2.0", Some("committed"));
                            return Some((h.to_string(), got, sent));
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    None
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("device thread"))
            .collect::<Option<Vec<_>>>()
            .expect("every device got its offer within its 400 check-ins")
    });
    // Never more than max-parallel surely in flight at once.
    for (h, got, _) in &events {
        let in_flight = events
            .iter()
            .filter(|(_, g, s)| g <= got && *got < *s)
            .count();
        assert!(
            in_flight <= 3,
            "{in_flight} in flight when {h} got its offer: {events:?}"
        );
    }
    // No device but the canaries before both canaries committed.
    let canaries_sent = events[..2].iter().map(|e| e.2).max().unwrap_or(0);
    for (h, got, _) in &events[2..] {
        assert!(
            *got > canaries_sent,
            "{h} offered before the canaries committed: {events:?}"
        );
    }
    let (code, out, err) = cli(d, &url, &["rollout", "status"]);
    assert_eq!(code, 0, "rollout status: {err}");
    assert!(out.starts_with("rollout of 0.2.0: done"), "{out}");
    // The stored rollout offered each device once, in host-ID order.
    let mut pc = pg.client();
    let text: String = pc
        .query_one("SELECT value FROM meta WHERE key = 'rollout'", &[])
        .expect("rollout record")
        .get(0);
    let rec: outpost_hub::rollout::Rollout =
        miniserde::json::from_str(&text).expect("rollout record JSON");
    assert_eq!(rec.offered, hosts, "offered once each, in order");
}

/// A K3s cluster's order when its members check in through two hubs at
/// once, each member in its own thread, the hubs in turn: the init server
/// asks through both hubs at the same moment and gets one bootstrap token;
/// no joiner is released before the init server sent `ready` with its K10
/// token, and each gets exactly that token; the second join-server only
/// after the first sent `ready` (etcd members join one at a time). As in
/// the rollout test, only what is certain is compared: a role received
/// after a report was sent, on one event counter.
#[test]
fn cluster_order_holds_when_members_race_through_two_hubs() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = TempDir::new("pg-cluster-race");
    let d = dir.path();
    let TwoHubs {
        pg: _pg,
        url,
        hubs,
        urls,
        token,
        agent,
    } = two_hubs(d);
    let members = ["edge-a", "edge-b", "edge-c", "edge-w"];
    let mut creds = BTreeMap::new();
    for (i, h) in members.iter().enumerate() {
        let mut req = register_req(&token, h, &secret(i, 7));
        req.inventory = Inventory {
            arch: "x86_64".into(),
            cpus: 4,
            memory_bytes: 8_000_000_000,
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0".into(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: format!("52:54:00:12:34:5{i}"),
                addrs: vec![format!("10.0.0.1{i}/24")],
            }],
            ..Default::default()
        };
        let r = post(
            &agent,
            &urls[i % 2],
            PATH_REGISTER,
            &proto::encode(&req),
            None,
        );
        assert_eq!(r.status, 200, "register {h}: {}", r.body);
        let resp: RegisterResponse = proto::decode(&r.body).expect("answer");
        creds.insert(h.to_string(), resp.credential);
    }
    let ok = |args: &[&str]| {
        let (code, out, err) = cli(d, &url, args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    };
    ok(&[
        "cluster",
        "create",
        "edge-1",
        "--distro",
        "k3s",
        "--version",
        "v1.31.4+k3s1",
        "--endpoint",
        "vip:10.0.0.100",
        "--interface",
        "eth0",
    ]);
    for (h, role) in [
        ("edge-a", "control-plane"),
        ("edge-b", "control-plane"),
        ("edge-c", "control-plane"),
        ("edge-w", "worker"),
    ] {
        ok(&["cluster", "add", "edge-1", h, "--role", role]);
    }
    // Both hubs seal with one key (one state directory here; on separate
    // machines the operator copies it): made before the race.
    ok(&["cluster", "show", "edge-1"]);

    let k10 = format!("K10{}::server:{}", "ab".repeat(32), "s3cr3t".repeat(4));
    let send = |url: &str, h: &str, report: Option<(&str, &str, Option<&str>)>| {
        let mut req = checkin_req(h, "");
        req.cluster = report.map(|(role, state, tok)| ClusterReport {
            cluster: "edge-1".into(),
            role: role.into(),
            state: state.into(),
            reason: String::new(),
            log_tail: String::new(),
            token: tok.map(str::to_string),
        });
        let r = post(
            &agent,
            url,
            PATH_CHECKIN,
            &proto::encode(&req),
            Some(&creds[h]),
        );
        assert_eq!(
            r.status,
            200,
            "check-in {h}: {}; hub logs:\n{}{}",
            r.body,
            std::fs::read_to_string(d.join("hub1.stderr")).unwrap_or_default(),
            std::fs::read_to_string(d.join("hub2.stderr")).unwrap_or_default()
        );
        let a: CheckinResponse = proto::decode(&r.body).expect("check-in answer");
        a.desired.and_then(|d| d.cluster).filter(|c| !c.leave)
    };
    let clock = AtomicU64::new(0);
    // Per member: (role, token, role received at, ready sent at).
    type Seen = (String, String, u64, u64);
    let seen: Vec<Seen> = std::thread::scope(|s| {
        let hs: Vec<_> = members
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let (urls, send, clock, k10) = (&urls, &send, &clock, &k10);
                s.spawn(move || -> Seen {
                    if *h == "edge-a" {
                        // The init server asks through both hubs at once.
                        let (r1, r2) = std::thread::scope(|s2| {
                            let x = s2.spawn(|| send(&urls[0], h, None));
                            let y = s2.spawn(|| send(&urls[1], h, None));
                            (x.join().expect("a1"), y.join().expect("a2"))
                        });
                        let (r1, r2) = (r1.expect("init role"), r2.expect("init role"));
                        assert_eq!(r1.role, "init-server");
                        assert_eq!(r1.token, r2.token, "one bootstrap token from both hubs");
                        let got = clock.fetch_add(1, Ordering::SeqCst);
                        for k in 0..3 {
                            let r = send(&urls[k % 2], h, Some(("init-server", "running", None)));
                            assert_eq!(
                                r.map(|r| r.token),
                                Some(r1.token.clone()),
                                "same bootstrap token"
                            );
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        let ready = clock.fetch_add(1, Ordering::SeqCst);
                        send(&urls[1], h, Some(("init-server", "ready", Some(k10))));
                        return (r1.role, r1.token, got, ready);
                    }
                    // Joiners: bounded, at most 400 check-ins 10 ms apart.
                    for k in 0..400 {
                        let asked = clock.fetch_add(1, Ordering::SeqCst);
                        if let Some(r) = send(&urls[(i + k) % 2], h, None) {
                            let got = clock.fetch_add(1, Ordering::SeqCst);
                            assert!(got > asked);
                            send(
                                &urls[(i + k + 1) % 2],
                                h,
                                Some((&r.role, "installing", None)),
                            );
                            std::thread::sleep(Duration::from_millis(30));
                            let ready = clock.fetch_add(1, Ordering::SeqCst);
                            send(&urls[(i + k) % 2], h, Some((&r.role, "ready", None)));
                            return (r.role, r.token, got, ready);
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    panic!("{h} got no role within 400 check-ins");
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("member thread"))
            .collect()
    });
    let (init, bsrv, csrv, w) = (&seen[0], &seen[1], &seen[2], &seen[3]);
    assert_ne!(
        init.1, k10,
        "the init server starts with its bootstrap token"
    );
    for (h, m) in [("edge-b", bsrv), ("edge-c", csrv), ("edge-w", w)] {
        assert!(
            m.2 > init.3,
            "{h} released before the init server sent ready: {seen:?}"
        );
        assert_eq!(m.1, k10, "{h} gets the init server's K10 token");
    }
    assert_eq!(
        (bsrv.0.as_str(), csrv.0.as_str(), w.0.as_str()),
        ("join-server", "join-server", "join-agent")
    );
    // etcd members one at a time: whichever join-server came second did
    // so after the first sent ready.
    let (first, second) = if bsrv.2 < csrv.2 {
        (bsrv, csrv)
    } else {
        (csrv, bsrv)
    };
    assert!(second.2 > first.3, "two join-servers at once: {seen:?}");
    drop(hubs);
}
