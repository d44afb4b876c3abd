//! The [`Machine`]: one per process, for every link and every caller of
//! that process. It owns the bookkeeping — which effect awaits which result,
//! which callers wait on which link, the outbox — and hands each link's
//! decisions to [`crate::flight`].

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use crate::config::Config;
use crate::error::{InputError, RefreshError};
use crate::flight::results::{cas_outcome, check_fits};
use crate::flight::{Answer, Flight, Next, ReadPurpose, Settle, Step, Wake};
use crate::ids::{CallerId, EffectId, LinkId};
use crate::io::{Effect, Input, ValidationOutcome};
use crate::links::Links;
use crate::row::{AccessGrant, CasOutcome, Write};
use crate::small_map::{SmallMap, SmallSet};
use crate::time::Timestamp;

/// The sans-IO refresh machine. See the [crate documentation](crate) for
/// the driver loop.
///
/// Feed it [`Input`]s with [`handle_input`](Machine::handle_input); after
/// each, drain [`poll_output`](Machine::poll_output) and carry out every
/// [`Effect`]; arm a timer for [`poll_timeout`](Machine::poll_timeout).
#[derive(Clone, Debug)]
pub struct Machine {
    pub(crate) config: Config,
    pub(crate) links: Links,
    pub(crate) callers: SmallMap<CallerId, LinkId>,
    pub(crate) awaiting: SmallMap<EffectId, LinkId>,
    /// The ids below `awaiting`'s largest that are not in it, and one past
    /// that largest: the smallest free id without a scan. Follows from
    /// `awaiting`, so left out of equality and hashing.
    free_ids: SmallSet<EffectId>,
    end_id: u64,
    outbox: VecDeque<Effect>,
}

/// Equal machines behave alike; the indexes (in `Links` and the free
/// effect ids) follow from what is compared here.
impl PartialEq for Machine {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
            && self.links == other.links
            && self.callers == other.callers
            && self.awaiting == other.awaiting
            && self.outbox == other.outbox
    }
}

impl Eq for Machine {}

impl Hash for Machine {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.config.hash(state);
        self.links.hash(state);
        self.callers.hash(state);
        self.awaiting.hash(state);
        self.outbox.hash(state);
    }
}

impl Machine {
    /// A machine with nothing in flight.
    pub fn new(config: Config) -> Self {
        Machine {
            config,
            links: Links::default(),
            callers: SmallMap::new(),
            awaiting: SmallMap::new(),
            free_ids: SmallSet::new(),
            end_id: 0,
            outbox: VecDeque::new(),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Feeds one input that happened at `now`. Afterwards, drain
    /// [`poll_output`](Machine::poll_output) and re-arm the timer from
    /// [`poll_timeout`](Machine::poll_timeout).
    ///
    /// An input the machine cannot use (a result for an effect it is not
    /// waiting on, a caller id already waiting) is refused with an
    /// [`InputError`] and changes nothing.
    ///
    /// Each input that is not refused also lets the machine forget what has
    /// run out by `now` (see the `links` module): a held token no longer
    /// live, a quiet period that is over, a link with nothing else left;
    /// and the least recently requested idle links beyond
    /// [`Config::max_held_links`].
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        match input {
            Input::TokenRequested { caller, link } => self.requested(now, caller, link)?,
            Input::CallerGone { caller } => self.caller_gone(caller),
            Input::TimerExpired => self.timers_expired(now),
            result => self.result(now, result)?,
        }
        self.links.sweep(now, &self.config);
        Ok(())
    }

    /// The next effect to carry out, in the order the machine decided them.
    /// Call after every [`handle_input`](Machine::handle_input) until it
    /// returns `None`.
    pub fn poll_output(&mut self) -> Option<Effect> {
        self.outbox.pop_front()
    }

    /// When to deliver [`Input::TimerExpired`]: the earliest instant at
    /// which a waiting flight wants to act (re-read a row whose lease
    /// another replica holds, retry a failed persist). `None` when nothing
    /// waits on time. Call after every
    /// [`handle_input`](Machine::handle_input); the answer replaces any
    /// earlier one.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.links.next_wake()
    }

    /// The access token this process holds for `link`, if it is live at
    /// `now` outside the expiry margin. A request for it would be answered
    /// at once with this token; drivers may use this for a lock-free read.
    pub fn live_token(&self, link: &LinkId, now: Timestamp) -> Option<&AccessGrant> {
        self.held_token(link, now).map(|(grant, _)| grant)
    }

    /// [`live_token`](Machine::live_token), with the instant (exclusive)
    /// until which it is served.
    pub(crate) fn held_token(
        &self,
        link: &LinkId,
        now: Timestamp,
    ) -> Option<(&AccessGrant, Timestamp)> {
        let state = self.links.get(link)?;
        let grant = state.held.as_ref()?;
        (now < state.held_until).then_some((grant, state.held_until))
    }

    /// Until when (exclusive) `grant` is served: its expiry less the margin
    /// for its stored lifetime ([`Config::margin_for`]), the same instant
    /// on every replica.
    pub(crate) fn serve_until(&self, grant: &AccessGrant) -> Timestamp {
        grant.expires_at - self.config.margin_for(grant.lifetime)
    }

    /// Tells the machine that the driver replaced `link`'s row with a fresh
    /// pair ([`LinkStore::enroll`](crate::driver::LinkStore::enroll), the
    /// OAuth callback), *after* the store write completed (or failed in a
    /// way that may have applied it).
    ///
    /// The machine forgets the access token it holds for the link, so no
    /// request made from now on is answered from the older family out of
    /// this process's memory. A refresh already in flight goes on — its
    /// writes are compare-and-swaps on the refresh token it read, so none
    /// of them lands over the new pair — but whatever it ends with is not
    /// handed out: its waiters are served by a fresh read of the row
    /// instead, which finds the new pair (or a later rotation of it).
    /// Emits nothing unless such a flight later ends.
    pub fn link_replaced(&mut self, now: Timestamp, link: &LinkId) {
        if self.links.get(link).is_some() {
            self.links.open(link);
            let state = self.links.entry(link.clone()).or_default();
            state.held = None;
            state.replaced = state.flight.is_some();
            self.links.close(link, false);
        }
        self.links.sweep(now, &self.config);
    }

    /// A driver served `link`'s held token from its own copy of
    /// [`live_token`](Machine::live_token), without an input: the link
    /// becomes the most recently used of the held links, so that the bound
    /// on held links ([`Config::max_held_links`]) evicts links nobody asks
    /// for first, not the ones served most often. Changes no answer, emits
    /// nothing; does nothing for a link holding no token or with anything
    /// else under way.
    pub fn served_cached(&mut self, link: &LinkId) {
        self.links.touch(link);
    }

    /// Whether nothing is in flight and no effect is waiting to be polled.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_empty() && self.links.flights() == 0
    }

    /// How many links the machine remembers anything about: a flight, a
    /// token, a quiet period or a lease to reuse.
    pub fn remembered_links(&self) -> usize {
        self.links.len()
    }

    /// How many callers are waiting for an answer.
    pub fn waiting_callers(&self) -> usize {
        self.callers.len()
    }

    fn requested(
        &mut self,
        now: Timestamp,
        caller: CallerId,
        link: LinkId,
    ) -> Result<(), InputError> {
        if self.callers.contains_key(&caller) {
            return Err(InputError::CallerAlreadyWaiting(caller));
        }
        self.links.open(&link);
        self.request_open(now, caller, &link);
        self.links.close(&link, true);
        Ok(())
    }

    /// [`requested`](Self::requested) on a link taken out of the indexes.
    fn request_open(&mut self, now: Timestamp, caller: CallerId, link: &LinkId) {
        let link = link.clone();
        let state = self.links.entry(link.clone()).or_default();
        if let Some(grant) = state.held.as_ref().filter(|_| now < state.held_until) {
            let result = Ok(grant.clone());
            self.outbox.push_back(Effect::Answer {
                caller,
                link,
                result,
            });
            return;
        }
        if let Some(flight) = &mut state.flight {
            flight.waiters.push(caller);
            self.callers.insert(caller, link);
            return;
        }
        if let Some(until) = state.quiet_until.filter(|until| now < *until) {
            let delay = until.saturating_since(now);
            let result = Err(RefreshError::RetryAfter { delay });
            self.outbox.push_back(Effect::Answer {
                caller,
                link,
                result,
            });
            return;
        }
        self.callers.insert(caller, link.clone());
        let id = self.read(&link);
        let step = Step::Reading {
            id,
            purpose: ReadPurpose::Fresh,
        };
        self.links.get_mut(&link).expect("inserted above").flight = Some(Box::new(Flight {
            waiters: vec![caller],
            step,
        }));
    }

    fn caller_gone(&mut self, caller: CallerId) {
        // Unknown callers were already answered: going away is then a no-op.
        let Some(link) = self.callers.remove(&caller) else {
            return;
        };
        // Waiters are not indexed: no bracket needed.
        if let Some(flight) = self.links.get_mut(&link).and_then(|s| s.flight.as_mut()) {
            flight.waiters.retain(|w| *w != caller);
        }
    }

    fn timers_expired(&mut self, now: Timestamp) {
        for link in self.links.due(now) {
            self.links.open(&link);
            let flight = *self.take_flight(&link);
            let Step::Waiting { then, .. } = flight.step else {
                unreachable!("filtered on Waiting")
            };
            let next = match then {
                Wake::ReRead => {
                    let id = self.read(&link);
                    Next::Continue(Step::Reading {
                        id,
                        purpose: ReadPurpose::Fresh,
                    })
                }
                Wake::RetryPersist(persist) => self.persist(&link, persist),
                Wake::ResolveLease { lease, reason } => {
                    let id = self.read(&link);
                    Next::Continue(Step::Reading {
                        id,
                        purpose: ReadPurpose::ResolveLease { lease, reason },
                    })
                }
                Wake::RetrySettle(settle) => {
                    let id = self.read(&link);
                    Next::Continue(Step::Reading {
                        id,
                        purpose: ReadPurpose::RetrySettle(settle),
                    })
                }
            };
            self.advance(&link, now, flight.waiters, next);
            self.links.close(&link, false);
        }
    }

    fn result(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        let id = input.effect_id().expect("only results reach here");
        let link = self
            .awaiting
            .get(&id)
            .cloned()
            .ok_or(InputError::UnknownEffect(id))?;
        let step = &self
            .links
            .get(&link)
            .and_then(|s| s.flight.as_ref())
            .expect("an awaited effect belongs to a flight")
            .step;
        debug_assert_eq!(step.awaited(), Some(id));
        check_fits(step, &input)
            .map_err(|expected| InputError::MismatchedResult { id, expected })?;
        self.release_id(id);
        self.links.open(&link);
        let Flight { waiters, step } = *self.take_flight(&link);
        let next = self.step(&link, now, step, input);
        self.advance(&link, now, waiters, next);
        self.links.close(&link, false);
        Ok(())
    }

    /// One transition of a flight on the result of the effect it awaited.
    fn step(&mut self, link: &LinkId, now: Timestamp, step: Step, input: Input) -> Next {
        use CasOutcome::{Lost, Won};
        match (step, input) {
            (Step::Reading { purpose, .. }, Input::LinkRead { row, .. }) => match purpose {
                ReadPurpose::Fresh => self.proceed(link, now, row, None),
                ReadPurpose::ResolveLease { lease, reason } => {
                    self.lease_resolved(link, now, lease, reason, row)
                }
                ReadPurpose::RetrySettle(settle) => match row {
                    None => self.proceed(link, now, None, None),
                    Some(row) => self.settle(link, now, settle, &row),
                },
                ReadPurpose::AfterRejection {
                    presented,
                    reason,
                    lease,
                } => match row {
                    None => self.proceed(link, now, None, None),
                    Some(row) => {
                        let settle = Settle {
                            presented,
                            clear_lease: Some(lease),
                            failure: crate::flight::FailureChange::CacheRejected(reason.clone()),
                            answer: Err(RefreshError::ReauthenticationRequired(
                                crate::error::ReauthReason::Rejected {
                                    provider_reason: reason,
                                },
                            )),
                            attempts: 0,
                        };
                        self.settle(link, now, settle, &row)
                    }
                },
            },
            (
                Step::Reading {
                    purpose: ReadPurpose::ResolveLease { lease, .. },
                    ..
                },
                Input::StoreFailed { failure, .. },
            ) => self.resolve_failed(now, lease, failure.reason),
            (
                Step::Reading {
                    purpose: ReadPurpose::RetrySettle(settle),
                    ..
                },
                Input::StoreFailed { .. },
            ) => self.settle_failed(link, now, settle),
            (Step::Reading { .. }, Input::StoreFailed { failure, .. }) => {
                Machine::read_failed(failure.reason)
            }
            (Step::TakingLease { lease, .. }, input) => match cas_outcome(input) {
                Ok(Won(row)) => self.proceed(link, now, Some(row), Some(lease)),
                Ok(Lost(row)) => self.proceed(link, now, row, None),
                Err(reason) => self.lease_failed(link, lease, reason),
            },
            (Step::Exchanging { exchange, .. }, Input::ExchangeFinished { outcome, .. }) => {
                self.exchanged(link, now, exchange, outcome)
            }
            (Step::Persisting { persist, .. }, input) => match cas_outcome(input) {
                Ok(Won(_)) => self.persisted(link, persist.issued.access),
                Ok(Lost(row)) => self.persist_lost(link, now, row),
                Err(reason) => self.persist_failed(now, persist, reason),
            },
            (Step::Validating { grant, .. }, Input::ValidationFinished { outcome, .. }) => {
                match outcome {
                    ValidationOutcome::Valid | ValidationOutcome::Inconclusive { .. } => {
                        Next::Finish(Ok(grant))
                    }
                    // A token that expired while its validation was on the
                    // way (a paused process) is refused for its age, which
                    // says nothing about the refresh: start over.
                    ValidationOutcome::Invalid { .. } if now >= self.serve_until(&grant) => {
                        let id = self.read(link);
                        Next::Continue(Step::Reading {
                            id,
                            purpose: ReadPurpose::Fresh,
                        })
                    }
                    ValidationOutcome::Invalid { reason } => {
                        Next::Finish(Err(RefreshError::Temporary(
                            crate::error::TemporaryReason::ValidationFailed { detail: reason },
                        )))
                    }
                }
            }
            (Step::Settling { settle, .. }, input) => match cas_outcome(input) {
                Ok(Won(row)) => self.settled(link, now, settle, &row),
                Ok(Lost(Some(row))) => self.settle(link, now, settle, &row),
                Ok(Lost(None)) => self.proceed(link, now, None, None),
                Err(_) => self.settle_failed(link, now, settle),
            },
            (step, input) => unreachable!("check_fits admitted {input:?} for {step:?}"),
        }
    }

    /// Puts a flight back, or ends it and answers its waiters.
    fn advance(&mut self, link: &LinkId, now: Timestamp, waiters: Vec<CallerId>, next: Next) {
        let next = self.never_stale(link, now, &waiters, next);
        match next {
            Next::Continue(step) => {
                let flight = Some(Box::new(Flight { waiters, step }));
                self.links.entry(link.clone()).or_default().flight = flight;
            }
            Next::Finish(result) => self.finish(link, waiters, result),
            Next::AnswerAndContinue(result, step) => {
                self.answer_all(link, waiters, &result);
                let flight = Some(Box::new(Flight {
                    waiters: Vec::new(),
                    step,
                }));
                self.links.entry(link.clone()).or_default().flight = flight;
            }
        }
    }

    /// A token decided on before a stall (a row read, then a release that
    /// failed and was retried, with callers joining meanwhile) may have aged
    /// past serving by the time the flight answers: its waiters are served
    /// from a fresh read instead, or by the rest of the flight.
    fn never_stale(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        waiters: &[CallerId],
        next: Next,
    ) -> Next {
        let stale =
            |m: &Machine, answer: &Answer| answer.as_ref().is_ok_and(|g| now >= m.serve_until(g));
        match next {
            Next::Finish(answer) if !waiters.is_empty() && stale(self, &answer) => {
                let id = self.read(link);
                Next::Continue(Step::Reading {
                    id,
                    purpose: ReadPurpose::Fresh,
                })
            }
            Next::AnswerAndContinue(answer, step) if stale(self, &answer) => Next::Continue(step),
            other => other,
        }
    }

    fn finish(&mut self, link: &LinkId, waiters: Vec<CallerId>, result: Answer) {
        let until = result
            .as_ref()
            .map_or(Timestamp::default(), |g| self.serve_until(g));
        let state = self.links.entry(link.clone()).or_default();
        state.flight = None;
        if std::mem::take(&mut state.replaced) {
            // An enrolment replaced the row during this flight: its result
            // may be the older family's. Serve the waiters from the row as
            // it is now, and hold nothing from before.
            if !waiters.is_empty() {
                let id = self.read(link);
                let step = Step::Reading {
                    id,
                    purpose: ReadPurpose::Fresh,
                };
                self.links.entry(link.clone()).or_default().flight =
                    Some(Box::new(Flight { waiters, step }));
            }
            return;
        }
        if let Ok(grant) = &result {
            state.held = Some(grant.clone());
            state.held_until = until;
        }
        self.answer_all(link, waiters, &result);
    }

    fn answer_all(&mut self, link: &LinkId, waiters: Vec<CallerId>, result: &Answer) {
        for caller in waiters {
            self.callers.remove(&caller);
            self.outbox.push_back(Effect::Answer {
                caller,
                link: link.clone(),
                result: result.clone(),
            });
        }
    }

    fn take_flight(&mut self, link: &LinkId) -> Box<Flight> {
        self.links
            .get_mut(link)
            .and_then(|s| s.flight.take())
            .expect("a flight is in progress")
    }

    /// Emits an effect under the smallest id not awaiting a result. Ids are
    /// thus a function of what is outstanding, not of history: two runs that
    /// reach the same situation by different paths hold equal machines,
    /// which is what lets an explorer recognise states it has seen.
    pub(crate) fn emit(&mut self, make: impl FnOnce(EffectId) -> Effect) -> EffectId {
        let id = self.free_ids.pop_first().unwrap_or_else(|| {
            self.end_id += 1;
            EffectId(self.end_id - 1)
        });
        let effect = make(id);
        self.awaiting.insert(id, effect.link().clone());
        self.outbox.push_back(effect);
        id
    }

    /// `id`'s result came in: it is free again.
    fn release_id(&mut self, id: EffectId) {
        self.awaiting.remove(&id);
        if id.0 + 1 == self.end_id {
            // The largest went: so do the free ids just below it.
            self.end_id = id.0;
            while self.end_id > 0 && self.free_ids.remove(&EffectId(self.end_id - 1)) {
                self.end_id -= 1;
            }
        } else {
            self.free_ids.insert(id);
        }
    }

    pub(crate) fn read(&mut self, link: &LinkId) -> EffectId {
        self.emit(|id| Effect::ReadLink {
            id,
            link: link.clone(),
        })
    }

    pub(crate) fn compare_and_swap(&mut self, link: &LinkId, write: Write) -> EffectId {
        self.emit(|id| Effect::CompareAndSwap {
            id,
            link: link.clone(),
            write,
        })
    }
}
