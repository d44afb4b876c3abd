//! Throwaway PostgreSQL databases for tests. Being written.
