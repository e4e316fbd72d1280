//! Fakes of every port a call uses, with shared logs the tests inspect.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorRef};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::call::{CallActor, CallArgs, CallConfig, CallMsg, CallPorts, CallReport, Ports};
use crate::ids::{CallId, CampaignId, ContactId, TenantId};
use crate::ports::*;

/// Locks a test mutex (a poisoned one means a test already failed).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
pub struct TelephonyLog {
    pub placed: Vec<PlaceCall>,
    pub hung_up: Vec<ProviderCallId>,
}

#[derive(Default)]
pub struct FakeTelephony {
    pub log: Mutex<TelephonyLog>,
}

impl TelephonyPort for FakeTelephony {
    async fn place_call(&self, req: PlaceCall) -> PortResult<ProviderCallId> {
        lock(&self.log).placed.push(req);
        Ok(ProviderCallId("prov-1".into()))
    }
    async fn hang_up(&self, id: ProviderCallId) -> PortResult<()> {
        lock(&self.log).hung_up.push(id);
        Ok(())
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
    pub sessions: Arc<Mutex<Vec<SttHandle>>>,
}

impl FakeStt {
    pub fn new(name: &'static str, sessions: Arc<Mutex<Vec<SttHandle>>>) -> Self {
        Self {
            name,
            fail_opens: Mutex::new(0),
            sessions,
        }
    }
}

impl SttPort for FakeStt {
    async fn open(&self, _cfg: SttConfig) -> PortResult<SttSession> {
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
}

#[derive(Default)]
pub struct FakeStore {
    pub log: Mutex<StoreLog>,
}

impl CallStore for FakeStore {
    async fn status(
        &self,
        _key: CallKey,
        status: &'static str,
        _at: DateTime<Utc>,
    ) -> PortResult<()> {
        lock(&self.log).statuses.push(status);
        Ok(())
    }
    async fn provider_id(&self, _key: CallKey, id: ProviderCallId) -> PortResult<()> {
        lock(&self.log).provider_id = Some(id);
        Ok(())
    }
    async fn turn(&self, _key: CallKey, turn: TurnRecord) -> PortResult<()> {
        lock(&self.log).turns.push(turn);
        Ok(())
    }
    async fn requested(&self, _key: CallKey, request: CalleeRequest) -> PortResult<()> {
        lock(&self.log).requests.push(request);
        Ok(())
    }
    async fn finish(
        &self,
        _key: CallKey,
        outcome: &str,
        reason: &str,
        _at: DateTime<Utc>,
    ) -> PortResult<()> {
        lock(&self.log).finished = Some((outcome.into(), reason.into()));
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
        self.call
            .cast(CallMsg::AttachMedia(MediaSession {
                inbound: MediaInbound::Channel(in_rx),
                outbound: out_tx,
            }))
            .expect("media");
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

    pub fn frames_heard(&self) -> usize {
        lock(&self.heard).frames.len()
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
