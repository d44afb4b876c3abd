use std::time::Duration;

use oauth2::basic::BasicTokenResponse;
use reqwest::StatusCode;

use super::outcome::*;
use super::transport::*;
use super::*;

fn head(status: u16, content_type: Option<&str>, body: &str) -> Head {
    Head {
        status: StatusCode::from_u16(status).unwrap(),
        retry_after: None,
        content_type: content_type.map(str::to_owned),
        body: body.as_bytes().to_vec(),
    }
}

const SCRUB: Scrubber<'static> = Scrubber {
    secrets: [Some("ghr_presented"), Some("s3cret")],
};

fn reason(outcome: &ExchangeOutcome) -> &str {
    match outcome {
        ExchangeOutcome::Rejected { reason } | ExchangeOutcome::Transient { reason } => reason,
        other => panic!("no reason in {other:?}"),
    }
}

#[test]
fn retry_after_is_read_in_seconds_only() {
    assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
    assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
    assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    assert_eq!(parse_retry_after("-1"), None);
    assert_eq!(parse_retry_after("1.5"), None);
    assert_eq!(parse_retry_after(""), None);
    assert_eq!(parse_retry_after("99999999999999999999999"), None);
}

#[test]
fn only_invalid_grant_and_bad_refresh_token_reject() {
    let github = r#"{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired."}"#;
    assert_eq!(
        reply_outcome(&head(200, Some("application/json"), github), None, &SCRUB),
        ExchangeOutcome::Rejected {
            reason: "bad_refresh_token: The refresh token passed is incorrect or expired.".into()
        }
    );
    let standard = r#"{"error":"invalid_grant"}"#;
    assert_eq!(
        reply_outcome(&head(400, Some("application/json"), standard), None, &SCRUB),
        ExchangeOutcome::Rejected {
            reason: "invalid_grant".into()
        }
    );
    for code in ["invalid_client", "unauthorized_client", "invalid_scope"] {
        let body = format!(r#"{{"error":"{code}","error_description":"nope"}}"#);
        let outcome = reply_outcome(&head(401, None, &body), None, &SCRUB);
        assert!(
            matches!(&outcome, ExchangeOutcome::Transient { reason } if reason.contains(code)),
            "{outcome:?}"
        );
    }
}

#[test]
fn the_status_decides_before_the_body() {
    let mut limited = head(429, None, r#"{"error":"invalid_grant"}"#);
    limited.retry_after = Some(Duration::from_secs(3));
    assert_eq!(
        reply_outcome(&limited, None, &SCRUB),
        ExchangeOutcome::RateLimited {
            retry_after: Some(Duration::from_secs(3))
        }
    );
    let mut github_limit = head(403, None, "");
    github_limit.retry_after = Some(Duration::from_secs(60));
    assert!(matches!(
        reply_outcome(&github_limit, None, &SCRUB),
        ExchangeOutcome::RateLimited { .. }
    ));
    assert_eq!(
        reply_outcome(
            &head(503, None, r#"{"error":"invalid_grant"}"#),
            None,
            &SCRUB
        ),
        ExchangeOutcome::ServerError {
            status: 503,
            reason: "token endpoint replied HTTP 503".into()
        }
    );
    assert!(reason(&reply_outcome(&head(307, None, ""), None, &SCRUB)).contains("redirect"));
    // A 403 without Retry-After is an ordinary refusal.
    assert!(matches!(
        reply_outcome(&head(403, None, "<html/>"), None, &SCRUB),
        ExchangeOutcome::Transient { .. }
    ));
}

#[test]
fn a_server_error_after_sending_is_a_server_error_whatever_the_body() {
    // A gateway's page after forwarding, the provider's own OAuth error, a
    // token response, nothing: the status decides, and the body (which may
    // quote the token) is never shown.
    let bodies = [
        (
            Some("text/html"),
            "<html><h1>502 Bad Gateway</h1>ghr_presented</html>",
        ),
        (
            Some("application/json"),
            r#"{"error":"invalid_grant","error_description":"ghr_presented"}"#,
        ),
        (
            Some("application/json"),
            r#"{"error":"server_error","error_description":"try later"}"#,
        ),
        (
            Some("application/json"),
            r#"{"access_token":"A1","token_type":"bearer","refresh_token":"R1"}"#,
        ),
        (None, ""),
    ];
    for status in [500, 502, 503, 504, 599] {
        for (content_type, body) in bodies {
            let outcome = reply_outcome(&head(status, content_type, body), None, &SCRUB);
            assert_eq!(
                outcome,
                ExchangeOutcome::ServerError {
                    status,
                    reason: format!("token endpoint replied HTTP {status}"),
                },
                "{status} {body}"
            );
        }
    }
    // What is certainly not a server error stays what it was.
    assert!(matches!(
        reply_outcome(
            &head(400, None, r#"{"error":"invalid_client"}"#),
            None,
            &SCRUB
        ),
        ExchangeOutcome::Transient { .. }
    ));
    assert!(matches!(
        reply_outcome(&head(429, None, ""), None, &SCRUB),
        ExchangeOutcome::RateLimited { .. }
    ));
}

#[test]
fn bodies_are_never_echoed() {
    let page = "<html>ghr_presented A1 secret stuff</html>";
    let outcome = reply_outcome(&head(200, Some("text/html"), page), None, &SCRUB);
    let shown = reason(&outcome);
    assert!(shown.contains("not a token response"), "{shown}");
    assert!(shown.contains("text/html"), "{shown}");
    assert!(shown.contains(&page.len().to_string()), "{shown}");
    assert!(!shown.contains("ghr_presented") && !shown.contains("stuff"));

    let partial = r#"{"access_token":"A1","token_type":"bearer","expires_in":"soon"}"#;
    let outcome = reply_outcome(
        &head(200, Some("application/json"), partial),
        known_field("expires_in"),
        &SCRUB,
    );
    assert!(reason(&outcome).contains("`expires_in`"), "{outcome:?}");
    assert!(!reason(&outcome).contains("A1"), "{outcome:?}");
    assert_eq!(known_field("A1"), None);

    let outcome = reply_outcome(&head(404, None, ""), None, &SCRUB);
    assert!(reason(&outcome).contains("HTTP 404 with an empty body"));
}

#[test]
fn quoted_descriptions_lose_secrets_control_characters_and_length() {
    let body = format!(
        r#"{{"error":"invalid_grant","error_description":"token ghr_presented for client s3cret\nis {}"}}"#,
        "x".repeat(500)
    );
    let outcome = reply_outcome(&head(400, None, &body), None, &SCRUB);
    let shown = reason(&outcome);
    assert!(!shown.contains("ghr_presented"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains('\n'), "{shown}");
    assert!(shown.starts_with("invalid_grant: token <redacted> for client <redacted> is"));
    assert!(shown.chars().count() <= "invalid_grant: ".len() + MAX_QUOTED + 1);
}

#[test]
fn transport_failures_split_on_whether_the_request_went_out() {
    assert!(matches!(
        transport_outcome(TransportError::NotSent("refused".into()), None),
        ExchangeOutcome::Transient { reason } if reason.contains("not sent")
    ));
    assert_eq!(
        transport_outcome(TransportError::NoReply { timed_out: true }, None),
        ExchangeOutcome::OutcomeUnknown
    );
    assert_eq!(
        transport_outcome(
            TransportError::BodyCut { timed_out: false },
            Some(&head(200, None, ""))
        ),
        ExchangeOutcome::OutcomeUnknown
    );
    // A 5xx whose body never fully came is still a server error: the
    // request went out.
    assert!(matches!(
        transport_outcome(
            TransportError::BodyCut { timed_out: false },
            Some(&head(502, None, ""))
        ),
        ExchangeOutcome::ServerError { status: 502, .. }
    ));
    assert!(matches!(
        transport_outcome(
            TransportError::BodyTooLarge { limit: 16 },
            Some(&head(504, Some("text/html"), ""))
        ),
        ExchangeOutcome::ServerError { status: 504, .. }
    ));
    let too_large = transport_outcome(
        TransportError::BodyTooLarge { limit: 65_536 },
        Some(&head(200, Some("application/json"), "")),
    );
    assert!(
        reason(&too_large).contains("65536-byte bound"),
        "{too_large:?}"
    );
}

#[test]
fn issued_counts_expiry_from_now_and_keeps_a_missing_refresh_token_missing() {
    let now = Timestamp::from_millis(1_000);
    let rotating: BasicTokenResponse = serde_json::from_str(
        r#"{"access_token":"A1","token_type":"bearer","expires_in":60,"refresh_token":"R1"}"#,
    )
    .unwrap();
    let ExchangeOutcome::Issued(set) = issued(&rotating, now, DEFAULT_EXPIRES_IN) else {
        panic!()
    };
    assert_eq!(set.access.token.expose_secret(), "A1");
    assert_eq!(set.access.expires_at, Timestamp::from_millis(61_000));
    assert_eq!(set.refresh_token.unwrap().expose_secret(), "R1");

    let google: BasicTokenResponse =
        serde_json::from_str(r#"{"access_token":"A2","token_type":"Bearer"}"#).unwrap();
    let ExchangeOutcome::Issued(set) = issued(&google, now, Duration::from_secs(10)) else {
        panic!()
    };
    assert_eq!(set.access.expires_at, Timestamp::from_millis(11_000));
    assert_eq!(set.refresh_token, None);
}

#[test]
fn configuration_is_checked_and_the_secret_never_shown() {
    let builder =
        HttpTokenEndpoint::builder("https://idp.example/token", "client").client_secret("s3cret");
    assert!(!format!("{builder:?}").contains("s3cret"));
    let endpoint = builder.clone().build().unwrap();
    assert!(!format!("{endpoint:?}").contains("s3cret"));
    assert_eq!(endpoint.token_url(), "https://idp.example/token");
    assert_eq!(endpoint.auth_style(), ClientAuth::BasicHeader);

    let error = |b: HttpTokenEndpointBuilder| b.build().unwrap_err();
    assert!(matches!(
        error(HttpTokenEndpoint::builder("not a url", "c")),
        HttpConfigError::InvalidTokenUrl { .. }
    ));
    assert_eq!(
        error(HttpTokenEndpoint::builder("ftp://idp.example/token", "c")),
        HttpConfigError::UnsupportedScheme {
            scheme: "ftp".into()
        }
    );
    assert_eq!(
        error(HttpTokenEndpoint::builder("https://idp.example/", "")),
        HttpConfigError::EmptyClientId
    );
    assert_eq!(
        error(builder.clone().scopes(["repo", "read user"])),
        HttpConfigError::InvalidScope { index: 1 }
    );
    assert_eq!(
        error(builder.clone().max_body_bytes(0)),
        HttpConfigError::ZeroBodyLimit
    );
    assert!(matches!(
        error(builder.request_timeout(Duration::ZERO)),
        HttpConfigError::ZeroTimeout { .. }
    ));
}
