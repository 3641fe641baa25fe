//! `outpost install`: gather the inputs (config, binary, checks, what is on
//! disk), ask `install::plan` for the actions, print them (`--dry-run`) or
//! perform them with `install::apply`. Decides nothing itself beyond
//! collecting inputs; prints the plan and the result.

use crate::checks::{self, Facts, Selection, Status};
use crate::cli::InstallArgs;
use crate::config::{self, Options, Source, Val};
use crate::error::{Code, Error, Result};
use crate::install::apply::{self, Applier};
use crate::install::manifest::Manifest;
use crate::install::plan::{self, Action, Seen};
use crate::install::{self as inst, Scheduler, Spec, Want};
use crate::sys::{Host, Root};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Checks that describe a tree, not a running machine: the only ones run
/// when installing into an image root.
pub const IMAGE_CHECKS: &[&str] = &["os", "tools", "docker"];

pub fn run(a: InstallArgs) -> Result<Code> {
    let host = crate::sys::host();
    let root = &a.root;
    let live = root.is_live();
    if live && !a.dry_run && host.euid() != 0 {
        return Err(Error::new(
            Code::NotPermitted,
            "install: installing onto the running system (/) needs root; run it as root, or give --root DIR to install into an image",
        ));
    }
    if !root.base().is_dir() {
        return Err(Error::usage(format!(
            "install: --root {} is not a directory",
            root.base().display()
        )));
    }

    // The operator's user-data: validated before anything else happens.
    let given = match &a.config {
        Some(c) => Some((c.clone(), read_config(c)?)),
        None => None,
    };
    let opts = Options::new(root, None, Vec::new());
    let loaded = match &given {
        Some((name, bytes)) => config::load_text(Path::new(name), Some(bytes), &opts),
        None => config::load(&opts)?,
    };
    for w in &loaded.warnings {
        super::warning(w);
    }
    if !loaded.problems.is_empty() {
        for p in &loaded.problems {
            eprintln!("error: {p}");
        }
        return Err(Error::config(format!(
            "install: the configuration has {} problem(s); nothing was changed",
            loaded.problems.len()
        )));
    }
    let cfg = loaded.config;
    if given.is_none() && !cfg.file_read {
        super::warning(&format!(
            "no user-data given (--config) and none at {}; the agent cannot check in until it exists",
            root.path(inst::CONFIG_PATH).display()
        ));
    }

    // Checks: all of them on the running system; on an image only those
    // about the tree itself.
    let facts = Facts::gather(root, host.as_ref());
    let sel = if live {
        Selection::default()
    } else {
        Selection {
            only: IMAGE_CHECKS.iter().map(|s| s.to_string()).collect(),
            skip: Vec::new(),
        }
    };
    let results = checks::run(&facts, &sel);
    if !live {
        let skipped: Vec<&str> = checks::ALL
            .iter()
            .map(|d| d.id)
            .filter(|id| !IMAGE_CHECKS.contains(id))
            .collect();
        eprintln!(
            "checks: image root: ran {}; skipped {} (they describe a running machine)",
            IMAGE_CHECKS.join(", "),
            skipped.join(", ")
        );
    }
    let failed: Vec<&checks::Check> = results
        .iter()
        .filter(|c| c.outcome.status == Status::Fail)
        .collect();
    for c in &failed {
        eprintln!(
            "check failed: {}: {} (required: {})",
            c.id, c.outcome.observed, c.outcome.required
        );
    }
    if !failed.is_empty() {
        if !a.ignore_checks {
            eprintln!(
                "install: {} check(s) failed; fix them or rerun with --ignore-checks; nothing was changed",
                failed.len()
            );
            return Ok(Code::CheckFailed);
        }
        super::warning(&format!(
            "{} check(s) failed; installing anyway (--ignore-checks)",
            failed.len()
        ));
    }

    // The binary, checked against the tree's architecture.
    let bin_path = match &a.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| {
            Error::io(
                "finding the running binary",
                Path::new("/proc/self/exe"),
                &e,
            )
        })?,
    };
    let (elf_head, binary) = read_binary(&bin_path, a.binary.is_some())?;
    check_arch(root, host.as_ref(), &bin_path, &elf_head)?;

    let scheduler = a
        .scheduler
        .unwrap_or_else(|| default_scheduler(root, cfg.scheduler.value));
    let trust = facts.os.as_ref().ok().and_then(inst::trust_store);
    let ca_certs: Vec<Vec<u8>> = cfg.ca_certs.value.iter().map(|c| c.der.clone()).collect();
    if !ca_certs.is_empty() && trust.is_none() {
        super::warning(&format!(
            "caCerts: the OS under {} is not one whose trust store outpost knows (docs/install.md); the certificates are used by the agent only",
            root.base().display()
        ));
    }
    if !live && scheduler != Scheduler::Systemd && !ca_certs.is_empty() {
        if let Some(t) = trust {
            super::warning(&format!(
                "caCerts: without systemd nothing runs {} when the image boots; run it in the image build",
                t.update.join(" ")
            ));
        }
    }
    let state_dir = cfg.state_dir.value.trim_end_matches('/').to_string();
    let spec = Spec {
        image: !live,
        scheduler,
        binary,
        config: given.map(|(_, b)| b),
        state_dir: state_dir.clone(),
        ca_certs,
        trust,
        http_proxy: from_file(&cfg.http_proxy).map(|p| p.as_given().to_string()),
        https_proxy: from_file(&cfg.https_proxy).map(|p| p.as_given().to_string()),
        no_proxy: if cfg.no_proxy.source == Source::File {
            cfg.no_proxy.value.given().to_vec()
        } else {
            Vec::new()
        },
    };
    let mut wants = inst::wants(&spec);
    // The early-boot files (docs/boot.md): new wants, decided here.
    let manifest_path = format!("{state_dir}/{}", inst::MANIFEST_NAME);
    let prior = apply::read_manifest(root, &manifest_path)?;
    let initramfs = early_boot(root, a.initramfs, prior.as_ref())?;
    wants.extend(inst::initramfs::wants(initramfs));
    let trust_paths: BTreeSet<String> = wants
        .iter()
        .filter_map(|w| match w {
            Want::File {
                path, trust: true, ..
            } => Some(path.clone()),
            _ => None,
        })
        .collect();
    let mut manifest = prior.unwrap_or_else(Manifest::new);
    if !a.dry_run {
        let mut owned: Vec<String> = wants.iter().map(|w| w.path().to_string()).collect();
        owned.extend(manifest_paths(&manifest));
        for p in apply::sweep_temps(root, &owned, &state_dir)? {
            log::info!("removed stale temp file {p}");
        }
    }
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for p in plan::inspect(&wants, &manifest) {
        seen.insert(p.clone(), apply::look(root, &p)?);
    }
    let trust_update = match (trust, trust_paths.is_empty()) {
        (Some(t), false) => Some(t.update.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        _ => None,
    };
    let mut acts = plan::plan(&plan::Inputs {
        wants: &wants,
        seen: &seen,
        manifest: &manifest,
        force: a.force,
        state_dir: &state_dir,
        live,
        systemd_running: live && root.exists("/run/systemd/system"),
        trust_update: trust_update.clone(),
        trust_paths: &trust_paths,
    })?;

    if live {
        inst::initramfs::add_regeneration(root, &mut acts);
    } else if initramfs != inst::initramfs::Initramfs::None && !a.dry_run {
        eprintln!(
            "initramfs: {} files placed in the image; the image build makes the initramfs ({})",
            initramfs.as_str(),
            inst::initramfs::regenerate(root, initramfs)
                .map(|v| v.join(" "))
                .unwrap_or_default()
        );
    }
    let target = if live {
        "the running system".to_string()
    } else {
        format!("the image under {}", root.base().display())
    };
    if acts.is_empty() {
        super::print(&format!(
            "nothing to do: outpost is installed in {target} as configured (scheduler {})\n",
            scheduler.as_str()
        ))?;
        return Ok(Code::Ok);
    }
    if a.dry_run {
        let mut out = format!(
            "plan for {target} (scheduler {}), {} action(s); nothing was changed (--dry-run):\n",
            scheduler.as_str(),
            acts.len()
        );
        for act in &acts {
            out.push_str("  ");
            out.push_str(&act.describe());
            out.push('\n');
        }
        super::print(&out)?;
        return Ok(Code::Ok);
    }

    if trust_update.is_some() {
        manifest.trust_update = trust_update;
    }
    super::print(&format!(
        "installing into {target} (scheduler {}):\n",
        scheduler.as_str()
    ))?;
    let mut ap = Applier::new(root, manifest, &state_dir);
    ap.run(&acts, &mut |act: &Action| {
        let _ = super::print(&format!("  {}\n", act.describe()));
    })?;
    for w in &ap.warnings {
        super::warning(w);
    }
    let after = match (live, scheduler) {
        (false, Scheduler::Systemd) => {
            "nothing was started; outpost-firstboot.service checks in when the image first boots"
        }
        (false, _) => "nothing was started",
        (true, Scheduler::Systemd) if root.exists("/run/systemd/system") => {
            "outpost.service is enabled and started"
        }
        (true, Scheduler::Systemd) => {
            "outpost.service is enabled (systemd is not running: it starts at the next boot)"
        }
        (true, Scheduler::Cron) => "cron runs outpost checkin every 5 minutes",
        (true, Scheduler::None) => "no scheduler: run 'outpost checkin' yourself",
    };
    super::print(&format!(
        "installed: {} action(s); manifest {}; {after}\n",
        acts.len(),
        root.path(&manifest_path).display()
    ))?;
    Ok(Code::Ok)
}

/// The generator whose early-boot files this install places: `--initramfs`
/// (auto resolved against the tree), else what the last install placed.
fn early_boot(
    root: &Root,
    given: Option<inst::initramfs::Initramfs>,
    prior: Option<&Manifest>,
) -> Result<inst::initramfs::Initramfs> {
    use inst::initramfs::{detect, from_paths, Initramfs};
    let kept = || {
        prior.map_or(Initramfs::None, |m| {
            from_paths(m.files.iter().map(|e| e.path.as_str()))
        })
    };
    Ok(match given {
        None => kept(),
        Some(Initramfs::Auto) => {
            let g = detect(root, Initramfs::Auto);
            if g == Initramfs::None {
                return Err(Error::usage(format!(
                    "install: --initramfs auto: neither update-initramfs nor dracut is under {}; name one, or use none",
                    root.base().display()
                )));
            }
            g
        }
        Some(g) => g,
    })
}

/// A value set in the user-data file (not the installing shell's environment).
/// Every path the manifest lists: files, links and the backups of what they
/// replaced.
pub fn manifest_paths(m: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    for e in &m.files {
        out.push(e.path.clone());
        if let Some(b) = &e.backup {
            out.push(b.clone());
        }
    }
    out
}

fn from_file<T: Clone>(v: &Val<Option<T>>) -> Option<T> {
    if v.source == Source::File {
        v.value.clone()
    } else {
        None
    }
}

/// `systemd` when the tree has systemd, else `cron` when it has cron.d,
/// else `none`; the config's `outpost.scheduler` wins unless `auto`.
fn default_scheduler(root: &Root, cfg: config::Scheduler) -> Scheduler {
    match cfg {
        config::Scheduler::Systemd => return Scheduler::Systemd,
        config::Scheduler::Cron => return Scheduler::Cron,
        config::Scheduler::Auto => {}
    }
    let systemd = if root.is_live() {
        root.exists("/run/systemd/system")
    } else {
        ["/usr/lib/systemd/systemd", "/lib/systemd/systemd"]
            .iter()
            .any(|p| root.exists(p))
    };
    if systemd {
        Scheduler::Systemd
    } else if root.exists("/etc/cron.d") {
        Scheduler::Cron
    } else {
        Scheduler::None
    }
}

/// The user-data given with `--config`: a file, or an https URL.
fn read_config(given: &str) -> Result<Vec<u8>> {
    if given.starts_with("https://") {
        return fetch_config(given);
    }
    if given.contains("://") {
        return Err(Error::usage(format!(
            "install: --config {}: only a file or an https:// URL",
            crate::config::values_api::redact_url(given)
        )));
    }
    let path = Path::new(given);
    let buf = config::read_file(path).map_err(|e| config::read_error(path, &e))?;
    if buf.len() as u64 > config::MAX_FILE_BYTES {
        return Err(Error::config(format!(
            "reading {given}: larger than {} bytes",
            config::MAX_FILE_BYTES
        )));
    }
    Ok(buf)
}

/// Fetch user-data over https with the agent's one HTTP client: the system
/// CA bundle of the machine running install (not of an image root), the
/// standard proxy variables, the usual timeouts, a body cap of the config
/// size limit. Transport failures keep their exit codes (10, 16, ...); a
/// server that is busy is 11; any other non-200 answer is a config error.
pub fn fetch_config(url: &str) -> Result<Vec<u8>> {
    use crate::http::{self, HttpSettings, ProxyEnv};
    let host = crate::sys::host();
    let settings = HttpSettings {
        body_limit: config::MAX_FILE_BYTES,
        proxy_env: ProxyEnv::from_process(),
        now: host.now(),
        ..HttpSettings::default()
    };
    let system = http::read_system_ca(&Root::system())?;
    let client = http::Client::new(settings, system.as_ref())?;
    let reply = client.get(url, &[])?;
    use crate::proto::{outcome, Endpoint, Outcome};
    match reply.status {
        200 => Ok(reply.body.into_bytes()),
        s if outcome(Endpoint::Probe, s) == Outcome::Exit(Code::ServerBusy) => Err(Error::new(
            Code::ServerBusy,
            format!("install: --config {}: HTTP {}", reply.what, reply.status),
        )),
        s => Err(Error::config(format!(
            "install: --config {}: HTTP {s}",
            reply.what
        ))),
    }
}

/// The binary to install: its ELF header (the architecture check), and its
/// content as a file hashed in pieces, never read whole into memory.
fn read_binary(path: &PathBuf, given: bool) -> Result<(Vec<u8>, inst::Content)> {
    let io_err = |e: &std::io::Error| {
        let err = Error::io("reading", path, e);
        if given && err.code() == Code::LocalIo {
            Error::usage(format!("install: --binary {}", err.message()))
        } else {
            err
        }
    };
    let mut head = Vec::with_capacity(64);
    std::fs::File::open(path)
        .and_then(|f| f.take(64).read_to_end(&mut head))
        .map_err(|e| io_err(&e))?;
    if inst::elf_machine(&head).is_none() {
        return Err(Error::usage(format!(
            "install: {} is not an ELF executable",
            path.display()
        )));
    }
    let content = inst::Content::file(path).map_err(|e| io_err(&e))?;
    Ok((head, content))
}

/// The tree's architecture: the running kernel's on the live system, else
/// the ELF machine of the first of `ARCH_PROBES` in the image (links
/// followed inside the image only). An image's /proc is not its own.
pub fn tree_machine(root: &Root, host: &dyn Host) -> Option<(u16, String)> {
    if root.is_live() {
        let m = host.uname().ok()?.machine;
        return inst::machine_of_uname(&m).map(|em| (em, format!("uname -m {m}")));
    }
    for probe in inst::ARCH_PROBES {
        let Ok(real) = crate::facts::rootpath::resolve(root, probe) else {
            continue;
        };
        let mut head = [0u8; 64];
        let Ok(mut f) = std::fs::File::open(root.path(&real)) else {
            continue;
        };
        let n = f.read(&mut head).unwrap_or(0);
        if let Some(m) = inst::elf_machine(&head[..n]) {
            return Some((m, real));
        }
    }
    None
}

fn check_arch(root: &Root, host: &dyn Host, bin: &Path, data: &[u8]) -> Result<()> {
    let Some(bm) = inst::elf_machine(data) else {
        return Ok(());
    };
    match tree_machine(root, host) {
        Some((tm, _)) if tm == bm => Ok(()),
        Some((tm, from)) => Err(Error::usage(format!(
            "install: {} is an {} binary but {} is {} (from {from}); give --binary with an {} build",
            bin.display(),
            inst::machine_name(bm),
            if root.is_live() {
                "this system".to_string()
            } else {
                format!("the image under {}", root.base().display())
            },
            inst::machine_name(tm),
            inst::machine_name(tm)
        ))),
        None => {
            super::warning(&format!(
                "cannot tell the architecture of {} (no ELF file at {}); the binary's ({}) is not checked",
                root.base().display(),
                inst::ARCH_PROBES.join(", "),
                inst::machine_name(bm)
            ));
            Ok(())
        }
    }
}
