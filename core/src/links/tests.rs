//! The link table's indexes and what the machine forgets (issue 17). Every
//! input here is followed by a check that each index equals what a scan of
//! the link states gives.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use super::SWEEP_PER_INPUT;
use crate::*;

const NOW: Timestamp = Timestamp::from_millis(1_000_000);
const MARGIN: Duration = Duration::from_secs(10);
const HOUR: Duration = Duration::from_secs(3600);

fn config() -> ConfigBuilder {
    Config::builder(OwnerId::new("a"))
        .expiry_margin(MARGIN)
        // Longer than any lease below: a waiting flight wakes when the
        // lease it waits on runs out.
        .lease_poll_interval(Duration::from_secs(600))
}

fn link(i: usize) -> LinkId {
    LinkId::new("github", format!("user-{i}"))
}

fn grant(token: &str, expires_at: Timestamp) -> AccessGrant {
    AccessGrant {
        token: AccessToken::new(token),
        expires_at,
        lifetime: None,
    }
}

/// A row answering at once with a token good until `expires_at`.
fn live_row(expires_at: Timestamp) -> StoredLink {
    StoredLink {
        access: Some(grant("A", expires_at)),
        refresh_token: Some(RefreshToken::new("R")),
        failure: None,
        lease: None,
    }
}

/// A row whose refresh another replica holds a lease on until `until`.
fn leased_row(until: Timestamp) -> StoredLink {
    StoredLink {
        access: None,
        refresh_token: Some(RefreshToken::new("R")),
        failure: None,
        lease: Some(Lease {
            owner: OwnerId::new("b"),
            presenting: RefreshToken::new("R"),
            expires_at: until,
        }),
    }
}

/// Feeds one input and checks the indexes against a scan.
fn feed(m: &mut Machine, now: Timestamp, input: Input) -> Vec<Effect> {
    m.handle_input(now, input).unwrap();
    m.links.assert_consistent();
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn request(m: &mut Machine, now: Timestamp, caller: u64, link: LinkId) -> Vec<Effect> {
    let caller = CallerId(caller);
    feed(m, now, Input::TokenRequested { caller, link })
}

fn read(m: &mut Machine, now: Timestamp, id: EffectId, row: Option<StoredLink>) -> Vec<Effect> {
    feed(m, now, Input::LinkRead { id, row })
}

/// Requests `link` and answers its read with `row`.
fn fetch(m: &mut Machine, now: Timestamp, caller: u64, link: LinkId, row: StoredLink) {
    let effects = request(m, now, caller, link);
    let [Effect::ReadLink { id, .. }] = effects[..] else {
        panic!("expected one read, got {effects:?}")
    };
    let answered = read(m, now, id, Some(row));
    assert!(matches!(
        answered[..],
        [Effect::Answer { result: Ok(_), .. }]
    ));
}

fn tick(m: &mut Machine, now: Timestamp) -> Vec<Effect> {
    feed(m, now, Input::TimerExpired)
}

fn hash(m: &Machine) -> u64 {
    let mut h = DefaultHasher::new();
    m.hash(&mut h);
    h.finish()
}

#[test]
fn the_timeout_is_the_earliest_wake_across_many_links_as_flights_change() {
    let mut m = Machine::new(config().build().unwrap());
    // The model: when each waiting link wakes.
    let mut wakes: BTreeMap<usize, Timestamp> = BTreeMap::new();
    let mut reads: BTreeMap<EffectId, usize> = BTreeMap::new();
    for i in 0..200 {
        for effect in request(&mut m, NOW, i as u64, link(i)) {
            let Effect::ReadLink { id, .. } = effect else {
                panic!("{effect:?}")
            };
            reads.insert(id, i);
        }
    }
    assert_eq!(m.poll_timeout(), None);
    for (n, (id, i)) in std::mem::take(&mut reads).into_iter().enumerate() {
        let until = NOW + Duration::from_millis(1 + (n as u64 * 7919) % 5000);
        assert_eq!(read(&mut m, NOW, id, Some(leased_row(until))), vec![]);
        wakes.insert(i, until);
        assert_eq!(m.poll_timeout(), wakes.values().min().copied());
    }
    // Wake them in turn; every other one finds the lease still there and
    // waits again, the rest find a token and finish.
    let mut round = 0u64;
    while let Some(now) = m.poll_timeout() {
        let due: Vec<usize> = wakes
            .iter()
            .filter(|(_, w)| **w <= now)
            .map(|(i, _)| *i)
            .collect();
        assert!(!due.is_empty());
        for effect in tick(&mut m, now) {
            let Effect::ReadLink { id, link: l } = effect else {
                panic!("{effect:?}")
            };
            let i = due.iter().copied().find(|i| link(*i) == l).unwrap();
            wakes.remove(&i);
            reads.insert(id, i);
        }
        assert!(due.iter().all(|i| !wakes.contains_key(i)));
        for (id, i) in std::mem::take(&mut reads) {
            round += 1;
            if round % 2 == 0 {
                let until = now + Duration::from_millis(1 + round % 300);
                read(&mut m, now, id, Some(leased_row(until)));
                wakes.insert(i, until);
            } else {
                read(&mut m, now, id, Some(live_row(now + HOUR)));
            }
            assert_eq!(m.poll_timeout(), wakes.values().min().copied());
        }
    }
    assert!(wakes.is_empty());
    assert!(m.is_idle());
    assert_eq!(m.remembered_links(), 200);
}

#[test]
fn a_held_token_is_forgotten_at_the_first_input_once_it_is_no_longer_live() {
    let fresh = Machine::new(config().build().unwrap());
    let mut m = fresh.clone();
    let expires = NOW + HOUR;
    fetch(&mut m, NOW, 1, link(0), live_row(expires));
    assert_eq!(m.remembered_links(), 1);
    let last_live = expires - MARGIN - Duration::from_millis(1);
    tick(&mut m, last_live);
    assert!(m.live_token(&link(0), last_live).is_some());
    assert_eq!(m.remembered_links(), 1);
    // Any input, for any link, sweeps it.
    tick(&mut m, expires - MARGIN);
    assert_eq!(m.remembered_links(), 0);
    assert_eq!(m, fresh);
    assert_eq!(hash(&m), hash(&fresh));
}

#[test]
fn quiet_periods_end_and_are_forgotten_but_flights_and_reusable_leases_stay() {
    let mut m = Machine::new(config().build().unwrap());
    // A flight: its read is outstanding however late the next input comes.
    request(&mut m, NOW, 1, link(0));
    // A reusable lease: the store failed while we took it.
    let effects = request(&mut m, NOW, 2, link(1));
    let [Effect::ReadLink { id, .. }] = effects[..] else {
        panic!()
    };
    let mut row = live_row(NOW);
    row.access = None;
    let effects = read(&mut m, NOW, id, Some(row));
    let [Effect::CompareAndSwap { id, .. }] = effects[..] else {
        panic!("{effects:?}")
    };
    let failure = StoreFailure {
        reason: "reset".into(),
    };
    // The lease write may have landed: it is re-read, and that fails too.
    let effects = feed(
        &mut m,
        NOW,
        Input::StoreFailed {
            id,
            failure: failure.clone(),
        },
    );
    let [Effect::ReadLink { id, .. }] = effects[..] else {
        panic!("{effects:?}")
    };
    let answered = feed(&mut m, NOW, Input::StoreFailed { id, failure });
    assert!(matches!(
        answered[..],
        [Effect::Answer { result: Err(_), .. }]
    ));
    assert_eq!(m.remembered_links(), 2);
    let much_later = NOW + HOUR * 24 * 365;
    tick(&mut m, much_later);
    assert_eq!(m.remembered_links(), 2);

    // A quiet period: the provider rate-limited the exchange for 5 s.
    let mut q = Machine::new(config().build().unwrap());
    let effects = request(&mut q, NOW, 1, link(2));
    let [Effect::ReadLink { id, .. }] = effects[..] else {
        panic!()
    };
    let mut row = live_row(NOW);
    row.access = None;
    let effects = read(&mut q, NOW, id, Some(row.clone()));
    let [Effect::CompareAndSwap { id, ref write, .. }] = effects[..] else {
        panic!()
    };
    let Change::Set(lease) = write.update.lease.clone() else {
        panic!()
    };
    row.lease = lease;
    let effects = feed(&mut q, NOW, Input::CompareAndSwapWon { id, row });
    let [Effect::Exchange { id, .. }] = effects[..] else {
        panic!()
    };
    let limited = ExchangeOutcome::RateLimited {
        retry_after: Some(Duration::from_secs(5)),
    };
    let effects = feed(
        &mut q,
        NOW,
        Input::ExchangeFinished {
            id,
            outcome: limited,
        },
    );
    let [Effect::CompareAndSwap { id, .. }] = effects[..] else {
        panic!()
    };
    let settled = feed(
        &mut q,
        NOW,
        Input::CompareAndSwapWon {
            id,
            row: live_row(NOW),
        },
    );
    assert!(matches!(
        settled[..],
        [Effect::Answer { result: Err(_), .. }]
    ));
    assert_eq!(q.remembered_links(), 1);
    tick(&mut q, NOW + Duration::from_millis(4999));
    assert_eq!(q.remembered_links(), 1);
    tick(&mut q, NOW + Duration::from_secs(5));
    assert_eq!(q.remembered_links(), 0);
}

#[test]
fn the_bound_forgets_the_least_recently_requested_idle_links() {
    let mut m = Machine::new(config().max_held_links(3).build().unwrap());
    let until = NOW + HOUR;
    for i in 0..3 {
        fetch(&mut m, NOW, i as u64, link(i), live_row(until));
    }
    // Link 0 is asked for again (answered from memory): now the most recent.
    let effects = request(&mut m, NOW, 9, link(0));
    assert!(matches!(
        effects[..],
        [Effect::Answer { result: Ok(_), .. }]
    ));
    fetch(&mut m, NOW, 3, link(3), live_row(until));
    fetch(&mut m, NOW, 4, link(4), live_row(until));
    let held: Vec<bool> = (0..5)
        .map(|i| m.live_token(&link(i), NOW).is_some())
        .collect();
    assert_eq!(held, [true, false, false, true, true]);
    // A link with a flight is not idle: neither counted nor evicted.
    request(&mut m, NOW, 5, link(5));
    assert_eq!(m.remembered_links(), 4);
    // An evicted link's next request reads the store again.
    let effects = request(&mut m, NOW, 6, link(1));
    assert!(matches!(effects[..], [Effect::ReadLink { .. }]));
}

#[test]
fn a_token_served_from_a_drivers_copy_counts_as_used_for_the_bound() {
    let mut m = Machine::new(config().max_held_links(3).build().unwrap());
    let until = NOW + HOUR;
    for i in 0..3 {
        fetch(&mut m, NOW, i as u64, link(i), live_row(until));
    }
    // Link 0 served by a driver's hot path (no input): now the most recent.
    let before = hash(&m);
    m.served_cached(&link(0));
    m.links.assert_consistent();
    assert_ne!(hash(&m), before, "the eviction order changed");
    // Links holding no token are left alone.
    m.served_cached(&link(7));
    m.links.assert_consistent();
    fetch(&mut m, NOW, 3, link(3), live_row(until));
    let held: Vec<bool> = (0..4)
        .map(|i| m.live_token(&link(i), NOW).is_some())
        .collect();
    assert_eq!(held, [true, false, true, true]);
}

#[test]
fn each_input_sweeps_a_bounded_number_of_links() {
    let mut m = Machine::new(config().build().unwrap());
    let n = 2 * SWEEP_PER_INPUT + 10;
    for i in 0..n {
        fetch(&mut m, NOW, i as u64, link(i), live_row(NOW + HOUR));
    }
    let later = NOW + HOUR;
    tick(&mut m, later);
    assert_eq!(m.remembered_links(), n - SWEEP_PER_INPUT);
    tick(&mut m, later);
    tick(&mut m, later);
    assert_eq!(m.remembered_links(), 0);
}

#[test]
fn effect_ids_are_the_smallest_free_and_machines_forget_their_history() {
    let fresh = Machine::new(config().build().unwrap());
    let ids = |effects: Vec<Effect>| -> Vec<u64> {
        effects
            .iter()
            .filter_map(|e| e.id())
            .map(|id| id.0)
            .collect()
    };
    // Path A: three reads; the middle one finds no row.
    let mut a = fresh.clone();
    assert_eq!(ids(request(&mut a, NOW, 1, link(0))), [0]);
    assert_eq!(ids(request(&mut a, NOW, 2, link(1))), [1]);
    assert_eq!(ids(request(&mut a, NOW, 3, link(2))), [2]);
    read(&mut a, NOW, EffectId(1), None);
    assert_eq!(ids(request(&mut a, NOW, 4, link(3))), [1]);
    read(&mut a, NOW, EffectId(2), None);
    read(&mut a, NOW, EffectId(1), None);
    assert_eq!(ids(request(&mut a, NOW, 5, link(4))), [1]);
    read(&mut a, NOW, EffectId(1), None);
    // Path B: the one read still outstanding in A, and nothing else.
    let mut b = fresh.clone();
    request(&mut b, NOW, 1, link(0));
    assert_eq!(a, b);
    assert_eq!(hash(&a), hash(&b));
    assert_eq!(ids(request(&mut a, NOW, 6, link(5))), [1]);
    assert_eq!(ids(request(&mut b, NOW, 6, link(5))), [1]);
}

#[test]
fn a_machine_that_outgrew_its_small_maps_equals_one_that_never_did() {
    use crate::small_map::GROW;
    let fresh = Machine::new(config().build().unwrap());
    let n = 3 * GROW;
    // Path A: `n` reads at once (the link table, callers and awaited
    // effects become B-trees), then all but the first find no row.
    let mut a = fresh.clone();
    for i in 0..n {
        assert_eq!(request(&mut a, NOW, i as u64, link(i)).len(), 1);
    }
    assert_eq!(a.remembered_links(), n);
    for i in (1..n).rev() {
        read(&mut a, NOW, EffectId(i as u64), None);
    }
    // Path B: the one read still outstanding in A, and nothing else.
    let mut b = fresh.clone();
    request(&mut b, NOW, 0, link(0));
    assert_eq!(a.remembered_links(), 1);
    assert_eq!(a, b);
    assert_eq!(hash(&a), hash(&b));
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    // And they go on alike.
    for m in [&mut a, &mut b] {
        assert_eq!(request(m, NOW, 1, link(1)).len(), 1);
        read(m, NOW, EffectId(0), Some(live_row(NOW + HOUR)));
    }
    assert_eq!(a, b);
    assert_eq!(hash(&a), hash(&b));
}
