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

use crate::timefmt::utc_minutes as utc;

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
