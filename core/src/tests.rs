//! Step-by-step tests of the machine: each drives one branch of the
//! algorithm by hand and asserts the exact effects emitted.

use std::time::Duration;

use crate::*;

const NOW: Timestamp = Timestamp::from_millis(100_000);
const LEASE: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_secs(1);

fn link() -> LinkId {
    LinkId::new("github", "octocat")
}

fn config() -> ConfigBuilder {
    Config::builder(OwnerId::new("a"))
        .expiry_margin(Duration::from_secs(10))
        .lease_duration(LEASE)
        .exchange_timeout(TIMEOUT)
        .lease_poll_interval(POLL)
}

fn r(token: &str) -> RefreshToken {
    RefreshToken::new(token)
}

/// A token expiring at `expires_at`, with the lifetime the machine measures
/// for it when asked for at `NOW` (as most scripts do).
fn grant(token: &str, expires_at: Timestamp) -> AccessGrant {
    AccessGrant {
        token: AccessToken::new(token),
        expires_at,
        lifetime: Some(expires_at.saturating_since(NOW)),
    }
}

fn live(token: &str) -> AccessGrant {
    grant(token, NOW + Duration::from_secs(3600))
}

fn expired(token: &str) -> AccessGrant {
    grant(token, NOW - Duration::from_secs(1))
}

fn row(access: AccessGrant, refresh: &str) -> StoredLink {
    StoredLink {
        access: Some(access),
        refresh_token: Some(r(refresh)),
        failure: None,
        lease: None,
    }
}

fn lease(owner: &str, presenting: &str, expires_at: Timestamp) -> Lease {
    Lease {
        owner: OwnerId::new(owner),
        presenting: r(presenting),
        expires_at,
    }
}

fn our_lease(presenting: &str, taken_at: Timestamp) -> Lease {
    lease("a", presenting, taken_at + LEASE)
}

fn issued(access: &str, refresh: &str) -> TokenSet {
    TokenSet {
        access: live(access),
        refresh_token: Some(r(refresh)),
    }
}

/// A machine and a clock; every call returns the effects it produced.
struct Script {
    machine: Machine,
    now: Timestamp,
}

impl Script {
    fn new(config: ConfigBuilder) -> Self {
        Script {
            machine: Machine::new(config.build().unwrap()),
            now: NOW,
        }
    }

    fn feed(&mut self, input: Input) -> Vec<Effect> {
        self.machine.handle_input(self.now, input).unwrap();
        // Every branch below also keeps the link table's indexes right.
        self.machine.links.assert_consistent();
        std::iter::from_fn(|| self.machine.poll_output()).collect()
    }

    fn request(&mut self, caller: u64) -> Vec<Effect> {
        self.feed(Input::TokenRequested {
            caller: CallerId(caller),
            link: link(),
        })
    }

    fn read(&mut self, id: u64, row: Option<StoredLink>) -> Vec<Effect> {
        self.feed(Input::LinkRead {
            id: EffectId(id),
            row,
        })
    }

    fn won(&mut self, id: u64, row: StoredLink) -> Vec<Effect> {
        self.feed(Input::CompareAndSwapWon {
            id: EffectId(id),
            row,
        })
    }

    fn lost(&mut self, id: u64, row: Option<StoredLink>) -> Vec<Effect> {
        self.feed(Input::CompareAndSwapLost {
            id: EffectId(id),
            row,
        })
    }

    fn exchanged(&mut self, id: u64, outcome: ExchangeOutcome) -> Vec<Effect> {
        self.feed(Input::ExchangeFinished {
            id: EffectId(id),
            outcome,
        })
    }

    fn store_failed(&mut self, id: u64) -> Vec<Effect> {
        self.feed(Input::StoreFailed {
            id: EffectId(id),
            failure: StoreFailure {
                reason: "connection reset".into(),
            },
        })
    }

    /// Drives a request up to the exchange of `R0` under our lease. With one
    /// link, one effect is outstanding at a time, so every id is 0.
    fn up_to_exchange(&mut self, stored: StoredLink) -> Lease {
        self.request(1);
        self.read(0, Some(stored.clone()));
        let lease = our_lease("R0", self.now);
        let mut leased = stored;
        leased.lease = Some(lease.clone());
        assert_eq!(self.won(0, leased), vec![exchange(0, "R0", self.now)]);
        lease
    }
}

fn read_effect(id: u64) -> Effect {
    Effect::ReadLink {
        id: EffectId(id),
        link: link(),
    }
}

fn cas(id: u64, intent: WriteIntent, guard: Guard, update: Update) -> Effect {
    Effect::CompareAndSwap {
        id: EffectId(id),
        link: link(),
        write: Write {
            intent,
            guard,
            update,
        },
    }
}

fn take_lease(id: u64, refresh: &str, observed: Option<Lease>, now: Timestamp) -> Effect {
    cas(
        id,
        WriteIntent::TakeLease,
        Guard {
            refresh_token: Expect::Exactly(Some(r(refresh))),
            failure: Expect::Exactly(None),
            lease: Expect::Exactly(observed),
        },
        Update {
            lease: Change::Set(Some(our_lease(refresh, now))),
            ..Update::NOTHING
        },
    )
}

fn exchange(id: u64, refresh: &str, now: Timestamp) -> Effect {
    Effect::Exchange {
        id: EffectId(id),
        link: link(),
        refresh_token: r(refresh),
        deadline: now + TIMEOUT,
    }
}

fn store_tokens(id: u64, presented: &str, tokens: &TokenSet) -> Effect {
    cas(
        id,
        WriteIntent::StoreTokens,
        Guard::refresh_token(Some(r(presented))),
        Update {
            access: Change::Set(Some(tokens.access.clone())),
            refresh_token: Change::Set(tokens.refresh_token.clone().or(Some(r(presented)))),
            failure: Change::Set(None),
            lease: Change::Set(None),
        },
    )
}

/// A settling write: guard on the row as seen, new failure and lease.
fn settle(
    id: u64,
    intent: WriteIntent,
    refresh: &str,
    seen: (Option<CachedFailure>, Option<Lease>),
    new: (Option<CachedFailure>, Option<Lease>),
) -> Effect {
    cas(
        id,
        intent,
        Guard {
            refresh_token: Expect::Exactly(Some(r(refresh))),
            failure: Expect::Exactly(seen.0),
            lease: Expect::Exactly(seen.1),
        },
        Update {
            failure: Change::Set(new.0),
            lease: Change::Set(new.1),
            ..Update::NOTHING
        },
    )
}

fn answer(caller: u64, result: Result<AccessGrant, RefreshError>) -> Effect {
    Effect::Answer {
        caller: CallerId(caller),
        link: link(),
        result,
    }
}

fn reauth(reason: ReauthReason) -> Result<AccessGrant, RefreshError> {
    Err(RefreshError::ReauthenticationRequired(reason))
}

fn rejected(reason: &str) -> CachedFailure {
    CachedFailure::Rejected {
        reason: reason.into(),
    }
}

#[test]
fn the_whole_refresh_emits_read_lease_exchange_persist_answer() {
    let mut s = Script::new(config());
    assert_eq!(s.request(1), vec![read_effect(0)]);
    assert_eq!(
        s.read(0, Some(row(expired("A0"), "R0"))),
        vec![take_lease(0, "R0", None, NOW)]
    );
    let mut leased = row(expired("A0"), "R0");
    leased.lease = Some(our_lease("R0", NOW));
    assert_eq!(s.won(0, leased), vec![exchange(0, "R0", NOW)]);
    let tokens = issued("A1", "R1");
    assert_eq!(
        s.exchanged(0, ExchangeOutcome::Issued(tokens.clone())),
        vec![store_tokens(0, "R0", &tokens)]
    );
    assert_eq!(
        s.won(0, row(live("A1"), "R1")),
        vec![answer(1, Ok(live("A1")))]
    );
    assert!(s.machine.is_idle());
    assert_eq!(s.machine.waiting_callers(), 0);
}

#[test]
fn a_live_held_token_is_answered_without_any_store_read() {
    let mut s = Script::new(config());
    s.request(1);
    s.read(0, Some(row(live("A1"), "R1")));
    assert_eq!(s.request(2), vec![answer(2, Ok(live("A1")))]);
    assert_eq!(s.machine.live_token(&link(), NOW), Some(&live("A1")));
    // Inside the expiry margin the held token no longer counts.
    s.now = live("A1").expires_at - Duration::from_secs(10);
    assert_eq!(s.machine.live_token(&link(), s.now), None);
    assert_eq!(s.request(3), vec![read_effect(0)]);
}

#[test]
fn reads_that_decide_the_answer_without_the_provider() {
    let mut failed = row(expired("A0"), "R0");
    failed.failure = Some(rejected("bad_refresh_token"));
    let mut unknown = row(expired("A0"), "R0");
    unknown.failure = Some(CachedFailure::OutcomeUnknown { lease: None });
    let mut emptied = row(expired("A0"), "R0");
    emptied.refresh_token = None;
    let mut emptied_with_reason = emptied.clone();
    emptied_with_reason.failure = Some(rejected("bad_refresh_token"));
    let mut live_despite_lease = row(live("A1"), "R1");
    live_despite_lease.lease = Some(lease("b", "R1", NOW + LEASE));
    let cases = [
        ("no row", None, reauth(ReauthReason::NotLinked)),
        (
            "live stored token",
            Some(row(live("A1"), "R1")),
            Ok(live("A1")),
        ),
        (
            "live token, lease held elsewhere",
            Some(live_despite_lease),
            Ok(live("A1")),
        ),
        (
            "failure cached for the stored token",
            Some(failed),
            reauth(ReauthReason::Rejected {
                provider_reason: "bad_refresh_token".into(),
            }),
        ),
        (
            "outcome unknown cached",
            Some(unknown),
            reauth(ReauthReason::OutcomeUnknown),
        ),
        (
            "refresh token emptied",
            Some(emptied),
            reauth(ReauthReason::NoRefreshToken),
        ),
        (
            "refresh token emptied with a reason",
            Some(emptied_with_reason),
            reauth(ReauthReason::Rejected {
                provider_reason: "bad_refresh_token".into(),
            }),
        ),
    ];
    for (name, stored, expected) in cases {
        let mut s = Script::new(config());
        s.request(1);
        assert_eq!(s.read(0, stored), vec![answer(1, expected)], "{name}");
        assert!(s.machine.is_idle(), "{name}");
    }
}

#[test]
fn joiners_share_one_flight_and_one_answer() {
    let mut s = Script::new(config());
    s.request(1);
    assert_eq!(s.request(2), vec![], "joins, no second read");
    s.read(0, Some(row(expired("A0"), "R0")));
    assert_eq!(s.request(3), vec![], "joins mid-flight");
    let mut leased = row(expired("A0"), "R0");
    leased.lease = Some(our_lease("R0", NOW));
    s.won(0, leased);
    let tokens = issued("A1", "R1");
    s.exchanged(0, ExchangeOutcome::Issued(tokens));
    assert_eq!(
        s.won(0, row(live("A1"), "R1")),
        vec![
            answer(1, Ok(live("A1"))),
            answer(2, Ok(live("A1"))),
            answer(3, Ok(live("A1"))),
        ]
    );
}

#[test]
fn a_caller_who_goes_away_does_not_cancel_the_refresh() {
    let mut s = Script::new(config());
    s.up_to_exchange(row(expired("A0"), "R0"));
    s.request(2);
    assert_eq!(
        s.feed(Input::CallerGone {
            caller: CallerId(1)
        }),
        vec![]
    );
    // Going away twice, or after the answer, is harmless.
    assert_eq!(
        s.feed(Input::CallerGone {
            caller: CallerId(1)
        }),
        vec![]
    );
    let tokens = issued("A1", "R1");
    assert_eq!(
        s.exchanged(0, ExchangeOutcome::Issued(tokens.clone())),
        vec![store_tokens(0, "R0", &tokens)]
    );
    assert_eq!(
        s.won(0, row(live("A1"), "R1")),
        vec![answer(2, Ok(live("A1")))]
    );

    // Even with nobody left, the new tokens are persisted.
    let mut s = Script::new(config());
    s.up_to_exchange(row(expired("A0"), "R0"));
    s.feed(Input::CallerGone {
        caller: CallerId(1),
    });
    assert_eq!(
        s.exchanged(0, ExchangeOutcome::Issued(tokens.clone())),
        vec![store_tokens(0, "R0", &tokens)]
    );
    assert_eq!(s.won(0, row(live("A1"), "R1")), vec![]);
    assert!(s.machine.is_idle());
}

#[test]
fn a_held_lease_is_waited_out_with_a_timer_then_reread() {
    let mut s = Script::new(config());
    s.request(1);
    let mut held = row(expired("A0"), "R0");
    held.lease = Some(lease("b", "R0", NOW + Duration::from_millis(2500)));
    assert_eq!(s.read(0, Some(held.clone())), vec![]);
    assert_eq!(s.machine.poll_timeout(), Some(NOW + POLL));
    // Early timers do nothing.
    assert_eq!(s.feed(Input::TimerExpired), vec![]);
    s.now = NOW + POLL;
    assert_eq!(s.feed(Input::TimerExpired), vec![read_effect(0)]);
    assert_eq!(s.machine.poll_timeout(), None);
    s.now = NOW + Duration::from_millis(2000);
    assert_eq!(s.read(0, Some(held)), vec![]);
    // The next wake-up is capped at the lease's expiry.
    assert_eq!(
        s.machine.poll_timeout(),
        Some(NOW + Duration::from_millis(2500))
    );
    s.now = NOW + Duration::from_millis(2500);
    assert_eq!(s.feed(Input::TimerExpired), vec![read_effect(0)]);
    // The holder finished: the winner's token is served, nothing presented.
    assert_eq!(
        s.read(0, Some(row(live("A1"), "R1"))),
        vec![answer(1, Ok(live("A1")))]
    );
}

#[test]
fn an_expired_lease_over_the_same_token_is_an_unknown_outcome_not_a_presentation() {
    let mut s = Script::new(config());
    s.request(1);
    let expired_lease = lease("b", "R0", NOW - Duration::from_secs(1));
    let mut stalled = row(expired("A0"), "R0");
    stalled.lease = Some(expired_lease.clone());
    assert_eq!(
        s.read(0, Some(stalled)),
        vec![settle(
            0,
            WriteIntent::CacheFailure,
            "R0",
            (None, Some(expired_lease.clone())),
            (
                Some(CachedFailure::outcome_unknown_under(&expired_lease)),
                None
            ),
        )]
    );
    let mut settled = row(expired("A0"), "R0");
    settled.failure = Some(CachedFailure::outcome_unknown_under(&expired_lease));
    assert_eq!(
        s.won(0, settled),
        vec![answer(1, reauth(ReauthReason::OutcomeUnknown))]
    );
}

#[test]
fn an_expired_lease_is_taken_over_where_a_second_presentation_is_safe() {
    // Grace window 60 s; the lease was taken at NOW - 31 s: presenting now,
    // arriving by NOW + 10 s, is inside the window.
    let mut s = Script::new(
        config()
            .second_presentation(SecondPresentation::SafeWithin(Duration::from_secs(60)))
            .max_request_age(TIMEOUT),
    );
    s.request(1);
    let expired_lease = lease("b", "R0", NOW - Duration::from_secs(1));
    let mut stalled = row(expired("A0"), "R0");
    stalled.lease = Some(expired_lease.clone());
    assert_eq!(
        s.read(0, Some(stalled)),
        vec![take_lease(0, "R0", Some(expired_lease.clone()), NOW)]
    );

    // With a 30 s window the same takeover could land outside it.
    let mut s = Script::new(
        config()
            .second_presentation(SecondPresentation::SafeWithin(Duration::from_secs(30)))
            .max_request_age(TIMEOUT),
    );
    s.request(1);
    let mut stalled = row(expired("A0"), "R0");
    stalled.lease = Some(expired_lease.clone());
    assert!(matches!(
        &s.read(0, Some(stalled))[..],
        [Effect::CompareAndSwap {
            write: Write {
                intent: WriteIntent::CacheFailure,
                ..
            },
            ..
        }]
    ));
}

#[test]
fn a_stale_lease_over_an_older_token_is_taken_over() {
    let mut s = Script::new(config());
    s.request(1);
    let stale = lease("b", "R-old", NOW + LEASE);
    let mut stored = row(expired("A0"), "R0");
    stored.lease = Some(stale.clone());
    assert_eq!(
        s.read(0, Some(stored)),
        vec![take_lease(0, "R0", Some(stale), NOW)]
    );
}

#[test]
fn losing_the_lease_race_re_decides_on_the_returned_row() {
    let mut s = Script::new(config());
    s.request(1);
    s.read(0, Some(row(expired("A0"), "R0")));
    let mut theirs = row(expired("A0"), "R0");
    theirs.lease = Some(lease("b", "R0", NOW + LEASE));
    assert_eq!(s.lost(0, Some(theirs)), vec![]);
    assert_eq!(s.machine.poll_timeout(), Some(NOW + POLL));
}

#[test]
fn a_live_token_found_after_taking_the_lease_releases_it_unused() {
    // A non-rotating winner stored a new access token under the same
    // refresh token between our read and our lease.
    let mut s = Script::new(config());
    s.request(1);
    s.read(0, Some(row(expired("A0"), "R0")));
    let ours = our_lease("R0", NOW);
    let mut leased = row(live("A1"), "R0");
    leased.lease = Some(ours.clone());
    assert_eq!(
        s.won(0, leased),
        vec![settle(
            0,
            WriteIntent::ReleaseLease,
            "R0",
            (None, Some(ours)),
            (None, None),
        )]
    );
    assert_eq!(
        s.won(0, row(live("A1"), "R0")),
        vec![answer(1, Ok(live("A1")))]
    );
}

#[test]
fn a_rejection_adopts_a_winners_token() {
    let mut s = Script::new(config());
    s.up_to_exchange(row(expired("A0"), "R0"));
    let reason = ExchangeOutcome::Rejected {
        reason: "bad_refresh_token".into(),
    };
    assert_eq!(s.exchanged(0, reason), vec![read_effect(0)]);
    assert_eq!(
        s.read(0, Some(row(live("A1"), "R1"))),
        vec![answer(1, Ok(live("A1")))]
    );
}

#[test]
fn a_rejection_with_the_row_unchanged_caches_the_failure_keeping_the_token() {
    let mut s = Script::new(config());
    let ours = s.up_to_exchange(row(expired("A0"), "R0"));
    s.exchanged(
        0,
        ExchangeOutcome::Rejected {
            reason: "bad_refresh_token".into(),
        },
    );
    let mut unchanged = row(expired("A0"), "R0");
    unchanged.lease = Some(ours.clone());
    assert_eq!(
        s.read(0, Some(unchanged)),
        vec![settle(
            0,
            WriteIntent::CacheFailure,
            "R0",
            (None, Some(ours)),
            (Some(rejected("bad_refresh_token")), None),
        )]
    );
    let mut cached = row(expired("A0"), "R0");
    cached.failure = Some(rejected("bad_refresh_token"));
    assert_eq!(
        s.won(0, cached),
        vec![answer(
            1,
            reauth(ReauthReason::Rejected {
                provider_reason: "bad_refresh_token".into()
            })
        )]
    );
}

#[test]
fn a_rejection_never_turns_an_emptied_row_into_success() {
    let mut s = Script::new(config());
    s.up_to_exchange(row(expired("A0"), "R0"));
    s.exchanged(
        0,
        ExchangeOutcome::Rejected {
            reason: "bad_refresh_token".into(),
        },
    );
    let mut emptied = row(expired("A0"), "R0");
    emptied.refresh_token = None;
    assert_eq!(
        s.read(0, Some(emptied)),
        vec![answer(1, reauth(ReauthReason::NoRefreshToken))]
    );
}

#[test]
fn a_lost_failure_write_recomputes_from_the_row_it_lost_to() {
    let mut s = Script::new(config());
    let ours = s.up_to_exchange(row(expired("A0"), "R0"));
    s.exchanged(
        0,
        ExchangeOutcome::Rejected {
            reason: "invalid_grant".into(),
        },
    );
    let mut unchanged = row(expired("A0"), "R0");
    unchanged.lease = Some(ours.clone());
    s.read(0, Some(unchanged));
    // Meanwhile our lease expired and another replica recorded the unknown
    // outcome; our rejection is better knowledge and replaces it.
    let mut unknown = row(expired("A0"), "R0");
    unknown.failure = Some(CachedFailure::outcome_unknown_under(&ours));
    assert_eq!(
        s.lost(0, Some(unknown)),
        vec![settle(
            0,
            WriteIntent::CacheFailure,
            "R0",
            (Some(CachedFailure::outcome_unknown_under(&ours)), None),
            (Some(rejected("invalid_grant")), None),
        )]
    );
    // And if instead a winner had stored a new token, we adopt it.
    let mut s = Script::new(config());
    let ours = s.up_to_exchange(row(expired("A0"), "R0"));
    s.exchanged(
        0,
        ExchangeOutcome::Rejected {
            reason: "invalid_grant".into(),
        },
    );
    let mut unchanged = row(expired("A0"), "R0");
    unchanged.lease = Some(ours);
    s.read(0, Some(unchanged));
    assert_eq!(
        s.lost(0, Some(row(live("A1"), "R1"))),
        vec![answer(1, Ok(live("A1")))]
    );
}

#[test]
fn rate_limits_release_the_lease_and_quiet_the_link() {
    let mut s = Script::new(config());
    let ours = s.up_to_exchange(row(expired("A0"), "R0"));
    let retry_after = Duration::from_secs(60);
    assert_eq!(
        s.exchanged(
            0,
            ExchangeOutcome::RateLimited {
                retry_after: Some(retry_after)
            }
        ),
        vec![settle(
            0,
            WriteIntent::ReleaseLease,
            "R0",
            (None, Some(ours)),
            (None, None),
        )]
    );
    assert_eq!(
        s.won(0, row(expired("A0"), "R0")),
        vec![answer(
            1,
            Err(RefreshError::RetryAfter { delay: retry_after })
        )]
    );
    // Callers inside the window are told to wait, without store or provider.
    s.now = NOW + Duration::from_secs(20);
    assert_eq!(
        s.request(2),
        vec![answer(
            2,
            Err(RefreshError::RetryAfter {
                delay: Duration::from_secs(40)
            })
        )]
    );
    s.now = NOW + retry_after;
    assert_eq!(s.request(3), vec![read_effect(0)]);
}

#[test]
fn a_stalled_holders_rate_limit_clears_the_unknown_outcome_cached_about_it() {
    let mut s = Script::new(config());
    let ours = s.up_to_exchange(row(expired("A0"), "R0"));
    s.now = NOW + LEASE + Duration::from_secs(5);
    // Our release is guarded on our lease; it has been replaced.
    assert_eq!(
        s.exchanged(0, ExchangeOutcome::RateLimited { retry_after: None }),
        vec![settle(
            0,
            WriteIntent::ReleaseLease,
            "R0",
            (None, Some(ours.clone())),
            (None, None),
        )]
    );
    let mut unknown = row(expired("A0"), "R0");
    unknown.failure = Some(CachedFailure::outcome_unknown_under(&ours));
    assert_eq!(
        s.lost(0, Some(unknown.clone())),
        vec![settle(
            0,
            WriteIntent::ClearFailure,
            "R0",
            (Some(CachedFailure::outcome_unknown_under(&ours)), None),
            (None, None),
        )]
    );
    assert_eq!(
        s.won(0, row(expired("A0"), "R0")),
        vec![answer(
            1,
            Err(RefreshError::RetryAfter {
                delay: Duration::from_secs(1)
            })
        )]
    );
}

#[test]
fn transient_errors_release_the_lease_and_say_retry_later() {
    let mut s = Script::new(config());
    let ours = s.up_to_exchange(row(expired("A0"), "R0"));
    assert_eq!(
        s.exchanged(
            0,
            ExchangeOutcome::Transient {
                reason: "HTTP 502".into()
            }
        ),
        vec![settle(
            0,
            WriteIntent::ReleaseLease,
            "R0",
            (None, Some(ours)),
            (None, None)
        )]
    );
    assert_eq!(
        s.won(0, row(expired("A0"), "R0")),
        vec![answer(
            1,
            Err(RefreshError::Temporary(
                TemporaryReason::ProviderUnavailable {
                    detail: "HTTP 502".into()
                }
            ))
        )]
    );
}

#[test]
fn an_unknown_outcome_is_cached_never_re_presented_on_a_fatal_provider() {
    let mut s = Script::new(config());
    let ours = s.up_to_exchange(row(expired("A0"), "R0"));
    s.now = NOW + TIMEOUT;
    assert_eq!(
        s.exchanged(0, ExchangeOutcome::OutcomeUnknown),
        vec![settle(
            0,
            WriteIntent::CacheFailure,
            "R0",
            (None, Some(ours.clone())),
            (Some(CachedFailure::outcome_unknown_under(&ours)), None),
        )]
    );
    let mut cached = row(expired("A0"), "R0");
    cached.failure = Some(CachedFailure::outcome_unknown_under(&ours));
    assert_eq!(
        s.won(0, cached),
        vec![answer(1, reauth(ReauthReason::OutcomeUnknown))]
    );
}

#[test]
fn a_server_error_after_sending_is_an_unknown_outcome_unless_configured_to_retry() {
    let server_error = || ExchangeOutcome::ServerError {
        status: 502,
        reason: "bad gateway".into(),
    };
    // The default: the token may have been consumed behind the gateway.
    let mut s = Script::new(config());
    let ours = s.up_to_exchange(row(expired("A0"), "R0"));
    assert_eq!(
        s.exchanged(0, server_error()),
        vec![settle(
            0,
            WriteIntent::CacheFailure,
            "R0",
            (None, Some(ours.clone())),
            (Some(CachedFailure::outcome_unknown_under(&ours)), None),
        )]
    );
    // Chosen explicitly: the token is kept for the next request.
    let mut s = Script::new(config().server_error_after_send(ServerErrorAfterSend::Retry));
    let ours = s.up_to_exchange(row(expired("A0"), "R0"));
    assert_eq!(
        s.exchanged(0, server_error()),
        vec![settle(
            0,
            WriteIntent::ReleaseLease,
            "R0",
            (None, Some(ours)),
            (None, None)
        )]
    );
}

#[test]
fn a_grace_window_without_a_bound_on_late_requests_allows_no_second_presentation() {
    let mut s = Script::new(
        config().second_presentation(SecondPresentation::SafeWithin(Duration::from_secs(60))),
    );
    let ours = s.up_to_exchange(row(expired("A0"), "R0"));
    // The first request may still be on its way and land after the window.
    assert_eq!(
        s.exchanged(
            0,
            ExchangeOutcome::ServerError {
                status: 504,
                reason: "gateway timeout".into()
            }
        ),
        vec![settle(
            0,
            WriteIntent::CacheFailure,
            "R0",
            (None, Some(ours.clone())),
            (Some(CachedFailure::outcome_unknown_under(&ours)), None),
        )]
    );
}

#[test]
fn an_unknown_outcome_costs_nothing_where_tokens_are_never_consumed() {
    let mut s = Script::new(config().second_presentation(SecondPresentation::AlwaysSafe));
    let ours = s.up_to_exchange(row(expired("A0"), "R0"));
    // Presented again at once, then given up as temporary, never cached.
    assert_eq!(
        s.exchanged(0, ExchangeOutcome::OutcomeUnknown),
        vec![exchange(0, "R0", NOW)]
    );
    assert_eq!(
        s.exchanged(0, ExchangeOutcome::OutcomeUnknown),
        vec![settle(
            0,
            WriteIntent::ReleaseLease,
            "R0",
            (None, Some(ours)),
            (None, None)
        )]
    );
    assert!(matches!(
        &s.won(0, row(expired("A0"), "R0"))[..],
        [Effect::Answer {
            result: Err(RefreshError::Temporary(
                TemporaryReason::ProviderUnavailable { .. }
            )),
            ..
        }]
    ));
}

#[test]
fn an_unknown_outcome_is_re_presented_once_inside_a_grace_window() {
    let mut s = Script::new(
        config()
            .second_presentation(SecondPresentation::SafeWithin(Duration::from_secs(60)))
            .max_request_age(TIMEOUT),
    );
    s.up_to_exchange(row(expired("A0"), "R0"));
    s.now = NOW + TIMEOUT;
    assert_eq!(
        s.exchanged(0, ExchangeOutcome::OutcomeUnknown),
        vec![exchange(0, "R0", NOW + TIMEOUT)]
    );
    // A second unknown outcome is not re-presented again.
    s.now = NOW + TIMEOUT + TIMEOUT;
    assert!(matches!(
        &s.exchanged(0, ExchangeOutcome::OutcomeUnknown)[..],
        [Effect::CompareAndSwap {
            write: Write {
                intent: WriteIntent::CacheFailure,
                ..
            },
            ..
        }]
    ));
}

#[test]
fn a_failed_persist_is_retried_on_a_timer_before_anyone_is_answered() {
    let mut s = Script::new(
        config()
            .persist_attempts(2)
            .store_retry_delay(Duration::from_millis(300)),
    );
    s.up_to_exchange(row(expired("A0"), "R0"));
    let tokens = issued("A1", "R1");
    s.exchanged(0, ExchangeOutcome::Issued(tokens.clone()));
    assert_eq!(s.store_failed(0), vec![]);
    assert_eq!(
        s.machine.poll_timeout(),
        Some(NOW + Duration::from_millis(300))
    );
    s.now = NOW + Duration::from_millis(300);
    assert_eq!(
        s.feed(Input::TimerExpired),
        vec![store_tokens(0, "R0", &tokens)]
    );
    // Out of attempts: the callers still get the working token...
    assert_eq!(s.store_failed(0), vec![answer(1, Ok(live("A1")))]);
    // ...and the write, the only copy of R1, is retried until the store
    // answers: at the store's pace while our lease holds others off...
    assert_eq!(
        s.machine.poll_timeout(),
        Some(s.now + Duration::from_millis(300))
    );
    s.now = NOW + LEASE;
    assert_eq!(
        s.feed(Input::TimerExpired),
        vec![store_tokens(0, "R0", &tokens)]
    );
    // ...and once per lease duration after it expired.
    assert_eq!(s.store_failed(0), vec![]);
    assert_eq!(s.machine.poll_timeout(), Some(s.now + LEASE));
    s.now = s.now + LEASE;
    assert_eq!(
        s.feed(Input::TimerExpired),
        vec![store_tokens(0, "R0", &tokens)]
    );
    // A caller who asks meanwhile joins, and is served once it lands.
    assert_eq!(s.request(2), vec![]);
    let mut stored = row(live("A1"), "R1");
    stored.lease = None;
    assert_eq!(s.won(0, stored), vec![answer(2, Ok(live("A1")))]);
    assert!(s.machine.is_idle());
}

#[test]
fn a_stall_that_outlives_new_tokens_is_not_handed_to_callers() {
    let mut s = Script::new(config().persist_attempts(1));
    s.up_to_exchange(row(expired("A0"), "R0"));
    let tokens = issued("A1", "R1");
    s.exchanged(0, ExchangeOutcome::Issued(tokens.clone()));
    // The write's reply comes after the new access token expired.
    s.now = tokens.access.expires_at;
    assert!(matches!(
        &s.store_failed(0)[..],
        [Effect::Answer {
            result: Err(RefreshError::Temporary(
                TemporaryReason::StoreUnavailable { .. }
            )),
            ..
        }]
    ));
    // Stored, but the reply came after a stall: the flight starts over
    // from the row rather than hand out a token past serving.
    let mut s = Script::new(config());
    s.up_to_exchange(row(expired("A0"), "R0"));
    s.exchanged(0, ExchangeOutcome::Issued(tokens.clone()));
    s.now = tokens.access.expires_at;
    assert_eq!(
        s.won(0, row(tokens.access.clone(), "R1")),
        vec![read_effect(0)]
    );
}

// A lost success write adopts the row that beat it: the winner's pair (a
// grace-window presentation, or the OAuth callback's new family), or no row
// at all after an unlink — never our own pair, which nobody will find in the
// store.
#[test]
fn a_persist_that_loses_adopts_the_row_that_won() {
    let mut s = Script::new(config());
    s.up_to_exchange(row(expired("A0"), "R0"));
    let tokens = issued("A1", "R1");
    s.exchanged(0, ExchangeOutcome::Issued(tokens));
    assert_eq!(
        s.lost(0, Some(row(live("A9"), "R9"))),
        vec![answer(1, Ok(live("A9")))]
    );
}

#[test]
fn a_persist_that_loses_to_an_unlink_answers_not_linked() {
    let mut s = Script::new(config());
    s.up_to_exchange(row(expired("A0"), "R0"));
    s.exchanged(0, ExchangeOutcome::Issued(issued("A1", "R1")));
    assert_eq!(
        s.lost(0, None),
        vec![answer(
            1,
            Err(RefreshError::ReauthenticationRequired(
                ReauthReason::NotLinked
            ))
        )]
    );
}

#[test]
fn a_non_rotating_provider_keeps_the_presented_refresh_token() {
    let mut s = Script::new(config().second_presentation(SecondPresentation::AlwaysSafe));
    s.up_to_exchange(row(expired("A0"), "R0"));
    let tokens = TokenSet {
        access: live("A1"),
        refresh_token: None,
    };
    assert_eq!(
        s.exchanged(0, ExchangeOutcome::Issued(tokens.clone())),
        vec![store_tokens(0, "R0", &tokens)]
    );
}

#[test]
fn store_failures_before_the_exchange_are_temporary_and_leave_no_orphan_lease() {
    let mut s = Script::new(config());
    s.request(1);
    assert_eq!(
        s.store_failed(0),
        vec![answer(
            1,
            Err(RefreshError::Temporary(TemporaryReason::StoreUnavailable {
                detail: "connection reset".into()
            }))
        )]
    );
    // A lease write that failed may have landed: the row is read again to
    // find out. If the read fails too, the caller is told at once, and the
    // flight keeps asking on a timer: a lease left in the row would read,
    // once expired, as a presentation of unknown outcome to every replica.
    s.request(2);
    s.read(0, Some(row(expired("A0"), "R0")));
    assert_eq!(s.store_failed(0), vec![read_effect(0)]);
    assert!(matches!(&s.store_failed(0)[..], [Effect::Answer { .. }]));
    let retry_at = NOW + config().build().unwrap().store_retry_delay;
    assert_eq!(s.machine.poll_timeout(), Some(retry_at));
    // A caller who asks meanwhile joins the resolving flight.
    assert_eq!(s.request(3), vec![]);
    s.now = retry_at;
    assert_eq!(s.feed(Input::TimerExpired), vec![read_effect(0)]);
    // It landed: we hold the lease, and exchange under it.
    let ours = our_lease("R0", NOW);
    let mut stored = row(expired("A0"), "R0");
    stored.lease = Some(ours);
    assert_eq!(s.read(0, Some(stored)), vec![exchange(0, "R0", retry_at)]);

    // If the store stays down past the lease's expiry, the flight keeps
    // asking, once per lease duration: another replica may record the
    // lease as an unknown outcome, and only we can clear that record.
    let mut s = Script::new(config());
    s.request(1);
    s.read(0, Some(row(expired("A0"), "R0")));
    assert_eq!(s.store_failed(0), vec![read_effect(0)]);
    assert!(matches!(&s.store_failed(0)[..], [Effect::Answer { .. }]));
    let maybe_ours = our_lease("R0", NOW);
    while s.now < maybe_ours.expires_at {
        s.now = s.machine.poll_timeout().expect("still resolving");
        assert_eq!(s.feed(Input::TimerExpired), vec![read_effect(0)]);
        assert_eq!(s.store_failed(0), vec![]);
    }
    let last = s.now;
    assert_eq!(s.machine.poll_timeout(), Some(last + LEASE));
    s.now = last + LEASE;
    assert_eq!(s.feed(Input::TimerExpired), vec![read_effect(0)]);
    // It had landed, and nobody judged it: ours, but expired, so it is
    // not presented under; a fresh lease is taken, guarded on it.
    let mut stored = row(expired("A0"), "R0");
    stored.lease = Some(maybe_ours.clone());
    assert_eq!(
        s.read(0, Some(stored)),
        vec![take_lease(0, "R0", Some(maybe_ours), s.now)]
    );
}

#[test]
fn a_lease_write_that_failed_but_landed_is_recognised_and_used() {
    let mut s = Script::new(config());
    s.request(1);
    s.read(0, Some(row(expired("A0"), "R0")));
    // The commit's reply was lost: re-read instead of assuming it failed.
    assert_eq!(s.store_failed(0), vec![read_effect(0)]);
    let mut landed = row(expired("A0"), "R0");
    landed.lease = Some(our_lease("R0", NOW));
    // The row holds our lease: we are its holder, and exchange under it.
    assert_eq!(s.read(0, Some(landed)), vec![exchange(0, "R0", NOW)]);

    // Not landed: the store's failure is the answer.
    let mut s = Script::new(config());
    s.request(1);
    s.read(0, Some(row(expired("A0"), "R0")));
    s.store_failed(0);
    assert!(matches!(
        &s.read(0, Some(row(expired("A0"), "R0")))[..],
        [Effect::Answer {
            result: Err(RefreshError::Temporary(
                TemporaryReason::StoreUnavailable { .. }
            )),
            ..
        }]
    ));
}

#[test]
fn validation_comes_after_persistence_and_never_touches_the_row() {
    let mut s = Script::new(config().validate_new_tokens(true));
    s.up_to_exchange(row(expired("A0"), "R0"));
    let tokens = issued("A1", "R1");
    s.exchanged(0, ExchangeOutcome::Issued(tokens));
    assert_eq!(
        s.won(0, row(live("A1"), "R1")),
        vec![Effect::Validate {
            id: EffectId(0),
            link: link(),
            access_token: AccessToken::new("A1"),
        }]
    );
    assert_eq!(
        s.feed(Input::ValidationFinished {
            id: EffectId(0),
            outcome: ValidationOutcome::Invalid {
                reason: "401".into()
            },
        }),
        vec![answer(
            1,
            Err(RefreshError::Temporary(TemporaryReason::ValidationFailed {
                detail: "401".into()
            }))
        )]
    );
}

#[test]
fn nonsense_inputs_are_refused_and_change_nothing() {
    let mut s = Script::new(config());
    s.request(1);
    let before = s.machine.clone();
    let unknown = Input::LinkRead {
        id: EffectId(99),
        row: None,
    };
    assert_eq!(
        s.machine.handle_input(NOW, unknown),
        Err(InputError::UnknownEffect(EffectId(99)))
    );
    let mismatched = Input::ExchangeFinished {
        id: EffectId(0),
        outcome: ExchangeOutcome::OutcomeUnknown,
    };
    assert_eq!(
        s.machine.handle_input(NOW, mismatched),
        Err(InputError::MismatchedResult {
            id: EffectId(0),
            expected: "a read result"
        })
    );
    assert_eq!(
        s.machine.handle_input(
            NOW,
            Input::TokenRequested {
                caller: CallerId(1),
                link: link()
            }
        ),
        Err(InputError::CallerAlreadyWaiting(CallerId(1)))
    );
    assert_eq!(s.machine, before);
}

#[test]
fn links_are_independent() {
    let mut s = Script::new(config());
    let other = LinkId::new("github", "hubot");
    s.request(1);
    let effects = s.feed(Input::TokenRequested {
        caller: CallerId(2),
        link: other.clone(),
    });
    assert_eq!(
        effects,
        vec![Effect::ReadLink {
            id: EffectId(1),
            link: other.clone()
        }]
    );
    let answered = s.feed(Input::LinkRead {
        id: EffectId(1),
        row: Some(row(live("B1"), "S1")),
    });
    assert_eq!(
        answered,
        vec![Effect::Answer {
            caller: CallerId(2),
            link: other,
            result: Ok(live("B1"))
        }]
    );
    assert_eq!(
        s.read(0, Some(row(live("A1"), "R1"))),
        vec![answer(1, Ok(live("A1")))]
    );
}

#[test]
fn errors_say_what_to_do_and_never_show_tokens() {
    let texts = [
        RefreshError::ReauthenticationRequired(ReauthReason::Rejected {
            provider_reason: "bad_refresh_token".into(),
        })
        .to_string(),
        RefreshError::RetryAfter {
            delay: Duration::from_secs(3),
        }
        .to_string(),
        RefreshError::Temporary(TemporaryReason::Contention).to_string(),
    ];
    assert!(texts[0].starts_with("re-authentication required"));
    assert!(texts[1].contains("retry after 3s"));
    assert!(texts[2].starts_with("temporary failure"));
    assert!(texts.iter().all(|t| !t.contains('\n')), "one line each");
    let effect = answer(1, Ok(live("gho_secret_text")));
    assert!(!format!("{effect:?}").contains("secret_text"));
}

mod enrolment;
mod errors;
mod short_lived;
mod unfounded;
