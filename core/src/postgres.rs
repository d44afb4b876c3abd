//! The Postgres link store (feature `postgres`). Being written.
