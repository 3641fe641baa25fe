//! outpost: an open, minimal agent that brings an existing Linux host under
//! central management. The device binary (`src/main.rs`) is a thin shell over
//! this library; see DESIGN notes in each module's header.

// `unsafe` lives in `sys.rs` only (it opts out, and says why there).
#![deny(unsafe_code)]

pub mod boot;
pub mod checkin;
pub(crate) mod checks;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub(crate) mod ddi;
pub(crate) mod ddi_action;
pub mod error;
pub(crate) mod facts;
pub mod fsutil;
#[cfg(feature = "fuzzing")]
pub mod fuzz_api;
pub mod http;
pub(crate) mod identity;
pub mod install;
pub(crate) mod inventory;
pub mod noproxy;
pub(crate) mod notify;
pub(crate) mod paths;
pub mod proto;
pub(crate) mod proxy;
pub(crate) mod remote;
pub mod schedule;
pub(crate) mod state;
pub mod sys;
pub mod timefmt;
pub mod upgrade;
pub mod version;
