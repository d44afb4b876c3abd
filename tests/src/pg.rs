//! Throwaway PostgreSQL databases for tests: each test gets a database of its
//! own, migrated with [`baton_core::postgres::migrate`], and drops it when
//! done.
//!
//! The server is the machine's PostgreSQL, reached through an *admin*
//! database: `postgres://postgres@127.0.0.1:5432/postgres` unless
//! [`ADMIN_URL_VAR`] (`BATON_TEST_DATABASE_URL`) names another. The admin
//! role must be allowed to create and drop databases.
//!
//! When the server cannot be reached, [`scratch_database`] returns `None`
//! after printing a loud `SKIPPED` line, and the test returns early; under
//! CI (`CI=true`) it panics instead, since a missing database there is a
//! broken pipeline, not a reason to skip. `scripts/ensure-postgres` starts
//! the local cluster.
//!
//! ```no_run
//! # async fn example() {
//! use baton_tests::pg::scratch_database;
//!
//! let Some(db) = scratch_database("my_test").await else {
//!     return; // skipped: no server, and not under CI
//! };
//! use baton_core::postgres::{PgStore, TokensAtRest};
//! let store = PgStore::new(db.pool().clone(), TokensAtRest::Encrypted(baton_tests::pg::test_key_ring()));
//! // ... test against `store` ...
//! db.cleanup().await;
//! # }
//! ```

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

/// The admin database used when [`ADMIN_URL_VAR`] is unset.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The environment variable naming the admin database's URL: a database on
/// the server where scratch databases are created (not one of them).
pub const ADMIN_URL_VAR: &str = "BATON_TEST_DATABASE_URL";

/// How long to wait for the server before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest database name PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_NAME_LEN: usize = 63;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The admin database's URL: [`ADMIN_URL_VAR`] if set, else
/// [`DEFAULT_ADMIN_URL`].
pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// Whether this run is under CI (`CI=true`), where a missing database is a
/// failure rather than a skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true"))
}

/// A database created for one test, with a pool connected to it and
/// baton's migration applied.
///
/// Call [`ScratchDb::cleanup`] at the end of the test. If the test panics
/// first (or forgets), `Drop` drops the database anyway, best effort: it
/// blocks on a thread of its own, with its own small tokio runtime, so it
/// works inside or outside an async test and while unwinding. Failures of
/// that fallback are printed, never raised.
#[derive(Debug)]
pub struct ScratchDb {
    name: String,
    url: String,
    admin: PgConnectOptions,
    /// `None` once cleaned up.
    pool: Option<PgPool>,
}

/// Runs `scripts/ensure-postgres` (which starts the machine's cluster if it
/// is down) the first time it is called in this process; says whether it
/// ran and succeeded, so the caller knows a retry is worth it.
fn start_postgres_once() -> bool {
    static STARTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STARTED.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/ensure-postgres");
        eprintln!("PostgreSQL is unreachable: running {script}");
        std::process::Command::new("bash")
            .arg(script)
            .status()
            .map(|status| status.success())
            .unwrap_or(false)
    })
}

/// Creates a uniquely named database (`prefix`, the process id, a counter
/// and the time in milliseconds), migrates it, and returns it with a pool.
///
/// Returns `None` (after a loud `SKIPPED` message on stderr) if the server
/// is unreachable, unless `CI=true`, where that panics. Any failure after
/// the server answered (creating the database, migrating it) panics.
pub async fn scratch_database(prefix: &str) -> Option<ScratchDb> {
    let admin_url = admin_url();
    let admin = match PgConnectOptions::from_str(&admin_url) {
        Ok(options) => options,
        Err(error) => panic!(
            "{ADMIN_URL_VAR}={:?} is not a PostgreSQL URL: {error}",
            redacted(&admin_url)
        ),
    };
    let first = match connect(&admin).await {
        Ok(conn) => Ok(conn),
        // The repository starts its own database: try once per process.
        Err(_) if start_postgres_once() => connect(&admin).await,
        Err(why) => Err(why),
    };
    let mut conn = match first {
        Ok(conn) => conn,
        Err(why) => {
            let message = format!(
                "PostgreSQL at {} is unreachable ({why}); \
                 run scripts/ensure-postgres, or set {ADMIN_URL_VAR} to an admin database",
                redacted(&admin_url)
            );
            if under_ci() {
                panic!("{message} (CI=true: a missing database is a failure)");
            }
            eprintln!();
            eprintln!("**************************************************************");
            eprintln!("SKIPPED: {message}; set CI=true to make this a failure");
            eprintln!("**************************************************************");
            return None;
        }
    };

    let name = unique_name(prefix);
    sqlx::query(&format!("CREATE DATABASE {}", quote_ident(&name)))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|error| panic!("creating scratch database {name}: {error}"));
    let _ = conn.close().await;

    // From here on the database exists: if anything below panics, Drop
    // removes it.
    let mut db = ScratchDb {
        url: with_database(&admin_url, &name),
        admin,
        name,
        pool: None,
    };
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(db.options())
        .await
        .unwrap_or_else(|error| panic!("connecting to scratch database {}: {error}", db.name));
    baton_core::postgres::migrate(&pool)
        .await
        .unwrap_or_else(|error| panic!("migrating scratch database {}: {error}", db.name));
    db.pool = Some(pool);
    Some(db)
}

impl ScratchDb {
    /// A pool connected to the database (at most 4 connections).
    pub fn pool(&self) -> &PgPool {
        self.pool
            .as_ref()
            .expect("a scratch database's pool lives until cleanup")
    }

    /// The database's URL: the admin URL with the database name replaced.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection options for the database, to build pools of other shapes.
    pub fn options(&self) -> PgConnectOptions {
        self.admin.clone().database(&self.name)
    }

    /// A new connection to the admin database (not this one): for
    /// inspecting `pg_stat_activity` or terminating this database's
    /// backends.
    pub async fn admin_connection(&self) -> Result<PgConnection, sqlx::Error> {
        connect(&self.admin).await
    }

    /// Closes the pool (and waits for its connections to close) and drops
    /// the database, `WITH (FORCE)` so connections from other pools the
    /// test opened do not keep it alive. Panics if the drop fails.
    pub async fn cleanup(mut self) {
        if let Some(pool) = self.pool.take() {
            pool.close().await;
        }
        let result = drop_database(&self.admin, &self.name).await;
        // Done, whatever the result: Drop must not try again.
        self.name.clear();
        if let Err(error) = result {
            panic!("dropping scratch database: {error}");
        }
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        // Dropping the pool does not close its connections at once;
        // `WITH (FORCE)` terminates them.
        drop(self.pool.take());
        let admin = self.admin.clone();
        let name = std::mem::take(&mut self.name);
        let dropper = std::thread::Builder::new()
            .name(format!("drop {name}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| error.to_string())?;
                runtime
                    .block_on(drop_database(&admin, &name))
                    .map_err(|error| format!("{name}: {error}"))
            });
        let outcome = match dropper {
            Ok(thread) => thread
                .join()
                .unwrap_or_else(|_| Err("the dropping thread panicked".to_owned())),
            Err(error) => Err(format!("could not start the dropping thread: {error}")),
        };
        if let Err(error) = outcome {
            eprintln!("WARNING: could not drop a scratch database ({error}); drop it by hand");
        }
    }
}

async fn connect(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

async fn drop_database(admin: &PgConnectOptions, name: &str) -> Result<(), sqlx::Error> {
    let mut conn = connect(admin).await?;
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(name)
    ))
    .execute(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(())
}

/// `prefix` (lower-cased, anything but ASCII letters, digits and `_` made
/// `_`), then the process id, a per-process counter and the time in
/// milliseconds; at most 63 bytes, cutting the prefix.
fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis());
    let suffix = format!("_{}_{n}_{millis}", std::process::id());
    let mut prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
        prefix.insert(0, 't');
    }
    prefix.truncate(MAX_NAME_LEN.saturating_sub(suffix.len()));
    prefix + &suffix
}

/// `url` with any password replaced by `***`, for messages.
fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => match authority[..at].find(':') {
            Some(colon) => format!(
                "{}{}:***{}",
                &url[..scheme_end],
                &authority[..colon],
                &rest[at..]
            ),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `url` with its database (the path) replaced by `database`, keeping any
/// query string.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let base = match base[authority_start..].find('/') {
        Some(at) => &base[..authority_start + at],
        None => base,
    };
    format!("{base}/{database}{query}")
}

/// A key ring for tests: a fixed key under id `test-1`. Never use a fixed
/// key outside tests.
pub fn test_key_ring() -> baton_core::postgres::KeyRing {
    baton_core::postgres::KeyRing::new("test-1", &[0x5a; 32]).expect("a valid test key")
}

/// Panics unless every token column of `baton_links` in `db` is NULL or a
/// baton ciphertext (`bt1:<key id>:...`): the table holds no token text.
/// Connects on its own (the test may have closed its pool).
pub async fn assert_only_ciphertext(db: &ScratchDb) {
    let mut connection = db.options().connect().await.expect("connecting");
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT provider || '/' || user_id, c.name, c.value FROM baton_links, \
         LATERAL (VALUES ('access_token', access_token), ('refresh_token', refresh_token), \
                         ('lease_presenting', lease_presenting)) AS c(name, value) \
         WHERE c.value IS NOT NULL",
    )
    .fetch_all(&mut connection)
    .await
    .expect("reading baton_links");
    for (link, column, value) in rows {
        assert!(
            value.starts_with("bt1:"),
            "{link}: column {column} holds something other than a baton ciphertext"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_valid_identifiers() {
        let a = unique_name("Store-Contract!");
        let b = unique_name("Store-Contract!");
        assert_ne!(a, b);
        assert!(a.starts_with("store_contract__"), "{a}");
        let long = unique_name(&"x".repeat(200));
        assert!(long.len() <= MAX_NAME_LEN, "{long}");
        assert!(unique_name("9lives").starts_with("t9lives_"));
    }

    #[test]
    fn passwords_are_redacted_from_messages() {
        assert_eq!(
            redacted("postgres://u:hunter2@h:5432/db?x=1"),
            "postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(redacted(DEFAULT_ADMIN_URL), DEFAULT_ADMIN_URL);
        assert_eq!(redacted("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn urls_get_the_scratch_database() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "db1"),
            "postgres://postgres@127.0.0.1:5432/db1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/admin?sslmode=disable", "db1"),
            "postgres://u:p@h/db1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "db1"),
            "postgres://h:5432/db1"
        );
    }
}
