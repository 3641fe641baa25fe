//! The help texts of every command and `outpost help exit-codes`, apart
//! from the parsing (`cli/mod.rs`) so either can be read without the other.

pub const HELP: &str = "\
outpost: bring an existing Linux host under central management

Usage: outpost [-v|-q] <command> [options]

Commands:
  check      Is this host fit to become a managed edge node? (no server needed)
  config     Validate or show the configuration (config validate|show)
  id         Print this host's ID (derived and stored on first use)
  checkin    Check in with the management server once, then exit (cron)
  run        Check in forever on the server's schedule (systemd service)
  status     Show how the last check-ins went (exit 0 ok, 1 failed, 7 overdue)
  install    Put the agent on this host or into an image (--root)
  uninstall  Remove what install put there
  upgrade    Upgrade this agent from a signed local artifact (--bundle)
  rollback   Put the previous agent binary (outpost.prev) back
  boot       Record this boot from the initramfs (docs/boot.md)
  cluster    Apply a cluster role, update the cluster's DNS name
  bundle     Write a support bundle (tar.gz) for diagnosing this host
  help       Show help for a command

Options:
  -v, --verbose    More log output on stderr (repeat for more)
  -q, --quiet      Less log output (errors only; -qq: none)
  -V, --version    Print version, git revision, target and build date
                   (add --json for a machine-readable form)
  -h, --help       Show this help

Run 'outpost <command> --help' for the options of a command.
Exit codes are listed in the README and in 'outpost help exit-codes'.
";

pub const CHECK_HELP: &str = "\
outpost check: is this host fit to become a managed edge Kubernetes node?

Usage: outpost check [--root DIR] [--json] [--distro NAME] [--only IDS]
                     [--skip IDS] [--boot]
       outpost check --network [--config FILE] [--set KEY=VALUE]...

Reads the host (or the tree under --root) and runs every check. Needs no
server and no configuration. Checks (IDs for --only and --skip):
  arch      AMD64 or ARM64
  cpu       at least 4 CPUs
  memory    4 GB
  disk      an SSD of at least 32 GB behind / and the state directory
  os        a verified OS release (docs/support.md)
  init      systemd as PID 1
  kernel    version floor, cgroup v2, overlay br_netfilter nf_conntrack
  swap      no active swap
  time      clock after the build date and synchronised
  hostname  RFC 1123, lower case
  ports     6443 2379 2380 10250 10257 10259 free
  tools     bash jq zstd rsync, plus the distribution's commands
  docker    Docker not installed
  space     free space for the state directory and the binary
  root      running as root

Options:
  --root DIR      Read the host under DIR instead of / (fixture or image)
  --json          Print one JSON document (schema outpost.check/v1)
  --distro NAME   Judge against one distribution: k3s, pxke or canonical
                  (default: any of them; see docs/support.md)
  --role ROLE     Also check for a cluster role: control-plane or worker
  --vip ADDR      control-plane: the cluster VIP (interface up, VIP in its
                  subnet, not local, no ARP reply; needs root)
  --interface IF  The VIP's interface (default: the default route's)
  --dns NAME      The cluster's API name must resolve
  --only IDS      Run only these checks (comma-separated IDs)
  --skip IDS      Skip these checks (comma-separated IDs)
  --boot          Only what makes sense before the real root runs (in the
                  initramfs): cpu, memory and rootdev (the root= device
                  is present)
  --network       Also walk the way to the configured endpoint, one check
                  line per step: net.endpoint, net.route (direct or proxy,
                  noProxy), net.dns, net.tcp, net.proxy, net.tls, net.cert,
                  net.probe, net.clock. Contacts only the configured
                  endpoint and proxy; the first failed step is named
  --config FILE   With --network: the config file (default
                  /etc/outpost/config.yaml)
  --set KEY=VALUE With --network: override one config key
  -v, -q          More or less log output on stderr
  -h, --help      Show this help

Exit status: 0 nothing failed (warnings allowed), 1 a check failed,
2 usage error.
";

pub const BUNDLE_HELP: &str = "\
outpost bundle: write a support bundle for diagnosing this host

Usage: outpost bundle [-o FILE] [--root DIR] [--config FILE] [--set KEY=VALUE]...

Writes a tar.gz (mode 0600) holding: the version, 'check --json', 'check
--network --json', 'config show --json' (secrets redacted), status.json
and state.json, a listing of the state directory (the credential and the
install secret: presence and mode only, never their content), the install
manifest, the unit files and, where systemd runs, 'systemctl status' and
the journal tail, /etc/os-release, mounts, block devices, addresses and
routes, and the proxy variables with credentials masked. Each item is
bounded in size (256 KiB) and each command in time (10 s).

Options:
  -o, --output FILE  Where to write (default:
                     outpost-bundle-<host>-<UTC time>.tar.gz here)
  --root DIR         Read the host under DIR instead of /
  --config FILE      The config file (default /etc/outpost/user-data)
  --set KEY=VALUE    Override one config key
  -v, -q             More or less log output on stderr
  -h, --help         Show this help
";

pub const CONFIG_HELP: &str = "\
outpost config: check and show the configuration

Usage: outpost config validate [FILE] [--strict] [--root DIR] [--config FILE]
       outpost config show [--json] [--root DIR] [--config FILE]
                           [--set KEY=VALUE]...

validate  Check a #cloud-config user-data file (default: --config, else
          /etc/outpost/user-data under --root); print every problem.
show      Print every key with its effective value and its source
          (default, env, file, flag); secrets are redacted.

Options:
  --root DIR         Resolve default paths under DIR instead of /
  --config FILE      Read this file (as given, not under --root)
  --set KEY=VALUE    Override a key (e.g. outpost.logLevel=debug); not
                     for secrets: give the token in the file or in
                     OUTPOST_EDGE_HOST_TOKEN
  --json             (show) One JSON document, schema outpost.config/v1
  --strict           (validate) Every warning is an error, exit 3 (for CI)
  -h, --help         Show this help

Exit status: 0 valid, 3 configuration invalid or file missing,
4 file not readable (permission).
";

pub const ID_HELP: &str = "\
outpost id: print this host's ID

Usage: outpost id [--root DIR] [--config FILE] [--set KEY=VALUE]...

The ID is stylus.site.name if set, else derived from the first readable
deviceUIDPaths file (default /sys/class/dmi/id/product_uuid), else a
random UUID; stored in <stateDir>/host-id so it stays the same.

Options:
  --root DIR         Resolve every path under DIR instead of /
  --config FILE      Read this config file (as given, not under --root)
  --set KEY=VALUE    Override a config key
  -h, --help         Show this help

Exit status: 0 printed, 3 configuration invalid, 4 not permitted,
20 the state directory is not writable.
";

pub const INSTALL_HELP: &str = "\
outpost install: put the agent on this host or into an OS image

Usage: outpost install [--config FILE|https-URL] [--root DIR]
                       [--binary FILE] [--scheduler systemd|cron|none]
                       [--dry-run] [--force] [--ignore-checks]
                       [--initramfs auto|initramfs-tools|dracut|none]

Runs the checks (on an image root only those that make sense for a tree
that is not running), then places the binary, the user-data (0600), the
state directory (0700), the unit or cron file, the site's CA certificates
and proxy settings, and records every file in <stateDir>/manifest.json.
Into an image root nothing is started: outpost-firstboot.service does the
first check-in when the image boots. A second run changes nothing.

Options:
  --config FILE     The operator's user-data (#cloud-config) to install
  --root DIR        Install into the tree under DIR (an OS image) instead
                    of / (the running system, which needs root)
  --binary FILE     Install this build instead of the running one; its
                    ELF machine must match the image's
  --scheduler S     systemd (default when the tree has systemd), cron,
                    or none
  --dry-run         Print the plan and change nothing
  --force           Replace files outpost did not create, keeping a backup
                    in <stateDir>/backup
  --ignore-checks   Install even when a check fails
  --initramfs G     Also put the boot beacon into the initramfs
                    (docs/boot.md): auto, initramfs-tools, dracut or none;
                    regenerates the image on the running system (default:
                    keep what the last install chose, else none)
  -h, --help        Show this help

Exit status: 0 installed or nothing to do, 1 a check failed, 2 usage,
3 configuration invalid, 4 not permitted (needs root, a foreign file in
the way), 20 local I/O.
";

pub const UNINSTALL_HELP: &str = "\
outpost uninstall: remove what outpost install put on the host or image

Usage: outpost uninstall [--root DIR] [--purge] [--cluster]

Stops and disables the agent (running system), removes exactly the files
listed in <stateDir>/manifest.json, restores the files install replaced,
removes the CA certificates it added and reruns the trust-store update.
Keeps the state directory (host ID, credential) unless --purge.

Options:
  --root DIR    Uninstall from the tree under DIR instead of /
  --purge       Also remove the state and every directory install made:
                the tree is as it was before install
  --cluster     First leave the cluster (as 'outpost cluster leave'; with
                --purge also its data); without it a cluster is left alone
  -h, --help    Show this help

Exit status: 0 removed or nothing to do, 2 usage, 4 not permitted
(needs root), 20 local I/O.
";

/// The exit-code table, generated from `error::Code` so it cannot drift.
pub fn exit_codes_help() -> String {
    use crate::error::Code;
    let mut s = String::from("outpost exit codes:\n\n");
    for c in Code::ALL {
        let kind = match c.kind() {
            crate::error::Kind::Permanent => " [permanent]",
            crate::error::Kind::Retryable => " [retryable]",
            crate::error::Kind::Skip => " [skip]",
            crate::error::Kind::Restart => " [restart]",
            crate::error::Kind::Result => "",
        };
        let mut line = format!("  {:>2} ", c.as_i32());
        for word in format!("{}{kind}", c.meaning()).split(' ') {
            if line.len() + 1 + word.len() > 78 {
                s.push_str(&line);
                s.push('\n');
                line = "     ".to_string();
            }
            line.push(' ');
            line.push_str(word);
        }
        s.push_str(&line);
        s.push('\n');
    }
    s
}

pub const PROBE_HELP: &str = "\
outpost probe: one HTTPS request through the agent's transport (developer)

Usage: outpost probe URL [--data FILE] [--cacert FILE]... [--proxy URL]
                         [--no-proxy LIST] [--timeout SECS] [--root DIR]

GET (or POST with --data) to URL exactly as a check-in would connect: the
system CA bundle under --root plus --cacert files, the proxy from --proxy
or HTTPS_PROXY/ALL_PROXY, NO_PROXY/--no-proxy, the body cap and timeouts.
Prints the HTTP status and the body. Not listed in 'outpost --help'.

Options:
  --data FILE      POST this file as JSON ('-' reads standard input)
  --cacert FILE    Also trust this CA certificate (PEM or DER; repeatable)
  --proxy URL      http://[user:pass@]host:port (wins over HTTPS_PROXY)
  --no-proxy LIST  Hosts, .domains, IPs, CIDRs that bypass the proxy
  --timeout SECS   Whole-request timeout (default 30; connect: 10)
  --root DIR       Find the system CA bundle under DIR instead of /

Exit status: 0 on HTTP 2xx, 12 other status or unusable answer, 10 network,
11 server busy, 16 certificate not trusted, 2 usage, 3 bad URL or proxy.
";

pub const CHECKIN_HELP: &str = "\
outpost checkin: check in with the management server once, then exit

Usage: outpost checkin [--splay SECONDS] [--root DIR] [--config FILE]
                       [--set KEY=VALUE]...

Registers first when the state directory holds no device credential (with
the registration token of the config), then reports health and, when it
changed, the inventory; stores the server's answer (interval, labels,
desired state) in <stateDir>/state.json and the outcome in status.json.
For cron and scripts: a second run while one is in progress exits 5.

Options:
  --splay SECONDS    Wait a random 0..SECONDS first (spreads a cron fleet)
  --root DIR         Resolve every path under DIR instead of /
  --config FILE      Read this config file (as given, not under --root)
  --set KEY=VALUE    Override a config key
  -v, -q             More or less log output on stderr
  -h, --help         Show this help

Exit status: 0 checked in; 3 configuration invalid; 5 already running;
6 managementMode is local; 10 network; 11 server busy; 12 unusable answer;
13 registration refused; 14 duplicate host ID; 15 deregistered;
16 certificate not trusted; 20 state not writable ('outpost help exit-codes').
";

pub const STATUS_HELP: &str = "\
outpost status: show how the last check-ins went

Usage: outpost status [--json] [--root DIR] [--config FILE]
                      [--set KEY=VALUE]...

Reads <stateDir>/status.json (written by checkin and run); contacts nothing.

Options:
  --json             Print status.json as it is (schema outpost.status/v1)
  --root DIR         Resolve every path under DIR instead of /
  --config FILE      Read this config file (as given, not under --root)
  --set KEY=VALUE    Override a config key
  -h, --help         Show this help

Exit status: 0 the last check-in succeeded, 1 it failed, 7 overdue (no
success for two intervals) or never checked in, 3 configuration invalid.
";

pub const RUN_HELP: &str = "\
outpost run: check in forever on the server's schedule

Usage: outpost run [--root DIR] [--config FILE] [--set KEY=VALUE]...

Checks in now, then at the interval and phase the server asks for (within
outpost.interval min..max); after a retryable failure it backs off with full
jitter (10 s doubling, below the interval and 15 min), then retries at its
slot, and waits at least the server's Retry-After. Speaks
systemd's notify protocol (READY=1, STATUS=, WATCHDOG=1) when NOTIFY_SOCKET
is set. SIGTERM or SIGINT end it within a second, exit 0.

Options:
  --root DIR         Resolve every path under DIR instead of /
  --config FILE      Read this config file (as given, not under --root)
  --set KEY=VALUE    Override a config key
  -v, -q             More or less log output on stderr
  -h, --help         Show this help

Exit status: 0 stopped by a signal; a permanent code (3, 4, 6, 13, 14, 15,
16) ends the loop with that code.
";

pub const UPGRADE_HELP: &str = "\
outpost upgrade: upgrade this agent from a signed local artifact

Usage: outpost upgrade --bundle FILE [--allow-downgrade] [--root DIR] [--config FILE]

FILE is a release binary (outpost-<version>-<arch>-linux-musl) with its
signed manifest FILE.manifest and signature FILE.manifest.sig beside it, or
a folder holding exactly one such set (an unpacked airgap bundle). The
signature must verify with a built-in key or one of outpost.upgrade.publicKeys;
size, SHA-256, architecture and a smoke run (--version --json) are checked
before the installed binary is swapped (the old one is kept as outpost.prev).
The new binary is on trial until its first successful check-in; the
previous binary's guard rolls it back otherwise (docs/upgrade.md).

Options:
  --bundle FILE       The artifact (or a folder holding it)
  --allow-downgrade   Accept a version older than or equal to the running one
  --root DIR          Operate on the installation under DIR (default /)
  --config FILE       Configuration file (default <root>/etc/outpost/user-data)

Exit status: 0 swapped (restart the service to run it), 3 configuration
invalid, 20 local I/O (disk full), 21 refused (signature, key, size,
SHA-256, architecture, smoke run, not newer).
";

pub const ROLLBACK_HELP: &str = "\
outpost rollback: put the previous agent binary back

Usage: outpost rollback [--root DIR] [--config FILE]

Copies outpost.prev over the installed binary (outpost.prev stays), ends
an open trial and records the rollback; the next check-in reports it.

Exit status: 0 rolled back, 20 no previous binary or local I/O.
";

pub const GUARD_HELP: &str = "\
outpost upgrade-guard: count a start of a new binary on trial, or roll it back

Usage: outpost upgrade-guard [--root DIR] [--config FILE]

Run by the PREVIOUS binary before each start of the agent (the unit's
ExecStartPre=, first on the cron line). Always exits 0 unless it cannot
write its files (20). Not listed in 'outpost --help'.
";
