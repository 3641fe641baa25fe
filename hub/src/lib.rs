//! `outpost-hub`, the reference server of the outpost protocol: argv
//! parsing and the operator commands (tokens, devices, interval, upgrade
//! offers, labels, config, deregistration, load shedding). Its own crate (hub/), so
//! the device binary never contains any of it.
//!
//! Must not print secrets except a new token, once, on stdout.

#![forbid(unsafe_code)]

/// Print to standard output; a closed pipe (`outpost-hub devices | head -1`)
/// ends the output quietly instead of panicking as `print!` does.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        let _ = write!(o, $($t)*).and_then(|_| o.flush());
    }};
}

/// `out!` with a newline.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, $($t)*).and_then(|_| o.flush());
    }};
}

pub mod cluster;
pub mod cluster_bundle;
pub mod cluster_cmd;
pub mod cluster_hub;
pub mod db;
pub mod http;
pub mod load;
pub mod pg;
pub mod rollout;
pub mod seal;
pub mod secret;
pub mod server;
pub mod slots;
pub mod store;
#[cfg(test)]
mod testpg;
pub mod upgrades;

use db::{Db, Shed};
use lexopt::prelude::*;
use miniserde::json::{self, Number, Object, Value};
use outpost::error::{Code, Error, Result};
use outpost::proto::{Artifact, UpgradeOffer};
use outpost::timefmt;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

pub const HELP: &str = "\
outpost-hub: the reference server of the outpost check-in protocol

Usage: outpost-hub [--db FILE] <command> [options]

Commands:
  serve           Serve the protocol (HTTPS; plain HTTP only on loopback)
  token create    Make a registration token (printed once)
  token list      List tokens (IDs, never the tokens)
  token revoke    Revoke a token by ID
  devices         List registered devices (--json for programs)
  set-interval    Set the check-in interval, for all or one device
  offer-upgrade   Offer an agent upgrade (or --withdraw it)
  set-config      Send configuration changes to agents
  label           Set or remove labels of a device
  deregister      Deregister a device (its agent stops, exit 15)
  delete          Delete a device record (frees its host ID)
  shed            Answer register/check-in with 429 or 503 (tests, drills)
  release         Add a signed agent release (add FILE.manifest --key PUB), list
  rollout         Roll a release out: start, status, pause, resume, abort
  cluster-upgrade Hold a cluster's Kubernetes upgrade until its agents are new enough
  clusters        Show each cluster upgrade's gate: holding (why) or released
  cluster         Clusters: create, add hosts, show, list, remove

Options:
  --db FILE       Registry database (default: outpost-hub.db)
  -h, --help      Show this help (also per command)
  -V, --version   Print the version
";

const SERVE_HELP: &str = "\
Usage: outpost-hub serve --listen ADDR --tls-cert FILE --tls-key FILE
                         [--db FILE|postgres://...] [--workers N]
                         [--request-log FILE [--request-log-max SIZE]]
                         [--max-rate N] [--deadline SECONDS]
                         [--keep-alive SECONDS] [--keep-alive-max N]
       outpost-hub serve --listen 127.0.0.1:PORT --insecure-http ...

Prints 'listening on https://ADDR' on stdout once bound (port 0 picks a
free port). A client has --deadline seconds (default 10) for TLS handshake,
head and body of a request together. A connection stays open for the next
request --keep-alive seconds (default 5; 0: one request per connection),
at most --keep-alive-max requests (default 100), and is closed at once
when other connections wait for a worker.
--request-log-max SIZE (like 64M) renames the log to FILE.1 before it
grows past SIZE. --max-rate N answers register and check-in beyond N per
second (this hub's) with 429 and Retry-After 1 to 5 s.
";

const TOKEN_HELP: &str = "\
Usage: outpost-hub token create [--project P] [--expires DURATION|never]
       outpost-hub token list [--json]
       outpost-hub token revoke ID

DURATION: a number with s, m, h or d (default 7d).
";

const DEVICES_HELP: &str = "\
Usage: outpost-hub devices [--json]

Status: Ready, In-Use (labelled with 'cluster'), Unpaired (deregistered).
Health: Unhealthy when the agent says so or after 3 missed intervals.
";

const SET_INTERVAL_HELP: &str = "\
Usage: outpost-hub set-interval [--device ID] [--test-mode] SECONDS

SECONDS: 1 to 604800, fractions allowed; below 1 only with --test-mode.
Without --device it sets the default and clears per-device intervals.
";

const RELEASE_HELP: &str = "\
Usage: outpost-hub release add FILE.manifest --key PUB [--key PUB]
       outpost-hub release list

add verifies FILE.manifest.sig (signify) with one of the keys, checks the
artifact beside it (FILE) against size and sha256, and stores it; the hub
serves it at /outpost/v1/artifacts/<sha256>.
";

const ROLLOUT_HELP: &str = "\
Usage: outpost-hub rollout start --version V [--canary N] [--percent P]
                                 [--max-parallel K] [--label KEY=VALUE]
       outpost-hub rollout status | pause | resume | abort

One rollout at a time. Canaries (the first N devices by host ID) get the
offer first; the rest only after every canary committed V. --percent caps
the share of devices, --max-parallel the devices upgrading at once. A
device that rolls back or fails pauses the rollout with its reason.
";

const CLUSTER_HELP: &str = "\
Usage: outpost-hub cluster-upgrade CLUSTER --kubernetes V --min-agent A
       outpost-hub clusters [--json]

Members are devices labelled cluster=CLUSTER. The Kubernetes upgrade is
held, with the reason per host (too old, offline, rolled back), and members
below A are offered the newest release >= A, until every member runs an
agent >= A; then it is released to them.
";

const UPGRADE_HELP: &str = "\
Usage: outpost-hub offer-upgrade [--device ID] --version V [--min-version V]
                                 --artifact ARCH=URL,SHA256,SIZE ... [--manifest FILE]
                                 [--test-mode]

--manifest attaches a signed release manifest (and FILE.sig) to the
artifact; agents act only on signed offers. --test-mode admits a plain
http:// URL (agents refuse it; for tests).
       outpost-hub offer-upgrade [--device ID] --withdraw
";

const CONFIG_HELP: &str = "\
Usage: outpost-hub set-config [--device ID] KEY=VALUE ...   (KEY= removes)
       outpost-hub label ID KEY=VALUE ...                   (KEY= removes)
";

const REMOVE_HELP: &str = "\
Usage: outpost-hub deregister HOST_ID   (next check-in: deregister, then 410)
       outpost-hub delete HOST_ID       (remove the record; frees the host ID)
";

const SHED_HELP: &str = "\
Usage: outpost-hub shed 429|503 [--retry-after SECONDS] [--http-date]
       outpost-hub shed off
";

/// Run `outpost-hub` with these arguments; returns the exit code.
pub fn main(args: Vec<OsString>) -> Code {
    match run(args) {
        Ok(()) => Code::Ok,
        Err(e) => {
            eprintln!("outpost-hub: {e}");
            e.code()
        }
    }
}

fn usage(e: lexopt::Error) -> Error {
    Error::usage(e.to_string())
}

fn string(v: OsString, flag: &str) -> Result<String> {
    v.into_string()
        .map_err(|_| Error::usage(format!("{flag}: not valid UTF-8")))
}

struct Args {
    p: lexopt::Parser,
}

impl Args {
    fn value(&mut self, flag: &str) -> Result<String> {
        let v = self.p.value().map_err(usage)?;
        string(v, flag)
    }
}

fn run(args: Vec<OsString>) -> Result<()> {
    let mut a = Args {
        p: lexopt::Parser::from_args(args),
    };
    let mut db_path = PathBuf::from("outpost-hub.db");
    let cmd = loop {
        match a.p.next().map_err(usage)? {
            Some(Long("db")) => db_path = PathBuf::from(a.p.value().map_err(usage)?),
            Some(Short('h') | Long("help")) => {
                out!("{HELP}");
                return Ok(());
            }
            Some(Short('V') | Long("version")) => {
                outln!("outpost-hub {}", outpost::version::VERSION);
                return Ok(());
            }
            Some(Value(v)) => break string(v, "command")?,
            Some(other) => return Err(usage(other.unexpected())),
            None => return Err(Error::usage("no command given; try 'outpost-hub --help'")),
        }
    };
    match cmd.as_str() {
        "serve" => serve(&mut a, db_path),
        "token" => token(&mut a, db_path),
        "devices" => devices(&mut a, db_path),
        "set-interval" => set_interval(&mut a, db_path),
        "offer-upgrade" => offer_upgrade(&mut a, db_path),
        "set-config" | "label" => set_kv(&mut a, db_path, &cmd),
        "deregister" | "delete" => remove(&mut a, db_path, &cmd),
        "shed" => shed(&mut a, db_path),
        "release" => release_cmd(&mut a, db_path),
        "rollout" => rollout_cmd(&mut a, db_path),
        "cluster-upgrade" => cluster_upgrade(&mut a, db_path),
        "clusters" => clusters_cmd(&mut a, db_path),
        "cluster" => cluster_cmd::run(&mut a.p, &db_path),
        other => Err(Error::usage(format!(
            "unknown command '{other}'; try 'outpost-hub --help'"
        ))),
    }
}

fn serve(a: &mut Args, mut db: PathBuf) -> Result<()> {
    (|| {
        let mut listen = None;
        let (mut cert, mut key, mut insecure) = (None, None, false);
        let mut workers = 4usize;
        let mut request_log = None;
        let mut request_log_max = 0u64;
        let mut max_rate = 0u32;
        let mut deadline = Duration::from_secs(10);
        let mut keep_alive_idle = server::DEFAULT_KEEP_ALIVE_IDLE;
        let mut keep_alive_max = server::DEFAULT_KEEP_ALIVE_MAX;
        while let Some(arg) = a.p.next().map_err(usage)? {
            match arg {
                Long("listen") => listen = Some(a.value("--listen")?),
                Long("tls-cert") => cert = Some(PathBuf::from(a.p.value().map_err(usage)?)),
                Long("tls-key") => key = Some(PathBuf::from(a.p.value().map_err(usage)?)),
                Long("insecure-http") => insecure = true,
                Long("request-log") => {
                    request_log = Some(PathBuf::from(a.p.value().map_err(usage)?))
                }
                Long("request-log-max") => {
                    let v = a.value("--request-log-max")?;
                    request_log_max = parse_size(&v).ok_or_else(|| {
                        Error::usage(format!(
                            "--request-log-max {v}: expected a size like 64M (at least 4K), or 0 for unbounded"
                        ))
                    })?;
                }
                Long("max-rate") => {
                    let v = a.value("--max-rate")?;
                    max_rate = v.parse().ok().filter(|n| *n <= 1_000_000).ok_or_else(|| {
                        Error::usage(format!(
                            "--max-rate {v}: expected requests per second, 0 (no limit) to 1000000"
                        ))
                    })?;
                }
                Long("workers") => {
                    let v = a.value("--workers")?;
                    workers = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| Error::usage(format!("--workers {v}: expected 1 to 64")))?;
                }
                Long("deadline") => {
                    let v = a.value("--deadline")?;
                    let ms = parse_seconds_ms(&v)
                        .filter(|ms| (10..=300_000).contains(ms))
                        .ok_or_else(|| {
                            Error::usage(format!("--deadline {v}: expected 0.01 to 300 seconds"))
                        })?;
                    deadline = Duration::from_millis(ms);
                }
                Long("keep-alive") => {
                    let v = a.value("--keep-alive")?;
                    let ms = parse_seconds_ms(&v)
                        .filter(|ms| *ms == 0 || (10..=300_000).contains(ms))
                        .ok_or_else(|| {
                            Error::usage(format!(
                                "--keep-alive {v}: expected 0 (off) or 0.01 to 300 seconds"
                            ))
                        })?;
                    keep_alive_idle = Duration::from_millis(ms);
                }
                Long("keep-alive-max") => {
                    let v = a.value("--keep-alive-max")?;
                    keep_alive_max = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=1_000_000).contains(n))
                        .ok_or_else(|| {
                            Error::usage(format!(
                                "--keep-alive-max {v}: expected requests per connection, 1 to 1000000"
                            ))
                        })?;
                }
                Long("db") => db = PathBuf::from(a.p.value().map_err(usage)?),
                Short('h') | Long("help") => {
                    out!("{}", SERVE_HELP);
                    return Ok(());
                }
                other => return Err(usage(other.unexpected())),
            }
        }
        let listen = listen.ok_or_else(|| Error::usage("serve: --listen ADDR is required"))?;
        let tls = match (cert, key, insecure) {
            (Some(c), Some(k), false) => Some((c, k)),
            (None, None, true) => None,
            (_, _, true) => {
                return Err(Error::usage(
                    "serve: --insecure-http and --tls-cert/--tls-key exclude each other",
                ))
            }
            _ => {
                return Err(Error::usage(
                    "serve: --tls-cert FILE and --tls-key FILE are required (or --insecure-http on loopback)",
                ))
            }
        };
        server::serve(server::Options {
            listen,
            tls,
            db: db.clone(),
            workers,
            request_log,
            request_log_max,
            max_rate,
            deadline,
            keep_alive_idle,
            keep_alive_max,
        })
    })()
}

/// "64M" -> 67108864 bytes (K, M, G: binary units); "0" -> 0 (unbounded);
/// otherwise at least 4 KiB.
fn parse_size(s: &str) -> Option<u64> {
    if s == "0" {
        return Some(0);
    }
    let (num, mul) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().ok()?;
    n.checked_mul(mul).filter(|b| *b >= 4096)
}

/// "1.5" -> 1500 (milliseconds); at most 3 decimals.
fn parse_seconds_ms(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 3 || int.len() > 9 {
        return None;
    }
    let i: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let f: u64 = format!("{frac:0<3}").parse().ok()?;
    Some(i * 1000 + f)
}

/// "30m" -> 1800 seconds.
fn parse_duration_s(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = num.parse().ok().filter(|n| *n > 0)?;
    let mul = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mul).filter(|v| *v <= 3650 * 86_400)
}

fn token(a: &mut Args, mut db: PathBuf) -> Result<()> {
    (|| {
        let sub = match a.p.next().map_err(usage)? {
            Some(Value(v)) => string(v, "token command")?,
            Some(Short('h') | Long("help")) => {
                out!("{TOKEN_HELP}");
                return Ok(());
            }
            Some(other) => return Err(usage(other.unexpected())),
            None => String::new(),
        };
        match sub.as_str() {
            "create" => {
                let mut project = None;
                let mut expires = Some(7 * 86_400);
                while let Some(arg) = a.p.next().map_err(usage)? {
                    match arg {
                        Long("project") => {
                            let p = a.value("--project")?;
                            if p.is_empty() || p.len() > 64 {
                                return Err(Error::usage("--project: 1 to 64 characters"));
                            }
                            project = Some(p);
                        }
                        Long("expires") => {
                            let v = a.value("--expires")?;
                            expires = if v == "never" {
                                None
                            } else {
                                Some(parse_duration_s(&v).ok_or_else(|| {
                                    Error::usage(format!(
                                        "--expires {v}: expected e.g. 90m, 24h, 30d or never"
                                    ))
                                })?)
                            };
                        }
                        Long("db") => db = PathBuf::from(a.p.value().map_err(usage)?),
                        Short('h') | Long("help") => {
                            out!("{}", TOKEN_HELP);
                            return Ok(());
                        }
                        other => return Err(usage(other.unexpected())),
                    }
                }
                let mut d = Db::open(&db)?;
                let tok = secret::generate(secret::TOKEN_PREFIX)?;
                let now = server::now_unix();
                let id = d.token_create(
                    &secret::hash_secret(&tok),
                    project.as_deref(),
                    now,
                    expires.map(|e| now + e),
                )?;
                // The token exists only here: failing to print it is an error.
                let mut o = std::io::stdout().lock();
                writeln!(o, "{tok}").and_then(|_| o.flush()).map_err(|e| {
                    Error::new(
                        Code::LocalIo,
                        format!("token create: writing the token to standard output: {e}"),
                    )
                })?;
                let until = expires
                    .map(|e| format!("expires {}", timefmt::rfc3339(now + e)))
                    .unwrap_or_else(|| "never expires".into());
                eprintln!(
                    "token {id} for project {}, {until}; it is shown only now",
                    project.as_deref().unwrap_or("(any)")
                );
                Ok(())
            }
            "list" => {
                let mut as_json = false;
                while let Some(arg) = a.p.next().map_err(usage)? {
                    match arg {
                        Long("json") => as_json = true,
                        Long("db") => db = PathBuf::from(a.p.value().map_err(usage)?),
                        Short('h') | Long("help") => {
                            out!("{}", TOKEN_HELP);
                            return Ok(());
                        }
                        other => return Err(usage(other.unexpected())),
                    }
                }
                let d = Db::open(&db)?;
                let now = server::now_unix();
                let rows = d.token_list()?;
                let state = |t: &db::TokenRow| {
                    if t.revoked {
                        "revoked"
                    } else if t.expires.is_some_and(|e| e <= now) {
                        "expired"
                    } else {
                        "valid"
                    }
                };
                if as_json {
                    let list: Vec<Value> = rows
                        .iter()
                        .map(|t| {
                            let mut o = Object::new();
                            o.insert("id".into(), Value::String(t.id.clone()));
                            o.insert(
                                "project".into(),
                                t.project.clone().map(Value::String).unwrap_or(Value::Null),
                            );
                            o.insert("created".into(), Value::String(timefmt::rfc3339(t.created)));
                            o.insert(
                                "expires".into(),
                                t.expires
                                    .map(|e| Value::String(timefmt::rfc3339(e)))
                                    .unwrap_or(Value::Null),
                            );
                            o.insert("state".into(), Value::String(state(t).into()));
                            o.insert("uses".into(), Value::Number(Number::U64(t.uses)));
                            Value::Object(o)
                        })
                        .collect();
                    outln!("{}", json::to_string(&list));
                } else {
                    let table: Vec<Vec<String>> = rows
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.clone(),
                                t.project.clone().unwrap_or_else(|| "(any)".into()),
                                timefmt::rfc3339(t.created),
                                t.expires
                                    .map(timefmt::rfc3339)
                                    .unwrap_or_else(|| "never".into()),
                                state(t).to_string(),
                                t.uses.to_string(),
                            ]
                        })
                        .collect();
                    print_table(
                        &["ID", "PROJECT", "CREATED", "EXPIRES", "STATE", "USES"],
                        &table,
                    );
                }
                Ok(())
            }
            "revoke" => {
                let mut id = None;
                while let Some(arg) = a.p.next().map_err(usage)? {
                    match arg {
                        Value(v) if id.is_none() => id = Some(string(v, "token ID")?),
                        Long("db") => db = PathBuf::from(a.p.value().map_err(usage)?),
                        Short('h') | Long("help") => {
                            out!("{}", TOKEN_HELP);
                            return Ok(());
                        }
                        other => return Err(usage(other.unexpected())),
                    }
                }
                let id = id.ok_or_else(|| Error::usage("token revoke: ID is required"))?;
                if Db::open(&db)?.token_revoke(&id)? {
                    eprintln!("token {id} revoked");
                    Ok(())
                } else {
                    Err(Error::usage(format!("token revoke: no token with ID {id}")))
                }
            }
            "" => Err(Error::usage("token: expected create, list or revoke")),
            other => Err(Error::usage(format!(
                "token: unknown command '{other}' (expected create, list or revoke)"
            ))),
        }
    })()
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    out!("{}", table(header, rows));
}

/// Aligned columns (two spaces apart), sized to their content. Control
/// characters (device-supplied text could carry terminal escapes) are shown
/// as `?`.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| {
                    c.chars()
                        .map(|ch| if ch.is_control() { '?' } else { ch })
                        .collect()
                })
                .collect()
        })
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (c, w)) in cells.iter().zip(&width).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        text.push_str(out.trim_end());
        text.push('\n');
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    text
}

fn fmt_bytes(b: u64) -> String {
    if b == 0 {
        return "-".into();
    }
    format!("{:.1} GB", b as f64 / 1e9)
}

fn devices(a: &mut Args, mut db: PathBuf) -> Result<()> {
    (|| {
        let mut as_json = false;
        while let Some(arg) = a.p.next().map_err(usage)? {
            match arg {
                Long("json") => as_json = true,
                Long("db") => db = PathBuf::from(a.p.value().map_err(usage)?),
                Short('h') | Long("help") => {
                    out!("{}", DEVICES_HELP);
                    return Ok(());
                }
                other => return Err(usage(other.unexpected())),
            }
        }
        let d = Db::open(&db)?;
        let rows = d.devices()?;
        let now_ms = server::now_ms();
        let map_obj = |m: &std::collections::BTreeMap<String, String>| {
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        };
        if as_json {
            let list: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let s = |v: &str| Value::String(v.to_string());
                    let n = |v: u64| Value::Number(Number::U64(v));
                    let mut o = Object::new();
                    o.insert("host_id".into(), s(&r.host_id));
                    o.insert("name".into(), s(&r.hostname));
                    o.insert("project".into(), s(&r.project));
                    o.insert("status".into(), s(r.status()));
                    o.insert("health".into(), s(r.health(now_ms)));
                    o.insert(
                        "failing".into(),
                        Value::Array(r.failing.iter().map(|f| s(f)).collect()),
                    );
                    o.insert("cpus".into(), n(u64::from(r.inventory.cpus)));
                    o.insert("memory_bytes".into(), n(r.inventory.memory_bytes));
                    o.insert("os".into(), s(&r.inventory.os));
                    o.insert("kernel".into(), s(&r.inventory.kernel));
                    o.insert("ip".into(), s(&r.ip()));
                    o.insert("mac".into(), s(&r.mac()));
                    o.insert("arch".into(), s(&r.inventory.arch));
                    o.insert("tags".into(), map_obj(&r.tags));
                    o.insert("labels".into(), map_obj(&r.labels));
                    o.insert("agent".into(), s(&r.agent));
                    o.insert("interval_ms".into(), n(r.interval_ms));
                    o.insert("registered".into(), s(&timefmt::rfc3339(r.registered)));
                    o.insert("last_seen".into(), s(&timefmt::rfc3339(r.last_seen)));
                    o.insert("checkins".into(), n(r.checkins));
                    o.insert(
                        "last_boot".into(),
                        r.last_boot
                            .as_ref()
                            .map(|(b, at)| outpost::boot::hub_summary(b, *at))
                            .unwrap_or(Value::Null),
                    );
                    Value::Object(o)
                })
                .collect();
            let mut top = Object::new();
            top.insert(
                "schema".into(),
                Value::String("outpost.hub.devices/v1".into()),
            );
            top.insert("devices".into(), Value::Array(list.into_iter().collect()));
            outln!("{}", json::to_string(&Value::Object(top)));
            return Ok(());
        }
        let header = [
            "HOST ID",
            "NAME",
            "STATUS",
            "HEALTH",
            "CPU",
            "MEMORY",
            "OS",
            "IP",
            "MAC",
            "ARCH",
            "TAGS",
            "LAST SEEN",
            "LAST BOOT",
        ];
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let tags: Vec<String> = r.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                vec![
                    r.host_id.clone(),
                    r.hostname.clone(),
                    r.status().to_string(),
                    r.health(now_ms).to_string(),
                    r.inventory.cpus.to_string(),
                    fmt_bytes(r.inventory.memory_bytes),
                    r.inventory.os.clone(),
                    r.ip(),
                    r.mac(),
                    r.inventory.arch.clone(),
                    if tags.is_empty() {
                        "-".into()
                    } else {
                        tags.join(",")
                    },
                    timefmt::rfc3339(r.last_seen),
                    r.last_boot
                        .as_ref()
                        .map(|(b, _)| outpost::boot::hub_text(b))
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        print_table(&header, &table);
        Ok(())
    })()
}

fn set_interval(a: &mut Args, mut db: PathBuf) -> Result<()> {
    (|| {
        let (mut device, mut test_mode, mut secs) = (None, false, None);
        while let Some(arg) = a.p.next().map_err(usage)? {
            match arg {
                Long("device") => device = Some(a.value("--device")?),
                Long("test-mode") => test_mode = true,
                Value(v) if secs.is_none() => secs = Some(string(v, "SECONDS")?),
                Long("db") => db = PathBuf::from(a.p.value().map_err(usage)?),
                Short('h') | Long("help") => {
                    out!("{}", SET_INTERVAL_HELP);
                    return Ok(());
                }
                other => return Err(usage(other.unexpected())),
            }
        }
        let v = secs.ok_or_else(|| Error::usage("set-interval: SECONDS is required"))?;
        let ms = parse_seconds_ms(&v).ok_or_else(|| {
            Error::usage(format!(
                "set-interval {v}: expected seconds, e.g. 300 or 0.5"
            ))
        })?;
        let min = if test_mode { 1 } else { 1000 };
        if ms < min || ms > 604_800_000 {
            return Err(Error::usage(format!(
                "set-interval {v}: expected {} to 604800 seconds",
                if test_mode {
                    "0.001"
                } else {
                    "1 (below only with --test-mode),"
                }
            )));
        }
        let mut d = Db::open(&db)?;
        let n = d.set_interval(device.as_deref(), ms)?;
        match device {
            Some(dev) if n == 0 => Err(Error::usage(format!("set-interval: no device {dev}"))),
            Some(dev) => {
                eprintln!("interval of {dev} set to {v} s");
                Ok(())
            }
            None => {
                eprintln!("default interval set to {v} s");
                Ok(())
            }
        }
    })()
}

#[cfg(test)]
fn parse_artifact(s: &str) -> Result<Artifact> {
    parse_artifact_mode(s, false)
}

/// `--test-mode` admits a plain `http://` URL, so tests can show that
/// agents refuse it.
fn parse_artifact_mode(s: &str, test_mode: bool) -> Result<Artifact> {
    let bad = |why: &str| {
        Error::usage(format!(
            "--artifact {s}: {why} (expected ARCH=URL,SHA256,SIZE)"
        ))
    };
    let (arch, rest) = s.split_once('=').ok_or_else(|| bad("no '='"))?;
    if arch != "x86_64" && arch != "aarch64" {
        return Err(bad("ARCH must be x86_64 or aarch64"));
    }
    let parts: Vec<&str> = rest.split(',').collect();
    let [url, sha, size] = parts.as_slice() else {
        return Err(bad("three comma-separated parts needed"));
    };
    let plain_ok = test_mode && url.starts_with("http://");
    if !(url.starts_with("https://") || plain_ok) || url.len() > 2048 {
        return Err(bad("URL must start with https://"));
    }
    if sha.len() != 64
        || !sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad("SHA256 must be 64 lowercase hex digits"));
    }
    let size: u64 = size
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| bad("SIZE must be a positive integer"))?;
    Ok(Artifact {
        arch: arch.into(),
        url: url.to_string(),
        sha256: sha.to_string(),
        size,
        manifest: None,
        signature: None,
    })
}

fn valid_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn offer_upgrade(a: &mut Args, mut db: PathBuf) -> Result<()> {
    (|| {
        let (mut device, mut version, mut min_version, mut withdraw) =
            (None, None, String::new(), false);
        let mut artifacts = Vec::new();
        let mut manifest: Option<PathBuf> = None;
        let mut raw_artifacts = Vec::new();
        let mut test_mode = false;
        while let Some(arg) = a.p.next().map_err(usage)? {
            match arg {
                Long("device") => device = Some(a.value("--device")?),
                Long("version") => version = Some(a.value("--version")?),
                Long("min-version") => min_version = a.value("--min-version")?,
                Long("artifact") => raw_artifacts.push(a.value("--artifact")?),
                Long("test-mode") => test_mode = true,
                Long("manifest") => manifest = Some(PathBuf::from(a.value("--manifest")?)),
                Long("withdraw") => withdraw = true,
                Long("db") => db = PathBuf::from(a.p.value().map_err(usage)?),
                Short('h') | Long("help") => {
                    out!("{}", UPGRADE_HELP);
                    return Ok(());
                }
                other => return Err(usage(other.unexpected())),
            }
        }
        for r in &raw_artifacts {
            artifacts.push(parse_artifact_mode(r, test_mode)?);
        }
        let mut d = Db::open(&db)?;
        if withdraw {
            if version.is_some() || !artifacts.is_empty() {
                return Err(Error::usage(
                    "offer-upgrade: --withdraw takes no --version or --artifact",
                ));
            }
            d.set_upgrade(device.as_deref(), None)?;
            eprintln!("upgrade offer withdrawn");
            return Ok(());
        }
        let version =
            version.ok_or_else(|| Error::usage("offer-upgrade: --version V is required"))?;
        for (flag, v, may_be_empty) in [
            ("--version", &version, false),
            ("--min-version", &min_version, true),
        ] {
            if !(valid_version(v) || (may_be_empty && v.is_empty())) {
                return Err(Error::usage(format!(
                    "offer-upgrade {flag} {v}: expected MAJOR.MINOR.PATCH"
                )));
            }
        }
        if artifacts.is_empty() {
            return Err(Error::usage(
                "offer-upgrade: at least one --artifact is required",
            ));
        }
        if let Some(m) = &manifest {
            // Attach a signed manifest (and FILE.sig) as they are: the
            // agent verifies them; a test can hand it anything.
            let rd = |p: &std::path::Path| {
                std::fs::read_to_string(p).map_err(|e| Error::io("reading", p, &e))
            };
            let mtext = rd(m)?;
            let stext = rd(&PathBuf::from(format!("{}.sig", m.display())))?;
            for art in &mut artifacts {
                art.manifest = Some(mtext.clone());
                art.signature = Some(stext.clone());
            }
        }
        let offer = UpgradeOffer {
            version: version.clone(),
            min_version,
            artifacts,
        };
        d.set_upgrade(device.as_deref(), Some(&offer))?;
        eprintln!("upgrade to {version} offered");
        Ok(())
    })()
}

fn release_cmd(a: &mut Args, mut db: PathBuf) -> Result<()> {
    let (mut sub, mut file, mut keys) = (None::<String>, None::<PathBuf>, Vec::new());
    while let Some(arg) = a.p.next().map_err(usage)? {
        match arg {
            Long("key") => keys.push(PathBuf::from(a.value("--key")?)),
            Long("db") => db = PathBuf::from(a.value("--db")?),
            Short('h') | Long("help") => {
                print!("{RELEASE_HELP}");
                return Ok(());
            }
            Value(v) if sub.is_none() => sub = Some(string(v, "release")?),
            Value(v) if file.is_none() => file = Some(PathBuf::from(v)),
            other => return Err(usage(other.unexpected())),
        }
    }
    let mut d = Db::open(&db)?;
    match (sub.as_deref(), file) {
        (Some("add"), Some(f)) => {
            let r = upgrades::release_add(&mut d, &f, &keys)?;
            println!(
                "release {} {} added ({} bytes, sha256 {}, signed by key {})",
                r.version, r.arch, r.size, r.sha256, r.key
            );
            Ok(())
        }
        (Some("list"), None) => {
            println!("{:<12} {:<8} {:>10}  SHA256", "VERSION", "ARCH", "SIZE");
            for r in upgrades::releases(&mut d)? {
                println!(
                    "{:<12} {:<8} {:>10}  {}",
                    r.version, r.arch, r.size, r.sha256
                );
            }
            Ok(())
        }
        _ => Err(Error::usage(
            "release: expected 'add FILE.manifest --key PUB' or 'list'",
        )),
    }
}

fn rollout_cmd(a: &mut Args, mut db: PathBuf) -> Result<()> {
    let mut sub = None::<String>;
    let (mut version, mut canary, mut percent, mut par, mut label) =
        (None, 0u32, 100u32, 0u32, String::new());
    let num = |v: String, flag: &str, max: u32| -> Result<u32> {
        v.parse::<u32>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| Error::usage(format!("rollout {flag} {v}: expected 0..={max}")))
    };
    while let Some(arg) = a.p.next().map_err(usage)? {
        match arg {
            Long("version") => version = Some(a.value("--version")?),
            Long("canary") => canary = num(a.value("--canary")?, "--canary", 10_000)?,
            Long("percent") => percent = num(a.value("--percent")?, "--percent", 100)?.max(1),
            Long("max-parallel") => {
                par = num(a.value("--max-parallel")?, "--max-parallel", 10_000)?
            }
            Long("label") => label = a.value("--label")?,
            Long("db") => db = PathBuf::from(a.value("--db")?),
            Short('h') | Long("help") => {
                print!("{ROLLOUT_HELP}");
                return Ok(());
            }
            Value(v) if sub.is_none() => sub = Some(string(v, "rollout")?),
            other => return Err(usage(other.unexpected())),
        }
    }
    let mut d = Db::open(&db)?;
    let now = server::now_unix();
    match sub.as_deref() {
        Some("start") => {
            let v =
                version.ok_or_else(|| Error::usage("rollout start: --version V is required"))?;
            outpost::upgrade::release::parse_version(&v).map_err(Error::usage)?;
            if !upgrades::releases(&mut d)?.iter().any(|r| r.version == v) {
                return Err(Error::usage(format!(
                    "rollout start: no release {v}; add it first (outpost-hub release add)"
                )));
            }
            if let Some(r) = upgrades::rollout_get(&mut d)? {
                if r.state == "running" || r.state == "paused" {
                    return Err(Error::usage(format!(
                        "rollout start: the rollout of {} is {}; abort it first",
                        r.version, r.state
                    )));
                }
            }
            let r = rollout::Rollout {
                version: v.clone(),
                canary,
                percent,
                max_parallel: par,
                selector: label,
                state: "running".into(),
                reason: String::new(),
                offered: Vec::new(),
                started: now,
            };
            upgrades::rollout_put(&mut d, &r)?;
            println!(
                "rollout of {v} started (canary {canary}, {percent}%, max-parallel {})",
                if par == 0 {
                    "unlimited".to_string()
                } else {
                    par.to_string()
                }
            );
            Ok(())
        }
        Some(cmd @ ("pause" | "resume" | "abort")) => {
            let mut r = upgrades::rollout_get(&mut d)?
                .ok_or_else(|| Error::usage(format!("rollout {cmd}: no rollout")))?;
            r.state = match cmd {
                "pause" => "paused",
                "resume" => "running",
                _ => "aborted",
            }
            .into();
            r.reason = match cmd {
                "pause" => "paused by the operator".into(),
                "abort" => "aborted by the operator (offers withdrawn)".into(),
                _ => String::new(),
            };
            upgrades::rollout_put(&mut d, &r)?;
            println!("rollout of {}: {}", r.version, r.state);
            Ok(())
        }
        Some("status") | None => {
            let Some((r, rows)) = upgrades::rollout_view(&mut d, now)? else {
                println!("no rollout");
                return Ok(());
            };
            println!(
                "rollout of {}: {}{}",
                r.version,
                r.state,
                if r.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.reason)
                }
            );
            println!("{:<28} {:<12} STATE", "HOST", "AGENT");
            for (h, agent, st) in rows {
                println!("{h:<28} {agent:<12} {st}");
            }
            Ok(())
        }
        Some(other) => Err(Error::usage(format!(
            "rollout {other}: unknown; see 'outpost-hub rollout --help'"
        ))),
    }
}

fn cluster_upgrade(a: &mut Args, mut db: PathBuf) -> Result<()> {
    let (mut cluster, mut k8s, mut min) = (None::<String>, None::<String>, None::<String>);
    while let Some(arg) = a.p.next().map_err(usage)? {
        match arg {
            Long("kubernetes") => k8s = Some(a.value("--kubernetes")?),
            Long("min-agent") => min = Some(a.value("--min-agent")?),
            Long("db") => db = PathBuf::from(a.value("--db")?),
            Short('h') | Long("help") => {
                print!("{CLUSTER_HELP}");
                return Ok(());
            }
            Value(v) if cluster.is_none() => cluster = Some(string(v, "CLUSTER")?),
            other => return Err(usage(other.unexpected())),
        }
    }
    let (Some(cluster), Some(k8s), Some(min)) = (cluster, k8s, min) else {
        return Err(Error::usage(
            "cluster-upgrade: CLUSTER --kubernetes V --min-agent A are required",
        ));
    };
    outpost::upgrade::release::parse_version(&min).map_err(Error::usage)?;
    let mut d = Db::open(&db)?;
    let c = rollout::ClusterUpgrade {
        cluster: cluster.clone(),
        kubernetes: k8s.clone(),
        min_agent: min.clone(),
        state: "holding".into(),
        reasons: vec!["not evaluated yet".into()],
        released_at: 0,
    };
    upgrades::cluster_put(&mut d, &c)?;
    for c in upgrades::clusters(&mut d, server::now_unix())? {
        if c.cluster == cluster {
            println!(
                "cluster {cluster}: Kubernetes {k8s} needs agents >= {min}: {}",
                c.state
            );
            for r in &c.reasons {
                println!("  {r}");
            }
        }
    }
    Ok(())
}

fn clusters_cmd(a: &mut Args, mut db: PathBuf) -> Result<()> {
    let mut as_json = false;
    while let Some(arg) = a.p.next().map_err(usage)? {
        match arg {
            Long("json") => as_json = true,
            Long("db") => db = PathBuf::from(a.value("--db")?),
            Short('h') | Long("help") => {
                print!("{CLUSTER_HELP}");
                return Ok(());
            }
            other => return Err(usage(other.unexpected())),
        }
    }
    let mut d = Db::open(&db)?;
    let list = upgrades::clusters(&mut d, server::now_unix())?;
    if as_json {
        println!("{}", json::to_string(&list));
        return Ok(());
    }
    if list.is_empty() {
        println!("no cluster upgrades");
    }
    for c in list {
        println!(
            "{}: Kubernetes {} (agents >= {}): {}{}",
            c.cluster,
            c.kubernetes,
            c.min_agent,
            c.state,
            if c.state == "released" {
                format!(" at {}", timefmt::rfc3339(c.released_at))
            } else {
                String::new()
            }
        );
        for r in &c.reasons {
            println!("  {r}");
        }
    }
    Ok(())
}

fn set_kv(a: &mut Args, mut db: PathBuf, cmd: &str) -> Result<()> {
    (|| {
        let mut device = None;
        let mut changes: Vec<(String, String)> = Vec::new();
        while let Some(arg) = a.p.next().map_err(usage)? {
            match arg {
                Long("device") if cmd == "set-config" => device = Some(a.value("--device")?),
                Value(v) if cmd == "label" && device.is_none() => device = Some(string(v, "ID")?),
                Value(v) => {
                    let v = string(v, "KEY=VALUE")?;
                    let (k, val) = v
                        .split_once('=')
                        .filter(|(k, _)| !k.is_empty() && k.len() <= 256)
                        .ok_or_else(|| {
                            Error::usage(format!("{cmd} {v}: expected KEY=VALUE or KEY="))
                        })?;
                    if val.len() > 256 {
                        return Err(Error::usage(format!(
                            "{cmd} {k}: value longer than 256 bytes"
                        )));
                    }
                    changes.push((k.to_string(), val.to_string()));
                }
                Long("db") => db = PathBuf::from(a.p.value().map_err(usage)?),
                Short('h') | Long("help") => {
                    out!("{}", CONFIG_HELP);
                    return Ok(());
                }
                other => return Err(usage(other.unexpected())),
            }
        }
        if changes.is_empty() {
            return Err(Error::usage(format!(
                "{cmd}: at least one KEY=VALUE is required"
            )));
        }
        let mut d = Db::open(&db)?;
        if cmd == "label" {
            let dev = device.ok_or_else(|| Error::usage("label: ID is required"))?;
            if !d.set_labels(&dev, &changes)? {
                return Err(Error::usage(format!("label: no device {dev}")));
            }
        } else {
            d.set_config(device.as_deref(), &changes)?;
        }
        eprintln!("{cmd}: {} change(s) saved", changes.len());
        Ok(())
    })()
}

fn remove(a: &mut Args, mut db: PathBuf, cmd: &str) -> Result<()> {
    (|| {
        let mut id = None;
        while let Some(arg) = a.p.next().map_err(usage)? {
            match arg {
                Value(v) if id.is_none() => id = Some(string(v, "ID")?),
                Long("db") => db = PathBuf::from(a.p.value().map_err(usage)?),
                Short('h') | Long("help") => {
                    out!("{REMOVE_HELP}");
                    return Ok(());
                }
                other => return Err(usage(other.unexpected())),
            }
        }
        let id = id.ok_or_else(|| Error::usage(format!("{cmd}: HOST_ID is required")))?;
        let mut d = Db::open(&db)?;
        let done = if cmd == "deregister" {
            d.deregister(&id)?
        } else {
            d.delete(&id)?
        };
        if !done {
            return Err(Error::usage(format!(
                "{cmd}: no {}device {id}",
                if cmd == "deregister" { "active " } else { "" }
            )));
        }
        eprintln!("{cmd}: {id} done");
        Ok(())
    })()
}

fn shed(a: &mut Args, mut db: PathBuf) -> Result<()> {
    (|| {
        let (mut mode, mut retry_after, mut http_date) = (None, 5u64, false);
        while let Some(arg) = a.p.next().map_err(usage)? {
            match arg {
                Long("retry-after") => {
                    let v = a.value("--retry-after")?;
                    retry_after = v.parse().ok().filter(|n| *n <= 86_400).ok_or_else(|| {
                        Error::usage(format!("--retry-after {v}: expected 0 to 86400 seconds"))
                    })?;
                }
                Long("http-date") => http_date = true,
                Value(v) if mode.is_none() => mode = Some(string(v, "mode")?),
                Long("db") => db = PathBuf::from(a.p.value().map_err(usage)?),
                Short('h') | Long("help") => {
                    out!("{}", SHED_HELP);
                    return Ok(());
                }
                other => return Err(usage(other.unexpected())),
            }
        }
        let mut d = Db::open(&db)?;
        match mode.as_deref() {
            Some("off") => {
                d.set_shed(None)?;
                eprintln!("shedding off");
                Ok(())
            }
            Some(m @ ("429" | "503")) => {
                let status = if m == "429" { 429 } else { 503 };
                d.set_shed(Some(&Shed {
                    status,
                    retry_after_s: retry_after,
                    http_date,
                }))?;
                eprintln!("shedding: every register and check-in now gets {status}");
                Ok(())
            }
            Some(other) => Err(Error::usage(format!(
                "shed {other}: expected 429, 503 or off"
            ))),
            None => Err(Error::usage("shed: expected 429, 503 or off")),
        }
    })()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases = [
            ("0", Some(0)),
            ("64M", Some(64 << 20)),
            ("4k", Some(4096)),
            ("1G", Some(1 << 30)),
            ("8192", Some(8192)),
            ("100", None),
            ("1K", None),
            ("-1M", None),
            ("M", None),
            ("", None),
            ("99999999999G", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_size(s), want, "{s:?}");
        }
    }

    #[test]
    fn seconds_and_durations() {
        let cases = [
            ("300", Some(300_000)),
            ("0.5", Some(500)),
            ("1.25", Some(1250)),
            (".2", Some(200)),
            ("0.0001", None),
            ("-1", None),
            ("1e3", None),
            ("", None),
            (".", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_seconds_ms(s), want, "seconds {s:?}");
        }
        let cases = [
            ("90s", Some(90)),
            ("30m", Some(1800)),
            ("24h", Some(86_400)),
            ("7d", Some(604_800)),
            ("0d", None),
            ("7w", None),
            ("d", None),
            ("", None),
            ("99999d", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration_s(s), want, "duration {s:?}");
        }
    }

    #[test]
    fn tables_align_and_mask_control_characters() {
        let rows = vec![
            vec![
                "edge-1".to_string(),
                "a\u{1b}[31mred".to_string(),
                "x".to_string(),
            ],
            vec!["e".to_string(), "b".to_string(), "".to_string()],
        ];
        let want = "ID      NAME       LAST\nedge-1  a?[31mred  x\ne       b\n";
        assert_eq!(table(&["ID", "NAME", "LAST"], &rows), want, "table");
    }

    #[test]
    fn artifacts_are_validated() {
        let sha = "a".repeat(64);
        let good = format!("aarch64=https://h/o,{sha},10");
        assert_eq!(parse_artifact(&good).expect("good").size, 10);
        let cases = [
            format!("riscv=https://h/o,{sha},10"),
            format!("x86_64=http://h/o,{sha},10"),
            "x86_64=https://h/o,abc,10".to_string(),
            format!("x86_64=https://h/o,{sha},0"),
            format!("x86_64=https://h/o,{sha}"),
            "x86_64".to_string(),
        ];
        for c in cases {
            assert!(parse_artifact(&c).is_err(), "should reject {c}");
        }
        let versions = [
            ("1.2.3", true),
            ("1.2", false),
            ("1.2.x", false),
            ("", false),
        ];
        for (v, ok) in versions {
            assert_eq!(valid_version(v), ok, "version {v:?}");
        }
    }
}
