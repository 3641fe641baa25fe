//! `outpost-hub-load`: the load generator of the hub's benchmarks
//! (docs/BENCHMARKS.md, "Fleet spread" and "100,000 devices"). Not shipped
//! to devices or operators; `scripts/bench.d/47-fleet` drives it.
//!
//!   outpost-hub-load spread [--devices N] [--interval S] [--register-within S]
//!                           [--steady INTERVALS] [--outage S] [--after INTERVALS] [--seed N]
//!   outpost-hub-load tls --hub https://127.0.0.1:PORT [--hub ...] --ca FILE
//!                        --token-file FILE --devices N [--threads N] [--window S]
//!                        [--time-limit S] [--prefix P]
//!
//! Prints one JSON object per result on stdout. Exit 2 on bad arguments,
//! the hub's documented codes otherwise.

use outpost::error::{Code, Error, Result};
use outpost_hub::load::{self, Rules, Scenario, TlsLoad};
use std::time::Duration;

fn main() {
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("outpost-hub-load: {e}");
            e.code() as i32
        }
    };
    std::process::exit(code);
}

fn num(p: &mut lexopt::Parser, name: &str) -> Result<u64> {
    let v = p
        .value()
        .map_err(|e| Error::usage(format!("{name}: {e}")))?;
    v.to_str()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Error::usage(format!("{name}: not a whole number: {v:?}")))
}

fn text(p: &mut lexopt::Parser, name: &str) -> Result<String> {
    p.value()
        .map_err(|e| Error::usage(format!("{name}: {e}")))?
        .into_string()
        .map_err(|_| Error::usage(format!("{name}: not valid UTF-8")))
}

fn run() -> Result<()> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let mode = match p.next().map_err(|e| Error::usage(e.to_string()))? {
        Some(Value(v)) => v.into_string().unwrap_or_default(),
        _ => return Err(Error::usage("usage: outpost-hub-load spread|tls [options]")),
    };
    match mode.as_str() {
        "spread" => {
            let mut s = Scenario {
                devices: 10_000,
                interval_ms: 300_000,
                register_ms: 60_000,
                steady_intervals: 3,
                outage_ms: 1_800_000,
                after_intervals: 4,
                seed: 1,
            };
            while let Some(a) = p.next().map_err(|e| Error::usage(e.to_string()))? {
                match a {
                    Long("devices") => s.devices = num(&mut p, "--devices")?.min(10_000_000),
                    Long("interval") => s.interval_ms = num(&mut p, "--interval")?.max(1) * 1000,
                    Long("register-within") => {
                        s.register_ms = num(&mut p, "--register-within")?.max(1) * 1000
                    }
                    Long("steady") => s.steady_intervals = num(&mut p, "--steady")?.clamp(1, 100),
                    Long("outage") => s.outage_ms = num(&mut p, "--outage")? * 1000,
                    Long("after") => s.after_intervals = num(&mut p, "--after")?.clamp(1, 100),
                    Long("seed") => s.seed = num(&mut p, "--seed")?,
                    a => return Err(Error::usage(format!("spread: {}", a.unexpected()))),
                }
            }
            for (name, rules) in [("hash-phases", Rules::HashPhases), ("slots", Rules::Slots)] {
                let r = load::simulate(&s, rules);
                println!(
                    r#"{{"rules":"{name}","devices":{},"interval_s":{},"register_s":{},"outage_s":{},"mean_per_s":{:.3},"steady_peak_over_mean":{:.3},"return_peak_over_mean":{:.3},"return_peak_at_s":{},"max_wait_s":{:.1},"max_late_s":{:.1},"not_back":{},"failed_attempts":{},"checkins":{}}}"#,
                    s.devices,
                    s.interval_ms / 1000,
                    s.register_ms / 1000,
                    s.outage_ms / 1000,
                    r.mean,
                    r.steady_peak,
                    r.return_peak,
                    r.return_peak_at_ms / 1000,
                    r.max_wait_ms as f64 / 1000.0,
                    r.max_late_ms as f64 / 1000.0,
                    r.not_back,
                    r.failed_attempts,
                    r.checkins
                );
            }
            Ok(())
        }
        "tls" => {
            let mut hubs = Vec::new();
            let (mut ca, mut token_file) = (None, None);
            let mut l = TlsLoad {
                hubs: Vec::new(),
                ca_pem: Vec::new(),
                token: String::new(),
                devices: 1_000,
                threads: 32,
                window: Duration::from_secs(60),
                time_limit: Duration::from_secs(3_600),
                prefix: "load".into(),
            };
            while let Some(a) = p.next().map_err(|e| Error::usage(e.to_string()))? {
                match a {
                    Long("hub") => hubs.push(text(&mut p, "--hub")?),
                    Long("ca") => ca = Some(text(&mut p, "--ca")?),
                    Long("token-file") => token_file = Some(text(&mut p, "--token-file")?),
                    Long("devices") => l.devices = num(&mut p, "--devices")?.min(1_000_000),
                    Long("threads") => l.threads = num(&mut p, "--threads")?.clamp(1, 256) as usize,
                    Long("window") => {
                        l.window = Duration::from_secs(num(&mut p, "--window")?.clamp(1, 86_400))
                    }
                    Long("time-limit") => {
                        l.time_limit =
                            Duration::from_secs(num(&mut p, "--time-limit")?.clamp(1, 86_400))
                    }
                    Long("prefix") => l.prefix = text(&mut p, "--prefix")?,
                    a => return Err(Error::usage(format!("tls: {}", a.unexpected()))),
                }
            }
            let ca = ca.ok_or_else(|| Error::usage("tls: --ca FILE is required"))?;
            let tf =
                token_file.ok_or_else(|| Error::usage("tls: --token-file FILE is required"))?;
            l.ca_pem = std::fs::read(&ca)
                .map_err(|e| Error::io("reading the CA", std::path::Path::new(&ca), &e))?;
            l.token = std::fs::read_to_string(&tf)
                .map_err(|e| Error::io("reading the token file", std::path::Path::new(&tf), &e))?
                .trim()
                .to_string();
            if l.token.is_empty() {
                return Err(Error::new(Code::Config, format!("{tf}: empty token file")));
            }
            l.hubs = hubs;
            let r = load::run_tls(&l)?;
            let refused: Vec<String> = r
                .refused
                .iter()
                .map(|(s, n)| format!(r#""{s}":{n}"#))
                .collect();
            let recovery = match &r.recovery {
                None => "null".to_string(),
                Some(x) => format!(
                    r#"{{"failed":{},"back_at_ms":{},"peak_over_mean":{:.3},"max_wait_s":{:.1},"max_late_s":{:.1},"not_back":{}}}"#,
                    x.failed,
                    x.back_at_ms,
                    x.peak_over_mean,
                    x.max_wait_ms as f64 / 1000.0,
                    x.max_late_ms as f64 / 1000.0,
                    x.not_back
                ),
            };
            println!(
                r#"{{"recovery":{recovery},"devices":{},"registered":{},"register_s":{:.1},"register_p99_ms":{:.1},"due":{},"checkins_ok":{},"refused":{{{}}},"errors":{},"window_s":{:.1},"mean_per_s":{:.1},"peak_per_s":{},"p50_ms":{:.1},"p99_ms":{:.1},"max_send_lag_ms":{}}}"#,
                l.devices,
                r.registered,
                r.register_s,
                r.register_p99_ms,
                r.due,
                r.checkins_ok,
                refused.join(","),
                r.errors,
                r.window_s,
                r.mean_per_s,
                r.peak_per_s,
                r.p50_ms,
                r.p99_ms,
                r.max_send_lag_ms
            );
            Ok(())
        }
        other => Err(Error::usage(format!(
            "unknown mode {other:?}: spread or tls"
        ))),
    }
}
