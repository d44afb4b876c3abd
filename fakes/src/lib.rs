//! # baton-fakes
//!
//! Deterministic stand-ins for the two things a refresh machine talks to:
//!
//! - [`FakeProvider`]: an OAuth2 token endpoint behaving as one row of the
//!   provider table ([`ProviderModel`]: single-use, reuse detection, grace
//!   windows, counted reuse, rotation without revocation, no rotation), with
//!   injectable faults ([`ProviderFault`]: rate limits, 5xx before or after
//!   rotating, lost replies) and the bookkeeping the invariants read
//!   (live tokens, revocations, unsafe reuses);
//! - [`InMemoryStore`]: the link store, with the Postgres store's
//!   compare-and-swap contract and injectable failures ([`StoreFault`]).
//!
//! No clock, no randomness, no hash-map iteration: the same calls give the
//! same results, and both types are small values that the explorer clones,
//! hashes and compares as part of a world's state.
//!
//! ```
//! use std::time::Duration;
//! use baton_core::{ExchangeOutcome, LinkId, StoredLink, Timestamp};
//! use baton_fakes::{FakeProvider, InMemoryStore, ProviderModel};
//!
//! let link = LinkId::new("github", "octocat");
//! let mut github = FakeProvider::new(ProviderModel::SingleUse, Duration::from_secs(8 * 3600));
//! let first = github.enroll(&link, "", Timestamp::ZERO);
//! let r0 = first.refresh_token.clone().unwrap();
//!
//! let mut store = InMemoryStore::new();
//! store.insert(
//!     link.clone(),
//!     StoredLink {
//!         access: Some(first.access),
//!         refresh_token: first.refresh_token,
//!         ..StoredLink::default()
//!     },
//! );
//!
//! // The first presentation rotates R0 into R1; the second is refused and
//! // breaks `no_reuse`.
//! let now = Timestamp::from_millis(1_000);
//! let ExchangeOutcome::Issued(second) = github.exchange(now, &r0, None) else { panic!() };
//! assert_eq!(second.refresh_token.unwrap().expose_secret(), "R1");
//! assert_eq!(
//!     github.exchange(now, &r0, None),
//!     ExchangeOutcome::Rejected { reason: "bad_refresh_token".into() }
//! );
//! assert_eq!(github.unsafe_reuses(&link), 1);
//! // The store still holds R0, which the provider no longer honours.
//! let stored = store.row(&link).unwrap().refresh_token.as_ref().unwrap();
//! assert!(!github.is_refresh_live(stored));
//! ```

#[cfg(feature = "idp")]
pub mod idp;
pub mod ports;
pub mod provider;
pub mod store;
mod vecmap;

pub use provider::{FakeProvider, Presentation, PresentationResult, ProviderFault, ProviderModel};
pub use store::{InMemoryStore, StoreFault};
