//! `outpost bundle [-o FILE]`: a support bundle for the operator to hand
//! over, as one tar.gz (mode 0600 from its creation, written to a temporary
//! name and renamed, so a crash leaves no half bundle under the final name).
//!
//! It must never hold the credential or the install secret (their presence
//! and mode only), and it masks `user:password@` in every URL of every item
//! (proxy variables, unit drop-ins, journal lines). Every item is capped in
//! size (`ITEM_LIMIT`), every command in time (`COMMAND_LIMIT`), and the
//! commands stop being run once the whole bundle took `TOTAL_LIMIT`.
//! An item that cannot be gathered becomes a line in `errors.txt`; the
//! bundle is still written.

use crate::checks::{self, Facts, Selection};
use crate::cli::{BundleArgs, CheckArgs};
use crate::error::{Code, Error, Result};
use crate::paths;
use crate::sys::Root;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Largest item kept (a longer one is cut, with a note at its end).
pub const ITEM_LIMIT: usize = 256 * 1024;
/// Longest one command may run before it is killed.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(10);
/// After this, no further command is started.
pub const TOTAL_LIMIT: Duration = Duration::from_secs(60);

struct Bundle {
    items: Vec<(String, Vec<u8>)>,
    errors: Vec<String>,
    started: Instant,
}

impl Bundle {
    fn add(&mut self, name: &str, data: Vec<u8>) {
        let mut data = mask_userinfo(&data);
        if data.len() > ITEM_LIMIT {
            data.truncate(ITEM_LIMIT);
            data.extend_from_slice(
                format!("\n[outpost bundle: cut at {ITEM_LIMIT} bytes]\n").as_bytes(),
            );
        }
        self.items.push((name.to_string(), data));
    }

    fn file(&mut self, name: &str, path: &Path) {
        match read_capped(path) {
            Ok(d) => self.add(name, d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self
                .errors
                .push(format!("{name}: {} does not exist", path.display())),
            Err(e) => self
                .errors
                .push(format!("{name}: reading {}: {e}", path.display())),
        }
    }

    fn command(&mut self, name: &str, argv: &[&str]) {
        if self.started.elapsed() > TOTAL_LIMIT {
            self.errors.push(format!(
                "{name}: not run: the bundle already took {} s",
                TOTAL_LIMIT.as_secs()
            ));
            return;
        }
        match run_bounded(argv) {
            Ok(out) => self.add(name, out),
            Err(why) => self
                .errors
                .push(format!("{name}: {}: {why}", argv.join(" "))),
        }
    }
}

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let mut out = Vec::new();
    f.take(ITEM_LIMIT as u64 + 1).read_to_end(&mut out)?;
    Ok(out)
}

/// Run a command with no stdin, C locale and no pager; its stdout and
/// stderr (capped), killed after `COMMAND_LIMIT`.
fn run_bounded(argv: &[&str]) -> std::result::Result<Vec<u8>, String> {
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let mut child = Command::new(prog)
        .args(args)
        .env("LC_ALL", "C")
        .env("SYSTEMD_PAGER", "cat")
        .env("PAGER", "cat")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "not installed".to_string(),
            _ => e.to_string(),
        })?;
    let mut pipes = Vec::new();
    for p in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        pipes.push(std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = p.take(ITEM_LIMIT as u64 + 1).read_to_end(&mut buf);
            buf
        }));
    }
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if t0.elapsed() > COMMAND_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let mut out = Vec::new();
    for (i, h) in pipes.into_iter().enumerate() {
        let b = h.join().unwrap_or_default();
        if i == 1 && !b.is_empty() {
            out.extend_from_slice(b"\n[stderr]\n");
        }
        out.extend_from_slice(&b);
    }
    match status {
        None => out.extend_from_slice(
            format!("\n[killed after {} s]\n", COMMAND_LIMIT.as_secs()).as_bytes(),
        ),
        Some(s) if !s.success() => out
            .extend_from_slice(format!("\n[exit status {}]\n", s.code().unwrap_or(-1)).as_bytes()),
        Some(_) => {}
    }
    Ok(out)
}

/// `scheme://user:pass@host` -> `scheme://****@host` everywhere in `data`.
pub fn mask_userinfo(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(b"://") {
            out.extend_from_slice(b"://");
            i += 3;
            // The authority ends at the first '/', whitespace, quote or end.
            let end = data[i..]
                .iter()
                .position(|&c| c == b'/' || c.is_ascii_whitespace() || c == b'"' || c == b'\'')
                .map_or(data.len(), |p| i + p);
            let auth = &data[i..end];
            match auth.iter().rposition(|&c| c == b'@') {
                Some(at) => {
                    out.extend_from_slice(b"****");
                    out.extend_from_slice(&auth[at..]);
                }
                None => out.extend_from_slice(auth),
            }
            i = end;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

pub fn run(args: BundleArgs) -> Result<Code> {
    let host = crate::sys::host();
    let root = Root::new(args.config.root.base());
    let live = root.base() == Path::new("/");
    let mut b = Bundle {
        items: Vec::new(),
        errors: Vec::new(),
        started: Instant::now(),
    };
    let now = host
        .now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    b.add(
        "README.txt",
        format!(
            "outpost support bundle, written {} by outpost {}.\n\
             It never holds the credential or the install secret (see state-dir.txt for\n\
             their presence and mode); user:password in URLs is masked as ****.\n\
             Items that could not be gathered are listed in errors.txt.\n",
            crate::timefmt::rfc3339(now),
            crate::version::VERSION
        )
        .into_bytes(),
    );
    b.add("version.txt", crate::version::text().into_bytes());

    // The host checks, as `check --json`.
    let facts = Facts::gather(&root, host.as_ref());
    let results = checks::run(&facts, &Selection::default());
    b.add(
        "check.json",
        (checks::to_json(&facts, &results) + "\n").into_bytes(),
    );

    // The way to the endpoint, as `check --network --json`.
    let check_args = CheckArgs {
        root: Root::new(root.base()),
        json: true,
        selection: Selection::default(),
        distro: None,
        boot: false,
        role: None,
        network: true,
        config: crate::cli::ConfigSource {
            root: Root::new(root.base()),
            file: args.config.file.clone(),
            sets: args.config.sets.clone(),
        },
    };
    match super::check::network(&check_args, host.as_ref()) {
        Ok(net) => b.add(
            "check-network.json",
            (checks::to_json(&facts, &net) + "\n").into_bytes(),
        ),
        Err(e) => b
            .errors
            .push(format!("check-network.json: {}", e.message())),
    }

    // The effective config, redacted as `config show --json` prints it.
    let state_dir = match super::config::show_json(&args.config) {
        Ok((json, state_dir)) => {
            b.add("config.json", (json + "\n").into_bytes());
            state_dir
        }
        Err(e) => {
            b.errors.push(format!("config.json: {}", e.message()));
            paths::DEFAULT_STATE_DIR.to_string()
        }
    };

    // The state directory: a listing, and the files that hold no secret.
    let sd = root.path(&state_dir);
    b.add("state-dir.txt", list_state_dir(&sd).into_bytes());
    for f in ["status.json", "state.json", crate::install::MANIFEST_NAME] {
        b.file(&format!("state/{f}"), &sd.join(f));
    }
    // The agent keeps no request log (docs/operations.md): what it keeps of
    // its last exchanges is status.json above (last attempt, success,
    // error), the last upgrade's outcome and trial, and in hawkBit DDI
    // mode the last deployment acted on; the journal tail below has the
    // logged lines. Bundled when present (none holds a secret).
    for f in [
        "upgrade.json",
        "trial.json",
        "ddi-action.json",
        "ddi-canceled",
    ] {
        let p = sd.join(f);
        if p.exists() {
            b.file(&format!("state/{f}"), &p);
        }
    }

    // Units, drop-ins, cron, the service's proxy environment (masked).
    let mut unit_files: Vec<String> = vec![
        paths::SERVICE_PATH.into(),
        paths::FIRSTBOOT_PATH.into(),
        paths::CRON_PATH.into(),
        paths::PROXY_ENV_PATH.into(),
    ];
    for d in [
        paths::SERVICE_DROPIN_DIR,
        "/etc/systemd/system/outpost-firstboot.service.d",
    ] {
        if let Ok(rd) = std::fs::read_dir(root.path(d)) {
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            unit_files.extend(names.into_iter().map(|n| format!("{d}/{n}")));
        }
    }
    for f in &unit_files {
        let p = root.path(f);
        if p.exists() {
            b.file(&format!("files{f}"), &p);
        }
    }
    b.file("files/etc/os-release", &root.path("/etc/os-release"));
    b.add("proxy-env.txt", proxy_vars().into_bytes());

    if live {
        b.file("proc/mountinfo", Path::new("/proc/self/mountinfo"));
        b.command(
            "lsblk.txt",
            &["lsblk", "-o", "NAME,SIZE,TYPE,FSTYPE,MOUNTPOINT,ROTA,MODEL"],
        );
        b.command("ip-addr.txt", &["ip", "addr"]);
        b.command("ip-route.txt", &["ip", "route"]);
        b.command("ip-route6.txt", &["ip", "-6", "route"]);
        if Path::new("/run/systemd/system").exists() {
            b.command(
                "systemctl-status.txt",
                &[
                    "systemctl",
                    "status",
                    "--no-pager",
                    "--lines=0",
                    "outpost.service",
                    "outpost-firstboot.service",
                ],
            );
            b.command(
                "journal.txt",
                &[
                    "journalctl",
                    "--no-pager",
                    "-o",
                    "short-iso",
                    "-n",
                    "300",
                    "-u",
                    "outpost.service",
                    "-u",
                    "outpost-firstboot.service",
                ],
            );
        } else {
            b.errors
                .push("systemctl-status.txt, journal.txt: systemd is not running here".into());
        }
    } else {
        b.errors.push(format!(
            "mounts, block devices, addresses, routes, systemd: not gathered for --root {} (only for the running host)",
            root.base().display()
        ));
    }
    let errors = std::mem::take(&mut b.errors);
    b.add("errors.txt", (errors.join("\n") + "\n").into_bytes());

    let out = args.output.clone().unwrap_or_else(|| {
        let hn = facts
            .kernel
            .hostname
            .clone()
            .map(|h| crate::identity::sanitize(&h))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        let t = crate::timefmt::rfc3339(now).replace([':', '-'], "");
        PathBuf::from(format!("outpost-bundle-{hn}-{t}.tar.gz"))
    });
    write(&out, &b.items, now)?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    log::info!("bundle: {} items, {size} bytes", b.items.len());
    super::print(&format!("{}\n", out.display()))
}

fn list_state_dir(dir: &Path) -> String {
    let mut out = format!("{}\n", dir.display());
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => return out + &format!("cannot list: {e}\n"),
    };
    let mut rows: Vec<(String, String)> = Vec::new();
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let row = match e.metadata() {
            Ok(m) => format!(
                "{:04o} {:>4}:{:<4} {:>9}  {name}{}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                m.len(),
                if m.is_dir() { "/" } else { "" }
            ),
            Err(err) => format!("?  {name}: {err}"),
        };
        rows.push((name, row));
    }
    rows.sort();
    for (name, row) in rows {
        let secret = name == "credential" || name == "install-secret";
        out.push_str(&row);
        if secret {
            out.push_str("   (secret: content never bundled)");
        }
        out.push('\n');
    }
    for s in ["credential", "install-secret"] {
        if !dir.join(s).exists() {
            out.push_str(&format!("{s}: not present\n"));
        }
    }
    out
}

fn proxy_vars() -> String {
    let mut out = String::new();
    for v in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        match std::env::var(v) {
            Ok(val) => out.push_str(&format!("{v}={val}\n")),
            Err(_) => out.push_str(&format!("{v} (unset)\n")),
        }
    }
    out
}

/// Write the tar.gz at `out`: a temporary file in the same directory,
/// created 0600, synced, then renamed.
fn write(out: &Path, items: &[(String, Vec<u8>)], mtime: u64) -> Result<()> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .ok_or_else(|| Error::usage(format!("bundle: -o {}: not a file name", out.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io("creating", &tmp, &e))?;
    let result = (|| -> std::io::Result<()> {
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        for (n, data) in items {
            let mut h = tar::Header::new_ustar();
            h.set_path(format!("outpost-bundle/{n}"))?;
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_mtime(mtime);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            tar.append(&h, data.as_slice())?;
        }
        let gz = tar.into_inner()?;
        let mut f = gz.finish()?;
        f.flush()?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("writing", &tmp, &e));
    }
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("renaming into place", out, &e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_masked_everywhere() {
        let t = b"HTTPS_PROXY=http://agent:s3cret@10.0.0.1:3128\n\"url\":\"https://u:p@h/x\" ftp://h/ http://@x";
        assert_eq!(
            String::from_utf8(mask_userinfo(t)).expect("utf8"),
            "HTTPS_PROXY=http://****@10.0.0.1:3128\n\"url\":\"https://****@h/x\" ftp://h/ http://****@x"
        );
    }
}
