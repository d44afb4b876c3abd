//! The four checkers behind `baton check --checker`: the explorer, loom,
//! shuttle and proptest. Each turns one (scenario, algorithm) into the same
//! [`CheckResult`] — the same verdict table, the same counterexample files,
//! the same replay command — whichever found it.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::concurrent::loom_checker::{self, LoomOptions};
use crate::concurrent::shuttle_checker::{self, ShuttleMode};
use crate::concurrent::{ThreadPlan, ThreadViolation};
use crate::coverage::Coverage;
use crate::invariants::Invariant;
use crate::randomized::{self, PropOptions};
use crate::run::{CheckOptions, CheckResult, Found, ReplayFile};
use crate::scenario::{Expectation, Scenario};
use crate::zoo::Algorithm;

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

/// loom's default preemption bound: 2, the depth at which every zoo
/// failure of the thread-checkable scenarios is found (most concurrency
/// bugs need at most two preemptions), at most a minute per scenario.
pub fn default_loom_bound(_plan: &ThreadPlan) -> usize {
    2
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
fn result(
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
    let budgets = &options.budgets;
    let invariants = target_invariants(scenario, expected);
    let mut inconclusive = None;
    let (executions, violation, replay, coverage) = match checker {
        Checker::Loom => {
            // An unparsable cap would make loom's own `Builder::new` panic.
            loom_checker::EnvCaps::from_env()?;
            let bound = budgets
                .loom_preemption_bound
                .unwrap_or_else(|| default_loom_bound(&plan));
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
    std::fs::create_dir_all(&options.out_dir)
        .map_err(|e| format!("cannot create {}: {e}", options.out_dir.display()))?;
    let stem = format!("{}.{algorithm}.{checker}", scenario.name);
    let replay_path = options.out_dir.join(format!("{stem}.replay.json"));
    let diagram_path = options.out_dir.join(format!("{stem}.mmd"));
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
    write_json(&replay_path, &file)?;
    let title = format!(
        "{} × {algorithm} under {checker}: {} breaks",
        scenario.name, violation.invariant
    );
    std::fs::write(&diagram_path, thread_mermaid(&violation.log, &title))
        .map_err(|e| format!("cannot write {}: {e}", diagram_path.display()))?;
    out.replay = Some(replay_path.display().to_string());
    out.diagram = Some(diagram_path.display().to_string());
    out.timeline = Some(render_log(&violation.log));
    Ok(())
}

fn write_json(path: &Path, file: &ReplayFile) -> Result<(), String> {
    let json = serde_json::to_string_pretty(file).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))
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
