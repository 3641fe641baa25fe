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

fn check_fixture(name: &str) -> (i32, Vec<(String, String)>, String) {
    let root = fixture(&format!("hosts/{name}"));
    let (code, out, err) = run(outpost().args(["check", "--json", "--root"]).arg(&root));
    assert!(out.ends_with('\n'), "{name}: JSON not newline-terminated");
    (code, statuses(&out), err)
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn fixtures_give_exact_statuses_and_exit_codes() {
    let cases: &[(&str, i32, &[(&str, &str)])] = &[
        ("arm-board-4c8g", 0, &[("arch", "pass"), ("cpu", "pass"), ("memory", "pass")]),
        ("build-machine", 1, &[("arch", "pass"), ("cpu", "fail"), ("memory", "pass")]),
        ("small-2c2g", 1, &[("arch", "pass"), ("cpu", "fail"), ("memory", "fail")]),
        ("garbled", 1, &[("arch", "fail"), ("cpu", "skip"), ("memory", "skip")]),
    ];
    for (name, want_code, want) in cases {
        let (code, got, err) = check_fixture(name);
        assert_eq!(got, pairs(want), "fixture {name}");
        assert_eq!(code, *want_code, "fixture {name} exit code; stderr: {err}");
    }
}

#[test]
fn json_host_facts_come_from_the_root() {
    let root = fixture("hosts/arm-board-4c8g");
    let (code, out, _) = run(outpost().args(["check", "--json", "--root"]).arg(&root));
    assert_eq!(code, 0);
    for want in [
        "\"schema\":\"outpost.check/v1\"",
        "\"arch\":\"aarch64\"",
        "\"hostname\":\"pi-edge-01\"",
        "\"kernel\":\"5.15.0-1046-raspi\"",
        "\"cpus\":4",
        "\"memory_bytes\":8190390272",
        "\"pretty_name\":\"Ubuntu 22.04.4 LTS\"",
        "\"summary\":{\"pass\":3,\"warn\":0,\"fail\":0,\"skip\":0,\"ok\":true}",
    ] {
        assert!(out.contains(want), "missing {want} in {out}");
    }
}

#[test]
fn text_output_is_aligned_and_has_a_summary() {
    let root = fixture("hosts/small-2c2g");
    let (code, out, _) = run(outpost().args(["check", "--root"]).arg(&root));
    assert_eq!(code, 1);
    let want = "\
outpost check: kiosk-7 (x86_64, Debian GNU/Linux 12 (bookworm))

  FAIL  cpu     2 online  (need >= 4 CPUs)
                hint: give the host (or VM) at least 4 CPU cores
  FAIL  memory  1.8 GiB   (need 4 GB (MemTotal >= 3.5 GiB))
                hint: the host needs at least 4 GB of memory

0 pass, 0 warn, 2 fail, 0 skip: host is NOT fit
";
    let (code2, out2, _) = run(outpost().args(["check", "--skip", "arch", "--root"]).arg(&root));
    assert_eq!(code2, 1);
    assert_eq!(out2, want);
    assert!(out.contains("  PASS  arch    x86_64"), "{out}");
    assert!(!out.contains('\x1b'), "colour on a pipe: {out}");
}

#[test]
fn only_and_skip_select_checks() {
    let root = fixture("hosts/small-2c2g");
    // Only the passing check: exit 0.
    let (code, out, _) = run(outpost().args(["check", "--json", "--only", "arch", "--root"]).arg(&root));
    assert_eq!(code, 0, "{out}");
    assert_eq!(statuses(&out), pairs(&[("arch", "pass")]));
    let (code, out, _) = run(
        outpost()
            .args(["check", "--json", "--skip", "cpu,memory", "--root"])
            .arg(&root),
    );
    assert_eq!(code, 0);
    assert_eq!(statuses(&out), pairs(&[("arch", "pass")]));
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["check", "--frobnicate"], "outpost: check: unknown flag --frobnicate; see 'outpost check --help'\n"),
        (&["check", "--only", "nope"], "outpost: --only: unknown check ID \"nope\" (known: arch, cpu, memory)\n"),
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
    let (code, out, _) = run(outpost().args(["check", "--json", "--root"]).arg(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        statuses(&out),
        pairs(&[("arch", "skip"), ("cpu", "skip"), ("memory", "skip")])
    );
    assert_eq!(code, 0, "nothing failed, so exit 0; the skips carry the reasons");
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(outpost().arg("--help"));
    assert_eq!(code, 0);
    assert!(out.starts_with("outpost: bring an existing Linux host"), "{out}");
    let (code, out, _) = run(outpost().args(["check", "--help"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("outpost check:"), "{out}");
    let (code, out, _) = run(outpost().args(["--version", "--json"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("{\"schema\":\"outpost.version/v1\",\"version\":\""), "{out}");
    let target = if cfg!(target_arch = "aarch64") { "aarch64-" } else { "x86_64-" };
    assert!(out.contains(&format!("\"target\":\"{target}")), "{out}");
}
