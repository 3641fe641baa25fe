//! The trial of a new binary as data: `trial.json` (schema
//! `outpost.trial/v1`, FROZEN: the guard of every later version reads it, so
//! fields are only ever added, never renamed or retyped), `upgrade.json`
//! (schema `outpost.upgrade/v1`: the last upgrade's outcome, reported to the
//! hub until a check-in carried it), and the two pure decisions:
//!
//! * [`guard`]: run by the PREVIOUS binary (`outpost.prev upgrade-guard`,
//!   from the unit's `ExecStartPre=` or first on the cron line) before every
//!   start of the agent. It counts the starts of the new binary and decides
//!   the rollback, so a new binary that cannot even start is still rolled
//!   back by code that is not the new binary.
//! * [`commit_due`]: the new binary commits itself after its first
//!   successful check-in plus a grace period.
//!
//! No I/O here: `apply.rs` reads and writes the files.

use miniserde::{Deserialize, Serialize};

pub const TRIAL_SCHEMA: &str = "outpost.trial/v1";
pub const OUTCOME_SCHEMA: &str = "outpost.upgrade/v1";
/// Starts of a new binary before the guard rolls it back (the guard runs
/// before each start; the (N+1)th start is refused).
pub const MAX_STARTS: u32 = 3;
/// Seconds from the first start of a new binary until it must have
/// committed, else the next start rolls it back.
pub const WINDOW_S: u64 = 900;
/// Seconds a new binary under `outpost run` keeps running after its first
/// successful check-in before it commits.
pub const GRACE_S: u64 = 60;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Trial {
    pub schema: String,
    /// Version before and after the swap.
    pub from: String,
    pub to: String,
    /// SHA-256 of the new binary: the guard acts only while the installed
    /// binary is this one (a swap cut short leaves the old one, and then the
    /// trial is stale).
    pub sha256: String,
    /// Starts counted by the guard so far.
    pub starts: u32,
    /// Unix seconds of the first counted start (0: not started yet).
    pub first_start: u64,
    pub max_starts: u32,
    pub window_s: u64,
    /// Set (durably) before a rollback swaps the binaries back, so a power
    /// cut in the middle is finished by the next guard with this reason.
    pub rollback_reason: Option<String>,
}

impl Trial {
    pub fn new(from: &str, to: &str, sha256: &str) -> Trial {
        Trial {
            schema: TRIAL_SCHEMA.into(),
            from: from.into(),
            to: to.into(),
            sha256: sha256.into(),
            starts: 0,
            first_start: 0,
            max_starts: MAX_STARTS,
            window_s: WINDOW_S,
            rollback_reason: None,
        }
    }
}

/// Where an upgrade stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Swapped; the new binary has not committed yet.
    Trial,
    Committed,
    RolledBack,
    /// Refused or failed before the swap; the running binary is unchanged.
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Trial => "on_trial",
            Phase::Committed => "committed",
            Phase::RolledBack => "rolled_back",
            Phase::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Phase> {
        [
            Phase::Trial,
            Phase::Committed,
            Phase::RolledBack,
            Phase::Failed,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// `upgrade.json`: the last upgrade's outcome.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub schema: String,
    /// A [`Phase`] name.
    pub state: String,
    pub from: String,
    pub to: String,
    /// Why (failed, rolled back); "" otherwise.
    pub reason: String,
    /// The exit code the failure maps to (0 otherwise).
    pub code: i32,
    /// Unix seconds.
    pub at: u64,
    /// A successful check-in carried this outcome to the hub.
    pub reported: bool,
    /// The desired-state tag of the offer that failed: the same offer is
    /// not tried again, a new one is.
    pub offer_tag: Option<String>,
}

impl Outcome {
    pub fn new(phase: Phase, from: &str, to: &str, reason: &str, code: i32, at: u64) -> Outcome {
        Outcome {
            schema: OUTCOME_SCHEMA.into(),
            state: phase.as_str().into(),
            from: from.into(),
            to: to.into(),
            reason: reason.into(),
            code,
            at,
            reported: false,
            offer_tag: None,
        }
    }
    pub fn phase(&self) -> Option<Phase> {
        Phase::parse(&self.state)
    }
}

/// What the guard does before a start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuardAction {
    /// No trial: start whatever is installed.
    Nothing,
    /// The installed binary is not the trial's (the swap never happened or
    /// someone replaced it): drop the trial file.
    DropStale,
    /// Count this start (the new trial record is written before the start).
    Count(Trial),
    /// Put the previous binary back, with the reason.
    Rollback(String),
}

/// The guard's decision. `installed_sha256` is the hash of the installed
/// binary (None when it is missing or unreadable), `now` Unix seconds.
pub fn guard(trial: Option<&Trial>, installed_sha256: Option<&str>, now: u64) -> GuardAction {
    let Some(t) = trial else {
        return GuardAction::Nothing;
    };
    if let Some(r) = &t.rollback_reason {
        // A rollback was decided and maybe cut short: finish it.
        return GuardAction::Rollback(r.clone());
    }
    match installed_sha256 {
        None => {
            return GuardAction::Rollback(format!(
                "the installed binary of {} is missing or unreadable",
                t.to
            ))
        }
        Some(h) if h != t.sha256 => return GuardAction::DropStale,
        Some(_) => {}
    }
    if t.starts >= t.max_starts {
        return GuardAction::Rollback(format!(
            "{} started {} times without committing",
            t.to, t.starts
        ));
    }
    if t.first_start != 0 && now >= t.first_start.saturating_add(t.window_s) {
        return GuardAction::Rollback(format!(
            "{} did not commit within {} minutes of its first start",
            t.to,
            t.window_s / 60
        ));
    }
    let mut next = t.clone();
    next.starts += 1;
    if next.first_start == 0 {
        next.first_start = now;
    }
    GuardAction::Count(next)
}

/// Whether the running binary (`running` version) commits its trial now:
/// it is the trial's binary, a check-in succeeded, and it has been up for
/// `grace_s` since then (0 under cron: one successful run is enough).
pub fn commit_due(
    trial: Option<&Trial>,
    running: &str,
    checked_in_at: Option<u64>,
    now: u64,
    grace_s: u64,
) -> bool {
    match (trial, checked_in_at) {
        (Some(t), Some(at)) => {
            t.to == running && t.rollback_reason.is_none() && now >= at.saturating_add(grace_s)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_table() {
        let t0 = Trial::new("0.1.0", "0.2.0", "new");
        let started = Trial {
            starts: 1,
            first_start: 1000,
            ..t0.clone()
        };
        let worn = Trial {
            starts: 3,
            first_start: 1000,
            ..t0.clone()
        };
        let deciding = Trial {
            rollback_reason: Some("why".into()),
            ..started.clone()
        };
        use GuardAction::*;
        type Case<'a> = (
            &'a str,
            Option<&'a Trial>,
            Option<&'a str>,
            u64,
            GuardAction,
        );
        let cases: Vec<Case> = vec![
            ("no trial", None, Some("x"), 5, Nothing),
            ("swap never happened", Some(&t0), Some("old"), 5, DropStale),
            (
                "first start counted, clock starts",
                Some(&t0),
                Some("new"),
                2000,
                Count(Trial {
                    starts: 1,
                    first_start: 2000,
                    ..t0.clone()
                }),
            ),
            (
                "second start counted",
                Some(&started),
                Some("new"),
                1100,
                Count(Trial {
                    starts: 2,
                    ..started.clone()
                }),
            ),
            (
                "too many starts",
                Some(&worn),
                Some("new"),
                1100,
                Rollback("0.2.0 started 3 times without committing".into()),
            ),
            (
                "window passed",
                Some(&started),
                Some("new"),
                1000 + WINDOW_S,
                Rollback("0.2.0 did not commit within 15 minutes of its first start".into()),
            ),
            (
                "window not yet passed",
                Some(&started),
                Some("new"),
                1000 + WINDOW_S - 1,
                Count(Trial {
                    starts: 2,
                    ..started.clone()
                }),
            ),
            (
                "binary missing",
                Some(&started),
                None,
                1100,
                Rollback("the installed binary of 0.2.0 is missing or unreadable".into()),
            ),
            (
                "rollback cut short: finish",
                Some(&deciding),
                Some("new"),
                1100,
                Rollback("why".into()),
            ),
            (
                "rollback cut after swap: finish",
                Some(&deciding),
                Some("old"),
                1100,
                Rollback("why".into()),
            ),
        ];
        for (name, t, sha, now, want) in cases {
            assert_eq!(guard(t, sha, now), want, "{name}");
        }
    }

    #[test]
    fn commit_table() {
        let t = Trial::new("0.1.0", "0.2.0", "new");
        let decided = Trial {
            rollback_reason: Some("x".into()),
            ..t.clone()
        };
        for (name, trial, running, ok_at, now, grace, want) in [
            ("no trial", None, "0.2.0", Some(10), 100, 60, false),
            ("not checked in", Some(&t), "0.2.0", None, 100, 60, false),
            ("within grace", Some(&t), "0.2.0", Some(10), 69, 60, false),
            ("grace over", Some(&t), "0.2.0", Some(10), 70, 60, true),
            ("cron: no grace", Some(&t), "0.2.0", Some(10), 10, 0, true),
            (
                "old binary running (rolled back)",
                Some(&t),
                "0.1.0",
                Some(10),
                100,
                0,
                false,
            ),
            (
                "rollback decided",
                Some(&decided),
                "0.2.0",
                Some(10),
                100,
                0,
                false,
            ),
        ] {
            assert_eq!(
                commit_due(trial, running, ok_at, now, grace),
                want,
                "{name}"
            );
        }
    }
}
