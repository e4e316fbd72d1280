//! A whole call through every emulator: talky's dialer places it with the
//! Vonage client (or the Twilio client, for a campaign whose `telephony`
//! says so), the telephony emulator rings, posts webhooks (callbacks) and
//! opens the media socket; the callee persona speaks in the in-band code;
//! Deepgram, the LLM and ElevenLabs emulators answer; what the callee said
//! and heard must match what talky stored.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use talky::config::Secret;
use talky::providers::telephony::TelephonyProvider;
use talky_actors::campaign_actor::CampaignConfig;
use talky_actors::dialer::DialerConfig;
use talky_sim::aura::{AuraSim, AuraSimConfig};
use talky_sim::callee::Heard;
use talky_sim::deepgram::{DeepgramSim, DeepgramSimConfig, FailHandshake};
use talky_sim::elevenlabs::{ElevenLabsSim, ElevenLabsSimConfig};
use talky_sim::llm::{FailRule, LlmSim, LlmSimConfig};
use talky_sim::twilio::{CallbackKind, TwilioSim, TwilioSimConfig};
use talky_sim::vonage::persona::Personas;
use talky_sim::vonage::{VonageSim, VonageSimConfig};
use talky_sim::whisper::{WhisperSim, WhisperSimConfig};

use crate::support::{TestApp, test_config};

const APP_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";

fn testdata(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/providers/vonage/testdata")
        .join(file)
}

/// Every emulator, and talky running its dialer against them (both
/// telephony emulators configured: a campaign's `telephony` chooses).
pub(crate) struct World {
    pub(crate) vonage: talky_sim::vonage::VonageSimHandle,
    pub(crate) twilio: talky_sim::twilio::TwilioSimHandle,
    pub(crate) app: TestApp,
    pub(crate) _keep: (
        talky_sim::deepgram::DeepgramSimHandle,
        talky_sim::llm::LlmSimHandle,
        talky_sim::elevenlabs::ElevenLabsSimHandle,
        talky_sim::whisper::WhisperSimHandle,
        talky_sim::aura::AuraSimHandle,
    ),
}

/// Which emulators served the speech: what each STT and TTS provider
/// answered successfully (a socket upgraded or a request answered 200)
/// and the text each TTS spoke.
#[derive(Debug)]
pub(crate) struct Served {
    /// Deepgram sockets that received audio.
    pub(crate) deepgram_sockets_with_audio: usize,
    /// Whisper transcriptions answered 200.
    pub(crate) whisper_transcriptions: usize,
    /// Text spoken by ElevenLabs (answered 200 or upgraded).
    pub(crate) elevenlabs_spoke: Vec<String>,
    /// Text spoken by Aura (answered 200 or upgraded).
    pub(crate) aura_spoke: Vec<String>,
}

impl Served {
    /// What the emulators of a [`World`] (its `_keep`) served so far.
    pub(crate) fn by(
        (deepgram, _, elevenlabs, whisper, aura): &(
            talky_sim::deepgram::DeepgramSimHandle,
            talky_sim::llm::LlmSimHandle,
            talky_sim::elevenlabs::ElevenLabsSimHandle,
            talky_sim::whisper::WhisperSimHandle,
            talky_sim::aura::AuraSimHandle,
        ),
    ) -> Served {
        let ok = |status: u16| status == 200 || status == 101;
        Served {
            deepgram_sockets_with_audio: deepgram
                .sessions()
                .iter()
                .filter(|s| s.audio_frames > 0)
                .count(),
            whisper_transcriptions: whisper.requests().iter().filter(|r| ok(r.status)).count(),
            elevenlabs_spoke: elevenlabs
                .requests()
                .into_iter()
                .filter(|r| ok(r.status) && !r.text.trim().is_empty())
                .map(|r| r.text)
                .collect(),
            aura_spoke: aura
                .requests()
                .into_iter()
                .filter(|r| ok(r.status) && !r.text.trim().is_empty())
                .map(|r| r.text)
                .collect(),
        }
    }
}

/// The built-in persona `name`, answering the (valid) number `phone`.
pub(crate) fn persona_for(personas: &mut Personas, name: &str, phone: &str) {
    let mut p = Personas::builtin().get(name).cloned().expect("persona");
    p.numbers = vec![phone.trim_start_matches('+').to_string()];
    personas.insert(p);
}

pub(crate) async fn world(personas: Personas) -> World {
    world_with(
        personas,
        DeepgramSimConfig::default(),
        ElevenLabsSimConfig::default(),
    )
    .await
}

/// Like [`world`], with the primary STT and TTS emulators configured
/// (e.g. failing); Whisper and Aura are always there as the fallbacks.
pub(crate) async fn world_with(
    personas: Personas,
    deepgram: DeepgramSimConfig,
    tts: ElevenLabsSimConfig,
) -> World {
    world_tweaked(personas, deepgram, tts, |_| {}, |_| {}).await
}

/// Like [`world_with`], with the Vonage emulator's knobs and talky's
/// configuration (server and dialer alike) adjusted first.
pub(crate) async fn world_tweaked(
    personas: Personas,
    deepgram: DeepgramSimConfig,
    tts: ElevenLabsSimConfig,
    sim: impl FnOnce(&mut VonageSimConfig),
    config: impl Fn(&mut talky::config::Config),
) -> World {
    world_full(personas, deepgram, tts, sim, |_| {}, config).await
}

/// Like [`world_tweaked`], with the Twilio emulator's knobs adjusted too.
/// `config` runs after the emulators' settings are in, so it may change
/// them (e.g. point Vonage at a closed port).
pub(crate) async fn world_full(
    personas: Personas,
    deepgram: DeepgramSimConfig,
    tts: ElevenLabsSimConfig,
    sim: impl FnOnce(&mut VonageSimConfig),
    twilio_sim: impl FnOnce(&mut TwilioSimConfig),
    config: impl Fn(&mut talky::config::Config),
) -> World {
    let mut sim_cfg = VonageSimConfig {
        application_id: APP_ID.into(),
        public_key_pem: std::fs::read_to_string(testdata("test_public.pem")).expect("public key"),
        personas: personas.clone(),
        ..VonageSimConfig::default()
    };
    sim(&mut sim_cfg);
    let vonage = VonageSim::start(sim_cfg).await.expect("vonage sim");
    let mut twilio_cfg = TwilioSimConfig {
        personas,
        ..TwilioSimConfig::default()
    };
    twilio_sim(&mut twilio_cfg);
    let twilio = TwilioSim::start(twilio_cfg).await.expect("twilio sim");
    let deepgram = DeepgramSim::start(deepgram).await.expect("deepgram sim");
    let llm = LlmSim::start(LlmSimConfig::default())
        .await
        .expect("llm sim");
    let tts = ElevenLabsSim::start(tts).await.expect("tts sim");
    let whisper = WhisperSim::start(WhisperSimConfig::default())
        .await
        .expect("whisper sim");
    let aura = AuraSim::start(AuraSimConfig {
        api_key: deepgram.api_key(),
        ..AuraSimConfig::default()
    })
    .await
    .expect("aura sim");

    // The server (callbacks, media sockets, campaign validation) and the
    // dialer see the same providers.
    let providers = |cfg: &mut talky::config::Config| {
        cfg.providers.enabled = true;
        cfg.providers.vonage.application_id = Some(APP_ID.into());
        cfg.providers.vonage.private_key_file = Some(testdata("test_private.pem"));
        cfg.providers.vonage.api_base_url = Some(vonage.base_url());
        cfg.providers.twilio.account_sid = Some(twilio.account_sid());
        cfg.providers.twilio.auth_token = Secret::new(twilio.auth_token());
        cfg.providers.twilio.api_base_url = Some(twilio.base_url());
        cfg.providers.deepgram.base_url = Some(deepgram.base_url());
        cfg.providers.deepgram.api_key = Secret::new(deepgram.api_key());
        cfg.providers.llm.base_url = Some(llm.base_url());
        cfg.providers.llm.api_key = Secret::new(llm.api_key());
        cfg.providers.elevenlabs.base_url = Some(tts.base_url());
        cfg.providers.elevenlabs.api_key = Secret::new(tts.api_key());
        cfg.providers.whisper.base_url = Some(whisper.base_url());
        cfg.providers.whisper.api_key = Some(Secret::new(whisper.api_key()));
        cfg.providers.aura.base_url = Some(aura.base_url());
        config(cfg);
    };
    let app = TestApp::start_with(&providers).await;
    let mut cfg = test_config(&app.db.url);
    providers(&mut cfg);
    cfg.server.public_url = Some(app.base.clone());
    let ports = talky::runtime::real_ports(&cfg, app.live_pool(), app.server().ctx.live.clone())
        .expect("ports");
    app.server()
        .run_dialer(
            ports,
            DialerConfig {
                calls_per_second: 20.0,
                ..DialerConfig::default()
            },
            CampaignConfig {
                tick: Duration::from_millis(200),
                ..CampaignConfig::default()
            },
            &format!("dialer-{}", uuid::Uuid::new_v4()),
        )
        .await
        .expect("dialer");
    World {
        vonage,
        twilio,
        app,
        _keep: (deepgram, llm, tts, whisper, aura),
    }
}

/// One call as the telephony emulator that carried it saw it, whichever
/// emulator that was.
#[derive(Clone, Debug)]
pub(crate) struct Leg {
    /// The provider's id: Vonage's `uuid`, Twilio's `CallSid`.
    pub(crate) id: String,
    /// The number called, digits only.
    pub(crate) to: String,
    /// Agent utterances the callee decoded.
    pub(crate) heard: Vec<Heard>,
    /// `clear`s talky sent (its queued audio dropped on a barge-in).
    pub(crate) clears: usize,
    /// When the provider told talky the machine's greeting was over, the
    /// moment to speak: Vonage's `beep_start` event, Twilio's
    /// asynchronous AMD callback (`machine_end_*`).
    pub(crate) tone_at: Option<DateTime<Utc>>,
    /// Requests the emulator made to talky (webhooks, callbacks, TwiML
    /// fetches) that talky did not answer 2xx: `(what, status)`.
    pub(crate) unanswered: Vec<(String, Option<u16>)>,
    /// What went wrong on the media socket, as the emulator logged it.
    pub(crate) media_errors: Vec<String>,
    /// The leg is over at the provider (its final status posted).
    pub(crate) ended: bool,
    /// Events posted to talky (Vonage webhooks; Twilio status and AMD
    /// callbacks, not the TwiML fetch), duplicates included.
    pub(crate) posted: usize,
    /// The ring time talky asked for (Vonage `ringing_timer`, Twilio
    /// `Timeout`), seconds.
    pub(crate) ring_secs: Option<u64>,
}

impl World {
    /// The calls `provider`'s emulator carried, in creation order.
    pub(crate) fn legs(&self, provider: TelephonyProvider) -> Vec<Leg> {
        match provider {
            TelephonyProvider::Vonage => self
                .vonage
                .calls()
                .into_iter()
                .map(|r| Leg {
                    tone_at: r
                        .webhooks
                        .iter()
                        .find(|w| w.body["sub_state"] == "beep_start")
                        .map(|w| w.at),
                    unanswered: r
                        .webhooks
                        .iter()
                        .filter(|w| !w.http_status.is_some_and(|s| (200..300).contains(&s)))
                        .map(|w| (w.status.clone(), w.http_status))
                        .collect(),
                    media_errors: r
                        .answer_error
                        .clone()
                        .into_iter()
                        .chain(
                            (r.frames_bad_size > 0)
                                .then(|| format!("{} frames not 20 ms", r.frames_bad_size)),
                        )
                        .collect(),
                    ended: r.ended,
                    posted: r.webhooks.len(),
                    ring_secs: r.request["ringing_timer"].as_u64(),
                    id: r.uuid,
                    to: r.to.trim_start_matches('+').to_string(),
                    heard: r.heard,
                    clears: r.clears.len(),
                })
                .collect(),
            TelephonyProvider::Twilio => self
                .twilio
                .calls()
                .into_iter()
                .map(|r| Leg {
                    tone_at: r
                        .callbacks
                        .iter()
                        .find(|c| {
                            c.kind == CallbackKind::Amd && c.status().starts_with("machine_end")
                        })
                        .map(|c| c.at),
                    unanswered: r
                        .callbacks
                        .iter()
                        .filter(|c| !c.http_status.is_some_and(|s| (200..300).contains(&s)))
                        .map(|c| (c.status(), c.http_status))
                        .collect(),
                    media_errors: r
                        .errors
                        .iter()
                        .map(|e| format!("{}: {}", e.code, e.message))
                        .chain(r.twiml_error.clone())
                        .chain(
                            (r.media_bad_size > 0)
                                .then(|| format!("{} media payloads not 20 ms", r.media_bad_size)),
                        )
                        .collect(),
                    ended: r.ended,
                    ring_secs: talky_sim::twilio::wire::first(&r.request, "Timeout")
                        .and_then(|t| t.parse().ok()),
                    posted: r
                        .callbacks
                        .iter()
                        .filter(|c| c.kind != CallbackKind::Twiml)
                        .count(),
                    id: r.sid,
                    to: r.to.trim_start_matches('+').to_string(),
                    heard: r.heard,
                    clears: r.clears.len(),
                })
                .collect(),
        }
    }

    /// Asserts that `provider` carried exactly these stored calls, one leg
    /// each, and the other telephony emulator none at all: every row names
    /// `provider` with the id of one of its emulator's calls, and that
    /// emulator created no other call. Every leg ends at the provider
    /// (none left up once talky finished its call), and talky answered
    /// every request the provider made about it.
    pub(crate) async fn assert_carried_by(&self, provider: TelephonyProvider, calls: &[Value]) {
        let other = match provider {
            TelephonyProvider::Vonage => TelephonyProvider::Twilio,
            TelephonyProvider::Twilio => TelephonyProvider::Vonage,
        };
        assert_eq!(
            self.legs(other).len(),
            0,
            "{other} placed none of the calls"
        );
        let (legs, _) = crate::support::eventually(
            "every leg ended at the provider",
            Duration::from_secs(15),
            || async { Some(self.legs(provider)).filter(|ls| ls.iter().all(|l| l.ended)) },
        )
        .await;
        for c in calls {
            assert_eq!(c["provider"], provider.as_str(), "{c}");
        }
        let mut stored: Vec<&str> = calls
            .iter()
            .filter_map(|c| c["provider_call_id"].as_str())
            .collect();
        assert_eq!(
            stored.len(),
            calls.len(),
            "every call has its leg: {calls:?}"
        );
        stored.sort_unstable();
        let mut created: Vec<&str> = legs.iter().map(|l| l.id.as_str()).collect();
        created.sort_unstable();
        assert_eq!(
            stored, created,
            "one {provider} leg per stored call, none other"
        );
        // talky took every request the provider made and spoke its
        // media protocol without a fault.
        for leg in &legs {
            assert!(
                leg.unanswered.is_empty(),
                "{}: {:?}",
                leg.id,
                leg.unanswered
            );
            assert!(
                leg.media_errors.is_empty(),
                "{}: {:?}",
                leg.id,
                leg.media_errors
            );
        }
    }
}

/// The body's telephony: the campaign places its calls through `provider`.
pub(crate) fn via(provider: TelephonyProvider) -> impl Fn(&mut Value) {
    move |b: &mut Value| b["telephony"] = json!(provider.as_str())
}

/// A campaign (always open, one attempt) with these contacts, started.
async fn campaign(app: &TestApp, phones: &[&str]) -> (String, String) {
    campaign_with(app, phones, |_| {}).await
}

/// Like [`campaign`], with the body adjusted by `tweak` first.
pub(crate) async fn campaign_with(
    app: &TestApp,
    phones: &[&str],
    tweak: impl FnOnce(&mut Value),
) -> (String, String) {
    let (_, key) = app.tenant("acme").await;
    let id = campaign_of(app, &key, phones, tweak).await;
    (id, key)
}

/// Like [`campaign_with`], for the tenant of `key`; returns the campaign id.
pub(crate) async fn campaign_of(
    app: &TestApp,
    key: &str,
    phones: &[&str],
    tweak: impl FnOnce(&mut Value),
) -> String {
    let key = key.to_string();
    let mut body = crate::support::campaign_body("e2e");
    body["calling_window"] = json!({ "start": "00:00", "end": "23:59",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] });
    body["max_attempts"] = json!(1);
    tweak(&mut body);
    let (_, c) = app.post("/api/v1/campaigns", &key, &body).await;
    let id = c["id"].as_str().expect("id").to_string();
    let csv = std::iter::once("phone,timezone".to_string())
        .chain(phones.iter().map(|p| format!("{p},Europe/London")))
        .collect::<Vec<_>>()
        .join("\n");
    let (_, report) = app
        .upload(
            &format!("/api/v1/campaigns/{id}/contacts"),
            &key,
            "text/csv",
            csv,
        )
        .await;
    assert_eq!(report["accepted"], phones.len(), "{report}");
    let (status, _) = app
        .post_empty(&format!("/api/v1/campaigns/{id}/start"), &key)
        .await;
    assert_eq!(status, 200);
    id
}

/// The campaign's calls once all are finished (bounded wait).
pub(crate) async fn finished_calls(app: &TestApp, key: &str, id: &str, n: usize) -> Vec<Value> {
    let mut calls = Vec::new();
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, list) = app
            .get(&format!("/api/v1/calls?campaign_id={id}"), key)
            .await;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if items.len() == n && items.iter().all(|c| c["status"] == "finished") {
            calls = items;
            break;
        }
    }
    let mut out = Vec::new();
    for c in calls {
        let (_, detail) = app
            .get(
                &format!("/api/v1/calls/{}", c["id"].as_str().unwrap_or("")),
                key,
            )
            .await;
        out.push(detail);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interested_callee_talks_with_the_agent() {
    interested_callee_talks(TelephonyProvider::Vonage).await;
}

/// The interested persona's conversation, placed through `provider`.
pub(crate) async fn interested_callee_talks(provider: TelephonyProvider) {
    let world = world(Personas::builtin()).await;
    let app = &world.app;
    let (id, key) = campaign_with(app, &["+442079460958"], via(provider)).await;
    let calls = finished_calls(app, &key, &id, 1).await;
    let call = calls.first().cloned().unwrap_or(Value::Null);
    assert_eq!(call["status"], "finished", "the call ended: {call}");
    let texts: Vec<(String, String)> = crate::personas::turns(&call)
        .into_iter()
        .map(|(speaker, text, _)| (speaker, text))
        .collect();
    assert!(texts.len() >= 4, "{texts:?}");
    assert_eq!(
        texts[0],
        ("agent".to_string(), "Hello, this is Ada.".to_string()),
        "{texts:?}"
    );
    assert_eq!(
        texts[1],
        ("user".to_string(), "Yes, I am interested.".to_string()),
        "{texts:?}"
    );
    assert_eq!(texts[2].0, "agent");
    assert!(
        texts[2].1.contains("Yes, I am interested"),
        "the LLM echo: {texts:?}"
    );
    // What the callee heard is what talky recorded as heard.
    world.assert_carried_by(provider, &calls).await;
    let legs = world.legs(provider);
    let heard: Vec<String> = legs[0].heard.iter().map(|h| h.text.clone()).collect();
    assert_eq!(
        heard.first().map(String::as_str),
        Some("Hello, this is Ada."),
        "{heard:?}"
    );
    assert!(
        call["events"].as_array().is_some_and(|e| e.len() >= 3),
        "webhooks stored: {}",
        call["events"]
    );
    // The primaries served the call, the fallbacks were never needed.
    let served = Served::by(&world._keep);
    assert!(served.deepgram_sockets_with_audio >= 1, "{served:?}");
    assert!(
        served
            .elevenlabs_spoke
            .iter()
            .any(|t| t.contains("Hello, this is Ada.")),
        "ElevenLabs spoke the greeting: {served:?}"
    );
    assert_eq!(served.whisper_transcriptions, 0, "{served:?}");
    assert!(served.aura_spoke.is_empty(), "{served:?}");
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_no_answer_and_voicemail_end_without_a_conversation() {
    no_conversation_outcomes(TelephonyProvider::Vonage).await;
}

/// Busy, no answer (the whole ring time) and a machine, placed through
/// `provider`: each ends with its outcome and no conversation.
pub(crate) async fn no_conversation_outcomes(provider: TelephonyProvider) {
    let (busy, none, machine) = ("+442079460961", "+442079460962", "+442079460963");
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "busy", busy);
    persona_for(&mut personas, "no_answer", none);
    persona_for(&mut personas, "voicemail", machine);
    let world = world(personas).await;
    let app = &world.app;
    // The unanswered line rings for the campaign's ring time, the
    // shortest allowed.
    let (id, key) = campaign_with(app, &[busy, none, machine], |b| {
        via(provider)(b);
        b["ring_timeout_secs"] = json!(15);
    })
    .await;
    let calls = finished_calls(app, &key, &id, 3).await;
    assert_eq!(calls.len(), 3, "all three calls finished");
    world.assert_carried_by(provider, &calls).await;
    for leg in world.legs(provider) {
        assert_eq!(leg.ring_secs, Some(15), "{leg:?}");
    }
    let outcome = |phone: &str| {
        calls
            .iter()
            .find(|c| c["phone"] == phone)
            .map(|c| c["outcome"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(outcome(busy), "busy");
    assert_eq!(outcome(none), "no_answer");
    assert_eq!(
        outcome(machine),
        "machine",
        "the campaign hangs up on machines"
    );
    // One attempt each: the contacts are final, with the outcome recorded.
    let (_, page) = app
        .get(&format!("/api/v1/campaigns/{id}/contacts"), &key)
        .await;
    let outcomes: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["last_outcome"].as_str().unwrap_or(""))
        .collect();
    assert!(
        outcomes.contains(&"busy")
            && outcomes.contains(&"no_answer")
            && outcomes.contains(&"machine"),
        "{outcomes:?}"
    );
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_primaries_hand_the_call_to_whisper_and_aura() {
    // Deepgram refuses every connection and ElevenLabs every request: the
    // call's STT and TTS children fail, restart and move to their
    // fallbacks, and the conversation still happens, word for word.
    let World {
        vonage, app, _keep, ..
    } = world_with(
        Personas::builtin(),
        DeepgramSimConfig {
            fail_handshake: Some(FailHandshake {
                status: 503,
                next: 1000,
            }),
            ..DeepgramSimConfig::default()
        },
        ElevenLabsSimConfig {
            fail: Some(FailRule {
                status: 503,
                next: 1000,
                ..FailRule::default()
            }),
            ..ElevenLabsSimConfig::default()
        },
    )
    .await;
    let (id, key) = campaign(&app, &["+442079460959"]).await;
    let calls = finished_calls(&app, &key, &id, 1).await;
    let call = calls.first().cloned().unwrap_or(Value::Null);
    let texts: Vec<(String, String)> = crate::personas::turns(&call)
        .into_iter()
        .map(|(speaker, text, _)| (speaker, text))
        .collect();
    assert!(texts.len() >= 3, "{call}");
    assert_eq!(
        texts[0],
        ("agent".into(), "Hello, this is Ada.".into()),
        "spoken by Aura: {texts:?}"
    );
    assert_eq!(
        texts[1],
        ("user".into(), "Yes, I am interested.".into()),
        "heard by Whisper: {texts:?}"
    );
    let heard: Vec<String> = vonage.calls()[0]
        .heard
        .iter()
        .map(|h| h.text.clone())
        .collect();
    assert_eq!(
        heard.first().map(String::as_str),
        Some("Hello, this is Ada.")
    );
    // The fallbacks served the call, the primaries never did.
    let served = Served::by(&_keep);
    assert!(
        served.whisper_transcriptions >= 2,
        "Whisper transcribed the turns: {served:?}"
    );
    assert!(
        served
            .aura_spoke
            .iter()
            .any(|t| t.contains("Hello, this is Ada.")),
        "Aura spoke the greeting: {served:?}"
    );
    assert_eq!(served.deepgram_sockets_with_audio, 0, "{served:?}");
    assert!(served.elevenlabs_spoke.is_empty(), "{served:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_reordered_webhooks_change_nothing() {
    duplicated_and_reordered_events(TelephonyProvider::Vonage).await;
}

/// Every webhook (callback) of `provider` posted twice and consecutive
/// ones swapped: each event is stored once, and the calls end as they
/// would have.
pub(crate) async fn duplicated_and_reordered_events(provider: TelephonyProvider) {
    let (talks, busy) = ("+442079460981", "+442079460982");
    let mut personas = Personas::builtin();
    crate::e2e::persona_for(&mut personas, "interested", talks);
    crate::e2e::persona_for(&mut personas, "busy", busy);
    let world = world_full(
        personas,
        DeepgramSimConfig::default(),
        ElevenLabsSimConfig::default(),
        |v| {
            v.duplicate_webhooks = true;
            v.reorder_webhooks = true;
        },
        |t| {
            t.duplicate_callbacks = true;
            t.reorder_callbacks = true;
        },
        |_| {},
    )
    .await;
    let app = &world.app;
    let (id, key) = campaign_with(app, &[talks, busy], via(provider)).await;
    let calls = finished_calls(app, &key, &id, 2).await;
    assert_eq!(calls.len(), 2, "both calls finished");
    world.assert_carried_by(provider, &calls).await;
    let call = |phone: &str| {
        calls
            .iter()
            .find(|c| c["phone"] == phone)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(call(busy)["outcome"], "busy", "{}", call(busy));
    let talked = call(talks);
    assert_eq!(talked["outcome"], "completed", "{talked}");
    let users: Vec<String> = crate::personas::turns(&talked)
        .into_iter()
        .filter(|(s, _, _)| s == "user")
        .map(|(_, t, _)| t)
        .collect();
    assert_eq!(users, ["Yes, I am interested.", "Great, thank you. Bye."]);
    let legs = world.legs(provider);
    for c in [&talked, &call(busy)] {
        let stored: Vec<&str> = c["events"]
            .as_array()
            .map(|es| es.iter().filter_map(|e| e["status"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            stored.len() >= 2,
            "the call's events were stored: {stored:?}"
        );
        let mut unique = stored.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            stored.len(),
            unique.len(),
            "each event stored once: {stored:?}"
        );
        let posted = legs
            .iter()
            .find(|r| Some(r.id.as_str()) == c["provider_call_id"].as_str())
            .map(|r| r.posted)
            .unwrap_or(0);
        assert_eq!(posted, 2 * stored.len(), "every webhook was posted twice");
    }
    world.app.stop().await;
}

/// Another tenant's 16 uploads trickling one byte a second (holding their
/// requests open for the whole call) do not slow a live call: it runs to
/// its end, every turn is stored, and each agent reply comes as fast as
/// the emulated pipeline allows (about 0.8 s; a call that waited on the
/// database for its media socket, webhooks or records would show seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_keeps_its_pace_while_another_tenants_uploads_stall() {
    let World {
        vonage, app, _keep, ..
    } = world_tweaked(
        Personas::builtin(),
        DeepgramSimConfig::default(),
        ElevenLabsSimConfig::default(),
        |_| {},
        |c| {
            c.database.pool_size = 4;
            c.server.body_read_timeout_ms = 60_000;
        },
    )
    .await;
    let (_, other) = app.tenant("other").await;
    let theirs = app.campaign(&other, "theirs").await;
    let addr = app.server().addr;
    let uploads: Vec<_> = (0..16)
        .map(|_| {
            tokio::spawn(crate::contacts::trickle_upload(
                addr,
                format!("/api/v1/campaigns/{theirs}/contacts"),
                other.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (id, key) = campaign(&app, &["+442079460958"]).await;
    let calls = finished_calls(&app, &key, &id, 1).await;
    let call = calls.first().cloned().unwrap_or(Value::Null);
    assert_eq!(call["outcome"], "completed", "{call}");
    let turns = call["turns"].as_array().cloned().unwrap_or_default();
    assert!(turns.len() >= 4, "every turn stored: {call}");
    let replies: Vec<i64> = turns
        .iter()
        .filter(|t| t["speaker"] == "agent")
        .filter_map(|t| t["latency"]["voice_to_voice_ms"].as_i64())
        .collect();
    assert!(!replies.is_empty(), "{call}");
    assert!(
        replies.iter().all(|ms| *ms < 3_000),
        "replies kept their pace: {replies:?}"
    );
    assert!(
        uploads.iter().all(|u| !u.is_finished()),
        "the uploads were still stalled throughout"
    );
    for u in uploads {
        u.abort();
    }
    drop(vonage);
    app.stop().await;
}
