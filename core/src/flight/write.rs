//! The flight's writes: persisting new tokens (step 6) and settling — recording
//! what was learned and giving back the lease (step 7) — each by
//! compare-and-swap, with what a lost or failed write leads to.

use super::*;

impl Machine {
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

    pub(crate) fn persist_failed(
        &mut self,
        now: Timestamp,
        persist: Persist,
        reason: String,
    ) -> Next {
        let retry = Persist {
            attempts: persist.attempts + 1,
            ..persist
        };
        if retry.attempts <= self.config.persist_attempts {
            return Next::Continue(Step::Waiting {
                wake_at: now + self.config.store_retry_delay,
                then: Wake::RetryPersist(retry),
            });
        }
        // The store is down. The tokens still work for this process's
        // callers, so they get them (unless a stall outlived the access
        // token meanwhile); and this process holds the only copy of the
        // new refresh token — the one it presented is consumed — so it
        // keeps trying to store them until the store answers: quickly while
        // our lease keeps others waiting, slowly after.
        let answer = if now < self.serve_until(&retry.issued.access) {
            Ok(retry.issued.access.clone())
        } else {
            store_unavailable(reason)
        };
        let delay = if now + self.config.store_retry_delay < retry.lease_expires_at {
            self.config.store_retry_delay
        } else {
            self.config.lease_duration
        };
        Next::AnswerAndContinue(
            answer,
            Step::Waiting {
                wake_at: now + delay,
                then: Wake::RetryPersist(retry),
            },
        )
    }

    /// Settles against the row our own exchange should have left.
    pub(super) fn settle_expected(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        settle: Settle,
    ) -> Next {
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
        if let (FailureChange::CacheOutcomeUnknown(_), Some(judged)) =
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
            return self.settled(link, now, settle, row);
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

    pub(crate) fn settled(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        settle: Settle,
        row: &StoredLink,
    ) -> Next {
        if let FailureChange::ClearUnfounded(_) = settle.failure {
            // The record is gone (or another replica's has replaced it):
            // the refresh goes on from the row as it now is.
            return self.proceed(link, now, Some(row.clone()), None);
        }
        Next::Finish(settle.final_answer(&row.failure))
    }

    /// A settling write failed in the store (or the read to retry it did).
    /// If the token was certainly not consumed, our lease over it may be
    /// taken over by this process later.
    ///
    /// The lease it was to give back may still be in the row: walked away
    /// from, every other replica would take it, once expired, for a
    /// presentation of unknown outcome, and tell its callers to
    /// re-authenticate over a token that was answered without being
    /// consumed. So the callers get what we learned now, and the flight
    /// reads the row again after the store's retry delay and settles
    /// against what it finds (the write may have landed), for as long as
    /// the lease has not expired, or, for a settle that says the token was
    /// not consumed, until the store answers (see `settle_retry_delay`).
    pub(crate) fn settle_failed(&mut self, link: &LinkId, now: Timestamp, settle: Settle) -> Next {
        match &settle.clear_lease {
            Some(lease) if !settle.failure.caches() && lease.owner == self.config.owner => {
                self.remember_reusable(link, lease.clone())
            }
            _ => {}
        }
        match self.settle_retry_delay(now, &settle) {
            Some(delay) => Next::AnswerAndContinue(
                settle.answer.clone(),
                Step::Waiting {
                    wake_at: now + delay,
                    then: Wake::RetrySettle(settle),
                },
            ),
            // What we learned stands even though we could not record it.
            None => Next::Finish(settle.answer),
        }
    }

    /// When to retry a settle that failed in the store, if it still changes
    /// what others conclude. While its lease is live, always. Once it has
    /// expired, others record it as an unknown outcome: a settle that
    /// caches a failure says no better, but one that says the token was not
    /// consumed (ours: a release, a rate limit) clears that record, which
    /// names our lease — as does clearing such a record directly. Nobody
    /// else can, so those are retried until the store answers.
    fn settle_retry_delay(&self, now: Timestamp, settle: &Settle) -> Option<std::time::Duration> {
        match (&settle.failure, &settle.clear_lease) {
            (FailureChange::ClearUnfounded(_), _) => Some(self.config.lease_duration),
            (failure, Some(lease))
                if now + self.config.store_retry_delay < lease.expires_at
                    || (lease.owner == self.config.owner && !failure.caches()) =>
            {
                Some(self.retry_delay(now, lease))
            }
            _ => None,
        }
    }
}
