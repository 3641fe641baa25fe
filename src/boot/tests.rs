use super::*;
use crate::checks::test_support::facts;
use crate::facts::cpu::OnlineCpus;
use crate::facts::mem::MemInfo;

fn beacon() -> Beacon {
    Beacon {
        schema: SCHEMA.into(),
        agent_version: "0.1.0".into(),
        boot_id: "0f5c2d8e-1111-4222-8333-944455556666".into(),
        boot_count: 3,
        generator: "dracut".into(),
        stage: "pre-pivot".into(),
        uptime_ms: 4210,
        written_at: Some("2026-12-06T04:00:00Z".into()),
        clock_valid: true,
        cmdline: parse_cmdline("BOOT_IMAGE=/vmlinuz root=LABEL=outpost-root ro ip=dhcp rd.neednet=1 outpost.boot.checkin=1 password=hunter2"),
        cpus: Some(4),
        memory_bytes: Some(4 << 30),
        root: RootDev {
            device: Some("/dev/disk/by-label/outpost-root".into()),
            present: true,
            mounted_at: Some("/sysroot".into()),
            read_only: Some(true),
        },
        network: true,
        installed: true,
        registered: true,
        checks: vec![BootCheck {
            id: "memory".into(),
            status: "pass".into(),
            observed: "4.0 GiB".into(),
        }],
        checkin: EarlyCheckin {
            wanted: true,
            result: "ok".into(),
            code: Some(0),
            message: String::new(),
            elapsed_ms: 812,
        },
        reasons: vec![Reason {
            id: "read-only-root".into(),
            detail: "x".into(),
        }],
        reported_by: String::new(),
    }
}

#[test]
fn beacon_json_has_every_documented_field_and_round_trips() {
    let b = beacon();
    let text = b.to_json();
    assert!(text.ends_with('\n'), "one line with a newline");
    for field in [
        r#""schema":"outpost.boot/v1""#,
        r#""boot_id":"0f5c2d8e-1111-4222-8333-944455556666""#,
        r#""boot_count":3"#,
        r#""generator":"dracut""#,
        r#""stage":"pre-pivot""#,
        r#""uptime_ms":4210"#,
        r#""written_at":"2026-12-06T04:00:00Z""#,
        r#""clock_valid":true"#,
        r#""cmdline":{"root":"LABEL=outpost-root","root_mode":"ro","ip":"dhcp","neednet":true,"outpost":["outpost.boot.checkin=1"]}"#,
        r#""cpus":4"#,
        r#""memory_bytes":4294967296"#,
        r#""root":{"device":"/dev/disk/by-label/outpost-root","present":true,"mounted_at":"/sysroot","read_only":true}"#,
        r#""network":true"#,
        r#""installed":true"#,
        r#""registered":true"#,
        r#""checks":[{"id":"memory","status":"pass","observed":"4.0 GiB"}]"#,
        r#""checkin":{"wanted":true,"result":"ok","code":0,"message":"","elapsed_ms":812}"#,
        r#""reasons":[{"id":"read-only-root","detail":"x"}]"#,
    ] {
        assert!(text.contains(field), "beacon JSON lacks {field}:\n{text}");
    }
    assert!(
        !text.contains("hunter2") && !text.contains("BOOT_IMAGE"),
        "only the boot facts of the command line are kept: {text}"
    );
    assert_eq!(Beacon::parse(&text), Ok(b), "round trip");
}

#[test]
fn beacon_parse_rejects_other_documents() {
    assert!(Beacon::parse("{}").is_err(), "empty object");
    assert!(Beacon::parse("not json").is_err(), "not JSON");
    let other = beacon()
        .to_json()
        .replace("outpost.boot/v1", "outpost.boot/v9");
    assert_eq!(
        Beacon::parse(&other),
        Err("schema \"outpost.boot/v9\", want outpost.boot/v1".to_string())
    );
}

#[test]
fn boot_counter() {
    let c = |id: &str, n: u64| Count {
        schema: COUNT_SCHEMA.into(),
        boot_id: id.into(),
        count: n,
    };
    assert_eq!(next_count(None, "a"), 1, "first boot seen");
    assert_eq!(
        next_count(Some(&c("a", 4)), "b"),
        5,
        "a new boot counts one more"
    );
    assert_eq!(
        next_count(Some(&c("b", 4)), "b"),
        4,
        "the same boot again (hook ran twice)"
    );
    let text = miniserde::json::to_string(&c("x", 7));
    assert_eq!(parse_count(&text), Some(c("x", 7)));
    assert_eq!(
        parse_count(r#"{"schema":"other","boot_id":"x","count":1}"#),
        None
    );
    assert_eq!(parse_count("garbage"), None);
}

#[test]
fn cmdline_facts() {
    let c = parse_cmdline("root=UUID=ABC rw ro quiet ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off outpost.boot.checkin=0 outpost.x=1\n");
    assert_eq!(c.root.as_deref(), Some("UUID=ABC"));
    assert_eq!(c.root_mode.as_deref(), Some("ro"), "the last of ro/rw wins");
    assert_eq!(
        c.ip.as_deref(),
        Some("10.0.2.15::10.0.2.2:255.255.255.0::eth0:off")
    );
    assert!(!c.neednet);
    assert_eq!(c.outpost, vec!["outpost.boot.checkin=0", "outpost.x=1"]);
    assert_eq!(cmdline_checkin(&c), Some(false));
    assert_eq!(
        cmdline_checkin(&parse_cmdline("outpost.boot.checkin=true")),
        Some(true)
    );
    assert_eq!(cmdline_checkin(&parse_cmdline("quiet")), None);
}

#[test]
fn root_device_paths() {
    let cases = [
        (
            "LABEL=outpost-root",
            Some("/dev/disk/by-label/outpost-root"),
        ),
        ("UUID=AB-CD", Some("/dev/disk/by-uuid/ab-cd")),
        (
            "PARTUUID=12345678-02",
            Some("/dev/disk/by-partuuid/12345678-02"),
        ),
        ("PARTLABEL=root", Some("/dev/disk/by-partlabel/root")),
        ("/dev/sda2", Some("/dev/sda2")),
        ("LABEL=../../x", None),
        ("nfs:10.0.0.1:/srv", None),
        ("LABEL=", None),
    ];
    for (root, want) in cases {
        assert_eq!(root_device_path(root).as_deref(), want, "root={root}");
    }
}

#[test]
fn proc_parsers() {
    assert_eq!(parse_uptime_ms("9.27 17.80\n"), Some(9270));
    assert_eq!(parse_uptime_ms("12 1"), Some(12000));
    assert_eq!(parse_uptime_ms("1.5"), Some(1500));
    assert_eq!(parse_uptime_ms(""), None);
    let route = "Iface\tDestination\tGateway \tFlags\n\
                 eth0\t0002000A\t00000000\t0001\n";
    assert!(!has_default_route(route), "no default route");
    let route2 = format!("{route}eth0\t00000000\t0202000A\t0003\n");
    assert!(has_default_route(&route2), "default route");
    assert!(
        !has_default_route("Iface\tDestination\nlo\t00000000\n"),
        "lo is no network"
    );
    let mi = "22 1 8:1 / /sysroot rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
              23 1 8:1 / /root ro,relatime - ext4 /dev/sda1 ro\n\
              24 1 0:5 / /with\\040space ro - tmpfs tmpfs ro\n";
    assert_eq!(mount_read_only(mi, "/sysroot"), Some(false));
    assert_eq!(mount_read_only(mi, "/root"), Some(true));
    assert_eq!(mount_read_only(mi, "/with space"), Some(true));
    assert_eq!(mount_read_only(mi, "/nothing"), None);
}

#[test]
fn boot_check_subset() {
    let dir = std::env::temp_dir().join(format!("outpost-boot-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("proc")).expect("mkdir");
    std::fs::create_dir_all(dir.join("dev/disk/by-label")).expect("mkdir");
    std::fs::write(dir.join("dev/disk/by-label/present"), "").expect("write");
    let root = Root::new(&dir);
    let mut f = facts();
    f.cpus = Ok(OnlineCpus {
        count: 2,
        source: "test",
    });
    f.mem = Ok(MemInfo {
        total_bytes: 8 << 30,
        ..MemInfo::default()
    });
    let cases = [
        (
            "root=LABEL=present ro",
            false,
            Status::Pass,
            "/dev/disk/by-label/present present",
        ),
        (
            "root=LABEL=absent ro",
            false,
            Status::Fail,
            "/dev/disk/by-label/absent missing",
        ),
        (
            "root=LABEL=absent ro",
            true,
            Status::Pass,
            "root=LABEL=absent mounted",
        ),
        (
            "quiet",
            false,
            Status::Skip,
            "no root= on the kernel command line",
        ),
        (
            "root=nfs:1.2.3.4:/x",
            false,
            Status::Skip,
            "root=nfs:1.2.3.4:/x is not a block device",
        ),
    ];
    for (cmdline, mounted, status, observed) in cases {
        std::fs::write(dir.join("proc/cmdline"), cmdline).expect("write");
        let (checks, dev) = checks(&root, &f, mounted);
        let ids: Vec<&str> = checks.iter().map(|c| c.id).collect();
        assert_eq!(
            ids,
            ["cpu", "memory", "rootdev"],
            "the boot subset, in order"
        );
        assert_eq!(
            checks[0].outcome.status,
            Status::Fail,
            "2 CPUs fail as in check"
        );
        assert_eq!(checks[1].outcome.status, Status::Pass, "8 GiB pass");
        let r = &checks[2].outcome;
        assert_eq!(
            (r.status, r.observed.as_str()),
            (status, observed),
            "{cmdline} mounted={mounted}"
        );
        assert_eq!(dev.present, status == Status::Pass, "{cmdline}: present");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn checkin_failures_map_to_reasons() {
    let cases = [
        (10, "cannot resolve host hub.example", true, "dns-failing"),
        (10, "connection refused", true, "hub-down"),
        (10, "connection refused", false, "no-network"),
        (
            10,
            "server certificate not yet valid and the system clock (..) is earlier",
            true,
            "clock-before-build",
        ),
        (11, "HTTP 503", true, "hub-down"),
        (12, "bad JSON", true, "hub-down"),
        (16, "certificate not trusted", true, "tls-untrusted"),
        (3, "no endpoint", true, "config-invalid"),
        (15, "deregistered", true, "checkin-refused"),
        (13, "HTTP 401", true, "checkin-refused"),
    ];
    for (code, msg, net, want) in cases {
        assert_eq!(checkin_reason(code, msg, net), want, "{code} {msg}");
    }
}

#[test]
fn early_request_carries_the_beacon_and_no_inventory() {
    let mut st = crate::state::State::new("edge-1");
    st.inventory_hash = "sha256:abc".into();
    st.desired_tag = "t7".into();
    let mut b = beacon();
    b.checks.push(BootCheck {
        id: "rootdev".into(),
        status: "fail".into(),
        observed: "x".into(),
    });
    let req = early::request(&st, &b);
    assert_eq!(req.host_id, "edge-1");
    assert_eq!(
        req.inventory_hash, "sha256:abc",
        "the hash the hub holds: no inventory resent"
    );
    assert!(req.inventory.is_none());
    assert_eq!(req.desired_tag, "t7");
    assert_eq!(req.health.failing, vec!["rootdev".to_string()]);
    assert!(!req.health.ok);
    assert_eq!(req.boot.as_ref().map(|b| b.boot_count), Some(3));
    let body = crate::proto::encode(&req);
    assert!(
        body.contains(r#""boot":{"schema":"outpost.boot/v1""#),
        "{body}"
    );
}

#[test]
fn oversized_inputs_stay_within_the_protocol_limits() {
    let long = "x".repeat(5000);
    let mut b = beacon();
    b.cmdline = parse_cmdline(&format!(
        "root=LABEL={long} ip={long} {}",
        (0..40)
            .map(|i| format!("outpost.k{i}={long}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    b.root.device =
        root_device_path(b.cmdline.root.as_deref().unwrap_or("")).map(|p| clip(&p, 256));
    for i in 0..40 {
        b.reason(&format!("r{i}"), format!("{long}é"));
    }
    b.checkin.message = clip(&"é".repeat(3000), 1000);
    let st = crate::state::State::new("edge-1");
    let body = crate::proto::encode(&early::request(&st, &b));
    let back: crate::proto::CheckinRequest =
        crate::proto::decode(&body).expect("the hub accepts it");
    let got = back.boot.expect("boot");
    assert_eq!(got.cmdline.outpost.len(), 16);
    assert_eq!(got.reasons.len(), 16, "1 + 15 new reasons");
    assert!(got.cmdline.root.as_deref().is_some_and(|r| r.len() == 256));
    // And the hub refuses a beacon over the limits (another sender).
    let bad = body.replace(r#""stage":"pre-pivot""#, &format!(r#""stage":"{long}""#));
    assert_eq!(
        crate::proto::decode::<crate::proto::CheckinRequest>(&bad).map(|_| ()),
        Err(crate::proto::DecodeError(
            "check-in request: field `boot.stage` is longer than 64 bytes".into()
        ))
    );
}
