//! `outpost checkin`: one check-in, then exit (cron, first boot, scripts).
//! Also the pieces `run` repeats: loading the config for an agent command,
//! refusing local management mode, and one attempt under the state lock
//! with `status.json` written afterwards.
//!
//! It must not loop or retry (that is `run`), and prints nothing but one
//! summary line on success (on a terminal or with -v) and, via main, the
//! one-line error.

use crate::checkin::{self, Agent, Done};
use crate::cli::{CheckinArgs, ConfigSource};
use crate::config::{Config, Mode};
use crate::error::{Code, Error, Result};
use crate::http::Client;
use crate::state;
use crate::sys::Host;
use crate::timefmt;
use std::time::Duration;

/// The valid config of an agent command, warnings logged, log level applied.
pub fn load_config(src: &ConfigSource) -> Result<Config> {
    let l = super::config::load(src, false)?;
    for w in &l.warnings {
        log::warn!("{w}");
    }
    let mut cfg = l.into_valid()?;
    // Changes the server made (crate::remote), under the command line's --set.
    let layer = crate::remote::layer(&src.root.path(&cfg.state_dir.value));
    if !layer.is_empty() {
        let with = ConfigSource {
            root: crate::sys::Root::new(src.root.base()),
            file: src.file.clone(),
            sets: layer.into_iter().chain(src.sets.iter().cloned()).collect(),
        };
        match super::config::load(&with, false).and_then(|l| l.into_valid()) {
            Ok(c) => cfg = c,
            Err(e) => log::warn!("remote configuration not applied: {e}"),
        }
    }
    super::apply_log_level(&cfg);
    Ok(cfg)
}

/// Exit 6 with the reason when the host is managed locally.
pub fn refuse_local(cfg: &Config) -> Result<()> {
    if cfg.management_mode.value == Mode::Local {
        let src = cfg.management_mode.source.text();
        let via = if cfg.installation_mode.value.as_deref() == Some("airgap") {
            "stylus.installationMode is airgap"
        } else {
            "stylus.managementMode is local"
        };
        return Err(Error::new(
            Code::LocalMode,
            format!(
                "{via} ({src}): this host is managed locally and contacts no server; nothing to do"
            ),
        ));
    }
    Ok(())
}

/// The result of one attempt and when the next one is due (our clock, ms).
pub struct Attempt {
    pub result: Result<Done>,
    pub next_due_ms: u64,
}

/// One check-in under the state lock, then `status.json`. A held lock is
/// returned as `Err` (exit 5) without touching any file.
pub fn attempt(agent: &Agent<'_>, client: &Client, host: &dyn Host) -> Result<Attempt> {
    let _lock = state::lock(&agent.paths)?;
    let prev = state::load_status(&agent.paths).unwrap_or(None);
    let failures = prev.as_ref().map(|s| s.consecutive_failures).unwrap_or(0);
    let result = agent.run_once(client);
    let now_ms = checkin::unix_ms(host);
    let (interval_ms, next_due_ms) = match &result {
        Ok(d) => (
            d.state.interval_ms,
            checkin::next_due_ms(
                now_ms,
                d.state.clock_offset_s,
                d.state.interval_ms,
                d.state.phase_ms,
            ),
        ),
        Err(f) => {
            let mut b = [0u8; 8];
            let _ = host.fill_random(&mut b);
            // The schedule of the last success, if any: the backoff stays
            // within its interval and then keeps its slot (schedule.rs).
            let (iv, to_slot) = match state::load_state(&agent.paths) {
                Ok(Some(s)) if s.last_success > 0 && s.interval_ms > 0 => (
                    s.interval_ms,
                    checkin::next_due_ms(now_ms, s.clock_offset_s, s.interval_ms, s.phase_ms)
                        .saturating_sub(now_ms),
                ),
                _ => (0, 0),
            };
            let delay = crate::schedule::retry_delay_in(
                failures,
                f.retry_after(),
                Duration::from_millis(iv),
                Duration::from_millis(to_slot),
                u64::from_le_bytes(b),
            );
            (0, now_ms.saturating_add(delay.as_millis() as u64))
        }
    };
    let status = checkin::record(
        prev,
        &agent.host_id,
        now_ms / 1000,
        result.as_ref().map(|d| &d.state),
        interval_ms,
        next_due_ms,
    );
    if let Err(e) = state::save_status(&agent.paths, &status) {
        match &result {
            // The check-in itself worked; the next one rewrites the file.
            Ok(_) => log::warn!("{e}"),
            Err(_) => log::debug!("{e}"),
        }
    }
    Ok(Attempt {
        result,
        next_due_ms,
    })
}

pub fn run(args: CheckinArgs) -> Result<Code> {
    let cfg = load_config(&args.src)?;
    refuse_local(&cfg)?;
    if cfg.server_protocol.value == "ddi" {
        let host = crate::sys::host();
        let p = ddi_poll(&args.src.root, &cfg, host.as_ref(), &mut None, 0, &|| {})?;
        if crate::sys::stdout_is_tty() || log::max_level() >= log::LevelFilter::Info {
            super::print(&format!("{}\n", p.line))?;
        }
        if p.restart {
            return Ok(Code::Restart);
        }
        if let Some(e) = p.error {
            return Err(e);
        }
        return Ok(Code::Ok);
    }
    let host = crate::sys::host();
    if let Some(max) = args.splay {
        let mut b = [0u8; 8];
        let _ = host.fill_random(&mut b);
        let d = crate::schedule::splay_delay(max, u64::from_le_bytes(b));
        log::info!("--splay {max}: waiting {} ms first", d.as_millis());
        host.sleep(d);
    }
    let (agent, client) = checkin::prepare(&args.src.root, &cfg, host.as_ref())?;
    let a = attempt(&agent, &client, host.as_ref())?;
    let done = a.result?;
    let line = format!(
        "checked in to {} as {}{}; inventory {}; next check-in due {}\n",
        agent.base,
        agent.host_id,
        if done.registered { " (registered)" } else { "" },
        if done.inventory_sent {
            "sent"
        } else {
            "unchanged"
        },
        timefmt::rfc3339(a.next_due_ms.div_ceil(1000))
    );
    if crate::sys::stdout_is_tty() || log::max_level() >= log::LevelFilter::Info {
        super::print(&line)?;
    }
    // Act on the desired state (self-upgrade; one run is the grace period).
    let now = crate::sys::unix_secs(host.as_ref().now());
    let swapped = crate::upgrade::after_checkin(&crate::upgrade::After {
        root: &args.src.root,
        cfg: &cfg,
        client: &client,
        offer: done.state.desired.as_ref().and_then(|d| d.upgrade.as_ref()),
        desired_tag: &done.state.desired_tag,
        kubernetes: done
            .state
            .desired
            .as_ref()
            .and_then(|d| d.kubernetes.as_ref()),
        now,
        checked_in_at: now,
        grace_s: 0,
        progress: &|| {},
    })?;
    if swapped {
        return Ok(Code::Restart);
    }
    if let Some(d) = &done.state.desired {
        let dir = args.src.root.path(&cfg.state_dir.value);
        crate::remote::after_checkin(&args.src, &dir, &d.config, &done.state.desired_tag, now)?;
        // The cluster role (docs/clusters.md): apply, retry or leave.
        crate::cluster::hub::after_checkin(
            &args.src.root,
            &cfg,
            &done.state.desired_tag,
            d.cluster.as_ref(),
            std::time::Duration::from_secs(300),
        )?;
    }
    Ok(Code::Ok)
}

/// One hawkBit DDI poll (`outpost.server.protocol: ddi`): GET the
/// controller's base resource with the DDI token, then PUT the inventory as
/// `configData` when the server asks for it (`_links.configData`) or when
/// it changed since the last one sent (its SHA-256 in `ddi-configdata` in
/// the state directory). Then deployments and cancellations
/// (`crate::ddi_action`). `first_ok` is the Unix second of this process's
/// first successful poll (set here) and `grace_s` the time after it before
/// a trial commits (0 for `checkin`).
pub fn ddi_poll(
    root: &crate::sys::Root,
    cfg: &Config,
    host: &dyn Host,
    first_ok: &mut Option<u64>,
    grace_s: u64,
    progress: &dyn Fn(),
) -> Result<DdiPolled> {
    use crate::error::Code as C;
    let Some(endpoint) = &cfg.endpoint.value else {
        return Err(Error::config(
            "no management endpoint configured: set stylus.site.paletteEndpoint".to_string(),
        ));
    };
    let base = checkin::base_url(endpoint);
    let settings = checkin::http_settings(cfg, host)?;
    let paths = state::Paths::new(root.path(&cfg.state_dir.value));
    let system = crate::http::read_system_ca(root)?;
    // The anchor cache is written once the state directory exists (from
    // the second run on a new device).
    let client = Client::with_anchor_cache(settings, system.as_ref(), Some(&paths.ca_anchors()))?;
    state::ensure(&paths)?;
    // One poll at a time (a deployment must not be acted on by two
    // processes): a held lock is exit 5, as for a check-in.
    let _lock = state::lock(&paths)?;
    let id = crate::identity::host_id(root, cfg, host)?.id;
    let auth = cfg
        .ddi_token
        .value
        .as_ref()
        .map(|t| crate::ddi::authorization(&cfg.ddi_token_type.value, t.expose()));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let url = format!(
        "{base}{}",
        crate::ddi::base_path(&cfg.ddi_tenant.value, &id)
    );
    let reply = client.get(&url, &headers)?;
    match reply.status {
        200 => {}
        401 | 403 => {
            return Err(Error::new(
                C::RegistrationRefused,
                format!(
                    "{}: HTTP {}: the DDI server refused the {} token",
                    reply.what, reply.status, cfg.ddi_token_type.value
                ),
            ))
        }
        429 | 503 => {
            return Err(Error::new(
                C::ServerBusy,
                format!("{}: server busy: HTTP {}", reply.what, reply.status),
            ))
        }
        s => {
            return Err(Error::new(
                C::BadAnswer,
                format!("{}: HTTP {s}", reply.what),
            ))
        }
    }
    let poll = crate::ddi::parse_poll(&reply.body).map_err(|e| {
        Error::new(
            C::BadAnswer,
            format!("{}: not a DDI base resource: {e}", reply.what),
        )
    })?;
    // The inventory as configData.
    let facts = crate::checks::Facts::gather(root, host);
    let results = crate::checks::run(&facts, &crate::checks::Selection::default());
    let input = crate::inventory::gather(root, cfg, &facts, &results, &id);
    let data = crate::ddi::config_data(&input);
    let body = crate::ddi::config_data_body(&data);
    let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let mark = paths.dir.join("ddi-configdata");
    let last = std::fs::read_to_string(&mark).unwrap_or_default();
    let asked = poll.links.iter().any(|l| l == "configData");
    let sent = if asked || last.trim() != hex {
        let r = client.put_json(&format!("{url}/configData"), body.as_bytes(), &headers)?;
        if !(200..300).contains(&r.status) {
            return Err(Error::new(
                C::BadAnswer,
                format!("{}: HTTP {}", r.what, r.status),
            ));
        }
        crate::fsutil::write_atomic(&mark, format!("{hex}\n").as_bytes(), 0o600)?;
        true
    } else {
        false
    };
    let now = crate::sys::unix_secs(host.now());
    let ok_at = *first_ok.get_or_insert(now);
    let step = crate::ddi_action::handle(
        &crate::ddi_action::Ctx {
            root,
            cfg,
            client: &client,
            headers: &headers,
            base: &base,
            state_dir: paths.dir.clone(),
            now,
            checked_in_at: ok_at,
            grace_s,
            progress,
        },
        &poll,
    );
    let line = format!(
        "polled {base} (hawkBit DDI, tenant {}) as {id}; configData {}; next poll in {} s ({}){}",
        cfg.ddi_tenant.value,
        if sent {
            if asked {
                "sent (asked for)"
            } else {
                "sent (changed)"
            }
        } else {
            "unchanged"
        },
        poll.sleep_secs,
        poll.sleep,
        step.note
    );
    Ok(DdiPolled {
        line,
        sleep_secs: poll.sleep_secs,
        restart: step.restart,
        error: step.error,
    })
}

/// One DDI poll's result: the summary line, the server's sleep, whether a
/// new binary is in place (exit 75) and a failed deployment (reported to
/// the server already, or at the next poll).
pub struct DdiPolled {
    pub line: String,
    pub sleep_secs: u64,
    pub restart: bool,
    pub error: Option<Error>,
}
