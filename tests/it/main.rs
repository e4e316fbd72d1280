//! talky's integration tests: the real server on 127.0.0.1:0, real
//! PostgreSQL (a fresh database per test) and real Redis. One test binary
//! with modules, so the world is linked once.

mod support;

mod analysis;
mod answer;
mod api_keys;
mod calls;
mod campaigns;
mod cluster;
mod console;
mod console_browser;
mod contacts;
mod dnc;
mod e2e;
mod errors;
mod health;
mod isolation;
mod lifetime;
mod live;
mod load_smoke;
mod media;
mod object_store;
mod openapi;
mod outage;
mod personas;
mod reconcile;
mod recording;
mod runtime;
mod schema;
mod store;
mod transfer;
mod twilio;
mod twilio_personas;
mod vonage;
mod webhooks;
