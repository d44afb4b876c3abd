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
//!     refresh_token         TEXT        NULL,
//!     failure_kind          TEXT        NULL,   -- 'rejected' | 'outcome_unknown'
//!     failure_reason        TEXT        NULL,   -- set exactly when failure_kind = 'rejected'
//!     lease_owner           TEXT        NULL,   -- the lease's three columns are
//!     lease_presenting      TEXT        NULL,   -- all set or all null
//!     lease_expires_at_ms   BIGINT      NULL,
//!     updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),  -- bumped by every write
//!     PRIMARY KEY (provider, user_id),
//!     CHECK (...)                               -- the pairings above, and expiries >= 0
//! );
//! ```
//!
//! Tokens are stored as plain text: protect the table like any other
//! credential store.
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
//! use baton_core::postgres::{migrate, PgStore};
//! use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
//!
//! let options = PgConnectOptions::from_str("postgres://app@db.internal/app")?
//!     .options([("search_path", "baton")]);
//! let pool = PgPoolOptions::new().connect_with(options).await?;
//! sqlx::query("CREATE SCHEMA IF NOT EXISTS baton").execute(&pool).await?;
//! migrate(&pool).await?;
//! let store = PgStore::new(pool);
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
//! use baton_core::postgres::PgStore;
//! use baton_core::refresher::wall_clock;
//! use baton_core::{AccessGrant, AccessToken, LinkId, RefreshToken, TokenSet};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // Connects a pool and runs the migration.
//! let store = PgStore::connect("postgres://app@db.internal/app").await?;
//!
//! // Enrol a link when the user completes the authorization-code flow.
//! let link = LinkId::new("github", "octocat");
//! let pair = TokenSet {
//!     access: AccessGrant {
//!         token: AccessToken::new("ghu_from_the_code_exchange"),
//!         expires_at: wall_clock() + Duration::from_secs(8 * 3600),
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

use std::error::Error as StdError;
use std::fmt;
use std::io;

use sqlx::error::DatabaseError;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgRow;
use sqlx::Row;

pub use sqlx::postgres::PgPool;

use crate::driver::LinkStore;
use crate::{
    AccessGrant, AccessToken, CachedFailure, CasOutcome, Change, Expect, Guard, Lease, LinkId,
    OwnerId, RefreshToken, StoreFailure, StoredLink, Timestamp, TokenSet, Update, Write,
};

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
}

/// How many times a compare-and-swap tries its update while the rows it
/// reads back after losing keep satisfying its guard (each time, another
/// writer changed the row between the update and the read).
const MAX_ATTEMPTS: usize = 16;

/// The columns of a row, in the order [`decode`] reads them.
macro_rules! columns {
    () => {
        "access_token, access_expires_at_ms, refresh_token, failure_kind, failure_reason, \
         lease_owner, lease_presenting, lease_expires_at_ms"
    };
}

const READ_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM baton_links WHERE provider = $1 AND user_id = $2"
);

/// The compare-and-swap: one statement whatever the write, so one prepared
/// statement per connection. Each update group has a flag (`true`: set it)
/// and each guard field a flag (`true`: any value admitted).
const CAS_SQL: &str = concat!(
    "UPDATE baton_links SET \
        access_token = CASE WHEN $3::bool THEN $4::text ELSE access_token END, \
        access_expires_at_ms = CASE WHEN $3::bool THEN $5::bigint ELSE access_expires_at_ms END, \
        refresh_token = CASE WHEN $6::bool THEN $7::text ELSE refresh_token END, \
        failure_kind = CASE WHEN $8::bool THEN $9::text ELSE failure_kind END, \
        failure_reason = CASE WHEN $8::bool THEN $10::text ELSE failure_reason END, \
        lease_owner = CASE WHEN $11::bool THEN $12::text ELSE lease_owner END, \
        lease_presenting = CASE WHEN $11::bool THEN $13::text ELSE lease_presenting END, \
        lease_expires_at_ms = CASE WHEN $11::bool THEN $14::bigint ELSE lease_expires_at_ms END, \
        updated_at = now() \
     WHERE provider = $1 AND user_id = $2 \
       AND ($15::bool OR refresh_token IS NOT DISTINCT FROM $16::text) \
       AND ($17::bool OR (failure_kind IS NOT DISTINCT FROM $18::text \
                          AND failure_reason IS NOT DISTINCT FROM $19::text)) \
       AND ($20::bool OR (lease_owner IS NOT DISTINCT FROM $21::text \
                          AND lease_presenting IS NOT DISTINCT FROM $22::text \
                          AND lease_expires_at_ms IS NOT DISTINCT FROM $23::bigint)) \
     RETURNING ",
    columns!()
);

const INSERT_SQL: &str = concat!(
    "INSERT INTO baton_links (provider, user_id, ",
    columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (provider, user_id) DO UPDATE SET \
        access_token = EXCLUDED.access_token, \
        access_expires_at_ms = EXCLUDED.access_expires_at_ms, \
        refresh_token = EXCLUDED.refresh_token, \
        failure_kind = EXCLUDED.failure_kind, \
        failure_reason = EXCLUDED.failure_reason, \
        lease_owner = EXCLUDED.lease_owner, \
        lease_presenting = EXCLUDED.lease_presenting, \
        lease_expires_at_ms = EXCLUDED.lease_expires_at_ms, \
        updated_at = now()"
);

const DELETE_SQL: &str = "DELETE FROM baton_links WHERE provider = $1 AND user_id = $2";

impl PgStore {
    /// A store on `pool`, whose `search_path` must find the `baton_links`
    /// table (see [`migrate`]). Does no I/O.
    pub fn new(pool: PgPool) -> PgStore {
        PgStore { pool }
    }

    /// Connects a pool to `url` with sqlx's default pool options, runs
    /// [`migrate`] on it and returns a store on it.
    pub async fn connect(url: &str) -> Result<PgStore, PgStoreError> {
        let pool = PgPool::connect(url).await.map_err(PgStoreError::Connect)?;
        migrate(&pool).await?;
        Ok(PgStore::new(pool))
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
        let (access_token, access_expires_at_ms) =
            encode_access(&row.access).map_err(|e| e.failure(link, doing))?;
        let (failure_kind, failure_reason) = encode_failure(&row.failure);
        let (lease_owner, lease_presenting, lease_expires_at_ms) =
            encode_lease(&row.lease).map_err(|e| e.failure(link, doing))?;
        sqlx::query(INSERT_SQL)
            .bind(link.provider())
            .bind(link.user())
            .bind(access_token)
            .bind(access_expires_at_ms)
            .bind(row.refresh_token.as_ref().map(RefreshToken::expose_secret))
            .bind(failure_kind)
            .bind(failure_reason)
            .bind(lease_owner)
            .bind(lease_presenting)
            .bind(lease_expires_at_ms)
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
        row.map(|row| decode(&row).map_err(|e| e.failure(link, doing)))
            .transpose()
    }

    /// The guarded update; `Some(row after it)` if it applied.
    async fn try_update(
        &self,
        link: &LinkId,
        guard: &EncodedGuard<'_>,
        update: &EncodedUpdate<'_>,
    ) -> Result<Option<StoredLink>, StoreFailure> {
        let row = sqlx::query(CAS_SQL)
            .bind(link.provider())
            .bind(link.user())
            .bind(update.access.is_some())
            .bind(update.access.and_then(|(token, _)| token))
            .bind(update.access.and_then(|(_, expiry)| expiry))
            .bind(update.refresh_token.is_some())
            .bind(update.refresh_token.flatten())
            .bind(update.failure.is_some())
            .bind(update.failure.and_then(|(kind, _)| kind))
            .bind(update.failure.and_then(|(_, reason)| reason))
            .bind(update.lease.is_some())
            .bind(update.lease.and_then(|(owner, _, _)| owner))
            .bind(update.lease.and_then(|(_, presenting, _)| presenting))
            .bind(update.lease.and_then(|(_, _, expiry)| expiry))
            .bind(guard.refresh_token.is_none())
            .bind(guard.refresh_token.flatten())
            .bind(guard.failure.is_none())
            .bind(guard.failure.and_then(|(kind, _)| kind))
            .bind(guard.failure.and_then(|(_, reason)| reason))
            .bind(guard.lease.is_none())
            .bind(guard.lease.and_then(|(owner, _, _)| owner))
            .bind(guard.lease.and_then(|(_, presenting, _)| presenting))
            .bind(guard.lease.and_then(|(_, _, expiry)| expiry))
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| failure(link, Doing::Writing, &error))?;
        row.map(|row| decode(&row).map_err(|e| e.failure(link, Doing::WroteButUnreadable)))
            .transpose()
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
        let guard = EncodedGuard::new(&write.guard);
        // `Err`: the update sets a value the table cannot hold; it fails
        // unless the guard fails first.
        let update = EncodedUpdate::new(&write.update);
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

// ---------------------------------------------------------------------------
// Encoding: Rust values to column values.

/// The access grant's columns.
type AccessColumns<'a> = (Option<&'a str>, Option<i64>);
/// The cached failure's columns: kind and reason.
type FailureColumns<'a> = (Option<&'static str>, Option<&'a str>);
/// The lease's columns: owner, presenting token, expiry.
type LeaseColumns<'a> = (Option<&'a str>, Option<&'a str>, Option<i64>);

const REJECTED: &str = "rejected";
const OUTCOME_UNKNOWN: &str = "outcome_unknown";

/// A value the table cannot hold: a timestamp beyond `i64::MAX`
/// milliseconds, in the named column.
#[derive(Clone, Copy, Debug)]
struct Unstorable {
    column: &'static str,
}

impl Unstorable {
    fn failure(self, link: &LinkId, doing: Doing) -> StoreFailure {
        StoreFailure {
            reason: format!(
                "postgres: a timestamp for column {} is beyond the BIGINT range of \
                 milliseconds, so {} baton_links for {link} was refused (nothing was written)",
                self.column,
                doing.verb(),
            ),
        }
    }
}

fn millis(at: Timestamp, column: &'static str) -> Result<i64, Unstorable> {
    i64::try_from(at.as_millis()).map_err(|_| Unstorable { column })
}

fn encode_access(access: &Option<AccessGrant>) -> Result<AccessColumns<'_>, Unstorable> {
    Ok(match access {
        None => (None, None),
        Some(grant) => (
            Some(grant.token.expose_secret()),
            Some(millis(grant.expires_at, "access_expires_at_ms")?),
        ),
    })
}

fn encode_failure(failure: &Option<CachedFailure>) -> FailureColumns<'_> {
    match failure {
        None => (None, None),
        Some(CachedFailure::Rejected { reason }) => (Some(REJECTED), Some(reason)),
        Some(CachedFailure::OutcomeUnknown) => (Some(OUTCOME_UNKNOWN), None),
    }
}

fn encode_lease(lease: &Option<Lease>) -> Result<LeaseColumns<'_>, Unstorable> {
    Ok(match lease {
        None => (None, None, None),
        Some(lease) => (
            Some(lease.owner.as_str()),
            Some(lease.presenting.expose_secret()),
            Some(millis(lease.expires_at, "lease_expires_at_ms")?),
        ),
    })
}

/// A [`Guard`] as bind values: `None` for [`Expect::Any`].
struct EncodedGuard<'a> {
    refresh_token: Option<Option<&'a str>>,
    failure: Option<FailureColumns<'a>>,
    lease: Option<LeaseColumns<'a>>,
}

impl<'a> EncodedGuard<'a> {
    /// `None` if the guard names a value no row can hold (so no row
    /// satisfies it).
    fn new(guard: &'a Guard) -> Option<Self> {
        Some(EncodedGuard {
            refresh_token: match &guard.refresh_token {
                Expect::Any => None,
                Expect::Exactly(token) => Some(token.as_ref().map(RefreshToken::expose_secret)),
            },
            failure: match &guard.failure {
                Expect::Any => None,
                Expect::Exactly(failure) => Some(encode_failure(failure)),
            },
            lease: match &guard.lease {
                Expect::Any => None,
                Expect::Exactly(lease) => Some(encode_lease(lease).ok()?),
            },
        })
    }
}

/// An [`Update`] as bind values: `None` for [`Change::Keep`].
#[derive(Clone, Copy)]
struct EncodedUpdate<'a> {
    access: Option<AccessColumns<'a>>,
    refresh_token: Option<Option<&'a str>>,
    failure: Option<FailureColumns<'a>>,
    lease: Option<LeaseColumns<'a>>,
}

impl<'a> EncodedUpdate<'a> {
    fn new(update: &'a Update) -> Result<Self, Unstorable> {
        Ok(EncodedUpdate {
            access: match &update.access {
                Change::Keep => None,
                Change::Set(access) => Some(encode_access(access)?),
            },
            refresh_token: match &update.refresh_token {
                Change::Keep => None,
                Change::Set(token) => Some(token.as_ref().map(RefreshToken::expose_secret)),
            },
            failure: match &update.failure {
                Change::Keep => None,
                Change::Set(failure) => Some(encode_failure(failure)),
            },
            lease: match &update.lease {
                Change::Keep => None,
                Change::Set(lease) => Some(encode_lease(lease)?),
            },
        })
    }
}

// ---------------------------------------------------------------------------
// Decoding: a row to a `StoredLink`.

/// Why a row could not be turned into a [`StoredLink`]. Never holds a
/// column's value.
#[derive(Debug)]
enum Undecodable {
    /// sqlx could not read the column (missing, or of another type).
    Column { column: &'static str },
    /// The row's columns contradict each other or the schema.
    Inconsistent {
        column: &'static str,
        problem: &'static str,
    },
}

impl Undecodable {
    fn failure(self, link: &LinkId, doing: Doing) -> StoreFailure {
        let problem = match self {
            Undecodable::Column { column } => {
                format!("column {column} is missing or not of the type baton's migration gives it")
            }
            Undecodable::Inconsistent { column, problem } => format!("column {column} {problem}"),
        };
        StoreFailure {
            reason: format!(
                "postgres: the baton_links row for {link} is inconsistent ({problem}) while {}{}",
                doing.verb(),
                doing.suffix(Certainty::Unknown),
            ),
        }
    }
}

fn column<'r, T>(row: &'r PgRow, name: &'static str) -> Result<T, Undecodable>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(name)
        .map_err(|_| Undecodable::Column { column: name })
}

fn timestamp(millis: i64, column: &'static str) -> Result<Timestamp, Undecodable> {
    u64::try_from(millis)
        .map(Timestamp::from_millis)
        .map_err(|_| Undecodable::Inconsistent {
            column,
            problem: "is negative",
        })
}

fn decode(row: &PgRow) -> Result<StoredLink, Undecodable> {
    let access = match (
        column::<Option<String>>(row, "access_token")?,
        column::<Option<i64>>(row, "access_expires_at_ms")?,
    ) {
        (None, None) => None,
        (Some(token), Some(expiry)) => Some(AccessGrant {
            token: AccessToken::new(token),
            expires_at: timestamp(expiry, "access_expires_at_ms")?,
        }),
        (Some(_), None) => {
            return Err(Undecodable::Inconsistent {
                column: "access_expires_at_ms",
                problem: "is null while access_token is set",
            })
        }
        (None, Some(_)) => {
            return Err(Undecodable::Inconsistent {
                column: "access_expires_at_ms",
                problem: "is set while access_token is null",
            })
        }
    };
    let refresh_token = column::<Option<String>>(row, "refresh_token")?.map(RefreshToken::new);
    let failure = match (
        column::<Option<String>>(row, "failure_kind")?.as_deref(),
        column::<Option<String>>(row, "failure_reason")?,
    ) {
        (None, None) => None,
        (Some(REJECTED), Some(reason)) => Some(CachedFailure::Rejected { reason }),
        (Some(OUTCOME_UNKNOWN), None) => Some(CachedFailure::OutcomeUnknown),
        (None, Some(_)) => {
            return Err(Undecodable::Inconsistent {
                column: "failure_reason",
                problem: "is set while failure_kind is null",
            })
        }
        (Some(REJECTED), None) => {
            return Err(Undecodable::Inconsistent {
                column: "failure_reason",
                problem: "is null while failure_kind is 'rejected'",
            })
        }
        (Some(OUTCOME_UNKNOWN), Some(_)) => {
            return Err(Undecodable::Inconsistent {
                column: "failure_reason",
                problem: "is set while failure_kind is 'outcome_unknown'",
            })
        }
        (Some(_), _) => {
            return Err(Undecodable::Inconsistent {
                column: "failure_kind",
                problem: "holds neither 'rejected' nor 'outcome_unknown'",
            })
        }
    };
    let lease = match (
        column::<Option<String>>(row, "lease_owner")?,
        column::<Option<String>>(row, "lease_presenting")?,
        column::<Option<i64>>(row, "lease_expires_at_ms")?,
    ) {
        (None, None, None) => None,
        (Some(owner), Some(presenting), Some(expiry)) => Some(Lease {
            owner: OwnerId::new(owner),
            presenting: RefreshToken::new(presenting),
            expires_at: timestamp(expiry, "lease_expires_at_ms")?,
        }),
        (owner, presenting, _) => {
            let column = match (owner, presenting) {
                (None, _) => "lease_owner",
                (_, None) => "lease_presenting",
                _ => "lease_expires_at_ms",
            };
            return Err(Undecodable::Inconsistent {
                column,
                problem: "is null while other lease columns are set",
            });
        }
    };
    Ok(StoredLink {
        access,
        refresh_token,
        failure,
        lease,
    })
}

// ---------------------------------------------------------------------------
// Failures: sqlx errors to token-free reasons.

/// The operation that failed, for the reason's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Doing {
    Reading,
    /// The read after a compare-and-swap whose update applied to no row.
    ReadingAfterLoss,
    Writing,
    /// The update applied, and the row it returned could not be decoded.
    WroteButUnreadable,
    Inserting,
    Deleting,
}

/// Whether a failed statement may have taken effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Certainty {
    /// The statement was never sent, or the server refused it.
    NotApplied,
    /// The connection failed while the statement was in flight.
    Unknown,
}

impl Doing {
    fn verb(self) -> &'static str {
        match self {
            Doing::Reading => "reading",
            Doing::ReadingAfterLoss => "reading back after a lost compare-and-swap on",
            Doing::Writing => "writing",
            Doing::WroteButUnreadable => "reading the result of a write to",
            Doing::Inserting => "inserting into",
            Doing::Deleting => "deleting from",
        }
    }

    fn suffix(self, certainty: Certainty) -> &'static str {
        match (self, certainty) {
            (Doing::Reading, _) => "",
            (Doing::ReadingAfterLoss, _) => " (the compare-and-swap wrote nothing)",
            (Doing::WroteButUnreadable, _) => " (the write was applied)",
            (Doing::Writing | Doing::Inserting | Doing::Deleting, Certainty::NotApplied) => {
                " (nothing was written)"
            }
            (Doing::Writing | Doing::Inserting | Doing::Deleting, Certainty::Unknown) => {
                " (the write may or may not have been applied)"
            }
        }
    }
}

/// What went wrong, in words that never quote a value.
struct Described {
    what: String,
    certainty: Certainty,
}

fn failure(link: &LinkId, doing: Doing, error: &sqlx::Error) -> StoreFailure {
    let Described { what, certainty } = describe(error);
    StoreFailure {
        reason: format!(
            "postgres: {what} while {} baton_links for {link}{}",
            doing.verb(),
            doing.suffix(certainty)
        ),
    }
}

/// Describes `error` from its kind alone: the sqlx variant, the SQLSTATE
/// code, the constraint's name. Messages from the server or the driver are
/// never quoted, since they can echo bound values (tokens).
fn describe(error: &sqlx::Error) -> Described {
    use Certainty::{NotApplied, Unknown};
    let (what, certainty) = match error {
        sqlx::Error::Database(error) => {
            let certainty = match error.code().as_deref().map(|code| code.get(..2)) {
                // Operator intervention (the connection was terminated),
                // connection exceptions, system and internal errors: with
                // synchronous replication, for one, a backend terminated
                // while it waits for the standby has already committed.
                Some(Some("57" | "08" | "58" | "XX")) | None => Unknown,
                // Any other error is the statement's own, which therefore
                // did not take effect.
                _ => NotApplied,
            };
            (describe_database(error.as_ref()), certainty)
        }
        sqlx::Error::Io(error) => (describe_io(error), Unknown),
        sqlx::Error::Tls(_) => ("TLS failed while connecting".to_owned(), NotApplied),
        sqlx::Error::Configuration(_) => {
            ("the connection options are invalid".to_owned(), NotApplied)
        }
        sqlx::Error::Protocol(_) => (
            "protocol error (the server sent something unexpected)".to_owned(),
            Unknown,
        ),
        sqlx::Error::PoolTimedOut => (
            "timed out waiting for a connection from the pool".to_owned(),
            NotApplied,
        ),
        sqlx::Error::PoolClosed => ("the connection pool is closed".to_owned(), NotApplied),
        sqlx::Error::WorkerCrashed => (
            "the connection's background worker crashed".to_owned(),
            Unknown,
        ),
        sqlx::Error::Encode(_) => ("a value could not be encoded".to_owned(), NotApplied),
        sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. } => (
            "a result could not be decoded (is the schema the one baton's migration made?)"
                .to_owned(),
            Unknown,
        ),
        _ => ("unexpected database client error".to_owned(), Unknown),
    };
    Described { what, certainty }
}

fn describe_io(error: &io::Error) -> String {
    use io::ErrorKind::*;
    let kind = error.kind();
    match kind {
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected => {
            format!("connection closed ({kind})")
        }
        ConnectionRefused => "connection refused (is the server up?)".to_owned(),
        TimedOut => "connection timed out".to_owned(),
        _ => format!("connection error ({kind})"),
    }
}

fn describe_database(error: &dyn DatabaseError) -> String {
    let code = error.code();
    let code = code.as_deref().unwrap_or("unknown");
    let what = match code {
        "57P01" => "the server terminated the connection (administrator command)",
        "57P02" | "57P03" => "the server is shutting down or starting up",
        "57014" => "the statement was cancelled (statement timeout or cancel request)",
        "40001" => "serialization failure",
        "40P01" => "deadlock detected",
        "42P01" => {
            "table baton_links does not exist (run baton_core::postgres::migrate with this \
             pool's search_path)"
        }
        "42703" => "a column of baton_links is missing (has the migration run?)",
        "42501" => "permission denied",
        "25006" => "the database is read-only",
        "22021" => "a text value is not valid in the database's encoding (a NUL character?)",
        "23514" => "a check constraint was violated",
        "23502" => "a not-null constraint was violated",
        c if c.starts_with("08") => "connection failure",
        c if c.starts_with("53") => "the server is out of resources",
        c if c.starts_with("23") => "an integrity constraint was violated",
        c if c.starts_with("22") => "a value was rejected by the database",
        _ => "the database returned an error",
    };
    match error.constraint() {
        Some(constraint) => format!("{what} (SQLSTATE {code}, constraint {constraint})"),
        None => format!("{what} (SQLSTATE {code})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_per_operation() {
        for sql in [READ_SQL, CAS_SQL, INSERT_SQL, DELETE_SQL] {
            assert!(!sql.contains(';'), "{sql}");
        }
        assert!(CAS_SQL.ends_with(columns!()));
        assert_eq!(CAS_SQL.matches("$23::bigint").count(), 1);
    }

    #[test]
    fn io_failures_are_described_by_kind() {
        let error = sqlx::Error::Io(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "peer sent secret-R0",
        ));
        let failure = failure(&LinkId::new("github", "octocat"), Doing::Writing, &error);
        assert_eq!(
            failure.reason,
            "postgres: connection closed (connection reset) while writing baton_links for \
             github/octocat (the write may or may not have been applied)"
        );
    }

    #[test]
    fn protocol_messages_are_never_quoted() {
        let error = sqlx::Error::Protocol("unexpected secret-R0".into());
        let failure = failure(&LinkId::new("github", "octocat"), Doing::Reading, &error);
        assert!(!failure.reason.contains("secret"), "{}", failure.reason);
    }

    #[test]
    fn unstorable_timestamps_are_refused_by_column() {
        let grant = Some(AccessGrant {
            token: AccessToken::new("secret-A0"),
            expires_at: Timestamp::from_millis(u64::MAX),
        });
        let unstorable = encode_access(&grant).unwrap_err();
        let failure = unstorable.failure(&LinkId::new("github", "octocat"), Doing::Inserting);
        assert!(failure.reason.contains("access_expires_at_ms"));
        assert!(failure.reason.contains("nothing was written"));
        assert!(!failure.reason.contains("secret"));
        let max = Timestamp::from_millis(i64::MAX as u64);
        assert_eq!(millis(max, "x").unwrap(), i64::MAX);
    }

    #[test]
    fn store_errors_display_without_details() {
        let error = PgStoreError::Connect(sqlx::Error::PoolTimedOut);
        assert_eq!(
            error.to_string(),
            "postgres: could not connect: timed out waiting for a connection from the pool"
        );
        assert!(error.source().is_some());
    }
}
