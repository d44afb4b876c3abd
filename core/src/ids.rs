//! Names: which link, which caller, which replica, which effect.

use std::fmt;
use std::sync::Arc;

/// One stored credential: a user's link to one provider. One row per link.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId {
    provider: Arc<str>,
    user: Arc<str>,
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
/// the provider) for one of its own. Production drivers combine a host name
/// with a random or time-based suffix; simulators number incarnations.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnerId(Arc<str>);

impl OwnerId {
    /// An owner id from any string.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        OwnerId(name.into())
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
