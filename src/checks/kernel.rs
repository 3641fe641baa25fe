//! `kernel`: the release is at least the floor of the support table (with
//! `--distro`, that row's; without, fail below the lowest floor and warn
//! below the highest); cgroup v2 is mounted at `/sys/fs/cgroup`; and the
//! modules `overlay`, `br_netfilter`, `nf_conntrack` are loaded, built in or
//! installed. What cannot be read warns; only what is known missing fails.

use super::support::rows;
use super::{worst, Def, Facts, Outcome, Status};
use crate::facts::modules::Availability;

pub const DEF: Def = Def {
    id: "kernel",
    title: "Kernel",
    run,
};

pub const MODULES: &[&str] = &["overlay", "br_netfilter", "nf_conntrack"];

/// `5.15.0-1046-raspi` -> (5, 15).
pub fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(['.', '-', '+', '_']);
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

fn run(f: &Facts) -> Outcome {
    let rows = rows(f.distro);
    let lo = rows.iter().map(|r| r.kernel_floor).min().unwrap_or((0, 0));
    let hi = rows.iter().map(|r| r.kernel_floor).max().unwrap_or((0, 0));
    let required = if lo == hi {
        format!(">= {}.{}, cgroup v2, modules", lo.0, lo.1)
    } else {
        format!(
            ">= {}.{} ({}.{} for all), cgroup v2, modules",
            lo.0, lo.1, hi.0, hi.1
        )
    };
    let mut status = Status::Pass;
    let mut hints = Vec::new();
    let mut parts = Vec::new();

    match f.kernel.release.as_deref().map(|r| (r, parse_version(r))) {
        None => {
            status = Status::Warn;
            parts.push("release ?".to_string());
            hints.push("kernel release unknown (/proc/sys/kernel/osrelease)".to_string());
        }
        Some((r, None)) => {
            status = Status::Warn;
            parts.push(r.to_string());
            hints.push(format!("cannot read a version from {r:?}"));
        }
        Some((r, Some(v))) => {
            parts.push(r.split('-').next().unwrap_or(r).to_string());
            if v < lo {
                status = Status::Fail;
                hints.push(format!(
                    "kernel {}.{} is older than {}.{}",
                    v.0, v.1, lo.0, lo.1
                ));
            } else if v < hi {
                status = Status::Warn;
                let short: Vec<String> = rows
                    .iter()
                    .filter(|r| v < r.kernel_floor)
                    .map(|r| {
                        format!(
                            "{} needs {}.{}",
                            r.distro.name(),
                            r.kernel_floor.0,
                            r.kernel_floor.1
                        )
                    })
                    .collect();
                hints.push(format!("kernel {}.{}: {}", v.0, v.1, short.join(", ")));
            }
        }
    }

    match &f.mounts {
        Err(_) => {
            status = worst(status, Status::Warn);
            parts.push("cgroup ?".into());
            hints.push("cannot read the mount table to find cgroup v2".into());
        }
        Ok(mi) => match mi.fstype_at("/sys/fs/cgroup") {
            Some("cgroup2") => parts.push("cgroup v2".into()),
            None if mi.bad_lines > 0 => {
                status = worst(status, Status::Warn);
                parts.push("cgroup ?".into());
                hints.push(format!(
                    "no cgroup mount found, but {} mount table lines are damaged",
                    mi.bad_lines
                ));
            }
            other => {
                status = Status::Fail;
                parts.push(if other.is_some() {
                    "cgroup v1".into()
                } else {
                    "no cgroup".into()
                });
                hints.push(
                    "mount cgroup v2 at /sys/fs/cgroup (systemd.unified_cgroup_hierarchy=1)".into(),
                );
            }
        },
    }

    let mut missing = Vec::new();
    let mut unknown = Vec::new();
    for m in MODULES {
        match f.modules.find(m) {
            Availability::Missing => missing.push(*m),
            Availability::Unknown => unknown.push(*m),
            _ => {}
        }
    }
    if !missing.is_empty() {
        status = Status::Fail;
        parts.push(format!("missing {}", missing.join(" ")));
        hints.push(format!(
            "modules {} are neither loaded, built in nor installed",
            missing.join(", ")
        ));
    }
    if !unknown.is_empty() {
        status = worst(status, Status::Warn);
        parts.push(if unknown.len() == MODULES.len() {
            "modules ?".to_string()
        } else {
            format!("{} ?", unknown.join(" "))
        });
        hints.push(format!(
            "cannot tell whether {} are available (/proc/modules, /lib/modules/<release>/modules.builtin, modules.dep)",
            unknown.join(", ")
        ));
    }
    if missing.is_empty() && unknown.is_empty() {
        parts.push("modules ok".into());
    }
    Outcome::new(status, parts.join(", "), required).hint(hints.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::support::Distro;
    use crate::checks::test_support::facts;
    use crate::facts::modules::Modules;
    use crate::facts::mountinfo::parse_mountinfo;

    #[test]
    fn versions() {
        let cases = [
            ("5.15.0-1046-raspi", Some((5, 15))),
            ("4.18.0-553.el8_10.x86_64", Some((4, 18))),
            ("6.18.44-fc-v657", Some((6, 18))),
            ("6.1", Some((6, 1))),
            ("6", None),
            ("v6.1", None),
            ("", None),
        ];
        for (r, want) in cases {
            assert_eq!(parse_version(r), want, "release {r}");
        }
    }

    #[test]
    fn kernel_verdicts() {
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let v1 = "30 23 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n41 30 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let all = || Some(MODULES.iter().map(|m| m.to_string()).collect::<Vec<_>>());
        let none = || Some(Vec::<String>::new());
        use Distro::*;
        let cases: &[(&str, Option<Distro>, &str, Modules, Status)] = &[
            (
                "6.1.0",
                None,
                v2,
                Modules {
                    loaded: all(),
                    ..Modules::default()
                },
                Status::Pass,
            ),
            (
                "4.18.0-553.el8_10.x86_64",
                None,
                v2,
                Modules {
                    loaded: all(),
                    ..Modules::default()
                },
                Status::Warn,
            ),
            (
                "4.18.0-553.el8_10.x86_64",
                Some(Pxke),
                v2,
                Modules {
                    loaded: all(),
                    ..Modules::default()
                },
                Status::Fail,
            ),
            (
                "4.18.0-553.el8_10.x86_64",
                Some(K3s),
                v2,
                Modules {
                    loaded: all(),
                    ..Modules::default()
                },
                Status::Pass,
            ),
            (
                "5.10.0",
                Some(Canonical),
                v2,
                Modules {
                    loaded: all(),
                    ..Modules::default()
                },
                Status::Fail,
            ),
            (
                "4.14.0",
                None,
                v2,
                Modules {
                    loaded: all(),
                    ..Modules::default()
                },
                Status::Fail,
            ),
            (
                "6.1.0",
                None,
                v1,
                Modules {
                    loaded: all(),
                    ..Modules::default()
                },
                Status::Fail,
            ),
            (
                "6.1.0",
                None,
                v2,
                Modules {
                    loaded: none(),
                    builtin: none(),
                    installed: none(),
                    ..Modules::default()
                },
                Status::Fail,
            ),
            ("6.1.0", None, v2, Modules::default(), Status::Warn),
            (
                "weird",
                None,
                v2,
                Modules {
                    loaded: all(),
                    ..Modules::default()
                },
                Status::Warn,
            ),
            // A truncated mount table without a cgroup line cannot prove v1.
            (
                "6.1.0",
                None,
                "24 1 8:2 / / rw - ext4 /dev/sda2 rw\n33 25 0:28 / /sys/fs/cg",
                Modules {
                    loaded: all(),
                    ..Modules::default()
                },
                Status::Warn,
            ),
        ];
        for (release, distro, mi, modules, want) in cases {
            let mut f = facts();
            f.kernel.release = Some(release.to_string());
            f.distro = *distro;
            f.mounts = Ok(parse_mountinfo(mi));
            f.modules = modules.clone();
            let o = run(&f);
            assert_eq!(
                o.status, *want,
                "case {release} {distro:?} {mi:?} {modules:?}: {o:?}"
            );
        }
        let mut f = facts();
        f.kernel.release = None;
        assert_eq!(run(&f).status, Status::Warn, "release unknown");
        let o = run(&facts());
        assert_eq!(o.observed, "6.1.0, cgroup v2, modules ok");
    }
}
