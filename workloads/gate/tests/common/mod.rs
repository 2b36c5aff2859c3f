//! Helpers for the gate's integration tests on the real local stack (`dev/stack up`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use shopstream_gate::GateArgs;
use shopstream_generator::{Generator, GeneratorConfig};
use shopstream_kafka::{KafkaArgs, TopicSpec};
use shopstream_schema::Session;

#[allow(unused_imports)] // Not every test binary that includes this module waits.
pub use shopstream_test_support::{env, wait_for};

/// A short random suffix for names that must not collide.
pub fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

/// The topics of one test.
#[derive(Debug, Clone)]
pub struct Topics {
    pub raw: String,
    pub valid: String,
    pub suspicious: String,
    pub dead_letter: String,
}

impl Topics {
    pub fn new(tag: &str) -> Topics {
        let s = suffix();
        Topics {
            raw: format!("t-{tag}-{s}.raw"),
            valid: format!("t-{tag}-{s}.valid"),
            suspicious: format!("t-{tag}-{s}.suspicious"),
            dead_letter: format!("t-{tag}-{s}.dead-letter"),
        }
    }

    pub async fn create(&self, partitions: i32) {
        let specs: Vec<TopicSpec> = [&self.raw, &self.valid, &self.suspicious, &self.dead_letter]
            .into_iter()
            .map(|t| TopicSpec::new(t.as_str(), partitions))
            .collect();
        kafka().ensure_topics(&specs).await.expect("create topics");
    }
}

pub fn kafka() -> KafkaArgs {
    KafkaArgs::for_bootstrap(env("SHOPSTREAM_KAFKA"))
}

/// Gate arguments for a test: its own topics, group and Redis prefix, a tight Bloom filter
/// (so that false positives cannot disturb exact counts) and a free metrics port.
pub fn gate_args(topics: &Topics, redis_url: &str, prefix: &str, group: &str) -> GateArgs {
    let mut args: GateArgs = shopstream_test_support::parse_args(&[]).unwrap();
    args.kafka = kafka();
    args.group = group.to_string();
    args.input_topic = topics.raw.clone();
    args.valid_topic = topics.valid.clone();
    args.suspicious_topic = topics.suspicious.clone();
    args.dead_letter_topic = topics.dead_letter.clone();
    args.redis.redis_url = redis_url.to_string();
    args.redis_prefix = prefix.to_string();
    args.bloom_error_rate = 1e-7;
    args.bloom_capacity = 100_000;
    args.metrics_addr = "127.0.0.1:0".parse().unwrap();
    args.retry_initial_ms = 50;
    args.retry_max_ms = 1_000;
    args
}

/// `n` generated sessions of `users` users, with plenty of `unknown` devices/referrers.
pub fn sessions(seed: u64, n: usize, users: usize) -> Vec<Session> {
    let config = GeneratorConfig { seed, users, unknown_share: 0.25, ..Default::default() };
    Generator::new(config).expect("generator").take(n).map(|g| g.session).collect()
}

/// One record to publish.
#[derive(Debug, Clone)]
pub struct Raw {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

impl Raw {
    pub fn session(s: &Session) -> Raw {
        Raw { key: Some(s.user_id.clone().into_bytes()), payload: Some(s.to_json().into_bytes()) }
    }
}

pub fn producer() -> FutureProducer {
    let mut k = kafka();
    k.options.push(("message.max.bytes".into(), "2000000".into()));
    k.producer("gate-test").expect("producer")
}

/// Publishes records in order and waits for every acknowledgement.
pub async fn publish(producer: &FutureProducer, topic: &str, records: &[Raw]) {
    let mut futures = Vec::with_capacity(records.len());
    for r in records {
        let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
        if let Some(k) = &r.key {
            rec = rec.key(k);
        }
        if let Some(p) = &r.payload {
            rec = rec.payload(p);
        }
        loop {
            match producer.send_result(rec) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err((_, back)) => {
                    rec = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    for f in futures {
        f.await.expect("delivery").expect("acknowledged");
    }
}

/// A record read back from an output topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

impl Out {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Reads `topic` from the beginning with a fresh group until at least `want` records arrived,
/// then keeps reading for `settle` to catch any extra record.
pub async fn read_all(topic: &str, want: usize, timeout: Duration, settle: Duration) -> Vec<Out> {
    let mut k = kafka();
    k.options.push(("fetch.message.max.bytes".into(), "2000000".into()));
    let consumer: StreamConsumer =
        k.consumer(&format!("reader-{}", suffix()), "gate-test-reader").expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut settle_until: Option<Instant> =
        if want == 0 { Some(Instant::now() + settle) } else { None };
    loop {
        let now = Instant::now();
        let until = settle_until.unwrap_or(deadline).min(deadline);
        if now >= until {
            break;
        }
        match tokio::time::timeout(until - now, consumer.recv()).await {
            Ok(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default()).into(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Out {
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
                if out.len() >= want && settle_until.is_none() {
                    settle_until = Some(Instant::now() + settle);
                }
            }
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => break,
        }
    }
    out
}

/// A Redis connection.
pub async fn redis_con(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// Deletes every key under the gate prefix.
pub async fn redis_cleanup(url: &str, prefix: &str) {
    let mut con = redis_con(url).await;
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{{{prefix}}}:*")).query_async(&mut con).await.unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut con).await.unwrap();
    }
}

/// Records that fail the schema in each of the ways the brief lists, with ids for keys.
pub fn malformed(template: &Session) -> Vec<(String, Raw)> {
    let good = template.to_json();
    let mut wrong_type: serde_json::Value = serde_json::from_str(&good).unwrap();
    wrong_type["clicks"] = serde_json::json!("many");
    let mut bad_array: serde_json::Value = serde_json::from_str(&good).unwrap();
    bad_array["timeSpentonEachPage"] = serde_json::json!([1]);
    let mut missing: serde_json::Value = serde_json::from_str(&good).unwrap();
    missing.as_object_mut().unwrap().remove("userId");
    let mut bad_enum: serde_json::Value = serde_json::from_str(&good).unwrap();
    bad_enum["deviceInformation"]["deviceType"] = serde_json::json!("toaster");
    let mut huge: serde_json::Value = serde_json::from_str(&good).unwrap();
    huge["name"] = serde_json::json!("x".repeat(600_000));
    let mut junk = vec![0u8, 159, 146, 150, 255, 254, 0, 1];
    junk.extend((0..500u32).map(|i| (i * 7919 % 251) as u8));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("wrong_type", wrong_type.to_string().into_bytes()),
        ("truncated", good.as_bytes()[..good.len() / 2].to_vec()),
        ("binary_junk", junk),
        ("huge", huge.to_string().into_bytes()),
        ("array_lengths", bad_array.to_string().into_bytes()),
        ("missing_field", missing.to_string().into_bytes()),
        ("bad_enum", bad_enum.to_string().into_bytes()),
        ("empty_object", b"{}".to_vec()),
        ("not_json", b"hello world".to_vec()),
    ];
    cases
        .into_iter()
        .map(|(name, bytes)| {
            (
                name.to_string(),
                Raw { key: Some(format!("bad-{name}").into_bytes()), payload: Some(bytes) },
            )
        })
        .chain(std::iter::once((
            "tombstone".to_string(),
            Raw { key: Some(b"bad-tombstone".to_vec()), payload: None },
        )))
        .collect()
}
