//! The provider's token endpoint over HTTP (feature `http`): a
//! [`TokenEndpoint`] that presents a refresh token with the
//! [`oauth2`](https://docs.rs/oauth2/5) crate's refresh-token grant, over a
//! `reqwest` client that sends exactly one request per exchange.
//!
//! [`HttpTokenEndpoint`] turns whatever comes back — or does not — into an
//! [`ExchangeOutcome`], the only thing the [`Machine`](crate::Machine) sees:
//!
//! | What happened | Outcome |
//! |---|---|
//! | 200 with a token response (whatever its content type) | [`Issued`](ExchangeOutcome::Issued): `expires_at = now + expires_in` (or [`default_expires_in`](HttpTokenEndpointBuilder::default_expires_in)); `refresh_token: None` when the reply carries none (non-rotating providers) |
//! | OAuth error `invalid_grant` (normally HTTP 400) | [`Rejected`](ExchangeOutcome::Rejected) `"invalid_grant: <description>"` |
//! | OAuth error `bad_refresh_token` (GitHub, sent with HTTP **200**) | [`Rejected`](ExchangeOutcome::Rejected) `"bad_refresh_token: <description>"` |
//! | any other OAuth error (`invalid_client`, `unauthorized_client`, `invalid_scope`, ...) | [`Transient`](ExchangeOutcome::Transient), naming the error code |
//! | HTTP 429, or 403 with `Retry-After` (GitHub's secondary rate limit) | [`RateLimited`](ExchangeOutcome::RateLimited), `retry_after` from a `Retry-After` in seconds |
//! | HTTP 5xx, whatever the body (the provider's, or a gateway's after forwarding the request) | [`ServerError`](ExchangeOutcome::ServerError) `{ status, "token endpoint replied HTTP 502" }`: the machine treats it as an unknown outcome unless [`ServerErrorAfterSend::Retry`](crate::ServerErrorAfterSend::Retry) is configured |
//! | 3xx (redirects are never followed) | [`Transient`](ExchangeOutcome::Transient) |
//! | a body that is neither a token response nor an OAuth error, or one larger than [`max_body_bytes`](HttpTokenEndpointBuilder::max_body_bytes) | [`Transient`](ExchangeOutcome::Transient), giving the status, size and content type but never the body |
//! | no connection: refused, reset or timed out while connecting, DNS, TLS handshake | [`Transient`](ExchangeOutcome::Transient): the request was never sent |
//! | sent, and no reply: timeout or connection reset after sending, or a 2xx whose body was cut off | [`OutcomeUnknown`](ExchangeOutcome::OutcomeUnknown) |
//!
//! Only `invalid_grant` and `bad_refresh_token` say the refresh token is
//! dead. `invalid_client`, `unauthorized_client`, `unsupported_grant_type`,
//! `invalid_scope` and the like say the *application* is misconfigured (a
//! rotated client secret, a wrong authentication style); treating them as
//! rejections would throw away a good refresh token, forcing every user to
//! re-authorise because of a deployment mistake. They are
//! [`Transient`](ExchangeOutcome::Transient), with a reason naming the code so
//! that the operator sees it.
//!
//! When it is unclear whether the request reached the provider, the answer
//! is [`OutcomeUnknown`](ExchangeOutcome::OutcomeUnknown), the safe side:
//! the machine then never presents that token again unless the provider is
//! configured to allow a second presentation. Only errors that reqwest
//! attributes to connecting (`is_connect`) count as "not sent"; a request
//! timeout ([`request_timeout`](HttpTokenEndpointBuilder::request_timeout))
//! that fires while still connecting is indistinguishable from one that
//! fires while waiting for the reply, so it is `OutcomeUnknown` too. Set a
//! [`connect_timeout`](HttpTokenEndpointBuilder::connect_timeout) shorter
//! than the request timeout to have slow connections reported as
//! `Transient` instead.
//!
//! A server error is no proof that nothing was consumed. The request was
//! sent; a gateway or load balancer in front of the provider answers 502 or
//! 504 after forwarding it, often after the provider rotated the token, and
//! a second presentation of the old token then revokes the user's whole
//! token family on a provider with reuse detection. So every 5xx is
//! [`ServerError`](ExchangeOutcome::ServerError), which the machine treats
//! like a lost reply ([`ServerErrorAfterSend::Unknown`](crate::ServerErrorAfterSend::Unknown),
//! the default): the token is not presented again, and callers are told to
//! re-authenticate. Only a provider reached with no gateway in between, whose
//! 5xx always comes before it touches the token, should be configured with
//! [`ServerErrorAfterSend::Retry`](crate::ServerErrorAfterSend::Retry).
//! No probe settles an unknown outcome either: a 504 often comes while the
//! request is still queued at the provider, so an old access token that
//! still works proves only that the refresh token was not consumed *yet*.
//! A failure with no usable reply is [`Transient`](ExchangeOutcome::Transient)
//! only when nothing was sent (the connection was never made).
//!
//! ## One presentation per exchange
//!
//! A rotating provider takes each refresh token once; a second presentation
//! is at best refused and at worst revokes the user's whole token family.
//! So this endpoint:
//!
//! - never retries: not on a 5xx, not on a timeout, not on a reset. The
//!   client it builds has reqwest's retries switched off
//!   (`retry::never()`), and the `AsyncHttpClient` it hands to `oauth2`
//!   refuses a second call outright;
//! - never follows redirects (`redirect::Policy::none()`): a 307 or 308
//!   re-posts the body, and the body is the refresh token;
//! - keeps no idle connections (`pool_max_idle_per_host(0)`): a request
//!   written onto a keep-alive connection just as the server closes it
//!   fails in a way indistinguishable from a lost reply, and would be
//!   reported as `OutcomeUnknown` — which, on a strict provider, ends with
//!   the user re-authorising. Exchanges are rare (one per access-token
//!   lifetime per link), so a fresh connection each time costs little;
//! - never probes for the client authentication style (trying Basic, then
//!   falling back to the body on `invalid_client`): the first attempt
//!   already carried the refresh token, and a provider that consumed it
//!   before checking the client would see the fallback as a reuse. The
//!   style is fixed by configuration ([`ClientAuth`]).
//!
//! Whether the provider rotates refresh tokens, and whether it tolerates a
//! second presentation (a grace period, a reuse count), is not this type's
//! business: it is machine configuration,
//! [`SecondPresentation`](crate::SecondPresentation).
//!
//! Reasons never contain token text or the client secret: bodies are never
//! echoed, and an OAuth error's code and description are stripped of the
//! presented refresh token and the secret, control characters and excess
//! length before they are quoted.
//!
//! ## Example
//!
//! ```no_run
//! use std::time::Duration;
//! use baton_core::driver::TokenEndpoint;
//! use baton_core::http::{ClientAuth, HttpTokenEndpoint};
//! use baton_core::{ExchangeOutcome, LinkId, RefreshToken, Timestamp};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let github = HttpTokenEndpoint::builder(
//!     "https://github.com/login/oauth/access_token",
//!     "Iv1.0123456789abcdef",
//! )
//! .client_secret("the client secret")
//! .auth_style(ClientAuth::RequestBody)
//! .request_timeout(Duration::from_secs(10))
//! .build()?;
//!
//! let link = LinkId::new("github", "octocat");
//! let now = Timestamp::from_millis(1_700_000_000_000);
//! match github.exchange(&link, &RefreshToken::new("ghr_..."), now).await {
//!     ExchangeOutcome::Issued(tokens) => { /* persist tokens.refresh_token at once */ }
//!     ExchangeOutcome::Rejected { reason } => { /* the user must re-authorise */ }
//!     other => { /* leave it to the machine */ }
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{EndpointNotSet, EndpointSet, RequestTokenError, Scope};
use reqwest::StatusCode;

use crate::driver::TokenEndpoint;
use crate::{ExchangeOutcome, LinkId, RefreshToken, Timestamp};

mod builder;
mod outcome;
#[cfg(test)]
mod tests;
mod transport;

pub use builder::{HttpConfigError, HttpTokenEndpointBuilder};
use outcome::{issued, known_field, not_sent, reply_outcome, transport_outcome, Scrubber};
use transport::OneRequest;

/// The default bound on a reply's body: 64 KiB, far above any token
/// response.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// The default access-token lifetime assumed when a token response carries
/// no `expires_in`: one hour, the most common lifetime.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(3600);

/// The default connect timeout of the client the builder makes: well
/// inside the machine's default 10 s exchange deadline, so that a
/// connection that never opens is reported as not sent (`Transient`)
/// before the deadline turns it into an unknown outcome.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How the application authenticates itself to the token endpoint. Fixed
/// by configuration: the endpoint never tries one style and then the other
/// (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    /// HTTP Basic authentication with the url-encoded client id and secret
    /// (RFC 6749 §2.3.1, and what it recommends).
    #[default]
    BasicHeader,
    /// `client_id` and `client_secret` as form parameters in the request
    /// body (GitHub, and providers that do not accept Basic).
    RequestBody,
}

type OAuthClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// A provider's OAuth2 token endpoint over HTTP: the production
/// [`TokenEndpoint`]. See the [module documentation](self) for how replies
/// map to outcomes. `Debug` never shows the client secret.
#[derive(Clone)]
pub struct HttpTokenEndpoint {
    oauth: OAuthClient,
    http: reqwest::Client,
    /// Kept to scrub it out of quoted error descriptions.
    client_secret: Option<String>,
    auth: ClientAuth,
    scopes: Vec<Scope>,
    max_body_bytes: usize,
    request_timeout: Option<Duration>,
    default_expires_in: Duration,
}

impl fmt::Debug for HttpTokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTokenEndpoint")
            .field("token_url", &self.token_url())
            .field("client_id", &self.oauth.client_id().as_str())
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("auth", &self.auth)
            .field("scopes", &self.scopes.len())
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("default_expires_in", &self.default_expires_in)
            .finish()
    }
}

impl HttpTokenEndpoint {
    /// Starts configuring an endpoint that posts to `token_url` as the
    /// client `client_id`.
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
    ) -> HttpTokenEndpointBuilder {
        HttpTokenEndpointBuilder::new(token_url.into(), client_id.into())
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> &str {
        self.oauth.token_uri().as_str()
    }

    /// The client authentication style.
    pub fn auth_style(&self) -> ClientAuth {
        self.auth
    }
}

impl TokenEndpoint for HttpTokenEndpoint {
    async fn exchange(
        &self,
        _link: &LinkId,
        refresh_token: &RefreshToken,
        now: Timestamp,
    ) -> ExchangeOutcome {
        let presented = oauth2::RefreshToken::new(refresh_token.expose_secret().to_owned());
        let transport = OneRequest {
            http: self.http.clone(),
            max_body_bytes: self.max_body_bytes,
            timeout: self.request_timeout,
            sent: AtomicBool::new(false),
            head: Mutex::new(None),
        };
        let result = self
            .oauth
            .exchange_refresh_token(&presented)
            .add_scopes(self.scopes.iter().cloned())
            .request_async(&transport)
            .await;
        let head = transport
            .head
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let scrub = Scrubber {
            secrets: [
                Some(refresh_token.expose_secret()),
                self.client_secret.as_deref(),
            ],
        };
        match result {
            Ok(tokens) => issued(&tokens, now, self.default_expires_in),
            Err(RequestTokenError::Request(failure)) => transport_outcome(failure, head.as_ref()),
            Err(RequestTokenError::Parse(error, _)) => match head {
                Some(head) => reply_outcome(&head, known_field(&error.path().to_string()), &scrub),
                None => not_sent("the token request could not be built"),
            },
            Err(RequestTokenError::ServerResponse(_) | RequestTokenError::Other(_)) => match head {
                // oauth2 refuses a 200 whose content type is not JSON
                // before parsing it; a provider that labels its token
                // response text/plain has still rotated, so read it anyway
                // rather than lose the new tokens.
                Some(head) if head.status == StatusCode::OK => {
                    match serde_json::from_slice::<BasicTokenResponse>(&head.body) {
                        Ok(tokens) => issued(&tokens, now, self.default_expires_in),
                        Err(_) => reply_outcome(&head, None, &scrub),
                    }
                }
                Some(head) => reply_outcome(&head, None, &scrub),
                None => not_sent("the token request could not be built"),
            },
        }
    }
}
