//! The agent's state directory (`outpost.stateDir`, 0700): `state.json`
//! (schema outpost.state/v1: what the protocol taught us), `status.json`
//! (schema outpost.status/v1: how the last attempts went, for people and
//! monitoring), the device `credential` and the `install-secret` (each 0600,
//! one line), and the `lock` taken for the length of a check-in.
//!
//! Every write goes through `fsutil` (atomic, mode at create). Reading never
//! fails a check-in for a damaged `state.json`/`status.json` (it is logged
//! and treated as absent); a damaged secret file is an error, because
//! replacing it silently would register a second identity. This module must
//! not log the credential or the install secret.

use crate::error::{Code, Error, Result};
use crate::fsutil::{self, SECRET_DIR_MODE, SECRET_FILE_MODE};
use crate::proto::Desired;
use miniserde::{json, Deserialize, Serialize};
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

pub const STATE_SCHEMA: &str = "outpost.state/v1";
pub const STATUS_SCHEMA: &str = "outpost.status/v1";
/// Largest state file read (they are a few hundred bytes).
const MAX_FILE: u64 = 256 * 1024;

/// The files of one state directory (already resolved under the root).
#[derive(Clone, Debug)]
pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(dir: PathBuf) -> Paths {
        Paths { dir }
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn status(&self) -> PathBuf {
        self.dir.join("status.json")
    }
    pub fn credential(&self) -> PathBuf {
        self.dir.join("credential")
    }
    pub fn install_secret(&self) -> PathBuf {
        self.dir.join("install-secret")
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("lock")
    }
    /// The system CA bundle's decoded trust anchors (http/anchors.rs).
    pub fn ca_anchors(&self) -> PathBuf {
        self.dir.join(crate::http::anchors::CACHE_NAME)
    }
}

/// `state.json`: what the server told us and what we sent it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct State {
    pub schema: String,
    pub host_id: String,
    /// Check-in interval and phase in force (milliseconds, clamped to the
    /// configured bounds).
    pub interval_ms: u64,
    pub phase_ms: u64,
    /// Server clock minus ours at the last answer, seconds.
    pub clock_offset_s: i64,
    /// Digest of the inventory the server holds (last sent in full).
    pub inventory_hash: String,
    /// The server asked for the full inventory next time.
    pub inventory_wanted: bool,
    /// Tag of the desired state held, and the state itself (labels,
    /// upgrade offer, config changes: acted on by later commands).
    pub desired_tag: String,
    pub desired: Option<Desired>,
    /// Unix seconds of the last successful registration and check-in.
    pub registered_at: u64,
    pub last_success: u64,
    /// The server deregistered this device (410 or `deregister`): later
    /// runs stop at once with exit 15 instead of contacting it again.
    pub deregistered: bool,
}

impl State {
    pub fn new(host_id: &str) -> State {
        State {
            schema: STATE_SCHEMA.into(),
            host_id: host_id.into(),
            interval_ms: 0,
            phase_ms: 0,
            clock_offset_s: 0,
            inventory_hash: String::new(),
            inventory_wanted: false,
            desired_tag: String::new(),
            desired: None,
            registered_at: 0,
            last_success: 0,
            deregistered: false,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LastError {
    pub code: i32,
    pub message: String,
}

/// `status.json`, exactly the DESIGN.md fields; times RFC 3339 UTC.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Status {
    pub schema: String,
    pub host_id: String,
    pub agent_version: String,
    pub last_attempt: Option<String>,
    pub last_success: Option<String>,
    pub last_error: Option<LastError>,
    pub consecutive_failures: u32,
    pub interval_s: u64,
    pub next_due: Option<String>,
}

impl Status {
    pub fn new(host_id: &str) -> Status {
        Status {
            schema: STATUS_SCHEMA.into(),
            host_id: host_id.into(),
            agent_version: crate::version::running(),
            last_attempt: None,
            last_success: None,
            last_error: None,
            consecutive_failures: 0,
            interval_s: 0,
            next_due: None,
        }
    }
}

/// Create the state directory (0700) if needed, and remove the temp files
/// a writer killed mid-write left in it (`.<name>.tmp.<pid>.<seq>`, some
/// of them copies of the credential), so a service killed often does not
/// grow its state directory without bound.
pub fn ensure(paths: &Paths) -> Result<()> {
    fsutil::ensure_dir(&paths.dir, SECRET_DIR_MODE)?;
    for p in fsutil::sweep_temps(&paths.dir, None)? {
        log::info!("removed stale temp file {}", p.display());
    }
    Ok(())
}

fn read_small(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    f.take(MAX_FILE).read_to_end(&mut buf)?;
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// A JSON document of ours; `None` when missing, or damaged (logged), or
/// of another schema.
fn load_doc<T: Deserialize>(path: &Path, schema: &str) -> Result<Option<T>> {
    let text = match read_small(path) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(e) => return Err(Error::io("reading", path, &e)),
    };
    #[derive(Deserialize)]
    struct Head {
        schema: String,
    }
    match json::from_str::<Head>(&text) {
        Ok(h) if h.schema == schema => {}
        Ok(h) => {
            log::warn!(
                "{}: schema {:?} is not {schema}; ignoring it",
                path.display(),
                h.schema.chars().take(40).collect::<String>()
            );
            return Ok(None);
        }
        Err(_) => {
            log::warn!("{}: damaged (not valid JSON); ignoring it", path.display());
            return Ok(None);
        }
    }
    match json::from_str::<T>(&text) {
        Ok(v) => Ok(Some(v)),
        Err(_) => {
            log::warn!(
                "{}: damaged (fields missing or of the wrong type); ignoring it",
                path.display()
            );
            Ok(None)
        }
    }
}

pub fn load_state(paths: &Paths) -> Result<Option<State>> {
    load_doc(&paths.state(), STATE_SCHEMA)
}

pub fn load_status(paths: &Paths) -> Result<Option<Status>> {
    load_doc(&paths.status(), STATUS_SCHEMA)
}

pub fn save_state(paths: &Paths, s: &State) -> Result<()> {
    let mut text = json::to_string(s);
    text.push('\n');
    fsutil::write_atomic(&paths.state(), text.as_bytes(), 0o600)
}

/// Write `status.json`, its mtime set to its `last_attempt`. When the
/// write fails (disk full, no inodes), the attempt is still marked: the
/// existing file's mtime is set to the attempt's time (an inode update,
/// which needs no free block), so `status` can tell that a later attempt
/// went unrecorded (see `unrecorded_attempt`).
pub fn save_status(paths: &Paths, s: &Status) -> Result<()> {
    let mut text = json::to_string(s);
    text.push('\n');
    let at = s
        .last_attempt
        .as_deref()
        .and_then(crate::timefmt::parse_rfc3339)
        .map(|t| std::time::UNIX_EPOCH + std::time::Duration::from_secs(t));
    // Monitoring reads it without privileges; it holds no secret.
    let r = fsutil::write_atomic_with(&paths.status(), 0o644, |f| {
        use std::io::Write;
        f.write_all(text.as_bytes())?;
        if let Some(t) = at {
            // Best effort: a filesystem without settable times still
            // gets its status.json.
            let _ = f.set_modified(t);
        }
        Ok(())
    });
    if r.is_err() {
        if let Some(t) = at {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .open(paths.status())
                .and_then(|f| f.set_modified(t));
        }
    }
    r
}

/// Unix seconds of a check-in attempt that could not be written to
/// `status.json` (its mtime is later than the `last_attempt` it holds by
/// 2 s or more; files of older versions carry their write time, up to 1 s
/// after `last_attempt`); `None` when the file is as last written.
pub fn unrecorded_attempt(paths: &Paths, s: &Status) -> Option<u64> {
    let recorded = crate::timefmt::parse_rfc3339(s.last_attempt.as_deref()?)?;
    let mtime = std::fs::metadata(paths.status())
        .ok()?
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    (mtime > recorded + 1).then_some(mtime)
}

/// A one-line secret file (credential, install secret): `None` when
/// missing; an empty, over-long or non-printable one is an error (exit 20)
/// naming the file, never its content.
pub fn read_secret(path: &Path) -> Result<Option<String>> {
    let text = match read_small(path) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(e) => return Err(Error::io("reading", path, &e)),
    };
    let s = text.trim();
    if s.is_empty() || s.len() > 256 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::new(
            Code::LocalIo,
            format!(
                "{}: damaged (expected one line of printable text); remove it to register again",
                path.display()
            ),
        ));
    }
    Ok(Some(s.to_string()))
}

pub fn write_secret(path: &Path, secret: &str) -> Result<()> {
    fsutil::write_atomic(path, format!("{secret}\n").as_bytes(), SECRET_FILE_MODE)
}

/// The exclusive lock of a state directory, held until dropped.
pub struct Lock {
    _file: File,
}

/// Take `<stateDir>/lock` without waiting: exit 5 when another outpost
/// holds it.
pub fn lock(paths: &Paths) -> Result<Lock> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = paths.lock();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io("opening lock file", &path, &e))?;
    match crate::sys::try_lock_exclusive(&file) {
        Ok(true) => Ok(Lock { _file: file }),
        Ok(false) => Err(Error::new(
            Code::Locked,
            format!(
                "another outpost is checking in (lock {} is held); nothing to do",
                path.display()
            ),
        )),
        Err(e) => Err(Error::io("locking", &path, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> Paths {
        let d = std::env::temp_dir().join(format!("outpost-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let p = Paths::new(d);
        ensure(&p).expect("state dir");
        p
    }

    #[test]
    fn state_and_status_round_trip_with_modes() {
        use std::os::unix::fs::PermissionsExt;
        let p = tmp("rt");
        let mut s = State::new("edge-1");
        s.interval_ms = 60_000;
        s.desired = Some(<Desired as Default>::default());
        save_state(&p, &s).expect("save state");
        assert_eq!(load_state(&p).expect("load"), Some(s), "state round trip");
        let mut st = Status::new("edge-1");
        st.last_error = Some(LastError {
            code: 10,
            message: "x".into(),
        });
        save_status(&p, &st).expect("save status");
        assert_eq!(
            load_status(&p).expect("load"),
            Some(st),
            "status round trip"
        );
        write_secret(&p.credential(), "opc_abc").expect("secret");
        let mode = |f: &Path| std::fs::metadata(f).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&p.credential()), 0o600, "credential mode");
        assert_eq!(mode(&p.state()), 0o600, "state mode");
        assert_eq!(mode(&p.dir), 0o700, "dir mode");
        assert_eq!(
            read_secret(&p.credential()).expect("read"),
            Some("opc_abc".into())
        );
        let _ = std::fs::remove_dir_all(&p.dir);
    }

    #[test]
    fn damaged_files() {
        let p = tmp("damaged");
        let cases = [
            ("not json", "{\"schema\":"),
            ("other schema", "{\"schema\":\"outpost.state/v9\"}"),
            ("missing fields", "{\"schema\":\"outpost.state/v1\"}"),
        ];
        for (name, text) in cases {
            std::fs::write(p.state(), text).expect("write");
            assert_eq!(load_state(&p).expect(name), None, "case {name}");
        }
        for (name, text) in [("empty", "\n"), ("binary", "a\u{1}b"), ("two words", "a b")] {
            std::fs::write(p.credential(), text).expect("write");
            let e = read_secret(&p.credential()).expect_err(name);
            assert_eq!(e.code(), Code::LocalIo, "case {name}");
            assert!(
                !e.message().contains(text.trim()) || text.trim().is_empty(),
                "case {name}: {e}"
            );
        }
        let _ = std::fs::remove_dir_all(&p.dir);
    }

    #[test]
    fn second_lock_is_refused() {
        let p = tmp("lock");
        let first = lock(&p).expect("first lock");
        let e = lock(&p).err().expect("second lock must fail");
        assert_eq!(e.code(), Code::Locked, "exit 5");
        drop(first);
        lock(&p).expect("free again after drop");
        let _ = std::fs::remove_dir_all(&p.dir);
    }
}
