//! The HTTPS transport: the only module that names `ureq` (and `rustls`).
//!
//! It builds one ureq agent per request from `HttpSettings`: rustls with the
//! ring provider, trust roots = the system CA bundle found under the root +
//! the configured extra CAs, connect and global timeouts, a response-body cap,
//! 16 KiB I/O buffers, user agent `outpost/<version>`, HTTPS only (plain HTTP
//! only to loopback behind an explicit test switch), no redirects followed,
//! and a proxy chosen here per request (settings proxy over the standard
//! variables; `noProxy` matched by `noproxy.rs`, CIDRs included). ureq's own
//! environment proxy reading is never used.
//!
//! Every failure becomes an `Error` with one exit code (DESIGN.md table) and a
//! one-line message "METHOD URL: cause", where URL has no userinfo and no
//! query. It must not log or print request headers or bodies (tokens), nor a
//! proxy URL's credentials, and it must not decide what a status means: every
//! answer but a redirect (never followed) reaches the caller as a `Reply`,
//! and `proto::outcome` decides (one table).

use crate::config::CaCert;
use crate::error::{Code, Error, Result};
use crate::noproxy::NoProxy;
pub use crate::proxy::{EnvVar, ProxyEnv, ProxyUrl};
use crate::sys::Root;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use ureq::http::Uri;
#[cfg(feature = "webpki-roots")]
use ureq::tls::RootCerts;
use ureq::tls::{TlsConfig, TlsProvider};

/// Log lines of the transport keep one target, whichever file they come from.
const LOG_TARGET: &str = "outpost::http";

pub mod anchors;
mod certinfo;
mod client;
pub mod diagnose;
mod download;
mod errors;
mod provider;
mod reuse;
mod route;
mod settings;
#[cfg(test)]
mod tests;
mod tls;
mod trust;

#[allow(unused_imports)]
use client::*;
pub use client::{safe_url, Client, Reply, IO_BUFFER, KEEP_IDLE};
pub use errors::tls_cause;
#[allow(unused_imports)]
use errors::*;
pub use route::{route, Route};
pub use settings::{HttpSettings, DEFAULT_BODY_LIMIT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
#[allow(unused_imports)]
use trust::*;
pub use trust::{read_system_ca, CaBundle, SYSTEM_CA_PATHS};
