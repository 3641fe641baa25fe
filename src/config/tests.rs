//! Unit tests of config loading (kept apart: they are long tables).
use super::*;
