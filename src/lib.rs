//! outpost: an open, minimal agent that brings an existing Linux host under
//! central management. The device binary (`src/main.rs`) is a thin shell over
//! this library; see DESIGN notes in each module's header.

// `unsafe` lives in `sys.rs` only (it opts out, and says why there).
#![deny(unsafe_code)]

pub mod boot;
pub mod checkin;
pub mod checks;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod ddi;
pub mod ddi_action;
pub mod error;
pub mod facts;
pub mod fsutil;
#[cfg(feature = "fuzzing")]
pub mod fuzz_api;
pub mod http;
pub mod identity;
pub mod install;
pub mod inventory;
pub mod noproxy;
pub mod notify;
pub mod paths;
pub mod proto;
pub mod proxy;
pub mod remote;
pub mod schedule;
pub mod state;
pub mod sys;
pub mod timefmt;
pub mod upgrade;
pub mod version;
