//! Unit tests of the SQL and of the failure wording; the store's
//! behaviour is checked against PostgreSQL in `tests/tests/store_contract.rs`.

use std::error::Error as StdError;
use std::io;

use super::failure::{failure, Doing};
use super::sql::*;
use super::*;
use crate::{AccessGrant, AccessToken, LinkId, Timestamp};

#[test]
fn one_statement_per_operation() {
    for sql in [
        READ_SQL,
        PLAIN_CAS_SQL,
        SEALED_CAS_SQL,
        INSERT_SQL,
        DELETE_SQL,
    ] {
        assert!(!sql.contains(';'), "{sql}");
    }
    for cas in [PLAIN_CAS_SQL, SEALED_CAS_SQL] {
        assert!(cas.ends_with(COLUMNS));
        assert_eq!(cas.matches("$23::bigint").count(), 1);
        assert_eq!(cas.matches("$25::bytea").count(), 1);
    }
    // Encrypted stores compare tokens by hash only, never by text.
    assert!(!SEALED_CAS_SQL.contains("$16::text") && !SEALED_CAS_SQL.contains("$22::text"));
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
        lifetime: None,
    });
    let link = LinkId::new("github", "octocat");
    let sealer = Sealer {
        at_rest: &TokensAtRest::Plaintext,
        link: &link,
    };
    let unstorable = sealer.access(&grant).unwrap_err();
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
