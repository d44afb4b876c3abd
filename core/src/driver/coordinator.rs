//! The [`Coordinator`]: one machine behind a lock, the callers waiting on
//! it, and the hand-off of effects to a [`Runtime`].
//!
//! Everything that touches the machine happens inside [`Lock::with`], and
//! everything that may block or call out (sending an answer, spawning I/O,
//! arming a timer) happens after the lock is released. That split is the
//! whole of the concurrency argument, and it is what loom and shuttle check.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Answer;
use crate::{AccessGrant, CallerId, Effect, Input, LinkId, RefreshMachine, Timestamp};

/// A mutual-exclusion lock: `std::sync::Mutex` in production, the checker's
/// own mutex under loom or shuttle.
pub trait Lock<T>: Send + Sync {
    /// Wraps `value`.
    fn new(value: T) -> Self
    where
        Self: Sized;
    /// Runs `f` with exclusive access to the value.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
}

impl<T: Send> Lock<T> for std::sync::Mutex<T> {
    fn new(value: T) -> Self {
        std::sync::Mutex::new(value)
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // A panic inside the lock can only come from a bug in the machine;
        // refusing every later caller for it would turn one bad refresh into
        // an outage, and each input leaves the machine consistent.
        let mut guard = self
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

/// The sending half of a one-shot channel that carries one caller's answer.
pub trait Reply: Send + 'static {
    /// Delivers the answer. A caller that stopped listening is not an error.
    fn send(self, answer: Answer);
}

/// What a concrete program plugs into the [`Coordinator`]: its lock, its
/// one-shot channel, its clock, and how it runs work off the callers' path.
pub trait Runtime: Sized + Send + Sync + 'static {
    /// The lock the machine lives behind.
    type Lock<T: Send + 'static>: Lock<T>;
    /// How an answer reaches a waiting caller.
    type Reply: Reply;

    /// The current time. Read while the machine's lock is held, so inputs
    /// reach the machine in time order.
    fn now(&self) -> Timestamp;

    /// Carries out `work` (a store call, an exchange, a validation) on its
    /// own — a spawned task, a worker thread — and calls
    /// [`Work::finish`] with the result. Must not run it on the calling
    /// stack: the caller that triggered it may be cancelled at any moment
    /// and the refresh must go on without it.
    fn spawn_work<M: RefreshMachine + Send + 'static>(&self, work: Work<Self, M>);

    /// Calls [`Coordinator::timer_fired`] with `at` once the clock has
    /// reached `at`. Firing late is fine; firing twice or for a timer that
    /// was superseded is harmless.
    fn wake_at<M: RefreshMachine + Send + 'static>(
        &self,
        at: Timestamp,
        coordinator: Arc<Coordinator<Self, M>>,
    );
}

/// One effect for the runtime to carry out, and where its result goes.
pub struct Work<R: Runtime, M: RefreshMachine + Send + 'static> {
    effect: Effect,
    coordinator: Arc<Coordinator<R, M>>,
}

impl<R: Runtime, M: RefreshMachine + Send + 'static> Work<R, M> {
    /// The effect to carry out: never [`Effect::Answer`], which the
    /// coordinator delivers itself.
    pub fn effect(&self) -> &Effect {
        &self.effect
    }

    /// The coordinator the result goes to (to read its runtime or clock).
    pub fn coordinator(&self) -> &Arc<Coordinator<R, M>> {
        &self.coordinator
    }

    /// Feeds the effect's result back to the machine.
    pub fn finish(self, result: Input) {
        #[cfg(feature = "metrics")]
        if let (Effect::Exchange { link, .. }, Input::ExchangeFinished { outcome, .. }) =
            (&self.effect, &result)
        {
            super::metrics::exchanged(link, outcome);
        }
        self.coordinator.feed_result(result, true);
    }
}

impl<R: Runtime, M: RefreshMachine + Send + 'static> fmt::Debug for Work<R, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Work")
            .field("effect", &self.effect)
            .finish()
    }
}

/// One machine shared by many callers. See the [module docs](super).
pub struct Coordinator<R: Runtime, M: Send + 'static> {
    runtime: R,
    state: R::Lock<State<M, R::Reply>>,
    /// Bumped after every input the machine handles: a copy of a cached
    /// token taken at epoch `e` is still what the machine would answer as
    /// long as the epoch is still `e` (and the token's time has not run
    /// out). Lets a driver serve the hot path without the lock.
    epoch: AtomicU64,
}

struct State<M, P> {
    machine: M,
    waiting: HashMap<CallerId, P>,
    next_caller: u64,
    /// Effects handed to the runtime whose results have not come back.
    in_flight: usize,
    /// The earliest wake-up the runtime was asked for and has not yet
    /// delivered; a later timeout needs no new wake-up.
    armed: Option<Timestamp>,
    #[cfg(feature = "metrics")]
    meter: super::metrics::Meter,
}

/// What one turn of the machine produced, acted on after the lock is
/// released.
struct Outbox<P> {
    replies: Vec<(P, Answer)>,
    work: Vec<Effect>,
    wake_at: Option<Timestamp>,
}

impl<P> Outbox<P> {
    fn new() -> Self {
        Outbox {
            replies: Vec::new(),
            work: Vec::new(),
            wake_at: None,
        }
    }
}

impl<M: RefreshMachine, P> State<M, P> {
    fn feed(&mut self, now: Timestamp, input: Input, out: &mut Outbox<P>) {
        #[cfg(feature = "metrics")]
        {
            if matches!(input, Input::TimerExpired) {
                self.meter.waited();
            }
            self.meter.input(&input);
        }
        if let Err(error) = self.machine.handle_input(now, input) {
            // Every input comes from this module or from a runtime carrying
            // out an effect the machine emitted: a refusal is a bug here.
            panic!("baton coordinator fed the machine an input it refused: {error}");
        }
        self.drain(out);
    }

    /// Hands what the machine decided to the outbox, and arms its timer.
    fn drain(&mut self, out: &mut Outbox<P>) {
        // Callers answered in this step, per link (almost always one link).
        #[cfg(feature = "metrics")]
        let mut answered: Vec<(LinkId, usize)> = Vec::new();
        while let Some(effect) = self.machine.poll_output() {
            #[cfg(feature = "metrics")]
            match &effect {
                Effect::Answer { link, .. } => match answered.iter_mut().find(|(l, _)| l == link) {
                    Some((_, n)) => *n += 1,
                    None => answered.push((link.clone(), 1)),
                },
                io => self.meter.effect(io),
            }
            match effect {
                Effect::Answer { caller, result, .. } => {
                    // Absent when the caller went away after the machine
                    // decided to answer it.
                    if let Some(reply) = self.waiting.remove(&caller) {
                        out.replies.push((reply, result));
                    }
                }
                io => {
                    self.in_flight += 1;
                    out.work.push(io);
                }
            }
        }
        #[cfg(feature = "metrics")]
        for (link, count) in &answered {
            super::metrics::Meter::answers(link, *count);
        }
        self.arm(out);
    }

    fn arm(&mut self, out: &mut Outbox<P>) {
        if let Some(at) = self.machine.poll_timeout() {
            if self.armed.is_none_or(|armed| at < armed) {
                self.armed = Some(at);
                out.wake_at = Some(at);
            }
        }
    }
}

impl<R: Runtime, M: RefreshMachine + Send + 'static> Coordinator<R, M> {
    /// A coordinator running `machine` on `runtime`.
    pub fn new(runtime: R, machine: M) -> Arc<Self> {
        Arc::new(Coordinator {
            runtime,
            state: R::Lock::new(State {
                machine,
                waiting: HashMap::new(),
                next_caller: 0,
                in_flight: 0,
                armed: None,
                #[cfg(feature = "metrics")]
                meter: Default::default(),
            }),
            epoch: AtomicU64::new(0),
        })
    }

    /// The number of inputs the machine has handled. Read it *before*
    /// [`cached_token`](Self::cached_token): a token copied then is the
    /// machine's answer for as long as the epoch has not moved.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::Release);
    }

    /// The runtime this coordinator hands its work to.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    /// Runs `f` on the machine, under its lock: for inspection.
    pub fn with_machine<T>(&self, f: impl FnOnce(&M) -> T) -> T {
        self.state.with(|s| f(&s.machine))
    }

    /// Whether nothing is under way: no effect handed to the runtime is
    /// outstanding, no caller waits, and the machine has no timer armed (a
    /// flight waiting out another process's lease). The refresh that callers
    /// started has then been persisted or given up, whether or not anyone
    /// still waits for it.
    pub fn is_settled(&self) -> bool {
        self.state.with(|s| {
            s.in_flight == 0 && s.waiting.is_empty() && s.machine.poll_timeout().is_none()
        })
    }

    /// The access token a request for `link` would be answered with at
    /// once, without registering a caller, and until when (exclusive): the
    /// hot path, for a caller about to be served it. The machine hears of
    /// it ([`RefreshMachine::served_cached`]): a link served only this way
    /// is still recently used for the bound on held links. The epoch does
    /// not move, since no answer changes.
    ///
    /// Lock-free hits on a driver's copies are not reported one by one:
    /// the copies die at the next input, and the next call after it comes
    /// here. A link thus counts as used as of its first call since the
    /// last input (eviction happens at inputs), never as of a call before
    /// that input.
    pub fn cached_token(&self, link: &LinkId) -> Option<(AccessGrant, Timestamp)> {
        self.state.with(|s| {
            let cached = s.machine.cached_token(link, self.runtime.now())?;
            s.machine.served_cached(link);
            Some(cached)
        })
    }

    /// Asks for a live access token for `link`. The answer is sent on
    /// `reply` — possibly before this returns. Dropping the returned
    /// [`Ticket`] before the answer arrives withdraws the request; the
    /// refresh it started, if any, goes on.
    pub fn request(self: &Arc<Self>, link: LinkId, reply: R::Reply) -> Ticket<R, M> {
        let mut out = Outbox::new();
        let caller = self.state.with(|s| {
            let caller = CallerId(s.next_caller);
            s.next_caller += 1;
            s.waiting.insert(caller, reply);
            let now = self.runtime.now();
            s.feed(now, Input::TokenRequested { caller, link }, &mut out);
            self.bump();
            caller
        });
        self.deliver(out);
        Ticket {
            coordinator: Arc::clone(self),
            caller,
            answered: false,
        }
    }

    /// Tells the machine that `link`'s row was replaced by an enrolment
    /// (see [`RefreshMachine::link_replaced`]). Call it after the store
    /// write: from then on no request is answered with a token this
    /// process held from before.
    pub fn link_replaced(self: &Arc<Self>, link: &LinkId) {
        let mut out = Outbox::new();
        self.state.with(|s| {
            let now = self.runtime.now();
            s.machine.link_replaced(now, link);
            s.drain(&mut out);
            // Invalidates every hot-path copy of the forgotten token.
            self.bump();
        });
        self.deliver(out);
    }

    /// Feeds the result of an effect the runtime carried out.
    pub fn finish(self: &Arc<Self>, result: Input) {
        self.feed_result(result, false);
    }

    fn feed_result(self: &Arc<Self>, result: Input, ends_work: bool) {
        let mut out = Outbox::new();
        self.state.with(|s| {
            if ends_work {
                s.in_flight = s.in_flight.saturating_sub(1);
            }
            let now = self.runtime.now();
            s.feed(now, result, &mut out);
            self.bump();
        });
        self.deliver(out);
    }

    /// The wake-up the runtime was asked for at `at` has come.
    pub fn timer_fired(self: &Arc<Self>, at: Timestamp) {
        let mut out = Outbox::new();
        self.state.with(|s| {
            if s.armed == Some(at) {
                s.armed = None;
            }
            let now = self.runtime.now();
            if s.machine.poll_timeout().is_some_and(|due| due <= now) {
                s.feed(now, Input::TimerExpired, &mut out);
                self.bump();
            } else {
                // Early (clocks disagree) or superseded: make sure the
                // machine's real timeout still has a wake-up coming.
                s.arm(&mut out);
            }
        });
        self.deliver(out);
    }

    fn withdraw(self: &Arc<Self>, caller: CallerId) {
        let mut out = Outbox::new();
        self.state.with(|s| {
            if s.waiting.remove(&caller).is_some() {
                let now = self.runtime.now();
                s.feed(now, Input::CallerGone { caller }, &mut out);
                self.bump();
            }
        });
        self.deliver(out);
    }

    fn deliver(self: &Arc<Self>, out: Outbox<R::Reply>) {
        for (reply, answer) in out.replies {
            reply.send(answer);
        }
        for effect in out.work {
            self.runtime.spawn_work(Work {
                effect,
                coordinator: Arc::clone(self),
            });
        }
        if let Some(at) = out.wake_at {
            self.runtime.wake_at(at, Arc::clone(self));
        }
    }
}

/// A caller's place in line. Dropping it before the answer arrives tells the
/// machine the caller went away; after, it does nothing.
pub struct Ticket<R: Runtime, M: RefreshMachine + Send + 'static> {
    coordinator: Arc<Coordinator<R, M>>,
    caller: CallerId,
    answered: bool,
}

impl<R: Runtime, M: RefreshMachine + Send + 'static> Ticket<R, M> {
    /// The id the machine knows this caller by.
    pub fn caller(&self) -> CallerId {
        self.caller
    }

    /// Retires the ticket of a caller whose answer arrived. Dropping it
    /// would be just as correct (the caller is no longer waiting), but
    /// takes the machine's lock to find that out: after a herd's answer
    /// fan-out, that is one contended lock per caller for nothing.
    pub fn answered(mut self) {
        self.answered = true;
    }
}

impl<R: Runtime, M: RefreshMachine + Send + 'static> Drop for Ticket<R, M> {
    fn drop(&mut self) {
        if !self.answered {
            self.coordinator.withdraw(self.caller);
        }
    }
}

impl<R: Runtime, M: RefreshMachine + Send + 'static> fmt::Debug for Ticket<R, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("caller", &self.caller)
            .finish()
    }
}
