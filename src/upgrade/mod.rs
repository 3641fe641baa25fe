//! Self-upgrade: act on the hub's upgrade offer (after a successful
//! check-in, in `run` and `checkin` alike) or on a local bundle, with a
//! signed manifest, a streamed download, a smoke run, an atomic swap that
//! keeps `outpost.prev`, and a trial that the previous binary's guard ends
//! in a rollback when the new one does not commit (docs/upgrade.md).
//!
//! * `sig.rs`: signify Ed25519 keys and signatures (checked with ring);
//! * `release.rs`: the signed release manifest and semver order;
//! * `trial.rs`: trial and outcome files, the guard and commit decisions;
//! * `apply.rs`: staging, smoke run, swap, rollback, guard (the I/O).
//!
//! This file ties them to the check-in: which offer to act on, which keys
//! to trust, what to report. It must not run while another upgrade is on
//! trial, nor act on an offer that is not newer than the running binary.

pub mod apply;
pub mod release;
pub mod sig;
pub mod trial;

use crate::config::Config;
use crate::error::{Code, Error, Result};
use crate::proto::{KubernetesUpgrade, UpgradeOffer, UpgradeReport};
use crate::sys::Root;
use apply::{Layout, Source};
use sig::PublicKey;
use std::time::Duration;
use trial::Phase;

/// Release keys built in at build time (`OUTPOST_RELEASE_KEY_1/2`: the
/// base64 line of a signify public key); room for two so a key can rotate.
const BUILTIN_KEYS: [Option<&str>; 2] = [
    option_env!("OUTPOST_RELEASE_KEY_1"),
    option_env!("OUTPOST_RELEASE_KEY_2"),
];

/// The trusted release keys: built-in plus `outpost.upgrade.publicKeys`.
pub fn trusted_keys(cfg: &Config) -> Vec<PublicKey> {
    let mut keys = Vec::new();
    for k in BUILTIN_KEYS.iter().flatten() {
        match PublicKey::parse(k) {
            Ok(k) => keys.push(k),
            Err(e) => log::warn!("built-in release key: {e}"),
        }
    }
    for k in &cfg.upgrade_keys.value {
        // Validated when the config was read.
        if let Ok(k) = PublicKey::parse(k) {
            keys.push(k);
        }
    }
    keys
}

pub fn layout(root: &Root, cfg: &Config) -> Layout {
    Layout::new(root, &cfg.state_dir.value)
}

/// The report a check-in carries: the trial in progress, or an outcome the
/// hub has not heard yet.
pub fn report(l: &Layout) -> Option<UpgradeReport> {
    let o = apply::load_outcome(l)?;
    if o.reported && o.phase() != Some(Phase::Trial) {
        return None;
    }
    Some(UpgradeReport {
        state: o.state,
        from: o.from,
        to: o.to,
        reason: o.reason,
        code: o.code,
    })
}

/// A successful check-in carried `sent`: do not send it again.
pub fn mark_reported(l: &Layout, sent: &UpgradeReport) {
    if let Some(mut o) = apply::load_outcome(l) {
        if o.state == sent.state && o.to == sent.to && !o.reported {
            o.reported = true;
            if let Err(e) = apply::save_outcome(l, &o) {
                log::warn!("{e}");
            }
        }
    }
}

/// Time allowed for an artifact of `size` bytes: the request timeout plus
/// one second per 32 KiB (a stalled server ends within this bound).
pub fn download_timeout(request: Duration, size: u64) -> Duration {
    request + Duration::from_secs(size / (32 * 1024))
}

/// What to do after a successful check-in.
pub struct After<'a> {
    pub root: &'a Root,
    pub cfg: &'a Config,
    pub client: &'a crate::http::Client,
    pub offer: Option<&'a UpgradeOffer>,
    /// Tag of the desired state holding the offer.
    pub desired_tag: &'a str,
    /// A Kubernetes upgrade the hub's cluster gate released.
    pub kubernetes: Option<&'a KubernetesUpgrade>,
    /// Unix seconds now and of the first successful check-in of this process.
    pub now: u64,
    pub checked_in_at: u64,
    /// Seconds to stay up after that check-in before committing.
    pub grace_s: u64,
    /// Called while an artifact streams in (the service pings its watchdog).
    pub progress: &'a dyn Fn(),
}

/// Commit a trial that is due, else act on an upgrade offer. `Ok(true)`:
/// a new binary was swapped in; the caller exits 75 so the next start runs
/// it. A failure is recorded (reported at the next check-in) and returned.
pub fn after_checkin(a: &After<'_>) -> Result<bool> {
    decide(a, None)
}

/// [`after_checkin`] for an offer whose binary the caller already
/// downloaded to `local` (hawkBit DDI: through the DDI token, or out of a
/// SWU archive). Everything else is the same path: manifest signature,
/// version order, size and SHA-256, smoke run, swap, trial.
pub fn after_checkin_local(a: &After<'_>, local: &std::path::Path) -> Result<bool> {
    decide(a, Some(local))
}

fn decide(a: &After<'_>, local: Option<&std::path::Path>) -> Result<bool> {
    let l = layout(a.root, a.cfg);
    if let Some(k) = a.kubernetes {
        match kubernetes_verdict(k, &crate::version::running()) {
            Ok(()) => log::info!(
                "Kubernetes upgrade to {} released for this host (needs agent >= {}: ok)",
                k.version,
                k.min_agent_version
            ),
            Err(why) => log::error!("{why}"),
        }
    }
    let mut trial = apply::load_trial(&l).unwrap_or(None);
    if let Some(t) = &trial {
        if apply::drop_stale_trial(&l, t, a.now)? {
            trial = None;
        }
    }
    if let Some(t) = &trial {
        if trial::commit_due(
            trial.as_ref(),
            &crate::version::running(),
            Some(a.checked_in_at),
            a.now,
            a.grace_s,
        ) {
            apply::commit(&l, t, a.now)?;
        }
        // One upgrade at a time: nothing else while a trial is open.
        return Ok(false);
    }
    let Some(offer) = a.offer else {
        return Ok(false);
    };
    let ord = match release::compare(&offer.version, &crate::version::running()) {
        Ok(o) => o,
        Err(e) => {
            let e = Error::new(Code::UpgradeRejected, format!("upgrade offer: {e}"));
            note_failure(&l, &offer.version, &e, a.now, a.desired_tag);
            return Err(e);
        }
    };
    match ord {
        std::cmp::Ordering::Equal => return Ok(false),
        std::cmp::Ordering::Less => {
            let e = Error::new(
                Code::UpgradeRejected,
                format!(
                    "upgrade offer: {} is older than the running {}: refused (a downgrade needs --allow-downgrade on the host)",
                    offer.version,
                    crate::version::running()
                ),
            );
            note_failure(&l, &offer.version, &e, a.now, a.desired_tag);
            return Err(e);
        }
        std::cmp::Ordering::Greater => {}
    }
    if let Some(o) = apply::load_outcome(&l) {
        // A rolled-back version is never tried again automatically; an
        // offer refused for good is not tried again until the hub changes it.
        let permanent = Code::ALL
            .iter()
            .any(|c| c.as_i32() == o.code && !c.is_retryable());
        let same_offer = o.offer_tag.as_deref() == Some(a.desired_tag);
        if o.to == offer.version
            && (o.phase() == Some(Phase::RolledBack)
                || (o.phase() == Some(Phase::Failed) && permanent && same_offer))
        {
            log::info!(
                "upgrade offer {}: not tried again ({} earlier: {})",
                offer.version,
                o.state,
                o.reason
            );
            return Ok(false);
        }
    }
    let r = act(a, &l, offer, local);
    if let Err(e) = &r {
        note_failure(&l, &offer.version, e, a.now, a.desired_tag);
    }
    r.map(|_| true)
}

fn note_failure(l: &Layout, to: &str, e: &Error, now: u64, tag: &str) {
    // The same refusal again is not news for the hub.
    if let Some(o) = apply::load_outcome(l) {
        if o.to == to
            && o.reason == e.message()
            && o.phase() == Some(Phase::Failed)
            && o.offer_tag.as_deref() == Some(tag)
        {
            return;
        }
    }
    log::error!("upgrade to {to} failed: {e}");
    apply::record_failure(l, to, e, now, Some(tag));
}

fn act(
    a: &After<'_>,
    l: &Layout,
    offer: &UpgradeOffer,
    local: Option<&std::path::Path>,
) -> Result<()> {
    let arch = release::own_arch();
    let art = offer
        .artifacts
        .iter()
        .find(|x| x.arch == arch)
        .ok_or_else(|| {
            Error::new(
                Code::UpgradeRejected,
                format!("upgrade offer {}: no artifact for {arch}", offer.version),
            )
        })?;
    let (Some(mtext), Some(stext)) = (&art.manifest, &art.signature) else {
        return Err(Error::new(
            Code::UpgradeRejected,
            format!(
                "upgrade offer {}: the {arch} artifact has no signed manifest",
                offer.version
            ),
        ));
    };
    let at = format!("of offer {}", offer.version);
    let v = apply::check_manifest(mtext, stext, &trusted_keys(a.cfg), false, &at)?;
    let m = &v.manifest;
    if m.version != offer.version || m.sha256 != art.sha256 || m.size != art.size {
        return Err(Error::new(
            Code::UpgradeRejected,
            format!(
                "upgrade offer {}: the offer (version, sha256, size) does not match its signed manifest",
                offer.version
            ),
        ));
    }
    if local.is_none()
        && !art.url.to_ascii_lowercase().starts_with("https://")
        && !a.client.settings().allow_plain_loopback
    {
        return Err(Error::new(
            Code::UpgradeRejected,
            format!(
                "upgrade offer {}: artifact URL is not https:// (refused)",
                offer.version
            ),
        ));
    }
    log::info!(
        "upgrading from {} to {}",
        crate::version::running(),
        m.version
    );
    let timeout = download_timeout(Duration::from_secs(a.cfg.request_timeout.value), m.size);
    let src = match local {
        Some(p) => Source::File(p),
        None => Source::Url {
            client: a.client,
            url: &art.url,
        },
    };
    apply::stage(l, m, &src, timeout, a.progress)?;
    apply::swap(l, m, a.now)?;
    Ok(())
}

/// Defense in depth for the cluster gate: an instruction whose minimum
/// agent version is above ours is refused, whatever the hub decided.
pub fn kubernetes_verdict(k: &KubernetesUpgrade, running: &str) -> std::result::Result<(), String> {
    match release::compare(running, &k.min_agent_version) {
        Ok(std::cmp::Ordering::Less) => Err(format!(
            "refusing the Kubernetes upgrade to {}: it needs agent >= {}, this agent is {running} (agent_too_old)",
            k.version, k.min_agent_version
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("refusing the Kubernetes upgrade to {}: {e}", k.version)),
    }
}

/// The last upgrade as `outpost status --json` shows it (the `upgrade`
/// member; absent when no upgrade was ever tried): the outcome from
/// `upgrade.json`, and while a new binary is on trial its count of starts
/// from `trial.json`.
#[derive(miniserde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct StatusView {
    /// `on_trial`, `committed`, `rolled_back` or `failed`.
    pub state: String,
    pub from: String,
    pub to: String,
    /// Why it failed or was rolled back ("" otherwise).
    pub reason: String,
    /// The exit code of a failure (0 otherwise).
    pub code: i32,
    /// RFC 3339 UTC of the last change (None: only a trial, no outcome yet).
    pub at: Option<String>,
    /// While on trial: starts counted by the guard, and the limit.
    pub trial_starts: Option<u32>,
    pub trial_max_starts: Option<u32>,
}

pub fn status_view(l: &Layout) -> Option<StatusView> {
    let trial = apply::load_trial(l).unwrap_or(None);
    let o = apply::load_outcome(l);
    if let Some(t) = &trial {
        // The trial file is the truth while it exists (the outcome may lag
        // after a power cut between the swap and its write).
        let at = o
            .as_ref()
            .filter(|o| o.to == t.to && o.phase() == Some(Phase::Trial))
            .map(|o| crate::timefmt::rfc3339(o.at));
        return Some(StatusView {
            state: Phase::Trial.as_str().into(),
            from: t.from.clone(),
            to: t.to.clone(),
            reason: t.rollback_reason.clone().unwrap_or_default(),
            code: 0,
            at,
            trial_starts: Some(t.starts),
            trial_max_starts: Some(t.max_starts),
        });
    }
    let o = o?;
    Some(StatusView {
        state: o.state,
        from: o.from,
        to: o.to,
        reason: o.reason,
        code: o.code,
        at: Some(crate::timefmt::rfc3339(o.at)),
        trial_starts: None,
        trial_max_starts: None,
    })
}

/// `status_json` (an object) with `"upgrade": view` appended as its last
/// member; the status members keep their order.
pub fn with_upgrade(status_json: &str, view: Option<&StatusView>) -> String {
    match (view, status_json.trim_end().strip_suffix('}')) {
        (Some(v), Some(head)) => {
            let sep = if head.trim_end().ends_with('{') {
                ""
            } else {
                ","
            };
            format!("{head}{sep}\"upgrade\":{}}}", miniserde::json::to_string(v))
        }
        _ => status_json.to_string(),
    }
}

/// The line `outpost status` shows for the last upgrade, if any.
pub fn status_line(l: &Layout) -> Option<String> {
    let trial = apply::load_trial(l).unwrap_or(None);
    if let Some(t) = trial {
        return Some(format!(
            "upgrade: {} -> {} on trial (start {} of {}{})",
            t.from,
            t.to,
            t.starts,
            t.max_starts,
            match &t.rollback_reason {
                Some(r) => format!("; rolling back: {r}"),
                None => String::new(),
            }
        ));
    }
    let o = apply::load_outcome(l)?;
    let when = crate::timefmt::rfc3339(o.at);
    Some(match o.phase() {
        Some(Phase::Committed) => format!("upgrade: {} -> {} committed at {when}", o.from, o.to),
        Some(Phase::RolledBack) => {
            format!(
                "upgrade: {} -> {} rolled back at {when}: {}",
                o.from, o.to, o.reason
            )
        }
        Some(Phase::Failed) => format!(
            "upgrade to {} failed at {when} (exit {}): {}",
            o.to, o.code, o.reason
        ),
        _ => format!("upgrade: {} -> {} {}", o.from, o.to, o.state),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_layout(name: &str) -> (std::path::PathBuf, Layout) {
        let d =
            std::env::temp_dir().join(format!("outpost-upg-view-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("usr/local/bin")).unwrap();
        std::fs::create_dir_all(d.join("var/lib/outpost")).unwrap();
        let l = Layout::new(&Root::new(d.clone()), "/var/lib/outpost");
        (d, l)
    }

    #[test]
    fn status_view_from_the_files() {
        let (d, l) = tmp_layout("files");
        assert_eq!(status_view(&l), None, "no upgrade ever");
        let mut t = trial::Trial::new("0.1.0", "0.2.0", "abc");
        t.starts = 2;
        apply::save_trial(&l, &t).unwrap();
        let v = status_view(&l).unwrap();
        assert_eq!(
            (
                v.state.as_str(),
                v.to.as_str(),
                v.at.as_deref(),
                v.trial_starts,
                v.trial_max_starts
            ),
            ("on_trial", "0.2.0", None, Some(2), Some(trial::MAX_STARTS))
        );
        apply::save_outcome(
            &l,
            &trial::Outcome::new(Phase::Trial, "0.1.0", "0.2.0", "", 0, 1_700_000_000),
        )
        .unwrap();
        assert_eq!(
            status_view(&l).unwrap().at.as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        std::fs::remove_file(l.trial()).unwrap();
        apply::save_outcome(
            &l,
            &trial::Outcome::new(Phase::RolledBack, "0.1.0", "0.2.0", "why", 0, 1_700_000_000),
        )
        .unwrap();
        let v = status_view(&l).unwrap();
        assert_eq!(
            (v.state.as_str(), v.reason.as_str(), v.trial_starts),
            ("rolled_back", "why", None)
        );
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn upgrade_member_is_appended_last() {
        let v = StatusView {
            state: "failed".into(),
            from: "0.1.0".into(),
            to: "0.2.0".into(),
            reason: "a \"quoted\" reason".into(),
            code: 20,
            at: Some("2026-12-06T00:00:00Z".into()),
            trial_starts: None,
            trial_max_starts: None,
        };
        let out = with_upgrade(r#"{"schema":"outpost.status/v1","host_id":"h"}"#, Some(&v));
        assert!(
            out.starts_with(
                r#"{"schema":"outpost.status/v1","host_id":"h","upgrade":{"state":"failed""#
            ),
            "{out}"
        );
        let back: miniserde::json::Value = miniserde::json::from_str(&out).unwrap();
        let miniserde::json::Value::Object(o) = back else {
            panic!("{out}")
        };
        assert!(o.contains_key("upgrade"));
        assert_eq!(with_upgrade("{}", Some(&v)).matches("upgrade").count(), 1);
        assert!(
            miniserde::json::from_str::<miniserde::json::Value>(&with_upgrade("{}", Some(&v)))
                .is_ok()
        );
        assert_eq!(with_upgrade("null", Some(&v)), "null");
        assert_eq!(with_upgrade("{\"a\":1}", None), "{\"a\":1}");
    }

    #[test]
    fn kubernetes_instruction_needs_a_new_enough_agent() {
        let k = KubernetesUpgrade {
            version: "1.30.2".into(),
            min_agent_version: "4.7.7".into(),
        };
        for (running, ok) in [
            ("4.7.6", false),
            ("4.7.7-rc.1", false),
            ("4.7.7", true),
            ("4.7.20", true),
        ] {
            let v = kubernetes_verdict(&k, running);
            assert_eq!(v.is_ok(), ok, "{running}: {v:?}");
            if let Err(e) = v {
                assert!(e.contains("agent_too_old") && e.contains(running), "{e}");
            }
        }
        let bad = KubernetesUpgrade {
            version: "1.30.2".into(),
            min_agent_version: "latest".into(),
        };
        assert!(kubernetes_verdict(&bad, "1.0.0").is_err());
    }
}
