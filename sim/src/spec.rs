//! What a world is made of: the parameters a scenario sets. Immutable while
//! a world is explored; the [`crate::world::World`] holds what changes.

use std::time::Duration;

use baton_core::{Config, ConfigError, OwnerId, SecondPresentation, ServerErrorAfterSend};
use baton_fakes::ProviderModel;

use crate::zoo::Algorithm;

/// How many of each fault the adversary may inject in one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultBudget {
    /// Replica crashes (its memory is gone; its requests already sent to
    /// the provider stay in flight).
    pub crashes: u8,
    /// Callers that go away while waiting.
    pub cancels: u8,
    /// Store writes that fail (some landing anyway, some not).
    pub store_write_failures: u8,
    /// Store reads that fail.
    pub store_read_failures: u8,
    /// Exchanges answered with a rate limit.
    pub rate_limits: u8,
    /// Exchanges that never reached the provider (connection refused).
    pub transients: u8,
    /// Exchanges the provider processed whose reply never arrived.
    pub lost_replies: u8,
    /// Exchanges a gateway forwarded to the provider, which processed them,
    /// answered 502 by the gateway.
    pub gateway_after_forwarding: u8,
    /// Exchanges a gateway answered 504 while still forwarding them: the
    /// request reaches the provider later, a zombie.
    pub gateway_before_arrival: u8,
    /// Exchanges a gateway answered 503 without forwarding.
    pub gateway_without_forwarding: u8,
    /// Exchanges that time out at the driver while the request or its reply
    /// is still on the way.
    pub timeouts: u8,
    /// Validation calls that fail without an answer about the token.
    pub validation_failures: u8,
    /// Jumps of the clock to the next lease expiry, token expiry or
    /// deadline (stalls).
    pub clock_jumps: u8,
    /// Re-links: the OAuth callback writes a fresh pair of a new family
    /// into the row (see `world::writers`).
    pub relinks: u8,
    /// Unlinks: the user removes the link; its row is deleted.
    pub unlinks: u8,
    /// Revocations: the user revokes the application at the provider; every
    /// family of the link dies.
    pub revocations: u8,
}

impl FaultBudget {
    /// Whether any outside writer (re-link, unlink, revocation) may act.
    pub fn has_writers(&self) -> bool {
        self.relinks > 0 || self.unlinks > 0 || self.revocations > 0
    }
}

/// Timing of the machines (and the provider's access-token lifetime), in
/// the world's milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timing {
    /// Access-token lifetime at the provider.
    pub access_lifetime: Duration,
    /// The machines' expiry margin.
    pub expiry_margin: Duration,
    /// The lease bound.
    pub lease: Duration,
    /// The exchange deadline.
    pub exchange_timeout: Duration,
    /// How often a replica waiting on a lease re-reads.
    pub poll: Duration,
    /// The bound the machines are told about the path to the provider —
    /// and that the world then keeps: an exchange request not delivered
    /// this long after it was sent never is. `None`: no bound, requests
    /// may land at any later time.
    pub max_request_age: Option<Duration>,
    /// Retries of a failed success write before the callers are answered
    /// and the write goes on in the background.
    pub persist_attempts: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            access_lifetime: Duration::from_secs(8 * 3600),
            expiry_margin: Duration::from_secs(10),
            lease: Duration::from_secs(30),
            exchange_timeout: Duration::from_secs(10),
            poll: Duration::from_secs(30),
            max_request_age: None,
            persist_attempts: 2,
        }
    }
}

/// One world to explore.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorldSpec {
    /// The algorithm every replica runs unless `fleet` pins it: the one a
    /// scenario's `[expect]` key names, and the one `recovers`' probe runs.
    pub algorithm: Algorithm,
    /// Per replica, the algorithm it runs (a rolling deploy: an old replica
    /// beside new ones); `None`, or a replica beyond the list, runs
    /// `algorithm`. Empty: every replica runs `algorithm`.
    pub fleet: Vec<Option<Algorithm>>,
    /// Processes sharing the store.
    pub replicas: u8,
    /// Callers per replica.
    pub callers: u8,
    /// Requests each caller makes, one after the other.
    pub requests: u8,
    /// Links (users); callers are spread over them round-robin.
    pub links: u8,
    /// The provider's behaviour.
    pub provider: ProviderModel,
    /// What the machines are told about the provider; by default derived
    /// from `provider`.
    pub second_presentation: SecondPresentation,
    /// What the machines are told a 5xx after sending means (default: the
    /// outcome is unknown).
    pub server_error_after_send: ServerErrorAfterSend,
    /// Timing.
    pub timing: Timing,
    /// Whether machines that can validate new tokens do (baton only; the
    /// historical models that validate always do).
    pub validate: bool,
    /// The world does not keep `timing.max_request_age` (the machines are
    /// told a bound the path does not honour): a misconfiguration to catch.
    pub path_ignores_max_request_age: bool,
    /// The re-link callback updates only the token columns and leaves a
    /// lease in the row (a hand-written callback), instead of overwriting
    /// the whole row (baton's `enroll`).
    pub relink_keeps_lease: bool,
    /// The re-link callback runs in this replica's process (baton's
    /// `Refresher::enroll`), which tells its machine the row was replaced
    /// (`link_replaced`); `None`: it runs elsewhere and tells no machine.
    pub relink_tells_replica: Option<u8>,
    /// Per-replica clock offset in ms (positive: ahead of the world).
    pub skews: Vec<i64>,
    /// The adversary's budget.
    pub faults: FaultBudget,
}

impl WorldSpec {
    /// A world with one replica, one caller, no faults.
    pub fn new(algorithm: Algorithm, provider: ProviderModel) -> Self {
        WorldSpec {
            algorithm,
            fleet: Vec::new(),
            replicas: 1,
            callers: 1,
            requests: 1,
            links: 1,
            provider,
            second_presentation: second_presentation_of(provider),
            server_error_after_send: ServerErrorAfterSend::Unknown,
            timing: Timing::default(),
            validate: false,
            path_ignores_max_request_age: false,
            relink_keeps_lease: false,
            relink_tells_replica: None,
            skews: Vec::new(),
            faults: FaultBudget::default(),
        }
    }

    /// The configuration of replica `replica`'s incarnation `incarnation`.
    pub fn config(&self, replica: usize, incarnation: u32) -> Result<Config, ConfigError> {
        self.config_for(OwnerId::new(format!("r{replica}.{incarnation}")))
    }

    /// The configuration of a machine named `owner`.
    pub fn config_for(&self, owner: OwnerId) -> Result<Config, ConfigError> {
        let t = &self.timing;
        let builder = Config::builder(owner);
        let builder = match t.max_request_age {
            Some(age) => builder.max_request_age(age),
            None => builder,
        };
        builder
            .expiry_margin(t.expiry_margin)
            .lease_duration(t.lease)
            .exchange_timeout(t.exchange_timeout)
            .lease_poll_interval(t.poll)
            .second_presentation(self.second_presentation)
            .server_error_after_send(self.server_error_after_send)
            .validate_new_tokens(self.validate)
            .persist_attempts(t.persist_attempts)
            .store_retry_delay(Duration::from_secs(1))
            .default_retry_after(Duration::from_secs(60))
            .build()
    }

    /// The algorithm replica `replica` runs.
    pub fn algorithm_of(&self, replica: usize) -> Algorithm {
        self.fleet
            .get(replica)
            .copied()
            .flatten()
            .unwrap_or(self.algorithm)
    }

    /// How many callers in all.
    pub fn total_callers(&self) -> usize {
        usize::from(self.replicas) * usize::from(self.callers)
    }

    /// The clock offset of a replica.
    pub fn skew(&self, replica: usize) -> i64 {
        self.skews.get(replica).copied().unwrap_or(0)
    }

    /// Whether replicas `a` and `b` differ only in their names: the same
    /// algorithm, the same clock, and neither is the one the re-link
    /// callback runs in.
    pub fn alike(&self, a: usize, b: usize) -> bool {
        let told = self.relink_tells_replica.map(usize::from);
        self.algorithm_of(a) == self.algorithm_of(b)
            && self.skew(a) == self.skew(b)
            && (a == b || (told != Some(a) && told != Some(b)))
    }
}

/// What a provider model implies about second presentations: the fact a
/// correctly configured machine is given.
pub fn second_presentation_of(model: ProviderModel) -> SecondPresentation {
    match model {
        ProviderModel::SingleUse | ProviderModel::ReuseDetection => SecondPresentation::Fatal,
        ProviderModel::GraceIdempotent { window }
        | ProviderModel::GraceFork { window }
        | ProviderModel::GracePreviousValid { window } => SecondPresentation::SafeWithin(window),
        // Counting presentations across replicas is not something a replica
        // can do, so only the first reuse is known safe... and even that
        // is shared: treat it as fatal.
        ProviderModel::CountedReuse { .. } => SecondPresentation::Fatal,
        ProviderModel::RotatingNoRevocation | ProviderModel::NonRotating => {
            SecondPresentation::AlwaysSafe
        }
    }
}
