//! `outpost run`: check in forever on the server's schedule, as a systemd
//! `Type=notify` service. Between attempts it sleeps until the slot the
//! server gave (interval + phase; no jitter of its own: the server spreads
//! the fleet, schedule.rs), or after a retryable failure for the backoff
//! (`schedule::retry_delay_in`: full jitter within the interval, then the
//! slot, never more than 15 min apart; Retry-After honoured). A permanent failure ends the loop with its exit
//! code; SIGTERM/SIGINT end it with 0 within a fraction of a second.
//!
//! It must not hold the state lock while sleeping (a manual `checkin`
//! between two attempts is fine) and must not busy-wait.

use super::checkin::{attempt, load_config, refuse_local};
use crate::checkin;
use crate::cli::RunArgs;
use crate::error::{Code, Result};
use crate::notify::Notifier;
use crate::sys::{self, Host};
use crate::timefmt;
use std::time::{Duration, Instant};

/// The longest single sleep, so a signal is noticed quickly.
const SLICE: Duration = Duration::from_millis(200);

pub fn run(args: RunArgs) -> Result<Code> {
    let cfg = load_config(&args.src)?;
    refuse_local(&cfg)?;
    let host = sys::host();
    if let Err(e) = sys::install_stop_handlers() {
        log::warn!("installing SIGTERM/SIGINT handlers: {e}");
    }
    let notify = Notifier::from_env();
    if cfg.server_protocol.value == "ddi" {
        return run_ddi(&args, &cfg, host.as_ref(), &notify);
    }
    #[allow(unused_mut)]
    let (mut agent, client) = checkin::prepare(&args.src.root, &cfg, host.as_ref())?;
    #[cfg(feature = "test-hooks")]
    if let Some(ms) = std::env::var("OUTPOST_TEST_MIN_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        agent.bounds.min_ms = ms;
    }
    log::info!("checking in with {} as {}", agent.base, agent.host_id);
    let mut ready = false;
    let mut st = Loop {
        first_ok: None,
        roles: crate::cluster::worker::Worker::new(&args.src),
    };
    loop {
        if sys::stop_requested() {
            break;
        }
        let a = match attempt(&agent, &client, host.as_ref()) {
            Ok(a) => a,
            Err(e) if e.code() == Code::Locked => {
                log::info!("{e}; trying again shortly");
                let wait =
                    crate::schedule::uniform(crate::schedule::BACKOFF_BASE, random(host.as_ref()));
                if !sleep(wait, host.as_ref(), &notify) {
                    break;
                }
                continue;
            }
            Err(e) => {
                notify.send(&format!("STATUS=stopped: {e}"));
                return Err(e);
            }
        };
        let now = checkin::unix_ms(host.as_ref());
        let wait = match &a.result {
            Ok(d) => {
                let next = timefmt::rfc3339(a.next_due_ms.div_ceil(1000));
                log::info!(
                    "checked in{}; next at {next}",
                    if d.inventory_sent {
                        " (inventory sent)"
                    } else {
                        ""
                    }
                );
                notify.send(&format!("STATUS=checked in; next at {next}"));
                let wait = Duration::from_millis(a.next_due_ms.saturating_sub(now));
                // Ready before acting on the desired state: downloading a
                // release can take longer than the unit's start timeout
                // (TimeoutStartSec, 90 s by default), which would kill the
                // agent in the middle of every attempt.
                if !ready {
                    notify.send("READY=1");
                    ready = true;
                }
                #[cfg(feature = "test-hooks")]
                hang_hook();
                // Act on the desired state: commit a trial, or self-upgrade.
                match after_checkin(&args, &cfg, &client, d, host.as_ref(), &notify, &mut st) {
                    Ok(Some(w)) => wait.min(w),
                    Ok(None) => wait,
                    Err(code) => {
                        notify.send("STOPPING=1");
                        return Ok(code);
                    }
                }
            }
            Err(f) if f.code().is_retryable() => {
                log::warn!("{f}");
                // A new binary on trial that cannot check in within its
                // window exits, so the previous binary's guard rolls it back.
                if trial_expired(&args, &cfg, host.as_ref()) {
                    notify.send("STOPPING=1");
                    return Ok(Code::Restart);
                }
                notify.send(&format!("STATUS=retrying: {f}"));
                Duration::from_millis(a.next_due_ms.saturating_sub(now))
            }
            Err(f) => {
                notify.send(&format!("STATUS=stopped: {f}"));
                return Err(f.clone());
            }
        };
        if !ready {
            notify.send("READY=1");
            ready = true;
        }
        if notify.watchdog_every.is_some() {
            notify.send("WATCHDOG=1");
        }
        log::debug!("next attempt in {} ms", wait.as_millis());
        if !sleep(wait, host.as_ref(), &notify) {
            break;
        }
    }
    notify.send("STOPPING=1");
    st.roles.stop();
    log::info!("stopped by signal");
    Ok(Code::Ok)
}

/// Test hook (`test-hooks` builds only): with `OUTPOST_TEST_HANG_AFTER_READY`
/// set, the agent hangs after its first successful check-in and sends no
/// more watchdog pings, as a release that deadlocks would; the lab shows
/// systemd's watchdog killing it and the guard rolling it back.
#[cfg(feature = "test-hooks")]
fn hang_hook() {
    if std::env::var_os("OUTPOST_TEST_HANG_AFTER_READY").is_some() {
        log::warn!("test hook: hanging (no more watchdog pings)");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// What the loop carries from one check-in to the next.
struct Loop {
    /// Unix seconds of the first successful check-in (a trial's commit clock).
    first_ok: Option<u64>,
    /// The cluster role's steps run beside the loop (cluster::worker).
    roles: crate::cluster::worker::Worker,
}

/// After a successful check-in: commit a due trial or act on an upgrade
/// offer. `Ok(Some(d))`: wake within `d` (a trial waits out its grace);
/// `Err(75)`: a new binary is in place, exit so the next start runs it. A
/// failed upgrade is logged and reported; the loop goes on.
fn after_checkin(
    args: &RunArgs,
    cfg: &crate::config::Config,
    client: &crate::http::Client,
    d: &crate::checkin::Done,
    host: &dyn Host,
    notify: &Notifier,
    st: &mut Loop,
) -> std::result::Result<Option<Duration>, Code> {
    let last_ping = std::cell::Cell::new(Instant::now());
    let now = sys::unix_secs(host.now());
    let ok_at = *st.first_ok.get_or_insert(now);
    let r = crate::upgrade::after_checkin(&crate::upgrade::After {
        root: &args.src.root,
        cfg,
        client,
        offer: d.state.desired.as_ref().and_then(|x| x.upgrade.as_ref()),
        desired_tag: &d.state.desired_tag,
        kubernetes: d.state.desired.as_ref().and_then(|x| x.kubernetes.as_ref()),
        now,
        checked_in_at: ok_at,
        grace_s: crate::upgrade::trial::GRACE_S,
        progress: &|| {
            // At most one ping a second, however small the pieces.
            if notify.watchdog_every.is_some() {
                let now = Instant::now();
                if now.duration_since(last_ping.get()) >= Duration::from_secs(1) {
                    notify.send("WATCHDOG=1");
                    last_ping.set(now);
                }
            }
        },
    });
    if let (Ok(false), Some(x)) = (&r, &d.state.desired) {
        let dir = args.src.root.path(&cfg.state_dir.value);
        match crate::remote::after_checkin(&args.src, &dir, &x.config, &d.state.desired_tag, now) {
            Ok(true) => {
                log::info!(
                    "configuration changed by the server: exiting with 75 to restart with it"
                );
                return Err(Code::Restart);
            }
            Ok(false) => {}
            Err(e) => log::error!("{e}"),
        }
    }
    if let Ok(false) = &r {
        // The cluster role (docs/clusters.md): apply, retry or leave, in
        // a separate process so this loop goes on meanwhile.
        let ins = d.state.desired.as_ref().and_then(|x| x.cluster.as_ref());
        let step = crate::cluster::hub::next_step(
            &args.src.root,
            &cfg.state_dir.value,
            &d.state.desired_tag,
            ins,
        );
        st.roles.tick(&args.src, step);
        // Dynamic DNS: the cluster name or this host's own (docs/clusters.md).
        crate::cluster::cmd::ddns_in_loop(&args.src.root, cfg, ins);
    }
    match r {
        Ok(true) => {
            log::info!("new binary in place: exiting with 75 to be restarted into it");
            Err(Code::Restart)
        }
        Ok(false) => {
            let l = crate::upgrade::layout(&args.src.root, cfg);
            let on_trial = matches!(crate::upgrade::apply::load_trial(&l), Ok(Some(_)));
            Ok(on_trial.then(|| {
                let due = ok_at + crate::upgrade::trial::GRACE_S;
                Duration::from_secs(due.saturating_sub(now).max(1))
            }))
        }
        Err(e) => {
            log::error!("{e}");
            Ok(None)
        }
    }
}

fn trial_expired(args: &RunArgs, cfg: &crate::config::Config, host: &dyn Host) -> bool {
    let l = crate::upgrade::layout(&args.src.root, cfg);
    let Ok(Some(t)) = crate::upgrade::apply::load_trial(&l) else {
        return false;
    };
    let now = sys::unix_secs(host.now());
    let over = t.first_start != 0 && now >= t.first_start.saturating_add(t.window_s);
    if over {
        log::error!(
            "{} on trial could not check in within {} minutes: exiting so the previous binary's guard rolls it back",
            t.to,
            t.window_s / 60
        );
    }
    over
}

/// The shortest and longest DDI poll sleep honoured (hawkBit's own
/// minimum is 30 s by default; gooseBit asks for 10 s before configData).
const DDI_MIN_SLEEP: Duration = Duration::from_secs(10);
const DDI_MAX_SLEEP: Duration = Duration::from_secs(86_400);

/// `outpost run` in DDI mode: poll on the server's `config.polling.sleep`;
/// a network failure or a busy server backs off (full jitter), anything
/// else ends the loop with its exit code. A deployment that swapped a new
/// binary in ends it with 75 (restart into it); a failed one is logged,
/// reported to the server and the loop goes on.
fn run_ddi(
    args: &RunArgs,
    cfg: &crate::config::Config,
    host: &dyn Host,
    notify: &Notifier,
) -> Result<Code> {
    let mut ready = false;
    let mut failures: u32 = 0;
    let mut first_ok: Option<u64> = None;
    let (min_sleep, backoff_base) = ddi_bounds();
    let last_ping = std::cell::Cell::new(Instant::now());
    let progress = || {
        // At most one watchdog ping a second while an artifact streams in.
        if notify.watchdog_every.is_some() && last_ping.get().elapsed() >= Duration::from_secs(1) {
            notify.send("WATCHDOG=1");
            last_ping.set(Instant::now());
        }
    };
    loop {
        if sys::stop_requested() {
            break;
        }
        let polled = super::checkin::ddi_poll(
            &args.src.root,
            cfg,
            host,
            &mut first_ok,
            crate::upgrade::trial::GRACE_S,
            &progress,
        );
        let wait = match polled {
            Ok(p) => {
                failures = 0;
                log::info!("{}", p.line);
                if !ready {
                    notify.send("READY=1");
                    ready = true;
                }
                notify.send(&format!("STATUS={}", p.line));
                if p.restart {
                    log::info!("new binary in place: exiting with 75 to be restarted into it");
                    notify.send("STOPPING=1");
                    return Ok(Code::Restart);
                }
                if let Some(e) = &p.error {
                    log::error!("{e}");
                }
                let mut wait = Duration::from_secs(p.sleep_secs).clamp(min_sleep, DDI_MAX_SLEEP);
                // A trial commits after its grace: poll again by then.
                let l = crate::upgrade::layout(&args.src.root, cfg);
                if let (Ok(Some(_)), Some(ok)) = (crate::upgrade::apply::load_trial(&l), first_ok) {
                    let now = sys::unix_secs(host.now());
                    let due = ok + crate::upgrade::trial::GRACE_S;
                    wait = wait.min(Duration::from_secs(due.saturating_sub(now).max(1)));
                }
                wait
            }
            Err(e) if e.code() == Code::Locked => {
                log::info!("{e}; trying again shortly");
                crate::schedule::uniform(backoff_base, random(host))
                    .max(backoff_base.min(Duration::from_secs(1)))
            }
            Err(e) if matches!(e.code(), Code::Network | Code::ServerBusy) => {
                failures = failures.saturating_add(1);
                log::warn!("{e}; polling again later");
                // A new binary on trial that cannot poll within its window
                // exits, so the previous binary's guard rolls it back.
                if trial_expired(args, cfg, host) {
                    notify.send("STOPPING=1");
                    return Ok(Code::Restart);
                }
                notify.send(&format!("STATUS=poll failed: {e}"));
                let cap = backoff_base
                    .saturating_mul(1u32 << failures.min(6))
                    .min(DDI_MAX_SLEEP);
                crate::schedule::uniform(cap, random(host))
                    .max(backoff_base.min(Duration::from_secs(1)))
            }
            Err(e) => {
                notify.send(&format!("STATUS=stopped: {e}"));
                return Err(e);
            }
        };
        if !sleep(wait, host, notify) {
            break;
        }
    }
    notify.send("STOPPING=1");
    Ok(Code::Ok)
}

/// The shortest poll sleep and the backoff base; with feature test-hooks,
/// `OUTPOST_TEST_MIN_INTERVAL_MS` sets both (tests of the loop).
fn ddi_bounds() -> (Duration, Duration) {
    #[cfg(feature = "test-hooks")]
    if let Some(ms) = std::env::var("OUTPOST_TEST_MIN_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let d = Duration::from_millis(ms.max(1));
        return (d, d);
    }
    (DDI_MIN_SLEEP, crate::schedule::BACKOFF_BASE)
}

fn random(host: &dyn Host) -> u64 {
    let mut b = [0u8; 8];
    let _ = host.fill_random(&mut b);
    u64::from_le_bytes(b)
}

/// Sleep `d` in short slices on the monotonic clock, pinging the watchdog
/// on time; `false` when a stop signal arrived.
fn sleep(d: Duration, host: &dyn Host, notify: &Notifier) -> bool {
    let start = Instant::now();
    let mut pinged = Instant::now();
    loop {
        if sys::stop_requested() {
            return false;
        }
        let left = d.saturating_sub(start.elapsed());
        if left.is_zero() {
            return true;
        }
        host.sleep(left.min(SLICE));
        if let Some(every) = notify.watchdog_every {
            if pinged.elapsed() >= every {
                notify.send("WATCHDOG=1");
                pinged = Instant::now();
            }
        }
    }
}
