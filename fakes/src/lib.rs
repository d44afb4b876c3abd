//! # baton-fakes
//!
//! Deterministic fake OAuth2 providers and an in-memory link store.
