//! The tokio driver (feature `tokio`). Being written.
