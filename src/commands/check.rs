//! `outpost check`: gather facts under the root, run the checks, print text
//! or `outpost.check/v1` JSON; exit 0 when nothing failed, 1 otherwise.

use crate::checks::{self, Facts, Summary};
use crate::cli::CheckArgs;
use crate::error::{Code, Result};

pub fn run(args: CheckArgs) -> Result<Code> {
    let host = crate::sys::host();
    log::debug!(
        "check: reading host facts under {}",
        args.root.base().display()
    );
    let mut facts = Facts::gather(&args.root, host.as_ref());
    facts.distro = args.distro;
    let mut results = if args.boot {
        crate::boot::checks(&args.root, &facts, false).0
    } else {
        checks::run(&facts, &args.selection)
    };
    if let Some(rc) = &args.role {
        results.extend(crate::cluster::preflight::run(&args.root, rc));
    }
    if args.network {
        let net = network(&args, host.as_ref())?;
        if let Some(id) = crate::http::diagnose::first_failure(&net) {
            log::error!("network: first broken step: {id}");
        }
        results.extend(net);
    }
    let text = if args.json {
        let mut j = checks::to_json(&facts, &results);
        j.push('\n');
        j
    } else {
        let colour = crate::sys::stdout_is_tty()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        checks::to_text(&facts, &results, colour)
    };
    super::print(&text)?;
    Ok(if Summary::of(&results).ok() {
        Code::Ok
    } else {
        Code::CheckFailed
    })
}

/// The `net.*` steps against the configured endpoint (see
/// `http::diagnose`). A config that does not load is the usual exit 2.
pub fn network(args: &CheckArgs, host: &dyn crate::sys::Host) -> Result<Vec<checks::Check>> {
    let cfg = super::checkin::load_config(&args.config)?;
    let settings = crate::checkin::http_settings(&cfg, host)?;
    let system = crate::http::read_system_ca(&args.root)?;
    let base = cfg.endpoint.value.as_deref().map(crate::checkin::base_url);
    let ddi = cfg.server_protocol.value == "ddi";
    let outpost_judge = |r: &crate::http::Reply| -> crate::http::diagnose::ProbeVerdict {
        if r.status != 200 {
            return Err(format!(
                "expected 200 from an outpost server, got {}",
                r.status
            ));
        }
        let p: crate::proto::Probe = r
            .json("probe answer")
            .map_err(|e| e.message().to_string())?;
        if p.protocol != "outpost" {
            return Err(format!("protocol {:?}, not outpost", p.protocol));
        }
        Ok((
            format!(
                "protocol {} majors {:?}, server {}",
                p.protocol, p.majors, p.server
            ),
            Some(p.server_time),
        ))
    };
    let ddi_judge = |r: &crate::http::Reply| -> crate::http::diagnose::ProbeVerdict {
        match r.status {
            200 => {}
            401 | 403 => {
                return Err(format!(
                    "the DDI server refused the {} token (HTTP {})",
                    cfg.ddi_token_type.value, r.status
                ))
            }
            404 => return Err("no such tenant or controller (HTTP 404)".into()),
            s => return Err(format!("expected 200 from a DDI server, got {s}")),
        }
        let p =
            crate::ddi::parse_poll(&r.body).map_err(|e| format!("not a DDI base resource: {e}"))?;
        let links = if p.links.is_empty() {
            "none".to_string()
        } else {
            p.links.join(", ")
        };
        Ok((
            format!(
                "hawkBit DDI: polling sleep {} ({} s), links: {links}",
                p.sleep, p.sleep_secs
            ),
            None,
        ))
    };
    let judge: &dyn Fn(&crate::http::Reply) -> crate::http::diagnose::ProbeVerdict =
        if ddi { &ddi_judge } else { &outpost_judge };
    let (probe_path, auth) = if ddi {
        let id = crate::identity::derive(&args.root, &cfg)
            .map(|h| h.id)
            .or_else(|| {
                let p = args
                    .root
                    .path(&cfg.state_dir.value)
                    .join(crate::identity::HOST_ID_FILE);
                std::fs::read_to_string(p)
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_default();
        let auth = cfg
            .ddi_token
            .value
            .as_ref()
            .map(|t| crate::ddi::authorization(&cfg.ddi_token_type.value, t.expose()));
        (crate::ddi::base_path(&cfg.ddi_tenant.value, &id), auth)
    } else {
        (crate::proto::PATH_PROBE.to_string(), None)
    };
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let target = crate::http::diagnose::Target {
        base: base.as_deref(),
        probe_path: &probe_path,
        judge_probe: judge,
        probe_headers: &headers,
        resolver: resolver(&args.root),
    };
    Ok(crate::http::diagnose::network(
        &settings,
        system.as_ref(),
        &target,
    ))
}

/// "10.0.0.2 (/etc/resolv.conf)": the first nameserver the C library would
/// ask, or what stands in for it.
fn resolver(root: &crate::sys::Root) -> String {
    let path = root.path("/etc/resolv.conf");
    match std::fs::read_to_string(&path) {
        Ok(t) => {
            let ns: Vec<&str> = t
                .lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .take(3)
                .collect();
            if ns.is_empty() {
                "the system resolver (no nameserver in /etc/resolv.conf)".to_string()
            } else {
                format!("nameserver {} (/etc/resolv.conf)", ns.join(", "))
            }
        }
        Err(_) => "the system resolver (no /etc/resolv.conf)".to_string(),
    }
}
