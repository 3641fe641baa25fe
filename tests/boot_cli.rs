//! `outpost boot` as the initramfs runs it, against fixture trees: the
//! initramfs (`--root`: /proc, /dev, /run) and the mounted real root
//! (`--sysroot`: config, state). The beacon in /run/outpost/boot.json, the
//! boot counter over two boots, the early check-in against the real hub
//! (read-only: the real root's state is byte for byte unchanged), the hub
//! showing the last boot, the agent's first check-in after boot sending the
//! beacon once and saving the counter, and every failure (hub down, hub
//! stalled past the cap, never installed, clock before the build, no
//! network) leaving exit 0 with the reason in the beacon.

mod common;
use common::agent::{requests, Device, Setup};
use common::fault::Scratch;
use common::hub::Hub;
use common::tls::make_pki;
use std::path::{Path, PathBuf};

const CHK: &str = "/outpost/v1/checkin";
const BOOT_A: &str = "6f1c0b2a-3d4e-4f50-8a61-b7c8d9e0f1a2";
const BOOT_B: &str = "0a9b8c7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d";

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// The initramfs as a tree: the kernel's view at `local-bottom`.
fn initramfs(dir: &Path, boot_id: &str, sysroot: &Path, default_route: bool) -> PathBuf {
    let i = dir.join("initramfs");
    write(
        &i.join("proc/cmdline"),
        "BOOT_IMAGE=/vmlinuz root=LABEL=outpost-root ro ip=dhcp quiet\n",
    );
    write(
        &i.join("proc/sys/kernel/random/boot_id"),
        &format!("{boot_id}\n"),
    );
    write(&i.join("proc/uptime"), "4.21 3.90\n");
    write(
        &i.join("proc/meminfo"),
        "MemTotal:        4307648 kB\nMemFree:         4000000 kB\nMemAvailable:    4100000 kB\n",
    );
    write(&i.join("sys/devices/system/cpu/online"), "0-3\n");
    let mut route =
        String::from("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n");
    route.push_str("eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n");
    if default_route {
        route.push_str("eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\n");
    }
    write(&i.join("proc/net/route"), &route);
    write(
        &i.join("proc/self/mountinfo"),
        &format!(
            "20 1 0:20 / / rw,relatime - rootfs rootfs rw\n31 20 8:1 / {} ro,relatime - ext4 /dev/sda1 ro\n",
            sysroot.display()
        ),
    );
    write(&i.join("dev/disk/by-label/outpost-root"), "");
    i
}

struct World {
    scratch: Scratch,
    hub: Hub,
    dev: Device,
}

/// A registered device whose real root holds its config (as installed).
fn world(name: &str, top: &str) -> World {
    let scratch = Scratch::new(name);
    let pki = make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let token = hub.token(&["--project", "shops"]);
    let dir = scratch.path().join("dev");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let dev = Device::new(
        &dir,
        &Setup {
            endpoint: &hub.url,
            token: Some(&token),
            host_id: "edge-boot-1",
            ca_pem: &pki.ca_cert,
            site: "",
            top,
        },
    );
    let (code, out, err) = dev.run(&["checkin"]);
    assert_eq!(code, 0, "registration: {out}{err}");
    let installed = dev.root.join("etc/outpost/user-data");
    std::fs::copy(&dev.config, &installed).expect("install user-data");
    World { scratch, hub, dev }
}

fn boot(
    initramfs: &Path,
    sysroot: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut c = common::outpost();
    c.arg("boot")
        .arg("--root")
        .arg(initramfs)
        .arg("--sysroot")
        .arg(sysroot)
        .args(["--generator", "dracut", "--stage", "pre-pivot"])
        .args(extra);
    for v in common::agent::PROXY_VARS {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    common::run(&mut c)
}

fn beacon(initramfs: &Path) -> String {
    std::fs::read_to_string(initramfs.join("run/outpost/boot.json")).expect("boot.json written")
}

fn has(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "lacks {n}:\n{text}");
    }
}

const CHECKIN_ON: &str = "outpost:\n  boot:\n    checkin: true\n";

#[test]
fn beacon_early_checkin_counter_and_the_hub() {
    let w = world("boot-early", CHECKIN_ON);
    let sysroot = &w.dev.root;
    let before = w.dev.snapshot();
    let i = initramfs(w.scratch.path(), BOOT_A, sysroot, true);
    let (code, out, err) = boot(&i, sysroot, &[], &[]);
    assert_eq!(code, 0, "boot: {out}{err}");
    assert!(
        err.contains("outpost: boot 1 recorded in /run/outpost/boot.json")
            && err.contains("early check-in: ok"),
        "one console line: {err}"
    );
    let b = beacon(&i);
    has(
        &b,
        &[
            r#""schema":"outpost.boot/v1""#,
            &format!(r#""boot_id":"{BOOT_A}""#),
            r#""boot_count":1"#,
            r#""generator":"dracut","stage":"pre-pivot","uptime_ms":4210"#,
            r#""cmdline":{"root":"LABEL=outpost-root","root_mode":"ro","ip":"dhcp","neednet":false,"outpost":[]}"#,
            r#""cpus":4,"memory_bytes":4411031552"#,
            r#""root":{"device":"/dev/disk/by-label/outpost-root","present":true"#,
            r#""read_only":true"#,
            r#""network":true,"installed":true,"registered":true"#,
            r#"{"id":"rootdev","status":"pass""#,
            r#""checkin":{"wanted":true,"result":"ok","code":0"#,
            r#""id":"read-only-root""#,
        ],
    );
    assert!(
        !b.contains("BOOT_IMAGE") && !b.contains("quiet"),
        "only boot facts of the cmdline: {b}"
    );
    assert_eq!(
        w.dev.snapshot(),
        before,
        "the early check-in wrote nothing to the real root"
    );
    let log = requests(&w.hub.log_lines());
    assert_eq!(
        log.last().map(|(p, s, _)| (p.as_str(), *s)),
        Some((CHK, 200)),
        "{log:?}"
    );
    let (code, devices, err) = w.hub.cli(&["devices", "--json"]);
    assert_eq!(code, 0, "{err}");
    has(
        &devices,
        &[
            r#""last_boot":{"agent_version":"#,
            r#""schema":"outpost.boot/v1""#,
            &format!(r#""boot_id":"{BOOT_A}""#),
            r#""checkin":{"code":null,"elapsed_ms":0,"message":"","result":"pending","wanted":true}"#,
            r#""reported_by":"initramfs""#,
            r#""received":"#,
        ],
    );

    // After switch_root the initramfs's /run is the real root's /run.
    let run = sysroot.join("run/outpost");
    std::fs::create_dir_all(&run).expect("mkdir run");
    std::fs::copy(i.join("run/outpost/boot.json"), run.join("boot.json")).expect("copy beacon");
    let (code, out, err) = w.dev.run(&["checkin"]);
    assert_eq!(code, 0, "agent check-in after boot: {out}{err}");
    let (_, devices, _) = w.hub.cli(&["devices", "--json"]);
    has(
        &devices,
        &[r#""reported_by":"agent""#, r#""result":"ok","wanted":true"#],
    );
    let (_, table, _) = w.hub.cli(&["devices"]);
    has(
        &table,
        &["LAST BOOT", "#1 dracut 4.2s read-only-root,early:ok"],
    );
    assert_eq!(
        std::fs::read_to_string(run.join("boot.reported")).expect("boot.reported"),
        format!("{BOOT_A}\n")
    );
    let count =
        std::fs::read_to_string(w.dev.file("boot-count")).expect("boot-count saved by the agent");
    assert_eq!(
        count,
        format!("{{\"schema\":\"outpost.bootcount/v1\",\"boot_id\":\"{BOOT_A}\",\"count\":1}}\n")
    );
    // Sent once per boot: the next check-in is a steady one again.
    let (code, out, err) = w.dev.run(&["checkin"]);
    assert_eq!(code, 0, "{out}{err}");
    let log = requests(&w.hub.log_lines());
    let last = log.last().expect("a request");
    assert!(
        last.2 <= 512,
        "no beacon in the next check-in: {} bytes",
        last.2
    );

    // Reboot: a new boot ID counts one more; the same boot ID again does not.
    let i2 = initramfs(&w.scratch.path().join("second"), BOOT_B, sysroot, true);
    let (code, out, err) = boot(&i2, sysroot, &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    has(
        &beacon(&i2),
        &[r#""boot_count":2"#, &format!(r#""boot_id":"{BOOT_B}""#)],
    );
    let i3 = initramfs(&w.scratch.path().join("again"), BOOT_A, sysroot, true);
    let (code, out, err) = boot(&i3, sysroot, &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    has(&beacon(&i3), &[r#""boot_count":1"#]);
}

#[test]
fn hub_down_and_hub_stalled_end_within_the_cap_with_a_reason() {
    let w = world("boot-down", CHECKIN_ON);
    let sysroot = w.dev.root.clone();
    let i = initramfs(w.scratch.path(), BOOT_A, &sysroot, true);
    let mut hub = w.hub;
    hub.stop();
    let (code, out, err) = boot(&i, &sysroot, &[], &[]);
    assert_eq!(code, 0, "hub down: {out}{err}");
    let b = beacon(&i);
    has(
        &b,
        &[
            r#""result":"failed","code":10"#,
            r#""id":"hub-down""#,
            "connection refused",
        ],
    );

    // A server that accepts and never answers: killed at the cap.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let cfg = sysroot.join("etc/outpost/user-data");
    let text = std::fs::read_to_string(&cfg).expect("user-data");
    let old = hub.url.clone();
    std::fs::write(
        &cfg,
        text.replace(&old, &format!("https://127.0.0.1:{port}")),
    )
    .expect("rewrite");
    let t0 = std::time::Instant::now();
    let (code, out, err) = boot(&i, &sysroot, &["--cap", "2"], &[]);
    let took = t0.elapsed();
    assert_eq!(code, 0, "stalled hub: {out}{err}");
    assert!(
        took < std::time::Duration::from_secs(30),
        "hang guard: {took:?}"
    );
    let b = beacon(&i);
    assert!(
        b.contains(r#""result":"timeout""#) && b.contains(r#""id":"checkin-timeout""#)
            || b.contains(r#""result":"failed","code":10"#),
        "stopped at the cap or by its own timeout: {b}"
    );
    drop(listener);
}

#[test]
fn without_install_network_or_clock_the_beacon_says_why() {
    let scratch = Scratch::new("boot-bare");
    // Never installed: an empty real root.
    let sysroot = scratch.path().join("sysroot");
    std::fs::create_dir_all(&sysroot).expect("mkdir");
    let i = initramfs(scratch.path(), BOOT_A, &sysroot, false);
    let (code, out, err) = boot(&i, &sysroot, &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let b = beacon(&i);
    has(
        &b,
        &[
            r#""installed":false,"registered":false"#,
            r#""checkin":{"wanted":false,"result":"off""#,
            r#""id":"never-installed""#,
            r#""id":"no-network""#,
        ],
    );
    // The command line asks for the early check-in; the clock is 2001; the
    // root device never appeared (nothing is mounted at the sysroot).
    write(
        &i.join("proc/cmdline"),
        "root=LABEL=gone outpost.boot.checkin=1\n",
    );
    write(
        &i.join("proc/self/mountinfo"),
        "20 1 0:20 / / rw,relatime - rootfs rootfs rw\n",
    );
    let (code, out, err) = boot(&i, &sysroot, &[], &[("OUTPOST_TEST_NOW", "1000000000")]);
    assert_eq!(code, 0, "{out}{err}");
    let b = beacon(&i);
    has(
        &b,
        &[
            r#""written_at":null,"clock_valid":false"#,
            r#""id":"clock-before-build""#,
            r#""id":"root-missing""#,
            r#"{"id":"rootdev","status":"fail","observed":"/dev/disk/by-label/gone missing"}"#,
            r#""checkin":{"wanted":true,"result":"skipped""#,
        ],
    );
    assert!(b.contains(r#""mounted_at":null"#), "{b}");
}

#[test]
fn check_boot_runs_the_subset_and_refuses_only() {
    let scratch = Scratch::new("boot-check");
    let i = initramfs(scratch.path(), BOOT_A, &scratch.path().join("x"), true);
    let mut c = common::outpost();
    c.args(["check", "--boot", "--json", "--root"]).arg(&i);
    let (code, out, err) = common::run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
    has(
        &out,
        &[
            r#""schema":"outpost.check/v1""#,
            r#"{"id":"cpu","title":"CPU cores","status":"pass""#,
            r#"{"id":"memory","title":"Memory","status":"pass""#,
            r#"{"id":"rootdev","title":"Root device","status":"pass","observed":"/dev/disk/by-label/outpost-root present""#,
        ],
    );
    assert!(
        !out.contains(r#""id":"disk""#),
        "only the boot subset: {out}"
    );
    let mut c = common::outpost();
    c.args(["check", "--boot", "--only", "cpu"]);
    let (code, _, err) = common::run(&mut c);
    assert_eq!(code, 2, "usage");
    assert_eq!(
        err.trim(),
        "outpost: check: --boot runs a fixed set (cpu, memory, rootdev); it takes no --only or --skip"
    );
    let mut c = common::outpost();
    c.args(["boot", "--cap", "0"]);
    let (code, _, err) = common::run(&mut c);
    assert_eq!(code, 2, "usage");
    assert_eq!(
        err.trim(),
        "outpost: boot: --cap \"0\" is not a whole number of seconds from 1 to 60"
    );
}
