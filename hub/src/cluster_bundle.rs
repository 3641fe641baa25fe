//! K3s bundles on the hub: `outpost-hub cluster bundle add
//! DIR/k3s-bundle.json --key PUB...` verifies the bundle as the agent will
//! (signify signature with one of the given keys, each file's size and
//! SHA-256), stores each file under `<db folder>/artifacts/<sha256>` (the
//! same store and route as agent releases: `/outpost/v1/artifacts/<sha256>`)
//! and records the signed manifest in `meta` as `k3s-bundle:<version>:<arch>`.
//! A member of a K3s cluster of that version gets, in its role instruction,
//! the manifest, its signature and the artifacts URL (`cluster_hub.rs`);
//! the agent verifies both again with its own trusted keys.

use crate::db::Db;
use crate::store::{self, params, OptionalExtension, Tx};
use miniserde::{json, Deserialize, Serialize};
use outpost::cluster::bundle::{self, Manifest};
use outpost::error::{Code, Error, Result};
use outpost::proto::ClusterBundle;
use outpost::upgrade::sig;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A bundle as stored in `meta`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub version: String,
    pub arch: String,
    pub manifest: String,
    pub signature: String,
    pub key: String,
    pub size: u64,
}

fn meta_key(version: &str, arch: &str) -> String {
    format!("k3s-bundle:{version}:{arch}")
}

/// The bundle for a K3s cluster of `version` on a member of `arch`, as
/// its role instruction carries it; None when the operator added none.
pub fn for_member(
    tx: &Tx,
    version: &str,
    arch: &str,
    base: &str,
) -> store::Result<Option<ClusterBundle>> {
    let text: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key=?1",
            [meta_key(version, arch)],
            |r| r.get(0),
        )
        .optional()?;
    Ok(text
        .and_then(|t| json::from_str::<Stored>(&t).ok())
        .map(|s| ClusterBundle {
            manifest: s.manifest,
            signature: s.signature,
            url: format!("{base}{}", crate::upgrades::PATH_ARTIFACTS),
        }))
}

/// Copy `src` into the artifact store as `<sha256>`, streamed and hashed
/// (files reach hundreds of MB); refused unless size and hash are signed.
fn store_file(src: &Path, f: &bundle::BundleFile, dir: &Path) -> Result<()> {
    let dest = dir.join(&f.sha256);
    if std::fs::metadata(&dest).is_ok_and(|m| m.len() == f.size) {
        return Ok(());
    }
    let tmp = dir.join(format!(".{}.new", f.sha256));
    let mut input = std::fs::File::open(src).map_err(|e| Error::io("opening", src, &e))?;
    let mut out = std::fs::File::create(&tmp).map_err(|e| Error::io("creating", &tmp, &e))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut n_total: u64 = 0;
    let r = (|| -> Result<()> {
        loop {
            let n = input
                .read(&mut buf)
                .map_err(|e| Error::io("reading", src, &e))?;
            if n == 0 {
                break;
            }
            n_total += n as u64;
            if n_total > f.size {
                break;
            }
            ctx.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("writing", &tmp, &e))?;
        }
        if n_total != f.size || sig::hex(ctx.finish().as_ref()) != f.sha256 {
            return Err(Error::new(
                Code::UpgradeRejected,
                format!(
                    "{}: size or SHA-256 does not match its signed manifest",
                    src.display()
                ),
            ));
        }
        out.sync_all().map_err(|e| Error::io("syncing", &tmp, &e))?;
        std::fs::rename(&tmp, &dest).map_err(|e| Error::io("renaming to", &dest, &e))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// `cluster bundle add MANIFEST --key PUB...`.
pub fn add(db: &mut Db, manifest: &Path, keys: &[PathBuf]) -> Result<(Manifest, String)> {
    let (mtext, stext, trusted) =
        crate::upgrades::read_signed(manifest, keys, "cluster bundle add")?;
    let (m, key) = bundle::verify(&mtext, &stext, &trusted).map_err(|e| {
        Error::new(
            Code::UpgradeRejected,
            format!("K3s bundle {}: {e}", manifest.display()),
        )
    })?;
    let folder = manifest.parent().unwrap_or(Path::new("."));
    let dir = crate::upgrades::artifacts_dir(db.path());
    outpost::fsutil::ensure_dir(&dir, 0o755)?;
    for f in &m.files {
        store_file(&folder.join(&f.name), f, &dir)?;
    }
    let s = Stored {
        version: m.version.clone(),
        arch: m.arch.clone(),
        manifest: mtext,
        signature: stext,
        key: key.clone(),
        size: m.total(),
    };
    db.write_tx(|tx| {
        tx.execute(
            "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            params![meta_key(&s.version, &s.arch), json::to_string(&s)],
        )?;
        Ok(())
    })?;
    Ok((m, key))
}

/// Every stored bundle, by version and arch.
pub fn list(db: &mut Db) -> Result<Vec<Stored>> {
    db.write_tx(|tx| {
        let mut st =
            tx.prepare("SELECT value FROM meta WHERE key LIKE 'k3s-bundle:%' ORDER BY key")?;
        let rows = st
            .query_map((), |r| r.get::<_, String>(0))?
            .collect::<store::Result<Vec<String>>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|t| json::from_str(&t).ok())
            .collect())
    })
}
