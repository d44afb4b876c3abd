//! The HTTP token endpoint on the `oauth2` crate (feature `http`). Being written.
