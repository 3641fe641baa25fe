//! Test support: a throw-away PKI made with the `openssl` CLI at test time
//! (a native process, also under qemu): a CA, and leaf certificates that are
//! good, signed by another CA, expired, not yet valid, or for another name.

use std::path::{Path, PathBuf};
use std::process::Command;

pub use super::fault::Scratch;
/// The hub tests' name for a self-removing scratch directory.
#[allow(unused_imports)] // used by the hub tests only
pub use super::fault::Scratch as TempDir;

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA that signs leaves with any validity window.
pub struct Ca {
    pub dir: PathBuf,
    pub cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (is it installed?)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Ca {
    /// A new CA in `dir/name/`.
    pub fn new(scratch: &Scratch, name: &str) -> Ca {
        Ca::new_in(scratch.path(), name)
    }

    /// A new CA in `parent/name/`.
    pub fn new_in(parent: &Path, name: &str) -> Ca {
        let dir = parent.join(name);
        std::fs::create_dir_all(dir.join("newcerts")).expect("ca dir");
        std::fs::write(dir.join("index.txt"), "").expect("index");
        std::fs::write(dir.join("serial"), "1000\n").expect("serial");
        let cnf = format!(
            "[ca]\ndefault_ca = d\n[d]\ndir = {}\ndatabase = $dir/index.txt\n\
             new_certs_dir = $dir/newcerts\nserial = $dir/serial\ndefault_md = sha256\n\
             policy = p\nunique_subject = no\ncopy_extensions = none\n[p]\ncommonName = supplied\n",
            dir.display()
        );
        std::fs::write(dir.join("ca.cnf"), cnf).expect("ca.cnf");
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3650",
                "-subj",
                &format!("/CN=outpost test CA {name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Ca {
            cert: dir.join("ca.pem"),
            key: dir.join("ca.key"),
            dir,
        }
    }

    pub fn pem(&self) -> Vec<u8> {
        std::fs::read(&self.cert).expect("reading CA pem")
    }

    /// A server certificate for `san` (e.g. "IP:127.0.0.1,DNS:localhost")
    /// valid from `start` to `end` (openssl `YYYYMMDDHHMMSSZ`).
    pub fn leaf(&self, name: &str, san: &str, start: &str, end: &str) -> Leaf {
        let d = &self.dir;
        std::fs::write(
            d.join(format!("{name}.ext")),
            format!(
                "subjectAltName = {san}\nbasicConstraints = CA:FALSE\n\
                 keyUsage = digitalSignature\nextendedKeyUsage = serverAuth\n"
            ),
        )
        .expect("ext file");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            d,
            &[
                "ca",
                "-batch",
                "-notext",
                "-config",
                "ca.cnf",
                "-cert",
                "ca.pem",
                "-keyfile",
                "ca.key",
                "-in",
                &format!("{name}.csr"),
                "-out",
                &format!("{name}.pem"),
                "-startdate",
                start,
                "-enddate",
                end,
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
        let _ = &self.key;
        Leaf {
            cert: d.join(format!("{name}.pem")),
            key: d.join(format!("{name}.key")),
        }
    }

    /// Valid now for 127.0.0.1, ::1 and localhost.
    pub fn good(&self) -> Leaf {
        self.leaf("good", LOOPBACK_SAN, PAST, FUTURE)
    }
}

pub const LOOPBACK_SAN: &str = "IP:127.0.0.1,IP:::1,DNS:localhost";
/// A start date safely in the past and an end date safely in the future.
pub const PAST: &str = "20200101000000Z";
pub const FUTURE: &str = "20991231235959Z";

/// PEM files of one test PKI, as the hub tests use them.
pub struct TestPki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A CA that signed nothing the server presents.
    pub other_ca_cert: PathBuf,
}

/// A CA, a server certificate for 127.0.0.1, ::1 and localhost signed by it,
/// and an unrelated CA, all in `dir`.
pub fn make_pki(dir: &Path) -> TestPki {
    let ca = Ca::new_in(dir, "ca");
    let other = Ca::new_in(dir, "other-ca");
    let leaf = ca.good();
    TestPki {
        ca_cert: ca.cert,
        server_cert: leaf.cert,
        server_key: leaf.key,
        other_ca_cert: other.cert,
    }
}

/// A rustls client configuration trusting only the CA in `ca_pem` (with
/// rustls's in-memory session store, as the agent's), for tests that speak
/// TLS themselves: raw bytes a client library would refuse to send, or
/// connections counted one by one.
pub fn client_config(ca_pem: &Path) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(ca_pem).expect("ca");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(c.expect("ca pem")).expect("add root");
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    std::sync::Arc::new(cfg)
}
