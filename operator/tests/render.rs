//! Pure tests of the renderer, the spec checks, the conditions and the registry reading, plus
//! the checked-in CRD and offline schema validation of the rendered objects (1.30 schemas).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{EnvVar, Service};
use mongodb::bson::{DateTime, doc};
use shopstream_operator::conditions::{self, Observed};
use shopstream_operator::crd::{AnalyticsPipeline, BackendSpec, ModelKind};
use shopstream_operator::registry;
use shopstream_operator::render::{self, CronJobApi, Desired, RenderInputs, render};
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
        "ServiceAccount/shop-workload",
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
    // no mounted configuration (the environment is the one channel) and no unused RBAC
    assert!(!keys.iter().any(|k| k.starts_with("ConfigMap/") || k.starts_with("Role")));
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
        // no workload or managed backend talks to the Kubernetes API: no token is mounted
        let pod = match types.kind.as_str() {
            "Deployment" | "StatefulSet" => Some(&o.data["spec"]["template"]["spec"]),
            "CronJob" => Some(&o.data["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
            "ServiceAccount" => Some(&o.data),
            _ => None,
        };
        if let Some(pod) = pod {
            assert_eq!(pod["automountServiceAccountToken"], false, "{}", d.key());
        }
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
    assert_eq!(c.image.as_deref(), Some("shopstream.local/shopstream:0.1.0"));
    assert_eq!(c.args.as_deref(), Some(&["gate".to_string()][..]));
    let env = env_map(c.env.as_deref().expect("env"));
    assert_eq!(value(&env, "SHOPSTREAM_KAFKA"), "127.0.0.1:19092");
    assert_eq!(value(&env, "SHOPSTREAM_TOPIC_RAW"), "shop.sessions.raw");
    assert_eq!(value(&env, "SHOPSTREAM_TOPIC_VALID"), "shop.sessions.valid");
    assert_eq!(value(&env, "SHOPSTREAM_TOPIC_SUSPICIOUS"), "shop.sessions.suspicious");
    assert_eq!(value(&env, "SHOPSTREAM_TOPIC_DEAD_LETTER"), "shop.sessions.dead-letter");
    assert_eq!(value(&env, "SHOPSTREAM_REDIS_URL"), "redis://127.0.0.1:16379");
    // per-pipeline names, derived from namespace + name
    assert_eq!(value(&env, "SHOPSTREAM_CONSUMER_GROUP"), "shopstream.shop-ns.shop.gate");
    assert_eq!(value(&env, "SHOPSTREAM_GATE_REDIS_PREFIX"), "shopstream:shop-ns:shop:gate");
    assert_eq!(value(&env, "SHOPSTREAM_GATE_BLOOM_CAPACITY"), "1000000");
    assert_eq!(value(&env, "SHOPSTREAM_GATE_FLAG_UNKNOWN_DEVICE"), "true");
    // each container gets only what its workload reads: the gate talks to no MongoDB,
    // Elasticsearch or Kibana and never sees the pseudonym key
    for absent in [
        "SHOPSTREAM_MONGO_URL",
        "SHOPSTREAM_ES_URL",
        "SHOPSTREAM_KIBANA_URL",
        "SHOPSTREAM_PSEUDONYM_KEY",
        "SHOPSTREAM_PSEUDONYM_KEY_FILE",
        "SHOPSTREAM_PIPELINE_CONFIG",
    ] {
        assert!(!env.contains_key(absent), "gate has {absent}");
    }
    assert!(pod.volumes.is_none() && c.volume_mounts.is_none(), "nothing mounted");
    let sink: Deployment = typed(&objs, "Deployment", "shop-sink");
    let sink_pod = sink.spec.expect("spec").template.spec.expect("pod");
    let senv = env_map(sink_pod.containers[0].env.as_deref().expect("env"));
    assert_eq!(
        value(&senv, "SHOPSTREAM_MONGO_URL"),
        "mongodb://127.0.0.1:27117/?directConnection=true"
    );
    assert_eq!(value(&senv, "SHOPSTREAM_MONGO_DB"), "shopstream");
    assert_eq!(value(&senv, "SHOPSTREAM_CONSUMER_GROUP"), "shopstream.shop-ns.shop.sink");
    let processor: Deployment = typed(&objs, "Deployment", "shop-processor");
    let penv = env_map(
        processor.spec.expect("spec").template.spec.expect("pod").containers[0]
            .env
            .as_deref()
            .expect("env"),
    );
    assert_eq!(value(&penv, "SHOPSTREAM_ES_URL"), "http://127.0.0.1:19200");
    assert_eq!(value(&penv, "SHOPSTREAM_ES_INDEX_PREFIX"), "shopstream-shop-ns-shop-");
    assert_eq!(
        value(&penv, "SHOPSTREAM_TOPIC_PROCESSOR_DEAD_LETTER"),
        "shop.sessions.dead-letter.processor"
    );
    // The pseudonym key is a file from the Secret, mounted read-only in the sink alone.
    assert_eq!(
        value(&senv, "SHOPSTREAM_PSEUDONYM_KEY_FILE"),
        "/var/run/secrets/shopstream/pseudonym/key"
    );
    assert!(!senv.contains_key("SHOPSTREAM_PSEUDONYM_KEY"));
    let mounts = sink_pod.containers[0].volume_mounts.clone().expect("sink mounts");
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].mount_path, "/var/run/secrets/shopstream");
    assert_eq!(mounts[0].read_only, Some(true));
    let volumes = sink_pod.volumes.clone().expect("sink volumes");
    let projected = volumes[0].projected.clone().expect("projected");
    assert_eq!(projected.default_mode, Some(0o440));
    let sources = projected.sources.expect("sources");
    let secret = sources[0].secret.clone().expect("a Secret source");
    assert_eq!(secret.name, "shopstream-pseudonym");
    let items = secret.items.expect("items");
    assert_eq!((items[0].key.as_str(), items[0].path.as_str()), ("key", "pseudonym/key"));
    // The pod runs as the image's user; the files' group is the pod's fsGroup.
    let sc = sink_pod.security_context.clone().expect("pod security context");
    assert_eq!(
        (sc.run_as_user, sc.fs_group, sc.run_as_non_root),
        (Some(65532), Some(65532), Some(true))
    );
    // resources from the spec
    let res = c.resources.as_ref().expect("resources");
    assert_eq!(res.requests.as_ref().expect("requests")["cpu"].0, "100m");
    assert_eq!(res.limits.as_ref().expect("limits")["memory"].0, "512Mi");

    let generator: Deployment = typed(&objs, "Deployment", "shop-generator");
    let gc = &generator.spec.expect("spec").template.spec.expect("pod").containers[0];
    assert_eq!(gc.args.clone().expect("args"), ["generate"]);
    let genv = env_map(gc.env.as_deref().expect("env"));
    assert_eq!(value(&genv, "SHOPSTREAM_TOPIC_RAW"), "shop.sessions.raw");
    assert_eq!(value(&genv, "SHOPSTREAM_RATE"), "50");
    assert_eq!(value(&genv, "SHOPSTREAM_SEED"), "7");
    let svc: Service = typed(&objs, "Service", "shop-gate");
    let sel = svc.spec.expect("spec").selector.expect("selector");
    assert_eq!(sel["app.kubernetes.io/component"], "gate");
}

/// Two pipelines of the same name in two namespaces, on the same backends, share no consumer
/// group, Redis prefix, index, database or budget key.
#[test]
fn pipelines_in_two_namespaces_share_no_backend_names() {
    let a = example();
    let mut b = example();
    b.metadata.namespace = Some("other-ns".into());
    b.spec.mongodb.database = None;
    let env_of = |p: &AnalyticsPipeline| -> BTreeMap<String, String> {
        let mut all = BTreeMap::new();
        for d in render(p, &RenderInputs::default()).expect("renders") {
            let v = serde_json::to_value(&d.object).expect("json");
            let containers = v
                .pointer("/spec/template/spec/containers")
                .or_else(|| v.pointer("/spec/jobTemplate/spec/template/spec/containers"));
            for c in containers.and_then(|c| c.as_array()).into_iter().flatten() {
                for e in c["env"].as_array().into_iter().flatten() {
                    if let Some(val) = e["value"].as_str() {
                        let name = e["name"].as_str().unwrap_or_default();
                        all.insert(format!("{}/{name}", d.key()), val.to_string());
                    }
                }
            }
        }
        all
    };
    let (ea, eb) = (env_of(&a), env_of(&b));
    for var in [
        "SHOPSTREAM_CONSUMER_GROUP",
        "SHOPSTREAM_GATE_REDIS_PREFIX",
        "SHOPSTREAM_ES_INDEX_PREFIX",
        "SHOPSTREAM_SIMILARITY_INDEX",
        "SHOPSTREAM_PIPELINE",
    ] {
        let va: Vec<&String> =
            ea.iter().filter(|(k, _)| k.ends_with(var)).map(|(_, v)| v).collect();
        let vb: Vec<&String> =
            eb.iter().filter(|(k, _)| k.ends_with(var)).map(|(_, v)| v).collect();
        assert!(!va.is_empty(), "{var} rendered");
        assert!(va.iter().all(|v| !vb.contains(v)), "{var}: {va:?} vs {vb:?}");
    }
    // without a database in the spec, each pipeline gets its own
    assert_eq!(b.database(), "shopstream_other-ns_shop");
    assert_eq!(ea["Deployment/shop-sink/SHOPSTREAM_MONGO_DB"], "shopstream");
    assert_eq!(eb["Deployment/shop-sink/SHOPSTREAM_MONGO_DB"], "shopstream_other-ns_shop");
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
    assert_eq!(value(&env, "SHOPSTREAM_PIPELINE"), "shop-ns/shop");
    // the resource promises private models: the plain ones are never trained in the cluster
    assert_eq!(value(&env, "SHOPSTREAM_TRAIN_PRIVACY"), "private");

    // A spent budget suspends training (and only training).
    let ledger = shopstream_privacy::BudgetDoc {
        id: "shop-ns/shop".into(),
        total_epsilon: 10.0,
        delta: 1e-5,
        spent_epsilon: 9.5,
        spent_delta: 9.5e-6,
        entries: vec![],
    };
    let budget = registry::budget(Some(&ledger), &p.spec.offline.training.privacy);
    let why = registry::exhausted(&budget, &p.spec.offline.training.privacy).expect("exhausted");
    assert!(why.contains("epsilonPerRun"), "{why}");
    let objs = render(&p, &RenderInputs { suspend_training: true, ..RenderInputs::default() })
        .expect("renders");
    let train: CronJob = typed(&objs, "CronJob", "shop-train");
    assert_eq!(train.spec.expect("spec").suspend, Some(true));
    let sim: CronJob = typed(&objs, "CronJob", "shop-similarity");
    assert_eq!(sim.spec.expect("spec").suspend, Some(false));
}

/// Kubernetes 1.20-1.24 serve CronJobs as `batch/v1beta1`; servers with neither get none.
#[test]
fn cronjobs_follow_the_api_version_the_server_serves() {
    let p = example();
    let v1 = render(&p, &RenderInputs::default()).expect("renders");
    let beta = render(
        &p,
        &RenderInputs { cronjob_api: Some(CronJobApi::V1Beta1), ..RenderInputs::default() },
    )
    .expect("renders");
    let none = render(&p, &RenderInputs { cronjob_api: None, ..RenderInputs::default() })
        .expect("renders");
    let crons = |objs: &[Desired]| -> Vec<(String, String, String)> {
        objs.iter()
            .filter(|d| d.resource.kind == "CronJob")
            .map(|d| {
                (
                    d.object.types.as_ref().expect("types").api_version.clone(),
                    d.resource.api_version.clone(),
                    d.resource.version.clone(),
                )
            })
            .collect()
    };
    assert_eq!(crons(&v1).len(), 2);
    assert!(crons(&v1).iter().all(|c| c == &("batch/v1".into(), "batch/v1".into(), "v1".into())));
    assert_eq!(crons(&beta).len(), 2);
    assert!(
        crons(&beta)
            .iter()
            .all(|c| c == &("batch/v1beta1".into(), "batch/v1beta1".into(), "v1beta1".into()))
    );
    assert!(crons(&none).is_empty());
    assert_eq!(v1.len(), none.len() + 2, "nothing else differs");
    // the same job either way
    let body = |objs: &[Desired]| {
        objs.iter()
            .filter(|d| d.resource.kind == "CronJob")
            .map(|d| d.object.data.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(body(&v1), body(&beta));
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
    let env_of = |name: &str| {
        let d: Deployment = typed(&objs, "Deployment", name);
        env_map(
            d.spec.expect("spec").template.spec.expect("pod").containers[0]
                .env
                .as_deref()
                .expect("env"),
        )
    };
    assert_eq!(
        value(&env_of("shop-gate"), "SHOPSTREAM_REDIS_URL"),
        "redis://shop-redis.shop-ns.svc:6379"
    );
    let env = env_of("shop-sink");
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
fn kafka_credentials_become_files_and_backend_credentials_are_accepted_over_tls() {
    let mut p = example();
    p.spec.kafka.credentials_secret =
        Some(shopstream_operator::crd::SecretRef { name: "kafka-creds".into() });
    p.spec.kafka.tls = Some(Default::default());
    let objs = render(&p, &RenderInputs::default()).expect("renders");
    let proc_: Deployment = typed(&objs, "Deployment", "shop-processor");
    let env = env_map(
        proc_.spec.expect("spec").template.spec.expect("pod").containers[0]
            .env
            .as_deref()
            .expect("env"),
    );
    assert_eq!(value(&env, "SHOPSTREAM_KAFKA_SECURITY_PROTOCOL"), "sasl-ssl");
    assert_eq!(value(&env, "SHOPSTREAM_KAFKA_SASL_MECHANISM"), "SCRAM-SHA-512");
    assert_eq!(
        value(&env, "SHOPSTREAM_KAFKA_USERNAME_FILE"),
        "/var/run/secrets/shopstream/kafka/username"
    );
    assert_eq!(
        value(&env, "SHOPSTREAM_KAFKA_PASSWORD_FILE"),
        "/var/run/secrets/shopstream/kafka/password"
    );
    assert!(!env.contains_key("SHOPSTREAM_KAFKA_USERNAME"));
    assert!(validate::check_spec(&p.spec).is_empty());

    p.spec.elasticsearch =
        yaml("external: { url: 'https://es:9200', credentialsSecret: { name: es-creds } }");
    assert_eq!(validate::check_spec(&p.spec), vec![]);
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
    // ... but not in clear.
    p.spec.elasticsearch =
        yaml("external: { url: 'http://es:9200', credentialsSecret: { name: es-creds } }");
    let problems = validate::check_spec(&p.spec);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "spec.elasticsearch.external.credentialsSecret");
    assert!(problems[0].message.contains("in clear"), "{}", problems[0]);
}

/// A pipeline whose Kafka, Redis, MongoDB and Elasticsearch all use TLS with a CA and
/// credentials (Kafka also a client certificate); `es_api_key` swaps Elasticsearch's
/// credentials for an API key.
fn secure(es_api_key: bool) -> AnalyticsPipeline {
    let mut p = example();
    p.spec.kafka = yaml(
        "bootstrapServers: 'kafka:9093'
credentialsSecret: { name: kafka-creds }
saslMechanism: SCRAM-SHA-256
tls: { caSecret: { name: kafka-ca }, clientCertSecret: { name: kafka-client } }
topics:
  raw: { name: shop.sessions.raw }
  valid: { name: shop.sessions.valid }
  suspicious: { name: shop.sessions.suspicious }
  deadLetter: { name: shop.sessions.dead-letter }",
    );
    p.spec.redis = yaml(
        "external: { url: 'rediss://redis:6380', credentialsSecret: { name: redis-creds }, \
         tls: { caSecret: { name: redis-ca } } }",
    );
    p.spec.mongodb.backend = yaml(
        "external: { url: 'mongodb://mongo:27017/?replicaSet=rs0', \
         credentialsSecret: { name: mongo-creds }, tls: { caSecret: { name: mongo-ca, key: ca.pem } } }",
    );
    p.spec.elasticsearch = yaml(if es_api_key {
        "external: { url: 'https://es:9200', apiKeySecret: { name: es-key, key: apiKey }, \
         tls: { caSecret: { name: es-ca } } }"
    } else {
        "external: { url: 'https://es:9200', credentialsSecret: { name: es-creds }, \
         tls: { caSecret: { name: es-ca } } }"
    });
    p
}

/// Every string in a JSON value.
fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

/// Every Secret reaches only the containers whose workload talks to its backend, only as a
/// file the contract names, and nothing else of it (no value, no `secretKeyRef`, no URL with
/// credentials) appears in any rendered object.
#[test]
fn secrets_reach_only_their_containers_and_only_as_files() {
    use shopstream_contract::{Common, PipelineId, SecretFile};
    use shopstream_operator::render::workload_configs;
    for es_api_key in [false, true] {
        let p = secure(es_api_key);
        assert_eq!(validate::check_spec(&p.spec), vec![], "the secure pipeline is valid");
        let objs = render(&p, &RenderInputs::default()).expect("renders");
        let common = Common { pipeline: PipelineId::new("shop-ns", "shop"), log: "info".into() };
        let configs = workload_configs(&p);
        let mut containers_seen = 0;
        for d in &objs {
            let v = serde_json::to_value(&d.object).expect("json");
            // Nothing anywhere refers to a Secret's value or carries credentials in a URL.
            let mut all = Vec::new();
            strings(&v, &mut all);
            for s in &all {
                assert!(!shopstream_clients::has_userinfo(s), "{}: {s}", d.key());
                assert!(s != "secretKeyRef" && s != "envFrom", "{}: {s}", d.key());
            }
            let pod = v
                .pointer("/spec/template/spec")
                .or_else(|| v.pointer("/spec/jobTemplate/spec/template/spec"));
            let Some(pod) = pod else { continue };
            let pod: k8s_openapi::api::core::v1::PodSpec =
                serde_json::from_value(pod.clone()).expect("pod spec");
            if d.resource.kind == "StatefulSet" {
                assert!(pod.volumes.iter().flatten().all(|v| v.projected.is_none()), "{}", d.key());
                continue;
            }
            assert_eq!(pod.containers.len(), 1);
            let c = &pod.containers[0];
            containers_seen += 1;
            let config = configs
                .iter()
                .find(|w| w.workload().component() == c.name)
                .unwrap_or_else(|| panic!("{}: no config for container {}", d.key(), c.name));
            let mut want: Vec<SecretFile> = config.secret_files(&common);
            want.sort();
            // What the container's mounts put where.
            let mut got = Vec::new();
            for m in c.volume_mounts.iter().flatten() {
                assert_eq!(m.read_only, Some(true), "{}", d.key());
                let vol = pod
                    .volumes
                    .iter()
                    .flatten()
                    .find(|v| v.name == m.name)
                    .unwrap_or_else(|| panic!("{}: mount of a missing volume", d.key()));
                let projected = vol.projected.clone().expect("only projected Secret volumes");
                assert_eq!(projected.default_mode, Some(0o440), "{}", d.key());
                for src in projected.sources.into_iter().flatten() {
                    let secret = src.secret.expect("only Secret sources");
                    assert_eq!(secret.optional, Some(false));
                    for item in secret.items.expect("explicit items, never the whole Secret") {
                        got.push(SecretFile {
                            secret: secret.name.clone(),
                            key: item.key,
                            path: format!("{}/{}", m.mount_path, item.path),
                        });
                    }
                }
            }
            got.sort();
            assert_eq!(got, want, "{}: mounts differ from the contract's secret_files", d.key());
            // Every *_FILE variable names a mounted file.
            for e in c.env.iter().flatten() {
                assert!(e.value_from.as_ref().is_none_or(|f| f.secret_key_ref.is_none()));
                if e.name.ends_with("_FILE") {
                    let path = e.value.clone().expect("a path");
                    assert!(
                        got.iter().any(|f| f.path == path),
                        "{}: {} -> {path}",
                        d.key(),
                        e.name
                    );
                }
            }
            // Which Secrets each workload gets.
            let mut secrets: Vec<&str> = got.iter().map(|f| f.secret.as_str()).collect();
            secrets.sort_unstable();
            secrets.dedup();
            let kafka = ["kafka-ca", "kafka-client", "kafka-creds"];
            let es: &[&str] =
                if es_api_key { &["es-ca", "es-key"] } else { &["es-ca", "es-creds"] };
            let mongo = ["mongo-ca", "mongo-creds"];
            let mut expected: Vec<&str> = match c.name.as_str() {
                "generator" => kafka.to_vec(),
                "gate" => [&kafka[..], &["redis-ca", "redis-creds"]].concat(),
                "processor" => [&kafka[..], es].concat(),
                "sink" => [&kafka[..], &mongo[..], &["shopstream-pseudonym"]].concat(),
                "similarity" => [es, &mongo[..]].concat(),
                "train" => mongo.to_vec(),
                other => panic!("unexpected container {other}"),
            };
            expected.sort_unstable();
            assert_eq!(secrets, expected, "{} ({})", d.key(), c.name);
            let sc = pod.security_context.clone().expect("security context");
            assert_eq!(
                (sc.run_as_user, sc.run_as_group, sc.fs_group),
                (Some(65532), Some(65532), Some(65532))
            );
        }
        assert_eq!(containers_seen, 6, "generator, gate, processor, sink, similarity, train");
        // The protocol follows the spec; the API key replaces the ES credentials.
        let processor: Deployment = typed(&objs, "Deployment", "shop-processor");
        let penv = env_map(
            processor.spec.expect("spec").template.spec.expect("pod").containers[0]
                .env
                .as_deref()
                .expect("env"),
        );
        assert_eq!(value(&penv, "SHOPSTREAM_KAFKA_SECURITY_PROTOCOL"), "sasl-ssl");
        assert_eq!(value(&penv, "SHOPSTREAM_KAFKA_SASL_MECHANISM"), "SCRAM-SHA-256");
        assert_eq!(
            value(&penv, "SHOPSTREAM_KAFKA_CERT_FILE"),
            "/var/run/secrets/shopstream/kafka/tls.crt"
        );
        assert_eq!(penv.contains_key("SHOPSTREAM_ES_API_KEY_FILE"), es_api_key);
        assert_eq!(penv.contains_key("SHOPSTREAM_ES_USERNAME_FILE"), !es_api_key);
        assert!(!penv.contains_key("SHOPSTREAM_ES_INSECURE_SKIP_VERIFY"));
    }
}

/// TLS without credentials is `ssl`; insecureSkipVerify reaches the workloads as the flag.
#[test]
fn kafka_tls_alone_is_ssl_and_skip_verify_is_rendered() {
    let mut p = example();
    p.spec.kafka.tls = Some(yaml("{ insecureSkipVerify: true }"));
    assert!(validate::check_spec(&p.spec).is_empty());
    assert_eq!(validate::warnings(&p.spec).len(), 1);
    let objs = render(&p, &RenderInputs::default()).expect("renders");
    let gate: Deployment = typed(&objs, "Deployment", "shop-gate");
    let env = env_map(
        gate.spec.expect("spec").template.spec.expect("pod").containers[0]
            .env
            .as_deref()
            .expect("env"),
    );
    assert_eq!(value(&env, "SHOPSTREAM_KAFKA_SECURITY_PROTOCOL"), "ssl");
    assert_eq!(value(&env, "SHOPSTREAM_KAFKA_INSECURE_SKIP_VERIFY"), "true");
    assert!(!env.contains_key("SHOPSTREAM_KAFKA_SASL_MECHANISM"));
    assert!(!env.contains_key("SHOPSTREAM_KAFKA_USERNAME_FILE"));
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
fn first_conditions_publish_events_only_when_they_need_attention() {
    let first = conditions::merge(
        &[],
        &[
            Observed::yes(conditions::TOPICS_READY, "TopicsReady", "ok"),
            Observed::no(conditions::WORKLOADS_READY, "ReplicasNotReady", "gate 0/2"),
            Observed::yes(conditions::PRIVACY_BUDGET_EXHAUSTED, "BudgetExhausted", "spent"),
            Observed::no(conditions::SPEC_VALID, "SecretUnusable", "no Secret"),
        ],
        Some(1),
        "2026-01-01T00:00:00Z",
    );
    let mut types: Vec<&str> =
        conditions::transitions(&[], &first).iter().map(|c| c.type_.as_str()).collect();
    types.sort();
    assert_eq!(types, ["PrivacyBudgetExhausted", "SpecValid"]);
    // Later flips of the quiet ones are events.
    let second = conditions::merge(
        &first,
        &[Observed::yes(conditions::WORKLOADS_READY, "AllReplicasReady", "ok")],
        Some(1),
        "2026-01-01T00:01:00Z",
    );
    let t = conditions::transitions(&first, &second);
    assert_eq!(t.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), ["WorkloadsReady"]);
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
    let m = |auc: f64| doc! { "rocAuc": auc, "accuracy": 0.6, "f1": 0.5, "logLoss": 0.6 };
    let docs = vec![
        doc! { "name": "randomForest", "version": 1_i64, "trainedAt": t, "metrics": m(0.7), "privacy": { "mechanism": "dp-rf", "epsilon": 1.0, "delta": 1e-5 } },
        doc! { "name": "randomForest", "version": 3_i64, "trainedAt": t, "metrics": m(0.8), "privacy": { "mechanism": "dp-rf", "epsilon": 0.5, "delta": 1e-5 } },
        doc! { "name": "randomForest", "version": 2_i32, "trainedAt": t, "metrics": m(0.75), "privacy": { "mechanism": "dp-rf", "epsilon": 1.0, "delta": null } },
        doc! { "name": "mlp", "version": 1_i64, "trainedAt": t, "metrics": m(0.77), "privacy": { "mechanism": "none", "epsilon": null, "delta": null } },
        // another shape: skipped, not fatal
        doc! { "name": "randomForest", "version": 9_i64 },
        doc! { "version": 9_i64 },
    ];
    let docs = registry::summaries(docs);
    assert_eq!(docs.len(), 4);
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
    assert_eq!(p.spec.mongodb.database.as_deref(), Some("shopstream"));
    assert_eq!(
        p.spec.kafka.topics.processor_dead_letter().name,
        "shop.sessions.dead-letter.processor"
    );
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
    for (p, inputs) in [
        (p.clone(), RenderInputs::default()),
        (p, RenderInputs { suspend_training: true, ..RenderInputs::default() }),
        // projected Secret volumes, security contexts
        (secure(false), RenderInputs::default()),
    ] {
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

/// Every streaming workload reads the same metrics-address variable and must listen on the
/// port its Service scrapes.
#[test]
fn every_workload_listens_for_metrics_where_its_service_scrapes() {
    let p = example();
    let objs = render(&p, &RenderInputs::default()).expect("renders");
    for deployment in ["shop-generator", "shop-gate", "shop-processor", "shop-sink"] {
        let d: Deployment = typed(&objs, "Deployment", deployment);
        let pod = d.spec.and_then(|s| s.template.spec).expect("pod");
        let env = env_map(pod.containers[0].env.as_deref().expect("env"));
        assert_eq!(
            value(&env, "SHOPSTREAM_METRICS_ADDR"),
            format!("0.0.0.0:{}", shopstream_operator::render::METRICS_PORT),
            "{deployment}"
        );
        let svc: Service = typed(&objs, "Service", deployment);
        let port = &svc.spec.expect("spec").ports.expect("ports")[0];
        assert_eq!(port.port, shopstream_operator::render::METRICS_PORT);
        // readiness and liveness ask the same server, on the named port
        let c = &pod.containers[0];
        let named = c.ports.as_ref().expect("ports")[0].name.clone().expect("port name");
        for (probe, path) in
            [(c.readiness_probe.as_ref(), "/readyz"), (c.liveness_probe.as_ref(), "/healthz")]
        {
            let get = probe.and_then(|p| p.http_get.as_ref()).expect("http probe");
            assert_eq!(get.path.as_deref(), Some(path), "{deployment}");
            assert_eq!(get.port, IntOrString::String(named.clone()), "{deployment}");
        }
    }
}

#[test]
fn rotating_a_secret_rolls_exactly_the_deployments_that_mount_it() {
    let p = example();
    let annotation = |versions: &[(&str, &str)], dep: &str| -> Option<String> {
        let inputs = RenderInputs {
            secret_versions: versions.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            ..RenderInputs::default()
        };
        let objs = render(&p, &inputs).expect("render");
        let d: Deployment = typed(&objs, "Deployment", dep);
        d.spec?.template.metadata?.annotations?.get(render::SECRET_VERSIONS_ANNOTATION).cloned()
    };
    let before = [("shopstream-pseudonym", "10")];
    let after = [("shopstream-pseudonym", "11")];
    // The sink mounts the pseudonym key: a new version of it rolls the sink.
    let (s1, s2) = (annotation(&before, "shop-sink"), annotation(&after, "shop-sink"));
    assert!(s1.is_some() && s1 != s2, "{s1:?} {s2:?}");
    assert_eq!(annotation(&before, "shop-sink"), s1, "the digest is stable");
    // The gate mounts no Secret in the example: nothing to roll, no annotation.
    assert_eq!(annotation(&before, "shop-gate"), None);
    assert_eq!(annotation(&after, "shop-gate"), None);
}
