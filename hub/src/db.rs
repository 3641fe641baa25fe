//! The hub's registry: tokens, devices, settings, in SQLite (the default)
//! or PostgreSQL (several hubs on one database; `pg.rs`), through the
//! storage seam of `store.rs`. Every write runs in one transaction, so a
//! crash or a kill leaves the old or the new state; on PostgreSQL the
//! transactions are SERIALIZABLE and run again on a conflict with another
//! hub, so several hubs behave as one. Secrets arrive here already hashed
//! (see `secret.rs`).
//!
//! Must not do network I/O or know HTTP; it speaks in protocol values.

use crate::secret;
use crate::store::{self, params, OptionalExtension, Tx};
use miniserde::json;
use outpost::error::{Code, Error, Result};
use outpost::proto::{
    self, CheckinRequest, CheckinResponse, Desired, Inventory, RegisterRequest, UpgradeOffer,
};
use rusqlite::{Connection, TransactionBehavior};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Check-in interval when the operator set none.
pub const DEFAULT_INTERVAL_MS: u64 = 300_000;
/// A device is Unhealthy after this many missed intervals.
pub const MISSED_INTERVALS: u64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    project TEXT,
    created INTEGER NOT NULL,
    expires INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0,
    uses INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS devices (
    host_id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    hostname TEXT NOT NULL,
    cred_hash TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    token_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    tags TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    inventory TEXT NOT NULL,
    inventory_hash TEXT NOT NULL,
    inventory_wanted INTEGER NOT NULL DEFAULT 0,
    healthy INTEGER NOT NULL DEFAULT 1,
    failing TEXT NOT NULL DEFAULT '[]',
    interval_ms INTEGER,
    state TEXT NOT NULL DEFAULT 'active',
    peer TEXT NOT NULL DEFAULT '',
    registered INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    checkins INTEGER NOT NULL DEFAULT 0
);
-- The last boot beacon (outpost.boot/v1) each device reported (protocol v2).
CREATE TABLE IF NOT EXISTS boots (
    host_id TEXT PRIMARY KEY,
    beacon TEXT NOT NULL,
    received INTEGER NOT NULL
);
";
const SCHEMA_VERSION: &str = "2";

/// Schema 1 -> 2: every device gets a registration ordinal, its slot
/// (`slots.rs`); the devices already there in registration order, the
/// counter `slot_next` after them. The same change as PostgreSQL's
/// migration 2 (`pg.rs`).
const MIGRATE_2: &str = "
ALTER TABLE devices ADD COLUMN slot INTEGER;
UPDATE devices SET slot = r.n FROM
    (SELECT host_id, ROW_NUMBER() OVER (ORDER BY registered, host_id) - 1 AS n FROM devices) r
    WHERE devices.host_id = r.host_id;
INSERT INTO meta(key, value) VALUES('slot_next', (SELECT COUNT(*) FROM devices));
UPDATE meta SET value='2' WHERE key='schema';
";

/// Why a registration was refused (each maps to one HTTP status).
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterRefusal {
    /// 401 `token_invalid`: unknown or revoked.
    TokenInvalid,
    /// 401 `token_expired`.
    TokenExpired,
    /// 401 `token_project_mismatch`.
    ProjectMismatch,
    /// 409 `duplicate_host`: another machine holds this host ID.
    Duplicate,
}

#[derive(Debug, PartialEq, Eq)]
pub enum CheckinRefusal {
    /// 401 `unknown_credential` (or a host ID that is not the credential's).
    Unknown,
    /// 410 `deregistered`.
    Deregistered,
}

/// What `register` decided.
#[derive(Debug)]
pub struct Registered {
    pub rotated: bool,
    pub interval_ms: u64,
    /// The device's phase in its interval (`slots.rs`).
    pub phase_ms: u64,
}

/// Load shedding the operator switched on: every register and check-in is
/// answered with `status` and `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shed {
    pub status: u16,
    pub retry_after_s: u64,
    /// Send `Retry-After` as an HTTP-date instead of seconds.
    pub http_date: bool,
}

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub project: Option<String>,
    pub created: u64,
    pub expires: Option<u64>,
    pub revoked: bool,
    pub uses: u64,
}

#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub host_id: String,
    pub project: String,
    pub hostname: String,
    pub agent: String,
    pub tags: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub inventory: Inventory,
    pub healthy: bool,
    pub failing: Vec<String>,
    pub interval_ms: u64,
    pub state: String,
    pub peer: String,
    pub registered: u64,
    pub last_seen: u64,
    pub checkins: u64,
    /// The last boot beacon and when it arrived (Unix seconds).
    pub last_boot: Option<(outpost::boot::Beacon, u64)>,
}

pub struct Db {
    backend: Backend,
    /// The SQLite file; with PostgreSQL, the base name of the local files
    /// (`<state dir>/outpost-hub.pg`: its `.key`, `artifacts/` beside it).
    path: PathBuf,
    /// How errors name the database (never with a password).
    name: String,
}

// A hub holds one of these per connection (a handful): size is no matter.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Lite(Connection),
    Pg {
        client: RefCell<postgres::Client>,
        target: crate::pg::Target,
        stmts: store::PgCache,
    },
}

/// How often a PostgreSQL transaction is run again after a conflict with a
/// concurrent one (another hub or worker) before the request fails.
const CONFLICT_RETRIES: u32 = 50;

/// Give `host_id` the next registration ordinal (its slot, `slots.rs`):
/// from a sequence on PostgreSQL (never the same one on two hubs, never a
/// conflict between their transactions), from the counter in `meta` on
/// SQLite (its writes are serialized).
fn assign_slot(tx: &Tx, host_id: &str) -> store::Result<i64> {
    let n: i64 = if tx.is_pg() {
        tx.query_row("SELECT nextval('outpost_slot_seq')", (), |r| r.get(0))?
    } else {
        let n: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key='slot_next'", (), |r| {
                r.get(0)
            })
            .optional()?;
        let n = n.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        tx.execute(
            "INSERT INTO meta(key, value) VALUES('slot_next', ?1)
             ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            [(n + 1).to_string()],
        )?;
        n
    };
    tx.execute(
        "UPDATE devices SET slot=?2 WHERE host_id=?1",
        params![host_id, n],
    )?;
    Ok(n)
}

fn map_to_json(m: &BTreeMap<String, String>) -> String {
    json::to_string(m)
}

fn json_map(s: &str) -> BTreeMap<String, String> {
    json::from_str(s).unwrap_or_default()
}

impl Db {
    /// Open and migrate the database: `db` is a SQLite file (created with
    /// mode 0600 if missing) or a `postgres://` URL (`pg.rs`).
    pub fn open(db: &Path) -> Result<Db> {
        match db.to_str() {
            Some(url) if crate::pg::is_url(url) => Db::open_pg(url),
            _ => Db::open_sqlite(db),
        }
    }

    fn open_pg(url: &str) -> Result<Db> {
        let target = crate::pg::target(url)?;
        let dir = std::env::var_os(crate::pg::STATE_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        Db::open_pg_target(target, &dir)
    }

    /// PostgreSQL with the password given (the unit tests).
    #[cfg(test)]
    fn open_pg_with(url: &str, password: &str, state_dir: &Path) -> Result<Db> {
        let mut target = crate::pg::target(url)?;
        target.config.password(password);
        Db::open_pg_target(target, state_dir)
    }

    fn open_pg_target(target: crate::pg::Target, dir: &Path) -> Result<Db> {
        let mut client = crate::pg::connect(&target)?;
        crate::pg::migrate(&mut client, &target.display)?;
        Ok(Db {
            name: target.display.clone(),
            backend: Backend::Pg {
                client: RefCell::new(client),
                target,
                stmts: store::PgCache::default(),
            },
            path: dir.join("outpost-hub.pg"),
        })
    }

    fn open_sqlite(path: &Path) -> Result<Db> {
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| Error::io("creating database", path, &e))?;
        }
        let conn =
            Connection::open(path).map_err(|e| db_err(path.display(), "opening", &e.into()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| db_err(path.display(), "configuring", &e.into()))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(|e| db_err(path.display(), "configuring", &e.into()))?;
        let mut db = Db {
            backend: Backend::Lite(conn),
            path: path.to_path_buf(),
            name: path.display().to_string(),
        };
        db.write(|tx| {
            tx.execute_batch(SCHEMA)?;
            crate::cluster_cmd::migrate(tx)?;
            let v: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key='schema'", (), |r| r.get(0))
                .optional()?;
            match v.as_deref() {
                // A new database is made at version 1, then migrated.
                None | Some("1") => {
                    if v.is_none() {
                        tx.execute("INSERT INTO meta(key, value) VALUES('schema', '1')", ())?;
                    }
                    tx.execute_batch(MIGRATE_2)?;
                    Ok(Ok(()))
                }
                Some(SCHEMA_VERSION) => Ok(Ok(())),
                Some(other) => Ok(Err(other.to_string())),
            }
        })?
        .map_err(|v| {
            Error::new(
                Code::Config,
                format!(
                    "database {}: schema version {v} is not {SCHEMA_VERSION} (made by another hub version)",
                    path.display()
                ),
            )
        })?;
        Ok(db)
    }

    /// True on PostgreSQL.
    pub fn is_pg(&self) -> bool {
        matches!(self.backend, Backend::Pg { .. })
    }

    /// How messages name the database (a file, or a URL without secrets).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database file (SQLite) or the base name of the hub's local files
    /// (PostgreSQL): the seal key and the artifacts are found from it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `write` for the hub's other modules (upgrades.rs).
    pub fn write_tx<T>(&mut self, f: impl FnMut(&Tx) -> store::Result<T>) -> Result<T> {
        self.write(f)
    }

    /// Statements outside a transaction (reads; the cluster commands).
    pub fn auto(&self) -> Tx<'_> {
        match &self.backend {
            Backend::Lite(c) => Tx::Lite(c),
            Backend::Pg { client, stmts, .. } => Tx::PgAuto(client, stmts),
        }
    }

    /// On PostgreSQL, connect again when the connection was lost (a
    /// database restart); fails while the database is still down.
    fn reconnect_if_closed(&self) -> Result<()> {
        if let Backend::Pg {
            client,
            target,
            stmts,
        } = &self.backend
        {
            if client.borrow().is_closed() {
                let c = crate::pg::connect(target)?;
                *client.borrow_mut() = c;
                stmts.clear();
                log::warn!("database {}: connected again", target.display);
            }
        }
        Ok(())
    }

    /// The database cannot be reached right now (PostgreSQL: the
    /// connection is lost and connecting again failed).
    pub fn unavailable(&self) -> bool {
        match &self.backend {
            Backend::Pg { client, .. } => client.borrow().is_closed(),
            Backend::Lite(_) => false,
        }
    }

    /// Run `f` in one transaction and commit when it returns Ok: SQLite
    /// IMMEDIATE (one writer at a time); PostgreSQL SERIALIZABLE, run again
    /// (up to [`CONFLICT_RETRIES`] times, with a short random pause) when it
    /// conflicted with a concurrent transaction, so `f` must have no effect
    /// outside the transaction that matters when repeated.
    fn write<T>(&mut self, mut f: impl FnMut(&Tx) -> store::Result<T>) -> Result<T> {
        self.reconnect_if_closed()?;
        let name = self.name.clone();
        match &mut self.backend {
            Backend::Lite(conn) => {
                let p = Path::new(&name);
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(|e| db_err(p.display(), "writing", &e.into()))?;
                let v = f(&Tx::Lite(&tx)).map_err(|e| db_err(p.display(), "writing", &e))?;
                tx.commit()
                    .map_err(|e| db_err(p.display(), "writing", &e.into()))?;
                Ok(v)
            }
            Backend::Pg {
                client,
                target,
                stmts,
            } => {
                let client = client.get_mut();
                let p = Path::new(&name);
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    let r: store::Result<T> = (|| {
                        let tx = client
                            .build_transaction()
                            .isolation_level(postgres::IsolationLevel::Serializable)
                            .start()?;
                        let t = Tx::Pg(RefCell::new(tx), stmts);
                        let v = f(&t)?;
                        if let Tx::Pg(tx, _) = t {
                            tx.into_inner().commit()?;
                        }
                        Ok(v)
                    })();
                    match r {
                        Ok(v) => return Ok(v),
                        Err(e) if e.is_conflict() && attempt < CONFLICT_RETRIES => {
                            conflict_pause(attempt);
                        }
                        // The connection broke (a database restart): once
                        // more on a new one; a database still down fails.
                        Err(_) if client.is_closed() && attempt == 1 => {
                            *client = crate::pg::connect(target)?;
                            stmts.clear();
                            log::warn!("database {}: connected again", target.display);
                        }
                        Err(e) => return Err(db_err(p.display(), "writing", &e)),
                    }
                }
            }
        }
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        let read = || {
            self.auto()
                .query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))
                .optional()
        };
        self.reconnect_if_closed()?;
        match read() {
            // The connection broke (a database restart): once more.
            Err(_) if self.unavailable() => {
                self.reconnect_if_closed()?;
                read()
            }
            r => r,
        }
        .map_err(|e| db_err(&self.name, "reading", &e))
    }

    fn set_meta(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        self.write(|tx| {
            match value {
                Some(v) => tx.execute(
                    "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    params![key, v],
                )?,
                None => tx.execute("DELETE FROM meta WHERE key=?1", [key])?,
            };
            Ok(())
        })
    }

    // ------------------------------------------------------------ tokens

    pub fn token_create(
        &mut self,
        hash: &str,
        project: Option<&str>,
        now: u64,
        expires: Option<u64>,
    ) -> Result<String> {
        let id = secret::token_id(hash);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO tokens(hash, id, project, created, expires) VALUES(?1, ?2, ?3, ?4, ?5)",
                params![hash, id, project, now as i64, expires.map(|e| e as i64)],
            )
        })?;
        Ok(id)
    }

    pub fn token_list(&self) -> Result<Vec<TokenRow>> {
        let c = self.auto();
        let mut st = c
            .prepare("SELECT id, project, created, expires, revoked, uses FROM tokens ORDER BY created, id")
            .map_err(|e| db_err(&self.name, "reading", &e))?;
        let rows = st
            .query_map((), |r| {
                Ok(TokenRow {
                    id: r.get(0)?,
                    project: r.get(1)?,
                    created: r.get::<_, i64>(2)? as u64,
                    expires: r.get::<_, Option<i64>>(3)?.map(|e| e as u64),
                    revoked: r.get::<_, i64>(4)? != 0,
                    uses: r.get::<_, i64>(5)? as u64,
                })
            })
            .and_then(|it| it.collect::<store::Result<Vec<_>>>())
            .map_err(|e| db_err(&self.name, "reading", &e))?;
        Ok(rows)
    }

    /// Revoke a token by ID; false when no such token.
    pub fn token_revoke(&mut self, id: &str) -> Result<bool> {
        self.write(|tx| tx.execute("UPDATE tokens SET revoked=1 WHERE id=?1", [id]))
            .map(|n| n > 0)
    }

    // ------------------------------------------------------- the protocol

    /// Register or re-register a device. `cred_hash` is the digest of the
    /// credential the caller will hand out when this returns Ok.
    pub fn register(
        &mut self,
        req: &RegisterRequest,
        token_hash: &str,
        cred_hash: &str,
        now: u64,
        peer: &str,
    ) -> Result<std::result::Result<Registered, RegisterRefusal>> {
        let secret_hash = secret::hash_install_secret(&req.host_id, &req.install_secret);
        let default_iv = self.default_interval()?;
        self.write(|tx| {
            let tok: Option<(String, Option<String>, Option<i64>, i64)> = tx
                .query_row(
                    "SELECT id, project, expires, revoked FROM tokens WHERE hash=?1",
                    [token_hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((token_id, tproject, expires, revoked)) = tok else {
                return Ok(Err(RegisterRefusal::TokenInvalid));
            };
            if revoked != 0 {
                return Ok(Err(RegisterRefusal::TokenInvalid));
            }
            if matches!(expires, Some(e) if (e as u64) <= now) {
                return Ok(Err(RegisterRefusal::TokenExpired));
            }
            let project = match (&tproject, &req.project) {
                (Some(t), Some(r)) if t != r => return Ok(Err(RegisterRefusal::ProjectMismatch)),
                (Some(t), _) => t.clone(),
                (None, Some(r)) if !r.is_empty() => r.clone(),
                (None, _) => "default".to_string(),
            };
            let existing: Option<(String, String)> = tx
                .query_row(
                    "SELECT secret_hash, state FROM devices WHERE host_id=?1",
                    [&req.host_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let inventory = json::to_string(&req.inventory);
            let tags = map_to_json(&req.tags);
            let rotated = match existing {
                Some((old_secret, state)) if state != "deregistered" => {
                    if old_secret != secret_hash {
                        return Ok(Err(RegisterRefusal::Duplicate));
                    }
                    tx.execute(
                        "UPDATE devices SET cred_hash=?2, project=?3, hostname=?4, token_id=?5,
                         agent=?6, tags=?7, inventory=?8, inventory_hash=?9, inventory_wanted=0,
                         peer=?10, last_seen=?11 WHERE host_id=?1",
                        params![
                            req.host_id,
                            cred_hash,
                            project,
                            req.hostname,
                            token_id,
                            req.agent,
                            tags,
                            inventory,
                            req.inventory_hash,
                            peer,
                            now as i64
                        ],
                    )?;
                    true
                }
                _ => {
                    tx.execute("DELETE FROM devices WHERE host_id=?1", [&req.host_id])?;
                    tx.execute(
                        "INSERT INTO devices(host_id, project, hostname, cred_hash, secret_hash,
                         token_id, agent, tags, inventory, inventory_hash, peer, registered, last_seen)
                         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
                        params![
                            req.host_id,
                            project,
                            req.hostname,
                            cred_hash,
                            secret_hash,
                            token_id,
                            req.agent,
                            tags,
                            inventory,
                            req.inventory_hash,
                            peer,
                            now as i64
                        ],
                    )?;
                    false
                }
            };
            tx.execute("UPDATE tokens SET uses=uses+1 WHERE hash=?1", [token_hash])?;
            let (iv, slot): (Option<i64>, Option<i64>) = tx.query_row(
                "SELECT interval_ms, slot FROM devices WHERE host_id=?1",
                [&req.host_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let slot = match slot {
                Some(s) => s,
                None => assign_slot(tx, &req.host_id)?,
            };
            let interval_ms = iv.map(|v| v as u64).unwrap_or(default_iv);
            Ok(Ok(Registered {
                rotated,
                interval_ms,
                phase_ms: crate::slots::phase_ms(slot as u64, interval_ms),
            }))
        })
    }

    /// One check-in: record it and build the answer.
    pub fn checkin(
        &mut self,
        cred_hash: &str,
        req: &CheckinRequest,
        now: u64,
        peer: &str,
    ) -> Result<std::result::Result<CheckinResponse, CheckinRefusal>> {
        self.checkin_with(cred_hash, req, now, peer, "")
    }

    /// `checkin`, with `base` (`https://host:port` as the agent reached us)
    /// for the artifact URLs of rollouts and cluster gates.
    pub fn checkin_with(
        &mut self,
        cred_hash: &str,
        req: &CheckinRequest,
        now: u64,
        peer: &str,
        base: &str,
    ) -> Result<std::result::Result<CheckinResponse, CheckinRefusal>> {
        let default_iv = self.default_interval()?;
        let global_upgrade = self.meta("upgrade")?;
        let global_config = self.meta("config")?;
        let db_path = self.path.clone();
        self.write(|tx| {
            type Row = (String, String, String, Option<i64>, String, i64, Option<i64>);
            let row: Option<Row> = tx
                .query_row(
                    "SELECT host_id, state, inventory_hash, interval_ms, labels, inventory_wanted, slot FROM devices WHERE cred_hash=?1",
                    [cred_hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
                )
                .optional()?;
            let Some((host_id, state, stored_hash, iv, labels, wanted, slot)) = row else {
                return Ok(Err(CheckinRefusal::Unknown));
            };
            if host_id != req.host_id {
                return Ok(Err(CheckinRefusal::Unknown));
            }
            if state == "deregistered" {
                return Ok(Err(CheckinRefusal::Deregistered));
            }
            // A device an older hub registered on this database since the
            // migration has none yet.
            let slot = match slot {
                Some(s) => s,
                None => assign_slot(tx, &host_id)?,
            };
            let failing = json::to_string(&req.health.failing);
            let inventory_wanted = match &req.inventory {
                Some(inv) => {
                    tx.execute(
                        "UPDATE devices SET inventory=?2, inventory_hash=?3 WHERE host_id=?1",
                        params![host_id, json::to_string(inv), req.inventory_hash],
                    )?;
                    false
                }
                None => wanted != 0 || req.inventory_hash != stored_hash,
            };
            tx.execute(
                "UPDATE devices SET agent=?2, healthy=?3, failing=?4, peer=?5, last_seen=?6,
                 checkins=checkins+1, inventory_wanted=?7 WHERE host_id=?1",
                params![
                    host_id,
                    req.agent,
                    req.health.ok,
                    failing,
                    peer,
                    now as i64,
                    inventory_wanted
                ],
            )?;
            if let Some(b) = &req.boot {
                tx.execute(
                    "INSERT INTO boots(host_id, beacon, received) VALUES(?1, ?2, ?3)
                     ON CONFLICT(host_id) DO UPDATE SET beacon=excluded.beacon, received=excluded.received",
                    params![host_id, json::to_string(b), now as i64],
                )?;
            }
            let deregister = state == "deregistering";
            if deregister {
                tx.execute(
                    "UPDATE devices SET state='deregistered' WHERE host_id=?1",
                    [&host_id],
                )?;
            }
            let upgrade_text: Option<String> = tx
                .query_row(
                    "SELECT value FROM meta WHERE key=?1",
                    [format!("upgrade:{host_id}")],
                    |r| r.get(0),
                )
                .optional()?
                .or_else(|| global_upgrade.clone());
            let mut upgrade: Option<UpgradeOffer> =
                upgrade_text.and_then(|t| json::from_str(&t).ok());
            // Rollouts and cluster gates (hub/upgrades.rs) win over a
            // hand-made offer-upgrade.
            let acts = crate::upgrades::on_checkin(
                tx,
                &host_id,
                req.upgrade.as_ref(),
                req.config.as_ref(),
                now,
                default_iv,
                base,
            )?;
            if acts.upgrade.is_some() {
                upgrade = acts.upgrade;
            }
            // Cluster roles (hub/cluster_hub.rs): the report in, the role out.
            let cluster = crate::cluster_hub::on_checkin(
                tx,
                &db_path,
                &host_id,
                &req.agent,
                req.cluster.as_ref(),
                base,
            )?;
            let mut config = global_config.as_deref().map(json_map).unwrap_or_default();
            let dev_config: Option<String> = tx
                .query_row(
                    "SELECT value FROM meta WHERE key=?1",
                    [format!("config:{host_id}")],
                    |r| r.get(0),
                )
                .optional()?;
            config.extend(dev_config.as_deref().map(json_map).unwrap_or_default());
            let desired = Desired {
                labels: json_map(&labels),
                upgrade,
                config,
                deregister,
                kubernetes: acts.kubernetes,
                cluster,
            };
            let tag = format!(
                "d-{}",
                &secret::digest_hex(&[proto::encode(&desired).as_bytes()])[..16]
            );
            let interval_ms = iv.map(|v| v as u64).unwrap_or(default_iv);
            Ok(Ok(CheckinResponse {
                v: proto::PROTOCOL_VERSION,
                interval_ms,
                phase_ms: crate::slots::phase_ms(slot as u64, interval_ms),
                server_time: now,
                inventory_wanted,
                desired: (tag != req.desired_tag).then_some(desired),
                desired_tag: tag,
            }))
        })
    }

    // ---------------------------------------------------------- operator

    pub fn default_interval(&self) -> Result<u64> {
        Ok(self
            .meta("interval_ms")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_INTERVAL_MS))
    }

    /// Set the interval of one device, or the default for all. Returns the
    /// number of devices changed (0 for an unknown device).
    pub fn set_interval(&mut self, device: Option<&str>, ms: u64) -> Result<usize> {
        match device {
            Some(d) => self.write(|tx| {
                tx.execute(
                    "UPDATE devices SET interval_ms=?2 WHERE host_id=?1",
                    params![d, ms as i64],
                )
            }),
            None => {
                self.set_meta("interval_ms", Some(&ms.to_string()))?;
                self.write(|tx| tx.execute("UPDATE devices SET interval_ms=NULL", ()))
            }
        }
    }

    /// Offer (or with `None` withdraw) an upgrade, to one device or all.
    pub fn set_upgrade(
        &mut self,
        device: Option<&str>,
        offer: Option<&UpgradeOffer>,
    ) -> Result<()> {
        let key = match device {
            Some(d) => format!("upgrade:{d}"),
            None => "upgrade".to_string(),
        };
        let text = offer.map(json::to_string);
        self.set_meta(&key, text.as_deref())
    }

    /// Merge config changes (value "" removes a key), for one device or all.
    pub fn set_config(&mut self, device: Option<&str>, changes: &[(String, String)]) -> Result<()> {
        let key = match device {
            Some(d) => format!("config:{d}"),
            None => "config".to_string(),
        };
        let mut m = self
            .meta(&key)?
            .as_deref()
            .map(json_map)
            .unwrap_or_default();
        apply_changes(&mut m, changes);
        self.set_meta(&key, Some(&map_to_json(&m)))
    }

    /// Merge label changes (value "" removes a label); false for an unknown device.
    pub fn set_labels(&mut self, device: &str, changes: &[(String, String)]) -> Result<bool> {
        self.write(|tx| {
            let cur: Option<String> = tx
                .query_row(
                    "SELECT labels FROM devices WHERE host_id=?1",
                    [device],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(cur) = cur else { return Ok(false) };
            let mut m = json_map(&cur);
            apply_changes(&mut m, changes);
            tx.execute(
                "UPDATE devices SET labels=?2 WHERE host_id=?1",
                params![device, map_to_json(&m)],
            )?;
            Ok(true)
        })
    }

    /// Mark a device for deregistration: its next check-in gets
    /// `desired.deregister`, every later one 410. False for an unknown device.
    pub fn deregister(&mut self, device: &str) -> Result<bool> {
        self.write(|tx| {
            tx.execute(
                "UPDATE devices SET state='deregistering' WHERE host_id=?1 AND state='active'",
                [device],
            )
        })
        .map(|n| n > 0)
    }

    /// Delete a device record, so another machine may register its host ID.
    pub fn delete(&mut self, device: &str) -> Result<bool> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM meta WHERE key IN (?1, ?2)",
                params![format!("upgrade:{device}"), format!("config:{device}")],
            )?;
            tx.execute("DELETE FROM devices WHERE host_id=?1", [device])
        })
        .map(|n| n > 0)
    }

    pub fn shed(&self) -> Result<Option<Shed>> {
        Ok(self.meta("shed")?.and_then(|v| {
            let mut it = v.split(' ');
            let status = it.next()?.parse().ok()?;
            let retry_after_s = it.next()?.parse().ok()?;
            let http_date = it.next() == Some("date");
            Some(Shed {
                status,
                retry_after_s,
                http_date,
            })
        }))
    }

    pub fn set_shed(&mut self, shed: Option<&Shed>) -> Result<()> {
        let v = shed.map(|s| {
            format!(
                "{} {} {}",
                s.status,
                s.retry_after_s,
                if s.http_date { "date" } else { "seconds" }
            )
        });
        self.set_meta("shed", v.as_deref())
    }

    pub fn devices(&self) -> Result<Vec<DeviceRow>> {
        let default_iv = self.default_interval()?;
        let c = self.auto();
        let mut st = c
            .prepare(
                "SELECT d.host_id, project, hostname, agent, tags, labels, inventory, healthy, failing,
                 interval_ms, state, peer, registered, last_seen, checkins, b.beacon, b.received
                 FROM devices d LEFT JOIN boots b ON b.host_id = d.host_id ORDER BY d.host_id",
            )
            .map_err(|e| db_err(&self.name, "reading", &e))?;
        let rows = st
            .query_map((), |r| {
                let failing: String = r.get(8)?;
                let inventory: String = r.get(6)?;
                Ok(DeviceRow {
                    host_id: r.get(0)?,
                    project: r.get(1)?,
                    hostname: r.get(2)?,
                    agent: r.get(3)?,
                    tags: json_map(&r.get::<_, String>(4)?),
                    labels: json_map(&r.get::<_, String>(5)?),
                    inventory: json::from_str(&inventory).unwrap_or_default(),
                    healthy: r.get::<_, i64>(7)? != 0,
                    failing: json::from_str(&failing).unwrap_or_default(),
                    interval_ms: r
                        .get::<_, Option<i64>>(9)?
                        .map(|v| v as u64)
                        .unwrap_or(default_iv),
                    state: r.get(10)?,
                    peer: r.get(11)?,
                    registered: r.get::<_, i64>(12)? as u64,
                    last_seen: r.get::<_, i64>(13)? as u64,
                    checkins: r.get::<_, i64>(14)? as u64,
                    last_boot: r
                        .get::<_, Option<String>>(15)?
                        .and_then(|t| outpost::boot::Beacon::parse(&t).ok())
                        .zip(r.get::<_, Option<i64>>(16)?.map(|v| v as u64)),
                })
            })
            .and_then(|it| it.collect::<store::Result<Vec<_>>>())
            .map_err(|e| db_err(&self.name, "reading", &e))?;
        Ok(rows)
    }

    /// `PRAGMA integrity_check` == ok (used by tests); PostgreSQL keeps
    /// its own consistency, so there: true.
    pub fn integrity_ok(&self) -> Result<bool> {
        if self.is_pg() {
            return Ok(true);
        }
        let v: String = self
            .auto()
            .query_row("PRAGMA integrity_check", (), |r| r.get(0))
            .map_err(|e| db_err(&self.name, "checking", &e))?;
        Ok(v == "ok")
    }
}

fn apply_changes(m: &mut BTreeMap<String, String>, changes: &[(String, String)]) {
    for (k, v) in changes {
        if v.is_empty() {
            m.remove(k);
        } else {
            m.insert(k.clone(), v.clone());
        }
    }
}

fn db_err(name: impl std::fmt::Display, op: &str, e: &store::Error) -> Error {
    Error::new(Code::LocalIo, format!("{op} database {name}: {e}"))
}

/// A short random pause before running a conflicting transaction again
/// (1 to 2^min(attempt,6) ms), so two hubs that collided do not collide in
/// step again.
fn conflict_pause(attempt: u32) {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let span = 1u64 << attempt.min(6);
    let ms = 1 + u64::from(u16::from_le_bytes(b)) % span;
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

impl DeviceRow {
    /// Ready, In-Use (labelled with a `cluster`), or Unpaired (deregistered).
    pub fn status(&self) -> &'static str {
        if self.state != "active" {
            "Unpaired"
        } else if self.labels.contains_key("cluster") {
            "In-Use"
        } else {
            "Ready"
        }
    }

    /// Healthy when the last check-in said so and no more than
    /// [`MISSED_INTERVALS`] intervals have passed since (milliseconds).
    /// `last_seen` has whole seconds, so it counts from the end of that
    /// second (sub-second test intervals must not flap to Unhealthy).
    pub fn health(&self, now_ms: u64) -> &'static str {
        let limit = (self.last_seen + 1).saturating_mul(1000)
            + MISSED_INTERVALS.saturating_mul(self.interval_ms.max(1));
        if self.healthy && now_ms <= limit {
            "Healthy"
        } else {
            "Unhealthy"
        }
    }

    /// First non-loopback address (without prefix length), else the peer.
    pub fn ip(&self) -> String {
        self.inventory
            .interfaces
            .iter()
            .flat_map(|i| i.addrs.iter())
            .map(|a| a.split('/').next().unwrap_or(a))
            .find(|a| !a.starts_with("127.") && *a != "::1")
            .map(str::to_string)
            .unwrap_or_else(|| self.peer.clone())
    }

    pub fn mac(&self) -> String {
        self.inventory
            .interfaces
            .iter()
            .map(|i| i.mac.as_str())
            .find(|m| !m.is_empty() && *m != "00:00:00:00:00:00")
            .unwrap_or("")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost::proto::Health;

    fn tmpdb(name: &str) -> (Db, PathBuf) {
        let dir = std::env::temp_dir().join(format!("outpost-hubdb-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let p = dir.join("hub.db");
        (Db::open(&p).expect("open db"), dir)
    }

    fn reg(host: &str, secret: &str) -> RegisterRequest {
        RegisterRequest {
            v: 1,
            token: String::new(),
            host_id: host.into(),
            install_secret: secret.into(),
            project: None,
            hostname: "edge".into(),
            tags: BTreeMap::new(),
            agent: "0.1.0".into(),
            inventory: Inventory::default(),
            inventory_hash: "sha256:1".into(),
        }
    }

    fn checkin(host: &str, hash: &str, tag: &str) -> CheckinRequest {
        CheckinRequest {
            v: 1,
            host_id: host.into(),
            agent: "0.1.0".into(),
            health: Health {
                ok: true,
                failing: vec![],
            },
            inventory_hash: hash.into(),
            desired_tag: tag.into(),
            inventory: None,
            upgrade: None,
            config: None,
            boot: None,
            cluster: None,
        }
    }

    /// The same decisions on a real PostgreSQL (testpg.rs), each on a fresh
    /// database of one server.
    #[test]
    fn the_same_decisions_on_postgresql() {
        let dir = std::env::temp_dir().join(format!("outpost-hubdb-{}-pg", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp dir");
        {
            let pg = crate::testpg::Pg::start(&dir);
            let mut admin = pg.client();
            type Case = fn(&mut Db, &Path);
            let cases: [(&str, Case); 5] = [
                ("reg", registration_decisions_on),
                ("slots", slots_in_registration_order_on),
                (
                    "cluster",
                    cluster_tokens_come_only_from_the_init_server_and_go_only_to_members_on,
                ),
                ("checkin", checkin_inventory_desired_and_deregistration_on),
                ("health", health_after_missed_intervals_on),
            ];
            for (name, case) in cases {
                admin
                    .batch_execute(&format!("CREATE DATABASE t_{name}"))
                    .expect("create database");
                let url = pg.url().replace("/postgres?", &format!("/t_{name}?"));
                let state = dir.join(name);
                std::fs::create_dir_all(&state).expect("state dir");
                let mut db = Db::open_pg_with(&url, crate::testpg::PASSWORD, &state)
                    .expect("open on PostgreSQL");
                assert!(db.is_pg());
                case(&mut db, &state);
            }
            // A database of schema 1 with devices: migration 2 numbers
            // them in registration order, the sequence goes on after them.
            admin
                .batch_execute("CREATE DATABASE t_v1")
                .expect("create database");
            let url = pg.url().replace("/postgres?", "/t_v1?");
            let mut old: postgres::Config = url.parse().expect("url");
            old.password(crate::testpg::PASSWORD);
            let mut oc = old.connect(postgres::NoTls).expect("connect");
            oc.batch_execute(crate::pg::MIGRATIONS[0].1)
                .expect("schema 1");
            oc.batch_execute(&format!(
                "CREATE TABLE outpost_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL);
                 INSERT INTO outpost_migrations VALUES (1, 0);{}",
                V1_DEVICES
            ))
            .expect("devices of schema 1");
            let mut db = Db::open_pg_with(&url, crate::testpg::PASSWORD, &dir).expect("migrate");
            migrated_devices_have_slots(&mut db);
            drop(db);
            // A database a newer hub migrated is refused, naming both
            // versions (exit 3), and left as it is.
            let url = pg.url().replace("/postgres?", "/t_reg?");
            let mut newer: postgres::Config = url.parse().expect("url");
            newer.password(crate::testpg::PASSWORD);
            let mut nc = newer.connect(postgres::NoTls).expect("connect");
            nc.batch_execute("INSERT INTO outpost_migrations VALUES (99, 0)")
                .expect("a newer version");
            let e = Db::open_pg_with(&url, crate::testpg::PASSWORD, &dir)
                .err()
                .expect("refused");
            assert_eq!(e.code(), Code::Config, "{e}");
            let known = crate::pg::MIGRATIONS.len();
            assert!(
                e.to_string().contains(&format!(
                    "schema version 99 is newer than this hub's {known}"
                )),
                "{e}"
            );
            let n: i64 = nc
                .query_one("SELECT count(*) FROM outpost_migrations", &[])
                .expect("count")
                .get(0);
            assert_eq!(n, known as i64 + 1, "nothing applied or removed");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn registration_decisions() {
        let (mut db, dir) = tmpdb("reg");
        registration_decisions_on(&mut db, &dir);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Three devices of a schema-1 registry, registered in the order c, a, b.
    const V1_DEVICES: &str = "
        INSERT INTO devices(host_id, project, hostname, cred_hash, secret_hash, token_id, agent,
            tags, inventory, inventory_hash, registered, last_seen)
        VALUES ('a', 'default', 'a', 'ca', 'sa', 't', '0.1.0', '{}', '{}', 'sha256:1', 20, 20),
               ('b', 'default', 'b', 'cb', 'sb', 't', '0.1.0', '{}', '{}', 'sha256:1', 30, 30),
               ('c', 'default', 'c', 'cc', 'sc', 't', '0.1.0', '{}', '{}', 'sha256:1', 10, 10);";

    fn migrated_devices_have_slots(db: &mut Db) {
        let iv = DEFAULT_INTERVAL_MS;
        for (host, ordinal) in [("c", 0), ("a", 1), ("b", 2)] {
            let r = db
                .checkin(&format!("c{host}"), &checkin(host, "sha256:1", ""), 100, "")
                .expect("checkin")
                .expect("accepted");
            assert_eq!(r.phase_ms, crate::slots::phase_ms(ordinal, iv), "{host}");
        }
        db.token_create("tok", None, 100, None).expect("token");
        let r = db
            .register(&reg("d", "s-d"), "tok", "cd", 100, "")
            .expect("register")
            .expect("accepted");
        assert_eq!(
            r.phase_ms,
            crate::slots::phase_ms(3, iv),
            "the next ordinal"
        );
    }

    #[test]
    fn sqlite_schema_1_is_migrated_to_slots() {
        let dir = std::env::temp_dir().join(format!("outpost-hubdb-{}-v1", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let p = dir.join("hub.db");
        {
            let c = Connection::open(&p).expect("create");
            c.execute_batch(SCHEMA).expect("schema 1");
            c.execute_batch(V1_DEVICES).expect("devices");
            c.execute("INSERT INTO meta(key, value) VALUES('schema', '1')", ())
                .expect("version");
        }
        let mut db = Db::open(&p).expect("migrate");
        migrated_devices_have_slots(&mut db);
        let v: String = db
            .auto()
            .query_row("SELECT value FROM meta WHERE key='schema'", (), |r| {
                r.get(0)
            })
            .expect("version");
        assert_eq!(v, "2");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn slots_in_registration_order() {
        let (mut db, dir) = tmpdb("slots");
        slots_in_registration_order_on(&mut db, &dir);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Each new device takes the next ordinal; re-registering keeps it; the
    /// check-in answers with it at whatever interval is in force; a device
    /// without one (an older hub on the same database) gets the next.
    fn slots_in_registration_order_on(db: &mut Db, _dir: &Path) {
        db.token_create("tok", None, 100, None).expect("token");
        let tok = "tok";
        let iv = DEFAULT_INTERVAL_MS;
        for n in 0..8u64 {
            let host = format!("h{n}");
            let r = db
                .register(&reg(&host, "s"), tok, &format!("c{n}"), 100, "")
                .expect("register")
                .expect("accepted");
            assert_eq!(r.phase_ms, crate::slots::phase_ms(n, iv), "{host}");
        }
        let r = db
            .register(&reg("h2", "s"), tok, "c2b", 101, "")
            .expect("register")
            .expect("accepted");
        assert!(r.rotated);
        assert_eq!(r.phase_ms, crate::slots::phase_ms(2, iv), "kept");
        let phase = |db: &mut Db, cred: &str, host: &str| {
            db.checkin(cred, &checkin(host, "sha256:1", ""), 102, "")
                .expect("checkin")
                .expect("accepted")
                .phase_ms
        };
        assert_eq!(phase(db, "c2b", "h2"), crate::slots::phase_ms(2, iv));
        db.set_interval(None, 60_000).expect("interval");
        assert_eq!(phase(db, "c3", "h3"), crate::slots::phase_ms(3, 60_000));
        db.auto()
            .execute("UPDATE devices SET slot=NULL WHERE host_id='h5'", ())
            .expect("forget");
        assert_eq!(phase(db, "c5", "h5"), crate::slots::phase_ms(8, 60_000));
        assert_eq!(phase(db, "c5", "h5"), crate::slots::phase_ms(8, 60_000));
    }

    fn registration_decisions_on(db: &mut Db, _dir: &Path) {
        db.token_create("tok", None, 100, Some(200)).expect("token");
        db.token_create("old", None, 100, Some(150)).expect("token");
        db.token_create("proj", Some("shops"), 100, None)
            .expect("token");
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            u64,
            Option<&'a str>,
            std::result::Result<bool, RegisterRefusal>,
        );
        let cases: &[Case] = &[
            ("first registration", "tok", "h1", 160, None, Ok(false)),
            ("same machine rotates", "tok", "h1", 161, None, Ok(true)),
            (
                "unknown token",
                "nope",
                "h2",
                160,
                None,
                Err(RegisterRefusal::TokenInvalid),
            ),
            (
                "expired token",
                "old",
                "h2",
                160,
                None,
                Err(RegisterRefusal::TokenExpired),
            ),
            (
                "project mismatch",
                "proj",
                "h3",
                160,
                Some("farms"),
                Err(RegisterRefusal::ProjectMismatch),
            ),
            ("project match", "proj", "h3", 160, Some("shops"), Ok(false)),
        ];
        for (name, tok, host, now, project, want) in cases {
            let mut r = reg(host, "s1");
            r.project = project.map(str::to_string);
            let got = db
                .register(&r, tok, &format!("c-{name}"), *now, "127.0.0.1")
                .expect(name)
                .map(|g| g.rotated);
            assert_eq!(&got, want, "{name}");
        }
        let got = db
            .register(&reg("h1", "other"), "tok", "c-x", 162, "")
            .expect("dup");
        assert_eq!(
            got.map(|g| g.rotated),
            Err(RegisterRefusal::Duplicate),
            "other machine"
        );
        assert!(
            db.token_revoke(&secret::token_id("tok")).expect("revoke"),
            "revoke"
        );
        let got = db
            .register(&reg("h9", "s"), "tok", "c-y", 163, "")
            .expect("revoked");
        assert_eq!(
            got.map(|g| g.rotated),
            Err(RegisterRefusal::TokenInvalid),
            "revoked token"
        );
        assert!(db.integrity_ok().expect("integrity"));
    }

    #[test]
    fn cluster_tokens_come_only_from_the_init_server_and_go_only_to_members() {
        let (mut db, dir) = tmpdb("cluster-tokens");
        cluster_tokens_come_only_from_the_init_server_and_go_only_to_members_on(&mut db, &dir);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn cluster_tokens_come_only_from_the_init_server_and_go_only_to_members_on(
        db: &mut Db,
        dir: &Path,
    ) {
        use outpost::proto::ClusterReport;
        db.token_create("tok", None, 0, None).expect("token");
        for h in ["h-init", "h-work", "h-out"] {
            db.register(&reg(h, "s"), "tok", &format!("cred-{h}"), 10, "")
                .expect("reg")
                .expect("ok");
        }
        db.write(|tx| {
            tx.execute_batch(
                "INSERT INTO cluster_specs (name, distro, version, endpoint, two_node, created)
                 VALUES ('c1', 'k3s', 'v1.31.4+k3s1', 'vip:10.0.0.100', 0, 0);
                 INSERT INTO cluster_members (cluster, host_id, pool, seq) VALUES ('c1', 'h-init', 'control-plane', 1);
                 INSERT INTO cluster_members (cluster, host_id, pool, seq) VALUES ('c1', 'h-work', 'worker', 2);",
            )?;
            Ok(())
        })
        .expect("cluster");
        let role = |db: &mut Db, h: &str, rep: Option<ClusterReport>| {
            let mut req = checkin(h, "sha256:1", "");
            req.cluster = rep;
            db.checkin(&format!("cred-{h}"), &req, 20, "")
                .expect("db")
                .expect("ok")
                .desired
                .and_then(|d| d.cluster)
        };
        let k10 = format!("K10{}::server:{}", "ab".repeat(32), "5ec7e7");
        let rep = |role: &str, state: &str, token: Option<&str>| ClusterReport {
            cluster: "c1".into(),
            role: role.into(),
            state: state.into(),
            reason: String::new(),
            log_tail: String::new(),
            token: token.map(str::to_string),
        };
        let init = role(db, "h-init", None).expect("the init server is released first");
        assert_eq!((init.role.as_str(), init.leave), ("init-server", false));
        assert!(init.token.len() >= 64, "a generated bootstrap token");
        assert_eq!(role(db, "h-work", None), None, "the worker waits");
        assert_eq!(role(db, "h-out", None), None, "not a member");
        // A worker cannot plant a token; a ready init server with a token
        // in the wrong form is not taken either.
        assert_eq!(
            role(db, "h-work", Some(rep("join-agent", "ready", Some(&k10)))),
            None
        );
        role(
            db,
            "h-init",
            Some(rep("init-server", "ready", Some("plain-secret"))),
        );
        assert_eq!(role(db, "h-work", None), None, "no secure token yet");
        role(db, "h-init", Some(rep("init-server", "ready", Some(&k10))));
        let w = role(db, "h-work", None).expect("released after the token");
        assert_eq!(w.role, "join-agent");
        assert_eq!(w.token, k10, "the init server's token, relayed");
        assert_eq!(w.server_url, "https://10.0.0.100:6443");
        assert_eq!(role(db, "h-out", None), None, "never to a non-member");
        // Sealed at rest: the tables hold neither token, nor (SQLite) the
        // database file.
        let sealed: Vec<String> = db
            .auto()
            .prepare("SELECT sealed FROM cluster_secrets")
            .and_then(|mut st| st.query_map((), |r| r.get(0))?.collect())
            .expect("secrets");
        assert_eq!(sealed.len(), 2, "bootstrap and join token stored");
        for t in &sealed {
            assert!(
                !t.contains("5ec7e7") && !t.contains(&init.token),
                "a token in clear"
            );
        }
        if !db.is_pg() {
            let mut bytes = std::fs::read(dir.join("hub.db")).expect("db file");
            bytes.extend(std::fs::read(dir.join("hub.db-wal")).unwrap_or_default());
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("5ec7e7") && !text.contains(&init.token),
                "a token in clear"
            );
        }
    }

    #[test]
    fn checkin_inventory_desired_and_deregistration() {
        let (mut db, dir) = tmpdb("checkin");
        checkin_inventory_desired_and_deregistration_on(&mut db, &dir);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn checkin_inventory_desired_and_deregistration_on(db: &mut Db, _dir: &Path) {
        db.token_create("tok", None, 0, None).expect("token");
        db.register(&reg("h1", "s"), "tok", "cred", 10, "")
            .expect("reg")
            .expect("ok");
        let unknown = db
            .checkin("nope", &checkin("h1", "sha256:1", ""), 11, "")
            .expect("db");
        assert_eq!(
            unknown.err(),
            Some(CheckinRefusal::Unknown),
            "unknown credential"
        );
        let wrong_host = db
            .checkin("cred", &checkin("h2", "sha256:1", ""), 11, "")
            .expect("db");
        assert_eq!(
            wrong_host.err(),
            Some(CheckinRefusal::Unknown),
            "credential of another host"
        );

        let a = db
            .checkin("cred", &checkin("h1", "sha256:1", ""), 11, "")
            .expect("db")
            .expect("ok");
        assert!(!a.inventory_wanted, "same hash: no inventory wanted");
        assert!(a.desired.is_some(), "first check-in gets the desired state");
        let b = db
            .checkin("cred", &checkin("h1", "sha256:1", &a.desired_tag), 12, "")
            .expect("db")
            .expect("ok");
        assert!(b.desired.is_none(), "unchanged desired state is not resent");
        let c = db
            .checkin("cred", &checkin("h1", "sha256:2", &a.desired_tag), 13, "")
            .expect("db")
            .expect("ok");
        assert!(c.inventory_wanted, "changed hash without inventory: wanted");
        let mut with = checkin("h1", "sha256:2", &a.desired_tag);
        with.inventory = Some(Inventory::default());
        let d = db.checkin("cred", &with, 14, "").expect("db").expect("ok");
        assert!(!d.inventory_wanted, "inventory sent");

        db.set_labels("h1", &[("cluster".into(), "c1".into())])
            .expect("labels");
        let e = db
            .checkin("cred", &checkin("h1", "sha256:2", &a.desired_tag), 15, "")
            .expect("db")
            .expect("ok");
        assert_eq!(
            e.desired.map(|d| d.labels.len()),
            Some(1),
            "new label resent"
        );
        assert_eq!(db.devices().expect("list")[0].status(), "In-Use");

        assert!(db.deregister("h1").expect("dereg"), "deregister");
        let f = db
            .checkin("cred", &checkin("h1", "sha256:2", &e.desired_tag), 16, "")
            .expect("db")
            .expect("ok");
        assert_eq!(
            f.desired.map(|d| d.deregister),
            Some(true),
            "deregistration delivered"
        );
        let g = db
            .checkin("cred", &checkin("h1", "sha256:2", &f.desired_tag), 17, "")
            .expect("db");
        assert_eq!(
            g.err(),
            Some(CheckinRefusal::Deregistered),
            "410 afterwards"
        );
        assert_eq!(db.devices().expect("list")[0].status(), "Unpaired");
    }

    #[test]
    fn health_after_missed_intervals() {
        let (mut db, dir) = tmpdb("health");
        health_after_missed_intervals_on(&mut db, &dir);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn health_after_missed_intervals_on(db: &mut Db, _dir: &Path) {
        db.token_create("tok", None, 0, None).expect("token");
        db.register(&reg("h1", "s"), "tok", "cred", 1000, "")
            .expect("reg")
            .expect("ok");
        db.set_interval(None, 60_000).expect("interval");
        let d = &db.devices().expect("list")[0];
        let cases = [
            (1_000_000, "Healthy"),
            (1_181_000, "Healthy"),
            (1_181_001, "Unhealthy"),
        ];
        for (now_ms, want) in cases {
            assert_eq!(d.health(now_ms), want, "at {now_ms} ms");
        }
    }
}
