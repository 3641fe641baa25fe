//! The real protocol over TLS: register N simulated devices (each its own
//! host ID, install secret and credential), then check each in at the
//! phase the hub gave it, for a bounded window. Requests go through the
//! agent's own HTTPS client (`outpost::http::Client`), a new one per
//! request: a new connection and a full TLS handshake each, as a device
//! whose session expired (the costliest case for the hub). Hubs are used in
//! turn. Loopback only: any other host is refused.

use super::{next_due_ms, percentile};
use outpost::error::{Error, Result};
use outpost::http::{Client, HttpSettings};
use outpost::proto::RegisterResponse;
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

    // The steady window: each device at its slots in it (the hubs share
    // this machine's clock, so the offset is 0).
    let start = unix_ms() + 1_000;
    let end = start + l.window.as_millis() as u64;
    let mut plan: Vec<(u64, usize)> = Vec::new();
    for (k, d) in devices.iter().enumerate() {
        let mut t = next_due_ms(start - 1, 0, d.interval_ms, d.phase_ms);
        while t < end {
            plan.push((t, k));
            t = next_due_ms(t, 0, d.interval_ms, d.phase_ms);
        }
    }
    plan.sort_unstable();
    out.due = plan.len() as u64;
    let next = AtomicU64::new(0);
    let lag = AtomicU64::new(0);
    // (answered at ms, latency ms, status or 0 for a transport error)
    let done: Mutex<Vec<(u64, f64, u16)>> = Mutex::new(Vec::with_capacity(plan.len()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(&(due, k)) = plan.get(i) else { break };
                    loop {
                        let now = unix_ms();
                        if now >= due || Instant::now() >= deadline {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis((due - now).min(200)));
                    }
                    if Instant::now() >= deadline {
                        break;
                    }
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
                    mine.push((unix_ms(), ms, r.map(|r| r.status).unwrap_or(0)));
                }
                done.lock().unwrap_or_else(|e| e.into_inner()).extend(mine);
            });
        }
    });
    let done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    out.window_s = (unix_ms().max(end) - start) as f64 / 1000.0;
    out.max_send_lag_ms = lag.into_inner();
    let mut ok_lat = Vec::new();
    let mut ok_at = Vec::new();
    let mut refused: std::collections::BTreeMap<u16, u64> = Default::default();
    for (at, ms, status) in &done {
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
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
