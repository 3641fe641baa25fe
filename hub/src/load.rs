//! The load generator (`outpost-hub-load`, docs/BENCHMARKS.md): simulated
//! devices, each with its own host ID, credential and schedule.
//!
//! Two modes:
//! - `spread`: a virtual clock, no network and no sleeping. Every device
//!   follows the agent's real scheduling functions (`outpost::schedule`,
//!   `outpost::checkin::next_due_ms`) with the hub's real phase function
//!   (`slots::phase_ms`, or the host-ID hash `secret::phase_ms` of the hubs
//!   before it), through a registration burst, a steady stretch, and an
//!   outage of the hub. It counts check-ins per 1-second bin and how late
//!   each device is back.
//! - `tls` (`tls.rs` of this module: [`run_tls`]): the real protocol over
//!   TLS against running hubs, on loopback: register N devices, then check
//!   each in at its slot for a bounded window, from a bounded number of
//!   threads (synchronous, no async code).
//!
//! Must stay bounded: every loop ends at a device count or a deadline.

use outpost::checkin::next_due_ms;
use outpost::schedule;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// A small deterministic random generator (splitmix64), so a run is
/// repeatable from its seed. Not for secrets.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn draw(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Events per 1-second bin over `[from_ms, to_ms)`; events outside are
/// left out.
pub fn bins(times_ms: &[u64], from_ms: u64, to_ms: u64) -> Vec<u32> {
    let n = to_ms.saturating_sub(from_ms).div_ceil(1000) as usize;
    let mut b = vec![0u32; n];
    for &t in times_ms {
        if t >= from_ms && t < to_ms {
            b[((t - from_ms) / 1000) as usize] += 1;
        }
    }
    b
}

/// The fullest bin over `mean` (events per second): 1.0 is perfectly even.
pub fn peak_over_mean(bins: &[u32], mean: f64) -> f64 {
    let peak = bins.iter().copied().max().unwrap_or(0);
    if mean > 0.0 {
        f64::from(peak) / mean
    } else {
        0.0
    }
}

/// The `p`-th percentile (0..=100) of `sorted` (ascending), nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Which scheduling rules the simulated fleet follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// Before server-assigned slots: the phase a hash of the host ID, up to
    /// 5 % / 5 s of the agent's own jitter on each slot, and the backoff of
    /// full jitter up to 15 min whatever the interval.
    HashPhases,
    /// Now: the hub's slot (registration ordinal), no jitter, and the
    /// backoff that stays within the interval and then keeps the slot.
    Slots,
}

/// A virtual-clock scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub devices: u64,
    pub interval_ms: u64,
    /// The devices register at uniform random instants in `[0, this)`.
    pub register_ms: u64,
    /// Intervals of steady running measured after the registrations.
    pub steady_intervals: u64,
    /// The hub is down for this long, starting after the steady stretch.
    pub outage_ms: u64,
    /// Intervals measured after the hub is back.
    pub after_intervals: u64,
    pub seed: u64,
}

/// What a virtual-clock run measured (times in ms of the virtual clock).
#[derive(Clone, Debug, Default)]
pub struct Spread {
    /// Check-ins per second on average (devices / interval).
    pub mean: f64,
    /// Steady stretch after the registrations: the fullest second / mean.
    pub steady_peak: f64,
    /// The first `after_intervals` intervals after the outage.
    pub return_peak: f64,
    /// When the fullest second after the outage was (ms after the return).
    pub return_peak_at_ms: u64,
    /// Largest wait of a device from the hub's return to its first
    /// successful check-in.
    pub max_wait_ms: u64,
    /// Largest lateness: first success after the return minus the device's
    /// due time (its first slot at or after the return); 0 when on time.
    pub max_late_ms: u64,
    /// Devices not back within the measured stretch (should be 0).
    pub not_back: u64,
    /// Attempts sent while the hub was down.
    pub failed_attempts: u64,
    /// Check-ins counted in all.
    pub checkins: u64,
}

struct Dev {
    phase_ms: u64,
    failures: u32,
    back_at: Option<u64>,
}

/// Run `s` under `rules` on a virtual clock: the agent's real scheduling
/// functions, no sleeping. Clocks are synchronized (offset 0) and a request
/// arrives when it is sent (no network delay): what is measured is the
/// schedule's spread alone.
pub fn simulate(s: &Scenario, rules: Rules) -> Spread {
    let iv = s.interval_ms.max(1);
    let mut rng = Rng::new(s.seed);
    // Registration instants; the ordinal is the order of arrival.
    let mut reg: Vec<(u64, u64)> = (0..s.devices)
        .map(|i| (rng.draw() % s.register_ms.max(1), i))
        .collect();
    reg.sort_unstable();
    let mut devs: Vec<Dev> = Vec::with_capacity(reg.len());
    let mut heap = BinaryHeap::with_capacity(reg.len());
    for (ordinal, &(at, i)) in reg.iter().enumerate() {
        let phase_ms = match rules {
            Rules::Slots => crate::slots::phase_ms(ordinal as u64, iv),
            Rules::HashPhases => crate::secret::phase_ms(&format!("load-{i:06}"), iv),
        };
        devs.push(Dev {
            phase_ms,
            failures: 0,
            back_at: None,
        });
        heap.push(Reverse((at, ordinal)));
    }
    let steady_from = s.register_ms;
    let down_at = steady_from + s.steady_intervals * iv;
    let up_at = down_at + s.outage_ms;
    let end = up_at + s.after_intervals * iv;
    let mut times = Vec::with_capacity((s.devices * (s.steady_intervals + 2)) as usize);
    let mut out = Spread::default();
    while let Some(Reverse((t, d))) = heap.pop() {
        if t >= end {
            break;
        }
        let dev = &mut devs[d];
        let next = if t >= down_at && t < up_at {
            out.failed_attempts += 1;
            let to_slot = next_due_ms(t, 0, iv, dev.phase_ms) - t;
            let delay = match rules {
                Rules::HashPhases => schedule::retry_delay(dev.failures, None, rng.draw()),
                Rules::Slots => schedule::retry_delay_in(
                    dev.failures,
                    None,
                    Duration::from_millis(iv),
                    Duration::from_millis(to_slot),
                    rng.draw(),
                ),
            };
            dev.failures = dev.failures.saturating_add(1);
            t + (delay.as_millis() as u64).max(1)
        } else {
            times.push(t);
            dev.failures = 0;
            if t >= up_at && dev.back_at.is_none() {
                dev.back_at = Some(t);
            }
            let jitter = match rules {
                Rules::HashPhases => schedule::uniform(
                    Duration::from_millis(iv / 20).min(Duration::from_secs(5)),
                    rng.draw(),
                )
                .as_millis() as u64,
                Rules::Slots => 0,
            };
            next_due_ms(t, 0, iv, dev.phase_ms) + jitter
        };
        heap.push(Reverse((next, d)));
    }
    out.checkins = times.len() as u64;
    out.mean = s.devices as f64 * 1000.0 / iv as f64;
    out.steady_peak = peak_over_mean(&bins(&times, steady_from, down_at), out.mean);
    let b = bins(&times, up_at, end);
    out.return_peak = peak_over_mean(&b, out.mean);
    out.return_peak_at_ms = b
        .iter()
        .enumerate()
        .max_by_key(|(i, v)| (**v, Reverse(*i)))
        .map(|(i, _)| i as u64 * 1000)
        .unwrap_or(0);
    for dev in &devs {
        match dev.back_at {
            Some(at) => {
                out.max_wait_ms = out.max_wait_ms.max(at - up_at);
                let due = next_due_ms(up_at.saturating_sub(1), 0, iv, dev.phase_ms);
                out.max_late_ms = out.max_late_ms.max(at.saturating_sub(due));
            }
            None => out.not_back += 1,
        }
    }
    out
}

mod tls;
pub use tls::{run_tls, TlsLoad, TlsResult};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_count_per_second_within_the_window() {
        let t = [0, 999, 1_000, 1_500, 2_999, 3_000, 10_000];
        assert_eq!(bins(&t, 0, 3_000), vec![2, 2, 1]);
        assert_eq!(bins(&t, 1_000, 3_500), vec![2, 1, 1]);
        assert_eq!(bins(&t, 5_000, 5_000), Vec::<u32>::new());
        assert_eq!(bins(&[], 0, 2_000), vec![0, 0]);
    }

    #[test]
    fn peak_over_mean_and_percentiles() {
        assert_eq!(peak_over_mean(&[2, 2, 2], 2.0), 1.0);
        assert_eq!(peak_over_mean(&[1, 3, 2], 2.0), 1.5);
        assert_eq!(peak_over_mean(&[], 2.0), 0.0);
        assert_eq!(peak_over_mean(&[5], 0.0), 0.0);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        // (p, want)
        for (p, want) in [
            (50.0, 50.0),
            (99.0, 99.0),
            (100.0, 100.0),
            (0.0, 1.0),
            (99.5, 100.0),
        ] {
            assert_eq!(percentile(&v, p), want, "p{p}");
        }
        assert_eq!(percentile(&[], 99.0), 0.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn rng_is_repeatable_and_spread() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..4).map(|_| r.draw()).collect()
        };
        let mut r = Rng::new(7);
        assert_eq!(a, (0..4).map(|_| r.draw()).collect::<Vec<_>>());
        // Low bit balanced within 2 % over 10,000 draws.
        let ones = (0..10_000).filter(|_| r.draw() & 1 == 1).count();
        assert!((4_800..5_200).contains(&ones), "{ones} odd of 10,000");
    }

    fn scenario(devices: u64, interval_ms: u64, outage_ms: u64) -> Scenario {
        Scenario {
            devices,
            interval_ms,
            register_ms: 60_000,
            steady_intervals: 2,
            outage_ms,
            after_intervals: 4,
            seed: 1,
        }
    }

    /// 512 devices at a 512 s interval (one a second): with slots the
    /// phases are the whole seconds, so every second of the steady stretch
    /// holds exactly one check-in; after four intervals down every device
    /// is back at its own slot (never late), within one interval, and again
    /// one a second.
    #[test]
    fn slots_are_even_and_come_back_on_time() {
        let r = simulate(&scenario(512, 512_000, 2_048_000), Rules::Slots);
        assert_eq!(r.mean, 1.0);
        assert_eq!(r.steady_peak, 1.0, "{r:?}");
        assert_eq!(r.return_peak, 1.0, "{r:?}");
        assert_eq!(r.not_back, 0);
        assert_eq!(r.max_late_ms, 0, "{r:?}");
        assert!(r.max_wait_ms < 512_000, "{r:?}");
        // Each device tried more than once an interval while it was down.
        assert!(r.failed_attempts > 512 * 4, "{r:?}");
    }

    /// An interval longer than the 15 min backoff cap (1,024 devices at
    /// 1,024 s, one a second): a failing device retries at its slot's place
    /// in each 15-minute window, so after four intervals down the fleet is
    /// back within 15 minutes of the return, all of it, with no second
    /// holding more than twice the mean (phases modulo 900 s: two devices
    /// share each of the first 124 seconds).
    #[test]
    fn long_intervals_come_back_within_the_cap() {
        let r = simulate(&scenario(1_024, 1_024_000, 4_096_000), Rules::Slots);
        assert_eq!(r.mean, 1.0);
        assert_eq!(r.steady_peak, 1.0, "{r:?}");
        assert!(r.return_peak <= 2.0, "{r:?}");
        assert_eq!(r.not_back, 0);
        assert!(r.max_wait_ms <= 900_000, "{r:?}");
        assert!(r.failed_attempts > 1_024 * 4, "{r:?}");
    }

    /// Issue 19's goals, at its size: 10,000 devices at 5 min registering
    /// within a minute (steady fullest second <= 1.2x the mean), then back
    /// after 30 minutes down (fullest second <= 2x, nobody later than one
    /// interval past its slot); the rules before miss two of them.
    #[test]
    fn the_goals_hold_for_10000_devices_and_did_not_before() {
        let s = Scenario {
            devices: 10_000,
            interval_ms: 300_000,
            register_ms: 60_000,
            steady_intervals: 3,
            outage_ms: 1_800_000,
            after_intervals: 4,
            seed: 19,
        };
        let now = simulate(&s, Rules::Slots);
        assert!(now.steady_peak <= 1.2, "{now:?}");
        assert!(now.return_peak <= 2.0, "{now:?}");
        assert!(now.max_late_ms <= 300_000, "{now:?}");
        assert!(now.max_wait_ms <= 300_000, "{now:?}");
        assert_eq!(now.not_back, 0, "{now:?}");
        let before = simulate(&s, Rules::HashPhases);
        assert!(before.steady_peak > 1.2, "{before:?}");
        assert!(before.max_late_ms > 300_000, "{before:?}");
    }

    /// The rules before: a hash phase is random (some seconds hold 1.5x the
    /// mean and more), and a 15-minute backoff ceiling leaves devices away
    /// for longer than an interval after the hub is back.
    #[test]
    fn hash_phases_and_the_long_backoff_are_uneven_and_late() {
        let r = simulate(&scenario(3_000, 300_000, 1_800_000), Rules::HashPhases);
        assert!(r.steady_peak > 1.5, "{r:?}");
        assert!(r.max_wait_ms > 300_000, "{r:?}");
        assert_eq!(r.not_back, 0, "{r:?}");
    }
}
