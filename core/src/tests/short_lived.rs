//! Access tokens that live no longer than the expiry margin: served for
//! the first half of their life (`SHORT_LIVED_SERVED_FRACTION`), not never.

use super::*;

/// A token issued at `at` that lives `secs` seconds.
fn issued_for(access: &str, refresh: &str, at: Timestamp, secs: u64) -> TokenSet {
    TokenSet {
        access: grant(access, at + Duration::from_secs(secs)),
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
