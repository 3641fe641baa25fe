//! Streamed downloads (self-upgrade artifacts): the same trust, proxy
//! choice, timeouts and error classes as every other request of this
//! transport, but the body goes in 16 KiB pieces to a caller's sink instead
//! of memory, capped at a byte count the caller knows in advance (a signed
//! manifest's size). It must not buffer the body.

use super::errors::Ctx;
use super::{route, Client, Route, Target, IO_BUFFER};
use crate::error::{Code, Error, Result};
use std::io::Read;
use std::time::Duration;

impl Client {
    /// GET `url` and hand the body to `sink` piece by piece; at most `max`
    /// bytes (more is exit 12), within `timeout` for the whole transfer.
    /// Returns the byte count. A sink error ends the transfer with it.
    pub fn download(
        &self,
        url: &str,
        max: u64,
        timeout: Duration,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        self.download_with(url, &[], max, timeout, sink)
    }

    /// [`Client::download`] with extra request headers (a DDI token; never
    /// logged).
    pub fn download_with(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        max: u64,
        timeout: Duration,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let target = Target::parse(url).map_err(|e| Error::config(format!("GET {e}")))?;
        let what = format!("GET {}", target.safe);
        let plain_ok = self.settings.allow_plain_loopback && target.is_loopback();
        if !target.https && !plain_ok {
            return Err(Error::new(
                Code::UpgradeRejected,
                format!("{what}: plain http:// is refused for artifacts; use https://"),
            ));
        }
        let mut settings = self.settings.clone();
        settings.timeout = timeout;
        let r = route(&settings, target.https, &target.host, target.port)?;
        log::debug!(
            "{what}{}",
            match &r {
                Route::Direct => String::new(),
                Route::Proxy(p) => format!(" via proxy {p}"),
            }
        );
        // A client of its own (its own timeout): the agent is not shared
        // with the check-ins' kept connection.
        let me = Client {
            settings,
            roots: self.roots.clone(),
            agent: std::sync::Mutex::new(None),
            watch: std::sync::Arc::default(),
        };
        let agent = me.agent(&r)?;
        let ctx = Ctx {
            what: &what,
            target: &target,
            route: &r,
            settings: &me.settings,
        };
        let mut req = agent.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req.call().map_err(|e| ctx.classify(&e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let code = if status == 429 || status >= 500 {
                Code::ServerBusy
            } else {
                Code::BadAnswer
            };
            return Err(Error::new(code, format!("{what}: HTTP {status}")));
        }
        let mut reader = resp
            .body_mut()
            .with_config()
            .limit(max.saturating_add(1))
            .reader();
        let mut buf = vec![0u8; IO_BUFFER];
        let mut total: u64 = 0;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
                    || e.to_string().contains("timeout") =>
                {
                    return Err(Error::new(
                        Code::Network,
                        format!(
                            "{what}: artifact download stalled: {total} of {max} bytes within {} s (timeout)",
                            timeout.as_secs()
                        ),
                    )
                    )
                }
                Err(e) => return Err(ctx.classify(&ureq::Error::Io(e))),
            };
            total += n as u64;
            if total > max {
                return Err(Error::new(
                    Code::UpgradeRejected,
                    format!("{what}: artifact larger than the {max} bytes its manifest names"),
                ));
            }
            sink(&buf[..n])?;
        }
        Ok(total)
    }
}
