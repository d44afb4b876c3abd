//! A stateful identity provider served over real HTTP (feature `idp`):
//! [`FakeIdp`] answers `POST /token` with the refresh-token grant on a
//! [`wiremock::MockServer`], so that the production HTTP token endpoint can
//! be tested end to end — request encoding, client authentication, status
//! codes, headers, bodies, latency and lost replies.
//!
//! All token logic is [`FakeProvider`]'s: each well-formed, authenticated
//! refresh request is one [`FakeProvider::exchange`], and its outcome is
//! rendered as a provider would send it:
//!
//! | Provider outcome | Reply |
//! |---|---|
//! | [`Issued`](ExchangeOutcome::Issued) | 200 `{"access_token", "token_type": "bearer", "expires_in", "refresh_token"?}` |
//! | [`Rejected`](ExchangeOutcome::Rejected), [`ProviderModel::SingleUse`] | **200** `{"error": "bad_refresh_token", ...}`, as GitHub answers |
//! | [`Rejected`](ExchangeOutcome::Rejected), any other model | 400 `{"error": "invalid_grant", ...}` |
//! | [`RateLimited`](ExchangeOutcome::RateLimited) | 429, with `Retry-After` in whole seconds if given |
//! | [`ServerError`](ExchangeOutcome::ServerError) (a gateway's fault: [`IdpFault::ConsumeThen`], [`IdpFault::Unavailable`]) | its status (502, 503, 504), an HTML page |
//!
//! Faults for the next requests are queued with [`FakeIdp::push_fault`]
//! ([`IdpFault`]); latency is set with [`FakeIdp::set_latency`]. Both can be
//! changed at any time, also while requests are in flight.
//!
//! **Clock.** The IdP stamps every presentation and enrolment with the wall
//! clock, in milliseconds since the Unix epoch ([`wall_clock`]): the same
//! epoch production drivers pass to the HTTP endpoint as `now`, so the
//! expiries the IdP records and the ones the endpoint computes from
//! `expires_in` agree (to within the request's latency and the rounding of
//! `expires_in` down to whole seconds). Grace windows are measured on that
//! clock too.
//!
//! **Client authentication.** The IdP is a confidential client's provider:
//! it accepts the client id and secret either in an HTTP Basic header
//! (url-encoded, RFC 6749 §2.3.1) or as `client_id` / `client_secret` form
//! parameters, refuses both at once (`invalid_request`, 400) and refuses
//! missing or wrong credentials (`invalid_client`, 401) without presenting
//! the token to the provider. Which style each request used is recorded
//! ([`TokenRequest::client_auth`]).
//!
//! Tokens are the provider's fake texts (`{prefix}A{n}`, `{prefix}R{n}`),
//! still carried as [`AccessToken`](baton_core::AccessToken) /
//! [`RefreshToken`] so that they are never printed by accident.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton_core::{ExchangeOutcome, LinkId, RefreshToken, Timestamp, TokenSet};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::provider::PresentationResult;
use crate::{FakeProvider, ProviderFault, ProviderModel};

/// The wiremock crate this IdP runs on, for tests that need a plain mock
/// beside it (a provider's exact reply, say) without depending on it
/// themselves.
pub use wiremock;

/// The client id [`FakeIdp::start`] accepts.
pub const CLIENT_ID: &str = "baton-test-client";

/// The client secret [`FakeIdp::start`] accepts.
pub const CLIENT_SECRET: &str = "baton-test-client-secret";

/// How long a [`IdpFault::Hang`] reply is held back: far beyond any
/// deadline a test sets. The server drops it when the IdP shuts down.
pub const HANG: Duration = Duration::from_secs(3600);

/// The size of an [`IdpFault::Oversized`] body.
pub const OVERSIZED_BYTES: usize = 1024 * 1024;

/// The current wall-clock time in milliseconds since the Unix epoch, the
/// IdP's clock.
pub fn wall_clock() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Timestamp::from_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

/// A fault scripted for one refresh request: the next well-formed,
/// authenticated `POST /token` takes the first queued fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdpFault {
    /// 429 with `Retry-After` (whole seconds, rounded up) if given; the
    /// token is not consumed ([`ProviderFault::RateLimited`]).
    RateLimited {
        /// The `Retry-After` to send.
        retry_after: Option<Duration>,
    },
    /// A gateway in front of the provider answers 503 without forwarding
    /// the request: the token is not consumed
    /// ([`ProviderFault::GatewayWithoutForwarding`]).
    Unavailable,
    /// A gateway forwards the request, the provider processes it — rotating
    /// the token — and the gateway answers `status` (502, 504) instead of
    /// the provider's reply ([`ProviderFault::GatewayAfterForwarding`]).
    ConsumeThen {
        /// The status the client gets.
        status: u16,
    },
    /// 200 with an HTML page instead of a token response, from something in
    /// front of the provider: the token is not consumed. The page quotes
    /// the presented refresh token, so a client that echoes bodies into its
    /// error messages leaks it.
    Garbage,
    /// 200 with a [`OVERSIZED_BYTES`] JSON body (a token response padded
    /// with junk) from something in front of the provider: the token is
    /// not consumed.
    Oversized,
    /// The provider processes the request — rotating the token — and the
    /// reply, carrying the new tokens, is held back for [`HANG`]: the lost
    /// reply ([`ProviderFault::LostReply`]).
    Hang,
}

impl IdpFault {
    /// The fault the provider sees.
    fn provider_fault(self) -> ProviderFault {
        match self {
            IdpFault::RateLimited { retry_after } => ProviderFault::RateLimited { retry_after },
            IdpFault::Garbage | IdpFault::Oversized => ProviderFault::Transient,
            IdpFault::Unavailable => ProviderFault::GatewayWithoutForwarding,
            IdpFault::ConsumeThen { status } => ProviderFault::GatewayAfterForwarding { status },
            IdpFault::Hang => ProviderFault::LostReply,
        }
    }
}

/// How a request authenticated the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAuthUsed {
    /// An `Authorization: Basic` header.
    BasicHeader,
    /// `client_secret` (with `client_id`) in the form body.
    RequestBody,
    /// Both at once (refused: RFC 6749 allows one method per request).
    Both,
    /// Neither.
    Missing,
}

/// One `POST /token` as the IdP received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// When it arrived, on the IdP's clock.
    pub at: Timestamp,
    /// The `grant_type` parameter.
    pub grant_type: Option<String>,
    /// The `refresh_token` parameter.
    pub refresh_token: Option<RefreshToken>,
    /// The `scope` parameter.
    pub scope: Option<String>,
    /// How the client authenticated.
    pub client_auth: ClientAuthUsed,
    /// Whether the credentials were accepted.
    pub authenticated: bool,
    /// The scripted fault this request took, if any.
    pub fault: Option<IdpFault>,
    /// The reply's status code (sent or, for a hang, held back).
    pub status: u16,
}

struct State {
    provider: FakeProvider,
    client_id: String,
    client_secret: String,
    latency: Duration,
    faults: VecDeque<IdpFault>,
    requests: Vec<TokenRequest>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fake identity provider serving `POST /token` over HTTP. See the
/// [module documentation](self).
pub struct FakeIdp {
    server: MockServer,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeIdp")
            .field("uri", &self.server.uri())
            .field("model", &lock(&self.state).provider.model())
            .finish_non_exhaustive()
    }
}

impl FakeIdp {
    /// Starts an IdP behaving as `model`, whose access tokens live for
    /// `access_lifetime`, accepting the client [`CLIENT_ID`] /
    /// [`CLIENT_SECRET`]. It listens on a port of its own on 127.0.0.1
    /// until dropped.
    pub async fn start(model: ProviderModel, access_lifetime: Duration) -> FakeIdp {
        FakeIdp::start_with_client(model, access_lifetime, CLIENT_ID, CLIENT_SECRET).await
    }

    /// [`start`](FakeIdp::start) with other client credentials.
    pub async fn start_with_client(
        model: ProviderModel,
        access_lifetime: Duration,
        client_id: &str,
        client_secret: &str,
    ) -> FakeIdp {
        let state = Arc::new(Mutex::new(State {
            provider: FakeProvider::new(model, access_lifetime),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            latency: Duration::ZERO,
            faults: VecDeque::new(),
            requests: Vec::new(),
        }));
        // A server of its own rather than one from wiremock's pool: a hung
        // reply must not outlive this IdP on a recycled server.
        let server = MockServer::builder().start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(TokenRoute {
                state: Arc::clone(&state),
            })
            .mount(&server)
            .await;
        FakeIdp { server, state }
    }

    /// The token endpoint's URL, `http://127.0.0.1:<port>/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.server.uri())
    }

    /// The server's base URL.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Starts a token family for `link` now (see [`FakeProvider::enroll`]).
    pub fn enroll(&self, link: &LinkId, prefix: &str) -> TokenSet {
        lock(&self.state)
            .provider
            .enroll(link, prefix, wall_clock())
    }

    /// A snapshot of the provider: live tokens, revocations, unsafe reuses,
    /// the journal of presentations.
    pub fn provider(&self) -> FakeProvider {
        lock(&self.state).provider.clone()
    }

    /// Runs `f` on the provider as it is now, without cloning it.
    pub fn with_provider<R>(&self, f: impl FnOnce(&FakeProvider) -> R) -> R {
        f(&lock(&self.state).provider)
    }

    /// How many requests carried `token` as their `refresh_token`, whatever
    /// became of them.
    pub fn presentations_of(&self, token: &RefreshToken) -> u32 {
        let count = lock(&self.state)
            .requests
            .iter()
            .filter(|r| r.refresh_token.as_ref() == Some(token))
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// How many `POST /token` requests arrived.
    pub fn exchanges(&self) -> usize {
        lock(&self.state).requests.len()
    }

    /// Every `POST /token` so far, in order of arrival.
    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.state).requests.clone()
    }

    /// Delays every reply from now on by `latency` (after the provider has
    /// processed the request).
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.state).latency = latency;
    }

    /// Queues `fault` for the next refresh request not already given one.
    pub fn push_fault(&self, fault: IdpFault) {
        lock(&self.state).faults.push_back(fault);
    }

    /// Faults queued and not yet taken.
    pub fn pending_faults(&self) -> usize {
        lock(&self.state).faults.len()
    }

    /// The client id the IdP accepts.
    pub fn client_id(&self) -> String {
        lock(&self.state).client_id.clone()
    }

    /// The client secret the IdP accepts.
    pub fn client_secret(&self) -> String {
        lock(&self.state).client_secret.clone()
    }
}

/// The `POST /token` route.
struct TokenRoute {
    state: Arc<Mutex<State>>,
}

impl Respond for TokenRoute {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let now = wall_clock();
        let mut state = lock(&self.state);
        let form = parse_form(&request.body);
        let param = |name: &str| {
            form.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let mut record = TokenRequest {
            at: now,
            grant_type: param("grant_type"),
            refresh_token: param("refresh_token").map(RefreshToken::new),
            scope: param("scope"),
            client_auth: ClientAuthUsed::Missing,
            authenticated: false,
            fault: None,
            status: 0,
        };
        let (template, delay) = state.answer(request, &form, now, &mut record);
        state.requests.push(record);
        let delay = delay.max(state.latency);
        if delay.is_zero() {
            template
        } else {
            template.set_delay(delay)
        }
    }
}

impl State {
    /// The reply to one request and how long to hold it back; fills in
    /// `record`'s authentication, fault and status.
    fn answer(
        &mut self,
        request: &Request,
        form: &[(String, String)],
        now: Timestamp,
        record: &mut TokenRequest,
    ) -> (ResponseTemplate, Duration) {
        let param = |name: &str| {
            form.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let basic = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(|v| parse_basic(v).unwrap_or_default());
        let body_secret = param("client_secret");
        let (auth, credentials) = match (basic, body_secret) {
            (Some(_), Some(_)) => (ClientAuthUsed::Both, None),
            (Some(pair), None) => (ClientAuthUsed::BasicHeader, Some(pair)),
            (None, Some(secret)) => (
                ClientAuthUsed::RequestBody,
                Some((
                    param("client_id").unwrap_or_default().to_owned(),
                    secret.to_owned(),
                )),
            ),
            (None, None) => (ClientAuthUsed::Missing, None),
        };
        record.client_auth = auth;
        if auth == ClientAuthUsed::Both {
            return (
                oauth_error(
                    record,
                    400,
                    "invalid_request",
                    "More than one client authentication method was used.",
                ),
                Duration::ZERO,
            );
        }
        let accepted = credentials
            .is_some_and(|(id, secret)| id == self.client_id && secret == self.client_secret);
        if !accepted {
            let mut reply = oauth_error(
                record,
                401,
                "invalid_client",
                "Client authentication failed.",
            );
            if auth == ClientAuthUsed::BasicHeader {
                reply = reply.insert_header("www-authenticate", "Basic realm=\"fake-idp\"");
            }
            return (reply, Duration::ZERO);
        }
        record.authenticated = true;
        if record.grant_type.as_deref() != Some("refresh_token") {
            return (
                oauth_error(
                    record,
                    400,
                    "unsupported_grant_type",
                    "Only the refresh_token grant is served here.",
                ),
                Duration::ZERO,
            );
        }
        let Some(presented) = record.refresh_token.clone() else {
            return (
                oauth_error(
                    record,
                    400,
                    "invalid_request",
                    "The refresh_token parameter is missing.",
                ),
                Duration::ZERO,
            );
        };

        let fault = self.faults.pop_front();
        record.fault = fault;
        let outcome = self
            .provider
            .exchange(now, &presented, fault.map(IdpFault::provider_fault));
        let result = self
            .provider
            .presentations()
            .last()
            .map(|p| p.result.clone())
            .expect("the exchange was journalled");
        match fault {
            Some(IdpFault::Garbage) => {
                record.status = 200;
                let page = format!(
                    "<html><body><h1>Welcome to the gateway</h1><p>{}</p></body></html>",
                    presented.expose_secret()
                );
                (
                    ResponseTemplate::new(200).set_body_raw(page, "text/html; charset=utf-8"),
                    Duration::ZERO,
                )
            }
            Some(IdpFault::Oversized) => {
                record.status = 200;
                let mut body = String::with_capacity(OVERSIZED_BYTES);
                body.push_str(
                    r#"{"access_token":"oversized","token_type":"bearer","expires_in":3600,"padding":""#,
                );
                while body.len() < OVERSIZED_BYTES - 2 {
                    body.push('x');
                }
                body.push_str("\"}");
                (
                    ResponseTemplate::new(200).set_body_raw(body, "application/json"),
                    Duration::ZERO,
                )
            }
            Some(IdpFault::Hang) => {
                // The provider processed the request: the reply held back
                // carries what it issued, or its refusal.
                let reply = match result {
                    PresentationResult::Issued(set)
                    | PresentationResult::HonouredAgain(set)
                    | PresentationResult::Replayed(set) => token_response(record, &set, now),
                    PresentationResult::Rejected { .. }
                    | PresentationResult::RejectedAndRevoked { .. }
                    | PresentationResult::NotProcessed => {
                        rejection(record, self.provider.model(), &result)
                    }
                };
                (reply, HANG)
            }
            _ => (self.render(record, &outcome, &result, now), Duration::ZERO),
        }
    }

    /// The reply for an outcome of [`FakeProvider::exchange`].
    fn render(
        &self,
        record: &mut TokenRequest,
        outcome: &ExchangeOutcome,
        result: &PresentationResult,
        now: Timestamp,
    ) -> ResponseTemplate {
        match outcome {
            ExchangeOutcome::Issued(set) => token_response(record, set, now),
            ExchangeOutcome::Rejected { .. } => rejection(record, self.provider.model(), result),
            ExchangeOutcome::RateLimited { retry_after } => {
                record.status = 429;
                let mut reply = ResponseTemplate::new(429).set_body_json(json!({
                    "error": "rate_limited",
                    "error_description": "Too many requests.",
                }));
                if let Some(retry_after) = retry_after {
                    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                    reply = reply.insert_header("retry-after", seconds.to_string().as_str());
                }
                reply
            }
            ExchangeOutcome::ServerError { status, .. } => {
                record.status = *status;
                ResponseTemplate::new(*status).set_body_raw(
                    "<html><body><h1>Bad gateway</h1></body></html>",
                    "text/html; charset=utf-8",
                )
            }
            ExchangeOutcome::Transient { .. } | ExchangeOutcome::OutcomeUnknown => {
                unreachable!("the IdP renders lost replies and garbage itself")
            }
        }
    }
}

/// 200 with a token response for `set`; `expires_in` counts whole seconds
/// from `now`, rounded down.
fn token_response(record: &mut TokenRequest, set: &TokenSet, now: Timestamp) -> ResponseTemplate {
    record.status = 200;
    let mut body = json!({
        "access_token": set.access.token.expose_secret(),
        "token_type": "bearer",
        "expires_in": set.access.expires_at.saturating_since(now).as_secs(),
    });
    if let Some(refresh_token) = &set.refresh_token {
        body["refresh_token"] = json!(refresh_token.expose_secret());
    }
    ResponseTemplate::new(200)
        .set_body_json(body)
        .insert_header("cache-control", "no-store")
}

/// The refusal of a refresh token: GitHub's 200 `bad_refresh_token` for
/// [`ProviderModel::SingleUse`], a 400 `invalid_grant` otherwise.
fn rejection(
    record: &mut TokenRequest,
    model: ProviderModel,
    result: &PresentationResult,
) -> ResponseTemplate {
    if model == ProviderModel::SingleUse {
        record.status = 200;
        return ResponseTemplate::new(200).set_body_json(json!({
            "error": "bad_refresh_token",
            "error_description": "The refresh token passed is incorrect or expired.",
            "error_uri": "https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens",
        }));
    }
    let description = match result {
        PresentationResult::RejectedAndRevoked { .. } => {
            "Refresh token reuse detected; every token of the grant has been revoked."
        }
        _ => "The refresh token is invalid, expired, revoked or already used.",
    };
    oauth_error(record, 400, model.rejection_code(), description)
}

fn oauth_error(
    record: &mut TokenRequest,
    status: u16,
    code: &str,
    description: &str,
) -> ResponseTemplate {
    record.status = status;
    ResponseTemplate::new(status).set_body_json(json!({
        "error": code,
        "error_description": description,
    }))
}

/// The pairs of an `application/x-www-form-urlencoded` body.
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            (form_decode(key), form_decode(value))
        })
        .collect()
}

/// Decodes one form-urlencoded component: `+` is a space, `%XX` a byte.
/// Malformed escapes are kept as they are.
fn form_decode(text: &[u8]) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < text.len() => match (hex(text[i + 1]), hex(text[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The client id and secret of an `Authorization: Basic` header value,
/// each form-urldecoded (RFC 6749 §2.3.1); `None` if malformed or another
/// scheme.
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(encoded.trim())?;
    let at = decoded.iter().position(|&b| b == b':')?;
    Some((form_decode(&decoded[..at]), form_decode(&decoded[at + 1..])))
}

/// Standard base64 with padding.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, quad) in bytes.chunks(4).enumerate() {
        let last = index == bytes.len() / 4 - 1;
        let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - padding] {
            n = n << 6 | value(c)?;
        }
        n <<= 6 * padding as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - padding]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent_escapes() {
        assert_eq!(
            parse_form(b"grant_type=refresh_token&refresh_token=a%2Bb+c%3D&flag&bad=%zz%4"),
            vec![
                ("grant_type".into(), "refresh_token".into()),
                ("refresh_token".into(), "a+b c=".into()),
                ("flag".into(), String::new()),
                ("bad".into(), "%zz%4".into()),
            ]
        );
    }

    #[test]
    fn basic_credentials_are_base64_then_form_decoded() {
        // "my%20id:s%3Acret" — oauth2 url-encodes each half first.
        assert_eq!(
            parse_basic("Basic bXklMjBpZDpzJTNBY3JldA=="),
            Some(("my id".into(), "s:cret".into()))
        );
        assert_eq!(parse_basic("basic YTpi"), Some(("a".into(), "b".into())));
        assert_eq!(parse_basic("Bearer YTpi"), None);
        assert_eq!(parse_basic("Basic YTpi="), None);
        assert_eq!(parse_basic("Basic Y==="), None);
        assert_eq!(base64_decode("YQ=="), Some(b"a".to_vec()));
        assert_eq!(base64_decode("YWI="), Some(b"ab".to_vec()));
        assert_eq!(base64_decode(""), Some(Vec::new()));
    }

    #[test]
    fn faults_map_onto_the_provider() {
        assert_eq!(IdpFault::Hang.provider_fault(), ProviderFault::LostReply);
        assert_eq!(
            IdpFault::ConsumeThen { status: 504 }.provider_fault(),
            ProviderFault::GatewayAfterForwarding { status: 504 }
        );
        assert_eq!(
            IdpFault::Unavailable.provider_fault(),
            ProviderFault::GatewayWithoutForwarding
        );
        assert_eq!(IdpFault::Garbage.provider_fault(), ProviderFault::Transient);
    }
}
