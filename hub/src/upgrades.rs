//! The hub's side of self-upgrade and the version gate: signed releases
//! (`release add` verifies the signify signature and stores the artifact
//! under `<db folder>/artifacts/<sha256>`, served at
//! `/outpost/v1/artifacts/<sha256>`), one rollout at a time (canary,
//! percent, max-parallel, pause/resume/abort), per-device upgrade reports,
//! and cluster Kubernetes upgrades held by the gate (`clusters`).
//!
//! Records live in the `meta` table as JSON (`release:<v>:<arch>`,
//! `rollout`, `report:<host>`, `cluster:<name>`), so no schema change.
//! Decisions are `rollout.rs` (pure); this file loads, stores and prints.

use crate::db::{Db, MISSED_INTERVALS};
use crate::rollout::{self, ClusterUpgrade, DevView, Rollout};
use crate::store::{self, params, OptionalExtension, Tx};
use miniserde::{json, Deserialize, Serialize};
use outpost::error::{Code, Error, Result};
use outpost::proto::{Artifact, ConfigReport, KubernetesUpgrade, UpgradeOffer, UpgradeReport};
use outpost::upgrade::{release, sig};
use std::path::{Path, PathBuf};

pub const PATH_ARTIFACTS: &str = "/outpost/v1/artifacts/";

/// A release as stored.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    pub arch: String,
    pub size: u64,
    pub sha256: String,
    pub manifest: String,
    pub signature: String,
    pub key: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct Report {
    state: String,
    from: String,
    to: String,
    reason: String,
    code: i32,
    at: u64,
}

fn meta(tx: &Tx, key: &str) -> store::Result<Option<String>> {
    tx.query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))
        .optional()
}

fn set_meta(tx: &Tx, key: &str, v: Option<&str>) -> store::Result<()> {
    match v {
        Some(v) => tx.execute(
            "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            params![key, v],
        )?,
        None => tx.execute("DELETE FROM meta WHERE key=?1", [key])?,
    };
    Ok(())
}

fn metas(tx: &Tx, prefix: &str) -> store::Result<Vec<(String, String)>> {
    let mut st = tx.prepare("SELECT key, value FROM meta WHERE key LIKE ?1 ORDER BY key")?;
    let rows = st
        .query_map([format!("{prefix}%")], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<store::Result<Vec<(String, String)>>>()?;
    Ok(rows)
}

/// Every active device as the decisions see it, with its architecture.
fn views(tx: &Tx, now: u64, default_iv: u64) -> store::Result<Vec<(DevView, String)>> {
    let mut st = tx.prepare(
        "SELECT host_id, agent, labels, last_seen, interval_ms, inventory FROM devices WHERE state='active' ORDER BY host_id",
    )?;
    let rows = st
        .query_map((), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)? as u64,
                r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                r.get::<_, String>(5)?,
            ))
        })?
        .collect::<store::Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for (host, agent, labels, last_seen, iv, inv) in rows {
        let report = meta(tx, &format!("report:{host}"))?
            .and_then(|t| json::from_str::<Report>(&t).ok())
            .map(|r| (r.state, r.to, r.reason));
        let labels: std::collections::BTreeMap<String, String> =
            json::from_str(&labels).unwrap_or_default();
        let iv_ms = iv.unwrap_or(default_iv).max(1);
        let online = (last_seen + 1).saturating_mul(1000) + MISSED_INTERVALS * iv_ms >= now * 1000;
        let arch = json::from_str::<outpost::proto::Inventory>(&inv)
            .map(|i| i.arch)
            .unwrap_or_default();
        out.push((
            DevView {
                host_id: host,
                agent,
                labels: labels.into_iter().collect(),
                report,
                online,
                last_seen,
            },
            arch,
        ));
    }
    Ok(out)
}

/// The offer of `version`: one artifact per architecture released (the
/// agent picks its own; a device's inventory may not name its arch).
fn offer_of(tx: &Tx, version: &str, base: &str) -> store::Result<Option<UpgradeOffer>> {
    let rels: Vec<Release> = metas(tx, &format!("release:{version}:"))?
        .into_iter()
        .filter_map(|(_, t)| json::from_str(&t).ok())
        .collect();
    if rels.is_empty() {
        return Ok(None);
    }
    Ok(Some(UpgradeOffer {
        version: version.to_string(),
        min_version: String::new(),
        artifacts: rels
            .iter()
            .map(|r| Artifact {
                arch: r.arch.clone(),
                url: format!("{base}{PATH_ARTIFACTS}{}", r.sha256),
                sha256: r.sha256.clone(),
                size: r.size,
                manifest: Some(r.manifest.clone()),
                signature: Some(r.signature.clone()),
            })
            .collect(),
    }))
}

/// What the desired state of `host` gets from rollouts and cluster gates.
pub struct Acts {
    pub upgrade: Option<UpgradeOffer>,
    pub kubernetes: Option<KubernetesUpgrade>,
}

/// Called inside a check-in's transaction: store the agent's upgrade
/// report, advance the rollout and the gates, and say what `host` is
/// offered. `base` is `https://host:port` as the agent reached the hub.
pub fn on_checkin(
    tx: &Tx,
    host: &str,
    report: Option<&UpgradeReport>,
    config: Option<&ConfigReport>,
    now: u64,
    default_iv: u64,
    base: &str,
) -> store::Result<Acts> {
    if let Some(c) = config {
        // What the agent did with set-config (applied, refused: why).
        set_meta(
            tx,
            &format!("config-report:{host}"),
            Some(&json::to_string(c)),
        )?;
        for (k, why) in &c.refused {
            log::warn!("{host} refused config {k}: {why}");
        }
    }
    if let Some(r) = report {
        let rec = Report {
            state: r.state.clone(),
            from: r.from.clone(),
            to: r.to.clone(),
            reason: r.reason.clone(),
            code: r.code,
            at: now,
        };
        set_meta(tx, &format!("report:{host}"), Some(&json::to_string(&rec)))?;
    }
    let mut acts = Acts {
        upgrade: None,
        kubernetes: None,
    };
    // Only a rollout in progress or a cluster upgrade costs a look at the
    // whole fleet; a plain check-in stays one row.
    let rollout_text = meta(tx, "rollout")?.filter(|t| {
        json::from_str::<Rollout>(t).is_ok_and(|r| r.state == "running" || r.state == "paused")
    });
    let clusters = metas(tx, "cluster:")?;
    if rollout_text.is_none() && clusters.is_empty() {
        return Ok(acts);
    }
    let all = views(tx, now, default_iv)?;
    let devs: Vec<DevView> = all.iter().map(|(d, _)| d.clone()).collect();
    let me = all.iter().find(|(d, _)| d.host_id == host);
    let arch = me.map(|(_, a)| a.as_str()).unwrap_or("");
    if let Some(t) = rollout_text {
        if let Ok(r) = json::from_str::<Rollout>(&t) {
            let n = rollout::step(&r, &devs);
            if n != r {
                if n.state != r.state {
                    log::info!("rollout of {}: {} {}", n.version, n.state, n.reason);
                }
                set_meta(tx, "rollout", Some(&json::to_string(&n)))?;
            }
            if rollout::offers_to(&n, host) {
                acts.upgrade = offer_of(tx, &n.version, base)?;
            }
        }
    }
    for (key, t) in clusters {
        let Ok(c) = json::from_str::<ClusterUpgrade>(&t) else {
            continue;
        };
        let n = rollout::gate(&c, &devs, now);
        if n != c {
            log::info!("cluster {}: {} {:?}", n.cluster, n.state, n.reasons);
            set_meta(tx, &key, Some(&json::to_string(&n)))?;
        }
        let Some((d, _)) = me else { continue };
        if !d
            .labels
            .iter()
            .any(|(k, v)| k == "cluster" && *v == n.cluster)
        {
            continue;
        }
        if n.state == "released" {
            acts.kubernetes = Some(KubernetesUpgrade {
                version: n.kubernetes.clone(),
                min_agent_version: n.min_agent.clone(),
            });
        } else if acts.upgrade.is_none()
            && !matches!(
                release::compare(&d.agent, &n.min_agent),
                Ok(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
            )
        {
            // Members too old get the newest release at or above the minimum.
            if let Some(rel) = newest_at_least(tx, &n.min_agent, arch)? {
                acts.upgrade = offer_of(tx, &rel.version, base)?;
            }
        }
    }
    Ok(acts)
}

fn newest_at_least(tx: &Tx, min: &str, arch: &str) -> store::Result<Option<Release>> {
    let mut best: Option<Release> = None;
    for (_, t) in metas(tx, "release:")? {
        let Ok(r) = json::from_str::<Release>(&t) else {
            continue;
        };
        if !arch.is_empty() && r.arch != arch {
            continue;
        }
        let ok = matches!(
            release::compare(&r.version, min),
            Ok(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
        );
        let better = best.as_ref().is_none_or(|b| {
            release::compare(&r.version, &b.version) == Ok(std::cmp::Ordering::Greater)
        });
        if ok && better {
            best = Some(r);
        }
    }
    Ok(best)
}

// ------------------------------------------------------------ operator

pub fn artifacts_dir(db_path: &Path) -> PathBuf {
    db_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("artifacts")
}

/// A signed manifest's text, its signature (`MANIFEST.sig`) and the
/// trusted keys from `--key PUB...` (at least one), for `command` (`release
/// add`, `cluster bundle add`): verification is the caller's.
pub(crate) fn read_signed(
    manifest: &Path,
    keys: &[PathBuf],
    command: &str,
) -> Result<(String, String, Vec<sig::PublicKey>)> {
    let rd = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io("reading", p, &e));
    let mtext = rd(manifest)?;
    let stext = rd(&PathBuf::from(format!("{}.sig", manifest.display())))?;
    let mut trusted = Vec::new();
    for k in keys {
        trusted.push(
            sig::PublicKey::parse(&rd(k)?)
                .map_err(|e| Error::usage(format!("{}: {e}", k.display())))?,
        );
    }
    if trusted.is_empty() {
        return Err(Error::usage(format!(
            "{command}: at least one --key PUB is required"
        )));
    }
    Ok((mtext, stext, trusted))
}

/// `release add FILE.manifest --key PUB...`: verify, copy the artifact
/// (FILE) into the store, record the release.
pub fn release_add(db: &mut Db, manifest: &Path, keys: &[PathBuf]) -> Result<Release> {
    let (mtext, stext, trusted) = read_signed(manifest, keys, "release add")?;
    let v = release::verify(&mtext, &stext, &trusted).map_err(|e| {
        Error::new(
            Code::UpgradeRejected,
            format!("release {}: {e}", manifest.display()),
        )
    })?;
    let m = v.manifest;
    let bin = manifest.with_extension("");
    let bin = if bin.extension().is_some() && !bin.exists() {
        manifest.with_file_name(&m.file)
    } else {
        bin
    };
    let data = std::fs::read(&bin).map_err(|e| Error::io("reading", &bin, &e))?;
    let sha = outpost::install::sha256_hex(&data);
    if data.len() as u64 != m.size || sha != m.sha256 {
        return Err(Error::new(
            Code::UpgradeRejected,
            format!(
                "{}: size or SHA-256 does not match its signed manifest",
                bin.display()
            ),
        ));
    }
    let dir = artifacts_dir(db.path());
    outpost::fsutil::ensure_dir(&dir, 0o755)?;
    outpost::fsutil::write_atomic(&dir.join(&m.sha256), &data, 0o644)?;
    let rel = Release {
        version: m.version.clone(),
        arch: m.arch.clone(),
        size: m.size,
        sha256: m.sha256.clone(),
        manifest: mtext,
        signature: stext,
        key: v.key,
    };
    db.write_tx(|tx| {
        set_meta(
            tx,
            &format!("release:{}:{}", rel.version, rel.arch),
            Some(&json::to_string(&rel)),
        )
    })?;
    Ok(rel)
}

pub fn releases(db: &mut Db) -> Result<Vec<Release>> {
    db.write_tx(|tx| {
        Ok(metas(tx, "release:")?
            .into_iter()
            .filter_map(|(_, t)| json::from_str(&t).ok())
            .collect())
    })
}

pub fn rollout_get(db: &mut Db) -> Result<Option<Rollout>> {
    db.write_tx(|tx| Ok(meta(tx, "rollout")?.and_then(|t| json::from_str(&t).ok())))
}

pub fn rollout_put(db: &mut Db, r: &Rollout) -> Result<()> {
    db.write_tx(|tx| set_meta(tx, "rollout", Some(&json::to_string(r))))
}

/// One row of `rollout status`: host, agent version, state.
pub type RolloutRow = (String, String, String);

/// Per-device state of the rollout, and the rollout itself after a step.
pub fn rollout_view(db: &mut Db, now: u64) -> Result<Option<(Rollout, Vec<RolloutRow>)>> {
    let iv = db.default_interval()?;
    db.write_tx(|tx| {
        let Some(r) = meta(tx, "rollout")?.and_then(|t| json::from_str::<Rollout>(&t).ok()) else {
            return Ok(None);
        };
        let all = views(tx, now, iv)?;
        let devs: Vec<DevView> = all.iter().map(|(d, _)| d.clone()).collect();
        let n = rollout::step(&r, &devs);
        if n != r {
            set_meta(tx, "rollout", Some(&json::to_string(&n)))?;
        }
        let rows = rollout::eligible(&n, &devs)
            .into_iter()
            .map(|d| {
                (
                    d.host_id.clone(),
                    d.agent.clone(),
                    rollout::dev_state(&n, d).text(),
                )
            })
            .collect();
        Ok(Some((n, rows)))
    })
}

pub fn cluster_put(db: &mut Db, c: &ClusterUpgrade) -> Result<()> {
    db.write_tx(|tx| {
        set_meta(
            tx,
            &format!("cluster:{}", c.cluster),
            Some(&json::to_string(c)),
        )
    })
}

/// Every cluster upgrade, after a gate step.
pub fn clusters(db: &mut Db, now: u64) -> Result<Vec<ClusterUpgrade>> {
    let iv = db.default_interval()?;
    db.write_tx(|tx| {
        let devs: Vec<DevView> = views(tx, now, iv)?.into_iter().map(|(d, _)| d).collect();
        let mut out = Vec::new();
        for (key, t) in metas(tx, "cluster:")? {
            let Ok(c) = json::from_str::<ClusterUpgrade>(&t) else {
                continue;
            };
            let n = rollout::gate(&c, &devs, now);
            if n != c {
                set_meta(tx, &key, Some(&json::to_string(&n)))?;
            }
            out.push(n);
        }
        Ok(out)
    })
}
