//! Enrolment racing a refresh, on real PostgreSQL: the OAuth callback
//! stores a fresh pair (a new token family) while a refresh of the older
//! family is in flight. The fresh pair must win: the store never goes back
//! to the older family, and no caller who asks after `enroll` returned is
//! handed the older family's token.
//!
//! No timing is asserted: the exchange is held at a gate until the test
//! has enrolled, so the interleaving is fixed.

use std::sync::Arc;
use std::time::Duration;

use baton_core::driver::TokenEndpoint;
use baton_core::postgres::{PgStore, TokensAtRest};
use baton_core::refresher::{wall_clock, Refresher};
use baton_core::{
    AccessGrant, Config, ExchangeOutcome, LinkId, OwnerId, RefreshError, RefreshToken, Timestamp,
};
use baton_fakes::ports::SharedProvider;
use baton_fakes::{FakeProvider, ProviderModel};
use tokio::sync::{mpsc, Semaphore};

const HOUR: Duration = Duration::from_secs(3600);

/// An endpoint that lets the provider process each exchange at once, then
/// reports it started and holds the reply until the test releases it: the
/// older family has rotated at the provider, and its write is still to come.
struct Gated {
    provider: SharedProvider,
    started: mpsc::UnboundedSender<()>,
    release: Arc<Semaphore>,
}

impl TokenEndpoint for Gated {
    async fn exchange(
        &self,
        link: &LinkId,
        refresh_token: &RefreshToken,
        now: Timestamp,
    ) -> ExchangeOutcome {
        let outcome = self.provider.exchange(link, refresh_token, now).await;
        let _ = self.started.send(());
        self.release
            .acquire()
            .await
            .expect("the gate is never closed")
            .forget();
        outcome
    }
}

fn config(owner: &str) -> Config {
    Config::builder(OwnerId::new(owner)).build().unwrap()
}

/// Where the callback runs: in the process whose refresh is in flight, or
/// in another replica (which only writes the store).
#[derive(Clone, Copy, Debug)]
enum Callback {
    SameProcess,
    OtherReplica,
}

async fn enrolment_wins_over_a_refresh_in_flight(callback: Callback) {
    let prefix = match callback {
        Callback::SameProcess => "baton_enrol_same",
        Callback::OtherReplica => "baton_enrol_other",
    };
    let Some(db) = baton_tests::pg::scratch_database(prefix).await else {
        return;
    };
    let link = LinkId::new("github", "octocat");
    let provider = SharedProvider::new(FakeProvider::new(ProviderModel::ReuseDetection, HOUR));
    // The first enrolment, long ago: its access token has expired.
    let first = provider.with(|p| p.enroll(&link, "", wall_clock() - 2 * HOUR));
    let store = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
    store.enroll(&link, &first).await.expect("first enrolment");

    let (started, mut exchange_started) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let gated = Gated {
        provider: provider.clone(),
        started,
        release: Arc::clone(&release),
    };
    let a = Arc::new(Refresher::new(config("replica-a"), store.clone(), gated));
    let b = Refresher::new(config("replica-b"), store.clone(), provider.clone());

    // Replica a starts refreshing the older family.
    let early = {
        let a = Arc::clone(&a);
        let link = link.clone();
        tokio::spawn(async move { a.access_token(&link).await })
    };
    exchange_started.recv().await.expect("the exchange starts");

    // The user re-links: the callback gets a new family's pair and enrols it.
    let fresh = provider.with(|p| p.relink(&link, wall_clock()));
    match callback {
        Callback::SameProcess => a.enroll(&link, fresh.clone()).await,
        Callback::OtherReplica => b.enroll(&link, fresh.clone()).await,
    }
    .expect("enrolment");

    // A caller of replica a asking now joins the flight in progress.
    let late = {
        let a = Arc::clone(&a);
        let link = link.clone();
        tokio::spawn(async move { a.access_token(&link).await })
    };
    // Let the older family's exchange reply: its write must lose.
    release.add_permits(1);
    let early = early.await.unwrap();
    let late = late.await.unwrap();
    a.settled().await;

    let is_new_family = |answer: &Result<AccessGrant, RefreshError>| {
        let grant = answer.as_ref().expect("a token");
        provider.with(|p| p.generation_of_access(&grant.token)) == Some(1)
    };
    // The late caller asked after `enroll` returned: the new pair, always.
    assert!(is_new_family(&late), "the late caller got the older family");
    if let Callback::SameProcess = callback {
        // This process was told: even the caller who asked before is
        // served from a fresh read rather than the superseded refresh.
        assert!(
            is_new_family(&early),
            "the early caller got the older family"
        );
    }
    let row = store.read(&link).await.unwrap().expect("the row");
    assert_eq!(
        row.refresh_token, fresh.refresh_token,
        "the fresh pair stays"
    );
    assert_eq!(row.access.as_ref(), Some(&fresh.access));
    assert_eq!(row.lease, None);
    assert_eq!(row.failure, None);
    provider.with(|p| {
        assert_eq!(
            p.unsafe_reuses(&link),
            0,
            "no refresh token presented twice"
        );
        assert_eq!(p.generation(&link), Some(1));
    });
    // Another replica asking afterwards is served the fresh pair from the
    // store, without an exchange.
    let from_b = b.access_token(&link).await;
    assert!(is_new_family(&from_b));
    assert_eq!(from_b.unwrap(), fresh.access);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_in_the_refreshing_process_wins_over_its_refresh() {
    enrolment_wins_over_a_refresh_in_flight(Callback::SameProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_on_another_replica_wins_over_a_refresh_in_flight() {
    enrolment_wins_over_a_refresh_in_flight(Callback::OtherReplica).await;
}

/// On a fresh database, the callback's one call is all it takes before
/// `access_token` answers.
#[tokio::test]
async fn enrolment_on_a_fresh_database_serves_the_pair() {
    let Some(db) = baton_tests::pg::scratch_database("baton_enrol_fresh").await else {
        return;
    };
    let link = LinkId::new("github", "octocat");
    let provider = SharedProvider::new(FakeProvider::new(ProviderModel::SingleUse, HOUR));
    let store = PgStore::new(db.pool().clone(), TokensAtRest::Plaintext);
    let refresher = Refresher::new(config("replica-a"), store, provider.clone());
    assert!(matches!(
        refresher.access_token(&link).await,
        Err(RefreshError::ReauthenticationRequired(_))
    ));
    let pair = provider.with(|p| p.enroll(&link, "", wall_clock()));
    refresher.enroll(&link, pair.clone()).await.unwrap();
    assert_eq!(refresher.access_token(&link).await.unwrap(), pair.access);
    assert_eq!(provider.with(|p| p.rotations(&link)), 0);
    db.cleanup().await;
}
