//! The cluster role applied by `outpost run` without stopping its loop.
//!
//! Starting K3s takes minutes (up to 300 s to run and 300 s more to be
//! ready), and the service loop must go on checking in and pinging the
//! watchdog meanwhile. So after a check-in whose answer asks for a step
//! (`hub::next_step`), `run` starts `outpost cluster from-hub` in a separate
//! process, which acts on the instruction kept in `state.json` and records
//! each state in `cluster.json`; the loop's next check-ins report them.
//! One step at a time: while one runs, later check-ins start none.
//!
//! Under systemd (the agent runs as `outpost.service`) the step runs as the
//! transient unit `outpost-cluster-role.service` started with `systemd-run`:
//! outside the agent's sandbox, which lets it write only its state
//! directory and binary and open no raw sockets, while the role writes
//! `/etc/rancher`, `/var/lib/rancher`, `/etc/systemd/system`, starts units
//! and sends ARP probes. Elsewhere (a terminal, a `--root` tree) it is a
//! child process, killed when it outlives `LIMIT`.
//!
//! Nothing secret goes into the command line: the step reads the
//! instruction (token included) from `state.json` (0600).

use super::hub::Step;
use crate::cli::ConfigSource;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The transient unit's name.
pub const UNIT: &str = "outpost-cluster-role";
/// The longest a step may take: running and ready (300 s each) plus
/// writing files and the preflight.
pub const LIMIT: Duration = Duration::from_secs(720);

/// How steps are started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `systemd-run --unit outpost-cluster-role`.
    Unit,
    /// A child process of the loop.
    Child,
}

pub struct Worker {
    via: Via,
    child: Option<(Child, Instant)>,
}

/// The command line of a step: `outpost cluster from-hub` with the
/// loop's `--root` and `--config` (`--set` values stay out: they may hold
/// secrets, and argv is world-readable).
pub fn step_args(src: &ConfigSource) -> Vec<String> {
    let mut a = vec!["cluster".to_string(), "from-hub".to_string()];
    if !src.root.is_live() {
        a.push("--root".into());
        a.push(src.root.base().display().to_string());
    }
    if let Some(f) = &src.file {
        a.push("--config".into());
        a.push(f.display().to_string());
    }
    a
}

fn exe() -> String {
    crate::sys::self_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/usr/local/bin/outpost".into())
}

/// From `systemctl list-units --all --plain --no-legend UNIT` (columns
/// UNIT LOAD ACTIVE SUB DESCRIPTION): whether the step still runs.
pub fn unit_busy(list: &str) -> bool {
    list.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.first() == Some(&format!("{UNIT}.service").as_str())
            && matches!(
                f.get(2).copied(),
                Some("active" | "activating" | "deactivating" | "reloading")
            )
    })
}

impl Worker {
    /// A transient unit when this process is a systemd service on the live
    /// system, a child process otherwise.
    pub fn new(src: &ConfigSource) -> Worker {
        let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
        Worker {
            via: if src.root.is_live() && under_systemd {
                Via::Unit
            } else {
                Via::Child
            },
            child: None,
        }
    }

    pub fn via(&self) -> Via {
        self.via
    }

    /// Whether a step is still running (reaping a finished child).
    pub fn busy(&mut self) -> bool {
        match self.via {
            Via::Unit => {
                // list-units, not is-active: asking for a unit that was
                // collected makes systemd try to load it and log a line.
                let out = Command::new("systemctl")
                    .args(["list-units", "--all", "--plain", "--no-legend"])
                    .arg(format!("{UNIT}.service"))
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                unit_busy(&out)
            }
            Via::Child => {
                let Some((child, since)) = &mut self.child else {
                    return false;
                };
                match child.try_wait() {
                    Ok(Some(st)) => {
                        if !st.success() {
                            log::warn!("cluster: the role step ended with {st}");
                        }
                        self.child = None;
                        false
                    }
                    Ok(None) if since.elapsed() > LIMIT => {
                        log::error!(
                            "cluster: the role step ran longer than {} s; stopping it",
                            LIMIT.as_secs()
                        );
                        let _ = child.kill();
                        let _ = child.wait();
                        self.child = None;
                        false
                    }
                    Ok(None) => true,
                    Err(e) => {
                        log::warn!("cluster: waiting for the role step: {e}");
                        self.child = None;
                        false
                    }
                }
            }
        }
    }

    /// After a check-in: start the step in the background, unless there is
    /// nothing to do or one is still running. Never blocks for long.
    pub fn tick(&mut self, src: &ConfigSource, step: Step) {
        if self.busy() {
            if step != Step::Nothing {
                log::debug!("cluster: the role step is still running; checking again later");
            }
            return;
        }
        if step == Step::Nothing {
            return;
        }
        let args = step_args(src);
        let what = if step == Step::Leave {
            "leaving the cluster"
        } else {
            "applying the cluster role"
        };
        match self.via {
            Via::Unit => {
                let mut cmd = Command::new("systemd-run");
                cmd.arg(format!("--unit={UNIT}"))
                    .arg("--description=outpost: apply the cluster role")
                    .args(["--collect", "--no-block", "--quiet"])
                    .arg(format!("--property=RuntimeMaxSec={}", LIMIT.as_secs()))
                    .arg(exe())
                    .args(&args)
                    .stdin(Stdio::null());
                match cmd.output() {
                    Ok(o) if o.status.success() => {
                        log::info!("cluster: {what} in {UNIT}.service");
                    }
                    Ok(o) => log::error!(
                        "cluster: systemd-run for {UNIT}.service failed: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    ),
                    Err(e) => log::error!("cluster: running systemd-run: {e}"),
                }
            }
            // Through sys::self_command: test builds run the child under
            // the same emulator as this process (OUTPOST_TEST_RUNNER).
            Via::Child => match crate::sys::self_command()
                .and_then(|mut c| c.args(&args).stdin(Stdio::null()).spawn())
            {
                Ok(c) => {
                    log::info!("cluster: {what} in process {}", c.id());
                    self.child = Some((c, Instant::now()));
                }
                Err(e) => log::error!("cluster: starting the role step: {e}"),
            },
        }
    }

    /// The loop ends: a child step ends with it (a unit runs on).
    pub fn stop(&mut self) {
        if let Some((mut c, _)) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Root;

    #[test]
    fn step_command_line_carries_root_and_config_but_no_set_values() {
        let src = ConfigSource {
            root: Root::new("/tmp/tree"),
            file: Some("/etc/outpost/user-data".into()),
            sets: vec![("stylus.site.edgeHostToken".into(), "s3cret".into())],
        };
        let a = step_args(&src);
        assert_eq!(
            a,
            [
                "cluster",
                "from-hub",
                "--root",
                "/tmp/tree",
                "--config",
                "/etc/outpost/user-data"
            ]
        );
        let live = ConfigSource {
            root: Root::new("/"),
            file: None,
            sets: Vec::new(),
        };
        assert_eq!(step_args(&live), ["cluster", "from-hub"]);
    }

    #[test]
    fn the_transient_unit_is_busy_while_it_runs() {
        let line = |active: &str, sub: &str| {
            format!("outpost-cluster-role.service loaded {active} {sub} outpost: apply the cluster role\n")
        };
        assert!(unit_busy(&line("active", "running")));
        assert!(unit_busy(&line("deactivating", "stop-sigterm")));
        assert!(!unit_busy(&line("inactive", "dead")));
        assert!(!unit_busy(&line("failed", "failed")));
        assert!(!unit_busy(""), "collected: not listed");
        assert!(!unit_busy("other.service loaded active running x\n"));
    }

    #[test]
    fn a_child_step_runs_in_the_background_and_is_reaped() {
        // `sleep` stands in for the step: tick must return at once, busy
        // must say so while it runs, and be false once it ended.
        let mut w = Worker {
            via: Via::Child,
            child: None,
        };
        assert!(!w.busy());
        let c = Command::new("sleep").arg("0.5").spawn().expect("sleep");
        w.child = Some((c, Instant::now()));
        let t0 = Instant::now();
        w.tick(
            &ConfigSource {
                root: Root::new("/nonexistent"),
                file: None,
                sets: Vec::new(),
            },
            Step::Apply,
        );
        assert!(w.child.is_some(), "a running step is not replaced");
        assert!(w.busy());
        while w.busy() {
            assert!(t0.elapsed() < Duration::from_secs(30), "never reaped");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(w.child.is_none());
    }
}
