//! The support table of `docs/support.md` as data: for each Kubernetes
//! distribution the model platform offers in agent mode, the verified OS
//! releases, architectures, kernel floor and host packages. `--distro`
//! selects one row; without it a host is judged against all rows (pass when
//! any verified combination matches, warn where only some distributions fit).
//!
//! Must not read the host; checks look facts up here. Keep in step with
//! docs/support.md (a unit test compares the two).

/// A Kubernetes distribution, as `--distro` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distro {
    K3s,
    Pxke,
    Canonical,
}

impl Distro {
    pub fn parse(s: &str) -> Option<Distro> {
        match s {
            "k3s" => Some(Distro::K3s),
            "pxke" | "pxk-e" => Some(Distro::Pxke),
            "canonical" => Some(Distro::Canonical),
            _ => None,
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Distro::K3s => "k3s",
            Distro::Pxke => "pxke",
            Distro::Canonical => "canonical",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Distro::K3s => "K3s",
            Distro::Pxke => "PXK-E",
            Distro::Canonical => "Canonical Kubernetes",
        }
    }
}

/// One row of the support table.
pub struct Row {
    pub distro: Distro,
    /// Verified OS releases: (os-release ID, VERSION_ID values).
    pub os: &'static [(&'static str, &'static [&'static str])],
    pub arches: &'static [&'static str],
    /// Oldest kernel (major, minor) the distribution runs on.
    pub kernel_floor: (u32, u32),
    /// Host commands this distribution needs beyond the common ones.
    pub tools: &'static [&'static str],
}

const UBUNTU_LTS: &[&str] = &["20.04", "22.04", "24.04"];

pub const TABLE: &[Row] = &[
    Row {
        distro: Distro::K3s,
        os: &[("ubuntu", UBUNTU_LTS)],
        arches: &["x86_64", "aarch64"],
        kernel_floor: (4, 18),
        tools: &[],
    },
    Row {
        distro: Distro::Pxke,
        os: &[("ubuntu", UBUNTU_LTS), ("rocky", &["8.10"])],
        arches: &["x86_64", "aarch64"],
        kernel_floor: (4, 19),
        tools: &["conntrack", "iptables"],
    },
    Row {
        distro: Distro::Canonical,
        os: &[("ubuntu", &["22.04", "24.04"])],
        arches: &["x86_64"],
        kernel_floor: (5, 15),
        tools: &["systemd-timesyncd"],
    },
];

/// Commands every distribution needs on the host.
pub const COMMON_TOOLS: &[&str] = &["bash", "jq", "zstd", "rsync"];

pub fn row(d: Distro) -> &'static Row {
    // TABLE has one row per Distro variant; the fallback is never taken.
    TABLE.iter().find(|r| r.distro == d).unwrap_or(&TABLE[0])
}

/// The rows that apply: the selected one, or all.
pub fn rows(d: Option<Distro>) -> Vec<&'static Row> {
    match d {
        Some(d) => vec![row(d)],
        None => TABLE.iter().collect(),
    }
}

impl Row {
    pub fn os_verified(&self, id: &str, version: &str) -> bool {
        self.os
            .iter()
            .any(|(i, vs)| *i == id && vs.contains(&version))
    }

    pub fn os_family(&self, id: &str) -> bool {
        self.os.iter().any(|(i, _)| *i == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_docs_support_md() {
        let doc = include_str!("../../docs/support.md");
        for r in TABLE {
            let os: Vec<String> =
                r.os.iter()
                    .map(|(id, vs)| format!("{id} {}", vs.join(", ")))
                    .collect();
            let line = format!(
                "| `{}` | {} | {} | {}.{} | {} |",
                r.distro.id(),
                os.join("; "),
                r.arches.join(", "),
                r.kernel_floor.0,
                r.kernel_floor.1,
                COMMON_TOOLS
                    .iter()
                    .chain(r.tools)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            assert!(doc.contains(&line), "docs/support.md lacks the row {line}");
        }
        for d in ["k3s", "pxke", "canonical"] {
            assert_eq!(Distro::parse(d).map(|d| d.id()), Some(d), "distro {d}");
        }
        assert_eq!(Distro::parse("rke2"), None);
    }
}
