//! `outpost status [--json]`: what `status.json` says about the last
//! check-ins, for people (aligned lines) or programs (the file as it is),
//! with an exit status a monitor can use: 0 ok, 1 the last check-in failed,
//! 7 overdue (no success for two intervals) or never checked in.
//!
//! Read-only: it contacts nothing and writes nothing.

use crate::cli::StatusArgs;
use crate::error::{Code, Result};
use crate::state::{self, Paths, Status};
use crate::timefmt;
use timefmt::parse_rfc3339;

/// The verdict on a status at `now` (Unix seconds).
pub fn verdict(s: Option<&Status>, now: u64) -> (Code, String) {
    let Some(s) = s else {
        return (Code::Overdue, "never checked in".into());
    };
    let Some(ok_at) = s.last_success.as_deref().and_then(parse_rfc3339) else {
        return (Code::Overdue, "never checked in successfully".into());
    };
    let interval = s.interval_s.max(1);
    let age = now.saturating_sub(ok_at);
    if age > 2 * interval {
        return (
            Code::Overdue,
            format!(
                "overdue: no successful check-in for {} (interval {})",
                human(age),
                human(interval)
            ),
        );
    }
    if s.last_error.is_some() {
        return (Code::CheckFailed, "the last check-in failed".into());
    }
    (Code::Ok, "ok".into())
}

fn human(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

pub fn text(s: Option<&Status>, verdict: &str, dir: &std::path::Path) -> String {
    let mut rows: Vec<(&str, String)> = vec![("state", verdict.to_string())];
    match s {
        None => rows.push((
            "status file",
            format!("{} (none yet)", dir.join("status.json").display()),
        )),
        Some(s) => {
            let or_never = |v: &Option<String>| v.clone().unwrap_or_else(|| "never".into());
            rows.push(("host ID", s.host_id.clone()));
            rows.push(("agent", s.agent_version.clone()));
            rows.push(("last attempt", or_never(&s.last_attempt)));
            rows.push(("last success", or_never(&s.last_success)));
            if let Some(e) = &s.last_error {
                rows.push(("last error", format!("exit {}: {}", e.code, e.message)));
            }
            rows.push(("failures in a row", s.consecutive_failures.to_string()));
            if s.interval_s > 0 {
                rows.push(("interval", human(s.interval_s)));
            }
            rows.push(("next due", or_never(&s.next_due)));
        }
    }
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<w$}  {v}\n"))
        .collect()
}

pub fn run(args: StatusArgs) -> Result<Code> {
    let cfg = super::checkin::load_config(&args.src)?;
    let paths = Paths::new(args.src.root.path(&cfg.state_dir.value));
    let status = state::load_status(&paths)?;
    let now = crate::sys::unix_secs(crate::sys::host().now());
    let (mut code, mut why) = verdict(status.as_ref(), now);
    // A later attempt that could not be written (disk full): not "ok".
    if let Some(at) = status
        .as_ref()
        .and_then(|s| state::unrecorded_attempt(&paths, s))
    {
        if code != Code::Overdue {
            code = Code::CheckFailed;
            why = format!(
                "the check-in at {} could not be recorded (state directory full or not writable?)",
                timefmt::rfc3339(at)
            );
        }
    }
    if args.json {
        // The status file's members, then the last upgrade (if any).
        let l = crate::upgrade::layout(&args.src.root, &cfg);
        let out = match &status {
            Some(s) => format!(
                "{}\n",
                crate::upgrade::with_upgrade(
                    &miniserde::json::to_string(s),
                    crate::upgrade::status_view(&l).as_ref()
                )
            ),
            None => "null\n".to_string(),
        };
        super::print(&out)?;
    } else {
        let mut out = text(status.as_ref(), &why, &paths.dir);
        // The last self-upgrade (on trial, committed, rolled back, failed).
        let l = crate::upgrade::layout(&args.src.root, &cfg);
        if let Some(line) = crate::upgrade::status_line(&l) {
            out.push_str(&line);
            out.push('\n');
        }
        super::print(&out)?;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(last_success: Option<u64>, error: bool, interval: u64) -> Status {
        let mut s = Status::new("edge-1");
        s.last_success = last_success.map(timefmt::rfc3339);
        s.interval_s = interval;
        if error {
            s.last_error = Some(state::LastError {
                code: 10,
                message: "x".into(),
            });
        }
        s
    }

    #[test]
    fn verdicts() {
        let now = 1_000_000;
        let cases = [
            ("no file", None, Code::Overdue),
            ("never succeeded", Some(st(None, true, 60)), Code::Overdue),
            (
                "fresh success",
                Some(st(Some(now - 30), false, 60)),
                Code::Ok,
            ),
            (
                "failed after a recent success",
                Some(st(Some(now - 90), true, 60)),
                Code::CheckFailed,
            ),
            (
                "exactly two intervals",
                Some(st(Some(now - 120), true, 60)),
                Code::CheckFailed,
            ),
            (
                "overdue",
                Some(st(Some(now - 121), false, 60)),
                Code::Overdue,
            ),
            (
                "overdue and failing",
                Some(st(Some(now - 1000), true, 60)),
                Code::Overdue,
            ),
        ];
        for (name, s, want) in cases {
            assert_eq!(verdict(s.as_ref(), now).0, want, "case {name}");
        }
    }
}
