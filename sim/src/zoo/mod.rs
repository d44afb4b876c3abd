//! The algorithms the harness runs, behind one [`baton_core::RefreshMachine`]
//! interface: baton's own machine, and (as they are modelled) the
//! historical algorithms of DESIGN.md section 5 — the bug zoo.

use std::fmt;
use std::str::FromStr;

use baton_core::{Config, Effect, Input, InputError, Machine, RefreshMachine, Stage, Timestamp};

pub mod flighted;
pub mod per_caller;

use flighted::Flighted;
use per_caller::{PerCaller, Variant};

/// What a historical model answers a caller.
pub(crate) type Answer = Result<baton_core::AccessGrant, baton_core::RefreshError>;

/// A re-authentication answer quoting the provider's reason.
pub(crate) fn reauth(reason: &str) -> Answer {
    Err(baton_core::RefreshError::ReauthenticationRequired(
        baton_core::ReauthReason::Rejected {
            provider_reason: reason.into(),
        },
    ))
}

/// A retry-later answer.
pub(crate) fn temporary(detail: &str) -> Answer {
    Err(baton_core::RefreshError::Temporary(
        baton_core::TemporaryReason::ProviderUnavailable {
            detail: detail.into(),
        },
    ))
}

/// Emits `effect` under the smallest id not awaiting a result, as the core
/// machine does, and records who awaits it.
pub(crate) fn emit<O>(
    awaiting: &mut std::collections::BTreeMap<baton_core::EffectId, O>,
    outbox: &mut std::collections::VecDeque<Effect>,
    owner: O,
    make: impl FnOnce(baton_core::EffectId) -> Effect,
) {
    let id = (0..)
        .map(baton_core::EffectId)
        .find(|id| !awaiting.contains_key(id))
        .expect("fewer than u64::MAX effects outstanding");
    awaiting.insert(id, owner);
    outbox.push_back(make(id));
}

/// An algorithm the world can run on every replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// Exchange, validate, then write unconditionally; any reject-like
    /// answer (a 403 included) empties the token and caches the failure
    /// unconditionally (failures 1, 2, 3).
    Naive,
    /// As `naive`, with the failure write guarded on the old refresh token
    /// (failure 5).
    OptimisticLock,
    /// Persist before validating; rate limits are not rejections (failure 6).
    SaveBeforeValidate,
    /// Re-read before caching a failure, with no empty-string guard
    /// (failure 7).
    RereadOnReject,
    /// Per-process single-flight; each caller's own (possibly stale) read
    /// decides the token the flight presents (failure 8).
    Singleflight,
    /// Single-flight plus a row lease; release clears any lease, the
    /// success write is unconditional (failure 9).
    DbLease,
    /// baton's machine: the algorithm of DESIGN.md section 2.
    Baton,
}

impl Algorithm {
    /// Whether every refresh takes a cross-replica lease on the row first
    /// (`single_flight` then holds per link overall, not only per replica).
    pub fn takes_lease(self) -> bool {
        matches!(self, Algorithm::Baton | Algorithm::DbLease)
    }

    /// Every algorithm modelled.
    pub const ALL: [Algorithm; 7] = [
        Algorithm::Naive,
        Algorithm::OptimisticLock,
        Algorithm::SaveBeforeValidate,
        Algorithm::RereadOnReject,
        Algorithm::Singleflight,
        Algorithm::DbLease,
        Algorithm::Baton,
    ];

    /// The name scenarios use.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Naive => "naive",
            Algorithm::OptimisticLock => "optimistic_lock",
            Algorithm::SaveBeforeValidate => "save_before_validate",
            Algorithm::RereadOnReject => "reread_on_reject",
            Algorithm::Singleflight => "singleflight",
            Algorithm::DbLease => "db_lease",
            Algorithm::Baton => "baton",
        }
    }

    /// A fresh machine of this algorithm (one process, empty memory).
    pub fn machine(self, config: Config) -> AnyMachine {
        let variant = |validate_before_write, guarded, rate_limit_is_rejection, reread| {
            AnyMachine::PerCaller(PerCaller::new(
                Variant {
                    validate_before_write,
                    guarded_failure_write: guarded,
                    rate_limit_is_rejection,
                    reread_on_reject: reread,
                },
                config.clone(),
            ))
        };
        match self {
            Algorithm::Naive => variant(true, false, true, false),
            Algorithm::OptimisticLock => variant(true, true, true, false),
            Algorithm::SaveBeforeValidate => variant(false, true, false, false),
            Algorithm::RereadOnReject => variant(false, true, false, true),
            Algorithm::Singleflight => AnyMachine::Flighted(Flighted::new(false, config)),
            Algorithm::DbLease => AnyMachine::Flighted(Flighted::new(true, config)),
            Algorithm::Baton => AnyMachine::Baton(Machine::new(config)),
        }
    }

    /// Whether the algorithm validates new tokens with an API call.
    pub fn validates(self) -> bool {
        !matches!(self, Algorithm::Baton)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Algorithm::ALL.iter().map(|a| a.name()).collect();
                format!("unknown algorithm `{s}` (modelled: {})", names.join(", "))
            })
    }
}

/// A machine of any modelled algorithm.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AnyMachine {
    /// One of the per-caller historical algorithms.
    PerCaller(PerCaller),
    /// `singleflight` or `db_lease`.
    Flighted(Flighted),
    /// baton's machine.
    Baton(Machine),
}

impl RefreshMachine for AnyMachine {
    fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        match self {
            AnyMachine::PerCaller(m) => m.handle_input(now, input),
            AnyMachine::Flighted(m) => m.handle_input(now, input),
            AnyMachine::Baton(m) => m.handle_input(now, input),
        }
    }
    fn poll_output(&mut self) -> Option<Effect> {
        match self {
            AnyMachine::PerCaller(m) => m.poll_output(),
            AnyMachine::Flighted(m) => m.poll_output(),
            AnyMachine::Baton(m) => m.poll_output(),
        }
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        match self {
            AnyMachine::PerCaller(m) => m.poll_timeout(),
            AnyMachine::Flighted(m) => m.poll_timeout(),
            AnyMachine::Baton(m) => m.poll_timeout(),
        }
    }
    fn stage_for(&self, now: Timestamp, input: &Input) -> Option<Stage> {
        match self {
            AnyMachine::PerCaller(m) => m.stage_for(now, input),
            AnyMachine::Flighted(m) => m.stage_for(now, input),
            AnyMachine::Baton(m) => RefreshMachine::stage_for(m, now, input),
        }
    }
}
