//! Shared support for integration tests: run the real `outpost` binary,
//! through the runner prefix in `OUTPOST_TEST_RUNNER` when the tests run under
//! user-mode emulation (a process under qemu cannot exec a foreign binary).
#![allow(dead_code)]

pub mod hub;
pub mod tls;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A `Command` for the agent binary, with the runner prefix when set.
pub fn outpost() -> Command {
    let bin = env!("CARGO_BIN_EXE_outpost");
    let mut cmd = match std::env::var("OUTPOST_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut parts = runner.split_whitespace();
            let mut c = Command::new(parts.next().unwrap_or("qemu-aarch64-static"));
            c.args(parts);
            c.arg(bin);
            c
        }
        _ => Command::new(bin),
    };
    // Never let the caller's environment steer a test.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OUTPOST_") && k != "OUTPOST_TEST_RUNNER" {
            cmd.env_remove(&k);
        }
    }
    cmd.env_remove("NO_COLOR");
    cmd
}

/// The runner prefix in use, for tests to say under what they ran.
pub fn runner() -> Option<String> {
    std::env::var("OUTPOST_TEST_RUNNER")
        .ok()
        .filter(|r| !r.trim().is_empty())
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// Run and return (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let out: Output = cmd.output().expect("spawning outpost");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub mod agent;
pub mod fault;
pub mod install;
pub mod kill;
pub mod leak;
pub mod proxy;
pub mod upgrade;
