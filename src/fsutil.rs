//! The one way outpost writes a file it owns: atomically. A temp file in the
//! same directory, created with its final mode (`O_CREAT|O_EXCL`, then
//! `fchmod` so the umask cannot widen or narrow it), filled, `fsync`ed,
//! renamed over the target, then the directory `fsync`ed. A crash at any
//! instant leaves the old file or the new one, never a torn one.
//!
//! Also creates directories with an exact mode (0700 for directories that
//! hold secrets). Every path given here is already resolved under `--root`
//! by the caller. This module must not decide what to write or log content.

use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Mode of files that hold a secret (token, device credential).
pub const SECRET_FILE_MODE: u32 = 0o600;
/// Mode of directories that hold secrets.
pub const SECRET_DIR_MODE: u32 = 0o700;

/// Create `dir` and any missing parents; a directory created here gets
/// exactly `mode`. An existing `dir` with wider permissions than `mode` is
/// narrowed to `mode` (so a 0755 state dir becomes 0700).
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<()> {
    let err = |e: &io::Error| Error::io("creating directory", dir, e);
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(|e| err(&e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(|e| err(&e))?;
        return Ok(());
    }
    let meta = fs::metadata(dir).map_err(|e| err(&e))?;
    let have = meta.permissions().mode() & 0o7777;
    if have & !mode != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode)).map_err(|e| err(&e))?;
    }
    Ok(())
}

/// Atomically replace `path` with `data`, the new file having exactly `mode`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    write_atomic_with(path, mode, |f| f.write_all(data))
}

/// Atomically replace `path` with what `fill` writes into the temp file.
/// When `fill` (or any later step) fails, the temp file is removed and the
/// old `path`, if any, is left exactly as it was.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<()> {
    let werr = |e: &io::Error| Error::io("writing", path, e);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| werr(&io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?;
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have removed bits; set exactly what was asked.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        fill(&mut f)?;
        f.flush()?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(werr(&e));
    }
    Ok(())
}

/// The name of a temp file (or directory) this module or install makes
/// for `name`: `.<name>.tmp.<pid>` or `.<name>.tmp.<pid>.<seq>`. Returns
/// the pid when `entry` is one, for any `name` when `name` is `None`.
pub fn temp_owner(entry: &str, name: Option<&str>) -> Option<u32> {
    let rest = entry.strip_prefix('.')?;
    let at = rest.rfind(".tmp.")?;
    let (base, tail) = (&rest[..at], &rest[at + 5..]);
    if base.is_empty() || name.is_some_and(|n| n != base) {
        return None;
    }
    let mut parts = tail.split('.');
    let pid = parts.next()?;
    let seq = parts.next();
    if parts.next().is_some() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(s) = seq {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    pid.parse().ok()
}

/// The process `pid` is this one or still running (on this host).
pub fn pid_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Remove stale temp files of our naming (see `temp_owner`) from `dir`:
/// those of `names` (every name when `names` is `None`) whose writer is no
/// longer running (a writer killed mid-write never cleans up). A directory
/// of our naming (an interrupted install's state directory) is removed
/// whole. Returns what was removed; a missing `dir` is no error.
pub fn sweep_temps(dir: &Path, names: Option<&[&str]>) -> Result<Vec<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", dir, &e)),
    };
    let mut removed = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("listing", dir, &e))?;
        let file = ent.file_name();
        let Some(fname) = file.to_str() else { continue };
        let pid = match names {
            None => temp_owner(fname, None),
            Some(ns) => ns.iter().find_map(|n| temp_owner(fname, Some(n))),
        };
        let Some(pid) = pid else { continue };
        if pid_alive(pid) {
            continue;
        }
        let p = ent.path();
        let is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let r = if is_dir {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        match r {
            Ok(()) => removed.push(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing stale temp file", &p, &e)),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("outpost-fsutil-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).expect("mkdir");
        d
    }

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).expect("stat").permissions().mode() & 0o7777
    }

    fn leftovers(d: &Path) -> Vec<String> {
        fs::read_dir(d)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp."))
            .collect()
    }

    #[test]
    fn writes_with_exact_modes() {
        let d = tmpdir("modes");
        for (name, mode) in [("secret", 0o600), ("public", 0o644), ("odd", 0o640)] {
            let p = d.join(name);
            write_atomic(&p, b"x\n", mode).expect("write");
            assert_eq!(mode_of(&p), mode, "file {name}");
            assert_eq!(fs::read(&p).expect("read"), b"x\n", "file {name}");
            // Rewriting keeps the mode exact even if the old file differed.
            fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).expect("chmod");
            write_atomic(&p, b"y\n", mode).expect("rewrite");
            assert_eq!(mode_of(&p), mode, "rewritten file {name}");
        }
        assert!(
            leftovers(&d).is_empty(),
            "temp files left: {:?}",
            leftovers(&d)
        );
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn failed_write_leaves_old_file_and_no_temp() {
        let d = tmpdir("fail");
        let p = d.join("state.json");
        write_atomic(&p, b"old", 0o600).expect("first write");
        let err = write_atomic_with(&p, 0o600, |f| {
            f.write_all(b"half of the new")?;
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        })
        .expect_err("fill failed, so must the write");
        assert_eq!(err.code(), crate::error::Code::LocalIo);
        assert_eq!(
            err.message(),
            format!("writing {}: No space left on device", p.display())
        );
        assert_eq!(fs::read(&p).expect("read"), b"old", "old content kept");
        assert!(
            leftovers(&d).is_empty(),
            "temp files left: {:?}",
            leftovers(&d)
        );
        // A target that cannot be replaced (a non-empty directory): error, no temp.
        let sub = d.join("sub");
        fs::create_dir_all(sub.join("inner")).expect("mkdir");
        assert!(
            write_atomic(&sub, b"x", 0o600).is_err(),
            "rename over a directory"
        );
        assert!(
            leftovers(&d).is_empty(),
            "temp files left: {:?}",
            leftovers(&d)
        );
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn ensure_dir_sets_and_narrows_modes() {
        let d = tmpdir("dirs");
        let state = d.join("var/lib/outpost");
        ensure_dir(&state, SECRET_DIR_MODE).expect("create");
        assert_eq!(mode_of(&state), 0o700, "new dir");
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_dir(&state, SECRET_DIR_MODE).expect("narrow");
        assert_eq!(mode_of(&state), 0o700, "narrowed dir");
        let open = d.join("run");
        ensure_dir(&open, 0o755).expect("create");
        assert_eq!(mode_of(&open), 0o755, "public dir");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn temp_names_are_recognised_exactly() {
        assert_eq!(temp_owner(".state.json.tmp.12.3", None), Some(12));
        assert_eq!(
            temp_owner(".state.json.tmp.12.3", Some("state.json")),
            Some(12)
        );
        assert_eq!(temp_owner(".state.json.tmp.12.3", Some("credential")), None);
        assert_eq!(temp_owner(".outpost.tmp.99", Some("outpost")), Some(99));
        for not in [
            "state.json",
            ".state.json",
            ".x.tmp.",
            ".x.tmp.1a",
            ".x.tmp.1.2.3",
            ".tmp.1",
            "x.tmp.1",
            ".x.tmp.1.",
        ] {
            assert_eq!(temp_owner(not, None), None, "{not}");
        }
    }

    #[test]
    fn sweep_removes_only_dead_writers_temps() {
        let d = tmpdir("sweep");
        // A pid that cannot be running (above the kernel's pid_max limit).
        let dead = 4_194_305u32;
        let me = std::process::id();
        for n in [
            format!(".credential.tmp.{dead}.0"),
            format!(".state.json.tmp.{dead}.7"),
            format!(".state.json.tmp.{me}.1"),
            "keep.tmp.1".to_string(),
            "state.json".to_string(),
        ] {
            fs::write(d.join(n), b"x").expect("write");
        }
        fs::create_dir_all(d.join(format!(".outpost.tmp.{dead}.0/inner"))).expect("mkdir");
        let mut gone = sweep_temps(&d, None).expect("sweep");
        gone.sort();
        assert_eq!(gone.len(), 3, "{gone:?}");
        let mut left: Vec<String> = fs::read_dir(&d)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                format!(".state.json.tmp.{me}.1"),
                "keep.tmp.1".into(),
                "state.json".into()
            ]
        );
        // Restricted to names: others stay.
        fs::write(d.join(format!(".a.tmp.{dead}")), b"x").expect("write");
        fs::write(d.join(format!(".b.tmp.{dead}")), b"x").expect("write");
        assert_eq!(sweep_temps(&d, Some(&["a"])).expect("sweep").len(), 1);
        assert!(d.join(format!(".b.tmp.{dead}")).exists());
        assert!(sweep_temps(&d.join("missing"), None)
            .expect("missing dir")
            .is_empty());
        let _ = fs::remove_dir_all(&d);
    }
}
