//! Embeds build facts into the binary: version (from Cargo), git revision when
//! the source is a git checkout, target triple and build time (Unix seconds;
//! `version.rs` formats it).
//! Honours SOURCE_DATE_EPOCH so reproducible builds get a fixed date.
//! Must not fail the build when git or the .git directory is missing.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());

    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });

    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());

    link_order(&target);

    println!("cargo:rustc-env=OUTPOST_GIT_REV={rev}");
    println!("cargo:rustc-env=OUTPOST_TARGET={target}");
    println!("cargo:rustc-env=OUTPOST_BUILD_EPOCH={epoch}");
}

/// Release builds linked by rust-lld lay out the code (and named data) of
/// `--version`, `check`, `checkin`, `run` and `install` first, grouped by the
/// commands a trace saw touch it (cross/link-order/ARCH.txt, written by
/// scripts/link-order): the kernel maps
/// file pages in 64 KiB windows, so packed code means fewer resident pages
/// (docs/levers.md, "fourth round: floors"). Names missing from the build
/// (a stale list) are skipped by the linker; other linkers get nothing.
fn link_order(target: &str) {
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let lld = std::env::var("RUSTC_LINKER").is_ok_and(|l| l.ends_with("rust-lld"));
    let arch = target.split('-').next().unwrap_or("");
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let file = std::path::Path::new(&dir)
        .join("cross")
        .join("link-order")
        .join(format!("{arch}.txt"));
    println!("cargo:rerun-if-changed={}", file.display());
    if release && lld && file.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=--symbol-ordering-file={}",
            file.display()
        );
        println!("cargo:rustc-link-arg-bins=--no-warn-symbol-ordering");
    }
}
