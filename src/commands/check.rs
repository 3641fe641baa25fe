//! `outpost check`: gather facts under the root, run the checks, print text
//! or `outpost.check/v1` JSON; exit 0 when nothing failed, 1 otherwise.

use crate::checks::{self, Facts, Summary};
use crate::cli::CheckArgs;
use crate::error::{Code, Result};

pub fn run(args: CheckArgs) -> Result<Code> {
    let host = crate::sys::host();
    log::debug!(
        "check: reading host facts under {}",
        args.root.base().display()
    );
    let mut facts = Facts::gather(&args.root, host.as_ref());
    facts.distro = args.distro;
    let mut results = if args.boot {
        crate::boot::checks(&args.root, &facts, false).0
    } else {
        checks::run(&facts, &args.selection)
    };
    if let Some(rc) = &args.role {
        results.extend(crate::cluster::preflight::run(&args.root, rc));
    }
    let text = if args.json {
        let mut j = checks::to_json(&facts, &results);
        j.push('\n');
        j
    } else {
        let colour = crate::sys::stdout_is_tty()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        checks::to_text(&facts, &results, colour)
    };
    super::print(&text)?;
    Ok(if Summary::of(&results).ok() {
        Code::Ok
    } else {
        Code::CheckFailed
    })
}
