//! `manifest.json` in the state directory (schema `outpost.manifest/v1`):
//! every file or link install created or replaced (path, sha256, mode,
//! backup of what it replaced) and every directory it created or narrowed.
//! `uninstall` removes exactly what is listed here. Parsing and rendering
//! only: reading and writing the file is `apply.rs`'s job.

use crate::error::{Error, Result};
use miniserde::{Deserialize, Serialize};

pub const SCHEMA: &str = "outpost.manifest/v1";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub schema: String,
    pub agent_version: String,
    /// Files and links, in the order they were created.
    pub files: Vec<Entry>,
    /// Directories install created or whose mode it changed.
    pub dirs: Vec<DirEntry>,
    /// The trust-store update command, when a CA was added (uninstall on a
    /// live root reruns it).
    pub trust_update: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Host path (under the root).
    pub path: String,
    /// `file` or `link`.
    pub kind: String,
    /// SHA-256 of the content written (files) or of the link target (links).
    pub sha256: String,
    /// Octal text, as `ls -l` readers expect ("0644").
    pub mode: String,
    /// Link target (links only).
    pub target: Option<String>,
    /// Host path of the copy of the foreign file this replaced (`--force`).
    pub backup: Option<String>,
    /// Mode of the replaced file (octal text), restored with it.
    pub backup_mode: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub path: String,
    /// Created by install (else it existed and only its mode changed).
    pub created: bool,
    /// The mode before install changed it (octal text; existing
    /// directories only).
    pub mode_before: Option<String>,
}

/// A mode as manifest text: "0644".
pub fn octal(mode: u32) -> String {
    format!("{mode:04o}")
}

/// Manifest text back to a mode; `None` for anything but 1-4 octal digits.
pub fn parse_octal(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 4 {
        return None;
    }
    u32::from_str_radix(s, 8).ok()
}

impl Entry {
    /// The backup and its mode, when both are recorded and readable.
    pub fn restore(&self) -> Option<(String, u32)> {
        let mode = parse_octal(self.backup_mode.as_deref()?)?;
        Some((self.backup.clone()?, mode))
    }
}

impl Manifest {
    pub fn new() -> Manifest {
        Manifest {
            schema: SCHEMA.into(),
            agent_version: crate::version::VERSION.into(),
            ..<Manifest as Default>::default()
        }
    }

    pub fn parse(text: &str, at: &str) -> Result<Manifest> {
        let m: Manifest = miniserde::json::from_str(text)
            .map_err(|_| Error::config(format!("{at}: not a valid {SCHEMA} document")))?;
        if m.schema != SCHEMA {
            return Err(Error::config(format!(
                "{at}: schema {:?} is not {SCHEMA}",
                m.schema
            )));
        }
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        let mut s = miniserde::json::to_string(self);
        s.push('\n');
        s
    }

    pub fn file(&self, path: &str) -> Option<&Entry> {
        self.files.iter().find(|e| e.path == path)
    }

    pub fn dir(&self, path: &str) -> Option<&DirEntry> {
        self.dirs.iter().find(|e| e.path == path)
    }

    /// Add or replace the entry for `e.path`; a backup already recorded for
    /// the path is kept (the first foreign file is what uninstall restores).
    pub fn record(&mut self, mut e: Entry) {
        if let Some(old) = self.files.iter_mut().find(|x| x.path == e.path) {
            if e.backup.is_none() {
                e.backup = old.backup.take();
                e.backup_mode = old.backup_mode.take();
            }
            *old = e;
        } else {
            self.files.push(e);
        }
    }

    pub fn forget(&mut self, path: &str) {
        self.files.retain(|e| e.path != path);
    }

    pub fn record_dir(&mut self, d: DirEntry) {
        if self.dir(&d.path).is_none() {
            self.dirs.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_schema() {
        let mut m = Manifest::new();
        m.record(Entry {
            path: "/etc/cron.d/outpost".into(),
            kind: "file".into(),
            sha256: "ab".into(),
            mode: octal(0o644),
            target: None,
            backup: Some("/var/lib/outpost/backup/x".into()),
            backup_mode: Some(octal(0o600)),
        });
        m.record_dir(DirEntry {
            path: "/var/lib/outpost".into(),
            created: true,
            mode_before: None,
        });
        // Re-recording keeps the first backup.
        m.record(Entry {
            path: "/etc/cron.d/outpost".into(),
            kind: "file".into(),
            sha256: "cd".into(),
            mode: octal(0o644),
            target: None,
            backup: None,
            backup_mode: None,
        });
        let back = Manifest::parse(&m.to_json(), "m").expect("parse");
        assert_eq!(back, m, "round trip");
        let e = back.file("/etc/cron.d/outpost").expect("entry");
        assert_eq!(e.sha256, "cd", "updated sha");
        assert_eq!(
            e.backup.as_deref(),
            Some("/var/lib/outpost/backup/x"),
            "kept backup"
        );
        assert!(
            m.to_json().contains("\"schema\":\"outpost.manifest/v1\""),
            "schema field"
        );
    }

    #[test]
    fn bad_documents_are_config_errors() {
        let cases = [
            ("{", "m.json: not a valid outpost.manifest/v1 document"),
            (
                r#"{"schema":"other/v9","agent_version":"x","files":[],"dirs":[],"trust_update":null}"#,
                "m.json: schema \"other/v9\" is not outpost.manifest/v1",
            ),
        ];
        for (text, want) in cases {
            let e = Manifest::parse(text, "m.json").expect_err(text);
            assert_eq!(e.message(), want, "input {text}");
            assert_eq!(e.code(), crate::error::Code::Config, "input {text}");
        }
    }
}
