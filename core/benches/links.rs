//! `cargo bench -p baton-core --bench links`: what the first request for
//! each of N distinct links costs, and what the links cost in memory
//! (issue 17).
//!
//! Each link is requested once, through the [`Coordinator`] (as the tokio
//! `Refresher` drives it: the machine behind a mutex, `poll_timeout` after
//! every input) and through the bare [`Machine`] with `poll_timeout` after
//! every input; its read is answered with a stored row holding a live
//! token, so each first request is two inputs and leaves one held token.
//! Reported: time per link, bytes allocated per held link (a counting
//! global allocator), then — the clock moved past every token's expiry —
//! the bytes still allocated after enough further requests for one link
//! to let the machine sweep, and the slowest of those requests.
//!
//! Not criterion: one run at a million links takes seconds, and the
//! quadratic code this replaced took minutes at a hundred thousand, so a
//! few timed runs say as much as a statistical sampler would, and the
//! memory figures need the allocator below anyway.
//!
//! `BATON_LINKS=10000,100000` chooses the sizes (default 10k, 100k, 1M);
//! `BATON_LINKS_RUNS` the runs per size (default 3; the best is reported).

use std::alloc::System;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cap::Cap;

use baton_core::driver::{Answer, Coordinator, Reply, Runtime, Work};
use baton_core::{
    AccessGrant, AccessToken, Config, Effect, Input, LinkId, Machine, OwnerId, RefreshMachine,
    RefreshToken, StoredLink, Timestamp,
};

/// `System`, counting the bytes currently allocated.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

fn live_bytes() -> usize {
    ALLOCATOR.allocated()
}

const START: Timestamp = Timestamp::from_millis(1_000_000);
const TOKEN_LIFE: Duration = Duration::from_secs(3600);

fn config(links: usize) -> Config {
    Config::builder(OwnerId::new("bench"))
        // Every link stays held, so memory per held link is measured at
        // full size. (Removed for the run on the code before issue 17.)
        .max_held_links(links)
        .build()
        .unwrap()
}

/// The `i`th link, built afresh as a caller would: the machine's copy is
/// then the only one, and its bytes count as the machine's.
fn link(i: usize) -> LinkId {
    LinkId::new("github", format!("user-{i:08}"))
}

/// Requests in a row after expiry that free nothing before the bench
/// takes memory to be back where it will stay (the code before issue 17
/// never frees it).
const FRUITLESS_SWEEP_REQUESTS: usize = 16;

/// The row every read finds: a token live for an hour from `now`.
fn row(now: Timestamp) -> StoredLink {
    StoredLink {
        access: Some(AccessGrant {
            token: AccessToken::new("gho_bench_access_token"),
            expires_at: now + TOKEN_LIFE,
            lifetime: None,
        }),
        refresh_token: Some(RefreshToken::new("ghr_bench_refresh_token")),
        failure: None,
        lease: None,
    }
}

/// The store's answer to a read; nothing else is asked in this workload.
fn answer(effect: &Effect, now: Timestamp) -> Input {
    match effect {
        Effect::ReadLink { id, .. } => Input::LinkRead {
            id: *id,
            row: Some(row(now)),
        },
        other => panic!("unexpected effect {other:?}"),
    }
}

/// A runtime with a settable clock that queues work for the bench loop to
/// carry out, and checks every answer is a token.
struct Queue {
    now: AtomicU64,
    work: Mutex<VecDeque<Box<dyn FnOnce() + Send>>>,
}

struct MustBeToken;

impl Reply for MustBeToken {
    fn send(self, answer: Answer) {
        assert!(answer.is_ok(), "{answer:?}");
    }
}

impl Runtime for Queue {
    type Lock<T: Send + 'static> = Mutex<T>;
    type Reply = MustBeToken;

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now.load(Ordering::Relaxed))
    }

    fn spawn_work<M: RefreshMachine + Send + 'static>(&self, work: Work<Self, M>) {
        self.work.lock().unwrap().push_back(Box::new(move || {
            let now = work.coordinator().runtime().now();
            let input = answer(work.effect(), now);
            work.finish(input);
        }));
    }

    fn wake_at<M: RefreshMachine + Send + 'static>(
        &self,
        _at: Timestamp,
        _coordinator: Arc<Coordinator<Self, M>>,
    ) {
        unreachable!("nothing in this workload waits on time")
    }
}

type Coord = Coordinator<Queue, Machine>;

/// One request through the coordinator, carried out to its answer.
fn request(coordinator: &Arc<Coord>, link: LinkId) {
    let ticket = coordinator.request(link, MustBeToken);
    loop {
        let next = coordinator.runtime().work.lock().unwrap().pop_front();
        match next {
            Some(work) => work(),
            None => break,
        }
    }
    ticket.answered();
}

struct Figures {
    per_link: Duration,
    bytes_per_link: f64,
    bytes_after_expiry: isize,
    sweep_requests: usize,
    mean_sweep_request: Duration,
    slowest_sweep_request: Duration,
}

fn through_coordinator(n: usize) -> Figures {
    let before = live_bytes();
    let runtime = Queue {
        now: AtomicU64::new(START.as_millis()),
        work: Mutex::new(VecDeque::new()),
    };
    let coordinator = Coordinator::new(runtime, Machine::new(config(n)));
    let empty = live_bytes();
    let started = Instant::now();
    for i in 0..n {
        request(&coordinator, link(i));
    }
    let per_link = started.elapsed() / n as u32;
    let bytes_per_link = (live_bytes() - empty) as f64 / n as f64;

    // Every token has expired; requests for one link (a new token each
    // hour) give the machine inputs to sweep at, until memory stops
    // coming back.
    let later = START + TOKEN_LIFE + TOKEN_LIFE;
    coordinator
        .runtime()
        .now
        .store(later.as_millis(), Ordering::Relaxed);
    let mut sweep_requests = 0;
    let mut slowest_sweep_request = Duration::ZERO;
    let mut sweep_time = Duration::ZERO;
    let mut fruitless = 0;
    while fruitless < FRUITLESS_SWEEP_REQUESTS {
        let bytes = live_bytes();
        let started = Instant::now();
        request(&coordinator, link(0));
        let took = started.elapsed();
        sweep_time += took;
        slowest_sweep_request = slowest_sweep_request.max(took);
        sweep_requests += 1;
        // Counted in the figures: they ran the sweep's check too.
        fruitless = if live_bytes() < bytes {
            0
        } else {
            fruitless + 1
        };
    }
    let bytes_after_expiry = live_bytes() as isize - empty as isize;
    let mean_sweep_request = sweep_time / sweep_requests.max(1) as u32;
    drop(coordinator);
    assert!(
        live_bytes() <= before + (64 << 10),
        "the coordinator leaked"
    );
    Figures {
        per_link,
        bytes_per_link,
        bytes_after_expiry,
        sweep_requests,
        mean_sweep_request,
        slowest_sweep_request,
    }
}

/// The bare machine, polled for its timeout after every input as the
/// coordinator does.
fn machine_alone(n: usize) -> Duration {
    let mut machine = Machine::new(config(n));
    let now = START;
    let mut timeouts = 0;
    let started = Instant::now();
    for i in 0..n {
        let caller = baton_core::CallerId(i as u64);
        let mut inputs = vec![Input::TokenRequested {
            caller,
            link: link(i),
        }];
        while let Some(input) = inputs.pop() {
            machine.handle_input(now, input).unwrap();
            while let Some(effect) = machine.poll_output() {
                if !matches!(effect, Effect::Answer { .. }) {
                    inputs.push(answer(&effect, now));
                }
            }
            timeouts += usize::from(machine.poll_timeout().is_some());
        }
    }
    assert_eq!(timeouts, 0);
    started.elapsed() / n as u32
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name).map_or_else(
        |_| default.to_vec(),
        |v| v.split(',').map(|n| n.trim().parse().unwrap()).collect(),
    )
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments.
    let sizes = env_list("BATON_LINKS", &[10_000, 100_000, 1_000_000]);
    let runs = env_list("BATON_LINKS_RUNS", &[3])[0].max(1);
    println!(
        "{:>9}  {:>14}  {:>14}  {:>15}  {:>18}  {:>14}  {:>14}  {:>14}",
        "links",
        "coordinator",
        "machine alone",
        "bytes/held link",
        "bytes after expiry",
        "sweep requests",
        "their mean",
        "slowest of them"
    );
    for n in sizes {
        let mut best: Option<Figures> = None;
        let mut alone = Duration::MAX;
        for _ in 0..runs {
            let f = through_coordinator(n);
            if best.as_ref().is_none_or(|b| f.per_link < b.per_link) {
                best = Some(f);
            }
            alone = alone.min(machine_alone(n));
        }
        let f = best.expect("at least one run");
        println!(
            "{n:>9}  {:>11.2} µs  {:>11.2} µs  {:>15.0}  {:>18}  {:>14}  {:>11.1} µs  {:>11.1} µs",
            f.per_link.as_secs_f64() * 1e6,
            alone.as_secs_f64() * 1e6,
            f.bytes_per_link,
            f.bytes_after_expiry,
            f.sweep_requests,
            f.mean_sweep_request.as_secs_f64() * 1e6,
            f.slowest_sweep_request.as_secs_f64() * 1e6,
        );
    }
}
