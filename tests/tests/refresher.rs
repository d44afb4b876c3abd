//! The tokio `Refresher` against the in-memory fakes: herds, cancellation,
//! replicas sharing a store, and the provider's error replies. The same
//! driver runs on Postgres and HTTP in `real_stack.rs`.

use std::sync::Arc;
use std::time::Duration;

use baton_core::driver::TokenEndpoint;
use baton_core::refresher::{wall_clock, Refresher};
use baton_core::{
    Config, ExchangeOutcome, LinkId, OwnerId, RefreshError, RefreshToken, StoredLink, Timestamp,
};
use baton_fakes::ports::{SharedProvider, SharedStore};
use baton_fakes::{FakeProvider, InMemoryStore, ProviderFault, ProviderModel};

const HOUR: Duration = Duration::from_secs(3600);

/// A provider and a store holding one link whose access token expired an
/// hour ago.
fn world(model: ProviderModel) -> (LinkId, SharedStore, SharedProvider) {
    let link = LinkId::new("github", "octocat");
    let mut provider = FakeProvider::new(model, HOUR);
    let issued = provider.enroll(&link, "", wall_clock() - 2 * HOUR);
    let mut store = InMemoryStore::new();
    store.insert(
        link.clone(),
        StoredLink {
            access: Some(issued.access),
            refresh_token: issued.refresh_token,
            ..StoredLink::default()
        },
    );
    (link, SharedStore::new(store), SharedProvider::new(provider))
}

fn config(owner: &str) -> Config {
    Config::builder(OwnerId::new(owner))
        .lease_poll_interval(Duration::from_millis(5))
        .build()
        .unwrap()
}

/// An endpoint whose reply takes `delay` to come back after the provider
/// has processed the request: room for callers to pile up or go away while
/// an exchange is in flight, and a reply that can miss its deadline.
struct Slow<E> {
    inner: E,
    delay: Duration,
}

impl<E: TokenEndpoint> TokenEndpoint for Slow<E> {
    async fn exchange(
        &self,
        link: &LinkId,
        refresh_token: &RefreshToken,
        now: Timestamp,
    ) -> ExchangeOutcome {
        let outcome = self.inner.exchange(link, refresh_token, now).await;
        tokio::time::sleep(self.delay).await;
        outcome
    }
}

fn slow(provider: &SharedProvider, millis: u64) -> Slow<SharedProvider> {
    Slow {
        inner: provider.clone(),
        delay: Duration::from_millis(millis),
    }
}

/// Every task got a token the provider accepts, the provider rotated once,
/// nothing was presented twice, and the store holds the live refresh token.
fn assert_one_clean_rotation(
    link: &LinkId,
    store: &SharedStore,
    provider: &SharedProvider,
    answers: &[Result<baton_core::AccessGrant, RefreshError>],
) {
    provider.with(|p| {
        assert_eq!(
            p.rotations(link),
            1,
            "exactly one exchange rotated the token"
        );
        assert_eq!(p.unsafe_reuses(link), 0, "no refresh token presented twice");
        for answer in answers {
            let grant = answer.as_ref().expect("every caller gets a token");
            assert!(p.is_access_live(&grant.token, wall_clock()));
        }
        let live = p.live_refresh_tokens(link);
        let stored = store.with(|s| s.row(link).cloned()).unwrap();
        assert_eq!(stored.refresh_token.as_ref(), live.first());
        assert_eq!(stored.lease, None);
        assert_eq!(stored.failure, None);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_herd_of_tasks_shares_one_exchange() {
    let (link, store, provider) = world(ProviderModel::SingleUse);
    let refresher = Arc::new(Refresher::new(
        config("a"),
        store.clone(),
        slow(&provider, 20),
    ));
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let refresher = Arc::clone(&refresher);
            let link = link.clone();
            tokio::spawn(async move { refresher.access_token(&link).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    assert_one_clean_rotation(&link, &store, &provider, &answers);
    // Later callers are served from memory: still one rotation.
    let again = refresher.access_token(&link).await;
    assert_eq!(again.unwrap().token, answers[0].as_ref().unwrap().token);
    assert_eq!(provider.with(|p| p.rotations(&link)), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_caller_does_not_cancel_the_refresh() {
    let (link, store, provider) = world(ProviderModel::ReuseDetection);
    let refresher = Arc::new(Refresher::new(
        config("a"),
        store.clone(),
        slow(&provider, 100),
    ));
    let only_caller = {
        let refresher = Arc::clone(&refresher);
        let link = link.clone();
        tokio::spawn(async move { refresher.access_token(&link).await })
    };
    // Let the exchange start, then drop the only caller.
    tokio::time::sleep(Duration::from_millis(30)).await;
    only_caller.abort();
    assert!(only_caller.await.unwrap_err().is_cancelled());
    refresher.settled().await;
    // The rotated token was persisted although nobody waited for it.
    let answers = [refresher.access_token(&link).await];
    assert_one_clean_rotation(&link, &store, &provider, &answers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_sharing_a_store_rotate_once() {
    let (link, store, provider) = world(ProviderModel::ReuseDetection);
    let replicas: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|owner| {
            Arc::new(Refresher::new(
                config(owner),
                store.clone(),
                slow(&provider, 20),
            ))
        })
        .collect();
    let mut tasks = Vec::new();
    for replica in &replicas {
        for _ in 0..30 {
            let replica = Arc::clone(replica);
            let link = link.clone();
            tasks.push(tokio::spawn(
                async move { replica.access_token(&link).await },
            ));
        }
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    assert_one_clean_rotation(&link, &store, &provider, &answers);
    assert!(!provider.with(|p| p.family_revoked(&link)));
}

#[tokio::test]
async fn a_rate_limit_is_reported_and_consumes_nothing() {
    let (link, store, provider) = world(ProviderModel::SingleUse);
    provider.push_fault(ProviderFault::RateLimited {
        retry_after: Some(Duration::from_secs(7)),
    });
    let refresher = Refresher::new(config("a"), store.clone(), provider.clone());
    match refresher.access_token(&link).await {
        Err(RefreshError::RetryAfter { delay }) => assert_eq!(delay, Duration::from_secs(7)),
        other => panic!("expected a rate limit, got {other:?}"),
    }
    refresher.settled().await;
    let stored = store.with(|s| s.row(&link).cloned()).unwrap();
    assert!(provider.with(|p| p.is_refresh_live(stored.refresh_token.as_ref().unwrap())));
    assert_eq!(stored.lease, None, "the lease is released");
}

#[tokio::test]
async fn a_transient_error_is_temporary_and_the_next_call_recovers() {
    let (link, store, provider) = world(ProviderModel::SingleUse);
    // Certainly not consumed: the request was never sent (a connect
    // failure). A 5xx after sending is not this; see real_stack.rs.
    provider.push_fault(ProviderFault::Transient);
    let refresher = Refresher::new(config("a"), store.clone(), provider.clone());
    assert!(matches!(
        refresher.access_token(&link).await,
        Err(RefreshError::Temporary(_))
    ));
    refresher.settled().await;
    let answers = [refresher.access_token(&link).await];
    assert_one_clean_rotation(&link, &store, &provider, &answers);
}

#[tokio::test]
async fn a_reply_past_the_deadline_is_an_unknown_outcome_not_a_second_presentation() {
    let (link, store, provider) = world(ProviderModel::ReuseDetection);
    let config = Config::builder(OwnerId::new("a"))
        .exchange_timeout(Duration::from_millis(50))
        .lease_duration(Duration::from_millis(200))
        .build()
        .unwrap();
    let refresher = Refresher::new(config, store.clone(), slow(&provider, 300));
    let first = refresher.access_token(&link).await;
    assert!(
        matches!(first, Err(RefreshError::ReauthenticationRequired(_))),
        "{first:?}"
    );
    // However often it is asked again, the token whose presentation has an
    // unknown outcome is never presented a second time.
    for _ in 0..3 {
        assert!(refresher.access_token(&link).await.is_err());
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    provider.with(|p| {
        assert_eq!(p.unsafe_reuses(&link), 0);
        assert_eq!(p.presentations().len(), 1);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hot_path_stops_serving_a_token_at_the_expiry_margin() {
    let link = LinkId::new("github", "octocat");
    // Twice the margin: the margin decides, not half the token's life.
    let mut fake = FakeProvider::new(ProviderModel::SingleUse, Duration::from_millis(2000));
    let issued = fake.enroll(&link, "", wall_clock() - 2 * HOUR);
    let mut memory = InMemoryStore::new();
    memory.insert(
        link.clone(),
        StoredLink {
            access: Some(issued.access),
            refresh_token: issued.refresh_token,
            ..StoredLink::default()
        },
    );
    let (store, provider) = (SharedStore::new(memory), SharedProvider::new(fake));
    let config = Config::builder(OwnerId::new("a"))
        .expiry_margin(Duration::from_millis(1000))
        .build()
        .unwrap();
    let refresher = Refresher::new(config, store.clone(), provider.clone());
    let first = refresher.access_token(&link).await.unwrap();
    // Served from memory (this thread's copy) while outside the margin.
    for _ in 0..1000 {
        assert_eq!(
            refresher.access_token(&link).await.unwrap().token,
            first.token
        );
    }
    assert_eq!(provider.with(|p| p.rotations(&link)), 1);
    // Inside the margin the copy is no longer served: a new refresh.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = refresher.access_token(&link).await.unwrap();
    assert_ne!(second.token, first.token);
    assert_eq!(provider.with(|p| p.rotations(&link)), 2);
    // Another task on another thread sees the new token too.
    let other = {
        let link = link.clone();
        let refresher = Arc::new(refresher);
        let r = Arc::clone(&refresher);
        tokio::spawn(async move { r.access_token(&link).await.unwrap() })
            .await
            .unwrap()
    };
    assert_eq!(other.token, second.token);
}

/// A link served only from the hot path is still recently used: the bound
/// on held links evicts the one nobody asked for again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bound_on_held_links_spares_a_link_served_from_the_hot_path() {
    let links: Vec<LinkId> = ["a", "b", "c"]
        .iter()
        .map(|user| LinkId::new("github", *user))
        .collect();
    let mut fake = FakeProvider::new(ProviderModel::SingleUse, HOUR);
    let mut memory = InMemoryStore::new();
    for link in &links {
        let issued = fake.enroll(link, &format!("{}.", link.user()), wall_clock());
        memory.insert(
            link.clone(),
            StoredLink {
                access: Some(issued.access),
                refresh_token: issued.refresh_token,
                ..StoredLink::default()
            },
        );
    }
    let config = Config::builder(OwnerId::new("a"))
        .max_held_links(2)
        .build()
        .unwrap();
    let refresher = Refresher::new(config, SharedStore::new(memory), SharedProvider::new(fake));
    let [a, b, c] = &links[..] else {
        unreachable!()
    };
    refresher.access_token(a).await.unwrap();
    refresher.access_token(b).await.unwrap();
    // `a` again: held, so served without an input to the machine.
    for _ in 0..10 {
        refresher.access_token(a).await.unwrap();
    }
    refresher.access_token(c).await.unwrap();
    let held = |link: &LinkId| {
        refresher.with_machine_state(|m| m.live_token(link, wall_clock()).is_some())
    };
    assert!(held(a), "the link served from the hot path was evicted");
    assert!(!held(b));
    assert!(held(c));
}

/// The test's own clock, in milliseconds: moved by hand.
static STARVED_NOW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn starved_clock() -> Timestamp {
    Timestamp::from_millis(STARVED_NOW.load(std::sync::atomic::Ordering::SeqCst))
}

/// The hot path's clock must keep time while the refresher's runtime does
/// not run at all: a current-thread runtime whose only thread is busy (here:
/// not driven, the extreme case of a task that blocks). A clock ticked by a
/// task of that runtime stood still, and the expired token was served.
#[test]
fn the_hot_path_stops_at_the_margin_even_when_the_runtime_is_starved() {
    use std::future::Future;
    let start = wall_clock();
    STARVED_NOW.store(start.as_millis(), std::sync::atomic::Ordering::SeqCst);
    let (link, store, provider) = world(ProviderModel::SingleUse);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (refresher, first) = runtime.block_on(async {
        let refresher = Refresher::with_clock(
            baton_core::Machine::new(config("a")),
            store,
            provider.clone(),
            starved_clock,
        );
        let first = refresher.access_token(&link).await.unwrap();
        (refresher, first)
    });
    let poll_once = |refresher: &Refresher<_, _>| {
        let future = std::pin::pin!(refresher.access_token(&link));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match future.poll(&mut context) {
            std::task::Poll::Ready(answer) => Some(answer.unwrap().token),
            std::task::Poll::Pending => None,
        }
    };
    assert_eq!(poll_once(&refresher), Some(first.token.clone()));
    // Past the token's expiry; the runtime is not driven from here on.
    STARVED_NOW.store(
        first.expires_at.as_millis() + 1,
        std::sync::atomic::Ordering::SeqCst,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match poll_once(&refresher) {
            // Not served from memory any more: a refresh was started.
            None => break,
            Some(token) => {
                assert_eq!(token, first.token);
                assert!(
                    std::time::Instant::now() < deadline,
                    "an expired token was still served 10 s after its expiry, \
                     while the refresher's runtime was starved"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    assert_eq!(provider.with(|p| p.rotations(&link)), 1);
}

/// Tokens that live no longer than the expiry margin (30 s, as long as the
/// default 30 s) are served for half their life, not refreshed on every
/// call.
#[tokio::test]
async fn short_lived_tokens_are_served_not_refreshed_on_every_call() {
    let link = LinkId::new("test-tenant", "octocat");
    let mut provider = FakeProvider::new(ProviderModel::SingleUse, Duration::from_secs(30));
    let issued = provider.enroll(&link, "", wall_clock() - HOUR);
    let mut store = InMemoryStore::new();
    store.insert(link.clone(), StoredLink::enrolled(issued));
    let provider = SharedProvider::new(provider);
    let config = Config::builder(OwnerId::generate("test")).build().unwrap();
    let refresher = Refresher::new(config, SharedStore::new(store), provider.clone());
    let first = refresher.access_token(&link).await.unwrap();
    for _ in 0..10 {
        assert_eq!(refresher.access_token(&link).await.unwrap(), first);
    }
    assert_eq!(provider.with(|p| p.rotations(&link)), 1);
}
