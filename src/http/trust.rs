//! Trust roots: the system CA bundle found under the root, the configured
//! extra CAs, and the fast PEM reader for the bundle.

use super::*;

/// Where distributions keep their CA bundle, in the order they are tried:
/// Debian/Ubuntu, RHEL/Rocky/Fedora (two), SUSE, Alpine.
pub const SYSTEM_CA_PATHS: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/var/lib/ca-certificates/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A CA bundle file found under the root.
#[derive(Clone, Debug)]
pub struct CaBundle {
    pub path: PathBuf,
    pub pem: Vec<u8>,
    /// The file's identity when it was read (keys the trust anchor cache).
    pub identity: Option<anchors::Identity>,
}

/// Read the first system CA bundle that exists under `root`
/// (`SYSTEM_CA_PATHS`). `Ok(None)` when none exists; an existing file that
/// cannot be read is an error.
pub fn read_system_ca(root: &Root) -> Result<Option<CaBundle>> {
    for p in SYSTEM_CA_PATHS {
        let path = root.path(p);
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("reading CA bundle", &path, &e)),
        };
        // Identity and content from the same open file.
        let meta = f
            .metadata()
            .map_err(|e| Error::io("reading CA bundle", &path, &e))?;
        let mut pem = Vec::with_capacity(meta.len() as usize);
        std::io::Read::read_to_end(&mut f, &mut pem)
            .map_err(|e| Error::io("reading CA bundle", &path, &e))?;
        return Ok(Some(CaBundle {
            path,
            pem,
            identity: Some(anchors::identity(&meta)),
        }));
    }
    Ok(None)
}

#[derive(Clone)]
pub(super) enum Roots {
    /// Decoded trust anchors (system bundle + caCerts).
    Specific(Arc<rustls::RootCertStore>),
    #[cfg(feature = "webpki-roots")]
    Bundled,
    NoneNeeded,
}

#[cfg(not(feature = "webpki-roots"))]
pub(super) fn no_roots() -> Result<Roots> {
    Err(Error::new(
        Code::Untrusted,
        format!(
            "no trusted CA certificates: no system CA bundle found ({}) and no caCerts configured",
            SYSTEM_CA_PATHS.join(", ")
        ),
    ))
}

#[cfg(feature = "webpki-roots")]
pub(super) fn no_roots() -> Result<Roots> {
    log::info!(target: LOG_TARGET, "no system CA bundle and no caCerts: using the bundled Mozilla root set");
    Ok(Roots::Bundled)
}

/// The DER of every `CERTIFICATE` block in PEM text, and how many blocks did
/// not decode (skipped). A system CA bundle is public data, so a plain
/// table-driven base64 decoder is used: the constant-time one behind
/// `ureq::tls::parse_pem` cost about 8 M instructions for Debian's 144
/// certificates, two thirds of a whole check-in (scripts/bench.d/50-http).
pub(super) fn pem_certificates(pem: &[u8]) -> (Vec<Vec<u8>>, usize) {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut bad = 0;
    let mut block: Option<Base64> = None;
    for line in pem.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line == BEGIN {
            if block.is_some() {
                bad += 1;
            }
            // A CA certificate is typically 0.8-1.5 KB of DER.
            block = Some(Base64 {
                out: Vec::with_capacity(2048),
                ..Base64::default()
            });
        } else if line == END {
            if let Some(b) = block.take() {
                match b.finish() {
                    Some(der) => out.push(der),
                    None => bad += 1,
                }
            }
        } else if let Some(b) = block.as_mut() {
            b.feed(line);
        }
    }
    if block.is_some() {
        bad += 1;
    }
    (out, bad)
}

pub(super) const B64_BAD: u8 = 0xFF;
pub(super) const B64_PAD: u8 = 0xFE;
/// Standard base64 alphabet: value of each byte, or `B64_BAD` / `B64_PAD`.
static B64: [u8; 256] = {
    let mut t = [B64_BAD; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < 64 {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t[b'=' as usize] = B64_PAD;
    t
};

/// Incremental standard-alphabet base64 decoding (padding optional).
#[derive(Default)]
pub(super) struct Base64 {
    pub(super) out: Vec<u8>,
    pub(super) acc: u32,
    pub(super) bits: u32,
    pub(super) ended: bool,
    pub(super) invalid: bool,
}

impl Base64 {
    /// Feed one line; a character outside base64 spoils the block.
    pub(super) fn feed(&mut self, line: &[u8]) {
        if self.invalid {
            return;
        }
        let mut i = 0;
        // Fast path: whole groups of four plain characters, 3 bytes each,
        // written in place (a call per group would cost more than decoding).
        if self.bits == 0 && !self.ended {
            let start = self.out.len();
            self.out.resize(start + line.len() / 4 * 3, 0);
            let mut o = start;
            while i + 4 <= line.len() {
                let g = &line[i..i + 4];
                let (a, b, c, d) = (
                    B64[usize::from(g[0])],
                    B64[usize::from(g[1])],
                    B64[usize::from(g[2])],
                    B64[usize::from(g[3])],
                );
                if (a | b | c | d) & 0xC0 != 0 {
                    break;
                }
                let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
                self.out[o] = (n >> 16) as u8;
                self.out[o + 1] = (n >> 8) as u8;
                self.out[o + 2] = n as u8;
                o += 3;
                i += 4;
            }
            self.out.truncate(o);
        }
        for &c in &line[i..] {
            let v = B64[usize::from(c)];
            if v == B64_PAD {
                self.ended = true;
                continue;
            }
            if v == B64_BAD || self.ended {
                self.invalid = true;
                return;
            }
            self.acc = (self.acc << 6) | u32::from(v);
            self.bits += 6;
            if self.bits >= 8 {
                self.bits -= 8;
                self.out.push((self.acc >> self.bits) as u8);
            }
        }
    }

    pub(super) fn finish(self) -> Option<Vec<u8>> {
        // Leftover bits must be padding zeros (fewer than a byte).
        let clean = !self.invalid && self.acc & ((1 << self.bits) - 1) == 0;
        (clean && !self.out.is_empty()).then_some(self.out)
    }
}
