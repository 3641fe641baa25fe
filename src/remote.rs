//! Configuration changes from the server (`desired.config`, the hub's
//! `set-config`): keys of the `outpost:` block that are safe to change
//! remotely are validated exactly like the file (they go through the same
//! loader as an extra layer) and recorded in `<stateDir>/remote-config.json`
//! (schema `outpost.remote-config/v1`); everything else is refused with a
//! reason that the next check-in reports to the hub. Secrets, the endpoint
//! and trust (CA certificates, release keys) are never changed remotely.
//!
//! Precedence: `--set` > remote > environment > file > default.

use crate::config::{self, Options};
use crate::error::Result;
use crate::proto::ConfigReport;
use miniserde::{json, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SCHEMA: &str = "outpost.remote-config/v1";

/// Keys the server may change.
pub const SAFE: &[&str] = &[
    "outpost.interval.min",
    "outpost.interval.max",
    "outpost.logLevel",
    "outpost.timeouts.connect",
    "outpost.timeouts.request",
];

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub schema: String,
    /// Desired-state tag the record was made for.
    pub tag: String,
    pub applied: BTreeMap<String, String>,
    /// Key -> why it was refused.
    pub refused: BTreeMap<String, String>,
    pub at: u64,
    /// A check-in carried this record to the hub.
    pub reported: bool,
}

/// Why a key may not be changed remotely (None: it may).
pub fn refusal(key: &str) -> Option<String> {
    if SAFE.contains(&key) {
        return None;
    }
    let k = config::keys::lookup(key);
    Some(match k {
        None => format!("unknown key {key}"),
        Some(k) if k.secret => "a secret is never changed remotely".into(),
        Some(_) if key == "stylus.site.paletteEndpoint" => {
            "the endpoint is never changed remotely".into()
        }
        Some(_)
            if key.contains("caCerts")
                || key.contains("insecureSkipVerify")
                || key.contains("publicKeys") =>
        {
            "trust (CA certificates, verification, release keys) is never changed remotely".into()
        }
        Some(_) if !key.starts_with("outpost.") => {
            "only keys of the outpost: block are changed remotely".into()
        }
        Some(_) => format!("not safe to change remotely (safe: {})", SAFE.join(", ")),
    })
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("remote-config.json")
}

pub fn load(state_dir: &Path) -> Option<Record> {
    let t = std::fs::read_to_string(path(state_dir)).ok()?;
    match json::from_str::<Record>(&t) {
        Ok(r) => Some(r),
        Err(_) => {
            log::warn!("{}: damaged; ignored", path(state_dir).display());
            None
        }
    }
}

fn save(state_dir: &Path, r: &Record) -> Result<()> {
    crate::fsutil::write_atomic(&path(state_dir), json::to_string(r).as_bytes(), 0o600)
}

/// The remote layer for the loader (applied keys as `--set`-like pairs).
pub fn layer(state_dir: &Path) -> Vec<(String, String)> {
    load(state_dir)
        .map(|r| r.applied.into_iter().collect())
        .unwrap_or_default()
}

/// Decide on `changes` (tag `tag`): refuse unsafe keys, then validate the
/// rest with the real loader, one key at a time where the whole set fails.
/// Returns the record and whether the applied set changed.
pub fn decide(
    opts_file: Option<PathBuf>,
    root: &crate::sys::Root,
    cli_sets: &[(String, String)],
    changes: &BTreeMap<String, String>,
    tag: &str,
    now: u64,
    before: Option<&Record>,
) -> (Record, bool) {
    let mut rec = Record {
        schema: SCHEMA.into(),
        tag: tag.into(),
        applied: BTreeMap::new(),
        refused: BTreeMap::new(),
        at: now,
        reported: false,
    };
    let mut candidate: Vec<(String, String)> = Vec::new();
    for (k, v) in changes {
        match refusal(k) {
            Some(why) => {
                rec.refused.insert(k.clone(), why);
            }
            None => candidate.push((k.clone(), v.clone())),
        }
    }
    let valid = |pairs: &[(String, String)]| -> std::result::Result<(), String> {
        let mut sets = pairs.to_vec();
        sets.extend_from_slice(cli_sets);
        let l = config::load(&Options::new(root, opts_file.clone(), sets))
            .map_err(|e| e.message().to_string())?;
        l.into_valid()
            .map(|_| ())
            .map_err(|e| e.message().to_string())
    };
    if valid(&candidate).is_ok() {
        rec.applied = candidate.into_iter().collect();
    } else {
        let mut ok: Vec<(String, String)> = Vec::new();
        for (k, v) in candidate {
            let mut trial = ok.clone();
            trial.push((k.clone(), v.clone()));
            match valid(&trial) {
                Ok(()) => ok.push((k, v)),
                Err(e) => {
                    rec.refused.insert(k, format!("invalid: {e}"));
                }
            }
        }
        rec.applied = ok.into_iter().collect();
    }
    let changed = before.map(|b| &b.applied) != Some(&rec.applied);
    (rec, changed)
}

/// After a check-in: act on `desired.config` when its tag is new. Returns
/// true when the applied set changed (the caller reloads or restarts).
pub fn after_checkin(
    src: &crate::cli::ConfigSource,
    state_dir: &Path,
    changes: &BTreeMap<String, String>,
    tag: &str,
    now: u64,
) -> Result<bool> {
    let before = load(state_dir);
    if before.as_ref().is_some_and(|b| b.tag == tag) {
        return Ok(false);
    }
    if before.is_none() && changes.is_empty() {
        return Ok(false);
    }
    let (rec, changed) = decide(
        src.file.clone(),
        &src.root,
        &src.sets,
        changes,
        tag,
        now,
        before.as_ref(),
    );
    for (k, v) in &rec.applied {
        log::info!("remote configuration: {k} = {v}");
    }
    for (k, why) in &rec.refused {
        log::warn!("remote configuration: {k} refused: {why}");
    }
    save(state_dir, &rec)?;
    Ok(changed)
}

/// What the next check-in reports (until one carried it).
pub fn report(state_dir: &Path) -> Option<ConfigReport> {
    let r = load(state_dir)?;
    if r.reported {
        return None;
    }
    Some(ConfigReport {
        tag: r.tag,
        applied: r.applied.into_keys().collect(),
        refused: r.refused,
    })
}

pub fn mark_reported(state_dir: &Path, sent: &ConfigReport) {
    if let Some(mut r) = load(state_dir) {
        if r.tag == sent.tag && !r.reported {
            r.reported = true;
            if let Err(e) = save(state_dir, &r) {
                log::warn!("{e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_keys_change_remotely() {
        for (k, want) in [
            ("outpost.interval.min", None),
            ("outpost.logLevel", None),
            ("stylus.site.edgeHostToken", Some("secret")),
            ("stylus.site.paletteEndpoint", Some("endpoint")),
            ("stylus.site.caCerts", Some("trust")),
            ("stylus.site.insecureSkipVerify", Some("trust")),
            ("outpost.upgrade.publicKeys", Some("trust")),
            ("stylus.site.tags", Some("outpost: block")),
            ("outpost.stateDir", Some("not safe")),
            ("outpost.nope", Some("unknown key")),
        ] {
            match (refusal(k), want) {
                (None, None) => {}
                (Some(r), Some(w)) => assert!(r.contains(w), "{k}: {r}"),
                (g, w) => panic!("{k}: got {g:?}, wanted {w:?}"),
            }
        }
    }

    #[test]
    fn values_are_validated_like_the_file() {
        let dir = std::env::temp_dir().join(format!("outpost-remote-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("user-data");
        std::fs::write(
            &cfg,
            "#cloud-config\nstylus:\n  site:\n    paletteEndpoint: hub.example\n",
        )
        .unwrap();
        let root = crate::sys::Root::new(&dir);
        let mut ch = BTreeMap::new();
        ch.insert("outpost.interval.min".to_string(), "120".to_string());
        ch.insert("outpost.logLevel".to_string(), "loud".to_string());
        ch.insert("outpost.timeouts.request".to_string(), "0".to_string());
        ch.insert(
            "stylus.site.paletteEndpoint".to_string(),
            "evil.example".to_string(),
        );
        let (rec, changed) = decide(Some(cfg), &root, &[], &ch, "d-1", 5, None);
        assert!(changed);
        assert_eq!(
            rec.applied.keys().collect::<Vec<_>>(),
            ["outpost.interval.min"]
        );
        assert!(
            rec.refused["outpost.logLevel"].starts_with("invalid:"),
            "{:?}",
            rec.refused
        );
        assert!(rec.refused["outpost.timeouts.request"].starts_with("invalid:"));
        assert!(rec.refused["stylus.site.paletteEndpoint"].contains("endpoint"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
