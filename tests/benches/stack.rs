//! Benchmarks of the tokio `Refresher` (figures in BENCHMARKS.md):
//!
//! - `hot_path/{refresher,mutex_map}/{1,2,4}`: `access_token` on a live
//!   cached token with 1, 2 and 4 threads calling at once, ns per call per
//!   thread, against the naive alternative measured in the same run (a
//!   `Mutex<HashMap>` lookup and clone).
//! - `herd`: 10,000 tasks on one replica at expiry, PostgreSQL store, HTTP
//!   to a wiremock IdP answering in 50 ms: exchanges, and p50/p99 latency
//!   against the IdP's latency plus two measured Postgres round trips.
//! - `replicas`: 8 replicas on one PostgreSQL, 100 tasks each, 5 rotations
//!   in a row: exchanges per rotation.
//!
//! Run with `cargo bench -p baton-tests --bench stack`. The herd and the
//! replicas need PostgreSQL; without it they say so and are skipped.

// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use baton_core::http::HttpTokenEndpoint;
use baton_core::postgres::{PgStore, TokensAtRest};
use baton_core::refresher::{wall_clock, Refresher};
use baton_core::{AccessGrant, Config, LinkId, OwnerId, StoredLink};
use baton_fakes::idp::FakeIdp;
use baton_fakes::ports::{SharedProvider, SharedStore};
use baton_fakes::{FakeProvider, InMemoryStore, ProviderModel};
use baton_tests::pg::scratch_database;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use sqlx::postgres::PgPoolOptions;

const HOUR: Duration = Duration::from_secs(3600);

/// Runs `op` `iters` times on each of `threads` threads at once; the time
/// per call per thread.
fn on_threads(threads: usize, iters: u64, op: Arc<dyn Fn() + Send + Sync>) -> Duration {
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (start, op) = (Arc::clone(&start), Arc::clone(&op));
            std::thread::spawn(move || {
                start.wait();
                let began = Instant::now();
                for _ in 0..iters {
                    op();
                }
                began.elapsed()
            })
        })
        .collect();
    start.wait();
    let total: Duration = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total / threads as u32
}

fn hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let link = LinkId::new("github", "octocat");
    let mut provider = FakeProvider::new(ProviderModel::SingleUse, HOUR);
    let issued = provider.enroll(&link, "", wall_clock());
    let mut store = InMemoryStore::new();
    store.insert(
        link.clone(),
        StoredLink {
            access: Some(issued.access.clone()),
            refresh_token: issued.refresh_token,
            ..StoredLink::default()
        },
    );
    let refresher = runtime.block_on(async {
        let refresher = Refresher::new(
            Config::builder(OwnerId::new("bench")).build().unwrap(),
            SharedStore::new(store),
            SharedProvider::new(provider),
        );
        refresher.access_token(&link).await.unwrap();
        Arc::new(refresher)
    });
    let map: Arc<Mutex<HashMap<LinkId, AccessGrant>>> =
        Arc::new(Mutex::new(HashMap::from([(link.clone(), issued.access)])));

    let mut group = c.benchmark_group("hot_path");
    for threads in [1usize, 2, 4] {
        let (refresher, link_a) = (Arc::clone(&refresher), link.clone());
        let call: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            // The future is ready at once on the hot path: poll it once.
            let future = refresher.access_token(&link_a);
            let grant = poll_ready(future).expect("a live cached token");
            std::hint::black_box(grant);
        });
        group.bench_with_input(
            BenchmarkId::new("refresher", threads),
            &threads,
            |b, &threads| b.iter_custom(|iters| on_threads(threads, iters, Arc::clone(&call))),
        );
        let (map, link_b) = (Arc::clone(&map), link.clone());
        let baseline: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let grant = map.lock().unwrap().get(&link_b).cloned();
            std::hint::black_box(grant);
        });
        group.bench_with_input(
            BenchmarkId::new("mutex_map", threads),
            &threads,
            |b, &threads| b.iter_custom(|iters| on_threads(threads, iters, Arc::clone(&baseline))),
        );
    }
    group.finish();
}

/// Polls a future that must be ready at once.
fn poll_ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the hot path had to wait"),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The herd and the replicas: counts and latencies, printed once.
fn real_stack(_: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Some(db) = scratch_database("bench").await else {
            return;
        };
        // Postgres round trip, measured now, on this machine.
        let mut trips = Vec::new();
        for _ in 0..200 {
            let began = Instant::now();
            sqlx::query("SELECT 1").execute(db.pool()).await.unwrap();
            trips.push(began.elapsed());
        }
        trips.sort();
        let round_trip = percentile(&trips, 0.5);

        // The herd: 10,000 tasks, one replica, IdP latency 50 ms.
        let idp = FakeIdp::start(ProviderModel::SingleUse, HOUR).await;
        idp.set_latency(Duration::from_millis(50));
        // The floor: one caller alone, same stack, same IdP latency: what a
        // refresh costs before any herd (read, lease, exchange, write). A
        // first refresh warms the HTTP connection, as a running service's is.
        let http = endpoint(&idp);
        let alone = Refresher::new(
            Config::builder(OwnerId::new("lone")).build().unwrap(),
            PgStore::new(db.pool().clone(), TokensAtRest::Plaintext),
            http.clone(),
        );
        let mut lone_latency = Duration::ZERO;
        for user in ["warm-up", "lone"] {
            let lone = LinkId::new("github", user);
            seed(&db, &idp, &lone).await;
            expire(&db, &lone).await;
            let began = Instant::now();
            alone.access_token(&lone).await.unwrap();
            lone_latency = began.elapsed();
        }

        let link = LinkId::new("github", "herd");
        seed(&db, &idp, &link).await;
        expire(&db, &link).await;
        let refresher = Arc::new(Refresher::new(
            Config::builder(OwnerId::new("herd")).build().unwrap(),
            PgStore::new(db.pool().clone(), TokensAtRest::Plaintext),
            http,
        ));
        let mut tasks = Vec::new();
        for _ in 0..10_000 {
            let (refresher, link) = (Arc::clone(&refresher), link.clone());
            tasks.push(tokio::spawn(async move {
                let began = Instant::now();
                refresher.access_token(&link).await.unwrap();
                began.elapsed()
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.push(task.await.unwrap());
        }
        latencies.sort();
        let goal = Duration::from_millis(51) + 2 * round_trip;
        println!(
            "herd: 10000 tasks, exchanges {}, p50 {:?}, p99 {:?}, max {:?}; goal p99 <= {:?} (IdP 50 ms + 2 x Postgres round trip {:?} + 1 ms); one caller alone on the same warm stack: {:?}",
            idp.exchanges() - 2,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1],
            goal,
            round_trip,
            lone_latency
        );

        // 8 replicas, 100 tasks each, 5 rotations.
        let idp = FakeIdp::start(ProviderModel::ReuseDetection, HOUR).await;
        idp.set_latency(Duration::from_millis(20));
        let link = LinkId::new("github", "replicas");
        seed(&db, &idp, &link).await;
        let mut per_rotation = Vec::new();
        for round in 0..5 {
            expire(&db, &link).await;
            let before = idp.exchanges();
            let mut replicas = Vec::new();
            for r in 0..8 {
                let pool = PgPoolOptions::new()
                    .max_connections(4)
                    .connect_with(db.options())
                    .await
                    .unwrap();
                replicas.push(Arc::new(Refresher::new(
                    Config::builder(OwnerId::new(format!("r{r}.{round}")))
                        .lease_poll_interval(Duration::from_millis(20))
                        .build()
                        .unwrap(),
                    PgStore::new(pool, TokensAtRest::Plaintext),
                    endpoint(&idp),
                )));
            }
            let mut tasks = Vec::new();
            for replica in &replicas {
                for _ in 0..100 {
                    let (replica, link) = (Arc::clone(replica), link.clone());
                    tasks.push(tokio::spawn(async move {
                        replica.access_token(&link).await.is_ok()
                    }));
                }
            }
            let mut served = 0;
            for task in tasks {
                served += usize::from(task.await.unwrap());
            }
            per_rotation.push((idp.exchanges() - before, served));
        }
        println!(
            "replicas: 8 x 100 tasks, 5 rotations: (exchanges, tasks served of 800) per rotation {per_rotation:?}; unsafe reuses {}",
            idp.with_provider(|p| p.unsafe_reuses(&link))
        );
        db.cleanup().await;
    });
}

fn endpoint(idp: &FakeIdp) -> HttpTokenEndpoint {
    HttpTokenEndpoint::builder(idp.token_url(), idp.client_id())
        .client_secret(idp.client_secret())
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn seed(db: &baton_tests::pg::ScratchDb, idp: &FakeIdp, link: &LinkId) {
    let issued = idp.enroll(link, &format!("{}.", link.user()));
    let row = StoredLink {
        access: Some(issued.access),
        refresh_token: issued.refresh_token,
        ..StoredLink::default()
    };
    PgStore::new(db.pool().clone(), TokensAtRest::Plaintext)
        .insert(link, &row)
        .await
        .unwrap();
}

/// Marks the stored access token expired, as time would.
async fn expire(db: &baton_tests::pg::ScratchDb, link: &LinkId) {
    sqlx::query(
        "UPDATE baton_links SET access_expires_at_ms = 0 WHERE provider = $1 AND user_id = $2",
    )
    .bind(link.provider())
    .bind(link.user())
    .execute(db.pool())
    .await
    .unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = hot_path, real_stack
}
criterion_main!(benches);
