//! Kafka client settings shared by every shopstream workload.
//!
//! [`KafkaArgs`] is the clap block every command flattens into its own arguments (bootstrap
//! servers from `SHOPSTREAM_KAFKA`, extra librdkafka properties, SASL credentials from a Secret).
//! From it come idempotent producers ([`KafkaArgs::producer`]), manually committing consumers
//! ([`KafkaArgs::consumer`]) and topic creation ([`KafkaArgs::ensure_topics`]). Shared by the
//! workloads' loops: [`batch`] (poll a batch, commit after it), [`produce`] (send records and
//! wait until the broker has them, retrying), [`Backoff`] (retry delays) and [`dead_letter`]
//! (the envelope and header names of records that cannot be processed).

pub mod backoff;
pub mod batch;
pub mod dead_letter;
pub mod produce;

use shopstream_clients::{KafkaSecurity, KafkaSecurityArgs};
use shopstream_contract as contract;
use std::time::Duration;

pub use backoff::Backoff;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use thiserror::Error;

pub use rdkafka;

/// The consumers' `fetch.queue.backoff.ms` (librdkafka's default is 1000): see
/// [`KafkaArgs::consumer_config`].
pub const FETCH_QUEUE_BACKOFF_MS: u32 = 50;

/// Default of `--kafka-max-batch-bytes`: 64 MiB.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 64 << 20;

/// The consumers' `topic.metadata.refresh.interval.ms` (librdkafka's default is 300000): how
/// soon a consumer sees a topic created after it subscribed. See [`KafkaArgs::consumer_config`].
pub const METADATA_REFRESH_MS: u32 = 3_000;

/// What can go wrong while setting up Kafka clients or topics.
#[derive(Debug, Error)]
pub enum Error {
    /// The client could not be created (bad property, unreachable bootstrap list, ...).
    #[error("kafka client for {bootstrap}: {source}")]
    Client {
        /// The bootstrap servers used.
        bootstrap: String,
        /// The client library's error.
        #[source]
        source: KafkaError,
    },
    /// The broker refused to create a topic.
    #[error("creating topic {topic}: {reason}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// What the broker said.
        reason: String,
    },
    /// A `key=value` option could not be parsed, or sets what the typed settings own.
    #[error("kafka option {0:?} is not key=value")]
    BadOption(String),
    /// A free-form option tries to set a security property.
    #[error(
        "kafka option {0:?} sets a security property: use --kafka-security-protocol, \
         --kafka-sasl-mechanism and the --kafka-*-file settings instead"
    )]
    SecurityOption(String),
    /// The TLS/SASL settings are invalid or their files cannot be read.
    #[error(transparent)]
    Security(#[from] shopstream_clients::ClientError),
}

/// Kafka connection settings, shared by every command (flatten into a clap struct).
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Bootstrap servers, comma separated.
    #[arg(long = "kafka-bootstrap", env = contract::env::KAFKA, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Extra librdkafka properties as key=value, comma separated or repeated (e.g.
    /// `socket.timeout.ms=5000`). Security properties (`security.*`, `ssl.*`, `sasl.*`) are
    /// refused: they have typed settings.
    #[arg(long = "kafka-option", env = contract::env::KAFKA_OPTIONS, value_delimiter = ',', value_parser = parse_option)]
    pub options: Vec<(String, String)>,
    /// TLS and SASL.
    #[command(flatten)]
    pub security: KafkaSecurityArgs,
    /// Consumer-group session timeout in milliseconds.
    #[arg(
        long = "kafka-session-timeout-ms",
        env = "SHOPSTREAM_KAFKA_SESSION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub session_timeout_ms: u32,
    /// Most bytes (keys + payloads) of one consumed batch, on top of each workload's record
    /// count: bounds a batch's memory when records are large.
    #[arg(
        long = "kafka-max-batch-bytes",
        env = "SHOPSTREAM_KAFKA_MAX_BATCH_BYTES",
        default_value_t = DEFAULT_MAX_BATCH_BYTES
    )]
    pub max_batch_bytes: usize,
    /// Compression of produced batches. LZ4 by default: the JSON sessions shrink several-fold,
    /// which halved the broker's CPU per session in the gate benchmark (and is what a real
    /// cluster wants for its network and disks) for a small cost in the producer.
    #[arg(
        long = "kafka-compression",
        env = "SHOPSTREAM_KAFKA_COMPRESSION",
        value_enum,
        default_value_t = Compression::Lz4
    )]
    pub compression: Compression,
}

/// Compression codec of produced record batches (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4: cheap, moderate ratio (the default).
    #[default]
    Lz4,
    /// Snappy.
    Snappy,
    /// Zstandard: best ratio, most CPU.
    Zstd,
    /// Gzip.
    Gzip,
}

impl Compression {
    /// The librdkafka name of the codec.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Snappy => "snappy",
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }
}

fn parse_option(text: &str) -> Result<(String, String), Error> {
    match text.split_once('=') {
        Some((k, _)) if KafkaSecurity::owns_property(k) => {
            Err(Error::SecurityOption(k.trim().to_string()))
        }
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(Error::BadOption(text.to_string())),
    }
}

/// A topic to create when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
    /// `retention.ms`, if set.
    pub retention_ms: Option<i64>,
}

impl TopicSpec {
    /// A topic with `partitions` partitions, replication 1 and the broker's default retention.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        TopicSpec { name: name.into(), partitions, replication: 1, retention_ms: None }
    }
}

impl KafkaArgs {
    /// Settings for the given bootstrap list and nothing else (tests and tools).
    pub fn for_bootstrap(bootstrap: impl Into<String>) -> Self {
        KafkaArgs {
            bootstrap: bootstrap.into(),
            options: Vec::new(),
            security: KafkaSecurityArgs::default(),
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            session_timeout_ms: 6_000,
            compression: Compression::default(),
        }
    }

    /// The base client configuration: bootstrap servers, TLS and SASL (credential files
    /// read now), extra options.
    pub fn client_config(&self, client_id: &str) -> Result<ClientConfig, Error> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap).set("client.id", client_id);
        for (k, v) in &self.options {
            if KafkaSecurity::owns_property(k) {
                return Err(Error::SecurityOption(k.clone()));
            }
            config.set(k, v);
        }
        self.security.resolve()?.apply(&mut config);
        Ok(config)
    }

    fn client_error(&self, source: KafkaError) -> Error {
        Error::Client { bootstrap: self.bootstrap.clone(), source }
    }

    /// An idempotent producer (`acks=all`, no duplicates on retry, order kept per partition).
    ///
    /// Batching defaults (`linger.ms`, `batch.num.messages`, `message.timeout.ms`) can be
    /// overridden with `--kafka-option`; idempotence and `acks=all` cannot.
    pub fn producer(&self, client_id: &str) -> Result<FutureProducer, Error> {
        self.producer_config(client_id)?.create().map_err(|e| self.client_error(e))
    }

    /// A producer like [`KafkaArgs::producer`] (same configuration and guarantees) whose
    /// delivery reports are counted per batch: see [`produce::AckProducer`].
    pub fn ack_producer(&self, client_id: &str) -> Result<produce::AckProducer, Error> {
        self.producer_config(client_id)?
            .create_with_context(produce::AckContext)
            .map_err(|e| self.client_error(e))
    }

    /// The configuration of [`KafkaArgs::producer`].
    pub fn producer_config(&self, client_id: &str) -> Result<ClientConfig, Error> {
        let mut config = self.client_config(client_id)?;
        config
            // Up to 20 ms of batching: larger requests cost the broker (and librdkafka) less
            // per record; the pipelines are about throughput, not milliseconds.
            .set("linger.ms", "20")
            .set("batch.num.messages", "10000")
            .set("compression.type", self.compression.as_str())
            .set("message.timeout.ms", "120000");
        for (k, v) in &self.options {
            config.set(k, v);
        }
        // The delivery guarantees every workload relies on come last, so no option undoes them.
        config.set("enable.idempotence", "true").set("acks", "all");
        Ok(config)
    }

    /// A consumer in `group` that never commits by itself: the caller commits offsets after
    /// its outputs are safe. New groups start at the earliest offset.
    pub fn consumer(&self, group: &str, client_id: &str) -> Result<StreamConsumer, Error> {
        self.consumer_config(group, client_id)?.create().map_err(|e| self.client_error(e))
    }

    /// A consumer like [`KafkaArgs::consumer`] with a custom client context (statistics,
    /// rebalance callbacks); `extra` properties (e.g. `statistics.interval.ms`) are set last.
    pub fn consumer_with_context<C: ConsumerContext + 'static>(
        &self,
        group: &str,
        client_id: &str,
        extra: &[(&str, &str)],
        context: C,
    ) -> Result<StreamConsumer<C>, Error> {
        let mut config = self.consumer_config(group, client_id)?;
        for (k, v) in extra {
            config.set(*k, *v);
        }
        config.create_with_context(context).map_err(|e| self.client_error(e))
    }

    /// The configuration of [`KafkaArgs::consumer`]: manual commits, earliest offset for new
    /// groups, committed records only, the session timeout with a heartbeat a tenth of it, and
    /// a short fetch-queue backoff (overridable with `--kafka-option`).
    ///
    /// The backoff: once a consumer's local queue holds more than `queued.min.messages` or
    /// `queued.max.messages.kbytes`, librdkafka postpones the next fetch of each partition by
    /// `fetch.queue.backoff.ms`, 1000 ms by default. A workload catching up on a backlog
    /// empties a full queue (64 MB, ~50k sessions) in well under that, then sat idle for the
    /// rest of the second: in the gate benchmark, ~0.3 s of a 1.7 s run with the gate, the
    /// broker and Redis all idle. At [`FETCH_QUEUE_BACKOFF_MS`] the queue refills before it
    /// runs dry at any rate below ~1M records/s; a check that finds the queue still full sends
    /// no request. Fetches do come more often and smaller: the gate's CPU per session stayed
    /// within the spread between runs (126-154k sessions per CPU-second against 131-165k).
    pub fn consumer_config(&self, group: &str, client_id: &str) -> Result<ClientConfig, Error> {
        let heartbeat = (self.session_timeout_ms / 10).clamp(100, 3_000);
        let mut config = self.client_config(client_id)?;
        if config.get("fetch.queue.backoff.ms").is_none() {
            config.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string());
        }
        // A consumer subscribed to a topic that does not exist yet (a gate deployed before the
        // first `shopstream generate`) sees it only at the next periodic metadata refresh:
        // every 5 minutes by default. One small metadata request every few seconds is cheap.
        if config.get("topic.metadata.refresh.interval.ms").is_none() {
            config.set("topic.metadata.refresh.interval.ms", METADATA_REFRESH_MS.to_string());
        }
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set("heartbeat.interval.ms", heartbeat.to_string())
            .set("isolation.level", "read_committed");
        Ok(config)
    }

    /// Creates the topics that do not exist yet (existing ones are left as they are).
    pub async fn ensure_topics(&self, topics: &[TopicSpec]) -> Result<(), Error> {
        let admin: AdminClient<DefaultClientContext> =
            self.client_config("shopstream-admin")?.create().map_err(|e| self.client_error(e))?;
        let retention: Vec<Option<String>> =
            topics.iter().map(|t| t.retention_ms.map(|r| r.to_string())).collect();
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .zip(&retention)
            .map(|(t, r)| {
                let topic =
                    NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication));
                match r {
                    Some(ms) => topic.set("retention.ms", ms),
                    None => topic,
                }
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results =
            admin.create_topics(&new, &options).await.map_err(|e| self.client_error(e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(Error::CreateTopic { topic, reason: code.to_string() });
                }
            }
        }
        tracing::debug!(topics = topics.len(), "topics ensured");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn parse(argv: &[&str]) -> Result<KafkaArgs, clap::Error> {
        shopstream_test_support::parse_args(argv)
    }

    #[test]
    fn options_and_security_files_reach_the_client_config() {
        let dir = std::env::temp_dir().join(format!("kafka-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("username"), "app\n").expect("write");
        std::fs::write(dir.join("password"), "s3cret\n").expect("write");
        std::fs::write(dir.join("ca.pem"), "CA").expect("write");
        let file = |n: &str| dir.join(n).display().to_string();
        let cli = parse(&[
            "--kafka-bootstrap",
            "b1:9092,b2:9092",
            "--kafka-option",
            "socket.timeout.ms=5000,client.rack=r1",
            "--kafka-security-protocol",
            "sasl-ssl",
            "--kafka-sasl-mechanism",
            "SCRAM-SHA-256",
            "--kafka-username-file",
            &file("username"),
            "--kafka-password-file",
            &file("password"),
            "--kafka-ca-file",
            &file("ca.pem"),
        ])
        .expect("parse");
        let config = cli.client_config("id").expect("config");
        assert_eq!(config.get("bootstrap.servers"), Some("b1:9092,b2:9092"));
        assert_eq!(config.get("socket.timeout.ms"), Some("5000"));
        assert_eq!(config.get("client.rack"), Some("r1"));
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-256"));
        assert_eq!(config.get("sasl.username"), Some("app"));
        assert_eq!(config.get("sasl.password"), Some("s3cret"));
        assert_eq!(config.get("ssl.ca.location").map(String::from), Some(file("ca.pem")));
        // librdkafka reads the CA when the client is created: a file that holds no
        // certificate fails at start-up, naming the bootstrap list and the cause.
        let err = cli.producer("id").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("kafka client for b1:9092,b2:9092"), "{err}");
        assert!(err.to_lowercase().contains("ssl"), "{err}");
        // A missing file fails at start-up naming the backend, the flag and the file.
        let mut missing = cli.clone();
        missing.security.kafka_password_file = Some(dir.join("nope"));
        let err = missing.client_config("id").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("Kafka: cannot read --kafka-password-file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn free_form_options_cannot_set_security() {
        let err = parse(&["--kafka-option", "security.protocol=plaintext"]).err();
        assert!(err.is_some_and(|e| e.to_string().contains("use --kafka-security-protocol")));
        let mut args = KafkaArgs::for_bootstrap("b:9092");
        args.options.push(("sasl.password".into(), "x".into()));
        assert!(matches!(args.client_config("id"), Err(Error::SecurityOption(_))));
    }

    #[test]
    fn producer_tuning_is_overridable_but_guarantees_are_not() {
        let cli = parse(&["--kafka-option", "linger.ms=50,acks=1,enable.idempotence=false"])
            .expect("parse");
        let config = cli.producer_config("id").expect("config");
        assert_eq!(config.get("linger.ms"), Some("50"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("compression.type"), Some("lz4"));
        let cli = parse(&["--kafka-compression", "zstd"]).expect("parse");
        assert_eq!(
            cli.producer_config("id").expect("config").get("compression.type"),
            Some("zstd")
        );
        assert!(parse(&["--kafka-compression", "brotli"]).is_err());
    }

    #[tokio::test]
    async fn consumers_commit_manually_and_take_a_context() {
        let cli = parse(&["--kafka-session-timeout-ms", "6000"]).expect("parse");
        let config = cli.consumer_config("g", "id").expect("config");
        assert_eq!(config.get("group.id"), Some("g"));
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(config.get("heartbeat.interval.ms"), Some("600"));
        assert_eq!(config.get("isolation.level"), Some("read_committed"));
        assert_eq!(config.get("fetch.queue.backoff.ms"), Some("50"));
        assert_eq!(config.get("topic.metadata.refresh.interval.ms"), Some("3000"));
        let tuned = parse(&["--kafka-option", "fetch.queue.backoff.ms=500"]).expect("parse");
        let config = tuned.consumer_config("g", "id").expect("config");
        assert_eq!(config.get("fetch.queue.backoff.ms"), Some("500"));
        let consumer = cli.consumer_with_context(
            "g",
            "id",
            &[("statistics.interval.ms", "5000")],
            rdkafka::consumer::DefaultConsumerContext,
        );
        assert!(consumer.is_ok(), "{:?}", consumer.err());
    }

    #[test]
    fn bad_option_is_refused_with_its_text() {
        let err = parse(&["--kafka-option", "novalue"]).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("novalue")));
    }
}
