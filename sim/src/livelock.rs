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

use crate::fingerprint::Index;
use crate::spec::WorldSpec;
use crate::symmetry::{Canon, Symmetry};
use crate::world::{Action, World};

/// The steps of an exploration, as far as `no_livelock` needs them: every
/// step between states, seen before or not, by state index (the search's
/// [`Index`] resolves fingerprints to indices). States are expanded in the
/// order they are numbered, each once, so the steps are kept the way the
/// cycle search reads them: each state's targets together, after an
/// offset per state, 4 bytes a step and 4 a state.
pub struct Graph {
    /// `targets[start[i]..start[i + 1]]` are state `i`'s successors.
    start: Vec<u32>,
    targets: Vec<u32>,
}

impl Default for Graph {
    fn default() -> Self {
        Graph {
            start: vec![0],
            targets: Vec::new(),
        }
    }
}

/// Makes room for `additional` more items, growing by a quarter rather
/// than doubling: these vectors hold most of a large search's bytes, and
/// a doubled vector is on average a quarter empty.
pub(crate) fn reserve_by_quarters<T>(items: &mut Vec<T>, additional: usize) {
    if items.capacity() - items.len() < additional {
        items.reserve_exact(additional.max(items.capacity() / 4));
    }
}

impl Graph {
    /// Notes the steps of a round of expansions, from each state (the next
    /// ones in number order) to the states fingerprinted, all of which
    /// `index` must hold. The look-ups run on every core.
    pub fn add_edges(&mut self, index: &Index, expansions: Vec<(u32, Vec<u128>)>) {
        let resolve = |(_, prints): &(u32, Vec<u128>)| -> Vec<u32> {
            prints
                .iter()
                .map(|to| index.get(*to).expect("every step's target was numbered"))
                .collect()
        };
        #[cfg(feature = "parallel")]
        let resolved: Vec<Vec<u32>> = {
            use rayon::prelude::*;
            expansions.par_iter().map(resolve).collect()
        };
        #[cfg(not(feature = "parallel"))]
        let resolved: Vec<Vec<u32>> = expansions.iter().map(resolve).collect();
        let steps = resolved.iter().map(Vec::len).sum();
        reserve_by_quarters(&mut self.targets, steps);
        reserve_by_quarters(&mut self.start, expansions.len());
        for ((from, _), targets) in expansions.iter().zip(resolved) {
            assert_eq!(
                *from as usize,
                self.start.len() - 1,
                "states are expanded in number order"
            );
            self.targets.extend(targets);
            let end = u32::try_from(self.targets.len()).expect("fewer than 2^32 steps");
            self.start.push(end);
        }
    }

    /// The bytes held, by capacity.
    pub fn bytes(&self) -> usize {
        (self.start.capacity() + self.targets.capacity()) * std::mem::size_of::<u32>()
    }

    /// The fingerprint of state `i`: a scan of `index`, for the few states
    /// of a cycle found.
    pub fn print(index: &Index, i: u32) -> u128 {
        index.print_of(i).expect("a state of the graph")
    }

    /// A cycle of the graph, as the states on it in order, if there is one.
    pub fn find_cycle(&self) -> Option<Vec<u32>> {
        find_cycle(&self.start, &self.targets)
    }
}

/// A cycle among the states `0..start.len() - 1` whose successors are
/// `targets[start[i]..start[i + 1]]`, as its states in order: an iterative
/// depth-first search (no recursion, so no stack overflow on deep graphs),
/// linear in states and steps. A state with no entry in `start` (never
/// expanded) has no successors.
pub fn find_cycle(start: &[u32], targets: &[u32]) -> Option<Vec<u32>> {
    let expanded = start.len().saturating_sub(1);
    let states = targets
        .iter()
        .map(|t| *t as usize + 1)
        .max()
        .unwrap_or(0)
        .max(expanded);
    let successors = |state: u32| -> &[u32] {
        let s = state as usize;
        if s < expanded {
            &targets[start[s] as usize..start[s + 1] as usize]
        } else {
            &[]
        }
    };
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::Unseen; states];
    // The path from the root, each state with how many of its successors
    // have been tried.
    let mut path: Vec<(u32, usize)> = Vec::new();
    for root in 0..states as u32 {
        if mark[root as usize] != Mark::Unseen {
            continue;
        }
        mark[root as usize] = Mark::OnPath;
        path.push((root, 0));
        while let Some((state, tried)) = path.last_mut() {
            let state = *state;
            let Some(&to) = successors(state).get(*tried) else {
                mark[state as usize] = Mark::Done;
                path.pop();
                continue;
            };
            *tried += 1;
            match mark[to as usize] {
                Mark::Done => {}
                Mark::OnPath => {
                    let from = path.iter().position(|(s, _)| *s == to)?;
                    return Some(path[from..].iter().map(|(s, _)| *s).collect());
                }
                Mark::Unseen => {
                    mark[to as usize] = Mark::OnPath;
                    path.push((to, 0));
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
    index: &Index,
    actions: &[Action],
    cycle: &[u32],
) -> Vec<Action> {
    let mut world = World::initial(spec).expect("explored, so it builds");
    for action in actions {
        world.apply(spec, *action, None);
    }
    let mut around = Vec::new();
    for i in 0..cycle.len() {
        let target = Graph::print(index, cycle[(i + 1) % cycle.len()]);
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
    use super::{find_cycle, Graph, Index};

    /// `find_cycle` on `states` states with these steps, each state's
    /// steps together as the graph keeps them.
    fn cycle_of(states: u32, steps: &[(u32, u32)]) -> Option<Vec<u32>> {
        let mut start = vec![0];
        let mut targets = Vec::new();
        for state in 0..states {
            targets.extend(steps.iter().filter(|s| s.0 == state).map(|s| s.1));
            start.push(targets.len() as u32);
        }
        find_cycle(&start, &targets)
    }

    #[test]
    fn a_dag_has_no_cycle() {
        assert_eq!(cycle_of(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]), None);
    }

    #[test]
    fn a_cycle_is_found_in_order() {
        assert_eq!(
            cycle_of(5, &[(0, 1), (1, 2), (2, 3), (3, 1), (0, 4)]),
            Some(vec![1, 2, 3])
        );
        assert_eq!(cycle_of(2, &[(0, 1), (1, 1)]), Some(vec![1]));
    }

    #[test]
    fn a_cycle_away_from_the_root_is_found() {
        assert_eq!(cycle_of(4, &[(0, 1), (2, 3), (3, 2)]), Some(vec![2, 3]));
    }

    #[test]
    fn the_graph_resolves_rounds_of_steps_by_fingerprint() {
        let index: Index = [(100u128, 0u32), (200, 1), (300, 2)].into_iter().collect();
        let mut graph = Graph::default();
        graph.add_edges(&index, vec![(0, vec![200, 300])]);
        graph.add_edges(&index, vec![(1, vec![]), (2, vec![200, 100])]);
        assert_eq!(graph.find_cycle(), Some(vec![0, 2]));
        assert_eq!(Graph::print(&index, 2), 300);
        // A state whose successors were never noted has none.
        let mut partial = Graph::default();
        partial.add_edges(&index, vec![(0, vec![200])]);
        assert_eq!(partial.find_cycle(), None);
    }

    #[test]
    #[should_panic(expected = "number order")]
    fn steps_out_of_order_are_refused() {
        let index: Index = [(100u128, 0u32), (200, 1)].into_iter().collect();
        let mut graph = Graph::default();
        graph.add_edges(&index, vec![(1, vec![100])]);
    }
}
