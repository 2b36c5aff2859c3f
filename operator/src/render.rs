//! The pure renderer: `AnalyticsPipeline` -> the Kubernetes objects it owns.
//!
//! No I/O happens here; [`render`] is a function of the resource and of [`RenderInputs`] (facts
//! the reconciler learnt elsewhere, such as an exhausted privacy budget), so every wiring rule
//! is unit-tested.
//!
//! Workload contract (environment of every container running the `shopstream` image):
//! `SHOPSTREAM_KAFKA`, `SHOPSTREAM_TOPIC_{RAW,VALID,SUSPICIOUS,DEAD_LETTER}`,
//! `SHOPSTREAM_REDIS_URL`, `SHOPSTREAM_MONGO_URL`, `SHOPSTREAM_MONGO_DB`, `SHOPSTREAM_ES_URL`,
//! `SHOPSTREAM_KIBANA_URL` (when configured), `SHOPSTREAM_PSEUDONYM_KEY` (from the Secret),
//! `SHOPSTREAM_<BACKEND>_USERNAME`/`_PASSWORD` (from credential Secrets),
//! `SHOPSTREAM_PIPELINE` (the resource name) and `SHOPSTREAM_PIPELINE_CONFIG` (the mounted
//! ConfigMap's `pipeline.json`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec,
    ResourceRequirements, SecretKeySelector, Service, ServiceAccount, ServicePort, ServiceSpec,
    Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::core::{ApiResource, DynamicObject};
use serde::Serialize;
use serde_json::json;

use crate::crd::{
    AnalyticsPipeline, BackendSpec, CpuMemory, ManagedBackend, ResourcesSpec, SecretRef,
};

/// Label with the pipeline name, on every child.
pub const PIPELINE_LABEL: &str = "shopstream.io/pipeline";
/// Label with the component name (gate, processor, ...).
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// Annotation holding a hash of the pipeline configuration (rolls Deployments on change).
pub const CONFIG_HASH_ANNOTATION: &str = "shopstream.io/config-hash";
/// Key of the pipeline configuration in the ConfigMap.
pub const CONFIG_KEY: &str = "pipeline.json";
/// Where the ConfigMap is mounted in every container.
pub const CONFIG_DIR: &str = "/etc/shopstream";
/// Port of every workload's Prometheus endpoint.
pub const METRICS_PORT: i32 = 9100;

/// Facts from outside the resource that change what is rendered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenderInputs {
    /// Suspend the training CronJob (the privacy budget cannot pay for another run).
    pub suspend_training: bool,
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
    /// The ConfigMap.
    pub fn config(&self) -> String {
        self.child("config")
    }
    /// ServiceAccount, Role and RoleBinding of the workloads.
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

/// A streaming workload: component name and `shopstream` subcommand.
pub const STREAMING: [(&str, &str); 4] =
    [("generator", "generate"), ("gate", "gate"), ("processor", "process"), ("sink", "sink")];

/// The backends: component name, port, URL scheme, default image, data path.
struct BackendKind {
    component: &'static str,
    env_prefix: &'static str,
    port: i32,
    default_image: &'static str,
    data_path: &'static str,
}

const REDIS: BackendKind = BackendKind {
    component: "redis",
    env_prefix: "REDIS",
    port: 6379,
    default_image: "redis/redis-stack-server:7.4.0-v3",
    data_path: "/data",
};
const MONGODB: BackendKind = BackendKind {
    component: "mongodb",
    env_prefix: "MONGO",
    port: 27017,
    default_image: "mongo:8.0",
    data_path: "/data/db",
};
const ELASTICSEARCH: BackendKind = BackendKind {
    component: "elasticsearch",
    env_prefix: "ES",
    port: 9200,
    default_image: "docker.elastic.co/elasticsearch/elasticsearch:8.15.3",
    data_path: "/usr/share/elasticsearch/data",
};
const KIBANA: BackendKind = BackendKind {
    component: "kibana",
    env_prefix: "KIBANA",
    port: 5601,
    default_image: "docker.elastic.co/kibana/kibana:8.15.3",
    data_path: "/usr/share/kibana/data",
};

/// The URL a workload uses for a backend (the Service DNS name for managed ones).
fn backend_url(kind: &BackendKind, spec: &BackendSpec, names: &Names, ns: &str) -> String {
    match spec {
        BackendSpec::External(e) => e.url.clone(),
        BackendSpec::Managed(_) => {
            let host = format!("{}.{}.svc", names.child(kind.component), ns);
            match kind.component {
                "redis" => format!("redis://{host}:{}", kind.port),
                "mongodb" => format!("mongodb://{host}:{}/?directConnection=true", kind.port),
                _ => format!("http://{host}:{}", kind.port),
            }
        }
    }
}

/// The MongoDB URL the operator itself uses to read the registry (the spec's URL).
pub fn mongo_url(p: &AnalyticsPipeline) -> Option<String> {
    let ns = p.metadata.namespace.as_deref()?;
    Some(backend_url(&MONGODB, &p.spec.mongodb.backend, &Names::new(p.name_or_empty()), ns))
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

fn env_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_string(),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn credential_env(prefix: &str, secret: &SecretRef) -> [EnvVar; 2] {
    [
        env_secret(&format!("SHOPSTREAM_{prefix}_USERNAME"), &secret.name, "username"),
        env_secret(&format!("SHOPSTREAM_{prefix}_PASSWORD"), &secret.name, "password"),
    ]
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

/// FNV-1a 64: a stable hash of the configuration for the roll-out annotation.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Everything the renderer needs, resolved once.
struct Ctx<'a> {
    p: &'a AnalyticsPipeline,
    name: String,
    ns: String,
    names: Names,
    owner: OwnerReference,
    config_hash: String,
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

    /// Environment shared by every `shopstream` container.
    fn common_env(&self) -> Vec<EnvVar> {
        let s = &self.p.spec;
        let t = &s.kafka.topics;
        let mut v = vec![
            env("SHOPSTREAM_PIPELINE", self.name.clone()),
            env("SHOPSTREAM_PIPELINE_CONFIG", format!("{CONFIG_DIR}/{CONFIG_KEY}")),
            env("SHOPSTREAM_KAFKA", s.kafka.bootstrap_servers.clone()),
            env("SHOPSTREAM_TOPIC_RAW", t.raw.name.clone()),
            env("SHOPSTREAM_TOPIC_VALID", t.valid.name.clone()),
            env("SHOPSTREAM_TOPIC_SUSPICIOUS", t.suspicious.name.clone()),
            env("SHOPSTREAM_TOPIC_DEAD_LETTER", t.dead_letter.name.clone()),
            env("SHOPSTREAM_REDIS_URL", backend_url(&REDIS, &s.redis, &self.names, &self.ns)),
            env(
                "SHOPSTREAM_MONGO_URL",
                backend_url(&MONGODB, &s.mongodb.backend, &self.names, &self.ns),
            ),
            env("SHOPSTREAM_MONGO_DB", s.mongodb.database.clone()),
            env(
                "SHOPSTREAM_ES_URL",
                backend_url(&ELASTICSEARCH, &s.elasticsearch, &self.names, &self.ns),
            ),
        ];
        if let Some(k) = &s.kibana {
            v.push(env("SHOPSTREAM_KIBANA_URL", backend_url(&KIBANA, k, &self.names, &self.ns)));
        }
        if let Some(c) = &s.kafka.credentials_secret {
            v.extend(credential_env("KAFKA", c));
        }
        for (kind, spec) in self.backends() {
            if let BackendSpec::External(e) = spec
                && let Some(c) = &e.credentials_secret
            {
                v.extend(credential_env(kind.env_prefix, c));
            }
        }
        v.push(env_secret(
            "SHOPSTREAM_PSEUDONYM_KEY",
            &s.pseudonymisation.key_secret.name,
            &s.pseudonymisation.key_secret.key,
        ));
        v.push(env("RUST_LOG", "info"));
        v
    }

    fn backends(&self) -> Vec<(&'static BackendKind, &BackendSpec)> {
        let s = &self.p.spec;
        let mut v: Vec<(&'static BackendKind, &BackendSpec)> = vec![
            (&REDIS, &s.redis),
            (&MONGODB, &s.mongodb.backend),
            (&ELASTICSEARCH, &s.elasticsearch),
        ];
        if let Some(k) = &s.kibana {
            v.push((&KIBANA, k));
        }
        v
    }

    fn container(
        &self,
        component: &str,
        args: Vec<String>,
        extra_env: Vec<EnvVar>,
        res: Option<&ResourcesSpec>,
        metrics: bool,
    ) -> Container {
        let mut env = self.common_env();
        env.extend(extra_env);
        Container {
            name: component.to_string(),
            image: Some(self.p.spec.workloads.image.clone()),
            image_pull_policy: self
                .p
                .spec
                .workloads
                .image_pull_policy
                .map(|p| p.as_str().to_string()),
            args: Some(args),
            env: Some(env),
            ports: metrics.then(|| {
                vec![ContainerPort {
                    name: Some("metrics".into()),
                    container_port: METRICS_PORT,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]
            }),
            resources: resources(res),
            volume_mounts: Some(vec![VolumeMount {
                name: "config".into(),
                mount_path: CONFIG_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn pod_spec(&self, containers: Vec<Container>, restart: Option<&str>) -> PodSpec {
        PodSpec {
            service_account_name: Some(self.names.service_account()),
            containers,
            restart_policy: restart.map(str::to_string),
            volumes: Some(vec![Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: self.names.config(),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn pod_meta(&self, component: &str) -> ObjectMeta {
        ObjectMeta {
            labels: Some(labels(&self.name, component)),
            annotations: Some(BTreeMap::from([(
                CONFIG_HASH_ANNOTATION.to_string(),
                self.config_hash.clone(),
            )])),
            ..Default::default()
        }
    }
}

/// The pipeline configuration written into the ConfigMap (no secret values, only references).
pub fn pipeline_config(p: &AnalyticsPipeline) -> serde_json::Value {
    let s = &p.spec;
    let names = Names::new(p.name_or_empty());
    let ns = p.metadata.namespace.as_deref().unwrap_or("");
    let topics: serde_json::Map<String, serde_json::Value> =
        s.kafka.topics.all().iter().map(|(role, t)| ((*role).to_string(), json!(t))).collect();
    json!({
        "pipeline": p.name_or_empty(),
        "kafka": { "bootstrapServers": s.kafka.bootstrap_servers, "topics": topics },
        "redis": { "url": backend_url(&REDIS, &s.redis, &names, ns) },
        "mongodb": {
            "url": backend_url(&MONGODB, &s.mongodb.backend, &names, ns),
            "database": s.mongodb.database,
        },
        "elasticsearch": { "url": backend_url(&ELASTICSEARCH, &s.elasticsearch, &names, ns) },
        "kibana": s.kibana.as_ref().map(|k| json!({ "url": backend_url(&KIBANA, k, &names, ns) })),
        "gate": { "rules": s.workloads.gate.rules },
        "generator": s.workloads.generator.as_ref().map(|g| json!({ "rate": g.rate, "seed": g.seed })),
        "similarity": { "schedule": s.offline.similarity.schedule, "threshold": s.offline.similarity.threshold },
        "training": {
            "schedule": s.offline.training.schedule,
            "models": s.offline.training.models,
            "privacy": s.offline.training.privacy,
        },
    })
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

/// Renders every object the pipeline owns, in apply order (config and RBAC first).
pub fn render(p: &AnalyticsPipeline, inputs: &RenderInputs) -> Result<Vec<Desired>, RenderError> {
    let name = p.metadata.name.clone().ok_or(RenderError::MissingMetadata("name"))?;
    let ns = p.metadata.namespace.clone().ok_or(RenderError::MissingMetadata("namespace"))?;
    let owner = p.controller_owner_ref(&()).ok_or(RenderError::MissingMetadata("uid"))?;
    let config = pipeline_config(p);
    let config_text = serde_json::to_string_pretty(&config)
        .map_err(|source| RenderError::Convert { kind: "ConfigMap", source })?;
    let ctx = Ctx {
        p,
        names: Names::new(&name),
        config_hash: format!("{:016x}", fnv1a(config_text.as_bytes())),
        name,
        ns,
        owner,
    };
    let mut out = Vec::new();

    // Configuration.
    out.push(to_dynamic(
        "ConfigMap",
        &ConfigMap {
            metadata: ctx.meta(ctx.names.config(), "config"),
            data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), config_text)])),
            ..Default::default()
        },
    )?);

    // RBAC of the workloads: read their own ConfigMap, publish events.
    let sa = ctx.names.service_account();
    out.push(to_dynamic(
        "ServiceAccount",
        &ServiceAccount { metadata: ctx.meta(sa.clone(), "rbac"), ..Default::default() },
    )?);
    out.push(to_dynamic(
        "Role",
        &Role {
            metadata: ctx.meta(sa.clone(), "rbac"),
            rules: Some(vec![
                PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["configmaps".into()]),
                    resource_names: Some(vec![ctx.names.config()]),
                    verbs: vec!["get".into(), "watch".into(), "list".into()],
                    ..Default::default()
                },
                PolicyRule {
                    api_groups: Some(vec!["events.k8s.io".into()]),
                    resources: Some(vec!["events".into()]),
                    verbs: vec!["create".into(), "patch".into()],
                    ..Default::default()
                },
            ]),
        },
    )?);
    out.push(to_dynamic(
        "RoleBinding",
        &RoleBinding {
            metadata: ctx.meta(sa.clone(), "rbac"),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: sa.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: sa.clone(),
                namespace: Some(ctx.ns.clone()),
                ..Default::default()
            }]),
        },
    )?);

    // Managed backends.
    for (kind, spec) in ctx.backends() {
        if let BackendSpec::Managed(m) = spec {
            out.extend(render_managed(&ctx, kind, m)?);
        }
    }

    // Streaming workloads.
    let w = &p.spec.workloads;
    for (component, subcommand) in STREAMING {
        let (workload, args, extra) = match component {
            "generator" => {
                let Some(g) = &w.generator else { continue };
                let mut args = vec![
                    subcommand.to_string(),
                    "--kafka-topic".to_string(),
                    p.spec.kafka.topics.raw.name.clone(),
                ];
                if let Some(rate) = g.rate {
                    args.extend(["--rate".to_string(), rate.to_string()]);
                }
                if let Some(seed) = g.seed {
                    args.extend(["--seed".to_string(), seed.to_string()]);
                }
                (&g.workload, args, vec![])
            }
            "gate" => {
                let r = &w.gate.rules;
                let extra = vec![
                    env("SHOPSTREAM_GATE_BLOOM_CAPACITY", r.bloom_capacity.to_string()),
                    env("SHOPSTREAM_GATE_BLOOM_ERROR_RATE", r.bloom_error_rate.to_string()),
                    env("SHOPSTREAM_GATE_VERDICT_TTL_SECS", r.verdict_ttl_seconds.to_string()),
                    env("SHOPSTREAM_GATE_FLAG_UNKNOWN_DEVICE", r.flag_unknown_device.to_string()),
                    env(
                        "SHOPSTREAM_GATE_FLAG_UNKNOWN_REFERRER",
                        r.flag_unknown_referrer.to_string(),
                    ),
                    env("SHOPSTREAM_GATE_METRICS_ADDR", format!("0.0.0.0:{METRICS_PORT}")),
                ];
                (&w.gate.workload, vec![subcommand.to_string()], extra)
            }
            // Each workload reads its own metrics-address variable; the Service scrapes
            // METRICS_PORT, so every one is told to listen there.
            "processor" => (
                &w.processor,
                vec![subcommand.to_string()],
                vec![env("SHOPSTREAM_PROCESSOR_METRICS_ADDR", format!("0.0.0.0:{METRICS_PORT}"))],
            ),
            _ => (
                &w.sink,
                vec![subcommand.to_string()],
                vec![env("SHOPSTREAM_SINK_METRICS_ADDR", format!("0.0.0.0:{METRICS_PORT}"))],
            ),
        };
        let mut extra = extra;
        extra.push(env("SHOPSTREAM_METRICS_ADDR", format!("0.0.0.0:{METRICS_PORT}")));
        let dep_name = ctx.names.child(component);
        let container = ctx.container(component, args, extra, workload.resources.as_ref(), true);
        out.push(to_dynamic(
            "Deployment",
            &Deployment {
                metadata: ctx.meta(dep_name.clone(), component),
                spec: Some(DeploymentSpec {
                    replicas: Some(workload.replicas),
                    selector: LabelSelector {
                        match_labels: Some(selector(&ctx.name, component)),
                        ..Default::default()
                    },
                    template: PodTemplateSpec {
                        metadata: Some(ctx.pod_meta(component)),
                        spec: Some(ctx.pod_spec(vec![container], None)),
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

    // Offline CronJobs.
    let sim = &p.spec.offline.similarity;
    out.push(to_dynamic(
        "CronJob",
        &cronjob(
            &ctx,
            ctx.names.similarity(),
            "similarity",
            &sim.schedule,
            false,
            ctx.container(
                "similarity",
                vec!["similarity".into()],
                vec![env("SHOPSTREAM_SIMILARITY_THRESHOLD", sim.threshold.to_string())],
                sim.resources.as_ref(),
                false,
            ),
        ),
    )?);
    let tr = &p.spec.offline.training;
    let models: Vec<&str> = tr.models.iter().map(|m| m.as_str()).collect();
    out.push(to_dynamic(
        "CronJob",
        &cronjob(
            &ctx,
            ctx.names.training(),
            "train",
            &tr.schedule,
            inputs.suspend_training,
            ctx.container(
                "train",
                vec!["train".into()],
                vec![
                    env("SHOPSTREAM_TRAIN_MODELS", models.join(",")),
                    env("SHOPSTREAM_PRIVACY_TOTAL_EPSILON", tr.privacy.total_epsilon.to_string()),
                    env("SHOPSTREAM_PRIVACY_DELTA", tr.privacy.delta.to_string()),
                    env(
                        "SHOPSTREAM_PRIVACY_EPSILON_PER_RUN",
                        tr.privacy.epsilon_per_run.to_string(),
                    ),
                ],
                tr.resources.as_ref(),
                false,
            ),
        ),
    )?);
    Ok(out)
}

fn cronjob(
    ctx: &Ctx<'_>,
    name: String,
    component: &str,
    schedule: &str,
    suspend: bool,
    container: Container,
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
                        spec: Some(ctx.pod_spec(vec![container], Some("OnFailure"))),
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
    kind: &BackendKind,
    m: &ManagedBackend,
) -> Result<Vec<Desired>, RenderError> {
    let name = ctx.names.child(kind.component);
    let mut env_vars = Vec::new();
    match kind.component {
        "elasticsearch" => {
            env_vars.push(env("discovery.type", "single-node"));
            env_vars.push(env("xpack.security.enabled", "false"));
            env_vars.push(env("ES_JAVA_OPTS", "-Xms512m -Xmx512m"));
        }
        "kibana" => {
            env_vars.push(env(
                "ELASTICSEARCH_HOSTS",
                backend_url(&ELASTICSEARCH, &ctx.p.spec.elasticsearch, &ctx.names, &ctx.ns),
            ));
        }
        _ => {}
    }
    let container = Container {
        name: kind.component.to_string(),
        image: Some(m.image.clone().unwrap_or_else(|| kind.default_image.to_string())),
        ports: Some(vec![ContainerPort {
            name: Some(kind.component.chars().take(15).collect()),
            container_port: kind.port,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        env: (!env_vars.is_empty()).then_some(env_vars),
        resources: resources(m.resources.as_ref()),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: kind.data_path.into(),
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
        metadata: ctx.meta(name.clone(), kind.component),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name.clone()),
            selector: LabelSelector {
                match_labels: Some(selector(&ctx.name, kind.component)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&ctx.name, kind.component)),
                    ..Default::default()
                }),
                spec: Some(PodSpec { containers: vec![container], volumes, ..Default::default() }),
            },
            volume_claim_templates: claims,
            ..Default::default()
        }),
        ..Default::default()
    };
    let svc = Service {
        metadata: ctx.meta(name, kind.component),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(selector(&ctx.name, kind.component)),
            ports: Some(vec![ServicePort {
                name: Some(kind.component.chars().take(15).collect()),
                port: kind.port,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(kind.port)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(vec![to_dynamic("Service", &svc)?, to_dynamic("StatefulSet", &sts)?])
}
