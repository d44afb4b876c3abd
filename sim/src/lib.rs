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
//! - `cli`: the `baton` command, callable from a user's own binary
//!   (feature `cli`);
//! - [`coverage`]: what each verdict is worth (proof, bounded, sampled);
//! - [`registry`]: the algorithms by name, built-in and registered;
//! - [`testing`]: checking a machine from `cargo test`;
//! - [`zoo`]: models of the historical algorithms;
//! - [`shape`]: the shape of a generated world.
//!
//! ## Features
//!
//! None are on by default: the harness above, with the explorer, builds on
//! baton-core and baton-fakes with serde, toml and xxhash alone — what a
//! crate checking its own machine from `cargo test` needs
//! ([`testing::Suite`]).
//!
//! | feature | adds | pulls in |
//! |---|---|---|
//! | `parallel` | the explorer on every core (same states, verdicts and counterexamples) | rayon |
//! | `threads` | `concurrent`: the loom and shuttle checkers over the real coordinator | loom, shuttle |
//! | `proptest` | `randomized`: random schedules and generated worlds, shrunk | proptest |
//! | `cli` | `cli` and `bench`: the `baton` command, for `baton` and a user's own binary; every checker | the three above, clap, indicatif, mimalloc |
//!
//! A checker left out of the build is an error naming its feature when a
//! scenario asks for it (`--checker loom`), never a silent skip.

#[cfg(feature = "cli")]
pub mod bench;
pub mod checkers;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "threads")]
pub mod concurrent;
pub mod coverage;
pub mod draw;
pub mod explore;
pub mod fingerprint;
pub mod found;
pub mod invariants;
pub mod livelock;
pub mod merge;
pub mod progress;
#[cfg(feature = "proptest")]
pub mod randomized;
pub mod reached;
pub mod reduction;
pub mod registry;
pub mod report;
pub mod run;
pub mod scenario;
pub mod shape;
pub mod spec;
pub mod symmetry;
pub mod testing;
pub mod world;
pub mod zoo;
