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
//! pod was told is visible in its spec. Secrets never travel in the environment (an
//! [`EnvValue`] cannot even name one): variables ending in `_FILE` name files under
//! [`SECRETS_DIR`] that the operator mounts from the Secrets [`WorkloadConfig::secret_files`]
//! lists, into that container only.
//! A test in the operator renders every object of a pipeline and parses each container's
//! `args` + `env` with the real `shopstream` command-line parser (`operator/tests/contract.rs`).

use std::fmt;

/// Environment variable names, one constant per setting, the same name in every workload.
pub mod env {
    /// The pipeline's key (`<namespace>/<name>`): the registry's and the privacy budget's id.
    pub const PIPELINE: &str = "SHOPSTREAM_PIPELINE";
    /// Kafka bootstrap servers.
    pub const KAFKA: &str = "SHOPSTREAM_KAFKA";
    /// Kafka security protocol: `plaintext`, `ssl`, `sasl-plaintext` or `sasl-ssl`.
    pub const KAFKA_SECURITY_PROTOCOL: &str = "SHOPSTREAM_KAFKA_SECURITY_PROTOCOL";
    /// Kafka SASL mechanism: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub const KAFKA_SASL_MECHANISM: &str = "SHOPSTREAM_KAFKA_SASL_MECHANISM";
    /// File holding the Kafka SASL username.
    pub const KAFKA_USERNAME_FILE: &str = "SHOPSTREAM_KAFKA_USERNAME_FILE";
    /// File holding the Kafka SASL password.
    pub const KAFKA_PASSWORD_FILE: &str = "SHOPSTREAM_KAFKA_PASSWORD_FILE";
    /// PEM file of the CA(s) that sign the brokers' certificates.
    pub const KAFKA_CA_FILE: &str = "SHOPSTREAM_KAFKA_CA_FILE";
    /// PEM file of the client certificate (mutual TLS).
    pub const KAFKA_CERT_FILE: &str = "SHOPSTREAM_KAFKA_CERT_FILE";
    /// PEM file of the client certificate's private key (mutual TLS).
    pub const KAFKA_KEY_FILE: &str = "SHOPSTREAM_KAFKA_KEY_FILE";
    /// Skip verifying the brokers' certificates (never in production).
    pub const KAFKA_INSECURE_SKIP_VERIFY: &str = "SHOPSTREAM_KAFKA_INSECURE_SKIP_VERIFY";
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
    /// PEM file of the CA(s) that sign Redis's certificate (`rediss://` URLs).
    pub const REDIS_CA_FILE: &str = "SHOPSTREAM_REDIS_CA_FILE";
    /// File holding the Redis ACL username.
    pub const REDIS_USERNAME_FILE: &str = "SHOPSTREAM_REDIS_USERNAME_FILE";
    /// File holding the Redis password.
    pub const REDIS_PASSWORD_FILE: &str = "SHOPSTREAM_REDIS_PASSWORD_FILE";
    /// Skip verifying Redis's certificate (never in production).
    pub const REDIS_INSECURE_SKIP_VERIFY: &str = "SHOPSTREAM_REDIS_INSECURE_SKIP_VERIFY";
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
    /// PEM file of the CA(s) that sign MongoDB's certificate (switches TLS on).
    pub const MONGO_CA_FILE: &str = "SHOPSTREAM_MONGO_CA_FILE";
    /// File holding the MongoDB (SCRAM) username.
    pub const MONGO_USERNAME_FILE: &str = "SHOPSTREAM_MONGO_USERNAME_FILE";
    /// File holding the MongoDB (SCRAM) password.
    pub const MONGO_PASSWORD_FILE: &str = "SHOPSTREAM_MONGO_PASSWORD_FILE";
    /// Skip verifying MongoDB's certificate (never in production).
    pub const MONGO_INSECURE_SKIP_VERIFY: &str = "SHOPSTREAM_MONGO_INSECURE_SKIP_VERIFY";
    /// Elasticsearch URL.
    pub const ES_URL: &str = "SHOPSTREAM_ES_URL";
    /// PEM file of the CA(s) that sign Elasticsearch's certificate (`https://` URLs).
    pub const ES_CA_FILE: &str = "SHOPSTREAM_ES_CA_FILE";
    /// File holding the Elasticsearch username (basic authentication).
    pub const ES_USERNAME_FILE: &str = "SHOPSTREAM_ES_USERNAME_FILE";
    /// File holding the Elasticsearch password (basic authentication).
    pub const ES_PASSWORD_FILE: &str = "SHOPSTREAM_ES_PASSWORD_FILE";
    /// File holding an Elasticsearch API key (the base64 `id:key` form), instead of a password.
    pub const ES_API_KEY_FILE: &str = "SHOPSTREAM_ES_API_KEY_FILE";
    /// Skip verifying Elasticsearch's certificate (never in production).
    pub const ES_INSECURE_SKIP_VERIFY: &str = "SHOPSTREAM_ES_INSECURE_SKIP_VERIFY";
    /// Prefix of the processor's index names.
    pub const ES_INDEX_PREFIX: &str = "SHOPSTREAM_ES_INDEX_PREFIX";
    /// File holding the key of the sink's pseudonyms.
    pub const PSEUDONYM_KEY_FILE: &str = "SHOPSTREAM_PSEUDONYM_KEY_FILE";
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

/// Where secret files are mounted in a container: `<SECRETS_DIR>/<backend>/<file>`.
pub const SECRETS_DIR: &str = "/var/run/secrets/shopstream";

/// A Secret holding a username and a password (keys `username`, `password`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Secret name.
    pub secret: String,
}

/// One key of a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKey {
    /// Secret name.
    pub name: String,
    /// Key in the Secret.
    pub key: String,
}

/// TLS settings of a connection: a CA bundle, an optional client certificate, and the
/// (discouraged) switch that turns verification off.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// CA bundle (PEM) that signs the server's certificate; the system's CAs without.
    pub ca: Option<SecretKey>,
    /// A `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`) for mutual TLS.
    pub client_cert: Option<String>,
    /// Do not verify the server's certificate.
    pub insecure_skip_verify: bool,
}

/// How a workload authenticates to, and encrypts its connection with, one backend.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackendAuth {
    /// TLS, when the backend uses it (the URL's scheme says so for Redis and
    /// Elasticsearch; for MongoDB a CA switches it on).
    pub tls: Option<TlsConfig>,
    /// Username and password.
    pub credentials: Option<Credentials>,
    /// Elasticsearch API key (encoded form), instead of credentials.
    pub api_key: Option<SecretKey>,
}

/// Kafka's security protocol, as the workloads' `--kafka-security-protocol` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KafkaProtocol {
    /// No TLS, no SASL.
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over TLS.
    SaslSsl,
}

impl KafkaProtocol {
    /// The value of [`env::KAFKA_SECURITY_PROTOCOL`].
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaProtocol::Plaintext => "plaintext",
            KafkaProtocol::Ssl => "ssl",
            KafkaProtocol::SaslSsl => "sasl-ssl",
        }
    }
}

/// Kafka connection of every workload that uses Kafka.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KafkaConfig {
    /// Bootstrap servers.
    pub bootstrap_servers: String,
    /// Security protocol.
    pub protocol: KafkaProtocol,
    /// SASL mechanism (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`) with [`KafkaProtocol::SaslSsl`].
    pub sasl_mechanism: Option<String>,
    /// SASL credentials.
    pub credentials: Option<Credentials>,
    /// TLS settings (with `ssl` and `sasl-ssl`).
    pub tls: Option<TlsConfig>,
}

/// A Secret key the operator mounts as a file into one container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretFile {
    /// Secret name.
    pub secret: String,
    /// Key in the Secret.
    pub key: String,
    /// Absolute path of the file in the container (under [`SECRETS_DIR`]).
    pub path: String,
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
    /// Redis TLS and credentials.
    pub redis_auth: BackendAuth,
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
    /// Elasticsearch TLS and credentials.
    pub es_auth: BackendAuth,
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
    /// MongoDB TLS and credentials.
    pub mongo_auth: BackendAuth,
    /// The pseudonym key (only the sink receives it).
    pub pseudonym_key: SecretKey,
}

/// `shopstream similarity`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityConfig {
    /// MongoDB URL (sessions in, results out).
    pub mongo_url: String,
    /// MongoDB database.
    pub mongo_db: String,
    /// MongoDB TLS and credentials.
    pub mongo_auth: BackendAuth,
    /// Elasticsearch URL (results).
    pub es_url: String,
    /// Elasticsearch TLS and credentials.
    pub es_auth: BackendAuth,
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
    /// MongoDB TLS and credentials.
    pub mongo_auth: BackendAuth,
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

/// The env names of one backend's file settings.
struct FileVars {
    dir: &'static str,
    ca: &'static str,
    cert: Option<(&'static str, &'static str)>,
    username: &'static str,
    password: &'static str,
    api_key: Option<&'static str>,
    insecure: &'static str,
}

const KAFKA_FILES: FileVars = FileVars {
    dir: "kafka",
    ca: env::KAFKA_CA_FILE,
    cert: Some((env::KAFKA_CERT_FILE, env::KAFKA_KEY_FILE)),
    username: env::KAFKA_USERNAME_FILE,
    password: env::KAFKA_PASSWORD_FILE,
    api_key: None,
    insecure: env::KAFKA_INSECURE_SKIP_VERIFY,
};
const REDIS_FILES: FileVars = FileVars {
    dir: "redis",
    ca: env::REDIS_CA_FILE,
    cert: None,
    username: env::REDIS_USERNAME_FILE,
    password: env::REDIS_PASSWORD_FILE,
    api_key: None,
    insecure: env::REDIS_INSECURE_SKIP_VERIFY,
};
const MONGO_FILES: FileVars = FileVars {
    dir: "mongodb",
    ca: env::MONGO_CA_FILE,
    cert: None,
    username: env::MONGO_USERNAME_FILE,
    password: env::MONGO_PASSWORD_FILE,
    api_key: None,
    insecure: env::MONGO_INSECURE_SKIP_VERIFY,
};
const ES_FILES: FileVars = FileVars {
    dir: "elasticsearch",
    ca: env::ES_CA_FILE,
    cert: None,
    username: env::ES_USERNAME_FILE,
    password: env::ES_PASSWORD_FILE,
    api_key: Some(env::ES_API_KEY_FILE),
    insecure: env::ES_INSECURE_SKIP_VERIFY,
};

/// The pseudonym key's file in the sink's container.
pub fn pseudonym_key_path() -> String {
    format!("{SECRETS_DIR}/pseudonym/key")
}

/// Renders one backend's TLS and credentials as `*_FILE` variables and the files they name.
fn auth_env(
    vars: &FileVars,
    tls: Option<&TlsConfig>,
    credentials: Option<&Credentials>,
    api_key: Option<&SecretKey>,
    out: &mut Vec<EnvEntry>,
    files: &mut Vec<SecretFile>,
) {
    let mut file = |var: &'static str, secret: &str, key: &str, name: &str| {
        let path = format!("{SECRETS_DIR}/{}/{name}", vars.dir);
        out.push(plain(var, &path));
        files.push(SecretFile { secret: secret.to_string(), key: key.to_string(), path });
    };
    if let Some(t) = tls {
        if let Some(ca) = &t.ca {
            file(vars.ca, &ca.name, &ca.key, "ca.crt");
        }
        if let (Some(secret), Some((cert, key))) = (&t.client_cert, vars.cert) {
            file(cert, secret, "tls.crt", "tls.crt");
            file(key, secret, "tls.key", "tls.key");
        }
    }
    if let Some(c) = credentials {
        file(vars.username, &c.secret, "username", "username");
        file(vars.password, &c.secret, "password", "password");
    }
    if let (Some(k), Some(var)) = (api_key, vars.api_key) {
        file(var, &k.name, &k.key, "api-key");
    }
    if tls.is_some_and(|t| t.insecure_skip_verify) {
        out.push(plain(vars.insecure, true));
    }
}

fn backend_env(
    vars: &FileVars,
    auth: &BackendAuth,
    out: &mut Vec<EnvEntry>,
    files: &mut Vec<SecretFile>,
) {
    auth_env(vars, auth.tls.as_ref(), auth.credentials.as_ref(), auth.api_key.as_ref(), out, files);
}

fn kafka_env(k: &KafkaConfig, out: &mut Vec<EnvEntry>, files: &mut Vec<SecretFile>) {
    out.push(plain(env::KAFKA, &k.bootstrap_servers));
    if k.protocol != KafkaProtocol::Plaintext {
        out.push(plain(env::KAFKA_SECURITY_PROTOCOL, k.protocol.as_str()));
    }
    if let Some(m) = &k.sasl_mechanism {
        out.push(plain(env::KAFKA_SASL_MECHANISM, m));
    }
    auth_env(&KAFKA_FILES, k.tls.as_ref(), k.credentials.as_ref(), None, out, files);
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
    /// id, and the workload's own settings. Secrets are never values here: variables name
    /// files under [`SECRETS_DIR`], listed by [`WorkloadConfig::secret_files`].
    pub fn env(&self, common: &Common) -> Vec<EnvEntry> {
        self.render(common).0
    }

    /// The Secret keys this container reads as files: exactly those of the backends it talks
    /// to (and the pseudonym key for the sink alone).
    pub fn secret_files(&self, common: &Common) -> Vec<SecretFile> {
        self.render(common).1
    }

    fn render(&self, common: &Common) -> (Vec<EnvEntry>, Vec<SecretFile>) {
        let id = &common.pipeline;
        let w = self.workload();
        let mut files = Vec::new();
        let files = &mut files;
        let mut out = vec![plain(env::RUST_LOG, &common.log)];
        if w.is_streaming() {
            out.push(plain(env::METRICS_ADDR, format!("0.0.0.0:{METRICS_PORT}")));
        }
        match self {
            WorkloadConfig::Generator(c) => {
                kafka_env(&c.kafka, &mut out, files);
                out.push(plain(env::TOPIC_RAW, &c.topic_raw));
                if let Some(rate) = c.rate {
                    out.push(plain(env::RATE, rate));
                }
                if let Some(seed) = c.seed {
                    out.push(plain(env::SEED, seed));
                }
            }
            WorkloadConfig::Gate(c) => {
                kafka_env(&c.kafka, &mut out, files);
                out.push(plain(env::CONSUMER_GROUP, id.consumer_group(w)));
                out.push(plain(env::TOPIC_RAW, &c.topic_raw));
                out.push(plain(env::TOPIC_VALID, &c.topic_valid));
                out.push(plain(env::TOPIC_SUSPICIOUS, &c.topic_suspicious));
                out.push(plain(env::TOPIC_DEAD_LETTER, &c.topic_dead_letter));
                out.push(plain(env::REDIS_URL, &c.redis_url));
                backend_env(&REDIS_FILES, &c.redis_auth, &mut out, files);
                out.push(plain(env::GATE_REDIS_PREFIX, id.redis_prefix()));
                let r = &c.rules;
                out.push(plain(env::GATE_BLOOM_CAPACITY, r.bloom_capacity));
                out.push(plain(env::GATE_BLOOM_ERROR_RATE, r.bloom_error_rate));
                out.push(plain(env::GATE_VERDICT_TTL_SECS, r.verdict_ttl_seconds));
                out.push(plain(env::GATE_FLAG_UNKNOWN_DEVICE, r.flag_unknown_device));
                out.push(plain(env::GATE_FLAG_UNKNOWN_REFERRER, r.flag_unknown_referrer));
            }
            WorkloadConfig::Processor(c) => {
                kafka_env(&c.kafka, &mut out, files);
                out.push(plain(env::CONSUMER_GROUP, id.consumer_group(w)));
                out.push(plain(env::TOPIC_VALID, &c.topic_valid));
                out.push(plain(env::TOPIC_PROCESSOR_DEAD_LETTER, &c.topic_dead_letter));
                out.push(plain(env::ES_URL, &c.es_url));
                backend_env(&ES_FILES, &c.es_auth, &mut out, files);
                out.push(plain(env::ES_INDEX_PREFIX, id.es_index_prefix()));
            }
            WorkloadConfig::Sink(c) => {
                kafka_env(&c.kafka, &mut out, files);
                out.push(plain(env::CONSUMER_GROUP, id.consumer_group(w)));
                out.push(plain(env::TOPIC_VALID, &c.topic_valid));
                out.push(plain(env::TOPIC_DEAD_LETTER, &c.topic_dead_letter));
                out.push(plain(env::MONGO_URL, &c.mongo_url));
                out.push(plain(env::MONGO_DB, &c.mongo_db));
                backend_env(&MONGO_FILES, &c.mongo_auth, &mut out, files);
                let path = pseudonym_key_path();
                out.push(plain(env::PSEUDONYM_KEY_FILE, &path));
                files.push(SecretFile {
                    secret: c.pseudonym_key.name.clone(),
                    key: c.pseudonym_key.key.clone(),
                    path,
                });
            }
            WorkloadConfig::Similarity(c) => {
                out.push(plain(env::MONGO_URL, &c.mongo_url));
                out.push(plain(env::MONGO_DB, &c.mongo_db));
                backend_env(&MONGO_FILES, &c.mongo_auth, &mut out, files);
                out.push(plain(env::ES_URL, &c.es_url));
                backend_env(&ES_FILES, &c.es_auth, &mut out, files);
                out.push(plain(env::SIMILARITY_INDEX, id.similarity_index()));
                out.push(plain(env::SIMILARITY_THRESHOLD, c.threshold));
            }
            WorkloadConfig::Train(c) => {
                out.push(plain(env::PIPELINE, id.key()));
                out.push(plain(env::MONGO_URL, &c.mongo_url));
                out.push(plain(env::MONGO_DB, &c.mongo_db));
                backend_env(&MONGO_FILES, &c.mongo_auth, &mut out, files);
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
        (out, std::mem::take(files))
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
    fn secrets_reach_only_the_containers_that_use_them_and_only_as_files() {
        let common = Common { pipeline: PipelineId::new("ns", "p"), log: "info".into() };
        let kafka = KafkaConfig {
            bootstrap_servers: "k:9093".into(),
            protocol: KafkaProtocol::SaslSsl,
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            credentials: Some(Credentials { secret: "kafka-creds".into() }),
            tls: Some(TlsConfig {
                ca: Some(SecretKey { name: "kafka-ca".into(), key: "ca.crt".into() }),
                client_cert: None,
                insecure_skip_verify: false,
            }),
        };
        let mongo_auth = BackendAuth {
            tls: Some(TlsConfig {
                ca: Some(SecretKey { name: "mongo-ca".into(), key: "ca.crt".into() }),
                ..Default::default()
            }),
            credentials: Some(Credentials { secret: "mongo-creds".into() }),
            api_key: None,
        };
        let es_auth = BackendAuth {
            tls: None,
            credentials: None,
            api_key: Some(SecretKey { name: "es-key".into(), key: "apiKey".into() }),
        };
        let sink = WorkloadConfig::Sink(SinkConfig {
            kafka: kafka.clone(),
            topic_valid: "v".into(),
            topic_dead_letter: "d".into(),
            mongo_url: "mongodb://m".into(),
            mongo_db: "db".into(),
            mongo_auth: mongo_auth.clone(),
            pseudonym_key: SecretKey { name: "pk".into(), key: "key".into() },
        });
        let processor = WorkloadConfig::Processor(ProcessorConfig {
            kafka,
            topic_valid: "v".into(),
            topic_dead_letter: "pd".into(),
            es_url: "https://e".into(),
            es_auth,
        });
        let train = WorkloadConfig::Train(TrainConfig {
            mongo_url: "mongodb://m".into(),
            mongo_db: "db".into(),
            mongo_auth,
            models: vec!["mlp".into()],
            privacy: TrainPrivacy::Private,
            total_epsilon: 10.0,
            delta: 1e-5,
            epsilon_per_run: 1.0,
            delta_per_run: 1e-6,
        });
        let secrets = |c: &WorkloadConfig| -> Vec<String> {
            let mut v: Vec<String> =
                c.secret_files(&common).into_iter().map(|f| f.secret).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        assert_eq!(secrets(&sink), ["kafka-ca", "kafka-creds", "mongo-ca", "mongo-creds", "pk"]);
        assert_eq!(secrets(&processor), ["es-key", "kafka-ca", "kafka-creds"]);
        assert_eq!(secrets(&train), ["mongo-ca", "mongo-creds"]);
        // Every file variable names a mounted file.
        for c in [&sink, &processor, &train] {
            let files = c.secret_files(&common);
            for e in c.env(&common) {
                if e.name.ends_with("_FILE") {
                    let EnvValue::Plain(path) = &e.value else { panic!("{}", e.name) };
                    assert!(files.iter().any(|f| &f.path == path), "{} -> {path}", e.name);
                }
            }
            let mut paths: Vec<_> = files.iter().map(|f| &f.path).collect();
            let n = paths.len();
            paths.sort_unstable();
            paths.dedup();
            assert_eq!(paths.len(), n, "two files at one path");
        }
        let names = |c: &WorkloadConfig| -> Vec<&str> {
            c.env(&common).into_iter().map(|e| e.name).collect()
        };
        assert!(names(&sink).contains(&env::PSEUDONYM_KEY_FILE));
        assert!(!names(&processor).contains(&env::PSEUDONYM_KEY_FILE));
        assert!(!names(&train).contains(&env::PSEUDONYM_KEY_FILE));
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
