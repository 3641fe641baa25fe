//! Real SIGKILL for the reliability tests: run the agent under `strace`
//! with fault injection (`-e inject=SYSCALL:signal=SIGKILL:when=N`), so the
//! kernel kills it at exactly the Nth call of SYSCALL (every write, rename,
//! fsync, mkdir, unlink of a run, one at a time), or kill it after a random
//! delay. A small seeded PRNG picks the delays; the seed is printed so a
//! failure reproduces (`OUTPOST_KILL_SEED=...`). No abort hook: the process
//! dies inside a file write, as on a power cut or an OOM kill.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The calls a kill is injected at: everything that changes a file or a
/// directory, plus `write` (files, the TLS socket, the log).
pub const SYSCALLS: &[&str] = &[
    "write",
    "fsync",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "unlink",
    "unlinkat",
    "symlink",
    "symlinkat",
    "fchmod",
];

/// xorshift64*: deterministic from the printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// The seed: `OUTPOST_KILL_SEED` or the clock; printed either way.
pub fn seed(label: &str) -> u64 {
    let s = std::env::var("OUTPOST_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{label}: OUTPOST_KILL_SEED={s}");
    s
}

/// Runs per command: `OUTPOST_KILL_RUNS` (long mode) or `default`.
pub fn runs(default: usize) -> usize {
    std::env::var("OUTPOST_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// strace is usable (installed, ptrace allowed) and the agent runs
/// natively (a process under qemu user emulation cannot be traced so).
pub fn available() -> bool {
    if super::runner().is_some() {
        return false;
    }
    Command::new("strace")
        .args(["-o", "/dev/null", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// How often each of SYSCALLS is called by `cmd` (a run to completion
/// under strace, its output parsed).
pub fn count_calls(cmd: &Command, trace_out: &Path) -> BTreeMap<String, usize> {
    let mut c = traced(
        cmd,
        &[
            "-o",
            &trace_out.display().to_string(),
            "-e",
            &format!("trace={}", SYSCALLS.join(",")),
        ],
    );
    let st = c.status().expect("strace reference run");
    assert!(st.success(), "reference run under strace failed: {st}");
    let text = std::fs::read_to_string(trace_out).expect("strace output");
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        // "PID name(args) = ret" (with -f) or "name(args) = ret".
        let body = line.split_once(' ').map_or(line, |(a, b)| {
            if a.bytes().all(|c| c.is_ascii_digit()) {
                b.trim_start()
            } else {
                line
            }
        });
        if let Some(name) = body.split('(').next() {
            if SYSCALLS.contains(&name) {
                *counts.entry(name.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// `strace -f -qq ARGS -- PROGRAM ARGV`, with `cmd`'s environment.
fn traced(cmd: &Command, args: &[&str]) -> Command {
    let mut c = Command::new("strace");
    c.arg("-f").arg("-qq").args(args).arg("--");
    c.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// One kill: at the `n`th call of `syscall` (strace injection), or after
/// `delay` (a plain SIGKILL). Returns (killed, wall time).
pub enum At {
    Call(&'static str, usize),
    After(Duration),
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Call(s, n) => write!(f, "SIGKILL at {s} #{n}"),
            At::After(d) => write!(f, "SIGKILL after {} us", d.as_micros()),
        }
    }
}

pub fn kill(cmd: &Command, at: &At) -> (bool, Duration) {
    let t0 = Instant::now();
    match at {
        At::Call(sys, n) => {
            let mut c = traced(
                cmd,
                &[
                    "-o",
                    "/dev/null",
                    "-e",
                    &format!("trace={sys}"),
                    "-e",
                    &format!("inject={sys}:signal=SIGKILL:when={n}"),
                ],
            );
            let st = c.status().expect("strace");
            // strace passes a tracee's death by signal on: it kills itself
            // with the same signal, or exits with 128 + the signal number.
            use std::os::unix::process::ExitStatusExt;
            (
                st.signal() == Some(9) || st.code() == Some(128 + 9),
                t0.elapsed(),
            )
        }
        At::After(d) => {
            let mut c = Command::new(cmd.get_program());
            c.args(cmd.get_args());
            for (k, v) in cmd.get_envs() {
                match v {
                    Some(v) => c.env(k, v),
                    None => c.env_remove(k),
                };
            }
            c.stdout(Stdio::null()).stderr(Stdio::null());
            let mut child = c.spawn().expect("spawn");
            std::thread::sleep(*d);
            let _ = child.kill();
            let st = child.wait().expect("wait");
            use std::os::unix::process::ExitStatusExt;
            (st.signal() == Some(9), t0.elapsed())
        }
    }
}

/// The kill points of one command: every call of each traced syscall
/// (from a reference run), then random instants up to `total` runs within
/// `span` (the reference run's wall time).
pub fn plan(
    counts: &BTreeMap<String, usize>,
    total: usize,
    span: Duration,
    rng: &mut Rng,
) -> Vec<At> {
    let mut out = Vec::new();
    for (sys, &n) in counts {
        let Some(&s) = SYSCALLS.iter().find(|s| **s == sys.as_str()) else {
            continue;
        };
        for i in 1..=n {
            out.push(At::Call(s, i));
        }
    }
    let span_us = span.as_micros().max(1000) as u64;
    while out.len() < total {
        out.push(At::After(Duration::from_micros(rng.below(span_us))));
    }
    out
}

/// Temp files and directories of the agent's naming under `dir` (recursive).
pub fn temps(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        if name.starts_with('.') && name.contains(".tmp.") {
            out.push(p.display().to_string());
        } else if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(temps(&p));
        }
    }
    out
}

/// Mode bits of a path (not following a link).
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0)
}

/// The file parses as JSON.
pub fn valid_json(p: &Path) -> bool {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|t| miniserde::json::from_str::<miniserde::json::Value>(&t).ok())
        .is_some()
}
