//! The writers that are not replicas (DESIGN.md section 3): the OAuth
//! callback re-linking an account, the user unlinking it, and the user
//! revoking the application at the provider. Each acts at any step, as
//! often as its budget allows, and none of them talks to the machines.
//!
//! - A re-link starts a new family at the provider
//!   ([`FakeProvider::relink`](baton_fakes::FakeProvider::relink)) and
//!   writes its pair over the row: access and refresh token of the new
//!   family, no failure, **no lease**. The callback is not a refresher: it
//!   overwrites the whole row as an upsert would (baton's own `enroll`
//!   does), so a lease held over the old family's token goes too: another
//!   replica may take a new lease at once while the old holder's exchange
//!   is still in flight. The old family stays live but superseded.
//!   With `[world] relink_keeps_lease = true` the callback updates only the
//!   token columns, as a hand-written `UPDATE … SET access_token, refresh_token`
//!   does, and a lease held over the old family's token stays in the row.
//!   Every lease names the token it guards, so a replica must see that
//!   lease as stale and take it over rather than wait for it to expire and
//!   then treat the new family's token as one whose outcome is unknown.
//!   With `[world] relink_tells_replica = r` the callback runs in replica
//!   `r`'s process, as `Refresher::enroll` does: once the row is written,
//!   that replica's machine is told (`link_replaced`) and forgets the older
//!   family's token, and a flight of the older family still under way ends
//!   by serving its waiters from a fresh read. Other replicas are not told.
//! - An unlink deletes the row. A compare-and-swap never creates one, so
//!   the row stays gone until a re-link writes it again.
//! - A revocation kills every family of the link at the provider; the row
//!   is left as it is (the application is not told).
//!
//! Which faults were used ([`FaultsUsed`](super::FaultsUsed)`::{relink,
//! unlink, revoke}`) is what the invariants' excuses look at.

use std::sync::Arc;

use baton_core::{RefreshMachine, StoredLink};

use super::{Action, Notes, World};
use crate::spec::WorldSpec;

impl World {
    /// The outside writers' steps possible now.
    pub(super) fn writer_actions(&self, out: &mut Vec<Action>) {
        let b = &self.budget;
        for (i, link) in self.links.iter().enumerate() {
            let link_index = i as u8;
            if b.relinks > 0 {
                out.push(Action::Relink { link: link_index });
            }
            if b.unlinks > 0 && self.store.row(link).is_some() {
                out.push(Action::Unlink { link: link_index });
            }
            if b.revocations > 0 && !self.provider.family_revoked(link) {
                out.push(Action::Revoke { link: link_index });
            }
        }
    }

    /// Takes an outside writer's step.
    pub(super) fn outside_write(&mut self, spec: &WorldSpec, action: Action, note: &mut Notes<'_>) {
        match action {
            Action::Relink { link } => {
                let i = usize::from(link);
                let id = self.links[i].clone();
                self.budget.relinks -= 1;
                self.used.relink = true;
                let tokens = Arc::make_mut(&mut self.provider).relink(&id, self.now);
                let kept_lease = match self.store.row(&id) {
                    Some(row) if spec.relink_keeps_lease => row.lease.clone(),
                    _ => None,
                };
                // The row baton's `enroll` writes, built by the same function.
                let row = StoredLink {
                    lease: kept_lease,
                    ..StoredLink::enrolled(tokens)
                };
                note.add(|| {
                    (
                        "callback".into(),
                        "store".into(),
                        format!(
                            "the user re-links {id}: the row becomes {} (a new family; {})",
                            crate::report::describe_row(&row),
                            if spec.relink_keeps_lease {
                                "the callback leaves any lease in place"
                            } else {
                                "any lease is overwritten"
                            }
                        ),
                    )
                });
                Arc::make_mut(&mut self.store).insert(id.clone(), row);
                self.unlinked &= !(1 << i);
                if let Some(r) = spec.relink_tells_replica.map(usize::from) {
                    // After the write, as `Refresher::enroll` does: the
                    // process forgets what it held from the older family.
                    let local = super::shift(self.now, spec.skew(r));
                    Arc::make_mut(&mut self.replicas[r].machine).link_replaced(local, &id);
                    note.add(|| {
                        (
                            "callback".into(),
                            format!("r{r}"),
                            format!("tells r{r} that {id} was replaced"),
                        )
                    });
                }
            }
            Action::Unlink { link } => {
                let i = usize::from(link);
                let id = self.links[i].clone();
                self.budget.unlinks -= 1;
                self.used.unlink = true;
                Arc::make_mut(&mut self.store).remove(&id);
                self.unlinked |= 1 << i;
                note.add(|| {
                    (
                        "user".into(),
                        "store".into(),
                        format!("unlinks {id}: the row is removed"),
                    )
                });
            }
            Action::Revoke { link } => {
                let id = self.links[usize::from(link)].clone();
                self.budget.revocations -= 1;
                self.used.revoke = true;
                Arc::make_mut(&mut self.provider).revoke(&id);
                note.add(|| {
                    (
                        "user".into(),
                        "provider".into(),
                        format!("revokes the application for {id}: every token family dies"),
                    )
                });
            }
            other => unreachable!("{other:?} is not an outside writer's step"),
        }
    }

    /// Whether link `i` was unlinked (and not re-linked since).
    pub fn is_unlinked(&self, i: usize) -> bool {
        self.unlinked & (1 << i) != 0
    }

    /// The oldest token generation a request for link `i` made now may be
    /// answered with: the current generation, or the next one if the link
    /// is unlinked (no token of any family it had is the user's any more).
    pub(super) fn min_generation(&self, i: usize) -> u32 {
        let current = self.provider.generation(&self.links[i]).unwrap_or(0);
        current + u32::from(self.is_unlinked(i))
    }
}
