//! The SQL: one statement per operation, and the encoding of the core's
//! values (guards, updates, rows) into its bind values. Token text leaves
//! the process only as bind values, never inside statement text.

use crate::{
    AccessGrant, CachedFailure, Change, Expect, Guard, Lease, LinkId, RefreshToken, StoreFailure,
    Timestamp, Update,
};

use super::cipher::TokensAtRest;
use super::failure::Doing;

/// The columns of a row, in the order
/// [`decode`](super::decode::decode) reads them.
macro_rules! columns {
    () => {
        "access_token, access_expires_at_ms, refresh_token, failure_kind, failure_reason, \
         lease_owner, lease_presenting, lease_expires_at_ms, \
         failure_lease_owner, failure_lease_expires_at_ms, access_lifetime_ms"
    };
}

pub(super) const READ_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM baton_links WHERE provider = $1 AND user_id = $2"
);

/// The compare-and-swap: one statement whatever the write, so one prepared
/// statement per connection. Each update group has a flag (`true`: set it)
/// and each guard field a flag (`true`: any value admitted). The two token
/// guards are the arguments: plain text compares the token, sealed compares
/// its keyed hash (see [`cipher`](super::cipher)).
macro_rules! cas_sql {
    ($refresh_token_guard:expr, $presenting_guard:expr) => {
        concat!(
            "UPDATE baton_links SET \
                access_token = CASE WHEN $3::bool THEN $4::text ELSE access_token END, \
                access_expires_at_ms = CASE WHEN $3::bool THEN $5::bigint ELSE access_expires_at_ms END, \
                access_lifetime_ms = CASE WHEN $3::bool THEN $30::bigint ELSE access_lifetime_ms END, \
                refresh_token = CASE WHEN $6::bool THEN $7::text ELSE refresh_token END, \
                refresh_token_hash = CASE WHEN $6::bool THEN $24::bytea ELSE refresh_token_hash END, \
                failure_kind = CASE WHEN $8::bool THEN $9::text ELSE failure_kind END, \
                failure_reason = CASE WHEN $8::bool THEN $10::text ELSE failure_reason END, \
                failure_lease_owner = CASE WHEN $8::bool THEN $26::text ELSE failure_lease_owner END, \
                failure_lease_expires_at_ms = CASE WHEN $8::bool THEN $27::bigint ELSE failure_lease_expires_at_ms END, \
                lease_owner = CASE WHEN $11::bool THEN $12::text ELSE lease_owner END, \
                lease_presenting = CASE WHEN $11::bool THEN $13::text ELSE lease_presenting END, \
                lease_presenting_hash = CASE WHEN $11::bool THEN $25::bytea ELSE lease_presenting_hash END, \
                lease_expires_at_ms = CASE WHEN $11::bool THEN $14::bigint ELSE lease_expires_at_ms END, \
                updated_at = now() \
             WHERE provider = $1 AND user_id = $2 \
               AND ($15::bool OR ",
            $refresh_token_guard,
            ") \
               AND ($17::bool OR (failure_kind IS NOT DISTINCT FROM $18::text \
                                  AND failure_reason IS NOT DISTINCT FROM $19::text \
                                  AND failure_lease_owner IS NOT DISTINCT FROM $28::text \
                                  AND failure_lease_expires_at_ms IS NOT DISTINCT FROM $29::bigint)) \
               AND ($20::bool OR (lease_owner IS NOT DISTINCT FROM $21::text \
                                  AND ",
            $presenting_guard,
            " \
                                  AND lease_expires_at_ms IS NOT DISTINCT FROM $23::bigint)) \
             RETURNING ",
            columns!()
        )
    };
}

/// [`cas_sql!`] for a plaintext store: tokens compared as text.
pub(super) const PLAIN_CAS_SQL: &str = cas_sql!(
    "refresh_token IS NOT DISTINCT FROM $16::text",
    "lease_presenting IS NOT DISTINCT FROM $22::text"
);

/// [`cas_sql!`] for an encrypted store: a token is matched by its keyed
/// hash under any key of the ring (`$16`, `$22`: one hash per key), and
/// "no token" (a NULL array) by a NULL column.
pub(super) const SEALED_CAS_SQL: &str = cas_sql!(
    "(($16::bytea[] IS NULL AND refresh_token IS NULL) \
      OR refresh_token_hash = ANY($16::bytea[]))",
    "(($22::bytea[] IS NULL AND lease_presenting IS NULL) \
      OR lease_presenting_hash = ANY($22::bytea[]))"
);

pub(super) const INSERT_SQL: &str = concat!(
    "INSERT INTO baton_links (provider, user_id, ",
    columns!(),
    ", refresh_token_hash, lease_presenting_hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
     ON CONFLICT (provider, user_id) DO UPDATE SET \
        access_token = EXCLUDED.access_token, \
        access_expires_at_ms = EXCLUDED.access_expires_at_ms, \
        access_lifetime_ms = EXCLUDED.access_lifetime_ms, \
        refresh_token = EXCLUDED.refresh_token, \
        refresh_token_hash = EXCLUDED.refresh_token_hash, \
        failure_kind = EXCLUDED.failure_kind, \
        failure_reason = EXCLUDED.failure_reason, \
        failure_lease_owner = EXCLUDED.failure_lease_owner, \
        failure_lease_expires_at_ms = EXCLUDED.failure_lease_expires_at_ms, \
        lease_owner = EXCLUDED.lease_owner, \
        lease_presenting = EXCLUDED.lease_presenting, \
        lease_presenting_hash = EXCLUDED.lease_presenting_hash, \
        lease_expires_at_ms = EXCLUDED.lease_expires_at_ms, \
        updated_at = now()"
);

pub(super) const DELETE_SQL: &str = "DELETE FROM baton_links WHERE provider = $1 AND user_id = $2";

/// The columns of a row, in the order [`decode`](super::decode::decode)
/// reads them.
#[cfg(test)]
pub(super) const COLUMNS: &str = columns!();

// ---------------------------------------------------------------------------
// Encoding: Rust values to column values.

pub(super) const REJECTED: &str = "rejected";
pub(super) const OUTCOME_UNKNOWN: &str = "outcome_unknown";

/// A value the table cannot hold: a timestamp beyond `i64::MAX`
/// milliseconds, in the named column.
#[derive(Clone, Copy, Debug)]
pub(super) struct Unstorable {
    column: &'static str,
}

impl Unstorable {
    pub(super) fn failure(self, link: &LinkId, doing: Doing) -> StoreFailure {
        StoreFailure {
            reason: format!(
                "postgres: a time for column {} is beyond the BIGINT range of \
                 milliseconds, so {} baton_links for {link} was refused (nothing was written)",
                self.column,
                doing.verb(),
            ),
        }
    }
}

pub(super) fn millis(at: Timestamp, column: &'static str) -> Result<i64, Unstorable> {
    i64::try_from(at.as_millis()).map_err(|_| Unstorable { column })
}

/// How the tokens of one link's row are written: sealed under the ring's
/// current key, or as they are.
#[derive(Clone, Copy)]
pub(super) struct Sealer<'a> {
    pub(super) at_rest: &'a TokensAtRest,
    pub(super) link: &'a LinkId,
}

/// A token's columns: what the table holds for it, and (encrypted stores,
/// guarded columns) its keyed hash.
#[derive(Clone, Debug, Default)]
pub(super) struct TokenColumns {
    pub(super) stored: Option<String>,
    pub(super) hash: Option<Vec<u8>>,
}

/// What a guard expects of a token column, as one bind value: the token
/// itself (plaintext) or its hash under every key of the ring (encrypted);
/// `None` inside for "no token".
#[derive(Clone, Debug)]
pub(super) enum ExpectedToken {
    Text(Option<String>),
    Hashes(Option<Vec<Vec<u8>>>),
}

impl Sealer<'_> {
    /// The columns of `token` in `column` (`hashed`: with its guard hash).
    pub(super) fn token(
        &self,
        column: &'static str,
        token: Option<&str>,
        hashed: bool,
    ) -> TokenColumns {
        let Some(token) = token else {
            return TokenColumns::default();
        };
        match self.at_rest {
            TokensAtRest::Plaintext => TokenColumns {
                stored: Some(token.to_owned()),
                hash: None,
            },
            TokensAtRest::Encrypted(ring) => TokenColumns {
                stored: Some(ring.seal(self.link, column, token)),
                hash: hashed.then(|| ring.current_hash(self.link, token)),
            },
        }
    }

    pub(super) fn expect(&self, token: Option<&str>) -> ExpectedToken {
        match self.at_rest {
            TokensAtRest::Plaintext => ExpectedToken::Text(token.map(str::to_owned)),
            TokensAtRest::Encrypted(ring) => {
                ExpectedToken::Hashes(token.map(|token| ring.guard_hashes(self.link, token)))
            }
        }
    }

    pub(super) fn cas_sql(&self) -> &'static str {
        match self.at_rest {
            TokensAtRest::Plaintext => PLAIN_CAS_SQL,
            TokensAtRest::Encrypted(_) => SEALED_CAS_SQL,
        }
    }

    pub(super) fn access(&self, access: &Option<AccessGrant>) -> Result<AccessColumns, Unstorable> {
        Ok(match access {
            None => (TokenColumns::default(), None, None),
            Some(grant) => (
                self.token("access_token", Some(grant.token.expose_secret()), false),
                Some(millis(grant.expires_at, "access_expires_at_ms")?),
                grant
                    .lifetime
                    .map(|lifetime| {
                        i64::try_from(lifetime.as_millis()).map_err(|_| Unstorable {
                            column: "access_lifetime_ms",
                        })
                    })
                    .transpose()?,
            ),
        })
    }

    pub(super) fn refresh_token(&self, token: &Option<RefreshToken>) -> TokenColumns {
        self.token(
            "refresh_token",
            token.as_ref().map(RefreshToken::expose_secret),
            true,
        )
    }

    pub(super) fn lease<'l>(
        &self,
        lease: &'l Option<Lease>,
    ) -> Result<LeaseColumns<'l>, Unstorable> {
        Ok(match lease {
            None => (None, TokenColumns::default(), None),
            Some(lease) => (
                Some(lease.owner.as_str()),
                self.token(
                    "lease_presenting",
                    Some(lease.presenting.expose_secret()),
                    true,
                ),
                Some(millis(lease.expires_at, "lease_expires_at_ms")?),
            ),
        })
    }

    fn expected_lease<'l>(
        &self,
        lease: &'l Option<Lease>,
    ) -> Result<ExpectedLease<'l>, Unstorable> {
        Ok(match lease {
            None => (None, self.expect(None), None),
            Some(lease) => (
                Some(lease.owner.as_str()),
                self.expect(Some(lease.presenting.expose_secret())),
                Some(millis(lease.expires_at, "lease_expires_at_ms")?),
            ),
        })
    }
}

/// The access grant's columns: the token, its expiry and its lifetime.
pub(super) type AccessColumns = (TokenColumns, Option<i64>, Option<i64>);
/// The cached failure's columns: kind, reason, and the owner and expiry of
/// the lease an unknown outcome was judged under.
pub(super) type FailureColumns<'a> = (
    Option<&'static str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
);
/// The lease's columns: owner, presenting token, expiry.
pub(super) type LeaseColumns<'a> = (Option<&'a str>, TokenColumns, Option<i64>);
/// What a guard expects of the lease's columns.
pub(super) type ExpectedLease<'a> = (Option<&'a str>, ExpectedToken, Option<i64>);

pub(super) fn encode_failure(
    failure: &Option<CachedFailure>,
) -> Result<FailureColumns<'_>, Unstorable> {
    Ok(match failure {
        None => (None, None, None, None),
        Some(CachedFailure::Rejected { reason }) => (Some(REJECTED), Some(reason), None, None),
        Some(CachedFailure::OutcomeUnknown { lease: None }) => {
            (Some(OUTCOME_UNKNOWN), None, None, None)
        }
        Some(CachedFailure::OutcomeUnknown { lease: Some(mark) }) => (
            Some(OUTCOME_UNKNOWN),
            None,
            Some(mark.owner.as_str()),
            Some(millis(mark.expires_at, "failure_lease_expires_at_ms")?),
        ),
    })
}

/// A [`Guard`] as bind values: `None` for [`Expect::Any`].
pub(super) struct EncodedGuard<'a> {
    pub(super) refresh_token: Option<ExpectedToken>,
    pub(super) failure: Option<FailureColumns<'a>>,
    pub(super) lease: Option<ExpectedLease<'a>>,
}

impl<'a> EncodedGuard<'a> {
    /// `None` if the guard names a value no row can hold (so no row
    /// satisfies it).
    pub(super) fn new(guard: &'a Guard, sealer: Sealer<'_>) -> Option<Self> {
        Some(EncodedGuard {
            refresh_token: match &guard.refresh_token {
                Expect::Any => None,
                Expect::Exactly(token) => {
                    Some(sealer.expect(token.as_ref().map(RefreshToken::expose_secret)))
                }
            },
            failure: match &guard.failure {
                Expect::Any => None,
                Expect::Exactly(failure) => Some(encode_failure(failure).ok()?),
            },
            lease: match &guard.lease {
                Expect::Any => None,
                Expect::Exactly(lease) => Some(sealer.expected_lease(lease).ok()?),
            },
        })
    }
}

/// An [`Update`] as bind values: `None` for [`Change::Keep`]. Sealed once
/// per compare-and-swap, however many times the update is tried.
pub(super) struct EncodedUpdate<'a> {
    pub(super) access: Option<AccessColumns>,
    pub(super) refresh_token: Option<TokenColumns>,
    pub(super) failure: Option<FailureColumns<'a>>,
    pub(super) lease: Option<LeaseColumns<'a>>,
}

impl<'a> EncodedUpdate<'a> {
    pub(super) fn new(update: &'a Update, sealer: Sealer<'_>) -> Result<Self, Unstorable> {
        Ok(EncodedUpdate {
            access: match &update.access {
                Change::Keep => None,
                Change::Set(access) => Some(sealer.access(access)?),
            },
            refresh_token: match &update.refresh_token {
                Change::Keep => None,
                Change::Set(token) => Some(sealer.refresh_token(token)),
            },
            failure: match &update.failure {
                Change::Keep => None,
                Change::Set(failure) => Some(encode_failure(failure)?),
            },
            lease: match &update.lease {
                Change::Keep => None,
                Change::Set(lease) => Some(sealer.lease(lease)?),
            },
        })
    }
}
