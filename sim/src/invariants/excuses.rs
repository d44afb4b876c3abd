//! Which faults excuse which outcomes: one table, read by the invariants
//! that judge (`callers_served` through [`answer_excused`],
//! `no_lost_rotation` through [`lost_rotation_excused`]) and by the reports
//! that say, per scenario or matrix cell, what its fault budget excuses
//! ([`excused_by`]). An outcome is excused when one of its causes happened
//! in the run; the judging code adds only what depends on the world's
//! state (the provider holding no live token), never a fault of its own.

use baton_core::{ReauthReason, RefreshError};

use super::Invariant;
use crate::spec::FaultBudget;
use crate::world::FaultsUsed;

/// Something the adversary or an outside writer did in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A replica crashed.
    Crash,
    /// A store read or write failed.
    StoreFailure,
    /// The provider rate-limited.
    RateLimit,
    /// A request never reached the provider.
    Transient,
    /// A reply was lost after the provider processed the request.
    LostReply,
    /// A gateway answered 5xx (in any of its forms).
    Gateway,
    /// A driver's deadline passed.
    Timeout,
    /// A validation call failed.
    ValidationFailure,
    /// The clock jumped (a stall).
    Stall,
    /// The user unlinked.
    Unlink,
    /// The user revoked the application at the provider.
    Revoke,
}

impl Cause {
    /// Whether it happened in the run whose faults are `u`.
    pub fn happened(self, u: &FaultsUsed) -> bool {
        match self {
            Cause::Crash => u.crash,
            Cause::StoreFailure => u.store_failure,
            Cause::RateLimit => u.rate_limit,
            Cause::Transient => u.transient,
            Cause::LostReply => u.lost_reply,
            Cause::Gateway => u.gateway,
            Cause::Timeout => u.timeout,
            Cause::ValidationFailure => u.validation_failure,
            Cause::Stall => u.clock_jump,
            Cause::Unlink => u.unlink,
            Cause::Revoke => u.revoke,
        }
    }

    /// Whether `budget` lets it happen.
    pub fn budgeted(self, b: &FaultBudget) -> bool {
        match self {
            Cause::Crash => b.crashes > 0,
            Cause::StoreFailure => b.store_read_failures + b.store_write_failures > 0,
            Cause::RateLimit => b.rate_limits > 0,
            Cause::Transient => b.transients > 0,
            Cause::LostReply => b.lost_replies > 0,
            Cause::Gateway => {
                b.gateway_after_forwarding + b.gateway_before_arrival + b.gateway_without_forwarding
                    > 0
            }
            Cause::Timeout => b.timeouts > 0,
            Cause::ValidationFailure => b.validation_failures > 0,
            Cause::Stall => b.clock_jumps > 0,
            Cause::Unlink => b.unlinks > 0,
            Cause::Revoke => b.revocations > 0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cause::Crash => "a crash",
            Cause::StoreFailure => "a store failure",
            Cause::RateLimit => "a rate limit",
            Cause::Transient => "a request that never arrived",
            Cause::LostReply => "a lost reply",
            Cause::Gateway => "a gateway's 5xx",
            Cause::Timeout => "a timeout",
            Cause::ValidationFailure => "a failed validation",
            Cause::Stall => "a stall",
            Cause::Unlink => "an unlink",
            Cause::Revoke => "a revocation",
        }
    }
}

/// An outcome an invariant rejects unless something excuses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Excused {
    /// A caller told to retry after a delay.
    RetryAfter,
    /// A caller told of a temporary failure.
    Temporary,
    /// A caller told to re-authenticate because a refresh's outcome is
    /// unknown.
    OutcomeUnknown,
    /// A caller told the link is not linked.
    NotLinked,
    /// A caller told to re-authenticate after a rejection (or an emptied
    /// refresh token).
    Rejected,
    /// A rotation the store never learned of.
    LostRotation,
}

impl Excused {
    /// The kind of a caller's error.
    fn of(error: &RefreshError) -> Excused {
        match error {
            RefreshError::RetryAfter { .. } => Excused::RetryAfter,
            RefreshError::Temporary(_) => Excused::Temporary,
            RefreshError::ReauthenticationRequired(reason) => match reason {
                ReauthReason::OutcomeUnknown => Excused::OutcomeUnknown,
                ReauthReason::NotLinked => Excused::NotLinked,
                ReauthReason::Rejected { .. } | ReauthReason::NoRefreshToken => Excused::Rejected,
            },
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Excused::RetryAfter => "a retry-after answer",
            Excused::Temporary => "a temporary error",
            Excused::OutcomeUnknown => "re-authentication for an unknown outcome",
            Excused::NotLinked => "\"not linked\"",
            Excused::Rejected => "re-authentication after a rejection",
            Excused::LostRotation => "a rotation the store never learned of",
        }
    }
}

/// One row of the table: `invariant` accepts `outcome` when one of
/// `causes` happened.
#[derive(Clone, Copy, Debug)]
pub struct Excuse {
    /// The invariant that would otherwise reject the outcome.
    pub invariant: Invariant,
    /// The outcome.
    pub outcome: Excused,
    /// What excuses it.
    pub causes: &'static [Cause],
}

/// The table. A re-link excuses nothing: the old family stays live, so
/// every answer a replica could give before it is still right.
pub const EXCUSES: &[Excuse] = &[
    Excuse {
        invariant: Invariant::CallersServed,
        outcome: Excused::RetryAfter,
        causes: &[Cause::RateLimit],
    },
    Excuse {
        invariant: Invariant::CallersServed,
        outcome: Excused::Temporary,
        causes: &[
            Cause::Transient,
            Cause::Gateway,
            Cause::StoreFailure,
            Cause::ValidationFailure,
            Cause::RateLimit,
            Cause::LostReply,
            Cause::Timeout,
            // However a replica words the API's 401 on a token a
            // revocation killed, no token could have been given.
            Cause::Revoke,
        ],
    },
    Excuse {
        invariant: Invariant::CallersServed,
        outcome: Excused::OutcomeUnknown,
        causes: &[
            Cause::Crash,
            Cause::LostReply,
            Cause::Timeout,
            Cause::Gateway,
            Cause::Stall,
        ],
    },
    Excuse {
        invariant: Invariant::CallersServed,
        outcome: Excused::NotLinked,
        causes: &[Cause::Unlink],
    },
    Excuse {
        invariant: Invariant::CallersServed,
        outcome: Excused::Rejected,
        causes: &[Cause::Revoke],
    },
    // Faults that hid whether a token was consumed, or destroyed the
    // knowledge of an issued one.
    Excuse {
        invariant: Invariant::NoLostRotation,
        outcome: Excused::LostRotation,
        causes: &[
            Cause::Crash,
            Cause::LostReply,
            Cause::Timeout,
            Cause::Gateway,
        ],
    },
];

fn excused(outcome: Excused, u: &FaultsUsed) -> bool {
    EXCUSES
        .iter()
        .filter(|e| e.outcome == outcome)
        .any(|e| e.causes.iter().any(|c| c.happened(u)))
}

/// Whether the faults `u` of a run excuse a caller's `error`.
pub fn answer_excused(u: &FaultsUsed, error: &RefreshError) -> bool {
    excused(Excused::of(error), u)
}

/// Whether the faults `u` of a run excuse a lost rotation.
pub fn lost_rotation_excused(u: &FaultsUsed) -> bool {
    excused(Excused::LostRotation, u)
}

/// What a world with fault budget `budget` may excuse, one line per row
/// of the table that applies: `callers_served: a temporary error (a store
/// failure, a rate limit)`.
pub fn excused_by(budget: &FaultBudget, checked: &[Invariant]) -> Vec<String> {
    EXCUSES
        .iter()
        .filter(|e| checked.contains(&e.invariant))
        .filter_map(|e| {
            let causes: Vec<&str> = e
                .causes
                .iter()
                .filter(|c| c.budgeted(budget))
                .map(|c| c.name())
                .collect();
            (!causes.is_empty()).then(|| {
                format!(
                    "{}: {} ({})",
                    e.invariant.name(),
                    e.outcome.describe(),
                    causes.join(", ")
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use baton_core::{ReauthReason, RefreshError, TemporaryReason};

    use super::{answer_excused, excused_by, lost_rotation_excused};
    use crate::invariants::Invariant;
    use crate::spec::FaultBudget;
    use crate::world::FaultsUsed;

    #[test]
    fn a_cell_states_what_its_budget_excuses_for_the_invariants_it_checks() {
        let budget = FaultBudget {
            store_write_failures: 1,
            crashes: 1,
            ..FaultBudget::default()
        };
        let lines = excused_by(&budget, &Invariant::ALL);
        assert_eq!(
            lines,
            [
                "callers_served: a temporary error (a store failure)",
                "callers_served: re-authentication for an unknown outcome (a crash)",
                "no_lost_rotation: a rotation the store never learned of (a crash)",
            ]
        );
        assert!(excused_by(&budget, &[Invariant::NoReuse]).is_empty());
        assert!(excused_by(&FaultBudget::default(), &Invariant::ALL).is_empty());
    }

    #[test]
    fn an_error_is_excused_only_by_a_cause_that_happened() {
        let temporary = RefreshError::Temporary(TemporaryReason::Contention);
        let unknown = RefreshError::ReauthenticationRequired(ReauthReason::OutcomeUnknown);
        let none = FaultsUsed::default();
        assert!(!answer_excused(&none, &temporary));
        assert!(!answer_excused(&none, &unknown));
        assert!(!lost_rotation_excused(&none));
        let stalled = FaultsUsed {
            clock_jump: true,
            ..FaultsUsed::default()
        };
        assert!(answer_excused(&stalled, &unknown));
        assert!(!answer_excused(&stalled, &temporary));
        assert!(!lost_rotation_excused(&stalled));
        let crashed = FaultsUsed {
            crash: true,
            ..FaultsUsed::default()
        };
        assert!(lost_rotation_excused(&crashed));
    }
}
