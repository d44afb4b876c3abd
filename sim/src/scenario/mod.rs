//! Scenario files: a TOML description of a world and, per algorithm, the
//! verdict the harness must reach. Unknown keys and bad values are errors
//! naming the file, line and column.
//!
//! ```toml
//! description = "Two replicas race at expiry on a single-use provider."
//!
//! [world]
//! replicas = 2
//! callers = 1
//! provider = "single_use"
//!
//! [faults]
//! clock_jumps = 1
//!
//! [expect]
//! baton = "holds"
//! naive = { violates = "no_poisoned_failure" }
//! ```
//!
//! A file with a `[matrix]` section is a table of scenarios: see
//! [`matrix`](self#matrices) below and `scenarios/gateway.toml`.
//!
//! # Matrices
//!
//! `[matrix]` crosses `providers`, `worlds` and `faults`; every combination
//! is a scenario named `file[provider,world,faults]`. `[[rule]]` tables
//! (matching on those labels) override `[expect]`, the invariants checked
//! or `unavoidable` for the cells they match, later rules last.
//!
//! # Thread-checker budgets
//!
//! `[check]` may state `shuttle_iterations` and `loom_preemption_bound`:
//! what loom and shuttle need to reach the expected verdicts, where a race
//! lies deeper than a run's default budget reaches. A `[[rule]]` may state
//! them for the cells it matches and the algorithms its `expect` names
//! (every algorithm, if it names none). A run's own budget
//! (`--shuttle-iterations`, `--loom-preemption-bound`) is raised to them,
//! never lowered, and the verdict's coverage names the budget it ran with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_core::{SecondPresentation, ServerErrorAfterSend};
use baton_fakes::ProviderModel;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

mod file;
mod matrix;

use file::{
    parse_via_fromstr, ExpectTable, FaultsSection, ProviderName, ScenarioFile,
    SecondPresentationSetting, ServerErrorSetting, WorldSection,
};

use crate::invariants::Invariant;
use crate::spec::{second_presentation_of, Timing, WorldSpec};
use crate::zoo::Algorithm;

/// What a scenario expects of one algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// Every invariant holds in every reachable state.
    Holds,
    /// The explorer finds a run that breaks this invariant (the first one
    /// it finds, which is on a shortest breaking run).
    Violates(Invariant),
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expectation::Holds => f.write_str("holds"),
            Expectation::Violates(invariant) => write!(f, "violates {invariant}"),
        }
    }
}

impl<'de> Deserialize<'de> for Expectation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExpectationVisitor;
        impl<'de> Visitor<'de> for ExpectationVisitor {
            type Value = Expectation;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""holds" or { violates = "<invariant>" }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Expectation, E> {
                match v {
                    "holds" => Ok(Expectation::Holds),
                    other => Err(E::custom(format!(
                        r#"expected "holds" or {{ violates = "<invariant>" }}, found "{other}""#
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Expectation, A::Error> {
                let mut found = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "violates" || found.is_some() {
                        return Err(de::Error::custom(format!(
                            "unexpected key `{key}` (expected only `violates`)"
                        )));
                    }
                    let name: String = map.next_value()?;
                    found = Some(name.parse::<Invariant>().map_err(de::Error::custom)?);
                }
                found
                    .map(Expectation::Violates)
                    .ok_or_else(|| de::Error::custom("missing key `violates`"))
            }
        }
        deserializer.deserialize_any(ExpectationVisitor)
    }
}

/// A loaded scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file's stem.
    pub name: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// What it is about.
    pub description: String,
    /// Why some failure cannot be avoided by any algorithm, if one cannot.
    pub unavoidable: Option<String>,
    /// The world (its `algorithm` is set per run).
    pub world: WorldSpec,
    /// The state budget.
    pub max_states: usize,
    /// The invariants checked.
    pub invariants: Vec<Invariant>,
    /// Per algorithm, what must be found.
    pub expectations: Vec<(Algorithm, Expectation)>,
    /// Per algorithm, what the thread checkers need to find it, where the
    /// file says (`shuttle_iterations`, `loom_preemption_bound` in `[check]`
    /// or a `[[rule]]`).
    pub thread_budgets: Vec<(Algorithm, ThreadBudget)>,
}

/// What loom and shuttle need to reach one expected verdict, as a scenario
/// states it: a deep race takes more schedules than a run's default. A
/// run's own budget is raised to it, never lowered (see
/// [`ThreadBudget::raise`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadBudget {
    /// Executions per shuttle mode.
    pub shuttle_iterations: Option<usize>,
    /// loom's preemption bound.
    pub loom_preemption_bound: Option<usize>,
}

impl ThreadBudget {
    /// `self` with the keys `later` sets replaced.
    fn then(self, later: ThreadBudget) -> ThreadBudget {
        ThreadBudget {
            shuttle_iterations: later.shuttle_iterations.or(self.shuttle_iterations),
            loom_preemption_bound: later.loom_preemption_bound.or(self.loom_preemption_bound),
        }
    }

    /// A run's `shuttle_iterations` and loom bound, each raised to what
    /// this budget states.
    pub fn raise(&self, shuttle_iterations: usize, loom_bound: usize) -> (usize, usize) {
        (
            shuttle_iterations.max(self.shuttle_iterations.unwrap_or(0)),
            loom_bound.max(self.loom_preemption_bound.unwrap_or(0)),
        )
    }
}

impl Scenario {
    /// What the thread checkers need for `algorithm`'s expected verdict.
    pub fn thread_budget(&self, algorithm: Algorithm) -> ThreadBudget {
        self.thread_budgets
            .iter()
            .find(|(a, _)| *a == algorithm)
            .map(|(_, budget)| *budget)
            .unwrap_or_default()
    }

    /// The (algorithm, expected verdict) pairs to check: every pair the
    /// scenario states if `only` is empty; else, for each algorithm of
    /// `only`, its stated verdict, or — for an algorithm the scenario does
    /// not name — what it expects of baton (the verdict of a race-free
    /// algorithm in this world; nothing, if it names no baton verdict).
    pub fn expectations_for(&self, only: &[Algorithm]) -> Vec<(Algorithm, Expectation)> {
        if only.is_empty() {
            return self.expectations.clone();
        }
        let stated = |algorithm: Algorithm| {
            self.expectations
                .iter()
                .find(|(a, _)| *a == algorithm)
                .map(|(_, expected)| *expected)
        };
        only.iter()
            .filter_map(|&algorithm| {
                let expected = stated(algorithm).or_else(|| stated(Algorithm::BATON))?;
                Some((algorithm, expected))
            })
            .collect()
    }

    /// The world for one algorithm.
    pub fn spec_for(&self, algorithm: Algorithm) -> WorldSpec {
        WorldSpec {
            algorithm,
            ..self.world.clone()
        }
    }
}

/// A scenario that could not be loaded: where, and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub path: String,
    /// What is wrong, with line and column where known.
    pub message: String,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}

/// Reports errors in one file, pointing at line and column where a span is
/// known.
pub(crate) struct Errors<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Errors<'_> {
    fn error(&self, message: String) -> ScenarioError {
        ScenarioError {
            path: self.path.display().to_string(),
            message,
        }
    }

    fn at(&self, span: std::ops::Range<usize>, message: String) -> ScenarioError {
        let (line, col) = line_col(self.text, span.start);
        self.error(format!("line {line}, column {col}: {message}"))
    }
}

/// Parses a scenario from `text`; `path` names it in errors. A matrix file
/// (one with a `[matrix]` section) is refused: use [`parse_all`].
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let mut all = parse_all(path, text)?;
    if all.len() != 1 || text_is_matrix(text) {
        return Err(Errors { path, text }.error(format!(
            "a matrix of {} scenarios, not one (load it with `load_file`)",
            all.len()
        )));
    }
    Ok(all.remove(0))
}

fn text_is_matrix(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "[matrix]")
}

/// Parses a scenario file: one scenario, or every cell of a matrix.
pub fn parse_all(path: &Path, text: &str) -> Result<Vec<Scenario>, ScenarioError> {
    let errors = Errors { path, text };
    let file: ScenarioFile = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => errors.at(span, e.message().to_string()),
        None => errors.error(e.message().to_string()),
    })?;
    let stem = path
        .file_stem()
        .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
    if file.matrix.is_some() {
        return matrix::expand(&errors, &stem, &file);
    }
    if !file.rules.is_empty() {
        return Err(errors.error("`[[rule]]` needs a `[matrix]` to apply to".into()));
    }
    let Some(provider) = file.world.provider else {
        return Err(errors.error("[world] needs a `provider`".into()));
    };
    let expectations = expectations(&errors, &file.expect, [])?;
    let thread_budgets = thread_budgets(file.check.threads(), &expectations, []);
    let cell = Cell {
        name: stem,
        world: file.world.clone(),
        provider,
        faults: file.faults.clone(),
        invariants: file.check.invariants.clone(),
        unavoidable: file.unavoidable.clone(),
        expectations,
        thread_budgets,
    };
    Ok(vec![build(&errors, &file, cell)?])
}

/// What one scenario (a plain file, or one cell of a matrix) is made of.
pub(crate) struct Cell {
    name: String,
    world: WorldSection,
    provider: ProviderName,
    faults: FaultsSection,
    invariants: Option<Vec<Invariant>>,
    unavoidable: Option<String>,
    expectations: Vec<(Algorithm, Expectation)>,
    thread_budgets: Vec<(Algorithm, ThreadBudget)>,
}

/// Per expected algorithm, its thread budget: `[check]`'s, then each rule's
/// in order, for the algorithms the rule's `expect` names (all, if none).
fn thread_budgets<'t>(
    base: ThreadBudget,
    expectations: &[(Algorithm, Expectation)],
    rules: impl IntoIterator<Item = (&'t ExpectTable, ThreadBudget)> + Clone,
) -> Vec<(Algorithm, ThreadBudget)> {
    expectations
        .iter()
        .map(|&(algorithm, _)| {
            let name = algorithm.name();
            let budget = rules
                .clone()
                .into_iter()
                .filter(|(expect, _)| expect.is_empty() || expect.contains_key(&name))
                .fold(base, |budget, (_, rule)| budget.then(rule));
            (algorithm, budget)
        })
        .filter(|(_, budget)| *budget != ThreadBudget::default())
        .collect()
}

/// Reads `[expect]` tables, later ones overriding earlier ones per algorithm.
fn expectations<'t>(
    errors: &Errors<'_>,
    base: &'t toml::Spanned<ExpectTable>,
    overrides: impl IntoIterator<Item = &'t ExpectTable>,
) -> Result<Vec<(Algorithm, Expectation)>, ScenarioError> {
    let mut merged = std::collections::BTreeMap::new();
    for table in std::iter::once(base.get_ref()).chain(overrides) {
        for (name, expectation) in table {
            // The key's own span is not kept by the map; point at the value.
            let algorithm = parse_via_fromstr::<_, Algorithm>(toml::de::ValueDeserializer::new(
                &format!("\"{name}\""),
            ))
            .map_err(|e: toml::de::Error| errors.at(expectation.span(), e.message().to_string()))?;
            merged.insert(name.clone(), (algorithm, *expectation.get_ref()));
        }
    }
    if merged.is_empty() {
        return Err(errors.at(base.span(), "[expect] names no algorithm".into()));
    }
    Ok(merged.into_values().collect())
}

/// Turns one cell into a scenario, checking what serde cannot.
fn build(errors: &Errors<'_>, file: &ScenarioFile, cell: Cell) -> Result<Scenario, ScenarioError> {
    let w = &cell.world;
    let error = |message: String| errors.error(format!("{}: {message}", cell.name));
    let window = || {
        w.grace_window_secs
            .map(Duration::from_secs)
            .ok_or_else(|| error("grace providers need `grace_window_secs`".into()))
    };
    let provider = match cell.provider {
        ProviderName::SingleUse => ProviderModel::SingleUse,
        ProviderName::ReuseDetection => ProviderModel::ReuseDetection,
        ProviderName::GraceIdempotent => ProviderModel::GraceIdempotent { window: window()? },
        ProviderName::GraceFork => ProviderModel::GraceFork { window: window()? },
        ProviderName::GracePreviousValid => ProviderModel::GracePreviousValid { window: window()? },
        ProviderName::CountedReuse => ProviderModel::CountedReuse {
            max_reuse: w
                .max_reuse
                .ok_or_else(|| error("counted_reuse needs `max_reuse`".into()))?,
        },
        ProviderName::RotatingNoRevocation => ProviderModel::RotatingNoRevocation,
        ProviderName::NonRotating => ProviderModel::NonRotating,
    };
    let skews = match &w.skews_ms {
        Some(spanned) => {
            if spanned.get_ref().len() != usize::from(w.replicas) {
                return Err(errors.at(
                    spanned.span(),
                    format!(
                        "`skews_ms` has {} entries for {} replicas",
                        spanned.get_ref().len(),
                        w.replicas
                    ),
                ));
            }
            spanned.get_ref().clone()
        }
        None => Vec::new(),
    };
    let fleet = match &w.fleet {
        Some(spanned) => {
            if spanned.get_ref().len() != usize::from(w.replicas) {
                return Err(errors.at(
                    spanned.span(),
                    format!(
                        "`fleet` has {} entries for {} replicas",
                        spanned.get_ref().len(),
                        w.replicas
                    ),
                ));
            }
            spanned
                .get_ref()
                .iter()
                .map(|name| match name.as_str() {
                    "*" => Ok(None),
                    name => name
                        .parse::<Algorithm>()
                        .map(Some)
                        .map_err(|e| errors.at(spanned.span(), e)),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        None => Vec::new(),
    };
    let defaults = Timing::default();
    let t = &file.timing;
    let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
    let timing = Timing {
        access_lifetime: secs(t.access_lifetime_secs, defaults.access_lifetime),
        expiry_margin: secs(t.expiry_margin_secs, defaults.expiry_margin),
        lease: secs(t.lease_secs, defaults.lease),
        exchange_timeout: secs(t.exchange_timeout_secs, defaults.exchange_timeout),
        poll: secs(t.poll_secs, defaults.poll),
        max_request_age: t.max_request_age_secs.map(Duration::from_secs),
        persist_attempts: t.persist_attempts.unwrap_or(defaults.persist_attempts),
    };
    let second_presentation = match w.second_presentation {
        None => second_presentation_of(provider),
        Some(SecondPresentationSetting::Fatal) => SecondPresentation::Fatal,
        Some(SecondPresentationSetting::AlwaysSafe) => SecondPresentation::AlwaysSafe,
        Some(SecondPresentationSetting::SafeWithinSecs(s)) => {
            SecondPresentation::SafeWithin(Duration::from_secs(s))
        }
    };
    let world = WorldSpec {
        algorithm: Algorithm::BATON,
        fleet,
        replicas: w.replicas,
        callers: w.callers,
        requests: w.requests,
        links: w.links,
        provider,
        second_presentation,
        server_error_after_send: match w.server_error_after_send {
            ServerErrorSetting::Unknown => ServerErrorAfterSend::Unknown,
            ServerErrorSetting::Retry => ServerErrorAfterSend::Retry,
        },
        timing,
        validate: w.validate,
        path_ignores_max_request_age: w.path_ignores_max_request_age,
        relink_keeps_lease: w.relink_keeps_lease,
        relink_tells_replica: w.relink_tells_replica,
        skews,
        faults: cell.faults.budget(),
    };
    if let Some(r) = world.relink_tells_replica.filter(|r| *r >= world.replicas) {
        return Err(errors.error(format!(
            "[world] relink_tells_replica = {r}, but the world has {} replica(s) (0 to {})",
            world.replicas,
            world.replicas - 1
        )));
    }
    if let Err(e) = world.config(0, 0) {
        return Err(errors.error(format!("[timing] {e}")));
    }
    Ok(Scenario {
        name: cell.name,
        path: errors.path.to_path_buf(),
        description: file.description.clone(),
        unavoidable: cell.unavoidable,
        world,
        max_states: file.check.max_states.unwrap_or(2_000_000),
        invariants: cell.invariants.unwrap_or_else(|| Invariant::ALL.to_vec()),
        expectations: cell.expectations,
        thread_budgets: cell.thread_budgets,
    })
}

/// Loads one scenario file that is not a matrix.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = read(path)?;
    parse(path, &text)
}

/// Loads one scenario file: its scenario, or every cell of its matrix.
pub fn load_file(path: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let text = read(path)?;
    parse_all(path, &text)
}

fn read(path: &Path) -> Result<String, ScenarioError> {
    std::fs::read_to_string(path).map_err(|e| ScenarioError {
        path: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })
}

/// Loads every `*.toml` under each path (files are taken as they are),
/// sorted by path. Stops at the first bad file.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Scenario>, ScenarioError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| ScenarioError {
                path: path.display().to_string(),
                message: format!("cannot list: {e}"),
            })?;
            for entry in entries.flatten() {
                let p = entry.path();
                if p.extension().is_some_and(|e| e == "toml") {
                    files.push(p);
                }
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    let mut scenarios = Vec::new();
    for file in &files {
        scenarios.extend(load_file(file)?);
    }
    Ok(scenarios)
}

#[cfg(test)]
mod tests;
