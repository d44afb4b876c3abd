//! Support for the integration tests in `tests/`: throwaway PostgreSQL
//! databases on the machine's server.

pub mod pg;

/// An error and every `source()` under it, joined with `: `: what a
/// service's error reporter prints, so tests can check none of it holds
/// token text.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}

/// Asserts that a row records an unknown outcome, naming the lease it was
/// judged under (what a replica writes on finding an expired lease whose
/// holder never settled it).
#[track_caller]
pub fn assert_unknown_outcome_recorded(failure: &Option<baton_core::CachedFailure>) {
    assert!(
        matches!(
            failure,
            Some(baton_core::CachedFailure::OutcomeUnknown { lease: Some(_) })
        ),
        "{failure:?}"
    );
}
