//! Perform a plan: the only part of install/uninstall that touches the
//! tree. Every file goes through `fsutil::write_atomic`; links are made
//! under a temporary name and renamed into place; the manifest is saved
//! (atomically, 0600) before each file or link is written, so a crash at
//! any instant leaves a tree the next run repairs: a file on disk is either
//! listed in the manifest or identical to what install wants (adopted).
//!
//! Also `look()`: what is at a path, by `lstat` under the root (never
//! following a link out of it). Must not decide anything: the plan did.

use super::manifest::{octal, DirEntry, Entry, Manifest};
use super::plan::{Action, Seen};
use super::sha256_hex;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::sys::Root;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What is at `host_path` under the root, without following a final link.
/// Parent links were refused by the plan (it inspects every ancestor).
pub fn look(root: &Root, host_path: &str) -> Result<Seen> {
    let p = root.path(host_path);
    let meta = match fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Seen::Missing),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(Seen::Missing),
        Err(e) => return Err(Error::io("inspecting", &p, &e)),
    };
    let ft = meta.file_type();
    let mode = meta.permissions().mode() & 0o7777;
    Ok(if ft.is_symlink() {
        let t = fs::read_link(&p).map_err(|e| Error::io("reading link", &p, &e))?;
        Seen::Link {
            target: t.to_string_lossy().into_owned(),
        }
    } else if ft.is_dir() {
        Seen::Dir { mode }
    } else if ft.is_file() {
        // In pieces: the file may be the installed binary (megabytes).
        let (sha256, _) = super::sha256_file(&p).map_err(|e| Error::io("reading", &p, &e))?;
        Seen::File { sha256, mode }
    } else {
        Seen::Other
    })
}

/// Read the manifest under the root; an empty one when there is none.
pub fn read_manifest(root: &Root, host_path: &str) -> Result<Option<Manifest>> {
    let p = root.path(host_path);
    match fs::read_to_string(&p) {
        Ok(t) => Manifest::parse(&t, &p.display().to_string()).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", &p, &e)),
    }
}

/// Executes actions and keeps the manifest in step.
pub struct Applier<'a> {
    pub root: &'a Root,
    pub manifest: Manifest,
    pub state_dir: String,
    /// Set once the state files are purged: the manifest is gone for good.
    purged: bool,
    /// A backup taken for the next write of the same path.
    pending_backup: Option<(String, String, u32)>,
    /// Warnings to show the operator (a command that failed, a directory
    /// left because it is not empty).
    pub warnings: Vec<String>,
}

impl<'a> Applier<'a> {
    pub fn new(root: &'a Root, manifest: Manifest, state_dir: &str) -> Applier<'a> {
        Applier {
            root,
            manifest,
            state_dir: state_dir.to_string(),
            purged: false,
            pending_backup: None,
            warnings: Vec::new(),
        }
    }

    fn manifest_path(&self) -> String {
        format!("{}/{}", self.state_dir, super::MANIFEST_NAME)
    }

    /// Save the manifest when the state directory exists (before it does,
    /// the directories made so far are kept in memory and saved with the
    /// first save after it is made).
    pub fn save(&self) -> Result<()> {
        if self.purged || !self.root.path(&self.state_dir).is_dir() {
            return Ok(());
        }
        let p = self.root.path(self.manifest_path());
        fsutil::write_atomic(
            &p,
            self.manifest.to_json().as_bytes(),
            fsutil::SECRET_FILE_MODE,
        )
    }

    /// Perform every action in order; `each` is told of each one done.
    pub fn run(&mut self, acts: &[Action], each: &mut dyn FnMut(&Action)) -> Result<()> {
        let abort_after = abort_after();
        for (n, a) in acts.iter().enumerate() {
            self.one(a)?;
            each(a);
            if abort_after == Some(n + 1) {
                // Test hook: die as kill -9 would, with no clean-up.
                std::process::abort();
            }
        }
        Ok(())
    }

    fn one(&mut self, a: &Action) -> Result<()> {
        let root = self.root;
        match a {
            Action::MkDir { path, mode } => {
                let rec = DirEntry {
                    path: path.clone(),
                    created: true,
                    mode_before: None,
                };
                let state_exists = root.path(&self.state_dir).is_dir();
                if state_exists {
                    self.manifest.record_dir(rec.clone());
                    self.save()?;
                    fsutil::ensure_dir(&root.path(path), *mode)?;
                } else if is_self_or_ancestor(path, &self.state_dir) {
                    // The state directory (and the missing ancestors from
                    // `path` down) appear at once, already holding the
                    // manifest that records them: a crash before the
                    // rename leaves only a temp directory of our naming.
                    self.make_state_chain(path, *mode)?;
                } else {
                    fsutil::ensure_dir(&root.path(path), *mode)?;
                    self.manifest.record_dir(rec);
                }
            }
            Action::ChmodDir { path, from, to } => {
                let p = root.path(path);
                if self.manifest.dir(path).is_none() {
                    self.manifest.record_dir(DirEntry {
                        path: path.clone(),
                        created: false,
                        mode_before: Some(octal(*from)),
                    });
                    self.save()?;
                } else {
                    // Uninstall: restoring the mode ends the directory's entry.
                    self.manifest.dirs.retain(|d| &d.path != path);
                }
                fs::set_permissions(&p, fs::Permissions::from_mode(*to))
                    .map_err(|e| Error::io("changing the mode of", &p, &e))?;
                self.save()?;
            }
            Action::Backup { path, to, mode } => {
                let src = root.path(path);
                let mut from =
                    fs::File::open(&src).map_err(|e| Error::io("backing up", &src, &e))?;
                // Copied in pieces (std uses copy_file_range where it can).
                fsutil::write_atomic_with(&root.path(to), *mode, |f| {
                    io::copy(&mut from, f).map(|_| ())
                })?;
                self.pending_backup = Some((path.clone(), to.clone(), *mode));
            }
            Action::Write {
                path,
                data,
                mode,
                sha256,
                ..
            } => {
                let mut e = Entry {
                    path: path.clone(),
                    kind: "file".into(),
                    sha256: sha256.clone(),
                    mode: octal(*mode),
                    target: None,
                    backup: None,
                    backup_mode: None,
                };
                self.take_backup(&mut e);
                self.manifest.record(e);
                self.save()?;
                fsutil::write_atomic_with(&root.path(path), *mode, |f| data.write_to(f))?;
            }
            Action::Link { path, target, .. } => {
                let mut e = Entry {
                    path: path.clone(),
                    kind: "link".into(),
                    sha256: sha256_hex(target.as_bytes()),
                    mode: octal(0o777),
                    target: Some(target.clone()),
                    backup: None,
                    backup_mode: None,
                };
                self.take_backup(&mut e);
                self.manifest.record(e);
                self.save()?;
                link_atomic(&root.path(path), target)?;
            }
            Action::Adopt { entry } => {
                self.manifest.record(entry.clone());
                self.save()?;
            }
            Action::Remove { path, restore } => {
                let p = root.path(path);
                match restore {
                    Some((b, mode)) => {
                        let bp = root.path(b);
                        match fs::File::open(&bp) {
                            Ok(mut from) => {
                                fsutil::write_atomic_with(&p, *mode, |f| {
                                    io::copy(&mut from, f).map(|_| ())
                                })?;
                                remove(&bp)?;
                            }
                            // Already restored by an interrupted run.
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(Error::io("reading backup", &bp, &e)),
                        }
                    }
                    None => remove(&p)?,
                }
                self.manifest.forget(path);
                self.save()?;
            }
            Action::PurgeState { path, whole } => {
                let p = root.path(path);
                self.purged = true;
                if *whole {
                    // Renamed aside first, so a crash while its files go
                    // leaves a temp directory of our naming (removed by the
                    // next install or uninstall), not half a state.
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let parent = p.parent().unwrap_or(Path::new("/"));
                    let aside = parent.join(format!(".{name}.tmp.{}.1", std::process::id()));
                    match fs::rename(&p, &aside) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                        Err(e) => return Err(Error::io("removing", &p, &e)),
                    }
                    match fs::remove_dir_all(&aside) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io("removing", &aside, &e)),
                    }
                } else {
                    for name in STATE_FILES {
                        remove(&p.join(name))?;
                    }
                    let b = p.join(super::BACKUP_DIR_NAME);
                    if let Err(e) = fs::remove_dir(&b) {
                        if e.kind() != io::ErrorKind::NotFound {
                            return Err(Error::io("removing", &b, &e));
                        }
                    }
                }
            }
            Action::RmDir { path } => {
                let p = root.path(path);
                match fs::remove_dir(&p) {
                    Ok(()) => self.manifest.dirs.retain(|d| &d.path != path),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.manifest.dirs.retain(|d| &d.path != path)
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => self
                        .warnings
                        .push(format!("{} left in place: not empty", p.display())),
                    Err(e) => return Err(Error::io("removing", &p, &e)),
                }
                self.save()?;
            }
            Action::Run { argv } => {
                let Some((cmd, args)) = argv.split_first() else {
                    return Ok(());
                };
                match std::process::Command::new(cmd).args(args).status() {
                    Ok(s) if s.success() => {}
                    Ok(s) => self
                        .warnings
                        .push(format!("{} exited with {s}", argv.join(" "))),
                    Err(e) => self.warnings.push(format!(
                        "running {}: {}",
                        argv.join(" "),
                        crate::error::io_text(&e)
                    )),
                }
            }
        }
        Ok(())
    }

    /// Build `top` .. `state_dir` under a temp name beside `top`, with the
    /// manifest (recording every one of them as created) inside, then
    /// rename it into place and sync the parent.
    fn make_state_chain(&mut self, top: &str, top_mode: u32) -> Result<()> {
        let root = self.root;
        let mut chain = vec![top.to_string()];
        for a in super::plan::ancestors(&self.state_dir) {
            if a.len() > top.len() && is_self_or_ancestor(top, &a) {
                chain.push(a);
            }
        }
        if self.state_dir != top {
            chain.push(self.state_dir.clone());
        }
        let final_top = root.path(top);
        let parent = final_top.parent().unwrap_or(Path::new("/")).to_path_buf();
        let name = final_top
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.tmp.{}.0", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        for d in &chain {
            let mode = if *d == self.state_dir {
                fsutil::SECRET_DIR_MODE
            } else if d == top {
                top_mode
            } else {
                0o755
            };
            self.manifest.record_dir(DirEntry {
                path: d.clone(),
                created: true,
                mode_before: None,
            });
            let rel = &d[top.len()..];
            fsutil::ensure_dir(Path::new(&format!("{}{rel}", tmp.display())), mode)?;
        }
        let state_tmp = format!("{}{}", tmp.display(), &self.state_dir[top.len()..]);
        let r = fsutil::write_atomic(
            &Path::new(&state_tmp).join(super::MANIFEST_NAME),
            self.manifest.to_json().as_bytes(),
            fsutil::SECRET_FILE_MODE,
        )
        .and_then(|()| {
            fs::rename(&tmp, &final_top)
                .and_then(|()| fs::File::open(&parent)?.sync_all())
                .map_err(|e| Error::io("creating directory", &final_top, &e))
        });
        if r.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        r
    }

    fn take_backup(&mut self, e: &mut Entry) {
        if let Some((p, b, m)) = self.pending_backup.take() {
            if p == e.path {
                e.backup = Some(b);
                e.backup_mode = Some(octal(m));
            } else {
                self.pending_backup = Some((p, b, m));
            }
        }
    }
}

/// Files of the state directory that `--purge` removes when the directory
/// itself was there before install (else the whole directory goes).
pub const STATE_FILES: &[&str] = &[
    "host-id",
    "credential",
    "state.json",
    "status.json",
    "manifest.json",
    "lock",
    super::FIRSTBOOT_MARKER,
];

/// `a` is `b` or a directory above it (host paths).
fn is_self_or_ancestor(a: &str, b: &str) -> bool {
    let a = a.trim_end_matches('/');
    b == a || b.strip_prefix(a).is_some_and(|r| r.starts_with('/'))
}

/// Every directory where outpost writes files of these host paths, with
/// the names whose temp files it may leave there: each path's parent (the
/// path's own name), every ancestor of the state directory (an interrupted
/// creation of it), and the state directory and its backup directory
/// (every name).
fn temp_places(paths: &[String], state_dir: &str) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    let mut add = |dir: String, name: Option<String>| {
        if !out.iter().any(|(d, n)| *d == dir && *n == name) {
            out.push((dir, name));
        }
    };
    let mut with_chain: Vec<String> = paths.to_vec();
    with_chain.extend(super::plan::ancestors(state_dir));
    with_chain.push(state_dir.to_string());
    for p in &with_chain {
        if let Some((dir, name)) = p.rsplit_once('/') {
            if !name.is_empty() {
                let dir = if dir.is_empty() { "/" } else { dir };
                add(dir.to_string(), Some(name.to_string()));
            }
        }
    }
    add(state_dir.to_string(), None);
    add(format!("{state_dir}/{}", super::BACKUP_DIR_NAME), None);
    out
}

/// Remove the temp files an interrupted install, uninstall or check-in
/// left (see `fsutil::sweep_temps`) beside `paths` and in the state
/// directory. Returns what was removed.
pub fn sweep_temps(root: &Root, paths: &[String], state_dir: &str) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    for (dir, name) in temp_places(paths, state_dir) {
        let names = name.as_deref().map(|n| [n]);
        for p in fsutil::sweep_temps(&root.path(&dir), names.as_ref().map(|n| &n[..]))? {
            gone.push(p.display().to_string());
        }
    }
    Ok(gone)
}

/// What is still on disk of `paths` (files and links) and of temp files of
/// our naming beside them and in the state directory: after a purge, this
/// must be empty.
pub fn leftovers(root: &Root, paths: &[String], state_dir: &str) -> Vec<String> {
    let mut left = Vec::new();
    for p in paths {
        let hp = root.path(p);
        if fs::symlink_metadata(&hp).is_ok() {
            left.push(hp.display().to_string());
        }
    }
    for (dir, name) in temp_places(paths, state_dir) {
        let d = root.path(&dir);
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for ent in rd.flatten() {
            let f = ent.file_name();
            // A running writer's temp file (a check-in from cron) is its own.
            if fsutil::temp_owner(&f.to_string_lossy(), name.as_deref())
                .is_some_and(|pid| !fsutil::pid_alive(pid))
            {
                left.push(d.join(f).display().to_string());
            }
        }
    }
    left.sort();
    left.dedup();
    left
}

fn remove(p: &Path) -> Result<()> {
    match fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", p, &e)),
    }
}

/// Make `path` a symlink to `target`: a temp link beside it, renamed over
/// the path, then the directory synced.
fn link_atomic(path: &Path, target: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}.0", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let r = std::os::unix::fs::symlink(target, &tmp)
        .and_then(|_| fs::rename(&tmp, path))
        .and_then(|_| fs::File::open(dir)?.sync_all());
    if let Err(e) = r {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("linking", path, &e));
    }
    Ok(())
}

/// Test hook (`test-hooks` builds only): `OUTPOST_TEST_ABORT_AFTER=N` makes
/// the process abort right after action N, as a kill -9 would.
fn abort_after() -> Option<usize> {
    #[cfg(feature = "test-hooks")]
    {
        std::env::var("OUTPOST_TEST_ABORT_AFTER")
            .ok()
            .and_then(|v| v.parse().ok())
    }
    #[cfg(not(feature = "test-hooks"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_sees_each_kind_without_following_links() {
        let d = std::env::temp_dir().join(format!("outpost-apply-look-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("etc")).expect("mkdir");
        fs::write(d.join("etc/f"), b"abc").expect("write");
        fs::set_permissions(d.join("etc/f"), fs::Permissions::from_mode(0o640)).expect("chmod");
        std::os::unix::fs::symlink("/etc/shadow", d.join("etc/l")).expect("link");
        let root = Root::new(&d);
        let cases = [
            (
                "/etc/f",
                Seen::File {
                    sha256: sha256_hex(b"abc"),
                    mode: 0o640,
                },
            ),
            (
                "/etc/l",
                Seen::Link {
                    target: "/etc/shadow".into(),
                },
            ),
            ("/etc/none", Seen::Missing),
            ("/etc/f/below", Seen::Missing),
        ];
        for (p, want) in cases {
            assert_eq!(look(&root, p).expect(p), want, "path {p}");
        }
        assert!(
            matches!(look(&root, "/etc").expect("dir"), Seen::Dir { .. }),
            "dir"
        );
        let _ = fs::remove_dir_all(&d);
    }
}
