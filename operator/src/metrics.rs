//! Prometheus metrics of the operator and the HTTP endpoint serving them.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The operator's metrics, registered in their own [`Registry`].
#[derive(Clone)]
pub struct Metrics {
    /// The registry holding every metric below.
    pub registry: Registry,
    /// Reconciles by result (`ok`, `error`).
    pub reconciles: IntCounterVec,
    /// Reconcile errors by kind.
    pub errors: IntCounterVec,
    /// Reconcile duration in seconds.
    pub duration: Histogram,
    /// 1 while this process holds the leader Lease.
    pub leader: IntGauge,
    /// Topic changes made through the Kafka admin API.
    pub topic_changes: IntCounter,
    /// Children by what a reconcile did with them (`applied`, `unchanged`).
    pub children: IntCounterVec,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("shopstream_operator_reconciles_total", "Reconciles by result"),
            &["result"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new("shopstream_operator_reconcile_errors_total", "Reconcile errors by kind"),
            &["kind"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "shopstream_operator_reconcile_duration_seconds",
                "Duration of one reconcile",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )?;
        let leader = IntGauge::new("shopstream_operator_leader", "1 while this replica leads")?;
        let topic_changes = IntCounter::new(
            "shopstream_operator_topic_changes_total",
            "Topic changes made through the Kafka admin API",
        )?;
        let children = IntCounterVec::new(
            Opts::new(
                "shopstream_operator_children_total",
                "Rendered children by what a reconcile did (applied, or unchanged and skipped)",
            ),
            &["action"],
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(topic_changes.clone()))?;
        registry.register(Box::new(children.clone()))?;
        Ok(Metrics { registry, reconciles, errors, duration, leader, topic_changes, children })
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding our own well-formed metric families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Records one reconcile.
    pub fn observe(&self, elapsed: Duration, error_kind: Option<&str>) {
        self.duration.observe(elapsed.as_secs_f64());
        match error_kind {
            None => self.reconciles.with_label_values(&["ok"]).inc(),
            Some(kind) => {
                self.reconciles.with_label_values(&["error"]).inc();
                self.errors.with_label_values(&[kind]).inc();
            }
        }
    }
}

async fn metrics_handler(State(m): State<Metrics>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.render())
}

/// Serves `/metrics`, `/healthz` and `/readyz` on an already bound listener until the task is
/// dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Metrics) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { (StatusCode::OK, "ok") }))
        .route("/readyz", get(|| async { (StatusCode::OK, "ok") }))
        .with_state(metrics);
    axum::serve(listener, app).await
}

/// Binds `addr` (port 0 picks a free port) and returns the listener and the bound address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}
