//! # baton-sim
//!
//! The world model, the named invariants, the exhaustive explorer, the
//! scenario loader and the bug zoo behind the `baton` command.
//!
//! - [`spec`]: what a world is made of (a scenario's parameters);
//! - [`world`]: the world and its atomic steps;
//! - [`invariants`]: the named invariants every checker uses;
//! - [`explore`]: breadth-first exhaustive search with state hashing;
//! - [`fingerprint`]: the fingerprints of worlds and the visited set;
//! - [`symmetry`]: one fingerprint per orbit under renaming replicas;
//! - [`scenario`]: TOML scenarios with expected verdicts;
//! - [`report`]: timelines and sequence diagrams of counterexamples;
//! - [`draw`]: a counterexample drawn as a self-contained SVG;
//! - [`run`]: checking scenarios, replay files, output formats ([`found`]:
//!   what a check found, and its verdict as shown);
//! - [`merge`]: one verdict from the results of sharded runs;
//! - [`cli`]: the `baton` command, callable from a user's own binary;
//! - [`coverage`]: what each verdict is worth (proof, bounded, sampled);
//! - [`registry`]: the algorithms by name, built-in and registered;
//! - [`testing`]: checking a machine from `cargo test`;
//! - [`zoo`]: models of the historical algorithms.

pub mod bench;
pub mod checkers;
pub mod cli;
pub mod concurrent;
pub mod coverage;
pub mod draw;
pub mod explore;
pub mod fingerprint;
pub mod found;
pub mod invariants;
pub mod merge;
pub mod randomized;
pub mod reached;
pub mod reduction;
pub mod registry;
pub mod report;
pub mod run;
pub mod scenario;
pub mod spec;
pub mod symmetry;
pub mod testing;
pub mod world;
pub mod zoo;
