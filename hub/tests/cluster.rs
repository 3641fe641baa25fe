//! `outpost-hub cluster ...` against a running hub with registered devices:
//! the pool rules with their exact messages, the init node and the release
//! order as `cluster show` reports them, labels on the members, removal.
//! The protocol part (roles in check-in answers) is tests/cluster_hub.rs
//! in the agent's tests (three agents and the hub).

mod common;

use common::backend;
use common::hub::{client, post, Hub};
use common::tls::TempDir;
use outpost::proto::{self, Interface, Inventory, RegisterRequest, PATH_REGISTER};
use std::collections::BTreeMap;

fn register(hub: &Hub, token: &str, host: &str, os: &str, arch: &str) {
    let req = RegisterRequest {
        v: 1,
        token: token.into(),
        host_id: host.into(),
        install_secret: format!("{:0<64}", host.replace('-', "")),
        project: None,
        hostname: host.into(),
        tags: BTreeMap::new(),
        agent: "0.1.0".into(),
        inventory: Inventory {
            arch: arch.into(),
            cpus: 4,
            memory_bytes: 8_000_000_000,
            os: os.into(),
            kernel: "6.1.0".into(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "52:54:00:12:34:56".into(),
                addrs: vec!["192.0.2.10/24".into()],
            }],
            ..Default::default()
        },
        inventory_hash: format!("sha256:{host}"),
    };
    let r = post(
        &client(None),
        &hub.url,
        PATH_REGISTER,
        &proto::encode(&req),
        None,
    );
    assert_eq!(r.status, 200, "register {host}: {}", r.body);
}

fn ok(hub: &Hub, args: &[&str]) -> String {
    let (code, out, err) = hub.cli(args);
    eprintln!("$ outpost-hub {}\n{out}{err}", args.join(" "));
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

fn refused(hub: &Hub, args: &[&str]) -> String {
    let (code, out, err) = hub.cli(args);
    eprintln!("$ outpost-hub {}\n{out}{err}(exit {code})", args.join(" "));
    assert_eq!(code, 2, "{args:?} must be refused: {out}");
    err
}

const DEB: &str = "Debian GNU/Linux 12 (bookworm)";

#[test]
fn cluster_pools_rules_and_order() {
    let dir = TempDir::new("hub-cluster");
    let hub = backend::start(dir.path(), None, &[]);
    let token = hub.token(&[]);
    for h in ["edge-a", "edge-b", "edge-c", "edge-w"] {
        register(&hub, &token, h, DEB, "x86_64");
    }
    register(&hub, &token, "edge-u", "Ubuntu 22.04.4 LTS", "x86_64");
    register(&hub, &token, "edge-arm", "Ubuntu 24.04 LTS", "aarch64");

    let out = ok(
        &hub,
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
        ],
    );
    assert_eq!(
        out,
        "created cluster edge-1 (k3s, v1.31.4+k3s1, vip:10.0.0.100)\n"
    );
    let err = refused(
        &hub,
        &[
            "cluster",
            "create",
            "edge-2",
            "--distro",
            "pxke",
            "--version",
            "1.31.4",
            "--endpoint",
            "vip:10.0.0.5",
            "--two-node",
        ],
    );
    assert!(
        err.contains(
            "--two-node is for K3s and Canonical; pxke needs an odd number of control-plane hosts"
        ),
        "{err}"
    );
    let err = refused(
        &hub,
        &[
            "cluster",
            "create",
            "edge-3",
            "--distro",
            "k3s",
            "--version",
            "v1",
            "--endpoint",
            "vip:10.42.0.7",
            "--pod-cidr",
            "10.42.0.0/16",
        ],
    );
    assert!(
        err.contains("the VIP 10.42.0.7 lies inside --pod-cidr 10.42.0.0/16"),
        "{err}"
    );

    ok(
        &hub,
        &["cluster", "add", "edge-1", "edge-w", "--role", "worker"],
    );
    ok(
        &hub,
        &[
            "cluster",
            "add",
            "edge-1",
            "edge-a",
            "--role",
            "control-plane",
        ],
    );
    let out = ok(
        &hub,
        &[
            "cluster",
            "add",
            "edge-1",
            "edge-b",
            "--role",
            "control-plane",
        ],
    );
    assert!(out.contains("held: 2 control-plane hosts: etcd needs an odd number (1, 3, 5, ...); add or remove one, or create the cluster with --two-node"), "{out}");
    let show = ok(&hub, &["cluster", "show", "edge-1"]);
    assert!(
        show.lines()
            .skip(1)
            .all(|l| l.contains("wait: 2 control-plane hosts")),
        "nothing released while even:\n{show}"
    );
    ok(
        &hub,
        &[
            "cluster",
            "add",
            "edge-1",
            "edge-c",
            "--role",
            "control-plane",
        ],
    );

    let err = refused(
        &hub,
        &["cluster", "add", "edge-1", "edge-u", "--role", "worker"],
    );
    assert!(err.contains("edge-u runs ubuntu 22.04.4 LTS, edge-w runs debian GNU/Linux 12 (bookworm): all members must run the same OS"), "{err}");
    let err = refused(
        &hub,
        &["cluster", "add", "edge-1", "edge-a", "--role", "worker"],
    );
    assert!(
        err.contains("edge-a is already a member of edge-1"),
        "{err}"
    );
    let err = refused(
        &hub,
        &["cluster", "add", "edge-1", "nosuch", "--role", "worker"],
    );
    assert!(err.contains("no registered, active device nosuch"), "{err}");

    let show = ok(&hub, &["cluster", "show", "edge-1"]);
    assert_eq!(
        show,
        "cluster edge-1 (k3s, v1.31.4+k3s1, vip:10.0.0.100)\n\
         \x20 edge-w         worker        wait: waiting for the init server edge-a to be ready\n\
         \x20 edge-a         control-plane init-server\n\
         \x20 edge-b         control-plane wait: waiting for the init server edge-a to be ready\n\
         \x20 edge-c         control-plane wait: waiting for the init server edge-a to be ready\n"
    );
    let json = ok(&hub, &["cluster", "show", "edge-1", "--json"]);
    assert!(
        json.contains(r#""host_id":"edge-a","instruction":"init-server","pool":"control-plane""#),
        "{json}"
    );

    // Members are In-Use in the device list.
    let devices = ok(&hub, &["devices"]);
    let a_line = devices
        .lines()
        .find(|l| l.contains("edge-a"))
        .unwrap_or_default();
    assert!(a_line.contains("In-Use"), "{devices}");

    // Canonical only on Ubuntu/AMD64.
    ok(
        &hub,
        &[
            "cluster",
            "create",
            "can-1",
            "--distro",
            "canonical",
            "--version",
            "1.32",
            "--endpoint",
            "dns:api.can-1.example.test",
        ],
    );
    let err = refused(
        &hub,
        &[
            "cluster",
            "add",
            "can-1",
            "edge-arm",
            "--role",
            "control-plane",
        ],
    );
    assert!(
        err.contains("edge-arm runs ubuntu on aarch64: Canonical Kubernetes needs Ubuntu on AMD64"),
        "{err}"
    );
    ok(
        &hub,
        &[
            "cluster",
            "add",
            "can-1",
            "edge-u",
            "--role",
            "control-plane",
        ],
    );

    let list = ok(&hub, &["cluster", "list"]);
    assert_eq!(
        list,
        "can-1            canonical  1 control plane, 0 worker\nedge-1           k3s        3 control plane, 1 worker\n"
    );
    let out = ok(&hub, &["cluster", "remove", "edge-1", "edge-c"]);
    assert_eq!(
        out,
        "removed edge-c from edge-1; it leaves the cluster at its next check-in\n"
    );
    let list = ok(&hub, &["cluster", "list"]);
    assert!(
        list.contains(
            "edge-1           k3s        2 control plane, 1 worker  (held: 2 control-plane hosts"
        ),
        "{list}"
    );
    let out = ok(&hub, &["cluster", "remove", "edge-1"]);
    assert_eq!(
        out,
        "removed cluster edge-1 (3 members released; they leave the cluster at their next check-in)\n"
    );
    let devices = ok(&hub, &["devices"]);
    let a_line = devices
        .lines()
        .find(|l| l.contains("edge-a"))
        .unwrap_or_default();
    assert!(a_line.contains("Ready"), "{devices}");
}
