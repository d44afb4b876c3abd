//! Partial-order reduction for `explore`: in a state where one step
//! commutes with everything else that can happen before it, and is
//! invisible to every invariant, exploring that step alone loses no
//! violation. This is a persistent set of size one, in the terms of
//! Godefroid's "Partial-Order Methods for the Verification of Concurrent
//! Systems".
//!
//! The step is a store read's reply reaching its replica
//! ([`Action::Receive`] of a [`Message::ReadReply`]). It changes only that
//! replica's machine and adds that replica's next requests. Under the
//! conditions of [`commuting_step`], no other step can touch either before
//! it runs:
//! - no other message to or from the replica, no caller of it that can
//!   ask, and no timer of its own: nothing else feeds its machine;
//! - no crash or cancellation budget: the adversary cannot touch it either;
//! - no clock jump, timeout or lost reply: time cannot move. The machine
//!   reads the time, and while a read's reply is in flight, time moves
//!   only through those faults;
//! - it answers no caller. An answer is judged against the provider of the
//!   moment it lands, so moving it past other steps could hide a dead
//!   token.
//!
//! The step may start an exchange, which `single_flight` observes. That
//! invariant only gets worse with more exchanges in flight, and no other
//! step can remove this replica's exchanges before the step runs. So a
//! state where it breaks without the step has a counterpart with the step
//! where it breaks too, and that counterpart is explored.
//!
//! A fault budget of any kind blocks the step. A crash of that replica or
//! a clock jump at any moment changes what the machine does, so the
//! reduction pays off in fault-free worlds, and in a faulty world's
//! suffix once its faults are spent.
//!
//! The cycle proviso is enforced by the explorer: a reduced state whose
//! one successor was already seen is expanded in full, so a step cannot be
//! postponed forever around a loop.

use crate::spec::WorldSpec;
use crate::world::{Action, Message, World};
use baton_core::RefreshMachine;

/// A step of `world` that may be explored alone, and the world after it;
/// `None` when every step must be explored.
pub fn commuting_step(world: &World, spec: &WorldSpec) -> Option<(Action, World)> {
    let b = &world.budget;
    // Outside writers change the store and provider under every replica;
    // rather than argue that they commute with a read's reply, the
    // reduction stays off while any may still act.
    if b.crashes > 0 || b.clock_jumps > 0 || b.timeouts > 0 || b.lost_replies > 0 || b.has_writers()
    {
        return None;
    }
    // A lost reply's timeout moves time to its deadline.
    if world
        .messages
        .iter()
        .any(|m| matches!(m, Message::Lost { .. }))
    {
        return None;
    }
    'candidates: for (index, message) in world.messages.iter().enumerate() {
        let Message::ReadReply {
            replica,
            incarnation,
            ..
        } = message
        else {
            continue;
        };
        let r = usize::from(*replica);
        if world.replicas[r].incarnation != *incarnation {
            continue;
        }
        for (other, m) in world.messages.iter().enumerate() {
            if other != index && m.sender().0 == *replica {
                continue 'candidates;
            }
        }
        for caller in world.callers.iter().filter(|c| c.replica == *replica) {
            let can_ask = !caller.waiting && !caller.died && caller.requests_left > 0;
            let can_cancel = caller.waiting && b.cancels > 0;
            if can_ask || can_cancel {
                continue 'candidates;
            }
        }
        if world.replicas[r].machine.poll_timeout().is_some() {
            continue;
        }
        let action = Action::Receive {
            message: index as u16,
        };
        let mut next = world.clone();
        next.apply(spec, action, None);
        let answered = next.callers != world.callers;
        if answered || next.used != world.used || next.budget != world.budget {
            continue;
        }
        return Some((action, next));
    }
    None
}
