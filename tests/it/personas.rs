//! Every conversational persona end to end, through the real server, the
//! real clients and every emulator, with the simulated agent brain
//! ([`AgentScript`]) behind the LLM emulator. Each test asserts what talky
//! stored against what the callee emulator said and decoded. The bodies
//! take the telephony provider: the tests here place their calls through
//! Vonage, `super::twilio_personas` runs the same bodies through Twilio.

use serde_json::{Value, json};
use talky::providers::telephony::TelephonyProvider;
use talky_sim::llm::agent::AgentScript;
use talky_sim::vonage::persona::Personas;

use crate::e2e::{Leg, campaign_with, finished_calls, persona_for, via, world};

/// (speaker, heard text or text, interrupted) of a stored call.
pub(crate) fn turns(call: &Value) -> Vec<(String, String, bool)> {
    call["turns"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    (
                        t["speaker"].as_str().unwrap_or("").to_string(),
                        t["heard_text"]
                            .as_str()
                            .or(t["text"].as_str())
                            .unwrap_or("")
                            .to_string(),
                        t["interrupted"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn by_phone<'a>(calls: &'a [Value], phone: &str) -> &'a Value {
    calls
        .iter()
        .find(|c| c["phone"] == phone)
        .unwrap_or_else(|| panic!("no call to {phone}: {calls:?}"))
}

fn sim_call(records: &[Leg], phone: &str) -> Leg {
    records
        .iter()
        .find(|r| r.to == phone.trim_start_matches('+'))
        .cloned()
        .unwrap_or_else(|| panic!("the emulator saw no call to {phone}"))
}

/// What the callee decoded, utterance by utterance.
fn heard(record: &Leg) -> Vec<String> {
    record.heard.iter().map(|h| h.text.clone()).collect()
}

/// Words of a text, without punctuation, for prefix comparisons.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn strip(t: &[(String, String, bool)]) -> Vec<(&str, &str)> {
    t.iter().map(|(s, x, _)| (s.as_str(), x.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declines_removals_and_interruptions_are_stored_as_they_happened() {
    declines_removals_and_interruptions(TelephonyProvider::Vonage).await;
}

/// Not interested, remove me, hangs up mid-sentence and barge-in, in one
/// campaign placed through `provider`.
pub(crate) async fn declines_removals_and_interruptions(provider: TelephonyProvider) {
    let no = "+442079460971";
    let remove = "+442079460972";
    let hangs_up = "+442079460973";
    let barges = "+442079460974";
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "not_interested", no);
    persona_for(&mut personas, "remove_me", remove);
    persona_for(&mut personas, "hangs_up_mid_sentence", hangs_up);
    persona_for(&mut personas, "barge_in", barges);
    let world = world(personas).await;
    let app = &world.app;
    world._keep.1.set_script(AgentScript);
    let (id, key) = campaign_with(app, &[no, remove, hangs_up, barges], |b| {
        via(provider)(b);
        b["agent"]["greeting"] = json!("Hello, this is Ada from the clinic.");
    })
    .await;
    let calls = finished_calls(app, &key, &id, 4).await;
    assert_eq!(calls.len(), 4, "all four calls finished");
    world.assert_carried_by(provider, &calls).await;
    let records = world.legs(provider);
    let greeting = "Hello, this is Ada from the clinic.";

    // Not interested: the agent says goodbye and the call is a decline.
    let call = by_phone(&calls, no);
    assert_eq!(
        strip(&turns(call)),
        [
            ("agent", greeting),
            ("user", "No thanks, I am not interested."),
            ("agent", "I understand. Thank you for your time. Goodbye."),
        ],
        "{call}"
    );
    assert_eq!(call["outcome"], "rejected", "{call}");
    // Sentences are synthesised one by one and played back to back, so
    // the callee hears them as one utterance without the spaces.
    let callee = heard(&sim_call(&records, no));
    assert_eq!(
        callee.iter().map(|h| words(h)).collect::<Vec<_>>(),
        [
            words(greeting),
            words("I understand. Thank you for your time. Goodbye.")
        ]
    );

    // Asks to be removed: on the tenant's do-not-call list at once.
    let call = by_phone(&calls, remove);
    let t = turns(call);
    assert_eq!(
        t.get(1).map(|(s, x, _)| (s.as_str(), x.as_str())),
        Some(("user", "Please remove me from your list.")),
        "{t:?}"
    );
    let (_, page) = app
        .get(&format!("/api/v1/campaigns/{id}/contacts"), &key)
        .await;
    let contact = page["items"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["phone"] == remove))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(contact["last_outcome"], "do_not_call", "{contact}");
    assert_eq!(contact["status"], "dnc", "{contact}");
    let (status, dnc) = app.get("/api/v1/dnc", &key).await;
    assert_eq!(status, 200);
    assert!(
        dnc["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["phone"] == remove)),
        "{dnc}"
    );

    // Hangs up mid-sentence: the greeting is stored as interrupted, with
    // only the words the callee heard.
    let call = by_phone(&calls, hangs_up);
    let t = turns(call);
    assert_eq!(t.len(), 1, "{t:?}");
    let (speaker, stored_heard, interrupted) = &t[0];
    assert_eq!(speaker, "agent");
    assert!(interrupted, "{t:?}");
    let callee = heard(&sim_call(&records, hangs_up));
    assert_heard_prefix(greeting, stored_heard, &callee);

    // Barges in after three words: the greeting is cut, the question is
    // answered.
    let call = by_phone(&calls, barges);
    let t = turns(call);
    assert!(t.len() >= 3, "{t:?}");
    assert!(t[0].2, "the greeting was interrupted: {t:?}");
    let callee = heard(&sim_call(&records, barges));
    assert_heard_prefix(greeting, &t[0].1, &callee[..1.min(callee.len())]);
    assert_eq!(
        (t[1].0.as_str(), t[1].1.as_str()),
        ("user", "Sorry, who is this?")
    );
    assert_eq!(
        (t[2].0.as_str(), t[2].1.as_str()),
        (
            "agent",
            "This is Ada, calling about your appointment. Is now a good time?"
        )
    );
    assert!(
        sim_call(&records, barges).clears > 0,
        "talky cleared the callee's queued audio"
    );
    world.app.stop().await;
}

/// An interrupted agent turn: what talky stored as heard is a proper
/// prefix of what it meant to say, and is what the callee decoded.
fn assert_heard_prefix(said: &str, stored: &str, callee: &[String]) {
    let (said, stored) = (words(said), words(stored));
    assert!(
        !stored.is_empty() && stored.len() < said.len(),
        "cut short: {stored:?} of {said:?}"
    );
    assert_eq!(stored[..], said[..stored.len()], "a prefix of the text");
    let decoded = words(&callee.join(" "));
    assert_eq!(decoded, stored, "stored as heard = decoded by the callee");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_callee_is_reprompted_then_hung_up_on() {
    silent_callee_reprompted(TelephonyProvider::Vonage).await;
}

/// The silent persona, placed through `provider`: reprompted twice, then
/// hung up on.
pub(crate) async fn silent_callee_reprompted(provider: TelephonyProvider) {
    let silent = "+442079460975";
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "silent", silent);
    let world = world(personas).await;
    let app = &world.app;
    world._keep.1.set_script(AgentScript);
    // The campaign's silence before a reprompt: 4 s (the default is 8).
    let (id, key) = campaign_with(app, &[silent], |b| {
        via(provider)(b);
        b["reprompt_after_secs"] = json!(4);
    })
    .await;
    supervisors_see_the_live_call(app, &id, silent, provider).await;
    let calls = finished_calls(app, &key, &id, 1).await;
    world.assert_carried_by(provider, &calls).await;
    let call = calls.first().cloned().unwrap_or(Value::Null);
    let t = turns(&call);
    let agent: Vec<&str> = t.iter().map(|(_, x, _)| x.as_str()).collect();
    assert!(t.iter().all(|(s, _, _)| s == "agent"), "{t:?}");
    assert_eq!(
        agent
            .iter()
            .filter(|x| **x == "Are you still there?")
            .count(),
        2,
        "two reprompts: {agent:?}"
    );
    assert_eq!(call["outcome"], "no_input", "{call}");
    // Each agent turn starts the campaign's 4 s after the one before it
    // ended (a little more: playout of its last frames).
    let at = |t: &Value, k: &str| {
        t[k].as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .unwrap_or_else(|| panic!("{k} of {t}"))
    };
    let stored = call["turns"].as_array().cloned().unwrap_or_default();
    for pair in stored.windows(2) {
        let gap = (at(&pair[1], "started_at") - at(&pair[0], "ended_at")).as_seconds_f64();
        assert!(
            (3.5..7.0).contains(&gap),
            "silence before a reprompt {gap} s: {call}"
        );
    }
    let record = sim_call(&world.legs(provider), silent);
    assert_eq!(
        heard(&record).iter().map(|h| words(h)).collect::<Vec<_>>(),
        agent.iter().map(|a| words(a)).collect::<Vec<_>>(),
        "the callee heard every agent turn"
    );
    world.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_line_is_retried_up_to_max_attempts() {
    busy_and_unanswered_lines_retried(TelephonyProvider::Vonage).await;
}

/// A busy line and one nobody answers, placed through `provider` with two
/// attempts: each is dialled twice, then the contact is given up on. The
/// unanswered callee rings 300 ms and is reported as not answered (Vonage
/// `unanswered`, Twilio `no-answer`) rather than ringing out the whole
/// ring time twice.
pub(crate) async fn busy_and_unanswered_lines_retried(provider: TelephonyProvider) {
    let (busy, none) = ("+442079460976", "+442079460978");
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "busy", busy);
    let mut unanswered = Personas::builtin()
        .get("no_answer")
        .cloned()
        .expect("persona");
    unanswered.name = "unanswered".into();
    unanswered.outcome = talky_sim::persona::Outcome::Unanswered;
    unanswered.ring_ms = 300;
    unanswered.numbers = vec![none.trim_start_matches('+').to_string()];
    personas.insert(unanswered);
    let world = world(personas).await;
    let app = &world.app;
    let (id, key) = campaign_with(app, &[busy, none], |b| {
        via(provider)(b);
        b["max_attempts"] = json!(2);
        b["retry_backoff_secs"] = json!(0);
    })
    .await;
    let calls = finished_calls(app, &key, &id, 4).await;
    assert_eq!(calls.len(), 4, "each dialled twice: {calls:?}");
    world.assert_carried_by(provider, &calls).await;
    let (_, page) = app
        .get(&format!("/api/v1/campaigns/{id}/contacts"), &key)
        .await;
    for (phone, outcome) in [(busy, "busy"), (none, "no_answer")] {
        let mine: Vec<&Value> = calls.iter().filter(|c| c["phone"] == phone).collect();
        assert!(
            mine.iter().all(|c| c["outcome"] == outcome),
            "{phone}: {mine:?}"
        );
        let mut attempts: Vec<i64> = mine.iter().filter_map(|c| c["attempt"].as_i64()).collect();
        attempts.sort_unstable();
        assert_eq!(attempts, [1, 2], "{phone}");
        let contact = page["items"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["phone"] == phone))
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(contact["attempts"], 2, "{contact}");
        assert_eq!(contact["last_outcome"], outcome, "{contact}");
        assert_eq!(
            contact["status"], "failed",
            "attempts exhausted, no third attempt: {contact}"
        );
        assert_eq!(
            world
                .legs(provider)
                .iter()
                .filter(|r| r.to == phone.trim_start_matches('+'))
                .count(),
            2,
            "{phone} dialled twice"
        );
    }
    world.app.stop().await;
}

/// While a call is live, the actor tree shows the running campaign and the
/// call with its STT, LLM and TTS children, all named as people do (the
/// campaign's name, the number masked, providers by name), and `/metrics`
/// the call gauges.
async fn supervisors_see_the_live_call(
    app: &crate::support::TestApp,
    campaign: &str,
    phone: &str,
    provider: TelephonyProvider,
) {
    let mut tree = Value::Null;
    for _ in 0..100 {
        let res = app
            .client
            .get(app.url("/api/v1/supervisor/actors"))
            .bearer_auth(&app.admin_token)
            .send()
            .await
            .expect("send");
        tree = res.json().await.unwrap_or(Value::Null);
        let answered = tree["dialer"]["calls"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["status"] == "answered" || c["status"] == "conversation")
        });
        if answered {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(tree["campaigns"][0]["campaign"], campaign, "{tree}");
    assert_eq!(tree["campaigns"][0]["state"], "running", "{tree}");
    assert_eq!(tree["campaigns"][0]["live_calls"], 1, "{tree}");
    let call = &tree["dialer"]["calls"][0];
    assert_eq!(call["key"]["campaign"], campaign, "{tree}");
    assert!(
        call["status"] == "answered" || call["status"] == "conversation",
        "{tree}"
    );
    let children: Vec<&str> = call["children"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["kind"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(children.len(), 3, "STT, LLM and TTS children: {tree}");
    crate::live::assert_named(&tree, call, "e2e", phone);
    assert_eq!(call["provider"], provider.as_str(), "{tree}");
    assert_eq!(tree["campaigns"][0]["name"], "e2e", "{tree}");
    let metrics = crate::vonage::metrics_text(app).await;
    assert!(metrics.contains("talky_calls_active"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voicemail_gets_the_campaign_message_after_the_tone() {
    voicemail_gets_the_message(TelephonyProvider::Vonage).await;
}

/// The voicemail persona, placed through `provider` by a campaign that
/// leaves messages: the message is played whole after the tone.
pub(crate) async fn voicemail_gets_the_message(provider: TelephonyProvider) {
    let machine = "+442079460977";
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "voicemail", machine);
    let world = world(personas).await;
    let app = &world.app;
    let message = "Hello, this is Ada from the clinic. Please call us back.";
    let (id, key) = campaign_with(app, &[machine], |b| {
        via(provider)(b);
        b["voicemail_action"] = json!("leave_message");
        b["agent"]["voicemail_message"] = json!(message);
    })
    .await;
    let calls = finished_calls(app, &key, &id, 1).await;
    world.assert_carried_by(provider, &calls).await;
    let call = calls.first().cloned().unwrap_or(Value::Null);
    assert_eq!(call["outcome"], "machine", "{call}");
    let t = turns(&call);
    let last = t.last().cloned().unwrap_or_default();
    assert_eq!(
        (last.0.as_str(), last.1.as_str(), last.2),
        ("agent", message, false),
        "the message was left whole: {t:?}"
    );
    // The machine recorded it: its last utterance heard ends with the
    // whole message (a reply cut by the verdict may run straight into it).
    let record = sim_call(&world.legs(provider), machine);
    let letters = |t: &str| words(t).concat();
    let last = heard(&record)
        .last()
        .map(|h| letters(h))
        .unwrap_or_default();
    assert!(last.ends_with(&letters(message)), "{:?}", record.heard);
    // ... and it was played after the tone: the provider reported the
    // greeting's end (Vonage `beep_start`, Twilio's `machine_end_beep`
    // verdict) before the machine heard the message, so the utterance
    // that holds it ends at least the message's length (70 ms a character
    // in the in-band code) after that report.
    let beep = record.tone_at.expect("the emulator reported the tone");
    let utterance = record.heard.last().expect("an utterance");
    let message_ms = 70 * i64::try_from(message.chars().count()).unwrap_or(0);
    assert!(
        (utterance.ended - beep).num_milliseconds() >= message_ms * 9 / 10,
        "message heard until {}, tone at {beep}: the message started before the tone",
        utterance.ended
    );
    world.app.stop().await;
}
