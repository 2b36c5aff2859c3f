//! The MongoDB sink (`shopstream sink`): valid sessions from Kafka into the `user_sessions`
//! collection as flattened, pseudonymised documents ([`document`]).
//!
//! Per poll batch: parse every record, [`document::flatten`] it (e-mail, name and IP address
//! become HMAC pseudonyms), and write the whole batch with one unordered `update` command of
//! replace-with-upsert statements keyed by `_id` = `sessionId`. Offsets are committed only
//! after MongoDB acknowledged the write; a replay or a duplicate rewrites the same document
//! (a no-op). Indexes on `userId` and `sessionTimestamp` are created at start-up. MongoDB or
//! Kafka outages are retried with exponential backoff; SIGTERM finishes the batch in hand,
//! commits and exits. The sink refuses to start without a pseudonym key.
//!
//! A record on the valid topic that does not parse (which only a misbehaving producer can
//! cause; the gate validates) goes to the dead-letter topic with the gate's envelope
//! ([`shopstream_kafka::dead_letter`]: original key and bytes, reason, field, source), is
//! counted in `shopstream_sink_records_failed_total{reason}`, and the batch's offsets are
//! committed only once the dead letters are acknowledged too.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub use shopstream_documents::user_sessions as document;

use shopstream_contract as contract;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use shopstream_clients::MongoArgs;
use shopstream_kafka::batch::{self as consume, InRecord};
use shopstream_kafka::dead_letter::{self, Envelope, Failure};
use shopstream_kafka::produce::{self, RecordRef};
use shopstream_kafka::{Backoff, KafkaArgs, TopicSpec};
use shopstream_pseudonym::{KeyArgs, Pseudonymizer};
use shopstream_schema::parse_session;
use shopstream_telemetry::Health;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// Statements per `update` command (keeps each command far below MongoDB's 16 MiB limit).
const UPSERTS_PER_COMMAND: usize = 1000;

/// Configuration of `shopstream sink`.
#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Consumer group of the sink replicas.
    #[arg(long, env = contract::env::CONSUMER_GROUP, default_value = "shopstream-sink")]
    pub group: String,
    /// Topic of valid sessions.
    #[arg(long, env = contract::env::TOPIC_VALID, default_value = "sessions.valid")]
    pub input_topic: String,
    /// Dead-letter topic for records that are not valid sessions (the gate's, by default).
    #[arg(long, env = contract::env::TOPIC_DEAD_LETTER, default_value = "sessions.dead-letter")]
    pub dead_letter_topic: String,
    /// Largest dead-letter payload in bytes; longer originals are cut (and marked).
    #[arg(long, env = "SHOPSTREAM_SINK_MAX_DEAD_LETTER_BYTES", default_value_t = 900_000)]
    pub max_dead_letter_bytes: usize,
    /// MongoDB (`--mongo-url` is required).
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Collection name.
    #[arg(long, env = "SHOPSTREAM_SINK_COLLECTION", default_value = document::COLLECTION)]
    pub collection: String,
    /// Pseudonym key (required).
    #[command(flatten)]
    pub key: KeyArgs,
    /// Most records per batch (one bulk write and one commit per batch).
    #[arg(long, env = "SHOPSTREAM_SINK_MAX_BATCH", default_value_t = 2000)]
    pub max_batch: usize,
    /// Longest wait (ms) for a batch to fill once its first record arrived.
    #[arg(long, env = "SHOPSTREAM_SINK_BATCH_LINGER_MS", default_value_t = 50)]
    pub batch_linger_ms: u64,
    /// Address of the metrics/health endpoint.
    #[arg(long, env = contract::env::METRICS_ADDR, default_value = "0.0.0.0:9101")]
    pub metrics_addr: SocketAddr,
    /// First retry delay (ms) when MongoDB or Kafka fails; doubles up to the maximum.
    #[arg(long, env = "SHOPSTREAM_RETRY_INITIAL_MS", default_value_t = 100)]
    pub retry_initial_ms: u64,
    /// Longest retry delay (ms).
    #[arg(long, env = "SHOPSTREAM_RETRY_MAX_MS", default_value_t = 10_000)]
    pub retry_max_ms: u64,
}

/// Errors that stop the sink (transient failures are retried instead).
#[derive(Debug, Error)]
pub enum SinkError {
    /// Bad configuration.
    #[error("invalid sink configuration: {0}")]
    Config(String),
    /// No usable pseudonym key.
    #[error(transparent)]
    Key(#[from] shopstream_pseudonym::PseudonymError),
    /// The Kafka client could not be created.
    #[error(transparent)]
    KafkaClient(#[from] shopstream_kafka::Error),
    /// The consumer could not subscribe.
    #[error("kafka subscribe: {0}")]
    Kafka(#[from] KafkaError),
    /// The MongoDB client could not be created (bad connection string).
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl SinkArgs {
    /// Checks the configuration (not the key; see [`KeyArgs::load`]).
    pub fn validate(&self) -> Result<(), SinkError> {
        let err = |m: &str| Err(SinkError::Config(m.to_string()));
        if !(1..=100_000).contains(&self.max_batch) {
            return err("--max-batch must be in 1..=100000");
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return err("need 0 < --retry-initial-ms <= --retry-max-ms");
        }
        if self.mongo.mongo_url.is_none() {
            return err("--mongo-url (SHOPSTREAM_MONGO_URL) is required");
        }
        self.mongo.validate().map_err(|e| SinkError::Config(e.to_string()))?;
        if self.collection.is_empty() || self.collection.starts_with("system.") {
            return err("--collection must be a non-empty, non-system collection name");
        }
        if self.input_topic.trim().is_empty() || self.group.trim().is_empty() {
            return err("--input-topic and --group must not be empty");
        }
        if self.dead_letter_topic.trim().is_empty() || self.dead_letter_topic == self.input_topic {
            return err("--dead-letter-topic must be non-empty and differ from --input-topic");
        }
        if self.max_dead_letter_bytes < 1024 {
            return err("--max-dead-letter-bytes must be at least 1024");
        }
        Ok(())
    }
}

/// Running totals of one sink process.
#[derive(Debug, Default)]
pub struct SinkTotals {
    /// Records consumed and fully processed.
    pub records_in: AtomicU64,
    /// Documents written (inserted or replaced).
    pub written: AtomicU64,
    /// Records that do not parse, sent to the dead-letter topic.
    pub failed: AtomicU64,
    /// Batches completed.
    pub batches: AtomicU64,
}

impl SinkTotals {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

struct SinkMetrics {
    records_in: IntCounter,
    records_out: IntCounterVec,
    records_failed: IntCounterVec,
    batch_seconds: Histogram,
    retries: IntCounterVec,
}

impl SinkMetrics {
    fn new(registry: &Registry) -> Result<SinkMetrics, prometheus::Error> {
        let m = SinkMetrics {
            records_in: IntCounter::new(
                "shopstream_sink_records_in_total",
                "Records consumed from the valid topic and fully processed",
            )?,
            records_out: IntCounterVec::new(
                Opts::new(
                    "shopstream_sink_records_out_total",
                    "Records written, by outcome (inserted, replaced, dead_letter)",
                ),
                &["outcome"],
            )?,
            records_failed: IntCounterVec::new(
                Opts::new(
                    "shopstream_sink_records_failed_total",
                    "Records that fail the schema (sent to the dead-letter topic), by reason",
                ),
                &["reason"],
            )?,
            batch_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "shopstream_sink_batch_seconds",
                    "Time to process one batch (parse, bulk upsert, commit)",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 16)?),
            )?,
            retries: IntCounterVec::new(
                Opts::new("shopstream_sink_retries_total", "Failed attempts that were retried"),
                &["operation"],
            )?,
        };
        registry.register(Box::new(m.records_in.clone()))?;
        registry.register(Box::new(m.records_out.clone()))?;
        registry.register(Box::new(m.records_failed.clone()))?;
        registry.register(Box::new(m.batch_seconds.clone()))?;
        registry.register(Box::new(m.retries.clone()))?;
        Ok(m)
    }
}

/// Why a bulk write did not complete.
#[derive(Debug, Error)]
enum WriteError {
    #[error(transparent)]
    Mongo(#[from] mongodb::error::Error),
    #[error("bson: {0}")]
    Bson(#[from] mongodb::bson::ser::Error),
    #[error("write errors: {0}")]
    Rejected(String),
}

/// The sink: one consumer, one MongoDB client.
pub struct Sink {
    args: SinkArgs,
    pseudonyms: Pseudonymizer,
    consumer: Arc<StreamConsumer>,
    producer: FutureProducer,
    db: Database,
    metrics: SinkMetrics,
    totals: Arc<SinkTotals>,
    health: Health,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").field("args", &self.args).finish_non_exhaustive()
    }
}

impl Sink {
    /// Validates the configuration, loads the pseudonym key (refusing to start without one)
    /// and creates the clients; contacts no server yet.
    pub async fn new(args: SinkArgs, registry: &Registry) -> Result<Sink, SinkError> {
        args.validate()?;
        let pseudonyms = args.key.load()?;
        let consumer = args.kafka.consumer(&args.group, "shopstream-sink")?;
        let producer = args.kafka.producer("shopstream-sink")?;
        let db = args
            .mongo
            .database()
            .await
            .map_err(|e| SinkError::Config(e.to_string()))?
            .ok_or_else(|| SinkError::Config("--mongo-url is required".into()))?;
        Ok(Sink {
            pseudonyms,
            consumer: Arc::new(consumer),
            producer,
            db,
            metrics: SinkMetrics::new(registry)?,
            totals: Arc::new(SinkTotals::default()),
            health: Health::new(),
            args,
        })
    }

    /// Live totals.
    pub fn totals(&self) -> Arc<SinkTotals> {
        self.totals.clone()
    }

    /// The readiness flag served on `/readyz`.
    pub fn health(&self) -> Health {
        self.health.clone()
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.args.retry_initial_ms),
            Duration::from_millis(self.args.retry_max_ms),
        )
    }

    async fn create_indexes(&self) -> Result<(), mongodb::error::Error> {
        let coll = self.db.collection::<Document>(&self.args.collection);
        let models = [("userId", "userId_1"), ("sessionTimestamp", "sessionTimestamp_1")]
            .into_iter()
            .map(|(field, name)| {
                IndexModel::builder()
                    .keys(doc! { field: 1 })
                    .options(IndexOptions::builder().name(name.to_string()).build())
                    .build()
            });
        coll.create_indexes(models).await?;
        Ok(())
    }

    /// Runs until `cancel` fires; then finishes the batch in hand (unless MongoDB is down, in
    /// which case it stays uncommitted for the next run) and returns.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), SinkError> {
        let mut backoff = self.backoff();
        loop {
            match self.create_indexes().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "mongodb not ready (creating indexes); retrying");
                    self.metrics.retries.with_label_values(&["mongodb"]).inc();
                    if !backoff.wait(&cancel).await {
                        return Ok(());
                    }
                }
            }
        }
        let dead_letter = TopicSpec::new(self.args.dead_letter_topic.as_str(), 1);
        if let Err(e) = self.args.kafka.ensure_topics(&[dead_letter]).await {
            // The topic may be managed elsewhere; producing will tell if it is really missing.
            tracing::warn!(error = %e, "could not ensure the dead-letter topic");
        }
        self.consumer.subscribe(&[&self.args.input_topic])?;
        self.health.set_ready(true);
        tracing::info!(
            topic = %self.args.input_topic,
            db = %self.args.mongo.mongo_db,
            collection = %self.args.collection,
            "sink started"
        );
        let mut backoff = self.backoff();
        while !cancel.is_cancelled() {
            let poll = consume::BatchPoll {
                max: self.args.max_batch,
                max_bytes: self.args.kafka.max_batch_bytes,
                linger: Duration::from_millis(self.args.batch_linger_ms),
                first_wait: None,
            };
            let polled =
                consume::poll_batch_retrying(&self.consumer, poll, &mut backoff, &cancel, |_| {
                    self.metrics.retries.with_label_values(&["kafka_consume"]).inc();
                    self.health.set_ready(false);
                })
                .await;
            let Some(batch) = polled else { break };
            if batch.is_empty() {
                continue;
            }
            if !self.process(&batch, &cancel).await {
                tracing::info!(
                    records = batch.len(),
                    "stopping with an unfinished batch; it was not committed and will be re-read"
                );
                break;
            }
        }
        self.health.set_ready(false);
        self.consumer.unsubscribe();
        tracing::info!(
            records_in = SinkTotals::get(&self.totals.records_in),
            written = SinkTotals::get(&self.totals.written),
            "sink stopped"
        );
        Ok(())
    }

    async fn process(&self, batch: &[InRecord], cancel: &CancellationToken) -> bool {
        let started = Instant::now();
        // Last write wins within a batch (a duplicate carries the same session anyway).
        let mut docs: Vec<(String, document::UserSessionDocument)> =
            Vec::with_capacity(batch.len());
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut dead: Vec<Envelope<'_>> = Vec::new();
        for rec in batch {
            let parsed = match &rec.payload {
                Some(p) => parse_session(p).map_err(Some),
                None => Err(None),
            };
            match parsed {
                Ok(s) => {
                    let d = document::flatten(&s, &self.pseudonyms);
                    match index.get(&d.id) {
                        Some(&i) => docs[i].1 = d,
                        None => {
                            index.insert(d.id.clone(), docs.len());
                            docs.push((d.id.clone(), d));
                        }
                    }
                }
                Err(e) => {
                    let message = e.as_ref().map(ToString::to_string);
                    let failure = match (&e, &message) {
                        (Some(e), Some(message)) => {
                            Failure { reason: e.reason(), field: e.field(), message }
                        }
                        _ => dead_letter::empty_failure(),
                    };
                    tracing::error!(
                        partition = rec.partition,
                        offset = rec.offset,
                        reason = failure.reason,
                        field = failure.field,
                        message = failure.message,
                        "a record that is not a valid session goes to the dead-letter topic"
                    );
                    self.metrics.records_failed.with_label_values(&[failure.reason]).inc();
                    let topic = &self.args.input_topic;
                    dead.push(dead_letter::envelope(
                        topic,
                        rec,
                        failure,
                        self.args.max_dead_letter_bytes,
                    ));
                }
            }
        }
        // Dead letters first: nothing is committed before the broker has them.
        if !dead.is_empty() && !self.produce_all(&dead, cancel).await {
            return false;
        }
        let failed = dead.len() as u64;

        let mut backoff = self.backoff();
        let (inserted, replaced) = loop {
            match self.write(&docs).await {
                Ok(r) => break r,
                Err(e) => {
                    tracing::warn!(error = %e, attempt = backoff.attempts(), "bulk upsert failed; retrying");
                    self.metrics.retries.with_label_values(&["mongodb"]).inc();
                    self.health.set_ready(false);
                    if !backoff.wait(cancel).await {
                        return false;
                    }
                }
            }
        };

        if let Err(e) = consume::commit_batch(&self.consumer, &self.args.input_topic, batch).await {
            tracing::warn!(error = %e, "offset commit failed; the batch may be re-read");
            self.metrics.retries.with_label_values(&["kafka_commit"]).inc();
        }
        self.health.set_ready(true);
        self.metrics.records_in.inc_by(batch.len() as u64);
        self.metrics.records_out.with_label_values(&["inserted"]).inc_by(inserted);
        self.metrics.records_out.with_label_values(&["replaced"]).inc_by(replaced);
        self.metrics.records_out.with_label_values(&["dead_letter"]).inc_by(failed);
        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        let t = &self.totals;
        t.records_in.fetch_add(batch.len() as u64, Ordering::Relaxed);
        t.written.fetch_add(docs.len() as u64, Ordering::Relaxed);
        t.failed.fetch_add(failed, Ordering::Relaxed);
        t.batches.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Produces the dead letters and waits for the broker's acknowledgements; failed ones are
    /// re-sent with backoff. `false` if cancelled before all were acknowledged.
    async fn produce_all(&self, records: &[Envelope<'_>], cancel: &CancellationToken) -> bool {
        let topic = self.args.dead_letter_topic.as_str();
        let record = |i: usize| {
            let e = &records[i];
            RecordRef { topic, key: e.key, payload: e.payload, headers: &e.headers }
        };
        let all = 0..records.len();
        produce::send_all_acked(&self.producer, all, record, self.backoff(), cancel, |f| {
            tracing::warn!(
                failed = f.items.len(),
                error = f.first_error.as_deref().unwrap_or("?"),
                "dead-letter produce failed; retrying"
            );
            self.metrics.retries.with_label_values(&["kafka_produce"]).inc();
            self.health.set_ready(false);
        })
        .await
    }

    /// Upserts the documents; returns (inserted, matched-and-replaced).
    async fn write(
        &self,
        docs: &[(String, document::UserSessionDocument)],
    ) -> Result<(u64, u64), WriteError> {
        let (mut inserted, mut replaced) = (0u64, 0u64);
        for chunk in docs.chunks(UPSERTS_PER_COMMAND) {
            let mut updates = Vec::with_capacity(chunk.len());
            for (id, d) in chunk {
                updates.push(Bson::Document(doc! {
                    "q": { "_id": id },
                    "u": document::to_bson(d)?,
                    "upsert": true,
                    "multi": false,
                }));
            }
            let reply = self
                .db
                .run_command(doc! {
                    "update": &self.args.collection,
                    "updates": updates,
                    "ordered": false,
                })
                .await?;
            if let Ok(errors) = reply.get_array("writeErrors")
                && !errors.is_empty()
            {
                let first = errors.first().map(ToString::to_string).unwrap_or_default();
                return Err(WriteError::Rejected(format!(
                    "{} failed, first: {first}",
                    errors.len()
                )));
            }
            let n = reply_count(&reply, "n");
            let up = reply.get_array("upserted").map(|a| a.len() as u64).unwrap_or(0);
            if n != chunk.len() as u64 {
                return Err(WriteError::Rejected(format!(
                    "{n} of {} upserts acknowledged",
                    chunk.len()
                )));
            }
            inserted += up;
            replaced += n - up;
        }
        Ok((inserted, replaced))
    }
}

fn reply_count(reply: &Document, field: &str) -> u64 {
    match reply.get(field) {
        Some(Bson::Int32(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Int64(n)) => u64::try_from(*n).unwrap_or(0),
        Some(Bson::Double(n)) => *n as u64,
        _ => 0,
    }
}

/// `shopstream sink`: runs the sink with metrics on `--metrics-addr` until SIGTERM/SIGINT.
pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let cancel = shopstream_telemetry::shutdown_on_signals();
    let registry = Registry::new();
    let addr = args.metrics_addr;
    let sink = Sink::new(args, &registry).await.context("starting the sink")?;
    shopstream_telemetry::serve(addr, registry, sink.health())
        .await
        .with_context(|| format!("binding the metrics endpoint {addr}"))?;
    sink.run(cancel).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    fn args(extra: &[&str]) -> SinkArgs {
        shopstream_test_support::parse_args(extra).unwrap()
    }

    #[test]
    fn defaults_validate_and_name_the_collection() {
        let a = args(&["--mongo-url", "mongodb://m"]);
        a.validate().unwrap();
        assert_eq!(
            (a.mongo.mongo_db.as_str(), a.collection.as_str()),
            ("shopstream", "user_sessions")
        );
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(args(&["--max-batch", "0"]).validate().is_err());
        let no_url =
            SinkArgs { mongo: MongoArgs { mongo_url: None, ..args(&[]).mongo }, ..args(&[]) };
        assert!(no_url.validate().unwrap_err().to_string().contains("--mongo-url"));
        assert!(args(&["--mongo-url", "mongodb://m", "--mongo-db", "a.b"]).validate().is_err());
        assert!(args(&["--collection", "system.x"]).validate().is_err());
    }

    #[tokio::test]
    async fn refuses_to_start_without_a_key() {
        // No key in the arguments (and none in this test's environment).
        let mut a = args(&[]);
        a.key = KeyArgs::default();
        let e = Sink::new(a, &Registry::new()).await.unwrap_err();
        assert!(matches!(e, SinkError::Key(shopstream_pseudonym::PseudonymError::Missing)), "{e}");
    }
}
