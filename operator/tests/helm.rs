//! The Helm chart: `helm lint`, `helm template` validated against the Kubernetes 1.30 schemas,
//! and the chart's RBAC proven sufficient by running the operator with the chart's
//! ServiceAccount token against the real API server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use shopstream_operator::crd::AnalyticsPipeline;
use shopstream_test_support::helm;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../helm/shopstream-operator");

fn documents(yaml: &str) -> Vec<serde_json::Value> {
    yaml.split("\n---")
        .filter_map(|d| serde_norway::from_str::<serde_json::Value>(d).ok())
        .filter(|v| v.is_object())
        .collect()
}

#[test]
fn chart_lints_and_renders_valid_manifests() {
    let lint = helm(&["lint", CHART]);
    assert!(lint.contains("0 chart(s) failed"), "{lint}");
    for extra in [&[][..], &["--set", "watchNamespace=shop"][..]] {
        let mut args = vec!["template", "demo", CHART, "--namespace", "shop-system"];
        args.extend_from_slice(extra);
        let out = helm(&args);
        let kinds: Vec<String> =
            documents(&out).iter().map(|d| d["kind"].as_str().unwrap_or("").to_string()).collect();
        for want in ["ServiceAccount", "Deployment", "Service", "RoleBinding"] {
            assert!(kinds.iter().any(|k| k == want), "{want} missing in {kinds:?}");
        }
        let path = std::env::temp_dir().join(format!("shopstream-helm-{}.yaml", suffix()));
        std::fs::write(&path, &out).expect("write");
        let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/kubernetes-validate");
        let v = Command::new(tool)
            .args(["-k", "1.30.0", "--strict"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{tool} missing ({e}): install the oracles venv"));
        let _ = std::fs::remove_file(&path);
        let stdout = String::from_utf8_lossy(&v.stdout);
        assert!(v.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&v.stderr));
        assert_eq!(stdout.matches("passed for resource").count(), kinds.len(), "{stdout}");
    }
    // the chart ships the generated CRD unchanged
    let crd = std::fs::read_to_string(format!("{CHART}/crds/analyticspipeline.yaml")).expect("crd");
    assert_eq!(crd, shopstream_operator::crd_yaml().expect("crd"));
}

/// Applies the chart's RBAC, then runs the operator as the chart's ServiceAccount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_is_enough_to_reconcile() {
    let admin = client().await;
    install_crd(&admin).await;
    let ns = TestNs::new(&admin, "op-rbac").await;
    ns.secret("shopstream-pseudonym", &[("key", "k")]).await;
    let release = format!("rbac{}", suffix());
    let out = helm(&["template", &release, CHART, "--namespace", &ns.name]);
    let mut cluster_scoped = Vec::new();
    for doc in documents(&out) {
        let kind = doc["kind"].as_str().unwrap_or("").to_string();
        if !["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
            .contains(&kind.as_str())
        {
            continue;
        }
        let (group, version) = match doc["apiVersion"].as_str().unwrap_or("").split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), doc["apiVersion"].as_str().unwrap_or("").to_string()),
        };
        let ar = ApiResource {
            group: group.clone(),
            version: version.clone(),
            api_version: doc["apiVersion"].as_str().unwrap_or("").to_string(),
            kind: kind.clone(),
            plural: format!("{}s", kind.to_lowercase()),
        };
        let name = doc["metadata"]["name"].as_str().expect("name").to_string();
        let obj: DynamicObject = serde_json::from_value(doc.clone()).expect("object");
        let api: Api<DynamicObject> = if kind.starts_with("Cluster") {
            cluster_scoped.push((ar.clone(), name.clone()));
            Api::all_with(admin.clone(), &ar)
        } else {
            Api::namespaced_with(admin.clone(), &ns.name, &ar)
        };
        api.patch(&name, &PatchParams::apply("shopstream-tests").force(), &Patch::Apply(&obj))
            .await
            .unwrap_or_else(|e| panic!("apply {kind}/{name}: {e}"));
    }
    assert_eq!(cluster_scoped.len(), 2, "ClusterRole + ClusterRoleBinding expected");

    // A token for the chart's ServiceAccount.
    let sa_name = format!("{release}-shopstream-operator");
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns.name);
    let tr: TokenRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": { "audiences": [], "expirationSeconds": 3600 }
    }))
    .expect("token request");
    let tr: TokenRequest = sas
        .create_subresource("token", &sa_name, &PostParams::default(), &tr)
        .await
        .expect("TokenRequest");
    let token = tr.status.expect("token status").token;
    let mut cfg = kube::Config::infer().await.expect("kubeconfig");
    cfg.auth_info = kube::config::AuthInfo {
        token: Some(secrecy::SecretString::from(token)),
        ..Default::default()
    };
    let sa_client = kube::Client::try_from(cfg).expect("client");
    // really the ServiceAccount, not the admin: it may not list namespaces
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(sa_client.clone());
    match nss.list(&Default::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("the ServiceAccount token should be refused namespaces: {other:?}"),
    }

    let op = Operator::start(&sa_client, &ns.name, "rbac-a").await;
    let api: Api<AnalyticsPipeline> = Api::namespaced(admin.clone(), &ns.name);
    let tag = suffix();
    api.create(&PostParams::default(), &pipeline("shop", &ns.name, &tag)).await.expect("create");
    let p = eventually("reconciled by the ServiceAccount", Duration::from_secs(60), || {
        let api = api.clone();
        async move {
            let p = api.get("shop").await.ok()?;
            let ok = condition(&p, "TopicsReady")?.0 == "True"
                && condition(&p, "SpecValid")?.0 == "True";
            ok.then_some(p)
        }
    })
    .await;
    assert_eq!(p.status.as_ref().and_then(|s| s.observed_generation), Some(1));
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns.name);
    assert!(deployments.get_opt("shop-gate").await.expect("get").is_some());
    assert_eq!(op.metrics.errors.with_label_values(&["kube"]).get(), 0, "RBAC denied a request");
    // events were allowed too
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns.name);
    let list = events.list(&Default::default()).await.expect("events");
    assert!(
        list.items.iter().any(|e| e.reporting_controller.as_deref() == Some("shopstream-operator"))
    );

    api.delete("shop", &DeleteParams::default()).await.expect("delete");
    // The operator stops the streaming pods (up to 120 s) before it deletes the topics and
    // drops its finalizer: on a busy node that outlasts a minute.
    let deleting = std::time::Instant::now();
    eventually("pipeline gone", Duration::from_secs(180), || {
        let api = api.clone();
        async move { api.get_opt("shop").await.ok()?.is_none().then_some(()) }
    })
    .await;
    eprintln!("pipeline deleted in {:.1} s", deleting.elapsed().as_secs_f64());
    op.stop().await;
    for (ar, name) in cluster_scoped {
        let api: Api<DynamicObject> = Api::all_with(admin.clone(), &ar);
        let _ = api.delete(&name, &DeleteParams::default()).await;
    }
    ns.cleanup().await;
}
