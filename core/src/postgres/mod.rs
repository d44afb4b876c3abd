//! The PostgreSQL link store (feature `postgres`): [`PgStore`], a
//! [`LinkStore`] on one table shared by every replica, over
//! [sqlx](https://docs.rs/sqlx).
//!
//! Every replica of a service points its driver (the tokio `Refresher` of
//! feature `tokio`, or its own) at the same database; the compare-and-swap
//! below is what lets them share one rotating refresh token without ever
//! presenting it twice.
//!
//! ## The schema
//!
//! [`migrate`] (or [`MIGRATOR`]) creates one table, one row per link:
//!
//! ```sql
//! CREATE TABLE baton_links (
//!     provider              TEXT        NOT NULL,
//!     user_id               TEXT        NOT NULL,
//!     access_token          TEXT        NULL,   -- with access_expires_at_ms, or neither
//!     access_expires_at_ms  BIGINT      NULL,   -- milliseconds since the Unix epoch
//!     access_lifetime_ms    BIGINT      NULL,   -- the token's lifetime, where known
//!     refresh_token         TEXT        NULL,
//!     failure_kind          TEXT        NULL,   -- 'rejected' | 'outcome_unknown'
//!     failure_reason        TEXT        NULL,   -- set exactly when failure_kind = 'rejected'
//!     failure_lease_owner   TEXT        NULL,   -- 'outcome_unknown' only: the lease it was
//!     failure_lease_expires_at_ms BIGINT NULL,  -- judged under (both, or neither)
//!     lease_owner           TEXT        NULL,   -- the lease's three columns are
//!     lease_presenting      TEXT        NULL,   -- all set or all null
//!     lease_expires_at_ms   BIGINT      NULL,
//!     refresh_token_hash    BYTEA       NULL,   -- encrypted stores: keyed hashes of
//!     lease_presenting_hash BYTEA       NULL,   -- the tokens, for the compare-and-swap
//!     updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),  -- bumped by every write
//!     PRIMARY KEY (provider, user_id),
//!     CHECK (...)                               -- the pairings above, and expiries >= 0
//! );
//! ```
//!
//! ## Tokens at rest
//!
//! A store keeps the token columns as its [`TokensAtRest`] says, a choice
//! every constructor asks for: [`TokensAtRest::Encrypted`] seals them under
//! a [`KeyRing`] (XChaCha20-Poly1305, the key id beside each ciphertext,
//! compared by keyed hash; the scheme is in [`TokensAtRest`]'s docs
//! and the README), and [`TokensAtRest::Plaintext`] stores the text.
//! [`PgStore::reencrypt`] seals a plaintext table, or moves one to a new
//! key. A store refuses, as a [`StoreFailure`] naming the key id, any value
//! it cannot open, and leaves the row as it is.
//!
//! ### Choosing the schema
//!
//! No schema name is hard-coded: the table (and sqlx's `_sqlx_migrations`
//! bookkeeping table) is created in the first schema of the connection's
//! `search_path`, and [`PgStore`] finds it the same way. To keep baton in a
//! schema of its own, create the schema and give the pool that search path,
//! for both the migration and the store:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::str::FromStr;
//! use baton_core::postgres::{migrate, PgConnectOptions, PgPoolOptions, PgStore, TokensAtRest};
//!
//! let options = PgConnectOptions::from_str("postgres://app@db.internal/app")?
//!     .options([("search_path", "baton")]);
//! let pool = PgPoolOptions::new().connect_with(options).await?;
//! sqlx::query("CREATE SCHEMA IF NOT EXISTS baton").execute(&pool).await?;
//! migrate(&pool).await?;
//! let store = PgStore::new(pool, TokensAtRest::Plaintext);
//! # let _ = store; Ok(()) }
//! ```
//!
//! A schema of its own is also the simplest way to live beside an
//! application that runs its own sqlx migrations: sqlx refuses to run a
//! migrator against a `_sqlx_migrations` table holding versions it does not
//! know. The alternative is to copy this crate's `migrations/*.sql` into the
//! application's migration directory and never call [`migrate`].
//!
//! ## Usage
//!
//! ```no_run
//! use std::time::Duration;
//! use baton_core::postgres::{KeyRing, PgStore, TokensAtRest};
//! use baton_core::refresher::wall_clock;
//! use baton_core::{AccessGrant, AccessToken, LinkId, RefreshToken, TokenSet};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // The team's key, from its secrets manager (32 bytes, base64).
//! let key = std::env::var("BATON_TOKEN_KEY")?;
//! let at_rest = TokensAtRest::Encrypted(KeyRing::from_base64("2026-12", &key)?);
//! // Connects a pool and runs the migration.
//! let store = PgStore::connect("postgres://app@db.internal/app", at_rest).await?;
//!
//! // Enrol a link when the user completes the authorization-code flow.
//! let link = LinkId::new("github", "octocat");
//! let pair = TokenSet {
//!     access: AccessGrant {
//!         token: AccessToken::new("ghu_from_the_code_exchange"),
//!         expires_at: wall_clock() + Duration::from_secs(8 * 3600),
//!         lifetime: Some(Duration::from_secs(8 * 3600)), // the reply's expires_in
//!     },
//!     refresh_token: Some(RefreshToken::new("ghr_from_the_code_exchange")),
//! };
//! store.enroll(&link, &pair).await?;
//!
//! // From here on only the machine writes the row, by compare-and-swap;
//! // hand the store to a `Refresher` (feature `tokio`), and enrol through
//! // `Refresher::enroll` once there is one, so this process forgets what
//! // it held for the link too.
//! # Ok(()) }
//! ```
//!
//! ## Guarantees
//!
//! - [`LinkStore::compare_and_swap`] has exactly the semantics of
//!   [`StoredLink::compare_and_swap`], and is linearizable. A write that
//!   wins takes one round trip: a single prepared
//!   `UPDATE … WHERE <guard> RETURNING …`. A write that loses reads the row
//!   back to report it; if the row it finds satisfies the guard after all
//!   (another writer changed it in between), the update is tried again.
//! - Failures are [`StoreFailure`]s whose reasons are built from the kind
//!   of error (the sqlx error variant, the SQLSTATE code, the constraint
//!   name), never from the database's message, which can echo bound values:
//!   no token text ever reaches a reason. Reasons do name the link
//!   (`provider/user`), and say whether a failed write may have been
//!   applied ("may or may not have been applied" when the connection failed
//!   mid-statement, "nothing was written" when it certainly was not).
//! - A row whose columns break the schema's invariants (possible only if
//!   its constraints were dropped) is reported as a [`StoreFailure`] naming
//!   the column, never a panic.
//! - Timestamps are stored as `BIGINT` milliseconds: a timestamp after
//!   `i64::MAX` milliseconds cannot be stored, and a write setting one fails
//!   without writing anything.

mod cipher;
mod decode;
mod failure;
mod reseal;
mod sql;
#[cfg(test)]
mod tests;

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use sqlx::migrate::{MigrateError, Migrator};

/// The pool, its options and the connection options, re-exported so a
/// service configures the store with the very sqlx version baton was built
/// with (no `sqlx` dependency of its own to keep in step).
pub use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub use cipher::{KeyRing, KeyRingError, TokensAtRest};
pub use reseal::Resealed;

use decode::decode;
use failure::{describe, failure, Doing};
use sql::{
    encode_failure, EncodedGuard, EncodedUpdate, ExpectedToken, Sealer, DELETE_SQL, INSERT_SQL,
    READ_SQL,
};

use crate::driver::LinkStore;
use crate::{CasOutcome, LinkId, StoreFailure, StoredLink, TokenSet, Write};

/// The migrations that create and evolve the `baton_links` table, embedded
/// from this crate's `migrations/` directory.
///
/// Run them with [`migrate`], or with `MIGRATOR.run(&pool)` to handle sqlx's
/// [`MigrateError`] yourself. They act on the first schema of the
/// connection's `search_path` (see the [module documentation](self)).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Creates or upgrades the `baton_links` table (and sqlx's
/// `_sqlx_migrations`) in the first schema of `pool`'s `search_path`.
///
/// Safe to run from every replica at start-up: sqlx serialises concurrent
/// migrators with an advisory lock, and applied migrations are skipped.
pub async fn migrate(pool: &PgPool) -> Result<(), PgStoreError> {
    MIGRATOR.run(pool).await.map_err(PgStoreError::Migrate)
}

/// Why connecting to the database or migrating it failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PgStoreError {
    /// The pool could not connect to the database.
    Connect(sqlx::Error),
    /// Running [`MIGRATOR`] failed.
    Migrate(MigrateError),
}

impl fmt::Display for PgStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgStoreError::Connect(error) => {
                write!(f, "postgres: could not connect: {}", describe(error).what)
            }
            PgStoreError::Migrate(error) => {
                f.write_str("postgres: migrating baton_links failed: ")?;
                match error {
                    MigrateError::Execute(error) | MigrateError::ExecuteMigration(error, _) => {
                        f.write_str(&describe(error).what)
                    }
                    // The other variants are about versions and files, and
                    // their messages say which.
                    other => write!(f, "{other}"),
                }
            }
        }
    }
}

impl StdError for PgStoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            PgStoreError::Connect(error) => Some(error),
            PgStoreError::Migrate(error) => Some(error),
        }
    }
}

/// A [`LinkStore`] on the `baton_links` table of a PostgreSQL database.
///
/// Cloning is cheap and shares the pool. `Debug` shows the pool's state and
/// options, never a row.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    at_rest: Arc<TokensAtRest>,
}

/// How many times a compare-and-swap tries its update while the rows it
/// reads back after losing keep satisfying its guard (each time, another
/// writer changed the row between the update and the read).
const MAX_ATTEMPTS: usize = 16;
impl PgStore {
    /// A store on `pool`, whose `search_path` must find the `baton_links`
    /// table (see [`migrate`]), keeping tokens as `at_rest` says. Does no
    /// I/O.
    pub fn new(pool: PgPool, at_rest: TokensAtRest) -> PgStore {
        PgStore {
            pool,
            at_rest: Arc::new(at_rest),
        }
    }

    /// Connects a pool to `url` with sqlx's default pool options, runs
    /// [`migrate`] on it and returns a store on it.
    pub async fn connect(url: &str, at_rest: TokensAtRest) -> Result<PgStore, PgStoreError> {
        let pool = PgPool::connect(url).await.map_err(PgStoreError::Connect)?;
        migrate(&pool).await?;
        Ok(PgStore::new(pool, at_rest))
    }

    /// Connects a pool to `url` with `options` — pool size, acquire and
    /// idle timeouts, per-connection settings — runs [`migrate`] on it and
    /// returns a store on it. [`PgPoolOptions`] and [`PgConnectOptions`]
    /// are re-exported from this module, so no sqlx dependency is needed:
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), baton_core::postgres::PgStoreError> {
    /// use std::time::Duration;
    /// use baton_core::postgres::{PgPoolOptions, PgStore, TokensAtRest};
    ///
    /// let options = PgPoolOptions::new()
    ///     .max_connections(16)
    ///     .acquire_timeout(Duration::from_secs(3));
    /// let store = PgStore::connect_with(
    ///     options,
    ///     "postgres://app@db.internal/app",
    ///     TokensAtRest::Plaintext,
    /// )
    /// .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    ///
    /// Size the pool for the refreshes in flight, not the callers: a herd
    /// of any size on one link costs one read, one lease write and one
    /// token write, and the hot path touches no connection.
    pub async fn connect_with(
        options: PgPoolOptions,
        url: &str,
        at_rest: TokensAtRest,
    ) -> Result<PgStore, PgStoreError> {
        let pool = options.connect(url).await.map_err(PgStoreError::Connect)?;
        migrate(&pool).await?;
        Ok(PgStore::new(pool, at_rest))
    }

    fn sealer<'a>(&'a self, link: &'a LinkId) -> Sealer<'a> {
        Sealer {
            at_rest: &self.at_rest,
            link,
        }
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Stores `row` for `link`, inserting it or replacing whatever row the
    /// link had: how an application enrols a link (after the
    /// authorization-code exchange) or re-links it.
    ///
    /// This is **not** a compare-and-swap: it overwrites a row that
    /// replicas may be refreshing at that very moment, lease and all. Use
    /// it only where the application means to discard the stored tokens;
    /// for the OAuth callback, [`PgStore::enroll`] writes the right row.
    pub async fn insert(&self, link: &LinkId, row: &StoredLink) -> Result<(), StoreFailure> {
        let doing = Doing::Inserting;
        let sealer = self.sealer(link);
        let (access_token, access_expires_at_ms, access_lifetime_ms) =
            sealer
                .access(&row.access)
                .map_err(|e| e.failure(link, doing))?;
        let refresh_token = sealer.refresh_token(&row.refresh_token);
        let (failure_kind, failure_reason, failure_lease_owner, failure_lease_expires_at_ms) =
            encode_failure(&row.failure).map_err(|e| e.failure(link, doing))?;
        let (lease_owner, lease_presenting, lease_expires_at_ms) = sealer
            .lease(&row.lease)
            .map_err(|e| e.failure(link, doing))?;
        sqlx::query(INSERT_SQL)
            .bind(link.provider())
            .bind(link.user())
            .bind(access_token.stored)
            .bind(access_expires_at_ms)
            .bind(refresh_token.stored)
            .bind(failure_kind)
            .bind(failure_reason)
            .bind(lease_owner)
            .bind(lease_presenting.stored)
            .bind(lease_expires_at_ms)
            .bind(failure_lease_owner)
            .bind(failure_lease_expires_at_ms)
            .bind(access_lifetime_ms)
            .bind(refresh_token.hash)
            .bind(lease_presenting.hash)
            .execute(&self.pool)
            .await
            .map_err(|error| failure(link, doing, &error))?;
        Ok(())
    }

    /// The row of `link`, if it has one: [`LinkStore::read`], callable
    /// without importing the trait.
    pub async fn read(&self, link: &LinkId) -> Result<Option<StoredLink>, StoreFailure> {
        self.select(link, Doing::Reading).await
    }

    /// Enrols `link` with a fresh `pair` from the OAuth callback: replaces
    /// its row with [`StoredLink::enrolled`]`(pair)`, inserting it if there
    /// is none, in one `INSERT … ON CONFLICT DO UPDATE`. This is
    /// [`LinkStore::enroll`], callable without importing the trait; see
    /// there why it is safe against refreshes in flight, and prefer
    /// [`Refresher::enroll`](crate::refresher::Refresher::enroll) where a
    /// refresher runs in this process (it also forgets the tokens this
    /// process holds for the link).
    pub async fn enroll(&self, link: &LinkId, pair: &TokenSet) -> Result<(), StoreFailure> {
        self.insert(link, &StoredLink::enrolled(pair.clone())).await
    }

    /// Deletes the row of `link` (the user unlinked the account); says
    /// whether there was one. Unconditional, like [`PgStore::insert`].
    pub async fn delete(&self, link: &LinkId) -> Result<bool, StoreFailure> {
        let done = sqlx::query(DELETE_SQL)
            .bind(link.provider())
            .bind(link.user())
            .execute(&self.pool)
            .await
            .map_err(|error| failure(link, Doing::Deleting, &error))?;
        Ok(done.rows_affected() > 0)
    }

    async fn select(
        &self,
        link: &LinkId,
        doing: Doing,
    ) -> Result<Option<StoredLink>, StoreFailure> {
        let row = sqlx::query(READ_SQL)
            .bind(link.provider())
            .bind(link.user())
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| failure(link, doing, &error))?;
        row.map(|row| decode(&row, &self.at_rest, link).map_err(|e| e.failure(link, doing)))
            .transpose()
    }

    /// The guarded update; `Some(row after it)` if it applied.
    async fn try_update(
        &self,
        link: &LinkId,
        guard: &EncodedGuard<'_>,
        update: &EncodedUpdate<'_>,
    ) -> Result<Option<StoredLink>, StoreFailure> {
        let access = update.access.as_ref();
        let refresh_token = update.refresh_token.as_ref();
        let lease = update.lease.as_ref();
        let query = sqlx::query(self.sealer(link).cas_sql())
            .bind(link.provider())
            .bind(link.user())
            .bind(access.is_some())
            .bind(access.and_then(|(token, ..)| token.stored.as_deref()))
            .bind(access.and_then(|(_, expiry, _)| *expiry))
            .bind(refresh_token.is_some())
            .bind(refresh_token.and_then(|token| token.stored.as_deref()))
            .bind(update.failure.is_some())
            .bind(update.failure.and_then(|(kind, ..)| kind))
            .bind(update.failure.and_then(|(_, reason, ..)| reason))
            .bind(lease.is_some())
            .bind(lease.and_then(|(owner, _, _)| *owner))
            .bind(lease.and_then(|(_, presenting, _)| presenting.stored.as_deref()))
            .bind(lease.and_then(|(_, _, expiry)| *expiry))
            .bind(guard.refresh_token.is_none());
        let query = bind_expected(query, &self.at_rest, guard.refresh_token.as_ref())
            .bind(guard.failure.is_none())
            .bind(guard.failure.and_then(|(kind, ..)| kind))
            .bind(guard.failure.and_then(|(_, reason, ..)| reason))
            .bind(guard.lease.is_none())
            .bind(guard.lease.as_ref().and_then(|(owner, _, _)| *owner));
        let row = bind_expected(
            query,
            &self.at_rest,
            guard.lease.as_ref().map(|(_, presenting, _)| presenting),
        )
        .bind(guard.lease.as_ref().and_then(|(_, _, expiry)| *expiry))
        .bind(refresh_token.and_then(|token| token.hash.as_deref()))
        .bind(lease.and_then(|(_, presenting, _)| presenting.hash.as_deref()))
        .bind(update.failure.and_then(|(.., owner, _)| owner))
        .bind(update.failure.and_then(|(.., expiry)| expiry))
        .bind(guard.failure.and_then(|(.., owner, _)| owner))
        .bind(guard.failure.and_then(|(.., expiry)| expiry))
        .bind(access.and_then(|(.., lifetime)| *lifetime))
        .fetch_optional(&self.pool)
        .await
        .map_err(|error| failure(link, Doing::Writing, &error))?;
        row.map(|row| {
            decode(&row, &self.at_rest, link)
                .map_err(|e| e.failure(link, Doing::WroteButUnreadable))
        })
        .transpose()
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds what a guard expects of a token column, typed as the store's
/// statement declares it (`None`: any value, and the bind value is never
/// read).
fn bind_expected<'q>(
    query: PgQuery<'q>,
    at_rest: &TokensAtRest,
    expected: Option<&'q ExpectedToken>,
) -> PgQuery<'q> {
    match (at_rest, expected) {
        (_, Some(ExpectedToken::Text(text))) => query.bind(text.as_deref()),
        (_, Some(ExpectedToken::Hashes(hashes))) => query.bind(hashes.as_deref()),
        (TokensAtRest::Plaintext, None) => query.bind(None::<&str>),
        (TokensAtRest::Encrypted(_), None) => query.bind(None::<&[Vec<u8>]>),
    }
}

impl LinkStore for PgStore {
    async fn read(&self, link: &LinkId) -> Result<Option<StoredLink>, StoreFailure> {
        PgStore::read(self, link).await
    }

    async fn enroll(&self, link: &LinkId, pair: &TokenSet) -> Result<(), StoreFailure> {
        PgStore::enroll(self, link, pair).await
    }

    async fn compare_and_swap(
        &self,
        link: &LinkId,
        write: &Write,
    ) -> Result<CasOutcome, StoreFailure> {
        // `None`: the guard names a value no row can hold, so it fails on
        // every row and the update is never sent.
        let guard = EncodedGuard::new(&write.guard, self.sealer(link));
        // `Err`: the update sets a value the table cannot hold; it fails
        // unless the guard fails first.
        let update = EncodedUpdate::new(&write.update, self.sealer(link));
        for _ in 0..MAX_ATTEMPTS {
            if let (Some(guard), Ok(update)) = (&guard, &update) {
                if let Some(row) = self.try_update(link, guard, update).await? {
                    return Ok(CasOutcome::Won(row));
                }
            }
            // Nothing was written. Linearize the loss at this read, if the
            // row it finds does not satisfy the guard.
            match self.select(link, Doing::ReadingAfterLoss).await? {
                Some(row) if row.satisfies(&write.guard) => {
                    if let Err(unstorable) = &update {
                        return Err(unstorable.failure(link, Doing::Writing));
                    }
                    // Another writer changed the row between our update and
                    // this read; try the update again.
                }
                other => return Ok(CasOutcome::Lost(other)),
            }
        }
        Err(StoreFailure {
            reason: format!(
                "postgres: compare-and-swap on baton_links for {link} gave up after \
                 {MAX_ATTEMPTS} attempts under contention (nothing was written)"
            ),
        })
    }
}
