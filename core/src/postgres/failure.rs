//! Failures: sqlx errors to token-free [`StoreFailure`] reasons, built
//! from the kind of error alone (the sqlx variant, the SQLSTATE code, the
//! constraint's name), since the server's and the driver's messages can
//! echo bound values.

use std::io;

use sqlx::error::DatabaseError;

use crate::{LinkId, StoreFailure};

/// The operation that failed, for the reason's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Doing {
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
pub(super) enum Certainty {
    /// The statement was never sent, or the server refused it.
    NotApplied,
    /// The connection failed while the statement was in flight.
    Unknown,
}

impl Doing {
    pub(super) fn verb(self) -> &'static str {
        match self {
            Doing::Reading => "reading",
            Doing::ReadingAfterLoss => "reading back after a lost compare-and-swap on",
            Doing::Writing => "writing",
            Doing::WroteButUnreadable => "reading the result of a write to",
            Doing::Inserting => "inserting into",
            Doing::Deleting => "deleting from",
        }
    }

    pub(super) fn suffix(self, certainty: Certainty) -> &'static str {
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
pub(super) struct Described {
    pub(super) what: String,
    pub(super) certainty: Certainty,
}

pub(super) fn failure(link: &LinkId, doing: Doing, error: &sqlx::Error) -> StoreFailure {
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
pub(super) fn describe(error: &sqlx::Error) -> Described {
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

pub(super) fn describe_io(error: &io::Error) -> String {
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

pub(super) fn describe_database(error: &dyn DatabaseError) -> String {
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
