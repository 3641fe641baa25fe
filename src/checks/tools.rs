//! `tools`: the commands the distribution's installer runs on the host, on
//! the PATH under the root (`systemd-timesyncd` in systemd's own
//! directory). A missing common command fails; with `--distro`, a missing
//! command of that distribution fails; without it, a command only some
//! distributions need warns. The hint names the packages to install.

use super::support::{rows, COMMON_TOOLS};
use super::{Def, Facts, Outcome, Status};

pub const DEF: Def = Def {
    id: "tools",
    title: "Host commands",
    run,
};

/// The package providing `tool` (Debian/Ubuntu name, RHEL family name).
fn package(tool: &str) -> (&str, &str) {
    match tool {
        "conntrack" => ("conntrack", "conntrack-tools"),
        other => (other, other),
    }
}

fn run(f: &Facts) -> Outcome {
    let rows = rows(f.distro);
    if !f.has_path_dirs {
        return Outcome::new(Status::Skip, "unknown", COMMON_TOOLS.join(" "))
            .hint("no PATH directory (/usr/bin, /bin, ...) under the root");
    }
    let mut needed: Vec<(&str, bool)> = COMMON_TOOLS.iter().map(|t| (*t, true)).collect();
    for r in &rows {
        for t in r.tools {
            if !needed.iter().any(|(n, _)| n == t) {
                // Hard requirement when every applicable row needs it.
                let all = rows.iter().all(|r| r.tools.contains(t));
                needed.push((t, all));
            }
        }
    }
    let hard: Vec<&str> = needed.iter().filter(|(_, h)| *h).map(|(t, _)| *t).collect();
    let soft = needed.len() - hard.len();
    let mut required = hard.join(" ");
    if soft > 0 {
        required.push_str(&format!(" (+{soft} per distro)"));
    }
    let missing: Vec<(&str, bool)> = needed
        .iter()
        .filter(|(t, _)| f.tool(t).is_none())
        .copied()
        .collect();
    if missing.is_empty() {
        return Outcome::new(Status::Pass, "all present", required);
    }
    let rhel = f.os.as_ref().is_ok_and(|o| {
        ["rhel", "centos", "fedora", "rocky", "almalinux"]
            .iter()
            .any(|x| o.id == *x || o.id_like.iter().any(|l| l == x))
    });
    let pkgs: Vec<&str> = missing
        .iter()
        .map(|(t, _)| if rhel { package(t).1 } else { package(t).0 })
        .collect();
    let installer = if rhel {
        "dnf install"
    } else {
        "apt-get install"
    };
    let hard = missing.iter().any(|(_, h)| *h);
    let names: Vec<&str> = missing.iter().map(|(t, _)| *t).collect();
    let mut hint = format!("install them: {installer} {}", pkgs.join(" "));
    if !hard {
        let who: Vec<&str> = rows
            .iter()
            .filter(|r| r.tools.iter().any(|t| names.contains(t)))
            .map(|r| r.distro.name())
            .collect();
        hint.push_str(&format!(" (needed by {})", who.join(", ")));
    }
    Outcome::new(
        if hard { Status::Fail } else { Status::Warn },
        format!("missing {}", names.join(" ")),
        required,
    )
    .hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::support::Distro;
    use crate::checks::test_support::facts;

    #[test]
    fn tool_verdicts() {
        use Distro::*;
        let cases: &[(&[&str], Option<Distro>, Status, &str)] = &[
            (&[], None, Status::Pass, "all present"),
            (&["jq"], None, Status::Fail, "missing jq"),
            (&["conntrack"], None, Status::Warn, "missing conntrack"),
            (
                &["conntrack"],
                Some(Pxke),
                Status::Fail,
                "missing conntrack",
            ),
            (&["conntrack"], Some(K3s), Status::Pass, "all present"),
            (
                &["systemd-timesyncd"],
                Some(Canonical),
                Status::Fail,
                "missing systemd-timesyncd",
            ),
            (
                &["systemd-timesyncd"],
                Some(Pxke),
                Status::Pass,
                "all present",
            ),
            (
                &["zstd", "iptables"],
                None,
                Status::Fail,
                "missing zstd iptables",
            ),
        ];
        for (gone, distro, want, observed) in cases {
            let mut f = facts();
            f.distro = *distro;
            for (t, p) in f.tools.iter_mut() {
                if gone.contains(t) {
                    *p = None;
                }
            }
            let o = run(&f);
            assert_eq!(
                (o.status, o.observed.as_str()),
                (*want, *observed),
                "case {gone:?} {distro:?}"
            );
        }
        let mut f = facts();
        f.os = Ok(crate::facts::os::parse_os_release(
            "ID=rocky\nID_LIKE=\"rhel centos fedora\"\n",
        ));
        for (t, p) in f.tools.iter_mut() {
            if *t == "conntrack" {
                *p = None;
            }
        }
        assert_eq!(
            run(&f).hint,
            "install them: dnf install conntrack-tools (needed by PXK-E)"
        );
    }
}
