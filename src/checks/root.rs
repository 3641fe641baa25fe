//! `root`: running as root sees every fact and can install; otherwise warn,
//! since some files (e.g. under /proc/1) may be hidden and install needs root.

use super::{Def, Facts, Outcome, Status};

pub const DEF: Def = Def {
    id: "root",
    title: "Privileges",
    run,
};

const REQUIRED: &str = "root (uid 0)";

fn run(f: &Facts) -> Outcome {
    if f.euid == 0 {
        Outcome::new(Status::Pass, "uid 0", REQUIRED)
    } else {
        Outcome::new(Status::Warn, format!("uid {}", f.euid), REQUIRED)
            .hint("run as root (sudo) for a complete check; install needs root")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;

    #[test]
    fn root_verdicts() {
        for (euid, want) in [
            (0, Status::Pass),
            (1000, Status::Warn),
            (65534, Status::Warn),
        ] {
            let mut f = facts();
            f.euid = euid;
            assert_eq!(run(&f).status, want, "euid {euid}");
        }
    }
}
