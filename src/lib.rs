//! outpost: an open, minimal agent that brings an existing Linux host under
//! central management. The device binary (`src/main.rs`) is a thin shell over
//! this library; see DESIGN notes in each module's header.

pub mod checks;
pub mod cli;
pub mod commands;
pub mod error;
pub mod facts;
pub mod http;
pub mod noproxy;
pub mod schedule;
pub mod sys;
pub mod version;
