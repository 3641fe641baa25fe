//! Kernel identification: architecture, release and host name. Read from
//! `/proc/sys/kernel/{arch,osrelease,hostname}` under the root first, and from
//! `uname(2)` only when a file is missing, so a fixture tree decides its own.

use crate::sys::{Host, Root};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kernel {
    pub arch: Option<String>,
    pub release: Option<String>,
    pub hostname: Option<String>,
}

pub fn read(root: &Root, host: &dyn Host) -> Kernel {
    let file = |p: &str| root.read_trim(p).filter(|s| !s.is_empty());
    let mut k = Kernel {
        arch: file("/proc/sys/kernel/arch"),
        release: file("/proc/sys/kernel/osrelease"),
        hostname: file("/proc/sys/kernel/hostname"),
    };
    // Only the live system may fall back to the running kernel: an image or
    // fixture root must not borrow the build machine's facts.
    if root.is_live() && (k.arch.is_none() || k.release.is_none() || k.hostname.is_none()) {
        if let Ok(u) = host.uname() {
            k.arch = k.arch.or(Some(u.machine).filter(|s| !s.is_empty()));
            k.release = k.release.or(Some(u.release).filter(|s| !s.is_empty()));
            k.hostname = k.hostname.or(Some(u.nodename).filter(|s| !s.is_empty()));
        }
    }
    k
}

/// Normalise the names kernels and tools use for the same architecture.
pub fn normalise_arch(a: &str) -> &str {
    match a {
        "amd64" | "x86-64" => "x86_64",
        "arm64" | "armv8" => "aarch64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names() {
        assert_eq!(normalise_arch("amd64"), "x86_64");
        assert_eq!(normalise_arch("arm64"), "aarch64");
        assert_eq!(normalise_arch("aarch64_be"), "aarch64_be");
        assert_eq!(normalise_arch("riscv64"), "riscv64");
    }
}
