//! The Kafka side: configuration, the consume-transform-write-commit loop, dead letters,
//! metrics, health and graceful shutdown.
//!
//! The loop is built from `shopstream_kafka`'s shared pieces (batch polling and commits, the
//! dead-letter envelope, acknowledged produce, backoff), as the gate's and the sink's are.

use shopstream_clients::EsArgs;
use shopstream_contract as contract;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::producer::FutureProducer;
use rdkafka::statistics::Statistics;
use shopstream_kafka::batch::{self, BatchPoll, InRecord};
use shopstream_kafka::dead_letter::{Envelope, Failure};
use shopstream_kafka::produce::{self, RecordRef};
use shopstream_kafka::{Backoff, KafkaArgs, TopicSpec};
use shopstream_telemetry::Health;
use tokio_util::sync::CancellationToken;

use crate::bulk::Batch;
use crate::documents::{DEFAULT_POTENTIAL_CUSTOMER_SECONDS, PotentialCustomerRule};
use crate::engine::{DeadLetter, Interrupted, Transformer, write_batch};
use crate::mapping::Indexes;
use crate::metrics::Metrics;
use crate::store::{DocStore, EsStore, SetupError};

/// Configuration of `shopstream process`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProcessArgs {
    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Topic of valid sessions to consume.
    #[arg(long, env = contract::env::TOPIC_VALID, default_value = "sessions.valid")]
    pub input_topic: String,
    /// Consumer group (run several processes in one group to scale out).
    #[arg(long, env = contract::env::CONSUMER_GROUP, default_value = "shopstream-processor")]
    pub group: String,
    /// Topic for records that cannot be stored, with the reason in headers.
    #[arg(
        long,
        env = contract::env::TOPIC_PROCESSOR_DEAD_LETTER,
        default_value = "sessions.processor-dead-letter"
    )]
    pub dead_letter_topic: String,
    /// Partitions of the dead-letter topic when the processor creates it.
    #[arg(long, env = "SHOPSTREAM_PROCESSOR_DEAD_LETTER_PARTITIONS", default_value_t = 3)]
    pub dead_letter_partitions: i32,
    /// Elasticsearch: URL, TLS and credentials.
    #[command(flatten)]
    pub es: EsArgs,
    /// Prefix of the index names (`<prefix>sessions`, `<prefix>products`).
    #[arg(long, env = contract::env::ES_INDEX_PREFIX, default_value = "shopstream-")]
    pub index_prefix: String,
    /// Timeout of one Elasticsearch request, in milliseconds.
    #[arg(long, env = "SHOPSTREAM_ES_TIMEOUT_MS", default_value_t = 30_000)]
    pub es_timeout_ms: u64,
    /// Most records per batch (one `_bulk` request, one commit).
    #[arg(long, env = "SHOPSTREAM_PROCESSOR_BATCH", default_value_t = 2_000)]
    pub batch_size: usize,
    /// Longest wait for a batch to fill, in milliseconds.
    #[arg(long, env = "SHOPSTREAM_PROCESSOR_BATCH_WAIT_MS", default_value_t = 200)]
    pub batch_wait_ms: u64,
    /// Potential customer: no purchase and at least this many seconds on product pages.
    #[arg(long, env = "SHOPSTREAM_POTENTIAL_CUSTOMER_SECONDS", default_value_t = DEFAULT_POTENTIAL_CUSTOMER_SECONDS)]
    pub potential_customer_seconds: u32,
    /// Review texts whose sentiment is memoised.
    #[arg(long, env = "SHOPSTREAM_SENTIMENT_CACHE", default_value_t = 65_536)]
    pub sentiment_cache: usize,
    /// Largest dead-letter payload in bytes (longer originals are cut and flagged).
    #[arg(long, env = "SHOPSTREAM_PROCESSOR_MAX_DEAD_LETTER_BYTES", default_value_t = 900_000)]
    pub max_dead_letter_bytes: usize,
    /// Address of the metrics and health endpoint.
    #[arg(long, env = contract::env::METRICS_ADDR, default_value = "0.0.0.0:9102")]
    pub metrics_addr: SocketAddr,
    /// First retry delay in milliseconds.
    #[arg(long, env = "SHOPSTREAM_RETRY_INITIAL_MS", default_value_t = 100)]
    pub retry_initial_ms: u64,
    /// Largest retry delay in milliseconds.
    #[arg(long, env = "SHOPSTREAM_RETRY_MAX_MS", default_value_t = 5_000)]
    pub retry_max_ms: u64,
}

/// A configuration value is out of range; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl ProcessArgs {
    /// Checks every value, naming the flag at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if self.input_topic.trim().is_empty() || self.input_topic.starts_with('^') {
            // Offsets are committed on this one topic: a `^pattern` subscription would not do.
            return bad("--input-topic must be a topic name (not empty, not a ^pattern)".into());
        }
        if self.dead_letter_topic.trim().is_empty() || self.dead_letter_topic == self.input_topic {
            return bad("--dead-letter-topic must be set and differ from --input-topic".into());
        }
        if self.group.trim().is_empty() {
            return bad("--group must not be empty".into());
        }
        if self.dead_letter_partitions < 1 {
            return bad("--dead-letter-partitions must be at least 1".into());
        }
        if !(1..=100_000).contains(&self.batch_size) {
            return bad(format!("--batch-size must be in 1..=100000, got {}", self.batch_size));
        }
        if self.batch_wait_ms == 0 || self.batch_wait_ms > 60_000 {
            return bad(format!(
                "--batch-wait-ms must be in 1..=60000, got {}",
                self.batch_wait_ms
            ));
        }
        if self.es_timeout_ms < 100 {
            return bad("--es-timeout-ms must be at least 100".into());
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return bad("--retry-initial-ms must be > 0 and <= --retry-max-ms".into());
        }
        if self.max_dead_letter_bytes < 1024 {
            return bad("--max-dead-letter-bytes must be at least 1024".into());
        }
        let p = &self.index_prefix;
        let valid_prefix = !p.is_empty()
            && !p.starts_with(['-', '_', '+', '.'])
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if !valid_prefix {
            return bad(format!(
                "--index-prefix {p:?} must be lower-case letters, digits, '-', '_' or '.', not \
                 starting with '-', '_', '+' or '.'"
            ));
        }
        let Some(url) = &self.es.es_url else {
            return bad("no Elasticsearch URL: set --es-url or SHOPSTREAM_ES_URL".into());
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return bad(format!("--es-url {} must be an http(s) URL", self.es.display_url()));
        }
        Ok(())
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.retry_initial_ms),
            Duration::from_millis(self.retry_max_ms),
        )
    }
}

/// Reports librdkafka's per-partition consumer lag into a gauge.
struct LagContext {
    lag: prometheus::IntGaugeVec,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in statistics.topics {
            for (partition, p) in t.partitions {
                if partition >= 0 && p.consumer_lag >= 0 {
                    self.lag
                        .with_label_values(&[topic.as_str(), partition.to_string().as_str()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for LagContext {}

/// Header names of dead-letter records: the envelope every workload shares.
pub use shopstream_kafka::dead_letter as headers;

/// Runs the processor until SIGTERM or Ctrl-C, then finishes the current batch, commits and
/// returns.
pub async fn run(args: ProcessArgs) -> anyhow::Result<()> {
    run_until(args, shopstream_telemetry::shutdown_on_signals()).await
}

/// Runs the processor until `cancel` fires.
pub async fn run_until(args: ProcessArgs, cancel: CancellationToken) -> anyhow::Result<()> {
    args.validate()?;
    let (metrics, health) = start_telemetry(&args).await?;
    let mut backoff = args.backoff();
    let indexes = Indexes::with_prefix(&args.index_prefix);
    let mut sink = EsStore::new(&args.es, Duration::from_millis(args.es_timeout_ms))?;
    loop {
        match sink.ensure_indexes(&indexes).await {
            Ok(()) => break,
            Err(SetupError::Unavailable(e)) => {
                metrics.retries.with_label_values(&["es_setup"]).inc();
                tracing::warn!(error = %e, "elasticsearch unavailable at start-up; retrying");
                if !backoff.wait(&cancel).await {
                    return Ok(());
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    consume(args, sink, cancel, metrics, health).await
}

/// Runs the consume-transform-write-commit loop into any [`DocStore`] until `cancel` fires.
pub async fn run_with_sink<S: DocStore>(
    args: ProcessArgs,
    sink: S,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    args.validate()?;
    let (metrics, health) = start_telemetry(&args).await?;
    consume(args, sink, cancel, metrics, health).await
}

async fn start_telemetry(args: &ProcessArgs) -> anyhow::Result<(Metrics, Health)> {
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry)?;
    let health = Health::new();
    let (addr, _server) =
        shopstream_telemetry::serve(args.metrics_addr, registry.clone(), health.clone()).await?;
    tracing::info!(%addr, input = %args.input_topic, group = %args.group, "processor starting");
    Ok((metrics, health))
}

async fn consume<S: DocStore>(
    args: ProcessArgs,
    mut sink: S,
    cancel: CancellationToken,
    metrics: Metrics,
    health: Health,
) -> anyhow::Result<()> {
    let indexes = Indexes::with_prefix(&args.index_prefix);
    let mut backoff = args.backoff();
    loop {
        match args
            .kafka
            .ensure_topics(&[TopicSpec::new(&args.dead_letter_topic, args.dead_letter_partitions)])
            .await
        {
            Ok(()) => break,
            Err(e) => {
                metrics.retries.with_label_values(&["kafka"]).inc();
                tracing::warn!(error = %e, "cannot ensure the dead-letter topic; retrying");
                if !backoff.wait(&cancel).await {
                    return Ok(());
                }
            }
        }
    }
    let producer: FutureProducer = args.kafka.producer("shopstream-processor-dlq")?;
    let consumer = Arc::new(args.kafka.consumer_with_context(
        &args.group,
        "shopstream-processor",
        &[("statistics.interval.ms", "5000")],
        LagContext { lag: metrics.consumer_lag.clone() },
    )?);
    consumer.subscribe(&[args.input_topic.as_str()])?;
    health.set_ready(true);

    let mut transformer = Transformer::new(
        indexes,
        PotentialCustomerRule { min_seconds: args.potential_customer_seconds },
        args.sentiment_cache,
    );
    let poll = BatchPoll {
        max: args.batch_size,
        max_bytes: args.kafka.max_batch_bytes,
        linger: Duration::from_millis(args.batch_wait_ms),
        first_wait: None,
    };
    let mut batch = Batch::with_capacity(args.batch_size * 2048);
    let mut backoff = args.backoff();
    while !cancel.is_cancelled() {
        // A batch: wait for the first record, then take what arrives within the wait.
        let polled = batch::poll_batch_retrying(&consumer, poll, &mut backoff, &cancel, |_| {
            metrics.retries.with_label_values(&["kafka"]).inc();
        })
        .await;
        let Some(records) = polled else { break };
        if records.is_empty() {
            continue;
        }
        let started = Instant::now();
        metrics.records_in.inc_by(records.len() as u64);

        batch.clear();
        let mut dead = Vec::new();
        let stats = transformer.transform(
            records.iter().map(|r| r.payload.as_deref()),
            &mut batch,
            &mut dead,
        );
        let write = write_batch(
            &mut sink,
            &batch,
            args.backoff(),
            &cancel,
            |e| {
                health.set_ready(false);
                metrics.retries.with_label_values(&["es_request"]).inc();
                tracing::warn!(error = %e, "elasticsearch unavailable; waiting to retry");
            },
            || {
                health.set_ready(true);
                tracing::info!("elasticsearch reachable again");
            },
        )
        .await;
        let report = match write {
            Ok(r) => r,
            Err(Interrupted) => {
                tracing::warn!(
                    records = records.len(),
                    "shutdown during an outage: batch not committed, it will be re-delivered"
                );
                return Ok(());
            }
        };
        metrics.retries.with_label_values(&["es_item"]).inc_by(report.item_retries);
        let rejected: BTreeSet<usize> = report.rejected.iter().map(|d| d.record).collect();
        dead.extend(report.rejected);
        if !send_dead_letters(&producer, &args, &records, &dead, &metrics, &cancel).await {
            tracing::warn!("shutdown while writing dead letters: batch not committed");
            return Ok(());
        }
        for d in &dead {
            metrics.failed.with_label_values(&[d.reason.as_str()]).inc();
        }
        metrics.sessions_out.inc_by((stats.sessions - rejected.len()) as u64);
        metrics.docs_out.with_label_values(&["sessions"]).inc_by(stats.session_docs as u64);
        metrics.docs_out.with_label_values(&["products"]).inc_by(stats.product_docs as u64);

        if let Err(e) = batch::commit_batch(&consumer, &args.input_topic, &records).await {
            // The partitions may have moved to another member; it re-reads them from the last
            // commit and overwrites the same documents.
            metrics.commit_failures.inc();
            tracing::warn!(error = %e, "offset commit failed; the batch may be re-delivered");
        }
        metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        metrics.batch_records.observe(records.len() as f64);
        tracing::debug!(
            records = records.len(),
            docs = batch.len(),
            dead = dead.len(),
            "batch committed"
        );
    }
    health.set_ready(false);
    consumer.unsubscribe();
    tracing::info!("processor stopped");
    Ok(())
}

/// The dead-letter envelopes of the records in `dead` (positions in `records`), as the gate
/// and the sink write them.
fn dead_letter_envelopes<'a>(
    args: &ProcessArgs,
    records: &'a [InRecord],
    dead: &[DeadLetter],
) -> Vec<Envelope<'a>> {
    dead.iter()
        .map(|d| {
            let failure = Failure { reason: &d.reason, field: &d.field, message: &d.message };
            headers::envelope(
                &args.input_topic,
                &records[d.record],
                failure,
                args.max_dead_letter_bytes,
            )
        })
        .collect()
}

/// Produces one dead-letter record per entry and waits until the broker has acknowledged
/// every one, re-sending failed deliveries with backoff. `false` if `cancel` fired first.
async fn send_dead_letters(
    producer: &FutureProducer,
    args: &ProcessArgs,
    records: &[InRecord],
    dead: &[DeadLetter],
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> bool {
    if dead.is_empty() {
        return true;
    }
    let envelopes = dead_letter_envelopes(args, records, dead);
    let topic = args.dead_letter_topic.as_str();
    let record = |i: usize| {
        let e = &envelopes[i];
        RecordRef { topic, key: e.key, payload: e.payload, headers: &e.headers }
    };
    let acked = produce::send_all_acked(
        producer,
        0..envelopes.len(),
        record,
        args.backoff(),
        cancel,
        |f| {
            tracing::warn!(
                failed = f.items.len(),
                error = f.first_error.as_deref().unwrap_or("?"),
                "dead-letter delivery failed; retrying"
            );
            metrics.retries.with_label_values(&["dead_letter"]).inc_by(f.items.len() as u64);
        },
    )
    .await;
    if acked {
        metrics.dead_letters.inc_by(envelopes.len() as u64);
    }
    acked
}

#[cfg(test)]
mod tests {
    use super::*;
    fn parse(extra: &[&str]) -> ProcessArgs {
        shopstream_test_support::parse_args(extra).expect("parse")
    }

    #[test]
    fn defaults_are_valid_and_bad_values_name_the_flag() {
        assert_eq!(parse(&[]).validate(), Ok(()));
        for (flags, needle) in [
            (&["--batch-size", "0"][..], "--batch-size"),
            (&["--index-prefix", "Shop-"], "--index-prefix"),
            (&["--index-prefix", "_x"], "--index-prefix"),
            (&["--dead-letter-topic", "sessions.valid"], "--dead-letter-topic"),
            (&["--es-url", "localhost:9200"], "--es-url"),
            (&["--retry-initial-ms", "10", "--retry-max-ms", "5"], "--retry-initial-ms"),
            (&["--batch-wait-ms", "0"], "--batch-wait-ms"),
            (&["--input-topic", "^sessions.*"], "--input-topic"),
        ] {
            let e = parse(flags).validate().expect_err("invalid");
            assert!(e.0.contains(needle), "{flags:?}: {e}");
        }
    }

    #[test]
    fn dead_letters_use_the_shared_envelope() {
        let mut args = parse(&["--input-topic", "in", "--max-dead-letter-bytes", "1024"]);
        args.max_dead_letter_bytes = 1024;
        let records = vec![
            InRecord {
                partition: 2,
                offset: 41,
                key: Some(b"k".to_vec()),
                payload: Some(b"{x".to_vec()),
            },
            InRecord { partition: 0, offset: 7, key: None, payload: Some(vec![b' '; 2000]) },
        ];
        let dead = |record, reason: &str, message: String| DeadLetter {
            record,
            reason: reason.into(),
            field: "$".into(),
            message,
        };
        let dead = vec![
            dead(1, "too_large", "é".repeat(600)),
            dead(0, "malformed_json", "EOF while parsing".into()),
        ];
        let e = dead_letter_envelopes(&args, &records, &dead);
        assert_eq!(
            (e[0].key, e[0].payload),
            (None, &records[1].payload.as_deref().unwrap_or_default()[..1024])
        );
        let h =
            |e: &Envelope<'_>| e.headers.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
        assert_eq!(
            h(&e[0]),
            vec![
                (headers::REASON, "too_large".to_string()),
                (headers::FIELD, "$".into()),
                (headers::MESSAGE, "é".repeat(512)),
                (headers::ORIGINAL_SIZE, "2000".into()),
                (headers::TRUNCATED, "true".into()),
                (headers::SOURCE_TOPIC, "in".into()),
                (headers::SOURCE_PARTITION, "0".into()),
                (headers::SOURCE_OFFSET, "7".into()),
            ]
        );
        assert_eq!((e[1].key, e[1].payload), (Some(&b"k"[..]), &b"{x"[..]));
        assert_eq!(
            h(&e[1]),
            vec![
                (headers::REASON, "malformed_json".to_string()),
                (headers::FIELD, "$".into()),
                (headers::MESSAGE, "EOF while parsing".into()),
                (headers::ORIGINAL_SIZE, "2".into()),
                (headers::SOURCE_TOPIC, "in".into()),
                (headers::SOURCE_PARTITION, "2".into()),
                (headers::SOURCE_OFFSET, "41".into()),
            ]
        );
    }
}
