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
//! | HTTP 5xx | [`Transient`](ExchangeOutcome::Transient) |
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

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AsyncHttpClient, AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpRequest,
    HttpResponse, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::driver::TokenEndpoint;
use crate::{AccessGrant, AccessToken, ExchangeOutcome, LinkId, RefreshToken, Timestamp, TokenSet};

/// The default bound on a reply's body: 64 KiB, far above any token
/// response.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// The default access-token lifetime assumed when a token response carries
/// no `expires_in`: one hour, the most common lifetime.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(3600);

/// The default connect timeout of the client the builder makes.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest error description quoted in a reason, in characters.
const MAX_QUOTED: usize = 200;

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

/// Why an [`HttpTokenEndpointBuilder`] could not build an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpConfigError {
    /// The token URL does not parse.
    InvalidTokenUrl {
        /// The parser's complaint.
        reason: String,
    },
    /// The token URL is neither `https` nor `http`.
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
    /// The client id is empty.
    EmptyClientId,
    /// A scope is empty or contains whitespace (scopes are joined with
    /// spaces on the wire).
    InvalidScope {
        /// The offending scope's position in the list.
        index: usize,
    },
    /// [`max_body_bytes`](HttpTokenEndpointBuilder::max_body_bytes) is zero.
    ZeroBodyLimit,
    /// A timeout is zero.
    ZeroTimeout {
        /// Which one.
        which: &'static str,
    },
    /// reqwest could not build its client (for example, no TLS backend).
    HttpClient {
        /// reqwest's complaint.
        reason: String,
    },
}

impl fmt::Display for HttpConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpConfigError::InvalidTokenUrl { reason } => {
                write!(f, "the token URL does not parse: {reason}")
            }
            HttpConfigError::UnsupportedScheme { scheme } => {
                write!(f, "the token URL's scheme is {scheme:?}, not https or http")
            }
            HttpConfigError::EmptyClientId => f.write_str("the client id is empty"),
            HttpConfigError::InvalidScope { index } => {
                write!(f, "scope #{index} is empty or contains whitespace")
            }
            HttpConfigError::ZeroBodyLimit => f.write_str("max_body_bytes must be at least 1"),
            HttpConfigError::ZeroTimeout { which } => write!(f, "{which} must not be zero"),
            HttpConfigError::HttpClient { reason } => {
                write!(f, "could not build the HTTP client: {reason}")
            }
        }
    }
}

impl StdError for HttpConfigError {}

/// Configures an [`HttpTokenEndpoint`]; made by
/// [`HttpTokenEndpoint::builder`]. `Debug` never shows the client secret.
#[derive(Clone)]
pub struct HttpTokenEndpointBuilder {
    token_url: String,
    client_id: String,
    client_secret: Option<String>,
    auth: ClientAuth,
    scopes: Vec<String>,
    max_body_bytes: usize,
    request_timeout: Option<Duration>,
    connect_timeout: Duration,
    default_expires_in: Duration,
    http_client: Option<reqwest::Client>,
}

impl fmt::Debug for HttpTokenEndpointBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTokenEndpointBuilder")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("auth", &self.auth)
            .field("scopes", &self.scopes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("default_expires_in", &self.default_expires_in)
            .field("custom_http_client", &self.http_client.is_some())
            .finish()
    }
}

impl HttpTokenEndpointBuilder {
    /// The client secret of a confidential client. Without one, the client
    /// id alone goes in the request body whatever the
    /// [`auth_style`](Self::auth_style) (a public client).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// How the client authenticates; [`ClientAuth::BasicHeader`] unless
    /// set. Fixed: the endpoint never tries the other style.
    pub fn auth_style(mut self, style: ClientAuth) -> Self {
        self.auth = style;
        self
    }

    /// Scopes to request with every refresh (`scope=a b c`). None by
    /// default, which keeps the scopes originally granted.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The largest reply body read, in bytes; [`DEFAULT_MAX_BODY_BYTES`]
    /// unless set. A longer body is not read past the bound and the
    /// exchange is [`Transient`](ExchangeOutcome::Transient).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// A bound on the whole exchange, from connecting to the last byte of
    /// the body. None by default: the driver times out each exchange at its
    /// effect's deadline anyway; this one makes the connection go away too.
    /// When it fires the exchange is
    /// [`OutcomeUnknown`](ExchangeOutcome::OutcomeUnknown).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// A bound on establishing the connection (TCP and TLS);
    /// [`DEFAULT_CONNECT_TIMEOUT`] unless set. Nothing has been sent when
    /// it fires, so the exchange is
    /// [`Transient`](ExchangeOutcome::Transient). Ignored when an
    /// [`http_client`](Self::http_client) is supplied.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The access-token lifetime assumed when a token response carries no
    /// `expires_in`; [`DEFAULT_EXPIRES_IN`] unless set. Set it to the
    /// provider's documented lifetime, or shorter.
    pub fn default_expires_in(mut self, lifetime: Duration) -> Self {
        self.default_expires_in = lifetime;
        self
    }

    /// Uses `client` instead of one built here. It must not follow
    /// redirects (a redirected POST presents the refresh token again) and
    /// should not retry or keep idle connections: build it with
    /// `redirect::Policy::none()`, `retry::never()` and
    /// `pool_max_idle_per_host(0)` (see the [module documentation](self)). A redirect it does not follow is reported as
    /// [`Transient`](ExchangeOutcome::Transient).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Checks the configuration and builds the endpoint.
    pub fn build(self) -> Result<HttpTokenEndpoint, HttpConfigError> {
        let token_url =
            TokenUrl::new(self.token_url).map_err(|e| HttpConfigError::InvalidTokenUrl {
                reason: e.to_string(),
            })?;
        let scheme = token_url.url().scheme();
        if scheme != "https" && scheme != "http" {
            return Err(HttpConfigError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            });
        }
        if self.client_id.is_empty() {
            return Err(HttpConfigError::EmptyClientId);
        }
        if let Some(index) = self
            .scopes
            .iter()
            .position(|s| s.is_empty() || s.chars().any(char::is_whitespace))
        {
            return Err(HttpConfigError::InvalidScope { index });
        }
        if self.max_body_bytes == 0 {
            return Err(HttpConfigError::ZeroBodyLimit);
        }
        if self.request_timeout == Some(Duration::ZERO) {
            return Err(HttpConfigError::ZeroTimeout {
                which: "request_timeout",
            });
        }
        if self.connect_timeout.is_zero() {
            return Err(HttpConfigError::ZeroTimeout {
                which: "connect_timeout",
            });
        }
        let http = match self.http_client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .retry(reqwest::retry::never())
                .pool_max_idle_per_host(0)
                .connect_timeout(self.connect_timeout)
                .build()
                .map_err(|e| HttpConfigError::HttpClient {
                    reason: describe_error(&e),
                })?,
        };
        let mut oauth = BasicClient::new(ClientId::new(self.client_id))
            .set_token_uri(token_url)
            .set_auth_type(match self.auth {
                ClientAuth::BasicHeader => AuthType::BasicAuth,
                ClientAuth::RequestBody => AuthType::RequestBody,
            });
        if let Some(secret) = &self.client_secret {
            oauth = oauth.set_client_secret(ClientSecret::new(secret.clone()));
        }
        Ok(HttpTokenEndpoint {
            oauth,
            http,
            client_secret: self.client_secret,
            auth: self.auth,
            scopes: self.scopes.into_iter().map(Scope::new).collect(),
            max_body_bytes: self.max_body_bytes,
            request_timeout: self.request_timeout,
            default_expires_in: self.default_expires_in,
        })
    }
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
        HttpTokenEndpointBuilder {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: None,
            auth: ClientAuth::default(),
            scopes: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            default_expires_in: DEFAULT_EXPIRES_IN,
            http_client: None,
        }
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

/// The reply's status line and headers as far as the mapping needs them,
/// and the body as far as it was read.
#[derive(Clone, Debug)]
struct Head {
    status: StatusCode,
    retry_after: Option<Duration>,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// What went wrong in [`OneRequest`]: the `AsyncHttpClient` error oauth2
/// hands back as [`RequestTokenError::Request`].
#[derive(Debug)]
enum TransportError {
    /// oauth2 asked for a second request within one exchange; refused.
    SecondRequest,
    /// Nothing was sent: the request could not be built, or no connection
    /// could be made.
    NotSent(String),
    /// The request was (or may have been) sent and no reply came.
    NoReply {
        /// Whether it was the request timeout that ended the wait.
        timed_out: bool,
    },
    /// The body is longer than the bound; it was not read past it.
    BodyTooLarge { limit: usize },
    /// The reply's head came, and reading its body failed.
    BodyCut {
        /// Whether it was the request timeout that ended the read.
        timed_out: bool,
    },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::SecondRequest => {
                f.write_str("a second request within one exchange was refused")
            }
            TransportError::NotSent(reason) => write!(f, "not sent: {reason}"),
            TransportError::NoReply { timed_out: true } => {
                f.write_str("timed out awaiting the reply")
            }
            TransportError::NoReply { timed_out: false } => {
                f.write_str("the connection failed awaiting the reply")
            }
            TransportError::BodyTooLarge { limit } => {
                write!(f, "the reply's body is larger than {limit} bytes")
            }
            TransportError::BodyCut { timed_out: true } => {
                f.write_str("timed out reading the reply's body")
            }
            TransportError::BodyCut { timed_out: false } => {
                f.write_str("the connection failed reading the reply's body")
            }
        }
    }
}

impl StdError for TransportError {}

/// The `AsyncHttpClient` oauth2 sends through: one request per exchange,
/// no redirect followed (by the client's policy), the body read up to a
/// bound, and the reply's head kept for the mapping.
struct OneRequest {
    /// A handle on the endpoint's client (reqwest clients are shared
    /// handles: cloning one shares its connection pool).
    http: reqwest::Client,
    max_body_bytes: usize,
    timeout: Option<Duration>,
    sent: AtomicBool,
    head: Mutex<Option<Head>>,
}

impl OneRequest {
    fn keep(&self, head: Head) {
        *self
            .head
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(head);
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        if self.sent.swap(true, Ordering::SeqCst) {
            return Err(TransportError::SecondRequest);
        }
        let mut request = reqwest::Request::try_from(request)
            .map_err(|e| TransportError::NotSent(describe_error(&e)))?;
        if let Some(timeout) = self.timeout {
            *request.timeout_mut() = Some(timeout);
        }
        let mut response = self.http.execute(request).await.map_err(|e| {
            if e.is_connect() || e.is_builder() {
                TransportError::NotSent(describe_error(&e))
            } else {
                // Anything else may have happened after the request was
                // written: the safe side is "no reply".
                TransportError::NoReply {
                    timed_out: e.is_timeout(),
                }
            }
        })?;
        let mut head = Head {
            status: response.status(),
            retry_after: response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after),
            content_type: response.headers().get(CONTENT_TYPE).map(describe_header),
            body: Vec::new(),
        };
        let headers = response.headers().clone();
        let limit = self.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|declared| declared > limit as u64)
        {
            self.keep(head);
            return Err(TransportError::BodyTooLarge { limit });
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        self.keep(head);
                        return Err(TransportError::BodyTooLarge { limit });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    self.keep(head);
                    return Err(TransportError::BodyCut {
                        timed_out: e.is_timeout(),
                    });
                }
            }
        }
        head.body.clone_from(&body);
        self.keep(head);
        let mut reply = HttpResponse::new(body);
        *reply.status_mut() = response.status();
        *reply.headers_mut() = headers;
        Ok(reply)
    }
}

impl<'c> AsyncHttpClient<'c> for OneRequest {
    type Error = TransportError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// Strips the secrets an endpoint knows of (the presented refresh token, the
/// client secret) out of text from the provider before it is quoted.
struct Scrubber<'a> {
    secrets: [Option<&'a str>; 2],
}

impl Scrubber<'_> {
    /// `text` made fit to quote: secrets replaced by `<redacted>`, control
    /// characters by spaces, and cut to [`MAX_QUOTED`] characters. Secrets
    /// go first so that a cut cannot leave part of one behind.
    fn quote(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in self.secrets.iter().flatten() {
            if !secret.is_empty() {
                text = text.replace(secret, "<redacted>");
            }
        }
        let mut quoted: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_QUOTED)
            .collect();
        if text.chars().nth(MAX_QUOTED).is_some() {
            quoted.push('…');
        }
        quoted
    }
}

/// An OAuth error response (RFC 6749 §5.2), as much of it as is quoted.
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The two error codes that say the refresh token itself is dead.
fn kills_refresh_token(code: &str) -> bool {
    matches!(code, "invalid_grant" | "bad_refresh_token")
}

/// Maps a token response to [`ExchangeOutcome::Issued`].
fn issued(tokens: &BasicTokenResponse, now: Timestamp, default: Duration) -> ExchangeOutcome {
    let access = tokens.access_token().secret();
    if access.is_empty() {
        return ExchangeOutcome::Transient {
            reason: "token endpoint replied 200 with an empty access_token".into(),
        };
    }
    let expires_in = tokens.expires_in().unwrap_or(default);
    ExchangeOutcome::Issued(TokenSet {
        access: AccessGrant {
            token: AccessToken::new(access.as_str()),
            expires_at: now + expires_in,
        },
        refresh_token: tokens
            .refresh_token()
            .map(|r| r.secret())
            .filter(|r| !r.is_empty())
            .map(|r| RefreshToken::new(r.as_str())),
    })
}

fn not_sent(what: &str) -> ExchangeOutcome {
    ExchangeOutcome::Transient {
        reason: format!("{what}; the request was not sent"),
    }
}

/// Maps a failure of [`OneRequest`], with the reply's head if one came.
fn transport_outcome(failure: TransportError, head: Option<&Head>) -> ExchangeOutcome {
    match failure {
        TransportError::SecondRequest => not_sent("oauth2 asked for a second request"),
        TransportError::NotSent(reason) => not_sent(&format!(
            "could not connect to the token endpoint ({reason})"
        )),
        TransportError::NoReply { .. } => ExchangeOutcome::OutcomeUnknown,
        TransportError::BodyTooLarge { limit } => {
            let Some(head) = head else {
                return ExchangeOutcome::OutcomeUnknown;
            };
            status_outcome(head).unwrap_or_else(|| ExchangeOutcome::Transient {
                reason: format!(
                    "token endpoint replied HTTP {} with a body larger than the {limit}-byte \
                     bound ({}); it was not read",
                    head.status.as_u16(),
                    content_type(head),
                ),
            })
        }
        TransportError::BodyCut { timed_out } => {
            let Some(head) = head else {
                return ExchangeOutcome::OutcomeUnknown;
            };
            // A 2xx whose body never fully came may have carried new
            // tokens: the reply was lost.
            if head.status.is_success() {
                return ExchangeOutcome::OutcomeUnknown;
            }
            status_outcome(head).unwrap_or_else(|| ExchangeOutcome::Transient {
                reason: format!(
                    "token endpoint replied HTTP {} and {} reading its body",
                    head.status.as_u16(),
                    if timed_out {
                        "the request timed out"
                    } else {
                        "the connection failed"
                    },
                ),
            })
        }
    }
}

/// The outcomes the status alone decides: rate limits, server errors and
/// redirects.
fn status_outcome(head: &Head) -> Option<ExchangeOutcome> {
    let status = head.status;
    if status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && head.retry_after.is_some())
    {
        return Some(ExchangeOutcome::RateLimited {
            retry_after: head.retry_after,
        });
    }
    if status.is_server_error() {
        return Some(ExchangeOutcome::Transient {
            reason: format!("token endpoint replied HTTP {}", status.as_u16()),
        });
    }
    if status.is_redirection() {
        return Some(ExchangeOutcome::Transient {
            reason: format!(
                "token endpoint replied HTTP {} (a redirect); redirects are not followed, \
                 because following one would present the refresh token again",
                status.as_u16()
            ),
        });
    }
    None
}

/// Maps a complete reply that oauth2 did not accept as a token response.
/// `field` names a token-response field oauth2 found missing or malformed.
fn reply_outcome(head: &Head, field: Option<&str>, scrub: &Scrubber<'_>) -> ExchangeOutcome {
    if let Some(outcome) = status_outcome(head) {
        return outcome;
    }
    let status = head.status.as_u16();
    if let Ok(error) = serde_json::from_slice::<OAuthError>(&head.body) {
        let code = scrub.quote(&error.error);
        let description = error
            .error_description
            .as_deref()
            .map(|d| scrub.quote(d))
            .filter(|d| !d.trim().is_empty());
        let quoted = match &description {
            Some(description) => format!("{code}: {description}"),
            None => code.clone(),
        };
        if kills_refresh_token(&error.error) {
            return ExchangeOutcome::Rejected { reason: quoted };
        }
        return ExchangeOutcome::Transient {
            reason: format!(
                "token endpoint refused the request with {quoted} (HTTP {status}); this \
                 names a client configuration problem, not a dead refresh token, so the \
                 refresh token is kept"
            ),
        };
    }
    let what = if head.body.is_empty() {
        "an empty body".to_owned()
    } else {
        format!("a {}-byte body ({})", head.body.len(), content_type(head))
    };
    let reason = if head.status == StatusCode::OK {
        let field = field
            .map(|f| format!("; field `{f}` is missing or malformed"))
            .unwrap_or_default();
        format!(
            "token endpoint replied 200 with {what} that is not a token response{field}; \
             the body is not shown, as it may hold tokens"
        )
    } else {
        format!(
            "token endpoint replied HTTP {status} with {what} that is not an OAuth error \
             response; the body is not shown, as it may hold tokens"
        )
    };
    ExchangeOutcome::Transient { reason }
}

/// `path` if it is one of the token-response fields (a path from the body
/// could be anything, including a token).
fn known_field(path: &str) -> Option<&'static str> {
    [
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
    ]
    .into_iter()
    .find(|field| *field == path)
}

fn content_type(head: &Head) -> String {
    match &head.content_type {
        Some(content_type) => format!("content type {content_type}"),
        None => "no content type".to_owned(),
    }
}

/// A header value fit to quote: printable ASCII, at most 64 characters.
fn describe_header(value: &HeaderValue) -> String {
    let text: String = value
        .as_bytes()
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .take(64)
        .collect();
    text
}

/// A `Retry-After` value in delay-seconds; `None` for an HTTP date (the
/// machine's timestamps count from an epoch the driver chooses, so a date
/// cannot be compared with them) and for anything malformed.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().map(Duration::from_secs)
}

/// An error and its sources, without the URL (not a secret, but noise).
fn describe_error(error: &(dyn StdError + 'static)) -> String {
    let mut text = match error.downcast_ref::<reqwest::Error>() {
        Some(e) if e.url().is_some() => {
            let mut without = String::new();
            // reqwest prints "<kind> for url (<url>)": keep the kind.
            let shown = e.to_string();
            without.push_str(shown.split(" for url (").next().unwrap_or(&shown));
            without
        }
        _ => error.to_string(),
    };
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
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
                reason: "bad_refresh_token: The refresh token passed is incorrect or expired."
                    .into()
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
            reason(&reply_outcome(
                &head(503, None, r#"{"error":"invalid_grant"}"#),
                None,
                &SCRUB
            )),
            "token endpoint replied HTTP 503"
        );
        assert!(reason(&reply_outcome(&head(307, None, ""), None, &SCRUB)).contains("redirect"));
        // A 403 without Retry-After is an ordinary refusal.
        assert!(matches!(
            reply_outcome(&head(403, None, "<html/>"), None, &SCRUB),
            ExchangeOutcome::Transient { .. }
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
        assert!(matches!(
            transport_outcome(
                TransportError::BodyCut { timed_out: false },
                Some(&head(502, None, ""))
            ),
            ExchangeOutcome::Transient { .. }
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
        let builder = HttpTokenEndpoint::builder("https://idp.example/token", "client")
            .client_secret("s3cret");
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
}
