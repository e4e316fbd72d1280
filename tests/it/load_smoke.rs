//! The load benchmark's smoke mode: 10 calls through the debug `talky`
//! and `talky-sim` binaries as two processes (`talky-sim sim`, `talky serve`), a few seconds of
//! steady state, once per telephony provider (the sim's Vonage and Twilio
//! emulators, one `talky serve` environment for both). Asserts completion
//! and sanity, not speed.

use talky::providers::telephony::TelephonyProvider;
use talky_sim::loadtest::{LoadOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_calls_through_sim_and_serve_processes() {
    smoke(TelephonyProvider::Vonage).await;
}

/// The same through Twilio: the campaign's `telephony: twilio`, the calls
/// placed on the Twilio emulator and streamed as 8 kHz μ-law.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_twilio_calls_through_sim_and_serve_processes() {
    smoke(TelephonyProvider::Twilio).await;
}

async fn smoke(telephony: TelephonyProvider) {
    let mut o = LoadOptions::new(
        crate::support::TALKY_BINARY,
        crate::support::sim_binary(),
        10,
        3,
    );
    o.cps = 20.0;
    o.barge_share = 0.3;
    o.telephony = telephony;
    o.out_dir = std::env::temp_dir().join(format!("talky-load-smoke-{}", uuid::Uuid::new_v4()));
    o.admin_database_url = crate::support::base_url();
    let _turn = crate::lifetime::PROCESSES.lock().await;
    let report = tokio::time::timeout(std::time::Duration::from_secs(50), run(&o))
        .await
        .expect("the smoke run ends in time")
        .expect("the smoke run");
    let c = &report.counts;
    assert_eq!(c.placed, 10, "{report:#?}");
    assert_eq!(c.answered, 10, "{report:#?}");
    assert_eq!(c.finished, 10, "{report:#?}");
    assert_eq!(c.errors, 0, "{report:#?}");
    // Every call was carried by the run's telephony, as talky stored it.
    assert_eq!(report.telephony, telephony.as_str());
    assert_eq!(
        c.providers,
        vec![(telephony.as_str().to_string(), 10)],
        "{report:#?}"
    );
    assert!(
        report.steady.reached,
        "all ten calls were live at once: {report:#?}"
    );
    assert!(report.steady.cpu_pct_core > 0.0, "{report:#?}");
    assert!(report.steady.rss_steady_kib > 0, "{report:#?}");
    // Turns happened and were timed; the callee heard the agent.
    let stt = &report.stages[0];
    assert!(stt.measured.count >= 10, "{report:#?}");
    assert!(
        report.voice_to_voice.p50.is_some_and(|v| v > 0.0),
        "{report:#?}"
    );
    assert!(report.underruns.agent_frames > 0, "{report:#?}");
    // Three barging callees (30 % of 10), each planned to interrupt on two
    // of its four turns: at least three interruptions happened and at
    // least three were cleared by talky (the reaction is measured up to the
    // `clear` the callee received).
    assert!(report.barge_in.attempts >= 3, "{report:#?}");
    assert!(report.barge_in.reaction.count >= 3, "{report:#?}");
    let md = report.markdown();
    eprintln!("{md}");
    assert!(md.contains("calls completed / expected"), "{md}");
    assert!(
        md.contains(&format!("calls on {telephony}")),
        "the table names the telephony: {md}"
    );
    assert!(md.contains("ms CPU per call-second"), "{md}");
    assert!(o.out_dir.join("load.json").exists());
    let _ = std::fs::remove_dir_all(&o.out_dir);
}
