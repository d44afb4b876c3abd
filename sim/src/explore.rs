//! `explore`: exhaustive breadth-first search over every interleaving and
//! fault the world allows, with state hashing (each distinct world is
//! expanded once), symmetry reduction over replicas (one fingerprint per
//! orbit under renaming interchangeable replicas, see [`crate::symmetry`];
//! the worlds kept and the runs reported are the real ones), the world's
//! own rule that untouched callers and replicas start in order (see
//! [`World::actions`]), partial-order reduction of steps that
//! commute (see [`crate::reduction`]), a hard state budget, and sharding.
//!
//! Each breadth-first level is expanded in fixed chunks on every core
//! (rayon); states are numbered and checked in the same order as a
//! one-by-one search would, so verdicts, counts and counterexamples do not
//! depend on the number of cores.
//!
//! Breadth-first order makes the first violation found a shortest one in
//! the graph explored: with partial-order reduction on, a run may be a few
//! steps longer than the shortest in the full graph, since a reduced state
//! takes its commuting step first. A budget that runs out gives
//! [`Verdict::BudgetExhausted`] — never "holds".

use std::time::{Duration, Instant};

#[cfg(feature = "parallel")]
use rayon::prelude::*;

use crate::fingerprint::Seen;
use crate::invariants::{Invariant, Moment};
use crate::livelock::{self, reserve_by_quarters, Graph};
use crate::reached::Reached;
use crate::reduction::commuting_step;
use crate::spec::WorldSpec;
use crate::symmetry::{Canon, Interner, Symmetry};
use crate::world::{Action, World};

/// One slice of an exploration: shard `index` of `count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u32,
    /// How many shards split the exploration.
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// Parses `i/n` with 1-based `i`, as `--shard 1/4` is written.
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("shard `{s}` is not of the form i/n"))?;
        let (i, n): (u32, u32) = (
            i.trim()
                .parse()
                .map_err(|_| format!("shard index `{i}` is not a number"))?,
            n.trim()
                .parse()
                .map_err(|_| format!("shard count `{n}` is not a number"))?,
        );
        if n == 0 || i == 0 || i > n {
            return Err(format!("shard `{s}`: need 1 <= i <= n"));
        }
        Ok(Shard {
            index: i - 1,
            count: n,
        })
    }
}

/// How to explore.
#[derive(Clone, Debug)]
pub struct Options {
    /// Stop after this many distinct states.
    pub max_states: usize,
    /// Explore only this shard.
    pub shard: Option<Shard>,
    /// The invariants to check, in order.
    pub invariants: Vec<Invariant>,
    /// Explore a commuting step alone where one exists (partial-order
    /// reduction). Off only to measure what it saves.
    pub reduce: bool,
    /// Record what the runs reached (fault kinds, writers, input × stage
    /// pairs): `baton check --coverage`. Off by default: it costs a record
    /// per step.
    pub record_reached: bool,
    /// Count a world and its copies with interchangeable replicas renamed
    /// as one state (see [`crate::symmetry`]). Off only to measure it.
    pub symmetry: Symmetry,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_states: 2_000_000,
            shard: None,
            invariants: Invariant::ALL.to_vec(),
            reduce: true,
            record_reached: false,
            symmetry: Symmetry::Replicas,
        }
    }
}

/// Counts of an exploration. States and transitions do not depend on the
/// machine's speed; time does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Distinct states reached (the initial one included).
    pub states: usize,
    /// Steps taken (including those reaching known states).
    pub transitions: u64,
    /// Depth of the deepest state reached.
    pub max_depth: usize,
    /// States expanded by one commuting step instead of every step.
    pub reduced: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Bytes held for the states behind the frontier at the end: the
    /// visited set's table (a fingerprint, with the state's index where
    /// the graph is kept, and a control byte per slot, by capacity), the
    /// path table (parent and step per state) and, for `no_livelock`, the
    /// graph's steps. Worlds are kept only while they are on the frontier.
    pub stored_bytes: usize,
    /// States in the widest level: the frontier, whose worlds are held.
    pub widest_level: usize,
}

impl Stats {
    /// States per second.
    pub fn states_per_second(&self) -> f64 {
        self.states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A shortest run that breaks an invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counterexample {
    /// The invariant it breaks.
    pub invariant: Invariant,
    /// Why, in words.
    pub reason: String,
    /// The steps from the initial world.
    pub actions: Vec<Action>,
}

/// What an exploration concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every reachable state keeps every invariant checked.
    Holds,
    /// A run breaks one.
    Violated(Counterexample),
    /// The state budget ran out first: nothing is proven.
    BudgetExhausted,
}

/// An exploration's verdict and counts.
#[derive(Clone, Debug)]
pub struct Exploration {
    /// The verdict.
    pub verdict: Verdict,
    /// The counts.
    pub stats: Stats,
    /// What the runs reached, if [`Options::record_reached`] asked.
    pub reached: Option<Reached>,
}

/// Checks every invariant in `invariants` on `world`.
pub fn check(
    world: &World,
    spec: &WorldSpec,
    invariants: &[Invariant],
) -> Option<(Invariant, String)> {
    let settled = !world.can_progress(spec);
    for moment in [Moment::During, Moment::Settled] {
        if moment == Moment::Settled && !settled {
            break;
        }
        for invariant in invariants {
            if let Err(reason) = invariant.check(world, spec, moment) {
                return Some((*invariant, reason));
            }
        }
    }
    None
}

/// What is kept of every state for its path: its parent's index and the
/// step from it. The world itself is dropped once expanded.
struct Node {
    parent: u32,
    action: Option<Action>,
}

/// The bytes `visited`, `nodes` and the graph, if kept, hold, by capacity.
fn stored_bytes(visited: &Seen, nodes: &Vec<Node>, graph: Option<&Graph>) -> usize {
    visited.bytes() + nodes.capacity() * std::mem::size_of::<Node>() + graph.map_or(0, Graph::bytes)
}

/// States expanded per parallel round: enough to keep every core busy,
/// few enough that a round's successors fit in memory.
const CHUNK: usize = 1024;

/// A new world, its fingerprint, and the invariant it breaks, if any
/// (checked where it was built, while it is in cache).
type Successor = (Action, World, u128, Option<(Invariant, String)>);

/// One state's successors not seen before the round, each with its
/// fingerprint.
struct Expansion {
    successors: Vec<Successor>,
    /// Every successor's fingerprint, seen before or not, when the search
    /// keeps its graph for `no_livelock`.
    edges: Vec<u128>,
    /// Steps taken, including those to states seen before the round.
    transitions: u64,
    /// Whether one commuting step stood for all of them.
    reduced: bool,
    /// What the steps reached, if recorded.
    reached: Option<Reached>,
}

/// `world` after `action`, recording what the step reached if `reached`
/// is kept.
fn successor(
    world: &World,
    spec: &WorldSpec,
    action: Action,
    reached: &mut Option<Reached>,
) -> World {
    let mut next = world.clone();
    match reached {
        Some(reached) => {
            let mut met = Vec::new();
            next.apply_observed(spec, action, &mut met);
            reached.record(spec, world, &action, &next, &met);
        }
        None => next.apply(spec, action, None),
    }
    next
}

/// The successors of `world`: one commuting step if the reduction finds
/// one whose result is not yet `visited` (the cycle proviso: a commuting
/// step that led back to a known state could be postponed forever, so
/// such a state is expanded in full), else every step.
fn expand(
    world: &World,
    spec: &WorldSpec,
    options: &Options,
    canon: &Canon,
    visited: &Seen,
    interner: &Interner,
    keep_edges: bool,
) -> Expansion {
    let judge = |next: &World| check(next, spec, &options.invariants);
    let mut reached = options.record_reached.then(Reached::default);
    if options.reduce {
        if let Some((action, next)) = commuting_step(world, spec) {
            let print = canon.fingerprint(&next);
            if !visited.contains(&print) {
                if let Some(reached) = &mut reached {
                    let mut met = Vec::new();
                    world.clone().apply_observed(spec, action, &mut met);
                    reached.record(spec, world, &action, &next, &met);
                }
                let mut next = next;
                interner.intern(&mut next);
                return Expansion {
                    successors: {
                        let broken = judge(&next);
                        vec![(action, next, print, broken)]
                    },
                    edges: if keep_edges { vec![print] } else { Vec::new() },
                    transitions: 1,
                    reduced: true,
                    reached,
                };
            }
        }
    }
    let actions = world.actions(spec);
    let transitions = actions.len() as u64;
    let mut edges = Vec::new();
    // Successors seen before are dropped here, on this core: freeing a
    // world costs about as much as building one.
    let successors = actions
        .into_iter()
        .filter_map(|action| {
            let next = successor(world, spec, action, &mut reached);
            let print = canon.fingerprint(&next);
            if keep_edges {
                edges.push(print);
            }
            if visited.contains(&print) {
                return None;
            }
            let mut next = next;
            interner.intern(&mut next);
            let broken = judge(&next);
            Some((action, next, print, broken))
        })
        .collect();
    Expansion {
        successors,
        edges,
        transitions,
        reduced: false,
        reached,
    }
}

fn path(nodes: &[Node], mut index: u32) -> Vec<Action> {
    let mut actions = Vec::new();
    while let Some(action) = nodes[index as usize].action {
        actions.push(action);
        index = nodes[index as usize].parent;
    }
    actions.reverse();
    actions
}

/// Explores `spec` breadth-first. `progress` is called now and then with
/// the counts so far.
pub fn explore(
    spec: &WorldSpec,
    options: &Options,
    progress: &mut dyn FnMut(&Stats),
) -> Result<Exploration, String> {
    let started = Instant::now();
    let initial = World::initial(spec)?;
    let mut stats = Stats {
        states: 1,
        ..Stats::default()
    };
    let mut reached = options.record_reached.then(Reached::default);
    let finish = |verdict, mut stats: Stats, reached: Option<Reached>| {
        stats.elapsed = started.elapsed();
        stats.widest_level = stats.widest_level.max(1);
        Ok(Exploration {
            verdict,
            stats,
            reached,
        })
    };
    if let Some((invariant, reason)) = check(&initial, spec, &options.invariants) {
        return finish(
            Verdict::Violated(Counterexample {
                invariant,
                reason,
                actions: Vec::new(),
            }),
            stats,
            reached,
        );
    }
    let canon = Canon::new(spec, options.symmetry);
    // The graph `no_livelock` is judged on; a shard sees only part of it.
    let mut graph = (options.invariants.contains(&Invariant::NoLivelock)
        && options.shard.is_none())
    .then(Graph::default);
    // Reserved small: the table doubles as it fills, and a large reserve
    // would be most of a small world's memory. Where the graph is kept, the
    // table also numbers the states, for its steps.
    let mut visited = Seen::new(graph.is_some(), options.max_states.min(1 << 16));
    let initial_print = canon.fingerprint(&initial);
    visited.insert(initial_print, 0);
    let mut nodes = vec![Node {
        parent: 0,
        action: None,
    }];
    // A level is kept in chunks of CHUNK worlds: a wide level grows
    // without copying the worlds already in it, and the chunks are the
    // parallel rounds.
    let mut frontier: Vec<Vec<(u32, World)>> = vec![vec![(0, initial)]];
    let mut split = options.shard.is_none();
    let mut depth = 0;
    while !frontier.is_empty() {
        if !split {
            let shard = options.shard.expect("unsplit only when sharding");
            // Split once the frontier is wide enough to share out; every
            // shard computed the same frontier up to here.
            let width: usize = frontier.iter().map(Vec::len).sum();
            if width >= 4 * shard.count as usize {
                let mut position = 0;
                for chunk in &mut frontier {
                    chunk.retain(|_| {
                        position += 1;
                        (position - 1) % shard.count == shard.index
                    });
                }
                split = true;
            }
        }
        let mut next_frontier: Vec<Vec<(u32, World)>> = Vec::new();
        // The next level's worlds share their equal parts (see `Interner`),
        // interned on the core that built them.
        let interner = Interner::default();
        // Each chunk is expanded, fingerprinted and checked on every core;
        // its new states are then numbered in order on one. The outcome
        // does not depend on the number of cores: the chunks are fixed, and
        // the first violation in order wins, as in a one-by-one search.
        for chunk in frontier {
            // Each world is dropped as soon as it is expanded: its children
            // then hold the only references to the parts they share with
            // it, and change them in place instead of copying them.
            let keep_edges = graph.is_some();
            let expand_one = |(node, world): (u32, World)| {
                (
                    node,
                    expand(
                        &world, spec, options, &canon, &visited, &interner, keep_edges,
                    ),
                )
            };
            #[cfg(feature = "parallel")]
            let expanded: Vec<(u32, Expansion)> = chunk.into_par_iter().map(expand_one).collect();
            #[cfg(not(feature = "parallel"))]
            let expanded: Vec<(u32, Expansion)> = chunk.into_iter().map(expand_one).collect();
            let mut budget_spent = false;
            let mut seen_in_round = Vec::new();
            let mut edges = Vec::new();
            'chunk: for (node, mut expansion) in expanded {
                if graph.is_some() {
                    edges.push((node, std::mem::take(&mut expansion.edges)));
                }
                stats.reduced += usize::from(expansion.reduced);
                stats.transitions += expansion.transitions;
                if let (Some(all), Some(these)) = (&mut reached, &expansion.reached) {
                    all.merge(these);
                }
                for (action, next, print, broken) in expansion.successors {
                    let index = u32::try_from(nodes.len()).map_err(|_| "too many states")?;
                    if !visited.insert(print, index) {
                        seen_in_round.push(next);
                        continue;
                    }
                    if nodes.len() == nodes.capacity() {
                        reserve_by_quarters(&mut nodes, 1);
                    }
                    nodes.push(Node {
                        parent: node,
                        action: Some(action),
                    });
                    stats.states += 1;
                    stats.max_depth = depth + 1;
                    if let Some((invariant, reason)) = broken {
                        stats.stored_bytes = stored_bytes(&visited, &nodes, graph.as_ref());
                        let actions = path(&nodes, index);
                        return finish(
                            Verdict::Violated(Counterexample {
                                invariant,
                                reason,
                                actions,
                            }),
                            stats,
                            reached,
                        );
                    }
                    match next_frontier.last_mut() {
                        Some(open) if open.len() < CHUNK => open.push((index, next)),
                        _ => {
                            let mut open = Vec::with_capacity(CHUNK);
                            open.push((index, next));
                            next_frontier.push(open);
                        }
                    }
                    if stats.states >= options.max_states {
                        budget_spent = true;
                        break 'chunk;
                    }
                }
            }
            // Freeing a round's duplicates is a third of the work on
            // wide levels: spread it too.
            #[cfg(feature = "parallel")]
            seen_in_round.into_par_iter().for_each(drop);
            #[cfg(not(feature = "parallel"))]
            drop(seen_in_round);
            if budget_spent {
                stats.stored_bytes = stored_bytes(&visited, &nodes, graph.as_ref());
                return finish(Verdict::BudgetExhausted, stats, reached);
            }
            if let Some(graph) = &mut graph {
                let index = visited.index().expect("kept with the graph");
                graph.add_edges(index, edges);
            }
            stats.elapsed = started.elapsed();
            progress(&stats);
        }
        let width = next_frontier.iter().map(Vec::len).sum();
        stats.widest_level = stats.widest_level.max(width);
        frontier = next_frontier;
        depth += 1;
    }
    stats.stored_bytes = stored_bytes(&visited, &nodes, graph.as_ref());
    if let Some(graph) = &graph {
        if let Some(cycle) = graph.find_cycle() {
            let mut actions = path(&nodes, cycle[0]);
            let index = visited.index().expect("kept with the graph");
            actions.extend(livelock::steps_around(
                spec, &canon, index, &actions, &cycle,
            ));
            let reason = livelock::judge_run(spec, &actions)
                .ok_or("a cycle of the explored graph did not replay as one")?;
            return finish(
                Verdict::Violated(Counterexample {
                    invariant: Invariant::NoLivelock,
                    reason,
                    actions,
                }),
                stats,
                reached,
            );
        }
    }
    finish(Verdict::Holds, stats, reached)
}
