//! The [`Runtime`] of the tokio driver: effects and timers become tokio
//! tasks, answers travel on `oneshot` channels, and a task that dies still
//! ends in an input for the machine.

use std::fmt;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::driver::{perform, Answer, Coordinator, LinkStore, Reply, Runtime, TokenEndpoint, Work};
use crate::{Effect, ExchangeOutcome, Input, RefreshMachine, StoreFailure, Timestamp};

/// The answer channel of the tokio driver.
#[derive(Debug)]
pub struct OneshotReply(pub(super) oneshot::Sender<Answer>);

impl Reply for OneshotReply {
    fn send(self, answer: Answer) {
        // The receiver is gone when the caller's future was dropped.
        let _ = self.0.send(answer);
    }
}

/// The [`Runtime`] of the tokio driver: the store, the endpoint, and the
/// tokio runtime every effect and timer is spawned on.
pub struct TokioRuntime<S, E> {
    pub(super) store: Arc<S>,
    pub(super) endpoint: Arc<E>,
    pub(super) handle: Handle,
    pub(super) clock: fn() -> Timestamp,
}

impl<S, E> fmt::Debug for TokioRuntime<S, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioRuntime").finish_non_exhaustive()
    }
}

fn effect_kind(effect: &Effect) -> &'static str {
    match effect {
        Effect::ReadLink { .. } => "read_link",
        Effect::CompareAndSwap { .. } => "compare_and_swap",
        Effect::Exchange { .. } => "exchange",
        Effect::Validate { .. } => "validate",
        Effect::Answer { .. } => "answer",
    }
}

/// The input that stands for an effect whose task died (a panic in a store
/// or endpoint implementation): the machine must hear something, or every
/// caller of the link would wait forever.
fn lost_effect(effect: &Effect) -> Option<Input> {
    let reason = "the task carrying out this effect panicked".to_string();
    Some(match effect {
        Effect::ReadLink { id, .. } | Effect::CompareAndSwap { id, .. } => Input::StoreFailed {
            id: *id,
            failure: StoreFailure { reason },
        },
        // It may have been sent: the safe reading.
        Effect::Exchange { id, .. } => Input::ExchangeFinished {
            id: *id,
            outcome: ExchangeOutcome::OutcomeUnknown,
        },
        Effect::Validate { id, .. } => Input::ValidationFinished {
            id: *id,
            outcome: crate::ValidationOutcome::Inconclusive { reason },
        },
        Effect::Answer { .. } => return None,
    })
}

impl<S: LinkStore, E: TokenEndpoint> Runtime for TokioRuntime<S, E> {
    type Lock<T: Send + 'static> = std::sync::Mutex<T>;
    type Reply = OneshotReply;

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    fn spawn_work<M: RefreshMachine + Send + 'static>(&self, work: Work<Self, M>) {
        let store = Arc::clone(&self.store);
        let endpoint = Arc::clone(&self.endpoint);
        let clock = self.clock;
        let span = tracing::debug_span!("baton.effect", kind = effect_kind(work.effect()));
        let effect = work.effect().clone();
        // The I/O runs in a task of its own so that a panic in a store or
        // endpoint still ends in an input for the machine.
        let io = self.handle.spawn(
            async move {
                let now = clock();
                match effect {
                    Effect::Exchange { id, deadline, .. } => {
                        let budget = deadline.saturating_since(now);
                        let exchange = perform(&*store, &*endpoint, &effect, now);
                        match tokio::time::timeout(budget, exchange).await {
                            Ok(input) => input,
                            Err(_) => {
                                tracing::warn!("no reply from the token endpoint by the deadline; outcome unknown");
                                Some(Input::ExchangeFinished {
                                    id,
                                    outcome: ExchangeOutcome::OutcomeUnknown,
                                })
                            }
                        }
                    }
                    _ => perform(&*store, &*endpoint, &effect, now).await,
                }
            }
            .instrument(span),
        );
        self.handle.spawn(async move {
            let input = match io.await {
                Ok(input) => input,
                Err(_) => lost_effect(work.effect()),
            };
            if let Some(input) = input {
                work.finish(input);
            }
        });
    }

    fn wake_at<M: RefreshMachine + Send + 'static>(
        &self,
        at: Timestamp,
        coordinator: Arc<Coordinator<Self, M>>,
    ) {
        let clock = self.clock;
        self.handle.spawn(async move {
            tokio::time::sleep(at.saturating_since(clock())).await;
            coordinator.timer_fired(at);
        });
    }
}
