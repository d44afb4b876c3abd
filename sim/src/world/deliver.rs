//! Delivering a sent effect to the store, the token endpoint or the API,
//! with the fault the adversary injects into it, if any.

use std::collections::BTreeSet;
use std::sync::Arc;

use baton_core::{Effect, ExchangeOutcome, Input, RefreshToken, ValidationOutcome};
use baton_fakes::{ProviderFault, StoreFault};

use super::{describe_effect, describe_input, describe_outcome, Fault, Message, Notes, World};
use crate::spec::WorldSpec;

impl World {
    pub(super) fn deliver(
        &mut self,
        spec: &WorldSpec,
        message: Message,
        fault: Option<Fault>,
        note: &mut Notes<'_>,
    ) {
        let Message::Sent {
            replica,
            incarnation: _,
            effect,
            orphaned,
        } = message
        else {
            unreachable!("Deliver is offered for sent effects only")
        };
        let r = usize::from(replica);
        match &effect {
            Effect::ReadLink { link, .. } | Effect::CompareAndSwap { link, .. } => {
                match fault {
                    Some(Fault::StoreReadFailed) => {
                        self.budget.store_read_failures -= 1;
                        self.used.store_failure = true;
                        Arc::make_mut(&mut self.store).inject(StoreFault::FailNextRead);
                    }
                    Some(Fault::StoreWriteFailed { applied }) => {
                        self.budget.store_write_failures -= 1;
                        self.used.store_failure = true;
                        Arc::make_mut(&mut self.store)
                            .inject(StoreFault::FailNextWrite { applied });
                    }
                    _ => {}
                }
                let input = match (&effect, fault) {
                    // A plain read changes nothing: read the shared store
                    // rather than copy it to write nothing. (A read fault
                    // is injected and consumed within one step, so none is
                    // pending here.)
                    (Effect::ReadLink { id, link }, None) => Input::LinkRead {
                        id: *id,
                        row: self.store.row(link).cloned(),
                    },
                    _ => Arc::make_mut(&mut self.store)
                        .carry_out(&effect)
                        .expect("store effects get a store result"),
                };
                note.add(|| {
                    (
                        format!("r{replica}"),
                        "store".into(),
                        format!("{} → {}", describe_effect(&effect), describe_input(&input)),
                    )
                });
                let _ = link;
                if matches!(effect, Effect::ReadLink { .. }) {
                    // The row travels back while the world goes on.
                    let incarnation = self.replicas[r].incarnation;
                    self.messages.push(Message::ReadReply {
                        replica,
                        incarnation,
                        input,
                    });
                } else {
                    self.feed(spec, r, input, note);
                }
            }
            Effect::Exchange {
                id,
                link,
                refresh_token,
                deadline,
            } => {
                let provider_fault = match fault {
                    Some(Fault::RateLimited) => {
                        self.budget.rate_limits -= 1;
                        self.used.rate_limit = true;
                        Some(ProviderFault::RateLimited {
                            retry_after: Some(std::time::Duration::from_secs(60)),
                        })
                    }
                    Some(Fault::Transient) => {
                        self.budget.transients -= 1;
                        self.used.transient = true;
                        Some(ProviderFault::Transient)
                    }
                    Some(Fault::LostReply) => {
                        self.budget.lost_replies -= 1;
                        self.used.lost_reply = true;
                        Some(ProviderFault::LostReply)
                    }
                    Some(Fault::GatewayAfterForwarding) => {
                        self.budget.gateway_after_forwarding -= 1;
                        self.used.gateway = true;
                        Some(ProviderFault::GatewayAfterForwarding { status: 502 })
                    }
                    Some(Fault::GatewayWithoutForwarding) => {
                        self.budget.gateway_without_forwarding -= 1;
                        self.used.gateway = true;
                        Some(ProviderFault::GatewayWithoutForwarding)
                    }
                    Some(Fault::GatewayBeforeArrival) => {
                        // The gateway answers now; the request travels on
                        // to the provider as a zombie, delivered later.
                        self.budget.gateway_before_arrival -= 1;
                        self.used.gateway = true;
                        let incarnation = self.replicas[r].incarnation;
                        note.add(|| {
                            (
                                format!("r{replica}"),
                                "provider".into(),
                                format!(
                                    "presents {}: the gateway answers 504 while the request is still on its way",
                                    refresh_token.expose_secret()
                                ),
                            )
                        });
                        self.messages.push(Message::Reply {
                            link: link.clone(),
                            replica,
                            incarnation,
                            id: *id,
                            deadline: *deadline,
                            outcome: ExchangeOutcome::ServerError {
                                status: 504,
                                reason: "gateway timeout".into(),
                            },
                        });
                        self.messages.push(Message::Sent {
                            replica,
                            incarnation,
                            effect,
                            orphaned: true,
                        });
                        return;
                    }
                    _ => None,
                };
                let before: BTreeSet<RefreshToken> = self
                    .provider
                    .live_refresh_tokens(link)
                    .into_iter()
                    .collect();
                let outcome = Arc::make_mut(&mut self.provider).exchange(
                    self.now,
                    refresh_token,
                    provider_fault,
                );
                let delivered = !orphaned
                    && !matches!(
                        fault,
                        Some(Fault::LostReply | Fault::GatewayAfterForwarding)
                    );
                if !delivered {
                    // Whatever the provider issued now, nobody will hear of it.
                    for token in self.provider.live_refresh_tokens(link) {
                        if !before.contains(&token) {
                            self.lost_tokens.get_mut().insert(token);
                        }
                    }
                }
                let zombie = if orphaned {
                    " (a zombie: its sender stopped waiting)"
                } else {
                    ""
                };
                note.add(|| {
                    (
                        format!("r{replica}"),
                        "provider".into(),
                        format!(
                            "presents {}{zombie} → {}",
                            refresh_token.expose_secret(),
                            describe_outcome(&outcome)
                        ),
                    )
                });
                if orphaned {
                    return;
                }
                let incarnation = self.replicas[r].incarnation;
                if matches!(fault, Some(Fault::LostReply)) {
                    self.messages.push(Message::Lost {
                        link: link.clone(),
                        replica,
                        incarnation,
                        id: *id,
                        deadline: *deadline,
                    });
                } else {
                    self.messages.push(Message::Reply {
                        link: link.clone(),
                        replica,
                        incarnation,
                        id: *id,
                        deadline: *deadline,
                        outcome,
                    });
                }
            }
            Effect::Validate {
                id, access_token, ..
            } => {
                let outcome = if matches!(fault, Some(Fault::ValidationInconclusive)) {
                    self.budget.validation_failures -= 1;
                    self.used.validation_failure = true;
                    ValidationOutcome::Inconclusive {
                        reason: "API answered 502".into(),
                    }
                } else if self.provider.is_access_live(access_token, self.now) {
                    ValidationOutcome::Valid
                } else {
                    ValidationOutcome::Invalid {
                        reason: "API answered 401".into(),
                    }
                };
                note.add(|| {
                    (
                        format!("r{replica}"),
                        "api".into(),
                        format!("validates {} → {outcome:?}", access_token.expose_secret()),
                    )
                });
                self.feed(
                    spec,
                    r,
                    Input::ValidationFinished { id: *id, outcome },
                    note,
                );
            }
            Effect::Answer { .. } => unreachable!("answers are never sent"),
        }
    }
}
