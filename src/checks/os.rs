//! `os`: `/etc/os-release` against the support table (`support.rs`,
//! docs/support.md): a verified combination of OS release and architecture
//! passes; another systemd distribution warns with the reason; an OS or
//! architecture the selected distribution cannot run on at all fails.

use super::support::{rows, Distro};
use super::{Def, Facts, Outcome, Status};
use crate::facts::kernel::normalise_arch;

pub const DEF: Def = Def {
    id: "os",
    title: "Operating system",
    run,
};

fn required(d: Option<Distro>) -> String {
    match d {
        None => "a verified OS (docs/support.md)".into(),
        Some(d) => format!("an OS verified for {}", d.name()),
    }
}

fn run(f: &Facts) -> Outcome {
    let req = required(f.distro);
    let os = match &f.os {
        Ok(o) => o,
        Err(e) => {
            return Outcome::new(Status::Warn, "unknown", req).hint(format!(
                "cannot identify the OS ({e}); only verified OS releases are supported"
            ))
        }
    };
    let arch = f.kernel.arch.as_deref().map(normalise_arch).unwrap_or("");
    let observed = if os.version_id.is_empty() {
        os.id.clone()
    } else {
        format!("{} {}", os.id, os.version_id)
    };
    let rows = rows(f.distro);
    let verified: Vec<&str> = rows
        .iter()
        .filter(|r| r.os_verified(&os.id, &os.version_id) && r.arches.contains(&arch))
        .map(|r| r.distro.name())
        .collect();
    if !verified.is_empty() {
        let o = Outcome::new(Status::Pass, observed, req);
        return if f.distro.is_none() && verified.len() < rows.len() {
            o.hint(format!("verified with {} only", verified.join(", ")))
        } else {
            o
        };
    }
    if let Some(d) = f.distro {
        let r = super::support::row(d);
        if !r.arches.is_empty() && !arch.is_empty() && !r.arches.contains(&arch) {
            return Outcome::new(Status::Fail, format!("{observed} ({arch})"), req).hint(format!(
                "{} runs on {} only",
                d.name(),
                r.arches.join(", ")
            ));
        }
        if d == Distro::Canonical && !r.os_family(&os.id) {
            return Outcome::new(Status::Fail, observed, req)
                .hint("Canonical Kubernetes needs Ubuntu (22.04 or 24.04) on AMD64");
        }
    }
    Outcome::new(Status::Warn, observed, req).hint(format!(
        "{} is not a verified combination{}; it may work on a systemd distribution, but is unsupported (see docs/support.md)",
        os.pretty_name,
        f.distro.map(|d| format!(" for {}", d.name())).unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::facts;
    use crate::facts::os::parse_os_release;

    #[test]
    fn os_verdicts() {
        let ubuntu = "ID=ubuntu\nVERSION_ID=\"22.04\"\n";
        let ubuntu20 = "ID=ubuntu\nVERSION_ID=\"20.04\"\n";
        let rocky = "ID=\"rocky\"\nVERSION_ID=\"8.10\"\n";
        let rocky9 = "ID=\"rocky\"\nVERSION_ID=\"9.4\"\n";
        let debian = "ID=debian\nVERSION_ID=\"12\"\n";
        let odd = "ID='ubuntu\nVERSION_ID=\"22.04\"\n";
        use Distro::*;
        let cases: &[(&str, &str, Option<Distro>, Status)] = &[
            (ubuntu, "x86_64", None, Status::Pass),
            (ubuntu, "aarch64", None, Status::Pass),
            (rocky, "x86_64", None, Status::Pass),
            (rocky, "x86_64", Some(Pxke), Status::Pass),
            (rocky, "x86_64", Some(K3s), Status::Warn),
            (rocky, "x86_64", Some(Canonical), Status::Fail),
            (rocky9, "x86_64", None, Status::Warn),
            (debian, "x86_64", None, Status::Warn),
            (ubuntu, "aarch64", Some(Canonical), Status::Fail),
            (ubuntu, "x86_64", Some(Canonical), Status::Pass),
            (ubuntu20, "x86_64", Some(Canonical), Status::Warn),
            (ubuntu20, "x86_64", Some(K3s), Status::Pass),
            // An unterminated quote drops ID, which then defaults to "linux": never a pass.
            (odd, "x86_64", None, Status::Warn),
        ];
        for (text, arch, distro, want) in cases {
            let mut f = facts();
            f.os = Ok(parse_os_release(text));
            f.kernel.arch = Some(arch.to_string());
            f.distro = *distro;
            assert_eq!(run(&f).status, *want, "case {text:?} {arch} {distro:?}");
        }
        let mut f = facts();
        f.os = Err("missing".into());
        assert_eq!(run(&f).status, Status::Warn, "no os-release");
    }
}
