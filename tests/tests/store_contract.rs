//! The store contract, written once and run against every [`LinkStore`]:
//! the in-memory store of `baton-fakes` (module `in_memory`) and
//! [`PgStore`] on a scratch PostgreSQL database, keeping tokens in
//! plaintext (module `postgres`) and sealed under a key ring (module
//! `postgres_encrypted`).
//!
//! Each check is a generic `async fn` over [`Harness`] (a store plus a way
//! to seed rows behind its back); the `contract!` macro turns it into one
//! `#[tokio::test]` per store. `matches_the_reference_semantics` replays
//! pseudo-random writes against the store and against
//! [`StoredLink::compare_and_swap`], the semantics every store must have.
//! The `postgres_only` module covers what only a real database can do:
//! killed connections, values the server rejects, rows that break the
//! schema's invariants.
//!
//! Without a reachable server the Postgres tests print `SKIPPED` and pass;
//! with `CI=true` they fail.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use baton_core::driver::LinkStore;
use baton_core::postgres::{PgStore, TokensAtRest};
use baton_core::{
    AccessGrant, AccessToken, CachedFailure, CasOutcome, Change, Expect, Guard, Lease, LinkId,
    OwnerId, RefreshToken, StoreFailure, StoredLink, Timestamp, TokenSet, Update, Write,
    WriteIntent,
};
use baton_fakes::{InMemoryStore, StoreFault};

// ---------------------------------------------------------------------------
// The stores under test.

/// A store the contract can run against: the port, plus seeding and
/// breaking from outside it.
trait Harness: LinkStore {
    /// Stores `row` for `link`, replacing any row (not a compare-and-swap).
    async fn seed(&self, link: &LinkId, row: &StoredLink);
    /// Removes the row of `link`, if any.
    async fn remove(&self, link: &LinkId);
    /// Makes at least the next read and the next write fail, the way a
    /// lost database connection does.
    async fn break_connection(&self);
}

/// The in-memory store behind a mutex, as a [`LinkStore`].
#[derive(Default)]
struct MemStore(Mutex<InMemoryStore>);

impl MemStore {
    fn lock(&self) -> MutexGuard<'_, InMemoryStore> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LinkStore for MemStore {
    async fn read(&self, link: &LinkId) -> Result<Option<StoredLink>, StoreFailure> {
        self.lock().read(link)
    }

    async fn enroll(&self, link: &LinkId, pair: &TokenSet) -> Result<(), StoreFailure> {
        self.lock()
            .insert(link.clone(), StoredLink::enrolled(pair.clone()));
        Ok(())
    }

    async fn compare_and_swap(
        &self,
        link: &LinkId,
        write: &Write,
    ) -> Result<CasOutcome, StoreFailure> {
        self.lock().compare_and_swap(link, write)
    }
}

impl Harness for MemStore {
    async fn seed(&self, link: &LinkId, row: &StoredLink) {
        self.lock().insert(link.clone(), row.clone());
    }

    async fn remove(&self, link: &LinkId) {
        let mut store = self.lock();
        let mut kept = InMemoryStore::new();
        for (other, row) in store.rows().filter(|(other, _)| *other != link) {
            kept.insert(other.clone(), row.clone());
        }
        *store = kept;
    }

    async fn break_connection(&self) {
        let mut store = self.lock();
        store.inject(StoreFault::FailNextRead);
        store.inject(StoreFault::FailNextWrite { applied: false });
    }
}

impl Harness for PgStore {
    async fn seed(&self, link: &LinkId, row: &StoredLink) {
        self.insert(link, row).await.expect("seeding a row");
    }

    async fn remove(&self, link: &LinkId) {
        self.delete(link).await.expect("deleting a row");
    }

    async fn break_connection(&self) {
        self.pool().close().await;
    }
}

/// One `#[tokio::test]` per check and store: `in_memory::<check>` and
/// `postgres::<check>`, the latter on a scratch database of its own.
macro_rules! contract {
    ($($check:ident),* $(,)?) => {
        mod in_memory {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&super::MemStore::default()).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let prefix = concat!("baton_", stringify!($check));
                    let Some(db) = baton_tests::pg::scratch_database(prefix).await else {
                        return;
                    };
                    let store = baton_core::postgres::PgStore::new(
                        db.pool().clone(),
                        baton_core::postgres::TokensAtRest::Plaintext,
                    );
                    super::$check(&store).await;
                    db.cleanup().await;
                }
            )*
        }

        /// The same checks on a store sealing its tokens; after each, no
        /// token column of the table holds anything but ciphertext.
        mod postgres_encrypted {
            $(
                #[tokio::test]
                async fn $check() {
                    let prefix = concat!("baton_enc_", stringify!($check));
                    let Some(db) = baton_tests::pg::scratch_database(prefix).await else {
                        return;
                    };
                    let store = baton_core::postgres::PgStore::new(
                        db.pool().clone(),
                        baton_core::postgres::TokensAtRest::Encrypted(
                            baton_tests::pg::test_key_ring(),
                        ),
                    );
                    super::$check(&store).await;
                    baton_tests::pg::assert_only_ciphertext(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

contract!(
    read_of_a_missing_row_is_none,
    rotating_the_refresh_token_wins_and_returns_the_new_row,
    a_stale_refresh_token_loses_and_returns_the_current_row,
    a_write_to_a_missing_row_loses_with_none,
    a_lease_is_taken_held_replaced_only_by_name_and_released,
    failures_are_cached_and_cleared,
    keep_leaves_fields_untouched,
    rows_are_isolated_per_link,
    store_failures_never_contain_token_text,
    matches_the_reference_semantics,
    enrolment_creates_or_replaces_the_whole_row,
);

// ---------------------------------------------------------------------------
// Values.

fn github() -> LinkId {
    LinkId::new("github", "octocat")
}

fn rt(text: &str) -> RefreshToken {
    RefreshToken::new(text)
}

fn grant(token: &str, at: u64) -> AccessGrant {
    AccessGrant {
        token: AccessToken::new(token),
        expires_at: Timestamp::from_millis(at),
        lifetime: None,
    }
}

/// A grant as baton's machine stores it after a refresh: with the lifetime
/// it measured (every store keeps it, NULL or not).
fn issued(token: &str, at: u64) -> AccessGrant {
    grant(token, at).with_lifetime(std::time::Duration::from_millis(1_500))
}

fn lease(owner: &str, presenting: &str, at: u64) -> Lease {
    Lease {
        owner: OwnerId::new(owner),
        presenting: rt(presenting),
        expires_at: Timestamp::from_millis(at),
    }
}

fn unknown_under(owner: &str, expires_at: u64) -> CachedFailure {
    CachedFailure::outcome_unknown_under(&lease(owner, "R0", expires_at))
}

fn rejected(reason: &str) -> CachedFailure {
    CachedFailure::Rejected {
        reason: reason.to_owned(),
    }
}

/// A row holding `refresh` and an access token derived from it.
fn row(refresh: &str) -> StoredLink {
    StoredLink {
        access: Some(grant(&format!("access-for-{refresh}"), 1_000)),
        refresh_token: Some(rt(refresh)),
        failure: None,
        lease: None,
    }
}

fn write(intent: WriteIntent, guard: Guard, update: Update) -> Write {
    Write {
        intent,
        guard,
        update,
    }
}

/// Stores the tokens issued for `from`, guarded on `from`.
fn rotate(from: &str, to: &str) -> Write {
    write(
        WriteIntent::StoreTokens,
        Guard::refresh_token(Some(rt(from))),
        Update {
            access: Change::Set(Some(issued(&format!("access-for-{to}"), 2_000))),
            refresh_token: Change::Set(Some(rt(to))),
            failure: Change::Set(None),
            lease: Change::Set(None),
        },
    )
}

/// Takes the lease `taken` if the row holds `expected` (and `presenting`).
fn take_lease(expected: Option<Lease>, taken: Lease) -> Write {
    write(
        WriteIntent::TakeLease,
        Guard {
            refresh_token: Expect::Exactly(Some(taken.presenting.clone())),
            failure: Expect::Exactly(None),
            lease: Expect::Exactly(expected),
        },
        Update {
            lease: Change::Set(Some(taken)),
            ..Update::NOTHING
        },
    )
}

/// A row, tokens and all, for assertion messages (test tokens are not
/// secrets, and `Debug` redacts them).
fn show(row: &Option<StoredLink>) -> String {
    let Some(row) = row else {
        return "no row".to_owned();
    };
    format!(
        "access={:?} refresh={:?} failure={:?} lease={:?}",
        row.access
            .as_ref()
            .map(|a| (a.token.expose_secret(), a.expires_at.as_millis())),
        row.refresh_token.as_ref().map(RefreshToken::expose_secret),
        row.failure,
        row.lease.as_ref().map(|l| (
            l.owner.as_str(),
            l.presenting.expose_secret(),
            l.expires_at.as_millis()
        )),
    )
}

fn show_outcome(outcome: &CasOutcome) -> String {
    match outcome {
        CasOutcome::Won(row) => format!("Won({})", show(&Some(row.clone()))),
        CasOutcome::Lost(row) => format!("Lost({})", show(row)),
    }
}

async fn cas<S: LinkStore>(store: &S, link: &LinkId, write: &Write) -> CasOutcome {
    store
        .compare_and_swap(link, write)
        .await
        .unwrap_or_else(|failure| panic!("{:?} failed: {}", write.intent, failure.reason))
}

async fn read<S: LinkStore>(store: &S, link: &LinkId) -> Option<StoredLink> {
    store
        .read(link)
        .await
        .unwrap_or_else(|failure| panic!("read failed: {}", failure.reason))
}

fn assert_won(outcome: CasOutcome, expected: &StoredLink) {
    assert!(
        outcome == CasOutcome::Won(expected.clone()),
        "expected Won({}), got {}",
        show(&Some(expected.clone())),
        show_outcome(&outcome)
    );
}

fn assert_lost(outcome: CasOutcome, expected: &Option<StoredLink>) {
    assert!(
        outcome == CasOutcome::Lost(expected.clone()),
        "expected Lost({}), got {}",
        show(expected),
        show_outcome(&outcome)
    );
}

// ---------------------------------------------------------------------------
// The contract.

/// The OAuth callback's write: the only one that creates a row, and the
/// only unconditional one. It leaves exactly [`StoredLink::enrolled`],
/// whatever was there (a lease, a cached failure, an older family), after
/// which the older family's writes lose.
async fn enrolment_creates_or_replaces_the_whole_row<S: Harness>(store: &S) {
    let link = github();
    let pair = TokenSet {
        access: issued("A-new", 5_000),
        refresh_token: Some(rt("R-new")),
    };
    store.enroll(&link, &pair).await.expect("enrolling");
    assert_eq!(
        read(store, &link).await,
        Some(StoredLink::enrolled(pair.clone()))
    );

    let mut busy = row("R-old");
    busy.failure = Some(CachedFailure::OutcomeUnknown { lease: None });
    busy.lease = Some(lease("replica-a", "R-old", 9_000));
    store.seed(&link, &busy).await;
    store.enroll(&link, &pair).await.expect("re-linking");
    let enrolled = StoredLink::enrolled(pair);
    assert_eq!(read(store, &link).await, Some(enrolled.clone()));
    // The older family's success write, guarded on the token it presented,
    // now loses and reports the new row.
    assert_eq!(
        cas(store, &link, &rotate("R-old", "R-old-2")).await,
        CasOutcome::Lost(Some(enrolled))
    );
}

async fn read_of_a_missing_row_is_none<S: Harness>(store: &S) {
    assert_eq!(read(store, &github()).await, None);
    store
        .seed(&LinkId::new("github", "hubot"), &row("R0"))
        .await;
    assert_eq!(read(store, &github()).await, None);
}

async fn rotating_the_refresh_token_wins_and_returns_the_new_row<S: Harness>(store: &S) {
    let link = github();
    store.seed(&link, &row("R0")).await;
    assert_eq!(read(store, &link).await, Some(row("R0")));

    let expected = StoredLink {
        access: Some(issued("access-for-R1", 2_000)),
        refresh_token: Some(rt("R1")),
        failure: None,
        lease: None,
    };
    assert_won(cas(store, &link, &rotate("R0", "R1")).await, &expected);
    assert_eq!(read(store, &link).await, Some(expected.clone()));

    // And on again from the new token.
    let next = StoredLink {
        access: Some(issued("access-for-R2", 2_000)),
        refresh_token: Some(rt("R2")),
        ..expected
    };
    assert_won(cas(store, &link, &rotate("R1", "R2")).await, &next);
}

async fn a_stale_refresh_token_loses_and_returns_the_current_row<S: Harness>(store: &S) {
    let link = github();
    store.seed(&link, &row("R1")).await;
    assert_lost(
        cas(store, &link, &rotate("R0", "R2")).await,
        &Some(row("R1")),
    );
    assert_eq!(read(store, &link).await, Some(row("R1")));

    // A guard expecting no refresh token loses to a row holding one, and
    // one expecting a token loses to a row holding none.
    let none = write(
        WriteIntent::StoreTokens,
        Guard::refresh_token(None),
        Update {
            refresh_token: Change::Set(Some(rt("R9"))),
            ..Update::NOTHING
        },
    );
    assert_lost(cas(store, &link, &none).await, &Some(row("R1")));
    let empty = StoredLink {
        refresh_token: None,
        ..row("R1")
    };
    store.seed(&link, &empty).await;
    assert_lost(
        cas(store, &link, &rotate("R1", "R2")).await,
        &Some(empty.clone()),
    );
    // The empty string is a token, not the absence of one.
    assert_lost(cas(store, &link, &rotate("", "R2")).await, &Some(empty));
}

async fn a_write_to_a_missing_row_loses_with_none<S: Harness>(store: &S) {
    let link = github();
    let unconditional = write(
        WriteIntent::StoreTokens,
        Guard::ANY,
        Update {
            access: Change::Set(Some(grant("A1", 5))),
            refresh_token: Change::Set(Some(rt("R1"))),
            failure: Change::Set(None),
            lease: Change::Set(None),
        },
    );
    assert_lost(cas(store, &link, &unconditional).await, &None);
    assert_lost(
        cas(store, &link, &take_lease(None, lease("a", "R0", 10))).await,
        &None,
    );
    assert_lost(
        cas(
            store,
            &link,
            &write(
                WriteIntent::ClearFailure,
                Guard::refresh_token(None),
                Update::NOTHING,
            ),
        )
        .await,
        &None,
    );
    // Nothing was created.
    assert_eq!(read(store, &link).await, None);

    // A deleted row is as missing as one never stored.
    store.seed(&link, &row("R0")).await;
    store.remove(&link).await;
    assert_lost(cas(store, &link, &unconditional).await, &None);
    assert_eq!(read(store, &link).await, None);
}

async fn a_lease_is_taken_held_replaced_only_by_name_and_released<S: Harness>(store: &S) {
    let link = github();
    store.seed(&link, &row("R0")).await;
    let a = lease("replica-a", "R0", 10_000);
    let b = lease("replica-b", "R0", 40_000);

    // Taken.
    let held = StoredLink {
        lease: Some(a.clone()),
        ..row("R0")
    };
    assert_won(cas(store, &link, &take_lease(None, a.clone())).await, &held);

    // Held: a second take expecting no lease loses, and sees the holder's.
    assert_lost(
        cas(store, &link, &take_lease(None, b.clone())).await,
        &Some(held.clone()),
    );

    // Expired: replaced only by a guard naming exactly that lease. Each
    // near miss (owner, presenting token, expiry) loses.
    for near_miss in [
        lease("replica-c", "R0", 10_000),
        lease("replica-a", "R1", 10_000),
        lease("replica-a", "R0", 10_001),
    ] {
        assert_lost(
            cas(
                store,
                &link,
                &write(
                    WriteIntent::TakeLease,
                    Guard {
                        lease: Expect::Exactly(Some(near_miss)),
                        ..Guard::ANY
                    },
                    Update {
                        lease: Change::Set(Some(b.clone())),
                        ..Update::NOTHING
                    },
                ),
            )
            .await,
            &Some(held.clone()),
        );
    }
    let replaced = StoredLink {
        lease: Some(b.clone()),
        ..row("R0")
    };
    assert_won(
        cas(store, &link, &take_lease(Some(a.clone()), b.clone())).await,
        &replaced,
    );

    // Released, by its holder only.
    let release = |holder: Lease| {
        write(
            WriteIntent::ReleaseLease,
            Guard {
                lease: Expect::Exactly(Some(holder)),
                ..Guard::ANY
            },
            Update {
                lease: Change::Set(None),
                ..Update::NOTHING
            },
        )
    };
    assert_lost(
        cas(store, &link, &release(a.clone())).await,
        &Some(replaced.clone()),
    );
    assert_won(cas(store, &link, &release(b)).await, &row("R0"));
    assert_eq!(read(store, &link).await, Some(row("R0")));
    // Free again.
    assert_won(cas(store, &link, &take_lease(None, a)).await, &held);
}

async fn failures_are_cached_and_cleared<S: Harness>(store: &S) {
    let link = github();
    store.seed(&link, &row("R0")).await;
    let cache = |expected: Option<CachedFailure>, cached: Option<CachedFailure>| {
        write(
            WriteIntent::CacheFailure,
            Guard {
                refresh_token: Expect::Exactly(Some(rt("R0"))),
                failure: Expect::Exactly(expected),
                lease: Expect::Any,
            },
            Update {
                failure: Change::Set(cached),
                ..Update::NOTHING
            },
        )
    };
    let with = |failure: CachedFailure| StoredLink {
        failure: Some(failure),
        ..row("R0")
    };

    // Rejected, with the provider's reason.
    let invalid_grant = rejected("invalid_grant: token revoked");
    assert_won(
        cas(store, &link, &cache(None, Some(invalid_grant.clone()))).await,
        &with(invalid_grant.clone()),
    );
    assert_eq!(read(store, &link).await, Some(with(invalid_grant.clone())));

    // The guard compares kind and reason.
    for wrong in [
        None,
        Some(rejected("invalid_grant")),
        Some(rejected("")),
        Some(CachedFailure::OutcomeUnknown { lease: None }),
        Some(unknown_under("replica-a", 9_000)),
    ] {
        assert_lost(
            cas(store, &link, &cache(wrong, None)).await,
            &Some(with(invalid_grant.clone())),
        );
    }

    // Outcome unknown, replacing it.
    assert_won(
        cas(
            store,
            &link,
            &cache(
                Some(invalid_grant.clone()),
                Some(CachedFailure::OutcomeUnknown { lease: None }),
            ),
        )
        .await,
        &with(CachedFailure::OutcomeUnknown { lease: None }),
    );
    assert_lost(
        cas(store, &link, &cache(Some(invalid_grant), None)).await,
        &Some(with(CachedFailure::OutcomeUnknown { lease: None })),
    );

    // Cleared.
    assert_won(
        cas(
            store,
            &link,
            &cache(Some(CachedFailure::OutcomeUnknown { lease: None }), None),
        )
        .await,
        &row("R0"),
    );
    assert_eq!(read(store, &link).await, Some(row("R0")));

    // An unknown outcome naming the lease it was judged under: the guard
    // compares the lease's owner and expiry too.
    let judged = unknown_under("replica-a", 9_000);
    assert_won(
        cas(store, &link, &cache(None, Some(judged.clone()))).await,
        &with(judged.clone()),
    );
    assert_eq!(read(store, &link).await, Some(with(judged.clone())));
    for wrong in [
        CachedFailure::OutcomeUnknown { lease: None },
        unknown_under("replica-b", 9_000),
        unknown_under("replica-a", 9_001),
    ] {
        assert_lost(
            cas(store, &link, &cache(Some(wrong), None)).await,
            &Some(with(judged.clone())),
        );
    }
    // Replacing it by a plain record clears the lease it named.
    let plain = CachedFailure::OutcomeUnknown { lease: None };
    assert_won(
        cas(store, &link, &cache(Some(judged), Some(plain.clone()))).await,
        &with(plain.clone()),
    );
    assert_won(
        cas(store, &link, &cache(Some(plain), None)).await,
        &row("R0"),
    );

    // An empty reason is still a reason.
    assert_won(
        cas(store, &link, &cache(None, Some(rejected("")))).await,
        &with(rejected("")),
    );
    assert_eq!(read(store, &link).await, Some(with(rejected(""))));
}

async fn keep_leaves_fields_untouched<S: Harness>(store: &S) {
    let link = github();
    let full = StoredLink {
        access: Some(grant("A0", 1_000)),
        refresh_token: Some(rt("R0")),
        failure: Some(rejected("invalid_grant")),
        lease: Some(lease("replica-a", "R0", 5_000)),
    };
    store.seed(&link, &full).await;

    // Nothing changed, unconditionally: a win that returns the row as is.
    assert_won(
        cas(
            store,
            &link,
            &write(WriteIntent::ClearFailure, Guard::ANY, Update::NOTHING),
        )
        .await,
        &full,
    );

    // Each field set alone leaves the other three as they were.
    let mut expected = full.clone();
    let updates = [
        Update {
            access: Change::Set(None),
            ..Update::NOTHING
        },
        Update {
            refresh_token: Change::Set(Some(rt("R1"))),
            ..Update::NOTHING
        },
        Update {
            failure: Change::Set(Some(CachedFailure::OutcomeUnknown { lease: None })),
            ..Update::NOTHING
        },
        Update {
            lease: Change::Set(None),
            ..Update::NOTHING
        },
        Update {
            access: Change::Set(Some(grant("A2", 9_000))),
            ..Update::NOTHING
        },
    ];
    for update in updates {
        expected.apply(&update);
        assert_won(
            cas(
                store,
                &link,
                &write(WriteIntent::StoreTokens, Guard::ANY, update),
            )
            .await,
            &expected,
        );
        assert_eq!(read(store, &link).await, Some(expected.clone()));
    }
}

async fn rows_are_isolated_per_link<S: Harness>(store: &S) {
    let octocat_github = github();
    let octocat_gitlab = LinkId::new("gitlab", "octocat");
    let hubot_github = LinkId::new("github", "hubot");
    store.seed(&octocat_github, &row("R0")).await;
    store.seed(&octocat_gitlab, &row("R0")).await;
    store.seed(&hubot_github, &row("H0")).await;

    let rotated = StoredLink {
        access: Some(issued("access-for-R1", 2_000)),
        refresh_token: Some(rt("R1")),
        ..StoredLink::default()
    };
    assert_won(
        cas(store, &octocat_github, &rotate("R0", "R1")).await,
        &rotated,
    );
    assert_eq!(read(store, &octocat_gitlab).await, Some(row("R0")));
    assert_eq!(read(store, &hubot_github).await, Some(row("H0")));

    // github's token guards nothing at gitlab.
    assert_lost(
        cas(store, &octocat_gitlab, &rotate("R1", "R2")).await,
        &Some(row("R0")),
    );
    // A lease on one link is not a lease on the other.
    let a = lease("replica-a", "R0", 10_000);
    assert_won(
        cas(store, &octocat_gitlab, &take_lease(None, a.clone())).await,
        &StoredLink {
            lease: Some(a),
            ..row("R0")
        },
    );
    assert_eq!(read(store, &octocat_github).await, Some(rotated));
    assert_eq!(read(store, &hubot_github).await, Some(row("H0")));
    // A link with no row stays without one.
    assert_eq!(read(store, &LinkId::new("gitlab", "hubot")).await, None);
}

/// The token texts of [`secret_row`]; none may appear in a failure.
const SECRETS: [&str; 3] = ["gho_SECRET_access", "ghr_SECRET_refresh", "ghr_SECRET_next"];

fn secret_row() -> StoredLink {
    StoredLink {
        access: Some(grant(SECRETS[0], 1_000)),
        refresh_token: Some(rt(SECRETS[1])),
        failure: None,
        lease: Some(lease("replica-a", SECRETS[1], 5_000)),
    }
}

fn assert_clean(failure: &StoreFailure) {
    assert!(
        failure.reason.len() > 20,
        "a failure should say what went wrong: {:?}",
        failure.reason
    );
    for secret in SECRETS {
        assert!(
            !failure.reason.contains(secret) && !failure.reason.contains("SECRET"),
            "token text in a store failure: {}",
            failure.reason
        );
    }
}

async fn store_failures_never_contain_token_text<S: Harness>(store: &S) {
    let link = github();
    store.seed(&link, &secret_row()).await;
    store.break_connection().await;

    let failure = store.read(&link).await.expect_err("a broken read fails");
    assert_clean(&failure);

    let write = write(
        WriteIntent::StoreTokens,
        Guard {
            refresh_token: Expect::Exactly(Some(rt(SECRETS[1]))),
            failure: Expect::Exactly(None),
            lease: Expect::Exactly(secret_row().lease),
        },
        Update {
            access: Change::Set(Some(grant(SECRETS[0], 2_000))),
            refresh_token: Change::Set(Some(rt(SECRETS[2]))),
            failure: Change::Set(None),
            lease: Change::Set(None),
        },
    );
    let failure = store
        .compare_and_swap(&link, &write)
        .await
        .expect_err("a broken write fails");
    assert_clean(&failure);
}

// ---------------------------------------------------------------------------
// The store against the reference semantics, on pseudo-random writes.

/// xorshift64: a deterministic stream, the same on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize].clone()
    }
}

/// Small pools of values, so guards often hold; edge cases included (the
/// empty string, non-ASCII text, the largest storable timestamp).
struct Values {
    refresh: Vec<Option<RefreshToken>>,
    access: Vec<Option<AccessGrant>>,
    failure: Vec<Option<CachedFailure>>,
    lease: Vec<Option<Lease>>,
}

impl Values {
    fn new() -> Self {
        let max = i64::MAX as u64;
        Values {
            refresh: vec![
                None,
                Some(rt("R0")),
                Some(rt("R1")),
                Some(rt("")),
                Some(rt("rt-ü-2")),
            ],
            access: vec![
                None,
                Some(grant("A0", 100)),
                Some(grant("A1", max)),
                Some(grant("", 0)),
            ],
            failure: vec![
                None,
                Some(rejected("invalid_grant")),
                Some(rejected("bad_refresh_token")),
                Some(rejected("")),
                Some(CachedFailure::OutcomeUnknown { lease: None }),
                Some(unknown_under("a", 100)),
            ],
            lease: vec![
                None,
                Some(lease("a", "R0", 100)),
                Some(lease("b", "R0", 100)),
                Some(lease("a", "R1", 100)),
                Some(lease("a", "R0", 200)),
                Some(lease("a", "R0", max)),
            ],
        }
    }

    fn row(&self, rng: &mut XorShift) -> StoredLink {
        StoredLink {
            access: rng.pick(&self.access),
            refresh_token: rng.pick(&self.refresh),
            failure: rng.pick(&self.failure),
            lease: rng.pick(&self.lease),
        }
    }

    /// A guard: any value a third of the time, the row's current value a
    /// third (when there is a row), else a value from the pool.
    fn expect<T: Clone>(rng: &mut XorShift, pool: &[T], current: Option<&T>) -> Expect<T> {
        match (rng.next() % 3, current) {
            (0, _) => Expect::Any,
            (1, Some(current)) => Expect::Exactly(current.clone()),
            _ => Expect::Exactly(rng.pick(pool)),
        }
    }

    fn change<T: Clone>(rng: &mut XorShift, pool: &[T]) -> Change<T> {
        if rng.one_in(2) {
            Change::Keep
        } else {
            Change::Set(rng.pick(pool))
        }
    }

    fn write(&self, rng: &mut XorShift, current: Option<&StoredLink>) -> Write {
        let intent = rng.pick(&[
            WriteIntent::TakeLease,
            WriteIntent::ReleaseLease,
            WriteIntent::StoreTokens,
            WriteIntent::CacheFailure,
            WriteIntent::ClearFailure,
        ]);
        Write {
            intent,
            guard: Guard {
                refresh_token: Self::expect(
                    rng,
                    &self.refresh,
                    current.map(|row| &row.refresh_token),
                ),
                failure: Self::expect(rng, &self.failure, current.map(|row| &row.failure)),
                lease: Self::expect(rng, &self.lease, current.map(|row| &row.lease)),
            },
            update: Update {
                access: Self::change(rng, &self.access),
                refresh_token: Self::change(rng, &self.refresh),
                failure: Self::change(rng, &self.failure),
                lease: Self::change(rng, &self.lease),
            },
        }
    }
}

async fn matches_the_reference_semantics<S: Harness>(store: &S) {
    const STEPS: usize = 200;
    let links = [github(), LinkId::new("gitlab", "octocat")];
    let values = Values::new();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut model: BTreeMap<LinkId, StoredLink> = BTreeMap::new();
    let (mut won, mut lost_to_a_row, mut lost_to_nothing) = (0, 0, 0);

    for step in 0..STEPS {
        let link = rng.pick(&links);
        match rng.next() % 20 {
            // Enrol (or re-enrol) the link.
            0 | 1 => {
                let row = values.row(&mut rng);
                store.seed(&link, &row).await;
                model.insert(link.clone(), row);
            }
            // Unlink it.
            2 => {
                store.remove(&link).await;
                model.remove(&link);
            }
            // A compare-and-swap, against the reference.
            _ => {
                let write = values.write(&mut rng, model.get(&link));
                let mut slot = model.remove(&link);
                let expected = StoredLink::compare_and_swap(&mut slot, &write);
                if let Some(row) = slot {
                    model.insert(link.clone(), row);
                }
                let actual = cas(store, &link, &write).await;
                assert!(
                    actual == expected,
                    "step {step} on {link}: {write:?}\n  expected {}\n  got      {}",
                    show_outcome(&expected),
                    show_outcome(&actual),
                );
                match expected {
                    CasOutcome::Won(_) => won += 1,
                    CasOutcome::Lost(Some(_)) => lost_to_a_row += 1,
                    CasOutcome::Lost(None) => lost_to_nothing += 1,
                }
            }
        }
        for link in &links {
            let expected = model.get(link).cloned();
            let actual = read(store, link).await;
            assert!(
                actual == expected,
                "after step {step}, {link}:\n  expected {}\n  got      {}",
                show(&expected),
                show(&actual),
            );
        }
    }
    // The run exercised every outcome, not just one.
    assert!(
        won >= 30 && lost_to_a_row >= 30 && lost_to_nothing >= 3,
        "won {won}, lost to a row {lost_to_a_row}, lost to no row {lost_to_nothing}"
    );
}

// ---------------------------------------------------------------------------
// What only a real database does.

mod postgres_only {
    use std::time::Duration;

    use baton_tests::pg::{scratch_database, ScratchDb};
    use sqlx::postgres::PgPoolOptions;
    use sqlx::Connection;

    use super::*;

    /// Terminates every backend connected to `db` (from the admin
    /// database), waiting for each to exit; returns how many there were.
    async fn kill_connections(db: &ScratchDb) -> usize {
        let mut admin = db.admin_connection().await.expect("admin connection");
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(db.name())
        .fetch_all(&mut admin)
        .await
        .expect("terminating backends");
        killed.len()
    }

    /// A store failure that is clear about being the database's, and
    /// clean of token text.
    fn assert_clear(failure: &StoreFailure) {
        assert_clean(failure);
        assert!(
            failure.reason.starts_with("postgres: ") && failure.reason.contains("baton_links"),
            "{}",
            failure.reason
        );
    }

    #[tokio::test]
    async fn a_closed_pool_fails_clearly() {
        let Some(db) = scratch_database("baton_closed_pool").await else {
            return;
        };
        let store = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
        store.seed(&github(), &secret_row()).await;
        db.pool().close().await;
        let failure = store.read(&github()).await.unwrap_err();
        assert_eq!(
            failure.reason,
            "postgres: the connection pool is closed while reading baton_links for github/octocat"
        );
        let failure = store
            .compare_and_swap(&github(), &rotate(SECRETS[1], SECRETS[2]))
            .await
            .unwrap_err();
        assert_eq!(
            failure.reason,
            "postgres: the connection pool is closed while writing baton_links for \
             github/octocat (nothing was written)"
        );
        let failure = store.insert(&github(), &secret_row()).await.unwrap_err();
        assert_clear(&failure);
        let failure = store.delete(&github()).await.unwrap_err();
        assert_clear(&failure);
        db.cleanup().await;
    }

    /// Killed between operations, a connection costs at most one failed
    /// operation, which says so clearly; the pool then reconnects. Run
    /// with the pool's default (a ping before handing a connection out)
    /// and without it, where the dead connection is used.
    #[tokio::test]
    async fn a_killed_connection_recovers_or_fails_clearly() {
        let Some(db) = scratch_database("baton_killed_connection").await else {
            return;
        };
        let link = github();
        db.pool().close().await;
        for test_before_acquire in [true, false] {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .test_before_acquire(test_before_acquire)
                .connect_with(db.options())
                .await
                .expect("connecting");
            let store = PgStore::new(pool.clone(), TokensAtRest::Plaintext);
            store.seed(&link, &secret_row()).await;
            let mut current = SECRETS[1].to_owned();
            for round in 0..4 {
                let next = format!("ghr_SECRET_round_{test_before_acquire}_{round}");
                // A connection is open and idle in the pool.
                assert!(read(&store, &link).await.is_some());
                assert!(kill_connections(&db).await >= 1);

                let outcome = if round % 2 == 0 {
                    store.read(&link).await.map(|_| ())
                } else {
                    store
                        .compare_and_swap(&link, &rotate(&current, &next))
                        .await
                        .map(|outcome| assert!(matches!(outcome, CasOutcome::Won(_))))
                };
                match &outcome {
                    Ok(()) => eprintln!("ping={test_before_acquire} round {round}: recovered"),
                    Err(failure) => {
                        eprintln!(
                            "ping={test_before_acquire} round {round}: {}",
                            failure.reason
                        );
                        assert!(
                            failure.reason.starts_with("postgres: "),
                            "{}",
                            failure.reason
                        );
                        assert!(!failure.reason.contains("SECRET"), "{}", failure.reason);
                    }
                }
                // The next operations succeed, and the row holds the old
                // token or (if the write went through) the new one.
                let mut row = None;
                for _ in 0..3 {
                    if let Ok(found) = store.read(&link).await {
                        row = found;
                        break;
                    }
                }
                let held = row
                    .expect("the store recovers within three reads")
                    .refresh_token
                    .expect("a refresh token")
                    .expose_secret()
                    .to_owned();
                assert!(held == current || held == next, "unexpected token {held}");
                current = held;
            }
            pool.close().await;
        }
        db.cleanup().await;
    }

    /// A write killed while it waits for a row lock fails clearly, applies
    /// nothing, and the store carries on.
    #[tokio::test]
    async fn a_write_killed_in_flight_fails_clearly() {
        let Some(db) = scratch_database("baton_killed_in_flight").await else {
            return;
        };
        let link = github();
        let store = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
        store.seed(&link, &secret_row()).await;

        let mut blocker = sqlx::PgConnection::connect_with(&db.options())
            .await
            .expect("blocking connection");
        sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
        sqlx::query("SELECT 1 FROM baton_links WHERE provider = $1 AND user_id = $2 FOR UPDATE")
            .bind(link.provider())
            .bind(link.user())
            .execute(&mut blocker)
            .await
            .unwrap();
        let blocker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut blocker)
            .await
            .unwrap();

        let write = rotate(SECRETS[1], SECRETS[2]);
        let in_flight = tokio::spawn({
            let (store, link) = (store.clone(), link.clone());
            async move { store.compare_and_swap(&link, &write).await }
        });

        // Find the write waiting on the lock, and kill it.
        let mut admin = db.admin_connection().await.expect("admin connection");
        let mut killed = false;
        for _ in 0..500 {
            let waiting: Vec<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity \
                 WHERE datname = $1 AND wait_event_type = 'Lock' AND pid <> $2",
            )
            .bind(db.name())
            .bind(blocker_pid)
            .fetch_all(&mut admin)
            .await
            .unwrap();
            if let Some(pid) = waiting.first() {
                killed = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
                    .bind(pid)
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(killed, "the write never waited on the lock");

        let failure = in_flight
            .await
            .expect("no panic")
            .expect_err("a killed write fails");
        eprintln!("killed in flight: {}", failure.reason);
        assert_clear(&failure);
        assert!(failure.reason.contains("writing"), "{}", failure.reason);

        sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
        drop(blocker);
        // Nothing was applied, and the store works.
        assert_eq!(read(&store, &link).await, Some(secret_row()));
        assert!(matches!(
            cas(&store, &link, &rotate(SECRETS[1], SECRETS[2])).await,
            CasOutcome::Won(_)
        ));
        db.cleanup().await;
    }

    /// Values the server refuses (a NUL character in a token) fail without
    /// the server's message, which could quote them.
    #[tokio::test]
    async fn values_the_server_refuses_are_not_echoed() {
        let Some(db) = scratch_database("baton_refused_values").await else {
            return;
        };
        let link = github();
        let store = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
        store.seed(&link, &secret_row()).await;
        let poisoned = "ghr_SECRET_with_\0_nul";
        let failure = store
            .compare_and_swap(&link, &rotate(SECRETS[1], poisoned))
            .await
            .unwrap_err();
        eprintln!("refused value: {}", failure.reason);
        assert_clear(&failure);
        assert!(failure.reason.contains("SQLSTATE"), "{}", failure.reason);
        let poisoned_row = StoredLink {
            refresh_token: Some(rt(poisoned)),
            ..secret_row()
        };
        let failure = store.insert(&link, &poisoned_row).await.unwrap_err();
        assert_clear(&failure);
        assert_eq!(read(&store, &link).await, Some(secret_row()));
        db.cleanup().await;
    }

    /// Timestamps beyond `i64::MAX` milliseconds cannot be stored: setting
    /// one fails (writing nothing), but a guard naming one just loses,
    /// exactly as the reference says, since no row holds it.
    #[tokio::test]
    async fn unstorable_timestamps() {
        let Some(db) = scratch_database("baton_unstorable_timestamps").await else {
            return;
        };
        let link = github();
        let store = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
        store.seed(&link, &row("R0")).await;
        let beyond = lease("a", "R0", i64::MAX as u64 + 1);

        let failure = store
            .compare_and_swap(&link, &take_lease(None, beyond.clone()))
            .await
            .unwrap_err();
        assert!(
            failure.reason.contains("lease_expires_at_ms"),
            "{}",
            failure.reason
        );
        assert!(
            failure.reason.contains("nothing was written"),
            "{}",
            failure.reason
        );
        assert_eq!(read(&store, &link).await, Some(row("R0")));

        // The guard fails first: a plain loss, as in the reference.
        let mut reference = Some(row("R0"));
        let stale = take_lease(Some(lease("a", "R0", 1)), beyond.clone());
        assert_eq!(
            cas(&store, &link, &stale).await,
            StoredLink::compare_and_swap(&mut reference, &stale)
        );
        let named = take_lease(Some(beyond.clone()), lease("a", "R0", 1));
        assert_eq!(
            cas(&store, &link, &named).await,
            StoredLink::compare_and_swap(&mut reference, &named)
        );
        let failure = store
            .insert(
                &link,
                &StoredLink {
                    access: Some(grant("A", u64::MAX)),
                    ..row("R0")
                },
            )
            .await
            .unwrap_err();
        assert!(
            failure.reason.contains("access_expires_at_ms"),
            "{}",
            failure.reason
        );
        db.cleanup().await;
    }

    /// Rows that break the invariants (possible only if the constraints
    /// were dropped) are failures naming the column, never panics.
    #[tokio::test]
    async fn inconsistent_rows_fail_naming_the_column() {
        let Some(db) = scratch_database("baton_inconsistent_rows").await else {
            return;
        };
        let store = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
        for constraint in [
            "baton_links_access_complete",
            "baton_links_failure_kind_known",
            "baton_links_failure_reason_matches_kind",
            "baton_links_lease_complete",
            "baton_links_expiries_not_negative",
            "baton_links_access_lifetime_with_token",
        ] {
            sqlx::query(&format!(
                "ALTER TABLE baton_links DROP CONSTRAINT {constraint}"
            ))
            .execute(db.pool())
            .await
            .unwrap();
        }
        let cases = [
            ("kind", "failure_kind = 'bogus'", "failure_kind"),
            ("reason", "failure_kind = 'rejected'", "failure_reason"),
            (
                "unknown",
                "failure_kind = 'outcome_unknown', failure_reason = 'x'",
                "failure_reason",
            ),
            (
                "access",
                "access_token = 'gho_SECRET_access'",
                "access_expires_at_ms",
            ),
            (
                "expiry",
                "access_token = 'gho_SECRET_access', access_expires_at_ms = -1",
                "access_expires_at_ms",
            ),
            ("lifetime", "access_lifetime_ms = 5", "access_lifetime_ms"),
            (
                "short",
                "access_token = 'gho_SECRET_access', access_expires_at_ms = 5, \
                 access_lifetime_ms = -1",
                "access_lifetime_ms",
            ),
            (
                "lease",
                "lease_owner = 'a', lease_expires_at_ms = 5",
                "lease_presenting",
            ),
            (
                "owner",
                "lease_presenting = 'ghr_SECRET_refresh'",
                "lease_owner",
            ),
            (
                "negative",
                "lease_owner = 'a', lease_presenting = 'p', lease_expires_at_ms = -5",
                "lease_expires_at_ms",
            ),
        ];
        for (user, set, column) in cases {
            let link = LinkId::new("github", user);
            store.seed(&link, &secret_row()).await;
            sqlx::query(
                "UPDATE baton_links SET access_token = NULL, access_expires_at_ms = NULL, \
                 access_lifetime_ms = NULL, failure_kind = NULL, failure_reason = NULL, lease_owner = NULL, \
                 lease_presenting = NULL, lease_expires_at_ms = NULL WHERE user_id = $1",
            )
            .bind(user)
            .execute(db.pool())
            .await
            .unwrap();
            sqlx::query(&format!("UPDATE baton_links SET {set} WHERE user_id = $1"))
                .bind(user)
                .execute(db.pool())
                .await
                .unwrap();

            let failure = store.read(&link).await.unwrap_err();
            assert_clear(&failure);
            assert!(
                failure.reason.contains(&format!("column {column} ")),
                "{user}: {}",
                failure.reason
            );
            // A write that wins on such a row says it applied.
            let touch = write(WriteIntent::ClearFailure, Guard::ANY, Update::NOTHING);
            let failure = store.compare_and_swap(&link, &touch).await.unwrap_err();
            assert_clear(&failure);
            assert!(
                failure.reason.contains("the write was applied"),
                "{}",
                failure.reason
            );
        }
        db.cleanup().await;
    }

    /// Writers racing on one row: every loss reports a row its guard does
    /// not admit, and no two writers win over the same refresh token.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_writers_never_both_win() {
        let Some(db) = scratch_database("baton_racing_writers").await else {
            return;
        };
        let link = github();
        let store = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
        store.seed(&link, &row("start")).await;

        let racers: Vec<_> = (0..4)
            .map(|racer| {
                let (store, link) = (store.clone(), link.clone());
                tokio::spawn(async move {
                    let mut wins = Vec::new();
                    for attempt in 0..25 {
                        let seen = read(&store, &link).await.expect("the row");
                        let from = seen.refresh_token.expect("a token");
                        let to = format!("racer-{racer}-{attempt}");
                        let write = rotate(from.expose_secret(), &to);
                        match cas(&store, &link, &write).await {
                            CasOutcome::Won(row) => {
                                assert_eq!(row.refresh_token, Some(rt(&to)));
                                wins.push((from.expose_secret().to_owned(), to));
                            }
                            CasOutcome::Lost(Some(row)) => assert!(
                                !row.satisfies(&write.guard),
                                "a loss reported a row the guard admits: {}",
                                show(&Some(row))
                            ),
                            CasOutcome::Lost(None) => panic!("the row vanished"),
                        }
                    }
                    wins
                })
            })
            .collect();
        let mut next: BTreeMap<String, String> = BTreeMap::new();
        for racer in racers {
            for (from, to) in racer.await.expect("no racer panics") {
                assert!(
                    next.insert(from.clone(), to).is_none(),
                    "two writers won over {from}"
                );
            }
        }
        // The wins form one chain, from the first token to the last.
        let mut token = "start".to_owned();
        let mut steps = 0;
        while let Some(to) = next.get(&token) {
            token = to.clone();
            steps += 1;
        }
        assert_eq!(steps, next.len(), "every win is on the chain");
        assert!(steps >= 25, "only {steps} wins");
        let last = read(&store, &link).await.expect("the row").refresh_token;
        assert_eq!(last, Some(rt(&token)));
        db.cleanup().await;
    }

    /// A scratch database dropped without `cleanup` (a test that panicked)
    /// is removed anyway.
    #[tokio::test]
    async fn scratch_databases_are_dropped_even_after_a_panic() {
        let Some(db) = scratch_database("baton_drop_fallback").await else {
            return;
        };
        let exists = |name: String| {
            let admin = db.admin_connection();
            async move {
                let mut admin = admin.await.expect("admin connection");
                sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                )
                .bind(name)
                .fetch_one(&mut admin)
                .await
                .unwrap()
            }
        };

        let forgotten = scratch_database("baton_forgotten")
            .await
            .expect("a database");
        let name = forgotten.name().to_owned();
        assert!(exists(name.clone()).await);
        drop(forgotten);
        assert!(!exists(name).await, "dropped without cleanup");

        let panicked = tokio::spawn(async {
            let db = scratch_database("baton_panicked")
                .await
                .expect("a database");
            let name = db.name().to_owned();
            // Keep a connection open, as a failing test would.
            let store = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
            store.seed(&github(), &row("R0")).await;
            eprintln!("{name}");
            if !name.is_empty() {
                panic!("{name}: a test failing while it holds a scratch database");
            }
            db
        })
        .await
        .expect_err("the task panicked");
        let message = panicked.into_panic();
        let message = message
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        let name = message.split(':').next().unwrap().to_owned();
        assert!(name.starts_with("baton_panicked_"), "{name}");
        assert!(!exists(name).await, "dropped while unwinding");
        db.cleanup().await;
    }

    /// The schema is the migration's `search_path`: two schemas in one
    /// database hold two independent tables.
    #[tokio::test]
    async fn a_schema_of_its_own_through_search_path() {
        let Some(db) = scratch_database("baton_search_path").await else {
            return;
        };
        sqlx::query("CREATE SCHEMA tenant_a")
            .execute(db.pool())
            .await
            .unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_with(db.options().options([("search_path", "tenant_a")]))
            .await
            .expect("connecting");
        baton_core::postgres::migrate(&pool)
            .await
            .expect("migrating tenant_a");
        // Twice is fine: applied migrations are skipped.
        baton_core::postgres::migrate(&pool)
            .await
            .expect("migrating tenant_a again");
        let in_tenant: bool =
            sqlx::query_scalar("SELECT to_regclass('tenant_a.baton_links') IS NOT NULL")
                .fetch_one(db.pool())
                .await
                .unwrap();
        assert!(in_tenant);

        let tenant = PgStore::new(pool.clone(), TokensAtRest::Plaintext);
        let public = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
        tenant.seed(&github(), &row("T0")).await;
        public.seed(&github(), &row("P0")).await;
        assert_eq!(read(&tenant, &github()).await, Some(row("T0")));
        assert_eq!(read(&public, &github()).await, Some(row("P0")));
        assert!(matches!(
            cas(&tenant, &github(), &rotate("T0", "T1")).await,
            CasOutcome::Won(_)
        ));
        assert_eq!(read(&public, &github()).await, Some(row("P0")));
        pool.close().await;
        db.cleanup().await;
    }

    /// Enrolment replaces, deletion removes, and `Debug` shows no row.
    /// The pool builder needs no sqlx of the service's own: the options
    /// are re-exported, and `connect_with` migrates.
    #[tokio::test]
    async fn connect_with_reexported_pool_options() {
        let Some(db) = scratch_database("baton_connect_with").await else {
            return;
        };
        let options = baton_core::postgres::PgPoolOptions::new().max_connections(2);
        let ring = TokensAtRest::Encrypted(baton_tests::pg::test_key_ring());
        let store = PgStore::connect_with(options, db.url(), ring)
            .await
            .expect("connecting and migrating");
        assert_eq!(store.pool().options().get_max_connections(), 2);
        store.seed(&github(), &row("R0")).await;
        assert_eq!(read(&store, &github()).await, Some(row("R0")));
        store.pool().close().await;
        db.cleanup().await;
    }

    #[tokio::test]
    async fn insert_replaces_and_delete_removes() {
        let Some(db) = scratch_database("baton_insert_delete").await else {
            return;
        };
        let link = github();
        let store = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
        store.insert(&link, &row("R0")).await.unwrap();
        store.insert(&link, &secret_row()).await.unwrap();
        assert_eq!(read(&store, &link).await, Some(secret_row()));
        assert!(!format!("{store:?}").contains("SECRET"));

        // Every write bumps updated_at.
        let pool = db.pool();
        let updated_at = || async move {
            sqlx::query_scalar::<_, String>(
                "SELECT updated_at::text FROM baton_links WHERE user_id = 'octocat'",
            )
            .fetch_one(pool)
            .await
            .unwrap()
        };
        let before = updated_at().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        cas(
            &store,
            &link,
            &write(WriteIntent::ClearFailure, Guard::ANY, Update::NOTHING),
        )
        .await;
        assert_ne!(updated_at().await, before);

        assert!(store.delete(&link).await.unwrap());
        assert!(!store.delete(&link).await.unwrap());
        assert_eq!(read(&store, &link).await, None);
        db.cleanup().await;
    }
}
