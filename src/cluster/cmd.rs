//! `outpost cluster apply|ddns|status`: argv parsing and the commands.
//!
//! - `apply --spec FILE`: apply a role from a local spec (JSON, schema
//!   `outpost.cluster-spec/v1`, mode 0600 as it holds the join token): the
//!   local or airgap path; the hub's desired state carries the same fields.
//! - `ddns --name FQDN [--address IP] [--force]`: one dynamic DNS pass.
//! - `status [--json]`: the last recorded role state.

use super::{apply, ddns, Distro, Endpoint, Role, Spec, Token};
use crate::cli::{common, config_flag, next, unknown_tok, value, Command, ConfigSource, Tok};
use crate::error::{Code, Error, Result};
use crate::sys::Root;
use std::net::IpAddr;
use std::path::PathBuf;

pub const HELP: &str = "\
outpost cluster: make this host a member of a Kubernetes cluster

Usage: outpost cluster apply --spec FILE [--bundle DIR]
                             [--k3s-bin FILE] [--images FILE]...
                             [--start systemd|direct] [--timeout SECS]
       outpost cluster ddns --name FQDN [--address IP] [--member|--remove]
                            [--force]
       outpost cluster status [--json]
       outpost cluster leave [--purge] [--start systemd|direct]
       (each also takes --root DIR, --config FILE, --set KEY=VALUE)

apply   Write the role's files (K3s config drop-in, kube-vip manifest),
        install the K3s binary, images and unit, start K3s and wait for the
        node to be ready: installing -> running -> ready, or failed with the
        reason and the log tail. A second apply changes nothing.
        --spec FILE      The role (JSON, outpost.cluster-spec/v1, mode 0600)
        --bundle DIR     Signed K3s bundle (scripts/make-k3s-bundle):
                         verified with the release keys, then its binary
                         and images installed (exit 21 when it fails
                         verification; nothing installed)
        --k3s-bin FILE   K3s binary to install as is (not verified)
        --images FILE    Airgap image archive as is (repeatable)
        --start HOW      systemd (default on /) or direct (default under
                         --root: runs the binary under the root)
        --timeout SECS   Wait this long for running and ready (default 300)
ddns    Keep FQDN's A/AAAA record at the address (outpost.ddns.*): RFC 2136
        UPDATE signed with TSIG, sent only when the address changed.
        --address IP     Default: the first address of the default route's
                         interface
        --member         Keep this host's address among the others' (what
                         control-plane hosts do from `outpost run`): only
                         this host's previous address is replaced
        --remove         Delete this host's address, keep the others'
        --force          Send even when the server already has it
status  The last recorded role state (cluster.json in the state directory)
leave   Stop K3s and remove what apply wrote (manifest, config, unit,
        binary); --purge also removes the K3s data (etcd, server token)

Exit status: 0 ready / updated / unchanged, 1 the role failed, 2 usage,
3 configuration (including a DNS server refusing the key), 4 key file
mode, 10 network, 20 local I/O (no room for the bundle), 21 the K3s bundle
failed verification.
";

#[derive(Debug, PartialEq)]
pub enum Action {
    Apply {
        spec: PathBuf,
        bundle: Option<PathBuf>,
        k3s_bin: Option<PathBuf>,
        images: Vec<PathBuf>,
        start: Option<apply::Start>,
        timeout: u64,
    },
    Ddns {
        name: String,
        address: Option<IpAddr>,
        force: bool,
        how: How,
    },
    Status {
        json: bool,
    },
    Leave {
        purge: bool,
        start: Option<apply::Start>,
    },
    /// Not in the help: what `outpost run` starts in the background to act
    /// on the hub's instruction kept in `state.json` (cluster::worker).
    FromHub,
}

#[derive(Debug, PartialEq)]
pub struct ClusterArgs {
    pub src: ConfigSource,
    pub action: Action,
}

pub fn parse(p: &mut lexopt::Parser, verbosity: &mut i8) -> Result<Command> {
    const CMD: &str = "cluster";
    let sub = match next(p, CMD)? {
        Some(Tok::Value(v)) => v.to_string_lossy().into_owned(),
        Some(Tok::Flag(f)) if f == "-h" || f == "--help" => return Ok(Command::Help(HELP.into())),
        Some(t) => return Err(unknown_tok(t, CMD)),
        None => {
            return Err(Error::usage(
                "cluster: give apply, ddns, status or leave; see 'outpost cluster --help'",
            ))
        }
    };
    let mut root = None;
    let mut file = None;
    let mut sets = Vec::new();
    let (mut spec, mut k3s_bin, mut images, mut start, mut timeout) =
        (None, None, Vec::new(), None, 300u64);
    let mut bundle = None;
    let (mut name, mut address, mut force, mut json) = (None, None, false, false);
    let mut how = How::Replace;
    let cmd = format!("cluster {sub}");
    let mut purge = false;
    if !matches!(
        sub.as_str(),
        "apply" | "ddns" | "status" | "leave" | "from-hub"
    ) {
        return Err(Error::usage(format!(
            "cluster: unknown subcommand {sub:?}; give apply, ddns, status or leave"
        )));
    }
    while let Some(tok) = next(p, &cmd)? {
        let Tok::Flag(flag) = &tok else {
            return Err(unknown_tok(tok, &cmd));
        };
        if common(flag, p, &cmd, verbosity, &mut root)?
            || config_flag(flag, p, &cmd, &mut file, &mut sets)?
        {
            continue;
        }
        match (sub.as_str(), flag.as_str()) {
            (_, "-h" | "--help") => return Ok(Command::Help(HELP.into())),
            ("apply", "--spec") => spec = Some(PathBuf::from(value(p, &cmd, flag)?)),
            ("apply", "--bundle") => bundle = Some(PathBuf::from(value(p, &cmd, flag)?)),
            ("apply", "--k3s-bin") => k3s_bin = Some(PathBuf::from(value(p, &cmd, flag)?)),
            ("apply", "--images") => images.push(PathBuf::from(value(p, &cmd, flag)?)),
            ("leave", "--purge") => purge = true,
            ("apply" | "leave", "--start") => {
                start = Some(match value(p, &cmd, flag)?.as_str() {
                    "systemd" => apply::Start::Systemd,
                    "direct" => apply::Start::Direct,
                    o => {
                        return Err(Error::usage(format!(
                            "{cmd}: --start {o:?} is not systemd or direct"
                        )))
                    }
                })
            }
            ("apply", "--timeout") => {
                let v = value(p, &cmd, flag)?;
                timeout = v
                    .parse::<u64>()
                    .ok()
                    .filter(|t| (1..=3600).contains(t))
                    .ok_or_else(|| {
                        Error::usage(format!("{cmd}: --timeout {v:?} is not 1..=3600 seconds"))
                    })?;
            }
            ("ddns", "--name") => {
                let v = value(p, &cmd, flag)?;
                if !super::valid_dns_name(&v) {
                    return Err(Error::usage(format!(
                        "{cmd}: --name {v:?} is not a DNS name"
                    )));
                }
                name = Some(v.trim_end_matches('.').to_ascii_lowercase());
            }
            ("ddns", "--address") => {
                let v = value(p, &cmd, flag)?;
                address = Some(v.parse::<IpAddr>().map_err(|_| {
                    Error::usage(format!("{cmd}: --address {v:?} is not an IP address"))
                })?);
            }
            ("ddns", "--force") => force = true,
            ("ddns", "--member" | "--remove") => {
                if how != How::Replace {
                    return Err(Error::usage(format!(
                        "{cmd}: give one of --member and --remove"
                    )));
                }
                how = if flag == "--member" {
                    How::Member
                } else {
                    How::Remove
                };
            }
            ("status", "--json") => json = true,
            _ => return Err(unknown_tok(tok, &cmd)),
        }
    }
    let action = match sub.as_str() {
        "apply" => Action::Apply {
            spec: spec.ok_or_else(|| Error::usage("cluster apply: --spec FILE is required"))?,
            k3s_bin: if bundle.is_some() && (k3s_bin.is_some() || !images.is_empty()) {
                return Err(Error::usage(
                    "cluster apply: --bundle carries the binary and images; drop --k3s-bin/--images",
                ));
            } else {
                k3s_bin
            },
            bundle,
            images,
            start,
            timeout,
        },
        "ddns" => Action::Ddns {
            name: name.ok_or_else(|| Error::usage("cluster ddns: --name FQDN is required"))?,
            address,
            force,
            how,
        },
        "leave" => Action::Leave { purge, start },
        "from-hub" => Action::FromHub,
        _ => Action::Status { json },
    };
    Ok(Command::Cluster(ClusterArgs {
        src: ConfigSource {
            root: Root::new(root.unwrap_or_else(|| PathBuf::from("/"))),
            file,
            sets,
        },
        action,
    }))
}

/// The spec file (JSON).
#[derive(miniserde::Deserialize)]
struct SpecFile {
    schema: String,
    cluster: String,
    distro: String,
    version: String,
    endpoint: String,
    role: String,
    #[serde(rename = "hostId")]
    host_id: Option<String>,
    #[serde(rename = "nodeIp")]
    node_ip: Option<String>,
    interface: Option<String>,
    #[serde(rename = "podCidr")]
    pod_cidr: Option<String>,
    #[serde(rename = "serviceCidr")]
    service_cidr: Option<String>,
    token: String,
    #[serde(rename = "caHash")]
    ca_hash: Option<String>,
}

pub const SPEC_SCHEMA: &str = "outpost.cluster-spec/v1";

/// Parse and check a spec; every error names the file and the field.
pub fn parse_spec(path: &str, text: &str) -> Result<(SpecFile2, Option<String>)> {
    let bad = |what: String| Error::config(format!("{path}: {what}"));
    let f: SpecFile = miniserde::json::from_str(text)
        .map_err(|_| bad("not a cluster spec (JSON with schema, cluster, distro, version, endpoint, role, token)".into()))?;
    if f.schema != SPEC_SCHEMA {
        return Err(bad(format!(
            "schema {:?}, expected {SPEC_SCHEMA}",
            f.schema
        )));
    }
    let distro = Distro::parse(&f.distro).ok_or_else(|| {
        bad(format!(
            "distro {:?} is not k3s, pxke or canonical",
            f.distro
        ))
    })?;
    let role = Role::parse(&f.role).ok_or_else(|| {
        bad(format!(
            "role {:?} is not init-server, join-server or join-agent",
            f.role
        ))
    })?;
    let endpoint = Endpoint::parse(&f.endpoint).map_err(bad)?;
    let node_ip = match &f.node_ip {
        Some(s) => Some(
            s.parse::<IpAddr>()
                .map_err(|_| bad(format!("nodeIp {s:?} is not an IP address")))?,
        ),
        None => None,
    };
    if f.token.is_empty() {
        return Err(bad("token is empty".into()));
    }
    let token = Token::new(f.token);
    if distro == Distro::K3s && role != Role::InitServer && !token.is_k3s_secure() {
        return Err(bad(
            "token: joiners need the secure K10<ca-hash>::... form (it pins the cluster CA)".into(),
        ));
    }
    if f.cluster.is_empty()
        || f.cluster.len() > 63
        || !f
            .cluster
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(bad(format!(
            "cluster {:?}: 1-63 of [a-zA-Z0-9-]",
            f.cluster
        )));
    }
    Ok((
        SpecFile2 {
            cluster: f.cluster,
            distro,
            version: f.version,
            endpoint,
            role,
            host_id: f.host_id,
            node_ip,
            interface: f.interface,
            pod_cidr: f.pod_cidr,
            service_cidr: f.service_cidr,
            token,
        },
        f.ca_hash,
    ))
}

/// A parsed spec before the host ID and `stylus.vip.skip` are filled in.
pub struct SpecFile2 {
    pub cluster: String,
    pub distro: Distro,
    pub version: String,
    pub endpoint: Endpoint,
    pub role: Role,
    pub host_id: Option<String>,
    pub node_ip: Option<IpAddr>,
    pub interface: Option<String>,
    pub pod_cidr: Option<String>,
    pub service_cidr: Option<String>,
    pub token: Token,
}

pub fn run(args: ClusterArgs) -> Result<Code> {
    let l = crate::commands::config::load(&args.src, false)?;
    for w in &l.warnings {
        log::warn!("{w}");
    }
    let cfg = l.into_valid()?;
    let root = &args.src.root;
    match args.action {
        Action::FromHub => {
            // As the loop sees it: with the server's configuration layer.
            let cfg = crate::commands::checkin::load_config(&args.src)?;
            super::hub::from_state(root, &cfg, std::time::Duration::from_secs(300))?;
            Ok(Code::Ok)
        }
        Action::Status { json } => {
            let Some(r) = apply::last_record(root, &cfg.state_dir.value) else {
                return crate::commands::print("no cluster role applied\n")
                    .map(|_| Code::CheckFailed);
            };
            let text = if json {
                format!("{}\n", miniserde::json::to_string(&r))
            } else {
                let mut t = format!(
                    "cluster {} role {} ({}): {}\n",
                    r.cluster, r.role, r.distro, r.state
                );
                if !r.reason.is_empty() {
                    t.push_str(&format!("reason: {}\n", r.reason));
                }
                t
            };
            crate::commands::print(&text)?;
            Ok(if r.state == "ready" {
                Code::Ok
            } else {
                Code::CheckFailed
            })
        }
        Action::Ddns {
            name,
            address,
            force,
            how,
        } => run_ddns(root, &cfg, &name, address, force, how),
        Action::Leave { purge, start } => {
            let start = start.unwrap_or(if root.is_live() {
                apply::Start::Systemd
            } else {
                apply::Start::Direct
            });
            let done = apply::leave(root, start, purge, &cfg.state_dir.value)?;
            if done.is_empty() {
                crate::commands::print("nothing to do: no cluster role applied here\n")?;
            } else {
                crate::commands::print(&format!("{}\nleft the cluster\n", done.join("\n")))?;
            }
            Ok(Code::Ok)
        }
        Action::Apply {
            spec,
            bundle,
            k3s_bin,
            images,
            start,
            timeout,
        } => {
            let shown = spec.display().to_string();
            let text = read_secret_file(&spec)?;
            let (s, ca_hash) = parse_spec(&shown, &text)?;
            let host_id = match s.host_id {
                Some(h) => h,
                None => {
                    let host = crate::sys::host();
                    crate::identity::host_id(root, &cfg, host.as_ref())?.id
                }
            };
            let spec = Spec {
                cluster: s.cluster,
                distro: s.distro,
                version: s.version,
                endpoint: s.endpoint,
                role: s.role,
                host_id,
                node_ip: s.node_ip,
                interface: s.interface,
                pod_cidr: s.pod_cidr,
                service_cidr: s.service_cidr,
                vip_skip: cfg.vip_skip.value,
                token: s.token,
            };
            // The bundle's manifest before anything else: a bad one is one
            // line and exit 21, with nothing recorded or written.
            let verified = match &bundle {
                None => None,
                Some(dir) => {
                    if spec.distro != Distro::K3s {
                        return Err(Error::usage(format!(
                            "cluster apply: --bundle is a K3s bundle; the spec's distro is {}",
                            spec.distro.id()
                        )));
                    }
                    let (m, key) =
                        super::bundle::read_dir_manifest(dir, &crate::upgrade::trusted_keys(&cfg))?;
                    super::bundle::check_fits(
                        &m,
                        &spec.version,
                        crate::upgrade::release::own_arch(),
                    )?;
                    log::info!(
                        "K3s bundle {} {} ({} files, {} bytes), signed by key {key}",
                        m.version,
                        m.arch,
                        m.files.len(),
                        m.total()
                    );
                    Some(m)
                }
            };
            let src = bundle.as_deref().map(super::bundle::Source::Dir);
            let host = crate::sys::host();
            let facts = crate::facts::kernel::read(root, host.as_ref());
            let opts = apply::Options {
                k3s_bin,
                images,
                start: start.unwrap_or(if root.is_live() {
                    apply::Start::Systemd
                } else {
                    apply::Start::Direct
                }),
                timeout: std::time::Duration::from_secs(timeout),
                ca_hash,
                node_name: facts.hostname.unwrap_or_else(|| "localhost".into()),
                state_dir: cfg.state_dir.value.clone(),
                ddns_configured: cfg.ddns_server.value.is_some(),
            };
            let mut say = |st: &super::RoleState| {
                let line = match st {
                    super::RoleState::Failed { reason, .. } => format!("failed: {reason}\n"),
                    s => format!("{}\n", s.name()),
                };
                let _ = crate::commands::print(&line);
            };
            let (end, changed) = apply::apply(
                root,
                &spec,
                &opts,
                verified.as_ref().zip(src.as_ref()),
                &mut say,
            )?;
            if changed.is_empty() {
                crate::commands::print("changed: nothing\n")?;
            } else {
                crate::commands::print(&format!("changed: {}\n", changed.join(", ")))?;
            }
            if let super::RoleState::Failed { log_tail, .. } = &end {
                if !log_tail.is_empty() {
                    eprintln!("log tail:\n{log_tail}");
                }
                return Ok(Code::CheckFailed);
            }
            Ok(Code::Ok)
        }
    }
}

/// Read a file that holds a secret: refuse it when group or others may read it.
fn read_secret_file(path: &std::path::Path) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::io("reading", path, &e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::new(
            Code::NotPermitted,
            format!(
                "{}: mode {mode:04o}, must be 0600 (it holds the join token)",
                path.display()
            ),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, &e))
}

fn default_address(root: &Root) -> Option<IpAddr> {
    let iface = super::vip::default_route_iface(root)?;
    crate::sys::interface_addrs()
        .ok()?
        .into_iter()
        .find(|a| a.name == iface && a.addr.is_ipv4())
        .map(|a| a.addr)
}

fn run_ddns(
    root: &Root,
    cfg: &crate::config::Config,
    name: &str,
    address: Option<IpAddr>,
    force: bool,
    how: How,
) -> Result<Code> {
    let Some(s) = ddns::settings(root, cfg)? else {
        return Err(Error::config(
            "outpost.ddns.server: not set; dynamic DNS needs server, zone, keyName and keyFile",
        ));
    };
    let addr = match address.or_else(|| default_address(root)) {
        Some(a) => a,
        None => {
            return Err(Error::usage(
                "cluster ddns: no --address and no default route address",
            ))
        }
    };
    let line = match ddns_pass(root, cfg, &s, name, addr, force, how)? {
        Pass::Unchanged if how == How::Remove => {
            format!("{name} -= {addr}: nothing to remove (not added by this host)\n")
        }
        Pass::Unchanged => format!("{name} -> {addr}: unchanged (the server has it)\n"),
        Pass::Updated if how == How::Remove => format!(
            "{name} -= {addr}: removed at {} (signed answer verified; the other hosts' records kept)\n",
            s.server
        ),
        Pass::Wait { failures, secs } => format!(
            "{name} -> {addr}: backing off after {failures} failures, next try in {secs} s\n"
        ),
        Pass::Updated => format!(
            "{name} -> {addr}: updated at {} (signed answer verified)\n",
            s.server
        ),
    };
    crate::commands::print(&line)?;
    Ok(Code::Ok)
}

/// How a pass treats the name's other records (`ddns::Mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    Replace,
    Member,
    Remove,
}

/// What one dynamic DNS pass did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    Unchanged,
    Wait { failures: u32, secs: u64 },
    Updated,
}

/// One dynamic DNS pass: send an update only when the address differs
/// from the one the server last accepted and no backoff is running;
/// `ddns.json` in the state directory keeps both across runs.
pub fn ddns_pass(
    root: &Root,
    cfg: &crate::config::Config,
    s: &ddns::Settings,
    name: &str,
    addr: IpAddr,
    force: bool,
    how: How,
) -> Result<Pass> {
    let dir = root.path(&cfg.state_dir.value);
    let state_path = dir.join("ddns.json");
    let mut state: ddns::State = std::fs::read_to_string(&state_path)
        .ok()
        .and_then(|t| miniserde::json::from_str(&t).ok())
        .unwrap_or_default();
    let host = crate::sys::host();
    let now = crate::sys::unix_secs(host.now());
    let mine = (state.name == name)
        .then(|| state.address.parse::<IpAddr>().ok())
        .flatten();
    let mode = match how {
        How::Replace => ddns::Mode::Replace,
        How::Member => ddns::Mode::Member { old: mine },
        How::Remove => ddns::Mode::Remove,
    };
    // Removing: only an address this host added (or --force).
    if how == How::Remove && mine != Some(addr) && !force {
        return Ok(Pass::Unchanged);
    }
    let decision = if how == How::Remove {
        match ddns::decide(&state, name, addr, now, force) {
            ddns::Decision::Wait(t) => ddns::Decision::Wait(t),
            _ => ddns::Decision::Send,
        }
    } else {
        ddns::decide(&state, name, addr, now, force)
    };
    match decision {
        ddns::Decision::Unchanged => return Ok(Pass::Unchanged),
        ddns::Decision::Wait(t) => {
            return Ok(Pass::Wait {
                failures: state.failures,
                secs: t.saturating_sub(now),
            })
        }
        ddns::Decision::Send => {}
    }
    let mut idb = [0u8; 2];
    host.fill_random(&mut idb)
        .map_err(|e| Error::new(Code::LocalIo, format!("random DNS message ID: {e}")))?;
    let result = ddns::update(
        s,
        name,
        addr,
        mode,
        now,
        u16::from_be_bytes(idb),
        &mut state,
    );
    crate::fsutil::ensure_dir(&dir, crate::fsutil::SECRET_DIR_MODE)?;
    let mut j = miniserde::json::to_string(&state);
    j.push('\n');
    crate::fsutil::write_atomic(&state_path, j.as_bytes(), 0o644)?;
    result.map(|_| Pass::Updated)
}

/// What the service loop's DDNS pass does for an instruction.
#[derive(Debug, PartialEq, Eq)]
pub enum LoopPlan {
    Nothing,
    /// Keep this host's address in the name (a ready control-plane member).
    Member {
        name: String,
    },
    /// Take back the address this host added (it was told to leave).
    Remove {
        name: String,
        addr: IpAddr,
    },
    /// Keep this host's own name at its address: the host owns the name,
    /// so the update replaces the RRset of the address's type.
    HostName {
        name: String,
    },
}

/// This host's own name in the zone: `HOST.ZONE` for the short host name
/// (`stylus.site.hostName`, else the kernel's), or the name itself when it
/// already lies in the zone. `None` for a name that is no DNS label
/// (`localhost`, empty, `_`, longer than 63, ...).
pub fn host_fqdn(hostname: &str, zone: &str) -> Option<String> {
    let h = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
    let z = zone.trim().trim_end_matches('.').to_ascii_lowercase();
    let label = match h.strip_suffix(&format!(".{z}")) {
        Some(l) if !l.is_empty() && !l.contains('.') => l,
        _ => h.split('.').next().unwrap_or_default(),
    };
    let ok = (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label != "localhost"
        && !z.is_empty();
    ok.then(|| format!("{label}.{z}"))
}

/// Decide the pass (pure). A control-plane host of a `dns:` cluster keeps
/// its address in the cluster name once its role is `ready` (and nothing
/// before). A host told to leave removes the cluster-name address
/// `ddns.json` says it added. Every other host (no cluster, a worker, a
/// server of a VIP cluster, a host whose cluster-name address is gone)
/// keeps its own host name (`host`, `None` when it has no usable one).
/// Leaving a cluster does not withdraw the host name: the name and address
/// are the host's, not the cluster's, and stay true after it leaves.
pub fn loop_plan(
    ins: Option<&crate::proto::ClusterRole>,
    ready: bool,
    state: &ddns::State,
    host: Option<&str>,
) -> LoopPlan {
    let own = || match host {
        Some(h) => LoopPlan::HostName { name: h.into() },
        None => LoopPlan::Nothing,
    };
    let Some(ins) = ins else {
        return own();
    };
    if ins.leave {
        return match state.address.parse::<IpAddr>() {
            Ok(addr) if !state.name.is_empty() && Some(state.name.as_str()) != host => {
                LoopPlan::Remove {
                    name: state.name.clone(),
                    addr,
                }
            }
            _ => own(),
        };
    }
    let server = Role::parse(&ins.role).is_some_and(Role::is_server);
    match Endpoint::parse(&ins.endpoint) {
        Ok(Endpoint::Dns(name)) if server && ready => LoopPlan::Member { name },
        Ok(Endpoint::Dns(_)) if server => LoopPlan::Nothing,
        _ => own(),
    }
}

/// `outpost run`, after each check-in, when dynamic DNS is configured
/// (`outpost.ddns.*`): a control-plane member of a `dns:` cluster whose
/// role is ready keeps its address in the cluster's name. Each such host
/// adds its own address to the name's A/AAAA RRset and, when its address
/// changes, deletes only its previous one (`ddns::Mode::Member`): the
/// other servers' records are never touched, so any server being up keeps
/// the name useful. A host the hub removes from the cluster deletes its
/// own address. Every other host keeps its own host name (`host_fqdn`)
/// at its address (`ddns::Mode::Replace`). The address is the `node_ip`
/// the hub sent, else the default route's. Updates only on change; errors
/// are logged and back off (30 s doubling to an hour); the loop goes on.
pub fn ddns_in_loop(
    root: &Root,
    cfg: &crate::config::Config,
    ins: Option<&crate::proto::ClusterRole>,
) {
    let s = match ddns::settings(root, cfg) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            log::warn!("ddns: {e}");
            return;
        }
    };
    let state: ddns::State =
        std::fs::read_to_string(root.path(&cfg.state_dir.value).join("ddns.json"))
            .ok()
            .and_then(|t| miniserde::json::from_str(&t).ok())
            .unwrap_or_default();
    let ready = ins.is_some_and(|ins| {
        apply::last_record(root, &cfg.state_dir.value)
            .is_some_and(|r| r.cluster == ins.cluster && r.state == "ready")
    });
    let hostname = cfg
        .host_name
        .value
        .clone()
        .or_else(|| std::fs::read_to_string(root.path("/proc/sys/kernel/hostname")).ok());
    let host = hostname.as_deref().and_then(|h| host_fqdn(h, &s.zone));
    let plan = loop_plan(ins, ready, &state, host.as_deref());
    if plan == LoopPlan::Nothing && host.is_none() && ins.is_none_or(|i| !i.leave) {
        log::debug!(
            "ddns: host name {:?} is not a DNS label; no host record",
            hostname.as_deref().unwrap_or("").trim()
        );
    }
    let (name, how) = match plan {
        LoopPlan::Nothing => return,
        LoopPlan::Remove { name, addr } => return report(root, cfg, &s, &name, addr, How::Remove),
        LoopPlan::Member { name } => (name, How::Member),
        LoopPlan::HostName { name } => (name, How::Replace),
    };
    let addr = ins
        .and_then(|i| i.node_ip.as_deref())
        .and_then(|a| a.parse::<IpAddr>().ok())
        .or_else(|| default_address(root));
    let Some(addr) = addr else {
        log::warn!("ddns: {name}: no address (no node_ip from the hub, no default route)");
        return;
    };
    report(root, cfg, &s, &name, addr, how);
}

/// One loop pass for `name` at `addr`, its outcome logged (never the key).
fn report(
    root: &Root,
    cfg: &crate::config::Config,
    s: &ddns::Settings,
    name: &str,
    addr: IpAddr,
    how: How,
) {
    match ddns_pass(root, cfg, s, name, addr, false, how) {
        Ok(Pass::Updated) if how == How::Remove => {
            log::info!("ddns: {name} -= {addr}: removed (signed answer verified)")
        }
        Ok(Pass::Updated) if how == How::Replace => {
            log::info!("ddns: {name} -> {addr}: updated (signed answer verified)")
        }
        Ok(Pass::Updated) => log::info!("ddns: {name} += {addr}: updated (signed answer verified)"),
        Ok(Pass::Unchanged) => log::debug!("ddns: {name} -> {addr}: unchanged"),
        Ok(Pass::Wait { failures, secs }) => {
            log::debug!("ddns: {name}: backing off after {failures} failures, next try in {secs} s")
        }
        Err(e) => log::warn!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(role: &str, endpoint: &str, leave: bool) -> crate::proto::ClusterRole {
        crate::proto::ClusterRole {
            cluster: "edge-1".into(),
            distro: "k3s".into(),
            version: "v1.31.4+k3s1".into(),
            endpoint: endpoint.into(),
            role: role.into(),
            server_url: String::new(),
            token: String::new(),
            interface: None,
            pod_cidr: None,
            service_cidr: None,
            min_version: String::new(),
            leave,
            node_ip: None,
            bundle: None,
        }
    }

    #[test]
    fn which_hosts_keep_which_name() {
        let dns = "dns:api.edge-1.example.test";
        let name = || "api.edge-1.example.test".to_string();
        let own = "worker-7.example.test";
        let mine = || LoopPlan::HostName { name: own.into() };
        let none = ddns::State::default();
        let added = ddns::State {
            name: name(),
            address: "10.0.0.11".into(),
            ..ddns::State::default()
        };
        let host_rec = ddns::State {
            name: own.into(),
            address: "10.0.0.31".into(),
            ..ddns::State::default()
        };
        let removed = ddns::State {
            name: name(),
            ..ddns::State::default()
        };
        let member = || LoopPlan::Member { name: name() };
        let ip = |a: &str| a.parse::<IpAddr>().unwrap_or_else(|_| unreachable!());
        // (role ("" = no cluster instruction), endpoint, leave, role ready,
        //  ddns.json, usable host name, plan)
        let table = [
            ("init-server", dns, false, true, &none, Some(own), member()),
            ("join-server", dns, false, true, &none, Some(own), member()),
            (
                "join-server",
                dns,
                false,
                true,
                &host_rec,
                Some(own),
                member(),
            ),
            (
                "init-server",
                dns,
                false,
                false,
                &none,
                Some(own),
                LoopPlan::Nothing,
            ),
            (
                "join-server",
                dns,
                false,
                false,
                &added,
                None,
                LoopPlan::Nothing,
            ),
            ("join-agent", dns, false, true, &none, Some(own), mine()),
            (
                "join-agent",
                dns,
                false,
                false,
                &host_rec,
                Some(own),
                mine(),
            ),
            (
                "join-agent",
                dns,
                false,
                true,
                &none,
                None,
                LoopPlan::Nothing,
            ),
            (
                "init-server",
                "vip:10.0.0.100",
                false,
                true,
                &none,
                Some(own),
                mine(),
            ),
            (
                "init-server",
                "vip:10.0.0.100",
                false,
                true,
                &none,
                None,
                LoopPlan::Nothing,
            ),
            ("", "", false, false, &none, Some(own), mine()),
            ("", "", false, false, &host_rec, Some(own), mine()),
            ("", "", false, false, &none, None, LoopPlan::Nothing),
            (
                "join-server",
                "",
                true,
                false,
                &added,
                Some(own),
                LoopPlan::Remove {
                    name: name(),
                    addr: ip("10.0.0.11"),
                },
            ),
            // The cluster-name address is gone: back to the host name.
            ("join-server", "", true, false, &removed, Some(own), mine()),
            // A worker leaving keeps its host name (not withdrawn).
            ("join-agent", "", true, false, &host_rec, Some(own), mine()),
            (
                "join-agent",
                "",
                true,
                false,
                &none,
                None,
                LoopPlan::Nothing,
            ),
        ];
        for (role, ep, leave, ready, st, host, want) in table {
            let i = ins(role, ep, leave);
            let i = (!role.is_empty()).then_some(&i);
            assert_eq!(
                loop_plan(i, ready, st, host),
                want,
                "{role:?} {ep} leave={leave} ready={ready} state={} host={host:?}",
                st.name
            );
        }
    }

    #[test]
    fn host_names_in_the_zone() {
        let z = "example.test";
        let table = [
            ("worker-7", Some("worker-7.example.test")),
            ("Worker-7\n", Some("worker-7.example.test")),
            ("kiosk-17.shop.example", Some("kiosk-17.example.test")),
            ("kiosk-17.example.test.", Some("kiosk-17.example.test")),
            ("a.b.example.test", Some("a.example.test")),
            ("localhost", None),
            ("localhost.localdomain", None),
            ("", None),
            ("-edge", None),
            ("edge_1", None),
            (&*"x".repeat(64), None),
        ];
        for (h, want) in table {
            assert_eq!(host_fqdn(h, z).as_deref(), want, "{h:?}");
        }
        assert_eq!(
            host_fqdn("edge\n", "Example.Test.").as_deref(),
            Some("edge.example.test")
        );
        assert_eq!(host_fqdn("edge", ""), None);
    }
}
