//! Steps 5–8 of the algorithm: presenting the refresh token and deciding
//! what the provider's answer (or its absence) leads to.

use super::*;

impl Machine {
    pub(crate) fn exchange(&mut self, link: &LinkId, now: Timestamp, exchange: Exchange) -> Next {
        let deadline = now + self.config.exchange_timeout;
        let refresh_token = exchange.presented.clone();
        let id = self.emit(|id| Effect::Exchange {
            id,
            link: link.clone(),
            refresh_token,
            deadline,
        });
        Next::Continue(Step::Exchanging { id, exchange })
    }

    /// Steps 5–8: what the provider's answer (or its absence) leads to.
    pub(crate) fn exchanged(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        exchange: Exchange,
        outcome: ExchangeOutcome,
    ) -> Next {
        let Exchange {
            presented, lease, ..
        } = &exchange;
        let not_consumed = |answer: Answer| Settle {
            presented: presented.clone(),
            clear_lease: Some(lease.clone()),
            failure: FailureChange::ClearOutcomeUnknown,
            answer,
            attempts: 0,
        };
        match outcome {
            ExchangeOutcome::Issued(mut issued) => {
                // Measured from when we asked, not from when the reply came:
                // a reply delayed by a stall would make a long-lived token
                // look short-lived (relink_keeps_lease.toml). Stored with
                // the token, so every replica serves it until the same
                // instant (short_lived_tokens_across_replicas.toml).
                let lifetime = issued
                    .access
                    .expires_at
                    .saturating_since(exchange.first_sent_at);
                issued.access.lifetime = Some(lifetime);
                self.persist(
                    link,
                    Persist {
                        presented: presented.clone(),
                        issued,
                        lease_expires_at: exchange.lease.expires_at,
                        attempts: 1,
                    },
                )
            }
            ExchangeOutcome::Rejected { reason } => {
                let id = self.read(link);
                Next::Continue(Step::Reading {
                    id,
                    purpose: ReadPurpose::AfterRejection {
                        presented: presented.clone(),
                        reason,
                        lease: lease.clone(),
                    },
                })
            }
            ExchangeOutcome::RateLimited { retry_after } => {
                let delay = retry_after.unwrap_or(self.config.default_retry_after);
                self.links.entry(link.clone()).or_default().quiet_until = Some(now + delay);
                let settle = not_consumed(Err(RefreshError::RetryAfter { delay }));
                self.settle_expected(link, now, settle)
            }
            ExchangeOutcome::Transient { reason } => {
                let settle = not_consumed(Err(provider_unavailable(reason)));
                self.settle_expected(link, now, settle)
            }
            ExchangeOutcome::ServerError { status, reason } => {
                match self.config.server_error_after_send {
                    // The team chose to believe a 5xx always comes before
                    // the provider touches the token.
                    ServerErrorAfterSend::Retry => {
                        let settle = not_consumed(Err(provider_unavailable(reason)));
                        self.settle_expected(link, now, settle)
                    }
                    ServerErrorAfterSend::Unknown => self.outcome_unknown(
                        link,
                        now,
                        exchange,
                        format!("HTTP {status} after the request was sent: {reason}"),
                    ),
                }
            }
            ExchangeOutcome::OutcomeUnknown => {
                self.outcome_unknown(link, now, exchange, "no reply to the exchange".into())
            }
        }
    }

    /// Step 5's unknown outcome: the token may have been consumed. Present
    /// it again only where the provider makes that safe; otherwise record
    /// that its outcome is unknown, so that no replica presents it again.
    pub(super) fn outcome_unknown(
        &mut self,
        link: &LinkId,
        now: Timestamp,
        exchange: Exchange,
        detail: String,
    ) -> Next {
        if exchange.presentations < MAX_PRESENTATIONS
            && self.config.may_present_again(exchange.first_sent_at, now)
        {
            let again = Exchange {
                presentations: exchange.presentations + 1,
                ..exchange
            };
            return self.exchange(link, now, again);
        }
        let Exchange {
            presented, lease, ..
        } = exchange;
        let settle = if self.config.second_presentation == SecondPresentation::AlwaysSafe {
            // A provider that never consumes a token lost nothing: the
            // token stays good, and the next request presents it again.
            Settle {
                presented,
                clear_lease: Some(lease),
                failure: FailureChange::ClearOutcomeUnknown,
                answer: Err(provider_unavailable(detail)),
                attempts: 0,
            }
        } else {
            Settle {
                presented,
                failure: FailureChange::CacheOutcomeUnknown(lease.mark()),
                clear_lease: Some(lease),
                answer: Err(RefreshError::ReauthenticationRequired(
                    ReauthReason::OutcomeUnknown,
                )),
                attempts: 0,
            }
        };
        self.settle_expected(link, now, settle)
    }
}
