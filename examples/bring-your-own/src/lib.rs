//! A third-party refresh routine, expressed as a sans-IO machine so
//! baton's explorer can check it: Go's `oauth2.ReuseTokenSource`, with the
//! token persisted through a token-saving callback that writes the row
//! back with no compare-and-swap — the pattern most Go services use:
//!
//! ```go
//! tok, _ := db.LoadToken(ctx, user)                  // once, at first use
//! src := oauth2.ReuseTokenSource(tok, &savingSource{ // one per process
//!     src:  conf.TokenSource(ctx, tok),
//!     save: func(t *oauth2.Token) error { return db.SaveToken(ctx, user, t) },
//! })
//! t, err := src.Token()                              // from any goroutine
//! ```
//!
//! What the Go code does, and this machine does step for step:
//!
//! - **Load once.** The first caller of a process reads the row; from then
//!   on the process works from memory and never reads again.
//! - **One mutex per process.** `ReuseTokenSource.Token` holds a mutex:
//!   callers queue, and each, once it holds it, serves the cached token if
//!   it is still valid (Go's `expiryDelta`: 10 s before expiry) or refreshes.
//! - **Refresh with the token in memory.** `tokenRefresher.Token` presents
//!   the refresh token it holds, keeps it if the reply carries none, and
//!   keeps it after an error too: the next caller presents the same token.
//! - **Save unconditionally.** After a refresh, the callback writes the new
//!   pair over whatever the row holds (an `UPDATE … SET`, no guard), then
//!   returns the token; a failed save is logged and the token still served.
//!
//! The machine has no timers, no lease and no notion of an unknown
//! outcome: none of those exist in the Go code.

use std::collections::{BTreeMap, VecDeque};

use baton_sim::registry::Registration;

use baton_core::{
    AccessGrant, CallerId, Change, Effect, EffectId, ExchangeOutcome, Expect, Guard, Input,
    InputError, LinkId, ReauthReason, RefreshError, RefreshMachine, RefreshToken, StoredLink,
    TemporaryReason, Timestamp, Update, Write, WriteIntent,
};

/// How baton's checkers make this machine: one fresh `ReuseTokenSource`
/// per replica (a Go process start), under the name scenario files use.
pub fn registration() -> Registration {
    Registration::new("go_reuse_token_source", |_config| ReuseTokenSource::new()).describe(
        "Go's oauth2.ReuseTokenSource, loaded once per process, saved by a callback with no guard",
    )
}

/// Go's `oauth2.expiryDelta`: a token is refreshed this long before it
/// expires.
pub const EXPIRY_DELTA: std::time::Duration = std::time::Duration::from_secs(10);

/// One process's `ReuseTokenSource`s, one per link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReuseTokenSource {
    links: BTreeMap<LinkId, Source>,
    /// What each outstanding effect was for.
    awaiting: BTreeMap<EffectId, LinkId>,
    outbox: VecDeque<Effect>,
}

/// The per-link state: the mutex's queue and what the source holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
struct Source {
    /// `None` until the row was loaded.
    token: Option<Loaded>,
    /// Whoever holds the mutex, and what it is doing.
    busy: Option<Busy>,
    /// Callers waiting for the mutex, in arrival order.
    queue: VecDeque<CallerId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Loaded {
    access: Option<AccessGrant>,
    refresh: Option<RefreshToken>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Busy {
    /// The first use: loading the row (every queued caller waits on it).
    Loading { id: EffectId },
    /// `caller` holds the mutex and is refreshing.
    Refreshing {
        id: EffectId,
        caller: Option<CallerId>,
    },
    /// `caller` holds the mutex and the save callback is writing `grant`.
    Saving {
        id: EffectId,
        caller: Option<CallerId>,
        grant: AccessGrant,
    },
}

impl ReuseTokenSource {
    /// A process that has not touched any link yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn emit(&mut self, link: &LinkId, make: impl FnOnce(EffectId) -> Effect) -> EffectId {
        let id = (0..)
            .map(EffectId)
            .find(|id| !self.awaiting.contains_key(id))
            .expect("fewer than u64::MAX effects outstanding");
        self.awaiting.insert(id, link.clone());
        self.outbox.push_back(make(id));
        id
    }

    fn answer(
        &mut self,
        caller: CallerId,
        link: &LinkId,
        result: Result<AccessGrant, RefreshError>,
    ) {
        self.outbox.push_back(Effect::Answer {
            caller,
            link: link.clone(),
            result,
        });
    }

    /// Hands the mutex to the next queued caller while it is free: Go's
    /// `Token()` body, run by each caller in turn.
    fn run_queue(&mut self, now: Timestamp, link: &LinkId) {
        loop {
            let source = self.links.entry(link.clone()).or_default();
            if source.busy.is_some() {
                return;
            }
            let Some(caller) = source.queue.pop_front() else {
                return;
            };
            let Some(token) = source.token.clone() else {
                let id = self.emit(link, |id| Effect::ReadLink {
                    id,
                    link: link.clone(),
                });
                let source = self.links.get_mut(link).expect("present");
                source.queue.push_front(caller);
                source.busy = Some(Busy::Loading { id });
                return;
            };
            // `Token.Valid()`: set, and not within expiryDelta of expiry.
            if let Some(access) = token.access.filter(|a| now + EXPIRY_DELTA < a.expires_at) {
                self.answer(caller, link, Ok(access));
                continue;
            }
            let Some(refresh) = token.refresh else {
                let reason = ReauthReason::NoRefreshToken;
                self.answer(
                    caller,
                    link,
                    Err(RefreshError::ReauthenticationRequired(reason)),
                );
                continue;
            };
            let id = self.emit(link, |id| Effect::Exchange {
                id,
                link: link.clone(),
                refresh_token: refresh,
                // The driver's deadline: Go's http.Client timeout.
                deadline: now + std::time::Duration::from_secs(30),
            });
            self.links.get_mut(link).expect("present").busy = Some(Busy::Refreshing {
                id,
                caller: Some(caller),
            });
            return;
        }
    }

    fn loaded(&mut self, now: Timestamp, link: &LinkId, row: Option<StoredLink>) {
        let source = self.links.entry(link.clone()).or_default();
        source.busy = None;
        match row {
            Some(row) => {
                source.token = Some(Loaded {
                    access: row.access,
                    refresh: row.refresh_token,
                });
                self.run_queue(now, link);
            }
            None => {
                let waiting: Vec<_> = source.queue.drain(..).collect();
                for caller in waiting {
                    let reason = ReauthReason::NotLinked;
                    self.answer(
                        caller,
                        link,
                        Err(RefreshError::ReauthenticationRequired(reason)),
                    );
                }
            }
        }
    }

    fn refreshed(
        &mut self,
        now: Timestamp,
        link: &LinkId,
        caller: Option<CallerId>,
        outcome: ExchangeOutcome,
    ) {
        let source = self.links.get_mut(link).expect("a refreshing link");
        source.busy = None;
        let error = match outcome {
            ExchangeOutcome::Issued(set) => {
                let token = source.token.as_mut().expect("loaded before refreshing");
                token.access = Some(set.access.clone());
                // `tokenRefresher`: keep the old refresh token if none came.
                if let Some(refresh) = set.refresh_token {
                    token.refresh = Some(refresh);
                }
                let write = Write {
                    intent: WriteIntent::StoreTokens,
                    guard: Guard {
                        refresh_token: Expect::Any,
                        failure: Expect::Any,
                        lease: Expect::Any,
                    },
                    update: Update {
                        access: Change::Set(Some(set.access.clone())),
                        refresh_token: Change::Set(token.refresh.clone()),
                        failure: Change::Keep,
                        lease: Change::Keep,
                    },
                };
                let id = self.emit(link, |id| Effect::CompareAndSwap {
                    id,
                    link: link.clone(),
                    write,
                });
                self.links.get_mut(link).expect("present").busy = Some(Busy::Saving {
                    id,
                    caller,
                    grant: set.access,
                });
                return;
            }
            // `*oauth2.RetrieveError`: the caller gets the error; the
            // source keeps its refresh token for the next caller.
            ExchangeOutcome::Rejected { reason } => {
                RefreshError::ReauthenticationRequired(ReauthReason::Rejected {
                    provider_reason: reason,
                })
            }
            ExchangeOutcome::RateLimited { .. } => {
                RefreshError::Temporary(TemporaryReason::ProviderUnavailable {
                    detail: "429 Too Many Requests".into(),
                })
            }
            ExchangeOutcome::Transient { reason } | ExchangeOutcome::ServerError { reason, .. } => {
                RefreshError::Temporary(TemporaryReason::ProviderUnavailable { detail: reason })
            }
            ExchangeOutcome::OutcomeUnknown => {
                RefreshError::Temporary(TemporaryReason::ProviderUnavailable {
                    detail: "context deadline exceeded".into(),
                })
            }
        };
        if let Some(caller) = caller {
            self.answer(caller, link, Err(error));
        }
        self.run_queue(now, link);
    }
}

impl RefreshMachine for ReuseTokenSource {
    fn handle_input(&mut self, now: Timestamp, input: Input) -> Result<(), InputError> {
        let link = match input.effect_id() {
            Some(id) => Some(
                self.awaiting
                    .remove(&id)
                    .ok_or(InputError::UnknownEffect(id))?,
            ),
            None => None,
        };
        match (input, link) {
            (Input::TokenRequested { caller, link }, _) => {
                self.links
                    .entry(link.clone())
                    .or_default()
                    .queue
                    .push_back(caller);
                self.run_queue(now, &link);
            }
            (Input::CallerGone { caller }, _) => {
                // A goroutine whose context ends stops waiting; a refresh
                // or save it started runs on (the source's own context).
                for source in self.links.values_mut() {
                    source.queue.retain(|c| *c != caller);
                    match &mut source.busy {
                        Some(
                            Busy::Refreshing { caller: c, .. } | Busy::Saving { caller: c, .. },
                        ) if *c == Some(caller) => {
                            *c = None;
                        }
                        _ => {}
                    }
                }
            }
            (Input::LinkRead { row, .. }, Some(link)) => self.loaded(now, &link, row),
            (Input::ExchangeFinished { outcome, .. }, Some(link)) => {
                let caller = match self.links.get(&link).and_then(|s| s.busy.clone()) {
                    Some(Busy::Refreshing { caller, .. }) => caller,
                    _ => None,
                };
                self.refreshed(now, &link, caller, outcome);
            }
            (
                Input::CompareAndSwapWon { .. }
                | Input::CompareAndSwapLost { .. }
                | Input::StoreFailed { .. },
                Some(link),
            ) => {
                let source = self.links.get_mut(&link).expect("a known link");
                match source.busy.take() {
                    // A failed save is logged; the token is served anyway.
                    Some(Busy::Saving { caller, grant, .. }) => {
                        if let Some(caller) = caller {
                            self.answer(caller, &link, Ok(grant));
                        }
                    }
                    // The load failed: every queued caller gets the error,
                    // and the next one to ask loads again.
                    Some(Busy::Loading { .. }) => {
                        let waiting: Vec<_> = source.queue.drain(..).collect();
                        for caller in waiting {
                            let detail = "loading the token failed".to_string();
                            let error =
                                RefreshError::Temporary(TemporaryReason::StoreUnavailable {
                                    detail,
                                });
                            self.answer(caller, &link, Err(error));
                        }
                    }
                    other => source.busy = other,
                }
                self.run_queue(now, &link);
            }
            (Input::ValidationFinished { .. }, Some(_)) | (Input::TimerExpired, _) => {}
            (_, None) => {}
        }
        Ok(())
    }

    fn poll_output(&mut self) -> Option<Effect> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use baton_core::{AccessToken, TokenSet};

    use super::*;

    fn link() -> LinkId {
        LinkId::new("github", "octocat")
    }

    fn grant(token: &str, expires_at: Timestamp) -> AccessGrant {
        AccessGrant {
            token: AccessToken::new(token),
            expires_at,
            lifetime: None,
        }
    }

    fn drain(machine: &mut ReuseTokenSource) -> Vec<Effect> {
        std::iter::from_fn(|| machine.poll_output()).collect()
    }

    /// The Go code's happy path, driven by hand: the first caller loads,
    /// both queue on the mutex, one refresh serves both, the save writes
    /// unconditionally.
    #[test]
    fn one_process_loads_once_refreshes_once_and_saves_without_a_guard() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut m = ReuseTokenSource::new();
        for caller in [1, 2] {
            m.handle_input(
                t0,
                Input::TokenRequested {
                    caller: CallerId(caller),
                    link: link(),
                },
            )
            .unwrap();
        }
        let [Effect::ReadLink { id: read, .. }] = drain(&mut m)[..] else {
            panic!("one load for both callers");
        };
        let row = StoredLink::enrolled(TokenSet {
            access: grant("A0", t0),
            refresh_token: Some(RefreshToken::new("R0")),
        });
        m.handle_input(
            t0,
            Input::LinkRead {
                id: read,
                row: Some(row),
            },
        )
        .unwrap();
        let effects = drain(&mut m);
        let [Effect::Exchange {
            id: exchange,
            ref refresh_token,
            ..
        }] = effects[..]
        else {
            panic!("one refresh: {effects:?}");
        };
        assert_eq!(refresh_token.expose_secret(), "R0");
        let issued = TokenSet {
            access: grant("A1", t0 + Duration::from_secs(3600)),
            refresh_token: Some(RefreshToken::new("R1")),
        };
        m.handle_input(
            t0,
            Input::ExchangeFinished {
                id: exchange,
                outcome: ExchangeOutcome::Issued(issued),
            },
        )
        .unwrap();
        let effects = drain(&mut m);
        let [Effect::CompareAndSwap {
            id: save,
            ref write,
            ..
        }] = effects[..]
        else {
            panic!("a save: {effects:?}");
        };
        assert_eq!(
            write.guard.refresh_token,
            Expect::Any,
            "no compare-and-swap"
        );
        m.handle_input(
            t0,
            Input::CompareAndSwapWon {
                id: save,
                row: StoredLink::default(),
            },
        )
        .unwrap();
        let answers: Vec<_> = drain(&mut m)
            .into_iter()
            .map(|e| match e {
                Effect::Answer { caller, result, .. } => {
                    (caller.0, result.unwrap().token.expose_secret().to_owned())
                }
                other => panic!("only answers: {other:?}"),
            })
            .collect();
        assert_eq!(answers, [(1, "A1".to_owned()), (2, "A1".to_owned())]);
    }

    /// What makes it unsafe on a rotating provider: after a refresh whose
    /// outcome is unknown, the next caller presents the same token again.
    #[test]
    fn the_next_caller_presents_the_same_token_after_an_unknown_outcome() {
        let t0 = Timestamp::from_millis(1_000_000);
        let mut m = ReuseTokenSource::new();
        m.handle_input(
            t0,
            Input::TokenRequested {
                caller: CallerId(1),
                link: link(),
            },
        )
        .unwrap();
        let [Effect::ReadLink { id: read, .. }] = drain(&mut m)[..] else {
            panic!()
        };
        let row = StoredLink::enrolled(TokenSet {
            access: grant("A0", t0),
            refresh_token: Some(RefreshToken::new("R0")),
        });
        m.handle_input(
            t0,
            Input::LinkRead {
                id: read,
                row: Some(row),
            },
        )
        .unwrap();
        let [Effect::Exchange { id, .. }] = drain(&mut m)[..] else {
            panic!()
        };
        m.handle_input(
            t0,
            Input::ExchangeFinished {
                id,
                outcome: ExchangeOutcome::OutcomeUnknown,
            },
        )
        .unwrap();
        assert!(matches!(
            drain(&mut m)[..],
            [Effect::Answer { result: Err(_), .. }]
        ));
        m.handle_input(
            t0,
            Input::TokenRequested {
                caller: CallerId(2),
                link: link(),
            },
        )
        .unwrap();
        let effects = drain(&mut m);
        let [Effect::Exchange {
            ref refresh_token, ..
        }] = effects[..]
        else {
            panic!("{effects:?}")
        };
        assert_eq!(refresh_token.expose_secret(), "R0");
    }
}
