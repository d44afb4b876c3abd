//! Names for where a link's refresh stands ([`Stage`]) and for the kind of
//! input that reaches it ([`InputKind`]), so that a checker can report which
//! of the machine's decisions its runs exercised: coverage of (input ×
//! stage) pairs, not of lines. A pair no run reached is a decision no
//! checker has judged — a gap to close with a scenario before a bug finds
//! it.
//!
//! [`InputKind::meets`] says which pairs can happen at all: results reach
//! only the step awaiting them, timers only waiting flights, requests any
//! stage. A machine other than [`Machine`] may name its stages too (or not:
//! [`RefreshMachine::stage_for`](crate::RefreshMachine::stage_for) defaults
//! to `None`).

use crate::flight::{ReadPurpose, Step, Wake};
use crate::io::{ExchangeOutcome, Input, ValidationOutcome};
use crate::machine::Machine;
use crate::time::Timestamp;

/// Where a link's refresh stands in one process when an input arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// No refresh in flight; the process holds a live access token.
    HoldingLiveToken,
    /// No refresh in flight; the provider asked for quiet until later.
    QuietPeriod,
    /// No refresh in flight, nothing live held, no quiet period.
    Idle,
    /// Reading the row at the start of a refresh, or again while another
    /// replica holds the lease.
    ReadingFresh,
    /// Reading the row after the provider rejected our refresh token.
    ReadingAfterRejection,
    /// Reading the row after a lease write failed, to learn whether it
    /// landed.
    ReadingToResolveLease,
    /// Reading the row after a settling write failed, to settle against it.
    ReadingToRetrySettle,
    /// Waiting to re-read a row whose lease another replica holds.
    WaitingToReRead,
    /// Waiting to retry writing new tokens after a store failure.
    WaitingToRetryPersist,
    /// Waiting to read again whether a failed lease write landed, after
    /// that read failed too.
    WaitingToResolveLease,
    /// Waiting to read the row again after a settling write failed.
    WaitingToRetrySettle,
    /// Taking the refresh lease by compare-and-swap.
    TakingLease,
    /// The refresh token's first presentation is on its way.
    Exchanging,
    /// A second presentation of the same refresh token is on its way.
    ExchangingAgain,
    /// Writing the new tokens by compare-and-swap.
    Persisting,
    /// Asking the API whether a stored access token still works.
    Validating,
    /// Recording what was learned (a failure, a release of the lease).
    Settling,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 17] = [
        Stage::HoldingLiveToken,
        Stage::QuietPeriod,
        Stage::Idle,
        Stage::ReadingFresh,
        Stage::ReadingAfterRejection,
        Stage::ReadingToResolveLease,
        Stage::ReadingToRetrySettle,
        Stage::WaitingToReRead,
        Stage::WaitingToRetryPersist,
        Stage::WaitingToResolveLease,
        Stage::WaitingToRetrySettle,
        Stage::TakingLease,
        Stage::Exchanging,
        Stage::ExchangingAgain,
        Stage::Persisting,
        Stage::Validating,
        Stage::Settling,
    ];

    /// Whether a refresh is in flight at this stage.
    pub fn in_flight(self) -> bool {
        !matches!(
            self,
            Stage::HoldingLiveToken | Stage::QuietPeriod | Stage::Idle
        )
    }

    fn of_step(step: &Step) -> Stage {
        match step {
            Step::Reading { purpose, .. } => match purpose {
                ReadPurpose::Fresh => Stage::ReadingFresh,
                ReadPurpose::AfterRejection { .. } => Stage::ReadingAfterRejection,
                ReadPurpose::ResolveLease { .. } => Stage::ReadingToResolveLease,
                ReadPurpose::RetrySettle(_) => Stage::ReadingToRetrySettle,
            },
            Step::Waiting { then, .. } => match then {
                Wake::ReRead => Stage::WaitingToReRead,
                Wake::RetryPersist(_) => Stage::WaitingToRetryPersist,
                Wake::ResolveLease { .. } => Stage::WaitingToResolveLease,
                Wake::RetrySettle(_) => Stage::WaitingToRetrySettle,
            },
            Step::TakingLease { .. } => Stage::TakingLease,
            Step::Exchanging { exchange, .. } if exchange.presentations > 1 => {
                Stage::ExchangingAgain
            }
            Step::Exchanging { .. } => Stage::Exchanging,
            Step::Persisting { .. } => Stage::Persisting,
            Step::Validating { .. } => Stage::Validating,
            Step::Settling { .. } => Stage::Settling,
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// What kind of [`Input`] arrived, with the outcome that decides what the
/// machine does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum InputKind {
    /// [`Input::TokenRequested`].
    TokenRequested,
    /// [`Input::CallerGone`].
    CallerGone,
    /// [`Input::TimerExpired`].
    TimerExpired,
    /// [`Input::LinkRead`] with a row.
    LinkRead,
    /// [`Input::LinkRead`] finding no row (the link was removed).
    LinkReadEmpty,
    /// [`Input::CompareAndSwapWon`].
    CompareAndSwapWon,
    /// [`Input::CompareAndSwapLost`] to a row that is still there.
    CompareAndSwapLost,
    /// [`Input::CompareAndSwapLost`] because the row is gone.
    CompareAndSwapLostRowGone,
    /// [`Input::StoreFailed`].
    StoreFailed,
    /// [`ExchangeOutcome::Issued`].
    ExchangeIssued,
    /// [`ExchangeOutcome::Rejected`].
    ExchangeRejected,
    /// [`ExchangeOutcome::RateLimited`].
    ExchangeRateLimited,
    /// [`ExchangeOutcome::Transient`].
    ExchangeTransient,
    /// [`ExchangeOutcome::ServerError`].
    ExchangeServerError,
    /// [`ExchangeOutcome::OutcomeUnknown`].
    ExchangeOutcomeUnknown,
    /// [`ValidationOutcome::Valid`].
    ValidationValid,
    /// [`ValidationOutcome::Invalid`].
    ValidationInvalid,
    /// [`ValidationOutcome::Inconclusive`].
    ValidationInconclusive,
}

impl InputKind {
    /// Every kind, in order.
    pub const ALL: [InputKind; 18] = [
        InputKind::TokenRequested,
        InputKind::CallerGone,
        InputKind::TimerExpired,
        InputKind::LinkRead,
        InputKind::LinkReadEmpty,
        InputKind::CompareAndSwapWon,
        InputKind::CompareAndSwapLost,
        InputKind::CompareAndSwapLostRowGone,
        InputKind::StoreFailed,
        InputKind::ExchangeIssued,
        InputKind::ExchangeRejected,
        InputKind::ExchangeRateLimited,
        InputKind::ExchangeTransient,
        InputKind::ExchangeServerError,
        InputKind::ExchangeOutcomeUnknown,
        InputKind::ValidationValid,
        InputKind::ValidationInvalid,
        InputKind::ValidationInconclusive,
    ];

    /// The kind of `input`.
    pub fn of(input: &Input) -> InputKind {
        match input {
            Input::TokenRequested { .. } => InputKind::TokenRequested,
            Input::CallerGone { .. } => InputKind::CallerGone,
            Input::TimerExpired => InputKind::TimerExpired,
            Input::LinkRead { row: Some(_), .. } => InputKind::LinkRead,
            Input::LinkRead { row: None, .. } => InputKind::LinkReadEmpty,
            Input::CompareAndSwapWon { .. } => InputKind::CompareAndSwapWon,
            Input::CompareAndSwapLost { row: Some(_), .. } => InputKind::CompareAndSwapLost,
            Input::CompareAndSwapLost { row: None, .. } => InputKind::CompareAndSwapLostRowGone,
            Input::StoreFailed { .. } => InputKind::StoreFailed,
            Input::ExchangeFinished { outcome, .. } => match outcome {
                ExchangeOutcome::Issued(_) => InputKind::ExchangeIssued,
                ExchangeOutcome::Rejected { .. } => InputKind::ExchangeRejected,
                ExchangeOutcome::RateLimited { .. } => InputKind::ExchangeRateLimited,
                ExchangeOutcome::Transient { .. } => InputKind::ExchangeTransient,
                ExchangeOutcome::ServerError { .. } => InputKind::ExchangeServerError,
                ExchangeOutcome::OutcomeUnknown => InputKind::ExchangeOutcomeUnknown,
            },
            Input::ValidationFinished { outcome, .. } => match outcome {
                ValidationOutcome::Valid => InputKind::ValidationValid,
                ValidationOutcome::Invalid { .. } => InputKind::ValidationInvalid,
                ValidationOutcome::Inconclusive { .. } => InputKind::ValidationInconclusive,
            },
        }
    }

    /// Whether an input of this kind can meet `stage` at all: a result
    /// reaches only the step that awaits it, a timer only a waiting flight,
    /// a caller going away only a flight it waits on; a request may arrive
    /// at any stage. The pairs for which this holds are the machine's
    /// decisions a checker should reach.
    pub fn meets(self, stage: Stage) -> bool {
        use InputKind as K;
        use Stage as S;
        match self {
            K::TokenRequested => true,
            K::CallerGone => stage.in_flight(),
            K::TimerExpired => matches!(
                stage,
                S::WaitingToReRead
                    | S::WaitingToRetryPersist
                    | S::WaitingToResolveLease
                    | S::WaitingToRetrySettle
            ),
            K::LinkRead | K::LinkReadEmpty => matches!(
                stage,
                S::ReadingFresh
                    | S::ReadingAfterRejection
                    | S::ReadingToResolveLease
                    | S::ReadingToRetrySettle
            ),
            K::CompareAndSwapWon | K::CompareAndSwapLost | K::CompareAndSwapLostRowGone => {
                matches!(stage, S::TakingLease | S::Persisting | S::Settling)
            }
            K::StoreFailed => matches!(
                stage,
                S::ReadingFresh
                    | S::ReadingAfterRejection
                    | S::ReadingToResolveLease
                    | S::ReadingToRetrySettle
                    | S::TakingLease
                    | S::Persisting
                    | S::Settling
            ),
            K::ExchangeIssued
            | K::ExchangeRejected
            | K::ExchangeRateLimited
            | K::ExchangeTransient
            | K::ExchangeServerError
            | K::ExchangeOutcomeUnknown => matches!(stage, S::Exchanging | S::ExchangingAgain),
            K::ValidationValid | K::ValidationInvalid | K::ValidationInconclusive => {
                stage == S::Validating
            }
        }
    }
}

impl std::fmt::Display for InputKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl Machine {
    /// The stage `input`, arriving at `now`, would meet: the link's refresh
    /// step for a result or a caller going away, the first due waiting
    /// flight for a timer, the link's state for a request. `None` for an
    /// input the machine would refuse or ignore (a result it does not await,
    /// a caller it does not know, a timer with nothing due).
    ///
    /// For coverage tools; it reads the machine and changes nothing.
    pub fn stage_for(&self, now: Timestamp, input: &Input) -> Option<Stage> {
        let flight_stage = |link| {
            let state = self.links.get(link)?;
            state.flight.as_ref().map(|f| Stage::of_step(&f.step))
        };
        match input {
            Input::TokenRequested { link, .. } => {
                let Some(state) = self.links.get(link) else {
                    return Some(Stage::Idle);
                };
                if let Some(flight) = &state.flight {
                    return Some(Stage::of_step(&flight.step));
                }
                if state.held.is_some() && now < state.held_until {
                    return Some(Stage::HoldingLiveToken);
                }
                if state.quiet_until.is_some_and(|until| now < until) {
                    return Some(Stage::QuietPeriod);
                }
                Some(Stage::Idle)
            }
            Input::CallerGone { caller } => flight_stage(self.callers.get(caller)?),
            Input::TimerExpired => {
                let link = self.links.due(now).into_iter().next()?;
                flight_stage(&link)
            }
            result => flight_stage(self.awaiting.get(&result.effect_id()?)?),
        }
    }
}
