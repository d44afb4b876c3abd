//! The algorithms the harness runs, behind one [`baton_core::RefreshMachine`]
//! interface: baton's own machine, and (as they are modelled) the
//! historical algorithms of DESIGN.md section 5 — the bug zoo.

use baton_core::{Effect, Machine};

use crate::registry::Registration;

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

pub use crate::registry::{Algorithm, AnyMachine};

/// The built-in algorithms, registered through the same door as a user's
/// ([`crate::registry::register`]), in the order of [`Algorithm`]'s
/// constants.
pub(crate) fn builtin() -> Vec<Registration> {
    let variant = |name: &str, description: &str, variant: Variant| {
        Registration::new(name, move |config| PerCaller::new(variant, config)).describe(description)
    };
    let per_caller = |validate_before_write,
                      guarded_failure_write,
                      rate_limit_is_rejection,
                      reread_on_reject| Variant {
        validate_before_write,
        guarded_failure_write,
        rate_limit_is_rejection,
        reread_on_reject,
    };
    vec![
        variant(
            "naive",
            "exchange, validate, write unconditionally; any reject-like answer caches a failure",
            per_caller(true, false, true, false),
        ),
        variant(
            "optimistic_lock",
            "as naive, with the failure write guarded on the old refresh token",
            per_caller(true, true, true, false),
        ),
        variant(
            "save_before_validate",
            "persist before validating; rate limits are not rejections",
            per_caller(false, true, false, false),
        ),
        variant(
            "reread_on_reject",
            "re-read before caching a failure, with no empty-string guard",
            per_caller(false, true, false, true),
        ),
        Registration::new("singleflight", |config| Flighted::new(false, config)).describe(
            "per-process single-flight; each caller's own read picks the token presented",
        ),
        Registration::new("db_lease", |config| Flighted::new(true, config))
            .describe("single-flight plus a row lease; the success write is unconditional")
            .takes_lease(true),
        Registration::new("baton", Machine::new)
            .describe("baton's machine: the algorithm of DESIGN.md section 2")
            .takes_lease(true),
    ]
}
