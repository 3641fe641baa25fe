//! `outpost id`: print the host ID, deriving it and storing it in the state
//! directory on first use (see identity.rs for the rules).

use crate::cli::IdArgs;
use crate::error::{Code, Result};

pub fn run(args: IdArgs) -> Result<Code> {
    let l = super::config::load(&args.src, false)?;
    for w in &l.warnings {
        log::warn!("{w}");
    }
    let cfg = l.into_valid()?;
    let host = crate::sys::host();
    let id = crate::identity::host_id(&args.src.root, &cfg, host.as_ref())?;
    log::info!("host ID from {:?}", id.origin);
    super::print(&format!("{}\n", id.id))
}
