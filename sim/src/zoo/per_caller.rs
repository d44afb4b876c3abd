//! The historical algorithms in which every caller refreshes on its own
//! (Coder before single-flight, DESIGN.md section 1 items 1–7): `naive`,
//! `optimistic_lock`, `save_before_validate` and `reread_on_reject`. They
//! differ in four decisions, so one machine carries the flow and a
//! [`Variant`] says which way each decision goes.

use std::collections::{BTreeMap, VecDeque};

use super::{reauth, temporary, Answer};
use baton_core::{
    CachedFailure, CallerId, Change, Config, Effect, EffectId, ExchangeOutcome, Guard, Input,
    InputError, LinkId, ReauthReason, RefreshError, RefreshMachine, RefreshToken, StoredLink,
    Timestamp, TokenSet, Update, ValidationOutcome, Write, WriteIntent,
};

/// The decisions that distinguish the per-caller algorithms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variant {
    /// Validate the new access token before writing anything (failure 2).
    pub validate_before_write: bool,
    /// The failure write is guarded on the presented refresh token
    /// (Coder PR 22904); otherwise it is unconditional.
    pub guarded_failure_write: bool,
    /// A rate limit (GitHub's 403) counts as a dead refresh token (failure 3).
    pub rate_limit_is_rejection: bool,
    /// Re-read before caching a failure and return the stored row if its
    /// refresh token changed — with no empty-string guard (failure 7).
    pub reread_on_reject: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    Reading,
    Exchanging {
        presented: RefreshToken,
    },
    Validating {
        presented: RefreshToken,
        issued: TokenSet,
        written: bool,
    },
    Writing {
        presented: RefreshToken,
        issued: TokenSet,
        validated: bool,
    },
    ReReading {
        presented: RefreshToken,
        reason: String,
    },
    CachingFailure {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Flow {
    link: LinkId,
    step: Step,
    /// The caller went away: its request context is cancelled, so nothing
    /// more is done once the effect in flight returns.
    aborted: bool,
}

/// A per-caller refresh machine of one [`Variant`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PerCaller {
    variant: Variant,
    config: Config,
    flows: BTreeMap<CallerId, Flow>,
    awaiting: BTreeMap<EffectId, CallerId>,
    outbox: VecDeque<Effect>,
}

impl PerCaller {
    /// A machine of `variant` with nothing in flight.
    pub fn new(variant: Variant, config: Config) -> Self {
        PerCaller {
            variant,
            config,
            flows: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            outbox: VecDeque::new(),
        }
    }

    fn emit(&mut self, caller: CallerId, make: impl FnOnce(EffectId) -> Effect) {
        super::emit(&mut self.awaiting, &mut self.outbox, caller, make);
    }

    fn finish(&mut self, caller: CallerId, link: LinkId, result: Answer) {
        self.flows.remove(&caller);
        self.outbox.push_back(Effect::Answer {
            caller,
            link,
            result,
        });
    }

    fn write(
        &mut self,
        caller: CallerId,
        link: &LinkId,
        guard: Guard,
        update: Update,
        intent: WriteIntent,
    ) {
        let link = link.clone();
        self.emit(caller, |id| Effect::CompareAndSwap {
            id,
            link,
            write: Write {
                intent,
                guard,
                update,
            },
        });
    }

    fn store_tokens(
        &mut self,
        caller: CallerId,
        link: &LinkId,
        presented: &RefreshToken,
        issued: &TokenSet,
    ) {
        let update = Update {
            access: Change::Set(Some(issued.access.clone())),
            refresh_token: Change::Set(Some(
                issued
                    .refresh_token
                    .clone()
                    .unwrap_or_else(|| presented.clone()),
            )),
            failure: Change::Set(None),
            lease: Change::Keep,
        };
        self.write(caller, link, Guard::ANY, update, WriteIntent::StoreTokens);
    }

    fn cache_failure(
        &mut self,
        caller: CallerId,
        link: &LinkId,
        presented: &RefreshToken,
        reason: &str,
    ) {
        let guard = if self.variant.guarded_failure_write {
            Guard::refresh_token(Some(presented.clone()))
        } else {
            Guard::ANY
        };
        let update = Update {
            refresh_token: Change::Set(None),
            failure: Change::Set(Some(CachedFailure::Rejected {
                reason: reason.into(),
            })),
            ..Update::NOTHING
        };
        self.write(caller, link, guard, update, WriteIntent::CacheFailure);
    }

    fn validate(&mut self, caller: CallerId, link: &LinkId, issued: &TokenSet) {
        let (link, access_token) = (link.clone(), issued.access.token.clone());
        self.emit(caller, |id| Effect::Validate {
            id,
            link,
            access_token,
        });
    }

    fn result(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        let id = input.effect_id().expect("results only");
        let caller = self
            .awaiting
            .remove(&id)
            .ok_or(InputError::UnknownEffect(id))?;
        let flow = self
            .flows
            .get(&caller)
            .cloned()
            .expect("awaited effects have a flow");
        if flow.aborted {
            self.flows.remove(&caller);
            return Ok(());
        }
        let link = flow.link.clone();
        let v = self.variant;
        match (flow.step, input) {
            (Step::Reading, Input::LinkRead { row, .. }) => {
                let Some(row) = row else {
                    let not_linked =
                        RefreshError::ReauthenticationRequired(ReauthReason::NotLinked);
                    self.finish(caller, link, Err(not_linked));
                    return Ok(());
                };
                if let Some(grant) = row
                    .access
                    .clone()
                    .filter(|g| now + self.config.expiry_margin() < g.expires_at)
                {
                    self.finish(caller, link, Ok(grant));
                    return Ok(());
                }
                match (&row.refresh_token, &row.failure) {
                    (_, Some(_)) | (None, _) => self.finish(caller, link, reauth("cached failure")),
                    (Some(refresh), None) => {
                        let (presented, l) = (refresh.clone(), link.clone());
                        let deadline = now + self.config.exchange_timeout();
                        self.set_step(
                            caller,
                            Step::Exchanging {
                                presented: presented.clone(),
                            },
                        );
                        self.emit(caller, |id| Effect::Exchange {
                            id,
                            link: l,
                            refresh_token: presented,
                            deadline,
                        });
                    }
                }
            }
            (Step::Exchanging { presented }, Input::ExchangeFinished { outcome, .. }) => {
                match outcome {
                    ExchangeOutcome::Issued(issued) => {
                        if v.validate_before_write {
                            self.validate(caller, &link, &issued);
                            self.set_step(
                                caller,
                                Step::Validating {
                                    presented,
                                    issued,
                                    written: false,
                                },
                            );
                        } else {
                            self.store_tokens(caller, &link, &presented, &issued);
                            self.set_step(
                                caller,
                                Step::Writing {
                                    presented,
                                    issued,
                                    validated: false,
                                },
                            );
                        }
                    }
                    ExchangeOutcome::RateLimited { .. } if v.rate_limit_is_rejection => {
                        self.rejected(caller, &link, presented, "403 rate limited".into())
                    }
                    ExchangeOutcome::Rejected { reason } => {
                        self.rejected(caller, &link, presented, reason)
                    }
                    ExchangeOutcome::RateLimited { retry_after } => self.finish(
                        caller,
                        link,
                        Err(RefreshError::RetryAfter {
                            delay: retry_after.unwrap_or_default(),
                        }),
                    ),
                    // Written before gateways were understood: every 5xx
                    // was a transient error, and the token is presented again.
                    ExchangeOutcome::Transient { reason }
                    | ExchangeOutcome::ServerError { reason, .. } => {
                        self.finish(caller, link, temporary(&reason))
                    }
                    ExchangeOutcome::OutcomeUnknown => {
                        self.finish(caller, link, temporary("timeout"))
                    }
                }
            }
            (
                Step::Validating {
                    presented,
                    issued,
                    written,
                },
                Input::ValidationFinished { outcome, .. },
            ) => {
                match (outcome, written) {
                    (ValidationOutcome::Valid, true) => {
                        self.finish(caller, link, Ok(issued.access))
                    }
                    (ValidationOutcome::Valid, false) => {
                        // Naive validated first; it now writes unconditionally.
                        self.store_tokens(caller, &link, &presented, &issued);
                        self.set_step(
                            caller,
                            Step::Writing {
                                presented,
                                issued,
                                validated: true,
                            },
                        );
                    }
                    (_, _) => self.finish(caller, link, temporary("validation failed")),
                }
            }
            (
                Step::Writing {
                    presented,
                    issued,
                    validated,
                },
                input,
            ) => match input {
                Input::CompareAndSwapWon { .. } | Input::CompareAndSwapLost { .. } => {
                    if validated || v.validate_before_write {
                        self.finish(caller, link, Ok(issued.access));
                    } else {
                        self.validate(caller, &link, &issued);
                        self.set_step(
                            caller,
                            Step::Validating {
                                presented,
                                issued,
                                written: true,
                            },
                        );
                    }
                }
                _ => self.finish(caller, link, temporary("store write failed")),
            },
            (Step::ReReading { presented, reason }, Input::LinkRead { row, .. }) => {
                let row: StoredLink = row.unwrap_or_default();
                if row.refresh_token.as_ref() != Some(&presented) {
                    // No empty-string guard: an emptied row counts as a winner's.
                    match row.access {
                        Some(grant) => self.finish(caller, link, Ok(grant)),
                        None => self.finish(caller, link, reauth(&reason)),
                    }
                } else {
                    self.cache_failure(caller, &link, &presented, &reason);
                    self.set_step(caller, Step::CachingFailure { reason });
                }
            }
            (Step::CachingFailure { reason }, _) => self.finish(caller, link, reauth(&reason)),
            (_, _) => self.finish(caller, link, temporary("store failed")),
        }
        Ok(())
    }

    fn rejected(
        &mut self,
        caller: CallerId,
        link: &LinkId,
        presented: RefreshToken,
        reason: String,
    ) {
        if self.variant.reread_on_reject {
            let l = link.clone();
            self.emit(caller, |id| Effect::ReadLink { id, link: l });
            self.set_step(caller, Step::ReReading { presented, reason });
        } else {
            self.cache_failure(caller, link, &presented, &reason);
            self.set_step(caller, Step::CachingFailure { reason });
        }
    }

    fn set_step(&mut self, caller: CallerId, step: Step) {
        if let Some(flow) = self.flows.get_mut(&caller) {
            flow.step = step;
        }
    }
}

impl RefreshMachine for PerCaller {
    fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        match input {
            Input::TokenRequested { caller, link } => {
                if self.flows.contains_key(&caller) {
                    return Err(InputError::CallerAlreadyWaiting(caller));
                }
                self.flows.insert(
                    caller,
                    Flow {
                        link: link.clone(),
                        step: Step::Reading,
                        aborted: false,
                    },
                );
                self.emit(caller, |id| Effect::ReadLink { id, link });
                Ok(())
            }
            Input::CallerGone { caller } => {
                if let Some(flow) = self.flows.get_mut(&caller) {
                    flow.aborted = true;
                }
                Ok(())
            }
            Input::TimerExpired => Ok(()),
            result => self.result(now, result),
        }
    }

    fn poll_output(&mut self) -> Option<Effect> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use baton_core::{AccessGrant, AccessToken, OwnerId};

    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(100_000);

    fn machine(variant: Variant) -> PerCaller {
        let config = Config::builder(OwnerId::new("r0")).build().unwrap();
        PerCaller::new(variant, config)
    }

    fn link() -> LinkId {
        LinkId::new("github", "u0")
    }

    fn expired_row() -> StoredLink {
        StoredLink {
            access: Some(AccessGrant {
                token: AccessToken::new("A0"),
                expires_at: NOW,
                lifetime: None,
            }),
            refresh_token: Some(RefreshToken::new("R0")),
            failure: None,
            lease: None,
        }
    }

    fn drain(m: &mut PerCaller) -> Vec<Effect> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    /// Drives one caller to the exchange of R0 and returns the machine.
    fn exchanging(variant: Variant) -> PerCaller {
        let mut m = machine(variant);
        let request = Input::TokenRequested {
            caller: CallerId(1),
            link: link(),
        };
        m.handle_input(NOW, request).unwrap();
        drain(&mut m);
        m.handle_input(
            NOW,
            Input::LinkRead {
                id: EffectId(0),
                row: Some(expired_row()),
            },
        )
        .unwrap();
        assert!(matches!(drain(&mut m)[..], [Effect::Exchange { .. }]));
        m
    }

    fn naive() -> Variant {
        Variant {
            validate_before_write: true,
            guarded_failure_write: false,
            rate_limit_is_rejection: true,
            reread_on_reject: false,
        }
    }

    #[test]
    fn naive_clears_the_token_unconditionally_even_on_a_rate_limit() {
        let mut m = exchanging(naive());
        let limited = ExchangeOutcome::RateLimited {
            retry_after: Some(Duration::from_secs(1)),
        };
        m.handle_input(
            NOW,
            Input::ExchangeFinished {
                id: EffectId(0),
                outcome: limited,
            },
        )
        .unwrap();
        let effects = drain(&mut m);
        let [Effect::CompareAndSwap { write, .. }] = &effects[..] else {
            panic!("{effects:?}")
        };
        assert_eq!(write.guard, Guard::ANY);
        assert_eq!(write.update.refresh_token, Change::Set(None));
    }

    #[test]
    fn optimistic_lock_guards_the_failure_write_on_the_presented_token() {
        let mut m = exchanging(Variant {
            guarded_failure_write: true,
            ..naive()
        });
        let rejected = ExchangeOutcome::Rejected {
            reason: "bad_refresh_token".into(),
        };
        m.handle_input(
            NOW,
            Input::ExchangeFinished {
                id: EffectId(0),
                outcome: rejected,
            },
        )
        .unwrap();
        let effects = drain(&mut m);
        let [Effect::CompareAndSwap { write, .. }] = &effects[..] else {
            panic!("{effects:?}")
        };
        assert_eq!(
            write.guard,
            Guard::refresh_token(Some(RefreshToken::new("R0")))
        );
    }

    #[test]
    fn a_cancelled_caller_aborts_the_flow_and_nothing_is_written() {
        let mut m = exchanging(Variant {
            validate_before_write: false,
            ..naive()
        });
        m.handle_input(
            NOW,
            Input::CallerGone {
                caller: CallerId(1),
            },
        )
        .unwrap();
        let issued = TokenSet {
            access: AccessGrant {
                token: AccessToken::new("A1"),
                expires_at: NOW + Duration::from_secs(3600),
                lifetime: None,
            },
            refresh_token: Some(RefreshToken::new("R1")),
        };
        m.handle_input(
            NOW,
            Input::ExchangeFinished {
                id: EffectId(0),
                outcome: ExchangeOutcome::Issued(issued),
            },
        )
        .unwrap();
        assert_eq!(drain(&mut m), vec![]);
    }

    #[test]
    fn reread_on_reject_takes_an_emptied_row_for_a_winner() {
        let mut m = exchanging(Variant {
            validate_before_write: false,
            guarded_failure_write: true,
            rate_limit_is_rejection: false,
            reread_on_reject: true,
        });
        let rejected = ExchangeOutcome::Rejected {
            reason: "bad_refresh_token".into(),
        };
        m.handle_input(
            NOW,
            Input::ExchangeFinished {
                id: EffectId(0),
                outcome: rejected,
            },
        )
        .unwrap();
        assert!(matches!(drain(&mut m)[..], [Effect::ReadLink { .. }]));
        let mut emptied = expired_row();
        emptied.refresh_token = None;
        m.handle_input(
            NOW,
            Input::LinkRead {
                id: EffectId(0),
                row: Some(emptied),
            },
        )
        .unwrap();
        let effects = drain(&mut m);
        let [Effect::Answer {
            result: Ok(grant), ..
        }] = &effects[..]
        else {
            panic!("{effects:?}")
        };
        assert_eq!(
            grant.token.expose_secret(),
            "A0",
            "the expired token, as a success"
        );
    }
}
