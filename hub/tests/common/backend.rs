//! The hub's database for its protocol tests: SQLite (a file in the test's
//! directory, the default) or, when `OUTPOST_TEST_HUB_BACKEND=postgres`, a
//! fresh database on one real PostgreSQL 15 shared by the test binary
//! (testpg.rs starts it on first use; a watcher stops it and removes its
//! directory when the test process is gone). scripts/test runs the
//! protocol and cluster suites both ways.
#![allow(dead_code)]

use super::hub::Hub;
use super::testpg::{Pg, PASSWORD};
use super::tls::TestPki;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The environment variable that selects the backend.
pub const BACKEND_ENV: &str = "OUTPOST_TEST_HUB_BACKEND";

/// Whether this run uses PostgreSQL (`OUTPOST_TEST_HUB_BACKEND=postgres`);
/// any other value than `sqlite`, `postgres` or nothing is a mistake.
pub fn is_pg() -> bool {
    match std::env::var(BACKEND_ENV).as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("{BACKEND_ENV}={other}: expected sqlite or postgres"),
    }
}

struct Server {
    port: u16,
    pwfile: PathBuf,
    /// Serialises CREATE DATABASE (PostgreSQL copies template1 one at a
    /// time and fails a second copy that starts meanwhile).
    admin: Mutex<postgres::Client>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "outpost-test-{}-shared-postgresql",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("shared PostgreSQL dir");
        let pg = Pg::start(&dir);
        let pwfile = password_file(&dir);
        let admin = Mutex::new(pg.client());
        let port = pg.port;
        pg.keep_until_exit(&dir);
        Server {
            port,
            pwfile,
            admin,
        }
    })
}

/// `dir/db-password`: the test database's password in a 0600 file (written
/// once), which hubs read through OUTPOST_HUB_DB_PASSWORD_FILE, never argv.
pub fn password_file(dir: &Path) -> PathBuf {
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
    pwfile
}

/// A database for one hub of a test: `(--db, environment)`. SQLite:
/// `dir/hub.db`. PostgreSQL: a new empty database on the shared server,
/// the password in a 0600 file named by OUTPOST_HUB_DB_PASSWORD_FILE, the
/// hub's local files (sealing key, artifacts) in `dir`.
pub fn database(dir: &Path) -> (PathBuf, Vec<(String, OsString)>) {
    if !is_pg() {
        return (dir.join("hub.db"), Vec::new());
    }
    static N: AtomicUsize = AtomicUsize::new(0);
    let s = server();
    let name = format!("hub_{}", N.fetch_add(1, Ordering::SeqCst));
    s.admin
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("CREATE DATABASE");
    let url = format!(
        "postgres://outpost@127.0.0.1:{}/{name}?sslmode=disable",
        s.port
    );
    let env = vec![
        (
            "OUTPOST_HUB_DB_PASSWORD_FILE".to_string(),
            s.pwfile.clone().into_os_string(),
        ),
        (
            "OUTPOST_HUB_STATE_DIR".to_string(),
            dir.as_os_str().to_os_string(),
        ),
    ];
    (PathBuf::from(url), env)
}

/// `Hub::start` on this run's backend, with a fresh database.
pub fn start(dir: &Path, pki: Option<&TestPki>, extra: &[&str]) -> Hub {
    let (db, env) = database(dir);
    Hub::start_db(dir, db, env, "127.0.0.1:0", pki, extra)
}

/// A new hub on the database of `old` (a restart).
pub fn restart(old: &Hub, dir: &Path, pki: Option<&TestPki>, extra: &[&str]) -> Hub {
    Hub::start_db(
        dir,
        old.db.clone(),
        old.env.clone(),
        "127.0.0.1:0",
        pki,
        extra,
    )
}

/// The database's own consistency check: SQLite's `PRAGMA
/// integrity_check` (the sqlite3 CLI), or PostgreSQL's amcheck over every
/// B-tree index of the hub's tables. Panics on damage.
pub fn assert_integrity(hub: &Hub) {
    if !is_pg() {
        let out = std::process::Command::new("sqlite3")
            .arg(&hub.db)
            .arg("PRAGMA integrity_check;")
            .output()
            .expect("running sqlite3 (Debian package sqlite3)");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ok",
            "database integrity"
        );
        return;
    }
    let url = hub.db.to_string_lossy().into_owned();
    let mut cfg: postgres::Config = url.parse().expect("hub's URL");
    cfg.password(PASSWORD);
    let mut c = cfg.connect(postgres::NoTls).expect("connect");
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        .expect("amcheck (postgresql-15's contrib)");
    let checked = c
        .query(
            "SELECT bt_index_check(c.oid, true) FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_am a ON a.oid = c.relam \
             WHERE n.nspname = 'public' AND a.amname = 'btree'",
            &[],
        )
        .expect("database integrity (amcheck)");
    assert!(!checked.is_empty(), "amcheck found no index to check");
}
