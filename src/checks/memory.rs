//! `memory`: "4 GB" as sold. The kernel and firmware reserve some of it, so
//! MemTotal >= 3.5 GiB passes, >= 3.0 GiB warns, less fails (DESIGN.md).

use super::{gib, Def, Facts, Outcome, Status};

pub const DEF: Def = Def {
    id: "memory",
    title: "Memory",
    run,
};

pub const PASS_BYTES: u64 = 7 << 29; // 3.5 GiB
pub const WARN_BYTES: u64 = 3 << 30; // 3.0 GiB
const REQUIRED: &str = "4 GB: MemTotal >= 3.5 GiB";

fn run(f: &Facts) -> Outcome {
    let total = match &f.mem {
        Ok(m) => m.total_bytes,
        Err(e) => {
            return Outcome::new(Status::Skip, "unknown", REQUIRED)
                .hint(format!("cannot read memory size: {e}"))
        }
    };
    let observed = gib(total);
    if total >= PASS_BYTES {
        Outcome::new(Status::Pass, observed, REQUIRED)
    } else if total >= WARN_BYTES {
        Outcome::new(Status::Warn, observed, REQUIRED)
            .hint("just under 4 GB: workloads may be evicted; 8 GB is recommended")
    } else {
        Outcome::new(Status::Fail, observed, REQUIRED)
            .hint("the host needs at least 4 GB of memory")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;
    use crate::facts::mem::MemInfo;

    #[test]
    fn memory_thresholds() {
        let cases: &[(Result<u64, &str>, Status)] = &[
            (Ok(8 << 30), Status::Pass),
            (Ok(PASS_BYTES), Status::Pass),
            (Ok(PASS_BYTES - 1), Status::Warn),
            (Ok(WARN_BYTES), Status::Warn),
            (Ok(WARN_BYTES - 1), Status::Fail),
            (Ok(2 << 30), Status::Fail),
            (Err("no MemTotal line"), Status::Skip),
        ];
        for (bytes, want) in cases {
            let mut f = facts();
            f.mem = bytes
                .map(|total_bytes| MemInfo {
                    total_bytes,
                    ..MemInfo::default()
                })
                .map_err(String::from);
            assert_eq!(run(&f).status, *want, "bytes {bytes:?}");
        }
    }
}
