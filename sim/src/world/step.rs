//! Taking one step: [`World::apply`] and the bookkeeping shared by every
//! kind of step — feeding a machine an input and routing its effects, a
//! crash, an answer reaching its caller.

use std::sync::Arc;

use baton_core::{
    CallerId, Effect, ExchangeOutcome, Input, InputKind, RefreshError, RefreshMachine, Timestamp,
};

use super::memo;
use super::{
    caller_name, describe_effect, describe_input, describe_outcome, shift, Action,
    IgnoredRetryAfter, Keep, LinkId, Message, Met, Notes, Route, StepLog, World,
};
use crate::spec::WorldSpec;
use crate::symmetry::Printed;

impl World {
    /// Takes one step. `log`, if given, receives a description of it.
    pub fn apply(&mut self, spec: &WorldSpec, action: Action, log: Option<&mut StepLog>) {
        self.apply_noting(spec, action, log, None);
    }

    /// Takes one step, recording in `met` each input a machine received and
    /// the stage it met (for coverage).
    pub fn apply_observed(&mut self, spec: &WorldSpec, action: Action, met: &mut Vec<Met>) {
        self.apply_noting(spec, action, None, Some(met));
    }

    fn apply_noting(
        &mut self,
        spec: &WorldSpec,
        action: Action,
        log: Option<&mut StepLog>,
        met: Option<&mut Vec<Met>>,
    ) {
        self.step(spec, action, Notes { log, met });
    }

    fn step(&mut self, spec: &WorldSpec, action: Action, mut note: Notes<'_>) {
        match action {
            Action::Request { caller, route } => {
                let min_generation =
                    self.min_generation(usize::from(self.callers[usize::from(caller)].link));
                let c = &mut self.callers.to_mut()[usize::from(caller)];
                c.min_generation = min_generation;
                c.requests_left -= 1;
                c.waiting = true;
                let (replica, link) = (
                    usize::from(c.replica),
                    self.links[usize::from(c.link)].clone(),
                );
                self.replicas[replica].touched = true;
                note.add(|| {
                    (
                        caller_name(self, caller),
                        format!("r{replica}"),
                        format!("asks for a token for {link}"),
                    )
                });
                if route == Route::HotPath {
                    let held = self.held_token(spec, &self.callers[usize::from(caller)]);
                    let grant = held.expect("the hot path is offered only with a token held");
                    note.add(|| {
                        (
                            format!("r{replica}"),
                            caller_name(self, caller),
                            "serves the token it holds (hot path)".into(),
                        )
                    });
                    Arc::make_mut(&mut self.replicas[replica].machine).served_cached(&link);
                    self.answer(usize::from(caller), Ok(grant), &mut note);
                    return;
                }
                let input = Input::TokenRequested {
                    caller: self.caller_id(caller),
                    link,
                };
                self.feed(spec, replica, input, &mut note);
            }
            Action::Deliver { message, fault } => {
                let message = self.messages.remove(usize::from(message));
                self.deliver(spec, message, fault, &mut note);
            }
            Action::Receive { message } => match self.messages.remove(usize::from(message)) {
                Message::Reply {
                    replica,
                    id,
                    outcome,
                    link,
                    ..
                } => {
                    if let ExchangeOutcome::RateLimited {
                        retry_after: Some(delay),
                    } = &outcome
                    {
                        let r = usize::from(replica);
                        let until = shift(self.now, spec.skew(r)) + *delay;
                        let link = self.link_index(&link);
                        let quiet = self.replicas[r].quiet.get_mut();
                        quiet.retain(|(l, _)| *l != link);
                        quiet.push((link, until));
                    }
                    note.add(|| {
                        (
                            "provider".into(),
                            format!("r{replica}"),
                            format!("reply: {}", describe_outcome(&outcome)),
                        )
                    });
                    let input = Input::ExchangeFinished { id, outcome };
                    self.feed(spec, usize::from(replica), input, &mut note);
                }
                Message::ReadReply { replica, input, .. } => {
                    note.add(|| {
                        (
                            "store".into(),
                            format!("r{replica}"),
                            format!("read reply: {}", describe_input(&input)),
                        )
                    });
                    self.feed(spec, usize::from(replica), input, &mut note);
                }
                _ => unreachable!("Receive is offered for replies only"),
            },
            Action::TimeOut { message } => {
                let index = usize::from(message);
                let (replica, id, deadline) = match &self.messages[index] {
                    Message::Sent {
                        replica,
                        effect: Effect::Exchange { id, deadline, .. },
                        ..
                    } => {
                        let found = (*replica, *id, *deadline);
                        self.messages.change(index, |m| {
                            if let Message::Sent { orphaned, .. } = m {
                                *orphaned = true;
                            }
                        });
                        self.budget.timeouts -= 1;
                        self.used.timeout = true;
                        found
                    }
                    Message::Reply {
                        replica,
                        id,
                        deadline,
                        outcome,
                        ..
                    } => {
                        let (replica, id, deadline) = (*replica, *id, *deadline);
                        if let ExchangeOutcome::Issued(tokens) = outcome {
                            if let Some(r) = &tokens.refresh_token {
                                self.lost_tokens.get_mut().insert(r.clone());
                            }
                        }
                        self.messages.remove(index);
                        self.budget.timeouts -= 1;
                        self.used.timeout = true;
                        (replica, id, deadline)
                    }
                    Message::Lost {
                        replica,
                        id,
                        deadline,
                        ..
                    } => {
                        let (replica, id, deadline) = (*replica, *id, *deadline);
                        self.messages.remove(index);
                        (replica, id, deadline)
                    }
                    Message::Sent { .. } | Message::ReadReply { .. } => {
                        unreachable!("TimeOut is offered for exchanges only")
                    }
                };
                let to = self.world_time(spec, usize::from(replica), deadline);
                self.move_clock(spec, to, &mut note);
                note.add(|| {
                    (
                    format!("r{replica}"),
                    format!("r{replica}"),
                    "gives up waiting for the provider's reply (deadline passed): outcome unknown"
                        .into(),
                )
                });
                let input = Input::ExchangeFinished {
                    id,
                    outcome: ExchangeOutcome::OutcomeUnknown,
                };
                self.feed(spec, usize::from(replica), input, &mut note);
            }
            Action::FireTimer { replica } => {
                let r = usize::from(replica);
                let (at, stall) = self
                    .timer_due(spec, r)
                    .expect("offered only with a timer armed");
                if stall {
                    self.budget.clock_jumps -= 1;
                    self.used.clock_jump = true;
                }
                self.move_clock(spec, at, &mut note);
                note.add(|| {
                    (
                        format!("r{replica}"),
                        format!("r{replica}"),
                        format!("timer fires at {}", self.now),
                    )
                });
                self.feed(spec, r, Input::TimerExpired, &mut note);
            }
            Action::AdvanceClock => {
                let to = self.next_event().expect("offered only with an event ahead");
                self.budget.clock_jumps -= 1;
                self.used.clock_jump = true;
                note.add(|| {
                    (
                        "clock".into(),
                        "clock".into(),
                        format!("time jumps to {to} (a stall)"),
                    )
                });
                self.move_clock(spec, to, &mut note);
            }
            Action::Crash { replica } => self.crash(spec, usize::from(replica), &mut note),
            Action::Relink { .. } | Action::Unlink { .. } | Action::Revoke { .. } => {
                self.outside_write(spec, action, &mut note)
            }
            Action::Cancel { caller } => {
                let c = &mut self.callers.to_mut()[usize::from(caller)];
                c.waiting = false;
                c.cancelled = true;
                let replica = usize::from(c.replica);
                self.budget.cancels -= 1;
                self.used.cancel = true;
                note.add(|| {
                    (
                        caller_name(self, caller),
                        format!("r{replica}"),
                        "goes away (request cancelled)".into(),
                    )
                });
                let input = Input::CallerGone {
                    caller: self.caller_id(caller),
                };
                self.feed(spec, replica, input, &mut note);
            }
        }
    }

    fn crash(&mut self, spec: &WorldSpec, r: usize, note: &mut Notes<'_>) {
        self.budget.crashes -= 1;
        self.used.crash = true;
        let old = self.replicas[r].incarnation;
        let incarnation = old + 1;
        let config = spec
            .config(r, incarnation)
            .expect("the spec's configuration was checked at the start");
        self.replicas[r].machine = Arc::new(Printed::new(spec.algorithm_of(r).machine(config)));
        self.replicas[r].incarnation = incarnation;
        self.replicas[r].quiet.clear();
        let mut lost = Vec::new();
        self.messages.retain(|m| {
            if m.sender() != (r as u8, old) {
                return Keep::AsItIs;
            }
            match m {
                // Requests already on the wire keep going: zombies.
                Message::Sent {
                    effect: Effect::Exchange { .. },
                    ..
                } => Keep::Changed(|m| {
                    if let Message::Sent { orphaned, .. } = m {
                        *orphaned = true;
                    }
                }),
                Message::Reply {
                    outcome: ExchangeOutcome::Issued(tokens),
                    ..
                } => {
                    lost.extend(tokens.refresh_token.clone());
                    Keep::Drop
                }
                _ => Keep::Drop,
            }
        });
        if !lost.is_empty() {
            self.lost_tokens.get_mut().extend(lost);
        }
        let waited = |caller: &super::Caller| usize::from(caller.replica) == r && caller.waiting;
        if self.callers.iter().any(waited) {
            for caller in self.callers.to_mut() {
                if waited(caller) {
                    caller.waiting = false;
                    caller.died = true;
                }
            }
        }
        note.add(|| {
            (
                format!("r{r}"),
                format!("r{r}"),
                format!("crashes and restarts as incarnation {incarnation}: its memory is gone"),
            )
        });
    }

    /// The id replica `r`'s machine knows `caller` by: its place among
    /// that replica's callers. Local rather than the world's index, so
    /// that no machine's state names which replica it is (`crate::symmetry`
    /// permutes replicas and renames owner ids, never caller ids).
    fn caller_id(&self, caller: u16) -> CallerId {
        let replica = self.callers[usize::from(caller)].replica;
        let first = self
            .callers
            .iter()
            .position(|c| c.replica == replica)
            .expect("a caller's replica has callers");
        CallerId((usize::from(caller) - first) as u64)
    }

    /// The world's index of the caller replica `r`'s machine calls `id`.
    /// The index of `link` among the world's links.
    fn link_index(&self, link: &LinkId) -> u8 {
        let index = self.links.iter().position(|l| l == link);
        index.expect("the world's machines ask only for its links") as u8
    }

    fn caller_index(&self, r: usize, id: CallerId) -> usize {
        let first = self
            .callers
            .iter()
            .position(|c| usize::from(c.replica) == r)
            .expect("a machine answers only its own callers");
        first + usize::try_from(id.0).expect("caller ids are indices")
    }

    pub(super) fn feed(&mut self, spec: &WorldSpec, r: usize, input: Input, note: &mut Notes<'_>) {
        let local = shift(self.now, spec.skew(r));
        let replica = &mut self.replicas[r];
        note.met(r, || {
            (
                InputKind::of(&input),
                replica.machine.stage_for(local, &input),
            )
        });
        let key = memo::key(&replica.machine, r as u8, local, &input);
        let effects = match memo::recall(key) {
            Some(outcome) => {
                replica.machine = outcome.machine;
                outcome.effects
            }
            None => {
                let machine = Arc::make_mut(&mut replica.machine);
                if let Err(error) = machine.handle_input(local, input) {
                    panic!("the world fed r{r} an input it refused: {error}");
                }
                let effects: Arc<[Effect]> = std::iter::from_fn(|| machine.poll_output()).collect();
                memo::remember(
                    key,
                    memo::Outcome {
                        machine: Arc::clone(&replica.machine),
                        effects: Arc::clone(&effects),
                    },
                );
                effects
            }
        };
        let incarnation = self.replicas[r].incarnation;
        for effect in effects.iter().cloned() {
            if let Effect::Answer { caller, result, .. } = effect {
                self.answer(self.caller_index(r, caller), result, note);
            } else {
                if let Effect::Exchange { link, .. } = &effect {
                    let link = self.link_index(link);
                    let replica = &mut self.replicas[r];
                    let mut periods = replica.quiet.get().into_iter().flatten();
                    let quiet = periods.find(|(l, _)| *l == link);
                    if let Some(&(_, until)) = quiet.filter(|(_, until)| local < *until) {
                        replica.ignored_retry_after.get_or_insert_with(|| {
                            Box::new(IgnoredRetryAfter {
                                link,
                                sent_at: local,
                                quiet_until: until,
                            })
                        });
                    }
                }
                note.add(|| {
                    (
                        format!("r{r}"),
                        format!("r{r}"),
                        format!("sends {}", describe_effect(&effect)),
                    )
                });
                self.messages.push(Message::Sent {
                    replica: r as u8,
                    incarnation,
                    effect,
                    orphaned: false,
                });
            }
        }
    }

    fn answer(
        &mut self,
        index: usize,
        result: Result<baton_core::AccessGrant, RefreshError>,
        note: &mut Notes<'_>,
    ) {
        let link = self.links[usize::from(self.callers[index].link)].clone();
        let judged = crate::invariants::judge_answer(&*self, &link, &result).or_else(|| {
            crate::invariants::judge_family(
                &self.provider,
                self.callers[index].min_generation,
                &result,
            )
        });
        let replica = format!("r{}", self.callers[index].replica);
        note.add(|| {
            (
                replica,
                caller_name(self, index as u16),
                match &result {
                    Ok(grant) => format!("gets access token {}", grant.token.expose_secret()),
                    Err(error) => format!("gets an error: {error}"),
                },
            )
        });
        let c = &mut self.callers.to_mut()[index];
        c.waiting = false;
        if c.bad.is_none() {
            c.bad = judged.map(Box::new);
        }
    }

    /// Moves time forward to `to`. Where the world keeps a bound on how late
    /// a request may reach the provider, requests older than it are gone:
    /// the provider never sees them, and their senders learn nothing until
    /// their deadlines.
    pub(super) fn move_clock(&mut self, spec: &WorldSpec, to: Timestamp, note: &mut Notes<'_>) {
        self.now = self.now.max(to);
        let Some(age) = spec
            .timing
            .max_request_age
            .filter(|_| !spec.path_ignores_max_request_age)
        else {
            return;
        };
        let mut i = 0;
        while i < self.messages.len() {
            let expired = match &self.messages[i] {
                Message::Sent {
                    replica,
                    effect: Effect::Exchange { deadline, .. },
                    ..
                } => {
                    let sent = self.world_time(spec, usize::from(*replica), *deadline)
                        - spec.timing.exchange_timeout;
                    sent + age <= self.now
                }
                _ => false,
            };
            if !expired {
                i += 1;
                continue;
            }
            let Message::Sent {
                replica,
                incarnation,
                effect:
                    Effect::Exchange {
                        id,
                        link,
                        refresh_token,
                        deadline,
                    },
                orphaned,
            } = self.messages.remove(i)
            else {
                unreachable!("matched above")
            };
            note.add(|| {
                (
                    format!("r{replica}"),
                    "provider".into(),
                    format!(
                        "the request presenting {} is older than the path allows: it never arrives",
                        refresh_token.expose_secret()
                    ),
                )
            });
            if !orphaned {
                self.used.timeout = true;
                self.messages.push(Message::Lost {
                    link,
                    replica,
                    incarnation,
                    id,
                    deadline,
                });
            }
        }
    }
}
