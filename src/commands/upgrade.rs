//! `outpost upgrade --bundle FILE [--allow-downgrade]` (airgap / local
//! mode), `outpost rollback`, and the hidden `outpost upgrade-guard` the
//! previous binary runs before each start. The work is `crate::upgrade`;
//! this file finds the files, takes the state lock and prints one line.

use crate::cli::{RunArgs, UpgradeArgs};
use crate::error::{Code, Error, Result};
use crate::state;
use crate::upgrade::{self, apply};
use std::path::{Path, PathBuf};

fn now() -> u64 {
    crate::sys::unix_secs(crate::sys::host().now())
}

fn read_small(p: &Path) -> Result<String> {
    let meta = std::fs::metadata(p).map_err(|e| Error::io("reading", p, &e))?;
    if meta.len() > upgrade::release::MAX_TEXT as u64 {
        return Err(Error::new(
            Code::UpgradeRejected,
            format!(
                "{}: larger than 4 KiB, not a manifest or signature",
                p.display()
            ),
        ));
    }
    std::fs::read_to_string(p).map_err(|e| Error::io("reading", p, &e))
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The artifact named by `--bundle`: the file itself, or the one artifact
/// for this architecture inside a folder.
fn artifact(bundle: &Path) -> Result<PathBuf> {
    if !bundle.is_dir() {
        return Ok(bundle.to_path_buf());
    }
    let arch = upgrade::release::own_arch();
    let rd = std::fs::read_dir(bundle).map_err(|e| Error::io("reading", bundle, &e))?;
    let mut found: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("outpost-") && n.ends_with(&format!("-{arch}-linux-musl"))
            }) && with_suffix(p, ".manifest").is_file()
        })
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::new(
            Code::UpgradeRejected,
            format!(
                "{}: no outpost-<version>-{arch}-linux-musl with a .manifest beside it",
                bundle.display()
            ),
        )),
        n => Err(Error::usage(format!(
            "{}: {n} artifacts for {arch}; name the file with --bundle",
            bundle.display()
        ))),
    }
}

pub fn run(a: UpgradeArgs) -> Result<Code> {
    let cfg = super::checkin::load_config(&a.src)?;
    let l = upgrade::layout(&a.src.root, &cfg);
    let file = artifact(&a.bundle)?;
    let mpath = with_suffix(&file, ".manifest");
    let spath = with_suffix(&file, ".manifest.sig");
    let mtext = read_small(&mpath)?;
    let stext = read_small(&spath)?;
    let _lock = state::lock(&state::Paths::new(l.state_dir.clone()))?;
    if let Some(t) = apply::load_trial(&l)? {
        return Err(Error::new(
            Code::UpgradeRejected,
            format!(
                "an upgrade from {} to {} is still on trial; wait for it to commit or run 'outpost rollback'",
                t.from, t.to
            ),
        ));
    }
    let at = mpath.display().to_string();
    let result = (|| {
        let v = apply::check_manifest(
            &mtext,
            &stext,
            &upgrade::trusted_keys(&cfg),
            a.allow_downgrade,
            &at,
        )?;
        apply::stage(
            &l,
            &v.manifest,
            &apply::Source::File(&file),
            apply::SMOKE_TIMEOUT,
            &|| {},
        )?;
        apply::swap(&l, &v.manifest, now())?;
        Ok(v.manifest)
    })();
    let m = match result {
        Ok(m) => m,
        Err(e) => {
            let to = upgrade::release::parse(&mtext)
                .map(|m| m.version)
                .unwrap_or_default();
            apply::record_failure(&l, &to, &e, now(), None);
            return Err(e);
        }
    };
    super::print(&format!(
        "upgraded {} from {} to {} (previous kept as {}); on trial until its first check-in: restart the service (systemctl restart outpost) or wait for the next cron run\n",
        l.bin.display(),
        crate::version::running(),
        m.version,
        l.prev.display()
    ))
}

pub fn rollback(a: RunArgs) -> Result<Code> {
    let cfg = super::checkin::load_config(&a.src)?;
    let l = upgrade::layout(&a.src.root, &cfg);
    let _lock = state::lock(&state::Paths::new(l.state_dir.clone()))?;
    let o = apply::rollback(&l, "rolled back by the operator (outpost rollback)", now())?;
    super::print(&format!(
        "rolled back: {} restored from {}{}; restart the service to run it\n",
        l.bin.display(),
        l.prev.display(),
        if o.to.is_empty() {
            String::new()
        } else {
            format!(" (upgrade {} -> {} undone)", o.from, o.to)
        }
    ))
}

/// Never fails on a bad config: the guard must work whatever the new
/// version did to the configuration; it then uses the default state dir.
pub fn guard(a: RunArgs) -> Result<Code> {
    let state_dir = match super::config::load(&a.src, false).and_then(|l| l.into_valid()) {
        Ok(cfg) => cfg.state_dir.value,
        Err(e) => {
            log::warn!(
                "upgrade-guard: {e}; using {}",
                crate::install::DEFAULT_STATE_DIR
            );
            crate::install::DEFAULT_STATE_DIR.to_string()
        }
    };
    let l = apply::Layout::new(&a.src.root, &state_dir);
    let line = apply::guard(&l, now())?;
    if line.starts_with("rolled back") {
        log::warn!("upgrade-guard: {line}");
    } else {
        log::info!("upgrade-guard: {line}");
    }
    Ok(Code::Ok)
}
