//! The CallActor's records in PostgreSQL.

use std::time::Duration;

use chrono::{DateTime, Utc};
use talky_actors::ports::{
    CallKey, CallStore, CalleeRequest, LiveNote, PortResult, ProviderCallId, Role, TurnRecord,
};

use super::with_conn;
use crate::db::{self, calls::CallTurn};

/// The PostgreSQL call store. What it stored goes on to the live feed
/// (`crate::live`), after the write: the console shows only what is kept.
#[derive(Clone)]
pub struct PgCallStore {
    /// Pool.
    pub pool: db::Pool,
    /// Per-operation timeout.
    pub timeout: Duration,
    /// This node's live feed.
    pub live: std::sync::Arc<crate::live::LiveBus>,
}

impl CallStore for PgCallStore {
    async fn status(
        &self,
        key: CallKey,
        status: &'static str,
        at: DateTime<Utc>,
    ) -> PortResult<()> {
        with_conn(&self.pool, self.timeout, async move |conn| {
            db::calls::set_status(conn, key.tenant, key.call, status, at).await
        })
        .await?;
        self.live.status(&key, status, at);
        Ok(())
    }

    async fn provider_id(&self, key: CallKey, id: ProviderCallId) -> PortResult<()> {
        // The id names its provider (`providers::telephony`): the row keeps
        // both apart.
        let (provider, bare) = crate::providers::telephony::split_leg(&id);
        let bare = bare.to_owned();
        with_conn(&self.pool, self.timeout, async move |conn| {
            db::calls::set_provider_leg(conn, key.tenant, key.call, provider, &bare).await
        })
        .await
    }

    fn live(&self, key: CallKey, note: LiveNote) {
        self.live.note(&key, &note);
    }

    async fn turn(&self, key: CallKey, turn: TurnRecord) -> PortResult<()> {
        let live = self.live.clone();
        let published = turn.clone();
        let row = CallTurn {
            tenant_id: key.tenant.0,
            call_id: key.call.0,
            seq: turn.seq,
            speaker: match turn.speaker {
                Role::User => "user",
                _ => "agent",
            }
            .into(),
            text: turn.text,
            heard_text: turn.heard_text,
            interrupted: turn.interrupted,
            started_at: turn.started_at,
            ended_at: Some(turn.ended_at),
            stt_ms: turn.latency.stt_ms,
            llm_first_token_ms: turn.latency.llm_first_token_ms,
            tts_first_audio_ms: turn.latency.tts_first_audio_ms,
            first_frame_ms: turn.latency.first_frame_ms,
            voice_to_voice_ms: turn.latency.voice_to_voice_ms,
        };
        with_conn(&self.pool, self.timeout, async move |conn| {
            db::calls::insert_turn(conn, &row).await
        })
        .await?;
        live.turn(&key, &published);
        Ok(())
    }

    async fn requested(&self, key: CallKey, request: CalleeRequest) -> PortResult<()> {
        with_conn(&self.pool, self.timeout, async move |conn| match request {
            CalleeRequest::DoNotCall => {
                db::calls::set_do_not_call(conn, key.tenant, key.call).await
            }
            CalleeRequest::Callback(at) => {
                db::calls::set_callback(conn, key.tenant, key.call, at).await
            }
        })
        .await
    }

    async fn transfer_requested(&self, key: CallKey, at: DateTime<Utc>) -> PortResult<()> {
        with_conn(&self.pool, self.timeout, async move |conn| {
            db::calls::mark_transfer_requested(conn, key.tenant, key.call, at).await
        })
        .await
    }

    async fn finish(
        &self,
        key: CallKey,
        outcome: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> PortResult<()> {
        let ended = outcome.to_string();
        let outcome = outcome.to_string();
        let reason = reason.to_string();
        with_conn(&self.pool, self.timeout, async move |conn| {
            db::calls::finish_at(conn, key.tenant, key.call, &outcome, Some(&reason), at)
                .await
                .map(|_| ())
        })
        .await?;
        self.live.ended(&key, &ended, at);
        Ok(())
    }
}
