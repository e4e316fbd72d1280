//! Criterion micro-benchmarks of the JSON of webhooks: parsing a Vonage
//! event webhook (what talky pays per call event, several per call) as a
//! JSON body and as a GET query, and mapping it to the telephony event the
//! call actor gets.
//!
//! `cargo bench --bench webhooks`; `-- --test` runs each once (smoke).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use talky::providers::vonage::events::VonageEvent;

const ANSWERED: &[u8] = br#"{"from":"447700900000","to":"447700900001","uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","conversation_uuid":"CON-f972836a-550f-45fa-956c-12a2ab5b7d22","status":"answered","direction":"outbound","timestamp":"2026-03-01T12:00:00.123Z","start_time":"","rate":"","network":""}"#;

const COMPLETED: &[u8] = br#"{"from":"447700900000","to":"447700900001","uuid":"63f61863-4a51-4f6b-86e1-46edebcf9356","conversation_uuid":"CON-f972836a-550f-45fa-956c-12a2ab5b7d22","status":"completed","direction":"outbound","timestamp":"2026-03-01T12:01:00.456Z","start_time":"2026-03-01T12:00:00.123Z","end_time":"2026-03-01T12:01:00.456Z","duration":"60","rate":"0.00450000","price":"0.00450000","network":"GB-FIXED"}"#;

const QUERY: &str = "from=447700900000&to=447700900001&uuid=63f61863-4a51-4f6b-86e1-46edebcf9356&conversation_uuid=CON-f972836a-550f-45fa-956c-12a2ab5b7d22&status=ringing&direction=outbound&timestamp=2026-03-01T12%3A00%3A00.123Z";

fn webhooks(c: &mut Criterion) {
    c.bench_function("vonage_event_json_answered", |b| {
        b.iter(|| VonageEvent::from_json(black_box(ANSWERED)).map(|e| e.telephony().is_some()))
    });
    c.bench_function("vonage_event_json_completed", |b| {
        b.iter(|| VonageEvent::from_json(black_box(COMPLETED)).map(|e| e.telephony().is_some()))
    });
    c.bench_function("vonage_event_query_ringing", |b| {
        b.iter(|| VonageEvent::from_query(black_box(QUERY)).is_ok())
    });
}

criterion_group!(benches, webhooks);
criterion_main!(benches);
