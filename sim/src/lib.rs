//! # baton-sim
//!
//! The world model, the named invariants, the checkers and the scenario
//! loader behind the `baton` command.

pub mod zoo;
