//! hawkBit DDI deployments and cancellations, after a successful poll of
//! the controller's base resource (`commands::checkin::ddi_poll`).
//!
//! A `deploymentBase` carrying a signed outpost release (the convention of
//! `ddi::choose`, docs/hawkbit.md) goes to the SAME upgrade path as the
//! hub's offers (`upgrade::after_checkin_local`: manifest signature,
//! version order, size and SHA-256, smoke run, swap, trial), with feedback
//! `proceeding` when it starts and `closed` + `success`/`failure` when it
//! ends. The action is recorded in `ddi-action.json` (state directory,
//! 0600) before anything is sent, so an action ID is acted on once, and the
//! outcome of a swap (commit or rollback, decided after a restart) is still
//! reported by whichever binary runs next. A `cancelAction` is acknowledged
//! `closed` + `success` when nothing was swapped, `rejected` once the new
//! binary is in place (it is on trial; its rollback is the guard's).
//!
//! It must not act on an action twice, must not start while a trial is
//! open, and must send the DDI token only to the configured server's origin
//! (an artifact link elsewhere, e.g. a CDN, gets no token).

use crate::config::Config;
use crate::ddi::{self, DdiArtifact, Deployment, Release};
use crate::error::{Code, Error, Result};
use crate::http::Client;
use crate::proto::{Artifact, UpgradeOffer};
use crate::upgrade::{self, apply, release, trial::Phase};
use miniserde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const SCHEMA: &str = "outpost.ddi-action/v1";
/// A SWU archive may hold a release of at most `release::MAX_SIZE` bytes
/// plus its small companions.
const MAX_SWU: u64 = release::MAX_SIZE + 1024 * 1024;
/// Cancelled action IDs remembered (so a late `deploymentBase` for one is
/// not acted on).
const MAX_CANCELED: usize = 16;

/// `ddi-action.json`: the last deployment acted on.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub schema: String,
    /// The DDI action ID.
    pub id: String,
    /// The release version (known once its manifest was read; "" before).
    pub version: String,
    /// `started` (proceeding sent or being sent), `swapped` (the new binary
    /// is in place, on trial), `closed` (final feedback decided).
    pub state: String,
    /// `success` or `failure` once closed.
    pub finished: String,
    pub details: Vec<String>,
    /// The final feedback reached the server.
    pub sent: bool,
    /// `<deploymentBase href without query>/feedback`.
    pub feedback_url: String,
    pub at: u64,
}

/// What the caller passes in.
pub struct Ctx<'a> {
    pub root: &'a crate::sys::Root,
    pub cfg: &'a Config,
    pub client: &'a Client,
    /// `Authorization` header (empty: no token configured).
    pub headers: &'a [(&'a str, &'a str)],
    /// The configured endpoint's origin (`https://host:port`).
    pub base: &'a str,
    pub state_dir: PathBuf,
    pub now: u64,
    /// Unix seconds of this process's first successful poll, and the grace
    /// before a trial commits (0 for `checkin`, as for the hub).
    pub checked_in_at: u64,
    pub grace_s: u64,
    pub progress: &'a dyn Fn(),
}

/// What happened, for the summary line and the caller's exit.
#[derive(Default)]
pub struct Step {
    /// Appended to the poll's summary line ("" when nothing happened).
    pub note: String,
    /// A new binary is in place: exit 75 so the next start runs it.
    pub restart: bool,
    /// The deployment failed (feedback sent or pending); `checkin` exits
    /// with its code, `run` logs it and polls on.
    pub error: Option<Error>,
}

fn record_path(dir: &Path) -> PathBuf {
    dir.join("ddi-action.json")
}

fn canceled_path(dir: &Path) -> PathBuf {
    dir.join("ddi-canceled")
}

pub fn load(dir: &Path) -> Option<Record> {
    let t = std::fs::read_to_string(record_path(dir)).ok()?;
    match miniserde::json::from_str::<Record>(&t) {
        Ok(r) if r.schema == SCHEMA => Some(r),
        _ => {
            log::warn!(
                "{}: damaged (not valid JSON of its schema); ignored",
                record_path(dir).display()
            );
            None
        }
    }
}

fn save(dir: &Path, r: &Record) -> Result<()> {
    crate::fsutil::write_atomic(
        &record_path(dir),
        miniserde::json::to_string(r).as_bytes(),
        0o600,
    )
}

fn canceled(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(canceled_path(dir))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn note_canceled(dir: &Path, id: &str) {
    let mut ids = canceled(dir);
    if ids.iter().any(|x| x == id) {
        return;
    }
    ids.push(id.to_string());
    let skip = ids.len().saturating_sub(MAX_CANCELED);
    let text: String = ids[skip..].iter().map(|i| format!("{i}\n")).collect();
    if let Err(e) = crate::fsutil::write_atomic(&canceled_path(dir), text.as_bytes(), 0o600) {
        log::warn!("{e}");
    }
}

/// The token goes only to the configured server (same scheme, host, port).
fn headers_for<'a>(c: &Ctx<'a>, url: &str) -> &'a [(&'a str, &'a str)] {
    if same_origin(c.base, url) {
        c.headers
    } else {
        &[]
    }
}

/// `url` is on `base` (`scheme://host[:port]`, compared without case).
fn same_origin(base: &str, url: &str) -> bool {
    let b = base.to_ascii_lowercase();
    let u = url.to_ascii_lowercase();
    u == b || u.starts_with(&format!("{b}/")) || u.starts_with(&format!("{b}?"))
}

fn without_query(href: &str) -> &str {
    href.split(['?', '#']).next().unwrap_or(href)
}

fn post(c: &Ctx<'_>, url: &str, body: &str) -> Result<()> {
    let r = c
        .client
        .post_json(url, body.as_bytes(), headers_for(c, url))?;
    match r.status {
        200..=299 => Ok(()),
        429 | 503 => Err(Error::new(
            Code::ServerBusy,
            format!("{}: server busy: HTTP {}", r.what, r.status),
        )),
        s => Err(Error::new(Code::BadAnswer, format!("{}: HTTP {s}", r.what))),
    }
}

/// Send the final feedback of a closed record; `sent` is saved on success.
fn send_closed(c: &Ctx<'_>, r: &mut Record) {
    let body = ddi::feedback_body(c.now, "closed", &r.finished, &r.details);
    match post(c, &r.feedback_url, &body) {
        Ok(()) => {
            r.sent = true;
            log::info!("DDI action {}: feedback closed/{} sent", r.id, r.finished);
            if let Err(e) = save(&c.state_dir, r) {
                log::warn!("{e}");
            }
        }
        Err(e) => log::warn!(
            "DDI action {}: feedback closed/{} not sent ({e}); sending it at the next poll",
            r.id,
            r.finished
        ),
    }
}

fn close(c: &Ctx<'_>, r: &mut Record, finished: &str, details: Vec<String>) {
    r.state = "closed".into();
    r.finished = finished.into();
    r.details = details;
    r.sent = false;
    r.at = c.now;
    if let Err(e) = save(&c.state_dir, r) {
        log::warn!("{e}");
    }
    send_closed(c, r);
}

/// After a successful poll: commit a due trial, report a swap's outcome,
/// answer a cancel, act on a deployment.
pub fn handle(c: &Ctx<'_>, poll: &ddi::Poll) -> Step {
    let mut step = Step::default();
    let l = upgrade::layout(c.root, c.cfg);
    // 1. A trial that is due commits (the same decision as after a hub check-in).
    if let Err(e) = upgrade::after_checkin(&upgrade::After {
        root: c.root,
        cfg: c.cfg,
        client: c.client,
        offer: None,
        desired_tag: "",
        kubernetes: None,
        now: c.now,
        checked_in_at: c.checked_in_at,
        grace_s: c.grace_s,
        progress: c.progress,
    }) {
        log::error!("{e}");
    }
    let on_trial = matches!(apply::load_trial(&l), Ok(Some(_)));
    let mut rec = load(&c.state_dir);
    let mut just_closed = false;
    // 2. The outcome of a swap, decided after the restart.
    if let Some(r) = rec.as_mut().filter(|r| r.state == "swapped") {
        if on_trial {
            step.note = format!("; DDI action {} on trial ({})", r.id, r.version);
        } else {
            let o = apply::load_outcome(&l).filter(|o| o.to == r.version);
            let running = crate::version::running();
            match o.as_ref().and_then(|o| o.phase()) {
                Some(Phase::Committed) => {
                    let o = o.as_ref().map(|o| o.from.clone()).unwrap_or_default();
                    close(
                        c,
                        r,
                        "success",
                        vec![format!(
                            "outpost upgraded from {o} to {} and committed",
                            r.version
                        )],
                    );
                }
                Some(Phase::RolledBack) | Some(Phase::Failed) => {
                    let why = o
                        .map(|o| format!("{}: {}", o.state, o.reason))
                        .unwrap_or_default();
                    close(
                        c,
                        r,
                        "failure",
                        vec![format!("upgrade to {}: {why}", r.version)],
                    );
                }
                _ if running == r.version => close(
                    c,
                    r,
                    "success",
                    vec![format!("outpost {} is running", r.version)],
                ),
                _ => close(
                    c,
                    r,
                    "failure",
                    vec![format!(
                        "the swap to {} did not complete; {running} is running",
                        r.version
                    )],
                ),
            }
            step.note = format!("; DDI action {} closed/{}", r.id, r.finished);
            just_closed = true;
        }
    }
    // 3. A final feedback that did not go out yet (not one just tried).
    if let Some(r) = rec
        .as_mut()
        .filter(|r| r.state == "closed" && !r.sent && !just_closed)
    {
        send_closed(c, r);
    }
    // 4. Cancel.
    if let Some(href) = &poll.cancel {
        step.note.push_str(&cancel(c, href, rec.as_ref()));
        return step;
    }
    // 5. Deployment.
    let Some(href) = &poll.deployment else {
        return step;
    };
    let id_in_href = without_query(href)
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    if let Some(r) = rec
        .as_ref()
        .filter(|r| r.id == id_in_href && r.state != "started")
    {
        if !step.note.is_empty() {
            // Closed by this very poll (the note says so).
            return step;
        }
        step.note.push_str(&format!(
            "; DDI action {} already acted on ({}{})",
            r.id,
            r.state,
            if r.finished.is_empty() {
                String::new()
            } else {
                format!("/{}", r.finished)
            }
        ));
        return step;
    }
    if canceled(&c.state_dir).contains(&id_in_href) {
        step.note = format!("; DDI action {id_in_href} was cancelled: not acted on");
        return step;
    }
    if on_trial {
        step.note.push_str(&format!(
            "; DDI action {id_in_href} waits: an upgrade is on trial"
        ));
        return step;
    }
    let reply = match c.client.get(href, headers_for(c, href)) {
        Ok(r) if r.status == 200 => r,
        Ok(r) => {
            step.error = Some(Error::new(
                if r.status == 429 || r.status == 503 {
                    Code::ServerBusy
                } else {
                    Code::BadAnswer
                },
                format!("{}: HTTP {}", r.what, r.status),
            ));
            return step;
        }
        Err(e) => {
            step.error = Some(e);
            return step;
        }
    };
    let feedback_url = format!("{}/feedback", without_query(href));
    let d = match ddi::parse_deployment(&reply.body) {
        Ok(d) => d,
        Err(e) => {
            let e = Error::new(
                Code::BadAnswer,
                format!("{}: not a DDI deployment: {e}", reply.what),
            );
            step.error = Some(e);
            return step;
        }
    };
    if d.download == "skip" {
        step.note = format!("; DDI action {}: download skip (nothing to do yet)", d.id);
        return step;
    }
    if d.update == "skip" || d.maintenance_window.as_deref() == Some("unavailable") {
        step.note = format!(
            "; DDI action {}: outside its maintenance window (waiting)",
            d.id
        );
        return step;
    }
    let mut r = match rec.filter(|r| r.id == d.id && r.state == "started") {
        Some(r) => r,
        None => Record {
            schema: SCHEMA.into(),
            id: d.id.clone(),
            version: String::new(),
            state: "started".into(),
            finished: String::new(),
            details: Vec::new(),
            sent: false,
            feedback_url,
            at: c.now,
        },
    };
    if let Err(e) = save(&c.state_dir, &r) {
        step.error = Some(e);
        return step;
    }
    log::info!(
        "DDI action {}: deployment ({} download, {} update)",
        d.id,
        d.download,
        d.update
    );
    let proceeding = ddi::feedback_body(
        c.now,
        "proceeding",
        "none",
        &[format!(
            "outpost {} on {}: verifying and installing",
            crate::version::running(),
            release::own_arch()
        )],
    );
    if let Err(e) = post(c, &r.feedback_url, &proceeding) {
        step.error = Some(e);
        return step;
    }
    let tmp = c.state_dir.join("ddi-artifact.tmp");
    let result = deploy(c, &d, &tmp, &mut r);
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(true) => {
            r.state = "swapped".into();
            r.at = c.now;
            if let Err(e) = save(&c.state_dir, &r) {
                log::warn!("{e}");
            }
            step.restart = true;
            step.note = format!("; DDI action {}: {} swapped in (on trial)", r.id, r.version);
        }
        Ok(false) => {
            let detail = format!("outpost {} is already running", r.version);
            close(c, &mut r, "success", vec![detail]);
            step.note = format!("; DDI action {}: already running {}", r.id, r.version);
        }
        Err(e) if e.code().is_retryable() => {
            // A network failure or a busy server: the same action is tried
            // again at the next poll (the record stays `started`).
            step.note = format!("; DDI action {}: will retry", r.id);
            step.error = Some(e);
        }
        Err(e) => {
            close(c, &mut r, "failure", vec![e.message().to_string()]);
            step.note = format!("; DDI action {} closed/failure", r.id);
            step.error = Some(e);
        }
    }
    step
}

fn cancel(c: &Ctx<'_>, href: &str, rec: Option<&Record>) -> String {
    let reply = match c.client.get(href, headers_for(c, href)) {
        Ok(r) if r.status == 200 => r,
        Ok(r) => {
            log::warn!("{}: HTTP {}", r.what, r.status);
            return String::new();
        }
        Err(e) => {
            log::warn!("{e}");
            return String::new();
        }
    };
    let (cid, stop) = match ddi::parse_cancel(&reply.body) {
        Ok(x) => x,
        Err(e) => {
            log::warn!("{}: not a DDI cancelAction: {e}", reply.what);
            return String::new();
        }
    };
    let url = format!("{}/feedback", without_query(href));
    // Once the new binary is in place (on trial, or committed by this
    // very poll) the action can no longer be cancelled.
    let swapped = rec.is_some_and(|r| {
        r.id == stop && (r.state == "swapped" || (r.state == "closed" && r.finished == "success"))
    });
    let (execution, finished, detail) = if swapped {
        (
            "rejected",
            "success",
            format!("action {stop}: the new binary is already in place; it commits or rolls back on its own"),
        )
    } else {
        note_canceled(&c.state_dir, &stop);
        (
            "closed",
            "success",
            format!("action {stop}: cancelled before anything was installed"),
        )
    };
    let body = ddi::feedback_body(c.now, execution, finished, &[detail]);
    match post(c, &url, &body) {
        Ok(()) => {
            log::info!("DDI cancel {cid} of action {stop}: {execution}");
            format!("; DDI cancel of action {stop}: {execution}")
        }
        Err(e) => {
            log::warn!("DDI cancel {cid}: feedback not sent ({e}); answering at the next poll");
            String::new()
        }
    }
}

/// Find, fetch and hand the release to the upgrade path. `Ok(true)`:
/// swapped; `Ok(false)`: that version already runs.
fn deploy(c: &Ctx<'_>, d: &Deployment, tmp: &Path, r: &mut Record) -> Result<bool> {
    let rejected = |m: String| Error::new(Code::UpgradeRejected, m);
    let chosen = ddi::choose(d, release::own_arch())
        .map_err(|e| rejected(format!("DDI action {}: {e}", d.id)))?;
    let timeout_for = |size: u64| {
        upgrade::download_timeout(Duration::from_secs(c.cfg.request_timeout.value), size)
    };
    let (verified, mtext, stext, href) = match &chosen {
        Release::Split {
            binary,
            manifest,
            signature,
        } => {
            let mtext = small(c, manifest, timeout_for(0))?;
            let stext = small(c, signature, timeout_for(0))?;
            // Verified before the big download (and again by the upgrade path).
            let Some(m) = preverify(c, d, &mtext, &stext, r)? else {
                return Ok(false);
            };
            if binary.size != m.size {
                return Err(rejected(format!(
                    "DDI action {}: artifact {} is {} bytes, its signed manifest says {}",
                    d.id, binary.filename, binary.size, m.size
                )));
            }
            fetch(c, binary, m.size, tmp, timeout_for(m.size))?;
            (m, mtext, stext, binary.href.clone())
        }
        Release::Swu(a) => {
            if a.size > MAX_SWU {
                return Err(rejected(format!(
                    "DDI action {}: {} is {} bytes (at most {MAX_SWU})",
                    d.id, a.filename, a.size
                )));
            }
            let archive = c.state_dir.join("ddi-archive.tmp");
            let res = fetch(c, a, a.size, &archive, timeout_for(a.size))
                .and_then(|_| unpack_swu(&archive, tmp, &a.filename));
            let _ = std::fs::remove_file(&archive);
            let (mtext, stext) = res?;
            let Some(m) = preverify(c, d, &mtext, &stext, r)? else {
                return Ok(false);
            };
            (m, mtext, stext, a.href.clone())
        }
    };
    let offer = UpgradeOffer {
        version: verified.version.clone(),
        min_version: String::new(),
        artifacts: vec![Artifact {
            arch: verified.arch.clone(),
            url: href,
            sha256: verified.sha256.clone(),
            size: verified.size,
            manifest: Some(mtext),
            signature: Some(stext),
        }],
    };
    let tag = format!("ddi:{}", d.id);
    let swapped = upgrade::after_checkin_local(
        &upgrade::After {
            root: c.root,
            cfg: c.cfg,
            client: c.client,
            offer: Some(&offer),
            desired_tag: &tag,
            kubernetes: None,
            now: c.now,
            checked_in_at: c.checked_in_at,
            grace_s: c.grace_s,
            progress: c.progress,
        },
        tmp,
    )?;
    if swapped {
        return Ok(true);
    }
    // Not tried again (rolled back earlier, or refused for good).
    let l = upgrade::layout(c.root, c.cfg);
    let why = apply::load_outcome(&l)
        .filter(|o| o.to == verified.version)
        .map(|o| format!("{} earlier: {}", o.state, o.reason))
        .unwrap_or_else(|| "not tried again".into());
    Err(rejected(format!(
        "DDI action {}: {} not installed ({why})",
        d.id, verified.version
    )))
}

/// Verify the manifest's signature (and architecture) and record its
/// version; `None` when that version already runs, an error for an older
/// one. The upgrade path verifies everything again.
fn preverify(
    c: &Ctx<'_>,
    d: &Deployment,
    mtext: &str,
    stext: &str,
    r: &mut Record,
) -> Result<Option<release::Manifest>> {
    let v = apply::check_manifest(
        mtext,
        stext,
        &upgrade::trusted_keys(c.cfg),
        true,
        &format!("of DDI action {}", d.id),
    )?;
    r.version = v.manifest.version.clone();
    let _ = save(&c.state_dir, r);
    let running = crate::version::running();
    if v.manifest.version == running {
        return Ok(None);
    }
    if release::compare(&v.manifest.version, &running).ok() != Some(std::cmp::Ordering::Greater) {
        return Err(Error::new(
            Code::UpgradeRejected,
            format!(
                "DDI action {}: release {} is older than the running {running}: refused (a downgrade needs --allow-downgrade on the host)",
                d.id, v.manifest.version
            ),
        ));
    }
    Ok(Some(v.manifest))
}

/// A manifest or signature artifact, into memory (at most 4 KiB).
fn small(c: &Ctx<'_>, a: &DdiArtifact, timeout: Duration) -> Result<String> {
    let mut buf = Vec::new();
    c.client.download_with(
        &a.href,
        headers_for(c, &a.href),
        release::MAX_TEXT as u64,
        timeout,
        &mut |b| {
            buf.extend_from_slice(b);
            Ok(())
        },
    )?;
    String::from_utf8(buf).map_err(|_| {
        Error::new(
            Code::UpgradeRejected,
            format!("{}: not UTF-8 text", a.filename),
        )
    })
}

/// Stream an artifact to `to` (0600, created anew), at most `max` bytes,
/// checking the server's SHA-256 (or SHA-1, all hawkBit always gives) on
/// the way: an integrity check of the transfer; trust comes from the
/// signed manifest.
fn fetch(c: &Ctx<'_>, a: &DdiArtifact, max: u64, to: &Path, timeout: Duration) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(to);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| Error::io("creating", to, &e))?;
    let (alg, want) = match (&a.sha256, &a.sha1) {
        (Some(h), _) => (&ring::digest::SHA256, Some(h.clone())),
        (None, Some(h)) => (&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, Some(h.clone())),
        (None, None) => (&ring::digest::SHA256, None),
    };
    let mut ctx = ring::digest::Context::new(alg);
    log::info!(
        "downloading {} ({} bytes) to {}",
        crate::http::safe_url(&a.href),
        a.size,
        to.display()
    );
    let n = c
        .client
        .download_with(&a.href, headers_for(c, &a.href), max, timeout, &mut |b| {
            f.write_all(b).map_err(|e| Error::io("writing", to, &e))?;
            ctx.update(b);
            (c.progress)();
            Ok(())
        })?;
    f.sync_all().map_err(|e| Error::io("syncing", to, &e))?;
    if n != a.size {
        return Err(Error::new(
            Code::UpgradeRejected,
            format!("{}: {n} bytes, the deployment says {}", a.filename, a.size),
        ));
    }
    let got = upgrade::sig::hex(ctx.finish().as_ref());
    if let Some(w) = want {
        if got != w {
            return Err(Error::new(
                Code::UpgradeRejected,
                format!(
                    "{}: {} {got} does not match the deployment's {w}",
                    a.filename,
                    if a.sha256.is_some() {
                        "SHA-256"
                    } else {
                        "SHA-1"
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// Unpack a SWU archive (cpio newc or crc): `sw-description` is skipped,
/// `X.manifest` and `X.manifest.sig` are read (4 KiB each at most), the one
/// other regular file is the binary, written to `bin`. Returns the
/// manifest and signature texts.
pub fn unpack_swu(archive: &Path, bin: &Path, name: &str) -> Result<(String, String)> {
    use std::os::unix::fs::OpenOptionsExt;
    let bad = |m: String| Error::new(Code::UpgradeRejected, format!("{name}: {m}"));
    let file = std::fs::File::open(archive).map_err(|e| Error::io("opening", archive, &e))?;
    let mut input = std::io::BufReader::new(file);
    let mut manifest: Option<(String, String)> = None;
    let mut signature: Option<(String, String)> = None;
    let mut binary: Option<String> = None;
    for _ in 0..64 {
        let mut entry = cpio::newc::Reader::new(input)
            .map_err(|e| bad(format!("not a SWU (cpio newc) archive: {e}")))?;
        if entry.entry().is_trailer() {
            break;
        }
        let ename = entry.entry().name().trim_start_matches("./").to_string();
        let size = u64::from(entry.entry().file_size());
        let regular = entry.entry().mode() & 0o170000 == 0o100000;
        if ename == "sw-description" || !regular {
            input = entry
                .finish()
                .map_err(|e| bad(format!("truncated at {ename}: {e}")))?;
            continue;
        }
        if ename.ends_with(".manifest") || ename.ends_with(".manifest.sig") {
            if size > release::MAX_TEXT as u64 {
                return Err(bad(format!("{ename} is larger than 4 KiB")));
            }
            let mut t = String::new();
            entry
                .read_to_string(&mut t)
                .map_err(|e| bad(format!("{ename}: {e}")))?;
            let slot = if ename.ends_with(".sig") {
                &mut signature
            } else {
                &mut manifest
            };
            *slot = Some((ename, t));
        } else {
            if binary.is_some() {
                return Err(bad(format!(
                    "more than one file besides sw-description and the manifest ({ename})"
                )));
            }
            if size > release::MAX_SIZE {
                return Err(bad(format!("{ename} is larger than {}", release::MAX_SIZE)));
            }
            let _ = std::fs::remove_file(bin);
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(bin)
                .map_err(|e| Error::io("creating", bin, &e))?;
            let n =
                std::io::copy(&mut entry, &mut out).map_err(|e| Error::io("writing", bin, &e))?;
            if n != size {
                return Err(bad(format!("truncated in {ename}")));
            }
            out.sync_all().map_err(|e| Error::io("syncing", bin, &e))?;
            binary = Some(ename);
        }
        input = entry.finish().map_err(|e| bad(format!("truncated: {e}")))?;
    }
    let (Some(b), Some((mn, m)), Some((sn, s))) = (binary, manifest, signature) else {
        return Err(bad(
            "no signed outpost release inside (want X, X.manifest and X.manifest.sig)".into(),
        ));
    };
    if mn != format!("{b}.manifest") || sn != format!("{b}.manifest.sig") {
        return Err(bad(format!(
            "the manifest ({mn}) and signature ({sn}) do not name the binary {b}"
        )));
    }
    Ok((m, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
        let p = dir.join("a.swu");
        let mut out = std::fs::File::create(&p).expect("create");
        for (i, (name, data)) in files.iter().enumerate() {
            let mut w = cpio::newc::Builder::new(name)
                .ino(i as u32 + 1)
                .mode(0o100644)
                .write(out, data.len() as u32);
            w.write_all(data).expect("write");
            out = w.finish().expect("finish");
        }
        cpio::newc::trailer(out).expect("trailer");
        p
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("outpost-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn swu_unpacks_the_release_and_refuses_anything_else() {
        let d = tmpdir("swu");
        let bin = d.join("bin");
        let ok = archive(
            &d,
            &[
                ("sw-description", b"software = { version = \"0.9.0\"; };"),
                ("outpost", b"\x7fELF binary"),
                ("outpost.manifest", b"{\"m\":1}\n"),
                ("outpost.manifest.sig", b"untrusted comment: x\nsig\n"),
            ],
        );
        let (m, s) = unpack_swu(&ok, &bin, "a.swu").expect("unpacks");
        assert_eq!(m, "{\"m\":1}\n");
        assert!(s.starts_with("untrusted comment"));
        assert_eq!(std::fs::read(&bin).expect("bin"), b"\x7fELF binary");
        type Files<'a> = Vec<(&'a str, &'a [u8])>;
        let cases: Vec<(&str, Files, &str)> = vec![
            (
                "no signature",
                vec![("outpost", b"x"), ("outpost.manifest", b"m")],
                "no signed outpost release inside",
            ),
            (
                "two binaries",
                vec![("outpost", b"x"), ("other", b"y")],
                "more than one file",
            ),
            (
                "names do not match",
                vec![
                    ("outpost", b"x"),
                    ("evil.manifest", b"m"),
                    ("evil.manifest.sig", b"s"),
                ],
                "do not name the binary outpost",
            ),
            (
                "oversized manifest",
                vec![("outpost.manifest", &[b'a'; 5000])],
                "larger than 4 KiB",
            ),
        ];
        for (what, files, want) in cases {
            let p = archive(&d, &files);
            let e = unpack_swu(&p, &bin, "a.swu").expect_err(what);
            assert_eq!(e.code(), Code::UpgradeRejected, "{what}");
            assert!(
                e.message().starts_with("a.swu: ") && e.message().contains(want),
                "{what}: {e}"
            );
        }
        // Not cpio at all, and a truncated archive.
        std::fs::write(d.join("junk"), b"hsqs not a cpio").expect("write");
        let e = unpack_swu(&d.join("junk"), &bin, "a.swu").expect_err("junk");
        assert!(e.message().contains("not a SWU (cpio newc) archive"), "{e}");
        let full = std::fs::read(&ok).expect("read");
        std::fs::write(d.join("cut"), &full[..200]).expect("write");
        assert!(unpack_swu(&d.join("cut"), &bin, "a.swu").is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn token_goes_only_to_the_configured_origin() {
        let base = "https://hawkbit.example:8443";
        assert!(same_origin(
            base,
            "https://hawkbit.example:8443/DEFAULT/controller/v1/x/softwaremodules/1/artifacts/a"
        ));
        assert!(same_origin(base, "HTTPS://HAWKBIT.example:8443/x"));
        for other in [
            "https://hawkbit.example:8443.evil.test/x",
            "https://hawkbit.example:84430/x",
            "https://hawkbit.example/x",
            "https://cdn.example/x",
            "http://hawkbit.example:8443/x",
        ] {
            assert!(!same_origin(base, other), "{other}");
        }
        assert_eq!(
            crate::http::safe_url("https://u:pw@cdn.example/a/b?X-Sig=secret"),
            "https://cdn.example/a/b"
        );
        assert_eq!(
            without_query("https://h/a/deploymentBase/8?c=-2"),
            "https://h/a/deploymentBase/8"
        );
    }
}
