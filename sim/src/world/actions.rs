//! Which steps are possible now: the progress the world makes by itself
//! (with symmetry reduction of untouched callers and replicas) and the
//! faults the adversary may still inject, in a fixed order.

use std::collections::BTreeSet;

use baton_core::{AccessGrant, Effect, RefreshMachine, Timestamp};

use super::{shift, Action, Caller, Fault, Message, Route, World};
use crate::spec::WorldSpec;

impl World {
    fn untouched(&self, caller: &Caller, spec: &WorldSpec) -> bool {
        !caller.waiting
            && !caller.cancelled
            && !caller.died
            && caller.requests_left == spec.requests
    }

    /// The token `caller`'s replica would serve it on the driver's hot
    /// path now, by the replica's own clock.
    pub(super) fn held_token(&self, spec: &WorldSpec, caller: &Caller) -> Option<AccessGrant> {
        let replica = usize::from(caller.replica);
        let local = shift(self.now, spec.skew(replica));
        let link = &self.links[usize::from(caller.link)];
        let (grant, _) = self.replicas[replica].machine.cached_token(link, local)?;
        Some(grant)
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
        // interchangeable, and so are untouched replicas with equal clocks
        // running the same algorithm (a mixed fleet's replicas are not);
        // only the first of each group may start.
        let first_untouched_replica = (0..self.replicas.len()).find(|r| !self.replicas[*r].touched);
        let mut started_groups = BTreeSet::new();
        for (i, caller) in self.callers.iter().enumerate() {
            if caller.waiting || caller.requests_left == 0 {
                continue;
            }
            let r = usize::from(caller.replica);
            if !self.replicas[r].touched {
                let alike = first_untouched_replica.is_some_and(|first| spec.alike(first, r));
                if first_untouched_replica != Some(r) && alike {
                    continue;
                }
            }
            if self.untouched(caller, spec) && !started_groups.insert((caller.replica, caller.link))
            {
                continue;
            }
            let caller_index = i as u16;
            if self.held_token(spec, caller).is_some() {
                out.push(Action::Request {
                    caller: caller_index,
                    route: Route::HotPath,
                });
            }
            out.push(Action::Request {
                caller: caller_index,
                route: Route::Machine,
            });
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
    /// beyond another process's earlier timer, or passing at all while a
    /// store or API call is on its way (a healthy driver finishes both well
    /// inside the lease).
    pub(super) fn timer_due(&self, spec: &WorldSpec, r: usize) -> Option<(Timestamp, bool)> {
        let at = self.replicas[r].machine.poll_timeout()?;
        let at = self.world_time(spec, r, at).max(self.now);
        // Another process's timer due earlier would have fired first unless
        // that process was paused: passing it is a stall too.
        let passes_earlier_timer = (0..self.replicas.len()).any(|other| {
            other != r
                && self.replicas[other]
                    .machine
                    .poll_timeout()
                    .is_some_and(|t| self.world_time(spec, other, t).max(self.now) < at)
        });
        let stall = passes_earlier_timer
            || self.messages.iter().any(|m| match m {
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
                        // A zombie's reply goes nowhere: a gateway failing
                        // it adds nothing a lost reply would not.
                        if b.gateway_after_forwarding > 0 && !orphaned {
                            fault(Fault::GatewayAfterForwarding);
                        }
                        if b.gateway_before_arrival > 0 && !orphaned {
                            fault(Fault::GatewayBeforeArrival);
                        }
                        if b.gateway_without_forwarding > 0 && !orphaned {
                            fault(Fault::GatewayWithoutForwarding);
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
        self.writer_actions(out);
    }

    /// The next instant after now at which something changes by itself: a
    /// lease or access token expiring in the store, an exchange deadline.
    pub fn next_event(&self) -> Option<Timestamp> {
        let mut times = Vec::new();
        for link in self.links.iter() {
            if let Some(row) = self.store.row(link) {
                if let Some(lease) = &row.lease {
                    times.push(lease.expires_at);
                }
                if let Some(access) = &row.access {
                    times.push(access.expires_at);
                }
            }
        }
        for message in self.messages.iter() {
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
}
