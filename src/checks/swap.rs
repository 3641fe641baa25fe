//! `swap`: active swap warns (the kubelet refuses to start with swap on
//! unless configured for it). From `/proc/swaps`, else `SwapTotal`.

use super::{gb, Def, Facts, Outcome, Status};

pub const DEF: Def = Def {
    id: "swap",
    title: "Swap",
    run,
};

const REQUIRED: &str = "no active swap";
const HINT: &str =
    "turn swap off (swapoff -a, and remove it from /etc/fstab) or configure the kubelet for swap";

fn run(f: &Facts) -> Outcome {
    match &f.swaps {
        Ok(areas) if areas.is_empty() => Outcome::new(Status::Pass, "none", REQUIRED),
        Ok(areas) => {
            let total: Option<u64> = areas.iter().map(|a| a.size_bytes).sum();
            let names: Vec<&str> = areas.iter().map(|a| a.name.as_str()).collect();
            let size = total.map(gb).unwrap_or_else(|| "size ?".into());
            Outcome::new(
                Status::Warn,
                format!("{} ({size})", names.join(", ")),
                REQUIRED,
            )
            .hint(HINT)
        }
        Err(e) => match f.mem.as_ref().ok().and_then(|m| m.swap_total_bytes) {
            Some(0) => Outcome::new(Status::Pass, "none", REQUIRED),
            Some(b) => Outcome::new(Status::Warn, format!("{} active", gb(b)), REQUIRED).hint(HINT),
            None => Outcome::new(Status::Skip, "unknown", REQUIRED)
                .hint(format!("cannot read swap: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;
    use crate::facts::swap::SwapArea;

    #[test]
    fn swap_verdicts() {
        let area = SwapArea {
            name: "/dev/sda3".into(),
            kind: "partition".into(),
            size_bytes: Some(8_000_000_000),
        };
        type Swaps = Result<Vec<SwapArea>, String>;
        let cases: Vec<(Swaps, Option<u64>, Status, &str)> = vec![
            (Ok(vec![]), None, Status::Pass, "none"),
            (Ok(vec![area]), None, Status::Warn, "/dev/sda3 (8.0 GB)"),
            (
                Ok(vec![SwapArea {
                    name: "/dev/sdz9".into(),
                    kind: "?".into(),
                    size_bytes: None,
                }]),
                None,
                Status::Warn,
                "/dev/sdz9 (size ?)",
            ),
            (Err("gone".into()), Some(0), Status::Pass, "none"),
            (
                Err("gone".into()),
                Some(2_000_000_000),
                Status::Warn,
                "2.0 GB active",
            ),
            (Err("gone".into()), None, Status::Skip, "unknown"),
        ];
        for (swaps, total, want, observed) in cases {
            let mut f = facts();
            f.swaps = swaps.clone();
            if let Ok(m) = &mut f.mem {
                m.swap_total_bytes = total;
            }
            let o = run(&f);
            assert_eq!(
                (o.status, o.observed.as_str()),
                (want, observed),
                "case {swaps:?} {total:?}"
            );
        }
    }
}
