//! The agent's side of the beacon: after boot, `checkin` and `run` send the
//! beacon of this boot once (`pending`), and when the hub has it
//! (`reported`) mark it sent in /run (gone at the next boot) and save the
//! boot counter in the state directory (the initramfs never writes to the
//! real root). A failure here is logged and never fails a check-in.

use super::{Beacon, Count, BEACON, COUNT_FILE, COUNT_SCHEMA, REPORTED};
use crate::sys::Root;
use std::path::Path;

/// This boot's beacon when it has not reached the hub yet.
pub fn pending(root: &Root) -> Option<Beacon> {
    let path = root.path(BEACON);
    let text = super::read_small(&path)?;
    let b = match Beacon::parse(&text) {
        Ok(b) => b,
        Err(e) => {
            log::warn!("{}: {e}; not sent", path.display());
            return None;
        }
    };
    let sent = root.read_trim(REPORTED).unwrap_or_default();
    (sent.is_empty() || sent != b.boot_id).then_some(Beacon {
        reported_by: "agent".into(),
        ..b
    })
}

/// The hub acknowledged `b`: remember that, and save the boot counter.
pub fn reported(root: &Root, state_dir: &Path, b: &Beacon) {
    let mark = root.path(REPORTED);
    if let Err(e) = crate::fsutil::write_atomic(&mark, format!("{}\n", b.boot_id).as_bytes(), 0o644)
    {
        log::warn!("boot beacon sent, but {}", e.message());
    }
    save_count(state_dir, b);
}

/// Save `{boot_id, count}` unless it is already saved for this boot.
pub fn save_count(state_dir: &Path, b: &Beacon) {
    if b.boot_id.is_empty() {
        return;
    }
    let path = state_dir.join(COUNT_FILE);
    let stored = super::read_small(&path).and_then(|t| super::parse_count(&t));
    if stored.is_some_and(|c| c.boot_id == b.boot_id) {
        return;
    }
    let c = Count {
        schema: COUNT_SCHEMA.into(),
        boot_id: b.boot_id.clone(),
        count: b.boot_count,
    };
    let mut text = miniserde::json::to_string(&c);
    text.push('\n');
    if let Err(e) = crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644) {
        log::warn!("boot counter not saved: {}", e.message());
    }
}
