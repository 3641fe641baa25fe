//! Real SIGKILL at every write/rename/fsync/mkdir/unlink of `install`,
//! `uninstall`, `checkin` and `run`, and at random instants (see
//! `common/kill.rs`): after each kill every file the agent owns is absent,
//! the old version or the new one, valid (JSON parses, modes as
//! contracted); the next run succeeds and leaves no temp file; uninstall
//! after an interrupted install restores the tree exactly.
//!
//! `OUTPOST_KILL_RUNS` (default 300 per command) and `OUTPOST_KILL_SEED`
//! (printed) make a longer run or a reproduction. Needs `strace`; skipped,
//! saying so, under the qemu runner (a process under user-mode emulation
//! cannot be traced this way).

mod common;
use common::agent::{Device, Setup};
use common::fault::Scratch;
use common::fixture;
use common::hub::Hub;
use common::install::{agent_bin, elf_machine, snapshot};
use common::kill::{self, Rng};
use common::tls::make_pki;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const DEFAULT_RUNS: usize = 300;

fn skip(label: &str) -> bool {
    if kill::available() {
        return false;
    }
    eprintln!("{label}: SKIPPED: strace unusable or the agent runs under an emulator");
    true
}

/// An image tree (`common::install::image`) of the agent's architecture,
/// with /usr/local/bin already there.
fn image(r: &Path) {
    common::install::image(r, elf_machine(&agent_bin()));
    fs::create_dir_all(r.join("usr/local/bin")).expect("mkdir");
}

/// A small binary of the agent's architecture to install (the ELF header
/// is what install inspects): 256 KiB, so a kill can land mid-write.
fn small_binary(dir: &Path) -> String {
    let me = fs::read(env!("CARGO_BIN_EXE_outpost")).expect("agent binary");
    let mut b = me[..64].to_vec();
    b.resize(256 * 1024, 0x5a);
    let p = dir.join("outpost-small");
    fs::write(&p, b).expect("write");
    p.display().to_string()
}

fn install_cmd(root: &Path, ud: &str, bin: &str) -> Command {
    let mut c = common::install::install_cmd(root);
    c.args(["--scheduler", "cron", "--config", ud, "--binary", bin]);
    c
}

fn uninstall_cmd(root: &Path) -> Command {
    common::install::uninstall_cmd(root, true)
}

fn ok(mut c: Command, what: &str) -> String {
    let o = c.output().expect("spawn");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{what}: {} {text}", o.status);
    text
}

/// After a kill of install or uninstall: every path is as before, as after
/// a full install, a temp file of ours, or the manifest (valid JSON, 0600).
fn check_between(
    tree: &BTreeMap<String, String>,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    root: &Path,
    label: &str,
) -> Vec<String> {
    let mut bad = Vec::new();
    for (p, v) in tree {
        let name = p.rsplit('/').next().unwrap_or(p);
        if name.starts_with('.') && name.contains(".tmp.") {
            continue;
        }
        if p.contains("/.")
            && p.split('/')
                .any(|c| c.starts_with('.') && c.contains(".tmp."))
        {
            continue;
        }
        if p.ends_with("manifest.json") {
            let f = root.join(p);
            if !kill::valid_json(&f) || kill::mode(&f) != 0o600 {
                bad.push(format!("{label}: {p} not valid JSON 0600"));
            }
            continue;
        }
        if before.get(p) == Some(v) || after.get(p) == Some(v) {
            continue;
        }
        // A directory install creates appears before its final content.
        if v.starts_with("dir ") && (after.get(p) == Some(v) || before.contains_key(p)) {
            continue;
        }
        bad.push(format!(
            "{label}: {p} is {v}; before {:?}, installed {:?}",
            before.get(p),
            after.get(p)
        ));
    }
    bad
}

#[test]
fn sigkill_install_and_uninstall() {
    if skip("sigkill_install_and_uninstall") {
        return;
    }
    let total = kill::runs(DEFAULT_RUNS);
    let mut rng = Rng::new(kill::seed("sigkill_install_and_uninstall"));
    let scratch = Scratch::new("kill-install");
    let ud = fixture("config/good/proxy-ca-tags.yaml")
        .display()
        .to_string();
    let bin = small_binary(scratch.path());

    // Reference: the tree before, after install, and install's calls.
    let r = scratch.path().join("ref");
    image(&r);
    let before = snapshot(&r);
    let t0 = Instant::now();
    let counts = kill::count_calls(&install_cmd(&r, &ud, &bin), &scratch.path().join("trace-i"));
    let span_i = t0.elapsed();
    let after = snapshot(&r);
    let counts_u = kill::count_calls(&uninstall_cmd(&r), &scratch.path().join("trace-u"));
    assert_eq!(
        snapshot(&r),
        before,
        "reference uninstall restores the tree"
    );
    ok(
        install_cmd(&r, &ud, &bin),
        "install before timing uninstall",
    );
    let t0 = Instant::now();
    ok(uninstall_cmd(&r), "timing uninstall");
    let span_u = t0.elapsed();
    eprintln!("install calls {counts:?}; uninstall calls {counts_u:?}");

    let mut failures = Vec::new();
    let mut stats = [(0usize, 0usize, Duration::ZERO); 2];
    for (which, counts, span) in [(0, &counts, span_i), (1, &counts_u, span_u)] {
        let plan = kill::plan(counts, total, span, &mut rng);
        for (i, at) in plan.iter().enumerate() {
            let label = format!("{} run {i} ({at})", ["install", "uninstall"][which]);
            let r = scratch.path().join(format!("t{which}-{i}"));
            image(&r);
            if which == 1 {
                ok(
                    install_cmd(&r, &ud, &bin),
                    "install before killed uninstall",
                );
            }
            let cmd = if which == 0 {
                install_cmd(&r, &ud, &bin)
            } else {
                uninstall_cmd(&r)
            };
            let (killed, took) = kill::kill(&cmd, at);
            stats[which].0 += 1;
            stats[which].1 += usize::from(killed);
            stats[which].2 = stats[which].2.max(took);
            failures.extend(check_between(&snapshot(&r), &before, &after, &r, &label));
            if which == 0 && i % 2 == 0 {
                // Install again: the full tree, no temp file; then purge.
                ok(
                    install_cmd(&r, &ud, &bin),
                    &format!("{label}: rerun install"),
                );
                let t = snapshot(&r);
                if t != after {
                    failures.push(format!(
                        "{label}: reinstall differs: {:?}",
                        diff(&after, &t)
                    ));
                }
            }
            // Uninstall (directly after an interrupted install on odd runs)
            // restores the tree exactly.
            let o = uninstall_cmd(&r).output().expect("spawn");
            if !o.status.success() {
                failures.push(format!(
                    "{label}: uninstall --purge failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            let t = snapshot(&r);
            if t != before {
                failures.push(format!("{label}: purge left {:?}", diff(&before, &t)));
            }
            let _ = fs::remove_dir_all(&r);
        }
    }
    eprintln!(
        "RESULT install: runs {} killed {} worst {:?}; uninstall: runs {} killed {} worst {:?}; failures {}",
        stats[0].0, stats[0].1, stats[0].2, stats[1].0, stats[1].1, stats[1].2, failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(stats[0].0 >= total && stats[1].0 >= total);
}

fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in b {
        if a.get(k) != Some(v) {
            out.push(format!("+{k} {v}"));
        }
    }
    for (k, v) in a {
        if !b.contains_key(k) {
            out.push(format!("-{k} {v}"));
        }
    }
    out
}

/// The files of a state directory and their contracted modes.
const STATE_MODES: &[(&str, u32)] = &[
    ("credential", 0o600),
    ("install-secret", 0o600),
    ("state.json", 0o600),
    ("status.json", 0o644),
    ("host-id", 0o644),
];

/// After a kill of checkin/run: only known files or temp files of ours,
/// each valid and of its contracted mode; secrets old or new.
fn check_state(d: &Device, old: &BTreeMap<String, Vec<u8>>, label: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let dir = d.state_dir();
    if !dir.exists() {
        return bad;
    }
    if kill::mode(&dir) != 0o700 {
        bad.push(format!("{label}: state dir mode {:o}", kill::mode(&dir)));
    }
    for e in fs::read_dir(&dir).expect("readdir").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        if name.starts_with('.') && name.contains(".tmp.") || name == "lock" {
            continue;
        }
        let Some((_, m)) = STATE_MODES.iter().find(|(n, _)| *n == name) else {
            bad.push(format!("{label}: unexpected file {name}"));
            continue;
        };
        // host-id and status.json may be 0644 or narrower, never wider.
        let have = kill::mode(&p);
        if have & !m != 0 || (name != "host-id" && name != "status.json" && have != *m) {
            bad.push(format!("{label}: {name} mode {have:04o}, contract {m:04o}"));
        }
        let data = fs::read(&p).unwrap_or_default();
        if name.ends_with(".json") {
            if !kill::valid_json(&p) {
                bad.push(format!(
                    "{label}: {name} is not valid JSON: {:?}",
                    String::from_utf8_lossy(&data)
                ));
            }
        } else if data.is_empty()
            || !data.ends_with(b"\n")
            || data.iter().filter(|b| **b == b'\n').count() != 1
        {
            bad.push(format!("{label}: {name} torn: {} bytes", data.len()));
        }
        if name == "credential" || name == "install-secret" || name == "host-id" {
            if let Some(o) = old.get(&name) {
                if *o != data {
                    bad.push(format!("{label}: {name} changed"));
                }
            }
        }
    }
    bad
}

fn state_files(d: &Device) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for (n, _) in STATE_MODES {
        if let Ok(b) = fs::read(d.file(n)) {
            m.insert(n.to_string(), b);
        }
    }
    m
}

#[test]
fn sigkill_checkin_and_run() {
    if skip("sigkill_checkin_and_run") {
        return;
    }
    let total = kill::runs(DEFAULT_RUNS);
    let mut rng = Rng::new(kill::seed("sigkill_checkin_and_run"));
    let scratch = Scratch::new("kill-checkin");
    let pki = make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let token = hub.token(&[]);
    let (code, _, err) = hub.cli(&["set-interval", "--test-mode", "0.2"]);
    assert_eq!(code, 0, "set-interval: {err}");
    let mk = |name: &str| {
        let dir = scratch.path().join(name);
        fs::create_dir_all(&dir).expect("mkdir");
        Device::new(
            &dir,
            &Setup {
                endpoint: &hub.url,
                token: Some(&token),
                host_id: name,
                ca_pem: &pki.ca_cert,
                site: "",
                top: "",
            },
        )
    };
    let with_env = |mut c: Command| {
        c.env("OUTPOST_TEST_MIN_INTERVAL_MS", "50");
        c
    };
    // Reference runs: a first check-in (registration) and a later one.
    let d = mk("ref");
    let t0 = Instant::now();
    let counts_first = kill::count_calls(
        &with_env(d.cmd(&["checkin"])),
        &scratch.path().join("trace-c1"),
    );
    let span = t0.elapsed();
    let counts_later = kill::count_calls(
        &with_env(d.cmd(&["checkin"])),
        &scratch.path().join("trace-c2"),
    );
    eprintln!("first checkin calls {counts_first:?}; later {counts_later:?}");

    let mut failures = Vec::new();
    let mut stats: Vec<(String, usize, usize, Duration)> = Vec::new();
    for (label, counts, registered, cmdname) in [
        ("checkin (registration)", &counts_first, false, "checkin"),
        ("checkin (registered)", &counts_later, true, "checkin"),
        ("run", &counts_later, true, "run"),
    ] {
        let mut n = (0usize, 0usize, Duration::ZERO);
        // Registration and a registered check-in share the 300+ checkin
        // runs; run gets its own 300+.
        let want = if cmdname == "checkin" {
            total / 2
        } else {
            total
        };
        // `run` never ends by itself: kill points over several check-ins.
        let span = if cmdname == "run" {
            Duration::from_millis(1500)
        } else {
            span
        };
        for (i, at) in kill::plan(counts, want, span, &mut rng).iter().enumerate() {
            let lab = format!("{label} {i} ({at})");
            let dev = mk(&format!("d-{}-{i}", label.len()));
            if registered {
                ok(
                    with_env(dev.cmd(&["checkin"])),
                    &format!("{lab}: first checkin"),
                );
            }
            let old = state_files(&dev);
            let (killed, took) = kill::kill(&with_env(dev.cmd(&[cmdname])), at);
            n.0 += 1;
            n.1 += usize::from(killed);
            n.2 = n.2.max(took);
            failures.extend(check_state(&dev, &old, &lab));
            // The next run succeeds and leaves no temp file behind.
            let o = with_env(dev.cmd(&["checkin"])).output().expect("spawn");
            if !o.status.success() {
                failures.push(format!(
                    "{lab}: next checkin: {} {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            let t = kill::temps(&dev.state_dir());
            if !t.is_empty() {
                failures.push(format!("{lab}: temp files after the next run: {t:?}"));
            }
            failures.extend(check_state(
                &dev,
                &state_files(&dev),
                &format!("{lab} after next run"),
            ));
            let _ = fs::remove_dir_all(dev.root.parent().expect("parent"));
        }
        stats.push((label.to_string(), n.0, n.1, n.2));
    }
    for (l, runs, killed, worst) in &stats {
        eprintln!("RESULT {l}: runs {runs} killed {killed} worst {worst:?}");
    }
    eprintln!("RESULT failures {}", failures.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
