//! The stream processor (`shopstream process`), the role Flink played in the original system.
//!
//! It consumes valid sessions from Kafka in a consumer group (run several processes in one
//! group to scale out) and writes to Elasticsearch, with `_bulk`:
//!
//! * a session summary per session into `<prefix>sessions` (id = `sessionId`),
//! * one row per viewed product into `<prefix>products` (id = `sessionId:position`), carrying
//!   the review and its VADER sentiment ([`shopstream_sentiment`]),
//!
//! as built by the pure functions of [`documents`]. Indexes and templates with explicit, strict
//! mappings ([`mapping`]) are created at start-up (idempotent). Because every document id is a
//! function of the session, a replay overwrites instead of duplicating; offsets are committed
//! only after the bulk response shows every item stored (transient failures are retried with
//! backoff, documents refused for good send their record to the dead-letter topic with the
//! reason), so a crash loses nothing. Records that fail the schema go to the dead-letter topic
//! too. E-mail, name and IP address never reach Elasticsearch (the documents have no field for
//! them).
//!
//! The pipeline is split into [`engine::Transformer`] (records to a `_bulk` batch),
//! [`engine::write_batch`] (retrying write to any [`store::DocStore`], Elasticsearch in
//! production) and [`run`] (Kafka, dead letters, commits, metrics); the benchmark
//! (`benches/processor.rs`) runs the same loop into a counting store.

pub mod bulk;
pub mod documents;
pub mod engine;
pub mod mapping;
pub mod metrics;

mod run;
pub mod store;
pub mod writer;

pub use run::{ConfigError, ProcessArgs, run, run_until, run_with_sink};
