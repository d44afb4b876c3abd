//! # baton-core
//!
//! A sans-IO OAuth2 token-refresh state machine that never loses or reuses a
//! rotating refresh token — across the tasks of one process and across
//! replicas sharing one store.
//!
//! The [`Machine`] does no I/O, reads no clock, spawns no thread and draws
//! no random number: a driver feeds it [`Input`]s (a caller wants a token,
//! a store read returned, the provider answered, a timer expired — each with
//! the time it happened) and carries out the [`Effect`]s it asks for (read
//! this row, compare-and-swap it, exchange this refresh token, answer these
//! callers). The same inputs always give the same effects, so the very
//! machine that runs in production is the one the `baton` checkers explore
//! exhaustively.
//!
//! ## The algorithm
//!
//! For each link (one user at one provider), in each process:
//!
//! 1. Callers who ask while a refresh is in flight join it (single-flight);
//!    callers who go away do not cancel it.
//! 2. A live access token this process holds is returned at once. Otherwise
//!    the row is read; a live stored token is returned as is.
//! 3. A failure cached for the stored refresh token is returned without
//!    calling the provider.
//! 4. A refresh lease is taken on the row by compare-and-swap. A replica that
//!    finds it held waits (a timer, then a re-read); one that finds it
//!    expired over the same token knows only that the holder's presentation
//!    has an unknown outcome, and never presents that token again unless the
//!    provider allows a second presentation ([`SecondPresentation`]).
//! 5. The refresh token is exchanged once, with a deadline shorter than the
//!    lease. No reply, or a server error after the request was sent (a
//!    gateway answers 502 or 504 after forwarding, often after the provider
//!    rotated), is an unknown outcome: the token is presented again only
//!    where [`SecondPresentation`] and [`Config::max_request_age`] make that
//!    safe, unless [`ServerErrorAfterSend::Retry`] was chosen.
//! 6. New tokens are persisted at once, by compare-and-swap on the presented
//!    refresh token, even if every caller has gone away.
//! 7. On rejection the row is re-read: a winner's token is adopted, otherwise
//!    the failure is cached by compare-and-swap, keeping the refresh token so
//!    a late winner still wins.
//! 8. Rate limits and transient errors change nothing but the lease.
//!
//! ## Driving the machine
//!
//! A driver is a loop: feed an input, drain the effects, carry each out and
//! feed its result back, arm the timer. Here one is written by hand against
//! a row in a local variable and a provider that rotates `R0` into `R1`:
//!
//! ```
//! use std::time::Duration;
//! use baton_core::*;
//!
//! let config = Config::builder(OwnerId::new("replica-a"))
//!     .build()
//!     .expect("valid configuration");
//! let mut machine = Machine::new(config);
//! let link = LinkId::new("github", "octocat");
//!
//! // The store: one row, whose access token has expired.
//! let mut row = Some(StoredLink {
//!     access: Some(AccessGrant {
//!         token: AccessToken::new("A0"),
//!         expires_at: Timestamp::from_millis(1_000),
//!         lifetime: None,
//!     }),
//!     refresh_token: Some(RefreshToken::new("R0")),
//!     failure: None,
//!     lease: None,
//! });
//! let mut answers = Vec::new();
//! let now = Timestamp::from_millis(60_000);
//!
//! let mut inputs = vec![Input::TokenRequested { caller: CallerId(1), link: link.clone() }];
//! while let Some(input) = inputs.pop() {
//!     machine.handle_input(now, input).expect("a well-formed input");
//!     while let Some(effect) = machine.poll_output() {
//!         inputs.push(match effect {
//!             Effect::ReadLink { id, .. } => Input::LinkRead { id, row: row.clone() },
//!             Effect::CompareAndSwap { id, write, .. } => {
//!                 match StoredLink::compare_and_swap(&mut row, &write) {
//!                     CasOutcome::Won(row) => Input::CompareAndSwapWon { id, row },
//!                     CasOutcome::Lost(row) => Input::CompareAndSwapLost { id, row },
//!                 }
//!             }
//!             Effect::Exchange { id, refresh_token, .. } => {
//!                 assert_eq!(refresh_token.expose_secret(), "R0");
//!                 let issued = TokenSet {
//!                     access: AccessGrant {
//!                         token: AccessToken::new("A1"),
//!                         expires_at: now + Duration::from_secs(8 * 3600),
//!                         lifetime: Some(Duration::from_secs(8 * 3600)),
//!                     },
//!                     refresh_token: Some(RefreshToken::new("R1")),
//!                 };
//!                 Input::ExchangeFinished { id, outcome: ExchangeOutcome::Issued(issued) }
//!             }
//!             Effect::Validate { .. } => unreachable!("validation is off by default"),
//!             Effect::Answer { caller, result, .. } => {
//!                 answers.push((caller, result));
//!                 continue;
//!             }
//!         });
//!     }
//!     // A real driver arms a timer here for `machine.poll_timeout()` and
//!     // feeds `Input::TimerExpired` when it fires.
//!     assert_eq!(machine.poll_timeout(), None);
//! }
//!
//! let (caller, result) = &answers[0];
//! assert_eq!(*caller, CallerId(1));
//! assert_eq!(result.as_ref().unwrap().token.expose_secret(), "A1");
//! // The rotated token was persisted before the caller was answered, and
//! // the lease was released in the same write.
//! let stored = row.unwrap();
//! assert_eq!(stored.refresh_token.unwrap().expose_secret(), "R1");
//! assert_eq!(stored.lease, None);
//! // A second caller is served from the process's own copy: no store read.
//! machine
//!     .handle_input(now, Input::TokenRequested { caller: CallerId(2), link })
//!     .unwrap();
//! assert!(matches!(machine.poll_output(), Some(Effect::Answer { result: Ok(_), .. })));
//! ```
//!
//! A production driver runs the same loop with a database, an HTTP client
//! and a runtime's timer; every effect except [`Effect::Answer`] may be
//! carried out concurrently with the others, since each awaits its own
//! result.

mod config;
pub mod driver;
mod error;
mod flight;
#[cfg(feature = "http")]
pub mod http;
mod ids;
mod io;
mod links;
mod machine;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "tokio")]
pub mod refresher;
mod row;
mod secret;
mod small_map;
mod stage;
mod time;

pub use config::{
    Config, ConfigBuilder, ConfigError, SecondPresentation, ServerErrorAfterSend,
    SHORT_LIVED_SERVED_FRACTION,
};
pub use error::{InputError, ReauthReason, RefreshError, TemporaryReason};
pub use ids::{CallerId, EffectId, LinkId, OwnerId};
pub use io::{Effect, ExchangeOutcome, Input, StoreFailure, TokenSet, ValidationOutcome};
pub use machine::Machine;
pub use row::{
    AccessGrant, CachedFailure, CasOutcome, Change, Expect, Guard, Lease, LeaseMark, StoredLink,
    Update, Write, WriteIntent,
};
pub use secret::{AccessToken, RefreshToken};
pub use stage::{InputKind, Stage};
pub use time::Timestamp;

/// The interface every refresh algorithm presents to its drivers: baton's
/// [`Machine`], and the models of historical algorithms the simulator
/// compares it with. Drivers written against this trait run all of them.
pub trait RefreshMachine {
    /// See [`Machine::handle_input`].
    fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), InputError>;
    /// See [`Machine::poll_output`].
    fn poll_output(&mut self) -> Option<Effect>;
    /// See [`Machine::poll_timeout`].
    fn poll_timeout(&self) -> Option<Timestamp>;
    /// The access token a request for `link` at `now` would be answered
    /// with at once, with no effect, and the instant until which it would
    /// be (exclusive); `None` if the machine cannot say (the default).
    /// Drivers serve it without registering a caller.
    fn cached_token(&self, link: &LinkId, now: Timestamp) -> Option<(AccessGrant, Timestamp)> {
        let _ = (link, now);
        None
    }
    /// The [`Stage`] `input`, arriving at `now`, would meet, for coverage
    /// reports; `None` if the machine does not name its stages (the
    /// default) or would not act on the input. Reads only.
    fn stage_for(&self, now: Timestamp, input: &Input) -> Option<Stage> {
        let _ = (now, input);
        None
    }
    /// A driver served `link` the token [`cached_token`](Self::cached_token)
    /// gave, without an input (nothing is registered or answered). See
    /// [`Machine::served_cached`]; the default does nothing.
    fn served_cached(&mut self, link: &LinkId) {
        let _ = link;
    }
    /// See [`Machine::link_replaced`]: the driver replaced `link`'s row
    /// with a freshly enrolled pair. The default does nothing (the models
    /// of historical algorithms never knew).
    fn link_replaced(&mut self, now: Timestamp, link: &LinkId) {
        let _ = (now, link);
    }
}

impl RefreshMachine for Machine {
    fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        Machine::handle_input(self, now, input)
    }
    fn poll_output(&mut self) -> Option<Effect> {
        Machine::poll_output(self)
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        Machine::poll_timeout(self)
    }
    fn link_replaced(&mut self, now: Timestamp, link: &LinkId) {
        Machine::link_replaced(self, now, link)
    }
    fn cached_token(&self, link: &LinkId, now: Timestamp) -> Option<(AccessGrant, Timestamp)> {
        Machine::held_token(self, link, now).map(|(grant, until)| (grant.clone(), until))
    }
    fn stage_for(&self, now: Timestamp, input: &Input) -> Option<Stage> {
        Machine::stage_for(self, now, input)
    }
    fn served_cached(&mut self, link: &LinkId) {
        Machine::served_cached(self, link);
    }
}

#[cfg(test)]
mod tests;
