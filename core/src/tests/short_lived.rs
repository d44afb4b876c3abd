//! Access tokens that live no longer than the expiry margin, or not much
//! longer: served for the first half of their life
//! (`SHORT_LIVED_SERVED_FRACTION`), not never or for a moment.

use super::*;

/// A token issued at `at` that lives `secs` seconds, and says so.
fn issued_for(access: &str, refresh: &str, at: Timestamp, secs: u64) -> TokenSet {
    let lifetime = Duration::from_secs(secs);
    TokenSet {
        access: grant(access, at + lifetime).with_lifetime(lifetime),
        refresh_token: Some(r(refresh)),
    }
}

#[test]
fn a_token_shorter_than_the_margin_is_served_for_half_its_life() {
    // The margin is 10 s; the provider issues tokens that live 8 s.
    let mut s = Script::new(config());
    s.up_to_exchange(row(expired("A0"), "R0"));
    let short = issued_for("A1", "R1", NOW, 8);
    assert_eq!(
        s.exchanged(0, ExchangeOutcome::Issued(short.clone())),
        vec![store_tokens(0, "R0", &short)]
    );
    assert_eq!(
        s.won(0, StoredLink::enrolled(short.clone())),
        vec![answer(1, Ok(short.access.clone()))]
    );
    // Served from memory for the first 4 s of its 8.
    s.now = NOW + Duration::from_millis(3_999);
    assert_eq!(s.request(2), vec![answer(2, Ok(short.access.clone()))]);
    s.now = NOW + Duration::from_secs(4);
    assert_eq!(s.machine.live_token(&link(), s.now), None);
    assert_eq!(s.request(3), vec![read_effect(0)]);
    // A token of the same provider another replica stored 1 s ago, 7 s
    // left: served from the row, no refresh.
    let other = issued_for("A2", "R2", s.now - Duration::from_secs(1), 8);
    assert_eq!(
        s.read(0, Some(StoredLink::enrolled(other.clone()))),
        vec![answer(3, Ok(other.access))]
    );
}

/// What decides is the lifetime stored with the token, not what this
/// machine has seen: a replica that never refreshed serves another's
/// short-lived token until the same instant as the one that stored it
/// (short_lived_tokens_across_replicas.toml).
#[test]
fn a_stored_lifetime_is_served_by_a_replica_that_never_refreshed() {
    let stored_at = NOW - Duration::from_secs(1);
    let other = issued_for("A1", "R1", stored_at, 8);
    let mut s = Script::new(config());
    assert_eq!(s.request(1), vec![read_effect(0)]);
    assert_eq!(
        s.read(0, Some(StoredLink::enrolled(other.clone()))),
        vec![answer(1, Ok(other.access.clone()))]
    );
    // Until 4 s of its 8 are left, as on the replica that stored it.
    s.now = stored_at + Duration::from_millis(3_999);
    assert_eq!(s.request(2), vec![answer(2, Ok(other.access.clone()))]);
    s.now = stored_at + Duration::from_secs(4);
    assert_eq!(s.request(3), vec![read_effect(0)]);

    // Without a stored lifetime (a row from before baton stored it), the
    // configured margin applies: the same token is never served.
    let unstated = TokenSet {
        access: AccessGrant::new(AccessToken::new("A1"), stored_at + Duration::from_secs(8)),
        ..other
    };
    let mut s = Script::new(config());
    s.request(1);
    assert_eq!(
        s.read(0, Some(StoredLink::enrolled(unstated))),
        vec![take_lease(0, "R1", None, s.now)]
    );
}

#[test]
fn long_lived_tokens_keep_the_configured_margin() {
    let mut s = Script::new(config());
    s.up_to_exchange(row(expired("A0"), "R0"));
    let long = issued_for("A1", "R1", NOW, 60);
    s.exchanged(0, ExchangeOutcome::Issued(long.clone()));
    s.won(0, StoredLink::enrolled(long.clone()));
    s.now = NOW + Duration::from_millis(49_999);
    assert_eq!(s.request(2), vec![answer(2, Ok(long.access))]);
    s.now = NOW + Duration::from_secs(50);
    assert_eq!(s.request(3), vec![read_effect(0)]);
}

/// A token that lives a little longer than the margin — as every token the
/// machine measures does when the provider's lifetime equals the margin,
/// since the measure starts when the request was sent — is served for half
/// its life too, not for the moment it lives beyond the margin.
#[test]
fn a_token_a_little_longer_than_the_margin_is_served_for_half_its_life() {
    // The margin is 10 s; the token's measured lifetime 10.2 s.
    let lifetime = Duration::from_millis(10_200);
    let issued = TokenSet {
        access: grant("A1", NOW + lifetime).with_lifetime(lifetime),
        refresh_token: Some(r("R1")),
    };
    let mut s = Script::new(config());
    assert_eq!(s.request(1), vec![read_effect(0)]);
    assert_eq!(
        s.read(0, Some(StoredLink::enrolled(issued.clone()))),
        vec![answer(1, Ok(issued.access.clone()))]
    );
    // Served until 5.1 s are left, not until 10 s are (0.2 s in).
    s.now = NOW + Duration::from_millis(5_099);
    assert_eq!(s.request(2), vec![answer(2, Ok(issued.access.clone()))]);
    s.now = NOW + Duration::from_millis(5_100);
    assert_eq!(s.machine.live_token(&link(), s.now), None);
    // Twice the margin or longer: the margin decides, as it always did.
    let long = Duration::from_secs(20);
    let config = config().build().unwrap();
    assert_eq!(config.margin_for(Some(long)), config.expiry_margin());
    assert_eq!(config.margin_for(Some(long * 3)), config.expiry_margin());
    assert_eq!(config.margin_for(None), config.expiry_margin());
    assert_eq!(
        config.margin_for(Some(Duration::from_secs(19))),
        Duration::from_millis(9_500)
    );
}
