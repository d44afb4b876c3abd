//! Taking replicas' names out of opaque values: a `Hasher` adapter that
//! rewrites owner ids as they are hashed and notes whom they named.
//!
//! Machines (baton-core's and the zoo's), store rows, leases, compare-and-
//! swap effects and read replies all carry owner ids, most of them behind
//! private fields the simulator cannot rewrite. Every one of them reaches
//! a hasher the same way: an `OwnerId` is an `Arc<str>`, and `str` hashes
//! as one `write` of its bytes (then a `0xff` terminator). The world names
//! replica `r`'s incarnation `k` `r{r}.{k}` (`WorldSpec::config`), and no
//! other string in a world has that shape (tokens are `A1`, `u0.g1.R2`,
//! links `u0`, provider names `github`): so rewriting exactly those byte
//! strings reaches every owner id, wherever it sits, and nothing else.
//! Integer writes pass through untouched: no owner id is an integer, and
//! caller ids are local to their replica (`World::caller_id`).
//!
//! An owner id of the part's own replica becomes `\x01s.{k}`, any other
//! `\x01o.{k}`, and the other's index is noted, in order. The anonymous
//! bytes and the list of others named together say exactly what the
//! original bytes said; renaming replicas then only maps the list.

use std::hash::Hasher;

/// A `Hasher` that forwards to `inner` with owner ids anonymised.
pub struct Anonymise<'a, H: Hasher> {
    /// Where the anonymous bytes go.
    pub inner: &'a mut H,
    /// The replica whose part this is, if any: its own id is "itself".
    pub me: Option<u8>,
    /// The other replicas named, in the order they were.
    pub others: super::Names,
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
    let replica = replica
        .iter()
        .fold(0u32, |n, digit| n * 10 + u32::from(digit - b'0'));
    Some((u8::try_from(replica).ok()?, incarnation))
}

impl<H: Hasher> Hasher for Anonymise<'_, H> {
    fn write(&mut self, bytes: &[u8]) {
        let Some((replica, incarnation)) = parse_owner(bytes) else {
            return self.inner.write(bytes);
        };
        let mut out = [0u8; 32];
        let tag: &[u8] = if self.me == Some(replica) {
            b"\x01s."
        } else {
            self.others.push(replica);
            b"\x01o."
        };
        let len = tag.len() + incarnation.len();
        if len > out.len() {
            return self.inner.write(bytes);
        }
        out[..tag.len()].copy_from_slice(tag);
        out[tag.len()..len].copy_from_slice(incarnation);
        self.inner.write(&out[..len]);
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

    fn anonymous(value: &str, me: Option<u8>) -> (Vec<u8>, Vec<u8>) {
        let mut bytes = Vec::new();
        let mut h = Anonymise {
            inner: &mut Gather(&mut bytes),
            me,
            others: crate::symmetry::Names::new(),
        };
        value.hash(&mut h);
        let others = h.others.to_vec();
        (bytes, others)
    }

    fn plain(value: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        value.hash(&mut Gather(&mut bytes));
        bytes
    }

    #[test]
    fn owner_ids_are_anonymised_and_nothing_else() {
        assert_eq!(anonymous("r1.3", Some(1)), (plain("\x01s.3"), vec![]));
        assert_eq!(anonymous("r0.0", Some(1)), (plain("\x01o.0"), vec![0]));
        assert_eq!(anonymous("r2.0", None), (plain("\x01o.0"), vec![2]));
        for other in [
            "u0.g1.R2",
            "A1",
            "r0",
            "r.1",
            "r0.1x",
            "github",
            "access-for-R1",
        ] {
            assert_eq!(anonymous(other, Some(0)), (plain(other), vec![]), "{other}");
        }
    }
}
