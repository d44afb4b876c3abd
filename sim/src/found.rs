//! What a check found ([`Found`]) and the verdict as shown for it beside
//! the expectation ([`verdict_text`]); re-exported by [`crate::run`].

use serde::Serialize;

use crate::coverage::Coverage;
use crate::scenario::Expectation;

/// What an exploration found, comparable with an [`Expectation`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "found")]
pub enum Found {
    /// Every invariant held.
    Holds,
    /// This invariant broke.
    Violates {
        /// Its name.
        invariant: String,
        /// Why.
        reason: String,
    },
    /// The state budget ran out; nothing proven.
    BudgetExhausted,
    /// The checker cannot run this scenario.
    NotApplicable {
        /// Why not.
        reason: String,
    },
    /// The checker stopped without a verdict (it gave up on a run, or a
    /// run ended in a way it cannot judge); nothing proven, nothing found.
    Inconclusive {
        /// What happened.
        reason: String,
    },
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Found::Holds => f.write_str("holds"),
            Found::Violates { invariant, .. } => write!(f, "violates {invariant}"),
            Found::BudgetExhausted => f.write_str("budget exhausted (not proven)"),
            Found::NotApplicable { .. } => f.write_str("n/a"),
            Found::Inconclusive { .. } => f.write_str("inconclusive"),
        }
    }
}

/// The verdict as shown: a violation as found (whatever the coverage), the
/// absence of one qualified by how much was searched — `holds (proof)`,
/// `holds (bounded)`, `holds (sampled)`, or, where a violation was
/// expected, `not found (bounded)` / `not found in N samples (sampled)`.
pub fn verdict_text(
    expected: Expectation,
    found: &Found,
    coverage: &Coverage,
    runs: usize,
) -> String {
    match (found, expected) {
        (Found::Holds, Expectation::Holds) => format!("holds ({})", coverage.kind()),
        (Found::Holds, Expectation::Violates(_)) => match coverage {
            Coverage::Sampled(_) => format!("not found in {runs} samples (sampled)"),
            other => format!("not found ({})", other.kind()),
        },
        (other, _) => other.to_string(),
    }
}
