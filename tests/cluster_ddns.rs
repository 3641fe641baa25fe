//! Dynamic DNS against a real BIND 9 (`named` from Debian's bind9) that the
//! test starts on loopback with a zone and a TSIG key: the agent adds and
//! changes a record, `dig` sees it, an unchanged address sends nothing, and
//! a wrong key gives NOTAUTH and a clear error; `outpost run` keeps the
//! cluster name (control-plane hosts) or a worker's own host name. Needs `named`, `dig`
//! (installed by scripts/test); without them the test fails and says why.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "q0O8wVPEvj1dDcmfxmjbfkQ5D4W9U3ZbkmHuLCEXi7M=";
const WRONG: &str = "Ao5u6LbX6m0ahZ0Q0K5fl0q6E6eR0w3m8Qyl7s1nL0E=";

struct Named {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    // A port free for both UDP and TCP right now.
    for _ in 0..50 {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp bind");
        let port = u.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port");
}

fn named(dir: &Path) -> Named {
    let port = free_port();
    std::fs::write(
        dir.join("example.test.zone"),
        "$TTL 300\n@ IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 60\n@ IN NS ns.example.test.\nns IN A 127.0.0.1\n",
    )
    .expect("zone");
    let d = dir.display();
    std::fs::write(
        dir.join("named.conf"),
        format!(
            "options {{ directory \"{d}\"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};\n  pid-file \"{d}/named.pid\"; recursion no; dnssec-validation no; allow-query {{ any; }}; }};\ncontrols {{ }};\nkey \"outpost-key.\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\nzone \"example.test\" {{ type primary; file \"{d}/example.test.zone\";\n  update-policy {{ grant outpost-key. zonesub A AAAA; }}; }};\n"
        ),
    )
    .expect("named.conf");
    let log = std::fs::File::create(dir.join("named.log")).expect("log");
    let child = Command::new("named")
        .args(["-g", "-c"])
        .arg(dir.join("named.conf"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting named (Debian package bind9; scripts/test installs it)");
    let n = Named {
        child,
        port,
        dir: dir.to_path_buf(),
    };
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        if dig(&n, "example.test", "SOA").contains("ns.example.test.") {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "named did not answer: {}",
        std::fs::read_to_string(dir.join("named.log")).unwrap_or_default()
    );
}

fn dig(n: &Named, name: &str, ty: &str) -> String {
    let out = Command::new("dig")
        .args(["+short", "+time=2", "+tries=1", "@127.0.0.1", "-p"])
        .arg(n.port.to_string())
        .args([name, ty])
        .output()
        .expect("running dig (Debian package bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

struct Agent {
    root: PathBuf,
    cfg: PathBuf,
}

impl Agent {
    fn new(dir: &Path, port: u16, secret: &str) -> Agent {
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("etc/outpost")).expect("root");
        let key = root.join("etc/outpost/ddns.key");
        std::fs::write(
            &key,
            format!(
                "key \"outpost-key.\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n"
            ),
        )
        .expect("key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let cfg = dir.join("user-data");
        std::fs::write(
            &cfg,
            format!(
                "#cloud-config\nstylus:\n  managementMode: local\noutpost:\n  ddns:\n    server: \"127.0.0.1:{port}\"\n    zone: example.test\n    keyName: outpost-key.\n    keyFile: /etc/outpost/ddns.key\n    algorithm: hmac-sha256\n"
            ),
        )
        .expect("user-data");
        Agent { root, cfg }
    }

    fn ddns(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = common::outpost();
        cmd.arg("-v")
            .args(["cluster", "ddns", "--root"])
            .arg(&self.root)
            .arg("--config")
            .arg(&self.cfg)
            .args(args);
        let (code, out, err) = common::run(&mut cmd);
        eprintln!(
            "$ outpost cluster ddns {}\n{out}{err}(exit {code})",
            args.join(" ")
        );
        for s in [SECRET, WRONG] {
            assert!(
                !out.contains(s) && !err.contains(s),
                "the TSIG secret leaked"
            );
        }
        (code, out, err)
    }
}

#[test]
fn rfc2136_updates_against_real_bind() {
    let scratch = common::fault::Scratch::new("ddns");
    let tmp = scratch.path().to_path_buf();
    let n = named(&tmp);
    let agent = Agent::new(&tmp, n.port, SECRET);

    // Add.
    let (code, out, _) = agent.ddns(&["--name", "api.example.test", "--address", "10.0.0.100"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("api.example.test -> 10.0.0.100: updated at 127.0.0.1:"),
        "{out}"
    );
    assert_eq!(dig(&n, "api.example.test", "A"), "10.0.0.100");

    // Same address again: nothing sent.
    let (code, out, _) = agent.ddns(&["--name", "api.example.test", "--address", "10.0.0.100"]);
    assert_eq!(code, 0);
    assert!(out.contains("unchanged"), "{out}");

    // Change: the RRset is replaced, not added to.
    let (code, _, _) = agent.ddns(&["--name", "api.example.test", "--address", "10.0.0.101"]);
    assert_eq!(code, 0);
    assert_eq!(dig(&n, "api.example.test", "A"), "10.0.0.101");

    // IPv6.
    let (code, _, _) = agent.ddns(&["--name", "api.example.test", "--address", "fd00:10::64"]);
    assert_eq!(code, 0);
    assert_eq!(dig(&n, "api.example.test", "AAAA"), "fd00:10::64");
    assert_eq!(dig(&n, "api.example.test", "A"), "10.0.0.101", "A kept");

    // A name outside the zone: refused before sending.
    let (code, _, err) = agent.ddns(&["--name", "api.other.test", "--address", "10.0.0.9"]);
    assert_eq!(code, 3);
    assert!(
        err.contains("api.other.test is not inside zone example.test"),
        "{err}"
    );

    // Wrong key: BIND answers NOTAUTH (BADSIG); exit 3 with a clear line.
    let wrong_dir = tmp.join("wrong");
    std::fs::create_dir_all(&wrong_dir).expect("dir");
    let wrong = Agent::new(&wrong_dir, n.port, WRONG);
    let (code, _, err) = wrong.ddns(&["--name", "api.example.test", "--address", "10.0.0.102"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("DNS update of api.example.test at 127.0.0.1:")
            && err.contains(
                "refused: NOTAUTH (BADSIG): the server does not know this key name or secret"
            ),
        "{err}"
    );
    assert_eq!(
        dig(&n, "api.example.test", "A"),
        "10.0.0.101",
        "record untouched"
    );
    let log = std::fs::read_to_string(n.dir.join("named.log")).unwrap_or_default();
    assert!(
        log.contains("BADSIG") || log.contains("tsig verify failure"),
        "named log:\n{log}"
    );
    // ... and backs off: the next run waits instead of sending.
    let (code, out, _) = wrong.ddns(&["--name", "api.example.test", "--address", "10.0.0.102"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("backing off after 1 failures, next try in"),
        "{out}"
    );

    // A key file others can read is refused (exit 4).
    let key = agent.root.join("etc/outpost/ddns.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, _, err) = agent.ddns(&[
        "--name",
        "api.example.test",
        "--address",
        "10.0.0.103",
        "--force",
    ]);
    assert_eq!(code, 4);
    assert!(
        err.contains("ddns.key: mode 0644, must be 0600 (it holds the TSIG secret)"),
        "{err}"
    );
}

/// The agent's configuration for the test's BIND: server, zone, key name
/// and key file (`ddns_tree` writes it), at this log level.
fn ddns_top(n: &Named, level: &str) -> String {
    format!(
        "outpost:\n  logLevel: {level}\n  ddns:\n    server: \"127.0.0.1:{}\"\n    zone: example.test\n    keyName: outpost-key.\n    keyFile: /etc/outpost/ddns.key\n    algorithm: hmac-sha256\n",
        n.port
    )
}

/// The device's tree for `outpost run` with DDNS: the TSIG key file (0600)
/// and a default route over `lo`, so the address it publishes is 127.0.0.1.
fn ddns_tree(d: &common::agent::Device) {
    let key = d.root.join("etc/outpost/ddns.key");
    std::fs::write(&key, format!("{SECRET}\n")).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::create_dir_all(d.root.join("proc/net")).expect("proc");
    std::fs::write(
        d.root.join("proc/net/route"),
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\nlo\t00000000\t0100007F\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
    )
    .expect("route");
}

/// `outpost run` at a 100 ms test interval, its stderr in `log`.
fn spawn_run(d: &common::agent::Device, log: &Path) -> Child {
    d.cmd(&["run"])
        .env("OUTPOST_TEST_MIN_INTERVAL_MS", "100")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("spawning outpost run")
}

/// Waits until `dig NAME A` answers 127.0.0.1 (hang guard: 60 s), then for
/// five more successful check-ins (120 s); returns when it started.
fn record_then_five_checkins(n: &Named, hub: &common::hub::Hub, name: &str, log: &Path) -> Instant {
    let checkins = || {
        common::agent::requests(&hub.log_lines())
            .iter()
            .filter(|(p, s, _)| p == "/outpost/v1/checkin" && *s == 200)
            .count()
    };
    let t0 = Instant::now();
    while dig(n, name, "A") != "127.0.0.1" {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no record: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let after = checkins();
    while checkins() < after + 5 {
        assert!(t0.elapsed() < Duration::from_secs(120), "check-ins stopped");
        std::thread::sleep(Duration::from_millis(100));
    }
    t0
}

/// Ends `outpost run` with SIGTERM, checks it exited 0 and returns its
/// stderr (printed for the test's output).
fn stop_run(mut child: Child, log: &Path) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let st = child.wait().expect("wait");
    let text = std::fs::read_to_string(log).expect("log");
    eprintln!("$ outpost run (stderr)\n{text}");
    assert!(st.success(), "{st}");
    text
}

/// `outpost run` keeps the cluster's DNS name itself: the hub makes this
/// host the init server of a cluster on `dns:api.example.test`; once its
/// role is ready (K3s here is the TEST DOUBLE tests/support/fake-k3s) the
/// loop sends one signed UPDATE adding its address to the name (the
/// default route's, here a route table in the tree naming `lo`) to the
/// real BIND, then none while the address stays; removed from the
/// cluster, it takes its address back out.
#[test]
fn the_run_loop_keeps_the_cluster_name_in_real_bind() {
    use common::agent::{Device, Setup};
    use common::hub::Hub;
    let scratch = common::fault::Scratch::new("ddns-run");
    let n = named(scratch.path());
    let pki = common::tls::make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let token = hub.token(&[]);
    let (code, _, err) = hub.cli(&["set-interval", "--test-mode", "0.3"]);
    assert_eq!(code, 0, "set-interval: {err}");
    let top = ddns_top(&n, "info");
    let d = Device::new(
        scratch.path(),
        &Setup {
            endpoint: &hub.url,
            token: Some(&token),
            host_id: "cp-dns",
            ca_pem: &pki.ca_cert,
            site: "",
            top: &top,
        },
    );
    ddns_tree(&d);
    // The K3s TEST DOUBLE as the installed K3s; the node name it reports
    // ready is the real host's, so the tree carries the same.
    let bin = d.root.join("usr/local/bin");
    std::fs::create_dir_all(&bin).expect("bin");
    std::fs::copy(common::fixture("../support/fake-k3s"), bin.join("k3s")).expect("fake-k3s");
    std::fs::set_permissions(bin.join("k3s"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    std::fs::create_dir_all(d.root.join("proc/sys/kernel")).expect("proc");
    std::fs::write(d.root.join("proc/sys/kernel/hostname"), host).expect("hostname");
    struct Kill(PathBuf);
    impl Drop for Kill {
        fn drop(&mut self) {
            if let Ok(pid) = std::fs::read_to_string(self.0.join("run/outpost/k3s.pid")) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
    let _kill = Kill(d.root.clone());
    let (code, _, err) = d.run(&["checkin"]);
    assert_eq!(code, 0, "{err}");
    for args in [
        &[
            "cluster",
            "create",
            "edge-dns",
            "--distro",
            "k3s",
            "--version",
            "v1.31.4+k3s1",
            "--endpoint",
            "dns:api.example.test",
        ][..],
        &[
            "cluster",
            "add",
            "edge-dns",
            "cp-dns",
            "--role",
            "control-plane",
        ],
    ] {
        let (code, _, e) = hub.cli(args);
        assert_eq!(code, 0, "{e}");
    }
    let log = scratch.path().join("run.log");
    let child = spawn_run(&d, &log);
    let t0 = record_then_five_checkins(&n, &hub, "api.example.test", &log);
    // Removed from the cluster: the host takes its address back out.
    let (code, _, err) = hub.cli(&["cluster", "remove", "edge-dns"]);
    assert_eq!(code, 0, "{err}");
    while !dig(&n, "api.example.test", "A").is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "the address stayed after leaving: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let text = stop_run(child, &log);
    let ready = text
        .find("cluster edge-dns role init-server: ready")
        .unwrap_or_else(|| panic!("role not ready: {text}"));
    let first = text
        .find("ddns: UPDATE api.example.test += 127.0.0.1 (others kept)")
        .unwrap_or_else(|| panic!("no update: {text}"));
    assert!(ready < first, "published before the role was ready");
    assert_eq!(
        text.matches("ddns: UPDATE api.example.test += 127.0.0.1")
            .count(),
        1,
        "one update, then none while the address stays"
    );
    assert!(
        text.contains("ddns: api.example.test += 127.0.0.1: updated (signed answer verified)"),
        "{text}"
    );
    assert!(
        text.contains("ddns: api.example.test -= 127.0.0.1: removed (signed answer verified)"),
        "{text}"
    );
    assert!(!text.contains(SECRET), "the TSIG secret leaked");
}

/// Control-plane hosts share the cluster name (`--member`, what `outpost
/// run` does for each ready server): each adds its own address, replaces
/// only its own on change and removes only its own; the others' records
/// stay. Against the real BIND.
#[test]
fn servers_keep_their_own_addresses_in_the_name() {
    let scratch = common::fault::Scratch::new("ddns-members");
    let tmp = scratch.path().to_path_buf();
    let n = named(&tmp);
    let mk = |h: &str| {
        let d = tmp.join(h);
        std::fs::create_dir_all(&d).expect("dir");
        Agent::new(&d, n.port, SECRET)
    };
    let (a, b) = (mk("cp-a"), mk("cp-b"));
    let name = "api.example.test";
    let sorted = |t: String| {
        let mut v: Vec<String> = t.lines().map(str::to_string).collect();
        v.sort();
        v.join(" ")
    };
    let (code, out, _) = a.ddns(&["--name", name, "--address", "10.0.0.11", "--member"]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = b.ddns(&["--name", name, "--address", "10.0.0.12", "--member"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(sorted(dig(&n, name, "A")), "10.0.0.11 10.0.0.12");
    // Unchanged: nothing sent.
    let (_, out, _) = a.ddns(&["--name", name, "--address", "10.0.0.11", "--member"]);
    assert!(out.contains("unchanged"), "{out}");
    // A's address changes: only A's record is replaced.
    let (code, _, err) = a.ddns(&["--name", name, "--address", "10.0.0.21", "--member"]);
    assert_eq!(code, 0);
    assert!(
        err.contains("ddns: UPDATE api.example.test: 10.0.0.11 -> 10.0.0.21 (others kept)"),
        "{err}"
    );
    assert_eq!(sorted(dig(&n, name, "A")), "10.0.0.12 10.0.0.21");
    // A leaves: its address goes, B's stays; again: nothing to remove.
    let (code, out, _) = a.ddns(&["--name", name, "--address", "10.0.0.21", "--remove"]);
    assert_eq!(code, 0);
    assert!(out.contains("removed at 127.0.0.1:"), "{out}");
    assert_eq!(dig(&n, name, "A"), "10.0.0.12");
    let (_, out, _) = a.ddns(&["--name", name, "--address", "10.0.0.21", "--remove"]);
    assert!(
        out.contains("nothing to remove (not added by this host)"),
        "{out}"
    );
    // B never removes an address it did not add.
    let (_, out, _) = b.ddns(&["--name", name, "--address", "10.0.0.99", "--remove"]);
    assert!(out.contains("nothing to remove"), "{out}");
    assert_eq!(dig(&n, name, "A"), "10.0.0.12");
    let (code, _, err) = b.ddns(&["--name", name, "--member", "--remove"]);
    assert_eq!(code, 2);
    assert!(err.contains("give one of --member and --remove"), "{err}");
}

/// A host that keeps no cluster name keeps its own host name: here a
/// worker of a `dns:` cluster (the hub lists it as a worker; its join
/// instruction waits for an init server that never comes up, so the loop
/// runs with no role step). `outpost run` sends one signed UPDATE for
/// `worker-7.example.test` (its kernel host name in the tree, in the
/// zone) at the default route's address to the real BIND, `dig` sees it,
/// then nothing over five more check-ins while the address stays; the
/// cluster name is never touched.
#[test]
fn a_worker_keeps_its_own_host_name_in_real_bind() {
    use common::agent::{Device, Setup};
    use common::hub::Hub;
    let scratch = common::fault::Scratch::new("ddns-host");
    let n = named(scratch.path());
    let pki = common::tls::make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let token = hub.token(&[]);
    let (code, _, err) = hub.cli(&["set-interval", "--test-mode", "0.3"]);
    assert_eq!(code, 0, "set-interval: {err}");
    let top = ddns_top(&n, "debug");
    let device = |id: &str| {
        let dir = scratch.path().join(id);
        std::fs::create_dir_all(&dir).expect("dir");
        Device::new(
            &dir,
            &Setup {
                endpoint: &hub.url,
                token: Some(&token),
                host_id: id,
                ca_pem: &pki.ca_cert,
                site: "",
                top: &top,
            },
        )
    };
    let (cp, d) = (device("cp-idle"), device("wk-dns"));
    ddns_tree(&d);
    std::fs::create_dir_all(d.root.join("proc/sys/kernel")).expect("proc");
    std::fs::write(d.root.join("proc/sys/kernel/hostname"), "worker-7\n").expect("hostname");
    for dev in [&cp, &d] {
        let (code, _, err) = dev.run(&["checkin"]);
        assert_eq!(code, 0, "{err}");
    }
    for args in [
        &[
            "cluster",
            "create",
            "edge-w",
            "--distro",
            "k3s",
            "--version",
            "v1.31.4+k3s1",
            "--endpoint",
            "dns:api.example.test",
        ][..],
        &[
            "cluster",
            "add",
            "edge-w",
            "cp-idle",
            "--role",
            "control-plane",
        ],
        &["cluster", "add", "edge-w", "wk-dns", "--role", "worker"],
    ] {
        let (code, _, e) = hub.cli(args);
        assert_eq!(code, 0, "{e}");
    }
    let log = scratch.path().join("run.log");
    let child = spawn_run(&d, &log);
    record_then_five_checkins(&n, &hub, "worker-7.example.test", &log);
    let text = stop_run(child, &log);
    assert_eq!(
        text.matches("ddns: UPDATE worker-7.example.test -> 127.0.0.1 at 127.0.0.1:")
            .count(),
        1,
        "one update, then none while the address stays"
    );
    assert!(
        text.contains("ddns: worker-7.example.test -> 127.0.0.1: updated (signed answer verified)"),
        "{text}"
    );
    assert!(
        text.matches("ddns: worker-7.example.test -> 127.0.0.1: unchanged")
            .count()
            >= 5,
        "the later check-ins each found the address unchanged: {text}"
    );
    assert!(!text.contains("UPDATE api.example.test"), "{text}");
    assert_eq!(
        dig(&n, "api.example.test", "A"),
        "",
        "cluster name untouched"
    );
    let (code, out, err) = hub.cli(&["cluster", "show", "edge-w", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wk-dns") && out.contains("worker"), "{out}");
    assert!(!text.contains(SECRET), "the TSIG secret leaked");
}
