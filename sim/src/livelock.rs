//! `no_livelock`: every run ends. A run that returns the world to a state
//! it was already in (up to renaming interchangeable replicas) can repeat
//! that stretch forever — a machine that re-reads the row instead of
//! answering, two replicas taking and giving back a lease — and no state
//! invariant ever sees it: each state on the loop is fine, and the loop
//! never reaches the settled state where `callers_served` asks whether
//! anyone still waits. In this world time only moves forward and every
//! budget only shrinks, so a correct algorithm's state graph has no cycle;
//! with `callers_served` judging every state where nothing more can
//! happen, "no cycle" is what makes "every caller is eventually answered"
//! a proof rather than a hope.
//!
//! The explorer keeps, besides the visited set, each state's fingerprint
//! and its edges (the successors of every expansion, seen before or not),
//! and after a search that found no violation looks for a cycle with an
//! iterative depth-first search ([`find_cycle`]). The run it reports is a
//! path to the cycle and once around it; [`judge_run`] says what is wrong
//! with such a run, on the explorer's side and on replay alike.
//!
//! Partial-order reduction keeps cycles: a state is expanded by one
//! commuting step only if that step leads to a state not seen yet (the
//! cycle proviso), so a loop of non-commuting steps is never cut short by
//! a commuting step that is postponed forever. Symmetry keeps them too: a
//! path from a world to a renaming of itself, repeated, comes back to the
//! world itself, since the renamings of a finite set form a finite group.
//! A shard sees only part of the graph, so a sharded search does not judge
//! `no_livelock`, and says so. The thread checkers (loom, shuttle) and
//! proptest bound every run, so they cannot see one either.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::fingerprint::FingerprintHasher;

use crate::spec::WorldSpec;
use crate::symmetry::{Canon, Symmetry};
use crate::world::{Action, World};

/// The states and steps of an exploration, as far as `no_livelock` needs
/// them: each state's index by fingerprint, and every step between them.
#[derive(Default)]
pub struct Graph {
    /// Fingerprints are hashes already: their low bits index the table.
    index: HashMap<u128, u32, BuildHasherDefault<FingerprintHasher>>,
    edges: Vec<(u32, u32)>,
}

impl Graph {
    /// Notes state `index` (numbered in the order found) with `print`.
    pub fn add_state(&mut self, index: u32, print: u128) {
        debug_assert_eq!(self.index.len(), index as usize);
        self.index.insert(print, index);
    }

    /// Notes the steps of a round of expansions: from each state to the
    /// states fingerprinted, all of which must have been added. The
    /// look-ups run on every core.
    pub fn add_edges(&mut self, expansions: Vec<(u32, Vec<u128>)>) {
        type Index = HashMap<u128, u32, BuildHasherDefault<FingerprintHasher>>;
        fn steps<'a>(
            index: &'a Index,
            (from, prints): &'a (u32, Vec<u128>),
        ) -> impl Iterator<Item = (u32, u32)> + 'a {
            prints.iter().map(move |to| (*from, index[to]))
        }
        let index = &self.index;
        let resolve = |expansion| steps(index, expansion);
        // In the order found either way: which cycle is reported does not
        // depend on the number of cores.
        #[cfg(feature = "parallel")]
        let resolved: Vec<(u32, u32)> = {
            use rayon::prelude::*;
            expansions.par_iter().flat_map_iter(resolve).collect()
        };
        #[cfg(not(feature = "parallel"))]
        let resolved: Vec<(u32, u32)> = expansions.iter().flat_map(resolve).collect();
        self.edges.extend(resolved);
    }

    /// Bytes held, by capacity.
    pub fn bytes(&self) -> usize {
        self.index.capacity() * (std::mem::size_of::<(u128, u32)>() + 1)
            + self.edges.capacity() * std::mem::size_of::<(u32, u32)>()
    }

    /// The fingerprint of state `index`: a scan, needed only for the few
    /// states of a cycle found, where a table by index would cost 16 bytes
    /// for every state of every search.
    pub fn print(&self, index: u32) -> u128 {
        let found = self.index.iter().find(|(_, i)| **i == index);
        *found.expect("a state of the graph").0
    }

    /// A cycle, as the states on it in order (the first one's successor is
    /// the second, the last one's the first), reached first by a depth-first
    /// search from the initial state that tries steps in the order found.
    pub fn find_cycle(&self) -> Option<Vec<u32>> {
        find_cycle(self.index.len(), &self.edges)
    }
}

/// A cycle in the graph of `states` states and `edges`, if any: the states
/// on it in order.
pub fn find_cycle(states: usize, edges: &[(u32, u32)]) -> Option<Vec<u32>> {
    // Successors in compressed rows, in the order the edges were found.
    let mut start = vec![0u32; states + 1];
    for &(from, _) in edges {
        start[from as usize + 1] += 1;
    }
    for i in 0..states {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut next = vec![0u32; edges.len()];
    for &(from, to) in edges {
        next[fill[from as usize] as usize] = to;
        fill[from as usize] += 1;
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::Unseen; states];
    // The path from the root: each state and the next of its edges to try.
    let mut path: Vec<(u32, u32)> = Vec::new();
    for root in 0..states as u32 {
        if mark[root as usize] != Mark::Unseen {
            continue;
        }
        mark[root as usize] = Mark::OnPath;
        path.push((root, start[root as usize]));
        while let Some((state, cursor)) = path.last_mut() {
            let state = *state;
            if *cursor == start[state as usize + 1] {
                mark[state as usize] = Mark::Done;
                path.pop();
                continue;
            }
            let to = next[*cursor as usize];
            *cursor += 1;
            match mark[to as usize] {
                Mark::Done => {}
                Mark::OnPath => {
                    let from = path.iter().position(|(s, _)| *s == to)?;
                    return Some(path[from..].iter().map(|(s, _)| *s).collect());
                }
                Mark::Unseen => {
                    mark[to as usize] = Mark::OnPath;
                    path.push((to, start[to as usize]));
                }
            }
        }
    }
    None
}

/// The run `actions` from the initial world, if it ends where it already
/// was (up to renaming replicas): why that is a livelock, in words. The
/// same words whether the search ran with symmetry or without, so a replay
/// reproduces them.
pub fn judge_run(spec: &WorldSpec, actions: &[Action]) -> Option<String> {
    let canon = Canon::new(spec, Symmetry::Replicas);
    let mut world = World::initial(spec).ok()?;
    let mut prints = vec![canon.fingerprint(&world)];
    for action in actions {
        world.apply(spec, *action, None);
        prints.push(canon.fingerprint(&world));
    }
    let last = *prints.last()?;
    let back_to = prints[..prints.len() - 1].iter().position(|p| *p == last)?;
    let waiting: Vec<String> = world
        .callers
        .iter()
        .enumerate()
        .filter(|(_, c)| c.waiting)
        .map(|(i, _)| i.to_string())
        .collect();
    let who = match waiting.as_slice() {
        [] => "nobody waiting, but the run never ends".to_owned(),
        [one] => format!("caller {one} waiting throughout"),
        many => format!("callers {} waiting throughout", many.join(", ")),
    };
    Some(format!(
        "steps {}–{} lead from the world after step {back_to} back to it (up to renaming \
         replicas), {who}: a run can repeat them forever",
        back_to + 1,
        actions.len(),
    ))
}

/// The steps once around `cycle` from the world `actions` reach (which is
/// `cycle[0]`'s), found again by trying each step's fingerprint.
pub fn steps_around(
    spec: &WorldSpec,
    canon: &Canon,
    graph: &Graph,
    actions: &[Action],
    cycle: &[u32],
) -> Vec<Action> {
    let mut world = World::initial(spec).expect("explored, so it builds");
    for action in actions {
        world.apply(spec, *action, None);
    }
    let mut around = Vec::new();
    for i in 0..cycle.len() {
        let target = graph.print(cycle[(i + 1) % cycle.len()]);
        let (action, next) = world
            .actions(spec)
            .into_iter()
            .find_map(|action| {
                let mut next = world.clone();
                next.apply(spec, action, None);
                (canon.fingerprint(&next) == target).then_some((action, next))
            })
            .expect("an edge of the explored graph is a step of the world");
        around.push(action);
        world = next;
    }
    around
}

#[cfg(test)]
mod tests {
    use super::find_cycle;

    #[test]
    fn a_dag_has_no_cycle() {
        assert_eq!(find_cycle(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]), None);
    }

    #[test]
    fn a_cycle_is_found_in_order() {
        assert_eq!(
            find_cycle(5, &[(0, 1), (1, 2), (2, 3), (3, 1), (0, 4)]),
            Some(vec![1, 2, 3])
        );
        assert_eq!(find_cycle(2, &[(0, 1), (1, 1)]), Some(vec![1]));
    }

    #[test]
    fn a_cycle_away_from_the_root_is_found() {
        assert_eq!(find_cycle(4, &[(0, 1), (2, 3), (3, 2)]), Some(vec![2, 3]));
    }
}
