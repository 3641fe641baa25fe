//! The real protocol over TLS: register N simulated devices (each its own
//! host ID, install secret and credential), then check each in at the
//! phase the hub gave it, for a bounded window. Requests go through the
//! agent's own HTTPS client (`outpost::http::Client`), a new one per
//! request: a new connection and a full TLS handshake each, as a device
//! whose session expired (the costliest case for the hub). Hubs are used in
//! turn. Loopback only: any other host is refused.

use super::{next_due_ms, percentile, Rng};
use outpost::error::{Error, Result};
use outpost::http::{Client, HttpSettings};
use outpost::proto::RegisterResponse;
use outpost::schedule;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A TLS load run.
pub struct TlsLoad {
    /// `https://127.0.0.1:PORT` of each hub.
    pub hubs: Vec<String>,
    /// PEM of the CA that signed the hubs' certificates.
    pub ca_pem: Vec<u8>,
    /// A registration token valid on the hubs (never printed).
    pub token: String,
    pub devices: u64,
    /// Client threads (each one request at a time).
    pub threads: usize,
    /// Length of the steady window of check-ins.
    pub window: Duration,
    /// Hard bound on the whole run; what is not done by then is not done.
    pub time_limit: Duration,
    /// Host IDs are `PREFIX-000001`...
    pub prefix: String,
}

/// What a TLS load run measured.
#[derive(Clone, Debug, Default)]
pub struct TlsResult {
    pub registered: u64,
    pub register_s: f64,
    pub register_p99_ms: f64,
    /// Check-ins due in the window (every device whose slot falls in it).
    pub due: u64,
    pub checkins_ok: u64,
    /// Answers other than 200 (status, count), and transport errors.
    pub refused: Vec<(u16, u64)>,
    pub errors: u64,
    pub window_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// How late the generator sent a check-in after its slot (its own lag;
    /// a large value means the client, not the hub, was the limit).
    pub max_send_lag_ms: u64,
    /// Check-ins answered per second: peak 1-second bin and mean.
    pub peak_per_s: u32,
    pub mean_per_s: f64,
    /// When attempts failed during the window (a hub stopped and started
    /// again): the fleet's return.
    pub recovery: Option<Recovery>,
}

/// The fleet's return after failures in the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recovery {
    /// Attempts that failed (refused or no answer).
    pub failed: u64,
    /// The first success after the first failure (ms, Unix): the hub back.
    pub back_at_ms: u64,
    /// Successes per second in the first interval after that, fullest
    /// second over the fleet's mean rate (devices / interval).
    pub peak_over_mean: f64,
    /// Longest wait of a device from the hub's return to its first success.
    pub max_wait_ms: u64,
    /// Longest lateness past the device's first slot after the return.
    pub max_late_ms: u64,
    /// Devices with no success after the return within the window.
    pub not_back: u64,
}

/// The return, from the answers `done` (sorted by time: answered at,
/// device, latency, status); `None` when nothing failed.
fn recovery(done: &[(u64, usize, f64, u16)], devices: &[Device], end: u64) -> Option<Recovery> {
    let first_fail = done.iter().find(|x| x.3 != 200)?.0;
    let back = done.iter().find(|x| x.3 == 200 && x.0 > first_fail)?.0;
    let mut r = Recovery {
        failed: done.iter().filter(|x| x.3 != 200).count() as u64,
        back_at_ms: back,
        ..Recovery::default()
    };
    let iv = devices
        .iter()
        .map(|d| d.interval_ms)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut first_ok: Vec<Option<u64>> = vec![None; devices.len()];
    for &(at, k, _, status) in done {
        if status == 200 && at >= back && first_ok[k].is_none() {
            first_ok[k] = Some(at);
        }
    }
    let ok_after: Vec<u64> = done
        .iter()
        .filter(|x| x.3 == 200 && x.0 >= back)
        .map(|x| x.0)
        .collect();
    let b = super::bins(&ok_after, back, (back + iv).min(end.max(back + 1)));
    r.peak_over_mean = super::peak_over_mean(&b, devices.len() as f64 * 1000.0 / iv as f64);
    for (k, f) in first_ok.iter().enumerate() {
        match f {
            Some(at) => {
                let d = &devices[k];
                r.max_wait_ms = r.max_wait_ms.max(at - back);
                let due = next_due_ms(back.saturating_sub(1), 0, d.interval_ms, d.phase_ms);
                r.max_late_ms = r.max_late_ms.max(at.saturating_sub(due));
            }
            None => r.not_back += 1,
        }
    }
    Some(r)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn client(ca: &[u8]) -> Result<Client> {
    let extra_ca =
        outpost::config::CaCert::from_bytes(ca).map_err(|e| Error::usage(format!("--ca: {e}")))?;
    Client::new(
        HttpSettings {
            extra_ca,
            ..HttpSettings::default()
        },
        None,
    )
}

fn loopback_only(hubs: &[String]) -> Result<()> {
    for h in hubs {
        let rest = h
            .strip_prefix("https://")
            .ok_or_else(|| Error::usage(format!("--hub {h}: not https://")))?;
        let host = rest.rsplit_once(':').map(|(h, _)| h).unwrap_or(rest);
        if !matches!(host, "127.0.0.1" | "[::1]" | "localhost") {
            return Err(Error::usage(format!(
                "--hub {h}: the load generator talks to loopback hubs only"
            )));
        }
    }
    if hubs.is_empty() {
        return Err(Error::usage("--hub: at least one hub"));
    }
    Ok(())
}

/// One registered device.
struct Device {
    host_id: String,
    credential: String,
    interval_ms: u64,
    phase_ms: u64,
}

const INVENTORY_HASH: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// Run `l`: register, then the steady window. Progress on stderr.
pub fn run_tls(l: &TlsLoad) -> Result<TlsResult> {
    loopback_only(&l.hubs)?;
    client(&l.ca_pem)?;
    let deadline = Instant::now() + l.time_limit;
    let threads = l.threads.clamp(1, 256);
    let mut out = TlsResult::default();

    // Registration: every device once, from all threads.
    let next = AtomicU64::new(0);
    let devices: Mutex<Vec<Option<Device>>> = Mutex::new((0..l.devices).map(|_| None).collect());
    let lat: Mutex<Vec<f64>> = Mutex::new(Vec::with_capacity(l.devices as usize));
    let failures = Mutex::new(Vec::<String>::new());
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= l.devices {
                        return;
                    }
                    let host_id = format!("{}-{:06}", l.prefix, i + 1);
                    let secret = match crate::secret::generate("load-") {
                        Ok(v) => v,
                        Err(e) => {
                            failures.lock().unwrap_or_else(|e| e.into_inner()).push(e.to_string());
                            return;
                        }
                    };
                    let body = format!(
                        r#"{{"v":1,"token":"{}","host_id":"{host_id}","install_secret":"{}","project":null,"hostname":"{host_id}","tags":{{}},"agent":"0.1.0","inventory":{{"arch":"x86_64","cpus":4,"memory_bytes":8000000000,"os":"Debian GNU/Linux 12","kernel":"6.1.0","interfaces":[]}},"inventory_hash":"{INVENTORY_HASH}"}}"#,
                        l.token, secret
                    );
                    let hub = &l.hubs[(i as usize) % l.hubs.len()];
                    let t = Instant::now();
                    let r = client(&l.ca_pem).and_then(|c| {
                        c.post_json(&format!("{hub}/outpost/v1/register"), body.as_bytes(), &[])
                    });
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    match r {
                        Ok(rep) if rep.status == 200 => match rep.json::<RegisterResponse>("register answer") {
                            Ok(a) => {
                                lat.lock().unwrap_or_else(|e| e.into_inner()).push(ms);
                                devices.lock().unwrap_or_else(|e| e.into_inner())[i as usize] =
                                    Some(Device {
                                        host_id,
                                        credential: a.credential,
                                        interval_ms: a.interval_ms,
                                        phase_ms: a.phase_ms,
                                    });
                            }
                            Err(e) => failures.lock().unwrap_or_else(|e| e.into_inner()).push(e.to_string()),
                        },
                        Ok(rep) => failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("register {host_id}: HTTP {}", rep.status)),
                        Err(e) => failures.lock().unwrap_or_else(|e| e.into_inner()).push(e.to_string()),
                    }
                }
            });
        }
    });
    out.register_s = t0.elapsed().as_secs_f64();
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = failures.first() {
        return Err(Error::new(
            outpost::error::Code::BadAnswer,
            format!("{} registrations failed; first: {f}", failures.len()),
        ));
    }
    let devices: Vec<Device> = devices
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    out.registered = devices.len() as u64;
    let mut rl = lat.into_inner().unwrap_or_else(|e| e.into_inner());
    rl.sort_by(f64::total_cmp);
    out.register_p99_ms = percentile(&rl, 99.0);
    eprintln!(
        "outpost-hub-load: {} devices registered in {:.1} s",
        out.registered, out.register_s
    );

    // The window: each device at its slots (the hubs share this machine's
    // clock, so the offset is 0); after a failed attempt the device waits
    // what the agent would (`schedule::retry_delay_in`), so a hub stopped
    // and started again during the window shows the fleet's return.
    let start = unix_ms() + 1_000;
    let end = start + l.window.as_millis() as u64;
    let mut queue = BinaryHeap::with_capacity(devices.len());
    for (k, d) in devices.iter().enumerate() {
        let t = next_due_ms(start - 1, 0, d.interval_ms, d.phase_ms);
        if t < end {
            queue.push(Reverse((t, k, 0u32)));
        }
    }
    out.due = queue.len() as u64;
    let queue = Mutex::new(queue);
    let lag = AtomicU64::new(0);
    // (answered at ms, device, latency ms, status or 0 for a transport error)
    let done: Mutex<Vec<(u64, usize, f64, u16)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..threads {
            let (queue, done, lag, devices) = (&queue, &done, &lag, &devices);
            s.spawn(move || {
                let mut mine = Vec::new();
                let mut random = Rng::new(unix_ms() ^ (w as u64) << 48);
                loop {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let next = {
                        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                        match q.peek() {
                            None => break,
                            Some(Reverse((due, _, _))) if *due <= unix_ms() => q.pop(),
                            Some(_) => None,
                        }
                    };
                    let Some(Reverse((due, k, failures))) = next else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    lag.fetch_max(unix_ms().saturating_sub(due), Ordering::Relaxed);
                    let d = &devices[k];
                    let body = format!(
                        r#"{{"v":1,"host_id":"{}","agent":"0.1.0","health":{{"ok":true,"failing":[]}},"inventory_hash":"{INVENTORY_HASH}","desired_tag":"","inventory":null}}"#,
                        d.host_id
                    );
                    let auth = format!("Bearer {}", d.credential);
                    let hub = &l.hubs[k % l.hubs.len()];
                    let t = Instant::now();
                    let r = client(&l.ca_pem).and_then(|c| {
                        c.post_json(
                            &format!("{hub}/outpost/v1/checkin"),
                            body.as_bytes(),
                            &[("Authorization", &auth)],
                        )
                    });
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    let now = unix_ms();
                    let (status, retry_after) = match &r {
                        Ok(rep) => (
                            rep.status,
                            rep.retry_after.as_deref().and_then(|v| {
                                schedule::parse_retry_after(v, SystemTime::now())
                            }),
                        ),
                        Err(_) => (0, None),
                    };
                    mine.push((now, k, ms, status));
                    let again = if status == 200 {
                        next_due_ms(now, 0, d.interval_ms, d.phase_ms)
                    } else {
                        let to_slot = next_due_ms(now, 0, d.interval_ms, d.phase_ms) - now;
                        let delay = schedule::retry_delay_in(
                            failures,
                            retry_after,
                            Duration::from_millis(d.interval_ms),
                            Duration::from_millis(to_slot),
                            random.draw(),
                        );
                        now + delay.as_millis() as u64
                    };
                    if again < end {
                        let f = if status == 200 { 0 } else { failures.saturating_add(1) };
                        queue
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(Reverse((again, k, f)));
                    }
                }
                done.lock().unwrap_or_else(|e| e.into_inner()).extend(mine);
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|x| x.0);
    out.window_s = (unix_ms().max(end) - start) as f64 / 1000.0;
    out.max_send_lag_ms = lag.into_inner();
    let mut ok_lat = Vec::new();
    let mut ok_at = Vec::new();
    let mut refused: std::collections::BTreeMap<u16, u64> = Default::default();
    for (at, _, ms, status) in &done {
        match status {
            200 => {
                ok_lat.push(*ms);
                ok_at.push(*at);
            }
            0 => out.errors += 1,
            s => *refused.entry(*s).or_default() += 1,
        }
    }
    out.refused = refused.into_iter().collect();
    out.checkins_ok = ok_lat.len() as u64;
    ok_lat.sort_by(f64::total_cmp);
    out.p50_ms = percentile(&ok_lat, 50.0);
    out.p99_ms = percentile(&ok_lat, 99.0);
    let b = super::bins(&ok_at, start, end);
    out.peak_per_s = b.iter().copied().max().unwrap_or(0);
    out.mean_per_s = out.checkins_ok as f64 / l.window.as_secs_f64().max(0.001);
    out.recovery = recovery(&done, &devices, end);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_from_the_answers() {
        let dev = |phase_ms| Device {
            host_id: String::new(),
            credential: String::new(),
            interval_ms: 10_000,
            phase_ms,
        };
        let devices = [dev(0), dev(5_000)];
        // (answered at, device, latency, status): both fine, both fail
        // (one twice), the hub is back at 30 s, device 1 at its slot.
        let mut done = vec![
            (1_000, 0, 1.0, 200),
            (6_000, 1, 1.0, 200),
            (11_000, 0, 1.0, 0),
            (16_000, 1, 1.0, 503),
            (21_000, 0, 1.0, 0),
            (30_000, 0, 1.0, 200),
            (35_000, 1, 1.0, 200),
        ];
        let r = recovery(&done, &devices, 100_000).expect("failures");
        assert_eq!(
            r,
            Recovery {
                failed: 3,
                back_at_ms: 30_000,
                // One a second at most, the mean 0.2 a second.
                peak_over_mean: 5.0,
                max_wait_ms: 5_000,
                max_late_ms: 0,
                not_back: 0,
            }
        );
        // Device 1 back only at 47 s: 12 s past its slot at 35 s.
        done[6].0 = 47_000;
        let r = recovery(&done, &devices, 100_000).expect("failures");
        assert_eq!((r.max_wait_ms, r.max_late_ms), (17_000, 12_000));
        done.truncate(6);
        assert_eq!(recovery(&done, &devices, 100_000).expect("x").not_back, 1);
        let fine: Vec<_> = done.iter().copied().filter(|x| x.3 == 200).collect();
        assert_eq!(recovery(&fine, &devices, 100_000), None, "nothing failed");
    }

    #[test]
    fn only_loopback_hubs() {
        let ok = [
            "https://127.0.0.1:8443",
            "https://localhost:1",
            "https://[::1]:9",
        ];
        for h in ok {
            assert!(loopback_only(&[h.to_string()]).is_ok(), "{h}");
        }
        let bad = [
            "https://10.0.0.1:8443",
            "http://127.0.0.1:80",
            "https://hub.example.com:443",
            "https://127.0.0.1.evil:1",
        ];
        for h in bad {
            assert!(loopback_only(&[h.to_string()]).is_err(), "{h}");
        }
        assert!(loopback_only(&[]).is_err(), "no hub");
    }
}
