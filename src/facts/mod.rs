//! Host facts read from kernel and OS files under a `Root` into plain structs.
//!
//! Each submodule owns one kernel text format and exposes a pure parser
//! (`parse_*`, unit-tested on captured text) plus a thin reader. Nothing here
//! decides pass or fail; that is `checks/`. Missing or garbled files become
//! `None` or an `Err` with the reason, never a panic and never a made-up value.

pub mod block;
pub mod cpu;
pub mod devices;
pub mod gather;
pub mod kernel;
pub mod mem;
pub mod modules;
pub mod mountinfo;
pub mod net;
pub mod os;
pub mod rootpath;
pub mod swap;
pub mod tools;
