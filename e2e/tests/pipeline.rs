//! The whole real-time path as real processes on the real local stack:
//! generator records (plus malformed ones) -> `shopstream gate` -> `shopstream process` +
//! `shopstream sink`. Checks every output against the gate's exact reference semantics, then
//! replays the raw topic from offset 0 with a fresh gate and checks that nothing changes.
//!
//! Needs `dev/stack up`, `eval "$(dev/stack env)"` and `cargo build -p shopstream`.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use elasticsearch::{Elasticsearch, SearchParts};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use mongodb::bson::doc;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use redis::AsyncCommands;
use shopstream_e2e::{Backends, es_count, read_topic, shopstream_bin, wait_for};
use shopstream_gate::rules::{RuleConfig, reference};
use shopstream_generator::{Generator, GeneratorConfig};
use shopstream_kafka::rdkafka::Message;
use shopstream_kafka::rdkafka::message::{Headers, OwnedMessage};
use shopstream_kafka::rdkafka::producer::FutureRecord;
use shopstream_kafka::rdkafka::util::Timeout;
use shopstream_kafka::{KafkaArgs, TopicSpec};
use shopstream_schema::Session;
use tokio::process::{Child, Command};

/// Names of one test run, so runs never share a topic, key, index or database. The workloads'
/// logs stay in `dir` (under the system temp dir) for a look after a failure.
struct Run {
    id: String,
    kafka: KafkaArgs,
    dir: PathBuf,
}

impl Run {
    fn new() -> Run {
        let id = format!("e2e_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let dir = std::env::temp_dir().join(&id);
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("pseudonym.key"),
            uuid::Uuid::new_v4().simple().to_string().repeat(2),
        )
        .expect("key file");
        let kafka = Backends::from_env().expect("stack settings").kafka;
        Run { id, kafka, dir }
    }

    fn topic(&self, name: &str) -> String {
        format!("{}.{name}", self.id)
    }

    /// Starts one workload with this run's configuration; `group` names its consumer group.
    fn spawn(&self, workload: &str, group: &str, metrics_port: u16) -> Child {
        let bin = shopstream_bin().expect("shopstream binary");
        let log = std::fs::File::create(self.dir.join(format!("{workload}-{group}.log")))
            .expect("log file");
        let metrics = format!("127.0.0.1:{metrics_port}");
        Command::new(bin)
            .arg(workload)
            .env("SHOPSTREAM_TOPIC_RAW", self.topic("raw"))
            .env("SHOPSTREAM_TOPIC_VALID", self.topic("valid"))
            .env("SHOPSTREAM_TOPIC_SUSPICIOUS", self.topic("suspicious"))
            .env("SHOPSTREAM_TOPIC_DEAD_LETTER", self.topic("dead-letter"))
            .env("SHOPSTREAM_GATE_REDIS_PREFIX", &self.id)
            .env("SHOPSTREAM_ES_INDEX_PREFIX", format!("{}-", self.id))
            .env("SHOPSTREAM_MONGO_DB", &self.id)
            .env("SHOPSTREAM_PSEUDONYM_KEY_FILE", self.dir.join("pseudonym.key"))
            .env("SHOPSTREAM_KAFKA_SESSION_TIMEOUT_MS", "6000")
            .env("SHOPSTREAM_CONSUMER_GROUP", format!("{}-{group}", self.id))
            .env("SHOPSTREAM_METRICS_ADDR", &metrics)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting shopstream {workload}: {e}"))
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// Sum of a metric's samples on a workload's `/metrics` (0 while it is not up).
async fn metric(port: u16, name: &str) -> f64 {
    let Ok(resp) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0.0;
    };
    let body = resp.text().await.unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn session_ids(messages: &[OwnedMessage]) -> HashSet<String> {
    messages
        .iter()
        .map(|m| {
            let s: Session = shopstream_schema::parse_session(m.payload().unwrap_or_default())
                .expect("outputs are valid sessions");
            s.session_id
        })
        .collect()
}

fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
}

async fn es_ids(es: &Elasticsearch, index: &str) -> HashSet<String> {
    let body = serde_json::json!({"size": 10000, "_source": false, "query": {"match_all": {}}});
    let resp: serde_json::Value = es
        .search(SearchParts::Index(&[index]))
        .body(body)
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("json");
    resp["hits"]["hits"]
        .as_array()
        .map(|hits| hits.iter().filter_map(|h| h["_id"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

async fn stop(mut child: Child, what: &str) {
    if let Some(pid) = child.id() {
        kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("SIGTERM");
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap_or_else(|_| panic!("{what} did not stop within 60 s of SIGTERM"))
        .expect("wait");
    assert!(status.success(), "{what} exited with {status} after SIGTERM");
}

/// State of the stores that a replay must not change.
#[derive(Debug, PartialEq)]
struct Stores {
    es_sessions: u64,
    es_products: u64,
    mongo: u64,
    hll: u64,
    per_user: HashMap<String, u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_routes_every_record_and_a_replay_changes_nothing() {
    const N: usize = 2_000;
    let run = Run::new();
    let backends = Backends::from_env().expect("stack settings");
    let es = backends.es_client().expect("elasticsearch");
    run.kafka.ensure_topics(&[TopicSpec::new(run.topic("raw"), 3)]).await.expect("raw topic");

    // Sessions with plenty of unknown devices and referrers, and malformed records between them.
    let config = GeneratorConfig { seed: 99, users: 400, unknown_share: 0.3, ..Default::default() };
    let sessions: Vec<Session> =
        Generator::new(config).expect("generator").take(N).map(|g| g.session).collect();
    let mut huge = sessions[0].to_json().into_bytes();
    huge.extend(std::iter::repeat_n(b' ', 300 * 1024));
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        (
            "wrong_type",
            sessions[1].to_json().replace("\"clicks\":", "\"clicks\":\"many\",\"x\":").into_bytes(),
        ),
        ("malformed_json", sessions[2].to_json().as_bytes()[..200].to_vec()),
        ("invalid_utf8", vec![0xff, 0xfe, 0x00, 0x9c, 0x42]),
        ("too_large", huge),
        ("missing_field", br#"{"sessionId": "only-an-id"}"#.to_vec()),
    ];
    let mut records: Vec<(String, Vec<u8>)> =
        sessions.iter().map(|s| (s.user_id.clone(), s.to_json().into_bytes())).collect();
    for (i, (_, bytes)) in malformed.iter().enumerate() {
        records.insert(300 * (i + 1), (format!("junk-{i}"), bytes.clone()));
    }

    let expected = reference(sessions.iter(), &RuleConfig::default());
    let expected_valid: HashSet<String> = expected.valid();
    let expected_suspicious: HashSet<String> = expected.suspicious();
    assert!(expected_suspicious.len() > 20, "the test needs suspicious sessions");

    let (gate_port, proc_port, sink_port) = (free_port(), free_port(), free_port());
    let gate = run.spawn("gate", "gate", gate_port);
    let processor = run.spawn("process", "processor", proc_port);
    let sink = run.spawn("sink", "sink", sink_port);

    let producer = run.kafka.producer("e2e").expect("producer");
    let raw = run.topic("raw");
    let mut deliveries: FuturesUnordered<_> = records
        .iter()
        .map(|(key, payload)| {
            producer.send(FutureRecord::to(&raw).key(key).payload(payload), Timeout::Never)
        })
        .collect();
    while let Some(d) = deliveries.next().await {
        d.map_err(|(e, _)| e).expect("delivered");
    }

    let total = (N + malformed.len()) as f64;
    let valid_n = expected_valid.len() as f64;
    let limit = Duration::from_secs(300);
    wait_for("the gate to process every record", limit, || async {
        metric(gate_port, "shopstream_gate_records_in_total").await >= total
    })
    .await;
    wait_for("the processor and the sink to store every valid session", limit, || async {
        metric(proc_port, "shopstream_processor_sessions_out_total").await >= valid_n
            && metric(sink_port, "shopstream_sink_records_in_total").await >= valid_n
    })
    .await;

    // Topics: exactly the expected routing.
    let valid = read_topic(&run.kafka, &run.topic("valid")).await;
    let suspicious = read_topic(&run.kafka, &run.topic("suspicious")).await;
    let dead = read_topic(&run.kafka, &run.topic("dead-letter")).await;
    assert_eq!(valid.len(), expected_valid.len(), "valid records");
    assert_eq!(session_ids(&valid), expected_valid);
    assert_eq!(suspicious.len(), expected_suspicious.len(), "suspicious records");
    assert_eq!(session_ids(&suspicious), expected_suspicious);
    for m in &suspicious {
        assert!(header(m, "shopstream.reason").is_some_and(|r| r.contains("unknown")), "reason");
    }
    let mut reasons: Vec<String> =
        dead.iter().filter_map(|m| header(m, "shopstream.reason")).collect();
    reasons.sort();
    let mut want: Vec<String> = malformed.iter().map(|(r, _)| r.to_string()).collect();
    want.sort();
    assert_eq!(
        reasons, want,
        "each malformed record reaches the dead-letter topic with its reason"
    );

    // Stores: exactly the valid sessions, by id, and no e-mail in clear.
    let sessions_index = format!("{}-sessions", run.id);
    assert_eq!(es_ids(&es, &sessions_index).await, expected_valid, "Elasticsearch sessions");
    let mongo = backends.mongo_client().await.expect("mongo");
    let collection = mongo.database(&run.id).collection::<mongodb::bson::Document>("user_sessions");
    let ids: HashSet<String> = collection
        .distinct("_id", doc! {})
        .await
        .expect("distinct")
        .into_iter()
        .filter_map(|b| b.as_str().map(String::from))
        .collect();
    assert_eq!(ids, expected_valid, "MongoDB user_sessions");
    let emails: HashSet<&str> = sessions.iter().map(|s| s.email.as_str()).collect();
    let one = collection.find_one(doc! {}).await.expect("find").expect("a document");
    let stored_email = one.get_str("email").unwrap_or_default();
    assert!(!emails.contains(stored_email), "e-mail stored in clear: {stored_email}");

    // Redis: HyperLogLog within 2 %, per-user counts exact.
    let mut redis = backends.redis_connection().await.expect("redis");
    let snapshot = |es_products: u64, es_sessions: u64, mongo: u64, hll: u64, per_user| Stores {
        es_sessions,
        es_products,
        mongo,
        hll,
        per_user,
    };
    let hll_key = format!("{{{}}}:users", run.id);
    let per_user_key = format!("{{{}}}:sessions-per-user", run.id);
    let hll: u64 =
        redis::cmd("PFCOUNT").arg(&hll_key).query_async(&mut redis).await.expect("pfcount");
    let exact = expected.unique_users.len() as f64;
    assert!((hll as f64 - exact).abs() / exact <= 0.02, "HyperLogLog {hll} vs exact {exact}");
    let per_user: HashMap<String, u64> = redis.hgetall(&per_user_key).await.expect("hgetall");
    assert_eq!(per_user, expected.sessions_per_user, "sessions per user");
    let products_index = format!("{}-products", run.id);
    let before = snapshot(
        es_count(&es, &products_index).await,
        es_count(&es, &sessions_index).await,
        collection.count_documents(doc! {}).await.expect("count"),
        hll,
        per_user,
    );

    // Replay: a new gate with a new consumer group reads the raw topic again from offset 0.
    stop(gate, "gate").await;
    let replay_port = free_port();
    let replay = run.spawn("gate", "gate-replay", replay_port);
    wait_for("the replaying gate to re-read every record", limit, || async {
        metric(replay_port, "shopstream_gate_records_in_total").await >= total
    })
    .await;
    wait_for("the processor and sink to take the re-emitted records", limit, || async {
        metric(proc_port, "shopstream_processor_records_in_total").await >= 2.0 * valid_n
            && metric(sink_port, "shopstream_sink_records_in_total").await >= 2.0 * valid_n
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hll: u64 =
        redis::cmd("PFCOUNT").arg(&hll_key).query_async(&mut redis).await.expect("pfcount");
    let per_user: HashMap<String, u64> = redis.hgetall(&per_user_key).await.expect("hgetall");
    let after = snapshot(
        es_count(&es, &products_index).await,
        es_count(&es, &sessions_index).await,
        collection.count_documents(doc! {}).await.expect("count"),
        hll,
        per_user,
    );
    assert_eq!(after, before, "a replay from offset 0 changes no count");
    assert_eq!(es_ids(&es, &sessions_index).await, expected_valid);

    for (child, what) in [(replay, "replaying gate"), (processor, "processor"), (sink, "sink")] {
        stop(child, what).await;
    }
    let _ = mongo.database(&run.id).drop().await;
    no_secret_in_logs(&run.dir);
}

/// Every workload log of the run is free of every secret the workloads were given: the
/// credential files `dev/stack env --secure` names (none in the plain profile) and the
/// pseudonym key.
fn no_secret_in_logs(dir: &std::path::Path) {
    let mut secrets: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SHOPSTREAM_") && k.ends_with("_PASSWORD_FILE"))
        .filter_map(|(k, path)| Some((k, std::fs::read_to_string(path).ok()?.trim().to_string())))
        .collect();
    let key = std::fs::read_to_string(dir.join("pseudonym.key")).expect("pseudonym key");
    secrets.push(("pseudonym key".into(), key));
    let logs: Vec<_> = std::fs::read_dir(dir)
        .expect("run dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    assert!(logs.len() >= 4, "the workloads' logs: {logs:?}");
    for log in &logs {
        let text = std::fs::read_to_string(log).expect("log");
        assert!(!text.is_empty(), "{} is empty: the workloads log at info", log.display());
        for (what, value) in &secrets {
            assert!(value.len() >= 8, "{what} is too short to grep for");
            assert!(!text.contains(value.as_str()), "{what} appears in {}", log.display());
        }
    }
}
