//! shuttle: random, PCT (probabilistic concurrency testing, with its
//! guarantee of finding a bug of depth d with probability at least
//! 1/(n·k^(d-1))) and depth-first schedules of the real coordinator, each
//! failure replayable from shuttle's schedule string.
//!
//! Each run reports what it covered: PCT and random runs are samples; a
//! depth-first run either exhausted every schedule of the thread layout
//! (reported as a proof — for shuttle's model: these threads, sequentially
//! consistent, preempted only at the checker's synchronisation points) or
//! stopped at its cap (bounded). shuttle's `DfsScheduler` answers "no more
//! executions" alike in both cases, so the cap is enforced here
//! ([`CountedDfs`]) and the scheduler asked once more when it is reached.

use std::sync::{Arc, Mutex, PoisonError};

use shuttle::scheduler::{
    DfsScheduler, PctScheduler, RandomScheduler, ReplayScheduler, Schedule, Scheduler, Task, TaskId,
};
use shuttle::{Config, FailurePersistence, Runner};

use crate::coverage::Coverage;

use crate::concurrent::loom_checker::panic_text;
use crate::concurrent::{run_checker, Caps, ThreadPlan, ThreadViolation};
use crate::invariants::Invariant as NamedInvariant;

checker_runtime!(shuttle);

/// Threads shuttle may run (it has no hard limit; this keeps worlds small).
pub const SHUTTLE_MAX_THREADS: usize = 12;

/// Which schedules shuttle tries.
#[derive(Clone, Debug)]
pub enum ShuttleMode {
    /// Uniformly random scheduling decisions.
    Random {
        /// Executions.
        iterations: usize,
        /// Seed, for a reproducible run.
        seed: u64,
    },
    /// Probabilistic concurrency testing with bug depth `depth`.
    Pct {
        /// Executions.
        iterations: usize,
        /// The bug depth PCT targets.
        depth: usize,
        /// Seed, for a reproducible run.
        seed: u64,
    },
    /// Every schedule, depth first, up to a number of executions.
    Dfs {
        /// Stop after this many executions (`None`: all of them).
        max_iterations: Option<usize>,
    },
    /// Exactly the schedule a failure printed.
    Replay {
        /// shuttle's encoded schedule.
        schedule: String,
    },
}

/// What a shuttle run found.
#[derive(Clone, Debug)]
pub struct ShuttleReport {
    /// Executions run.
    pub executions: u64,
    /// The first broken invariant, if any.
    pub violation: Option<ThreadViolation>,
    /// The failing schedule, to hand to [`ShuttleMode::Replay`].
    pub schedule: Option<String>,
    /// What the run covered.
    pub coverage: Coverage,
}

/// How a depth-first run ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct DfsEnd {
    /// Executions started.
    started: usize,
    /// The scheduler had no schedule left: the space is exhausted.
    exhausted: bool,
}

/// shuttle's depth-first scheduler, uncapped, with the cap enforced here so
/// that the end of the run tells an exhausted space from a reached cap.
struct CountedDfs {
    inner: DfsScheduler,
    cap: Option<usize>,
    end: Arc<Mutex<DfsEnd>>,
}

impl CountedDfs {
    fn new(cap: Option<usize>) -> (CountedDfs, Arc<Mutex<DfsEnd>>) {
        let end = Arc::new(Mutex::new(DfsEnd::default()));
        let dfs = CountedDfs {
            inner: DfsScheduler::new(None, false),
            cap,
            end: Arc::clone(&end),
        };
        (dfs, end)
    }
}

impl Scheduler for CountedDfs {
    fn new_execution(&mut self) -> Option<Schedule> {
        let mut end = self.end.lock().unwrap_or_else(PoisonError::into_inner);
        // Asked even at the cap: a space of exactly `cap` schedules is
        // exhausted, not capped. The schedule it may start is never run.
        let next = self.inner.new_execution();
        let at_cap = self.cap.is_some_and(|cap| end.started >= cap);
        match next {
            None => {
                end.exhausted = true;
                None
            }
            Some(_) if at_cap => None,
            Some(schedule) => {
                end.started += 1;
                Some(schedule)
            }
        }
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        self.inner.next_task(runnable, current, is_yielding)
    }

    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
}

/// Lays `spec` out for shuttle, or says why shuttle does not apply.
pub fn plan(spec: &crate::spec::WorldSpec) -> Result<ThreadPlan, String> {
    ThreadPlan::new(spec, SHUTTLE_MAX_THREADS, 2)
}

/// Runs `plan` under `mode`, judging each execution with `invariants`;
/// stops at the first violation.
pub fn check(
    plan: &ThreadPlan,
    invariants: &[NamedInvariant],
    mode: &ShuttleMode,
) -> ShuttleReport {
    let mut config = Config::new();
    config.stack_size = 1 << 20;
    config.failure_persistence = FailurePersistence::Print;
    config.silence_warnings = true;
    let mut dfs_end = None;
    let scheduler: Box<dyn Scheduler + Send> = match mode {
        ShuttleMode::Random { iterations, seed } => {
            Box::new(RandomScheduler::new_from_seed(*seed, *iterations))
        }
        ShuttleMode::Pct {
            iterations,
            depth,
            seed,
        } => Box::new(PctScheduler::new_from_seed(*seed, *depth, *iterations)),
        ShuttleMode::Dfs { max_iterations } => {
            let (dfs, end) = CountedDfs::new(*max_iterations);
            dfs_end = Some(end);
            Box::new(dfs)
        }
        ShuttleMode::Replay { schedule } => Box::new(ReplayScheduler::new_from_encoded(schedule)),
    };
    let run = run_checker(
        plan,
        invariants,
        on_checker::execute,
        Caps::default(),
        |body| Runner::new(scheduler, config).run(body),
    );
    let (executions, found) = (run.executions, run.found);
    let (violation, schedule) = match run.outcome {
        Ok(_) => (found, None),
        Err(payload) => {
            let text = panic_text(&payload);
            let schedule = schedule_of(&text);
            let violation = found.unwrap_or_else(|| ThreadViolation {
                invariant: NamedInvariant::CallersServed,
                reason: format!("shuttle stopped the execution: {}", first_line(&text)),
                log: Vec::new(),
            });
            (Some(violation), schedule)
        }
    };
    let dfs_end = dfs_end.map(|end| *end.lock().unwrap_or_else(PoisonError::into_inner));
    ShuttleReport {
        executions,
        violation,
        schedule,
        coverage: coverage(mode, executions, dfs_end),
    }
}

/// What one shuttle run covered.
fn coverage(mode: &ShuttleMode, executions: u64, dfs_end: Option<DfsEnd>) -> Coverage {
    match mode {
        ShuttleMode::Random { seed, .. } => Coverage::Sampled(format!(
            "shuttle random: {executions} schedules, seed {seed}"
        )),
        ShuttleMode::Pct { depth, seed, .. } => Coverage::Sampled(format!(
            "shuttle PCT depth {depth}: {executions} schedules, seed {seed}"
        )),
        ShuttleMode::Replay { .. } => {
            Coverage::Sampled("shuttle: one replayed schedule".to_string())
        }
        ShuttleMode::Dfs { max_iterations } => match dfs_end {
            Some(end) if end.exhausted => Coverage::Proof(format!(
                "shuttle DFS exhausted {executions} schedules of this thread layout"
            )),
            // Stopped at a violation or at the cap: only a prefix of the
            // depth-first order was run.
            _ => Coverage::Bounded(match max_iterations {
                Some(cap) if executions >= *cap as u64 => {
                    format!("shuttle DFS: cap of {cap} schedules reached, space not exhausted")
                }
                _ => format!("shuttle DFS: first {executions} schedules"),
            }),
        },
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Pulls the encoded schedule out of shuttle's failure message.
fn schedule_of(text: &str) -> Option<String> {
    let start = text.find("failing schedule:")?;
    let rest = &text[start..];
    let open = rest.find('"')? + 1;
    let close = rest[open..].find('"')? + open;
    let schedule = rest[open..close].trim();
    (!schedule.is_empty()).then(|| schedule.to_string())
}
