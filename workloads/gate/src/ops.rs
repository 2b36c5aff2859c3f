//! Operational plumbing shared by the gate and the sink: a cancellation token fired by SIGTERM,
//! and [`Backoff`] (re-exported from `shopstream-kafka`, where it lives).

use tokio_util::sync::CancellationToken;

pub use shopstream_kafka::Backoff;

/// A token cancelled on SIGTERM or Ctrl-C (SIGINT).
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        shopstream_telemetry::shutdown_signal().await;
        tracing::info!("shutdown requested: finishing the batch in hand, then stopping");
        t.cancel();
    });
    token
}
