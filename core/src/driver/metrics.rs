//! Metrics through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`): what the coordinator sees of the machine's effects
//! and their results, counted without a token or a user id ever becoming a
//! label. Install any `metrics` recorder (Prometheus, OpenTelemetry, …) to
//! export them; without one every call is a no-op.
//!
//! | name | kind | labels | counts |
//! |---|---|---|---|
//! | `baton_presentations_total` | counter | `provider` | refresh tokens sent to the token endpoint (one per exchange effect) |
//! | `baton_exchanges_total` | counter | `provider`, `outcome` = `issued` \| `rejected` \| `rate_limited` \| `transient` \| `server_error` \| `outcome_unknown` | exchanges finished, by what the provider (or the network) did |
//! | `baton_lease_total` | counter | `provider`, `event` = `taken` \| `expired_over_same_token` \| `waited` | refresh leases this process won (`expired_over_same_token`: taken over another holder's expired lease on the same refresh token, whose outcome is then unknown); `waited`: wake-ups after waiting out another replica's lease (or a persist retry delay) |
//! | `baton_cached_failures_total` | counter | `provider`, `reason` = `rejected` \| `outcome_unknown` | failures this process recorded on the row, so that nobody presents that token again |
//! | `baton_callers_served` | histogram | `provider` | callers answered together by one step of the machine for one link: a refresh's waiters, or 1 |
//! | `baton_refresh_duration_seconds` | histogram | `provider`, `outcome` = `token` \| `error` | a slow-path `Refresher::access_token` call, from request to answer (the hot path is not timed) |
//!
//! `provider` is the link's provider name as the application configures
//! it; no label ever holds a user id or a token.

use std::collections::HashMap;

use crate::{
    CachedFailure, Change, Effect, EffectId, ExchangeOutcome, Expect, Input, LinkId, WriteIntent,
};

/// What a write in flight will count if it wins.
#[derive(Clone, Copy, Debug)]
enum Pending {
    Lease { takeover: bool },
    Failure { reason: &'static str },
}

/// The coordinator's bookkeeping for metrics: which effects in flight
/// count for what once their result comes back.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    pending: HashMap<EffectId, (LinkId, Pending)>,
}

impl Meter {
    /// An effect the machine emitted (`Answer`s are counted in batches by
    /// [`Meter::answers`]).
    pub(crate) fn effect(&mut self, effect: &Effect) {
        match effect {
            Effect::Exchange { link, .. } => {
                metrics::counter!("baton_presentations_total", "provider" => provider(link))
                    .increment(1);
            }
            Effect::CompareAndSwap { id, link, write } => {
                let pending = match write.intent {
                    WriteIntent::TakeLease => Pending::Lease {
                        // A lease taken over a lease someone else wrote.
                        takeover: matches!(&write.guard.lease, Expect::Exactly(Some(_))),
                    },
                    WriteIntent::CacheFailure => Pending::Failure {
                        reason: match &write.update.failure {
                            Change::Set(Some(CachedFailure::Rejected { .. })) => "rejected",
                            _ => "outcome_unknown",
                        },
                    },
                    _ => return,
                };
                self.pending.insert(*id, (link.clone(), pending));
            }
            _ => {}
        }
    }

    /// An input about to be fed to the machine.
    pub(crate) fn input(&mut self, input: &Input) {
        let Some(id) = input.effect_id() else {
            return;
        };
        let Some((link, pending)) = self.pending.remove(&id) else {
            return;
        };
        if !matches!(input, Input::CompareAndSwapWon { .. }) {
            return;
        }
        match pending {
            Pending::Lease { takeover } => {
                let event = if takeover {
                    "expired_over_same_token"
                } else {
                    "taken"
                };
                metrics::counter!("baton_lease_total", "provider" => provider(&link), "event" => event)
                    .increment(1);
            }
            Pending::Failure { reason } => {
                metrics::counter!(
                    "baton_cached_failures_total",
                    "provider" => provider(&link),
                    "reason" => reason
                )
                .increment(1);
            }
        }
    }

    /// The machine woke up after waiting: counted for each link whose
    /// flight was waiting, which the machine does not name, so under
    /// `provider` = `*`.
    pub(crate) fn waited(&self) {
        metrics::counter!("baton_lease_total", "provider" => "*", "event" => "waited").increment(1);
    }

    /// `count` callers of `link` answered by one step.
    pub(crate) fn answers(link: &LinkId, count: usize) {
        metrics::histogram!("baton_callers_served", "provider" => provider(link))
            .record(count as f64);
    }
}

/// An exchange finished for `link`.
pub(crate) fn exchanged(link: &LinkId, outcome: &ExchangeOutcome) {
    let outcome = match outcome {
        ExchangeOutcome::Issued(_) => "issued",
        ExchangeOutcome::Rejected { .. } => "rejected",
        ExchangeOutcome::RateLimited { .. } => "rate_limited",
        ExchangeOutcome::Transient { .. } => "transient",
        ExchangeOutcome::ServerError { .. } => "server_error",
        ExchangeOutcome::OutcomeUnknown => "outcome_unknown",
    };
    metrics::counter!("baton_exchanges_total", "provider" => provider(link), "outcome" => outcome)
        .increment(1);
}

/// A slow-path request for `link` took `seconds`.
pub(crate) fn refresh_duration(link: &LinkId, seconds: f64, ok: bool) {
    let outcome = if ok { "token" } else { "error" };
    metrics::histogram!(
        "baton_refresh_duration_seconds",
        "provider" => provider(link),
        "outcome" => outcome
    )
    .record(seconds);
}

fn provider(link: &LinkId) -> String {
    link.provider().to_owned()
}
