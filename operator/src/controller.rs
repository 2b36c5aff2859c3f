//! The reconciler: validates, applies the rendered children with server-side apply, manages
//! Kafka topics, reads the model registry, and writes status, conditions and events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Secret, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{DynamicObject, PartialObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info, info_span, warn};

use crate::children::{self, AppliedChildren, ChildStores, Live};
use crate::conditions;
use crate::crd::{
    AnalyticsPipeline, AnalyticsPipelineStatus, BackendSpec, KafkaSpec, TopicSpec, WorkloadStatus,
};
use crate::kafka::{self, TopicAdmin, TopicError};
use crate::metrics::Metrics;
use crate::registry::{MongoConnection, RegistryReader};
use crate::render::{self, CronJobApi, Desired, RenderInputs};
use crate::secrets::SecretValues;
use crate::status::{self, Gathered, RegistryRead, TopicsOutcome};
use crate::validate::{self, Problem};
use shopstream_contract::Workload;

/// The one field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "shopstream-operator";
/// Finalizer guarding topic deletion.
pub const FINALIZER: &str = "shopstream.io/kafka-topics";

/// Errors of one reconcile (each leads to a per-object exponential backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was attempted.
        what: String,
        /// Cause.
        source: kube::Error,
    },
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] render::RenderError),
    /// Kafka topics could not be reconciled.
    #[error(transparent)]
    Topics(#[from] TopicError),
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// The resource has no namespace.
    #[error("the AnalyticsPipeline has no namespace")]
    NoNamespace,
    /// Deleting a pipeline's topics waits for its streaming workloads to stop: not a failure,
    /// the finalizer is retried after [`STOPPING_POLL`] without backoff.
    #[error("waiting for {0} streaming pod(s) to stop before deleting the topics")]
    WorkloadsStopping(usize),
}

impl Error {
    /// Label value for the errors metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::Render(_) => "render",
            Error::Topics(_) => "kafka",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.kind(),
                _ => "finalizer",
            },
            Error::NoNamespace => "metadata",
            Error::WorkloadsStopping(_) => "waiting",
        }
    }
}

impl Error {
    /// A deletion waiting for its pods: retried soon, neither counted nor backed off.
    fn is_waiting(&self) -> bool {
        match self {
            Error::WorkloadsStopping(_) => true,
            Error::Finalizer(e) => matches!(
                e.as_ref(),
                kube::runtime::finalizer::Error::CleanupFailed(inner) if inner.is_waiting()
            ),
            _ => false,
        }
    }
}

/// How often a deletion checks whether its streaming pods are gone.
pub const STOPPING_POLL: Duration = Duration::from_secs(2);

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

/// Default of [`Settings::requeue`], in seconds (also the command line's default).
pub const DEFAULT_REQUEUE_SECS: u64 = 60;
/// Default of [`Settings::concurrency`].
pub const DEFAULT_CONCURRENCY: u16 = 16;
/// Default of [`Settings::resync`], in seconds.
pub const DEFAULT_RESYNC_SECS: u64 = 600;

/// Tunables of the reconciler.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Requeue after a successful reconcile (refreshes registry and topic state).
    pub requeue: Duration,
    /// First backoff after an error.
    pub backoff_base: Duration,
    /// Largest backoff.
    pub backoff_max: Duration,
    /// Quiet period that coalesces bursts of watch events into one reconcile (0 = none).
    pub debounce: Duration,
    /// Reconciles running at once (0 = unbounded).
    pub concurrency: u16,
    /// Longest time an unchanged child goes without being applied again ([`crate::children`]).
    pub resync: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            requeue: Duration::from_secs(DEFAULT_REQUEUE_SECS),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            debounce: Duration::ZERO,
            concurrency: DEFAULT_CONCURRENCY,
            resync: Duration::from_secs(DEFAULT_RESYNC_SECS),
        }
    }
}

/// Shared state of the reconciler.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: Recorder,
    /// MongoDB clients.
    pub registry_reader: RegistryReader,
    /// Whether the server serves batch/v1 CronJob (false on Kubernetes < 1.21).
    pub cronjob_api: Option<CronJobApi>,
    /// Tunables.
    pub settings: Settings,
    failures: std::sync::Mutex<HashMap<String, u32>>,
    applied: AppliedChildren,
    stores: std::sync::RwLock<Option<ChildStores>>,
    admins: std::sync::Mutex<HashMap<String, (Arc<TopicAdmin>, Instant)>>,
}

/// How long an admin client nobody asked for is kept (a rotated Secret leaves its old one
/// unused).
const IDLE_ADMIN: Duration = Duration::from_secs(600);

impl Context {
    /// Builds the context; `identity` names this replica in events.
    pub async fn new(
        client: Client,
        metrics: Metrics,
        identity: &str,
        settings: Settings,
    ) -> Result<Self, Error> {
        let cronjob_api = cronjob_api(&client).await?;
        let recorder = Recorder::new(
            client.clone(),
            Reporter { controller: FIELD_MANAGER.into(), instance: Some(identity.to_string()) },
        );
        Ok(Context {
            client,
            metrics,
            recorder,
            registry_reader: RegistryReader::default(),
            cronjob_api,
            settings,
            failures: Default::default(),
            applied: Default::default(),
            stores: Default::default(),
            admins: Default::default(),
        })
    }

    /// A Kafka admin client per bootstrap list and security settings, reused across
    /// reconciles (and pipelines on the same cluster with the same Secrets). The cache is keyed
    /// by the names and `resourceVersion`s of the Secrets ([`kafka::admin_key`]), never by their
    /// values; the client gets the pipeline's TLS and SASL ([`kafka::admin_security`]).
    pub fn topic_admin(
        &self,
        spec: &KafkaSpec,
        secrets: &SecretValues,
    ) -> Result<Arc<TopicAdmin>, TopicError> {
        let key = kafka::admin_key(spec, secrets);
        let now = Instant::now();
        if let Ok(mut admins) = self.admins.lock()
            && let Some((a, used)) = admins.get_mut(&key)
        {
            *used = now;
            return Ok(Arc::clone(a));
        }
        let security = kafka::admin_security(spec, secrets)?;
        let admin = Arc::new(TopicAdmin::new(&spec.bootstrap_servers, &security)?);
        if let Ok(mut admins) = self.admins.lock() {
            admins.retain(|_, (_, used)| now.duration_since(*used) < IDLE_ADMIN);
            admins.insert(key, (Arc::clone(&admin), now));
        }
        Ok(admin)
    }

    /// The children's stores of the running controller (none before it runs).
    fn stores(&self) -> Option<ChildStores> {
        self.stores.read().ok()?.clone()
    }

    /// Backoff for the `n`-th consecutive failure (1-based): base * 2^(n-1), capped.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(20));
        self.settings.backoff_base.saturating_mul(factor).min(self.settings.backoff_max)
    }
}

/// The CronJob API the server serves: `batch/v1` (Kubernetes >= 1.21), else `batch/v1beta1`
/// (1.20-1.24), else none.
pub async fn cronjob_api(client: &Client) -> Result<Option<CronJobApi>, Error> {
    for api in [CronJobApi::V1, CronJobApi::V1Beta1] {
        let served = match client.list_api_group_resources(api.api_version()).await {
            Ok(list) => list.resources.iter().any(|r| r.name == "cronjobs"),
            // A group version the server does not serve answers 404.
            Err(kube::Error::Api(e)) if e.code == 404 => false,
            Err(e) => return Err(kube_err(format!("discovery of {}", api.api_version()))(e)),
        };
        if served {
            return Ok(Some(api));
        }
    }
    Ok(None)
}

async fn publish(
    ctx: &Context,
    p: &AnalyticsPipeline,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let ev = KubeEvent {
        type_,
        reason: reason.chars().take(128).collect(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &p.object_ref(&())).await {
        warn!(error = %e, reason, "cannot publish event");
    }
}

/// The reconcile entry point used by the controller.
pub async fn reconcile(p: Arc<AnalyticsPipeline>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let ns = p.namespace().ok_or(Error::NoNamespace)?;
    let name = p.name_any();
    let span = info_span!("reconcile", pipeline = %name, namespace = %ns, generation = ?p.metadata.generation);
    let api: Api<AnalyticsPipeline> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, p, |event| async {
        match event {
            Finalizer::Apply(p) => apply(p, &ctx, &api).await,
            Finalizer::Cleanup(p) => cleanup(p, &ctx).await,
        }
    })
    .instrument(span)
    .await;
    let result = match result {
        // A requeue that ran on a copy from before the finalizer was removed finds the
        // resource gone: its cleanup is done.
        Err(kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(e)))
            if e.code == 404 =>
        {
            Ok(Action::await_change())
        }
        other => other.map_err(|e| Error::Finalizer(Box::new(e))),
    };
    let error = result.as_ref().err().filter(|e| !e.is_waiting());
    ctx.metrics.observe(start.elapsed(), error.map(Error::kind));
    if error.is_none()
        && let Ok(mut f) = ctx.failures.lock()
    {
        f.remove(&format!("{ns}/{name}"));
    }
    result
}

/// Per-object exponential backoff.
pub fn error_policy(p: Arc<AnalyticsPipeline>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any());
    if err.is_waiting() {
        info!(pipeline = %key, "{err}");
        return Action::requeue(STOPPING_POLL);
    }
    let n = match ctx.failures.lock() {
        Ok(mut f) => {
            let n = f.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        }
        Err(_) => 1,
    };
    let delay = ctx.backoff(n);
    warn!(pipeline = %key, error = %err, failures = n, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Checks every referenced Secret; returns problems naming the field, and the Secrets as read
/// (for the operator's own Kafka and MongoDB connections).
///
/// Only the Secrets the spec names ([`validate::referenced_secrets`]) are read, and only in the
/// pipeline's own namespace: a pipeline cannot make the operator read, or lend it, anyone
/// else's Secret.
/// What [`check_secrets`] found.
struct CheckedSecrets {
    /// Missing Secrets and keys, and Secrets not released to the pipeline, by field.
    problems: Vec<Problem>,
    /// The values of the Secrets that may be used.
    values: SecretValues,
}

async fn check_secrets(
    p: &AnalyticsPipeline,
    ctx: &Context,
    ns: &str,
) -> Result<CheckedSecrets, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut problems = Vec::new();
    let mut values = SecretValues::default();
    let mut missing: Vec<String> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for use_ in validate::referenced_secrets(&p.spec) {
        let seen = |n: &String| values.contains(n) || missing.contains(n) || refused.contains(n);
        if !seen(&use_.name) {
            let secret = secrets
                .get_opt(&use_.name)
                .await
                .map_err(kube_err(format!("get Secret {}", use_.name)))?;
            match secret {
                Some(secret)
                    if !validate::secret_allows(
                        secret.metadata.annotations.as_ref(),
                        &p.name_any(),
                    ) =>
                {
                    refused.push(use_.name.clone());
                }
                Some(secret) => {
                    let mut data: std::collections::BTreeMap<String, Vec<u8>> = secret
                        .string_data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    data.extend(secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
                    values.insert(
                        use_.name.clone(),
                        secret.metadata.resource_version.unwrap_or_default(),
                        data,
                    );
                }
                None => missing.push(use_.name.clone()),
            }
        }
        if missing.contains(&use_.name) {
            problems.push(Problem {
                field: use_.field.clone(),
                message: format!("Secret {:?} not found in namespace {ns}", use_.name),
            });
            continue;
        }
        if refused.contains(&use_.name) {
            problems.push(Problem {
                field: use_.field.clone(),
                message: format!(
                    "Secret {:?} is not released to this pipeline: its owner annotates it \
                     {}={} (or \"*\") to let it be used",
                    use_.name,
                    validate::ALLOWED_PIPELINES_ANNOTATION,
                    p.name_any()
                ),
            });
            continue;
        }
        for key in &use_.keys {
            if values.bytes(&use_.name, key).is_err() {
                problems.push(Problem {
                    field: use_.field.clone(),
                    message: format!("Secret {:?} has no key {key:?}", use_.name),
                });
            }
        }
    }
    Ok(CheckedSecrets { problems, values })
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Applies one object with server-side apply (forced, one field manager).
async fn apply_one(client: &Client, d: &Desired) -> Result<DynamicObject, Error> {
    let ns = d.object.metadata.namespace.clone().unwrap_or_default();
    let name = d.object.metadata.name.clone().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &d.resource);
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&d.object))
        .await
        .map_err(kube_err(format!("apply {}", d.key())))
}

async fn write_status(
    api: &Api<AnalyticsPipeline>,
    p: &AnalyticsPipeline,
    status: &AnalyticsPipelineStatus,
) -> Result<(), Error> {
    if p.status.as_ref() == Some(status) {
        return Ok(());
    }
    api.patch_status(
        &p.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(kube_err("patch status"))?;
    Ok(())
}

/// Gather -> decide -> act: reads what the spec refers to, decides the budget, renders and
/// applies the children, ensures the topics, then decides the status ([`crate::status`]) and
/// writes it with the events of every transition.
async fn apply(
    p: Arc<AnalyticsPipeline>,
    ctx: &Context,
    api: &Api<AnalyticsPipeline>,
) -> Result<Action, Error> {
    let ns = p.namespace().ok_or(Error::NoNamespace)?;
    let name = p.name_any();
    let generation = p.metadata.generation;
    let previous = p.status.clone().unwrap_or_default();
    let now = now_rfc3339();

    let spec_problems = validate::check_spec(&p.spec);
    if !spec_problems.is_empty() {
        let status = status::decide_invalid(&previous, &spec_problems, generation, &now);
        emit_transitions(ctx, &p, &previous, &status).await;
        write_status(api, &p, &status).await?;
        return Ok(Action::await_change());
    }

    // Warn about settings that are valid but turn certificate verification off.
    let spec_warnings = validate::warnings(&p.spec);
    if !spec_warnings.is_empty() && previous.observed_generation != generation {
        publish(
            ctx,
            &p,
            EventType::Warning,
            "InsecureSkipVerify",
            spec_warnings.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        )
        .await;
    }

    // Gather: Secrets and the registry (read through the spec's MongoDB, with its TLS and
    // credentials).
    let CheckedSecrets { problems: secret_problems, values: secret_values } =
        check_secrets(&p, ctx, &ns).await?;
    if !secret_problems.is_empty() {
        // Nothing is applied until every Secret the spec names exists, holds its keys and is
        // released to the pipeline: pods rendered earlier would mount a Secret the moment it
        // appears, released or not. Secrets are not watched: look again after the requeue
        // interval.
        let status =
            status::decide_blocked(&previous, "SecretUnusable", &secret_problems, generation, &now);
        emit_transitions(ctx, &p, &previous, &status).await;
        write_status(api, &p, &status).await?;
        return Ok(Action::requeue(ctx.settings.requeue));
    }
    let privacy = &p.spec.offline.training.privacy;
    let registry = match MongoConnection::for_pipeline(&p, &secret_values) {
        Ok(None) => RegistryRead::NotRead,
        Err(e) => RegistryRead::Failed(e.to_string()),
        Ok(Some(conn)) => {
            let mongo_managed = matches!(p.spec.mongodb.backend, BackendSpec::Managed(_));
            let managed_ready = previous
                .workloads
                .iter()
                .any(|w| w.name == format!("{name}-mongodb") && w.ready_replicas > 0);
            if mongo_managed && !managed_ready {
                RegistryRead::NotRead
            } else {
                match ctx.registry_reader.read(&conn, &p.database(), &p.id().key(), privacy).await {
                    Ok(view) => RegistryRead::Read(view),
                    Err(e) => RegistryRead::Failed(e.to_string()),
                }
            }
        }
    };
    let budget = status::budget(&registry, previous.privacy_budget.as_ref(), privacy);

    // Act: render and apply the children.
    let inputs = RenderInputs {
        suspend_training: budget.exhausted.is_some(),
        cronjob_api: ctx.cronjob_api,
        secret_versions: secret_values.versions(),
    };
    let desired = render::render(&p, &inputs)?;
    let mut workloads = Vec::new();
    let stores = ctx.stores();
    let pipeline_uid = p.metadata.uid.clone().unwrap_or_default();
    for d in &desired {
        let is_workload = d.resource.kind == "Deployment" || d.resource.kind == "StatefulSet";
        let key = format!("{pipeline_uid}/{}", d.key());
        let hash = children::desired_hash(d);
        let live = stores.as_ref().and_then(|s| s.live(d));
        let previous = ctx.applied.get(&key);
        let now = Instant::now();
        let live = match live {
            Some(live)
                if children::up_to_date(
                    previous.as_ref(),
                    hash,
                    Some(&live),
                    now,
                    ctx.settings.resync,
                ) =>
            {
                ctx.metrics.children.with_label_values(&["unchanged"]).inc();
                Some(live)
            }
            _ => {
                let obj = apply_one(&ctx.client, d).await?;
                ctx.metrics.children.with_label_values(&["applied"]).inc();
                let live = Live::from_applied(&obj, is_workload);
                if let Some(live) = &live {
                    let before = ctx
                        .applied
                        .insert(key, children::Applied { hash, live: live.clone(), at: now });
                    note_recreated(ctx, &p, d, before.as_ref(), &live.uid).await;
                }
                live
            }
        };
        if is_workload {
            let (replicas, ready_replicas) = live.and_then(|l| l.replicas).unwrap_or((1, 0));
            workloads.push(WorkloadStatus {
                name: d.object.metadata.name.clone().unwrap_or_default(),
                kind: d.resource.kind.clone(),
                replicas,
                ready_replicas,
            });
        }
    }

    // Act and gather: the topics.
    let topics = p.spec.kafka.topics.all();
    let topics: Vec<(&str, &TopicSpec)> = topics.iter().map(|(r, t)| (*r, t)).collect();
    let topic_result = match ctx.topic_admin(&p.spec.kafka, &secret_values) {
        Ok(admin) => admin.ensure(&topics).await,
        Err(e) => Err(e),
    };
    let (topics_outcome, topic_error) = match topic_result {
        Ok(report) => {
            if !report.changes.is_empty() {
                ctx.metrics.topic_changes.inc_by(report.changes.len() as u64);
                publish(ctx, &p, EventType::Normal, "TopicsChanged", report.changes.join("; "))
                    .await;
            }
            let error = (!report.problems.is_empty())
                .then(|| TopicError::Incomplete(report.problems.clone()));
            (TopicsOutcome::Ensured { topics: report.topics, problems: report.problems }, error)
        }
        Err(e) => (TopicsOutcome::Unreachable(e.to_string()), Some(e)),
    };

    // Decide the status; act: write it and publish what changed.
    let gathered = Gathered {
        secret_problems,
        spec_warnings,
        registry,
        budget,
        workloads,
        cronjob_api: ctx.cronjob_api,
        topics: topics_outcome,
    };
    let status = status::decide(&previous, &gathered, privacy, generation, &now);
    if previous.observed_generation != generation {
        publish(
            ctx,
            &p,
            EventType::Normal,
            "Applied",
            format!(
                "applied {} objects for generation {}; {}",
                desired.len(),
                generation.unwrap_or(0),
                status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == conditions::READY)
                    .map(|c| if c.status == "True" {
                        "ready".to_string()
                    } else {
                        format!("not ready yet: {}", c.message)
                    })
                    .unwrap_or_default()
            ),
        )
        .await;
    }
    emit_transitions(ctx, &p, &previous, &status).await;
    write_status(api, &p, &status).await?;
    info!(applied = desired.len(), ready = %status.conditions.iter().any(|c| c.type_ == conditions::READY && c.status == "True"), "reconciled");
    if let Some(e) = topic_error {
        return Err(e.into());
    }
    Ok(Action::requeue(if gathered.secret_problems.is_empty() {
        ctx.settings.requeue
    } else {
        ctx.settings.requeue.min(Duration::from_secs(15))
    }))
}

/// Emits an event when a child was recreated (its uid changed since the last apply).
async fn note_recreated(
    ctx: &Context,
    p: &AnalyticsPipeline,
    d: &Desired,
    before: Option<&children::Applied>,
    uid: &str,
) {
    if let Some(before) = before
        && before.live.uid != uid
    {
        publish(
            ctx,
            p,
            EventType::Normal,
            "ChildRecreated",
            format!("{} was missing and has been recreated", d.key()),
        )
        .await;
    }
}

async fn emit_transitions(
    ctx: &Context,
    p: &AnalyticsPipeline,
    before: &AnalyticsPipelineStatus,
    after: &AnalyticsPipelineStatus,
) {
    for c in conditions::transitions(&before.conditions, &after.conditions) {
        let bad = (c.type_ == conditions::PRIVACY_BUDGET_EXHAUSTED) == (c.status == "True");
        publish(
            ctx,
            p,
            if bad { EventType::Warning } else { EventType::Normal },
            &format!("{}{}", c.type_, c.status),
            c.message.clone(),
        )
        .await;
    }
}

/// Runs on deletion (before the finalizer is removed): deletes topics when the spec asks.
/// Stops the pipeline's streaming workloads and waits until their pods are gone: a gate or
/// processor still running would create its output topics again right after they are deleted.
///
/// The Deployments are scaled to zero, so the ReplicaSet controller deletes the pods at once,
/// and the pods themselves are waited for (terminating pods still run). Foreground deletion
/// would say the same but leaves the wait to the garbage collector, whose retries took 40 s on
/// an idle node after the pods were long gone. While pods remain it returns
/// [`Error::WorkloadsStopping`] instead of waiting, so a deletion holds no reconcile slot
/// (with hundreds of pipelines deleted at once, waiting in the slots serialised them behind the
/// ReplicaSet controller's rate limit).
async fn stop_streaming_workloads(p: &AnalyticsPipeline, ctx: &Context) -> Result<(), Error> {
    let ns = p.namespace().ok_or(Error::NoNamespace)?;
    let name = p.name_or_empty();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let streaming: Vec<&str> =
        Workload::ALL.iter().filter(|w| w.is_streaming()).map(|w| w.component()).collect();
    let names = render::Names::new(name);
    let scale = Patch::Merge(json!({ "spec": { "replicas": 0 } }));
    for component in &streaming {
        let deployment = names.child(component);
        match deployments.patch(&deployment, &PatchParams::default(), &scale).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(kube_err(format!("scale Deployment {deployment} to 0"))(e)),
        }
    }
    let selector = format!(
        "{}={name},{} in ({})",
        render::PIPELINE_LABEL,
        render::COMPONENT_LABEL,
        streaming.join(",")
    );
    let left = pods
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(kube_err(format!("list pods {selector}")))?;
    if !left.items.is_empty() {
        return Err(Error::WorkloadsStopping(left.items.len()));
    }
    for component in &streaming {
        let deployment = names.child(component);
        match deployments.delete(&deployment, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(kube_err(format!("delete Deployment {deployment}"))(e)),
        }
    }
    Ok(())
}

async fn cleanup(p: Arc<AnalyticsPipeline>, ctx: &Context) -> Result<Action, Error> {
    if let Some(uid) = &p.metadata.uid {
        ctx.applied.forget(uid);
    }
    if p.spec.kafka.delete_topics_on_deletion {
        stop_streaming_workloads(&p, ctx).await?;
        let names: Vec<String> =
            p.spec.kafka.topics.all().iter().map(|(_, t)| t.name.clone()).collect();
        let ns = p.namespace().ok_or(Error::NoNamespace)?;
        let secrets = check_secrets(&p, ctx, &ns).await?.values;
        let admin = ctx.topic_admin(&p.spec.kafka, &secrets)?;
        let deleted = admin.delete(&names).await?;
        ctx.metrics.topic_changes.inc_by(deleted.len() as u64);
        info!(?deleted, "deleted topics");
        publish(
            ctx,
            &p,
            EventType::Normal,
            "TopicsDeleted",
            format!("deleted topics {}", deleted.join(", ")),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// Runs the controller until `shutdown` resolves. `namespace` limits it to one namespace.
pub async fn run_controller(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let wc = watcher::Config::default();
    let owned =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=shopstream-operator");
    let cronjobs = ctx.cronjob_api.map(|cron| {
        let ar = cron.resource();
        let cron_api: Api<PartialObjectMeta<DynamicObject>> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        (cron_api, ar)
    });
    let watches = children::watches(
        api::<Deployment>(&client, namespace),
        api::<StatefulSet>(&client, namespace),
        api::<PartialObjectMeta<Service>>(&client, namespace),
        api::<PartialObjectMeta<ServiceAccount>>(&client, namespace),
        cronjobs,
        owned,
    );
    // Fresh stores start empty: forget what earlier runs applied, so every child is applied
    // once more under this run.
    ctx.applied.clear();
    if let Ok(mut s) = ctx.stores.write() {
        *s = Some(watches.stores.clone());
    }
    let mut controller = Controller::new(api::<AnalyticsPipeline>(&client, namespace), wc)
        .owns_stream(watches.accounts)
        .owns_stream(watches.services)
        .owns_stream(watches.deployments)
        .owns_stream(watches.statefulsets);
    if let Some((trigger, ar)) = watches.cronjobs {
        controller = controller.owns_stream_with(trigger, ar);
    }
    let config = kube::runtime::controller::Config::default()
        .debounce(ctx.settings.debounce)
        .concurrency(ctx.settings.concurrency);
    controller
        .with_config(config)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    if let Ok(mut s) = ctx.stores.write() {
        *s = None;
    }
}
