//! `install --initramfs`: the early-boot files (docs/boot.md) as `Want`s,
//! which generator a tree uses, and the command that regenerates its image
//! on a running system. Pure: no I/O beyond `Root::exists` in `detect`.
//!
//! On an image root nothing is regenerated: the image build makes the
//! initramfs (it has the kernel), and install says so.

use super::plan::Action;
use super::Want;
use crate::sys::Root;

pub const ITOOLS_HOOK: &str = include_str!("../../dist/initramfs-tools/hooks/outpost");
pub const ITOOLS_SCRIPT: &str =
    include_str!("../../dist/initramfs-tools/scripts/local-bottom/outpost");
pub const ITOOLS_CONF: &str = include_str!("../../dist/initramfs-tools/conf.d/outpost");
pub const DRACUT_SETUP: &str = include_str!("../../dist/dracut/95outpost/module-setup.sh");
pub const DRACUT_HOOK: &str = include_str!("../../dist/dracut/95outpost/outpost-boot.sh");

pub const ITOOLS_HOOK_PATH: &str = "/etc/initramfs-tools/hooks/outpost";
pub const ITOOLS_SCRIPT_PATH: &str = "/etc/initramfs-tools/scripts/local-bottom/outpost";
pub const ITOOLS_CONF_PATH: &str = "/etc/initramfs-tools/conf.d/outpost";
pub const DRACUT_DIR: &str = "/usr/lib/dracut/modules.d/95outpost";
pub const DRACUT_SETUP_PATH: &str = "/usr/lib/dracut/modules.d/95outpost/module-setup.sh";
pub const DRACUT_HOOK_PATH: &str = "/usr/lib/dracut/modules.d/95outpost/outpost-boot.sh";
pub const DRACUT_CONF_PATH: &str = "/etc/dracut.conf.d/outpost.conf";
pub const DRACUT_CONF: &str = "# Written by outpost install (docs/boot.md): put outpost's boot beacon\n# into the initramfs.\nadd_dracutmodules+=\" outpost \"\n";

/// Which initramfs generator gets outpost's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initramfs {
    /// Whichever the tree has (initramfs-tools first, as on Debian).
    Auto,
    InitramfsTools,
    Dracut,
    None,
}

impl Initramfs {
    pub fn parse(s: &str) -> Option<Initramfs> {
        Some(match s {
            "auto" => Initramfs::Auto,
            "initramfs-tools" => Initramfs::InitramfsTools,
            "dracut" => Initramfs::Dracut,
            "none" => Initramfs::None,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Initramfs::Auto => "auto",
            Initramfs::InitramfsTools => "initramfs-tools",
            Initramfs::Dracut => "dracut",
            Initramfs::None => "none",
        }
    }
}

/// The regeneration tools, where each distribution puts them.
const UPDATE_INITRAMFS: &[&str] = &["/usr/sbin/update-initramfs", "/sbin/update-initramfs"];
const DRACUT: &[&str] = &["/usr/bin/dracut", "/usr/sbin/dracut", "/sbin/dracut"];

/// `auto` resolved against the tree: initramfs-tools when it has
/// update-initramfs, else dracut when it has dracut, else none.
pub fn detect(root: &Root, choice: Initramfs) -> Initramfs {
    match choice {
        Initramfs::Auto => {
            if UPDATE_INITRAMFS.iter().any(|p| root.exists(p)) {
                Initramfs::InitramfsTools
            } else if DRACUT.iter().any(|p| root.exists(p)) {
                Initramfs::Dracut
            } else {
                Initramfs::None
            }
        }
        c => c,
    }
}

/// What an earlier install put there (from the manifest's paths), so a
/// rerun without `--initramfs` keeps it.
pub fn from_paths<'a>(mut paths: impl Iterator<Item = &'a str>) -> Initramfs {
    let mut found = Initramfs::None;
    for p in paths.by_ref() {
        if p == ITOOLS_HOOK_PATH {
            found = Initramfs::InitramfsTools;
        } else if p == DRACUT_SETUP_PATH {
            found = Initramfs::Dracut;
        }
    }
    found
}

pub fn wants(gen: Initramfs) -> Vec<Want> {
    let f = |path: &str, text: &str, mode: u32| Want::File {
        path: path.into(),
        data: text.as_bytes().to_vec().into(),
        mode,
        trust: false,
    };
    match gen {
        Initramfs::InitramfsTools => vec![
            f(ITOOLS_HOOK_PATH, ITOOLS_HOOK, 0o755),
            f(ITOOLS_SCRIPT_PATH, ITOOLS_SCRIPT, 0o755),
            f(ITOOLS_CONF_PATH, ITOOLS_CONF, 0o644),
        ],
        Initramfs::Dracut => vec![
            f(DRACUT_SETUP_PATH, DRACUT_SETUP, 0o755),
            f(DRACUT_HOOK_PATH, DRACUT_HOOK, 0o755),
            f(DRACUT_CONF_PATH, DRACUT_CONF, 0o644),
        ],
        Initramfs::Auto | Initramfs::None => Vec::new(),
    }
}

/// Whether a path is one of the early-boot files, and of which generator.
pub fn owner(path: &str) -> Option<Initramfs> {
    if path.starts_with("/etc/initramfs-tools/") {
        Some(Initramfs::InitramfsTools)
    } else if path.starts_with(DRACUT_DIR) || path == DRACUT_CONF_PATH {
        Some(Initramfs::Dracut)
    } else {
        None
    }
}

/// The command that regenerates the image of `gen` on the running system
/// (the first tool found under the root).
pub fn regenerate(root: &Root, gen: Initramfs) -> Option<Vec<String>> {
    let (tools, args): (&[&str], &[&str]) = match gen {
        Initramfs::InitramfsTools => (UPDATE_INITRAMFS, &["-u"]),
        Initramfs::Dracut => (DRACUT, &["-f"]),
        _ => return None,
    };
    let tool = tools.iter().find(|p| root.exists(p)).unwrap_or(&tools[0]);
    let mut argv = vec![tool.to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    Some(argv)
}

/// On a running system, the regeneration runs after the plan when the plan
/// writes or removes an early-boot file (one run per generator touched).
pub fn add_regeneration(root: &Root, acts: &mut Vec<Action>) {
    let mut touched: Vec<Initramfs> = Vec::new();
    for a in acts.iter() {
        let path = match a {
            Action::Write { path, .. } | Action::Remove { path, .. } => path,
            Action::Adopt { entry } => &entry.path,
            _ => continue,
        };
        if let Some(g) = owner(path) {
            if !touched.contains(&g) {
                touched.push(g);
            }
        }
    }
    for g in touched {
        if let Some(argv) = regenerate(root, g) {
            acts.push(Action::Run { argv });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_names() {
        for s in ["auto", "initramfs-tools", "dracut", "none"] {
            assert_eq!(Initramfs::parse(s).map(|g| g.as_str()), Some(s));
        }
        assert_eq!(Initramfs::parse("mkinitcpio"), None);
    }

    #[test]
    fn wants_are_the_dist_files() {
        let w = wants(Initramfs::InitramfsTools);
        let paths: Vec<(&str, u32)> = w
            .iter()
            .map(|w| match w {
                Want::File { path, mode, .. } => (path.as_str(), *mode),
                _ => ("?", 0),
            })
            .collect();
        assert_eq!(
            paths,
            [
                (ITOOLS_HOOK_PATH, 0o755),
                (ITOOLS_SCRIPT_PATH, 0o755),
                (ITOOLS_CONF_PATH, 0o644)
            ]
        );
        assert!(
            ITOOLS_CONF.contains("\nUMASK=0077\n"),
            "the image is written 0600"
        );
        assert!(ITOOLS_HOOK.contains("copy_exec \"$OUTPOST_BIN\" /usr/sbin/outpost"));
        assert!(
            ITOOLS_HOOK.contains("OUTPOST_BIN=/usr/local/bin/outpost"),
            "the installed binary"
        );
        assert_eq!(super::super::BIN_PATH, "/usr/local/bin/outpost");
        let d = wants(Initramfs::Dracut);
        assert_eq!(d.len(), 3);
        assert!(DRACUT_CONF.contains("add_dracutmodules+=\" outpost \""));
        assert!(wants(Initramfs::None).is_empty());
    }

    #[test]
    fn from_manifest_paths_and_owner() {
        assert_eq!(
            from_paths(["/usr/local/bin/outpost", ITOOLS_HOOK_PATH].into_iter()),
            Initramfs::InitramfsTools
        );
        assert_eq!(
            from_paths([DRACUT_SETUP_PATH].into_iter()),
            Initramfs::Dracut
        );
        assert_eq!(
            from_paths(["/etc/outpost/user-data"].into_iter()),
            Initramfs::None
        );
        assert_eq!(owner(ITOOLS_CONF_PATH), Some(Initramfs::InitramfsTools));
        assert_eq!(owner(DRACUT_CONF_PATH), Some(Initramfs::Dracut));
        assert_eq!(owner("/etc/cron.d/outpost"), None);
    }

    #[test]
    fn regeneration_follows_the_touched_files() {
        let root = Root::new("/nonexistent-root-for-test");
        let mut acts = vec![
            Action::Write {
                path: ITOOLS_HOOK_PATH.into(),
                data: Vec::new().into(),
                mode: 0o755,
                sha256: String::new(),
                replace: false,
            },
            Action::Remove {
                path: DRACUT_HOOK_PATH.into(),
                restore: None,
            },
            Action::Write {
                path: ITOOLS_SCRIPT_PATH.into(),
                data: Vec::new().into(),
                mode: 0o755,
                sha256: String::new(),
                replace: false,
            },
        ];
        add_regeneration(&root, &mut acts);
        let runs: Vec<String> = acts
            .iter()
            .filter_map(|a| match a {
                Action::Run { argv } => Some(argv.join(" ")),
                _ => None,
            })
            .collect();
        assert_eq!(
            runs,
            ["/usr/sbin/update-initramfs -u", "/usr/bin/dracut -f"]
        );
        let mut none = vec![Action::RmDir { path: "/x".into() }];
        add_regeneration(&root, &mut none);
        assert_eq!(none.len(), 1, "nothing touched, nothing run");
    }
}
