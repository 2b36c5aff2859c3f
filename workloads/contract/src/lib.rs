//! The contract between the operator and the workloads.
//!
//! One definition of what every container of a pipeline is told, used on both sides:
//!
//! - [`env`] names every environment variable a workload reads. The workloads' clap arguments
//!   name these constants (`#[arg(env = env::REDIS_URL)]`), the operator renders from them, so a
//!   rename is one edit and a misspelling does not compile.
//! - [`PipelineId`] derives everything that must differ between pipelines sharing backends
//!   (consumer groups, the gate's Redis prefix, Elasticsearch index prefix and similarity index,
//!   the default MongoDB database, the registry and budget key) from namespace + name.
//! - [`WorkloadConfig`] is the typed configuration of one container: the operator builds it from
//!   the resource and turns it into `args` + `env` with [`WorkloadConfig::args`] and
//!   [`WorkloadConfig::env`]; the workload's parser reads exactly those variables.
//!
//! The channel is the environment for every setting (no mounted configuration file), so what a
//! pod was told is visible in its spec. Secret values are never copied: they are rendered as
//! [`EnvValue::Secret`] references that the operator turns into `secretKeyRef`s.
//! A test in the operator renders every object of a pipeline and parses each container's
//! `args` + `env` with the real `shopstream` command-line parser (`operator/tests/contract.rs`).

use std::fmt;

/// Environment variable names, one constant per setting, the same name in every workload.
pub mod env {
    /// The pipeline's key (`<namespace>/<name>`): the registry's and the privacy budget's id.
    pub const PIPELINE: &str = "SHOPSTREAM_PIPELINE";
    /// Kafka bootstrap servers.
    pub const KAFKA: &str = "SHOPSTREAM_KAFKA";
    /// SASL username for Kafka.
    pub const KAFKA_USERNAME: &str = "SHOPSTREAM_KAFKA_USERNAME";
    /// SASL password for Kafka.
    pub const KAFKA_PASSWORD: &str = "SHOPSTREAM_KAFKA_PASSWORD";
    /// Extra librdkafka properties (`key=value,...`).
    pub const KAFKA_OPTIONS: &str = "SHOPSTREAM_KAFKA_OPTIONS";
    /// Raw sessions topic (generator output, gate input).
    pub const TOPIC_RAW: &str = "SHOPSTREAM_TOPIC_RAW";
    /// Valid sessions topic (gate output, processor and sink input).
    pub const TOPIC_VALID: &str = "SHOPSTREAM_TOPIC_VALID";
    /// Suspicious sessions topic (gate output).
    pub const TOPIC_SUSPICIOUS: &str = "SHOPSTREAM_TOPIC_SUSPICIOUS";
    /// Dead-letter topic of the gate and the sink.
    pub const TOPIC_DEAD_LETTER: &str = "SHOPSTREAM_TOPIC_DEAD_LETTER";
    /// Dead-letter topic of the processor.
    pub const TOPIC_PROCESSOR_DEAD_LETTER: &str = "SHOPSTREAM_TOPIC_PROCESSOR_DEAD_LETTER";
    /// Kafka consumer group of a consuming workload.
    pub const CONSUMER_GROUP: &str = "SHOPSTREAM_CONSUMER_GROUP";
    /// Address of the Prometheus `/metrics`, `/healthz` and `/readyz` endpoint.
    pub const METRICS_ADDR: &str = "SHOPSTREAM_METRICS_ADDR";
    /// Redis URL (the gate's state).
    pub const REDIS_URL: &str = "SHOPSTREAM_REDIS_URL";
    /// Prefix of every Redis key the gate writes.
    pub const GATE_REDIS_PREFIX: &str = "SHOPSTREAM_GATE_REDIS_PREFIX";
    /// Capacity of the gate's Bloom filter.
    pub const GATE_BLOOM_CAPACITY: &str = "SHOPSTREAM_GATE_BLOOM_CAPACITY";
    /// False-positive rate of the gate's Bloom filter.
    pub const GATE_BLOOM_ERROR_RATE: &str = "SHOPSTREAM_GATE_BLOOM_ERROR_RATE";
    /// How long the gate remembers a verdict, in seconds.
    pub const GATE_VERDICT_TTL_SECS: &str = "SHOPSTREAM_GATE_VERDICT_TTL_SECS";
    /// Flag first sessions with an `unknown` device.
    pub const GATE_FLAG_UNKNOWN_DEVICE: &str = "SHOPSTREAM_GATE_FLAG_UNKNOWN_DEVICE";
    /// Flag first sessions with an `unknown` referrer.
    pub const GATE_FLAG_UNKNOWN_REFERRER: &str = "SHOPSTREAM_GATE_FLAG_UNKNOWN_REFERRER";
    /// MongoDB URL.
    pub const MONGO_URL: &str = "SHOPSTREAM_MONGO_URL";
    /// MongoDB database.
    pub const MONGO_DB: &str = "SHOPSTREAM_MONGO_DB";
    /// Elasticsearch URL.
    pub const ES_URL: &str = "SHOPSTREAM_ES_URL";
    /// Prefix of the processor's index names.
    pub const ES_INDEX_PREFIX: &str = "SHOPSTREAM_ES_INDEX_PREFIX";
    /// Key of the sink's pseudonyms.
    pub const PSEUDONYM_KEY: &str = "SHOPSTREAM_PSEUDONYM_KEY";
    /// Generator: sessions per second.
    pub const RATE: &str = "SHOPSTREAM_RATE";
    /// Generator: seed.
    pub const SEED: &str = "SHOPSTREAM_SEED";
    /// Similarity: Jaccard threshold.
    pub const SIMILARITY_THRESHOLD: &str = "SHOPSTREAM_SIMILARITY_THRESHOLD";
    /// Similarity: Elasticsearch index of the results.
    pub const SIMILARITY_INDEX: &str = "SHOPSTREAM_SIMILARITY_INDEX";
    /// Training: model families (`randomForest,boostedTrees,mlp`).
    pub const TRAIN_MODELS: &str = "SHOPSTREAM_TRAIN_MODELS";
    /// Training: `private`, `none` (plain models only) or `both`.
    pub const TRAIN_PRIVACY: &str = "SHOPSTREAM_TRAIN_PRIVACY";
    /// Training: the budget's total epsilon.
    pub const PRIVACY_TOTAL_EPSILON: &str = "SHOPSTREAM_PRIVACY_TOTAL_EPSILON";
    /// Training: the budget's total delta.
    pub const PRIVACY_DELTA: &str = "SHOPSTREAM_PRIVACY_DELTA";
    /// Training: epsilon one run spends.
    pub const PRIVACY_EPSILON_PER_RUN: &str = "SHOPSTREAM_PRIVACY_EPSILON_PER_RUN";
    /// Training: delta one run spends (split evenly among its private models).
    pub const PRIVACY_DELTA_PER_RUN: &str = "SHOPSTREAM_PRIVACY_DELTA_PER_RUN";
    /// Training: the identity of the run, the same for every retry of one Job (the budget
    /// charges a run once).
    pub const RUN_ID: &str = "SHOPSTREAM_RUN_ID";
    /// Log filter (tracing's `RUST_LOG`).
    pub const RUST_LOG: &str = "RUST_LOG";
}

/// The port every streaming workload serves `/metrics`, `/healthz` and `/readyz` on in a pod.
pub const METRICS_PORT: u16 = 9100;

/// The workloads the operator runs, each a `shopstream` subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// Synthetic sessions into the raw topic (optional).
    Generator,
    /// Raw -> valid / suspicious / dead letter, with Redis.
    Gate,
    /// Valid -> Elasticsearch.
    Processor,
    /// Valid -> MongoDB.
    Sink,
    /// Similar users (CronJob).
    Similarity,
    /// Model training (CronJob).
    Train,
}

impl Workload {
    /// Every workload, streaming ones first.
    pub const ALL: [Workload; 6] = [
        Workload::Generator,
        Workload::Gate,
        Workload::Processor,
        Workload::Sink,
        Workload::Similarity,
        Workload::Train,
    ];

    /// Component name: the suffix of the child objects' names and their component label.
    pub fn component(self) -> &'static str {
        match self {
            Workload::Generator => "generator",
            Workload::Gate => "gate",
            Workload::Processor => "processor",
            Workload::Sink => "sink",
            Workload::Similarity => "similarity",
            Workload::Train => "train",
        }
    }

    /// The `shopstream` subcommand that runs it.
    pub fn subcommand(self) -> &'static str {
        match self {
            Workload::Generator => "generate",
            Workload::Gate => "gate",
            Workload::Processor => "process",
            Workload::Sink => "sink",
            Workload::Similarity => "similarity",
            Workload::Train => "train",
        }
    }

    /// Runs as a Deployment (otherwise as a CronJob).
    pub fn is_streaming(self) -> bool {
        !matches!(self, Workload::Similarity | Workload::Train)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.component())
    }
}

/// Longest MongoDB database name (MongoDB allows 63 bytes).
const MAX_DATABASE: usize = 63;
/// Longest Elasticsearch index prefix we derive (index names may have 255 bytes; the longest
/// suffix we append is `similar-users`).
const MAX_INDEX_PREFIX: usize = 200;

/// A pipeline's identity: namespace + name, unique in a cluster.
///
/// Everything that two pipelines on the same Kafka, Redis, MongoDB or Elasticsearch must not
/// share is derived from it, so they stay isolated without any configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PipelineId {
    /// The resource's namespace (a DNS label).
    pub namespace: String,
    /// The resource's name (a DNS subdomain).
    pub name: String,
}

impl PipelineId {
    /// The pipeline `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PipelineId { namespace: namespace.into(), name: name.into() }
    }

    /// `<namespace>/<name>`: the id of the pipeline's privacy budget and registry entries.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Kafka consumer group of `workload`: `shopstream.<namespace>.<name>.<component>`.
    pub fn consumer_group(&self, workload: Workload) -> String {
        format!("shopstream.{}.{}.{}", self.namespace, self.name, workload.component())
    }

    /// Prefix of the gate's Redis keys: `shopstream:<namespace>:<name>:gate`.
    pub fn redis_prefix(&self) -> String {
        format!("shopstream:{}:{}:gate", self.namespace, self.name)
    }

    /// Prefix of the processor's indexes: `shopstream-<namespace>-<name>-` (lower case, as
    /// Elasticsearch requires; namespaces and names are lower case already).
    pub fn es_index_prefix(&self) -> String {
        bounded(
            &format!("shopstream-{}-{}-", self.namespace, self.name).to_ascii_lowercase(),
            MAX_INDEX_PREFIX,
            '-',
        )
    }

    /// Index of the similarity job's results: `<index prefix>similar-users`.
    pub fn similarity_index(&self) -> String {
        format!("{}similar-users", self.es_index_prefix())
    }

    /// MongoDB database when the resource names none: `shopstream_<namespace>_<name>` with
    /// the characters MongoDB forbids (`.`) replaced, cut to 63 bytes with a hash suffix.
    pub fn default_database(&self) -> String {
        let raw = format!("shopstream_{}_{}", self.namespace, self.name).replace('.', "_");
        bounded(&raw, MAX_DATABASE, '_')
    }

    /// The processor's dead-letter topic when the resource names none: `<dead letter>.processor`.
    pub fn default_processor_dead_letter(dead_letter_topic: &str) -> String {
        format!("{dead_letter_topic}.processor")
    }
}

/// `s` if it fits in `max` bytes; otherwise its head and a stable hash of the whole, so two
/// long names never share the bounded one by accident. `sep` ends the result (as `s` does).
fn bounded(s: &str, max: usize, sep: char) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let hash = format!("{:016x}", fnv1a(s.as_bytes()));
    let ends_with_sep = s.ends_with(sep);
    let keep = max - hash.len() - 1 - usize::from(ends_with_sep);
    let mut head: String = s.chars().take(keep).collect();
    while head.len() > keep {
        head.pop();
    }
    head.push(sep);
    head.push_str(&hash);
    if ends_with_sep {
        head.push(sep);
    }
    head
}

/// FNV-1a, 64 bits: a stable hash (not for security).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The value of one environment variable: a literal, or a key of a Secret in the pipeline's
/// namespace (never copied into the pod spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// A literal value.
    Plain(String),
    /// `secretKeyRef`.
    Secret {
        /// Secret name.
        name: String,
        /// Key in the Secret.
        key: String,
    },
    /// `fieldRef`: a field of the pod itself (downward API), by its path.
    PodField(String),
}

/// One variable of a container's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEntry {
    /// One of the [`env`] constants.
    pub name: &'static str,
    /// Its value.
    pub value: EnvValue,
}

/// A Secret holding a username and a password (keys `username`, `password`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Secret name.
    pub secret: String,
}

/// Kafka connection of every workload that uses Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    /// Bootstrap servers.
    pub bootstrap_servers: String,
    /// SASL credentials.
    pub credentials: Option<Credentials>,
}

/// Settings every container gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// The pipeline.
    pub pipeline: PipelineId,
    /// Log filter.
    pub log: String,
}

/// `shopstream generate`.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// Output topic.
    pub topic_raw: String,
    /// Sessions per second (as fast as possible without).
    pub rate: Option<f64>,
    /// Seed.
    pub seed: Option<u64>,
}

/// The gate's rules.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRules {
    /// Flag first sessions with an unknown device.
    pub flag_unknown_device: bool,
    /// Flag first sessions with an unknown referrer.
    pub flag_unknown_referrer: bool,
    /// Bloom filter capacity.
    pub bloom_capacity: u64,
    /// Bloom filter false-positive rate.
    pub bloom_error_rate: f64,
    /// Verdict memory in seconds.
    pub verdict_ttl_seconds: u64,
}

/// `shopstream gate`.
#[derive(Debug, Clone, PartialEq)]
pub struct GateConfig {
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// Input.
    pub topic_raw: String,
    /// Output of sessions that passed.
    pub topic_valid: String,
    /// Output of flagged sessions.
    pub topic_suspicious: String,
    /// Output of records that do not parse.
    pub topic_dead_letter: String,
    /// Redis URL.
    pub redis_url: String,
    /// Rules.
    pub rules: GateRules,
}

/// `shopstream process`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessorConfig {
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// Input.
    pub topic_valid: String,
    /// The processor's dead-letter topic.
    pub topic_dead_letter: String,
    /// Elasticsearch URL.
    pub es_url: String,
}

/// `shopstream sink`.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// Input.
    pub topic_valid: String,
    /// Dead-letter topic.
    pub topic_dead_letter: String,
    /// MongoDB URL.
    pub mongo_url: String,
    /// MongoDB database.
    pub mongo_db: String,
    /// Secret key of the pseudonym key (only the sink receives it).
    pub pseudonym_key: (String, String),
}

/// `shopstream similarity`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityConfig {
    /// MongoDB URL (sessions in, results out).
    pub mongo_url: String,
    /// MongoDB database.
    pub mongo_db: String,
    /// Elasticsearch URL (results).
    pub es_url: String,
    /// Jaccard threshold.
    pub threshold: f64,
}

/// Which model variants a training run registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainPrivacy {
    /// Only the differentially private models (what a pipeline with a privacy spec runs).
    Private,
    /// Only the plain models.
    NonPrivate,
    /// Both.
    Both,
}

impl TrainPrivacy {
    /// The value of [`env::TRAIN_PRIVACY`].
    pub fn as_str(self) -> &'static str {
        match self {
            TrainPrivacy::Private => "private",
            TrainPrivacy::NonPrivate => "none",
            TrainPrivacy::Both => "both",
        }
    }
}

/// `shopstream train`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// MongoDB URL (sessions, registry, budget).
    pub mongo_url: String,
    /// MongoDB database.
    pub mongo_db: String,
    /// Model families (`randomForest`, `boostedTrees`, `mlp`).
    pub models: Vec<String>,
    /// Variants.
    pub privacy: TrainPrivacy,
    /// Total epsilon of the budget.
    pub total_epsilon: f64,
    /// Total delta of the budget.
    pub delta: f64,
    /// Epsilon per run.
    pub epsilon_per_run: f64,
    /// Delta per run.
    pub delta_per_run: f64,
}

/// The pod label that carries the uid of the Job a pod belongs to: the same for every retry
/// of the Job, different for every Job a CronJob creates.
pub const JOB_UID_LABEL: &str = "controller-uid";

/// The configuration of one workload container.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadConfig {
    /// `shopstream generate`.
    Generator(GeneratorConfig),
    /// `shopstream gate`.
    Gate(GateConfig),
    /// `shopstream process`.
    Processor(ProcessorConfig),
    /// `shopstream sink`.
    Sink(SinkConfig),
    /// `shopstream similarity`.
    Similarity(SimilarityConfig),
    /// `shopstream train`.
    Train(TrainConfig),
}

fn plain(name: &'static str, value: impl ToString) -> EnvEntry {
    EnvEntry { name, value: EnvValue::Plain(value.to_string()) }
}

fn secret(name: &'static str, secret: &str, key: &str) -> EnvEntry {
    EnvEntry { name, value: EnvValue::Secret { name: secret.to_string(), key: key.to_string() } }
}

fn kafka_env(k: &KafkaConfig, out: &mut Vec<EnvEntry>) {
    out.push(plain(env::KAFKA, &k.bootstrap_servers));
    if let Some(c) = &k.credentials {
        out.push(secret(env::KAFKA_USERNAME, &c.secret, "username"));
        out.push(secret(env::KAFKA_PASSWORD, &c.secret, "password"));
    }
}

impl WorkloadConfig {
    /// Which workload this configures.
    pub fn workload(&self) -> Workload {
        match self {
            WorkloadConfig::Generator(_) => Workload::Generator,
            WorkloadConfig::Gate(_) => Workload::Gate,
            WorkloadConfig::Processor(_) => Workload::Processor,
            WorkloadConfig::Sink(_) => Workload::Sink,
            WorkloadConfig::Similarity(_) => Workload::Similarity,
            WorkloadConfig::Train(_) => Workload::Train,
        }
    }

    /// The container's arguments (the image's entrypoint is `shopstream`).
    pub fn args(&self) -> Vec<String> {
        vec![self.workload().subcommand().to_string()]
    }

    /// The container's environment: [`Common`] settings, the names derived from the pipeline
    /// id, and the workload's own settings.
    pub fn env(&self, common: &Common) -> Vec<EnvEntry> {
        let id = &common.pipeline;
        let w = self.workload();
        let mut out = vec![plain(env::RUST_LOG, &common.log)];
        if w.is_streaming() {
            out.push(plain(env::METRICS_ADDR, format!("0.0.0.0:{METRICS_PORT}")));
        }
        match self {
            WorkloadConfig::Generator(c) => {
                kafka_env(&c.kafka, &mut out);
                out.push(plain(env::TOPIC_RAW, &c.topic_raw));
                if let Some(rate) = c.rate {
                    out.push(plain(env::RATE, rate));
                }
                if let Some(seed) = c.seed {
                    out.push(plain(env::SEED, seed));
                }
            }
            WorkloadConfig::Gate(c) => {
                kafka_env(&c.kafka, &mut out);
                out.push(plain(env::CONSUMER_GROUP, id.consumer_group(w)));
                out.push(plain(env::TOPIC_RAW, &c.topic_raw));
                out.push(plain(env::TOPIC_VALID, &c.topic_valid));
                out.push(plain(env::TOPIC_SUSPICIOUS, &c.topic_suspicious));
                out.push(plain(env::TOPIC_DEAD_LETTER, &c.topic_dead_letter));
                out.push(plain(env::REDIS_URL, &c.redis_url));
                out.push(plain(env::GATE_REDIS_PREFIX, id.redis_prefix()));
                let r = &c.rules;
                out.push(plain(env::GATE_BLOOM_CAPACITY, r.bloom_capacity));
                out.push(plain(env::GATE_BLOOM_ERROR_RATE, r.bloom_error_rate));
                out.push(plain(env::GATE_VERDICT_TTL_SECS, r.verdict_ttl_seconds));
                out.push(plain(env::GATE_FLAG_UNKNOWN_DEVICE, r.flag_unknown_device));
                out.push(plain(env::GATE_FLAG_UNKNOWN_REFERRER, r.flag_unknown_referrer));
            }
            WorkloadConfig::Processor(c) => {
                kafka_env(&c.kafka, &mut out);
                out.push(plain(env::CONSUMER_GROUP, id.consumer_group(w)));
                out.push(plain(env::TOPIC_VALID, &c.topic_valid));
                out.push(plain(env::TOPIC_PROCESSOR_DEAD_LETTER, &c.topic_dead_letter));
                out.push(plain(env::ES_URL, &c.es_url));
                out.push(plain(env::ES_INDEX_PREFIX, id.es_index_prefix()));
            }
            WorkloadConfig::Sink(c) => {
                kafka_env(&c.kafka, &mut out);
                out.push(plain(env::CONSUMER_GROUP, id.consumer_group(w)));
                out.push(plain(env::TOPIC_VALID, &c.topic_valid));
                out.push(plain(env::TOPIC_DEAD_LETTER, &c.topic_dead_letter));
                out.push(plain(env::MONGO_URL, &c.mongo_url));
                out.push(plain(env::MONGO_DB, &c.mongo_db));
                out.push(secret(env::PSEUDONYM_KEY, &c.pseudonym_key.0, &c.pseudonym_key.1));
            }
            WorkloadConfig::Similarity(c) => {
                out.push(plain(env::MONGO_URL, &c.mongo_url));
                out.push(plain(env::MONGO_DB, &c.mongo_db));
                out.push(plain(env::ES_URL, &c.es_url));
                out.push(plain(env::SIMILARITY_INDEX, id.similarity_index()));
                out.push(plain(env::SIMILARITY_THRESHOLD, c.threshold));
            }
            WorkloadConfig::Train(c) => {
                out.push(plain(env::PIPELINE, id.key()));
                out.push(plain(env::MONGO_URL, &c.mongo_url));
                out.push(plain(env::MONGO_DB, &c.mongo_db));
                out.push(plain(env::TRAIN_MODELS, c.models.join(",")));
                out.push(plain(env::TRAIN_PRIVACY, c.privacy.as_str()));
                out.push(plain(env::PRIVACY_TOTAL_EPSILON, c.total_epsilon));
                out.push(plain(env::PRIVACY_DELTA, c.delta));
                out.push(plain(env::PRIVACY_EPSILON_PER_RUN, c.epsilon_per_run));
                out.push(plain(env::PRIVACY_DELTA_PER_RUN, c.delta_per_run));
                out.push(EnvEntry {
                    name: env::RUN_ID,
                    value: EnvValue::PodField(format!("metadata.labels['{JOB_UID_LABEL}']")),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_differ_per_namespace_and_name() {
        let a = PipelineId::new("team-a", "shop");
        let b = PipelineId::new("team-b", "shop");
        let c = PipelineId::new("team-a", "shop2");
        for f in [
            PipelineId::key as fn(&PipelineId) -> String,
            PipelineId::redis_prefix,
            PipelineId::es_index_prefix,
            PipelineId::similarity_index,
            PipelineId::default_database,
        ] {
            assert_ne!(f(&a), f(&b));
            assert_ne!(f(&a), f(&c));
        }
        for w in Workload::ALL {
            assert_ne!(a.consumer_group(w), b.consumer_group(w));
        }
        assert_ne!(a.consumer_group(Workload::Gate), a.consumer_group(Workload::Sink));
        assert_eq!(a.es_index_prefix(), "shopstream-team-a-shop-");
        assert_eq!(a.similarity_index(), "shopstream-team-a-shop-similar-users");
        assert_eq!(a.default_database(), "shopstream_team-a_shop");
        assert_eq!(a.consumer_group(Workload::Gate), "shopstream.team-a.shop.gate");
        assert_eq!(a.redis_prefix(), "shopstream:team-a:shop:gate");
    }

    #[test]
    fn long_names_are_bounded_and_stay_distinct() {
        let ns = "n".repeat(63);
        let a = PipelineId::new(&ns, format!("{}a", "x".repeat(200)));
        let b = PipelineId::new(&ns, format!("{}b", "x".repeat(200)));
        assert!(a.default_database().len() <= 63, "{}", a.default_database());
        assert_ne!(a.default_database(), b.default_database());
        assert!(a.es_index_prefix().len() <= 200);
        assert!(a.es_index_prefix().ends_with('-'));
        assert_ne!(a.es_index_prefix(), b.es_index_prefix());
        // Dots are not allowed in MongoDB database names.
        assert!(!PipelineId::new("ns", "a.b").default_database().contains('.'));
    }

    #[test]
    fn only_the_sink_gets_the_pseudonym_key_and_only_streaming_workloads_serve_metrics() {
        let common = Common { pipeline: PipelineId::new("ns", "p"), log: "info".into() };
        let kafka = KafkaConfig { bootstrap_servers: "k:9092".into(), credentials: None };
        let sink = WorkloadConfig::Sink(SinkConfig {
            kafka: kafka.clone(),
            topic_valid: "v".into(),
            topic_dead_letter: "d".into(),
            mongo_url: "mongodb://m".into(),
            mongo_db: "db".into(),
            pseudonym_key: ("pk".into(), "key".into()),
        });
        let processor = WorkloadConfig::Processor(ProcessorConfig {
            kafka,
            topic_valid: "v".into(),
            topic_dead_letter: "pd".into(),
            es_url: "http://e".into(),
        });
        let train = WorkloadConfig::Train(TrainConfig {
            mongo_url: "mongodb://m".into(),
            mongo_db: "db".into(),
            models: vec!["mlp".into()],
            privacy: TrainPrivacy::Private,
            total_epsilon: 10.0,
            delta: 1e-5,
            epsilon_per_run: 1.0,
            delta_per_run: 1e-6,
        });
        let names = |c: &WorkloadConfig| -> Vec<&str> {
            c.env(&common).into_iter().map(|e| e.name).collect()
        };
        assert!(names(&sink).contains(&env::PSEUDONYM_KEY));
        assert!(!names(&processor).contains(&env::PSEUDONYM_KEY));
        assert!(!names(&train).contains(&env::PSEUDONYM_KEY));
        assert!(names(&processor).contains(&env::METRICS_ADDR));
        assert!(!names(&train).contains(&env::METRICS_ADDR));
        // No variable twice in one container.
        for c in [&sink, &processor, &train] {
            let mut n = names(c);
            let len = n.len();
            n.sort_unstable();
            n.dedup();
            assert_eq!(n.len(), len);
        }
    }
}
