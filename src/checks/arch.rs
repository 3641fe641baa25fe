//! `arch`: x86_64 (AMD64) and aarch64 (ARM64) pass, anything else fails.

use super::{Def, Facts, Outcome, Status};
use crate::facts::kernel::normalise_arch;

pub const DEF: Def = Def {
    id: "arch",
    title: "CPU architecture",
    run,
};

const REQUIRED: &str = "x86_64 or aarch64";

fn run(f: &Facts) -> Outcome {
    match f.kernel.arch.as_deref() {
        None => Outcome::new(Status::Skip, "unknown", REQUIRED)
            .hint("/proc/sys/kernel/arch is missing under the root"),
        Some(a) => match normalise_arch(a) {
            "x86_64" | "aarch64" => Outcome::new(Status::Pass, a, REQUIRED),
            _ => Outcome::new(Status::Fail, a, REQUIRED)
                .hint("edge Kubernetes nodes must be AMD64 or ARM64"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;

    #[test]
    fn arch_verdicts() {
        let cases: &[(Option<&str>, Status)] = &[
            (Some("x86_64"), Status::Pass),
            (Some("aarch64"), Status::Pass),
            (Some("arm64"), Status::Pass),
            (Some("armv7l"), Status::Fail),
            (Some("riscv64"), Status::Fail),
            (Some("i686"), Status::Fail),
            (None, Status::Skip),
        ];
        for (arch, want) in cases {
            let mut f = facts();
            f.kernel.arch = arch.map(String::from);
            assert_eq!(run(&f).status, *want, "arch {arch:?}");
        }
    }
}
