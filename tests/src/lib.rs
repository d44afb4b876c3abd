//! Support for the integration tests in `tests/`: throwaway PostgreSQL
//! databases on the machine's server.

pub mod pg;
