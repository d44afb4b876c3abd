//! Configuring an [`HttpTokenEndpoint`]: the builder and its errors.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenUrl};

use super::transport::describe_error;
use super::{
    ClientAuth, HttpTokenEndpoint, DEFAULT_CONNECT_TIMEOUT, DEFAULT_EXPIRES_IN,
    DEFAULT_MAX_BODY_BYTES,
};

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
    /// The defaults; made by [`HttpTokenEndpoint::builder`].
    pub(super) fn new(token_url: String, client_id: String) -> Self {
        HttpTokenEndpointBuilder {
            token_url,
            client_id,
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
    /// unless set. A longer body is not read past the bound: the exchange
    /// is [`ServerError`](crate::ExchangeOutcome::ServerError) if the status
    /// was a 5xx, [`Transient`](crate::ExchangeOutcome::Transient) otherwise.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// A bound on the whole exchange, from connecting to the last byte of
    /// the body. None by default: the driver times out each exchange at its
    /// effect's deadline anyway; this one makes the connection go away too.
    /// When it fires the exchange is
    /// [`OutcomeUnknown`](crate::ExchangeOutcome::OutcomeUnknown).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// A bound on establishing the connection (TCP and TLS);
    /// [`DEFAULT_CONNECT_TIMEOUT`] unless set. Nothing has been sent when
    /// it fires, so the exchange is
    /// [`Transient`](crate::ExchangeOutcome::Transient). Ignored when an
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
    /// `pool_max_idle_per_host(0)` (see the [module documentation](super)).
    /// A redirect it does not follow is reported as
    /// [`Transient`](crate::ExchangeOutcome::Transient).
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
