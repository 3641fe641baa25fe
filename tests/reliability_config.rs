//! Hostile user-data files: many keys, deep nesting (block, list markers,
//! flow), a late duplicate among many keys, thousands of unknown keys,
//! alias expansion ("billion laughs"), a huge scalar. Each gives its clear
//! problem line(s) and exit 3; the problem list is capped. How long each
//! takes is measured in docs/RELIABILITY.md, not asserted here.

mod common;
use common::fault::Scratch;
use common::{outpost, run};

fn validate(dir: &std::path::Path, name: &str, text: &str) -> (i32, String) {
    let (code, out, err) = validate_out(dir, name, text);
    assert_eq!(out, "", "{name}: stdout");
    (code, err)
}

/// `config validate` on `text`: exit code, stdout and stderr with the
/// file's path replaced by FILE.
fn validate_out(dir: &std::path::Path, name: &str, text: &str) -> (i32, String, String) {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    let (code, out, err) = run(outpost().args(["config", "validate"]).arg(&p));
    let file = p.display().to_string();
    (code, out.replace(&file, "FILE"), err.replace(&file, "FILE"))
}

#[test]
fn hostile_user_data_is_refused_with_one_clear_line() {
    let s = Scratch::new("cfg-hostile");
    let d = s.path();
    let many: String = (0..40_000).map(|i| format!("k{i}: {i}\n")).collect();
    let block_deep: String = (0..100)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let cases: Vec<(&str, String, String)> = vec![
        (
            "40k keys",
            format!("#cloud-config\n{many}"),
            "error: FILE: line 10002: more than 10000 keys; user-data holds a few tens\n".into(),
        ),
        (
            "100k flow levels",
            format!("#cloud-config\na: {}{}\n", "[".repeat(100_000), "]".repeat(100_000)),
            "error: FILE: line 2: nested more than 64 levels deep; user-data is a shallow map\n".into(),
        ),
        (
            "100 block levels",
            format!("#cloud-config\n{block_deep}"),
            "error: FILE: line 66: nested more than 64 levels deep; user-data is a shallow map\n".into(),
        ),
        (
            "100 list markers on one line",
            format!("#cloud-config\na:\n  {}x\n", "- ".repeat(100)),
            "error: FILE: line 3: nested more than 64 levels deep; user-data is a shallow map\n".into(),
        ),
        (
            "alias bomb",
            "#cloud-config\na: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
                .to_string(),
            String::new(),
        ),
    ];
    for (label, text, want) in cases {
        let (code, err) = validate(d, "u.yaml", &text);
        assert_eq!(code, 3, "{label}: {err}");
        if want.is_empty() {
            assert!(
                err.contains("aliases") || err.contains("repetition"),
                "{label}: {err}"
            );
        } else {
            assert!(err.starts_with(&want), "{label}: {err}");
        }
        assert_eq!(
            err.lines().count(),
            2,
            "{label}: one problem and the summary: {err}"
        );
    }

    // A duplicate far down a long map is still found (the check is a set).
    let mut text = String::from("#cloud-config\nstylus:\n  site:\n    tags:\n");
    for i in 0..5000 {
        text.push_str(&format!("      t{i}: v\n"));
    }
    text.push_str("      t17: again\n");
    let (code, err) = validate(d, "dup.yaml", &text);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("duplicate key \"t17\""), "{err}");

    // Thousands of unknown keys under `outpost:` (errors): 50 problem lines,
    // then one counting the rest.
    let mut text = String::from("#cloud-config\noutpost:\n");
    for i in 0..5000 {
        text.push_str(&format!("  unknown{i}: 1\n"));
    }
    let (code, err) = validate(d, "unknown.yaml", &text);
    assert_eq!(code, 3, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() < 60, "capped: {} lines", lines.len());
    assert!(
        lines
            .iter()
            .any(|l| l.contains("... and 4950 more problems not shown")),
        "{err}"
    );

    // Thousands of unknown `stylus:` keys are warnings (the platform does not
    // reject them): valid, but the warnings are capped the same way.
    let mut text = String::from("#cloud-config\nstylus:\n  managementMode: local\n");
    for i in 0..5000 {
        text.push_str(&format!("  unknown{i}: 1\n"));
    }
    let (code, out, err) = validate_out(d, "unknown-stylus.yaml", &text);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "FILE: valid (51 warning(s))\n");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() < 60, "warnings capped: {} lines", lines.len());
    assert!(
        lines
            .iter()
            .any(|l| l.contains("... and 4950 more warnings not shown")),
        "{err}"
    );

    // A 900 KB scalar is a value like any other (within the 1 MiB limit).
    let text = format!(
        "#cloud-config\nstylus:\n  site:\n    name: {}\n",
        "x".repeat(900_000)
    );
    let (code, err) = validate(d, "scalar.yaml", &text);
    assert_eq!(code, 3, "{err}");
    assert!(err.lines().count() <= 4, "{err}");
}
