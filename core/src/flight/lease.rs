//! Step 4 of the algorithm: taking the refresh lease, and resolving a
//! lease write whose outcome the store did not report.

use super::*;

impl Machine {
    pub(super) fn take_lease(
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

    pub(crate) fn lease_failed(&mut self, link: &LinkId, lease: Lease, reason: String) -> Next {
        // The write may have landed; we never presented under it either way,
        // so it stays ours to take over even if the re-read fails too.
        self.remember_reusable(link, lease.clone());
        let id = self.read(link);
        Next::Continue(Step::Reading {
            id,
            purpose: ReadPurpose::ResolveLease { lease, reason },
        })
    }

    /// The re-read after a failed lease write: if the row holds our lease,
    /// the write landed and we go on as its holder; if it holds a record of
    /// an unknown outcome judged under our lease, the write landed and
    /// expired meanwhile; otherwise it did not, and the store's failure is
    /// the answer.
    pub(crate) fn lease_resolved(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        lease: Lease,
        reason: String,
        row: Option<StoredLink>,
    ) -> Next {
        if let Some(row) = &row {
            self.forget_reusable_over_other_tokens(link, row);
        }
        match row {
            Some(row) if row.lease.as_ref() == Some(&lease) => {
                self.forget_reusable(link, &lease);
                self.proceed(link, now, Some(row), Some(lease))
            }
            // It landed, and expired before we could read it back: another
            // replica recorded it as a presentation of unknown outcome. We
            // never presented under it, so we clear that record and go on.
            Some(row) if self.unfounded_record(link, &row).is_some() => {
                self.proceed(link, now, Some(row), None)
            }
            // It did not land, but the row holds an older lease of ours we
            // never presented under (a take that expired before we knew it
            // landed, re-taken): walked away from, it would be judged an
            // unknown outcome once expired. The callers are told now; the
            // flight reads again after a delay, and takes or releases it.
            Some(row)
                if row
                    .lease
                    .as_ref()
                    .is_some_and(|l| self.is_reusable(link, l)) =>
            {
                Next::AnswerAndContinue(
                    store_unavailable(reason),
                    Step::Waiting {
                        wake_at: now + self.retry_delay(now, &lease),
                        then: Wake::ReRead,
                    },
                )
            }
            _ => Next::Finish(store_unavailable(reason)),
        }
    }

    /// The read that was to resolve a failed lease write failed too. Our
    /// lease may be in the row: walked away from, every other replica would
    /// take it, once expired, for a presentation of unknown outcome, and
    /// tell its callers to re-authenticate over a token nobody presented.
    /// So the callers are told the store is unavailable now, and the flight
    /// asks again until the store answers: before the lease expires, to go
    /// on under it; after, to clear the record another replica made of it
    /// (which names the lease, so only we can tell it is unfounded). If the
    /// lease turns out to be ours, the refresh goes on, for whoever asks
    /// next.
    pub(crate) fn resolve_failed(&mut self, now: Timestamp, lease: Lease, reason: String) -> Next {
        let wake_at = now + self.retry_delay(now, &lease);
        let answer = store_unavailable(reason.clone());
        Next::AnswerAndContinue(
            answer,
            Step::Waiting {
                wake_at,
                then: Wake::ResolveLease { lease, reason },
            },
        )
    }

    /// How long to wait before asking the store again about `lease`, a
    /// lease of ours whose write failed: the store's retry delay while the
    /// lease could still be used or released before others judge it; once
    /// it has expired, the resolution races nobody, so once per lease
    /// duration, which keeps a long outage cheap.
    pub(super) fn retry_delay(&self, now: Timestamp, lease: &Lease) -> std::time::Duration {
        if now + self.config.store_retry_delay < lease.expires_at {
            self.config.store_retry_delay
        } else {
            self.config.lease_duration
        }
    }

    pub(super) fn is_reusable(&self, link: &LinkId, lease: &Lease) -> bool {
        self.links
            .get(link)
            .is_some_and(|s| s.reusable_leases.contains(lease))
    }

    /// Notes `lease`, ours, as one the token was certainly not consumed
    /// under.
    pub(super) fn remember_reusable(&mut self, link: &LinkId, lease: Lease) {
        let reusable = &mut self.links.entry(link.clone()).or_default().reusable_leases;
        if !reusable.contains(&lease) {
            reusable.push(lease);
        }
    }

    /// We hold `lease` after all, and are about to present under it.
    pub(super) fn forget_reusable(&mut self, link: &LinkId, lease: &Lease) {
        if let Some(state) = self.links.get_mut(link) {
            state.reusable_leases.retain(|l| l != lease);
        }
    }

    /// A row holding another refresh token makes every lease we remember
    /// over an older one moot: no record about them can be written any more
    /// (a record describes the token beside it), and tokens never come back.
    pub(super) fn forget_reusable_over_other_tokens(&mut self, link: &LinkId, row: &StoredLink) {
        if let Some(state) = self.links.get_mut(link) {
            if !state.reusable_leases.is_empty() {
                state
                    .reusable_leases
                    .retain(|l| row.refresh_token.as_ref() == Some(&l.presenting));
            }
        }
    }
}
