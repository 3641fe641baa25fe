//! The PostgreSQL backend: connecting (the password from a file or the
//! environment, never from argv), and the versioned schema migrations,
//! applied at start under a database-wide advisory lock so that several
//! hubs starting at once on one database migrate it exactly once.
//!
//! The `postgres` crate is synchronous to us: it drives its own
//! current-thread runtime inside each call, on the calling thread.
//!
//! Must not put the password (or a URL that holds one) in an error or a log.

use outpost::error::{Code, Error, Result};
use std::str::FromStr;

/// The environment variable naming a file that holds the password.
pub const PASSWORD_FILE_ENV: &str = "OUTPOST_HUB_DB_PASSWORD_FILE";
/// The environment variable holding the password itself.
pub const PASSWORD_ENV: &str = "OUTPOST_HUB_DB_PASSWORD";
/// The directory for the hub's local files with PostgreSQL (the key of the
/// sealed cluster secrets, release artifacts); default: the working one.
pub const STATE_DIR_ENV: &str = "OUTPOST_HUB_STATE_DIR";

/// The advisory lock key of the migrations ("outpost" in ASCII).
const MIGRATION_LOCK: i64 = 0x006f_7574_706f_7374;

/// Whether `--db` names a PostgreSQL database rather than a SQLite file.
pub fn is_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// The parsed connection settings and a printable name without secrets.
pub struct Target {
    pub config: postgres::Config,
    pub display: String,
}

/// Parse `--db postgres://USER@HOST:PORT/DB?sslmode=disable` and add the
/// password from `$OUTPOST_HUB_DB_PASSWORD_FILE` or
/// `$OUTPOST_HUB_DB_PASSWORD` (a password in the URL is refused: it would be
/// in argv, visible to every user in ps).
pub fn target(url: &str) -> Result<Target> {
    // The error of the parser may quote the URL: never repeat it.
    let mut config = postgres::Config::from_str(url).map_err(|_| {
        Error::usage(
            "--db: not a valid postgres:// URL (postgres://USER@HOST:PORT/DATABASE[?sslmode=disable])",
        )
    })?;
    if config.get_password().is_some() {
        return Err(Error::usage(format!(
            "--db: the URL holds a password; put it in a file named by {PASSWORD_FILE_ENV} (mode 0600) or in {PASSWORD_ENV}, never on the command line"
        )));
    }
    match config.get_ssl_mode() {
        postgres::config::SslMode::Require => {
            return Err(Error::new(
                Code::Config,
                "--db: sslmode=require: TLS to PostgreSQL is not supported by this hub yet; use sslmode=disable on loopback, a unix socket or a private network (or a TLS tunnel such as stunnel)",
            ))
        }
        // `prefer` would silently fall back to plain text: say it instead.
        _ => {
            config.ssl_mode(postgres::config::SslMode::Disable);
        }
    }
    if let Ok(file) = std::env::var(PASSWORD_FILE_ENV) {
        let path = std::path::Path::new(&file);
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("reading the database password file", path, &e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o007 != 0 {
                return Err(Error::new(
                    Code::NotPermitted,
                    format!(
                        "{}: mode {mode:04o}, others may read the database password: chmod 600 {}",
                        path.display(),
                        path.display()
                    ),
                ));
            }
        }
        let pw = text.trim_end_matches(['\n', '\r']);
        config.password(pw);
    } else if let Ok(pw) = std::env::var(PASSWORD_ENV) {
        config.password(pw);
    }
    if config.get_application_name().is_none() {
        config.application_name("outpost-hub");
    }
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let display = format!(
        "postgres://{}@{}:{port}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    );
    Ok(Target { config, display })
}

/// Connect (plain TCP or unix socket; see `target` about TLS).
pub fn connect(t: &Target) -> Result<postgres::Client> {
    let mut cfg = t.config.clone();
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(std::time::Duration::from_secs(10));
    }
    cfg.connect(postgres::NoTls).map_err(|e| {
        Error::new(
            Code::LocalIo,
            format!(
                "connecting to database {}: {}",
                t.display,
                crate::store::Error::Pg(e)
            ),
        )
    })
}

/// The schema, one entry per version; a version once released is never
/// edited, a change is a new entry. Text columns collate as bytes ("C"),
/// so ORDER BY (canaries are the first devices by host ID) is the same as
/// in SQLite.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tokens (
    hash TEXT COLLATE "C" PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    project TEXT COLLATE "C",
    created BIGINT NOT NULL,
    expires BIGINT,
    revoked BIGINT NOT NULL DEFAULT 0,
    uses BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE devices (
    host_id TEXT COLLATE "C" PRIMARY KEY,
    project TEXT COLLATE "C" NOT NULL,
    hostname TEXT NOT NULL,
    cred_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    token_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    tags TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    inventory TEXT NOT NULL,
    inventory_hash TEXT NOT NULL,
    inventory_wanted BIGINT NOT NULL DEFAULT 0,
    healthy BIGINT NOT NULL DEFAULT 1,
    failing TEXT NOT NULL DEFAULT '[]',
    interval_ms BIGINT,
    state TEXT NOT NULL DEFAULT 'active',
    peer TEXT NOT NULL DEFAULT '',
    registered BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    checkins BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE boots (
    host_id TEXT COLLATE "C" PRIMARY KEY,
    beacon TEXT NOT NULL,
    received BIGINT NOT NULL
);
CREATE TABLE cluster_specs (
    name TEXT COLLATE "C" PRIMARY KEY,
    distro TEXT NOT NULL,
    version TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    interface TEXT,
    pod_cidr TEXT,
    service_cidr TEXT,
    two_node BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    min_agent TEXT NOT NULL DEFAULT ''
);
CREATE TABLE cluster_members (
    cluster TEXT COLLATE "C" NOT NULL REFERENCES cluster_specs(name),
    host_id TEXT COLLATE "C" NOT NULL UNIQUE,
    pool TEXT NOT NULL,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT ''
);
CREATE TABLE cluster_secrets (
    cluster TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    sealed TEXT NOT NULL,
    PRIMARY KEY (cluster, kind)
);
CREATE TABLE cluster_leaving (
    host_id TEXT COLLATE "C" PRIMARY KEY,
    cluster TEXT NOT NULL,
    distro TEXT NOT NULL,
    since BIGINT NOT NULL
);
INSERT INTO meta(key, value) VALUES('schema', '1');
"#,
    ),
    // Server-assigned phases (slots.rs): each device's registration
    // ordinal, from a sequence (nextval never conflicts between hubs);
    // the devices already there numbered in registration order.
    (
        2,
        r#"
ALTER TABLE devices ADD COLUMN slot BIGINT;
CREATE SEQUENCE outpost_slot_seq MINVALUE 0 START 0;
UPDATE devices SET slot = r.n FROM
    (SELECT host_id, ROW_NUMBER() OVER (ORDER BY registered, host_id) - 1 AS n FROM devices) r
    WHERE devices.host_id = r.host_id;
SELECT setval('outpost_slot_seq', (SELECT COUNT(*) FROM devices), false);
UPDATE meta SET value='2' WHERE key='schema';
"#,
    ),
];

/// Apply the migrations this hub knows and the database lacks, each in its
/// own transaction, all under `pg_advisory_lock` (held by this session only
/// while migrating; other hubs starting now wait for it, then find the
/// work done). A database migrated by a newer hub is refused.
pub fn migrate(c: &mut postgres::Client, display: &str) -> Result<()> {
    let err = |e: postgres::Error| {
        Error::new(
            Code::LocalIo,
            format!(
                "migrating database {display}: {}",
                crate::store::Error::Pg(e)
            ),
        )
    };
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(err)?;
    let r = migrate_locked(c, display);
    let unlock = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    r?;
    unlock.map_err(err)?;
    Ok(())
}

fn migrate_locked(c: &mut postgres::Client, display: &str) -> Result<()> {
    let err = |e: postgres::Error| {
        Error::new(
            Code::LocalIo,
            format!(
                "migrating database {display}: {}",
                crate::store::Error::Pg(e)
            ),
        )
    };
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS outpost_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)",
    )
    .map_err(err)?;
    let have: i64 = c
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM outpost_migrations",
            &[],
        )
        .map_err(err)?
        .get(0);
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if have > known {
        return Err(Error::new(
            Code::Config,
            format!(
                "database {display}: schema version {have} is newer than this hub's {known} (made by another hub version)"
            ),
        ));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > have) {
        let mut tx = c.transaction().map_err(err)?;
        tx.batch_execute(sql).map_err(err)?;
        tx.execute(
            "INSERT INTO outpost_migrations(version, applied) VALUES($1, EXTRACT(EPOCH FROM now())::BIGINT)",
            &[version],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        log::info!("database {display}: schema migrated to version {version}");
    }
    Ok(())
}
