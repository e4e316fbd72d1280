//! Whole campaigns over Twilio: talky's Twilio client places the calls on
//! the Twilio emulator, which posts signed status and AMD callbacks and
//! opens the `<Connect><Stream>` media socket with the persona on the
//! line. The persona bodies are those of `super::personas` and
//! `super::e2e`, run with the campaign's `telephony` set to `twilio`; each
//! also checks that the rows name `twilio` and that the Vonage emulator
//! placed nothing.
//!
//! And the failover chain: a `vonage_then_twilio` campaign whose Vonage
//! provably holds no leg (its port refuses connections; its API refuses
//! our credentials) completes on Twilio with one leg per attempt.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use talky::providers::telephony::TelephonyProvider;
use talky_sim::deepgram::DeepgramSimConfig;
use talky_sim::elevenlabs::ElevenLabsSimConfig;
use talky_sim::vonage::VonageSimConfig;
use talky_sim::vonage::persona::Personas;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::e2e::{World, campaign_with, finished_calls, persona_for, world_full};
use crate::{e2e, personas};

const TWILIO: TelephonyProvider = TelephonyProvider::Twilio;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_an_interested_callee_talks_with_the_agent() {
    e2e::interested_callee_talks(TWILIO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_busy_no_answer_and_voicemail_end_without_a_conversation() {
    e2e::no_conversation_outcomes(TWILIO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_declines_removals_and_interruptions_are_stored_as_they_happened() {
    personas::declines_removals_and_interruptions(TWILIO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_a_silent_callee_is_reprompted_then_hung_up_on() {
    personas::silent_callee_reprompted(TWILIO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_busy_and_unanswered_lines_are_retried_up_to_max_attempts() {
    personas::busy_and_unanswered_lines_retried(TWILIO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_a_voicemail_gets_the_campaign_message_after_the_tone() {
    personas::voicemail_gets_the_message(TWILIO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_duplicated_and_reordered_callbacks_change_nothing() {
    e2e::duplicated_and_reordered_events(TWILIO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_a_create_call_answered_after_the_client_timeout_is_one_leg() {
    // The emulator starts every call at once but answers its create-call
    // only after the client gave up on it: talky learns each CallSid from
    // the call's callbacks and never dials the contact again meanwhile.
    let (talks, busy) = ("+442079460993", "+442079460994");
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "interested", talks);
    persona_for(&mut personas, "busy", busy);
    let world = world_full(
        personas,
        DeepgramSimConfig::default(),
        ElevenLabsSimConfig::default(),
        |_| {},
        |t| t.create_response_delay = Duration::from_secs(6),
        |c| c.providers.twilio.request_timeout_ms = Some(2_000),
    )
    .await;
    let app = &world.app;
    let (id, key) = campaign_with(app, &[talks, busy], e2e::via(TWILIO)).await;
    let calls = finished_calls(app, &key, &id, 2).await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    world.assert_carried_by(TWILIO, &calls).await;
    let outcome = |phone: &str| personas::by_phone(&calls, phone)["outcome"].clone();
    assert_eq!(outcome(talks), "completed", "{calls:?}");
    assert_eq!(outcome(busy), "busy", "{calls:?}");
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_a_recorded_call_holds_both_sides() {
    // The Twilio stream's 8 kHz μ-law, both ways, recorded as the call
    // was: the callee on the left, the agent on the right, each decoding
    // to what the persona said and heard.
    let talks = "+442079460995";
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "interested", talks);
    let world = e2e::world(personas).await;
    let app = &world.app;
    let (id, key) = campaign_with(app, &[talks], |b| {
        e2e::via(TWILIO)(b);
        b["recording_enabled"] = json!(true);
    })
    .await;
    let calls = finished_calls(app, &key, &id, 1).await;
    world.assert_carried_by(TWILIO, &calls).await;
    let call = calls[0]["id"].as_str().unwrap_or_default().to_string();
    let body = crate::recording::wait_ready(app, &call, &key).await;
    let (left, right) = crate::recording::check_file(&std::env::temp_dir(), &body);
    let leg = &world.legs(TWILIO)[0];
    let record = world.twilio.call(&leg.id).expect("record");
    let letters = |t: &str| personas::words(t).concat();
    let said: Vec<&str> = record.said.iter().map(|s| s.text.as_str()).collect();
    let heard: Vec<&str> = leg.heard.iter().map(|h| h.text.as_str()).collect();
    assert_eq!(letters(&left), letters(&said.join(" ")), "the callee left");
    assert_eq!(
        letters(&right),
        letters(&heard.join(" ")),
        "the agent right"
    );
    world.app.stop().await;
}

/// A `vonage_then_twilio` campaign in a world whose Vonage is broken by
/// `vonage_sim` / `config`: an interested callee and a busy line (two
/// attempts) all go to Twilio, one leg per attempt, none on Vonage.
async fn fails_over_to_twilio(
    vonage_sim: impl FnOnce(&mut VonageSimConfig),
    config: impl Fn(&mut talky::config::Config),
) {
    let (talks, busy) = ("+442079460991", "+442079460992");
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "interested", talks);
    persona_for(&mut personas, "busy", busy);
    let world: World = world_full(
        personas,
        DeepgramSimConfig::default(),
        ElevenLabsSimConfig::default(),
        vonage_sim,
        |_| {},
        config,
    )
    .await;
    let app = &world.app;
    let failed_over = failovers(app).await;
    let (id, key) = campaign_with(app, &[talks, busy], |b| {
        b["telephony"] = json!("vonage_then_twilio");
        b["max_attempts"] = json!(2);
        b["retry_backoff_secs"] = json!(0);
    })
    .await;
    // The interested callee completes on the first attempt, the busy line
    // is dialled twice.
    let calls = finished_calls(app, &key, &id, 3).await;
    assert_eq!(calls.len(), 3, "{calls:?}");
    // Every attempt has its one leg, on Twilio; Vonage created none.
    world.assert_carried_by(TWILIO, &calls).await;
    // ... because the chain moved each of them (tests running alongside
    // may move more: the counter is the process's).
    assert!(
        failovers(app).await - failed_over >= 3.0,
        "each attempt failed over"
    );
    let mut attempts: Vec<(String, i64)> = calls
        .iter()
        .map(|c| {
            (
                c["phone"].as_str().unwrap_or("").to_string(),
                c["attempt"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    attempts.sort();
    assert_eq!(
        attempts,
        [(talks.into(), 1), (busy.into(), 1), (busy.into(), 2)],
        "one call row per attempt"
    );
    let legs = world.legs(TWILIO);
    for (phone, n) in [(talks, 1), (busy, 2)] {
        assert_eq!(
            legs.iter()
                .filter(|l| l.to == phone.trim_start_matches('+'))
                .count(),
            n,
            "{phone}: one Twilio leg per attempt"
        );
    }
    let talked = personas::by_phone(&calls, talks);
    assert_eq!(talked["outcome"], "completed", "{talked}");
    let users: Vec<String> = personas::turns(talked)
        .into_iter()
        .filter(|(s, _, _)| s == "user")
        .map(|(_, t, _)| t)
        .collect();
    assert_eq!(users, ["Yes, I am interested.", "Great, thank you. Bye."]);
    assert!(
        calls
            .iter()
            .filter(|c| c["phone"] == busy)
            .all(|c| c["outcome"] == "busy"),
        "{calls:?}"
    );
    world.app.stop().await;
}

/// Attempts moved from Vonage to Twilio so far in this process, whatever
/// the reason (`talky_telephony_failovers_total` on `/metrics`).
async fn failovers(app: &crate::support::TestApp) -> f64 {
    crate::vonage::metrics_text(app)
        .await
        .lines()
        .filter(|l| l.starts_with(talky::providers::telephony_chain::FAILOVERS))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_then_twilio_completes_on_twilio_when_vonage_refuses_connections() {
    // A port nothing listens on: every Vonage create-call fails to
    // connect, so no Vonage leg can exist.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    fails_over_to_twilio(
        |_| {},
        move |c| c.providers.vonage.api_base_url = Some(format!("http://{closed}")),
    )
    .await;
}

/// A stand-in Vonage API on 127.0.0.1 that answers every request with
/// `status` and a problem body, creating nothing: (its base URL, the
/// requests it answered so far).
async fn vonage_answering(status: u16) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                // The whole request (head and body) is read before the
                // answer, so the client reads a status, not a reset.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        break;
                    }
                }
                let body = format!(
                    r#"{{"type":"https://developer.vonage.com/api-errors","title":"stand-in","detail":"answered {status}"}}"#
                );
                let reply = format!(
                    "HTTP/1.1 {status} Stand-in\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                count.fetch_add(1, Ordering::SeqCst);
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_then_twilio_completes_on_twilio_when_vonage_answers_503() {
    // Every create-call answered 503 before anything is created: the
    // client retries within its budget, then the chain moves the attempt
    // (later ones go straight to Twilio once Vonage's circuit opens).
    let (url, answered) = vonage_answering(503).await;
    fails_over_to_twilio(
        |_| {},
        move |c| c.providers.vonage.api_base_url = Some(url.clone()),
    )
    .await;
    assert!(
        answered.load(Ordering::SeqCst) >= 1,
        "Vonage was asked first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_then_twilio_completes_on_twilio_when_vonage_answers_401() {
    // The Vonage emulator serves another application: it answers every
    // create-call 401 (our JWT names an application it does not know)
    // before creating anything.
    fails_over_to_twilio(
        |v| v.application_id = "ffffffff-bbbb-cccc-dddd-0123456789ab".into(),
        |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_then_twilio_never_moves_a_create_call_whose_answer_was_lost() {
    // Vonage starts each call at once but answers the create-call only
    // after the client's 10 s time-out: the leg may exist (it does), so
    // the chain must not try Twilio; the calls resolve on Vonage.
    let (talks, busy) = ("+442079460996", "+442079460997");
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "interested", talks);
    persona_for(&mut personas, "busy", busy);
    let world = world_full(
        personas,
        DeepgramSimConfig::default(),
        ElevenLabsSimConfig::default(),
        |v| v.create_response_delay = Duration::from_secs(12),
        |_| {},
        |_| {},
    )
    .await;
    let app = &world.app;
    let started = tokio::time::Instant::now();
    let (id, key) = campaign_with(app, &[talks, busy], |b| {
        b["telephony"] = json!("vonage_then_twilio");
    })
    .await;
    let calls = finished_calls(app, &key, &id, 2).await;
    assert_eq!(calls.len(), 2, "{calls:?}");
    // The calls may be over before the client gives up on the create-call
    // answers (10 s) and the chain decides: watch Twilio until past it.
    let decided = started + Duration::from_secs(13);
    crate::support::throughout(
        "the chain never moved a placed attempt to Twilio",
        decided.saturating_duration_since(tokio::time::Instant::now()),
        || async {
            match world.twilio.calls().len() {
                0 => Ok(()),
                n => Err(format!("{n} Twilio legs")),
            }
        },
    )
    .await;
    world
        .assert_carried_by(TelephonyProvider::Vonage, &calls)
        .await;
    let outcome = |phone: &str| personas::by_phone(&calls, phone)["outcome"].clone();
    assert_eq!(outcome(talks), "completed", "{calls:?}");
    assert_eq!(outcome(busy), "busy", "{calls:?}");
    world.app.stop().await;
}
