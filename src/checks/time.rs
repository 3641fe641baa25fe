//! `time`: a wall clock earlier than this binary's build fails (TLS
//! certificates cannot validate); a clock that is not known to be
//! synchronised warns. Synchronised means `/run/systemd/timesync/synchronized`
//! exists, or on the live system the kernel's NTP status (`adjtimex`) says so
//! (chrony, ntpd and timesyncd all clear STA_UNSYNC).

use super::{Def, Facts, Outcome, Status};

pub const DEF: Def = Def {
    id: "time",
    title: "Clock",
    run,
};

const REQUIRED: &str = "synchronised, after the build date";

/// Unix seconds -> `YYYY-MM-DD HH:MM UTC` (proleptic Gregorian).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn run(f: &Facts) -> Outcome {
    if f.build_epoch > 0 && f.now < f.build_epoch {
        return Outcome::new(Status::Fail, format!("{} < build", utc(f.now)), REQUIRED).hint(format!(
            "the clock is earlier than this agent's build ({}); TLS cannot work until it is set (timedatectl set-ntp true)",
            utc(f.build_epoch)
        ));
    }
    match f.clock_sync {
        Some((true, by)) => Outcome::new(Status::Pass, format!("synchronised ({by})"), REQUIRED),
        Some((false, by)) => {
            Outcome::new(Status::Warn, "not synchronised", REQUIRED).hint(format!(
            "{by} reports the clock is not synchronised; check NTP (timedatectl timesync-status)"
        ))
        }
        None => Outcome::new(Status::Warn, "sync unknown", REQUIRED).hint(
            "cannot tell whether the clock is synchronised; enable systemd-timesyncd or chrony",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;

    #[test]
    fn dates() {
        let cases = [
            (0, "1970-01-01 00:00 UTC"),
            (951_782_400, "2000-02-29 00:00 UTC"),
            (1_700_000_000, "2023-11-14 22:13 UTC"),
            (4_102_444_799, "2099-12-31 23:59 UTC"),
        ];
        for (s, want) in cases {
            assert_eq!(utc(s), want, "secs {s}");
        }
    }

    #[test]
    fn time_verdicts() {
        type Case = (u64, Option<(bool, &'static str)>, Status);
        let cases: &[Case] = &[
            (1_800_000_000, Some((true, "timesyncd")), Status::Pass),
            (1_800_000_000, Some((false, "kernel NTP")), Status::Warn),
            (1_800_000_000, None, Status::Warn),
            (1_600_000_000, Some((true, "timesyncd")), Status::Fail),
            (0, None, Status::Fail),
        ];
        for (now, sync, want) in cases {
            let mut f = facts();
            f.now = *now;
            f.clock_sync = *sync;
            assert_eq!(run(&f).status, *want, "case {now} {sync:?}");
        }
    }
}
