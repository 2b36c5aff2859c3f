//! Two operator processes (the built binary) against the real API server: only the Lease holder
//! reconciles; after the leader is killed (SIGKILL, no release) the other takes over.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use shopstream_operator::crd::AnalyticsPipeline;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const T: Duration = Duration::from_secs(60);
/// Deletion waits for the streaming pods (the operator allows them 120 s per attempt).
const DELETION: Duration = Duration::from_secs(180);

struct Proc {
    child: Child,
    metrics: String,
}

async fn spawn(ns: &str, identity: &str) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shopstream-operator"))
        .args([
            "run",
            "--watch-namespace",
            ns,
            "--lease-name",
            "shopstream-operator",
            "--identity",
            identity,
            "--lease-seconds",
            "4",
            "--lease-grace-seconds",
            "1",
            "--requeue-seconds",
            "5",
            "--metrics-addr",
            "127.0.0.1:0",
            "--print-metrics-addr",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn operator");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(T, lines.next_line())
        .await
        .expect("operator printed its metrics address")
        .expect("read")
        .expect("a line");
    let metrics = line.strip_prefix("metrics ").expect("metrics line").to_string();
    Proc { child, metrics }
}

/// Reads one metric value (0 when absent) over plain HTTP.
async fn metric(addr: &str, name: &str) -> Option<f64> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await.ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    Some(
        body.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

async fn holder(api: &Api<Lease>) -> Option<String> {
    api.get_opt("shopstream-operator").await.ok()??.spec?.holder_identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_a_survivor_takes_over() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNs::new(&client, "op-leader").await;
    ns.secret("shopstream-pseudonym", &[("key", "k")]).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);

    let mut a = spawn(&ns.name, "replica-a").await;
    eventually("replica-a leads", T, || {
        let addr = a.metrics.clone();
        async move { (metric(&addr, "shopstream_operator_leader").await? == 1.0).then_some(()) }
    })
    .await;
    let b = spawn(&ns.name, "replica-b").await;
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-a"));

    let tag = suffix();
    let api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &ns.name);
    let mut p = pipeline("shop", &ns.name, &tag);
    p.spec.kafka.delete_topics_on_deletion = true;
    api.create(&PostParams::default(), &p).await.expect("create");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    eventually("children from the leader", T, || {
        let d = deployments.clone();
        async move { d.get_opt("shop-gate").await.ok()?.map(|_| ()) }
    })
    .await;
    // Give the follower time to (wrongly) act: several requeue periods.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let a_count =
        metric(&a.metrics, "shopstream_operator_reconciles_total").await.expect("a metrics");
    let b_count =
        metric(&b.metrics, "shopstream_operator_reconciles_total").await.expect("b metrics");
    assert!(a_count >= 1.0, "leader did not reconcile");
    assert_eq!(b_count, 0.0, "the follower reconciled");
    assert_eq!(metric(&b.metrics, "shopstream_operator_leader").await, Some(0.0));

    // Kill the leader without letting it release the Lease.
    a.child.start_kill().expect("kill a");
    let _ = a.child.wait().await;
    eventually("replica-b takes over", T, || {
        let addr = b.metrics.clone();
        async move { (metric(&addr, "shopstream_operator_leader").await? == 1.0).then_some(()) }
    })
    .await;
    assert_eq!(holder(&leases).await.as_deref(), Some("replica-b"));
    // The new leader reconciles: a deleted child comes back.
    let old = deployments.get("shop-gate").await.expect("gate").uid();
    deployments.delete("shop-gate", &DeleteParams::default()).await.expect("delete");
    eventually("gate recreated by replica-b", T, || {
        let d = deployments.clone();
        let old = old.clone();
        async move { d.get_opt("shop-gate").await.ok()?.filter(|g| g.uid() != old).map(|_| ()) }
    })
    .await;
    // (the counter is bumped when the reconcile that recreated the child completes)
    eventually("replica-b counted its reconciles", T, || {
        let addr = b.metrics.clone();
        async move {
            (metric(&addr, "shopstream_operator_reconciles_total").await? >= 1.0).then_some(())
        }
    })
    .await;

    // Clean up through the new leader (finalizer deletes the topics).
    api.delete("shop", &DeleteParams::default()).await.expect("delete");
    eventually("pipeline gone", DELETION, || {
        let api = api.clone();
        async move { api.get_opt("shop").await.ok()?.is_none().then_some(()) }
    })
    .await;
    drop(b);
    ns.cleanup().await;
}
