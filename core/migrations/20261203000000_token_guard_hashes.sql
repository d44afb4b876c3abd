-- baton: tokens at rest (PgStore with TokensAtRest::Encrypted). The token
-- columns then hold ciphertext, which a random nonce makes differ on every
-- write, so the compare-and-swap compares these keyed hashes of the tokens
-- instead (HMAC-SHA256 under a key of the ring; NULL in plaintext stores).
ALTER TABLE baton_links
    ADD COLUMN refresh_token_hash    BYTEA NULL,
    ADD COLUMN lease_presenting_hash BYTEA NULL;
