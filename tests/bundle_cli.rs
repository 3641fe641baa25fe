//! `outpost bundle` end to end: a registered device (real hub on loopback,
//! a proxy password in its config and in HTTPS_PROXY, an install secret in
//! its state directory) writes a bundle; the bundle is 0600, unpacks with
//! Debian's tar, holds the documented items, and the leak scan of
//! tests/common/leak.rs finds no form of the token, the credential, the
//! install secret or the proxy password in any of its files.

mod common;
use common::agent::{Device, Setup};
use common::fault::Scratch;
use common::hub::Hub;
use common::leak;
use common::tls::make_pki;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn bundle_holds_the_diagnostics_and_no_secret() {
    let scratch = Scratch::new("bundle");
    let pki = make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let token = hub.token(&[]);
    let dir = scratch.path().join("dev");
    std::fs::create_dir_all(&dir).expect("mkdir");
    // The proxy is never reached (noProxy covers the hub): only its
    // password matters here.
    let site = "    network:\n      httpsProxy: http://agent:Pr0xyPassw0rd@127.0.0.1:9\n      noProxy: [127.0.0.0/8]\n";
    let d = Device::new(
        &dir,
        &Setup {
            endpoint: &hub.url,
            token: Some(&token),
            host_id: "edge-bundle",
            ca_pem: &pki.ca_cert,
            site,
            top: "outpost:\n  timeouts:\n    connect: 2\n    request: 5\n",
        },
    );
    std::fs::write(
        d.root.join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    )
    .expect("os-release");
    let (code, _, err) = d.run(&["checkin"]);
    assert_eq!(code, 0, "checkin: {err}");
    let credential = std::fs::read_to_string(d.file("credential"))
        .expect("credential")
        .trim()
        .to_string();
    let secret = "inst4llS3cretValue0123456789abcdef";
    let sp = d.file("install-secret");
    std::fs::write(&sp, format!("{secret}\n")).expect("install secret");
    std::fs::set_permissions(&sp, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // A last upgrade outcome (what `outpost status` reports) is bundled.
    std::fs::write(
        d.file("upgrade.json"),
        r#"{"schema":"outpost.upgrade/v1","state":"failed","from":"0.1.0","to":"0.9.0","reason":"release manifest of offer 0.9.0: bad signature","code":21,"at":1796542205,"reported":true,"offer_tag":null}"#,
    )
    .expect("upgrade.json");

    let out_file = scratch.path().join("b.tar.gz");
    let (code, out, err) = common::run(
        d.cmd(&["-v", "bundle"])
            .arg("-o")
            .arg(&out_file)
            .env("HTTPS_PROXY", "http://envuser:EnvPr0xyPass@127.0.0.1:9"),
    );
    assert_eq!(code, 0, "bundle: {err}");
    assert_eq!(out.trim(), out_file.display().to_string());
    let mode = std::fs::metadata(&out_file)
        .expect("bundle")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "bundle mode");

    let x = scratch.path().join("x");
    std::fs::create_dir_all(&x).expect("mkdir");
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(&out_file)
        .arg("-C")
        .arg(&x)
        .status()
        .expect("tar");
    assert!(st.success(), "tar -xzf");
    let b = x.join("outpost-bundle");
    for f in [
        "README.txt",
        "version.txt",
        "check.json",
        "check-network.json",
        "config.json",
        "state-dir.txt",
        "state/status.json",
        "state/state.json",
        "state/upgrade.json",
        "files/etc/os-release",
        "proxy-env.txt",
        "errors.txt",
    ] {
        assert!(b.join(f).is_file(), "{f} missing from the bundle");
    }
    assert!(!b.join("state/credential").exists() && !b.join("state/install-secret").exists());
    let listing = std::fs::read_to_string(b.join("state-dir.txt")).expect("listing");
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("0600")
                && l.contains("credential   (secret: content never bundled)")),
        "{listing}"
    );
    assert!(listing.contains("install-secret   (secret"), "{listing}");
    let net = std::fs::read_to_string(b.join("check-network.json")).expect("net");
    assert!(
        net.contains("\"id\":\"net.probe\",\"title\":\"Protocol probe\",\"status\":\"pass\""),
        "{net}"
    );
    let proxy = std::fs::read_to_string(b.join("proxy-env.txt")).expect("proxy");
    assert!(
        proxy.contains("HTTPS_PROXY=http://****@127.0.0.1:9"),
        "{proxy}"
    );

    // The leak scan over every file of the bundle (and the command's output).
    let secrets = [
        ("token", token.as_str()),
        ("credential", credential.as_str()),
        ("install secret", secret),
        ("proxy password", "Pr0xyPassw0rd"),
        ("env proxy password", "EnvPr0xyPass"),
    ];
    leak::assert_clean("bundle", "stdout+stderr", &(out.clone() + &err), &secrets);
    let mut todo = vec![b.clone()];
    let mut n = 0;
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).expect("readdir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&p).expect("read")).into_owned();
                leak::assert_clean("bundle", &p.display().to_string(), &text, &secrets);
                n += 1;
            }
        }
    }
    assert!(n >= 11, "{n} files scanned");

    // A directory that does not exist is one clear line and a failure.
    let bad = scratch.path().join("no/such/dir/b.tar.gz");
    let (code, _, err) = common::run(d.cmd(&["bundle"]).arg("-o").arg(&bad));
    assert_ne!(code, 0);
    assert!(err.starts_with("outpost: creating "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
