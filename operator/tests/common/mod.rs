//! Shared helpers of the integration tests: real API server (KUBECONFIG from `dev/kube`), real
//! broker and MongoDB (from `dev/stack`). Missing endpoints fail the test with instructions.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use shopstream_operator::controller::{Context, Settings};
use shopstream_operator::crd::AnalyticsPipeline;
use shopstream_operator::leader::{LeaseSettings, run_with_election};
use shopstream_operator::metrics::Metrics;
use tokio::sync::oneshot;

const HINT: &str = "run `dev/stack up` (or `dev/kube up`) and `eval \"$(dev/stack env)\"` first";

/// An environment variable the tests need, or a clear failure.
pub fn need_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set: {HINT}"),
    }
}

/// Operator logs on stderr when `RUST_LOG` is set (`RUST_LOG=shopstream_operator=debug`).
fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A client for the API server named by KUBECONFIG.
pub async fn client() -> Client {
    init_logs();
    need_env("KUBECONFIG");
    Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("cannot reach the API server ({e}): {HINT}"))
}

/// A short random suffix for names.
pub fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Installs (server-side applies) the checked-in CRD and waits until it is Established.
pub async fn install_crd(client: &Client) {
    shopstream_operator::crd::apply_crd(client, "shopstream-tests").await.expect("apply CRD");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    eventually("CRD Established", Duration::from_secs(30), || {
        let api = api.clone();
        async move {
            let crd = api.get("analyticspipelines.shopstream.io").await.ok()?;
            let established = crd
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        }
    })
    .await;
}

/// A throwaway namespace.
pub struct TestNs {
    pub client: Client,
    pub name: String,
}

impl TestNs {
    pub async fn new(client: &Client, prefix: &str) -> Self {
        let name = format!("{prefix}-{}", suffix());
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name }
        }))
        .expect("namespace");
        api.create(&PostParams::default(), &ns).await.expect("create namespace");
        TestNs { client: client.clone(), name }
    }

    /// Creates a Secret with string data.
    pub async fn secret(&self, name: &str, data: &[(&str, &str)]) {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.name);
        let map: serde_json::Map<String, serde_json::Value> =
            data.iter().map(|(k, v)| ((*k).to_string(), serde_json::json!(v))).collect();
        let s: Secret = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "stringData": map,
            "metadata": {
                "name": name,
                "annotations": { "shopstream.io/allowed-pipelines": "*" },
            }
        }))
        .expect("secret");
        api.create(&PostParams::default(), &s).await.expect("create secret");
    }

    /// Removes leftover finalizers (the operator may be stopped) and deletes the namespace.
    pub async fn cleanup(self) {
        let api: Api<AnalyticsPipeline> = Api::namespaced(self.client.clone(), &self.name);
        if let Ok(list) = api.list(&Default::default()).await {
            for p in list {
                let _ = api
                    .patch(
                        &p.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(serde_json::json!({ "metadata": { "finalizers": null } })),
                    )
                    .await;
            }
        }
        let ns: Api<Namespace> = Api::all(self.client.clone());
        let _ = ns.delete(&self.name, &DeleteParams::default()).await;
    }
}

/// The example pipeline pointed at the local stack, with unique topic names and database.
pub fn pipeline(name: &str, ns: &str, tag: &str) -> AnalyticsPipeline {
    let text = include_str!("../../../crds/examples/pipeline.yaml");
    let mut v: serde_json::Value = serde_norway::from_str(text).expect("example YAML");
    v["metadata"] = serde_json::json!({ "name": name, "namespace": ns });
    let spec = &mut v["spec"];
    spec["kafka"]["bootstrapServers"] = need_env("SHOPSTREAM_KAFKA").into();
    for role in ["raw", "valid", "suspicious", "deadLetter"] {
        spec["kafka"]["topics"][role]["name"] = format!("optest.{tag}.{role}").into();
    }
    spec["redis"]["external"]["url"] = need_env("SHOPSTREAM_REDIS_URL").into();
    spec["mongodb"]["external"]["url"] = need_env("SHOPSTREAM_MONGO_URL").into();
    spec["mongodb"]["database"] = format!("optest_{tag}").into();
    spec["elasticsearch"]["external"]["url"] = need_env("SHOPSTREAM_ES_URL").into();
    // no managed Kibana by default: nothing could ever make it ready without a kubelet
    spec.as_object_mut().expect("spec").remove("kibana");
    // These tests are about the operator, not the workloads: on a node the pods run an image
    // that is there and stops on SIGTERM, instead of retrying a pull of the example's image
    // (a kubelet takes up to a minute to delete a pod in image-pull back-off).
    if let Ok(image) = std::env::var("SHOPSTREAM_IDLE_IMAGE") {
        spec["workloads"]["image"] = image.into();
    }
    serde_json::from_value(v).expect("pipeline")
}

/// An operator running in-process (its own Lease, limited to one namespace).
pub struct Operator {
    pub metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    pub async fn start(client: &Client, ns: &str, identity: &str) -> Self {
        let metrics = Metrics::new().expect("metrics");
        let settings = Settings {
            requeue: Duration::from_secs(5),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(5),
            debounce: Duration::ZERO,
            ..Settings::default()
        };
        let ctx = Arc::new(
            Context::new(client.clone(), metrics.clone(), identity, settings)
                .await
                .expect("context"),
        );
        let (stop, rx) = oneshot::channel::<()>();
        let lease = LeaseSettings {
            name: "shopstream-operator".into(),
            namespace: ns.to_string(),
            identity: identity.to_string(),
            duration_seconds: 5,
            grace_seconds: 2,
        };
        let client = client.clone();
        let ns = ns.to_string();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(e) = run_with_election(client, ctx, Some(ns), lease, shutdown).await {
                eprintln!("operator stopped with an error: {e}");
            }
        });
        Operator { metrics, stop: Some(stop), task }
    }

    pub fn reconciles(&self) -> u64 {
        self.metrics.reconciles.with_label_values(&["ok"]).get()
            + self.metrics.reconciles.with_label_values(&["error"]).get()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), &mut self.task).await;
    }
}

/// Partition counts of topics on the broker, read with an independent client.
pub fn broker_partitions(topics: &[String]) -> Vec<Option<usize>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", need_env("SHOPSTREAM_KAFKA"))
        .create()
        .expect("kafka client");
    let md = consumer.fetch_metadata(None, Duration::from_secs(10)).expect("metadata");
    topics
        .iter()
        .map(|n| {
            md.topics()
                .iter()
                .find(|t| t.name() == n && t.error().is_none())
                .map(|t| t.partitions().len())
        })
        .collect()
}

/// The pipeline's condition of `type_` as (status, reason, message, observedGeneration).
pub fn condition(
    p: &AnalyticsPipeline,
    type_: &str,
) -> Option<(String, String, String, Option<i64>)> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone(), c.observed_generation))
}
