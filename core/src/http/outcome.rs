//! Mapping what came back (a status, a body, a transport failure) to an
//! [`ExchangeOutcome`].

use std::time::Duration;

use oauth2::basic::BasicTokenResponse;
use oauth2::TokenResponse;
use reqwest::StatusCode;
use serde::Deserialize;

use super::transport::{Head, TransportError};
use crate::{AccessGrant, AccessToken, ExchangeOutcome, RefreshToken, Timestamp, TokenSet};

/// The longest error description quoted in a reason, in characters.
pub(super) const MAX_QUOTED: usize = 200;

/// Strips the secrets an endpoint knows of (the presented refresh token, the
/// client secret) out of text from the provider before it is quoted.
pub(super) struct Scrubber<'a> {
    pub(super) secrets: [Option<&'a str>; 2],
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
pub(super) fn issued(
    tokens: &BasicTokenResponse,
    now: Timestamp,
    default: Duration,
) -> ExchangeOutcome {
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
            lifetime: Some(expires_in),
        },
        refresh_token: tokens
            .refresh_token()
            .map(|r| r.secret())
            .filter(|r| !r.is_empty())
            .map(|r| RefreshToken::new(r.as_str())),
    })
}

pub(super) fn not_sent(what: &str) -> ExchangeOutcome {
    ExchangeOutcome::Transient {
        reason: format!("{what}; the request was not sent"),
    }
}

/// Maps a failure of [`OneRequest`](super::transport::OneRequest), with the
/// reply's head if one came.
pub(super) fn transport_outcome(failure: TransportError, head: Option<&Head>) -> ExchangeOutcome {
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
        // The request went out: the provider (or a gateway that forwarded
        // it) may have consumed the token. Whatever the body says, the
        // status is all that is known; the body is never quoted.
        return Some(ExchangeOutcome::ServerError {
            status: status.as_u16(),
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
pub(super) fn reply_outcome(
    head: &Head,
    field: Option<&str>,
    scrub: &Scrubber<'_>,
) -> ExchangeOutcome {
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
pub(super) fn known_field(path: &str) -> Option<&'static str> {
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
