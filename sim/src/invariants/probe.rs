//! The probe behind `recovers`: one request on a fresh machine of the
//! world's algorithm, run to its answer with no fault injected, against a
//! copy of the store and the provider.

use baton_core::{CallerId, Effect, Input, LinkId, RefreshMachine, Timestamp};
use baton_fakes::{FakeProvider, InMemoryStore};

use crate::spec::WorldSpec;

/// The copy of the world a probe request runs in.
pub(super) struct Probe {
    pub(super) store: InMemoryStore,
    pub(super) provider: FakeProvider,
    pub(super) now: Timestamp,
}

/// Runs one request on a fresh machine of the world's algorithm, with no
/// faults, delivering everything in order and firing timers as they come.
pub(super) fn probe_request(
    world: &mut Probe,
    spec: &WorldSpec,
    link: &LinkId,
) -> Result<(), String> {
    let config = spec
        .config_for(baton_core::OwnerId::new("probe"))
        .map_err(|e| e.to_string())?;
    let mut machine = spec.algorithm.machine(config);
    let caller = CallerId(u64::MAX);
    let mut inbox = vec![Input::TokenRequested {
        caller,
        link: link.clone(),
    }];
    for _ in 0..200 {
        let input = match inbox.pop() {
            Some(input) => input,
            None => {
                let Some(at) = machine.poll_timeout() else {
                    return Err("hangs".into());
                };
                world.now = world.now.max(at);
                Input::TimerExpired
            }
        };
        machine
            .handle_input(world.now, input)
            .map_err(|e| format!("hit a driver error: {e}"))?;
        while let Some(effect) = machine.poll_output() {
            match effect {
                Effect::Answer { result, .. } => {
                    return match result {
                        Ok(grant) if world.provider.is_access_live(&grant.token, world.now) => {
                            Ok(())
                        }
                        Ok(grant) => Err(format!(
                            "got the dead access token {}",
                            grant.token.expose_secret()
                        )),
                        Err(error) => Err(format!("was told \"{error}\"")),
                    };
                }
                Effect::Exchange {
                    id, refresh_token, ..
                } => inbox.push(Input::ExchangeFinished {
                    id,
                    outcome: world.provider.exchange(world.now, &refresh_token, None),
                }),
                Effect::Validate {
                    id, access_token, ..
                } => inbox.push(Input::ValidationFinished {
                    id,
                    outcome: if world.provider.is_access_live(&access_token, world.now) {
                        baton_core::ValidationOutcome::Valid
                    } else {
                        baton_core::ValidationOutcome::Invalid {
                            reason: "401".into(),
                        }
                    },
                }),
                store_effect => inbox.push(carry_out(&mut world.store, &store_effect)),
            }
        }
    }
    Err("did not finish within 200 steps".into())
}

fn carry_out(store: &mut InMemoryStore, effect: &Effect) -> Input {
    store
        .carry_out(effect)
        .expect("only store effects reach the store")
}
