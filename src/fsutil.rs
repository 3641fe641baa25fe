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
        assert_eq!(err.code, crate::error::Code::LocalIo);
        assert_eq!(
            err.message,
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
}
