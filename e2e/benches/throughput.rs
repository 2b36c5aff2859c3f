//! End-to-end throughput of one pipeline, in pods vs as local processes, on the same stack.
//!
//! Both runs use what the operator renders for the same `AnalyticsPipeline` (the example, with
//! the bench's backends and topics, no generator): in the cluster the operator applies it and
//! the pods run from `SHOPSTREAM_IMAGE`; locally the bench starts the same `shopstream` binary
//! once per replica with each container's rendered arguments and environment (only the metrics
//! address differs, so the processes do not share a port). Once every workload answers
//! `/readyz`, the clock starts, `shopstream generate` writes `SHOPSTREAM_BENCH_SESSIONS`
//! sessions (default 20,000) into the raw topic, and the clock stops when Elasticsearch and
//! MongoDB hold exactly the sessions the gate's rule passes.
//!
//! ```text
//! STACK_KUBE=node dev/stack up && eval "$(dev/stack env)"
//! cargo build --release -p shopstream -p shopstream-operator
//! eval "$(dev/image build)" && dev/kube load "$SHOPSTREAM_IMAGE_TAR"
//! cargo bench -p shopstream-e2e --bench throughput
//! ```
//! `SHOPSTREAM_BENCH_ROUNDS` (default 1) repeats local, cluster pairs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource};
use shopstream_e2e::{Backends, endpoint, es_count, mongo_count, shopstream_bin};
use shopstream_gate::rules::{RuleConfig, Verdict, reference};
use shopstream_operator::controller::{Context, Settings, run_controller};
use shopstream_operator::crd::AnalyticsPipeline;
use shopstream_operator::kafka::TopicAdmin;
use shopstream_operator::metrics::Metrics;
use shopstream_operator::render::{self, RenderInputs};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

const EXAMPLE: &str = include_str!("../../crds/examples/pipeline.yaml");
const STREAMING: [&str; 3] = ["gate", "processor", "sink"];
const SEED: u64 = 7;
const USERS: usize = 5_000;

/// One pipeline of the bench: its namespace (also its identity), topics and pseudonym key.
struct Shop {
    ns: String,
    key: String,
}

impl Shop {
    fn new(mode: &str, tag: &str) -> Shop {
        Shop {
            ns: format!("tp-{mode}-{tag}"),
            key: uuid::Uuid::new_v4().simple().to_string().repeat(2),
        }
    }

    fn topic(&self, role: &str) -> String {
        format!("{}.{role}", self.ns)
    }

    fn resource(&self, image: &str) -> anyhow::Result<AnalyticsPipeline> {
        let mut v: serde_json::Value = serde_norway::from_str(EXAMPLE)?;
        v["metadata"] = serde_json::json!({ "name": "shop", "namespace": self.ns });
        let s = &mut v["spec"];
        s["kafka"]["bootstrapServers"] = endpoint("SHOPSTREAM_KAFKA")?.into();
        for role in ["raw", "valid", "suspicious", "deadLetter"] {
            s["kafka"]["topics"][role]["name"] = self.topic(role).into();
        }
        s["kafka"]["deleteTopicsOnDeletion"] = true.into();
        s["redis"] =
            serde_json::json!({ "external": { "url": endpoint("SHOPSTREAM_REDIS_URL")? } });
        s["mongodb"] =
            serde_json::json!({ "external": { "url": endpoint("SHOPSTREAM_MONGO_URL")? } });
        s["elasticsearch"] =
            serde_json::json!({ "external": { "url": endpoint("SHOPSTREAM_ES_URL")? } });
        let spec = s.as_object_mut().context("spec")?;
        spec.remove("kibana");
        s["workloads"].as_object_mut().context("workloads")?.remove("generator");
        s["workloads"]["image"] = image.into();
        s["workloads"]["imagePullPolicy"] = "IfNotPresent".into();
        Ok(serde_json::from_value(v)?)
    }

    fn database(&self) -> String {
        format!("shopstream_{}_shop", self.ns)
    }

    fn sessions_index(&self) -> String {
        format!("shopstream-{}-shop-sessions", self.ns)
    }
}

/// The valid sessions the gate's rule gives for the bench's sessions, from a dry run of the
/// generator into a file (same seed, users and count as the timed run).
async fn expected_valid(n: u64, dir: &Path) -> anyhow::Result<u64> {
    let file = dir.join("sessions.jsonl");
    let status = Command::new(shopstream_bin()?)
        .args(["generate", "--seed", &SEED.to_string(), "--users", &USERS.to_string()])
        .args(["--count", &n.to_string(), "--output"])
        .arg(&file)
        .env("RUST_LOG", "warn")
        .status()
        .await?;
    if !status.success() {
        bail!("shopstream generate --output failed: {status}");
    }
    let text = std::fs::read_to_string(&file)?;
    let sessions: Vec<shopstream_schema::Session> = text
        .lines()
        .map(|l| shopstream_schema::parse_session(l.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("generated session: {e}"))?;
    let outcome = reference(sessions.iter(), &RuleConfig::default());
    Ok(outcome.verdicts.values().filter(|v| **v == Verdict::Valid).count() as u64)
}

/// Generates the sessions into the raw topic and waits until both stores hold `want` sessions.
/// Returns (time to produce, time until everything landed).
async fn timed_run(shop: &Shop, n: u64, want: u64) -> anyhow::Result<(Duration, Duration)> {
    let backends = Backends::from_env()?;
    let es = backends.es_client()?;
    let mongo = backends.mongo_client().await?;
    let start = Instant::now();
    let status = Command::new(shopstream_bin()?)
        .args(["generate", "--seed", &SEED.to_string(), "--users", &USERS.to_string()])
        .args(["--count", &n.to_string(), "--topic", &shop.topic("raw")])
        .env("SHOPSTREAM_KAFKA", endpoint("SHOPSTREAM_KAFKA")?)
        .env("RUST_LOG", "warn")
        .status()
        .await?;
    if !status.success() {
        bail!("shopstream generate failed: {status}");
    }
    let produced = start.elapsed();
    loop {
        let (e, m) = (
            es_count(&es, &shop.sessions_index()).await,
            mongo_count(&mongo, &shop.database(), "user_sessions").await,
        );
        if e == want && m == want {
            return Ok((produced, start.elapsed()));
        }
        if e > want || m > want {
            bail!("{}: more stored than the rule passes (es {e}, mongo {m}, want {want})", shop.ns);
        }
        if start.elapsed() > Duration::from_secs(900) {
            bail!("{}: es {e}, mongo {m} of {want} after 15 minutes", shop.ns);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn drop_stores(shop: &Shop) {
    if let Ok(url) = endpoint("SHOPSTREAM_MONGO_URL")
        && let Ok(mongo) = mongodb::Client::with_uri_str(url).await
    {
        let _ = mongo.database(&shop.database()).drop().await;
    }
    if let Ok(es) = endpoint("SHOPSTREAM_ES_URL") {
        let http = reqwest::Client::new();
        for index in ["sessions", "products"] {
            let _ = http.delete(format!("{es}/shopstream-{}-shop-{index}", shop.ns)).send().await;
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The rendered containers of the streaming Deployments, started as local processes.
async fn run_local(
    p: &AnalyticsPipeline,
    shop: &Shop,
    n: u64,
    want: u64,
    dir: &Path,
) -> anyhow::Result<(Duration, Duration)> {
    let mut p = p.clone();
    p.meta_mut().uid = Some("local-bench".into());
    let desired = render::render(&p, &RenderInputs::default())?;
    let topics = p.spec.kafka.topics.all();
    let topics: Vec<(&str, &_)> = topics.iter().map(|(r, t)| (*r, t)).collect();
    let admin = TopicAdmin::new(&p.spec.kafka.bootstrap_servers, &Default::default())?;
    admin.ensure(&topics).await?;
    let secrets = BTreeMap::from([(
        ("shopstream-pseudonym".to_string(), "key".to_string()),
        shop.key.clone(),
    )]);
    let mut children: Vec<(String, Child, u16)> = Vec::new();
    for d in desired.iter().filter(|d| d.resource.kind == "Deployment") {
        let dep: Deployment = serde_json::from_value(serde_json::to_value(&d.object)?)?;
        let component = dep
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(render::COMPONENT_LABEL))
            .cloned()
            .unwrap_or_default();
        if !STREAMING.contains(&component.as_str()) {
            continue;
        }
        let spec = dep.spec.context("deployment spec")?;
        let pod = spec.template.spec.context("pod spec")?;
        let c = pod.containers.first().context("container")?;
        for replica in 0..spec.replicas.unwrap_or(1) {
            let port = free_port()?;
            let mut cmd = Command::new(shopstream_bin()?);
            cmd.args(c.args.clone().unwrap_or_default());
            for e in c.env.clone().unwrap_or_default() {
                let value = match (e.value, e.value_from.and_then(|f| f.secret_key_ref)) {
                    (Some(v), _) => v,
                    (None, Some(r)) => secrets
                        .get(&(r.name.clone(), r.key.clone()))
                        .cloned()
                        .with_context(|| format!("no value for Secret {}/{}", r.name, r.key))?,
                    (None, None) => String::new(),
                };
                cmd.env(&e.name, value);
            }
            cmd.env("SHOPSTREAM_METRICS_ADDR", format!("127.0.0.1:{port}"));
            let log = std::fs::File::create(dir.join(format!("{component}-{replica}.log")))?;
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("start {component}"))?;
            children.push((format!("{component}-{replica}"), child, port));
        }
    }
    // every process consuming
    let http = reqwest::Client::new();
    let t = Instant::now();
    for (name, _, port) in &children {
        loop {
            let ok = http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ok {
                break;
            }
            if t.elapsed() > Duration::from_secs(120) {
                bail!("{name} not ready after 120 s (logs in {})", dir.display());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let result = timed_run(shop, n, want).await;
    for (_, mut child, _) in children {
        if let Some(pid) = child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
    let names: Vec<String> = topics.iter().map(|(_, t)| t.name.clone()).collect();
    admin.delete(&names).await?;
    drop_stores(shop).await;
    result
}

/// The same resource through the operator (in this process, limited to the namespace) into pods.
async fn run_cluster(
    client: &Client,
    p: &AnalyticsPipeline,
    shop: &Shop,
    n: u64,
    want: u64,
) -> anyhow::Result<(Duration, Duration)> {
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": shop.ns}}))?,
    )
    .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &shop.ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "shopstream-pseudonym",
                    "annotations": {"shopstream.io/allowed-pipelines": "shop"}},
                "stringData": {"key": shop.key}
            }))?,
        )
        .await?;
    let ctx = Arc::new(
        Context::new(client.clone(), Metrics::new()?, "throughput-bench", Settings::default())
            .await?,
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let ns = shop.ns.clone();
    let operator = tokio::spawn(async move {
        run_controller(ctx, Some(ns.as_str()), async move {
            let _ = stopped.await;
        })
        .await;
    });
    let api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &shop.ns);
    api.create(&PostParams::default(), p).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &shop.ns);
    let t = Instant::now();
    'ready: loop {
        let mut all = true;
        for c in STREAMING {
            let d = deployments.get_opt(&format!("shop-{c}")).await?;
            let ready = d.and_then(|d| {
                let want = d.spec?.replicas.unwrap_or(1);
                Some(d.status?.ready_replicas.unwrap_or(0) == want)
            });
            all &= ready == Some(true);
        }
        if all {
            break 'ready;
        }
        if t.elapsed() > Duration::from_secs(240) {
            bail!("{}: workloads not ready after 240 s", shop.ns);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let result = timed_run(shop, n, want).await;
    api.delete("shop", &DeleteParams::default()).await?;
    let t = Instant::now();
    while api.get_opt("shop").await?.is_some() && t.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = stop.send(());
    let _ = operator.await;
    nss.delete(&shop.ns, &DeleteParams::default()).await?;
    drop_stores(shop).await;
    result
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let image = endpoint("SHOPSTREAM_IMAGE").context(
        "and load it: `eval \"$(dev/image build)\" && dev/kube load \"$SHOPSTREAM_IMAGE_TAR\"`",
    )?;
    let n: u64 = std::env::var("SHOPSTREAM_BENCH_SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let rounds: usize =
        std::env::var("SHOPSTREAM_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let client = Client::try_default().await.context("KUBECONFIG: run `dev/kube up --node`")?;
    shopstream_operator::crd::apply_crd(&client, "shopstream-bench").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let dir = std::env::temp_dir().join(format!("shopstream-throughput-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let want = expected_valid(n, &dir).await?;
    println!(
        "throughput: {n} sessions ({want} valid), seed {SEED}, image {image}; logs in {}",
        dir.display()
    );
    for round in 1..=rounds {
        let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_string();
        let mut rates = Vec::new();
        for mode in ["local", "cluster"] {
            let shop = Shop::new(mode, &tag);
            let p = shop.resource(&image)?;
            let (produced, landed) = if mode == "local" {
                run_local(&p, &shop, n, want, &dir).await?
            } else {
                run_cluster(&client, &p, &shop, n, want).await?
            };
            let rate = n as f64 / landed.as_secs_f64();
            println!(
                "round {round} {mode:<7}: produced in {:>6.2} s, all landed after {:>6.2} s = {rate:>8.0} sessions/s",
                produced.as_secs_f64(),
                landed.as_secs_f64()
            );
            rates.push(rate);
        }
        println!("round {round}: in pods / local processes = {:.2}", rates[1] / rates[0]);
    }
    Ok(())
}
