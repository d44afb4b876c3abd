//! `baton bench --checkers`: the checkers side by side, in one run. For
//! each zoo failure of the thread-checkable scenarios, the executions (for
//! the explorer: states) and wall time each checker needs to its first
//! counterexample; then, for baton on the two-replica single-use scenario,
//! the time each needs to finish its whole budget.

use std::time::Instant;

use crate::checkers::{
    default_loom_bound, loom_options, shuttle_modes, target_invariants, Budgets,
};
use crate::concurrent::loom_checker;
use crate::concurrent::shuttle_checker::{self, ShuttleMode};
use crate::explore::{explore, Options, Verdict};
use crate::randomized::{self, PropOptions};
use crate::scenario::{Expectation, Scenario};
use crate::zoo::Algorithm;

/// One checker's effort on one problem.
#[derive(Clone, Debug)]
pub struct Effort {
    /// Executions (states, for the explorer).
    pub runs: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Whether it found the failure (or, for a full budget, proved or
    /// finished).
    pub found: bool,
}

/// The checkers compared, in column order.
pub const COLUMNS: [&str; 5] = [
    "explore",
    "loom",
    "shuttle-pct",
    "shuttle-random",
    "proptest",
];

/// Runs every checker on `scenario` × `algorithm` and reports its effort.
pub fn efforts(
    scenario: &Scenario,
    algorithm: Algorithm,
    expected: Expectation,
    budgets: &Budgets,
) -> Vec<Option<Effort>> {
    let spec = scenario.spec_for(algorithm);
    let invariants = target_invariants(scenario, expected);
    let wants_violation = matches!(expected, Expectation::Violates(_));
    let mut out = Vec::new();

    let started = Instant::now();
    let options = Options {
        max_states: scenario.max_states,
        shard: None,
        invariants: invariants.clone(),
        reduce: true,
        record_reached: false,
        ..Options::default()
    };
    out.push(explore(&spec, &options, &mut |_| {}).ok().map(|e| Effort {
        runs: e.stats.states as u64,
        seconds: started.elapsed().as_secs_f64(),
        found: matches!(e.verdict, Verdict::Violated(_)) == wants_violation,
    }));

    out.push(loom_checker::plan(&spec).ok().map(|plan| {
        let started = Instant::now();
        let report =
            loom_checker::check(&plan, &invariants, loom_options(default_loom_bound(&plan)));
        Effort {
            runs: report.executions,
            seconds: started.elapsed().as_secs_f64(),
            found: report.violation.is_some() == wants_violation,
        }
    }));

    // PCT (both depths, in turn, until one finds it), then random.
    let modes = shuttle_modes(budgets);
    let (pct, random): (Vec<_>, Vec<_>) = modes
        .into_iter()
        .filter(|m| !matches!(m, ShuttleMode::Dfs { .. }))
        .partition(|m| matches!(m, ShuttleMode::Pct { .. }));
    for group in [pct, random] {
        out.push(shuttle_checker::plan(&spec).ok().map(|plan| {
            let started = Instant::now();
            let mut runs = 0;
            let mut violated = false;
            for mode in &group {
                let report = shuttle_checker::check(&plan, &invariants, mode);
                runs += report.executions;
                violated = report.violation.is_some();
                if violated {
                    break;
                }
            }
            Effort {
                runs,
                seconds: started.elapsed().as_secs_f64(),
                found: violated == wants_violation,
            }
        }));
    }

    let started = Instant::now();
    let prop = PropOptions {
        cases: budgets.proptest_cases,
        seed: budgets.seed,
        ..PropOptions::default()
    };
    out.push(
        randomized::search(&spec, &invariants, &prop, None)
            .ok()
            .map(|report| Effort {
                runs: report.executions,
                seconds: started.elapsed().as_secs_f64(),
                found: report.failure.is_some() == wants_violation,
            }),
    );
    out
}

/// One cell of the table.
pub fn cell(effort: &Option<Effort>) -> String {
    match effort {
        None => "n/a".into(),
        Some(e) if !e.found => format!("MISSED ({} runs, {:.2}s)", e.runs, e.seconds),
        Some(e) => format!("{} / {:.3}s", e.runs, e.seconds),
    }
}

/// The ratio of the best other checker to the explorer, in runs and time
/// (only over checkers that found it).
pub fn ratios(efforts: &[Option<Effort>]) -> Option<(f64, f64)> {
    let explore = efforts.first()?.as_ref().filter(|e| e.found)?;
    let others: Vec<&Effort> = efforts[1..].iter().flatten().filter(|e| e.found).collect();
    let best_runs = others.iter().map(|e| e.runs).min()? as f64;
    let best_time = others
        .iter()
        .map(|e| e.seconds)
        .fold(f64::INFINITY, f64::min);
    Some((
        best_runs / (explore.runs.max(1) as f64),
        best_time / explore.seconds.max(1e-6),
    ))
}
