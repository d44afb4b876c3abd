//! [`PgStore::reencrypt`]: every row's tokens sealed under the ring's
//! current key, at once, instead of field by field as the machine rewrites
//! them. For finishing a key rotation (so an old key can leave the ring) and
//! for encrypting a table written in plaintext.

use sqlx::postgres::PgRow;

use super::cipher::{KeyRing, TokensAtRest, Unopenable};
use super::decode::{column, Undecodable};
use super::failure::{failure, Doing};
use super::PgStore;
use crate::{LinkId, StoreFailure};

/// What [`PgStore::reencrypt`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resealed {
    /// Rows whose tokens it sealed under the current key.
    pub rows: u64,
    /// Rows that kept changing under it (other writers), left for their
    /// next write or the next run. Run again until this is zero.
    pub left_changing: u64,
}

/// Rows read per round trip.
const PAGE: i64 = 256;
/// How often one row is re-read after another writer changed it under us.
const ATTEMPTS_PER_ROW: usize = 8;

const PAGE_SQL: &str = "SELECT provider, user_id, access_token, refresh_token, lease_presenting \
     FROM baton_links \
     WHERE ($1::text IS NULL OR (provider, user_id) > ($1::text, $2::text)) \
       AND (access_token NOT LIKE $3 OR refresh_token NOT LIKE $3 \
            OR lease_presenting NOT LIKE $3) \
     ORDER BY provider, user_id LIMIT $4";

const ROW_SQL: &str = "SELECT provider, user_id, access_token, refresh_token, lease_presenting \
     FROM baton_links WHERE provider = $1 AND user_id = $2";

/// Guarded by the exact values read, so a token another writer stored in
/// between is never replaced by the older one.
const RESEAL_SQL: &str = "UPDATE baton_links SET \
        access_token = $3, refresh_token = $4, refresh_token_hash = $5, \
        lease_presenting = $6, lease_presenting_hash = $7, updated_at = now() \
     WHERE provider = $1 AND user_id = $2 \
       AND access_token IS NOT DISTINCT FROM $8 \
       AND refresh_token IS NOT DISTINCT FROM $9 \
       AND lease_presenting IS NOT DISTINCT FROM $10";

/// The token columns of one row, as stored.
struct Stored {
    link: LinkId,
    access_token: Option<String>,
    refresh_token: Option<String>,
    lease_presenting: Option<String>,
}

impl Stored {
    fn from_row(row: &PgRow) -> Result<Stored, Undecodable> {
        Ok(Stored {
            link: LinkId::new(
                column::<String>(row, "provider")?,
                column::<String>(row, "user_id")?,
            ),
            access_token: column(row, "access_token")?,
            refresh_token: column(row, "refresh_token")?,
            lease_presenting: column(row, "lease_presenting")?,
        })
    }

    fn is_current(&self, ring: &KeyRing) -> bool {
        [
            &self.access_token,
            &self.refresh_token,
            &self.lease_presenting,
        ]
        .into_iter()
        .flatten()
        .all(|stored| ring.is_current(stored))
    }
}

/// One column re-sealed: the new value and, for a guarded column, its hash.
type Resealing = (Option<String>, Option<Vec<u8>>);

fn reseal_column(
    ring: &KeyRing,
    link: &LinkId,
    column: &'static str,
    stored: &Option<String>,
    hashed: bool,
) -> Result<Resealing, Undecodable> {
    let Some(stored) = stored else {
        return Ok((None, None));
    };
    let token = match ring.open(link, column, stored) {
        Ok(token) => token,
        // What this operation is for: a table written in plaintext.
        Err(Unopenable::Plaintext) => stored.clone(),
        Err(problem) => return Err(Undecodable::Sealed { column, problem }),
    };
    Ok((
        Some(ring.seal(link, column, &token)),
        hashed.then(|| ring.current_hash(link, &token)),
    ))
}

impl PgStore {
    /// Seals every token in the table under the key ring's current key:
    /// tokens stored in plaintext, and tokens sealed under old keys. Each
    /// row is rewritten only if its token columns still hold what was read
    /// (other writers may run meanwhile), in pages, and a run can be
    /// stopped and started again at any time.
    ///
    /// Run it after making a new key current, before taking the old one out
    /// of the ring; or after switching a plaintext table to
    /// [`TokensAtRest::Encrypted`], once every replica runs with the ring
    /// (until then, the encrypted replicas refuse the rows the plaintext
    /// ones write, as [`StoreFailure`]s, and the reverse).
    ///
    /// Rewriting a plaintext row compares its token text in the `UPDATE`'s
    /// guard, as a plaintext store's every write does; sealed rows are
    /// compared by ciphertext.
    ///
    /// Fails, naming the link and the column, at the first value the ring
    /// cannot open (a key missing from the ring, or a different key under
    /// its id); rows before it stay re-sealed, that row and the rest stay as
    /// they were. A plaintext store has nothing to seal with, and fails at
    /// once.
    pub async fn reencrypt(&self) -> Result<Resealed, StoreFailure> {
        let TokensAtRest::Encrypted(ring) = &*self.at_rest else {
            return Err(StoreFailure {
                reason: "postgres: reencrypt needs a store with a key ring \
                         (TokensAtRest::Encrypted); this one keeps tokens in plaintext"
                    .to_owned(),
            });
        };
        let pattern = ring.current_pattern();
        let table = LinkId::new("*", "*");
        let mut done = Resealed::default();
        let mut after: Option<LinkId> = None;
        loop {
            let rows = sqlx::query(PAGE_SQL)
                .bind(after.as_ref().map(LinkId::provider))
                .bind(after.as_ref().map(LinkId::user))
                .bind(&pattern)
                .bind(PAGE)
                .fetch_all(&self.pool)
                .await
                .map_err(|error| failure(&table, Doing::Reading, &error))?;
            let full = rows.len() as i64 == PAGE;
            for row in &rows {
                let stored =
                    Stored::from_row(row).map_err(|e| e.failure(&table, Doing::Reading))?;
                after = Some(stored.link.clone());
                if self.reseal_row(ring, stored).await? {
                    done.rows += 1;
                } else {
                    done.left_changing += 1;
                }
            }
            if !full {
                return Ok(done);
            }
        }
    }

    /// Re-seals one row; `false` if it kept changing under us.
    async fn reseal_row(&self, ring: &KeyRing, mut stored: Stored) -> Result<bool, StoreFailure> {
        let link = stored.link.clone();
        for _ in 0..ATTEMPTS_PER_ROW {
            if stored.is_current(ring) {
                return Ok(true);
            }
            let sealed = |column, value: &Option<String>, hashed| {
                reseal_column(ring, &link, column, value, hashed)
                    .map_err(|e| e.failure(&link, Doing::Reading))
            };
            let access = sealed("access_token", &stored.access_token, false)?;
            let refresh = sealed("refresh_token", &stored.refresh_token, true)?;
            let presenting = sealed("lease_presenting", &stored.lease_presenting, true)?;
            let applied = sqlx::query(RESEAL_SQL)
                .bind(link.provider())
                .bind(link.user())
                .bind(access.0)
                .bind(refresh.0)
                .bind(refresh.1)
                .bind(presenting.0)
                .bind(presenting.1)
                .bind(&stored.access_token)
                .bind(&stored.refresh_token)
                .bind(&stored.lease_presenting)
                .execute(&self.pool)
                .await
                .map_err(|error| failure(&link, Doing::Writing, &error))?;
            if applied.rows_affected() == 1 {
                return Ok(true);
            }
            let Some(row) = sqlx::query(ROW_SQL)
                .bind(link.provider())
                .bind(link.user())
                .fetch_optional(&self.pool)
                .await
                .map_err(|error| failure(&link, Doing::Reading, &error))?
            else {
                // Unlinked meanwhile: nothing left to seal.
                return Ok(true);
            };
            stored = Stored::from_row(&row).map_err(|e| e.failure(&link, Doing::Reading))?;
        }
        Ok(false)
    }
}
