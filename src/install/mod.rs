//! `outpost install` / `uninstall`: what the agent puts on a host or into an
//! OS image, as data. This file holds the fixed paths, the embedded `dist/`
//! files, the per-distribution trust-store table, the ELF machine check and
//! `wants()`, which turns the inputs (config, binary, scheduler, root kind)
//! into the list of files, links and directories that should exist.
//!
//! `plan.rs` compares that list with what is on disk (pure), `apply.rs`
//! performs the actions (the only I/O), `manifest.rs` records what was
//! created or replaced. Nothing here reads or writes the host.

pub mod apply;
pub mod initramfs;
pub mod manifest;
pub mod plan;

use crate::facts::os::OsRelease;
use std::rc::Rc;

/// The unit for `outpost run`, the first-boot unit and the cron line, as
/// they are in the repository's `dist/` folder.
pub const SERVICE_UNIT: &str = include_str!("../../dist/outpost.service");
pub const FIRSTBOOT_UNIT: &str = include_str!("../../dist/outpost-firstboot.service");
pub const CRON_FILE: &str = include_str!("../../dist/outpost.cron");

// The default paths live in one module (`paths.rs`); the names stay here.
pub use crate::paths::{
    BIN_PATH, CONFIG_DIR, CONFIG_PATH, CRON_PATH, DEFAULT_STATE_DIR, FIRSTBOOT_DROPIN_PATH,
    FIRSTBOOT_PATH, PROXY_DROPIN_PATH, PROXY_ENV_PATH, SERVICE_DROPIN_DIR, SERVICE_PATH,
    STATE_DROPIN_PATH, UNIT_DIR, WANTS_DIR,
};
/// Marker the first-boot unit leaves in the state directory.
pub const FIRSTBOOT_MARKER: &str = "firstboot-done";
pub const MANIFEST_NAME: &str = "manifest.json";
/// Where replaced foreign files are kept, inside the state directory.
pub const BACKUP_DIR_NAME: &str = "backup";

/// How check-ins are scheduled on the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduler {
    Systemd,
    Cron,
    None,
}

impl Scheduler {
    pub fn parse(s: &str) -> Option<Scheduler> {
        match s {
            "systemd" => Some(Scheduler::Systemd),
            "cron" => Some(Scheduler::Cron),
            "none" => Some(Scheduler::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheduler::Systemd => "systemd",
            Scheduler::Cron => "cron",
            Scheduler::None => "none",
        }
    }
}

/// One OS trust-store layout: where a CA goes and what makes it effective.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustStore {
    pub family: &'static str,
    pub dir: &'static str,
    /// File name suffix the update command picks up.
    pub ext: &'static str,
    /// Absolute path of the update command (run on a live root, or by the
    /// first-boot unit of an image).
    pub update: &'static [&'static str],
}

pub const TRUST_STORES: &[TrustStore] = &[
    TrustStore {
        family: "debian",
        dir: "/usr/local/share/ca-certificates",
        ext: "crt",
        // --fresh: without it Debian's script only adds links, so after a
        // certificate is removed (uninstall, fewer caCerts) its links stay
        // in /etc/ssl/certs, dangling (seen on a Debian 12 guest).
        update: &["/usr/sbin/update-ca-certificates", "--fresh"],
    },
    TrustStore {
        family: "rhel",
        dir: "/etc/pki/ca-trust/source/anchors",
        ext: "pem",
        update: &["/usr/bin/update-ca-trust", "extract"],
    },
    TrustStore {
        family: "suse",
        dir: "/etc/pki/trust/anchors",
        ext: "pem",
        update: &["/usr/sbin/update-ca-certificates"],
    },
    TrustStore {
        family: "alpine",
        dir: "/usr/local/share/ca-certificates",
        ext: "crt",
        update: &["/usr/sbin/update-ca-certificates"],
    },
];

/// The trust store of an OS, from os-release `ID` then `ID_LIKE`.
pub fn trust_store(os: &OsRelease) -> Option<&'static TrustStore> {
    let family = |id: &str| -> Option<&'static str> {
        Some(match id {
            "debian" | "ubuntu" | "raspbian" | "linuxmint" | "pop" => "debian",
            "rhel" | "centos" | "fedora" | "rocky" | "almalinux" | "ol" | "amzn" => "rhel",
            "suse" | "sles" | "opensuse" | "opensuse-leap" | "opensuse-tumbleweed" | "sl-micro" => {
                "suse"
            }
            "alpine" => "alpine",
            _ => return None,
        })
    };
    std::iter::once(os.id.as_str())
        .chain(os.id_like.iter().map(String::as_str))
        .find_map(family)
        .and_then(|f| TRUST_STORES.iter().find(|t| t.family == f))
}

/// ELF `e_machine` values outpost is built for.
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;

/// The architecture name of an ELF machine number.
pub fn machine_name(m: u16) -> String {
    match m {
        EM_X86_64 => "x86_64".into(),
        EM_AARCH64 => "aarch64".into(),
        3 => "i386".into(),
        40 => "arm".into(),
        243 => "riscv64".into(),
        other => format!("ELF machine {other}"),
    }
}

/// The ELF machine of a file's first bytes: the magic, then `e_machine`
/// (2 bytes at offset 18, in the byte order of `EI_DATA` at offset 5).
/// `None` when the bytes are not an ELF header.
pub fn elf_machine(head: &[u8]) -> Option<u16> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let b = [head[18], head[19]];
    match head[5] {
        1 => Some(u16::from_le_bytes(b)),
        2 => Some(u16::from_be_bytes(b)),
        _ => None,
    }
}

/// The ELF machine of `uname -m`.
pub fn machine_of_uname(m: &str) -> Option<u16> {
    match m {
        "x86_64" | "amd64" => Some(EM_X86_64),
        "aarch64" | "arm64" => Some(EM_AARCH64),
        _ => None,
    }
}

/// Files an image's architecture is read from: the first that is an ELF
/// file (after following links inside the image) decides.
pub const ARCH_PROBES: &[&str] = &[
    "/usr/bin/env",
    "/bin/sh",
    "/usr/bin/ls",
    "/bin/ls",
    "/bin/busybox",
    "/usr/lib/systemd/systemd",
    "/lib/systemd/systemd",
    "/sbin/init",
];

/// What a file to install holds: bytes in memory (the small files install
/// writes), or a file read in pieces when it is hashed and when it is
/// written (the binary: megabytes, never held whole in memory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Bytes(Rc<[u8]>),
    /// `sha256` and `len` as `Content::file` read them; the copy checks
    /// the hash again while it writes.
    File {
        path: std::path::PathBuf,
        len: u64,
        sha256: String,
    },
}

impl Content {
    /// Hash `path` in pieces.
    pub fn file(path: &std::path::Path) -> std::io::Result<Content> {
        let (sha256, len) = sha256_file(path)?;
        Ok(Content::File {
            path: path.to_path_buf(),
            len,
            sha256,
        })
    }

    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn sha256(&self) -> String {
        match self {
            Content::Bytes(b) => sha256_hex(b),
            Content::File { sha256, .. } => sha256.clone(),
        }
    }

    /// The bytes, when they are in memory.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Content::Bytes(b) => Some(b),
            Content::File { .. } => None,
        }
    }

    /// Write the content into `out`: bytes as they are; a file copied in
    /// pieces and hashed on the way, failing when it no longer has the
    /// hash it was planned with (it changed since).
    pub fn write_to(&self, out: &mut std::fs::File) -> std::io::Result<()> {
        use std::io::{Read, Write};
        match self {
            Content::Bytes(b) => out.write_all(b),
            Content::File { path, sha256, .. } => {
                let mut f = std::fs::File::open(path)?;
                let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
                let mut buf = vec![0u8; COPY_CHUNK];
                loop {
                    let n = match f.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    ctx.update(&buf[..n]);
                    out.write_all(&buf[..n])?;
                }
                if hex(ctx.finish().as_ref()) != *sha256 {
                    return Err(std::io::Error::other(format!(
                        "{} changed while it was being installed",
                        path.display()
                    )));
                }
                Ok(())
            }
        }
    }
}

impl From<Vec<u8>> for Content {
    fn from(v: Vec<u8>) -> Content {
        Content::Bytes(v.into())
    }
}

impl From<&[u8]> for Content {
    fn from(v: &[u8]) -> Content {
        Content::Bytes(v.into())
    }
}

/// The piece size of streamed copies and hashes.
pub const COPY_CHUNK: usize = 64 * 1024;

/// A file, symlink or directory that should exist after install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    File {
        path: String,
        data: Content,
        mode: u32,
        /// A trust-store entry (its change reruns the update command).
        trust: bool,
    },
    Link {
        path: String,
        target: String,
    },
    /// A directory with an exact mode (state and config directories).
    Dir {
        path: String,
        mode: u32,
    },
}

impl Want {
    pub fn path(&self) -> &str {
        match self {
            Want::File { path, .. } | Want::Link { path, .. } | Want::Dir { path, .. } => path,
        }
    }
}

/// What `wants` needs to know.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Installing into an image (not the running system): the first-boot
    /// unit is added and nothing is started.
    pub image: bool,
    pub scheduler: Scheduler,
    pub binary: Content,
    /// The operator's user-data to place (None: leave what is there).
    pub config: Option<Vec<u8>>,
    /// Host path of the state directory.
    pub state_dir: String,
    /// DER of each `caCerts` entry.
    pub ca_certs: Vec<Vec<u8>>,
    pub trust: Option<&'static TrustStore>,
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Vec<String>,
}

/// The files, links and directories of an install, in the order they are
/// created (directories first, the binary before the units that start it,
/// the enabling links last).
pub fn wants(s: &Spec) -> Vec<Want> {
    let mut w = vec![
        Want::Dir {
            path: s.state_dir.clone(),
            mode: 0o700,
        },
        Want::Dir {
            path: CONFIG_DIR.into(),
            mode: 0o755,
        },
        Want::File {
            path: BIN_PATH.into(),
            data: s.binary.clone(),
            mode: 0o755,
            trust: false,
        },
    ];
    if let Some(cfg) = &s.config {
        w.push(file(CONFIG_PATH, cfg.clone(), 0o600));
    }
    if let Some(ts) = s.trust {
        for (i, der) in s.ca_certs.iter().enumerate() {
            w.push(Want::File {
                path: format!("{}/outpost-{}.{}", ts.dir, i + 1, ts.ext),
                data: pem(der).into_bytes().into(),
                mode: 0o644,
                trust: true,
            });
        }
    }
    let proxy = proxy_env(s);
    match s.scheduler {
        Scheduler::Systemd => {
            w.push(file(SERVICE_PATH, SERVICE_UNIT.into(), 0o644));
            if let Some(env) = proxy {
                w.push(file(PROXY_ENV_PATH, env.into_bytes(), 0o600));
                w.push(file(
                    PROXY_DROPIN_PATH,
                    format!(
                        "# Written by outpost install from the site's proxy settings.\n\
                         [Service]\nEnvironmentFile={PROXY_ENV_PATH}\n"
                    )
                    .into_bytes(),
                    0o644,
                ));
            }
            if s.state_dir != DEFAULT_STATE_DIR {
                w.push(file(
                    STATE_DROPIN_PATH,
                    format!(
                        "# Written by outpost install: outpost.stateDir is not the default.\n\
                         [Service]\nReadWritePaths={}\n",
                        s.state_dir
                    )
                    .into_bytes(),
                    0o644,
                ));
            }
            if s.image {
                w.push(file(FIRSTBOOT_PATH, FIRSTBOOT_UNIT.into(), 0o644));
                if let (Some(ts), false) = (s.trust, s.ca_certs.is_empty()) {
                    w.push(file(
                        FIRSTBOOT_DROPIN_PATH,
                        format!(
                            "# Written by outpost install: make the site's CA certificates\n\
                             # effective before the first check-in.\n\
                             [Service]\nExecStartPre={}\n",
                            ts.update.join(" ")
                        )
                        .into_bytes(),
                        0o644,
                    ));
                }
            }
            w.push(Want::Link {
                path: format!("{WANTS_DIR}/outpost.service"),
                target: SERVICE_PATH.into(),
            });
            if s.image {
                w.push(Want::Link {
                    path: format!("{WANTS_DIR}/outpost-firstboot.service"),
                    target: FIRSTBOOT_PATH.into(),
                });
            }
        }
        Scheduler::Cron => w.push(file(CRON_PATH, CRON_FILE.into(), 0o644)),
        Scheduler::None => {}
    }
    w
}

fn file(path: &str, data: Vec<u8>, mode: u32) -> Want {
    Want::File {
        path: path.into(),
        data: data.into(),
        mode,
        trust: false,
    }
}

/// `KEY=value` lines for systemd's EnvironmentFile (both spellings, as
/// programs differ in which they read); None without any proxy.
fn proxy_env(s: &Spec) -> Option<String> {
    if s.http_proxy.is_none() && s.https_proxy.is_none() {
        return None;
    }
    let mut out = String::from("# Written by outpost install from stylus.site.network.\n");
    let mut put = |k: &str, v: &str| {
        out.push_str(&format!("{k}={v}\n{}={v}\n", k.to_ascii_lowercase()));
    };
    if let Some(v) = &s.http_proxy {
        put("HTTP_PROXY", v);
    }
    if let Some(v) = &s.https_proxy {
        put("HTTPS_PROXY", v);
    }
    if !s.no_proxy.is_empty() {
        put("NO_PROXY", &s.no_proxy.join(","));
    }
    Some(out)
}

/// PEM text of a DER certificate (64-column base64 lines).
pub fn pem(der: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                b64.push(A[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex SHA-256 and length of the file at `path`, read in pieces.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut len = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                ctx.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok((hex(ctx.finish().as_ref()), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_restart_prevent_equals_permanent_codes() {
        let line = SERVICE_UNIT
            .lines()
            .find_map(|l| l.strip_prefix("RestartPreventExitStatus="))
            .expect("outpost.service has RestartPreventExitStatus=");
        assert_eq!(
            line,
            crate::error::Code::permanent_list(),
            "dist/outpost.service RestartPreventExitStatus= must list the permanent codes"
        );
    }

    #[test]
    fn units_name_the_default_paths() {
        for (name, text, must) in [
            (
                "outpost.service",
                SERVICE_UNIT,
                "ExecStart=/usr/local/bin/outpost run",
            ),
            ("outpost.service", SERVICE_UNIT, "Type=notify"),
            (
                "outpost.service",
                SERVICE_UNIT,
                "ReadWritePaths=/var/lib/outpost /usr/local/bin",
            ),
            (
                "firstboot",
                FIRSTBOOT_UNIT,
                "ConditionPathExists=!/var/lib/outpost/firstboot-done",
            ),
            (
                "firstboot",
                FIRSTBOOT_UNIT,
                "ExecStartPost=/bin/touch /var/lib/outpost/firstboot-done",
            ),
            (
                "firstboot",
                FIRSTBOOT_UNIT,
                "ExecStart=-/usr/local/bin/outpost checkin",
            ),
            (
                "cron",
                CRON_FILE,
                "root [ ! -x /usr/local/bin/outpost.prev ] || /usr/local/bin/outpost.prev upgrade-guard; /usr/local/bin/outpost checkin --splay 240",
            ),
            (
                "outpost.service",
                SERVICE_UNIT,
                "ExecStartPre=-/usr/local/bin/outpost.prev upgrade-guard",
            ),
            ("outpost.service", SERVICE_UNIT, "SuccessExitStatus=75"),
            ("outpost.service", SERVICE_UNIT, "RestartForceExitStatus=75"),
        ] {
            assert!(text.contains(must), "{name} lacks {must:?}");
        }
        assert_eq!(
            format!("{DEFAULT_STATE_DIR}/{FIRSTBOOT_MARKER}"),
            "/var/lib/outpost/firstboot-done",
            "marker path in the unit"
        );
    }

    #[test]
    fn elf_machine_reads_offset_18() {
        let mut x86 = vec![0u8; 64];
        x86[..4].copy_from_slice(b"\x7fELF");
        x86[5] = 1;
        x86[18] = 62;
        let mut arm = x86.clone();
        arm[18] = 183;
        let mut be = x86.clone();
        be[5] = 2;
        be[18] = 0;
        be[19] = 183;
        let cases: &[(&str, &[u8], Option<u16>)] = &[
            ("x86_64 LE", &x86, Some(EM_X86_64)),
            ("aarch64 LE", &arm, Some(EM_AARCH64)),
            ("big-endian", &be, Some(183)),
            ("short", &x86[..19], None),
            ("script", b"#!/bin/sh\necho hello world here\n", None),
            (
                "bad EI_DATA",
                &{
                    let mut v = x86.clone();
                    v[5] = 9;
                    v
                },
                None,
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(elf_machine(bytes), *want, "case {name}");
        }
        assert_eq!(machine_name(EM_AARCH64), "aarch64");
        assert_eq!(machine_of_uname("x86_64"), Some(EM_X86_64));
        assert_eq!(machine_of_uname("riscv64"), None);
    }

    #[test]
    fn trust_store_by_os_release() {
        let os = |id: &str, like: &[&str]| OsRelease {
            id: id.into(),
            id_like: like.iter().map(|s| s.to_string()).collect(),
            ..OsRelease::default()
        };
        let cases = [
            ("ubuntu", vec![], Some("/usr/local/share/ca-certificates")),
            ("debian", vec![], Some("/usr/local/share/ca-certificates")),
            (
                "rocky",
                vec!["rhel", "centos", "fedora"],
                Some("/etc/pki/ca-trust/source/anchors"),
            ),
            (
                "almalinux",
                vec![],
                Some("/etc/pki/ca-trust/source/anchors"),
            ),
            ("sles", vec![], Some("/etc/pki/trust/anchors")),
            (
                "opensuse-leap",
                vec!["suse"],
                Some("/etc/pki/trust/anchors"),
            ),
            ("alpine", vec![], Some("/usr/local/share/ca-certificates")),
            (
                "kairos-thing",
                vec!["ubuntu"],
                Some("/usr/local/share/ca-certificates"),
            ),
            ("haiku", vec![], None),
        ];
        for (id, like, want) in cases {
            assert_eq!(trust_store(&os(id, &like)).map(|t| t.dir), want, "os {id}");
        }
    }

    #[test]
    fn pem_round_trips() {
        use rustls_pki_types::pem::PemObject;
        for der in [
            vec![1u8],
            vec![1, 2],
            vec![1, 2, 3],
            (0..=255u8).collect::<Vec<_>>(),
        ] {
            let text = pem(&der);
            let back = rustls_pki_types::CertificateDer::from_pem_slice(text.as_bytes())
                .expect("parse own PEM");
            assert_eq!(back.as_ref(), der.as_slice(), "len {}", der.len());
            assert!(
                text.lines().all(|l| l.len() <= 64),
                "line width, len {}",
                der.len()
            );
        }
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "FIPS 180-2 abc"
        );
    }

    #[test]
    fn a_file_is_hashed_and_copied_in_pieces_and_a_change_is_caught() {
        let dir = std::env::temp_dir().join(format!("outpost-content-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let src = dir.join("bin");
        // Several pieces and a partial one.
        let data: Vec<u8> = (0..COPY_CHUNK * 3 + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).expect("write");
        let c = Content::file(&src).expect("hashes");
        assert_eq!(c.len(), data.len() as u64);
        assert_eq!(c.sha256(), sha256_hex(&data));
        assert_eq!(c.bytes(), None, "not held in memory");
        let out = dir.join("out");
        let mut f = std::fs::File::create(&out).expect("create");
        c.write_to(&mut f).expect("copies");
        assert_eq!(std::fs::read(&out).expect("read"), data);
        // Changed after planning: the copy fails instead of installing it.
        std::fs::write(&src, b"other").expect("write");
        let mut f = std::fs::File::create(&out).expect("create");
        let e = c.write_to(&mut f).expect_err("changed");
        assert!(
            e.to_string()
                .contains("changed while it was being installed"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn spec(image: bool, scheduler: Scheduler) -> Spec {
        Spec {
            image,
            scheduler,
            binary: b"bin"[..].into(),
            config: Some(b"#cloud-config\n".to_vec()),
            state_dir: DEFAULT_STATE_DIR.into(),
            ca_certs: vec![vec![1, 2, 3]],
            trust: TRUST_STORES.first(),
            http_proxy: Some("http://proxy:3128".into()),
            https_proxy: None,
            no_proxy: vec!["10.0.0.0/8".into(), ".local".into()],
        }
    }

    #[test]
    fn wants_by_scheduler_and_root_kind() {
        let paths =
            |s: &Spec| -> Vec<String> { wants(s).iter().map(|w| w.path().to_string()).collect() };
        let cases: &[(&str, Spec, &[&str], &[&str])] = &[
            (
                "live systemd",
                spec(false, Scheduler::Systemd),
                &[
                    SERVICE_PATH,
                    PROXY_DROPIN_PATH,
                    PROXY_ENV_PATH,
                    "/etc/systemd/system/multi-user.target.wants/outpost.service",
                    "/usr/local/share/ca-certificates/outpost-1.crt",
                ],
                &[FIRSTBOOT_PATH, CRON_PATH, FIRSTBOOT_DROPIN_PATH],
            ),
            (
                "image systemd",
                spec(true, Scheduler::Systemd),
                &[
                    SERVICE_PATH,
                    FIRSTBOOT_PATH,
                    FIRSTBOOT_DROPIN_PATH,
                    "/etc/systemd/system/multi-user.target.wants/outpost-firstboot.service",
                ],
                &[CRON_PATH],
            ),
            (
                "cron",
                spec(false, Scheduler::Cron),
                &[CRON_PATH, BIN_PATH, CONFIG_PATH],
                &[SERVICE_PATH, PROXY_DROPIN_PATH],
            ),
            (
                "none",
                spec(true, Scheduler::None),
                &[BIN_PATH],
                &[SERVICE_PATH, CRON_PATH, FIRSTBOOT_PATH],
            ),
        ];
        for (name, s, has, lacks) in cases {
            let p = paths(s);
            for h in *has {
                assert!(p.iter().any(|x| x == h), "{name}: lacks {h}; has {p:?}");
            }
            for l in *lacks {
                assert!(!p.iter().any(|x| x == l), "{name}: has {l}");
            }
        }
        let env = wants(&spec(false, Scheduler::Systemd))
            .into_iter()
            .find_map(|w| match w {
                Want::File {
                    path, data, mode, ..
                } if path == PROXY_ENV_PATH => Some((data, mode)),
                _ => None,
            })
            .expect("proxy env");
        assert_eq!(env.1, 0o600, "proxy env mode");
        assert_eq!(
            String::from_utf8_lossy(env.0.bytes().expect("in memory")),
            "# Written by outpost install from stylus.site.network.\n\
             HTTP_PROXY=http://proxy:3128\nhttp_proxy=http://proxy:3128\n\
             NO_PROXY=10.0.0.0/8,.local\nno_proxy=10.0.0.0/8,.local\n",
            "proxy env text"
        );
    }
}
