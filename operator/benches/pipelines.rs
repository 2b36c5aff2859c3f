//! Operator benchmark against the real API server, broker and MongoDB of the local stack:
//! time from `create` to every child present with a Ready condition (true, or false only because
//! pods wait for a kubelet) for 1 and for 50 pipelines, and the operator's RSS with 50 pipelines.
//!
//! `eval "$(dev/stack env)" && cargo bench -p shopstream-operator --bench pipelines`
//! (`SHOPSTREAM_BENCH_PIPELINES=1,50` changes the sizes).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use shopstream_operator::crd::AnalyticsPipeline;
use tokio::io::{AsyncBufReadExt, BufReader};

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: run `dev/stack up` and `eval \"$(dev/stack env)\"`")
    })
}

fn pipeline(name: &str, ns: &str, tag: &str) -> anyhow::Result<AnalyticsPipeline> {
    let text = include_str!("../../crds/examples/pipeline.yaml");
    let mut v: serde_json::Value = serde_norway::from_str(text)?;
    v["metadata"] = serde_json::json!({ "name": name, "namespace": ns });
    let spec = &mut v["spec"];
    spec["kafka"]["bootstrapServers"] = env("SHOPSTREAM_KAFKA")?.into();
    spec["kafka"]["deleteTopicsOnDeletion"] = true.into();
    for role in ["raw", "valid", "suspicious", "deadLetter"] {
        spec["kafka"]["topics"][role]["name"] = format!("opbench.{tag}.{name}.{role}").into();
    }
    spec["redis"]["external"]["url"] = env("SHOPSTREAM_REDIS_URL")?.into();
    spec["mongodb"]["external"]["url"] = env("SHOPSTREAM_MONGO_URL")?.into();
    spec["mongodb"]["database"] = format!("opbench_{tag}").into();
    spec["elasticsearch"]["external"]["url"] = env("SHOPSTREAM_ES_URL")?.into();
    if let Some(s) = spec.as_object_mut() {
        s.remove("kibana");
    }
    Ok(serde_json::from_value(v)?)
}

/// Sum of the samples of one metric family on the operator's `/metrics`, by label filter.
async fn metric_sums(addr: &str, names: &[&str]) -> Option<Vec<f64>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await.ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    Some(
        names
            .iter()
            .map(|name| {
                body.lines()
                    .filter(|l| l.starts_with(name))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            })
            .collect(),
    )
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // fields after the parenthesised command name; utime and stime are fields 14 and 15
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The control plane's processes, from the PID files `dev/kube` writes (when it is local).
fn control_plane() -> Vec<(&'static str, u32)> {
    let dir = std::env::var("STACK_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.stack").to_string());
    ["kube-apiserver", "etcd", "kube-controller-manager"]
        .into_iter()
        .filter_map(|name| {
            let pid = std::fs::read_to_string(format!("{dir}/kube/{name}.pid")).ok()?;
            Some((name, pid.trim().parse().ok()?))
        })
        .collect()
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Ready-or-waiting: observedGeneration 1 and a Ready condition that is True or False only
/// because workloads wait for pods (no kubelet) or CronJobs are unsupported (1.20).
fn settled(p: &AnalyticsPipeline) -> bool {
    let Some(s) = &p.status else { return false };
    if s.observed_generation != Some(1) {
        return false;
    }
    let ok = |t: &str| s.conditions.iter().any(|c| c.type_ == t && c.status == "True");
    s.conditions.iter().any(|c| c.type_ == "Ready")
        && ok("TopicsReady")
        && ok("SpecValid")
        && ok("BackendsReady")
}

async fn run_size(client: &Client, n: usize) -> anyhow::Result<()> {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let ns_name = format!("op-bench-{n}-{tag}");
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": ns_name}}))?,
    )
    .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns_name);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "shopstream-pseudonym",
                    "annotations": {"shopstream.io/allowed-pipelines": "*"}},
                "stringData": {"key": "k"}
            }))?,
        )
        .await?;

    // The operator as a separate process (the built binary), so its RSS is its own.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_shopstream-operator"))
        .args(["run", "--watch-namespace", &ns_name, "--metrics-addr", "127.0.0.1:0"])
        .args(["--print-metrics-addr", "--lease-seconds", "5", "--lease-grace-seconds", "2"])
        .env("RUST_LOG", "warn")
        .env(
            "SHOPSTREAM_OPERATOR_DEBOUNCE_MS",
            std::env::var("SHOPSTREAM_BENCH_DEBOUNCE_MS").unwrap_or_else(|_| "0".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("operator pid")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let metrics_addr = lines
        .next_line()
        .await?
        .and_then(|l| l.strip_prefix("metrics ").map(str::to_string))
        .context("metrics address")?;
    let idle_rss = rss_kib(pid);

    let api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &ns_name);
    let procs: Vec<(&str, u32)> =
        std::iter::once(("operator", pid)).chain(control_plane()).collect();
    let cpu_before: Vec<Option<f64>> = procs.iter().map(|(_, p)| cpu_seconds(*p)).collect();
    let start = Instant::now();
    for i in 0..n {
        api.create(&PostParams::default(), &pipeline(&format!("p{i}"), &ns_name, &tag)?).await?;
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns_name);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns_name);
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns_name);
    let lp = ListParams::default().labels("app.kubernetes.io/managed-by=shopstream-operator");
    let mut children_at = None;
    let elapsed = loop {
        let ps = api.list(&ListParams::default()).await?;
        let all_settled = ps.items.len() == n && ps.items.iter().all(settled);
        let children = deployments.list(&lp).await?.items.len() == 4 * n
            && services.list(&lp).await?.items.len() == 4 * n
            && sas.list(&lp).await?.items.len() == n;
        if children && children_at.is_none() {
            children_at = Some(start.elapsed());
        }
        if all_settled && children {
            break start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("{n} pipelines did not settle within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Which process was busy while the pipelines settled (the machine's cores are shared).
    let cpu: Vec<String> = procs
        .iter()
        .zip(&cpu_before)
        .filter_map(|((name, p), before)| {
            Some(format!("{name} {:.1} s", cpu_seconds(*p)? - (*before)?))
        })
        .collect();
    println!(
        "  n={n}: CPU while settling ({:.1} s wall): {}",
        elapsed.as_secs_f64(),
        cpu.join(", ")
    );
    // RSS after a few requeue-free seconds with n pipelines.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss = rss_kib(pid);
    let counts = metric_sums(
        &metrics_addr,
        &[
            "shopstream_operator_reconciles_total",
            "shopstream_operator_children_total{action=\"applied\"}",
            "shopstream_operator_children_total{action=\"unchanged\"}",
        ],
    )
    .await
    .unwrap_or_default();
    let count = |i: usize| counts.get(i).copied().unwrap_or(-1.0);
    println!(
        "  n={n}: all children present after {:.3} s; {} reconciles, {} applies, {} unchanged children skipped",
        children_at.unwrap_or(elapsed).as_secs_f64(),
        count(0),
        count(1),
        count(2),
    );

    println!(
        "pipelines={n:<4} create->settled={:>8.3} s  per pipeline={:>7.1} ms  operator RSS idle={} MiB, with {n} pipelines={} MiB",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / n as f64,
        idle_rss.map(|k| format!("{:.1}", k as f64 / 1024.0)).unwrap_or_else(|| "?".into()),
        rss.map(|k| format!("{:.1}", k as f64 / 1024.0)).unwrap_or_else(|| "?".into()),
    );

    // Clean up through the operator (topics deleted by the finalizer).
    for p in api.list(&ListParams::default()).await? {
        api.delete(&p.name_any(), &DeleteParams::default()).await?;
    }
    // Each deletion waits for its pods, which the ReplicaSet controller deletes at its own
    // client rate limit (kube-controller-manager's --kube-api-qps).
    let t = Instant::now();
    let limit = Duration::from_secs(300).max(Duration::from_secs(2) * n as u32);
    while !api.list(&ListParams::default()).await?.items.is_empty() {
        if t.elapsed() > limit {
            bail!("pipelines not deleted within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("  n={n}: deleted (topics too) in {:.1} s", t.elapsed().as_secs_f64());
    child.start_kill()?;
    let _ = child.wait().await;
    nss.delete(&ns_name, &DeleteParams::default()).await?;
    let mongo = mongodb::Client::with_uri_str(env("SHOPSTREAM_MONGO_URL")?).await?;
    let _ = mongo.database(&format!("opbench_{tag}")).drop().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    env("KUBECONFIG")?;
    let client = Client::try_default().await.context("API server")?;
    shopstream_operator::crd::apply_crd(&client, "shopstream-bench").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sizes: Vec<usize> = std::env::var("SHOPSTREAM_BENCH_PIPELINES")
        .unwrap_or_else(|_| "1,50".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "operator benchmark (kube-apiserver {}, profile {})",
        {
            let v = client.apiserver_version().await?;
            format!("{}.{}", v.major, v.minor)
        },
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    for n in sizes {
        run_size(&client, n).await?;
    }
    Ok(())
}
