//! Cold transfer to a person end to end, on Vonage and on Twilio: the
//! `asks_for_human` persona asks for a person, the agent brain calls the
//! `transfer_call` tool the campaign's `transfer` setting offers, talky
//! says the announce line and asks the provider to transfer; the
//! emulator records the target, closes the media socket and lets the
//! person talk until they hang up (a late `completed`). The call ends
//! `transferred`, the transcript up to the handoff is stored, the contact
//! is done (not retried), and the late events change nothing.

use std::time::Duration;

use serde_json::{Value, json};
use talky::providers::telephony::TelephonyProvider;
use talky_sim::llm::agent::AgentScript;
use talky_sim::vonage::persona::Personas;

use crate::e2e::{campaign_with, finished_calls, persona_for, via, world};
use crate::personas::{by_phone, turns};

const GREETING: &str = "Hello, this is Ada from the clinic.";
const ANNOUNCE: &str = "Please hold, I am connecting you to a colleague.";
/// The person calls are handed to.
const PERSON: &str = "+442079460999";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vonage_a_callee_who_asks_for_a_person_is_transferred() {
    asks_for_a_person_is_transferred(TelephonyProvider::Vonage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_a_callee_who_asks_for_a_person_is_transferred() {
    asks_for_a_person_is_transferred(TelephonyProvider::Twilio).await;
}

/// The transfer the emulator of `provider` recorded for the leg to
/// `phone`: (number, caller id) as the request sent them.
fn transfer_of(
    world: &crate::e2e::World,
    provider: TelephonyProvider,
    phone: &str,
) -> Option<(String, Option<String>)> {
    let digits = phone.trim_start_matches('+');
    let t = match provider {
        TelephonyProvider::Vonage => world
            .vonage
            .calls()
            .into_iter()
            .find(|c| c.to.trim_start_matches('+') == digits)
            .and_then(|c| c.transfer),
        TelephonyProvider::Twilio => world
            .twilio
            .calls()
            .into_iter()
            .find(|c| c.to.trim_start_matches('+') == digits)
            .and_then(|c| c.transfer),
    };
    t.map(|t| (t.number, t.caller_id))
}

/// A world where `human` is the `asks_for_human` persona and the agent
/// brain follows its script (the `transfer_call` tool when offered).
async fn asking_for_a_person(human: &str) -> crate::e2e::World {
    let mut personas = Personas::builtin();
    persona_for(&mut personas, "asks_for_human", human);
    let world = world(personas).await;
    world._keep.1.set_script(AgentScript);
    world
}

async fn asks_for_a_person_is_transferred(provider: TelephonyProvider) {
    let human = "+442079460981";
    let world = asking_for_a_person(human).await;
    let app = &world.app;
    let (id, key) = campaign_with(app, &[human], |b| {
        via(provider)(b);
        b["agent"]["greeting"] = json!(GREETING);
        b["max_attempts"] = json!(3);
        b["retry_backoff_secs"] = json!(0);
        b["transfer"] = json!({ "number": PERSON, "announce": ANNOUNCE });
    })
    .await;
    let calls = finished_calls(app, &key, &id, 1).await;
    assert_eq!(calls.len(), 1, "the call finished");
    let call = by_phone(&calls, human);
    assert_eq!(call["outcome"], "transferred", "{call}");
    assert_eq!(
        turns(call)
            .iter()
            .map(|(s, t, _)| (s.as_str(), t.as_str()))
            .collect::<Vec<_>>(),
        [
            ("agent", GREETING),
            ("user", "Can I speak to a real person, please?"),
            ("agent", &*format!("Of course. {ANNOUNCE}")),
        ],
        "the transcript up to the handoff: {call}"
    );

    // The emulator got the transfer, to the campaign's number, showing
    // the campaign's caller id (Vonage: digits; Twilio: E.164).
    let expected = match provider {
        TelephonyProvider::Vonage => (
            PERSON.trim_start_matches('+').to_string(),
            Some("14155550100".to_string()),
        ),
        TelephonyProvider::Twilio => (PERSON.to_string(), Some("+14155550100".to_string())),
    };
    assert_eq!(transfer_of(&world, provider, human), Some(expected));

    // The person hangs up later: the leg ends at the provider (its late
    // `completed`, and on Vonage the `transfer` event, answered 2xx by
    // talky) and the stored call does not move.
    world.assert_carried_by(provider, &calls).await;
    let (_, after) = app
        .get(
            &format!("/api/v1/calls/{}", call["id"].as_str().unwrap_or("")),
            &key,
        )
        .await;
    assert_eq!(after["outcome"], "transferred", "{after}");
    assert_eq!(after["status"], "finished", "{after}");
    assert_eq!(after["ended_at"], call["ended_at"], "{after}");

    // The contact is done: counted completed, never redialled (with three
    // attempts and no backoff, a retry would have come by now).
    let (_, page) = app
        .get(&format!("/api/v1/campaigns/{id}/contacts"), &key)
        .await;
    let contact = page["items"]
        .as_array()
        .and_then(|cs| cs.first())
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(contact["status"], "completed", "{contact}");
    assert_eq!(contact["attempts"], 1, "{contact}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, list) = app
        .get(&format!("/api/v1/calls?campaign_id={id}"), &key)
        .await;
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "not retried: {list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_transfer_setting_the_agent_keeps_the_call() {
    let human = "+442079460982";
    let world = asking_for_a_person(human).await;
    let app = &world.app;
    let (id, key) = campaign_with(app, &[human], |b| {
        b["agent"]["greeting"] = json!(GREETING);
    })
    .await;
    // The agent's own answer is stored while the call goes on (the
    // silent callee would keep it up through the reprompts): no transfer
    // was offered, none was asked of the provider.
    let (call, _) = crate::support::eventually(
        "the agent answers the request itself",
        Duration::from_secs(60),
        || async {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let (_, list) = app
                .get(&format!("/api/v1/calls?campaign_id={id}"), &key)
                .await;
            let call_id = list["items"][0]["id"].as_str()?.to_string();
            let (_, call) = app.get(&format!("/api/v1/calls/{call_id}"), &key).await;
            turns(&call)
                .iter()
                .any(|(s, x, _)| s == "agent" && x.contains("help you myself"))
                .then_some(call)
        },
    )
    .await;
    assert_ne!(call["outcome"], "transferred", "{call}");
    assert_eq!(transfer_of(&world, TelephonyProvider::Vonage, human), None);
}

/// kill -9 between the provider's acceptance of a transfer and talky's
/// record of it (the emulator holds its `204` back): the next process's
/// reconciler finds the call's durable transfer mark, leaves the leg to
/// the person (never hangs it up) and finishes the call `transferred`;
/// the contact is not called again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_transfer_leaves_the_person_on_the_line() {
    use crate::support::eventually;
    let world = crate::lifetime::World::new(&[
        "--default-persona",
        "asks_for_human",
        "--llm-script",
        "agent",
        "--transfer-response-delay-ms",
        "60000",
    ])
    .await;
    let mut a = world.serve("a").await;
    let campaign = world
        .campaign_with(
            &a,
            json!({"max_attempts": 2, "retry_backoff_secs": 1, "max_concurrent_calls": 1,
                   "transfer": {"number": PERSON, "announce": ANNOUNCE}}),
            1,
        )
        .await;
    let (leg, _) = eventually(
        "the emulator carries out the transfer",
        Duration::from_secs(90),
        || async {
            world
                .legs()
                .await
                .into_iter()
                .find(|l| l.transferred_to.is_some())
        },
    )
    .await;
    // talky has asked and the provider has accepted; its answer is held.
    a.signal("-KILL");
    assert!(!a.exit(Duration::from_secs(10)).await.success());

    let b = world.serve("b").await;
    world
        .wait_completed(&b, &campaign, Duration::from_secs(150))
        .await;
    let calls = world.calls(&b, &campaign).await;
    assert_eq!(calls.len(), 1, "the contact was called once: {calls:?}");
    assert_eq!(calls[0]["outcome"], "transferred", "{:?}", calls[0]);
    let contacts = world.contacts(&b, &campaign).await;
    assert_eq!(contacts[0]["attempts"], 1, "{:?}", contacts[0]);
    assert_eq!(contacts[0]["status"], "completed", "{:?}", contacts[0]);
    let after = world
        .legs()
        .await
        .into_iter()
        .find(|l| l.uuid == leg.uuid)
        .expect("the leg");
    assert!(
        !after.hung_up_by_talky,
        "the person's leg was not hung up: {after:?}"
    );
    assert_eq!(
        after.transferred_to.as_deref(),
        Some(PERSON.trim_start_matches('+'))
    );
    world.finish(vec![b]).await;
}
