//! Dial intents: the call row, written before the provider is asked to
//! dial, unique per (tenant, campaign, contact, attempt).

use std::time::Duration;

use rand::Rng;
use talky_actors::dialer::{DialRequest, DialStore, Intent, IntentError};
use talky_actors::ids::CallId;
use talky_actors::ports::{CallKey, PortError, PortResult, ProviderCallId};

use super::with_conn;
use crate::db::{self, DbError};
use crate::providers::telephony::TelephonyProvider;
use crate::providers::telephony_chain::{LedgerFuture, LegLedger};

/// Random characters of a media token (~238 bits).
const MEDIA_TOKEN_LEN: usize = 40;

/// The PostgreSQL dial intent store.
#[derive(Clone)]
pub struct PgDialStore {
    /// Pool.
    pub pool: db::Pool,
    /// Per-operation timeout.
    pub timeout: Duration,
    /// This node's id, written on every intent: who runs the call (see
    /// `crate::reconcile`).
    pub node: String,
}

/// A fresh random media token (the dial intent's, and the answer
/// webhook's re-mint in answer_url mode).
pub(crate) fn media_token() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..MEDIA_TOKEN_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The telephony chain's [`LegLedger`] in PostgreSQL: the call row's
/// `provider` (see `crate::providers::telephony_chain`).
#[derive(Clone)]
pub struct PgLegLedger {
    /// Pool (the live calls').
    pub pool: db::Pool,
    /// Per-operation timeout.
    pub timeout: Duration,
}

impl LegLedger for PgLegLedger {
    fn placing(&self, call: CallId, provider: TelephonyProvider) -> LedgerFuture<'_, ()> {
        Box::pin(async move {
            with_conn(&self.pool, self.timeout, async move |conn| {
                db::calls::set_placing_provider(conn, call, provider)
                    .await
                    .map(|_| ())
            })
            .await
        })
    }

    fn provider_of(&self, call: CallId) -> LedgerFuture<'_, Option<TelephonyProvider>> {
        Box::pin(async move {
            let name = with_conn(&self.pool, self.timeout, async move |conn| {
                db::calls::provider_of(conn, call).await
            })
            .await?;
            match name {
                None => Ok(None),
                Some(n) => TelephonyProvider::parse(&n).map(Some).ok_or_else(|| {
                    PortError::Protocol(format!("call {call}: unknown provider {n:?}"))
                }),
            }
        })
    }
}

impl DialStore for PgDialStore {
    async fn create_intent(&self, req: &DialRequest) -> Result<Intent, IntentError> {
        let token = media_token();
        let hash = db::api_keys::hash(&token);
        let req = req.clone();
        let node = self.node.clone();
        let result =
            with_conn(
                &self.pool,
                self.timeout,
                async move |conn| match db::calls::create_intent(
                    conn,
                    db::calls::NewIntent {
                        tenant: req.tenant,
                        campaign: req.campaign,
                        contact: req.contact,
                        attempt: req.attempt as i32,
                        phone: &req.phone,
                        media_token_hash: Some(&hash),
                        node: Some(&node),
                    },
                )
                .await
                {
                    Ok(call) => Ok(Some(CallId(call.id))),
                    Err(e) if e.is_unique_violation() => Ok(None),
                    Err(e) => Err::<_, DbError>(e),
                },
            )
            .await?;
        match result {
            Some(call) => Ok(Intent {
                call,
                media_token: token,
            }),
            None => Err(IntentError::Duplicate),
        }
    }

    async fn cancel_intent(&self, key: CallKey) -> PortResult<()> {
        with_conn(&self.pool, self.timeout, async move |conn| {
            db::calls::cancel_intent(conn, key.tenant, key.call)
                .await
                .map(|_| ())
        })
        .await
    }

    async fn provider_call(&self, key: CallKey) -> PortResult<Option<ProviderCallId>> {
        with_conn(&self.pool, self.timeout, async move |conn| {
            Ok(db::calls::get(conn, key.tenant, key.call)
                .await?
                .and_then(|c| c.leg()))
        })
        .await
    }
}
