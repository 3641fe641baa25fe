//! One file per subcommand: each takes its parsed arguments, does the work
//! through the pure modules, prints its result, and returns the exit code.
//! Nothing here parses argv (that is `cli/`) or exits the process.

pub mod bundle;
pub mod check;
pub mod checkin;
pub mod config;
pub mod id;
pub mod install;
pub mod probe;
pub mod run;
pub mod status;
pub mod uninstall;
pub mod upgrade;

use crate::cli::Command;
use crate::error::{Code, Result};
use std::io::Write;

/// Run a parsed command; `Ok` carries the exit code of a finished command.
pub fn run(cmd: Command) -> Result<Code> {
    match cmd {
        Command::Help(text) => print(&text),
        Command::Version { json } => print(&if json {
            crate::version::json()
        } else {
            crate::version::text()
        }),
        Command::Check(args) => check::run(args),
        Command::Bundle(args) => bundle::run(args),
        Command::Config(args) => config::run(args),
        Command::Id(args) => id::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Install(args) => install::run(args),
        Command::Uninstall(args) => uninstall::run(args),
        Command::Checkin(args) => checkin::run(args),
        Command::Status(args) => status::run(args),
        Command::Run(args) => run::run(args),
        Command::Upgrade(args) => upgrade::run(args),
        Command::Rollback(args) => upgrade::rollback(args),
        Command::UpgradeGuard(args) => upgrade::guard(args),
        Command::Boot(args) => crate::boot::command::run(args),
        Command::Cluster(args) => crate::cluster::cmd::run(args),
    }
}

/// Move the log filter to the effective `outpost.logLevel` (the config
/// loader already folded `stylus.trace` / `stylus.debug` into it when
/// logLevel is left at its default), keeping the `-v`/`-q` steps main
/// applied on top of the default `warn`.
pub fn apply_log_level(cfg: &crate::config::Config) {
    use log::LevelFilter as L;
    const LEVELS: [L; 6] = [L::Off, L::Error, L::Warn, L::Info, L::Debug, L::Trace];
    let idx = |l: L| LEVELS.iter().position(|x| *x == l).unwrap_or(2) as i32;
    let configured = match cfg.log_level.value.as_str() {
        "error" => L::Error,
        "info" => L::Info,
        "debug" => L::Debug,
        "trace" => L::Trace,
        _ => L::Warn,
    };
    let steps = idx(log::max_level()) - idx(L::Warn);
    let i = (idx(configured) + steps).clamp(0, 5) as usize;
    log::set_max_level(LEVELS[i]);
}

/// The one warning channel of the operator's commands (`config`,
/// `install`, `uninstall`): one line `warning: TEXT` on stderr. Agent
/// commands (`checkin`, `run`, ...) warn through `log::warn!`, which their
/// supervisor's journal or log file keeps. Never a secret in `text`.
pub fn warning(text: &str) {
    eprintln!("warning: {text}");
}

/// Write to stdout; a closed pipe is not an error worth a stack of messages.
pub fn print(text: &str) -> Result<Code> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(Code::Ok),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Code::Ok),
        Err(e) => Err(crate::error::Error::io(
            "writing",
            std::path::Path::new("standard output"),
            &e,
        )),
    }
}
