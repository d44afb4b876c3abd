//! The two ports a real runtime carries effects out against: the
//! [`LinkStore`] (a database shared by every replica) and the
//! [`TokenEndpoint`] (the provider). Both are asynchronous and say nothing
//! about which executor runs them; [`perform`] maps an effect onto them.

use std::future::Future;

use crate::{
    AccessToken, CasOutcome, Effect, ExchangeOutcome, Input, LinkId, RefreshToken, StoreFailure,
    StoredLink, Timestamp, TokenSet, ValidationOutcome, Write,
};

/// Where links live: one row per (provider, user), shared by every replica.
///
/// A store implements exactly the semantics of
/// [`StoredLink::compare_and_swap`]: the store contract tests run the same
/// suite against every implementation.
pub trait LinkStore: Send + Sync + 'static {
    /// Reads the link's row; `Ok(None)` if it has none.
    fn read(
        &self,
        link: &LinkId,
    ) -> impl Future<Output = Result<Option<StoredLink>, StoreFailure>> + Send;

    /// Applies `write` atomically if its guard holds, and says whether it
    /// did, with the row as it is afterwards. A failure means the write may
    /// or may not have been applied.
    fn compare_and_swap(
        &self,
        link: &LinkId,
        write: &Write,
    ) -> impl Future<Output = Result<CasOutcome, StoreFailure>> + Send;

    /// Enrols `link` with a fresh `pair` from the OAuth callback's
    /// authorization-code exchange: replaces the link's row with
    /// [`StoredLink::enrolled`]`(pair)`, inserting it if there is none.
    ///
    /// The one unconditional write a store makes, and the only one that
    /// creates a row. It is safe against refreshes in flight on any replica
    /// because every write the machine makes is a compare-and-swap guarded
    /// on the refresh token it read: once the new pair is in the row, a
    /// write of the older family loses, and the flight adopts the new row.
    /// A failure means the row may or may not have been replaced.
    fn enroll(
        &self,
        link: &LinkId,
        pair: &TokenSet,
    ) -> impl Future<Output = Result<(), StoreFailure>> + Send;
}

/// The provider: its token endpoint, and optionally an API call that tells
/// whether a fresh access token works.
pub trait TokenEndpoint: Send + Sync + 'static {
    /// Presents `refresh_token` once, in one request, never retried.
    /// `now` is when the request is sent; expiries in the reply are counted
    /// from it. A request sent whose reply never comes is the caller's to
    /// time out (see [`Effect::Exchange`]'s deadline).
    fn exchange(
        &self,
        link: &LinkId,
        refresh_token: &RefreshToken,
        now: Timestamp,
    ) -> impl Future<Output = ExchangeOutcome> + Send;

    /// Calls the provider's API with a freshly issued access token. Only
    /// used when the machine is configured to validate; the default says
    /// every token is valid.
    fn validate(
        &self,
        link: &LinkId,
        access_token: &AccessToken,
    ) -> impl Future<Output = ValidationOutcome> + Send {
        let _ = (link, access_token);
        async { ValidationOutcome::Valid }
    }
}

/// Carries out one I/O effect against `store` and `endpoint` and returns the
/// input that answers it. `now` is read when the request goes out.
///
/// The exchange is awaited without a deadline: the runtime wraps this in
/// its own timeout and answers [`ExchangeOutcome::OutcomeUnknown`] when the
/// effect's deadline passes. Returns `None` for [`Effect::Answer`], which is
/// not I/O.
pub async fn perform<S: LinkStore, E: TokenEndpoint>(
    store: &S,
    endpoint: &E,
    effect: &Effect,
    now: Timestamp,
) -> Option<Input> {
    Some(match effect {
        Effect::ReadLink { id, link } => match store.read(link).await {
            Ok(row) => Input::LinkRead { id: *id, row },
            Err(failure) => Input::StoreFailed { id: *id, failure },
        },
        Effect::CompareAndSwap { id, link, write } => {
            match store.compare_and_swap(link, write).await {
                Ok(CasOutcome::Won(row)) => Input::CompareAndSwapWon { id: *id, row },
                Ok(CasOutcome::Lost(row)) => Input::CompareAndSwapLost { id: *id, row },
                Err(failure) => Input::StoreFailed { id: *id, failure },
            }
        }
        Effect::Exchange {
            id,
            link,
            refresh_token,
            ..
        } => Input::ExchangeFinished {
            id: *id,
            outcome: endpoint.exchange(link, refresh_token, now).await,
        },
        Effect::Validate {
            id,
            link,
            access_token,
        } => Input::ValidationFinished {
            id: *id,
            outcome: endpoint.validate(link, access_token).await,
        },
        Effect::Answer { .. } => return None,
    })
}
