//! `outpost uninstall`: read the manifest, ask `install::plan_uninstall`
//! for the steps and perform them. Removes only what the manifest lists;
//! keeps the state directory (host ID, credential) unless `--purge`.

use crate::cli::UninstallArgs;
use crate::config::{self, Options};
use crate::error::{Code, Error, Result};
use crate::install::apply::{self, Applier};
use crate::install::{self as inst, plan};

pub fn run(a: UninstallArgs) -> Result<Code> {
    let root = &a.root;
    let live = root.is_live();
    if live && crate::sys::host().euid() != 0 {
        return Err(Error::new(
            Code::NotPermitted,
            "uninstall: removing outpost from the running system (/) needs root",
        ));
    }
    // The state directory from the installed config; the default when the
    // config is gone or unreadable (uninstall must still work then).
    let state_dir = config::load(&Options::new(root, None, Vec::new()))
        .map(|l| l.config.state_dir.value)
        .unwrap_or_else(|_| inst::DEFAULT_STATE_DIR.to_string());
    let state_dir = state_dir.trim_end_matches('/').to_string();
    if a.cluster {
        // The cluster first: outpost (which would re-apply it) goes last.
        let start = if live && root.exists("/run/systemd/system") {
            crate::cluster::apply::Start::Systemd
        } else {
            crate::cluster::apply::Start::Direct
        };
        for step in crate::cluster::apply::leave(root, start, a.purge, &state_dir)? {
            super::print(&format!("  cluster: {step}\n"))?;
        }
    }
    let manifest_path = format!("{state_dir}/{}", inst::MANIFEST_NAME);
    let manifest = apply::read_manifest(root, &manifest_path)?;
    if manifest.is_none() {
        // An uninstall killed after the state went leaves only temp names.
        let _ = apply::sweep_temps(root, &[], &state_dir);
    }
    let Some(manifest) = manifest else {
        super::print(&format!(
            "nothing to do: no {} (outpost is not installed there)\n",
            root.path(&manifest_path).display()
        ))?;
        return Ok(Code::Ok);
    };
    if manifest.files.is_empty() && !a.purge {
        super::print("nothing to do: outpost's files are already removed (the state stays; --purge removes it)\n")?;
        return Ok(Code::Ok);
    }
    let owned = super::install::manifest_paths(&manifest);
    for p in apply::sweep_temps(root, &owned, &state_dir)? {
        log::info!("removed stale temp file {p}");
    }
    let mut acts = plan::plan_uninstall(
        &manifest,
        &state_dir,
        a.purge,
        live,
        live && root.exists("/run/systemd/system"),
    );
    if live {
        inst::initramfs::add_regeneration(root, &mut acts);
    }
    super::print(&format!(
        "uninstalling from {}:\n",
        if live {
            "the running system".to_string()
        } else {
            format!("the image under {}", root.base().display())
        }
    ))?;
    let manifest_files = manifest.files.clone();
    let mut ap = Applier::new(root, manifest, &state_dir);
    ap.run(&acts, &mut |act| {
        let _ = super::print(&format!("  {}\n", act.describe()));
    })?;
    for w in &ap.warnings {
        super::warning(w);
    }
    // What this run owns must be gone: the files it removed (a restored
    // backup stands at its path again, so only the backups are checked for
    // those), temp files of ours, and with --purge the state files.
    let mut must_be_gone: Vec<String> = Vec::new();
    for e in &manifest_files {
        match &e.backup {
            Some(b) if e.restore().is_some() => must_be_gone.push(b.clone()),
            _ => must_be_gone.push(e.path.clone()),
        }
    }
    let _ = apply::sweep_temps(root, &owned, &state_dir);
    if a.purge {
        for n in apply::STATE_FILES {
            must_be_gone.push(format!("{state_dir}/{n}"));
        }
    }
    let left = apply::leftovers(root, &must_be_gone, &state_dir);
    if let Some(first) = left.first() {
        return Err(Error::new(
            Code::LocalIo,
            format!(
                "uninstall: {first} is still there after removing it{}",
                if left.len() > 1 {
                    format!(" (and {} more)", left.len() - 1)
                } else {
                    String::new()
                }
            ),
        ));
    }
    super::print(&if a.purge {
        "removed outpost and its state\n".to_string()
    } else {
        format!(
            "removed outpost; kept the state in {} (--purge removes it)\n",
            root.path(&state_dir).display()
        )
    })?;
    Ok(Code::Ok)
}
