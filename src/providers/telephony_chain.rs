//! [`TelephonyChain`]: the [`TelephonyPort`] `talky serve` gives its calls.
//! It holds the configured telephony clients (Vonage, Twilio, either may
//! be absent) and places each call through its campaign's [`Telephony`]
//! (the route [`TelephonyPort::place_call_on`] carries; empty: the
//! server's `dialer.default_telephony`).
//!
//! # Never two legs
//!
//! `vonage_then_twilio` places on Vonage, and on Twilio only when Vonage
//! provably holds no leg for the attempt:
//! - Vonage's circuit is open (it was not asked), or
//! - its create-call failed before any leg could exist: `Rejected` (a 4xx:
//!   auth 401/403, validation, or refused before sending), `RateLimited`
//!   (429), `Unavailable` (a connect failure, or a 5xx answered instead of
//!   accepting: the clients map every "sent, then lost" to `Unknown`).
//!
//! `Unknown` (sent and then timed out, reset, or a 2xx without an id),
//! `Timeout` and `Protocol` never fail over: a leg may exist, and the
//! call resolves it (callbacks, [`TelephonyPort::find_call`]) on the
//! provider it asked. A chain whose caller gives up (the call's own place
//! timeout drops the future) leaves the same trace: the provider asked
//! last is on record.
//!
//! # Which provider holds a leg
//!
//! - A leg id names its provider ([`leg_id`]): `hang_up`, `transfer` and `leg_state`
//!   go to the provider that placed the leg.
//! - Before a provider other than Vonage (the call row's default) is
//!   asked, the [`LegLedger`] records it on the call (`calls.provider`),
//!   durably, so a placement whose answer is lost, or whose process dies,
//!   is resolved with the right provider: `find_call` asks the one the
//!   ledger names, and so does the reconciler after a crash. A ledger
//!   write that fails stops the placement (nothing was asked).
//!
//! # Breaker
//!
//! Every Vonage create-call's outcome feeds one circuit breaker (through
//! [`BreakerGuard`], so a half-open probe is always resolved): an answer
//! (a leg, or a 4xx) closes it, anything else (5xx, connect failure,
//! 429, an unknown outcome) counts against it. Only `vonage_then_twilio`
//! is gated by it (an open circuit goes straight to Twilio); a
//! `vonage`-only campaign has nowhere else to go and keeps asking.
//!
//! Metrics: `talky_calls_placed_total{provider}` (create-calls a provider
//! accepted), `talky_telephony_failovers_total{reason}` (`circuit_open`,
//! `no_leg`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use talky_actors::ids::CallId;
use talky_actors::ports::{
    LegState, PlaceCall, PortError, PortResult, ProviderCallId, TelephonyPort,
};

use super::breaker::{BreakerGuard, CircuitBreaker};
use super::telephony::{Telephony, TelephonyProvider, leg_id, split_leg};

/// Counter of create-calls a provider accepted, by `provider`.
pub const CALLS_PLACED: &str = "talky_calls_placed_total";
/// Counter of attempts moved from Vonage to Twilio, by `reason`.
pub const FAILOVERS: &str = "talky_telephony_failovers_total";

/// A boxed future of the ledger.
pub type LedgerFuture<'a, T> = Pin<Box<dyn Future<Output = PortResult<T>> + Send + 'a>>;

/// Where the provider asked to place a call is recorded (PostgreSQL: the
/// call row's `provider`; see `crate::store::PgLegLedger`).
pub trait LegLedger: Send + Sync + 'static {
    /// `provider` is about to be asked to place `call`: recorded before
    /// the request goes out.
    fn placing(&self, call: CallId, provider: TelephonyProvider) -> LedgerFuture<'_, ()>;

    /// The provider recorded for `call` (`None`: no such call).
    fn provider_of(&self, call: CallId) -> LedgerFuture<'_, Option<TelephonyProvider>>;
}

/// Whether a create-call's failure proves that no leg exists (module docs).
pub fn proves_no_leg(e: &PortError) -> bool {
    matches!(
        e,
        PortError::Rejected(_) | PortError::RateLimited { .. } | PortError::Unavailable(_)
    )
}

/// The telephony port over the configured providers (module docs).
pub struct TelephonyChain<V, T> {
    vonage: Option<V>,
    twilio: Option<T>,
    vonage_breaker: Arc<CircuitBreaker>,
    default: Telephony,
    ledger: Arc<dyn LegLedger>,
}

impl<V, T> std::fmt::Debug for TelephonyChain<V, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelephonyChain")
            .field("vonage", &self.vonage.is_some())
            .field("twilio", &self.twilio.is_some())
            .field("default", &self.default)
            .finish()
    }
}

fn not_configured(provider: TelephonyProvider) -> PortError {
    PortError::Rejected(format!(
        "telephony: providers.{provider} is not configured on this server"
    ))
}

fn unreachable_here(provider: TelephonyProvider) -> PortError {
    PortError::Unavailable(format!(
        "telephony: the leg is {provider}'s, and providers.{provider} is not configured on this server"
    ))
}

impl<V: TelephonyPort, T: TelephonyPort> TelephonyChain<V, T> {
    /// The chain over the configured clients; `default` is the route of a
    /// call that names none; `vonage_breaker` gates `vonage_then_twilio`.
    pub fn new(
        vonage: Option<V>,
        twilio: Option<T>,
        vonage_breaker: Arc<CircuitBreaker>,
        default: Telephony,
        ledger: Arc<dyn LegLedger>,
    ) -> Self {
        Self {
            vonage,
            twilio,
            vonage_breaker,
            default,
            ledger,
        }
    }

    /// Whether `provider` is configured here.
    pub fn has(&self, provider: TelephonyProvider) -> bool {
        match provider {
            TelephonyProvider::Vonage => self.vonage.is_some(),
            TelephonyProvider::Twilio => self.twilio.is_some(),
        }
    }

    /// The breaker Vonage's create-calls feed.
    pub fn vonage_breaker(&self) -> &Arc<CircuitBreaker> {
        &self.vonage_breaker
    }

    fn route(&self, telephony: &str) -> PortResult<Telephony> {
        if telephony.trim().is_empty() {
            return Ok(self.default);
        }
        telephony
            .parse()
            .map_err(|e| PortError::Rejected(format!("telephony route: {e}")))
    }

    /// One Vonage create-call, its outcome told to the breaker. `gated`:
    /// `None` (nothing asked) while the breaker refuses.
    async fn on_vonage(
        &self,
        vonage: &V,
        req: PlaceCall,
        gated: bool,
    ) -> Option<PortResult<ProviderCallId>> {
        let guard = BreakerGuard::acquire(&self.vonage_breaker);
        if guard.is_none() && gated {
            return None;
        }
        let result = vonage.place_call(req).await;
        if let Some(guard) = guard {
            match &result {
                Ok(_) | Err(PortError::Rejected(_)) => guard.success(),
                Err(_) => guard.failure(),
            }
        }
        if let Ok(id) = &result {
            metrics::counter!(CALLS_PLACED, "provider" => "vonage").increment(1);
            // Vonage's id is the leg id as it is (module docs of
            // `super::telephony`); a bare id is never mistaken for Twilio's.
            return Some(Ok(leg_id(TelephonyProvider::Vonage, &id.0)));
        }
        Some(result)
    }

    /// One Twilio create-call, recorded in the ledger first.
    async fn on_twilio(&self, twilio: &T, req: PlaceCall) -> PortResult<ProviderCallId> {
        self.ledger
            .placing(req.call, TelephonyProvider::Twilio)
            .await
            .map_err(|e| {
                PortError::Unavailable(format!(
                    "twilio not asked: the call's provider could not be recorded ({e})"
                ))
            })?;
        let id = twilio.place_call(req).await?;
        metrics::counter!(CALLS_PLACED, "provider" => "twilio").increment(1);
        Ok(leg_id(TelephonyProvider::Twilio, &id.0))
    }

    async fn vonage_alone(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
        let vonage = self
            .vonage
            .as_ref()
            .ok_or_else(|| not_configured(TelephonyProvider::Vonage))?;
        match self.on_vonage(vonage, req, false).await {
            Some(result) => result,
            None => Err(super::observe::circuit_open("vonage")),
        }
    }

    async fn twilio_alone(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
        let twilio = self
            .twilio
            .as_ref()
            .ok_or_else(|| not_configured(TelephonyProvider::Twilio))?;
        self.on_twilio(twilio, req).await
    }

    /// `vonage_then_twilio` (module docs). With only one of the two
    /// configured here, that one alone.
    async fn failover(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
        let (vonage, twilio) = match (&self.vonage, &self.twilio) {
            (Some(v), Some(t)) => (v, t),
            (Some(_), None) => return self.vonage_alone(req).await,
            (None, Some(_)) => return self.twilio_alone(req).await,
            (None, None) => return Err(not_configured(TelephonyProvider::Vonage)),
        };
        let call = req.call;
        let reason = match self.on_vonage(vonage, req.clone(), true).await {
            None => {
                tracing::info!(call.id = %call, "vonage circuit open: placing on twilio");
                "circuit_open"
            }
            Some(Ok(id)) => return Ok(id),
            Some(Err(e)) if proves_no_leg(&e) => {
                tracing::info!(call.id = %call, error = %e, "vonage placed no leg: placing on twilio");
                "no_leg"
            }
            // A leg may exist on Vonage: it is resolved there, never
            // doubled on Twilio.
            Some(Err(e)) => return Err(e),
        };
        metrics::counter!(FAILOVERS, "reason" => reason).increment(1);
        self.on_twilio(twilio, req).await
    }
}

impl<V: TelephonyPort, T: TelephonyPort> TelephonyPort for TelephonyChain<V, T> {
    async fn place_call(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
        self.place_call_on("", req).await
    }

    async fn place_call_on(&self, telephony: &str, req: PlaceCall) -> PortResult<ProviderCallId> {
        match self.route(telephony)? {
            Telephony::Vonage => self.vonage_alone(req).await,
            Telephony::Twilio => self.twilio_alone(req).await,
            Telephony::VonageThenTwilio => self.failover(req).await,
        }
    }

    async fn hang_up(&self, id: ProviderCallId) -> PortResult<()> {
        match self.leg(&id)? {
            (Leg::Vonage(v), bare) => v.hang_up(bare).await,
            (Leg::Twilio(t), bare) => t.hang_up(bare).await,
        }
    }

    async fn transfer(&self, id: ProviderCallId, number: &str, caller_id: &str) -> PortResult<()> {
        match self.leg(&id)? {
            (Leg::Vonage(v), bare) => v.transfer(bare, number, caller_id).await,
            (Leg::Twilio(t), bare) => t.transfer(bare, number, caller_id).await,
        }
    }

    async fn find_call(
        &self,
        call: CallId,
        to: &str,
        since: DateTime<Utc>,
    ) -> PortResult<Option<ProviderCallId>> {
        let Some(provider) = self.ledger.provider_of(call).await? else {
            return Ok(None);
        };
        let found = match provider {
            TelephonyProvider::Vonage => match &self.vonage {
                Some(v) => v.find_call(call, to, since).await?,
                None => return Err(unreachable_here(provider)),
            },
            TelephonyProvider::Twilio => match &self.twilio {
                Some(t) => t.find_call(call, to, since).await?,
                None => return Err(unreachable_here(provider)),
            },
        };
        Ok(found.map(|id| leg_id(provider, &id.0)))
    }

    async fn leg_state(&self, id: ProviderCallId) -> PortResult<Option<LegState>> {
        match self.leg(&id)? {
            (Leg::Vonage(v), bare) => v.leg_state(bare).await,
            (Leg::Twilio(t), bare) => t.leg_state(bare).await,
        }
    }
}

/// The client holding a leg ([`TelephonyChain::leg`]).
enum Leg<'a, V, T> {
    Vonage(&'a V),
    Twilio(&'a T),
}

impl<V, T> TelephonyChain<V, T> {
    /// The client of the provider a leg id names, and the provider's own
    /// id; an error when that provider is not configured here.
    fn leg(&self, id: &ProviderCallId) -> PortResult<(Leg<'_, V, T>, ProviderCallId)> {
        let (provider, bare) = split_leg(id);
        let bare = ProviderCallId(bare.to_owned());
        let client = match provider {
            TelephonyProvider::Vonage => self.vonage.as_ref().map(Leg::Vonage),
            TelephonyProvider::Twilio => self.twilio.as_ref().map(Leg::Twilio),
        };
        client
            .map(|c| (c, bare))
            .ok_or_else(|| unreachable_here(provider))
    }
}

/// A [`LegLedger`] in memory, for tests and tools without a database.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    providers: std::sync::Mutex<std::collections::HashMap<CallId, TelephonyProvider>>,
    /// Every write fails while set.
    pub failing: std::sync::atomic::AtomicBool,
}

impl MemoryLedger {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<CallId, TelephonyProvider>> {
        self.providers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call placed (as far as the ledger knows) on `provider`.
    pub fn insert(&self, call: CallId, provider: TelephonyProvider) {
        self.map().insert(call, provider);
    }
}

impl LegLedger for MemoryLedger {
    fn placing(&self, call: CallId, provider: TelephonyProvider) -> LedgerFuture<'_, ()> {
        Box::pin(async move {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(PortError::Unavailable("ledger down".into()));
            }
            self.insert(call, provider);
            Ok(())
        })
    }

    fn provider_of(&self, call: CallId) -> LedgerFuture<'_, Option<TelephonyProvider>> {
        Box::pin(async move { Ok(self.map().get(&call).copied()) })
    }
}

#[cfg(test)]
mod tests;
