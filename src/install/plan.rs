//! The pure core of install and uninstall: compare what should exist
//! (`Want`s) and the manifest with what is on disk (`Seen`), and return the
//! actions that bring the tree there. Running the plan twice gives an empty
//! plan the second time ("nothing to do").
//!
//! Must not touch the file system or run anything: every input is a value,
//! so every decision (foreign file, --force backup, repair after a crash,
//! stale entries, commands to run) is unit-tested here.

use super::manifest::{octal, parse_octal, Entry, Manifest};
use super::{sha256_hex, Want};
use crate::error::{Code, Error, Result};
use std::collections::{BTreeMap, BTreeSet};

/// What is at a path now (from `lstat`, never following a link).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Missing,
    File {
        sha256: String,
        mode: u32,
    },
    Link {
        target: String,
    },
    Dir {
        mode: u32,
    },
    /// A device, socket or FIFO.
    Other,
}

/// One step of an install or uninstall, in host paths (under the root).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    MkDir {
        path: String,
        mode: u32,
    },
    ChmodDir {
        path: String,
        from: u32,
        to: u32,
    },
    /// Copy the foreign file at `path` to `to` (same mode) before replacing it.
    Backup {
        path: String,
        to: String,
        mode: u32,
    },
    Write {
        path: String,
        data: super::Content,
        mode: u32,
        sha256: String,
        replace: bool,
    },
    Link {
        path: String,
        target: String,
        replace: bool,
    },
    /// An identical file or link already there (left by an interrupted
    /// run): record it in the manifest, change nothing on disk.
    Adopt {
        entry: Entry,
    },
    /// Remove a file or link install made; put back the backup, if any.
    Remove {
        path: String,
        restore: Option<(String, u32)>,
    },
    /// Remove the state files (all of the directory when install made it).
    PurgeState {
        path: String,
        whole: bool,
    },
    /// Remove a directory install created, when it is empty.
    RmDir {
        path: String,
    },
    Run {
        argv: Vec<String>,
    },
}

impl Action {
    /// One line for `--dry-run` and the report.
    pub fn describe(&self) -> String {
        match self {
            Action::MkDir { path, mode } => format!("create dir  {path} ({mode:04o})"),
            Action::ChmodDir { path, from: 0, to } => {
                format!("chmod dir   {path} (back to {to:04o})")
            }
            Action::ChmodDir { path, from, to } => {
                format!("chmod dir   {path} ({from:04o} -> {to:04o})")
            }
            Action::Backup { path, to, .. } => format!("back up     {path} -> {to}"),
            Action::Write {
                path,
                data,
                mode,
                replace,
                ..
            } => format!(
                "{}  {path} ({mode:04o}, {} bytes)",
                if *replace { "replace   " } else { "write     " },
                data.len()
            ),
            Action::Link { path, target, .. } => format!("link        {path} -> {target}"),
            Action::Adopt { entry } => format!("record      {} (already in place)", entry.path),
            Action::Remove {
                path,
                restore: None,
            } => format!("remove      {path}"),
            Action::Remove {
                path,
                restore: Some((b, _)),
            } => {
                format!("restore     {path} <- {b}")
            }
            Action::PurgeState { path, whole: true } => format!("purge       {path} (all)"),
            Action::PurgeState { path, whole: false } => {
                format!("purge       {path} (outpost's state files)")
            }
            Action::RmDir { path } => format!("remove dir  {path} (if empty)"),
            Action::Run { argv } => format!("run         {}", argv.join(" ")),
        }
    }

    /// Whether this action changes a systemd unit or its enabling.
    fn touches_units(&self) -> bool {
        let p = match self {
            Action::Write { path, .. } | Action::Link { path, .. } => path,
            Action::Remove { path, .. } => path,
            _ => return false,
        };
        p.starts_with(super::UNIT_DIR)
    }
}

/// Everything `plan` decides on.
pub struct Inputs<'a> {
    pub wants: &'a [Want],
    /// What is at each path of `inspect(wants, manifest)`.
    pub seen: &'a BTreeMap<String, Seen>,
    pub manifest: &'a Manifest,
    pub force: bool,
    /// Host path of the state directory (backups go below it).
    pub state_dir: &'a str,
    /// The running system (commands are run); else an image (nothing runs).
    pub live: bool,
    /// systemd is PID 1 on the live system (`/run/systemd/system` exists).
    pub systemd_running: bool,
    /// The trust-store update command of this OS, if any.
    pub trust_update: Option<Vec<String>>,
    /// Paths of trust-store entries among the wants.
    pub trust_paths: &'a BTreeSet<String>,
}

/// Every path whose state `plan` needs: each wanted path, its ancestors,
/// and each path the manifest lists.
pub fn inspect(wants: &[Want], manifest: &Manifest) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for w in wants {
        for a in ancestors(w.path()) {
            out.insert(a);
        }
        out.insert(w.path().to_string());
    }
    for e in &manifest.files {
        out.insert(e.path.clone());
    }
    out
}

/// `/a/b/c` -> `/a`, `/a/b` (not `/`, not the path itself).
pub fn ancestors(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for p in parts.iter().take(parts.len().saturating_sub(1)) {
        cur.push('/');
        cur.push_str(p);
        out.push(cur.clone());
    }
    out
}

/// Where a replaced foreign file is kept: `<state>/backup/<path with / as %2F>`.
pub fn backup_path(state_dir: &str, path: &str) -> String {
    let enc = path.replace('%', "%25").replace('/', "%2F");
    format!("{state_dir}/{}/{enc}", super::BACKUP_DIR_NAME)
}

fn seen<'a>(i: &'a Inputs<'_>, path: &str) -> &'a Seen {
    i.seen.get(path).unwrap_or(&Seen::Missing)
}

/// The install plan, or one error naming every path in the way.
pub fn plan(i: &Inputs<'_>) -> Result<Vec<Action>> {
    let mut acts = Vec::new();
    let mut made: BTreeSet<String> = BTreeSet::new();
    let mut foreign = Vec::new();
    let mut blocked = Vec::new();
    let backup_dir = format!("{}/{}", i.state_dir, super::BACKUP_DIR_NAME);

    let mut dir = |acts: &mut Vec<Action>,
                   path: &str,
                   mode: u32,
                   exact: bool,
                   blocked: &mut Vec<String>| {
        if made.contains(path) {
            return;
        }
        match seen(i, path) {
            Seen::Missing => {
                made.insert(path.to_string());
                acts.push(Action::MkDir { path: path.into(), mode });
            }
            Seen::Dir { mode: have } => {
                if exact && have & !mode != 0 {
                    acts.push(Action::ChmodDir { path: path.into(), from: *have, to: mode });
                }
                made.insert(path.to_string());
            }
            // On the running system a linked parent (e.g. /usr/local ->
            // /var/usrlocal) is simply followed; in an image a link could
            // point out of the tree, so it is refused.
            Seen::Link { .. } if i.live && !exact => {
                made.insert(path.to_string());
            }
            Seen::Link { .. } => blocked.push(format!("{path} is a symbolic link (outpost does not follow links in an image it installs into)")),
            Seen::File { .. } | Seen::Other => blocked.push(format!("{path} is not a directory")),
        }
    };

    for w in i.wants {
        for a in ancestors(w.path()) {
            dir(&mut acts, &a, 0o755, false, &mut blocked);
        }
        match w {
            Want::Dir { path, mode } => dir(&mut acts, path, *mode, true, &mut blocked),
            Want::File {
                path, data, mode, ..
            } => {
                let sha = data.sha256();
                let ours = i.manifest.file(path).is_some();
                let entry = Entry {
                    path: path.clone(),
                    kind: "file".into(),
                    sha256: sha.clone(),
                    mode: octal(*mode),
                    target: None,
                    backup: None,
                    backup_mode: None,
                };
                let write = |replace| Action::Write {
                    path: path.clone(),
                    data: data.clone(),
                    mode: *mode,
                    sha256: sha.clone(),
                    replace,
                };
                match seen(i, path) {
                    Seen::Missing => acts.push(write(false)),
                    Seen::File { sha256, mode: m } if *sha256 == sha && m == mode => {
                        if i.manifest.file(path).map(|e| &e.sha256) != Some(&sha) {
                            acts.push(Action::Adopt { entry });
                        }
                    }
                    Seen::File { sha256, .. } if ours || *sha256 == sha => acts.push(write(true)),
                    Seen::File { mode: m, .. } => {
                        if i.force {
                            dir(&mut acts, &backup_dir, 0o700, true, &mut blocked);
                            acts.push(Action::Backup {
                                path: path.clone(),
                                to: backup_path(i.state_dir, path),
                                mode: *m,
                            });
                            acts.push(write(true));
                        } else {
                            foreign.push(path.clone());
                        }
                    }
                    Seen::Link { .. } if ours => acts.push(write(true)),
                    Seen::Link { .. } => blocked.push(format!(
                        "{path} is a symbolic link outpost did not create; remove it first"
                    )),
                    Seen::Dir { .. } | Seen::Other => {
                        blocked.push(format!("{path} is in the way (not a regular file)"))
                    }
                }
            }
            Want::Link { path, target } => {
                let sha = sha256_hex(target.as_bytes());
                let ours = i.manifest.file(path).is_some();
                let link = |replace| Action::Link {
                    path: path.clone(),
                    target: target.clone(),
                    replace,
                };
                match seen(i, path) {
                    Seen::Missing => acts.push(link(false)),
                    Seen::Link { target: t } if t == target => {
                        if !ours {
                            acts.push(Action::Adopt {
                                entry: Entry {
                                    path: path.clone(),
                                    kind: "link".into(),
                                    sha256: sha,
                                    mode: octal(0o777),
                                    target: Some(target.clone()),
                                    backup: None,
                                    backup_mode: None,
                                },
                            });
                        }
                    }
                    Seen::Link { .. } | Seen::File { .. } if ours => acts.push(link(true)),
                    Seen::File { mode: m, .. } if i.force => {
                        dir(&mut acts, &backup_dir, 0o700, true, &mut blocked);
                        acts.push(Action::Backup {
                            path: path.clone(),
                            to: backup_path(i.state_dir, path),
                            mode: *m,
                        });
                        acts.push(link(true));
                    }
                    Seen::File { .. } => foreign.push(path.clone()),
                    Seen::Link { .. } => blocked.push(format!(
                        "{path} is a symbolic link outpost did not create; remove it first"
                    )),
                    Seen::Dir { .. } | Seen::Other => {
                        blocked.push(format!("{path} is in the way (not a regular file)"))
                    }
                }
            }
        }
    }

    // What the manifest lists but this install no longer wants (another
    // scheduler, fewer CA certificates): remove it, restoring any backup.
    let wanted: BTreeSet<&str> = i.wants.iter().map(|w| w.path()).collect();
    let mut stale_units = false;
    let mut stale_trust = false;
    for e in i.manifest.files.iter().rev() {
        if wanted.contains(e.path.as_str()) {
            continue;
        }
        stale_units |= e.path.starts_with(super::UNIT_DIR);
        stale_trust |= super::TRUST_STORES
            .iter()
            .any(|t| e.path.starts_with(&format!("{}/", t.dir)));
        acts.push(Action::Remove {
            path: e.path.clone(),
            restore: e.restore(),
        });
    }

    if !blocked.is_empty() {
        return Err(Error::new(Code::NotPermitted, blocked.join("; ")));
    }
    if !foreign.is_empty() {
        return Err(Error::new(
            Code::NotPermitted,
            format!(
                "{} {} not created by outpost; rerun with --force to replace {} (a backup is kept in {backup_dir})",
                foreign.join(", "),
                if foreign.len() == 1 { "was" } else { "were" },
                if foreign.len() == 1 { "it" } else { "them" },
            ),
        ));
    }

    if i.live && !acts.is_empty() {
        let trust_changed = stale_trust
            || acts.iter().any(|a| match a {
                Action::Write { path, .. } => i.trust_paths.contains(path),
                _ => false,
            });
        if trust_changed {
            if let Some(cmd) = i
                .trust_update
                .clone()
                .or_else(|| i.manifest.trust_update.clone())
            {
                acts.push(Action::Run { argv: cmd });
            }
        }
        let units = stale_units || acts.iter().any(Action::touches_units);
        if units && i.systemd_running {
            acts.push(run(&["systemctl", "daemon-reload"]));
            if wanted.contains(super::SERVICE_PATH) {
                acts.push(run(&["systemctl", "restart", "outpost.service"]));
            }
        }
    }
    Ok(acts)
}

fn run(argv: &[&str]) -> Action {
    Action::Run {
        argv: argv.iter().map(|s| s.to_string()).collect(),
    }
}

/// The uninstall plan: stop the service (live systemd), remove every file
/// and link in the manifest (newest first), restore backups, rerun the
/// trust-store update, and with `purge` remove the state too and every
/// directory install created; without it the state directory stays.
pub fn plan_uninstall(
    m: &Manifest,
    state_dir: &str,
    purge: bool,
    live: bool,
    systemd_running: bool,
) -> Vec<Action> {
    let mut acts = Vec::new();
    let has = |p: &str| m.file(p).is_some();
    if live && systemd_running {
        for unit in ["outpost.service", "outpost-firstboot.service"] {
            if has(&format!("{}/{unit}", super::UNIT_DIR)) {
                acts.push(run(&["systemctl", "disable", "--now", unit]));
            }
        }
    }
    for e in m.files.iter().rev() {
        acts.push(Action::Remove {
            path: e.path.clone(),
            restore: e.restore(),
        });
    }
    if live {
        if let Some(cmd) = &m.trust_update {
            acts.push(Action::Run { argv: cmd.clone() });
        }
        if systemd_running && m.files.iter().any(|e| e.path.starts_with(super::UNIT_DIR)) {
            acts.push(run(&["systemctl", "daemon-reload"]));
        }
    }
    // Directories outside the state directory's chain first, newest first,
    // while the manifest (in the state directory) can still record progress.
    let chain: BTreeSet<String> = ancestors(state_dir)
        .into_iter()
        .chain(std::iter::once(state_dir.to_string()))
        .collect();
    let undo = |d: &super::manifest::DirEntry| -> Option<Action> {
        if d.created {
            Some(Action::RmDir {
                path: d.path.clone(),
            })
        } else {
            d.mode_before
                .as_deref()
                .and_then(parse_octal)
                .map(|before| Action::ChmodDir {
                    path: d.path.clone(),
                    from: 0,
                    to: before,
                })
        }
    };
    acts.extend(
        m.dirs
            .iter()
            .rev()
            .filter(|d| !chain.contains(&d.path))
            .filter_map(undo),
    );
    if purge {
        // Last: the state (and with it the manifest), then the directories
        // above it that install made. Only a crash inside these final steps
        // can leave an empty directory behind (documented).
        let state_made = m.dir(state_dir).is_some_and(|d| d.created);
        acts.extend(
            m.dirs
                .iter()
                .filter(|d| d.path == state_dir && !d.created)
                .filter_map(undo),
        );
        acts.push(Action::PurgeState {
            path: state_dir.into(),
            whole: state_made,
        });
        acts.extend(
            m.dirs
                .iter()
                .rev()
                .filter(|d| chain.contains(&d.path) && d.path != state_dir)
                .filter_map(undo),
        );
    }
    acts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str) -> Want {
        Want::File {
            path: path.into(),
            data: data.as_bytes().into(),
            mode: 0o644,
            trust: false,
        }
    }

    fn fseen(data: &str, mode: u32) -> Seen {
        Seen::File {
            sha256: sha256_hex(data.as_bytes()),
            mode,
        }
    }

    fn entry(path: &str, data: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: "file".into(),
            sha256: sha256_hex(data.as_bytes()),
            mode: octal(0o644),
            target: None,
            backup: None,
            backup_mode: None,
        }
    }

    struct Case {
        name: &'static str,
        seen: Vec<(&'static str, Seen)>,
        manifest: Vec<Entry>,
        force: bool,
        want: std::result::Result<Vec<&'static str>, &'static str>,
    }

    #[test]
    fn install_plans() {
        let wants = vec![
            Want::Dir {
                path: "/var/lib/outpost".into(),
                mode: 0o700,
            },
            file("/etc/cron.d/outpost", "cron"),
            Want::Link {
                path: "/etc/w/outpost.service".into(),
                target: "/etc/x".into(),
            },
        ];
        let all_there = || {
            vec![
                ("/var", Seen::Dir { mode: 0o755 }),
                ("/var/lib", Seen::Dir { mode: 0o755 }),
                ("/var/lib/outpost", Seen::Dir { mode: 0o700 }),
                ("/etc", Seen::Dir { mode: 0o755 }),
                ("/etc/cron.d", Seen::Dir { mode: 0o755 }),
                ("/etc/w", Seen::Dir { mode: 0o755 }),
                ("/etc/cron.d/outpost", fseen("cron", 0o644)),
                (
                    "/etc/w/outpost.service",
                    Seen::Link {
                        target: "/etc/x".into(),
                    },
                ),
            ]
        };
        let ours = || {
            let mut l = entry("/etc/w/outpost.service", "/etc/x");
            l.kind = "link".into();
            vec![entry("/etc/cron.d/outpost", "cron"), l]
        };
        let with = |mut v: Vec<(&'static str, Seen)>, p: &'static str, s: Seen| {
            v.retain(|(q, _)| *q != p);
            v.push((p, s));
            v
        };
        let cases = vec![
            Case {
                name: "empty tree",
                seen: vec![("/etc", Seen::Dir { mode: 0o755 })],
                manifest: vec![],
                force: false,
                want: Ok(vec![
                    "create dir  /var (0755)",
                    "create dir  /var/lib (0755)",
                    "create dir  /var/lib/outpost (0700)",
                    "create dir  /etc/cron.d (0755)",
                    "write       /etc/cron.d/outpost (0644, 4 bytes)",
                    "create dir  /etc/w (0755)",
                    "link        /etc/w/outpost.service -> /etc/x",
                ]),
            },
            Case { name: "second run", seen: all_there(), manifest: ours(), force: false, want: Ok(vec![]) },
            Case {
                name: "interrupted before the manifest recorded them",
                seen: all_there(),
                manifest: vec![],
                force: false,
                want: Ok(vec![
                    "record      /etc/cron.d/outpost (already in place)",
                    "record      /etc/w/outpost.service (already in place)",
                ]),
            },
            Case {
                name: "our file changed",
                seen: with(all_there(), "/etc/cron.d/outpost", fseen("edited", 0o644)),
                manifest: ours(),
                force: false,
                want: Ok(vec!["replace     /etc/cron.d/outpost (0644, 4 bytes)"]),
            },
            Case {
                name: "mode drifted",
                seen: with(all_there(), "/etc/cron.d/outpost", fseen("cron", 0o666)),
                manifest: ours(),
                force: false,
                want: Ok(vec!["replace     /etc/cron.d/outpost (0644, 4 bytes)"]),
            },
            Case {
                name: "state dir too open",
                seen: with(all_there(), "/var/lib/outpost", Seen::Dir { mode: 0o755 }),
                manifest: ours(),
                force: false,
                want: Ok(vec!["chmod dir   /var/lib/outpost (0755 -> 0700)"]),
            },
            Case {
                name: "foreign file",
                seen: with(all_there(), "/etc/cron.d/outpost", fseen("theirs", 0o600)),
                manifest: vec![],
                force: false,
                want: Err("/etc/cron.d/outpost was not created by outpost; rerun with --force to replace it (a backup is kept in /var/lib/outpost/backup)"),
            },
            Case {
                name: "foreign file, --force",
                seen: with(all_there(), "/etc/cron.d/outpost", fseen("theirs", 0o600)),
                manifest: vec![],
                force: true,
                want: Ok(vec![
                    "create dir  /var/lib/outpost/backup (0700)",
                    "back up     /etc/cron.d/outpost -> /var/lib/outpost/backup/%2Fetc%2Fcron.d%2Foutpost",
                    "replace     /etc/cron.d/outpost (0644, 4 bytes)",
                    "record      /etc/w/outpost.service (already in place)",
                ]),
            },
            Case {
                name: "foreign link",
                seen: with(all_there(), "/etc/w/outpost.service", Seen::Link { target: "/elsewhere".into() }),
                manifest: vec![entry("/etc/cron.d/outpost", "cron")],
                force: true,
                want: Err("/etc/w/outpost.service is a symbolic link outpost did not create; remove it first"),
            },
            Case {
                name: "ancestor is a file",
                seen: with(all_there(), "/etc/cron.d", fseen("x", 0o644)),
                manifest: ours(),
                force: true,
                want: Err("/etc/cron.d is not a directory"),
            },
            Case {
                name: "directory in the way",
                seen: with(all_there(), "/etc/cron.d/outpost", Seen::Dir { mode: 0o755 }),
                manifest: ours(),
                force: true,
                want: Err("/etc/cron.d/outpost is in the way (not a regular file)"),
            },
            Case {
                name: "stale entry from another scheduler",
                seen: all_there(),
                manifest: {
                    let mut m = ours();
                    let mut e = entry("/etc/systemd/system/outpost.service", "unit");
                    e.backup = Some("/var/lib/outpost/backup/u".into());
                    e.backup_mode = Some(octal(0o600));
                    m.push(e);
                    m
                },
                force: false,
                want: Ok(vec!["restore     /etc/systemd/system/outpost.service <- /var/lib/outpost/backup/u"]),
            },
        ];
        let empty = BTreeSet::new();
        for c in cases {
            let seen: BTreeMap<String, Seen> = c
                .seen
                .into_iter()
                .map(|(p, s)| (p.to_string(), s))
                .collect();
            let manifest = Manifest {
                files: c.manifest,
                ..Manifest::new()
            };
            let got = plan(&Inputs {
                wants: &wants,
                seen: &seen,
                manifest: &manifest,
                force: c.force,
                state_dir: "/var/lib/outpost",
                live: false,
                systemd_running: false,
                trust_update: None,
                trust_paths: &empty,
            });
            match (got, c.want) {
                (Ok(acts), Ok(want)) => {
                    let got: Vec<String> = acts.iter().map(Action::describe).collect();
                    assert_eq!(got, want, "case {}", c.name);
                }
                (Err(e), Err(want)) => {
                    assert_eq!(e.message(), want, "case {}", c.name);
                    assert_eq!(e.code(), Code::NotPermitted, "case {}", c.name);
                }
                (got, want) => panic!("case {}: got {got:?}, want {want:?}", c.name),
            }
        }
    }

    #[test]
    fn live_root_runs_commands_only_when_something_changed() {
        let wants = vec![
            Want::File {
                path: "/usr/local/share/ca-certificates/outpost-1.crt".into(),
                data: b"pem"[..].into(),
                mode: 0o644,
                trust: true,
            },
            file(super::super::SERVICE_PATH, "unit"),
        ];
        let trust: BTreeSet<String> =
            ["/usr/local/share/ca-certificates/outpost-1.crt".to_string()].into();
        let cmd = vec!["/usr/sbin/update-ca-certificates".to_string()];
        let mk =
            |seen: &BTreeMap<String, Seen>, m: &Manifest, live: bool, sd: bool| -> Vec<String> {
                plan(&Inputs {
                    wants: &wants,
                    seen,
                    manifest: m,
                    force: false,
                    state_dir: "/var/lib/outpost",
                    live,
                    systemd_running: sd,
                    trust_update: Some(cmd.clone()),
                    trust_paths: &trust,
                })
                .expect("plan")
                .iter()
                .filter(|a| matches!(a, Action::Run { .. }))
                .map(Action::describe)
                .collect()
            };
        let dirs: BTreeMap<String, Seen> = [
            "/usr",
            "/usr/local",
            "/usr/local/share",
            "/usr/local/share/ca-certificates",
            "/etc",
            "/etc/systemd",
            "/etc/systemd/system",
        ]
        .iter()
        .map(|p| (p.to_string(), Seen::Dir { mode: 0o755 }))
        .collect();
        let empty = Manifest::new();
        assert_eq!(
            mk(&dirs, &empty, true, true),
            vec![
                "run         /usr/sbin/update-ca-certificates",
                "run         systemctl daemon-reload",
                "run         systemctl restart outpost.service"
            ],
            "live, systemd"
        );
        assert_eq!(
            mk(&dirs, &empty, true, false),
            vec!["run         /usr/sbin/update-ca-certificates"],
            "live, no systemd"
        );
        assert!(
            mk(&dirs, &empty, false, true).is_empty(),
            "image root runs nothing"
        );
        let mut done = dirs.clone();
        done.insert(
            "/usr/local/share/ca-certificates/outpost-1.crt".into(),
            fseen("pem", 0o644),
        );
        done.insert(super::super::SERVICE_PATH.into(), fseen("unit", 0o644));
        let m = Manifest {
            files: vec![
                entry("/usr/local/share/ca-certificates/outpost-1.crt", "pem"),
                entry(super::super::SERVICE_PATH, "unit"),
            ],
            ..Manifest::new()
        };
        assert!(
            mk(&done, &m, true, true).is_empty(),
            "second run on a live root runs nothing"
        );
    }

    #[test]
    fn uninstall_plans() {
        let mut m = Manifest::new();
        m.files = vec![entry("/etc/systemd/system/outpost.service", "u"), {
            let mut e = entry("/etc/cron.d/outpost", "c");
            e.backup = Some("/var/lib/outpost/backup/c".into());
            e.backup_mode = Some(octal(0o600));
            e
        }];
        m.dirs = vec![
            super::super::manifest::DirEntry {
                path: "/var/lib/outpost".into(),
                created: true,
                mode_before: None,
            },
            super::super::manifest::DirEntry {
                path: "/etc/outpost".into(),
                created: true,
                mode_before: None,
            },
            super::super::manifest::DirEntry {
                path: "/etc/cron.d".into(),
                created: false,
                mode_before: Some(octal(0o775)),
            },
        ];
        m.trust_update = Some(vec!["/usr/sbin/update-ca-certificates".into()]);
        let d = |acts: Vec<Action>| -> Vec<String> { acts.iter().map(Action::describe).collect() };
        assert_eq!(
            d(plan_uninstall(&m, "/var/lib/outpost", false, false, false)),
            vec![
                "restore     /etc/cron.d/outpost <- /var/lib/outpost/backup/c",
                "remove      /etc/systemd/system/outpost.service",
                "chmod dir   /etc/cron.d (back to 0775)",
                "remove dir  /etc/outpost (if empty)",
            ],
            "image, keep state"
        );
        assert_eq!(
            d(plan_uninstall(&m, "/var/lib/outpost", true, true, true)),
            vec![
                "run         systemctl disable --now outpost.service",
                "restore     /etc/cron.d/outpost <- /var/lib/outpost/backup/c",
                "remove      /etc/systemd/system/outpost.service",
                "run         /usr/sbin/update-ca-certificates",
                "run         systemctl daemon-reload",
                "chmod dir   /etc/cron.d (back to 0775)",
                "remove dir  /etc/outpost (if empty)",
                "purge       /var/lib/outpost (all)",
            ],
            "live, purge"
        );
    }

    #[test]
    fn linked_parent_followed_only_on_the_running_system() {
        let wants = vec![file("/usr/local/bin/outpost", "bin")];
        let seen: BTreeMap<String, Seen> = [
            ("/usr", Seen::Dir { mode: 0o755 }),
            (
                "/usr/local",
                Seen::Link {
                    target: "../var/usrlocal".into(),
                },
            ),
            ("/usr/local/bin", Seen::Dir { mode: 0o755 }),
        ]
        .into_iter()
        .map(|(p, s)| (p.to_string(), s))
        .collect();
        let empty = BTreeSet::new();
        let m = Manifest::new();
        for (live, want) in [
            (true, Ok(vec!["write       /usr/local/bin/outpost (0644, 3 bytes)".to_string()])),
            (false, Err("/usr/local is a symbolic link (outpost does not follow links in an image it installs into)".to_string())),
        ] {
            let got = plan(&Inputs {
                wants: &wants,
                seen: &seen,
                manifest: &m,
                force: false,
                state_dir: "/var/lib/outpost",
                live,
                systemd_running: false,
                trust_update: None,
                trust_paths: &empty,
            })
            .map(|a| a.iter().map(Action::describe).collect::<Vec<_>>())
            .map_err(|e| e.message().to_string());
            assert_eq!(got, want, "live {live}");
        }
    }

    #[test]
    fn path_helpers() {
        assert_eq!(ancestors("/a/b/c"), vec!["/a", "/a/b"], "three parts");
        assert!(ancestors("/a").is_empty(), "top level");
        assert_eq!(
            backup_path("/s", "/etc/a%b/c"),
            "/s/backup/%2Fetc%2Fa%25b%2Fc",
            "escaping"
        );
    }
}
