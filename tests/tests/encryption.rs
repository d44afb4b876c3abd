//! Tokens at rest, on real PostgreSQL: what an encrypted [`PgStore`] puts
//! in the table, and what it does with rows it cannot open. The store
//! contract (`store_contract.rs`, module `postgres_encrypted`) checks that
//! the encrypted store keeps every compare-and-swap semantic; this file
//! checks the encryption itself: no token text in the database, wrong and
//! missing keys refused without touching the row, rotation, and
//! [`PgStore::reencrypt`] from plaintext and from an old key.

use baton_core::driver::LinkStore;
use baton_core::postgres::{KeyRing, PgStore, Resealed, TokensAtRest};
use baton_core::{
    AccessGrant, AccessToken, CasOutcome, Change, Expect, Guard, Lease, LinkId, OwnerId,
    RefreshToken, StoreFailure, StoredLink, Timestamp, TokenSet, Update, Write, WriteIntent,
};
use baton_tests::pg::{assert_only_ciphertext, scratch_database, ScratchDb};
use sqlx::postgres::PgPool;

const ACCESS: &str = "gho_ACCESS_7f3a91";
const REFRESH: &str = "ghr_REFRESH_0c5d22";
const NEXT_REFRESH: &str = "ghr_NEXT_REFRESH_99e1b4";

fn link() -> LinkId {
    LinkId::new("github", "octocat")
}

fn ring(id: &str, byte: u8) -> KeyRing {
    KeyRing::new(id, &[byte; 32]).unwrap()
}

fn encrypted(db: &ScratchDb, ring: KeyRing) -> PgStore {
    PgStore::new(db.pool().clone(), TokensAtRest::Encrypted(ring))
}

fn pair(access: &str, refresh: &str) -> TokenSet {
    TokenSet {
        access: AccessGrant {
            token: AccessToken::new(access),
            expires_at: Timestamp::from_millis(1_000),
            lifetime: None,
        },
        refresh_token: Some(RefreshToken::new(refresh)),
    }
}

/// Takes the lease over `presenting`, as a machine does before an exchange.
fn take_lease(presenting: &str) -> Write {
    Write {
        intent: WriteIntent::TakeLease,
        guard: Guard {
            refresh_token: Expect::Exactly(Some(RefreshToken::new(presenting))),
            failure: Expect::Exactly(None),
            lease: Expect::Exactly(None),
        },
        update: Update {
            access: Change::Keep,
            refresh_token: Change::Keep,
            failure: Change::Keep,
            lease: Change::Set(Some(lease(presenting))),
        },
    }
}

fn lease(presenting: &str) -> Lease {
    Lease {
        owner: OwnerId::new("replica-a"),
        presenting: RefreshToken::new(presenting),
        expires_at: Timestamp::from_millis(5_000),
    }
}

/// Stores the exchange's result under the lease, as a machine does after.
fn store_tokens(presented: &str, access: &str, refresh: &str) -> Write {
    Write {
        intent: WriteIntent::StoreTokens,
        guard: Guard {
            refresh_token: Expect::Exactly(Some(RefreshToken::new(presented))),
            failure: Expect::Exactly(None),
            lease: Expect::Exactly(Some(lease(presented))),
        },
        update: Update {
            access: Change::Set(Some(pair(access, refresh).access)),
            refresh_token: Change::Set(Some(RefreshToken::new(refresh))),
            failure: Change::Set(None),
            lease: Change::Set(None),
        },
    }
}

async fn won(store: &PgStore, write: &Write) -> StoredLink {
    match store.compare_and_swap(&link(), write).await.unwrap() {
        CasOutcome::Won(row) => row,
        CasOutcome::Lost(row) => panic!("lost against {row:?}"),
    }
}

/// The whole table as PostgreSQL prints it, every column of every row.
async fn table_text(pool: &PgPool) -> String {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT t::text FROM baton_links t")
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(row,)| row)
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_clean(failure: &StoreFailure) {
    for secret in [ACCESS, REFRESH, NEXT_REFRESH, "ACCESS", "REFRESH"] {
        assert!(!failure.reason.contains(secret), "{}", failure.reason);
    }
}

#[tokio::test]
async fn the_database_never_holds_token_text() {
    let Some(db) = scratch_database("baton_enc_no_text").await else {
        return;
    };
    let store = encrypted(&db, ring("k1", 1));
    store.enroll(&link(), &pair(ACCESS, REFRESH)).await.unwrap();
    // Mid-refresh: the lease names the presented token.
    won(&store, &take_lease(REFRESH)).await;
    let mid = table_text(db.pool()).await;
    let after = won(&store, &store_tokens(REFRESH, ACCESS, NEXT_REFRESH)).await;
    assert_eq!(
        after
            .refresh_token
            .as_ref()
            .map(RefreshToken::expose_secret),
        Some(NEXT_REFRESH)
    );
    let end = table_text(db.pool()).await;
    for text in [&mid, &end] {
        for secret in [ACCESS, REFRESH, NEXT_REFRESH, "ACCESS", "REFRESH"] {
            assert!(
                !text.contains(secret),
                "the table holds {secret:?}:\n{text}"
            );
        }
        assert!(text.contains("bt1:k1:"), "{text}");
    }
    assert_only_ciphertext(&db).await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_a_clear_error_and_leaves_the_row_untouched() {
    let Some(db) = scratch_database("baton_enc_wrong_key").await else {
        return;
    };
    encrypted(&db, ring("k1", 1))
        .enroll(&link(), &pair(ACCESS, REFRESH))
        .await
        .unwrap();
    let before = table_text(db.pool()).await;

    let missing = encrypted(&db, ring("k2", 2));
    let failure = missing.read(&link()).await.unwrap_err();
    assert!(
        failure.reason.contains(
            "access_token is encrypted under key \"k1\", which the key ring does not hold"
        ),
        "{}",
        failure.reason
    );
    assert_clean(&failure);
    let failure = missing
        .compare_and_swap(&link(), &take_lease(REFRESH))
        .await
        .unwrap_err();
    assert!(failure.reason.contains("\"k1\""), "{}", failure.reason);
    assert_clean(&failure);

    let impostor = encrypted(&db, ring("k1", 9));
    let failure = impostor.read(&link()).await.unwrap_err();
    assert!(
        failure.reason.contains("does not decrypt under key \"k1\""),
        "{}",
        failure.reason
    );
    assert_clean(&failure);
    let failure = impostor
        .compare_and_swap(&link(), &take_lease(REFRESH))
        .await
        .unwrap_err();
    assert_clean(&failure);

    let plaintext = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
    let failure = plaintext.read(&link()).await.unwrap_err();
    assert!(
        failure.reason.contains("configured for plaintext"),
        "{}",
        failure.reason
    );
    assert_eq!(
        table_text(db.pool()).await,
        before,
        "a refused row is left as it was"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_ciphertext_copied_into_another_row_does_not_open() {
    let Some(db) = scratch_database("baton_enc_copied").await else {
        return;
    };
    let store = encrypted(&db, ring("k1", 1));
    let hubot = LinkId::new("github", "hubot");
    store.enroll(&link(), &pair(ACCESS, REFRESH)).await.unwrap();
    store
        .enroll(&hubot, &pair("gho_other", "ghr_other"))
        .await
        .unwrap();
    // Someone with write access to the table hands hubot octocat's tokens.
    sqlx::query(
        "UPDATE baton_links SET refresh_token = \
         (SELECT refresh_token FROM baton_links WHERE user_id = 'octocat') \
         WHERE user_id = 'hubot'",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let failure = store.read(&hubot).await.unwrap_err();
    assert!(
        failure.reason.contains("refresh_token does not decrypt"),
        "{}",
        failure.reason
    );
    db.cleanup().await;
}

#[tokio::test]
async fn rotation_opens_old_rows_and_reseals_what_it_writes() {
    let Some(db) = scratch_database("baton_enc_rotation").await else {
        return;
    };
    encrypted(&db, ring("k1", 1))
        .enroll(&link(), &pair(ACCESS, REFRESH))
        .await
        .unwrap();
    let rotated = encrypted(&db, ring("k2", 2).with_old_key("k1", &[1; 32]).unwrap());
    let row = rotated.read(&link()).await.unwrap().unwrap();
    assert_eq!(
        row.refresh_token.as_ref().map(RefreshToken::expose_secret),
        Some(REFRESH)
    );
    // The guard names a token hashed under k1; the writes seal under k2.
    won(&rotated, &take_lease(REFRESH)).await;
    won(&rotated, &store_tokens(REFRESH, "gho_after", NEXT_REFRESH)).await;
    let text = table_text(db.pool()).await;
    assert!(
        !text.contains("bt1:k1:"),
        "every token rewritten under k2:\n{text}"
    );
    let k2_only = encrypted(&db, ring("k2", 2));
    let row = k2_only.read(&link()).await.unwrap().unwrap();
    assert_eq!(
        row.refresh_token.as_ref().map(RefreshToken::expose_secret),
        Some(NEXT_REFRESH)
    );
    db.cleanup().await;
}

#[tokio::test]
async fn reencrypt_seals_plaintext_rows_and_rows_under_old_keys() {
    let Some(db) = scratch_database("baton_enc_reencrypt").await else {
        return;
    };
    let plaintext = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
    let users = ["u1", "u2", "u3"];
    for user in users {
        let link = LinkId::new("github", user);
        plaintext
            .enroll(&link, &pair(ACCESS, REFRESH))
            .await
            .unwrap();
    }
    // Mid-refresh on one of them: the lease's token is sealed too.
    let u2 = LinkId::new("github", "u2");
    assert!(matches!(
        plaintext.compare_and_swap(&u2, &take_lease(REFRESH)).await,
        Ok(CasOutcome::Won(_))
    ));
    let failure = plaintext.reencrypt().await.unwrap_err();
    assert!(
        failure.reason.contains("TokensAtRest::Encrypted"),
        "{}",
        failure.reason
    );

    let k1 = encrypted(&db, ring("k1", 1));
    let failure = k1.read(&u2).await.unwrap_err();
    assert!(
        failure.reason.contains("PgStore::reencrypt"),
        "{}",
        failure.reason
    );
    let resealed = k1.reencrypt().await.unwrap();
    assert_eq!((resealed.rows, resealed.left_changing), (3, 0));
    assert_only_ciphertext(&db).await;
    let row = k1.read(&u2).await.unwrap().unwrap();
    assert_eq!(
        row.lease.as_ref().map(|l| l.presenting.expose_secret()),
        Some(REFRESH)
    );
    assert_eq!(
        k1.reencrypt().await.unwrap(),
        Resealed::default(),
        "nothing left"
    );

    let k2 = encrypted(&db, ring("k2", 2).with_old_key("k1", &[1; 32]).unwrap());
    assert_eq!(k2.reencrypt().await.unwrap().rows, 3);
    let k2_only = encrypted(&db, ring("k2", 2));
    for user in users {
        let row = k2_only
            .read(&LinkId::new("github", user))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.access.as_ref().map(|a| a.token.expose_secret()),
            Some(ACCESS)
        );
    }
    // The lease's guard still matches after re-sealing: the hash moved too.
    let finish = store_tokens(REFRESH, ACCESS, NEXT_REFRESH);
    assert!(matches!(
        k2_only.compare_and_swap(&u2, &finish).await,
        Ok(CasOutcome::Won(_))
    ));
    db.cleanup().await;
}

#[tokio::test]
async fn reencrypt_stops_at_a_row_it_cannot_open_and_names_it() {
    let Some(db) = scratch_database("baton_enc_reencrypt_stop").await else {
        return;
    };
    encrypted(&db, ring("k0", 7))
        .enroll(&LinkId::new("github", "lost"), &pair(ACCESS, REFRESH))
        .await
        .unwrap();
    let before = table_text(db.pool()).await;
    let failure = encrypted(&db, ring("k1", 1)).reencrypt().await.unwrap_err();
    assert!(failure.reason.contains("github/lost"), "{}", failure.reason);
    assert!(failure.reason.contains("\"k0\""), "{}", failure.reason);
    assert_clean(&failure);
    assert_eq!(table_text(db.pool()).await, before);
    db.cleanup().await;
}
