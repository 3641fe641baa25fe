//! Three agents (processes, each on its own `--root` tree) and the real hub
//! over TLS on loopback form a K3s cluster: one init server, one joining
//! server (K3s two-node mode) and one worker. The roles travel in the
//! check-in answers; the init server's K10 join token travels back in its
//! check-in and on to the joiners only. K3s itself cannot be had on the
//! build machines: each tree carries the K3s TEST DOUBLE
//! (tests/support/fake-k3s) as its /usr/local/bin/k3s, so this verifies the
//! agent and hub against the K3s contract the double enforces, not against
//! a running K3s.
//!
//! Checked: nothing is released before the init server is ready and its
//! token is in (the joiners' trees stay untouched), the order of the hub's
//! cluster events, the joiners' config holding exactly the init server's
//! token, the token never in any log, output, the hub's database or a
//! world-readable state file, and `cluster remove` making members leave.

mod common;

use common::agent::{requests, Device, Setup};
use common::fault::Scratch;
use common::hub::Hub;
use common::leak;
use common::tls::make_pki;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const OS: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n";

fn prepare_root(root: &Path) {
    // The host name K3s registers as the node name: the double reports the
    // real host's name ready, so the tree carries the same.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    std::fs::create_dir_all(root.join("proc/sys/kernel")).expect("proc");
    std::fs::write(root.join("proc/sys/kernel/hostname"), host).expect("hostname");
    std::fs::create_dir_all(root.join("etc")).expect("etc");
    std::fs::write(root.join("etc/os-release"), OS).expect("os-release");
    // The K3s binary of the airgap bundle, placed by the operator: here
    // the TEST DOUBLE.
    let bin = root.join("usr/local/bin");
    std::fs::create_dir_all(&bin).expect("bin");
    std::fs::copy(common::fixture("../support/fake-k3s"), bin.join("k3s")).expect("fake-k3s");
    std::fs::set_permissions(bin.join("k3s"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
}

struct Kill(Vec<std::path::PathBuf>);

impl Drop for Kill {
    fn drop(&mut self) {
        for root in &self.0 {
            if let Ok(pid) = std::fs::read_to_string(root.join("run/outpost/k3s.pid")) {
                let _ = std::process::Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

fn checkin(d: &Device, name: &str, all: &mut String) -> (i32, String) {
    let (code, out, err) = d.run(&["-v", "checkin"]);
    eprintln!("[{name}] $ outpost -v checkin\n{out}{err}(exit {code})");
    all.push_str(&out);
    all.push_str(&err);
    (code, format!("{out}{err}"))
}

fn show(hub: &Hub) -> String {
    let (code, out, err) = hub.cli(&["cluster", "show", "edge-1"]);
    eprintln!("$ outpost-hub cluster show edge-1\n{out}{err}");
    assert_eq!(code, 0, "{err}");
    out
}

fn file(d: &Device, rel: &str) -> Option<String> {
    std::fs::read_to_string(d.root.join(rel)).ok()
}

const DROPIN: &str = "etc/rancher/k3s/config.yaml.d/10-outpost.yaml";

#[test]
fn three_agents_and_the_hub_form_a_cluster() {
    // The hub's cluster events are info lines on its stderr.
    std::env::set_var("RUST_LOG", "info");
    let scratch = Scratch::new("cluster-hub");
    let pki = make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let token = hub.token(&[]);
    let mut devs = Vec::new();
    for name in ["cp-a", "cp-b", "wk-c"] {
        let dir = scratch.path().join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        let d = Device::new(
            &dir,
            &Setup {
                endpoint: &hub.url,
                token: Some(&token),
                host_id: name,
                ca_pem: &pki.ca_cert,
                site: "",
                top: "",
            },
        );
        prepare_root(&d.root);
        devs.push(d);
    }
    let _guard = Kill(devs.iter().map(|d| d.root.clone()).collect());
    let (a, b, c) = (&devs[0], &devs[1], &devs[2]);
    let mut out = String::new();

    // Three registered hosts.
    for (d, n) in [(a, "cp-a"), (b, "cp-b"), (c, "wk-c")] {
        assert_eq!(checkin(d, n, &mut out).0, 0);
    }
    let (code, devices, _) = hub.cli(&["devices"]);
    assert_eq!(code, 0);
    eprintln!("$ outpost-hub devices\n{devices}");

    for args in [
        &[
            "cluster",
            "create",
            "edge-1",
            "--distro",
            "k3s",
            "--version",
            "v1.31.4+k3s1",
            "--endpoint",
            "vip:10.0.0.100",
            "--interface",
            "eth0",
            "--two-node",
        ][..],
        &[
            "cluster",
            "add",
            "edge-1",
            "cp-a",
            "--role",
            "control-plane",
        ],
        &[
            "cluster",
            "add",
            "edge-1",
            "cp-b",
            "--role",
            "control-plane",
        ],
        &["cluster", "add", "edge-1", "wk-c", "--role", "worker"],
    ] {
        let (code, o, e) = hub.cli(args);
        eprintln!("$ outpost-hub {}\n{o}{e}", args.join(" "));
        assert_eq!(code, 0, "{e}");
    }

    // Round 1: the joiners check in first and get nothing; the init server
    // gets its role and comes up.
    for (d, n) in [(c, "wk-c"), (b, "cp-b")] {
        assert_eq!(checkin(d, n, &mut out).0, 0);
        assert!(file(d, DROPIN).is_none(), "{n} was released too early");
        assert!(file(d, "var/lib/outpost/cluster.json").is_none(), "{n}");
    }
    let s = show(&hub);
    assert!(
        s.contains(
            "cp-b           control-plane wait: waiting for the init server cp-a to be ready"
        ),
        "{s}"
    );
    let (code, o) = checkin(a, "cp-a", &mut out);
    assert_eq!(code, 0, "{o}");
    let rec = file(a, "var/lib/outpost/cluster.json").expect("cp-a record");
    assert!(
        rec.contains("\"role\":\"init-server\"") && rec.contains("\"state\":\"ready\""),
        "{rec}"
    );
    let k10 = file(a, "var/lib/rancher/k3s/server/token")
        .expect("the double wrote the server token")
        .trim()
        .to_string();
    assert!(k10.starts_with("K10") && k10.contains("::server:"), "{k10}");
    let dropin_a = file(a, DROPIN).expect("cp-a drop-in");
    let bootstrap = dropin_a
        .lines()
        .find_map(|l| l.strip_prefix("token: \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("bootstrap token in the init server's drop-in")
        .to_string();
    assert!(dropin_a.contains("cluster-init: true"), "{dropin_a}");
    assert!(
        bootstrap.len() >= 64,
        "a generated bootstrap token: {}",
        bootstrap.len()
    );

    // The joiners are still held: the hub has not seen the init server ready.
    assert_eq!(checkin(c, "wk-c", &mut out).0, 0);
    assert!(
        file(c, DROPIN).is_none(),
        "worker released before the token"
    );

    // Round 2: the init server reports ready with its K10 token.
    assert_eq!(checkin(a, "cp-a", &mut out).0, 0);
    let s = show(&hub);
    assert!(
        s.contains("cp-b           control-plane join-server"),
        "{s}\nhub stderr:\n{}",
        std::fs::read_to_string(&hub.stderr).unwrap_or_default()
    );
    assert!(s.contains("wk-c           worker        join-agent"), "{s}");

    // The joiners get their roles with that token and come up.
    for (d, n, role) in [(b, "cp-b", "join-server"), (c, "wk-c", "join-agent")] {
        let (code, o) = checkin(d, n, &mut out);
        assert_eq!(code, 0, "{o}");
        let rec = file(d, "var/lib/outpost/cluster.json").expect("record");
        assert!(
            rec.contains(&format!("\"role\":\"{role}\"")) && rec.contains("\"state\":\"ready\""),
            "{n}: {rec}"
        );
        let dropin = file(d, DROPIN).expect("drop-in");
        assert!(
            dropin.contains(&format!("token: \"{k10}\"")),
            "{n} joins with the init server's token"
        );
        assert!(
            dropin.contains("server: \"https://10.0.0.100:6443\""),
            "{dropin}"
        );
        assert!(!dropin.contains("cluster-init"), "{dropin}");
    }
    // Their ready states reach the hub.
    for (d, n) in [(b, "cp-b"), (c, "wk-c")] {
        assert_eq!(checkin(d, n, &mut out).0, 0);
    }
    let (code, json, _) = hub.cli(&["cluster", "show", "edge-1", "--json"]);
    assert_eq!(code, 0);
    eprintln!("$ outpost-hub cluster show edge-1 --json\n{json}");
    assert_eq!(json.matches("\"state\":\"ready\"").count(), 3, "{json}");

    // A steady check-in re-applies nothing: the record and the double's
    // call log stay as they were, and the hub logs no new event.
    let rec_b = file(b, "var/lib/outpost/cluster.json");
    let calls_b = file(b, "var/lib/rancher/k3s/fake-k3s/calls.log");
    let events = std::fs::read_to_string(&hub.stderr).unwrap_or_default();
    let before = requests(&hub.log_lines()).len();
    assert_eq!(checkin(b, "cp-b", &mut out).0, 0);
    assert_eq!(requests(&hub.log_lines()).len(), before + 1);
    assert_eq!(file(b, "var/lib/outpost/cluster.json"), rec_b);
    assert_eq!(file(b, "var/lib/rancher/k3s/fake-k3s/calls.log"), calls_b);
    assert_eq!(
        std::fs::read_to_string(&hub.stderr).unwrap_or_default(),
        events
    );

    // The order of the hub's cluster events.
    let hub_err = std::fs::read_to_string(&hub.stderr).expect("hub stderr");
    eprintln!("hub stderr:\n{hub_err}");
    let at = |needle: &str| {
        hub_err
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in the hub's log:\n{hub_err}"))
    };
    let released_a = at("cluster edge-1: cp-a released as init-server");
    let ready_a = at("cluster edge-1: cp-a (init-server) is ready");
    let token_in = at("cluster edge-1: join token from the init server cp-a stored (sealed)");
    let released_b = at("cluster edge-1: cp-b released as join-server");
    let released_c = at("cluster edge-1: wk-c released as join-agent");
    let ready_b = at("cluster edge-1: cp-b (join-server) is ready");
    let ready_c = at("cluster edge-1: wk-c (join-agent) is ready");
    assert!(released_a < ready_a && ready_a <= token_in, "{hub_err}");
    assert!(token_in < released_b && token_in < released_c, "{hub_err}");
    assert!(released_b < ready_b && released_c < ready_c, "{hub_err}");

    // The tokens: in no log, output, request log or the hub's database
    // (sealed there), and no state file others can read.
    let secrets = [
        ("join token", k10.as_str()),
        ("bootstrap token", bootstrap.as_str()),
    ];
    leak::assert_clean("hub", "stderr", &hub_err, &secrets);
    leak::assert_clean("hub", "request log", &hub.log_lines().join("\n"), &secrets);
    leak::assert_clean("agents", "output", &out, &secrets);
    // The database and its write-ahead log (the hub runs in WAL mode).
    let mut db = std::fs::read(&hub.db).expect("db");
    db.extend(std::fs::read(format!("{}-wal", hub.db.display())).unwrap_or_default());
    assert!(db.len() > 4096, "read the database");
    leak::assert_clean("hub", "database", &String::from_utf8_lossy(&db), &secrets);
    for d in [a, b, c] {
        let rec = file(d, "var/lib/outpost/cluster.json").expect("record");
        leak::assert_clean("agent", "cluster.json", &rec, &secrets);
        let open = leak::world_readable_files(&d.state_dir());
        for f in &open {
            let t = std::fs::read_to_string(f).unwrap_or_default();
            leak::assert_clean("agent", &f.display().to_string(), &t, &secrets);
        }
    }
    let key = format!("{}.key", hub.db.display());
    let mode = std::fs::metadata(&key)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the hub's key file");

    // Remove the cluster: each member leaves at its next check-in, then
    // reports it.
    let (code, o, e) = hub.cli(&["cluster", "remove", "edge-1"]);
    eprintln!("$ outpost-hub cluster remove edge-1\n{o}{e}");
    assert_eq!(code, 0, "{e}");
    for (d, n) in [(a, "cp-a"), (b, "cp-b"), (c, "wk-c")] {
        assert_eq!(checkin(d, n, &mut out).0, 0);
        assert!(file(d, DROPIN).is_none(), "{n} still has its drop-in");
        assert!(!d.root.join("usr/local/bin/k3s").exists(), "{n} binary");
        let rec = file(d, "var/lib/outpost/cluster.json").expect("record");
        assert!(rec.contains("\"state\":\"left\""), "{n}: {rec}");
        assert_eq!(checkin(d, n, &mut out).0, 0);
    }
    let hub_err = std::fs::read_to_string(&hub.stderr).expect("hub stderr");
    for n in ["cp-a", "cp-b", "wk-c"] {
        assert!(
            hub_err.contains(&format!("cluster edge-1: {n} left")),
            "{hub_err}"
        );
    }
    leak::assert_clean("agents", "output", &out, &secrets);
}

/// `outpost run` applies the role beside its loop (cluster::worker): while
/// the K3s TEST DOUBLE takes 5 s to come up, the loop goes on checking in.
/// Before, the loop waited for K3s (up to 2 x 300 s): no check-in between
/// the role's `installing` and `ready`, and no watchdog ping.
#[test]
fn the_run_loop_checks_in_while_k3s_starts() {
    std::env::set_var("RUST_LOG", "info");
    let scratch = Scratch::new("cluster-run");
    let pki = make_pki(scratch.path());
    let hub = Hub::start(scratch.path(), Some(&pki), &[]);
    let token = hub.token(&[]);
    let (code, _, err) = hub.cli(&["set-interval", "--test-mode", "0.3"]);
    assert_eq!(code, 0, "set-interval: {err}");
    let d = Device::new(
        scratch.path(),
        &Setup {
            endpoint: &hub.url,
            token: Some(&token),
            host_id: "cp-run",
            ca_pem: &pki.ca_cert,
            site: "",
            top: "outpost:\n  logLevel: info\n",
        },
    );
    prepare_root(&d.root);
    let _guard = Kill(vec![d.root.clone()]);
    let mut out = String::new();
    assert_eq!(checkin(&d, "cp-run", &mut out).0, 0);
    for args in [
        &[
            "cluster",
            "create",
            "edge-1",
            "--distro",
            "k3s",
            "--version",
            "v1.31.4+k3s1",
            "--endpoint",
            "vip:10.0.0.100",
        ][..],
        &[
            "cluster",
            "add",
            "edge-1",
            "cp-run",
            "--role",
            "control-plane",
        ],
    ] {
        let (code, _, e) = hub.cli(args);
        assert_eq!(code, 0, "{e}");
    }
    let log = scratch.path().join("run.log");
    let mut child = d
        .cmd(&["run"])
        .env("OUTPOST_TEST_MIN_INTERVAL_MS", "100")
        .env("FAKE_K3S_READY_DELAY", "5")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawning outpost run");
    // Until the hub has the member ready (hang guard: 120 s).
    let t0 = std::time::Instant::now();
    loop {
        let (_, json, _) = hub.cli(&["cluster", "show", "edge-1", "--json"]);
        if json.contains("\"state\":\"ready\"") {
            break;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(120),
            "not ready: {json}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let st = child.wait().expect("wait");
    let text = std::fs::read_to_string(&log).expect("log");
    eprintln!("$ outpost run (stderr, the role step's lines among the loop's)\n{text}");
    assert!(st.success(), "outpost run: {st}");
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in the log"))
    };
    let spawned = at("cluster: applying the cluster role in process");
    let installing = at("cluster edge-1 role init-server: installing");
    let running = at("cluster edge-1 role init-server: running");
    let ready = at("cluster edge-1 role init-server: ready");
    assert!(spawned < running && installing < running && running < ready);
    // (Direct start: running once the process lives 1 s; the double's
    // 5 s come between running and ready.)
    let during = text[installing..ready].matches("checked in").count();
    assert!(
        during >= 3,
        "{during} check-ins while K3s started; the loop waited for it"
    );
    // One step at a time: no second apply while the first ran.
    assert_eq!(
        text.matches("cluster: applying the cluster role in process")
            .count(),
        1,
        "{text}"
    );
}
