//! A gateway in front of the IdP answers 504 after forwarding a rotation:
//! the IdP consumed the refresh token and the new pair went nowhere. End to
//! end on the machine's PostgreSQL, over HTTP to a reuse-detection
//! `FakeIdp`: with the default `ServerErrorAfterSend::Unknown` the consumed
//! token is never presented again (a second presentation would revoke the
//! user's family), callers are told to re-authenticate, and after the user
//! re-links the account refreshes go on as before.
//!
//! Time: the replicas read a clock of their own, the wall clock shifted by
//! an offset this file advances between rounds (past the access tokens'
//! hour), so that each round finds the last round's token expired without
//! waiting for it. The IdP keeps the wall clock, on which every token it
//! issued stays live for the hour.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton_core::http::HttpTokenEndpoint;
use baton_core::postgres::{PgStore, TokensAtRest};
use baton_core::refresher::{wall_clock, Refresher};
use baton_core::{
    AccessGrant, AccessToken, CachedFailure, Config, LinkId, Machine, OwnerId, ReauthReason,
    RefreshError, StoredLink, Timestamp,
};
use baton_fakes::idp::{FakeIdp, IdpFault};
use baton_fakes::ProviderModel;
use baton_tests::pg::{scratch_database, ScratchDb};
use sqlx::postgres::PgPoolOptions;

const HOUR: Duration = Duration::from_secs(3600);

/// How far the replicas' clocks jump between rounds: past the hour the
/// IdP's access tokens live, and the expiry margin.
const JUMP: Duration = Duration::from_secs(2 * 3600);

/// Each test's clock offset in milliseconds (tests run concurrently, so
/// each has its own; a `Refresher` takes a plain `fn` as its clock).
static OFFSETS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// The wall clock shifted by test `N`'s offset.
fn shifted<const N: usize>() -> Timestamp {
    wall_clock() + Duration::from_millis(OFFSETS[N].load(Ordering::SeqCst))
}

type Replica = Arc<Refresher<PgStore, HttpTokenEndpoint>>;

/// A scratch database, a reuse-detection IdP, and the replicas' clock.
struct World {
    db: ScratchDb,
    idp: FakeIdp,
    link: LinkId,
    clock: fn() -> Timestamp,
    offset: &'static AtomicU64,
}

impl World {
    async fn new<const N: usize>(prefix: &str) -> Option<World> {
        let db = scratch_database(prefix).await?;
        let idp = FakeIdp::start(ProviderModel::ReuseDetection, HOUR).await;
        idp.set_latency(Duration::from_millis(30));
        let world = World {
            db,
            idp,
            link: LinkId::new("github", "octocat"),
            clock: shifted::<N>,
            offset: &OFFSETS[N],
        };
        world.link_account(&world.link, "first-").await;
        Some(world)
    }

    /// The user authorises the application: the IdP starts a family under
    /// `idp_link` and the application stores its first pair for the link,
    /// replacing whatever row the link had (`PgStore::insert`), as an
    /// authorization-code callback does.
    async fn link_account(&self, idp_link: &LinkId, prefix: &str) {
        let issued = self.idp.enroll(idp_link, prefix);
        let row = StoredLink {
            access: Some(AccessGrant {
                token: issued.access.token,
                expires_at: (self.clock)() + HOUR,
                lifetime: None,
            }),
            refresh_token: issued.refresh_token,
            ..StoredLink::default()
        };
        self.admin_store()
            .insert(&self.link, &row)
            .await
            .expect("store the linked pair");
    }

    /// Moves the replicas' clocks past every access token issued so far,
    /// and waits for their coarse clocks (which tick every few
    /// milliseconds) to see it.
    async fn advance(&self) {
        let jump = u64::try_from(JUMP.as_millis()).unwrap();
        self.offset.fetch_add(jump, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    fn admin_store(&self) -> PgStore {
        PgStore::new(
            self.db.pool().clone(),
            TokensAtRest::Encrypted(baton_tests::pg::test_key_ring()),
        )
    }

    /// A replica: a `Refresher` with a connection pool of its own.
    async fn replica(&self, owner: &str) -> Replica {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(self.db.options())
            .await
            .expect("connect to the scratch database");
        let config = Config::builder(OwnerId::new(owner))
            .lease_poll_interval(Duration::from_millis(20))
            .exchange_timeout(Duration::from_secs(5))
            .lease_duration(Duration::from_secs(10))
            .build()
            .unwrap();
        let endpoint = HttpTokenEndpoint::builder(self.idp.token_url(), self.idp.client_id())
            .client_secret(self.idp.client_secret())
            .request_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        Arc::new(Refresher::with_clock(
            Machine::new(config),
            PgStore::new(
                pool,
                TokensAtRest::Encrypted(baton_tests::pg::test_key_ring()),
            ),
            endpoint,
            self.clock,
        ))
    }

    async fn stored(&self) -> StoredLink {
        self.admin_store()
            .read(&self.link)
            .await
            .unwrap()
            .expect("the row exists")
    }

    /// Every task of every replica asks for a token at once; all must
    /// finish (a minute is far beyond any wait the configuration allows).
    async fn round(
        &self,
        replicas: &[Replica],
        tasks_per_replica: usize,
    ) -> Vec<Result<AccessGrant, RefreshError>> {
        let mut tasks = Vec::new();
        for replica in replicas {
            for _ in 0..tasks_per_replica {
                let (replica, link) = (Arc::clone(replica), self.link.clone());
                tasks.push(tokio::spawn(
                    async move { replica.access_token(&link).await },
                ));
            }
        }
        let mut answers = Vec::new();
        for task in tasks {
            let answer = tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("every task finishes")
                .expect("no task panics");
            answers.push(answer);
        }
        for replica in replicas {
            replica.settled().await;
        }
        answers
    }

    /// A normal round: exactly one exchange, and every caller gets the
    /// access token it issued, live at the IdP and not expired on the
    /// replicas' clock.
    async fn assert_one_rotation(&self, round: usize, replicas: &[Replica]) -> AccessToken {
        let before = self.idp.exchanges();
        let answers = self.round(replicas, 50).await;
        assert_eq!(
            self.idp.exchanges(),
            before + 1,
            "round {round}: exactly one exchange"
        );
        let first = answers[0]
            .as_ref()
            .unwrap_or_else(|e| panic!("round {round}: {e}"))
            .token
            .clone();
        let (idp_now, now) = (wall_clock(), (self.clock)());
        assert!(self
            .idp
            .with_provider(|p| p.is_access_live(&first, idp_now)));
        for answer in &answers {
            let grant = answer
                .as_ref()
                .unwrap_or_else(|e| panic!("round {round}: every caller gets a token: {e}"));
            assert_eq!(grant.token, first, "round {round}: one token per round");
            assert!(grant.expires_at > now, "round {round}: a live token");
        }
        first
    }

    /// Every refresh token that reached the IdP reached it exactly once.
    fn assert_each_token_presented_once(&self) {
        let mut presented: BTreeMap<String, u32> = BTreeMap::new();
        for request in self.idp.requests() {
            let token = request.refresh_token.expect("every request carries one");
            *presented
                .entry(token.expose_secret().to_owned())
                .or_default() += 1;
        }
        let twice = presented.values().filter(|&&n| n > 1).count();
        assert_eq!(
            twice, 0,
            "{twice} refresh token(s) presented more than once"
        );
    }

    fn assert_family_intact(&self, idp_link: &LinkId) {
        self.idp.with_provider(|p| {
            assert!(!p.family_revoked(idp_link), "{idp_link}: family revoked");
            assert_eq!(p.unsafe_reuses(idp_link), 0, "{idp_link}: unsafe reuse");
        });
    }

    fn assert_no_token_in(&self, text: &str) {
        for request in self.idp.requests() {
            let token = request.refresh_token.expect("every request carries one");
            assert!(
                !text.contains(token.expose_secret()),
                "token text in {text:?}"
            );
        }
        assert!(!text.contains("first-") && !text.contains("relinked-"));
    }
}

fn is_reauth_outcome_unknown(answer: &Result<AccessGrant, RefreshError>) -> bool {
    matches!(
        answer,
        Err(RefreshError::ReauthenticationRequired(
            ReauthReason::OutcomeUnknown
        ))
    )
}

/// 4 replicas × 50 tasks. Round 1 rotates; round 2's rotation is consumed
/// by the IdP and answered 504 by the gateway; the user re-links; rounds
/// 3–5 rotate again. No refresh token is ever presented twice, and no
/// family is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_504_after_the_idp_consumed_the_token_asks_for_reauthentication_and_relinking_recovers() {
    let Some(world) = World::new::<0>("gw_herd").await else {
        return;
    };
    let mut replicas = Vec::new();
    for r in 0..4 {
        replicas.push(world.replica(&format!("replica-{r}")).await);
    }

    world.advance().await;
    world.assert_one_rotation(1, &replicas).await;

    // Round 2: the gateway forwards, the IdP rotates, the client gets 504.
    world.advance().await;
    let presented = world.stored().await.refresh_token.expect("a stored token");
    world.idp.push_fault(IdpFault::ConsumeThen { status: 504 });
    let before = world.idp.exchanges();
    let answers = world.round(&replicas, 50).await;
    assert_eq!(world.idp.exchanges(), before + 1, "round 2: one exchange");
    assert_eq!(world.idp.requests()[before].status, 504);
    for answer in &answers {
        assert!(is_reauth_outcome_unknown(answer), "round 2: {answer:?}");
        world.assert_no_token_in(&baton_tests::error_chain(answer.as_ref().unwrap_err()));
    }
    let stored = world.stored().await;
    assert_eq!(stored.refresh_token, Some(presented.clone()), "kept");
    baton_tests::assert_unknown_outcome_recorded(&stored.failure);
    assert_eq!(stored.lease, None);
    // The IdP did rotate: the token the replicas hold is consumed, and the
    // live one went nowhere.
    assert!(!world.idp.with_provider(|p| p.is_refresh_live(&presented)));

    // Asked again, nobody presents the consumed token.
    let answers = world.round(&replicas, 5).await;
    assert!(answers.iter().all(is_reauth_outcome_unknown));
    assert_eq!(world.idp.exchanges(), before + 1, "no second presentation");

    // The user re-authorises: a new grant, a family of its own at the IdP
    // (which keys families by link and enrols each once).
    let relinked = LinkId::new("github", "octocat-relinked");
    world.link_account(&relinked, "relinked-").await;
    for round in 3..=5 {
        world.advance().await;
        world.assert_one_rotation(round, &replicas).await;
    }

    world.assert_each_token_presented_once();
    assert_eq!(world.idp.exchanges(), 5, "one exchange per round");
    world.assert_family_intact(&world.link);
    world.assert_family_intact(&relinked);
    let stored = world.stored().await;
    let live = world
        .idp
        .with_provider(|p| p.live_refresh_tokens(&relinked));
    assert_eq!(stored.refresh_token.as_ref(), live.first());
    assert_eq!((stored.failure, stored.lease), (None, None));
    world.db.cleanup().await;
}

/// One replica: after the 504, the next requests — and a replica started
/// afterwards — do not present the token again. (When a 5xx was
/// `Transient`, the next request presented it, and the IdP revoked the
/// family.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_504_one_replica_never_presents_the_token_again() {
    let Some(world) = World::new::<1>("gw_one").await else {
        return;
    };
    let replica = world.replica("replica-a").await;
    let first = world.stored().await.refresh_token.expect("a stored token");
    world.advance().await;
    world.idp.push_fault(IdpFault::ConsumeThen { status: 504 });
    let answer = replica.access_token(&world.link).await;
    assert!(is_reauth_outcome_unknown(&answer), "{answer:?}");
    world.assert_no_token_in(&baton_tests::error_chain(&answer.unwrap_err()));
    replica.settled().await;

    for _ in 0..3 {
        let answer = replica.access_token(&world.link).await;
        assert!(is_reauth_outcome_unknown(&answer), "{answer:?}");
        replica.settled().await;
    }
    let restarted = world.replica("replica-b").await;
    let answer = restarted.access_token(&world.link).await;
    assert!(is_reauth_outcome_unknown(&answer), "{answer:?}");
    restarted.settled().await;

    assert_eq!(world.idp.exchanges(), 1);
    assert_eq!(world.idp.presentations_of(&first), 1);
    let failure = world.stored().await.failure;
    assert!(
        matches!(
            failure,
            Some(CachedFailure::OutcomeUnknown { lease: Some(_) })
        ),
        "{failure:?}"
    );
    world.assert_family_intact(&world.link);
    world.db.cleanup().await;
}
