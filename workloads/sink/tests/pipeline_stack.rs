//! Gate + sink on the real local stack (Kafka protocol broker, Redis with RedisBloom,
//! MongoDB wire server): a gate process killed with SIGKILL mid-stream and restarted, the sink
//! writing MongoDB, then a full replay. Needs `dev/stack up` and `eval "$(dev/stack env)"`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../gate/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mongodb::bson::{Document, doc};
use prometheus::Registry;
use shopstream_gate::rules::{RuleConfig, reference};
use shopstream_gate::{Gate, GateArgs, Totals};
use shopstream_pseudonym::Pseudonymizer;
use shopstream_schema::parse_session;
use shopstream_sink::document::{UserSessionDocument, flatten};
use shopstream_sink::{Sink, SinkArgs, SinkTotals};
use tokio_util::sync::CancellationToken;

const CHILD_ENV: &str = "SHOPSTREAM_TEST_GATE_CHILD";
const KEY: &str = "integration-test-pseudonym-key-0001";

/// Not a test: the entry point of the gate child process that the crash test starts (it
/// re-executes this test binary with `--exact child_gate_process --ignored`). It runs the real
/// `shopstream_gate::run` (signals, metrics endpoint and all) configured from the environment.
#[test]
#[ignore = "entry point of the gate child process, started by the crash test"]
fn child_gate_process() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("1") {
        return;
    }
    let args: GateArgs = shopstream_test_support::parse_args(&[]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(shopstream_gate::run(args)).unwrap();
}

fn spawn_gate_child(args: &GateArgs) -> Child {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args(["--exact", "child_gate_process", "--ignored", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .env("SHOPSTREAM_KAFKA", &args.kafka.bootstrap)
        .env("SHOPSTREAM_KAFKA_SESSION_TIMEOUT_MS", "6000")
        .env("SHOPSTREAM_CONSUMER_GROUP", &args.group)
        .env("SHOPSTREAM_TOPIC_RAW", &args.input_topic)
        .env("SHOPSTREAM_TOPIC_VALID", &args.valid_topic)
        .env("SHOPSTREAM_TOPIC_SUSPICIOUS", &args.suspicious_topic)
        .env("SHOPSTREAM_TOPIC_DEAD_LETTER", &args.dead_letter_topic)
        .env("SHOPSTREAM_REDIS_URL", &args.redis.redis_url)
        .env("SHOPSTREAM_GATE_REDIS_PREFIX", &args.redis_prefix)
        .env("SHOPSTREAM_GATE_BLOOM_ERROR_RATE", args.bloom_error_rate.to_string())
        .env("SHOPSTREAM_GATE_BLOOM_CAPACITY", args.bloom_capacity.to_string())
        .env("SHOPSTREAM_GATE_MAX_BATCH", "50")
        .env("SHOPSTREAM_METRICS_ADDR", "127.0.0.1:0")
        .env("SHOPSTREAM_RETRY_INITIAL_MS", "50")
        .env("SHOPSTREAM_RETRY_MAX_MS", "1000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the gate child process")
}

fn sink_args(topic: &str, db: &str) -> SinkArgs {
    let dead = format!("{topic}.sink-dead-letter");
    support::sink_args(topic, &dead, &format!("sink-{}", suffix()), db, KEY)
}

async fn redis_total(url: &str, prefix: &str) -> (u64, HashMap<String, u64>) {
    let mut con = redis_con(url).await;
    let counts: HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(format!("{{{prefix}}}:sessions-per-user"))
        .query_async(&mut con)
        .await
        .unwrap();
    (counts.values().sum(), counts)
}

async fn all_docs(coll: &mongodb::Collection<Document>) -> Vec<Document> {
    use futures::TryStreamExt;
    coll.find(doc! {}).sort(doc! { "_id": 1 }).await.unwrap().try_collect().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_sigkilled_mid_stream_and_sink_land_exactly_the_valid_sessions_and_replay_changes_nothing()
 {
    let redis_url = env("SHOPSTREAM_REDIS_URL");
    let mongo_url = env("SHOPSTREAM_MONGO_URL");
    let topics = Topics::new("pipeline");
    topics.create(3).await;
    let prefix = format!("test:pipeline:{}", suffix());
    let db_name = format!("test_sink_{}", suffix());

    let sessions = sessions(23, 6000, 800);
    let expected = reference(&sessions, &RuleConfig::default());
    let want_valid: HashSet<String> = expected.valid();
    let want_suspicious = expected.verdicts.len() - want_valid.len();

    // The sink runs in-process the whole time.
    let sink = Sink::new(sink_args(&topics.valid, &db_name), &Registry::new()).await.unwrap();
    let sink_totals: Arc<SinkTotals> = sink.totals();
    let sink_cancel = CancellationToken::new();
    let sink_task = tokio::spawn(sink.run(sink_cancel.clone()));

    // Sessions arrive in a steady stream while the gate works, is killed and restarted.
    let raws: Vec<Raw> = sessions.iter().map(Raw::session).collect();
    let topic = topics.raw.clone();
    let publisher = tokio::spawn(async move {
        let producer = producer();
        for chunk in raws.chunks(150) {
            publish(&producer, &topic, chunk).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let mut gate_args = gate_args(&topics, &redis_url, &prefix, &format!("gate-{}", suffix()));
    gate_args.redis_prefix = prefix.clone();
    let mut child = spawn_gate_child(&gate_args);
    let n = sessions.len() as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (done, _) = redis_total(&redis_url, &prefix).await;
        if done >= n / 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the gate child made no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().expect("SIGKILL the gate"); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "the gate must have died from SIGKILL");
    let (at_kill, _) = redis_total(&redis_url, &prefix).await;
    assert!(at_kill < n, "the kill must land mid-stream ({at_kill} of {n} counted)");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Restart: the new process picks up from the last commit.
    let mut child = spawn_gate_child(&gate_args);
    publisher.await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let (done, _) = redis_total(&redis_url, &prefix).await;
        let landed = SinkTotals::get(&sink_totals.written);
        if done >= n && landed >= want_valid.len() as u64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pipeline stalled at {done}/{n}, {landed} docs"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Graceful stop of the restarted gate with SIGTERM: it must exit cleanly.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "gate exit after SIGTERM: {status:?}");

    // Redis: exact per-user counts (nothing counted twice despite the kill), HLL within 2 %.
    let (total, counts) = redis_total(&redis_url, &prefix).await;
    assert_eq!(total, n);
    assert_eq!(counts, expected.sessions_per_user);
    let mut con = redis_con(&redis_url).await;
    let hll: u64 = redis::cmd("PFCOUNT")
        .arg(format!("{{{prefix}}}:users"))
        .query_async(&mut con)
        .await
        .unwrap();
    let exact = expected.unique_users.len() as f64;
    assert!((hll as f64 - exact).abs() / exact <= 0.02, "HLL {hll} vs {exact}");

    // Topics: every expected session, possibly re-sent after the kill but then identical.
    let valid =
        read_all(&topics.valid, want_valid.len(), Duration::from_secs(60), Duration::from_secs(3))
            .await;
    let mut seen: HashMap<String, &Out> = HashMap::new();
    for o in &valid {
        let s = parse_session(&o.payload).unwrap();
        if let Some(first) = seen.insert(s.session_id.clone(), o) {
            assert_eq!(
                (&first.key, &first.payload),
                (&o.key, &o.payload),
                "re-sent record differs"
            );
        }
    }
    assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), want_valid);
    let suspicious = read_all(
        &topics.suspicious,
        want_suspicious,
        Duration::from_secs(60),
        Duration::from_secs(3),
    )
    .await;
    let distinct: HashSet<String> =
        suspicious.iter().map(|o| parse_session(&o.payload).unwrap().session_id).collect();
    assert_eq!(distinct.len(), want_suspicious);

    // MongoDB: exactly the valid sessions, each the flattened, pseudonymised record.
    let client = mongodb::Client::with_uri_str(&mongo_url).await.unwrap();
    let db = client.database(&db_name);
    let coll = db.collection::<Document>("user_sessions");
    let docs = all_docs(&coll).await;
    assert_eq!(docs.len(), want_valid.len());
    let pseudonyms = Pseudonymizer::new(KEY.as_bytes()).unwrap();
    let by_id: HashMap<&str, &shopstream_schema::Session> =
        sessions.iter().map(|s| (s.session_id.as_str(), s)).collect();
    for d in &docs {
        let typed: UserSessionDocument = mongodb::bson::from_document(d.clone()).unwrap();
        assert!(want_valid.contains(&typed.id));
        assert_eq!(typed, flatten(by_id[typed.id.as_str()], &pseudonyms));
    }
    let indexes = coll.list_index_names().await.unwrap();
    assert!(indexes.contains(&"userId_1".to_string()), "{indexes:?}");
    assert!(indexes.contains(&"sessionTimestamp_1".to_string()), "{indexes:?}");

    // Full replay of the raw topic from offset 0 through a new gate group: no count changes,
    // the sink rewrites identical documents.
    let before_in = SinkTotals::get(&sink_totals.records_in);
    let replay_args = GateArgs { group: format!("gate-replay-{}", suffix()), ..gate_args };
    let gate = Gate::new(replay_args, &Registry::new()).unwrap();
    let gate_totals = gate.totals();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(gate.run(cancel.clone()));
    let gt = gate_totals.clone();
    wait_for("the replay", Duration::from_secs(180), || {
        std::future::ready(Totals::get(&gt.records_in) >= n)
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(Totals::get(&gate_totals.replayed), n);
    let st = sink_totals.clone();
    let want_in = before_in + want_valid.len() as u64;
    wait_for("the sink to absorb the replay", Duration::from_secs(120), || {
        std::future::ready(SinkTotals::get(&st.records_in) >= want_in)
    })
    .await;
    assert_eq!(redis_total(&redis_url, &prefix).await.1, expected.sessions_per_user);
    assert_eq!(all_docs(&coll).await, docs, "the replay changed MongoDB");

    sink_cancel.cancel();
    sink_task.await.unwrap().unwrap();
    db.drop().await.unwrap();
    redis_cleanup(&redis_url, &prefix).await;
}
