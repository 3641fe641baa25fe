//! `cpu`: at least 4 online CPUs; a cgroup CPU quota below 4 CPUs warns
//! (the host has the cores, but this agent's cgroup may not).

use super::{Def, Facts, Outcome, Status};

pub const DEF: Def = Def {
    id: "cpu",
    title: "CPU cores",
    run,
};

pub const MIN_CPUS: u32 = 4;
const REQUIRED: &str = ">= 4 CPUs";

fn run(f: &Facts) -> Outcome {
    let cpus = match &f.cpus {
        Ok(c) => c.count,
        Err(e) => {
            return Outcome::new(Status::Skip, "unknown", REQUIRED)
                .hint(format!("cannot count CPUs: {e}"))
        }
    };
    let observed = format!("{cpus} online");
    if cpus < MIN_CPUS {
        return Outcome::new(Status::Fail, observed, REQUIRED)
            .hint("give the host (or VM) at least 4 CPU cores");
    }
    if let Some(q) = f.cpu_quota {
        if q.cpus() < MIN_CPUS as f64 {
            return Outcome::new(
                Status::Warn,
                format!("{cpus} online, cgroup quota {:.2}", q.cpus()),
                REQUIRED,
            )
            .hint("a cgroup CPU quota limits this process below 4 CPUs; check the container or slice limits");
        }
    }
    Outcome::new(Status::Pass, observed, REQUIRED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;
    use crate::facts::cpu::{OnlineCpus, Quota};

    #[test]
    fn cpu_verdicts() {
        let q = |n: u64| {
            Some(Quota {
                quota_us: n,
                period_us: 100_000,
            })
        };
        let cases: &[(Result<u32, &str>, Option<Quota>, Status, &str)] = &[
            (Ok(4), None, Status::Pass, "4 online"),
            (Ok(64), None, Status::Pass, "64 online"),
            (Ok(3), None, Status::Fail, "3 online"),
            (Ok(1), q(800_000), Status::Fail, "1 online"),
            (Ok(8), q(200_000), Status::Warn, "8 online, cgroup quota 2.00"),
            (Ok(8), q(400_000), Status::Pass, "8 online"),
            (Err("garbled"), None, Status::Skip, "unknown"),
        ];
        for (count, quota, want, observed) in cases {
            let mut f = facts();
            f.cpus = count
                .map(|count| OnlineCpus {
                    count,
                    source: "test",
                })
                .map_err(String::from);
            f.cpu_quota = *quota;
            let o = run(&f);
            assert_eq!((o.status, o.observed.as_str()), (*want, *observed), "case {count:?} {quota:?}");
        }
    }
}
