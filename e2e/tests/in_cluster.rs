//! The product as users meet it: the Helm chart installs the operator (in pods, two replicas,
//! leader election, exactly the chart's RBAC), the operator renders two pipelines in two
//! namespaces, one on the plain backends and one over TLS with credentials from Secrets (the
//! stack's secure profile: the workloads' pods read the CA and passwords from the files the
//! operator mounts), and generated sessions flow through the workloads' pods into
//! Elasticsearch and MongoDB with exactly the counts the gate's rule gives, while pods are
//! killed and the processor is scaled. Jobs made from the CronJobs compute similar users and
//! train the private models, and the resource's status shows them. Deleting the pipelines
//! removes their children and topics.
//!
//! Runs against any cluster. Inputs:
//! - `KUBECONFIG`: the cluster (`dev/kube up --node` locally; `e2e/kind/run` with Docker);
//! - `SHOPSTREAM_IMAGE`: the image reference, already loaded on the nodes (`dev/image build`,
//!   `dev/kube load`);
//! - `SHOPSTREAM_KAFKA`, `SHOPSTREAM_REDIS_URL`, `SHOPSTREAM_MONGO_URL`, `SHOPSTREAM_ES_URL`:
//!   the backends, reachable from this process and from pods (`dev/stack` on the node's bridge
//!   does both); `SHOPSTREAM_POD_<same suffix>` overrides what pods are given where the two
//!   differ (e.g. a kind cluster reaching the host);
//! - `SHOPSTREAM_SECURE_ENV`: the secure profile's settings (`dev/stack env`), reachable from
//!   this process and from pods at the same addresses;
//! - `SHOPSTREAM_HELM`: a helm binary (default: `dev/kube helm`).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams,
    PostParams,
};
use kube::{Client, ResourceExt};
use mongodb::bson::doc;
use shopstream_e2e::{Backends, endpoint, es_count, mongo_count, read_topic, wait_for};
use shopstream_gate::rules::{RuleConfig, reference};
use shopstream_kafka::KafkaArgs;
use shopstream_kafka::rdkafka::Message;
use shopstream_operator::crd::AnalyticsPipeline;
use shopstream_schema::Session;
use shopstream_test_support::helm;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../helm/shopstream-operator");
const EXAMPLE: &str = include_str!("../../crds/examples/pipeline.yaml");
/// The Helm release and the operator's namespace.
const RELEASE: &str = "shopstream-e2e";
const OPERATOR_NS: &str = "shopstream-e2e-operator";
const ROLLOUT: Duration = Duration::from_secs(240);

/// What pods are told for a backend: `SHOPSTREAM_POD_<suffix>`, else the test's own endpoint.
fn for_pods(var: &str) -> String {
    let suffix = var.trim_start_matches("SHOPSTREAM_");
    std::env::var(format!("SHOPSTREAM_POD_{suffix}"))
        .unwrap_or_else(|_| endpoint(var).expect("backend endpoint"))
}

/// Uninstalls the release when the test ends, also when it fails, so no in-cluster operator
/// outlives it (it watches every namespace).
struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        let _ = shopstream_test_support::helm_command()
            .args(["uninstall", RELEASE, "--namespace", OPERATOR_NS])
            .output();
    }
}

/// A pipeline under test: its namespace, topics and names derived by the operator, and the
/// backends it uses: the plain profile, or the secure one (TLS to every backend, credentials
/// for Redis, MongoDB and Elasticsearch, all from Secrets the test creates in its namespace).
struct Shop {
    ns: String,
    topics: Vec<String>,
    seed: u64,
    secure: bool,
    backends: Backends,
}

/// The Secrets of a secure shop: (name, key, file variable of the secure profile).
const SECURE_SECRETS: [(&str, &str, &str); 7] = [
    ("backend-ca", "ca.crt", "SHOPSTREAM_KAFKA_CA_FILE"),
    ("redis-creds", "username", "SHOPSTREAM_REDIS_USERNAME_FILE"),
    ("redis-creds", "password", "SHOPSTREAM_REDIS_PASSWORD_FILE"),
    ("mongo-creds", "username", "SHOPSTREAM_MONGO_USERNAME_FILE"),
    ("mongo-creds", "password", "SHOPSTREAM_MONGO_PASSWORD_FILE"),
    ("es-creds", "username", "SHOPSTREAM_ES_USERNAME_FILE"),
    ("es-creds", "password", "SHOPSTREAM_ES_PASSWORD_FILE"),
];

impl Shop {
    fn new(tag: &str, which: &str, seed: u64, secure: bool) -> Shop {
        let ns = format!("e2e-{which}-{tag}");
        let topics = ["raw", "valid", "suspicious", "deadletter"]
            .iter()
            .map(|r| format!("e2e.{tag}.{which}.{r}"))
            .collect();
        let backends = if secure { Backends::secure() } else { Backends::from_env() };
        Shop { ns, topics, seed, secure, backends: backends.expect("backend settings") }
    }

    /// Creates the Secrets a secure shop's resource names, from the secure profile's files.
    async fn create_backend_secrets(&self, client: &Client) {
        if !self.secure {
            return;
        }
        let profile = shopstream_test_support::secure_env();
        let mut by_name: std::collections::BTreeMap<
            &str,
            serde_json::Map<String, serde_json::Value>,
        > = Default::default();
        for (name, key, var) in SECURE_SECRETS {
            let text = std::fs::read_to_string(&profile[var]).expect("secure profile file");
            by_name.entry(name).or_default().insert(key.into(), text.into());
        }
        let api: Api<Secret> = Api::namespaced(client.clone(), &self.ns);
        for (name, data) in by_name {
            let s: Secret = serde_json::from_value(serde_json::json!({
                "metadata": {
                    "name": name,
                    "annotations": { "shopstream.io/allowed-pipelines": "shop" },
                },
                "stringData": data,
            }))
            .expect("secret");
            api.create(&PostParams::default(), &s).await.expect("create secret");
        }
    }

    fn topic(&self, role: &str) -> &str {
        let i = ["raw", "valid", "suspicious", "deadLetter"]
            .iter()
            .position(|r| *r == role)
            .expect("role");
        &self.topics[i]
    }

    fn index_prefix(&self) -> String {
        format!("shopstream-{}-shop-", self.ns)
    }

    fn database(&self) -> String {
        format!("shopstream_{}_shop", self.ns)
    }

    /// The shipped example, pointed at the test's backends, image and topics: no database
    /// named (each pipeline gets its own), no Kibana (none can run here), a generator,
    /// schedules that never fire by themselves (the test makes Jobs from the CronJobs). The
    /// example's own privacy spec is kept: its training must be able to run as shipped.
    fn resource(&self, image: &str) -> AnalyticsPipeline {
        let mut v: serde_json::Value = serde_norway::from_str(EXAMPLE).expect("example");
        v["metadata"] = serde_json::json!({ "name": "shop", "namespace": self.ns });
        let s = &mut v["spec"];
        s["kafka"]["bootstrapServers"] = for_pods("SHOPSTREAM_KAFKA").into();
        for (role, name) in ["raw", "valid", "suspicious", "deadLetter"].iter().zip(&self.topics) {
            s["kafka"]["topics"][role] =
                serde_json::json!({ "name": name, "partitions": 3, "replicationFactor": 1 });
        }
        s["kafka"]["deleteTopicsOnDeletion"] = true.into();
        s["redis"] = serde_json::json!({ "external": { "url": for_pods("SHOPSTREAM_REDIS_URL") } });
        s["mongodb"] =
            serde_json::json!({ "external": { "url": for_pods("SHOPSTREAM_MONGO_URL") } });
        s["elasticsearch"] =
            serde_json::json!({ "external": { "url": for_pods("SHOPSTREAM_ES_URL") } });
        if self.secure {
            // The secure profile binds where the plain one does (the node's bridge), so pods
            // and this process use the same addresses.
            let b = &self.backends;
            let tls = serde_json::json!({ "caSecret": { "name": "backend-ca" } });
            s["kafka"]["bootstrapServers"] = b.kafka.bootstrap.clone().into();
            s["kafka"]["tls"] = tls.clone();
            s["redis"] = serde_json::json!({ "external": {
                "url": b.redis.redis_url, "tls": tls, "credentialsSecret": { "name": "redis-creds" },
            } });
            s["mongodb"] = serde_json::json!({ "external": {
                "url": b.mongo.mongo_url, "tls": tls, "credentialsSecret": { "name": "mongo-creds" },
            } });
            s["elasticsearch"] = serde_json::json!({ "external": {
                "url": b.es.es_url, "tls": tls, "credentialsSecret": { "name": "es-creds" },
            } });
        }
        s.as_object_mut().expect("spec").remove("kibana");
        s["workloads"]["image"] = image.into();
        s["workloads"]["imagePullPolicy"] = "IfNotPresent".into();
        s["workloads"]["generator"] =
            serde_json::json!({ "replicas": 1, "rate": 60, "seed": self.seed });
        s["workloads"]["gate"]["replicas"] = 1.into();
        s["workloads"]["processor"]["replicas"] = 1.into();
        s["offline"]["similarity"]["schedule"] = "0 0 1 1 *".into();
        s["offline"]["training"]["schedule"] = "0 0 1 1 *".into();
        serde_json::from_value(v).expect("an AnalyticsPipeline")
    }
}

async fn condition(api: &Api<AnalyticsPipeline>, type_: &str) -> Option<(String, String)> {
    let p = api.get("shop").await.ok()?;
    let c = p.status?.conditions.into_iter().find(|c| c.type_ == type_)?;
    Some((c.status, c.message))
}

/// Pods of one component of a pipeline.
async fn pods(client: &Client, ns: &str, component: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("app.kubernetes.io/component={component}"));
    api.list(&lp).await.map(|l| l.items).unwrap_or_default()
}

/// The last lines of every pod's log in a namespace (for failure messages).
async fn logs(client: &Client, ns: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut out = String::new();
    for p in api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default() {
        let name = p.name_any();
        let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        let lp = LogParams { tail_lines: Some(15), ..Default::default() };
        let text = api.logs(&name, &lp).await.unwrap_or_else(|e| format!("(no log: {e})"));
        out.push_str(&format!("--- {name} ({phase})\n{text}\n"));
    }
    out
}

async fn deployment_ready(client: &Client, ns: &str, name: &str, want: i32) -> bool {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let Ok(d) = api.get(name).await else { return false };
    let s = d.status.unwrap_or_default();
    s.ready_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.updated_replicas.unwrap_or(0) == want
}

async fn lease_holder(client: &Client) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), OPERATOR_NS);
    api.get("shopstream-operator").await.ok()?.spec?.holder_identity
}

async fn patch_spec(api: &Api<AnalyticsPipeline>, spec: serde_json::Value) {
    api.patch("shop", &PatchParams::default(), &Patch::Merge(serde_json::json!({ "spec": spec })))
        .await
        .expect("patch pipeline");
}

/// A Job made from a CronJob's template (what `kubectl create job --from=cronjob/...` does),
/// run to completion.
async fn run_cronjob(client: &Client, ns: &str, cronjob: &str) {
    let crons = cronjob_resource(client).await;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &crons);
    let cj = api.get(cronjob).await.expect("CronJob rendered");
    let template = cj.data["spec"]["jobTemplate"].clone();
    let name = format!("{cronjob}-manual");
    let job: Job = serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {
            "name": name, "namespace": ns,
            "labels": template["metadata"]["labels"],
            "ownerReferences": [{
                "apiVersion": crons.api_version, "kind": "CronJob", "name": cronjob,
                "uid": cj.uid().expect("uid"), "controller": false,
            }],
        },
        "spec": template["spec"],
    }))
    .expect("Job");
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    jobs.create(&PostParams::default(), &job).await.expect("create Job");
    let start = Instant::now();
    loop {
        let j = jobs.get(&name).await.expect("Job");
        let s = j.status.unwrap_or_default();
        if s.succeeded.unwrap_or(0) >= 1 {
            return;
        }
        if s.failed.unwrap_or(0) >= 1 || start.elapsed() > Duration::from_secs(600) {
            panic!("Job {ns}/{name} did not succeed ({s:?}):\n{}", logs(client, ns).await);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The CronJob API the server serves, as the operator discovers it.
async fn cronjob_resource(client: &Client) -> ApiResource {
    shopstream_operator::controller::cronjob_api(client)
        .await
        .expect("discovery")
        .expect("the server serves a CronJob API")
        .resource()
}

/// What the gate's rule gives for every session in the raw topic (read in partition order,
/// the order the gate sees a user's sessions in).
async fn expected(kafka: &KafkaArgs, raw: &str) -> (HashSet<String>, usize) {
    let records = read_topic(kafka, raw).await;
    let sessions: Vec<Session> = records
        .iter()
        .map(|m| {
            shopstream_schema::parse_session(m.payload().unwrap_or_default()).expect("session")
        })
        .collect();
    let outcome = reference(sessions.iter(), &RuleConfig::default());
    let valid = outcome.valid();
    (valid, outcome.verdicts.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_run_in_pods_through_the_operator() {
    let t0 = Instant::now();
    let client = Client::try_default().await.expect("KUBECONFIG: run `dev/kube up --node`");
    let image = std::env::var("SHOPSTREAM_IMAGE")
        .expect("SHOPSTREAM_IMAGE is not set: `eval \"$(dev/image build)\"` and `dev/kube load`");
    let (repo, tag) = image.rsplit_once(':').expect("image ref with a tag");
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let step = |what: &str| eprintln!("[in-cluster e2e +{:>4} s] {what}", t0.elapsed().as_secs());

    // 1. The chart installs the operator: two replicas, one leads.
    step("helm install");
    let _release = Release;
    helm(&[
        "upgrade",
        "--install",
        RELEASE,
        CHART,
        "--namespace",
        OPERATOR_NS,
        "--create-namespace",
        "--set",
        &format!("image.repository={repo}"),
        "--set",
        &format!("image.tag={tag}"),
        "--set",
        "image.pullPolicy=IfNotPresent",
        "--set",
        "requeueSeconds=5",
        "--set",
        "leaderElection.leaseSeconds=10",
    ]);
    let operator = format!("{RELEASE}-shopstream-operator");
    wait_for("the operator's two replicas", ROLLOUT, || {
        deployment_ready(&client, OPERATOR_NS, &operator, 2)
    })
    .await;
    wait_for("a leader", ROLLOUT, || async { lease_holder(&client).await.is_some() }).await;

    // 2. Two pipelines of the same name in two namespaces: a on the plain backends, b on the
    // secure profile's (TLS everywhere; credentials for Redis, MongoDB and Elasticsearch), which
    // share the Elasticsearch server behind its TLS proxy.
    step("two pipelines (b over TLS with credentials)");
    let shops = [Shop::new(&run, "a", 7, false), Shop::new(&run, "b", 8, true)];
    for shop in &shops {
        let nss: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({ "metadata": { "name": shop.ns } }))
                .expect("ns");
        nss.create(&PostParams::default(), &ns).await.expect("namespace");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &shop.ns);
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "shopstream-pseudonym",
                "annotations": { "shopstream.io/allowed-pipelines": "shop" },
            },
            "stringData": { "key": format!("key-of-{}", shop.ns) },
        }))
        .expect("secret");
        secrets.create(&PostParams::default(), &secret).await.expect("secret");
        shop.create_backend_secrets(&client).await;
        let api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &shop.ns);
        api.create(&PostParams::default(), &shop.resource(&image)).await.expect("create");
    }
    for shop in &shops {
        let api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &shop.ns);
        let start = Instant::now();
        while condition(&api, "Ready").await.map(|c| c.0) != Some("True".into()) {
            if start.elapsed() > ROLLOUT {
                panic!(
                    "{} not Ready: {:?}\n{}",
                    shop.ns,
                    condition(&api, "Ready").await,
                    logs(&client, &shop.ns).await
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    // 3. Sessions flow; chaos mid-stream in pipeline a.
    step("sessions flowing; killing a gate and a sink pod, scaling the processor to 3");
    let a = &shops[0];
    let a_api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &a.ns);
    let sessions_a = format!("{}sessions", a.index_prefix());
    let es = a.backends.es_client().expect("elasticsearch client");
    wait_for("first sessions in Elasticsearch", ROLLOUT, || async {
        es_count(&es, &sessions_a).await > 300
    })
    .await;
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), &a.ns);
    for component in ["gate", "sink"] {
        for p in pods(&client, &a.ns, component).await {
            pod_api.delete(&p.name_any(), &DeleteParams::default()).await.expect("delete pod");
        }
    }
    patch_spec(&a_api, serde_json::json!({ "workloads": { "processor": { "replicas": 3 } } }))
        .await;
    wait_for("three processors", ROLLOUT, || deployment_ready(&client, &a.ns, "shop-processor", 3))
        .await;
    wait_for("replacement gate and sink", ROLLOUT, || async {
        deployment_ready(&client, &a.ns, "shop-gate", 1).await
            && deployment_ready(&client, &a.ns, "shop-sink", 1).await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    patch_spec(&a_api, serde_json::json!({ "workloads": { "processor": { "replicas": 1 } } }))
        .await;
    wait_for("one processor again", ROLLOUT, || {
        deployment_ready(&client, &a.ns, "shop-processor", 1)
    })
    .await;

    // 4. Stop the generators; every session the gate's rule passes is stored exactly once.
    step("stopping the generators; checking exact counts");
    for shop in &shops {
        let api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &shop.ns);
        patch_spec(&api, serde_json::json!({ "workloads": { "generator": { "replicas": 0 } } }))
            .await;
    }
    for shop in &shops {
        wait_for("generator pods gone", ROLLOUT, || async {
            pods(&client, &shop.ns, "generator").await.is_empty()
        })
        .await;
    }
    let mut valid_ids = Vec::new();
    for shop in &shops {
        let kafka = &shop.backends.kafka;
        let es = shop.backends.es_client().expect("elasticsearch client");
        let mongo = shop.backends.mongo_client().await.expect("mongo client");
        let (valid, total) = expected(kafka, shop.topic("raw")).await;
        assert!(total > 300, "{}: only {total} sessions generated", shop.ns);
        assert!(valid.len() < total, "{}: the rule flagged nothing", shop.ns);
        let want = valid.len() as u64;
        let index = format!("{}sessions", shop.index_prefix());
        let db = shop.database();
        let start = Instant::now();
        loop {
            let (es_n, mongo_n) =
                (es_count(&es, &index).await, mongo_count(&mongo, &db, "user_sessions").await);
            if es_n == want && mongo_n == want {
                break;
            }
            assert!(
                es_n <= want && mongo_n <= want,
                "{}: more stored than the rule passes (es {es_n}, mongo {mongo_n}, want {want})",
                shop.ns
            );
            if start.elapsed() > ROLLOUT {
                panic!(
                    "{}: es {es_n}, mongo {mongo_n}, want {want}\n{}",
                    shop.ns,
                    logs(&client, &shop.ns).await
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // exactly the sessions the rule passes, none other
        let out: HashSet<String> = read_topic(kafka, shop.topic("valid"))
            .await
            .iter()
            .map(|m| {
                shopstream_schema::parse_session(m.payload().unwrap_or_default())
                    .expect("valid session")
                    .session_id
            })
            .collect();
        assert_eq!(out, valid, "{}: valid topic differs from the rule", shop.ns);
        let stored: Vec<String> = mongo
            .database(&db)
            .collection::<mongodb::bson::Document>("user_sessions")
            .distinct("sessionId", doc! {})
            .await
            .expect("distinct")
            .into_iter()
            .filter_map(|b| b.as_str().map(String::from))
            .collect();
        assert_eq!(stored.iter().cloned().collect::<HashSet<_>>(), valid, "{}", shop.ns);
        // the gate's state lives under the pipeline's own Redis prefix (keys `{prefix}:...`)
        let mut con = shop.backends.redis_connection().await.expect("redis");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{shopstream:{}:shop:gate}}:*", shop.ns))
            .query_async(&mut con)
            .await
            .expect("KEYS");
        assert!(!keys.is_empty(), "{}: no Redis keys under its prefix", shop.ns);
        valid_ids.push(valid);
    }
    assert!(valid_ids[0].is_disjoint(&valid_ids[1]), "the pipelines' sessions mixed");

    // 5. The offline jobs, from the CronJobs the operator rendered.
    step("similarity and training Jobs");
    for shop in &shops {
        run_cronjob(&client, &shop.ns, "shop-similarity").await;
    }
    for shop in &shops {
        let es = shop.backends.es_client().expect("elasticsearch client");
        let mongo = shop.backends.mongo_client().await.expect("mongo client");
        let n = es_count(&es, &format!("{}similar-users", shop.index_prefix())).await;
        assert!(n > 0, "{}: no similar users indexed", shop.ns);
        assert!(mongo_count(&mongo, &shop.database(), "similar_users").await > 0, "{}", shop.ns);
    }
    run_cronjob(&client, &a.ns, "shop-train").await;
    let start = Instant::now();
    let status = loop {
        let p = a_api.get("shop").await.expect("pipeline");
        let s = p.status.clone().unwrap_or_default();
        let spent = s.privacy_budget.as_ref().map(|b| b.spent_epsilon).unwrap_or(0.0);
        if s.models.len() == 3 && spent > 0.0 {
            break s;
        }
        assert!(start.elapsed() < ROLLOUT, "models and budget not in status: {s:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let budget = status.privacy_budget.expect("budget");
    let privacy = a_api.get("shop").await.expect("pipeline").spec.offline.training.privacy;
    // one run spends at most epsilonPerRun (the accountant may spend a hair less) and exactly
    // the run's delta
    let per_run = privacy.epsilon_per_run;
    assert!(
        budget.spent_epsilon > 0.9 * per_run && budget.spent_epsilon <= per_run + 1e-9,
        "{budget:?}"
    );
    assert!(
        (budget.remaining_epsilon + budget.spent_epsilon - privacy.total_epsilon).abs() < 1e-9,
        "{budget:?}"
    );
    assert!((budget.spent_delta - privacy.delta_per_run()).abs() < 1e-15, "{budget:?}");
    for m in &status.models {
        assert!(m.epsilon.is_some(), "a non-private model was registered: {m:?}");
    }

    // 6. The leading operator pod dies: the other takes over and reconciles.
    step("deleting the leading operator pod");
    let leader = lease_holder(&client).await.expect("leader");
    let op_pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NS);
    op_pods.delete(&leader, &DeleteParams::default()).await.expect("delete leader pod");
    wait_for("a new leader", ROLLOUT, || async {
        lease_holder(&client).await.is_some_and(|h| h != leader)
    })
    .await;
    patch_spec(&a_api, serde_json::json!({ "workloads": { "sink": { "replicas": 2 } } })).await;
    wait_for("the new leader reconciles", ROLLOUT, || {
        deployment_ready(&client, &a.ns, "shop-sink", 2)
    })
    .await;

    // 7. Deleting the pipelines removes their children and (as asked) their topics.
    step("deleting the pipelines");
    for shop in &shops {
        let api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &shop.ns);
        api.delete("shop", &DeleteParams::default()).await.expect("delete");
    }
    for shop in &shops {
        let api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &shop.ns);
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &shop.ns);
        wait_for("pipeline gone and children collected", ROLLOUT, || async {
            api.get_opt("shop").await.ok().flatten().is_none()
                && deployments.list(&ListParams::default()).await.is_ok_and(|l| l.items.is_empty())
        })
        .await;
        let topics: Vec<String> =
            shop.topics.iter().cloned().chain([format!("{}.processor", shop.topics[3])]).collect();
        let kafka = &shop.backends.kafka;
        let security = kafka.security.resolve().expect("kafka security");
        let admin = shopstream_operator::kafka::TopicAdmin::new(&kafka.bootstrap, &security)
            .expect("admin");
        let left = admin.partitions(&topics).await.expect("metadata");
        assert!(left.iter().all(Option::is_none), "{}: topics left {left:?}", shop.ns);
        let nss: Api<Namespace> = Api::all(client.clone());
        let _ = nss.delete(&shop.ns, &DeleteParams::default()).await;
        if let Ok(mongo) = shop.backends.mongo_client().await {
            let _ = mongo.database(&shop.database()).drop().await;
        }
    }
    step("done");
}
