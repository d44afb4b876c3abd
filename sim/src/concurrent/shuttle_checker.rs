//! shuttle: random, PCT (probabilistic concurrency testing, with its
//! guarantee of finding a bug of depth d with probability at least
//! 1/(n·k^(d-1))) and depth-first schedules of the real coordinator, each
//! failure replayable from shuttle's schedule string.

use shuttle::scheduler::{DfsScheduler, PctScheduler, RandomScheduler, ReplayScheduler, Scheduler};
use shuttle::{Config, FailurePersistence, Runner};

use crate::concurrent::loom_checker::panic_text;
use crate::concurrent::{run_checker, ThreadPlan, ThreadViolation};
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
    let scheduler: Box<dyn Scheduler + Send> = match mode {
        ShuttleMode::Random { iterations, seed } => {
            Box::new(RandomScheduler::new_from_seed(*seed, *iterations))
        }
        ShuttleMode::Pct {
            iterations,
            depth,
            seed,
        } => Box::new(PctScheduler::new_from_seed(*seed, *depth, *iterations)),
        ShuttleMode::Dfs { max_iterations } => Box::new(DfsScheduler::new(*max_iterations, false)),
        ShuttleMode::Replay { schedule } => Box::new(ReplayScheduler::new_from_encoded(schedule)),
    };
    let run = run_checker(plan, invariants, on_checker::execute, |body| {
        Runner::new(scheduler, config).run(body)
    });
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
    ShuttleReport {
        executions,
        violation,
        schedule,
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
