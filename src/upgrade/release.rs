//! A release manifest (schema `outpost.release/v1`): one small JSON file per
//! artifact naming its version, architecture, size and SHA-256, signed with
//! signify (`<manifest>.sig`). Verifying the signature comes first; only a
//! signed manifest is parsed, and the artifact is then held to it. Version
//! order is semver with pre-releases (the `semver` crate). Pure: no I/O.

use super::sig::{self, PublicKey};
use miniserde::{json, Deserialize, Serialize};
use std::cmp::Ordering;

pub const SCHEMA: &str = "outpost.release/v1";
/// Largest artifact a manifest may announce (the agent is a few MB).
pub const MAX_SIZE: u64 = 256 * 1024 * 1024;
/// Largest manifest or signature text read.
pub const MAX_TEXT: usize = 4096;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub schema: String,
    pub version: String,
    /// `x86_64` or `aarch64`.
    pub arch: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the binary.
    pub sha256: String,
    /// The artifact's file name (informational).
    pub file: String,
}

impl Manifest {
    pub fn to_text(&self) -> String {
        let mut s = json::to_string(self);
        s.push('\n');
        s
    }
}

/// The manifest, after its signature verified; `key` is the signing key's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub manifest: Manifest,
    pub key: String,
}

/// Verify `sig_text` over `manifest_text`, then parse and check the
/// manifest. Errors are one line without the "manifest:" prefix.
pub fn verify(manifest_text: &str, sig_text: &str, keys: &[PublicKey]) -> Result<Verified, String> {
    if manifest_text.len() > MAX_TEXT || sig_text.len() > MAX_TEXT {
        return Err("manifest or signature larger than 4 KiB".into());
    }
    let key = sig::verify(manifest_text.as_bytes(), sig_text, keys)?;
    let manifest = parse(manifest_text)?;
    Ok(Verified { manifest, key })
}

/// Parse and check a manifest's fields (the signature is checked before).
pub fn parse(text: &str) -> Result<Manifest, String> {
    let m: Manifest = json::from_str(text).map_err(|_| {
        "not a release manifest (JSON with schema, version, arch, size, sha256, file)".to_string()
    })?;
    if m.schema != SCHEMA {
        return Err(format!("schema {:?}, expected {SCHEMA:?}", m.schema));
    }
    parse_version(&m.version)?;
    if m.arch != "x86_64" && m.arch != "aarch64" {
        return Err(format!("arch {:?} is not x86_64 or aarch64", m.arch));
    }
    if m.size == 0 || m.size > MAX_SIZE {
        return Err(format!("size {} is out of range (1..={MAX_SIZE})", m.size));
    }
    if m.sha256.len() != 64
        || !m
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "sha256 {:?} is not 64 lowercase hex digits",
            m.sha256
        ));
    }
    Ok(m)
}

pub fn parse_version(v: &str) -> Result<semver::Version, String> {
    semver::Version::parse(v).map_err(|e| format!("version {v:?} is not semver: {e}"))
}

/// Semver precedence (build metadata ignored, as semver says).
pub fn compare(a: &str, b: &str) -> Result<Ordering, String> {
    let a = parse_version(a)?;
    let b = parse_version(b)?;
    Ok(a.cmp_precedence(&b))
}

/// Our own architecture, as release manifests name it.
pub fn own_arch() -> &'static str {
    std::env::consts::ARCH
}

#[cfg(test)]
mod tests {
    use super::super::sig::testkey::TestKey;
    use super::*;

    /// The release fuzz target's seed really passes verification with the
    /// corpus key (otherwise the fuzzer never reaches the verified path),
    /// and the seed signed by another key is refused.
    #[test]
    fn fuzz_seed_verifies_with_the_corpus_key() {
        let key = PublicKey::parse(include_str!("../../fuzz/corpus/release/pubkey")).unwrap();
        let seed = include_str!("../../fuzz/corpus/release/signed");
        let (m, s) = seed.split_once('\0').unwrap();
        assert_eq!(
            verify(m, s, std::slice::from_ref(&key))
                .unwrap()
                .manifest
                .version,
            "0.2.0"
        );
        let other = include_str!("../../fuzz/corpus/release/other-key");
        let (m, s) = other.split_once('\0').unwrap();
        assert!(verify(m, s, &[key]).is_err());
    }

    fn manifest() -> Manifest {
        Manifest {
            schema: SCHEMA.into(),
            version: "0.2.0".into(),
            arch: "x86_64".into(),
            size: 1234,
            sha256: "ab".repeat(32),
            file: "outpost-0.2.0-x86_64-linux-musl".into(),
        }
    }

    #[test]
    fn versions_order_like_semver() {
        use Ordering::*;
        for (a, b, want) in [
            ("0.1.0", "0.2.0", Less),
            ("0.10.0", "0.9.9", Greater),
            ("1.0.0", "1.0.0", Equal),
            ("1.0.0-rc.1", "1.0.0", Less),
            ("1.0.0-alpha", "1.0.0-alpha.1", Less),
            ("1.0.0-alpha.1", "1.0.0-alpha.beta", Less),
            ("1.0.0-beta.2", "1.0.0-beta.11", Less),
            ("1.0.0-rc.1", "1.0.0-beta.11", Greater),
            ("1.0.0+build.5", "1.0.0+build.7", Equal),
            ("4.7.7", "4.7.20", Less),
        ] {
            assert_eq!(compare(a, b), Ok(want), "{a} vs {b}");
        }
        for bad in ["", "1", "1.2", "v1.2.3", "1.2.3.4", "01.2.3"] {
            assert!(compare(bad, "1.0.0").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn manifest_table() {
        let k = TestKey::new(1);
        let other = TestKey::new(2);
        let keys = vec![PublicKey::parse(&k.public()).unwrap()];
        let good = manifest().to_text();
        let sig = k.sign(good.as_bytes());
        assert_eq!(
            verify(&good, &sig, &keys).map(|v| v.manifest),
            Ok(manifest())
        );
        let mut m = manifest();
        m.arch = "riscv64".into();
        let bad_arch = m.to_text();
        let mut m = manifest();
        m.sha256 = "AB".repeat(32);
        let bad_sha = m.to_text();
        let mut m = manifest();
        m.version = "latest".into();
        let bad_ver = m.to_text();
        let cases: Vec<(&str, String, String, &str)> = vec![
            (
                "flipped byte",
                good.replace("1234", "1235"),
                sig.clone(),
                "bad signature",
            ),
            (
                "wrong key",
                good.clone(),
                other.sign(good.as_bytes()),
                "unknown key",
            ),
            (
                "truncated manifest",
                good[..good.len() / 2].to_string(),
                sig.clone(),
                "bad signature",
            ),
            (
                "truncated signature",
                good.clone(),
                sig[..sig.len() - 20].to_string(),
                "signature",
            ),
            (
                "signed bad arch",
                bad_arch.clone(),
                k.sign(bad_arch.as_bytes()),
                "arch",
            ),
            (
                "signed bad sha",
                bad_sha.clone(),
                k.sign(bad_sha.as_bytes()),
                "sha256",
            ),
            (
                "signed bad version",
                bad_ver.clone(),
                k.sign(bad_ver.as_bytes()),
                "semver",
            ),
            (
                "signed non-JSON",
                "hello\n".into(),
                k.sign(b"hello\n"),
                "not a release manifest",
            ),
        ];
        for (name, text, s, want) in cases {
            let e = verify(&text, &s, &keys).expect_err(name);
            assert!(e.contains(want), "{name}: {e:?} lacks {want:?}");
        }
    }
}
