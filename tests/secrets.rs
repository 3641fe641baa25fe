//! The registration token never leaves: every subcommand that exists runs
//! with a token in the config file (and once more in the environment), and
//! the token must not appear in stdout, stderr or any world-readable file
//! under the root: not whole, not base64- or URL-encoded, not either half.
//! To cover a new subcommand, add its arguments to `SUBCOMMANDS`. The
//! device credential (a server secret) is covered against the real hub in
//! tests/checkin_secrets.rs.

mod common;
use common::{leak, outpost, run};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// 64 characters, as the platform's tokens are; with characters that URL
/// encoding changes, so the encoded form differs from the plain one.
const TOKEN: &str = "Zq7+Kx/9mW2=pR4tY6uI8oP0aS3dF5gH7jK9lZ1xC3vB5nM7qW9eR1tY3uI5oP7a";

/// Arguments after `outpost`; `{root}` and `{config}` are filled in.
const SUBCOMMANDS: &[&[&str]] = &[
    &["check", "--root", "{root}"],
    &["check", "--json", "--root", "{root}"],
    &["config", "validate", "{config}"],
    &["config", "validate", "--root", "{root}"],
    &["config", "show", "--root", "{root}"],
    &["config", "show", "--json", "--root", "{root}"],
    &["config", "show", "--config", "{config}", "-vvv"],
    &["id", "--root", "{root}"],
    &["id", "--root", "{root}", "-vvv"],
    &["--help"],
    &["--version"],
    &["--version", "--json"],
    &["help", "config"],
    &["help", "id"],
    // Loopback port 1: the register is refused at once (exit 10), nothing
    // leaves the machine; run ends at once on a permanent code (13).
    &[
        "checkin",
        "--root",
        "{root}",
        "-vvv",
        "--set",
        "stylus.site.paletteEndpoint=127.0.0.1:1",
    ],
    &[
        "checkin",
        "--splay",
        "0",
        "--root",
        "{root}",
        "--set",
        "stylus.site.paletteEndpoint=127.0.0.1:1",
    ],
    &[
        "run",
        "--root",
        "{root}",
        "-vvv",
        "--set",
        "stylus.site.paletteEndpoint=127.0.0.1:1",
        "--set",
        "stylus.site.disableAutoRegister=true",
    ],
    &["status", "--root", "{root}"],
    &["status", "--json", "--root", "{root}", "-vvv"],
    &["help", "checkin"],
];

fn assert_clean(label: &str, what: &str, text: &str) {
    leak::assert_clean(label, what, text, &[("token", TOKEN)]);
}

fn setup(tag: &str, token_in_file: bool) -> (PathBuf, PathBuf) {
    let root = std::env::temp_dir().join(format!("outpost-secrets-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let etc = root.join("etc/outpost");
    std::fs::create_dir_all(&etc).expect("mkdir");
    let token_line = if token_in_file {
        format!("    edgeHostToken: \"{TOKEN}\"\n")
    } else {
        String::new()
    };
    let cfg = etc.join("user-data");
    std::fs::write(
        &cfg,
        format!("#cloud-config\nstylus:\n  site:\n    paletteEndpoint: api.example.com\n{token_line}    name: \"$random\"\n"),
    )
    .expect("write config");
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    (root, cfg)
}

fn run_all(label: &str, root: &Path, cfg: &Path, env_token: bool) {
    for args in SUBCOMMANDS {
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{root}", &root.display().to_string())
                    .replace("{config}", &cfg.display().to_string())
            })
            .collect();
        let mut cmd = outpost();
        cmd.args(&args);
        if env_token {
            cmd.env("OUTPOST_EDGE_HOST_TOKEN", TOKEN);
        }
        let (code, out, err) = run(&mut cmd);
        let label = format!("{label}: outpost {}", args.join(" "));
        assert!(code >= 0, "{label}: killed by a signal");
        assert_clean(&label, "stdout", &out);
        assert_clean(&label, "stderr", &err);
    }
    for f in leak::world_readable_files(root) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).expect("read")).into_owned();
        assert_clean(
            label,
            &format!("world-readable file {}", f.display()),
            &text,
        );
    }
}

#[test]
fn token_never_leaves_from_the_file() {
    let (root, cfg) = setup("file", true);
    // The token is really there and really used: show reports its length.
    let (code, out, _) = run(outpost().args(["config", "show", "--config"]).arg(&cfg));
    assert_eq!(code, 0);
    assert!(out.contains("****(len 64)"), "{out}");
    run_all("token in file", &root, &cfg, false);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn token_never_leaves_from_the_environment() {
    let (root, cfg) = setup("env", false);
    let (code, out, _) = run(outpost()
        .args(["config", "show", "--config"])
        .arg(&cfg)
        .env("OUTPOST_EDGE_HOST_TOKEN", TOKEN));
    assert_eq!(code, 0);
    assert!(
        out.contains("****(len 64)") && out.contains("env OUTPOST_EDGE_HOST_TOKEN"),
        "{out}"
    );
    run_all("token in env", &root, &cfg, true);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn token_in_a_broken_file_is_not_echoed() {
    let (root, cfg) = setup("broken", false);
    // A wrong type, a typo'd key, and the token as the password of URLs; a
    // syntax error would stop before these checks, so the file parses.
    std::fs::write(
        &cfg,
        format!("#cloud-config\nstylus:\n  site:\n    edgeHostToken: [\"{TOKEN}\"]\n    edgeHostTokn: \"{TOKEN}\"\n    paletteEndpoint: \"https://user:{TOKEN}@api.example.com\"\n    registrationURL: \"user:{TOKEN}@reg.example.com\"\n    network:\n      httpsProxy: \"ftp://user:{TOKEN}@proxy:1\"\n"),
    )
    .expect("write");
    let (code, out, err) = run(outpost().args(["config", "validate"]).arg(&cfg));
    assert_eq!(code, 3, "{err}");
    for want in [
        "edgeHostToken: expected a string, found a list",
        "edgeHostTokn: unknown key",
        "paletteEndpoint: endpoint \"https://****@api.example.com\" must not hold user:password@",
        "registrationURL: \"****@reg.example.com\" is not a URL",
        "httpsProxy: proxy URL ftp://****@proxy:1: scheme ftp:// is not supported",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    assert_clean("broken file", "stdout", &out);
    assert_clean("broken file", "stderr", &err);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_forms_are_distinct_and_found() {
    // Guard against a test that cannot fail: each form must be detectable.
    for (form, needle) in leak::forms(TOKEN) {
        assert!(needle.len() >= 20, "{form} too short to be meaningful");
        let text = format!("prefix {needle} suffix");
        assert!(
            std::panic::catch_unwind(|| assert_clean("self-test", "text", &text)).is_err(),
            "{form} not caught"
        );
    }
}
