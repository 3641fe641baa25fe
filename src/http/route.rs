//! Which way one request leaves the host: direct or through a proxy
//! (`route`, pure; the precedence is documented on `ProxyEnv`).

use super::*;

/// How one request leaves the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Direct,
    Proxy(ProxyUrl),
}

/// Decide direct or proxy for `host:port` (pure). The settings proxy with the
/// settings `noProxy` wins; otherwise the variables (`https_proxy` or
/// `all_proxy` for https, `http_proxy` or `all_proxy` for http) with
/// `no_proxy` merged into the settings list.
pub fn route(settings: &HttpSettings, https: bool, host: &str, port: u16) -> Result<Route> {
    if let Some(p) = &settings.proxy {
        return Ok(if settings.no_proxy.matches(host, port) {
            Route::Direct
        } else {
            Route::Proxy(p.clone())
        });
    }
    let env = &settings.proxy_env;
    let Some(var) = env.proxy_for(https) else {
        return Ok(Route::Direct);
    };
    let proxy =
        ProxyUrl::parse(&var.value).map_err(|e| Error::config(format!("{}: {e}", var.name)))?;
    let mut bypass = settings.no_proxy.clone();
    if let Some(list) = &env.no_proxy {
        let (np, bad) = NoProxy::parse_lenient(&list.value);
        for b in bad {
            log::warn!(target: LOG_TARGET, "{}: ignoring {b}", list.name);
        }
        bypass = bypass.merged(&np);
    }
    Ok(if bypass.matches(host, port) {
        Route::Direct
    } else {
        Route::Proxy(proxy)
    })
}
