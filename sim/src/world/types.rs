//! The data a world is made of: its replicas, callers and messages in
//! flight, the steps ([`Action`]) and faults that move it, which faults a
//! run has used, and the log entries a step leaves for timelines.

use baton_core::{Effect, EffectId, ExchangeOutcome, Input, LinkId, RefreshError, Timestamp};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::symmetry::Printed;
use crate::zoo::AnyMachine;

/// A process: one machine, and which incarnation of it this is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    /// The refresh machine (baton's, or a historical model). Shared between
    /// worlds until one of them feeds it: most steps touch one replica.
    pub machine: Arc<Printed<AnyMachine>>,
    /// Bumped by every crash; leases name it.
    pub incarnation: u32,
    /// Whether any caller of this replica has made a request yet.
    pub touched: bool,
    /// Per link (by index), the instant on this replica's own clock until
    /// which the provider asked it not to present again: its last rate
    /// limit's `Retry-After`. A crash forgets it, as the process does.
    pub quiet: super::Rare<Vec<(u8, Timestamp)>>,
    /// The first exchange this replica sent inside such a period, if any
    /// (`respects_retry_after`). Kept across crashes: it happened. Boxed,
    /// like a caller's bad answer: rare, and inline it would triple the
    /// bytes of every world the explorer holds.
    pub ignored_retry_after: Option<Box<IgnoredRetryAfter>>,
}

/// An exchange sent while the provider's `Retry-After` still ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IgnoredRetryAfter {
    /// The link's index.
    pub link: u8,
    /// When it was sent, on the replica's clock.
    pub sent_at: Timestamp,
    /// Until when the provider had asked it to wait, on the same clock.
    pub quiet_until: Timestamp,
}

/// Something wrong with an answer a caller received, judged when it arrived.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BadAnswer {
    /// The access token handed out was not live at the provider.
    DeadToken {
        /// The token text (fake tokens are not secret).
        token: String,
    },
    /// The access token handed out belongs to another link.
    WrongLink {
        /// The token text.
        token: String,
    },
    /// An error the world does not justify (no fault explains it, or a live
    /// refresh token existed that nobody lost).
    UnjustifiedError(RefreshError),
    /// The caller asked after a re-link superseded, or an unlink removed,
    /// the family whose token it was handed.
    StaleFamily {
        /// The token text.
        token: String,
    },
}

/// One caller: a request handler in one replica, asking for one link.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    /// Its process.
    pub replica: u8,
    /// Index of its link.
    pub link: u8,
    /// Requests it has yet to make.
    pub requests_left: u8,
    /// Waiting for an answer now.
    pub waiting: bool,
    /// It went away once.
    pub cancelled: bool,
    /// Its process crashed while it waited.
    pub died: bool,
    /// The first bad answer it got, if any. Boxed: rare, and inline it
    /// doubles the bytes of a caller, of which the explorer holds millions.
    pub bad: Option<Box<BadAnswer>>,
    /// The oldest token generation its current request may be answered
    /// with: the link's generation when it asked, one more if the link was
    /// unlinked then (see `world::writers`).
    pub min_generation: u32,
}

/// A message between actors.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Message {
    /// An effect on its way to the store, the token endpoint or the API.
    Sent {
        /// Sender.
        replica: u8,
        /// Sender's incarnation.
        incarnation: u32,
        /// The effect.
        effect: Effect,
        /// The sender no longer waits for it (it timed out, or crashed): a
        /// zombie request, whose reply nobody will read.
        orphaned: bool,
    },
    /// The provider's reply to an exchange, on its way back.
    Reply {
        /// Whose tokens.
        link: LinkId,
        /// Recipient.
        replica: u8,
        /// Recipient's incarnation.
        incarnation: u32,
        /// The exchange it answers.
        id: EffectId,
        /// The exchange's deadline at the driver.
        deadline: Timestamp,
        /// What the provider did.
        outcome: ExchangeOutcome,
    },
    /// A store read's reply on its way back: the row as it was when read.
    /// Between the read and its arrival the row may change — the stale read
    /// every real driver lives with.
    ReadReply {
        /// Recipient.
        replica: u8,
        /// Recipient's incarnation.
        incarnation: u32,
        /// The read's result.
        input: Input,
    },
    /// A reply that will never arrive: the sender learns at its deadline.
    Lost {
        /// Whose tokens.
        link: LinkId,
        /// Recipient.
        replica: u8,
        /// Recipient's incarnation.
        incarnation: u32,
        /// The exchange it answers.
        id: EffectId,
        /// When the driver gives up.
        deadline: Timestamp,
    },
}

impl Message {
    /// The replica and incarnation that sent it (or that it returns to).
    pub fn sender(&self) -> (u8, u32) {
        match self {
            Message::Sent {
                replica,
                incarnation,
                ..
            }
            | Message::Reply {
                replica,
                incarnation,
                ..
            }
            | Message::Lost {
                replica,
                incarnation,
                ..
            }
            | Message::ReadReply {
                replica,
                incarnation,
                ..
            } => (*replica, *incarnation),
        }
    }

    /// The link of an exchange its sender is still waiting on (the request,
    /// its reply, or the silence where a lost reply would be).
    pub fn awaited_exchange(&self) -> Option<&LinkId> {
        match self {
            Message::Sent {
                effect: Effect::Exchange { link, .. },
                orphaned: false,
                ..
            }
            | Message::Reply { link, .. }
            | Message::Lost { link, .. } => Some(link),
            Message::Sent { .. } | Message::ReadReply { .. } => None,
        }
    }
}

/// A fault injected with a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The token endpoint rate-limits.
    RateLimited,
    /// The request never reaches the provider (connection refused): nothing
    /// is consumed, and the driver knows it.
    Transient,
    /// The provider rotates; the reply is lost.
    LostReply,
    /// A gateway forwards the request, the provider processes it, and the
    /// gateway answers 502 in place of the provider's reply.
    GatewayAfterForwarding,
    /// A gateway answers 504 at once while the forwarded request is still on
    /// its way to the provider, where it lands later: a zombie.
    GatewayBeforeArrival,
    /// A gateway answers 503 without forwarding the request.
    GatewayWithoutForwarding,
    /// The store write fails; `applied` says whether it landed anyway.
    StoreWriteFailed {
        /// Landed despite the error.
        applied: bool,
    },
    /// The store read fails.
    StoreReadFailed,
    /// The validation call fails without an answer.
    ValidationInconclusive,
}

/// How a caller's request reaches its replica's machine. The Refresher
/// tries the hot path first and feeds the machine when it misses; by the
/// time the request arrives, another input may have left a live token
/// there, so a request with a token held can take either route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// The driver's lock-free hot path: the token the machine says it
    /// holds (`cached_token`) is served without an input.
    HotPath,
    /// `Input::TokenRequested`, answered by the machine.
    #[default]
    Machine,
}

/// One step of the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum Action {
    /// A caller asks for a token.
    Request {
        /// Caller index.
        caller: u16,
        /// Whether the driver serves it from the machine's held token or
        /// feeds it to the machine.
        #[serde(default)]
        route: Route,
    },
    /// A message reaches the store, the token endpoint or the API, which
    /// acts on it (store and API replies are immediate).
    Deliver {
        /// Message index.
        message: u16,
        /// A fault injected with it.
        fault: Option<Fault>,
    },
    /// An exchange reply reaches its machine.
    Receive {
        /// Message index.
        message: u16,
    },
    /// The driver's exchange deadline passes: the machine learns the outcome
    /// is unknown. The request, if still on its way, goes on as a zombie.
    TimeOut {
        /// Message index.
        message: u16,
    },
    /// A machine's timer fires (time moves to it).
    FireTimer {
        /// Replica index.
        replica: u8,
    },
    /// Time jumps to the next lease expiry, token expiry or deadline.
    AdvanceClock,
    /// A replica crashes and restarts with empty memory.
    Crash {
        /// Replica index.
        replica: u8,
    },
    /// A waiting caller goes away.
    Cancel {
        /// Caller index.
        caller: u16,
    },
    /// The OAuth callback re-links: a fresh pair of a new family replaces
    /// the row.
    Relink {
        /// Link index.
        link: u8,
    },
    /// The user unlinks: the row is removed.
    Unlink {
        /// Link index.
        link: u8,
    },
    /// The user revokes the application at the provider.
    Revoke {
        /// Link index.
        link: u8,
    },
}

/// Which kinds of fault a run has used (invariants excuse some outcomes
/// only under some faults).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultsUsed {
    /// A replica crashed.
    pub crash: bool,
    /// A caller went away.
    pub cancel: bool,
    /// A store operation failed.
    pub store_failure: bool,
    /// The provider rate-limited.
    pub rate_limit: bool,
    /// The request never reached the provider.
    pub transient: bool,
    /// A reply was lost after the provider rotated.
    pub lost_reply: bool,
    /// A gateway in front of the provider answered 5xx (in any of its
    /// forms: the replica cannot tell whether the request was forwarded).
    pub gateway: bool,
    /// A driver deadline passed with the request or reply on its way.
    pub timeout: bool,
    /// A validation call failed.
    pub validation_failure: bool,
    /// The clock jumped (a stall).
    pub clock_jump: bool,
    /// The OAuth callback re-linked a link.
    pub relink: bool,
    /// A link was unlinked.
    pub unlink: bool,
    /// The user revoked the application at the provider.
    pub revoke: bool,
}

/// One thing that happened within a step: `from` did `text` to `to` (the
/// same actor for things it did by itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Who acted.
    pub from: String,
    /// Whom it concerned.
    pub to: String,
    /// What happened, in words.
    pub text: String,
}

/// What one step did, for timelines and diagrams.
#[derive(Clone, Debug, Default)]
pub struct StepLog {
    /// The things that happened, in order.
    pub entries: Vec<LogEntry>,
}
