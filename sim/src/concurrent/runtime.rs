//! The checkers' [`Runtime`](baton_core::driver::Runtime), written once as
//! a macro over a crate with std-shaped `sync::{Mutex, Condvar}` and
//! `thread` modules (loom, shuttle), and one execution of a scenario on it.
//!
//! Only the coordinator's lock, the answer slot and the work queue use the
//! checker's primitives: they are the synchronisation under test. The
//! store, the provider, the clock and the log are plain `std` values
//! touched without any checker operation in between, so they are atomic
//! steps of the outside world and add no interleavings of their own.

/// Defines `execute(plan, invariants)` and the runtime it needs, on the
/// primitives of the crate `$rt`.
macro_rules! checker_runtime {
    ($rt:ident) => {
        /// The checker runtime on this checker's primitives.
        pub mod on_checker {
        use std::collections::VecDeque;
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;

        use baton_core::driver::{Answer, Coordinator, Lock, Reply, Runtime, Work};
        use baton_core::{Effect, Input, LinkId, RefreshMachine, Timestamp};
        use baton_fakes::{FakeProvider, InMemoryStore};
        use $rt::sync::{Condvar, Mutex};

        use crate::concurrent::{CallerRecord, EndState, ThreadPlan, ThreadViolation};
        use crate::invariants::{judge_answer, Invariant};
        use crate::world::{describe_effect, describe_input, describe_outcome, FaultsUsed};
        use crate::zoo::AnyMachine;

        /// Timer firings after which an execution is declared livelocked.
        const MAX_TIMER_FIRINGS: u32 = 64;

        fn std_lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
            mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        /// The checker's mutex as the coordinator's lock.
        pub struct CheckerLock<T>(Mutex<T>);

        impl<T: Send> Lock<T> for CheckerLock<T> {
            fn new(value: T) -> Self {
                CheckerLock(Mutex::new(value))
            }
            fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
                f(&mut self.0.lock().unwrap())
            }
        }

        /// The sending half of a caller's answer slot (a place in the
        /// shared queue state); judges the answer as it leaves.
        pub struct SlotReply {
            shared: Arc<Shared>,
            caller: usize,
        }

        impl Reply for SlotReply {
            fn send(self, answer: Answer) {
                if self.shared.lose_answers_to == Some(self.caller) {
                    self.shared.note(format!("the answer to caller {} is lost", self.caller));
                    return;
                }
                self.shared.judge(self.caller, &answer);
                {
                    let mut queue = self.shared.queue.lock().unwrap();
                    queue.answers[self.caller] = Some(answer);
                    queue.epoch += 1;
                }
                self.shared.changed.notify_all();
            }
        }

        type Job = Box<dyn FnOnce() + Send>;

        #[derive(Default)]
        struct Queue {
            /// Each caller's answer slot.
            answers: Vec<Option<Answer>>,
            work: VecDeque<Job>,
            timers: Vec<(Timestamp, Job)>,
            /// Jobs being run by a worker now.
            busy: usize,
            shutdown: bool,
            timer_firings: u32,
            /// Bumped by every change of the queue a waiting thread could
            /// be waiting for.
            epoch: u64,
            /// Per thread (callers, then workers): the epoch in which it
            /// last went to wait with nothing to do.
            idle: Vec<Option<u64>>,
            /// Per thread: it has finished.
            gone: Vec<bool>,
            /// Caller threads (the first indices of `idle` and `gone`).
            callers: usize,
            /// Set when every live thread waits with nothing to do and
            /// nothing left to change that: the callers still waiting then.
            hung: Option<Vec<usize>>,
        }

        impl Queue {
            /// Thread `me` is about to wait; returns whether the execution
            /// hangs. Every change of the queue bumps the epoch and wakes
            /// every waiter, who registers again if it still has nothing to
            /// do; so when every live thread is registered in the current
            /// epoch, none can ever be woken. The checker would find that
            /// deadlock itself, but loom ends one by unwinding every thread
            /// while a destructor of its own objects panics again, which
            /// aborts the process; detected here, the hang ends each thread
            /// normally and the execution in a verdict.
            fn about_to_wait(&mut self, me: usize) -> bool {
                if self.hung.is_some() {
                    return true;
                }
                self.idle[me] = Some(self.epoch);
                self.check_hang()
            }

            /// Whether every live thread waits in the current epoch while
            /// some caller still waits for an answer; if so, records it.
            fn check_hang(&mut self) -> bool {
                let epoch = self.epoch;
                let all_idle = (0..self.idle.len())
                    .all(|t| self.gone[t] || self.idle[t] == Some(epoch));
                // With every caller gone the main thread still acts: it
                // shuts the workers down.
                let waiting: Vec<usize> = (0..self.callers).filter(|&c| !self.gone[c]).collect();
                if !all_idle || waiting.is_empty() {
                    return false;
                }
                self.hung = Some(waiting);
                true
            }

            /// Thread `me` has finished.
            fn leave(&mut self, me: usize) {
                self.gone[me] = true;
                self.epoch += 1;
            }

            /// Caller `me` took its last answer and finishes. No epoch
            /// bump: no one waits for a caller's own slot, so those asleep
            /// stay registered, and if they are all that is left the hang
            /// is declared here. That spares a lock (a scheduling point,
            /// a third more loom executions) on every caller's way out.
            fn leave_answered(&mut self, me: usize) -> bool {
                self.gone[me] = true;
                self.check_hang()
            }
        }

        /// The outside world of one execution.
        pub struct Shared {
            queue: Mutex<Queue>,
            changed: Condvar,
            store: std::sync::Mutex<InMemoryStore>,
            provider: std::sync::Mutex<FakeProvider>,
            links: Vec<LinkId>,
            clock: AtomicU64,
            callers: std::sync::Mutex<Vec<CallerRecord>>,
            in_flight: std::sync::Mutex<Vec<(u8, LinkId)>>,
            double_flight: std::sync::Mutex<Option<String>>,
            livelock: std::sync::Mutex<Option<String>>,
            log: std::sync::Mutex<Vec<String>>,
            spec: crate::spec::WorldSpec,
            invariants: Vec<Invariant>,
            lose_answers_to: Option<usize>,
            /// The first invariant broken along the way, and why.
            broken: std::sync::Mutex<Option<(Invariant, String)>>,
        }

        impl Shared {
            fn now(&self) -> Timestamp {
                Timestamp::from_millis(self.clock.load(Ordering::SeqCst))
            }

            fn note(&self, line: String) {
                std_lock(&self.log).push(line);
            }

            fn push(&self, job: Job) {
                {
                    let mut queue = self.queue.lock().unwrap();
                    queue.work.push_back(job);
                    queue.epoch += 1;
                }
                self.changed.notify_all();
            }

            fn push_timer(&self, at: Timestamp, job: Job) {
                {
                    let mut queue = self.queue.lock().unwrap();
                    queue.timers.push((at, job));
                    queue.epoch += 1;
                }
                self.changed.notify_all();
            }

            /// Marks thread `me` finished, and wakes the others: with one
            /// thread fewer, those left may all be waiting in vain.
            fn leave(&self, me: usize) {
                self.queue.lock().unwrap().leave(me);
                self.changed.notify_all();
            }

            /// One job finished.
            fn job_done(&self) {
                {
                    let mut queue = self.queue.lock().unwrap();
                    queue.busy -= 1;
                    queue.epoch += 1;
                }
                self.changed.notify_all();
            }

            fn judge(&self, caller: usize, answer: &Answer) {
                let link = {
                    let callers = std_lock(&self.callers);
                    usize::from(callers[caller].link)
                };
                let view = self.snapshot();
                let bad = judge_answer(&view, &self.links[link], answer);
                self.note(format!(
                    "caller {caller} gets {}",
                    match answer {
                        Ok(grant) => format!("access token {}", grant.token.expose_secret()),
                        Err(error) => format!("an error: {error}"),
                    }
                ));
                {
                    let mut callers = std_lock(&self.callers);
                    let record = &mut callers[caller];
                    record.answers += 1;
                    if record.bad.is_none() {
                        record.bad = bad;
                    }
                }
                self.check_during();
            }

            /// The world as the invariants see it now.
            fn snapshot(&self) -> EndState {
                EndState {
                    links: self.links.clone(),
                    store: std_lock(&self.store).clone(),
                    provider: std_lock(&self.provider).clone(),
                    now: self.now(),
                    callers: std_lock(&self.callers).clone(),
                    faults: FaultsUsed::default(),
                    double_flight: std_lock(&self.double_flight).clone(),
                    log: std_lock(&self.log).clone(),
                }
            }

            /// Carries out one I/O effect of `replica` atomically.
            fn carry_out(&self, replica: u8, effect: &Effect) -> Input {
                let input = match effect {
                    Effect::Exchange {
                        id, refresh_token, ..
                    } => {
                        let outcome =
                            std_lock(&self.provider).exchange(self.now(), refresh_token, None);
                        self.note(format!(
                            "r{replica}: {} → {}",
                            describe_effect(effect),
                            describe_outcome(&outcome)
                        ));
                        self.check_during();
                        return Input::ExchangeFinished { id: *id, outcome };
                    }
                    Effect::Validate {
                        id, access_token, ..
                    } => {
                        let live = std_lock(&self.provider).is_access_live(access_token, self.now());
                        Input::ValidationFinished {
                            id: *id,
                            outcome: if live {
                                baton_core::ValidationOutcome::Valid
                            } else {
                                baton_core::ValidationOutcome::Invalid {
                                    reason: "401".into(),
                                }
                            },
                        }
                    }
                    store_effect => std_lock(&self.store)
                        .carry_out(store_effect)
                        .expect("only store effects are left"),
                };
                self.note(format!(
                    "r{replica}: {} → {}",
                    describe_effect(effect),
                    describe_input(&input)
                ));
                self.check_during();
                input
            }

            /// Judges the world after one step of the outside world, as the
            /// explorer judges every state: a failure cached for a moment
            /// is seen by every caller who reads it in that moment.
            fn check_during(&self) {
                if std_lock(&self.broken).is_some() {
                    return;
                }
                let view = self.snapshot();
                for &invariant in &self.invariants {
                    if let Err(reason) = invariant.check(&view, &self.spec, crate::invariants::Moment::During) {
                        *std_lock(&self.broken) = Some((invariant, reason));
                        return;
                    }
                }
            }

            fn exchange_started(&self, replica: u8, link: &LinkId) {
                let mut in_flight = std_lock(&self.in_flight);
                if in_flight.iter().any(|(r, l)| *r == replica && l == link) {
                    let mut double = std_lock(&self.double_flight);
                    if double.is_none() {
                        *double = Some(format!(
                            "replica r{replica} has two exchanges of {link} in flight at once"
                        ));
                    }
                }
                in_flight.push((replica, link.clone()));
            }

            fn exchange_finished(&self, replica: u8, link: &LinkId) {
                let mut in_flight = std_lock(&self.in_flight);
                if let Some(i) = in_flight.iter().position(|(r, l)| *r == replica && l == link) {
                    in_flight.remove(i);
                }
            }

            /// Waits for `caller`'s answer, carrying out queued work
            /// meanwhile, as an executor thread that polled the caller's
            /// task would; `None` if the execution hangs. With `last`, the
            /// caller finishes as it takes the answer.
            fn wait_helping(&self, caller: usize, last: bool) -> Option<Answer> {
                loop {
                    let job = {
                        let mut queue = self.queue.lock().unwrap();
                        loop {
                            if let Some(answer) = queue.answers[caller].take() {
                                if last && queue.leave_answered(caller) {
                                    drop(queue);
                                    self.changed.notify_all();
                                }
                                return Some(answer);
                            }
                            if let Some(job) = queue.work.pop_front() {
                                queue.busy += 1;
                                queue.epoch += 1;
                                break job;
                            }
                            if queue.about_to_wait(caller) {
                                drop(queue);
                                self.changed.notify_all();
                                return None;
                            }
                            queue = self.changed.wait(queue).unwrap();
                        }
                    };
                    job();
                    self.job_done();
                }
            }

            /// Runs jobs until shut down with nothing left to do, or until
            /// the execution hangs; `me` is the worker's thread index.
            fn work(&self, me: usize) {
                loop {
                    let job = {
                        let mut queue = self.queue.lock().unwrap();
                        loop {
                            if let Some(job) = queue.work.pop_front() {
                                queue.busy += 1;
                                queue.epoch += 1;
                                break Some(job);
                            }
                            if queue.busy == 0 && !queue.timers.is_empty() {
                                // Nothing is in flight anywhere: time may
                                // pass, up to the earliest timer.
                                queue.timer_firings += 1;
                                if queue.timer_firings > MAX_TIMER_FIRINGS {
                                    *std_lock(&self.livelock) = Some(format!(
                                        "timers fired {MAX_TIMER_FIRINGS} times without the world settling"
                                    ));
                                    queue.timers.clear();
                                    queue.epoch += 1;
                                    continue;
                                }
                                let earliest = (0..queue.timers.len())
                                    .min_by_key(|&i| queue.timers[i].0)
                                    .expect("not empty");
                                let (at, job) = queue.timers.swap_remove(earliest);
                                self.clock.fetch_max(at.as_millis(), Ordering::SeqCst);
                                queue.busy += 1;
                                queue.epoch += 1;
                                break Some(job);
                            }
                            if queue.shutdown && queue.busy == 0 {
                                queue.leave(me);
                                break None;
                            }
                            if queue.about_to_wait(me) {
                                queue.leave(me);
                                break None;
                            }
                            queue = self.changed.wait(queue).unwrap();
                        }
                    };
                    let Some(job) = job else {
                        self.changed.notify_all();
                        return;
                    };
                    job();
                    self.job_done();
                }
            }
        }

        /// The runtime of one replica.
        pub struct CheckerRuntime {
            shared: Arc<Shared>,
            replica: u8,
            skew_ms: i64,
        }

        impl Runtime for CheckerRuntime {
            type Lock<T: Send + 'static> = CheckerLock<T>;
            type Reply = SlotReply;

            fn now(&self) -> Timestamp {
                let now = self.shared.now().as_millis();
                Timestamp::from_millis(now.saturating_add_signed(self.skew_ms))
            }

            fn spawn_work<M: RefreshMachine + Send + 'static>(&self, work: Work<Self, M>) {
                let shared = Arc::clone(&self.shared);
                let replica = self.replica;
                let exchange_of = match work.effect() {
                    Effect::Exchange { link, .. } => Some(link.clone()),
                    _ => None,
                };
                if let Some(link) = &exchange_of {
                    shared.exchange_started(replica, link);
                }
                self.shared.push(Box::new(move || {
                    let input = shared.carry_out(replica, work.effect());
                    if let Some(link) = &exchange_of {
                        shared.exchange_finished(replica, link);
                    }
                    work.finish(input);
                }));
            }

            fn wake_at<M: RefreshMachine + Send + 'static>(
                &self,
                at: Timestamp,
                coordinator: Arc<Coordinator<Self, M>>,
            ) {
                // The replica's clock runs `skew` ahead of the world's.
                let world_at = Timestamp::from_millis(
                    at.as_millis().saturating_add_signed(-self.skew_ms),
                );
                self.shared
                    .push_timer(world_at, Box::new(move || coordinator.timer_fired(at)));
            }
        }

        /// Runs one execution of `plan` on the checker's threads and judges
        /// its end with `invariants`.
        pub fn execute(plan: &ThreadPlan, invariants: &[Invariant]) -> Result<(), ThreadViolation> {
            let spec = &plan.spec;
            let (store, provider, links, now) =
                crate::concurrent::initial(spec).expect("the scenario builds");
            let shared = Arc::new(Shared {
                queue: Mutex::new(Queue {
                    answers: (0..plan.callers.len()).map(|_| None).collect(),
                    idle: vec![None; plan.callers.len() + plan.workers],
                    gone: vec![false; plan.callers.len() + plan.workers],
                    callers: plan.callers.len(),
                    ..Queue::default()
                }),
                changed: Condvar::new(),
                store: std::sync::Mutex::new(store),
                provider: std::sync::Mutex::new(provider),
                links,
                clock: AtomicU64::new(now.as_millis()),
                callers: std::sync::Mutex::new(
                    plan.callers
                        .iter()
                        .map(|&(_, link)| CallerRecord {
                            link,
                            ..CallerRecord::default()
                        })
                        .collect(),
                ),
                in_flight: std::sync::Mutex::default(),
                double_flight: std::sync::Mutex::default(),
                livelock: std::sync::Mutex::default(),
                log: std::sync::Mutex::default(),
                spec: spec.clone(),
                invariants: invariants.to_vec(),
                lose_answers_to: plan.lose_answers_to,
                broken: std::sync::Mutex::default(),
            });
            let coordinators: Vec<Arc<Coordinator<CheckerRuntime, AnyMachine>>> = (0..spec
                .replicas)
                .map(|r| {
                    let config = spec.config(usize::from(r), 0).expect("the scenario builds");
                    Coordinator::new(
                        CheckerRuntime {
                            shared: Arc::clone(&shared),
                            replica: r,
                            skew_ms: spec.skew(usize::from(r)),
                        },
                        spec.algorithm.machine(config),
                    )
                })
                .collect();
            let workers: Vec<_> = (0..plan.workers)
                .map(|w| {
                    let shared = Arc::clone(&shared);
                    let me = plan.callers.len() + w;
                    $rt::thread::spawn(move || shared.work(me))
                })
                .collect();
            let callers: Vec<_> = plan
                .callers
                .iter()
                .enumerate()
                .map(|(index, &(replica, link))| {
                    let shared = Arc::clone(&shared);
                    let coordinator = Arc::clone(&coordinators[usize::from(replica)]);
                    let requests = spec.requests;
                    let cancel_first = plan.cancel_first && index == 0;
                    $rt::thread::spawn(move || {
                        let link = shared.links[usize::from(link)].clone();
                        let mut left = false;
                        for request in 0..requests {
                            shared.note(format!("caller {index} (r{replica}) asks for {link}"));
                            let ticket = coordinator.request(
                                link.clone(),
                                SlotReply {
                                    shared: Arc::clone(&shared),
                                    caller: index,
                                },
                            );
                            if cancel_first && request == 0 {
                                shared.note(format!("caller {index} goes away"));
                                drop(ticket);
                                continue;
                            }
                            let last = request + 1 == requests;
                            let answered = shared.wait_helping(index, last).is_some();
                            drop(ticket);
                            if !answered {
                                // The execution hangs: stop asking.
                                break;
                            }
                            left = last;
                        }
                        if !left {
                            shared.leave(index);
                        }
                    })
                })
                .collect();
            for caller in callers {
                caller.join().expect("caller thread");
            }
            {
                shared.queue.lock().unwrap().shutdown = true;
                shared.changed.notify_all();
            }
            for worker in workers {
                worker.join().expect("worker thread");
            }
            drop(coordinators);
            let mut end = shared.snapshot();
            if let Some(waiting) = shared.queue.lock().unwrap().hung.clone() {
                let callers: Vec<String> = waiting.iter().map(|c| format!("caller {c}")).collect();
                return Err(ThreadViolation {
                    invariant: Invariant::CallersServed,
                    reason: format!(
                        "a hang: {} waited for an answer that could never come (every thread waiting, no work or timer left)",
                        callers.join(", ")
                    ),
                    log: end.log,
                });
            }
            if let Some(reason) = std_lock(&shared.livelock).clone() {
                return Err(ThreadViolation {
                    invariant: Invariant::CallersServed,
                    reason,
                    log: end.log,
                });
            }
            if let Some((invariant, reason)) = std_lock(&shared.broken).clone() {
                return Err(ThreadViolation {
                    invariant,
                    reason,
                    log: end.log,
                });
            }
            end.faults.cancel = plan.cancel_first;
            end.judge(spec, invariants)
        }
        }
    };
}
