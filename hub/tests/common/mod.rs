//! The agent's test support for the hub and its test PKI (tests/common in
//! the agent's crate), shared rather than copied; and the hub's own: the
//! database backend of a test run and the test PostgreSQL.
#![allow(dead_code)]

pub mod backend;
#[path = "../../../tests/common/fault.rs"]
pub mod fault;
#[path = "../../../tests/common/hub.rs"]
pub mod hub;
#[path = "../../src/testpg.rs"]
pub mod testpg;
#[path = "../../../tests/common/tls.rs"]
pub mod tls;
