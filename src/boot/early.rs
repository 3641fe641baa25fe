//! The early check-in from the initramfs (`outpost boot` runs it as a child
//! and kills it at the cap). Config, CA bundle, state and credential are
//! read from the mounted real root (never copied into the image).
//!
//! It is read-only on purpose: the real root is usually mounted `ro` and
//! not yet checked by fsck, so it takes no lock and writes no state; it
//! never registers (no token use before boot), sends no inventory (the
//! root's /proc and /sys are not mounted yet, the hub keeps the one it
//! has), and ignores the desired state in the answer (never upgrades,
//! never changes config). The agent's next check-in after boot does all
//! of that.

use super::command::BootArgs;
use super::{Beacon, BEACON};
use crate::cli::ConfigSource;
use crate::error::{Code, Error, Result};
use crate::proto::{self, CheckinRequest, CheckinResponse, Endpoint};

/// The check-in request the initramfs sends: the state's hash and tag,
/// no inventory, health from the boot checks, the beacon.
pub fn request(st: &crate::state::State, b: &Beacon) -> CheckinRequest {
    let failing: Vec<String> = b
        .checks
        .iter()
        .filter(|c| c.status == "fail")
        .map(|c| c.id.clone())
        .collect();
    CheckinRequest {
        v: proto::PROTOCOL_VERSION,
        host_id: st.host_id.clone(),
        agent: crate::version::VERSION.to_string(),
        health: proto::Health {
            ok: failing.is_empty(),
            failing,
        },
        inventory_hash: st.inventory_hash.clone(),
        desired_tag: st.desired_tag.clone(),
        inventory: None,
        upgrade: None,
        config: None,
        boot: Some(Beacon {
            reported_by: "initramfs".into(),
            ..b.clone()
        }),
        cluster: None,
    }
}

/// Be the child: one read-only check-in, then exit with its code.
pub fn child(a: &BootArgs) -> Result<Code> {
    let Some(sysroot) = &a.sysroot else {
        return Err(Error::usage("boot --early-checkin needs --sysroot"));
    };
    let src = ConfigSource {
        root: sysroot.clone(),
        file: None,
        sets: Vec::new(),
    };
    let mut cfg = crate::commands::checkin::load_config(&src)?;
    crate::commands::checkin::refuse_local(&cfg)?;
    // Each network step fits in the cap (the parent kills us at it anyway:
    // this only makes the error say which step was slow).
    let cap = a.cap_s.max(1);
    cfg.connect_timeout.value = cfg.connect_timeout.value.min((cap / 2).max(1));
    cfg.request_timeout.value = cfg.request_timeout.value.min(cap);
    let host = crate::sys::host();
    let Some(endpoint) = &cfg.endpoint.value else {
        return Err(Error::config(
            "no management endpoint configured on the real root".to_string(),
        ));
    };
    let settings = crate::checkin::http_settings(&cfg, host.as_ref())?;
    let system = crate::http::read_system_ca(sysroot)?;
    let client = crate::http::Client::new(settings, system.as_ref())?;
    let paths = crate::state::Paths::new(sysroot.path(&cfg.state_dir.value));
    let st = crate::state::load_state(&paths)?.ok_or_else(|| {
        Error::new(
            Code::RegistrationRefused,
            format!(
                "no {} on the real root: never checked in",
                paths.state().display()
            ),
        )
    })?;
    if st.deregistered {
        return Err(Error::new(
            Code::Deregistered,
            "this device was deregistered by the server",
        ));
    }
    let cred = crate::state::read_secret(&paths.credential())?.ok_or_else(|| {
        Error::new(
            Code::RegistrationRefused,
            "no device credential on the real root",
        )
    })?;
    let path = a.root.path(BEACON);
    let text = super::read_small(&path)
        .ok_or_else(|| Error::new(Code::LocalIo, format!("{}: not readable", path.display())))?;
    let beacon = Beacon::parse(&text)
        .map_err(|e| Error::new(Code::LocalIo, format!("{}: {e}", path.display())))?;
    let body = proto::encode_checkin(&request(&st, &beacon));
    let url = format!(
        "{}{}",
        crate::checkin::base_url(endpoint),
        proto::PATH_CHECKIN
    );
    let auth = format!("Bearer {cred}");
    let reply = client.post_json(&url, body.as_bytes(), &[("Authorization", auth.as_str())])?;
    if reply.status != 200 {
        let code = proto::outcome(Endpoint::Checkin, reply.status).code();
        return Err(crate::checkin::status_failure(
            code,
            &reply,
            std::time::SystemTime::now(),
        ));
    }
    proto::decode::<CheckinResponse>(&reply.body)
        .map_err(|e| Error::new(Code::BadAnswer, format!("{}: {e}", reply.what)))?;
    Ok(Code::Ok)
}
