//! Running scenarios: each (scenario, algorithm) pair is explored, its
//! verdict compared with the expectation, and any counterexample written
//! next to a replay file. Output formats for people and for CI.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkers::{Budgets, Checker};
use crate::coverage::Coverage;
use crate::explore::{explore, Counterexample, Options, Shard, Stats, Verdict};
use crate::invariants::excuses::excused_by;
use crate::invariants::Invariant;
use crate::progress::Progress;
use crate::reached::Reached;
use crate::report::{mermaid, render_timeline, timeline};
use crate::scenario::{Expectation, Scenario};
use crate::symmetry::Symmetry;
use crate::world::Action;
use crate::zoo::Algorithm;

pub use crate::found::{verdict_text, Found};

/// One (scenario, algorithm) result.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub path: String,
    /// Algorithm name.
    pub algorithm: String,
    /// The checker that ran it.
    pub checker: String,
    /// What the scenario expects.
    pub expected: String,
    /// What was found.
    pub found: Found,
    /// How much of the space was searched: what an absence of violations
    /// is worth.
    pub coverage: Coverage,
    /// The verdict as shown ([`verdict_text`]).
    pub verdict: String,
    /// What the world's fault budget excuses, per invariant checked (from
    /// the one table, [`crate::invariants::excuses::EXCUSES`]).
    pub excused: Vec<String>,
    /// Whether they agree.
    pub ok: bool,
    /// A violation was expected and the search did not meet it: with `ok`,
    /// a sampled search (no failure, but nothing confirmed either).
    pub unconfirmed: bool,
    /// Distinct states explored (the explorer), or executions run (the
    /// other checkers).
    pub states: usize,
    /// Transitions taken.
    pub transitions: u64,
    /// Deepest level reached.
    pub depth: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Bytes the explorer held for the states behind its frontier (see
    /// [`Stats::stored_bytes`]); 0 for the other checkers.
    #[serde(default)]
    pub stored_bytes: usize,
    /// States in the explorer's widest level (its frontier's worlds are
    /// the ones held in full); 0 for the other checkers.
    #[serde(default)]
    pub widest_level: usize,
    /// The shard this result covers (`i/n`, 1-based), if the explorer ran
    /// one of several: `baton merge` joins them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// The replay file of the counterexample, if one was found.
    pub replay: Option<String>,
    /// The diagram of the counterexample (Mermaid text), if one was found.
    pub diagram: Option<String>,
    /// The counterexample drawn: a self-contained SVG sequence diagram, if
    /// one was found by a checker of the world model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drawing: Option<String>,
    /// The counterexample's timeline, as text.
    #[serde(skip)]
    pub timeline: Option<String>,
    /// What the explorer's runs reached, if recorded (reported across all
    /// results, not per result).
    #[serde(skip)]
    pub reached: Option<Reached>,
}

/// A recorded run that breaks an invariant, replayable with `baton replay`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplayFile {
    /// The scenario file it was found in.
    pub scenario: PathBuf,
    /// The scenario's name: which cell, in a matrix file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The algorithm it ran.
    pub algorithm: String,
    /// The invariant it breaks.
    pub invariant: String,
    /// Why, as found.
    pub reason: String,
    /// The steps from the initial world (the explorer and proptest).
    #[serde(default)]
    pub actions: Vec<Action>,
    /// How loom or shuttle replays it, when one of them found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<crate::checkers::ThreadReplay>,
    /// The invariants the run was checked against (empty: the scenario's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checked: Vec<String>,
}

impl ReplayFile {
    /// Loads the scenario the run was found in (the named cell of a matrix).
    pub fn find_scenario(&self) -> Result<Scenario, String> {
        let all = crate::scenario::load_file(&self.scenario).map_err(|e| e.to_string())?;
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        let found = match &self.name {
            Some(name) => all.iter().find(|s| &s.name == name),
            None if all.len() == 1 => all.first(),
            None => None,
        };
        found.cloned().ok_or_else(|| {
            format!(
                "{}: no scenario {} (it has: {})",
                self.scenario.display(),
                self.name.as_deref().unwrap_or("(unnamed)"),
                names.join(", ")
            )
        })
    }
}

/// The invariants a replay file was checked against.
pub fn checked_invariants(
    scenario: &Scenario,
    file: &ReplayFile,
) -> Result<Vec<crate::invariants::Invariant>, String> {
    if file.checked.is_empty() {
        return Ok(scenario.invariants.clone());
    }
    file.checked.iter().map(|name| name.parse()).collect()
}

/// How to run checks.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Only these algorithms (all the scenario names if empty).
    pub algorithms: Vec<Algorithm>,
    /// Explore one shard.
    pub shard: Option<Shard>,
    /// Override the scenarios' state budgets.
    pub max_states: Option<usize>,
    /// Where counterexamples go.
    pub out_dir: PathBuf,
    /// Show a progress bar on long explorations.
    pub progress: bool,
    /// The checkers to run.
    pub checkers: Vec<Checker>,
    /// Their budgets.
    pub budgets: Budgets,
    /// Partial-order reduction in the explorer (on unless measuring it).
    pub reduce: bool,
    /// Record what the explorer's runs reached (`--coverage`).
    pub record_reached: bool,
    /// Symmetry reduction over replicas (on unless measuring it).
    pub symmetry: bool,
}

impl CheckOptions {
    /// The explorer alone, with the scenarios' budgets.
    pub fn explore(out_dir: PathBuf) -> Self {
        CheckOptions {
            algorithms: Vec::new(),
            shard: None,
            max_states: None,
            out_dir,
            progress: false,
            checkers: vec![Checker::Explore],
            budgets: Budgets::default(),
            reduce: true,
            record_reached: false,
            symmetry: true,
        }
    }
}

/// Runs one scenario for one algorithm under one checker.
pub fn check_with(
    scenario: &Scenario,
    algorithm: Algorithm,
    expected: Expectation,
    checker: Checker,
    options: &CheckOptions,
) -> Result<CheckResult, String> {
    match checker {
        Checker::Explore => check_one(scenario, algorithm, expected, options),
        Checker::Loom | Checker::Shuttle => {
            crate::checkers::check_threads(scenario, algorithm, expected, checker, options)
        }
        Checker::Proptest => {
            crate::checkers::check_proptest(scenario, algorithm, expected, options)
        }
    }
}

/// Explores one scenario for one algorithm.
pub fn check_one(
    scenario: &Scenario,
    algorithm: Algorithm,
    expected: Expectation,
    options: &CheckOptions,
) -> Result<CheckResult, String> {
    let spec = scenario.spec_for(algorithm);
    let explore_options = Options {
        max_states: options.max_states.unwrap_or(scenario.max_states),
        shard: options.shard,
        invariants: scenario.invariants.clone(),
        reduce: options.reduce,
        record_reached: options.record_reached,
        symmetry: if options.symmetry {
            Symmetry::Replicas
        } else {
            Symmetry::Off
        },
    };
    let label = format!("{} × {algorithm}", scenario.name);
    let mut progress = Progress::new(options.progress, label);
    let exploration = explore(&spec, &explore_options, &mut |stats: &Stats| {
        progress.update(stats)
    })
    .map_err(|e| format!("{}: {e}", scenario.path.display()))?;
    progress.finish();
    let stats = exploration.stats;
    let coverage = explorer_coverage(&exploration.verdict, &explore_options, stats.states);
    let (found, counterexample) = match exploration.verdict {
        Verdict::Holds => (Found::Holds, None),
        Verdict::BudgetExhausted => (Found::BudgetExhausted, None),
        Verdict::Violated(cx) => (
            Found::Violates {
                invariant: cx.invariant.name().into(),
                reason: cx.reason.clone(),
            },
            Some(cx),
        ),
    };
    let ok = match (expected, &found) {
        (Expectation::Holds, Found::Holds) => true,
        (Expectation::Violates(i), Found::Violates { invariant, .. }) => i.name() == invariant,
        _ => false,
    };
    let mut result = CheckResult {
        scenario: scenario.name.clone(),
        path: scenario.path.display().to_string(),
        algorithm: algorithm.to_string(),
        checker: Checker::Explore.name().into(),
        expected: expected.to_string(),
        verdict: verdict_text(expected, &found, &coverage, stats.states),
        excused: excused_by(&spec.faults, &scenario.invariants),
        unconfirmed: crate::checkers::unconfirmed(expected, &found),
        found,
        coverage,
        ok,
        states: stats.states,
        transitions: stats.transitions,
        depth: stats.max_depth,
        seconds: stats.elapsed.as_secs_f64(),
        stored_bytes: stats.stored_bytes,
        widest_level: stats.widest_level,
        shard: options
            .shard
            .filter(|s| s.count > 1)
            .map(|s| format!("{}/{}", s.index + 1, s.count)),
        replay: None,
        diagram: None,
        drawing: None,
        timeline: None,
        reached: exploration.reached,
    };
    if let Some(cx) = counterexample {
        write_counterexample(
            scenario,
            algorithm,
            "",
            &cx,
            &scenario.invariants,
            options,
            &mut result,
        )?;
    }
    Ok(result)
}

/// What an exploration covered: every reachable state of the world (a
/// proof, for the world model and its fault budget), or only the states
/// within the budget, or only one shard's.
fn explorer_coverage(verdict: &Verdict, options: &Options, states: usize) -> Coverage {
    if let Verdict::BudgetExhausted = verdict {
        return Coverage::Bounded(format!(
            "explorer state budget {} reached",
            options.max_states
        ));
    }
    if let Some(shard) = options.shard.filter(|s| s.count > 1) {
        // A shard sees part of the graph: it cannot tell a loop.
        let livelock = if options.invariants.contains(&Invariant::NoLivelock) {
            "; no_livelock not judged"
        } else {
            ""
        };
        return Coverage::Bounded(format!(
            "explorer shard {}/{} only ({states} states{livelock})",
            shard.index + 1,
            shard.count
        ));
    }
    match verdict {
        Verdict::Violated(_) => Coverage::Proof(format!(
            "explorer, breadth-first: a shortest run ({states} states)"
        )),
        _ => Coverage::Proof(format!("explorer, every reachable state ({states})")),
    }
}

/// Writes a world-model counterexample (the explorer's or proptest's): its
/// replay file, its diagram, and its timeline into `result`. `tag` tells
/// the files of different checkers apart.
pub fn write_counterexample(
    scenario: &Scenario,
    algorithm: Algorithm,
    tag: &str,
    cx: &Counterexample,
    invariants: &[crate::invariants::Invariant],
    options: &CheckOptions,
    result: &mut CheckResult,
) -> Result<(), String> {
    let spec = scenario.spec_for(algorithm);
    let (steps, _) = timeline(&spec, &cx.actions)?;
    let stem = if tag.is_empty() {
        format!("{}.{algorithm}", scenario.name)
    } else {
        format!("{}.{algorithm}.{tag}", scenario.name)
    };
    let replay = ReplayFile {
        scenario: scenario.path.clone(),
        name: Some(scenario.name.clone()),
        algorithm: algorithm.to_string(),
        invariant: cx.invariant.name().into(),
        reason: cx.reason.clone(),
        actions: cx.actions.clone(),
        threads: None,
        checked: if invariants == scenario.invariants.as_slice() {
            Vec::new()
        } else {
            invariants.iter().map(|i| i.name().to_string()).collect()
        },
    };
    let title = format!("{} × {algorithm}: {} breaks", scenario.name, cx.invariant);
    let caption = crate::draw::Caption {
        title: &title,
        reason: &cx.reason,
        invariant: cx.invariant.name(),
    };
    let files = CounterexampleFiles {
        replay,
        diagram: mermaid(&steps, &title),
        drawing: crate::draw::svg(&steps, &caption),
        timeline: render_timeline(&steps),
    };
    files.write(options, &stem, result)
}

/// What a counterexample leaves behind, whichever checker found it: the
/// replay file, the Mermaid diagram, the drawing and the printed timeline.
pub(crate) struct CounterexampleFiles {
    pub(crate) replay: ReplayFile,
    pub(crate) diagram: String,
    pub(crate) drawing: String,
    pub(crate) timeline: String,
}

impl CounterexampleFiles {
    /// Writes `<stem>.replay.json`, `<stem>.mmd` and `<stem>.svg` under the
    /// output directory and records where in `result`.
    pub(crate) fn write(
        self,
        options: &CheckOptions,
        stem: &str,
        result: &mut CheckResult,
    ) -> Result<(), String> {
        std::fs::create_dir_all(&options.out_dir)
            .map_err(|e| format!("cannot create {}: {e}", options.out_dir.display()))?;
        let path = |ext: &str| options.out_dir.join(format!("{stem}.{ext}"));
        let write = |path: &Path, text: &str| {
            std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        let (replay, diagram, drawing) = (path("replay.json"), path("mmd"), path("svg"));
        let json = serde_json::to_string_pretty(&self.replay).map_err(|e| e.to_string())?;
        write(&replay, &json)?;
        write(&diagram, &self.diagram)?;
        write(&drawing, &self.drawing)?;
        result.replay = Some(replay.display().to_string());
        result.diagram = Some(diagram.display().to_string());
        result.drawing = Some(drawing.display().to_string());
        result.timeline = Some(self.timeline);
        Ok(())
    }
}

/// Replays a recorded counterexample; returns the text to print and whether
/// it reproduced the same violation.
pub fn replay(path: &Path) -> Result<(String, bool), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: ReplayFile = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a replay file: {e}", path.display()))?;
    let scenario = file.find_scenario()?;
    let algorithm: Algorithm = file.algorithm.parse()?;
    if let Some(threads) = &file.threads {
        return crate::checkers::replay_threads(&scenario, algorithm, &file, threads);
    }
    let spec = scenario.spec_for(algorithm);
    let (steps, world) = timeline(&spec, &file.actions)?;
    let mut out = format!(
        "replaying {} × {algorithm} ({} steps)\n\n{}",
        scenario.name,
        steps.len(),
        render_timeline(&steps)
    );
    let invariants = checked_invariants(&scenario, &file)?;
    out.push('\n');
    let mut found = crate::explore::check(&world, &spec, &invariants);
    if found.is_none() && invariants.contains(&Invariant::NoLivelock) {
        found = crate::livelock::judge_run(&spec, &file.actions)
            .map(|reason| (Invariant::NoLivelock, reason));
    }
    Ok(verdict_of_replay(out, found, &file))
}

/// Ends a replay's text with what broke and whether that is what the file
/// recorded; returns the text and whether it reproduced.
pub fn verdict_of_replay(
    mut out: String,
    found: Option<(crate::invariants::Invariant, String)>,
    file: &ReplayFile,
) -> (String, bool) {
    let reproduced = match &found {
        Some((invariant, reason)) => {
            out.push_str(&format!("{invariant} breaks: {reason}\n"));
            invariant.name() == file.invariant && *reason == file.reason
        }
        None => {
            out.push_str("no invariant breaks in this run\n");
            false
        }
    };
    if reproduced {
        out.push_str("reproduced: same invariant, same reason\n");
    } else {
        out.push_str(&format!(
            "NOT reproduced: the recorded run broke {} ({})\n",
            file.invariant, file.reason
        ));
    }
    (out, reproduced)
}

/// The results as a table for people.
pub fn human_table(results: &[CheckResult]) -> String {
    let mut out = format!(
        "{:<34} {:<21} {:<9} {:<30} {:<36} {:>12} {:>9}   {}\n",
        "scenario", "algorithm", "checker", "expected", "found", "states/runs", "time", "coverage"
    );
    for r in results {
        let mark = match (r.ok, r.unconfirmed) {
            (false, _) => "✗",
            (true, true) => "?",
            (true, false) => " ",
        };
        out.push_str(&format!(
            "{:<34} {:<21} {:<9} {:<30} {:<36} {:>12} {:>8.2}s {mark} {}\n",
            r.scenario,
            r.algorithm,
            r.checker,
            r.expected,
            r.verdict,
            r.states,
            r.seconds,
            r.coverage
        ));
    }
    let inconclusive: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.found {
            Found::Inconclusive { reason } => Some(format!(
                "  {} × {} under {}: {reason}\n",
                r.scenario, r.algorithm, r.checker
            )),
            _ => None,
        })
        .collect();
    if !inconclusive.is_empty() {
        out.push_str("\ninconclusive:\n");
        out.extend(inconclusive);
    }
    let unconfirmed: Vec<String> = results
        .iter()
        .filter(|r| r.ok && r.unconfirmed)
        .map(|r| {
            format!(
                "  {} × {} under {}: expected {}, {}\n",
                r.scenario, r.algorithm, r.checker, r.expected, r.verdict
            )
        })
        .collect();
    if !unconfirmed.is_empty() {
        out.push_str(
            "\nunconfirmed (?): a sampled search did not meet the expected violation; not a failure, since a sample proves nothing either way:\n",
        );
        out.extend(unconfirmed);
    }
    let skipped: Vec<&CheckResult> = results
        .iter()
        .filter(|r| matches!(r.found, Found::NotApplicable { .. }))
        .collect();
    if !skipped.is_empty() {
        out.push_str("\nnot applicable:\n");
        let mut seen = std::collections::BTreeSet::new();
        for r in skipped {
            if let Found::NotApplicable { reason } = &r.found {
                if seen.insert((r.scenario.clone(), r.checker.clone())) {
                    out.push_str(&format!("  {} under {}: {reason}\n", r.scenario, r.checker));
                }
            }
        }
    }
    out
}

/// The results as JUnit XML (one test case per scenario × algorithm).
pub fn junit(results: &[CheckResult]) -> String {
    let failures = results.iter().filter(|r| !r.ok).count();
    let total: f64 = results.iter().map(|r| r.seconds).sum();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"baton check\" tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">\n",
        results.len()
    );
    for r in results {
        out.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{} ({})\" time=\"{:.3}\">\n",
            xml(&r.scenario),
            xml(&r.algorithm),
            xml(&r.checker),
            r.seconds
        ));
        // The coverage as properties, so a CI dashboard can tell a proof
        // from a bounded or sampled search that found nothing.
        out.push_str(&format!(
            "      <properties>\n        <property name=\"coverage\" value=\"{}\"/>\n        <property name=\"coverage_detail\" value=\"{}\"/>\n        <property name=\"verdict\" value=\"{}\"/>\n      </properties>\n",
            r.coverage.kind(),
            xml(r.coverage.detail()),
            xml(&r.verdict)
        ));
        if let Found::NotApplicable { reason } = &r.found {
            out.push_str(&format!("      <skipped message=\"{}\"/>\n", xml(reason)));
        } else if r.ok && r.unconfirmed {
            out.push_str(&format!(
                "      <skipped message=\"unconfirmed: expected {}, {}\"/>\n",
                xml(&r.expected),
                xml(&r.verdict)
            ));
        }
        if !r.ok {
            let detail = match &r.found {
                Found::Violates { reason, .. } | Found::Inconclusive { reason } => reason.clone(),
                _ => String::new(),
            };
            out.push_str(&format!(
                "      <failure message=\"expected {}, found {}\">{}{}</failure>\n",
                xml(&r.expected),
                xml(&r.verdict),
                xml(&detail),
                r.replay
                    .as_ref()
                    .map(|p| xml(&format!("\nreplay: baton replay {p}")))
                    .unwrap_or_default()
            ));
        }
        out.push_str(&format!(
            "      <system-out>verdict={} coverage={} states={} transitions={} depth={}</system-out>\n    </testcase>\n",
            xml(&r.verdict),
            xml(&r.coverage.to_string()),
            r.states,
            r.transitions,
            r.depth
        ));
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
