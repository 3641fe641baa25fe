//! The one table of configuration keys: every key of the platform's
//! user-data that outpost reads, every platform key it accepts but ignores,
//! and outpost's own `outpost:` block, with type, default, `OUTPOST_*`
//! environment variable and meaning. docs/configuration.md mirrors it (a
//! unit test keeps the two in step). A row also names how its value is read
//! into `Config` and shown by `config show` (the readers are in `read.rs`):
//! the loader, the defaults, `--set`, the `OUTPOST_*` variables and `config
//! show` all walk this one table. No I/O here.

use super::read::{self as r, Ctx, FileValues, Shown};
use super::read::{show_public_keys, show_uid_paths};
use super::values::{
    check_abs_path, check_dns_name, check_endpoint, check_hostname, check_https_url, check_ip,
    check_prefix, check_public_key, check_state_dir, check_tenant, Mode, Scheduler,
};
use super::{Config, Raw, Source};

/// The YAML shape a key takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// Any scalar, taken as text.
    Str,
    /// `true` or `false`.
    Bool,
    /// A whole number >= 0.
    Int,
    /// A list of strings, or one comma-separated string.
    List,
    /// A map of plain keys to plain values (tags).
    Map,
    /// A map with the known sub-keys listed in this table.
    Object,
    /// A list of maps, each with the sub-keys listed as `path[].sub`.
    ObjList,
    /// A platform key outpost does not act on: accepted whole, warned about.
    Ignored,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Str => "string",
            Ty::Bool => "boolean",
            Ty::Int => "integer",
            Ty::List => "list of strings or comma-separated string",
            Ty::Map => "map of strings",
            Ty::Object => "map",
            Ty::ObjList => "list of maps",
            Ty::Ignored => "any (ignored)",
        }
    }
}

/// Reads one value of a key into `Config` (the value the layers chose).
pub(crate) type ReadFn = fn(&mut Config, &Raw, &mut Ctx<'_>);
/// Reads a group of keys that come from the file only.
pub(crate) type FileFn = fn(&mut Config, &FileValues, &mut Ctx<'_>);
/// The value `config show` prints for a key, and its source.
pub(crate) type ShowFn = fn(&Config) -> (Shown, &Source);
/// A rule joining keys, run right after a row is read.
pub(crate) type RuleFn = fn(&mut Config, &mut Ctx<'_>);

/// How a row's value gets into `Config`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Read {
    /// Not read by itself (a map, an ignored key, part of a group).
    Not,
    /// One value from the layers (`--set` > `OUTPOST_*` > file > standard
    /// proxy variables); the row's default text is read the same way.
    Value(ReadFn),
    /// A group of sub-keys read from the file only.
    File(FileFn),
}

/// One configuration key.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// Dotted path; `[]` marks the items of a list of maps.
    pub path: &'static str,
    pub ty: Ty,
    /// The environment variable that overrides it (scalars and lists only).
    pub env: Option<&'static str>,
    /// The default as shown to people ("" = unset).
    pub default: &'static str,
    /// True when the value is a secret: never shown, never in argv.
    pub secret: bool,
    pub meaning: &'static str,
    pub(crate) read: Read,
    pub(crate) show: Option<ShowFn>,
    pub(crate) then: Option<RuleFn>,
}

impl Key {
    const fn read(self, f: ReadFn) -> Key {
        Key {
            read: Read::Value(f),
            ..self
        }
    }
    const fn file(self, f: FileFn) -> Key {
        Key {
            read: Read::File(f),
            ..self
        }
    }
    const fn show(self, f: ShowFn) -> Key {
        Key {
            show: Some(f),
            ..self
        }
    }
    const fn then(self, f: RuleFn) -> Key {
        Key {
            then: Some(f),
            ..self
        }
    }
    const fn secret(self) -> Key {
        Key {
            secret: true,
            ..self
        }
    }
}

const fn k(
    path: &'static str,
    ty: Ty,
    env: Option<&'static str>,
    default: &'static str,
    meaning: &'static str,
) -> Key {
    Key {
        path,
        ty,
        env,
        default,
        secret: false,
        meaning,
        read: Read::Not,
        show: None,
        then: None,
    }
}

const fn ign(path: &'static str, meaning: &'static str) -> Key {
    k(path, Ty::Ignored, None, "", meaning)
}

/// The variable that carries the registration token for installers.
pub const TOKEN_ENV: &str = "OUTPOST_EDGE_HOST_TOKEN";

/// Every key, parents before children; `config show` and the loader go in
/// this order (so do problems in a file).
#[rustfmt::skip]
pub const KEYS: &[Key] = &[
    // -- the platform's `stylus:` block, keys outpost acts on --
    k("stylus", Ty::Object, None, "", "The platform agent's settings."),
    k("stylus.site", Ty::Object, None, "", "Site settings: endpoint, registration, identity, network."),
    k("stylus.site.paletteEndpoint", Ty::Str, Some("OUTPOST_PALETTE_ENDPOINT"), "", "Management endpoint: a host name (`api.example.com`, optional `:port`) or an `https://` URL.")
        .read(|c, v, x| r::opt_text(&mut c.endpoint, v, x, check_endpoint))
        .show(|c| c.endpoint.show_as(r::url)),
    k("stylus.site.edgeHostToken", Ty::Str, Some(TOKEN_ENV), "", "Registration token created at tenant scope. Secret: redacted everywhere, never a flag.").secret()
        .read(|c, v, x| r::secret(&mut c.token, v, x))
        .show(|c| c.token.show()),
    k("stylus.site.projectName", Ty::Str, Some("OUTPOST_PROJECT_NAME"), "", "Project the host registers into.")
        .read(|c, v, x| r::opt_text(&mut c.project_name, v, x, r::any))
        .show(|c| c.project_name.show()),
    k("stylus.site.projectUid", Ty::Str, Some("OUTPOST_PROJECT_UID"), "", "Project ID the host registers into.")
        .read(|c, v, x| r::opt_text(&mut c.project_uid, v, x, r::any))
        .show(|c| c.project_uid.show()),
    k("stylus.site.name", Ty::Str, Some("OUTPOST_NAME"), "", "Host ID, used as given; `\"$random\"` means a random ID (see the identity rules).")
        .read(|c, v, x| r::opt_text(&mut c.name, v, x, r::any))
        .show(|c| c.name.show()),
    k("stylus.site.hostName", Ty::Str, Some("OUTPOST_HOST_NAME"), "", "Host name reported to the server; defaults to the host ID.")
        .read(|c, v, x| r::opt_text(&mut c.host_name, v, x, check_hostname))
        .show(|c| c.host_name.show()),
    k("stylus.site.prefix", Ty::Str, Some("OUTPOST_PREFIX"), "edge", "Prefix of a derived host ID (`<prefix>-<id>`); letters, digits and `-` only.")
        .read(|c, v, x| r::text(&mut c.prefix, v, x, false, check_prefix))
        .show(|c| c.prefix.show()),
    k("stylus.site.tags", Ty::Map, None, "", "Key-value tags sent with registration.")
        .read(r::tags)
        .show(|c| c.tags.show_as(|t| Shown::List(t.iter().map(|(k, v)| format!("{k}={v}")).collect()))),
    k("stylus.site.tagsFromFile", Ty::Object, None, "", "Read more tags from a file under --root.")
        .file(r::tags_from_file),
    k("stylus.site.tagsFromFile.fileName", Ty::Str, None, "", "Path of the tags file.")
        .show(|c| c.tags_from_file.show_as(|t| t.as_ref().map_or(Shown::Unset, |t| Shown::Text(t.file_name.clone())))),
    k("stylus.site.tagsFromFile.delimiter", Ty::Str, None, "\\n", "Separates one key-value pair from the next.")
        .show(|c| c.tags_from_file.show_as(|t| Shown::Text(format!("{:?}", t.as_ref().map_or("\n", |t| t.delimiter.as_str()))))),
    k("stylus.site.tagsFromFile.separator", Ty::Str, None, ":", "Separates a key from its value.")
        .show(|c| c.tags_from_file.show_as(|t| Shown::Text(format!("{:?}", t.as_ref().map_or(":", |t| t.separator.as_str()))))),
    k("stylus.site.deviceUIDPaths", Ty::ObjList, None, "[{name: /sys/class/dmi/id/product_uuid}]", "Files to read the host ID from, first readable wins.")
        .file(r::device_uid_paths)
        .show(|c| c.device_uid_paths.show_as(|v| show_uid_paths(v))),
    k("stylus.site.deviceUIDPaths[].name", Ty::Str, None, "", "Path of the file (under --root)."),
    k("stylus.site.deviceUIDPaths[].regex", Ty::Str, None, "", "Regular expression; the whole leftmost match is the ID."),
    k("stylus.site.caCerts", Ty::List, None, "", "CA certificates for the endpoint: PEM, or base64 of PEM or DER.")
        .read(r::ca_certs)
        .show(|c| c.ca_certs.show_as(|v| Shown::Text(format!("{} certificate(s)", v.len())))),
    k("stylus.site.insecureSkipVerify", Ty::Bool, Some("OUTPOST_INSECURE_SKIP_VERIFY"), "false", "Do not verify the server certificate. Accepted with a loud warning.")
        .read(|c, v, x| r::flag(&mut c.insecure_skip_verify, v, x))
        .show(|c| c.insecure_skip_verify.show())
        .then(r::warn_insecure),
    k("stylus.site.disableAutoRegister", Ty::Bool, Some("OUTPOST_DISABLE_AUTO_REGISTER"), "false", "Do not register automatically with the token.")
        .read(|c, v, x| r::flag(&mut c.disable_auto_register, v, x))
        .show(|c| c.disable_auto_register.show()),
    k("stylus.site.registrationURL", Ty::Str, Some("OUTPOST_REGISTRATION_URL"), "", "URL operators use to register the host by hand.")
        .read(|c, v, x| r::opt_text(&mut c.registration_url, v, x, check_https_url))
        .show(|c| c.registration_url.show_as(r::url)),
    k("stylus.site.network", Ty::Object, None, "", "Network settings."),
    k("stylus.site.network.httpProxy", Ty::Str, Some("OUTPOST_NETWORK_HTTP_PROXY"), "", "HTTP proxy URL, `http://[user:password@]host[:port]` (outpost speaks http to proxies, with CONNECT).")
        .read(|c, v, x| r::proxy(&mut c.http_proxy, v, x))
        .show(|c| c.http_proxy.show()),
    k("stylus.site.network.httpsProxy", Ty::Str, Some("OUTPOST_NETWORK_HTTPS_PROXY"), "", "HTTPS proxy URL, `http://[user:password@]host[:port]` (outpost speaks http to proxies, with CONNECT).")
        .read(|c, v, x| r::proxy(&mut c.https_proxy, v, x))
        .show(|c| c.https_proxy.show()),
    k("stylus.site.network.noProxy", Ty::List, Some("OUTPOST_NETWORK_NO_PROXY"), "", "Hosts, `.domains`, IP addresses, CIDRs or `*` reached without the proxy.")
        .read(r::no_proxy)
        .show(|c| c.no_proxy.show()),
    k("stylus.site.network.nameserver", Ty::Str, Some("OUTPOST_NETWORK_NAMESERVER"), "", "Global DNS server (IP address).")
        .read(|c, v, x| r::opt_text(&mut c.nameserver, v, x, check_ip))
        .show(|c| c.nameserver.show()),
    k("stylus.debug", Ty::Bool, Some("OUTPOST_DEBUG"), "false", "Debug output (log level debug unless outpost.logLevel says otherwise).")
        .read(|c, v, x| r::flag(&mut c.debug, v, x))
        .show(|c| c.debug.show()),
    k("stylus.trace", Ty::Bool, Some("OUTPOST_TRACE"), "false", "Trace output (log level trace unless outpost.logLevel says otherwise).")
        .read(|c, v, x| r::flag(&mut c.trace, v, x))
        .show(|c| c.trace.show()),
    k("stylus.path", Ty::Str, Some("OUTPOST_PATH"), "/", "The platform agent's installation root.")
        .read(|c, v, x| r::text(&mut c.path, v, x, false, check_abs_path))
        .show(|c| c.path.show()),
    k("stylus.installationMode", Ty::Str, Some("OUTPOST_INSTALLATION_MODE"), "connected", "Deprecated: `connected` or `airgap`; `airgap` means managementMode `local`.")
        .read(|c, v, x| r::opt_text(&mut c.installation_mode, v, x, |s| r::one_of(s, &["connected", "airgap"])))
        .show(|c| c.installation_mode.show()),
    k("stylus.managementMode", Ty::Str, Some("OUTPOST_MANAGEMENT_MODE"), "central", "`central` (checks in with the endpoint) or `local` (no server).")
        .read(|c, v, x| r::choice(&mut c.management_mode, v, x, &[("central", Mode::Central), ("local", Mode::Local)]))
        .show(|c| c.management_mode.show())
        .then(r::airgap_is_local),
    k("stylus.vip", Ty::Object, None, "", "kube-vip settings."),
    k("stylus.vip.skip", Ty::Bool, Some("OUTPOST_VIP_SKIP"), "false", "Skip kube-vip (external load balancer).")
        .read(|c, v, x| r::flag(&mut c.vip_skip, v, x))
        .show(|c| c.vip_skip.show()),
    k("install", Ty::Object, None, "", "Installer settings."),
    k("install.reboot", Ty::Bool, Some("OUTPOST_INSTALL_REBOOT"), "false", "Reboot after installation.")
        .read(|c, v, x| r::flag(&mut c.install_reboot, v, x))
        .show(|c| c.install_reboot.show()),
    k("install.poweroff", Ty::Bool, Some("OUTPOST_INSTALL_POWEROFF"), "false", "Power off after installation.")
        .read(|c, v, x| r::flag(&mut c.install_poweroff, v, x))
        .show(|c| c.install_poweroff.show()),
    // -- outpost's own block --
    k("outpost", Ty::Object, None, "", "outpost's own settings."),
    k("outpost.server", Ty::Object, None, "", "Which protocol the management endpoint speaks."),
    k("outpost.server.protocol", Ty::Str, Some("OUTPOST_SERVER_PROTOCOL"), "outpost", "`outpost` (the outpost check-in protocol) or `ddi` (an Eclipse hawkBit DDI server, docs/hawkbit.md).")
        .read(|c, v, x| r::text(&mut c.server_protocol, v, x, true, |s| r::one_of(s, &["outpost", "ddi"])))
        .show(|c| c.server_protocol.show()),
    k("outpost.server.ddi", Ty::Object, None, "", "hawkBit DDI settings (with `protocol: ddi`)."),
    k("outpost.server.ddi.tenant", Ty::Str, Some("OUTPOST_DDI_TENANT"), "DEFAULT", "The hawkBit tenant (the first path segment of the DDI API).")
        .read(|c, v, x| r::text(&mut c.ddi_tenant, v, x, true, check_tenant))
        .show(|c| c.ddi_tenant.show()),
    k("outpost.server.ddi.tokenType", Ty::Str, Some("OUTPOST_DDI_TOKEN_TYPE"), "target", "`target` (a per-target token: `Authorization: TargetToken`) or `gateway` (the tenant's gateway token).")
        .read(|c, v, x| r::text(&mut c.ddi_token_type, v, x, true, |s| r::one_of(s, &["target", "gateway"])))
        .show(|c| c.ddi_token_type.show()),
    k("outpost.server.ddi.token", Ty::Str, Some("OUTPOST_DDI_TOKEN"), "", "The target or gateway token. Secret: redacted everywhere, never a flag.").secret()
        .read(|c, v, x| r::secret(&mut c.ddi_token, v, x))
        .show(|c| c.ddi_token.show()),
    k("outpost.interval", Ty::Object, None, "", "Bounds of the check-in interval the server may ask for."),
    k("outpost.interval.min", Ty::Int, Some("OUTPOST_INTERVAL_MIN"), "60", "Shortest check-in interval, seconds (>= 10).")
        .read(|c, v, x| r::number(&mut c.interval_min, v, x, 10, 86_400))
        .show(|c| c.interval_min.show()),
    k("outpost.interval.max", Ty::Int, Some("OUTPOST_INTERVAL_MAX"), "3600", "Longest check-in interval, seconds (>= min, <= 86400).")
        .read(|c, v, x| r::number(&mut c.interval_max, v, x, 10, 86_400))
        .show(|c| c.interval_max.show())
        .then(r::interval_in_order),
    k("outpost.stateDir", Ty::Str, Some("OUTPOST_STATE_DIR"), crate::paths::DEFAULT_STATE_DIR, "State directory (under --root): host-id, credential, state.")
        .read(|c, v, x| r::text(&mut c.state_dir, v, x, false, check_state_dir))
        .show(|c| c.state_dir.show()),
    k("outpost.scheduler", Ty::Str, Some("OUTPOST_SCHEDULER"), "auto", "How check-ins are scheduled: `systemd`, `cron` or `auto`.")
        .read(|c, v, x| r::choice(&mut c.scheduler, v, x, &[("auto", Scheduler::Auto), ("systemd", Scheduler::Systemd), ("cron", Scheduler::Cron)]))
        .show(|c| c.scheduler.show()),
    k("outpost.logLevel", Ty::Str, Some("OUTPOST_LOG_LEVEL"), "warn", "`error`, `warn`, `info`, `debug` or `trace`; -v/-q adjust it.")
        .read(|c, v, x| r::text(&mut c.log_level, v, x, false, |s| r::one_of(s, &["error", "warn", "info", "debug", "trace"])))
        .show(|c| c.log_level.show())
        .then(r::level_from_debug),
    k("outpost.timeouts", Ty::Object, None, "", "Network timeouts."),
    k("outpost.timeouts.connect", Ty::Int, Some("OUTPOST_TIMEOUT_CONNECT"), "10", "Connect timeout, seconds (1..=300).")
        .read(|c, v, x| r::number(&mut c.connect_timeout, v, x, 1, 300))
        .show(|c| c.connect_timeout.show()),
    k("outpost.timeouts.request", Ty::Int, Some("OUTPOST_TIMEOUT_REQUEST"), "30", "Whole-request timeout, seconds (1..=3600).")
        .read(|c, v, x| r::number(&mut c.request_timeout, v, x, 1, 3600))
        .show(|c| c.request_timeout.show()),
    k("outpost.upgrade", Ty::Object, None, "", "Self-upgrade settings."),
    k("outpost.upgrade.publicKeys", Ty::List, None, "", "Extra trusted release keys (signify public keys: the file text or its base64 line), beside the built-in ones.")
        .read(|c, v, x| r::checked_list(&mut c.upgrade_keys, v, x, check_public_key))
        .show(|c| c.upgrade_keys.show_as(|v| show_public_keys(v))),
    k("outpost.boot", Ty::Object, None, "", "What the initramfs does at boot (docs/boot.md)."),
    k("outpost.boot.checkin", Ty::Bool, Some("OUTPOST_BOOT_CHECKIN"), "false", "Check in once from the initramfs, after the real root is mounted (read-only, capped at 10 s).")
        .read(|c, v, x| r::flag(&mut c.boot_checkin, v, x))
        .show(|c| c.boot_checkin.show()),
    k("outpost.ddns", Ty::Object, None, "", "Dynamic DNS: RFC 2136 updates signed with TSIG (docs/clusters.md). With it `outpost run` keeps the cluster name (ready control-plane hosts of a `dns:` cluster) or else this host's own name `HOST.ZONE` at its address."),
    k("outpost.ddns.server", Ty::Str, Some("OUTPOST_DDNS_SERVER"), "", "DNS server taking the updates: `IP` or `IP:PORT` (port 53 by default).")
        .read(|c, v, x| r::opt_text(&mut c.ddns_server, v, x, |s| crate::cluster::ddns::parse_server(s).map(|_| ())))
        .show(|c| c.ddns_server.show()),
    k("outpost.ddns.zone", Ty::Str, Some("OUTPOST_DDNS_ZONE"), "", "Zone the updated names lie in, e.g. `edge.example.com`; the host's own record is `HOST.ZONE` (short host name: `stylus.site.hostName`, else the kernel's).")
        .read(|c, v, x| r::opt_text(&mut c.ddns_zone, v, x, check_dns_name))
        .show(|c| c.ddns_zone.show()),
    k("outpost.ddns.keyName", Ty::Str, Some("OUTPOST_DDNS_KEY_NAME"), "", "TSIG key name, as in the server's `key` statement.")
        .read(|c, v, x| r::opt_text(&mut c.ddns_key_name, v, x, r::any))
        .show(|c| c.ddns_key_name.show()),
    k("outpost.ddns.keyFile", Ty::Str, Some("OUTPOST_DDNS_KEY_FILE"), "", "File with the TSIG secret (a `tsig-keygen` key file or base64), mode 0600.")
        .read(|c, v, x| r::opt_text(&mut c.ddns_key_file, v, x, r::any))
        .show(|c| c.ddns_key_file.show()),
    k("outpost.ddns.algorithm", Ty::Str, Some("OUTPOST_DDNS_ALGORITHM"), "hmac-sha256", "TSIG algorithm: `hmac-sha256`, `hmac-sha384` or `hmac-sha512`.")
        .read(|c, v, x| r::text(&mut c.ddns_algorithm, v, x, false, |s| r::one_of(s, &["hmac-sha256", "hmac-sha384", "hmac-sha512"])))
        .show(|c| c.ddns_algorithm.show()),
    // -- platform keys accepted and ignored --
    ign("stylus.site.clusterId", "Cluster the host belongs to."),
    ign("stylus.site.clusterName", "Cluster the host belongs to."),
    ign("stylus.site.tagsFromScript", "Tags from a script (outpost runs no scripts)."),
    ign("stylus.site.remoteShell", "Remote shell settings."),
    ign("stylus.site.ntpServers", "NTP servers."),
    ign("stylus.site.network.interfaces", "Per-interface IP settings."),
    ign("stylus.externalRegistries", "External image registries."),
    ign("stylus.registryCredentials", "Single external registry."),
    ign("stylus.localUI", "Local UI settings."),
    ign("stylus.featureGate", "Feature gates of the platform agent."),
    ign("stylus.includeTui", "Text UI for first setup."),
    ign("stylus.enableMultiNode", "Multi-node linking."),
    ign("stylus.disablePasswordUpdate", "Local UI password updates."),
    ign("stylus.imageRedirectWebhook", "Image pull redirect webhook."),
    ign("install.bind_mounts", "Bind mounts of the appliance installer."),
    ign("install.extra-dirs-rootfs", "Extra root file system folders."),
    ign("install.grub_options", "Kernel command line of the appliance installer."),
    ign("install.partitions", "Partitions of the appliance installer."),
    ign("install.extra-partitions", "Extra partitions of the appliance installer."),
    ign("install.device", "Target disk of the appliance installer."),
    ign("stages", "cloud-init stages (users, commands, files)."),
    ign("users", "cloud-init users."),
    ign("hostname", "cloud-init host name."),
    ign("ssh_authorized_keys", "cloud-init SSH keys."),
    ign("write_files", "cloud-init files."),
    ign("runcmd", "cloud-init commands."),
    ign("bootcmd", "cloud-init commands."),
    ign("k3s", "Kairos k3s settings."),
    ign("k3s-agent", "Kairos k3s agent settings."),
    ign("bundles", "Kairos bundles."),
    ign("reset", "Kairos reset settings."),
    ign("upgrade", "Kairos upgrade settings."),
];

/// The entry for a table path (`stylus.site.deviceUIDPaths[].name`).
pub fn lookup(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// Older spellings of platform keys found in the platform's own examples,
/// read as the key they name (with a warning).
pub const LEGACY_ALIASES: &[(&str, &str)] = &[
    // The agent-mode MAAS example writes `stylus.skipKubeVip: false`.
    ("stylus.skipKubeVip", "stylus.vip.skip"),
];

/// The key an older spelling stands for.
pub fn legacy_alias(path: &str) -> Option<&'static Key> {
    LEGACY_ALIASES
        .iter()
        .find(|(old, _)| *old == path)
        .and_then(|(_, new)| lookup(new))
}

/// The entry whose environment variable is `var`.
pub fn by_env(var: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.env == Some(var))
}

/// The keys directly under `parent` ("" = top level), last path segment only.
pub fn children(parent: &str) -> Vec<&'static str> {
    KEYS.iter()
        .filter_map(|k| {
            let rest = if parent.is_empty() {
                k.path
            } else {
                k.path.strip_prefix(parent)?.strip_prefix('.')?
            };
            (!rest.contains('.')).then_some(rest)
        })
        .collect()
}

/// The closest known sibling of a mistyped key, if one is close enough.
pub fn suggest(parent: &str, typo: &str) -> Option<&'static str> {
    let t = typo.to_ascii_lowercase();
    let mut best: Option<(usize, &'static str)> = None;
    for cand in children(parent) {
        let d = distance(&t, &cand.to_ascii_lowercase());
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    let (d, cand) = best?;
    let limit = (typo.chars().count() / 3).max(2);
    (d <= limit).then_some(cand)
}

/// Levenshtein distance with adjacent transpositions counting as one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_env_names_are_unique_and_parents_exist() {
        for (i, a) in KEYS.iter().enumerate() {
            for b in &KEYS[i + 1..] {
                assert_ne!(a.path, b.path, "duplicate path");
                if a.env.is_some() {
                    assert_ne!(a.env, b.env, "duplicate env for {} and {}", a.path, b.path);
                }
            }
            if let Some((parent, _)) = a.path.rsplit_once('.') {
                let parent = parent.trim_end_matches("[]");
                let p = lookup(parent).unwrap_or_else(|| panic!("{}: no parent {parent}", a.path));
                assert!(
                    matches!(p.ty, Ty::Object | Ty::ObjList),
                    "{}: parent not a map",
                    a.path
                );
            }
            if let Some(e) = a.env {
                assert!(
                    e.starts_with("OUTPOST_") && !e.starts_with("OUTPOST_TEST_"),
                    "{e}"
                );
                assert!(
                    matches!(a.ty, Ty::Str | Ty::Bool | Ty::Int | Ty::List),
                    "{}",
                    a.path
                );
            }
        }
    }

    #[test]
    fn suggestions() {
        let cases = [
            ("stylus.site", "paletteEndpiont", Some("paletteEndpoint")),
            ("stylus.site", "edgehosttoken", Some("edgeHostToken")),
            ("stylus.site", "projectname", Some("projectName")),
            ("stylus.site.network", "httpProxi", Some("httpProxy")),
            ("", "stylsu", Some("stylus")),
            ("outpost", "statedir", Some("stateDir")),
            ("stylus.site", "completelyDifferent", None),
        ];
        for (parent, typo, want) in cases {
            assert_eq!(suggest(parent, typo), want, "typo {parent}.{typo}");
        }
    }

    #[test]
    fn docs_mirror_the_table() {
        let doc = include_str!("../../docs/configuration.md");
        for k in KEYS {
            let cell = format!("| `{}` |", k.path);
            assert!(
                doc.contains(&cell),
                "docs/configuration.md lacks a row for {}",
                k.path
            );
            if let Some(e) = k.env {
                assert!(
                    doc.contains(&format!("`{e}`")),
                    "docs/configuration.md lacks {e}"
                );
            }
        }
    }

    #[test]
    fn readme_mirrors_the_table() {
        let readme = include_str!("../../README.md");
        for k in KEYS {
            let want = match k.ty {
                Ty::Object => continue,
                Ty::Ignored => format!("`{}`", k.path),
                _ => format!("| `{}` |", k.path),
            };
            assert!(
                readme.contains(&want),
                "README.md's configuration reference lacks {}",
                k.path
            );
        }
    }
}
