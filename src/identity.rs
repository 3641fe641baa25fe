//! The host ID, derived as the platform documents it, and kept in the
//! state directory (`host-id`) so restarts keep a random one.
//!
//! Order: (1) `stylus.site.name` when set and not `"$random"`, used as given;
//! (2) the first `deviceUIDPaths` entry (default
//! `/sys/class/dmi/id/product_uuid`) whose file is readable under the root
//! and yields a non-empty value: the file's text with surrounding white space
//! trimmed, or, when the entry has a `regex`, the whole leftmost match of it
//! (not a capture group: the platform's example `edge.*` only works as a
//! whole match), giving `<prefix>-<value>`; (3) a random UUID v4,
//! `<prefix>-<uuid>`, reused from `host-id` when one is stored there.
//! Then the characters `/ ? # & + % , $ ~ ! @ * ( ) { } | = ; : < > ' . ^ "`
//! (and control characters, an addition) are removed and the result is cut
//! to 128 characters. Only the first 64 KiB of a deviceUIDPaths file is read.
//!
//! This module touches only the state directory's `host-id` (through
//! fsutil) and the files named by deviceUIDPaths; it must not log their
//! contents above debug level.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::sys::{Host, Root};
use std::path::PathBuf;

pub const DEFAULT_UID_PATH: &str = "/sys/class/dmi/id/product_uuid";
pub const HOST_ID_FILE: &str = "host-id";
pub const MAX_LEN: usize = 128;
pub const FORBIDDEN: &[char] = &[
    '/', '?', '#', '&', '+', '%', ',', '$', '~', '!', '@', '*', '(', ')', '{', '}', '|', '=', ';',
    ':', '<', '>', '\'', '.', '^', '"',
];
/// `stylus.site.name` value that asks for a random ID.
pub const RANDOM: &str = "$random";

/// Where the ID came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `stylus.site.name`.
    Name,
    /// A deviceUIDPaths file (host path).
    UidPath(String),
    /// Random, newly made now.
    RandomNew,
    /// Random (or earlier), read back from `host-id`.
    Stored,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostId {
    pub id: String,
    pub origin: Origin,
}

/// Remove the forbidden characters and cut to 128 characters. Control
/// characters (NUL padding of a firmware field, a stray newline) go too:
/// an addition to the platform's list, as no ID can sensibly hold them.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| !FORBIDDEN.contains(c) && !c.is_control())
        .take(MAX_LEN)
        .collect()
}

/// The value one deviceUIDPaths entry yields from a file's text.
pub fn uid_value(text: &str, regex: Option<&str>) -> Option<String> {
    let text = text.trim();
    let v = match regex {
        None => text.to_string(),
        Some(r) => regex_lite::Regex::new(r)
            .ok()?
            .find(text)?
            .as_str()
            .to_string(),
    };
    (!v.is_empty()).then_some(v)
}

/// Steps (1) and (2): the ID from config and files, or None (random).
pub fn derive(root: &Root, cfg: &Config) -> Option<HostId> {
    if let Some(name) = cfg.name.value.as_deref() {
        if name != RANDOM {
            let id = sanitize(name);
            if !id.is_empty() {
                return Some(HostId {
                    id,
                    origin: Origin::Name,
                });
            }
        } else {
            return None;
        }
    }
    let default = [crate::config::UidPath {
        name: DEFAULT_UID_PATH.to_string(),
        regex: None,
    }];
    let paths = if cfg.device_uid_paths.value.is_empty() {
        &default[..]
    } else {
        &cfg.device_uid_paths.value[..]
    };
    for p in paths {
        let Some(text) = read_small(root, &p.name) else {
            log::debug!("identity: {} not readable", p.name);
            continue;
        };
        let Some(v) = uid_value(&text, p.regex.as_deref()) else {
            log::debug!("identity: {} gave no value", p.name);
            continue;
        };
        let id = sanitize(&format!("{}-{v}", cfg.prefix.value));
        if id.len() > cfg.prefix.value.len() + 1 {
            return Some(HostId {
                id,
                origin: Origin::UidPath(p.name.clone()),
            });
        }
    }
    None
}

/// Largest part of a deviceUIDPaths file that is read (a misconfigured
/// `/dev/zero` must not hang or fill memory).
pub const MAX_UID_FILE: u64 = 64 * 1024;

/// The first MAX_UID_FILE bytes of a file under the root, as lossy UTF-8.
fn read_small(root: &Root, host_path: &str) -> Option<String> {
    use std::io::Read;
    let f = std::fs::File::open(root.path(host_path)).ok()?;
    let mut buf = Vec::new();
    f.take(MAX_UID_FILE).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// A UUID v4 from the host's random source, lowercase hyphenated.
pub fn random_uuid(host: &dyn Host) -> std::io::Result<String> {
    let mut b = [0u8; 16];
    host.fill_random(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The `host-id` file under the root.
pub fn id_file(root: &Root, cfg: &Config) -> PathBuf {
    root.path(&cfg.state_dir.value).join(HOST_ID_FILE)
}

/// The host ID: derived, or read back, or made and stored. A derived ID is
/// stored too (when it differs), but failing to store it is only a warning;
/// failing to store a new random ID is an error, since it would not last.
pub fn host_id(root: &Root, cfg: &Config, host: &dyn Host) -> Result<HostId> {
    let file = id_file(root, cfg);
    let stored = std::fs::read_to_string(&file)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && sanitize(s) == *s);
    if let Some(h) = derive(root, cfg) {
        if stored.as_deref() != Some(h.id.as_str()) {
            if let Err(e) = store(root, cfg, &h.id) {
                log::warn!("{e}");
            }
        }
        return Ok(h);
    }
    if let Some(id) = stored {
        return Ok(HostId {
            id,
            origin: Origin::Stored,
        });
    }
    let uuid = random_uuid(host).map_err(|e| Error::io("reading random bytes for", &file, &e))?;
    let id = sanitize(&format!("{}-{uuid}", cfg.prefix.value));
    store(root, cfg, &id)?;
    Ok(HostId {
        id,
        origin: Origin::RandomNew,
    })
}

fn store(root: &Root, cfg: &Config, id: &str) -> Result<()> {
    let dir = root.path(&cfg.state_dir.value);
    crate::fsutil::ensure_dir(&dir, crate::fsutil::SECRET_DIR_MODE)?;
    crate::fsutil::write_atomic(&dir.join(HOST_ID_FILE), format!("{id}\n").as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{UidPath, Val};
    use crate::sys::RealHost;

    fn cfg(name: Option<&str>, prefix: &str, paths: &[(&str, Option<&str>)]) -> Config {
        let mut c = Config::default();
        c.name.value = name.map(String::from);
        c.prefix.value = prefix.to_string();
        c.device_uid_paths = Val {
            value: paths
                .iter()
                .map(|(n, r)| UidPath {
                    name: n.to_string(),
                    regex: r.map(String::from),
                })
                .collect(),
            source: crate::config::Source::File,
        };
        c
    }

    fn tree(tag: &str, files: &[(&str, &str)]) -> (PathBuf, Root) {
        let d = std::env::temp_dir().join(format!("outpost-id-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        let root = Root::new(&d);
        for (p, text) in files {
            let full = root.path(p);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(full, text).expect("write");
        }
        (d, root)
    }

    #[test]
    fn sanitize_removes_every_forbidden_char_and_truncates() {
        let cases: &[(&str, &str)] = &[
            ("edge-abc", "edge-abc"),
            (
                "a/b?c#d&e+f%g,h$i~j!k@l*m(n)o{p}q|r=s;t:u<v>w'x.y^z\"",
                "abcdefghijklmnopqrstuvwxyz",
            ),
            (
                "edge-4C4C4544-0034-3010-8052-B4C04F564433",
                "edge-4C4C4544-0034-3010-8052-B4C04F564433",
            ),
            ("host name with spaces", "host name with spaces"),
            ("ünïcode-ok", "ünïcode-ok"),
            ("$random", "random"),
            ("SER\0\0\0\tNO\n", "SERNO"),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize(input), *want, "input {input:?}");
        }
        let long = "x".repeat(300);
        assert_eq!(sanitize(&long).chars().count(), 128, "truncated to 128");
        let dotted = format!("{}{}", ".".repeat(50), "y".repeat(200));
        assert_eq!(
            sanitize(&dotted),
            "y".repeat(128),
            "filter before truncating"
        );
    }

    #[test]
    fn uid_values() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            ("4c4c4544-0034\n", None, Some("4c4c4544-0034")),
            ("  \n", None, None),
            ("edge-1a2b3c\n", Some("edge-[0-9a-f]+"), Some("edge-1a2b3c")),
            (
                "host: kiosk-17.shop.example\n",
                Some("kiosk-[0-9]+"),
                Some("kiosk-17"),
            ),
            // Whole match, not the capture group.
            (
                "serial=AB12",
                Some("serial=([A-Z0-9]+)"),
                Some("serial=AB12"),
            ),
            ("nothing here", Some("[0-9]+"), None),
        ];
        for (text, re, want) in cases {
            assert_eq!(
                uid_value(text, *re).as_deref(),
                *want,
                "text {text:?} regex {re:?}"
            );
        }
    }

    /// (label, config, wanted ID and origin; None = random).
    type Case<'a> = (&'a str, Config, Option<(&'a str, Origin)>);

    #[test]
    fn derivation_branches() {
        let (d, root) = tree(
            "branches",
            &[
                (
                    "/sys/class/dmi/id/product_uuid",
                    "4C4C4544-0034-3010-8052-B4C04F564433\n",
                ),
                ("/etc/hostname", "kiosk-17.shop.example\n"),
                ("/etc/empty", "\n"),
            ],
        );
        let cases: &[Case] = &[
            (
                "name wins",
                cfg(Some("store-42"), "edge", &[("/etc/hostname", None)]),
                Some(("store-42", Origin::Name)),
            ),
            (
                "name filtered",
                cfg(Some("store.42/a"), "edge", &[]),
                Some(("store42a", Origin::Name)),
            ),
            (
                "$random skips files",
                cfg(Some("$random"), "edge", &[]),
                None,
            ),
            (
                "default product_uuid",
                cfg(None, "edge", &[]),
                Some((
                    "edge-4C4C4544-0034-3010-8052-B4C04F564433",
                    Origin::UidPath(DEFAULT_UID_PATH.into()),
                )),
            ),
            (
                "hostname with regex",
                cfg(None, "edge", &[("/etc/hostname", Some("kiosk-[0-9]+"))]),
                Some(("edge-kiosk-17", Origin::UidPath("/etc/hostname".into()))),
            ),
            (
                "hostname whole, dots removed, custom prefix",
                cfg(None, "shop", &[("/etc/hostname", None)]),
                Some((
                    "shop-kiosk-17shopexample",
                    Origin::UidPath("/etc/hostname".into()),
                )),
            ),
            (
                "missing, empty and unmatched entries are skipped",
                cfg(
                    None,
                    "edge",
                    &[
                        ("/nope", None),
                        ("/etc/empty", None),
                        ("/etc/hostname", Some("[0-9]{5}")),
                        ("/etc/hostname", Some("[0-9]+")),
                    ],
                ),
                Some(("edge-17", Origin::UidPath("/etc/hostname".into()))),
            ),
            (
                "nothing readable means random",
                cfg(None, "edge", &[("/nope", None)]),
                None,
            ),
        ];
        for (label, c, want) in cases {
            let got = derive(&root, c);
            let want = want.as_ref().map(|(id, o)| HostId {
                id: id.to_string(),
                origin: o.clone(),
            });
            assert_eq!(got, want, "case {label}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn endless_or_huge_files_are_read_only_in_part() {
        let big = format!("{}kiosk-9\n", "a".repeat(2 * MAX_UID_FILE as usize));
        let (d, root) = tree("big", &[("/etc/big", big.as_str())]);
        std::os::unix::fs::symlink("/dev/zero", root.path("/etc/zero")).expect("symlink");
        let cases: &[(&str, Config, Option<String>)] = &[
            (
                "match beyond the limit",
                cfg(None, "edge", &[("/etc/big", Some("kiosk-[0-9]"))]),
                None,
            ),
            (
                "/dev/zero with a regex",
                cfg(None, "edge", &[("/etc/zero", Some("x"))]),
                None,
            ),
            (
                "/dev/zero, NULs removed",
                cfg(None, "edge", &[("/etc/zero", None)]),
                None,
            ),
            (
                "big file, cut to 128",
                cfg(None, "edge", &[("/etc/big", None)]),
                Some(format!("edge-{}", "a".repeat(123))),
            ),
        ];
        for (label, c, want) in cases {
            assert_eq!(derive(&root, c).map(|h| h.id), *want, "case {label}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn random_id_is_persisted_and_reused() {
        let (d, root) = tree("random", &[]);
        let c = cfg(Some("$random"), "edge", &[]);
        let first = host_id(&root, &c, &RealHost).expect("first");
        assert_eq!(first.origin, Origin::RandomNew);
        assert_eq!(first.id.len(), "edge-".len() + 36, "{}", first.id);
        assert!(first.id.starts_with("edge-"), "{}", first.id);
        let second = host_id(&root, &c, &RealHost).expect("second");
        assert_eq!(
            second,
            HostId {
                id: first.id.clone(),
                origin: Origin::Stored
            },
            "reused"
        );
        let file = id_file(&root, &c);
        assert_eq!(
            std::fs::read_to_string(&file).expect("read"),
            format!("{}\n", first.id)
        );
        use std::os::unix::fs::PermissionsExt;
        let dmode = std::fs::metadata(file.parent().expect("dir"))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700, "state dir mode");
        // A garbage host-id file is replaced by a new random ID.
        std::fs::write(&file, "bad/id\n").expect("write");
        let third = host_id(&root, &c, &RealHost).expect("third");
        assert_eq!(third.origin, Origin::RandomNew);
        assert_ne!(third.id, first.id);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn uuid_is_version_4() {
        let u = random_uuid(&RealHost).expect("uuid");
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{u}"
        );
        assert!(parts[2].starts_with('4'), "{u}");
        assert!(
            matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{u}"
        );
    }
}
