//! The PostgreSQL backend: connecting (the password from a file or the
//! environment, never from argv), and the versioned schema migrations,
//! applied at start under a database-wide advisory lock so that several
//! hubs starting at once on one database migrate it exactly once.
//!
//! The `postgres` crate is synchronous to us: it drives its own
//! current-thread runtime inside each call, on the calling thread.
//!
//! Must not put the password (or a URL that holds one) in an error or a log.

use outpost::error::{Code, Error, Result};
use std::str::FromStr;

/// The environment variable naming a file that holds the password.
pub const PASSWORD_FILE_ENV: &str = "OUTPOST_HUB_DB_PASSWORD_FILE";
/// The environment variable holding the password itself.
pub const PASSWORD_ENV: &str = "OUTPOST_HUB_DB_PASSWORD";
/// The directory for the hub's local files with PostgreSQL (the key of the
/// sealed cluster secrets, release artifacts); default: the working one.
pub const STATE_DIR_ENV: &str = "OUTPOST_HUB_STATE_DIR";

/// The advisory lock key of the migrations ("outpost" in ASCII).
const MIGRATION_LOCK: i64 = 0x006f_7574_706f_7374;

/// Whether `--db` names a PostgreSQL database rather than a SQLite file.
pub fn is_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// The parsed connection settings and a printable name without secrets.
pub struct Target {
    pub config: postgres::Config,
    pub display: String,
    /// The rustls connector (ring), unless `sslmode=disable`.
    pub tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

/// Parse `--db postgres://USER@HOST:PORT/DB?sslmode=disable` and add the
/// password from `$OUTPOST_HUB_DB_PASSWORD_FILE` or
/// `$OUTPOST_HUB_DB_PASSWORD` (a password in the URL is refused: it would be
/// in argv, visible to every user in ps).
pub fn target(url: &str) -> Result<Target> {
    // sslmode's verify-ca and verify-full and sslrootcert are libpq's, not
    // the driver's: taken out of the URL here, the rest goes to the driver.
    let (url, tls_opts) = split_tls_options(url)?;
    // The error of the parser may quote the URL: never repeat it.
    let mut config = postgres::Config::from_str(&url).map_err(|_| {
        Error::usage(
            "--db: not a valid postgres:// URL (postgres://USER@HOST:PORT/DATABASE[?sslmode=MODE&sslrootcert=FILE])",
        )
    })?;
    if config.get_password().is_some() {
        return Err(Error::usage(format!(
            "--db: the URL holds a password; put it in a file named by {PASSWORD_FILE_ENV} (mode 0600) or in {PASSWORD_ENV}, never on the command line"
        )));
    }
    let tls = tls::connector(&tls_opts)?;
    config.ssl_mode(match tls_opts.mode {
        SslMode::Disable => postgres::config::SslMode::Disable,
        SslMode::Prefer => postgres::config::SslMode::Prefer,
        _ => postgres::config::SslMode::Require,
    });
    if let Ok(file) = std::env::var(PASSWORD_FILE_ENV) {
        let path = std::path::Path::new(&file);
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("reading the database password file", path, &e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            if mode & 0o007 != 0 {
                return Err(Error::new(
                    Code::NotPermitted,
                    format!(
                        "{}: mode {mode:04o}, others may read the database password: chmod 600 {}",
                        path.display(),
                        path.display()
                    ),
                ));
            }
        }
        let pw = text.trim_end_matches(['\n', '\r']);
        config.password(pw);
    } else if let Ok(pw) = std::env::var(PASSWORD_ENV) {
        config.password(pw);
    }
    if config.get_application_name().is_none() {
        config.application_name("outpost-hub");
    }
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let display = format!(
        "postgres://{}@{}:{port}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    );
    Ok(Target {
        config,
        display,
        tls,
    })
}

/// libpq's `sslmode` (the driver knows disable, prefer and require only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Plain text.
    Disable,
    /// TLS when the server offers it, else plain text; certificate not
    /// checked (libpq's default, as here when the URL names no mode).
    Prefer,
    /// TLS or no connection; the certificate is checked against
    /// `sslrootcert` when one is given (as libpq does), else not at all.
    Require,
    /// TLS, the certificate signed by the CA in `sslrootcert`.
    VerifyCa,
    /// TLS, the certificate signed by that CA and naming the host.
    VerifyFull,
}

/// The TLS settings of `--db`.
#[derive(Debug)]
pub struct TlsOptions {
    pub mode: SslMode,
    /// The CA file (`sslrootcert=`), PEM.
    pub root_cert: Option<std::path::PathBuf>,
}

/// Take `sslmode` and `sslrootcert` out of the URL's query (`KEY=VALUE`
/// pairs joined by `&`; the path in `sslrootcert` is taken as written,
/// without percent-decoding).
fn split_tls_options(url: &str) -> Result<(String, TlsOptions)> {
    let mut opts = TlsOptions {
        mode: SslMode::Prefer,
        root_cert: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), opts));
    };
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                opts.mode = match value {
                    "disable" => SslMode::Disable,
                    "prefer" => SslMode::Prefer,
                    "require" => SslMode::Require,
                    "verify-ca" => SslMode::VerifyCa,
                    "verify-full" => SslMode::VerifyFull,
                    _ => {
                        return Err(Error::usage(format!(
                            "--db: sslmode={value}: not one of disable, prefer, require, verify-ca, verify-full"
                        )))
                    }
                }
            }
            "sslrootcert" if value == "system" => {
                return Err(Error::usage(
                    "--db: sslrootcert=system: the hub does not read the system's CA store; name the CA file that signed the database's certificate",
                ))
            }
            "sslrootcert" if !value.is_empty() => opts.root_cert = Some(value.into()),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" => {
                return Err(Error::usage(format!(
                    "--db: {key}: client certificates and CRLs are not supported; the hub logs in with a password (sslmode and sslrootcert are)"
                )))
            }
            _ => rest.push(pair),
        }
    }
    if matches!(opts.mode, SslMode::VerifyCa | SslMode::VerifyFull) && opts.root_cert.is_none() {
        return Err(Error::usage(
            "--db: sslmode=verify-ca and verify-full need sslrootcert=FILE, the CA that signed the database's certificate (PEM)",
        ));
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, opts))
}

/// Connect (TCP, with TLS as `sslmode` says, or a unix socket).
pub fn connect(t: &Target) -> Result<postgres::Client> {
    let mut cfg = t.config.clone();
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(std::time::Duration::from_secs(10));
    }
    let res = match &t.tls {
        Some(tls) => cfg.connect(tls.clone()),
        None => cfg.connect(postgres::NoTls),
    };
    res.map_err(|e| match tls::failure(&e) {
        // Exit 16, as the agent's own "server certificate not trusted".
        Some(why) => Error::new(
            Code::Untrusted,
            format!("connecting to database {}: TLS: {why}", t.display),
        ),
        None => Error::new(
            Code::LocalIo,
            format!(
                "connecting to database {}: {}",
                t.display,
                crate::store::Error::Pg(e)
            ),
        ),
    })
}

/// TLS to PostgreSQL with rustls and ring (the hub's own TLS stack),
/// through the driver's connector crate (tokio-postgres-rustls).
mod tls {
    use super::{SslMode, TlsOptions};
    use outpost::error::{Error, Result};
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
    use std::sync::Arc;
    use tokio_postgres_rustls::MakeRustlsConnect;

    pub fn connector(opts: &TlsOptions) -> Result<Option<MakeRustlsConnect>> {
        if opts.mode == SslMode::Disable {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match &opts.root_cert {
            // require and prefer without a CA: encrypted, not authenticated
            // (libpq's meaning; only verify-full stops a man in the middle).
            None => Arc::new(Unverified(provider.clone())),
            Some(path) => {
                let ca = path.display();
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
                    .map_err(|e| {
                        use rustls::pki_types::pem::Error as P;
                        let why = match e {
                            P::Io(io) => outpost::error::io_text(&io),
                            P::NoItemsFound => "no PEM certificate found".into(),
                            other => format!("not valid PEM ({other:?})"),
                        };
                        Error::config(format!("--db: sslrootcert {ca}: {why}"))
                    })?;
                let mut roots = rustls::RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(Error::config(format!(
                        "--db: sslrootcert {ca}: no usable CA certificate in it"
                    )));
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| Error::config(format!("--db: sslrootcert {ca}: {e}")))?;
                if opts.mode == SslMode::VerifyFull {
                    webpki
                } else {
                    // verify-ca, and require with a CA file (as in libpq).
                    Arc::new(AnyName(webpki))
                }
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config(format!("--db: TLS set-up: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Some(MakeRustlsConnect::new(config)))
    }

    /// Why a connection failed, when TLS made it fail: the server offered
    /// none under require, or its certificate was not accepted.
    pub fn failure(e: &postgres::Error) -> Option<String> {
        let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
        while let Some(s) = src {
            // io::Error's source() skips the error it wraps: look inside.
            let inner = s
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|e| e as &(dyn std::error::Error + 'static));
            if let Some(r) = inner.unwrap_or(s).downcast_ref::<rustls::Error>() {
                return Some(match r {
                    rustls::Error::InvalidCertificate(c) => certificate_text(c),
                    other => other.to_string(),
                });
            }
            if s.to_string() == "server does not support TLS" {
                return Some(
                    "the database server does not offer TLS (its ssl setting is off)".into(),
                );
            }
            src = s.source();
        }
        None
    }

    fn certificate_text(c: &CertificateError) -> String {
        match c {
            CertificateError::UnknownIssuer => {
                "the database's certificate is not signed by the CA in sslrootcert".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the database's certificate does not name the host in --db (verify-full)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the database's certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the database's certificate is not valid yet (check the clock)".into()
            }
            other => format!("the database's certificate is not accepted: {other:?}"),
        }
    }

    /// verify-ca: the chain to the CA is checked, the name is not.
    #[derive(Debug)]
    struct AnyName(Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for AnyName {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            // webpki checks the chain before the name: a name error means
            // the chain was good.
            match self
                .0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }

    /// require (and prefer) without a CA: any certificate; the handshake's
    /// signatures are still checked (the session is encrypted to whoever
    /// holds the certificate's key).
    #[derive(Debug)]
    struct Unverified(Arc<CryptoProvider>);

    impl ServerCertVerifier for Unverified {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

/// The schema, one entry per version; a version once released is never
/// edited, a change is a new entry. Text columns collate as bytes ("C"),
/// so ORDER BY (canaries are the first devices by host ID) is the same as
/// in SQLite.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tokens (
    hash TEXT COLLATE "C" PRIMARY KEY,
    id TEXT COLLATE "C" NOT NULL UNIQUE,
    project TEXT COLLATE "C",
    created BIGINT NOT NULL,
    expires BIGINT,
    revoked BIGINT NOT NULL DEFAULT 0,
    uses BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE devices (
    host_id TEXT COLLATE "C" PRIMARY KEY,
    project TEXT COLLATE "C" NOT NULL,
    hostname TEXT NOT NULL,
    cred_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    token_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    tags TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    inventory TEXT NOT NULL,
    inventory_hash TEXT NOT NULL,
    inventory_wanted BIGINT NOT NULL DEFAULT 0,
    healthy BIGINT NOT NULL DEFAULT 1,
    failing TEXT NOT NULL DEFAULT '[]',
    interval_ms BIGINT,
    state TEXT NOT NULL DEFAULT 'active',
    peer TEXT NOT NULL DEFAULT '',
    registered BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    checkins BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE boots (
    host_id TEXT COLLATE "C" PRIMARY KEY,
    beacon TEXT NOT NULL,
    received BIGINT NOT NULL
);
CREATE TABLE cluster_specs (
    name TEXT COLLATE "C" PRIMARY KEY,
    distro TEXT NOT NULL,
    version TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    interface TEXT,
    pod_cidr TEXT,
    service_cidr TEXT,
    two_node BIGINT NOT NULL DEFAULT 0,
    created BIGINT NOT NULL,
    min_agent TEXT NOT NULL DEFAULT ''
);
CREATE TABLE cluster_members (
    cluster TEXT COLLATE "C" NOT NULL REFERENCES cluster_specs(name),
    host_id TEXT COLLATE "C" NOT NULL UNIQUE,
    pool TEXT NOT NULL,
    seq BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT ''
);
CREATE TABLE cluster_secrets (
    cluster TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    sealed TEXT NOT NULL,
    PRIMARY KEY (cluster, kind)
);
CREATE TABLE cluster_leaving (
    host_id TEXT COLLATE "C" PRIMARY KEY,
    cluster TEXT NOT NULL,
    distro TEXT NOT NULL,
    since BIGINT NOT NULL
);
INSERT INTO meta(key, value) VALUES('schema', '1');
"#,
    ),
    // Server-assigned phases (slots.rs): each device's registration
    // ordinal, from a sequence (nextval never conflicts between hubs);
    // the devices already there numbered in registration order.
    (
        2,
        r#"
ALTER TABLE devices ADD COLUMN slot BIGINT;
CREATE SEQUENCE outpost_slot_seq MINVALUE 0 START 0;
UPDATE devices SET slot = r.n FROM
    (SELECT host_id, ROW_NUMBER() OVER (ORDER BY registered, host_id) - 1 AS n FROM devices) r
    WHERE devices.host_id = r.host_id;
SELECT setval('outpost_slot_seq', (SELECT COUNT(*) FROM devices), false);
UPDATE meta SET value='2' WHERE key='schema';
"#,
    ),
];

/// Apply the migrations this hub knows and the database lacks, each in its
/// own transaction, all under `pg_advisory_lock` (held by this session only
/// while migrating; other hubs starting now wait for it, then find the
/// work done). A database migrated by a newer hub is refused.
pub fn migrate(c: &mut postgres::Client, display: &str) -> Result<()> {
    let err = |e: postgres::Error| {
        Error::new(
            Code::LocalIo,
            format!(
                "migrating database {display}: {}",
                crate::store::Error::Pg(e)
            ),
        )
    };
    c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(err)?;
    let r = migrate_locked(c, display);
    let unlock = c.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    r?;
    unlock.map_err(err)?;
    Ok(())
}

fn migrate_locked(c: &mut postgres::Client, display: &str) -> Result<()> {
    let err = |e: postgres::Error| {
        Error::new(
            Code::LocalIo,
            format!(
                "migrating database {display}: {}",
                crate::store::Error::Pg(e)
            ),
        )
    };
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS outpost_migrations (version BIGINT PRIMARY KEY, applied BIGINT NOT NULL)",
    )
    .map_err(err)?;
    let have: i64 = c
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM outpost_migrations",
            &[],
        )
        .map_err(err)?
        .get(0);
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if have > known {
        return Err(Error::new(
            Code::Config,
            format!(
                "database {display}: schema version {have} is newer than this hub's {known} (made by another hub version)"
            ),
        ));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > have) {
        let mut tx = c.transaction().map_err(err)?;
        tx.batch_execute(sql).map_err(err)?;
        tx.execute(
            "INSERT INTO outpost_migrations(version, applied) VALUES($1, EXTRACT(EPOCH FROM now())::BIGINT)",
            &[version],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        log::info!("database {display}: schema migrated to version {version}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> std::result::Result<(String, SslMode, Option<String>), (i32, String)> {
        split_tls_options(url)
            .map(|(u, o)| (u, o.mode, o.root_cert.map(|p| p.display().to_string())))
            .map_err(|e| (e.code() as i32, e.message().to_string()))
    }

    #[test]
    fn tls_options_come_out_of_the_url_and_the_rest_stays() {
        let base = "postgres://u@db:5432/d";
        assert_eq!(split(base), Ok((base.into(), SslMode::Prefer, None)));
        assert_eq!(
            split(&format!("{base}?sslmode=disable")),
            Ok((base.into(), SslMode::Disable, None))
        );
        assert_eq!(
            split(&format!(
                "{base}?connect_timeout=5&sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x"
            )),
            Ok((
                format!("{base}?connect_timeout=5&application_name=x"),
                SslMode::VerifyFull,
                Some("/etc/ca.pem".into())
            ))
        );
        assert_eq!(
            split(&format!("{base}?sslmode=verify-ca&sslrootcert=ca.pem")).map(|r| r.1),
            Ok(SslMode::VerifyCa)
        );
        assert_eq!(
            split(&format!("{base}?sslmode=require")).map(|r| r.1),
            Ok(SslMode::Require)
        );
    }

    #[test]
    fn bad_tls_options_are_usage_errors_with_one_line() {
        let base = "postgres://u@db:5432/d";
        for (q, says) in [
            ("sslmode=verify-full", "need sslrootcert=FILE"),
            ("sslmode=verify-ca&sslrootcert=", "need sslrootcert=FILE"),
            ("sslmode=allow", "sslmode=allow: not one of"),
            (
                "sslmode=verify-full&sslrootcert=system",
                "sslrootcert=system",
            ),
            ("sslcert=/c.pem", "sslcert: client certificates"),
            ("sslkey=/k.pem", "sslkey: client certificates"),
        ] {
            let (code, msg) = split(&format!("{base}?{q}")).expect_err(q);
            assert_eq!(code, 2, "{q}: {msg}");
            assert!(msg.contains(says) && !msg.contains('\n'), "{q}: {msg}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_configuration_error() {
        let dir = std::env::temp_dir().join(format!("outpost-pg-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        for path in [dir.join("missing.pem"), empty] {
            let opts = TlsOptions {
                mode: SslMode::VerifyFull,
                root_cert: Some(path.clone()),
            };
            let e = tls::connector(&opts).err().expect("refused");
            assert_eq!(e.code() as i32, 3, "{e}");
            assert!(e.message().contains(&path.display().to_string()), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
