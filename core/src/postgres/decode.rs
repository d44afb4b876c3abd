//! Decoding: a row of `baton_links` to a [`StoredLink`], refusing rows
//! whose columns contradict each other (possible only if the schema's
//! constraints were dropped) with a failure naming the column, never its
//! value.

use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::Row;

use crate::{
    AccessGrant, AccessToken, CachedFailure, Lease, LeaseMark, LinkId, OwnerId, RefreshToken,
    StoreFailure, StoredLink, Timestamp,
};

use super::cipher::{TokensAtRest, Unopenable};
use super::failure::{Certainty, Doing};
use super::sql::{OUTCOME_UNKNOWN, REJECTED};

/// Why a row could not be turned into a [`StoredLink`]. Never holds a
/// column's value.
#[derive(Debug)]
pub(super) enum Undecodable {
    /// sqlx could not read the column (missing, or of another type).
    Column { column: &'static str },
    /// The row's columns contradict each other or the schema.
    Inconsistent {
        column: &'static str,
        problem: &'static str,
    },
    /// A token column could not be opened (wrong or missing key, or the
    /// other mode's value).
    Sealed {
        column: &'static str,
        problem: Unopenable,
    },
}

impl Undecodable {
    pub(super) fn failure(self, link: &LinkId, doing: Doing) -> StoreFailure {
        let problem = match self {
            Undecodable::Column { column } => {
                format!("column {column} is missing or not of the type baton's migration gives it")
            }
            Undecodable::Inconsistent { column, problem } => format!("column {column} {problem}"),
            Undecodable::Sealed { column, problem } => {
                return StoreFailure {
                    reason: format!(
                        "postgres: the baton_links row for {link}: column {column} {} \
                         (while {}{}; the row was left as it is)",
                        problem.describe(),
                        doing.verb(),
                        doing.suffix(Certainty::Unknown),
                    ),
                }
            }
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

pub(super) fn column<'r, T>(row: &'r PgRow, name: &'static str) -> Result<T, Undecodable>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(name)
        .map_err(|_| Undecodable::Column { column: name })
}

pub(super) fn timestamp(millis: i64, column: &'static str) -> Result<Timestamp, Undecodable> {
    u64::try_from(millis)
        .map(Timestamp::from_millis)
        .map_err(|_| Undecodable::Inconsistent {
            column,
            problem: "is negative",
        })
}

/// The token `name` of the row stands for, opened as `at_rest` says.
fn token(
    row: &PgRow,
    name: &'static str,
    at_rest: &TokensAtRest,
    link: &LinkId,
) -> Result<Option<String>, Undecodable> {
    column::<Option<String>>(row, name)?
        .map(|stored| {
            at_rest
                .open(link, name, stored)
                .map_err(|problem| Undecodable::Sealed {
                    column: name,
                    problem,
                })
        })
        .transpose()
}

pub(super) fn decode(
    row: &PgRow,
    at_rest: &TokensAtRest,
    link: &LinkId,
) -> Result<StoredLink, Undecodable> {
    let access = match (
        token(row, "access_token", at_rest, link)?,
        column::<Option<i64>>(row, "access_expires_at_ms")?,
    ) {
        (None, None) => None,
        (Some(token), Some(expiry)) => Some(AccessGrant {
            token: AccessToken::new(token),
            expires_at: timestamp(expiry, "access_expires_at_ms")?,
            lifetime: column::<Option<i64>>(row, "access_lifetime_ms")?
                .map(|millis| {
                    u64::try_from(millis)
                        .map(Duration::from_millis)
                        .map_err(|_| Undecodable::Inconsistent {
                            column: "access_lifetime_ms",
                            problem: "is negative",
                        })
                })
                .transpose()?,
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
    if access.is_none() && column::<Option<i64>>(row, "access_lifetime_ms")?.is_some() {
        return Err(Undecodable::Inconsistent {
            column: "access_lifetime_ms",
            problem: "is set while access_token is null",
        });
    }
    let refresh_token = token(row, "refresh_token", at_rest, link)?.map(RefreshToken::new);
    let failure = match (
        column::<Option<String>>(row, "failure_kind")?.as_deref(),
        column::<Option<String>>(row, "failure_reason")?,
    ) {
        (None, None) => None,
        (Some(REJECTED), Some(reason)) => Some(CachedFailure::Rejected { reason }),
        (Some(OUTCOME_UNKNOWN), None) => Some(CachedFailure::OutcomeUnknown {
            lease: judged_lease(row)?,
        }),
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
    if !matches!(failure, Some(CachedFailure::OutcomeUnknown { .. }))
        && column::<Option<String>>(row, "failure_lease_owner")?.is_some()
    {
        return Err(Undecodable::Inconsistent {
            column: "failure_lease_owner",
            problem: "is set while failure_kind is not 'outcome_unknown'",
        });
    }
    let lease = match (
        column::<Option<String>>(row, "lease_owner")?,
        token(row, "lease_presenting", at_rest, link)?,
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

/// The lease a cached unknown outcome names: both columns, or neither.
fn judged_lease(row: &PgRow) -> Result<Option<LeaseMark>, Undecodable> {
    match (
        column::<Option<String>>(row, "failure_lease_owner")?,
        column::<Option<i64>>(row, "failure_lease_expires_at_ms")?,
    ) {
        (None, None) => Ok(None),
        (Some(owner), Some(ms)) => Ok(Some(LeaseMark {
            owner: OwnerId::new(owner),
            expires_at: timestamp(ms, "failure_lease_expires_at_ms")?,
        })),
        (Some(_), None) => Err(Undecodable::Inconsistent {
            column: "failure_lease_expires_at_ms",
            problem: "is null while failure_lease_owner is set",
        }),
        (None, Some(_)) => Err(Undecodable::Inconsistent {
            column: "failure_lease_owner",
            problem: "is null while failure_lease_expires_at_ms is set",
        }),
    }
}
