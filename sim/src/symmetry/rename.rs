//! Renaming replicas inside opaque values: a `Hasher` adapter that rewrites
//! owner ids as they are hashed.
//!
//! Machines (baton-core's and the zoo's), store rows, leases, compare-and-
//! swap effects and read replies all carry owner ids, most of them behind
//! private fields the simulator cannot rewrite. Every one of them reaches
//! a hasher the same way: an `OwnerId` is an `Arc<str>`, and `str` hashes
//! as one `write` of its bytes (then a `0xff` terminator). The world names
//! replica `r`'s incarnation `k` `r{r}.{k}` (`WorldSpec::config`), and no
//! other string in a world has that shape (tokens are `A1`, `u0.g1.R2`,
//! links `u0`, provider names `github`): so rewriting exactly those byte
//! strings renames every owner id, wherever it sits, and nothing else.
//! Integer writes pass through untouched: no owner id is an integer, and
//! caller ids are local to their replica (`World::caller_id`).

use std::hash::Hasher;

/// How owner ids are rewritten.
#[derive(Clone, Copy, Debug)]
pub enum Names<'a> {
    /// Replica `r` becomes replica `to[r]`: one member of the orbit.
    Permuted(&'a [u8]),
    /// Replica `me` becomes `s`, every other `o`: what a replica looks like
    /// without saying who anyone is (a permutation-invariant sort key).
    SelfAndOthers(u8),
}

/// A `Hasher` that forwards to `inner`, renaming owner ids on the way.
pub struct Rename<'a, H: Hasher> {
    /// Where the renamed bytes go.
    pub inner: &'a mut H,
    /// The renaming.
    pub names: Names<'a>,
}

/// The replica and incarnation of an owner id of the world's form
/// `r{replica}.{incarnation}`.
pub fn parse_owner(bytes: &[u8]) -> Option<(u8, &[u8])> {
    let rest = bytes.strip_prefix(b"r")?;
    let dot = rest.iter().position(|b| *b == b'.')?;
    let (replica, incarnation) = (&rest[..dot], &rest[dot + 1..]);
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if !digits(replica) || !digits(incarnation) || replica.len() > 3 {
        return None;
    }
    let replica: u32 = std::str::from_utf8(replica).ok()?.parse().ok()?;
    Some((u8::try_from(replica).ok()?, incarnation))
}

impl<H: Hasher> Hasher for Rename<'_, H> {
    fn write(&mut self, bytes: &[u8]) {
        let Some((replica, incarnation)) = parse_owner(bytes) else {
            return self.inner.write(bytes);
        };
        let mut renamed = [0u8; 32];
        let head: &[u8] = match self.names {
            Names::Permuted(to) => match to.get(usize::from(replica)) {
                Some(&new) => {
                    let mut at = 1;
                    renamed[0] = b'r';
                    for digit in new.to_string().bytes() {
                        renamed[at] = digit;
                        at += 1;
                    }
                    &renamed[..at]
                }
                // Not a replica of this world: not an owner id after all.
                None => return self.inner.write(bytes),
            },
            Names::SelfAndOthers(me) if me == replica => b"s",
            Names::SelfAndOthers(_) => b"o",
        };
        let mut out = Vec::with_capacity(head.len() + 1 + incarnation.len());
        out.extend_from_slice(head);
        out.push(b'.');
        out.extend_from_slice(incarnation);
        self.inner.write(&out);
    }
    fn write_u8(&mut self, i: u8) {
        self.inner.write_u8(i)
    }
    fn write_u16(&mut self, i: u16) {
        self.inner.write_u16(i)
    }
    fn write_u32(&mut self, i: u32) {
        self.inner.write_u32(i)
    }
    fn write_u64(&mut self, i: u64) {
        self.inner.write_u64(i)
    }
    fn write_u128(&mut self, i: u128) {
        self.inner.write_u128(i)
    }
    fn write_usize(&mut self, i: usize) {
        self.inner.write_usize(i)
    }
    fn write_i64(&mut self, i: i64) {
        self.inner.write_i64(i)
    }
    fn write_isize(&mut self, i: isize) {
        self.inner.write_isize(i)
    }
    fn finish(&self) -> u64 {
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::Gather;
    use std::hash::Hash;

    fn renamed(value: &str, names: Names<'_>) -> Vec<u8> {
        let mut bytes = Vec::new();
        value.hash(&mut Rename {
            inner: &mut Gather(&mut bytes),
            names,
        });
        bytes
    }

    fn plain(value: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        value.hash(&mut Gather(&mut bytes));
        bytes
    }

    #[test]
    fn owner_ids_are_renamed_and_nothing_else() {
        let to = [2, 0, 1];
        assert_eq!(renamed("r0.3", Names::Permuted(&to)), plain("r2.3"));
        assert_eq!(renamed("r2.0", Names::Permuted(&to)), plain("r1.0"));
        assert_eq!(renamed("r1.0", Names::SelfAndOthers(1)), plain("s.0"));
        assert_eq!(renamed("r0.0", Names::SelfAndOthers(1)), plain("o.0"));
        for other in ["r7.0", "u0.g1.R2", "A1", "r0", "r.1", "r0.1x", "github"] {
            assert_eq!(
                renamed(other, Names::Permuted(&to)),
                plain(other),
                "{other}"
            );
        }
    }
}
