//! `docker`: Docker installed on the host warns: its containerd, iptables
//! rules and cgroup settings conflict with the cluster's own runtime.

use super::{Def, Facts, Outcome, Status};

pub const DEF: Def = Def {
    id: "docker",
    title: "Docker",
    run,
};

const REQUIRED: &str = "not installed";

fn run(f: &Facts) -> Outcome {
    if !f.has_path_dirs {
        return Outcome::new(Status::Skip, "unknown", REQUIRED)
            .hint("no PATH directory (/usr/bin, /bin, ...) under the root");
    }
    let found: Vec<&str> = ["dockerd", "docker"]
        .iter()
        .filter_map(|t| f.tool(t))
        .collect();
    if found.is_empty() {
        return Outcome::new(Status::Pass, "not installed", REQUIRED);
    }
    Outcome::new(Status::Warn, found.join(" "), REQUIRED)
        .hint("Docker conflicts with the cluster's container runtime; remove it (apt-get purge docker-ce docker.io)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;

    #[test]
    fn docker_verdicts() {
        type Case = (
            &'static [(&'static str, &'static str)],
            Status,
            &'static str,
        );
        let cases: &[Case] = &[
            (&[], Status::Pass, "not installed"),
            (
                &[("docker", "/usr/local/bin/docker")],
                Status::Warn,
                "/usr/local/bin/docker",
            ),
            (
                &[
                    ("docker", "/usr/bin/docker"),
                    ("dockerd", "/usr/bin/dockerd"),
                ],
                Status::Warn,
                "/usr/bin/dockerd /usr/bin/docker",
            ),
        ];
        for (present, want, observed) in cases {
            let mut f = facts();
            for (t, path) in present.iter() {
                for (n, p) in f.tools.iter_mut() {
                    if n == t {
                        *p = Some(path.to_string());
                    }
                }
            }
            let o = run(&f);
            assert_eq!(
                (o.status, o.observed.as_str()),
                (*want, *observed),
                "case {present:?}"
            );
        }
    }
}
