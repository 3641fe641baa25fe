//! Secrets the hub must give back (cluster join tokens, which it relays to
//! the members, so a digest alone cannot do): sealed at rest with
//! ChaCha20-Poly1305 (`ring::aead`, never hand-written) under a 256-bit key
//! in a file next to the database (`<db>.key`, created 0600, refused when
//! group or others may read it). Each value is bound to where it is stored
//! (the associated data names the cluster and the kind), so a sealed value
//! copied to another row does not open.
//!
//! Stored as lowercase hex of nonce (12 bytes) || ciphertext || tag.

use outpost::error::{Code, Error, Result};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::path::{Path, PathBuf};

/// The key file that goes with a database.
pub fn key_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".key");
    PathBuf::from(p)
}

/// Load the key, creating it (0600, fresh randomness) on first use.
pub fn key(db: &Path) -> Result<LessSafeKey> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = key_path(db);
    let bytes = match std::fs::metadata(&path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(Error::new(
                    Code::NotPermitted,
                    format!(
                        "{}: mode {mode:04o}, must be 0600 (it holds the key of the cluster secrets): chmod 600 {}",
                        path.display(),
                        path.display()
                    ),
                ));
            }
            std::fs::read(&path).map_err(|e| Error::io("reading", &path, &e))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut k = [0u8; 32];
            SystemRandom::new().fill(&mut k).map_err(|_| {
                Error::new(Code::LocalIo, "reading the system random source failed")
            })?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| Error::io("creating", &path, &e))?;
            f.write_all(&k)
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io("writing", &path, &e))?;
            k.to_vec()
        }
        Err(e) => return Err(Error::io("reading", &path, &e)),
    };
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| {
        Error::new(
            Code::Config,
            format!(
                "{}: not a 32-byte key ({} bytes)",
                path.display(),
                bytes.len()
            ),
        )
    })?;
    Ok(LessSafeKey::new(unbound))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Seal `plain` for the place named by `aad`.
pub fn seal(key: &LessSafeKey, aad: &str, plain: &str) -> Result<String> {
    let mut n = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut n)
        .map_err(|_| Error::new(Code::LocalIo, "reading the system random source failed"))?;
    let mut buf = plain.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(n),
        Aad::from(aad.as_bytes()),
        &mut buf,
    )
    .map_err(|_| Error::new(Code::LocalIo, "sealing a cluster secret failed"))?;
    let mut out = n.to_vec();
    out.extend_from_slice(&buf);
    Ok(hex(&out))
}

/// Open what `seal` made for the same `aad`; None when it does not verify
/// (another key, another place, or tampered with).
pub fn open(key: &LessSafeKey, aad: &str, sealed: &str) -> Option<String> {
    let raw = unhex(sealed)?;
    if raw.len() < NONCE_LEN {
        return None;
    }
    let (n, ct) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(n).ok()?;
    let mut buf = ct.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_place() {
        let d = std::env::temp_dir().join(format!("outpost-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let db = d.join("hub.db");
        let k = key(&db).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_path(&db))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let s = seal(&k, "edge-1/join", "K10abc::server:secret").unwrap();
        assert!(!s.contains("secret") && !s.contains("K10"));
        assert_eq!(
            open(&k, "edge-1/join", &s).as_deref(),
            Some("K10abc::server:secret")
        );
        assert_eq!(open(&k, "edge-2/join", &s), None, "bound to its place");
        let again = key(&db).unwrap();
        assert_eq!(
            open(&again, "edge-1/join", &s).as_deref(),
            Some("K10abc::server:secret")
        );
        let mut bad = s.clone();
        let last = if bad.ends_with('0') { "1" } else { "0" };
        bad.replace_range(bad.len() - 1.., last);
        assert_eq!(open(&k, "edge-1/join", &bad), None, "tampered");
        let other = key(&d.join("other.db")).unwrap();
        assert_eq!(open(&other, "edge-1/join", &s), None, "another key");
        std::fs::set_permissions(key_path(&db), std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = key(&db).expect_err("a readable key file is refused");
        assert!(e.to_string().contains("must be 0600"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
