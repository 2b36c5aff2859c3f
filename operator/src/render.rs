//! The pure renderer: `AnalyticsPipeline` -> the Kubernetes objects it owns.
//!
//! No I/O happens here; [`render`] is a function of the resource and of [`RenderInputs`] (facts
//! the reconciler learnt elsewhere, such as an exhausted privacy budget or the CronJob API the
//! server serves), so every wiring rule is unit-tested.
//!
//! What each workload container is told comes from the contract crate: [`workload_configs`]
//! builds one typed [`WorkloadConfig`] per workload from the resource, and its `args()` and
//! `env()` become the container's arguments and environment. Names that must differ between
//! pipelines (consumer groups, Redis prefix, index prefixes, database) are derived from the
//! pipeline's namespace + name ([`PipelineId`]).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements, SecretProjection,
    Service, ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeProjection,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::core::{ApiResource, DynamicObject};
use serde::Serialize;
use shopstream_contract::{
    self as contract, BackendAuth, Common, Credentials, EnvValue, GateRules, KafkaConfig,
    KafkaProtocol, PipelineId, SecretFile, SecretKey, TlsConfig, TrainPrivacy, Workload,
    WorkloadConfig,
};

use crate::crd::{
    AnalyticsPipeline, BackendSpec, CpuMemory, KafkaSpec, ManagedBackend, ResourcesSpec, TlsSpec,
};

/// Label with the pipeline name, on every child.
pub const PIPELINE_LABEL: &str = "shopstream.io/pipeline";
/// Label with the component name (gate, processor, ...).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Port of every workload's Prometheus endpoint.
pub const METRICS_PORT: i32 = contract::METRICS_PORT as i32;
/// The user and group the `shopstream` image runs as (`USER 65532:65532` in the Containerfile);
/// also the pods' `fsGroup`, so the mounted Secret files (mode 0440, group `fsGroup`) are
/// readable by the workload and by nobody else.
pub const WORKLOAD_UID: i64 = 65532;
/// Name of the projected volume holding a container's Secret files.
pub const SECRETS_VOLUME: &str = "shopstream-secrets";
/// Mode of the Secret files: owner (root) and the pod's `fsGroup` read, nobody else.
pub const SECRET_FILE_MODE: i32 = 0o440;

/// Facts from outside the resource that change what is rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderInputs {
    /// Suspend the training CronJob (the privacy budget cannot pay for another run).
    pub suspend_training: bool,
    /// The CronJob API version the server serves (`batch/v1`, or `batch/v1beta1` on
    /// Kubernetes 1.20); `None` when it serves none (no CronJobs are rendered).
    pub cronjob_api: Option<CronJobApi>,
    /// `resourceVersion` of each Secret the spec names, as the operator read them. A
    /// Deployment's pod template carries a digest of its own Secrets' versions
    /// ([`SECRET_VERSIONS_ANNOTATION`]), so rotating a Secret rolls exactly the workloads that
    /// read it (they read their files at start-up). CronJobs read theirs at each run.
    pub secret_versions: BTreeMap<String, String>,
}

impl Default for RenderInputs {
    /// Training runs, CronJobs in `batch/v1`, no Secret versions known.
    fn default() -> Self {
        RenderInputs {
            suspend_training: false,
            cronjob_api: Some(CronJobApi::V1),
            secret_versions: BTreeMap::new(),
        }
    }
}

/// Pod-template annotation of a Deployment: a digest of the `resourceVersion`s of the Secrets
/// its container mounts.
pub const SECRET_VERSIONS_ANNOTATION: &str = "shopstream.io/secret-versions";

/// The API version CronJobs are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CronJobApi {
    /// `batch/v1` (Kubernetes >= 1.21).
    #[default]
    V1,
    /// `batch/v1beta1` (Kubernetes 1.8 - 1.24; the same fields as far as we use them).
    V1Beta1,
}

impl CronJobApi {
    /// `group/version`.
    pub fn api_version(self) -> &'static str {
        match self {
            CronJobApi::V1 => "batch/v1",
            CronJobApi::V1Beta1 => "batch/v1beta1",
        }
    }

    /// The API resource of CronJobs in this version.
    pub fn resource(self) -> ApiResource {
        let mut ar = ApiResource::erase::<CronJob>(&());
        if self == CronJobApi::V1Beta1 {
            ar.version = "v1beta1".into();
            ar.api_version = self.api_version().into();
        }
        ar
    }
}

/// One object to apply: its API coordinates and its content.
#[derive(Debug, Clone)]
pub struct Desired {
    /// Group/version/kind/plural of the object.
    pub resource: ApiResource,
    /// The object, with `apiVersion`/`kind`, name, namespace, labels and owner reference set.
    pub object: DynamicObject,
}

impl Desired {
    /// `Kind/name` for logs and events.
    pub fn key(&self) -> String {
        format!("{}/{}", self.resource.kind, self.object.metadata.name.as_deref().unwrap_or(""))
    }
}

/// Why rendering failed (only for resources the API server would never have accepted).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The resource has no name, namespace or uid yet.
    #[error("the AnalyticsPipeline lacks metadata.{0}")]
    MissingMetadata(&'static str),
    /// A typed object did not convert to a dynamic one.
    #[error("cannot convert {kind} to a dynamic object: {source}")]
    Convert {
        /// Kind being converted.
        kind: &'static str,
        /// Serde error.
        source: serde_json::Error,
    },
}

/// Names of the children of a pipeline.
#[derive(Debug, Clone)]
pub struct Names {
    pipeline: String,
}

impl Names {
    /// Names for the pipeline called `pipeline`.
    pub fn new(pipeline: &str) -> Self {
        Names { pipeline: pipeline.to_string() }
    }
    /// `<pipeline>-<suffix>`.
    pub fn child(&self, suffix: &str) -> String {
        format!("{}-{}", self.pipeline, suffix)
    }
    /// ServiceAccount of the workloads.
    pub fn service_account(&self) -> String {
        self.child("workload")
    }
    /// The similarity CronJob.
    pub fn similarity(&self) -> String {
        self.child("similarity")
    }
    /// The training CronJob.
    pub fn training(&self) -> String {
        self.child("train")
    }
}

/// A backend the operator can run itself (`managed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Redis,
    Mongodb,
    Elasticsearch,
    Kibana,
}

impl Backend {
    /// The component label and the name suffix of its children.
    fn component(self) -> &'static str {
        match self {
            Backend::Redis => "redis",
            Backend::Mongodb => "mongodb",
            Backend::Elasticsearch => "elasticsearch",
            Backend::Kibana => "kibana",
        }
    }

    fn port(self) -> i32 {
        match self {
            Backend::Redis => 6379,
            Backend::Mongodb => 27017,
            Backend::Elasticsearch => 9200,
            Backend::Kibana => 5601,
        }
    }

    fn default_image(self) -> &'static str {
        match self {
            Backend::Redis => "redis/redis-stack-server:7.4.0-v3",
            Backend::Mongodb => "mongo:8.0",
            Backend::Elasticsearch => "docker.elastic.co/elasticsearch/elasticsearch:8.15.3",
            Backend::Kibana => "docker.elastic.co/kibana/kibana:8.15.3",
        }
    }

    fn data_path(self) -> &'static str {
        match self {
            Backend::Redis => "/data",
            Backend::Mongodb => "/data/db",
            Backend::Elasticsearch => "/usr/share/elasticsearch/data",
            Backend::Kibana => "/usr/share/kibana/data",
        }
    }
}

/// The URL a workload uses for a backend (the Service DNS name for managed ones).
fn backend_url(kind: Backend, spec: &BackendSpec, names: &Names, ns: &str) -> String {
    match spec {
        BackendSpec::External(e) => e.url.clone(),
        BackendSpec::Managed(_) => {
            let host = format!("{}.{}.svc", names.child(kind.component()), ns);
            let port = kind.port();
            match kind {
                Backend::Redis => format!("redis://{host}:{port}"),
                Backend::Mongodb => format!("mongodb://{host}:{port}/?directConnection=true"),
                Backend::Elasticsearch | Backend::Kibana => format!("http://{host}:{port}"),
            }
        }
    }
}

/// The MongoDB URL the operator itself uses to read the registry (the spec's URL).
pub fn mongo_url(p: &AnalyticsPipeline) -> Option<String> {
    let ns = p.metadata.namespace.as_deref()?;
    Some(backend_url(Backend::Mongodb, &p.spec.mongodb.backend, &Names::new(p.name_or_empty()), ns))
}

fn labels(pipeline: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "shopstream".to_string()),
        ("app.kubernetes.io/instance".to_string(), pipeline.to_string()),
        (COMPONENT_LABEL.to_string(), component.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "shopstream-operator".to_string()),
        (PIPELINE_LABEL.to_string(), pipeline.to_string()),
    ])
}

fn selector(pipeline: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PIPELINE_LABEL.to_string(), pipeline.to_string()),
        (COMPONENT_LABEL.to_string(), component.to_string()),
    ])
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.to_string(), value: Some(value.into()), ..Default::default() }
}

/// An HTTP probe on the metrics port.
fn probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("metrics".into()),
            ..Default::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

/// A contract entry as a container variable (the contract names Secret files, never Secret
/// values).
fn env_var(e: contract::EnvEntry) -> Result<EnvVar, RenderError> {
    Ok(match e.value {
        EnvValue::Plain(v) => env(e.name, v),
        EnvValue::PodField(path) => EnvVar {
            name: e.name.to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector { field_path: path, api_version: None }),
                ..Default::default()
            }),
            ..Default::default()
        },
    })
}

/// The projected volume holding exactly `files` (one source per Secret, each key at its path
/// relative to [`contract::SECRETS_DIR`]), and its read-only mount; `None` without files.
pub fn secret_volume(files: &[SecretFile]) -> Option<(Volume, VolumeMount)> {
    if files.is_empty() {
        return None;
    }
    let mut sources: Vec<(String, Vec<KeyToPath>)> = Vec::new();
    for f in files {
        let rel = f
            .path
            .strip_prefix(contract::SECRETS_DIR)
            .map(|p| p.trim_start_matches('/'))
            .unwrap_or(&f.path)
            .to_string();
        let item = KeyToPath { key: f.key.clone(), path: rel, mode: None };
        match sources.iter_mut().find(|(name, _)| *name == f.secret) {
            Some((_, items)) => items.push(item),
            None => sources.push((f.secret.clone(), vec![item])),
        }
    }
    let volume = Volume {
        name: SECRETS_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(SECRET_FILE_MODE),
            sources: Some(
                sources
                    .into_iter()
                    .map(|(name, items)| VolumeProjection {
                        secret: Some(SecretProjection {
                            name,
                            items: Some(items),
                            optional: Some(false),
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }),
        ..Default::default()
    };
    let mount = VolumeMount {
        name: SECRETS_VOLUME.into(),
        mount_path: contract::SECRETS_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    };
    Some((volume, mount))
}

fn resources(r: Option<&ResourcesSpec>) -> Option<ResourceRequirements> {
    let r = r?;
    fn map(cm: Option<&CpuMemory>) -> Option<BTreeMap<String, Quantity>> {
        let cm = cm?;
        let mut m = BTreeMap::new();
        if let Some(c) = &cm.cpu {
            m.insert("cpu".to_string(), Quantity(c.clone()));
        }
        if let Some(mem) = &cm.memory {
            m.insert("memory".to_string(), Quantity(mem.clone()));
        }
        (!m.is_empty()).then_some(m)
    }
    Some(ResourceRequirements {
        requests: map(r.requests.as_ref()),
        limits: map(r.limits.as_ref()),
        ..Default::default()
    })
}

/// The typed configuration of every workload container of the pipeline, in render order
/// (the generator only when the resource asks for one).
pub fn workload_configs(p: &AnalyticsPipeline) -> Vec<WorkloadConfig> {
    let s = &p.spec;
    let names = Names::new(p.name_or_empty());
    let ns = p.metadata.namespace.as_deref().unwrap_or("");
    let t = &s.kafka.topics;
    let kafka = kafka_config(&s.kafka);
    let redis_auth = backend_auth(Backend::Redis, &s.redis);
    let mongo_auth = backend_auth(Backend::Mongodb, &s.mongodb.backend);
    let es_auth = backend_auth(Backend::Elasticsearch, &s.elasticsearch);
    let redis_url = backend_url(Backend::Redis, &s.redis, &names, ns);
    let mongo_url = backend_url(Backend::Mongodb, &s.mongodb.backend, &names, ns);
    let es_url = backend_url(Backend::Elasticsearch, &s.elasticsearch, &names, ns);
    let mongo_db = p.database();
    let mut out = Vec::new();
    if let Some(g) = &s.workloads.generator {
        out.push(WorkloadConfig::Generator(contract::GeneratorConfig {
            kafka: kafka.clone(),
            topic_raw: t.raw.name.clone(),
            rate: g.rate,
            seed: g.seed.and_then(|v| u64::try_from(v).ok()),
        }));
    }
    let r = &s.workloads.gate.rules;
    out.push(WorkloadConfig::Gate(contract::GateConfig {
        kafka: kafka.clone(),
        topic_raw: t.raw.name.clone(),
        topic_valid: t.valid.name.clone(),
        topic_suspicious: t.suspicious.name.clone(),
        topic_dead_letter: t.dead_letter.name.clone(),
        redis_url,
        redis_auth,
        rules: GateRules {
            flag_unknown_device: r.flag_unknown_device,
            flag_unknown_referrer: r.flag_unknown_referrer,
            bloom_capacity: u64::try_from(r.bloom_capacity).unwrap_or(0),
            bloom_error_rate: r.bloom_error_rate,
            verdict_ttl_seconds: u64::try_from(r.verdict_ttl_seconds).unwrap_or(0),
        },
    }));
    out.push(WorkloadConfig::Processor(contract::ProcessorConfig {
        kafka: kafka.clone(),
        topic_valid: t.valid.name.clone(),
        topic_dead_letter: t.processor_dead_letter().name,
        es_url: es_url.clone(),
        es_auth: es_auth.clone(),
    }));
    let key = &s.pseudonymisation.key_secret;
    out.push(WorkloadConfig::Sink(contract::SinkConfig {
        kafka,
        topic_valid: t.valid.name.clone(),
        topic_dead_letter: t.dead_letter.name.clone(),
        mongo_url: mongo_url.clone(),
        mongo_db: mongo_db.clone(),
        mongo_auth: mongo_auth.clone(),
        pseudonym_key: SecretKey { name: key.name.clone(), key: key.key.clone() },
    }));
    out.push(WorkloadConfig::Similarity(contract::SimilarityConfig {
        mongo_url: mongo_url.clone(),
        mongo_db: mongo_db.clone(),
        mongo_auth: mongo_auth.clone(),
        es_url,
        es_auth,
        threshold: s.offline.similarity.threshold,
    }));
    let tr = &s.offline.training;
    out.push(WorkloadConfig::Train(contract::TrainConfig {
        mongo_url,
        mongo_db,
        mongo_auth,
        models: tr.models.iter().map(|m| m.as_str().to_string()).collect(),
        // The resource promises differentially private models: the CronJob never registers
        // the plain ones.
        privacy: TrainPrivacy::Private,
        total_epsilon: tr.privacy.total_epsilon,
        delta: tr.privacy.delta,
        epsilon_per_run: tr.privacy.epsilon_per_run,
        delta_per_run: tr.privacy.delta_per_run(),
    }));
    out
}

fn tls_config(t: &TlsSpec, client_cert: bool) -> TlsConfig {
    TlsConfig {
        ca: t.ca_secret.as_ref().map(|c| SecretKey { name: c.name.clone(), key: c.key.clone() }),
        client_cert: if client_cert {
            t.client_cert_secret.as_ref().map(|c| c.name.clone())
        } else {
            None
        },
        insecure_skip_verify: t.insecure_skip_verify,
    }
}

/// The Kafka connection every Kafka workload gets: credentials -> `sasl-ssl`, TLS alone ->
/// `ssl`, neither -> `plaintext`. Credentials never go without TLS: a spec with credentials and
/// no `tls` is refused by [`crate::validate`]; should one get here, it gets TLS with the
/// system's CAs rather than SASL in clear.
pub fn kafka_config(k: &KafkaSpec) -> KafkaConfig {
    let credentials = k.credentials_secret.as_ref().map(|c| Credentials { secret: c.name.clone() });
    let tls = match (&k.tls, &credentials) {
        (Some(t), _) => Some(tls_config(t, true)),
        (None, Some(_)) => Some(TlsConfig::default()),
        (None, None) => None,
    };
    let protocol = match (credentials.is_some(), tls.is_some()) {
        (true, _) => KafkaProtocol::SaslSsl,
        (false, true) => KafkaProtocol::Ssl,
        (false, false) => KafkaProtocol::Plaintext,
    };
    KafkaConfig {
        bootstrap_servers: k.bootstrap_servers.clone(),
        protocol,
        sasl_mechanism: credentials.is_some().then(|| k.sasl_mechanism.as_str().to_string()),
        credentials,
        tls,
    }
}

/// TLS and credentials of one backend for the workloads. Managed backends run without either.
/// Credentials and API keys are only passed on when the connection is encrypted (the spec
/// checks refuse anything else; this keeps a refused spec from ever sending them in clear).
fn backend_auth(kind: Backend, spec: &BackendSpec) -> BackendAuth {
    let BackendSpec::External(e) = spec else { return BackendAuth::default() };
    let scheme = e.url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
    let encrypted = match kind {
        Backend::Redis => scheme == "rediss",
        Backend::Mongodb => {
            e.tls.as_ref().is_some_and(|t| t.ca_secret.is_some() || t.insecure_skip_verify)
        }
        Backend::Elasticsearch | Backend::Kibana => scheme == "https",
    };
    let tls = match kind {
        // A TLS setting on a plain URL means nothing to the client: not rendered.
        Backend::Redis | Backend::Elasticsearch | Backend::Kibana if !encrypted => None,
        _ => e.tls.as_ref().map(|t| tls_config(t, false)),
    };
    BackendAuth {
        tls,
        credentials: e
            .credentials_secret
            .as_ref()
            .filter(|_| encrypted)
            .map(|c| Credentials { secret: c.name.clone() }),
        api_key: e
            .api_key_secret
            .as_ref()
            .filter(|_| encrypted && matches!(kind, Backend::Elasticsearch | Backend::Kibana))
            .map(|k| SecretKey { name: k.name.clone(), key: k.key.clone() }),
    }
}

/// Everything the renderer needs, resolved once.
struct Ctx<'a> {
    p: &'a AnalyticsPipeline,
    name: String,
    ns: String,
    names: Names,
    owner: OwnerReference,
    common: Common,
}

impl Ctx<'_> {
    fn meta(&self, name: String, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.ns.clone()),
            labels: Some(labels(&self.name, component)),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }

    fn backends(&self) -> Vec<(Backend, &BackendSpec)> {
        let s = &self.p.spec;
        let mut v: Vec<(Backend, &BackendSpec)> = vec![
            (Backend::Redis, &s.redis),
            (Backend::Mongodb, &s.mongodb.backend),
            (Backend::Elasticsearch, &s.elasticsearch),
        ];
        if let Some(k) = &s.kibana {
            v.push((Backend::Kibana, k));
        }
        v
    }

    /// The container of one workload: the contract's args and env, the image, resources, for
    /// streaming workloads the metrics port, and the projected volume of exactly the Secret
    /// files the contract says this container reads (mounted in this container only).
    fn container(
        &self,
        config: &WorkloadConfig,
        res: Option<&ResourcesSpec>,
    ) -> Result<(Container, Option<Volume>), RenderError> {
        let workload = config.workload();
        let env = config.env(&self.common).into_iter().map(env_var).collect::<Result<_, _>>()?;
        let (volume, mount) = secret_volume(&config.secret_files(&self.common)).unzip();
        let container = Container {
            name: workload.component().to_string(),
            image: Some(self.p.spec.workloads.image.clone()),
            image_pull_policy: self
                .p
                .spec
                .workloads
                .image_pull_policy
                .map(|p| p.as_str().to_string()),
            args: Some(config.args()),
            env: Some(env),
            volume_mounts: mount.map(|m| vec![m]),
            ports: workload.is_streaming().then(|| {
                vec![ContainerPort {
                    name: Some("metrics".into()),
                    container_port: METRICS_PORT,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]
            }),
            // `/readyz` answers 200 while the workload consumes (503 during a backend outage:
            // the pod leaves the Service and the pipeline's Ready condition says so);
            // `/healthz` while the process serves at all.
            readiness_probe: workload.is_streaming().then(|| probe("/readyz", 5, 3)),
            liveness_probe: workload.is_streaming().then(|| probe("/healthz", 10, 6)),
            resources: resources(res),
            ..Default::default()
        };
        Ok((container, volume))
    }

    /// No workload talks to the Kubernetes API, so none gets a token. The pod runs as the
    /// image's non-root user, whose group owns the mounted Secret files.
    fn pod_spec(
        &self,
        (container, volume): (Container, Option<Volume>),
        restart: Option<&str>,
    ) -> PodSpec {
        PodSpec {
            service_account_name: Some(self.names.service_account()),
            automount_service_account_token: Some(false),
            containers: vec![container],
            volumes: volume.map(|v| vec![v]),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(WORKLOAD_UID),
                run_as_group: Some(WORKLOAD_UID),
                fs_group: Some(WORKLOAD_UID),
                ..Default::default()
            }),
            restart_policy: restart.map(str::to_string),
            ..Default::default()
        }
    }

    fn pod_meta(&self, component: &str) -> ObjectMeta {
        ObjectMeta { labels: Some(labels(&self.name, component)), ..Default::default() }
    }
}

fn to_dynamic<K>(kind: &'static str, obj: &K) -> Result<Desired, RenderError>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let value =
        serde_json::to_value(obj).map_err(|source| RenderError::Convert { kind, source })?;
    let object: DynamicObject =
        serde_json::from_value(value).map_err(|source| RenderError::Convert { kind, source })?;
    Ok(Desired { resource: ApiResource::erase::<K>(&()), object })
}

/// Renders every object the pipeline owns, in apply order (ServiceAccount first).
pub fn render(p: &AnalyticsPipeline, inputs: &RenderInputs) -> Result<Vec<Desired>, RenderError> {
    let name = p.metadata.name.clone().ok_or(RenderError::MissingMetadata("name"))?;
    let ns = p.metadata.namespace.clone().ok_or(RenderError::MissingMetadata("namespace"))?;
    let owner = p.controller_owner_ref(&()).ok_or(RenderError::MissingMetadata("uid"))?;
    let ctx = Ctx {
        p,
        names: Names::new(&name),
        common: Common { pipeline: PipelineId::new(&ns, &name), log: "info".into() },
        name,
        ns,
        owner,
    };
    let mut out = Vec::new();

    // The workloads' identity. They call no Kubernetes API, so it holds no Role.
    out.push(to_dynamic(
        "ServiceAccount",
        &ServiceAccount {
            metadata: ctx.meta(ctx.names.service_account(), "rbac"),
            automount_service_account_token: Some(false),
            ..Default::default()
        },
    )?);

    // Managed backends.
    for (kind, spec) in ctx.backends() {
        if let BackendSpec::Managed(m) = spec {
            out.extend(render_managed(&ctx, kind, m)?);
        }
    }

    let w = &p.spec.workloads;
    let off = &p.spec.offline;
    for config in workload_configs(p) {
        let workload = config.workload();
        let component = workload.component();
        match workload {
            Workload::Similarity | Workload::Train => {
                let Some(api) = inputs.cronjob_api else { continue };
                let (name, schedule, suspend, res) = if workload == Workload::Similarity {
                    (
                        ctx.names.similarity(),
                        &off.similarity.schedule,
                        false,
                        &off.similarity.resources,
                    )
                } else {
                    (
                        ctx.names.training(),
                        &off.training.schedule,
                        inputs.suspend_training,
                        &off.training.resources,
                    )
                };
                let container = ctx.container(&config, res.as_ref())?;
                let mut d = to_dynamic(
                    "CronJob",
                    &cronjob(&ctx, name, component, schedule, suspend, container),
                )?;
                if api != CronJobApi::V1 {
                    d.resource = api.resource();
                    if let Some(t) = d.object.types.as_mut() {
                        t.api_version = api.api_version().to_string();
                    }
                }
                out.push(d);
            }
            Workload::Generator | Workload::Gate | Workload::Processor | Workload::Sink => {
                let workload_spec = match workload {
                    Workload::Generator => match &w.generator {
                        Some(g) => &g.workload,
                        None => continue,
                    },
                    Workload::Gate => &w.gate.workload,
                    Workload::Processor => &w.processor,
                    Workload::Sink => &w.sink,
                    Workload::Similarity | Workload::Train => continue,
                };
                let dep_name = ctx.names.child(component);
                let container = ctx.container(&config, workload_spec.resources.as_ref())?;
                let mut template_meta = ctx.pod_meta(component);
                let files = config.secret_files(&ctx.common);
                if !files.is_empty() {
                    let mut versions: Vec<String> = files
                        .iter()
                        .map(|f| {
                            let v =
                                inputs.secret_versions.get(&f.secret).map_or("?", String::as_str);
                            format!("{}@{v}", f.secret)
                        })
                        .collect();
                    versions.sort_unstable();
                    versions.dedup();
                    let digest = contract::fnv1a(versions.join(",").as_bytes());
                    template_meta.annotations = Some(BTreeMap::from([(
                        SECRET_VERSIONS_ANNOTATION.to_string(),
                        format!("{digest:016x}"),
                    )]));
                }
                out.push(to_dynamic(
                    "Deployment",
                    &Deployment {
                        metadata: ctx.meta(dep_name.clone(), component),
                        spec: Some(DeploymentSpec {
                            replicas: Some(workload_spec.replicas),
                            selector: LabelSelector {
                                match_labels: Some(selector(&ctx.name, component)),
                                ..Default::default()
                            },
                            template: PodTemplateSpec {
                                metadata: Some(template_meta),
                                spec: Some(ctx.pod_spec(container, None)),
                            },
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )?);
                out.push(to_dynamic(
                    "Service",
                    &Service {
                        metadata: ctx.meta(dep_name, component),
                        spec: Some(ServiceSpec {
                            selector: Some(selector(&ctx.name, component)),
                            ports: Some(vec![ServicePort {
                                name: Some("metrics".into()),
                                port: METRICS_PORT,
                                protocol: Some("TCP".into()),
                                target_port: Some(IntOrString::String("metrics".into())),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )?);
            }
        }
    }
    Ok(out)
}

fn cronjob(
    ctx: &Ctx<'_>,
    name: String,
    component: &str,
    schedule: &str,
    suspend: bool,
    container: (Container, Option<Volume>),
) -> CronJob {
    CronJob {
        metadata: ctx.meta(name, component),
        spec: Some(CronJobSpec {
            schedule: schedule.to_string(),
            suspend: Some(suspend),
            concurrency_policy: Some("Forbid".into()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&ctx.name, component)),
                    ..Default::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    template: PodTemplateSpec {
                        metadata: Some(ctx.pod_meta(component)),
                        spec: Some(ctx.pod_spec(container, Some("OnFailure"))),
                    },
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn render_managed(
    ctx: &Ctx<'_>,
    kind: Backend,
    m: &ManagedBackend,
) -> Result<Vec<Desired>, RenderError> {
    let name = ctx.names.child(kind.component());
    let mut env_vars = Vec::new();
    match kind {
        Backend::Elasticsearch => {
            env_vars.push(env("discovery.type", "single-node"));
            env_vars.push(env("xpack.security.enabled", "false"));
            env_vars.push(env("ES_JAVA_OPTS", "-Xms512m -Xmx512m"));
        }
        Backend::Kibana => {
            env_vars.push(env(
                "ELASTICSEARCH_HOSTS",
                backend_url(Backend::Elasticsearch, &ctx.p.spec.elasticsearch, &ctx.names, &ctx.ns),
            ));
        }
        Backend::Redis | Backend::Mongodb => {}
    }
    let container = Container {
        name: kind.component().to_string(),
        image: Some(m.image.clone().unwrap_or_else(|| kind.default_image().to_string())),
        ports: Some(vec![ContainerPort {
            name: Some(kind.component().chars().take(15).collect()),
            container_port: kind.port(),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: (!env_vars.is_empty()).then_some(env_vars),
        resources: resources(m.resources.as_ref()),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: kind.data_path().into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let (volumes, claims) = match &m.storage {
        Some(st) => (
            None,
            Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta { name: Some("data".into()), ..Default::default() },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: st.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            Quantity(st.size.clone()),
                        )])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
        ),
        None => (
            Some(vec![Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }]),
            None,
        ),
    };
    let sts = StatefulSet {
        metadata: ctx.meta(name.clone(), kind.component()),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name.clone()),
            selector: LabelSelector {
                match_labels: Some(selector(&ctx.name, kind.component())),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&ctx.name, kind.component())),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes,
                    automount_service_account_token: Some(false),
                    ..Default::default()
                }),
            },
            volume_claim_templates: claims,
            ..Default::default()
        }),
        ..Default::default()
    };
    let svc = Service {
        metadata: ctx.meta(name, kind.component()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(selector(&ctx.name, kind.component())),
            ports: Some(vec![ServicePort {
                name: Some(kind.component().chars().take(15).collect()),
                port: kind.port(),
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(kind.port())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(vec![to_dynamic("Service", &svc)?, to_dynamic("StatefulSet", &sts)?])
}
