//! `cargo bench -p baton-tests --bench links`: the tokio `Refresher`
//! serving many links in one process (issue 17): the latency of each
//! link's *first* request when the refresher already holds tens of
//! thousands of other links, against the same requests from a refresher
//! that holds one.
//!
//! The world: N links, each with a row in the in-memory store
//! (`baton-fakes`' `SharedStore`) and a token family at a wiremock IdP
//! (`FakeIdp`, single-use refresh tokens, reached over HTTP by the
//! production `HttpTokenEndpoint`). A fresh `Refresher` then asks for an
//! access token for every one of the N links once, 64 requests in flight
//! (64 tasks on a two-worker tokio runtime, each taking the next link as it
//! finishes one), and records each request's latency. Two kinds of first
//! request, each measured:
//!
//! - `live`: the row holds a live access token, so the request is a store
//!   read and no exchange — the refresher's own bookkeeping is most of the
//!   cost, which is what must not grow with the links it holds;
//! - `expired`: the row's access token has expired, so the request takes
//!   the lease, exchanges the refresh token at the IdP over HTTP and writes
//!   the new tokens back (the IdP must count exactly N exchanges).
//!
//! Each kind runs twice on the same world, alternately: once with
//! `Config::max_held_links` at N, so the refresher holds every token it
//! handed out (the i-th request finds i − 1 links held; all N at the end),
//! and once with the bound at 1, so it never holds more than one — the
//! one-link baseline. Same store, same IdP, same concurrency and the same
//! number of samples: the ratio of their p99s is the cost of holding the
//! links. A literal one-link world would give one first request per
//! refresher, no p99, and no 64 requests in flight.
//!
//! Reported per run: p50, p99, the p99 of the last tenth of the requests
//! (made while at least 0.9 N links were held), the maximum, the wall time
//! and the links the machine remembers afterwards; then per kind the ratio
//! p99(holds N) / p99(holds 1). Memory per held link is the growth of the
//! resident set (`/proc/self/statm`, 4 KiB pages) over the first run,
//! `live` holding every link, divided by N: it includes the machine's
//! tables and allocator overhead, and is a rough figure (freed memory from
//! building the world may be reused).
//!
//! Not criterion: one run at 100k links takes seconds and yields 100k
//! samples, and the figures are percentiles of those, which criterion does
//! not report. `BATON_LINKS=1000,100000` chooses the sizes (default
//! 100000); `BATON_LINKS_ROUNDS` how many times each pair of runs repeats
//! (default 2; every round is printed); `BATON_IN_FLIGHT` the requests in
//! flight (default 64); `BATON_FIRST=live` or `expired` one kind only.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::http::HttpTokenEndpoint;
use baton_core::refresher::Refresher;
use baton_core::{AccessGrant, Config, LinkId, OwnerId, StoredLink, Timestamp};
use baton_fakes::idp::FakeIdp;
use baton_fakes::ports::SharedStore;
use baton_fakes::{InMemoryStore, ProviderModel};

const HOUR: Duration = Duration::from_secs(3600);

/// What a first request finds in the store.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Live,
    Expired,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Live => "live",
            Kind::Expired => "expired",
        }
    }
}

/// The store and the IdP, with every link enrolled in both.
struct World {
    store: SharedStore,
    idp: FakeIdp,
    /// One HTTP client for every run: its connections stay warm, as a
    /// running service's are.
    endpoint: HttpTokenEndpoint,
    links: Vec<LinkId>,
    /// What the rows hold now.
    rows: Cell<Kind>,
}

async fn world(n: usize) -> World {
    let idp = FakeIdp::start(ProviderModel::SingleUse, HOUR).await;
    let mut store = InMemoryStore::new();
    let links: Vec<LinkId> = (0..n)
        .map(|i| LinkId::new("github", format!("user-{i:08}")))
        .collect();
    for (i, link) in links.iter().enumerate() {
        let issued = idp.enroll(link, &format!("u{i}."));
        store.insert(
            link.clone(),
            StoredLink {
                access: Some(issued.access),
                refresh_token: issued.refresh_token,
                ..StoredLink::default()
            },
        );
    }
    let endpoint = HttpTokenEndpoint::builder(idp.token_url(), idp.client_id())
        .client_secret(idp.client_secret())
        .request_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    World {
        store: SharedStore::new(store),
        idp,
        endpoint,
        links,
        rows: Cell::new(Kind::Live),
    }
}

/// Sets every row's access token to `expired` or back to live, as time
/// (or the IdP, which issued the live ones) would.
fn set_rows(world: &World, kind: Kind) {
    // After an `expired` run the rows hold the new, live tokens; and the
    // first run's memory figure must not reuse the copies made here.
    if world.rows.replace(kind) == kind && kind == Kind::Live {
        return;
    }
    world.store.with(|store| {
        let rows: Vec<(LinkId, StoredLink)> = store
            .rows()
            .map(|(link, row)| (link.clone(), row.clone()))
            .collect();
        let expires_at = match kind {
            Kind::Expired => Timestamp::ZERO,
            Kind::Live => baton_fakes::idp::wall_clock() + HOUR,
        };
        for (link, mut row) in rows {
            let grant = row.access.as_ref().expect("every row has a token");
            row.access = Some(AccessGrant {
                token: grant.token.clone(),
                expires_at,
                lifetime: None,
            });
            store.insert(link, row);
        }
    });
}

/// The resident set, in bytes.
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// One run's figures.
struct Run {
    /// Each request's latency, in the order the requests were made.
    latencies: Vec<Duration>,
    wall: Duration,
    remembered: usize,
    resident_growth: usize,
}

/// A fresh refresher holding at most `bound` links asks for every link of
/// the world once, `in_flight` at a time.
async fn run(world: &World, kind: Kind, bound: usize, in_flight: usize) -> Run {
    set_rows(world, kind);
    let exchanges = world.idp.exchanges();
    let resident = resident_bytes();
    let refresher = Arc::new(Refresher::new(
        Config::builder(OwnerId::new("bench"))
            .max_held_links(bound)
            .build()
            .unwrap(),
        world.store.clone(),
        world.endpoint.clone(),
    ));
    let links = Arc::new(world.links.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| {
            let (refresher, links, next) = (
                Arc::clone(&refresher),
                Arc::clone(&links),
                Arc::clone(&next),
            );
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(link) = links.get(i) else {
                        break mine;
                    };
                    let started = Instant::now();
                    let grant = refresher.access_token(link).await;
                    mine.push((i, started.elapsed()));
                    assert!(grant.is_ok(), "no token for {link}");
                }
            })
        })
        .collect();
    let mut latencies = vec![Duration::ZERO; links.len()];
    for task in tasks {
        for (i, latency) in task.await.unwrap() {
            latencies[i] = latency;
        }
    }
    let wall = began.elapsed();
    refresher.settled().await;
    let resident_growth = resident_bytes().saturating_sub(resident);
    let expected = match kind {
        Kind::Live => 0,
        Kind::Expired => links.len(),
    };
    assert_eq!(world.idp.exchanges() - exchanges, expected, "exchanges");
    Run {
        latencies,
        wall,
        remembered: refresher.with_machine_state(|m| m.remembered_links()),
        resident_growth,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// Prints one run's line; returns its p99.
fn report(n: usize, kind: Kind, bound: usize, run: &Run) -> Duration {
    let mut sorted = run.latencies.clone();
    sorted.sort_unstable();
    let mut tail = run.latencies[run.latencies.len() * 9 / 10..].to_vec();
    tail.sort_unstable();
    let p99 = percentile(&sorted, 0.99);
    println!(
        "{n:>7}  {:>7}  {:>6}  {:>9}  {:>9}  {:>14}  {:>10}  {:>8.2} s  {:>10}",
        kind.name(),
        if bound == 1 {
            "1".to_string()
        } else {
            bound.to_string()
        },
        micros(percentile(&sorted, 0.5)),
        micros(p99),
        micros(percentile(&tail, 0.99)),
        micros(sorted[sorted.len() - 1]),
        run.wall.as_secs_f64(),
        run.remembered,
    );
    p99
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name).map_or_else(
        |_| default.to_vec(),
        |v| v.split(',').map(|n| n.trim().parse().unwrap()).collect(),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let sizes = env_list("BATON_LINKS", &[100_000]);
    let rounds = env_list("BATON_LINKS_ROUNDS", &[2])[0].max(1);
    let in_flight = env_list("BATON_IN_FLIGHT", &[64])[0].max(1);
    let kinds: Vec<Kind> = std::env::var("BATON_FIRST")
        .unwrap_or_else(|_| "live,expired".into())
        .split(',')
        .map(|k| match k.trim() {
            "live" => Kind::Live,
            "expired" => Kind::Expired,
            other => panic!("BATON_FIRST: {other:?} is neither live nor expired"),
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for n in sizes {
            let began = Instant::now();
            let world = world(n).await;
            println!(
                "world of {n} links built in {:.1} s; {in_flight} requests in flight",
                began.elapsed().as_secs_f64()
            );
            println!(
                "{:>7}  {:>7}  {:>6}  {:>9}  {:>9}  {:>14}  {:>10}  {:>10}  {:>10}",
                "links",
                "first",
                "holds",
                "p50",
                "p99",
                "p99 last 10%",
                "max",
                "wall",
                "remembered"
            );
            let mut bytes_per_link = None;
            for round in 0..rounds {
                for &kind in &kinds {
                    // The run holding every link first in the first round:
                    // its resident growth is the memory figure.
                    let order = if round == 0 { [n, 1] } else { [1, n] };
                    let mut p99 = [Duration::ZERO; 2];
                    for bound in order {
                        let r = run(&world, kind, bound, in_flight).await;
                        if bytes_per_link.is_none() && bound == n {
                            bytes_per_link = Some(r.resident_growth as f64 / n as f64);
                        }
                        p99[usize::from(bound == n)] = report(n, kind, bound, &r);
                    }
                    println!(
                        "         round {round}, {}: p99 holding {n} / p99 holding 1 = {:.2}",
                        kind.name(),
                        p99[1].as_secs_f64() / p99[0].as_secs_f64()
                    );
                }
            }
            println!(
                "resident growth while the refresher came to hold {n} links: {:.0} bytes per link",
                bytes_per_link.unwrap_or(0.0)
            );
        }
    });
}
