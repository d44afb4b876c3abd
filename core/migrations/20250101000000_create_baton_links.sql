-- baton: one row per link (one user at one provider), shared by every
-- replica. The table is created in the first schema of the connection's
-- `search_path`; no schema name is hard-coded here.
--
-- Tokens are stored as text: protect the table as you would any
-- credential store (column encryption, if any, belongs to the application).
CREATE TABLE baton_links (
    provider              TEXT        NOT NULL,
    user_id               TEXT        NOT NULL,
    -- The current access token and when the provider stops accepting it
    -- (milliseconds since the Unix epoch).
    access_token          TEXT        NULL,
    access_expires_at_ms  BIGINT      NULL,
    -- The current refresh token.
    refresh_token         TEXT        NULL,
    -- A failure cached for the refresh token above: 'rejected' (with the
    -- provider's reason) or 'outcome_unknown' (with no reason).
    failure_kind          TEXT        NULL,
    failure_reason        TEXT        NULL,
    -- The cross-replica refresh lease: its owner, the refresh token it was
    -- taken to present, and when other replicas stop waiting for it.
    lease_owner           TEXT        NULL,
    lease_presenting      TEXT        NULL,
    lease_expires_at_ms   BIGINT      NULL,
    -- Bumped by every write; for operators, never read by baton.
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),

    CONSTRAINT baton_links_pkey PRIMARY KEY (provider, user_id),
    CONSTRAINT baton_links_access_complete CHECK (
        (access_token IS NULL) = (access_expires_at_ms IS NULL)
    ),
    CONSTRAINT baton_links_failure_kind_known CHECK (
        failure_kind IN ('rejected', 'outcome_unknown')
    ),
    CONSTRAINT baton_links_failure_reason_matches_kind CHECK (
        (failure_kind IS NULL AND failure_reason IS NULL)
        OR (failure_kind = 'rejected' AND failure_reason IS NOT NULL)
        OR (failure_kind = 'outcome_unknown' AND failure_reason IS NULL)
    ),
    CONSTRAINT baton_links_lease_complete CHECK (
        (lease_owner IS NULL AND lease_presenting IS NULL AND lease_expires_at_ms IS NULL)
        OR (lease_owner IS NOT NULL AND lease_presenting IS NOT NULL AND lease_expires_at_ms IS NOT NULL)
    ),
    CONSTRAINT baton_links_expiries_not_negative CHECK (
        access_expires_at_ms >= 0 AND lease_expires_at_ms >= 0
    )
);
