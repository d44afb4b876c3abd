//! The four checkers behind `baton check --checker`: the explorer, loom,
//! shuttle and proptest. Each turns one (scenario, algorithm) into the same
//! [`CheckResult`] — the same verdict table, the same counterexample files,
//! the same replay command — whichever found it.

//!
//! The explorer is always built; loom and shuttle ([`threads`], feature
//! `threads`) and proptest ([`prop`], feature `proptest`) only with their
//! features. Without one, asking for that checker is an error that names
//! the feature, not a silent skip.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::coverage::Coverage;
use crate::invariants::Invariant;
use crate::run::{CheckResult, Found};
use crate::scenario::{Expectation, Scenario};
use crate::zoo::Algorithm;

#[cfg(feature = "proptest")]
pub mod prop;
#[cfg(feature = "threads")]
pub mod threads;

#[cfg(feature = "proptest")]
pub use prop::check_proptest;
#[cfg(feature = "threads")]
pub use threads::{check_threads, default_loom_bound, loom_options, replay_threads, shuttle_modes};
#[cfg(not(feature = "proptest"))]
pub use unbuilt::check_proptest;
#[cfg(not(feature = "threads"))]
pub use unbuilt::{check_threads, replay_threads};

/// A checker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checker {
    /// Exhaustive breadth-first search of the world model.
    Explore,
    /// loom over the real coordinator, bounded preemption.
    Loom,
    /// shuttle over the real coordinator: PCT (depths 3 and 6), random,
    /// then depth-first.
    Shuttle,
    /// proptest: random schedules of the world model, shrunk.
    Proptest,
}

impl Checker {
    /// Every checker, in the order `all` runs them.
    pub const ALL: [Checker; 4] = [
        Checker::Explore,
        Checker::Loom,
        Checker::Shuttle,
        Checker::Proptest,
    ];

    /// The checker's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Checker::Explore => "explore",
            Checker::Loom => "loom",
            Checker::Shuttle => "shuttle",
            Checker::Proptest => "proptest",
        }
    }
}

impl fmt::Display for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Checker {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Checker::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                format!("unknown checker `{s}` (expected explore, loom, shuttle, proptest or all)")
            })
    }
}

/// The budgets of the sampling and bounded checkers.
#[derive(Clone, Debug)]
pub struct Budgets {
    /// loom's preemption bound (`None`: chosen from the thread count).
    pub loom_preemption_bound: Option<usize>,
    /// Executions per shuttle mode.
    pub shuttle_iterations: usize,
    /// Seed of shuttle's random and PCT schedulers, and of proptest.
    pub seed: u64,
    /// proptest cases.
    pub proptest_cases: u32,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            loom_preemption_bound: None,
            shuttle_iterations: 1000,
            seed: 0,
            proptest_cases: 2048,
        }
    }
}

/// The invariants a sampling or bounded checker is asked about: the
/// expected one where a violation is expected (the explorer reports the
/// first invariant on a shortest run; another checker reaches other runs
/// first, and is asked whether it can find this failure), otherwise all the
/// scenario checks.
pub fn target_invariants(scenario: &Scenario, expected: Expectation) -> Vec<Invariant> {
    match expected {
        Expectation::Violates(invariant) => vec![invariant],
        Expectation::Holds => scenario.invariants.clone(),
    }
}

/// Whether `found` agrees with `expected`. A sampled search that met no
/// violation where one is expected does not contradict it — a sample proves
/// nothing either way — and passes as unconfirmed ([`unconfirmed`]); a
/// proof or a bounded search that finds none does contradict it.
#[cfg_attr(not(any(feature = "threads", feature = "proptest")), allow(dead_code))]
fn verdict_ok(expected: Expectation, found: &Found, coverage: &Coverage) -> bool {
    match (expected, found) {
        (_, Found::NotApplicable { .. }) => true,
        (Expectation::Violates(_), Found::Holds) => matches!(coverage, Coverage::Sampled(_)),
        (Expectation::Holds, Found::Holds) => true,
        (Expectation::Violates(i), Found::Violates { invariant, .. }) => i.name() == invariant,
        _ => false,
    }
}

/// An expected violation that a search did not meet.
pub fn unconfirmed(expected: Expectation, found: &Found) -> bool {
    matches!((expected, found), (Expectation::Violates(_), Found::Holds))
}

#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(any(feature = "threads", feature = "proptest")), allow(dead_code))]
pub(crate) fn result(
    scenario: &Scenario,
    algorithm: Algorithm,
    expected: Expectation,
    checker: Checker,
    found: Found,
    coverage: Coverage,
    executions: u64,
    started: Instant,
) -> CheckResult {
    let states = usize::try_from(executions).unwrap_or(usize::MAX);
    CheckResult {
        scenario: scenario.name.clone(),
        path: scenario.path.display().to_string(),
        algorithm: algorithm.to_string(),
        checker: checker.name().into(),
        expected: expected.to_string(),
        ok: verdict_ok(expected, &found, &coverage),
        unconfirmed: unconfirmed(expected, &found),
        verdict: crate::run::verdict_text(expected, &found, &coverage, states),
        excused: crate::invariants::excuses::excused_by(
            &scenario.spec_for(algorithm).faults,
            &scenario.invariants,
        ),
        found,
        coverage,
        states,
        transitions: 0,
        depth: 0,
        seconds: started.elapsed().as_secs_f64(),
        stored_bytes: 0,
        widest_level: 0,
        shard: None,
        replay: None,
        diagram: None,
        drawing: None,
        timeline: None,
        reached: None,
    }
}

/// How a thread checker's counterexample is replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "checker")]
pub enum ThreadReplay {
    /// Re-run loom with the same bound: its search order is deterministic,
    /// so it stops at the same first failing execution.
    Loom {
        /// The preemption bound of the run.
        preemption_bound: usize,
    },
    /// Run exactly shuttle's failing schedule.
    Shuttle {
        /// shuttle's encoded schedule.
        schedule: String,
    },
}

/// A thread checker's log as a numbered timeline.
pub fn render_log(log: &[String]) -> String {
    log.iter()
        .enumerate()
        .map(|(i, line)| format!("{:>4}. {line}\n", i + 1))
        .collect()
}

/// A thread checker's log as a Mermaid sequence diagram: callers ask their
/// replica, replicas call the store and the provider.
pub fn thread_mermaid(log: &[String], title: &str) -> String {
    let mut out = format!("---\ntitle: {title}\n---\nsequenceDiagram\n");
    for line in log {
        let text = line.replace(['"', ';', '#'], " ");
        if let Some((replica, what)) = text.split_once(": ") {
            if replica.starts_with('r') && !replica.contains(' ') {
                let target = if what.starts_with("exchange") {
                    "provider"
                } else {
                    "store"
                };
                out.push_str(&format!("    {replica}->>{target}: {what}\n"));
                continue;
            }
        }
        out.push_str(&format!("    Note over store,provider: {text}\n"));
    }
    out
}

/// The checkers this build leaves out: each call says which feature brings
/// it back.
#[cfg(any(not(feature = "threads"), not(feature = "proptest")))]
mod unbuilt {
    #[allow(unused_imports)]
    use super::{Algorithm, Checker, Expectation, Scenario, ThreadReplay};
    #[allow(unused_imports)]
    use crate::run::{CheckOptions, CheckResult, ReplayFile};

    /// The error for a checker this build of baton-sim does not contain.
    pub fn not_built(checker: Checker) -> String {
        let feature = match checker {
            Checker::Proptest => "proptest",
            _ => "threads",
        };
        format!(
            "the {checker} checker is not in this build: enable baton-sim's `{feature}` feature \
             (or `cli`, which has every checker)"
        )
    }

    /// Runs one (scenario, algorithm) under loom or shuttle: not built.
    #[cfg(not(feature = "threads"))]
    pub fn check_threads(
        _: &Scenario,
        _: Algorithm,
        _: Expectation,
        checker: Checker,
        _: &CheckOptions,
    ) -> Result<CheckResult, String> {
        Err(not_built(checker))
    }

    /// Replays a thread checker's counterexample: not built.
    #[cfg(not(feature = "threads"))]
    pub fn replay_threads(
        _: &Scenario,
        _: Algorithm,
        _: &ReplayFile,
        replay: &ThreadReplay,
    ) -> Result<(String, bool), String> {
        Err(not_built(match replay {
            ThreadReplay::Loom { .. } => Checker::Loom,
            ThreadReplay::Shuttle { .. } => Checker::Shuttle,
        }))
    }

    /// Runs one (scenario, algorithm) under proptest: not built.
    #[cfg(not(feature = "proptest"))]
    pub fn check_proptest(
        _: &Scenario,
        _: Algorithm,
        _: Expectation,
        _: &CheckOptions,
    ) -> Result<CheckResult, String> {
        Err(not_built(Checker::Proptest))
    }
}
