//! The world: replicas (one machine each) and their callers, one store, one
//! provider, a logical clock, the messages in flight between them, and the
//! adversary's remaining fault budget. A step ([`Action`]) is one atomic
//! thing happening; [`World::actions`] lists every step possible now and
//! [`World::apply`] takes one.
//!
//! Store operations are atomic with their reply (a database executes and
//! answers in one step as far as any other actor can tell), so they take one
//! step. An exchange takes two: the provider processes the request, then the
//! reply travels back — and in between, time passes, leases expire, senders
//! crash or give up, and the request may become a zombie that reaches the
//! provider after its sender stopped waiting.

use std::collections::BTreeSet;

use baton_core::{
    CallerId, Effect, EffectId, ExchangeOutcome, Input, LinkId, RefreshError, RefreshMachine,
    RefreshToken, StoreFailure, Timestamp, ValidationOutcome,
};
use baton_fakes::{FakeProvider, InMemoryStore, ProviderFault, StoreFault};
use serde::{Deserialize, Serialize};

use crate::spec::{FaultBudget, WorldSpec};
use crate::zoo::AnyMachine;

/// A process: one machine, and which incarnation of it this is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    /// The refresh machine (baton's, or a historical model).
    pub machine: AnyMachine,
    /// Bumped by every crash; leases name it.
    pub incarnation: u32,
    /// Whether any caller of this replica has made a request yet.
    pub touched: bool,
}

/// Something wrong with an answer a caller received, judged when it arrived.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BadAnswer {
    /// The access token handed out was not live at the provider.
    DeadToken {
        /// The token text (fake tokens are not secret).
        token: String,
    },
    /// The access token handed out belongs to another link.
    WrongLink {
        /// The token text.
        token: String,
    },
    /// An error the world does not justify (no fault explains it, or a live
    /// refresh token existed that nobody lost).
    UnjustifiedError(RefreshError),
}

/// One caller: a request handler in one replica, asking for one link.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    /// Its process.
    pub replica: u8,
    /// Index of its link.
    pub link: u8,
    /// Requests it has yet to make.
    pub requests_left: u8,
    /// Waiting for an answer now.
    pub waiting: bool,
    /// It went away once.
    pub cancelled: bool,
    /// Its process crashed while it waited.
    pub died: bool,
    /// The first bad answer it got, if any.
    pub bad: Option<BadAnswer>,
}

/// A message between actors.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// An effect on its way to the store, the token endpoint or the API.
    Sent {
        /// Sender.
        replica: u8,
        /// Sender's incarnation.
        incarnation: u32,
        /// The effect.
        effect: Effect,
        /// The sender no longer waits for it (it timed out, or crashed): a
        /// zombie request, whose reply nobody will read.
        orphaned: bool,
    },
    /// The provider's reply to an exchange, on its way back.
    Reply {
        /// Whose tokens.
        link: LinkId,
        /// Recipient.
        replica: u8,
        /// Recipient's incarnation.
        incarnation: u32,
        /// The exchange it answers.
        id: EffectId,
        /// The exchange's deadline at the driver.
        deadline: Timestamp,
        /// What the provider did.
        outcome: ExchangeOutcome,
    },
    /// A store read's reply on its way back: the row as it was when read.
    /// Between the read and its arrival the row may change — the stale read
    /// every real driver lives with.
    ReadReply {
        /// Recipient.
        replica: u8,
        /// Recipient's incarnation.
        incarnation: u32,
        /// The read's result.
        input: Input,
    },
    /// A reply that will never arrive: the sender learns at its deadline.
    Lost {
        /// Whose tokens.
        link: LinkId,
        /// Recipient.
        replica: u8,
        /// Recipient's incarnation.
        incarnation: u32,
        /// The exchange it answers.
        id: EffectId,
        /// When the driver gives up.
        deadline: Timestamp,
    },
}

impl Message {
    /// The replica and incarnation that sent it (or that it returns to).
    pub fn sender(&self) -> (u8, u32) {
        match self {
            Message::Sent {
                replica,
                incarnation,
                ..
            }
            | Message::Reply {
                replica,
                incarnation,
                ..
            }
            | Message::Lost {
                replica,
                incarnation,
                ..
            }
            | Message::ReadReply {
                replica,
                incarnation,
                ..
            } => (*replica, *incarnation),
        }
    }

    /// The link of an exchange its sender is still waiting on (the request,
    /// its reply, or the silence where a lost reply would be).
    pub fn awaited_exchange(&self) -> Option<&LinkId> {
        match self {
            Message::Sent {
                effect: Effect::Exchange { link, .. },
                orphaned: false,
                ..
            }
            | Message::Reply { link, .. }
            | Message::Lost { link, .. } => Some(link),
            Message::Sent { .. } | Message::ReadReply { .. } => None,
        }
    }
}

/// A fault injected with a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The token endpoint rate-limits.
    RateLimited,
    /// The token endpoint fails before processing.
    Transient,
    /// The provider rotates; the reply is lost.
    LostReply,
    /// The provider rotates, then answers 5xx.
    RotatedThen5xx,
    /// The store write fails; `applied` says whether it landed anyway.
    StoreWriteFailed {
        /// Landed despite the error.
        applied: bool,
    },
    /// The store read fails.
    StoreReadFailed,
    /// The validation call fails without an answer.
    ValidationInconclusive,
}

/// One step of the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum Action {
    /// A caller asks for a token.
    Request {
        /// Caller index.
        caller: u16,
    },
    /// A message reaches the store, the token endpoint or the API, which
    /// acts on it (store and API replies are immediate).
    Deliver {
        /// Message index.
        message: u16,
        /// A fault injected with it.
        fault: Option<Fault>,
    },
    /// An exchange reply reaches its machine.
    Receive {
        /// Message index.
        message: u16,
    },
    /// The driver's exchange deadline passes: the machine learns the outcome
    /// is unknown. The request, if still on its way, goes on as a zombie.
    TimeOut {
        /// Message index.
        message: u16,
    },
    /// A machine's timer fires (time moves to it).
    FireTimer {
        /// Replica index.
        replica: u8,
    },
    /// Time jumps to the next lease expiry, token expiry or deadline.
    AdvanceClock,
    /// A replica crashes and restarts with empty memory.
    Crash {
        /// Replica index.
        replica: u8,
    },
    /// A waiting caller goes away.
    Cancel {
        /// Caller index.
        caller: u16,
    },
}

/// Which kinds of fault a run has used (invariants excuse some outcomes
/// only under some faults).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultsUsed {
    /// A replica crashed.
    pub crash: bool,
    /// A caller went away.
    pub cancel: bool,
    /// A store operation failed.
    pub store_failure: bool,
    /// The provider rate-limited.
    pub rate_limit: bool,
    /// The provider failed transiently (before or after rotating).
    pub transient: bool,
    /// A reply was lost after the provider rotated.
    pub lost_reply: bool,
    /// The provider rotated and then failed.
    pub rotated_then_5xx: bool,
    /// A driver deadline passed with the request or reply on its way.
    pub timeout: bool,
    /// A validation call failed.
    pub validation_failure: bool,
    /// The clock jumped (a stall).
    pub clock_jump: bool,
}

impl FaultsUsed {
    /// Whether some fault destroyed knowledge of an issued token (the
    /// faults under which a lost rotation is excused).
    pub fn lost_knowledge(&self) -> bool {
        self.crash || self.lost_reply || self.timeout || self.rotated_then_5xx
    }
}

/// The whole world.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World {
    /// The world's clock.
    pub now: Timestamp,
    /// The processes.
    pub replicas: Vec<Replica>,
    /// The callers, replica-major.
    pub callers: Vec<Caller>,
    /// The shared store.
    pub store: InMemoryStore,
    /// The provider.
    pub provider: FakeProvider,
    /// Messages in flight, oldest first.
    pub messages: Vec<Message>,
    /// Faults the adversary may still inject.
    pub budget: FaultBudget,
    /// Faults it has injected.
    pub used: FaultsUsed,
    /// Refresh tokens the provider issued whose reply nobody received.
    pub lost_tokens: BTreeSet<RefreshToken>,
    /// The links, by index.
    pub links: Vec<LinkId>,
}

/// One thing that happened within a step: `from` did `text` to `to` (the
/// same actor for things it did by itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Who acted.
    pub from: String,
    /// Whom it concerned.
    pub to: String,
    /// What happened, in words.
    pub text: String,
}

/// What one step did, for timelines and diagrams.
#[derive(Clone, Debug, Default)]
pub struct StepLog {
    /// The things that happened, in order.
    pub entries: Vec<LogEntry>,
}

impl World {
    /// The world at the start: every link's access token has just expired;
    /// no caller has asked yet.
    pub fn initial(spec: &WorldSpec) -> Result<World, String> {
        let mut provider = FakeProvider::new(spec.provider, spec.timing.access_lifetime);
        let mut store = InMemoryStore::new();
        let links: Vec<LinkId> = (0..spec.links.max(1))
            .map(|i| LinkId::new("github", format!("u{i}")))
            .collect();
        for (i, link) in links.iter().enumerate() {
            let prefix = if links.len() == 1 {
                String::new()
            } else {
                format!("u{i}.")
            };
            let tokens = provider.enroll(link, &prefix, Timestamp::ZERO);
            store.insert(
                link.clone(),
                baton_core::StoredLink {
                    access: Some(tokens.access),
                    refresh_token: tokens.refresh_token,
                    failure: None,
                    lease: None,
                },
            );
        }
        let mut replicas = Vec::new();
        for r in 0..usize::from(spec.replicas) {
            let config = spec.config(r, 0).map_err(|e| e.to_string())?;
            replicas.push(Replica {
                machine: spec.algorithm.machine(config),
                incarnation: 0,
                touched: false,
            });
        }
        let mut callers = Vec::new();
        for r in 0..spec.replicas {
            for c in 0..spec.callers {
                callers.push(Caller {
                    replica: r,
                    link: c % spec.links.max(1),
                    requests_left: spec.requests,
                    waiting: false,
                    cancelled: false,
                    died: false,
                    bad: None,
                });
            }
        }
        Ok(World {
            now: Timestamp::ZERO + spec.timing.access_lifetime,
            replicas,
            callers,
            store,
            provider,
            messages: Vec::new(),
            budget: spec.faults,
            used: FaultsUsed::default(),
            lost_tokens: BTreeSet::new(),
            links,
        })
    }

    /// The refresh tokens of `link` that are live at the provider and that
    /// someone received (or could still receive).
    pub fn known_live(&self, link: &LinkId) -> Vec<RefreshToken> {
        self.provider
            .live_refresh_tokens(link)
            .into_iter()
            .filter(|t| !self.lost_tokens.contains(t))
            .collect()
    }

    fn untouched(&self, caller: &Caller, spec: &WorldSpec) -> bool {
        !caller.waiting
            && !caller.cancelled
            && !caller.died
            && caller.requests_left == spec.requests
    }

    /// Every step possible now, in a fixed order.
    pub fn actions(&self, spec: &WorldSpec) -> Vec<Action> {
        let mut actions = Vec::new();
        self.progress_actions(spec, &mut actions);
        self.fault_actions(spec, &mut actions);
        actions
    }

    /// The first step possible without the adversary's help, if any.
    pub fn first_progress(&self, spec: &WorldSpec) -> Option<Action> {
        let mut actions = Vec::new();
        self.progress_actions(spec, &mut actions);
        actions.into_iter().next()
    }

    /// Whether anything can happen without the adversary's help.
    pub fn can_progress(&self, spec: &WorldSpec) -> bool {
        let mut actions = Vec::new();
        self.progress_actions(spec, &mut actions);
        !actions.is_empty()
    }

    fn progress_actions(&self, spec: &WorldSpec, out: &mut Vec<Action>) {
        // Symmetry: untouched callers of one replica and link are
        // interchangeable, and so are untouched replicas with equal clocks;
        // only the first of each group may start.
        let first_untouched_replica = (0..self.replicas.len()).find(|r| !self.replicas[*r].touched);
        let mut started_groups = BTreeSet::new();
        for (i, caller) in self.callers.iter().enumerate() {
            if caller.waiting || caller.requests_left == 0 {
                continue;
            }
            let r = usize::from(caller.replica);
            if !self.replicas[r].touched {
                let same_clock =
                    first_untouched_replica.is_some_and(|first| spec.skew(first) == spec.skew(r));
                if first_untouched_replica != Some(r) && same_clock {
                    continue;
                }
            }
            if self.untouched(caller, spec) && !started_groups.insert((caller.replica, caller.link))
            {
                continue;
            }
            out.push(Action::Request { caller: i as u16 });
        }
        for (i, message) in self.messages.iter().enumerate() {
            let message_index = i as u16;
            match message {
                Message::Sent { .. } => out.push(Action::Deliver {
                    message: message_index,
                    fault: None,
                }),
                Message::Reply { .. } | Message::ReadReply { .. } => out.push(Action::Receive {
                    message: message_index,
                }),
                Message::Lost { .. } => out.push(Action::TimeOut {
                    message: message_index,
                }),
            }
        }
        for r in 0..self.replicas.len() {
            if self.timer_due(spec, r).is_some_and(|(_, stall)| !stall) {
                out.push(Action::FireTimer { replica: r as u8 });
            }
        }
    }

    /// When replica `r`'s timer fires in world time, and whether getting
    /// there is a stall, which only the adversary can arrange: time passing
    /// beyond the deadline of an exchange whose sender still awaits it, or
    /// passing at all while a store or API call is on its way (a healthy
    /// driver finishes both well inside the lease).
    fn timer_due(&self, spec: &WorldSpec, r: usize) -> Option<(Timestamp, bool)> {
        let at = self.replicas[r].machine.poll_timeout()?;
        let at = self.world_time(spec, r, at).max(self.now);
        let stall = self.messages.iter().any(|m| match m {
            Message::Sent { orphaned: true, .. } => false,
            Message::Sent {
                effect: Effect::Exchange { deadline, .. },
                ..
            }
            | Message::Reply { deadline, .. }
            | Message::Lost { deadline, .. } => *deadline < at,
            Message::Sent { .. } | Message::ReadReply { .. } => self.now < at,
        });
        Some((at, stall))
    }

    fn fault_actions(&self, spec: &WorldSpec, out: &mut Vec<Action>) {
        let b = &self.budget;
        if b.clock_jumps > 0 {
            for r in 0..self.replicas.len() {
                if self.timer_due(spec, r).is_some_and(|(_, stall)| stall) {
                    out.push(Action::FireTimer { replica: r as u8 });
                }
            }
        }
        for (i, message) in self.messages.iter().enumerate() {
            let message_index = i as u16;
            let mut fault = |fault: Fault| {
                out.push(Action::Deliver {
                    message: message_index,
                    fault: Some(fault),
                })
            };
            match message {
                Message::Sent {
                    effect, orphaned, ..
                } => match effect {
                    Effect::ReadLink { .. } if b.store_read_failures > 0 => {
                        fault(Fault::StoreReadFailed)
                    }
                    Effect::CompareAndSwap { .. } if b.store_write_failures > 0 => {
                        fault(Fault::StoreWriteFailed { applied: false });
                        fault(Fault::StoreWriteFailed { applied: true });
                    }
                    Effect::Exchange { .. } => {
                        if b.rate_limits > 0 {
                            fault(Fault::RateLimited);
                        }
                        if b.transients > 0 {
                            fault(Fault::Transient);
                        }
                        if b.lost_replies > 0 && !orphaned {
                            fault(Fault::LostReply);
                        }
                        if b.rotated_then_5xx > 0 {
                            fault(Fault::RotatedThen5xx);
                        }
                    }
                    Effect::Validate { .. } if b.validation_failures > 0 => {
                        fault(Fault::ValidationInconclusive)
                    }
                    _ => {}
                },
                Message::Reply { .. } | Message::Lost { .. } | Message::ReadReply { .. } => {}
            }
            let times_out = match message {
                Message::Sent {
                    effect: Effect::Exchange { .. },
                    orphaned: false,
                    ..
                }
                | Message::Reply { .. } => b.timeouts > 0,
                _ => false,
            };
            if times_out {
                out.push(Action::TimeOut {
                    message: message_index,
                });
            }
        }
        if b.clock_jumps > 0 && self.next_event().is_some() {
            out.push(Action::AdvanceClock);
        }
        if b.crashes > 0 {
            for (r, replica) in self.replicas.iter().enumerate() {
                if replica.touched {
                    out.push(Action::Crash { replica: r as u8 });
                }
            }
        }
        if b.cancels > 0 {
            for (i, caller) in self.callers.iter().enumerate() {
                if caller.waiting {
                    out.push(Action::Cancel { caller: i as u16 });
                }
            }
        }
    }

    /// The next instant after now at which something changes by itself: a
    /// lease or access token expiring in the store, an exchange deadline.
    pub fn next_event(&self) -> Option<Timestamp> {
        let mut times = Vec::new();
        for link in &self.links {
            if let Some(row) = self.store.row(link) {
                if let Some(lease) = &row.lease {
                    times.push(lease.expires_at);
                }
                if let Some(access) = &row.access {
                    times.push(access.expires_at);
                }
            }
        }
        for message in &self.messages {
            if let Message::Sent {
                effect: Effect::Exchange { deadline, .. },
                ..
            }
            | Message::Reply { deadline, .. } = message
            {
                times.push(*deadline);
            }
        }
        times.into_iter().filter(|t| *t > self.now).min()
    }

    /// Takes one step. `log`, if given, receives a description of it.
    pub fn apply(&mut self, spec: &WorldSpec, action: Action, log: Option<&mut StepLog>) {
        self.step(spec, action, log);
        // Messages in flight form a set: which was sent first changes
        // nothing about what can happen next. Keeping them in a canonical
        // order lets the explorer recognise equal worlds reached by sending
        // in different orders.
        self.messages.sort_by_cached_key(|m| {
            let mut h = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(m, &mut h);
            std::hash::Hasher::finish(&h)
        });
    }

    fn step(&mut self, spec: &WorldSpec, action: Action, mut log: Option<&mut StepLog>) {
        let mut note = |from: String, to: String, text: String| {
            if let Some(log) = log.as_deref_mut() {
                log.entries.push(LogEntry { from, to, text });
            }
        };
        match action {
            Action::Request { caller } => {
                let c = &mut self.callers[usize::from(caller)];
                c.requests_left -= 1;
                c.waiting = true;
                let (replica, link) = (
                    usize::from(c.replica),
                    self.links[usize::from(c.link)].clone(),
                );
                self.replicas[replica].touched = true;
                note(
                    caller_name(self, caller),
                    format!("r{replica}"),
                    format!("asks for a token for {link}"),
                );
                let input = Input::TokenRequested {
                    caller: CallerId(u64::from(caller)),
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
                    ..
                } => {
                    note(
                        "provider".into(),
                        format!("r{replica}"),
                        format!("reply: {}", describe_outcome(&outcome)),
                    );
                    let input = Input::ExchangeFinished { id, outcome };
                    self.feed(spec, usize::from(replica), input, &mut note);
                }
                Message::ReadReply { replica, input, .. } => {
                    note(
                        "store".into(),
                        format!("r{replica}"),
                        format!("read reply: {}", describe_input(&input)),
                    );
                    self.feed(spec, usize::from(replica), input, &mut note);
                }
                _ => unreachable!("Receive is offered for replies only"),
            },
            Action::TimeOut { message } => {
                let index = usize::from(message);
                let (replica, id, deadline) = match &mut self.messages[index] {
                    Message::Sent {
                        replica,
                        effect: Effect::Exchange { id, deadline, .. },
                        orphaned,
                        ..
                    } => {
                        *orphaned = true;
                        self.budget.timeouts -= 1;
                        self.used.timeout = true;
                        (*replica, *id, *deadline)
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
                                self.lost_tokens.insert(r.clone());
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
                self.now = self
                    .now
                    .max(self.world_time(spec, usize::from(replica), deadline));
                note(
                    format!("r{replica}"),
                    format!("r{replica}"),
                    "gives up waiting for the provider's reply (deadline passed): outcome unknown"
                        .into(),
                );
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
                self.now = at;
                note(
                    format!("r{replica}"),
                    format!("r{replica}"),
                    format!("timer fires at {}", self.now),
                );
                self.feed(spec, r, Input::TimerExpired, &mut note);
            }
            Action::AdvanceClock => {
                let to = self.next_event().expect("offered only with an event ahead");
                self.now = to;
                self.budget.clock_jumps -= 1;
                self.used.clock_jump = true;
                note(
                    "clock".into(),
                    "clock".into(),
                    format!("time jumps to {to} (a stall)"),
                );
            }
            Action::Crash { replica } => self.crash(spec, usize::from(replica), &mut note),
            Action::Cancel { caller } => {
                let c = &mut self.callers[usize::from(caller)];
                c.waiting = false;
                c.cancelled = true;
                let replica = usize::from(c.replica);
                self.budget.cancels -= 1;
                self.used.cancel = true;
                note(
                    caller_name(self, caller),
                    format!("r{replica}"),
                    "goes away (request cancelled)".into(),
                );
                let input = Input::CallerGone {
                    caller: CallerId(u64::from(caller)),
                };
                self.feed(spec, replica, input, &mut note);
            }
        }
    }

    fn deliver(
        &mut self,
        spec: &WorldSpec,
        message: Message,
        fault: Option<Fault>,
        note: &mut impl FnMut(String, String, String),
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
                        self.store.inject(StoreFault::FailNextRead);
                    }
                    Some(Fault::StoreWriteFailed { applied }) => {
                        self.budget.store_write_failures -= 1;
                        self.used.store_failure = true;
                        self.store.inject(StoreFault::FailNextWrite { applied });
                    }
                    _ => {}
                }
                let input = self
                    .store
                    .carry_out(&effect)
                    .expect("store effects get a store result");
                note(
                    format!("r{replica}"),
                    "store".into(),
                    format!("{} → {}", describe_effect(&effect), describe_input(&input)),
                );
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
                    Some(Fault::RotatedThen5xx) => {
                        self.budget.rotated_then_5xx -= 1;
                        self.used.rotated_then_5xx = true;
                        Some(ProviderFault::RotatedThen5xx)
                    }
                    _ => None,
                };
                let before: BTreeSet<RefreshToken> = self
                    .provider
                    .live_refresh_tokens(link)
                    .into_iter()
                    .collect();
                let outcome = self
                    .provider
                    .exchange(self.now, refresh_token, provider_fault);
                let delivered =
                    !orphaned && !matches!(fault, Some(Fault::LostReply | Fault::RotatedThen5xx));
                if !delivered {
                    // Whatever the provider issued now, nobody will hear of it.
                    for token in self.provider.live_refresh_tokens(link) {
                        if !before.contains(&token) {
                            self.lost_tokens.insert(token);
                        }
                    }
                }
                let zombie = if orphaned {
                    " (a zombie: its sender stopped waiting)"
                } else {
                    ""
                };
                note(
                    format!("r{replica}"),
                    "provider".into(),
                    format!(
                        "presents {}{zombie} → {}",
                        refresh_token.expose_secret(),
                        describe_outcome(&outcome)
                    ),
                );
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
                note(
                    format!("r{replica}"),
                    "api".into(),
                    format!("validates {} → {outcome:?}", access_token.expose_secret()),
                );
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

    fn crash(&mut self, spec: &WorldSpec, r: usize, note: &mut impl FnMut(String, String, String)) {
        self.budget.crashes -= 1;
        self.used.crash = true;
        let old = self.replicas[r].incarnation;
        let incarnation = old + 1;
        let config = spec
            .config(r, incarnation)
            .expect("the spec's configuration was checked at the start");
        self.replicas[r].machine = spec.algorithm.machine(config);
        self.replicas[r].incarnation = incarnation;
        let mut lost = Vec::new();
        self.messages.retain_mut(|m| {
            if m.sender() != (r as u8, old) {
                return true;
            }
            match m {
                // Requests already on the wire keep going: zombies.
                Message::Sent {
                    effect: Effect::Exchange { .. },
                    orphaned,
                    ..
                } => {
                    *orphaned = true;
                    true
                }
                Message::Reply {
                    outcome: ExchangeOutcome::Issued(tokens),
                    ..
                } => {
                    lost.extend(tokens.refresh_token.clone());
                    false
                }
                _ => false,
            }
        });
        self.lost_tokens.extend(lost);
        for caller in &mut self.callers {
            if usize::from(caller.replica) == r && caller.waiting {
                caller.waiting = false;
                caller.died = true;
            }
        }
        note(
            format!("r{r}"),
            format!("r{r}"),
            format!("crashes and restarts as incarnation {incarnation}: its memory is gone"),
        );
    }

    /// The world time at which replica `r`'s clock reads `local`.
    fn world_time(&self, spec: &WorldSpec, r: usize, local: Timestamp) -> Timestamp {
        shift(local, -spec.skew(r))
    }

    fn feed(
        &mut self,
        spec: &WorldSpec,
        r: usize,
        input: Input,
        note: &mut impl FnMut(String, String, String),
    ) {
        let local = shift(self.now, spec.skew(r));
        let replica = &mut self.replicas[r];
        if let Err(error) = replica.machine.handle_input(local, input) {
            panic!("the world fed r{r} an input it refused: {error}");
        }
        let incarnation = replica.incarnation;
        let mut effects = Vec::new();
        while let Some(effect) = self.replicas[r].machine.poll_output() {
            effects.push(effect);
        }
        for effect in effects {
            if let Effect::Answer { caller, result, .. } = effect {
                self.answer(caller, result, note);
            } else {
                note(
                    format!("r{r}"),
                    format!("r{r}"),
                    format!("sends {}", describe_effect(&effect)),
                );
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
        caller: CallerId,
        result: Result<baton_core::AccessGrant, RefreshError>,
        note: &mut impl FnMut(String, String, String),
    ) {
        let index = usize::try_from(caller.0).expect("caller ids are indices");
        let link = self.links[usize::from(self.callers[index].link)].clone();
        let judged = crate::invariants::judge_answer(&*self, &link, &result);
        let replica = format!("r{}", self.callers[index].replica);
        note(
            replica,
            caller_name(self, caller.0 as u16),
            match &result {
                Ok(grant) => format!("gets access token {}", grant.token.expose_secret()),
                Err(error) => format!("gets an error: {error}"),
            },
        );
        let c = &mut self.callers[index];
        c.waiting = false;
        if c.bad.is_none() {
            c.bad = judged;
        }
    }

    /// Whether every caller is done and nothing is in flight or armed.
    pub fn quiescent(&self) -> bool {
        self.messages.is_empty()
            && self
                .callers
                .iter()
                .all(|c| !c.waiting && c.requests_left == 0)
            && self
                .replicas
                .iter()
                .all(|r| r.machine.poll_timeout().is_none())
    }
}

/// A store failure as the world reports it.
pub fn store_failure() -> StoreFailure {
    StoreFailure {
        reason: "injected store failure".into(),
    }
}

fn shift(t: Timestamp, by: i64) -> Timestamp {
    if by >= 0 {
        t + std::time::Duration::from_millis(by as u64)
    } else {
        t - std::time::Duration::from_millis(by.unsigned_abs())
    }
}

fn caller_name(world: &World, caller: u16) -> String {
    let c = &world.callers[usize::from(caller)];
    format!("r{}.c{caller}", c.replica)
}

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
        ExchangeOutcome::OutcomeUnknown => "processed; the reply is lost".into(),
    }
}
