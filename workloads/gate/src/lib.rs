//! The security gate (`shopstream gate`): raw sessions from Kafka are checked against the
//! schema and the known-user rule in Redis, then routed to the valid, suspicious or
//! dead-letter topic, replay-safe.
//!
//! Per poll batch (up to `--max-batch` records):
//!
//! 1. every record is parsed with [`shopstream_schema::parse_record`] (the verdicts and errors
//!    of `parse_session`, without copying a well-formed record's strings); failures become
//!    dead-letter records ([`outputs::dead_letter`]);
//! 2. one Lua script call ([`state::GateState::apply`]) decides every parsed session with the
//!    rule of [`rules`] and records, atomically: Bloom filter of known users, HyperLogLog of
//!    users, per-user session counts, and the verdict per `sessionId`. A `sessionId` that
//!    already has a verdict keeps it and counts nothing, so replays are no-ops;
//! 3. every output is produced (keyed by `userId`, original bytes); while the broker
//!    acknowledges them, the next batches go through steps 1-3 (`--pipeline-depth`);
//! 4. batches finish in order: only when all outputs of a batch are acknowledged (and every
//!    earlier batch is finished) are its offsets committed.
//!
//! A crash anywhere before 4 re-delivers the batch: Redis answers with the recorded verdicts
//! and the outputs are produced again byte for byte (at-least-once delivery with identical
//! records, which keyed upserts downstream absorb). Redis or Kafka outages are retried with
//! exponential backoff; nothing is committed that was not fully processed. SIGTERM finishes
//! the current batch, commits and exits.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod args;
mod engine;
pub mod error;
pub mod metrics;
pub mod outputs;
pub mod rules;
pub mod state;

use anyhow::Context as _;
use prometheus::Registry;

pub use args::{ConfigError, GateArgs};
pub use engine::Gate;
pub use error::GateError;
pub use metrics::{Phase, Totals};

/// `shopstream gate`: runs the gate with metrics on `--metrics-addr` until SIGTERM/SIGINT.
pub async fn run(args: GateArgs) -> anyhow::Result<()> {
    let cancel = shopstream_telemetry::shutdown_on_signals();
    let registry = Registry::new();
    let addr = args.metrics_addr;
    let gate = Gate::new(args, &registry).context("starting the gate")?;
    shopstream_telemetry::serve(addr, registry, gate.health())
        .await
        .with_context(|| format!("binding the metrics endpoint {addr}"))?;
    gate.run(cancel).await?;
    Ok(())
}
