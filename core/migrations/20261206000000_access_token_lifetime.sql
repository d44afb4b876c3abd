-- baton: the access token's lifetime is stored with it, so that every
-- replica serves a short-lived token (one that lives no longer than the
-- expiry margin) until the same instant. Rows written before this
-- migration keep it NULL: the configured margin applies to them until the
-- next refresh stores a lifetime.
ALTER TABLE baton_links
    ADD COLUMN access_lifetime_ms BIGINT NULL,
    ADD CONSTRAINT baton_links_access_lifetime_with_token CHECK (
        access_lifetime_ms IS NULL
        OR (access_lifetime_ms >= 0 AND access_token IS NOT NULL)
    );
