//! `HttpTokenEndpoint` over real HTTP: against `FakeIdp` (the in-memory
//! provider models behind a wiremock server), against a plain wiremock mock
//! sending GitHub's exact reply, and against raw TCP servers that misbehave
//! in ways wiremock cannot (resets, cut and endless bodies).
//!
//! Every exchange goes through `exchange_once`, which checks that exactly
//! one request reached the server — no retry, no probing — and that no
//! reason quotes a token or the client secret.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::driver::TokenEndpoint;
use baton_core::http::{ClientAuth, HttpTokenEndpoint, HttpTokenEndpointBuilder};
use baton_core::{ExchangeOutcome, LinkId, RefreshToken, TokenSet};
use baton_fakes::idp::wiremock::matchers::{method, path};
use baton_fakes::idp::wiremock::{Mock, MockServer, ResponseTemplate};
use baton_fakes::idp::{wall_clock, ClientAuthUsed, FakeIdp, IdpFault, CLIENT_ID, CLIENT_SECRET};
use baton_fakes::ProviderModel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HOUR: Duration = Duration::from_secs(3600);

/// Token texts are `octo-secret-A<n>` / `octo-secret-R<n>`: no reason may
/// contain `octo-secret`.
const PREFIX: &str = "octo-secret-";

fn link() -> LinkId {
    LinkId::new("github", "octocat")
}

fn builder(token_url: &str) -> HttpTokenEndpointBuilder {
    HttpTokenEndpoint::builder(token_url, CLIENT_ID).client_secret(CLIENT_SECRET)
}

fn endpoint(idp: &FakeIdp) -> HttpTokenEndpoint {
    builder(&idp.token_url()).build().unwrap()
}

async fn enrolled(model: ProviderModel) -> (FakeIdp, TokenSet, RefreshToken) {
    let idp = FakeIdp::start(model, HOUR).await;
    let first = idp.enroll(&link(), PREFIX);
    let r0 = first.refresh_token.clone().unwrap();
    (idp, first, r0)
}

/// Checks that nothing in `outcome` a human might read quotes a secret.
fn assert_clean(outcome: &ExchangeOutcome) {
    let reason = match outcome {
        ExchangeOutcome::Rejected { reason }
        | ExchangeOutcome::Transient { reason }
        | ExchangeOutcome::ServerError { reason, .. } => reason.as_str(),
        _ => "",
    };
    for shown in [reason.to_owned(), format!("{outcome:?}")] {
        assert!(!shown.contains(PREFIX), "a token leaked: {shown}");
        assert!(!shown.contains(CLIENT_SECRET), "the secret leaked: {shown}");
    }
}

/// One exchange against the IdP, checking that it sent exactly one request.
async fn exchange_once(
    idp: &FakeIdp,
    endpoint: &HttpTokenEndpoint,
    token: &RefreshToken,
) -> ExchangeOutcome {
    let before = idp.exchanges();
    let outcome = endpoint.exchange(&link(), token, wall_clock()).await;
    assert_eq!(idp.exchanges(), before + 1, "exactly one POST per exchange");
    assert_clean(&outcome);
    outcome
}

fn transient(outcome: &ExchangeOutcome) -> &str {
    match outcome {
        ExchangeOutcome::Transient { reason } => reason,
        other => panic!("expected Transient, got {other:?}"),
    }
}

fn rejected(outcome: &ExchangeOutcome) -> &str {
    match outcome {
        ExchangeOutcome::Rejected { reason } => reason,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn a_rotation_is_issued_with_the_idps_new_tokens() {
    let (idp, first, r0) = enrolled(ProviderModel::SingleUse).await;
    let endpoint = endpoint(&idp);
    let now = wall_clock();
    let outcome = endpoint.exchange(&link(), &r0, now).await;
    assert_eq!(idp.exchanges(), 1);
    let ExchangeOutcome::Issued(issued) = outcome else {
        panic!("expected Issued, got {outcome:?}")
    };
    let provider = idp.provider();
    let r1 = issued.refresh_token.clone().expect("a rotating provider");
    assert_eq!(r1.expose_secret(), format!("{PREFIX}R1"));
    assert_eq!(provider.live_refresh_tokens(&link()), vec![r1]);
    assert_ne!(issued.access.token, first.access.token);
    assert!(provider.is_access_live(&issued.access.token, wall_clock()));
    // GitHub kills the access token issued with the refresh token used.
    assert!(!provider.is_access_live(&first.access.token, wall_clock()));
    // expires_in is counted from when the request went out.
    assert_eq!(issued.access.expires_at, now + HOUR);
    assert_eq!(idp.presentations_of(&r0), 1);
    assert_eq!(provider.unsafe_reuses(&link()), 0);
}

#[tokio::test]
async fn a_second_presentation_on_single_use_is_rejected_by_a_200_bad_refresh_token() {
    let (idp, _, r0) = enrolled(ProviderModel::SingleUse).await;
    let endpoint = endpoint(&idp);
    let ExchangeOutcome::Issued(issued) = exchange_once(&idp, &endpoint, &r0).await else {
        panic!()
    };
    let outcome = exchange_once(&idp, &endpoint, &r0).await;
    assert_eq!(
        rejected(&outcome),
        "bad_refresh_token: The refresh token passed is incorrect or expired."
    );
    assert_eq!(idp.requests()[1].status, 200, "GitHub refuses with a 200");
    let provider = idp.provider();
    assert_eq!(provider.unsafe_reuses(&link()), 1);
    // The token it was exchanged for stays valid.
    assert!(provider.is_refresh_live(&issued.refresh_token.unwrap()));
    assert_eq!(idp.presentations_of(&r0), 2);
}

#[tokio::test]
async fn a_second_presentation_on_reuse_detection_is_rejected_and_revokes_the_family() {
    let (idp, _, r0) = enrolled(ProviderModel::ReuseDetection).await;
    let endpoint = endpoint(&idp);
    let ExchangeOutcome::Issued(issued) = exchange_once(&idp, &endpoint, &r0).await else {
        panic!()
    };
    let outcome = exchange_once(&idp, &endpoint, &r0).await;
    assert!(
        rejected(&outcome).starts_with("invalid_grant: "),
        "{outcome:?}"
    );
    assert_eq!(idp.requests()[1].status, 400);
    let provider = idp.provider();
    assert!(provider.family_revoked(&link()));
    assert!(provider.live_refresh_tokens(&link()).is_empty());
    assert!(!provider.is_access_live(&issued.access.token, wall_clock()));
    // The revoked child is refused too.
    let outcome = exchange_once(&idp, &endpoint, &issued.refresh_token.unwrap()).await;
    assert!(rejected(&outcome).starts_with("invalid_grant"));
}

#[tokio::test]
async fn a_non_rotating_provider_issues_no_refresh_token() {
    let (idp, _, r0) = enrolled(ProviderModel::NonRotating).await;
    let endpoint = endpoint(&idp);
    for _ in 0..2 {
        let outcome = exchange_once(&idp, &endpoint, &r0).await;
        let ExchangeOutcome::Issued(issued) = outcome else {
            panic!("expected Issued, got {outcome:?}")
        };
        assert_eq!(issued.refresh_token, None);
        assert!(idp
            .provider()
            .is_access_live(&issued.access.token, wall_clock()));
    }
    assert!(idp.provider().is_refresh_live(&r0));
}

#[tokio::test]
async fn a_429_with_retry_after_is_rate_limited_and_keeps_the_token() {
    let (idp, _, r0) = enrolled(ProviderModel::ReuseDetection).await;
    let endpoint = endpoint(&idp);
    idp.push_fault(IdpFault::RateLimited {
        retry_after: Some(Duration::from_secs(7)),
    });
    let outcome = exchange_once(&idp, &endpoint, &r0).await;
    assert_eq!(
        outcome,
        ExchangeOutcome::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(idp.requests()[0].status, 429);
    assert!(idp.provider().is_refresh_live(&r0));

    idp.push_fault(IdpFault::RateLimited { retry_after: None });
    let outcome = exchange_once(&idp, &endpoint, &r0).await;
    assert_eq!(outcome, ExchangeOutcome::RateLimited { retry_after: None });

    // Nothing was consumed: the token still works.
    assert!(matches!(
        exchange_once(&idp, &endpoint, &r0).await,
        ExchangeOutcome::Issued(_)
    ));
    assert_eq!(idp.provider().unsafe_reuses(&link()), 0);
}

/// A gateway forwarded the request, the IdP rotated, and the gateway
/// answered 502 or 504 with its own HTML page: the endpoint cannot tell this
/// from a 5xx before consumption, so it reports a server error (which the
/// machine treats as an unknown outcome), never `Transient`.
#[tokio::test]
async fn a_502_or_504_after_the_idp_consumed_the_token_is_a_server_error() {
    for status in [502, 504] {
        let (idp, _, r0) = enrolled(ProviderModel::ReuseDetection).await;
        let endpoint = endpoint(&idp);
        idp.push_fault(IdpFault::ConsumeThen { status });
        let outcome = exchange_once(&idp, &endpoint, &r0).await;
        assert_eq!(
            outcome,
            ExchangeOutcome::ServerError {
                status,
                reason: format!("token endpoint replied HTTP {status}"),
            }
        );
        assert_eq!(idp.requests()[0].status, status);
        assert_eq!(idp.presentations_of(&r0), 1, "one presentation, no retry");
        // The provider rotated: the new pair went nowhere.
        let provider = idp.provider();
        assert!(!provider.is_refresh_live(&r0));
        assert_eq!(provider.rotations(&link()), 1);
        assert_eq!(
            provider.live_refresh_tokens(&link()),
            vec![RefreshToken::new(format!("{PREFIX}R1"))]
        );
        assert_eq!(provider.unsafe_reuses(&link()), 0);
    }
}

/// A gateway answered 503 without forwarding: nothing was consumed, but
/// the client cannot know that, so it is a server error like any 5xx.
#[tokio::test]
async fn a_503_without_forwarding_is_a_server_error_too() {
    let (idp, _, r0) = enrolled(ProviderModel::ReuseDetection).await;
    let endpoint = endpoint(&idp);
    idp.push_fault(IdpFault::Unavailable);
    let outcome = exchange_once(&idp, &endpoint, &r0).await;
    assert_eq!(
        outcome,
        ExchangeOutcome::ServerError {
            status: 503,
            reason: "token endpoint replied HTTP 503".into(),
        }
    );
    assert_eq!(idp.requests()[0].status, 503);
    assert_eq!(idp.presentations_of(&r0), 1, "one presentation, no retry");
    let provider = idp.provider();
    assert!(provider.is_refresh_live(&r0));
    assert_eq!(provider.rotations(&link()), 0);
}

#[tokio::test]
async fn a_garbage_200_is_transient_and_the_body_is_not_echoed() {
    let (idp, _, r0) = enrolled(ProviderModel::SingleUse).await;
    let endpoint = endpoint(&idp);
    idp.push_fault(IdpFault::Garbage);
    // The page quotes the presented token; `exchange_once` checks that the
    // reason does not.
    let outcome = exchange_once(&idp, &endpoint, &r0).await;
    let reason = transient(&outcome);
    assert!(
        reason.starts_with("token endpoint replied 200 with a "),
        "{reason}"
    );
    assert!(reason.contains("not a token response"), "{reason}");
    assert!(reason.contains("text/html"), "{reason}");
    assert!(!reason.contains("gateway"), "{reason}");
    assert!(idp.provider().is_refresh_live(&r0));
}

#[tokio::test]
async fn an_oversized_body_is_transient_and_names_the_bound() {
    let (idp, _, r0) = enrolled(ProviderModel::SingleUse).await;
    let endpoint = endpoint(&idp);
    idp.push_fault(IdpFault::Oversized);
    let outcome = exchange_once(&idp, &endpoint, &r0).await;
    let reason = transient(&outcome);
    assert!(reason.contains("65536-byte bound"), "{reason}");
    assert!(reason.contains("HTTP 200"), "{reason}");
}

#[tokio::test]
async fn a_hung_reply_past_the_request_timeout_is_outcome_unknown() {
    let (idp, _, r0) = enrolled(ProviderModel::ReuseDetection).await;
    let endpoint = builder(&idp.token_url())
        .request_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    idp.push_fault(IdpFault::Hang);
    let started = Instant::now();
    let outcome = exchange_once(&idp, &endpoint, &r0).await;
    assert_eq!(outcome, ExchangeOutcome::OutcomeUnknown);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The provider rotated: the reply that never came carried R1.
    let provider = idp.provider();
    assert!(!provider.is_refresh_live(&r0));
    assert_eq!(provider.rotations(&link()), 1);
}

#[tokio::test]
async fn latency_within_the_timeout_still_issues() {
    let (idp, _, r0) = enrolled(ProviderModel::SingleUse).await;
    let endpoint = builder(&idp.token_url())
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    idp.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    let outcome = exchange_once(&idp, &endpoint, &r0).await;
    assert!(matches!(outcome, ExchangeOutcome::Issued(_)), "{outcome:?}");
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let endpoint = builder(&format!("http://{closed}/token")).build().unwrap();
    let outcome = endpoint
        .exchange(&link(), &RefreshToken::new("octo-secret-R0"), wall_clock())
        .await;
    assert_clean(&outcome);
    let reason = transient(&outcome);
    assert!(reason.contains("the request was not sent"), "{reason}");
    assert!(
        reason.contains("could not connect to the token endpoint"),
        "{reason}"
    );
}

#[tokio::test]
async fn client_auth_is_a_basic_header_by_default_and_the_body_when_configured() {
    let (idp, _, r0) = enrolled(ProviderModel::SingleUse).await;
    let basic = endpoint(&idp);
    let ExchangeOutcome::Issued(issued) = exchange_once(&idp, &basic, &r0).await else {
        panic!()
    };
    let body = builder(&idp.token_url())
        .auth_style(ClientAuth::RequestBody)
        .build()
        .unwrap();
    let outcome = exchange_once(&idp, &body, &issued.refresh_token.unwrap()).await;
    assert!(matches!(outcome, ExchangeOutcome::Issued(_)), "{outcome:?}");
    let requests = idp.requests();
    assert_eq!(requests[0].client_auth, ClientAuthUsed::BasicHeader);
    assert_eq!(requests[1].client_auth, ClientAuthUsed::RequestBody);
    assert!(requests.iter().all(|r| r.authenticated));
    assert!(requests
        .iter()
        .all(|r| r.grant_type.as_deref() == Some("refresh_token")));
}

#[tokio::test]
async fn invalid_client_is_transient_names_the_code_and_is_not_retried_another_way() {
    let (idp, _, r0) = enrolled(ProviderModel::ReuseDetection).await;
    for style in [ClientAuth::BasicHeader, ClientAuth::RequestBody] {
        let wrong = HttpTokenEndpoint::builder(idp.token_url(), CLIENT_ID)
            .client_secret("not-the-secret")
            .auth_style(style)
            .build()
            .unwrap();
        let outcome = exchange_once(&idp, &wrong, &r0).await;
        let reason = transient(&outcome);
        assert!(reason.contains("invalid_client"), "{reason}");
        assert!(reason.contains("HTTP 401"), "{reason}");
        assert!(!reason.contains("not-the-secret"), "{reason}");
    }
    let requests = idp.requests();
    assert_eq!(requests[0].client_auth, ClientAuthUsed::BasicHeader);
    assert_eq!(requests[1].client_auth, ClientAuthUsed::RequestBody);
    // The refresh token is not dead: the IdP never looked at it.
    assert!(idp.provider().is_refresh_live(&r0));
    assert!(idp.provider().presentations().is_empty());
}

#[tokio::test]
async fn scopes_are_sent_space_separated() {
    let (idp, _, r0) = enrolled(ProviderModel::NonRotating).await;
    let endpoint = builder(&idp.token_url())
        .scopes(["repo", "read:user"])
        .build()
        .unwrap();
    exchange_once(&idp, &endpoint, &r0).await;
    assert_eq!(idp.requests()[0].scope.as_deref(), Some("repo read:user"));
}

#[tokio::test]
async fn githubs_exact_200_bad_refresh_token_reply_is_a_rejection() {
    let server = MockServer::builder().start().await;
    let github = r#"{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired.","error_uri":"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"}"#;
    Mock::given(method("POST"))
        .and(path("/login/oauth/access_token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(github, "application/json; charset=utf-8")
                .insert_header("cache-control", "no-store"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let endpoint = HttpTokenEndpoint::builder(
        format!("{}/login/oauth/access_token", server.uri()),
        "Iv1.0123456789abcdef",
    )
    .client_secret(CLIENT_SECRET)
    .auth_style(ClientAuth::RequestBody)
    .build()
    .unwrap();
    let outcome = endpoint
        .exchange(&link(), &RefreshToken::new("octo-secret-R7"), wall_clock())
        .await;
    assert_clean(&outcome);
    assert_eq!(
        outcome,
        ExchangeOutcome::Rejected {
            reason: "bad_refresh_token: The refresh token passed is incorrect or expired.".into()
        }
    );
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let body = String::from_utf8_lossy(&received[0].body).into_owned();
    assert!(body.contains("grant_type=refresh_token"), "{body}");
    assert!(body.contains("refresh_token=octo-secret-R7"), "{body}");
    assert!(body.contains("client_secret="), "{body}");
    server.verify().await;
}

/// A raw HTTP/1.1 server on 127.0.0.1 that serves every connection with
/// `serve` and counts connections. Returns the token URL and the count.
async fn raw_server<F, Fut>(serve: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream));
        }
    });
    (url, connections)
}

/// Reads one request, head and `Content-Length` body.
async fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            return request;
        }
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return request;
            }
        }
    }
}

async fn raw_exchange(url: &str, max_body_bytes: Option<usize>) -> ExchangeOutcome {
    let mut builder = builder(url).request_timeout(Duration::from_secs(10));
    if let Some(bytes) = max_body_bytes {
        builder = builder.max_body_bytes(bytes);
    }
    let outcome = builder
        .build()
        .unwrap()
        .exchange(&link(), &RefreshToken::new("octo-secret-R0"), wall_clock())
        .await;
    assert_clean(&outcome);
    outcome
}

#[tokio::test]
async fn a_reset_after_the_request_was_sent_is_outcome_unknown() {
    let (url, connections) = raw_server(|mut stream| async move {
        // The whole request arrives; then the connection goes away.
        read_request(&mut stream).await;
        drop(stream);
    })
    .await;
    assert_eq!(
        raw_exchange(&url, None).await,
        ExchangeOutcome::OutcomeUnknown
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_2xx_body_cut_short_is_outcome_unknown() {
    let (url, connections) = raw_server(|mut stream| async move {
        read_request(&mut stream).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                    content-length: 500\r\n\r\n{\"access_token\":\"octo-secret-A1\",";
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.flush().await.unwrap();
        drop(stream);
    })
    .await;
    assert_eq!(
        raw_exchange(&url, None).await,
        ExchangeOutcome::OutcomeUnknown
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_at_the_bound() {
    let (url, connections) = raw_server(|mut stream| async move {
        read_request(&mut stream).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                    transfer-encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("400\r\n{}\r\n", "x".repeat(0x400));
        // Without a bound this never ends; the client hangs up instead.
        while stream.write_all(chunk.as_bytes()).await.is_ok() {}
    })
    .await;
    let outcome = raw_exchange(&url, Some(4096)).await;
    let reason = transient(&outcome);
    assert!(reason.contains("4096-byte bound"), "{reason}");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&requests);
    let (url, connections) = raw_server(move |mut stream| {
        let seen = Arc::clone(&seen);
        async move {
            // Serve every request on the connection, so that a followed
            // redirect reusing it would be counted too.
            while !read_request(&mut stream).await.is_empty() {
                seen.fetch_add(1, Ordering::SeqCst);
                let reply = "HTTP/1.1 307 Temporary Redirect\r\nlocation: /token\r\n\
                             content-length: 0\r\n\r\n";
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    let outcome = raw_exchange(&url, None).await;
    let reason = transient(&outcome);
    assert!(reason.contains("HTTP 307 (a redirect)"), "{reason}");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_token_response_labelled_text_plain_is_still_issued() {
    let (url, connections) = raw_server(|mut stream| async move {
        read_request(&mut stream).await;
        let body = r#"{"access_token":"octo-secret-A1","token_type":"bearer","expires_in":60,"refresh_token":"octo-secret-R1"}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
    })
    .await;
    let outcome = raw_exchange(&url, None).await;
    let ExchangeOutcome::Issued(issued) = outcome else {
        panic!("expected Issued, got {outcome:?}")
    };
    assert_eq!(issued.access.token.expose_secret(), "octo-secret-A1");
    assert_eq!(
        issued.refresh_token.map(|r| r.expose_secret().to_owned()),
        Some("octo-secret-R1".to_owned())
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}
