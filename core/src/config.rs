//! The machine's configuration, and the facts about the provider it talks
//! to. Built through [`ConfigBuilder`], which refuses combinations that
//! would break the algorithm instead of panicking later.

use std::fmt;
use std::time::Duration;

use crate::ids::OwnerId;
use crate::time::Timestamp;

/// Whether presenting a refresh token a second time is safe — a fact about
/// the provider, not a preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecondPresentation {
    /// A used refresh token is rejected, and on providers with reuse
    /// detection the whole token family is revoked (GitHub Apps, Auth0 and
    /// Okta outside their windows, Salesforce). The default, and the only
    /// safe assumption about an unknown provider.
    Fatal,
    /// A used refresh token is honoured again within this window of its
    /// first use (Okta, Cognito, Atlassian, django-oauth-toolkit's grace
    /// setting, Auth0's overlap period).
    SafeWithin(Duration),
    /// Refresh tokens are never consumed (Google; Entra ID keeps the old one
    /// working).
    AlwaysSafe,
}

/// What a server error (HTTP 5xx) that came back after the exchange was
/// sent means — a choice about the path to the provider, not only the
/// provider: a gateway or load balancer in front of it answers 502 or 504
/// after forwarding the request, often after the provider rotated the token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ServerErrorAfterSend {
    /// The token may have been consumed: treat the exchange like a lost
    /// reply ([`ExchangeOutcome::OutcomeUnknown`](crate::ExchangeOutcome)).
    /// The token is presented again only where [`SecondPresentation`]
    /// allows it (inside a grace window, or to a provider that never
    /// consumes tokens); elsewhere the outcome is cached and callers are
    /// told to re-authenticate. The default, and the only safe choice for
    /// single-use, reuse-detection and count-based providers: a second
    /// presentation of a consumed token there revokes the whole family.
    #[default]
    Unknown,
    /// The token was not consumed: answer with a retryable error and
    /// present the same token on the next request. Choose it only for a
    /// provider reached with no gateway in between whose 5xx always comes
    /// before it touches the token. The trade-off: a 5xx that came before
    /// the provider consumed the token then costs no re-authentication, but
    /// one that came after makes the next refresh present a consumed token
    /// — which, on a provider with reuse detection, revokes the family and
    /// logs the user out.
    Retry,
}

/// How much of its life an access token is served for at least, as
/// (numerator, denominator): one half.
///
/// Under the margin alone a token that lives no longer than
/// [`Config::expiry_margin`] would never be live — every request would
/// refresh — and one that lives a little longer would be live for the
/// moment it lives beyond the margin. A measured lifetime is always a
/// little longer than the provider's `expires_in` (it runs from when the
/// request was sent), so a provider whose tokens live exactly as long as
/// the margin would be refreshed on nearly every call. Instead a token is
/// served until the margin or half its lifetime is left, whichever is
/// less: tokens that live twice the margin or longer are served as the
/// margin says, shorter ones for the first half of their life. The lifetime is the one stored with the token
/// ([`AccessGrant::lifetime`](crate::AccessGrant::lifetime), measured by the
/// machine that refreshed it), so every replica serves a token until the
/// same instant; one replica serving it longer than another would hand out
/// a token the other's refresh has already retired. The tokio `Refresher`
/// logs one `tracing` warning per link when it happens. Lower the margin
/// below the lifetime to serve them longer, and keep it above the clock
/// skew between replicas.
pub const SHORT_LIVED_SERVED_FRACTION: (u32, u32) = (1, 2);

/// A validated configuration. See [`Config::builder`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    pub(crate) owner: OwnerId,
    pub(crate) expiry_margin: Duration,
    pub(crate) lease_duration: Duration,
    pub(crate) exchange_timeout: Duration,
    pub(crate) lease_poll_interval: Duration,
    pub(crate) second_presentation: SecondPresentation,
    pub(crate) server_error_after_send: ServerErrorAfterSend,
    pub(crate) max_request_age: Option<Duration>,
    pub(crate) persist_attempts: u32,
    pub(crate) store_retry_delay: Duration,
    pub(crate) default_retry_after: Duration,
    pub(crate) validate_new_tokens: bool,
    pub(crate) max_held_links: usize,
}

impl Config {
    /// Starts a configuration for the machine incarnation `owner` (see
    /// [`OwnerId`]), with defaults suited to GitHub-like providers.
    pub fn builder(owner: OwnerId) -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                owner,
                expiry_margin: Duration::from_secs(30),
                lease_duration: Duration::from_secs(30),
                exchange_timeout: Duration::from_secs(10),
                lease_poll_interval: Duration::from_millis(250),
                second_presentation: SecondPresentation::Fatal,
                server_error_after_send: ServerErrorAfterSend::Unknown,
                max_request_age: None,
                persist_attempts: 3,
                store_retry_delay: Duration::from_millis(200),
                default_retry_after: Duration::from_secs(1),
                validate_new_tokens: false,
                max_held_links: 100_000,
            },
        }
    }

    /// The name this machine writes into its leases.
    pub fn owner(&self) -> &OwnerId {
        &self.owner
    }

    /// An access token is treated as expired this long before it expires.
    pub fn expiry_margin(&self) -> Duration {
        self.expiry_margin
    }

    /// How long a refresh lease keeps other replicas waiting.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// How long the driver waits for the provider's reply to an exchange.
    pub fn exchange_timeout(&self) -> Duration {
        self.exchange_timeout
    }

    /// How often a replica waiting on another's lease re-reads the row.
    pub fn lease_poll_interval(&self) -> Duration {
        self.lease_poll_interval
    }

    /// What the provider does with a second presentation of a refresh token.
    pub fn second_presentation(&self) -> SecondPresentation {
        self.second_presentation
    }

    /// What a server error after the exchange was sent means.
    pub fn server_error_after_send(&self) -> ServerErrorAfterSend {
        self.server_error_after_send
    }

    /// How late a sent request can still reach the provider, if the team
    /// has stated a bound.
    pub fn max_request_age(&self) -> Option<Duration> {
        self.max_request_age
    }

    /// How many links may hold nothing but a token before the least
    /// recently used are forgotten.
    pub fn max_held_links(&self) -> usize {
        self.max_held_links
    }

    /// The margin for a token that lived `lifetime` when issued, where
    /// that is known: the configured margin, or what is left after the
    /// first [`SHORT_LIVED_SERVED_FRACTION`] of its life, whichever is
    /// less. Without a lifetime, the configured margin.
    pub(crate) fn margin_for(&self, lifetime: Option<Duration>) -> Duration {
        match lifetime {
            Some(lifetime) => {
                let (served, of) = SHORT_LIVED_SERVED_FRACTION;
                self.expiry_margin.min(lifetime - lifetime * served / of)
            }
            None => self.expiry_margin,
        }
    }

    /// Whether a token first presented no earlier than `first_presented`
    /// may be presented again now. Inside a grace window that needs every
    /// presentation — the earlier one, which may still be on its way, and
    /// ours — to reach the provider before the window closes, so it rests
    /// on the stated [`max_request_age`](ConfigBuilder::max_request_age):
    /// without one, no second presentation is safe.
    pub(crate) fn may_present_again(&self, first_presented: Timestamp, now: Timestamp) -> bool {
        match (self.second_presentation, self.max_request_age) {
            (SecondPresentation::Fatal, _) => false,
            (SecondPresentation::AlwaysSafe, _) => true,
            (SecondPresentation::SafeWithin(_), None) => false,
            (SecondPresentation::SafeWithin(window), Some(age)) => {
                now + age < first_presented + window
            }
        }
    }
}

/// Builds a [`Config`]; [`ConfigBuilder::build`] checks it.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Treat access tokens as expired this long before their expiry
    /// (default 30 s). It must cover the largest clock skew between
    /// replicas: providers that kill the previous access token on refresh
    /// make a replica whose clock runs behind hand out dead tokens otherwise.
    /// Tokens that live no longer than the margin are served for a fraction
    /// of their life instead (see [`SHORT_LIVED_SERVED_FRACTION`]).
    pub fn expiry_margin(mut self, margin: Duration) -> Self {
        self.config.expiry_margin = margin;
        self
    }

    /// How long a refresh lease keeps other replicas waiting (default 30 s).
    /// Must exceed the exchange timeout.
    pub fn lease_duration(mut self, duration: Duration) -> Self {
        self.config.lease_duration = duration;
        self
    }

    /// How long the driver waits for the token endpoint (default 10 s).
    /// Must be shorter than the lease.
    pub fn exchange_timeout(mut self, timeout: Duration) -> Self {
        self.config.exchange_timeout = timeout;
        self
    }

    /// How often a replica waiting on another's lease re-reads the row
    /// (default 250 ms). Must be non-zero.
    pub fn lease_poll_interval(mut self, interval: Duration) -> Self {
        self.config.lease_poll_interval = interval;
        self
    }

    /// What the provider does with a second presentation of a refresh token
    /// (default [`SecondPresentation::Fatal`]).
    pub fn second_presentation(mut self, fact: SecondPresentation) -> Self {
        self.config.second_presentation = fact;
        self
    }

    /// What a server error (HTTP 5xx) that came back after the exchange was
    /// sent means (default [`ServerErrorAfterSend::Unknown`]: the token may
    /// have been consumed). See [`ServerErrorAfterSend::Retry`] for the
    /// trade-off before choosing it.
    pub fn server_error_after_send(mut self, meaning: ServerErrorAfterSend) -> Self {
        self.config.server_error_after_send = meaning;
        self
    }

    /// A bound the team states about the path to the provider: a request
    /// that has not reached the provider this long after it was sent never
    /// will (a gateway's upstream timeout, a provider that discards stale
    /// requests). Default: no bound.
    ///
    /// Only grace windows need it. A provider that honours a second
    /// presentation within a window of the first use honours it only if it
    /// *arrives* inside the window — and a first request a gateway answered
    /// 504 for, or whose reply was lost, may still be on its way: it can
    /// land after our second presentation, after the window closed, and be
    /// taken as a reuse (the family revoked). With no bound stated, baton
    /// never presents a token twice, even inside a grace window; with one,
    /// it presents again only while both requests must land in the window.
    pub fn max_request_age(mut self, age: Duration) -> Self {
        self.config.max_request_age = Some(age);
        self
    }

    /// How many times to try persisting freshly issued tokens, while the
    /// callers wait, when the store fails (default 3, at least 1). After
    /// that the callers get the new access token and the write goes on
    /// being retried, once per lease duration, until the store answers:
    /// this process holds the only copy of the new refresh token.
    pub fn persist_attempts(mut self, attempts: u32) -> Self {
        self.config.persist_attempts = attempts;
        self
    }

    /// How long to wait between attempts to persist (default 200 ms).
    pub fn store_retry_delay(mut self, delay: Duration) -> Self {
        self.config.store_retry_delay = delay;
        self
    }

    /// The delay to tell callers when the provider rate-limits without a
    /// `Retry-After` (default 1 s).
    pub fn default_retry_after(mut self, delay: Duration) -> Self {
        self.config.default_retry_after = delay;
        self
    }

    /// Validate each freshly issued access token with an API call after it
    /// is persisted (default off). A failed validation never touches the
    /// stored link.
    pub fn validate_new_tokens(mut self, validate: bool) -> Self {
        self.config.validate_new_tokens = validate;
        self
    }

    /// How many links this process keeps a token for while nothing else is
    /// under way for them (default 100,000). Beyond it, the least recently
    /// requested link's token is forgotten; its next request reads the
    /// store instead of being answered from memory. Bounds the memory of a
    /// process that serves an unbounded set of links. Zero keeps no token
    /// between requests.
    pub fn max_held_links(mut self, links: usize) -> Self {
        self.config.max_held_links = links;
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<Config, ConfigError> {
        let c = &self.config;
        if c.exchange_timeout.is_zero() {
            return Err(ConfigError::ZeroExchangeTimeout);
        }
        if c.exchange_timeout >= c.lease_duration {
            return Err(ConfigError::ExchangeOutlivesLease {
                exchange_timeout: c.exchange_timeout,
                lease_duration: c.lease_duration,
            });
        }
        if c.lease_poll_interval.is_zero() {
            return Err(ConfigError::ZeroPollInterval);
        }
        if c.persist_attempts == 0 {
            return Err(ConfigError::NoPersistAttempts);
        }
        if c.owner.as_str().is_empty() {
            return Err(ConfigError::EmptyOwner);
        }
        Ok(self.config)
    }
}

/// A configuration the algorithm cannot run with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The exchange deadline must be shorter than the lease, or a replica
    /// would still be waiting for the provider when others stop waiting for
    /// it.
    ExchangeOutlivesLease {
        /// The configured exchange timeout.
        exchange_timeout: Duration,
        /// The configured lease duration.
        lease_duration: Duration,
    },
    /// An exchange timeout of zero gives up before the request is sent.
    ZeroExchangeTimeout,
    /// A zero poll interval would spin on the store.
    ZeroPollInterval,
    /// Freshly issued tokens must be persisted at least once.
    NoPersistAttempts,
    /// Leases must name their owner.
    EmptyOwner,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ExchangeOutlivesLease {
                exchange_timeout,
                lease_duration,
            } => write!(
                f,
                "exchange_timeout ({exchange_timeout:?}) is not shorter than lease_duration \
                 ({lease_duration:?}): other replicas would stop waiting while this one's \
                 exchange may still land; lower exchange_timeout or raise lease_duration"
            ),
            ConfigError::ZeroExchangeTimeout => f.write_str(
                "exchange_timeout is zero: every exchange would time out before it is sent; \
                 set it above the token endpoint's slowest reply (default 10 s)",
            ),
            ConfigError::ZeroPollInterval => f.write_str(
                "lease_poll_interval is zero: replicas waiting on a lease would re-read the row \
                 in a busy loop; set a non-zero interval (default 250 ms)",
            ),
            ConfigError::NoPersistAttempts => f.write_str(
                "persist_attempts is 0: issued tokens would never be written; set at least 1 \
                 (default 3)",
            ),
            ConfigError::EmptyOwner => f.write_str(
                "the owner id is empty: leases must name their holder; use \
                 OwnerId::generate(\"<service name>\")",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder() -> ConfigBuilder {
        Config::builder(OwnerId::new("replica-a"))
    }

    #[test]
    fn defaults_build() {
        let config = builder().build().unwrap();
        assert!(config.exchange_timeout() < config.lease_duration());
    }

    #[test]
    fn bad_configurations_are_errors() {
        let cases = [
            (
                builder().exchange_timeout(Duration::from_secs(30)),
                ConfigError::ExchangeOutlivesLease {
                    exchange_timeout: Duration::from_secs(30),
                    lease_duration: Duration::from_secs(30),
                },
            ),
            (
                builder().exchange_timeout(Duration::ZERO),
                ConfigError::ZeroExchangeTimeout,
            ),
            (
                builder().lease_poll_interval(Duration::ZERO),
                ConfigError::ZeroPollInterval,
            ),
            (
                builder().persist_attempts(0),
                ConfigError::NoPersistAttempts,
            ),
            (Config::builder(OwnerId::new("")), ConfigError::EmptyOwner),
        ];
        for (builder, expected) in cases {
            assert_eq!(builder.build(), Err(expected));
        }
    }

    #[test]
    fn errors_say_what_to_change() {
        let error = builder()
            .exchange_timeout(Duration::from_secs(30))
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("lower exchange_timeout or raise lease_duration"),
            "{error}"
        );
        assert!(!error.contains('\n'), "one line: {error}");
    }

    #[test]
    fn short_lived_tokens_get_a_fraction_of_their_life() {
        let config = builder()
            .expiry_margin(Duration::from_secs(30))
            .build()
            .unwrap();
        // Unknown lifetimes, or twice the margin and longer: the margin.
        assert_eq!(config.margin_for(None), Duration::from_secs(30));
        assert_eq!(
            config.margin_for(Some(Duration::from_secs(60))),
            Duration::from_secs(30)
        );
        assert_eq!(
            config.margin_for(Some(Duration::from_secs(3600))),
            Duration::from_secs(30)
        );
        // A little longer than the margin: half its life, not one second.
        assert_eq!(
            config.margin_for(Some(Duration::from_secs(31))),
            Duration::from_millis(15_500)
        );
        // Not longer than the margin: served for the first half.
        assert_eq!(
            config.margin_for(Some(Duration::from_secs(30))),
            Duration::from_secs(15)
        );
        assert_eq!(
            config.margin_for(Some(Duration::from_secs(20))),
            Duration::from_secs(10)
        );
        assert_eq!(config.margin_for(Some(Duration::ZERO)), Duration::ZERO);
    }

    #[test]
    fn second_presentation_windows() {
        let t = Timestamp::from_millis;
        let grace = builder()
            .exchange_timeout(Duration::from_secs(5))
            .second_presentation(SecondPresentation::SafeWithin(Duration::from_secs(30)))
            .build()
            .unwrap();
        // With no bound on how late a request may land, a second
        // presentation is never safe, even inside the window.
        assert!(!grace.may_present_again(t(0), t(0)));
        let bounded = builder()
            .second_presentation(SecondPresentation::SafeWithin(Duration::from_secs(30)))
            .max_request_age(Duration::from_secs(5))
            .build()
            .unwrap();
        // Our request may arrive up to 5 s late, so the last safe send is
        // strictly before first + 25 s.
        assert!(bounded.may_present_again(t(0), t(24_999)));
        assert!(!bounded.may_present_again(t(0), t(25_000)));
        let fatal = builder().build().unwrap();
        assert!(!fatal.may_present_again(t(0), t(0)));
        let never_consumed = builder()
            .second_presentation(SecondPresentation::AlwaysSafe)
            .build()
            .unwrap();
        assert!(never_consumed.may_present_again(t(0), t(u64::MAX)));
    }
}
