//! One file per subcommand: each takes its parsed arguments, does the work
//! through the pure modules, prints its result, and returns the exit code.
//! Nothing here parses argv (that is `cli.rs`) or exits the process.

pub mod check;
pub mod config;
pub mod id;
pub mod install;
pub mod probe;
pub mod uninstall;

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
        Command::Config(args) => config::run(args),
        Command::Id(args) => id::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Install(args) => install::run(args),
        Command::Uninstall(args) => uninstall::run(args),
    }
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
