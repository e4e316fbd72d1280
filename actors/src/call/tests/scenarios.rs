//! Whole calls on paused time: every timing below is exact.

use std::time::Duration;

use super::fakes::*;
use crate::call::{CallMsg, MachineAction};
use crate::ports::{FinishReason, LlmEvent, Role, SttEvent, TelephonyEvent, ToolCall};

const GREETING: &str = "Hello, this is Ada from Acme.";

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

async fn wait(s: f64) {
    tokio::time::sleep(secs(s)).await;
}

/// Answer and let the greeting play out.
async fn greeted() -> Harness {
    greeted_with(config()).await
}

/// The same with other settings.
async fn greeted_with(cfg: crate::call::CallConfig) -> Harness {
    let mut h = Harness::start(cfg).await;
    h.answer().await;
    wait(speech_duration(GREETING).as_secs_f64() + 1.0).await;
    h
}

#[tokio::test(start_paused = true)]
async fn greeting_plays_paced_as_soon_as_media_is_up() {
    let h = greeted().await;
    let turns = h.turns();
    assert_eq!(turns.len(), 1, "{turns:?}");
    assert_eq!(turns[0].speaker, Role::Assistant);
    assert_eq!(turns[0].heard_text.as_deref(), Some(GREETING));
    assert!(!turns[0].interrupted);
    let heard = lock(&h.heard);
    let expected = speech_duration(GREETING).as_millis() as usize / 20;
    assert!(
        heard.frames.len().abs_diff(expected) <= 1,
        "{} frames, expected {expected}",
        heard.frames.len()
    );
    assert!(heard.frames.iter().all(|(_, f)| f.len() == 640));
    // Never more than 200 ms ahead of real time.
    let t0 = heard.frames[0].0;
    for (i, (at, _)) in heard.frames.iter().enumerate() {
        let due = t0 + Duration::from_millis(20 * i as u64);
        assert!(
            *at + Duration::from_millis(200) >= due,
            "frame {i} sent {:?} early",
            due - *at
        );
    }
    assert_eq!(lock(&h.telephony.log).placed.len(), 1);
    let statuses = lock(&h.store.log).statuses.clone();
    assert_eq!(statuses, ["dialing", "answered", "conversation"]);
}

#[tokio::test(start_paused = true)]
async fn multi_turn_conversation_keeps_history_and_latency() {
    let h = greeted().await;
    h.llm[0].reply("Great to hear. I can send you the details today.");
    h.speak(secs(0.8)).await;
    h.silence(secs(0.4)).await;
    h.transcript("I am interested").await;
    wait(6.0).await;
    h.llm[0].reply("Perfect, talk soon.");
    h.speak(secs(0.6)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Yes please").await;
    wait(4.0).await;

    let turns = h.turns();
    let said: Vec<(Role, &str)> = turns
        .iter()
        .map(|t| (t.speaker, t.heard_text.as_deref().unwrap_or(&t.text)))
        .collect();
    assert_eq!(
        said,
        [
            (Role::Assistant, GREETING),
            (Role::User, "I am interested"),
            (
                Role::Assistant,
                "Great to hear. I can send you the details today."
            ),
            (Role::User, "Yes please"),
            (Role::Assistant, "Perfect, talk soon."),
        ]
    );
    assert_eq!(
        turns.iter().map(|t| t.seq).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    // The second request carries the whole history, agent turns as heard.
    let requests = lock(&h.llm_requests);
    let last = &requests.last().expect("requests").1.messages;
    let roles: Vec<Role> = last.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::Assistant,
            Role::User,
            Role::Assistant,
            Role::User
        ]
    );
    assert_eq!(last[1].content, GREETING);
    // Latency: LLM first token 200 ms after the final; the first sentence
    // is complete two deltas (50 ms) later, and TTS answers 120 ms after.
    let split = turns[2].latency;
    assert_eq!(split.llm_first_token_ms, Some(200), "{split:?}");
    assert_eq!(split.tts_first_audio_ms, Some(170), "{split:?}");
    assert!(split.first_frame_ms.is_some_and(|ms| ms <= 1), "{split:?}");
    assert!(
        split
            .voice_to_voice_ms
            .is_some_and(|ms| (320..1200).contains(&ms)),
        "{split:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_configured_vad_hangover_is_where_the_speech_ended() {
    let mut cfg = config();
    cfg.vad_hangover = secs(1.0);
    let h = greeted_with(cfg).await;
    h.llm[0].reply("Great to hear.");
    h.speak(secs(0.8)).await;
    h.silence(secs(1.4)).await;
    h.transcript("I am interested").await;
    wait(4.0).await;

    let turns = h.turns();
    assert_eq!(turns[1].speaker, Role::User);
    let split = turns[2].latency;
    // The speech ended 1.4 s before the final: the VAD called it over a
    // second (its hangover, as configured) after it ended, and that is
    // where the latency counts from; the default hangover (300 ms) would
    // put it 700 ms later.
    assert!(
        split.stt_ms.is_some_and(|ms| (1380..=1420).contains(&ms)),
        "{split:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn barge_in_cuts_within_a_frame_and_keeps_only_what_was_heard() {
    let h = greeted().await;
    let long = "Let me tell you about our plans. The basic plan costs ten dollars a month. \
                The premium plan costs twenty dollars and includes support.";
    h.llm[0].reply(long);
    // A slow LLM: the last sentence is still streaming when the callee cuts in.
    *lock(&h.llm[0].token_gap) = Duration::from_millis(150);
    h.speak(secs(0.6)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Tell me more").await;
    // Let the agent talk for about two seconds, then the callee cuts in.
    wait(2.5).await;
    let frames_before = h.frames_heard();
    assert!(frames_before > 100, "the agent is talking");
    let barge_start = tokio::time::Instant::now();
    h.speak(secs(0.5)).await;
    wait(1.0).await;

    let heard = lock(&h.heard);
    assert_eq!(heard.clears.len(), 1, "one clear");
    let clear_at = heard.clears[0];
    // The VAD needs 300 ms of speech: the 15th frame (sent 280 ms after
    // the first); the clear follows within one frame of that.
    let reaction = clear_at - barge_start;
    assert!(
        reaction >= secs(0.28) && reaction <= secs(0.28 + 0.02),
        "{reaction:?}"
    );
    assert!(
        heard.frames.iter().all(|(at, _)| *at <= clear_at),
        "no agent audio after the clear"
    );
    drop(heard);
    let turns = h.turns();
    let agent = &turns[2];
    assert_eq!(agent.speaker, Role::Assistant);
    assert!(agent.interrupted);
    let heard_text = agent.heard_text.clone().expect("heard");
    assert!(
        !heard_text.is_empty() && heard_text.len() < long.len(),
        "{heard_text}"
    );
    assert!(
        long.starts_with(&heard_text),
        "a prefix on a word boundary: {heard_text}"
    );
    // Roughly what had played: 15 chars/s over the time it talked.
    assert!(heard_text.len() <= 45, "{heard_text}");
    // The LLM stream was cancelled: its last sentence never reached TTS.
    let tts = lock(&h.tts_requests);
    assert!(!tts.iter().any(|(_, t)| t.contains("premium")), "{tts:?}");
}

#[tokio::test(start_paused = true)]
async fn a_backchannel_does_not_cut() {
    let h = greeted().await;
    let reply = "Our plan costs ten dollars a month and you can cancel at any time.";
    h.llm[0].reply(reply);
    h.speak(secs(0.6)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Go on").await;
    wait(1.5).await;
    // "mm-hm": 200 ms of speech, below the 300 ms barge-in minimum.
    h.speak(secs(0.2)).await;
    h.transcript("mm-hm").await;
    wait(6.0).await;
    assert!(lock(&h.heard).clears.is_empty());
    let turns = h.turns();
    assert_eq!(
        turns.len(),
        3,
        "no user turn for the backchannel: {turns:?}"
    );
    assert_eq!(turns[2].heard_text.as_deref(), Some(reply));
    assert!(!turns[2].interrupted);
}

#[tokio::test(start_paused = true)]
async fn stt_restart_loses_no_audio_and_the_conversation_goes_on() {
    let h = greeted().await;
    assert_eq!(lock(&h.stt_sessions).len(), 1);
    // The STT session dies; the callee keeps talking meanwhile.
    let events = lock(&h.stt_sessions)[0].events.clone();
    events
        .send(SttEvent::Error(crate::ports::PortError::Unavailable(
            "socket dropped".into(),
        )))
        .await
        .expect("event");
    h.speak(secs(1.0)).await;
    wait(0.2).await;
    {
        let mut sessions = lock(&h.stt_sessions);
        assert_eq!(sessions.len(), 2, "restarted");
        assert_eq!(
            sessions[1].provider, "primary",
            "one failure does not switch"
        );
        let mut received = 0;
        while let Ok(chunk) = sessions[1].audio.try_recv() {
            received += chunk.len();
        }
        assert_eq!(
            received,
            50 * 640,
            "every frame spoken during the restart reached the new session"
        );
    }
    h.llm[0].reply("Sure.");
    h.transcript("Can you repeat that").await;
    wait(3.0).await;
    let turns = h.turns();
    assert_eq!(turns[1].text, "Can you repeat that");
    assert_eq!(turns[2].heard_text.as_deref(), Some("Sure."));
}

#[tokio::test(start_paused = true)]
async fn the_fallback_takes_over_after_k_failures() {
    let mut cfg = config();
    cfg.switch_after = 2;
    let mut h = Harness::start(cfg).await;
    *lock(&h.stt[0].fail_opens) = 2;
    h.answer().await;
    wait(3.0).await;
    let sessions = lock(&h.stt_sessions);
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].provider, "fallback");
    drop(sessions);
    let turns = h.turns();
    assert_eq!(
        turns[0].heard_text.as_deref(),
        Some(GREETING),
        "the call went on"
    );
}

#[tokio::test(start_paused = true)]
async fn llm_failure_before_any_words_retries_and_then_falls_back() {
    // Default switch_after (2): one failure is retried on the primary.
    let h = greeted().await;
    *lock(&h.llm[0].fail_streams) = 1;
    h.llm[0].reply("Primary again.");
    h.speak(secs(0.4)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Hello?").await;
    wait(4.0).await;
    let names: Vec<&str> = lock(&h.llm_requests).iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["primary", "primary"]);
    assert_eq!(
        h.turns()
            .last()
            .and_then(|t| t.heard_text.clone())
            .as_deref(),
        Some("Primary again.")
    );

    // switch_after = 1: the first failure moves the call to the fallback.
    let mut cfg = config();
    cfg.switch_after = 1;
    let h = greeted_with(cfg).await;
    *lock(&h.llm[0].fail_streams) = 1;
    h.llm[1].reply("Fallback here.");
    h.speak(secs(0.4)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Hello?").await;
    wait(4.0).await;
    let names: Vec<&str> = lock(&h.llm_requests).iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["primary", "fallback"]);
    let turns = h.turns();
    assert_eq!(
        turns.last().and_then(|t| t.heard_text.clone()).as_deref(),
        Some("Fallback here.")
    );
    assert!(!turns.last().is_some_and(|t| t.interrupted));
}

#[tokio::test(start_paused = true)]
async fn intensity_exceeded_ends_the_call_politely() {
    let h = greeted().await;
    // Four STT failures within ten seconds.
    for _ in 0..4 {
        let events = lock(&h.stt_sessions)
            .last()
            .expect("session")
            .events
            .clone();
        let _ = events
            .send(SttEvent::Error(crate::ports::PortError::Unavailable(
                "dead".into(),
            )))
            .await;
        wait(0.5).await;
    }
    wait(6.0).await;
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .ok();
    wait(1.0).await;
    let finished = lock(&h.store.log).finished.clone();
    assert_eq!(
        finished.as_ref().map(|f| f.0.as_str()),
        Some("provider_error"),
        "{finished:?}"
    );
    let turns = h.turns();
    let apology = turns.last().expect("apology turn");
    assert!(apology.text.starts_with("I'm sorry"), "{apology:?}");
    assert_eq!(lock(&h.telephony.log).hung_up.len(), 1);
    let reports = lock(&h.reports);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].cause.outcome(), "provider_error");
}

#[tokio::test(start_paused = true)]
async fn callee_hanging_up_mid_sentence_finalises_the_call() {
    let h = greeted().await;
    h.llm[0].reply("Let me explain everything about our offer in great detail now.");
    h.speak(secs(0.4)).await;
    h.silence(secs(0.4)).await;
    h.transcript("What is it").await;
    wait(1.5).await;
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    wait(0.5).await;
    assert!(h.handle.is_finished(), "the actor stopped");
    let turns = h.turns();
    let last = turns.last().expect("turn");
    assert!(last.interrupted);
    assert!(
        last.heard_text
            .as_deref()
            .is_some_and(|t| t.len() < last.text.len())
    );
    assert_eq!(h.outcome().as_deref(), Some("completed"));
    assert_eq!(lock(&h.reports).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn silence_gets_reprompts_then_a_polite_hang_up() {
    let h = greeted().await;
    // 8 s silence -> reprompt, twice; then goodbye and hang-up.
    wait(8.0 * 3.0 + 10.0).await;
    let turns = h.turns();
    let texts: Vec<&str> = turns.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            GREETING,
            "Are you still there?",
            "Are you still there?",
            "Thank you for your time. Goodbye."
        ]
    );
    assert_eq!(lock(&h.telephony.log).hung_up.len(), 1);
    wait(11.0).await;
    assert_eq!(h.outcome().as_deref(), Some("no_input"));
}

#[tokio::test(start_paused = true)]
async fn max_duration_says_goodbye_and_hangs_up() {
    let mut cfg = config();
    cfg.max_duration = secs(10.0);
    cfg.no_input_timeout = secs(100.0);
    let mut h = Harness::start(cfg).await;
    h.answer().await;
    wait(11.0).await;
    assert!(
        lock(&h.telephony.log).hung_up.is_empty(),
        "the goodbye plays first"
    );
    wait(3.0).await;
    assert_eq!(
        lock(&h.telephony.log).hung_up.len(),
        1,
        "hung up after the goodbye"
    );
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    wait(0.5).await;
    assert_eq!(h.outcome().as_deref(), Some("timeout"));
    let turns = h.turns();
    assert_eq!(
        turns.last().map(|t| t.text.as_str()),
        Some("Thank you for your time. Goodbye.")
    );
}

#[tokio::test(start_paused = true)]
async fn a_machine_gets_the_voicemail_message() {
    let mut cfg = config();
    cfg.machine_action = MachineAction::LeaveMessage;
    cfg.voicemail_message = Some("Hi, this is Ada from Acme. Please call us back.".into());
    let mut h = Harness::start(cfg).await;
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(0.1).await;
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Answered))
        .expect("cast");
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Machine))
        .expect("cast");
    h.answer_media_only().await;
    wait(6.0).await;
    let turns = h.turns();
    assert_eq!(turns.len(), 1, "no greeting, only the message: {turns:?}");
    assert_eq!(
        turns[0].heard_text.as_deref(),
        Some("Hi, this is Ada from Acme. Please call us back.")
    );
    assert_eq!(lock(&h.telephony.log).hung_up.len(), 1);
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    wait(0.5).await;
    assert_eq!(h.outcome().as_deref(), Some("machine"));
}

#[tokio::test(start_paused = true)]
async fn end_call_tool_says_goodbye_then_hangs_up() {
    let h = greeted().await;
    h.llm[0].reply_events(vec![
        LlmEvent::Text("Understood, I will not call again. ".into()),
        LlmEvent::Text("Goodbye.".into()),
        LlmEvent::ToolCall(ToolCall {
            id: "t1".into(),
            name: "mark_do_not_call".into(),
            arguments: "{}".into(),
        }),
        LlmEvent::Finish(FinishReason::ToolCalls),
    ]);
    h.speak(secs(0.5)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Please remove me from your list").await;
    wait(5.0).await;
    assert_eq!(lock(&h.telephony.log).hung_up.len(), 1);
    let turns = h.turns();
    assert_eq!(
        turns.last().and_then(|t| t.heard_text.clone()).as_deref(),
        Some("Understood, I will not call again. Goodbye.")
    );
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    wait(0.5).await;
    assert_eq!(
        lock(&h.store.log).requests,
        [crate::ports::CalleeRequest::DoNotCall],
        "stored the moment it was asked"
    );
    let reports = lock(&h.reports);
    assert!(reports[0].do_not_call);
    assert_eq!(reports[0].cause.outcome(), "completed");
}

#[tokio::test(start_paused = true)]
async fn end_call_as_not_interested_is_a_declined_call() {
    let h = greeted().await;
    h.llm[0].reply_events(vec![
        LlmEvent::Text("I understand. Goodbye.".into()),
        LlmEvent::ToolCall(ToolCall {
            id: "t1".into(),
            name: "end_call".into(),
            arguments: r#"{"outcome":"not_interested"}"#.into(),
        }),
        LlmEvent::Finish(FinishReason::ToolCalls),
    ]);
    h.speak(secs(0.5)).await;
    h.silence(secs(0.4)).await;
    h.transcript("No thanks").await;
    wait(5.0).await;
    assert_eq!(
        lock(&h.telephony.log).hung_up.len(),
        1,
        "hung up after goodbye"
    );
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    wait(0.5).await;
    let reports = lock(&h.reports);
    assert_eq!(reports[0].cause.outcome(), "rejected");
    assert_eq!(
        reports[0].outcome(),
        crate::schedule::retry::CallOutcome::Rejected
    );
}

#[tokio::test(start_paused = true)]
async fn busy_ends_before_any_media() {
    let h = Harness::start(config()).await;
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(0.1).await;
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Ringing))
        .expect("cast");
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Busy))
        .expect("cast");
    wait(0.1).await;
    assert!(h.handle.is_finished());
    assert_eq!(h.outcome().as_deref(), Some("busy"));
    assert_eq!(
        lock(&h.store.log).statuses,
        ["dialing", "ringing", "finished"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_completed_that_overtakes_busy_still_ends_as_busy() {
    let h = Harness::start(config()).await;
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(0.1).await;
    for event in [TelephonyEvent::Ringing, TelephonyEvent::Completed] {
        h.call.cast(CallMsg::Telephony(event)).expect("cast");
    }
    wait(0.5).await;
    assert!(!h.handle.is_finished(), "waits for the reason");
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Busy))
        .expect("cast");
    wait(0.1).await;
    assert!(h.handle.is_finished());
    let finished = lock(&h.store.log).finished.as_ref().map(|f| f.0.clone());
    assert_eq!(finished.as_deref(), Some("busy"));
}

#[tokio::test(start_paused = true)]
async fn a_completed_without_answer_or_reason_is_a_failure() {
    let h = Harness::start(config()).await;
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(0.1).await;
    for event in [TelephonyEvent::Ringing, TelephonyEvent::Completed] {
        h.call.cast(CallMsg::Telephony(event)).expect("cast");
    }
    wait(0.1 + crate::call::leg::COMPLETED_GRACE.as_secs_f64()).await;
    assert!(h.handle.is_finished());
    let finished = lock(&h.store.log).finished.as_ref().map(|f| f.0.clone());
    assert_eq!(finished.as_deref(), Some("failed"));
}

#[tokio::test(start_paused = true)]
async fn ringing_too_long_is_no_answer() {
    let mut cfg = config();
    cfg.ringing_timeout = secs(30.0);
    let h = Harness::start(cfg).await;
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(0.1).await;
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Ringing))
        .expect("cast");
    wait(31.0).await;
    assert_eq!(lock(&h.telephony.log).hung_up.len(), 1);
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    wait(0.1).await;
    assert_eq!(h.outcome().as_deref(), Some("no_answer"));
}

#[tokio::test(start_paused = true)]
async fn tts_failure_mid_sentence_says_the_sentence_again() {
    let mut h = Harness::start(config()).await;
    *lock(&h.tts[0].fail_after_one_chunk) = 1;
    h.answer().await;
    wait(speech_duration(GREETING).as_secs_f64() + 2.0).await;
    let requests = lock(&h.tts_requests).clone();
    assert_eq!(
        requests,
        [
            ("primary", GREETING.to_string()),
            ("primary", GREETING.to_string())
        ],
        "restarted on the primary and re-sent"
    );
    let turns = h.turns();
    assert_eq!(turns.len(), 1);
    assert_eq!(
        turns[0].heard_text.as_deref(),
        Some(GREETING),
        "the fragment is not counted twice"
    );
    assert!(!turns[0].interrupted);
}

#[tokio::test(start_paused = true)]
async fn a_machine_is_hung_up_on_when_the_campaign_says_so() {
    let mut cfg = config();
    cfg.machine_action = MachineAction::Hangup;
    let h = Harness::start(cfg).await;
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(0.1).await;
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Answered))
        .expect("cast");
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Machine))
        .expect("cast");
    wait(0.1).await;
    assert_eq!(lock(&h.telephony.log).hung_up.len(), 1);
    assert!(h.turns().is_empty(), "nothing was said");
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    wait(0.1).await;
    assert_eq!(h.outcome().as_deref(), Some("machine"));
}

#[tokio::test(start_paused = true)]
async fn a_callback_request_is_reported() {
    let h = greeted().await;
    h.llm[0].reply_events(vec![
        LlmEvent::ToolCall(ToolCall {
            id: "cb".into(),
            name: "schedule_callback".into(),
            arguments: r#"{"at":"2026-12-01T15:00:00Z"}"#.into(),
        }),
        LlmEvent::Text("Sure, I will call you on Tuesday. ".into()),
        LlmEvent::Text("Goodbye.".into()),
        LlmEvent::ToolCall(ToolCall {
            id: "end".into(),
            name: "end_call".into(),
            arguments: r#"{"outcome":"completed"}"#.into(),
        }),
        LlmEvent::Finish(FinishReason::ToolCalls),
    ]);
    h.speak(secs(0.5)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Call me back on Tuesday at three").await;
    wait(5.0).await;
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    wait(0.5).await;
    let expected: chrono::DateTime<chrono::Utc> = "2026-12-01T15:00:00Z".parse().expect("time");
    assert_eq!(
        lock(&h.store.log).requests,
        [crate::ports::CalleeRequest::Callback(expected)]
    );
    let reports = lock(&h.reports);
    assert_eq!(reports[0].callback_at, Some(expected));
    assert_eq!(
        reports[0].outcome(),
        crate::schedule::retry::CallOutcome::CallbackRequested(expected)
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_reply_is_read_from_tts_as_it_plays_and_plays_without_a_gap() {
    let h = greeted().await;
    let long = "This sentence goes on and on about the offer, the prices, the \
                terms, the delivery dates, the guarantee, the support hours, \
                the many colours it comes in and the reasons to buy it today.";
    let reply = format!("{long} Thanks.");
    h.llm[0].reply(&reply);
    let before = lock(&h.heard).frames.len();
    lock(&h.tts[0].chunks_sent).clear();
    h.speak(secs(0.6)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Tell me more").await;
    let length = speech_duration(long) + speech_duration("Thanks.");
    wait(length.as_secs_f64() + 2.0).await;

    let turns = h.turns();
    let last = turns.last().expect("turns");
    assert_eq!(last.heard_text.as_deref(), Some(reply.as_str()));
    assert!(!last.interrupted);
    // Every frame played, back to back, never beyond the 200 ms lead.
    let heard = lock(&h.heard);
    let frames = &heard.frames[before..];
    let expected = (length.as_millis() / 20) as usize;
    assert!(
        frames.len().abs_diff(expected) <= 2,
        "{} frames, expected {expected}",
        frames.len()
    );
    let t0 = frames[0].0;
    for (i, (at, _)) in frames.iter().enumerate() {
        let due = t0 + Duration::from_millis(20 * i as u64);
        assert!(*at <= due, "frame {i} late by {:?}: a gap", *at - due);
        assert!(*at + Duration::from_millis(200) >= due, "frame {i} early");
    }
    // The fake TTS makes audio 5x faster than it plays: unthrottled, the
    // long sentence would be taken whole in its first 2.5 s. Held back, its
    // chunks are taken as the reply plays.
    let sent = lock(&h.tts[0].chunks_sent);
    let (first, last) = (sent[0], *sent.last().expect("chunks"));
    assert!(
        last - first > length / 2,
        "TTS drained in {:?} for {length:?} of audio",
        last - first
    );
}

/// The records of a call survive a database outage longer than the call.
#[tokio::test(start_paused = true)]
async fn records_written_during_a_store_outage_land_once_in_order() {
    let mut h = Harness::start(config()).await;
    h.store.fail_for(secs(20.0));
    h.answer().await;
    wait(speech_duration(GREETING).as_secs_f64() + 1.0).await;
    h.llm[0].reply_events(vec![
        LlmEvent::Text("Understood, I will not call again. Goodbye.".into()),
        LlmEvent::ToolCall(ToolCall {
            id: "t1".into(),
            name: "mark_do_not_call".into(),
            arguments: "{}".into(),
        }),
        LlmEvent::Finish(FinishReason::ToolCalls),
    ]);
    h.speak(secs(0.5)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Please remove me from your list").await;
    wait(12.0).await;
    assert!(lock(&h.store.log).ops.is_empty(), "nothing stored yet");
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    // `finish` waits a bounded time for the outcome's write, then reports.
    wait(11.0).await;
    assert!(h.handle.is_finished(), "the call ended");
    assert_eq!(lock(&h.reports).len(), 1, "and was reported");
    wait(30.0).await;
    let log = lock(&h.store.log);
    assert!(log.failed_attempts > 0);
    let turns: Vec<(i32, Role)> = log.turns.iter().map(|t| (t.seq, t.speaker)).collect();
    assert_eq!(
        turns,
        [(0, Role::Assistant), (1, Role::User), (2, Role::Assistant)],
        "every turn once, in order"
    );
    assert_eq!(log.requests, [crate::ports::CalleeRequest::DoNotCall]);
    let ops: Vec<&str> = log.ops.iter().map(String::as_str).collect();
    let at = |op: &str| {
        let found: Vec<usize> = (0..ops.len()).filter(|&i| ops[i] == op).collect();
        assert_eq!(found.len(), 1, "{op} once: {ops:?}");
        found[0]
    };
    assert!(at("turn:1") < at("request"), "{ops:?}");
    assert!(at("request") < at("turn:2"), "{ops:?}");
    assert_eq!(at("finish:completed"), ops.len() - 1, "the outcome last");
    assert_eq!(
        log.statuses,
        ["dialing", "answered", "conversation", "ending", "finished"]
    );
}

const SHUTDOWN_LINE: &str = crate::call::config::DEFAULT_SHUTDOWN_TEXT;

/// A draining node stops under a live call: the agent cuts its own reply,
/// says why, hangs up; the contact will be redialled.
#[tokio::test(start_paused = true)]
async fn shutdown_in_conversation_says_the_line_then_hangs_up_as_interrupted() {
    let h = greeted().await;
    h.llm[0].reply("Let me explain everything about our offer in great detail now.");
    h.speak(secs(0.4)).await;
    h.silence(secs(0.4)).await;
    h.transcript("What is it").await;
    wait(1.5).await;
    assert!(h.frames_heard() > 100, "the agent is talking");
    h.call.cast(CallMsg::Shutdown).expect("cast");
    wait(0.1).await;
    assert_eq!(lock(&h.heard).clears.len(), 1, "barged in on itself");
    assert!(
        lock(&h.telephony.log).hung_up.is_empty(),
        "the line plays first"
    );
    wait(speech_duration(SHUTDOWN_LINE).as_secs_f64() + 1.0).await;
    assert_eq!(lock(&h.telephony.log).hung_up.len(), 1, "then hangs up");
    let turns = h.turns();
    let last = turns.last().expect("turns");
    assert_eq!(last.heard_text.as_deref(), Some(SHUTDOWN_LINE));
    assert!(turns[turns.len() - 2].interrupted, "the reply was cut");
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    wait(0.5).await;
    assert_eq!(h.outcome().as_deref(), Some("interrupted"));
    let reports = lock(&h.reports);
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].cause,
        crate::call::lifecycle::EndCause::Interrupted
    );
    assert_eq!(
        reports[0].outcome(),
        crate::schedule::retry::CallOutcome::Failed,
        "redialled"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_before_an_answer_hangs_up_at_once_and_a_finished_call_ignores_it() {
    let h = Harness::start(config()).await;
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(0.1).await;
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Ringing))
        .expect("cast");
    h.call.cast(CallMsg::Shutdown).expect("cast");
    wait(0.1).await;
    assert_eq!(lock(&h.telephony.log).hung_up.len(), 1, "at once");
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    wait(0.1).await;
    assert!(h.handle.is_finished());
    assert_eq!(h.outcome().as_deref(), Some("interrupted"));
    assert!(h.turns().is_empty(), "nothing was said");
    let _ = h.call.cast(CallMsg::Shutdown);
    wait(0.1).await;
    assert_eq!(lock(&h.telephony.log).hung_up.len(), 1);
    assert_eq!(lock(&h.reports).len(), 1);
}

/// Asserts the frames play back to back: none later than its slot.
fn assert_no_gap(frames: &[(tokio::time::Instant, Vec<u8>)]) {
    let t0 = frames[0].0;
    for (i, (at, _)) in frames.iter().enumerate() {
        let due = t0 + Duration::from_millis(20 * i as u64);
        assert!(*at <= due, "frame {i} late by {:?}: a gap", *at - due);
    }
}

/// Opening STT is a network handshake: the CallActor does not wait on it.
#[tokio::test(start_paused = true)]
async fn a_slow_first_stt_open_does_not_delay_the_greeting() {
    let mut h = Harness::start(config()).await;
    *lock(&h.stt[0].open_delay) = secs(4.0);
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(0.05).await;
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Answered))
        .expect("answered");
    let attached = tokio::time::Instant::now();
    h.answer_media_only().await;
    wait(1.0).await;
    let first = lock(&h.heard).frames.first().map(|f| f.0);
    let first = first.expect("the greeting started before STT opened");
    assert!(first - attached < secs(0.3), "{:?}", first - attached);
    assert!(lock(&h.stt_sessions).is_empty(), "STT still opening");
    wait(4.0).await;
    assert_eq!(lock(&h.stt_sessions).len(), 1, "then it opened");
    let heard = lock(&h.heard);
    assert_no_gap(&heard.frames);
}

#[tokio::test(start_paused = true)]
async fn a_slow_stt_reopen_mid_reply_leaves_no_gap_in_the_agent_audio() {
    let h = greeted().await;
    let long = "This sentence goes on and on about the offer, the prices, the \
                terms, the delivery dates, the guarantee and the support hours.";
    h.llm[0].reply(long);
    let start = h.frames_heard();
    h.speak(secs(0.6)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Tell me more").await;
    wait(1.5).await;
    let before = {
        let heard = lock(&h.heard);
        assert!(heard.frames.len() > 120, "the reply is playing");
        heard.frames.len()
    };
    // The STT session drops; its reopen takes 4 s.
    *lock(&h.stt[0].open_delay) = secs(4.0);
    let events = lock(&h.stt_sessions)[0].events.clone();
    events
        .send(SttEvent::Error(crate::ports::PortError::Unavailable(
            "socket dropped".into(),
        )))
        .await
        .expect("event");
    wait(speech_duration(long).as_secs_f64()).await;
    assert_eq!(lock(&h.stt_sessions).len(), 2, "reopened");
    let heard = lock(&h.heard);
    assert!(heard.clears.is_empty());
    assert!(heard.frames.len() > before + 150, "it went on playing");
    assert_no_gap(&heard.frames[start..]);
    drop(heard);
    let turns = h.turns();
    assert_eq!(
        turns.last().and_then(|t| t.heard_text.as_deref()),
        Some(long)
    );
}

fn do_not_call_reply() -> Vec<LlmEvent> {
    vec![
        LlmEvent::Text("Understood, I will not call again. ".into()),
        LlmEvent::Text("Goodbye.".into()),
        LlmEvent::ToolCall(ToolCall {
            id: "t1".into(),
            name: "mark_do_not_call".into(),
            arguments: "{}".into(),
        }),
        LlmEvent::Finish(FinishReason::ToolCalls),
    ]
}

/// The callee hears "I will not call again" only once it is stored.
#[tokio::test(start_paused = true)]
async fn do_not_call_is_acknowledged_only_after_it_is_stored() {
    let h = greeted().await;
    *lock(&h.store.request_delay) = secs(3.0);
    h.llm[0].reply_events(do_not_call_reply());
    let start = h.frames_heard();
    h.speak(secs(0.5)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Please remove me from your list").await;
    wait(2.5).await;
    assert_eq!(h.frames_heard(), start, "held while the write is pending");
    assert!(lock(&h.telephony.log).hung_up.is_empty(), "no hang-up yet");
    wait(6.0).await;
    let stored_at = lock(&h.store.log).request_stored_at.expect("stored");
    {
        let heard = lock(&h.heard);
        assert!(heard.frames.len() > start + 100, "then it played");
        assert!(
            heard.frames[start..].iter().all(|(at, _)| *at >= stored_at),
            "no frame of the acknowledgement before the write completed"
        );
    }
    assert_eq!(lock(&h.telephony.log).hung_up.len(), 1);
    assert_eq!(
        h.turns()
            .last()
            .and_then(|t| t.heard_text.clone())
            .as_deref(),
        Some("Understood, I will not call again. Goodbye.")
    );
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    wait(0.5).await;
    assert_eq!(
        lock(&h.store.log).requests,
        [crate::ports::CalleeRequest::DoNotCall]
    );
    let reports = lock(&h.reports);
    assert_eq!(reports.len(), 1);
    assert!(reports[0].do_not_call);
    assert_eq!(
        reports[0].outcome(),
        crate::schedule::retry::CallOutcome::DoNotCall
    );
}

#[tokio::test(start_paused = true)]
async fn an_unconfirmed_do_not_call_still_ends_the_call_in_bounded_time() {
    let h = greeted().await;
    h.store.fail_for(secs(40.0));
    h.llm[0].reply_events(do_not_call_reply());
    let start = h.frames_heard();
    h.speak(secs(0.5)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Please remove me from your list").await;
    wait(9.0).await;
    assert!(lock(&h.telephony.log).hung_up.is_empty());
    wait(2.0).await;
    assert_eq!(
        lock(&h.telephony.log).hung_up.len(),
        1,
        "the bound ended it"
    );
    assert_eq!(
        h.frames_heard(),
        start,
        "the unconfirmed promise never played"
    );
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    // The outcome's write queues behind the request: the report waits
    // its bounded time, then goes.
    wait(11.0).await;
    assert!(lock(&h.reports)[0].do_not_call);
    wait(60.0).await;
    assert_eq!(
        lock(&h.store.log).requests,
        [crate::ports::CalleeRequest::DoNotCall],
        "the writer kept at it"
    );
}

fn prov(id: &str) -> crate::ports::ProviderCallId {
    crate::ports::ProviderCallId(id.into())
}

fn finished_as(h: &Harness) -> Option<(String, String)> {
    lock(&h.store.log).finished.clone()
}

/// The campaign's telephony route goes with the create-call, so a port
/// that routes between providers can honour it.
#[tokio::test(start_paused = true)]
async fn the_call_is_placed_through_its_telephony_route() {
    let mut cfg = config();
    cfg.telephony = "vonage_then_twilio".into();
    let h = Harness::start(cfg).await;
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(1.0).await;
    let log = lock(&h.telephony.log);
    assert_eq!(log.routes, ["vonage_then_twilio"]);
    assert_eq!(log.placed.len(), 1);
}

/// A create-call of unknown outcome is not a failure (a redial could ring
/// the callee twice): the call waits to learn its leg.
#[tokio::test(start_paused = true)]
async fn an_unknown_create_call_then_a_webhook_id_proceeds_to_conversation() {
    let mut h = Harness::start(config()).await;
    *lock(&h.telephony.place_unknown_after) = Some(secs(2.0));
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(3.0).await;
    assert!(!h.handle.is_finished(), "not failed");
    assert!(finished_as(&h).is_none());
    h.call
        .cast(CallMsg::ProviderId(prov("leg-a")))
        .expect("cast");
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Ringing))
        .expect("cast");
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Answered))
        .expect("cast");
    h.answer_media_only().await;
    wait(speech_duration(GREETING).as_secs_f64() + 1.0).await;
    assert_eq!(
        h.turns()
            .first()
            .and_then(|t| t.heard_text.clone())
            .as_deref(),
        Some(GREETING)
    );
    assert_eq!(lock(&h.store.log).provider_id, Some(prov("leg-a")));
    wait(25.0).await;
    assert!(lock(&h.telephony.log).finds.is_empty(), "the webhook told");
    assert_eq!(lock(&h.telephony.log).placed.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_create_call_is_resolved_from_the_providers_call_list() {
    let h = Harness::start(config()).await;
    *lock(&h.telephony.place_unknown_after) = Some(secs(2.0));
    *lock(&h.telephony.found) = Some(prov("leg-b"));
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(2.0 + 19.0).await;
    assert!(
        lock(&h.telephony.log).finds.is_empty(),
        "waits for a webhook first"
    );
    wait(2.0).await;
    let finds = lock(&h.telephony.log).finds.clone();
    assert_eq!(finds.len(), 1);
    assert_eq!(finds[0].1, "+14155550123");
    assert_eq!(lock(&h.store.log).provider_id, Some(prov("leg-b")));
    assert!(!h.handle.is_finished(), "the adopted leg goes on");
    // It is ours now: a later hang-up names it.
    h.call
        .cast(CallMsg::Hangup(crate::call::lifecycle::EndCause::Cancelled))
        .expect("cast");
    wait(0.1).await;
    assert_eq!(lock(&h.telephony.log).hung_up, [prov("leg-b")]);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_create_call_with_no_leg_found_fails_as_not_placed() {
    let h = Harness::start(config()).await;
    *lock(&h.telephony.place_unknown_after) = Some(secs(2.0));
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(2.0 + 21.0).await;
    assert_eq!(lock(&h.telephony.log).finds.len(), 1);
    assert!(h.handle.is_finished());
    let (outcome, reason) = finished_as(&h).expect("finished");
    assert_eq!(outcome, "failed");
    assert!(reason.starts_with("not placed"), "{reason}");
    let reports = lock(&h.reports);
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].outcome(),
        crate::schedule::retry::CallOutcome::Failed
    );
}

#[tokio::test(start_paused = true)]
async fn a_ringing_timeout_while_the_leg_is_unknown_hangs_it_up_once_known() {
    let mut cfg = config();
    cfg.ringing_timeout = secs(5.0);
    let h = Harness::start(cfg).await;
    *lock(&h.telephony.place_unknown_after) = Some(secs(2.0));
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(3.0).await;
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Ringing))
        .expect("cast");
    wait(3.0).await;
    assert!(lock(&h.telephony.log).hung_up.is_empty(), "nothing to name");
    assert!(!h.handle.is_finished(), "not over while a leg may ring");
    h.call
        .cast(CallMsg::ProviderId(prov("leg-d")))
        .expect("cast");
    wait(0.1).await;
    assert_eq!(lock(&h.telephony.log).hung_up, [prov("leg-d")]);
    h.call
        .cast(CallMsg::Telephony(TelephonyEvent::Completed))
        .expect("cast");
    wait(0.1).await;
    assert_eq!(finished_as(&h).map(|f| f.0).as_deref(), Some("no_answer"));
}

#[tokio::test(start_paused = true)]
async fn the_create_call_timeout_outlasts_the_clients_and_firing_is_unknown() {
    let h = Harness::start(config()).await;
    // The client answers after 10 s (its own timeout): within ours.
    *lock(&h.telephony.place_hangs_for) = Some(secs(10.0));
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(11.0).await;
    assert_eq!(lock(&h.store.log).provider_id, Some(prov("prov-1")));
    // A client that never answers: our timeout is `Unknown`, not failed.
    let h = Harness::start(config()).await;
    *lock(&h.telephony.place_hangs_for) = Some(secs(1000.0));
    h.call.cast(CallMsg::Dial).expect("dial");
    wait(16.0).await;
    assert!(!h.handle.is_finished(), "not failed: resolving");
    wait(20.0).await;
    assert_eq!(lock(&h.telephony.log).finds.len(), 1);
}

const ANNOUNCE: &str = "Connecting you to a colleague now.";

fn transfer_config() -> crate::call::CallConfig {
    let mut cfg = config();
    cfg.transfer = Some(crate::call::TransferConfig {
        number: "+14155550199".into(),
        announce: ANNOUNCE.into(),
    });
    cfg
}

/// The callee asks for a person; the LLM answers a word and calls the
/// transfer tool.
async fn ask_for_a_person(h: &Harness) {
    h.llm[0].reply_events(vec![
        LlmEvent::Text("Of course.".into()),
        LlmEvent::ToolCall(ToolCall {
            id: "t1".into(),
            name: crate::call::conversation::TRANSFER_TOOL.into(),
            arguments: "{}".into(),
        }),
        LlmEvent::Finish(FinishReason::ToolCalls),
    ]);
    h.speak(secs(0.5)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Can I speak to a real person").await;
}

#[tokio::test(start_paused = true)]
async fn a_transfer_says_the_announce_then_hands_the_leg_over_without_hanging_up() {
    let mut h = greeted_with(transfer_config()).await;
    *lock(&h.telephony.transfer_takes) = secs(1.0);
    ask_for_a_person(&h).await;
    wait(speech_duration(&format!("Of course. {ANNOUNCE}")).as_secs_f64() + 0.5).await;
    let offered = lock(&h.llm_requests)
        .last()
        .map(|(_, r)| r.tools.iter().any(|t| t.name == "transfer_call"));
    let transfers = lock(&h.telephony.log).transfers.clone();
    assert_eq!(
        transfers,
        [(
            crate::ports::ProviderCallId("prov-1".into()),
            "+14155550199".to_string(),
            "+14155550100".to_string()
        )]
    );
    assert!(!h.handle.is_finished(), "waits for the provider's answer");
    // The provider ends our media stream before its REST answer (and the
    // callee's speech goes nowhere): the call waits for the answer.
    h.callee = None;
    wait(0.2).await;
    assert!(!h.handle.is_finished());
    assert!(lock(&h.store.log).finished.is_none());
    wait(1.5).await;
    assert!(h.handle.is_finished(), "the actor stopped");
    assert!(
        lock(&h.telephony.log).hung_up.is_empty(),
        "the leg goes on to the person"
    );
    assert_eq!(h.outcome().as_deref(), Some("transferred"));
    let turns = h.turns();
    let last = turns.last().expect("turns");
    assert_eq!(last.speaker, Role::Assistant);
    assert_eq!(last.text, format!("Of course. {ANNOUNCE}"));
    assert!(!last.interrupted);
    assert!(
        turns
            .iter()
            .any(|t| t.speaker == Role::User && t.text == "Can I speak to a real person")
    );
    let reports = lock(&h.reports);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].cause.outcome(), "transferred");
    assert_eq!(
        reports[0].outcome(),
        crate::schedule::retry::CallOutcome::Completed,
        "reached: not retried"
    );
    assert_eq!(offered, Some(true), "the tool was offered");
    assert!(
        lock(&h.store.log)
            .ops
            .iter()
            .any(|op| op == "transfer_requested"),
        "the transfer was recorded before it was asked"
    );
}

/// Asks for a person and waits as long as the announce and the apology
/// for a failed transfer take; the apology's text.
async fn ask_and_hear_the_apology_time(h: &Harness) -> String {
    ask_for_a_person(h).await;
    wait_through_the_apology().await
}

/// Waits as long as the announce and the apology for a failed transfer
/// take; the apology's text.
async fn wait_through_the_apology() -> String {
    let failed_text = config().transfer_failed_text;
    wait(
        speech_duration(&format!("Of course. {ANNOUNCE}")).as_secs_f64()
            + speech_duration(&failed_text).as_secs_f64()
            + 1.0,
    )
    .await;
    failed_text
}

/// The call is up, its leg not hung up, and `failed_text` was said.
fn the_call_goes_on_with_an_apology(h: &Harness, failed_text: &str) {
    assert!(!h.handle.is_finished(), "the call goes on");
    assert!(lock(&h.telephony.log).hung_up.is_empty());
    assert!(
        lock(&h.tts_requests)
            .iter()
            .any(|(_, t)| failed_text.contains(t.as_str())),
        "the apology is said"
    );
}

#[tokio::test(start_paused = true)]
async fn no_transfer_is_asked_while_it_cannot_be_recorded() {
    let h = greeted_with(transfer_config()).await;
    h.store.fail_for(secs(60.0));
    let failed_text = ask_and_hear_the_apology_time(&h).await;
    assert!(
        lock(&h.telephony.log).transfers.is_empty(),
        "never asked of the provider"
    );
    the_call_goes_on_with_an_apology(&h, &failed_text);
}

#[tokio::test(start_paused = true)]
async fn a_refused_transfer_is_apologised_for_and_the_call_goes_on() {
    let h = greeted_with(transfer_config()).await;
    *lock(&h.telephony.transfer_fails) = Some(crate::ports::PortError::Rejected(
        "404: call not found".into(),
    ));
    let failed_text = ask_and_hear_the_apology_time(&h).await;
    assert_eq!(lock(&h.telephony.log).transfers.len(), 1);
    the_call_goes_on_with_an_apology(&h, &failed_text);
    // The next reply is asked without the transfer tool.
    h.llm[0].reply("Let me tell you about the offer then.");
    h.speak(secs(0.5)).await;
    h.silence(secs(0.4)).await;
    h.transcript("All right then").await;
    wait(0.5).await;
    let requests = lock(&h.llm_requests);
    let (_, last) = requests.last().expect("asked again");
    assert!(!last.tools.iter().any(|t| t.name == "transfer_call"));
    assert!(lock(&h.store.log).finished.is_none());
}

/// The transfer request outlives the port time-out (its answer is lost)
/// and the provider then ends our stream, as it does carrying a transfer
/// out: the call is transferred, the leg never hung up.
#[tokio::test(start_paused = true)]
async fn a_transfer_whose_answer_is_lost_is_settled_by_our_stream_ending() {
    let mut h = greeted_with(transfer_config()).await;
    *lock(&h.telephony.transfer_takes) = secs(60.0);
    ask_for_a_person(&h).await;
    let port_timeout = config().port_timeout.as_secs_f64();
    wait(speech_duration(&format!("Of course. {ANNOUNCE}")).as_secs_f64() + port_timeout + 0.5)
        .await;
    assert_eq!(lock(&h.telephony.log).transfers.len(), 1);
    assert!(!h.handle.is_finished(), "the lost answer is not a failure");
    assert!(
        !lock(&h.tts_requests)
            .iter()
            .any(|(_, t)| config().transfer_failed_text.contains(t.as_str())),
        "no apology while the transfer may be going on"
    );
    h.callee = None;
    wait(1.0).await;
    assert!(h.handle.is_finished(), "the actor stopped");
    assert!(lock(&h.telephony.log).hung_up.is_empty(), "never hung up");
    assert_eq!(h.outcome().as_deref(), Some("transferred"));
}

/// The transfer's answer is lost and our stream stays up past the settle
/// time: the provider did not move the leg; the agent apologises and the
/// call goes on, its leg not hung up.
#[tokio::test(start_paused = true)]
async fn a_transfer_whose_answer_is_lost_and_whose_stream_stays_up_goes_on() {
    let h = greeted_with(transfer_config()).await;
    *lock(&h.telephony.transfer_takes) = secs(60.0);
    let port_timeout = config().port_timeout.as_secs_f64();
    ask_for_a_person(&h).await;
    wait(2.0 * port_timeout).await;
    let failed_text = wait_through_the_apology().await;
    the_call_goes_on_with_an_apology(&h, &failed_text);
    assert!(lock(&h.store.log).finished.is_none());
}

#[tokio::test(start_paused = true)]
async fn without_a_transfer_setting_the_tool_is_not_offered() {
    let h = greeted().await;
    h.llm[0].reply("I can help you myself.");
    h.speak(secs(0.5)).await;
    h.silence(secs(0.4)).await;
    h.transcript("Can I speak to a real person").await;
    wait(3.0).await;
    let requests = lock(&h.llm_requests);
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|(_, r)| !r.tools.iter().any(|t| t.name == "transfer_call"))
    );
    assert!(lock(&h.telephony.log).transfers.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_snapshot_names_the_call_and_the_providers_in_use() {
    use crate::call::ChildKind;
    let mut cfg = config();
    cfg.switch_after = 2;
    cfg.campaign_name = "spring reminders".into();
    let mut h = Harness::start(cfg).await;
    *lock(&h.stt[0].fail_opens) = 2;
    wait(5.0).await;
    let ringing = ractor::call_t!(h.call, CallMsg::Snapshot, 1000).expect("snapshot");
    assert_eq!((ringing.age_secs, ringing.duration_secs), (5, None));
    h.answer().await;
    wait(3.5).await;
    let snap = ractor::call_t!(h.call, CallMsg::Snapshot, 1000).expect("snapshot");
    assert_eq!(snap.campaign_name, "spring reminders");
    assert_eq!(snap.number, "+1 •••• ••23", "the number is masked");
    assert_eq!(snap.age_secs, 8);
    assert_eq!(snap.duration_secs, Some(3), "counted from the answer");
    let children: Vec<(ChildKind, &str, usize)> = snap
        .children
        .iter()
        .map(|c| (c.kind, c.provider.as_str(), c.position))
        .collect();
    assert_eq!(
        children,
        [
            (ChildKind::Stt, "fallback", 1),
            (ChildKind::Llm, "primary", 0),
            (ChildKind::Tts, "primary", 0),
        ]
    );
    assert!(snap.children[0].restarts >= 1, "{:?}", snap.children);
    assert_eq!(snap.children[1].restarts, 0);
}
