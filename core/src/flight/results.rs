//! What result each step of a flight awaits: the check that refuses a
//! driver's mismatched input before anything changes, and the reading of a
//! store write's result.

use crate::flight::Step;
use crate::io::Input;
use crate::row::CasOutcome;

/// A store write's result, or why the store failed.
pub(crate) fn cas_outcome(input: Input) -> Result<CasOutcome, String> {
    match input {
        Input::CompareAndSwapWon { row, .. } => Ok(CasOutcome::Won(row)),
        Input::CompareAndSwapLost { row, .. } => Ok(CasOutcome::Lost(row)),
        Input::StoreFailed { failure, .. } => Err(failure.reason),
        other => unreachable!("check_fits admitted {other:?} for a write"),
    }
}

/// Whether `input` is a result the step can take; if not, what it awaits.
pub(crate) fn check_fits(step: &Step, input: &Input) -> Result<(), &'static str> {
    let fits = match step {
        Step::Reading { .. } => matches!(input, Input::LinkRead { .. } | Input::StoreFailed { .. }),
        Step::TakingLease { .. } | Step::Persisting { .. } | Step::Settling { .. } => matches!(
            input,
            Input::CompareAndSwapWon { .. }
                | Input::CompareAndSwapLost { .. }
                | Input::StoreFailed { .. }
        ),
        Step::Exchanging { .. } => matches!(input, Input::ExchangeFinished { .. }),
        Step::Validating { .. } => matches!(input, Input::ValidationFinished { .. }),
        Step::Waiting { .. } => false,
    };
    if fits {
        return Ok(());
    }
    Err(match step {
        Step::Reading { .. } => "a read result",
        Step::TakingLease { .. } | Step::Persisting { .. } | Step::Settling { .. } => {
            "a compare-and-swap result"
        }
        Step::Exchanging { .. } => "an exchange result",
        Step::Validating { .. } => "a validation result",
        Step::Waiting { .. } => "a timer",
    })
}
