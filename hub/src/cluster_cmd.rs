//! `outpost-hub cluster create|add|show|list|remove`: the operator's
//! cluster commands. Clusters live in their own tables (`cluster_specs`,
//! `cluster_members`) of the registry database, next to (not in) the
//! device tables; a member's device gets the label `cluster=NAME`.
//! The rules and the release order are `cluster.rs`.
//!
//! The role instructions travel in the check-in answer (`cluster_hub.rs`).

use super::cluster::{self, Cluster, Instruction, Member, Pool};
use super::db::Db;
use crate::store::{self, params, OptionalExtension, Tx};
use lexopt::prelude::*;
use outpost::cluster::{Distro, Endpoint};
use outpost::error::{Code, Error, Result};
use std::path::Path;

pub const HELP: &str = "\
Usage: outpost-hub cluster create NAME --distro k3s|pxke|canonical --version V
                          --endpoint vip:ADDR|dns:NAME [--interface IF]
                          [--pod-cidr CIDR] [--service-cidr CIDR] [--two-node]
                          [--min-agent VERSION]
       outpost-hub cluster add NAME HOST --role control-plane|worker
       outpost-hub cluster show NAME [--json]
       outpost-hub cluster list [--json]
       outpost-hub cluster remove NAME [HOST]
       outpost-hub cluster bundle add DIR/k3s-bundle.json --key PUB...
       outpost-hub cluster bundle list

Rules: an odd number of control-plane hosts (K3s and Canonical: or exactly
two with --two-node), all members on the same OS, Canonical only on Ubuntu/AMD64,
a host in one cluster only. The first control-plane host added is the init
server; the others join after it is ready. Members get their role in
the check-in answer; --min-agent makes older agents refuse it. `remove`
tells the members to leave the cluster at their next check-in.
`bundle add` verifies a signed K3s bundle (scripts/make-k3s-bundle) with
the given release keys and stores its files; members of K3s clusters of its
version and architecture download it, verify it and install it.
";

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cluster_specs (
    name TEXT PRIMARY KEY,
    distro TEXT NOT NULL,
    version TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    interface TEXT,
    pod_cidr TEXT,
    service_cidr TEXT,
    two_node INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cluster_members (
    cluster TEXT NOT NULL REFERENCES cluster_specs(name),
    host_id TEXT NOT NULL UNIQUE,
    pool TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS cluster_secrets (
    cluster TEXT NOT NULL,
    kind TEXT NOT NULL,
    sealed TEXT NOT NULL,
    PRIMARY KEY (cluster, kind)
);
CREATE TABLE IF NOT EXISTS cluster_leaving (
    host_id TEXT PRIMARY KEY,
    cluster TEXT NOT NULL,
    distro TEXT NOT NULL,
    since INTEGER NOT NULL
);
";

/// A second handle on the registry, for the statements of these commands
/// (autocommit; the device changes go through `Db`).
fn open(path: &Path) -> Result<Db> {
    // Db::open creates the file (0600), the device tables and these.
    Db::open(path)
}

/// Create the cluster tables; add columns later versions brought.
pub fn migrate(c: &Tx) -> store::Result<()> {
    c.execute_batch(SCHEMA)?;
    let has: bool = c
        .prepare("SELECT 1 FROM pragma_table_info('cluster_specs') WHERE name='min_agent'")?
        .exists(())?;
    if !has {
        c.execute_batch("ALTER TABLE cluster_specs ADD COLUMN min_agent TEXT NOT NULL DEFAULT ''")?;
    }
    Ok(())
}

/// The lowest agent version the cluster's members need ("" for none).
pub fn min_agent(c: &Tx, name: &str) -> store::Result<String> {
    Ok(c.query_row(
        "SELECT min_agent FROM cluster_specs WHERE name=?1",
        [name],
        |r| r.get(0),
    )
    .optional()?
    .unwrap_or_default())
}

fn dberr(path: &Path, e: &store::Error) -> Error {
    Error::new(
        Code::LocalIo,
        format!("cluster tables in {}: {e}", path.display()),
    )
}

fn val(p: &mut lexopt::Parser, what: &str) -> Result<String> {
    p.value()
        .map_err(|e| Error::usage(format!("cluster: {what}: {e}")))?
        .into_string()
        .map_err(|_| Error::usage(format!("cluster: {what}: not valid UTF-8")))
}

/// `facts`, read through a connection (inside a check-in's transaction).
fn facts_tx(c: &Tx, host: &str) -> store::Result<Option<((String, String), String)>> {
    let inv: Option<String> = c
        .query_row(
            "SELECT inventory FROM devices WHERE host_id=?1 AND state='active'",
            [host],
            |r| r.get(0),
        )
        .optional()?;
    Ok(inv
        .and_then(|t| miniserde::json::from_str::<outpost::proto::Inventory>(&t).ok())
        .map(|i| {
            let (id, rest) = i.os.split_once(' ').unwrap_or((i.os.as_str(), ""));
            ((id.to_ascii_lowercase(), rest.to_string()), i.arch.clone())
        }))
}

/// (os, arch) of a registered device, from its last inventory: the OS as
/// (first word of PRETTY_NAME in lower case, the rest).
fn facts(db: &Db, host: &str) -> Result<Option<((String, String), String)>> {
    Ok(db
        .devices()?
        .into_iter()
        .find(|d| d.host_id == host && d.state == "active")
        .map(|d| {
            let pretty = d.inventory.os.clone();
            let (id, rest) = pretty.split_once(' ').unwrap_or((pretty.as_str(), ""));
            (
                (id.to_ascii_lowercase(), rest.to_string()),
                d.inventory.arch.clone(),
            )
        }))
}

pub fn load(c: &Tx, path: &Path, name: &str) -> Result<Option<Cluster>> {
    load_tx(c, name).map_err(|e| match e {
        store::Error::Type(m) => Error::config(m),
        e => dberr(path, &e),
    })
}

/// `load` inside a check-in's transaction: the store's errors as they are,
/// so that a serialization conflict on PostgreSQL is seen as one and the
/// transaction run again (not turned into a 500).
pub fn load_tx(c: &Tx, name: &str) -> store::Result<Option<Cluster>> {
    let row = c
        .query_row(
            "SELECT distro, version, endpoint, interface, pod_cidr, service_cidr, two_node FROM cluster_specs WHERE name=?1",
            [name],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            },
        )
        .optional()?;
    let Some((distro, version, endpoint, interface, pod_cidr, service_cidr, two)) = row else {
        return Ok(None);
    };
    let mut st = c.prepare(
        "SELECT host_id, pool, state FROM cluster_members WHERE cluster=?1 ORDER BY seq",
    )?;
    let rows = st
        .query_map([name], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .and_then(|it| it.collect::<store::Result<Vec<_>>>())?;
    let mut members = Vec::new();
    for (host, pool, state) in rows {
        let (os, arch) = facts_tx(c, &host)?
            .unwrap_or_else(|| ((String::from("?"), String::new()), String::from("?")));
        members.push(Member {
            host_id: host,
            pool: Pool::parse(&pool).unwrap_or(Pool::Worker),
            os,
            arch,
            state,
        });
    }
    Ok(Some(Cluster {
        name: name.to_string(),
        distro: Distro::parse(&distro).unwrap_or(Distro::K3s),
        version,
        endpoint: Endpoint::parse(&endpoint)
            .map_err(|e| store::Error::Type(format!("cluster {name}: endpoint {endpoint}: {e}")))?,
        interface,
        pod_cidr,
        service_cidr,
        two_node: two != 0,
        members,
        join_token: None,
    }))
}

fn endpoint_text(e: &Endpoint) -> String {
    match e {
        Endpoint::Vip(a) => format!("vip:{a}"),
        Endpoint::Dns(n) => format!("dns:{n}"),
    }
}

pub fn run(p: &mut lexopt::Parser, path: &Path) -> Result<()> {
    let sub = match p.next().map_err(|e| Error::usage(e.to_string()))? {
        Some(Value(v)) => v.to_string_lossy().into_owned(),
        Some(Short('h') | Long("help")) | None => {
            print!("{HELP}");
            return Ok(());
        }
        Some(o) => return Err(Error::usage(format!("cluster: {}", o.unexpected()))),
    };
    let mut pos: Vec<String> = Vec::new();
    let (mut distro, mut version, mut endpoint, mut interface) = (None, None, None, None);
    let (mut pod, mut svc, mut two, mut role, mut json) = (None, None, false, None, false);
    let mut min_agent_v: Option<String> = None;
    let mut keys: Vec<std::path::PathBuf> = Vec::new();
    while let Some(arg) = p
        .next()
        .map_err(|e| Error::usage(format!("cluster {sub}: {e}")))?
    {
        match arg {
            Value(v) => pos.push(v.to_string_lossy().into_owned()),
            Long("distro") => distro = Some(val(p, "--distro")?),
            Long("version") => version = Some(val(p, "--version")?),
            Long("endpoint") => endpoint = Some(val(p, "--endpoint")?),
            Long("interface") => interface = Some(val(p, "--interface")?),
            Long("pod-cidr") => pod = Some(val(p, "--pod-cidr")?),
            Long("service-cidr") => svc = Some(val(p, "--service-cidr")?),
            Long("two-node") => two = true,
            Long("min-agent") => min_agent_v = Some(val(p, "--min-agent")?),
            Long("role") => role = Some(val(p, "--role")?),
            Long("json") => json = true,
            Long("key") if sub == "bundle" => keys.push(val(p, "--key")?.into()),
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(());
            }
            o => return Err(Error::usage(format!("cluster {sub}: {}", o.unexpected()))),
        }
    }
    let need = |i: usize, what: &str| {
        pos.get(i).cloned().ok_or_else(|| {
            Error::usage(format!(
                "cluster {sub}: {what} missing; see 'outpost-hub cluster --help'"
            ))
        })
    };
    let cdb = open(path)?;
    let c = cdb.auto();
    let mut db = Db::open(path)?;
    match sub.as_str() {
        "create" => {
            let name = need(0, "NAME")?;
            let d = distro.ok_or_else(|| Error::usage("cluster create: --distro is required"))?;
            let distro = Distro::parse(&d).ok_or_else(|| {
                Error::usage(format!(
                    "cluster create: --distro {d:?} is not k3s, pxke or canonical"
                ))
            })?;
            let ep =
                endpoint.ok_or_else(|| Error::usage("cluster create: --endpoint is required"))?;
            let endpoint =
                Endpoint::parse(&ep).map_err(|e| Error::usage(format!("cluster create: {e}")))?;
            let cl = Cluster {
                name: name.clone(),
                distro,
                version: version
                    .ok_or_else(|| Error::usage("cluster create: --version is required"))?,
                endpoint,
                interface,
                pod_cidr: pod,
                service_cidr: svc,
                two_node: two,
                members: vec![],
                join_token: None,
            };
            if let Some(e) = cluster::check_settings(&cl).into_iter().next() {
                return Err(Error::usage(format!("cluster create: {e}")));
            }
            let min_agent = min_agent_v.unwrap_or_default();
            if !min_agent.is_empty()
                && outpost::upgrade::release::parse_version(&min_agent).is_err()
            {
                return Err(Error::usage(format!(
                    "cluster create: --min-agent {min_agent:?} is not a version (like 0.2.0)"
                )));
            }
            let n = c
                .execute(
                    "INSERT INTO cluster_specs (name, distro, version, endpoint, interface, pod_cidr, service_cidr, two_node, created, min_agent)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
                    params![
                        cl.name,
                        cl.distro.id(),
                        cl.version,
                        endpoint_text(&cl.endpoint),
                        cl.interface,
                        cl.pod_cidr,
                        cl.service_cidr,
                        i64::from(cl.two_node),
                        outpost::sys::unix_secs(std::time::SystemTime::now()) as i64,
                        min_agent
                    ],
                )
                .map_err(|e| dberr(path, &e))?;
            if n == 0 {
                return Err(Error::usage(format!("cluster create: {name} exists")));
            }
            println!(
                "created cluster {name} ({}, {}, {})",
                cl.distro.id(),
                cl.version,
                endpoint_text(&cl.endpoint)
            );
            Ok(())
        }
        "add" => {
            let name = need(0, "NAME")?;
            let host = need(1, "HOST")?;
            let r = role.ok_or_else(|| {
                Error::usage("cluster add: --role control-plane|worker is required")
            })?;
            let pool = Pool::parse(&r).ok_or_else(|| {
                Error::usage(format!(
                    "cluster add: --role {r:?} is not control-plane or worker"
                ))
            })?;
            let Some(mut cl) = load(&c, path, &name)? else {
                return Err(Error::usage(format!("cluster add: no cluster {name}")));
            };
            let Some((os, arch)) = facts(&db, &host)? else {
                return Err(Error::usage(format!(
                    "cluster add: no registered, active device {host}"
                )));
            };
            let other: Option<String> = c
                .query_row(
                    "SELECT cluster FROM cluster_members WHERE host_id=?1",
                    [&host],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| dberr(path, &e))?;
            if let Some(o) = other {
                return Err(Error::usage(format!(
                    "cluster add: {host} is already a member of {o}"
                )));
            }
            cl.members.push(Member {
                host_id: host.clone(),
                pool,
                os,
                arch,
                state: String::new(),
            });
            // Refuse what adding more hosts cannot fix; an even count is
            // held (nothing released) until the next add or remove.
            let errors = cluster::check_pools(&cl);
            if let Some(e) = errors.iter().find(|e| !cluster::held_only(e)) {
                return Err(Error::usage(format!("cluster add: {e}")));
            }
            let seq = cl.members.len() as i64;
            c.execute(
                "INSERT INTO cluster_members (cluster, host_id, pool, seq) VALUES (?1, ?2, ?3, ?4)",
                params![name, host, pool.as_str(), seq],
            )
            .map_err(|e| dberr(path, &e))?;
            db.set_labels(&host, &[("cluster".into(), name.clone())])?;
            println!("added {host} to {name} as {}", pool.as_str());
            if let Some(e) = errors.first() {
                println!("held: {e}");
            }
            Ok(())
        }
        "show" => {
            let name = need(0, "NAME")?;
            let Some(mut cl) = load(&c, path, &name)? else {
                return Err(Error::usage(format!("cluster show: no cluster {name}")));
            };
            cl.join_token = super::cluster_hub::join_token(&c, cdb.path(), &name)?;
            let plan = cluster::plan(&cl);
            if json {
                let mut o = miniserde::json::Object::new();
                use miniserde::json::Value as V;
                o.insert("schema".into(), V::String("outpost.hub.cluster/v1".into()));
                o.insert("name".into(), V::String(cl.name.clone()));
                o.insert("distro".into(), V::String(cl.distro.id().into()));
                o.insert("version".into(), V::String(cl.version.clone()));
                o.insert("endpoint".into(), V::String(endpoint_text(&cl.endpoint)));
                let mut arr = miniserde::json::Array::new();
                for (m, (_, ins)) in cl.members.iter().zip(&plan) {
                    let mut mo = miniserde::json::Object::new();
                    mo.insert("host_id".into(), V::String(m.host_id.clone()));
                    mo.insert("pool".into(), V::String(m.pool.as_str().into()));
                    let (role, why) = match ins {
                        Instruction::Apply { role, .. } => {
                            (role.as_str().to_string(), String::new())
                        }
                        Instruction::Wait(w) => ("wait".to_string(), w.clone()),
                    };
                    mo.insert("instruction".into(), V::String(role));
                    mo.insert("reason".into(), V::String(why));
                    mo.insert("state".into(), V::String(m.state.clone()));
                    arr.push(V::Object(mo));
                }
                o.insert("members".into(), V::Array(arr));
                println!("{}", miniserde::json::to_string(&V::Object(o)));
            } else {
                println!(
                    "cluster {} ({}, {}, {}{})",
                    cl.name,
                    cl.distro.id(),
                    cl.version,
                    endpoint_text(&cl.endpoint),
                    if cl.two_node { ", two-node" } else { "" }
                );
                for (m, (_, ins)) in cl.members.iter().zip(&plan) {
                    let what = match ins {
                        Instruction::Apply { role, .. } => role.as_str().to_string(),
                        Instruction::Wait(w) => format!("wait: {w}"),
                    };
                    println!("  {:<14} {:<13} {}", m.host_id, m.pool.as_str(), what);
                }
            }
            Ok(())
        }
        "list" => {
            let mut st = c
                .prepare("SELECT name FROM cluster_specs ORDER BY name")
                .map_err(|e| dberr(path, &e))?;
            let names = st
                .query_map((), |r| r.get::<_, String>(0))
                .and_then(|it| it.collect::<store::Result<Vec<_>>>())
                .map_err(|e| dberr(path, &e))?;
            let mut arr = miniserde::json::Array::new();
            for n in names {
                let Some(cl) = load(&c, path, &n)? else {
                    continue;
                };
                let cps = cl
                    .members
                    .iter()
                    .filter(|m| m.pool == Pool::ControlPlane)
                    .count();
                let held = cluster::check_pools(&cl).into_iter().next();
                if json {
                    use miniserde::json::Value as V;
                    let mut o = miniserde::json::Object::new();
                    o.insert("name".into(), V::String(cl.name.clone()));
                    o.insert("distro".into(), V::String(cl.distro.id().into()));
                    o.insert(
                        "control_planes".into(),
                        V::Number(miniserde::json::Number::U64(cps as u64)),
                    );
                    o.insert(
                        "workers".into(),
                        V::Number(miniserde::json::Number::U64(
                            (cl.members.len() - cps) as u64,
                        )),
                    );
                    o.insert("held".into(), V::String(held.unwrap_or_default()));
                    arr.push(V::Object(o));
                } else {
                    println!(
                        "{:<16} {:<10} {} control plane, {} worker{}",
                        cl.name,
                        cl.distro.id(),
                        cps,
                        cl.members.len() - cps,
                        held.map(|h| format!("  (held: {h})")).unwrap_or_default()
                    );
                }
            }
            if json {
                println!(
                    "{}",
                    miniserde::json::to_string(&miniserde::json::Value::Array(arr))
                );
            }
            Ok(())
        }
        "remove" => {
            let name = need(0, "NAME")?;
            let distro: Option<String> = c
                .query_row(
                    "SELECT distro FROM cluster_specs WHERE name=?1",
                    [&name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| dberr(path, &e))?;
            let now = outpost::sys::unix_secs(std::time::SystemTime::now()) as i64;
            // Members are told to leave at their next check-in.
            let leave = |host: &str| {
                c.execute(
                    "INSERT INTO cluster_leaving (host_id, cluster, distro, since) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(host_id) DO UPDATE SET cluster=excluded.cluster, distro=excluded.distro, since=excluded.since",
                    params![host, name, distro.clone().unwrap_or_default(), now],
                )
                .map_err(|e| dberr(path, &e))
            };
            if let Some(host) = pos.get(1) {
                let n = c
                    .execute(
                        "DELETE FROM cluster_members WHERE cluster=?1 AND host_id=?2",
                        params![name, host],
                    )
                    .map_err(|e| dberr(path, &e))?;
                if n == 0 {
                    return Err(Error::usage(format!(
                        "cluster remove: {host} is not a member of {name}"
                    )));
                }
                leave(host)?;
                db.set_labels(host, &[("cluster".into(), String::new())])?;
                println!("removed {host} from {name}; it leaves the cluster at its next check-in");
            } else {
                let hosts: Vec<String> = {
                    let mut st = c
                        .prepare("SELECT host_id FROM cluster_members WHERE cluster=?1")
                        .map_err(|e| dberr(path, &e))?;
                    st.query_map([&name], |r| r.get::<_, String>(0))
                        .and_then(|it| it.collect::<store::Result<Vec<_>>>())
                        .map_err(|e| dberr(path, &e))?
                };
                c.execute("DELETE FROM cluster_members WHERE cluster=?1", [&name])
                    .map_err(|e| dberr(path, &e))?;
                let n = c
                    .execute("DELETE FROM cluster_specs WHERE name=?1", [&name])
                    .map_err(|e| dberr(path, &e))?;
                if n == 0 {
                    return Err(Error::usage(format!("cluster remove: no cluster {name}")));
                }
                c.execute("DELETE FROM cluster_secrets WHERE cluster=?1", [&name])
                    .map_err(|e| dberr(path, &e))?;
                for h in &hosts {
                    leave(h)?;
                    db.set_labels(h, &[("cluster".into(), String::new())])?;
                }
                println!(
                    "removed cluster {name} ({} members released; they leave the cluster at their next check-in)",
                    hosts.len()
                );
            }
            Ok(())
        }
        "bundle" => match pos.first().map(String::as_str) {
            Some("add") => {
                let m = need(1, "DIR/k3s-bundle.json")?;
                let (b, key) = crate::cluster_bundle::add(&mut db, Path::new(&m), &keys)?;
                println!(
                    "K3s bundle {} {} added ({} files, {} bytes, signed by key {key})",
                    b.version,
                    b.arch,
                    b.files.len(),
                    b.total()
                );
                Ok(())
            }
            Some("list") => {
                let all = crate::cluster_bundle::list(&mut db)?;
                if all.is_empty() {
                    println!("no K3s bundles");
                }
                for b in all {
                    println!(
                        "{:<24} {:<8} {:>12} bytes  key {}",
                        b.version, b.arch, b.size, b.key
                    );
                }
                Ok(())
            }
            _ => Err(Error::usage(
                "cluster bundle: give add DIR/k3s-bundle.json --key PUB, or list",
            )),
        },
        other => Err(Error::usage(format!(
            "cluster: unknown subcommand {other:?}; give create, add, show, list, remove or bundle"
        ))),
    }
}
