//! The invariants of DESIGN.md section 3, as named functions over the
//! world. Every checker — the explorer, loom, shuttle, proptest — and every
//! scenario uses these and only these.
//!
//! Each returns `Err(reason)` when it breaks, with a reason a reader
//! understands without the code. Some only make sense once the world has
//! settled (nothing can happen without the adversary): they are passed
//! [`Moment::Settled`] then.

use std::fmt;
use std::str::FromStr;

use baton_core::{CachedFailure, CallerId, Effect, Input, LinkId, RefreshMachine, StoredLink};
use baton_fakes::InMemoryStore;

use crate::spec::WorldSpec;
use crate::world::{BadAnswer, World};

/// When an invariant is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    /// Any state along a run.
    During,
    /// A state from which nothing happens without the adversary.
    Settled,
}

/// The named invariants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Invariant {
    /// See [`no_reuse`].
    NoReuse,
    /// See [`single_flight`].
    SingleFlight,
    /// See [`no_poisoned_failure`].
    NoPoisonedFailure,
    /// See [`link_isolation`].
    LinkIsolation,
    /// See [`callers_served`].
    CallersServed,
    /// See [`no_lost_rotation`].
    NoLostRotation,
    /// See [`recovers`].
    Recovers,
}

impl Invariant {
    /// Every invariant, in the order they are checked.
    pub const ALL: [Invariant; 7] = [
        Invariant::NoReuse,
        Invariant::SingleFlight,
        Invariant::NoPoisonedFailure,
        Invariant::LinkIsolation,
        Invariant::CallersServed,
        Invariant::NoLostRotation,
        Invariant::Recovers,
    ];

    /// The invariant's name, as scenarios spell it.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoReuse => "no_reuse",
            Invariant::SingleFlight => "single_flight",
            Invariant::NoPoisonedFailure => "no_poisoned_failure",
            Invariant::LinkIsolation => "link_isolation",
            Invariant::CallersServed => "callers_served",
            Invariant::NoLostRotation => "no_lost_rotation",
            Invariant::Recovers => "recovers",
        }
    }

    /// Evaluates the invariant.
    pub fn check(self, world: &World, spec: &WorldSpec, moment: Moment) -> Result<(), String> {
        match self {
            Invariant::NoReuse => no_reuse(world),
            Invariant::SingleFlight => single_flight(world),
            Invariant::NoPoisonedFailure => no_poisoned_failure(world),
            Invariant::LinkIsolation => link_isolation(world),
            Invariant::CallersServed => callers_served(world, spec, moment),
            Invariant::NoLostRotation => no_lost_rotation(world, moment),
            Invariant::Recovers => recovers(world, spec, moment),
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Invariant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Invariant::ALL
            .into_iter()
            .find(|i| i.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Invariant::ALL.iter().map(|i| i.name()).collect();
                format!(
                    "unknown invariant `{s}` (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// `no_reuse`: the provider never receives a refresh token it already
/// consumed — zombie requests included — except inside a grace window it
/// grants, or after a rotated-then-5xx reply hid the consumption.
pub fn no_reuse(world: &World) -> Result<(), String> {
    for link in &world.links {
        let reuses = world.provider.unsafe_reuses(link);
        if reuses > 0 {
            let revoked = if world.provider.family_revoked(link) {
                "; the provider revoked the whole token family"
            } else {
                ""
            };
            return Err(format!(
                "the provider received an already-consumed refresh token of {link} {reuses} time(s) outside any grace window{revoked}"
            ));
        }
    }
    Ok(())
}

/// `single_flight`: at most one exchange in flight per link per replica.
pub fn single_flight(world: &World) -> Result<(), String> {
    let mut seen: Vec<((u8, u32), &LinkId)> = Vec::new();
    for message in &world.messages {
        let Some(link) = message.awaited_exchange() else {
            continue;
        };
        let sender = message.sender();
        if seen.contains(&(sender, link)) {
            return Err(format!(
                "replica r{} has two exchanges of {link} in flight at once",
                sender.0
            ));
        }
        seen.push((sender, link));
    }
    Ok(())
}

/// `no_poisoned_failure`: the store never says the provider rejected the
/// link (a cached rejection, or an emptied refresh token with a failure)
/// while the provider holds a live refresh token of the link's family that
/// was not lost to a fault.
pub fn no_poisoned_failure(world: &World) -> Result<(), String> {
    for link in &world.links {
        let Some(row) = world.store.row(link) else {
            continue;
        };
        let says_rejected = matches!(row.failure, Some(CachedFailure::Rejected { .. }))
            || (row.refresh_token.is_none() && row.failure.is_some());
        if !says_rejected {
            continue;
        }
        let live = world.known_live(link);
        if !live.is_empty() && !world.provider.family_revoked(link) {
            return Err(format!(
                "the store caches a failure for {link} ({}) while the provider holds the live refresh token {}",
                crate::report::describe_row(row),
                live[0].expose_secret()
            ));
        }
    }
    Ok(())
}

/// `link_isolation`: a caller asking for link L is only ever answered with
/// L's tokens.
pub fn link_isolation(world: &World) -> Result<(), String> {
    for (i, caller) in world.callers.iter().enumerate() {
        if let Some(BadAnswer::WrongLink { token }) = &caller.bad {
            return Err(format!(
                "caller {i} asked for {} and got {token}, another link's token",
                world.links[usize::from(caller.link)]
            ));
        }
    }
    Ok(())
}

/// `callers_served`: every caller finishes — with a token live at the
/// provider when it was returned, or with an error the world justifies —
/// and none hangs once nothing else can happen.
pub fn callers_served(world: &World, spec: &WorldSpec, moment: Moment) -> Result<(), String> {
    for (i, caller) in world.callers.iter().enumerate() {
        match &caller.bad {
            Some(BadAnswer::DeadToken { token }) => {
                return Err(format!(
                    "caller {i} was handed access token {token}, which the provider no longer accepts"
                ))
            }
            Some(BadAnswer::UnjustifiedError(error)) => {
                return Err(format!(
                    "caller {i} was told \"{error}\", but the provider still holds a live refresh token and no fault explains it"
                ))
            }
            _ => {}
        }
    }
    if moment == Moment::Settled && !world.can_progress(spec) {
        if let Some(i) = world.callers.iter().position(|c| c.waiting) {
            return Err(format!(
                "caller {i} is still waiting and nothing more can happen: it hangs"
            ));
        }
    }
    Ok(())
}

/// `no_lost_rotation`: with no crash, lost reply, rotated-then-5xx or
/// timeout (lease expiries and stalls included), once everything has
/// settled the store holds a refresh token the provider considers live,
/// with no failure cached — unless the provider holds none.
pub fn no_lost_rotation(world: &World, moment: Moment) -> Result<(), String> {
    if moment != Moment::Settled || world.used.lost_knowledge() {
        return Ok(());
    }
    for link in &world.links {
        let live = world.provider.live_refresh_tokens(link);
        if live.is_empty() {
            continue;
        }
        let row = world.store.row(link);
        let holds_live = row
            .and_then(|r| r.refresh_token.as_ref())
            .is_some_and(|t| live.contains(t));
        let clean = row.is_some_and(|r| r.failure.is_none());
        if !holds_live || !clean {
            return Err(format!(
                "after everything settled the store holds {} for {link}, but the provider's live refresh token is {}",
                row.map_or("no row".to_string(), crate::report::describe_row),
                live[0].expose_secret()
            ));
        }
    }
    Ok(())
}

/// `recovers`: after the faults stop, a new caller (on a fresh replica,
/// with no fault injected) gets a live token without re-authentication,
/// unless the provider revoked the family.
pub fn recovers(world: &World, spec: &WorldSpec, moment: Moment) -> Result<(), String> {
    if moment != Moment::Settled || !world.quiescent() {
        return Ok(());
    }
    for link in &world.links {
        if world.provider.family_revoked(link) {
            continue;
        }
        let mut probe = world.clone();
        match probe_request(&mut probe, spec, link) {
            Ok(()) => {}
            Err(what) => {
                return Err(format!(
                    "after the faults stopped, a new caller asking for {link} {what}, though the provider never revoked the family"
                ))
            }
        }
    }
    Ok(())
}

/// Runs one request on a fresh machine of the world's algorithm, with no
/// faults, delivering everything in order and firing timers as they come.
fn probe_request(world: &mut World, spec: &WorldSpec, link: &LinkId) -> Result<(), String> {
    let config = spec
        .config_for(baton_core::OwnerId::new("probe"))
        .map_err(|e| e.to_string())?;
    let mut machine = spec.algorithm.machine(config);
    let caller = CallerId(u64::MAX);
    let mut inbox = vec![Input::TokenRequested {
        caller,
        link: link.clone(),
    }];
    for _ in 0..200 {
        let input = match inbox.pop() {
            Some(input) => input,
            None => {
                let Some(at) = machine.poll_timeout() else {
                    return Err("hangs".into());
                };
                world.now = world.now.max(at);
                Input::TimerExpired
            }
        };
        machine
            .handle_input(world.now, input)
            .map_err(|e| format!("hit a driver error: {e}"))?;
        while let Some(effect) = machine.poll_output() {
            match effect {
                Effect::Answer { result, .. } => {
                    return match result {
                        Ok(grant) if world.provider.is_access_live(&grant.token, world.now) => {
                            Ok(())
                        }
                        Ok(grant) => Err(format!(
                            "got the dead access token {}",
                            grant.token.expose_secret()
                        )),
                        Err(error) => Err(format!("was told \"{error}\"")),
                    };
                }
                Effect::Exchange {
                    id, refresh_token, ..
                } => inbox.push(Input::ExchangeFinished {
                    id,
                    outcome: world.provider.exchange(world.now, &refresh_token, None),
                }),
                Effect::Validate {
                    id, access_token, ..
                } => inbox.push(Input::ValidationFinished {
                    id,
                    outcome: if world.provider.is_access_live(&access_token, world.now) {
                        baton_core::ValidationOutcome::Valid
                    } else {
                        baton_core::ValidationOutcome::Invalid {
                            reason: "401".into(),
                        }
                    },
                }),
                store_effect => inbox.push(carry_out(&mut world.store, &store_effect)),
            }
        }
    }
    Err("did not finish within 200 steps".into())
}

fn carry_out(store: &mut InMemoryStore, effect: &Effect) -> Input {
    store
        .carry_out(effect)
        .expect("only store effects reach the store")
}

/// The row of a link, for reports.
pub fn row_of<'a>(world: &'a World, link: &LinkId) -> Option<&'a StoredLink> {
    world.store.row(link)
}
