//! `outpost check` end to end: the real binary against fixture trees with
//! `--root`, asserting each check's exact status and every exit code that
//! `check` can return.

mod common;
use common::{fixture, outpost, run};

/// Pull `"id":"X",...,"status":"Y"` pairs out of the JSON report.
fn statuses(json: &str) -> Vec<(String, String)> {
    let v: miniserde::json::Value = miniserde::json::from_str(json).expect("valid JSON");
    let miniserde::json::Value::Object(obj) = v else {
        panic!("report is not an object: {json}")
    };
    let Some(miniserde::json::Value::Array(checks)) = obj.get("checks") else {
        panic!("no checks array: {json}")
    };
    checks
        .iter()
        .map(|c| {
            let miniserde::json::Value::Object(c) = c else {
                panic!("check is not an object")
            };
            let s = |k: &str| match c.get(k) {
                Some(miniserde::json::Value::String(s)) => s.clone(),
                other => panic!("{k} missing: {other:?}"),
            };
            (s("id"), s("status"))
        })
        .collect()
}

/// The check IDs in output order.
const IDS: &[&str] = &[
    "arch", "cpu", "memory", "disk", "os", "init", "kernel", "swap", "time", "hostname", "ports",
    "tools", "docker", "space", "root",
];

/// Checks whose verdict comes from the process rather than the root (clock,
/// statvfs, euid): pinned through the `test-hooks` variables, and left out
/// of exact comparisons in a build without them.
const FROM_PROCESS: &[&str] = &["time", "space", "root"];

/// The agent with the clock, statvfs and euid pinned (with `test-hooks`):
/// a clock far after any build, 200 GB free, root.
fn pinned() -> std::process::Command {
    let mut c = outpost();
    c.env("OUTPOST_TEST_NOW", "4000000000")
        .env("OUTPOST_TEST_FREE_BYTES", "200000000000")
        .env("OUTPOST_TEST_EUID", "0");
    c
}

fn check_fixture(name: &str, extra: &[&str]) -> (i32, Vec<(String, String)>, String) {
    let root = fixture(&format!("hosts/{name}"));
    let (code, out, err) = run(pinned()
        .args(["check", "--json"])
        .args(extra)
        .arg("--root")
        .arg(&root));
    assert!(
        out.ends_with('\n'),
        "{name}: JSON not newline-terminated; stderr: {err}"
    );
    (code, deterministic(statuses(&out)), out)
}

fn deterministic(v: Vec<(String, String)>) -> Vec<(String, String)> {
    if cfg!(feature = "test-hooks") {
        v
    } else {
        v.into_iter()
            .filter(|(id, _)| !FROM_PROCESS.contains(&id.as_str()))
            .collect()
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// `"pass fail ..."` in `IDS` order -> (id, status) pairs.
fn expect(statuses: &str) -> Vec<(String, String)> {
    let s: Vec<&str> = statuses.split_whitespace().collect();
    assert_eq!(
        s.len(),
        IDS.len(),
        "expectation {statuses:?} needs one status per check"
    );
    deterministic(pairs(&IDS.iter().copied().zip(s).collect::<Vec<_>>()))
}

#[test]
fn fixtures_give_exact_statuses_and_exit_codes() {
    // arch cpu memory disk os init kernel swap time hostname ports tools docker space root
    let cases: &[(&str, i32, &str)] = &[
        (
            "nvme-laptop",
            0,
            "pass pass pass pass pass pass pass warn pass pass pass pass pass pass pass",
        ),
        (
            "arm-board-4c8g",
            0,
            "pass pass pass warn pass pass pass pass pass pass pass pass pass pass pass",
        ),
        (
            "hdd-server-swap",
            1,
            "pass pass pass fail pass pass warn warn warn pass pass warn pass pass pass",
        ),
        (
            "lvm-luks-ssd",
            0,
            "pass pass pass pass warn pass pass warn pass pass pass pass pass pass pass",
        ),
        (
            "md-raid1-ssd",
            0,
            "pass pass pass pass pass pass pass pass pass pass pass pass pass pass pass",
        ),
        (
            "btrfs-nvme",
            1,
            "pass pass pass pass warn pass pass warn warn pass pass fail pass pass pass",
        ),
        (
            "live-overlay",
            1,
            "pass pass pass warn pass pass pass pass pass pass pass fail pass pass pass",
        ),
        (
            "vm-virtio",
            1,
            "pass pass pass warn pass pass pass pass pass pass fail pass pass pass pass",
        ),
        (
            "small-2c2g",
            1,
            "pass fail fail fail warn pass pass warn pass pass pass fail pass pass pass",
        ),
        (
            "build-machine",
            1,
            "pass fail pass warn warn fail fail pass warn pass pass fail warn pass pass",
        ),
        (
            "garbled",
            1,
            "fail skip skip warn warn skip warn warn warn fail skip skip skip pass pass",
        ),
    ];
    for (name, want_code, want) in cases {
        let (code, got, out) = check_fixture(name, &[]);
        assert_eq!(got, expect(want), "fixture {name}: {out}");
        assert_eq!(code, *want_code, "fixture {name} exit code");
    }
}

#[test]
fn distro_arms_change_verdicts() {
    // (fixture, --distro, check, status without --distro, status with it)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        ("hdd-server-swap", "pxke", "kernel", "warn", "fail"),
        ("hdd-server-swap", "pxke", "tools", "warn", "pass"),
        ("hdd-server-swap", "k3s", "os", "pass", "warn"),
        ("hdd-server-swap", "k3s", "kernel", "warn", "pass"),
        ("hdd-server-swap", "canonical", "os", "pass", "fail"),
        ("hdd-server-swap", "canonical", "tools", "warn", "fail"),
        ("arm-board-4c8g", "canonical", "os", "pass", "fail"),
        ("lvm-luks-ssd", "canonical", "os", "warn", "fail"),
    ];
    for (name, distro, id, before, after) in cases {
        let (_, plain, _) = check_fixture(name, &[]);
        let (_, with, out) = check_fixture(name, &["--distro", distro]);
        let get = |v: &[(String, String)]| v.iter().find(|(i, _)| i == id).map(|(_, s)| s.clone());
        assert_eq!(
            (get(&plain).as_deref(), get(&with).as_deref()),
            (Some(*before), Some(*after)),
            "fixture {name} --distro {distro}, check {id}: {out}"
        );
    }
    // Every arm changes at least one verdict somewhere in this table.
    for arm in ["pxke", "k3s", "canonical"] {
        assert!(
            cases.iter().any(|c| c.1 == arm && c.3 != c.4),
            "--distro {arm} changes nothing"
        );
    }
}

#[test]
fn json_host_facts_come_from_the_root() {
    let cases: &[(&str, &[&str])] = &[
        (
            "arm-board-4c8g",
            &[
                "\"schema\":\"outpost.check/v1\"",
                "\"arch\":\"aarch64\"",
                "\"hostname\":\"pi-edge-01\"",
                "\"kernel\":\"5.15.0-1046-raspi\"",
                "\"cpus\":4",
                "\"memory_bytes\":8190390272",
                "\"pretty_name\":\"Ubuntu 22.04.4 LTS\"",
                "\"root_disk\":{\"device\":\"/dev/mmcblk0\",\"size_bytes\":63864569856,\"rotational\":false,\"kind\":\"mmc\"}",
            ],
        ),
        (
            "lvm-luks-ssd",
            &["\"root_disk\":{\"device\":\"/dev/sda\",\"size_bytes\":500107862016,\"rotational\":false,\"kind\":\"ssd\"}"],
        ),
        (
            "md-raid1-ssd",
            &["\"root_disk\":{\"device\":\"/dev/md0\",\"size_bytes\":238792736768,\"rotational\":false,\"kind\":\"ssd\"}"],
        ),
        (
            "btrfs-nvme",
            &["\"root_disk\":{\"device\":\"/dev/nvme0n1\",\"size_bytes\":512110190592,\"rotational\":false,\"kind\":\"nvme\"}"],
        ),
        (
            "build-machine",
            &["\"root_disk\":{\"device\":\"/dev/vda\",\"size_bytes\":274877906944,\"rotational\":true,\"kind\":\"virtual\"}"],
        ),
        ("live-overlay", &["\"root_disk\":null"]),
    ];
    for (name, wants) in cases {
        let root = fixture(&format!("hosts/{name}"));
        let (_, out, _) = run(pinned().args(["check", "--json", "--root"]).arg(&root));
        for want in *wants {
            assert!(
                out.contains(want),
                "fixture {name}: missing {want} in {out}"
            );
        }
    }
    if cfg!(feature = "test-hooks") {
        let (_, out, _) = run(pinned()
            .args(["check", "--json", "--root"])
            .arg(fixture("hosts/arm-board-4c8g")));
        let want = "\"summary\":{\"pass\":14,\"warn\":1,\"fail\":0,\"skip\":0,\"ok\":true}";
        assert!(out.contains(want), "missing {want} in {out}");
    }
}

#[test]
fn text_output_is_aligned_and_has_a_summary() {
    let root = fixture("hosts/small-2c2g");
    let want = "\
outpost check: kiosk-7 (x86_64, Debian GNU/Linux 12 (bookworm))

  FAIL  cpu     2 online  (need >= 4 CPUs)
                hint: give the host (or VM) at least 4 CPU cores
  FAIL  memory  1.8 GiB   (need 4 GB: MemTotal >= 3.5 GiB)
                hint: the host needs at least 4 GB of memory

0 pass, 0 warn, 2 fail, 0 skip: host is NOT fit
";
    let (code, out, _) = run(pinned()
        .args(["check", "--only", "cpu,memory", "--root"])
        .arg(&root));
    assert_eq!(code, 1);
    assert_eq!(out, want);

    // All fifteen checks: status, ID and observed value each start in one column.
    let (_, out, _) = run(pinned().args(["check", "--root"]).arg(&root));
    assert!(!out.contains('\x1b'), "colour on a pipe: {out}");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| {
            ["  PASS  ", "  WARN  ", "  FAIL  ", "  SKIP  "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert_eq!(lines.len(), IDS.len(), "{out}");
    for (line, id) in lines.iter().zip(IDS) {
        assert_eq!(&line[8..8 + id.len()], *id, "ID column: {line:?}");
        assert!(
            line.as_bytes()[18] != b' ' && &line[16..18] == "  ",
            "observed column: {line:?}"
        );
    }
    assert!(out.contains("  FAIL  disk      sda 16.0 GB SSD"), "{out}");
    assert!(out.ends_with(": host is NOT fit\n"), "{out}");
}

#[test]
fn only_and_skip_select_checks() {
    let root = fixture("hosts/small-2c2g");
    // Only the passing check: exit 0.
    let (code, out, _) = run(outpost()
        .args(["check", "--json", "--only", "arch", "--root"])
        .arg(&root));
    assert_eq!(code, 0, "{out}");
    assert_eq!(statuses(&out), pairs(&[("arch", "pass")]));
    let (code, out, _) = run(outpost()
        .args([
            "check",
            "--json",
            "--only",
            "arch,cpu,init",
            "--skip",
            "cpu",
            "--root",
        ])
        .arg(&root));
    assert_eq!(code, 0);
    assert_eq!(statuses(&out), pairs(&[("arch", "pass"), ("init", "pass")]));
}

#[test]
fn process_facts_come_through_the_hooks() {
    if !cfg!(feature = "test-hooks") {
        return;
    }
    let root = fixture("hosts/md-raid1-ssd");
    // (variable, value, check, status)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("OUTPOST_TEST_NOW", "1000000000", "time", "fail"),
        ("OUTPOST_TEST_FREE_BYTES", "50000000", "space", "fail"),
        ("OUTPOST_TEST_FREE_BYTES", "5000000000", "space", "warn"),
        ("OUTPOST_TEST_EUID", "1000", "root", "warn"),
    ];
    for (var, value, id, want) in cases {
        let (code, out, _) = run(pinned()
            .env(var, value)
            .args(["check", "--json", "--only", id, "--root"])
            .arg(&root));
        assert_eq!(statuses(&out), pairs(&[(id, want)]), "{var}={value}");
        assert_eq!(code, if *want == "fail" { 1 } else { 0 }, "{var}={value}");
    }
}

#[test]
fn fixture_symlinks_are_relative_and_stay_inside() {
    use std::path::{Component, Path, PathBuf};
    fn walk(dir: &Path, host: &Path, count: &mut usize) {
        for e in std::fs::read_dir(dir).expect("read fixture dir") {
            let p = e.expect("entry").path();
            let meta = std::fs::symlink_metadata(&p).expect("lstat");
            if meta.file_type().is_symlink() {
                *count += 1;
                let t = std::fs::read_link(&p).expect("readlink");
                assert!(
                    t.is_relative(),
                    "{} -> {} is absolute",
                    p.display(),
                    t.display()
                );
                // Lexically apply the target to the link's directory; it must not climb out.
                let mut at: PathBuf = p
                    .parent()
                    .expect("parent")
                    .strip_prefix(host)
                    .expect("inside")
                    .to_path_buf();
                for c in t.components() {
                    match c {
                        Component::ParentDir => assert!(
                            at.pop(),
                            "{} -> {} escapes its fixture",
                            p.display(),
                            t.display()
                        ),
                        Component::Normal(n) => at.push(n),
                        _ => {}
                    }
                }
            } else if meta.is_dir() {
                walk(&p, host, count);
            }
        }
    }
    let hosts = fixture("hosts");
    let mut count = 0;
    for e in std::fs::read_dir(&hosts).expect("fixtures") {
        let host = e.expect("entry").path();
        if host.is_dir() {
            walk(&host, &host, &mut count);
        }
    }
    assert!(count > 50, "only {count} symlinks: did git drop them?");
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["check", "--frobnicate"], "outpost: check: unknown flag --frobnicate; see 'outpost check --help'\n"),
        (&["check", "--only", "nope"], "outpost: --only: unknown check ID \"nope\" (known: arch, cpu, memory, disk, os, init, kernel, swap, time, hostname, ports, tools, docker, space, root)\n"),
        (&["check", "--distro", "rke2"], "outpost: check: --distro \"rke2\" is not one of k3s, pxke, canonical\n"),
        (&["check", "--root"], "outpost: check: --root needs a value\n"),
        (&["bogus"], "outpost: unknown command \"bogus\"; see 'outpost --help'\n"),
        (&[], "outpost: no command given; see 'outpost --help'\n"),
    ];
    for (args, want) in cases {
        let (code, out, err) = run(outpost().args(*args));
        assert_eq!(code, 2, "args {args:?}");
        assert_eq!(err, *want, "args {args:?}");
        assert_eq!(out, "", "args {args:?}");
    }
}

#[test]
fn missing_root_skips_rather_than_passes() {
    let dir = std::env::temp_dir().join(format!("outpost-empty-root-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (code, out, _) = run(pinned().args(["check", "--json", "--root"]).arg(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    // An empty tree proves nothing: each check skips or warns with its
    // reason; only the process facts (clock, statvfs, euid) can pass.
    assert_eq!(
        deterministic(statuses(&out)),
        expect("skip skip skip skip warn skip warn skip warn skip skip skip skip pass pass")
    );
    assert_eq!(
        code, 0,
        "nothing failed, so exit 0; the skips carry the reasons"
    );
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(outpost().arg("--help"));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("outpost: bring an existing Linux host"),
        "{out}"
    );
    let (code, out, _) = run(outpost().args(["check", "--help"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("outpost check:"), "{out}");
    let (code, out, _) = run(outpost().args(["--version", "--json"]));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("{\"schema\":\"outpost.version/v1\",\"version\":\""),
        "{out}"
    );
    let target = if cfg!(target_arch = "aarch64") {
        "aarch64-"
    } else {
        "x86_64-"
    };
    assert!(out.contains(&format!("\"target\":\"{target}")), "{out}");
}
