//! The I/O of a self-upgrade: stage an artifact beside the installed binary
//! (streamed, hashed as it arrives, capped at the signed size), smoke-run
//! it, swap it in while keeping `outpost.prev`, and the guard's and the
//! operator's rollback. Every step logs at info.
//!
//! Order matters for power cuts; at every instant the installed binary is
//! the old or the new one, complete:
//! 1. stage `.outpost.new` (O_EXCL, 0700 while written), fsync, verify, 0755;
//! 2. hard-link the installed binary to `.outpost.prev.tmp`, rename it to
//!    `outpost.prev`, fsync the directory (the guard exists before a trial);
//! 3. write `trial.json` naming the new binary's SHA-256;
//! 4. rename `.outpost.new` over `outpost`; fsync the directory;
//! 5. write `upgrade.json` (on trial).
//!
//! A cut before 4 leaves the old binary and a trial that does not match it,
//! which the guard drops (and so does the running agent, [`drop_stale_trial`]). This file must not decide policy (that is
//! `trial.rs`) and must never write into the installed binary in place.

use super::release::{self, Manifest, Verified};
use super::sig::PublicKey;
use super::trial::{self, GuardAction, Outcome, Phase, Trial};
use crate::error::{Code, Error, Result};
use crate::fsutil;
use crate::sys::Root;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the smoke run of a new binary may take.
pub const SMOKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The files of one installation (all resolved under the root).
#[derive(Clone, Debug)]
pub struct Layout {
    pub bin: PathBuf,
    pub prev: PathBuf,
    pub staging: PathBuf,
    pub state_dir: PathBuf,
}

impl Layout {
    pub fn new(root: &Root, state_dir: &str) -> Layout {
        let bin = root.path(crate::install::BIN_PATH);
        let dir = bin.parent().map(Path::to_path_buf).unwrap_or_default();
        Layout {
            prev: dir.join("outpost.prev"),
            staging: dir.join(".outpost.new"),
            bin,
            state_dir: root.path(state_dir),
        }
    }
    pub fn dir(&self) -> PathBuf {
        self.bin.parent().map(Path::to_path_buf).unwrap_or_default()
    }
    pub fn trial(&self) -> PathBuf {
        self.state_dir.join("trial.json")
    }
    pub fn outcome(&self) -> PathBuf {
        self.state_dir.join("upgrade.json")
    }
}

fn rejected(msg: impl Into<String>) -> Error {
    Error::new(Code::UpgradeRejected, msg)
}

// ------------------------------------------------------------ state files

fn read_json<T: miniserde::Deserialize>(path: &Path) -> Result<Option<T>> {
    match fs::read_to_string(path) {
        Ok(t) => miniserde::json::from_str(&t).map(Some).map_err(|_| {
            Error::new(
                Code::LocalIo,
                format!("{}: damaged (not valid JSON of its schema)", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", path, &e)),
    }
}

pub fn load_trial(l: &Layout) -> Result<Option<Trial>> {
    read_json(&l.trial())
}

pub fn save_trial(l: &Layout, t: &Trial) -> Result<()> {
    fsutil::write_atomic(&l.trial(), miniserde::json::to_string(t).as_bytes(), 0o600)
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, &e)),
    }
}

pub fn load_outcome(l: &Layout) -> Option<Outcome> {
    match read_json::<Outcome>(&l.outcome()) {
        Ok(o) => o,
        Err(e) => {
            log::warn!("{e}; ignored");
            None
        }
    }
}

pub fn save_outcome(l: &Layout, o: &Outcome) -> Result<()> {
    fsutil::write_atomic(
        &l.outcome(),
        miniserde::json::to_string(o).as_bytes(),
        0o644,
    )
}

/// Record a failure before the swap (the running binary is unchanged);
/// `offer_tag`: the desired-state tag of the offer, when the hub made one.
pub fn record_failure(l: &Layout, to: &str, e: &Error, now: u64, offer_tag: Option<&str>) {
    let mut o = Outcome::new(
        Phase::Failed,
        &crate::version::running(),
        to,
        e.message(),
        e.code().as_i32(),
        now,
    );
    o.offer_tag = offer_tag.map(str::to_string);
    if let Err(w) = save_outcome(l, &o) {
        log::warn!("recording the failed upgrade: {w}");
    }
}

// ------------------------------------------------------------ hashing

/// The file's SHA-256 in hex (install's streamed hash, its length dropped).
fn sha256_file(path: &Path) -> std::io::Result<String> {
    crate::install::sha256_file(path).map(|(sha, _)| sha)
}

fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("syncing directory", dir, &e))
}

// ------------------------------------------------------------ staging

/// Where the artifact comes from.
pub enum Source<'a> {
    /// A local file (`outpost upgrade --bundle`).
    File(&'a Path),
    /// An HTTPS URL, fetched through the agent's transport.
    Url {
        client: &'a crate::http::Client,
        url: &'a str,
    },
}

/// Verify the manifest and its signature, the architecture and the version
/// order. `allow_downgrade` admits an older or equal version (the local
/// command only).
pub fn check_manifest(
    manifest_text: &str,
    sig_text: &str,
    keys: &[PublicKey],
    allow_downgrade: bool,
    at: &str,
) -> Result<Verified> {
    let v = release::verify(manifest_text, sig_text, keys)
        .map_err(|e| rejected(format!("release manifest {at}: {e}")))?;
    let m = &v.manifest;
    if m.arch != release::own_arch() {
        return Err(rejected(format!(
            "release manifest {at}: built for {}, this host runs {}",
            m.arch,
            release::own_arch()
        )));
    }
    let ord = release::compare(&m.version, &crate::version::running())
        .map_err(|e| rejected(format!("release manifest {at}: {e}")))?;
    if ord != std::cmp::Ordering::Greater && !allow_downgrade {
        return Err(rejected(format!(
            "release {} is {} the running {}: refused (a downgrade needs --allow-downgrade on the host)",
            m.version,
            if ord == std::cmp::Ordering::Equal { "the same as" } else { "older than" },
            crate::version::running()
        )));
    }
    log::info!(
        "release manifest {at}: {} {} ({} bytes), signed by key {}",
        m.version,
        m.arch,
        m.size,
        v.key
    );
    Ok(v)
}

/// Copy or download the artifact to the staging file, check size and
/// SHA-256, make it executable and smoke-run it. On any failure the
/// staging file is removed and the installed binary is untouched.
/// `progress` is called for every piece written (the service pings the
/// systemd watchdog from it, so a long download is not mistaken for a hang).
pub fn stage(
    l: &Layout,
    m: &Manifest,
    src: &Source<'_>,
    timeout: Duration,
    progress: &dyn Fn(),
) -> Result<()> {
    if !l.bin.is_file() {
        return Err(Error::new(
            Code::LocalIo,
            format!("no installed binary at {} to upgrade", l.bin.display()),
        ));
    }
    remove(&l.staging)?;
    let dir = l.dir();
    match crate::sys::host().statvfs(&dir) {
        Ok(fs) => space_verdict(&dir, fs.available, m.size)?,
        Err(e) => log::warn!(
            "statvfs {}: {}; staging without a free-space check",
            dir.display(),
            crate::error::io_text(&e)
        ),
    }
    let r = stage_inner(l, m, src, timeout, progress);
    if r.is_err() {
        let _ = fs::remove_file(&l.staging);
    }
    r
}

/// Refuse to stage `need` bytes into `dir` when its filesystem has fewer
/// available (before anything is written, so a full disk is one clear
/// line; a disk that fills up during the download still fails on write).
pub fn space_verdict(dir: &Path, available: u64, need: u64) -> Result<()> {
    if available < need {
        return Err(Error::new(
            Code::LocalIo,
            format!(
                "{}: {need} bytes needed to stage the new binary, {available} available",
                dir.display()
            ),
        ));
    }
    Ok(())
}

fn stage_inner(
    l: &Layout,
    m: &Manifest,
    src: &Source<'_>,
    timeout: Duration,
    progress: &dyn Fn(),
) -> Result<()> {
    let path = &l.staging;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(path)
        .map_err(|e| Error::io("creating", path, &e))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut written: u64 = 0;
    let mut sink = |b: &[u8]| -> Result<()> {
        f.write_all(b).map_err(|e| Error::io("writing", path, &e))?;
        ctx.update(b);
        written += b.len() as u64;
        progress();
        Ok(())
    };
    let what = match src {
        Source::File(p) => {
            log::info!("copying {} to {}", p.display(), path.display());
            let mut input = File::open(p).map_err(|e| Error::io("opening", p, &e))?;
            let mut buf = vec![0u8; 16 * 1024];
            let mut total: u64 = 0;
            loop {
                let n = input
                    .read(&mut buf)
                    .map_err(|e| Error::io("reading", p, &e))?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                if total > m.size {
                    return Err(rejected(format!(
                        "{}: larger than the {} bytes its manifest names",
                        p.display(),
                        m.size
                    )));
                }
                sink(&buf[..n])?;
            }
            p.display().to_string()
        }
        Source::Url { client, url } => {
            log::info!("downloading {url} ({} bytes) to {}", m.size, path.display());
            client.download(url, m.size, timeout, &mut sink)?;
            (*url).to_string()
        }
    };
    if written != m.size {
        return Err(rejected(format!(
            "{what}: {written} bytes, the manifest says {}",
            m.size
        )));
    }
    let got = super::sig::hex(ctx.finish().as_ref());
    if got != m.sha256 {
        return Err(rejected(format!(
            "{what}: SHA-256 {got} does not match the manifest's {}",
            m.sha256
        )));
    }
    f.sync_all().map_err(|e| Error::io("syncing", path, &e))?;
    drop(f);
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| Error::io("making executable", path, &e))?;
    log::info!("{what}: size and SHA-256 match the signed manifest");
    smoke(path, m)?;
    Ok(())
}

/// Run `<new> --version --json`: it must start, exit 0 within
/// [`SMOKE_TIMEOUT`] and name the manifest's version and architecture.
pub fn smoke(path: &Path, m: &Manifest) -> Result<()> {
    let fail = |why: String| rejected(format!("smoke run of {}: {why}", path.display()));
    let mut child = Command::new(path)
        .args(["--version", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_clear()
        .spawn()
        .map_err(|e| fail(format!("does not start: {}", crate::error::io_text(&e))))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() < SMOKE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "no answer within {} s",
                    SMOKE_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(fail(crate::error::io_text(&e))),
        }
    };
    let mut out = String::new();
    if let Some(mut so) = child.stdout.take() {
        let _ = so.by_ref().take(4096).read_to_string(&mut out);
    }
    if !status.success() {
        return Err(fail(format!("exited with {status}")));
    }
    #[derive(miniserde::Deserialize)]
    struct V {
        version: String,
        target: String,
    }
    let v: V = miniserde::json::from_str(out.trim())
        .map_err(|_| fail("no outpost.version/v1 JSON on stdout".into()))?;
    if v.version != m.version {
        return Err(fail(format!(
            "reports version {}, the manifest says {}",
            v.version, m.version
        )));
    }
    if !v.target.starts_with(&format!("{}-", m.arch)) {
        return Err(fail(format!(
            "reports target {}, the manifest says {}",
            v.target, m.arch
        )));
    }
    log::info!(
        "smoke run of {}: {} {} starts",
        path.display(),
        v.version,
        v.target
    );
    Ok(())
}

// ------------------------------------------------------------ swap

/// Swap the staged binary in (see the order in the header) and start the
/// trial. `now` is Unix seconds.
pub fn swap(l: &Layout, m: &Manifest, now: u64) -> Result<()> {
    let from = &crate::version::running();
    // outpost.prev first, durably: the guard that ends the trial is
    // outpost.prev, so it must exist before a trial does (a power cut after
    // trial.json and before the link once left a trial no guard ran for).
    let tmp = l.dir().join(".outpost.prev.tmp");
    remove(&tmp)?;
    fs::hard_link(&l.bin, &tmp).map_err(|e| Error::io("linking", &tmp, &e))?;
    swap_pause("previous binary linked");
    fs::rename(&tmp, &l.prev).map_err(|e| Error::io("renaming to", &l.prev, &e))?;
    fsync_dir(&l.dir())?;
    swap_pause("outpost.prev in place");
    save_trial(l, &Trial::new(from, &m.version, &m.sha256))?;
    swap_pause("trial.json written");
    fs::rename(&l.staging, &l.bin).map_err(|e| Error::io("renaming to", &l.bin, &e))?;
    swap_pause("new binary renamed in");
    fsync_dir(&l.dir())?;
    log::info!(
        "installed {} {} at {} (previous {from} kept as {}); on trial until it checks in",
        m.version,
        m.arch,
        l.bin.display(),
        l.prev.display()
    );
    save_outcome(l, &Outcome::new(Phase::Trial, from, &m.version, "", 0, now))?;
    note_in_install_manifest(l);
    Ok(())
}

/// Test hook (`test-hooks` builds only): `OUTPOST_TEST_SWAP_PAUSE_MS=N`
/// sleeps N ms after each step of [`swap`], so the lab's power-cut scenario
/// can land cuts between the steps (the order of the durable operations is
/// the same; only the gaps between them grow).
fn swap_pause(_step: &str) {
    #[cfg(feature = "test-hooks")]
    if let Some(ms) = std::env::var("OUTPOST_TEST_SWAP_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        log::info!("swap: {_step} (test pause {ms} ms)");
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// Keep install's manifest.json in step: the binary's new hash, and
/// `outpost.prev` as a file install owns (uninstall removes both).
fn note_in_install_manifest(l: &Layout) {
    use crate::install::manifest::{Entry, Manifest as Inst};
    let path = l.state_dir.join(crate::install::MANIFEST_NAME);
    let Ok(text) = fs::read_to_string(&path) else {
        return;
    };
    let Ok(mut man) = Inst::parse(&text, &path.display().to_string()) else {
        return;
    };
    let Some(bin_entry) = man.file(crate::install::BIN_PATH).cloned() else {
        return;
    };
    for (host_path, file) in [
        (crate::install::BIN_PATH.to_string(), &l.bin),
        (format!("{}.prev", crate::install::BIN_PATH), &l.prev),
    ] {
        let Ok(sha) = sha256_file(file) else { continue };
        man.record(Entry {
            path: host_path,
            sha256: sha,
            backup: None,
            backup_mode: None,
            ..bin_entry.clone()
        });
    }
    if let Err(e) = fsutil::write_atomic(&path, man.to_json().as_bytes(), 0o600) {
        log::warn!("updating {}: {e}", path.display());
    }
}

/// Put `outpost.prev` back as the installed binary (a copy: the previous
/// binary stays where it is), record the outcome and end any trial.
pub fn rollback(l: &Layout, reason: &str, now: u64) -> Result<Outcome> {
    if !l.prev.is_file() {
        return Err(Error::new(
            Code::LocalIo,
            format!("no previous binary at {} to roll back to", l.prev.display()),
        ));
    }
    let trial = load_trial(l).unwrap_or(None);
    if let Some(t) = &trial {
        if t.rollback_reason.is_none() {
            let mut t2 = t.clone();
            t2.rollback_reason = Some(reason.to_string());
            save_trial(l, &t2)?;
        }
    }
    let installed = sha256_file(&l.bin).ok();
    let prev = sha256_file(&l.prev).map_err(|e| Error::io("reading", &l.prev, &e))?;
    if installed.as_deref() != Some(prev.as_str()) {
        let tmp = l.dir().join(".outpost.rollback.tmp");
        remove(&tmp)?;
        fs::copy(&l.prev, &tmp).map_err(|e| Error::io("copying to", &tmp, &e))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("syncing", &tmp, &e))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io("making executable", &tmp, &e))?;
        fs::rename(&tmp, &l.bin).map_err(|e| Error::io("renaming to", &l.bin, &e))?;
        fsync_dir(&l.dir())?;
    }
    let (from, to) = match (&trial, load_outcome(l)) {
        (Some(t), _) => (t.from.clone(), t.to.clone()),
        (None, Some(o)) => (o.from, o.to),
        (None, None) => (String::new(), String::new()),
    };
    let o = Outcome::new(Phase::RolledBack, &from, &to, reason, 0, now);
    save_outcome(l, &o)?;
    remove(&l.trial())?;
    note_in_install_manifest(l);
    log::info!(
        "rolled back: {} restored from {} ({reason})",
        l.bin.display(),
        l.prev.display()
    );
    Ok(o)
}

/// The guard (run by the previous binary before each start): count the
/// start of a binary on trial or roll it back. Returns a line for the log.
pub fn guard(l: &Layout, now: u64) -> Result<String> {
    let trial = match load_trial(l) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("{e}: dropping it");
            remove(&l.trial())?;
            None
        }
    };
    let sha = sha256_file(&l.bin).ok();
    match trial::guard(trial.as_ref(), sha.as_deref(), now) {
        GuardAction::Nothing => Ok("no upgrade on trial".into()),
        GuardAction::DropStale => drop_trial(l, trial.as_ref(), now),
        GuardAction::Count(t) => {
            save_trial(l, &t)?;
            Ok(format!(
                "{} on trial: start {} of {} (rolled back after that, or {} min after the first start)",
                t.to,
                t.starts,
                t.max_starts,
                t.window_s / 60
            ))
        }
        GuardAction::Rollback(reason) => {
            let o = rollback(l, &reason, now)?;
            Ok(format!("rolled back from {}: {}", o.to, o.reason))
        }
    }
}

fn drop_trial(l: &Layout, trial: Option<&Trial>, now: u64) -> Result<String> {
    remove(&l.trial())?;
    let t = trial.map(|t| t.to.as_str()).unwrap_or("");
    if let Some(o) = load_outcome(l) {
        if o.phase() == Some(Phase::Trial) && o.to == t {
            let f = Outcome::new(
                Phase::Failed,
                &o.from,
                &o.to,
                "the installed binary is no longer the one on trial",
                0,
                now,
            );
            save_outcome(l, &f)?;
        }
    }
    Ok(format!(
        "trial of {t} dropped: {} is not that binary",
        l.bin.display()
    ))
}

/// The running agent's own check (after a check-in): a trial whose binary
/// is not the installed one is stale (a swap cut short by a power cut), so
/// drop it, as the guard would, rather than wait for a commit that cannot
/// come. `Ok(true)`: dropped.
pub fn drop_stale_trial(l: &Layout, t: &Trial, now: u64) -> Result<bool> {
    let sha = sha256_file(&l.bin).ok();
    if t.rollback_reason.is_some() || sha.is_none() || sha.as_deref() == Some(t.sha256.as_str()) {
        return Ok(false);
    }
    let line = drop_trial(l, Some(t), now)?;
    log::info!("{line}");
    Ok(true)
}

/// Commit the trial of the running binary.
pub fn commit(l: &Layout, t: &Trial, now: u64) -> Result<()> {
    save_outcome(
        l,
        &Outcome::new(Phase::Committed, &t.from, &t.to, "", 0, now),
    )?;
    remove(&l.trial())?;
    log::info!("upgrade from {} to {} committed", t.from, t.to);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_verdict_table() {
        let dir = Path::new("/usr/local/bin");
        for (available, need, ok) in [
            (0, 0, true),
            (999, 1000, false),
            (1000, 1000, true),
            (u64::MAX, 50_000_000, true),
            (0, 1, false),
        ] {
            let r = space_verdict(dir, available, need);
            assert_eq!(r.is_ok(), ok, "{available} available, {need} needed");
            if let Err(e) = r {
                assert_eq!(e.code(), Code::LocalIo);
                assert_eq!(
                    e.message(),
                    format!("/usr/local/bin: {need} bytes needed to stage the new binary, {available} available")
                );
                assert!(!e.message().contains('\n'));
            }
        }
    }
}
