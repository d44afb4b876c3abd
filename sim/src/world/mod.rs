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
//!
//! The code is split by concern: `types` holds the data the world is made
//! of (replicas, callers, messages, actions, faults, logs); `actions` lists
//! the steps possible now; `step` and `deliver` take one; `describe` puts
//! effects and results into words for timelines. Everything public is
//! re-exported here.

use std::collections::BTreeSet;
use std::sync::Arc;

use baton_core::{InputKind, LinkId, RefreshMachine, RefreshToken, Stage, StoreFailure, Timestamp};
use baton_fakes::{FakeProvider, InMemoryStore};

use crate::spec::{FaultBudget, WorldSpec};
use crate::symmetry::Printed;

mod actions;
mod callers;
mod deliver;
mod describe;
mod memo;
mod messages;
mod rare;
mod step;
mod types;
mod writers;

pub use callers::Callers;
pub use describe::{describe_effect, describe_input, describe_outcome};
pub use messages::{Keep, Messages};
pub use rare::Rare;
pub use types::{
    Action, BadAnswer, Caller, Fault, FaultsUsed, IgnoredRetryAfter, LogEntry, Message, Replica,
    Route, StepLog,
};

/// The whole world.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World {
    /// The world's clock.
    pub now: Timestamp,
    /// The processes.
    pub replicas: Vec<Replica>,
    /// The callers, replica-major.
    pub callers: Callers,
    /// The shared store.
    pub store: Arc<Printed<InMemoryStore>>,
    /// The provider.
    pub provider: Arc<Printed<FakeProvider>>,
    /// Messages in flight, oldest first.
    pub messages: Messages,
    /// Faults the adversary may still inject.
    pub budget: FaultBudget,
    /// Faults it has injected.
    pub used: FaultsUsed,
    /// Refresh tokens the provider issued whose reply nobody received.
    pub lost_tokens: Rare<BTreeSet<RefreshToken>>,
    /// The links, by index.
    pub links: Arc<[LinkId]>,
    /// Links whose row the user removed (bit `i` for link `i`), until a
    /// re-link writes one again.
    pub unlinked: u64,
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
                machine: Arc::new(Printed::new(spec.algorithm_of(r).machine(config))),
                incarnation: 0,
                touched: false,
                quiet: Default::default(),
                ignored_retry_after: None,
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
                    min_generation: 0,
                });
            }
        }
        Ok(World {
            now: Timestamp::ZERO + spec.timing.access_lifetime,
            replicas,
            callers: callers.into_iter().collect(),
            store: Arc::new(Printed::new(store)),
            provider: Arc::new(Printed::new(provider)),
            messages: Messages::default(),
            budget: spec.faults,
            used: FaultsUsed::default(),
            lost_tokens: Rare::default(),
            links: links.into(),
            unlinked: 0,
        })
    }

    /// The refresh tokens of `link` that are live at the provider and that
    /// someone received (or could still receive).
    pub fn known_live(&self, link: &LinkId) -> Vec<RefreshToken> {
        self.provider
            .live_refresh_tokens(link)
            .into_iter()
            .filter(|t| !self.lost_tokens.get().is_some_and(|lost| lost.contains(t)))
            .collect()
    }

    /// The world time at which replica `r`'s clock reads `local`.
    fn world_time(&self, spec: &WorldSpec, r: usize, local: Timestamp) -> Timestamp {
        shift(local, -spec.skew(r))
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

/// Where a step's log entries go, if anywhere, and where the (input ×
/// stage) pairs its machines met are recorded, if anywhere. Entries are
/// built only when someone reads them: the explorer takes millions of steps
/// with no log.
struct Notes<'a> {
    log: Option<&'a mut StepLog>,
    met: Option<&'a mut Vec<Met>>,
}

/// One input a machine received in a step, and the stage it met there
/// (for coverage; see [`crate::reached`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Met {
    /// The replica whose machine received it.
    pub replica: u8,
    /// The kind of input.
    pub input: InputKind,
    /// The stage it met, if the machine names its stages.
    pub stage: Option<Stage>,
}

impl Notes<'_> {
    /// Records what `entry` describes (`from`, `to`, `text`), building it
    /// only if a log is kept.
    fn add(&mut self, entry: impl FnOnce() -> (String, String, String)) {
        if let Some(log) = self.log.as_deref_mut() {
            let (from, to, text) = entry();
            log.entries.push(LogEntry { from, to, text });
        }
    }

    /// Records that replica `r`'s machine met `input` at `stage`, if pairs
    /// are being collected.
    fn met(&mut self, r: usize, input: impl FnOnce() -> (InputKind, Option<Stage>)) {
        if let Some(met) = self.met.as_deref_mut() {
            let (input, stage) = input();
            met.push(Met {
                replica: r as u8,
                input,
                stage,
            });
        }
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
