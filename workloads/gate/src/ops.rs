//! Operational plumbing shared by the gate and the sink: a cancellation token fired by SIGTERM
//! (from `shopstream-telemetry`) and [`Backoff`] (from `shopstream-kafka`), re-exported where
//! they live.

pub use shopstream_kafka::Backoff;
pub use shopstream_telemetry::shutdown_on_signals;
