//! Records of an unknown outcome that their lease's holder knows are
//! unfounded: another replica judged a lease of ours expired, mid-flight,
//! when we never presented under it (its take failed in the store but
//! landed). Each record names the lease it judged, so only that record is
//! cleared — never one about someone else's lease over the same token.

use super::*;

/// Our take of a lease over `R0` fails in the store; returns our lease.
fn take_fails_but_lands(s: &mut Script) -> Lease {
    s.request(1);
    s.read(0, Some(row(expired("A0"), "R0")));
    assert_eq!(s.store_failed(0), vec![read_effect(0)]);
    our_lease("R0", NOW)
}

fn recorded_under(lease: &Lease) -> StoredLink {
    let mut judged = row(expired("A0"), "R0");
    judged.failure = Some(CachedFailure::outcome_unknown_under(lease));
    judged
}

/// The write that removes `judged`'s record, and nothing else.
fn clearing(judged: &StoredLink) -> Effect {
    settle(
        0,
        WriteIntent::ClearFailure,
        "R0",
        (judged.failure.clone(), None),
        (None, None),
    )
}

#[test]
fn a_lease_take_that_landed_and_expired_before_we_knew_is_cleared_and_the_refresh_goes_on() {
    let mut s = Script::new(config());
    let ours = take_fails_but_lands(&mut s);
    // Our read back is delayed past the lease's expiry: another replica
    // has recorded our lease as a presentation of unknown outcome.
    s.now = NOW + LEASE + Duration::from_secs(1);
    let judged = recorded_under(&ours);
    assert_eq!(s.read(0, Some(judged.clone())), vec![clearing(&judged)]);
    // Cleared: the flight goes on, and takes a lease of its own.
    assert_eq!(
        s.won(0, row(expired("A0"), "R0")),
        vec![take_lease(0, "R0", None, s.now)]
    );
}

#[test]
fn a_record_about_someone_elses_lease_over_the_same_token_is_kept() {
    let mut s = Script::new(config());
    let ours = take_fails_but_lands(&mut s);
    s.now = NOW + LEASE + Duration::from_secs(1);
    // The same token, but another holder's lease: its presentation may
    // have consumed the token. The store's failure is the answer.
    let theirs = lease("b", "R0", ours.expires_at);
    assert!(matches!(
        &s.read(0, Some(recorded_under(&theirs)))[..],
        [Effect::Answer {
            result: Err(RefreshError::Temporary(
                TemporaryReason::StoreUnavailable { .. }
            )),
            ..
        }]
    ));
    // Nor does a later flight clear it: it answers from the record.
    s.request(2);
    assert_eq!(
        s.read(0, Some(recorded_under(&theirs))),
        vec![answer(2, reauth(ReauthReason::OutcomeUnknown))]
    );
    // A record written before records named their lease is kept too.
    let mut unnamed = row(expired("A0"), "R0");
    unnamed.failure = Some(CachedFailure::OutcomeUnknown { lease: None });
    s.request(3);
    assert_eq!(
        s.read(0, Some(unnamed)),
        vec![answer(3, reauth(ReauthReason::OutcomeUnknown))]
    );
}

#[test]
fn a_resolution_that_outlives_the_lease_clears_the_record_once_the_store_answers() {
    let mut s = Script::new(config());
    let ours = take_fails_but_lands(&mut s);
    // The read back fails; the flight keeps asking past the lease's
    // expiry. A caller who asks meanwhile joins it, and the read that
    // finally succeeds finds the record another replica made of our lease.
    assert!(matches!(&s.store_failed(0)[..], [Effect::Answer { .. }]));
    s.now = NOW + LEASE + Duration::from_secs(1);
    assert_eq!(s.feed(Input::TimerExpired), vec![read_effect(0)]);
    let judged = recorded_under(&ours);
    s.request(2);
    assert_eq!(s.read(0, Some(judged.clone())), vec![clearing(&judged)]);
    // The clearing write loses to a re-link (the record stops every
    // replica, not the OAuth callback): the flight goes on from that row.
    assert_eq!(
        s.lost(0, Some(row(live("A9"), "R9"))),
        vec![answer(2, Ok(live("A9")))]
    );
}

#[test]
fn leases_remembered_over_a_token_the_row_no_longer_holds_are_forgotten() {
    let mut s = Script::new(config());
    take_fails_but_lands(&mut s);
    // It did not land, and someone has refreshed since: no record can ever
    // name our lease now (a record describes the token beside it).
    assert!(matches!(
        &s.read(0, Some(row(live("A1"), "R1")))[..],
        [Effect::Answer { .. }]
    ));
    assert_eq!(s.machine.remembered_links(), 0);
    // Over the same token, it is kept: a record may still name it.
    let mut s = Script::new(config());
    take_fails_but_lands(&mut s);
    s.read(0, Some(row(expired("A0"), "R0")));
    assert_eq!(s.machine.remembered_links(), 1);
}
