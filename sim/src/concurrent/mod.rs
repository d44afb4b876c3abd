//! The production [`Coordinator`](baton_core::driver::Coordinator) on a
//! checker's threads: loom (every interleaving within a preemption bound)
//! and shuttle (random, PCT and exhaustive schedules).
//!
//! What runs is the very coordinator the tokio `Refresher` runs, with the
//! scenario's machines (baton's or a zoo model's) inside. Only the
//! [`Runtime`](baton_core::driver::Runtime) differs: the checker's mutex
//! and condition variable, a one-shot answer slot built from them, and a
//! small pool of worker threads that carry out effects against the
//! in-memory store and fake provider. Waiting callers carry out queued
//! effects too, as the executor threads of a real runtime do; the workers
//! are what finishes a refresh once every caller has gone. The runtime is written once
//! ([`checker_runtime!`]) and instantiated for each checker's primitives.
//!
//! Time passes only when no effect is being carried out or waiting to be:
//! then the earliest timer fires and the clock jumps to it. That is the
//! explorer's rule (time passing under an in-flight call is a stall, a
//! fault) — without it a checker would report "a lease expired under a
//! slow exchange" as a bug of every algorithm.
//!
//! Each execution ends with the named invariants of [`crate::invariants`]
//! judging its end state ([`EndState`]); answers are judged as they arrive
//! with [`judge_answer`](crate::invariants::judge_answer), exactly as the
//! explorer judges them.

use baton_core::{LinkId, RefreshToken, Timestamp};
use baton_fakes::{FakeProvider, InMemoryStore};

use crate::invariants::{CallerView, Invariant, Moment, Observed};
use crate::spec::WorldSpec;
use crate::world::{BadAnswer, FaultsUsed, World};

#[macro_use]
mod runtime;

pub mod loom_checker;
pub mod shuttle_checker;

/// The most threads a loom execution may have (loom's own limit).
pub const LOOM_MAX_THREADS: usize = 5;

/// How one execution of a scenario is laid out on threads.
#[derive(Clone, Debug)]
pub struct ThreadPlan {
    /// The scenario's world.
    pub spec: WorldSpec,
    /// For each caller thread: its replica and link index.
    pub callers: Vec<(u8, u8)>,
    /// Worker threads carrying out effects.
    pub workers: usize,
    /// Whether the first caller withdraws its first request at once.
    pub cancel_first: bool,
    /// Every answer to this caller is lost on its way, so the caller waits
    /// forever: a hang of the harness's making, to test that a hang ends
    /// in a verdict. Never set by a scenario.
    pub lose_answers_to: Option<usize>,
}

impl ThreadPlan {
    /// Lays `spec` out on threads, or says why a thread checker does not
    /// apply to it (faults only the explorer can inject).
    pub fn new(
        spec: &WorldSpec,
        max_threads: usize,
        max_workers: usize,
    ) -> Result<ThreadPlan, String> {
        let f = &spec.faults;
        let unsupported = [
            (f.crashes, "crashes"),
            (f.store_write_failures, "store write failures"),
            (f.store_read_failures, "store read failures"),
            (f.rate_limits, "rate limits"),
            (f.transients, "transient errors"),
            (f.lost_replies, "lost replies"),
            (f.gateway_after_forwarding, "gateway 502s after forwarding"),
            (f.gateway_before_arrival, "gateway 504s before arrival"),
            (
                f.gateway_without_forwarding,
                "gateway 503s without forwarding",
            ),
            (f.timeouts, "timeouts"),
            (f.validation_failures, "validation failures"),
            (f.clock_jumps, "clock jumps (stalls)"),
            (f.relinks, "re-links"),
            (f.unlinks, "unlinks"),
            (f.revocations, "revocations"),
        ];
        if spec.fleet.iter().any(Option::is_some) {
            return Err("runs a mixed fleet, which only the explorer models".into());
        }
        if let Some((_, what)) = unsupported.iter().find(|(n, _)| *n > 0) {
            return Err(format!(
                "injects {what}, which only the explorer's adversary can place"
            ));
        }
        let callers: Vec<(u8, u8)> = (0..spec.replicas)
            .flat_map(|r| (0..spec.callers).map(move |c| (r, c % spec.links.max(1))))
            .collect();
        // The main thread, the callers, and at least one worker.
        if callers.len() + 2 > max_threads {
            return Err(format!(
                "needs {} caller threads; at most {} fit beside the main and a worker thread",
                callers.len(),
                max_threads - 2
            ));
        }
        // Callers carry out queued work while they wait (as the executor
        // threads of a real runtime do), so a second worker only adds
        // concurrency where callers are few.
        let workers = (max_threads - 1 - callers.len()).min(max_workers);
        Ok(ThreadPlan {
            spec: spec.clone(),
            callers,
            workers,
            cancel_first: f.cancels > 0,
            lose_answers_to: None,
        })
    }
}

/// One caller thread's record.
#[derive(Clone, Debug, Default)]
pub struct CallerRecord {
    /// The link it asked for.
    pub link: u8,
    /// Its first bad answer.
    pub bad: Option<BadAnswer>,
    /// Answers received.
    pub answers: u32,
}

/// The state of the world when an execution ended: what the invariants
/// judge.
#[derive(Clone, Debug)]
pub struct EndState {
    /// The links.
    pub links: Vec<LinkId>,
    /// The store.
    pub store: InMemoryStore,
    /// The provider.
    pub provider: FakeProvider,
    /// The clock.
    pub now: Timestamp,
    /// The callers.
    pub callers: Vec<CallerRecord>,
    /// The faults used.
    pub faults: FaultsUsed,
    /// Two exchanges of one link in flight at once in one replica, if that
    /// happened.
    pub double_flight: Option<String>,
    /// A readable account of the execution.
    pub log: Vec<String>,
}

impl Observed for EndState {
    fn links(&self) -> &[LinkId] {
        &self.links
    }
    fn provider(&self) -> &FakeProvider {
        &self.provider
    }
    fn store(&self) -> &InMemoryStore {
        &self.store
    }
    fn now(&self) -> Timestamp {
        self.now
    }
    fn awaited_exchanges(&self) -> impl Iterator<Item = ((u8, u32), &LinkId)> {
        std::iter::empty()
    }
    fn callers(&self) -> impl Iterator<Item = CallerView<'_>> {
        self.callers.iter().map(|c| CallerView {
            link: &self.links[usize::from(c.link)],
            bad: c.bad.as_ref(),
            waiting: false,
        })
    }
    fn faults(&self) -> &FaultsUsed {
        &self.faults
    }
    fn known_live(&self, link: &LinkId) -> Vec<RefreshToken> {
        self.provider.live_refresh_tokens(link)
    }
    fn can_progress(&self, _spec: &WorldSpec) -> bool {
        false
    }
    fn quiescent(&self) -> bool {
        true
    }
}

/// A broken invariant found by a thread checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadViolation {
    /// Which invariant.
    pub invariant: Invariant,
    /// Why.
    pub reason: String,
    /// The execution, step by step.
    pub log: Vec<String>,
}

impl std::fmt::Display for ThreadViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} violated: {}", self.invariant, self.reason)?;
        for (i, line) in self.log.iter().enumerate() {
            writeln!(f, "  {:>3}  {line}", i + 1)?;
        }
        Ok(())
    }
}

impl EndState {
    /// Judges the end of an execution with the scenario's invariants.
    pub fn judge(&self, spec: &WorldSpec, invariants: &[Invariant]) -> Result<(), ThreadViolation> {
        let violation = |invariant, reason| ThreadViolation {
            invariant,
            reason,
            log: self.log.clone(),
        };
        if let Some(reason) = &self.double_flight {
            if invariants.contains(&Invariant::SingleFlight) {
                return Err(violation(Invariant::SingleFlight, reason.clone()));
            }
        }
        for &invariant in invariants {
            invariant
                .check(self, spec, Moment::Settled)
                .map_err(|reason| violation(invariant, reason))?;
        }
        Ok(())
    }
}

/// The initial store, provider, links and clock of a scenario.
pub fn initial(
    spec: &WorldSpec,
) -> Result<(InMemoryStore, FakeProvider, Vec<LinkId>, Timestamp), String> {
    let world = World::initial(spec)?;
    Ok((
        std::sync::Arc::unwrap_or_clone(world.store).into_inner(),
        std::sync::Arc::unwrap_or_clone(world.provider).into_inner(),
        world.links.to_vec(),
        world.now,
    ))
}

/// Caps on a thread checker's search, enforced by the harness before each
/// execution starts, so it knows exactly whether a cap cut the search
/// short (loom checks its own caps only every 20,000 executions and
/// returns the same way whether it finished or not).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Caps {
    /// Start at most this many executions.
    pub max_executions: Option<u64>,
    /// Start no execution after this instant.
    pub deadline: Option<std::time::Instant>,
}

/// The unwinding payload that stops a search at a cap (raised with
/// `resume_unwind`, so no panic message is printed).
struct CapReached;

/// What one run of a thread checker produced.
pub(crate) struct CheckerRun<T> {
    /// Executions run to their end or to a violation (not counting one
    /// stopped at a cap before it began).
    pub executions: u64,
    /// Whether a cap stopped the search before the checker ran out of
    /// executions.
    pub capped: bool,
    /// The checker's own result, or the payload of the panic that ended it.
    pub outcome: std::thread::Result<T>,
    /// The first violation an execution reported.
    pub found: Option<ThreadViolation>,
}

/// Runs a thread checker: `drive` hands the checker the per-execution body,
/// which runs `execute` on `plan`, counts executions and, on a violation,
/// records it and panics (how loom and shuttle learn an execution failed).
/// Checkers keep global state, so one runs at a time in this process.
pub(crate) fn run_checker<T>(
    plan: &ThreadPlan,
    invariants: &[Invariant],
    execute: fn(&ThreadPlan, &[Invariant]) -> Result<(), ThreadViolation>,
    caps: Caps,
    drive: impl FnOnce(Box<dyn Fn() + Send + Sync>) -> T,
) -> CheckerRun<T> {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, PoisonError};

    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    static EXECUTIONS: AtomicU64 = AtomicU64::new(0);
    static FOUND: Mutex<Option<ThreadViolation>> = Mutex::new(None);
    static CAPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    EXECUTIONS.store(0, Ordering::SeqCst);
    CAPPED.store(false, Ordering::SeqCst);
    *FOUND.lock().unwrap_or_else(PoisonError::into_inner) = None;

    let plan = plan.clone();
    let invariants = invariants.to_vec();
    let body = Box::new(move || {
        // Stop before this execution creates any checker object: unwinding
        // an execution that has none is safe under every checker.
        let over_count = caps
            .max_executions
            .is_some_and(|max| EXECUTIONS.load(Ordering::SeqCst) >= max);
        let over_time = caps
            .deadline
            .is_some_and(|deadline| std::time::Instant::now() >= deadline);
        if over_count || over_time {
            CAPPED.store(true, Ordering::SeqCst);
            std::panic::resume_unwind(Box::new(CapReached));
        }
        EXECUTIONS.fetch_add(1, Ordering::SeqCst);
        if let Err(violation) = execute(&plan, &invariants) {
            let message = violation.to_string();
            *FOUND.lock().unwrap_or_else(PoisonError::into_inner) = Some(violation);
            panic!("{message}");
        }
    });
    let outcome = catch_unwind(AssertUnwindSafe(|| drive(body)));
    CheckerRun {
        executions: EXECUTIONS.load(Ordering::SeqCst),
        capped: CAPPED.load(Ordering::SeqCst),
        outcome,
        found: FOUND.lock().unwrap_or_else(PoisonError::into_inner).take(),
    }
}
