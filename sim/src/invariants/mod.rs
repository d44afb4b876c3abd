//! The invariants of DESIGN.md section 3, as named functions over the
//! world. Every checker — the explorer, loom, shuttle, proptest — and every
//! scenario uses these and only these.
//!
//! Each returns `Err(reason)` when it breaks, with a reason a reader
//! understands without the code. Some only make sense once the world has
//! settled (nothing can happen without the adversary): they are passed
//! [`Moment::Settled`] then.

pub mod excuses;
mod probe;
mod world_view;

use excuses::{answer_excused, lost_rotation_excused};
use probe::{probe_request, Probe};
pub use world_view::row_of;

use std::fmt;
use std::str::FromStr;

use baton_core::{AccessGrant, CachedFailure, LinkId, RefreshError, RefreshToken, Timestamp};
use baton_fakes::{FakeProvider, InMemoryStore};

use crate::spec::WorldSpec;
use crate::world::{BadAnswer, FaultsUsed};

/// What the invariants judge. The explorer's [`World`] is one; the end of a
/// loom or shuttle execution of the real coordinator is another. Every
/// invariant is written once, against this.
pub trait Observed {
    /// The links, by index.
    fn links(&self) -> &[LinkId];
    /// The provider, with its bookkeeping.
    fn provider(&self) -> &FakeProvider;
    /// The shared store.
    fn store(&self) -> &InMemoryStore;
    /// The current time.
    fn now(&self) -> Timestamp;
    /// Each exchange whose reply a live process still awaits: the process
    /// (replica, incarnation) and the link.
    fn awaited_exchanges(&self) -> impl Iterator<Item = ((u8, u32), &LinkId)>;
    /// Every caller: the link it asked for, the first bad answer it got, and
    /// whether it is waiting now.
    fn callers(&self) -> impl Iterator<Item = CallerView<'_>>;
    /// The faults injected so far.
    fn faults(&self) -> &FaultsUsed;
    /// The refresh tokens of `link` live at the provider that someone
    /// received (or could still receive).
    fn known_live(&self, link: &LinkId) -> Vec<RefreshToken>;
    /// Whether anything can happen without the adversary's help.
    fn can_progress(&self, spec: &WorldSpec) -> bool;
    /// Whether every caller is done and nothing is in flight or armed.
    fn quiescent(&self) -> bool;
    /// Whether the user unlinked `link` (and did not re-link it since):
    /// the store holding no row for it is then what is right. Only the
    /// explorer's worlds have outside writers.
    fn unlinked(&self, _link: &LinkId) -> bool {
        false
    }
    /// The first exchange a replica sent while the provider's
    /// `Retry-After` for that link still ran, as words. Only the explorer's
    /// worlds track it (their provider answers 429 with `Retry-After`).
    fn ignored_retry_after(&self) -> Option<String> {
        None
    }
}

/// One caller, as the invariants see it.
#[derive(Clone, Copy, Debug)]
pub struct CallerView<'a> {
    /// The link it asked for.
    pub link: &'a LinkId,
    /// The first bad answer it got.
    pub bad: Option<&'a BadAnswer>,
    /// Waiting for an answer now.
    pub waiting: bool,
}

/// Judges one answer when it arrives: a token must be live at the provider
/// and belong to the link asked for; an error must be explained by the
/// faults injected or by the provider holding no live token.
pub fn judge_answer(
    world: &impl Observed,
    link: &LinkId,
    result: &Result<AccessGrant, RefreshError>,
) -> Option<BadAnswer> {
    let provider = world.provider();
    match result {
        Ok(grant) => {
            let token = grant.token.expose_secret().to_string();
            if provider.link_of_access(&grant.token) != Some(link) {
                Some(BadAnswer::WrongLink { token })
            } else if !provider.is_access_live(&grant.token, world.now())
                && !revocation_killed(world)
            {
                Some(BadAnswer::DeadToken { token })
            } else {
                None
            }
        }
        Err(error) => (!error_justified(world, error, link))
            .then(|| BadAnswer::UnjustifiedError(error.clone())),
    }
}

/// Judges the family of a token handed to a caller whose request could be
/// answered with generation `min_generation` or newer (see
/// [`crate::world::Caller::min_generation`]): a caller that asked after a
/// re-link or an unlink must not get a token of the family it superseded
/// or removed. A caller that was already waiting may: its request raced
/// the writer, and the older answer is the one it would have had a moment
/// earlier.
pub fn judge_family(
    provider: &FakeProvider,
    min_generation: u32,
    result: &Result<AccessGrant, RefreshError>,
) -> Option<BadAnswer> {
    let grant = result.as_ref().ok()?;
    let generation = provider.generation_of_access(&grant.token)?;
    (generation < min_generation).then(|| BadAnswer::StaleFamily {
        token: grant.token.expose_secret().to_string(),
    })
}

/// Whether a revocation explains a dead access token handed to a caller:
/// the user revoked the application, and the token may have been live when
/// the replica read or received it. Nothing tells a replica of a
/// revocation, so no algorithm avoids this; the API's 401 is how the
/// caller learns.
fn revocation_killed(world: &impl Observed) -> bool {
    world.faults().revoke
}

/// Whether the world explains an error a caller got: a fault of the run
/// that excuses it (see [`excuses`]), or the provider holding no live token
/// for the link.
fn error_justified(world: &impl Observed, error: &RefreshError, link: &LinkId) -> bool {
    if answer_excused(world.faults(), error) {
        return true;
    }
    let no_live_token = world.known_live(link).is_empty() || world.provider().family_revoked(link);
    match error {
        RefreshError::RetryAfter { .. } | RefreshError::Temporary(_) => false,
        RefreshError::ReauthenticationRequired(_) => no_live_token,
    }
}

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
    /// See [`no_stale_write`].
    NoStaleWrite,
    /// See [`no_stale_answer`].
    NoStaleAnswer,
    /// See [`respects_retry_after`].
    RespectsRetryAfter,
    /// Every run ends: see [`crate::livelock`]. A property of the state
    /// graph, not of one state, so [`Invariant::check`] admits every state;
    /// the explorer judges it after its search, and a replay judges the
    /// run it is given.
    NoLivelock,
}

impl Invariant {
    /// Every invariant, in the order they are checked.
    pub const ALL: [Invariant; 11] = [
        Invariant::NoReuse,
        Invariant::SingleFlight,
        Invariant::NoPoisonedFailure,
        Invariant::LinkIsolation,
        Invariant::CallersServed,
        Invariant::NoLostRotation,
        Invariant::Recovers,
        Invariant::NoStaleWrite,
        Invariant::NoStaleAnswer,
        Invariant::RespectsRetryAfter,
        Invariant::NoLivelock,
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
            Invariant::NoStaleWrite => "no_stale_write",
            Invariant::NoStaleAnswer => "no_stale_answer",
            Invariant::RespectsRetryAfter => "respects_retry_after",
            Invariant::NoLivelock => "no_livelock",
        }
    }

    /// Why loom and shuttle, which run the real coordinator and judge the
    /// state each execution ends in, cannot judge this invariant; `None`
    /// where they can. A violation they cannot see is not theirs to miss.
    pub fn beyond_thread_checkers(self) -> Option<&'static str> {
        match self {
            Invariant::NoLivelock => Some(
                "no_livelock is judged on the explorer's state graph, and loom and shuttle \
                 bound every execution",
            ),
            Invariant::RespectsRetryAfter => Some(
                "respects_retry_after is judged when an exchange is sent, and the thread \
                 checkers see only the state an execution ends in",
            ),
            _ => None,
        }
    }

    /// Evaluates the invariant.
    pub fn check(
        self,
        world: &impl Observed,
        spec: &WorldSpec,
        moment: Moment,
    ) -> Result<(), String> {
        match self {
            Invariant::NoReuse => no_reuse(world),
            Invariant::SingleFlight => single_flight(world, spec),
            Invariant::NoPoisonedFailure => no_poisoned_failure(world),
            Invariant::LinkIsolation => link_isolation(world),
            Invariant::CallersServed => callers_served(world, spec, moment),
            Invariant::NoLostRotation => no_lost_rotation(world, moment),
            Invariant::Recovers => recovers(world, spec, moment),
            Invariant::NoStaleWrite => no_stale_write(world),
            Invariant::NoStaleAnswer => no_stale_answer(world),
            Invariant::RespectsRetryAfter => respects_retry_after(world),
            Invariant::NoLivelock => Ok(()),
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

/// `respects_retry_after`: a replica the provider rate-limited with a
/// `Retry-After` presents no refresh token for that link until it has
/// passed (DESIGN.md section 2, step 8: keep Retry-After). Presenting
/// sooner earns another 429 at best, and on providers that count abuse a
/// longer ban. Per process, since only the process that got the 429 knows
/// it; a crash forgets it.
pub fn respects_retry_after(world: &impl Observed) -> Result<(), String> {
    match world.ignored_retry_after() {
        Some(what) => Err(what),
        None => Ok(()),
    }
}

/// `no_reuse`: the provider never receives a refresh token it already
/// consumed — zombie requests included — except inside a grace window it
/// grants. Nothing else excuses it: not a gateway's 5xx, which hid the
/// consumption from the client only. A world configured to retry server
/// errors breaks it, and its scenario says so.
pub fn no_reuse(world: &impl Observed) -> Result<(), String> {
    for link in world.links() {
        let reuses = world.provider().unsafe_reuses(link);
        if reuses > 0 {
            let revoked = if world.provider().family_revoked(link) {
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

/// `single_flight`: at most one exchange in flight per link per replica —
/// and per link overall where every replica takes the cross-replica lease
/// and no second presentation is safe (a grace window lets a lease over an
/// expired holder be taken over while the holder still waits), until a
/// re-link starts a new family. Requests
/// orphaned by a crash or a deadline are not counted: `no_reuse` judges
/// where they land.
pub fn single_flight(world: &impl Observed, spec: &WorldSpec) -> Result<(), String> {
    // A re-link overwrites the row, lease included: a refresh of the new
    // family may then run beside one of the old, each presenting its own.
    let overall = (0..usize::from(spec.replicas)).all(|r| spec.algorithm_of(r).takes_lease())
        && spec.second_presentation == baton_core::SecondPresentation::Fatal
        && !world.faults().relink;
    let mut seen: Vec<((u8, u32), &LinkId)> = Vec::new();
    for (sender, link) in world.awaited_exchanges() {
        if seen.contains(&(sender, link)) {
            return Err(format!(
                "replica r{} has two exchanges of {link} in flight at once",
                sender.0
            ));
        }
        if overall {
            if let Some((other, _)) = seen.iter().find(|(_, l)| *l == link) {
                return Err(format!(
                    "replicas r{} and r{} both have an exchange of {link} in flight, though each takes the lease first",
                    other.0, sender.0
                ));
            }
        }
        seen.push((sender, link));
    }
    Ok(())
}

/// `no_poisoned_failure`: the store never says the provider rejected the
/// link (a cached rejection, or an emptied refresh token with a failure)
/// while the provider holds a live refresh token of the link's family that
/// was not lost to a fault.
pub fn no_poisoned_failure(world: &impl Observed) -> Result<(), String> {
    for link in world.links() {
        let Some(row) = world.store().row(link) else {
            continue;
        };
        let says_rejected = matches!(row.failure, Some(CachedFailure::Rejected { .. }))
            || (row.refresh_token.is_none() && row.failure.is_some());
        if !says_rejected {
            continue;
        }
        let live = world.known_live(link);
        if !live.is_empty() && !world.provider().family_revoked(link) {
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
pub fn link_isolation(world: &impl Observed) -> Result<(), String> {
    for (i, caller) in world.callers().enumerate() {
        if let Some(BadAnswer::WrongLink { token }) = caller.bad {
            return Err(format!(
                "caller {i} asked for {} and got {token}, another link's token",
                caller.link
            ));
        }
    }
    Ok(())
}

/// `callers_served`: every caller finishes — with a token live at the
/// provider when it was returned, or with an error the world justifies —
/// and none hangs once nothing else can happen.
pub fn callers_served(
    world: &impl Observed,
    spec: &WorldSpec,
    moment: Moment,
) -> Result<(), String> {
    for (i, caller) in world.callers().enumerate() {
        match caller.bad {
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
        if let Some(i) = world.callers().position(|c| c.waiting) {
            return Err(format!(
                "caller {i} is still waiting and nothing more can happen: it hangs"
            ));
        }
    }
    Ok(())
}

/// `no_lost_rotation`: with no crash, lost reply, gateway 5xx or
/// timeout (lease expiries and stalls included), once everything has
/// settled the store holds a refresh token the provider considers live,
/// with no failure cached — unless the provider holds none.
pub fn no_lost_rotation(world: &impl Observed, moment: Moment) -> Result<(), String> {
    if moment != Moment::Settled || lost_rotation_excused(world.faults()) {
        return Ok(());
    }
    for link in world.links() {
        let live = world.provider().live_refresh_tokens(link);
        if live.is_empty() || world.unlinked(link) {
            continue;
        }
        let row = world.store().row(link);
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
pub fn recovers(world: &impl Observed, spec: &WorldSpec, moment: Moment) -> Result<(), String> {
    if moment != Moment::Settled || !world.quiescent() {
        return Ok(());
    }
    for link in world.links() {
        // A revoked or unlinked link needs the user: re-authentication, or
        // "not linked", is then the right answer.
        if world.provider().family_revoked(link) || world.unlinked(link) {
            continue;
        }
        let mut probe = Probe {
            store: world.store().clone(),
            provider: world.provider().clone(),
            now: world.now(),
        };
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

/// `no_stale_write`: once a re-link superseded a family, the store never
/// holds that family's access or refresh token again — no replica's write
/// of the older family lands over the user's newest grant. (The provider's
/// `live_refresh_tokens` being the newest family's, `no_lost_rotation` and
/// `no_poisoned_failure` judge against the newest family too.)
pub fn no_stale_write(world: &impl Observed) -> Result<(), String> {
    let provider = world.provider();
    for link in world.links() {
        let (Some(row), Some(current)) = (world.store().row(link), provider.generation(link))
        else {
            continue;
        };
        let refresh = row
            .refresh_token
            .as_ref()
            .and_then(|t| Some((t.expose_secret(), provider.generation_of_refresh(t)?)));
        let access = row.access.as_ref().and_then(|g| {
            Some((
                g.token.expose_secret(),
                provider.generation_of_access(&g.token)?,
            ))
        });
        for (token, generation) in refresh.into_iter().chain(access) {
            if generation < current {
                return Err(format!(
                    "the store holds {token} for {link}, a token of the family the user's re-link superseded (generation {generation}; the newest is {current}): a write of the older family clobbered the new grant ({})",
                    crate::report::describe_row(row)
                ));
            }
        }
    }
    Ok(())
}

/// `no_stale_answer`: no caller that asked after a re-link or an unlink is
/// handed a token of the family it superseded or removed (see
/// [`judge_family`]). A process's in-memory hot path cannot see either
/// writer: worlds where a caller asks a replica that already holds a live
/// token break this for every algorithm that keeps one.
pub fn no_stale_answer(world: &impl Observed) -> Result<(), String> {
    for (i, caller) in world.callers().enumerate() {
        if let Some(BadAnswer::StaleFamily { token }) = caller.bad {
            return Err(format!(
                "caller {i} asked for {} after a re-link or unlink and was handed {token}, a token of the family the user replaced or removed",
                caller.link
            ));
        }
    }
    Ok(())
}
