//! Fakes of every port a call uses, with shared logs the tests inspect.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorRef};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::call::{
    CallActor, CallArgs, CallConfig, CallMsg, CallPorts, CallReport, CallerAudio, MediaInbound,
    MediaSession, Ports,
};
use crate::ids::{CallId, CampaignId, ContactId, TenantId};
use crate::ports::*;

/// Locks a test mutex (a poisoned one means a test already failed).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
pub struct TelephonyLog {
    pub placed: Vec<PlaceCall>,
    /// The telephony route of each placement (`place_call_on`).
    pub routes: Vec<String>,
    pub hung_up: Vec<ProviderCallId>,
    /// `find_call` questions: our call id and the number.
    pub finds: Vec<(CallId, String)>,
    /// `transfer` requests: the leg, the number, the caller id shown.
    pub transfers: Vec<(ProviderCallId, String, String)>,
}

#[derive(Default)]
pub struct FakeTelephony {
    pub log: Mutex<TelephonyLog>,
    /// `place_call` answers `PortError::Unknown` after this long.
    pub place_unknown_after: Mutex<Option<Duration>>,
    /// `place_call` answers nothing for this long (the caller's timeout).
    pub place_hangs_for: Mutex<Option<Duration>>,
    /// What `find_call` answers.
    pub found: Mutex<Option<ProviderCallId>>,
    /// `transfer` answers after this long.
    pub transfer_takes: Mutex<Duration>,
    /// `transfer` answers this error (else `Ok`).
    pub transfer_fails: Mutex<Option<PortError>>,
}

impl TelephonyPort for FakeTelephony {
    async fn place_call_on(&self, telephony: &str, req: PlaceCall) -> PortResult<ProviderCallId> {
        lock(&self.log).routes.push(telephony.to_string());
        self.place_call(req).await
    }
    async fn place_call(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
        lock(&self.log).placed.push(req);
        let unknown = *lock(&self.place_unknown_after);
        if let Some(after) = unknown {
            tokio::time::sleep(after).await;
            return Err(PortError::Unknown(
                "connection reset after the request".into(),
            ));
        }
        let hang = *lock(&self.place_hangs_for);
        if let Some(d) = hang {
            tokio::time::sleep(d).await;
        }
        Ok(ProviderCallId("prov-1".into()))
    }
    async fn hang_up(&self, id: ProviderCallId) -> PortResult<()> {
        lock(&self.log).hung_up.push(id);
        Ok(())
    }
    async fn find_call(
        &self,
        call: CallId,
        to: &str,
        _since: DateTime<Utc>,
    ) -> PortResult<Option<ProviderCallId>> {
        lock(&self.log).finds.push((call, to.to_string()));
        Ok(lock(&self.found).clone())
    }
    async fn transfer(&self, id: ProviderCallId, number: &str, caller_id: &str) -> PortResult<()> {
        lock(&self.log)
            .transfers
            .push((id, number.to_string(), caller_id.to_string()));
        let takes = *lock(&self.transfer_takes);
        tokio::time::sleep(takes).await;
        match lock(&self.transfer_fails).clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// One opened STT session as the test sees it.
pub struct SttHandle {
    pub provider: &'static str,
    pub audio: mpsc::Receiver<Vec<u8>>,
    pub events: mpsc::Sender<SttEvent>,
}

pub struct FakeStt {
    pub name: &'static str,
    /// Opens that fail before one succeeds.
    pub fail_opens: Mutex<u32>,
    /// How long an open takes (a WebSocket handshake).
    pub open_delay: Mutex<Duration>,
    pub sessions: Arc<Mutex<Vec<SttHandle>>>,
}

impl FakeStt {
    pub fn new(name: &'static str, sessions: Arc<Mutex<Vec<SttHandle>>>) -> Self {
        Self {
            name,
            fail_opens: Mutex::new(0),
            open_delay: Mutex::new(Duration::ZERO),
            sessions,
        }
    }
}

impl SttPort for FakeStt {
    fn provider_name(&self) -> &str {
        self.name
    }

    async fn open(&self, _cfg: SttConfig) -> PortResult<SttSession> {
        let delay = *lock(&self.open_delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        {
            let mut fails = lock(&self.fail_opens);
            if *fails > 0 {
                *fails -= 1;
                return Err(PortError::Unavailable(format!("{} is down", self.name)));
            }
        }
        let (audio_tx, audio_rx) = mpsc::channel(STT_AUDIO_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(PROVIDER_EVENT_CAPACITY);
        lock(&self.sessions).push(SttHandle {
            provider: self.name,
            audio: audio_rx,
            events: events_tx,
        });
        Ok(SttSession {
            audio: audio_tx,
            events: events_rx,
        })
    }
}

/// Scripted LLM: each request gets the next scripted reply (a list of
/// events sent 200 ms then 25 ms apart); requests are logged.
pub struct FakeLlm {
    pub name: &'static str,
    pub replies: Mutex<VecDeque<Vec<LlmEvent>>>,
    pub requests: Arc<Mutex<Vec<(&'static str, ChatRequest)>>>,
    /// Requests that fail before one succeeds.
    pub fail_streams: Mutex<u32>,
    /// Time between streamed events.
    pub token_gap: Mutex<Duration>,
}

impl FakeLlm {
    pub fn new(name: &'static str, requests: Arc<Mutex<Vec<(&'static str, ChatRequest)>>>) -> Self {
        Self {
            name,
            replies: Mutex::new(VecDeque::new()),
            requests,
            fail_streams: Mutex::new(0),
            token_gap: Mutex::new(Duration::from_millis(25)),
        }
    }

    pub fn reply(&self, text: &str) {
        let mut events: Vec<LlmEvent> = text
            .split_inclusive(' ')
            .map(|w| LlmEvent::Text(w.to_string()))
            .collect();
        events.push(LlmEvent::Finish(FinishReason::Stop));
        lock(&self.replies).push_back(events);
    }

    pub fn reply_events(&self, events: Vec<LlmEvent>) {
        lock(&self.replies).push_back(events);
    }
}

impl LlmPort for FakeLlm {
    fn provider_name(&self) -> &str {
        self.name
    }

    async fn stream(&self, req: ChatRequest) -> PortResult<mpsc::Receiver<LlmEvent>> {
        lock(&self.requests).push((self.name, req));
        {
            let mut fails = lock(&self.fail_streams);
            if *fails > 0 {
                *fails -= 1;
                return Err(PortError::Unavailable(format!("{} is down", self.name)));
            }
        }
        let events = lock(&self.replies).pop_front().unwrap_or_else(|| {
            vec![
                LlmEvent::Text("Okay.".into()),
                LlmEvent::Finish(FinishReason::Stop),
            ]
        });
        let (tx, rx) = mpsc::channel(PROVIDER_EVENT_CAPACITY);
        let gap = *lock(&self.token_gap);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            for event in events {
                if tx.send(event).await.is_err() {
                    return;
                }
                tokio::time::sleep(gap).await;
            }
        });
        Ok(rx)
    }
}

/// TTS that speaks 15 characters a second: after 120 ms, 100 ms chunks of
/// PCM (a constant non-zero sample, so frames are recognisable).
pub struct FakeTts {
    pub name: &'static str,
    pub requests: Arc<Mutex<Vec<(&'static str, String)>>>,
    /// Syntheses that fail (after one chunk) before one succeeds.
    pub fail_after_one_chunk: Mutex<u32>,
    /// When each audio chunk was handed over (the consumer took it).
    pub chunks_sent: Arc<Mutex<Vec<Instant>>>,
}

impl FakeTts {
    pub fn new(name: &'static str, requests: Arc<Mutex<Vec<(&'static str, String)>>>) -> Self {
        Self {
            name,
            requests,
            fail_after_one_chunk: Mutex::new(0),
            chunks_sent: Arc::default(),
        }
    }
}

pub const CHARS_PER_SECOND: f64 = 15.0;

/// Audio duration the fake TTS produces for a text.
pub fn speech_duration(text: &str) -> Duration {
    Duration::from_secs_f64(text.chars().count() as f64 / CHARS_PER_SECOND)
}

impl TtsPort for FakeTts {
    fn provider_name(&self) -> &str {
        self.name
    }

    async fn synthesize(&self, req: TtsRequest) -> PortResult<mpsc::Receiver<TtsEvent>> {
        lock(&self.requests).push((self.name, req.text.clone()));
        let fail = {
            let mut f = lock(&self.fail_after_one_chunk);
            if *f > 0 {
                *f -= 1;
                true
            } else {
                false
            }
        };
        let (tx, rx) = mpsc::channel(TTS_EVENT_CAPACITY);
        let total = speech_duration(&req.text);
        let sent = self.chunks_sent.clone();
        let bytes_per_ms = (req.sample_rate as usize / 1000) * 2;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(120)).await;
            let mut left = total.as_millis() as usize;
            while left > 0 {
                let ms = left.min(100);
                left -= ms;
                let chunk = vec![0x10u8; ms * bytes_per_ms];
                if tx.send(TtsEvent::Audio(chunk)).await.is_err() {
                    return;
                }
                lock(&sent).push(Instant::now());
                if fail {
                    let _ = tx
                        .send(TtsEvent::Error(PortError::Unavailable("tts broke".into())))
                        .await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = tx.send(TtsEvent::Done).await;
        });
        Ok(rx)
    }
}

#[derive(Default)]
pub struct StoreLog {
    pub statuses: Vec<&'static str>,
    pub turns: Vec<TurnRecord>,
    pub finished: Option<(String, String)>,
    pub requests: Vec<CalleeRequest>,
    pub provider_id: Option<ProviderCallId>,
    /// Every write that landed, in order ("status:dialing", "turn:0",
    /// "request", "provider_id", "finish:completed").
    pub ops: Vec<String>,
    /// Attempts that failed.
    pub failed_attempts: u32,
    /// When the first callee request was stored.
    pub request_stored_at: Option<Instant>,
}

#[derive(Default)]
pub struct FakeStore {
    pub log: Mutex<StoreLog>,
    /// Every write fails (unavailable) until then.
    pub down_until: Mutex<Option<Instant>>,
    /// Writes refused for good before one is accepted.
    pub reject_next: Mutex<u32>,
    /// A callee request takes this long to store.
    pub request_delay: Mutex<Duration>,
}

impl FakeStore {
    /// Every write fails for `d` from now.
    pub fn fail_for(&self, d: Duration) {
        *lock(&self.down_until) = Some(Instant::now() + d);
    }

    fn attempt(&self) -> PortResult<()> {
        if lock(&self.down_until).is_some_and(|t| Instant::now() < t) {
            lock(&self.log).failed_attempts += 1;
            return Err(PortError::Unavailable("database down".into()));
        }
        let mut reject = lock(&self.reject_next);
        if *reject > 0 {
            *reject -= 1;
            return Err(PortError::Rejected("constraint violated".into()));
        }
        Ok(())
    }
}

impl CallStore for FakeStore {
    async fn status(
        &self,
        _key: CallKey,
        status: &'static str,
        _at: DateTime<Utc>,
    ) -> PortResult<()> {
        self.attempt()?;
        let mut log = lock(&self.log);
        log.statuses.push(status);
        log.ops.push(format!("status:{status}"));
        Ok(())
    }
    async fn provider_id(&self, _key: CallKey, id: ProviderCallId) -> PortResult<()> {
        self.attempt()?;
        let mut log = lock(&self.log);
        log.provider_id = Some(id);
        log.ops.push("provider_id".into());
        Ok(())
    }
    async fn turn(&self, _key: CallKey, turn: TurnRecord) -> PortResult<()> {
        self.attempt()?;
        let mut log = lock(&self.log);
        log.ops.push(format!("turn:{}", turn.seq));
        log.turns.push(turn);
        Ok(())
    }
    async fn requested(&self, _key: CallKey, request: CalleeRequest) -> PortResult<()> {
        let delay = *lock(&self.request_delay);
        tokio::time::sleep(delay).await;
        self.attempt()?;
        let mut log = lock(&self.log);
        log.requests.push(request);
        log.ops.push("request".into());
        log.request_stored_at.get_or_insert(Instant::now());
        Ok(())
    }
    async fn transfer_requested(&self, _key: CallKey, _at: DateTime<Utc>) -> PortResult<()> {
        self.attempt()?;
        lock(&self.log).ops.push("transfer_requested".into());
        Ok(())
    }
    async fn finish(
        &self,
        _key: CallKey,
        outcome: &str,
        reason: &str,
        _at: DateTime<Utc>,
    ) -> PortResult<()> {
        self.attempt()?;
        let mut log = lock(&self.log);
        log.finished = Some((outcome.into(), reason.into()));
        log.ops.push(format!("finish:{outcome}"));
        Ok(())
    }
}

pub struct Fakes;

impl CallPorts for Fakes {
    type Telephony = FakeTelephony;
    type Stt = FakeStt;
    type Llm = FakeLlm;
    type Tts = FakeTts;
    type Store = FakeStore;
    type Clock = TokioClock;
}

/// What the callee heard and when.
#[derive(Default)]
pub struct Heard {
    pub frames: Vec<(Instant, Vec<u8>)>,
    pub clears: Vec<Instant>,
}

/// A running call with its fakes.
pub struct Harness {
    pub call: ActorRef<CallMsg>,
    pub handle: tokio::task::JoinHandle<()>,
    pub telephony: Arc<FakeTelephony>,
    pub stt_sessions: Arc<Mutex<Vec<SttHandle>>>,
    pub stt: Vec<Arc<FakeStt>>,
    pub llm: Vec<Arc<FakeLlm>>,
    pub llm_requests: Arc<Mutex<Vec<(&'static str, ChatRequest)>>>,
    pub tts: Vec<Arc<FakeTts>>,
    pub tts_requests: Arc<Mutex<Vec<(&'static str, String)>>>,
    pub store: Arc<FakeStore>,
    pub reports: Arc<Mutex<Vec<CallReport>>>,
    pub callee: Option<mpsc::Sender<MediaIn>>,
    pub heard: Arc<Mutex<Heard>>,
}

pub fn key() -> CallKey {
    CallKey {
        tenant: TenantId::new(),
        campaign: CampaignId::new(),
        contact: ContactId::new(),
        call: CallId::new(),
        attempt: 1,
    }
}

impl Harness {
    /// A call with two providers per service ("primary", "fallback").
    pub async fn start(config: CallConfig) -> Harness {
        let stt_sessions = Arc::new(Mutex::new(Vec::new()));
        let llm_requests = Arc::new(Mutex::new(Vec::new()));
        let tts_requests = Arc::new(Mutex::new(Vec::new()));
        let stt = vec![
            Arc::new(FakeStt::new("primary", stt_sessions.clone())),
            Arc::new(FakeStt::new("fallback", stt_sessions.clone())),
        ];
        let llm = vec![
            Arc::new(FakeLlm::new("primary", llm_requests.clone())),
            Arc::new(FakeLlm::new("fallback", llm_requests.clone())),
        ];
        let tts = vec![
            Arc::new(FakeTts::new("primary", tts_requests.clone())),
            Arc::new(FakeTts::new("fallback", tts_requests.clone())),
        ];
        let telephony = Arc::new(FakeTelephony::default());
        let store = Arc::new(FakeStore::default());
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = reports.clone();
        let args = CallArgs::<Fakes> {
            key: key(),
            config,
            ports: Ports {
                telephony: telephony.clone(),
                stt: stt.clone(),
                llm: llm.clone(),
                tts: tts.clone(),
                store: store.clone(),
                clock: Arc::new(TokioClock),
            },
            report: Arc::new(move |r| lock(&sink).push(r)),
        };
        let (call, handle) = Actor::spawn(None, CallActor::<Fakes>::new(), args)
            .await
            .expect("call actor starts");
        Harness {
            call,
            handle,
            telephony,
            stt_sessions,
            stt,
            llm,
            llm_requests,
            tts,
            tts_requests,
            store,
            reports,
            callee: None,
            heard: Arc::new(Mutex::new(Heard::default())),
        }
    }

    /// Dial, answer, attach media; the callee's ears start listening.
    pub async fn answer(&mut self) {
        self.call.cast(CallMsg::Dial).expect("dial");
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.call
            .cast(CallMsg::Telephony(TelephonyEvent::Answered))
            .expect("answered");
        self.answer_media_only().await;
    }

    /// Attach media without dialling or answering (the test did that).
    pub async fn answer_media_only(&mut self) {
        let (in_tx, in_rx) = mpsc::channel(MEDIA_IN_CAPACITY);
        let (out_tx, mut out_rx) = mpsc::channel(MEDIA_OUT_CAPACITY);
        let heard = self.heard.clone();
        tokio::spawn(async move {
            while let Some(item) = out_rx.recv().await {
                let now = Instant::now();
                let mut h = lock(&heard);
                match item {
                    MediaOut::Audio(bytes) => h.frames.push((now, bytes)),
                    MediaOut::Clear => h.clears.push(now),
                    MediaOut::Mark(_) => {}
                }
            }
        });
        let (audio_tx, audio_rx) = oneshot::channel();
        self.call
            .cast(CallMsg::AttachMedia(MediaSession {
                inbound: MediaInbound::Inline(audio_tx),
                outbound: out_tx,
            }))
            .expect("media");
        tokio::spawn(async move {
            // A call that refuses the socket drops the sender.
            if let Ok(audio) = audio_rx.await {
                socket(in_rx, audio).await;
            }
        });
        self.callee = Some(in_tx);
    }

    /// The callee speaks (loud frames, paced at 20 ms) for `len`.
    pub async fn speak(&self, len: Duration) {
        let tx = self.callee.as_ref().expect("media up");
        let frames = (len.as_millis() / 20) as usize;
        for _ in 0..frames {
            let _ = tx.send(MediaIn::Audio(loud_frame())).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The callee is silent (quiet frames) for `len`.
    pub async fn silence(&self, len: Duration) {
        let tx = self.callee.as_ref().expect("media up");
        let frames = (len.as_millis() / 20) as usize;
        for _ in 0..frames {
            let _ = tx.send(MediaIn::Audio(vec![0u8; 640])).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// STT reports a final transcript on the newest session.
    pub async fn transcript(&self, text: &str) {
        let events = lock(&self.stt_sessions)
            .last()
            .expect("an STT session")
            .events
            .clone();
        let _ = events
            .send(SttEvent::Final {
                text: text.into(),
                speech_final: true,
            })
            .await;
    }

    pub fn turns(&self) -> Vec<TurnRecord> {
        lock(&self.store.log).turns.clone()
    }

    /// The outcome the call was finished with, once it was.
    pub fn outcome(&self) -> Option<String> {
        lock(&self.store.log).finished.as_ref().map(|f| f.0.clone())
    }

    pub fn frames_heard(&self) -> usize {
        lock(&self.heard).frames.len()
    }
}

/// The fake media socket's reading side, as the real socket task does it:
/// each item from the callee goes into the call's [`CallerAudio`]; a new
/// STT session gets the audio held meanwhile; the call gone ends it.
/// Dropping `audio` tells the call the media closed.
pub async fn socket(mut inbound: mpsc::Receiver<MediaIn>, mut audio: CallerAudio) {
    let mut changes = audio.stt_changes();
    loop {
        tokio::select! {
            item = inbound.recv() => match item {
                None => break,
                Some(item) => audio.push(item),
            },
            changed = changes.next() => {
                if changed {
                    audio.stt_changed();
                } else {
                    audio.call_gone();
                    break;
                }
            }
        }
    }
}

/// 20 ms of a loud 440 Hz tone at 16 kHz.
pub fn loud_frame() -> Vec<u8> {
    (0..320)
        .flat_map(|i| {
            let v =
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16000.0).sin()) as i16;
            v.to_le_bytes()
        })
        .collect()
}

pub fn config() -> CallConfig {
    CallConfig::new(
        "+14155550123",
        "+14155550100",
        "You are Ada.",
        "Hello, this is Ada from Acme.",
    )
}
