//! What the explored runs reached, so that a gap shows before a bug does
//! (`baton check --coverage`): per algorithm, which fault kinds fired,
//! which outside writers acted, and which (input × stage) pairs of the
//! machine were met (see [`baton_core::Stage`]).
//!
//! The explorer records these only when asked: each step then reports the
//! inputs its machines received ([`World::apply_observed`]), and the fault
//! a step injected is read off the step and the budget it spent. Steps the
//! partial-order reduction skips are taken in another order from another
//! state, so the sets are the same with and without it.
//!
//! What was never reached is judged against the universe: every fault kind
//! the world models, every writer, and every pair [`InputKind::meets`]
//! allows — for a machine that names its stages at all.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use baton_core::{InputKind, Stage};
use baton_fakes::ProviderModel;
use serde::Serialize;

use crate::spec::{second_presentation_of, WorldSpec};
use crate::world::{Action, Fault, Met, World};

/// A fault the adversary can inject (or, for clock skew, set up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A replica crashed and restarted.
    Crash,
    /// A waiting caller went away.
    Cancel,
    /// The provider processed an exchange whose reply was lost.
    LostReply,
    /// A driver's exchange deadline passed with the request or reply on its
    /// way.
    Timeout,
    /// A process was paused, or time passed a deadline or lease (a stall).
    Stall,
    /// A gateway answered 5xx after the provider processed the request.
    GatewayAfterForwarding,
    /// A gateway answered 504 while the request was still on its way.
    GatewayBeforeArrival,
    /// A gateway answered 503 without forwarding.
    GatewayWithoutForwarding,
    /// The provider rate-limited.
    RateLimited,
    /// The request never reached the provider.
    Transient,
    /// A store read failed.
    StoreReadFailed,
    /// A store write failed but landed.
    StoreWriteFailedLanded,
    /// A store write failed and did not land.
    StoreWriteFailedLost,
    /// A validation call failed without an answer.
    ValidationInconclusive,
    /// Replicas' clocks differed (within the margin or beyond).
    ClockSkew,
}

impl FaultKind {
    /// Every fault kind, in order.
    pub const ALL: [FaultKind; 15] = [
        FaultKind::Crash,
        FaultKind::Cancel,
        FaultKind::LostReply,
        FaultKind::Timeout,
        FaultKind::Stall,
        FaultKind::GatewayAfterForwarding,
        FaultKind::GatewayBeforeArrival,
        FaultKind::GatewayWithoutForwarding,
        FaultKind::RateLimited,
        FaultKind::Transient,
        FaultKind::StoreReadFailed,
        FaultKind::StoreWriteFailedLanded,
        FaultKind::StoreWriteFailedLost,
        FaultKind::ValidationInconclusive,
        FaultKind::ClockSkew,
    ];

    fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// An actor besides the replicas that writes the row or the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriterKind {
    /// The OAuth callback stored a fresh pair of a new family.
    Relink,
    /// The user unlinked: the row was removed.
    Unlink,
    /// The user revoked the application at the provider.
    Revoke,
}

impl WriterKind {
    /// Every writer, in order.
    pub const ALL: [WriterKind; 3] = [WriterKind::Relink, WriterKind::Unlink, WriterKind::Revoke];
}

/// What one exploration reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// Fault kinds that fired, by the provider model they fired against.
    pub faults: BTreeMap<&'static str, BTreeSet<FaultKind>>,
    /// Writers that acted.
    pub writers: BTreeSet<WriterKind>,
    /// (input × stage) pairs met, by algorithm.
    pub pairs: BTreeMap<String, BTreeSet<(InputKind, Stage)>>,
    /// Algorithms whose machine named no stage at all.
    pub unnamed: BTreeSet<String>,
    /// The provider models, of those in `faults`, to which a second
    /// presentation is fatal.
    pub fatal: BTreeSet<&'static str>,
}

impl Reached {
    /// Records one step: `action` taken from `before` to `after`, whose
    /// machines met `met`.
    pub fn record(
        &mut self,
        spec: &WorldSpec,
        before: &World,
        action: &Action,
        after: &World,
        met: &[Met],
    ) {
        let provider = provider_name(spec.provider);
        if provider_is_fatal(spec.provider) {
            self.fatal.insert(provider);
        }
        if let Some(kind) = fault_of(before, action, after) {
            self.faults.entry(provider).or_default().insert(kind);
        }
        if spec.skews.iter().any(|s| *s != 0) {
            self.faults
                .entry(provider)
                .or_default()
                .insert(FaultKind::ClockSkew);
        }
        match action {
            Action::Relink { .. } => self.writers.insert(WriterKind::Relink),
            Action::Unlink { .. } => self.writers.insert(WriterKind::Unlink),
            Action::Revoke { .. } => self.writers.insert(WriterKind::Revoke),
            _ => false,
        };
        for m in met {
            let algorithm = spec.algorithm_of(usize::from(m.replica)).name().to_string();
            match m.stage {
                Some(stage) => {
                    self.pairs
                        .entry(algorithm)
                        .or_default()
                        .insert((m.input, stage));
                }
                None => {
                    self.unnamed.insert(algorithm);
                }
            }
        }
    }

    /// Adds what `other` reached.
    pub fn merge(&mut self, other: &Reached) {
        for (provider, kinds) in &other.faults {
            self.faults
                .entry(provider)
                .or_default()
                .extend(kinds.iter().copied());
        }
        self.writers.extend(other.writers.iter().copied());
        for (algorithm, pairs) in &other.pairs {
            self.pairs
                .entry(algorithm.clone())
                .or_default()
                .extend(pairs.iter().copied());
        }
        self.unnamed.extend(other.unnamed.iter().cloned());
        self.fatal.extend(other.fatal.iter().copied());
    }

    /// Every fault kind that fired, whatever the provider.
    pub fn all_faults(&self) -> BTreeSet<FaultKind> {
        self.faults.values().flatten().copied().collect()
    }
}

/// The fault a step injected, if any: read off the step itself, or, for a
/// stall, off the clock-jump budget it spent.
fn fault_of(before: &World, action: &Action, after: &World) -> Option<FaultKind> {
    match action {
        Action::Crash { .. } => Some(FaultKind::Crash),
        Action::Cancel { .. } => Some(FaultKind::Cancel),
        Action::TimeOut { .. } => Some(FaultKind::Timeout),
        Action::Deliver {
            fault: Some(fault), ..
        } => Some(match fault {
            Fault::RateLimited => FaultKind::RateLimited,
            Fault::Transient => FaultKind::Transient,
            Fault::LostReply => FaultKind::LostReply,
            Fault::GatewayAfterForwarding => FaultKind::GatewayAfterForwarding,
            Fault::GatewayBeforeArrival => FaultKind::GatewayBeforeArrival,
            Fault::GatewayWithoutForwarding => FaultKind::GatewayWithoutForwarding,
            Fault::StoreWriteFailed { applied: true } => FaultKind::StoreWriteFailedLanded,
            Fault::StoreWriteFailed { applied: false } => FaultKind::StoreWriteFailedLost,
            Fault::StoreReadFailed => FaultKind::StoreReadFailed,
            Fault::ValidationInconclusive => FaultKind::ValidationInconclusive,
        }),
        Action::FireTimer { .. } | Action::AdvanceClock
            if after.budget.clock_jumps < before.budget.clock_jumps =>
        {
            Some(FaultKind::Stall)
        }
        _ => None,
    }
}

/// The provider model's name, as scenario files write it.
pub fn provider_name(model: ProviderModel) -> &'static str {
    match model {
        ProviderModel::SingleUse => "single_use",
        ProviderModel::ReuseDetection => "reuse_detection",
        ProviderModel::GraceIdempotent { .. } => "grace_idempotent",
        ProviderModel::GraceFork { .. } => "grace_fork",
        ProviderModel::GracePreviousValid { .. } => "grace_previous_valid",
        ProviderModel::CountedReuse { .. } => "counted_reuse",
        ProviderModel::RotatingNoRevocation => "rotating_no_revocation",
        ProviderModel::NonRotating => "non_rotating",
    }
}

/// Coverage over many explorations, per algorithm, for the report.
#[derive(Clone, Debug, Default)]
pub struct ReachedByAlgorithm(pub BTreeMap<String, Reached>);

/// The JSON form of one algorithm's coverage.
#[derive(Serialize)]
struct AlgorithmReport {
    algorithm: String,
    faults_fired: Vec<FaultKind>,
    faults_never_fired: Vec<FaultKind>,
    faults_never_fired_by_provider: BTreeMap<&'static str, ProviderGap>,
    writers_acted: Vec<WriterKind>,
    writers_never_acted: Vec<WriterKind>,
    /// `None` when the machine names no stages.
    pairs: Option<PairsReport>,
}

#[derive(Serialize)]
struct ProviderGap {
    /// A second presentation to this provider is fatal.
    fatal: bool,
    never_fired: Vec<FaultKind>,
}

#[derive(Serialize)]
struct PairsReport {
    reached: Vec<String>,
    never_reached: Vec<String>,
    /// Met although [`InputKind::meets`] says they cannot be: a sign the
    /// universe is wrong.
    outside_universe: Vec<String>,
}

fn pair_name((input, stage): &(InputKind, Stage)) -> String {
    format!("{input} × {stage}")
}

fn universe() -> BTreeSet<(InputKind, Stage)> {
    InputKind::ALL
        .iter()
        .flat_map(|i| Stage::ALL.iter().map(move |s| (*i, *s)))
        .filter(|(i, s)| i.meets(*s))
        .collect()
}

impl ReachedByAlgorithm {
    /// Adds one exploration of `algorithm`'s scenario.
    pub fn add(&mut self, algorithm: &str, reached: &Reached) {
        self.0
            .entry(algorithm.to_string())
            .or_default()
            .merge(reached);
    }

    fn reports(&self) -> Vec<AlgorithmReport> {
        let universe = universe();
        self.0
            .iter()
            .map(|(algorithm, reached)| {
                let fired = reached.all_faults();
                let by_provider = reached
                    .faults
                    .keys()
                    .map(|p| {
                        let kinds = &reached.faults[p];
                        let never_fired = FaultKind::ALL
                            .iter()
                            .filter(|k| !kinds.contains(k))
                            .copied()
                            .collect();
                        let fatal = reached.fatal.contains(p);
                        (*p, ProviderGap { fatal, never_fired })
                    })
                    .collect();
                let pairs = reached.pairs.get(algorithm).map(|met| PairsReport {
                    reached: met.iter().map(pair_name).collect(),
                    never_reached: universe.difference(met).map(pair_name).collect(),
                    outside_universe: met.difference(&universe).map(pair_name).collect(),
                });
                AlgorithmReport {
                    algorithm: algorithm.clone(),
                    faults_fired: fired.iter().copied().collect(),
                    faults_never_fired: FaultKind::ALL
                        .iter()
                        .filter(|k| !fired.contains(k))
                        .copied()
                        .collect(),
                    faults_never_fired_by_provider: by_provider,
                    writers_acted: reached.writers.iter().copied().collect(),
                    writers_never_acted: WriterKind::ALL
                        .iter()
                        .filter(|w| !reached.writers.contains(w))
                        .copied()
                        .collect(),
                    pairs,
                }
            })
            .collect()
    }

    /// The JSON form: one object per algorithm.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.reports()).unwrap_or_default()
    }

    /// The human form, ending with what was never reached.
    pub fn human(&self) -> String {
        let mut out = String::from("\ncoverage (explorer; across every run explored):\n");
        let names = |kinds: &[FaultKind]| {
            kinds
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut gaps = String::new();
        for report in self.reports() {
            let pairs = match &report.pairs {
                Some(p) => format!(
                    "{}/{} (input × stage) pairs",
                    p.reached.len(),
                    p.reached.len() + p.never_reached.len()
                ),
                None => "stages not named by this machine".into(),
            };
            let _ = writeln!(
                out,
                "  {:<22} faults {}/{}, writers {}/{}, {pairs}",
                report.algorithm,
                report.faults_fired.len(),
                FaultKind::ALL.len(),
                report.writers_acted.len(),
                WriterKind::ALL.len(),
            );
            let _ = writeln!(gaps, "  {}:", report.algorithm);
            let mut any = false;
            if !report.faults_never_fired.is_empty() {
                any = true;
                let _ = writeln!(
                    gaps,
                    "    faults never fired: {}",
                    names(&report.faults_never_fired)
                );
            }
            for (provider, gap) in &report.faults_never_fired_by_provider {
                if gap.fatal && !gap.never_fired.is_empty() {
                    any = true;
                    let _ = writeln!(
                        gaps,
                        "    faults never fired on {provider} (fatal second presentation): {}",
                        names(&gap.never_fired)
                    );
                }
            }
            if !report.writers_never_acted.is_empty() {
                any = true;
                let writers: Vec<String> = report
                    .writers_never_acted
                    .iter()
                    .map(|w| format!("{w:?}").to_lowercase())
                    .collect();
                let _ = writeln!(gaps, "    writers never acted: {}", writers.join(", "));
            }
            if let Some(p) = &report.pairs {
                for pair in &p.never_reached {
                    any = true;
                    let _ = writeln!(gaps, "    never reached: {pair}");
                }
                for pair in &p.outside_universe {
                    any = true;
                    let _ = writeln!(gaps, "    reached, outside the stated universe: {pair}");
                }
            }
            if !any {
                let _ = writeln!(gaps, "    nothing unreached");
            }
        }
        out.push_str("\nnever reached:\n");
        out.push_str(&gaps);
        out
    }
}

/// Whether `provider` makes a second presentation fatal (for callers that
/// filter by it).
pub fn provider_is_fatal(model: ProviderModel) -> bool {
    matches!(
        second_presentation_of(model),
        baton_core::SecondPresentation::Fatal
    )
}

#[cfg(test)]
mod tests {
    use baton_core::{InputKind, Stage};
    use baton_fakes::ProviderModel;

    use super::{FaultKind, Reached};
    use crate::explore::{explore, Options};
    use crate::spec::WorldSpec;
    use crate::zoo::Algorithm;

    fn reached(spec: &WorldSpec, reduce: bool) -> Reached {
        let options = Options {
            reduce,
            record_reached: true,
            ..Options::default()
        };
        explore(spec, &options, &mut |_| {})
            .unwrap()
            .reached
            .expect("recorded")
    }

    fn world(algorithm: Algorithm) -> WorldSpec {
        let mut spec = WorldSpec::new(algorithm, ProviderModel::ReuseDetection);
        spec.replicas = 2;
        spec.faults.crashes = 1;
        spec.faults.store_write_failures = 1;
        spec.faults.unlinks = 1;
        spec
    }

    #[test]
    fn faults_writers_and_pairs_are_recorded_and_do_not_depend_on_the_reduction() {
        let spec = world(Algorithm::BATON);
        let with = reached(&spec, true);
        let fired = with.all_faults();
        for kind in [
            FaultKind::Crash,
            FaultKind::StoreWriteFailedLanded,
            FaultKind::StoreWriteFailedLost,
        ] {
            assert!(fired.contains(&kind), "{kind:?} not recorded: {fired:?}");
        }
        assert!(!fired.contains(&FaultKind::LostReply));
        assert!(with.fatal.contains("reuse_detection"));
        assert_eq!(with.writers.len(), 1);
        let pairs = &with.pairs["baton"];
        for pair in [
            (InputKind::TokenRequested, Stage::Idle),
            (InputKind::LinkRead, Stage::ReadingFresh),
            (InputKind::StoreFailed, Stage::TakingLease),
            (InputKind::ExchangeIssued, Stage::Exchanging),
            (InputKind::LinkReadEmpty, Stage::ReadingFresh),
        ] {
            assert!(pairs.contains(&pair), "{pair:?} not recorded");
        }
        assert!(pairs.iter().all(|(i, s)| i.meets(*s)));
        assert_eq!(with, reached(&spec, false));
    }

    #[test]
    fn a_machine_that_names_no_stages_is_reported_as_such() {
        let with = reached(&world(Algorithm::NAIVE), true);
        assert!(with.pairs.is_empty());
        assert!(with.unnamed.contains("naive"));
        assert!(with.all_faults().contains(&FaultKind::Crash));
    }
}
