//! `space`: free space on the filesystems holding the state directory
//! (`/var/lib/outpost`, beside the kubelet's and container runtime's
//! `/var/lib`) and the binary (`/usr/local/bin`). Below 100 MB on either
//! fails (the binary, its previous copy for rollback and the state need
//! room); below 10 GB on the state filesystem warns (container images land
//! in /var/lib). Measured with statvfs through the `Host` trait.

use super::{gb, worst, Def, Facts, Outcome, Status};

pub const DEF: Def = Def {
    id: "space",
    title: "Free space",
    run,
};

pub const FAIL_BYTES: u64 = 100_000_000;
pub const WARN_BYTES: u64 = 10_000_000_000;
const REQUIRED: &str = ">= 10 GB for /var/lib";

fn run(f: &Facts) -> Outcome {
    let mut status = Status::Pass;
    let mut parts = Vec::new();
    let mut hints = Vec::new();
    let same =
        f.space.len() == 2 && matches!((&f.space[0].1, &f.space[1].1), (Ok(a), Ok(b)) if a == b);
    for (i, (path, s)) in f.space.iter().enumerate() {
        if same && i > 0 {
            continue;
        }
        match s {
            Err(e) => {
                status = worst(status, Status::Warn);
                parts.push(format!("{path} ?"));
                hints.push(e.clone());
            }
            Ok(s) => {
                parts.push(format!("{} free", gb(s.available)));
                if s.available < FAIL_BYTES {
                    status = Status::Fail;
                    hints.push(format!(
                        "{path}: only {} free; the agent needs 100 MB",
                        gb(s.available)
                    ));
                } else if i == 0 && s.available < WARN_BYTES {
                    status = worst(status, Status::Warn);
                    hints.push(format!(
                        "{path}: {} free; container images need 10 GB or more",
                        gb(s.available)
                    ));
                }
            }
        }
    }
    if parts.is_empty() {
        return Outcome::new(Status::Skip, "unknown", REQUIRED);
    }
    Outcome::new(status, parts.join(", "), REQUIRED).hint(hints.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;
    use crate::facts::gather::{BIN_DIR, STATE_DIR};
    use crate::sys::FsSpace;

    #[test]
    fn space_verdicts() {
        let s = |a: u64| {
            Ok(FsSpace {
                total: 500_000_000_000,
                available: a,
            })
        };
        type Space = Result<FsSpace, String>;
        let cases: Vec<(Space, Space, Status, &str)> = vec![
            (
                s(300_000_000_000),
                s(300_000_000_000),
                Status::Pass,
                "300 GB free",
            ),
            (
                s(5_000_000_000),
                s(5_000_000_000),
                Status::Warn,
                "5.0 GB free",
            ),
            (s(50_000_000), s(50_000_000), Status::Fail, "50 MB free"),
            (
                s(50_000_000_000),
                s(5_000_000_000),
                Status::Pass,
                "50.0 GB free, 5.0 GB free",
            ),
            (
                s(50_000_000_000),
                s(10_000_000),
                Status::Fail,
                "50.0 GB free, 10 MB free",
            ),
            (
                Err("statvfs /var/lib: Permission denied".into()),
                s(1 << 40),
                Status::Warn,
                "/var/lib/outpost ?, 1100 GB free",
            ),
        ];
        for (state, bin, want, observed) in cases {
            let mut f = facts();
            f.space = vec![(STATE_DIR, state.clone()), (BIN_DIR, bin.clone())];
            let o = run(&f);
            assert_eq!(
                (o.status, o.observed.as_str()),
                (want, observed),
                "case {state:?} {bin:?}"
            );
        }
    }
}
