//! What every [`RefreshError`] tells its caller: may I retry, when, must
//! the user re-authenticate; one line of `Display`, the detail in
//! `source()`.

use super::*;

#[test]
fn every_error_answers_retry_when_and_reauthenticate() {
    use std::error::Error;
    let detail = |e: &RefreshError| e.source().map(|s| s.to_string());
    let rejected = RefreshError::ReauthenticationRequired(ReauthReason::Rejected {
        provider_reason: "invalid_grant: token expired".into(),
    });
    assert!(rejected.requires_reauthentication());
    assert!(!rejected.is_retryable());
    assert_eq!(rejected.retry_after(), None);
    assert_eq!(
        rejected.to_string(),
        "re-authentication required: refresh token rejected by the provider"
    );
    assert!(detail(&rejected)
        .unwrap()
        .contains("invalid_grant: token expired"));

    let limited = RefreshError::RetryAfter {
        delay: Duration::from_secs(3),
    };
    assert!(limited.is_retryable() && !limited.requires_reauthentication());
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(detail(&limited), None);

    let store = RefreshError::Temporary(TemporaryReason::StoreUnavailable {
        detail: "postgres: connection refused (is the server up?) while reading".into(),
    });
    assert!(store.is_retryable() && !store.requires_reauthentication());
    assert_eq!(store.retry_after(), None);
    assert_eq!(
        store.to_string(),
        "temporary failure, retry later: store unavailable"
    );
    assert!(detail(&store).unwrap().contains("connection refused"));

    for reason in [
        ReauthReason::NotLinked,
        ReauthReason::NoRefreshToken,
        ReauthReason::OutcomeUnknown,
    ] {
        let error = RefreshError::ReauthenticationRequired(reason);
        assert!(error.requires_reauthentication() && !error.is_retryable());
        assert!(error.source().is_some());
    }
    for reason in [
        TemporaryReason::ProviderUnavailable {
            detail: "502".into(),
        },
        TemporaryReason::ValidationFailed {
            detail: "401".into(),
        },
        TemporaryReason::Contention,
    ] {
        let error = RefreshError::Temporary(reason);
        assert!(error.is_retryable() && error.retry_after().is_none());
        assert!(error.source().is_some());
    }
}
