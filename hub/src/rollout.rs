//! The hub's release rollouts and the cluster version gate as pure state
//! machines (tested as tables): which devices get an agent upgrade offer,
//! where each device stands, when a rollout pauses or is done, and whether
//! a cluster's Kubernetes upgrade is held (with explicit reasons) or
//! released. No I/O: `upgrades.rs` loads the records and stores the result.

use miniserde::{Deserialize, Serialize};
use outpost::upgrade::release;
use std::cmp::Ordering;
use std::collections::BTreeSet;

/// A rollout as stored (meta key `rollout`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub version: String,
    /// Devices offered first; the rest wait until all of them committed.
    pub canary: u32,
    /// Share of the fleet to upgrade (1..=100).
    pub percent: u32,
    /// Most devices upgrading at once (0: no limit).
    pub max_parallel: u32,
    /// Only devices with this label (`key=value`), "" for all.
    pub selector: String,
    /// `running`, `paused`, `aborted` or `done`.
    pub state: String,
    /// Why it paused (automatically or by the operator).
    pub reason: String,
    /// Devices that were given the offer, in order.
    pub offered: Vec<String>,
    pub started: u64,
}

/// What the hub knows about one device for these decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevView {
    pub host_id: String,
    /// Agent version of its last check-in.
    pub agent: String,
    pub labels: Vec<(String, String)>,
    /// Last upgrade report: (state, to, reason).
    pub report: Option<(String, String, String)>,
    /// Checked in recently enough (within the missed-interval bound).
    pub online: bool,
    /// Unix seconds of its last check-in.
    pub last_seen: u64,
}

impl DevView {
    fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    fn at_least(&self, v: &str) -> bool {
        matches!(
            release::compare(&self.agent, v),
            Ok(Ordering::Greater | Ordering::Equal)
        )
    }
}

/// Where one device stands in a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevState {
    /// Not offered yet (waiting for canaries, percent or max-parallel).
    Waiting,
    /// Offered; the agent downloads, verifies and swaps after its next
    /// check-in (it reports nothing until then).
    Offered,
    OnTrial,
    Committed,
    RolledBack(String),
    Failed(String),
}

impl DevState {
    pub fn text(&self) -> String {
        match self {
            DevState::Waiting => "waiting".into(),
            DevState::Offered => "offered".into(),
            DevState::OnTrial => "on trial".into(),
            DevState::Committed => "committed".into(),
            DevState::RolledBack(r) => format!("rolled back: {r}"),
            DevState::Failed(r) => format!("failed: {r}"),
        }
    }
    fn in_flight(&self) -> bool {
        matches!(self, DevState::Offered | DevState::OnTrial)
    }
}

pub fn dev_state(r: &Rollout, d: &DevView) -> DevState {
    if d.at_least(&r.version) {
        // The new binary checks in with its own version while on trial:
        // that is not a commit yet (it may still hang and be rolled back).
        return match &d.report {
            Some((state, to, _)) if state == "on_trial" && *to == r.version => DevState::OnTrial,
            _ => DevState::Committed,
        };
    }
    if let Some((state, to, reason)) = &d.report {
        if *to == r.version {
            match state.as_str() {
                "on_trial" => return DevState::OnTrial,
                "rolled_back" => return DevState::RolledBack(reason.clone()),
                "failed" => return DevState::Failed(reason.clone()),
                _ => {}
            }
        }
    }
    if r.offered.contains(&d.host_id) {
        DevState::Offered
    } else {
        DevState::Waiting
    }
}

/// The devices a rollout covers, in a stable order.
pub fn eligible<'a>(r: &Rollout, devs: &'a [DevView]) -> Vec<&'a DevView> {
    let sel = r.selector.split_once('=');
    let mut v: Vec<&DevView> = devs
        .iter()
        .filter(|d| match sel {
            Some((k, val)) => d.label(k) == Some(val),
            None => true,
        })
        .collect();
    v.sort_by(|a, b| a.host_id.cmp(&b.host_id));
    v
}

/// One step of a rollout: offer to the next devices, pause on a failure,
/// finish when every targeted device committed.
pub fn step(r: &Rollout, devs: &[DevView]) -> Rollout {
    let mut n = r.clone();
    if n.state != "running" {
        return n;
    }
    let all = eligible(r, devs);
    let target = (all.len() * n.percent.clamp(1, 100) as usize).div_ceil(100);
    let targeted: Vec<&DevView> = all.into_iter().take(target).collect();
    let states: Vec<(String, DevState)> = targeted
        .iter()
        .map(|d| (d.host_id.clone(), dev_state(r, d)))
        .collect();
    // A failure anywhere pauses the rollout with the reason.
    if let Some((h, s)) = states
        .iter()
        .find(|(_, s)| matches!(s, DevState::RolledBack(_) | DevState::Failed(_)))
    {
        n.state = "paused".into();
        n.reason = format!("{h} {}", s.text());
        return n;
    }
    if states.iter().all(|(_, s)| *s == DevState::Committed) {
        n.state = "done".into();
        return n;
    }
    let canaries = (n.canary as usize).min(states.len());
    let canaries_done = states[..canaries]
        .iter()
        .all(|(_, s)| *s == DevState::Committed);
    let mut in_flight = states.iter().filter(|(_, s)| s.in_flight()).count();
    let limit = if n.max_parallel == 0 {
        usize::MAX
    } else {
        n.max_parallel as usize
    };
    let offered: BTreeSet<String> = n.offered.iter().cloned().collect();
    for (i, (h, s)) in states.iter().enumerate() {
        if *s != DevState::Waiting || offered.contains(h) {
            continue;
        }
        if i >= canaries && !canaries_done {
            break;
        }
        if in_flight >= limit {
            break;
        }
        n.offered.push(h.clone());
        in_flight += 1;
    }
    n
}

/// Whether this device gets the rollout's offer now.
pub fn offers_to(r: &Rollout, host_id: &str) -> bool {
    (r.state == "running" || r.state == "paused") && r.offered.iter().any(|h| h == host_id)
}

/// A pending Kubernetes upgrade of a cluster (meta key `cluster:<name>`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ClusterUpgrade {
    pub cluster: String,
    pub kubernetes: String,
    /// The lowest agent version the new Kubernetes packs need.
    pub min_agent: String,
    /// `holding` or `released`.
    pub state: String,
    /// Why it holds: one entry per host (or for the cluster).
    pub reasons: Vec<String>,
    pub released_at: u64,
}

/// The gate: held until every member runs an agent at or above the minimum,
/// is online and has no rolled-back upgrade towards it; then released (and
/// it stays released).
pub fn gate(c: &ClusterUpgrade, devs: &[DevView], now: u64) -> ClusterUpgrade {
    let mut n = c.clone();
    if n.state == "released" {
        return n;
    }
    let members: Vec<&DevView> = devs
        .iter()
        .filter(|d| d.label("cluster") == Some(c.cluster.as_str()))
        .collect();
    let mut reasons = Vec::new();
    if members.is_empty() {
        reasons.push(format!("no device is labelled cluster={}", c.cluster));
    }
    for d in members {
        if !d.online {
            reasons.push(format!(
                "{}: offline (last check-in {})",
                d.host_id,
                outpost::timefmt::rfc3339(d.last_seen)
            ));
        } else if !d.at_least(&c.min_agent) {
            let rolled = d.report.as_ref().filter(|(s, _, _)| s == "rolled_back");
            match rolled {
                Some((_, to, why)) => reasons.push(format!(
                    "{}: agent {} rolled back from {to} ({why}); needs >= {}",
                    d.host_id, d.agent, c.min_agent
                )),
                None => reasons.push(format!(
                    "{}: agent {} is older than the required {} (agent upgrade offered)",
                    d.host_id, d.agent, c.min_agent
                )),
            }
        }
    }
    if reasons.is_empty() {
        n.state = "released".into();
        n.reasons = Vec::new();
        n.released_at = now;
    } else {
        n.state = "holding".into();
        n.reasons = reasons;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(h: &str, agent: &str, report: Option<(&str, &str, &str)>) -> DevView {
        DevView {
            host_id: h.into(),
            agent: agent.into(),
            labels: vec![("cluster".into(), "shop".into())],
            report: report.map(|(a, b, c)| (a.into(), b.into(), c.into())),
            online: true,
            last_seen: 100,
        }
    }

    fn ro(canary: u32, percent: u32, par: u32, offered: &[&str]) -> Rollout {
        Rollout {
            version: "0.2.0".into(),
            canary,
            percent,
            max_parallel: par,
            selector: String::new(),
            state: "running".into(),
            reason: String::new(),
            offered: offered.iter().map(|s| s.to_string()).collect(),
            started: 0,
        }
    }

    #[test]
    fn rollout_table() {
        let old = |h| dev(h, "0.1.0", None);
        let new = |h| dev(h, "0.2.0", None);
        let three = [old("a"), old("b"), old("c")];
        type Case<'a> = (
            &'a str,
            Rollout,
            Vec<DevView>,
            &'a str,
            Vec<&'a str>,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                "canary 1 first",
                ro(1, 100, 0, &[]),
                three.to_vec(),
                "running",
                vec!["a"],
                "",
            ),
            (
                "others wait for the canary",
                ro(1, 100, 0, &["a"]),
                three.to_vec(),
                "running",
                vec!["a"],
                "",
            ),
            (
                "canary on trial still waits",
                ro(1, 100, 0, &["a"]),
                vec![
                    dev("a", "0.1.0", Some(("on_trial", "0.2.0", ""))),
                    old("b"),
                    old("c"),
                ],
                "running",
                vec!["a"],
                "",
            ),
            (
                "canary on trial reporting the new version still waits",
                ro(1, 100, 0, &["a"]),
                vec![
                    dev("a", "0.2.0", Some(("on_trial", "0.2.0", ""))),
                    old("b"),
                    old("c"),
                ],
                "running",
                vec!["a"],
                "",
            ),
            (
                "the only device on trial: not done yet",
                ro(0, 100, 0, &["a"]),
                vec![dev("a", "0.2.0", Some(("on_trial", "0.2.0", "")))],
                "running",
                vec!["a"],
                "",
            ),
            (
                "canary committed: the rest",
                ro(1, 100, 0, &["a"]),
                vec![new("a"), old("b"), old("c")],
                "running",
                vec!["a", "b", "c"],
                "",
            ),
            (
                "max-parallel 1",
                ro(1, 100, 1, &["a"]),
                vec![new("a"), old("b"), old("c")],
                "running",
                vec!["a", "b"],
                "",
            ),
            (
                "percent 50 of 3 is 2",
                ro(0, 50, 0, &[]),
                three.to_vec(),
                "running",
                vec!["a", "b"],
                "",
            ),
            (
                "canary rolled back: pause",
                ro(1, 100, 0, &["a"]),
                vec![
                    dev("a", "0.1.0", Some(("rolled_back", "0.2.0", "crashed"))),
                    old("b"),
                    old("c"),
                ],
                "paused",
                vec!["a"],
                "a rolled back: crashed",
            ),
            (
                "failure pauses too",
                ro(0, 100, 0, &["a", "b", "c"]),
                vec![
                    new("a"),
                    dev("b", "0.1.0", Some(("failed", "0.2.0", "SHA-256"))),
                    old("c"),
                ],
                "paused",
                vec!["a", "b", "c"],
                "b failed: SHA-256",
            ),
            (
                "all committed: done",
                ro(1, 100, 0, &["a", "b", "c"]),
                vec![new("a"), new("b"), new("c")],
                "done",
                vec!["a", "b", "c"],
                "",
            ),
            (
                "percent reached: done",
                ro(0, 34, 0, &["a", "b"]),
                vec![new("a"), new("b"), old("c")],
                "done",
                vec!["a", "b"],
                "",
            ),
        ];
        for (name, r, devs, state, offered, reason) in cases {
            let n = step(&r, &devs);
            assert_eq!(n.state, state, "{name}");
            assert_eq!(n.offered, offered, "{name}");
            assert_eq!(n.reason, reason, "{name}");
        }
        let mut paused = ro(1, 100, 0, &["a"]);
        paused.state = "paused".into();
        assert_eq!(
            step(&paused, &[new("a"), old("b")]).offered,
            ["a"],
            "paused offers nothing new"
        );
        assert!(offers_to(&paused, "a") && !offers_to(&paused, "b"));
        let mut aborted = paused.clone();
        aborted.state = "aborted".into();
        assert!(!offers_to(&aborted, "a"), "abort withdraws the offer");
    }

    #[test]
    fn gate_table() {
        let c = ClusterUpgrade {
            cluster: "shop".into(),
            kubernetes: "1.30.2".into(),
            min_agent: "0.2.0".into(),
            state: "holding".into(),
            reasons: vec![],
            released_at: 0,
        };
        let mut offline = dev("c", "0.2.0", None);
        offline.online = false;
        let mut elsewhere = dev("z", "0.0.1", None);
        elsewhere.labels = vec![("cluster".into(), "other".into())];
        let cases: Vec<(&str, Vec<DevView>, &str, Vec<&str>)> = vec![
            (
                "no members",
                vec![elsewhere.clone()],
                "holding",
                vec!["no device is labelled cluster=shop"],
            ),
            (
                "one too old",
                vec![
                    dev("a", "0.2.0", None),
                    dev("b", "0.1.0", None),
                    elsewhere.clone(),
                ],
                "holding",
                vec!["b: agent 0.1.0 is older than the required 0.2.0 (agent upgrade offered)"],
            ),
            (
                "rolled back and offline",
                vec![
                    dev("a", "0.1.0", Some(("rolled_back", "0.2.0", "crashed"))),
                    offline.clone(),
                ],
                "holding",
                vec![
                    "a: agent 0.1.0 rolled back from 0.2.0 (crashed); needs >= 0.2.0",
                    "c: offline (last check-in 1970-01-01T00:01:40Z)",
                ],
            ),
            (
                "pre-release is older",
                vec![dev("a", "0.2.0-rc.1", None)],
                "holding",
                vec![
                    "a: agent 0.2.0-rc.1 is older than the required 0.2.0 (agent upgrade offered)",
                ],
            ),
            (
                "all at or above",
                vec![dev("a", "0.2.0", None), dev("b", "0.3.0", None), elsewhere],
                "released",
                vec![],
            ),
        ];
        for (name, devs, state, reasons) in cases {
            let n = gate(&c, &devs, 500);
            assert_eq!(n.state, state, "{name}");
            assert_eq!(n.reasons, reasons, "{name}");
        }
        let released = gate(&c, &[dev("a", "0.2.0", None)], 500);
        assert_eq!(released.released_at, 500);
        assert_eq!(
            gate(&released, &[dev("a", "0.1.0", None)], 600).state,
            "released",
            "a released gate stays released"
        );
    }
}
