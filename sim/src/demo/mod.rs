//! `talky-sim demo`: a whole simulated campaign in one command. Every emulator
//! runs on loopback in this process (Vonage and Twilio with their callee
//! personas, Deepgram STT, a primary and a fallback LLM, ElevenLabs TTS,
//! Whisper and Aura), talky's server runs against them with its real
//! clients, and the campaigns are driven through the public REST API
//! exactly as an operator would: a tenant, a campaign on Vonage with ten
//! contacts (one per persona), a second campaign with `telephony: twilio`
//! and four contacts (the personas whose path differs on Twilio: a
//! conversation in 8 kHz μ-law, Twilio's `busy` status and the retry,
//! Twilio's answering-machine verdict and the message left, a barge-in
//! answered with a Media Streams `clear`), start, watch, and a closing
//! table per contact with the provider that carried its calls.
//!
//! Two campaigns, not one `vonage_then_twilio`: with a healthy Vonage that
//! chain never reaches Twilio, so its calls would all show `vonage`; a
//! campaign choosing Twilio is how an operator sends calls there.
//!
//! After the calls: each campaign asks for a post-call analysis to a
//! schema (the LLM emulator answers from the transcript), and a webhook
//! receiver on loopback ([`hooks`]) subscribes to every event, refusing its
//! first deliveries so talky's retries show; the demo waits for every
//! `call.ended` and `call.analyzed`, then prints one call's analysis and
//! the deliveries per event type.
//!
//! Nothing here is a shortcut around the product: the emulators are only
//! reached over their wire protocols, and the table is read back over REST.

pub mod hooks;
pub mod report;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use talky_actors::campaign_actor::CampaignConfig;
use talky_actors::dialer::DialerConfig;

use crate::aura::{AuraSim, AuraSimConfig};
use crate::deepgram::{DeepgramSim, DeepgramSimConfig};
use crate::elevenlabs::{ElevenLabsSim, ElevenLabsSimConfig};
use crate::llm::agent::AgentScript;
use crate::llm::{LlmSim, LlmSimConfig};
use crate::receiver::ids_by;
use crate::twilio::{TwilioSim, TwilioSimConfig};
use crate::vonage::persona::Personas;
use crate::vonage::{VonageSim, VonageSimConfig};
use crate::whisper::{WhisperSim, WhisperSimConfig};
use talky::config::{Config, Secret};

/// The demo's Vonage application id (the emulator checks JWTs for it).
const APP_ID: &str = "d3m0d3m0-0000-4000-8000-000000000001";
/// The demo's key pair: a test key committed for the emulator, never a
/// real credential.
const PRIVATE_KEY: &str = include_str!("../../../src/providers/vonage/testdata/test_private.pem");
const PUBLIC_KEY: &str = include_str!("../../../src/providers/vonage/testdata/test_public.pem");
/// What the primary LLM emulator fails on (one contact asks it).
const FAILURE_TRIGGER: &str = "the offer";
/// The longest the demo waits for the campaign to finish.
const DEMO_DEADLINE: Duration = Duration::from_secs(300);
/// The longest the demo waits, after the calls, for analyses and webhook
/// deliveries.
const AFTER_DEADLINE: Duration = Duration::from_secs(90);
/// HTTP timeout of the demo's own REST calls.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The contacts: name, persona, number (valid London drama numbers, so the
/// import accepts them; the Vonage emulator maps each to its persona).
pub const CONTACTS: &[(&str, &str, &str)] = &[
    ("Ann", "interested", "+442079460100"),
    ("Ben", "not_interested", "+442079460101"),
    ("Cleo", "remove_me", "+442079460102"),
    ("Dan", "busy", "+442079460103"),
    ("Eve", "no_answer", "+442079460104"),
    ("Finn", "voicemail", "+442079460105"),
    ("Gus", "barge_in", "+442079460106"),
    ("Hana", "silent", "+442079460107"),
    ("Ivo", "hangs_up_mid_sentence", "+442079460108"),
    ("Jo", "asks_about_offer", "+442079460109"),
];

/// The contacts of the second campaign, placed through Twilio (its
/// emulator maps each number to its persona, as Vonage's does).
pub const TWILIO_CONTACTS: &[(&str, &str, &str)] = &[
    ("Kai", "interested", "+442079460110"),
    ("Lea", "busy", "+442079460111"),
    ("Max", "voicemail", "+442079460112"),
    ("Nia", "barge_in", "+442079460113"),
];

/// Every contact of the demo, Vonage's campaign first.
fn all_contacts() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    CONTACTS.iter().chain(TWILIO_CONTACTS)
}

/// How the demo runs.
#[derive(Clone, Debug, Default)]
pub struct DemoOptions {
    /// Keep the server and emulators up after the table, until Ctrl-C.
    pub keep_running: bool,
}

/// What the demo leaves behind, for a test or a caller to inspect.
#[derive(Debug)]
pub struct DemoResult {
    /// One row per contact, in [`CONTACTS`] then [`TWILIO_CONTACTS`] order.
    pub rows: Vec<report::Row>,
    /// The campaign ids: Vonage's, then Twilio's.
    pub campaigns: Vec<String>,
    /// The demo tenant's API key made for this run.
    pub api_key: String,
    /// The server's base URL.
    pub base: String,
    /// The demo's webhook endpoint id.
    pub webhook: String,
    /// What the demo's webhook receiver got, in arrival order.
    pub deliveries: Vec<crate::receiver::Received>,
    /// The endpoint's secret (to verify what the receiver got).
    pub webhook_secret: String,
}

/// The events the demo's receiver subscribes to: all of them.
const EVENTS: [&str; 5] = [
    "call.started",
    "call.ended",
    "call.analyzed",
    "contact.do_not_call",
    "campaign.completed",
];

/// The demo campaigns' structured data: what a clinic's system would
/// file from each call.
fn analysis_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "interested": {"type": "boolean", "description": "the callee wants the appointment"},
            "do_not_call": {"type": "boolean", "description": "the callee asked not to be called again"},
            "callee_words": {"type": "string", "description": "what the callee said, in short"},
        },
        "required": ["interested", "do_not_call"],
    })
}

/// The built-in personas, each answering the numbers of the demo's
/// contacts it plays (in either campaign).
fn personas() -> anyhow::Result<Personas> {
    let mut numbers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (_, name, phone) in all_contacts() {
        numbers
            .entry(name)
            .or_default()
            .push(phone.trim_start_matches('+').to_string());
    }
    let builtin = Personas::builtin();
    let mut personas = builtin.clone();
    for (name, numbers) in numbers {
        let mut p = builtin
            .get(name)
            .cloned()
            .with_context(|| format!("built-in persona {name}"))?;
        p.numbers = numbers;
        personas.insert(p);
    }
    Ok(personas)
}

/// The emulators of the demo, kept alive while it runs.
struct Emulators {
    vonage: crate::vonage::VonageSimHandle,
    twilio: crate::twilio::TwilioSimHandle,
    deepgram: crate::deepgram::DeepgramSimHandle,
    llm: crate::llm::LlmSimHandle,
    llm_fallback: crate::llm::LlmSimHandle,
    tts: crate::elevenlabs::ElevenLabsSimHandle,
    whisper: crate::whisper::WhisperSimHandle,
    aura: crate::aura::AuraSimHandle,
}

async fn emulators() -> anyhow::Result<Emulators> {
    let vonage = VonageSim::start(VonageSimConfig {
        application_id: APP_ID.into(),
        public_key_pem: PUBLIC_KEY.into(),
        personas: personas()?,
        ..VonageSimConfig::default()
    })
    .await
    .context("vonage emulator")?;
    // Its own account and (fake) auth token: every callback it posts is
    // signed, and talky checks the signatures.
    let twilio = TwilioSim::start(TwilioSimConfig {
        personas: personas()?,
        ..TwilioSimConfig::default()
    })
    .await
    .context("twilio emulator")?;
    // Latencies of real services, so the latency column means something.
    let deepgram = DeepgramSim::start(DeepgramSimConfig {
        final_latency: Duration::from_millis(150),
        ..DeepgramSimConfig::default()
    })
    .await
    .context("deepgram emulator")?;
    let llm_cfg = LlmSimConfig {
        first_token_latency: Duration::from_millis(200),
        tokens_per_second: 40.0,
        ..LlmSimConfig::default()
    };
    let llm = LlmSim::start(LlmSimConfig {
        fail_when_user_says: Some(FAILURE_TRIGGER.into()),
        ..llm_cfg.clone()
    })
    .await
    .context("llm emulator")?;
    llm.set_script(AgentScript);
    let llm_fallback = LlmSim::start(llm_cfg)
        .await
        .context("fallback llm emulator")?;
    llm_fallback.set_script(AgentScript);
    let tts = ElevenLabsSim::start(ElevenLabsSimConfig {
        first_audio_latency: Duration::from_millis(120),
        ..ElevenLabsSimConfig::default()
    })
    .await
    .context("tts emulator")?;
    // The fallbacks of STT and TTS (Aura shares Deepgram's key).
    let whisper = WhisperSim::start(WhisperSimConfig::default())
        .await
        .context("whisper emulator")?;
    let aura = AuraSim::start(AuraSimConfig {
        api_key: deepgram.api_key(),
        ..AuraSimConfig::default()
    })
    .await
    .context("aura emulator")?;
    Ok(Emulators {
        vonage,
        twilio,
        deepgram,
        llm,
        llm_fallback,
        tts,
        whisper,
        aura,
    })
}

/// Points `config`'s providers at the emulators.
fn provider_config(config: &mut Config, sims: &Emulators, key_file: &std::path::Path) {
    let p = &mut config.providers;
    p.enabled = true;
    p.vonage.application_id = Some(APP_ID.into());
    p.vonage.private_key_file = Some(key_file.to_path_buf());
    p.vonage.api_base_url = Some(sims.vonage.base_url());
    p.twilio.account_sid = Some(sims.twilio.account_sid());
    p.twilio.api_base_url = Some(sims.twilio.base_url());
    p.twilio.auth_token = Secret::new(sims.twilio.auth_token());
    p.deepgram.base_url = Some(sims.deepgram.base_url());
    p.deepgram.api_key = Secret::new(sims.deepgram.api_key());
    p.llm.base_url = Some(sims.llm.base_url());
    p.llm.api_key = Secret::new(sims.llm.api_key());
    p.elevenlabs.base_url = Some(sims.tts.base_url());
    p.elevenlabs.api_key = Secret::new(sims.tts.api_key());
    p.llm_fallback.base_url = Some(sims.llm_fallback.base_url());
    p.llm_fallback.api_key = Secret::new(sims.llm_fallback.api_key());
    p.whisper.base_url = Some(sims.whisper.base_url());
    p.whisper.api_key = Some(Secret::new(sims.whisper.api_key()));
    p.aura.base_url = Some(sims.aura.base_url());
}

/// A tiny REST client of the demo tenant.
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        // The demo key has the per-key rate limit every key has: a 429 is
        // waited out (its Retry-After) a few times, as a client should.
        let mut tries = 0;
        let res = loop {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&self.key);
            if let Some(body) = &body {
                req = req.json(body);
            }
            let res = req
                .send()
                .await
                .with_context(|| format!("{method} {path}"))?;
            if res.status() != reqwest::StatusCode::TOO_MANY_REQUESTS || tries == 5 {
                break res;
            }
            tries += 1;
            let wait = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait.min(5))).await;
        };
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            anyhow::bail!("{method} {path}: {status}: {body}");
        }
        Ok(body)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

async fn demo_key(pool: &talky::db::Pool) -> anyhow::Result<String> {
    let mut conn = pool.get().await.context("database connection")?;
    let secret = match talky::db::tenants::find_by_name(&mut conn, "demo").await? {
        Some(tenant) => {
            talky::db::api_keys::create(&mut conn, tenant.tenant_id(), "demo")
                .await?
                .secret
        }
        None => {
            talky::http::admin::create_tenant_with_key(&mut conn, "demo")
                .await?
                .api_key
                .secret
        }
    };
    Ok(secret)
}

/// A demo campaign placing its calls through `telephony`.
fn campaign_body(telephony: &str) -> Value {
    json!({
        "name": format!("Demo campaign ({telephony}) {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S")),
        "telephony": telephony,
        "caller_id": "+14155550100",
        "agent": {
            "system_prompt": "You are Ada, a friendly assistant of the clinic. Confirm appointments, answer briefly, respect every wish not to be called.",
            "greeting": "Hello, this is Ada from the clinic.",
            "voicemail_message": "Hello, this is Ada from the clinic. Please call us back.",
        },
        "calling_window": { "start": "00:00", "end": "23:59",
            "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] },
        "max_attempts": 2,
        "retry_backoff_secs": 4,
        "max_concurrent_calls": 20,
        "voicemail_action": "leave_message",
        "recording_enabled": true,
        "analysis": {
            "summary_prompt": "Summarise the call in two sentences for the clinic's front desk.",
            "structured_data_schema": analysis_schema(),
            "success_rubric": "pass/fail: pass when the callee is interested",
        },
    })
}

/// Runs the demo against `config`'s database; prints progress and the
/// table to stdout.
pub async fn run(mut config: Config, opts: DemoOptions) -> anyhow::Result<DemoResult> {
    let started = Instant::now();
    let sims = emulators().await?;
    let key_file = std::env::temp_dir().join(format!("talky-demo-{}.pem", std::process::id()));
    std::fs::write(&key_file, PRIVATE_KEY).context("writing the demo key")?;
    provider_config(&mut config, &sims, &key_file);
    // The receiver is on loopback, which talky refuses as a webhook target
    // unless told (as here); retries are quick so the demo shows them.
    config.webhooks.allow_private_targets = true;
    config.webhooks.poll_ms = 200;
    config.webhooks.retry_base_ms = 500;
    config.webhooks.retry_max_secs = 5;
    config.analysis.poll_ms = 250;

    let server = talky::app::Server::start(config.clone()).await?;
    let base = format!("http://{}", server.addr);
    config.server.public_url = Some(base.clone());
    // Each chain has its fallback: Whisper behind Deepgram, a second LLM
    // behind the first (the call that trips the primary carries on with
    // it), Aura behind ElevenLabs.
    let ports =
        talky::runtime::real_ports(&config, server.ctx.live_db.clone(), server.ctx.live.clone())?;
    server
        .run_dialer(
            ports,
            DialerConfig {
                calls_per_second: 10.0,
                ..DialerConfig::default()
            },
            CampaignConfig {
                tick: Duration::from_millis(250),
                ..CampaignConfig::default()
            },
            talky_actors::tree::DIALER,
        )
        .await?;
    server.run_analysis()?;

    let api = Api {
        http: reqwest::Client::builder().timeout(HTTP_TIMEOUT).build()?,
        base: base.clone(),
        key: demo_key(&server.ctx.db).await?,
    };
    // Each run starts from the same world: a previous run put Cleo on
    // the demo tenant's do-not-call list, so take the demo numbers off it.
    for (_, _, phone) in all_contacts() {
        let path = format!("/api/v1/dnc/{}", phone.replace('+', "%2B"));
        match api.call(reqwest::Method::DELETE, &path, None).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("404") => {}
            Err(e) => return Err(e),
        }
    }
    let receiver = hooks::start().await.context("webhook receiver")?;
    let hook = api
        .post(
            "/api/v1/webhooks",
            json!({ "url": receiver.url, "events": EVENTS }),
        )
        .await?;
    let webhook_secret = hook["secret"]
        .as_str()
        .context("webhook secret")?
        .to_string();
    let webhook = hook["id"].as_str().context("webhook id")?.to_string();
    println!(
        "talky-sim demo: webhook {webhook} posts every event to {} (it refuses the first {})",
        receiver.url,
        hooks::FAILED_FIRST
    );
    let mut campaigns = Vec::new();
    for (telephony, contacts) in [("vonage", CONTACTS), ("twilio", TWILIO_CONTACTS)] {
        let id = create_campaign(&api, telephony, contacts).await?;
        campaigns.push(id);
    }
    println!("talky-sim demo: calling through the emulators...");
    for id in &campaigns {
        api.post(&format!("/api/v1/campaigns/{id}/start"), json!({}))
            .await?;
    }

    let mut last = String::new();
    let deadline = Instant::now() + DEMO_DEADLINE;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut states = Vec::new();
        let (mut live, mut done) = (0, 0);
        for id in &campaigns {
            let state = api.get(&format!("/api/v1/campaigns/{id}")).await?;
            let calls = all_calls(&api, id).await?;
            let l = calls.iter().filter(|c| c["status"] != "finished").count();
            live += l;
            done += calls.len() - l;
            states.push(state["state"].as_str().unwrap_or("?").to_string());
        }
        let line = format!(
            "campaigns {:<21} calls: {live} live, {done} finished",
            states.join(" / ")
        );
        if line != last {
            println!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        if states.iter().all(|s| s == "completed") && live == 0 {
            break;
        }
        if Instant::now() > deadline {
            println!("the campaigns did not finish in {DEMO_DEADLINE:?}; showing where they stand");
            break;
        }
    }

    after_the_calls(&api, &campaigns, &receiver, started).await?;

    let mut rows = Vec::new();
    for (id, contacts) in campaigns.iter().zip([CONTACTS, TWILIO_CONTACTS]) {
        rows.extend(campaign_rows(&api, id, contacts).await?);
    }
    println!("\n{}\n", report::table(&rows));
    println!(
        "Finished in {:.0} s. Read any call's transcript:",
        started.elapsed().as_secs_f64()
    );
    if let Some(call) = rows.iter().find_map(|r| r.last_call.clone()) {
        println!(
            "  curl -s {base}/api/v1/calls/{call} -H 'Authorization: Bearer {}'",
            api.key
        );
        println!("  talky calls show {call}");
    }
    show_analysis(&api, &rows).await?;
    let deliveries = receiver.received();
    println!(
        "\nWebhook deliveries to {} (signatures checked by the receiver):\n{}",
        receiver.url,
        hooks::table(&deliveries, &webhook_secret)
    );
    println!(
        "  curl -s {base}/api/v1/webhooks/{webhook}/deliveries -H 'Authorization: Bearer {}'",
        api.key
    );
    for id in &campaigns {
        println!(
            "  curl -s '{base}/api/v1/campaigns/{id}/results' -H 'Accept: text/csv' -H 'Authorization: Bearer {}'",
            api.key
        );
    }
    println!(
        "\nThe operator console: {base}/console (sign in with the API key {}; the admin token in .talky/admin_token opens the supervisor view){}",
        api.key,
        if opts.keep_running {
            ""
        } else {
            ". `make demo KEEP=1` keeps it open."
        }
    );
    let result = DemoResult {
        rows,
        campaigns,
        api_key: api.key.clone(),
        base,
        webhook,
        deliveries,
        webhook_secret,
    };
    if opts.keep_running {
        println!(
            "\nThe server stays up on {} (API key above; metrics: GET /metrics with TALKY_ADMIN_TOKEN). Ctrl-C stops it.",
            result.base
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    server.stop().await;
    drop(sims);
    let _ = std::fs::remove_file(&key_file);
    Ok(result)
}

async fn all_calls(api: &Api, campaign: &str) -> anyhow::Result<Vec<Value>> {
    let page = api
        .get(&format!("/api/v1/calls?campaign_id={campaign}&limit=200"))
        .await?;
    Ok(page["items"].as_array().cloned().unwrap_or_default())
}

/// Creates a campaign through `telephony` and imports `contacts`; its id.
async fn create_campaign(
    api: &Api,
    telephony: &str,
    contacts: &[(&str, &str, &str)],
) -> anyhow::Result<String> {
    let campaign = api
        .post("/api/v1/campaigns", campaign_body(telephony))
        .await?;
    let id = campaign["id"].as_str().context("campaign id")?.to_string();
    let body: Vec<Value> = contacts
        .iter()
        .map(|(name, persona, phone)| {
            json!({ "phone": phone, "name": name, "timezone": "Europe/London",
                    "metadata": { "persona": persona } })
        })
        .collect();
    let imported = api
        .post(
            &format!("/api/v1/campaigns/{id}/contacts"),
            Value::Array(body),
        )
        .await?;
    println!(
        "talky-sim demo: campaign {id} (telephony {telephony}), {} contacts imported",
        imported["accepted"]
    );
    Ok(id)
}

/// The rows of `campaign`'s `contacts`, in their order.
async fn campaign_rows(
    api: &Api,
    campaign: &str,
    contacts_of: &[(&str, &str, &str)],
) -> anyhow::Result<Vec<report::Row>> {
    let contacts = api
        .get(&format!("/api/v1/campaigns/{campaign}/contacts?limit=100"))
        .await?;
    let mut by_contact: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut calls = all_calls(api, campaign).await?;
    calls.sort_by(|a, b| a["created_at"].as_str().cmp(&b["created_at"].as_str()));
    for call in calls {
        let detail = api
            .get(&format!(
                "/api/v1/calls/{}",
                call["id"].as_str().unwrap_or("")
            ))
            .await?;
        by_contact
            .entry(call["contact_id"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(detail);
    }
    let items = contacts["items"].as_array().cloned().unwrap_or_default();
    let mut rows = Vec::new();
    for (name, persona, _) in contacts_of {
        if let Some(contact) = items.iter().find(|c| c["name"] == *name) {
            let id = contact["id"].as_str().unwrap_or("");
            let calls = by_contact.get(id).map(Vec::as_slice).unwrap_or(&[]);
            rows.push(report::row(contact, persona, calls));
        }
    }
    Ok(rows)
}

/// Waits (bounded) until every conversation's analysis is stored and the
/// receiver has accepted a `call.ended` for every finished call, a
/// `call.analyzed` for every analysis and a `campaign.completed` for each
/// campaign; prints where that stands when it changes.
async fn after_the_calls(
    api: &Api,
    campaigns: &[String],
    receiver: &crate::receiver::Receiver,
    started: Instant,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + AFTER_DEADLINE;
    let mut last = String::new();
    // Calls whose analysis is settled (or who have none) are not asked
    // again.
    let mut settled: BTreeMap<String, bool> = BTreeMap::new();
    loop {
        let mut calls = Vec::new();
        for id in campaigns {
            calls.extend(all_calls(api, id).await?);
        }
        let mut pending = 0;
        for call in &calls {
            let id = call["id"].as_str().unwrap_or_default();
            if settled.contains_key(id) {
                continue;
            }
            let detail = api.get(&format!("/api/v1/calls/{id}")).await?;
            match detail["analysis"]["state"].as_str() {
                None => {
                    settled.insert(id.to_string(), false);
                }
                Some("done" | "error") => {
                    settled.insert(id.to_string(), true);
                }
                Some(_) => pending += 1,
            }
        }
        let analysed: Vec<&String> = settled
            .iter()
            .filter_map(|(id, analysed)| analysed.then_some(id))
            .collect();
        let accepted = receiver.accepted();
        let ended = ids_by(&accepted, "call.ended", "id");
        let analyzed = ids_by(&accepted, "call.analyzed", "call_id");
        let completed = ids_by(&accepted, "campaign.completed", "campaign_id");
        let events_in = calls
            .iter()
            .all(|c| ended.contains_key(c["id"].as_str().unwrap_or_default()))
            && analysed.iter().all(|id| analyzed.contains_key(*id))
            && campaigns.iter().all(|id| completed.contains_key(id));
        let line = format!(
            "analyses: {} stored, {pending} running; webhook events delivered: {} call.ended, {} call.analyzed",
            analysed.len(),
            ended.len(),
            analyzed.len()
        );
        if line != last {
            println!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        if pending == 0 && events_in {
            return Ok(());
        }
        if Instant::now() > deadline {
            println!(
                "analyses and deliveries did not settle in {AFTER_DEADLINE:?}; showing where they stand"
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Prints the analysis of the first contact whose last call has one.
async fn show_analysis(api: &Api, rows: &[report::Row]) -> anyhow::Result<()> {
    for row in rows {
        let Some(call) = &row.last_call else { continue };
        let detail = api.get(&format!("/api/v1/calls/{call}")).await?;
        let a = &detail["analysis"];
        if a["state"] != "done" {
            continue;
        }
        println!(
            "\nThe analysis of {}'s call ({} persona), as GET /api/v1/calls/{call} shows it:",
            row.name, row.persona
        );
        println!(
            "  summary:         {}",
            a["summary"].as_str().unwrap_or("-")
        );
        println!("  structured_data: {}", a["structured_data"]);
        println!("  success:         {}", a["success"]);
        return Ok(());
    }
    println!("\nNo call has an analysis.");
    Ok(())
}
