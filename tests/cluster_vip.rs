//! The VIP preflight against real ARP: two network namespaces made by the
//! test, joined by a veth pair. `outpost check --role control-plane --vip`
//! runs in one; the other holds (or not) the VIP. Needs root and `ip`
//! (iproute2), as in CI; without them the test fails and says why.

mod common;

use std::process::Command;

struct Netns {
    a: String,
    b: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("running ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    fn new() -> Netns {
        let id = std::process::id();
        let n = Netns {
            a: format!("opva{id}"),
            b: format!("opvb{id}"),
        };
        ip(&["netns", "add", &n.a]);
        ip(&["netns", "add", &n.b]);
        ip(&[
            "-n", &n.a, "link", "add", "vpa", "type", "veth", "peer", "name", "vpb", "netns", &n.b,
        ]);
        ip(&["-n", &n.a, "addr", "add", "10.77.0.1/24", "dev", "vpa"]);
        ip(&["-n", &n.b, "addr", "add", "10.77.0.2/24", "dev", "vpb"]);
        ip(&["-n", &n.a, "link", "set", "vpa", "up"]);
        ip(&["-n", &n.b, "link", "set", "vpb", "up"]);
        ip(&["-n", &n.a, "link", "set", "lo", "up"]);
        n
    }

    fn mac_b(&self) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.b, "-o", "link", "show", "vpb"])
            .output()
            .expect("ip link show");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no MAC in {text}"))
            .to_string()
    }

    /// `outpost check --only root --role control-plane ARGS --json` in namespace A.
    fn check(&self, args: &[&str]) -> (i32, String) {
        let inner = common::outpost();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.a])
            .arg(inner.get_program())
            .args(inner.get_args());
        cmd.args(["check", "--only", "root", "--role", "control-plane"])
            .args(args);
        let (code, out, err) = common::run(&mut cmd);
        eprintln!("outpost check {}:\n{out}{err}", args.join(" "));
        (code, out)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// The line of check `id` in text output, e.g. "vip-arp ... pass ...".
fn line<'a>(out: &'a str, id: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().any(|w| w == id))
        .unwrap_or_else(|| panic!("no {id} line in:\n{out}"))
}

#[test]
fn vip_probe_over_real_arp_between_namespaces() {
    // SAFETY-free check of the effective user via /proc (tests hold no unsafe).
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "this test makes network namespaces: run it as root (CI does)"
    );
    let ns = Netns::new();

    // A free address on the subnet: every VIP check passes.
    let (code, out) = ns.check(&["--vip", "10.77.0.100", "--interface", "vpa"]);
    assert_eq!(code, 0, "free VIP must pass:\n{out}");
    for id in ["vip-interface", "vip-subnet", "vip-local", "vip-arp"] {
        assert!(line(&out, id).contains("PASS"), "{id}:\n{out}");
    }
    assert!(line(&out, "vip-arp").contains("free (no reply)"), "{out}");

    // The other namespace takes the address: its kernel answers the probe.
    ip(&["-n", &ns.b, "addr", "add", "10.77.0.100/24", "dev", "vpb"]);
    let (code, out) = ns.check(&["--vip", "10.77.0.100", "--interface", "vpa", "--json"]);
    assert_eq!(code, 1, "VIP in use must fail:\n{out}");
    let want = format!("\"observed\":\"in use by {}\"", ns.mac_b());
    assert!(out.contains(&want), "want {want} in:\n{out}");

    // Released again: free again.
    ip(&["-n", &ns.b, "addr", "del", "10.77.0.100/24", "dev", "vpb"]);
    let (code, out) = ns.check(&["--vip", "10.77.0.100", "--interface", "vpa"]);
    assert_eq!(code, 0, "released VIP must pass again:\n{out}");

    // The host's own address, an address off the subnet, a missing interface.
    let (code, out) = ns.check(&["--vip", "10.77.0.1", "--interface", "vpa"]);
    assert_eq!(code, 1);
    assert!(
        line(&out, "vip-local").contains("10.77.0.1 is on vpa"),
        "{out}"
    );
    let (code, out) = ns.check(&["--vip", "10.78.0.100", "--interface", "vpa"]);
    assert_eq!(code, 1);
    assert!(
        line(&out, "vip-subnet").contains("10.78.0.100 outside 10.77.0.1/24"),
        "{out}"
    );
    let (code, out) = ns.check(&["--vip", "10.77.0.100", "--interface", "nosuch0"]);
    assert_eq!(code, 1);
    assert!(
        line(&out, "vip-interface").contains("nosuch0: no such interface"),
        "{out}"
    );

    // An interface that is down.
    ip(&["-n", &ns.a, "link", "set", "vpa", "down"]);
    let (code, out) = ns.check(&["--vip", "10.77.0.100", "--interface", "vpa"]);
    assert_eq!(code, 1);
    assert!(line(&out, "vip-interface").contains("FAIL"), "{out}");
}
