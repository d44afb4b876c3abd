//! The SQL: one statement per operation, and the encoding of the core's
//! values (guards, updates, rows) into its bind values. Token text leaves
//! the process only as bind values, never inside statement text.

use crate::{
    AccessGrant, CachedFailure, Change, Expect, Guard, Lease, LinkId, RefreshToken, StoreFailure,
    Timestamp, Update,
};

use super::failure::Doing;

/// The columns of a row, in the order
/// [`decode`](super::decode::decode) reads them.
macro_rules! columns {
    () => {
        "access_token, access_expires_at_ms, refresh_token, failure_kind, failure_reason, \
         lease_owner, lease_presenting, lease_expires_at_ms"
    };
}

pub(super) const READ_SQL: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM baton_links WHERE provider = $1 AND user_id = $2"
);

/// The compare-and-swap: one statement whatever the write, so one prepared
/// statement per connection. Each update group has a flag (`true`: set it)
/// and each guard field a flag (`true`: any value admitted).
pub(super) const CAS_SQL: &str = concat!(
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

pub(super) const INSERT_SQL: &str = concat!(
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

pub(super) const DELETE_SQL: &str = "DELETE FROM baton_links WHERE provider = $1 AND user_id = $2";

/// The columns of a row, in the order [`decode`](super::decode::decode)
/// reads them.
#[cfg(test)]
pub(super) const COLUMNS: &str = columns!();

// ---------------------------------------------------------------------------
// Encoding: Rust values to column values.

/// The access grant's columns.
pub(super) type AccessColumns<'a> = (Option<&'a str>, Option<i64>);
/// The cached failure's columns: kind and reason.
pub(super) type FailureColumns<'a> = (Option<&'static str>, Option<&'a str>);
/// The lease's columns: owner, presenting token, expiry.
pub(super) type LeaseColumns<'a> = (Option<&'a str>, Option<&'a str>, Option<i64>);

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
                "postgres: a timestamp for column {} is beyond the BIGINT range of \
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

pub(super) fn encode_access(access: &Option<AccessGrant>) -> Result<AccessColumns<'_>, Unstorable> {
    Ok(match access {
        None => (None, None),
        Some(grant) => (
            Some(grant.token.expose_secret()),
            Some(millis(grant.expires_at, "access_expires_at_ms")?),
        ),
    })
}

pub(super) fn encode_failure(failure: &Option<CachedFailure>) -> FailureColumns<'_> {
    match failure {
        None => (None, None),
        Some(CachedFailure::Rejected { reason }) => (Some(REJECTED), Some(reason)),
        Some(CachedFailure::OutcomeUnknown) => (Some(OUTCOME_UNKNOWN), None),
    }
}

pub(super) fn encode_lease(lease: &Option<Lease>) -> Result<LeaseColumns<'_>, Unstorable> {
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
pub(super) struct EncodedGuard<'a> {
    pub(super) refresh_token: Option<Option<&'a str>>,
    pub(super) failure: Option<FailureColumns<'a>>,
    pub(super) lease: Option<LeaseColumns<'a>>,
}

impl<'a> EncodedGuard<'a> {
    /// `None` if the guard names a value no row can hold (so no row
    /// satisfies it).
    pub(super) fn new(guard: &'a Guard) -> Option<Self> {
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
pub(super) struct EncodedUpdate<'a> {
    pub(super) access: Option<AccessColumns<'a>>,
    pub(super) refresh_token: Option<Option<&'a str>>,
    pub(super) failure: Option<FailureColumns<'a>>,
    pub(super) lease: Option<LeaseColumns<'a>>,
}

impl<'a> EncodedUpdate<'a> {
    pub(super) fn new(update: &'a Update) -> Result<Self, Unstorable> {
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
