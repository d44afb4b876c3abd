//! One link's refresh in one process: the steps of DESIGN.md section 2 as a
//! small state machine. Each function here decides the next step from what
//! just happened; [`crate::machine`] owns the bookkeeping (ids, callers,
//! the outbox) around it.

use crate::config::{SecondPresentation, ServerErrorAfterSend};
use crate::error::{ReauthReason, RefreshError, TemporaryReason};
use crate::ids::{CallerId, EffectId, LinkId};
use crate::io::{Effect, ExchangeOutcome, TokenSet};
use crate::machine::Machine;
use crate::row::{
    AccessGrant, CachedFailure, Change, Expect, Guard, Lease, StoredLink, Update, Write,
    WriteIntent,
};
use crate::time::Timestamp;

/// A caller's answer.
pub(crate) type Answer = Result<AccessGrant, RefreshError>;

/// How many times a settling write may lose its compare-and-swap to other
/// writers before the flight gives up with [`TemporaryReason::Contention`].
/// Each loss means another writer made progress, so this only bounds
/// pathological churn.
const MAX_SETTLE_ATTEMPTS: u32 = 8;

/// A refresh token is presented at most this often by one flight (twice
/// only to providers where a second presentation is safe).
const MAX_PRESENTATIONS: u32 = 2;

/// A refresh in progress for one link in this process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Flight {
    /// Callers who get this flight's answer, in arrival order.
    pub(crate) waiters: Vec<CallerId>,
    pub(crate) step: Step,
}

/// Where a flight is. Every step but `Waiting` awaits exactly one effect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    Reading { id: EffectId, purpose: ReadPurpose },
    Waiting { wake_at: Timestamp, then: Wake },
    TakingLease { id: EffectId, lease: Lease },
    Exchanging { id: EffectId, exchange: Exchange },
    Persisting { id: EffectId, persist: Persist },
    Validating { id: EffectId, grant: AccessGrant },
    Settling { id: EffectId, settle: Settle },
}

impl Step {
    pub(crate) fn awaited(&self) -> Option<EffectId> {
        match self {
            Step::Reading { id, .. }
            | Step::TakingLease { id, .. }
            | Step::Exchanging { id, .. }
            | Step::Persisting { id, .. }
            | Step::Validating { id, .. }
            | Step::Settling { id, .. } => Some(*id),
            Step::Waiting { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ReadPurpose {
    /// Start of a flight, or a re-read while another replica holds the lease.
    Fresh,
    /// The provider rejected `presented`: adopt a winner's token or cache the
    /// failure.
    AfterRejection {
        presented: crate::secret::RefreshToken,
        reason: String,
        lease: Lease,
    },
    /// Taking `lease` failed in the store, and the write may have landed
    /// anyway (a commit whose connection reset): find out, as a database
    /// client resolves a commit of unknown outcome, instead of assuming it
    /// was lost — a lease left behind looks like a presentation of unknown
    /// outcome to every other replica once it expires.
    ResolveLease { lease: Lease, reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Wake {
    ReRead,
    RetryPersist(Persist),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Exchange {
    pub(crate) presented: crate::secret::RefreshToken,
    pub(crate) lease: Lease,
    /// When this flight first sent `presented`: a grace window runs from no
    /// earlier than this.
    pub(crate) first_sent_at: Timestamp,
    pub(crate) presentations: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Persist {
    pub(crate) presented: crate::secret::RefreshToken,
    pub(crate) issued: TokenSet,
    pub(crate) attempts: u32,
}

/// What a settling write does to the cached failure.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FailureChange {
    Keep,
    CacheRejected(String),
    CacheOutcomeUnknown,
    /// Our presentation was answered without consuming the token, so an
    /// `OutcomeUnknown` cached about it is unfounded.
    ClearOutcomeUnknown,
}

impl FailureChange {
    fn applied_to(&self, current: &Option<CachedFailure>) -> Option<CachedFailure> {
        match self {
            FailureChange::Keep => current.clone(),
            FailureChange::CacheRejected(reason) => Some(CachedFailure::Rejected {
                reason: reason.clone(),
            }),
            // A rejection someone already recorded is the better knowledge.
            FailureChange::CacheOutcomeUnknown => {
                Some(current.clone().unwrap_or(CachedFailure::OutcomeUnknown))
            }
            FailureChange::ClearOutcomeUnknown => match current {
                Some(CachedFailure::OutcomeUnknown) => None,
                other => other.clone(),
            },
        }
    }

    fn caches(&self) -> bool {
        matches!(
            self,
            FailureChange::CacheRejected(_) | FailureChange::CacheOutcomeUnknown
        )
    }
}

/// The last write of a flight that did not get new tokens: record what was
/// learned about `presented` and give back the lease, then answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Settle {
    pub(crate) presented: crate::secret::RefreshToken,
    /// A lease to remove if the row still holds exactly it: ours, or an
    /// expired one whose outcome we are recording.
    pub(crate) clear_lease: Option<Lease>,
    pub(crate) failure: FailureChange,
    pub(crate) answer: Answer,
    pub(crate) attempts: u32,
}

impl Settle {
    /// The row we expect after our own exchange under `lease`.
    fn expected_row(&self) -> StoredLink {
        StoredLink {
            access: None,
            refresh_token: Some(self.presented.clone()),
            failure: None,
            lease: self.clear_lease.clone(),
        }
    }

    fn final_answer(&self, failure: &Option<CachedFailure>) -> Answer {
        match failure {
            Some(f) if self.failure.caches() => Err(failure_answer(f)),
            _ => self.answer.clone(),
        }
    }

    /// A settle that only gives back a lease we never presented under.
    fn release(lease: Lease, answer: Answer) -> Settle {
        Settle {
            presented: lease.presenting.clone(),
            clear_lease: Some(lease),
            failure: FailureChange::Keep,
            answer,
            attempts: 0,
        }
    }
}

/// What a flight does next.
pub(crate) enum Next {
    Continue(Step),
    Finish(Answer),
}

pub(crate) fn failure_answer(failure: &CachedFailure) -> RefreshError {
    RefreshError::ReauthenticationRequired(match failure {
        CachedFailure::Rejected { reason } => ReauthReason::Rejected {
            provider_reason: reason.clone(),
        },
        CachedFailure::OutcomeUnknown => ReauthReason::OutcomeUnknown,
    })
}

fn provider_unavailable(detail: String) -> RefreshError {
    RefreshError::Temporary(TemporaryReason::ProviderUnavailable { detail })
}

fn store_unavailable(reason: String) -> Answer {
    Err(RefreshError::Temporary(TemporaryReason::StoreUnavailable {
        detail: reason,
    }))
}

impl Machine {
    /// Steps 2–4 of the algorithm on a row just read (or returned by a
    /// compare-and-swap). `holding` is our lease if the row was returned by
    /// taking it.
    pub(crate) fn proceed(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        row: Option<StoredLink>,
        holding: Option<Lease>,
    ) -> Next {
        let Some(row) = row else {
            return Next::Finish(Err(RefreshError::ReauthenticationRequired(
                ReauthReason::NotLinked,
            )));
        };
        // Something other than a fresh exchange decides the answer: give a
        // lease we took back unused, then answer.
        let decided = if let Some(grant) = row
            .access
            .as_ref()
            .filter(|g| now < self.serve_until(link, g.expires_at))
        {
            Some(Ok(grant.clone()))
        } else if row.refresh_token.is_none() {
            Some(Err(RefreshError::ReauthenticationRequired(
                row.failure.as_ref().map(failure_answer).map_or(
                    ReauthReason::NoRefreshToken,
                    |e| match e {
                        RefreshError::ReauthenticationRequired(r) => r,
                        _ => ReauthReason::NoRefreshToken,
                    },
                ),
            )))
        } else {
            row.failure.as_ref().map(|f| Err(failure_answer(f)))
        };
        if let Some(answer) = decided {
            return match holding {
                Some(lease) => self.settle(link, now, Settle::release(lease, answer), &row),
                None => Next::Finish(answer),
            };
        }
        let refresh = row.refresh_token.clone().expect("checked above");
        if let Some(lease) = holding {
            return self.exchange(
                link,
                now,
                Exchange {
                    presented: refresh,
                    lease,
                    first_sent_at: now,
                    presentations: 1,
                },
            );
        }
        match &row.lease {
            None => self.take_lease(link, now, refresh, None),
            Some(lease) if lease.presenting != refresh || self.is_reusable(link, lease) => {
                self.take_lease(link, now, refresh, Some(lease.clone()))
            }
            Some(lease) if now < lease.expires_at => Next::Continue(Step::Waiting {
                wake_at: lease.expires_at.min(now + self.config.lease_poll_interval),
                then: Wake::ReRead,
            }),
            Some(lease)
                if self
                    .config
                    .may_present_again(lease.expires_at - self.config.lease_duration, now) =>
            {
                self.take_lease(link, now, refresh, Some(lease.clone()))
            }
            Some(expired) => {
                // Its holder presented this token and may still be waiting
                // for the reply, or may have crashed: the outcome is unknown.
                let settle = Settle {
                    presented: refresh,
                    clear_lease: Some(expired.clone()),
                    failure: FailureChange::CacheOutcomeUnknown,
                    answer: Err(RefreshError::ReauthenticationRequired(
                        ReauthReason::OutcomeUnknown,
                    )),
                    attempts: 0,
                };
                self.settle(link, now, settle, &row)
            }
        }
    }

    fn take_lease(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        refresh: crate::secret::RefreshToken,
        observed: Option<Lease>,
    ) -> Next {
        let lease = Lease {
            owner: self.config.owner.clone(),
            presenting: refresh.clone(),
            expires_at: now + self.config.lease_duration,
        };
        let write = Write {
            intent: WriteIntent::TakeLease,
            guard: Guard {
                refresh_token: Expect::Exactly(Some(refresh)),
                failure: Expect::Exactly(None),
                lease: Expect::Exactly(observed),
            },
            update: Update {
                lease: Change::Set(Some(lease.clone())),
                ..Update::NOTHING
            },
        };
        let id = self.compare_and_swap(link, write);
        Next::Continue(Step::TakingLease { id, lease })
    }

    pub(crate) fn exchange(&mut self, link: &LinkId, now: Timestamp, exchange: Exchange) -> Next {
        let deadline = now + self.config.exchange_timeout;
        let refresh_token = exchange.presented.clone();
        let id = self.emit(|id| Effect::Exchange {
            id,
            link: link.clone(),
            refresh_token,
            deadline,
        });
        Next::Continue(Step::Exchanging { id, exchange })
    }

    /// Steps 5–8: what the provider's answer (or its absence) leads to.
    pub(crate) fn exchanged(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        exchange: Exchange,
        outcome: ExchangeOutcome,
    ) -> Next {
        let Exchange {
            presented, lease, ..
        } = &exchange;
        let not_consumed = |answer: Answer| Settle {
            presented: presented.clone(),
            clear_lease: Some(lease.clone()),
            failure: FailureChange::ClearOutcomeUnknown,
            answer,
            attempts: 0,
        };
        match outcome {
            ExchangeOutcome::Issued(issued) => {
                self.learn_lifetime(link, now, issued.access.expires_at);
                self.persist(
                    link,
                    Persist {
                        presented: presented.clone(),
                        issued,
                        attempts: 1,
                    },
                )
            }
            ExchangeOutcome::Rejected { reason } => {
                let id = self.read(link);
                Next::Continue(Step::Reading {
                    id,
                    purpose: ReadPurpose::AfterRejection {
                        presented: presented.clone(),
                        reason,
                        lease: lease.clone(),
                    },
                })
            }
            ExchangeOutcome::RateLimited { retry_after } => {
                let delay = retry_after.unwrap_or(self.config.default_retry_after);
                self.links.entry(link.clone()).or_default().quiet_until = Some(now + delay);
                let settle = not_consumed(Err(RefreshError::RetryAfter { delay }));
                self.settle_expected(link, now, settle)
            }
            ExchangeOutcome::Transient { reason } => {
                let settle = not_consumed(Err(provider_unavailable(reason)));
                self.settle_expected(link, now, settle)
            }
            ExchangeOutcome::ServerError { status, reason } => {
                match self.config.server_error_after_send {
                    // The team chose to believe a 5xx always comes before
                    // the provider touches the token.
                    ServerErrorAfterSend::Retry => {
                        let settle = not_consumed(Err(provider_unavailable(reason)));
                        self.settle_expected(link, now, settle)
                    }
                    ServerErrorAfterSend::Unknown => self.outcome_unknown(
                        link,
                        now,
                        exchange,
                        format!("HTTP {status} after the request was sent: {reason}"),
                    ),
                }
            }
            ExchangeOutcome::OutcomeUnknown => {
                self.outcome_unknown(link, now, exchange, "no reply to the exchange".into())
            }
        }
    }

    /// Step 5's unknown outcome: the token may have been consumed. Present
    /// it again only where the provider makes that safe; otherwise record
    /// that its outcome is unknown, so that no replica presents it again.
    fn outcome_unknown(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        exchange: Exchange,
        detail: String,
    ) -> Next {
        if exchange.presentations < MAX_PRESENTATIONS
            && self.config.may_present_again(exchange.first_sent_at, now)
        {
            let again = Exchange {
                presentations: exchange.presentations + 1,
                ..exchange
            };
            return self.exchange(link, now, again);
        }
        let Exchange {
            presented, lease, ..
        } = exchange;
        let settle = if self.config.second_presentation == SecondPresentation::AlwaysSafe {
            // A provider that never consumes a token lost nothing: the
            // token stays good, and the next request presents it again.
            Settle {
                presented,
                clear_lease: Some(lease),
                failure: FailureChange::ClearOutcomeUnknown,
                answer: Err(provider_unavailable(detail)),
                attempts: 0,
            }
        } else {
            Settle {
                presented,
                clear_lease: Some(lease),
                failure: FailureChange::CacheOutcomeUnknown,
                answer: Err(RefreshError::ReauthenticationRequired(
                    ReauthReason::OutcomeUnknown,
                )),
                attempts: 0,
            }
        };
        self.settle_expected(link, now, settle)
    }

    /// Step 6: persist before anything else, by compare-and-swap on the
    /// refresh token we presented.
    pub(crate) fn persist(&mut self, link: &LinkId, persist: Persist) -> Next {
        let issued = &persist.issued;
        let write = Write {
            intent: WriteIntent::StoreTokens,
            guard: Guard::refresh_token(Some(persist.presented.clone())),
            update: Update {
                access: Change::Set(Some(issued.access.clone())),
                refresh_token: Change::Set(Some(
                    issued
                        .refresh_token
                        .clone()
                        .unwrap_or_else(|| persist.presented.clone()),
                )),
                failure: Change::Set(None),
                // Any lease here guards the token this write replaces.
                lease: Change::Set(None),
            },
        };
        let id = self.compare_and_swap(link, write);
        Next::Continue(Step::Persisting { id, persist })
    }

    pub(crate) fn persisted(&mut self, link: &LinkId, grant: AccessGrant) -> Next {
        if self.config.validate_new_tokens {
            let access_token = grant.token.clone();
            let id = self.emit(|id| Effect::Validate {
                id,
                link: link.clone(),
                access_token,
            });
            Next::Continue(Step::Validating { id, grant })
        } else {
            Next::Finish(Ok(grant))
        }
    }

    /// Step 6's write lost: the row no longer holds the token we presented.
    /// Someone else wrote it — a presentation inside a grace window storing
    /// its own pair, the OAuth callback re-linking the account (a new
    /// family), the user unlinking it (no row). The store is the truth, so
    /// adopt what it holds, as a lost settle does: handing out our pair
    /// instead would answer with a family the user replaced, for a link
    /// that no longer exists, or — after a stall — with a token that has
    /// expired meanwhile, and would keep it as this process's hot token.
    /// Our pair stays live at the provider, unrecorded, as it did before.
    pub(crate) fn persist_lost(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        row: Option<StoredLink>,
    ) -> Next {
        self.proceed(link, now, row, None)
    }

    pub(crate) fn persist_failed(&mut self, now: Timestamp, persist: Persist) -> Next {
        if persist.attempts < self.config.persist_attempts {
            Next::Continue(Step::Waiting {
                wake_at: now + self.config.store_retry_delay,
                then: Wake::RetryPersist(Persist {
                    attempts: persist.attempts + 1,
                    ..persist
                }),
            })
        } else {
            // The store is gone; the tokens still work for this process's
            // callers, so hand them out rather than lose them too.
            Next::Finish(Ok(persist.issued.access))
        }
    }

    /// Settles against the row our own exchange should have left.
    fn settle_expected(&mut self, link: &LinkId, now: Timestamp, settle: Settle) -> Next {
        let row = settle.expected_row();
        self.settle(link, now, settle, &row)
    }

    /// Step 7's cache-or-adopt, and every lease release: one guarded write
    /// computed from `row`. A row whose refresh token moved on belongs to a
    /// winner, and is adopted.
    pub(crate) fn settle(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        settle: Settle,
        row: &StoredLink,
    ) -> Next {
        if row.refresh_token.as_ref() != Some(&settle.presented) {
            return self.proceed(link, now, Some(row.clone()), None);
        }
        if let (FailureChange::CacheOutcomeUnknown, Some(judged)) =
            (&settle.failure, &settle.clear_lease)
        {
            // We were about to record another holder's expired lease as an
            // unknown outcome, and the lease is gone: its holder came back
            // and settled the outcome itself (a release says the token was
            // not consumed). What we judged no longer exists: decide afresh.
            if judged.owner != self.config.owner && row.lease.as_ref() != Some(judged) {
                return self.proceed(link, now, Some(row.clone()), None);
            }
        }
        let failure = settle.failure.applied_to(&row.failure);
        let lease = match (&row.lease, &settle.clear_lease) {
            (Some(held), Some(ours)) if held == ours => None,
            (held, _) => held.clone(),
        };
        if failure == row.failure && lease == row.lease {
            return Next::Finish(settle.final_answer(&failure));
        }
        if settle.attempts >= MAX_SETTLE_ATTEMPTS {
            return Next::Finish(Err(RefreshError::Temporary(TemporaryReason::Contention)));
        }
        let intent = if failure == row.failure {
            WriteIntent::ReleaseLease
        } else if failure.is_some() {
            WriteIntent::CacheFailure
        } else {
            WriteIntent::ClearFailure
        };
        let write = Write {
            intent,
            guard: Guard {
                refresh_token: Expect::Exactly(Some(settle.presented.clone())),
                failure: Expect::Exactly(row.failure.clone()),
                lease: Expect::Exactly(row.lease.clone()),
            },
            update: Update {
                failure: Change::Set(failure),
                lease: Change::Set(lease),
                ..Update::NOTHING
            },
        };
        let id = self.compare_and_swap(link, write);
        Next::Continue(Step::Settling {
            id,
            settle: Settle {
                attempts: settle.attempts + 1,
                ..settle
            },
        })
    }

    pub(crate) fn settled(&mut self, settle: Settle, row: &StoredLink) -> Next {
        Next::Finish(settle.final_answer(&row.failure))
    }

    /// A settling write failed in the store. If the token was certainly not
    /// consumed, our lease over it may be taken over by this process later.
    pub(crate) fn settle_failed(&mut self, link: &LinkId, settle: Settle) -> Next {
        if !settle.failure.caches() {
            if let Some(lease) = settle.clear_lease.clone() {
                self.links.entry(link.clone()).or_default().reusable_lease = Some(lease);
            }
        }
        // What we learned stands even though we could not record it.
        Next::Finish(settle.answer)
    }

    pub(crate) fn lease_failed(&mut self, link: &LinkId, lease: Lease, reason: String) -> Next {
        // The write may have landed; we never presented under it either way,
        // so it stays ours to take over even if the re-read fails too.
        self.links.entry(link.clone()).or_default().reusable_lease = Some(lease.clone());
        let id = self.read(link);
        Next::Continue(Step::Reading {
            id,
            purpose: ReadPurpose::ResolveLease { lease, reason },
        })
    }

    /// The re-read after a failed lease write: if the row holds our lease,
    /// the write landed and we go on as its holder; otherwise it did not,
    /// and the store's failure is the answer.
    pub(crate) fn lease_resolved(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        lease: Lease,
        reason: String,
        row: Option<StoredLink>,
    ) -> Next {
        match row {
            Some(row) if row.lease.as_ref() == Some(&lease) => {
                self.links.entry(link.clone()).or_default().reusable_lease = None;
                self.proceed(link, now, Some(row), Some(lease))
            }
            _ => Next::Finish(store_unavailable(reason)),
        }
    }

    pub(crate) fn read_failed(reason: String) -> Next {
        Next::Finish(store_unavailable(reason))
    }

    fn is_reusable(&self, link: &LinkId, lease: &Lease) -> bool {
        self.links.get(link).and_then(|s| s.reusable_lease.as_ref()) == Some(lease)
    }
}
