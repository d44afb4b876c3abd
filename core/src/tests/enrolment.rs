//! [`Machine::link_replaced`]: an enrolment replaced the row while this
//! process held a token of the older family, or refreshed it.

use super::*;

fn replaced(s: &mut Script) -> Vec<Effect> {
    s.machine.link_replaced(s.now, &link());
    s.machine.links.assert_consistent();
    std::iter::from_fn(|| s.machine.poll_output()).collect()
}

#[test]
fn a_held_token_is_forgotten_and_the_next_request_reads_the_new_pair() {
    let mut s = Script::new(config());
    assert_eq!(s.request(1), vec![read_effect(0)]);
    assert_eq!(
        s.read(0, Some(row(live("A0"), "R0"))),
        vec![answer(1, Ok(live("A0")))]
    );
    assert_eq!(s.request(2), vec![answer(2, Ok(live("A0")))]);

    assert_eq!(replaced(&mut s), vec![]);
    assert_eq!(s.machine.live_token(&link(), NOW), None);
    assert_eq!(s.request(3), vec![read_effect(0)]);
    assert_eq!(
        s.read(0, Some(row(live("B0"), "S0"))),
        vec![answer(3, Ok(live("B0")))]
    );
}

#[test]
fn a_replacement_of_an_unknown_link_changes_nothing() {
    let mut s = Script::new(config());
    assert_eq!(replaced(&mut s), vec![]);
    assert_eq!(s.machine.remembered_links(), 0);
    assert!(s.machine.is_idle());
}

#[test]
fn an_exchange_in_flight_loses_its_write_and_its_waiters_get_the_new_pair() {
    let mut s = Script::new(config());
    s.up_to_exchange(row(expired("A0"), "R0"));
    // The callback stores the new family's pair, then tells the machine.
    let enrolled = StoredLink::enrolled(issued("B0", "S0"));
    assert_eq!(replaced(&mut s), vec![]);
    // A caller asking now joins the flight.
    assert_eq!(s.request(2), vec![]);
    // The old family rotates anyway; the write guarded on R0 loses.
    let old = issued("A1", "R1");
    assert_eq!(
        s.exchanged(0, ExchangeOutcome::Issued(old.clone())),
        vec![store_tokens(0, "R0", &old)]
    );
    // The flight adopts the row it lost to, and then, since the row was
    // replaced under it, serves its waiters from a fresh read.
    assert_eq!(s.lost(0, Some(enrolled.clone())), vec![read_effect(0)]);
    assert_eq!(
        s.read(0, Some(enrolled)),
        vec![answer(1, Ok(live("B0"))), answer(2, Ok(live("B0")))]
    );
    assert_eq!(s.machine.live_token(&link(), NOW), Some(&live("B0")));
    assert!(s.machine.is_idle());
}

#[test]
fn a_flight_that_read_the_old_row_does_not_hand_out_its_token() {
    let mut s = Script::new(config());
    assert_eq!(s.request(1), vec![read_effect(0)]);
    // The read went out before the enrolment and comes back after it.
    assert_eq!(replaced(&mut s), vec![]);
    assert_eq!(s.read(0, Some(row(live("A0"), "R0"))), vec![read_effect(0)]);
    assert_eq!(
        s.read(0, Some(StoredLink::enrolled(issued("B0", "S0")))),
        vec![answer(1, Ok(live("B0")))]
    );
}

#[test]
fn a_flight_whose_callers_all_left_just_ends() {
    let mut s = Script::new(config());
    assert_eq!(s.request(1), vec![read_effect(0)]);
    assert_eq!(replaced(&mut s), vec![]);
    assert_eq!(
        s.feed(Input::CallerGone {
            caller: CallerId(1)
        }),
        vec![]
    );
    assert_eq!(s.read(0, Some(row(live("A0"), "R0"))), vec![]);
    assert_eq!(s.machine.live_token(&link(), NOW), None);
    assert!(s.machine.is_idle());
}
