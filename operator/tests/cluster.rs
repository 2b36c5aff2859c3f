//! Integration tests against the real kube-apiserver (+ kube-controller-manager for garbage
//! collection), the real Kafka-protocol broker and the real MongoDB-wire server.
//! Needs `dev/stack up` (or `dev/kube up` + the stack) and `eval "$(dev/stack env)"`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use mongodb::bson::{DateTime, doc};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use shopstream_operator::controller::cronjob_api;
use shopstream_operator::crd::AnalyticsPipeline;
use shopstream_operator::render::CronJobApi;

const T: Duration = Duration::from_secs(60);
/// Deletion waits for the streaming pods (the operator allows them 120 s per attempt).
const DELETION: Duration = Duration::from_secs(180);

fn ar<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// Every child kind/name expected for the test pipeline (no managed backends), CronJobs in the
/// API version the server serves.
fn expected_children(cronjobs: Option<CronJobApi>) -> Vec<(ApiResource, &'static str)> {
    use k8s_openapi::api::core::v1::Service;
    let mut v = vec![
        (ar::<ServiceAccount>(), "shop-workload"),
        (ar::<Deployment>(), "shop-generator"),
        (ar::<Deployment>(), "shop-gate"),
        (ar::<Deployment>(), "shop-processor"),
        (ar::<Deployment>(), "shop-sink"),
        (ar::<Service>(), "shop-generator"),
        (ar::<Service>(), "shop-gate"),
        (ar::<Service>(), "shop-processor"),
        (ar::<Service>(), "shop-sink"),
    ];
    if let Some(api) = cronjobs {
        v.push((api.resource(), "shop-similarity"));
        v.push((api.resource(), "shop-train"));
    }
    v
}

fn env_of(d: &Deployment) -> BTreeMap<String, String> {
    d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).expect("pod spec").containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let v = e.value.unwrap_or_else(|| {
                let f = e.value_from.and_then(|f| f.field_ref).expect("a pod field");
                format!("field:{}", f.field_path)
            });
            (e.name, v)
        })
        .collect()
}

fn topic_retention(topic: &str) -> Option<String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", need_env("SHOPSTREAM_KAFKA"))
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let res = rt
        .block_on(admin.describe_configs(
            &[ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .ok()?;
    res.into_iter().next()?.ok()?.get("retention.ms")?.value.clone()
}

/// Create -> children with owner refs and wiring, topics, status; update -> converge and keep
/// another manager's field; delete a child -> recreated; delete -> finalizer removes topics and
/// kube-controller-manager garbage-collects the children.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_lifecycle_on_a_real_api_server() {
    let client = client().await;
    install_crd(&client).await;
    let cronjobs = cronjob_api(&client).await.expect("discovery");
    let ns = TestNs::new(&client, "op-life").await;
    ns.secret("shopstream-pseudonym", &[("key", "0123456789abcdef")]).await;
    let op = Operator::start(&client, &ns.name, "life-a").await;
    let tag = suffix();
    let api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &ns.name);
    let created = api
        .create(&PostParams::default(), &pipeline("shop", &ns.name, &tag))
        .await
        .expect("create");
    let uid = created.uid().expect("uid");

    // Every child appears, owned by the pipeline (controller reference).
    for (res, name) in expected_children(cronjobs) {
        let dyn_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &res);
        let obj = eventually(&format!("{} {name}", res.kind), T, || {
            let a = dyn_api.clone();
            async move { a.get_opt(name).await.ok().flatten() }
        })
        .await;
        let owners = obj.metadata.owner_references.clone().unwrap_or_default();
        assert!(
            owners.iter().any(|o| o.uid == uid
                && o.controller == Some(true)
                && o.kind == "AnalyticsPipeline"),
            "{} {name} lacks the controller reference: {owners:?}",
            res.kind
        );
        let managers: Vec<String> = obj
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.manager)
            .collect();
        assert!(managers.contains(&"shopstream-operator".to_string()), "{managers:?}");
    }

    // The configuration is wired through.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let gate = deployments.get("shop-gate").await.expect("gate");
    let env = env_of(&gate);
    assert_eq!(env["SHOPSTREAM_KAFKA"], need_env("SHOPSTREAM_KAFKA"));
    assert_eq!(env["SHOPSTREAM_TOPIC_RAW"], format!("optest.{tag}.raw"));
    assert_eq!(env["SHOPSTREAM_TOPIC_VALID"], format!("optest.{tag}.valid"));
    assert_eq!(env["SHOPSTREAM_TOPIC_SUSPICIOUS"], format!("optest.{tag}.suspicious"));
    assert_eq!(env["SHOPSTREAM_TOPIC_DEAD_LETTER"], format!("optest.{tag}.deadLetter"));
    assert_eq!(env["SHOPSTREAM_REDIS_URL"], need_env("SHOPSTREAM_REDIS_URL"));
    assert_eq!(env["SHOPSTREAM_CONSUMER_GROUP"], format!("shopstream.{}.shop.gate", ns.name));
    assert!(!env.contains_key("SHOPSTREAM_PSEUDONYM_KEY_FILE"), "only the sink gets the key");
    assert_eq!(gate.spec.as_ref().and_then(|s| s.replicas), Some(2));
    let sink_env = env_of(&deployments.get("shop-sink").await.expect("sink"));
    assert_eq!(sink_env["SHOPSTREAM_MONGO_URL"], need_env("SHOPSTREAM_MONGO_URL"));
    assert_eq!(sink_env["SHOPSTREAM_MONGO_DB"], format!("optest_{tag}"));
    assert_eq!(
        sink_env["SHOPSTREAM_PSEUDONYM_KEY_FILE"],
        "/var/run/secrets/shopstream/pseudonym/key"
    );
    // ... from the Secret, mounted as a file in the sink alone.
    let sink = deployments.get("shop-sink").await.expect("sink");
    let sink_pod = sink.spec.and_then(|s| s.template.spec).expect("sink pod");
    let sources = sink_pod.volumes.unwrap_or_default()[0]
        .projected
        .clone()
        .and_then(|p| p.sources)
        .unwrap_or_default();
    let secret = sources[0].secret.clone().expect("a Secret source");
    assert_eq!(secret.name, "shopstream-pseudonym");
    assert!(
        gate.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .is_some_and(|p| p.volumes.is_none())
    );
    let proc_env = env_of(&deployments.get("shop-processor").await.expect("processor"));
    assert_eq!(proc_env["SHOPSTREAM_ES_URL"], need_env("SHOPSTREAM_ES_URL"));

    // Topics exist on the broker with the requested partitions.
    let topics: Vec<String> = ["raw", "valid", "suspicious", "deadLetter", "deadLetter.processor"]
        .iter()
        .map(|r| format!("optest.{tag}.{r}"))
        .collect();
    let parts = eventually("topics on the broker", T, || {
        let topics = topics.clone();
        async move {
            let p = tokio::task::spawn_blocking(move || broker_partitions(&topics)).await.ok()?;
            p.iter().all(Option::is_some).then_some(p)
        }
    })
    .await;
    assert_eq!(parts, vec![Some(6), Some(6), Some(2), Some(1), Some(1)]);

    // Status: conditions for generation 1.
    let p = eventually("status for generation 1", T, || {
        let api = api.clone();
        async move {
            let p = api.get("shop").await.ok()?;
            let s = p.status.as_ref()?;
            (s.observed_generation == Some(1) && condition(&p, "TopicsReady").is_some())
                .then_some(p)
        }
    })
    .await;
    let (status, reason, _, generation) = condition(&p, "TopicsReady").expect("TopicsReady");
    assert_eq!((status.as_str(), reason.as_str(), generation), ("True", "TopicsReady", Some(1)));
    assert_eq!(condition(&p, "SpecValid").expect("SpecValid").0, "True");
    let offline = condition(&p, "OfflineJobsReady").expect("OfflineJobsReady");
    // batch/v1 on current servers, batch/v1beta1 on the 1.20 test server: CronJobs either way
    let api_version = cronjobs.expect("the server serves a CronJob API").api_version();
    assert_eq!(offline.0, "True");
    assert!(offline.2.contains(api_version), "{}", offline.2);
    // the pods never become ready (no node, or the idle image answers no readiness probe),
    // and Ready says so
    let workloads = condition(&p, "WorkloadsReady").expect("WorkloadsReady");
    assert_eq!((workloads.0.as_str(), workloads.1.as_str()), ("False", "ReplicasNotReady"));
    let ready = condition(&p, "Ready").expect("Ready");
    assert_eq!(ready.0, "False");
    assert!(ready.2.contains("shop-gate 0/2 ready"), "{}", ready.2);
    assert_eq!(condition(&p, "PrivacyBudgetExhausted").expect("budget").0, "False");
    let s = p.status.clone().expect("status");
    assert_eq!(s.topics.len(), 5);
    assert_eq!(s.privacy_budget.as_ref().map(|b| b.remaining_epsilon), Some(10.0));
    assert!(s.conditions.iter().all(|c| c.observed_generation == Some(1)));

    // A settled pipeline's reconciles (requeued every 5 s here) apply nothing: a window in
    // which every child was found unchanged at least once and none was applied.
    let children = expected_children(cronjobs).len() as u64;
    let counts = || {
        let c = &op.metrics.children;
        (c.with_label_values(&["applied"]).get(), c.with_label_values(&["unchanged"]).get())
    };
    let counts = &counts;
    eventually("a quiet window without applies", T, move || async move {
        let (applied, unchanged) = counts();
        tokio::time::sleep(Duration::from_secs(6)).await;
        let (applied_after, unchanged_after) = counts();
        (applied_after == applied && unchanged_after >= unchanged + children).then_some(())
    })
    .await;

    // Another field manager owns an annotation on the gate Deployment.
    deployments
        .patch(
            "shop-gate",
            &PatchParams::apply("other-team"),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "shop-gate", "annotations": { "example.com/owner": "team-x" } }
            })),
        )
        .await
        .expect("other manager apply");
    // Update the spec: replicas, schedule, threshold, retention.
    api.patch(
        "shop",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "spec": {
            "workloads": { "processor": { "replicas": 3 } },
            "offline": { "similarity": { "schedule": "15 */3 * * *", "threshold": 0.7 } },
            "kafka": { "topics": { "valid": { "retentionMs": 3600000 } } },
        }})),
    )
    .await
    .expect("update spec");
    eventually("processor scaled to 3", T, || {
        let d = deployments.clone();
        async move { (d.get("shop-processor").await.ok()?.spec?.replicas == Some(3)).then_some(()) }
    })
    .await;
    let cron_res = cronjobs.expect("CronJob API").resource();
    let crons: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &cron_res);
    let sim = eventually("similarity CronJob updated", T, || {
        let c = crons.clone();
        async move {
            let v = serde_json::to_value(c.get("shop-similarity").await.ok()?).ok()?;
            (v["spec"]["schedule"] == "15 */3 * * *").then_some(v)
        }
    })
    .await;
    let sim_env = sim
        .pointer("/spec/jobTemplate/spec/template/spec/containers/0/env")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    assert!(
        sim_env
            .iter()
            .any(|e| e["name"] == "SHOPSTREAM_SIMILARITY_THRESHOLD" && e["value"] == "0.7"),
        "{sim_env:?}"
    );
    let p = eventually("status for generation 2", T, || {
        let api = api.clone();
        async move {
            let p = api.get("shop").await.ok()?;
            (p.status.as_ref()?.observed_generation == Some(2)).then_some(p)
        }
    })
    .await;
    let gate = deployments.get("shop-gate").await.expect("gate");
    let ann = gate.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        ann.get("example.com/owner").map(String::as_str),
        Some("team-x"),
        "another manager's field was removed"
    );
    // Someone else scales a child: the operator's spec wins again (its generation moved).
    deployments
        .patch(
            "shop-processor",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "spec": { "replicas": 1 } })),
        )
        .await
        .expect("scale by hand");
    eventually("processor back at 3 replicas", T, || {
        let d = deployments.clone();
        async move { (d.get("shop-processor").await.ok()?.spec?.replicas == Some(3)).then_some(()) }
    })
    .await;

    // Retention: applied on a broker that supports AlterConfigs, otherwise reported by name.
    let valid_topic = format!("optest.{tag}.valid");
    let retention =
        tokio::task::spawn_blocking(move || topic_retention(&valid_topic)).await.expect("join");
    let topics_cond = condition(&p, "TopicsReady").expect("TopicsReady");
    if retention.as_deref() != Some("3600000") {
        assert_eq!(topics_cond.0, "False", "retention not applied yet TopicsReady={topics_cond:?}");
        assert!(
            topics_cond.2.contains("spec.kafka.topics") && topics_cond.2.contains("AlterConfigs"),
            "{}",
            topics_cond.2
        );
    } else {
        assert_eq!(topics_cond.0, "True");
    }

    // Delete a child: it is recreated.
    let old_uid = gate.uid().expect("uid");
    deployments.delete("shop-gate", &DeleteParams::default()).await.expect("delete child");
    eventually("gate recreated", T, || {
        let d = deployments.clone();
        let old = old_uid.clone();
        async move { d.get_opt("shop-gate").await.ok()?.filter(|g| g.uid() != Some(old)).map(|_| ()) }
    })
    .await;

    // Delete the resource: finalizer deletes topics, then GC removes the children.
    api.delete("shop", &DeleteParams::default()).await.expect("delete pipeline");
    eventually("pipeline gone (finalizer ran)", DELETION, || {
        let api = api.clone();
        async move { api.get_opt("shop").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let left = tokio::task::spawn_blocking(move || broker_partitions(&topics)).await.expect("join");
    assert!(left.iter().all(Option::is_none), "topics left on the broker: {left:?}");
    eventually("children garbage-collected", Duration::from_secs(90), || {
        let d = deployments.clone();
        let c = crons.clone();
        async move {
            let deps = d.list(&Default::default()).await.ok()?;
            let cron = c.list(&Default::default()).await.ok()?;
            (deps.items.is_empty() && cron.items.is_empty()).then_some(())
        }
    })
    .await;
    assert!(op.reconciles() > 0);
    op.stop().await;
    ns.cleanup().await;
}

/// The API server rejects what the schema can express; the operator reports the rest in a
/// condition that names the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_pipelines_are_rejected_or_conditioned() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNs::new(&client, "op-invalid").await;
    let api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &ns.name);
    let tag = suffix();

    // Schema: rejected by the API server with the field in the message.
    let cases: [(&str, serde_json::Value, &str); 5] = [
        (
            "negative replicas",
            serde_json::json!({"workloads": {"processor": {"replicas": -1}}}),
            "spec.workloads.processor.replicas",
        ),
        (
            "unknown model",
            serde_json::json!({"offline": {"training": {"models": ["randomForest", "svm"]}}}),
            "spec.offline.training.models",
        ),
        (
            "zero epsilon",
            serde_json::json!({"offline": {"training": {"privacy": {"totalEpsilon": 0.0}}}}),
            "spec.offline.training.privacy.totalEpsilon",
        ),
        (
            "zero partitions",
            serde_json::json!({"kafka": {"topics": {"raw": {"partitions": 0}}}}),
            "spec.kafka.topics.raw.partitions",
        ),
        ("both external and managed", serde_json::json!({"redis": {"managed": {}}}), "spec.redis"),
    ];
    for (what, patch, field) in cases {
        let mut v = serde_json::to_value(pipeline("bad", &ns.name, &tag)).expect("json");
        merge(&mut v["spec"], &patch);
        let p: AnalyticsPipeline = serde_json::from_value(v.clone()).unwrap_or_else(|_| {
            // values the Rust type itself would refuse are posted raw
            serde_json::from_value(
                serde_json::to_value(pipeline("bad", &ns.name, &tag)).expect("json"),
            )
            .expect("base")
        });
        let err = if serde_json::to_value(&p).expect("json")["spec"] == v["spec"] {
            api.create(&PostParams::default(), &p).await.err()
        } else {
            post_raw(&client, &ns.name, &v).await.err()
        };
        let msg = err.unwrap_or_else(|| panic!("{what}: accepted by the API server")).to_string();
        assert!(msg.contains(field), "{what}: error does not name {field}: {msg}");
    }

    // Not expressible in the schema: epsilonPerRun > totalEpsilon -> condition, nothing applied.
    ns.secret("shopstream-pseudonym", &[("key", "k")]).await;
    let op = Operator::start(&client, &ns.name, "invalid-a").await;
    let mut p = pipeline("overspend", &ns.name, &tag);
    p.spec.offline.training.privacy.total_epsilon = 2.0;
    p.spec.offline.training.privacy.epsilon_per_run = 5.0;
    api.create(&PostParams::default(), &p).await.expect("accepted by the schema");
    let (status, reason, message, _) = eventually("SpecValid=False", T, || {
        let api = api.clone();
        async move { condition(&api.get("overspend").await.ok()?, "SpecValid") }
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert!(message.contains("spec.offline.training.privacy.epsilonPerRun"), "{message}");
    let ready = condition(&api.get("overspend").await.expect("get"), "Ready").expect("Ready");
    assert_eq!(ready.0, "False");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    assert!(
        deployments.get_opt("overspend-gate").await.expect("get").is_none(),
        "invalid spec applied"
    );

    // Missing Secret -> condition naming the field; creating it heals the pipeline.
    let mut p = pipeline("nosecret", &ns.name, &format!("{tag}n"));
    p.spec.pseudonymisation.key_secret.name = "late-secret".into();
    p.spec.kafka.delete_topics_on_deletion = false;
    api.create(&PostParams::default(), &p).await.expect("create");
    let (status, reason, message, _) = eventually("SpecValid=False (secret)", T, || {
        let api = api.clone();
        async move {
            condition(&api.get("nosecret").await.ok()?, "SpecValid").filter(|c| c.0 == "False")
        }
    })
    .await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "SecretUnusable"));
    assert!(
        message.contains("spec.pseudonymisation.keySecret") && message.contains("late-secret"),
        "{message}"
    );
    // The Secret appears, but its owner has not released it to the pipeline: still refused.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), &ns.name);
    let late: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "late-secret" }, "stringData": { "key": "k2" },
    }))
    .expect("secret");
    secrets.create(&PostParams::default(), &late).await.expect("create secret");
    eventually("SpecValid=False (secret not released)", T, || {
        let api = api.clone();
        async move {
            let c = condition(&api.get("nosecret").await.ok()?, "SpecValid")?;
            (c.2.contains("not released") && c.2.contains("spec.pseudonymisation.keySecret"))
                .then_some(())
        }
    })
    .await;
    // Nothing was applied meanwhile: no pod could mount the Secret before its release.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    let lp = kube::api::ListParams::default()
        .labels(&format!("{}=nosecret", shopstream_operator::render::PIPELINE_LABEL));
    let applied = deployments.list(&lp).await.expect("list deployments").items;
    assert!(applied.is_empty(), "applied before the Secret was usable: {}", applied.len());
    secrets
        .patch(
            "late-secret",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "metadata": { "annotations": {
                "shopstream.io/allowed-pipelines": "other,nosecret",
            } } })),
        )
        .await
        .expect("annotate");
    eventually("SpecValid=True after the Secret is released", T, || {
        let api = api.clone();
        async move { condition(&api.get("nosecret").await.ok()?, "SpecValid").filter(|c| c.0 == "True") }
    })
    .await;

    // deleteTopicsOnDeletion=false keeps the topics.
    let topics: Vec<String> = ["raw", "valid", "suspicious", "deadLetter"]
        .iter()
        .map(|r| format!("optest.{tag}n.{r}"))
        .collect();
    let t2 = topics.clone();
    let before = tokio::task::spawn_blocking(move || broker_partitions(&t2)).await.expect("join");
    assert!(before.iter().all(Option::is_some), "{before:?}");
    api.delete("nosecret", &DeleteParams::default()).await.expect("delete");
    eventually("nosecret gone", DELETION, || {
        let api = api.clone();
        async move { api.get_opt("nosecret").await.ok()?.is_none().then_some(()) }
    })
    .await;
    let t2 = topics.clone();
    let after = tokio::task::spawn_blocking(move || broker_partitions(&t2)).await.expect("join");
    assert!(after.iter().all(Option::is_some), "topics deleted although not asked: {after:?}");
    let admin = shopstream_operator::kafka::TopicAdmin::new(
        &need_env("SHOPSTREAM_KAFKA"),
        &shopstream_clients::KafkaSecurity::default(),
    )
    .expect("admin");
    admin.delete(&topics).await.expect("cleanup topics");

    op.stop().await;
    ns.cleanup().await;
}

fn merge(base: &mut serde_json::Value, patch: &serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

async fn post_raw(
    client: &kube::Client,
    ns: &str,
    v: &serde_json::Value,
) -> Result<(), kube::Error> {
    let res = ApiResource::erase::<AnalyticsPipeline>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &res);
    let obj: DynamicObject = serde_json::from_value(v.clone()).expect("dynamic object");
    api.create(&PostParams::default(), &obj).await.map(|_| ())
}

/// Model registry entries and the privacy ledger in the real MongoDB appear in status; a spent
/// budget sets PrivacyBudgetExhausted (and suspends training where CronJobs exist).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_and_budget_from_mongodb_appear_in_status() {
    let client = client().await;
    install_crd(&client).await;
    let cronjobs = cronjob_api(&client).await.expect("discovery");
    let ns = TestNs::new(&client, "op-registry").await;
    ns.secret("shopstream-pseudonym", &[("key", "k")]).await;
    let tag = suffix();
    let mongo =
        mongodb::Client::with_uri_str(need_env("SHOPSTREAM_MONGO_URL")).await.expect("mongo");
    let db = mongo.database(&format!("optest_{tag}"));
    let models = db.collection::<mongodb::bson::Document>("model_registry");
    let ledger = db.collection::<mongodb::bson::Document>("privacy_budget");
    let at = DateTime::from_millis(1_790_000_000_000);
    let m = |name: &str, version: i64, auc: f64, eps: Option<f64>| {
        doc! {
            "name": name, "version": version, "trainedAt": at,
            "metrics": { "rocAuc": auc, "accuracy": 0.7, "f1": 0.6, "logLoss": 0.5 },
            "privacy": { "mechanism": "dp", "epsilon": eps, "delta": eps.map(|_| 1e-5) },
            "artifact": "ignored by the operator",
        }
    };
    models
        .insert_many([
            m("randomForest", 1, 0.71, Some(1.0)),
            m("randomForest", 2, 0.74, Some(1.0)),
            m("mlp", 1, 0.69, None),
        ])
        .await
        .expect("insert models");
    ledger
        .insert_one(doc! { "_id": format!("{}/shop", ns.name), "totalEpsilon": 10.0, "delta": 1e-5, "spentEpsilon": 3.5, "spentDelta": 3.5e-6, "entries": [] })
        .await
        .expect("insert ledger");

    let op = Operator::start(&client, &ns.name, "registry-a").await;
    let api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &ns.name);
    api.create(&PostParams::default(), &pipeline("shop", &ns.name, &tag)).await.expect("create");
    let p = eventually("models in status", T, || {
        let api = api.clone();
        async move {
            let p = api.get("shop").await.ok()?;
            (p.status.as_ref()?.models.len() == 2).then_some(p)
        }
    })
    .await;
    let s = p.status.clone().expect("status");
    let rf = s.models.iter().find(|m| m.name == "randomForest").expect("rf");
    assert_eq!((rf.version, rf.roc_auc, rf.epsilon), (2, Some(0.74), Some(1.0)));
    assert_eq!(rf.trained_at, "2026-09-21T14:13:20Z");
    let mlp = s.models.iter().find(|m| m.name == "mlp").expect("mlp");
    assert_eq!((mlp.version, mlp.epsilon), (1, None));
    let b = s.privacy_budget.clone().expect("budget");
    assert_eq!(
        (b.total_epsilon, b.spent_epsilon, b.remaining_epsilon, b.delta, b.spent_delta),
        (10.0, 3.5, 6.5, 1e-5, 3.5e-6)
    );
    assert_eq!(condition(&p, "PrivacyBudgetExhausted").expect("cond").0, "False");
    assert_eq!(condition(&p, "BackendsReady").expect("cond").0, "True");

    // A new version and a spent budget.
    models.insert_one(m("randomForest", 3, 0.77, Some(1.0))).await.expect("insert v3");
    ledger
        .update_one(
            doc! { "_id": format!("{}/shop", ns.name) },
            doc! { "$set": { "spentEpsilon": 9.5 } },
        )
        .await
        .expect("spend");
    let p = eventually("budget exhausted", T, || {
        let api = api.clone();
        async move {
            let p = api.get("shop").await.ok()?;
            condition(&p, "PrivacyBudgetExhausted").filter(|c| c.0 == "True")?;
            Some(p)
        }
    })
    .await;
    let (_, reason, message, _) = condition(&p, "PrivacyBudgetExhausted").expect("cond");
    assert_eq!(reason, "BudgetExhausted");
    assert!(message.contains("0.5000") && message.contains("epsilonPerRun 1.0000"), "{message}");
    let s = p.status.clone().expect("status");
    assert_eq!(s.models.iter().find(|m| m.name == "randomForest").map(|m| m.version), Some(3));
    assert_eq!(s.privacy_budget.as_ref().map(|b| b.remaining_epsilon), Some(0.5));
    // an exhausted budget does not make the pipeline unready by itself
    assert!(!condition(&p, "Ready").expect("Ready").2.contains("PrivacyBudgetExhausted"));
    if let Some(api) = cronjobs {
        let cj: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &ns.name, &api.resource());
        let train = eventually("training suspended", T, || {
            let cj = cj.clone();
            async move {
                let t = cj.get("shop-train").await.ok()?;
                (t.data["spec"]["suspend"] == true).then_some(t)
            }
        })
        .await;
        assert_eq!(train.data["spec"]["suspend"], true);
    }
    // the transition was published as a Warning event
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), &ns.name);
    eventually("PrivacyBudgetExhaustedTrue event", T, || {
        let e = events.clone();
        async move {
            let list = e.list(&Default::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|ev| {
                    ev.reason.as_deref() == Some("PrivacyBudgetExhaustedTrue")
                        && ev.type_.as_deref() == Some("Warning")
                })
                .map(|_| ())
        }
    })
    .await;

    op.stop().await;
    let _ = db.drop().await;
    let admin = shopstream_operator::kafka::TopicAdmin::new(
        &need_env("SHOPSTREAM_KAFKA"),
        &shopstream_clients::KafkaSecurity::default(),
    )
    .expect("admin");
    let topics: Vec<String> = ["raw", "valid", "suspicious", "deadLetter"]
        .iter()
        .map(|r| format!("optest.{tag}.{r}"))
        .collect();
    let _ = admin.delete(&topics).await;
    ns.cleanup().await;
}
