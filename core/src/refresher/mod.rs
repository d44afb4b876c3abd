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
//! coarse clock that an OS thread ticks every few milliseconds (see
//! `clock.rs` for why not a task). The copies belong to the refresher and
//! are freed with it.
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
//! let config = Config::builder(OwnerId::generate("api")).build().unwrap();
//! let refresher = Refresher::new(config, store, endpoint);
//! let token = refresher.access_token(&LinkId::new("github", "octocat")).await;
//! # }
//! ```

mod clock;
mod hot;
mod runtime;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::driver::{Coordinator, LinkStore, TokenEndpoint};
use crate::{
    AccessGrant, Config, LinkId, Machine, RefreshError, RefreshMachine, StoreFailure,
    TemporaryReason, Timestamp, TokenSet,
};

pub use clock::wall_clock;
pub use runtime::{OneshotReply, TokioRuntime};

use clock::CoarseClock;
use hot::HotCache;

/// Answers `access_token` for many concurrent tasks with one machine. See
/// the [module docs](self).
pub struct Refresher<S: LinkStore, E: TokenEndpoint, M: RefreshMachine + Send + 'static = Machine> {
    coordinator: Arc<Coordinator<TokioRuntime<S, E>, M>>,
    /// Each thread's copies of the tokens this refresher holds.
    hot: HotCache,
    /// The clock the hot path compares expiries with, ticked by a thread
    /// of its own (see [`clock`]).
    coarse_clock: Arc<CoarseClock>,
    /// Warns about short-lived tokens; `None` when the machine's margin is
    /// not known (a machine other than baton's).
    short_lived: Option<ShortLivedWarning>,
}

/// One `tracing` warning per link whose tokens live less than twice the
/// expiry margin (see [`crate::SHORT_LIVED_SERVED_FRACTION`]): the machine
/// serves them for half their life, which is correct but costs a refresh
/// every half-lifetime, and usually means the margin is set too high for
/// this provider.
struct ShortLivedWarning {
    margin: Duration,
    /// The links already warned about. Grows only with links whose provider
    /// issues short-lived tokens; checked only on the slow path.
    warned: Mutex<HashSet<LinkId>>,
}

impl ShortLivedWarning {
    fn check(&self, link: &LinkId, grant: &AccessGrant, now: Timestamp) {
        let left = grant.expires_at.saturating_since(now);
        if left >= self.margin * 2 {
            return;
        }
        let first = self
            .warned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(link.clone());
        if first {
            tracing::warn!(
                provider = link.provider(),
                user = link.user(),
                left_ms = left.as_millis() as u64,
                expiry_margin_ms = self.margin.as_millis() as u64,
                "access tokens for this link live less than twice the expiry margin: each is \
                 served for the first half of its life, then refreshed; lower expiry_margin \
                 to half the provider's token lifetime or less (keeping it above the clock skew between \
                 replicas) to refresh less often"
            );
        }
    }
}

impl<S: LinkStore, E: TokenEndpoint> Refresher<S, E> {
    /// A refresher running baton's [`Machine`] with `config`.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(config: Config, store: S, endpoint: E) -> Self {
        let margin = config.expiry_margin();
        let mut refresher = Refresher::with_machine(Machine::new(config), store, endpoint);
        refresher.short_lived = Some(ShortLivedWarning {
            margin,
            warned: Mutex::default(),
        });
        refresher
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
        Refresher {
            coordinator: Coordinator::new(runtime, machine),
            hot: HotCache::default(),
            coarse_clock: CoarseClock::start(clock),
            short_lived: None,
        }
    }

    /// The hot path: a token this thread already copied, if the machine's
    /// answer cannot have changed since; else the machine's cached token
    /// (under its lock), copied for next time.
    #[inline]
    fn hot_token(&self, link: &LinkId) -> Option<AccessGrant> {
        // The epoch is read before the machine is asked: a copy is never
        // tagged with an epoch newer than the state it was taken from.
        let epoch = self.coordinator.epoch();
        let now = self.coarse_clock.now();
        if let Some(grant) = self.hot.get(link, epoch, now) {
            return Some(grant);
        }
        let (grant, until) = self.coordinator.cached_token(link)?;
        self.hot.put(link, epoch, until, &grant);
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
            #[cfg(feature = "metrics")]
            let started = std::time::Instant::now();
            let (sender, receiver) = oneshot::channel();
            let ticket = self.coordinator.request(link.clone(), OneshotReply(sender));
            let answer = match receiver.await {
                Ok(answer) => {
                    ticket.answered();
                    answer
                }
                Err(_) => {
                    drop(ticket);
                    // The coordinator dropped the reply unanswered: only a
                    // panic inside the machine's lock does that.
                    Err(RefreshError::Temporary(
                        TemporaryReason::ProviderUnavailable {
                            detail: "the refresh machine failed while handling this request".into(),
                        },
                    ))
                }
            };
            #[cfg(feature = "metrics")]
            crate::driver::metrics::refresh_duration(
                link,
                started.elapsed().as_secs_f64(),
                answer.is_ok(),
            );
            let span = tracing::Span::current();
            match &answer {
                Ok(grant) => {
                    if let Some(warning) = &self.short_lived {
                        warning.check(link, grant, (self.coordinator.runtime().clock)());
                    }
                    span.record("outcome", "token")
                }
                Err(error) => span.record("outcome", tracing::field::display(error)),
            };
            answer
        }
        .instrument(span)
        .await
    }

    /// Enrols `link` with the `pair` the OAuth callback's
    /// authorization-code exchange returned: the one call a callback needs.
    /// Works on a fresh database (it creates the row) and for a re-link
    /// (it replaces the row).
    ///
    /// It writes [`StoredLink::enrolled`](crate::StoredLink::enrolled)
    /// through [`LinkStore::enroll`] — the pair, no cached failure, no
    /// lease — and then tells this process's machine
    /// ([`Machine::link_replaced`]).
    ///
    /// # Against a refresh in flight
    ///
    /// The fresh pair wins, on every replica:
    ///
    /// - **The store never goes back to the older family.** Every write a
    ///   refresh makes is a compare-and-swap guarded on the refresh token it
    ///   read. Once the pair is stored, an exchange of the old token that
    ///   completes anyway loses its write and adopts the new row; so does a
    ///   cached failure or a lease release. The old family stays live at the
    ///   provider but is never stored again (the simulator's `relink`
    ///   scenarios check this for every interleaving).
    /// - **No request made after `enroll` returns is answered from the
    ///   older family by this process**: its held token is forgotten (and
    ///   every thread's hot-path copy with it), and callers waiting on a
    ///   refresh that was in flight are answered from a fresh read of the
    ///   row instead of that refresh's result.
    /// - Other replicas learn of the new pair from the store when their
    ///   held token of the older family reaches the expiry margin; until
    ///   then they may still hand it out (it still works: the provider did
    ///   not revoke the old family).
    ///
    /// A failure means the row may or may not have been replaced: the
    /// callback should report it and may call `enroll` again (the write is
    /// idempotent). Dropping the future may leave the row written and this
    /// process's memory not yet told; call again.
    pub async fn enroll(&self, link: &LinkId, pair: TokenSet) -> Result<(), StoreFailure> {
        let written = self.coordinator.runtime().store.enroll(link, &pair).await;
        // Even a failed write may have landed: forgetting costs one read.
        self.coordinator.link_replaced(link);
        written
    }

    /// Runs `f` on the machine, under its lock: for inspection and tests.
    pub fn with_machine_state<T>(&self, f: impl FnOnce(&M) -> T) -> T {
        self.coordinator.with_machine(f)
    }

    /// Waits until nothing is under way in this process — no store call or
    /// exchange outstanding, no caller waiting, no timer armed — polling
    /// every millisecond: for shutdown, and for tests that check what was
    /// persisted after callers went away. Works for any machine.
    pub async fn settled(&self) {
        while !self.coordinator.is_settled() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
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

impl<S: LinkStore, E: TokenEndpoint, M: RefreshMachine + Send + 'static> fmt::Debug
    for Refresher<S, E, M>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refresher").finish_non_exhaustive()
    }
}
