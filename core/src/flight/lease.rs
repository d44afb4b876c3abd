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

    /// The read that was to resolve a failed lease write failed too. Our
    /// lease may be in the row: walked away from, every other replica would
    /// take it, once expired, for a presentation of unknown outcome, and
    /// tell its callers to re-authenticate over a token nobody presented.
    /// So the callers are told the store is unavailable now, and the flight
    /// asks again after the store's retry delay, for as long as the lease
    /// has not expired; past that, what it learns no longer changes what
    /// the others conclude. If the lease turns out to be ours, the refresh
    /// goes on under it, for whoever asks next.
    pub(crate) fn resolve_failed(&mut self, now: Timestamp, lease: Lease, reason: String) -> Next {
        let wake_at = now + self.config.store_retry_delay;
        let answer = store_unavailable(reason.clone());
        if wake_at >= lease.expires_at {
            return Next::Finish(answer);
        }
        Next::AnswerAndContinue(
            answer,
            Step::Waiting {
                wake_at,
                then: Wake::ResolveLease { lease, reason },
            },
        )
    }

    pub(super) fn is_reusable(&self, link: &LinkId, lease: &Lease) -> bool {
        self.links.get(link).and_then(|s| s.reusable_lease.as_ref()) == Some(lease)
    }
}
