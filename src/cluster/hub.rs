//! The cluster role through the check-in protocol (docs/protocol.md, v3):
//! the hub's instruction in `desired.cluster` is applied after a successful
//! check-in with `apply::apply` (or `apply::leave` when the operator removed
//! this host), and the role's state goes back in the next check-in request
//! as `cluster`, once per change. The init server's report carries, once it
//! is ready, its secure `K10<ca-hash>::...` join token, which the hub relays
//! to the other members.
//!
//! The instruction (with its token) lives only in `state.json` (0600, like
//! the device credential); `cluster.json` holds no secret.

use super::apply::{self, Record};
use super::{Distro, Endpoint, Role, Spec, Token};
use crate::config::Config;
use crate::error::Result;
use crate::proto::{ClusterReport, ClusterRole};
use crate::sys::Root;

/// The desired tag last acted on (so an unchanged, ready role is left alone).
const APPLIED: &str = "cluster-applied";
/// The last state a check-in carried (so a state is reported once).
const REPORTED: &str = "cluster-reported";
/// The longest log tail sent (the protocol's limit).
const MAX_TAIL: usize = 4096;
/// The desired tag whose K3s bundle manifest was refused: not tried again
/// until the hub's desired state changes (as a refused upgrade offer).
const BUNDLE_REFUSED: &str = "cluster-bundle-refused";
/// After a bundle file failed its signed size or hash: `TAG NEXT_TRY
/// FAILURES`, so a damaged copy on the hub is not downloaded again at every
/// check-in (5 min doubling to 6 h; a new desired state starts over).
const BUNDLE_RETRY: &str = "cluster-bundle-retry";

/// Seconds to wait after the n-th bundle download that failed its hash.
pub fn bundle_backoff(failures: u32) -> u64 {
    let n = failures.clamp(1, 8) - 1;
    (300u64 << n).min(6 * 3600)
}

/// `(next_try, failures)` from the retry file, for this desired tag.
fn bundle_retry(text: &str, tag: &str) -> Option<(u64, u32)> {
    let mut it = text.split_whitespace();
    if it.next()? != tag {
        return None;
    }
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn marker(r: &Record) -> String {
    format!("{} {} {} {}", r.cluster, r.role, r.state, r.at)
}

fn read(root: &Root, state_dir: &str, name: &str) -> String {
    std::fs::read_to_string(root.path(state_dir).join(name))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn write(root: &Root, state_dir: &str, name: &str, text: &str) -> Result<()> {
    let dir = root.path(state_dir);
    crate::fsutil::ensure_dir(&dir, crate::fsutil::SECRET_DIR_MODE)?;
    crate::fsutil::write_atomic(&dir.join(name), format!("{text}\n").as_bytes(), 0o600)
}

/// Keep the last `max` bytes of `s`, cut at a character boundary.
fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut i = s.len() - max;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    s[i..].to_string()
}

/// The report for the next check-in: the recorded state, when no check-in
/// has carried it yet. The init server adds its join token once ready.
pub fn report(root: &Root, state_dir: &str) -> Option<ClusterReport> {
    let r = apply::last_record(root, state_dir)?;
    if read(root, state_dir, REPORTED) == marker(&r) {
        return None;
    }
    let token = (r.role == Role::InitServer.as_str() && r.state == "ready")
        .then(|| root.read_trim(apply::K3S_TOKEN))
        .flatten()
        .filter(|t| Token::new(t.clone()).is_k3s_secure());
    Some(ClusterReport {
        cluster: r.cluster,
        role: r.role,
        state: r.state,
        reason: tail(&r.reason, 1024),
        log_tail: tail(&r.log_tail, MAX_TAIL),
        token,
    })
}

/// A check-in carried `r`: do not send it again.
pub fn mark_reported(root: &Root, state_dir: &str, r: &ClusterReport) {
    if let Some(rec) = apply::last_record(root, state_dir) {
        if rec.cluster == r.cluster && rec.state == r.state {
            if let Err(e) = write(root, state_dir, REPORTED, &marker(&rec)) {
                log::warn!("cluster: {e}");
            }
        }
    }
}

/// Record a state that `apply` did not reach (refused, left).
fn record(
    root: &Root,
    state_dir: &str,
    ins: &ClusterRole,
    state: &str,
    reason: &str,
) -> Result<()> {
    apply::write_record(
        root,
        state_dir,
        &Record {
            schema: apply::RECORD_SCHEMA.into(),
            cluster: ins.cluster.clone(),
            role: ins.role.clone(),
            distro: ins.distro.clone(),
            state: state.into(),
            reason: reason.into(),
            log_tail: String::new(),
            changed: Vec::new(),
            at: crate::sys::unix_secs(std::time::SystemTime::now()),
        },
    )
}

/// Whether this agent may act on the instruction: refused with a reason
/// when it needs a newer agent (the version gate, as for Kubernetes
/// upgrades), or a field is not what the protocol allows.
pub fn verdict(ins: &ClusterRole, running: &str) -> std::result::Result<(), String> {
    if !ins.min_version.is_empty() {
        match crate::upgrade::release::compare(running, &ins.min_version) {
            Ok(std::cmp::Ordering::Less) => {
                return Err(format!(
                    "refusing the {} role in cluster {}: it needs agent >= {}, this agent is {running} (agent_too_old)",
                    ins.role, ins.cluster, ins.min_version
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(format!("refusing the cluster role: min_version: {e}")),
        }
    }
    Ok(())
}

/// Turn the instruction into a spec; every error names the field.
pub fn spec(ins: &ClusterRole, host_id: &str, vip_skip: bool) -> std::result::Result<Spec, String> {
    let distro = Distro::parse(&ins.distro).ok_or_else(|| {
        format!(
            "cluster.distro {:?} is not k3s, pxke or canonical",
            ins.distro
        )
    })?;
    let role = Role::parse(&ins.role).ok_or_else(|| {
        format!(
            "cluster.role {:?} is not init-server, join-server or join-agent",
            ins.role
        )
    })?;
    let endpoint = Endpoint::parse(&ins.endpoint).map_err(|e| format!("cluster.endpoint: {e}"))?;
    if ins.server_url != endpoint.server_url() {
        return Err(format!(
            "cluster.server_url {:?} is not on the endpoint ({})",
            ins.server_url,
            endpoint.server_url()
        ));
    }
    let token = Token::new(ins.token.clone());
    if ins.token.is_empty() {
        return Err("cluster.token is empty".into());
    }
    if distro == Distro::K3s && role != Role::InitServer && !token.is_k3s_secure() {
        return Err(
            "cluster.token: joiners need the secure K10<ca-hash>::... form (it pins the cluster CA)"
                .into(),
        );
    }
    let node_ip = match &ins.node_ip {
        None => None,
        Some(a) => Some(
            a.parse::<std::net::IpAddr>()
                .map_err(|_| format!("cluster.node_ip {a:?} is not an IP address"))?,
        ),
    };
    Ok(Spec {
        cluster: ins.cluster.clone(),
        distro,
        version: ins.version.clone(),
        endpoint,
        role,
        host_id: host_id.to_string(),
        node_ip,
        interface: ins.interface.clone(),
        pod_cidr: ins.pod_cidr.clone(),
        service_cidr: ins.service_cidr.clone(),
        vip_skip,
        token,
    })
}

/// What the hub's instruction asks of this host after a check-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// No instruction, or the role is ready under this desired state, or
    /// the host has left already.
    Nothing,
    /// The hub removed this host: leave the cluster.
    Leave,
    /// Apply the role: the desired state is new, or the role is not ready
    /// yet (a failed role is retried at each check-in).
    Apply,
}

/// Decide from the state directory alone (cheap: run at every check-in).
pub fn next_step(
    root: &Root,
    state_dir: &str,
    desired_tag: &str,
    ins: Option<&ClusterRole>,
) -> Step {
    let Some(ins) = ins else {
        return Step::Nothing;
    };
    let last = apply::last_record(root, state_dir);
    if ins.leave {
        return if last.is_some_and(|r| r.state != "left") {
            Step::Leave
        } else {
            Step::Nothing
        };
    }
    let same = read(root, state_dir, APPLIED) == desired_tag;
    if same && last.is_some_and(|r| r.state == "ready") {
        Step::Nothing
    } else {
        Step::Apply
    }
}

/// After a successful check-in: act on `desired.cluster` (see `next_step`).
/// Blocks while K3s starts (up to `timeout` for running and again for
/// ready): `outpost checkin` calls it directly, `outpost run` through
/// `worker::Worker` in a separate process so its loop goes on.
pub fn after_checkin(
    root: &Root,
    cfg: &Config,
    desired_tag: &str,
    ins: Option<&ClusterRole>,
    timeout: std::time::Duration,
) -> Result<()> {
    let sd = &cfg.state_dir.value;
    let step = next_step(root, sd, desired_tag, ins);
    let Some(ins) = ins.filter(|_| step != Step::Nothing) else {
        return Ok(());
    };
    let start = if root.is_live() {
        apply::Start::Systemd
    } else {
        apply::Start::Direct
    };
    if step == Step::Leave {
        log::info!(
            "cluster {}: the hub removed this host; leaving",
            ins.cluster
        );
        for step in apply::leave(root, start, false, sd)? {
            log::info!("cluster: {step}");
        }
        return record(root, sd, ins, "left", "");
    }
    write(root, sd, APPLIED, desired_tag)?;
    if let Err(why) = verdict(ins, &crate::version::running()) {
        log::error!("{why}");
        return record(root, sd, ins, "failed", &why);
    }
    let host = crate::sys::host();
    let host_id = crate::identity::host_id(root, cfg, host.as_ref())?.id;
    let spec = match spec(ins, &host_id, cfg.vip_skip.value) {
        Ok(s) => s,
        Err(why) => {
            log::error!("cluster {}: {why}", ins.cluster);
            return record(root, sd, ins, "failed", &why);
        }
    };
    let facts = crate::facts::kernel::read(root, host.as_ref());
    let opts = apply::Options {
        k3s_bin: None,
        images: Vec::new(),
        start,
        timeout,
        ca_hash: None,
        node_name: facts.hostname.unwrap_or_else(|| "localhost".into()),
        state_dir: sd.clone(),
        ddns_configured: cfg.ddns_server.value.is_some(),
    };
    let mut say = |st: &super::RoleState| match st {
        super::RoleState::Failed { reason, .. } => {
            log::error!(
                "cluster {} role {}: failed: {reason}",
                spec.cluster,
                spec.role.as_str()
            )
        }
        s => log::info!(
            "cluster {} role {}: {}",
            spec.cluster,
            spec.role.as_str(),
            s.name()
        ),
    };
    // The K3s bundle from the hub: verified with our own trusted keys
    // before anything is downloaded; a bad one fails the role (reported)
    // and ends this step with exit 21.
    // A manifest refused (signature, version, architecture, URL) is not
    // tried again until the hub's desired state changes.
    let now = crate::sys::unix_secs(host.now());
    let refuse = |e: crate::error::Error| -> Result<()> {
        write(root, sd, BUNDLE_REFUSED, desired_tag)?;
        Err(e)
    };
    let bundle = match ins.bundle.as_ref().filter(|_| spec.distro == Distro::K3s) {
        None => None,
        Some(_) if read(root, sd, BUNDLE_REFUSED) == desired_tag => {
            log::info!(
                "cluster {}: the K3s bundle of this desired state failed verification before; not tried again until the hub changes it",
                ins.cluster
            );
            return Ok(());
        }
        Some(_)
            if bundle_retry(&read(root, sd, BUNDLE_RETRY), desired_tag)
                .is_some_and(|(t, _)| now < t) =>
        {
            let (t, n) =
                bundle_retry(&read(root, sd, BUNDLE_RETRY), desired_tag).unwrap_or_default();
            log::info!(
                "cluster {}: the K3s bundle failed its signed hash {n} time(s); next download in {} s",
                ins.cluster,
                t.saturating_sub(now)
            );
            return Ok(());
        }
        Some(b) => match hub_bundle(cfg, b, &spec.version) {
            Ok(m) => Some((m, b.url.as_str())),
            Err(e) => {
                log::error!("cluster {}: {e}", ins.cluster);
                record(root, sd, ins, "failed", e.message())?;
                return refuse(e);
            }
        },
    };
    let Some((m, url)) = bundle else {
        apply::apply(root, &spec, &opts, None, &mut say)?;
        return Ok(());
    };
    let settings = crate::checkin::http_settings(cfg, host.as_ref())?;
    let system = crate::http::read_system_ca(root)?;
    let anchors = crate::state::Paths::new(root.path(sd)).ca_anchors();
    let client = crate::http::Client::with_anchor_cache(settings, system.as_ref(), Some(&anchors))?;
    if !url.to_ascii_lowercase().starts_with("https://") && !client.settings().allow_plain_loopback
    {
        let e = crate::error::Error::new(
            crate::error::Code::UpgradeRejected,
            format!("cluster.bundle.url {url:?} is not https:// (refused)"),
        );
        record(root, sd, ins, "failed", e.message())?;
        return refuse(e);
    }
    let src = super::bundle::Source::Hub {
        client: &client,
        base: url,
        request_timeout: std::time::Duration::from_secs(cfg.request_timeout.value),
    };
    // A file that fails its signed size or hash is tried again later, with
    // backoff (the hub's copy may be repaired without a new manifest).
    match apply::apply(root, &spec, &opts, Some((&m, &src)), &mut say) {
        Ok(_) => {
            let _ = std::fs::remove_file(root.path(sd).join(BUNDLE_RETRY));
            Ok(())
        }
        Err(e) => {
            if e.code() == crate::error::Code::UpgradeRejected {
                let n = bundle_retry(&read(root, sd, BUNDLE_RETRY), desired_tag)
                    .map_or(0, |(_, n)| n)
                    .saturating_add(1);
                let next = now + bundle_backoff(n);
                write(root, sd, BUNDLE_RETRY, &format!("{desired_tag} {next} {n}"))?;
            }
            Err(e)
        }
    }
}

/// Verify the bundle of an instruction: signature with the trusted release
/// keys, the fields, the cluster's version and this host's architecture.
fn hub_bundle(
    cfg: &Config,
    b: &crate::proto::ClusterBundle,
    version: &str,
) -> Result<super::bundle::Manifest> {
    let keys = crate::upgrade::trusted_keys(cfg);
    let (m, key) = super::bundle::verify(&b.manifest, &b.signature, &keys).map_err(|e| {
        crate::error::Error::new(
            crate::error::Code::UpgradeRejected,
            format!("K3s bundle from the hub: {e}"),
        )
    })?;
    super::bundle::check_fits(&m, version, crate::upgrade::release::own_arch())?;
    log::info!(
        "K3s bundle {} {} from the hub ({} files, {} bytes), signed by key {key}",
        m.version,
        m.arch,
        m.files.len(),
        m.total()
    );
    Ok(m)
}

/// `outpost cluster from-hub` (started by `worker::Worker`): act on the
/// instruction of the last check-in answer, as kept in `state.json`.
pub fn from_state(root: &Root, cfg: &Config, timeout: std::time::Duration) -> Result<()> {
    let paths = crate::state::Paths::new(root.path(&cfg.state_dir.value));
    let Some(st) = crate::state::load_state(&paths)? else {
        return Ok(());
    };
    let ins = st.desired.as_ref().and_then(|d| d.cluster.as_ref());
    after_checkin(root, cfg, &st.desired_tag, ins, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(role: &str, token: &str) -> ClusterRole {
        ClusterRole {
            cluster: "edge-1".into(),
            distro: "k3s".into(),
            version: "v1.31.4+k3s1".into(),
            endpoint: "vip:10.0.0.100".into(),
            role: role.into(),
            server_url: "https://10.0.0.100:6443".into(),
            token: token.into(),
            interface: None,
            pod_cidr: None,
            service_cidr: None,
            min_version: String::new(),
            leave: false,
            node_ip: None,
            bundle: None,
        }
    }

    #[test]
    fn instructions_become_specs_or_clear_refusals() {
        let k10 = format!("K10{}::server:abc", "a".repeat(64));
        assert!(spec(&ins("init-server", "boot"), "h", false).is_ok());
        assert!(spec(&ins("join-server", &k10), "h", false).is_ok());
        let e = spec(&ins("join-agent", "plain"), "h", false).unwrap_err();
        assert!(e.contains("secure K10"), "{e}");
        let e = spec(&ins("boss", &k10), "h", false).unwrap_err();
        assert!(e.starts_with("cluster.role"), "{e}");
        let mut bad = ins("join-agent", &k10);
        bad.server_url = "https://10.0.0.9:6443".into();
        let e = spec(&bad, "h", false).unwrap_err();
        assert!(e.contains("not on the endpoint"), "{e}");
        let e = spec(&ins("init-server", ""), "h", false).unwrap_err();
        assert!(e.contains("token is empty"), "{e}");
        let mut with_ip = ins("init-server", "boot");
        with_ip.node_ip = Some("10.0.2.15".into());
        let s = spec(&with_ip, "h", false).expect("spec");
        assert_eq!(s.node_ip, "10.0.2.15".parse().ok());
        with_ip.node_ip = Some("10.0.2".into());
        let e = spec(&with_ip, "h", false).unwrap_err();
        assert_eq!(e, "cluster.node_ip \"10.0.2\" is not an IP address");
    }

    #[test]
    fn version_gate_refuses_an_instruction_for_a_newer_agent() {
        let mut i = ins("init-server", "boot");
        assert!(verdict(&i, "0.1.0").is_ok());
        i.min_version = "0.2.0".into();
        let e = verdict(&i, "0.1.0").unwrap_err();
        assert!(e.contains("agent_too_old") && e.contains(">= 0.2.0"), "{e}");
        assert!(verdict(&i, "0.2.0").is_ok());
        assert!(verdict(&i, "0.3.1").is_ok());
    }

    #[test]
    fn debug_of_instruction_and_report_hides_the_token() {
        let i = ins("init-server", "s3cr3t-bootstrap");
        assert!(!format!("{i:?}").contains("s3cr3t"));
        let r = ClusterReport {
            cluster: "c".into(),
            role: "init-server".into(),
            state: "ready".into(),
            reason: String::new(),
            log_tail: String::new(),
            token: Some("K10secret".into()),
        };
        assert!(!format!("{r:?}").contains("K10secret"));
    }

    #[test]
    fn bundle_downloads_back_off() {
        assert_eq!(
            (1..=9).map(bundle_backoff).collect::<Vec<_>>(),
            [300, 600, 1200, 2400, 4800, 9600, 19200, 21600, 21600]
        );
        assert_eq!(
            bundle_retry("t1 1700000300 2\n", "t1"),
            Some((1_700_000_300, 2))
        );
        assert_eq!(
            bundle_retry("t1 1700000300 2", "t2"),
            None,
            "another desired state"
        );
        assert_eq!(bundle_retry("", "t1"), None);
        assert_eq!(bundle_retry("t1 x 2", "t1"), None);
    }

    #[test]
    fn tail_keeps_the_end_at_a_char_boundary() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("ab", 3), "ab");
        assert_eq!(tail("aé", 1), "");
    }
}
