//! The machine's per-link memory, indexed so that no input scans it: what
//! one input costs does not grow with the links a process has served
//! (issue 17), and a link with nothing left to remember is forgotten.
//!
//! [`Links`] keeps every link's [`LinkState`] in an ordered map (cheap
//! insertion, and a canonical order for hashing) plus indexes derived from
//! those states. Each is a [`SmallMap`] or [`SmallSet`]: a sorted vector
//! while small (the explorer's machines, with a link or two, stay at one
//! exactly sized allocation per map), a B-tree once large:
//!
//! - `wakes`: every flight in [`Step::Waiting`], by wake-up time, so the
//!   machine's timeout is the first entry and the due flights a range;
//! - `expiries`: the next instant at which something a link remembers runs
//!   out (its held token stops being live, its quiet period ends);
//! - `idle`: the links that hold nothing but a token, least recently used
//!   first, which the configured bound evicts from;
//! - `flights`: how many flights are under way.
//!
//! The indexes are kept in step with a bracket rather than at every write:
//! [`Links::open`] takes a link out of them before an input works on it,
//! and [`Links::close`] puts it back (or forgets it) afterwards. The code of
//! the algorithm ([`crate::flight`]) thus writes a link's state directly,
//! and only ever writes the link the current input is about.
//!
//! Forgetting rule (a machine has no clock, so it is decided at inputs):
//! every input, before it is handled, sweeps the `expiries` index up to its
//! `now` — at most [`SWEEP_PER_INPUT`] links, so no input holds a driver's
//! lock for long — dropping held tokens that are no longer live and quiet
//! periods that are over; a link left with nothing is removed. Neither is
//! read once it has run out, so this changes no answer. Flights and
//! reusable leases are never forgotten: losing a reusable lease would turn
//! a takeover of our own lease into an unknown outcome.

use std::hash::{Hash, Hasher};

use crate::config::Config;
use crate::flight::{Flight, Step};
use crate::ids::LinkId;
use crate::row::{AccessGrant, Lease};
use crate::small_map::{SmallMap, SmallSet};
use crate::time::Timestamp;

/// How many links one input's sweep may forget: about 100 µs of work (see
/// BENCHMARKS.md), so no input holds a driver's lock for long. Each input
/// adds at most one link, so the sweep outpaces growth; after a mass expiry
/// memory comes back over the next N/64 inputs instead of on one slow one.
pub(crate) const SWEEP_PER_INPUT: usize = 64;

/// What this process knows about one link between refreshes.
#[derive(Clone, Debug, Default)]
pub(crate) struct LinkState {
    /// The access token this process last handed out: the hot path.
    pub(crate) held: Option<AccessGrant>,
    /// Until when (exclusive) `held` is served: its expiry less the margin
    /// that applied when it was taken (see [`Config::margin_for`]).
    pub(crate) held_until: Timestamp,
    /// The provider rate-limited us until then: new callers are told to
    /// retry without asking the store or the provider.
    pub(crate) quiet_until: Option<Timestamp>,
    /// Leases of ours under which the token was certainly not consumed (a
    /// take or release that failed in the store, a lease that expired
    /// before we knew we held it): ours to take over, and any record of an
    /// unknown outcome that names one of them is unfounded. All are over
    /// the row's current refresh token; a row with another drops them.
    pub(crate) reusable_leases: Vec<Lease>,
    /// The refresh in progress, if any. Boxed: most links have none, and
    /// inline it would triple the size of every link's entry.
    pub(crate) flight: Option<Box<Flight>>,
    /// The row was replaced by an enrolment while `flight` was under way
    /// ([`Machine::link_replaced`](crate::Machine::link_replaced)): what
    /// the flight ends with may belong to the older family, so its waiters
    /// are served by a fresh read instead. Only ever set with a flight.
    pub(crate) replaced: bool,
    /// The link's place in `Links::idle`, if it is there. Only the order of
    /// these numbers means anything, so it is left out of equality and
    /// hashing; [`Links`] compares the order itself.
    used: Option<u64>,
}

impl PartialEq for LinkState {
    fn eq(&self, other: &Self) -> bool {
        self.held == other.held
            && self.held_until == other.held_until
            && self.quiet_until == other.quiet_until
            && self.reusable_leases == other.reusable_leases
            && self.flight == other.flight
            && self.replaced == other.replaced
    }
}

impl Eq for LinkState {}

impl Hash for LinkState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.held.hash(state);
        self.held_until.hash(state);
        self.quiet_until.hash(state);
        self.reusable_leases.hash(state);
        self.flight.hash(state);
        self.replaced.hash(state);
    }
}

impl LinkState {
    fn wake_at(&self) -> Option<Timestamp> {
        match self.flight.as_deref() {
            Some(Flight {
                step: Step::Waiting { wake_at, .. },
                ..
            }) => Some(*wake_at),
            _ => None,
        }
    }

    /// The first instant at which the sweep has something to drop here.
    fn expires_at(&self) -> Option<Timestamp> {
        // A held token is served while `now < held_until`.
        let dead = self.held.as_ref().map(|_| self.held_until);
        match (dead, self.quiet_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Holds nothing but a token: the bound may evict it.
    fn is_idle(&self) -> bool {
        self.flight.is_none()
            && self.reusable_leases.is_empty()
            && self.quiet_until.is_none()
            && self.held.is_some()
    }

    fn is_empty(&self) -> bool {
        self.flight.is_none()
            && self.reusable_leases.is_empty()
            && self.quiet_until.is_none()
            && self.held.is_none()
    }

    /// Drops what has run out at `now`.
    fn expire(&mut self, now: Timestamp) {
        if self.held.is_some() && now >= self.held_until {
            self.held = None;
        }
        if self.quiet_until.is_some_and(|until| until <= now) {
            self.quiet_until = None;
        }
    }
}

/// A link's place in [`Links`], as `BTreeMap::entry` gives: for
/// [`or_default`](Entry::or_default).
pub(crate) struct Entry<'a> {
    map: &'a mut SmallMap<LinkId, LinkState>,
    link: LinkId,
}

impl<'a> Entry<'a> {
    pub(crate) fn or_default(self) -> &'a mut LinkState {
        self.map.get_or_insert_default(self.link)
    }
}

/// Every link's state and the indexes over it. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub(crate) struct Links {
    map: SmallMap<LinkId, LinkState>,
    wakes: SmallSet<(Timestamp, LinkId)>,
    expiries: SmallSet<(Timestamp, LinkId)>,
    idle: SmallMap<u64, LinkId>,
    /// The next `LinkState::used` to hand out. Never compared: see there.
    next_use: u64,
    flights: usize,
}

/// Equal link tables behave alike: the same states, and the same order of
/// eviction. The indexes follow from those.
impl PartialEq for Links {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map && self.idle.values().eq(other.idle.values())
    }
}

impl Eq for Links {}

impl Hash for Links {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.map.hash(state);
        state.write_usize(self.idle.len());
        for link in self.idle.values() {
            link.hash(state);
        }
    }
}

impl Links {
    /// A link's state, if the machine remembers anything about it.
    pub(crate) fn get(&self, link: &LinkId) -> Option<&LinkState> {
        self.map.get(link)
    }

    /// A link's state, to change. Between [`open`](Self::open) and
    /// [`close`](Self::close) anything may change; outside, only what no
    /// index depends on (a flight's waiters).
    pub(crate) fn get_mut(&mut self, link: &LinkId) -> Option<&mut LinkState> {
        self.map.get_mut(link)
    }

    /// A link's state, created empty if need be. Only for the link an input
    /// is working on, between [`open`](Self::open) and
    /// [`close`](Self::close): the indexes are rebuilt from it there.
    pub(crate) fn entry(&mut self, link: LinkId) -> Entry<'_> {
        Entry {
            map: &mut self.map,
            link,
        }
    }

    /// How many links the machine remembers anything about.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// How many flights are under way.
    pub(crate) fn flights(&self) -> usize {
        self.flights
    }

    /// The earliest instant a waiting flight wants to act.
    pub(crate) fn next_wake(&self) -> Option<Timestamp> {
        self.wakes.first().map(|(at, _)| *at)
    }

    /// The links whose waiting flights are due at `now`, in link order (the
    /// order in which the machine has always woken them).
    pub(crate) fn due(&self, now: Timestamp) -> Vec<LinkId> {
        let mut due: Vec<LinkId> = self
            .wakes
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, link)| link.clone())
            .collect();
        due.sort_unstable();
        due
    }

    /// Takes `link` out of the indexes before an input changes its state.
    pub(crate) fn open(&mut self, link: &LinkId) {
        let Some(state) = self.map.get(link) else {
            return;
        };
        if let Some(at) = state.wake_at() {
            self.wakes.remove(&(at, link.clone()));
        }
        if let Some(at) = state.expires_at() {
            self.expiries.remove(&(at, link.clone()));
        }
        if state.flight.is_some() {
            self.flights -= 1;
        }
    }

    /// Puts `link` back into the indexes after an input changed its state,
    /// or forgets it if nothing is left. `used`: a caller asked for it, so
    /// it becomes the most recently used of the idle links.
    pub(crate) fn close(&mut self, link: &LinkId, used: bool) {
        let Some(state) = self.map.get_mut(link) else {
            return;
        };
        if state.is_empty() {
            if let Some(seq) = state.used {
                self.idle.remove(&seq);
            }
            self.map.remove(link);
            return;
        }
        if state.is_idle() {
            if used || state.used.is_none() {
                if let Some(seq) = state.used.take() {
                    self.idle.remove(&seq);
                }
                state.used = Some(self.next_use);
                self.idle.insert(self.next_use, link.clone());
                self.next_use += 1;
            }
        } else if let Some(seq) = state.used.take() {
            self.idle.remove(&seq);
        }
        if let Some(at) = state.wake_at() {
            self.wakes.insert((at, link.clone()));
        }
        if let Some(at) = state.expires_at() {
            self.expiries.insert((at, link.clone()));
        }
        if state.flight.is_some() {
            self.flights += 1;
        }
    }

    /// Makes `link`, if it is idle, the most recently used idle link: a
    /// caller was served its held token without an input.
    pub(crate) fn touch(&mut self, link: &LinkId) {
        let Some(state) = self.map.get_mut(link) else {
            return;
        };
        let Some(seq) = state.used else {
            return;
        };
        self.idle.remove(&seq);
        state.used = Some(self.next_use);
        self.idle.insert(self.next_use, link.clone());
        self.next_use += 1;
    }

    /// Drops what has run out by `now`, for at most [`SWEEP_PER_INPUT`]
    /// links, earliest first; then evicts idle links beyond the configured
    /// bound, least recently used first.
    pub(crate) fn sweep(&mut self, now: Timestamp, config: &Config) {
        for _ in 0..SWEEP_PER_INPUT {
            let Some((at, link)) = self.expiries.first().cloned() else {
                break;
            };
            if at > now {
                break;
            }
            self.open(&link);
            if let Some(state) = self.map.get_mut(&link) {
                state.expire(now);
            }
            self.close(&link, false);
        }
        self.bound(config);
    }

    /// Evicts the least recently used idle links beyond the bound. Their
    /// next request reads the store, whose row still has the token.
    pub(crate) fn bound(&mut self, config: &Config) {
        while self.idle.len() > config.max_held_links {
            let Some((_, link)) = self.idle.pop_first() else {
                break;
            };
            self.open(&link);
            if let Some(state) = self.map.get_mut(&link) {
                state.used = None;
                state.held = None;
            }
            self.close(&link, false);
        }
    }
}

#[cfg(test)]
impl Links {
    /// Panics unless every index is what a scan of the states gives.
    pub(crate) fn assert_consistent(&self) {
        use std::collections::BTreeSet;
        let wakes: BTreeSet<_> = self
            .map
            .iter()
            .filter_map(|(l, s)| Some((s.wake_at()?, l.clone())))
            .collect();
        assert_eq!(
            self.wakes.iter().cloned().collect::<BTreeSet<_>>(),
            wakes,
            "wake-up index"
        );
        let expiries: BTreeSet<_> = self
            .map
            .iter()
            .filter_map(|(l, s)| Some((s.expires_at()?, l.clone())))
            .collect();
        assert_eq!(
            self.expiries.iter().cloned().collect::<BTreeSet<_>>(),
            expiries,
            "expiry index"
        );
        let flights = self.map.values().filter(|s| s.flight.is_some()).count();
        assert_eq!(self.flights, flights, "flight count");
        let idle: BTreeSet<_> = self
            .map
            .iter()
            .filter(|(_, s)| s.is_idle())
            .map(|(l, _)| l.clone())
            .collect();
        assert_eq!(self.idle.values().cloned().collect::<BTreeSet<_>>(), idle);
        for (seq, link) in &self.idle {
            assert_eq!(
                self.map.get(link).expect("idle link kept").used,
                Some(*seq),
                "recency of {link}"
            );
        }
        assert!(self.map.values().all(|s| !s.is_empty()), "empty link kept");
    }
}

#[cfg(test)]
mod tests;
