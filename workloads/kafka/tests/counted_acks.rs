//! The counted-acknowledgement producer (`produce::AckProducer`) against the real broker: every
//! record acknowledged and readable; a record the producer refuses and records whose delivery
//! fails come back as failed items, in order, with the first error.
//!
//! Needs the local stack: `dev/stack up && eval "$(dev/stack env)"`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use shopstream_kafka::produce::{self, RecordRef};
use shopstream_kafka::{Backoff, KafkaArgs, TopicSpec};
use tokio_util::sync::CancellationToken;

fn kafka() -> KafkaArgs {
    let bootstrap = std::env::var("SHOPSTREAM_KAFKA")
        .expect("SHOPSTREAM_KAFKA is not set: run `dev/stack up` and `eval \"$(dev/stack env)\"`");
    KafkaArgs::for_bootstrap(bootstrap)
}

const HEADERS: &[(&str, String)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_acknowledged_once_every_record_is_on_the_broker() {
    let kafka = kafka();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("counted-{suffix}");
    kafka.ensure_topics(&[TopicSpec::new(&topic, 3)]).await.unwrap();
    let producer = kafka.ack_producer("counted-test").unwrap();

    // 3,000 records, plus one the producer refuses outright (over message.max.bytes).
    let payloads: Vec<Vec<u8>> = (0..3000).map(|i| format!("record-{i}").into_bytes()).collect();
    let huge = vec![b'x'; 2_000_000];
    let record = |i: usize| RecordRef {
        topic: &topic,
        key: Some(b"k"),
        payload: if i == 1234 { &huge } else { &payloads[i] },
        headers: HEADERS,
    };
    let acks = produce::send_counted(&producer, 0..3000, record).await;
    let failed = acks.wait().await;
    assert_eq!(failed.items, vec![1234]);
    let error = failed.first_error.unwrap();
    assert!(error.contains("too large") || error.contains("MsgSizeTooLarge"), "{error}");

    // Every other record is on the broker, exactly once.
    let consumer: StreamConsumer = kafka.consumer(&format!("g-{suffix}"), "counted-read").unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let mut seen = HashSet::new();
    while seen.len() < 2999 {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("all records readable within 30 s")
            .unwrap();
        let text = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
        assert!(seen.insert(text.clone()), "{text} read twice");
    }
    let want: HashSet<String> =
        (0..3000).filter(|i| *i != 1234).map(|i| format!("record-{i}")).collect();
    assert_eq!(seen, want);

    // An empty batch is done at once.
    assert!(produce::send_counted(&producer, 0..0, record).await.wait().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_records_fail_and_cancellation_stops_the_retries() {
    // Nothing listens on port 1: every delivery times out.
    let mut kafka = KafkaArgs::for_bootstrap("127.0.0.1:1");
    kafka.options.push(("message.timeout.ms".into(), "300".into()));
    let producer = kafka.ack_producer("counted-down").unwrap();
    let payload = b"p".to_vec();
    let record = |_: u32| RecordRef { topic: "t", key: None, payload: &payload, headers: HEADERS };
    let failed = produce::send_counted(&producer, [7, 3, 9], record).await.wait().await;
    assert_eq!(failed.items, vec![7, 3, 9], "in the order they were sent");
    assert!(failed.first_error.is_some());

    let cancel = CancellationToken::new();
    let mut rounds = 0;
    let stop = cancel.clone();
    let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
    let acked = produce::send_all_acked(&producer, [1u32], record, backoff, &cancel, |f| {
        assert_eq!(f.items, vec![1]);
        rounds += 1;
        if rounds == 2 {
            stop.cancel();
        }
    })
    .await;
    assert!(!acked, "cancelled before anything was acknowledged");
    assert_eq!(rounds, 2);
}
