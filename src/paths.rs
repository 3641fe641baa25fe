//! Every default path of outpost on the host (DESIGN.md, "Paths"), in one
//! place. Each is an absolute path *on the host*: code resolves it under the
//! `--root` prefix (`sys::Root`), never opens it as it stands.

/// Where the agent binary is installed, and its directory.
pub const BIN_DIR: &str = "/usr/local/bin";
pub const BIN_PATH: &str = "/usr/local/bin/outpost";
/// The configuration (user-data) and its directory.
pub const CONFIG_DIR: &str = "/etc/outpost";
pub const CONFIG_PATH: &str = "/etc/outpost/user-data";
/// The state directory's default; the config's `outpost.stateDir` may move it.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/outpost";
/// Proxy variables for the agent's unit (0600: a proxy URL may hold a password).
pub const PROXY_ENV_PATH: &str = "/etc/outpost/proxy.env";
pub const UNIT_DIR: &str = "/etc/systemd/system";
pub const SERVICE_PATH: &str = "/etc/systemd/system/outpost.service";
pub const SERVICE_DROPIN_DIR: &str = "/etc/systemd/system/outpost.service.d";
pub const PROXY_DROPIN_PATH: &str = "/etc/systemd/system/outpost.service.d/proxy.conf";
pub const STATE_DROPIN_PATH: &str = "/etc/systemd/system/outpost.service.d/state-dir.conf";
pub const FIRSTBOOT_PATH: &str = "/etc/systemd/system/outpost-firstboot.service";
pub const FIRSTBOOT_DROPIN_PATH: &str = "/etc/systemd/system/outpost-firstboot.service.d/ca.conf";
pub const WANTS_DIR: &str = "/etc/systemd/system/multi-user.target.wants";
pub const CRON_PATH: &str = "/etc/cron.d/outpost";
