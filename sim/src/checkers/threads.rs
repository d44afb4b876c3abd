//! loom and shuttle behind `--checker loom|shuttle`: one (scenario,
//! algorithm) as threads over the real coordinator, its verdict, and a
//! counterexample that replays (feature `threads`).

use std::time::Instant;

use crate::concurrent::loom_checker::{self, LoomOptions};
use crate::concurrent::shuttle_checker::{self, ShuttleMode};
use crate::concurrent::{ThreadPlan, ThreadViolation};
use crate::coverage::Coverage;
use crate::invariants::Invariant;
use crate::run::{CheckOptions, CheckResult, CounterexampleFiles, Found, ReplayFile};
use crate::scenario::{Expectation, Scenario};
use crate::zoo::Algorithm;

use super::Budgets;
use super::{render_log, result, target_invariants, thread_mermaid, Checker, ThreadReplay};

/// loom's default preemption bound: 2, the depth at which every zoo
/// failure of the thread-checkable scenarios is found (most concurrency
/// bugs need at most two preemptions), at most a minute per scenario.
pub fn default_loom_bound(_plan: &ThreadPlan) -> usize {
    2
}

/// Runs one (scenario, algorithm) under loom or shuttle.
pub fn check_threads(
    scenario: &Scenario,
    algorithm: Algorithm,
    expected: Expectation,
    checker: Checker,
    options: &CheckOptions,
) -> Result<CheckResult, String> {
    let started = Instant::now();
    let spec = scenario.spec_for(algorithm);
    let plan = match checker {
        Checker::Loom => loom_checker::plan(&spec),
        _ => shuttle_checker::plan(&spec),
    };
    let beyond = match expected {
        Expectation::Violates(invariant) => invariant.beyond_thread_checkers(),
        Expectation::Holds => None,
    };
    let plan = match (beyond, plan) {
        (Some(reason), _) => Err(reason.to_owned()),
        (None, plan) => plan,
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(reason) => {
            let found = Found::NotApplicable { reason };
            return Ok(result(
                scenario,
                algorithm,
                expected,
                checker,
                found,
                Coverage::None,
                0,
                started,
            ));
        }
    };
    let budgets = &raised(&options.budgets, scenario, algorithm, &plan);
    let invariants = target_invariants(scenario, expected);
    let mut inconclusive = None;
    let (executions, violation, replay, coverage) = match checker {
        Checker::Loom => {
            // An unparsable cap would make loom's own `Builder::new` panic.
            loom_checker::EnvCaps::from_env()?;
            let bound = budgets
                .loom_preemption_bound
                .expect("raised sets the bound");
            let report = loom_checker::check(&plan, &invariants, loom_options(bound));
            let replay = ThreadReplay::Loom {
                preemption_bound: bound,
            };
            inconclusive = report.inconclusive;
            (report.executions, report.violation, replay, report.coverage)
        }
        _ => {
            let mut executions = 0;
            let mut found = None;
            // The modes search one space: together they cover what the
            // most exhaustive of them covered; the detail lists them all.
            let mut coverage = Coverage::None;
            let mut details = Vec::new();
            for mode in shuttle_modes(budgets) {
                let report = shuttle_checker::check(&plan, &invariants, &mode);
                executions += report.executions;
                details.push(report.coverage.detail().to_string());
                coverage = coverage.strongest(report.coverage);
                if let Some(violation) = report.violation {
                    let replay = ThreadReplay::Shuttle {
                        schedule: report.schedule.unwrap_or_default(),
                    };
                    found = Some((violation, replay));
                    break;
                }
            }
            let coverage = match coverage {
                Coverage::Proof(_) => Coverage::Proof(details.join("; ")),
                Coverage::Bounded(_) => Coverage::Bounded(details.join("; ")),
                _ => Coverage::Sampled(details.join("; ")),
            };
            match found {
                Some((violation, replay)) => (executions, Some(violation), replay, coverage),
                None => (
                    executions,
                    None,
                    ThreadReplay::Shuttle {
                        schedule: String::new(),
                    },
                    coverage,
                ),
            }
        }
    };
    let found = match (&violation, inconclusive) {
        (Some(v), _) => Found::Violates {
            invariant: v.invariant.name().into(),
            reason: v.reason.clone(),
        },
        (None, Some(reason)) => Found::Inconclusive { reason },
        (None, None) => Found::Holds,
    };
    let mut out = result(
        scenario, algorithm, expected, checker, found, coverage, executions, started,
    );
    if let Some(violation) = violation {
        let finding = ThreadFinding {
            checker,
            violation,
            replay,
            invariants,
        };
        write_thread_counterexample(scenario, algorithm, &finding, options, &mut out)?;
    }
    Ok(out)
}

/// The run's budgets, raised to what the scenario states `algorithm`'s
/// expected verdict needs (a deep race takes more schedules than most).
fn raised(
    budgets: &Budgets,
    scenario: &Scenario,
    algorithm: Algorithm,
    plan: &ThreadPlan,
) -> Budgets {
    let loom = budgets
        .loom_preemption_bound
        .unwrap_or_else(|| default_loom_bound(plan));
    let (shuttle_iterations, loom) = scenario
        .thread_budget(algorithm)
        .raise(budgets.shuttle_iterations, loom);
    Budgets {
        shuttle_iterations,
        loom_preemption_bound: Some(loom),
        ..budgets.clone()
    }
}

/// loom's options for a preemption bound, with the caps the environment
/// sets (`LOOM_MAX_PERMUTATIONS`, `LOOM_MAX_DURATION`), which make the
/// verdict bounded by them.
pub fn loom_options(bound: usize) -> LoomOptions {
    LoomOptions {
        preemption_bound: Some(bound),
        ..LoomOptions::default()
    }
}

/// The shuttle modes `--checker shuttle` runs, in order.
/// PCT runs twice: at depth 3, where most races live, and at depth 6 for
/// bugs that need more ordering constraints at once (singleflight's stale
/// read needs depth 4 or more).
pub fn shuttle_modes(budgets: &Budgets) -> Vec<ShuttleMode> {
    vec![
        ShuttleMode::Pct {
            iterations: budgets.shuttle_iterations,
            depth: 3,
            seed: budgets.seed,
        },
        ShuttleMode::Pct {
            iterations: budgets.shuttle_iterations,
            depth: 6,
            seed: budgets.seed,
        },
        ShuttleMode::Random {
            iterations: budgets.shuttle_iterations,
            seed: budgets.seed,
        },
        ShuttleMode::Dfs {
            max_iterations: Some(budgets.shuttle_iterations),
        },
    ]
}

/// A violation a thread checker found, with what replays it.
struct ThreadFinding {
    checker: Checker,
    violation: ThreadViolation,
    replay: ThreadReplay,
    invariants: Vec<Invariant>,
}

fn write_thread_counterexample(
    scenario: &Scenario,
    algorithm: Algorithm,
    finding: &ThreadFinding,
    options: &CheckOptions,
    out: &mut CheckResult,
) -> Result<(), String> {
    let ThreadFinding {
        checker,
        violation,
        replay,
        invariants,
    } = finding;
    let stem = format!("{}.{algorithm}.{checker}", scenario.name);
    let file = ReplayFile {
        scenario: scenario.path.clone(),
        name: Some(scenario.name.clone()),
        algorithm: algorithm.to_string(),
        invariant: violation.invariant.name().into(),
        reason: violation.reason.clone(),
        actions: Vec::new(),
        threads: Some(replay.clone()),
        checked: invariants.iter().map(|i| i.name().to_string()).collect(),
    };
    let title = format!(
        "{} × {algorithm} under {checker}: {} breaks",
        scenario.name, violation.invariant
    );
    let caption = crate::draw::Caption {
        title: &title,
        reason: &violation.reason,
        invariant: violation.invariant.name(),
    };
    let files = CounterexampleFiles {
        replay: file,
        diagram: thread_mermaid(&violation.log, &title),
        drawing: crate::draw::draw(&crate::draw::thread_bands(&violation.log), &caption),
        timeline: render_log(&violation.log),
    };
    files.write(options, &stem, out)
}

/// Replays a thread checker's counterexample; returns the text and whether
/// the same invariant broke for the same reason.
pub fn replay_threads(
    scenario: &Scenario,
    algorithm: Algorithm,
    file: &ReplayFile,
    replay: &ThreadReplay,
) -> Result<(String, bool), String> {
    let spec = scenario.spec_for(algorithm);
    let invariants = crate::run::checked_invariants(scenario, file)?;
    let (violation, how) = match replay {
        ThreadReplay::Loom { preemption_bound } => {
            let plan = loom_checker::plan(&spec)?;
            let report = loom_checker::check(&plan, &invariants, loom_options(*preemption_bound));
            (
                report.violation,
                format!("loom, preemption bound {preemption_bound}"),
            )
        }
        ThreadReplay::Shuttle { schedule } => {
            let plan = shuttle_checker::plan(&spec)?;
            let mode = ShuttleMode::Replay {
                schedule: schedule.clone(),
            };
            let report = shuttle_checker::check(&plan, &invariants, &mode);
            (report.violation, "shuttle's recorded schedule".to_string())
        }
    };
    let mut out = format!("replaying {} × {algorithm} with {how}\n\n", scenario.name);
    let found = violation.map(|v| {
        out.push_str(&render_log(&v.log));
        out.push('\n');
        (v.invariant, v.reason)
    });
    Ok(crate::run::verdict_of_replay(out, found, file))
}
