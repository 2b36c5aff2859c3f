//! The Kafka side: configuration, the consume-transform-write-commit loop, dead letters,
//! metrics, health and graceful shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use shopstream_kafka::{KafkaArgs, TopicSpec};
use shopstream_telemetry::Health;
use tokio::sync::watch;

use crate::bulk::Batch;
use crate::docs::{DEFAULT_POTENTIAL_CUSTOMER_SECONDS, PotentialCustomerRule};
use crate::engine::{Backoff, DeadLetter, Interrupted, Transformer, write_batch};
use crate::mapping::Indexes;
use crate::metrics::Metrics;
use crate::sink::{DocSink, EsSink, SetupError};

/// Configuration of `shopstream process`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProcessArgs {
    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Topic of valid sessions to consume.
    #[arg(long, env = "SHOPSTREAM_TOPIC_VALID", default_value = "sessions.valid")]
    pub input_topic: String,
    /// Consumer group (run several processes in one group to scale out).
    #[arg(long, env = "SHOPSTREAM_PROCESSOR_GROUP", default_value = "shopstream-processor")]
    pub group: String,
    /// Topic for records that cannot be stored, with the reason in headers.
    #[arg(
        long,
        env = "SHOPSTREAM_TOPIC_PROCESSOR_DEAD_LETTER",
        default_value = "sessions.processor-dead-letter"
    )]
    pub dead_letter_topic: String,
    /// Partitions of the dead-letter topic when the processor creates it.
    #[arg(long, env = "SHOPSTREAM_PROCESSOR_DEAD_LETTER_PARTITIONS", default_value_t = 3)]
    pub dead_letter_partitions: i32,
    /// Elasticsearch URL.
    #[arg(long, env = "SHOPSTREAM_ES_URL", default_value = "http://127.0.0.1:9200")]
    pub es_url: String,
    /// Prefix of the index names (`<prefix>sessions`, `<prefix>products`).
    #[arg(long, env = "SHOPSTREAM_ES_INDEX_PREFIX", default_value = "shopstream-")]
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
    #[arg(long, env = "SHOPSTREAM_PROCESSOR_METRICS_ADDR", default_value = "0.0.0.0:9102")]
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
        if self.input_topic.trim().is_empty() {
            return bad("--input-topic must not be empty".into());
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
        if !(self.es_url.starts_with("http://") || self.es_url.starts_with("https://")) {
            return bad(format!("--es-url {:?} must be an http(s) URL", self.es_url));
        }
        Ok(())
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            initial: Duration::from_millis(self.retry_initial_ms),
            max: Duration::from_millis(self.retry_max_ms),
        }
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

fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Runs the processor until SIGTERM or Ctrl-C, then finishes the current batch, commits and
/// returns.
pub async fn run(args: ProcessArgs) -> anyhow::Result<()> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shopstream_telemetry::shutdown_signal().await;
        let _ = tx.send(true);
    });
    run_until(args, rx).await
}

/// Runs the processor until `shutdown` turns `true`.
pub async fn run_until(
    args: ProcessArgs,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    args.validate()?;
    let (metrics, health) = start_telemetry(&args).await?;
    let backoff = args.backoff();
    let indexes = Indexes::with_prefix(&args.index_prefix);
    let mut sink = EsSink::new(&args.es_url, Duration::from_millis(args.es_timeout_ms))?;
    let mut attempt = 0;
    loop {
        match sink.ensure_indexes(&indexes).await {
            Ok(()) => break,
            Err(SetupError::Unavailable(e)) => {
                metrics.retries.with_label_values(&["es_setup"]).inc();
                tracing::warn!(error = %e, "elasticsearch unavailable at start-up; retrying");
                if pause(backoff.delay(attempt), &mut shutdown).await.is_err() {
                    return Ok(());
                }
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    consume(args, sink, shutdown, metrics, health).await.map(|_| ())
}

/// Runs the consume-transform-write-commit loop into any sink (the benchmark uses a counting
/// sink) until `shutdown` turns `true`; returns what it did.
pub async fn run_with_sink<S: DocSink>(
    args: ProcessArgs,
    sink: S,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<RunStats> {
    args.validate()?;
    let (metrics, health) = start_telemetry(&args).await?;
    consume(args, sink, shutdown, metrics, health).await
}

/// Totals of one run of the loop.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Records consumed.
    pub records: u64,
    /// Sessions stored.
    pub sessions: u64,
    /// Documents stored.
    pub docs: u64,
    /// Records sent to the dead-letter topic.
    pub dead_letters: u64,
    /// When the first record arrived.
    pub first_record: Option<Instant>,
    /// When the last commit returned.
    pub last_commit: Option<Instant>,
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

async fn consume<S: DocSink>(
    args: ProcessArgs,
    mut sink: S,
    mut shutdown: watch::Receiver<bool>,
    metrics: Metrics,
    health: Health,
) -> anyhow::Result<RunStats> {
    let backoff = args.backoff();
    let indexes = Indexes::with_prefix(&args.index_prefix);
    let mut run_stats = RunStats::default();
    let mut attempt = 0;
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
                if pause(backoff.delay(attempt), &mut shutdown).await.is_err() {
                    return Ok(run_stats);
                }
                attempt += 1;
            }
        }
    }
    let producer: FutureProducer = args.kafka.producer("shopstream-processor-dlq")?;
    let heartbeat = (args.kafka.session_timeout_ms / 10).clamp(100, 3_000);
    let consumer: StreamConsumer<LagContext> = args
        .kafka
        .client_config("shopstream-processor")
        .set("group.id", &args.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", args.kafka.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", heartbeat.to_string())
        .set("isolation.level", "read_committed")
        .set("statistics.interval.ms", "5000")
        .create_with_context(LagContext { lag: metrics.consumer_lag.clone() })?;
    consumer.subscribe(&[args.input_topic.as_str()])?;
    health.set_ready(true);

    let mut transformer = Transformer::new(
        indexes,
        PotentialCustomerRule { min_seconds: args.potential_customer_seconds },
        args.sentiment_cache,
    );
    let mut batch = Batch::with_capacity(args.batch_size * 2048);
    let mut records: Vec<OwnedMessage> = Vec::with_capacity(args.batch_size);
    let mut kafka_attempt = 0u32;
    loop {
        if *shutdown.borrow() {
            break;
        }
        // Collect a batch: wait for the first record, then take what arrives within the wait.
        records.clear();
        let first = tokio::select! {
            m = consumer.recv() => m,
            _ = shutdown.wait_for(|&s| s) => break,
        };
        match first {
            Ok(m) => {
                kafka_attempt = 0;
                records.push(m.detach());
            }
            Err(e) => {
                metrics.retries.with_label_values(&["kafka"]).inc();
                tracing::warn!(error = %e, "kafka consume error; retrying");
                if pause(backoff.delay(kafka_attempt), &mut shutdown).await.is_err() {
                    break;
                }
                kafka_attempt += 1;
                continue;
            }
        }
        let started = Instant::now();
        run_stats.first_record.get_or_insert(started);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(args.batch_wait_ms);
        while records.len() < args.batch_size {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(m)) => records.push(m.detach()),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consume error while filling a batch");
                    break;
                }
                Err(_) => break,
            }
        }
        metrics.records_in.inc_by(records.len() as u64);

        batch.clear();
        let mut dead = Vec::new();
        let stats =
            transformer.transform(records.iter().map(|m| m.payload()), &mut batch, &mut dead);
        let write = write_batch(
            &mut sink,
            &batch,
            backoff,
            &mut shutdown,
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
                return Ok(run_stats);
            }
        };
        metrics.retries.with_label_values(&["es_item"]).inc_by(report.item_retries);
        let rejected: std::collections::BTreeSet<usize> =
            report.rejected.iter().map(|d| d.record).collect();
        dead.extend(report.rejected);
        if send_dead_letters(&producer, &args, &records, &dead, &metrics, backoff, &mut shutdown)
            .await
            .is_err()
        {
            tracing::warn!("shutdown while writing dead letters: batch not committed");
            return Ok(run_stats);
        }
        for d in &dead {
            metrics.failed.with_label_values(&[d.reason.as_str()]).inc();
        }
        metrics.sessions_out.inc_by((stats.sessions - rejected.len()) as u64);
        metrics.docs_out.with_label_values(&["sessions"]).inc_by(stats.session_docs as u64);
        metrics.docs_out.with_label_values(&["products"]).inc_by(stats.product_docs as u64);

        let mut offsets: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for m in &records {
            let e = offsets.entry((m.topic(), m.partition())).or_insert(m.offset());
            *e = (*e).max(m.offset());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &offsets {
            if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(offset + 1))
            {
                tracing::warn!(error = %e, "bad offset for commit");
            }
        }
        if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
            // The partitions may have moved to another member; it re-reads them from the last
            // commit and overwrites the same documents.
            metrics.commit_failures.inc();
            tracing::warn!(error = %e, "offset commit failed; the batch may be re-delivered");
        }
        run_stats.records += records.len() as u64;
        run_stats.sessions += (stats.sessions - rejected.len()) as u64;
        run_stats.docs += report.stored;
        run_stats.dead_letters += dead.len() as u64;
        run_stats.last_commit = Some(Instant::now());
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
    tracing::info!("processor stopped");
    Ok(run_stats)
}

async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> Result<(), Interrupted> {
    if *shutdown.borrow() {
        return Err(Interrupted);
    }
    tokio::select! {
        () = tokio::time::sleep(d) => Ok(()),
        _ = shutdown.wait_for(|&s| s) => Err(Interrupted),
    }
}

/// Produces one dead-letter record per entry and waits for every acknowledgement, retrying
/// failed deliveries with backoff.
async fn send_dead_letters(
    producer: &FutureProducer,
    args: &ProcessArgs,
    records: &[OwnedMessage],
    dead: &[DeadLetter],
    metrics: &Metrics,
    backoff: Backoff,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), Interrupted> {
    let mut pending: Vec<&DeadLetter> = dead.iter().collect();
    let mut attempt = 0;
    while !pending.is_empty() {
        let sends = pending.iter().map(|d| {
            let m = &records[d.record];
            let payload = m.payload().unwrap_or_default();
            let truncated = payload.len() > args.max_dead_letter_bytes;
            let body = &payload[..payload.len().min(args.max_dead_letter_bytes)];
            let partition = m.partition().to_string();
            let offset = m.offset().to_string();
            let size = payload.len().to_string();
            let mut h = OwnedHeaders::new()
                .insert(Header { key: headers::REASON, value: Some(d.reason.as_str()) })
                .insert(Header { key: headers::FIELD, value: Some(d.field.as_str()) })
                .insert(Header { key: headers::MESSAGE, value: Some(cut(&d.message, 1024)) })
                .insert(Header { key: headers::ORIGINAL_SIZE, value: Some(size.as_str()) })
                .insert(Header { key: headers::SOURCE_TOPIC, value: Some(m.topic()) })
                .insert(Header { key: headers::SOURCE_PARTITION, value: Some(partition.as_str()) })
                .insert(Header { key: headers::SOURCE_OFFSET, value: Some(offset.as_str()) });
            if truncated {
                h = h.insert(Header { key: headers::TRUNCATED, value: Some("true") });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&args.dead_letter_topic).payload(body).headers(h);
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            producer.send(record, Duration::from_secs(30))
        });
        let results = futures::future::join_all(sends).await;
        let mut failed = Vec::new();
        for (d, r) in pending.iter().zip(results) {
            match r {
                Ok(_) => metrics.dead_letters.inc(),
                Err((e, _)) => {
                    tracing::warn!(error = %e, "dead-letter delivery failed; retrying");
                    failed.push(*d);
                }
            }
        }
        if failed.is_empty() {
            break;
        }
        metrics.retries.with_label_values(&["dead_letter"]).inc_by(failed.len() as u64);
        pending = failed;
        pause(backoff.delay(attempt), shutdown).await?;
        attempt += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProcessArgs,
    }

    fn parse(extra: &[&str]) -> ProcessArgs {
        let mut argv = vec!["x"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).expect("parse").args
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
        ] {
            let e = parse(flags).validate().expect_err("invalid");
            assert!(e.0.contains(needle), "{flags:?}: {e}");
        }
    }

    #[test]
    fn cut_respects_char_boundaries() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("abc", 10), "abc");
    }
}
