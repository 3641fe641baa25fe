//! Secrets of the hub: random registration tokens and device credentials,
//! and the SHA-256 digests under which they are stored (the database never
//! holds a token, credential or install secret in clear).
//!
//! Must not log, print or store a secret; callers print a new token once.

use outpost::error::{Code, Error, Result};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of registration tokens (so a leaked one is recognisable).
pub const TOKEN_PREFIX: &str = "opt_";
/// Prefix of device credentials.
pub const CREDENTIAL_PREFIX: &str = "opc_";
/// An install secret must be at least this long (agents send 64 hex chars).
pub const MIN_INSTALL_SECRET: usize = 32;

fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[usize::from(b >> 4)] as char);
        s.push(H[usize::from(b & 15)] as char);
    }
    s
}

/// `prefix` + 64 hex characters of fresh randomness (256 bits).
pub fn generate(prefix: &str) -> Result<String> {
    let mut buf = [0u8; 32];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Error::new(Code::LocalIo, "reading the system random source failed"))?;
    Ok(format!("{prefix}{}", hex(&buf)))
}

/// Lowercase hex SHA-256. Tokens and credentials carry 256 random bits, so
/// an unsalted digest is enough to make a stolen database useless.
pub fn digest_hex(parts: &[&[u8]]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        // Length-prefix each part so ("ab","c") and ("a","bc") differ.
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    hex(ctx.finish().as_ref())
}

/// The stored form of a token or credential.
pub fn hash_secret(secret: &str) -> String {
    digest_hex(&[secret.as_bytes()])
}

/// The stored form of an install secret, bound to its host ID.
pub fn hash_install_secret(host_id: &str, secret: &str) -> String {
    digest_hex(&[b"install", host_id.as_bytes(), secret.as_bytes()])
}

/// The public ID of a token (first 12 hex digits of its digest), used by
/// `token list` and `token revoke`.
pub fn token_id(token_hash: &str) -> String {
    token_hash.chars().take(12).collect()
}

/// A stable phase in [0, interval) from a hash of the host ID: the phase
/// hubs gave before server-assigned slots (`slots.rs`); kept for the load
/// generator's comparison of the two (`load.rs`).
pub fn phase_ms(host_id: &str, interval_ms: u64) -> u64 {
    if interval_ms == 0 {
        return 0;
    }
    let d = digest::digest(&digest::SHA256, host_id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.as_ref()[..8]);
    u64::from_be_bytes(b) % interval_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_distinct_and_well_formed() {
        let a = generate(TOKEN_PREFIX).expect("random");
        let b = generate(TOKEN_PREFIX).expect("random");
        assert_ne!(a, b, "two tokens");
        assert_eq!(a.len(), 4 + 64, "token length");
        assert!(a[4..].bytes().all(|c| c.is_ascii_hexdigit()), "hex body");
    }

    #[test]
    fn hashes_are_stable_and_separated() {
        let cases = [
            (hash_secret("abc"), hash_secret("abc"), true, "same secret"),
            (
                hash_secret("abc"),
                hash_secret("abd"),
                false,
                "other secret",
            ),
            (
                hash_install_secret("ab", "c"),
                hash_install_secret("a", "bc"),
                false,
                "parts are length-prefixed",
            ),
        ];
        for (x, y, same, name) in cases {
            assert_eq!(x == y, same, "{name}");
            assert_eq!(x.len(), 64, "{name}: hex sha256");
        }
    }

    #[test]
    fn phase_is_within_interval() {
        for (host, iv) in [("a", 300_000u64), ("b", 1), ("c", 7), ("d", 0)] {
            let p = phase_ms(host, iv);
            assert!(p < iv.max(1), "phase of {host} in {iv}: {p}");
            assert_eq!(p, phase_ms(host, iv), "stable for {host}");
        }
    }
}
