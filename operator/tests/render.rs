//! Pure tests of the renderer, the spec checks, the conditions and the registry reading, plus
//! the checked-in CRD and offline schema validation of the rendered objects (1.30 schemas).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, Service};
use mongodb::bson::{DateTime, doc};
use shopstream_operator::conditions::{self, Observed};
use shopstream_operator::crd::{AnalyticsPipeline, BackendSpec, ModelKind};
use shopstream_operator::registry;
use shopstream_operator::render::{Desired, RenderInputs, render};
use shopstream_operator::validate;

const EXAMPLE: &str = include_str!("../../crds/examples/pipeline.yaml");

/// YAML -> JSON value -> T (how the API server's JSON reaches the operator; serde_norway alone
/// would expect YAML tags for enums).
fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
    let v: serde_json::Value = serde_norway::from_str(s).expect("valid yaml");
    serde_json::from_value(v).expect("matches the type")
}

fn example() -> AnalyticsPipeline {
    let mut p: AnalyticsPipeline = yaml(EXAMPLE);
    p.metadata.namespace = Some("shop-ns".into());
    p.metadata.uid = Some("1234-uid".into());
    p
}

fn typed<K: serde::de::DeserializeOwned>(objs: &[Desired], kind: &str, name: &str) -> K {
    let d = objs
        .iter()
        .find(|d| d.resource.kind == kind && d.object.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{kind}/{name} not rendered"));
    serde_json::from_value(serde_json::to_value(&d.object).expect("to json")).expect("typed")
}

fn env_map(env: &[EnvVar]) -> BTreeMap<String, EnvVar> {
    env.iter().map(|e| (e.name.clone(), e.clone())).collect()
}

fn value(env: &BTreeMap<String, EnvVar>, name: &str) -> String {
    env.get(name)
        .and_then(|e| e.value.clone())
        .unwrap_or_else(|| panic!("env {name} missing or not a plain value"))
}

#[test]
fn renders_every_child_with_owner_reference_and_labels() {
    let p = example();
    let objs = render(&p, &RenderInputs::default()).expect("renders");
    let keys: Vec<String> = objs.iter().map(Desired::key).collect();
    for want in [
        "ConfigMap/shop-config",
        "ServiceAccount/shop-workload",
        "Role/shop-workload",
        "RoleBinding/shop-workload",
        "Deployment/shop-generator",
        "Deployment/shop-gate",
        "Deployment/shop-processor",
        "Deployment/shop-sink",
        "Service/shop-gate",
        "CronJob/shop-similarity",
        "CronJob/shop-train",
        "StatefulSet/shop-kibana",
        "Service/shop-kibana",
    ] {
        assert!(keys.contains(&want.to_string()), "{want} missing from {keys:?}");
    }
    // external backends get no StatefulSet
    assert!(!keys.iter().any(|k| k == "StatefulSet/shop-redis" || k == "StatefulSet/shop-mongodb"));
    for d in &objs {
        let o = &d.object;
        assert_eq!(o.metadata.namespace.as_deref(), Some("shop-ns"), "{}", d.key());
        let owners = o.metadata.owner_references.as_ref().expect("owner refs");
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "AnalyticsPipeline");
        assert_eq!(owners[0].api_version, "shopstream.io/v1alpha1");
        assert_eq!(owners[0].uid, "1234-uid");
        assert_eq!(owners[0].controller, Some(true));
        let labels = o.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels.get("shopstream.io/pipeline").map(String::as_str), Some("shop"));
        assert_eq!(
            labels.get("app.kubernetes.io/managed-by").map(String::as_str),
            Some("shopstream-operator")
        );
        let types = o.types.as_ref().expect("apiVersion/kind");
        assert_eq!(types.kind, d.resource.kind);
    }
}

#[test]
fn workloads_are_wired_to_topics_services_and_secrets() {
    let p = example();
    let objs = render(&p, &RenderInputs::default()).expect("renders");
    let gate: Deployment = typed(&objs, "Deployment", "shop-gate");
    let spec = gate.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.expect("pod");
    assert_eq!(pod.service_account_name.as_deref(), Some("shop-workload"));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("ghcr.io/example/shopstream:0.1.0"));
    assert_eq!(c.args.as_deref(), Some(&["gate".to_string()][..]));
    let env = env_map(c.env.as_deref().expect("env"));
    assert_eq!(value(&env, "SHOPSTREAM_KAFKA"), "127.0.0.1:19092");
    assert_eq!(value(&env, "SHOPSTREAM_TOPIC_RAW"), "shop.sessions.raw");
    assert_eq!(value(&env, "SHOPSTREAM_TOPIC_VALID"), "shop.sessions.valid");
    assert_eq!(value(&env, "SHOPSTREAM_TOPIC_SUSPICIOUS"), "shop.sessions.suspicious");
    assert_eq!(value(&env, "SHOPSTREAM_TOPIC_DEAD_LETTER"), "shop.sessions.dead-letter");
    assert_eq!(value(&env, "SHOPSTREAM_REDIS_URL"), "redis://127.0.0.1:16379");
    assert_eq!(
        value(&env, "SHOPSTREAM_MONGO_URL"),
        "mongodb://127.0.0.1:27117/?directConnection=true"
    );
    assert_eq!(value(&env, "SHOPSTREAM_MONGO_DB"), "shopstream");
    assert_eq!(value(&env, "SHOPSTREAM_ES_URL"), "http://127.0.0.1:19200");
    // the managed Kibana is reached through its Service
    assert_eq!(value(&env, "SHOPSTREAM_KIBANA_URL"), "http://shop-kibana.shop-ns.svc:5601");
    assert_eq!(value(&env, "SHOPSTREAM_GATE_BLOOM_CAPACITY"), "1000000");
    assert_eq!(value(&env, "SHOPSTREAM_GATE_FLAG_UNKNOWN_DEVICE"), "true");
    let key = env["SHOPSTREAM_PSEUDONYM_KEY"]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("pseudonym key from a Secret");
    assert_eq!(key.name, "shopstream-pseudonym");
    assert_eq!(key.key, "key");
    // resources from the spec
    let res = c.resources.as_ref().expect("resources");
    assert_eq!(res.requests.as_ref().expect("requests")["cpu"].0, "100m");
    assert_eq!(res.limits.as_ref().expect("limits")["memory"].0, "512Mi");
    // config mounted and hashed
    let cm: ConfigMap = typed(&objs, "ConfigMap", "shop-config");
    let cfg: serde_json::Value =
        serde_json::from_str(&cm.data.expect("data")["pipeline.json"]).expect("json config");
    assert_eq!(cfg["kafka"]["topics"]["deadLetter"]["partitions"], 1);
    assert_eq!(cfg["training"]["privacy"]["epsilonPerRun"], 1.0);
    let annotations = spec.template.metadata.expect("pod meta").annotations.expect("ann");
    assert_eq!(annotations["shopstream.io/config-hash"].len(), 16);

    let generator: Deployment = typed(&objs, "Deployment", "shop-generator");
    let gc = &generator.spec.expect("spec").template.spec.expect("pod").containers[0];
    assert_eq!(
        gc.args.clone().expect("args"),
        ["generate", "--kafka-topic", "shop.sessions.raw", "--rate", "50", "--seed", "7"]
    );
    let svc: Service = typed(&objs, "Service", "shop-gate");
    let sel = svc.spec.expect("spec").selector.expect("selector");
    assert_eq!(sel["app.kubernetes.io/component"], "gate");
}

#[test]
fn a_config_change_changes_the_pod_template_hash() {
    let p = example();
    let hash = |p: &AnalyticsPipeline| -> String {
        let objs = render(p, &RenderInputs::default()).expect("renders");
        let d: Deployment = typed(&objs, "Deployment", "shop-sink");
        d.spec.expect("spec").template.metadata.expect("meta").annotations.expect("ann")
            ["shopstream.io/config-hash"]
            .clone()
    };
    let before = hash(&p);
    assert_eq!(before, hash(&p), "hash is deterministic");
    let mut q = p.clone();
    q.spec.kafka.topics.valid.retention_ms = 1000;
    assert_ne!(before, hash(&q));
}

#[test]
fn cronjobs_carry_schedule_threshold_and_privacy_and_suspend_on_exhausted_budget() {
    let p = example();
    let objs = render(&p, &RenderInputs::default()).expect("renders");
    let sim: CronJob = typed(&objs, "CronJob", "shop-similarity");
    let s = sim.spec.expect("spec");
    assert_eq!(s.schedule, "0 */6 * * *");
    assert_eq!(s.suspend, Some(false));
    let c = &s.job_template.spec.expect("job").template.spec.expect("pod").containers[0];
    assert_eq!(c.args.clone().expect("args"), ["similarity"]);
    assert_eq!(
        value(&env_map(c.env.as_deref().expect("env")), "SHOPSTREAM_SIMILARITY_THRESHOLD"),
        "0.5"
    );

    let train: CronJob = typed(&objs, "CronJob", "shop-train");
    let t = train.spec.expect("spec");
    assert_eq!(t.schedule, "30 2 * * *");
    assert_eq!(t.suspend, Some(false));
    assert_eq!(t.concurrency_policy.as_deref(), Some("Forbid"));
    let pod = t.job_template.spec.expect("job").template.spec.expect("pod");
    assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
    let env = env_map(pod.containers[0].env.as_deref().expect("env"));
    assert_eq!(value(&env, "SHOPSTREAM_TRAIN_MODELS"), "randomForest,boostedTrees,mlp");
    assert_eq!(value(&env, "SHOPSTREAM_PRIVACY_TOTAL_EPSILON"), "10");
    assert_eq!(value(&env, "SHOPSTREAM_PRIVACY_EPSILON_PER_RUN"), "1");
    assert_eq!(value(&env, "SHOPSTREAM_PRIVACY_DELTA"), "0.00001");
    assert_eq!(value(&env, "SHOPSTREAM_PIPELINE"), "shop");

    // A spent budget suspends training (and only training).
    let budget = registry::budget(
        Some(&doc! { "_id": "shop", "totalEpsilon": 10.0, "delta": 1e-5, "spentEpsilon": 9.5 }),
        &p.spec.offline.training.privacy,
    );
    let why = registry::exhausted(&budget, &p.spec.offline.training.privacy).expect("exhausted");
    assert!(why.contains("epsilonPerRun"), "{why}");
    let objs = render(&p, &RenderInputs { suspend_training: true }).expect("renders");
    let train: CronJob = typed(&objs, "CronJob", "shop-train");
    assert_eq!(train.spec.expect("spec").suspend, Some(true));
    let sim: CronJob = typed(&objs, "CronJob", "shop-similarity");
    assert_eq!(sim.spec.expect("spec").suspend, Some(false));
}

#[test]
fn managed_backends_become_statefulsets_with_services_and_storage() {
    let mut p = example();
    p.spec.redis = yaml("managed: { storage: { size: 2Gi, storageClassName: fast } }");
    p.spec.mongodb.backend = yaml("managed: { image: mongo:7 }");
    let objs = render(&p, &RenderInputs::default()).expect("renders");
    let redis: StatefulSet = typed(&objs, "StatefulSet", "shop-redis");
    let rs = redis.spec.expect("spec");
    assert_eq!(rs.service_name.as_deref(), Some("shop-redis"));
    let claims = rs.volume_claim_templates.expect("claims");
    let cs = claims[0].spec.clone().expect("pvc spec");
    assert_eq!(cs.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(cs.resources.expect("res").requests.expect("req")["storage"].0, "2Gi");
    let mongo: StatefulSet = typed(&objs, "StatefulSet", "shop-mongodb");
    let mpod = mongo.spec.expect("spec").template.spec.expect("pod");
    assert_eq!(mpod.containers[0].image.as_deref(), Some("mongo:7"));
    assert!(mpod.volumes.expect("emptyDir without storage")[0].empty_dir.is_some());
    let svc: Service = typed(&objs, "Service", "shop-mongodb");
    assert_eq!(svc.spec.expect("spec").ports.expect("ports")[0].port, 27017);
    // workloads now point at the managed services
    let sink: Deployment = typed(&objs, "Deployment", "shop-sink");
    let env = env_map(
        sink.spec.expect("spec").template.spec.expect("pod").containers[0]
            .env
            .as_deref()
            .expect("env"),
    );
    assert_eq!(value(&env, "SHOPSTREAM_REDIS_URL"), "redis://shop-redis.shop-ns.svc:6379");
    assert_eq!(
        value(&env, "SHOPSTREAM_MONGO_URL"),
        "mongodb://shop-mongodb.shop-ns.svc:27017/?directConnection=true"
    );
    let kibana: StatefulSet = typed(&objs, "StatefulSet", "shop-kibana");
    let kenv = env_map(
        kibana.spec.expect("spec").template.spec.expect("pod").containers[0]
            .env
            .as_deref()
            .expect("env"),
    );
    assert_eq!(value(&kenv, "ELASTICSEARCH_HOSTS"), "http://127.0.0.1:19200");
}

#[test]
fn external_credentials_become_secret_env() {
    let mut p = example();
    p.spec.elasticsearch =
        yaml("external: { url: 'https://es:9200', credentialsSecret: { name: es-creds } }");
    p.spec.kafka.credentials_secret =
        Some(shopstream_operator::crd::SecretRef { name: "kafka-creds".into() });
    let objs = render(&p, &RenderInputs::default()).expect("renders");
    let proc_: Deployment = typed(&objs, "Deployment", "shop-processor");
    let env = env_map(
        proc_.spec.expect("spec").template.spec.expect("pod").containers[0]
            .env
            .as_deref()
            .expect("env"),
    );
    for (var, secret, key) in [
        ("SHOPSTREAM_ES_USERNAME", "es-creds", "username"),
        ("SHOPSTREAM_ES_PASSWORD", "es-creds", "password"),
        ("SHOPSTREAM_KAFKA_USERNAME", "kafka-creds", "username"),
        ("SHOPSTREAM_KAFKA_PASSWORD", "kafka-creds", "password"),
    ] {
        let r = env[var].value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).expect(var);
        assert_eq!((r.name.as_str(), r.key.as_str()), (secret, key));
    }
    let uses = validate::referenced_secrets(&p.spec);
    let fields: Vec<&str> = uses.iter().map(|u| u.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.kafka.credentialsSecret",
            "spec.elasticsearch.external.credentialsSecret",
            "spec.pseudonymisation.keySecret"
        ]
    );
}

#[test]
fn spec_checks_name_the_field() {
    let mut p = example();
    assert!(validate::check_spec(&p.spec).is_empty());
    p.spec.offline.training.privacy.epsilon_per_run = 11.0;
    p.spec.kafka.topics.dead_letter.name = p.spec.kafka.topics.raw.name.clone();
    p.spec.offline.training.models = vec![ModelKind::Mlp, ModelKind::Mlp];
    let problems = validate::check_spec(&p.spec);
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.offline.training.privacy.epsilonPerRun",
            "spec.kafka.topics.deadLetter.name",
            "spec.offline.training.models[1]"
        ]
    );
    assert!(problems[0].message.contains("exceeds totalEpsilon 10"), "{}", problems[0]);
}

#[test]
fn conditions_keep_transition_time_unless_status_changes() {
    let first = conditions::merge(
        &[],
        &[
            Observed::yes(conditions::TOPICS_READY, "TopicsReady", "ok"),
            Observed::no(conditions::WORKLOADS_READY, "ReplicasNotReady", "gate 0/1"),
        ],
        Some(1),
        "2026-01-01T00:00:00Z",
    );
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|c| c.last_transition_time == "2026-01-01T00:00:00Z"));
    // same statuses, new message and generation: time kept
    let second = conditions::merge(
        &first,
        &[
            Observed::yes(conditions::TOPICS_READY, "TopicsReady", "still ok"),
            Observed::no(conditions::WORKLOADS_READY, "ReplicasNotReady", "gate 0/2"),
        ],
        Some(2),
        "2026-01-01T00:05:00Z",
    );
    let get = |cs: &[shopstream_operator::crd::Condition], t: &str| {
        cs.iter().find(|c| c.type_ == t).cloned().expect("condition")
    };
    assert_eq!(get(&second, "TopicsReady").last_transition_time, "2026-01-01T00:00:00Z");
    assert_eq!(get(&second, "TopicsReady").message, "still ok");
    assert_eq!(get(&second, "WorkloadsReady").observed_generation, Some(2));
    assert!(conditions::transitions(&first, &second).is_empty());
    // status flips: time changes, transition reported
    let third = conditions::merge(
        &second,
        &[Observed::yes(conditions::WORKLOADS_READY, "AllReplicasReady", "ok")],
        Some(2),
        "2026-01-01T00:09:00Z",
    );
    assert_eq!(get(&third, "WorkloadsReady").last_transition_time, "2026-01-01T00:09:00Z");
    assert_eq!(get(&third, "TopicsReady").last_transition_time, "2026-01-01T00:00:00Z");
    let t = conditions::transitions(&second, &third);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].type_, "WorkloadsReady");
}

#[test]
fn ready_summarises_blocking_conditions_but_not_the_budget() {
    let parts = [
        Observed::yes(conditions::TOPICS_READY, "TopicsReady", "ok"),
        Observed::yes(conditions::PRIVACY_BUDGET_EXHAUSTED, "BudgetExhausted", "spent"),
    ];
    assert!(conditions::ready(&parts).status);
    let parts = [
        Observed::yes(conditions::TOPICS_READY, "TopicsReady", "ok"),
        Observed::no(conditions::OFFLINE_JOBS_READY, "CronJobUnsupported", "no batch/v1"),
    ];
    let r = conditions::ready(&parts);
    assert!(!r.status);
    assert_eq!(r.reason, "OfflineJobsReadyFalse");
    assert!(r.message.contains("no batch/v1"));
}

#[test]
fn registry_shows_the_latest_version_per_model() {
    let t = DateTime::from_millis(1_780_000_000_000);
    let docs = vec![
        doc! { "name": "randomForest", "version": 1_i64, "trainedAt": t, "metrics": { "rocAuc": 0.7, "accuracy": 0.6, "f1": 0.5, "logLoss": 0.6 }, "privacy": { "mechanism": "dp-rf", "epsilon": 1.0, "delta": 1e-5 } },
        doc! { "name": "randomForest", "version": 3_i64, "trainedAt": t, "metrics": { "rocAuc": 0.8 }, "privacy": { "mechanism": "dp-rf", "epsilon": 0.5, "delta": 1e-5 } },
        doc! { "name": "randomForest", "version": 2_i32, "trainedAt": t, "metrics": { "rocAuc": 0.75 }, "privacy": { "mechanism": "dp-rf", "epsilon": 1.0, "delta": null } },
        doc! { "name": "mlp", "version": 1_i64, "trainedAt": t, "metrics": { "rocAuc": 0.77 }, "privacy": { "mechanism": "none", "epsilon": null, "delta": null } },
        doc! { "version": 9_i64 },
    ];
    let m = registry::latest_models(&docs);
    assert_eq!(m.len(), 2);
    assert_eq!(
        (m[0].name.as_str(), m[0].version, m[0].roc_auc, m[0].epsilon),
        ("mlp", 1, Some(0.77), None)
    );
    assert_eq!(
        (m[1].name.as_str(), m[1].version, m[1].roc_auc, m[1].epsilon),
        ("randomForest", 3, Some(0.8), Some(0.5))
    );
    assert_eq!(m[1].trained_at, "2026-05-28T20:26:40Z");
    let p = example();
    let fresh = registry::budget(None, &p.spec.offline.training.privacy);
    assert_eq!(
        (fresh.total_epsilon, fresh.spent_epsilon, fresh.remaining_epsilon),
        (10.0, 0.0, 10.0)
    );
    assert!(registry::exhausted(&fresh, &p.spec.offline.training.privacy).is_none());
}

#[test]
fn example_parses_with_defaults() {
    let p = example();
    assert!(matches!(p.spec.kibana, Some(BackendSpec::Managed(_))));
    assert_eq!(p.spec.mongodb.database, "shopstream");
    let y: AnalyticsPipeline = yaml(&EXAMPLE.replace("partitions: 2, ", ""));
    assert_eq!(y.spec.kafka.topics.suspicious.partitions, 3, "default partitions");
}

#[test]
fn checked_in_crd_is_up_to_date() {
    let generated = shopstream_operator::crd_yaml().expect("crd yaml");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/analyticspipeline.yaml");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "crds/analyticspipeline.yaml is stale: run `cargo run -p shopstream-operator -- crd > crds/analyticspipeline.yaml`"
    );
    let helm = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../helm/shopstream-operator/crds/analyticspipeline.yaml"
    );
    if let Ok(h) = std::fs::read_to_string(helm) {
        assert!(
            h == generated,
            "helm/shopstream-operator/crds/analyticspipeline.yaml is stale: copy crds/analyticspipeline.yaml"
        );
    }
    // 1.20 compatibility: no CEL rules
    assert!(!generated.contains("x-kubernetes-validations"));
    assert!(generated.contains("apiVersion: apiextensions.k8s.io/v1"));
}

/// Validates every rendered object against the Kubernetes 1.30 schemas, offline.
#[test]
fn rendered_objects_validate_against_kubernetes_1_30() {
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/kubernetes-validate");
    assert!(
        std::path::Path::new(tool).exists(),
        "{tool} is missing: install the oracles venv (`.venv/bin/pip install kubernetes-validate`, see dev/requirements-oracles.txt)"
    );
    let mut p = example();
    p.spec.redis = yaml("managed: { storage: { size: 2Gi } }");
    p.spec.mongodb.backend = yaml("managed: {}");
    p.spec.elasticsearch = yaml("managed: {}");
    for inputs in [RenderInputs::default(), RenderInputs { suspend_training: true }] {
        let objs = render(&p, &inputs).expect("renders");
        let mut yaml = String::new();
        for d in &objs {
            yaml.push_str("---\n");
            yaml.push_str(&serde_norway::to_string(&d.object).expect("yaml"));
        }
        let mut child = Command::new(tool)
            .args(["-k", "1.30.0", "--strict", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubernetes-validate");
        child.stdin.take().expect("stdin").write_all(yaml.as_bytes()).expect("write");
        let out = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "kubernetes-validate failed:\n{stdout}\n{stderr}");
        // one INFO line per valid object
        let valid = stdout.lines().filter(|l| l.contains("passed for resource")).count();
        assert_eq!(valid, objs.len(), "not every object validated:\n{stdout}\n{stderr}");
    }
}

/// Each streaming workload reads its own metrics-address variable (`shopstream gate --help`
/// etc.); all of them must listen on the port the metrics Service scrapes.
#[test]
fn every_workload_listens_for_metrics_where_its_service_scrapes() {
    let p = example();
    let objs = render(&p, &RenderInputs::default()).expect("renders");
    for (deployment, variable) in [
        ("shop-gate", "SHOPSTREAM_GATE_METRICS_ADDR"),
        ("shop-processor", "SHOPSTREAM_PROCESSOR_METRICS_ADDR"),
        ("shop-sink", "SHOPSTREAM_SINK_METRICS_ADDR"),
    ] {
        let d: Deployment = typed(&objs, "Deployment", deployment);
        let pod = d.spec.and_then(|s| s.template.spec).expect("pod");
        let env = env_map(pod.containers[0].env.as_deref().expect("env"));
        assert_eq!(
            value(&env, variable),
            format!("0.0.0.0:{}", shopstream_operator::render::METRICS_PORT),
            "{deployment}"
        );
    }
}
