//! Effects, results and exchange outcomes in words, as timelines and
//! diagrams show them (fake tokens are printed: they are not secrets).

use baton_core::{Effect, ExchangeOutcome, Input};

/// An effect in words (fake tokens are printed: they are not secrets).
pub fn describe_effect(effect: &Effect) -> String {
    match effect {
        Effect::ReadLink { link, .. } => format!("read {link}"),
        Effect::CompareAndSwap { write, .. } => {
            let guard = match &write.guard.refresh_token {
                baton_core::Expect::Any if write.guard == baton_core::Guard::ANY => {
                    "unconditionally".to_string()
                }
                baton_core::Expect::Any => "if the lease and failure are as read".to_string(),
                baton_core::Expect::Exactly(t) => {
                    format!(
                        "if refresh = {}",
                        t.as_ref().map_or("∅", |t| t.expose_secret())
                    )
                }
            };
            format!("{:?} {guard}", write.intent)
        }
        Effect::Exchange { refresh_token, .. } => {
            format!("exchange of {}", refresh_token.expose_secret())
        }
        Effect::Validate { access_token, .. } => {
            format!("validation of {}", access_token.expose_secret())
        }
        Effect::Answer { caller, .. } => format!("answer to {caller}"),
    }
}

/// A result in words, as the timeline shows it.
pub fn describe_input(input: &Input) -> String {
    match input {
        Input::LinkRead { row, .. } => match row {
            Some(row) => format!("row {}", crate::report::describe_row(row)),
            None => "no row".into(),
        },
        Input::CompareAndSwapWon { .. } => "won".into(),
        Input::CompareAndSwapLost { .. } => "lost".into(),
        Input::StoreFailed { .. } => "FAILED (injected)".into(),
        other => format!("{other:?}"),
    }
}

/// An exchange outcome in words.
pub fn describe_outcome(outcome: &ExchangeOutcome) -> String {
    match outcome {
        ExchangeOutcome::Issued(tokens) => format!(
            "issued {}/{}",
            tokens.access.token.expose_secret(),
            tokens
                .refresh_token
                .as_ref()
                .map_or("(same refresh token)", |t| t.expose_secret())
        ),
        ExchangeOutcome::Rejected { reason } => format!("rejected ({reason})"),
        ExchangeOutcome::RateLimited { .. } => "rate limited".into(),
        ExchangeOutcome::Transient { reason } => format!("transient error ({reason})"),
        ExchangeOutcome::ServerError { status, reason } => format!("HTTP {status} ({reason})"),
        ExchangeOutcome::OutcomeUnknown => "no reply".into(),
    }
}
