//! The fake providers' behaviour, model by model and fault by fault.
use std::collections::hash_map::DefaultHasher;

use super::*;
use baton_core::AccessGrant;

const HOUR: Duration = Duration::from_secs(3600);
const WINDOW: Duration = Duration::from_secs(10);

fn at(millis: u64) -> Timestamp {
    Timestamp::from_millis(millis)
}

fn r(text: &str) -> RefreshToken {
    RefreshToken::new(text)
}

fn a(text: &str) -> AccessToken {
    AccessToken::new(text)
}

fn link() -> LinkId {
    LinkId::new("github", "octocat")
}

/// A provider with `link()` enrolled at time zero, prefix "".
fn enrolled(model: ProviderModel) -> FakeProvider {
    let mut provider = FakeProvider::new(model, HOUR);
    provider.enroll(&link(), "", Timestamp::ZERO);
    provider
}

fn issued(access: &str, expires_at: Timestamp, refresh: Option<&str>) -> ExchangeOutcome {
    ExchangeOutcome::Issued(TokenSet {
        access: AccessGrant {
            token: a(access),
            expires_at,
            lifetime: Some(HOUR),
        },
        refresh_token: refresh.map(r),
    })
}

fn rejected(reason: &str) -> ExchangeOutcome {
    ExchangeOutcome::Rejected {
        reason: reason.into(),
    }
}

fn live(provider: &FakeProvider) -> Vec<String> {
    provider
        .live_refresh_tokens(&link())
        .iter()
        .map(|t| t.expose_secret().to_string())
        .collect()
}

fn hash_of(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

fn last_result(provider: &FakeProvider) -> &PresentationResult {
    &provider.presentations().last().unwrap().result
}

#[test]
fn enrolment_issues_the_first_pair_with_the_prefix() {
    let mut provider = FakeProvider::new(ProviderModel::SingleUse, HOUR);
    let set = provider.enroll(&link(), "u0.", at(500));
    assert_eq!(set.access.token.expose_secret(), "u0.A0");
    assert_eq!(set.access.expires_at, at(500 + 3_600_000));
    assert_eq!(set.refresh_token.unwrap().expose_secret(), "u0.R0");
    assert!(provider.is_refresh_live(&r("u0.R0")));
    assert!(provider.is_access_live(&a("u0.A0"), at(500)));
    assert_eq!(provider.rotations(&link()), 0);
    assert_eq!(provider.unsafe_reuses(&link()), 0);
    assert!(!provider.family_revoked(&link()));
    assert!(provider.presentations().is_empty());
    assert_eq!(provider.model(), ProviderModel::SingleUse);
}

#[test]
#[should_panic(expected = "already enrolled")]
fn enrolling_a_link_twice_panics() {
    let mut provider = enrolled(ProviderModel::SingleUse);
    provider.enroll(&link(), "other.", Timestamp::ZERO);
}

#[test]
#[should_panic(expected = "already used by another link")]
fn sharing_a_prefix_between_links_panics() {
    let mut provider = enrolled(ProviderModel::SingleUse);
    provider.enroll(&LinkId::new("github", "hubot"), "", Timestamp::ZERO);
}

#[test]
fn single_use_rejects_a_second_presentation_and_keeps_the_new_token() {
    let mut p = enrolled(ProviderModel::SingleUse);
    assert_eq!(
        p.exchange(at(1_000), &r("R0"), None),
        issued("A1", at(1_000 + 3_600_000), Some("R1"))
    );
    assert!(!p.is_refresh_live(&r("R0")));
    assert!(p.is_refresh_live(&r("R1")));
    // Refreshing killed the access token issued with R0, long before it
    // would have expired.
    assert!(!p.is_access_live(&a("A0"), at(1_000)));
    assert!(p.is_access_live(&a("A1"), at(1_000)));
    assert_eq!(p.rotations(&link()), 1);

    assert_eq!(
        p.exchange(at(2_000), &r("R0"), None),
        rejected("bad_refresh_token")
    );
    assert_eq!(
        last_result(&p),
        &PresentationResult::Rejected {
            reason: "bad_refresh_token".into()
        }
    );
    assert!(!p.family_revoked(&link()));
    assert_eq!(live(&p), ["R1"]);
    assert!(p.is_access_live(&a("A1"), at(2_000)));
    assert_eq!(p.unsafe_reuses(&link()), 1);
    assert_eq!(p.rotations(&link()), 1);

    // The survivor rotates on, and kills A1 in turn.
    assert_eq!(
        p.exchange(at(3_000), &r("R1"), None),
        issued("A2", at(3_000 + 3_600_000), Some("R2"))
    );
    assert!(!p.is_access_live(&a("A1"), at(3_000)));
    assert_eq!(live(&p), ["R2"]);
    assert_eq!(p.unsafe_reuses(&link()), 1);
}

#[test]
fn reuse_detection_revokes_the_family_on_a_second_presentation() {
    let mut p = enrolled(ProviderModel::ReuseDetection);
    assert_eq!(
        p.exchange(at(1_000), &r("R0"), None),
        issued("A1", at(1_000 + 3_600_000), Some("R1"))
    );
    // Only single-use providers kill the previous access token.
    assert!(p.is_access_live(&a("A0"), at(1_000)));
    assert_eq!(
        p.exchange(at(2_000), &r("R0"), None),
        rejected("invalid_grant")
    );
    assert_eq!(
        last_result(&p),
        &PresentationResult::RejectedAndRevoked {
            reason: "invalid_grant".into()
        }
    );
    assert!(p.family_revoked(&link()));
    assert!(!p.is_refresh_live(&r("R1")));
    assert!(live(&p).is_empty());
    assert!(!p.is_access_live(&a("A0"), at(2_000)));
    assert!(!p.is_access_live(&a("A1"), at(2_000)));
    assert_eq!(p.unsafe_reuses(&link()), 1);

    // The winner's token is dead too; presenting it is no reuse, since
    // it was never consumed.
    assert_eq!(
        p.exchange(at(3_000), &r("R1"), None),
        rejected("invalid_grant")
    );
    assert_eq!(
        last_result(&p),
        &PresentationResult::Rejected {
            reason: "invalid_grant".into()
        }
    );
    assert_eq!(p.unsafe_reuses(&link()), 1);
    // Presenting the consumed one again is another breach.
    assert_eq!(
        p.exchange(at(4_000), &r("R0"), None),
        rejected("invalid_grant")
    );
    assert_eq!(p.unsafe_reuses(&link()), 2);
    assert_eq!(p.rotations(&link()), 1);
}

#[test]
fn grace_idempotent_replays_the_same_pair_inside_the_window() {
    let mut p = enrolled(ProviderModel::GraceIdempotent { window: WINDOW });
    let first = issued("A1", at(1_000 + 3_600_000), Some("R1"));
    assert_eq!(p.exchange(at(1_000), &r("R0"), None), first);
    // The last millisecond of the window: the very same pair, expiry
    // included, and nothing new minted.
    assert_eq!(p.exchange(at(10_999), &r("R0"), None), first);
    assert!(matches!(last_result(&p), PresentationResult::Replayed(_)));
    assert_eq!(p.rotations(&link()), 1);
    assert_eq!(p.unsafe_reuses(&link()), 0);
    assert_eq!(live(&p), ["R1"]);
    assert!(!p.is_refresh_live(&r("R0")));

    // The window is over at first use + window.
    assert_eq!(
        p.exchange(at(11_000), &r("R0"), None),
        rejected("invalid_grant")
    );
    assert!(p.family_revoked(&link()));
    assert!(live(&p).is_empty());
    assert!(!p.is_access_live(&a("A1"), at(11_000)));
    assert_eq!(p.unsafe_reuses(&link()), 1);
}

#[test]
fn grace_idempotent_window_starts_at_each_tokens_own_first_use() {
    let mut p = enrolled(ProviderModel::GraceIdempotent { window: WINDOW });
    p.exchange(at(0), &r("R0"), None);
    p.exchange(at(8_000), &r("R1"), None);
    // R1's window runs to 18 000 although R0's closed at 10 000.
    assert_eq!(
        p.exchange(at(17_000), &r("R1"), None),
        issued("A2", at(8_000 + 3_600_000), Some("R2"))
    );
    assert_eq!(p.unsafe_reuses(&link()), 0);
    assert_eq!(
        p.exchange(at(17_000), &r("R0"), None),
        rejected("invalid_grant")
    );
    assert_eq!(p.unsafe_reuses(&link()), 1);
    assert!(p.family_revoked(&link()));
}

#[test]
fn grace_fork_issues_a_different_pair_each_time_and_keeps_them_all() {
    let mut p = enrolled(ProviderModel::GraceFork { window: WINDOW });
    assert_eq!(
        p.exchange(at(1_000), &r("R0"), None),
        issued("A1", at(1_000 + 3_600_000), Some("R1"))
    );
    assert_eq!(
        p.exchange(at(5_000), &r("R0"), None),
        issued("A2", at(5_000 + 3_600_000), Some("R2"))
    );
    assert!(matches!(
        last_result(&p),
        PresentationResult::HonouredAgain(_)
    ));
    assert_eq!(
        p.exchange(at(10_999), &r("R0"), None),
        issued("A3", at(10_999 + 3_600_000), Some("R3"))
    );
    assert_eq!(live(&p), ["R3", "R2", "R1"]);
    assert!(p.is_access_live(&a("A0"), at(10_999)));
    assert!(p.is_access_live(&a("A1"), at(10_999)));
    assert_eq!(p.rotations(&link()), 3);
    assert_eq!(p.unsafe_reuses(&link()), 0);

    assert_eq!(
        p.exchange(at(11_000), &r("R0"), None),
        rejected("invalid_grant")
    );
    assert!(p.family_revoked(&link()));
    assert!(live(&p).is_empty());
    assert!(!p.is_access_live(&a("A3"), at(11_000)));
    assert_eq!(p.unsafe_reuses(&link()), 1);
}

#[test]
fn grace_previous_valid_accepts_the_used_token_inside_the_window() {
    let mut p = enrolled(ProviderModel::GracePreviousValid { window: WINDOW });
    p.exchange(at(1_000), &r("R0"), None);
    // Accepted, but not live: it works only as a reuse.
    assert!(!p.is_refresh_live(&r("R0")));
    assert_eq!(
        p.exchange(at(2_000), &r("R0"), None),
        issued("A2", at(2_000 + 3_600_000), Some("R2"))
    );
    assert_eq!(live(&p), ["R2", "R1"]);
    assert_eq!(p.unsafe_reuses(&link()), 0);

    assert_eq!(
        p.exchange(at(11_000), &r("R0"), None),
        rejected("invalid_grant")
    );
    assert_eq!(
        last_result(&p),
        &PresentationResult::RejectedAndRevoked {
            reason: "invalid_grant".into()
        }
    );
    assert!(live(&p).is_empty());
    assert!(!p.is_access_live(&a("A2"), at(11_000)));
    assert_eq!(p.unsafe_reuses(&link()), 1);
}

#[test]
fn counted_reuse_honours_max_reuse_extra_presentations_then_detaches() {
    let mut p = enrolled(ProviderModel::CountedReuse { max_reuse: 2 });
    assert_eq!(
        p.exchange(at(1_000), &r("R0"), None),
        issued("A1", at(1_000 + 3_600_000), Some("R1"))
    );
    // No window: an hour later still counts as a reuse, not a breach.
    assert_eq!(
        p.exchange(at(3_601_000), &r("R0"), None),
        issued("A2", at(7_201_000), Some("R2"))
    );
    assert_eq!(
        p.exchange(at(3_602_000), &r("R0"), None),
        issued("A3", at(7_202_000), Some("R3"))
    );
    assert_eq!(p.unsafe_reuses(&link()), 0);
    assert_eq!(live(&p), ["R3", "R2", "R1"]);
    // Each token has its own count.
    assert_eq!(
        p.exchange(at(3_603_000), &r("R1"), None),
        issued("A4", at(7_203_000), Some("R4"))
    );

    assert_eq!(
        p.exchange(at(3_604_000), &r("R0"), None),
        rejected("invalid_grant")
    );
    assert!(p.family_revoked(&link()));
    assert!(live(&p).is_empty());
    assert_eq!(p.unsafe_reuses(&link()), 1);
    assert_eq!(p.rotations(&link()), 4);
}

#[test]
fn counted_reuse_with_no_reuse_allowed_is_reuse_detection() {
    let mut p = enrolled(ProviderModel::CountedReuse { max_reuse: 0 });
    p.exchange(at(1_000), &r("R0"), None);
    assert_eq!(
        p.exchange(at(1_001), &r("R0"), None),
        rejected("invalid_grant")
    );
    assert!(p.family_revoked(&link()));
    assert_eq!(p.unsafe_reuses(&link()), 1);
}

#[test]
fn rotating_without_revocation_keeps_every_token_working() {
    let mut p = enrolled(ProviderModel::RotatingNoRevocation);
    assert_eq!(
        p.exchange(at(1_000), &r("R0"), None),
        issued("A1", at(3_601_000), Some("R1"))
    );
    assert_eq!(
        p.exchange(at(2_000), &r("R0"), None),
        issued("A2", at(3_602_000), Some("R2"))
    );
    assert_eq!(
        p.exchange(at(3_000), &r("R1"), None),
        issued("A3", at(3_603_000), Some("R3"))
    );
    assert!(matches!(last_result(&p), PresentationResult::Issued(_)));
    assert_eq!(live(&p), ["R3", "R2", "R1", "R0"]);
    assert!(p.is_access_live(&a("A0"), at(3_000)));
    assert!(!p.family_revoked(&link()));
    assert_eq!(p.unsafe_reuses(&link()), 0);
    assert_eq!(p.rotations(&link()), 3);
}

#[test]
fn non_rotating_keeps_the_refresh_token_and_issues_new_access_tokens() {
    let mut p = enrolled(ProviderModel::NonRotating);
    assert_eq!(
        p.exchange(at(1_000), &r("R0"), None),
        issued("A1", at(3_601_000), None)
    );
    assert_eq!(
        p.exchange(at(2_000), &r("R0"), None),
        issued("A2", at(3_602_000), None)
    );
    assert_eq!(live(&p), ["R0"]);
    assert!(p.is_access_live(&a("A0"), at(2_000)));
    assert!(p.is_access_live(&a("A2"), at(2_000)));
    assert_eq!(p.link_of(&r("R1")), None);
    assert_eq!(p.link_of_access(&a("A2")), Some(&link()));
    assert_eq!(
        p.exchange(at(3_000), &r("R1"), None),
        rejected("invalid_grant")
    );
    assert_eq!(p.unsafe_reuses(&link()), 0);
    assert_eq!(p.rotations(&link()), 2);
}

#[test]
fn access_tokens_expire_at_their_expiry() {
    let p = enrolled(ProviderModel::NonRotating);
    assert!(p.is_access_live(&a("A0"), at(3_599_999)));
    assert!(!p.is_access_live(&a("A0"), at(3_600_000)));
    assert!(!p.is_access_live(&a("A1"), at(0)));
    assert!(!p.is_access_live(&a("nonsense"), at(0)));
}

#[test]
fn rate_limited_and_transient_presentations_consume_nothing() {
    let mut p = enrolled(ProviderModel::SingleUse);
    let untouched = p.clone();
    let retry_after = Some(Duration::from_secs(5));
    assert_eq!(
        p.exchange(
            at(1_000),
            &r("R0"),
            Some(ProviderFault::RateLimited { retry_after })
        ),
        ExchangeOutcome::RateLimited { retry_after }
    );
    assert_eq!(
        p.exchange(at(2_000), &r("R0"), Some(ProviderFault::Transient)),
        ExchangeOutcome::Transient {
            reason: NOT_SENT.into()
        }
    );
    assert_eq!(last_result(&p), &PresentationResult::NotProcessed);
    assert_eq!(
        p.exchange(
            at(2_500),
            &r("R0"),
            Some(ProviderFault::GatewayWithoutForwarding)
        ),
        ExchangeOutcome::ServerError {
            status: 503,
            reason: GATEWAY_REPLY.into()
        }
    );
    assert_eq!(last_result(&p), &PresentationResult::NotProcessed);
    assert_eq!(p, untouched);
    assert!(p.is_refresh_live(&r("R0")));
    assert!(p.is_access_live(&a("A0"), at(2_000)));
    assert_eq!(p.rotations(&link()), 0);
    assert_eq!(p.presentations().len(), 3);
    // The token still works afterwards.
    assert_eq!(
        p.exchange(at(3_000), &r("R0"), None),
        issued("A1", at(3_603_000), Some("R1"))
    );
}

#[test]
fn a_lost_reply_rotates_and_a_retry_is_an_unsafe_reuse() {
    let mut p = enrolled(ProviderModel::SingleUse);
    assert_eq!(
        p.exchange(at(1_000), &r("R0"), Some(ProviderFault::LostReply)),
        ExchangeOutcome::OutcomeUnknown
    );
    assert_eq!(
        last_result(&p),
        &PresentationResult::Issued(TokenSet {
            access: AccessGrant {
                token: a("A1"),
                expires_at: at(3_601_000),
                lifetime: Some(HOUR),
            },
            refresh_token: Some(r("R1")),
        })
    );
    assert_eq!(live(&p), ["R1"]);
    assert!(!p.is_access_live(&a("A0"), at(1_000)));
    assert_eq!(p.rotations(&link()), 1);
    assert_eq!(
        p.exchange(at(2_000), &r("R0"), None),
        rejected("bad_refresh_token")
    );
    assert_eq!(p.unsafe_reuses(&link()), 1);
}

#[test]
fn a_gateway_after_forwarding_hides_the_rotation_and_excuses_no_retry() {
    let mut p = enrolled(ProviderModel::ReuseDetection);
    let after = p.exchange(
        at(1_000),
        &r("R0"),
        Some(ProviderFault::GatewayAfterForwarding { status: 502 }),
    );
    let mut untouched = enrolled(ProviderModel::ReuseDetection);
    let without = untouched.exchange(
        at(1_000),
        &r("R0"),
        Some(ProviderFault::GatewayWithoutForwarding),
    );
    // The same kind of reply, whether or not the provider saw the request.
    assert_eq!(
        after,
        ExchangeOutcome::ServerError {
            status: 502,
            reason: GATEWAY_REPLY.into()
        }
    );
    assert!(matches!(without, ExchangeOutcome::ServerError { .. }));
    assert!(matches!(last_result(&p), PresentationResult::Issued(_)));
    assert_eq!(live(&p), ["R1"]);
    assert_eq!(p.rotations(&link()), 1);
    assert_eq!(live(&untouched), ["R0"]);

    // Presenting the token again revokes the family, and it is a breach of
    // `no_reuse`: the 5xx hid the consumption from the client only.
    assert_eq!(
        p.exchange(at(2_000), &r("R0"), None),
        rejected("invalid_grant")
    );
    assert!(p.family_revoked(&link()));
    assert_eq!(p.unsafe_reuses(&link()), 1);
    assert!(p.presentations().last().unwrap().unsafe_reuse);
}

#[test]
fn a_consumed_token_sent_into_a_rate_limit_still_counts_but_revokes_nothing() {
    let mut p = enrolled(ProviderModel::ReuseDetection);
    p.exchange(at(1_000), &r("R0"), None);
    assert_eq!(
        p.exchange(
            at(2_000),
            &r("R0"),
            Some(ProviderFault::RateLimited { retry_after: None })
        ),
        ExchangeOutcome::RateLimited { retry_after: None }
    );
    assert_eq!(p.unsafe_reuses(&link()), 1);
    assert!(p.presentations().last().unwrap().unsafe_reuse);
    assert!(!p.family_revoked(&link()));
    assert_eq!(live(&p), ["R1"]);
}

#[test]
fn grace_honours_do_not_count_as_unsafe_even_when_rate_limited() {
    let mut p = enrolled(ProviderModel::GraceFork { window: WINDOW });
    p.exchange(at(1_000), &r("R0"), None);
    p.exchange(at(2_000), &r("R0"), Some(ProviderFault::Transient));
    p.exchange(at(3_000), &r("R0"), None);
    assert_eq!(p.unsafe_reuses(&link()), 0);
    assert_eq!(p.rotations(&link()), 2);
}

#[test]
fn unknown_tokens_are_rejected_and_touch_no_family() {
    let mut p = enrolled(ProviderModel::ReuseDetection);
    let before = p.clone();
    for text in ["R1", "R01", "R", "x", "u1.R0", "A0", "R-1", "R99999999999"] {
        assert_eq!(
            p.exchange(at(1_000), &r(text), None),
            rejected("invalid_grant"),
            "{text}"
        );
        let presentation = p.presentations().last().unwrap();
        assert_eq!(presentation.link, None, "{text}");
        assert!(!presentation.unsafe_reuse, "{text}");
        assert_eq!(p.link_of(&r(text)), None, "{text}");
    }
    assert_eq!(p, before);
    assert_eq!(p.presentations().len(), 8);
    assert_eq!(
        p.exchange(at(1_000), &r("R7"), Some(ProviderFault::Transient)),
        ExchangeOutcome::Transient {
            reason: NOT_SENT.into()
        }
    );
    assert_eq!(
        p.exchange(at(1_000), &r("R7"), Some(ProviderFault::LostReply)),
        ExchangeOutcome::OutcomeUnknown
    );

    // GitHub speaks its own dialect for every refused token.
    let mut github = enrolled(ProviderModel::SingleUse);
    assert_eq!(
        github.exchange(at(1_000), &r("R5"), None),
        rejected("bad_refresh_token")
    );
}

#[test]
fn links_are_isolated() {
    let alice = LinkId::new("github", "alice");
    let bob = LinkId::new("github", "bob");
    let mut p = FakeProvider::new(ProviderModel::ReuseDetection, HOUR);
    let a0 = p.enroll(&alice, "u0.", Timestamp::ZERO);
    let b0 = p.enroll(&bob, "u1.", Timestamp::ZERO);
    assert_eq!(a0.refresh_token.unwrap().expose_secret(), "u0.R0");
    assert_eq!(b0.refresh_token.unwrap().expose_secret(), "u1.R0");
    assert_eq!(p.link_of(&r("u0.R0")), Some(&alice));
    assert_eq!(p.link_of(&r("u1.R0")), Some(&bob));
    assert_eq!(p.link_of_access(&a("u1.A0")), Some(&bob));
    assert_eq!(p.link_of(&r("R0")), None);

    assert_eq!(
        p.exchange(at(1_000), &r("u0.R0"), None),
        issued("u0.A1", at(3_601_000), Some("u0.R1"))
    );
    assert_eq!(p.link_of(&r("u0.R1")), Some(&alice));
    assert_eq!(p.link_of(&r("u1.R1")), None);
    assert_eq!(
        p.presentations().last().unwrap().link.as_ref(),
        Some(&alice)
    );
    // Bob's counter is his own.
    assert_eq!(
        p.exchange(at(1_000), &r("u1.R0"), None),
        issued("u1.A1", at(3_601_000), Some("u1.R1"))
    );
    // Alice's reuse revokes Alice's family only.
    p.exchange(at(2_000), &r("u0.R0"), None);
    assert!(p.family_revoked(&alice));
    assert!(!p.family_revoked(&bob));
    assert_eq!(p.unsafe_reuses(&alice), 1);
    assert_eq!(p.unsafe_reuses(&bob), 0);
    assert!(p.live_refresh_tokens(&alice).is_empty());
    assert_eq!(p.live_refresh_tokens(&bob), [r("u1.R1")]);
    assert!(p.is_access_live(&a("u1.A1"), at(2_000)));
    assert!(!p.is_access_live(&a("u0.A1"), at(2_000)));
    assert_eq!(p.rotations(&alice), 1);
    assert_eq!(p.rotations(&bob), 1);
    let stranger = LinkId::new("google", "alice");
    assert_eq!(p.rotations(&stranger), 0);
    assert!(!p.family_revoked(&stranger));
    assert!(p.live_refresh_tokens(&stranger).is_empty());
}

#[test]
fn the_journal_records_every_presentation() {
    let mut p = enrolled(ProviderModel::SingleUse);
    p.exchange(at(1_000), &r("R0"), Some(ProviderFault::LostReply));
    p.exchange(at(2_000), &r("R0"), None);
    let journal = p.presentations();
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[0].at, at(1_000));
    assert_eq!(journal[0].link, Some(link()));
    assert_eq!(journal[0].token, r("R0"));
    assert_eq!(journal[0].fault, Some(ProviderFault::LostReply));
    assert_eq!(journal[0].reply, ExchangeOutcome::OutcomeUnknown);
    assert!(!journal[0].unsafe_reuse);
    assert_eq!(journal[1].fault, None);
    assert_eq!(journal[1].reply, rejected("bad_refresh_token"));
    assert!(journal[1].unsafe_reuse);
}

#[test]
fn equal_states_with_different_journals_are_equal_and_hash_equal() {
    let mut quiet = enrolled(ProviderModel::ReuseDetection);
    let mut noisy = quiet.clone();
    noisy.exchange(
        at(1_000),
        &r("R0"),
        Some(ProviderFault::RateLimited { retry_after: None }),
    );
    noisy.exchange(at(1_000), &r("R9"), None);
    assert_eq!(noisy.presentations().len(), 2);
    assert!(quiet.presentations().is_empty());
    assert_eq!(noisy, quiet);
    assert_eq!(hash_of(&noisy), hash_of(&quiet));

    // The same rotation reached by different histories.
    quiet.exchange(at(2_000), &r("R0"), None);
    noisy.exchange(at(2_000), &r("R0"), Some(ProviderFault::LostReply));
    assert_eq!(noisy, quiet);
    assert_eq!(hash_of(&noisy), hash_of(&quiet));
}

#[test]
fn states_that_behave_differently_are_different() {
    let base = enrolled(ProviderModel::ReuseDetection);
    let mut rotated = base.clone();
    rotated.exchange(at(1_000), &r("R0"), None);
    assert_ne!(rotated, base);

    // A gateway's 5xx changes nothing the provider did.
    let mut behind_gateway = base.clone();
    behind_gateway.exchange(
        at(1_000),
        &r("R0"),
        Some(ProviderFault::GatewayAfterForwarding { status: 504 }),
    );
    assert_eq!(behind_gateway, rotated);
    assert_eq!(hash_of(&behind_gateway), hash_of(&rotated));

    // An unsafe reuse that changed nothing else still counts.
    let mut counted = rotated.clone();
    counted.exchange(
        at(2_000),
        &r("R0"),
        Some(ProviderFault::RateLimited { retry_after: None }),
    );
    assert_ne!(counted, rotated);

    // Grace windows remember when they opened.
    let window = ProviderModel::GraceFork { window: WINDOW };
    let mut opened = enrolled(window);
    let mut same = enrolled(window);
    opened.exchange(at(1_000), &r("R0"), None);
    same.exchange(at(1_000), &r("R0"), None);
    assert_eq!(opened, same);
    let mut later = enrolled(window);
    later.exchange(at(1_001), &r("R0"), None);
    assert_ne!(opened, later);

    // Once revoked, when the dead access tokens would have expired no
    // longer matters.
    let mut revoked_early = base.clone();
    revoked_early.exchange(at(1_000), &r("R0"), None);
    revoked_early.exchange(at(3_000), &r("R0"), None);
    let mut revoked_late = base.clone();
    revoked_late.exchange(at(2_000), &r("R0"), None);
    revoked_late.exchange(at(3_000), &r("R0"), None);
    assert_eq!(revoked_early, revoked_late);
    assert_eq!(hash_of(&revoked_early), hash_of(&revoked_late));

    // Models are part of the state.
    assert_ne!(enrolled(ProviderModel::SingleUse), base);
}

#[test]
fn token_texts_split_on_the_last_marker() {
    assert_eq!(split("R0", 'R'), Some(("", 0)));
    assert_eq!(split("uR.R12", 'R'), Some(("uR.", 12)));
    assert_eq!(split("R01", 'R'), None);
    assert_eq!(split("R", 'R'), None);
    assert_eq!(split("R+1", 'R'), None);
    assert_eq!(split("A3", 'R'), None);
    assert_eq!(split("R4294967296", 'R'), None);
}

#[test]
fn model_facts() {
    assert_eq!(
        ProviderModel::SingleUse.rejection_code(),
        "bad_refresh_token"
    );
    assert_eq!(ProviderModel::NonRotating.rejection_code(), "invalid_grant");
    assert_eq!(
        ProviderModel::GracePreviousValid { window: WINDOW }.grace_window(),
        Some(WINDOW)
    );
    assert_eq!(
        ProviderModel::CountedReuse { max_reuse: 3 }.grace_window(),
        None
    );
}
