//! An oracle for symmetry reduction, written apart from
//! `baton_sim::symmetry`: the orbit of a world under every permutation of
//! its replicas, named by the smallest of its renderings. A rendering is
//! the world's `Hash` byte stream (the explorer's own notion of equal
//! worlds) with the replicas and their callers moved, the replica fields of
//! messages rewritten (and the set of messages re-sorted), and every
//! owner id `r{i}.{k}` hashed anywhere renamed. Exhaustive over permutations and slow: for small worlds only.

use std::hash::{Hash, Hasher};

use baton_sim::world::{Message, World};

/// Records the byte stream, renaming owner ids of the world's form.
struct Renamer<'a> {
    out: Vec<u8>,
    to: &'a [u8],
}

impl Hasher for Renamer<'_> {
    fn write(&mut self, bytes: &[u8]) {
        if let Ok(text) = std::str::from_utf8(bytes) {
            if let Some((replica, incarnation)) =
                text.strip_prefix('r').and_then(|rest| rest.split_once('.'))
            {
                let numeric = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
                if numeric(replica) && numeric(incarnation) {
                    let replica: usize = replica.parse().unwrap();
                    let renamed = format!("r{}.{incarnation}", self.to[replica]);
                    self.out.extend_from_slice(renamed.as_bytes());
                    return;
                }
            }
        }
        self.out.extend_from_slice(bytes);
    }
    fn finish(&self) -> u64 {
        unreachable!()
    }
}

fn permutations(n: u8) -> Vec<Vec<u8>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for smaller in permutations(n - 1) {
        for at in 0..=smaller.len() {
            let mut p = smaller.clone();
            p.insert(at, n - 1);
            out.push(p);
        }
    }
    out
}

/// `world` with replica `r` renamed `to[r]`, as bytes.
fn render(world: &World, to: &[u8]) -> Vec<u8> {
    let n = world.replicas.len();
    let per = world.callers.len() / n;
    let mut from = vec![0usize; n];
    for (r, &p) in to.iter().enumerate() {
        from[usize::from(p)] = r;
    }
    let mut renamed = world.clone();
    renamed.replicas = from.iter().map(|&r| world.replicas[r].clone()).collect();
    renamed.callers = from
        .iter()
        .enumerate()
        .flat_map(|(p, &r)| {
            world.callers[r * per..(r + 1) * per].iter().map(move |c| {
                let mut c = c.clone();
                c.replica = p as u8;
                c
            })
        })
        .collect();
    let mut messages = renamed.messages.take();
    for m in &mut messages {
        match m {
            Message::Sent { replica, .. }
            | Message::Reply { replica, .. }
            | Message::ReadReply { replica, .. }
            | Message::Lost { replica, .. } => *replica = to[usize::from(*replica)],
        }
    }
    // Messages in flight are a set to the world: renamed, sorted again.
    let mut messages: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| {
            let mut h = Renamer {
                out: Vec::new(),
                to,
            };
            m.hash(&mut h);
            h.out
        })
        .collect();
    messages.sort();
    let mut h = Renamer {
        out: Vec::new(),
        to,
    };
    renamed.hash(&mut h);
    messages.hash(&mut h);
    h.out
}

/// The name of `world`'s orbit: its smallest rendering under every
/// permutation of its replicas (all of which the caller asserts alike).
pub fn orbit(world: &World) -> Vec<u8> {
    permutations(world.replicas.len() as u8)
        .iter()
        .map(|to| render(world, to))
        .min()
        .expect("at least the identity")
}
