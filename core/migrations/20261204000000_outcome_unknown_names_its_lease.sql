-- baton: a cached 'outcome_unknown' names the lease it was judged under
-- (its owner and expiry), so that the lease's holder, coming back knowing
-- it never presented under that lease, can clear that record and no other.
-- Rows written before this migration keep both columns NULL: a record that
-- names no lease, which nobody clears.
ALTER TABLE baton_links
    ADD COLUMN failure_lease_owner         TEXT   NULL,
    ADD COLUMN failure_lease_expires_at_ms BIGINT NULL,
    ADD CONSTRAINT baton_links_failure_lease_matches_kind CHECK (
        (failure_lease_owner IS NULL AND failure_lease_expires_at_ms IS NULL)
        OR (failure_kind = 'outcome_unknown'
            AND failure_lease_owner IS NOT NULL
            AND failure_lease_expires_at_ms >= 0)
    );
