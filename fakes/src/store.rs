//! An in-memory link store with the contract of the Postgres store: one row
//! per link, reads, and compare-and-swap writes with exactly the reference
//! semantics of [`StoredLink::compare_and_swap`], plus hooks to make the next
//! read or write fail the way a database connection does.
//!
//! Like the fake providers it is part of the explorer's hashed state, so it
//! holds the rows and the pending faults and nothing else.

use crate::vecmap::VecMap;

use baton_core::{CasOutcome, Effect, Input, LinkId, StoreFailure, StoredLink, Write};

/// A failure the world injects into the store's next operation of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StoreFault {
    /// The next read fails.
    FailNextRead,
    /// The next compare-and-swap fails.
    FailNextWrite {
        /// Whether the write takes effect anyway (its guard permitting): a
        /// commit whose acknowledgement was lost. The caller is told it
        /// failed either way, in the same words.
        applied: bool,
    },
}

/// The message of a failed read. Like every store failure, it never
/// contains token text.
const READ_FAILED: &str = "store read failed: connection reset";

/// The message of a failed write, the same whether or not the write landed,
/// since a client whose commit acknowledgement is lost cannot tell.
const WRITE_FAILED: &str = "store write failed: connection reset during commit";

/// The in-memory store: rows keyed by link, and the faults waiting for the
/// next read and the next write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct InMemoryStore {
    rows: VecMap<LinkId, StoredLink>,
    fail_next_read: bool,
    /// `Some(applied)` when the next write is to fail.
    fail_next_write: Option<bool>,
}

impl InMemoryStore {
    /// An empty store with no fault pending.
    pub fn new() -> Self {
        InMemoryStore::default()
    }

    /// Stores `row` for `link`, replacing any row it had (the application
    /// linking an account; never a fault target).
    pub fn insert(&mut self, link: LinkId, row: StoredLink) {
        self.rows.insert(link, row);
    }

    /// Removes the row of `link`, if any (the user unlinking the account;
    /// never a fault target). Writes to it lose from now on: a
    /// compare-and-swap never creates a row.
    pub fn remove(&mut self, link: &LinkId) -> Option<StoredLink> {
        self.rows.remove(link)
    }

    /// The row of `link` as it is, for checkers and reports; never fails.
    pub fn row(&self, link: &LinkId) -> Option<&StoredLink> {
        self.rows.get(link)
    }

    /// Every row, in link order.
    pub fn rows(&self) -> impl Iterator<Item = (&LinkId, &StoredLink)> {
        self.rows.iter()
    }

    /// Reads the row of `link` as a machine would: fails if a
    /// [`StoreFault::FailNextRead`] is pending (consuming it).
    pub fn read(&mut self, link: &LinkId) -> Result<Option<StoredLink>, StoreFailure> {
        if std::mem::take(&mut self.fail_next_read) {
            return Err(StoreFailure {
                reason: READ_FAILED.into(),
            });
        }
        Ok(self.rows.get(link).cloned())
    }

    /// Compare-and-swap on the row of `link`, with the semantics of
    /// [`StoredLink::compare_and_swap`]. Fails if a
    /// [`StoreFault::FailNextWrite`] is pending (consuming it); if that
    /// fault says `applied`, the write takes effect first.
    pub fn compare_and_swap(
        &mut self,
        link: &LinkId,
        write: &Write,
    ) -> Result<CasOutcome, StoreFailure> {
        match self.fail_next_write.take() {
            None => Ok(self.apply(link, write)),
            Some(applied) => {
                if applied {
                    self.apply(link, write);
                }
                Err(StoreFailure {
                    reason: WRITE_FAILED.into(),
                })
            }
        }
    }

    /// Arms `fault` for the next operation of its kind. Arming a fault of a
    /// kind already pending replaces it: at most one read fault and one
    /// write fault wait at a time.
    pub fn inject(&mut self, fault: StoreFault) {
        match fault {
            StoreFault::FailNextRead => self.fail_next_read = true,
            StoreFault::FailNextWrite { applied } => self.fail_next_write = Some(applied),
        }
    }

    /// Carries out a store effect ([`Effect::ReadLink`] or
    /// [`Effect::CompareAndSwap`]) and returns the input to hand back to the
    /// machine: [`Input::LinkRead`], [`Input::CompareAndSwapWon`],
    /// [`Input::CompareAndSwapLost`] or [`Input::StoreFailed`]. `None` for
    /// effects that are not the store's.
    pub fn carry_out(&mut self, effect: &Effect) -> Option<Input> {
        Some(match effect {
            Effect::ReadLink { id, link } => match self.read(link) {
                Ok(row) => Input::LinkRead { id: *id, row },
                Err(failure) => Input::StoreFailed { id: *id, failure },
            },
            Effect::CompareAndSwap { id, link, write } => {
                match self.compare_and_swap(link, write) {
                    Ok(CasOutcome::Won(row)) => Input::CompareAndSwapWon { id: *id, row },
                    Ok(CasOutcome::Lost(row)) => Input::CompareAndSwapLost { id: *id, row },
                    Err(failure) => Input::StoreFailed { id: *id, failure },
                }
            }
            Effect::Exchange { .. } | Effect::Validate { .. } | Effect::Answer { .. } => {
                return None
            }
        })
    }

    /// The reference compare-and-swap on `link`'s row, in place.
    fn apply(&mut self, link: &LinkId, write: &Write) -> CasOutcome {
        match self.rows.get_mut(link) {
            Some(row) => {
                let mut slot = Some(std::mem::take(row));
                let outcome = StoredLink::compare_and_swap(&mut slot, write);
                *row = slot.expect("a compare-and-swap never deletes a row");
                outcome
            }
            None => StoredLink::compare_and_swap(&mut None, write),
        }
    }
}

#[cfg(test)]
mod tests {
    use baton_core::{
        AccessGrant, AccessToken, CachedFailure, Change, EffectId, Guard, RefreshToken, Timestamp,
        Update, WriteIntent,
    };

    use super::*;

    fn link() -> LinkId {
        LinkId::new("github", "octocat")
    }

    fn row(refresh: &str) -> StoredLink {
        StoredLink {
            access: Some(AccessGrant {
                token: AccessToken::new(format!("access-for-{refresh}")),
                expires_at: Timestamp::from_millis(1_000),
                lifetime: None,
            }),
            refresh_token: Some(RefreshToken::new(refresh)),
            failure: None,
            lease: None,
        }
    }

    /// Replace the refresh token `from` with `to`, guarded on `from`.
    fn rotate(from: &str, to: &str) -> Write {
        Write {
            intent: WriteIntent::StoreTokens,
            guard: Guard::refresh_token(Some(RefreshToken::new(from))),
            update: Update {
                refresh_token: Change::Set(Some(RefreshToken::new(to))),
                failure: Change::Set(None),
                ..Update::NOTHING
            },
        }
    }

    fn store_with(refresh: &str) -> InMemoryStore {
        let mut store = InMemoryStore::new();
        store.insert(link(), row(refresh));
        store
    }

    fn holding(refresh: &str) -> StoredLink {
        let mut expected = row("secret-R0");
        expected.refresh_token = Some(RefreshToken::new(refresh));
        expected
    }

    #[test]
    fn compare_and_swap_wins_when_the_guard_holds() {
        let mut store = store_with("secret-R0");
        assert_eq!(
            store.compare_and_swap(&link(), &rotate("secret-R0", "secret-R1")),
            Ok(CasOutcome::Won(holding("secret-R1")))
        );
        assert_eq!(store.row(&link()), Some(&holding("secret-R1")));
    }

    #[test]
    fn compare_and_swap_loses_when_the_guard_fails() {
        let mut store = store_with("secret-R1");
        assert_eq!(
            store.compare_and_swap(&link(), &rotate("secret-R0", "secret-R2")),
            Ok(CasOutcome::Lost(Some(row("secret-R1"))))
        );
        assert_eq!(store.row(&link()), Some(&row("secret-R1")));
    }

    #[test]
    fn compare_and_swap_on_a_missing_row_loses_and_creates_nothing() {
        let mut store = InMemoryStore::new();
        let unconditional = Write {
            guard: Guard::ANY,
            ..rotate("secret-R0", "secret-R1")
        };
        assert_eq!(
            store.compare_and_swap(&link(), &unconditional),
            Ok(CasOutcome::Lost(None))
        );
        assert_eq!(store.row(&link()), None);
        assert_eq!(store, InMemoryStore::new());
        assert_eq!(store.read(&link()), Ok(None));
    }

    #[test]
    fn a_read_fault_fails_exactly_the_next_read() {
        let mut store = store_with("secret-R0");
        store.inject(StoreFault::FailNextRead);
        let failure = store.read(&link()).unwrap_err();
        assert_eq!(failure.reason, READ_FAILED);
        assert!(!failure.reason.contains("secret"));
        assert_eq!(store.read(&link()), Ok(Some(row("secret-R0"))));
        // Writes were never affected.
        store.inject(StoreFault::FailNextRead);
        assert!(store
            .compare_and_swap(&link(), &rotate("secret-R0", "secret-R1"))
            .is_ok());
        assert!(store.read(&link()).is_err());
    }

    #[test]
    fn a_write_fault_that_applies_lands_and_reports_failure() {
        let mut store = store_with("secret-R0");
        store.inject(StoreFault::FailNextWrite { applied: true });
        let failure = store
            .compare_and_swap(&link(), &rotate("secret-R0", "secret-R1"))
            .unwrap_err();
        assert_eq!(failure.reason, WRITE_FAILED);
        assert!(!failure.reason.contains("secret"));
        assert_eq!(store.row(&link()), Some(&holding("secret-R1")));
        // The fault is spent.
        assert_eq!(
            store.compare_and_swap(&link(), &rotate("secret-R1", "secret-R2")),
            Ok(CasOutcome::Won(holding("secret-R2")))
        );
    }

    #[test]
    fn an_applied_write_fault_still_respects_the_guard() {
        let mut store = store_with("secret-R1");
        store.inject(StoreFault::FailNextWrite { applied: true });
        assert!(store
            .compare_and_swap(&link(), &rotate("secret-R0", "secret-R2"))
            .is_err());
        assert_eq!(store.row(&link()), Some(&row("secret-R1")));
    }

    #[test]
    fn a_write_fault_that_does_not_apply_changes_nothing() {
        let mut store = store_with("secret-R0");
        store.inject(StoreFault::FailNextWrite { applied: false });
        let failure = store
            .compare_and_swap(&link(), &rotate("secret-R0", "secret-R1"))
            .unwrap_err();
        // Indistinguishable from the applied case.
        assert_eq!(failure.reason, WRITE_FAILED);
        assert_eq!(store.row(&link()), Some(&row("secret-R0")));
        assert_eq!(store, store_with("secret-R0"));
        // Reads were never affected.
        store.inject(StoreFault::FailNextWrite { applied: false });
        assert_eq!(store.read(&link()), Ok(Some(row("secret-R0"))));
    }

    #[test]
    fn a_later_write_fault_replaces_a_pending_one() {
        let mut store = store_with("secret-R0");
        store.inject(StoreFault::FailNextWrite { applied: true });
        store.inject(StoreFault::FailNextWrite { applied: false });
        assert!(store
            .compare_and_swap(&link(), &rotate("secret-R0", "secret-R1"))
            .is_err());
        assert_eq!(store.row(&link()), Some(&row("secret-R0")));
        assert!(store
            .compare_and_swap(&link(), &rotate("secret-R0", "secret-R1"))
            .is_ok());
    }

    #[test]
    fn pending_faults_are_part_of_the_state() {
        let clean = store_with("secret-R0");
        let mut armed = clean.clone();
        armed.inject(StoreFault::FailNextRead);
        assert_ne!(armed, clean);
        let mut other = clean.clone();
        other.inject(StoreFault::FailNextWrite { applied: true });
        assert_ne!(other, clean);
        assert_ne!(other, armed);
    }

    #[test]
    fn carry_out_answers_store_effects_with_machine_inputs() {
        let mut store = store_with("secret-R0");
        let id = EffectId(7);
        let read = Effect::ReadLink { id, link: link() };
        assert_eq!(
            store.carry_out(&read),
            Some(Input::LinkRead {
                id,
                row: Some(row("secret-R0"))
            })
        );
        assert_eq!(
            store.carry_out(&Effect::ReadLink {
                id,
                link: LinkId::new("github", "nobody")
            }),
            Some(Input::LinkRead { id, row: None })
        );
        store.inject(StoreFault::FailNextRead);
        assert_eq!(
            store.carry_out(&read),
            Some(Input::StoreFailed {
                id,
                failure: StoreFailure {
                    reason: READ_FAILED.into()
                }
            })
        );

        let cas = |write| Effect::CompareAndSwap {
            id,
            link: link(),
            write,
        };
        assert_eq!(
            store.carry_out(&cas(rotate("secret-R0", "secret-R1"))),
            Some(Input::CompareAndSwapWon {
                id,
                row: holding("secret-R1")
            })
        );
        assert_eq!(
            store.carry_out(&cas(rotate("secret-R0", "secret-R2"))),
            Some(Input::CompareAndSwapLost {
                id,
                row: Some(holding("secret-R1"))
            })
        );
        let cache_failure = Write {
            intent: WriteIntent::CacheFailure,
            guard: Guard::refresh_token(Some(RefreshToken::new("secret-R1"))),
            update: Update {
                failure: Change::Set(Some(CachedFailure::OutcomeUnknown { lease: None })),
                ..Update::NOTHING
            },
        };
        store.inject(StoreFault::FailNextWrite { applied: false });
        assert_eq!(
            store.carry_out(&cas(cache_failure)),
            Some(Input::StoreFailed {
                id,
                failure: StoreFailure {
                    reason: WRITE_FAILED.into()
                }
            })
        );
        assert_eq!(store.row(&link()), Some(&holding("secret-R1")));

        let not_ours = [
            Effect::Exchange {
                id,
                link: link(),
                refresh_token: RefreshToken::new("secret-R1"),
                deadline: Timestamp::ZERO,
            },
            Effect::Validate {
                id,
                link: link(),
                access_token: AccessToken::new("secret-A1"),
            },
            Effect::Answer {
                caller: baton_core::CallerId(1),
                link: link(),
                result: Err(baton_core::RefreshError::RetryAfter {
                    delay: std::time::Duration::from_secs(1),
                }),
            },
        ];
        for effect in &not_ours {
            assert_eq!(store.carry_out(effect), None);
        }
        assert_eq!(store.row(&link()), Some(&holding("secret-R1")));
    }

    #[test]
    fn insert_replaces_and_rows_lists_in_link_order() {
        let mut store = InMemoryStore::new();
        let bob = LinkId::new("github", "bob");
        let alice = LinkId::new("github", "alice");
        store.insert(bob.clone(), row("secret-R0"));
        store.insert(alice.clone(), row("secret-R5"));
        store.insert(bob.clone(), row("secret-R9"));
        let rows: Vec<_> = store.rows().collect();
        assert_eq!(
            rows,
            [(&alice, &row("secret-R5")), (&bob, &row("secret-R9"))]
        );
    }
}
