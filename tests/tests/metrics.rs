//! baton's metrics after a herd, read back from `metrics-util`'s debugging
//! recorder (feature `metrics` of baton-core). One test in this binary: the
//! recorder is installed process-wide.
//!
//! No timing: the herd is held at the exchange until every caller waits,
//! so all of them are answered by the one refresh.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use baton_core::driver::TokenEndpoint;
use baton_core::refresher::{wall_clock, Refresher};
use baton_core::{Config, ExchangeOutcome, LinkId, OwnerId, RefreshToken, StoredLink, Timestamp};
use baton_fakes::ports::{SharedProvider, SharedStore};
use baton_fakes::{FakeProvider, InMemoryStore, ProviderModel};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tokio::sync::Semaphore;

const HERD: usize = 50;

/// Holds every exchange until the test opens the gate.
struct Gated {
    provider: SharedProvider,
    gate: Arc<Semaphore>,
}

impl TokenEndpoint for Gated {
    async fn exchange(
        &self,
        link: &LinkId,
        refresh_token: &RefreshToken,
        now: Timestamp,
    ) -> ExchangeOutcome {
        self.gate.acquire().await.expect("never closed").forget();
        self.provider.exchange(link, refresh_token, now).await
    }
}

/// Every metric as `name{label=value,…}` → its value(s).
fn snapshot(snapshotter: &metrics_util::debugging::Snapshotter) -> HashMap<String, DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

fn counter(metrics: &HashMap<String, DebugValue>, name: &str) -> u64 {
    match metrics.get(name) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        Some(other) => panic!("{name} is not a counter: {other:?}"),
    }
}

fn histogram(metrics: &HashMap<String, DebugValue>, name: &str) -> Vec<f64> {
    match metrics.get(name) {
        Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.0).collect(),
        other => panic!("{name} is not a histogram: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_is_counted_as_one_refresh() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let link = LinkId::new("github", "octocat");
    let mut provider = FakeProvider::new(ProviderModel::SingleUse, Duration::from_secs(3600));
    let issued = provider.enroll(&link, "", wall_clock() - Duration::from_secs(7200));
    let mut store = InMemoryStore::new();
    store.insert(link.clone(), StoredLink::enrolled(issued));
    let gate = Arc::new(Semaphore::new(0));
    let endpoint = Gated {
        provider: SharedProvider::new(provider),
        gate: Arc::clone(&gate),
    };
    let config = Config::builder(OwnerId::generate("metrics"))
        .build()
        .unwrap();
    let refresher = Arc::new(Refresher::new(config, SharedStore::new(store), endpoint));

    let tasks: Vec<_> = (0..HERD)
        .map(|_| {
            let refresher = Arc::clone(&refresher);
            let link = link.clone();
            tokio::spawn(async move { refresher.access_token(&link).await })
        })
        .collect();
    // Every caller joins the one refresh before it may finish.
    while refresher.with_machine_state(|m| m.waiting_callers()) < HERD {
        tokio::task::yield_now().await;
    }
    gate.add_permits(1);
    for task in tasks {
        task.await.unwrap().expect("a token");
    }
    refresher.settled().await;

    let m = snapshot(&snapshotter);
    let names: Vec<_> = m.keys().collect();
    assert_eq!(
        counter(&m, "baton_presentations_total{provider=github}"),
        1,
        "{names:?}"
    );
    assert_eq!(
        counter(&m, "baton_exchanges_total{outcome=issued,provider=github}"),
        1
    );
    assert_eq!(
        counter(&m, "baton_lease_total{event=taken,provider=github}"),
        1
    );
    assert_eq!(
        counter(
            &m,
            "baton_lease_total{event=expired_over_same_token,provider=github}"
        ),
        0
    );
    assert_eq!(
        counter(
            &m,
            "baton_cached_failures_total{provider=github,reason=outcome_unknown}"
        ),
        0
    );
    // All callers were answered together, by the one refresh.
    assert_eq!(
        histogram(&m, "baton_callers_served{provider=github}"),
        vec![HERD as f64]
    );
    let durations = histogram(
        &m,
        "baton_refresh_duration_seconds{outcome=token,provider=github}",
    );
    assert_eq!(durations.len(), HERD);
    // No label holds a user id or a token.
    for name in m.keys() {
        assert!(!name.contains("octocat"), "{name}");
    }
}
