//! One link's refresh in one process: the steps of DESIGN.md section 2 as a
//! small state machine. Each function here decides the next step from what
//! just happened; [`crate::machine`] owns the bookkeeping (ids, callers,
//! the outbox) around it.

mod exchange;
mod lease;
pub(crate) mod results;
mod write;

use crate::config::{SecondPresentation, ServerErrorAfterSend};
use crate::error::{ReauthReason, RefreshError, TemporaryReason};
use crate::ids::{CallerId, EffectId, LinkId};
use crate::io::{Effect, ExchangeOutcome, TokenSet};
use crate::machine::Machine;
use crate::row::{
    AccessGrant, CachedFailure, Change, Expect, Guard, Lease, LeaseMark, StoredLink, Update, Write,
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
    /// A settling write failed in the store, and may have landed anyway:
    /// read the row and settle against it.
    RetrySettle(Settle),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Wake {
    ReRead,
    RetryPersist(Persist),
    /// Read again to learn whether a failed lease write landed.
    ResolveLease {
        lease: Lease,
        reason: String,
    },
    /// Read the row again, and settle against it, after a settling write
    /// failed in the store.
    RetrySettle(Settle),
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
    /// When the lease we presented under expires: until then a failed
    /// write is retried quickly, before others judge the lease.
    pub(crate) lease_expires_at: Timestamp,
    pub(crate) attempts: u32,
}

/// What a settling write does to the cached failure.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FailureChange {
    Keep,
    CacheRejected(String),
    /// The token was (or may have been) presented under this lease, and
    /// nobody knows what the provider did.
    CacheOutcomeUnknown(LeaseMark),
    /// Our presentation was answered without consuming the token, so an
    /// `OutcomeUnknown` cached about it is unfounded.
    ClearOutcomeUnknown,
    /// Another replica recorded an unknown outcome under a lease of ours
    /// that we know the token was not consumed under (we never presented,
    /// or were answered without consuming): that record alone is unfounded.
    /// The flight goes on from the cleared row.
    ClearUnfounded(LeaseMark),
}

impl FailureChange {
    fn applied_to(&self, current: &Option<CachedFailure>) -> Option<CachedFailure> {
        match self {
            FailureChange::Keep => current.clone(),
            FailureChange::CacheRejected(reason) => Some(CachedFailure::Rejected {
                reason: reason.clone(),
            }),
            // A rejection someone already recorded is the better knowledge.
            FailureChange::CacheOutcomeUnknown(mark) => {
                Some(current.clone().unwrap_or(CachedFailure::OutcomeUnknown {
                    lease: Some(mark.clone()),
                }))
            }
            FailureChange::ClearOutcomeUnknown => match current {
                Some(CachedFailure::OutcomeUnknown { .. }) => None,
                other => other.clone(),
            },
            FailureChange::ClearUnfounded(ours) => match current {
                Some(CachedFailure::OutcomeUnknown { lease: Some(mark) }) if mark == ours => None,
                other => other.clone(),
            },
        }
    }

    fn caches(&self) -> bool {
        matches!(
            self,
            FailureChange::CacheRejected(_) | FailureChange::CacheOutcomeUnknown(_)
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

    /// A settle that removes a record of an unknown outcome judged under
    /// `ours`, a lease of ours the token was not consumed under; the flight
    /// goes on from the row it leaves. The answer is only for a store that
    /// fails the write.
    fn clear_unfounded(row: &StoredLink, ours: LeaseMark) -> Settle {
        Settle {
            presented: row
                .refresh_token
                .clone()
                .expect("checked by unfounded_record"),
            clear_lease: None,
            failure: FailureChange::ClearUnfounded(ours),
            answer: store_unavailable(
                "the store failed a write clearing an unfounded unknown-outcome record".into(),
            ),
            attempts: 0,
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
    /// Answer the callers waiting now, and carry on without them: work the
    /// store still needs done whoever waits for it.
    AnswerAndContinue(Answer, Step),
}

pub(crate) fn failure_answer(failure: &CachedFailure) -> RefreshError {
    RefreshError::ReauthenticationRequired(match failure {
        CachedFailure::Rejected { reason } => ReauthReason::Rejected {
            provider_reason: reason.clone(),
        },
        CachedFailure::OutcomeUnknown { .. } => ReauthReason::OutcomeUnknown,
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
        self.forget_reusable_over_other_tokens(link, &row);
        if holding.is_none() {
            if let Some(ours) = self.unfounded_record(link, &row) {
                let settle = Settle::clear_unfounded(&row, ours);
                return self.settle(link, now, settle, &row);
            }
        }
        // Something other than a fresh exchange decides the answer: give a
        // lease we took back unused, then answer.
        let decided = if let Some(grant) = row.access.as_ref().filter(|g| now < self.serve_until(g))
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
            // Ours to give back: the lease we just took, or one of ours
            // still in the row that we never presented under (left there
            // by a write that failed), which others would otherwise judge,
            // once expired, as a presentation of unknown outcome.
            let ours = holding.or_else(|| row.lease.clone().filter(|l| self.is_reusable(link, l)));
            return match ours {
                Some(lease) => self.settle(link, now, Settle::release(lease, answer), &row),
                None => Next::Finish(answer),
            };
        }
        let refresh = row.refresh_token.clone().expect("checked above");
        if let Some(lease) = holding {
            if now >= lease.expires_at {
                // It expired before we knew it was ours (a stall, or a
                // failed take resolved late): others may be taking it over
                // or recording it. Take a fresh one, guarded on this one,
                // rather than present under it. We never presented under
                // it, so a record another replica makes of it is unfounded.
                self.remember_reusable(link, lease.clone());
                return self.take_lease(link, now, refresh, Some(lease));
            }
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
                    failure: FailureChange::CacheOutcomeUnknown(expired.mark()),
                    answer: Err(RefreshError::ReauthenticationRequired(
                        ReauthReason::OutcomeUnknown,
                    )),
                    attempts: 0,
                };
                self.settle(link, now, settle, &row)
            }
        }
    }

    /// The record of an unknown outcome on `row` that we know is unfounded:
    /// it was judged under a lease of ours over the token beside it that the
    /// token was not consumed under — a lease whose take failed but landed
    /// while we never presented, or whose presentation was answered without
    /// consuming and whose release failed. (Another replica found it
    /// expired before we could resolve or release it.)
    pub(super) fn unfounded_record(&self, link: &LinkId, row: &StoredLink) -> Option<LeaseMark> {
        let Some(CachedFailure::OutcomeUnknown { lease: Some(mark) }) = &row.failure else {
            return None;
        };
        let reusable = &self.links.get(link)?.reusable_leases;
        reusable
            .iter()
            .any(|ours| {
                ours.mark() == *mark && row.refresh_token.as_ref() == Some(&ours.presenting)
            })
            .then(|| mark.clone())
    }

    pub(crate) fn read_failed(reason: String) -> Next {
        Next::Finish(store_unavailable(reason))
    }
}
