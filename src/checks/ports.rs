//! `ports`: the control-plane ports (6443 API server, 2379-2380 etcd, 10250
//! kubelet, 10257 controller manager, 10259 scheduler) must be free; a
//! listener on any of them (`/proc/net/tcp`, `tcp6`) fails.

use super::{Def, Facts, Outcome, Status};

pub const DEF: Def = Def {
    id: "ports",
    title: "Control-plane ports",
    run,
};

pub const PORTS: &[u16] = &[6443, 2379, 2380, 10250, 10257, 10259];
const REQUIRED: &str = "6443 2379-2380 10250 10257 10259 free";

fn run(f: &Facts) -> Outcome {
    match &f.listening {
        Err(e) => Outcome::new(Status::Skip, "unknown", REQUIRED)
            .hint(format!("cannot read listening sockets: {e}")),
        Ok(l) => {
            let busy: Vec<String> = PORTS
                .iter()
                .filter(|p| l.contains(p))
                .map(|p| p.to_string())
                .collect();
            if busy.is_empty() {
                Outcome::new(Status::Pass, "free", REQUIRED)
            } else {
                Outcome::new(Status::Fail, format!("in use: {}", busy.join(" ")), REQUIRED).hint(
                    "another Kubernetes or etcd already runs here; remove it (ss -ltnp shows the owner) before handing the host over",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;

    #[test]
    fn port_verdicts() {
        type Case = (Result<Vec<u16>, String>, Status, &'static str);
        let cases: Vec<Case> = vec![
            (Ok(vec![22, 2024]), Status::Pass, "free"),
            (Ok(vec![]), Status::Pass, "free"),
            (
                Ok(vec![22, 6443, 10250]),
                Status::Fail,
                "in use: 6443 10250",
            ),
            (Ok(vec![2380]), Status::Fail, "in use: 2380"),
            (Err("gone".into()), Status::Skip, "unknown"),
        ];
        for (l, want, observed) in cases {
            let mut f = facts();
            f.listening = l.clone();
            let o = run(&f);
            assert_eq!(
                (o.status, o.observed.as_str()),
                (want, observed),
                "case {l:?}"
            );
        }
    }
}
