//! The operator never lends its identity: the real `shopstream-operator` binary, given a
//! ServiceAccount-style token file (`AWS_WEB_IDENTITY_TOKEN_FILE`, which the MongoDB driver's
//! OIDC `ENVIRONMENT:k8s` provider reads) and its own API-server token (the kubeconfig's),
//! reconciles pipelines whose backends are recording servers. A pipeline that asks for an
//! ambient MongoDB mechanism or Kafka credentials in clear is refused in `SpecValid` naming the
//! field, and its recording server sees no connection at all; a valid pipeline pointed at a
//! recording server makes the operator connect (so the check can fail) but neither token nor
//! any Secret value reaches it.
//!
//! Needs `dev/stack up --with-kube` and `eval "$(dev/stack env)"`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use kube::api::{Api, PostParams};
use shopstream_operator::crd::{AnalyticsPipeline, SecretRef};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(60);

/// A TCP server that accepts every connection and records every byte it receives (it never
/// answers, so clients keep sending what they send first: handshakes, credentials).
#[derive(Clone)]
struct Recorder {
    port: u16,
    bytes: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<usize>>,
}

impl Recorder {
    async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let rec = Recorder { port, bytes: Arc::default(), connections: Arc::default() };
        let r = rec.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                *r.connections.lock().unwrap() += 1;
                let bytes = r.bytes.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = sock.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        bytes.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        rec
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    fn contains(&self, needle: &str) -> bool {
        let bytes = self.bytes.lock().unwrap();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    }
}

/// The bearer token of the kubeconfig the operator runs with: its identity at the API server.
fn kubeconfig_token() -> String {
    let text = std::fs::read_to_string(need_env("KUBECONFIG")).expect("kubeconfig");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("token:").map(|t| t.trim().to_string()))
        .expect("the test kubeconfig authenticates with a token")
}

fn pointed_at(name: &str, ns: &str, tag: &str, rec: &Recorder) -> AnalyticsPipeline {
    let mut p = pipeline(name, ns, tag);
    let addr = format!("127.0.0.1:{}", rec.port);
    p.spec.kafka.bootstrap_servers = addr.clone();
    let mut v = serde_json::to_value(&p).expect("json");
    v["spec"]["mongodb"]["external"]["url"] =
        format!("mongodb://{addr}/?directConnection=true&serverSelectionTimeoutMS=2000").into();
    v["spec"]["redis"]["external"]["url"] = format!("redis://{addr}").into();
    v["spec"]["elasticsearch"]["external"]["url"] = format!("http://{addr}").into();
    serde_json::from_value(v).expect("pipeline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_sends_neither_its_tokens_nor_secrets_to_backends_a_pipeline_names() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNs::new(&client, "op-identity").await;
    let api: Api<AnalyticsPipeline> = Api::namespaced(client.clone(), &ns.name);
    let tag = suffix();
    let sa_token = format!("sa-token-{}", uuid::Uuid::new_v4().simple());
    let dir = std::env::temp_dir().join(format!("op-identity-{tag}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let token_file = dir.join("token");
    std::fs::write(&token_file, &sa_token).expect("token file");
    let kafka_password = format!("kafka-password-{tag}-0123456789");
    ns.secret("shopstream-pseudonym", &[("key", "k")]).await;
    ns.secret("kafka-creds", &[("username", "app"), ("password", &kafka_password)]).await;

    let refused_rec = Recorder::start().await;
    let valid_rec = Recorder::start().await;

    // The real binary, with the ambient credentials a pod would have.
    let mut operator = tokio::process::Command::new(env!("CARGO_BIN_EXE_shopstream-operator"))
        .arg("run")
        .env("SHOPSTREAM_OPERATOR_NAMESPACE", &ns.name)
        .env("SHOPSTREAM_OPERATOR_LEASE_NAMESPACE", &ns.name)
        .env("SHOPSTREAM_OPERATOR_METRICS_ADDR", "127.0.0.1:0")
        .env("SHOPSTREAM_OPERATOR_REQUEUE_SECONDS", "3")
        .env("POD_NAME", format!("identity-{tag}"))
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .env("AZURE_FEDERATED_TOKEN_FILE", &token_file)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start shopstream-operator");

    // 1. Ambient MongoDB mechanisms: refused naming the field, the server never contacted.
    for (name, mechanism) in [("oidc", "MONGODB-OIDC"), ("aws", "MONGODB-AWS")] {
        let mut p = pointed_at(name, &ns.name, &tag, &refused_rec);
        let mut v = serde_json::to_value(&p).expect("json");
        v["spec"]["mongodb"]["external"]["url"] = format!(
            "mongodb://127.0.0.1:{}/?authMechanism={mechanism}&authMechanismProperties=ENVIRONMENT:k8s",
            refused_rec.port
        )
        .into();
        p = serde_json::from_value(v).expect("pipeline");
        api.create(&PostParams::default(), &p).await.expect("accepted by the schema");
    }
    // 2. Kafka credentials without TLS: refused, the password never sent.
    let mut clear = pointed_at("clear", &ns.name, &tag, &refused_rec);
    clear.spec.kafka.credentials_secret = Some(SecretRef { name: "kafka-creds".into() });
    api.create(&PostParams::default(), &clear).await.expect("accepted by the schema");
    for (name, field) in [
        ("oidc", "spec.mongodb.external.url"),
        ("aws", "spec.mongodb.external.url"),
        ("clear", "spec.kafka"),
    ] {
        let (status, _, message, _) =
            eventually(&format!("{name}: SpecValid=False"), T, || {
                let api = api.clone();
                async move {
                    condition(&api.get(name).await.ok()?, "SpecValid").filter(|c| c.0 == "False")
                }
            })
            .await;
        assert_eq!(status, "False");
        assert!(message.contains(field), "{name}: {message:?} does not name {field}");
    }

    // 3. A valid pipeline whose backends are the other recorder: the operator connects.
    let valid = pointed_at("valid", &ns.name, &tag, &valid_rec);
    api.create(&PostParams::default(), &valid).await.expect("create");
    eventually("the operator to connect to the valid pipeline's backends", T, || {
        let n = valid_rec.connections();
        async move { (n >= 2).then_some(()) }
    })
    .await;
    // Give every reconcile of every pipeline time to do what it would do.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(operator.try_wait().expect("status").is_none(), "the operator exited");

    assert_eq!(refused_rec.connections(), 0, "a refused pipeline's backend was contacted");
    let api_token = kubeconfig_token();
    for (what, secret) in [
        ("the ServiceAccount-style token", sa_token.as_str()),
        ("the operator's API-server token", api_token.as_str()),
        ("the Kafka password", kafka_password.as_str()),
    ] {
        assert!(!valid_rec.contains(secret), "{what} reached a pipeline's backend");
        assert!(!refused_rec.contains(secret), "{what} reached a refused pipeline's backend");
    }

    operator.kill().await.expect("stop the operator");
    ns.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
