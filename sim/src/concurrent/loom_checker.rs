//! loom: every interleaving of the coordinator's synchronisation — its
//! lock, the answer slots, the hand-off of work — within a preemption
//! bound, for a scenario small enough for loom's five threads.

use crate::concurrent::{run_checker, ThreadPlan, ThreadViolation, LOOM_MAX_THREADS};
use crate::invariants::Invariant as NamedInvariant;

checker_runtime!(loom);

/// How far loom searches.
#[derive(Clone, Copy, Debug)]
pub struct LoomOptions {
    /// At most this many preemptions per execution; loom explores every
    /// schedule that has no more. `None` is unbounded (exhaustive).
    pub preemption_bound: Option<usize>,
    /// Branches per execution before loom gives up on it.
    pub max_branches: usize,
}

impl Default for LoomOptions {
    fn default() -> Self {
        LoomOptions {
            preemption_bound: Some(2),
            max_branches: 10_000,
        }
    }
}

/// What a loom run found.
#[derive(Clone, Debug)]
pub struct LoomReport {
    /// Executions run (each one complete schedule).
    pub executions: u64,
    /// The first broken invariant, if any.
    pub violation: Option<ThreadViolation>,
}

/// Lays `spec` out for loom, or says why loom does not apply. One worker
/// thread: waiting callers carry out effects too, and every extra thread
/// multiplies loom's schedules.
pub fn plan(spec: &crate::spec::WorldSpec) -> Result<ThreadPlan, String> {
    ThreadPlan::new(spec, LOOM_MAX_THREADS, 1)
}

/// Runs every execution of `plan` within `options`, judging each with
/// `invariants`; stops at the first violation.
pub fn check(plan: &ThreadPlan, invariants: &[NamedInvariant], options: LoomOptions) -> LoomReport {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = options.preemption_bound;
    builder.max_branches = options.max_branches;
    builder.max_threads = LOOM_MAX_THREADS;
    builder.checkpoint_file = None;
    let run = run_checker(plan, invariants, on_checker::execute, |body| {
        builder.check(body)
    });
    let violation = match (run.outcome, run.found) {
        (_, Some(violation)) => Some(violation),
        (Ok(()), None) => None,
        // loom itself stopped the run: a deadlock (a caller waits forever)
        // or a model it could not finish.
        (Err(payload), None) => Some(ThreadViolation {
            invariant: NamedInvariant::CallersServed,
            reason: format!("loom stopped the execution: {}", panic_text(&payload)),
            log: Vec::new(),
        }),
    };
    let executions = run.executions;
    LoomReport {
        executions,
        violation,
    }
}

/// The text of a panic payload.
pub fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}
