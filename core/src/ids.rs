//! Names: which link, which caller, which replica, which effect.

use std::fmt;
use std::sync::Arc;

/// One stored credential: a user's link to one provider. One row per link.
#[derive(Clone)]
pub struct LinkId {
    provider: Arc<str>,
    user: Arc<str>,
}

/// Two names are the same string if they are the same allocation: the
/// copies of a link's id that a process passes around share theirs, and
/// the machine compares ids at every input (its tables are ordered by id).
fn same_str(a: &Arc<str>, b: &Arc<str>) -> std::cmp::Ordering {
    if Arc::ptr_eq(a, b) {
        std::cmp::Ordering::Equal
    } else {
        a.cmp(b)
    }
}

impl Ord for LinkId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        same_str(&self.provider, &other.provider).then_with(|| same_str(&self.user, &other.user))
    }
}

impl PartialOrd for LinkId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for LinkId {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for LinkId {}

/// As derived: the provider's name, then the user's.
impl std::hash::Hash for LinkId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.provider.hash(state);
        self.user.hash(state);
    }
}

impl LinkId {
    /// The link of `user` at `provider`.
    pub fn new(provider: impl Into<Arc<str>>, user: impl Into<Arc<str>>) -> Self {
        LinkId {
            provider: provider.into(),
            user: user.into(),
        }
    }

    /// The provider's name, as the application configures it.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The user's id within the application.
    pub fn user(&self) -> &str {
        &self.user
    }
}

impl fmt::Debug for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkId({}/{})", self.provider, self.user)
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.user)
    }
}

/// A caller waiting for a token. The driver chooses the numbers; a number may
/// be reused once its caller has been answered or has gone away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallerId(pub u64);

impl fmt::Display for CallerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "caller {}", self.0)
    }
}

/// The name a machine writes into the leases it takes.
///
/// It must be unique per process *incarnation*: a restarted process must not
/// mistake its predecessor's lease (whose exchange may still be in flight at
/// the provider) for one of its own. A stable name such as `api-1` is
/// therefore wrong even for a single replica. Use [`OwnerId::generate`] at
/// start-up (`OwnerId::generate("api")` gives `api-<pid>-<random>`); only
/// simulators and tests, which number incarnations, need [`OwnerId::new`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnerId(Arc<str>);

impl OwnerId {
    /// An owner id from any string. The caller guarantees it is unique per
    /// process start; prefer [`OwnerId::generate`].
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        OwnerId(name.into())
    }

    /// A fresh owner id for this process start: `prefix`, the process id
    /// and 64 random bits, as `api-4242-3f9c0d2e8a1b7c64`. The prefix is for
    /// people reading leases in the table (a service or host name).
    ///
    /// Every call gives another id: call it once at start-up and build the
    /// configuration with it. The random bits come from the standard
    /// library's per-process hash keys (seeded by the OS), mixed with the
    /// time and a counter: no dependency, and distinct across restarts even
    /// when the process id is reused.
    pub fn generate(prefix: &str) -> Self {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::time::{SystemTime, UNIX_EPOCH};

        static CALLS: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(pid);
        hasher.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        hasher.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
        let random = hasher.finish();
        if prefix.is_empty() {
            OwnerId(format!("{pid}-{random:016x}").into())
        } else {
            OwnerId(format!("{prefix}-{pid}-{random:016x}").into())
        }
    }

    /// The id as a string (it is not a secret).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerId({})", self.0)
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Names one effect, so that its result comes back to the step that asked
/// for it. Unique among the effects of one machine that await a result; an
/// id is reused once its result has been handed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EffectId(pub u64);

impl fmt::Display for EffectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_owner_ids_are_readable_and_distinct() {
        let a = OwnerId::generate("api");
        let b = OwnerId::generate("api");
        assert_ne!(a, b);
        let pid = std::process::id();
        assert!(a.as_str().starts_with(&format!("api-{pid}-")), "{a}");
        assert_eq!(a.as_str().len(), format!("api-{pid}-").len() + 16);
        assert!(!OwnerId::generate("").as_str().is_empty());
    }

    #[test]
    fn link_ids_compare_by_their_names_whether_shared_or_not() {
        let a = LinkId::new("github", "u1");
        let shared = a.clone();
        let apart = LinkId::new(String::from("github"), String::from("u1"));
        assert_eq!(a, shared);
        assert_eq!(a, apart);
        assert_eq!(a.cmp(&apart), std::cmp::Ordering::Equal);
        let hash = |id: &LinkId| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            id.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&a), hash(&apart));
        let b = LinkId::new("github", "u2");
        let other = LinkId::new("gitlab", "u0");
        assert!(a < b && b < other, "provider first, then user");
        assert_eq!(b.cmp(&a), std::cmp::Ordering::Greater);
    }
}
