//! Trust anchors of the system CA bundle, and their derived cache.
//!
//! rustls verifies against trust anchors (subject, public key, name
//! constraints of each CA), which webpki extracts from every certificate of
//! the bundle: for Debian's 144 certificates that decoding was the largest
//! single cost of a one-shot `outpost checkin` (docs/BENCHMARKS.md,
//! "Levers"). A check-in therefore keeps the decoded anchors in
//! `<stateDir>/ca-anchors` (0600, public data derived from the bundle, no
//! secret) and rebuilds it when the bundle changes:
//!
//! - the cache names the bundle's path and its identity as `fstat` gave it
//!   when the bundle was read (device, inode, size, mtime and ctime to the
//!   nanosecond: any rewrite, rename-over or `touch` changes one of them);
//! - when the identity differs but the bundle's SHA-256 is the one recorded
//!   (a package run that rewrote the same bundle), the anchors are reused
//!   and the identity updated; otherwise they are decoded again;
//! - a cache that is unreadable, truncated, of another format, not owned by
//!   the state directory's owner or open to others is ignored and rewritten; failing to
//!   write it only costs the next run the decoding again.
//!
//! The format is this module's own: a magic line, then length-prefixed
//! fields (below). It carries no checksum: it is written atomically and
//! read only from the 0700 state directory, whose writers could as well
//! edit the configuration's `caCerts`.

use super::*;
use rustls::pki_types::{CertificateDer, Der, TrustAnchor};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The cache's file name in the state directory.
pub const CACHE_NAME: &str = "ca-anchors";
const MAGIC: &[u8] = b"outpost-ca-anchors/v1\n";

/// What identifies a file's content without reading it (from `fstat`).
pub type Identity = [u64; 7];

pub(super) fn identity(m: &std::fs::Metadata) -> Identity {
    [
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime() as u64,
        m.mtime_nsec() as u64,
        m.ctime() as u64,
        m.ctime_nsec() as u64,
    ]
}

/// The anchors of `bundle`, decoded: (anchors, certificates skipped).
pub(super) fn decode(bundle: &CaBundle) -> (Vec<TrustAnchor<'static>>, usize) {
    let (ders, bad) = pem_certificates(&bundle.pem);
    let mut skipped = bad;
    let mut out = Vec::with_capacity(ders.len());
    for d in &ders {
        match webpki::anchor_from_trusted_cert(&CertificateDer::from(d.as_slice())) {
            Ok(a) => out.push(a.to_owned()),
            Err(_) => skipped += 1,
        }
    }
    (out, skipped)
}

/// Where `cached` found the anchors.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// The cache, unchanged.
    Cache,
    /// The cache, after hashing a bundle whose identity changed.
    Rehashed,
    /// Decoded from the bundle (cache missing, stale or refused).
    Decoded,
}

/// The anchors of `bundle`, from the cache at `cache` when it describes
/// this bundle, else decoded (and the cache rewritten).
pub(super) fn cached(bundle: &CaBundle, cache: &Path) -> (Vec<TrustAnchor<'static>>, Source) {
    let path = bundle.path.as_os_str().as_encoded_bytes();
    let old = read_cache(cache);
    if let Some(c) = &old {
        if c.path == path && Some(c.identity) == bundle.identity {
            log::debug!(target: LOG_TARGET, "{} trust anchors from {}", c.anchors.len(), cache.display());
            return (old.map(|c| c.anchors).unwrap_or_default(), Source::Cache);
        }
    }
    let sha = ring::digest::digest(&ring::digest::SHA256, &bundle.pem);
    let (anchors, skipped, source) = match old {
        Some(c) if c.path == path && c.sha256[..] == *sha.as_ref() => {
            (c.anchors, c.skipped, Source::Rehashed)
        }
        _ => {
            let (a, s) = decode(bundle);
            log::debug!(target: LOG_TARGET,
                "{} trust anchors decoded from {} ({s} unusable blocks skipped)",
                a.len(),
                bundle.path.display()
            );
            (a, s, Source::Decoded)
        }
    };
    if let Some(id) = bundle.identity {
        let data = encode(path, &id, sha.as_ref(), skipped, &anchors);
        if let Err(e) = crate::fsutil::write_atomic(cache, &data, 0o600) {
            log::debug!(target: LOG_TARGET, "trust anchor cache not written: {e}");
        }
    }
    (anchors, source)
}

struct Cache {
    path: Vec<u8>,
    identity: Identity,
    sha256: Vec<u8>,
    skipped: usize,
    anchors: Vec<TrustAnchor<'static>>,
}

/// MAGIC, path, identity (7 x u64), sha256, skipped (u32), count (u32),
/// then per anchor: subject, subjectPublicKeyInfo, name constraints (a
/// length of u32::MAX = none). Every field is a little-endian u32 length
/// and its bytes; integers are little-endian.
fn encode(
    path: &[u8],
    id: &Identity,
    sha: &[u8],
    skipped: usize,
    anchors: &[TrustAnchor<'_>],
) -> Vec<u8> {
    let size: usize = anchors
        .iter()
        .map(|a| 12 + a.subject.len() + a.subject_public_key_info.len())
        .sum();
    let mut out = Vec::with_capacity(MAGIC.len() + path.len() + 128 + size);
    let field = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    out.extend_from_slice(MAGIC);
    field(&mut out, path);
    for v in id {
        out.extend_from_slice(&v.to_le_bytes());
    }
    field(&mut out, sha);
    out.extend_from_slice(&(skipped as u32).to_le_bytes());
    out.extend_from_slice(&(anchors.len() as u32).to_le_bytes());
    for a in anchors {
        field(&mut out, &a.subject);
        field(&mut out, &a.subject_public_key_info);
        match &a.name_constraints {
            Some(nc) => field(&mut out, nc),
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }
    out
}

/// The cache, when it is ours (owner, mode) and well formed.
fn read_cache(p: &Path) -> Option<Cache> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).ok()?;
    let m = f.metadata().ok()?;
    // Written 0600 by the owner of the (0700) state directory: anything
    // else was not written by this module.
    let dir_uid = std::fs::metadata(p.parent()?).ok()?.uid();
    if !m.is_file() || m.mode() & 0o077 != 0 || m.uid() != dir_uid {
        return None;
    }
    let mut data = Vec::with_capacity(m.len() as usize);
    f.read_to_end(&mut data).ok()?;
    parse(&data)
}

fn parse(data: &[u8]) -> Option<Cache> {
    let mut r = Cursor { data, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return None;
    }
    let path = r.field()?.to_vec();
    let mut identity = [0u64; 7];
    for v in identity.iter_mut() {
        *v = r.u64()?;
    }
    let sha256 = r.field()?.to_vec();
    let skipped = r.u32()? as usize;
    let count = r.u32()? as usize;
    // Each anchor takes at least 12 bytes: a count beyond that is garbage.
    if count > data.len() / 12 {
        return None;
    }
    let mut anchors = Vec::with_capacity(count);
    for _ in 0..count {
        let subject = r.field()?;
        let spki = r.field()?;
        let nc = match r.u32()? {
            u32::MAX => None,
            n => Some(Der::from(r.take(n as usize)?.to_vec())),
        };
        anchors.push(TrustAnchor {
            subject: Der::from(subject.to_vec()),
            subject_public_key_info: Der::from(spki.to_vec()),
            name_constraints: nc,
        });
    }
    (r.at == data.len()).then_some(Cache {
        path,
        identity,
        sha256,
        skipped,
        anchors,
    })
}

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.data.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn field(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor(s: &[u8], k: &[u8], nc: Option<&[u8]>) -> TrustAnchor<'static> {
        TrustAnchor {
            subject: Der::from(s.to_vec()),
            subject_public_key_info: Der::from(k.to_vec()),
            name_constraints: nc.map(|n| Der::from(n.to_vec())),
        }
    }

    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBzzCCAXWgAwIBAgIUaaEZKTo5SYh62etWGDMkQNo575kwCgYIKoZIzj0EAwIw
PTEgMB4GA1UEAwwXRXhhbXBsZSBQYWxldHRlIFRlc3QgQ0ExGTAXBgNVBAoMEG91
dHBvc3QgZml4dHVyZXMwHhcNMjYxMTI1MTEwODQ3WhcNMzYxMTIyMTEwODQ3WjA9
MSAwHgYDVQQDDBdFeGFtcGxlIFBhbGV0dGUgVGVzdCBDQTEZMBcGA1UECgwQb3V0
cG9zdCBmaXh0dXJlczBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEeauWa+gwx/
LO0CVg+z+C56va3tIrRqTafcoA/mnnjLTu6KOFBY/nd0ubrOfO76Z93Lck5t8IAi
XE4wMpuVrT6jUzBRMB0GA1UdDgQWBBT1WbtY4peblX9u7i6iIAY8RAk3FjAfBgNV
HSMEGDAWgBT1WbtY4peblX9u7i6iIAY8RAk3FjAPBgNVHRMBAf8EBTADAQH/MAoG
CCqGSM49BAMCA0gAMEUCIQCHf4GrJNIgZUX83CqU89I0qLoVxGVVIQBAw+00mjn5
owIgNU3RcQeWiv2IoEjRWorZvJZNjg680cqAcGnDKmEPjrI=
-----END CERTIFICATE-----
";

    fn read(dir: &Path) -> CaBundle {
        let root = Root::new(dir.to_path_buf());
        read_system_ca(&root).expect("reads").expect("found")
    }

    #[test]
    fn the_cache_is_used_until_the_bundle_changes() {
        use std::os::unix::fs::PermissionsExt;
        let t = std::env::temp_dir().join(format!("outpost-anchors-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("etc/ssl/certs")).expect("mkdir");
        let bundle = t.join("etc/ssl/certs/ca-certificates.crt");
        std::fs::write(&bundle, format!("{CA_PEM}junk\n{CA_PEM}")).expect("write");
        let cache = t.join("ca-anchors");
        let (first, src) = cached(&read(&t), &cache);
        assert_eq!(src, Source::Decoded);
        assert_eq!(first.len(), 2);
        assert_eq!(first, decode(&read(&t)).0, "the same anchors webpki gives");
        let mode = std::fs::metadata(&cache)
            .expect("cache")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, src) = cached(&read(&t), &cache);
        assert_eq!((again, src), (first.clone(), Source::Cache));
        // Rewritten with the same content: new identity, same hash.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&bundle, format!("{CA_PEM}junk\n{CA_PEM}")).expect("write");
        assert_eq!(cached(&read(&t), &cache), (first.clone(), Source::Rehashed));
        assert_eq!(cached(&read(&t), &cache).1, Source::Cache);
        // Other content: decoded again.
        std::fs::write(&bundle, CA_PEM).expect("write");
        let (one, src) = cached(&read(&t), &cache);
        assert_eq!((one.len(), src), (1, Source::Decoded));
        // A cache open to others, or damaged, is not trusted.
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(cached(&read(&t), &cache).1, Source::Decoded);
        assert_eq!(cached(&read(&t), &cache).1, Source::Cache);
        let mut d = std::fs::read(&cache).expect("read");
        d.truncate(d.len() - 1);
        std::fs::write(&cache, d).expect("write");
        assert_eq!(cached(&read(&t), &cache).1, Source::Decoded);
        let _ = std::fs::remove_dir_all(&t);
    }

    #[test]
    fn encode_parse_round_trip_and_damage_is_refused() {
        let a = vec![
            anchor(b"subj", b"key", None),
            anchor(b"s2", b"", Some(b"nc")),
        ];
        let data = encode(b"/etc/ssl/x.crt", &[1, 2, 3, 4, 5, 6, 7], &[9; 32], 2, &a);
        let c = parse(&data).expect("parses");
        assert_eq!(c.path, b"/etc/ssl/x.crt");
        assert_eq!(c.identity, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(c.sha256, vec![9; 32]);
        assert_eq!(c.skipped, 2);
        assert_eq!(c.anchors, a);
        for cut in 0..data.len() {
            assert!(parse(&data[..cut]).is_none(), "truncated at {cut}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(parse(&longer).is_none(), "trailing byte");
        let mut other = data;
        other[0] ^= 1;
        assert!(parse(&other).is_none(), "magic");
    }
}
