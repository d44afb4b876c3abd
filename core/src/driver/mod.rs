//! Running the machine in a concurrent program: the coordination code
//! between many callers and one [`RefreshMachine`](crate::RefreshMachine),
//! written once and generic over its primitives.
//!
//! A [`Coordinator`] owns one machine behind a lock. Callers
//! [`request`](Coordinator::request) a token and get a [`Ticket`]; the answer
//! arrives through the one-shot [`Reply`] they handed in. Every effect that
//! needs I/O is handed to the [`Runtime`] to run on its own (a spawned task,
//! a worker thread), never on a caller's stack, so a refresh runs to
//! completion even when every caller has gone away: dropping a `Ticket`
//! only tells the machine that one caller stopped waiting.
//!
//! The production tokio driver, and the loom and shuttle checkers of the
//! `baton-sim` crate, all run this one copy; they differ only in the
//! [`Runtime`] they plug in (which lock, which one-shot channel, how work is
//! spawned, what the clock is).
//!
//! [`LinkStore`] and [`TokenEndpoint`] are the asynchronous ports a real
//! runtime carries the effects out against; [`perform`] is the one function
//! that turns an I/O effect into the input that answers it through them.

mod coordinator;
#[cfg(feature = "metrics")]
pub mod metrics;
mod ports;

pub use coordinator::{Coordinator, Lock, Reply, Runtime, Ticket, Work};
pub use ports::{perform, LinkStore, TokenEndpoint};

/// What a caller is finally told: a live access token, or why there is none.
pub type Answer = Result<crate::AccessGrant, crate::RefreshError>;
