//! The fakes behind the driver's asynchronous ports
//! ([`LinkStore`], [`TokenEndpoint`]), shared between tasks: so a real
//! driver — the tokio `Refresher` — can run against the same store and
//! provider models the simulator explores.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use baton_core::driver::{LinkStore, TokenEndpoint};
use baton_core::{
    CasOutcome, ExchangeOutcome, LinkId, RefreshToken, StoreFailure, StoredLink, Timestamp,
    TokenSet, Write,
};

use crate::{FakeProvider, InMemoryStore, ProviderFault};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the fake leaves it as consistent
    // as any single call does.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An [`InMemoryStore`] shared by every clone: replicas in one test process
/// that share "the database".
#[derive(Clone, Debug, Default)]
pub struct SharedStore(Arc<Mutex<InMemoryStore>>);

impl SharedStore {
    /// Wraps `store`.
    pub fn new(store: InMemoryStore) -> Self {
        SharedStore(Arc::new(Mutex::new(store)))
    }

    /// Runs `f` on the store, for seeding, fault injection and inspection.
    pub fn with<T>(&self, f: impl FnOnce(&mut InMemoryStore) -> T) -> T {
        f(&mut lock(&self.0))
    }
}

impl LinkStore for SharedStore {
    async fn read(&self, link: &LinkId) -> Result<Option<StoredLink>, StoreFailure> {
        lock(&self.0).read(link)
    }

    async fn enroll(&self, link: &LinkId, pair: &TokenSet) -> Result<(), StoreFailure> {
        lock(&self.0).insert(link.clone(), StoredLink::enrolled(pair.clone()));
        Ok(())
    }

    async fn compare_and_swap(
        &self,
        link: &LinkId,
        write: &Write,
    ) -> Result<CasOutcome, StoreFailure> {
        lock(&self.0).compare_and_swap(link, write)
    }
}

/// A [`FakeProvider`] shared by every clone, with a queue of faults to
/// inject into the next exchanges, one each.
#[derive(Clone, Debug)]
pub struct SharedProvider {
    provider: Arc<Mutex<FakeProvider>>,
    faults: Arc<Mutex<VecDeque<ProviderFault>>>,
}

impl SharedProvider {
    /// Wraps `provider`.
    pub fn new(provider: FakeProvider) -> Self {
        SharedProvider {
            provider: Arc::new(Mutex::new(provider)),
            faults: Arc::default(),
        }
    }

    /// Runs `f` on the provider, for enrolment and inspection.
    pub fn with<T>(&self, f: impl FnOnce(&mut FakeProvider) -> T) -> T {
        f(&mut lock(&self.provider))
    }

    /// Makes the next exchange suffer `fault`.
    pub fn push_fault(&self, fault: ProviderFault) {
        lock(&self.faults).push_back(fault);
    }
}

impl TokenEndpoint for SharedProvider {
    async fn exchange(
        &self,
        _link: &LinkId,
        refresh_token: &RefreshToken,
        now: Timestamp,
    ) -> ExchangeOutcome {
        let fault = lock(&self.faults).pop_front();
        lock(&self.provider).exchange(now, refresh_token, fault)
    }
}
