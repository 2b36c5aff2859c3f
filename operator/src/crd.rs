//! The `AnalyticsPipeline` custom resource (`shopstream.io/v1alpha1`).
//!
//! The schema generated from these types is what the API server validates at `kubectl apply`
//! (ranges, enums, patterns, required fields). Rules the schema cannot express (a Secret that
//! must exist, `epsilonPerRun <= totalEpsilon`, ...) are checked by [`crate::validate`] and
//! reported as conditions. The schema is kept free of CEL rules so that Kubernetes 1.20 accepts
//! the CRD.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the resource.
pub const GROUP: &str = "shopstream.io";
/// API version of the resource.
pub const VERSION: &str = "v1alpha1";

/// Desired state of one analytics pipeline: Kafka topics, backends, streaming workloads and
/// offline jobs.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "shopstream.io",
    version = "v1alpha1",
    kind = "AnalyticsPipeline",
    plural = "analyticspipelines",
    shortname = "ap",
    category = "shopstream",
    namespaced,
    status = "AnalyticsPipelineStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Topics","type":"string","jsonPath":".status.conditions[?(@.type==\"TopicsReady\")].status"}"#,
    printcolumn = r#"{"name":"Budget Left","type":"number","jsonPath":".status.privacyBudget.remainingEpsilon"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsPipelineSpec {
    /// Kafka connection and the pipeline's topics.
    pub kafka: KafkaSpec,
    /// Redis (with RedisBloom) used by the gate.
    pub redis: BackendSpec,
    /// MongoDB used by the sink, the offline jobs and the model registry.
    pub mongodb: MongoSpec,
    /// Elasticsearch used by the sink and the similarity job.
    pub elasticsearch: BackendSpec,
    /// Kibana for dashboards (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kibana: Option<BackendSpec>,
    /// The streaming workloads.
    pub workloads: WorkloadsSpec,
    /// Secret holding the key used to pseudonymise user identifiers.
    pub pseudonymisation: PseudonymisationSpec,
    /// Offline jobs (similarity and private model training).
    pub offline: OfflineSpec,
}

/// Kafka: bootstrap servers, optional credentials and the pipeline's topics.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    /// Comma-separated `host:port` list of bootstrap servers.
    #[schemars(length(min = 1), regex(pattern = r"^[^,\s]+:[0-9]+(,[^,\s]+:[0-9]+)*$"))]
    pub bootstrap_servers: String,
    /// Secret with keys `username` and `password` for SASL (optional). Credentials need `tls`:
    /// they are only ever sent over TLS (protocol `SASL_SSL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<SecretRef>,
    /// SASL mechanism used with `credentialsSecret`.
    #[serde(default)]
    pub sasl_mechanism: SaslMechanism,
    /// TLS to the brokers. The security protocol follows: `credentialsSecret` + `tls` ->
    /// `SASL_SSL`, `tls` alone -> `SSL`, neither -> `PLAINTEXT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// The pipeline's topics.
    pub topics: TopicsSpec,
    /// Delete the pipeline's topics when the AnalyticsPipeline is deleted.
    #[serde(default)]
    pub delete_topics_on_deletion: bool,
}

/// The topics of the streaming path.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicsSpec {
    /// Raw sessions as produced by the generator or the shop.
    pub raw: TopicSpec,
    /// Sessions that passed the gate.
    pub valid: TopicSpec,
    /// Sessions the gate flagged.
    pub suspicious: TopicSpec,
    /// Records that could not be parsed.
    pub dead_letter: TopicSpec,
    /// Records the processor could not store in Elasticsearch, with the reason in headers.
    /// When absent: `<deadLetter.name>.processor` with the dead-letter topic's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor_dead_letter: Option<TopicSpec>,
}

impl TopicsSpec {
    /// The topics with their role names (`raw`, `valid`, `suspicious`, `deadLetter`,
    /// `processorDeadLetter`), the processor's dead-letter topic filled in when absent.
    pub fn all(&self) -> Vec<(&'static str, TopicSpec)> {
        vec![
            ("raw", self.raw.clone()),
            ("valid", self.valid.clone()),
            ("suspicious", self.suspicious.clone()),
            ("deadLetter", self.dead_letter.clone()),
            ("processorDeadLetter", self.processor_dead_letter()),
        ]
    }

    /// The processor's dead-letter topic: as given, or derived from the dead-letter topic.
    pub fn processor_dead_letter(&self) -> TopicSpec {
        self.processor_dead_letter.clone().unwrap_or_else(|| TopicSpec {
            name: shopstream_contract::PipelineId::default_processor_dead_letter(
                &self.dead_letter.name,
            ),
            ..self.dead_letter.clone()
        })
    }
}

/// One Kafka topic.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    /// Topic name.
    #[schemars(length(min = 1, max = 249), regex(pattern = r"^[a-zA-Z0-9._-]+$"))]
    pub name: String,
    /// Number of partitions (can only grow).
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 10000))]
    pub partitions: i32,
    /// Replication factor (fixed after creation).
    #[serde(default = "default_replication")]
    #[schemars(range(min = 1, max = 32))]
    pub replication_factor: i32,
    /// `retention.ms`; -1 keeps records forever.
    #[serde(default = "default_retention_ms")]
    #[schemars(range(min = -1))]
    pub retention_ms: i64,
}

fn default_partitions() -> i32 {
    3
}
fn default_replication() -> i32 {
    1
}
fn default_retention_ms() -> i64 {
    7 * 24 * 3600 * 1000
}

/// Reference to a whole Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Secret name (same namespace as the pipeline).
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
}

/// Reference to one key of a Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name (same namespace as the pipeline).
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// SASL mechanism of the Kafka credentials.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SaslMechanism {
    /// SCRAM-SHA-512 (the password never crosses the wire).
    #[default]
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// SCRAM-SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// PLAIN: the password is sent to the broker (inside TLS).
    #[serde(rename = "PLAIN")]
    Plain,
}

impl SaslMechanism {
    /// The Kafka spelling (`SCRAM-SHA-512`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

/// TLS to a backend: the CA that signs its certificate and, for Kafka, a client certificate.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret key holding the PEM bundle of the CA(s) that sign the server's certificate; the
    /// system's CAs when absent. For MongoDB, TLS is switched on by this CA (required there
    /// unless `insecureSkipVerify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<CaSecretRef>,
    /// A `kubernetes.io/tls` Secret (keys `tls.crt`, `tls.key`) for mutual TLS. Kafka only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_secret: Option<SecretRef>,
    /// Do not verify the server's certificate. Never in production: anyone on the network path
    /// can read and change the traffic. Accepted, but loudly warned about (a Warning event and
    /// the SpecValid and Ready conditions say so).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// The Secret key holding a CA bundle.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaSecretRef {
    /// Secret name (same namespace as the pipeline).
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}

/// A backend is either an external service or a single-node StatefulSet run by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BackendSpec {
    /// An existing service reached by URL.
    External(ExternalBackend),
    /// A single-node StatefulSet + Service run by the operator (development clusters).
    Managed(ManagedBackend),
}

/// MongoDB backend plus the database the pipeline uses.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MongoSpec {
    /// Where MongoDB runs.
    #[serde(flatten)]
    pub backend: BackendSpec,
    /// Database name. When absent: `shopstream_<namespace>_<name>`, so pipelines sharing a
    /// MongoDB never share sessions, similar users, models or budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[^/\\. \x22$]+$"))]
    pub database: Option<String>,
    /// Secret (keys `username`, `password`) of the user the operator reads the model
    /// registry and the privacy ledger with, for status. Give it read access to those two
    /// collections only; without it the operator uses `credentialsSecret`, which the
    /// workloads write with. External MongoDB with `tls` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_credentials_secret: Option<SecretRef>,
}

/// An external service.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalBackend {
    /// Connection URL (e.g. `redis://host:6379`, `mongodb://host:27017`, `http://host:9200`).
    #[schemars(length(min = 1), regex(pattern = r"^[a-z][a-z0-9+.-]*://\S+$"))]
    pub url: String,
    /// Secret with keys `username` and `password` (optional). Never put credentials in the
    /// URL. They are only sent over TLS: a `rediss://` or `https://` URL, or `tls` for MongoDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<SecretRef>,
    /// TLS settings (a `rediss://` or `https://` URL uses TLS; for MongoDB this field switches
    /// TLS on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Secret key holding an API key (the encoded `id:key` form), instead of
    /// `credentialsSecret`. Elasticsearch and Kibana only, over `https://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret: Option<SecretKeyRef>,
}

/// A backend run by the operator as a single-node StatefulSet.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedBackend {
    /// Container image; a default per backend when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// Persistent storage; an emptyDir when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// Container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesSpec>,
}

/// A PersistentVolumeClaim template.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, e.g. `10Gi`.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    pub size: String,
    /// Storage class; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// CPU/memory requests and limits as Kubernetes quantities.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesSpec {
    /// Requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<CpuMemory>,
    /// Limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CpuMemory>,
}

/// A CPU and a memory quantity.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CpuMemory {
    /// CPU, e.g. `250m` or `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?m?$"))]
    pub cpu: Option<String>,
    /// Memory, e.g. `256Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"))]
    pub memory: Option<String>,
}

/// The streaming workloads; all run the one `shopstream` image.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadsSpec {
    /// Image for every workload and job (e.g. `registry/shopstream:1.0`).
    #[schemars(length(min = 1))]
    pub image: String,
    /// Image pull policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Synthetic session generator (optional; absent means no generator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorSpec>,
    /// Validation gate: raw -> valid / suspicious / dead-letter.
    pub gate: GateSpec,
    /// Stream processor (valid sessions -> features and aggregates).
    pub processor: WorkloadSpec,
    /// Sink (valid sessions -> MongoDB and Elasticsearch).
    pub sink: WorkloadSpec,
}

/// Kubernetes image pull policy.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull when absent.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Replicas and resources of one Deployment.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Number of replicas.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// Container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesSpec>,
}

fn default_replicas() -> i32 {
    1
}

/// The generator Deployment.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorSpec {
    /// Replicas and resources.
    #[serde(flatten)]
    pub workload: WorkloadSpec,
    /// Sessions per second per replica; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.001, max = 1000000.0))]
    pub rate: Option<f64>,
    /// Seed of the generator (deterministic output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub seed: Option<i64>,
}

/// The gate Deployment and its rules.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateSpec {
    /// Replicas and resources.
    #[serde(flatten)]
    pub workload: WorkloadSpec,
    /// Rules deciding what is suspicious.
    #[serde(default)]
    pub rules: GateRules,
}

/// Rules of the gate.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GateRules {
    /// Flag sessions whose device type is `unknown`.
    #[serde(default = "yes")]
    pub flag_unknown_device: bool,
    /// Flag sessions whose referrer is `unknown`.
    #[serde(default = "yes")]
    pub flag_unknown_referrer: bool,
    /// Expected number of distinct sessions in the duplicate-detection Bloom filter.
    #[serde(default = "default_bloom_capacity")]
    #[schemars(range(min = 1000, max = 10000000000i64))]
    pub bloom_capacity: i64,
    /// False-positive rate of the Bloom filter.
    #[serde(default = "default_bloom_error_rate")]
    #[schemars(range(min = 0.000001, max = 0.5))]
    pub bloom_error_rate: f64,
    /// Lifetime of a verdict in seconds; 0 keeps it forever.
    #[serde(default = "default_verdict_ttl")]
    #[schemars(range(min = 0))]
    pub verdict_ttl_seconds: i64,
}

impl Default for GateRules {
    fn default() -> Self {
        GateRules {
            flag_unknown_device: true,
            flag_unknown_referrer: true,
            bloom_capacity: default_bloom_capacity(),
            bloom_error_rate: default_bloom_error_rate(),
            verdict_ttl_seconds: default_verdict_ttl(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_bloom_capacity() -> i64 {
    1_000_000
}
fn default_bloom_error_rate() -> f64 {
    0.001
}
fn default_verdict_ttl() -> i64 {
    8 * 24 * 3600
}

/// Pseudonymisation of user identifiers.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PseudonymisationSpec {
    /// Secret key holding the HMAC key.
    pub key_secret: SecretKeyRef,
}

/// Offline jobs.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfflineSpec {
    /// Similar-users job.
    pub similarity: SimilaritySpec,
    /// Private model training job.
    pub training: TrainingSpec,
}

/// A cron schedule (5 fields or an `@daily`-style macro).
const CRON_PATTERN: &str =
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$";

/// The similarity CronJob.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimilaritySpec {
    /// Cron schedule.
    #[schemars(regex(pattern = CRON_PATTERN))]
    pub schedule: String,
    /// Jaccard similarity threshold.
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 0.01, max = 1.0))]
    pub threshold: f64,
    /// Container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesSpec>,
}

fn default_threshold() -> f64 {
    0.5
}

/// The training CronJob.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainingSpec {
    /// Cron schedule.
    #[schemars(regex(pattern = CRON_PATTERN))]
    pub schedule: String,
    /// Models trained on each run.
    #[schemars(length(min = 1, max = 3), extend("x-kubernetes-list-type" = "set"))]
    pub models: Vec<ModelKind>,
    /// Differential-privacy budget.
    pub privacy: PrivacySpec,
    /// Container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesSpec>,
}

/// A model family the trainer knows.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ModelKind {
    /// Differentially private random forest.
    RandomForest,
    /// Differentially private gradient-boosted trees.
    BoostedTrees,
    /// Multi-layer perceptron trained with DP-SGD.
    Mlp,
}

impl ModelKind {
    /// The spelling used in the spec and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::RandomForest => "randomForest",
            ModelKind::BoostedTrees => "boostedTrees",
            ModelKind::Mlp => "mlp",
        }
    }
}

/// Differential-privacy budget of the training job.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivacySpec {
    /// Total epsilon the pipeline may ever spend (> 0).
    #[schemars(range(min = 0.0, max = 1000.0), extend("exclusiveMinimum" = true))]
    pub total_epsilon: f64,
    /// Delta of (epsilon, delta)-DP (0 < delta < 1).
    #[schemars(range(min = 0.0, max = 1.0), extend("exclusiveMinimum" = true, "exclusiveMaximum" = true))]
    pub delta: f64,
    /// Epsilon one training run spends (> 0, at most totalEpsilon).
    #[schemars(range(min = 0.0, max = 1000.0), extend("exclusiveMinimum" = true))]
    pub epsilon_per_run: f64,
    /// Delta one training run spends, split evenly among its private models (0 < deltaPerRun
    /// <= delta). Default: the same share of `delta` as `epsilonPerRun` is of `totalEpsilon`,
    /// so both run out after the same number of runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0), extend("exclusiveMinimum" = true))]
    pub delta_per_run: Option<f64>,
}

impl PrivacySpec {
    /// The delta one run spends: `deltaPerRun`, else `delta * epsilonPerRun / totalEpsilon`.
    pub fn delta_per_run(&self) -> f64 {
        self.delta_per_run.unwrap_or(self.delta * self.epsilon_per_run / self.total_epsilon)
    }
}

/// Observed state, written by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsPipelineStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: Ready, TopicsReady, BackendsReady, WorkloadsReady, PrivacyBudgetExhausted, ...
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Ready replicas per Deployment/StatefulSet.
    #[serde(default)]
    pub workloads: Vec<WorkloadStatus>,
    /// The topics as found on the broker.
    #[serde(default)]
    pub topics: Vec<TopicStatus>,
    /// Latest version of each model in the registry.
    #[serde(default)]
    pub models: Vec<ModelStatus>,
    /// The privacy ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_budget: Option<BudgetStatus>,
}

/// A condition in the Kubernetes convention.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason in CamelCase.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Ready replicas of one workload.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// Object name.
    pub name: String,
    /// `Deployment` or `StatefulSet`.
    pub kind: String,
    /// Desired replicas.
    pub replicas: i32,
    /// Ready replicas.
    pub ready_replicas: i32,
}

/// A topic as found on the broker.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    /// Role (`raw`, `valid`, `suspicious`, `deadLetter`).
    pub role: String,
    /// Topic name.
    pub name: String,
    /// Partitions on the broker.
    pub partitions: i32,
}

/// Latest registered version of one model.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: i64,
    /// ROC AUC on the held-out set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roc_auc: Option<f64>,
    /// Epsilon the training spent (absent when not differentially private).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// When it was trained (RFC 3339).
    pub trained_at: String,
}

/// The privacy ledger of the pipeline.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    /// Total epsilon.
    pub total_epsilon: f64,
    /// Epsilon spent so far.
    pub spent_epsilon: f64,
    /// Epsilon left.
    pub remaining_epsilon: f64,
    /// Total delta.
    pub delta: f64,
    /// Delta spent so far.
    #[serde(default)]
    pub spent_delta: f64,
    /// Delta left.
    #[serde(default)]
    pub remaining_delta: f64,
}

impl AnalyticsPipeline {
    /// The pipeline name (empty if unset, which the API server never allows).
    pub fn name_or_empty(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// Namespace + name: what every per-pipeline name is derived from.
    pub fn id(&self) -> shopstream_contract::PipelineId {
        shopstream_contract::PipelineId::new(
            self.metadata.namespace.as_deref().unwrap_or(""),
            self.name_or_empty(),
        )
    }

    /// The MongoDB database: as given, or derived from namespace + name.
    pub fn database(&self) -> String {
        self.spec.mongodb.database.clone().unwrap_or_else(|| self.id().default_database())
    }
}

/// The CustomResourceDefinition as shipped (`crds/analyticspipeline.yaml`; a test keeps it equal
/// to the types above).
pub const CRD_YAML: &str = include_str!("../../crds/analyticspipeline.yaml");

/// Why the shipped CRD could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyCrdError {
    /// The shipped YAML is not a CustomResourceDefinition.
    #[error("crds/analyticspipeline.yaml: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// The API server refused it.
    #[error("apply the CRD: {0}")]
    Kube(#[from] kube::Error),
}

/// Applies the shipped CRD with server-side apply (forced) under the field manager `manager`.
pub async fn apply_crd(
    client: &kube::Client,
    manager: &str,
) -> Result<
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    ApplyCrdError,
> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, Patch, PatchParams};
    let crd: CustomResourceDefinition = serde_norway::from_str(CRD_YAML)?;
    let name = crd.metadata.name.clone().unwrap_or_default();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    Ok(api.patch(&name, &PatchParams::apply(manager).force(), &Patch::Apply(&crd)).await?)
}
