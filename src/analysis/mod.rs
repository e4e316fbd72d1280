//! Post-call analysis: after a conversation ends, the campaign's LLM
//! chain is asked for a summary, data extracted to the campaign's JSON
//! Schema and a success verdict by its rubric.
//!
//! Never on the audio path: a call is only queued (in the transaction
//! that finishes it, `db::analyses`), and a bounded pool of workers per
//! node ([`worker`]) takes the queue on the live calls' pool, with its
//! own circuit breakers, so a slow or dead LLM delays analyses, never
//! calls. `settings` is what a campaign asks, `prompt` what is sent and
//! how the answer is judged.

pub mod config;
pub mod prompt;
pub mod settings;
pub mod worker;
