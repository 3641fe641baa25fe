//! Applying a role under a root: write the rendered files (only when their
//! content or mode differs), install the K3s binary, airgap images and unit,
//! start K3s, wait for it to run and for the node to be ready, and record
//! each state in `cluster.json` in the state directory:
//! installing -> running -> ready, or failed with the reason and the log tail.
//!
//! Two ways to start: `Systemd` on a live host (`systemctl enable --now`,
//! `systemctl is-active`, `journalctl` for the tail), and `Direct` for an
//! image or test root (the binary under the root started as a child with
//! `--config`/`--data-dir` under the root, its log in `/var/log`). Readiness:
//! servers ask `k3s kubectl get node` for the Ready condition; agents ask
//! the kubelet's health endpoint (127.0.0.1:10248/healthz).
//!
//! Only K3s is applied; PXK-E and Canonical get their configuration rendered
//! and the role fails with a reason saying so.

use super::render;
use super::{Distro, Role, RoleState, Spec};
use crate::error::{Code, Error, Result};
use crate::sys::Root;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const K3S_BIN: &str = "/usr/local/bin/k3s";
pub const K3S_IMAGES_DIR: &str = "/var/lib/rancher/k3s/agent/images";
pub const K3S_DATA_DIR: &str = "/var/lib/rancher/k3s";
pub const K3S_MAIN_CONFIG: &str = "/etc/rancher/k3s/config.yaml";
pub const K3S_KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";
pub const K3S_TOKEN: &str = "/var/lib/rancher/k3s/server/token";
pub const DIRECT_LOG: &str = "/var/log/outpost-k3s.log";
pub const DIRECT_PID: &str = "/run/outpost/k3s.pid";
const UNIT_TEMPLATE: &str = include_str!("../../dist/k3s.service");

/// How K3s is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Systemd,
    Direct,
}

pub struct Options {
    /// The K3s binary from the bundle; None keeps the installed one.
    pub k3s_bin: Option<PathBuf>,
    /// Airgap image archives to place in the images directory.
    pub images: Vec<PathBuf>,
    pub start: Start,
    /// How long to wait for running and for ready.
    pub timeout: Duration,
    /// kubeadm joins: the cluster CA hash (`sha256:...`).
    pub ca_hash: Option<String>,
    /// The node name K3s registers (the host name).
    pub node_name: String,
    /// Where `cluster.json` goes (the state directory, a host path).
    pub state_dir: String,
    /// `outpost.ddns.*` is set: the init server of a DNS-name cluster
    /// publishes the name itself, so it need not resolve before.
    pub ddns_configured: bool,
}

/// The unit for this role: `k3s.service` (server, Type=notify) or
/// `k3s-agent.service` (agent, Type=exec).
pub fn unit(role: Role) -> (&'static str, String) {
    let (name, mode, ty) = if role.is_server() {
        ("k3s.service", "server", "notify")
    } else {
        ("k3s-agent.service", "agent", "exec")
    };
    (
        name,
        UNIT_TEMPLATE.replace("@MODE@", mode).replace("@TYPE@", ty),
    )
}

/// Write `content` with `mode` unless the file already holds exactly that.
/// Returns whether it changed anything.
fn put(root: &Root, host_path: &str, mode: u32, content: &[u8]) -> Result<bool> {
    let path = root.path(host_path);
    if let (Ok(old), Ok(meta)) = (std::fs::read(&path), std::fs::metadata(&path)) {
        if old == content && meta.permissions().mode() & 0o7777 == mode {
            return Ok(false);
        }
    }
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| Error::io("creating directory", dir, &e))?;
    }
    crate::fsutil::write_atomic(&path, content, mode)?;
    Ok(true)
}

/// The state record written at each step (no secrets in it).
#[derive(Debug, miniserde::Serialize, miniserde::Deserialize)]
pub struct Record {
    pub schema: String,
    pub cluster: String,
    pub role: String,
    pub distro: String,
    pub state: String,
    pub reason: String,
    pub log_tail: String,
    pub changed: Vec<String>,
    pub at: u64,
}

pub const RECORD_SCHEMA: &str = "outpost.cluster-role/v1";

fn record(
    root: &Root,
    opts: &Options,
    spec: &Spec,
    st: &RoleState,
    changed: &[String],
) -> Result<()> {
    let (reason, tail) = match st {
        RoleState::Failed { reason, log_tail } => (reason.clone(), log_tail.clone()),
        _ => (String::new(), String::new()),
    };
    let r = Record {
        schema: RECORD_SCHEMA.into(),
        cluster: spec.cluster.clone(),
        role: spec.role.as_str().into(),
        distro: spec.distro.id().into(),
        state: st.name().into(),
        reason,
        log_tail: tail,
        changed: changed.to_vec(),
        at: crate::sys::unix_secs(std::time::SystemTime::now()),
    };
    write_record(root, &opts.state_dir, &r)
}

/// Write `cluster.json` (no secrets in it) in the state directory.
pub fn write_record(root: &Root, state_dir: &str, r: &Record) -> Result<()> {
    let dir = root.path(state_dir);
    crate::fsutil::ensure_dir(&dir, crate::fsutil::SECRET_DIR_MODE)?;
    let mut j = miniserde::json::to_string(r);
    j.push('\n');
    crate::fsutil::write_atomic(&dir.join("cluster.json"), j.as_bytes(), 0o644)
}

/// Read the last record (for `cluster status` and idempotence).
pub fn last_record(root: &Root, state_dir: &str) -> Option<Record> {
    let text = std::fs::read_to_string(root.path(state_dir).join("cluster.json")).ok()?;
    miniserde::json::from_str(&text).ok()
}

/// Moves through the states, recording each and telling `say`.
struct Machine<'a> {
    root: &'a Root,
    opts: &'a Options,
    spec: &'a Spec,
    state: RoleState,
    changed: Vec<String>,
    say: &'a mut dyn FnMut(&RoleState),
}

impl Machine<'_> {
    fn go(&mut self, next: RoleState) -> Result<()> {
        if !self.state.can_move_to(&next) {
            return Err(Error::new(
                Code::LocalIo,
                format!(
                    "cluster: bad state move {} -> {}",
                    self.state.name(),
                    next.name()
                ),
            ));
        }
        record(self.root, self.opts, self.spec, &next, &self.changed)?;
        (self.say)(&next);
        self.state = next;
        Ok(())
    }

    fn fail(&mut self, reason: String, log_tail: String) -> Result<RoleState> {
        let f = RoleState::Failed { reason, log_tail };
        self.go(f.clone())?;
        Ok(f)
    }
}

/// Apply the role; returns the final state (Ready or Failed). `Err` only
/// when the state itself cannot be recorded or a file cannot be written.
///
/// `bundle`: the verified K3s bundle manifest and where its files come
/// from; its files are installed after the preflight, before anything else
/// is written. A bad artifact records `failed` with the reason and returns
/// the error (exit 21; nothing of the bundle installed).
pub fn apply(
    root: &Root,
    spec: &Spec,
    opts: &Options,
    bundle: Option<(&super::bundle::Manifest, &super::bundle::Source<'_>)>,
    say: &mut dyn FnMut(&RoleState),
) -> Result<(RoleState, Vec<String>)> {
    // K3s never installed here by outpost (its unit is written just before
    // it starts): the control-plane ports must be free of anyone else.
    let first = ["k3s.service", "k3s-agent.service"]
        .iter()
        .all(|u| !root.exists(format!("/etc/systemd/system/{u}")));
    let prev = match last_record(root, &opts.state_dir) {
        Some(r) if r.state == "failed" => RoleState::Failed {
            reason: r.reason,
            log_tail: r.log_tail,
        },
        Some(r) if r.state == "ready" => RoleState::Ready,
        _ => RoleState::Pending,
    };
    let was_ready = prev == RoleState::Ready;
    // Running/installing left by a crash: start over from pending.
    let mut m = Machine {
        root,
        opts,
        spec,
        state: prev,
        changed: Vec::new(),
        say,
    };
    m.go(RoleState::Installing)?;

    // The host checks of `outpost check` that matter for the role, and for
    // a DNS endpoint its name (on a live host: a --root tree's resolver is
    // not the target's), before anything is touched.
    let test_dns =
        cfg!(feature = "test-hooks") && std::env::var_os("OUTPOST_TEST_DNS_PREFLIGHT").is_some();
    let resolve = match &spec.endpoint {
        super::Endpoint::Dns(n)
            if (root.is_live() || test_dns)
                && super::preflight::needs_resolution(spec.role, opts.ddns_configured) =>
        {
            Some(n.as_str())
        }
        _ => None,
    };
    if let Some(why) = super::preflight::for_role(
        root,
        spec.distro,
        first,
        opts.start == Start::Systemd,
        resolve,
    ) {
        return Ok((m.fail(why, String::new())?, m.changed));
    }

    // The VIP preflight, on a live host only (a --root tree has no network).
    if root.is_live() && spec.wants_kube_vip() {
        if let Some(vip) = spec.endpoint.vip() {
            let probes = if needs_free_vip(spec.role, was_ready) {
                3
            } else {
                0
            };
            let checks = if probes == 0 {
                super::vip::preflight_no_probe(root, vip, spec.interface.as_deref())
            } else {
                super::vip::preflight(root, vip, spec.interface.as_deref(), probes)
            };
            if let Some(why) = preflight_verdict(&checks, spec.role, was_ready) {
                return Ok((m.fail(why, String::new())?, m.changed));
            }
        }
    }

    if let Some((bm, src)) = bundle {
        if spec.distro == Distro::K3s {
            match super::bundle::install(root, bm, src, &|| {}) {
                Ok(changed) => m.changed.extend(changed),
                Err(e) => {
                    m.fail(e.message().to_string(), String::new())?;
                    return Err(e);
                }
            }
        }
    }
    let files = match render::files(spec, opts.ca_hash.as_deref()) {
        Ok(f) => f,
        Err(e) => return Ok((m.fail(e, String::new())?, m.changed)),
    };
    for (path, mode, text) in &files {
        if put(root, path, *mode, text.as_bytes())? {
            m.changed.push((*path).to_string());
        }
    }
    if spec.distro != Distro::K3s {
        let paths: Vec<&str> = files.iter().map(|f| f.0).collect();
        let why = format!(
            "applying {} is not implemented: configuration rendered to {}",
            spec.distro.id(),
            paths.join(", ")
        );
        return Ok((m.fail(why, String::new())?, m.changed));
    }
    // Binary and images from the bundle.
    if let Some(src) = &opts.k3s_bin {
        let bytes = std::fs::read(src).map_err(|e| Error::io("reading", src, &e))?;
        if put(root, K3S_BIN, 0o755, &bytes)? {
            m.changed.push(K3S_BIN.into());
        }
    } else if !root.exists(K3S_BIN) {
        return Ok((
            m.fail(
                format!("no K3s binary at {K3S_BIN}: add a signed K3s bundle on the hub (cluster bundle add) or give --bundle DIR"),
                String::new(),
            )?,
            m.changed,
        ));
    }
    for img in &opts.images {
        let Some(name) = img.file_name().and_then(|n| n.to_str()) else {
            return Err(Error::usage(format!("{}: not a file name", img.display())));
        };
        let bytes = std::fs::read(img).map_err(|e| Error::io("reading", img, &e))?;
        let dest = format!("{K3S_IMAGES_DIR}/{name}");
        if put(root, &dest, 0o644, &bytes)? {
            m.changed.push(dest);
        }
    }
    let (unit_name, unit_text) = unit(spec.role);
    let unit_path = format!("/etc/systemd/system/{unit_name}");
    if put(root, &unit_path, 0o644, unit_text.as_bytes())? {
        m.changed.push(unit_path);
    }

    // Start (or restart when something changed), then wait for running.
    let restart = !m.changed.is_empty();
    let started = match opts.start {
        Start::Systemd => start_systemd(unit_name, restart, opts.timeout),
        Start::Direct => start_direct(root, spec.role, restart, opts.timeout),
    };
    if let Err(why) = started {
        let tail = log_of(root, opts.start, unit_name);
        return Ok((m.fail(why, tail)?, m.changed));
    }
    m.go(RoleState::Running)?;

    match wait_ready(root, spec.role, opts) {
        Ok(()) => {}
        Err(why) => {
            let tail = log_of(root, opts.start, unit_name);
            return Ok((m.fail(why, tail)?, m.changed));
        }
    }
    if spec.role == Role::InitServer {
        // The join token joiners get: K10<CA hash>::... (pins the CA).
        let tok = root.read_trim(K3S_TOKEN).unwrap_or_default();
        if !super::Token::new(tok).is_k3s_secure() {
            return Ok((
                m.fail(
                    format!("{K3S_TOKEN}: missing or not in the secure K10<ca-hash>::... form"),
                    String::new(),
                )?,
                m.changed,
            ));
        }
    }
    m.go(RoleState::Ready)?;
    Ok((RoleState::Ready, m.changed))
}

/// Only the init server's first apply needs the VIP to be free: joiners
/// find it answered by the cluster's kube-vip, and a re-apply on the init
/// node may hold it itself (kube-vip leader).
pub fn needs_free_vip(role: Role, was_ready: bool) -> bool {
    role == Role::InitServer && !was_ready
}

/// The first failing preflight line that matters for this role, as the
/// role's failure reason; None when the role may go on.
pub fn preflight_verdict(
    checks: &[crate::checks::Check],
    role: Role,
    was_ready: bool,
) -> Option<String> {
    let free = needs_free_vip(role, was_ready);
    checks
        .iter()
        .filter(|c| c.outcome.status == crate::checks::Status::Fail)
        .find(|c| free || !matches!(c.id, "vip-local" | "vip-arp"))
        .map(|c| format!("preflight {}: {}", c.id, c.outcome.observed))
}

fn log_of(root: &Root, start: Start, unit: &str) -> String {
    let text = match start {
        Start::Direct => std::fs::read_to_string(root.path(DIRECT_LOG)).unwrap_or_default(),
        Start::Systemd => Command::new("journalctl")
            .args(["-u", unit, "-n", "20", "--no-pager", "-o", "cat"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default(),
    };
    super::log_tail(&text, 20)
}

fn run_quiet(cmd: &mut Command) -> std::result::Result<String, String> {
    let what = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {what}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn start_systemd(unit: &str, restart: bool, timeout: Duration) -> std::result::Result<(), String> {
    run_quiet(Command::new("systemctl").arg("daemon-reload"))?;
    run_quiet(Command::new("systemctl").args(["enable", unit]))?;
    // --no-block: the server unit is Type=notify and K3s says READY only
    // once it is up, which can take minutes (the unit has no start
    // timeout); the loop below bounds the wait instead.
    let verb = if restart { "restart" } else { "start" };
    run_quiet(Command::new("systemctl").args([verb, "--no-block", unit]))?;
    let until = Instant::now() + timeout;
    loop {
        let out = Command::new("systemctl")
            .args(["show", "-p", "ActiveState,SubState,ExecMainStatus", unit])
            .stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        match unit_verdict(&out) {
            Some(Ok(())) => return Ok(()),
            Some(Err(why)) => return Err(format!("{unit} {why}")),
            None if Instant::now() >= until => {
                return Err(format!(
                    "{unit} not active within {} s ({})",
                    timeout.as_secs(),
                    out.split_whitespace().collect::<Vec<_>>().join(" ")
                ))
            }
            None => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// From `systemctl show -p ActiveState,SubState,ExecMainStatus`: Ok when
/// active, Err when it failed or exited and waits to be restarted (the
/// K3s unit has Restart=always, so a K3s that cannot start never reaches
/// `failed`), None while it is still starting.
pub fn unit_verdict(show: &str) -> Option<std::result::Result<(), String>> {
    let get = |k: &str| {
        show.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or("")
            .trim()
    };
    match (get("ActiveState"), get("SubState")) {
        ("active", _) => Some(Ok(())),
        ("failed", _) | (_, "auto-restart") => Some(Err(format!(
            "exited at start (status {})",
            get("ExecMainStatus")
        ))),
        _ => None,
    }
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

fn start_direct(
    root: &Root,
    role: Role,
    restart: bool,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let pid_path = root.path(DIRECT_PID);
    let old = std::fs::read_to_string(&pid_path)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| pid_alive(*p));
    if let Some(pid) = old {
        if !restart {
            return Ok(());
        }
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let until = Instant::now() + Duration::from_secs(10);
        while pid_alive(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if let Some(d) = pid_path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let log_path = root.path(DIRECT_LOG);
    if let Some(d) = log_path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let mode = if role.is_server() { "server" } else { "agent" };
    let mut cmd = Command::new(root.path(K3S_BIN));
    cmd.arg(mode)
        .arg("--config")
        .arg(root.path(K3S_MAIN_CONFIG))
        .arg("--data-dir")
        .arg(root.path(K3S_DATA_DIR))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", root.path(K3S_BIN).display()))?;
    std::fs::write(&pid_path, format!("{}\n", child.id()))
        .map_err(|e| format!("{}: {e}", pid_path.display()))?;
    // Running = still alive after a short settle, or the timeout if shorter.
    let settle = Instant::now() + Duration::from_secs(1).min(timeout);
    while Instant::now() < settle {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("k3s {mode} exited at start ({st})"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Servers: the node's Ready condition through `k3s kubectl`; agents: the
/// kubelet health endpoint. Polled every second up to the timeout.
fn wait_ready(root: &Root, role: Role, opts: &Options) -> std::result::Result<(), String> {
    let until = Instant::now() + opts.timeout;
    loop {
        let r = if role.is_server() {
            let out = Command::new(root.path(K3S_BIN))
                .args(["kubectl", "--kubeconfig"])
                .arg(root.path(K3S_KUBECONFIG))
                .args([
                    "get",
                    "node",
                    &opts.node_name,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .stdin(Stdio::null())
                .output();
            match out {
                Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "True" => Ok(()),
                Ok(o) => Err(format!(
                    "node {} not ready: {}{}",
                    opts.node_name,
                    String::from_utf8_lossy(&o.stdout).trim(),
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Err(format!("running k3s kubectl: {e}")),
            }
        } else {
            kubelet_healthz()
        };
        let last = match r {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if opts.start == Start::Direct {
            let pid = std::fs::read_to_string(root.path(DIRECT_PID))
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok());
            if pid.is_some_and(|p| !pid_alive(p)) {
                let mode = if role.is_server() { "server" } else { "agent" };
                return Err(format!("k3s {mode} exited while starting"));
            }
        }
        if Instant::now() >= until {
            return Err(format!(
                "not ready within {} s: {last}",
                opts.timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn kubelet_healthz() -> std::result::Result<(), String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 10248));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("kubelet healthz: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| format!("kubelet healthz: {e}"))?;
    let mut buf = Vec::new();
    let _ = s.take(4096).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    if text.starts_with("HTTP/1.") && text.contains(" 200 ") && text.trim_end().ends_with("ok") {
        Ok(())
    } else {
        Err(format!(
            "kubelet healthz: {}",
            text.lines().next().unwrap_or("no answer")
        ))
    }
}

/// Take this host out of its cluster, in order: stop K3s (so nothing
/// restarts it), remove the kube-vip manifest and outpost's config files,
/// the units, the binary; with `purge` also the K3s data directory (etcd,
/// the server token: back them up first) and the kubeconfig. Only files
/// outpost writes are removed. Returns the steps done, for the report.
pub fn leave(root: &Root, start: Start, purge: bool, state_dir: &str) -> Result<Vec<String>> {
    let mut done = Vec::new();
    if last_record(root, state_dir).is_none() {
        return Ok(done);
    }
    let units = ["k3s.service", "k3s-agent.service"];
    match start {
        Start::Systemd => {
            for u in units {
                if root.exists(format!("/etc/systemd/system/{u}")) {
                    run_quiet(Command::new("systemctl").args(["disable", "--now", u]))
                        .map_err(|e| Error::new(Code::LocalIo, format!("stopping {u}: {e}")))?;
                    done.push(format!("stopped {u}"));
                }
            }
        }
        Start::Direct => {
            let pid_path = root.path(DIRECT_PID);
            if let Some(pid) = std::fs::read_to_string(&pid_path)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                if pid_alive(pid) {
                    let _ = Command::new("kill").arg(pid.to_string()).status();
                    let until = Instant::now() + Duration::from_secs(10);
                    while pid_alive(pid) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    done.push(format!("stopped k3s (pid {pid})"));
                }
            }
            remove(root, DIRECT_PID, &mut done)?;
        }
    }
    for p in [
        render::K3S_MANIFEST_PATH,
        render::KUBEADM_KUBE_VIP_PATH,
        render::K3S_CONFIG_PATH,
        render::KUBEADM_CONFIG_PATH,
        render::CANONICAL_CONFIG_PATH,
    ] {
        remove(root, p, &mut done)?;
    }
    let mut unit_gone = false;
    for u in units {
        let p = format!("/etc/systemd/system/{u}");
        if root.exists(&p) {
            remove(root, &p, &mut done)?;
            unit_gone = true;
        }
    }
    if unit_gone && start == Start::Systemd {
        let _ = run_quiet(Command::new("systemctl").arg("daemon-reload"));
    }
    remove(root, K3S_BIN, &mut done)?;
    if purge {
        for d in [K3S_DATA_DIR, "/etc/rancher/k3s"] {
            let path = root.path(d);
            if path.exists() {
                std::fs::remove_dir_all(&path).map_err(|e| Error::io("removing", &path, &e))?;
                done.push(format!("removed {d}"));
            }
        }
        remove(root, DIRECT_LOG, &mut done)?;
    }
    let rec = format!("{}/cluster.json", state_dir.trim_end_matches('/'));
    remove(root, &rec, &mut done)?;
    Ok(done)
}

fn remove(root: &Root, host_path: &str, done: &mut Vec<String>) -> Result<()> {
    let path = root.path(host_path);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            done.push(format!("removed {host_path}"));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", &path, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_per_role() {
        use crate::checks::{Check, Outcome, Status};
        let line = |id: &'static str, st: Status, obs: &str| Check {
            id,
            title: "",
            outcome: Outcome::new(st, obs, ""),
        };
        let in_use = vec![
            line("vip-interface", Status::Pass, "eth0: up"),
            line("vip-subnet", Status::Pass, ""),
            line("vip-local", Status::Pass, ""),
            line("vip-arp", Status::Fail, "in use by 02:00:00:00:00:09"),
        ];
        assert_eq!(
            preflight_verdict(&in_use, Role::InitServer, false),
            Some("preflight vip-arp: in use by 02:00:00:00:00:09".into())
        );
        assert_eq!(
            preflight_verdict(&in_use, Role::JoinServer, false),
            None,
            "joiners expect kube-vip to answer"
        );
        assert_eq!(
            preflight_verdict(&in_use, Role::InitServer, true),
            None,
            "re-apply on the leader"
        );
        let down = vec![line("vip-interface", Status::Fail, "eth0: down")];
        for (r, ready) in [
            (Role::InitServer, false),
            (Role::JoinServer, false),
            (Role::InitServer, true),
        ] {
            assert_eq!(
                preflight_verdict(&down, r, ready),
                Some("preflight vip-interface: eth0: down".into()),
                "{r:?} {ready}"
            );
        }
    }

    #[test]
    fn unit_states() {
        let v = |s: &str| unit_verdict(s);
        assert_eq!(
            v("ActiveState=active\nSubState=running\nExecMainStatus=0\n"),
            Some(Ok(()))
        );
        assert_eq!(
            v("ActiveState=activating\nSubState=start\nExecMainStatus=0\n"),
            None,
            "Type=notify before READY=1"
        );
        assert_eq!(
            v("ActiveState=activating\nSubState=auto-restart\nExecMainStatus=1\n"),
            Some(Err("exited at start (status 1)".into()))
        );
        assert_eq!(
            v("ActiveState=failed\nSubState=failed\nExecMainStatus=203\n"),
            Some(Err("exited at start (status 203)".into()))
        );
        assert_eq!(v(""), None);
    }

    #[test]
    fn units_per_role() {
        let (n, t) = unit(Role::InitServer);
        assert_eq!(n, "k3s.service");
        assert!(t.contains("ExecStart=/usr/local/bin/k3s server\n") && t.contains("Type=notify\n"));
        let (n, t) = unit(Role::JoinAgent);
        assert_eq!(n, "k3s-agent.service");
        assert!(t.contains("ExecStart=/usr/local/bin/k3s agent\n") && t.contains("Type=exec\n"));
        assert!(!t.contains('@'), "placeholders left: {t}");
    }
}
