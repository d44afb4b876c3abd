//! The writers that are not replicas (DESIGN.md section 3): the OAuth
//! callback re-linking an account, the user unlinking it, and the user
//! revoking the application at the provider. Each acts at any step, as
//! often as its budget allows, and none of them talks to the machines.
//!
//! - A re-link starts a new family at the provider
//!   ([`FakeProvider::relink`](baton_fakes::FakeProvider::relink)) and
//!   writes its pair over the row: access and refresh token of the new
//!   family, no failure, **no lease**. The callback is not a refresher: it
//!   overwrites the whole row as an upsert would, so a lease held over the
//!   old family's token goes too. Keeping it would change nothing for the
//!   new token (every lease names the token it guards), and clearing it is
//!   the harder case: another replica may take a new lease at once while
//!   the old holder's exchange is still in flight. The old family stays live
//!   but superseded.
//! - An unlink deletes the row. A compare-and-swap never creates one, so
//!   the row stays gone until a re-link writes it again.
//! - A revocation kills every family of the link at the provider; the row
//!   is left as it is (the application is not told).
//!
//! Which faults were used ([`FaultsUsed`](super::FaultsUsed)`::{relink,
//! unlink, revoke}`) is what the invariants' excuses look at.

use std::sync::Arc;

use baton_core::StoredLink;

use super::{Action, Notes, World};

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
    pub(super) fn outside_write(&mut self, action: Action, note: &mut Notes<'_>) {
        match action {
            Action::Relink { link } => {
                let i = usize::from(link);
                let id = self.links[i].clone();
                self.budget.relinks -= 1;
                self.used.relink = true;
                let tokens = Arc::make_mut(&mut self.provider).relink(&id, self.now);
                let row = StoredLink {
                    access: Some(tokens.access),
                    refresh_token: tokens.refresh_token,
                    failure: None,
                    lease: None,
                };
                note.add(|| {
                    (
                        "callback".into(),
                        "store".into(),
                        format!(
                            "the user re-links {id}: the row becomes {} (a new family; any lease is overwritten)",
                            crate::report::describe_row(&row)
                        ),
                    )
                });
                Arc::make_mut(&mut self.store).insert(id, row);
                self.unlinked &= !(1 << i);
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
