//! The shape of a generated world — replicas, callers, provider, one of
//! each fault — as proptest draws it and the symmetry tests sample it.
//! Plain data, so the harness has it without the `proptest` feature.

use crate::spec::WorldSpec;

/// The shape of a generated world: what proptest varies, and shrinks
/// toward fewer replicas, callers and faults.
#[derive(Clone, Debug)]
pub struct WorldShape {
    /// Replicas, 1 to 3.
    pub replicas: u8,
    /// Callers per replica, 1 to 3.
    pub callers: u8,
    /// Index into [`PROVIDERS`].
    pub provider: usize,
    /// Crashes, cancels, rate limits, transients, lost replies: 0 or 1 each.
    pub faults: [u8; 5],
}

/// The provider models generated worlds draw from (grace windows of two
/// minutes).
pub const PROVIDERS: [baton_fakes::ProviderModel; 5] = [
    baton_fakes::ProviderModel::SingleUse,
    baton_fakes::ProviderModel::ReuseDetection,
    baton_fakes::ProviderModel::GraceIdempotent {
        window: std::time::Duration::from_secs(120),
    },
    baton_fakes::ProviderModel::RotatingNoRevocation,
    baton_fakes::ProviderModel::NonRotating,
];

impl WorldShape {
    /// The world of this shape running `algorithm`.
    pub fn spec(&self, algorithm: crate::zoo::Algorithm) -> WorldSpec {
        let mut spec = WorldSpec::new(algorithm, PROVIDERS[self.provider % PROVIDERS.len()]);
        spec.replicas = self.replicas;
        spec.callers = self.callers;
        let [crashes, cancels, rate_limits, transients, lost_replies] = self.faults;
        spec.faults.crashes = crashes;
        spec.faults.cancels = cancels;
        spec.faults.rate_limits = rate_limits;
        spec.faults.transients = transients;
        spec.faults.lost_replies = lost_replies;
        spec
    }
}
