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

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton_core::SecondPresentation;
use baton_fakes::ProviderModel;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::invariants::Invariant;
use crate::spec::{second_presentation_of, FaultBudget, Timing, WorldSpec};
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

fn parse_via_fromstr<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(de::Error::custom)
}

fn parse_invariants<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Invariant>>, D::Error> {
    let names: Option<Vec<String>> = Option::deserialize(d)?;
    names
        .map(|names| {
            names
                .iter()
                .map(|n| n.parse().map_err(de::Error::custom))
                .collect()
        })
        .transpose()
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let n = u8::deserialize(d)?;
    if n == 0 {
        return Err(de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

/// The provider models, as scenarios spell them.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum ProviderName {
    SingleUse,
    ReuseDetection,
    GraceIdempotent,
    GraceFork,
    GracePreviousValid,
    CountedReuse,
    RotatingNoRevocation,
    NonRotating,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum SecondPresentationSetting {
    Fatal,
    AlwaysSafe,
    SafeWithinSecs(u64),
}

fn one() -> u8 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorldSection {
    #[serde(default = "one", deserialize_with = "at_least_one")]
    replicas: u8,
    #[serde(default = "one", deserialize_with = "at_least_one")]
    callers: u8,
    #[serde(default = "one", deserialize_with = "at_least_one")]
    requests: u8,
    #[serde(default = "one", deserialize_with = "at_least_one")]
    links: u8,
    provider: ProviderName,
    grace_window_secs: Option<u64>,
    max_reuse: Option<u32>,
    #[serde(default)]
    validate: bool,
    skews_ms: Option<toml::Spanned<Vec<i64>>>,
    second_presentation: Option<SecondPresentationSetting>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimingSection {
    access_lifetime_secs: Option<u64>,
    expiry_margin_secs: Option<u64>,
    lease_secs: Option<u64>,
    exchange_timeout_secs: Option<u64>,
    poll_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsSection {
    #[serde(default)]
    crashes: u8,
    #[serde(default)]
    cancels: u8,
    #[serde(default)]
    store_write_failures: u8,
    #[serde(default)]
    store_read_failures: u8,
    #[serde(default)]
    rate_limits: u8,
    #[serde(default)]
    transients: u8,
    #[serde(default)]
    lost_replies: u8,
    #[serde(default)]
    rotated_then_5xx: u8,
    #[serde(default)]
    timeouts: u8,
    #[serde(default)]
    validation_failures: u8,
    #[serde(default)]
    clock_jumps: u8,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckSection {
    max_states: Option<usize>,
    #[serde(default, deserialize_with = "parse_invariants")]
    invariants: Option<Vec<Invariant>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    description: String,
    unavoidable: Option<String>,
    world: WorldSection,
    #[serde(default)]
    timing: TimingSection,
    #[serde(default)]
    faults: FaultsSection,
    #[serde(default)]
    check: CheckSection,
    expect: toml::Spanned<std::collections::BTreeMap<String, toml::Spanned<Expectation>>>,
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
}

impl Scenario {
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

/// Parses a scenario from `text`; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let error = |message: String| ScenarioError {
        path: path.display().to_string(),
        message,
    };
    let at = |span: std::ops::Range<usize>, message: String| {
        let (line, col) = line_col(text, span.start);
        error(format!("line {line}, column {col}: {message}"))
    };
    let file: ScenarioFile = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => at(span, e.message().to_string()),
        None => error(e.message().to_string()),
    })?;
    let w = &file.world;
    let window = || {
        w.grace_window_secs
            .map(Duration::from_secs)
            .ok_or_else(|| error("[world] grace providers need `grace_window_secs`".into()))
    };
    let provider = match w.provider {
        ProviderName::SingleUse => ProviderModel::SingleUse,
        ProviderName::ReuseDetection => ProviderModel::ReuseDetection,
        ProviderName::GraceIdempotent => ProviderModel::GraceIdempotent { window: window()? },
        ProviderName::GraceFork => ProviderModel::GraceFork { window: window()? },
        ProviderName::GracePreviousValid => ProviderModel::GracePreviousValid { window: window()? },
        ProviderName::CountedReuse => ProviderModel::CountedReuse {
            max_reuse: w
                .max_reuse
                .ok_or_else(|| error("[world] counted_reuse needs `max_reuse`".into()))?,
        },
        ProviderName::RotatingNoRevocation => ProviderModel::RotatingNoRevocation,
        ProviderName::NonRotating => ProviderModel::NonRotating,
    };
    let skews = match &w.skews_ms {
        Some(spanned) => {
            if spanned.get_ref().len() != usize::from(w.replicas) {
                return Err(at(
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
    let defaults = Timing::default();
    let t = &file.timing;
    let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
    let timing = Timing {
        access_lifetime: secs(t.access_lifetime_secs, defaults.access_lifetime),
        expiry_margin: secs(t.expiry_margin_secs, defaults.expiry_margin),
        lease: secs(t.lease_secs, defaults.lease),
        exchange_timeout: secs(t.exchange_timeout_secs, defaults.exchange_timeout),
        poll: secs(t.poll_secs, defaults.poll),
    };
    let f = &file.faults;
    let faults = FaultBudget {
        crashes: f.crashes,
        cancels: f.cancels,
        store_write_failures: f.store_write_failures,
        store_read_failures: f.store_read_failures,
        rate_limits: f.rate_limits,
        transients: f.transients,
        lost_replies: f.lost_replies,
        rotated_then_5xx: f.rotated_then_5xx,
        timeouts: f.timeouts,
        validation_failures: f.validation_failures,
        clock_jumps: f.clock_jumps,
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
        algorithm: Algorithm::Baton,
        replicas: w.replicas,
        callers: w.callers,
        requests: w.requests,
        links: w.links,
        provider,
        second_presentation,
        timing,
        validate: w.validate,
        skews,
        faults,
    };
    if let Err(e) = world.config(0, 0) {
        return Err(error(format!("[timing] {e}")));
    }
    let mut expectations = Vec::new();
    for (name, expectation) in file.expect.get_ref() {
        // The key's own span is not kept by the map; point at the value.
        let algorithm = parse_via_fromstr::<_, Algorithm>(toml::de::ValueDeserializer::new(
            &format!("\"{name}\""),
        ))
        .map_err(|e: toml::de::Error| at(expectation.span(), e.message().to_string()))?;
        expectations.push((algorithm, *expectation.get_ref()));
    }
    if expectations.is_empty() {
        return Err(at(file.expect.span(), "[expect] names no algorithm".into()));
    }
    Ok(Scenario {
        name: path
            .file_stem()
            .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned()),
        path: path.to_path_buf(),
        description: file.description,
        unavoidable: file.unavoidable,
        world,
        max_states: file.check.max_states.unwrap_or(2_000_000),
        invariants: file
            .check
            .invariants
            .unwrap_or_else(|| Invariant::ALL.to_vec()),
        expectations,
    })
}

/// Loads one scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        path: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
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
    files.iter().map(|p| load(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
description = "two replicas"
[world]
replicas = 2
provider = "single_use"
[faults]
clock_jumps = 1
[expect]
baton = { violates = "no_poisoned_failure" }
"#;

    fn err(text: &str) -> String {
        parse(Path::new("s.toml"), text).unwrap_err().to_string()
    }

    #[test]
    fn a_good_scenario_loads() {
        let s = parse(Path::new("dir/two.toml"), GOOD).unwrap();
        assert_eq!(s.name, "two");
        assert_eq!(s.world.replicas, 2);
        assert_eq!(s.world.faults.clock_jumps, 1);
        assert_eq!(
            s.expectations,
            vec![(
                Algorithm::Baton,
                Expectation::Violates(Invariant::NoPoisonedFailure)
            )]
        );
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let unknown_key = GOOD.replace("replicas = 2", "replicaz = 2");
        let e = err(&unknown_key);
        assert!(
            e.starts_with("s.toml: line 4, column 1: unknown field `replicaz`"),
            "{e}"
        );
        let bad_value = GOOD.replace("replicas = 2", "replicas = 0");
        let e = err(&bad_value);
        assert!(
            e.starts_with("s.toml: line 4, column 12: must be at least 1"),
            "{e}"
        );
        let bad_invariant = GOOD.replace("no_poisoned_failure", "no_such_thing");
        let e = err(&bad_invariant);
        assert!(
            e.contains("line 9") && e.contains("unknown invariant `no_such_thing`"),
            "{e}"
        );
        let bad_algorithm = GOOD.replace("baton =", "lease_everything =");
        let e = err(&bad_algorithm);
        assert!(
            e.contains("line 9") && e.contains("unknown algorithm `lease_everything`"),
            "{e}"
        );
        let bad_expectation = GOOD.replace("{ violates = \"no_poisoned_failure\" }", "\"fine\"");
        let e = err(&bad_expectation);
        assert!(e.contains("line 9") && e.contains(r#"found "fine""#), "{e}");
        let bad_provider = GOOD.replace("single_use", "singel_use");
        let e = err(&bad_provider);
        assert!(e.contains("line 5") && e.contains("singel_use"), "{e}");
        let bad_timing = format!("{GOOD}\n[timing]\nlease_secs = 5\n");
        let e = err(&bad_timing);
        assert!(e.contains("exchange timeout"), "{e}");
    }
}
