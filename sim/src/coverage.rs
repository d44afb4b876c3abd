//! How much of its search space a checker covered, so that a search cut
//! short never reads as a proof.
//!
//! Every check result carries one [`Coverage`]:
//!
//! - [`Coverage::Proof`]: the search was exhaustive for its model — the
//!   explorer finishing within its state budget, or shuttle's depth-first
//!   scheduler running out of schedules;
//! - [`Coverage::Bounded`]: every run within some bound was tried, and the
//!   bound says which (loom's preemption bound, a cap that stopped the
//!   search, the explorer's state budget, one shard);
//! - [`Coverage::Sampled`]: a number of runs drawn at random (shuttle's PCT
//!   and random schedulers, proptest).
//!
//! A violation found is a violation whatever the coverage; the coverage
//! qualifies only the absence of one.

use std::fmt;

use serde::Serialize;

/// How much of its space a check covered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Coverage {
    /// Exhaustive for the checker's model; says which search.
    Proof(String),
    /// Every run within a bound; says which bound.
    Bounded(String),
    /// Runs drawn at random; says how many, and how drawn.
    Sampled(String),
    /// Nothing was searched (the checker does not apply).
    None,
}

impl Coverage {
    /// The kind alone: `proof`, `bounded`, `sampled` or `none`.
    pub fn kind(&self) -> &'static str {
        match self {
            Coverage::Proof(_) => "proof",
            Coverage::Bounded(_) => "bounded",
            Coverage::Sampled(_) => "sampled",
            Coverage::None => "none",
        }
    }

    /// What bounded or sampled it, or which exhaustive search it was.
    pub fn detail(&self) -> &str {
        match self {
            Coverage::Proof(d) | Coverage::Bounded(d) | Coverage::Sampled(d) => d,
            Coverage::None => "",
        }
    }

    /// Whether the absence of a violation is proven (for the checker's
    /// model).
    pub fn is_proof(&self) -> bool {
        matches!(self, Coverage::Proof(_))
    }

    /// The stronger of the coverages of two searches of one space, which is
    /// the coverage of both together: an exhaustive search covers the
    /// space whatever samples were drawn beside it.
    pub fn strongest(self, other: Coverage) -> Coverage {
        let rank = |c: &Coverage| match c {
            Coverage::Proof(_) => 3,
            Coverage::Bounded(_) => 2,
            Coverage::Sampled(_) => 1,
            Coverage::None => 0,
        };
        if rank(&other) > rank(&self) {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Coverage {
    /// `proof: explorer, every state (412)`, `bounded: loom, preemption
    /// bound 2`, `sampled: proptest, 512 cases`, or `-`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Coverage::None => f.write_str("-"),
            other => write!(f, "{}: {}", other.kind(), other.detail()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_exhaustive_search_decides() {
        let proof = Coverage::Proof("dfs".into());
        let bounded = Coverage::Bounded("cap".into());
        let sampled = Coverage::Sampled("pct".into());
        assert_eq!(sampled.clone().strongest(proof.clone()), proof);
        assert_eq!(bounded.clone().strongest(sampled.clone()), bounded);
        assert_eq!(sampled.clone().strongest(bounded.clone()), bounded);
        assert_eq!(sampled.clone().strongest(Coverage::None), sampled);
    }

    #[test]
    fn json_names_the_kind_and_the_detail() {
        let json = serde_json::to_value(Coverage::Bounded("loom, preemption bound 2".into()))
            .expect("serialises");
        assert_eq!(json["kind"], "bounded");
        assert_eq!(json["detail"], "loom, preemption bound 2");
    }
}
