//! The [`Machine`]: one per process, for every link and every caller of
//! that process. It owns the bookkeeping — which effect awaits which result,
//! which callers wait on which link, the outbox — and hands each link's
//! decisions to [`crate::flight`].

use std::collections::VecDeque;
use std::fmt;

use crate::config::Config;
use crate::error::{InputError, RefreshError};
use crate::flight::{Answer, Flight, Next, ReadPurpose, Settle, Step, Wake};
use crate::ids::{CallerId, EffectId, LinkId};
use crate::io::{Effect, Input, ValidationOutcome};
use crate::row::{AccessGrant, CasOutcome, Lease, Write};
use crate::time::Timestamp;

/// What this process knows about one link between refreshes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct LinkState {
    /// The access token this process last handed out: the hot path.
    pub(crate) held: Option<AccessGrant>,
    /// The provider rate-limited us until then: new callers are told to
    /// retry without asking the store or the provider.
    pub(crate) quiet_until: Option<Timestamp>,
    /// A lease of ours under which the token was certainly not consumed
    /// (its write or release failed in the store): ours to take over.
    pub(crate) reusable_lease: Option<Lease>,
    /// The refresh in progress, if any.
    pub(crate) flight: Option<Flight>,
}

/// The sans-IO refresh machine. See the [crate documentation](crate) for
/// the driver loop.
///
/// Feed it [`Input`]s with [`handle_input`](Machine::handle_input); after
/// each, drain [`poll_output`](Machine::poll_output) and carry out every
/// [`Effect`]; arm a timer for [`poll_timeout`](Machine::poll_timeout).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Machine {
    pub(crate) config: Config,
    pub(crate) links: VecMap<LinkId, LinkState>,
    callers: VecMap<CallerId, LinkId>,
    awaiting: VecMap<EffectId, LinkId>,
    outbox: VecDeque<Effect>,
}

impl Machine {
    /// A machine with nothing in flight.
    pub fn new(config: Config) -> Self {
        Machine {
            config,
            links: VecMap::new(),
            callers: VecMap::new(),
            awaiting: VecMap::new(),
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
    pub fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        match input {
            Input::TokenRequested { caller, link } => self.requested(now, caller, link),
            Input::CallerGone { caller } => {
                self.caller_gone(caller);
                Ok(())
            }
            Input::TimerExpired => {
                self.timers_expired(now);
                Ok(())
            }
            result => self.result(now, result),
        }
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
        self.links
            .values()
            .filter_map(|s| match &s.flight {
                Some(Flight {
                    step: Step::Waiting { wake_at, .. },
                    ..
                }) => Some(*wake_at),
                _ => None,
            })
            .min()
    }

    /// The access token this process holds for `link`, if it is live at
    /// `now` outside the expiry margin. A request for it would be answered
    /// at once with this token; drivers may use this for a lock-free read.
    pub fn live_token(&self, link: &LinkId, now: Timestamp) -> Option<&AccessGrant> {
        self.links
            .get(link)?
            .held
            .as_ref()
            .filter(|g| self.config.is_live(g.expires_at, now))
    }

    /// Whether nothing is in flight and no effect is waiting to be polled.
    pub fn is_idle(&self) -> bool {
        self.outbox.is_empty() && self.links.values().all(|s| s.flight.is_none())
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
        let state = self.links.entry(link.clone()).or_default();
        if let Some(grant) = state
            .held
            .as_ref()
            .filter(|g| self.config.is_live(g.expires_at, now))
        {
            let result = Ok(grant.clone());
            self.outbox.push_back(Effect::Answer {
                caller,
                link,
                result,
            });
            return Ok(());
        }
        if let Some(flight) = &mut state.flight {
            flight.waiters.push(caller);
            self.callers.insert(caller, link);
            return Ok(());
        }
        if let Some(until) = state.quiet_until.filter(|until| now < *until) {
            let delay = until.saturating_since(now);
            let result = Err(RefreshError::RetryAfter { delay });
            self.outbox.push_back(Effect::Answer {
                caller,
                link,
                result,
            });
            return Ok(());
        }
        self.callers.insert(caller, link.clone());
        let id = self.read(&link);
        let step = Step::Reading {
            id,
            purpose: ReadPurpose::Fresh,
        };
        self.links.get_mut(&link).expect("inserted above").flight = Some(Flight {
            waiters: vec![caller],
            step,
        });
        Ok(())
    }

    fn caller_gone(&mut self, caller: CallerId) {
        // Unknown callers were already answered: going away is then a no-op.
        let Some(link) = self.callers.remove(&caller) else {
            return;
        };
        if let Some(flight) = self.links.get_mut(&link).and_then(|s| s.flight.as_mut()) {
            flight.waiters.retain(|w| *w != caller);
        }
    }

    fn timers_expired(&mut self, now: Timestamp) {
        let due: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, s)| {
                matches!(&s.flight, Some(Flight { step: Step::Waiting { wake_at, .. }, .. }) if *wake_at <= now)
            })
            .map(|(link, _)| link.clone())
            .collect();
        for link in due {
            let flight = self.take_flight(&link);
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
            };
            self.advance(&link, flight.waiters, next);
        }
    }

    fn result(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        let id = input.effect_id().expect("only results reach here");
        let link = self
            .awaiting
            .get(&id)
            .cloned()
            .ok_or(InputError::UnknownEffect(id))?;
        let step = &self.links[&link]
            .flight
            .as_ref()
            .expect("an awaited effect belongs to a flight")
            .step;
        debug_assert_eq!(step.awaited(), Some(id));
        check_fits(step, &input)
            .map_err(|expected| InputError::MismatchedResult { id, expected })?;
        self.awaiting.remove(&id);
        let Flight { waiters, step } = self.take_flight(&link);
        let next = self.step(&link, now, step, input);
        self.advance(&link, waiters, next);
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
            (Step::Reading { .. }, Input::StoreFailed { failure, .. }) => {
                Machine::read_failed(failure.reason)
            }
            (Step::TakingLease { lease, .. }, input) => match cas_outcome(input) {
                Ok(Won(row)) => {
                    let state = self.links.entry(link.clone()).or_default();
                    if state.reusable_lease.as_ref() == row.lease.as_ref() {
                        state.reusable_lease = None;
                    }
                    self.proceed(link, now, Some(row), Some(lease))
                }
                Ok(Lost(row)) => self.proceed(link, now, row, None),
                Err(reason) => self.lease_failed(link, lease, reason),
            },
            (Step::Exchanging { exchange, .. }, Input::ExchangeFinished { outcome, .. }) => {
                self.exchanged(link, now, exchange, outcome)
            }
            (Step::Persisting { persist, .. }, input) => match cas_outcome(input) {
                Ok(Won(_)) => self.persisted(link, persist.issued.access),
                // The row moved on without us (another presentation inside
                // a grace window stored its own pair). Ours still works.
                Ok(Lost(_)) => Next::Finish(Ok(persist.issued.access)),
                Err(_) => self.persist_failed(now, persist),
            },
            (Step::Validating { grant, .. }, Input::ValidationFinished { outcome, .. }) => {
                match outcome {
                    ValidationOutcome::Valid | ValidationOutcome::Inconclusive { .. } => {
                        Next::Finish(Ok(grant))
                    }
                    ValidationOutcome::Invalid { reason } => {
                        Next::Finish(Err(RefreshError::Temporary(
                            crate::error::TemporaryReason::ValidationFailed { detail: reason },
                        )))
                    }
                }
            }
            (Step::Settling { settle, .. }, input) => match cas_outcome(input) {
                Ok(Won(row)) => self.settled(settle, &row),
                Ok(Lost(Some(row))) => self.settle(link, now, settle, &row),
                Ok(Lost(None)) => self.proceed(link, now, None, None),
                Err(_) => self.settle_failed(link, settle),
            },
            (step, input) => unreachable!("check_fits admitted {input:?} for {step:?}"),
        }
    }

    /// Puts a flight back, or ends it and answers its waiters.
    fn advance(&mut self, link: &LinkId, waiters: Vec<CallerId>, next: Next) {
        match next {
            Next::Continue(step) => {
                self.links.entry(link.clone()).or_default().flight = Some(Flight { waiters, step });
            }
            Next::Finish(result) => self.finish(link, waiters, result),
        }
    }

    fn finish(&mut self, link: &LinkId, waiters: Vec<CallerId>, result: Answer) {
        let state = self.links.entry(link.clone()).or_default();
        state.flight = None;
        if let Ok(grant) = &result {
            state.held = Some(grant.clone());
        }
        for caller in waiters {
            self.callers.remove(&caller);
            self.outbox.push_back(Effect::Answer {
                caller,
                link: link.clone(),
                result: result.clone(),
            });
        }
    }

    fn take_flight(&mut self, link: &LinkId) -> Flight {
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
        let id = (0..)
            .map(EffectId)
            .find(|id| !self.awaiting.contains_key(id))
            .expect("fewer than u64::MAX effects outstanding");
        let effect = make(id);
        self.awaiting.insert(id, effect.link().clone());
        self.outbox.push_back(effect);
        id
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

/// A store write's result, or why the store failed.
fn cas_outcome(input: Input) -> Result<CasOutcome, String> {
    match input {
        Input::CompareAndSwapWon { row, .. } => Ok(CasOutcome::Won(row)),
        Input::CompareAndSwapLost { row, .. } => Ok(CasOutcome::Lost(row)),
        Input::StoreFailed { failure, .. } => Err(failure.reason),
        other => unreachable!("check_fits admitted {other:?} for a write"),
    }
}

/// Whether `input` is a result the step can take; if not, what it awaits.
fn check_fits(step: &Step, input: &Input) -> Result<(), &'static str> {
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

/// A map kept as a vector sorted by key: the few entries a machine holds
/// (one per link, caller or outstanding effect) clone, hash and compare
/// faster this way than in a B-tree, which matters to explorers that copy
/// machines millions of times. It iterates, hashes and compares in key
/// order, as the `BTreeMap` it replaces did.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct VecMap<K, V>(Vec<(K, V)>);

impl<K: Ord, V> VecMap<K, V> {
    pub(crate) fn new() -> Self {
        VecMap(Vec::new())
    }

    fn position(&self, key: &K) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(key))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.position(key).is_ok()
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.position(key).ok().map(|i| &self.0[i].1)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.position(key).ok().map(|i| &mut self.0[i].1)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.position(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.position(key).ok().map(|i| self.0.remove(i).1)
    }

    pub(crate) fn entry(&mut self, key: K) -> VecMapEntry<'_, K, V> {
        VecMapEntry { map: self, key }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
}

impl<K: Ord, V> std::ops::Index<&K> for VecMap<K, V> {
    type Output = V;
    fn index(&self, key: &K) -> &V {
        self.get(key).expect("no entry found for key")
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for VecMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

/// An entry of a [`VecMap`], as `BTreeMap::entry` gives.
pub(crate) struct VecMapEntry<'a, K, V> {
    map: &'a mut VecMap<K, V>,
    key: K,
}

impl<'a, K: Ord, V: Default> VecMapEntry<'a, K, V> {
    pub(crate) fn or_default(self) -> &'a mut V {
        let i = match self.map.position(&self.key) {
            Ok(i) => i,
            Err(i) => {
                self.map.0.insert(i, (self.key, V::default()));
                i
            }
        };
        &mut self.map.0[i].1
    }
}
