//! Checking a machine from `cargo test`: every scenario of some files or
//! directories, for one algorithm, under the explorer; a verdict other
//! than the expected one fails the test with the counterexample's
//! timeline, its drawing and the command that replays it.
//!
//! ```no_run
//! use baton_sim::registry::{register, Registration};
//! use baton_sim::testing::Suite;
//!
//! #[test]
//! fn ours_is_race_free_on_the_shipped_worlds() {
//!     let ours = register(Registration::new("ours", baton_core::Machine::new)).unwrap();
//!     Suite::new(ours)
//!         .replay_with("cargo run -p our-crate --bin our-check --")
//!         .check(["../scenarios/two_replicas_single_use.toml"]);
//! }
//! ```
//!
//! A scenario that gives no verdict for the algorithm expects of it what
//! it expects of baton (see [`Scenario::expectations_for`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::registry::Algorithm;
use crate::run::{check_one, CheckOptions, CheckResult};
use crate::scenario::{load_all, Scenario};

/// One algorithm, checked on scenario files.
pub struct Suite {
    algorithm: Algorithm,
    replay_command: String,
    out_dir: PathBuf,
}

impl Suite {
    /// Checks `algorithm`; counterexamples go to `target/baton-tests`.
    pub fn new(algorithm: Algorithm) -> Suite {
        Suite {
            algorithm,
            replay_command: "baton".to_owned(),
            out_dir: PathBuf::from("target/baton-tests"),
        }
    }

    /// The command that runs a `baton` with this algorithm registered (a
    /// user's binary calling `baton_sim::cli::run_with`, feature `cli`), for the replay line
    /// of a failure. Default: `baton`, which knows only the built-ins.
    pub fn replay_with(mut self, command: &str) -> Suite {
        self.replay_command = command.to_owned();
        self
    }

    /// Where replay files and drawings are written.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Suite {
        self.out_dir = dir.into();
        self
    }

    /// Checks every scenario under `paths` (files or directories); returns
    /// the results, or a report of every unexpected verdict.
    pub fn run<P: AsRef<Path>>(
        &self,
        paths: impl IntoIterator<Item = P>,
    ) -> Result<Vec<CheckResult>, String> {
        let paths: Vec<PathBuf> = paths.into_iter().map(|p| p.as_ref().to_owned()).collect();
        let scenarios: Vec<Scenario> = load_all(&paths).map_err(|e| e.to_string())?;
        if scenarios.is_empty() {
            return Err(format!("no scenario files under {paths:?}"));
        }
        let options = CheckOptions::explore(self.out_dir.clone());
        let mut results = Vec::new();
        for scenario in &scenarios {
            for (algorithm, expected) in scenario.expectations_for(&[self.algorithm]) {
                results.push(check_one(scenario, algorithm, expected, &options)?);
            }
        }
        let failures: Vec<&CheckResult> = results.iter().filter(|r| !r.ok).collect();
        if failures.is_empty() {
            return Ok(results);
        }
        let mut report = format!(
            "{} of {} checks of {} did not find the expected verdict\n",
            failures.len(),
            results.len(),
            self.algorithm
        );
        for r in failures {
            writeln!(
                report,
                "\n── {} × {}: expected {}, found {} ({})",
                r.scenario, r.algorithm, r.expected, r.verdict, r.coverage
            )
            .unwrap();
            if let Some(timeline) = &r.timeline {
                writeln!(report, "\n{timeline}").unwrap();
            }
            if let Some(drawing) = &r.drawing {
                writeln!(report, "   drawing: {drawing}").unwrap();
            }
            if let Some(replay) = &r.replay {
                writeln!(
                    report,
                    "   replay:  {} replay {replay}",
                    self.replay_command
                )
                .unwrap();
            }
        }
        Err(report)
    }

    /// [`Suite::run`], panicking with the report: for `#[test]`s.
    pub fn check<P: AsRef<Path>>(&self, paths: impl IntoIterator<Item = P>) -> Vec<CheckResult> {
        match self.run(paths) {
            Ok(results) => results,
            Err(report) => panic!("{report}"),
        }
    }
}
