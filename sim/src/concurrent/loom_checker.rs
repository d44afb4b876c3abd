//! loom: every interleaving of the coordinator's synchronisation — its
//! lock, the answer slots, the hand-off of work — within a preemption
//! bound, for a scenario small enough for loom's five threads.
//!
//! What a loom run covered is reported with its verdict ([`LoomReport::coverage`]):
//! every schedule within the preemption bound, unless a cap —
//! `LOOM_MAX_PERMUTATIONS` or `LOOM_MAX_DURATION` from the environment,
//! read as loom's own `Builder::new` reads them — cut the search short.
//! The harness enforces those caps itself, before each execution, so it
//! knows whether one was reached; loom checks them only every 20,000
//! executions and returns alike whether it finished or not.

use std::time::{Duration, Instant};

use crate::concurrent::{run_checker, Caps, ThreadPlan, ThreadViolation, LOOM_MAX_THREADS};
use crate::coverage::Coverage;
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
    /// Start no execution after this long (`LOOM_MAX_DURATION`, seconds).
    pub max_duration: Option<Duration>,
    /// Run at most this many executions (`LOOM_MAX_PERMUTATIONS`).
    pub max_permutations: Option<usize>,
}

impl Default for LoomOptions {
    /// Preemption bound 2 and the caps the environment sets, if any (an
    /// unparsable cap is left to loom's `Builder::new`, which refuses it;
    /// `baton check` reports it first, see [`EnvCaps::from_env`]).
    fn default() -> Self {
        let caps = EnvCaps::from_env().unwrap_or_default();
        LoomOptions {
            preemption_bound: Some(2),
            max_branches: 10_000,
            max_duration: caps.max_duration,
            max_permutations: caps.max_permutations,
        }
    }
}

/// The caps loom's `Builder::new` would read from the environment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvCaps {
    /// `LOOM_MAX_DURATION`, in whole seconds as loom parses it.
    pub max_duration: Option<Duration>,
    /// `LOOM_MAX_PERMUTATIONS`.
    pub max_permutations: Option<usize>,
}

impl EnvCaps {
    /// The caps the process environment sets.
    pub fn from_env() -> Result<EnvCaps, String> {
        EnvCaps::from_lookup(|name| std::env::var(name).ok())
    }

    /// The caps `lookup` (a variable's value by name) sets; an unparsable
    /// value is an error, as it is for loom.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<EnvCaps, String> {
        fn parse<T: std::str::FromStr>(
            name: &str,
            value: Option<String>,
        ) -> Result<Option<T>, String> {
            value
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| format!("invalid value for `{name}`: {v:?}"))
                })
                .transpose()
        }
        Ok(EnvCaps {
            max_duration: parse::<u64>("LOOM_MAX_DURATION", lookup("LOOM_MAX_DURATION"))?
                .map(Duration::from_secs),
            max_permutations: parse("LOOM_MAX_PERMUTATIONS", lookup("LOOM_MAX_PERMUTATIONS"))?,
        })
    }
}

/// What a loom run found.
#[derive(Clone, Debug)]
pub struct LoomReport {
    /// Executions run (each one complete schedule).
    pub executions: u64,
    /// The first broken invariant, if any.
    pub violation: Option<ThreadViolation>,
    /// Why loom stopped without a verdict, if it did (it gave up on an
    /// execution, or the execution ended in a panic that is no invariant).
    pub inconclusive: Option<String>,
    /// How much of the space the run covered.
    pub coverage: Coverage,
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
    // The caps are the harness's to enforce (see the module docs); loom's
    // own coarse check of them would only make the count less exact.
    builder.max_duration = None;
    builder.max_permutations = None;
    let started = Instant::now();
    let caps = Caps {
        max_executions: options.max_permutations.map(|n| n as u64),
        deadline: options.max_duration.map(|d| started + d),
    };
    let run = run_checker(plan, invariants, on_checker::execute, caps, |body| {
        builder.check(body)
    });
    let mut inconclusive = None;
    let violation = match (run.outcome, run.found) {
        (_, Some(violation)) => Some(violation),
        (Ok(()), None) => None,
        // A cap stopped the search: no verdict beyond "nothing found so far".
        (Err(_), None) if run.capped => None,
        (Err(payload), None) => {
            let text = panic_text(&payload);
            if text.contains("deadlock") {
                // loom saw every thread blocked: a caller waits forever.
                Some(ThreadViolation {
                    invariant: NamedInvariant::CallersServed,
                    reason: format!("loom found a deadlock: {}", first_line(&text)),
                    log: Vec::new(),
                })
            } else {
                // loom gave up on an execution (more branches than
                // `max_branches`: a spin or an endless loop), or something
                // panicked that is not an invariant: no verdict either way.
                inconclusive = Some(format!("loom stopped the search: {}", first_line(&text)));
                None
            }
        }
    };
    let coverage = coverage(&options, run.executions, run.capped, started.elapsed());
    LoomReport {
        executions: run.executions,
        violation,
        inconclusive,
        coverage,
    }
}

/// What a loom search covered: every schedule within the preemption bound
/// (every schedule, with no bound), unless a cap was set. With a cap set
/// the verdict is bounded by it even when the search finished first —
/// another machine, slower, would have stopped — and the detail says
/// whether it was reached.
pub fn coverage(
    options: &LoomOptions,
    executions: u64,
    capped: bool,
    elapsed: Duration,
) -> Coverage {
    let mut detail = match options.preemption_bound {
        Some(bound) => format!("loom, preemption bound {bound}"),
        None => "loom, every interleaving".to_string(),
    };
    let mut caps = Vec::new();
    if let Some(max) = options.max_permutations {
        caps.push(format!("LOOM_MAX_PERMUTATIONS={max}"));
    }
    if let Some(max) = options.max_duration {
        caps.push(format!("LOOM_MAX_DURATION={}", max.as_secs()));
    }
    if caps.is_empty() {
        return match options.preemption_bound {
            Some(_) => Coverage::Bounded(format!("{detail} ({executions} executions)")),
            None => Coverage::Proof(format!("{detail} ({executions} executions)")),
        };
    }
    if capped {
        detail.push_str(&format!(
            "; {} reached: stopped after {executions} executions, {:.1}s — search incomplete",
            caps.join(", "),
            elapsed.as_secs_f64()
        ));
    } else {
        detail.push_str(&format!(
            "; {} set, not reached ({executions} executions)",
            caps.join(", ")
        ));
    }
    Coverage::Bounded(detail)
}

/// The first line of a panic message.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// The text of a panic payload.
pub fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_read_as_loom_reads_them() {
        let caps = EnvCaps::from_lookup(|name| match name {
            "LOOM_MAX_DURATION" => Some("30".into()),
            "LOOM_MAX_PERMUTATIONS" => Some("1000".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(caps.max_duration, Some(Duration::from_secs(30)));
        assert_eq!(caps.max_permutations, Some(1000));
        assert_eq!(EnvCaps::from_lookup(|_| None).unwrap(), EnvCaps::default());
        assert!(EnvCaps::from_lookup(|_| Some("soon".into())).is_err());
    }

    #[test]
    fn a_cap_makes_the_verdict_bounded_and_says_whether_it_was_reached() {
        let options = LoomOptions {
            preemption_bound: None,
            max_branches: 10_000,
            max_duration: Some(Duration::from_secs(5)),
            max_permutations: None,
        };
        let reached = coverage(&options, 40, true, Duration::from_secs(5));
        assert!(!reached.is_proof(), "{reached}");
        assert!(
            reached.detail().contains("LOOM_MAX_DURATION=5 reached"),
            "{reached}"
        );
        let unreached = coverage(&options, 40, false, Duration::from_secs(1));
        assert!(matches!(unreached, Coverage::Bounded(_)), "{unreached}");
        assert!(unreached.detail().contains("not reached"), "{unreached}");
        let uncapped = LoomOptions {
            max_duration: None,
            ..options
        };
        assert!(coverage(&uncapped, 40, false, Duration::ZERO).is_proof());
    }
}
