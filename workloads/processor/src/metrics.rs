//! Prometheus metrics of the processor.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// The processor's metrics (names start with `shopstream_processor_`).
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Records consumed.
    pub records_in: IntCounter,
    /// Sessions whose documents are all stored.
    pub sessions_out: IntCounter,
    /// Documents stored, by index kind (`sessions`, `products`).
    pub docs_out: IntCounterVec,
    /// Records that failed, by reason (each also goes to the dead-letter topic).
    pub failed: IntCounterVec,
    /// Records written to the dead-letter topic.
    pub dead_letters: IntCounter,
    /// Retries, by what was retried (`es_request`, `es_item`, `dead_letter`, `kafka`).
    pub retries: IntCounterVec,
    /// Seconds to process one batch end to end (consume to commit).
    pub batch_seconds: Histogram,
    /// Records per batch.
    pub batch_records: Histogram,
    /// Consumer lag per partition, as librdkafka reports it (absent while unknown).
    pub consumer_lag: IntGaugeVec,
    /// Offset commits that failed (the batch will be re-delivered; writes are idempotent).
    pub commit_failures: IntCounter,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let p = |n: &str| format!("shopstream_processor_{n}");
        let m = Metrics {
            records_in: IntCounter::new(p("records_in_total"), "Records consumed")?,
            sessions_out: IntCounter::new(
                p("sessions_out_total"),
                "Sessions whose documents are all stored",
            )?,
            docs_out: IntCounterVec::new(
                Opts::new(p("docs_out_total"), "Documents stored, by index"),
                &["index"],
            )?,
            failed: IntCounterVec::new(
                Opts::new(
                    p("records_failed_total"),
                    "Records sent to the dead-letter topic, by reason",
                ),
                &["reason"],
            )?,
            dead_letters: IntCounter::new(p("dead_letters_total"), "Dead-letter records written")?,
            retries: IntCounterVec::new(
                Opts::new(p("retries_total"), "Retries, by what was retried"),
                &["what"],
            )?,
            batch_seconds: Histogram::with_opts(
                HistogramOpts::new(p("batch_seconds"), "Seconds per batch, consume to commit")
                    .buckets(vec![
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ]),
            )?,
            batch_records: Histogram::with_opts(
                HistogramOpts::new(p("batch_records"), "Records per batch")
                    .buckets(vec![1.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0]),
            )?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(p("consumer_lag"), "Consumer lag in records, per partition"),
                &["topic", "partition"],
            )?,
            commit_failures: IntCounter::new(p("commit_failures_total"), "Failed offset commits")?,
        };
        registry.register(Box::new(m.records_in.clone()))?;
        registry.register(Box::new(m.sessions_out.clone()))?;
        registry.register(Box::new(m.docs_out.clone()))?;
        registry.register(Box::new(m.failed.clone()))?;
        registry.register(Box::new(m.dead_letters.clone()))?;
        registry.register(Box::new(m.retries.clone()))?;
        registry.register(Box::new(m.batch_seconds.clone()))?;
        registry.register(Box::new(m.batch_records.clone()))?;
        registry.register(Box::new(m.consumer_lag.clone()))?;
        registry.register(Box::new(m.commit_failures.clone()))?;
        Ok(m)
    }
}
