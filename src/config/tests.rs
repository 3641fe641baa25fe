//! Unit tests of config loading (kept apart: they are long tables).
use super::values_api::*;
use super::*;

fn load_with(text: &str, env: &[(&str, &str)], sets: &[(&str, &str)]) -> Loaded {
    let root = Root::new("/nonexistent-root");
    let opts = Options {
        root: &root,
        file: None,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        sets: sets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    load_text(Path::new("ud"), Some(text.as_bytes()), &opts)
}

/// (label, environment, --set pairs, wanted httpsProxy, wanted source).
type PrecedenceCase<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str)],
    &'a str,
    Source,
);

#[test]
fn precedence_per_layer() {
    let file = "#cloud-config\nstylus:\n  site:\n    network:\n      httpsProxy: http://file:1\noutpost:\n  logLevel: info\n";
    let cases: &[PrecedenceCase] = &[
        (
            "file beats proxy env",
            &[("HTTPS_PROXY", "http://std:1")],
            &[],
            "http://file:1",
            Source::File,
        ),
        (
            "OUTPOST env beats file",
            &[("OUTPOST_NETWORK_HTTPS_PROXY", "http://op:1")],
            &[],
            "http://op:1",
            Source::Env("OUTPOST_NETWORK_HTTPS_PROXY".into()),
        ),
        (
            "flag beats env",
            &[("OUTPOST_NETWORK_HTTPS_PROXY", "http://op:1")],
            &[("stylus.site.network.httpsProxy", "http://flag:1")],
            "http://flag:1",
            Source::Flag,
        ),
    ];
    for (label, env, sets, want, src) in cases {
        let l = load_with(file, env, sets);
        assert!(l.problems.is_empty(), "{label}: {:?}", l.problems);
        assert_eq!(
            l.config.https_proxy.value.as_ref().map(|p| p.as_given()),
            Some(*want),
            "case {label}"
        );
        assert_eq!(l.config.https_proxy.source, *src, "case {label}");
    }
    // Proxy env fills what the file leaves unset, with the one precedence
    // of `ProxyEnv`: lower case before upper case, `all_proxy` after the
    // scheme's own variable.
    let given = |v: &Val<Option<crate::proxy::ProxyUrl>>| {
        (
            v.value.as_ref().map(|p| p.as_given().to_string()),
            v.source.clone(),
        )
    };
    let env = |n: &str| Source::Env(n.into());
    let l = load_with(
        "#cloud-config\n",
        &[
            ("http_proxy", "http://lower:1"),
            ("HTTP_PROXY", "http://upper:1"),
            ("ALL_PROXY", "http://all:1"),
        ],
        &[],
    );
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    assert_eq!(
        given(&l.config.http_proxy),
        (Some("http://lower:1".into()), env("http_proxy"))
    );
    assert_eq!(
        given(&l.config.https_proxy),
        (Some("http://all:1".into()), env("ALL_PROXY"))
    );
    // socks5 is refused when the configuration is read (exit 3), wherever
    // it comes from, not later by the transport.
    for (envs, file) in [
        (&[("HTTPS_PROXY", "socks5://p:1080")][..], "#cloud-config\n"),
        (
            &[][..],
            "#cloud-config\nstylus:\n  site:\n    network:\n      httpsProxy: socks5://p:1080\n",
        ),
    ] {
        let l = load_with(file, envs, &[]);
        assert_eq!(l.problems.len(), 1, "{:?}", l.problems);
        assert!(
            l.problems[0].contains("scheme socks5:// is not supported"),
            "{:?}",
            l.problems
        );
    }
}

#[test]
fn airgap_means_local_and_debug_sets_level() {
    let l = load_with(
        "#cloud-config\nstylus:\n  installationMode: airgap\n  debug: true\n",
        &[],
        &[],
    );
    assert_eq!(l.config.management_mode.value, Mode::Local);
    assert_eq!(l.config.management_mode.source, Source::File);
    assert_eq!(l.config.log_level.value, "debug");
    assert!(
        l.incomplete.is_empty(),
        "local mode needs no endpoint: {:?}",
        l.incomplete
    );
    let l = load_with(
        "#cloud-config\nstylus:\n  installationMode: airgap\n  managementMode: central\n",
        &[],
        &[],
    );
    assert_eq!(
        l.config.management_mode.value,
        Mode::Central,
        "explicit managementMode wins"
    );
}

#[test]
fn endpoints() {
    let cases: &[(&str, bool)] = &[
        ("api.spectrocloud.com", true),
        ("palette.corp.example:8443", true),
        ("https://palette.corp.example", true),
        ("https://palette.corp.example:8443/v1", true),
        ("10.0.0.5", true),
        ("http://palette.corp.example", false),
        ("ftp://x", false),
        ("palette corp", false),
        ("https://", false),
        ("host:0", false),
        ("-bad-.example", false),
        ("https://user:pw@palette.example", false),
        ("user:pw@palette.example", false),
    ];
    for (e, ok) in cases {
        assert_eq!(
            check_endpoint(e).is_ok(),
            *ok,
            "endpoint {e:?}: {:?}",
            check_endpoint(e)
        );
    }
}

#[test]
fn no_proxy_entries() {
    let cases: &[(&str, bool)] = &[
        ("*", true),
        ("localhost", true),
        (".corp.example", true),
        ("*.corp.example", true),
        ("10.0.0.0/8", true),
        ("fd00::/8", true),
        ("::1", true),
        ("registry.example:5000", true),
        ("10.0.0.0/33", false),
        ("fd00::/129", false),
        ("bad host", false),
        ("http://x", false),
        ("a..b", false),
    ];
    for (e, ok) in cases {
        assert_eq!(
            check_no_proxy(e).is_ok(),
            *ok,
            "noProxy {e:?}: {:?}",
            check_no_proxy(e)
        );
    }
}

#[test]
fn proxy_passwords_are_masked() {
    let cases = [
        ("http://proxy:3128", "http://proxy:3128"),
        ("http://user:hunter2@proxy:3128", "http://****@proxy:3128"),
        ("http://user@proxy:3128/x", "http://****@proxy:3128/x"),
        ("user:pw@proxy:3128", "****@proxy:3128"),
        // An unencoded / ? # or @ in the password must not cut it short.
        ("http://u:pa/ss?w#o@rd@proxy:3128", "http://****@proxy:3128"),
    ];
    for (input, want) in cases {
        assert_eq!(redact_url(input), want, "url {input}");
    }
}

#[test]
fn ca_certificates() {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBzzCCAXWgAwIBAgIUaaEZKTo5SYh62etWGDMkQNo575kwCgYIKoZIzj0EAwIw\nPTEgMB4GA1UEAwwXRXhhbXBsZSBQYWxldHRlIFRlc3QgQ0ExGTAXBgNVBAoMEG91\ndHBvc3QgZml4dHVyZXMwHhcNMjYxMTI1MTEwODQ3WhcNMzYxMTIyMTEwODQ3WjA9\nMSAwHgYDVQQDDBdFeGFtcGxlIFBhbGV0dGUgVGVzdCBDQTEZMBcGA1UECgwQb3V0\ncG9zdCBmaXh0dXJlczBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEeauWa+gwx/\nLO0CVg+z+C56va3tIrRqTafcoA/mnnjLTu6KOFBY/nd0ubrOfO76Z93Lck5t8IAi\nXE4wMpuVrT6jUzBRMB0GA1UdDgQWBBT1WbtY4peblX9u7i6iIAY8RAk3FjAfBgNV\nHSMEGDAWgBT1WbtY4peblX9u7i6iIAY8RAk3FjAPBgNVHRMBAf8EBTADAQH/MAoG\nCCqGSM49BAMCA0gAMEUCIQCHf4GrJNIgZUX83CqU89I0qLoVxGVVIQBAw+00mjn5\nowIgNU3RcQeWiv2IoEjRWorZvJZNjg680cqAcGnDKmEPjrI=\n-----END CERTIFICATE-----\n";
    let der_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let one = parse_ca(pem).expect("PEM");
    assert_eq!(one.len(), 1);
    let two = parse_ca(&format!("{pem}{pem}")).expect("PEM bundle");
    assert_eq!(two.len(), 2, "a bundle gives every certificate");
    let from_der = parse_ca(&der_b64).expect("base64 DER");
    assert_eq!(from_der, one, "base64 of DER");
    let cases: &[(&str, &str)] = &[
        (
            "",
            "neither PEM nor base64 (expected \"-----BEGIN CERTIFICATE-----\" or base64 text)",
        ),
        (
            "bm90IGEgY2VydA==",
            "decodes, but is not an X.509 certificate",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
            "a PEM block without its END line",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "no CERTIFICATE block in the PEM text",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            parse_ca(input).map(|_| ()),
            Err(want.to_string()),
            "input {input:?}"
        );
    }
}

#[test]
fn every_read_key_is_shown() {
    let l = load_with("#cloud-config\n", &[], &[]);
    let shown: Vec<&str> = l.config.entries().iter().map(|e| e.key).collect();
    for k in shown_keys() {
        assert!(shown.contains(&k), "{k} missing from config show");
    }
}

#[test]
fn tags_from_file() {
    let t = |d: &str, s: &str| TagsFromFile {
        file_name: "/etc/palette/tags.txt".into(),
        delimiter: d.into(),
        separator: s.into(),
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let cases = [
        (
            "platform example",
            t(";", ":"),
            "Location:Mumbai,India; Latitude:48.856614; Longitude:2.352221; owner:p78125d\n",
            pairs(&[
                ("Location", "Mumbai,India"),
                ("Latitude", "48.856614"),
                ("Longitude", "2.352221"),
                ("owner", "p78125d"),
            ]),
        ),
        (
            "defaults: lines and colons",
            t("\n", ":"),
            "a: 1\nb:2:3\n\nnosep\n: novalue\n",
            pairs(&[("a", "1"), ("b", "2:3")]),
        ),
        (
            "multi-char separator",
            t(",", "=>"),
            "k=>v, x => y",
            pairs(&[("k", "v"), ("x", "y")]),
        ),
    ];
    for (label, tff, text, want) in cases {
        assert_eq!(tff.parse(text), want, "case {label}");
    }
}

#[test]
fn the_table_drives_every_key() {
    use keys::{Read, KEYS};
    // The defaults are the table's own text, read like any value.
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut ctx = read::Ctx {
        problems: &mut problems,
        warnings: &mut warnings,
        file: "defaults",
    };
    let mut cfg = Config::default();
    for key in KEYS {
        if let (Read::Value(f), false) = (key.read, key.default.is_empty()) {
            let raw = Raw {
                node: node::Node::Str(key.default.into()),
                source: Source::Default,
                at: key.path.into(),
            };
            f(&mut cfg, &raw, &mut ctx);
        }
    }
    assert!(problems.is_empty(), "table defaults: {problems:?}");
    let d = Config::default();
    assert_eq!((d.interval_min.value, d.interval_max.value), (60, 3600));
    assert_eq!(d.prefix.value, "edge");
    assert_eq!(d.state_dir.value, crate::paths::DEFAULT_STATE_DIR);
    assert_eq!(d.management_mode.value, Mode::Central);
    assert_eq!(d.log_level.value, "warn");
    assert_eq!(d.interval_min.source, Source::Default);
    for key in KEYS {
        // A variable or a flag reaches a key only through its reader.
        if key.env.is_some() {
            assert!(
                matches!(key.read, Read::Value(_)),
                "{}: env but no reader",
                key.path
            );
        }
        // Every key outpost acts on is read: by itself, or by its group.
        let leaf = !matches!(key.ty, Ty::Object | Ty::ObjList | Ty::Ignored);
        let parent = key
            .path
            .rsplit_once('.')
            .map(|(p, _)| p.trim_end_matches("[]"));
        let grouped = parent
            .and_then(keys::lookup)
            .is_some_and(|p| matches!(p.read, Read::File(_)));
        if leaf {
            assert!(
                matches!(key.read, Read::Value(_)) || grouped,
                "{}: nothing reads it",
                key.path
            );
        }
    }
}

#[test]
fn a_file_only_key_is_refused_on_the_command_line() {
    let l = load_with(
        "#cloud-config\n",
        &[],
        &[("stylus.site.tagsFromFile.fileName", "/x")],
    );
    assert_eq!(
        l.problems,
        ["--set stylus.site.tagsFromFile.fileName: read from the config file only"]
    );
}

#[test]
fn no_proxy_is_parsed_once_into_the_transports_type() {
    let l = load_with(
        "#cloud-config\nstylus:\n  site:\n    network:\n      noProxy: [10.0.0.0/8, .corp.example]\n",
        &[],
        &[],
    );
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    let np = &l.config.no_proxy.value;
    assert!(np.matches("10.1.2.3", 443) && np.matches("hub.corp.example", 443));
    assert!(!np.matches("hub.example.net", 443));
    assert_eq!(np.given(), ["10.0.0.0/8", ".corp.example"]);
    let l = load_with(
        "#cloud-config\n",
        &[("no_proxy", "a.example,b.example:8443")],
        &[],
    );
    assert_eq!(
        l.config.no_proxy.value.given(),
        ["a.example", "b.example:8443"]
    );
    assert_eq!(l.config.no_proxy.source, Source::Env("no_proxy".into()));
}
