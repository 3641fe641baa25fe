//! argv -> `Invocation`: global flags, the subcommand and its flags, with
//! one reader for the flags every command shares (`common`); the help texts
//! (each line at most 80 columns) are in `help.rs`. Parsing only: nothing
//! here touches the host. Every error is one line naming the flag and exits 2.

use crate::checks::support::Distro;
use crate::checks::Selection;
use crate::error::{Error, Result};
use crate::sys::Root;
use lexopt::prelude::*;
use std::ffi::OsString;
use std::path::PathBuf;

mod help;
pub use help::*;

/// What `main` should do.
#[derive(Debug, PartialEq)]
pub struct Invocation {
    /// 0 = warnings (default); +1 per `-v`, -1 per `-q`.
    pub verbosity: i8,
    pub command: Command,
}

#[derive(Debug, PartialEq)]
pub enum Command {
    /// Print this text to stdout and exit 0.
    Help(String),
    Version {
        json: bool,
    },
    Check(CheckArgs),
    Config(ConfigArgs),
    Id(IdArgs),
    /// Hidden developer command: one GET or POST through `http/`.
    Probe(ProbeArgs),
    Checkin(CheckinArgs),
    Status(StatusArgs),
    Run(RunArgs),
    Install(InstallArgs),
    Uninstall(UninstallArgs),
    /// Self-upgrade from a local signed artifact.
    Upgrade(UpgradeArgs),
    /// Put `outpost.prev` back.
    Rollback(RunArgs),
    /// Run by the previous binary before each start: count or roll back.
    UpgradeGuard(RunArgs),
    /// `outpost boot` (initramfs; src/boot/command.rs parses its flags).
    Boot(crate::boot::command::BootArgs),
    /// `outpost cluster apply|ddns` (src/cluster/cmd.rs).
    Cluster(crate::cluster::cmd::ClusterArgs),
    /// `outpost bundle [-o FILE]`: a support bundle.
    Bundle(BundleArgs),
}

#[derive(Debug, PartialEq)]
pub struct UpgradeArgs {
    pub src: ConfigSource,
    /// `--bundle FILE`: the binary, with FILE.manifest and FILE.manifest.sig beside it.
    pub bundle: PathBuf,
    pub allow_downgrade: bool,
}

#[derive(Debug, PartialEq)]
pub struct InstallArgs {
    pub root: Root,
    /// `--config FILE|https-URL`, as given.
    pub config: Option<String>,
    pub binary: Option<PathBuf>,
    pub scheduler: Option<crate::install::Scheduler>,
    pub dry_run: bool,
    pub force: bool,
    pub ignore_checks: bool,
    /// `--initramfs`: put the early-boot files in place (docs/boot.md);
    /// `None` keeps what an earlier install chose.
    pub initramfs: Option<crate::install::initramfs::Initramfs>,
}

#[derive(Debug, PartialEq)]
pub struct UninstallArgs {
    pub root: Root,
    pub purge: bool,
    /// `--cluster`: leave the cluster first (src/cluster/apply.rs `leave`).
    pub cluster: bool,
}

#[derive(Debug, PartialEq)]
pub struct CheckinArgs {
    pub src: ConfigSource,
    /// `--splay SECONDS`: wait a random 0..=SECONDS first.
    pub splay: Option<u64>,
}

#[derive(Debug, PartialEq)]
pub struct StatusArgs {
    pub src: ConfigSource,
    pub json: bool,
}

#[derive(Debug, PartialEq)]
pub struct RunArgs {
    pub src: ConfigSource,
}

/// Longest `--splay`, seconds (a day).
pub const MAX_SPLAY: u64 = 86_400;

/// Where a command reads its configuration: `--root`, `--config`, `--set`.
#[derive(Debug, PartialEq)]
pub struct ConfigSource {
    pub root: Root,
    /// `--config FILE` (or `config validate FILE`), a path as given.
    pub file: Option<PathBuf>,
    /// `--set KEY=VALUE` pairs, in order.
    pub sets: Vec<(String, String)>,
}

#[derive(Debug, PartialEq)]
pub enum ConfigAction {
    /// `strict`: every warning is an error (for CI pipelines).
    Validate {
        strict: bool,
    },
    Show {
        json: bool,
    },
}

#[derive(Debug, PartialEq)]
pub struct ConfigArgs {
    pub src: ConfigSource,
    pub action: ConfigAction,
}

#[derive(Debug, PartialEq)]
pub struct IdArgs {
    pub src: ConfigSource,
}

#[derive(Debug, PartialEq)]
pub struct ProbeArgs {
    pub root: Root,
    pub url: String,
    /// Extra trusted CA files (PEM or DER), besides the system bundle.
    pub ca_certs: Vec<PathBuf>,
    pub proxy: Option<String>,
    pub no_proxy: Option<String>,
    /// POST this file's content (`-` = standard input) instead of a GET.
    pub data: Option<PathBuf>,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, PartialEq)]
pub struct BundleArgs {
    /// `-o FILE` (default `outpost-bundle-<host>-<UTC time>.tar.gz` here).
    pub output: Option<PathBuf>,
    pub config: ConfigSource,
}

#[derive(Debug, PartialEq)]
pub struct CheckArgs {
    pub root: Root,
    pub json: bool,
    pub selection: Selection,
    /// `--distro`: judge against one row of docs/support.md (None: all rows).
    pub distro: Option<Distro>,
    /// `--boot`: only the checks that make sense in the initramfs.
    pub boot: bool,
    /// `--role ... --vip ... --interface ... --dns ...` (src/cluster/).
    pub role: Option<crate::cluster::preflight::RoleCheck>,
    /// `--network`: also walk the way to the configured endpoint (needs the
    /// config: `--config`, `--set`).
    pub network: bool,
    pub config: ConfigSource,
}

fn unknown_arg(arg: lexopt::Arg<'_>) -> Error {
    let tok = match arg {
        Short(c) => Tok::Flag(format!("-{c}")),
        Long(l) => Tok::Flag(format!("--{l}")),
        Value(v) => Tok::Value(v.to_owned()),
    };
    unknown_tok(tok, "outpost")
}

fn lex(e: lexopt::Error, cmd: &str) -> Error {
    Error::usage(format!("{cmd}: {e}"))
}

pub(crate) fn value(p: &mut lexopt::Parser, cmd: &str, flag: &str) -> Result<String> {
    let v = p
        .value()
        .map_err(|_| Error::usage(format!("{cmd}: {flag} needs a value")))?;
    v.into_string()
        .map_err(|_| Error::usage(format!("{cmd}: {flag} value is not valid UTF-8")))
}

fn ids(p: &mut lexopt::Parser, cmd: &str, flag: &str) -> Result<Vec<String>> {
    let v = value(p, cmd, flag)?;
    let list: Vec<String> = v
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if list.is_empty() {
        return Err(Error::usage(format!(
            "{cmd}: {flag} needs at least one check ID"
        )));
    }
    Ok(list)
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Invocation> {
    let mut p = lexopt::Parser::from_args(args);
    let mut verbosity: i8 = 0;
    let cmd = loop {
        let arg = p.next().map_err(|e| lex(e, "outpost"))?;
        match arg {
            Some(Short('v') | Long("verbose")) => verbosity = verbosity.saturating_add(1),
            Some(Short('q') | Long("quiet")) => verbosity = verbosity.saturating_sub(1),
            Some(Short('h') | Long("help")) => {
                return Ok(Invocation {
                    verbosity,
                    command: Command::Help(HELP.to_string()),
                })
            }
            Some(Short('V') | Long("version")) => {
                let mut json = false;
                while let Some(arg) = p.next().map_err(|e| lex(e, "outpost"))? {
                    match arg {
                        Long("json") => json = true,
                        other => return Err(unknown_arg(other)),
                    }
                }
                return Ok(Invocation {
                    verbosity,
                    command: Command::Version { json },
                });
            }
            Some(Value(v)) => break v.to_string_lossy().into_owned(),
            Some(other) => return Err(unknown_arg(other)),
            None => {
                return Err(Error::usage(
                    "no command given; see 'outpost --help'".to_string(),
                ))
            }
        }
    };
    let command = match cmd.as_str() {
        "check" => parse_check(&mut p, &mut verbosity)?,
        "bundle" => parse_bundle(&mut p, &mut verbosity)?,
        "config" => parse_config(&mut p, &mut verbosity)?,
        "id" => parse_id(&mut p, &mut verbosity)?,
        "probe" => parse_probe(&mut p, &mut verbosity)?,
        "install" => parse_install(&mut p, &mut verbosity)?,
        "uninstall" => parse_uninstall(&mut p, &mut verbosity)?,
        "boot" => crate::boot::command::parse(p.raw_args().map_err(|e| lex(e, "boot"))?.collect())?,
        "cluster" => crate::cluster::cmd::parse(&mut p, &mut verbosity)?,
        "checkin" => parse_agent_cmd(&mut p, &mut verbosity, "checkin")?,
        "status" => parse_agent_cmd(&mut p, &mut verbosity, "status")?,
        "run" => parse_agent_cmd(&mut p, &mut verbosity, "run")?,
        "upgrade" => parse_agent_cmd(&mut p, &mut verbosity, "upgrade")?,
        "rollback" => parse_agent_cmd(&mut p, &mut verbosity, "rollback")?,
        "upgrade-guard" => parse_agent_cmd(&mut p, &mut verbosity, "upgrade-guard")?,
        "help" => {
            let topic = p.next().map_err(|e| lex(e, "help"))?.map(|a| match a {
                Value(v) => v.to_string_lossy().into_owned(),
                Short(c) => format!("-{c}"),
                Long(l) => format!("--{l}"),
            });
            Command::Help(help_for(topic.as_deref())?)
        }
        other => {
            return Err(Error::usage(format!(
                "unknown command {other:?}; see 'outpost --help'"
            )))
        }
    };
    Ok(Invocation { verbosity, command })
}

fn help_for(topic: Option<&str>) -> Result<String> {
    Ok(match topic {
        None => HELP.to_string(),
        Some("check") => CHECK_HELP.to_string(),
        Some("bundle") => BUNDLE_HELP.to_string(),
        Some("config") => CONFIG_HELP.to_string(),
        Some("id") => ID_HELP.to_string(),
        Some("probe") => PROBE_HELP.to_string(),
        Some("install") => INSTALL_HELP.to_string(),
        Some("uninstall") => UNINSTALL_HELP.to_string(),
        Some("checkin") => CHECKIN_HELP.to_string(),
        Some("status") => STATUS_HELP.to_string(),
        Some("run") => RUN_HELP.to_string(),
        Some("upgrade") => UPGRADE_HELP.to_string(),
        Some("rollback") => ROLLBACK_HELP.to_string(),
        Some("upgrade-guard") => GUARD_HELP.to_string(),
        Some("cluster") => crate::cluster::cmd::HELP.to_string(),
        Some("exit-codes") => exit_codes_help(),
        Some(other) => {
            return Err(Error::usage(format!(
                "help: no help topic {other:?}; see 'outpost --help'"
            )))
        }
    })
}

/// One command-line token: a flag spelled as typed (`-v`, `--root`), or a
/// positional value. Owned, so the parser can be borrowed again for values.
pub(crate) enum Tok {
    Flag(String),
    Value(OsString),
}

pub(crate) fn next(p: &mut lexopt::Parser, cmd: &str) -> Result<Option<Tok>> {
    Ok(p.next().map_err(|e| lex(e, cmd))?.map(|a| match a {
        Short(c) => Tok::Flag(format!("-{c}")),
        Long(l) => Tok::Flag(format!("--{l}")),
        Value(v) => Tok::Value(v),
    }))
}

pub(crate) fn unknown_tok(tok: Tok, cmd: &str) -> Error {
    match tok {
        Tok::Flag(f) => {
            let see = if cmd == "outpost" {
                "outpost --help".to_string()
            } else {
                format!("outpost {cmd} --help")
            };
            Error::usage(format!("{cmd}: unknown flag {f}; see '{see}'"))
        }
        Tok::Value(v) => Error::usage(format!(
            "{cmd}: unexpected argument {:?}; see 'outpost {cmd} --help'",
            v.to_string_lossy()
        )),
    }
}

/// Flags every command takes. Returns Ok(true) when `flag` was one of them.
pub(crate) fn common(
    flag: &str,
    p: &mut lexopt::Parser,
    cmd: &str,
    verbosity: &mut i8,
    root: &mut Option<PathBuf>,
) -> Result<bool> {
    match flag {
        "-v" | "--verbose" => *verbosity = verbosity.saturating_add(1),
        "-q" | "--quiet" => *verbosity = verbosity.saturating_sub(1),
        "--root" => {
            let v = value(p, cmd, "--root")?;
            if v.is_empty() {
                return Err(Error::usage(format!("{cmd}: --root needs a directory")));
            }
            *root = Some(PathBuf::from(v));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn parse_bundle(p: &mut lexopt::Parser, verbosity: &mut i8) -> Result<Command> {
    const CMD: &str = "bundle";
    let mut root = None;
    let mut file = None;
    let mut sets = Vec::new();
    let mut output = None;
    while let Some(tok) = next(p, CMD)? {
        let Tok::Flag(flag) = &tok else {
            return Err(unknown_tok(tok, CMD));
        };
        if common(flag, p, CMD, verbosity, &mut root)?
            || config_flag(flag, p, CMD, &mut file, &mut sets)?
        {
            continue;
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help(BUNDLE_HELP.to_string())),
            "-o" | "--output" => {
                let v = value(p, CMD, flag)?;
                if v.is_empty() {
                    return Err(Error::usage(format!("{CMD}: {flag} needs a file")));
                }
                output = Some(PathBuf::from(v));
            }
            _ => return Err(unknown_tok(tok, CMD)),
        }
    }
    Ok(Command::Bundle(BundleArgs {
        output,
        config: ConfigSource {
            root: Root::new(root.unwrap_or_else(|| PathBuf::from("/"))),
            file,
            sets,
        },
    }))
}

fn parse_check(p: &mut lexopt::Parser, verbosity: &mut i8) -> Result<Command> {
    const CMD: &str = "check";
    let mut root = None;
    let mut json = false;
    let mut selection = Selection::default();
    let mut distro = None;
    let mut boot = false;
    let mut role = crate::cluster::preflight::RoleFlags::default();
    let mut network = false;
    let mut file = None;
    let mut sets = Vec::new();
    while let Some(tok) = next(p, CMD)? {
        let Tok::Flag(flag) = &tok else {
            return Err(unknown_tok(tok, CMD));
        };
        if common(flag, p, CMD, verbosity, &mut root)? {
            continue;
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help(CHECK_HELP.to_string())),
            "--json" => json = true,
            "--boot" => boot = true,
            "--network" => network = true,
            "--config" | "--set" => {
                config_flag(flag, p, CMD, &mut file, &mut sets)?;
            }
            "--role" | "--vip" | "--interface" | "--dns" => {
                let v = value(p, CMD, flag)?;
                role.set(flag, v)?;
            }
            "--only" => selection.only.extend(ids(p, CMD, "--only")?),
            "--skip" => selection.skip.extend(ids(p, CMD, "--skip")?),
            "--distro" => {
                let v = value(p, CMD, "--distro")?;
                distro = Some(Distro::parse(&v).ok_or_else(|| {
                    Error::usage(format!(
                        "{CMD}: --distro {v:?} is not one of k3s, pxke, canonical"
                    ))
                })?);
            }
            _ => return Err(unknown_tok(tok, CMD)),
        }
    }
    selection.validate()?;
    if boot && (!selection.only.is_empty() || !selection.skip.is_empty()) {
        return Err(Error::usage(format!(
            "{CMD}: --boot runs a fixed set (cpu, memory, rootdev); it takes no --only or --skip"
        )));
    }
    if !network && (file.is_some() || !sets.is_empty()) {
        return Err(Error::usage(format!(
            "{CMD}: --config and --set only apply with --network"
        )));
    }
    let root = root.unwrap_or_else(|| PathBuf::from("/"));
    Ok(Command::Check(CheckArgs {
        root: Root::new(root.clone()),
        network,
        config: ConfigSource {
            root: Root::new(root),
            file,
            sets,
        },
        json,
        selection,
        distro,
        boot,
        role: role.finish()?,
    }))
}

/// `--config FILE` and `--set KEY=VALUE`; Ok(true) when `flag` was one.
pub(crate) fn config_flag(
    flag: &str,
    p: &mut lexopt::Parser,
    cmd: &str,
    file: &mut Option<PathBuf>,
    sets: &mut Vec<(String, String)>,
) -> Result<bool> {
    match flag {
        "--config" => {
            let v = value(p, cmd, "--config")?;
            if v.is_empty() {
                return Err(Error::usage(format!("{cmd}: --config needs a file")));
            }
            *file = Some(PathBuf::from(v));
        }
        "--set" => {
            let v = value(p, cmd, "--set")?;
            let Some((k, val)) = v.split_once('=') else {
                let key = v.split(['=', ' ']).next().unwrap_or("");
                return Err(Error::usage(format!(
                    "{cmd}: --set needs KEY=VALUE (got key {key:?} without =)"
                )));
            };
            sets.push((k.trim().to_string(), val.to_string()));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn parse_config(p: &mut lexopt::Parser, verbosity: &mut i8) -> Result<Command> {
    const CMD: &str = "config";
    let mut root = None;
    let mut file = None;
    let mut sets = Vec::new();
    let mut json = false;
    let mut strict = false;
    let mut action: Option<String> = None;
    let mut positional: Option<PathBuf> = None;
    while let Some(tok) = next(p, CMD)? {
        match &tok {
            Tok::Value(v) if action.is_none() => action = Some(v.to_string_lossy().into_owned()),
            Tok::Value(v) if action.as_deref() == Some("validate") && positional.is_none() => {
                positional = Some(PathBuf::from(v))
            }
            Tok::Value(_) => return Err(unknown_tok(tok, CMD)),
            Tok::Flag(flag) => {
                if common(flag, p, CMD, verbosity, &mut root)?
                    || config_flag(flag, p, CMD, &mut file, &mut sets)?
                {
                    continue;
                }
                match flag.as_str() {
                    "-h" | "--help" => return Ok(Command::Help(CONFIG_HELP.to_string())),
                    "--json" => json = true,
                    "--strict" => strict = true,
                    _ => return Err(unknown_tok(tok, CMD)),
                }
            }
        }
    }
    let action = match action.as_deref() {
        Some("validate") => ConfigAction::Validate { strict },
        Some("show") => ConfigAction::Show { json },
        Some(other) => {
            return Err(Error::usage(format!(
                "config: unknown action {other:?} (known: validate, show)"
            )))
        }
        None => return Err(Error::usage("config: needs an action: validate or show")),
    };
    if json && matches!(action, ConfigAction::Validate { .. }) {
        return Err(Error::usage("config: --json is for 'config show'"));
    }
    if strict && !matches!(action, ConfigAction::Validate { .. }) {
        return Err(Error::usage("config: --strict is for 'config validate'"));
    }
    if positional.is_some() && file.is_some() {
        return Err(Error::usage(
            "config: give the file either as FILE or as --config, not both",
        ));
    }
    Ok(Command::Config(ConfigArgs {
        src: ConfigSource {
            root: Root::new(root.unwrap_or_else(|| PathBuf::from("/"))),
            file: positional.or(file),
            sets,
        },
        action,
    }))
}

fn parse_id(p: &mut lexopt::Parser, verbosity: &mut i8) -> Result<Command> {
    const CMD: &str = "id";
    let mut root = None;
    let mut file = None;
    let mut sets = Vec::new();
    while let Some(tok) = next(p, CMD)? {
        let Tok::Flag(flag) = &tok else {
            return Err(unknown_tok(tok, CMD));
        };
        if common(flag, p, CMD, verbosity, &mut root)?
            || config_flag(flag, p, CMD, &mut file, &mut sets)?
        {
            continue;
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help(ID_HELP.to_string())),
            _ => return Err(unknown_tok(tok, CMD)),
        }
    }
    Ok(Command::Id(IdArgs {
        src: ConfigSource {
            root: Root::new(root.unwrap_or_else(|| PathBuf::from("/"))),
            file,
            sets,
        },
    }))
}

fn parse_probe(p: &mut lexopt::Parser, verbosity: &mut i8) -> Result<Command> {
    const CMD: &str = "probe";
    let mut root = None;
    let mut url = None;
    let mut ca_certs = Vec::new();
    let (mut proxy, mut no_proxy, mut data, mut timeout_secs) = (None, None, None, None);
    while let Some(tok) = next(p, CMD)? {
        let flag = match &tok {
            Tok::Value(v) if url.is_none() => {
                url = Some(v.to_string_lossy().into_owned());
                continue;
            }
            Tok::Value(_) => return Err(unknown_tok(tok, CMD)),
            Tok::Flag(f) => f.clone(),
        };
        if common(&flag, p, CMD, verbosity, &mut root)? {
            continue;
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help(PROBE_HELP.to_string())),
            "--cacert" => ca_certs.push(PathBuf::from(value(p, CMD, "--cacert")?)),
            "--proxy" => proxy = Some(value(p, CMD, "--proxy")?),
            "--no-proxy" => no_proxy = Some(value(p, CMD, "--no-proxy")?),
            "--data" => data = Some(PathBuf::from(value(p, CMD, "--data")?)),
            "--timeout" => {
                let v = value(p, CMD, "--timeout")?;
                match v.parse::<u64>() {
                    Ok(n) if (1..=3600).contains(&n) => timeout_secs = Some(n),
                    _ => {
                        return Err(Error::usage(format!(
                            "{CMD}: --timeout needs whole seconds 1-3600, not {v:?}"
                        )))
                    }
                }
            }
            _ => return Err(unknown_tok(tok, CMD)),
        }
    }
    let url = url.ok_or_else(|| Error::usage(format!("{CMD}: needs a URL")))?;
    Ok(Command::Probe(ProbeArgs {
        root: Root::new(root.unwrap_or_else(|| PathBuf::from("/"))),
        url,
        ca_certs,
        proxy,
        no_proxy,
        data,
        timeout_secs,
    }))
}

fn parse_install(p: &mut lexopt::Parser, verbosity: &mut i8) -> Result<Command> {
    const CMD: &str = "install";
    let mut root = None;
    let mut a = InstallArgs {
        root: Root::system(),
        config: None,
        binary: None,
        scheduler: None,
        dry_run: false,
        force: false,
        ignore_checks: false,
        initramfs: None,
    };
    while let Some(tok) = next(p, CMD)? {
        let Tok::Flag(flag) = &tok else {
            return Err(unknown_tok(tok, CMD));
        };
        if common(flag, p, CMD, verbosity, &mut root)? {
            continue;
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help(INSTALL_HELP.to_string())),
            "--config" => {
                let v = value(p, CMD, "--config")?;
                if v.is_empty() {
                    return Err(Error::usage(format!(
                        "{CMD}: --config needs a file or an https URL"
                    )));
                }
                a.config = Some(v);
            }
            "--binary" => {
                let v = value(p, CMD, "--binary")?;
                if v.is_empty() {
                    return Err(Error::usage(format!("{CMD}: --binary needs a file")));
                }
                a.binary = Some(PathBuf::from(v));
            }
            "--scheduler" => {
                let v = value(p, CMD, "--scheduler")?;
                a.scheduler = Some(crate::install::Scheduler::parse(&v).ok_or_else(|| {
                    Error::usage(format!(
                        "{CMD}: --scheduler {v:?} is not one of systemd, cron, none"
                    ))
                })?);
            }
            "--initramfs" => {
                let v = value(p, CMD, "--initramfs")?;
                a.initramfs = Some(crate::install::initramfs::Initramfs::parse(&v).ok_or_else(
                    || {
                        Error::usage(format!(
                        "{CMD}: --initramfs {v:?} is not one of auto, initramfs-tools, dracut, none"
                    ))
                    },
                )?);
            }
            "--dry-run" => a.dry_run = true,
            "--force" => a.force = true,
            "--ignore-checks" => a.ignore_checks = true,
            _ => return Err(unknown_tok(tok, CMD)),
        }
    }
    a.root = Root::new(root.unwrap_or_else(|| PathBuf::from("/")));
    Ok(Command::Install(a))
}

fn parse_uninstall(p: &mut lexopt::Parser, verbosity: &mut i8) -> Result<Command> {
    const CMD: &str = "uninstall";
    let mut root = None;
    let mut purge = false;
    let mut cluster = false;
    while let Some(tok) = next(p, CMD)? {
        let Tok::Flag(flag) = &tok else {
            return Err(unknown_tok(tok, CMD));
        };
        if common(flag, p, CMD, verbosity, &mut root)? {
            continue;
        }
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help(UNINSTALL_HELP.to_string())),
            "--purge" => purge = true,
            "--cluster" => cluster = true,
            _ => return Err(unknown_tok(tok, CMD)),
        }
    }
    Ok(Command::Uninstall(UninstallArgs {
        root: Root::new(root.unwrap_or_else(|| PathBuf::from("/"))),
        purge,
        cluster,
    }))
}

/// `checkin`, `status` and `run`: config flags plus their own.
fn parse_agent_cmd(
    p: &mut lexopt::Parser,
    verbosity: &mut i8,
    cmd: &'static str,
) -> Result<Command> {
    let mut root = None;
    let mut file = None;
    let mut sets = Vec::new();
    let mut json = false;
    let mut splay = None;
    let mut bundle = None;
    let mut allow_downgrade = false;
    while let Some(tok) = next(p, cmd)? {
        let Tok::Flag(flag) = &tok else {
            return Err(unknown_tok(tok, cmd));
        };
        if common(flag, p, cmd, verbosity, &mut root)?
            || config_flag(flag, p, cmd, &mut file, &mut sets)?
        {
            continue;
        }
        match (cmd, flag.as_str()) {
            (_, "-h" | "--help") => {
                return Ok(Command::Help(
                    help_for(Some(cmd)).unwrap_or_else(|_| HELP.to_string()),
                ))
            }
            ("status", "--json") => json = true,
            ("upgrade", "--bundle") => {
                bundle = Some(PathBuf::from(value(p, cmd, "--bundle")?));
            }
            ("upgrade", "--allow-downgrade") => allow_downgrade = true,
            ("checkin", "--splay") => {
                let v = value(p, cmd, "--splay")?;
                splay = Some(
                    v.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|s| *s <= MAX_SPLAY)
                        .ok_or_else(|| {
                            Error::usage(format!(
                                "{cmd}: --splay {v:?} is not a whole number of seconds 0..={MAX_SPLAY}"
                            ))
                        })?,
                );
            }
            _ => return Err(unknown_tok(tok, cmd)),
        }
    }
    let src = ConfigSource {
        root: Root::new(root.unwrap_or_else(|| PathBuf::from("/"))),
        file,
        sets,
    };
    Ok(match cmd {
        "checkin" => Command::Checkin(CheckinArgs { src, splay }),
        "status" => Command::Status(StatusArgs { src, json }),
        "upgrade" => Command::Upgrade(UpgradeArgs {
            src,
            bundle: bundle.ok_or_else(|| {
                Error::usage("upgrade: --bundle FILE is required; see 'outpost upgrade --help'")
            })?,
            allow_downgrade,
        }),
        "rollback" => Command::Rollback(RunArgs { src }),
        "upgrade-guard" => Command::UpgradeGuard(RunArgs { src }),
        _ => Command::Run(RunArgs { src }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Invocation> {
        parse(args.iter().map(OsString::from))
    }

    fn err(args: &[&str]) -> String {
        match p(args) {
            Err(e) => {
                assert_eq!(e.code(), crate::error::Code::Usage, "args {args:?}");
                e.message().to_string()
            }
            Ok(i) => panic!("args {args:?} parsed as {i:?}"),
        }
    }

    #[test]
    fn parses_check() {
        let i = p(&[
            "-v", "check", "--root", "/img", "--json", "--only", "cpu,arch", "-v",
        ])
        .expect("parse");
        assert_eq!(i.verbosity, 2);
        assert_eq!(
            i.command,
            Command::Check(CheckArgs {
                root: Root::new("/img"),
                json: true,
                selection: Selection {
                    only: vec!["cpu".into(), "arch".into()],
                    skip: vec![],
                },
                distro: None,
                boot: false,
                role: None,
                network: false,
                config: ConfigSource {
                    root: Root::new("/img"),
                    file: None,
                    sets: vec![],
                },
            })
        );
        let i = p(&["check", "--distro", "pxke"]).expect("parse");
        let Command::Check(a) = i.command else {
            panic!("not check")
        };
        assert_eq!(a.distro, Some(Distro::Pxke));
        let i = p(&["check", "--root=/x", "-q"]).expect("parse");
        assert_eq!(i.verbosity, -1);
    }

    #[test]
    fn usage_errors_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "no command given; see 'outpost --help'"),
            (
                &["frobnicate"],
                "unknown command \"frobnicate\"; see 'outpost --help'",
            ),
            (
                &["--frob"],
                "outpost: unknown flag --frob; see 'outpost --help'",
            ),
            (
                &["check", "--frob"],
                "check: unknown flag --frob; see 'outpost check --help'",
            ),
            (
                &["check", "-x"],
                "check: unknown flag -x; see 'outpost check --help'",
            ),
            (
                &["check", "extra"],
                "check: unexpected argument \"extra\"; see 'outpost check --help'",
            ),
            (&["check", "--root"], "check: --root needs a value"),
            (&["check", "--root="], "check: --root needs a directory"),
            (&["check", "--only", ","], "check: --only needs at least one check ID"),
            (&["check", "--only", "disks"], "--only: unknown check ID \"disks\" (known: arch, cpu, memory, disk, os, init, kernel, swap, time, hostname, ports, tools, docker, space, root)"),
            (&["check", "--distro", "rke2"], "check: --distro \"rke2\" is not one of k3s, pxke, canonical"),
            (&["check", "--distro"], "check: --distro needs a value"),
            (&["check", "--json=yes"], "check: unexpected argument for option '--json': \"yes\""),
            (&["help", "nope"], "help: no help topic \"nope\"; see 'outpost --help'"),
            (&["probe"], "probe: needs a URL"),
            (&["probe", "https://a/", "https://b/"], "probe: unexpected argument \"https://b/\"; see 'outpost probe --help'"),
            (&["probe", "https://a/", "--timeout", "0"], "probe: --timeout needs whole seconds 1-3600, not \"0\""),
            (&["probe", "https://a/", "--proxy"], "probe: --proxy needs a value"),
            (&["--version", "--frob"], "outpost: unknown flag --frob; see 'outpost --help'"),
        ];
        for (args, want) in cases {
            assert_eq!(err(args), *want, "args {args:?}");
        }
    }

    #[test]
    fn help_and_version() {
        let help = |t: &str| Command::Help(t.to_string());
        assert_eq!(p(&["--help"]).expect("help").command, help(HELP));
        assert_eq!(p(&["check", "-h"]).expect("help").command, help(CHECK_HELP));
        assert_eq!(
            p(&["help", "check"]).expect("help").command,
            help(CHECK_HELP)
        );
        assert_eq!(
            p(&["--version", "--json"]).expect("version").command,
            Command::Version { json: true }
        );
    }

    #[test]
    fn parses_config_and_id() {
        let src = |root: &str, file: Option<&str>, sets: &[(&str, &str)]| ConfigSource {
            root: Root::new(root),
            file: file.map(PathBuf::from),
            sets: sets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let cases: &[(&[&str], Command)] = &[
            (
                &["config", "validate", "ud.yaml"],
                Command::Config(ConfigArgs {
                    src: src("/", Some("ud.yaml"), &[]),
                    action: ConfigAction::Validate { strict: false },
                }),
            ),
            (
                &["config", "validate", "--root", "/img"],
                Command::Config(ConfigArgs {
                    src: src("/img", None, &[]),
                    action: ConfigAction::Validate { strict: false },
                }),
            ),
            (
                &[
                    "config",
                    "show",
                    "--json",
                    "--config",
                    "/x",
                    "--set",
                    "outpost.logLevel=debug",
                ],
                Command::Config(ConfigArgs {
                    src: src("/", Some("/x"), &[("outpost.logLevel", "debug")]),
                    action: ConfigAction::Show { json: true },
                }),
            ),
            (
                &["id", "--root", "/r", "--set", "stylus.site.name=a=b"],
                Command::Id(IdArgs {
                    src: src("/r", None, &[("stylus.site.name", "a=b")]),
                }),
            ),
        ];
        for (args, want) in cases {
            assert_eq!(&p(args).expect("parse").command, want, "args {args:?}");
        }
    }

    #[test]
    fn config_usage_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["config"], "config: needs an action: validate or show"),
            (
                &["config", "frob"],
                "config: unknown action \"frob\" (known: validate, show)",
            ),
            (
                &["config", "validate", "a", "b"],
                "config: unexpected argument \"b\"; see 'outpost config --help'",
            ),
            (
                &["config", "validate", "a", "--config", "b"],
                "config: give the file either as FILE or as --config, not both",
            ),
            (
                &["config", "validate", "--json"],
                "config: --json is for 'config show'",
            ),
            (
                &["config", "show", "--set", "novalue"],
                "config: --set needs KEY=VALUE (got key \"novalue\" without =)",
            ),
            (
                &["config", "show", "--config="],
                "config: --config needs a file",
            ),
            (
                &["id", "extra"],
                "id: unexpected argument \"extra\"; see 'outpost id --help'",
            ),
            (
                &["id", "--json"],
                "id: unknown flag --json; see 'outpost id --help'",
            ),
        ];
        for (args, want) in cases {
            assert_eq!(err(args), *want, "args {args:?}");
        }
    }

    #[test]
    fn agent_commands_parse() {
        let p = |args: &[&str]| parse(args.iter().map(OsString::from));
        let got = p(&["checkin", "--splay", "30", "--root", "/r"]).expect("checkin");
        assert_eq!(
            got.command,
            Command::Checkin(CheckinArgs {
                src: ConfigSource {
                    root: Root::new("/r"),
                    file: None,
                    sets: vec![],
                },
                splay: Some(30),
            }),
            "checkin --splay"
        );
        let bad: &[(&[&str], &str)] = &[
            (
                &["checkin", "--splay", "x"],
                "checkin: --splay \"x\" is not a whole number of seconds 0..=86400",
            ),
            (
                &["checkin", "--splay", "86401"],
                "checkin: --splay \"86401\" is not a whole number of seconds 0..=86400",
            ),
            (
                &["checkin", "--json"],
                "checkin: unknown flag --json; see 'outpost checkin --help'",
            ),
            (
                &["run", "--splay", "1"],
                "run: unknown flag --splay; see 'outpost run --help'",
            ),
            (
                &["status", "extra"],
                "status: unexpected argument \"extra\"; see 'outpost status --help'",
            ),
        ];
        for (args, want) in bad {
            let e = p(args).expect_err("must fail");
            assert_eq!(e.message(), *want, "args {args:?}");
            assert_eq!(e.code(), crate::error::Code::Usage, "args {args:?}");
        }
        assert!(matches!(
            p(&["status", "--json"]).expect("status").command,
            Command::Status(StatusArgs { json: true, .. })
        ));
        assert_eq!(
            p(&["run", "--help"]).expect("help").command,
            Command::Help(RUN_HELP.to_string())
        );
    }

    #[test]
    fn help_fits_80_columns() {
        for text in [
            HELP.to_string(),
            CHECK_HELP.to_string(),
            CONFIG_HELP.to_string(),
            ID_HELP.to_string(),
            PROBE_HELP.to_string(),
            INSTALL_HELP.to_string(),
            UNINSTALL_HELP.to_string(),
            CHECKIN_HELP.to_string(),
            STATUS_HELP.to_string(),
            RUN_HELP.to_string(),
            exit_codes_help(),
        ] {
            for line in text.lines() {
                assert!(line.chars().count() <= 80, "too wide: {line:?}");
            }
        }
    }

    #[test]
    fn parses_install_and_uninstall() {
        let i = p(&[
            "install",
            "--root",
            "/img",
            "--config",
            "ud",
            "--binary",
            "b",
            "--scheduler",
            "cron",
            "--dry-run",
            "--force",
            "--ignore-checks",
            "--initramfs",
            "dracut",
        ])
        .expect("parse");
        assert_eq!(
            i.command,
            Command::Install(InstallArgs {
                root: Root::new("/img"),
                config: Some("ud".into()),
                binary: Some(PathBuf::from("b")),
                scheduler: Some(crate::install::Scheduler::Cron),
                dry_run: true,
                force: true,
                ignore_checks: true,
                initramfs: Some(crate::install::initramfs::Initramfs::Dracut),
            }),
            "install with every flag"
        );
        assert_eq!(
            p(&["uninstall", "--purge"]).expect("parse").command,
            Command::Uninstall(UninstallArgs {
                root: Root::system(),
                purge: true,
                cluster: false,
            }),
            "uninstall --purge"
        );
        let cases: &[(&[&str], &str)] = &[
            (
                &["install", "--scheduler", "upstart"],
                "install: --scheduler \"upstart\" is not one of systemd, cron, none",
            ),
            (
                &["install", "--config="],
                "install: --config needs a file or an https URL",
            ),
            (
                &["install", "x"],
                "install: unexpected argument \"x\"; see 'outpost install --help'",
            ),
            (
                &["uninstall", "--force"],
                "uninstall: unknown flag --force; see 'outpost uninstall --help'",
            ),
        ];
        for (args, want) in cases {
            assert_eq!(err(args), *want, "args {args:?}");
        }
    }
}
