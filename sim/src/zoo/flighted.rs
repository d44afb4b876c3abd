//! The historical algorithms with per-process single-flight (DESIGN.md
//! section 1 items 8 and 9): `singleflight` — each caller reads the row
//! itself and joins or starts its link's flight with the token it read —
//! and `db_lease` — the flight reads the row, takes a lease on it (or waits
//! while another replica holds one), and releases by clearing *any* lease.
//! Both persist before validating and re-read before caching a failure,
//! without the empty-string guard, as the code they model did.

use std::collections::{BTreeMap, VecDeque};

use super::{reauth, temporary, Answer};
use baton_core::{
    CachedFailure, CallerId, Change, Config, Effect, EffectId, ExchangeOutcome, Expect, Guard,
    Input, InputError, Lease, LinkId, ReauthReason, RefreshError, RefreshMachine, RefreshToken,
    StoredLink, Timestamp, TokenSet, Update, ValidationOutcome, Write, WriteIntent,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Step {
    Reading,
    Waiting {
        wake_at: Timestamp,
    },
    TakingLease,
    Exchanging {
        presented: RefreshToken,
    },
    Writing {
        issued: TokenSet,
    },
    Validating {
        issued: TokenSet,
    },
    ReReading {
        presented: RefreshToken,
        reason: String,
    },
    /// The last write; the answer is decided.
    Finishing {
        answer: Answer,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Flight {
    waiters: Vec<CallerId>,
    step: Step,
}

/// Whose effect an id is: a caller's own read, or a link's flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Owner {
    CallerRead(CallerId, LinkId),
    Flight(LinkId),
}

/// A single-flight refresh machine: `singleflight` without a lease,
/// `db_lease` with one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flighted {
    lease: bool,
    config: Config,
    /// Callers whose own read is in flight (singleflight only); `false`
    /// once they went away.
    reading: BTreeMap<CallerId, bool>,
    flights: BTreeMap<LinkId, Flight>,
    awaiting: BTreeMap<EffectId, Owner>,
    outbox: VecDeque<Effect>,
}

impl Flighted {
    /// A machine; `lease` selects `db_lease` over `singleflight`.
    pub fn new(lease: bool, config: Config) -> Self {
        Flighted {
            lease,
            config,
            reading: BTreeMap::new(),
            flights: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            outbox: VecDeque::new(),
        }
    }

    fn emit(&mut self, owner: Owner, make: impl FnOnce(EffectId) -> Effect) {
        super::emit(&mut self.awaiting, &mut self.outbox, owner, make);
    }

    fn answer(&mut self, link: &LinkId, callers: Vec<CallerId>, result: Answer) {
        for caller in callers {
            self.outbox.push_back(Effect::Answer {
                caller,
                link: link.clone(),
                result: result.clone(),
            });
        }
    }

    fn write(&mut self, link: &LinkId, intent: WriteIntent, guard: Guard, update: Update) {
        let l = link.clone();
        self.emit(Owner::Flight(link.clone()), |id| Effect::CompareAndSwap {
            id,
            link: l,
            write: Write {
                intent,
                guard,
                update,
            },
        });
    }

    fn read(&mut self, link: &LinkId) {
        let l = link.clone();
        self.emit(Owner::Flight(link.clone()), |id| Effect::ReadLink {
            id,
            link: l,
        });
    }

    fn exchange(&mut self, link: &LinkId, now: Timestamp, presented: RefreshToken) -> Step {
        let (l, token) = (link.clone(), presented.clone());
        let deadline = now + self.config.exchange_timeout();
        self.emit(Owner::Flight(link.clone()), |id| Effect::Exchange {
            id,
            link: l,
            refresh_token: token,
            deadline,
        });
        Step::Exchanging { presented }
    }

    /// Releases by clearing any lease (the bug review found), then answers.
    fn release_then(&mut self, link: &LinkId, answer: Answer) -> Next {
        if !self.lease {
            return Next::Finish(answer);
        }
        let update = Update {
            lease: Change::Set(None),
            ..Update::NOTHING
        };
        self.write(link, WriteIntent::ReleaseLease, Guard::ANY, update);
        Next::Continue(Step::Finishing { answer })
    }

    /// The flight's decision on a row (db_lease reads inside the flight).
    fn on_row(&mut self, link: &LinkId, now: Timestamp, row: Option<StoredLink>) -> Next {
        let Some(row) = row else {
            return Next::Finish(Err(RefreshError::ReauthenticationRequired(
                ReauthReason::NotLinked,
            )));
        };
        if let Some(grant) = row
            .access
            .clone()
            .filter(|g| now + self.config.expiry_margin() < g.expires_at)
        {
            return Next::Finish(Ok(grant));
        }
        let refresh = match (&row.refresh_token, &row.failure) {
            (Some(refresh), None) => refresh.clone(),
            _ => return Next::Finish(reauth("cached failure")),
        };
        match &row.lease {
            Some(lease) if now < lease.expires_at => Next::Continue(Step::Waiting {
                wake_at: lease
                    .expires_at
                    .min(now + self.config.lease_poll_interval()),
            }),
            observed => {
                let lease = Lease {
                    owner: self.config.owner().clone(),
                    presenting: refresh.clone(),
                    expires_at: now + self.config.lease_duration(),
                };
                let guard = Guard {
                    lease: Expect::Exactly(observed.clone()),
                    ..Guard::ANY
                };
                let update = Update {
                    lease: Change::Set(Some(lease)),
                    ..Update::NOTHING
                };
                self.write(link, WriteIntent::TakeLease, guard, update);
                Next::Continue(Step::TakingLease)
            }
        }
    }

    fn start_flight(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        caller: CallerId,
        read: Option<RefreshToken>,
    ) {
        let step = match read {
            Some(presented) => self.exchange(link, now, presented),
            None => {
                self.read(link);
                Step::Reading
            }
        };
        self.flights.insert(
            link.clone(),
            Flight {
                waiters: vec![caller],
                step,
            },
        );
    }

    fn flight_result(&mut self, link: LinkId, now: Timestamp, input: Input) {
        let flight = self.flights.remove(&link).expect("awaited by a flight");
        let next = match (flight.step, input) {
            (Step::Reading, Input::LinkRead { row, .. }) => self.on_row(&link, now, row),
            (Step::TakingLease, Input::CompareAndSwapWon { row, .. }) => {
                match row.refresh_token.clone() {
                    Some(refresh) => Next::Continue(self.exchange(&link, now, refresh)),
                    None => self.release_then(&link, reauth("no refresh token")),
                }
            }
            (Step::TakingLease, Input::CompareAndSwapLost { row, .. }) => {
                self.on_row(&link, now, row)
            }
            (Step::Exchanging { presented }, Input::ExchangeFinished { outcome, .. }) => {
                match outcome {
                    ExchangeOutcome::Issued(issued) => {
                        // Persist first, unconditionally, releasing any lease.
                        let update = Update {
                            access: Change::Set(Some(issued.access.clone())),
                            refresh_token: Change::Set(Some(
                                issued.refresh_token.clone().unwrap_or(presented),
                            )),
                            failure: Change::Set(None),
                            lease: Change::Set(None),
                        };
                        self.write(&link, WriteIntent::StoreTokens, Guard::ANY, update);
                        Next::Continue(Step::Writing { issued })
                    }
                    ExchangeOutcome::Rejected { reason } => {
                        self.read(&link);
                        Next::Continue(Step::ReReading { presented, reason })
                    }
                    ExchangeOutcome::RateLimited { retry_after } => self.release_then(
                        &link,
                        Err(RefreshError::RetryAfter {
                            delay: retry_after.unwrap_or_default(),
                        }),
                    ),
                    // Written before gateways were understood: every 5xx
                    // was a transient error, and the token is presented again.
                    ExchangeOutcome::Transient { reason }
                    | ExchangeOutcome::ServerError { reason, .. } => {
                        self.release_then(&link, temporary(&reason))
                    }
                    ExchangeOutcome::OutcomeUnknown => {
                        self.release_then(&link, temporary("timeout"))
                    }
                }
            }
            (
                Step::Writing { issued },
                Input::CompareAndSwapWon { .. } | Input::CompareAndSwapLost { .. },
            ) => {
                let (l, access_token) = (link.clone(), issued.access.token.clone());
                self.emit(Owner::Flight(link.clone()), |id| Effect::Validate {
                    id,
                    link: l,
                    access_token,
                });
                Next::Continue(Step::Validating { issued })
            }
            (Step::Validating { issued }, Input::ValidationFinished { outcome, .. }) => {
                match outcome {
                    ValidationOutcome::Valid => Next::Finish(Ok(issued.access)),
                    _ => Next::Finish(temporary("validation failed")),
                }
            }
            (Step::ReReading { presented, reason }, Input::LinkRead { row, .. }) => {
                let row = row.unwrap_or_default();
                if row.refresh_token.as_ref() != Some(&presented) {
                    // No empty-string guard: an emptied row counts as a winner's.
                    let answer = row.access.map_or_else(|| reauth(&reason), Ok);
                    self.release_then(&link, answer)
                } else {
                    let update = Update {
                        refresh_token: Change::Set(None),
                        failure: Change::Set(Some(CachedFailure::Rejected {
                            reason: reason.clone(),
                        })),
                        lease: if self.lease {
                            Change::Set(None)
                        } else {
                            Change::Keep
                        },
                        ..Update::NOTHING
                    };
                    let guard = Guard::refresh_token(Some(presented));
                    self.write(&link, WriteIntent::CacheFailure, guard, update);
                    Next::Continue(Step::Finishing {
                        answer: reauth(&reason),
                    })
                }
            }
            (Step::Finishing { answer }, _) => Next::Finish(answer),
            (_, _) => Next::Finish(temporary("store failed")),
        };
        match next {
            Next::Continue(step) => {
                self.flights.insert(
                    link,
                    Flight {
                        waiters: flight.waiters,
                        step,
                    },
                );
            }
            Next::Finish(answer) => self.answer(&link, flight.waiters, answer),
        }
    }

    fn caller_read(&mut self, caller: CallerId, link: LinkId, now: Timestamp, input: Input) {
        let still_there = self.reading.remove(&caller).unwrap_or(false);
        if !still_there {
            return;
        }
        let row = match input {
            Input::LinkRead { row: Some(row), .. } => row,
            Input::LinkRead { row: None, .. } => {
                let not_linked = Err(RefreshError::ReauthenticationRequired(
                    ReauthReason::NotLinked,
                ));
                return self.answer(&link, vec![caller], not_linked);
            }
            _ => return self.answer(&link, vec![caller], temporary("store failed")),
        };
        if let Some(grant) = row
            .access
            .clone()
            .filter(|g| now + self.config.expiry_margin() < g.expires_at)
        {
            return self.answer(&link, vec![caller], Ok(grant));
        }
        match (&row.refresh_token, &row.failure) {
            (Some(refresh), None) => {
                if let Some(flight) = self.flights.get_mut(&link) {
                    flight.waiters.push(caller);
                } else {
                    // The token this caller read, however stale.
                    self.start_flight(&link, now, caller, Some(refresh.clone()));
                }
            }
            _ => self.answer(&link, vec![caller], reauth("cached failure")),
        }
    }
}

enum Next {
    Continue(Step),
    Finish(Answer),
}

impl RefreshMachine for Flighted {
    fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        match input {
            Input::TokenRequested { caller, link } => {
                if self.lease {
                    match self.flights.get_mut(&link) {
                        Some(flight) => flight.waiters.push(caller),
                        None => self.start_flight(&link, now, caller, None),
                    }
                } else {
                    self.reading.insert(caller, true);
                    let l = link.clone();
                    self.emit(Owner::CallerRead(caller, link), |id| Effect::ReadLink {
                        id,
                        link: l,
                    });
                }
                Ok(())
            }
            Input::CallerGone { caller } => {
                if let Some(still_there) = self.reading.get_mut(&caller) {
                    *still_there = false;
                }
                for flight in self.flights.values_mut() {
                    flight.waiters.retain(|w| *w != caller);
                }
                Ok(())
            }
            Input::TimerExpired => {
                let due: Vec<LinkId> = self
                    .flights
                    .iter()
                    .filter(|(_, f)| matches!(f.step, Step::Waiting { wake_at } if wake_at <= now))
                    .map(|(l, _)| l.clone())
                    .collect();
                for link in due {
                    self.read(&link);
                    if let Some(flight) = self.flights.get_mut(&link) {
                        flight.step = Step::Reading;
                    }
                }
                Ok(())
            }
            result => {
                let id = result.effect_id().expect("results only");
                match self
                    .awaiting
                    .remove(&id)
                    .ok_or(InputError::UnknownEffect(id))?
                {
                    Owner::CallerRead(caller, link) => self.caller_read(caller, link, now, result),
                    Owner::Flight(link) => self.flight_result(link, now, result),
                }
                Ok(())
            }
        }
    }

    fn poll_output(&mut self) -> Option<Effect> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.flights
            .values()
            .filter_map(|f| match f.step {
                Step::Waiting { wake_at } => Some(wake_at),
                _ => None,
            })
            .min()
    }
}
