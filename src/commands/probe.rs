//! `outpost probe URL` (hidden developer command): one GET, or a POST with
//! `--data`, through `http/` exactly as a check-in connects (system CA
//! bundle under the root + `--cacert`, proxy and NO_PROXY, body cap,
//! timeouts); prints the status and the body. Exit 0 on 2xx.
//!
//! It must not retry, follow redirects or keep any state; it never prints
//! request headers or the proxy's credentials.

use crate::cli::ProbeArgs;
use crate::config::CaCert;
use crate::error::{Code, Error, Result};
use crate::http::{self, Client, HttpSettings, ProxyEnv, ProxyUrl};
use crate::noproxy::NoProxy;
use crate::proto::{self, Endpoint, Outcome};
use std::io::Read;
use std::path::Path;
use std::time::Duration;

pub fn run(args: ProbeArgs) -> Result<Code> {
    let host = crate::sys::host();
    let mut extra = Vec::new();
    for f in &args.ca_certs {
        let data = std::fs::read(f).map_err(|e| Error::io("reading CA certificate", f, &e))?;
        let certs = CaCert::from_bytes(&data)
            .map_err(|why| Error::config(format!("probe: --cacert {}: {why}", f.display())))?;
        extra.extend(certs);
    }
    let proxy = match &args.proxy {
        Some(p) => {
            Some(ProxyUrl::parse(p).map_err(|e| Error::usage(format!("probe: --proxy: {e}")))?)
        }
        None => None,
    };
    let no_proxy = match &args.no_proxy {
        Some(l) => {
            NoProxy::parse(l).map_err(|e| Error::usage(format!("probe: --no-proxy: {e}")))?
        }
        None => NoProxy::default(),
    };
    let settings = HttpSettings {
        timeout: args
            .timeout_secs
            .map(Duration::from_secs)
            .unwrap_or(http::DEFAULT_TIMEOUT),
        extra_ca: extra,
        proxy,
        no_proxy,
        proxy_env: ProxyEnv::from_process(),
        now: host.now(),
        ..HttpSettings::default()
    };
    let system = http::read_system_ca(&args.root)?;
    let client = Client::new(settings, system.as_ref())?;
    let reply = match &args.data {
        Some(path) => client.post_json(&args.url, &read_data(path)?, &[])?,
        None => client.get(&args.url, &[])?,
    };
    // A busy server is exit 11, as for a check-in (one table).
    let now = host.now();
    if let Outcome::Exit(code @ Code::ServerBusy) = proto::outcome(Endpoint::Probe, reply.status) {
        return Err(crate::checkin::status_failure(code, &reply, now));
    }
    let mut out = format!("HTTP {}\n{}", reply.status, reply.body);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    super::print(&out)?;
    if (200..300).contains(&reply.status) {
        Ok(Code::Ok)
    } else {
        Err(Error::new(
            Code::BadAnswer,
            format!("{}: HTTP {}", reply.what, reply.status),
        ))
    }
}

fn read_data(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("reading", Path::new("standard input"), &e))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(|e| Error::io("reading", path, &e))
    }
}
