//! Helpers of the integration tests: endpoints, unique names, producing sessions, reading
//! Elasticsearch and Kafka back, and the documents the processor must write.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use shopstream_kafka::{KafkaArgs, TopicSpec};
use shopstream_processor::ProcessArgs;
use shopstream_processor::bulk::Batch;
use shopstream_processor::documents::PotentialCustomerRule;
use shopstream_processor::engine::Transformer;
use shopstream_processor::mapping::Indexes;
#[allow(unused_imports)] // Not every test binary that includes this module uses them all.
pub use shopstream_test_support::{env, unique, wait_for};

pub fn kafka() -> KafkaArgs {
    KafkaArgs::for_bootstrap(env("SHOPSTREAM_KAFKA"))
}

pub fn es_url() -> String {
    env("SHOPSTREAM_ES_URL")
}

/// Names of one test's topics, group and indexes.
pub struct Names {
    pub input: String,
    pub dead: String,
    pub group: String,
    pub prefix: String,
}

impl Names {
    pub fn new(tag: &str) -> Names {
        let id = unique(tag);
        Names {
            input: format!("{id}.valid"),
            dead: format!("{id}.dead"),
            group: format!("{id}-group"),
            prefix: format!("{id}-"),
        }
    }

    pub fn indexes(&self) -> Indexes {
        Indexes::with_prefix(&self.prefix)
    }

    /// Processor arguments for these names (metrics on a free port, fast retries).
    pub fn args(&self, es_url: &str) -> ProcessArgs {
        let mut args: ProcessArgs = shopstream_test_support::parse_args(&[]).expect("defaults");
        args.kafka = kafka();
        args.input_topic = self.input.clone();
        args.dead_letter_topic = self.dead.clone();
        args.group = self.group.clone();
        args.es.es_url = Some(es_url.to_string());
        args.index_prefix = self.prefix.clone();
        args.metrics_addr = "127.0.0.1:0".parse().expect("addr");
        args.batch_size = 500;
        args.batch_wait_ms = 100;
        args.retry_initial_ms = 50;
        args.retry_max_ms = 1_000;
        args.es_timeout_ms = 30_000;
        args
    }

    /// The same arguments as command-line flags (for the real binary).
    pub fn flags(&self, es_url: &str, batch: usize) -> Vec<String> {
        [
            ("--kafka-bootstrap", env("SHOPSTREAM_KAFKA")),
            ("--kafka-session-timeout-ms", "6000".to_string()),
            ("--input-topic", self.input.clone()),
            ("--dead-letter-topic", self.dead.clone()),
            ("--group", self.group.clone()),
            ("--es-url", es_url.to_string()),
            ("--index-prefix", self.prefix.clone()),
            ("--metrics-addr", "127.0.0.1:0".to_string()),
            ("--batch-size", batch.to_string()),
            ("--batch-wait-ms", "50".to_string()),
            ("--retry-initial-ms", "50".to_string()),
            ("--retry-max-ms", "1000".to_string()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect()
    }
}

pub async fn create_topic(name: &str, partitions: i32) {
    kafka().ensure_topics(&[TopicSpec::new(name, partitions)]).await.expect("create topic");
}

/// Generated sessions as JSON lines (deterministic per seed).
pub fn sessions(seed: u64, count: usize) -> Vec<String> {
    let mut g = shopstream_generator::Generator::new(shopstream_generator::GeneratorConfig {
        seed,
        users: 300,
        ..Default::default()
    })
    .expect("generator");
    (0..count).map(|_| g.next_session().session.to_json()).collect()
}

/// Produces the payloads (key = a stable key per record) and returns the last offset written
/// to each partition.
pub async fn produce(topic: &str, payloads: &[Vec<u8>]) -> BTreeMap<i32, i64> {
    let producer = kafka().producer("processor-test").expect("producer");
    let mut last = BTreeMap::new();
    let sends = payloads.iter().enumerate().map(|(i, p)| {
        let key = format!("k{}", i % 17);
        let producer = &producer;
        async move {
            let record = FutureRecord::to(topic).key(key.as_bytes()).payload(p.as_slice());
            producer.send(record, Duration::from_secs(30)).await
        }
    });
    for result in futures::future::join_all(sends).await {
        let d = result.map_err(|(e, _)| e).expect("delivered");
        let e = last.entry(d.partition).or_insert(d.offset);
        *e = (*e).max(d.offset);
    }
    last
}

/// The documents the processor must write for these payloads, by index then id.
pub fn expected_docs(
    indexes: &Indexes,
    payloads: &[Vec<u8>],
) -> BTreeMap<String, BTreeMap<String, Value>> {
    let mut t = Transformer::new(indexes.clone(), PotentialCustomerRule::default(), 0);
    let mut batch = Batch::new();
    t.transform(payloads.iter().map(|p| Some(p.as_slice())), &mut batch, &mut Vec::new());
    let mut out: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let text = String::from_utf8(batch.body().to_vec()).expect("utf8");
    let mut lines = text.lines();
    while let (Some(action), Some(source)) = (lines.next(), lines.next()) {
        let a: Value = serde_json::from_str(action).expect("action");
        let index = a["index"]["_index"].as_str().expect("index").to_string();
        let id = a["index"]["_id"].as_str().expect("id").to_string();
        out.entry(index).or_default().insert(id, serde_json::from_str(source).expect("source"));
    }
    out
}

/// One HTTP call to Elasticsearch through the `elasticsearch` crate's transport.
pub async fn es_call(
    url: &str,
    method: elasticsearch::http::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    use elasticsearch::Elasticsearch;
    use elasticsearch::http::headers::HeaderMap;
    use elasticsearch::http::transport::Transport;
    let es = Elasticsearch::new(Transport::single_node(url).map_err(|e| e.to_string())?);
    let bytes = body.map(|b| serde_json::to_vec(&b).unwrap_or_default());
    let r = es
        .send(
            method,
            path,
            HeaderMap::new(),
            None::<&()>,
            bytes.as_deref(),
            Some(Duration::from_secs(10)),
        )
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status_code().as_u16();
    let text = r.text().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// Number of documents in an index (0 when it does not exist or ES is down).
pub async fn count(url: &str, index: &str) -> u64 {
    let _ =
        es_call(url, elasticsearch::http::Method::Post, &format!("/{index}/_refresh"), None).await;
    match es_call(url, elasticsearch::http::Method::Get, &format!("/{index}/_count"), None).await {
        Ok((200, v)) => v["count"].as_u64().unwrap_or(0),
        _ => 0,
    }
}

/// Every document of an index, by id.
pub async fn all_docs(url: &str, index: &str) -> BTreeMap<String, Value> {
    let _ =
        es_call(url, elasticsearch::http::Method::Post, &format!("/{index}/_refresh"), None).await;
    let body = serde_json::json!({ "size": 10000, "query": { "match_all": {} }, "track_total_hits": true });
    let (status, v) =
        es_call(url, elasticsearch::http::Method::Post, &format!("/{index}/_search"), Some(body))
            .await
            .expect("search");
    assert_eq!(status, 200, "{v}");
    let hits = v["hits"]["hits"].as_array().cloned().unwrap_or_default();
    assert_eq!(v["hits"]["total"]["value"].as_u64(), Some(hits.len() as u64), "more than one page");
    let mut out = BTreeMap::new();
    for h in hits {
        let id = h["_id"].as_str().expect("id").to_string();
        assert!(out.insert(id.clone(), h["_source"].clone()).is_none(), "duplicate id {id}");
    }
    out
}

/// Committed offsets of `group` on `topic`'s partitions.
pub fn committed(group: &str, topic: &str, partitions: &[i32]) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = kafka()
        .client_config("processor-test-offsets")
        .expect("kafka config")
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition(topic, p);
    }
    let Ok(c) = consumer.committed_offsets(tpl, Duration::from_secs(10)) else {
        return BTreeMap::new();
    };
    c.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// True when `group` committed past every produced record.
pub fn caught_up(group: &str, topic: &str, last: &BTreeMap<i32, i64>) -> bool {
    let parts: Vec<i32> = last.keys().copied().collect();
    let c = committed(group, topic, &parts);
    last.iter().all(|(p, o)| c.get(p).copied().unwrap_or(-1) > *o)
}

/// A dead-letter record as read back.
#[derive(Debug, Clone)]
pub struct Dead {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
    /// Header names in the order they were written.
    pub header_names: Vec<String>,
}

/// Reads `count` records from the topic (from the start), or panics after the limit.
pub fn read_topic(topic: &str, count: usize, limit: Duration) -> Vec<Dead> {
    let consumer: BaseConsumer = kafka()
        .client_config("processor-test-reader")
        .expect("kafka config")
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < count {
        assert!(start.elapsed() < limit, "read {} of {count} records from {topic}", out.len());
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let mut headers = HashMap::new();
            let mut header_names = Vec::new();
            if let Some(h) = m.headers() {
                for i in 0..h.count() {
                    let hd = h.get(i);
                    header_names.push(hd.key.to_string());
                    headers.insert(
                        hd.key.to_string(),
                        String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                    );
                }
            }
            out.push(Dead {
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers,
                header_names,
            });
        }
    }
    // Nothing more may arrive.
    let extra = Instant::now();
    while extra.elapsed() < Duration::from_secs(2) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            panic!("unexpected extra record at offset {} of {topic}", m.offset());
        }
    }
    out
}

/// Deletes the test's indexes and templates (best effort).
pub async fn cleanup(url: &str, names: &Names) {
    let ix = names.indexes();
    for name in [&ix.sessions, &ix.products] {
        let _ = es_call(url, elasticsearch::http::Method::Delete, &format!("/{name}"), None).await;
        let _ = es_call(
            url,
            elasticsearch::http::Method::Delete,
            &format!("/_index_template/{name}"),
            None,
        )
        .await;
    }
}
