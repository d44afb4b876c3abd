//! The tokio driver (feature `tokio`): a [`Refresher`] owns one machine per
//! process and answers [`Refresher::access_token`] for any number of
//! concurrent tasks.
//!
//! It is the [`Coordinator`] of [`crate::driver`] — the very code the loom
//! and shuttle checkers run — with a [`TokioRuntime`] plugged in: a
//! `std::sync::Mutex` around the machine (held only for the machine's own
//! bookkeeping, never across an await), `tokio::sync::oneshot` for answers,
//! `tokio::spawn` for every store call and exchange, and tokio's timer for
//! the machine's timeouts and the exchange deadline.
//!
//! The hot path — a live token this process already holds — takes no lock
//! and reads no clock: each thread keeps its own copy of the token, valid
//! while the coordinator's epoch (bumped by every input the machine
//! handles) has not moved and the expiry margin has not been reached by a
//! clock that a task of the refresher's ticks every few milliseconds.
//!
//! Dropping the future of `access_token` withdraws that caller only: the
//! exchange and the write it started run to completion in their own tasks,
//! so a token the provider issued is persisted even if nobody waits for it.
//!
//! Each slow-path request runs in a `baton.refresh` span carrying the link's
//! provider and user; each effect in a `baton.effect` span naming its kind.
//! Token text never reaches a span, an event or an error.
//!
//! ```no_run
//! # async fn demo<S: baton_core::driver::LinkStore, E: baton_core::driver::TokenEndpoint>(store: S, endpoint: E) {
//! use baton_core::{refresher::Refresher, Config, LinkId, OwnerId};
//!
//! let config = Config::builder(OwnerId::new("replica-a")).build().unwrap();
//! let refresher = Refresher::new(config, store, endpoint);
//! let token = refresher.access_token(&LinkId::new("github", "octocat")).await;
//! # }
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::driver::{perform, Answer, Coordinator, LinkStore, Reply, Runtime, TokenEndpoint, Work};
use crate::{
    AccessGrant, Config, Effect, ExchangeOutcome, Input, LinkId, Machine, RefreshError,
    RefreshMachine, StoreFailure, TemporaryReason, Timestamp,
};

/// The wall clock as a [`Timestamp`]: milliseconds since the UNIX epoch.
/// Every replica sharing a store must agree on it (within the expiry
/// margin), since expiries and leases are stored as instants.
pub fn wall_clock() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    Timestamp::from_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

/// A small, fast hasher for the per-thread cache's keys (FxHash's
/// multiply-rotate): the hot path hashes a link on every call, and the keys
/// are the application's own link ids, not attacker-chosen.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u8(&mut self, byte: u8) {
        self.write_u64(u64::from(byte));
    }
    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// This thread's copy of a cached token: still the machine's answer while
/// the coordinator's epoch is `epoch` and the clock is before `until`.
struct HotEntry {
    epoch: u64,
    until: Timestamp,
    grant: AccessGrant,
}

/// One refresher's entries in one thread's cache, by link (looked up by
/// reference: the hot path clones nothing shared).
type HotLinks = HashMap<LinkId, HotEntry, BuildHasherDefault<FastHasher>>;

/// Entries beyond which a thread's cache is cleared (links churn; the cache
/// is an accelerator, never the source of truth).
const HOT_CACHE_LIMIT: usize = 4096;

thread_local! {
    /// Per thread, per refresher and link. Each thread holds its own copy of
    /// the token text, so serving it touches no memory other threads write:
    /// no lock, no shared reference count.
    static HOT: RefCell<HashMap<u64, HotLinks, BuildHasherDefault<FastHasher>>> =
        RefCell::new(HashMap::default());
}

static NEXT_REFRESHER: AtomicU64 = AtomicU64::new(0);

/// The answer channel of the tokio driver.
#[derive(Debug)]
pub struct OneshotReply(oneshot::Sender<Answer>);

impl Reply for OneshotReply {
    fn send(self, answer: Answer) {
        // The receiver is gone when the caller's future was dropped.
        let _ = self.0.send(answer);
    }
}

/// The [`Runtime`] of the tokio driver: the store, the endpoint, and the
/// tokio runtime every effect and timer is spawned on.
pub struct TokioRuntime<S, E> {
    store: Arc<S>,
    endpoint: Arc<E>,
    handle: Handle,
    clock: fn() -> Timestamp,
}

impl<S, E> fmt::Debug for TokioRuntime<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioRuntime").finish_non_exhaustive()
    }
}

fn effect_kind(effect: &Effect) -> &'static str {
    match effect {
        Effect::ReadLink { .. } => "read_link",
        Effect::CompareAndSwap { .. } => "compare_and_swap",
        Effect::Exchange { .. } => "exchange",
        Effect::Validate { .. } => "validate",
        Effect::Answer { .. } => "answer",
    }
}

/// The input that stands for an effect whose task died (a panic in a store
/// or endpoint implementation): the machine must hear something, or every
/// caller of the link would wait forever.
fn lost_effect(effect: &Effect) -> Option<Input> {
    let reason = "the task carrying out this effect panicked".to_string();
    Some(match effect {
        Effect::ReadLink { id, .. } | Effect::CompareAndSwap { id, .. } => Input::StoreFailed {
            id: *id,
            failure: StoreFailure { reason },
        },
        // It may have been sent: the safe reading.
        Effect::Exchange { id, .. } => Input::ExchangeFinished {
            id: *id,
            outcome: ExchangeOutcome::OutcomeUnknown,
        },
        Effect::Validate { id, .. } => Input::ValidationFinished {
            id: *id,
            outcome: crate::ValidationOutcome::Inconclusive { reason },
        },
        Effect::Answer { .. } => return None,
    })
}

impl<S: LinkStore, E: TokenEndpoint> Runtime for TokioRuntime<S, E> {
    type Lock<T: Send + 'static> = std::sync::Mutex<T>;
    type Reply = OneshotReply;

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    fn spawn_work<M: RefreshMachine + Send + 'static>(&self, work: Work<Self, M>) {
        let store = Arc::clone(&self.store);
        let endpoint = Arc::clone(&self.endpoint);
        let clock = self.clock;
        let span = tracing::debug_span!("baton.effect", kind = effect_kind(work.effect()));
        let effect = work.effect().clone();
        // The I/O runs in a task of its own so that a panic in a store or
        // endpoint still ends in an input for the machine.
        let io = self.handle.spawn(
            async move {
                let now = clock();
                match effect {
                    Effect::Exchange { id, deadline, .. } => {
                        let budget = deadline.saturating_since(now);
                        let exchange = perform(&*store, &*endpoint, &effect, now);
                        match tokio::time::timeout(budget, exchange).await {
                            Ok(input) => input,
                            Err(_) => {
                                tracing::warn!("no reply from the token endpoint by the deadline; outcome unknown");
                                Some(Input::ExchangeFinished {
                                    id,
                                    outcome: ExchangeOutcome::OutcomeUnknown,
                                })
                            }
                        }
                    }
                    _ => perform(&*store, &*endpoint, &effect, now).await,
                }
            }
            .instrument(span),
        );
        self.handle.spawn(async move {
            let input = match io.await {
                Ok(input) => input,
                Err(_) => lost_effect(work.effect()),
            };
            if let Some(input) = input {
                work.finish(input);
            }
        });
    }

    fn wake_at<M: RefreshMachine + Send + 'static>(
        &self,
        at: Timestamp,
        coordinator: Arc<Coordinator<Self, M>>,
    ) {
        let clock = self.clock;
        self.handle.spawn(async move {
            tokio::time::sleep(at.saturating_since(clock())).await;
            coordinator.timer_fired(at);
        });
    }
}

/// Answers `access_token` for many concurrent tasks with one machine. See
/// the [module docs](self).
pub struct Refresher<S: LinkStore, E: TokenEndpoint, M: RefreshMachine + Send + 'static = Machine> {
    coordinator: Arc<Coordinator<TokioRuntime<S, E>, M>>,
    /// Tells this refresher's entries in the per-thread caches apart.
    id: u64,
    /// The clock as of the last tick (milliseconds): what the hot path
    /// compares expiries with, since reading the clock itself costs more
    /// than the rest of the hot path.
    coarse_now: Arc<AtomicU64>,
}

/// How often the hot path's clock ticks. Tokens stop being served
/// `expiry_margin` (30 s by default) before they expire, so serving one up
/// to a tick late is well inside the margin.
const CLOCK_TICK: Duration = Duration::from_millis(5);

impl<S: LinkStore, E: TokenEndpoint> Refresher<S, E> {
    /// A refresher running baton's [`Machine`] with `config`.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(config: Config, store: S, endpoint: E) -> Self {
        Refresher::with_machine(Machine::new(config), store, endpoint)
    }
}

impl<S: LinkStore, E: TokenEndpoint, M: RefreshMachine + Send + 'static> Refresher<S, E, M> {
    /// A refresher running any [`RefreshMachine`] — baton's, or a model of
    /// a historical algorithm to reproduce its failure on real
    /// infrastructure.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn with_machine(machine: M, store: S, endpoint: E) -> Self {
        Refresher::with_clock(machine, store, endpoint, wall_clock)
    }

    /// As [`Refresher::with_machine`], reading time from `clock` instead of
    /// the wall clock (replicas with skewed clocks, in tests).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn with_clock(machine: M, store: S, endpoint: E, clock: fn() -> Timestamp) -> Self {
        let runtime = TokioRuntime {
            store: Arc::new(store),
            endpoint: Arc::new(endpoint),
            handle: Handle::current(),
            clock,
        };
        let coarse_now = Arc::new(AtomicU64::new(clock().as_millis()));
        let ticking = Arc::downgrade(&coarse_now);
        runtime.handle.spawn(async move {
            let mut tick = tokio::time::interval(CLOCK_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Stops once the refresher is gone.
                let Some(now) = ticking.upgrade() else { break };
                now.store(clock().as_millis(), Ordering::Relaxed);
            }
        });
        Refresher {
            coordinator: Coordinator::new(runtime, machine),
            id: NEXT_REFRESHER.fetch_add(1, Ordering::Relaxed),
            coarse_now,
        }
    }

    /// The hot path: a token this thread already copied, if the machine's
    /// answer cannot have changed since; else the machine's cached token
    /// (under its lock), copied for next time.
    fn hot_token(&self, link: &LinkId) -> Option<AccessGrant> {
        // The epoch is read before the machine is asked: a copy is never
        // tagged with an epoch newer than the state it was taken from.
        let epoch = self.coordinator.epoch();
        let now = Timestamp::from_millis(self.coarse_now.load(Ordering::Relaxed));
        let hit = HOT.with(|hot| {
            let hot = hot.borrow();
            hot.get(&self.id)?
                .get(link)
                .filter(|e| e.epoch == epoch && now < e.until)
                .map(|e| e.grant.clone())
        });
        if hit.is_some() {
            return hit;
        }
        let (grant, until) = self.coordinator.cached_token(link)?;
        let copy = AccessGrant {
            token: crate::AccessToken::new(grant.token.expose_secret()),
            expires_at: grant.expires_at,
        };
        HOT.with(|hot| {
            let mut hot = hot.borrow_mut();
            let links = hot.entry(self.id).or_default();
            if links.len() >= HOT_CACHE_LIMIT {
                links.clear();
            }
            links.insert(
                link.clone(),
                HotEntry {
                    epoch,
                    until,
                    grant: copy,
                },
            );
        });
        Some(grant)
    }

    /// A live access token for `link`: from this process's memory when it
    /// holds one, otherwise from the store or a refresh that this call
    /// starts or joins.
    ///
    /// Cancel-safe: dropping the future withdraws this caller; a refresh in
    /// flight goes on and its tokens are persisted.
    pub async fn access_token(&self, link: &LinkId) -> Result<AccessGrant, RefreshError> {
        if let Some(grant) = self.hot_token(link) {
            return Ok(grant);
        }
        let span = tracing::info_span!(
            "baton.refresh",
            provider = link.provider(),
            user = link.user(),
            outcome = tracing::field::Empty,
        );
        async {
            let (sender, receiver) = oneshot::channel();
            let ticket = self.coordinator.request(link.clone(), OneshotReply(sender));
            let answer = receiver.await.unwrap_or_else(|_| {
                // The coordinator dropped the reply unanswered: only a
                // panic inside the machine's lock does that.
                Err(RefreshError::Temporary(
                    TemporaryReason::ProviderUnavailable {
                        detail: "the refresh machine failed while handling this request".into(),
                    },
                ))
            });
            drop(ticket);
            let span = tracing::Span::current();
            match &answer {
                Ok(_) => span.record("outcome", "token"),
                Err(error) => span.record("outcome", tracing::field::display(error)),
            };
            answer
        }
        .instrument(span)
        .await
    }

    /// Runs `f` on the machine, under its lock: for inspection and tests.
    pub fn with_machine_state<T>(&self, f: impl FnOnce(&M) -> T) -> T {
        self.coordinator.with_machine(f)
    }

    /// The store this refresher writes to.
    pub fn store(&self) -> &S {
        &self.coordinator.runtime().store
    }

    /// The token endpoint this refresher presents refresh tokens to.
    pub fn endpoint(&self) -> &E {
        &self.coordinator.runtime().endpoint
    }
}

impl<S: LinkStore, E: TokenEndpoint> Refresher<S, E, Machine> {
    /// Waits until no refresh is in flight in this process (polling every
    /// millisecond): for shutdown and tests that check what was persisted
    /// after callers went away.
    pub async fn settled(&self) {
        while !self.coordinator.with_machine(Machine::is_idle) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl<S: LinkStore, E: TokenEndpoint, M: RefreshMachine + Send + 'static> fmt::Debug
    for Refresher<S, E, M>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresher").finish_non_exhaustive()
    }
}
