//! `outpost checkin` against hostile server modes of the fault server
//! (garbage, a 100 MiB body, a stall after the headers, lying lengths,
//! HTTP/1.0 without a length, redirect loops, huge and many headers, JSON
//! nested 100k deep, invalid UTF-8 in a header, absurd intervals and
//! Retry-After values): each ends with its documented exit code within
//! the configured timeouts, with bounded memory, and (when it fails)
//! leaves the state files byte-identical. Wall time and peak RSS of each
//! are printed (`RESULT` lines) for docs/RELIABILITY.md; only a generous
//! hang guard and a memory bound are asserted.

mod common;
use common::agent::{Device, Setup};
use common::fault::{FaultServer, Scratch};
use common::tls::Ca;
use std::time::{Duration, Instant};

const HOST: &str = "edge-hostile";
const TIMEOUTS: &str = "outpost:\n  timeouts:\n    connect: 2\n    request: 3\n";
const HANG_GUARD: Duration = Duration::from_secs(60);
/// Peak RSS bound of one check-in, KiB (the body cap is 64 KiB; a debug
/// build with TLS needs about 10 MiB).
const RSS_BOUND_KIB: i64 = 64 * 1024;

/// Peak RSS of the largest child waited for so far, KiB.
fn children_maxrss() -> i64 {
    // SAFETY: getrusage fills the struct it is given; no other effect.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru.ru_maxrss
    }
}

#[test]
fn hostile_servers_end_bounded_with_documented_codes() {
    let scratch = Scratch::new("hostile");
    let ca = Ca::new(&scratch, "main");
    let server = FaultServer::tls(&ca.good());
    let p = server.port;
    // (mode, exit code)
    let cases: &[(&str, i32)] = &[
        ("/garbage", 12),
        ("/huge-body", 12),
        ("/headers-stall", 10),
        ("/lying-length", 10),
        ("/short-length", 12),
        ("/http10", 12),
        ("/redirect-loop", 12),
        ("/huge-header", 12),
        ("/many-headers", 12),
        ("/deep-json", 12),
        ("/deep-json-32k", 12),
        ("/bad-utf8-header", 12),
        ("/invalid-utf8", 12),
        ("/wrong-types", 12),
        ("/invalid-json", 12),
        ("/absurd-retry", 11),
        ("/negative-retry", 11),
        ("/absurd-interval", 0),
    ];
    let mut failures = Vec::new();
    for (mode, want) in cases {
        let dir = scratch.path().join(mode.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let endpoint = format!("https://127.0.0.1:{p}{mode}");
        let d = Device::new(
            &dir,
            &Setup {
                endpoint: &endpoint,
                token: Some("opt_hostile"),
                host_id: HOST,
                ca_pem: &ca.cert,
                site: "",
                top: TIMEOUTS,
            },
        );
        d.seed(HOST);
        let before = d.snapshot();
        let rss0 = children_maxrss();
        let t0 = Instant::now();
        let (code, out, err) = d.run(&["checkin"]);
        let took = t0.elapsed();
        let rss = children_maxrss();
        eprintln!(
            "RESULT {mode}: exit {code} in {:.2} s, peak RSS so far {} KiB{}; {}",
            took.as_secs_f64(),
            rss,
            if rss > rss0 { " (new peak)" } else { "" },
            err.trim_end()
        );
        if code != *want {
            failures.push(format!("{mode}: exit {code}, want {want}: {err}"));
        }
        if took > HANG_GUARD {
            failures.push(format!("{mode}: took {took:?}"));
        }
        if err.lines().count() != 1 && code != 0 {
            failures.push(format!("{mode}: not one line: {err:?}"));
        }
        if !out.is_empty() {
            failures.push(format!("{mode}: stdout {out:?}"));
        }
        if code != 0 && d.snapshot() != before {
            failures.push(format!("{mode}: state changed"));
        }
        if code == 0 {
            // The absurd interval is clamped to outpost.interval.max (3600 s).
            let st = std::fs::read_to_string(d.file("state.json")).expect("state.json");
            let ms = common::agent::field(&st, "interval_ms");
            if ms != 3_600_000 {
                failures.push(format!("{mode}: interval_ms {ms} not clamped: {st}"));
            }
        }
    }
    let rss = children_maxrss();
    eprintln!("RESULT peak RSS of any check-in: {rss} KiB");
    // Under the qemu runner the figure is the emulator's, not the agent's.
    if common::runner().is_none() && rss > RSS_BOUND_KIB {
        failures.push(format!("peak RSS {rss} KiB > {RSS_BOUND_KIB} KiB"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
