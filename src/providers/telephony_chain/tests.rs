//! Every branch of the chain with fake providers: where a call is placed,
//! when it fails over (and never twice), where hang-ups, status queries
//! and call-list look-ups go.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use super::*;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One fake provider; what it was asked, what it answers.
#[derive(Default)]
struct Fake {
    name: &'static str,
    /// Answers of the next create-calls (then: a leg).
    answers: Mutex<VecDeque<PortResult<ProviderCallId>>>,
    placed: Mutex<Vec<CallId>>,
    hung_up: Mutex<Vec<String>>,
    finds: Mutex<Vec<CallId>>,
    states: Mutex<Vec<String>>,
    /// What the ledger said of the call when this provider was asked.
    ledger_at_place: Mutex<Vec<Option<TelephonyProvider>>>,
    ledger: Mutex<Option<Arc<MemoryLedger>>>,
}

impl Fake {
    fn new(name: &'static str) -> Arc<Fake> {
        Arc::new(Fake {
            name,
            ..Fake::default()
        })
    }

    fn answer(&self, r: PortResult<ProviderCallId>) {
        lock(&self.answers).push_back(r);
    }

    fn placed(&self) -> usize {
        lock(&self.placed).len()
    }
}

/// The chain owns its clients: a handle on a shared fake.
#[derive(Clone)]
struct F(Arc<Fake>);

impl TelephonyPort for F {
    async fn place_call(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
        let ledger = lock(&self.0.ledger).clone();
        if let Some(l) = ledger {
            let now = l.provider_of(req.call).await.expect("ledger");
            lock(&self.0.ledger_at_place).push(now);
        }
        lock(&self.0.placed).push(req.call);
        let answer = lock(&self.0.answers).pop_front();
        answer.unwrap_or_else(|| Ok(ProviderCallId(format!("{}-leg", self.0.name))))
    }

    async fn hang_up(&self, id: ProviderCallId) -> PortResult<()> {
        lock(&self.0.hung_up).push(id.0);
        Ok(())
    }

    async fn find_call(
        &self,
        call: CallId,
        _to: &str,
        _since: DateTime<Utc>,
    ) -> PortResult<Option<ProviderCallId>> {
        lock(&self.0.finds).push(call);
        Ok(Some(ProviderCallId(format!("{}-found", self.0.name))))
    }

    async fn leg_state(&self, id: ProviderCallId) -> PortResult<Option<LegState>> {
        lock(&self.0.states).push(id.0);
        Ok(Some(LegState::Live { answered: true }))
    }
}

struct World {
    vonage: Arc<Fake>,
    twilio: Arc<Fake>,
    ledger: Arc<MemoryLedger>,
    chain: TelephonyChain<F, F>,
}

fn breaker(threshold: u32) -> Arc<CircuitBreaker> {
    Arc::new(CircuitBreaker::new(
        "vonage",
        threshold,
        Duration::from_secs(30),
    ))
}

fn world_with(default: Telephony, vonage: bool, twilio: bool, threshold: u32) -> World {
    let (v, t) = (Fake::new("vonage"), Fake::new("twilio"));
    let ledger = Arc::new(MemoryLedger::default());
    *lock(&v.ledger) = Some(ledger.clone());
    *lock(&t.ledger) = Some(ledger.clone());
    let chain = TelephonyChain::new(
        vonage.then(|| F(v.clone())),
        twilio.then(|| F(t.clone())),
        breaker(threshold),
        default,
        ledger.clone(),
    );
    World {
        vonage: v,
        twilio: t,
        ledger,
        chain,
    }
}

fn world() -> World {
    world_with(Telephony::Vonage, true, true, 5)
}

/// A dial intent: the row exists and says `vonage` (its default).
fn intent(w: &World) -> PlaceCall {
    let call = CallId::new();
    w.ledger.insert(call, TelephonyProvider::Vonage);
    PlaceCall {
        call,
        to: "+14155550123".into(),
        from: "+14155550100".into(),
        ringing_timeout: Duration::from_secs(30),
        max_duration: Duration::from_secs(600),
        machine_detection: true,
        media_token: "tok".into(),
    }
}

async fn recorded(w: &World, call: CallId) -> Option<TelephonyProvider> {
    w.ledger.provider_of(call).await.expect("ledger")
}

impl World {
    /// Places `req` through the chain on campaign route `route`.
    async fn place(&self, route: &str, req: PlaceCall) -> PortResult<ProviderCallId> {
        self.chain.place_call_on(route, req).await
    }

    /// How many times (Vonage, Twilio) were asked to place a call.
    fn placed(&self) -> (usize, usize) {
        (self.vonage.placed(), self.twilio.placed())
    }
}

/// The failover route.
const CHAIN: &str = "vonage_then_twilio";

/// Legs that exist at the providers: never more than one per attempt.
fn legs(w: &World) -> usize {
    lock(&w.vonage.placed).len() + lock(&w.twilio.placed).len()
}

#[tokio::test]
async fn single_provider_routes_place_there_only() {
    let w = world();
    let req = intent(&w);
    let id = w.place("vonage", req.clone()).await;
    assert_eq!(id, Ok(ProviderCallId("vonage-leg".into())), "bare");
    assert_eq!(w.placed(), (1, 0));
    assert_eq!(
        recorded(&w, req.call).await,
        Some(TelephonyProvider::Vonage)
    );

    let req = intent(&w);
    let id = w.place("twilio", req.clone()).await;
    assert_eq!(
        id,
        Ok(ProviderCallId("twilio:twilio-leg".into())),
        "qualified"
    );
    assert_eq!(w.placed(), (1, 1));
    assert_eq!(
        *lock(&w.twilio.ledger_at_place),
        [Some(TelephonyProvider::Twilio)],
        "recorded before Twilio was asked"
    );
    assert_eq!(
        recorded(&w, req.call).await,
        Some(TelephonyProvider::Twilio)
    );
}

#[tokio::test]
async fn the_default_route_and_unknown_routes() {
    let w = world_with(Telephony::Twilio, true, true, 5);
    let id = w.chain.place_call(intent(&w)).await.expect("placed");
    assert_eq!(id.0, "twilio:twilio-leg", "no route: the server's default");
    let id = w.place(" ", intent(&w)).await.expect("placed");
    assert_eq!(id.0, "twilio:twilio-leg");
    let err = w
        .place("carrier_pigeon", intent(&w))
        .await
        .expect_err("unknown");
    assert!(matches!(err, PortError::Rejected(_)), "{err}");
    assert_eq!(legs(&w), 2, "an unknown route asks nobody");
}

#[tokio::test]
async fn vonage_then_twilio_stays_on_vonage_when_it_places() {
    let w = world();
    let req = intent(&w);
    let id = w.place(CHAIN, req.clone()).await.expect("placed");
    assert_eq!(id.0, "vonage-leg");
    assert_eq!(w.placed(), (1, 0));
    assert_eq!(
        recorded(&w, req.call).await,
        Some(TelephonyProvider::Vonage)
    );
}

#[tokio::test]
async fn failures_that_prove_no_leg_fail_over_once() {
    let proofs = [
        PortError::Unavailable(
            "vonage create call: connection refused (not sent: connect failed)".into(),
        ),
        PortError::Rejected("401 Unauthorized".into()),
        PortError::Rejected("403 Forbidden".into()),
        PortError::Rejected("422 invalid number".into()),
        PortError::Unavailable("503 Service Unavailable".into()),
        PortError::RateLimited { retry_after: None },
    ];
    for proof in proofs {
        let w = world();
        w.vonage.answer(Err(proof.clone()));
        let req = intent(&w);
        let id = w
            .place(CHAIN, req.clone())
            .await
            .unwrap_or_else(|e| panic!("{proof}: {e}"));
        assert_eq!(id.0, "twilio:twilio-leg", "{proof}");
        assert_eq!(w.placed(), (1, 1), "{proof}: each asked once");
        assert_eq!(
            *lock(&w.twilio.ledger_at_place),
            [Some(TelephonyProvider::Twilio)],
            "{proof}: on record before Twilio is asked"
        );
        assert_eq!(
            recorded(&w, req.call).await,
            Some(TelephonyProvider::Twilio)
        );
    }
}

#[tokio::test]
async fn an_unknown_outcome_never_fails_over() {
    let ambiguous = [
        PortError::Unknown("timed out after the request was sent".into()),
        PortError::Unknown("a 2xx without a uuid".into()),
        PortError::Timeout("no answer".into()),
        PortError::Protocol("garbage".into()),
    ];
    for e in ambiguous {
        let w = world();
        w.vonage.answer(Err(e.clone()));
        let req = intent(&w);
        let got = w.place(CHAIN, req.clone()).await;
        assert_eq!(got, Err(e.clone()), "the caller resolves it");
        assert_eq!(w.placed(), (1, 0), "{e}");
        assert_eq!(
            recorded(&w, req.call).await,
            Some(TelephonyProvider::Vonage),
            "{e}: resolved on Vonage"
        );
        // ... where the call list is asked.
        let found = w
            .chain
            .find_call(req.call, &req.to, Utc::now())
            .await
            .expect("find");
        assert_eq!(found, Some(ProviderCallId("vonage-found".into())));
        assert_eq!(lock(&w.vonage.finds).len(), 1);
        assert!(lock(&w.twilio.finds).is_empty());
    }
}

#[tokio::test]
async fn an_unknown_outcome_on_twilio_is_resolved_on_twilio() {
    let w = world();
    w.vonage.answer(Err(PortError::Rejected("401".into())));
    w.twilio.answer(Err(PortError::Unknown("reset".into())));
    let req = intent(&w);
    let got = w.place(CHAIN, req.clone()).await;
    assert!(matches!(got, Err(PortError::Unknown(_))), "{got:?}");
    let found = w
        .chain
        .find_call(req.call, &req.to, Utc::now())
        .await
        .expect("find");
    assert_eq!(found, Some(ProviderCallId("twilio:twilio-found".into())));
    assert!(lock(&w.vonage.finds).is_empty());
}

#[tokio::test]
async fn an_open_circuit_goes_straight_to_twilio() {
    let w = world_with(Telephony::Vonage, true, true, 2);
    // Two failures open Vonage's circuit (an unknown outcome counts too,
    // and does not fail over).
    w.vonage.answer(Err(PortError::Unavailable("503".into())));
    w.vonage.answer(Err(PortError::Unknown("timeout".into())));
    w.place(CHAIN, intent(&w))
        .await
        .expect("failed over on the 503");
    assert!(w.place(CHAIN, intent(&w)).await.is_err());
    assert_eq!(w.placed(), (2, 1));
    assert_eq!(
        w.chain.vonage_breaker().state(),
        crate::providers::breaker::BreakerState::Open
    );
    let req = intent(&w);
    let id = w.place(CHAIN, req.clone()).await.expect("placed");
    assert_eq!(id.0, "twilio:twilio-leg");
    assert_eq!(w.placed(), (2, 2), "Vonage not asked while open");
    // A campaign on Vonage alone still asks it (nowhere else to go).
    let id = w.place("vonage", intent(&w)).await.expect("placed");
    assert_eq!(id.0, "vonage-leg");
    assert_eq!(w.vonage.placed(), 3);
}

#[tokio::test]
async fn answers_and_refusals_keep_the_circuit_closed() {
    let w = world_with(Telephony::Vonage, true, true, 1);
    w.vonage.answer(Err(PortError::Rejected("422".into())));
    w.place(CHAIN, intent(&w)).await.expect("failed over");
    w.place(CHAIN, intent(&w)).await.expect("placed");
    assert_eq!(
        w.vonage.placed(),
        2,
        "a 4xx means Vonage is up: still asked first"
    );
}

#[tokio::test]
async fn a_ledger_that_cannot_record_stops_the_failover() {
    let w = world();
    w.vonage.answer(Err(PortError::Rejected("401".into())));
    w.ledger
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let got = w.place(CHAIN, intent(&w)).await;
    assert!(matches!(got, Err(PortError::Unavailable(_))), "{got:?}");
    assert_eq!(w.twilio.placed(), 0, "Twilio is never asked off the record");
    let got = w.place("twilio", intent(&w)).await;
    assert!(matches!(got, Err(PortError::Unavailable(_))), "{got:?}");
    assert_eq!(w.twilio.placed(), 0);
}

#[tokio::test]
async fn a_chain_with_one_provider_uses_it_alone() {
    let w = world_with(Telephony::Vonage, true, false, 5);
    w.vonage.answer(Err(PortError::Rejected("401".into())));
    let got = w.place(CHAIN, intent(&w)).await;
    assert_eq!(
        got,
        Err(PortError::Rejected("401".into())),
        "nowhere to fail over"
    );
    let err = w
        .place("twilio", intent(&w))
        .await
        .expect_err("not configured");
    assert!(err.to_string().contains("providers.twilio"), "{err}");
    assert!(!w.chain.has(TelephonyProvider::Twilio));

    let w = world_with(Telephony::Vonage, false, true, 5);
    let id = w.place(CHAIN, intent(&w)).await.expect("placed");
    assert_eq!(id.0, "twilio:twilio-leg");
    let err = w
        .chain
        .place_call(intent(&w))
        .await
        .expect_err("default vonage, not configured");
    assert!(err.to_string().contains("providers.vonage"), "{err}");
    assert_eq!(legs(&w), 1);
}

#[tokio::test]
async fn hang_ups_and_status_queries_go_to_the_leg_s_provider() {
    let w = world();
    w.chain
        .hang_up(ProviderCallId("63f61863-uuid".into()))
        .await
        .expect("vonage");
    w.chain
        .hang_up(ProviderCallId("twilio:CA01".into()))
        .await
        .expect("twilio");
    assert_eq!(*lock(&w.vonage.hung_up), ["63f61863-uuid"]);
    assert_eq!(*lock(&w.twilio.hung_up), ["CA01"], "the bare CallSid");
    w.chain
        .leg_state(ProviderCallId("twilio:CA02".into()))
        .await
        .expect("twilio");
    w.chain
        .leg_state(ProviderCallId("uuid-2".into()))
        .await
        .expect("vonage");
    assert_eq!(*lock(&w.twilio.states), ["CA02"]);
    assert_eq!(*lock(&w.vonage.states), ["uuid-2"]);

    // A leg of a provider not configured here: unavailable (another node
    // may settle it), never sent to the other provider.
    let w = world_with(Telephony::Vonage, true, false, 5);
    let err = w
        .chain
        .hang_up(ProviderCallId("twilio:CA03".into()))
        .await
        .expect_err("no twilio");
    assert!(matches!(err, PortError::Unavailable(_)), "{err}");
    assert!(lock(&w.vonage.hung_up).is_empty());
    let req = intent(&w);
    w.ledger.insert(req.call, TelephonyProvider::Twilio);
    let err = w
        .chain
        .find_call(req.call, &req.to, Utc::now())
        .await
        .expect_err("no twilio");
    assert!(matches!(err, PortError::Unavailable(_)), "{err}");
    // A call the ledger does not know: no leg.
    assert_eq!(
        w.chain
            .find_call(CallId::new(), "+1415", Utc::now())
            .await
            .expect("find"),
        None
    );
}

#[tokio::test]
async fn placements_and_failovers_are_counted_per_provider() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _guard = metrics::set_default_local_recorder(&recorder);
    crate::metrics::describe();
    let w = world_with(Telephony::Vonage, true, true, 1);
    w.chain.place_call(intent(&w)).await.expect("vonage");
    w.vonage.answer(Err(PortError::Rejected("401".into())));
    w.place(CHAIN, intent(&w)).await.expect("no leg: twilio");
    w.vonage.answer(Err(PortError::Unavailable("503".into())));
    w.place(CHAIN, intent(&w)).await.expect("no leg: twilio");
    w.place(CHAIN, intent(&w))
        .await
        .expect("circuit open: twilio");
    let text = handle.render();
    for line in [
        "talky_calls_placed_total{provider=\"vonage\"} 1",
        "talky_calls_placed_total{provider=\"twilio\"} 3",
        "talky_telephony_failovers_total{reason=\"no_leg\"} 2",
        "talky_telephony_failovers_total{reason=\"circuit_open\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}: {text}");
    }
    for name in [CALLS_PLACED, FAILOVERS] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {name} ")) && l.len() > name.len() + 20),
            "{name}: {text}"
        );
    }
}
