//! Finding a leaked secret: every form of a secret that must never appear
//! in output, logs or world-readable files (whole, without its type prefix,
//! either half, URL-encoded, base64 and base64url at all three alignments),
//! and the scan for world-readable files. Shared by tests/secrets.rs and
//! tests/checkin_secrets.rs so both look for the same things.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn b64(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// (name of the form, text) for every form of `secret` that must not appear.
pub fn forms(secret: &str) -> Vec<(String, String)> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // Credentials carry a type prefix (`opc_...`); the rest alone is secret.
    let body = secret.split_once('_').map(|(_, b)| b).unwrap_or(secret);
    let mut v = vec![
        ("plain".to_string(), secret.to_string()),
        ("first half".to_string(), body[..body.len() / 2].to_string()),
        (
            "second half".to_string(),
            body[body.len() / 2..].to_string(),
        ),
    ];
    if body != secret {
        v.push(("without prefix".to_string(), body.to_string()));
    }
    let url = secret
        .replace('%', "%25")
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    if url != secret {
        v.push(("URL-encoded".to_string(), url));
    }
    // An encoding of a longer string that contains the secret shows it at
    // one of three alignments; the edge characters depend on the neighbours.
    for (name, alpha) in [("base64", STD), ("base64url", URL)] {
        for shift in 0..3 {
            let data = [&b"xyz"[..shift], secret.as_bytes()].concat();
            let enc = b64(&data, alpha);
            v.push((
                format!("{name} (offset {shift})"),
                enc[4..enc.len() - 4].to_string(),
            ));
        }
    }
    v
}

/// Panic when any form of any `(name, secret)` appears in `text`.
pub fn assert_clean(label: &str, what: &str, text: &str, secrets: &[(&str, &str)]) {
    for (name, secret) in secrets {
        for (form, needle) in forms(secret) {
            assert!(
                !text.contains(&needle),
                "{label}: {form} of the {name} in {what}:\n{text}"
            );
        }
    }
}

/// Regular files under `dir` (recursively, links not followed) that others
/// may read.
pub fn world_readable_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                todo.push(p);
            } else if m.is_file() && m.permissions().mode() & 0o004 != 0 {
                out.push(p);
            }
        }
    }
    out
}
