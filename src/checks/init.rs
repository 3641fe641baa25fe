//! `init`: PID 1 is systemd (`/proc/1/comm`). Without it the agent's
//! service cannot run, though cron-only mode still works for check-ins.

use super::{Def, Facts, Outcome, Status};

pub const DEF: Def = Def {
    id: "init",
    title: "Init system",
    run,
};

const REQUIRED: &str = "systemd as PID 1";

fn run(f: &Facts) -> Outcome {
    match f.pid1.as_deref() {
        None => Outcome::new(Status::Skip, "unknown", REQUIRED).hint("/proc/1/comm is unreadable under the root"),
        Some("systemd") => Outcome::new(Status::Pass, "systemd", REQUIRED),
        Some(other) => Outcome::new(Status::Fail, other, REQUIRED).hint(
            "edge Kubernetes needs systemd; without it only cron-only mode works (outpost checkin from cron)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;

    #[test]
    fn init_verdicts() {
        let cases: &[(Option<&str>, Status)] = &[
            (Some("systemd"), Status::Pass),
            (Some("init"), Status::Fail),
            (Some("runit"), Status::Fail),
            (Some("Systemd"), Status::Fail),
            (None, Status::Skip),
        ];
        for (comm, want) in cases {
            let mut f = facts();
            f.pid1 = comm.map(String::from);
            assert_eq!(run(&f).status, *want, "comm {comm:?}");
        }
    }
}
