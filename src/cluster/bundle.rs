//! The K3s distribution bundle: the K3s binary and its airgap image
//! archives, described by a small signed manifest (schema
//! `outpost.k3s-bundle/v1`, signed with signify by the same release keys
//! as the agent's own upgrades; `scripts/make-k3s-bundle` writes it). It
//! comes from the hub (each file at `/outpost/v1/artifacts/<sha256>`, the
//! manifest and its signature in `desired.cluster.bundle`) or from a local
//! bundle folder (`outpost cluster apply --bundle DIR`).
//!
//! Verification is the upgrade's: the signature with a trusted key first,
//! then the fields; the bundle's version and architecture must be the
//! cluster's and this host's; every file is streamed, hashed as it
//! arrives and capped at its signed size. Install order for power cuts:
//! every file is staged (`.NAME.outpost-new` beside its target, fsynced)
//! and checked before any is renamed into place, so a bad artifact leaves
//! nothing installed, and each rename leaves the old file or the new one.
//! A file already in place with the signed size and SHA-256 is left alone
//! (a second install changes nothing).

use super::apply::{K3S_BIN, K3S_IMAGES_DIR};
use crate::error::{Code, Error, Result};
use crate::sys::Root;
use crate::upgrade::sig::{self, PublicKey};
use miniserde::{json, Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const SCHEMA: &str = "outpost.k3s-bundle/v1";
/// The manifest's file name in a bundle folder (its signature: `.sig`).
pub const MANIFEST: &str = "k3s-bundle.json";
/// Largest file a bundle may name (K3s v1.31: binary ~70 MB, the airgap
/// images ~170 MB as .tar.zst, ~600 MB as .tar).
pub const MAX_FILE: u64 = 2 * 1024 * 1024 * 1024;
/// Most image archives in one bundle.
pub const MAX_IMAGES: usize = 8;
/// Largest manifest or signature text.
pub const MAX_TEXT: usize = 4096;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// `binary` (exactly one) or `images`.
    pub kind: String,
    /// File name in the bundle folder (and of an image archive in place).
    pub name: String,
    pub size: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub schema: String,
    pub distro: String,
    /// The K3s release, as K3s names it (`v1.31.4+k3s1`).
    pub version: String,
    /// `x86_64` or `aarch64`.
    pub arch: String,
    pub files: Vec<BundleFile>,
}

impl Manifest {
    /// Where a file goes on the host.
    pub fn target(f: &BundleFile) -> String {
        if f.kind == "binary" {
            K3S_BIN.to_string()
        } else {
            format!("{K3S_IMAGES_DIR}/{}", f.name)
        }
    }
    pub fn total(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

fn rejected(msg: impl Into<String>) -> Error {
    Error::new(Code::UpgradeRejected, msg)
}

/// A K3s release name: `v1.31.4+k3s1`, `v1.32.0-rc1+k3s1`.
pub fn valid_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let Some((core, build)) = rest.split_once('+') else {
        return false;
    };
    let (nums, pre) = match core.split_once('-') {
        Some((n, p)) => (n, Some(p)),
        None => (core, None),
    };
    let parts: Vec<&str> = nums.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 32
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        })
        && build
            .strip_prefix("k3s")
            .is_some_and(|n| !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A plain file name for an image archive: `[A-Za-z0-9._-]`, not starting
/// with a dot, ending in `.tar`, `.tar.zst` or `.tar.gz`.
pub fn valid_image_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && !n.starts_with('.')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && [".tar", ".tar.zst", ".tar.gz"]
            .iter()
            .any(|s| n.ends_with(s))
}

/// Verify `sig_text` over `manifest_text` with a trusted key, then parse
/// and check the manifest. Errors are one line; the signing key's id is
/// returned with the manifest.
pub fn verify(
    manifest_text: &str,
    sig_text: &str,
    keys: &[PublicKey],
) -> std::result::Result<(Manifest, String), String> {
    if manifest_text.len() > MAX_TEXT || sig_text.len() > MAX_TEXT {
        return Err("manifest or signature larger than 4 KiB".into());
    }
    let key = sig::verify(manifest_text.as_bytes(), sig_text, keys)?;
    Ok((parse(manifest_text)?, key))
}

/// The fields of a (signed) manifest.
pub fn parse(text: &str) -> std::result::Result<Manifest, String> {
    let m: Manifest = json::from_str(text).map_err(|_| {
        "not a K3s bundle manifest (JSON with schema, distro, version, arch, files)".to_string()
    })?;
    if m.schema != SCHEMA {
        return Err(format!("schema {:?}, expected {SCHEMA:?}", m.schema));
    }
    if m.distro != "k3s" {
        return Err(format!("distro {:?} is not k3s", m.distro));
    }
    if !valid_version(&m.version) {
        return Err(format!(
            "version {:?} is not a K3s release (like v1.31.4+k3s1)",
            m.version
        ));
    }
    if m.arch != "x86_64" && m.arch != "aarch64" {
        return Err(format!("arch {:?} is not x86_64 or aarch64", m.arch));
    }
    let bins = m.files.iter().filter(|f| f.kind == "binary").count();
    if bins != 1 {
        return Err(format!("{bins} binary files, expected exactly 1"));
    }
    let mut names = std::collections::BTreeSet::new();
    for f in &m.files {
        match f.kind.as_str() {
            "binary" if f.name == "k3s" => {}
            "binary" => return Err(format!("binary {:?}: must be named k3s", f.name)),
            "images" if valid_image_name(&f.name) => {}
            "images" => {
                return Err(format!(
                    "images {:?}: not a plain .tar, .tar.zst or .tar.gz file name",
                    f.name
                ))
            }
            k => {
                return Err(format!(
                    "file {:?}: kind {k:?} is not binary or images",
                    f.name
                ))
            }
        }
        if !names.insert(f.name.as_str()) {
            return Err(format!("file {:?} named twice", f.name));
        }
        if f.size == 0 || f.size > MAX_FILE {
            return Err(format!(
                "file {:?}: size {} is out of range (1..={MAX_FILE})",
                f.name, f.size
            ));
        }
        if f.sha256.len() != 64
            || !f
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "file {:?}: sha256 is not 64 lowercase hex digits",
                f.name
            ));
        }
    }
    if m.files.len() - 1 > MAX_IMAGES {
        return Err(format!("more than {MAX_IMAGES} image archives"));
    }
    Ok(m)
}

/// Where the files come from.
pub enum Source<'a> {
    /// A bundle folder (files by name).
    Dir(&'a Path),
    /// The hub: `<base><sha256>` through the agent's transport.
    Hub {
        client: &'a crate::http::Client,
        base: &'a str,
        request_timeout: Duration,
    },
}

/// Read and verify a bundle folder's manifest (`k3s-bundle.json` and its
/// `.sig`).
pub fn read_dir_manifest(dir: &Path, keys: &[PublicKey]) -> Result<(Manifest, String)> {
    let rd = |name: &str| -> Result<String> {
        let p = dir.join(name);
        let mut s = String::new();
        File::open(&p)
            .and_then(|f| f.take(MAX_TEXT as u64 + 1).read_to_string(&mut s))
            .map_err(|e| Error::io("reading", &p, &e))?;
        Ok(s)
    };
    let m = rd(MANIFEST)?;
    let s = rd(&format!("{MANIFEST}.sig"))?;
    verify(&m, &s, keys)
        .map_err(|e| rejected(format!("K3s bundle {}: {e}", dir.join(MANIFEST).display())))
}

/// The manifest must be for this cluster's version and this host.
pub fn check_fits(m: &Manifest, version: &str, arch: &str) -> Result<()> {
    if m.version != version {
        return Err(rejected(format!(
            "K3s bundle {}: the cluster runs {version}",
            m.version
        )));
    }
    if m.arch != arch {
        return Err(rejected(format!(
            "K3s bundle {} is built for {}, this host runs {arch}",
            m.version, m.arch
        )));
    }
    Ok(())
}

/// Whether `path` already holds exactly this file (size first: cheap).
fn in_place(path: &Path, f: &BundleFile) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == f.size)
        && crate::install::sha256_file(path).is_ok_and(|(h, _)| h == f.sha256)
}

fn staging(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.outpost-new"))
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, &e))
}

/// Stage one file: stream it in, hashed, capped at the signed size.
fn stage_one(src: &Source<'_>, f: &BundleFile, path: &Path, progress: &dyn Fn()) -> Result<()> {
    let _ = fs::remove_file(path);
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("creating", path, &e))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut written: u64 = 0;
    let mut sink = |b: &[u8]| -> Result<()> {
        written += b.len() as u64;
        if written > f.size {
            return Err(rejected(format!(
                "{}: larger than the {} bytes the signed manifest names",
                f.name, f.size
            )));
        }
        out.write_all(b)
            .map_err(|e| Error::io("writing", path, &e))?;
        ctx.update(b);
        progress();
        Ok(())
    };
    let what = match src {
        Source::Dir(dir) => {
            let p = dir.join(&f.name);
            let mut input = File::open(&p).map_err(|e| Error::io("opening", &p, &e))?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = input
                    .read(&mut buf)
                    .map_err(|e| Error::io("reading", &p, &e))?;
                if n == 0 {
                    break;
                }
                sink(&buf[..n])?;
            }
            p.display().to_string()
        }
        Source::Hub {
            client,
            base,
            request_timeout,
        } => {
            let url = format!("{base}{}", f.sha256);
            log::info!("downloading {url} ({} bytes, {})", f.size, f.name);
            let t = crate::upgrade::download_timeout(*request_timeout, f.size);
            client.download(&url, f.size, t, &mut sink)?;
            url
        }
    };
    if written != f.size {
        return Err(rejected(format!(
            "{what}: {written} bytes, the signed manifest says {}",
            f.size
        )));
    }
    let got = sig::hex(ctx.finish().as_ref());
    if got != f.sha256 {
        return Err(rejected(format!(
            "{what}: SHA-256 {got} does not match the signed manifest's {}",
            f.sha256
        )));
    }
    out.sync_all().map_err(|e| Error::io("syncing", path, &e))?;
    Ok(())
}

/// Install the bundle's files under `root`; returns the host paths that
/// changed. On any error nothing is renamed into place and every staged
/// file is removed.
pub fn install(
    root: &Root,
    m: &Manifest,
    src: &Source<'_>,
    progress: &dyn Fn(),
) -> Result<Vec<String>> {
    let mut todo: Vec<(&BundleFile, String, PathBuf, PathBuf)> = Vec::new();
    for f in &m.files {
        let host = Manifest::target(f);
        let target = root.path(&host);
        if in_place(&target, f) {
            continue;
        }
        let stage = staging(&target);
        todo.push((f, host, target, stage));
    }
    if todo.is_empty() {
        return Ok(Vec::new());
    }
    // Room first: one line naming the folder, nothing written.
    let mut need: std::collections::BTreeMap<PathBuf, u64> = Default::default();
    for (f, _, target, _) in &todo {
        let dir = target.parent().map(Path::to_path_buf).unwrap_or_default();
        crate::fsutil::ensure_dir(&dir, 0o755)?;
        *need.entry(dir).or_default() += f.size;
    }
    for (dir, bytes) in &need {
        if let Ok(fs) = crate::sys::host().statvfs(dir) {
            if fs.available < *bytes {
                return Err(Error::new(
                    Code::LocalIo,
                    format!(
                        "{}: {bytes} bytes needed to stage the K3s bundle, {} available",
                        dir.display(),
                        fs.available
                    ),
                ));
            }
        }
    }
    let staged = (|| -> Result<()> {
        for (f, _, _, stage) in &todo {
            stage_one(src, f, stage, progress)?;
        }
        Ok(())
    })();
    if let Err(e) = staged {
        for (_, _, _, stage) in &todo {
            let _ = fs::remove_file(stage);
        }
        return Err(e);
    }
    // Every file verified: rename into place (images first, the binary
    // last, so a K3s of the new version never starts with old images).
    todo.sort_by_key(|(f, ..)| f.kind == "binary");
    let mut changed = Vec::new();
    for (f, host, target, stage) in &todo {
        let mode = if f.kind == "binary" { 0o755 } else { 0o644 };
        fs::set_permissions(stage, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("setting the mode of", stage, &e))?;
        fs::rename(stage, target).map_err(|e| Error::io("renaming to", target, &e))?;
        if let Some(d) = target.parent() {
            fsync_dir(d)?;
        }
        log::info!(
            "installed {} ({} bytes, SHA-256 as signed) from the K3s bundle {}",
            host,
            f.size,
            m.version
        );
        changed.push(host.clone());
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upgrade::sig::testkey::TestKey;

    fn manifest() -> Manifest {
        Manifest {
            schema: SCHEMA.into(),
            distro: "k3s".into(),
            version: "v1.31.4+k3s1".into(),
            arch: "x86_64".into(),
            files: vec![
                BundleFile {
                    kind: "binary".into(),
                    name: "k3s".into(),
                    size: 70_000_000,
                    sha256: "ab".repeat(32),
                },
                BundleFile {
                    kind: "images".into(),
                    name: "k3s-airgap-images-amd64.tar.zst".into(),
                    size: 170_000_000,
                    sha256: "cd".repeat(32),
                },
            ],
        }
    }

    #[test]
    fn k3s_versions() {
        for v in ["v1.31.4+k3s1", "v1.32.0-rc1+k3s1", "v1.30.10+k3s12"] {
            assert!(valid_version(v), "{v}");
        }
        for v in [
            "1.31.4+k3s1",
            "v1.31.4",
            "v1.31+k3s1",
            "v1.31.4+rke2r1",
            "v1.31.4+k3s",
            "latest",
            "",
        ] {
            assert!(!valid_version(v), "{v}");
        }
    }

    #[test]
    fn manifest_table() {
        let k = TestKey::new(1);
        let other = TestKey::new(2);
        let keys = vec![PublicKey::parse(&k.public()).expect("key")];
        let good = json::to_string(&manifest());
        let sig = k.sign(good.as_bytes());
        assert_eq!(verify(&good, &sig, &keys).map(|v| v.0), Ok(manifest()));
        let signed = |f: &dyn Fn(&mut Manifest)| {
            let mut m = manifest();
            f(&mut m);
            let t = json::to_string(&m);
            let s = k.sign(t.as_bytes());
            (t, s)
        };
        let cases: Vec<(&str, (String, String), &str)> = vec![
            (
                "flipped byte",
                (good.replace("70000000", "70000001"), sig.clone()),
                "bad signature",
            ),
            (
                "wrong key",
                (good.clone(), other.sign(good.as_bytes())),
                "unknown key",
            ),
            (
                "agent release schema",
                signed(&|m| m.schema = "outpost.release/v1".into()),
                "schema",
            ),
            ("not k3s", signed(&|m| m.distro = "rke2".into()), "distro"),
            (
                "bad version",
                signed(&|m| m.version = "1.31.4".into()),
                "not a K3s release",
            ),
            ("bad arch", signed(&|m| m.arch = "armv7".into()), "arch"),
            (
                "no binary",
                signed(&|m| {
                    m.files.remove(0);
                }),
                "0 binary files",
            ),
            (
                "binary renamed",
                signed(&|m| m.files[0].name = "k3s-arm64".into()),
                "must be named k3s",
            ),
            (
                "path in name",
                signed(&|m| m.files[1].name = "../../etc/passwd.tar".into()),
                "plain",
            ),
            (
                "hidden name",
                signed(&|m| m.files[1].name = ".x.tar".into()),
                "plain",
            ),
            (
                "kind",
                signed(&|m| m.files[1].kind = "script".into()),
                "kind",
            ),
            (
                "twice",
                signed(&|m| {
                    let f = m.files[1].clone();
                    m.files.push(f);
                }),
                "named twice",
            ),
            ("empty", signed(&|m| m.files[1].size = 0), "out of range"),
            (
                "huge",
                signed(&|m| m.files[1].size = MAX_FILE + 1),
                "out of range",
            ),
            (
                "sha",
                signed(&|m| m.files[0].sha256 = "AB".repeat(32)),
                "sha256",
            ),
            (
                "not json",
                ("hi\n".into(), k.sign(b"hi\n")),
                "not a K3s bundle manifest",
            ),
        ];
        for (name, (text, s), want) in cases {
            let e = verify(&text, &s, &keys).expect_err(name);
            assert!(e.contains(want), "{name}: {e:?} lacks {want:?}");
        }
    }

    #[test]
    fn fits_version_and_arch() {
        let m = manifest();
        assert!(check_fits(&m, "v1.31.4+k3s1", "x86_64").is_ok());
        let e = check_fits(&m, "v1.31.5+k3s1", "x86_64").unwrap_err();
        assert_eq!(e.code(), Code::UpgradeRejected);
        assert!(e.message().contains("the cluster runs v1.31.5+k3s1"), "{e}");
        let e = check_fits(&m, "v1.31.4+k3s1", "aarch64").unwrap_err();
        assert!(e.message().contains("this host runs aarch64"), "{e}");
    }

    #[test]
    fn targets() {
        let m = manifest();
        assert_eq!(Manifest::target(&m.files[0]), "/usr/local/bin/k3s");
        assert_eq!(
            Manifest::target(&m.files[1]),
            "/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst"
        );
        assert_eq!(
            staging(Path::new("/r/usr/local/bin/k3s")),
            Path::new("/r/usr/local/bin/.k3s.outpost-new")
        );
    }
}
