//! The one-shot client oauth2 sends through: one request per exchange,
//! the body read up to a bound, the reply's head kept for the mapping.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

/// The reply's status line and headers as far as the mapping needs them,
/// and the body as far as it was read.
#[derive(Clone, Debug)]
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) retry_after: Option<Duration>,
    pub(super) content_type: Option<String>,
    pub(super) body: Vec<u8>,
}

/// What went wrong in [`OneRequest`]: the `AsyncHttpClient` error oauth2
/// hands back as [`RequestTokenError::Request`](oauth2::RequestTokenError::Request).
#[derive(Debug)]
pub(super) enum TransportError {
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
pub(super) struct OneRequest {
    /// A handle on the endpoint's client (reqwest clients are shared
    /// handles: cloning one shares its connection pool).
    pub(super) http: reqwest::Client,
    pub(super) max_body_bytes: usize,
    pub(super) timeout: Option<Duration>,
    pub(super) sent: AtomicBool,
    pub(super) head: Mutex<Option<Head>>,
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
pub(super) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().map(Duration::from_secs)
}

/// An error and its sources, without the URL (not a secret, but noise).
pub(super) fn describe_error(error: &(dyn StdError + 'static)) -> String {
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
