//! `outpost-hub`, the reference server of the outpost protocol: argv
//! parsing and the operator commands (tokens, devices, interval, upgrade
//! offers, labels, config, deregistration, load shedding). Compiled only with
//! the `hub` feature; the device binary never contains any of it.
//!
//! Must not print secrets except a new token, once, on stdout.

pub mod cluster;
pub mod cluster_cmd;
pub mod db;
pub mod http;
pub mod secret;
pub mod server;

use crate::error::{Code, Error, Result};
use crate::proto::{Artifact, UpgradeOffer};
use crate::timefmt;
use db::{Db, Shed};
use lexopt::prelude::*;
use miniserde::json::{self, Number, Object, Value};
use std::ffi::OsString;
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
  cluster         Clusters: create, add hosts, show, list, remove

Options:
  --db FILE       Registry database (default: outpost-hub.db)
  -h, --help      Show this help (also per command)
  -V, --version   Print the version
";

const SERVE_HELP: &str = "\
Usage: outpost-hub serve --listen ADDR --tls-cert FILE --tls-key FILE
                         [--db FILE] [--workers N] [--request-log FILE]
                         [--deadline SECONDS]
       outpost-hub serve --listen 127.0.0.1:PORT --insecure-http ...

Prints 'listening on https://ADDR' on stdout once bound (port 0 picks a
free port). Each connection carries one request; a client has --deadline
seconds (default 10) for TLS handshake, head and body together.
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

const UPGRADE_HELP: &str = "\
Usage: outpost-hub offer-upgrade [--device ID] --version V [--min-version V]
                                 --artifact ARCH=URL,SHA256,SIZE ...
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
            e.code
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
                print!("{HELP}");
                return Ok(());
            }
            Some(Short('V') | Long("version")) => {
                println!("outpost-hub {}", crate::version::VERSION);
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
        let mut deadline = Duration::from_secs(10);
        while let Some(arg) = a.p.next().map_err(usage)? {
            match arg {
                Long("listen") => listen = Some(a.value("--listen")?),
                Long("tls-cert") => cert = Some(PathBuf::from(a.p.value().map_err(usage)?)),
                Long("tls-key") => key = Some(PathBuf::from(a.p.value().map_err(usage)?)),
                Long("insecure-http") => insecure = true,
                Long("request-log") => {
                    request_log = Some(PathBuf::from(a.p.value().map_err(usage)?))
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
                Long("db") => db = PathBuf::from(a.p.value().map_err(usage)?),
                Short('h') | Long("help") => {
                    print!("{}", SERVE_HELP);
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
            deadline,
        })
    })()
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
                print!("{TOKEN_HELP}");
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
                            print!("{}", TOKEN_HELP);
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
                println!("{tok}");
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
                            print!("{}", TOKEN_HELP);
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
                    println!("{}", json::to_string(&list));
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
                            print!("{}", TOKEN_HELP);
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
    print!("{}", table(header, rows));
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
                    print!("{}", DEVICES_HELP);
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
                    Value::Object(o)
                })
                .collect();
            let mut top = Object::new();
            top.insert(
                "schema".into(),
                Value::String("outpost.hub.devices/v1".into()),
            );
            top.insert("devices".into(), Value::Array(list.into_iter().collect()));
            println!("{}", json::to_string(&Value::Object(top)));
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
                    print!("{}", SET_INTERVAL_HELP);
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

fn parse_artifact(s: &str) -> Result<Artifact> {
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
    if !url.starts_with("https://") || url.len() > 2048 {
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
        while let Some(arg) = a.p.next().map_err(usage)? {
            match arg {
                Long("device") => device = Some(a.value("--device")?),
                Long("version") => version = Some(a.value("--version")?),
                Long("min-version") => min_version = a.value("--min-version")?,
                Long("artifact") => artifacts.push(parse_artifact(&a.value("--artifact")?)?),
                Long("withdraw") => withdraw = true,
                Long("db") => db = PathBuf::from(a.p.value().map_err(usage)?),
                Short('h') | Long("help") => {
                    print!("{}", UPGRADE_HELP);
                    return Ok(());
                }
                other => return Err(usage(other.unexpected())),
            }
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
                    print!("{}", CONFIG_HELP);
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
                    print!("{REMOVE_HELP}");
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
                    print!("{}", SHED_HELP);
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
