//! proptest behind `--checker proptest`: random schedules of the world
//! model, shrunk, written as replay files like the explorer's (feature
//! `proptest`).

use std::time::Instant;

use crate::coverage::Coverage;
use crate::randomized::{self, PropOptions};
use crate::run::{CheckOptions, CheckResult, Found};
use crate::scenario::{Expectation, Scenario};
use crate::zoo::Algorithm;

use super::{result, target_invariants, Checker};

/// Runs one (scenario, algorithm) under proptest.
pub fn check_proptest(
    scenario: &Scenario,
    algorithm: Algorithm,
    expected: Expectation,
    options: &CheckOptions,
) -> Result<CheckResult, String> {
    let started = Instant::now();
    let spec = scenario.spec_for(algorithm);
    let prop = PropOptions {
        cases: options.budgets.proptest_cases,
        seed: options.budgets.seed,
        ..PropOptions::default()
    };
    let invariants = target_invariants(scenario, expected);
    let report = randomized::search(&spec, &invariants, &prop, None)
        .map_err(|e| format!("{}: {e}", scenario.path.display()))?;
    let found = match &report.failure {
        None => Found::Holds,
        Some(f) => Found::Violates {
            invariant: f.invariant.name().into(),
            reason: f.reason.clone(),
        },
    };
    let coverage = Coverage::Sampled(format!(
        "proptest: {} cases, seed {}",
        prop.cases, prop.seed
    ));
    let mut out = result(
        scenario,
        algorithm,
        expected,
        Checker::Proptest,
        found,
        coverage,
        report.executions,
        started,
    );
    if let Some(failure) = report.failure {
        let cx = crate::explore::Counterexample {
            invariant: failure.invariant,
            reason: failure.reason,
            actions: failure.actions,
        };
        crate::run::write_counterexample(
            scenario,
            algorithm,
            "proptest",
            &cx,
            &invariants,
            options,
            &mut out,
        )?;
    }
    Ok(out)
}
